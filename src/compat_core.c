/*
 * compat_core.c - the one reach into CPython's internals.
 *
 * The gilstate slot (see compat.h) is a thread-specific-storage key inside
 * _PyRuntime.  CPython offers no public way to set it, and pygate must:
 * a thread state that CPython bound there for the wrong interpreter makes
 * PyGILState_Ensure() in a callback deadlock or touch freed memory.  Only
 * the key's address is taken here; compat.c does the rest with the public
 * PyThread_tss_* functions.  Py_BUILD_CORE must be defined before Python.h,
 * so this file is compiled on its own.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#if PY_VERSION_HEX < 0x03090000
#  include "internal/pycore_pystate.h"
#else
#  include "internal/pycore_runtime.h"
#endif

Py_tss_t *compat_gilstate_key(void);

Py_tss_t *
compat_gilstate_key(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return &_PyRuntime.autoTSSkey;
#else
    return &_PyRuntime.gilstate.autoTSSkey;
#endif
}
