/*
 * pool_internal.h - worker pools (private to the pool_*.c files):
 * native threads that run submitted C jobs attached to one interpreter.
 *
 * Each worker keeps its own thread state (it enters through the pool's
 * view) and, once it holds the GIL, runs queued jobs back to back, up to a
 * number of jobs and a time bound (batching), so that a burst of small
 * jobs costs one GIL hand-off instead of one each, and Python threads still
 * get the GIL within the bound.
 *
 * A job's result code and its Python exception are never lost: the
 * exception is kept in the job (as an object, and formatted as text) for
 * its waiter, and reported to sys.unraisablehook when nobody collects it.
 * Every job ends DONE or CANCELLED, and the pool counts both.
 *
 * Submitting takes no lock: a job is pushed with one CAS onto the inbox
 * of the submitting thread's lane, and a worker moves every lane's inbox
 * into the queue under the lock when it looks for work; a submitter wakes
 * a worker only when it finds its inbox empty and one sleeps.  With eight
 * threads submitting empty jobs, the queue's lock (futex sleeps and
 * wake-ups) was what the run spent most of its time on; with one inbox
 * for all, the submitters spent a quarter of the run waiting for its cache
 * line (perf, 3.12.1).
 *
 * Jobs nobody waits for that a thread submits one after another share a
 * pack (job_pack), which the worker takes and ends as one job and whose
 * entries it reads four to a cache line: a job alone took a line that
 * crossed cores four times.
 *
 * A bounded pool (max_queued) makes a submitter that is neither attached nor
 * a pool's worker wait while the queue is full.  Eight threads that each
 * submit a burst otherwise queue all of it, and the worker chases its jobs
 * through memory no cache holds, fresh pages included: perf showed most of
 * the worker's own time in the loads of enqueue_locked's list walk.
 *
 * Under one GIL, a worker that enters while another runs jobs only takes
 * the GIL from it, so a second worker joins a running one only when the
 * GIL was free enough in its last round, or after standing by for
 * hold_seconds (may_run_locked).  Jobs that release the GIL or block still
 * get every worker; a burst of jobs that hold it gets one worker and no
 * hand-offs.  A worker with nothing queued takes over jobs another took
 * in its chunk and has not started (steal_locked), so a job that blocks
 * keeps none of them waiting.
 *
 * Shutdown: the pool listens to its interpreter's shutdown (lifecycle.c),
 * which calls it before closing the gate; it then stops accepting, finishes
 * or cancels its queue (the pool's choice), lets its workers exit, and drops
 * the exception objects its jobs still hold, keeping their text.
 *
 * The rooms, each calling only those below it:
 *   pool_life.c    a pool's life: open, stop (close, or its interpreter's
 *                  shutdown), counts, options
 *   pool_submit.c  submission: lanes, packs, the bound (max_queued)
 *   pool_fork.c    fork(): every pool locked around it, the child's pools
 *   pool_worker.c  the workers: rounds, batches, pausing, standing by
 *   pool_queue.c   the queue: inboxes collected, jobs taken in chunks,
 *                  stolen, completed, cancelled
 *   pool_job.c     references (pool and job), running a job, a job's
 *                  handle (wait, exception, close), the list of all pools
 *
 * Locks: p->lock guards what the struct below marks "under pool->lock",
 * the queue and the counts; functions named *_locked are called with it
 * held (POOL_ASSERT_LOCKED in debug builds).  The list of all pools has a
 * lock of its own, taken before any pool's (fork).  No lock of a pool is
 * held while entering or while running a job.
 
 */
#ifndef PYGATE_POOL_INTERNAL_H
#define PYGATE_POOL_INTERNAL_H

#include "internal.h"

#include <stddef.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

/* Most jobs a worker takes from the queue under one lock. */
#define CHUNK_MAX 64

typedef struct job job;
typedef struct job_pack job_pack;
typedef struct pool pool;

/* The jobs a worker took off the queue and has not started yet, for a
 * worker with nothing queued to take over (steal_locked): a job that
 * blocks (waits for the others, say) then keeps none of them waiting. */
typedef struct chunk {
    pthread_t owner;
    unsigned n;                     /* slots used, under pool->lock */
    job *_Atomic slots[CHUNK_MAX];  /* emptied by whoever starts its job */
    job *started[CHUNK_MAX];        /* the owner's, from its slot (cleared
                                       under pool->lock), so that a child
                                       of fork() finds the jobs that were
                                       running (pools_child) */
    job_pack *helpable;             /* the pack its owner runs, which other
                                       workers may help run (under
                                       pool->lock) */
} chunk;

/* The inbox of a pool that accepts no more jobs. */
#define INBOX_CLOSED ((job *)(uintptr_t)1)

