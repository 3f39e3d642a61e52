/*
 * test_lifecycle.c - thread exit, and threads around Py_FinalizeEx.
 */
#include "harness.h"

#include <time.h>

static harness_python py;

static PyObject *body;   /* what each short-lived thread calls */

static void
start(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("def churn_body():\n    return [1, 2, 3]\n");
    body = eval("churn_body");
    CHECK(body != NULL);
    PyEval_SaveThread();
}

static int
main_state_count(void)
{
    PyEval_RestoreThread(py.main_ts);
    int n = count_thread_states(PyInterpreterState_Main());
    PyEval_SaveThread();
    return n;
}

/* ---- 100,000 short-lived threads ----------------------------------------- */

/* Each thread calls a Python function (its frame stack is used too).
 * Not code compiled on each thread: free-threaded CPython 3.14 keeps
 * memory for every thread that compiled code (measured without pygate:
 * 0.65 KiB a thread, PyGILState_Ensure, PyRun_String, Release), which
 * would hide what this test looks for. */
static void *
enter_once(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    PyObject *r = PyObject_CallObject(body, NULL);
    CHECK(r != NULL);
    Py_DECREF(r);
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void
churn(long threads)
{
    for (long i = 0; i < threads; i++)
        on_native_thread(enter_once, NULL);
}

static void
thread_exit_frees_states(void)
{
    start();
    /* A CPython itself built with TSan (make tsan-ft) keeps about 240 bytes
     * of TSan's per thread, pygate or not (measured on 3.14.7t: 248 bytes
     * a thread for PyGILState_Ensure, a call and Release on fresh threads
     * without pygate); there only the count of states is checked. */
    PyEval_RestoreThread(py.main_ts);
    int python_under_tsan = eval_long(
        "'--with-thread-sanitizer' in"
        " (__import__('sysconfig').get_config_var('CONFIG_ARGS') or '')") != 0;
    PyEval_SaveThread();
    /* The sanitizers make each thread 5x (ASan) to 10x (TSan: 229 s of the
     * 300 s bound for 100,000) slower. */
    long total = UNDER_ASAN || UNDER_TSAN ? 20000 : 100000;
    const char *env = getenv("PYGATE_CHURN_THREADS");
    if (env != NULL)
        total = atol(env);
    /* Warm up allocator caches first.  Under valgrind, valgrind's own
     * memory grows over the first tens of thousands of threads, then stays
     * (measured with 3.11: +30 MiB from thread 2,000 to 20,000, +88 KiB
     * from 20,000 to 200,000), so it warms up over half of them. */
#ifdef PYGATE_VALGRIND
    long warm_up = total / 2;
#else
    long warm_up = total / 10;
#endif
    int before = main_state_count();
    churn(warm_up);
    long rss_warm = rss_kib();
    churn(total - warm_up);
    long rss_end = rss_kib();
    int after = main_state_count();
    printf("%ld threads: thread states %d -> %d, RSS %ld KiB -> %ld KiB\n",
           total, before, after, rss_warm, rss_end);
    CHECK(after == before);
#if UNDER_ASAN
    printf("RSS not checked: ASan's quarantine keeps freed memory\n");
    (void)python_under_tsan;
#else
    /* A leaked thread state costs hundreds of bytes to tens of KiB; 90,000
     * of them would be tens of MiB.  Allow 4 MiB of allocator noise. */
    if (python_under_tsan)
        printf("RSS not checked: CPython itself runs under TSan\n");
    else
        CHECK(rss_end - rss_warm < 4096);
#endif
    CHECK_OK(pygate_view_close(py.view));
    PyEval_RestoreThread(py.main_ts);
    Py_DECREF(body);
    CHECK(Py_FinalizeEx() == 0);
}

/* ---- a thread that ends inside entries ---------------------------------- */

static void
stop_python(void)
{
    harness_stop(&py);
}

/* Each returns without leaving (an error path that forgot pygate_leave). */
static void *
end_inside_nested_entries(void *arg)
{
    (void)arg;
    pygate_token outer, inner;
    CHECK_OK(pygate_enter(py.view, &outer));
    CHECK_OK(pygate_enter(py.view, &inner));
    PyErr_SetString(PyExc_RuntimeError, "left set by an ended thread");
    return NULL;
}

static void *
end_inside_a_detach(void *arg)
{
    (void)arg;
    pygate_token tok, detached;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK_OK(pygate_detach(&detached));
    return NULL;
}

static void *
end_inside_entry_in_detach(void *arg)
{
    (void)arg;
    pygate_token outer, detached, inner;
    CHECK_OK(pygate_enter(py.view, &outer));
    CHECK_OK(pygate_detach(&detached));
    CHECK_OK(pygate_enter(py.view, &inner));
    return NULL;
}

/* The GIL, the guards and the thread states of a thread that ended inside
 * entries go back at its exit: other threads enter, the exception it left
 * is reported, and shutdown does not wait for it. */
static void
thread_ends_inside_entries(void)
{
    start();
    alarm(120);   /* a wedged process fails here, not at ctest's bound */
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    record_unraisable();
    int before = count_thread_states(PyInterpreterState_Main());
    CHECK_OK(pygate_leave(tok));
    void *(*const ends[])(void *) = {end_inside_nested_entries,
                                     end_inside_a_detach,
                                     end_inside_entry_in_detach};
    for (int round = 0; round < 20; round++) {
        on_native_thread(ends[round % 3], NULL);
        on_native_thread(enter_once, NULL);
    }
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK(count_thread_states(PyInterpreterState_Main()) == before);
    CHECK(eval_long("len(unraisable)") == 7);
    CHECK(eval_long("unraisable.count('left set by an ended thread')") == 7);
    CHECK_OK(pygate_leave(tok));
    /* A guard left held would make shutdown wait, and say so. */
    CHECK_OK(pygate_set_drain_limits(0.1, -1));
    const char *err = capture_stderr(stop_python);
    CHECK(strstr(err, "has waited") == NULL);
    printf("20 threads ended inside entries; shutdown waited for none\n");
}

/* ---- explicit release ---------------------------------------------------- */

static int count_inside;

static void *
release_early(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    count_inside = count_thread_states(PyInterpreterState_Main());
    CHECK_OK(pygate_leave(tok));
    CHECK_OK(pygate_thread_release());
    CHECK(PyGILState_GetThisThreadState() == NULL);
    CHECK_OK(pygate_enter(py.view, &tok));   /* a fresh state */
    CHECK(count_thread_states(PyInterpreterState_Main()) == count_inside);
    CHECK_OK(pygate_leave(tok));
    CHECK_OK(pygate_thread_release());
    CHECK_OK(pygate_thread_release());    /* nothing left: still fine */
    return NULL;
}

static void
explicit_release(void)
{
    start();
    int before = main_state_count();
    on_native_thread(release_early, NULL);
    CHECK(count_inside == before + 1);
    CHECK(main_state_count() == before);
    CHECK_OK(pygate_view_close(py.view));
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
}

/* ---- the main thread finalizes from inside nested entries ---------------- */

/* Nested entries counted inline (pygate.h) when the thread that holds them
 * finalizes the interpreter and starts Python again: an entry through the
 * old view is refused, though the new main state is the old one's address
 * (the hook closed the thread's fast record), and the open ones leave. */
static void
finalize_inside_nested_entries(void)
{
    py = harness_start();
    pygate_token outer, nested[3], late;
    CHECK_OK(pygate_enter(py.view, &outer));
    for (int i = 0; i < 3; i++)
        CHECK_OK(pygate_enter(py.view, &nested[i]));
    CHECK(pygate_thread_depth() == 4);
    CHECK(Py_FinalizeEx() == 0);
    Py_InitializeEx(0);   /* on 3.12+ the same main state, at one address */
    CHECK(pygate_enter(py.view, &late) < 0);
    CHECK(pygate_thread_depth() == 4);
    for (int i = 2; i >= 0; i--)
        CHECK_OK(pygate_leave(nested[i]));
    CHECK_OK(pygate_leave(outer));
    CHECK(pygate_thread_depth() == 0);
    CHECK(PyGILState_Check());   /* the new Python's main state */
    CHECK_OK(pygate_view_close(py.view));
    CHECK(Py_FinalizeEx() == 0);
}

/* ---- threads with cached states outlive the interpreter ----------------- */

#define SLEEPERS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ready, finalized;

static void *
cache_then_wait(void *arg)
{
    (void)arg;
    enter_once(NULL);
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_broadcast(&cond);
    while (!finalized)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    /* The interpreter is gone: a clean error, then a clean thread exit
     * that must not touch the freed state (ASan checks). */
    pygate_token tok;
    CHECK_RC(pygate_enter(py.view, &tok), PYGATE_EGONE);
    CHECK(pygate_thread_depth() == 0);
    return NULL;
}

static void *
first_entry_after_finalize(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_RC(pygate_enter(py.view, &tok), PYGATE_EGONE);
    return NULL;
}

static void
threads_outlive_interpreter(void)
{
    start();
    pthread_t th[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        CHECK(pthread_create(&th[i], NULL, cache_then_wait, NULL) == 0);
    pthread_mutex_lock(&lock);
    while (ready < SLEEPERS)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);   /* plain: the host calls no pygate */

    pthread_mutex_lock(&lock);
    finalized = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < SLEEPERS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    on_native_thread(first_entry_after_finalize, NULL);
    CHECK_OK(pygate_view_close(py.view));
}

/* ---- shutdown waits for an entry in flight ------------------------------- */

static _Atomic int inflight_started;
static _Atomic int inflight_python_done;   /* set inside the entry */
static _Atomic int inflight_leave_rc = 1;

static void *
long_call(void *arg)
{
    (void)arg;
    /* The first entry creates the thread's cached state; the one in flight
     * is then the fast path's (a local guard, where membarrier exists). */
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK_OK(pygate_leave(tok));
    CHECK_OK(pygate_enter(py.view, &tok));
    inflight_started = 1;
    /* time.sleep releases the GIL: Py_FinalizeEx starts meanwhile. */
    exec_ok("import time\ntime.sleep(0.5)\n");
    inflight_python_done = 1;   /* before the leave releases the guard */
    inflight_leave_rc = pygate_leave(tok);
    return NULL;
}

static volatile int hammer_result;

/* Enters and leaves until refused; the refusal must be a clean code. */
static void *
hammer(void *arg)
{
    (void)arg;
    for (;;) {
        pygate_token tok;
        int rc = pygate_enter(py.view, &tok);
        if (rc != PYGATE_OK) {
            hammer_result = rc;
            return NULL;
        }
        PyObject *r = eval("1 + 1");
        CHECK(r != NULL);
        Py_DECREF(r);
        CHECK_OK(pygate_leave(tok));
    }
}

static void
finalize_waits_for_entries(void)
{
    start();
    pthread_t slow, busy;
    CHECK(pthread_create(&slow, NULL, long_call, NULL) == 0);
    CHECK(pthread_create(&busy, NULL, hammer, NULL) == 0);
    while (!inflight_started)
        usleep(1000);
    double started_at = now_seconds();
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    /* The entry in flight finished its Python work before finalization
     * went on (the hook waited for it), and its leave succeeded. */
    CHECK(inflight_python_done);
    printf("Py_FinalizeEx took %.3f s with a 0.5 s call in flight\n",
           now_seconds() - started_at);
    CHECK(pthread_join(slow, NULL) == 0);
    CHECK_OK(inflight_leave_rc);
    CHECK(pthread_join(busy, NULL) == 0);
    CHECK(hammer_result == PYGATE_EFINALIZING || hammer_result == PYGATE_EGONE);
    printf("busy thread stopped with %s\n", pygate_err_name(hammer_result));
    CHECK_OK(pygate_view_close(py.view));
}

/* The same with every guard shared (no membarrier). */
static void
finalize_waits_for_shared_guards(void)
{
    setenv("PYGATE_NO_MEMBARRIER", "1", 1);
    finalize_waits_for_entries();
}

static const scenario scenarios[] = {
    {"thread_exit_frees_states", thread_exit_frees_states},
    {"explicit_release", explicit_release},
    {"finalize_inside_nested_entries", finalize_inside_nested_entries},
    {"thread_ends_inside_entries", thread_ends_inside_entries},
    {"threads_outlive_interpreter", threads_outlive_interpreter},
    {"finalize_waits_for_entries", finalize_waits_for_entries},
    {"finalize_waits_for_shared_guards", finalize_waits_for_shared_guards},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
