/*
 * guard.c - guards the user holds: the interpreter cannot finalize past the
 * hook's drain while one is held (see interp.c for the gate itself).
 */
#include "internal.h"

/* Taken before the last fork(): the child forgot its guard (fork.c). */
static int
guard_inherited(const handle_slot *slot)
{
    return slot->fork_generation != pygate__records_fork_generation();
}

static int
guard_new(record *rec, pygate_guard **out, const char *file, int line)
{
    handle_slot *slot;
    uintptr_t handle = pygate__handle_new(HANDLE_GUARD, &slot);
    if (handle == 0)
        return PYGATE_ENOMEM;
    int rc = pygate__record_guard_acquire(rec);
    if (rc != PYGATE_OK) {
        pygate__handle_close(handle, HANDLE_GUARD);
        return rc;
    }
    pygate__record_ref(rec);
    slot->rec = rec;
    slot->fork_generation = pygate__records_fork_generation();
    slot->site = pygate__debug_mode()
                     ? pygate__record_site_add(rec, file, line)
                     : NULL;
    *out = (pygate_guard *)handle;
    return PYGATE_OK;
}

int
pygate__impl_guard_from_view_at(pygate_view *view, pygate_guard **out,
                                const char *file, int line)
{
    record *rec = pygate__view_record(view);
    if (rec == NULL || out == NULL)
        return PYGATE_EINVAL;
    return guard_new(rec, out, file, line);
}

int
pygate__impl_guard_from_current_at(pygate_guard **out, const char *file,
                                   int line)
{
    if (out == NULL)
        return PYGATE_EINVAL;
    record *rec;
    int rc = pygate__record_for_current(&rec);
    if (rc != PYGATE_OK)
        return rc;
    rc = guard_new(rec, out, file, line);
    pygate__record_unref(rec);
    return rc;
}

int
pygate__impl_guard_close(pygate_guard *guard)
{
    handle_slot *slot = pygate__handle_get((uintptr_t)(guard), HANDLE_GUARD);
    if (slot == NULL)
        return PYGATE_EINVAL;
    record *rec = slot->rec;
    int inherited = guard_inherited(slot);
    guard_site *site = slot->site;
    if (!pygate__handle_close((uintptr_t)(guard), HANDLE_GUARD))
        return PYGATE_EINVAL;   /* another thread closed it meanwhile */
    if (!inherited) {
        pygate__record_site_remove(rec, site);
        pygate__record_guard_release(rec);
    }
    pygate__record_unref(rec);
    return PYGATE_OK;
}

int64_t
pygate__impl_guard_id(const pygate_guard *guard)
{
    int holds;
    record *rec = pygate__guard_record((pygate_guard *)guard, &holds);
    return rec != NULL ? rec->id : PYGATE_EINVAL;
}

record *
pygate__guard_record(pygate_guard *guard, int *holds)
{
    handle_slot *slot = pygate__handle_get((uintptr_t)(guard), HANDLE_GUARD);
    if (slot == NULL)
        return NULL;
    *holds = !guard_inherited(slot);
    return slot->rec;
}
