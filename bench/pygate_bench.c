/*
 * pygate_bench.c - pygate side by side with every alternative, in one run.
 *
 * Strategies (each from native pthreads; see strategy_table):
 *   gilstate       per-call PyGILState_Ensure/Release (the usual callback pattern)
 *   gilstate_kept  the same on a thread that called
 *                  pygate_thread_keep_gilstate() first (foreign code's
 *                  PyGILState pairs on pygate's kept state)
 *   pinned         a pinned thread: an outer PyGILState_Ensure kept for the
 *                  thread's life (detached), per-call Ensure/Release inside
 *   call_only      the call alone, attached throughout (what each of the
 *                  others adds its entering and leaving to)
 *   floor          a kept PyThreadState, PyEval_RestoreThread/SaveThread
 *   pybind11       pybind11's gil_scoped_acquire, default (C++ part)
 *   pybind11_keep  the same after gil_scoped_acquire::inc_ref()
 *   nanobind       nanobind's gil_scoped_acquire, default (C++ part)
 *   nanobind_keep  the same inside an outer acquire kept open
 *   pygate         pygate_enter/pygate_leave
 *   pygate_nested  pygate_enter/leave while already entered
 *   pygate_call    pygate_call per call (threads calling at once combined)
 *   pygate_pool    a job per call, submitted to a pygate worker pool (as
 *                  many workers as CPUs), the thread waiting for its batch
 *   pygate_pool_bounded  the same with the pool's queue bounded
 *                  (max_queued POOL_BOUND): submitters wait while it is full
 *   cpython_pep788 CPython 3.15's own PyThreadState_EnsureFromView/Release
 *                  per call (3.15+ only)
 * Workloads: "empty" (lambda: None) and "json" (build a dict, json.dumps).
 * Measures: ns per call on one thread; calls per second with 1, 2, 4, 8
 * threads; thread churn (create, enter once, exit: us per thread, RSS
 * after); RSS growth over many calls; first, what a switch between two
 * threads on one core costs here (which more threads than cores pay).
 * Every figure is the median of REPS repetitions with min and max; ratios
 * are formed within this run.
 *
 * usage: pygate_bench [--calls N] [--reps R] [--churn K] [--rss-calls M]
 *                     [--csv FILE] [--only NAME,NAME...] [--workload W]
 * --only measures the calls per second of the strategies named, nothing
 * else (for comparing two of them quickly, or under perf); --workload
 * keeps one workload (empty or json), --threads one thread count.
 * --iterations NAME runs exactly --calls empty calls of strategy NAME on
 * one thread and nothing else (exit 3: not built here), for counting
 * instructions (bench/per_call_instructions.sh).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "strategies.h"

#define MAX_REPS 32
#define MAX_THREADS 8

static long opt_calls = 200000, opt_churn = 100000, opt_rss_calls = 1000000;
static int opt_reps = 11;
static FILE *csv;
static const char *opt_only;   /* comma-separated strategies, or NULL */
static const char *opt_iterations;   /* one strategy: --calls iterations */
static const char *opt_workload;   /* or NULL: both */
static int opt_threads;            /* or 0: 1, 2, 4 and 8 */
static pygate_view *view;

double
bench_now_ns(void)
{
    return bench_now_us() * 1e3;
}

void
bench_call(PyObject *fn)
{
    PyObject *r = PyObject_CallObject(fn, NULL);
    if (r == NULL) {
        PyErr_Print();
        exit(1);
    }
    Py_DECREF(r);
}

/* ---- the C strategies ---------------------------------------------------- */

static double
loop_gilstate(PyObject *fn, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        PyGILState_STATE g = PyGILState_Ensure();
        bench_call(fn);
        PyGILState_Release(g);
    }
    return bench_now_ns() - t0;
}

static double
loop_pinned(PyObject *fn, long n)
{
    PyGILState_STATE outer = PyGILState_Ensure();   /* pins the state */
    PyThreadState *saved = PyEval_SaveThread();
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        PyGILState_STATE g = PyGILState_Ensure();
        bench_call(fn);
        PyGILState_Release(g);
    }
    double t = bench_now_ns() - t0;
    PyEval_RestoreThread(saved);
    PyGILState_Release(outer);
    return t;
}

