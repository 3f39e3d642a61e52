/*
 * json_threads.c - 20 native threads calling json.dumps, done right.
 *
 * 20 native threads each build a dict and json.dumps it, many times, all
 * through pygate: no semaphore, no PyGILState, every result checked, and a
 * clean exit.  Usage: json_threads [ITERATIONS_PER_THREAD]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NUM_THREADS 20

static pygate_view *main_interp;
static PyObject *json_dumps;   /* json.dumps, shared by all threads */
static long iterations = 2000;

typedef struct worker {
    long id;
    long ok;
    int error;
} worker;

/* One call: {"id": id, "n": i} -> '{"id": <id>, "n": <i>}', then checked. */
static int
dump_and_check(long id, long i)
{
    PyObject *dict = Py_BuildValue("{s:l,s:l}", "id", id, "n", i);
    PyObject *text = dict ? PyObject_CallFunctionObjArgs(json_dumps, dict, NULL) : NULL;
    Py_XDECREF(dict);
    if (text == NULL) {
        PyErr_Print();
        return 0;
    }
    char want[64];
    snprintf(want, sizeof want, "{\"id\": %ld, \"n\": %ld}", id, i);
    const char *got = PyUnicode_AsUTF8(text);
    int ok = got != NULL && strcmp(got, want) == 0;
    Py_DECREF(text);
    return ok;
}

static void *
work(void *arg)
{
    worker *w = (worker *)arg;
    for (long i = 0; i < iterations; i++) {
        pygate_token tok;
        int rc = pygate_enter(main_interp, &tok);
        if (rc != PYGATE_OK) {
            fprintf(stderr, "thread %ld: %s\n", w->id, pygate_strerror(rc));
            w->error = 1;
            return NULL;
        }
        w->ok += dump_and_check(w->id, i);
        pygate_leave(tok);
    }
    return NULL;
}

static double
seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec)
           + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

int
main(int argc, char **argv)
{
    if (argc > 1)
        iterations = atol(argv[1]);
    Py_InitializeEx(0);
    PyObject *json = PyImport_ImportModule("json");
    json_dumps = json ? PyObject_GetAttrString(json, "dumps") : NULL;
    Py_XDECREF(json);
    if (json_dumps == NULL || pygate_view_from_main(&main_interp) != 0) {
        PyErr_Print();
        return 1;
    }
    /* Let the workers have the GIL while main only waits (a host keeping it would starve them). */
    PyThreadState *main_tstate = PyEval_SaveThread();

    pthread_t threads[NUM_THREADS];
    worker workers[NUM_THREADS] = {{0}};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < NUM_THREADS; i++) {
        workers[i].id = i;
        if (pthread_create(&threads[i], NULL, work, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    long ok = 0, errors = 0;
    for (int i = 0; i < NUM_THREADS; i++) {
        pthread_join(threads[i], NULL);
        ok += workers[i].ok;
        errors += workers[i].error;
    }
    double elapsed = seconds_since(&start);
    long total = NUM_THREADS * iterations;

    PyEval_RestoreThread(main_tstate);
    Py_DECREF(json_dumps);
    pygate_view_close(main_interp);
    int finalized = Py_FinalizeEx();

    printf("json_threads: %d threads x %ld calls: %ld/%ld results correct,"
           " %.0f calls/s\n", NUM_THREADS, iterations, ok, total,
           (double)total / elapsed);
    if (ok != total || errors != 0 || finalized != 0) {
        printf("json_threads: FAILED\n");
        return 1;
    }
    printf("json_threads: all results correct, clean exit\n");
    return 0;
}
