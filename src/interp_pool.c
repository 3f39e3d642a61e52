/*
 * interp_pool.c - interpreter pools: K sub-interpreters that pygate makes,
 * each with a worker pool (pool_*.c) of its own, so that Python code runs in
 * parallel from 3.12 on (each interpreter has its own GIL, PEP 684; on a
 * free-threaded build without one, and the pool isolates).
 *
 * The keeper: a thread of the pool's own makes its interpreters and, at
 * the end, ends them; it waits in between.  So the caller's thread states
 * and gilstate slot are never involved, and each interpreter's first state
 * only ever runs on the thread that made it: CPython 3.14+ keeps in a state
 * the C stack bounds of the thread that first ran it, and an interpreter
 * ended on another thread whose stack lies below them put every object it
 * freed aside, as if its stack were about to overflow, and freed none
 * (with all of the interpreter's memory).
 *
 * Making: attached to the main interpreter through a pygate entry (whose
 * guard holds the main interpreter back from finalizing meanwhile), the
 * keeper makes each interpreter, takes a view of it, runs the user's init
 * in it, and keeps the interpreter's first state, detached; the workers
 * make their own.  All or nothing: a failure ends those made.
 *
 * Ending (close, or the main interpreter's shutdown): the closing thread
 * closes each member's pool (its workers exit, deleting their states),
 * then the keeper, entered in main again, ends each interpreter with its
 * first state, the only one left, as Py_EndInterpreter requires.
 *
 * The pool listens to the main interpreter's shutdown (lifecycle.c), so
 * Py_FinalizeEx never finds a sub-interpreter of the pool still alive.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INTERPRETERS 256

typedef struct member {
    PyInterpreterState *interp;  /* compared only, once ended */
    PyThreadState *first;        /* its first state; NULL once ended */
    pygate_view *view;
    pygate_pool *pool;           /* a dead handle once closed */
    uint64_t counts[3];          /* final, once closed (pool_life.c) */
} member;

typedef struct interp_pool {
    uintptr_t handle;
    unsigned n;
    member *members;
    int own_gil;                 /* made with a GIL each */
    int parallel;                /* Python runs in them at once */
    pygate_pool_options pool_options;
    pthread_mutex_t lock;
    int accepting;               /* under lock */
    int refused;                 /* why not: ECLOSED or EFINALIZING */
    int ended;                   /* members ended (under lock) */
    int ending;                  /* a thread is ending them (under lock) */
    int made;                    /* the keeper made them, or failed (lock) */
    int end_asked;               /* the keeper is to end them (under lock) */
    pthread_cond_t changed;      /* made, end_asked or ended was set */
    pthread_t keeper;            /* makes and ends the members */
    int keeper_started;
    pid_t keeper_pid;            /* a child of fork() has no keeper */
    int refs;                    /* the handle's, the listener's (lock) */
    _Atomic unsigned next;       /* where PYGATE_ANY_INTERP looks first */
    pygate_view *main_view;      /* to enter main, to end members */
    record *main_rec;            /* holds a reference */
    record_listener listener;
} interp_pool;

static void
set_error(char *error, size_t size, const char *text)
{
    if (error != NULL && size > 0)
        snprintf(error, size, "%s", text);
}

/* ---- making and ending members ------------------------------------------ */

/* Runs init attached to the new interpreter; its exception becomes the
 * error text. */
static int
run_init(const pygate_interp_pool_options *o, char *error, size_t size)
{
    if (o->init == NULL)
        return PYGATE_OK;
    int rc = o->init(o->init_arg);
    if (!PyErr_Occurred()) {
        if (rc != 0)
            set_error(error, size, "pygate: the pool's init returned"
                      " nonzero without raising");
        return rc != 0 ? PYGATE_EEXCEPTION : PYGATE_OK;
    }
    PyObject *exc = PyErr_GetRaisedException();
    char *text = pygate__format_exception(exc);
    Py_DECREF(exc);
    set_error(error, size, text != NULL ? text : "(unformattable)");
    free(text);
    return PYGATE_EEXCEPTION;
}

/* On the keeper, attached to the main interpreter (main_ts): makes m's
 * interpreter, its view, runs init there, and comes back to main_ts. */
