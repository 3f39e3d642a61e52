/*
 * pool_bench.c - worker pools, deferred decref and interpreter pools,
 * measured side by side in one run.
 *
 * Worker pools and deferred decref:
 *   round trip    one submit + wait on an idle pool, beside one
 *                 pygate_enter + empty call + leave
 *   drain         submissions timed with the pool's one worker held, then
 *                 that worker running the jobs alone, beside entries
 *   decref        pygate_decref from a thread that is not attached (ns per
 *                 call, into fresh and into reused memory, beside what a
 *                 fresh page costs), and 8 threads x N decrefs of one
 *                 object: its reference count afterwards, and RSS
 *   python ticks  a Python thread counting for a while with the pool idle,
 *                 then with 8 native threads keeping it saturated
 * Interpreter pools (Python in parallel from 3.12):
 *   cpu jobs      a pure-Python loop of about 1 ms per job, K = 1, 2, 4, 8
 *                 interpreters: pygate's pool beside K native threads each
 *                 driving an interpreter of its own made by hand; twice:
 *                 a loop that makes an int at every step (bench_work.work)
 *                 and one that allocates nothing (bench_work.spin)
 *   tiny jobs     an empty function, through the pool
 *   memory, time  RSS per interpreter, and opening + closing a pool
 *   executor      on 3.14+, InterpreterPoolExecutor with the same jobs, in
 *                 this process (bench/interp_executor.py)
 *
 * usage: pool_bench [--quick] [--interp] [--decref] [--targets]
 *   --quick   tiny counts, for make test
 *   --interp  the interpreter pools' cpu and tiny jobs only
 *   --decref  the deferred decref only (for perf and callgrind)
 *   --targets the worker pools' round trip and drain, deferred decref
 *             and python ticks only (bench/many_threads.sh)
 * Output: tables on stdout, and "csv," lines for bench/results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_K 8

static int quick;
static pygate_view *main_view;
/* The cpu jobs: a bench_work.py function and its loop length, tuned to
 * about 1 ms.  work() makes a new int at every step, so its speed depends
 * on the state of the interpreter's allocator too (which objects share
 * its pools); spin() computes on cached small ints only. */
typedef struct cpu_work {
    const char *function;
    const char *what;     /* the CSV measure */
    long steps;
} cpu_work;

static cpu_work allocating = {"work", "cpu_jobs_per_second", 20000};
static cpu_work small_ints = {"spin", "cpu_noalloc_jobs_per_second", 20000};

static double
now(void)   /* seconds */
{
    return bench_now_us() / 1e6;
}

static void
csv(const char *measure, const char *what, int k, double value,
    const char *unit)
{
    printf("csv,%s,%s,%s,%d,%.3f,%s\n", BENCH_PY_VERSION, measure, what, k, value,
           unit);
}

static void
die(const char *what, int rc)
{
    fprintf(stderr, "pool_bench: %s: %s\n", what, pygate_strerror(rc));
    exit(1);
}

static void
check(int rc, const char *what)
{
    if (rc != PYGATE_OK)
        die(what, rc);
}

/* Runs code in the attached interpreter's __main__; exits on error. */
static void
run_code(const char *code)
{
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *g = PyModule_GetDict(main);
    PyObject *r = PyRun_String(code, Py_file_input, g, g);
    if (r == NULL) {
        PyErr_Print();
        exit(1);
    }
    Py_DECREF(r);
}

/* Calls __main__.<name>(arg) attached; returns 0, -1 with an exception. */
static int
call_main(const char *name, long arg)
{
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *fn = PyObject_GetAttrString(main, name);
    PyObject *r = fn == NULL ? NULL
                  : arg < 0 ? PyObject_CallObject(fn, NULL)
                            : PyObject_CallFunction(fn, "l", arg);
    Py_XDECREF(fn);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* The jobs come from bench/bench_work.py, which interp_executor.py gives
 * InterpreterPoolExecutor too: the same code on both sides. */
static const char work_code[] =
    "import sys\n"
    "sys.path.insert(0, '" PYGATE_BENCH_DIR "')\n"
    "from bench_work import work, spin, empty\n";

/* ---- worker pools: round trip ------------------------------------------ */

static int
empty_job(void *arg)
{
    (void)arg;
    return call_main("empty", -1);
}

static void
round_trip(void)
{
    long n = quick ? 200 : 20000;
    pygate_pool_options one = {.workers = 1};
    pygate_pool *pool;
    check(pygate_pool_open(main_view, &one, &pool), "pool_open");
    double t0 = now();
    for (long i = 0; i < n; i++) {
        pygate_job *job;
        check(pygate_pool_submit(pool, empty_job, NULL, &job), "submit");
        check(pygate_job_wait(job, -1, NULL), "wait");
        pygate_job_close(job);
    }
    double pool_ns = (now() - t0) * 1e9 / (double)n;
    t0 = now();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        check(pygate_enter(main_view, &tok), "enter");
        empty_job(NULL);
        pygate_leave(tok);
    }
    double enter_ns = (now() - t0) * 1e9 / (double)n;
    pygate_pool_close(pool);
    printf("\nworker pool: one submit + wait on an idle pool %.0f ns; one"
           " pygate_enter + empty call + leave %.0f ns (%.0fx)\n", pool_ns,
           enter_ns, pool_ns / enter_ns);
    csv("round_trip_ns", "pool_submit_wait", 1, pool_ns, "ns");
    csv("round_trip_ns", "pygate_enter", 1, enter_ns, "ns");
}

