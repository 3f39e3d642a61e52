/*
 * thread.c - each native thread's cached thread states, and their end.
 *
 * An entry caches the thread state pygate created for (this thread, that
 * interpreter).  It sits on two lists: its thread's (to find it on entry)
 * and its record's (so that the shutdown hook can take it back).  Who frees
 * an entry:
 *   - its thread, at exit or pygate_thread_release(), when the interpreter
 *     is alive (guard taken) or the hook has already taken the state back;
 *   - the hook, when the thread ended while the hook was running (orphaned).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc's registration of thread-exit destructors (C++ thread_local uses
 * it).  They run when a thread ends, before any pthread key is emptied:
 * CPython's gilstate key (3.8-3.14) still holds the state it bound, so a
 * state can be attached and deleted the ordinary way.  Weak: without it
 * (another libc) the pthread key's destructor does the work. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj,
                                    void *dso_symbol)
    __attribute__((weak, visibility("default")));   /* glibc's, not ours:
                                   the single file hides what it declares */
extern void *__dso_handle __attribute__((weak, visibility("hidden")));

/* enter.c's, set when a thread first has a frame (relaxed: every thread
 * that has frames stored it itself before its exit reads it). */
static unwind_frames_fn *_Atomic frames_unwinder;

void
pygate__thread_set_unwinder(unwind_frames_fn *fn)
{
    atomic_store_explicit(&frames_unwinder, fn, memory_order_relaxed);
}

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
/* initial-exec: one load from the thread pointer instead of a call to
 * __tls_get_addr on every entry (the library is position-independent).
 * A library dlopen()ed with it takes 8 bytes of glibc's static TLS surplus
 * (the extension example in examples/extension checks that it loads). */
static __thread pygate_thread *thread_tls
    __attribute__((tls_model("initial-exec")));

/* The fast record pygate.h's inline path reads (exported), the count of
 * view closes it compares, and their hidden aliases for this copy's own
 * code (internal.h).  initial-exec as
 * thread_tls: 40 more bytes of static TLS. */
PYGATE_API __thread pygate_fast_v1_ pygate__fast_v1
    __attribute__((tls_model("initial-exec")));
extern __thread pygate_fast_v1_ pygate__fast
    __attribute__((alias("pygate__fast_v1"), tls_model("initial-exec"),
                   visibility("hidden")));
PYGATE_API uint32_t pygate__views_closed_v1;
extern uint32_t pygate__views_closed
    __attribute__((alias("pygate__views_closed_v1"), visibility("hidden")));

/* Every thread's record, for fork() (fork.c). */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pygate_thread *threads;

static void thread_destroy(void *arg);

static void
threads_add(pygate_thread *t)
{
    pthread_mutex_lock(&threads_lock);
    PYGATE__LIST_PUSH(threads, t, reg_prev, reg_next);
    pthread_mutex_unlock(&threads_lock);
}

static void
threads_remove(pygate_thread *t)
{
    pthread_mutex_lock(&threads_lock);
    PYGATE__LIST_UNLINK(threads, t, reg_prev, reg_next);
    pthread_mutex_unlock(&threads_lock);
}

long
pygate__threads_count(void)
{
    long n = 0;
    pthread_mutex_lock(&threads_lock);
    for (pygate_thread *t = threads; t != NULL; t = t->reg_next)
        n++;
    pthread_mutex_unlock(&threads_lock);
    return n;
}

static void
thread_key_create(void)
{
    if (pthread_key_create(&thread_key, thread_destroy) != 0) {
        /* Without the key threads would leak their states silently. */
        fprintf(stderr, "pygate: pthread_key_create failed\n");
        abort();
    }
}

pygate_thread *
pygate__thread_self(int create)
{
    pygate_thread *t = thread_tls;
    if (t != NULL || !create)
        return t;
    pthread_once(&thread_key_once, thread_key_create);
    t = (pygate_thread *)pygate__calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    /* Not for the process's main thread: exit() runs its thread-exit
     * destructors too, maybe with Python running on other threads. */
    int is_main_thread = syscall(SYS_gettid) == getpid();
    if (!is_main_thread && __cxa_thread_atexit_impl != NULL
            && &__dso_handle != NULL) {
        if (__cxa_thread_atexit_impl(thread_destroy, t, &__dso_handle) != 0) {
            free(t);
            return NULL;
        }
    } else if (pthread_setspecific(thread_key, t) != 0) {
        free(t);
        return NULL;
    }
    thread_tls = t;
    threads_add(t);
    return t;
}

/* ---- finding or making the state to attach ------------------------------ */

static void
entry_free(entry *e)
{
    pygate__record_unref(e->rec);
    free(e);
}

