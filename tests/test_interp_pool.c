/*
 * test_interp_pool.c - interpreter pools: sub-interpreters made by pygate,
 * jobs routed to them, Python in parallel (3.12+), init failures, modules
 * that refuse sub-interpreters, values across interpreters, closing and
 * the main interpreter's finalization with a pool open.
 */
#include "harness.h"

#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define SKIP 77   /* ctest SKIP_RETURN_CODE */

static harness_python py;

/* Interpreters alive in the process.  Any thread (the list is read under
 * CPython's own lock by PyInterpreterState_Next's callers; here the pools
 * are idle). */
static int
count_interpreters(void)
{
    int n = 0;
    for (PyInterpreterState *i = PyInterpreterState_Head(); i != NULL;
         i = PyInterpreterState_Next(i))
        n++;
    return n;
}

static int
interp_id(void *arg)
{
    (void)arg;
    return (int)PyInterpreterState_GetID(PyThreadState_Get()->interp);
}

/* ---- routing and state ------------------------------------------------- */

/* __main__.hits counts the jobs an interpreter ran. */
static int
set_up_hits(void *arg)
{
    (void)arg;
    exec_ok("hits = 0\n");
    return 0;
}

static int
hit(void *arg)
{
    (void)arg;
    exec_ok("hits += 1\n");
    return (int)eval_long("hits");
}

static int
read_hits(void *arg)
{
    (void)arg;
    return (int)eval_long("hits");
}

static int
run_and_wait(pygate_interp_pool *pool, int index, pygate_job_fn fn)
{
    pygate_job *job;
    int result = -1;
    CHECK_OK(pygate_interp_pool_submit(pool, index, fn, NULL, &job));
    CHECK_OK(pygate_job_wait(job, -1, &result));
    CHECK_OK(pygate_job_close(job));
    return result;
}

static void
jobs_go_where_sent(void)
{
    py = harness_start();
    int before = count_interpreters();
    pygate_interp_pool_options o = {.interpreters = 3, .init = set_up_hits};
    pygate_interp_pool *pool;
    char error[256];
    CHECK_OK(pygate_interp_pool_open(&o, &pool, error, sizeof error));
    CHECK(pygate_interp_pool_size(pool) == 3);
    CHECK(count_interpreters() == before + 3);
    /* Each index is its own interpreter, the one its view names. */
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        pygate_view *v;
        CHECK_OK(pygate_interp_pool_view(pool, i, &v));
        ids[i] = pygate_view_id(v);
        CHECK(ids[i] > 0 && run_and_wait(pool, i, interp_id) == ids[i]);
        for (int k = 0; k < i; k++)
            CHECK(ids[k] != ids[i]);
        CHECK_OK(pygate_view_close(v));
    }
    /* State stays in its interpreter: 1, 2, 3 jobs to index 0, 1, 2. */
    for (int i = 0; i < 3; i++)
        for (int k = 0; k <= i; k++)
            CHECK(run_and_wait(pool, i, hit) == k + 1);
    for (int i = 0; i < 3; i++)
        CHECK(run_and_wait(pool, i, read_hits) == i + 1);
    /* Any interpreter: spread over all of them when they are idle. */
    int seen[3] = {0, 0, 0};
    for (int k = 0; k < 30; k++) {
        int id = run_and_wait(pool, PYGATE_ANY_INTERP, interp_id);
        for (int i = 0; i < 3; i++)
            seen[i] += id == ids[i];
    }
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0
          && seen[0] + seen[1] + seen[2] == 30);
    uint64_t s, c, x;
    CHECK_OK(pygate_interp_pool_counts(pool, &s, &c, &x));
    CHECK(s == 3 + 6 + 3 + 30 && c == s && x == 0);
    CHECK_OK(pygate_interp_pool_close(pool));
    CHECK(count_interpreters() == before);
    harness_stop(&py);
}

/* ---- parallelism -------------------------------------------------------- */

/* Two jobs, each in its own interpreter, run Python loops that call
 * take_turn(me).  The sides take turns on one counter: each call waits,
 * still attached to its interpreter (and holding its GIL, where there is
 * one), until the counter says it is this side's turn, then passes the turn
 * on.  A turn can only pass while both sides are inside Python at once, so
 * with one shared GIL the first wait can never end (the waiting side holds
 * the GIL the other side needs) and gives up; running in parallel the sides
 * pass the turn back and forth as fast as the OS runs them, however loaded
 * the machine is.  No timing decides the result, only the turns. */
static _Atomic long turn;
static _Atomic int started, gave_up;
static long last_turn;
static double turn_wait_seconds;

