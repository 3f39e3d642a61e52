/*
 * compat.c - CPython version differences (see compat.h for the contract).
 */
#include "compat.h"
/* alloc.h: the failure counter tests arm (hooks, below). */
#include "alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* "3.12.1 (main, ...)" -> 3, 12. */
static int
runtime_is_built_for(void)
{
    int major = 0, minor = 0;
    const char *running = Py_GetVersion();
    if (sscanf(running, "%d.%d", &major, &minor) == 2
            && major == PY_MAJOR_VERSION && minor == PY_MINOR_VERSION)
        return 1;
    fprintf(stderr, "pygate: this libpygate was built for CPython %d.%d, but"
            " the process runs CPython %.*s: build pygate for that CPython\n",
            PY_MAJOR_VERSION, PY_MINOR_VERSION,
            (int)strcspn(running, " "), running);
    return 0;
}

static int runtime_matches;

static void
check_runtime(void)
{
    runtime_matches = runtime_is_built_for();
}

int
pygate__compat_runtime_matches(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, check_runtime);
    return runtime_matches;
}

PyThreadState *
pygate__compat_current_tstate(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyThreadState_GetUnchecked();   /* thread-local since 3.12 */
#else
    /* Up to 3.11 this is the GIL holder's state, whichever thread holds
     * it: it is ours only if it is our gilstate-slot state.  Reading any
     * field of it to find out would race with its owner freeing it. */
    PyThreadState *current = PyThreadState_GetUnchecked();
    return current != NULL && current == pygate__compat_gilstate_get()
               ? current
               : NULL;
#endif
}

PyThreadState *
pygate__compat_current_tstate_attached(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return pygate__compat_current_tstate();
#else
    /* The caller is attached by precondition, so the GIL holder's state
     * is stable; it is ours if it carries our thread ID (this also finds a
     * state outside the gilstate slot, like the one Py_NewInterpreter
     * returns). */
    PyThreadState *current = PyThreadState_GetUnchecked();
    if (current == NULL || current == pygate__compat_gilstate_get())
        return current;
    return current->thread_id == PyThread_get_thread_ident() ? current
                                                              : NULL;
#endif
}

#if COMPAT_ATTACH_BINDS_GILSTATE

PyThreadState *
pygate__compat_gilstate_get(void)
{
    return PyGILState_GetThisThreadState();
}


#else /* 3.8-3.11 */

Py_tss_t *pygate__compat_gilstate_key(void);   /* compat_core.c */

/* The key, looked up once (racing first callers store the same value).
 * Read with pthread_getspecific() directly: a Py_tss_t holds the pthread
 * key (Include/cpython/pythread.h), and this is on the entry fast path. */
static Py_tss_t *
gilstate_key(void)
{
    static Py_tss_t *_Atomic key;
    Py_tss_t *k = atomic_load_explicit(&key, memory_order_relaxed);
    if (k == NULL) {
        k = pygate__compat_gilstate_key();
        atomic_store_explicit(&key, k, memory_order_relaxed);
    }
    return k;
}

PyThreadState *
pygate__compat_gilstate_get(void)
{
    return (PyThreadState *)pthread_getspecific(gilstate_key()->_key);
}

void
pygate__compat_gilstate_set(PyThreadState *tstate)
{
    if (pygate__compat_gilstate_get() != tstate)
        PyThread_tss_set(gilstate_key(), tstate);
}


#endif /* COMPAT_ATTACH_BINDS_GILSTATE */

PyObject *
pygate__compat_interp_dict(PyInterpreterState *interp)
{
#if COMPAT_FREE_THREADED
    static pthread_mutex_t first_use = PTHREAD_MUTEX_INITIALIZER;
    if (pthread_mutex_trylock(&first_use) != 0) {
        /* Detached while waiting: the holder may wait for the world to
         * stop, which an attached waiter would never let happen. */
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&first_use);
        Py_END_ALLOW_THREADS
    }
    PyObject *dict = PyInterpreterState_GetDict(interp);
    pthread_mutex_unlock(&first_use);
    return dict;
#else
    return PyInterpreterState_GetDict(interp);
#endif
}

/* ---- shutdown hook ------------------------------------------------------ */

typedef struct hook {
    void (*fn)(void *);
    void *arg;
} hook;

static void
hook_capsule_free(PyObject *capsule)
{
    PyMem_RawFree(PyCapsule_GetPointer(capsule, "pygate.hook"));
}

static PyObject *
hook_trampoline(PyObject *capsule, PyObject *unused)
{
    (void)unused;
    hook *h = (hook *)PyCapsule_GetPointer(capsule, "pygate.hook");
    if (h == NULL)
        return NULL;
    if (h->fn != NULL) {
        void (*fn)(void *) = h->fn;
        h->fn = NULL;   /* atexit._run_exitfuncs() may call us twice */
        fn(h->arg);
    }
    Py_RETURN_NONE;
}