/* The call alone, on a thread attached throughout: what every strategy
 * adds its entering and leaving to (instructions per iteration). */
static double
loop_call_only(PyObject *fn, long n)
{
    PyThreadState *ts = PyThreadState_New(PyInterpreterState_Main());
    PyEval_RestoreThread(ts);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        bench_call(fn);
    double t = bench_now_ns() - t0;
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
    return t;
}

static double
loop_floor(PyObject *fn, long n)
{
    PyThreadState *ts = PyThreadState_New(PyInterpreterState_Main());
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        PyEval_RestoreThread(ts);
        bench_call(fn);
        PyEval_SaveThread();
    }
    double t = bench_now_ns() - t0;
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
    return t;
}

/* Code written against PyGILState (ctypes, Cython, SWIG) on a thread that
 * made pygate's kept state its PyGILState state first. */
static double
loop_gilstate_kept(PyObject *fn, long n)
{
    pygate_thread_keep_gilstate(view);
    return loop_gilstate(fn, n);
}

static double
loop_pygate(PyObject *fn, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        pygate_enter(view, &tok);
        bench_call(fn);
        pygate_leave(tok);
    }
    return bench_now_ns() - t0;
}

/* Inside an outer entry: the inner enter/leave around each call is what
 * a library layered on pygate pays when its caller already entered. */
static double
loop_pygate_nested(PyObject *fn, long n)
{
    pygate_token outer;
    pygate_enter(view, &outer);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        pygate_enter(view, &tok);
        bench_call(fn);
        pygate_leave(tok);
    }
    double t = bench_now_ns() - t0;
    pygate_leave(outer);
    return t;
}

/* Nested enter/leave alone (no call), for the "<= 2 ns" target. */
static double
loop_nested_only(PyObject *fn, long n)
{
    (void)fn;
    pygate_token outer;
    pygate_enter(view, &outer);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        pygate_enter(view, &tok);
        pygate_leave(tok);
    }
    double t = bench_now_ns() - t0;
    pygate_leave(outer);
    return t;
}

/* An explicit guard taken and closed (no entry, no call): what native
 * work pays to hold shutdown back (a malloc, an atomic add, a free). */
static double
loop_guard_only(PyObject *fn, long n)
{
    (void)fn;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pygate_guard *g;
        if (pygate_guard_from_view(view, &g) != PYGATE_OK)
            exit(1);
        pygate_guard_close(g);
    }
    return bench_now_ns() - t0;
}

/* pygate_call: the call published, run by whichever caller combines. */
static int
call_job(void *fn)
{
    bench_call((PyObject *)fn);
    return 0;
}

static double
loop_pygate_call(PyObject *fn, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (pygate_call(view, call_job, fn, NULL) != PYGATE_OK)
            exit(1);
    return bench_now_ns() - t0;
}

/* A worker pool: the thread submits its n calls as jobs and sleeps until
 * they all ran (the pool's workers batch them under one GIL hold); the
 * last job wakes it. */
static pygate_pool *pool, *bounded_pool;
#define POOL_BOUND 16384

typedef struct pool_batch {
    PyObject *fn;
    long n;
    _Atomic long done;
    int finished;              /* under lock: the last job let go of it */
    pthread_mutex_t lock;
    pthread_cond_t all_done;
} pool_batch;

static int
pool_job(void *arg)
{
    pool_batch *batch = (pool_batch *)arg;
    bench_call(batch->fn);
    /* The waiter goes by finished, set under the lock, and not by done:
     * seeing done == n it could return and end the batch (on its stack)
     * while the last job was still about to lock it (TSan saw it). */
    if (atomic_fetch_add(&batch->done, 1) + 1 == batch->n) {
        pthread_mutex_lock(&batch->lock);
        batch->finished = 1;
        pthread_cond_signal(&batch->all_done);
        pthread_mutex_unlock(&batch->lock);
    }
    return 0;
}

