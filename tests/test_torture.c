/*
 * test_torture.c - native threads hammering an interpreter while it shuts
 * down, run many times, each run in its own forked process.
 *
 * One run: N native threads loop enter -> call Python -> (sometimes detach
 * around native work) -> leave, while the main thread ends the interpreter
 * after a random delay (Py_FinalizeEx, or Py_EndInterpreter for a
 * sub-interpreter).  The run passes when every thread reached the end of
 * its function having seen only success or PYGATE_EFINALIZING/EGONE, no
 * Python call failed, and the process exited 0.  The driver kills a run
 * that outlives the watchdog bound and counts it as a hang.
 *
 * The pep788_* scenarios run the same with only PEP 788's names
 * (PyInterpreterView_*, PyThreadState_EnsureFromView/Release, and
 * Py_BEGIN_ALLOW_THREADS for the native work), as code written for 3.15
 * would.
 *
 * The first_entries_* scenarios hold every thread at a start line until
 * all are there, then let them make their first entry at one moment (each
 * makes its thread state then, which a free-threaded CPython does without
 * a GIL to order them) while the interpreter ends within 2 ms.
 *
 * The shared_guards_* scenarios force every guard through the shared
 * atomic word (PYGATE_NO_MEMBARRIER=1), the path taken where membarrier(2)
 * is missing; the others use the thread-local fast path.
 *
 * PYGATE_TORTURE_RUNS sets the runs per scenario (default 50, so each
 * version gets 150 finalization runs and 150 sub-interpreter runs, which
 * keeps make test's 21 runs within an hour on two slow cores); `make
 * torture` sets it to 3334 (10,002 runs per kind and version).
 */
#include "harness.h"
#include <pygate/pep788.h>

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_THREADS 16
#define WATCHDOG_SECONDS 60
#define MAX_DELAY_US 20000

static int use_pep788;   /* set by the scenario, inherited by each run */
static int at_once;      /* the same: first entries at one moment */
static _Atomic int arrived, go;   /* in a run: the start line */

typedef struct worker {
    pthread_t th;
    pygate_view *view;
    PyInterpreterView *pep_view;
    PyObject *work;          /* borrowed from the run: alive while entered */
    unsigned seed;
    long calls;
    int end_rc;              /* the code that stopped the loop */
    int bad;                 /* a failed call or an unexpected code */
    _Atomic int reached_end;
} worker;

/* What the runs did, summed over all children (shared memory). */
typedef struct totals {
    _Atomic long calls, ended_finalizing, ended_gone, ended_refused;
} totals;
static totals *shared;

/* ---- one run (in the child) ---------------------------------------------- */

/* Native work the compiler cannot drop (gcc 16 warns of a volatile sum
 * that is only written). */
static unsigned
native_work(unsigned *seed)
{
    volatile unsigned x = 0;
    for (unsigned i = rand_r(seed) % 2000; i > 0; i--)
        x = x + i;
    return x;
}

static void
call_work(worker *w, long i)
{
    PyObject *res = PyObject_CallFunction(w->work, "l", i);
    if (res == NULL) {
        PyErr_Print();
        w->bad = 1;
    }
    Py_XDECREF(res);
}

/* The same entry with PEP 788's names only.  A refusal has no code. */
#define REFUSED 1
static int
one_entry_pep788(worker *w, long i)
{
    PyThreadStateToken *token = PyThreadState_EnsureFromView(w->pep_view);
    if (token == NULL)
        return REFUSED;
    call_work(w, i);
    if (i % 8 == 0) {
        Py_BEGIN_ALLOW_THREADS
        native_work(&w->seed);
        Py_END_ALLOW_THREADS
    }
    PyThreadState_Release(token);
    w->calls++;
    return PYGATE_OK;
}

/* One entry: call work(i), sometimes detached around native work.  Returns
 * the enter code; a failure inside is recorded in w->bad. */