static PyObject *
take_turn(PyObject *self, PyObject *arg)
{
    (void)self;
    long me = PyLong_AsLong(arg);
    double give_up_at = now_seconds() + turn_wait_seconds;
    for (;;) {
        long t = atomic_load(&turn);
        if (t >= last_turn)
            Py_RETURN_FALSE;
        if (t % 2 == me)
            break;
        if (atomic_load(&gave_up) || now_seconds() > give_up_at) {
            atomic_store(&gave_up, 1);
            Py_RETURN_FALSE;
        }
        sched_yield();   /* one CPU: let the other side run */
    }
    atomic_fetch_add(&turn, 1);
    Py_RETURN_TRUE;
}

static PyMethodDef take_turn_def = {"take_turn", take_turn, METH_O, NULL};

static int
pass_turns(void *arg)
{
    int me = (int)(intptr_t)arg;
    PyObject *fn = PyCFunction_New(&take_turn_def, NULL);
    CHECK(fn != NULL);
    PyObject *main = PyImport_AddModule("__main__");
    CHECK(PyModule_AddObject(main, "take_turn", fn) == 0);
    atomic_fetch_add(&started, 1);
    Py_BEGIN_ALLOW_THREADS   /* a shared GIL: the other job needs it */
    while (atomic_load(&started) < 2)
        sched_yield();   /* both jobs running before either takes a turn */
    Py_END_ALLOW_THREADS
    char code[96];
    snprintf(code, sizeof code, "while take_turn(%d):\n    pass\n", me);
    exec_ok(code);
    return 0;
}

/* Runs the two sides in a pool of two interpreters until `turns` turns
 * passed or a side waited `wait_seconds` for one; returns the turns that
 * passed. */
static long
turns_passed(int shared_gil, long turns, double wait_seconds)
{
    atomic_store(&turn, 0);
    atomic_store(&started, 0);
    atomic_store(&gave_up, 0);
    last_turn = turns;
    turn_wait_seconds = wait_seconds;
    pygate_interp_pool_options o = {.interpreters = 2,
                                    .shared_gil = shared_gil};
    pygate_interp_pool *pool;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    CHECK(pygate_interp_pool_parallel(pool)
          == (!shared_gil || PYGATE_TEST_FREE_THREADED));
    double start = now_seconds();
    pygate_job *jobs[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(pygate_interp_pool_submit(pool, i, pass_turns,
                                           (void *)(intptr_t)i, &jobs[i]));
    for (int i = 0; i < 2; i++) {
        CHECK_OK(pygate_job_wait(jobs[i], -1, NULL));
        CHECK_OK(pygate_job_close(jobs[i]));
    }
    CHECK_OK(pygate_interp_pool_close(pool));
    long passed = atomic_load(&turn);
    printf("shared_gil=%d: %ld turns passed in %.2f s%s\n", shared_gil,
           passed, now_seconds() - start,
           atomic_load(&gave_up) ? " (a side gave up waiting)" : "");
    return passed;
}

static void
python_runs_in_parallel(void)
{
    if (PY_VERSION_HEX < 0x030C0000) {
        puts("skipped: interpreters have a GIL of their own from CPython"
             " 3.12");
        exit(SKIP);
    }
    py = harness_start();
    /* Each turn is a handful of context switches at worst (one CPU, a
     * loaded machine); a side that waits a minute for one is stuck. */
    enum { TURNS = 2000 };
#if PYGATE_TEST_FREE_THREADED
    /* No GIL to share: the legacy settings run in parallel too. */
    CHECK(turns_passed(1, TURNS, 60) == TURNS);
#else
    /* The control: one GIL.  Side 0 or 1 takes the first turn (whichever
     * holds the GIL when it is 0's turn, or 0 alone), then waits for a turn
     * the other side can never take; a GIL switch between two calls may
     * let the other side in for one more. */
    CHECK(turns_passed(1, TURNS, 0.5) <= 3);
#endif
    CHECK(turns_passed(0, TURNS, 60) == TURNS);
    harness_stop(&py);
}

/* ---- a bounded member makes a submitter wait ---------------------------- */

/* pygate_interp_pool_submit is pygate_pool_submit on the member: with
 * max_queued, an unattached submitter waits while the member's queue is
 * full.  The member's one worker holds on a job until the gate opens, so
 * the submitter cannot get past the bound before then, however long it is
 * given. */
enum { BOUND = 4, BEYOND = 20 };
static pygate_interp_pool *bounded_ip;
static _Atomic int gate_open;
static _Atomic int submitted_beyond;

static int
hold_until_open(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&gate_open))
        sched_yield();
    Py_END_ALLOW_THREADS
    return 0;
}

static int
tiny_job(void *arg)
{
    (void)arg;
    return 0;
}