static double
submit_and_wait(pygate_pool *to, PyObject *fn, long n)
{
    pool_batch batch = {fn, n, 0, n <= 0, PTHREAD_MUTEX_INITIALIZER,
                        PTHREAD_COND_INITIALIZER};
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (pygate_pool_submit(to, pool_job, &batch, NULL) != PYGATE_OK)
            exit(1);
    pthread_mutex_lock(&batch.lock);
    while (!batch.finished)
        pthread_cond_wait(&batch.all_done, &batch.lock);
    pthread_mutex_unlock(&batch.lock);
    double ns = bench_now_ns() - t0;
    pthread_cond_destroy(&batch.all_done);
    pthread_mutex_destroy(&batch.lock);
    return ns;
}

static double
loop_pygate_pool(PyObject *fn, long n)
{
    return submit_and_wait(pool, fn, n);
}

static double
loop_pygate_pool_bounded(PyObject *fn, long n)
{
    return submit_and_wait(bounded_pool, fn, n);
}

#if PY_VERSION_HEX >= 0x030F0000
/* CPython's own PEP 788 (this file does not include pygate/pep788.h, so
 * the names are CPython's): a view made once, an Ensure per call. */
static PyInterpreterView *cpython_view;

static double
loop_cpython_pep788(PyObject *fn, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        PyThreadStateToken *tok = PyThreadState_EnsureFromView(cpython_view);
        if (tok == NULL)
            exit(1);
        bench_call(fn);
        PyThreadState_Release(tok);
    }
    return bench_now_ns() - t0;
}
#else
#define loop_cpython_pep788 NULL
#endif

typedef struct strategy {
    const char *name;
    double (*loop)(PyObject *fn, long n);   /* NULL: not built */
    int slow;            /* creates a thread state per call: fewer calls */
    int churn;           /* also measured for thread churn */
} strategy;

static const strategy strategies[] = {
    {"gilstate", loop_gilstate, 1, 1},
    {"gilstate_kept", loop_gilstate_kept, 0, 0},
    {"pinned", loop_pinned, 0, 0},
    {"call_only", loop_call_only, 0, 0},
    {"floor", loop_floor, 0, 0},
    {"pybind11", bench_pybind11_default, 1, 1},
    {"pybind11_keep", bench_pybind11_keep, 0, 0},
    {"nanobind", bench_nanobind_default, 1, 1},
    {"nanobind_keep", bench_nanobind_keep, 0, 0},
    {"pygate", loop_pygate, 0, 1},
    {"pygate_nested", loop_pygate_nested, 0, 0},
    {"pygate_call", loop_pygate_call, 0, 0},
    {"pygate_pool", loop_pygate_pool, 0, 0},
    {"pygate_pool_bounded", loop_pygate_pool_bounded, 0, 0},
    {"cpython_pep788", loop_cpython_pep788, 1, 1},
};
#define NSTRATEGIES ((int)(sizeof strategies / sizeof strategies[0]))

/* The index of the strategy named so in strategies[] (the one list). */
static int
strategy_index(const char *name)
{
    for (int i = 0; i < NSTRATEGIES; i++)
        if (strcmp(strategies[i].name, name) == 0)
            return i;
    fprintf(stderr, "pygate_bench: no strategy %s\n", name);
    exit(2);
}

/* ---- running and reporting ----------------------------------------------- */

typedef struct stats {
    double median, min, max;
} stats;

static int
by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static stats
summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    stats s = {v[n / 2], v[0], v[n - 1]};
    return s;
}

static void
emit(const char *measure, const char *strategy, const char *workload,
     int threads, stats s, const char *unit)
{
    if (csv != NULL)
        fprintf(csv, "%s,%s,%s,%s,%d,%.3f,%.3f,%.3f,%s\n", BENCH_PY_VERSION,
                measure, strategy, workload, threads, s.median, s.min, s.max,
                unit);
}

typedef struct job {
    const strategy *st;
    PyObject *fn;
    long n;
    pthread_barrier_t *start;
    double elapsed;
    double began, ended;   /* clock at the loop's start and end */
} job;

static void *
run_job(void *arg)
{
    job *j = (job *)arg;
    if (j->start != NULL)
        pthread_barrier_wait(j->start);
    j->began = bench_now_ns();
    j->elapsed = j->st->loop(j->fn, j->n);
    j->ended = bench_now_ns();
    return NULL;
}

