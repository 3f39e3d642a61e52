/*
 * interp.c - one record per interpreter: its lifetime gate.
 *
 * The gate has two kinds of guard.  A shared one is one atomic word: a
 * CLOSED bit and the number of guards held; taking a guard is one
 * fetch_add, and if CLOSED was already set the guard is given back and the
 * caller fails.  A local one is a counter in a thread's cached entry (the
 * entry fast path): only its owner writes it, with a plain store, a
 * compiler barrier and a load of the phase; the shutdown hook pays for the
 * missing fence with membarrier(2), which makes every thread of the process
 * pass a full memory barrier, and then counts the local guards.  Either way
 * the hook closes the gate first and then waits for the count to drain, so
 * busy threads cannot keep shutdown waiting for a quiet moment (CPython
 * 3.15's own Py_FinalizeEx closes only at a moment with no guard held, and
 * two threads that keep entering never give it one).
 *
 * Every live record is on one registry list, so that fork() can lock them
 * all and set them right in the child (fork.c).  When records are made and
 * how the hook drains them is lifecycle.c's business.
 */
#include "internal.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The registry: every record from pygate__record_new() to its last unref. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static record *registry;
static record *main_record;   /* holds a reference while the main is open */

/* ---- references --------------------------------------------------------- */

void
pygate__record_ref(record *rec)
{
    atomic_fetch_add_explicit(&rec->refs, 1, memory_order_relaxed);
}

void
pygate__record_unref(record *rec)
{
    if (atomic_fetch_sub_explicit(&rec->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* A decref that passed the phase check just before shutdown closed
     * the gate can queue after the last drain: its reference is left
     * alone (pygate.h), and its block is unqueued here, when no view is
     * left to queue more. */
    pygate__decref_queue_abandon(rec);
    pthread_mutex_lock(&registry_lock);
    PYGATE__LIST_UNLINK(registry, rec, reg_prev, reg_next);
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_destroy(&rec->lock);
    pthread_cond_destroy(&rec->drained);
    free(rec);
}

int
pygate__record_error(record *rec)
{
    int phase = atomic_load_explicit(&rec->phase, memory_order_acquire);
    return phase == PHASE_GONE ? PYGATE_EGONE : PYGATE_EFINALIZING;
}

/* ---- the asymmetric fence ----------------------------------------------- */

static int local_guards;   /* set once, before the first record exists */
static pthread_once_t local_guards_once = PTHREAD_ONCE_INIT;

static long
membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0);
}

/* Local guards need MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux 4.14+; it may
 * be filtered by seccomp).  Without it every guard is a shared one.
 * PYGATE_NO_MEMBARRIER=1 forces that, so the tests cover both. */
static void
local_guards_init(void)
{
    const char *env = getenv("PYGATE_NO_MEMBARRIER");
    if (env != NULL && *env != '\0' && strcmp(env, "0") != 0)
        return;
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)
            && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        local_guards = 1;
}

int
pygate__record_local_guards(void)
{
    return local_guards;
}

/* The hook's half: after it, every local guard taken before the gate
 * closed is visible, and every one taken later sees the gate closed. */
static void
membarrier_all_threads(void)
{
    if (!local_guards || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        return;
    /* Registration is inherited by fork(), but not relied upon. */
    if (membarrier(MEMBARRIER_CMD_GLOBAL) == 0)
        return;
    fprintf(stderr, "pygate: membarrier failed after it was registered (%s);"
            " cannot drain local guards safely\n", strerror(errno));
    abort();
}

/* ---- guards ------------------------------------------------------------- */

static void
wake_hook(record *rec)
{
    record_lock(rec);
    pthread_cond_broadcast(&rec->drained);
    record_unlock(rec);
}

int
pygate__record_guard_acquire_local(record *rec, _Atomic uint32_t *held)
{
    pygate__record_guard_add_local(held);
    /* No fence: the hook's membarrier orders this store before its count
     * or this load after its close (see membarrier_all_threads). */
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rec->phase, memory_order_acquire) == PHASE_OPEN)
        return PYGATE_OK;
    pygate__record_guard_release_local(rec, held);
    return pygate__record_error(rec);
}

void
pygate__record_guard_release_local(record *rec, _Atomic uint32_t *held)
{
    uint32_t n = atomic_load_explicit(held, memory_order_relaxed);
    atomic_store_explicit(held, n - 1, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rec->phase, memory_order_relaxed) != PHASE_OPEN)
        wake_hook(rec);   /* only during shutdown: recount */
}