/* Lanes of a pool: a thread always submits to the same one (lane_of), so
 * its jobs are queued in the order it submitted them, and threads on
 * other cores, on other lanes, do not take each other's cache line. */
#define LANES 8

typedef struct lane {
    _Alignas(64) job *_Atomic inbox;   /* submitted, newest first, not
                                          queued yet; INBOX_CLOSED once
                                          not accepting */
} lane;

/* What a queued job is. */
enum { JOB_ALONE, JOB_WAITED, JOB_PACK };

/* Every job: what a worker reads and writes for each, in one cache line
 * with its slab header (alloc.c).  The lines a job takes are what the
 * worker waits for when the submitter ran on another core: with four a
 * job instead of two, eight submitters' jobs ran at 0.6x the rate
 * (PERFORMANCE.md). */
struct job {
    job *next;                  /* queue */
    pygate_job_fn fn;
    void *arg;
    int result;
    uint8_t state;              /* under pool->lock */
    uint8_t refs;               /* the queue or worker, and the handle */
    uint8_t kind;               /* JOB_WAITED: a waited_job; JOB_PACK: a
                                   job_pack's (fn and arg unused) */
};

/* 56 bytes and the slab's 8-byte header: one line (CACHE_LINE, alloc.c). */
_Static_assert(sizeof(job) <= 56, "a job takes more than one cache line");

/* A job with a handle to wait on, or a completion callback. */
typedef struct waited_job waited_job;
struct waited_job {
    job job;                    /* first: a job * is a waited_job * */
    pool *pool;
    pygate_done_fn done;        /* or NULL */
    void *done_arg;
    PyObject *exc;              /* raised by fn; NULL once taken or dropped */
    char *text;                 /* exc formatted, for any thread */
    uintptr_t handle;           /* 0: nobody waits */
    int collected;              /* the waiter asked for the exception */
    waited_job *live_prev, *live_next;   /* not freed yet */
};

/* j's handle and callback part, or NULL: nobody waits for j. */
static inline waited_job *
waited_of(job *j)
{
    return j->kind == JOB_WAITED ? (waited_job *)j : NULL;
}

/* Jobs nobody waits for that one thread submits one after another go
 * into a pack, which the pool queues, takes, runs, steals and cancels as
 * one job.  The thread fills it while it waits in the lane's inbox, each
 * entry one CAS on the pack's count (a line the worker does not touch
 * meanwhile), until a worker collects the inbox and seals it; the
 * thread's next job then starts a pack.  Alone, each job took a line
 * that the worker pulled from the submitter's core, and wrote back
 * (take, start, end, free): the worker's costliest instructions (perf,
 * 3.12.1, eight submitters).  A pack's entries are four to a line, read
 * once, in order.  Each entry is claimed by whoever runs it, so that
 * an entry that blocks (waiting for a later one, say) keeps none of the
 * others waiting: another worker helps run the pack (steal_locked), as
 * it takes over jobs a blocked worker has not started.  27 entries: the
 * pack and its slab header make 512 bytes. */
#define PACK_ENTRIES 27
#define PACK_SEALED 0x80000000u

struct job_pack {
    slab_shared hold;           /* first: its pool's and its thread's */
    uint32_t room;              /* entries it may take (pack_room) */
    job job;
    const pool *pool;           /* whose (compared, never followed) */
    _Atomic uint32_t filled;    /* entries written, | PACK_SEALED once a
                                   worker collected it */
    uint32_t n;                 /* entries, once sealed */
    _Atomic uint32_t claimed;   /* entries started, by any runner */
    unsigned runners;           /* workers running it (under pool->lock):
                                   the last to finish ends it */
    struct {
        pygate_job_fn fn;
        void *arg;
    } entry[PACK_ENTRIES];
};

static inline job_pack *
pack_of(job *j)
{
    return (job_pack *)(void *)((char *)j - offsetof(job_pack, job));
}

/* How many submissions j stands for. */
static inline uint32_t
job_size(job *j)
{
    return j->kind == JOB_PACK ? pack_of(j)->n : 1;
}

/* Frees a job that no pool or thread holds any more. */
static inline void
job_free(job *j)
{
    pygate__slab_free(j->kind == JOB_PACK ? (void *)pack_of(j) : (void *)j);
}

/* j as a job with a completion callback, or NULL. */
static inline waited_job *
with_callback(job *j)
{
    waited_job *w = waited_of(j);
    return w != NULL && w->done != NULL ? w : NULL;
}

