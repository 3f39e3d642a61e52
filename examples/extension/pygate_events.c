/*
 * pygate_events.c - an extension module whose native thread produces events
 * (the shape of a file watcher or a message-queue client) and whose worker
 * pool calls a registered Python callback for each:
 *
 *   import pygate_events
 *   pygate_events.watch(callback)   # callback(event_number), on a worker
 *   ...                             # the script may simply end: events
 *                                   # are still flowing when Python exits
 *
 * The producer never touches Python: it submits a job per event to a pygate
 * pool.  When the interpreter shuts down, the pool stops first (its queued
 * events still run: PYGATE_POOL_FINISH), the producer's next submission is
 * refused with PYGATE_EFINALIZING, it says how many events it produced and
 * ends; the process exits 0 with no crash and no hang.
 */
#define PY_SSIZE_T_CLEAN
#include <pygate.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

typedef struct watcher {
    pthread_t producer;
    pygate_pool *pool;
    PyObject *callback;      /* used by jobs only, attached */
    _Atomic long produced;   /* counted before the event is submitted,
                                uncounted if it is refused */
    _Atomic long delivered;  /* counted before the callback is called */
} watcher;

static watcher *active;      /* one watcher per process; set under the GIL */

typedef struct event {
    watcher *w;
    long number;
} event;

/* A pool job: hands one event to Python. */
static int
deliver(void *arg)
{
    event *e = (event *)arg;
    atomic_fetch_add(&e->w->delivered, 1);
    PyObject *r = PyObject_CallFunction(e->w->callback, "l", e->number);
    Py_XDECREF(r);   /* an exception stays set: the pool reports it */
    free(e);
    return r != NULL ? 0 : -1;
}

/* The native producer: one event every 200 us, until refused. */
static void *
produce(void *arg)
{
    watcher *w = (watcher *)arg;
    struct timespec pause = {0, 200 * 1000};
    for (long n = 0;; n++) {
        event *e = (event *)malloc(sizeof *e);
        if (e == NULL)
            break;
        *e = (event){w, n};
        atomic_store(&w->produced, n + 1);
        int rc = pygate_pool_submit(w->pool, deliver, e, NULL);
        if (rc != PYGATE_OK) {
            atomic_store(&w->produced, n);
            free(e);
            fprintf(stderr, "pygate_events: producer stops after %ld events"
                    " (%s)\n", n, pygate_err_name(rc));
            break;
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static PyObject *
watch(PyObject *self, PyObject *callback)
{
    (void)self;
    if (active != NULL)
        return PyErr_Format(PyExc_RuntimeError, "already watching");
    if (!PyCallable_Check(callback))
        return PyErr_Format(PyExc_TypeError, "callback must be callable");
    watcher *w = (watcher *)calloc(1, sizeof *w);
    pygate_view *view = NULL;
    pygate_pool_options o = {.workers = 2, .on_close = PYGATE_POOL_FINISH};
    int rc = w == NULL ? PYGATE_ENOMEM : pygate_view_from_current(&view);
    if (rc == PYGATE_OK)
        rc = pygate_pool_open(view, &o, &w->pool);
    pygate_view_close(view);   /* the pool keeps its own */
    if (rc == PYGATE_OK) {
        Py_INCREF(callback);   /* kept for the process's life */
        w->callback = callback;
        if (pthread_create(&w->producer, NULL, produce, w) != 0) {
            pygate_pool_close(w->pool);
            Py_DECREF(callback);
            rc = PYGATE_ENOMEM;
        }
    }
    if (rc != PYGATE_OK) {
        free(w);
        return PyErr_Format(PyExc_RuntimeError, "pygate: %s",
                            pygate_strerror(rc));
    }
    pthread_detach(w->producer);   /* it ends on its own at shutdown */
    active = w;
    Py_RETURN_NONE;
}

static PyObject *
counts(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (active == NULL)
        return Py_BuildValue("(ll)", 0L, 0L);
    /* Delivered first: every event it counts was counted as produced
     * before, so the pair read this way never shows more delivered. */
    long delivered = atomic_load(&active->delivered);
    long produced = atomic_load(&active->produced);
    return Py_BuildValue("(ll)", produced, delivered);
}

static PyMethodDef methods[] = {
    {"watch", watch, METH_O, "watch(callback): call it for each event"},
    {"counts", counts, METH_NOARGS, "(produced, delivered) so far"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pygate_events", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_pygate_events(void)
{
    return PyModule_Create(&module);
}
