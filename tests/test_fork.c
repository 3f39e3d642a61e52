/*
 * test_fork.c - a process whose native threads hold pygate states forks.
 *
 * Native threads loop enter/call/leave (so at the fork some are inside an
 * entry, others wait for the GIL with their guard taken); a thread forks
 * the way a host does (PyOS_BeforeFork, fork, PyOS_AfterFork_Child) or the
 * way Python does (os.fork()).  The child, where only the forking thread
 * exists, must leave and enter again, run new threads through pygate, and
 * finalize without waiting for threads it does not have; the parent goes
 * on as before.  A child that hangs is killed by its alarm and fails.
 */
#include "harness.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define SKIP 77   /* ctest SKIP_RETURN_CODE */
#define WORKERS 4

/* TSan cannot follow threads started in the child of a multi-threaded
 * fork (it dies, or with die_after_fork=0 confuses their IDs with the
 * parent's): under TSan the children check everything but new threads. */
#define CHILD_STARTS_THREADS (!UNDER_TSAN)
#define CHILD_BOUND_SECONDS 60

/* ---- native threads that keep entering ---------------------------------- */

typedef struct workers {
    pygate_view *view;
    pthread_t threads[WORKERS];
    _Atomic long entries;
    _Atomic int stop;
} workers;

static void *
worker_loop(void *arg)
{
    workers *w = (workers *)arg;
    while (!atomic_load(&w->stop)) {
        pygate_token tok;
        if (pygate_enter(w->view, &tok) != PYGATE_OK)
            break;
        CHECK(eval_long("sum(range(10))") == 45);
        CHECK_OK(pygate_leave(tok));
        atomic_fetch_add(&w->entries, 1);
        /* A moment out: four threads re-entering at once would keep the
         * GIL from the forking thread for minutes under valgrind, whose
         * scheduler does not break the convoy as Linux's does. */
        usleep(20);
    }
    return NULL;
}

/* Starts the workers and returns once each has entered a few times. */
static void
workers_start(workers *w, pygate_view *view)
{
    w->view = view;
    atomic_init(&w->entries, 0);
    atomic_init(&w->stop, 0);
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&w->threads[i], NULL, worker_loop, w) == 0);
    while (atomic_load(&w->entries) < 50 * WORKERS)
        usleep(1000);
}

static void
workers_stop(workers *w)
{
    atomic_store(&w->stop, 1);
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(w->threads[i], NULL) == 0);
}

/* ---- in the child -------------------------------------------------------- */

static void *
enter_and_call(void *arg)
{
    pygate_token tok;
    CHECK_OK(pygate_enter((pygate_view *)arg, &tok));
    CHECK(eval_long("6 * 7") == 42);
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

/* The forking thread, inside its entry into `view` (depth 1), in a child
 * that CPython has set up (PyOS_AfterFork_Child or os.fork()). */
static void
child_continues(pygate_view *view)
{
    CHECK(pygate_thread_depth() == 1);
    /* CPython deleted every other thread's state of the interpreter (a
     * host's init thread may have two: pygate_host_init parks one). */
    int states = 0;
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(
             PyInterpreterState_Main()); ts != NULL; ts = PyThreadState_Next(ts)) {
        CHECK(ts->thread_id == PyThread_get_thread_ident());
        states++;
    }
    CHECK(states >= 1 && states <= 2);
    CHECK(eval_long("sum(range(5))") == 10);
    if (CHILD_STARTS_THREADS) {
        Py_BEGIN_ALLOW_THREADS
        on_native_thread(enter_and_call, view);
        on_native_thread(enter_and_call, view);
        Py_END_ALLOW_THREADS
    }
}

/* Leaves `tok`, enters again, and runs new threads through the view. */
static void
child_leaves_and_reenters(pygate_view *view, pygate_token tok)
{
    CHECK_OK(pygate_leave(tok));
    CHECK(pygate_thread_depth() == 0);
    CHECK_OK(pygate_enter(view, &tok));
    CHECK(eval_long("3 + 4") == 7);
    CHECK_OK(pygate_leave(tok));
    if (CHILD_STARTS_THREADS)
        on_native_thread(enter_and_call, view);
}

/* fork() the way an embedding host does it; the calling thread is
 * attached.  Runs child() in the child, which must return within the
 * bound and then exits 0; returns the child's pid in the parent. */