static void *
submit_beyond_bound(void *arg)
{
    (void)arg;
    for (int i = 0; i < BEYOND; i++) {
        CHECK_OK(pygate_interp_pool_submit(bounded_ip, 0, tiny_job, NULL,
                                           NULL));
        atomic_fetch_add(&submitted_beyond, 1);
    }
    return NULL;
}

static void
bounded_member_makes_submitter_wait(void)
{
    py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 1, .max_queued = BOUND};
    CHECK_OK(pygate_interp_pool_open(&o, &bounded_ip, NULL, 0));
    pygate_job *held;
    CHECK_OK(pygate_interp_pool_submit(bounded_ip, 0, hold_until_open, NULL,
                                       &held));
    pthread_t submitter;
    CHECK(pthread_create(&submitter, NULL, submit_beyond_bound, NULL) == 0);
    double until = now_seconds() + 0.5;
    while (now_seconds() < until)
        sched_yield();
    int before_open = atomic_load(&submitted_beyond);
    printf("with the member's worker held, %d of %d submissions returned"
           " (bound %d)\n", before_open, BEYOND, BOUND);
    CHECK(before_open <= BOUND + 1);
    atomic_store(&gate_open, 1);
    CHECK(pthread_join(submitter, NULL) == 0);
    CHECK(atomic_load(&submitted_beyond) == BEYOND);
    CHECK_OK(pygate_job_wait(held, -1, NULL));
    CHECK_OK(pygate_job_close(held));
    CHECK_OK(pygate_interp_pool_close(bounded_ip));
    harness_stop(&py);
}

/* ---- a busy member lets others in ------------------------------------- */

/* A member's busy worker pauses every hold_seconds only when someone else
 * may wait for its GIL: a Python thread of the interpreter, or a native
 * thread entering it through pygate.  Both must still get in while the
 * worker is saturated. */
static _Atomic long py_ticks, busy_ran;
static _Atomic int py_stop;

static PyObject *
py_tick(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    atomic_fetch_add(&py_ticks, 1);
    return PyBool_FromLong(!atomic_load(&py_stop));
}

static PyMethodDef py_tick_def = {"py_tick", py_tick, METH_NOARGS, NULL};

static int
start_ticker(void *arg)
{
    (void)arg;
    PyObject *fn = PyCFunction_New(&py_tick_def, NULL);
    CHECK(fn != NULL);
    CHECK(PyModule_AddObject(PyImport_AddModule("__main__"), "py_tick", fn)
          == 0);
    exec_ok("import threading\n"
            "def count():\n"
            "    while py_tick():\n"
            "        pass\n"
            "ticker = threading.Thread(target=count)\n"
            "ticker.start()\n");
    return 0;
}

static int
join_ticker(void *arg)
{
    (void)arg;
    exec_ok("ticker.join()\n");
    return 0;
}

static int
busy_20us(void *arg)
{
    (void)arg;
    spin_for(20e-6);
    atomic_fetch_add(&busy_ran, 1);
    return 0;
}

enum { BUSY_JOBS = 40000 };   /* about 0.8 s of GIL-holding jobs */

/* Queues BUSY_JOBS busy jobs on member 0 and returns once a quarter ran. */
static void
saturate(pygate_interp_pool *pool)
{
    atomic_store(&busy_ran, 0);
    for (int i = 0; i < BUSY_JOBS; i++)
        CHECK_OK(pygate_interp_pool_submit(pool, 0, busy_20us, NULL, NULL));
    while (atomic_load(&busy_ran) < BUSY_JOBS / 4)
        usleep(1000);
}

static void
wait_busy_jobs(void)
{
    while (atomic_load(&busy_ran) < BUSY_JOBS)
        usleep(1000);
}

static _Atomic long native_entries;
static _Atomic int native_stop;

static void *
enter_repeatedly(void *arg)
{
    pygate_view *view = (pygate_view *)arg;
    while (!atomic_load(&native_stop)) {
        pygate_token tok;
        CHECK_OK(pygate_enter(view, &tok));
        atomic_fetch_add(&native_entries, 1);
        CHECK_OK(pygate_leave(tok));
    }
    return NULL;
}

