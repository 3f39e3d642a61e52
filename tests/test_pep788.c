/*
 * test_pep788.c - a program written only against PEP 788's names (and
 * CPython's own API to start and stop Python), checking the semantics the
 * PEP documents, on every CPython from 3.8.
 */
#include "harness.h"
#include <pygate/pep788.h>

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

static const scenario scenarios[] = {
    {"ensure_and_release", ensure_and_release},
    {"guard_holds_finalization", guard_holds_finalization},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
