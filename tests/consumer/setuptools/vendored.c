/*
 * vendored.c - an extension module that vendors pygate's single file
 * (pygate.c + pygate.h, from tools/amalgamate.py) in a setuptools build.
 * Its native thread calls a Python callback n times, each call inside a
 * pygate entry:
 *
 *   import vendored
 *   vendored.start(callback, n)
 *   vendored.join()          # -> how many calls returned without error
 *   vendored.nested_depth()  # enters and says how deep the thread is
 *   vendored.record_keys()   # pygate records in this interpreter's dict
 *
 * Built twice more under other names (MODULE_NAME), each with its own copy
 * of pygate, to check that two copies in one process act as one.
 */
#define PY_SSIZE_T_CLEAN
#include "pygate.h"

#include <pthread.h>
#include <string.h>

#ifndef MODULE_NAME
#define MODULE_NAME vendored
#endif
#define STR_(x) #x
#define STR(x) STR_(x)
#define PYINIT_(name) PyInit_##name
#define PYINIT(name) PYINIT_(name)

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

/* Enters (nested, when the calling thread is inside another entry) and
 * returns pygate's depth for the thread there. */
static PyObject *
nested_depth(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    pygate_view *here;
    pygate_token tok;
    if (pygate_view_from_current(&here) != PYGATE_OK)
        return PyErr_Format(PyExc_RuntimeError, "pygate_view_from_current");
    int rc = pygate_enter(here, &tok);
    unsigned depth = pygate_thread_depth();
    if (rc == PYGATE_OK)
        pygate_leave(tok);
    pygate_view_close(here);
    return rc == PYGATE_OK ? PyLong_FromUnsignedLong(depth)
                           : PyErr_Format(PyExc_RuntimeError, "%s",
                                          pygate_strerror(rc));
}

/* How many pygate records the interpreter's dict holds (each comes with
 * its own shutdown hook). */
static PyObject *
record_keys(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#if PY_VERSION_HEX >= 0x03090000
    PyInterpreterState *interp = PyInterpreterState_Get();
#else
    PyInterpreterState *interp = PyThreadState_Get()->interp;
#endif
    PyObject *dict = PyInterpreterState_GetDict(interp);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    long n = 0;
    while (dict != NULL && PyDict_Next(dict, &pos, &key, &value))
        if (PyUnicode_Check(key) && strncmp(PyUnicode_AsUTF8(key),
                                            "pygate.record.", 14) == 0)
            n++;
    return PyLong_FromLong(n);
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
    {"nested_depth", nested_depth, METH_NOARGS, "enter; the depth there"},
    {"record_keys", record_keys, METH_NOARGS, "pygate records here"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, STR(MODULE_NAME), NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PYINIT(MODULE_NAME)(void)
{
    return PyModule_Create(&module);
}
