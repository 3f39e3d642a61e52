/*
 * test_pool.c - worker pools: results, exceptions never lost, batching
 * that lets Python threads run, closing and shutdown that end every job.
 */
#include "harness.h"

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>

#define SKIP 77   /* ctest SKIP_RETURN_CODE */

/* pool_life.c: closes a pool and gives its final counts (submitted,
 * completed, cancelled), which a closed handle no longer answers. */
int pygate__pool_close_counting(pygate_pool *pool, uint64_t counts[3]);

static harness_python py;

/* ---- jobs --------------------------------------------------------------- */

/* Returns 2 * (long)arg, computed by Python. */
static int
double_it(void *arg)
{
    PyObject *n = PyLong_FromLong((long)(intptr_t)arg);
    PyObject *r = n == NULL ? NULL : PyNumber_Add(n, n);
    long v = r != NULL ? PyLong_AsLong(r) : -1;
    Py_XDECREF(r);
    Py_XDECREF(n);
    return (int)v;
}

/* Raises ValueError("job <arg>") and returns 7. */
static int
raise_value_error(void *arg)
{
    PyErr_Format(PyExc_ValueError, "job %ld", (long)(intptr_t)arg);
    return 7;
}

static _Atomic long slow_ran;

/* Sleeps a millisecond with the GIL released. */
static int
slow(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    usleep(1000);
    Py_END_ALLOW_THREADS
    atomic_fetch_add(&slow_ran, 1);
    return 0;
}

static _Atomic long tiny_ran;

static int
tiny(void *arg)
{
    (void)arg;
    atomic_fetch_add(&tiny_ran, 1);
    return 0;
}

static _Atomic long busy_ran;

/* Holds the GIL for 20 us of native work (no bytecode runs, so CPython
 * never asks it to let go). */
static int
busy_20us(void *arg)
{
    (void)arg;
    spin_for(20e-6);
    atomic_fetch_add(&busy_ran, 1);
    return 0;
}

static pygate_pool *self_pool;
static _Atomic int close_from_job_rc = 1;

static int
close_own_pool(void *arg)
{
    (void)arg;
    atomic_store(&close_from_job_rc, pygate_pool_close(self_pool));
    return 0;
}

static void
expect_counts(pygate_pool *pool, uint64_t submitted, uint64_t completed,
              uint64_t cancelled)
{
    uint64_t s, c, x;
    CHECK_OK(pygate_pool_counts(pool, &s, &c, &x));
    if (s != submitted || c != completed || x != cancelled)
        fprintf(stderr, "counts %llu/%llu/%llu, wanted %llu/%llu/%llu\n",
                (unsigned long long)s, (unsigned long long)c,
                (unsigned long long)x, (unsigned long long)submitted,
                (unsigned long long)completed, (unsigned long long)cancelled);
    CHECK(s == submitted && c == completed && x == cancelled);
}

/* ---- scenarios ---------------------------------------------------------- */

static void
jobs_run_and_return(void)
{
    py = harness_start();
    pygate_pool *pool;
    pygate_pool_options o = {.workers = 4, .on_close = PYGATE_POOL_FINISH};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    enum { N = 1000 };
    static pygate_job *jobs[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(pygate_pool_submit(pool, double_it, (void *)(intptr_t)i,
                                    &jobs[i]));
    for (int i = 0; i < N; i++) {
        int result = -1;
        CHECK_OK(pygate_job_wait(jobs[i], -1, &result));
        CHECK(result == 2 * i);
        const char *text = "unset";
        CHECK_OK(pygate_job_exception_text(jobs[i], &text));
        CHECK(text == NULL);
        CHECK_OK(pygate_job_close(jobs[i]));
        CHECK_RC(pygate_job_close(jobs[i]), PYGATE_EINVAL);   /* twice */
    }
    expect_counts(pool, N, N, 0);
    CHECK_OK(pygate_pool_close(pool));
    CHECK_RC(pygate_pool_close(pool), PYGATE_EINVAL);         /* twice */
    CHECK_RC(pygate_pool_submit(pool, tiny, NULL, NULL), PYGATE_EINVAL);
    harness_stop(&py);
}

/* A job's exception reaches its waiter as an object (attached) or as text
 * (any thread); one nobody collects goes to sys.unraisablehook. */
static void
exceptions_are_never_lost(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    record_unraisable();
    PyEval_SaveThread();
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(py.view, NULL, &pool));

    pygate_job *job;
    CHECK_OK(pygate_pool_submit(pool, raise_value_error, (void *)7, &job));
    int result = 0;
    CHECK_OK(pygate_job_wait(job, 10, &result));
    CHECK(result == 7);
    const char *text = NULL;
    CHECK_OK(pygate_job_exception_text(job, &text));
    CHECK(text != NULL && strstr(text, "ValueError: job 7") != NULL
          && strstr(text, "Traceback") == NULL);   /* raised from C */
    PyObject *exc = NULL;
    CHECK_RC(pygate_job_exception(job, &exc), PYGATE_ENOTATTACHED);
    PyEval_RestoreThread(py.main_ts);
    CHECK_OK(pygate_job_exception(job, &exc));
    CHECK(exc != NULL && PyErr_GivenExceptionMatches(exc, PyExc_ValueError));
    Py_DECREF(exc);
    PyEval_SaveThread();
    CHECK_OK(pygate_job_close(job));   /* collected: nothing reported */

    /* Not collected: reported when the handle closes. */
    CHECK_OK(pygate_pool_submit(pool, raise_value_error, (void *)8, &job));
    CHECK_OK(pygate_job_wait(job, 10, NULL));
    CHECK_OK(pygate_job_close(job));
    /* Nobody waits: reported by the worker. */
    CHECK_OK(pygate_pool_submit(pool, raise_value_error, (void *)9, NULL));
    CHECK_OK(pygate_pool_close(pool));

    PyEval_RestoreThread(py.main_ts);
    CHECK(eval_long("sorted(unraisable) == ['job 8', 'job 9']"));
    PyEval_SaveThread();
    harness_stop(&py);
}

/* Eight unattached threads, an attached one, and jobs themselves submit;
 * every job runs once. */
static pygate_pool *shared_pool;

static int
submit_another(void *arg)
{
    (void)arg;
    CHECK_OK(pygate_pool_submit(shared_pool, tiny, NULL, NULL));
    return 0;
}

static void *
submit_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++)
        CHECK_OK(pygate_pool_submit(shared_pool, i % 10 ? tiny
                                                        : submit_another,
                                    NULL, NULL));
    return NULL;
}

