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
 * Every exported function is a wrapper made from the one list below: it
 * forwards to the adopted table when there is one, else calls this copy's
 * implementation, pygate__impl_<name>.
 */
#include "internal.h"
#include "pygate/pep788.h"

#include <stdio.h>

/* Changes whenever a function below, or a type it passes (pygate_token,
 * pygate_scope_, handles), changes: copies of different versions then
 * stay apart rather than call each other wrongly. */
#define PYGATE__API_VERSION 5
#define API_CAPSULE "pygate.api.v5"

/* X(meets, return type, name, (parameters), (arguments)), void functions
 * apart; `meets` marks those that may make this copy's first record. */
#define PYGATE__API_RETURNING(X)                                             \
    X(1, int, view_from_current, (pygate_view **out), (out))                 \
    X(1, int, view_from_main, (pygate_view **out), (out))                    \
    X(0, int, view_close_at, (pygate_view *view, const char *file,          \
      int line), (view, file, line))                                         \
    X(0, int64_t, view_id, (const pygate_view *view), (view))                \
    X(0, int, guard_from_view_at, (pygate_view *view, pygate_guard **out,    \
      const char *file, int line), (view, out, file, line))                  \
    X(1, int, guard_from_current_at, (pygate_guard **out, const char *file,  \
      int line), (out, file, line))                                          \
    X(0, int, guard_close, (pygate_guard *guard), (guard))                   \
    X(0, int64_t, guard_id, (const pygate_guard *guard), (guard))            \
    X(0, int, decref, (pygate_view *view, PyObject *obj), (view, obj))        \
    X(0, int, pool_open, (pygate_view *view,                                  \
      const pygate_pool_options *options, pygate_pool **out),                \
      (view, options, out))                                                  \
    X(0, int, pool_close, (pygate_pool *pool), (pool))                        \
    X(0, int, pool_submit, (pygate_pool *pool, pygate_job_fn fn, void *arg,   \
      pygate_job **job), (pool, fn, arg, job))                               \
    X(0, int, pool_submit_then, (pygate_pool *pool, pygate_job_fn fn,         \
      void *arg, pygate_done_fn done, void *done_arg),                       \
      (pool, fn, arg, done, done_arg))                                       \
    X(0, int, pool_counts, (pygate_pool *pool, uint64_t *submitted,           \
      uint64_t *completed, uint64_t *cancelled),                             \
      (pool, submitted, completed, cancelled))                               \
    X(0, int, job_wait, (pygate_job *job, double timeout, int *result),       \
      (job, timeout, result))                                                \
    X(0, int, job_exception, (pygate_job *job, PyObject **exc), (job, exc))   \
    X(0, int, job_exception_text, (pygate_job *job, const char **text),       \
      (job, text))                                                           \
    X(0, int, job_close, (pygate_job *job), (job))                            \
    X(0, int, call, (pygate_view *view, pygate_job_fn fn, void *arg,          \
      int *result), (view, fn, arg, result))                                 \
    X(0, int, interp_pool_open, (const pygate_interp_pool_options *options,   \
      pygate_interp_pool **out, char *error, size_t error_size),             \
      (options, out, error, error_size))                                     \
    X(0, int, interp_pool_close, (pygate_interp_pool *pool), (pool))          \
    X(0, int, interp_pool_size, (pygate_interp_pool *pool), (pool))           \
    X(0, int, interp_pool_parallel, (pygate_interp_pool *pool), (pool))       \
    X(0, int, interp_pool_view, (pygate_interp_pool *pool, int index,         \
      pygate_view **out), (pool, index, out))                                \
    X(0, int, interp_pool_submit, (pygate_interp_pool *pool, int index,       \
      pygate_job_fn fn, void *arg, pygate_job **job),                        \
      (pool, index, fn, arg, job))                                           \
    X(0, int, interp_pool_submit_then, (pygate_interp_pool *pool, int index,  \
      pygate_job_fn fn, void *arg, pygate_done_fn done, void *done_arg),     \
      (pool, index, fn, arg, done, done_arg))                                \
    X(0, int, interp_pool_counts, (pygate_interp_pool *pool,                  \
      uint64_t *submitted, uint64_t *completed, uint64_t *cancelled),        \
      (pool, submitted, completed, cancelled))                               \
    X(0, int, interp_pool_call, (pygate_interp_pool *pool, int index,         \
      const char *module, const char *function, const pygate_value *args,    \
      size_t nargs, pygate_value *result),                                   \
      (pool, index, module, function, args, nargs, result))                  \
    X(0, int, set_drain_limits, (double report_every, double give_up_after), \
      (report_every, give_up_after))                                         \
    X(0, int, enter_at, (pygate_view *view, pygate_token *token,             \
      const char *file, int line), (view, token, file, line))                \
    X(0, int, enter_guarded_at, (pygate_guard *guard, pygate_token *token,   \
      const char *file, int line), (guard, token, file, line))               \
    X(0, int, leave_at, (pygate_token token, const char *file, int line),    \
      (token, file, line))                                                   \
    X(0, int, detach_at, (pygate_token *token, const char *file, int line),  \
      (token, file, line))                                                   \
    X(0, int, reattach_at, (pygate_token token, const char *file, int line), \
      (token, file, line))                                                   \
    X(0, unsigned, thread_depth, (void), ())                                 \
    X(0, int, thread_release, (void), ())                                    \
    X(0, int, thread_keep_gilstate, (pygate_view *view), (view))             \
    X(0, int, host_init, (const PyConfig *config), (config))                 \
    X(0, pygate_view *, host_view, (void), ())                               \
    X(0, int, host_shutdown, (void), ())                                     \
    X(0, int, host_fork, (pid_t *pid), (pid))                                \
    X(0, pygate_scope_, scope_enter_, (pygate_view *view, int *rc,           \
      const char *file, int line), (view, rc, file, line))                   \
    X(0, pygate_scope_, scope_detach_, (int *rc, const char *file, int line), \
      (rc, file, line))                                                      \
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
    X(0, void, value_clear, (pygate_value *value), (value))                  \
    X(0, void, scope_end_, (pygate_scope_ *scope), (scope))                  \
    X(0, void, PyInterpreterGuard_Close, (PyInterpreterGuard *guard),         \
      (guard))                                                               \
    X(0, void, PyInterpreterView_Close, (PyInterpreterView *view), (view))   \
    X(0, void, PyThreadState_Release, (PyThreadStateToken *token), (token))

/* The implementations, in the files below this one. */
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
