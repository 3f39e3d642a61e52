/*
 * compat_core.c - the one reach into CPython's internals: the gilstate key
 * on CPython 3.8-3.11, and the runtime's main thread on free-threaded
 * CPython 3.14.
 *
 * The gilstate slot (see compat.h) is a thread-specific-storage key inside
 * _PyRuntime.gilstate.  Up to 3.11 an attach does not bind it, and CPython
 * offers no public way to set it, while pygate must: a thread state bound
 * there for another interpreter makes PyGILState_Ensure() in a callback
 * deadlock or touch freed memory.  Only the key's address is taken here;
 * compat.c does the rest with the public PyThread_tss_* functions.  From
 * 3.12 on CPython binds the slot on every attach (3.15 keeps the slot in a
 * thread-local that is not exported).
 *
 * Free-threaded 3.14 finalizes only with the runtime's main thread state
 * attached (compat.h), and that state's memory heaps belong to the thread
 * that made it, so no other thread may attach it: its debug build asserts
 * in mimalloc.  pygate_host_shutdown() on another thread therefore makes
 * the calling thread and its state the runtime's main ones first, as
 * PyOS_AfterFork_Child() does for the forking thread.
 *
 * Py_BUILD_CORE must be defined before Python.h, so this file is compiled
 * on its own.
 */
#include <patchlevel.h>   /* PY_VERSION_HEX, and nothing else */
#include <pyconfig.h>     /* Py_GIL_DISABLED */
#if PY_VERSION_HEX < 0x030C0000 || defined(Py_GIL_DISABLED)
#define Py_BUILD_CORE 1
#include "compat_core.h"
#endif

#if PY_VERSION_HEX < 0x030C0000
Py_tss_t *pygate__compat_gilstate_key(void);

Py_tss_t *
pygate__compat_gilstate_key(void)
{
    return &_PyRuntime.gilstate.autoTSSkey;
}
#endif /* < 3.12 */

#ifdef Py_GIL_DISABLED
void pygate__compat_core_make_main(PyThreadState *tstate);

/* tstate: the calling thread's attached state of the main interpreter,
 * made on this thread.  Written while other threads may run: they read
 * main_thread to tell whether they run signal handlers (not the finalizing
 * thread's business any more once it finalizes). */
void
pygate__compat_core_make_main(PyThreadState *tstate)
{
    _PyRuntime.main_thread = PyThread_get_thread_ident();
    _PyRuntime.main_tstate = tstate;
}
#endif

typedef int compat_core_is_never_empty;   /* ISO C: no empty file */
