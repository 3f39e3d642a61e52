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

/* Free-threaded builds (Py_GIL_DISABLED, 3.14t) are supported from 3.14
 * on, the first release whose free-threaded build CPython supports (PEP
 * 779); pygate relies on nothing there that a GIL would have given it
 * (docs/ARCHITECTURE.md, "Free-threaded CPython", lists each point and its
 * test).  3.13t, experimental, is refused. */
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030E0000
#  error "pygate supports free-threaded CPython from 3.14 on (3.13t was experimental): build it for 3.14t or a CPython with a GIL"
#endif
#ifdef Py_GIL_DISABLED
#  define COMPAT_FREE_THREADED 1
#else
#  define COMPAT_FREE_THREADED 0
#endif

/* ---- CPython's own names, on the versions before they existed ----------
 * (pythoncapi-compat's way: pygate's code calls CPython's name, and these
 * supply it where it is missing; static, so nothing is exported.) */

#if PY_VERSION_HEX < 0x03090000
/* Added in 3.9; before, the field was the way. */
static inline PyInterpreterState *
PyThreadState_GetInterpreter(PyThreadState *tstate)
{
    return tstate->interp;
}
#endif

#if PY_VERSION_HEX < 0x030D0000
/* Public from 3.13; before, the same under a private name. */
static inline int
Py_IsFinalizing(void)
{
    return _Py_IsFinalizing();
}

/* Public from 3.13; before, the same under a private name.  Up to 3.11 it
 * returns the GIL holder's state, whichever thread holds it (a
 * process-wide variable); from 3.12 on the calling thread's (a
 * thread-local). */
static inline PyThreadState *
PyThreadState_GetUnchecked(void)
{
    return _PyThreadState_UncheckedGet();
}
#endif

#if PY_VERSION_HEX < 0x030D0000
/* Added in 3.13: a strong reference in *result (NULL when absent); returns
 * 1 found, 0 absent, -1 with an exception.  Free-threaded builds need the
 * strong reference: another thread may drop the dict's meanwhile. */
static inline int
PyDict_GetItemStringRef(PyObject *dict, const char *key, PyObject **result)
{
    PyObject *k = PyUnicode_FromString(key);
    *result = NULL;
    if (k == NULL)
        return -1;
    PyObject *v = PyDict_GetItemWithError(dict, k);
    Py_DECREF(k);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(v);
    *result = v;
    return 1;
}

/* Added in 3.13: stores value under key unless the key is there already,
 * in one step (two threads doing it at once store one value); *result
 * gets a strong reference to the value the dict then holds.  Returns 0
 * stored, 1 already there, -1 with an exception. */
static inline int
PyDict_SetDefaultRef(PyObject *dict, PyObject *key, PyObject *value,
                     PyObject **result)
{
    PyObject *v = PyDict_SetDefault(dict, key, value);
    *result = v;
    if (v == NULL)
        return -1;
    Py_INCREF(v);
    return v == value ? 0 : 1;
}
#endif

#if PY_VERSION_HEX < 0x030C0000
/* Added in 3.12, where the raised exception is one object; before, the
 * type/value/traceback triple, normalized and joined here. */
