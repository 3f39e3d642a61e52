/*
 * pool.c - worker pools: native threads that run submitted C jobs attached
 * to one interpreter.
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
 */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

/* A busy worker's pause every hold_seconds (pause_due): longer than a
 * waiting thread takes to wake up and take the GIL. */
#define PAUSE_NS 200000L

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
static waited_job *
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

static job_pack *
pack_of(job *j)
{
    return (job_pack *)(void *)((char *)j - offsetof(job_pack, job));
}

/* How many submissions j stands for. */
static uint32_t
job_size(job *j)
{
    return j->kind == JOB_PACK ? pack_of(j)->n : 1;
}

/* Frees a job that no pool or thread holds any more. */
static void
job_free(job *j)
{
    pygate__slab_free(j->kind == JOB_PACK ? (void *)pack_of(j) : (void *)j);
}

/* j as a job with a completion callback, or NULL. */
static waited_job *
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

/* Every pool not freed yet, for the fork handlers below. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pool *all_pools;
static pthread_once_t pools_fork_once = PTHREAD_ONCE_INIT;

void
pygate__pools_describe(FILE *out)
{
    pthread_mutex_lock(&pools_lock);
    for (pool *p = all_pools; p != NULL; p = p->all_next) {
        pthread_mutex_lock(&p->lock);
        long live = 0;
        for (waited_job *w = p->live; w != NULL; w = w->live_next)
            live++;
        fprintf(out, "pool %p: record %p, %d references, %ld waited jobs,"
                " %u workers alive, %s, submitted %llu completed %llu"
                " cancelled %llu\n", (void *)p, (void *)p->rec, p->refs, live,
                p->workers_alive, p->accepting ? "accepting" : "closed",
                (unsigned long long)p->submitted,
                (unsigned long long)p->completed,
                (unsigned long long)p->cancelled);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&pools_lock);
}

/* ---- references --------------------------------------------------------- */

/* A job's text when memory ran out formatting its exception: static, never
 * freed, so that a job that raised never looks as if it had not. */
static char unformatted_text[] = "(an exception pygate could not format:"
                                 " out of memory)\n";

static void
free_text(char *text)
{
    if (text != unformatted_text)
        free(text);
}

static void
pool_free(pool *p)
{
    pthread_mutex_lock(&pools_lock);
    PYGATE__LIST_UNLINK(all_pools, p, all_prev, all_next);
    pthread_mutex_unlock(&pools_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->changed);
    pthread_cond_destroy(&p->room);
    pthread_cond_destroy(&p->standby);
    if (p->view != NULL)
        pygate_view_close(p->view);
    free(p->lanes);
    free(p->chunks);
    free(p->threads);
    free(p);
}

/* Under p->lock; returns 1 when the last reference went (free after
 * unlocking). */
static int
pool_unref_locked(pool *p)
{
    return --p->refs == 0;
}

static void
pool_unref(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int last = pool_unref_locked(p);
    pthread_mutex_unlock(&p->lock);
    if (last)
        pool_free(p);
}

/* Under p->lock: drops a reference to j, a job of p (its exception
 * object is gone already); the last one frees it and drops its reference
 * to the pool.  Returns 1 when that was the pool's last (free it after
 * unlocking).  A worker never sees 1: the pool's handle or listener
 * outlives it. */
static int
job_unref_locked(pool *p, job *j)
{
    if (--j->refs > 0)
        return 0;
    waited_job *w = waited_of(j);
    if (w != NULL) {
        PYGATE__LIST_UNLINK(p->live, w, live_prev, live_next);
        free_text(w->text);
    }
    if (j->kind == JOB_PACK)
        pygate__slab_let_go(&pack_of(j)->hold);   /* its thread may hold it */
    else
        pygate__slab_free(j);
    return pool_unref_locked(p);
}

/* ---- running jobs ------------------------------------------------------- */

/* traceback.format_exception(exc) joined, as a malloc'd string (a
 * placeholder when Python cannot format it).  Attached.  NULL only when
 * memory ran out. */
