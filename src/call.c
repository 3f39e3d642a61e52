/*
 * call.c - pygate_call(): many native threads calling Python at once,
 * combined (flat combining).
 *
 * A caller that finds nobody combining becomes the combiner: it enters
 * once, runs its own call, then every request published meanwhile, in
 * order, until none is left (giving the GIL up between rounds after
 * COMBINE_HOLD seconds, so Python threads still run).  A caller that finds
 * a combiner publishes its request on the interpreter's record (a
 * lock-free stack) and waits for it to be marked done, or for the
 * combiner to go so that it can become one, or for WITHDRAW_AFTER, after
 * which it takes the request back and enters itself (the combiner may be
 * stuck in a call that waits for this one).  N threads calling at once
 * then cost one GIL hand-off per round instead of one per call, and a
 * lone caller costs an entry and two atomic operations more.  When every
 * caller published its own request too, one thread made half the calls
 * an entry makes (5.1 against 10.7 M/s, 3.12.1) and eight together no
 * more than that one (4.3-4.7 M/s).  The price: a request runs on the
 * combiner's thread state, so it sees that thread's
 * threading.get_ident() and threading.local(); pygate_enter() is the way
 * to run on the caller's own.
 *
 * Without a GIL (free-threaded CPython) there is no hold to share, and a
 * combiner would run in turn calls that can run side by side: there each
 * caller enters and runs its own call (two threads of empty calls: 12.4 M
 * calls/s together, against 5.0 M combined; 3.14.7t, pygate_bench).
 */
#include "internal.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define COMBINE_HOLD 0.005     /* seconds: CPython's default switch interval */
#define WAIT_RECHECK_NS 1000000L
/* A waiter yields the CPU this many times, looking at its request between
 * yields, before it sleeps on the futex.  A combiner runs a short call in
 * less time than a sleep and wake-up take (microseconds each, and a system
 * call for the combiner): with waiters that sleep at once, N threads of
 * short calls ran at a fraction of one thread's rate; yielding lets the
 * combiner's core go on running calls while the waiters' cores republish.
 * Bounded, so that a long call costs its waiters ~50 yields, not a core. */
#define WAIT_SPIN_YIELDS 50

/* A waiter whose request no combiner has taken this long takes it back
 * and enters itself.  A combiner runs requests in rounds of COMBINE_HOLD,
 * so only a combiner stuck in a call does not take a request this long;
 * and its call may be waiting for this very waiter (fn waiting for another
 * thread's pygate_call, having detached): without taking it back, each
 * would wait for the other for ever. */
#define WITHDRAW_AFTER (10 * COMBINE_HOLD)

/* A request's state, a futex word of bits: the owner sets SLEEPING before
 * it sleeps (so the combiner makes the wake-up system call only for owners
 * that sleep) and WITHDRAWN when it takes the request back; a combiner
 * sets TAKEN when it starts the request and DONE when it has run it.
 * WITHDRAWN and TAKEN exclude each other: whichever comes first wins. */
enum {
    CALL_PENDING = 0,
    CALL_SLEEPING = 1,
    CALL_DONE = 2,
    CALL_TAKEN = 4,
    CALL_WITHDRAWN = 8
};

/* A published request has two holders (slab_shared): its owner, and the
 * combiner that takes it off the list; the last to let go frees it (one
 * taken back stays on the list until a combiner stops or takes it off).
 * A lone caller's own request is never published, and lives on its
 * stack. */
typedef struct call_request {
    slab_shared hold;
    pygate_job_fn fn;
    void *arg;
    int result;
    int rc;
    _Atomic uint32_t state;    /* CALL_* bits */
    struct call_request *next;
} call_request;

/* Runs fn attached by the entry tok; an exception it leaves is reported
 * to sys.unraisablehook (nobody on this thread could receive it).  The
 * entry's state is looked at directly: PyErr_Occurred() would look the
 * current state up again. */
static int
run_attached(pygate_token tok, pygate_job_fn fn, void *arg, int *result)
{
    *result = fn(arg);
    if (!compat_tstate_has_exception(pygate__token_tstate(tok)))
        return PYGATE_OK;
    PyErr_WriteUnraisable(NULL);
    return PYGATE_EEXCEPTION;
}