/* ---- worker pools: one worker draining a queue -------------------------- */

static _Atomic long drained, to_drain;
static _Atomic int gate_open;
static sem_t all_drained;

/* The last of to_drain posts all_drained: a waiter polling the count
 * would pull its cache line away from the worker at every job. */
static int
counted_empty_job(void *arg)
{
    (void)arg;
    int rc = call_main("empty", -1);
    if (atomic_fetch_add_explicit(&drained, 1, memory_order_relaxed) + 1
            == atomic_load_explicit(&to_drain, memory_order_relaxed))
        sem_post(&all_drained);
    return rc;
}

/* Keeps the pool's worker (not the GIL) until the gate opens. */
static int
gate_job(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&gate_open))
        sched_yield();
    Py_END_ALLOW_THREADS
    return 0;
}

static double entering_seconds;

/* A native thread of its own (as the worker is, and as pygate_bench's
 * entering threads are): *arg entries, each making the jobs' call. */
static void *
entering_thread(void *arg)
{
    long n = *(long *)arg;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        check(pygate_enter(main_view, &tok), "enter");
        counted_empty_job(NULL);
        pygate_leave(tok);
    }
    entering_seconds = now() - t0;
    return NULL;
}

/* The two halves of a pool's work apart, with nothing running beside
 * them: n jobs submitted from one thread while the pool's one worker is
 * held (what a submission costs), then run by that worker alone (what it
 * costs the worker to take, run and end a job), beside n entries making
 * the same call on a native thread of their own.  The worker can run jobs
 * no faster than this, whoever submits them.  Twice, the second measured:
 * the jobs' memory is fresh the first time. */
static void
drain(void)
{
    long n = quick ? 1000 : 100000;
    pygate_pool_options one = {.workers = 1};
    pygate_pool *pool;
    check(pygate_pool_open(main_view, &one, &pool), "pool_open");
    sem_init(&all_drained, 0, 0);
    double submit_ns = 0, drain_ns = 0, enter_ns = 0;
    for (int round = 0; round < 2; round++) {
        atomic_store(&gate_open, 0);
        atomic_store(&drained, 0);
        atomic_store(&to_drain, n);
        check(pygate_pool_submit(pool, gate_job, NULL, NULL), "submit");
        double t0 = now();
        for (long i = 0; i < n; i++)
            check(pygate_pool_submit(pool, counted_empty_job, NULL, NULL),
                  "submit");
        submit_ns = (now() - t0) * 1e9 / (double)n;
        t0 = now();
        atomic_store(&gate_open, 1);
        while (sem_wait(&all_drained) != 0)
            ;
        drain_ns = (now() - t0) * 1e9 / (double)n;
        atomic_store(&drained, 0);
        atomic_store(&to_drain, 0);   /* nobody waits on the entries */
        pthread_t th;
        long calls = n;
        pthread_create(&th, NULL, entering_thread, &calls);
        pthread_join(th, NULL);
        enter_ns = entering_seconds * 1e9 / (double)n;
    }
    pygate_pool_close(pool);
    sem_destroy(&all_drained);
    printf("worker pool, apart: a submission %.0f ns (the worker held);"
           " one worker alone runs a queued job in %.0f ns; one"
           " pygate_enter + the same call + leave %.0f ns (%.2fx)\n",
           submit_ns, drain_ns, enter_ns, drain_ns / enter_ns);
    csv("drain_ns", "pool_submit", 1, submit_ns, "ns");
    csv("drain_ns", "pool_worker", 1, drain_ns, "ns");
    csv("drain_ns", "pygate_enter", 1, enter_ns, "ns");
}