static void
busy_member_lets_others_in(void)
{
    /* It measures who gets the GIL in 200 ms; valgrind runs one thread at
     * a time with a scheduler of its own, where it took 5.5 minutes in one
     * run and over 17 in the next. */
    if (getenv("PYGATE_MEMCHECK") != NULL) {
        fprintf(stderr, "skip: scheduling is valgrind's under memcheck\n");
        exit(SKIP);
    }
    py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 1, .workers = 1,
                                    .batch = 100000, .hold_seconds = 0.005};
    pygate_interp_pool *pool;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    /* A Python thread of the member's interpreter. */
    CHECK(run_and_wait(pool, 0, start_ticker) == 0);
    while (atomic_load(&py_ticks) == 0)
        usleep(1000);
    saturate(pool);
    long ticks_before = atomic_load(&py_ticks);
    long ran_before = atomic_load(&busy_ran);
    usleep(200 * 1000);
    long ticks = atomic_load(&py_ticks) - ticks_before;
    long ran = atomic_load(&busy_ran);
    printf("while the worker ran jobs %ld..%ld of %d, the Python thread"
           " ticked %ld times\n", ran_before, ran, (int)BUSY_JOBS, ticks);
    CHECK(ran < BUSY_JOBS);   /* sampled while saturated */
    CHECK(ticks > 1000);      /* and the Python thread ran meanwhile */
    wait_busy_jobs();
    atomic_store(&py_stop, 1);
    CHECK(run_and_wait(pool, 0, join_ticker) == 0);
    /* A native thread entering the member's interpreter. */
    pygate_view *view;
    CHECK_OK(pygate_interp_pool_view(pool, 0, &view));
    saturate(pool);
    ran_before = atomic_load(&busy_ran);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, enter_repeatedly, view) == 0);
    usleep(200 * 1000);
    long entries = atomic_load(&native_entries);
    ran = atomic_load(&busy_ran);
    atomic_store(&native_stop, 1);
    CHECK(pthread_join(th, NULL) == 0);
    printf("while the worker ran jobs %ld..%ld of %d, a native thread"
           " entered %ld times\n", ran_before, ran, (int)BUSY_JOBS, entries);
    CHECK(ran < BUSY_JOBS);
    CHECK(entries >= 5);   /* a pause every 5 ms gives about 40 */
    CHECK_OK(pygate_view_close(view));
    CHECK_OK(pygate_interp_pool_close(pool));
    harness_stop(&py);
}

/* ---- init failures and refusing modules -------------------------------- */

static _Atomic int inits;

static int
fail_second_init(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&inits, 1) == 1) {
        PyErr_SetString(PyExc_RuntimeError, "init refuses interpreter 2");
        return -1;
    }
    return 0;
}

static int
import_named(void *arg)
{
    PyObject *m = PyImport_ImportModule((const char *)arg);
    Py_XDECREF(m);
    return m != NULL ? 0 : -1;
}

static void
init_failure_leaves_nothing(void)
{
    py = harness_start();
    int before = count_interpreters();
    pygate_interp_pool_options o = {.interpreters = 3,
                                    .init = fail_second_init};
    pygate_interp_pool *pool = NULL;
    char error[1024];
    CHECK_RC(pygate_interp_pool_open(&o, &pool, error, sizeof error),
             PYGATE_EEXCEPTION);
    CHECK(strstr(error, "RuntimeError: init refuses interpreter 2") != NULL);
    CHECK(pool == NULL && count_interpreters() == before);
    CHECK(atomic_load(&inits) == 2);
    /* A module that does not exist, named in the error. */
    o.init = import_named;
    o.init_arg = (void *)"pygate_no_such_module";
    CHECK_RC(pygate_interp_pool_open(&o, &pool, error, sizeof error),
             PYGATE_EEXCEPTION);
    CHECK(strstr(error, "pygate_no_such_module") != NULL);
    CHECK(count_interpreters() == before);
    /* And afterwards a pool opens as usual. */
    o.init = NULL;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, error, sizeof error));
    CHECK_OK(pygate_interp_pool_close(pool));
    harness_stop(&py);
}

#if PY_VERSION_HEX >= 0x030C0000
/* A module that declares it cannot be loaded in sub-interpreters. */
static PyModuleDef_Slot refusing_slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
    {0, NULL}};
static PyModuleDef refusing_def = {
    PyModuleDef_HEAD_INIT, "pygate_test_refuses", NULL, 0, NULL,
    refusing_slots, NULL, NULL, NULL};

static PyObject *
init_refusing(void)
{
    return PyModuleDef_Init(&refusing_def);
}
#endif

