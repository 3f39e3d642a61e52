/*
 * test_guard.c - explicit guards: they hold shutdown back, they cannot be
 * taken once shutdown began, and the wait for them is bounded and loud.
 */
#include "harness.h"

#include <signal.h>
#include <stdatomic.h>

static harness_python py;

/* ---- the API's answers --------------------------------------------------- */

static void
guard_codes(void)
{
    pygate_guard *g = NULL, *g2 = NULL;
    CHECK_RC(pygate_guard_from_view(NULL, &g), PYGATE_EINVAL);
    CHECK_RC(pygate_guard_close(NULL), PYGATE_EINVAL);
    CHECK(pygate_guard_id(NULL) == PYGATE_EINVAL);
    py = harness_start();
    CHECK_RC(pygate_guard_from_view(py.view, NULL), PYGATE_EINVAL);
    CHECK_RC(pygate_guard_from_current(&g), PYGATE_ENOTATTACHED);
    CHECK_OK(pygate_guard_from_view(py.view, &g));
    CHECK(pygate_guard_id(g) == pygate_view_id(py.view));

    PyEval_RestoreThread(py.main_ts);
    CHECK_OK(pygate_guard_from_current(&g2));
    CHECK(pygate_guard_id(g2) == 0);
    PyEval_SaveThread();

    /* A guarded entry from a thread that holds g. */
    pygate_token tok;
    CHECK_OK(pygate_enter_guarded(g, &tok));
    CHECK(eval_long("6 * 7") == 42);
    CHECK_OK(pygate_leave(tok));
    CHECK_RC(pygate_enter_guarded(NULL, &tok), PYGATE_EINVAL);

    CHECK_OK(pygate_guard_close(g2));
    CHECK_OK(pygate_guard_close(g));

    /* A view kept past finalization: no guard, and a clear code. */
    pygate_view *kept = main_view(py.main_ts);
    harness_stop(&py);
    g = NULL;
    CHECK_RC(pygate_guard_from_view(kept, &g), PYGATE_EGONE);
    CHECK(g == NULL);
    CHECK_OK(pygate_view_close(kept));
}

/* ---- a guard holds a shutdown on another thread back --------------------- */

static _Atomic int shutdown_done;
static _Atomic int shutdown_rc = 1;

static void *
shut_down(void *arg)
{
    (void)arg;
    shutdown_rc = pygate_host_shutdown();
    shutdown_done = 1;
    return NULL;
}

/* Takes and drops guards until shutdown refuses one: then it has begun. */
static int
wait_for_shutdown_to_begin(pygate_view *view)
{
    for (int i = 0; i < 10000; i++) {
        pygate_guard *probe;
        int rc = pygate_guard_from_view(view, &probe);
        if (rc != PYGATE_OK)
            return rc;
        CHECK_OK(pygate_guard_close(probe));
        usleep(1000);
    }
    return PYGATE_OK;
}

static void
guard_holds_shutdown(void)
{
    setenv("PYGATE_DEBUG", "0", 0);
    CHECK_OK(pygate_host_init(NULL));
    pygate_view *view;
    CHECK_OK(pygate_view_from_main(&view));
    pygate_guard *guard;
    CHECK_OK(pygate_guard_from_view(view, &guard));

    pthread_t th;
    CHECK(pthread_create(&th, NULL, shut_down, NULL) == 0);
    CHECK_RC(wait_for_shutdown_to_begin(view), PYGATE_EFINALIZING);
    pygate_token tok;
    CHECK_RC(pygate_enter(view, &tok), PYGATE_EFINALIZING);

    /* Shutdown is waiting for us: the guard still lets us run Python. */
    usleep(300 * 1000);
    CHECK(!shutdown_done);
    CHECK_OK(pygate_enter_guarded(guard, &tok));
    CHECK(eval_long("sum(range(10))") == 45);
    CHECK_OK(pygate_leave(tok));
    CHECK(!shutdown_done);

    double closed_at = now_seconds();
    CHECK_OK(pygate_guard_close(guard));
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_OK(shutdown_rc);
    printf("shutdown finished %.3f s after the guard was closed\n",
           now_seconds() - closed_at);
    CHECK(!Py_IsInitialized());
    CHECK_RC(pygate_guard_from_view(view, &guard), PYGATE_EGONE);
    CHECK_OK(pygate_view_close(view));
}

/* ---- the bound on the wait ------------------------------------------------ */

static void *
take_guard_and_keep_it(void *arg)
{
    pygate_guard *guard;
    CHECK_OK(pygate_guard_from_view((pygate_view *)arg, &guard));
    return NULL;   /* never closed: a bug in the host */
}

static double finalize_seconds;

static void
finalize_timed(void)
{
    double t0 = now_seconds();
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    finalize_seconds = now_seconds() - t0;
}

static void
drain_gives_up_and_reports(void)
{
    setenv("PYGATE_DEBUG", "1", 1);   /* the report lists guard sites */
    CHECK_RC(pygate_set_drain_limits(0, -1), PYGATE_EINVAL);
    CHECK_RC(pygate_set_drain_limits(1, 1e9), PYGATE_EINVAL);
    CHECK_OK(pygate_set_drain_limits(0.1, 0.5));
    py = harness_start();
    on_native_thread(take_guard_and_keep_it, py.view);
    const char *err = capture_stderr(finalize_timed);
    printf("Py_FinalizeEx gave up after %.3f s\n", finalize_seconds);
    CHECK(finalize_seconds >= 0.5 && finalize_seconds < 5);
    CHECK(strstr(err, "waiting") != NULL || strstr(err, "waited") != NULL);
    CHECK(strstr(err, "for 1 native") != NULL);
    CHECK(strstr(err, "guard taken at ") != NULL);
    CHECK(strstr(err, "test_guard.c:") != NULL);
    CHECK(strstr(err, "giving up") != NULL);
    CHECK_OK(pygate_view_close(py.view));
}