static inline PyObject *
PyErr_GetRaisedException(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

static inline void
PyErr_SetRaisedException(PyObject *exc)   /* steals exc */
{
    if (exc == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
}
#endif

/* ---- pygate's own ------------------------------------------------------- */

/* PyInterpreterState_GetDict(interp), for a caller attached to interp.
 * CPython makes the dict on first use without a lock (Python/pystate.c,
 * 3.8-3.15): on a free-threaded build two threads that ask at once for
 * the first time each get a dict of their own, and one is lost with what
 * was stored in it (measured: two records for one interpreter in 16
 * threads' first views).  There pygate's own calls take turns, waiting
 * detached.  NULL when no dict can be had. */
PyObject *pygate__compat_interp_dict(PyInterpreterState *interp);

/* PyDict_SetDefaultRef with a C string key: stores value under key unless
 * a value is there already, and returns the one the dict holds (value or
 * the one found) as a new reference, or NULL with an exception.  Two
 * threads that publish at once (free-threaded builds, or a GIL released
 * in between) agree on one value. */
static inline PyObject *
compat_dict_publish(PyObject *dict, const char *key, PyObject *value)
{
    PyObject *k = PyUnicode_FromString(key);
    if (k == NULL)
        return NULL;
    PyObject *held;
    int rc = PyDict_SetDefaultRef(dict, k, value, &held);
    Py_DECREF(k);
    return rc < 0 ? NULL : held;
}

/* Whether the CPython running in the process (Py_GetVersion()) has the
 * major.minor version whose headers pygate was compiled with.  Checked
 * once; a mismatch is reported on stderr, naming both.  Any thread, before
 * or after Python's initialization. */
int pygate__compat_runtime_matches(void);

/* The thread state the calling thread has attached, or NULL.  Never
 * fails, never blocks.  On 3.8-3.11 CPython tracks only the GIL holder's
 * state, process-wide; there a thread counts as attached when that state
 * is its own gilstate-slot state, which pygate ensures for every state it
 * attaches.  A thread attached to another state of its own (such as the
 * one Py_NewInterpreter returns) is not seen on those versions. */
PyThreadState *pygate__compat_current_tstate(void);

/* The same, for callers that are attached by documented precondition:
 * on 3.8-3.11 it also finds states outside the gilstate slot. */
PyThreadState *pygate__compat_current_tstate_attached(void);

/* Whether `own`, a live thread state of the calling thread, is the one
 * it has attached: the entry fast path's test, cheaper than comparing with
 * pygate__compat_current_tstate().  3.12+ flags the state it activates
 * (_status.active: set on attach, cleared on detach, Python/pystate.c);
 * up to 3.11 the GIL holder's state is ours exactly when it is `own`. */
static inline int
compat_tstate_is_attached(PyThreadState *own)
{
#if PY_VERSION_HEX >= 0x030C0000
    return own->_status.active;
#else
    return PyThreadState_GetUnchecked() == own;
#endif
}

/* PyErr_Occurred() for a state known to be the attached one, without
 * looking it up again.  3.12 keeps the raised exception as one object
 * (current_exception) instead of the type/value/traceback triple. */
static inline int
compat_tstate_has_exception(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030C0000
    return tstate->current_exception != NULL;
#else
    return tstate->curexc_type != NULL;
#endif
}

/*
 * The gilstate slot: the thread state PyGILState_GetThisThreadState()
 * returns on the calling thread, which is the one PyGILState_Ensure()
 * re-attaches.  CPython fills it with the first thread state created on a
 * thread, whatever its interpreter.  From 3.12 on it also binds the state
 * on every attach (Python/pystate.c: tstate_activate() calls
 * bind_gilstate_tstate()), flags the bound state (_status.bound_gilstate)
 * and asserts in debug builds that a flagged state is the one in the slot;
 * deleting the bound state empties the slot.  So on 3.12+ pygate never
 * writes the slot: it attaches the state it wants bound (enter.c).
 * Up to 3.11 an attach leaves the slot alone, and the only way to point
 * it at the attached state is to write CPython's key: compat_core.c, the
 * one reach into CPython's internals, built for 3.8-3.11 only.
 */
#define COMPAT_ATTACH_BINDS_GILSTATE (PY_VERSION_HEX >= 0x030C0000)

PyThreadState *pygate__compat_gilstate_get(void);
#if !COMPAT_ATTACH_BINDS_GILSTATE
/* 3.8-3.11: points the calling thread's slot at tstate (or empties it). */
void pygate__compat_gilstate_set(PyThreadState *tstate);
#endif

/* After attaching tstate on the calling thread: makes it the bound state
 * (up to 3.11 by writing the slot; from 3.12 on CPython has done it). */
static inline void
compat_gilstate_bind_attached(PyThreadState *tstate)
{
#if COMPAT_ATTACH_BINDS_GILSTATE
    (void)tstate;
#else
    pygate__compat_gilstate_set(tstate);
#endif
}


/* Registers fn(arg) to run in the current interpreter's shutdown, after
 * non-daemon threads are joined and before any thread state is torn down
 * (the Python-level atexit stage; see docs/ARCHITECTURE.md for why not
 * PyUnstable_AtExit).  Returns 0, or -1 with a Python exception set. */
int pygate__compat_register_shutdown_hook(void (*fn)(void *), void *arg);

/* 3.13+ Py_FinalizeEx on a thread other than the one that initialized
 * Python finalizes with the *main thread's* state (Python/pylifecycle.c:
 * resolve_final_tstate() returns runtime->main_tstate) and asserts after
 * the atexit stage that it is the attached one.  So the shutting-down
 * thread must attach that state itself, which 3.12+ allows only for a
 * state not bound in another thread's slot (tstate_activate asserts it).
 * Up to 3.12 the finalizing thread's own state is used.
 * Free-threaded builds cannot lend the main thread's state to another
 * thread: its memory heaps are that thread's (mimalloc asserts it in the
 * debug build).  There the finalizing thread is made the runtime's main
 * thread instead, with its own state (pygate__compat_finalize_here). */
#define COMPAT_FINALIZE_USES_MAIN_TSTATE \
    (PY_VERSION_HEX >= 0x030D0000 && !COMPAT_FREE_THREADED)

/* Before Py_FinalizeEx on a thread that did not initialize Python, with
 * `attached`, a state of the main interpreter made on this thread,
 * attached: on free-threaded builds makes this thread and that state the
 * runtime's main ones (compat_core.c), as PyOS_AfterFork_Child does for
 * a forking thread; elsewhere nothing. */
void pygate__compat_finalize_here(PyThreadState *attached);

/* The same rule in a forked child: PyOS_AfterFork_Child keeps only the
 * forking thread's attached state and makes the forking thread the main
 * one, but leaves runtime->main_tstate as it was.  On 3.13+ the child's
 * Py_FinalizeEx then swaps to main_tstate, which is freed unless the
 * forking thread was the init thread attached to it (measured: without
 * pygate a native thread attached through PyGILState_Ensure forks, and the
 * child's Py_FinalizeEx crashes on 3.13.0-3.15.2; the debug build asserts
 * main_tstate->thread_id == runtime->main_thread).  3.8-3.12 finalize with
 * the calling thread's state. */
#define COMPAT_CHILD_FINALIZES_ON_INIT_THREAD (PY_VERSION_HEX >= 0x030D0000)

/* Before Py_FinalizeEx on a thread other than the one that imported
 * threading (its "main thread"): marks that Thread object finished, as
 * threading._shutdown() does itself when it runs on it.  On 3.9-3.12
 * _shutdown() otherwise waits for the main Thread's lock, which is only
 * released when that thread's state is deleted, after shutdown: a hang
 * (3.8 and 3.13+ mark it finished whichever thread shuts down).  The same
 * holds for Py_EndInterpreter on another thread than the one that imported
 * threading there.  Caller is attached to the interpreter about to end.
 * Returns 0, or -1 with an exception. */
int pygate__compat_finish_main_thread_object(void);

/* CPython 3.14+ keeps in each thread state the C stack bounds of the
 * thread that first ran it (gh-91079, Python/ceval.c): _Py_Dealloc puts a
 * GC object aside, as if the stack were about to overflow, whenever the
 * stack pointer is below them, and frees what it put aside only once the
 * pointer is well above.  So a state attached on another thread whose
 * stack lies below them frees no GC object at all (measured, 3.14.10 and
 * 3.15.2: Py_FinalizeEx with the main thread's state on another thread
 * freed none).  Attached to tstate, made on another thread: gives it the
 * calling thread's bounds, with the public call from 3.15 and the one
 * CPython runs for a new thread on 3.14.  Nothing to do before 3.14. */
void pygate__compat_adopt_stack(PyThreadState *tstate);

/* Clears and deletes a detached thread state of the current interpreter
 * that belongs to another (or no) thread.  On 3.12+ the state must not be
 * bound in its thread's slot (CPython would empty the *calling* thread's
 * slot and leave the owner's dangling); pygate never leaves its states
 * bound outside an entry there (enter.c). */
void pygate__compat_delete_foreign_tstate(PyThreadState *tstate);

/* PEP 684 (3.12): an interpreter may have a GIL of its own, given the
 * isolation that needs (its own allocator, only extensions that declare
 * support for it); Py_NewInterpreterFromConfig makes one.  Before 3.12
 * every interpreter shares the main GIL. */
#define COMPAT_HAS_OWN_GIL (PY_VERSION_HEX >= 0x030C0000)

/* Makes a sub-interpreter (with a GIL of its own if own_gil, which needs
 * COMPAT_HAS_OWN_GIL) from a thread attached to another interpreter.
 * Returns the new interpreter's first state, attached on the calling
 * thread, the caller's detached (its GIL released if it differs).  On
 * failure returns NULL with *why set, the caller's state attached again. */
PyThreadState *pygate__compat_new_interpreter(int own_gil, const char **why);

#endif /* PYGATE_COMPAT_H */
