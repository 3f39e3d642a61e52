/*
 * view.c - views: user handles naming an interpreter through its record.
 */
#include "internal.h"

#include <stdlib.h>

#define VIEW_LIVE 0x70677677u   /* "pgvw" */
#define VIEW_CLOSED 0x636c6f73u /* "clos" */

static int
view_new(record *rec, pygate_view **out)
{
    pygate_view *view = (pygate_view *)malloc(sizeof *view);
    if (view == NULL) {
        record_unref(rec);
        return PYGATE_ENOMEM;
    }
    view->magic = VIEW_LIVE;
    view->rec = rec;   /* takes over the caller's reference */
    *out = view;
    return PYGATE_OK;
}

int
pygate_view_from_current(pygate_view **out)
{
    if (out == NULL)
        return PYGATE_EINVAL;
    record *rec;
    int rc = record_for_current(&rec);
    return rc == PYGATE_OK ? view_new(rec, out) : rc;
}

int
pygate_view_from_main(pygate_view **out)
{
    if (out == NULL)
        return PYGATE_EINVAL;
    if (!Py_IsInitialized())
        return PYGATE_ENOTINIT;
    record *rec = record_find_main();
    if (rec != NULL) {
        if (atomic_load(&rec->phase) == PHASE_OPEN)
            return view_new(rec, out);
        int rc = record_error(rec);
        record_unref(rec);
        return rc;
    }
    /* No record of the main interpreter yet: making one installs the hook,
     * which needs a thread attached to the main interpreter. */
    PyThreadState *current = compat_current_tstate();
    if (current != NULL)
        return compat_tstate_interp(current) == PyInterpreterState_Main()
                   ? pygate_view_from_current(out)
                   : PYGATE_ENOTATTACHED;
    /* A thread with no thread state at all gets a main-interpreter one
     * from PyGILState for the moment.  Not once the runtime is finalizing
     * (the attach could kill or hang the thread), and not on a thread
     * whose gilstate slot holds some state (it may be a sub-interpreter's,
     * or one its owner is about to delete). */
    if (compat_runtime_finalizing())
        return PYGATE_EFINALIZING;
    if (compat_gilstate_get() != NULL)
        return PYGATE_ENOTATTACHED;
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = pygate_view_from_current(out);
    PyGILState_Release(gil);
    return rc;
}

int
pygate_view_close(pygate_view *view)
{
    if (view == NULL || view->magic != VIEW_LIVE)
        return PYGATE_EINVAL;
    view->magic = VIEW_CLOSED;
    record_unref(view->rec);
    free(view);
    return PYGATE_OK;
}

int64_t
pygate_view_id(const pygate_view *view)
{
    if (view == NULL || view->magic != VIEW_LIVE)
        return PYGATE_EINVAL;
    return view->rec->id;
}

record *
view_record(pygate_view *view)
{
    return view != NULL && view->magic == VIEW_LIVE ? view->rec : NULL;
}
