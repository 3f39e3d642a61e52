/*
 * pool_life.c - a worker pool's life: opening it (its view, its shutdown
 * listener, its workers), stopping it (a close, or its interpreter's
 * shutdown, which calls the listener before the gate closes: stop
 * accepting, finish or cancel the queue, let the workers exit, drop the
 * exception objects its jobs still hold), its counts and its options.
 * The rest of the pool is in the pool_*.c files (pool_internal.h has the map).
 */
#include "pool_internal.h"

#include <stdio.h>
#include <unistd.h>

/* Under p->lock: stops accepting (refusing with `refused`), cancels the
 * queue if the pool says so, and tells the workers to exit once it is
 * empty. */
static void
begin_stop_locked(pool *p, int refused)
{
    POOL_ASSERT_LOCKED(p);
    pygate__pool_close_inbox_locked(p, refused);
    if (p->on_close == PYGATE_POOL_CANCEL || p->forked)
        pygate__pool_cancel_queue_locked(p);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->standby);
}

/* Not attached, p->lock not held: joins the workers, which have exited
 * (or waits for the stopper that joins them). */
static void
join_workers(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int joiner = !p->joining;   /* the hook and a close may race here */
    p->joining = 1;
    pthread_mutex_unlock(&p->lock);
    if (joiner) {
        for (unsigned i = 0; i < p->nworkers; i++)
            if (p->threads[i] != 0 && i + 1 != p->forking_worker)
                pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_lock(&p->lock);
    if (joiner) {
        p->joined = 1;
        pthread_cond_broadcast(&p->changed);
    }
    while (!p->joined)
        pthread_cond_wait(&p->changed, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

/* Under p->lock: the interpreter's shutdown gave up waiting for the
 * workers (pygate_set_drain_limits).  What is still queued is cancelled
 * (nothing could run it); a job still running is on its own, as a daemon
 * thread is: CPython kills or hangs its worker when it next takes the GIL,
 * by version.  Its workers are never joined, and the pool is never freed:
 * a worker may still wake up and touch it. */
static void
abandon_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    pygate__pool_cancel_queue_locked(p);
    p->abandoned = 1;
    p->refs++;   /* the abandoned workers', never given back */
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->threads[i] != 0 && i + 1 != p->forking_worker)
            pthread_detach(p->threads[i]);
    pthread_cond_broadcast(&p->changed);
}

/* The shutdown report's line for a pool (pygate__shutdown_wait_tick). */
static void
report_pool(void *arg, const record *shutting, double waited)
{
    pool *p = (pool *)arg;
    pthread_mutex_lock(&p->lock);
    uint64_t left = p->submitted - p->completed - p->cancelled;
    fprintf(stderr, "pygate: shutdown of interpreter %lld has waited %.1f s"
            " for pool %p (interpreter %lld): %llu jobs not finished"
            " (running or queued, %s), %u of its %u workers still at work\n",
            (long long)shutting->id, waited, (void *)p, (long long)p->rec->id,
            (unsigned long long)left,
            p->on_close == PYGATE_POOL_FINISH ? "PYGATE_POOL_FINISH"
                                              : "PYGATE_POOL_CANCEL",
            p->workers_alive, p->nworkers);
    pthread_mutex_unlock(&p->lock);
}

/* Stops accepting (refusing with `refused`), finishes or cancels the
 * queue, and waits for the workers to exit.  Not attached.  Idempotent:
 * a second caller waits for the first.  For the shutdown of `shutting`
 * (its own interpreter's, or the main one's for an interpreter pool's
 * member) the wait follows the shutdown's rule (lifecycle.c; ts is the
 * finalizing thread's state, for signal handlers, or NULL), and one given
 * up leaves the workers on their own (abandon_locked); a close (shutting
 * NULL) waits as long as it takes, and for nothing once they were
 * abandoned. */
static void
pool_stop(pool *p, int refused, record *shutting, PyThreadState *ts)
{
    shutdown_wait w = {NULL, NULL, 0};   /* begun only when shutting */
    if (shutting != NULL)
        pygate__shutdown_wait_begin(&w, shutting, ts);
    pthread_mutex_lock(&p->lock);
    begin_stop_locked(p, refused);
    while (p->workers_alive > 0 && !p->abandoned) {
        if (shutting == NULL) {
            pthread_cond_wait(&p->changed, &p->lock);
            continue;
        }
        struct timespec deadline =
            pygate__deadline_after(pygate__shutdown_wait_slice(&w));
        pthread_cond_timedwait(&p->changed, &p->lock, &deadline);
        if (p->workers_alive == 0 || p->abandoned)
            break;
        pthread_mutex_unlock(&p->lock);
        int end = pygate__shutdown_wait_tick(&w, report_pool, p);
        pthread_mutex_lock(&p->lock);
        if (end && !p->abandoned && p->workers_alive > 0)
            abandon_locked(p);
    }
    int abandoned = p->abandoned;
    pthread_mutex_unlock(&p->lock);
    if (!abandoned)
        join_workers(p);
}

/* Attached to the pool's interpreter, before it goes: the exception
 * objects of jobs nobody closed yet are dropped; their text stays. */
static void
drop_exceptions(pool *p)
{
    for (;;) {
        PyObject *exc = NULL;
        pthread_mutex_lock(&p->lock);
        for (waited_job *w = p->live; w != NULL && exc == NULL;
             w = w->live_next) {
            exc = w->exc;
            w->exc = NULL;
        }
        pthread_mutex_unlock(&p->lock);
        if (exc == NULL)
            return;
        Py_DECREF(exc);
    }
}

/* The interpreter's shutdown hook calls this first (lifecycle.c), on the
 * finalizing thread, attached, with the gate still open. */
static void
pool_on_shutdown(void *arg)
{
    pool *p = (pool *)arg;
    PyThreadState *ts = PyEval_SaveThread();
    pool_stop(p, PYGATE_EFINALIZING, p->rec, ts);
    PyEval_RestoreThread(ts);
    drop_exceptions(p);
    pygate__pool_unref(p);   /* the listener's reference */
}

/* Refuses new jobs from now on, with `refused`: it ends the wait of
 * submitters for room, which a close would wait for otherwise (they are
 * inside the handle's use brackets, which it drains). */
static void
refuse(pool *p, int refused)
{
    pthread_mutex_lock(&p->lock);
    pygate__pool_close_inbox_locked(p, refused);
    pthread_mutex_unlock(&p->lock);
}

void
pygate__pool_refuse(pygate_pool *handle, int refused)
{
    handle_slot *slot;
    pool *p = pygate__pool_use(handle, &slot);
    if (p == NULL)
        return;
    refuse(p, refused);
    pygate__handle_unuse(slot);
}

void
pygate__pool_mark_private(pygate_pool *handle)
{
    handle_slot *slot;
    pool *p = pygate__pool_use(handle, &slot);
    if (p == NULL)
        return;
    atomic_store(&p->private_interp, 1);
    pygate__handle_unuse(slot);
}

/* The numeric options' ranges: X(option, lowest, highest), one list for
 * the check and for the message that names the option out of range. */
#define POOL_OPTION_RANGES(X)                                                \
    X(workers, 0, 1024)                                                      \
    X(batch, 0, 1000000)                                                     \
    X(hold_seconds, 0, 60)

int
pygate__pool_options_problem(const pygate_pool_options *o, const char *where,
                             char *why, size_t size)
{
#define CHECK_RANGE(name, lowest, highest)                                   \
    if (!((double)o->name >= (lowest) && (double)o->name <= (highest))) {    \
        snprintf(why, size, "pygate: %s: option %s = %g is out of range"     \
                 " (%g to %g)", where, #name, (double)o->name,               \
                 (double)(lowest), (double)(highest));                       \
        return 1;                                                            \
    }
    POOL_OPTION_RANGES(CHECK_RANGE)
#undef CHECK_RANGE
    if (o->on_close != PYGATE_POOL_FINISH && o->on_close != PYGATE_POOL_CANCEL) {
        snprintf(why, size, "pygate: %s: option on_close = %d is neither"
                 " PYGATE_POOL_FINISH (0) nor PYGATE_POOL_CANCEL (1)", where,
                 o->on_close);
        return 1;
    }
    return 0;
}

static pool *
pool_new(const pygate_pool_options *o)
{
    pool *p = (pool *)pygate__calloc(1, sizeof *p);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = o->workers != 0 ? o->workers : cpus > 0 ? (unsigned)cpus : 1;
    if (p == NULL
        || (p->threads = (pthread_t *)pygate__calloc(n, sizeof(pthread_t)))
               == NULL
        || (p->chunks = (chunk *)pygate__calloc(n, sizeof(chunk))) == NULL
        || (p->lanes = (lane *)pygate__aligned_alloc(
                _Alignof(lane), LANES * sizeof(lane))) == NULL) {
        if (p != NULL) {
            free(p->chunks);
            free(p->threads);
        }
        free(p);
        return NULL;
    }
    for (unsigned i = 0; i < LANES; i++)
        atomic_init(&p->lanes[i].inbox, NULL);
    p->nworkers = n;
    p->batch = o->batch != 0 ? o->batch : 1024;
    p->hold_seconds = o->hold_seconds != 0 ? o->hold_seconds : 0.005;
    p->on_close = o->on_close;
    p->max_queued = o->max_queued;
    p->accepting = 1;
    p->refs = 1;   /* the handle's */
    pthread_mutex_init(&p->lock, NULL);
    pygate__cond_init(&p->work);
    pygate__cond_init(&p->changed);
    pygate__cond_init(&p->room);
    pygate__cond_init(&p->standby);
    pygate__pools_watch_fork();
    pygate__pools_add(p);
    return p;
}

int
pygate__impl_pool_open(pygate_view *view, const pygate_pool_options *options,
                       pygate_pool **out)
{
    static const pygate_pool_options defaults = {0, 0, 0, 0, 0};
    const pygate_pool_options *o = options != NULL ? options : &defaults;
    record *rec = pygate__view_record(view);
    char why[160];
    if (pygate__pool_options_problem(o, "pygate_pool_open", why,
                                     sizeof why)) {
        if (pygate__debug_mode())   /* bad input, said where it is seen */
            fprintf(stderr, "%s\n", why);
        return PYGATE_EINVAL;
    }
    if (rec == NULL || out == NULL)
        return PYGATE_EINVAL;
    pool *p = pool_new(o);
    if (p == NULL)
        return PYGATE_ENOMEM;
    int rc = pygate__view_new_for(rec, &p->view);
    if (rc != PYGATE_OK) {
        pygate__pool_free(p);
        return rc;
    }
    p->rec = rec;
    p->listener.fn = pool_on_shutdown;
    p->listener.arg = p;
    p->refs++;   /* the listener's */
    rc = pygate__record_listen(rec, &p->listener);
    if (rc != PYGATE_OK) {
        pygate__pool_free(p);
        return rc;
    }
    handle_slot *slot;
    p->handle = pygate__handle_new(HANDLE_POOL, &slot);
    rc = p->handle == 0 ? PYGATE_ENOMEM : pygate__pool_start_workers(p);
    if (rc != PYGATE_OK) {
        if (p->handle != 0)
            pygate__handle_close(p->handle, HANDLE_POOL);
        pool_stop(p, PYGATE_ECLOSED, NULL, NULL);
        if (pygate__record_unlisten(rec, &p->listener))
            p->refs--;
        pygate__pool_unref(p);
        return rc;
    }
    slot->object = p;
    *out = (pygate_pool *)p->handle;
    return PYGATE_OK;
}

/* Closes the pool; counts (if not NULL) receives its final counts:
 * submitted, completed, cancelled. */
/* shutting: NULL for a close of the user's, else the record whose
 * shutdown closes it (pygate__pool_close_at_shutdown). */
static int
close_pool(pygate_pool *handle, uint64_t counts[3], record *shutting,
           PyThreadState *ts)
{
    handle_slot *slot;
    pool *p = pygate__pool_use(handle, &slot);
    if (p == NULL)
        return PYGATE_EINVAL;
    int own = pygate__pool_worker_index(p) >= 0;
    if (!own)
        refuse(p, PYGATE_ECLOSED);
    pygate__handle_unuse(slot);
    if (own)
        return PYGATE_EBUSY;   /* it would wait for itself */
    if (!pygate__handle_close_drained((uintptr_t)handle, HANDLE_POOL))
        return PYGATE_EINVAL;  /* another thread closed it meanwhile */
    /* The workers need the GIL to finish. */
    PyThreadState *attached = pygate__release_if_attached();
    pool_stop(p, shutting != NULL ? PYGATE_EFINALIZING : PYGATE_ECLOSED,
              shutting, ts);
    pygate__reattach(attached);
    if (counts != NULL) {
        pthread_mutex_lock(&p->lock);
        counts[0] = p->submitted;
        counts[1] = p->completed;
        counts[2] = p->cancelled;
        pthread_mutex_unlock(&p->lock);
    }
    if (pygate__record_unlisten(p->rec, &p->listener))
        pygate__pool_unref(p);   /* the listener's, never called */
    pygate__pool_unref(p);       /* the handle's */
    return PYGATE_OK;
}

int
pygate__impl_pool_close(pygate_pool *handle)
{
    return close_pool(handle, NULL, NULL, NULL);
}

int
pygate__pool_close_counting(pygate_pool *handle, uint64_t counts[3])
{
    return close_pool(handle, counts, NULL, NULL);
}

int
pygate__pool_close_at_shutdown(pygate_pool *handle, uint64_t counts[3],
                               record *shutting, PyThreadState *ts)
{
    return close_pool(handle, counts, shutting, ts);
}

int
pygate__impl_pool_counts(pygate_pool *handle, uint64_t *submitted,
                         uint64_t *completed, uint64_t *cancelled)
{
    handle_slot *slot;
    pool *p = pygate__pool_use(handle, &slot);
    if (p == NULL)
        return PYGATE_EINVAL;
    pthread_mutex_lock(&p->lock);
    pygate__pool_collect_inbox_locked(p);
    if (submitted != NULL)
        *submitted = p->submitted;
    if (completed != NULL)
        *completed = p->completed;
    if (cancelled != NULL)
        *cancelled = p->cancelled;
    pthread_mutex_unlock(&p->lock);
    pygate__handle_unuse(slot);
    return PYGATE_OK;
}
