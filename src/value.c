/*
 * value.c - pygate_interp_pool_call(): module.function(*args) in a pool's
 * interpreter, with arguments and result as pygate_values, so that a
 * caller passes bytes, str, int and float across interpreters without
 * writing a job.  The values are converted inside the job, attached to the
 * interpreter that runs it; no object ever leaves it.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct call_job {
    const char *module;
    const char *function;
    const pygate_value *args;
    size_t nargs;
    pygate_value result;
    int no_memory;           /* the result could not be copied out */
} call_job;

static PyObject *
object_from(const pygate_value *v)
{
    switch (v->kind) {
    case PYGATE_VALUE_NONE:
        Py_INCREF(Py_None);
        return Py_None;
    case PYGATE_VALUE_INT:
        return PyLong_FromLongLong(v->integer);
    case PYGATE_VALUE_FLOAT:
        return PyFloat_FromDouble(v->number);
    case PYGATE_VALUE_BYTES:
        return PyBytes_FromStringAndSize(v->data, (Py_ssize_t)v->size);
    case PYGATE_VALUE_STR:
        return PyUnicode_DecodeUTF8(v->data, (Py_ssize_t)v->size, "strict");
    default:
        PyErr_SetString(PyExc_TypeError, "pygate: an argument's kind is not"
                        " a pygate_value_kind");
        return NULL;
    }
}

/* A malloc'd copy of size bytes plus a NUL, in v, as `kind`; without
 * memory for it, v stays NONE and c->no_memory is set (the call then
 * answers PYGATE_ENOMEM, not a MemoryError of the function's). */
static int
copy_data(pygate_value *v, pygate_value_kind kind, const char *data,
          size_t size, call_job *c)
{
    char *copy = (char *)pygate__malloc(size + 1);
    if (copy == NULL) {
        c->no_memory = 1;
        return 0;
    }
    memcpy(copy, data, size);
    copy[size] = '\0';
    v->kind = kind;
    v->data = copy;
    v->size = size;
    return 0;
}

/* The result as a value; -1 with an exception set for another type. */
static int
value_from(PyObject *o, pygate_value *v, call_job *c)
{
    if (o == Py_None)
        return 0;
    if (PyLong_Check(o)) {
        v->integer = PyLong_AsLongLong(o);
        if (v->integer == -1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();   /* "int too big to convert" says too little */
                PyErr_Format(PyExc_OverflowError, "pygate: %s.%s returned an"
                             " int that does not fit in 64 bits; a call's"
                             " result is a long long", c->module,
                             c->function);
            }
            return -1;
        }
        v->kind = PYGATE_VALUE_INT;
        return 0;
    }
    if (PyFloat_Check(o)) {
        v->number = PyFloat_AsDouble(o);
        v->kind = PYGATE_VALUE_FLOAT;
        return 0;
    }
    if (PyBytes_Check(o))
        return copy_data(v, PYGATE_VALUE_BYTES, PyBytes_AS_STRING(o),
                         (size_t)PyBytes_GET_SIZE(o), c);
    if (PyUnicode_Check(o)) {
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(o, &size);
        return utf8 == NULL ? -1 : copy_data(v, PYGATE_VALUE_STR, utf8,
                                             (size_t)size, c);
    }
    PyErr_Format(PyExc_TypeError, "pygate: %s.%s returned %.100s; a call"
                 " returns None, int, float, bytes or str", c->module,
                 c->function, Py_TYPE(o)->tp_name);
    return -1;
}

static PyObject *
args_tuple(const call_job *c)
{
    PyObject *args = PyTuple_New((Py_ssize_t)c->nargs);
    for (size_t i = 0; args != NULL && i < c->nargs; i++) {
        PyObject *item = object_from(&c->args[i]);
        if (item == NULL)
            Py_CLEAR(args);
        else
            PyTuple_SET_ITEM(args, (Py_ssize_t)i, item);
    }
    return args;
}

/* The job: attached to the interpreter that runs it. */
static int
call_in_interpreter(void *arg)
{
    call_job *c = (call_job *)arg;
    PyObject *module = PyImport_ImportModule(c->module);
    PyObject *fn = module == NULL ? NULL
                                  : PyObject_GetAttrString(module, c->function);
    PyObject *args = fn == NULL ? NULL : args_tuple(c);
    PyObject *ret = args == NULL ? NULL : PyObject_CallObject(fn, args);
    int rc = ret == NULL ? -1 : value_from(ret, &c->result, c);
    Py_XDECREF(ret);
    Py_XDECREF(args);
    Py_XDECREF(fn);
    Py_XDECREF(module);
    return rc;
}

static int
arguments_valid(const char *module, const char *function,
                const pygate_value *args, size_t nargs, pygate_value *result)
{
    if (module == NULL || function == NULL || result == NULL
            || (args == NULL && nargs > 0))
        return 0;
    for (size_t i = 0; i < nargs; i++)
        if ((unsigned)args[i].kind > PYGATE_VALUE_STR
                || ((args[i].kind == PYGATE_VALUE_BYTES
                     || args[i].kind == PYGATE_VALUE_STR)
                    && args[i].data == NULL && args[i].size > 0))
            return 0;
    return 1;
}

/* After the job ran: its exception, if any, as an ERROR result. */
static int
collect(pygate_job *job, call_job *c, pygate_value *result)
{
    const char *text = NULL;
    pygate__impl_job_exception_text(job, &text);
    if (text == NULL) {
        *result = c->result;
        return PYGATE_OK;
    }
    pygate__impl_value_clear(&c->result);
    char *copy = pygate__strdup(text);
    if (copy == NULL)
        return PYGATE_ENOMEM;   /* *result stays NONE */
    *result = (pygate_value){PYGATE_VALUE_ERROR, 0, 0, copy, strlen(copy)};
    return PYGATE_EEXCEPTION;
}

int
pygate__impl_interp_pool_call(pygate_interp_pool *pool, int index,
                              const char *module, const char *function,
                              const pygate_value *args, size_t nargs,
                              pygate_value *result)
{
    if (!arguments_valid(module, function, args, nargs, result))
        return PYGATE_EINVAL;
    *result = (pygate_value){PYGATE_VALUE_NONE, 0, 0, NULL, 0};
    call_job c = {module, function, args, nargs, *result, 0};
    pygate_job *job;
    int rc = pygate__impl_interp_pool_submit(pool, index,
                                             call_in_interpreter, &c, &job);
    if (rc != PYGATE_OK)
        return rc;
    rc = pygate__impl_job_wait(job, -1, NULL);
    if (rc == PYGATE_OK)
        rc = c.no_memory ? PYGATE_ENOMEM : collect(job, &c, result);
    pygate__impl_job_close(job);
    return rc;
}

void
pygate__impl_value_clear(pygate_value *value)
{
    if (value == NULL)
        return;
    if (value->kind == PYGATE_VALUE_BYTES || value->kind == PYGATE_VALUE_STR
            || value->kind == PYGATE_VALUE_ERROR)
        free((void *)value->data);
    *value = (pygate_value){PYGATE_VALUE_NONE, 0, 0, NULL, 0};
}