void
pygate__record_guard_add_local(_Atomic uint32_t *held)
{
    uint32_t n = atomic_load_explicit(held, memory_order_relaxed);
    atomic_store_explicit(held, n + 1, memory_order_relaxed);
}

int
pygate__record_guard_acquire(record *rec)
{
    uint64_t old = atomic_fetch_add_explicit(&rec->guards, 1,
                                             memory_order_acq_rel);
    if (!(old & GUARD_CLOSED))
        return PYGATE_OK;
    pygate__record_guard_release(rec);
    return pygate__record_error(rec);
}

void
pygate__record_guard_release(record *rec)
{
    uint64_t old = atomic_fetch_sub_explicit(&rec->guards, 1,
                                             memory_order_acq_rel);
    if (old & GUARD_CLOSED)
        wake_hook(rec);   /* only during shutdown: recount */
}

void
pygate__record_guard_add(record *rec)
{
    atomic_fetch_add_explicit(&rec->guards, 1, memory_order_acq_rel);
}

guard_site *
pygate__record_site_add(record *rec, const char *file, int line)
{
    guard_site *site = (guard_site *)pygate__malloc(sizeof *site);
    if (site == NULL)
        return NULL;
    site->file = file;
    site->line = line;
    site->thread = PyThread_get_thread_ident();
    site->prev = NULL;
    record_lock(rec);
    site->next = rec->sites;
    if (rec->sites != NULL)
        rec->sites->prev = site;
    rec->sites = site;
    record_unlock(rec);
    return site;
}

void
pygate__record_site_remove(record *rec, guard_site *site)
{
    if (site == NULL)
        return;
    record_lock(rec);
    if (site->prev != NULL)
        site->prev->next = site->next;
    else
        rec->sites = site->next;
    if (site->next != NULL)
        site->next->prev = site->prev;
    record_unlock(rec);
    free(site);
}

uint64_t
pygate__record_guards_held(record *rec)
{
    RECORD_ASSERT_LOCKED(rec);
    uint64_t n = atomic_load_explicit(&rec->guards, memory_order_acquire)
                 & ~GUARD_CLOSED;
    for (entry *e = rec->entries; e != NULL; e = e->rec_next)
        n += atomic_load_explicit(&e->held, memory_order_acquire);
    return n;
}

/* ---- birth, closing, and the registry ----------------------------------- */

record *
pygate__record_new(PyInterpreterState *interp, int64_t id)
{
    pthread_once(&local_guards_once, local_guards_init);
    record *rec = (record *)pygate__calloc(1, sizeof *rec);
    if (rec == NULL)
        return NULL;
    static _Atomic uint64_t serials;
    rec->id = id;
    rec->serial = atomic_fetch_add_explicit(&serials, 1,
                                            memory_order_relaxed) + 1;
    rec->interp = interp;
    rec->is_main = interp == PyInterpreterState_Main();
    atomic_init(&rec->guards, 0);
    atomic_init(&rec->phase, PHASE_OPEN);
    atomic_init(&rec->refs, 1);
    pthread_mutex_init(&rec->lock, NULL);
    pygate__cond_init(&rec->drained);
    pthread_mutex_lock(&registry_lock);
    PYGATE__LIST_PUSH(registry, rec, reg_prev, reg_next);
    pthread_mutex_unlock(&registry_lock);
    return rec;
}

void
pygate__record_close_gate(record *rec)
{
    atomic_store_explicit(&rec->phase, PHASE_CLOSING, memory_order_seq_cst);
    atomic_fetch_or_explicit(&rec->guards, GUARD_CLOSED, memory_order_seq_cst);
    membarrier_all_threads();
}

void
pygate__record_mark_gone(record *rec)
{
    atomic_fetch_or(&rec->guards, GUARD_CLOSED);
    atomic_store_explicit(&rec->phase, PHASE_GONE, memory_order_release);
}

void
pygate__records_lock_all(void)
{
    pthread_mutex_lock(&registry_lock);
    for (record *rec = registry; rec != NULL; rec = rec->reg_next)
        record_lock(rec);
}

void
pygate__records_unlock_all(void)
{
    for (record *rec = registry; rec != NULL; rec = rec->reg_next)
        record_unlock(rec);
    pthread_mutex_unlock(&registry_lock);
}

