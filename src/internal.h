/*
 * internal.h - pygate's data structures, shared by the files in src/.
 *
 *   record  (interp.c)  one per interpreter: ID, lifetime state, guard count,
 *                       and the thread states pygate created for it; made,
 *                       found and shut down by lifecycle.c.
 *   view    (view.c)    a user's handle on a record.
 *   entry   (thread.c)  one cached thread state: (thread, record) -> tstate.
 *   thread  (thread.c)  a native thread's entries and its stack of frames.
 *   frame   (enter.c)   one open entry or detach on a thread.
 *
 * Files call each other downward only:
 *   api.c > value.c > interp_pool.c > host.c, pep788.c, pool_life.c, call.c >
 *   pool_submit.c, pool_fork.c > pool_worker.c > pool_queue.c > pool_job.c >
 *   enter.c, decref.c > guard.c > view.c > lifecycle.c > fork.c > thread.c >
 *   interp.c > decref_queue.c > handle.c, compat.c, error.c > alloc.c
 * Functions shared between files are named pygate__* (nothing else of
 * pygate's is global), and only PYGATE_API functions are exported; inside
 * src/, exported functions are never called: internal code calls this
 * copy's pygate__impl_* (api.c alone dispatches to another copy).
 *
 * src/ is compiled as one translation unit (CMake's unity build, like
 * tools/amalgamate.py's single file): a file's static names are visible to
 * the files after it, so no two files may define the same static name.
 * tests/check_layers.sh also compiles each file on its own, so no file
 * uses another's statics.
 */
#ifndef PYGATE_INTERNAL_H
#define PYGATE_INTERNAL_H

#include "compat.h"
#include "alloc.h"
#include "api_list.h"
#include "pygate.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* ---- this copy's implementations of the exported functions -------------- */

/* pygate__impl_<name> for each entry of api_list.h.  Internal code calls
 * these, never the exported wrappers: code of this copy runs only on
 * handles this copy made, and a copy that made any never hands its calls
 * to another (api.c). */
#define PYGATE__DECLARE_IMPL(meets, ret, name, params, args)                 \
    ret pygate__impl_##name params;
PYGATE__API_CORE_RETURNING(PYGATE__DECLARE_IMPL)
PYGATE__API_CORE_VOID(PYGATE__DECLARE_IMPL)
#undef PYGATE__DECLARE_IMPL
/* The header's forms that pass the caller's file and line. */
#define pygate__enter(view, token)                                           \
    pygate__impl_enter_at((view), (token), __FILE__, __LINE__)
#define pygate__leave(token) pygate__impl_leave_at((token), __FILE__, __LINE__)
#define pygate__view_close(view)                                             \
    pygate__impl_view_close_at((view), __FILE__, __LINE__)

/* ---- small shared pieces ------------------------------------------------ */

/* A doubly linked list threaded through fields `prev` and `next` of its
 * nodes, with *head the first node (the record registry, the thread list,
 * a record's entries, a pool's waited jobs).  The caller holds the list's
 * lock. */
#define PYGATE__LIST_PUSH(head, node, prev, next)                            \
    do {                                                                     \
        (node)->prev = NULL;                                                 \
        (node)->next = (head);                                               \
        if ((head) != NULL)                                                  \
            (head)->prev = (node);                                           \
        (head) = (node);                                                     \
    } while (0)

#define PYGATE__LIST_UNLINK(head, node, prev, next)                          \
    do {                                                                     \
        if ((node)->prev != NULL)                                            \
            (node)->prev->next = (node)->next;                               \
        else                                                                 \
            (head) = (node)->next;                                           \
        if ((node)->next != NULL)                                            \
            (node)->next->prev = (node)->prev;                               \
    } while (0)

/* Monotonic time in seconds, for waits and bounds. */
static inline double
pygate__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Every condition variable pygate waits on with a deadline measures it on
 * CLOCK_MONOTONIC: a default one measures CLOCK_REALTIME, which a clock
 * step (NTP, a VM resumed) moves, stretching or cutting a wait by the
 * step. */
static inline void
pygate__cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* The absolute deadline, `seconds` (>= 0) from now, that
 * pthread_cond_timedwait() wants on a condition from pygate__cond_init. */