/* ---- deferred decref ----------------------------------------------------- */

typedef struct decrefs {
    pthread_t th;
    PyObject *obj;
    long n;
    double seconds;
} decrefs;

static void *
decref_loop(void *arg)
{
    decrefs *d = (decrefs *)arg;
    double t0 = now();
    for (long i = 0; i < d->n; i++)
        if (pygate_decref(main_view, d->obj) != PYGATE_OK)
            die("decref", -1);
    d->seconds = now() - t0;
    return NULL;
}

/* threads x n deferred decrefs of one object; returns ns per call on the
 * first thread.  Checks every reference was released. */
static double
decref_run(int threads, long n, long *rss_growth)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *obj = PyList_New(0);
    Py_ssize_t base = Py_REFCNT(obj);
    for (long i = 0; i < threads * n; i++)
        Py_INCREF(obj);
    PyGILState_Release(g);
    long before = bench_rss_kib();
    decrefs d[8];
    for (int t = 0; t < threads; t++) {
        d[t] = (decrefs){0, obj, n, 0};
        pthread_create(&d[t].th, NULL, decref_loop, &d[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(d[t].th, NULL);
    pygate_token tok;   /* the next entry drops what was queued */
    check(pygate_enter(main_view, &tok), "enter");
    Py_ssize_t after = Py_REFCNT(obj);
    Py_DECREF(obj);
    pygate_leave(tok);
    *rss_growth = bench_rss_kib() - before;
    if (after != base) {
        fprintf(stderr, "pool_bench: refcount %zd after the decrefs, %zd"
                " expected\n", (Py_ssize_t)after, (Py_ssize_t)base);
        exit(1);
    }
    return d[0].seconds * 1e9 / (double)n;
}

/* One thread alone, twice: its first n references go into memory the
 * kernel has to supply (the blocks of 8 bytes a reference are fresh
 * pages), the second n into the first run's blocks, which the drain freed
 * and malloc hands out again.  The difference is the page faults, priced
 * beside them. */
static void
deferred_decref(void)
{
    long n = quick ? 10000 : 1000000;
    long growth1, growth8;
    double fresh = decref_run(1, n, &growth1);
    double reused = decref_run(1, n, &growth1);
    double eight = decref_run(8, n, &growth8);
    double page_us = bench_fresh_page_us();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    printf("deferred decref from a thread not attached: %.1f ns per call"
           " alone into reused memory, %.1f ns into fresh memory (a fresh"
           " page costs %.2f us here: %.1f ns per 8-byte reference);"
           " 8 threads x %ld: %.1f ns per call each, every reference"
           " released, RSS %+ld KiB after\n", reused, fresh, page_us,
           page_us * 1e3 / (double)(page / sizeof(PyObject *)), n, eight,
           growth8);
    csv("decref_ns", "one_thread", 1, fresh, "ns");
    csv("decref_ns", "one_thread_reused", 1, reused, "ns");
    csv("fresh_page_us", "mmap_first_write", 1, page_us, "us");
    csv("decref_ns", "eight_threads", 8, eight, "ns");
    csv("decref_rss_growth", "eight_threads", 8, (double)growth8, "KiB");
}

/* ---- a Python thread while the pool is saturated ------------------------ */

static _Atomic int saturate;

static int
busy_job(void *arg)
{
    (void)arg;
    return call_main("work", 200);
}

static void *
submitter(void *arg)
{
    pygate_pool *pool = (pygate_pool *)arg;
    while (atomic_load(&saturate)) {
        pygate_job *job;
        if (pygate_pool_submit(pool, busy_job, NULL, &job) != PYGATE_OK)
            break;
        pygate_job_wait(job, -1, NULL);
        pygate_job_close(job);
    }
    return NULL;
}

/* Ticks a Python thread counts in `seconds`. */
static long
python_ticks(double seconds)
{
    pygate_token tok;
    check(pygate_enter(main_view, &tok), "enter");
    char code[512];
    snprintf(code, sizeof code,
             "import threading, time\n"
             "ticks = 0\n"
             "def count():\n"
             "    global ticks\n"
             "    end = time.monotonic() + %f\n"
             "    while time.monotonic() < end:\n"
             "        ticks += 1\n"
             "t = threading.Thread(target=count)\n"
             "t.start()\n"
             "t.join()\n", seconds);
    run_code(code);
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *v = PyObject_GetAttrString(main, "ticks");
    long ticks = PyLong_AsLong(v);
    Py_XDECREF(v);
    pygate_leave(tok);
    return ticks;
}

static void
python_thread_progress(void)
{
    double seconds = quick ? 0.1 : 1.0;
    pygate_pool *pool;
    check(pygate_pool_open(main_view, NULL, &pool), "pool_open");
    long idle = python_ticks(seconds);
    atomic_store(&saturate, 1);
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, submitter, pool);
    usleep(50000);
    long busy = python_ticks(seconds);
    atomic_store(&saturate, 0);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    pygate_pool_close(pool);
    printf("a Python thread counts %ld ticks/s with the pool idle, %ld with"
           " it saturated by 8 threads: %.0f%% (target >= 25%%)\n",
           (long)(idle / seconds), (long)(busy / seconds),
           100.0 * (double)busy / (double)idle);
    csv("python_ticks_share", "pool_saturated", 8,
        (double)busy / (double)idle, "x");
}

/* ---- interpreter pools ---------------------------------------------------- */

static int
define_work(void *arg)
{
    (void)arg;
    run_code(work_code);
    return 0;
}

static int
cpu_job(void *arg)
{
    const cpu_work *w = (const cpu_work *)arg;
    return call_main(w->function, w->steps);
}

/* jobs/s for `jobs` cpu (or tiny) jobs through a pool of k interpreters,
 * submitted from this thread, then waited for. */
static double
pool_rate(pygate_interp_pool *pool, long jobs, pygate_job_fn fn, void *arg)
{
    pygate_job **handles = (pygate_job **)calloc((size_t)jobs,
                                                 sizeof *handles);
    double t0 = now();
    for (long i = 0; i < jobs; i++)
        check(pygate_interp_pool_submit(pool, PYGATE_ANY_INTERP, fn, arg,
                                        &handles[i]), "submit");
    for (long i = 0; i < jobs; i++) {
        check(pygate_job_wait(handles[i], -1, NULL), "wait");
        pygate_job_close(handles[i]);
    }
    double rate = (double)jobs / (now() - t0);
    free(handles);
    return rate;
}

/* K native threads, each making an interpreter of its own by hand (its own
 * GIL from 3.12) and running its share of the jobs. */
typedef struct by_hand {
    pthread_t th;
    cpu_work *work;
    long jobs;
    pthread_barrier_t *ready;
    double began, ended;
} by_hand;

static PyThreadState *
new_interpreter_by_hand(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyInterpreterConfig config = {
        .use_main_obmalloc = 0, .allow_fork = 0, .allow_exec = 0,
        .allow_threads = 1, .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL};
    PyThreadState *ts = NULL;
    if (PyStatus_Exception(Py_NewInterpreterFromConfig(&ts, &config)))
        return NULL;
    return ts;
#else
    return Py_NewInterpreter();
#endif
}

/* One interpreter made at a time, as pygate does: CPython's initialization
 * of two at once races (3.13.0, TSan: Modules/posixmodule.c sorts a static
 * table in place). */
static pthread_mutex_t making_lock = PTHREAD_MUTEX_INITIALIZER;

static void *
by_hand_main(void *arg)
{
    by_hand *h = (by_hand *)arg;
    pthread_mutex_lock(&making_lock);
    pygate_token tok;   /* the main interpreter, to make one from it */
    check(pygate_enter(main_view, &tok), "enter");
    PyThreadState *main_ts = PyThreadState_Get();
    PyThreadState *ts = new_interpreter_by_hand();
    if (ts == NULL)
        die("new interpreter", -1);
    run_code(work_code);
    PyEval_SaveThread();
    pthread_mutex_unlock(&making_lock);
    pthread_barrier_wait(h->ready);
    h->began = now();
    PyEval_RestoreThread(ts);
    for (long i = 0; i < h->jobs; i++)
        cpu_job(h->work);
    h->ended = now();
    Py_EndInterpreter(ts);
    PyThreadState_Swap(main_ts);
    pygate_leave(tok);
    return NULL;
}

static double
by_hand_rate(int k, long jobs, cpu_work *w)
{
    by_hand h[MAX_K];
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, (unsigned)k);
    for (int i = 0; i < k; i++) {
        h[i] = (by_hand){0, w, jobs / k, &ready, 0, 0};
        pthread_create(&h[i].th, NULL, by_hand_main, &h[i]);
    }
    double first = 0, last = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(h[i].th, NULL);
        if (i == 0 || h[i].began < first)
            first = h[i].began;
        if (h[i].ended > last)
            last = h[i].ended;
    }
    pthread_barrier_destroy(&ready);
    return (double)(jobs / k * k) / (last - first);
}