static pid_t
host_fork(void (*child)(void))
{
    PyOS_BeforeFork();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        PyOS_AfterFork_Child();
        alarm(CHILD_BOUND_SECONDS);
        child();
        fflush(stdout);
        _exit(0);
    }
    PyOS_AfterFork_Parent();
    return pid;
}

/* Waits for the child without holding the GIL; it must have exited 0. */
static void
expect_child_ok(pid_t pid)
{
    int status = 0;
    pid_t r;
    PyThreadState *attached = PyGILState_Check() ? PyEval_SaveThread() : NULL;
    r = waitpid(pid, &status, 0);
    if (attached != NULL)
        PyEval_RestoreThread(attached);
    CHECK(r == pid);
    if (WIFSIGNALED(status))
        fprintf(stderr, "child killed by signal %d%s\n", WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (it hung)" : "");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Forks with pygate_host_fork(); the child runs child() within the bound
 * and exits 0, which the parent waits for. */
static void
host_fork_and_check(void (*child)(void))
{
    pid_t pid = -1;
    CHECK_OK(pygate_host_fork(&pid));
    if (pid == 0) {
        alarm(CHILD_BOUND_SECONDS);
        child();
        _exit(0);
    }
    expect_child_ok(pid);
}

/* ---- a host forks while its native threads enter ------------------------- */

/* In the child of pygate_host_fork(): only this thread, detached. */
static void
host_child_after_host_fork(void)
{
    pygate_view *view = pygate_host_view();
    CHECK(pygate_thread_depth() == 0);
    pygate_token tok;
    CHECK_OK(pygate_enter(view, &tok));
    child_continues(view);
    child_leaves_and_reenters(view, tok);
    CHECK_OK(pygate_host_shutdown());
    CHECK(!Py_IsInitialized());
}

static void
host_forks_while_threads_enter(void)
{
    CHECK_OK(pygate_host_init(NULL));
    workers w;
    workers_start(&w, pygate_host_view());
    for (int round = 0; round < 3; round++) {
        pid_t pid = -1;
        CHECK_OK(pygate_host_fork(&pid));
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(CHILD_BOUND_SECONDS);
            host_child_after_host_fork();
            _exit(0);
        }
        CHECK(pygate_thread_depth() == 0 && !PyGILState_Check());
        pygate_token tok;
        CHECK_OK(pygate_enter(pygate_host_view(), &tok));
        expect_child_ok(pid);
        CHECK_OK(pygate_leave(tok));
    }
    long before = atomic_load(&w.entries);
    while (atomic_load(&w.entries) < before + 50)
        usleep(1000);   /* the parent's threads go on */
    workers_stop(&w);
    CHECK_OK(pygate_host_shutdown());
}

/* The same in debug mode, where every guard also records its site. */
static void
host_forks_debug_mode(void)
{
    setenv("PYGATE_DEBUG", "1", 1);
    host_forks_while_threads_enter();
}

static void *
host_fork_off_init_thread(void *arg)
{
    pid_t pid = -1;
    int rc = pygate_host_fork(&pid);
    if (rc == PYGATE_OK && pid == 0) {
        alarm(CHILD_BOUND_SECONDS);
        host_child_after_host_fork();
        _exit(0);
    }
    if (rc == PYGATE_OK)
        expect_child_ok(pid);
    *(int *)arg = rc;
    return NULL;
}

/* Misuse gets codes; a thread other than the init one may fork up to 3.12
 * (CPython's 3.13+ child cannot finalize then: compat.h). */
static void
host_fork_codes(void)
{
    pid_t pid = 7;
    CHECK_RC(pygate_host_fork(&pid), PYGATE_ENOTINIT);
    CHECK(pid == -1);
    CHECK_OK(pygate_host_init(NULL));
    CHECK_RC(pygate_host_fork(NULL), PYGATE_EINVAL);
    pygate_token tok;
    CHECK_OK(pygate_enter(pygate_host_view(), &tok));
    CHECK_RC(pygate_host_fork(&pid), PYGATE_EBUSY);
    CHECK_OK(pygate_leave(tok));
    int rc = -1;
    on_native_thread(host_fork_off_init_thread, &rc);
    CHECK_RC(rc, PY_VERSION_HEX >= 0x030D0000 ? PYGATE_EWRONGTHREAD
                                               : PYGATE_OK);
    /* A live sub-interpreter: refused, nothing forked (CPython's child
     * would hang or die); once it has ended, the fork goes ahead. */
    pygate_interp_pool_options o = {.interpreters = 1};
    pygate_interp_pool *pool = NULL;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    pid = 7;
    CHECK_RC(pygate_host_fork(&pid), PYGATE_EBUSY);
    CHECK(pid == -1);
    CHECK_OK(pygate_interp_pool_close(pool));
    CHECK_OK(pygate_host_fork(&pid));
    if (pid == 0) {
        alarm(CHILD_BOUND_SECONDS);
        _exit(pygate_host_shutdown() == PYGATE_OK ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_OK(pygate_host_shutdown());
}

/* By hand, from inside an entry: PyOS_BeforeFork, fork, AfterFork. */
static pygate_token host_tok;

static void
host_child_by_hand(void)
{
    pygate_view *view = pygate_host_view();
    child_continues(view);
    child_leaves_and_reenters(view, host_tok);
    /* On 3.13+ the child could not finalize: it forked attached to a state
     * of its own, not to the init thread's first one (compat.h). */
    if (PY_VERSION_HEX < 0x030D0000) {
        CHECK_OK(pygate_host_shutdown());
        CHECK(!Py_IsInitialized());
    }
}

static void
host_forks_by_hand_inside_entry(void)
{
    CHECK_OK(pygate_host_init(NULL));
    workers w;
    workers_start(&w, pygate_host_view());
    CHECK_OK(pygate_enter(pygate_host_view(), &host_tok));
    pid_t pid = host_fork(host_child_by_hand);
    expect_child_ok(pid);
    CHECK_OK(pygate_leave(host_tok));
    workers_stop(&w);
    CHECK_OK(pygate_host_shutdown());
}

/* ---- Python forks (os.fork()) while native threads enter ----------------- */

static void
python_forks_while_threads_enter(void)
{
    harness_python py = harness_start();
    workers w;
    workers_start(&w, py.view);
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    long pid = eval_long("__import__('os').fork()");
    if (pid == 0) {
        alarm(CHILD_BOUND_SECONDS);
        child_continues(py.view);
        child_leaves_and_reenters(py.view, tok);
        harness_stop(&py);
        _exit(0);
    }
    expect_child_ok((pid_t)pid);
    CHECK_OK(pygate_leave(tok));
    workers_stop(&w);
    harness_stop(&py);
}

/* ---- a native thread forks from inside its entry ------------------------- */

static harness_python worker_py;
static pygate_token worker_tok;

static void
worker_child(void)
{
    child_continues(worker_py.view);
    child_leaves_and_reenters(worker_py.view, worker_tok);
    /* The forking thread now finalizes: it is the only one. */
    CHECK_OK(pygate_view_close(worker_py.view));
    PyGILState_STATE g = PyGILState_Ensure();
    (void)g;
    CHECK(Py_FinalizeEx() == 0);
}

static void *
fork_from_worker(void *arg)
{
    (void)arg;
    CHECK_OK(pygate_enter(worker_py.view, &worker_tok));
    pid_t pid = host_fork(worker_child);
    expect_child_ok(pid);
    CHECK_OK(pygate_leave(worker_tok));
    return NULL;
}

/* Whether CPython's child, forked by a native thread attached through
 * PyGILState_Ensure, finalizes on that thread, pygate not involved (run in
 * a child process, where no pygate fork handler exists).  Up to 3.12 it
 * does; 3.13.0-3.15.2 crash (compat.h). */
static void *
probe_fork_on_thread(void *arg)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        PyOS_AfterFork_Child();
        _exit(Py_FinalizeEx() == 0 ? 0 : 1);
    }
    PyOS_AfterFork_Parent();
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    waitpid(pid, &status, 0);
    Py_END_ALLOW_THREADS
    *(int *)arg = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    PyGILState_Release(g);
    return NULL;
}

static int
cpython_child_finalizes_off_init_thread(void)
{
    pid_t probe = fork();
    CHECK(probe >= 0);
    if (probe == 0) {
        Py_InitializeEx(0);
        PyThreadState *main_ts = PyEval_SaveThread();
        int ok = 0;
        on_native_thread(probe_fork_on_thread, &ok);
        PyEval_RestoreThread(main_ts);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(probe, &status, 0) == probe);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void
native_thread_forks(void)
{
    if (!cpython_child_finalizes_off_init_thread()) {
        fprintf(stderr, "skip: %s: a child forked by a thread other than the"
                " init thread cannot finalize, even without pygate\n",
                PY_VERSION);
        exit(SKIP);
    }
    worker_py = harness_start();
    workers w;
    workers_start(&w, worker_py.view);
    on_native_thread(fork_from_worker, NULL);
    workers_stop(&w);
    harness_stop(&worker_py);
}

/* ---- guards held through handles ----------------------------------------- */

static pygate_guard *lent_guard;       /* taken by main, held by a worker */
static _Atomic int lent_release;

static void *
hold_lent_guard(void *arg)
{
    (void)arg;
    while (!atomic_load(&lent_release))
        usleep(1000);
    CHECK_OK(pygate_guard_close(lent_guard));
    return NULL;
}

static pygate_guard *own_guard;        /* taken and kept by the forker */

static void
guard_child(void)
{
    pygate_view *view = pygate_host_view();
    /* Inherited guards still enter, as a view would ... */
    pygate_token tok;
    CHECK_OK(pygate_enter_guarded(own_guard, &tok));
    CHECK(eval_long("1 + 1") == 2);
    CHECK_OK(pygate_leave(tok));
    CHECK(pygate_guard_id(lent_guard) == pygate_view_id(view));
    /* ... but shutdown does not wait for them: the thread that would
     * close lent_guard does not exist here. */
    CHECK_OK(pygate_host_shutdown());
    /* Closing one afterwards is still defined. */
    CHECK_OK(pygate_guard_close(own_guard));
}

static void
guards_inherited_by_child(void)
{
    CHECK_OK(pygate_host_init(NULL));
    pygate_view *view = pygate_host_view();
    CHECK_OK(pygate_guard_from_view(view, &lent_guard));
    CHECK_OK(pygate_guard_from_view(view, &own_guard));
    atomic_init(&lent_release, 0);
    pthread_t holder;
    CHECK(pthread_create(&holder, NULL, hold_lent_guard, NULL) == 0);
    host_fork_and_check(guard_child);
    /* In the parent both guards still hold. */
    atomic_store(&lent_release, 1);
    CHECK(pthread_join(holder, NULL) == 0);
    CHECK_OK(pygate_guard_close(own_guard));
    CHECK_OK(pygate_host_shutdown());
}

/* ---- a sub-interpreter is alive at the fork ------------------------------ */

/* Whether CPython's own PyOS_AfterFork_Child survives a live
 * sub-interpreter, pygate not involved: Python starts in a child process
 * (so that no pygate fork handler exists there), makes a sub-interpreter,
 * and forks.  On 3.8-3.15.2 it does not: the grandchild hangs in
 * _PyInterpreterState_DeleteExceptMain (up to 3.12) or dies of a fatal
 * error (3.13+). */
static int
cpython_forks_with_subinterpreter(void)
{
    pid_t probe = fork();
    CHECK(probe >= 0);
    if (probe == 0) {
        Py_InitializeEx(0);
        PyThreadState *main_ts = PyThreadState_Get();
        CHECK(Py_NewInterpreter() != NULL);
        PyThreadState_Swap(main_ts);
        PyOS_BeforeFork();
        pid_t pid = fork();
        if (pid == 0) {
            alarm(3);
            PyOS_AfterFork_Child();
            _exit(eval_long("6 * 7") == 42 ? 0 : 1);
        }
        PyOS_AfterFork_Parent();
        int status = 0;
        waitpid(pid, &status, 0);
        _exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(probe, &status, 0) == probe);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static harness_python sub_py;
static pygate_view *sub_view;
static pygate_token sub_main_tok;

static void
sub_child(void)
{
    /* PyOS_AfterFork_Child deleted the sub-interpreter. */
    pygate_token tok;
    CHECK_RC(pygate_enter(sub_view, &tok), PYGATE_EGONE);
    CHECK_OK(pygate_view_close(sub_view));
    child_continues(sub_py.view);
    child_leaves_and_reenters(sub_py.view, sub_main_tok);
    harness_stop(&sub_py);
}

static void
fork_with_subinterpreter_alive(void)
{
    if (!cpython_forks_with_subinterpreter()) {
        fprintf(stderr, "skip: %s: PyOS_AfterFork_Child does not survive a"
                " live sub-interpreter, even without pygate\n", PY_VERSION);
        exit(SKIP);
    }
    sub_py = harness_start();
    PyEval_RestoreThread(sub_py.main_ts);
    PyThreadState *sub_ts = Py_NewInterpreter();
    CHECK(sub_ts != NULL);
    CHECK_OK(pygate_view_from_current(&sub_view));
    PyThreadState_Swap(sub_py.main_ts);
    PyEval_SaveThread();

    workers in_main, in_sub;
    workers_start(&in_main, sub_py.view);
    workers_start(&in_sub, sub_view);
    CHECK_OK(pygate_enter(sub_py.view, &sub_main_tok));
    pid_t pid = host_fork(sub_child);
    expect_child_ok(pid);
    CHECK_OK(pygate_leave(sub_main_tok));
    workers_stop(&in_sub);
    workers_stop(&in_main);

    /* The parent's sub-interpreter is untouched. */
    on_native_thread(enter_and_call, sub_view);
    PyEval_RestoreThread(sub_ts);
    Py_EndInterpreter(sub_ts);
    PyThreadState_Swap(sub_py.main_ts);
    PyEval_SaveThread();
    CHECK_OK(pygate_view_close(sub_view));
    harness_stop(&sub_py);
}

/* ---- a worker pool is open at the fork ---------------------------------- */

static _Atomic int jobs_inside, jobs_released;

/* Waits, detached, until the parent releases it. */
static int
held_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&jobs_inside, 1);
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&jobs_released))
        usleep(1000);
    Py_END_ALLOW_THREADS
    return 7;
}