/* Runs one job on a fresh native thread and waits for it: every strategy
 * starts from a thread with no Python state, as a host's worker would
 * (the main thread already owns a state; a second one for the same
 * interpreter on it is an error that debug builds of CPython catch). */
static void
run_on_new_thread(job *j)
{
    pthread_t th;
    if (pthread_create(&th, NULL, run_job, j) != 0) {
        fprintf(stderr, "pygate_bench: pthread_create failed\n");
        exit(1);
    }
    pthread_join(th, NULL);
}

static long
calls_for(const strategy *st, long n)
{
    return st->slow ? n / 50 + 1 : n;   /* ~20 us per call on 3.11+ */
}

/* Wall time of `threads` fresh threads each making n calls, in ns: from
 * the first thread's start to the last one's end, as the threads saw it
 * (the main thread may wake from the barrier after they finished). */
static double
run_threads(const strategy *st, PyObject *fn, long n, int threads)
{
    pthread_t th[MAX_THREADS];
    job jobs[MAX_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){st, fn, n, &start, 0, 0, 0};
        if (pthread_create(&th[i], NULL, run_job, &jobs[i]) != 0)
            exit(1);
    }
    pthread_barrier_wait(&start);
    double first = 0, last = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (i == 0 || jobs[i].began < first)
            first = jobs[i].began;
        if (i == 0 || jobs[i].ended > last)
            last = jobs[i].ended;
    }
    pthread_barrier_destroy(&start);
    return last - first;
}

/* ns per call on one thread: [strategy][workload][rep]. */
static double latency[NSTRATEGIES][2][MAX_REPS];

/* Repetition-major: each repetition measures every strategy once, one
 * after the other, so that a slow phase of a shared machine hits all of
 * them alike, and ratios are formed within a repetition. */
static void
measure_latency(PyObject *fns[2], const char *workloads[2])
{
    for (int r = 0; r < opt_reps; r++)
        for (int s = 0; s < NSTRATEGIES; s++)
            for (int w = 0; w < 2 && strategies[s].loop != NULL; w++) {
                long n = calls_for(&strategies[s], opt_calls);
                job j = {&strategies[s], fns[w], n, NULL, 0, 0, 0};
                run_on_new_thread(&j);
                latency[s][w][r] = j.elapsed / (double)n;
            }

    printf("\nns per call, one native thread (median, min-max of %d)\n",
           opt_reps);
    printf("%-19s %28s %28s\n", "strategy", workloads[0], workloads[1]);
    for (int s = 0; s < NSTRATEGIES; s++) {
        const strategy *st = &strategies[s];
        if (st->loop == NULL) {
            printf("%-19s   skipped: %s\n", st->name,
                   strcmp(st->name, "cpython_pep788") == 0
                       ? "CPython has PEP 788 from 3.15"
                   : strncmp(st->name, "nanobind", 8) == 0
                       ? "nanobind absent"
                       : "pybind11 absent, or older than this CPython"
                         " supports");
            continue;
        }
        printf("%-19s", st->name);
        for (int w = 0; w < 2; w++) {
            double v[MAX_REPS];
            memcpy(v, latency[s][w], sizeof v);
            stats x = summarize(v, opt_reps);
            emit("ns_per_call", st->name, workloads[w], 1, x, "ns");
            printf(" %10.1f (%7.1f-%8.1f)", x.median, x.min, x.max);
        }
        printf("\n");
    }
}

/* Throughput is a coarser figure (threads contend for the GIL); fewer
 * repetitions keep a run of every version within minutes. */
static int
throughput_reps(void)
{
    return opt_reps < 5 ? opt_reps : 5;
}

/* Whether --only names the strategy (or there is no --only). */
static int
wanted(const char *name)
{
    if (opt_only == NULL)
        return 1;
    size_t len = strlen(name);
    for (const char *p = opt_only; (p = strstr(p, name)) != NULL; p += len)
        if ((p == opt_only || p[-1] == ',') && (p[len] == ',' || !p[len]))
            return 1;
    return 0;
}