static void
refusing_module_is_named(void)
{
#if PY_VERSION_HEX < 0x030C0000
    puts("skipped: modules declare sub-interpreter support from CPython"
         " 3.12 (Py_mod_multiple_interpreters)");
    exit(SKIP);
#else
    CHECK(PyImport_AppendInittab("pygate_test_refuses", init_refusing) == 0);
    py = harness_start();
    /* The main interpreter loads it. */
    PyEval_RestoreThread(py.main_ts);
    exec_ok("import pygate_test_refuses\n");
    PyEval_SaveThread();
    pygate_interp_pool_options o = {.interpreters = 2,
                                    .init = import_named,
                                    .init_arg = (void *)"pygate_test_refuses"};
    pygate_interp_pool *pool = NULL;
    char error[1024];
    CHECK_RC(pygate_interp_pool_open(&o, &pool, error, sizeof error),
             PYGATE_EEXCEPTION);
    printf("init: %s\n", error);
    CHECK(strstr(error, "ImportError") != NULL
          && strstr(error, "pygate_test_refuses") != NULL);
    /* In a job: the exception's text names it too. */
    o.init = NULL;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, error, sizeof error));
    pygate_job *job;
    CHECK_OK(pygate_interp_pool_submit(pool, 1, import_named,
                                       (void *)"pygate_test_refuses", &job));
    int result = 0;
    CHECK_OK(pygate_job_wait(job, -1, &result));
    const char *text = NULL;
    CHECK_OK(pygate_job_exception_text(job, &text));
    CHECK(result == -1 && text != NULL && strstr(text, "ImportError") != NULL
          && strstr(text, "pygate_test_refuses") != NULL);
    CHECK_OK(pygate_job_close(job));
    CHECK_OK(pygate_interp_pool_close(pool));
    harness_stop(&py);
#endif
}

/* ---- values across interpreters ----------------------------------------- */

static pygate_value
v_int(long long i)
{
    pygate_value v = {PYGATE_VALUE_INT, i, 0, NULL, 0};
    return v;
}

static pygate_value
v_data(pygate_value_kind kind, const char *s)
{
    pygate_value v = {kind, 0, 0, s, strlen(s)};
    return v;
}

static void
values_cross_interpreters(void)
{
    py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 2};
    pygate_interp_pool *pool;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    pygate_value r;
    pygate_value two[2] = {v_int(40), v_int(2)};
    CHECK_OK(pygate_interp_pool_call(pool, 0, "operator", "add", two, 2, &r));
    CHECK(r.kind == PYGATE_VALUE_INT && r.integer == 42);
    pygate_value strs[2] = {v_data(PYGATE_VALUE_STR, "h\xc3\xa9"),
                            v_data(PYGATE_VALUE_STR, "llo")};
    CHECK_OK(pygate_interp_pool_call(pool, PYGATE_ANY_INTERP, "operator",
                                     "concat", strs, 2, &r));
    CHECK(r.kind == PYGATE_VALUE_STR && r.size == 6
          && strcmp(r.data, "h\xc3\xa9llo") == 0);
    pygate_value_clear(&r);
    CHECK(r.kind == PYGATE_VALUE_NONE && r.data == NULL);
    pygate_value raw = {PYGATE_VALUE_BYTES, 0, 0, "\x00\xff", 2};
    CHECK_OK(pygate_interp_pool_call(pool, 1, "binascii", "hexlify", &raw, 1,
                                     &r));
    CHECK(r.kind == PYGATE_VALUE_BYTES && r.size == 4
          && memcmp(r.data, "00ff", 4) == 0);
    pygate_value_clear(&r);
    pygate_value nine = {PYGATE_VALUE_FLOAT, 0, 9.0, NULL, 0};
    CHECK_OK(pygate_interp_pool_call(pool, 1, "math", "sqrt", &nine, 1, &r));
    CHECK(r.kind == PYGATE_VALUE_FLOAT && r.number == 3.0);
    CHECK_OK(pygate_interp_pool_call(pool, 0, "gc", "collect", NULL, 0, &r));
    CHECK(r.kind == PYGATE_VALUE_INT);
    pygate_value none = {PYGATE_VALUE_NONE, 0, 0, NULL, 0};
    CHECK_OK(pygate_interp_pool_call(pool, 0, "builtins", "repr", &none, 1,
                                     &r));
    CHECK(r.kind == PYGATE_VALUE_STR && strcmp(r.data, "None") == 0);
    pygate_value_clear(&r);
    /* docs/API.md's example. */
    pygate_value hello = {PYGATE_VALUE_BYTES, 0, 0, "hello", 5};
    CHECK_OK(pygate_interp_pool_call(pool, PYGATE_ANY_INTERP, "binascii",
                                     "crc32", &hello, 1, &r));
    CHECK(r.kind == PYGATE_VALUE_INT && r.integer == 907060870);
    pygate_value_clear(&r);
    /* Exceptions come back as text, never lost. */
    pygate_value minus = {PYGATE_VALUE_FLOAT, 0, -1.0, NULL, 0};
    CHECK_RC(pygate_interp_pool_call(pool, 0, "math", "sqrt", &minus, 1, &r),
             PYGATE_EEXCEPTION);
    CHECK(r.kind == PYGATE_VALUE_ERROR
          && strstr(r.data, "ValueError") != NULL);
    pygate_value_clear(&r);
    CHECK_RC(pygate_interp_pool_call(pool, 0, "builtins", "list", NULL, 0,
                                     &r), PYGATE_EEXCEPTION);
    CHECK(r.kind == PYGATE_VALUE_ERROR
          && strstr(r.data, "builtins.list returned list") != NULL);
    pygate_value_clear(&r);
    pygate_value thirty = {PYGATE_VALUE_INT, 30, 0, NULL, 0};
    CHECK_RC(pygate_interp_pool_call(pool, 0, "math", "factorial", &thirty,
                                     1, &r), PYGATE_EEXCEPTION);
    CHECK(r.kind == PYGATE_VALUE_ERROR
          && strstr(r.data, "math.factorial returned an int that does not"
                            " fit in 64 bits") != NULL);
    pygate_value_clear(&r);
    CHECK_RC(pygate_interp_pool_call(pool, 0, "pygate_no_such", "f", NULL, 0,
                                     &r), PYGATE_EEXCEPTION);
    CHECK(strstr(r.data, "ModuleNotFoundError") != NULL);
    pygate_value_clear(&r);
    pygate_value bad_utf8 = {PYGATE_VALUE_STR, 0, 0, "\xff", 1};
    CHECK_RC(pygate_interp_pool_call(pool, 0, "builtins", "len", &bad_utf8,
                                     1, &r), PYGATE_EEXCEPTION);
    CHECK(strstr(r.data, "UnicodeDecodeError") != NULL);
    pygate_value_clear(&r);
    /* Misuse. */
    pygate_value odd = {(pygate_value_kind)99, 0, 0, NULL, 0};
    CHECK_RC(pygate_interp_pool_call(pool, 0, "builtins", "len", &odd, 1, &r),
             PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_call(pool, 0, NULL, "len", NULL, 0, &r),
             PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_call(pool, 0, "builtins", "len", NULL, 1,
                                     &r), PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_call(pool, 2, "builtins", "len", NULL, 0,
                                     &r), PYGATE_EINVAL);
    pygate_value_clear(NULL);
    CHECK_OK(pygate_interp_pool_close(pool));
    CHECK_RC(pygate_interp_pool_call(pool, 0, "gc", "collect", NULL, 0, &r),
             PYGATE_EINVAL);
    harness_stop(&py);
}

