/*
 * soak.c - a long life, watched for slow growth.
 *
 *   soak SECONDS SAMPLE_EVERY CSV [--no-rss]
 *
 * 16 native threads enter the main interpreter and leave, call Python,
 * drop references with pygate_decref and take guards, each exiting after
 * a random number of rounds and replaced by a new thread; every few
 * seconds a sub-interpreter pool is opened, used and closed (interpreters
 * made and ended), and a worker pool on main is opened, fed and closed.
 * Every SAMPLE_EVERY seconds a row goes to CSV: seconds, RSS (KiB), thread
 * states in the main interpreter, pygate's records (interpreters it
 * knows), pygate's thread records, native threads started so far, rounds.
 *
 * After a third of the time everything stops and is joined for a quiet
 * sample, then runs again until the end and stops for another.  At each
 * the main interpreter has its main thread's state only, and pygate knows
 * one interpreter and no native thread but main; from the first quiet
 * sample to the second RSS must stay within max(8 MiB, 10%) plus what
 * CPython itself keeps of the interpreters made meanwhile (see below).
 * --no-rss skips the RSS check (the sanitizers keep freed memory).  make soak
 * runs it for an hour and plots the CSV (tests/plot_soak.gp); make test
 * runs it for a minute.
 */
#include "harness.h"

#include <stdatomic.h>

/* tests/soak.c's census (internal, linked from the static library). */
long pygate__records_count(void);
long pygate__threads_count(void);
void pygate__records_describe(FILE *out);
void pygate__pools_describe(FILE *out);

enum { THREADS = 16 };

static pygate_view *view;
static _Atomic int stopping;
static _Atomic long rounds, started, interpreters_made;
static PyThreadState *main_ts;

static unsigned
next_random(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* One round: an entry with a Python call, sometimes a deferred decref of
 * an object made in it, a nested entry or a guard. */
static void
one_round(unsigned *seed)
{
    pygate_token tok;
    CHECK_OK(pygate_enter(view, &tok));
    PyObject *obj = PyLong_FromLong((long)next_random(seed) + 1000000);
    CHECK(obj != NULL);
    CHECK(eval_long("sum(range(50))") == 1225);
    if (next_random(seed) % 8 == 0) {
        pygate_token inner;
        CHECK_OK(pygate_enter(view, &inner));
        CHECK_OK(pygate_leave(inner));
    }
    CHECK_OK(pygate_leave(tok));
    CHECK_OK(pygate_decref(view, obj));   /* not attached: queued */
    if (next_random(seed) % 16 == 0) {
        pygate_guard *guard;
        CHECK_OK(pygate_guard_from_view(view, &guard));
        CHECK_OK(pygate_guard_close(guard));
    }
    atomic_fetch_add(&rounds, 1);
}

static void *
native_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    long n = 200 + next_random(&seed) % 2000;
    for (long i = 0; i < n && !atomic_load(&stopping); i++)
        one_round(&seed);
    return NULL;
}

/* Keeps THREADS native threads alive, replacing each that exits. */
static void *
thread_churn(void *arg)
{
    (void)arg;
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, native_thread,
                             (void *)(uintptr_t)atomic_fetch_add(&started, 1))
              == 0);
    /* Joins each in turn and starts its replacement, until stopping. */
    for (int i = 0; ; i = (i + 1) % THREADS) {
        CHECK(pthread_join(th[i], NULL) == 0);
        if (atomic_load(&stopping)) {
            for (int k = 1; k < THREADS; k++)   /* the others, once */
                CHECK(pthread_join(th[(i + k) % THREADS], NULL) == 0);
            return NULL;
        }
        CHECK(pthread_create(&th[i], NULL, native_thread,
                             (void *)(uintptr_t)atomic_fetch_add(&started, 1))
              == 0);
    }
}

static int
square(void *arg)
{
    long *n = (long *)arg;
    PyObject *x = PyLong_FromLong(*n);
    CHECK(x != NULL);
    PyObject *r = PyNumber_Multiply(x, x);
    CHECK(r != NULL);
    *n = PyLong_AsLong(r);
    Py_DECREF(r);
    Py_DECREF(x);
    return 0;
}