static void
submit_from_everywhere(void)
{
    py = harness_start();
    pygate_pool_options o = {.workers = 3, .batch = 16,
                             .on_close = PYGATE_POOL_FINISH};
    CHECK_OK(pygate_pool_open(py.view, &o, &shared_pool));
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        CHECK(pthread_create(&t[i], NULL, submit_many, NULL) == 0);
    PyEval_RestoreThread(py.main_ts);   /* attached: never blocks */
    for (int i = 0; i < 500; i++)
        CHECK_OK(pygate_pool_submit(shared_pool, tiny, NULL, NULL));
    PyEval_SaveThread();
    for (int i = 0; i < 8; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    /* Once completed catches up with submitted, nothing is left: a job
     * that submits another counts it before it completes itself. */
    uint64_t s, c, x;
    do {
        usleep(1000);
        CHECK_OK(pygate_pool_counts(shared_pool, &s, &c, &x));
    } while (c != s);
    /* 8 x 2,000 + 500, and each tenth job submitted one more. */
    const uint64_t want = 8 * 2000 + 500 + 8 * 200;
    expect_counts(shared_pool, want, want, 0);
    CHECK(atomic_load(&tiny_ran) == (long)(want - 8 * 200));
    CHECK_OK(pygate_pool_close(shared_pool));
    harness_stop(&py);
}

/* While one worker is saturated with jobs that hold the GIL, a Python
 * thread keeps running: the worker gives the GIL up at least every
 * hold_seconds, whatever its batch. */
static long
python_ticks(void)
{
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    long ticks = eval_long("ticks");
    CHECK_OK(pygate_leave(tok));
    return ticks;
}

static void
batching_lets_python_run(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("import threading\n"
            "ticks = 0\n"
            "stop = False\n"
            "def count():\n"
            "    global ticks\n"
            "    while not stop:\n"
            "        ticks += 1\n"
            "ticker = threading.Thread(target=count)\n"
            "ticker.start()\n");
    PyEval_SaveThread();
    while (python_ticks() == 0)
        usleep(1000);
    pygate_pool *pool;
    pygate_pool_options o = {.workers = 1, .batch = 100000,
                             .hold_seconds = 0.005,
                             .on_close = PYGATE_POOL_FINISH};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    enum { N = 40000 };   /* about 0.8 s of GIL-holding jobs */
    for (int i = 0; i < N; i++)
        CHECK_OK(pygate_pool_submit(pool, busy_20us, NULL, NULL));
    while (atomic_load(&busy_ran) < N / 4)
        usleep(1000);
    long before = python_ticks();
    long ran_before = atomic_load(&busy_ran);
    usleep(200 * 1000);
    long during = python_ticks();
    long ran_during = atomic_load(&busy_ran);
    CHECK_OK(pygate_pool_close(pool));   /* finishes the queue */
    CHECK(atomic_load(&busy_ran) == N);
    printf("while the worker ran jobs %ld..%ld of %d, the Python thread"
           " counted %ld\n", ran_before, ran_during, N, during - before);
    CHECK(ran_during < N);          /* sampled while saturated */
    CHECK(during - before > 1000);  /* and Python ran meanwhile */
    PyEval_RestoreThread(py.main_ts);
    exec_ok("stop = True\nticker.join()\n");
    PyEval_SaveThread();
    harness_stop(&py);
}

/* Completion callbacks: each job's is called exactly once, attached with
 * what the job returned and raised, or not attached when cancelled. */
static _Atomic long done_ok, done_raised, done_cancelled, done_wrong;

static void
on_done(int status, int result, PyObject *exc, void *arg)
{
    long i = (long)(intptr_t)arg;
    if (status == PYGATE_ECANCELLED) {
        atomic_fetch_add(&done_cancelled, 1);
        return;
    }
    if (status != PYGATE_OK || !PyGILState_Check())
        atomic_fetch_add(&done_wrong, 1);
    else if (exc != NULL && PyErr_GivenExceptionMatches(exc, PyExc_ValueError)
             && result == 7)
        atomic_fetch_add(&done_raised, 1);
    else if (exc == NULL && result == (int)(2 * i))
        atomic_fetch_add(&done_ok, 1);
    else
        atomic_fetch_add(&done_wrong, 1);
}

static void
completion_callbacks(void)
{
    py = harness_start();
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(py.view, NULL, &pool));
    for (long i = 0; i < 400; i++)
        CHECK_OK(pygate_pool_submit_then(pool, i % 4 ? double_it
                                                     : raise_value_error,
                                         (void *)(intptr_t)i, on_done,
                                         (void *)(intptr_t)i));
    CHECK_RC(pygate_pool_submit_then(pool, tiny, NULL, NULL, NULL),
             PYGATE_EINVAL);
    CHECK_OK(pygate_pool_close(pool));
    CHECK(done_ok == 300 && done_raised == 100 && done_wrong == 0);
    /* Cancelled ones get their callback too. */
    pygate_pool_options c = {.workers = 1, .on_close = PYGATE_POOL_CANCEL};
    CHECK_OK(pygate_pool_open(py.view, &c, &pool));
    for (int i = 0; i < 300; i++)
        CHECK_OK(pygate_pool_submit_then(pool, slow, NULL, on_done, NULL));
    CHECK_OK(pygate_pool_close(pool));
    printf("callbacks: %ld ran, %ld raised, %ld cancelled\n",
           atomic_load(&done_ok), atomic_load(&done_raised),
           atomic_load(&done_cancelled));
    CHECK(atomic_load(&slow_ran) + atomic_load(&done_cancelled) == 300);
    CHECK(atomic_load(&done_cancelled) > 0 && done_wrong == 0);
    harness_stop(&py);
}

static void
close_finishes_or_cancels(void)
{
    py = harness_start();
    enum { N = 200 };
    static pygate_job *jobs[N];
    for (int mode = PYGATE_POOL_FINISH; mode <= PYGATE_POOL_CANCEL; mode++) {
        atomic_store(&slow_ran, 0);
        pygate_pool *pool;
        pygate_pool_options o = {.workers = 2, .on_close = mode};
        CHECK_OK(pygate_pool_open(py.view, &o, &pool));
        for (int i = 0; i < N; i++)
            CHECK_OK(pygate_pool_submit(pool, slow, NULL, &jobs[i]));
        CHECK_OK(pygate_pool_close(pool));
        long done = 0, cancelled = 0;
        for (int i = 0; i < N; i++) {
            int rc = pygate_job_wait(jobs[i], 0, NULL);
            CHECK(rc == PYGATE_OK || rc == PYGATE_ECANCELLED);
            done += rc == PYGATE_OK;
            cancelled += rc == PYGATE_ECANCELLED;
            CHECK_OK(pygate_job_close(jobs[i]));
        }
        CHECK(done + cancelled == N && done == atomic_load(&slow_ran));
        if (mode == PYGATE_POOL_FINISH)
            CHECK(done == N);
        else
            CHECK(cancelled > 0);
        printf("on_close %s: %ld ran, %ld cancelled\n",
               mode == PYGATE_POOL_FINISH ? "finish" : "cancel", done,
               cancelled);
    }
    harness_stop(&py);
}

