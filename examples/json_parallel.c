/*
 * json_parallel.c - the 20-thread json program, in parallel.
 *
 * The same work as json_threads.c (20 native threads, each json.dumps-ing
 * {"id": id, "n": i} for i < ITERATIONS and checking every result), done
 * twice side by side: first through the one main interpreter (pygate_enter,
 * one GIL: the threads take turns), then spread over an interpreter pool of
 * K sub-interpreters (one per CPU), each with its own GIL from CPython
 * 3.12, so the dumps run in parallel.  Objects cannot cross interpreters:
 * each thread asks for a range of dumps with pygate_interp_pool_call and
 * gets them back as one str, which it checks line by line.
 *
 * Usage: json_parallel [ITERATIONS_PER_THREAD]
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
#define CHUNK 100   /* dumps per call into the pool */

static long iterations = 2000;
static pygate_view *main_interp;
static pygate_interp_pool *pool;

/* Defined in every interpreter of the pool (and in main): the dumps of
 * ids (id, first) .. (id, first + count - 1), one per line. */
static const char jobs_code[] =
    "import json, sys, types\n"
    "jobs = types.ModuleType('pygate_json_jobs')\n"
    "def dump_range(id, first, count):\n"
    "    return '\\n'.join(json.dumps({'id': id, 'n': n})\n"
    "                     for n in range(first, first + count))\n"
    "jobs.dump_range = dump_range\n"
    "sys.modules['pygate_json_jobs'] = jobs\n";

static int
define_jobs(void *arg)
{
    (void)arg;
    PyObject *globals = PyDict_New();
    PyObject *r = globals == NULL ? NULL
                  : PyRun_String(jobs_code, Py_file_input, globals, globals);
    Py_XDECREF(globals);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* Counts the lines of text that are the dumps expected for (id, first..). */
static long
count_correct(const char *text, long id, long first, long count)
{
    long ok = 0;
    for (long n = first; n < first + count && text != NULL; n++) {
        char want[64];
        int len = snprintf(want, sizeof want, "{\"id\": %ld, \"n\": %ld}",
                           id, n);
        if (strncmp(text, want, (size_t)len) == 0
                && (text[len] == '\n' || text[len] == '\0'))
            ok++;
        text = strchr(text, '\n');
        if (text != NULL)
            text++;
    }
    return ok;
}

typedef struct worker {
    long id;
    long ok;
    int error;
} worker;

/* One interpreter: enter main, dump a chunk, leave. */
static void *
work_in_main(void *arg)
{
    worker *w = (worker *)arg;
    for (long first = 0; first < iterations; first += CHUNK) {
        long count = iterations - first < CHUNK ? iterations - first : CHUNK;
        pygate_token tok;
        if (pygate_enter(main_interp, &tok) != PYGATE_OK) {
            w->error = 1;
            return NULL;
        }
        PyObject *jobs = PyImport_ImportModule("pygate_json_jobs");
        PyObject *text = jobs == NULL ? NULL
            : PyObject_CallMethod(jobs, "dump_range", "lll", w->id, first,
                                  count);
        if (text == NULL)
            PyErr_Print();
        else
            w->ok += count_correct(PyUnicode_AsUTF8(text), w->id, first,
                                   count);
        Py_XDECREF(text);
        Py_XDECREF(jobs);
        pygate_leave(tok);
    }
    return NULL;
}

/* K interpreters: the same chunks, as calls with C values. */
static void *
work_in_pool(void *arg)
{
    worker *w = (worker *)arg;
    for (long first = 0; first < iterations; first += CHUNK) {
        long count = iterations - first < CHUNK ? iterations - first : CHUNK;
        pygate_value args[3] = {{PYGATE_VALUE_INT, w->id, 0, NULL, 0},
                                {PYGATE_VALUE_INT, first, 0, NULL, 0},
                                {PYGATE_VALUE_INT, count, 0, NULL, 0}};
        pygate_value text;
        int rc = pygate_interp_pool_call(pool, PYGATE_ANY_INTERP,
                                         "pygate_json_jobs", "dump_range",
                                         args, 3, &text);
        if (rc == PYGATE_OK)
            w->ok += count_correct(text.data, w->id, first, count);
        else {
            fprintf(stderr, "thread %ld: %s\n%s", w->id, pygate_strerror(rc),
                    rc == PYGATE_EEXCEPTION ? text.data : "");
            w->error = 1;
        }
        pygate_value_clear(&text);
    }
    return NULL;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs NUM_THREADS threads of fn; returns calls per second, or -1 if a
 * result was wrong or a call failed. */
static double
run(void *(*fn)(void *))
{
    pthread_t threads[NUM_THREADS];
    worker workers[NUM_THREADS] = {{0}};
    double start = now();
    for (long i = 0; i < NUM_THREADS; i++) {
        workers[i].id = i;
        if (pthread_create(&threads[i], NULL, fn, &workers[i]) != 0)
            return -1;
    }
    long ok = 0, errors = 0;
    for (int i = 0; i < NUM_THREADS; i++) {
        pthread_join(threads[i], NULL);
        ok += workers[i].ok;
        errors += workers[i].error;
    }
    double rate = (double)(NUM_THREADS * iterations) / (now() - start);
    return ok == NUM_THREADS * iterations && errors == 0 ? rate : -1;
}

int
main(int argc, char **argv)
{
    if (argc > 1)
        iterations = atol(argv[1]);
    Py_InitializeEx(0);
    if (define_jobs(NULL) != 0 || pygate_view_from_main(&main_interp) != 0) {
        PyErr_Print();
        return 1;
    }
    PyThreadState *main_tstate = PyEval_SaveThread();

    double one = run(work_in_main);
    char error[2048];
    pygate_interp_pool_options o = {.init = define_jobs};
    int rc = pygate_interp_pool_open(&o, &pool, error, sizeof error);
    if (rc != PYGATE_OK) {
        fprintf(stderr, "json_parallel: %s: %s\n", pygate_strerror(rc),
                error);
        return 1;
    }
    int k = pygate_interp_pool_size(pool);
    int parallel = pygate_interp_pool_parallel(pool);
    double many = run(work_in_pool);
    pygate_interp_pool_close(pool);

    PyEval_RestoreThread(main_tstate);
    pygate_view_close(main_interp);
    int finalized = Py_FinalizeEx();

    printf("json_parallel: %d threads x %ld dumps, every result checked:\n"
           "  one interpreter (one GIL):  %8.0f dumps/s\n"
           "  %d interpreters (%s): %8.0f dumps/s, %.2fx\n",
           NUM_THREADS, iterations, one, k,
           parallel ? "a GIL each" : "one shared GIL: CPython < 3.12",
           many, many / one);
    if (one < 0 || many < 0 || finalized != 0) {
        fprintf(stderr, "json_parallel: FAILED\n");
        return 1;
    }
    return 0;
}
