/*
 * pool_submit.c - submitting a job: pushed with one CAS onto the inbox of
 * the submitting thread's lane, no lock taken; jobs nobody waits for go
 * into the thread's pack; a bounded pool (max_queued) makes a submitter
 * that may wait for room wait.
 *
 * A submitter takes p->lock only to wake a sleeping worker, to wait for
 * room, or to learn why a closed pool refuses it.
 */
#include "pool_internal.h"

/* Whether a submitter to a full bounded pool may wait for room: one that
 * is attached may hold the GIL the workers need (any interpreter's, when
 * they share it), and a worker waiting on a full pool (its own or one
 * whose jobs submit back to it) may be what keeps that pool full. */
static int
may_wait_for_room(pygate_thread *t)
{
    return pygate__compat_current_tstate() == NULL
           && (t == NULL || !t->pools.worker);
}

/* Not attached: a full bounded pool makes the caller wait until half of
 * its queue has started, or it stops accepting. */
static void
wait_for_room(pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->room_waiters++;
    while (p->accepting && pygate__pool_backlog(p) > p->max_queued / 2)
        pthread_cond_wait(&p->room, &p->lock);
    p->room_waiters--;
    pthread_mutex_unlock(&p->lock);
}

/* A job, zeroed, from the submitting thread's slab for its kind (t NULL:
 * calloc); with a handle (slot non-NULL: the handle's slot, its object to
 * be set once the job is queued) or a callback, a waited_job.  NULL when
 * memory ran out.  From slabs, because a job made by one thread and freed
 * by another defeats malloc's per-thread caches (calloc and free cost 350
 * instructions a job on 3.12.1, more than an empty job's Python call).  A
 * job nobody waits for is alone only when its thread has no record (out
 * of memory); otherwise it goes in a pack (add_to_pack, new_pack). */
static job *
new_job(pool *p, pygate_thread *t, pygate_done_fn done, void *done_arg,
        handle_slot **slot)
{
    if (done == NULL && slot == NULL) {
        job *j = (job *)pygate__slab_alloc(NULL, sizeof *j);
        if (j != NULL)
            j->refs = 1;
        return j;
    }
    waited_job *w = (waited_job *)pygate__slab_alloc(
        t != NULL ? &t->pools.waited_job_slab : NULL, sizeof *w);
    if (w == NULL)
        return NULL;
    if (slot != NULL
            && (w->handle = pygate__handle_new(HANDLE_JOB, slot)) == 0) {
        pygate__slab_free(w);
        return NULL;
    }
    w->job.kind = JOB_WAITED;
    w->job.refs = slot != NULL ? 2 : 1;
    w->pool = p;
    w->done = done;
    w->done_arg = done_arg;
    return &w->job;
}

/* The lane thread t submits to, the same for every pool: handed out in
 * turn at its first submission, so that eight submitters have one each
 * (a thread without a record: the first). */
static unsigned
lane_of(pygate_thread *t)
{
    static _Atomic unsigned lanes_given;
    if (t == NULL)
        return 0;
    if (t->pools.lane == 0)
        t->pools.lane = 1 + atomic_fetch_add_explicit(&lanes_given, 1,
                                                memory_order_relaxed) % LANES;
    return t->pools.lane - 1;
}

/* The pack t's last submission went into, held by t, or NULL. */
static job_pack *
thread_pack(pygate_thread *t)
{
    return (job_pack *)(void *)t->pools.job_pack;
}

/* t lets go of its pack: its next job nobody waits for starts another
 * (after one it waits for, so that its jobs stay in order). */
static void
drop_thread_pack(pygate_thread *t)
{
    if (t->pools.job_pack != NULL)
        pygate__slab_let_go(t->pools.job_pack);
    t->pools.job_pack = NULL;
}

/* Adds fn(arg) to the pack t's last submission went into, when that was
 * to p and no worker has collected it yet; returns 1 if it did.  The
 * entry is written first, then counted: a worker that sealed the pack
 * meanwhile never reads it, and the CAS fails. */
static int
add_to_pack(pool *p, pygate_thread *t, pygate_job_fn fn, void *arg)
{
    job_pack *k = thread_pack(t);
    if (k == NULL || k->pool != p)
        return 0;
    uint32_t filled = atomic_load_explicit(&k->filled, memory_order_relaxed);
    if (filled >= k->room)   /* full, or sealed */
        return 0;
    k->entry[filled].fn = fn;
    k->entry[filled].arg = arg;
    return atomic_compare_exchange_strong_explicit(
        &k->filled, &filled, filled + 1, memory_order_release,
        memory_order_relaxed);
}

/* How many jobs a pack of p's may take.  In a bounded pool its room is
 * counted against the bound when it is made (reserve_room), so that its
 * later jobs touch no line another submitter writes (eight submitters
 * counting each job: 10% of a run's samples on that count, 3.12.1); a
 * sixty-fourth of the bound at most, so that a small bound stays exact. */
static uint32_t
pack_room(const pool *p)
{
    size_t room = p->max_queued / 64;
    return p->max_queued == 0 || room >= PACK_ENTRIES ? PACK_ENTRIES
           : room == 0                                 ? 1
                                                       : (uint32_t)room;
}

