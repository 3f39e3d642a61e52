/*
 * guard.c - guards the user holds: the interpreter cannot finalize past the
 * hook's drain while one is held (see interp.c for the gate itself).
 */
#include "internal.h"

#include <stdlib.h>

#define GUARD_LIVE 0x70676764u   /* "pggd" */
#define GUARD_CLOSED_MAGIC 0x636c6f73u

struct pygate_guard {
    uint32_t magic;
    unsigned generation;  /* records_fork_generation() when taken */
    record *rec;          /* holds a reference */
    guard_site *site;     /* debug mode: where it was taken */
};

/* Taken before the last fork(): the child forgot its guard (fork.c). */
static int
guard_inherited(const pygate_guard *guard)
{
    return guard->generation != records_fork_generation();
}

static int
guard_new(record *rec, pygate_guard **out, const char *file, int line)
{
    pygate_guard *guard = (pygate_guard *)malloc(sizeof *guard);
    if (guard == NULL)
        return PYGATE_ENOMEM;
    int rc = record_guard_acquire(rec);
    if (rc != PYGATE_OK) {
        free(guard);
        return rc;
    }
    record_ref(rec);
    guard->magic = GUARD_LIVE;
    guard->generation = records_fork_generation();
    guard->rec = rec;
    guard->site = pygate_debug_mode() ? record_site_add(rec, file, line)
                                      : NULL;
    *out = guard;
    return PYGATE_OK;
}

int
pygate_guard_from_view_at(pygate_view *view, pygate_guard **out,
                          const char *file, int line)
{
    record *rec = view_record(view);
    if (rec == NULL || out == NULL)
        return PYGATE_EINVAL;
    return guard_new(rec, out, file, line);
}

int
pygate_guard_from_current_at(pygate_guard **out, const char *file, int line)
{
    if (out == NULL)
        return PYGATE_EINVAL;
    record *rec;
    int rc = record_for_current(&rec);
    if (rc != PYGATE_OK)
        return rc;
    rc = guard_new(rec, out, file, line);
    record_unref(rec);
    return rc;
}

int
pygate_guard_close(pygate_guard *guard)
{
    if (guard == NULL || guard->magic != GUARD_LIVE)
        return PYGATE_EINVAL;
    guard->magic = GUARD_CLOSED_MAGIC;
    record *rec = guard->rec;
    if (!guard_inherited(guard)) {
        record_site_remove(rec, guard->site);
        record_guard_release(rec);
    }
    record_unref(rec);
    free(guard);
    return PYGATE_OK;
}

int64_t
pygate_guard_id(const pygate_guard *guard)
{
    if (guard == NULL || guard->magic != GUARD_LIVE)
        return PYGATE_EINVAL;
    return guard->rec->id;
}

record *
guard_record(pygate_guard *guard, int *holds)
{
    if (guard == NULL || guard->magic != GUARD_LIVE)
        return NULL;
    *holds = !guard_inherited(guard);
    return guard->rec;
}