/* A worker pool on main and an interpreter pool, opened, used, closed. */
static void
pools_round(void)
{
    pygate_pool_options two = {.workers = 2, .on_close = PYGATE_POOL_FINISH};
    pygate_pool *pool;
    CHECK_OK(pygate_pool_open(view, &two, &pool));
    long n[50];
    for (int i = 0; i < 50; i++) {
        n[i] = i;
        CHECK_OK(pygate_pool_submit(pool, square, &n[i], NULL));
    }
    CHECK_OK(pygate_pool_close(pool));   /* finishes the queue */
    for (int i = 0; i < 50; i++)
        CHECK(n[i] == (long)i * i);

    pygate_interp_pool_options o = {.interpreters = 2, .workers = 1};
    pygate_interp_pool *ip;
    char error[512];
    if (pygate_interp_pool_open(&o, &ip, error, sizeof error) != PYGATE_OK) {
        fprintf(stderr, "soak: %s\n", error);
        exit(1);
    }
    atomic_fetch_add(&interpreters_made, 2);
    pygate_value arg = {.kind = PYGATE_VALUE_INT, .integer = 12};
    for (int i = 0; i < 20; i++) {
        pygate_value result;
        CHECK_OK(pygate_interp_pool_call(ip, PYGATE_ANY_INTERP, "math",
                                         "factorial", &arg, 1, &result));
        CHECK(result.kind == PYGATE_VALUE_INT
              && result.integer == 479001600);
    }
    CHECK_OK(pygate_interp_pool_close(ip));
}

static void *
pools_churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        pools_round();
        for (int i = 0; i < 20 && !atomic_load(&stopping); i++)
            usleep(100 * 1000);
    }
    return NULL;
}

/* What CPython itself keeps of an interpreter it ended, in KiB: from
 * interpreters made and ended by hand, the way an interpreter pool makes
 * them, without pygate.  CPython 3.12 and 3.13 keep about 1.7 MB of each
 * interpreter with its own allocator; 3.14, 3.15 and the legacy
 * interpreters of 3.8-3.11 keep nothing measurable. */
static double
cpython_kib_per_interpreter(void)
{
    enum { WARM = 2, MEASURED = 8 };
    PyEval_RestoreThread(main_ts);
    long before = 0;
    for (int i = 0; i < WARM + MEASURED; i++) {
        if (i == WARM)
            before = rss_kib();
#if PY_VERSION_HEX >= 0x030C0000
        PyInterpreterConfig config = {
            .use_main_obmalloc = 0, .allow_threads = 1,
            .check_multi_interp_extensions = 1,
            .gil = PyInterpreterConfig_OWN_GIL};
        PyThreadState *ts = NULL;
        CHECK(!PyStatus_Exception(Py_NewInterpreterFromConfig(&ts, &config)));
#else
        PyThreadState *ts = Py_NewInterpreter();
        CHECK(ts != NULL);
#endif
        Py_EndInterpreter(ts);
        PyThreadState_Swap(main_ts);
    }
    double kib = (double)(rss_kib() - before) / MEASURED;
    PyEval_SaveThread();
    return kib > 0 ? kib : 0;
}

typedef struct sample {
    double seconds;
    long rss_kib, states, records, threads, interpreters;
} sample;

static sample
take_sample(double start)
{
    sample s;
    s.seconds = now_seconds() - start;
    s.rss_kib = rss_kib();
    pygate_token tok;
    CHECK_OK(pygate_enter(view, &tok));
    s.states = count_thread_states(PyThreadState_Get()->interp);
    CHECK_OK(pygate_leave(tok));
    s.records = pygate__records_count();
    s.threads = pygate__threads_count();
    s.interpreters = atomic_load(&interpreters_made);
    return s;
}