static _Atomic int callbacks[2];   /* [0] ran, [1] cancelled */

static void
count_callback(int status, int result, PyObject *exc, void *arg)
{
    (void)result, (void)exc, (void)arg;
    atomic_fetch_add(&callbacks[status == PYGATE_OK ? 0 : 1], 1);
}

enum { POOL_JOBS = 8 };

/* The child: the pool has no workers; it refuses new jobs, the two jobs
 * that were running and those queued without a callback end cancelled at
 * once, and the callback's job when the pool closes (close_in_child) or
 * at shutdown. */
static void
pool_child(pygate_pool *pool, pygate_job **jobs, int close_in_child)
{
    CHECK_RC(pygate_pool_submit(pool, held_job, NULL, NULL), PYGATE_ECLOSED);
    for (int i = 0; i < POOL_JOBS; i++) {   /* two were running */
        CHECK_RC(pygate_job_wait(jobs[i], 0, NULL), PYGATE_ECANCELLED);
        CHECK_OK(pygate_job_close(jobs[i]));
    }
    uint64_t sub = 0, done = 0, cancelled = 0;
    CHECK_OK(pygate_pool_counts(pool, &sub, &done, &cancelled));
    /* The callback's job waits for the stop. */
    CHECK(sub == POOL_JOBS + 1 && done == 0 && cancelled == POOL_JOBS);
    CHECK(atomic_load(&callbacks[0]) + atomic_load(&callbacks[1]) == 0);
    if (close_in_child) {
        CHECK_OK(pygate_pool_close(pool));
        CHECK(atomic_load(&callbacks[1]) == 1);
    }
    CHECK_OK(pygate_host_shutdown());
    CHECK(atomic_load(&callbacks[0]) + atomic_load(&callbacks[1]) == 1);
}

