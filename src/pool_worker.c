/*
 * pool_worker.c - a pool's workers: each keeps its own thread state, and
 * in rounds enters, runs a batch of queued jobs (bounded by count and by
 * hold_seconds), leaves, and pauses when a thread may wait for the GIL.
 * Under one GIL a worker joins another already in a round only when the
 * GIL was free enough in its last round, or after standing by.
 *
 * A worker holds p->lock while it decides (work, standing by, sleeping),
 * never while it enters or runs a job.
 */
#include "pool_internal.h"

#include <time.h>
#include <unistd.h>

/* A busy worker's pause every hold_seconds (pause_due): longer than a
 * waiting thread takes to wake up and take the GIL. */
#define PAUSE_NS 200000L

/* Starts the job of the chunk's slot i, unless another worker took it;
 * NULL then.  Recorded in started before it leaves the slot: a child of
 * fork() made in between finds it in one of the two (pools_child). */
static job *
start_job(chunk *mine, unsigned i)
{
    job *j = atomic_load_explicit(&mine->slots[i], memory_order_relaxed);
    mine->started[i] = j;
    if (j != NULL && atomic_exchange(&mine->slots[i], NULL) != j)
        j = mine->started[i] = NULL;   /* taken meanwhile */
    return j;
}

/* Lets other workers help run k, which this worker starts (a pack's
 * entry may block): one lock a pack. */
static void
offer_help(pool *p, chunk *mine, job_pack *k)
{
    pthread_mutex_lock(&p->lock);
    mine->helpable = k;
    pthread_mutex_unlock(&p->lock);
}

/* Attached: runs queued jobs until the batch or the hold bound is used up,
 * or the queue is empty.  Jobs are taken and completed in chunks, one lock
 * round trip each; a chunk is sized from the jobs' time so far, so that it
 * ends within the hold bound (one job first: it may be long). */
static void
run_batch(pool *p, chunk *mine)
{
    outcome done[CHUNK_MAX];
    double start = pygate__now();
    unsigned ran = 0, chunk = 1;
    while (ran < p->batch) {
        unsigned want = chunk < p->batch - ran ? chunk : p->batch - ran;
        unsigned size;
        pthread_mutex_lock(&p->lock);
        unsigned n = pygate__pool_take_jobs_locked(p, mine, want, &size);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < n; i++) {
            job *j = start_job(mine, i);
            if (j != NULL && j->kind == JOB_PACK)
                offer_help(p, mine, pack_of(j));
            if (j != NULL)
                done[i] = pygate__job_run(j);
        }
        pygate__pool_complete_jobs(p, mine, done, n);
        ran += size;
        double spent = pygate__now() - start;
        if (size < want || spent >= p->hold_seconds)
            return;
        double per_job = spent / ran, left = p->hold_seconds - spent;
        chunk = per_job <= 0 || left / per_job >= CHUNK_MAX
                    ? CHUNK_MAX : (unsigned)(left / per_job) + 1;
    }
}

/* Attached: whether a Python thread of the interpreter is running
 * (_thread._count() counts those started by _thread or threading, per
 * interpreter); 1 when that cannot be known. */
static int
python_threads_running(void)
{
    PyObject *module = PyImport_ImportModule("_thread");
    PyObject *count = module == NULL ? NULL
                      : PyObject_CallMethod(module, "_count", NULL);
    long n = count != NULL ? PyLong_AsLong(count) : 1;
    Py_XDECREF(count);
    Py_XDECREF(module);
    PyErr_Clear();   /* a batch leaves no exception pending */
    return n != 0;
}

/* Attached, at the end of a batch: whether a thread other than this
 * pool's workers may be waiting for the GIL.  Only an interpreter private
 * to the pool (an interpreter pool's member) can tell: every other thread
 * there is a Python thread or enters through pygate, holding a guard.
 * Anywhere else (the main interpreter's thread, or whoever made the
 * interpreter, runs Python unseen) the answer is yes. */