/* Py_FinalizeEx with pools open and jobs queued: it returns, every job
 * ended, and the pools still answer afterwards. */
static void
finalize_stops_pools(void)
{
    py = harness_start();
    pygate_pool *finish, *cancel;
    pygate_pool_options f = {.workers = 2, .on_close = PYGATE_POOL_FINISH};
    pygate_pool_options c = {.workers = 2, .on_close = PYGATE_POOL_CANCEL};
    CHECK_OK(pygate_pool_open(py.view, &f, &finish));
    CHECK_OK(pygate_pool_open(py.view, &c, &cancel));
    pygate_job *raised;
    CHECK_OK(pygate_pool_submit(finish, raise_value_error, (void *)3,
                                &raised));
    for (int i = 0; i < 300; i++) {
        CHECK_OK(pygate_pool_submit(finish, slow, NULL, NULL));
        CHECK_OK(pygate_pool_submit(cancel, slow, NULL, NULL));
    }
    harness_stop(&py);
    uint64_t s, d, x;
    CHECK_OK(pygate_pool_counts(finish, &s, &d, &x));
    CHECK(s == 301 && d == 301 && x == 0);
    CHECK_OK(pygate_pool_counts(cancel, &s, &d, &x));
    CHECK(s == 300 && d + x == 300);
    printf("at finalize: finish pool ran %d, cancel pool ran %llu and "
           "cancelled %llu\n", 301, (unsigned long long)d,
           (unsigned long long)x);
    CHECK_RC(pygate_pool_submit(finish, tiny, NULL, NULL),
             PYGATE_EFINALIZING);
    /* The exception object went with the interpreter; its text stays. */
    const char *text = NULL;
    CHECK_OK(pygate_job_exception_text(raised, &text));
    CHECK(text != NULL && strstr(text, "ValueError: job 3") != NULL);
    CHECK_OK(pygate_job_close(raised));
    CHECK_OK(pygate_pool_close(finish));
    CHECK_OK(pygate_pool_close(cancel));
}

/* ---- a pool's wait at shutdown: reported, bounded, ended by Ctrl-C ----- */

static _Atomic int sleeper_started;

/* Sleeps in Python for (const char *)arg seconds. */
static int
sleep_in_python(void *arg)
{
    atomic_store(&sleeper_started, 1);
    char code[64];
    snprintf(code, sizeof code, "__import__('time').sleep(%s)",
             (const char *)arg);
    PyObject *r = eval(code);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

static double finalize_seconds;

/* Far below the 30 s job, above what valgrind makes of a finalization. */
#ifdef PYGATE_VALGRIND
#  define SLOW_BOUND 20
#else
#  define SLOW_BOUND 5
#endif

static void
finalize_timed(void)
{
    double t0 = now_seconds();
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    finalize_seconds = now_seconds() - t0;
}

/* One worker: a job sleeping in Python, and three queued behind it. */
static pygate_pool *
pool_with_a_sleeper(const char *seconds)
{
    pygate_pool *pool;
    pygate_pool_options o = {.workers = 1, .on_close = PYGATE_POOL_FINISH};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    CHECK_OK(pygate_pool_submit_then(pool, sleep_in_python, (void *)seconds,
                                     on_done, NULL));
    for (int i = 0; i < 3; i++)
        CHECK_OK(pygate_pool_submit_then(pool, slow, NULL, on_done, NULL));
    while (!atomic_load(&sleeper_started))
        usleep(1000);
    return pool;
}

/* A job running when Py_FinalizeEx starts: the wait is reported every
 * report_every, given up after give_up_after (the queue behind it then
 * cancelled), and the pool still closes afterwards. */
static void
pool_wait_at_shutdown_is_bounded(void)
{
    CHECK_OK(pygate_set_drain_limits(0.2, 1.0));
    py = harness_start();
    pygate_pool *pool = pool_with_a_sleeper("30");
    const char *err = capture_stderr(finalize_timed);
    printf("Py_FinalizeEx returned after %.3f s\n", finalize_seconds);
    CHECK(finalize_seconds >= 0.9 && finalize_seconds < SLOW_BOUND);
    CHECK(strstr(err, "for pool 0x") != NULL);
    CHECK(strstr(err, "4 jobs not finished") != NULL);
    CHECK(strstr(err, "has waited 0.") != NULL);   /* reported before */
    CHECK(strstr(err, "giving up") != NULL);
    CHECK(atomic_load(&done_cancelled) == 3);
    expect_counts(pool, 4, 0, 3);
    double t0 = now_seconds();
    CHECK_OK(pygate_pool_close(pool));   /* does not wait for the job */
    CHECK(now_seconds() - t0 < SLOW_BOUND);   /* the job sleeps 30 s */
}

/* A FINISH backlog with no bound: every job runs, and the wait says so. */
static void
pool_backlog_at_shutdown_is_reported(void)
{
    CHECK_OK(pygate_set_drain_limits(0.2, -1));
    py = harness_start();
    pygate_pool *pool = pool_with_a_sleeper("0.8");
    const char *err = capture_stderr(finalize_timed);
    printf("Py_FinalizeEx returned after %.3f s\n", finalize_seconds);
    CHECK(strstr(err, "for pool 0x") != NULL);
    CHECK(strstr(err, "giving up") == NULL);
    CHECK(atomic_load(&done_cancelled) == 0 && atomic_load(&slow_ran) == 3);
    expect_counts(pool, 4, 4, 0);
    CHECK_OK(pygate_pool_close(pool));
}

/* The hook is an atexit callback registered with the interpreter's first
 * view, and Python calls them newest first: a script's own, registered
 * later, has run when the pool's FINISH backlog runs. */
static _Atomic int script_atexit_ran;
static _Atomic long saw_atexit, saw_no_atexit;

static PyObject *
note_atexit(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    atomic_store(&script_atexit_ran, 1);
    Py_RETURN_NONE;
}

static PyMethodDef note_atexit_def = {"note_atexit", note_atexit,
                                      METH_NOARGS, NULL};

static int
see_atexit(void *arg)
{
    (void)arg;
    atomic_fetch_add(atomic_load(&script_atexit_ran) ? &saw_atexit
                                                    : &saw_no_atexit, 1);
    return 0;
}

static void
finish_backlog_runs_after_later_atexit(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    PyObject *fn = PyCFunction_New(&note_atexit_def, NULL);
    CHECK(fn != NULL);
    CHECK(PyModule_AddObject(PyImport_AddModule("__main__"), "note_atexit",
                             fn) == 0);
    exec_ok("import atexit\natexit.register(note_atexit)\n");
    PyEval_SaveThread();
    pygate_pool *pool;
    pygate_pool_options o = {.workers = 1, .on_close = PYGATE_POOL_FINISH};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    CHECK_OK(pygate_pool_submit(pool, sleep_in_python, (void *)"0.3", NULL));
    while (!atomic_load(&sleeper_started))
        usleep(1000);
    for (int i = 0; i < 10; i++)
        CHECK_OK(pygate_pool_submit(pool, see_atexit, NULL, NULL));
    harness_stop(&py);
    printf("backlog jobs: %ld after the script's atexit callback, %ld"
           " before\n", atomic_load(&saw_atexit),
           atomic_load(&saw_no_atexit));
    CHECK(atomic_load(&saw_atexit) == 10 && atomic_load(&saw_no_atexit) == 0);
    CHECK_OK(pygate_pool_close(pool));
}

static void
finalize_with_ctrl_c(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, interrupt_soon, NULL) == 0);
    finalize_timed();
    CHECK(pthread_join(th, NULL) == 0);
}