/* Waits (up to 10 s) until every job the pool took in has completed;
 * returns how many it took in, or 0 if some did not complete. */
static uint64_t
all_done(pygate_pool *pool)
{
    uint64_t sub = 0, done = 0;
    for (int i = 0; i < 10000 && (done < sub || sub == 0); i++) {
        CHECK_OK(pygate_pool_counts(pool, &sub, &done, NULL));
        usleep(1000);
    }
    return done == sub ? sub : 0;
}

static void
fork_with_pool_open(void)
{
    CHECK_OK(pygate_host_init(NULL));
    for (int close_in_child = 0; close_in_child < 2; close_in_child++) {
        pygate_pool_options o = {.workers = 2};
        pygate_pool *pool = NULL;
        CHECK_OK(pygate_pool_open(pygate_host_view(), &o, &pool));
        atomic_store(&callbacks[0], 0);
        atomic_store(&callbacks[1], 0);
        atomic_store(&jobs_inside, 0);
        atomic_store(&jobs_released, 0);
        pygate_job *jobs[POOL_JOBS];
        for (int i = 0; i < POOL_JOBS; i++)
            CHECK_OK(pygate_pool_submit(pool, held_job, NULL, &jobs[i]));
        CHECK_OK(pygate_pool_submit_then(pool, held_job, NULL,
                                         count_callback, NULL));
        while (atomic_load(&jobs_inside) < 2)   /* both workers are busy */
            usleep(1000);
        pid_t pid = -1;
        CHECK_OK(pygate_host_fork(&pid));
        if (pid == 0) {
            alarm(CHILD_BOUND_SECONDS);
            pool_child(pool, jobs, close_in_child);
            _exit(0);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* The parent's pool runs every job. */
        atomic_store(&jobs_released, 1);
        for (int i = 0; i < POOL_JOBS; i++) {
            int result = 0;
            CHECK_OK(pygate_job_wait(jobs[i], -1, &result));
            CHECK(result == 7);
            CHECK_OK(pygate_job_close(jobs[i]));
        }
        /* The callback runs before its job is counted as completed. */
        CHECK(all_done(pool) == POOL_JOBS + 1);
        CHECK(atomic_load(&callbacks[0]) == 1);
        CHECK_OK(pygate_pool_close(pool));
    }
    CHECK_OK(pygate_host_shutdown());
}

/* ---- a pool's worker forks (os.fork() in a job, say) --------------------- */

static pygate_pool *forking_pool;

static int
returns_5(void *arg)
{
    (void)arg;
    return 5;
}

/* A job through pool runs within CHILD_BOUND_SECONDS and returns 5. */
static void
pool_runs_a_job(pygate_pool *pool)
{
    pygate_job *job;
    int result = 0;
    CHECK_OK(pygate_pool_submit(pool, returns_5, NULL, &job));
    CHECK_OK(pygate_job_wait(job, CHILD_BOUND_SECONDS, &result));
    CHECK(result == 5);
    CHECK_OK(pygate_job_close(job));
}

/* In the child: the pool works on with the worker that forked (the held
 * job of the other worker ended cancelled), and closes. */
static void
pool_works_on_in_child(void)
{
    uint64_t sub = 0, done = 0, cancelled = 0;
    CHECK_OK(pygate_pool_counts(forking_pool, &sub, &done, &cancelled));
    /* The forking job may have completed already (done 1) or not. */
    CHECK(sub == 2 && done <= 1 && cancelled == 1);
    if (CHILD_STARTS_THREADS) {
        pool_runs_a_job(forking_pool);
        CHECK_OK(pygate_pool_counts(forking_pool, &sub, &done, &cancelled));
        CHECK(sub == 3 && done == 2 && cancelled == 1);
    }
    CHECK_OK(pygate_pool_close(forking_pool));
}

static void *
child_checks(void *arg)
{
    (void)arg;
    pool_works_on_in_child();
    _exit(0);
}

/* Forks by hand, attached, as os.fork() does: the child's pid in the
 * parent, 0 in the child (bounded in time by an alarm there). */
static pid_t
fork_attached(void)
{
    PyOS_BeforeFork();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid > 0) {
        PyOS_AfterFork_Parent();
        return pid;
    }
    PyOS_AfterFork_Child();
    alarm(CHILD_BOUND_SECONDS);
    return 0;
}