static void
measure_throughput(PyObject *fns[2], const char *workloads[2])
{
    static const int counts[] = {1, 2, 4, 8};
    for (int w = 0; w < 2; w++) {
        if (opt_workload != NULL && strcmp(opt_workload, workloads[w]) != 0)
            continue;
        printf("\ncalls per second, all threads together, %s call (median of"
               " %d)\n", workloads[w], throughput_reps());
        printf("%-19s %12s %12s %12s %12s\n", "strategy", "1 thread",
               "2 threads", "4 threads", "8 threads");
        for (int s = 0; s < NSTRATEGIES; s++) {
            const strategy *st = &strategies[s];
            if (st->loop == NULL || !wanted(st->name))
                continue;
            printf("%-19s", st->name);
            for (int c = 0; c < 4; c++) {
                if (opt_threads != 0 && counts[c] != opt_threads) {
                    printf(" %12s", "-");
                    continue;
                }
                /* The same total work for every thread count. */
                long n = calls_for(st, opt_calls / (2 * counts[c]) + 1);
                double v[MAX_REPS];
                for (int r = 0; r < throughput_reps(); r++)
                    v[r] = (double)n * counts[c] * 1e9
                           / run_threads(st, fns[w], n, counts[c]);
                stats x = summarize(v, throughput_reps());
                emit("calls_per_second", st->name, workloads[w], counts[c], x,
                     "calls/s");
                printf(" %12.0f", x.median);
            }
            printf("\n");
        }
    }
}

static void
measure_churn(PyObject *fn)
{
    printf("\nthread churn: create a thread, one call, exit (%ld threads)\n",
           opt_churn);
    printf("%-19s %14s %16s\n", "strategy", "us per thread", "RSS growth KiB");
    for (int s = 0; s < NSTRATEGIES; s++) {
        const strategy *st = &strategies[s];
        if (st->loop == NULL || !st->churn)
            continue;
        long before = bench_rss_kib();
        double t0 = bench_now_ns();
        for (long i = 0; i < opt_churn; i++) {
            job j = {st, fn, 1, NULL, 0, 0, 0};
            run_on_new_thread(&j);
        }
        double us = (bench_now_ns() - t0) / 1e3 / (double)opt_churn;
        long growth = bench_rss_kib() - before;
        stats t = {us, us, us}, g = {(double)growth, (double)growth,
                                     (double)growth};
        emit("churn_us_per_thread", st->name, "empty", 1, t, "us");
        emit("churn_rss_growth", st->name, "empty", 1, g, "KiB");
        printf("%-19s %14.1f %16ld\n", st->name, us, growth);
    }
}

static void
measure_rss_over_calls(PyObject *fn)
{
    printf("\nRSS growth over %ld calls on one thread\n", opt_rss_calls);
    const int which[] = {strategy_index("floor"), strategy_index("pygate")};
    for (int k = 0; k < 2; k++) {
        const strategy *st = &strategies[which[k]];
        job warm = {st, fn, 10000, NULL, 0, 0, 0};
        run_on_new_thread(&warm);
        long before = bench_rss_kib();
        job j = {st, fn, opt_rss_calls, NULL, 0, 0, 0};
        run_on_new_thread(&j);
        long growth = bench_rss_kib() - before;
        stats g = {(double)growth, (double)growth, (double)growth};
        emit("rss_growth_over_calls", st->name, "empty", 1, g, "KiB");
        printf("%-19s %8ld KiB\n", st->name, growth);
    }
}

/* a/b in each repetition, summarized; emitted when `measure` is set. */
static stats
ratio(int a, int b, int w, const char *measure, const char *workload)
{
    double v[MAX_REPS];
    for (int r = 0; r < opt_reps; r++)
        v[r] = latency[a][w][r] / latency[b][w][r];
    stats x = summarize(v, opt_reps);
    if (measure != NULL)
        emit(measure, strategies[a].name, workload, 1, x, "x");
    return x;
}

