/*
 * view.c - views: user handles naming an interpreter through its record
 * (handle.c makes them safe to close twice or pass stale).
 */
#include "internal.h"

static int
view_new(record *rec, pygate_view **out)
{
    handle_slot *slot;
    uintptr_t handle = pygate__handle_new(HANDLE_VIEW, &slot);
    if (handle == 0) {
        pygate__record_unref(rec);
        return PYGATE_ENOMEM;
    }
    slot->rec = rec;   /* takes over the caller's reference */
    *out = (pygate_view *)handle;
    return PYGATE_OK;
}

int
pygate__view_new_for(record *rec, pygate_view **out)
{
    pygate__record_ref(rec);
    return view_new(rec, out);
}

int
pygate__impl_view_from_current(pygate_view **out)
{
    if (out == NULL)
        return PYGATE_EINVAL;
    record *rec;
    int rc = pygate__record_for_current(&rec);
    return rc == PYGATE_OK ? view_new(rec, out) : rc;
}

int
pygate__impl_view_from_main(pygate_view **out)
{
    if (out == NULL)
        return PYGATE_EINVAL;
    if (!Py_IsInitialized())
        return PYGATE_ENOTINIT;
    record *rec = pygate__record_find_main();
    if (rec != NULL) {
        if (atomic_load(&rec->phase) == PHASE_OPEN)
            return view_new(rec, out);
        int rc = pygate__record_error(rec);
        pygate__record_unref(rec);
        return rc;
    }
    /* No record of the main interpreter yet: making one installs the hook,
     * which needs a thread attached to the main interpreter. */
    PyThreadState *current = pygate__compat_current_tstate();
    if (current != NULL)
        return PyThreadState_GetInterpreter(current)
                       == PyInterpreterState_Main()
                   ? pygate_view_from_current(out)
                   : PYGATE_ENOTATTACHED;
    /* A thread with no thread state at all gets a main-interpreter one
     * from PyGILState for the moment.  Not once the runtime is finalizing
     * (the attach could kill or hang the thread), and not on a thread
     * whose gilstate slot holds some state (it may be a sub-interpreter's,
     * or one its owner is about to delete). */
    if (Py_IsFinalizing())
        return PYGATE_EFINALIZING;
    if (pygate__compat_gilstate_get() != NULL)
        return PYGATE_ENOTATTACHED;
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = pygate_view_from_current(out);
    PyGILState_Release(gil);
    return rc;
}

static int
view_close(pygate_view *view)
{
    record *rec = pygate__view_record(view);
    if (rec == NULL || !pygate__handle_close((uintptr_t)(view), HANDLE_VIEW))
        return PYGATE_EINVAL;
    /* Every thread's fast record opened through a view stops matching
     * (pygate.h): a nested entry through this one is refused from now on. */
    __atomic_fetch_add(&pygate__views_closed, 1, __ATOMIC_RELEASE);
    pygate__record_unref(rec);
    return PYGATE_OK;
}

int
pygate__impl_view_close_at(pygate_view *view, const char *file, int line)
{
    handle_slot *slot = pygate__handle_get((uintptr_t)(view), HANDLE_VIEW);
    if (slot != NULL && slot->pinned)
        return pygate__misuse(PYGATE_EINVAL, file, line,
                              "pygate_view_close of pygate_host_view(),"
                              " which is pygate's");
    if (view_close(view) != PYGATE_OK)
        return pygate__misuse(PYGATE_EINVAL, file, line,
                              "pygate_view_close of a view closed already,"
                              " or of something never a view");
    return PYGATE_OK;
}

void
pygate__view_pin(pygate_view *view)
{
    handle_slot *slot = pygate__handle_get((uintptr_t)(view), HANDLE_VIEW);
    if (slot != NULL)
        slot->pinned = 1;
}

void
pygate__view_close_pinned(pygate_view *view)
{
    view_close(view);
}

int64_t
pygate__impl_view_id(const pygate_view *view)
{
    record *rec = pygate__view_record((pygate_view *)view);
    return rec != NULL ? rec->id : PYGATE_EINVAL;
}

record *
pygate__view_record(pygate_view *view)
{
    handle_slot *slot = pygate__handle_get((uintptr_t)(view), HANDLE_VIEW);
    return slot != NULL ? slot->rec : NULL;
}
