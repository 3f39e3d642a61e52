/*
 * host.c - the consumer projects' program: a host that embeds Python the
 * way the README shows, built against pygate as a CMake subdirectory, as
 * an installed CMake package and through pkg-config.  Four native threads
 * call into Python while the host shuts down.
 */
#include <pygate.h>

#include <pthread.h>
#include <stdio.h>

static long calls[4];

/* sum(range(100)), evaluated by Python; -1 on error. */
static long
python_sum(void)
{
    PyObject *globals = PyDict_New();
    long v = -1;
    if (globals != NULL && PyDict_SetItemString(globals, "__builtins__",
                                                PyEval_GetBuiltins()) == 0) {
        PyObject *r = PyRun_String("sum(range(100))", Py_eval_input,
                                   globals, globals);
        v = r != NULL ? PyLong_AsLong(r) : -1;
        Py_XDECREF(r);
    }
    Py_XDECREF(globals);
    if (PyErr_Occurred())
        PyErr_Print();
    return v;
}

static void *
worker(void *arg)
{
    long *n = (long *)arg;
    for (;;) {
        pygate_token tok;
        if (pygate_enter(pygate_host_view(), &tok) != PYGATE_OK)
            return NULL;   /* Python is shutting down: stop calling it */
        if (python_sum() == 4950)
            (*n)++;
        pygate_leave(tok);
        if (*n == 1000)
            return NULL;
    }
}

int
main(void)
{
    int rc = pygate_host_init(NULL);
    if (rc != PYGATE_OK) {
        fprintf(stderr, "pygate_host_init: %s\n", pygate_strerror(rc));
        return 1;
    }
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, &calls[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    rc = pygate_host_shutdown();
    long total = calls[0] + calls[1] + calls[2] + calls[3];
    printf("consumer host: %ld calls, shutdown %s\n", total,
           pygate_err_name(rc));
    return rc == PYGATE_OK && total == 4000 ? 0 : 1;
}
