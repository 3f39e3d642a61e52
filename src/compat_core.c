/*
 * compat_core.c - the one reach into CPython's internals, CPython 3.8-3.11.
 *
 * The gilstate slot (see compat.h) is a thread-specific-storage key inside
 * _PyRuntime.gilstate.  Up to 3.11 an attach does not bind it, and CPython
 * offers no public way to set it, while pygate must: a thread state bound
 * there for another interpreter makes PyGILState_Ensure() in a callback
 * deadlock or touch freed memory.  Only the key's address is taken here;
 * compat.c does the rest with the public PyThread_tss_* functions.  From
 * 3.12 on CPython binds the slot on every attach and this file compiles to
 * nothing (3.15 keeps the slot in a thread-local that is not exported).
 * Py_BUILD_CORE must be defined before Python.h, so this file is compiled
 * on its own.
 */
#include <patchlevel.h>   /* PY_VERSION_HEX, and nothing else */
#if PY_VERSION_HEX < 0x030C0000
#define Py_BUILD_CORE 1
#include "compat_core.h"

Py_tss_t *pygate__compat_gilstate_key(void);

Py_tss_t *
pygate__compat_gilstate_key(void)
{
    return &_PyRuntime.gilstate.autoTSSkey;
}

#else
typedef int compat_core_is_empty_from_3_12;   /* ISO C: no empty file */
#endif /* < 3.12 */