static int
make_member(member *m, int own_gil, const pygate_interp_pool_options *o,
            PyThreadState *main_ts, char *error, size_t size)
{
    const char *why = NULL;
    PyThreadState *ts = pygate__compat_new_interpreter(own_gil, &why);
    if (ts == NULL) {
        set_error(error, size, why);
        PyErr_Clear();
        return PYGATE_EPYTHON;
    }
    m->interp = PyThreadState_GetInterpreter(ts);
    int rc = pygate_view_from_current(&m->view);
    if (rc != PYGATE_OK) {
        set_error(error, size, "pygate: no view of the new interpreter");
        PyErr_Clear();
    } else {
        rc = run_init(o, error, size);
    }
    /* Kept, detached, to end the interpreter with.  Deleting it and
     * making another later is what 3.12.1 cannot do: an interpreter's
     * first state is part of it, and reusing it aborts ("thread state
     * already initialized", Python/pystate.c). */
    m->first = PyEval_SaveThread();
    PyEval_RestoreThread(main_ts);
    return rc;
}

/* On the keeper, attached to the main interpreter (main_ts): ends m's
 * interpreter on its first state (its pool is closed: no other state is
 * left; a member never made has none), and comes
 * back to main_ts.  Up to 3.11 Py_EndInterpreter leaves the (shared) GIL
 * held with no state current; from 3.12 on it releases the interpreter's
 * GIL and PyThreadState_Swap takes main's: either way the swap back makes
 * main_ts attached again, as CPython's interpreters module does. */
static void
end_member(member *m, PyThreadState *main_ts)
{
    if (m->first == NULL)
        return;
    PyEval_SaveThread();
    PyEval_RestoreThread(m->first);
    /* The interpreter's threading module may have been imported on
     * another thread, by a job (compat.h says why that would hang). */
    if (pygate__compat_finish_main_thread_object() < 0)
        PyErr_WriteUnraisable(NULL);
    Py_EndInterpreter(m->first);
    m->first = NULL;
    PyThreadState_Swap(main_ts);
}

/* ---- the pool's state ---------------------------------------------------- */

static void
ipool_free(interp_pool *ip)
{
    for (unsigned i = 0; i < ip->n; i++)
        if (ip->members[i].view != NULL)
            pygate__view_close(ip->members[i].view);
    if (ip->main_view != NULL)
        pygate__view_close(ip->main_view);
    if (ip->main_rec != NULL)
        pygate__record_unref(ip->main_rec);
    pthread_mutex_destroy(&ip->lock);
    pthread_cond_destroy(&ip->changed);
    free(ip->members);
    free(ip);
}

static void
ipool_unref(interp_pool *ip)
{
    pthread_mutex_lock(&ip->lock);
    int last = --ip->refs == 0;
    pthread_mutex_unlock(&ip->lock);
    if (last)
        ipool_free(ip);
}

/* Under ip->lock: stops accepting (with `refused`); returns 1 when the
 * caller is to end the members, 0 when another thread does or did. */
static int
stop_accepting_locked(interp_pool *ip, int refused)
{
    if (ip->accepting) {
        ip->accepting = 0;
        ip->refused = refused;
    }
    if (ip->ending || ip->ended)
        return 0;
    ip->ending = 1;
    return 1;
}

/* ---- the keeper ------------------------------------------------------------ */

/* One pool makes its interpreters at a time, process-wide: CPython's own
 * initialization of an interpreter is not safe to run in two at once
 * (3.13.0 under TSan: the posix module sorts a static table in place
 * while another interpreter imports it, Modules/posixmodule.c).  Taken
 * before entering main, never while holding its GIL. */
static pthread_mutex_t making_lock = PTHREAD_MUTEX_INITIALIZER;

/* What the keeper needs to make the members: on the opener's stack, read
 * until the keeper says they are made. */
typedef struct maker {
    interp_pool *ip;
    const pygate_interp_pool_options *options;
    char *error;
    size_t error_size;
    int rc;
} maker;

/* On the keeper, not attached: makes every member, attached to the main
 * interpreter meanwhile; a failure ends those made. */
static int
make_members(maker *mk)
{
    interp_pool *ip = mk->ip;
    pygate_token tok;
    pthread_mutex_lock(&making_lock);
    int rc = pygate__enter(ip->main_view, &tok);
    if (rc != PYGATE_OK) {
        pthread_mutex_unlock(&making_lock);
        set_error(mk->error, mk->error_size, pygate__strerror(rc));
        return rc;
    }
    PyThreadState *main_ts = PyThreadState_Get();
    for (unsigned i = 0; i < ip->n && rc == PYGATE_OK; i++)
        rc = make_member(&ip->members[i], ip->own_gil, mk->options, main_ts,
                         mk->error, mk->error_size);
    for (unsigned i = 0; rc != PYGATE_OK && i < ip->n; i++)
        end_member(&ip->members[i], main_ts);
    pygate__leave(tok);
    pthread_mutex_unlock(&making_lock);
    return rc;
}