static void
print_ratios(const char *workloads[2])
{
    /* Found by name: fixed indices went stale when strategies were added
     * (PEP788 named pygate_call, and its ratio was printed everywhere). */
    const int GILSTATE = strategy_index("gilstate");
    const int FLOOR = strategy_index("floor");
    const int PYB = strategy_index("pybind11");
    const int PYB_KEEP = strategy_index("pybind11_keep");
    const int NB = strategy_index("nanobind");
    const int NB_KEEP = strategy_index("nanobind_keep");
    const int PYGATE = strategy_index("pygate");
    const int PEP788 = strategy_index("cpython_pep788");
    const int KEPT = strategy_index("gilstate_kept");
    printf("\nratios, formed in each repetition (median, min-max)\n");
    for (int w = 0; w < 2; w++) {
        const char *wl = workloads[w];
        stats f = ratio(PYGATE, FLOOR, w, "ratio_pygate_over_floor", wl);
        stats g = ratio(GILSTATE, PYGATE, w, "ratio_gilstate_over_pygate", wl);
        printf("  %-5s pygate/floor %.3f (%.3f-%.3f), target <= 1.05;"
               " gilstate/pygate %.1fx, target >= 100x on 3.11+\n", wl,
               f.median, f.min, f.max, g.median);
        stats k = ratio(GILSTATE, KEPT, w, "ratio_gilstate_over_kept", wl);
        printf("        gilstate/gilstate_kept %.1fx (%.1f-%.1f): PyGILState"
               " code on pygate's kept state\n", k.median, k.min, k.max);
        if (strategies[PYB].loop != NULL) {
            stats p = ratio(PYB, PYGATE, w, "ratio_pybind11_over_pygate", wl);
            stats k = ratio(PYB_KEEP, PYGATE, w,
                            "ratio_pybind11_keep_over_pygate", wl);
            printf("        pybind11/pygate %.1fx; pybind11_keep/pygate"
                   " %.3f\n", p.median, k.median);
        }
        if (strategies[NB].loop != NULL) {
            stats p = ratio(NB, PYGATE, w, "ratio_nanobind_over_pygate", wl);
            stats k = ratio(NB_KEEP, PYGATE, w,
                            "ratio_nanobind_keep_over_pygate", wl);
            printf("        nanobind/pygate %.1fx; nanobind_keep/pygate"
                   " %.3f\n", p.median, k.median);
        }
        if (strategies[PEP788].loop != NULL) {
            stats c = ratio(PEP788, PYGATE, w,
                            "ratio_cpython_pep788_over_pygate", wl);
            printf("        CPython's PEP 788 Ensure/Release / pygate %.1fx"
                   " (%.1f-%.1f)\n", c.median, c.min, c.max);
        }
    }
}

/* A loop with no Python call, alone on a fresh thread per repetition. */
static stats
measure_alone(const strategy *st)
{
    double v[MAX_REPS];
    long n = opt_calls * 10;
    for (int r = 0; r < opt_reps; r++) {
        job j = {st, NULL, n, NULL, 0, 0, 0};
        run_on_new_thread(&j);
        v[r] = j.elapsed / (double)n;
    }
    stats x = summarize(v, opt_reps);
    emit("ns_per_call", st->name, "none", 1, x, "ns");
    return x;
}

static void
measure_without_calls(void)
{
    const strategy nested = {"nested_enter_leave_only", loop_nested_only, 0, 0};
    const strategy guard = {"guard_take_close_only", loop_guard_only, 0, 0};
    stats x = measure_alone(&nested);
    printf("\nnested enter/leave alone (no call): %.2f ns (%.2f-%.2f); "
           "target <= 2 ns\n", x.median, x.min, x.max);
    x = measure_alone(&guard);
    printf("explicit guard take + close (pygate_guard_from_view/close, no"
           " entry): %.2f ns (%.2f-%.2f)\n", x.median, x.min, x.max);
}

/* What the machine charges for a thread switch, beside the calls (more
 * threads than cores pay it; see bench_thread_switch_us). */
static void
measure_machine(void)
{
    double yield_us;
    double switch_us = bench_thread_switch_us(&yield_us);
    if (switch_us < 0) {
        printf("a thread switch: not measured (threads cannot be pinned)\n");
        return;
    }
    printf("a thread switch on one core: %.2f us; a yield with nobody to"
           " switch to: %.2f us; %ld cores\n", switch_us, yield_us,
           sysconf(_SC_NPROCESSORS_ONLN));
    stats sw = {switch_us, switch_us, switch_us};
    stats y = {yield_us, yield_us, yield_us};
    emit("thread_switch_us", "machine", "none", 2, sw, "us");
    emit("yield_us", "machine", "none", 1, y, "us");
}