/* ---- closing and finalizing --------------------------------------------- */

static int
short_sleep(void *arg)
{
    (void)arg;
    exec_ok("import time\ntime.sleep(0.002)\n");
    return 0;
}

static void
close_finishes_or_cancels(void)
{
    py = harness_start();
    for (int mode = PYGATE_POOL_FINISH; mode <= PYGATE_POOL_CANCEL; mode++) {
        pygate_interp_pool_options o = {.interpreters = 2, .on_close = mode};
        pygate_interp_pool *pool;
        CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
        pygate_job *last;
        for (int i = 0; i < 200; i++)
            CHECK_OK(pygate_interp_pool_submit(pool, PYGATE_ANY_INTERP,
                                               short_sleep, NULL,
                                               i == 199 ? &last : NULL));
        CHECK_OK(pygate_interp_pool_close(pool));
        CHECK_RC(pygate_job_wait(last, 0, NULL),
                 mode == PYGATE_POOL_FINISH ? PYGATE_OK : PYGATE_ECANCELLED);
        CHECK_OK(pygate_job_close(last));
        /* The handle is gone; the counts were checked by the waits: */
        CHECK_RC(pygate_interp_pool_counts(pool, NULL, NULL, NULL),
                 PYGATE_EINVAL);
    }
    harness_stop(&py);
}

static pygate_interp_pool *own_pool;
static _Atomic int close_from_job_rc = 1;

static int
close_own_pool(void *arg)
{
    (void)arg;
    atomic_store(&close_from_job_rc, pygate_interp_pool_close(own_pool));
    return 0;
}

static _Atomic int dones;

static void
count_done(int status, int result, PyObject *exc, void *arg)
{
    (void)result;
    (void)arg;
    CHECK(status == PYGATE_OK && exc == NULL && PyGILState_Check());
    atomic_fetch_add(&dones, 1);
}