char *
pygate__format_exception(PyObject *exc)
{
    char *text = NULL;
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *module = PyImport_ImportModule("traceback");
    PyObject *lines = module == NULL ? NULL
        : PyObject_CallMethod(module, "format_exception", "OOO",
                              (PyObject *)Py_TYPE(exc), exc,
                              tb != NULL ? tb : Py_None);
    PyObject *empty = lines == NULL ? NULL : PyUnicode_FromString("");
    PyObject *joined = empty == NULL ? NULL : PyUnicode_Join(empty, lines);
    const char *utf8 = joined == NULL ? NULL : PyUnicode_AsUTF8(joined);
    if (utf8 != NULL)
        text = pygate__strdup(utf8);
    Py_XDECREF(joined);
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(module);
    Py_XDECREF(tb);
    PyErr_Clear();
    return text != NULL ? text
                        : pygate__strdup("(an exception pygate could not"
                                         " format)\n");
}

/* The job's completion callback, attached, with what fn raised (the
 * callback collects it); one the callback raises itself is reported. */
static void
call_done(waited_job *w, int result, PyObject *exc)
{
    w->done(PYGATE_OK, result, exc, w->done_arg);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(NULL);
    Py_XDECREF(exc);
}

/* What a job left: stored in it when its chunk completes. */
typedef struct outcome {
    int result;
    PyObject *exc;
    char *text;
} outcome;

/* Runs the entries of a pack that nobody else claims meanwhile,
 * attached; nobody waits for them, so their exceptions go to
 * sys.unraisablehook. */
static outcome
run_pack(job_pack *k)
{
    uint32_t i;
    while ((i = atomic_fetch_add_explicit(&k->claimed, 1,
                                          memory_order_relaxed))
           < k->n) {
        (void)k->entry[i].fn(k->entry[i].arg);
        if (PyErr_Occurred())
            PyErr_WriteUnraisable(NULL);
    }
    outcome o = {0, NULL, NULL};
    return o;
}

/* Runs j attached.  Its exception goes to its callback, to the job (for
 * a waiter), or to sys.unraisablehook (nobody waits). */