static int
one_entry(worker *w, long i)
{
    if (use_pep788)
        return one_entry_pep788(w, i);
    pygate_token tok;
    int rc = pygate_enter(w->view, &tok);
    if (rc != PYGATE_OK)
        return rc;
    call_work(w, i);
    if (i % 8 == 0) {
        pygate_token d;
        if (pygate_detach(&d) != PYGATE_OK)
            w->bad = 1;
        else {
            native_work(&w->seed);
            if (pygate_reattach(d) != PYGATE_OK)
                w->bad = 1;
        }
    }
    if (pygate_leave(tok) != PYGATE_OK)
        w->bad = 1;
    w->calls++;
    return PYGATE_OK;
}

static void *
worker_main(void *arg)
{
    worker *w = (worker *)arg;
    int rc;
    if (at_once) {
        atomic_fetch_add(&arrived, 1);
        while (!atomic_load(&go))
            sched_yield();
    }
    for (long i = 0; (rc = one_entry(w, i)) == PYGATE_OK && !w->bad; i++)
        ;
    w->end_rc = rc;
    if (rc != PYGATE_OK && rc != PYGATE_EFINALIZING && rc != PYGATE_EGONE
            && !(use_pep788 && rc == REFUSED))
        w->bad = 1;
    atomic_store(&w->reached_end, 1);
    return NULL;
}

static PyObject *
define_work(void)
{
    exec_ok("import json\n"
            "def work(i):\n"
            "    return len(json.dumps({'i': i, 'sq': i * i}))\n");
    PyObject *work = eval("work");
    CHECK(work != NULL);
    return work;
}

/* A PEP 788 view of the interpreter the caller is attached to, or NULL
 * when the scenario uses pygate's names. */
static PyInterpreterView *
pep788_view_if_used(void)
{
    if (!use_pep788)
        return NULL;
    PyInterpreterView *view = PyInterpreterView_FromCurrent();
    CHECK(view != NULL);
    return view;
}

static void
start_workers(worker *ws, int n, pygate_view *view,
              PyInterpreterView *pep_view, PyObject *work, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        ws[i] = (worker){0};
        ws[i].view = view;
        ws[i].pep_view = pep_view;
        ws[i].work = work;
        ws[i].seed = seed + (unsigned)i;
        CHECK(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) == 0);
    }
}

static void
join_and_check(worker *ws, int n)
{
    for (int i = 0; i < n; i++) {
        CHECK(pthread_join(ws[i].th, NULL) == 0);
        CHECK(atomic_load(&ws[i].reached_end));
        if (ws[i].bad)
            fprintf(stderr, "worker %d: end code %s after %ld calls\n", i,
                    pygate_err_name(ws[i].end_rc), ws[i].calls);
        CHECK(!ws[i].bad);
        atomic_fetch_add(&shared->calls, ws[i].calls);
        atomic_fetch_add(ws[i].end_rc == PYGATE_EGONE ? &shared->ended_gone
                         : ws[i].end_rc == REFUSED ? &shared->ended_refused
                                                   : &shared->ended_finalizing,
                         1);
    }
}

/* After start_workers: the random moment at which the interpreter ends.
 * For first_entries_* runs, all threads are released at once first and
 * it comes within 2 ms. */
static void
wait_before_ending(int n, unsigned *seed)
{
    if (!at_once) {
        usleep(rand_r(seed) % MAX_DELAY_US);
        return;
    }
    while (atomic_load(&arrived) < n)
        sched_yield();
    atomic_store(&go, 1);
    usleep(rand_r(seed) % 2000);
}

static void
finalize_run(int n, unsigned seed)
{
    harness_python py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    PyObject *work = define_work();
    PyInterpreterView *pep_view = pep788_view_if_used();
    PyEval_SaveThread();

    worker ws[MAX_THREADS];
    start_workers(ws, n, py.view, pep_view, work, seed);
    wait_before_ending(n, &seed);
    PyEval_RestoreThread(py.main_ts);
    Py_DECREF(work);
    CHECK(Py_FinalizeEx() == 0);
    join_and_check(ws, n);
    CHECK_OK(pygate_view_close(py.view));
    if (pep_view != NULL)
        PyInterpreterView_Close(pep_view);
}