/* Runs per side and K.  The machines are shared: another process's work
 * only ever slows a run down, so the best run of each side is the one
 * least disturbed, and the two best are compared. */
#define REPS 5

static double
best(const double v[REPS])
{
    double b = v[0];
    for (int i = 1; i < REPS; i++)
        if (v[i] > b)
            b = v[i];
    return b;
}

/* Tunes w's loop length so that a job takes about 1 ms here. */
static void
tune_work(cpu_work *w)
{
    pygate_token tok;
    check(pygate_enter(main_view, &tok), "enter");
    double t0 = now();
    cpu_job(w);
    double took = now() - t0;
    if (took > 0)
        w->steps = (long)((double)w->steps * 0.001 / took);
    if (w->steps < 100)
        w->steps = 100;
    pygate_leave(tok);
}

/* w's jobs through pools of K = 1, 2, 4, 8 interpreters beside K
 * interpreters by hand; tiny jobs too when `tiny` is set. */
static void
interp_pool_curve(cpu_work *w, int tiny)
{
    tune_work(w);
    long jobs = quick ? 16 : 800;
    printf("\ninterpreter pools: cpu job = bench_work.%s(), a Python loop of"
           " %ld steps (about 1 ms), %ld jobs per run, best of %d runs\n",
           w->function, w->steps, jobs, REPS);
    printf("%3s %14s %14s %8s %14s\n", "K", "pool jobs/s", "by hand jobs/s",
           "pool/hand", tiny ? "tiny jobs/s" : "");
    static const int ks[] = {1, 2, 4, 8};
    double base = 0;
    for (int i = 0; i < 4; i++) {
        int k = ks[i];
        pygate_interp_pool_options o = {.interpreters = (unsigned)k,
                                        .init = define_work};
        pygate_interp_pool *pool;
        char error[1024];
        if (pygate_interp_pool_open(&o, &pool, error, sizeof error)
                != PYGATE_OK) {
            fprintf(stderr, "pool_bench: %s\n", error);
            exit(1);
        }
        /* Alternating, REPS times each; the best runs are compared. */
        double p[REPS], h[REPS];
        for (int r = 0; r < REPS; r++) {
            p[r] = pool_rate(pool, jobs, cpu_job, w);
            h[r] = by_hand_rate(k, jobs, w);
        }
        double pool_jobs = best(p), hand = best(h);
        double tiny_jobs = tiny ? pool_rate(pool, quick ? 100 : 100000,
                                            empty_job, NULL) : 0;
        pygate_interp_pool_close(pool);
        if (k == 1)
            base = pool_jobs;
        char tiny_text[32] = "";
        if (tiny)
            snprintf(tiny_text, sizeof tiny_text, "%.0f", tiny_jobs);
        printf("%3d %14.0f %14.0f %8.3f %14s   (%.2fx K=1)\n", k, pool_jobs,
               hand, pool_jobs / hand, tiny_text, pool_jobs / base);
        csv(w->what, "interp_pool", k, pool_jobs, "jobs/s");
        csv(w->what, "by_hand", k, hand, "jobs/s");
        if (tiny)
            csv("tiny_jobs_per_second", "interp_pool", k, tiny_jobs,
                "jobs/s");
    }
}