static int
others_may_wait(pool *p)
{
    if (!atomic_load(&p->private_interp))
        return 1;
    record_lock(p->rec);
    uint64_t guards = pygate__record_guards_held(p->rec);
    record_unlock(p->rec);
    return guards > atomic_load(&p->entered) || python_threads_running();
}

/* Attached, after a batch: whether the worker should pause once it has
 * left, so that a thread waiting for the GIL gets it.  A worker that
 * leaves and enters again at once would otherwise keep it: CPython's
 * waiter asks for a switch only after a whole interval with no GIL
 * hand-off, and each re-entry is one.  Due after hold_seconds of running
 * jobs with no pause (one batch or many), and only when someone may wait
 * (the pause costs a busy worker about PAUSE_NS per hold_seconds). */
static int
pause_due(pool *p, double *busy_since)
{
    if (COMPAT_FREE_THREADED)
        return 0;   /* no GIL for anyone to wait for */
    if (pygate__now() - *busy_since < p->hold_seconds)
        return 0;
    *busy_since = pygate__now();
    return others_may_wait(p);
}

/* Under p->lock, no job to start: sleeps until one may be in an inbox
 * or another worker's chunk (or the pool stops).  The count of sleepers
 * and the inboxes are all seq_cst: a submitter either sees this worker
 * counted, or this worker sees its job. */
static void
wait_for_work_locked(pool *p, const chunk *mine)
{
    POOL_ASSERT_LOCKED(p);
    atomic_fetch_add(&p->sleeping, 1);
    pygate__pool_collect_inbox_locked(p);
    if (!pygate__pool_work_locked(p, mine) && !p->stopping)
        pthread_cond_wait(&p->work, &p->lock);
    atomic_fetch_sub(&p->sleeping, 1);
    pygate__pool_collect_inbox_locked(p);
}

/* How a worker's last round went: what decides whether it runs the next
 * one while another worker runs jobs (may_run_locked). */
typedef struct pace {
    double busy_since;   /* running jobs without a pause since; 0: idle */
    double waited;       /* the last round: seconds entering (the GIL) */
    double ran;          /* the last round: seconds running jobs */
    int probing;         /* stood by for hold_seconds: tries a round */
} pace;

/* Under p->lock, jobs queued: whether this worker runs a round now rather
 * than stand by.  With another worker in a round, entering mostly waits
 * for the GIL it holds, and the two then hand it to each other after every
 * batch: with eight threads submitting empty jobs and two workers, the
 * hand-offs cost a third of the throughput (3.12.1).  So a worker joins
 * one in a round only when the GIL was free for it most of its last round
 * (it waited less than half the time it ran jobs: jobs that release the
 * GIL, or block), or as a probe after standing by for hold_seconds (the
 * one in a round may be blocked in a job that waits for a job queued
 * behind it).  A pool that stops has every worker finish its queue: a
 * worker that slept through the stop's broadcast would sleep for ever. */
static int
may_run_locked(pool *p, const pace *pc)
{
    POOL_ASSERT_LOCKED(p);
    if (COMPAT_FREE_THREADED)
        return 1;   /* no GIL to take from the one in a round */
    return atomic_load(&p->entered) == 0 || pc->probing || p->stopping
           || pc->waited * 2 < pc->ran;
}

/* Under p->lock, jobs to start that this worker leaves to the one in a
 * round: one worker waits hold_seconds (or until the pool stops) to probe
 * then; any other rests until that one joins a round
 * (pygate__pool_take_jobs_locked), so that the probes come once per
 * hold_seconds however many workers the pool has.  Resting workers are not counted as sleeping: a submitter
 * that woke one would wake it for nothing (eight submitters, 16 workers:
 * half the throughput). */
static void
stand_by_locked(pool *p, pace *pc)
{
    POOL_ASSERT_LOCKED(p);
    if (p->standing_by) {
        p->resting++;
        pthread_cond_wait(&p->standby, &p->lock);
        p->resting--;
        return;
    }
    struct timespec deadline = pygate__deadline_after(p->hold_seconds);
    p->standing_by = 1;
    pthread_cond_timedwait(&p->standby, &p->lock, &deadline);
    p->standing_by = 0;
    pc->probing = 1;
    /* A resting worker stands by next (or sleeps, nothing left to do,
     * where a submitter wakes it): with this one blocked in a job too,
     * one resting untimed could wait for ever beside a queued job. */
    if (p->resting != 0)
        pthread_cond_signal(&p->standby);
}