static int
parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {   /* options come in pairs */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        if (strcmp(a, "--calls") == 0)
            opt_calls = atol(v);
        else if (strcmp(a, "--reps") == 0)
            opt_reps = atoi(v);
        else if (strcmp(a, "--churn") == 0)
            opt_churn = atol(v);
        else if (strcmp(a, "--rss-calls") == 0)
            opt_rss_calls = atol(v);
        else if (strcmp(a, "--only") == 0)
            opt_only = v;
        else if (strcmp(a, "--iterations") == 0)
            opt_iterations = v;
        else if (strcmp(a, "--workload") == 0)
            opt_workload = v;
        else if (strcmp(a, "--threads") == 0)
            opt_threads = atoi(v);
        else if (strcmp(a, "--csv") == 0) {
            csv = fopen(v, "w");
            if (csv == NULL) {
                perror(v);
                return -1;
            }
        } else
            return -1;
    }
    return opt_calls > 0 && opt_reps > 0 && opt_reps <= MAX_REPS
                   && opt_churn > 0 && opt_rss_calls > 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0) {
        fprintf(stderr, "usage: pygate_bench [--calls N] [--reps 1..%d] "
                "[--churn K] [--rss-calls M] [--csv FILE] [--only NAMES]"
                " [--workload empty|json] [--threads 1|2|4|8]"
                " [--iterations NAME]\n", MAX_REPS);
        return 2;
    }
    if (csv != NULL)
        fprintf(csv, "python,measure,strategy,workload,threads,median,min,"
                "max,unit\n");
    Py_InitializeEx(0);
    PyObject *g = PyDict_New();
    PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins());
    PyRun_String("import json\n"
                 "def empty(): pass\n"
                 "def small_json():\n"
                 "    return json.dumps({'id': 7, 'tags': ['a', 'b'],"
                 " 'ok': True})\n", Py_file_input, g, g);
    PyObject *fns[2] = {PyDict_GetItemString(g, "empty"),
                        PyDict_GetItemString(g, "small_json")};
    const char *workloads[2] = {"empty", "json"};
    pygate_pool_options bounded = {.max_queued = POOL_BOUND};
    if (fns[0] == NULL || fns[1] == NULL
            || pygate_view_from_main(&view) != PYGATE_OK
            || pygate_pool_open(view, NULL, &pool) != PYGATE_OK
            || pygate_pool_open(view, &bounded, &bounded_pool) != PYGATE_OK)
        return 1;
    bench_pybind11_init();
#if PY_VERSION_HEX >= 0x030F0000
    if ((cpython_view = PyInterpreterView_FromCurrent()) == NULL)
        return 1;
#endif
    PyThreadState *main_ts = PyEval_SaveThread();
    if (opt_iterations != NULL) {
        /* Exactly --calls iterations of one strategy, an empty call each,
         * on one fresh thread, and nothing else: for counting instructions
         * (bench/per_call_instructions.sh).  Exit 3: not built here. */
        const strategy *st = &strategies[strategy_index(opt_iterations)];
        if (st->loop == NULL)
            return 3;
        run_threads(st, fns[0], opt_calls, 1);
        return 0;
    }

    printf("pygate_bench: CPython %s, %ld calls per rep, %d reps,"
           " pybind11 %s, nanobind %s\n", BENCH_PY_VERSION, opt_calls,
           opt_reps, have_pybind11 ? "yes" : "absent (skipped)",
           have_nanobind ? "yes" : "absent (skipped)");
    measure_machine();
    if (opt_only == NULL) {
        measure_latency(fns, workloads);
        print_ratios(workloads);
        measure_without_calls();
    }
    measure_throughput(fns, workloads);
    if (opt_only == NULL) {
        measure_churn(fns[0]);
        measure_rss_over_calls(fns[0]);
    }

    pygate_pool_close(pool);
    pygate_pool_close(bounded_pool);
    PyEval_RestoreThread(main_ts);
    pygate_view_close(view);
#if PY_VERSION_HEX >= 0x030F0000
    PyInterpreterView_Close(cpython_view);
#endif
    Py_DECREF(g);
    if (csv != NULL)
        fclose(csv);
    return Py_FinalizeEx() == 0 ? 0 : 1;
}
