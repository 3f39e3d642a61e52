/*
 * pool_queue.c - a pool's queue: what submitters pushed onto the lanes'
 * inboxes is moved into one queue by a worker, under p->lock; workers take
 * jobs from it in chunks, take over jobs another worker took and has not
 * started, complete a chunk under one lock, and cancel what is left.
 *
 * Everything here runs under p->lock (the *_locked functions) or takes it
 * once for a whole chunk (pygate__pool_complete_jobs); none of it enters
 * Python.
 */
#include "pool_internal.h"

/* Under p->lock, collecting k: its thread adds no more entries.  The
 * room it did not use no longer counts against a bound (reserve_room). */
static void
seal(pool *p, job_pack *k)
{
    k->n = atomic_fetch_or_explicit(&k->filled, PACK_SEALED,
                                    memory_order_acquire);
    k->runners = 1;   /* the worker that will take it */
    if (p->max_queued != 0)
        atomic_fetch_sub_explicit(&p->offered, k->room - k->n,
                                  memory_order_relaxed);
}

/* Under p->lock: appends the jobs of an inbox (newest first) to the
 * queue, oldest first.  One pass: an inbox that grew long while the
 * workers were busy no longer fits in any cache, and each pass over it is
 * a chain of dependent loads that miss. */
static void
enqueue_locked(pool *p, job *newest)
{
    POOL_ASSERT_LOCKED(p);
    job *oldest = NULL, *last = newest;
    while (newest != NULL) {   /* reversed, and counted */
        job *next = newest->next;
        newest->next = oldest;
        oldest = newest;
        p->refs++;   /* the job's */
        waited_job *w = waited_of(newest);
        if (w != NULL)
            PYGATE__LIST_PUSH(p->live, w, live_prev, live_next);
        if (newest->kind == JOB_PACK)
            seal(p, pack_of(newest));
        p->submitted += job_size(newest);
        newest = next;
    }
    if (oldest == NULL)
        return;
    if (p->tail != NULL)
        p->tail->next = oldest;
    else
        p->head = oldest;
    p->tail = last;
}

/* Under p->lock: moves what was submitted since, lane by lane, into the
 * queue. */
void
pygate__pool_collect_inbox_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    for (unsigned i = 0; i < LANES; i++) {
        job *_Atomic *inbox = &p->lanes[i].inbox;
        job *newest = atomic_load(inbox);
        while (newest != NULL && newest != INBOX_CLOSED
               && !atomic_compare_exchange_weak(inbox, &newest, NULL))
            ;
        if (newest != NULL && newest != INBOX_CLOSED)
            enqueue_locked(p, newest);
    }
}

/* Under p->lock: from now on submissions are refused with `refused` (the
 * first reason stays); what the inbox held is queued. */
void
pygate__pool_close_inbox_locked(pool *p, int refused)
{
    POOL_ASSERT_LOCKED(p);
    if (!p->accepting)
        return;
    p->accepting = 0;
    p->refused = refused;
    for (unsigned i = 0; i < LANES; i++)
        enqueue_locked(p, atomic_exchange(&p->lanes[i].inbox, INBOX_CLOSED));
    pthread_cond_broadcast(&p->room);
}

/* Jobs pushed and not taken off the queue yet, in a bounded pool, and
 * the room that packs not sealed yet took for jobs to come. */
size_t
pygate__pool_backlog(pool *p)
{
    return atomic_load_explicit(&p->offered, memory_order_relaxed)
           - atomic_load_explicit(&p->taken, memory_order_relaxed);
}

/* Under p->lock: n jobs left the queue of a bounded pool; submitters
 * waiting for room go on once half of it is free. */
void
pygate__pool_count_taken_locked(pool *p, size_t n)
{
    POOL_ASSERT_LOCKED(p);
    if (p->max_queued == 0 || n == 0)
        return;
    atomic_store_explicit(&p->taken,
                          atomic_load_explicit(&p->taken, memory_order_relaxed)
                              + n,
                          memory_order_relaxed);
    if (p->room_waiters != 0 && pygate__pool_backlog(p) <= p->max_queued / 2)
        pthread_cond_broadcast(&p->room);
}

/* Under p->lock: the next queued job, marked running, or NULL. */
job *
pygate__pool_pop_job_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    job *j = p->head;
    if (j == NULL)
        return NULL;
    p->head = j->next;
    if (p->head == NULL)
        p->tail = NULL;
    j->state = JOB_RUNNING;
    return j;
}

/* Under p->lock: c's pack with entries nobody claimed yet, or NULL. */
static job_pack *
helpable_locked(const chunk *c)
{
    job_pack *k = c->helpable;
    return k != NULL && atomic_load_explicit(&k->claimed,
                                             memory_order_relaxed) < k->n
               ? k : NULL;
}

/* Under p->lock: whether another worker's chunk holds a job not started
 * yet, or a pack with entries not started yet. */