/* In a bounded pool: waits for room when the caller may, then counts
 * what it is about to push against the bound (one job, or a pack's
 * room).  Returns what it counted (0: no bound), to give back if the push
 * fails. */
static uint32_t
reserve_room(pool *p, pygate_thread *t, int packed)
{
    if (p->max_queued == 0)
        return 0;
    if (pygate__pool_backlog(p) >= p->max_queued && may_wait_for_room(t))
        wait_for_room(p);
    uint32_t n = packed ? pack_room(p) : 1;
    atomic_fetch_add_explicit(&p->offered, n, memory_order_relaxed);
    return n;
}

static void
give_back_room(pool *p, uint32_t reserved)
{
    if (reserved != 0)
        atomic_fetch_sub_explicit(&p->offered, reserved,
                                  memory_order_relaxed);
}

/* A pack of p's, from t's slab, holding fn(arg) alone (its other
 * entries are not zeroed: they are written before they are counted).
 * NULL when memory ran out. */
static job *
new_pack(pool *p, pygate_thread *t, pygate_job_fn fn, void *arg)
{
    job_pack *k = (job_pack *)pygate__slab_alloc_dirty(&t->pools.job_pack_slab,
                                                       sizeof *k);
    if (k == NULL)
        return NULL;
    static const job no_job;
    atomic_init(&k->hold.holders, 2);   /* the pool's and the thread's */
    k->room = pack_room(p);
    k->job = no_job;
    k->job.kind = JOB_PACK;
    k->job.refs = 1;
    k->pool = p;
    k->n = 0;
    k->entry[0].fn = fn;
    k->entry[0].arg = arg;
    atomic_init(&k->filled, 1);
    atomic_init(&k->claimed, 0);
    k->runners = 0;
    return &k->job;
}

static int
submit_to(pool *p, pygate_job_fn fn, void *arg, pygate_done_fn done,
          void *done_arg, pygate_job **out)
{
    pygate_thread *t = pygate__thread_self(1);
    int packed = t != NULL && done == NULL && out == NULL;
    if (packed && add_to_pack(p, t, fn, arg))   /* its room was counted */
        return PYGATE_OK;
    if (t != NULL)
        drop_thread_pack(t);
    /* Room first, the job after: a submitter that waits holds no job (in
     * a child of fork() it would be lost with the thread). */
    uint32_t reserved = reserve_room(p, t, packed);
    handle_slot *slot = NULL;
    job *j = packed ? new_pack(p, t, fn, arg)
                    : new_job(p, t, done, done_arg, out != NULL ? &slot : NULL);
    if (j == NULL) {
        give_back_room(p, reserved);
        return PYGATE_ENOMEM;
    }
    waited_job *w = waited_of(j);
    j->fn = fn;
    j->arg = arg;
    job *_Atomic *inbox = &p->lanes[lane_of(t)].inbox;
    job *newest = atomic_load_explicit(inbox, memory_order_relaxed);
    do {
        if (newest == INBOX_CLOSED) {
            pthread_mutex_lock(&p->lock);
            int rc = p->refused;
            give_back_room(p, reserved);
            pthread_mutex_unlock(&p->lock);
            if (w != NULL && w->handle != 0)
                pygate__handle_close(w->handle, HANDLE_JOB);
            job_free(j);
            return rc;
        }
        j->next = newest;
    } while (!atomic_compare_exchange_weak(inbox, &newest, j));
    /* A job pushed onto a non-empty inbox needs no wake-up: the job below
     * it woke a worker, or found one awake, which collects both (and
     * wakes another for what it leaves queued:
     * pygate__pool_take_jobs_locked).  Waking for every job took the lock
     * each time a worker slept. */
    if (newest == NULL && atomic_load(&p->sleeping) != 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->lock);
    }
    if (packed)   /* held from now on: its next jobs go in */
        t->pools.job_pack = &pack_of(j)->hold;
    if (out != NULL) {
        slot->object = w;
        *out = (pygate_job *)w->handle;
    }
    return PYGATE_OK;
}

/* Submits under a use bracket of the pool's handle: a concurrent close
 * waits for it before it frees the pool. */
static int
submit(pygate_pool *handle, pygate_job_fn fn, void *arg, pygate_done_fn done,
       void *done_arg, pygate_job **out)
{
    handle_slot *slot;
    pool *p = pygate__pool_use(handle, &slot);
    if (p == NULL)
        return PYGATE_EINVAL;
    int rc = fn == NULL ? PYGATE_EINVAL
                        : submit_to(p, fn, arg, done, done_arg, out);
    pygate__handle_unuse(slot);
    return rc;
}

int
pygate__impl_pool_submit(pygate_pool *pool, pygate_job_fn fn, void *arg,
                         pygate_job **job)
{
    return submit(pool, fn, arg, NULL, NULL, job);
}

int
pygate__impl_pool_submit_then(pygate_pool *pool, pygate_job_fn fn, void *arg,
                              pygate_done_fn done, void *done_arg)
{
    if (done == NULL)
        return PYGATE_EINVAL;
    return submit(pool, fn, arg, done, done_arg, NULL);
}