/* ---- Ctrl-C while shutdown waits ----------------------------------------- */

/* Python with its signal handlers, as the python executable has them. */
static harness_python
start_with_signal_handlers(void)
{
    Py_InitializeEx(1);
    CHECK(Py_IsInitialized());
    harness_python p;
    p.main_ts = PyEval_SaveThread();
    p.view = main_view(p.main_ts);
    return p;
}

static void
finalize_with_ctrl_c(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, interrupt_soon, NULL) == 0);
    finalize_timed();
    CHECK(pthread_join(th, NULL) == 0);
}

/* Python's default SIGINT handler raises KeyboardInterrupt: the wait ends
 * as after give_up_after, with the report. */
static void
ctrl_c_ends_shutdown_wait(void)
{
    py = start_with_signal_handlers();
    on_native_thread(take_guard_and_keep_it, py.view);
    const char *err = capture_stderr(finalize_with_ctrl_c);
    printf("Py_FinalizeEx returned %.3f s after it began\n",
           finalize_seconds);
    CHECK(finalize_seconds >= 0.4 && finalize_seconds < 5);
    CHECK(strstr(err, "KeyboardInterrupt while shutdown waited") != NULL);
    CHECK(strstr(err, "for 1 native") != NULL);
    CHECK(strstr(err, "giving up") != NULL);
    CHECK_OK(pygate_view_close(py.view));
}

/* A guard released a moment after the first signal was seen. */
static _Atomic int signals_seen;
static _Atomic double released_at;
static _Atomic int guard_taken;

static void *
keep_guard_until_signal(void *arg)
{
    pygate_guard *guard;
    CHECK_OK(pygate_guard_from_view((pygate_view *)arg, &guard));
    atomic_store(&guard_taken, 1);
    while (atomic_load(&signals_seen) == 0)
        usleep(1000);
    usleep(300 * 1000);
    atomic_store(&released_at, now_seconds());
    CHECK_OK(pygate_guard_close(guard));
    return NULL;
}

/* Checks that shutdown waited for the guard, through the signal, until it
 * was released, and did not give up. */
static void
finalize_waits_through_signal(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, keep_guard_until_signal, py.view) == 0);
    while (!atomic_load(&guard_taken))
        usleep(1000);
    const char *err = capture_stderr(finalize_with_ctrl_c);
    CHECK(pthread_join(th, NULL) == 0);
    double returned_at = now_seconds();
    printf("%d signal(s) seen; Py_FinalizeEx returned %.3f s after the"
           " guard was released\n", atomic_load(&signals_seen),
           returned_at - atomic_load(&released_at));
    CHECK(atomic_load(&signals_seen) >= 1);
    CHECK(atomic_load(&released_at) > 0);
    CHECK(strstr(err, "giving up") == NULL);
    CHECK(strstr(err, "while shutdown waited") == NULL);
    CHECK_OK(pygate_view_close(py.view));
}

static PyObject *
note_signal(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    atomic_fetch_add(&signals_seen, 1);
    Py_RETURN_NONE;
}

static PyMethodDef note_signal_def = {"note_signal", note_signal,
                                      METH_VARARGS, NULL};

/* A Python SIGINT handler that returns quietly asks for nothing: pygate
 * runs it while waiting (or it would never run: the guard's thread waits
 * for it) and keeps waiting. */
static void
quiet_python_handler_keeps_waiting(void)
{
    py = start_with_signal_handlers();
    PyEval_RestoreThread(py.main_ts);
    PyObject *fn = PyCFunction_New(&note_signal_def, NULL);
    CHECK(fn != NULL);
    CHECK(PyModule_AddObject(PyImport_AddModule("__main__"), "note_signal",
                             fn) == 0);
    exec_ok("import signal\nsignal.signal(signal.SIGINT, note_signal)\n");
    PyEval_SaveThread();
    finalize_waits_through_signal();
}

static void
host_signal_handler(int signum)
{
    (void)signum;
    atomic_fetch_add(&signals_seen, 1);
}

/* A host that installed no Python signal handlers keeps its own: SIGINT
 * goes to the host's handler, and shutdown keeps waiting. */
static void
host_handler_keeps_waiting(void)
{
    py = harness_start();   /* Py_InitializeEx(0) */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = host_signal_handler;
    CHECK(sigaction(SIGINT, &action, NULL) == 0);
    finalize_waits_through_signal();
}

static const scenario scenarios[] = {
    {"guard_codes", guard_codes},
    {"guard_holds_shutdown", guard_holds_shutdown},
    {"drain_gives_up_and_reports", drain_gives_up_and_reports},
    {"ctrl_c_ends_shutdown_wait", ctrl_c_ends_shutdown_wait},
    {"quiet_python_handler_keeps_waiting", quiet_python_handler_keeps_waiting},
    {"host_handler_keeps_waiting", host_handler_keeps_waiting},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