static void
interp_pool_codes(void)
{
    py = harness_start();
    pygate_interp_pool *pool = NULL;
    pygate_interp_pool_options bad[] = {
        {.interpreters = 257}, {.workers = 5000}, {.on_close = 7},
        {.hold_seconds = -1}};
    /* The error names the option, its value and what it may be. */
    const char *said[] = {"option interpreters = 257 is out of range (0 to"
                          " 256)",
                          "option workers = 5000 is out of range (0 to 1024)",
                          "option on_close = 7 is neither",
                          "option hold_seconds = -1 is out of range (0 to"
                          " 60)"};
    char error[160];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(pygate_interp_pool_open(&bad[i], &pool, error, sizeof error),
                 PYGATE_EINVAL);
        printf("%s\n", error);
        CHECK(strstr(error, said[i]) != NULL);
    }
    CHECK_RC(pygate_interp_pool_open(NULL, NULL, error, sizeof error),
             PYGATE_EINVAL);
    CHECK(strstr(error, "out is NULL") != NULL);
    CHECK_RC(pygate_interp_pool_open(NULL, NULL, NULL, 0), PYGATE_EINVAL);
    pygate_interp_pool_options one = {.interpreters = 1};
    CHECK_OK(pygate_interp_pool_open(&one, &own_pool, NULL, 0));
    CHECK(pygate_interp_pool_parallel(own_pool) == (PY_VERSION_HEX >= 0x030C0000));
    CHECK_RC(pygate_interp_pool_submit(own_pool, 1, interp_id, NULL, NULL),
             PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_submit(own_pool, -2, interp_id, NULL, NULL),
             PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_submit_then(own_pool, 0, interp_id, NULL,
                                            NULL, NULL), PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_submit_then(own_pool, 1, interp_id, NULL,
                                            count_done, NULL), PYGATE_EINVAL);
    CHECK_OK(pygate_interp_pool_submit_then(own_pool, 0, interp_id, NULL,
                                            count_done, NULL));
    CHECK_RC(pygate_interp_pool_submit(own_pool, 0, NULL, NULL, NULL),
             PYGATE_EINVAL);
    pygate_view *v;
    CHECK_RC(pygate_interp_pool_view(own_pool, 1, &v), PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_view(own_pool, 0, NULL), PYGATE_EINVAL);
    CHECK_OK(pygate_interp_pool_view(own_pool, 0, &v));
    CHECK(run_and_wait(own_pool, 0, close_own_pool) == 0);
    CHECK_RC(atomic_load(&close_from_job_rc), PYGATE_EBUSY);
    /* Other kinds of handle are not pools. */
    CHECK_RC(pygate_interp_pool_close((pygate_interp_pool *)v),
             PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_size((pygate_interp_pool *)py.view),
             PYGATE_EINVAL);
    CHECK_OK(pygate_interp_pool_close(own_pool));
    CHECK(atomic_load(&dones) == 1);   /* called once, attached */
    CHECK_RC(pygate_interp_pool_close(own_pool), PYGATE_EINVAL);
    CHECK_RC(pygate_interp_pool_submit(own_pool, 0, interp_id, NULL, NULL),
             PYGATE_EINVAL);
    /* The view outlives the interpreter: entering says it is gone. */
    pygate_token tok;
    CHECK_RC(pygate_enter(v, &tok), PYGATE_EGONE);
    CHECK_OK(pygate_view_close(v));
    harness_stop(&py);
}

/* ---- the closing thread's stack ------------------------------------------ */

/* pygate's census (internal, linked from the static library). */
long pygate__records_count(void);

/* Objects of a member interpreter freed when it ended: a capsule inside a
 * list (a GC object) in its __main__. */
static _Atomic int members_cleared;

static void
count_cleared(PyObject *capsule)
{
    (void)capsule;
    atomic_fetch_add(&members_cleared, 1);
}

static int
keep_watched_object(void *arg)
{
    (void)arg;
    PyObject *capsule = PyCapsule_New(&members_cleared, "test.watched",
                                      count_cleared);
    PyObject *list = capsule != NULL ? PyList_New(0) : NULL;
    int rc = list != NULL && PyList_Append(list, capsule) == 0
             && PyDict_SetItemString(PyModule_GetDict(PyImport_AddModule(
                                         "__main__")), "watched", list) == 0
             ? 0 : -1;
    Py_XDECREF(list);
    Py_XDECREF(capsule);
    return rc;
}

static void *
close_pool_thread(void *arg)
{
    CHECK_OK(pygate_interp_pool_close((pygate_interp_pool *)arg));
    return NULL;
}

/* CPython 3.14+ keeps in a thread state the C stack bounds of the thread
 * that first ran it: ended on another thread whose stack lies below them,
 * an interpreter's objects were all put aside as if the stack were about
 * to overflow, and never freed (with the interpreter's memory). */