static void
subinterp_run(int n, unsigned seed)
{
    harness_python py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    PyThreadState *sub_ts = Py_NewInterpreter();
    CHECK(sub_ts != NULL);
    PyObject *work = define_work();
    pygate_view *sub_view;
    CHECK_OK(pygate_view_from_current(&sub_view));
    PyInterpreterView *pep_view = pep788_view_if_used();
    PyEval_SaveThread();

    worker ws[MAX_THREADS];
    start_workers(ws, n, sub_view, pep_view, work, seed);
    wait_before_ending(n, &seed);
    PyEval_RestoreThread(sub_ts);
    Py_DECREF(work);
    Py_EndInterpreter(sub_ts);
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
    join_and_check(ws, n);
    CHECK_OK(pygate_view_close(sub_view));
    if (pep_view != NULL)
        PyInterpreterView_Close(pep_view);
    harness_stop(&py);
}

/* ---- pools: submitters, synchronous callers, deferred decrefs ----------- */

/* Each thread of a pool run has one role, by its index: submit jobs to the
 * pool and wait for each, make synchronous pygate_calls, or give away
 * references with pygate_decref.  Interpreter-pool runs submit jobs and
 * make value calls to an interpreter pool. */
enum { ROLE_SUBMIT, ROLE_CALL, ROLE_DECREF, NROLES };

typedef struct pool_worker {
    pthread_t th;
    int role;
    pygate_view *view;
    pygate_pool *pool;
    pygate_interp_pool *ipool;  /* interpreter-pool runs */
    PyObject *obj;              /* ROLE_DECREF: it owns refs references */
    long refs;
    long done;
    int end_rc;
    int bad;
    _Atomic int reached_end;
} pool_worker;

