/*
 * vendored.c - an extension module that vendors pygate's single file
 * (pygate.c + pygate.h, from tools/amalgamate.py) in a setuptools build.
 * Its native thread calls a Python callback n times, each call inside a
 * pygate entry:
 *
 *   import vendored
 *   vendored.start(callback, n)
 *   vendored.join()   # -> how many calls returned without error
 */
#define PY_SSIZE_T_CLEAN
#include "pygate.h"

#include <pthread.h>

static pthread_t worker;
static int running;
static pygate_view *view;
static PyObject *callback;
static long count, done;

static void *
call_back(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i++) {
        pygate_token tok;
        if (pygate_enter(view, &tok) != PYGATE_OK)
            break;
        PyObject *r = PyObject_CallFunction(callback, "l", i);
        if (r != NULL)
            done++;
        else
            PyErr_Print();
        Py_XDECREF(r);
        pygate_leave(tok);
    }
    return NULL;
}

static PyObject *
start(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *fn;
    if (running || !PyArg_ParseTuple(args, "Ol", &fn, &count))
        return running ? PyErr_Format(PyExc_RuntimeError, "running") : NULL;
    if (pygate_view_from_current(&view) != PYGATE_OK)
        return PyErr_Format(PyExc_RuntimeError, "pygate_view_from_current");
    Py_INCREF(fn);
    callback = fn;
    done = 0;
    running = pthread_create(&worker, NULL, call_back, NULL) == 0;
    return PyBool_FromLong(running);
}

static PyObject *
join(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (!running)
        return PyErr_Format(PyExc_RuntimeError, "not running");
    Py_BEGIN_ALLOW_THREADS
    pthread_join(worker, NULL);
    Py_END_ALLOW_THREADS
    running = 0;
    Py_CLEAR(callback);
    pygate_view_close(view);
    return PyLong_FromLong(done);
}

static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS, "start(callback, n): call it n times"},
    {"join", join, METH_NOARGS, "join() -> calls that succeeded"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vendored", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_vendored(void)
{
    return PyModule_Create(&module);
}
