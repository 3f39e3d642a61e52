/*
 * test_call.c - pygate_call: many native threads calling Python at once,
 * combined (with a GIL) or side by side (free-threaded); every call runs
 * exactly once and returns its own result.
 */
#include "harness.h"

#include <stdatomic.h>

static harness_python py;
static _Atomic long combined;   /* calls run on another thread than theirs */
static _Atomic long calls_run;  /* calls run, on whichever thread */

typedef struct request {
    unsigned long caller;       /* PyThread_get_thread_ident() */
    long value;
} request;

/* Some Python work (__main__.calls + 1, whose result is dropped: without
 * a GIL two calls run at once), counted; returns value+1. */
static int
increment(void *arg)
{
    request *r = (request *)arg;
    if (PyThread_get_thread_ident() != r->caller)
        atomic_fetch_add(&combined, 1);
    atomic_fetch_add(&calls_run, 1);
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *n = PyObject_GetAttrString(main, "calls");
    PyObject *one = PyLong_FromLong(1);
    PyObject *sum = n != NULL && one != NULL ? PyNumber_Add(n, one) : NULL;
    int ok = sum != NULL;
    Py_XDECREF(sum);
    Py_XDECREF(one);
    Py_XDECREF(n);
    return ok ? (int)r->value + 1 : -1;
}

static int
raise_it(void *arg)
{
    (void)arg;
    PyErr_SetString(PyExc_KeyError, "from a combined call");
    return 0;
}

enum { THREADS = 8, EACH = 5000 };
static _Atomic long calls_made;

/* EACH calls, and more until one call of any thread was combined (or 20 s
 * passed): a thread can make its EACH calls before the next one starts,
 * and a lone caller runs its own call without publishing it. */
static void *
call_many(void *arg)
{
    (void)arg;
    double until = now_seconds() + 20;
    long i;
    for (i = 0; i < EACH || (atomic_load(&combined) == 0
                             && now_seconds() < until); i++) {
        request r = {PyThread_get_thread_ident(), i};
        int result = 0;
        CHECK_OK(pygate_call(py.view, increment, &r, &result));
        CHECK(result == i + 1);
    }
    atomic_fetch_add(&calls_made, i);
    return NULL;
}

static void
calls_from_many_threads(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("calls = 0\n");
    PyEval_SaveThread();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, call_many, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    long made = atomic_load(&calls_made);
    CHECK(made >= THREADS * EACH && atomic_load(&calls_run) == made);
    printf("%ld calls from %d threads, %ld of them run by another thread"
           " (combined)\n", made, THREADS, atomic_load(&combined));
    /* Free-threaded: each caller runs its own (pygate.h). */
    CHECK(PYGATE_TEST_FREE_THREADED ? atomic_load(&combined) == 0
                                    : atomic_load(&combined) > 0);
    harness_stop(&py);
}

/* An attached caller runs its call itself, nested in its entry. */
static void
attached_caller_runs_itself(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("calls = 0\n");
    request r = {PyThread_get_thread_ident(), 41};
    int result = 0;
    CHECK_OK(pygate_call(py.view, increment, &r, &result));
    CHECK(result == 42 && atomic_load(&combined) == 0);
    PyEval_SaveThread();
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK_OK(pygate_call(py.view, increment, &r, &result));
    CHECK(pygate_thread_depth() == 1 && atomic_load(&combined) == 0);
    CHECK_OK(pygate_leave(tok));
    harness_stop(&py);
}

/* A lone caller runs its call at once, then the calls published while
 * it ran: hold_first keeps the first caller's call running until the
 * second caller has started its own, plus a while for it to publish. */
static _Atomic int second_started;
static _Atomic unsigned long first_ident;

static int
hold_first(void *arg)
{
    request *r = (request *)arg;
    first_ident = PyThread_get_thread_ident();
    while (!atomic_load(&second_started))
        usleep(100);
    usleep(20 * 1000);
    return (int)r->value + 1;
}

static int
note_runner(void *arg)
{
    request *r = (request *)arg;
    r->caller = PyThread_get_thread_ident();
    return (int)r->value + 1;
}

static void *
call_holding_first(void *arg)
{
    request *r = (request *)arg;
    int result = 0;
    CHECK_OK(pygate_call(py.view, hold_first, r, &result));
    CHECK(result == r->value + 1);
    return NULL;
}

/* Whether the second of two overlapping calls ran on the first caller's
 * thread (combined), in one of up to 5 tries: it can miss only when the
 * second caller took more than 20 ms to publish.  Free-threaded: never,
 * it runs on its own thread while the first one still runs. */
static void
lone_caller_serves_others(void)
{
    py = harness_start();
    int served = 0;
    int tries = PYGATE_TEST_FREE_THREADED ? 1 : 5;
    for (int attempt = 0; attempt < tries && !served; attempt++) {
        atomic_store(&second_started, 0);
        first_ident = 0;
        request first = {0, 10}, second = {0, 20};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, call_holding_first, &first) == 0);
        while (first_ident == 0)
            usleep(100);
        atomic_store(&second_started, 1);
        int result = 0;
        CHECK_OK(pygate_call(py.view, note_runner, &second, &result));
        CHECK(result == 21);
        CHECK(pthread_join(t, NULL) == 0);
        served = second.caller == first_ident;
        printf("try %d: the second call ran on %s\n", attempt + 1,
               served ? "the first caller's thread" : "its own");
    }
    CHECK(served == !PYGATE_TEST_FREE_THREADED);
    harness_stop(&py);
}