/* Forks by hand, attached, as os.fork() does, once the other worker is
 * inside a held job.  In the child the job returns and its worker goes on
 * (a thread of the child's checks its pool); in the parent it returns the
 * child's pid. */
static int
forking_job(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&jobs_inside) < 1)
        usleep(1000);
    Py_END_ALLOW_THREADS
    pid_t pid = fork_attached();
    if (pid > 0)
        return (int)pid;
    if (!CHILD_STARTS_THREADS) {   /* a worker cannot close its pool */
        uint64_t sub = 0, done = 0, cancelled = 0;
        CHECK_OK(pygate_pool_counts(forking_pool, &sub, &done, &cancelled));
        CHECK(sub == 2 && done == 0 && cancelled == 1);
        _exit(0);
    }
    pthread_t th;
    CHECK(pthread_create(&th, NULL, child_checks, NULL) == 0);
    return 0;
}

/* Waits for a job that forked (it returns the child's pid in the parent)
 * and for its child, which must exit 0. */
static void
forked_child_exits_0(pygate_job *forking)
{
    int pid = 0;
    CHECK_OK(pygate_job_wait(forking, -1, &pid));
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
fork_from_pool_worker(void)
{
    CHECK_OK(pygate_host_init(NULL));
    pygate_pool_options o = {.workers = 2};
    CHECK_OK(pygate_pool_open(pygate_host_view(), &o, &forking_pool));
    atomic_store(&jobs_inside, 0);
    atomic_store(&jobs_released, 0);
    pygate_job *held, *forking;
    CHECK_OK(pygate_pool_submit(forking_pool, held_job, NULL, &held));
    CHECK_OK(pygate_pool_submit(forking_pool, forking_job, NULL, &forking));
    forked_child_exits_0(forking);
    /* The parent's pool is as it was. */
    atomic_store(&jobs_released, 1);
    int result = 0;
    CHECK_OK(pygate_job_wait(held, -1, &result));
    CHECK(result == 7);
    CHECK_OK(pygate_job_close(held));
    CHECK_OK(pygate_job_close(forking));
    CHECK_OK(pygate_pool_close(forking_pool));
    CHECK_OK(pygate_host_shutdown());
}

/* ---- a pool's worker forks while a submitter waits for room ------------- */

#define ROOM_BOUND 4

static _Atomic int forking_started, room_submits;

/* Submits ROOM_BOUND + 1 jobs to a full bounded pool: the last waits for
 * room, inside the pool handle's use bracket. */
static void *
submits_past_the_bound(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROOM_BOUND + 1; i++) {
        CHECK_OK(pygate_pool_submit(forking_pool, returns_5, NULL, NULL));
        atomic_fetch_add(&room_submits, 1);
    }
    return NULL;
}