struct pool {
    uintptr_t handle;
    pygate_view *view;          /* the pool's own */
    record *rec;                /* view's record (the view holds it) */
    unsigned nworkers;
    unsigned batch;
    double hold_seconds;
    int on_close;
    pthread_mutex_t lock;
    pthread_cond_t work;        /* a job queued, or stop */
    pthread_cond_t changed;     /* a job ended, or a worker exited */
    pthread_cond_t room;        /* a bounded queue half empty, or stop */
    pthread_cond_t standby;     /* a worker resting may stand by, or stop */
    lane *lanes;                /* LANES of them */
    _Atomic size_t offered;     /* jobs pushed or being pushed (bounded) */
    _Atomic size_t taken;       /* jobs taken off the queue (bounded;
                                   written under lock) */
    size_t max_queued;          /* 0: no bound */
    unsigned room_waiters;      /* submitters waiting for room */
    _Atomic unsigned sleeping;  /* workers waiting for work */
    int standing_by;            /* a worker stands by (one at most) */
    unsigned resting;           /* workers waiting for the one standing by
                                   to join a round (on standby) */
    job *head, *tail;           /* queue */
    waited_job *live;
    int accepting;
    int refused;                /* error for submissions when not accepting */
    int stopping;               /* workers exit once the queue is empty */
    unsigned workers_alive;
    int joining, joined;        /* one stopper joins the workers */
    int abandoned;              /* the interpreter's shutdown gave up
                                   waiting for the workers */
    pthread_t *threads;
    chunk *chunks;              /* one per worker */
    _Atomic unsigned chunks_given;
    uint64_t submitted, completed, cancelled;
    int refs;                   /* handle, listener, live jobs */
    record_listener listener;
    int listening;
    _Atomic int private_interp; /* nobody else runs Python in it unseen */
    _Atomic unsigned entered;   /* workers in a round (entering, running
                                   jobs, leaving) */
    int forked;                 /* inherited through fork(): no workers */
    unsigned forking_worker;    /* 1 + its index in a child, detached */
    pool *all_prev, *all_next;  /* every pool not freed yet (fork) */
};

/* What a job left: stored in it when its chunk completes. */
typedef struct outcome {
    int result;
    PyObject *exc;
    char *text;
} outcome;

#if PYGATE_DEBUG
#  define POOL_ASSERT_LOCKED(p)                                             \
    pygate__pool_assert_locked((p), __FILE__, __LINE__)
void pygate__pool_assert_locked(pool *p, const char *file, int line);
#else
#  define POOL_ASSERT_LOCKED(p) ((void)0)
#endif

/* ---- references, running, the list of all pools (pool_job.c) ---------- */

/* The list of every pool not freed yet (fork, the census): its lock, and
 * a pool added to it (pool_life.c). */
void pygate__pools_lock(void);
void pygate__pools_unlock(void);
pool *pygate__pools_first(void);   /* under the list's lock */
void pygate__pools_add(pool *p);
/* Frees a pool nothing refers to any more (taking it off the list). */
void pygate__pool_free(pool *p);
/* Under p->lock: drops a reference; 1 when it was the last (free p with
 * pygate__pool_free once unlocked). */
int pygate__pool_unref_locked(pool *p);
/* Drops a reference, freeing p with the last. */
void pygate__pool_unref(pool *p);
/* Under p->lock: drops a reference to j; 1 when that dropped the pool's
 * last (free it once unlocked). */
int pygate__job_unref_locked(pool *p, job *j);
/* The pool of a live handle, under a use bracket (end it with
 * pygate__handle_unuse(*slot)); NULL when the handle is not a live pool. */
pool *pygate__pool_use(pygate_pool *handle, handle_slot **slot);
/* Runs j, attached; what it left. */
outcome pygate__job_run(job *j);
/* Under p->lock: j ends CANCELLED, and is counted so. */
void pygate__job_end_cancelled_locked(pool *p, job *j);

/* ---- the queue (pool_queue.c) ------------------------------------------ */

void pygate__pool_collect_inbox_locked(pool *p);
void pygate__pool_close_inbox_locked(pool *p, int refused);
size_t pygate__pool_backlog(pool *p);
void pygate__pool_count_taken_locked(pool *p, size_t n);
job *pygate__pool_pop_job_locked(pool *p);
int pygate__pool_work_locked(pool *p, const chunk *mine);
unsigned pygate__pool_take_jobs_locked(pool *p, chunk *mine, unsigned max,
                                       unsigned *size);
void pygate__pool_complete_jobs(pool *p, chunk *mine, const outcome *o,
                                unsigned n);
void pygate__pool_cancel_queue_locked(pool *p);

/* ---- the workers (pool_worker.c) --------------------------------------- */

/* Starts p's workers: PYGATE_OK, or PYGATE_ENOMEM (those started run). */
int pygate__pool_start_workers(pool *p);
/* The index of the calling thread among p's workers, or -1. */
int pygate__pool_worker_index(pool *p);

/* ---- fork (pool_fork.c) ------------------------------------------------ */

/* Registers the pools' fork handlers, once per process. */
void pygate__pools_watch_fork(void);

#endif