/* Python's default SIGINT handler ends the wait for a pool's job, with
 * the report, as it ends the wait for guards. */
static void
ctrl_c_ends_pool_wait_at_shutdown(void)
{
    setenv("PYGATE_DEBUG", "0", 0);
    CHECK_OK(pygate_set_drain_limits(5, -1));
    Py_InitializeEx(1);   /* with Python's signal handlers */
    py.main_ts = PyEval_SaveThread();
    py.view = main_view(py.main_ts);
    pygate_pool *pool = pool_with_a_sleeper("30");
    const char *err = capture_stderr(finalize_with_ctrl_c);
    printf("Py_FinalizeEx returned after %.3f s\n", finalize_seconds);
    CHECK(finalize_seconds >= 0.4 && finalize_seconds < SLOW_BOUND);
    CHECK(strstr(err, "KeyboardInterrupt while shutdown waited") != NULL);
    CHECK(strstr(err, "for pool 0x") != NULL);
    CHECK(strstr(err, "giving up") != NULL);
    CHECK_OK(pygate_pool_close(pool));
}

/* A sub-interpreter and a view of it, made from the main thread, which is
 * detached again on return. */
static PyThreadState *
new_sub(pygate_view **view)
{
    PyEval_RestoreThread(py.main_ts);
    PyThreadState *sub = Py_NewInterpreter();
    CHECK(sub != NULL);
    CHECK_OK(pygate_view_from_current(view));
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
    return sub;
}

static void
end_sub(PyThreadState *sub)
{
    PyEval_RestoreThread(sub);
    Py_EndInterpreter(sub);
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
}

/* A sub-interpreter's pool: Py_EndInterpreter stops it first, so it finds
 * no other thread state and does not abort. */
static void
end_interpreter_stops_pool(void)
{
    py = harness_start();
    pygate_view *sub_view;
    PyThreadState *sub = new_sub(&sub_view);
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(sub_view, NULL, &pool));
    for (int i = 0; i < 200; i++)
        CHECK_OK(pygate_pool_submit(pool, double_it, (void *)(intptr_t)i,
                                    NULL));
    end_sub(sub);
    expect_counts(pool, 200, 200, 0);
    CHECK_OK(pygate_pool_close(pool));
    CHECK_OK(pygate_view_close(sub_view));
    harness_stop(&py);
}

/* Counts, in the running thread state's dict, the jobs it ran: a worker
 * that keeps its state between batches counts on. */
static int
count_in_state(void *arg)
{
    (void)arg;
    PyObject *dict = PyThreadState_GetDict();
    CHECK(dict != NULL);
    PyObject *seen = PyDict_GetItemString(dict, "pygate_test_jobs");
    long n = seen != NULL ? PyLong_AsLong(seen) + 1 : 1;
    PyObject *value = PyLong_FromLong(n);
    CHECK(value != NULL && PyDict_SetItemString(dict, "pygate_test_jobs",
                                                value) == 0);
    Py_DECREF(value);
    /* A library calling PyGILState_Ensure in a job finds the worker's
     * state attached (never a second state, never a wait for itself). */
    PyThreadState *before = PyThreadState_Get();
    PyGILState_STATE g = PyGILState_Ensure();
    CHECK(PyThreadState_Get() == before);
    PyGILState_Release(g);
    return (int)n;
}

/* A sub-interpreter pool's worker keeps its thread state from one batch to
 * the next (its home, thread.c), rather than making one per batch. */
static void
sub_pool_worker_keeps_state(void)
{
    py = harness_start();
    pygate_view *sub_view;
    PyThreadState *sub = new_sub(&sub_view);
    pygate_pool_options one = {.workers = 1, .batch = 1};
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(sub_view, &one, &pool));
    for (int i = 1; i <= 5; i++) {   /* one batch each: waited one by one */
        pygate_job *job;
        int result = 0;
        CHECK_OK(pygate_pool_submit(pool, count_in_state, NULL, &job));
        CHECK_OK(pygate_job_wait(job, -1, &result));
        CHECK(result == i);
        CHECK_OK(pygate_job_close(job));
    }
    CHECK_OK(pygate_pool_close(pool));
    end_sub(sub);
    CHECK_OK(pygate_view_close(sub_view));
    harness_stop(&py);
}

/* ---- a bounded queue ---------------------------------------------------- */

enum { BOUND = 8, BURST = 20 };

static pygate_pool *bounded;
static _Atomic int gate_open;
static _Atomic long burst_queued;   /* submissions that returned OK */
static _Atomic int burst_refused;   /* the code of one that did not, or 0 */
static _Atomic long burst_cancelled;
static int burst_plain;   /* the burst's jobs: nobody waits (packed) */

static void
count_cancelled(int status, int result, PyObject *exc, void *arg)
{
    (void)result, (void)exc, (void)arg;
    if (status == PYGATE_ECANCELLED)
        atomic_fetch_add(&burst_cancelled, 1);
}

/* Holds its worker, GIL released, until the gate opens. */
static int
hold_until_open(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&gate_open))
        usleep(1000);
    Py_END_ALLOW_THREADS
    return 0;
}

