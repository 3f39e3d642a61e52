/*
 * api.c - the exported functions, and one pygate per process.
 *
 * Two extension modules that each vendor pygate (static library or single
 * file) carry two copies of it in one process.  Left alone, each copy would
 * give a native thread its own thread state for the same interpreter, keep
 * its own shutdown gate, and bind states in the gilstate slot behind the
 * other's back.  So the copies meet: the first one to make a record in an
 * interpreter leaves its table of functions there (a versioned capsule in
 * the interpreter's dict, the way pybind11 and nanobind share their
 * internals between modules), and a copy that arrives later, before it has
 * made any record of its own, hands every call to that table from then on.
 * A copy that already has records keeps them, and stays apart (as does one
 * whose table layout differs: another PYGATE__API_VERSION).
 *
 * Every exported function that may be handed over is a wrapper made from
 * one list (api_list.h, PEP 788's added below): it forwards to the adopted
 * table when there is one, else calls this copy's implementation,
 * pygate__impl_<name>.  Internal code calls the implementations, never the
 * wrappers (internal.h), but for those that must meet the other copies
 * first (tests/check_layers.py names them).
 */
#include "internal.h"
#include "pygate/pep788.h"

#include <stdio.h>

/* Changes whenever a function below, or a type it passes (pygate_token,
 * pygate_scope_, handles), changes: copies of different versions then
 * stay apart rather than call each other wrongly. */
#define PYGATE__API_VERSION 5
#define API_CAPSULE "pygate.api.v5"

/* The exported functions: api_list.h's, and PEP 788's. */
#define PYGATE__API_RETURNING(X)                                             \
    PYGATE__API_CORE_RETURNING(X)                                            \
    X(1, PyInterpreterGuard *, PyInterpreterGuard_FromCurrent, (void), ())   \
    X(0, PyInterpreterGuard *, PyInterpreterGuard_FromView,                  \
      (PyInterpreterView *view), (view))                                     \
    X(1, PyInterpreterView *, PyInterpreterView_FromCurrent, (void), ())     \
    X(1, PyInterpreterView *, PyInterpreterView_FromMain, (void), ())        \
    X(0, PyThreadStateToken *, PyThreadState_Ensure,                         \
      (PyInterpreterGuard *guard), (guard))                                  \
    X(0, PyThreadStateToken *, PyThreadState_EnsureFromView,                 \
      (PyInterpreterView *view), (view))

#define PYGATE__API_VOID(X)                                                  \
    PYGATE__API_CORE_VOID(X)                                                 \
    X(0, void, PyInterpreterGuard_Close, (PyInterpreterGuard *guard),         \
      (guard))                                                               \
    X(0, void, PyInterpreterView_Close, (PyInterpreterView *view), (view))   \
    X(0, void, PyThreadState_Release, (PyThreadStateToken *token), (token))

/* PEP 788's implementations, in pep788.c (internal.h declares the
 * others). */
#define DECLARE_IMPL(meets, ret, name, params, args)                        \
    ret pygate__impl_##name params;
PYGATE__API_RETURNING(DECLARE_IMPL)
PYGATE__API_VOID(DECLARE_IMPL)
#undef DECLARE_IMPL

typedef struct pygate__api {
    uint32_t version;   /* PYGATE__API_VERSION */
    uint32_t size;      /* sizeof (pygate__api) */
#define FIELD(meets, ret, name, params, args) ret (*name) params;
    PYGATE__API_RETURNING(FIELD)
    PYGATE__API_VOID(FIELD)
#undef FIELD
} pygate__api;

static const pygate__api own_api = {
    PYGATE__API_VERSION,
    sizeof(pygate__api),
#define ENTRY(meets, ret, name, params, args) pygate__impl_##name,
    PYGATE__API_RETURNING(ENTRY)
    PYGATE__API_VOID(ENTRY)
#undef ENTRY
};

/* The table of the copy this one hands its calls to, once adopted. */
static const pygate__api *_Atomic adopted;

static const pygate__api *
other_copy(void)
{
    return atomic_load_explicit(&adopted, memory_order_acquire);
}

/* Called attached, by the functions that may make this copy's first
 * record: meets the copy that owns the calling thread's interpreter, or
 * leaves this copy's table there for later ones.  Best effort: a failure
 * leaves the copies apart, as they were. */
static void
meet_other_copies(void)
{
    PyThreadState *tstate = pygate__compat_current_tstate_attached();
    if (other_copy() != NULL || tstate == NULL)
        return;
    PyObject *dict = pygate__compat_interp_dict(
        PyThreadState_GetInterpreter(tstate));
    if (dict == NULL)
        return;
    PyObject *held;
    if (PyDict_GetItemStringRef(dict, API_CAPSULE, &held) == 0) {
        /* Published in one step: two copies meeting on two threads at
         * once (free-threaded) agree on one table. */
        PyObject *mine = PyCapsule_New((void *)&own_api, API_CAPSULE, NULL);
        held = mine != NULL ? compat_dict_publish(dict, API_CAPSULE, mine)
                            : NULL;
        Py_XDECREF(mine);
    }
    const pygate__api *owner =
        held != NULL ? (const pygate__api *)PyCapsule_GetPointer(held,
                                                                 API_CAPSULE)
                     : NULL;
    Py_XDECREF(held);   /* the dict keeps it; the table is static */
    if (owner == NULL) {
        PyErr_Clear();
        return;
    }
    if (owner == &own_api || owner->version != PYGATE__API_VERSION
            || owner->size != sizeof(pygate__api) || pygate__records_exist())
        return;
    atomic_store_explicit(&adopted, owner, memory_order_release);
}

/* The exported functions. */
#define WRAP(meets, ret, name, params, args)                                 \
    ret pygate_##name params                                                 \
    {                                                                        \
        if (meets)                                                           \
            meet_other_copies();                                             \
        const pygate__api *other = other_copy();                             \
        if (other != NULL)                                                   \
            return other->name args;                                         \
        return pygate__impl_##name args;                                     \
    }
#define WRAP_VOID(meets, ret, name, params, args)                            \
    ret pygate_##name params                                                 \
    {                                                                        \
        const pygate__api *other = other_copy();                             \
        if (other != NULL)                                                   \
            other->name args;                                                \
        else                                                                 \
            pygate__impl_##name args;                                        \
    }
PYGATE__API_RETURNING(WRAP)
PYGATE__API_VOID(WRAP_VOID)
