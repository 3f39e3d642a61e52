/*
 * pep788.c - PEP 788's functions with pygate's behaviour, as thin wrappers
 * over pygate's guards, views and entries, on every CPython.  They are
 * named pygate_<PEP 788 name>; pygate/pep788.h maps the PEP's names to
 * them (see there for the switch to CPython 3.15's own).
 */
#include "internal.h"
#include "pygate/pep788.h"

/* The PEP's opaque types are pygate's, under other names. */
#define AS_GUARD(g) ((pygate_guard *)(g))
#define AS_VIEW(v) ((pygate_view *)(v))

/* Sets the exception PEP 788 promises for a failure while attached. */
static void
raise_for(int rc)
{
    if (rc == PYGATE_EPYTHON && PyErr_Occurred())
        return;
    if (rc == PYGATE_ENOMEM)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_RuntimeError, "pygate: %s", pygate__strerror(rc));
}

PyInterpreterGuard *
pygate__impl_PyInterpreterGuard_FromCurrent(void)
{
    pygate_guard *guard = NULL;
    int rc = pygate_guard_from_current(&guard);
    if (rc != PYGATE_OK)
        raise_for(rc);
    return (PyInterpreterGuard *)guard;
}

PyInterpreterGuard *
pygate__impl_PyInterpreterGuard_FromView(PyInterpreterView *view)
{
    pygate_guard *guard = NULL;
    pygate__impl_guard_from_view_at(AS_VIEW(view), &guard, __FILE__, __LINE__);
    return (PyInterpreterGuard *)guard;
}

void
pygate__impl_PyInterpreterGuard_Close(PyInterpreterGuard *guard)
{
    pygate__impl_guard_close(AS_GUARD(guard));
}

PyInterpreterView *
pygate__impl_PyInterpreterView_FromCurrent(void)
{
    pygate_view *view = NULL;
    int rc = pygate_view_from_current(&view);
    if (rc != PYGATE_OK)
        raise_for(rc);
    return (PyInterpreterView *)view;
}

PyInterpreterView *
pygate__impl_PyInterpreterView_FromMain(void)
{
    pygate_view *view = NULL;
    pygate_view_from_main(&view);
    return (PyInterpreterView *)view;
}

void
pygate__impl_PyInterpreterView_Close(PyInterpreterView *view)
{
    pygate__view_close(AS_VIEW(view));
}

/* A token is the thread's entry level (never 0 after an entry); the
 * thread is implicit, since Release must run on the thread that entered. */
static PyThreadStateToken *
token_encode(pygate_token token)
{
    return (PyThreadStateToken *)(uintptr_t)token.level_;
}

static uint32_t
token_level(PyThreadStateToken *token)
{
    return (uint32_t)(uintptr_t)token;
}

PyThreadStateToken *
pygate__impl_PyThreadState_Ensure(PyInterpreterGuard *guard)
{
    pygate_token token;
    if (pygate__impl_enter_guarded_at(AS_GUARD(guard), &token, __FILE__,
                                      __LINE__) != PYGATE_OK)
        return NULL;
    return token_encode(token);
}

PyThreadStateToken *
pygate__impl_PyThreadState_EnsureFromView(PyInterpreterView *view)
{
    pygate_token token;
    if (pygate__enter(AS_VIEW(view), &token) != PYGATE_OK)
        return NULL;
    return token_encode(token);
}

void
pygate__impl_PyThreadState_Release(PyThreadStateToken *token)
{
    pygate__leave_reporting_exception(pygate__entry_token(token_level(token)),
                              __FILE__, __LINE__);
}