static void
interp_pools(void)
{
    interp_pool_curve(&allocating, 1);
    interp_pool_curve(&small_ints, 0);
}

static void
interp_pool_costs(void)
{
    int k = quick ? 2 : 8;
    pygate_interp_pool_options o = {.interpreters = (unsigned)k};
    pygate_interp_pool *pool;
    long before = bench_rss_kib();
    double t0 = now();
    check(pygate_interp_pool_open(&o, &pool, NULL, 0), "interp_pool_open");
    double opened = now();
    long after = bench_rss_kib();
    check(pygate_interp_pool_close(pool), "interp_pool_close");
    double closed = now();
    printf("a pool of %d interpreters: open %.1f ms, close %.1f ms, RSS %ld"
           " KiB per interpreter\n", k, (opened - t0) * 1e3,
           (closed - opened) * 1e3, (after - before) / k);
    csv("interp_pool_open_ms", "open", k, (opened - t0) * 1e3, "ms");
    csv("interp_pool_close_ms", "close", k, (closed - opened) * 1e3, "ms");
    csv("rss_per_interpreter", "interp_pool", k,
        (double)(after - before) / k, "KiB");
}

/* CPython 3.14+'s InterpreterPoolExecutor with the same jobs, run by
 * bench/interp_executor.py inside this process, so that it uses the same
 * libpython as the pool (Debian's python3.x executable links libpython
 * statically, built apart and faster than the shared library embedders
 * use: a comparison across the two would measure that). */