static void *
child_closes_pool(void *arg)
{
    (void)arg;
    CHECK_OK(pygate_pool_close(forking_pool));   /* no wait for the gone */
    _exit(0);
}

/* Forks once the submitter is waiting for room; in the child, a thread
 * closes the pool, whose use bracket the submitter held in the parent. */
static int
forks_while_full(void *arg)
{
    (void)arg;
    atomic_store(&forking_started, 1);
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&room_submits) < ROOM_BOUND)
        usleep(1000);
    usleep(100 * 1000);   /* the next submit is waiting for room by now */
    Py_END_ALLOW_THREADS
    pid_t pid = fork_attached();
    if (pid > 0)
        return (int)pid;
    if (!CHILD_STARTS_THREADS)
        _exit(0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, child_closes_pool, NULL) == 0);
    return 0;
}

static void
fork_while_submitter_waits(void)
{
    CHECK_OK(pygate_host_init(NULL));
    pygate_pool_options o = {.workers = 2, .max_queued = ROOM_BOUND};
    CHECK_OK(pygate_pool_open(pygate_host_view(), &o, &forking_pool));
    atomic_store(&jobs_inside, 0);
    atomic_store(&jobs_released, 0);
    pygate_job *held, *forking;
    CHECK_OK(pygate_pool_submit(forking_pool, held_job, NULL, &held));
    CHECK_OK(pygate_pool_submit(forking_pool, forks_while_full, NULL,
                                &forking));
    while (atomic_load(&jobs_inside) < 1 || !atomic_load(&forking_started))
        usleep(1000);   /* both workers busy: the next jobs stay queued */
    pthread_t submitter;
    CHECK(pthread_create(&submitter, NULL, submits_past_the_bound, NULL)
          == 0);
    forked_child_exits_0(forking);
    atomic_store(&jobs_released, 1);   /* room: the submitter goes on */
    CHECK(pthread_join(submitter, NULL) == 0);
    CHECK(atomic_load(&room_submits) == ROOM_BOUND + 1);
    int result = 0;
    CHECK_OK(pygate_job_wait(held, -1, &result));
    CHECK(result == 7);
    CHECK_OK(pygate_job_close(held));
    CHECK_OK(pygate_job_close(forking));
    CHECK(all_done(forking_pool) == ROOM_BOUND + 3);   /* in the parent */
    CHECK_OK(pygate_pool_close(forking_pool));
    CHECK_OK(pygate_host_shutdown());
}

