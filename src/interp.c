/*
 * interp.c - one record per interpreter: its lifetime gate and shutdown hook.
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
 * busy threads cannot keep shutdown waiting for a quiet moment (the flaw
 * DESIGN.md measured in PEP 788's reference implementation).
 *
 * A record is found from its interpreter through the interpreter's own dict
 * (PyInterpreterState_GetDict), so it dies with the interpreter and a later
 * interpreter that reuses the ID or the address gets a fresh record.
 */
#include "internal.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RECORD_CAPSULE "pygate.record"

static pthread_mutex_t main_lock = PTHREAD_MUTEX_INITIALIZER;
static record *main_record;   /* holds a reference while the main is open */

/* pygate_set_drain_limits(), in milliseconds; give-up < 0 means never. */
static _Atomic long drain_report_ms = 5000;
static _Atomic long drain_give_up_ms = -1;

/* ---- references --------------------------------------------------------- */

void
record_ref(record *rec)
{
    atomic_fetch_add_explicit(&rec->refs, 1, memory_order_relaxed);
}

void
record_unref(record *rec)
{
    if (atomic_fetch_sub_explicit(&rec->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&rec->lock);
    pthread_cond_destroy(&rec->drained);
    free(rec);
}

int
record_error(record *rec)
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
record_local_guards(void)
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
    pthread_mutex_lock(&rec->lock);
    pthread_cond_broadcast(&rec->drained);
    pthread_mutex_unlock(&rec->lock);
}

int
record_guard_acquire_local(record *rec, _Atomic uint32_t *held)
{
    record_guard_add_local(held);
    /* No fence: the hook's membarrier orders this store before its count
     * or this load after its close (see membarrier_all_threads). */
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rec->phase, memory_order_acquire) == PHASE_OPEN)
        return PYGATE_OK;
    record_guard_release_local(rec, held);
    return record_error(rec);
}

void
record_guard_release_local(record *rec, _Atomic uint32_t *held)
{
    uint32_t n = atomic_load_explicit(held, memory_order_relaxed);
    atomic_store_explicit(held, n - 1, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rec->phase, memory_order_relaxed) != PHASE_OPEN)
        wake_hook(rec);   /* only during shutdown: recount */
}

void
record_guard_add_local(_Atomic uint32_t *held)
{
    uint32_t n = atomic_load_explicit(held, memory_order_relaxed);
    atomic_store_explicit(held, n + 1, memory_order_relaxed);
}

int
record_guard_acquire(record *rec)
{
    uint64_t old = atomic_fetch_add_explicit(&rec->guards, 1,
                                             memory_order_acq_rel);
    if (!(old & GUARD_CLOSED))
        return PYGATE_OK;
    record_guard_release(rec);
    return record_error(rec);
}

void
record_guard_release(record *rec)
{
    uint64_t old = atomic_fetch_sub_explicit(&rec->guards, 1,
                                             memory_order_acq_rel);
    if (old & GUARD_CLOSED)
        wake_hook(rec);   /* only during shutdown: recount */
}

void
record_guard_add(record *rec)
{
    atomic_fetch_add_explicit(&rec->guards, 1, memory_order_acq_rel);
}

guard_site *
record_site_add(record *rec, const char *file, int line)
{
    guard_site *site = (guard_site *)malloc(sizeof *site);
    if (site == NULL)
        return NULL;
    site->file = file;
    site->line = line;
    site->thread = PyThread_get_thread_ident();
    site->prev = NULL;
    pthread_mutex_lock(&rec->lock);
    site->next = rec->sites;
    if (rec->sites != NULL)
        rec->sites->prev = site;
    rec->sites = site;
    pthread_mutex_unlock(&rec->lock);
    return site;
}

void
record_site_remove(record *rec, guard_site *site)
{
    if (site == NULL)
        return;
    pthread_mutex_lock(&rec->lock);
    if (site->prev != NULL)
        site->prev->next = site->next;
    else
        rec->sites = site->next;
    if (site->next != NULL)
        site->next->prev = site->prev;
    pthread_mutex_unlock(&rec->lock);
    free(site);
}

/* Shared and local guards held.  Under rec->lock (the entry list). */
static uint64_t
guards_held(record *rec)
{
    uint64_t n = atomic_load_explicit(&rec->guards, memory_order_acquire)
                 & ~GUARD_CLOSED;
    for (entry *e = rec->entries; e != NULL; e = e->rec_next)
        n += atomic_load_explicit(&e->held, memory_order_acquire);
    return n;
}

/* Guards the calling thread itself holds on rec: the thread that runs the
 * shutdown may be inside an entry of the interpreter it finalizes. */