long
pygate__records_count(void)
{
    long n = 0;
    pthread_mutex_lock(&registry_lock);
    for (record *rec = registry; rec != NULL; rec = rec->reg_next)
        n++;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

void
pygate__records_describe(FILE *out)
{
    static const char *const phases[] = {"open", "closing", "gone"};
    pthread_mutex_lock(&registry_lock);
    for (record *rec = registry; rec != NULL; rec = rec->reg_next) {
        record_lock(rec);
        long entries = 0, listeners = 0;
        for (entry *e = rec->entries; e != NULL; e = e->rec_next)
            entries++;
        for (record_listener *l = rec->listeners; l != NULL; l = l->next)
            listeners++;
        int phase = atomic_load(&rec->phase);
        uint64_t guards = atomic_load(&rec->guards);
        fprintf(out, "record %p: interpreter %lld%s, %s, %ld references,"
                " %ld entries linked, %ld listeners, guards %llu%s%s%s\n",
                (void *)rec, (long long)rec->id, rec->is_main ? " (main)" : "",
                phase >= 0 && phase <= 2 ? phases[phase] : "?",
                atomic_load(&rec->refs), entries, listeners,
                (unsigned long long)(guards & ~GUARD_CLOSED),
                guards & GUARD_CLOSED ? " (closed)" : "",
                atomic_load(&rec->capsule_alive)
                    ? ", its capsule in the interpreter dict alive" : "",
                atomic_load(&rec->hook_kept) ? ", the hook kept its reference"
                                             : "");
        record_unlock(rec);
    }
    pthread_mutex_unlock(&registry_lock);
}

int
pygate__records_exist(void)
{
    pthread_mutex_lock(&registry_lock);
    int any = registry != NULL;
    pthread_mutex_unlock(&registry_lock);
    return any;
}

record *
pygate__records_next(record *rec)
{
    return rec == NULL ? registry : rec->reg_next;
}

void
pygate__record_reset_after_fork(record *rec, uint64_t shared_held)
{
    RECORD_ASSERT_LOCKED(rec);
    uint64_t closed = atomic_load(&rec->guards) & GUARD_CLOSED;
    atomic_store(&rec->guards, closed | shared_held);
    /* Threads that no longer exist may have been waiting on it. */
    pygate__cond_init(&rec->drained);
    if (!rec->is_main) {
        /* PyOS_AfterFork_Child deletes every interpreter but the main one
         * (_PyInterpreterState_DeleteExceptMain) without finalizing it:
         * the hook never runs, so the record is gone from now on. */
        pygate__record_mark_gone(rec);
    }
}

static unsigned fork_generation;   /* written in a child: one thread */

unsigned
pygate__records_fork_generation(void)
{
    return fork_generation;
}

void
pygate__records_after_fork(void)
{
    fork_generation++;
    /* Whether the kernel carries the registration into the child or not,
     * registering again is harmless; should it fail, the hook falls back
     * to MEMBARRIER_CMD_GLOBAL (membarrier_all_threads). */
    if (local_guards)
        (void)membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
}

/* ---- the main interpreter's record -------------------------------------- */

record *
pygate__record_find_main(void)
{
    pthread_mutex_lock(&registry_lock);
    record *rec = main_record;
    if (rec != NULL)
        pygate__record_ref(rec);
    pthread_mutex_unlock(&registry_lock);
    return rec;
}

void
pygate__record_set_main(record *rec)
{
    pygate__record_ref(rec);
    pthread_mutex_lock(&registry_lock);
    record *stale = main_record;   /* only if its hook never ran */
    main_record = rec;
    pthread_mutex_unlock(&registry_lock);
    if (stale != NULL)
        pygate__record_unref(stale);
}

void
pygate__record_forget_main(record *rec)
{
    pthread_mutex_lock(&registry_lock);
    int was_main = main_record == rec;
    if (was_main)
        main_record = NULL;
    pthread_mutex_unlock(&registry_lock);
    if (was_main)
        pygate__record_unref(rec);
}

/* ---- entry lists -------------------------------------------------------- */

void
pygate__record_link_entry(record *rec, entry *e)
{
    record_lock(rec);
    PYGATE__LIST_PUSH(rec->entries, e, rec_prev, rec_next);
    e->linked = 1;
    record_unlock(rec);
}

void
pygate__record_unlink_entry_locked(record *rec, entry *e)
{
    RECORD_ASSERT_LOCKED(rec);
    if (!e->linked)
        return;
    PYGATE__LIST_UNLINK(rec->entries, e, rec_prev, rec_next);
    e->linked = 0;
}

void
pygate__record_unlink_entry(record *rec, entry *e)
{
    record_lock(rec);
    pygate__record_unlink_entry_locked(rec, e);
    record_unlock(rec);
}