/* ---- the fork comes while other threads make and free things ----------- */

/* At the fork another thread may be inside a lock pygate takes without
 * the GIL: the handle table's (a guard made or closed), the spare slab
 * blocks' (a pool's jobs freed).  The child has no such thread, so it must
 * not inherit such a lock held. */

#define CHURN_FORKS 60

/* gcc 12's ASan allocator takes no lock around fork(): a child whose
 * parent had a thread refilling its allocator cache hangs in its next
 * malloc (seen here in a new thread's start-up, inside libsanitizer).
 * Under ASan no thread allocates at the fork: only the guards churn, and
 * without debug mode (which notes each guard's site in a malloc'd
 * block). */
#define CHURNS_JOBS (!UNDER_ASAN)

static _Atomic int churn_stop;
static _Atomic long churn_rounds;

/* The host's view, passed in by the scenario. */
static void *
churns_guards(void *arg)
{
    pygate_view *view = (pygate_view *)arg;
    while (!atomic_load(&churn_stop)) {
        pygate_guard *g;
        CHECK_OK(pygate_guard_from_view(view, &g));
        CHECK_OK(pygate_guard_close(g));
        atomic_fetch_add(&churn_rounds, 1);
    }
    return NULL;
}

static void *
churns_jobs(void *arg)
{
    pygate_pool *pool = (pygate_pool *)arg;
    while (!atomic_load(&churn_stop)) {
        CHECK_OK(pygate_pool_submit(pool, returns_5, NULL, NULL));
        atomic_fetch_add(&churn_rounds, 1);
    }
    return NULL;
}

