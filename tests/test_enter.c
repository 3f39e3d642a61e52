/*
 * test_enter.c - entering and leaving from native threads.
 */
#include "harness.h"

static harness_python py;

static void
setup(void)
{
    py = harness_start();
}

static void
teardown(void)
{
    harness_stop(&py);
}

/* ---- one native thread keeps one thread state --------------------------- */

static int states_before, states_during;

static void *
enter_1000_times(void *arg)
{
    (void)arg;
    PyThreadState *first = NULL;
    for (int i = 0; i < 1000; i++) {
        pygate_token tok;
        CHECK_OK(pygate_enter(py.view, &tok));
        PyThreadState *ts = PyThreadState_Get();
        if (first == NULL) {
            first = ts;
            states_during = count_thread_states(PyInterpreterState_Main());
        }
        CHECK(ts == first);
        CHECK(ts != py.main_ts);
        CHECK(PyGILState_Check());
        PyObject *r = eval("sum(range(10))");
        CHECK(r != NULL && PyLong_AsLong(r) == 45);
        Py_DECREF(r);
        CHECK_OK(pygate_leave(tok));
        CHECK(PyGILState_Check() == 0);
    }
    return NULL;
}

static void
same_tstate_across_entries(void)
{
    setup();
    PyEval_RestoreThread(py.main_ts);
    states_before = count_thread_states(PyInterpreterState_Main());
    PyEval_SaveThread();
    on_native_thread(enter_1000_times, NULL);
    /* One state for the thread while it lived, none left after it ended. */
    CHECK(states_during == states_before + 1);
    PyEval_RestoreThread(py.main_ts);
    CHECK(count_thread_states(PyInterpreterState_Main()) == states_before);
    PyEval_SaveThread();
    teardown();
}

/* ---- nesting ------------------------------------------------------------ */

static void *
nest(void *arg)
{
    (void)arg;
    pygate_token outer, inner, innermost;
    CHECK(pygate_thread_depth() == 0);
    CHECK_OK(pygate_enter(py.view, &outer));
    PyThreadState *ts = PyThreadState_Get();
    CHECK_OK(pygate_enter(py.view, &inner));
    CHECK_OK(pygate_enter(py.view, &innermost));
    CHECK(pygate_thread_depth() == 3);
    CHECK(PyThreadState_Get() == ts);
    CHECK_OK(pygate_leave(innermost));
    CHECK_OK(pygate_leave(inner));
    /* Leaving an inner level keeps the thread attached. */
    CHECK(PyGILState_Check());
    CHECK(PyThreadState_Get() == ts);
    CHECK(eval_long("1 + 1") == 2);
    CHECK_OK(pygate_leave(outer));
    CHECK(PyGILState_Check() == 0);
    CHECK(pygate_thread_depth() == 0);
    return NULL;
}

static void
nesting(void)
{
    setup();
    on_native_thread(nest, NULL);
    teardown();
}

/* ---- threading.local survives between entries --------------------------- */

