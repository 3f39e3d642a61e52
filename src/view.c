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
     * which needs the caller attached to the main interpreter. */
    PyThreadState *current = compat_current_tstate();
    if (current == NULL
            || compat_tstate_interp(current) != PyInterpreterState_Main())
        return PYGATE_ENOTATTACHED;
    return pygate_view_from_current(out);
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