static void
write_row(FILE *csv, sample s)
{
    fprintf(csv, "%.1f,%ld,%ld,%ld,%ld,%ld,%ld\n", s.seconds, s.rss_kib,
            s.states, s.records, s.threads, atomic_load(&started),
            atomic_load(&rounds));
    fflush(csv);
    printf("%7.1f s  RSS %7ld KiB  states %3ld  records %2ld  threads %3ld"
           "  started %6ld  rounds %9ld\n", s.seconds, s.rss_kib, s.states,
           s.records, s.threads, atomic_load(&started),
           atomic_load(&rounds));
    fflush(stdout);
}

/* Runs the threads and pools, sampling every `every` seconds, until
 * `until` seconds from start; then stops them all. */
static void
live_until(double start, double until, double every, FILE *csv)
{
    atomic_store(&stopping, 0);
    pthread_t churn, pools;
    CHECK(pthread_create(&churn, NULL, thread_churn, NULL) == 0);
    CHECK(pthread_create(&pools, NULL, pools_churn, NULL) == 0);
    for (double next = now_seconds() - start; ; next += every) {
        while (now_seconds() - start < next)
            usleep(50 * 1000);
        sample s = take_sample(start);
        write_row(csv, s);
        if (s.seconds >= until)
            break;
    }
    atomic_store(&stopping, 1);
    CHECK(pthread_join(churn, NULL) == 0);
    CHECK(pthread_join(pools, NULL) == 0);
}

/* With every thread joined and every pool closed: a sample, and what must
 * be left then (the main thread's state, the main interpreter's record,
 * the main thread's record). */
static sample
quiet_sample(double start, FILE *csv)
{
    sample s = take_sample(start);
    write_row(csv, s);
    if (s.records != 1) {   /* who keeps them */
        pygate__records_describe(stdout);
        pygate__pools_describe(stdout);
    }
    CHECK(s.states == 1);
    CHECK(s.records == 1);
    CHECK(s.threads <= 1);
    return s;
}

int
main(int argc, char **argv)
{
    int check_rss = argc == 4;
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "--no-rss") == 0)) {
        fprintf(stderr, "usage: soak SECONDS SAMPLE_EVERY CSV [--no-rss]\n");
        return 2;
    }
    double seconds = atof(argv[1]), every = atof(argv[2]);
    FILE *csv = fopen(argv[3], "w");
    if (!(seconds > 0) || !(every > 0) || csv == NULL) {
        fprintf(stderr, "soak: bad arguments (or %s cannot be written)\n",
                argv[3]);
        return 2;
    }
    fprintf(csv, "seconds,rss_kib,thread_states,records,native_threads,"
                 "threads_started,rounds\n");
    main_ts = start_python();
    view = main_view(main_ts);
    double cpython_keeps = cpython_kib_per_interpreter();
    double start = now_seconds();
    /* A third of the time warms up (CPython 3.15 grows its caches for
     * half a minute); then everything stops for a quiet measure, runs the
     * rest of the time, and stops for another.  Quiet measures compare
     * like with like: a sample taken while an interpreter pool is open,
     * or with more threads alive, is a few MiB higher. */
    live_until(start, seconds / 3, every, csv);
    sample quiet1 = quiet_sample(start, csv);
    live_until(start, seconds, every, csv);
    sample quiet2 = quiet_sample(start, csv);
    fclose(csv);

    long made = quiet2.interpreters - quiet1.interpreters;
    long allowed = (quiet1.rss_kib / 10 > 8192 ? quiet1.rss_kib / 10 : 8192)
                   + (long)(1.25 * cpython_keeps * (double)made);
    printf("RSS with nothing running, once warm: %ld KiB, at the end: %ld"
           " KiB; growth allowed: %ld KiB (8 MiB or 10%%, and CPython's own"
           " %.0f KiB per ended interpreter, measured first, for %ld made"
           " meanwhile); at the end %ld thread states, %ld records, %ld"
           " native threads known\n", quiet1.rss_kib, quiet2.rss_kib,
           allowed, cpython_keeps, made, quiet2.states, quiet2.records,
           quiet2.threads);
    CHECK(!check_rss || quiet2.rss_kib - quiet1.rss_kib <= allowed);
    CHECK_OK(pygate_view_close(view));
    PyEval_RestoreThread(main_ts);
    CHECK(Py_FinalizeEx() == 0);
    return 0;
}