/* On the keeper, not attached: ends every member (their pools closed).
 * Main cannot be entered only once it is past its shutdown hook, whose
 * listener (on_main_shutdown) ends the members first; a pool whose open
 * failed that late leaves them to CPython's Py_FinalizeEx. */
static void
end_all_members(interp_pool *ip)
{
    pygate_token tok;
    if (pygate__enter(ip->main_view, &tok) != PYGATE_OK)
        return;
    PyThreadState *main_ts = PyThreadState_Get();
    for (unsigned i = 0; i < ip->n; i++)
        end_member(&ip->members[i], main_ts);
    pygate__leave(tok);
}

static void *
keeper_main(void *arg)
{
    maker *mk = (maker *)arg;
    interp_pool *ip = mk->ip;
    int rc = make_members(mk);
    pthread_mutex_lock(&ip->lock);
    mk->rc = rc;   /* mk is not to be read after this */
    ip->made = 1;
    pthread_cond_broadcast(&ip->changed);
    while (rc == PYGATE_OK && !ip->end_asked)
        pthread_cond_wait(&ip->changed, &ip->lock);
    pthread_mutex_unlock(&ip->lock);
    if (rc == PYGATE_OK)
        end_all_members(ip);
    /* This thread's state of the main interpreter goes with the thread. */
    return NULL;
}

/* Not attached: starts the keeper and waits until it made the members. */
static int
start_keeper(maker *mk)
{
    interp_pool *ip = mk->ip;
    ip->keeper_pid = getpid();
    if (pygate__thread_create(&ip->keeper, keeper_main, mk) != 0) {
        set_error(mk->error, mk->error_size, "pygate: no thread to make the"
                  " interpreters on");
        return PYGATE_ENOMEM;
    }
    ip->keeper_started = 1;
    pthread_mutex_lock(&ip->lock);
    while (!ip->made)
        pthread_cond_wait(&ip->changed, &ip->lock);
    int rc = mk->rc;
    pthread_mutex_unlock(&ip->lock);
    return rc;
}

/* Not attached: has the keeper end the members, and joins it.  In a child
 * of fork() there is no keeper, and CPython deleted the interpreters
 * (PyOS_AfterFork_Child). */
static void
stop_keeper(interp_pool *ip)
{
    if (!ip->keeper_started || getpid() != ip->keeper_pid)
        return;
    pthread_mutex_lock(&ip->lock);
    ip->end_asked = 1;
    pthread_cond_broadcast(&ip->changed);
    pthread_mutex_unlock(&ip->lock);
    pthread_join(ip->keeper, NULL);
}

/* ---- ending ---------------------------------------------------------------- */

/* Stops accepting (with `refused`), closes every member's pool, and has
 * the keeper end every interpreter.  Any thread but a member's, attached
 * or not (the keeper needs the GIL it may hold).  Idempotent: a second
 * caller waits for the first. */
static void
end_members(interp_pool *ip, int refused)
{
    PyThreadState *attached = pygate__release_if_attached();
    pthread_mutex_lock(&ip->lock);
    int mine = stop_accepting_locked(ip, refused);
    pthread_mutex_unlock(&ip->lock);
    /* At the main interpreter's shutdown the wait for the members' jobs
     * follows its rule; one given up leaves a member's interpreter with a
     * state in use, which CPython cannot end (it aborts: the documented
     * price of a bound). */
    record *shutting = refused == PYGATE_EFINALIZING ? ip->main_rec : NULL;
    if (mine) {
        for (unsigned i = 0; i < ip->n; i++) {
            member *m = &ip->members[i];
            uint64_t counts[3] = {0, 0, 0};
            if (m->pool != NULL && shutting != NULL)
                pygate__pool_close_at_shutdown(m->pool, counts, shutting,
                                               attached);
            else if (m->pool != NULL)
                pygate__pool_close_counting(m->pool, counts);
            pthread_mutex_lock(&ip->lock);
            memcpy(m->counts, counts, sizeof counts);
            pthread_mutex_unlock(&ip->lock);
        }
        stop_keeper(ip);
    }
    pthread_mutex_lock(&ip->lock);
    if (mine) {
        ip->ended = 1;
        pthread_cond_broadcast(&ip->changed);
    }
    while (!ip->ended)
        pthread_cond_wait(&ip->changed, &ip->lock);
    pthread_mutex_unlock(&ip->lock);
    pygate__reattach(attached);
}

