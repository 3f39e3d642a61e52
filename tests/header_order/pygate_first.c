/*
 * pygate_first.c - pygate.h works included before Python.h (it includes
 * Python.h itself), and pygate_host_init is declared either way.  Built as
 * C and as C++ (pygate_first.cpp includes this file).
 */
#include <pygate.h>
#include <Python.h>

#include <stdio.h>

int
main(void)
{
    int rc = pygate_host_init(NULL);
    if (rc != PYGATE_OK) {
        fprintf(stderr, "pygate_host_init: %s\n", pygate_err_name(rc));
        return 1;
    }
    rc = pygate_host_shutdown();
    printf("pygate.h first: %s\n", pygate_err_name(rc));
    return rc == PYGATE_OK ? 0 : 1;
}