static void *
use_threading_local(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    exec_ok("import threading\n"
            "if 'tl' not in globals(): tl = threading.local()\n"
            "tl.value = 'kept'\n");
    CHECK_OK(pygate_leave(tok));

    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(eval_long("getattr(tl, 'value', None) == 'kept'") == 1);
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void
threading_local_persists(void)
{
    setup();
    on_native_thread(use_threading_local, NULL);
    /* Another thread does not see the first one's value. */
    PyEval_RestoreThread(py.main_ts);
    CHECK(eval_long("getattr(tl, 'value', None) is None") == 1);
    PyEval_SaveThread();
    teardown();
}

/* ---- PyGILState interoperation ------------------------------------------ */

static void *
gilstate_inside_entry(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    PyThreadState *ts = PyThreadState_Get();
    /* Code inside a callback that uses PyGILState finds pygate's state. */
    CHECK(PyGILState_GetThisThreadState() == ts);
    PyGILState_STATE g = PyGILState_Ensure();
    CHECK(g == PyGILState_LOCKED);
    CHECK(PyThreadState_Get() == ts);
    PyGILState_Release(g);
    CHECK(PyThreadState_Get() == ts);
    CHECK_OK(pygate_leave(tok));

    /* After leaving, PyGILState on this thread reuses the same state
     * rather than creating and destroying another. */
    g = PyGILState_Ensure();
    CHECK(g == PyGILState_UNLOCKED);
    CHECK(PyThreadState_Get() == ts);
    PyGILState_Release(g);
    CHECK(PyGILState_GetThisThreadState() == ts);

    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(PyThreadState_Get() == ts);
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void
gilstate_from_pygate(void)
{
    setup();
    on_native_thread(gilstate_inside_entry, NULL);
    teardown();
}

static int gilstate_states_before;

static void *
pygate_inside_gilstate(void *arg)
{
    (void)arg;
    /* A thread pinned with PyGILState_Ensure (a pinned thread's pattern). */
    PyGILState_STATE outer = PyGILState_Ensure();
    PyThreadState *ts = PyThreadState_Get();
    int states = count_thread_states(PyInterpreterState_Main());
    CHECK(states == gilstate_states_before + 1);

    /* pygate nests on it while attached... */
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(PyThreadState_Get() == ts);
    CHECK_OK(pygate_leave(tok));
    CHECK(PyThreadState_Get() == ts);

    /* ...and re-attaches that same state when detached. */
    PyThreadState *saved = PyEval_SaveThread();
    CHECK(saved == ts);
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(PyThreadState_Get() == ts);
    CHECK(count_thread_states(PyInterpreterState_Main()) == states);
    CHECK_OK(pygate_leave(tok));
    CHECK(PyGILState_Check() == 0);

    PyEval_RestoreThread(saved);
    PyGILState_Release(outer);
    /* pygate did not keep a reference to the borrowed state. */
    CHECK_OK(pygate_thread_release());
    return NULL;
}

static void
gilstate_into_pygate(void)
{
    setup();
    PyEval_RestoreThread(py.main_ts);
    gilstate_states_before = count_thread_states(PyInterpreterState_Main());
    PyEval_SaveThread();
    on_native_thread(pygate_inside_gilstate, NULL);
    PyEval_RestoreThread(py.main_ts);
    CHECK(count_thread_states(PyInterpreterState_Main())
          == gilstate_states_before);
    PyEval_SaveThread();
    teardown();
}

/* ---- foreign PyGILState callers on a kept state ---------------------------- */

/* A foreign callback: code that calls PyGILState_Ensure/Release around
 * each call (ctypes' thunk, Cython's `with gil`).  It counts its calls in
 * __main__.loc, a threading.local, whose data lives in the thread state: a
 * state made and deleted per call starts each call from 0; __main__.seen
 * lists the counts. */
static void (*foreign_callback)(void);

static void *
call_back_5_times(void *arg)
{
    int keep = arg != NULL;
    if (keep)
        CHECK_OK(pygate_thread_keep_gilstate(py.view));
    for (int i = 0; i < 5; i++)
        foreign_callback();
    return NULL;
}

/* A plain entry leaves the kept state in the slot too, and the callbacks'
 * Ensure/Release pairs reuse it without deleting it under pygate, which
 * enters with it again afterwards. */
static void *
enter_then_call_back(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    PyThreadState *kept = PyThreadState_Get();
    CHECK_OK(pygate_leave(tok));
    for (int i = 0; i < 3; i++)
        foreign_callback();
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(PyThreadState_Get() == kept);
    CHECK(eval_long("loc.n") == 3);
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

/* Figures only (a benchmark's, not a check): ns per callback, on a
 * fresh native thread, with or without a kept state. */
static double kept_ns, fresh_ns;

static void *
time_callbacks(void *arg)
{
    double *out = (double *)arg;
    if (out == &kept_ns)
        CHECK_OK(pygate_thread_keep_gilstate(py.view));
    long calls = 20000;
    double t0 = now_seconds();
    for (long i = 0; i < calls; i++)
        foreign_callback();
    *out = (now_seconds() - t0) * 1e9 / (double)calls;
    return NULL;
}

/* Attached to main, with __main__.loc, seen and address set up: a state
 * per call without pygate, one kept state with it, entries that share it;
 * no thread state left behind; then the figures. */
static void
check_foreign_callback(const char *what)
{
    foreign_callback = (void (*)(void))(uintptr_t)eval_long("address");
    int before = count_thread_states(PyInterpreterState_Main());
    PyEval_SaveThread();

    on_native_thread(call_back_5_times, NULL);          /* a state per call */
    on_native_thread(call_back_5_times, (void *)1);     /* one kept state */
    on_native_thread(enter_then_call_back, NULL);
    CHECK_RC(pygate_thread_keep_gilstate(NULL), PYGATE_EINVAL);

    PyEval_RestoreThread(py.main_ts);
    CHECK(eval_long("seen == [1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 1, 2, 3]"));
    CHECK(count_thread_states(PyInterpreterState_Main()) == before);
    exec_ok("seen.clear()\n");
    PyEval_SaveThread();
    on_native_thread(time_callbacks, &fresh_ns);
    on_native_thread(time_callbacks, &kept_ns);
    printf("%s from a native thread: %.0f ns per call with a state made"
           " per call, %.0f ns with pygate's kept state\n", what, fresh_ns,
           kept_ns);
    teardown();
}

static void
foreign_gilstate_reuses_kept_state(void)
{
    setup();
    PyEval_RestoreThread(py.main_ts);
    PyObject *r = eval("__import__('ctypes')");
    if (r == NULL) {
        PyErr_Clear();
        PyEval_SaveThread();
        printf("skip: no ctypes in this CPython\n");
        exit(77);
    }
    Py_DECREF(r);
    exec_ok("import ctypes, threading\n"
            "loc = threading.local()\n"
            "seen = []\n"
            "def count():\n"
            "    loc.n = getattr(loc, 'n', 0) + 1\n"
            "    seen.append(loc.n)\n"
            "callback = ctypes.CFUNCTYPE(None)(count)\n"
            "address = ctypes.cast(callback, ctypes.c_void_p).value\n");
    check_foreign_callback("ctypes callback");
}

/* The same with Cython's `with gil` (tests/foreign/cython_callback.pyx),
 * where the Cython installed builds for this CPython (tests/CMakeLists.txt
 * finds out). */
static void
cython_callback_reuses_kept_state(void)
{
#ifndef PYGATE_TEST_CYTHON_DIR
    printf("skip: %s\n", PYGATE_TEST_CYTHON_WHY);
    exit(77);
#else
    setup();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("import sys\n"
            "sys.path.insert(0, '" PYGATE_TEST_CYTHON_DIR "')\n"
            "import cython_callback\n"
            "loc = cython_callback.loc\n"
            "seen = cython_callback.seen\n"
            "address = cython_callback.address()\n");
    check_foreign_callback("Cython `with gil` function");
#endif
}

/* ---- the GIL released inside an entry ------------------------------------ */

/* A C function called inside an entry releases the GIL (as
 * Py_BEGIN_ALLOW_THREADS does) and calls back into code that enters: that
 * inner entry must really attach, not take the outer one as still held. */
static void *
enter_while_released(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2; round++) {   /* first: new state */
        pygate_token outer, inner;
        CHECK_OK(pygate_enter(py.view, &outer));
        PyThreadState *own = PyThreadState_Get();
        PyThreadState *saved = PyEval_SaveThread();
        CHECK(PyGILState_Check() == 0);
        CHECK_OK(pygate_enter(py.view, &inner));
        CHECK(PyGILState_Check());
        CHECK(PyThreadState_Get() == own);
        CHECK(eval_long("6 * 7") == 42);
        CHECK_OK(pygate_leave(inner));
        CHECK(PyGILState_Check() == 0);
        /* Leaving the outer entry while released is refused. */
        CHECK_RC(pygate_leave(outer), PYGATE_EUNBALANCED);
        PyEval_RestoreThread(saved);
        CHECK_OK(pygate_leave(outer));
    }
    return NULL;
}

static void
gil_released_inside_entry(void)
{
    setup();
    on_native_thread(enter_while_released, NULL);
    teardown();
}

/* ---- nested entries counted inline (pygate.h) ---------------------------- */

/* Whether the thread's fast record is open, and its inline count. */
static int
fast_open(void)
{
#if PYGATE_INLINE_NESTING
    return pygate__fast_v1.view_ != 0;
#else
    return 0;
#endif
}

static unsigned
fast_nested(void)
{
#if PYGATE_INLINE_NESTING
    return pygate__fast_v1.nested_;
#else
    return 0;
#endif
}

/* Inline and exported entries and leaves mixed on one thread, in and out
 * of order (refused in release mode; debug mode aborts on misuse): the same
 * tokens and depths either way.  arg: whether this mode opens the record
 * (release mode, gcc or clang); 0 in debug mode. */
static void *
nest_inline_and_exported(void *arg)
{
    int inline_on = *(const int *)arg;
    int debug = getenv("PYGATE_DEBUG")[0] == '1';
    pygate_token outer, a, b, c;
    CHECK(!fast_open());
    CHECK_OK(pygate_enter(py.view, &outer));
    CHECK(fast_open() == inline_on);
    CHECK_OK(pygate_enter(py.view, &a));
    CHECK(fast_nested() == (unsigned)inline_on);
    CHECK(pygate_thread_depth() == 2);
    /* The exported path folds the inline count in, and opens again. */
    CHECK_OK(pygate_enter_at(py.view, &b, __FILE__, __LINE__));
    CHECK(fast_nested() == 0 && fast_open() == inline_on);
    CHECK_OK(pygate_enter(py.view, &c));
    CHECK(fast_nested() == (unsigned)inline_on);
    CHECK(pygate_thread_depth() == 4);
    CHECK(eval_long("6 * 7") == 42);
    if (!debug) {   /* out of order: refused, and nothing changes */
        CHECK_RC(pygate_leave(b), PYGATE_EUNBALANCED);
        CHECK_RC(pygate_leave(outer), PYGATE_EUNBALANCED);
        CHECK(pygate_thread_depth() == 4);
    }
    CHECK_OK(pygate_leave(c));
    if (!debug)
        CHECK_RC(pygate_leave(c), PYGATE_EUNBALANCED);   /* twice */
    CHECK_OK(pygate_leave_at(b, __FILE__, __LINE__));
    CHECK_OK(pygate_enter(py.view, &b));   /* inline once more */
    CHECK_OK(pygate_leave_at(b, __FILE__, __LINE__));
    CHECK_OK(pygate_leave(a));
    CHECK(pygate_thread_depth() == 1);
    CHECK(PyGILState_Check());
    CHECK_OK(pygate_leave(outer));
    CHECK(pygate_thread_depth() == 0);
    CHECK(PyGILState_Check() == 0);
    CHECK(!fast_open());
    /* Another view of the same interpreter takes the exported path, and
     * still only nests. */
    pygate_view *other;
    CHECK_OK(pygate_enter(py.view, &outer));
    CHECK_OK(pygate_view_from_current(&other));
    CHECK_OK(pygate_enter(other, &a));
    CHECK(fast_nested() == 0 && pygate_thread_depth() == 2);
    CHECK_OK(pygate_leave(a));
    /* A million nested pairs leave the thread as it was. */
    for (int i = 0; i < 1000000; i++) {
        CHECK_OK(pygate_enter(py.view, &a));
        CHECK_OK(pygate_leave(a));
    }
    CHECK(pygate_thread_depth() == 1 && fast_nested() == 0);
    CHECK_OK(pygate_leave(outer));
    /* A view closed inside an entry through it: refused from then on, on
     * the inline path as on the exported one. */
    CHECK_OK(pygate_enter(other, &outer));
    CHECK_OK(pygate_enter(other, &a));
    CHECK(fast_nested() == (unsigned)inline_on);
    CHECK_OK(pygate_view_close(other));
    CHECK_RC(pygate_enter(other, &b), PYGATE_EINVAL);
    CHECK_OK(pygate_enter(py.view, &b));   /* another view still enters */
    CHECK_OK(pygate_leave(b));
    CHECK_OK(pygate_leave(a));
    CHECK_OK(pygate_leave(outer));
    CHECK(pygate_thread_depth() == 0);
    return NULL;
}

static void
nested_entries_inline(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    setup();
    int inline_on = PYGATE_INLINE_NESTING;
    on_native_thread(nest_inline_and_exported, &inline_on);
    teardown();
}

/* Debug mode never opens the record: every entry is checked and sited. */
static void
nested_entries_debug_mode(void)
{
    setenv("PYGATE_DEBUG", "1", 1);
    setup();
    int inline_on = 0;
    on_native_thread(nest_inline_and_exported, &inline_on);
    teardown();
}

/* The GIL released inside an entry, in release mode (the inline path's
 * attached-state test). */
static void
gil_released_inside_entry_release_mode(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    gil_released_inside_entry();
}

/* ---- threads that already have a state ---------------------------------- */

static void
main_thread_reuses_its_state(void)
{
    setup();
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(PyThreadState_Get() == py.main_ts);
    CHECK_OK(pygate_leave(tok));
    /* Attached already: entry only nests. */
    PyEval_RestoreThread(py.main_ts);
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(PyThreadState_Get() == py.main_ts);
    CHECK_OK(pygate_leave(tok));
    CHECK(PyThreadState_Get() == py.main_ts);
    PyEval_SaveThread();
    teardown();
}

/* Called from a threading.Thread: detaches, then enters through pygate. */
static PyObject *
enter_from_python_thread(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyThreadState *own = PyThreadState_Get();
    PyThreadState *saved = PyEval_SaveThread();
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    int same = PyThreadState_Get() == own;
    CHECK_OK(pygate_leave(tok));
    PyEval_RestoreThread(saved);
    return PyBool_FromLong(same);
}

static PyMethodDef enter_def = {"enter_from_python_thread",
                                enter_from_python_thread, METH_NOARGS, NULL};

static void
python_thread_reuses_its_state(void)
{
    setup();
    PyEval_RestoreThread(py.main_ts);
    PyObject *fn = PyCFunction_New(&enter_def, NULL);
    CHECK(fn != NULL);
    CHECK(PyDict_SetItemString(PyModule_GetDict(PyImport_AddModule("__main__")),
                               "probe", fn) == 0);
    Py_DECREF(fn);
    exec_ok("import threading\n"
            "result = []\n"
            "t = threading.Thread(target=lambda: result.append(probe()))\n"
            "t.start(); t.join()\n");
    CHECK(eval_long("result == [True]") == 1);
    PyEval_SaveThread();
    teardown();
}

/* ---- exceptions stay the user's ------------------------------------------ */

static void *
raise_inside(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(eval("1/0") == NULL);
    CHECK(PyErr_ExceptionMatches(PyExc_ZeroDivisionError));
    /* Leaving would lose it: refused, nothing changes, nothing cleared. */
    CHECK_RC(pygate_leave(tok), PYGATE_EEXCEPTION);
    CHECK(PyGILState_Check());
    CHECK(PyErr_ExceptionMatches(PyExc_ZeroDivisionError));
    /* So would detaching (it waits for whatever runs after the reattach). */
    pygate_token detached;
    CHECK_RC(pygate_detach(&detached), PYGATE_EEXCEPTION);
    CHECK(PyGILState_Check() && pygate_thread_depth() == 1);
    CHECK(PyErr_ExceptionMatches(PyExc_ZeroDivisionError));
    PyErr_Clear();
    CHECK_OK(pygate_leave(tok));

    /* An inner leave does not detach, so the exception may pass outward. */
    pygate_token inner;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK_OK(pygate_enter(py.view, &inner));
    CHECK(eval("1/0") == NULL);
    CHECK_OK(pygate_leave(inner));
    CHECK(PyErr_ExceptionMatches(PyExc_ZeroDivisionError));
    PyErr_Clear();
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void
exception_stays_with_user(void)
{
    setup();
    on_native_thread(raise_inside, NULL);
    teardown();
}

/* ---- scoped forms ------------------------------------------------------- */

static int
scoped_early_return(void)
{
    int rc;
    PYGATE_ENTERED(py.view, &rc) {
        if (eval_long("2 * 21") == 42)
            return 42;   /* the scope still leaves */
    }
    return rc;
}

static volatile int other_ran;

static void *
other_python_thread(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    other_ran = 1;
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void *
scoped_blocks(void *arg)
{
    (void)arg;
    CHECK(scoped_early_return() == 42);
    CHECK(pygate_thread_depth() == 0);
    CHECK(PyGILState_Check() == 0);

    int rc, rc2 = -1;
    PYGATE_ENTERED(py.view, &rc) {
        CHECK(PyGILState_Check());
        PYGATE_DETACHED(&rc2) {
            /* Detached: another thread can run Python meanwhile. */
            CHECK(PyGILState_Check() == 0);
            on_native_thread(other_python_thread, NULL);
            CHECK(other_ran);
        }
        CHECK_OK(rc2);
        CHECK(PyGILState_Check());
        for (;;) {
            break;   /* a break inside does not skip the leave */
        }
        /* Nested scopes take the inline path (release mode, gcc/clang)
         * once an entry opened the record again after the detach. */
        int nested_rc = -1, inner_rc = -1;
        PYGATE_ENTERED(py.view, &nested_rc) {
            CHECK(pygate_thread_depth() == 2 && fast_nested() == 0);
            PYGATE_ENTERED(py.view, &inner_rc) {
                CHECK(pygate_thread_depth() == 3);
                CHECK(fast_nested() == (unsigned)(PYGATE_INLINE_NESTING
                                                  && getenv("PYGATE_DEBUG")[0]
                                                     == '0'));
            }
            CHECK(pygate_thread_depth() == 2 && fast_nested() == 0);
        }
        CHECK_OK(nested_rc);
        CHECK_OK(inner_rc);
        CHECK(pygate_thread_depth() == 1);
    }
    CHECK_OK(rc);
    CHECK(pygate_thread_depth() == 0);
    CHECK(PyGILState_Check() == 0);
    return NULL;
}

static void
scoped_forms(void)
{
    setup();
    on_native_thread(scoped_blocks, NULL);
    teardown();
}

/* ---- detach / reattach --------------------------------------------------- */

static void *
detach_and_enter_inside(void *arg)
{
    (void)arg;
    pygate_token tok, det, again;
    CHECK_OK(pygate_enter(py.view, &tok));
    PyThreadState *ts = PyThreadState_Get();
    CHECK_OK(pygate_detach(&det));
    CHECK(PyGILState_Check() == 0);
    /* Entering inside a detached stretch really attaches. */
    CHECK_OK(pygate_enter(py.view, &again));
    CHECK(PyThreadState_Get() == ts);
    CHECK_OK(pygate_leave(again));
    CHECK(PyGILState_Check() == 0);
    CHECK_OK(pygate_reattach(det));
    CHECK(PyThreadState_Get() == ts);
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void
detach_reattach(void)
{
    setup();
    on_native_thread(detach_and_enter_inside, NULL);
    teardown();
}

static const scenario scenarios[] = {
    {"same_tstate_across_entries", same_tstate_across_entries},
    {"nesting", nesting},
    {"threading_local_persists", threading_local_persists},
    {"gilstate_from_pygate", gilstate_from_pygate},
    {"gilstate_into_pygate", gilstate_into_pygate},
    {"gil_released_inside_entry", gil_released_inside_entry},
    {"gil_released_inside_entry_release_mode",
     gil_released_inside_entry_release_mode},
    {"nested_entries_inline", nested_entries_inline},
    {"nested_entries_debug_mode", nested_entries_debug_mode},
    {"main_thread_reuses_its_state", main_thread_reuses_its_state},
    {"python_thread_reuses_its_state", python_thread_reuses_its_state},
    {"exception_stays_with_user", exception_stays_with_user},
    {"scoped_forms", scoped_forms},
    {"detach_reattach", detach_reattach},
    {"foreign_gilstate_reuses_kept_state", foreign_gilstate_reuses_kept_state},
    {"cython_callback_reuses_kept_state", cython_callback_reuses_kept_state},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