/* Not under p->lock, counted in p->entered: enters, runs a batch, leaves,
 * and pauses when due; times the entry and the batch into pc.  Returns
 * pygate_enter's code. */
static int
run_round(pool *p, chunk *mine, pace *pc)
{
    double start = pygate__now();
    if (pc->busy_since == 0)
        pc->busy_since = start;
    int pause = 0;
    pygate_token tok;
    int rc = pygate__enter(p->view, &tok);
    double in = pygate__now();
    if (rc == PYGATE_OK) {
        run_batch(p, mine);
        pause = pause_due(p, &pc->busy_since);
        pygate__leave(tok);
    }
    pc->waited = in - start;
    pc->ran = pygate__now() - in;
    pc->probing = 0;
    atomic_fetch_sub(&p->entered, 1);
    if (pause) {
        struct timespec moment = {0, PAUSE_NS};
        nanosleep(&moment, NULL);
        pc->busy_since = pygate__now();
    }
    if (rc == PYGATE_ENOMEM) {
        /* No memory for this thread's state yet: the jobs wait. */
        struct timespec moment = {0, 1000000};
        nanosleep(&moment, NULL);
    }
    return rc;
}

static void *
worker_main(void *arg)
{
    pool *p = (pool *)arg;
    /* Without memory for it, entries only cost more. */
    (void)pygate__thread_make_home(p->rec);
    pygate_thread *self = pygate__thread_self(1);
    if (self != NULL)
        self->pools.worker = 1;   /* never waits for room (submit_to) */
    static const pace fresh;
    pace pc = fresh;
    chunk *mine = &p->chunks[atomic_fetch_add(&p->chunks_given, 1)];
    pthread_mutex_lock(&p->lock);
    mine->owner = pthread_self();
    for (;;) {
        pygate__pool_collect_inbox_locked(p);
        /* One look decides: a job seen in another worker's chunk can be
         * gone at the next (its owner starts it without the lock), and a
         * worker that took "no work" for "stopping" exited for good. */
        if (!pygate__pool_work_locked(p, mine)) {
            if (p->stopping)
                break;   /* nothing left */
            pc = fresh;   /* idle: the next round starts afresh */
            wait_for_work_locked(p, mine);
            continue;
        }
        if (!may_run_locked(p, &pc)) {
            stand_by_locked(p, &pc);
            continue;
        }
        atomic_fetch_add(&p->entered, 1);
        pthread_mutex_unlock(&p->lock);
        int rc = run_round(p, mine, &pc);
        pthread_mutex_lock(&p->lock);
        if (rc != PYGATE_OK && rc != PYGATE_ENOMEM) {
            /* The interpreter is shutting down or gone: nothing queued
             * can run any more. */
            pygate__pool_close_inbox_locked(p, rc);
            pygate__pool_cancel_queue_locked(p);
        }
    }
    p->workers_alive--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    /* This worker's thread state goes with the thread (thread.c). */
    return NULL;
}

/* The index of the calling thread among p's workers, or -1. */
int
pygate__pool_worker_index(pool *p)
{
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->threads[i] != 0 && pthread_equal(p->threads[i], pthread_self()))
            return (int)i;
    return -1;
}

int
pygate__pool_start_workers(pool *p)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        pthread_mutex_lock(&p->lock);
        p->workers_alive++;
        pthread_mutex_unlock(&p->lock);
        if (pygate__thread_create(&p->threads[i], worker_main, p) != 0) {
            pthread_mutex_lock(&p->lock);
            p->workers_alive--;
            pthread_mutex_unlock(&p->lock);
            p->threads[i] = 0;
            return PYGATE_ENOMEM;
        }
    }
    return PYGATE_OK;
}