/* A native thread, not attached: submits BURST jobs, stopping at the
 * first refusal. */
static void *
submit_burst(void *arg)
{
    (void)arg;
    for (int i = 0; i < BURST; i++) {
        int rc = burst_plain
                     ? pygate_pool_submit(bounded, tiny, NULL, NULL)
                     : pygate_pool_submit_then(bounded, tiny, NULL,
                                               count_cancelled, NULL);
        if (rc != PYGATE_OK) {
            atomic_store(&burst_refused, rc);
            break;
        }
        atomic_fetch_add(&burst_queued, 1);
    }
    return NULL;
}

/* Waits (up to 10 s) until the burst thread has queued `queued` jobs,
 * then a further 100 ms, and checks that it stayed there. */
static void
expect_burst_stops_at(long queued)
{
    for (int i = 0; i < 10000 && atomic_load(&burst_queued) < queued; i++)
        usleep(1000);
    usleep(100000);
    CHECK(atomic_load(&burst_queued) == queued);
}

/* Holds the pool's one worker in a job and starts a burst; returns once
 * the burst waits with the queue full. */
static pthread_t
fill_bounded_pool(int on_close)
{
    pygate_pool_options o = {.workers = 1, .on_close = on_close,
                             .max_queued = BOUND};
    CHECK_OK(pygate_pool_open(py.view, &o, &bounded));
    atomic_store(&gate_open, 0);
    atomic_store(&burst_queued, 0);
    atomic_store(&burst_refused, 0);
    atomic_store(&burst_cancelled, 0);
    pygate_job *held;
    CHECK_OK(pygate_pool_submit(bounded, hold_until_open, NULL, &held));
    CHECK(pygate_job_wait(held, 0.05, NULL) == PYGATE_ETIMEDOUT);
    CHECK_OK(pygate_job_close(held));
    pthread_t burst;
    CHECK(pthread_create(&burst, NULL, submit_burst, NULL) == 0);
    expect_burst_stops_at(BOUND);   /* full: it waits */
    return burst;
}

/* A job, on the worker: submits BURST jobs to its own full pool. */
static int
submit_burst_from_job(void *arg)
{
    (void)arg;
    for (int i = 0; i < BURST; i++)
        if (pygate_pool_submit(bounded, tiny, NULL, NULL) != PYGATE_OK)
            return 1;
    return 0;
}

/* With max_queued, a submitter that is neither attached nor a worker
 * waits while the queue is full, and goes on once half of it started;
 * an attached caller and a job never wait. */
static void
bounded_queue_waits(void)
{
    py = harness_start();
    atomic_store(&tiny_ran, 0);
    pthread_t burst = fill_bounded_pool(PYGATE_POOL_FINISH);
    expect_counts(bounded, 1 + BOUND, 0, 0);
    /* Attached: let through, beyond the bound. */
    PyEval_RestoreThread(py.main_ts);
    for (int i = 0; i < BURST; i++)
        CHECK_OK(pygate_pool_submit(bounded, tiny, NULL, NULL));
    /* A job that submits to its own full pool: let through too (it runs
     * once the gate opens, with the queue still full). */
    pygate_job *from_job;
    CHECK_OK(pygate_pool_submit(bounded, submit_burst_from_job, NULL,
                                &from_job));
    PyEval_SaveThread();
    expect_counts(bounded, 1 + BOUND + BURST + 1, 0, 0);
    CHECK(atomic_load(&burst_queued) == BOUND);
    atomic_store(&gate_open, 1);
    CHECK(pthread_join(burst, NULL) == 0);
    int rc = 1;
    CHECK_OK(pygate_job_wait(from_job, -1, &rc));
    CHECK(rc == 0);
    CHECK_OK(pygate_job_close(from_job));
    CHECK(atomic_load(&burst_queued) == BURST && !atomic_load(&burst_refused));
    CHECK_OK(pygate_pool_close(bounded));
    CHECK(atomic_load(&tiny_ran) == 3 * BURST);
    harness_stop(&py);
}

/* Jobs nobody waits for share packs (pool_submit.c): each still counts against
 * the bound, and its submitter waits for room as for any other. */
static void
bounded_queue_counts_packed_jobs(void)
{
    py = harness_start();
    atomic_store(&tiny_ran, 0);
    burst_plain = 1;
    pthread_t burst = fill_bounded_pool(PYGATE_POOL_FINISH);
    expect_counts(bounded, 1 + BOUND, 0, 0);
    atomic_store(&gate_open, 1);
    CHECK(pthread_join(burst, NULL) == 0);
    CHECK(atomic_load(&burst_queued) == BURST && !atomic_load(&burst_refused));
    uint64_t s, c, x;
    do {
        usleep(1000);
        CHECK_OK(pygate_pool_counts(bounded, &s, &c, &x));
    } while (c != s);
    expect_counts(bounded, 1 + BURST, 1 + BURST, 0);
    CHECK_OK(pygate_pool_close(bounded));
    CHECK(atomic_load(&tiny_ran) == BURST);
    harness_stop(&py);
}

/* Opens the gate once the burst was refused and, arg non-NULL, its
 * queued jobs cancelled (or after 10 s each, for the checks to fail rather
 * than hang): a stop waits for the held worker, which would otherwise run
 * queued jobs before the stop cancels them. */
static void *
open_gate_once_refused(void *arg)
{
    for (int i = 0; i < 10000 && !atomic_load(&burst_refused); i++)
        usleep(1000);
    for (int i = 0; arg != NULL && i < 10000
                    && atomic_load(&burst_cancelled) < BOUND; i++)
        usleep(1000);
    atomic_store(&gate_open, 1);
    return NULL;
}

/* Closing a bounded pool, or its interpreter's shutdown, ends the wait of
 * a submitter for room: refused, its job not queued, and every job that
 * was queued ends as on_close says. */