static int
stealable_locked(pool *p, const chunk *mine)
{
    POOL_ASSERT_LOCKED(p);
    for (unsigned w = 0; w < p->nworkers; w++) {
        chunk *c = &p->chunks[w];
        if (c != mine && helpable_locked(c) != NULL)
            return 1;
        for (unsigned i = 0; c != mine && i < c->n; i++)
            if (atomic_load_explicit(&c->slots[i], memory_order_relaxed)
                    != NULL)
                return 1;
    }
    return 0;
}

/* Under p->lock: whether there is a job for this worker to start.  A
 * job in another worker's chunk is only a hint: its owner starts it
 * without the lock, so this worker may enter and find nothing to take
 * (one entry for nothing; it looks again). */
int
pygate__pool_work_locked(pool *p, const chunk *mine)
{
    POOL_ASSERT_LOCKED(p);
    return p->head != NULL || stealable_locked(p, mine);
}

/* Under p->lock, nothing queued: moves up to max jobs that other workers
 * took and have not started to out, from the ends of their chunks (their
 * owners start theirs from the front); none, joins another worker in
 * running a pack (the pack, in out, counts it as one of its runners). */
static unsigned
steal_locked(pool *p, const chunk *mine, job **out, unsigned max)
{
    POOL_ASSERT_LOCKED(p);
    unsigned n = 0;
    for (unsigned w = 0; w < p->nworkers; w++) {
        chunk *c = &p->chunks[w];
        for (unsigned i = c->n; c != mine && i > 0 && n < max; i--) {
            job *j = atomic_exchange(&c->slots[i - 1], NULL);
            if (j != NULL)
                out[n++] = j;
        }
    }
    for (unsigned w = 0; w < p->nworkers && n == 0; w++) {
        job_pack *k = &p->chunks[w] != mine ? helpable_locked(&p->chunks[w])
                                            : NULL;
        if (k != NULL) {
            k->runners++;
            out[n++] = &k->job;
        }
    }
    return n;
}

/* Under p->lock: moves queued jobs, marked running, to the worker's
 * chunk (or, none queued, some another worker has not started), until
 * they stand for max submissions (a pack for many), or at least one.
 * Returns how many jobs, and in *size how many submissions. */
unsigned
pygate__pool_take_jobs_locked(pool *p, chunk *mine, unsigned max,
                              unsigned *size)
{
    POOL_ASSERT_LOCKED(p);
    job *taken[CHUNK_MAX];
    unsigned n = 0;
    job *j;
    *size = 0;
    if (p->head == NULL)
        pygate__pool_collect_inbox_locked(p);
    while (n < CHUNK_MAX && *size < max
           && (j = pygate__pool_pop_job_locked(p)) != NULL) {
        taken[n++] = j;
        *size += job_size(j);
    }
    pygate__pool_count_taken_locked(p, *size);
    if (n == 0) {
        n = steal_locked(p, mine, taken, max);
        for (unsigned i = 0; i < n; i++)
            *size += job_size(taken[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        atomic_store_explicit(&mine->slots[i], taken[i], memory_order_relaxed);
        mine->started[i] = NULL;
    }
    mine->n = n;
    /* A job of the chunk may block: unless a worker stands by, a sleeping
     * one wakes to, for the jobs left (may_run_locked), which their
     * submitters woke no one for (submit_to), or to take over this
     * chunk's. */
    if (!p->standing_by
            && (p->resting != 0 || atomic_load(&p->sleeping) != 0)
            && (p->head != NULL || *size > 1 || stealable_locked(p, mine)))
        pthread_cond_signal(p->resting != 0 ? &p->standby : &p->work);
    return n;
}

/* Ends the jobs of a chunk that ran (its started ones: NULL where another
 * worker took one), with their outcomes, under one lock; the chunk is
 * empty after. */
void
pygate__pool_complete_jobs(pool *p, chunk *mine, const outcome *o, unsigned n)
{
    pthread_mutex_lock(&p->lock);
    mine->n = 0;
    mine->helpable = NULL;
    for (unsigned i = 0; i < n; i++) {
        job *j = mine->started[i];
        if (j == NULL || (j->kind == JOB_PACK && --pack_of(j)->runners > 0))
            continue;   /* another worker took it, or still runs it */
        j->result = o[i].result;
        if (o[i].exc != NULL) {   /* only a job with a handle keeps one */
            waited_job *w = waited_of(j);
            assert(w != NULL);
            w->exc = o[i].exc;
            w->text = o[i].text;
        }
        j->state = JOB_DONE;
        p->completed += job_size(j);
        pygate__job_unref_locked(p, j);
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

/* Under p->lock: every queued job ends CANCELLED; completion callbacks
 * are called with the lock released (not attached). */
void
pygate__pool_cancel_queue_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    job *j;
    while ((j = pygate__pool_pop_job_locked(p)) != NULL) {
        waited_job *w = with_callback(j);
        if (w != NULL) {
            pthread_mutex_unlock(&p->lock);
            w->done(PYGATE_ECANCELLED, 0, NULL, w->done_arg);
            pthread_mutex_lock(&p->lock);
        }
        pygate__pool_count_taken_locked(p, job_size(j));
        pygate__job_end_cancelled_locked(p, j);
    }
    pthread_cond_broadcast(&p->changed);
}
