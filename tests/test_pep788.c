/*
 * test_pep788.c - a program written only against PEP 788's names (and
 * CPython's own API to start and stop Python), checking the semantics the
 * PEP documents, on every CPython from 3.8 (pygate's implementations,
 * 3.15 included), and on 3.15 beside CPython's own implementation.
 */
#include "harness.h"
/* pygate/pep788.h comes with -include (tests/CMakeLists.txt), the way a
 * program written only against PEP 788's names picks pygate up. */
#ifndef PYGATE_PEP788_H
#error "built without -include pygate/pep788.h"
#endif

#include <stdatomic.h>

static PyThreadState *main_ts;

/* ---- views, Ensure/Release, nesting, kept states ------------------------- */

static void *
native_thread_uses_pep788(void *arg)
{
    (void)arg;
    /* The first view of the main interpreter, from a thread that never
     * had a thread state: PEP 788 allows it without one. */
    PyInterpreterView *view = PyInterpreterView_FromMain();
    CHECK(view != NULL);

    PyThreadStateToken *outer = PyThreadState_EnsureFromView(view);
    CHECK(outer != NULL);
    PyThreadState *ts = PyThreadState_Get();
    PyThreadStateToken *inner = PyThreadState_EnsureFromView(view);
    CHECK(inner != NULL);
    CHECK(PyThreadState_Get() == ts);   /* nested: same state */
    CHECK(eval_long("2 ** 10") == 1024);
    PyThreadState_Release(inner);
    CHECK(PyThreadState_Get() == ts);   /* still attached */
    PyThreadState_Release(outer);

    /* The next outermost Ensure reuses the state: none is made per call
     * (CPython 3.15's own Ensure deletes it at the outermost Release). */
    outer = PyThreadState_EnsureFromView(view);
    CHECK(outer != NULL);
    CHECK(PyThreadState_Get() == ts);
    PyThreadState_Release(outer);

    /* Through a guard. */
    PyInterpreterGuard *guard = PyInterpreterGuard_FromView(view);
    CHECK(guard != NULL);
    PyThreadStateToken *tok = PyThreadState_Ensure(guard);
    CHECK(tok != NULL);
    CHECK(eval_long("len('pep')") == 3);

    /* An exception left at Release is reported, not carried into the
     * next call (see pygate/pep788.h). */
    PyErr_SetString(PyExc_ValueError, "left behind on purpose");
    PyThreadState_Release(tok);
    tok = PyThreadState_Ensure(guard);
    CHECK(tok != NULL);
    CHECK(!PyErr_Occurred());
    PyThreadState_Release(tok);
    PyInterpreterGuard_Close(guard);
    PyInterpreterView_Close(view);
    return NULL;
}

static void
ensure_and_release(void)
{
    setenv("PYGATE_DEBUG", "0", 0);
    main_ts = start_python();
    PyEval_RestoreThread(main_ts);
    exec_ok("import sys\n"
            "reported = []\n"
            "sys.unraisablehook = lambda u: reported.append(u.exc_type)\n");
    PyEval_SaveThread();
    on_native_thread(native_thread_uses_pep788, NULL);

    PyEval_RestoreThread(main_ts);
    CHECK(eval_long("reported == [ValueError]") == 1);
    PyInterpreterView *view = PyInterpreterView_FromCurrent();
    PyInterpreterGuard *guard = PyInterpreterGuard_FromCurrent();
    CHECK(view != NULL && guard != NULL);
    /* Ensure on an attached thread of the same interpreter: no switch. */
    PyThreadStateToken *tok = PyThreadState_Ensure(guard);
    CHECK(tok != NULL && PyThreadState_Get() == main_ts);
    PyThreadState_Release(tok);
    CHECK(PyThreadState_Get() == main_ts);
    PyInterpreterGuard_Close(guard);
    PyInterpreterView_Close(view);
    CHECK(Py_FinalizeEx() == 0);
}

/* ---- a guard holds finalization back ------------------------------------- */

static PyInterpreterView *shared_view;
static _Atomic int finalize_returned, guard_closed_first = -1;

static void *
hold_finalization(void *arg)
{
    (void)arg;
    PyInterpreterGuard *guard = PyInterpreterGuard_FromView(shared_view);
    CHECK(guard != NULL);
    /* Wait until finalization has begun: new guards are refused. */
    for (;;) {
        PyInterpreterGuard *probe = PyInterpreterGuard_FromView(shared_view);
        if (probe == NULL)
            break;
        PyInterpreterGuard_Close(probe);
        usleep(1000);
    }
    CHECK(PyThreadState_EnsureFromView(shared_view) == NULL);
    usleep(200 * 1000);
    /* Finalization waits for us, and our guard still lets us in. */
    PyThreadStateToken *tok = PyThreadState_Ensure(guard);
    CHECK(tok != NULL);
    CHECK(eval_long("7 * 6") == 42);
    PyThreadState_Release(tok);
    guard_closed_first = !finalize_returned;
    PyInterpreterGuard_Close(guard);
    return NULL;
}