static void
bounded_queue_stops(void)
{
    py = harness_start();
    pthread_t burst, opener;
    for (int on_close = PYGATE_POOL_FINISH; on_close <= PYGATE_POOL_CANCEL;
         on_close++) {
        atomic_store(&tiny_ran, 0);
        burst = fill_bounded_pool(on_close);
        int cancel = on_close == PYGATE_POOL_CANCEL;
        CHECK(pthread_create(&opener, NULL, open_gate_once_refused,
                             cancel ? &cancel : NULL) == 0);
        CHECK_OK(pygate_pool_close(bounded));
        CHECK(pthread_join(burst, NULL) == 0);
        CHECK(pthread_join(opener, NULL) == 0);
        CHECK(atomic_load(&burst_refused) == PYGATE_ECLOSED);
        CHECK(atomic_load(&burst_queued) == BOUND);
        CHECK(atomic_load(&tiny_ran) == (cancel ? 0 : BOUND));
        CHECK(atomic_load(&burst_cancelled) == (cancel ? BOUND : 0));
    }
    burst = fill_bounded_pool(PYGATE_POOL_CANCEL);
    int cancel = 1;
    CHECK(pthread_create(&opener, NULL, open_gate_once_refused, &cancel)
          == 0);
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    CHECK(pthread_join(burst, NULL) == 0);
    CHECK(pthread_join(opener, NULL) == 0);
    CHECK(atomic_load(&burst_refused) == PYGATE_EFINALIZING);
    CHECK(atomic_load(&burst_queued) == BOUND);
    expect_counts(bounded, 1 + BOUND, 1, BOUND);
    CHECK(atomic_load(&burst_cancelled) == BOUND);
    CHECK_OK(pygate_pool_close(bounded));
    CHECK_OK(pygate_view_close(py.view));
}

static void
pool_codes(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    py = harness_start();
    pygate_pool *pool = NULL;
    pygate_pool_options bad[] = {
        {.workers = 5000}, {.batch = 2000000}, {.hold_seconds = -1},
        {.hold_seconds = 100}, {.on_close = 7}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RC(pygate_pool_open(py.view, &bad[i], &pool), PYGATE_EINVAL);
    CHECK_RC(pygate_pool_open(NULL, NULL, &pool), PYGATE_EINVAL);
    CHECK_RC(pygate_pool_open(py.view, NULL, NULL), PYGATE_EINVAL);
    CHECK_OK(pygate_pool_open(py.view, NULL, &self_pool));
    CHECK_RC(pygate_pool_submit(self_pool, NULL, NULL, NULL), PYGATE_EINVAL);
    pygate_job *job;
    CHECK_OK(pygate_pool_submit(self_pool, close_own_pool, NULL, &job));
    CHECK_OK(pygate_job_wait(job, -1, NULL));
    CHECK_RC(atomic_load(&close_from_job_rc), PYGATE_EBUSY);
    CHECK_RC(pygate_job_wait(job, 0.0 / 0.0, NULL), PYGATE_EINVAL);
    CHECK_RC(pygate_job_wait((pygate_job *)self_pool, 0, NULL),
             PYGATE_EINVAL);                     /* a pool is not a job */
    CHECK_RC(pygate_pool_close((pygate_pool *)job), PYGATE_EINVAL);
    CHECK_RC(pygate_pool_close((pygate_pool *)py.view), PYGATE_EINVAL);
    CHECK_OK(pygate_job_close(job));
    CHECK_RC(pygate_job_wait(job, 0, NULL), PYGATE_EINVAL);
    CHECK_OK(pygate_pool_close(self_pool));
    CHECK_RC(pygate_pool_counts(self_pool, NULL, NULL, NULL), PYGATE_EINVAL);
    harness_stop(&py);
}

/* ---- every worker for jobs that release the GIL ------------------------ */

static _Atomic int met, meeting_size;

/* Waits with the GIL released until meeting_size jobs are inside at once,
 * 10 s at most; returns whether they were. */
static int
meet_the_others(void *arg)
{
    (void)arg;
    atomic_fetch_add(&met, 1);
    double until = now_seconds() + 10;
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&met) < atomic_load(&meeting_size)
           && now_seconds() < until)
        usleep(100);
    Py_END_ALLOW_THREADS
    return atomic_load(&met) >= atomic_load(&meeting_size);
}

/* Submits `size` jobs that each wait for all of them to be inside at
 * once, and checks that they were: each of the pool's `size` workers took
 * one. */
static void
every_worker_meets(pygate_pool *pool, int size)
{
    enum { MOST = 16 };
    pygate_job *meeting[MOST];
    CHECK(size <= MOST);
    atomic_store(&meeting_size, size);
    atomic_store(&met, 0);
    for (int i = 0; i < size; i++)
        CHECK_OK(pygate_pool_submit(pool, meet_the_others, NULL,
                                    &meeting[i]));
    for (int i = 0; i < size; i++) {
        int result = 0;
        CHECK_OK(pygate_job_wait(meeting[i], -1, &result));
        CHECK(result == 1);
        CHECK_OK(pygate_job_close(meeting[i]));
    }
}

static pygate_pool *waiting_pool;

/* After 20 ms (the GIL released), submits a job to its own pool and waits
 * for it: only another worker can run it.  Returns that job's result. */
static int
waits_for_job_behind(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    usleep(20 * 1000);
    Py_END_ALLOW_THREADS
    pygate_job *behind;
    int result = -1;
    if (pygate_pool_submit(waiting_pool, double_it, (void *)21, &behind)
            != PYGATE_OK)
        return -2;
    if (pygate_job_wait(behind, 10, &result) != PYGATE_OK)
        result = -3;
    pygate_job_close(behind);
    return result;
}

/* A worker that joins one already running only takes the GIL from it,
 * unless the GIL is free: jobs that release it still run on every worker
 * at once (the fourth one's submitter woke nobody: the first woke a
 * worker, which left three queued), and two jobs that each wait for one
 * they queue behind them get those run by other workers.  From the second round on they
 * come right after a burst of small jobs: the worker running the burst
 * takes them in its chunk of 64 jobs, and the first blocks it; the other
 * workers take the rest over. */
static void
blocking_jobs_use_every_worker(void)
{
    py = harness_start();
    enum { WORKERS = 4 };
    pygate_pool_options o = {.workers = WORKERS};
    CHECK_OK(pygate_pool_open(py.view, &o, &waiting_pool));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; round > 0 && i < 20000; i++)
            CHECK_OK(pygate_pool_submit(waiting_pool, tiny, NULL, NULL));
        every_worker_meets(waiting_pool, WORKERS);
        pygate_job *waiters[2];
        for (int i = 0; i < 2; i++)
            CHECK_OK(pygate_pool_submit(waiting_pool, waits_for_job_behind,
                                        NULL, &waiters[i]));
        for (int i = 0; i < 2; i++) {
            int result = 0;
            CHECK_OK(pygate_job_wait(waiters[i], -1, &result));
            CHECK(result == 42);
            CHECK_OK(pygate_job_close(waiters[i]));
        }
    }
    CHECK_OK(pygate_pool_close(waiting_pool));
    harness_stop(&py);
}

/* Workers woken while another's chunk holds jobs it has not started race
 * that owner, which starts them without the pool's lock.  A worker that
 * saw work there, then none once its owner started it, must sleep again,
 * not exit (it did: one worker fewer for good).  Bursts of small jobs
 * make chunks and wake-ups by the thousand; every worker then takes one
 * of as many jobs that wait for each other. */
