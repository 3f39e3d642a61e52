/*
 * repeated_calls.c - one thread making many calls, with no pinning code.
 *
 * A native thread calls a Python function many times.  With per-call
 * PyGILState_Ensure/Release each call creates and destroys a thread state;
 * CPython's documentation suggests pinning one by hand for the thread's
 * life.  With pygate the thread just enters and leaves around each call:
 * its state is kept for it and freed when the thread ends.
 * Usage: repeated_calls [CALLS]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pygate_view *main_interp;
static PyObject *add_one;   /* lambda x: x + 1 */
static long calls = 1000000;

typedef struct result {
    long sum;
    int failed;
    double seconds;
} result;

/* Calls add_one(i) for every i; the sum of results is checked by main. */
static void *
caller(void *arg)
{
    result *res = (result *)arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < calls && !res->failed; i++) {
        pygate_token tok;
        if (pygate_enter(main_interp, &tok) != PYGATE_OK) {
            res->failed = 1;
            break;
        }
        PyObject *arg_i = PyLong_FromLong(i);
        PyObject *r = arg_i ? PyObject_CallFunctionObjArgs(add_one, arg_i, NULL) : NULL;
        Py_XDECREF(arg_i);
        if (r == NULL) {
            PyErr_Print();
            res->failed = 1;
        } else {
            res->sum += PyLong_AsLong(r);
            Py_DECREF(r);
        }
        pygate_leave(tok);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec)
                   + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc > 1)
        calls = atol(argv[1]);
    Py_InitializeEx(0);
    PyObject *globals = PyDict_New();
    add_one = globals ? PyRun_String("lambda x: x + 1", Py_eval_input,
                                     globals, globals) : NULL;
    Py_XDECREF(globals);
    if (add_one == NULL || pygate_view_from_main(&main_interp) != 0) {
        PyErr_Print();
        return 1;
    }
    PyThreadState *main_tstate = PyEval_SaveThread();

    result res = {0, 0, 0.0};
    pthread_t th;
    if (pthread_create(&th, NULL, caller, &res) != 0)
        return 1;
    pthread_join(th, NULL);

    PyEval_RestoreThread(main_tstate);
    Py_DECREF(add_one);
    pygate_view_close(main_interp);
    int finalized = Py_FinalizeEx();

    long want = calls * (calls + 1) / 2;   /* sum of i + 1 */
    printf("repeated_calls: %ld calls from one native thread, %.1f ns per"
           " call (enter + call + leave)\n", calls,
           res.seconds * 1e9 / (double)calls);
    if (res.failed || res.sum != want || finalized != 0) {
        printf("repeated_calls: FAILED (sum %ld, wanted %ld)\n", res.sum, want);
        return 1;
    }
    printf("repeated_calls: all results correct, clean exit\n");
    return 0;
}