/* In the child: a guard (the handle table), a pool's jobs (its slabs). */
static void
child_makes_handles_and_jobs(void)
{
    pygate_guard *g;
    CHECK_OK(pygate_guard_from_view(pygate_host_view(), &g));
    CHECK_OK(pygate_guard_close(g));
    if (CHILD_STARTS_THREADS) {
        pygate_pool_options o = {.workers = 1};
        pygate_pool *pool = NULL;
        CHECK_OK(pygate_pool_open(pygate_host_view(), &o, &pool));
        for (int i = 0; i < 300; i++)   /* past a slab block */
            CHECK_OK(pygate_pool_submit(pool, returns_5, NULL, NULL));
        pool_runs_a_job(pool);
        CHECK_OK(pygate_pool_close(pool));
    }
    CHECK_OK(pygate_host_shutdown());
}

static void
fork_while_handles_change(void)
{
    if (UNDER_ASAN)
        setenv("PYGATE_DEBUG", "0", 1);
    CHECK_OK(pygate_host_init(NULL));
    pygate_pool_options o = {.workers = 1, .max_queued = 4096};
    pygate_pool *pool = NULL;
    CHECK_OK(pygate_pool_open(pygate_host_view(), &o, &pool));
    /* Its worker makes its entry before the forks: a fork while a thread
     * makes one loses it in the child, as it loses a job a thread had made
     * and not queued, and memcheck reports both (the job's is suppressed
     * for churns_jobs, tests/memcheck.supp). */
    pool_runs_a_job(pool);
    atomic_store(&churn_stop, 0);
    pthread_t guards, jobs;
    CHECK(pthread_create(&guards, NULL, churns_guards, pygate_host_view())
          == 0);
    if (CHURNS_JOBS)
        CHECK(pthread_create(&jobs, NULL, churns_jobs, pool) == 0);
    for (int i = 0; i < CHURN_FORKS; i++) {
        long before = atomic_load(&churn_rounds);
        while (atomic_load(&churn_rounds) < before + 1000)
            usleep(100);
        host_fork_and_check(child_makes_handles_and_jobs);
    }
    atomic_store(&churn_stop, 1);
    CHECK(pthread_join(guards, NULL) == 0);
    if (CHURNS_JOBS)
        CHECK(pthread_join(jobs, NULL) == 0);
    CHECK_OK(pygate_pool_close(pool));
    CHECK_OK(pygate_host_shutdown());
}

static const scenario scenarios[] = {
    {"host_forks_while_threads_enter", host_forks_while_threads_enter},
    {"host_forks_debug_mode", host_forks_debug_mode},
    {"host_fork_codes", host_fork_codes},
    {"host_forks_by_hand_inside_entry", host_forks_by_hand_inside_entry},
    {"python_forks_while_threads_enter", python_forks_while_threads_enter},
    {"native_thread_forks", native_thread_forks},
    {"guards_inherited_by_child", guards_inherited_by_child},
    {"fork_with_subinterpreter_alive", fork_with_subinterpreter_alive},
    {"fork_with_pool_open", fork_with_pool_open},
    {"fork_from_pool_worker", fork_from_pool_worker},
    {"fork_while_submitter_waits", fork_while_submitter_waits},
    {"fork_while_handles_change", fork_while_handles_change},
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