static outcome
run_job(job *j)
{
    if (j->kind == JOB_PACK)
        return run_pack(pack_of(j));
    outcome o = {j->fn(j->arg), PyErr_GetRaisedException(), NULL};
    waited_job *w = with_callback(j);
    if (w != NULL) {
        call_done(w, o.result, o.exc);
        o.exc = NULL;
    }
    w = waited_of(j);
    if (o.exc != NULL && (w == NULL || w->handle == 0)) {
        PyErr_SetRaisedException(o.exc);
        PyErr_WriteUnraisable(NULL);
        o.exc = NULL;
    }
    if (o.exc != NULL && (o.text = pygate__format_exception(o.exc)) == NULL)
        o.text = unformatted_text;
    return o;
}

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
static void
collect_inbox_locked(pool *p)
{
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
static void
close_inbox_locked(pool *p, int refused)
{
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
static size_t
backlog(pool *p)
{
    return atomic_load_explicit(&p->offered, memory_order_relaxed)
           - atomic_load_explicit(&p->taken, memory_order_relaxed);
}

/* Under p->lock: n jobs left the queue of a bounded pool; submitters
 * waiting for room go on once half of it is free. */
static void
count_taken_locked(pool *p, size_t n)
{
    if (p->max_queued == 0 || n == 0)
        return;
    atomic_store_explicit(&p->taken,
                          atomic_load_explicit(&p->taken, memory_order_relaxed)
                              + n,
                          memory_order_relaxed);
    if (p->room_waiters != 0 && backlog(p) <= p->max_queued / 2)
        pthread_cond_broadcast(&p->room);
}

/* Under p->lock: the next queued job, marked running, or NULL. */
static job *
pop_job_locked(pool *p)
{
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
static int
work_locked(pool *p, const chunk *mine)
{
    return p->head != NULL || stealable_locked(p, mine);
}

/* Under p->lock, nothing queued: moves up to max jobs that other workers
 * took and have not started to out, from the ends of their chunks (their
 * owners start theirs from the front); none, joins another worker in
 * running a pack (the pack, in out, counts it as one of its runners). */
static unsigned
steal_locked(pool *p, const chunk *mine, job **out, unsigned max)
{
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
static unsigned
take_jobs_locked(pool *p, chunk *mine, unsigned max, unsigned *size)
{
    job *taken[CHUNK_MAX];
    unsigned n = 0;
    job *j;
    *size = 0;
    if (p->head == NULL)
        collect_inbox_locked(p);
    while (n < CHUNK_MAX && *size < max && (j = pop_job_locked(p)) != NULL) {
        taken[n++] = j;
        *size += job_size(j);
    }
    count_taken_locked(p, *size);
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
static void
complete_jobs(pool *p, chunk *mine, const outcome *o, unsigned n)
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
        job_unref_locked(p, j);
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

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
        unsigned n = take_jobs_locked(p, mine, want, &size);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < n; i++) {
            job *j = start_job(mine, i);
            if (j != NULL && j->kind == JOB_PACK)
                offer_help(p, mine, pack_of(j));
            if (j != NULL)
                done[i] = run_job(j);
        }
        complete_jobs(p, mine, done, n);
        ran += size;
        double spent = pygate__now() - start;
        if (size < want || spent >= p->hold_seconds)
            return;
        double per_job = spent / ran, left = p->hold_seconds - spent;
        chunk = per_job <= 0 || left / per_job >= CHUNK_MAX
                    ? CHUNK_MAX : (unsigned)(left / per_job) + 1;
    }
}

/* Under p->lock: j, off the queue or its worker gone, ends CANCELLED and
 * is counted so. */
static void
end_cancelled_locked(pool *p, job *j)
{
    j->state = JOB_CANCELLED;
    p->cancelled += job_size(j);
    job_unref_locked(p, j);
}

/* Under p->lock: every queued job ends CANCELLED; completion callbacks
 * are called with the lock released (not attached). */
static void
cancel_queue_locked(pool *p)
{
    job *j;
    while ((j = pop_job_locked(p)) != NULL) {
        waited_job *w = with_callback(j);
        if (w != NULL) {
            pthread_mutex_unlock(&p->lock);
            w->done(PYGATE_ECANCELLED, 0, NULL, w->done_arg);
            pthread_mutex_lock(&p->lock);
        }
        count_taken_locked(p, job_size(j));
        end_cancelled_locked(p, j);
    }
    pthread_cond_broadcast(&p->changed);
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
    atomic_fetch_add(&p->sleeping, 1);
    collect_inbox_locked(p);
    if (!work_locked(p, mine) && !p->stopping)
        pthread_cond_wait(&p->work, &p->lock);
    atomic_fetch_sub(&p->sleeping, 1);
    collect_inbox_locked(p);
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
    if (COMPAT_FREE_THREADED)
        return 1;   /* no GIL to take from the one in a round */
    return atomic_load(&p->entered) == 0 || pc->probing || p->stopping
           || pc->waited * 2 < pc->ran;
}

/* Under p->lock, jobs to start that this worker leaves to the one in a
 * round: one worker waits hold_seconds (or until the pool stops) to probe
 * then; any other rests until that one joins a round (take_jobs_locked),
 * so that the probes come once per hold_seconds however many workers the
 * pool has.  Resting workers are not counted as sleeping: a submitter
 * that woke one would wake it for nothing (eight submitters, 16 workers:
 * half the throughput). */
static void
stand_by_locked(pool *p, pace *pc)
{
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
    int rc = pygate_enter(p->view, &tok);
    double in = pygate__now();
    if (rc == PYGATE_OK) {
        run_batch(p, mine);
        pause = pause_due(p, &pc->busy_since);
        pygate_leave(tok);
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
        self->pool_worker = 1;   /* never waits for room (submit_to) */
    static const pace fresh;
    pace pc = fresh;
    chunk *mine = &p->chunks[atomic_fetch_add(&p->chunks_given, 1)];
    pthread_mutex_lock(&p->lock);
    mine->owner = pthread_self();
    for (;;) {
        collect_inbox_locked(p);
        /* One look decides: a job seen in another worker's chunk can be
         * gone at the next (its owner starts it without the lock), and a
         * worker that took "no work" for "stopping" exited for good. */
        if (!work_locked(p, mine)) {
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
            close_inbox_locked(p, rc);
            cancel_queue_locked(p);
        }
    }
    p->workers_alive--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    /* This worker's thread state goes with the thread (thread.c). */
    return NULL;
}

/* ---- stopping ----------------------------------------------------------- */

/* Under p->lock: stops accepting (refusing with `refused`), cancels the
 * queue if the pool says so, and tells the workers to exit once it is
 * empty. */
static void
begin_stop_locked(pool *p, int refused)
{
    close_inbox_locked(p, refused);
    if (p->on_close == PYGATE_POOL_CANCEL || p->forked)
        cancel_queue_locked(p);
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
    cancel_queue_locked(p);
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
    pool_unref(p);   /* the listener's reference */
}

/* ---- the API ------------------------------------------------------------ */

/* The pool of a live handle, under a use bracket of it (end it with
 * pygate__handle_unuse(*slot)): a concurrent close then waits before it
 * frees the pool.  NULL when the handle is not a live pool. */
static pool *
pool_use(pygate_pool *handle, handle_slot **slot)
{
    *slot = pygate__handle_use((uintptr_t)handle, HANDLE_POOL);
    if (*slot != NULL && (*slot)->object == NULL) {   /* still opening */
        pygate__handle_unuse(*slot);
        *slot = NULL;
    }
    return *slot != NULL ? (pool *)(*slot)->object : NULL;
}

static waited_job *
job_of(pygate_job *handle)
{
    handle_slot *slot = pygate__handle_get((uintptr_t)handle, HANDLE_JOB);
    return slot != NULL ? (waited_job *)slot->object : NULL;
}

/* Refuses new jobs from now on, with `refused`: it ends the wait of
 * submitters for room, which a close would wait for otherwise (they are
 * inside the handle's use brackets, which it drains). */
static void
refuse(pool *p, int refused)
{
    pthread_mutex_lock(&p->lock);
    close_inbox_locked(p, refused);
    pthread_mutex_unlock(&p->lock);
}

void
pygate__pool_refuse(pygate_pool *handle, int refused)
{
    handle_slot *slot;
    pool *p = pool_use(handle, &slot);
    if (p == NULL)
        return;
    refuse(p, refused);
    pygate__handle_unuse(slot);
}

void
pygate__pool_mark_private(pygate_pool *handle)
{
    handle_slot *slot;
    pool *p = pool_use(handle, &slot);
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

/* ---- fork --------------------------------------------------------------- */

/* A pool's workers do not exist in a child of fork(), unless one of them
 * forked (from a job, os.fork() say).  Every pool is locked around the
 * fork, so that no queue is half-changed.  In the child:
 *  - a pool whose worker forked keeps that one worker, and works on;
 *  - any other pool is left without workers and refuses new jobs; a job
 *    queued without a completion callback ends cancelled at once, one
 *    with a callback when the pool is closed or its interpreter shuts
 *    down (the callback is called then);
 *  - in both, a job that was running on another worker, or waiting in
 *    its chunk, ends cancelled at once, its callback uncalled (the
 *    parent's worker runs it). */
static void
pools_prepare(void)
{
    pthread_mutex_lock(&pools_lock);
    for (pool *p = all_pools; p != NULL; p = p->all_next)
        pthread_mutex_lock(&p->lock);
}

static void
pools_parent(void)
{
    for (pool *p = all_pools; p != NULL; p = p->all_next)
        pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&pools_lock);
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
        end_cancelled_locked(p, list);
        list = next;
    }
}

/* In the child, under p->lock: queued jobs without a callback end; those
 * with one stay queued for the stop (cancel_queue_locked). */
static void
cancel_queued_silent_locked(pool *p)
{
    job *keep = NULL, *keep_tail = NULL;
    job *j;
    while ((j = pop_job_locked(p)) != NULL) {
        if (with_callback(j) == NULL) {
            count_taken_locked(p, job_size(j));
            end_cancelled_locked(p, j);
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

/* The index of the calling thread among p's workers, or -1. */
static int
worker_index(pool *p)
{
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->threads[i] != 0 && pthread_equal(p->threads[i], pthread_self()))
            return (int)i;
    return -1;
}

static void
pools_child(void)
{
    for (pool *p = all_pools; p != NULL; p = p->all_next) {
        /* Waiters on the conditions, and callers inside the handle's use
         * brackets (a submitter between its look-up and its push, or
         * waiting for room), were other threads: gone. */
        pygate__handle_forget_brackets(p->handle, HANDLE_POOL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->changed, NULL);
        pthread_cond_init(&p->room, NULL);
        pthread_cond_init(&p->standby, NULL);
        p->room_waiters = 0;
        int mine = worker_index(p);
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
            close_inbox_locked(p, PYGATE_ECLOSED);
            cancel_queued_silent_locked(p);
        }
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&pools_lock);
}

static void
pools_watch_fork(void)
{
    if (pthread_atfork(pools_prepare, pools_parent, pools_child) != 0)
        fprintf(stderr, "pygate: pthread_atfork failed (pools)\n");
}

static int
start_workers(pool *p)
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
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->changed, NULL);
    pthread_cond_init(&p->room, NULL);
    pthread_cond_init(&p->standby, NULL);
    pthread_once(&pools_fork_once, pools_watch_fork);
    pthread_mutex_lock(&pools_lock);
    PYGATE__LIST_PUSH(all_pools, p, all_prev, all_next);
    pthread_mutex_unlock(&pools_lock);
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
        pool_free(p);
        return rc;
    }
    p->rec = rec;
    p->listener.fn = pool_on_shutdown;
    p->listener.arg = p;
    p->refs++;   /* the listener's */
    rc = pygate__record_listen(rec, &p->listener);
    if (rc != PYGATE_OK) {
        pool_free(p);
        return rc;
    }
    handle_slot *slot;
    p->handle = pygate__handle_new(HANDLE_POOL, &slot);
    rc = p->handle == 0 ? PYGATE_ENOMEM : start_workers(p);
    if (rc != PYGATE_OK) {
        if (p->handle != 0)
            pygate__handle_close(p->handle, HANDLE_POOL);
        pool_stop(p, PYGATE_ECLOSED, NULL, NULL);
        if (pygate__record_unlisten(rec, &p->listener))
            p->refs--;
        pool_unref(p);
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
    pool *p = pool_use(handle, &slot);
    if (p == NULL)
        return PYGATE_EINVAL;
    int own = worker_index(p) >= 0;
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
        pool_unref(p);   /* the listener's, never called */
    pool_unref(p);       /* the handle's */
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

/* Whether a submitter to a full bounded pool may wait for room: one that
 * is attached may hold the GIL the workers need (any interpreter's, when
 * they share it), and a worker waiting on a full pool (its own or one
 * whose jobs submit back to it) may be what keeps that pool full. */
static int
may_wait_for_room(pygate_thread *t)
{
    return pygate__compat_current_tstate() == NULL
           && (t == NULL || !t->pool_worker);
}

/* Not attached: a full bounded pool makes the caller wait until half of
 * its queue has started, or it stops accepting. */
static void
wait_for_room(pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->room_waiters++;
    while (p->accepting && backlog(p) > p->max_queued / 2)
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
        t != NULL ? &t->waited_job_slab : NULL, sizeof *w);
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
    if (t->lane == 0)
        t->lane = 1 + atomic_fetch_add_explicit(&lanes_given, 1,
                                                memory_order_relaxed) % LANES;
    return t->lane - 1;
}

/* The pack t's last submission went into, held by t, or NULL. */
static job_pack *
thread_pack(pygate_thread *t)
{
    return (job_pack *)(void *)t->job_pack;
}

/* t lets go of its pack: its next job nobody waits for starts another
 * (after one it waits for, so that its jobs stay in order). */
static void
drop_thread_pack(pygate_thread *t)
{
    if (t->job_pack != NULL)
        pygate__slab_let_go(t->job_pack);
    t->job_pack = NULL;
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
    if (backlog(p) >= p->max_queued && may_wait_for_room(t))
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
    job_pack *k = (job_pack *)pygate__slab_alloc_dirty(&t->job_pack_slab,
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
     * wakes another for what it leaves queued: take_jobs_locked).  Waking
     * for every job took the lock each time a worker slept. */
    if (newest == NULL && atomic_load(&p->sleeping) != 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->lock);
    }
    if (packed)   /* held from now on: its next jobs go in */
        t->job_pack = &pack_of(j)->hold;
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
    pool *p = pool_use(handle, &slot);
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

int
pygate__impl_pool_counts(pygate_pool *handle, uint64_t *submitted,
                         uint64_t *completed, uint64_t *cancelled)
{
    handle_slot *slot;
    pool *p = pool_use(handle, &slot);
    if (p == NULL)
        return PYGATE_EINVAL;
    pthread_mutex_lock(&p->lock);
    collect_inbox_locked(p);
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

int
pygate__impl_job_wait(pygate_job *handle, double timeout, int *result)
{
    waited_job *w = job_of(handle);
    if (w == NULL || timeout != timeout)
        return PYGATE_EINVAL;
    pool *p = w->pool;
    job *j = &w->job;
    /* The job may need the GIL to run; a poll does not wait for it. */
    PyThreadState *attached = timeout != 0 ? pygate__release_if_attached()
                                           : NULL;
    struct timespec deadline =
        pygate__deadline_after(timeout > 0 ? timeout : 0);
    pthread_mutex_lock(&p->lock);
    int timed_out = 0;
    while ((j->state == JOB_QUEUED || j->state == JOB_RUNNING) && !timed_out) {
        if (timeout == 0)
            timed_out = 1;
        else if (timeout < 0)
            pthread_cond_wait(&p->changed, &p->lock);
        else
            timed_out = pthread_cond_timedwait(&p->changed, &p->lock,
                                               &deadline) == ETIMEDOUT;
    }
    int state = j->state;
    if (state == JOB_DONE && result != NULL)
        *result = j->result;
    pthread_mutex_unlock(&p->lock);
    pygate__reattach(attached);
    return state == JOB_DONE        ? PYGATE_OK
           : state == JOB_CANCELLED ? PYGATE_ECANCELLED
                                    : PYGATE_ETIMEDOUT;
}

int
pygate__impl_job_exception(pygate_job *handle, PyObject **exc)
{
    waited_job *w = job_of(handle);
    if (w == NULL || exc == NULL)
        return PYGATE_EINVAL;
    PyThreadState *attached = pygate__compat_current_tstate();
    if (attached == NULL
            || PyThreadState_GetInterpreter(attached) != w->pool->rec->interp)
        return PYGATE_ENOTATTACHED;
    pthread_mutex_lock(&w->pool->lock);
    int done = w->job.state == JOB_DONE;
    *exc = w->exc;
    Py_XINCREF(*exc);
    if (done)
        w->collected = 1;
    int dropped = w->exc == NULL && w->text != NULL;
    pthread_mutex_unlock(&w->pool->lock);
    if (!done)
        return PYGATE_EBUSY;
    return dropped ? PYGATE_EGONE : PYGATE_OK;
}

int
pygate__impl_job_exception_text(pygate_job *handle, const char **text)
{
    waited_job *w = job_of(handle);
    if (w == NULL || text == NULL)
        return PYGATE_EINVAL;
    pthread_mutex_lock(&w->pool->lock);
    int done = w->job.state == JOB_DONE;
    *text = done ? w->text : NULL;
    if (done)
        w->collected = 1;
    pthread_mutex_unlock(&w->pool->lock);
    return done ? PYGATE_OK : PYGATE_EBUSY;
}

/* An exception nobody collected: to sys.unraisablehook, attached to its
 * interpreter, or (that interpreter ending or gone) its text to stderr. */
static void
report_uncollected(pool *p, PyObject *exc, const char *text)
{
    pygate_token tok;
    if (exc != NULL && pygate_enter(p->view, &tok) == PYGATE_OK) {
        PyErr_SetRaisedException(exc);
        PyErr_WriteUnraisable(NULL);
        pygate_leave(tok);
        return;
    }
    if (exc != NULL)
        pygate_decref(p->view, exc);   /* refused when ending: left alone */
    fprintf(stderr, "pygate: exception of a job nobody collected:\n%s",
            text != NULL ? text : "(no text)\n");
}

int
pygate__impl_job_close(pygate_job *handle)
{
    waited_job *w = job_of(handle);
    if (w == NULL || !pygate__handle_close((uintptr_t)handle, HANDLE_JOB))
        return PYGATE_EINVAL;
    pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    PyObject *exc = w->exc;
    w->exc = NULL;
    char *text = !w->collected && w->text != NULL ? pygate__strdup(w->text)
                                                  : NULL;
    int uncollected = !w->collected && (exc != NULL || w->text != NULL);
    w->handle = 0;   /* a job still queued reports its own exception */
    int last = job_unref_locked(p, &w->job);
    pthread_mutex_unlock(&p->lock);
    if (uncollected)
        report_uncollected(p, exc, text);
    else if (exc != NULL)
        pygate_decref(p->view, exc);
    free(text);
    if (last)
        pool_free(p);
    return PYGATE_OK;
}