/* Drops entries whose interpreter is gone (the hook unlinked them and took
 * their states), so a long-lived thread does not accumulate them.  One
 * still held by an open frame (after the hook gave up) stays. */
static void
prune_gone_entries(pygate_thread *t)
{
    entry **link = &t->entries;
    while (*link != NULL) {
        entry *e = *link;
        if (atomic_load_explicit(&e->rec->phase, memory_order_acquire)
                == PHASE_GONE && atomic_load(&e->held) == 0) {
            *link = e->thread_next;
            if (t->last == e)
                t->last = NULL;
            entry_free(e);
        } else {
            link = &e->thread_next;
        }
    }
}

int
pygate__thread_make_home(record *rec)
{
    pygate_thread *t = pygate__thread_self(1);
    if (t == NULL)
        return PYGATE_ENOMEM;
    t->home = rec;   /* compared only: never dereferenced */
    return PYGATE_OK;
}

entry *
pygate__thread_entry(pygate_thread *t, record *rec)
{
    entry *e = t->last;
    if (e != NULL && e->rec == rec)
        return e;
    for (e = t->entries; e != NULL; e = e->thread_next)
        if (e->rec == rec) {
            t->last = e;
            return e;
        }
    return NULL;
}

static int
create_entry(pygate_thread *t, record *rec, entry **out)
{
    entry *e = (entry *)pygate__calloc(1, sizeof *e);
    if (e == NULL)
        return PYGATE_ENOMEM;
    e->tstate = pygate__alloc_fails() ? NULL
                                      : PyThreadState_New(rec->interp);
    if (e->tstate == NULL) {
        free(e);
        return PYGATE_ENOMEM;
    }
    pygate__record_ref(rec);
    e->rec = rec;
    e->owner = t;
    pygate__record_link_entry(rec, e);
    prune_gone_entries(t);
    e->thread_next = t->entries;
    t->entries = e;
    *out = e;
    return PYGATE_OK;
}

int
pygate__thread_state_for(pygate_thread *t, record *rec, PyThreadState **out)
{
    entry *e = pygate__thread_entry(t, rec);
    if (e == NULL) {
        /* A state CPython already made for this thread and interpreter
         * (main thread, threading.Thread, PyGILState_Ensure) is used, never
         * doubled.  It is not ours, so it is not cached: its owner may
         * delete it between two entries. */
        PyThreadState *existing = pygate__compat_gilstate_get();
        if (existing != NULL
                && PyThreadState_GetInterpreter(existing) == rec->interp) {
            *out = existing;
            return PYGATE_OK;
        }
        int rc = create_entry(t, rec, &e);
        if (rc != PYGATE_OK)
            return rc;
    }
    t->last = e;
    *out = e->tstate;
    return PYGATE_OK;
}

/* Deletes the entry's state on its own thread: attach, clear, delete (which
 * empties the slot if the state was bound).  Caller holds a guard, so the
 * interpreter is alive. */
static void
delete_own_state(entry *e)
{
    PyThreadState *outer = pygate__compat_current_tstate();
    if (outer != NULL)
        PyEval_SaveThread();
    PyEval_RestoreThread(e->tstate);
    compat_gilstate_bind_attached(e->tstate);
    PyThreadState_Clear(e->tstate);
    PyThreadState_DeleteCurrent();
    if (outer != NULL)
        PyEval_RestoreThread(outer);
}

static void
release_entry(entry *e)
{
    record *rec = e->rec;
    if (pygate__record_guard_acquire(rec) == PYGATE_OK) {
        pygate__record_unlink_entry(rec, e);
        delete_own_state(e);
        pygate__record_guard_release(rec);
        entry_free(e);
        return;
    }
    /* Shutting down or gone: never touch the state.  If the hook has not
     * reached this entry yet, it will delete the state and free the entry. */
    record_lock(rec);
    int hook_frees = e->linked;
    if (hook_frees) {
        e->orphaned = 1;
        e->owner = NULL;
    }
    record_unlock(rec);
    if (!hook_frees)
        entry_free(e);
}

/* Whether e caches `tstate`.  Under rec->lock: the shutdown hook may be
 * taking the state back (pygate__thread_forget_entries) at this moment. */
static int
entry_caches(entry *e, PyThreadState *tstate)
{
    record_lock(e->rec);
    int same = e->tstate == tstate;
    record_unlock(e->rec);
    return same;
}

/* Drops e from t's list (it must be there). */
static void
thread_unlist(pygate_thread *t, entry *e)
{
    entry **link = &t->entries;
    while (*link != e)
        link = &(*link)->thread_next;
    *link = e->thread_next;
    if (t->last == e)
        t->last = NULL;
}

