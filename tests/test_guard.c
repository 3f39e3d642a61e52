/*
 * test_guard.c - explicit guards: they hold shutdown back, they cannot be
 * taken once shutdown began, and the wait for them is bounded and loud.
 */
#include "harness.h"

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

/* Reads what pygate printed on stderr during fn(). */
static char *
capture_stderr(void (*fn)(void))
{
    static char text[8192];
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL && saved >= 0);
    CHECK(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    CHECK(dup2(saved, 2) >= 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    fputs(text, stderr);   /* keep it in the test log too */
    return text;
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

static const scenario scenarios[] = {
    {"guard_codes", guard_codes},
    {"guard_holds_shutdown", guard_holds_shutdown},
    {"drain_gives_up_and_reports", drain_gives_up_and_reports},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