static void
interp_pool_executor(void)
{
#if PY_VERSION_HEX >= 0x030E0000
    pygate_token tok;
    check(pygate_enter(main_view, &tok), "enter");
    char code[512];
    snprintf(code, sizeof code,
             "import runpy, sys\n"
             "sys.argv = ['interp_executor.py', '%ld', 'embedded'%s]\n"
             "runpy.run_path('" PYGATE_BENCH_DIR "/interp_executor.py',"
             " run_name='__main__')\n", allocating.steps, quick ? ", '--quick'" : "");
    run_code(code);
    pygate_leave(tok);
#endif
}

/* One run of one side, for counting its instructions (callgrind, by
 * bench/instructions.sh): `jobs` jobs of w, untuned (the same work in
 * every run), through a pool of k interpreters or k by hand. */
static void
one_run(const char *side, int k, long jobs, cpu_work *w)
{
    if (strcmp(side, "hand") == 0) {
        printf("%s k=%d jobs=%ld: %.0f jobs/s\n", side, k, jobs,
               by_hand_rate(k, jobs, w));
        return;
    }
    pygate_interp_pool_options o = {.interpreters = (unsigned)k,
                                    .init = define_work};
    pygate_interp_pool *pool;
    char error[1024];
    if (pygate_interp_pool_open(&o, &pool, error, sizeof error) != PYGATE_OK)
        die(error, -1);
    printf("%s k=%d jobs=%ld: %.0f jobs/s\n", side, k, jobs,
           pool_rate(pool, jobs, cpu_job, w));
    pygate_interp_pool_close(pool);
}

int
main(int argc, char **argv)
{
    int interp_only = 0, decref_only = 0, targets_only = 0;
    const char *one = NULL;
    int one_k = 0;
    long one_jobs = 0;
    cpu_work *one_work = &allocating;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--interp") == 0)
            interp_only = 1;
        else if (strcmp(argv[i], "--decref") == 0)
            decref_only = 1;
        else if (strcmp(argv[i], "--targets") == 0)
            targets_only = 1;
        else if (strcmp(argv[i], "--one") == 0 && i + 4 < argc
                 && (strcmp(argv[i + 1], "pool") == 0
                     || strcmp(argv[i + 1], "hand") == 0)
                 && (one_k = atoi(argv[i + 2])) >= 1 && one_k <= MAX_K
                 && (one_jobs = atol(argv[i + 3])) >= one_k) {
            one = argv[i + 1];
            one_work = strcmp(argv[i + 4], "spin") == 0 ? &small_ints
                                                         : &allocating;
            i += 4;
        } else {
            fprintf(stderr, "usage: pool_bench [--quick] [--interp] [--decref]"
                            " [--targets] [--one pool|hand K JOBS work|spin]"
                            "\n");
            return 2;
        }
    }
    /* Every interpreter, InterpreterPoolExecutor's too, finds bench_work. */
    setenv("PYTHONPATH", PYGATE_BENCH_DIR, 1);
    Py_InitializeEx(0);
    if (pygate_view_from_main(&main_view) != PYGATE_OK)
        return 1;
    run_code(work_code);
    PyEval_SaveThread();
    printf("pool_bench: CPython %s%s\n", BENCH_PY_VERSION, quick ? " (quick)" : "");
    if (one != NULL) {
        one_run(one, one_k, one_jobs, one_work);
    } else if (decref_only) {
        deferred_decref();
    } else if (targets_only) {
        round_trip();
        drain();
        deferred_decref();
        python_thread_progress();
    } else {
        if (!interp_only) {
            round_trip();
            drain();
            deferred_decref();
            python_thread_progress();
            interp_pool_costs();
        }
        interp_pools();
        if (!interp_only)
            interp_pool_executor();
    }
    pygate_token tok;
    check(pygate_enter(main_view, &tok), "enter");
    pygate_leave(tok);
    pygate_view_close(main_view);
    PyGILState_Ensure();
    return Py_FinalizeEx() == 0 ? 0 : 1;
}