static int
tiny_job(void *arg)
{
    (void)arg;
    PyObject *r = PyLong_FromLong(7);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* A job's end: it ran (and returned 0) or was cancelled. */
static int
wait_job(pygate_job *job)
{
    int result = -1;
    int rc = pygate_job_wait(job, -1, &result);
    int ok = (rc == PYGATE_OK && result == 0) || rc == PYGATE_ECANCELLED;
    return pygate_job_close(job) == PYGATE_OK && ok;
}

static int
submit_one(pool_worker *w)
{
    pygate_job *job;
    int rc = w->ipool != NULL
                 ? pygate_interp_pool_submit(w->ipool, PYGATE_ANY_INTERP,
                                             tiny_job, NULL, &job)
                 : pygate_pool_submit(w->pool, tiny_job, NULL, &job);
    if (rc == PYGATE_OK && !wait_job(job))
        w->bad = 1;
    return rc;
}

static int
call_one(pool_worker *w)
{
    if (w->ipool == NULL) {
        int result = -1;
        int rc = pygate_call(w->view, tiny_job, NULL, &result);
        if (rc == PYGATE_OK && result != 0)
            w->bad = 1;
        return rc;
    }
    pygate_value args[2] = {{PYGATE_VALUE_INT, 40, 0, NULL, 0},
                            {PYGATE_VALUE_INT, 2, 0, NULL, 0}};
    pygate_value r;
    int rc = pygate_interp_pool_call(w->ipool, PYGATE_ANY_INTERP, "operator",
                                     "add", args, 2, &r);
    if (rc == PYGATE_OK && !(r.kind == PYGATE_VALUE_INT && r.integer == 42))
        w->bad = 1;
    return rc;
}

static void *
pool_worker_main(void *arg)
{
    pool_worker *w = (pool_worker *)arg;
    int rc = PYGATE_OK;
    while (rc == PYGATE_OK && !w->bad) {
        if (w->role == ROLE_SUBMIT)
            rc = submit_one(w);
        else if (w->role == ROLE_CALL)
            rc = call_one(w);
        else if (w->refs == w->done)
            break;   /* every reference given away */
        else
            rc = pygate_decref(w->view, w->obj);
        w->done += rc == PYGATE_OK;
    }
    w->end_rc = rc;
    /* A pool refuses with EFINALIZING once its interpreter shuts down;
     * entries and decrefs say EGONE once it is gone; a value call whose
     * job the shutdown cancelled says ECANCELLED. */
    if (rc != PYGATE_OK && rc != PYGATE_EFINALIZING && rc != PYGATE_EGONE
            && !(rc == PYGATE_ECANCELLED && w->ipool != NULL))
        w->bad = 1;
    atomic_store(&w->reached_end, 1);
    return NULL;
}

/* The decref workers' references that shutdown refuses, or that race its
 * last drain, stay theirs, left alone (pygate.h): their object outlives
 * its interpreter on purpose, and this keeps it reachable, so that
 * memcheck does not count it as memory pygate lost (volatile: the store
 * must stay). */
static PyObject *volatile decref_target;

/* Starts n pool workers (attached: ROLE_DECREF's references are taken
 * here); detaches for them. */
static void
start_pool_workers(pool_worker *ws, int n, pygate_view *view,
                   pygate_pool *pool, pygate_interp_pool *ipool,
                   PyObject *obj)
{
    decref_target = obj;
    for (int i = 0; i < n; i++) {
        ws[i] = (pool_worker){0};
        ws[i].role = ipool != NULL ? i % ROLE_DECREF : i % NROLES;
        ws[i].view = view;
        ws[i].pool = pool;
        ws[i].ipool = ipool;
        if (ws[i].role == ROLE_DECREF) {
            ws[i].obj = obj;
            ws[i].refs = 100000;
            for (long k = 0; k < ws[i].refs; k++)
                Py_INCREF(obj);
        }
    }
    PyThreadState *ts = PyEval_SaveThread();
    for (int i = 0; i < n; i++)
        CHECK(pthread_create(&ws[i].th, NULL, pool_worker_main, &ws[i])
              == 0);
    PyEval_RestoreThread(ts);
}

static void
join_pool_workers(pool_worker *ws, int n)
{
    for (int i = 0; i < n; i++) {
        CHECK(pthread_join(ws[i].th, NULL) == 0);
        CHECK(atomic_load(&ws[i].reached_end));
        if (ws[i].bad)
            fprintf(stderr, "pool worker %d (role %d): end code %s after"
                    " %ld\n", i, ws[i].role,
                    pygate_err_name(ws[i].end_rc), ws[i].done);
        CHECK(!ws[i].bad);
        atomic_fetch_add(&shared->calls, ws[i].done);
        atomic_fetch_add(ws[i].end_rc == PYGATE_EGONE ? &shared->ended_gone
                                                     : &shared->ended_finalizing,
                         1);
    }
}

/* Nothing silently dropped: every job ran or was cancelled. */
static void
check_pool_counts(pygate_pool *pool, pygate_interp_pool *ipool)
{
    uint64_t s = 0, c = 0, x = 0;
    if (ipool != NULL)
        CHECK_OK(pygate_interp_pool_counts(ipool, &s, &c, &x));
    else
        CHECK_OK(pygate_pool_counts(pool, &s, &c, &x));
    if (s != c + x)
        fprintf(stderr, "submitted %llu, completed %llu, cancelled %llu\n",
                (unsigned long long)s, (unsigned long long)c,
                (unsigned long long)x);
    CHECK(s == c + x);
}

/* A queue bound for half the runs (0: none): submitters then also wait
 * for room when the interpreter goes. */
static unsigned
random_max_queued(unsigned *seed)
{
    return rand_r(seed) % 2 ? 1 + rand_r(seed) % 64 : 0;
}

static pygate_pool_options
random_pool_options(unsigned *seed)
{
    pygate_pool_options o = {.workers = 1 + rand_r(seed) % 3,
                             .batch = 1 + rand_r(seed) % 64,
                             .on_close = (int)(rand_r(seed) % 2)};
    o.max_queued = random_max_queued(seed);
    return o;
}

static void
pool_finalize_run(int n, unsigned seed)
{
    harness_python py = harness_start();
    pygate_pool_options o = random_pool_options(&seed);
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    PyEval_RestoreThread(py.main_ts);
    PyObject *obj = PyList_New(0);
    pool_worker ws[MAX_THREADS];
    start_pool_workers(ws, n, py.view, pool, NULL, obj);
    Py_DECREF(obj);
    PyEval_SaveThread();
    usleep(rand_r(&seed) % MAX_DELAY_US);
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    join_pool_workers(ws, n);
    check_pool_counts(pool, NULL);
    CHECK_OK(pygate_pool_close(pool));
    CHECK_OK(pygate_view_close(py.view));
}

static void
pool_subinterp_run(int n, unsigned seed)
{
    harness_python py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    PyThreadState *sub_ts = Py_NewInterpreter();
    CHECK(sub_ts != NULL);
    pygate_view *sub_view;
    CHECK_OK(pygate_view_from_current(&sub_view));
    pygate_pool_options o = random_pool_options(&seed);
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(sub_view, &o, &pool));
    PyObject *obj = PyList_New(0);
    pool_worker ws[MAX_THREADS];
    start_pool_workers(ws, n, sub_view, pool, NULL, obj);
    Py_DECREF(obj);
    PyEval_SaveThread();
    usleep(rand_r(&seed) % MAX_DELAY_US);
    PyEval_RestoreThread(sub_ts);
    Py_EndInterpreter(sub_ts);
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
    join_pool_workers(ws, n);
    check_pool_counts(pool, NULL);
    CHECK_OK(pygate_pool_close(pool));
    CHECK_OK(pygate_view_close(sub_view));
    harness_stop(&py);
}