static void
workers_outlive_steal_races(void)
{
    enum { WORKERS = 8, BURSTS = 15000, BURST = 40 };
    py = harness_start();
    pygate_pool *pool;
    pygate_pool_options o = {.workers = WORKERS};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    for (int b = 0; b < BURSTS; b++) {
        pygate_job *last;
        for (int i = 0; i < BURST - 1; i++)
            CHECK_OK(pygate_pool_submit(pool, tiny, NULL, NULL));
        CHECK_OK(pygate_pool_submit(pool, tiny, NULL, &last));
        CHECK_OK(pygate_job_wait(last, -1, NULL));
        CHECK_OK(pygate_job_close(last));
    }
    every_worker_meets(pool, WORKERS);
    CHECK_OK(pygate_pool_close(pool));
    harness_stop(&py);
}

/* ---- one thread's jobs, in order ----------------------------------------- */

#define ORDERED_THREADS 8
#define ORDERED_JOBS 20000

static pygate_pool *ordered_pool;
static long ordered_last[ORDERED_THREADS];   /* the one worker's */
static _Atomic long ordered_out_of_order;

/* arg: thread << 20 | sequence number; runs on the pool's one worker. */
static int
note_sequence(void *arg)
{
    long v = (long)(intptr_t)arg, thread = v >> 20, seq = v & 0xFFFFF;
    if (seq != ordered_last[thread] + 1)
        atomic_fetch_add(&ordered_out_of_order, 1);
    ordered_last[thread] = seq;
    return 0;
}

/* Most jobs nobody waits for (they go in packs), every seventh one with
 * a handle (alone): the thread's next jobs start a pack after it. */
static void *
submit_in_sequence(void *arg)
{
    long thread = (long)(intptr_t)arg;
    for (long seq = 1; seq <= ORDERED_JOBS; seq++) {
        void *job_arg = (void *)(intptr_t)(thread << 20 | seq);
        pygate_job *job;
        if (seq % 7 != 0) {
            CHECK_OK(pygate_pool_submit(ordered_pool, note_sequence, job_arg,
                                        NULL));
            continue;
        }
        CHECK_OK(pygate_pool_submit(ordered_pool, note_sequence, job_arg,
                                    &job));
        CHECK_OK(pygate_job_close(job));
    }
    return NULL;
}

/* With one worker, each thread's jobs run in the order it submitted them,
 * however many threads submit at once (they push onto several lanes). */
static void
one_worker_keeps_order(void)
{
    py = harness_start();
    pygate_pool_options o = {.workers = 1};
    CHECK_OK(pygate_pool_open(py.view, &o, &ordered_pool));
    pthread_t threads[ORDERED_THREADS];
    for (long i = 0; i < ORDERED_THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, submit_in_sequence,
                             (void *)(intptr_t)i) == 0);
    for (int i = 0; i < ORDERED_THREADS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK_OK(pygate_pool_close(ordered_pool));   /* finishes the queue */
    CHECK(atomic_load(&ordered_out_of_order) == 0);
    for (int i = 0; i < ORDERED_THREADS; i++)
        CHECK(ordered_last[i] == ORDERED_JOBS);
    harness_stop(&py);
}

/* ---- packs of jobs nobody waits for ------------------------------------- */

static _Atomic int pack_worker_held;

/* Holds the worker (GIL released) until the gate opens, so that what is
 * submitted meanwhile waits in the inbox, packed. */
static int
hold_worker(void *arg)
{
    (void)arg;
    atomic_store(&pack_worker_held, 1);
    return hold_until_open(NULL);
}

/* Opens the gate after half a second: long after a close that began
 * meanwhile cancelled the queue. */
static void *
open_gate_later(void *arg)
{
    (void)arg;
    usleep(500000);
    atomic_store(&gate_open, 1);
    return NULL;
}

/* Jobs submitted while the worker is busy share packs: each runs once, in
 * order, and one that raises goes to sys.unraisablehook alone, its pack's
 * other jobs running on. */
static void
packed_jobs_raise_alone(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    record_unraisable();
    PyEval_SaveThread();
    atomic_store(&tiny_ran, 0);
    atomic_store(&gate_open, 0);
    pygate_pool *pool;
    pygate_pool_options o = {.workers = 1};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    CHECK_OK(pygate_pool_submit(pool, hold_worker, NULL, NULL));
    while (!atomic_load(&pack_worker_held))
        usleep(1000);
    enum { N = 100 };   /* four packs */
    for (long i = 0; i < N; i++)
        CHECK_OK(pygate_pool_submit(pool, i % 9 == 4 ? raise_value_error
                                                     : tiny,
                                    (void *)(intptr_t)i, NULL));
    expect_counts(pool, 1 + N, 0, 0);
    atomic_store(&gate_open, 1);
    uint64_t s, c, x;
    do {
        usleep(1000);
        CHECK_OK(pygate_pool_counts(pool, &s, &c, &x));
    } while (c != s);
    expect_counts(pool, 1 + N, 1 + N, 0);
    CHECK(atomic_load(&tiny_ran) == N - 11);
    CHECK_OK(pygate_pool_close(pool));
    PyEval_RestoreThread(py.main_ts);
    CHECK(eval_long("unraisable == ['job %d' % i for i in range(4, 100, 9)]"));
    PyEval_SaveThread();
    harness_stop(&py);
}

/* Two jobs in one pack, the first waiting for the second: a worker with
 * nothing else to do helps run the pack, as it takes over jobs another
 * worker took and has not started (pool_queue.c, steal_locked). */
static _Atomic int pack_holders, second_ran, first_saw_second;

static int
hold_one_worker(void *arg)
{
    (void)arg;
    atomic_fetch_add(&pack_holders, 1);
    return hold_until_open(NULL);
}

static int
wait_for_second(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < 10000 && !atomic_load(&second_ran); i++)
        usleep(1000);
    Py_END_ALLOW_THREADS
    atomic_store(&first_saw_second, atomic_load(&second_ran));
    return 0;
}

static int
second(void *arg)
{
    (void)arg;
    atomic_store(&second_ran, 1);
    return 0;
}