/* The main interpreter's shutdown hook calls this (lifecycle.c) on the
 * finalizing thread, attached, before pygate's gate closes. */
static void
on_main_shutdown(void *arg)
{
    interp_pool *ip = (interp_pool *)arg;
    end_members(ip, PYGATE_EFINALIZING);
    ipool_unref(ip);   /* the listener's */
}

/* ---- opening -------------------------------------------------------------- */

static int
open_member_pools(interp_pool *ip, char *error, size_t size)
{
    for (unsigned i = 0; i < ip->n; i++) {
        int rc = pygate__impl_pool_open(ip->members[i].view, &ip->pool_options,
                                  &ip->members[i].pool);
        if (rc != PYGATE_OK) {
            set_error(error, size, pygate__strerror(rc));
            return rc;
        }
        pygate__pool_mark_private(ip->members[i].pool);
    }
    return PYGATE_OK;
}

/* The options of each member's worker pool. */
static pygate_pool_options
member_pool_options(const pygate_interp_pool_options *o)
{
    return (pygate_pool_options){.workers = o->workers != 0 ? o->workers : 1,
                                 .batch = o->batch,
                                 .hold_seconds = o->hold_seconds,
                                 .on_close = o->on_close,
                                 .max_queued = o->max_queued};
}

/* As pygate__pool_options_problem, for an interpreter pool's options. */
static int
ipool_options_problem(const pygate_interp_pool_options *o, char *why,
                      size_t size)
{
    static const char where[] = "pygate_interp_pool_open";
    if (o->interpreters > MAX_INTERPRETERS) {
        snprintf(why, size, "pygate: %s: option interpreters = %u is out of"
                 " range (0 to %d)", where, o->interpreters, MAX_INTERPRETERS);
        return 1;
    }
    pygate_pool_options per = member_pool_options(o);
    return pygate__pool_options_problem(&per, where, why, size);
}

static interp_pool *
ipool_new(const pygate_interp_pool_options *o)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = o->interpreters != 0 ? o->interpreters
                 : cpus > 0 && cpus <= MAX_INTERPRETERS ? (unsigned)cpus
                 : cpus > 0 ? MAX_INTERPRETERS : 1;
    interp_pool *ip = (interp_pool *)pygate__calloc(1, sizeof *ip);
    if (ip == NULL)
        return NULL;
    ip->members = (member *)pygate__calloc(n, sizeof(member));
    if (ip->members == NULL) {
        free(ip);
        return NULL;
    }
    ip->n = n;
    ip->own_gil = COMPAT_HAS_OWN_GIL && !o->shared_gil;
    /* Free-threaded: no GIL to share, whatever the interpreters' settings. */
    ip->parallel = ip->own_gil || COMPAT_FREE_THREADED;
    ip->pool_options = member_pool_options(o);
    ip->accepting = 1;
    ip->refs = 1;   /* the handle's */
    pthread_mutex_init(&ip->lock, NULL);
    pygate__cond_init(&ip->changed);
    return ip;
}

/* Makes the members and their pools, and listens to the main
 * interpreter's shutdown.  Nothing attached. */
static int
ipool_start(interp_pool *ip, const pygate_interp_pool_options *o,
            char *error, size_t size)
{
    maker mk = {ip, o, error, size, PYGATE_OK};
    int rc = start_keeper(&mk);
    if (rc == PYGATE_OK)
        rc = open_member_pools(ip, error, size);
    if (rc != PYGATE_OK)
        return rc;
    ip->main_rec = pygate__view_record(ip->main_view);
    pygate__record_ref(ip->main_rec);
    ip->listener.fn = on_main_shutdown;
    ip->listener.arg = ip;
    rc = pygate__record_listen(ip->main_rec, &ip->listener);
    if (rc != PYGATE_OK) {
        set_error(error, size, pygate__strerror(rc));
        return rc;
    }
    ip->refs++;   /* the listener's */
    return PYGATE_OK;
}