static uint64_t
guards_held_by_caller(record *rec)
{
    pygate_thread *t = thread_self(0);
    uint64_t n = 0;
    for (uint32_t i = 0; t != NULL && i < t->nframes; i++)
        if (t->frames[i].kind != FRAME_DETACH && t->frames[i].rec == rec)
            n++;
    return n;
}

int
pygate_set_drain_limits(double report_every, double give_up_after)
{
    if (!(report_every > 0) || report_every > 1e6 || give_up_after > 1e6
            || give_up_after != give_up_after)
        return PYGATE_EINVAL;
    atomic_store(&drain_report_ms, (long)(report_every * 1000));
    atomic_store(&drain_give_up_ms,
                 give_up_after < 0 ? -1 : (long)(give_up_after * 1000));
    return PYGATE_OK;
}

static double
seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec)
           + (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Under rec->lock.  Debug mode lists each guard's site. */
static void
report_outstanding(record *rec, uint64_t own, double waited)
{
    fprintf(stderr, "pygate: shutdown of interpreter %lld has waited %.1f s"
            " for %llu native guards or entries to be released\n",
            (long long)rec->id, waited,
            (unsigned long long)(guards_held(rec) - own));
    for (guard_site *s = rec->sites; s != NULL; s = s->next)
        fprintf(stderr, "pygate:   guard taken at %s:%d on thread %#lx\n",
                s->file, s->line, s->thread);
}

/* Returns 1 once the guards drained, 0 when the give-up bound passed. */
static int
wait_until_drained(record *rec, uint64_t own)
{
    long report_ms = atomic_load(&drain_report_ms);
    long give_up_ms = atomic_load(&drain_give_up_ms);
    struct timespec start, last_report;
    clock_gettime(CLOCK_MONOTONIC, &start);
    last_report = start;
    int drained = 1;
    pthread_mutex_lock(&rec->lock);
    while (guards_held(rec) > own) {
        long wait_ms = report_ms;
        double waited = seconds_since(&start);
        if (give_up_ms >= 0) {
            long left = give_up_ms - (long)(waited * 1000);
            if (left <= 0) {
                report_outstanding(rec, own, waited);
                fprintf(stderr, "pygate: giving up the wait; those threads"
                        " are now on their own, like daemon threads\n");
                drained = 0;
                break;
            }
            if (left < wait_ms)
                wait_ms = left;
        }
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += wait_ms / 1000;
        deadline.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rec->drained, &rec->lock, &deadline);
        if (guards_held(rec) > own
                && seconds_since(&last_report) * 1000 >= report_ms) {
            report_outstanding(rec, own, seconds_since(&start));
            clock_gettime(CLOCK_MONOTONIC, &last_report);
        }
    }
    pthread_mutex_unlock(&rec->lock);
    return drained;
}

/* ---- shutdown ----------------------------------------------------------- */

static void
forget_main_record(record *rec)
{
    pthread_mutex_lock(&main_lock);
    int was_main = main_record == rec;
    if (was_main)
        main_record = NULL;
    pthread_mutex_unlock(&main_lock);
    if (was_main)
        record_unref(rec);
}

/* Runs in the interpreter's atexit stage, on the finalizing thread, with
 * the GIL held.  From here on no guard can be taken. */
static void
record_shutdown(void *arg)
{
    record *rec = (record *)arg;
    atomic_store_explicit(&rec->phase, PHASE_CLOSING, memory_order_seq_cst);
    atomic_fetch_or_explicit(&rec->guards, GUARD_CLOSED, memory_order_seq_cst);
    membarrier_all_threads();

    uint64_t own = guards_held_by_caller(rec);
    pthread_mutex_lock(&rec->lock);
    int busy = guards_held(rec) > own;
    pthread_mutex_unlock(&rec->lock);
    int drained = 1;
    if (busy) {
        Py_BEGIN_ALLOW_THREADS
        drained = wait_until_drained(rec, own);
        Py_END_ALLOW_THREADS
    }
    thread_forget_entries(rec, drained);
    atomic_store_explicit(&rec->phase, PHASE_GONE, memory_order_release);
    forget_main_record(rec);
    /* Frames still open (the caller's own, or any left after giving up)
     * point at rec without a reference: keep it alive for them. */
    if (own == 0 && drained)
        record_unref(rec);   /* the hook's reference */
}

/* ---- creation ----------------------------------------------------------- */

static void
record_capsule_free(PyObject *capsule)
{
    record_unref((record *)PyCapsule_GetPointer(capsule, RECORD_CAPSULE));
}

