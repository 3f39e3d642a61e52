/*
 * enter_cost.c - ns per call of an empty Python function from one native
 * thread, three ways, measured side by side in one run:
 *   gilstate  per-call PyGILState_Ensure/Release (seeds 002, 004)
 *   floor     a kept PyThreadState, PyEval_RestoreThread/SaveThread
 *   pygate    pygate_enter/pygate_leave
 *   nested    pygate_enter/leave while already entered (no call)
 * Each is run REPS times, interleaved; the median and min-max are printed.
 * Usage: enter_cost [CALLS_PER_REP] [REPS]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { GILSTATE, FLOOR, PYGATE, NESTED, NMETHODS };
static const char *names[NMETHODS] = {"gilstate", "floor", "pygate", "nested"};

static PyObject *empty;
static pygate_view *view;
static long calls = 200000;
static int reps = 5;
static double ns[NMETHODS][64];

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
call_empty(void)
{
    PyObject *r = PyObject_CallObject(empty, NULL);
    if (r == NULL) {
        PyErr_Print();
        exit(1);
    }
    Py_DECREF(r);
}

static double
run_gilstate(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        PyGILState_STATE g = PyGILState_Ensure();
        call_empty();
        PyGILState_Release(g);
    }
    return (now() - t0) / (double)n;
}

static double
run_floor(long n)
{
    PyThreadState *ts = PyThreadState_New(PyInterpreterState_Main());
    double t0 = now();
    for (long i = 0; i < n; i++) {
        PyEval_RestoreThread(ts);
        call_empty();
        PyEval_SaveThread();
    }
    double per = (now() - t0) / (double)n;
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
    return per;
}

static double
run_pygate(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        pygate_enter(view, &tok);
        call_empty();
        pygate_leave(tok);
    }
    return (now() - t0) / (double)n;
}

static double
run_nested(long n)
{
    pygate_token outer;
    pygate_enter(view, &outer);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        pygate_token tok;
        pygate_enter(view, &tok);
        pygate_leave(tok);
    }
    double per = (now() - t0) / (double)n;
    pygate_leave(outer);
    return per;
}

typedef struct job {
    int method, rep;
} job;

/* One method, one repetition, on a fresh native thread: no method can
 * profit from a thread state another one left behind. */
static void *
measure(void *arg)
{
    job *j = (job *)arg;
    double (*run[NMETHODS])(long) = {run_gilstate, run_floor, run_pygate,
                                     run_nested};
    /* per-call PyGILState is ~300x slower on 3.11+: fewer calls for it */
    long n = j->method == GILSTATE ? calls / 20 + 1 : calls;
    ns[j->method][j->rep] = run[j->method](n);
    return NULL;
}

static int
by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
    if (argc > 1)
        calls = atol(argv[1]);
    if (argc > 2)
        reps = atoi(argv[2]);
    if (reps < 1 || reps > 64 || calls < 1) {
        fprintf(stderr, "usage: enter_cost [CALLS>0] [REPS 1..64]\n");
        return 2;
    }
    Py_InitializeEx(0);
    PyObject *g = PyDict_New();
    empty = PyRun_String("lambda: None", Py_eval_input, g, g);
    Py_DECREF(g);
    if (empty == NULL || pygate_view_from_main(&view) != 0)
        return 1;
    PyThreadState *main_ts = PyEval_SaveThread();
    for (int r = 0; r < reps; r++) {
        for (int m = 0; m < NMETHODS; m++) {
            job j = {m, r};
            pthread_t th;
            if (pthread_create(&th, NULL, measure, &j) != 0)
                return 1;
            pthread_join(th, NULL);
        }
    }
    PyEval_RestoreThread(main_ts);

    double median[NMETHODS];
    printf("CPython %s, one native thread, empty Python call, %d reps\n",
           PY_VERSION, reps);
    printf("%-10s %12s %12s %12s\n", "method", "median ns", "min ns",
           "max ns");
    for (int m = 0; m < NMETHODS; m++) {
        qsort(ns[m], (size_t)reps, sizeof(double), by_value);
        median[m] = ns[m][reps / 2];
        printf("%-10s %12.1f %12.1f %12.1f\n", names[m], median[m], ns[m][0],
               ns[m][reps - 1]);
    }
    printf("pygate / floor = %.3f   gilstate / pygate = %.1fx\n",
           median[PYGATE] / median[FLOOR], median[GILSTATE] / median[PYGATE]);
    Py_DECREF(empty);
    pygate_view_close(view);
    return Py_FinalizeEx() == 0 ? 0 : 1;
}