static void *
call_raising(void *arg)
{
    (void)arg;
    CHECK_RC(pygate_call(py.view, raise_it, NULL, NULL), PYGATE_EEXCEPTION);
    return NULL;
}

static void
exception_goes_to_unraisablehook(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    record_unraisable();
    PyEval_SaveThread();
    on_native_thread(call_raising, NULL);
    PyEval_RestoreThread(py.main_ts);
    CHECK(eval_long("unraisable == [\"'from a combined call'\"]"));
    PyEval_SaveThread();
    harness_stop(&py);
}

/* A call whose fn, detached, waits for another thread's pygate_call: the
 * other call cannot be run by this caller, busy in fn, so after a while
 * it takes its request back and enters itself (call.c, WITHDRAW_AFTER).
 * Once as the first caller's own call, once (if combined) as a call the
 * first caller runs for another thread. */
static int
answer(void *arg)
{
    (void)arg;
    return 7;
}

static void *
call_answer(void *arg)
{
    int result = 0;
    int rc = pygate_call(py.view, answer, NULL, &result);
    *(int *)arg = rc == PYGATE_OK ? result : rc;
    return NULL;
}

static int
wait_for_another_call(void *arg)
{
    request *r = (request *)arg;
    r->caller = PyThread_get_thread_ident();   /* who ran it */
    int answered = 0;
    pthread_t t;
    Py_BEGIN_ALLOW_THREADS
    if (pthread_create(&t, NULL, call_answer, &answered) == 0)
        pthread_join(t, NULL);
    Py_END_ALLOW_THREADS
    return answered;
}

static void *
call_waiting_then_hold(void *arg)
{
    request *r = (request *)arg;
    int result = 0;
    CHECK_OK(pygate_call(py.view, hold_first, r, &result));
    return NULL;
}

static void
calls_may_wait_for_calls(void)
{
    py = harness_start();
    alarm(60);   /* a hang fails here, not at ctest's timeout */
    request own = {0, 0};
    int result = 0;
    CHECK_OK(pygate_call(py.view, wait_for_another_call, &own, &result));
    CHECK(result == 7);
    /* The same from a request the first caller runs for this thread. */
    atomic_store(&second_started, 0);
    first_ident = 0;
    request first = {0, 10}, second = {0, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, call_waiting_then_hold, &first) == 0);
    while (first_ident == 0)
        usleep(100);
    atomic_store(&second_started, 1);
    result = 0;
    CHECK_OK(pygate_call(py.view, wait_for_another_call, &second, &result));
    CHECK(result == 7);
    CHECK(pthread_join(t, NULL) == 0);
    printf("the waiting call ran on %s\n", second.caller == first_ident
               ? "the first caller's thread" : "its own");
    alarm(0);
    harness_stop(&py);
}

/* Threads keep calling while Python finalizes: every call either ran or
 * was refused with a code; the shutdown neither hangs nor crashes. */
static _Atomic int refused[THREADS];
static pygate_view *call_view;   /* kept until the threads are joined */

static void *
call_until_refused(void *arg)
{
    long i = (long)(intptr_t)arg;
    request r = {PyThread_get_thread_ident(), 0};
    int rc;
    while ((rc = pygate_call(call_view, increment, &r, NULL)) == PYGATE_OK)
        ;
    if (rc != PYGATE_EFINALIZING && rc != PYGATE_EGONE)
        fprintf(stderr, "refused with %s\n", pygate_err_name(rc));
    CHECK(rc == PYGATE_EFINALIZING || rc == PYGATE_EGONE);
    atomic_store(&refused[i], 1);
    return NULL;
}

static void
finalize_refuses_calls(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("calls = 0\n");
    PyEval_SaveThread();
    CHECK_OK(pygate_view_from_main(&call_view));
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, call_until_refused,
                             (void *)(intptr_t)i) == 0);
    usleep(100 * 1000);
    harness_stop(&py);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(atomic_load(&refused[i]));
    CHECK_OK(pygate_view_close(call_view));
}

static void
call_codes(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    py = harness_start();
    CHECK_RC(pygate_call(NULL, increment, NULL, NULL), PYGATE_EINVAL);
    CHECK_RC(pygate_call(py.view, NULL, NULL, NULL), PYGATE_EINVAL);
    pygate_view *closed;
    CHECK_OK(pygate_view_from_main(&closed));
    CHECK_OK(pygate_view_close(closed));
    CHECK_RC(pygate_call(closed, increment, NULL, NULL), PYGATE_EINVAL);
    harness_stop(&py);
}

static const scenario scenarios[] = {
    {"calls_from_many_threads", calls_from_many_threads},
    {"attached_caller_runs_itself", attached_caller_runs_itself},
    {"lone_caller_serves_others", lone_caller_serves_others},
    {"exception_goes_to_unraisablehook", exception_goes_to_unraisablehook},
    {"finalize_refuses_calls", finalize_refuses_calls},
    {"call_codes", call_codes},
    {"calls_may_wait_for_calls", calls_may_wait_for_calls},
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
