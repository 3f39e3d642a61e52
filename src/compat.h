/*
 * compat.h - every difference between CPython versions, in one place.
 *
 * The rest of pygate calls these functions and never tests PY_VERSION_HEX.
 * Each one states the fact about CPython it relies on; tests/ checks each
 * fact on every version the suite runs against.
 */
#ifndef PYGATE_COMPAT_H
#define PYGATE_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* CPython 3.15+ has PEP 788's functions itself: pygate/pep788.h then maps
 * to them and src/pep788.c compiles to nothing. */
#define COMPAT_CPYTHON_HAS_PEP788 (PY_VERSION_HEX >= 0x030F0000)

/* The thread state the calling thread has attached, or NULL.  Never
 * fails, never blocks.  On 3.8-3.11 CPython tracks only the GIL holder's
 * state, process-wide; there a thread counts as attached when that state
 * is its own gilstate-slot state, which pygate ensures for every state it
 * attaches.  A thread attached to another state of its own (such as the
 * one Py_NewInterpreter returns) is not seen on those versions. */
PyThreadState *compat_current_tstate(void);

/* The same, for callers that are attached by documented precondition:
 * on 3.8-3.11 it also finds states outside the gilstate slot. */
PyThreadState *compat_current_tstate_attached(void);

/* Whether `own`, a live thread state of the calling thread, is the one
 * it has attached: the entry fast path's test, cheaper than comparing with
 * compat_current_tstate().  3.12+ flags the state it activates
 * (_status.active: set on attach, cleared on detach, Python/pystate.c);
 * up to 3.11 the GIL holder's state is ours exactly when it is `own`. */
static inline int
compat_tstate_is_attached(PyThreadState *own)
{
#if PY_VERSION_HEX >= 0x030C0000
    return own->_status.active;
#else
    return _PyThreadState_UncheckedGet() == own;
#endif
}

/* PyErr_Occurred() for a state known to be the attached one, without
 * looking it up again. */
static inline int
compat_tstate_has_exception(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030C0000
    return tstate->current_exception != NULL;
#else
    return tstate->curexc_type != NULL;
#endif
}

/* The interpreter a thread state belongs to. */
PyInterpreterState *compat_tstate_interp(PyThreadState *tstate);

/* True once the runtime has begun Py_FinalizeEx past its atexit stage. */
int compat_runtime_finalizing(void);

/*
 * The gilstate slot: the thread state PyGILState_GetThisThreadState()
 * returns on the calling thread, which is the one PyGILState_Ensure()
 * re-attaches.  CPython fills it with the first thread state created on a
 * thread, whatever its interpreter (3.8-3.11), and also rebinds it on every
 * attach (3.12+).  pygate keeps it pointing at the right state: see
 * enter.c.  compat_gilstate_set() keeps 3.12+'s bound_gilstate flags
 * consistent with the slot.
 */
PyThreadState *compat_gilstate_get(void);
void compat_gilstate_set(PyThreadState *tstate);

/* Registers fn(arg) to run in the current interpreter's shutdown, after
 * non-daemon threads are joined and before any thread state is torn down
 * (the Python-level atexit stage; see docs/ARCHITECTURE.md for why not
 * PyUnstable_AtExit).  Returns 0, or -1 with a Python exception set. */
int compat_register_shutdown_hook(void (*fn)(void *), void *arg);

/* Before Py_FinalizeEx on a thread other than the one that imported
 * threading (its "main thread"): marks that Thread object finished, as
 * threading._shutdown() does itself when it runs on it.  On 3.9-3.12
 * _shutdown() otherwise waits for the main Thread's lock, which is only
 * released when that thread's state is deleted, after shutdown: a hang
 * (3.8 and 3.13+ mark it finished whichever thread shuts down).  Caller is
 * attached to the main interpreter.  Returns 0, or -1 with an exception. */
int compat_finish_main_thread_object(void);

/* Clears and deletes a detached thread state of the current interpreter
 * that belongs to another (or no) thread. */
void compat_delete_foreign_tstate(PyThreadState *tstate);

#endif /* PYGATE_COMPAT_H */
