/*
 * pool_fork.c - worker pools across fork().
 *
 * A pool's workers do not exist in a child of fork(), unless one of them
 * forked (from a job, os.fork() say).  Every pool is locked around the
 * fork, so that no queue is half-changed.  In the child:
 *  - a pool whose worker forked keeps that one worker, and works on;
 *  - any other pool is left without workers and refuses new jobs; a job
 *    queued without a completion callback ends cancelled at once, one
 *    with a callback when the pool is closed or its interpreter shuts
 *    down (the callback is called then);
 *  - in both, a job that was running on another worker, or waiting in
 *    its chunk, ends cancelled at once, its callback uncalled (the
 *    parent's worker runs it).
 *
 * The handlers join fork.c's one registration when the first pool opens
 * (pygate__fork_add_service): at the fork they lock the pools before
 * fork.c takes its locks; in the parent and the child they run after
 * fork.c's.
 */
#include "pool_internal.h"

#include <stdio.h>

static void
pools_prepare(void)
{
    pygate__pools_lock();
    for (pool *p = pygate__pools_first(); p != NULL; p = p->all_next)
        pthread_mutex_lock(&p->lock);
}

static void
pools_parent(void)
{
    for (pool *p = pygate__pools_first(); p != NULL; p = p->all_next)
        pthread_mutex_unlock(&p->lock);
    pygate__pools_unlock();
}

/* In the child, under p->lock: a job of another worker's chunk, running
 * or not started; a job taken over from a chunk may also be in the
 * started of the one it came from.  Listed once through next (unused
 * once off the queue), marked so. */
static void
list_running_once(job *j, job **list)
{
    if (j == NULL || j->state != JOB_RUNNING)
        return;
    j->state = JOB_CANCELLED;
    j->next = *list;
    *list = j;
}

/* Whether c (NULL: none) started j. */
static int
started_in(const chunk *c, const job *j)
{
    for (unsigned i = 0; c != NULL && i < c->n; i++)
        if (c->started[i] == j)
            return 1;
    return 0;
}

/* In the child, under p->lock: jobs running on workers that are gone, or
 * waiting in their chunks.  A worker's jobs stay in its chunk (a slot,
 * or started) from the lock it took them under to the lock it ends them
 * under, which the fork held. */
static void
cancel_running_elsewhere_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    job *list = NULL;
    chunk *own = NULL;   /* the forking worker's, if it is one */
    for (unsigned w = 0; w < p->nworkers; w++)
        if (pthread_equal(p->chunks[w].owner, pthread_self()))
            own = &p->chunks[w];
    for (unsigned w = 0; w < p->nworkers; w++) {
        chunk *c = &p->chunks[w];
        c->helpable = NULL;
        for (unsigned i = 0; c != own && i < c->n; i++) {
            list_running_once(atomic_load(&c->slots[i]), &list);
            if (!started_in(own, c->started[i]))
                list_running_once(c->started[i], &list);
        }
    }
    /* A pack the forking worker runs goes on, with it as its one runner:
     * the workers that helped it are gone. */
    for (unsigned i = 0; own != NULL && i < own->n; i++)
        if (own->started[i] != NULL && own->started[i]->kind == JOB_PACK)
            pack_of(own->started[i])->runners = 1;
    while (list != NULL) {
        job *next = list->next;
        pygate__job_end_cancelled_locked(p, list);
        list = next;
    }
}

/* In the child, under p->lock: queued jobs without a callback end; those
 * with one stay queued for the stop (pygate__pool_cancel_queue_locked). */
static void
cancel_queued_silent_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    job *keep = NULL, *keep_tail = NULL;
    job *j;
    while ((j = pygate__pool_pop_job_locked(p)) != NULL) {
        if (with_callback(j) == NULL) {
            pygate__pool_count_taken_locked(p, job_size(j));
            pygate__job_end_cancelled_locked(p, j);
            continue;
        }
        j->state = JOB_QUEUED;
        j->next = NULL;
        if (keep_tail != NULL)
            keep_tail->next = j;
        else
            keep = j;
        keep_tail = j;
    }
    p->head = keep;
    p->tail = keep_tail;
}

static void
pools_child(void)
{
    for (pool *p = pygate__pools_first(); p != NULL; p = p->all_next) {
        /* Waiters on the conditions, and callers inside the handle's use
         * brackets (a submitter between its look-up and its push, or
         * waiting for room), were other threads: gone. */
        pygate__handle_forget_brackets(p->handle, HANDLE_POOL);
        pygate__cond_init(&p->work);
        pygate__cond_init(&p->changed);
        pygate__cond_init(&p->room);
        pygate__cond_init(&p->standby);
        p->room_waiters = 0;
        int mine = pygate__pool_worker_index(p);
        cancel_running_elsewhere_locked(p);
        for (unsigned i = 0; i < p->nworkers; i++)
            if (!pthread_equal(p->chunks[i].owner, pthread_self()))
                p->chunks[i].n = 0;   /* their jobs ended just now */
        for (unsigned i = 0; i < p->nworkers; i++)
            if ((int)i != mine)
                p->threads[i] = 0;
        /* The forking worker forked inside its batch: entered.  It is
         * the child's first thread now, which sid's glibc 2.43 cannot join (a
         * join waited for ever): detached, it goes when it exits. */
        if (mine >= 0) {
            pthread_detach(pthread_self());
            p->forking_worker = (unsigned)mine + 1;
        }
        p->workers_alive = mine >= 0 ? 1 : 0;
        atomic_store(&p->sleeping, 0);
        p->standing_by = 0;
        p->resting = 0;
        atomic_store(&p->entered, mine >= 0 ? 1 : 0);
        if (mine < 0) {
            p->forked = 1;
            pygate__pool_close_inbox_locked(p, PYGATE_ECLOSED);
            cancel_queued_silent_locked(p);
        }
        pthread_mutex_unlock(&p->lock);
    }
    pygate__pools_unlock();
}

static void
add_service(void)
{
    static const fork_service pools = {pools_prepare, pools_parent,
                                       pools_child};
    pygate__fork_add_service(&pools);
}

void
pygate__pools_watch_fork(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, add_service);
}