static void
closed_on_a_low_stack(void)
{
    py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 2};
    pygate_interp_pool *pool;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    for (int i = 0; i < 2; i++)
        CHECK(run_and_wait(pool, i, keep_watched_object) == 0);
    on_low_stack_thread(close_pool_thread, pool);
    printf("objects freed in %d of 2 ended interpreters, %ld records left\n",
           atomic_load(&members_cleared), pygate__records_count());
    CHECK(atomic_load(&members_cleared) == 2);
    CHECK(pygate__records_count() == 1);   /* the main interpreter's */
    harness_stop(&py);
}

/* Threads submit until refused; the main interpreter finalizes meanwhile,
 * with the pool still open. */
typedef struct submitter {
    pthread_t th;
    pygate_interp_pool *pool;
    long accepted;
    int refused;
} submitter;

static void *
submit_until_refused(void *arg)
{
    submitter *s = (submitter *)arg;
    for (;;) {
        int rc = pygate_interp_pool_submit(s->pool, PYGATE_ANY_INTERP,
                                           short_sleep, NULL, NULL);
        if (rc != PYGATE_OK) {
            s->refused = rc;
            return NULL;
        }
        s->accepted++;
    }
}

static void
main_finalizes_with_pool_open(void)
{
    py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 2,
                                    .on_close = PYGATE_POOL_CANCEL};
    pygate_interp_pool *pool;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    submitter subs[4];
    for (int i = 0; i < 4; i++) {
        subs[i] = (submitter){0, pool, 0, 0};
        CHECK(pthread_create(&subs[i].th, NULL, submit_until_refused,
                             &subs[i]) == 0);
    }
    usleep(100000);
    CHECK_OK(pygate_view_close(py.view));
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
    long accepted = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(pthread_join(subs[i].th, NULL) == 0);
        CHECK_RC(subs[i].refused, PYGATE_EFINALIZING);
        accepted += subs[i].accepted;
    }
    uint64_t s, c, x;
    CHECK_OK(pygate_interp_pool_counts(pool, &s, &c, &x));
    printf("accepted %ld: completed %llu, cancelled %llu\n", accepted,
           (unsigned long long)c, (unsigned long long)x);
    CHECK(s == (uint64_t)accepted && s == c + x);
    CHECK_RC(pygate_interp_pool_submit(pool, 0, interp_id, NULL, NULL),
             PYGATE_EFINALIZING);
    CHECK_OK(pygate_interp_pool_close(pool));
}

static int
sleep_08(void *arg)
{
    (void)arg;
    exec_ok("import time\ntime.sleep(0.8)\n");
    return 0;
}

static void
finalize_main(void)
{
    PyEval_RestoreThread(py.main_ts);
    CHECK(Py_FinalizeEx() == 0);
}

/* A member's job running when the main interpreter finalizes: the wait
 * for it is reported like every wait of pygate's at shutdown. */
static void
main_shutdown_reports_member_jobs(void)
{
    CHECK_OK(pygate_set_drain_limits(0.2, -1));
    py = harness_start();
    pygate_interp_pool_options o = {.interpreters = 1};
    pygate_interp_pool *pool;
    CHECK_OK(pygate_interp_pool_open(&o, &pool, NULL, 0));
    pygate_job *job;
    CHECK_OK(pygate_interp_pool_submit(pool, 0, sleep_08, NULL, &job));
    usleep(200 * 1000);
    CHECK_OK(pygate_view_close(py.view));
    const char *err = capture_stderr(finalize_main);
    CHECK(strstr(err, "shutdown of interpreter 0 has waited") != NULL);
    CHECK(strstr(err, "for pool 0x") != NULL);
    CHECK(strstr(err, "1 jobs not finished") != NULL);
    CHECK(strstr(err, "giving up") == NULL);
    CHECK_OK(pygate_job_wait(job, 0, NULL));
    CHECK_OK(pygate_job_close(job));
    CHECK_OK(pygate_interp_pool_close(pool));
}

static const scenario scenarios[] = {
    {"jobs_go_where_sent", jobs_go_where_sent},
    {"python_runs_in_parallel", python_runs_in_parallel},
    {"init_failure_leaves_nothing", init_failure_leaves_nothing},
    {"refusing_module_is_named", refusing_module_is_named},
    {"values_cross_interpreters", values_cross_interpreters},
    {"busy_member_lets_others_in", busy_member_lets_others_in},
    {"bounded_member_makes_submitter_wait",
     bounded_member_makes_submitter_wait},
    {"close_finishes_or_cancels", close_finishes_or_cancels},
    {"interp_pool_codes", interp_pool_codes},
    {"main_finalizes_with_pool_open", main_finalizes_with_pool_open},
    {"closed_on_a_low_stack", closed_on_a_low_stack},
    {"main_shutdown_reports_member_jobs", main_shutdown_reports_member_jobs},
    {NULL, NULL}};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