static void
pack_waiting_on_itself_gets_help(void)
{
    py = harness_start();
    atomic_store(&gate_open, 0);
    pygate_pool *pool;
    pygate_pool_options o = {.workers = 2};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    pygate_job *held[2];   /* with handles: alone, one a worker */
    for (int i = 0; i < 2; i++)
        CHECK_OK(pygate_pool_submit(pool, hold_one_worker, NULL, &held[i]));
    while (atomic_load(&pack_holders) < 2)
        usleep(1000);
    CHECK_OK(pygate_pool_submit(pool, wait_for_second, NULL, NULL));
    CHECK_OK(pygate_pool_submit(pool, second, NULL, NULL));
    expect_counts(pool, 4, 0, 0);   /* the two, packed */
    atomic_store(&gate_open, 1);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(pygate_job_wait(held[i], -1, NULL));
        CHECK_OK(pygate_job_close(held[i]));
    }
    CHECK_OK(pygate_pool_close(pool));
    CHECK(atomic_load(&first_saw_second) == 1);
    harness_stop(&py);
}

/* A thread keeps the pack its last jobs went into after their pool is
 * closed and freed; its jobs for the next pool (often at the same
 * address) must not go into it: all run, none lost.  A close that cancels
 * counts each job of a pack. */
static void
packs_outlive_their_pool(void)
{
    py = harness_start();
    atomic_store(&tiny_ran, 0);
    enum { POOLS = 50, JOBS = 40 };
    for (int i = 0; i < POOLS; i++) {
        pygate_pool *pool;
        pygate_pool_options o = {.workers = 1};
        CHECK_OK(pygate_pool_open(py.view, &o, &pool));
        for (int j = 0; j < JOBS; j++)
            CHECK_OK(pygate_pool_submit(pool, tiny, NULL, NULL));
        CHECK_OK(pygate_pool_close(pool));   /* finishes the queue */
        CHECK(atomic_load(&tiny_ran) == (long)(i + 1) * JOBS);
    }
    atomic_store(&gate_open, 0);
    atomic_store(&pack_worker_held, 0);
    pygate_pool *pool;
    pygate_pool_options c = {.workers = 1, .on_close = PYGATE_POOL_CANCEL};
    CHECK_OK(pygate_pool_open(py.view, &c, &pool));
    CHECK_OK(pygate_pool_submit(pool, hold_worker, NULL, NULL));
    while (!atomic_load(&pack_worker_held))
        usleep(1000);
    for (int j = 0; j < JOBS; j++)
        CHECK_OK(pygate_pool_submit(pool, tiny, NULL, NULL));
    pthread_t opener;
    CHECK(pthread_create(&opener, NULL, open_gate_later, NULL) == 0);
    uint64_t counts[3];   /* the close cancels the queue at once */
    CHECK_OK(pygate__pool_close_counting(pool, counts));
    CHECK(pthread_join(opener, NULL) == 0);
    CHECK(counts[0] == 1 + JOBS && counts[1] == 1 && counts[2] == JOBS);
    CHECK(atomic_load(&tiny_ran) == POOLS * JOBS);
    harness_stop(&py);
}

/* ---- closing while threads submit --------------------------------------- */

#define RACERS 8
#define RACE_ROUNDS 100

static pygate_pool *raced_pool;
static _Atomic long race_accepted;
static _Atomic int race_go;

/* Submits to raced_pool until it refuses; returns the refusal's code. */
static void *
submit_until_refused(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_go))
        sched_yield();
    int rc;
    while ((rc = pygate_pool_submit(raced_pool, tiny, NULL, NULL))
           == PYGATE_OK)
        atomic_fetch_add(&race_accepted, 1);
    return (void *)(intptr_t)rc;
}

/* A close that races eight submitters frees the pool only once none is
 * inside a submission (each notes its use of the handle in a set of its
 * own thread's: handle.c); a submission that lost the race is refused,
 * and every one accepted ran (on_close FINISH).  AddressSanitizer sees a
 * pool freed under a submitter. */
static void
close_races_submitters(void)
{
    py = harness_start();
    unsigned seed = (unsigned)getpid();
    for (int round = 0; round < RACE_ROUNDS; round++) {
        atomic_store(&tiny_ran, 0);
        atomic_store(&race_accepted, 0);
        atomic_store(&race_go, 0);
        CHECK_OK(pygate_pool_open(py.view, NULL, &raced_pool));
        pthread_t racers[RACERS];
        for (int i = 0; i < RACERS; i++)
            CHECK(pthread_create(&racers[i], NULL, submit_until_refused,
                                 NULL) == 0);
        atomic_store(&race_go, 1);
        usleep(rand_r(&seed) % 5000);
        CHECK_OK(pygate_pool_close(raced_pool));
        for (int i = 0; i < RACERS; i++) {
            void *rc;
            CHECK(pthread_join(racers[i], &rc) == 0);
            CHECK((intptr_t)rc == PYGATE_ECLOSED
                  || (intptr_t)rc == PYGATE_EINVAL);   /* closed already */
        }
        CHECK(atomic_load(&tiny_ran) == atomic_load(&race_accepted));
    }
    harness_stop(&py);
}

static const scenario scenarios[] = {
    {"jobs_run_and_return", jobs_run_and_return},
    {"exceptions_are_never_lost", exceptions_are_never_lost},
    {"submit_from_everywhere", submit_from_everywhere},
    {"batching_lets_python_run", batching_lets_python_run},
    {"completion_callbacks", completion_callbacks},
    {"close_finishes_or_cancels", close_finishes_or_cancels},
    {"finalize_stops_pools", finalize_stops_pools},
    {"pool_wait_at_shutdown_is_bounded", pool_wait_at_shutdown_is_bounded},
    {"pool_backlog_at_shutdown_is_reported",
     pool_backlog_at_shutdown_is_reported},
    {"ctrl_c_ends_pool_wait_at_shutdown", ctrl_c_ends_pool_wait_at_shutdown},
    {"finish_backlog_runs_after_later_atexit",
     finish_backlog_runs_after_later_atexit},
    {"end_interpreter_stops_pool", end_interpreter_stops_pool},
    {"sub_pool_worker_keeps_state", sub_pool_worker_keeps_state},
    {"bounded_queue_waits", bounded_queue_waits},
    {"bounded_queue_stops", bounded_queue_stops},
    {"pool_codes", pool_codes},
    {"one_worker_keeps_order", one_worker_keeps_order},
    {"packed_jobs_raise_alone", packed_jobs_raise_alone},
    {"packs_outlive_their_pool", packs_outlive_their_pool},
    {"pack_waiting_on_itself_gets_help", pack_waiting_on_itself_gets_help},
    {"bounded_queue_counts_packed_jobs", bounded_queue_counts_packed_jobs},
    {"close_races_submitters", close_races_submitters},
    {"blocking_jobs_use_every_worker", blocking_jobs_use_every_worker},
    {"workers_outlive_steal_races", workers_outlive_steal_races},
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