int
pygate__impl_interp_pool_open(const pygate_interp_pool_options *options,
                              pygate_interp_pool **out, char *error,
                              size_t error_size)
{
    static const pygate_interp_pool_options defaults = {0};
    const pygate_interp_pool_options *o = options != NULL ? options
                                                          : &defaults;
    set_error(error, error_size, "");
    char why[160];
    if (ipool_options_problem(o, why, sizeof why)) {
        set_error(error, error_size, why);
        return PYGATE_EINVAL;
    }
    if (out == NULL) {
        set_error(error, error_size, "pygate: pygate_interp_pool_open: out"
                  " is NULL");
        return PYGATE_EINVAL;
    }
    interp_pool *ip = ipool_new(o);
    handle_slot *slot = NULL;
    int rc = ip == NULL ? PYGATE_ENOMEM
                        : pygate_view_from_main(&ip->main_view);
    if (rc == PYGATE_OK && (ip->handle = pygate__handle_new(
                                HANDLE_INTERP_POOL, &slot)) == 0)
        rc = PYGATE_ENOMEM;
    if (rc != PYGATE_OK) {
        if (ip != NULL)
            ipool_free(ip);
        set_error(error, error_size, pygate__strerror(rc));
        return rc;
    }
    /* The keeper needs the GIL the caller may hold. */
    PyThreadState *attached = pygate__release_if_attached();
    rc = ipool_start(ip, o, error, error_size);
    pygate__reattach(attached);
    if (rc != PYGATE_OK) {
        end_members(ip, PYGATE_ECLOSED);
        pygate__handle_close(ip->handle, HANDLE_INTERP_POOL);
        ipool_unref(ip);
        return rc;
    }
    slot->object = ip;
    *out = (pygate_interp_pool *)ip->handle;
    return PYGATE_OK;
}

/* ---- the rest of the API --------------------------------------------------- */

/* The pool of a live handle, under a use bracket (as pygate__pool_use). */
static interp_pool *
ipool_use(pygate_interp_pool *handle, handle_slot **slot)
{
    *slot = pygate__handle_use((uintptr_t)handle, HANDLE_INTERP_POOL);
    if (*slot != NULL && (*slot)->object == NULL) {
        pygate__handle_unuse(*slot);
        *slot = NULL;
    }
    return *slot != NULL ? (interp_pool *)(*slot)->object : NULL;
}

/* Whether the calling thread is attached to one of ip's interpreters. */
static int
attached_inside(interp_pool *ip)
{
    PyThreadState *ts = pygate__compat_current_tstate();
    PyInterpreterState *interp = ts != NULL ? PyThreadState_GetInterpreter(ts)
                                            : NULL;
    for (unsigned i = 0; interp != NULL && i < ip->n; i++)
        if (ip->members[i].interp == interp)
            return 1;
    return 0;
}

int
pygate__impl_interp_pool_close(pygate_interp_pool *handle)
{
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    int inside = attached_inside(ip);
    /* Submitters waiting for room in a member are inside this handle's
     * use brackets, which the close drains: they are refused first. */
    for (unsigned i = 0; !inside && i < ip->n; i++)
        pygate__pool_refuse(ip->members[i].pool, PYGATE_ECLOSED);
    pygate__handle_unuse(slot);
    if (inside)
        return PYGATE_EBUSY;   /* it would end its own interpreter */
    if (!pygate__handle_close_drained((uintptr_t)handle, HANDLE_INTERP_POOL))
        return PYGATE_EINVAL;  /* another thread closed it meanwhile */
    end_members(ip, PYGATE_ECLOSED);
    if (pygate__record_unlisten(ip->main_rec, &ip->listener))
        ipool_unref(ip);   /* the listener's, never called */
    ipool_unref(ip);       /* the handle's */
    return PYGATE_OK;
}

int
pygate__impl_interp_pool_size(pygate_interp_pool *handle)
{
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    int n = (int)ip->n;
    pygate__handle_unuse(slot);
    return n;
}

int
pygate__impl_interp_pool_parallel(pygate_interp_pool *handle)
{
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    int parallel = ip->parallel;
    pygate__handle_unuse(slot);
    return parallel;
}

/* Under a use bracket: whether ip accepts, else why not in *refused. */
static int
ipool_accepting(interp_pool *ip, int *refused)
{
    pthread_mutex_lock(&ip->lock);
    int yes = ip->accepting;
    *refused = ip->refused;
    pthread_mutex_unlock(&ip->lock);
    return yes;
}