/* ---- the gilstate slot (compat.h), given back -------------------------- */

#if COMPAT_ATTACH_BINDS_GILSTATE
/* The record whose guard keeps prev alive: that of t's entry caching it,
 * or else the main interpreter's (the caller checks, under its guard, that
 * prev belongs to it).  A new reference, or NULL. */
static record *
record_of_state(pygate_thread *t, PyThreadState *prev, int *ours)
{
    for (entry *e = t->entries; e != NULL; e = e->thread_next)
        if (entry_caches(e, prev)) {
            pygate__record_ref(e->rec);
            *ours = 1;
            return e->rec;
        }
    *ours = 0;
    return pygate__record_find_main();
}

/* Binds prev, a detached state of this thread, by attaching it a moment.
 * Returns 0 when its interpreter is unknown or closing. */
static int
rebind_gilstate(pygate_thread *t, PyThreadState *prev)
{
    int ours;
    record *rec = prev != NULL ? record_of_state(t, prev, &ours) : NULL;
    if (rec == NULL)
        return 0;
    int guarded = pygate__record_guard_acquire(rec) == PYGATE_OK;
    /* Under the guard prev cannot be freed by its interpreter's end. */
    int ok = guarded
             && (ours || PyThreadState_GetInterpreter(prev) == rec->interp);
    if (ok) {
        PyEval_RestoreThread(prev);
        PyEval_SaveThread();
    }
    if (guarded)
        pygate__record_guard_release(rec);
    pygate__record_unref(rec);
    return ok;
}
#endif

void
pygate__thread_give_back_gilstate(pygate_thread *t, record *rec,
                                  PyThreadState *prev)
{
    PyThreadState *tstate = PyEval_SaveThread();
#if COMPAT_ATTACH_BINDS_GILSTATE
    if (rebind_gilstate(t, prev))
        return;
    /* Keeping the state would keep it bound: its interpreter's end would
     * then free it under this thread's slot.  Delete it now, as PEP 788's
     * PyThreadState_Release does with the state its Ensure made. */
    entry *e = pygate__thread_entry(t, rec);
    if (e == NULL || e->tstate != tstate)
        return;   /* not pygate's: its owner deletes it */
    thread_unlist(t, e);
    pygate__record_unlink_entry(rec, e);
    PyEval_RestoreThread(tstate);
    PyThreadState_Clear(tstate);
    PyThreadState_DeleteCurrent();
    entry_free(e);
#else
    (void)t;
    (void)rec;
    (void)tstate;
    pygate__compat_gilstate_set(prev);
#endif
}

int
pygate__thread_detach_unbound(record *rec, PyThreadState **detached)
{
#if COMPAT_FINALIZE_USES_MAIN_TSTATE
    pygate_thread *t = pygate__thread_self(1);
    if (t == NULL)
        return PYGATE_ENOMEM;
    entry *e = pygate__thread_entry(t, rec);
    int rc = e == NULL ? create_entry(t, rec, &e) : PYGATE_OK;
    if (rc != PYGATE_OK)
        return rc;
    *detached = PyEval_SaveThread();
    PyEval_RestoreThread(e->tstate);   /* binds it: *detached no longer */
    PyEval_SaveThread();
#else
    (void)rec;
    *detached = PyEval_SaveThread();
#endif
    return PYGATE_OK;
}

/* ---- releasing ---------------------------------------------------------- */

/* Deletes every state t cached.  Unless the thread is exiting, the slot
 * then gets back a state that was bound in it and is not one of those. */
static void
release_all_entries(pygate_thread *t, int exiting)
{
    PyThreadState *slot = exiting ? NULL : pygate__compat_gilstate_get();
    for (entry *e = t->entries; e != NULL && slot != NULL; e = e->thread_next)
        if (entry_caches(e, slot))
            slot = NULL;   /* deleted below */
    entry *e = t->entries;
    t->entries = NULL;
    t->last = NULL;
    while (e != NULL) {
        entry *next = e->thread_next;
        release_entry(e);
        e = next;
    }
    if (slot == NULL || pygate__compat_gilstate_get() == slot)
        return;
#if COMPAT_ATTACH_BINDS_GILSTATE
    rebind_gilstate(t, slot);   /* a main-interpreter state, or nothing */
#else
    pygate__compat_gilstate_set(slot);
#endif
}

int
pygate__impl_thread_release(void)
{
    pygate_thread *t = pygate__thread_self(0);
    if (t == NULL)
        return PYGATE_OK;
    if (t->nframes != 0)
        return PYGATE_EBUSY;
    release_all_entries(t, 0);
    return PYGATE_OK;
}