static void
interp_pool_finalize_run(int n, unsigned seed)
{
    harness_python py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 2,
                                    .on_close = (int)(rand_r(&seed) % 2)};
    o.max_queued = random_max_queued(&seed);
    pygate_interp_pool *ipool;
    char error[512];
    int rc = pygate_interp_pool_open(&o, &ipool, error, sizeof error);
    if (rc != PYGATE_OK)
        fprintf(stderr, "%s\n", error);
    CHECK_OK(rc);
    PyEval_RestoreThread(py.main_ts);
    pool_worker ws[MAX_THREADS];
    start_pool_workers(ws, n, py.view, NULL, ipool, NULL);
    PyEval_SaveThread();
    usleep(rand_r(&seed) % MAX_DELAY_US);
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    join_pool_workers(ws, n);
    check_pool_counts(NULL, ipool);
    CHECK_OK(pygate_interp_pool_close(ipool));
    CHECK_OK(pygate_view_close(py.view));
}

/* ---- the driver (in the parent, which never starts Python) -------------- */

typedef struct tally {
    int runs, hangs, crashes, failures;
} tally;

/* Waits for pid up to the watchdog bound; kills it on expiry. */
static int
wait_with_watchdog(pid_t pid, int *status)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        CHECK(r == 0);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > WATCHDOG_SECONDS) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return 0;
        }
        usleep(2000);
    }
}

static void
drive(const char *kind, void (*run)(int, unsigned), int n)
{
    const char *env = getenv("PYGATE_TORTURE_RUNS");
    int runs = env != NULL ? atoi(env) : 50;
    CHECK(runs > 0);
    tally t = {0};
    shared = (totals *)mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED);
    unsigned base = (unsigned)time(NULL);
    for (int i = 0; i < runs; i++) {
        unsigned seed = base * 7919u + (unsigned)i;
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            run(n, seed);
            exit(0);
        }
        int status = 0;
        t.runs++;
        if (!wait_with_watchdog(pid, &status)) {
            t.hangs++;
            fprintf(stderr, "%s n=%d seed %u: hang (killed after %d s)\n",
                    kind, n, seed, WATCHDOG_SECONDS);
        } else if (WIFSIGNALED(status)) {
            t.crashes++;
            fprintf(stderr, "%s n=%d seed %u: killed by signal %d\n",
                    kind, n, seed, WTERMSIG(status));
        } else if (WEXITSTATUS(status) != 0) {
            t.failures++;
            fprintf(stderr, "%s n=%d seed %u: exit code %d\n",
                    kind, n, seed, WEXITSTATUS(status));
        }
    }
    printf("torture %s threads=%d: %d runs, %d hangs, %d crashes, "
           "%d failed checks; %ld calls; threads stopped by "
           "EFINALIZING %ld, EGONE %ld, NULL (PEP 788) %ld\n", kind, n,
           t.runs, t.hangs, t.crashes, t.failures,
           atomic_load(&shared->calls),
           atomic_load(&shared->ended_finalizing),
           atomic_load(&shared->ended_gone),
           atomic_load(&shared->ended_refused));
    const char *log = getenv("PYGATE_TORTURE_LOG");   /* run_matrix.sh */
    FILE *f = log != NULL ? fopen(log, "a") : NULL;
    if (f != NULL) {
        fprintf(f, "torture %s threads=%d: %d runs, %d failures\n", kind, n,
                t.runs, t.hangs + t.crashes + t.failures);
        fclose(f);
    }
    CHECK(t.hangs == 0 && t.crashes == 0 && t.failures == 0);
}