static PyMethodDef hook_def = {
    "_pygate_shutdown", hook_trampoline, METH_NOARGS,
    "pygate: close the interpreter's gate and drain native entries."
};

int
pygate__compat_register_shutdown_hook(void (*fn)(void *), void *arg)
{
    /* Why the Python-level atexit stage: Py_FinalizeEx and Py_EndInterpreter
     * run it on every version after joining non-daemon threads and before
     * tearing down thread states (and before Py_EndInterpreter's "not the
     * last thread" check).  PyUnstable_AtExit (3.13+) callbacks run later,
     * while the interpreter is being cleared: too late to drain. */
    hook *h = pygate__alloc_fails() ? NULL
                                    : (hook *)PyMem_RawMalloc(sizeof *h);
    if (h == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    h->fn = fn;
    h->arg = arg;
    PyObject *capsule = PyCapsule_New(h, "pygate.hook", hook_capsule_free);
    if (capsule == NULL) {
        PyMem_RawFree(h);
        return -1;
    }
    PyObject *func = PyCFunction_New(&hook_def, capsule);
    Py_DECREF(capsule);
    if (func == NULL)
        return -1;
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *res = NULL;
    if (atexit != NULL) {
        res = PyObject_CallMethod(atexit, "register", "O", func);
        Py_DECREF(atexit);
    }
    Py_DECREF(func);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

int
pygate__compat_finish_main_thread_object(void)
{
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030D0000
    /* What threading._shutdown() does for the main Thread when it runs on
     * it, done from here (Lib/threading.py, 3.9-3.12). */
    static const char code[] =
        "import sys\n"
        "t = sys.modules.get('threading')\n"
        "if t is not None:\n"
        "    m = t._main_thread\n"
        "    if m.ident != t.get_ident() and not m._is_stopped:\n"
        "        lock = m._tstate_lock\n"
        "        if lock is not None and lock.locked():\n"
        "            lock.release()\n"
        "        m._stop()\n";
    PyObject *globals = PyDict_New();
    if (globals == NULL)
        return -1;
    PyObject *res = NULL;
    if (PyDict_SetItemString(globals, "__builtins__",
                             PyEval_GetBuiltins()) == 0)
        res = PyRun_String(code, Py_file_input, globals, globals);
    Py_DECREF(globals);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
#endif
    return 0;
}

#if PY_VERSION_HEX >= 0x030E0000 && PY_VERSION_HEX < 0x030F0000
/* Exported by libpython 3.14, declared only in its internal headers. */
PyAPI_FUNC(void) _Py_InitializeRecursionLimits(PyThreadState *tstate);
#endif

void
pygate__compat_adopt_stack(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030F0000
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    void *base = NULL;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &base, &size) == 0
            && PyUnstable_ThreadState_SetStackProtection(tstate, base,
                                                         size) < 0)
        PyErr_Clear();   /* a stack too small: the old bounds stay */
    pthread_attr_destroy(&attr);
#elif PY_VERSION_HEX >= 0x030E0000
    _Py_InitializeRecursionLimits(tstate);
#else
    (void)tstate;
#endif
}

#if COMPAT_FREE_THREADED
void pygate__compat_core_make_main(PyThreadState *tstate);   /* compat_core.c */
#endif

void
pygate__compat_finalize_here(PyThreadState *attached)
{
#if COMPAT_FREE_THREADED
    pygate__compat_core_make_main(attached);
#else
    (void)attached;
#endif
}

void
pygate__compat_delete_foreign_tstate(PyThreadState *tstate)
{
    PyThreadState_Clear(tstate);
    PyThreadState_Delete(tstate);
}

PyThreadState *
pygate__compat_new_interpreter(int own_gil, const char **why)
{
    PyThreadState *tstate = NULL;
#if COMPAT_HAS_OWN_GIL
    /* The isolated settings CPython's own interpreters module uses, and
     * the legacy ones (those of Py_NewInterpreter) for a shared GIL. */
    PyInterpreterConfig config = {
        .use_main_obmalloc = !own_gil,
        .allow_fork = !own_gil,
        .allow_exec = !own_gil,
        .allow_threads = 1,
        .allow_daemon_threads = !own_gil,
        /* Free-threaded CPython refuses single-phase-init extensions in
         * any sub-interpreter (Python/pylifecycle.c, init_interp_settings). */
        .check_multi_interp_extensions = own_gil || COMPAT_FREE_THREADED,
        .gil = own_gil ? PyInterpreterConfig_OWN_GIL
                       : PyInterpreterConfig_SHARED_GIL,
    };
    PyStatus status = Py_NewInterpreterFromConfig(&tstate, &config);
    if (PyStatus_Exception(status)) {
        *why = status.err_msg != NULL ? status.err_msg
                                      : "Py_NewInterpreterFromConfig failed";
        return NULL;
    }
#else
    (void)own_gil;
    tstate = Py_NewInterpreter();
#endif
    if (tstate == NULL)
        *why = "CPython could not make an interpreter";
    return tstate;
}