int
pygate__impl_interp_pool_view(pygate_interp_pool *handle, int index,
                              pygate_view **out)
{
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    int rc = PYGATE_EINVAL;
    if (out != NULL && index >= 0 && (unsigned)index < ip->n)
        rc = ipool_accepting(ip, &rc) ? pygate__view_new_for(
                 pygate__view_record(ip->members[index].view), out)
                                : rc;
    pygate__handle_unuse(slot);
    return rc;
}

/* The member with the fewest jobs queued or running, looking from a
 * rotating start so that ties spread. */
static unsigned
least_busy(interp_pool *ip)
{
    unsigned start = atomic_fetch_add_explicit(&ip->next, 1,
                                               memory_order_relaxed);
    unsigned best = start % ip->n;
    uint64_t best_load = UINT64_MAX;
    for (unsigned k = 0; k < ip->n && best_load != 0; k++) {
        unsigned i = (start + k) % ip->n;
        uint64_t s = 0, c = 0, x = 0;
        if (pygate__impl_pool_counts(ip->members[i].pool, &s, &c, &x)
                != PYGATE_OK)
            continue;
        if (s - c - x < best_load) {
            best_load = s - c - x;
            best = i;
        }
    }
    return best;
}

/* Queues fn(arg) on member `index` (or the least busy): with a handle in
 * *job (job NULL: nobody waits), or with a completion callback (done not
 * NULL; then job is NULL). */
static int
ipool_submit_to(interp_pool *ip, int index, pygate_job_fn fn, void *arg,
                pygate_job **job, pygate_done_fn done, void *done_arg)
{
    int refused;
    if (fn == NULL || index < PYGATE_ANY_INTERP || index >= (int)ip->n)
        return PYGATE_EINVAL;
    if (!ipool_accepting(ip, &refused))
        return refused;
    unsigned i = index >= 0 ? (unsigned)index : least_busy(ip);
    pygate_pool *member = ip->members[i].pool;
    int rc = done != NULL ? pygate__impl_pool_submit_then(member, fn, arg,
                                                          done, done_arg)
                          : pygate__impl_pool_submit(member, fn, arg, job);
    /* The member's pool closed meanwhile: say why. */
    if ((rc == PYGATE_EINVAL || rc == PYGATE_ECLOSED)
            && !ipool_accepting(ip, &refused))
        return refused;
    return rc;
}

int
pygate__impl_interp_pool_submit(pygate_interp_pool *handle, int index,
                                pygate_job_fn fn, void *arg, pygate_job **job)
{
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    int rc = ipool_submit_to(ip, index, fn, arg, job, NULL, NULL);
    pygate__handle_unuse(slot);
    return rc;
}

int
pygate__impl_interp_pool_submit_then(pygate_interp_pool *handle, int index,
                                     pygate_job_fn fn, void *arg,
                                     pygate_done_fn done, void *done_arg)
{
    if (done == NULL)
        return PYGATE_EINVAL;
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    int rc = ipool_submit_to(ip, index, fn, arg, NULL, done, done_arg);
    pygate__handle_unuse(slot);
    return rc;
}

int
pygate__impl_interp_pool_counts(pygate_interp_pool *handle,
                                uint64_t *submitted, uint64_t *completed,
                                uint64_t *cancelled)
{
    handle_slot *slot;
    interp_pool *ip = ipool_use(handle, &slot);
    if (ip == NULL)
        return PYGATE_EINVAL;
    uint64_t sum[3] = {0, 0, 0};
    for (unsigned i = 0; i < ip->n; i++) {
        uint64_t c[3] = {0, 0, 0};
        if (pygate__impl_pool_counts(ip->members[i].pool, &c[0], &c[1], &c[2])
                != PYGATE_OK) {
            /* Closed: its final counts (0 for the moment between its
             * close and their copy, while the pool closes). */
            pthread_mutex_lock(&ip->lock);
            memcpy(c, ip->members[i].counts, sizeof c);
            pthread_mutex_unlock(&ip->lock);
        }
        for (int k = 0; k < 3; k++)
            sum[k] += c[k];
    }
    pygate__handle_unuse(slot);
    if (submitted != NULL)
        *submitted = sum[0];
    if (completed != NULL)
        *completed = sum[1];
    if (cancelled != NULL)
        *cancelled = sum[2];
    return PYGATE_OK;
}