static void finalize_1(void) { drive("finalize", finalize_run, 1); }
static void finalize_4(void) { drive("finalize", finalize_run, 4); }
static void finalize_16(void) { drive("finalize", finalize_run, 16); }
static void subinterp_1(void) { drive("end_interpreter", subinterp_run, 1); }
static void subinterp_4(void) { drive("end_interpreter", subinterp_run, 4); }
static void subinterp_16(void) { drive("end_interpreter", subinterp_run, 16); }

static void pool_finalize_1(void) { drive("pool_finalize", pool_finalize_run, 1); }
static void pool_finalize_4(void) { drive("pool_finalize", pool_finalize_run, 4); }
static void pool_finalize_16(void) { drive("pool_finalize", pool_finalize_run, 16); }
static void pool_subinterp_4(void) { drive("pool_end_interpreter", pool_subinterp_run, 4); }
static void interp_pool_1(void) { drive("interp_pool_finalize", interp_pool_finalize_run, 1); }
static void interp_pool_4(void) { drive("interp_pool_finalize", interp_pool_finalize_run, 4); }
static void interp_pool_16(void) { drive("interp_pool_finalize", interp_pool_finalize_run, 16); }

static void
pep788_finalize_1(void)
{
    use_pep788 = 1;
    drive("pep788_finalize", finalize_run, 1);
}

static void
pep788_finalize_4(void)
{
    use_pep788 = 1;
    drive("pep788_finalize", finalize_run, 4);
}

static void
pep788_finalize_16(void)
{
    use_pep788 = 1;
    drive("pep788_finalize", finalize_run, 16);
}

static void
pep788_subinterp_4(void)
{
    use_pep788 = 1;
    drive("pep788_end_interpreter", subinterp_run, 4);
}

static void
first_entries_finalize_16(void)
{
    at_once = 1;
    drive("first_entries_finalize", finalize_run, 16);
}

static void
first_entries_subinterp_16(void)
{
    at_once = 1;
    drive("first_entries_end_interpreter", subinterp_run, 16);
}

/* Every guard shared, as on a kernel without membarrier(2). */
static void
shared_guards_finalize_16(void)
{
    setenv("PYGATE_NO_MEMBARRIER", "1", 1);
    drive("shared_guards_finalize", finalize_run, 16);
}

static void
shared_guards_subinterp_4(void)
{
    setenv("PYGATE_NO_MEMBARRIER", "1", 1);
    drive("shared_guards_end_interpreter", subinterp_run, 4);
}

static const scenario scenarios[] = {
    {"finalize_1", finalize_1},
    {"finalize_4", finalize_4},
    {"finalize_16", finalize_16},
    {"subinterp_1", subinterp_1},
    {"subinterp_4", subinterp_4},
    {"subinterp_16", subinterp_16},
    {"pep788_finalize_1", pep788_finalize_1},
    {"pep788_finalize_4", pep788_finalize_4},
    {"pep788_finalize_16", pep788_finalize_16},
    {"pep788_subinterp_4", pep788_subinterp_4},
    {"first_entries_finalize_16", first_entries_finalize_16},
    {"first_entries_subinterp_16", first_entries_subinterp_16},
    {"shared_guards_finalize_16", shared_guards_finalize_16},
    {"shared_guards_subinterp_4", shared_guards_subinterp_4},
    {"pool_finalize_1", pool_finalize_1},
    {"pool_finalize_4", pool_finalize_4},
    {"pool_finalize_16", pool_finalize_16},
    {"pool_subinterp_4", pool_subinterp_4},
    {"interp_pool_finalize_1", interp_pool_1},
    {"interp_pool_finalize_4", interp_pool_4},
    {"interp_pool_finalize_16", interp_pool_16},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