static void
mark_done(call_request *r)
{
    /* The combiner still holds r: the wake reaches r, even if its owner
     * returned meanwhile. */
    uint32_t was = atomic_exchange_explicit(&r->state,
                                            CALL_DONE | CALL_TAKEN,
                                            memory_order_acq_rel);
    if (was & CALL_SLEEPING)
        syscall(SYS_futex, &r->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int
is_done(call_request *r)
{
    return (atomic_load_explicit(&r->state, memory_order_acquire)
            & CALL_DONE) != 0;
}

/* Runs the published requests, oldest first; with rc != PYGATE_OK (the
 * combiner could not enter) fails them with rc instead.  Returns how many
 * it took. */
static int
run_published(record *rec, pygate_token tok, int rc)
{
    call_request *list = atomic_exchange_explicit(&rec->calls.requests, NULL,
                                                  memory_order_acquire);
    call_request *fifo = NULL;
    while (list != NULL) {   /* the stack is newest first */
        call_request *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    int n = 0;
    while (fifo != NULL) {
        call_request *next = fifo->next;
        uint32_t was = atomic_fetch_or_explicit(&fifo->state, CALL_TAKEN,
                                                memory_order_acq_rel);
        if (!(was & CALL_WITHDRAWN)) {   /* else its owner runs it */
            fifo->rc = rc == PYGATE_OK
                           ? run_attached(tok, fifo->fn, fifo->arg,
                                          &fifo->result)
                           : rc;
            mark_done(fifo);
        }
        pygate__slab_let_go(&fifo->hold);
        fifo = next;
        n++;
    }
    return n;
}

/* Runs the requests published while this thread combines, oldest first,
 * until none is left, or until own is done and it has combined for
 * COMBINE_HOLD (another waiting thread takes over then, so that no caller
 * serves the others for ever).  Entered (rc PYGATE_OK) or not (rc, which
 * the requests then fail with). */
static void
run_rounds(pygate_view *view, record *rec, call_request *own,
           pygate_token *tok, int *rc)
{
    double start = pygate__now();
    while (run_published(rec, *tok, *rc) > 0) {
        if (*rc != PYGATE_OK || pygate__now() - start < COMBINE_HOLD)
            continue;
        if (is_done(own))
            break;
        pygate__leave(*tok);   /* let Python threads have the GIL */
        *rc = pygate__enter(view, tok);
        start = pygate__now();
    }
}

static void
publish(record *rec, call_request *r)
{
    call_request *_Atomic *requests = &rec->calls.requests;
    r->next = atomic_load_explicit(requests, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(requests, &r->next, r,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
}

/* Lets go of the requests on rec's list that their owners took back, and
 * puts the others back in their order.  Called by the combiner, which
 * alone takes requests off the list, as it stops: one taken back while it
 * combined would otherwise stay on the list until the next combiner. */
static void
drop_withdrawn(record *rec)
{
    call_request *list = atomic_exchange_explicit(&rec->calls.requests, NULL,
                                                  memory_order_acquire);
    call_request *kept = NULL;   /* oldest first */
    while (list != NULL) {
        call_request *next = list->next;
        if (atomic_load_explicit(&list->state, memory_order_acquire)
                & CALL_WITHDRAWN) {
            pygate__slab_let_go(&list->hold);
        } else {
            list->next = kept;
            kept = list;
        }
        list = next;
    }
    while (kept != NULL) {
        call_request *next = kept->next;
        publish(rec, kept);
        kept = next;
    }
}

/* Becomes the combiner if nobody is: enters once, runs own first when
 * own_first (own is not published: its caller found nobody combining,
 * just after it had rec from view, and nothing attached), then the
 * requests published meanwhile (run_rounds).  Returns 0 if another thread
 * is the combiner. */
static int
combine(pygate_view *view, record *rec, call_request *own, int own_first)
{
    record_calls *calls = &rec->calls;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&calls->combining, &idle, 1))
        return 0;
    do {
        pygate_token tok;
        int rc = own_first ? pygate__enter_record(rec, 1, &tok, __FILE__,
                                                  __LINE__)
                           : pygate__enter(view, &tok);
        if (own_first) {   /* then own is done, and this loop runs once */
            own->rc = rc == PYGATE_OK
                          ? run_attached(tok, own->fn, own->arg, &own->result)
                          : rc;
            atomic_store_explicit(&own->state, CALL_DONE,
                                  memory_order_relaxed);
        }
        if (atomic_load_explicit(&calls->requests, memory_order_relaxed)
                != NULL)
            run_rounds(view, rec, own, &tok, &rc);
        if (rc == PYGATE_OK)
            pygate__leave(tok);
        if (atomic_load_explicit(&calls->requests, memory_order_relaxed)
                != NULL)
            drop_withdrawn(rec);
        atomic_store_explicit(&calls->combining, 0, memory_order_seq_cst);
        /* A request published after the last look, whose owner saw this
         * thread combining, would otherwise wait for its next recheck. */
        idle = 0;
    } while (!is_done(own)
             && atomic_load_explicit(&calls->requests, memory_order_seq_cst)
                    != NULL
             && atomic_compare_exchange_strong(&calls->combining, &idle, 1));
    /* Requests still published: wake the newest one's owner to take over
     * rather than let it sleep out its recheck.  Only its address is used
     * (it may be done and gone meanwhile: a spurious wake-up at worst). */
    call_request *next = atomic_load_explicit(&calls->requests,
                                              memory_order_seq_cst);
    if (next != NULL)
        syscall(SYS_futex, &next->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
                0);
    return 1;
}

/* Waits for r to be done: yields first (see WAIT_SPIN_YIELDS), then
 * sleeps a millisecond at a time (a combiner may have finished between r's
 * publication and its last look). */
static void
wait_briefly(call_request *r)
{
    for (int i = 0; i < WAIT_SPIN_YIELDS; i++) {
        if (is_done(r))
            return;
        sched_yield();
    }
    uint32_t s = atomic_load_explicit(&r->state, memory_order_acquire);
    if (s & CALL_DONE)
        return;
    if (!(s & CALL_SLEEPING)
            && !atomic_compare_exchange_strong(&r->state, &s,
                                               s | CALL_SLEEPING))
        return;   /* changed meanwhile: look again */
    struct timespec ts = {0, WAIT_RECHECK_NS};
    syscall(SYS_futex, &r->state, FUTEX_WAIT_PRIVATE, s | CALL_SLEEPING,
            &ts, NULL, 0);
}

/* Takes r back, unless a combiner took it first. */
static int
withdraw(call_request *r)
{
    uint32_t s = atomic_load_explicit(&r->state, memory_order_acquire);
    while (!(s & (CALL_TAKEN | CALL_DONE)))
        if (atomic_compare_exchange_weak(&r->state, &s, s | CALL_WITHDRAWN))
            return 1;
    return 0;
}

/* Enters as pygate_enter() does (nested when already in) and runs fn.
 * `detached`: the caller saw nothing attached on this thread. */
static int
call_alone(record *rec, int detached, pygate_job_fn fn, void *arg,
           int *out)
{
    pygate_token tok;
    int rc = pygate__enter_record(rec, detached, &tok, __FILE__, __LINE__);
    if (rc != PYGATE_OK)
        return rc;
    rc = run_attached(tok, fn, arg, out);
    pygate__leave(tok);
    return rc;
}

/* Publishes fn(arg) for the combiner, and waits for it to be run (or
 * becomes the combiner itself), or takes it back after WITHDRAW_AFTER and
 * enters itself. */
static int
ask_combiner(pygate_view *view, record *rec, pygate_job_fn fn, void *arg,
             int *out)
{
    pygate_thread *t = pygate__thread_self(1);
    call_request *r = (call_request *)pygate__slab_alloc(
        t != NULL ? &t->pools.call_request_slab : NULL, sizeof *r);
    if (r == NULL)   /* no memory to ask with: enter instead */
        return call_alone(rec, 1, fn, arg, out);
    atomic_init(&r->hold.holders, 2);
    r->fn = fn;
    r->arg = arg;
    r->rc = PYGATE_OK;
    publish(rec, r);
    double since = pygate__now();
    while (!is_done(r)) {
        if (combine(view, rec, r, 0))
            continue;
        if (pygate__now() - since > WITHDRAW_AFTER && withdraw(r)) {
            pygate__slab_let_go(&r->hold);
            return call_alone(rec, 1, fn, arg, out);
        }
        wait_briefly(r);
    }
    *out = r->result;
    int rc = r->rc;
    pygate__slab_let_go(&r->hold);
    return rc;
}

int
pygate__impl_call(pygate_view *view, pygate_job_fn fn, void *arg,
                  int *result)
{
    record *rec = pygate__view_record(view);
    if (rec == NULL || fn == NULL)
        return PYGATE_EINVAL;
    int ignored;
    int *out = result != NULL ? result : &ignored;
    /* Attached (holding a GIL): never wait for a combiner, which may need
     * that very GIL.  Free-threaded: always (no GIL hold to share). */
    if (COMPAT_FREE_THREADED || pygate__compat_current_tstate() != NULL)
        return call_alone(rec, 0, fn, arg, out);
    call_request own = {{0}, fn, arg, 0, PYGATE_OK, CALL_PENDING, NULL};
    if (combine(view, rec, &own, 1)) {
        *out = own.result;
        return own.rc;
    }
    return ask_combiner(view, rec, fn, arg, out);
}
