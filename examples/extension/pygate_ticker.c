/*
 * pygate_ticker.c - an extension module, done right, whose native
 * thread appends to a Python list every few milliseconds.
 *
 *   import pygate_ticker
 *   numbers = []
 *   pygate_ticker.start(numbers, 5)   # a native thread appends 0, 1, 2...
 *   ...
 *   count = pygate_ticker.stop()      # joins it; returns how many it added
 *
 * An extension whose native thread appends to a list without an attached
 * thread state crashes at once.  Here each append is inside a pygate
 * entry.  If the interpreter exits while the thread still runs, its next
 * entry fails with PYGATE_EFINALIZING (the hook waits for an entry in
 * flight), and the thread says so on stderr and ends: no crash, no hang,
 * exit 0.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

typedef struct ticker {
    pthread_t thread;
    pygate_view *view;        /* the interpreter that called start() */
    PyObject *list;           /* strong reference, used only when entered */
    long interval_ms;
    _Atomic int stop;
    _Atomic long appended;
    _Atomic int end_code;     /* why the thread ended: PYGATE_OK = stop() */
} ticker;

static ticker *running;      /* one ticker at a time; guarded by the GIL */

/* One append, inside an entry.  Returns the entry's code. */
static int
append_next(ticker *t)
{
    pygate_token tok;
    int rc = pygate_enter(t->view, &tok);
    if (rc != PYGATE_OK)
        return rc;
    PyObject *n = PyLong_FromSsize_t(PyList_Size(t->list));
    if (n == NULL || PyList_Append(t->list, n) < 0)
        PyErr_WriteUnraisable(t->list);   /* never leave with it set */
    Py_XDECREF(n);
    pygate_leave(tok);
    t->appended++;
    return PYGATE_OK;
}

static void *
ticker_main(void *arg)
{
    ticker *t = (ticker *)arg;
    struct timespec pause = {t->interval_ms / 1000,
                             (t->interval_ms % 1000) * 1000000L};
    int rc = PYGATE_OK;
    while (!t->stop && (rc = append_next(t)) == PYGATE_OK)
        nanosleep(&pause, NULL);
    t->end_code = rc;
    if (rc != PYGATE_OK)
        fprintf(stderr, "pygate_ticker: stopped after %ld appends: %s (%s)\n",
                t->appended, pygate_err_name(rc), pygate_strerror(rc));
    return NULL;
}

static PyObject *
ticker_start(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *list;
    long interval_ms = 5;
    if (!PyArg_ParseTuple(args, "O!|l:start", &PyList_Type, &list,
                          &interval_ms))
        return NULL;
    if (interval_ms < 0)
        return PyErr_Format(PyExc_ValueError, "interval_ms must be >= 0");
    if (running != NULL)
        return PyErr_Format(PyExc_RuntimeError, "already started");
    ticker *t = (ticker *)PyMem_RawCalloc(1, sizeof *t);
    if (t == NULL)
        return PyErr_NoMemory();
    int rc = pygate_view_from_current(&t->view);
    if (rc != PYGATE_OK) {
        PyMem_RawFree(t);
        return PyErr_Format(PyExc_RuntimeError, "pygate: %s",
                            pygate_strerror(rc));
    }
    Py_INCREF(list);
    t->list = list;
    t->interval_ms = interval_ms;
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        Py_DECREF(list);
        pygate_view_close(t->view);
        PyMem_RawFree(t);
        return PyErr_Format(PyExc_OSError, "cannot start a thread");
    }
    running = t;
    Py_RETURN_NONE;
}

static PyObject *
ticker_stop(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    ticker *t = running;
    if (t == NULL)
        return PyErr_Format(PyExc_RuntimeError, "not started");
    running = NULL;
    t->stop = 1;
    /* The thread needs the GIL for its last append: let it go meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(t->thread, NULL);
    Py_END_ALLOW_THREADS
    long appended = t->appended;
    Py_DECREF(t->list);
    pygate_view_close(t->view);
    PyMem_RawFree(t);
    return PyLong_FromLong(appended);
}

static PyMethodDef ticker_methods[] = {
    {"start", ticker_start, METH_VARARGS,
     "start(list, interval_ms=5): append 0, 1, 2... from a native thread"},
    {"stop", ticker_stop, METH_NOARGS,
     "stop() -> int: join the thread; return how many it appended"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef ticker_module = {
    PyModuleDef_HEAD_INIT, "pygate_ticker",
    "A native thread appending to a list through pygate.",
    -1, ticker_methods, NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC
PyInit_pygate_ticker(void)
{
    return PyModule_Create(&ticker_module);
}