static record *
record_new(PyInterpreterState *interp, int64_t id)
{
    pthread_once(&local_guards_once, local_guards_init);
    record *rec = (record *)calloc(1, sizeof *rec);
    if (rec == NULL)
        return NULL;
    rec->id = id;
    rec->interp = interp;
    rec->is_main = interp == PyInterpreterState_Main();
    atomic_init(&rec->guards, 0);
    atomic_init(&rec->phase, PHASE_OPEN);
    atomic_init(&rec->refs, 1);
    pthread_mutex_init(&rec->lock, NULL);
    pthread_cond_init(&rec->drained, NULL);
    return rec;
}

static void
record_abandon(record *rec)
{
    atomic_fetch_or(&rec->guards, GUARD_CLOSED);
    atomic_store(&rec->phase, PHASE_GONE);
}

/* Stores rec in the interpreter dict (one reference) and installs the hook
 * (another).  On failure the Python exception is left set. */
static int
record_install(record *rec, PyObject *dict)
{
    PyObject *capsule = PyCapsule_New(rec, RECORD_CAPSULE,
                                      record_capsule_free);
    if (capsule == NULL)
        return PYGATE_EPYTHON;
    record_ref(rec);   /* owned by the capsule from here */
    int failed = PyDict_SetItemString(dict, RECORD_CAPSULE, capsule) < 0;
    Py_DECREF(capsule);
    if (failed)
        return PYGATE_EPYTHON;

    record_ref(rec);   /* the hook's */
    if (compat_register_shutdown_hook(record_shutdown, rec) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyDict_DelItemString(dict, RECORD_CAPSULE) < 0)
            PyErr_Clear();   /* ours to clear: the caller gets the first */
        PyErr_Restore(type, value, tb);
        record_abandon(rec);
        record_unref(rec);
        return PYGATE_EPYTHON;
    }
    return PYGATE_OK;
}

static void
remember_main_record(record *rec)
{
    record_ref(rec);
    pthread_mutex_lock(&main_lock);
    record *stale = main_record;   /* only if its hook never ran */
    main_record = rec;
    pthread_mutex_unlock(&main_lock);
    if (stale != NULL)
        record_unref(stale);
}

int
record_for_current(record **out)
{
    PyThreadState *tstate = compat_current_tstate_attached();
    if (tstate == NULL)
        return PYGATE_ENOTATTACHED;
    PyInterpreterState *interp = compat_tstate_interp(tstate);
    PyObject *dict = PyInterpreterState_GetDict(interp);
    if (dict == NULL)
        return PYGATE_ENOMEM;

    PyObject *capsule = PyDict_GetItemString(dict, RECORD_CAPSULE);
    if (capsule != NULL) {
        record *rec = (record *)PyCapsule_GetPointer(capsule, RECORD_CAPSULE);
        if (rec == NULL)
            return PYGATE_EPYTHON;
        if (atomic_load(&rec->phase) != PHASE_OPEN)
            return record_error(rec);
        record_ref(rec);
        *out = rec;
        return PYGATE_OK;
    }
    /* No record yet and the runtime already past its atexit stage: a hook
     * installed now would never run. */
    if (compat_runtime_finalizing())
        return PYGATE_EFINALIZING;

    int64_t id = PyInterpreterState_GetID(interp);
    if (id < 0)
        return PYGATE_EPYTHON;
    record *rec = record_new(interp, id);
    if (rec == NULL)
        return PYGATE_ENOMEM;
    int rc = record_install(rec, dict);
    if (rc != PYGATE_OK) {
        record_unref(rec);
        return rc;
    }
    if (rec->is_main)
        remember_main_record(rec);
    *out = rec;
    return PYGATE_OK;
}

record *
record_find_main(void)
{
    pthread_mutex_lock(&main_lock);
    record *rec = main_record;
    if (rec != NULL)
        record_ref(rec);
    pthread_mutex_unlock(&main_lock);
    return rec;
}

/* ---- entry lists -------------------------------------------------------- */

void
record_link_entry(record *rec, entry *e)
{
    pthread_mutex_lock(&rec->lock);
    e->rec_prev = NULL;
    e->rec_next = rec->entries;
    if (rec->entries != NULL)
        rec->entries->rec_prev = e;
    rec->entries = e;
    e->linked = 1;
    pthread_mutex_unlock(&rec->lock);
}

void
record_unlink_entry(record *rec, entry *e)
{
    pthread_mutex_lock(&rec->lock);
    if (e->linked) {
        if (e->rec_prev != NULL)
            e->rec_prev->rec_next = e->rec_next;
        else
            rec->entries = e->rec_next;
        if (e->rec_next != NULL)
            e->rec_next->rec_prev = e->rec_prev;
        e->linked = 0;
    }
    pthread_mutex_unlock(&rec->lock);
}