static inline struct timespec
pygate__deadline_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long whole = (long)seconds;
    ts.tv_sec += whole;
    ts.tv_nsec += (long)((seconds - (double)whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Before blocking on something that may need the GIL the caller holds:
 * detaches the caller's state if it has one attached, and returns it for
 * pygate__reattach() (NULL when nothing was attached). */
static inline PyThreadState *
pygate__release_if_attached(void)
{
    PyThreadState *attached = pygate__compat_current_tstate();
    if (attached != NULL)
        PyEval_SaveThread();
    return attached;
}

static inline void
pygate__reattach(PyThreadState *attached)
{
    if (attached != NULL)
        PyEval_RestoreThread(attached);
}

/* ---- errors and misuse (error.c) ---------------------------------------- */

/* pygate_strerror and pygate_err_name, for internal code. */
const char *pygate__strerror(int err);
const char *pygate__err_name(int err);
/* Whether misuse aborts (debug mode) or only returns its code. */
int pygate__debug_mode(void);

/* Reports misuse at file:line.  In debug mode prints and aborts; otherwise
 * returns err unchanged, so callers write `return misuse(...)`. */
int pygate__misuse(int err, const char *file, int line, const char *what);

/* ---- interpreter records (interp.c) ------------------------------------- */

typedef enum record_phase {
    PHASE_OPEN = 0,     /* entries allowed */
    PHASE_CLOSING = 1,  /* shutdown hook running: no new guards */
    PHASE_GONE = 2      /* thread states torn down; interp pointer invalid */
} record_phase;

typedef struct entry entry;

/* Debug mode only: where a guard was taken, for the shutdown report. */
typedef struct guard_site {
    const char *file;
    int line;
    unsigned long thread;          /* PyThread_get_thread_ident() */
    struct guard_site *prev, *next;
} guard_site;

/* pygate_call's part of a record: call.c's alone (calls combined while a
 * thread runs them). */
typedef struct record_calls {
    struct call_request *_Atomic requests;  /* published, newest first */
    _Atomic int combining;                  /* a thread runs them */
} record_calls;

typedef struct record {
    int64_t id;                    /* interpreter ID: the record's identity */
    PyInterpreterState *interp;    /* valid only while a guard is held */
    int is_main;
    _Atomic uint64_t guards;       /* GUARD_CLOSED bit | number held */
    _Atomic int phase;             /* record_phase */
    _Atomic long refs;             /* views + entries + registry + hook */
    pthread_mutex_t lock;          /* protects entries and the wait below */
    _Atomic(pthread_t) lock_owner; /* for RECORD_ASSERT_LOCKED; 0 if none */
    pthread_cond_t drained;        /* signalled when guards reach 0 closed */
    entry *entries;                /* states pygate created for this interp */
    guard_site *sites;             /* debug mode: guards held, by site */
    uint64_t serial;               /* unique in the process, never reused */
    struct decref_block *_Atomic decref_blocks; /* pygate_decref's queue */
    record_calls calls;                 /* pygate_call's (call.c) */
    struct record_listener *listeners;  /* lifecycle.c, under rec->lock */
    int listening_done;                 /* the hook called them all */
    _Atomic int capsule_alive;   /* the interpreter dict's capsule holds a
                                    reference (lifecycle.c; for the census) */
    _Atomic int hook_kept;       /* the hook kept its reference for frames
                                    still open (lifecycle.c; the census) */
    double shutdown_began;       /* when the hook began (lifecycle.c) */
    _Atomic int gave_up;         /* a wait of its shutdown was given up */
    struct record *reg_prev, *reg_next;   /* the registry (interp.c) */
} record;

#define GUARD_CLOSED ((uint64_t)1 << 63)

/* rec->lock, with its holder remembered so that functions documented as
 * "under rec->lock" can assert it in debug builds (SQLite's
 * sqlite3_mutex_held).  Never held while waiting for the GIL. */
static inline void
record_lock(record *rec)
{
    pthread_mutex_lock(&rec->lock);
    atomic_store_explicit(&rec->lock_owner, pthread_self(),
                          memory_order_relaxed);
}

static inline void
record_unlock(record *rec)
{
    atomic_store_explicit(&rec->lock_owner, (pthread_t)0,
                          memory_order_relaxed);
    pthread_mutex_unlock(&rec->lock);
}

static inline int
record_lock_held(record *rec)
{
    return pthread_equal(atomic_load_explicit(&rec->lock_owner,
                                              memory_order_relaxed),
                         pthread_self());
}

#define RECORD_ASSERT_LOCKED(rec) assert(record_lock_held(rec))

/* pthread_cond_timedwait on rec->drained, under rec->lock. */
static inline void
record_wait(record *rec, const struct timespec *deadline)
{
    RECORD_ASSERT_LOCKED(rec);
    atomic_store_explicit(&rec->lock_owner, (pthread_t)0,
                          memory_order_relaxed);
    pthread_cond_timedwait(&rec->drained, &rec->lock, deadline);
    atomic_store_explicit(&rec->lock_owner, pthread_self(),
                          memory_order_relaxed);
}

/* Takes a guard: fails with PYGATE_EFINALIZING or PYGATE_EGONE, without
 * blocking, once the shutdown hook has closed the record.  Lock-free. */
int pygate__record_guard_acquire(record *rec);
void pygate__record_guard_release(record *rec);
/* Takes one more guard for a caller that already holds one (so the hook
 * cannot have drained yet): never fails, even while closing. */
void pygate__record_guard_add(record *rec);

/* Local guards (interp.c explains them): the same three operations on the
 * counter of an entry of rec, by the entry's owner thread only.  Usable
 * only when pygate__record_local_guards() is true, which is fixed before
 * the first record exists. */
int pygate__record_local_guards(void);
int pygate__record_guard_acquire_local(record *rec, _Atomic uint32_t *held);
void pygate__record_guard_release_local(record *rec, _Atomic uint32_t *held);
void pygate__record_guard_add_local(_Atomic uint32_t *held);

/* Debug mode (callers test pygate__debug_mode() first, to keep the call off
 * the entry fast path): remembers where a guard was taken (NULL when out of
 * memory); pygate__record_site_remove() accepts NULL. */
guard_site *pygate__record_site_add(record *rec, const char *file, int line);
void pygate__record_site_remove(record *rec, guard_site *site);

void pygate__record_ref(record *rec);
void pygate__record_unref(record *rec);
/* PYGATE_EFINALIZING or PYGATE_EGONE */
int pygate__record_error(record *rec);

/* A new record (one reference) for interp, on the registry, gate open. */
record *pygate__record_new(PyInterpreterState *interp, int64_t id);
/* The hook's first step: no guard can be taken from here on, and every
 * local guard taken before is visible to pygate__record_guards_held(). */
void pygate__record_close_gate(record *rec);
/* The interpreter is gone (or never got its hook): closed for good. */
void pygate__record_mark_gone(record *rec);
/* Shared and local guards held.  Under rec->lock. */
uint64_t pygate__record_guards_held(record *rec);

/* The main interpreter's record: found (a new reference, or NULL), set
 * when made (replacing one whose hook never ran), forgotten by its hook. */
record *pygate__record_find_main(void);
void pygate__record_set_main(record *rec);
void pygate__record_forget_main(record *rec);

/* Links and unlinks e on rec's entry list; each takes rec->lock. */
void pygate__record_link_entry(record *rec, entry *e);
void pygate__record_unlink_entry(record *rec, entry *e);
/* The same, for a caller that holds rec->lock. */
void pygate__record_unlink_entry_locked(record *rec, entry *e);

/* fork() (fork.c): every record's lock, taken in registry order before the
 * fork and given back after it, so no list is half-changed in the child. */
void pygate__records_lock_all(void);
void pygate__records_unlock_all(void);
/* Whether this copy of pygate has any record (api.c: a copy with none may
 * still hand its calls to another copy). */
int pygate__records_exist(void);
/* Records alive (a census for tests/soak.c). */
long pygate__records_count(void);
/* One line per record alive: its interpreter, phase, references, entries,
 * listeners and guards (tests/soak.c prints them when records are left). */
void pygate__records_describe(FILE *out);
/* One line per pool not freed: its record, references, jobs with a
 * handle or a callback not freed, workers and counts (the same census). */
void pygate__pools_describe(FILE *out);
/* The registry, walked under pygate__records_lock_all(): the first record when
 * rec is NULL, then the next one, then NULL. */
record *pygate__records_next(record *rec);
/* In the child, under pygate__records_lock_all(): rec's shared guard count is
 * shared_held (the forking thread's own), and a sub-interpreter's record is
 * gone (CPython deleted the interpreter). */
void pygate__record_reset_after_fork(record *rec, uint64_t shared_held);
/* In the child, once per fork, after every record was reset. */
void pygate__records_after_fork(void);
/* How many forks this process descends through; guards taken before the
 * last one no longer hold shutdown (guard.c). */
unsigned pygate__records_fork_generation(void);

/* ---- deferred decrefs (decref_queue.c) ---------------------------------- */

/* Deferred decrefs (pygate_decref): references to objects of rec's
 * interpreter, dropped later by a thread attached to it.  Each thread
 * writes them into blocks of its own, one per interpreter, kept in these
 * slots of its record (no malloc and no shared write per decref); a block
 * is freed when its thread is done with it and every entry was drained. */
typedef struct decref_block decref_block;
#define DECREF_SLOTS 4

/* Queues obj's reference without a lock, in the calling thread's block
 * for rec among slots: PYGATE_OK, or PYGATE_ENOMEM.  Any thread.  No
 * guard is taken: an entry written after the shutdown hook's last drain
 * is never drained, so its reference is left alone, as once shutdown
 * began (the caller checks the phase first). */
int pygate__decref_queue_push(record *rec, PyObject *obj,
                              decref_block **slots);
/* At thread exit: gives up the thread's blocks (their undrained entries
 * keep them until drained). */
void pygate__decref_blocks_release(decref_block **slots);
/* Drops every queued reference.  Caller is attached to rec's interpreter
 * (deallocation may run Python code, which may queue more: those written
 * into a block being drained are dropped too, others at the next drain). */
void pygate__decref_queue_drop(record *rec);
/* Unqueues every block without dropping its entries: rec is being freed
 * (interp.c). */
void pygate__decref_queue_abandon(record *rec);

/* Whether rec has queued decrefs: one load, for the entry path. */
static inline int
pygate__decref_queue_any(record *rec)
{
    return atomic_load_explicit(&rec->decref_blocks, memory_order_relaxed)
           != NULL;
}

/* ---- a record's life (lifecycle.c) -------------------------------------- */

/* The record for the interpreter the caller is attached to, created (and
 * the shutdown hook installed) on first use; returns a new reference. */
int pygate__record_for_current(record **out);

/* Something that must stop before an interpreter shuts down (a worker
 * pool): the hook calls fn(arg) first, on the finalizing thread, attached,
 * while the gate is still open, so fn may wait (GIL released) for threads
 * that still enter.  Each listener is called at most once. */
typedef struct record_listener {
    void (*fn)(void *arg);
    void *arg;
    struct record_listener *next;
} record_listener;

/* Adds l to rec's listeners: PYGATE_OK, or record_error() once the hook
 * has begun (then fn is never called). */
int pygate__record_listen(record *rec, record_listener *l);
/* Removes l: 1 if it was still there (fn will not be called), 0 if the
 * hook took it (fn has been or is being called). */
int pygate__record_unlisten(record *rec, record_listener *l);

/* Every wait of rec's shutdown (a listener's for its pool, the hook's for
 * guards) follows one rule, pygate_set_drain_limits(): reported every
 * report_every, given up after give_up_after counted from the hook's
 * start, and ended by a Python signal handler that raises (main
 * interpreter, on the main thread).  The waiter waits at most
 * pygate__shutdown_wait_slice() seconds at a time and then, not attached
 * and holding no lock, calls pygate__shutdown_wait_tick(), which calls
 * report(arg, rec, waited) when a report is due and returns 1 once the
 * wait must end (reported, and said on stderr); once one wait of rec's
 * shutdown was given up, every later one is at its first tick. */
typedef struct shutdown_wait {
    record *rec;
    PyThreadState *ts;          /* to run signal handlers on, or NULL */
    double last_report;
} shutdown_wait;

/* ts: the finalizing thread's detached state (or NULL). */
void pygate__shutdown_wait_begin(shutdown_wait *w, record *rec,
                                 PyThreadState *ts);
double pygate__shutdown_wait_slice(const shutdown_wait *w);
int pygate__shutdown_wait_tick(shutdown_wait *w,
                               void (*report)(void *arg, const record *rec,
                                              double waited),
                               void *arg);

/* ---- pools (pool_life.c; the rest is the pool's: pool_internal.h) ----- */

/* pygate_pool_close(), also handing back the final counts (submitted,
 * completed, cancelled), which the closed handle no longer gives. */
int pygate__pool_close_counting(pygate_pool *pool, uint64_t counts[3]);
/* The same for the shutdown of `shutting` (the main interpreter's, for an
 * interpreter pool's members): the wait for the workers follows its rule
 * (pygate__shutdown_wait_tick); ts is the finalizing thread's state, or
 * NULL. */
int pygate__pool_close_at_shutdown(pygate_pool *pool, uint64_t counts[3],
                                   record *shutting, PyThreadState *ts);
/* Refuses the pool's new jobs from now on with `refused` (a close that
 * follows keeps that reason), ending submitters' waits for room.  Any
 * thread; an invalid handle is ignored. */
void pygate__pool_refuse(pygate_pool *pool, int refused);
/* Tells the pool that its interpreter is its own (an interpreter pool's
 * member): every other thread that runs Python there is a Python thread
 * or enters through pygate, so its busy workers pause only for those. */
void pygate__pool_mark_private(pygate_pool *pool);
/* 0 when pool options are in range; else 1, and why (naming `where`, the
 * option, its value and its range) in why[size]. */
int pygate__pool_options_problem(const pygate_pool_options *o,
                                 const char *where, char *why, size_t size);
/* traceback.format_exception(exc) joined, malloc'd (a placeholder when
 * Python cannot format it).  Attached.  NULL only when memory ran out. */
char *pygate__format_exception(PyObject *exc);

/* ---- handles (handle.c) ------------------------------------------------ */

typedef enum handle_kind {
    HANDLE_VIEW = 1,
    HANDLE_GUARD = 2,
    HANDLE_POOL = 3,
    HANDLE_JOB = 4,
    HANDLE_INTERP_POOL = 5
} handle_kind;

/* What a view or guard handle holds.  Owned by whoever made the handle
 * until it is closed. */
typedef struct handle_slot {
    _Atomic uint32_t gen;       /* advanced by each close */
    _Atomic uint32_t kind;      /* handle_kind (read by lookups racing a
                                   reuse; the generation decides) */
    uint32_t next_free;         /* closed slots' list (table lock) */
    unsigned fork_generation;   /* guards: when taken (guard.c) */
    record *rec;                /* views, guards: holds a reference */
    guard_site *site;           /* guards, debug mode: where taken */
    void *_Atomic object;       /* pools, jobs: theirs (pool_*.c) */
    _Atomic uint32_t users;     /* pygate__handle_use() brackets open
                                   beyond their threads' sets */
    int pinned;                 /* views: pygate's own (host.c), which
                                   pygate_view_close refuses */
} handle_slot;

/* A new handle of that kind (never 0) and its slot in *out; 0 when out of
 * memory.  Any thread. */
uintptr_t pygate__handle_new(handle_kind kind, handle_slot **out);
/* The slot of a live handle of that kind, else NULL (closed, never made,
 * another kind, or any other value): never reads freed memory.  Any
 * thread; lock-free. */
handle_slot *pygate__handle_get(uintptr_t handle, handle_kind kind);
/* Closes a live handle (1), or says it was not one (0). */
int pygate__handle_close(uintptr_t handle, handle_kind kind);
/* fork() (fork.c): the table's lock, taken before the fork (nothing is
 * taken under it) and given back after it, as pygate__slabs_lock_all. */
void pygate__handles_lock_all(void);
void pygate__handles_unlock_all(void);

/* For objects that closing frees (pools): a caller that uses the object
 * between looking its handle up and returning brackets that with use and
 * unuse, and the closer waits for open brackets with close_drained, so the
 * object is not freed under a concurrent caller.  Brackets must not block
 * (they are waited for by spinning), and a bracket ends on the thread
 * that opened it (it is noted in that thread's set).  use returns the
 * slot, or NULL when the handle is not live. */
handle_slot *pygate__handle_use(uintptr_t handle, handle_kind kind);
void pygate__handle_unuse(handle_slot *slot);
int pygate__handle_close_drained(uintptr_t handle, handle_kind kind);
/* In a child of fork(), from an atfork handler: forgets the brackets open
 * on a live handle.  They were other threads' (no bracket spans code that
 * may fork), and those threads are gone: a close would wait for ever. */
void pygate__handle_forget_brackets(uintptr_t handle, handle_kind kind);
/* In a child of fork(): every other thread's set of open brackets goes
 * back empty (those threads are gone; the sets are reused). */
void pygate__handle_sets_after_fork(void);

/* ---- views (view.c) and guards (guard.c) -------------------------------- */

/* The record of a live view, else NULL. */
record *pygate__view_record(pygate_view *view);
/* A new view of rec (it takes a reference of its own). */
int pygate__view_new_for(record *rec, pygate_view **out);
/* Marks a view as pygate's own: pygate_view_close() refuses it (misuse),
 * pygate__view_close_pinned() closes it. */
void pygate__view_pin(pygate_view *view);
void pygate__view_close_pinned(pygate_view *view);

/* The record of a live guard (else NULL); *holds says whether the guard
 * still holds it (not when it was inherited through fork()). */
record *pygate__guard_record(pygate_guard *guard, int *holds);

/* ---- entering (enter.c) ------------------------------------------------- */

/* pygate_leave(), except that a Python exception still set is reported
 * through sys.unraisablehook (a misuse in debug mode) and then left. */
int pygate__leave_reporting_exception(pygate_token token, const char *file,
                                      int line);

/* The token of the calling thread's entry at `level` (for pep788.c, whose
 * tokens carry only the level). */
pygate_token pygate__entry_token(uint32_t level);

/* pygate_enter() into rec, a record its caller just had from a view
 * (call.c: validating the view twice would cost a lone pygate_call a
 * tenth more than an entry).  `detached`: the caller just saw that nothing
 * is attached on this thread (CPython's current-state look-up is then not
 * made again: 18 instructions on a shared libpython 3.12). */
int pygate__enter_record(record *rec, int detached, pygate_token *token,
                         const char *file, int line);

/* The thread state an entry's token attached (or found attached). */
PyThreadState *pygate__token_tstate(pygate_token token);

/* ---- threads and their cached states (thread.c) ------------------------- */


struct entry {
    record *rec;                /* holds a reference */
    struct pygate_thread *owner; /* NULL once orphaned (under rec->lock) */
    PyThreadState *tstate;      /* NULL once the interpreter took it back */
    _Atomic uint32_t held;      /* local guards held (owner writes) */
    int linked;                 /* in rec->entries (under rec->lock) */
    int orphaned;               /* owner thread gone: the hook frees it */
    entry *rec_prev, *rec_next; /* rec->entries list */
    entry *thread_next;         /* owner thread's list */
};

typedef enum frame_kind {
    FRAME_ATTACH,   /* attached a thread state (maybe switching interps) */
    FRAME_NEST,     /* already attached to the interp: guard only */
    FRAME_DETACH    /* pygate_detach: thread state saved */
} frame_kind;

typedef struct frame {
    frame_kind kind;
    guard_site *site;              /* ATTACH, NEST: debug mode only */
    record *rec;                   /* ATTACH, NEST: interpreter entered */
    _Atomic uint32_t *held;        /* ATTACH, NEST: local guard, or NULL */
    PyThreadState *tstate;         /* ATTACH: attached; DETACH: saved */
    PyThreadState *prev;           /* ATTACH: re-attached at leave, or NULL */
    PyThreadState *gilstate_prev;  /* ATTACH: gilstate slot before entry */
    int restore_gilstate;          /* ATTACH: give the slot back at leave */
    uint32_t depth;                /* nested re-entries folded in */
} frame;

/* A thread's part in the worker pools and in pygate_call, which they fill
 * (pool_submit.c, pool_worker.c, call.c) and thread.c hands back, with
 * pygate__thread_pools_release, when the thread ends or a child of fork()
 * forgets it. */
typedef struct thread_pools {
    slab_block *waited_job_slab;   /* jobs it submits with a handle or a
                                      callback */
    slab_block *job_pack_slab;     /* packs of those nobody waits for */
    slab_shared *job_pack;         /* held: the pack its last submission
                                      went into, or NULL */
    slab_block *call_request_slab; /* its pygate_call requests (call.c),
                                      which a combiner may free */
    int worker;                    /* a pool's worker thread */
    unsigned lane;                 /* 1 + the pools' lane it submits to;
                                      0: none yet */
} thread_pools;

static inline void
pygate__thread_pools_release(thread_pools *tp)
{
    pygate__slab_release(&tp->waited_job_slab);
    if (tp->job_pack != NULL)
        pygate__slab_let_go(tp->job_pack);
    pygate__slab_release(&tp->job_pack_slab);
    pygate__slab_release(&tp->call_request_slab);
}

typedef struct pygate_thread {
    frame *frames;
    uint32_t nframes, cap;
    uint32_t level;                /* open entries + detaches, nested too */
    entry *entries;
    entry *last;                   /* most recently used entry */
    record *home;                  /* see pygate__thread_make_home */
    decref_block *decref_slots[DECREF_SLOTS]; /* pygate_decref */
    thread_pools pools;            /* its part in the worker pools */
    struct pygate_thread *reg_prev, *reg_next;   /* every thread's record */
} pygate_thread;

/* The calling thread's fast record (pygate.h, pygate_fast_v1_), under the
 * name this copy's own code uses: a hidden alias of the exported
 * pygate__fast_v1 (thread.c), so that the library always keeps its own
 * copy's record even where another copy's exported one interposes. */
extern __thread pygate_fast_v1_ pygate__fast
    __attribute__((tls_model("initial-exec"), visibility("hidden")));
/* pygate.h's pygate__views_closed_v1, the same way (view.c counts). */
extern uint32_t pygate__views_closed __attribute__((visibility("hidden")));

/* The count of view closes, read before a view is checked: a fast record
 * opened with it stops matching at the next close. */
static inline uint32_t
pygate__views_closed_now(void)
{
    return __atomic_load_n(&pygate__views_closed, __ATOMIC_ACQUIRE);
}

/* Closes the calling thread's fast record, folding the entries counted
 * inline into its innermost frame: called first by every function that
 * reads or changes the thread's frames or level. */
static inline void
pygate__fast_close(pygate_thread *t)
{
    if (pygate__fast.view_ == 0)
        return;
    pygate__fast.view_ = 0;
    uint32_t nested = pygate__fast.nested_;
    if (nested != 0) {   /* else level_ is still t->level */
        t->level += nested;
        t->frames[t->nframes - 1].depth += nested;
        pygate__fast.nested_ = 0;
    }
}

/* Opens it for the thread's innermost frame, an entry through view that
 * attached tstate (not in debug mode: the caller checks); closes: the
 * count of view closes read before view was checked. */
static inline void
pygate__fast_open(pygate_thread *t, pygate_view *view, PyThreadState *tstate,
                  uint32_t closes)
{
    pygate__fast.closes_ = closes;
    pygate__fast.tstate_ = tstate;
    pygate__fast.thread_ = t;
    pygate__fast.level_ = t->level;
    pygate__fast.view_ = (uintptr_t)view;
}

/* How a thread that ends inside entries gives back what they hold (the
 * attachment, the guards): enter.c, which owns frames, hands thread.c the
 * function when a thread first has any (thread.c sits below enter.c and
 * cannot name it), and thread.c's exit destructor calls it. */
typedef void unwind_frames_fn(pygate_thread *t);
void pygate__thread_set_unwinder(unwind_frames_fn *fn);

/* The calling thread's record, created on first use (NULL: out of memory
 * when create is set, or none yet when it is not). */
pygate_thread *pygate__thread_self(int create);
/* Native threads pygate keeps a record of (a census for tests/soak.c). */
long pygate__threads_count(void);

/* Makes the sub-interpreter of rec the calling thread's home (a pool
 * worker's): its state then stays bound in the thread's empty gilstate
 * slot between entries instead of being deleted at each leave (10-20 us
 * per entry on 3.12+).  Only for a thread that ends, deleting its states,
 * before rec's interpreter ends: a pool's workers exit before its
 * interpreter's shutdown goes on.  Returns PYGATE_ENOMEM or PYGATE_OK. */
int pygate__thread_make_home(record *rec);

/* The calling thread's cached entry for rec, or NULL.  Reading its state
 * needs a guard; taking a local guard on it does not. */
entry *pygate__thread_entry(pygate_thread *t, record *rec);

/* The thread state to attach for (thread, rec): cached, borrowed from the
 * gilstate slot, or newly created and cached.  Caller holds a guard. */
int pygate__thread_state_for(pygate_thread *t, record *rec,
                             PyThreadState **out);

/* Leaving rec's state, which is attached, when the slot held `prev`
 * before the entry: detaches, and leaves `prev` in the slot again.  Up to
 * 3.11 it writes the slot.  From 3.12 on it attaches `prev` for a moment
 * (CPython binds it; its interpreter is guarded meanwhile), and where that
 * cannot be done (`prev` NULL, or its interpreter unknown or closing) it
 * deletes rec's state instead of keeping it, which empties the slot. */
void pygate__thread_give_back_gilstate(pygate_thread *t, record *rec,
                               PyThreadState *prev);

/* Detaches `attached`, the calling thread's state of rec's interpreter,
 * and returns it.  Where COMPAT_FINALIZE_USES_MAIN_TSTATE, it is also left
 * unbound (the thread's own cached state for rec is bound instead), so
 * that another thread may attach it later.  Caller is attached to it. */
int pygate__thread_detach_unbound(record *rec, PyThreadState **detached);

/* Called by the shutdown hook, after draining, for every entry of rec.
 * When the wait gave up (drained is 0) some states may still be in use,
 * so none is deleted. */
void pygate__thread_forget_entries(record *rec, int drained);

/* fork() (fork.c): the list of every thread's record, locked around the
 * fork like the records. */
void pygate__threads_lock_all(void);
void pygate__threads_unlock_all(void);
/* In the child, under pygate__records_lock_all() and
 * pygate__threads_lock_all(): frees the
 * record of every thread but `self` (which may be NULL), and moves their
 * entries that no record lists onto *doomed (linked by thread_next). */
void pygate__threads_forget_others(pygate_thread *self, entry **doomed);
/* In the child, the same locks held: moves onto *doomed every entry of rec
 * that another thread owned, and self's own ones whose state CPython's
 * PyOS_AfterFork_Child deletes (all but `kept`, and every sub-interpreter
 * one).  Never touches a thread state. */
void pygate__thread_forget_foreign_entries(record *rec, pygate_thread *self,
                                   PyThreadState *kept, entry **doomed);
/* Frees the entries on a thread_next-linked list (no lock held). */
void pygate__thread_free_entries(entry *doomed);

/* ---- fork() (fork.c) ---------------------------------------------------- */

/* Installs pygate's one set of pthread_atfork handlers, once (later calls
 * do nothing); lifecycle.c calls it before the first record exists.  A
 * failure aborts: a forked child would wait for ever at shutdown for
 * threads it does not have. */
void pygate__fork_watch(void);

/* A service above fork.c with locks of its own (the worker pools): at a
 * fork its prepare runs before fork.c takes its locks, its parent and
 * child after fork.c let go of them and, in the child, forgot the other
 * threads.  Added once per service (FORK_SERVICES at most), through
 * fork.c's one registration. */
typedef struct fork_service {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
} fork_service;
void pygate__fork_add_service(const fork_service *s);

#endif /* PYGATE_INTERNAL_H */