static void
guard_holds_finalization(void)
{
    setenv("PYGATE_DEBUG", "0", 0);
    main_ts = start_python();
    PyEval_RestoreThread(main_ts);
    shared_view = PyInterpreterView_FromCurrent();
    CHECK(shared_view != NULL);
    PyEval_SaveThread();

    pthread_t th;
    CHECK(pthread_create(&th, NULL, hold_finalization, NULL) == 0);
    usleep(50 * 1000);
    PyEval_RestoreThread(main_ts);
    CHECK(Py_FinalizeEx() == 0);
    finalize_returned = 1;
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(guard_closed_first == 1);

    /* After finalization: every way in says NULL, nothing crashes. */
    CHECK(PyInterpreterGuard_FromView(shared_view) == NULL);
    CHECK(PyThreadState_EnsureFromView(shared_view) == NULL);
    CHECK(PyInterpreterView_FromMain() == NULL);
    PyInterpreterView_Close(shared_view);
}

/* ---- beside CPython 3.15's own PEP 788 ----------------------------------- */

#if PY_VERSION_HEX >= 0x030F0000
/* CPython's own functions, under names of this file (pygate/pep788.h maps
 * the PEP's names to pygate's). */
#pragma push_macro("PyInterpreterView_FromMain")
#pragma push_macro("PyInterpreterView_Close")
#pragma push_macro("PyInterpreterGuard_FromView")
#pragma push_macro("PyInterpreterGuard_Close")
#pragma push_macro("PyThreadState_Ensure")
#pragma push_macro("PyThreadState_Release")
#undef PyInterpreterView_FromMain
#undef PyInterpreterView_Close
#undef PyInterpreterGuard_FromView
#undef PyInterpreterGuard_Close
#undef PyThreadState_Ensure
#undef PyThreadState_Release
static PyInterpreterView *cpython_view_from_main(void) { return PyInterpreterView_FromMain(); }
static void cpython_view_close(PyInterpreterView *v) { PyInterpreterView_Close(v); }
static PyInterpreterGuard *cpython_guard_from_view(PyInterpreterView *v) { return PyInterpreterGuard_FromView(v); }
static void cpython_guard_close(PyInterpreterGuard *g) { PyInterpreterGuard_Close(g); }
static PyThreadStateToken *cpython_ensure(PyInterpreterGuard *g) { return PyThreadState_Ensure(g); }
static void cpython_release(PyThreadStateToken *t) { PyThreadState_Release(t); }
#pragma pop_macro("PyInterpreterView_FromMain")
#pragma pop_macro("PyInterpreterView_Close")
#pragma pop_macro("PyInterpreterGuard_FromView")
#pragma pop_macro("PyInterpreterGuard_Close")
#pragma pop_macro("PyThreadState_Ensure")
#pragma pop_macro("PyThreadState_Release")

static PyInterpreterView *cpython_view;
static _Atomic int stop_entering, pygate_calls, cpython_guard_closed;
static _Atomic int finalize_done;

/* Enters through pygate's names until shutdown refuses. */
static void *
enter_through_pygate(void *arg)
{
    PyInterpreterView *view = (PyInterpreterView *)arg;
    for (;;) {
        PyThreadStateToken *tok = PyThreadState_EnsureFromView(view);
        if (tok == NULL)
            break;   /* pygate's hook closed the gate */
        CHECK(eval_long("3 + 4") == 7);
        pygate_calls++;
        PyThreadState_Release(tok);
    }
    return NULL;
}

/* Holds one of CPython's own guards across the start of finalization,
 * enters with it, then closes it: CPython's wait must see it closed. */
static void *
hold_cpython_guard(void *arg)
{
    (void)arg;
    PyInterpreterGuard *guard = cpython_guard_from_view(cpython_view);
    CHECK(guard != NULL);
    while (!stop_entering)
        usleep(1000);
    usleep(200 * 1000);
    PyThreadStateToken *tok = cpython_ensure(guard);
    CHECK(tok != NULL);
    CHECK(eval_long("6 * 7") == 42);
    cpython_release(tok);
    CHECK(!finalize_done);
    cpython_guard_closed = 1;
    cpython_guard_close(guard);
    return NULL;
}
#endif

static void
beside_cpython_pep788(void)
{
#if PY_VERSION_HEX >= 0x030F0000
    setenv("PYGATE_DEBUG", "0", 0);
    main_ts = start_python();
    PyEval_RestoreThread(main_ts);
    PyInterpreterView *view = PyInterpreterView_FromCurrent();   /* pygate's */
    cpython_view = cpython_view_from_main();                     /* CPython's */
    CHECK(view != NULL && cpython_view != NULL);
    PyEval_SaveThread();

    enum { N = 4 };
    pthread_t th[N], holder;
    CHECK(pthread_create(&holder, NULL, hold_cpython_guard, NULL) == 0);
    for (int i = 0; i < N; i++)
        CHECK(pthread_create(&th[i], NULL, enter_through_pygate, view) == 0);
    while (pygate_calls < 1000)
        usleep(1000);
    stop_entering = 1;
    PyEval_RestoreThread(main_ts);
    CHECK(Py_FinalizeEx() == 0);   /* pygate drains; CPython waits */
    finalize_done = 1;
    CHECK(cpython_guard_closed);
    for (int i = 0; i < N; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(pthread_join(holder, NULL) == 0);
    printf("%d calls through pygate; finalization waited for CPython's guard\n",
           (int)pygate_calls);
    PyInterpreterView_Close(view);
    cpython_view_close(cpython_view);
#else
    printf("skipped: CPython's own PEP 788 exists from 3.15\n");
    exit(77);
#endif
}

static const scenario scenarios[] = {
    {"ensure_and_release", ensure_and_release},
    {"guard_holds_finalization", guard_holds_finalization},
    {"beside_cpython_pep788", beside_cpython_pep788},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