unsigned
pygate__impl_thread_depth(void)
{
    pygate_thread *t = pygate__thread_self(0);
    if (t == NULL)
        return 0;
    /* Read where it is kept, leaving the fast record open. */
    return pygate__fast.view_ != 0 ? pygate__fast.level_ : t->level;
}

/* Thread-exit destructor (or pthread key destructor): the thread is
 * ending. */
static void
thread_destroy(void *arg)
{
    pygate_thread *t = (pygate_thread *)arg;
    if (t->nframes != 0)
        atomic_load_explicit(&frames_unwinder, memory_order_relaxed)(t);
    release_all_entries(t, 1);
    threads_remove(t);
    pygate__decref_blocks_release(t->decref_slots);
    pygate__thread_pools_release(&t->pools);
    free(t->frames);
    thread_tls = NULL;
    free(t);
}

/* ---- the shutdown hook's part ------------------------------------------- */

void
pygate__thread_forget_entries(record *rec, int drained)
{
    /* Guards are closed and drained: no thread links or unlinks entries of
     * rec now; owner threads may only mark theirs orphaned, under the lock.
     * The list is walked without the lock because deleting a state runs
     * arbitrary Python code (finalizers) that may call into pygate. */
    if (!rec->is_main && drained) {
        /* Py_EndInterpreter aborts if the interpreter has another thread
         * state left ("not the last thread"), so take ours back now.
         * The main interpreter's are freed by Py_FinalizeEx itself. */
        for (entry *e = rec->entries; e != NULL; e = e->rec_next)
            pygate__compat_delete_foreign_tstate(e->tstate);
    }
    record_lock(rec);
    entry *e = rec->entries;
    rec->entries = NULL;
    while (e != NULL) {
        entry *next = e->rec_next;
        e->tstate = NULL;
        e->linked = 0;
        if (e->orphaned)
            entry_free(e);
        e = next;
    }
    record_unlock(rec);
}

/* ---- fork() ------------------------------------------------------------- */

void
pygate__threads_lock_all(void)
{
    pthread_mutex_lock(&threads_lock);
}

void
pygate__threads_unlock_all(void)
{
    pthread_mutex_unlock(&threads_lock);
}

void
pygate__threads_forget_others(pygate_thread *self, entry **doomed)
{
    pygate_thread *t = threads;
    while (t != NULL) {
        pygate_thread *next = t->reg_next;
        if (t != self) {
            /* Entries still on a record's list are found there (a thread
             * may have died between linking an entry and listing it). */
            for (entry *e = t->entries, *e_next; e != NULL; e = e_next) {
                e_next = e->thread_next;
                if (!e->linked) {
                    e->thread_next = *doomed;
                    *doomed = e;
                }
            }
            pygate__decref_blocks_release(t->decref_slots);
            pygate__thread_pools_release(&t->pools);
            free(t->frames);
            free(t);
        }
        t = next;
    }
    threads = self;
    if (self != NULL)
        self->reg_prev = self->reg_next = NULL;
}

/* Whether CPython's PyOS_AfterFork_Child deletes the state of self's entry
 * e: every sub-interpreter's state (_PyInterpreterState_DeleteExceptMain),
 * and every main-interpreter one but the forking thread's attached state
 * (_PyThreadState_DeleteExcept).  With none attached, the child cannot run
 * Python anyway; its entries are kept as they are. */
static int
deleted_by_cpython(entry *e, PyThreadState *kept)
{
    return !e->rec->is_main || (kept != NULL && e->tstate != kept);
}

void
pygate__thread_forget_foreign_entries(record *rec, pygate_thread *self,
                              PyThreadState *kept, entry **doomed)
{
    RECORD_ASSERT_LOCKED(rec);
    for (entry *e = rec->entries, *next; e != NULL; e = next) {
        next = e->rec_next;
        int own = self != NULL && e->owner == self;
        int in_use = own && atomic_load(&e->held) != 0;
        /* A main-interpreter state still in use by an open frame of self
         * (not the attached one: a detach above it) is kept as it is. */
        if (own && (!deleted_by_cpython(e, kept) || (rec->is_main && in_use)))
            continue;
        pygate__record_unlink_entry_locked(rec, e);
        e->tstate = NULL;
        if (own && in_use)
            continue;   /* pruned once its frame left (prune_gone_entries) */
        if (own)
            thread_unlist(self, e);
        e->thread_next = *doomed;
        *doomed = e;
    }
}

void
pygate__thread_free_entries(entry *doomed)
{
    while (doomed != NULL) {
        entry *next = doomed->thread_next;
        entry_free(doomed);
        doomed = next;
    }
}
