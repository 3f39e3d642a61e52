/*
 * fuzz_api.c - a libFuzzer target: random sequences of pygate calls from
 * four threads and two interpreters, misuse included, each step checked
 * against a model of what it must do.
 *
 * An input is a list of steps, three bytes each: an operation, the actor
 * (thread) that runs it, and an argument (which slot, which variant).
 * Actor 0 is the main thread, the one that called pygate_host_init; actors
 * 1-3 are native threads that live for the whole run and take their steps
 * one at a time from the main thread, so a sequence replays the same way.
 * While an actor is attached, the steps go to it (any other actor would
 * only wait for the GIL it holds).  The second interpreter is a member of
 * an interpreter pool that a step opens and another closes, on a thread of
 * its own so that the close can wait for the actors' entries and guards.
 * The last step may fork: the child shuts Python down (pygate_host_fork,
 * then pygate_host_shutdown) while a thread of its own enters and leaves,
 * and must exit within a bound.
 *
 * After every step the actor checks that the call returned a code the
 * model allows (exactly one where the outcome is determined, a documented
 * set where it depends on timing: an interpreter that may be closing), and
 * that pygate_thread_depth(), whether the thread is attached, to which
 * interpreter, and whether a Python exception is set match the model.
 * After every input everything is unwound, and references dropped with
 * pygate_decref must all be gone (refcounts checked).  A mismatch prints
 * the step and aborts, which libFuzzer reports with the input.
 *
 * make fuzz: an hour from tests/fuzz_corpus, kept; make test: a minute
 * (ctest fuzz.one_minute in the clang run, under ASan and UBSan).
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

enum {
    ACTORS = 4, VIEWS = 4, GUARDS = 4, JOBS = 4, OBJECTS = 2,
    MAX_FRAMES = 12, MAX_STEPS = 48
};

/* Interpreters by slot: the main one, and the interpreter pool's member. */
enum { MAIN = 0, MEMBER = 1, INTERPS = 2 };

/* The member's life in an input: none yet, open, or closing (a thread is
 * in pygate_interp_pool_close, or has returned from it). */
typedef enum { NONE, OPEN, CLOSING } life;

typedef enum { F_ENTER, F_COUNTED, F_DETACH } frame_kind;

typedef struct mframe {
    frame_kind kind;
    int interp;
    pygate_token token;
} mframe;

typedef struct actor {
    int index;
    mframe frames[MAX_FRAMES];
    int nframes;
    int exception;          /* set on the state it is attached to */
    pygate_token stale;     /* a token left (misuse) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const uint8_t *step;    /* to run; NULL when idle */
    void (*fn)(struct actor *, const uint8_t *);
} actor;

typedef struct slot_view {
    pygate_view *view;
    int interp;
} slot_view;

typedef struct slot_object {
    PyObject *obj;          /* a list of main, with `owned` extra refs */
    int owned;
} slot_object;

static struct model {
    actor actors[ACTORS];
    slot_view views[VIEWS];
    pygate_view *closed_view;   /* a handle closed earlier (misuse) */
    pygate_guard *guards[GUARDS];
    int guard_interp[GUARDS];
    pygate_guard *closed_guard;
    pygate_pool *pool;
    pygate_job *jobs[JOBS];
    int job_result[JOBS];       /* what the job returns; -1: it raises */
    slot_object objects[OBJECTS];
    life member;
    pygate_interp_pool *ipool;
    pthread_t closer;
    int step;
    int forked;
} m;

static pygate_view *main_view_;
static int ipools_opened;
enum { MAX_IPOOLS_OPENED = 300 };
static atomic_int ipool_close_rc;

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

static void
fail(const actor *a, const char *what, int rc)
{
    fprintf(stderr, "fuzz_api: step %d, actor %d: %s (got %s)\n", m.step,
            a != NULL ? a->index : -1, what, pygate_err_name(rc));
    abort();
}

static void
want(const actor *a, int rc, int expected, const char *call)
{
    if (rc != expected) {
        char what[160];
        snprintf(what, sizeof what, "%s: wanted %s", call,
                 pygate_err_name(expected));
        fail(a, what, rc);
    }
}

/* rc must be one of the codes in allowed (terminated by 1). */
static void
want_one_of(const actor *a, int rc, const int *allowed, const char *call)
{
    for (const int *p = allowed; *p != 1; p++)
        if (rc == *p)
            return;
    char what[160];
    snprintf(what, sizeof what, "%s: not a code the model allows", call);
    fail(a, what, rc);
}

/* The actor's innermost frame in the model (it has one). */
static const mframe *
top(const actor *a)
{
    return &a->frames[a->nframes - 1];
}

/* The interpreter the actor is attached to in the model, or -1. */
static int
attached_to(const actor *a)
{
    if (a->nframes == 0 || top(a)->kind == F_DETACH)
        return -1;
    return top(a)->interp;
}

/* The thread as pygate and CPython see it must be the model's. */
static void
check_state(const actor *a)
{
    if ((int)pygate_thread_depth() != a->nframes)
        fail(a, "pygate_thread_depth() differs from the model", 0);
    PyThreadState *ts = attached_state();
    int interp = attached_to(a);
    if ((ts != NULL) != (interp >= 0))
        fail(a, interp >= 0 ? "not attached, the model is"
                            : "attached, the model is not", 0);
    if (ts == NULL)
        return;
#if PY_VERSION_HEX >= 0x03090000
    int64_t id = PyInterpreterState_GetID(PyThreadState_GetInterpreter(ts));
#else
    int64_t id = PyInterpreterState_GetID(ts->interp);
#endif
    if (interp == MAIN ? id != 0 : id == 0)
        fail(a, "attached to another interpreter than the model's", 0);
    if ((PyErr_Occurred() != NULL) != (a->exception != 0))
        fail(a, "the exception state differs from the model", 0);
}

/* ------------------------------------------------------------------------ */
/* The model's frames                                                       */
/* ------------------------------------------------------------------------ */

static void
push(actor *a, frame_kind kind, int interp, pygate_token token)
{
    mframe *f = &a->frames[a->nframes++];
    f->kind = kind;
    f->interp = interp;
    f->token = token;
}

static frame_kind
entry_kind(const actor *a, int interp)
{
    return attached_to(a) == interp ? F_COUNTED : F_ENTER;
}

/* Codes an entry into interp may return, by the member's life. */
static const int *
entry_codes(int interp)
{
    static const int ok[] = {PYGATE_OK, 1};
    static const int closing[] = {PYGATE_OK, PYGATE_EFINALIZING, PYGATE_EGONE,
                                  1};
    return interp == MAIN || m.member == OPEN ? ok : closing;
}

/* An entry's frame when rc is OK.  Entering attached to another
 * interpreter takes the exception state of the entered one (none). */
static void
entered(actor *a, int interp, int rc, pygate_token token)
{
    if (rc != PYGATE_OK)
        return;
    frame_kind kind = entry_kind(a, interp);
    if (kind == F_ENTER && a->exception)
        fail(a, "the model let an entry start with an exception set", rc);
    push(a, kind, interp, token);
}

/* ------------------------------------------------------------------------ */
/* Operations, each run on its actor's thread                               */
/* ------------------------------------------------------------------------ */

static slot_view *
view_slot(const uint8_t *s)
{
    return &m.views[s[2] % VIEWS];
}

/* A view of the slot, or (misuse) a closed one when the slot is empty. */
static pygate_view *
view_or_closed(const slot_view *sv)
{
    return sv->view != NULL ? sv->view : m.closed_view;
}

static void
forget_view(slot_view *sv)
{
    want(NULL, pygate_view_close(sv->view), PYGATE_OK, "pygate_view_close");
    sv->view = NULL;
}

static void
op_view(actor *a, const uint8_t *s)
{
    slot_view *sv = view_slot(s);
    if (sv->view != NULL)
        forget_view(sv);
    pygate_view *v = NULL;
    int rc;
    if (s[2] & 0x10 && m.member != NONE) {
        rc = pygate_interp_pool_view(m.ipool, 0, &v);
        static const int closing[] = {PYGATE_OK, PYGATE_EINVAL, 1};
        if (m.member == OPEN)
            want(a, rc, PYGATE_OK, "pygate_interp_pool_view");
        want_one_of(a, rc, closing, "pygate_interp_pool_view");
        sv->interp = MEMBER;
    } else if (s[2] & 0x20) {
        rc = pygate_view_from_current(&v);
        int interp = attached_to(a);
        want(a, rc, interp >= 0 ? PYGATE_OK : PYGATE_ENOTATTACHED,
             "pygate_view_from_current");
        sv->interp = interp;
    } else {
        rc = pygate_view_from_main(&v);
        want(a, rc, PYGATE_OK, "pygate_view_from_main");
        sv->interp = MAIN;
    }
    if (rc == PYGATE_OK)
        sv->view = v;
}

static void
op_view_close(actor *a, const uint8_t *s)
{
    slot_view *sv = view_slot(s);
    if (sv->view == NULL) {
        want(a, pygate_view_close(m.closed_view), PYGATE_EINVAL,
             "pygate_view_close of a closed view");
        return;
    }
    m.closed_view = sv->view;
    want(a, pygate_view_close(sv->view), PYGATE_OK, "pygate_view_close");
    sv->view = NULL;
}

static void
op_enter(actor *a, const uint8_t *s)
{
    slot_view *sv = view_slot(s);
    pygate_token token;
    if (a->exception || a->nframes == MAX_FRAMES)
        return;
    int rc = pygate_enter(view_or_closed(sv), &token);
    if (sv->view == NULL) {
        want(a, rc, PYGATE_EINVAL, "pygate_enter through a closed view");
        return;
    }
    want_one_of(a, rc, entry_codes(sv->interp), "pygate_enter");
    entered(a, sv->interp, rc, token);
}

static int
same_token(pygate_token x, pygate_token y)
{
    return x.thread_ == y.thread_ && x.level_ == y.level_
           && x.kind_ == y.kind_;
}

static void
op_leave(actor *a, const uint8_t *s)
{
    if (s[2] & 1) {                  /* misuse: a token not innermost */
        pygate_token token = a->stale;
        if (a->nframes >= 2 && s[2] & 2)
            token = a->frames[0].token;
        else if (s[2] & 2)
            token = m.actors[(a->index + 1) % ACTORS].stale;
        if (a->nframes > 0 && same_token(token, top(a)->token))
            return;   /* a token names a level, not one entry: this is fine */
        int rc = token.thread_ == NULL ? PYGATE_ENOTENTERED
                                       : pygate_leave(token);
        static const int misuse[] = {PYGATE_ENOTENTERED, PYGATE_EWRONGTHREAD,
                                     PYGATE_EUNBALANCED, 1};
        want_one_of(a, rc, misuse, "pygate_leave with a wrong token");
        return;
    }
    if (a->nframes == 0 || top(a)->kind == F_DETACH)
        return;
    const mframe *f = top(a);
    int rc = pygate_leave(f->token);
    if (f->kind == F_ENTER && a->exception) {
        want(a, rc, PYGATE_EEXCEPTION, "pygate_leave with an exception set");
        return;
    }
    want(a, rc, PYGATE_OK, "pygate_leave");
    a->stale = f->token;
    if (f->kind == F_ENTER)
        a->exception = 0;    /* the outer state had none: see entered() */
    a->nframes--;
}

static void
op_detach(actor *a, const uint8_t *s)
{
    (void)s;
    if (a->nframes == MAX_FRAMES)
        return;
    pygate_token token;
    int rc = pygate_detach(&token);
    int interp = attached_to(a);
    if (interp < 0) {
        want(a, rc, PYGATE_ENOTATTACHED, "pygate_detach, not attached");
        return;
    }
    if (a->exception) {
        want(a, rc, PYGATE_EEXCEPTION, "pygate_detach with an exception set");
        return;
    }
    want(a, rc, PYGATE_OK, "pygate_detach");
    push(a, F_DETACH, interp, token);
}

static void
op_reattach(actor *a, const uint8_t *s)
{
    (void)s;
    if (a->nframes == 0 || top(a)->kind != F_DETACH) {
        if (a->nframes > 0 && same_token(a->stale, top(a)->token))
            return;
        int rc = pygate_reattach(a->stale);
        static const int misuse[] = {PYGATE_ENOTENTERED, PYGATE_EWRONGTHREAD,
                                     PYGATE_EUNBALANCED, 1};
        want_one_of(a, rc, misuse, "pygate_reattach without a detach");
        return;
    }
    want(a, pygate_reattach(top(a)->token), PYGATE_OK,
         "pygate_reattach");
    a->stale = a->frames[--a->nframes].token;
}

static void
op_raise(actor *a, const uint8_t *s)
{
    if (attached_to(a) < 0)
        return;
    if (s[2] & 1) {
        PyErr_Clear();
        a->exception = 0;
    } else {
        PyErr_SetString(PyExc_RuntimeError, "raised by the fuzzer");
        a->exception = 1;
    }
}

static void
op_guard(actor *a, const uint8_t *s)
{
    int g = s[2] % GUARDS;
    if (m.guards[g] != NULL) {
        m.closed_guard = m.guards[g];
        want(a, pygate_guard_close(m.guards[g]), PYGATE_OK,
             "pygate_guard_close");
        m.guards[g] = NULL;
        return;
    }
    if (s[2] & 0x40) {
        want(a, pygate_guard_close(m.closed_guard), PYGATE_EINVAL,
             "pygate_guard_close twice");
        return;
    }
    slot_view *sv = &m.views[(s[2] >> 2) % VIEWS];
    int rc = pygate_guard_from_view(view_or_closed(sv), &m.guards[g]);
    if (sv->view == NULL) {
        want(a, rc, PYGATE_EINVAL, "pygate_guard_from_view, closed view");
        return;
    }
    want_one_of(a, rc, entry_codes(sv->interp), "pygate_guard_from_view");
    m.guard_interp[g] = sv->interp;
    if (rc != PYGATE_OK)
        m.guards[g] = NULL;
}

static void
op_enter_guarded(actor *a, const uint8_t *s)
{
    int g = s[2] % GUARDS;
    pygate_token token;
    if (a->exception || a->nframes == MAX_FRAMES)
        return;
    pygate_guard *guard = m.guards[g] != NULL ? m.guards[g] : m.closed_guard;
    int rc = pygate_enter_guarded(guard, &token);
    if (m.guards[g] == NULL) {
        want(a, rc, PYGATE_EINVAL, "pygate_enter_guarded, closed guard");
        return;
    }
    want(a, rc, PYGATE_OK, "pygate_enter_guarded");
    entered(a, m.guard_interp[g], rc, token);
}

static void
op_object(actor *a, const uint8_t *s)
{
    slot_object *o = &m.objects[s[2] % OBJECTS];
    if (o->obj == NULL) {             /* made attached to main */
        if (attached_to(a) != MAIN || a->exception)
            return;
        o->obj = PyList_New(0);
        o->owned = 1 + s[2] % 7;
        for (int i = 0; i < o->owned; i++)
            Py_INCREF(o->obj);
        return;
    }
    if (o->owned == 0)
        return;
    want(a, pygate_decref(main_view_, o->obj), PYGATE_OK, "pygate_decref");
    o->owned--;
}

static int job_returns(void *arg) { return (int)(intptr_t)arg; }

static int
job_raises(void *arg)
{
    (void)arg;
    PyErr_SetString(PyExc_ValueError, "a job's exception");
    return -1;
}

static _Atomic int warm_inside;

/* Waits, detached, until every worker is inside one of these (at most a
 * second: one worker may have taken two). */
static int
job_warm_up(void *arg)
{
    int workers = (int)(intptr_t)arg;
    atomic_fetch_add(&warm_inside, 1);
    Py_BEGIN_ALLOW_THREADS
    double until = now_seconds() + 1.0;
    while (atomic_load(&warm_inside) < workers && now_seconds() < until)
        usleep(100);
    Py_END_ALLOW_THREADS
    return 0;
}

/* Every worker has started and entered once (see op_fork). */
static void
warm_up(actor *a, pygate_pool *pool, int workers)
{
    pygate_job *jobs[2];
    atomic_store(&warm_inside, 0);
    for (int i = 0; i < workers; i++)
        want(a, pygate_pool_submit(pool, job_warm_up,
                                   (void *)(intptr_t)workers, &jobs[i]),
             PYGATE_OK, "pygate_pool_submit");
    for (int i = 0; i < workers; i++) {
        want(a, pygate_job_wait(jobs[i], -1, NULL), PYGATE_OK,
             "pygate_job_wait");
        want(a, pygate_job_close(jobs[i]), PYGATE_OK, "pygate_job_close");
    }
}

static void
op_pool(actor *a, const uint8_t *s)
{
    if (m.pool == NULL) {
        pygate_pool_options o = {.workers = 1 + s[2] % 2,
                                 .on_close = (s[2] >> 1) & 1};
        want(a, pygate_pool_open(main_view_, &o, &m.pool), PYGATE_OK,
             "pygate_pool_open");
        warm_up(a, m.pool, (int)o.workers);
        return;
    }
    if (!(s[2] & 0x80))
        return;
    pygate_pool *pool = m.pool;
    want(a, pygate_pool_close(pool), PYGATE_OK, "pygate_pool_close");
    uint64_t sub, done, cancelled;
    want(a, pygate_pool_counts(pool, &sub, &done, &cancelled), PYGATE_EINVAL,
         "pygate_pool_counts after close");
    want(a, pygate_pool_close(pool), PYGATE_EINVAL, "pygate_pool_close twice");
    m.pool = NULL;
}

static void
op_job(actor *a, const uint8_t *s)
{
    int j = s[2] % JOBS;
    if (m.jobs[j] == NULL) {
        if (m.pool == NULL)
            return;
        int raises = (s[2] >> 2) & 1;
        int rc = pygate_pool_submit(m.pool, raises ? job_raises : job_returns,
                                    (void *)(intptr_t)s[2], &m.jobs[j]);
        want(a, rc, PYGATE_OK, "pygate_pool_submit");
        m.job_result[j] = raises ? -1 : s[2];
        return;
    }
    int result = 0;
    int rc = pygate_job_wait(m.jobs[j], (s[2] & 0x40) ? 0 : -1, &result);
    static const int codes[] = {PYGATE_OK, PYGATE_ECANCELLED,
                                PYGATE_ETIMEDOUT, 1};
    want_one_of(a, rc, codes, "pygate_job_wait");
    if (!(s[2] & 0x40) && rc == PYGATE_ETIMEDOUT)
        fail(a, "pygate_job_wait(-1) timed out", rc);
    if (rc == PYGATE_OK && result != m.job_result[j])
        fail(a, "the job's result is not what it returned", result);
    if (rc == PYGATE_OK && m.job_result[j] == -1) {
        const char *text = NULL;
        want(a, pygate_job_exception_text(m.jobs[j], &text), PYGATE_OK,
             "pygate_job_exception_text");
        if (text == NULL || strstr(text, "a job's exception") == NULL)
            fail(a, "the job's exception text is lost", 0);
    }
    if (rc == PYGATE_ETIMEDOUT)
        return;
    want(a, pygate_job_close(m.jobs[j]), PYGATE_OK, "pygate_job_close");
    m.jobs[j] = NULL;
}

static void
op_call(actor *a, const uint8_t *s)
{
    slot_view *sv = view_slot(s);
    if (a->exception)
        return;
    int result = -1;
    int rc = pygate_call(view_or_closed(sv), job_returns,
                         (void *)(intptr_t)s[2], &result);
    if (sv->view == NULL) {
        want(a, rc, PYGATE_EINVAL, "pygate_call through a closed view");
        return;
    }
    want_one_of(a, rc, entry_codes(sv->interp), "pygate_call");
    if (rc == PYGATE_OK && result != s[2])
        fail(a, "pygate_call's result is not what fn returned", result);
}

static void
op_release(actor *a, const uint8_t *s)
{
    (void)s;
    want(a, pygate_thread_release(), a->nframes > 0 ? PYGATE_EBUSY : PYGATE_OK,
         "pygate_thread_release");
}

static void *
close_member(void *arg)
{
    atomic_store(&ipool_close_rc, pygate_interp_pool_close(arg));
    return NULL;
}

/* Opens the interpreter pool, or starts closing it on a thread of its
 * own (it waits for the actors' entries and guards in the member). */
static void
op_interp_pool(actor *a, const uint8_t *s)
{
    if (m.member == NONE) {
        /* CPython 3.12 and 3.13 keep about 1.7 MB of every own-GIL
         * interpreter that ended: a bound keeps a long run in memory. */
        if (!(s[2] & 1) || ipools_opened >= MAX_IPOOLS_OPENED)
            return;
        ipools_opened++;
        pygate_interp_pool_options o = {.interpreters = 1, .workers = 1};
        char error[256];
        want(a, pygate_interp_pool_open(&o, &m.ipool, error, sizeof error),
             PYGATE_OK, "pygate_interp_pool_open");
        m.member = OPEN;
        return;
    }
    if (m.member == OPEN && (s[2] & 2)) {
        CHECK(pthread_create(&m.closer, NULL, close_member, m.ipool) == 0);
        m.member = CLOSING;
        return;
    }
    if (m.member == OPEN) {
        pygate_value arg = {.kind = PYGATE_VALUE_INT, .integer = s[2]};
        pygate_value result = {0};
        want(a, pygate_interp_pool_call(m.ipool, 0, "operator", "neg", &arg,
                                        1, &result),
             PYGATE_OK, "pygate_interp_pool_call");
        if (result.kind != PYGATE_VALUE_INT || result.integer != -s[2])
            fail(a, "pygate_interp_pool_call's result is wrong", 0);
        pygate_value_clear(&result);
    }
}

/* ------------------------------------------------------------------------ */
/* The fork: the child shuts Python down while a thread enters              */
/* ------------------------------------------------------------------------ */

static atomic_int child_stop;

/* The child's thread: a view of its own, closed after the shutdown. */
static void *
child_enters(void *arg)
{
    pygate_view *view = arg;
    while (!atomic_load(&child_stop)) {
        pygate_token t;
        int rc = pygate_enter(view, &t);
        if (rc == PYGATE_OK) {
            if (pygate_leave(t) != PYGATE_OK)
                _exit(3);
        } else if (rc != PYGATE_EFINALIZING && rc != PYGATE_EGONE) {
            fprintf(stderr, "fuzz_api: child: pygate_enter returned %s\n",
                    pygate_err_name(rc));
            _exit(4);
        }
    }
    return NULL;
}

static void
child_shuts_down(void)
{
    alarm(60);
    pygate_view *view = NULL;
    pthread_t th;
    if (pygate_view_from_main(&view) != PYGATE_OK
            || pthread_create(&th, NULL, child_enters, view) != 0)
        _exit(5);
    usleep(1000);
    int rc = pygate_host_shutdown();
    atomic_store(&child_stop, 1);
    pthread_join(th, NULL);
    if (rc != PYGATE_OK)
        fprintf(stderr, "fuzz_api: child: pygate_host_shutdown returned %s\n",
                pygate_err_name(rc));
    _exit(rc == PYGATE_OK && pygate_view_close(view) == PYGATE_OK ? 0 : 6);
}

/* Forks (rarely: each fork finalizes a child) from the main thread while
 * the other actors may be inside entries and hold guards, and pools may
 * be open.  Not while the member closes: its closer would be missing in
 * the child.  With the member open it is refused. */
static void
op_fork(actor *a, const uint8_t *s)
{
    if (a->index != 0 || a->nframes > 0 || m.member == CLOSING || m.forked
            || s[2] >= 16)
        return;
    /* The child of a process with threads inside malloc may hang in
     * clang 14's ASan allocator (its locks are not taken around fork):
     * the pool's workers have started (warm_up) and finish their jobs
     * first; the actors wait on their condition variables. */
    for (int j = 0; j < JOBS; j++)
        if (m.jobs[j] != NULL)
            pygate_job_wait(m.jobs[j], -1, NULL);
    usleep(2000);
    pid_t pid = -1;
    int rc = pygate_host_fork(&pid);
    if (m.member == OPEN) {          /* CPython's child would not survive */
        want(a, rc, PYGATE_EBUSY, "pygate_host_fork, a sub-interpreter alive");
        return;
    }
    m.forked = 1;
    want(a, rc, PYGATE_OK, "pygate_host_fork");
    if (pid == 0)
        child_shuts_down();
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;   /* libFuzzer's timer ticks every second (SIGALRM) */
    CHECK(r == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fuzz_api: the forked child's shutdown failed:"
                        " %s %d\n",
                WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        abort();
    }
}

/* ------------------------------------------------------------------------ */
/* Actors and the run of one input                                          */
/* ------------------------------------------------------------------------ */

typedef void (*op_fn)(actor *, const uint8_t *);

static const op_fn ops[] = {
    op_view, op_view_close, op_enter, op_enter, op_leave, op_leave,
    op_detach, op_reattach, op_raise, op_guard, op_enter_guarded, op_object,
    op_pool, op_job, op_call, op_release, op_interp_pool, op_fork,
};
#define NOPS (sizeof ops / sizeof ops[0])

static void
run_and_check(actor *a, void (*fn)(actor *, const uint8_t *),
              const uint8_t *step)
{
    fn(a, step);
    check_state(a);
}

static void *
actor_main(void *arg)
{
    actor *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->step == NULL)
            pthread_cond_wait(&a->cv, &a->mu);
        pthread_mutex_unlock(&a->mu);
        run_and_check(a, a->fn, a->step);
        pthread_mutex_lock(&a->mu);
        a->step = NULL;
        pthread_cond_broadcast(&a->cv);
    }
    return NULL;
}

/* Runs fn(step) on actor a and waits until it has. */
static void
on_actor(actor *a, void (*fn)(actor *, const uint8_t *), const uint8_t *step)
{
    if (a->index == 0) {
        run_and_check(a, fn, step);
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->fn = fn;
    a->step = step;
    pthread_cond_broadcast(&a->cv);
    while (a->step != NULL)
        pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

/* The actor that holds a GIL in the model, or -1. */
static int
attached_actor(void)
{
    for (int i = 0; i < ACTORS; i++)
        if (attached_to(&m.actors[i]) >= 0)
            return i;
    return -1;
}

/* Leaves everything the actor is inside, innermost first. */
static void
op_unwind(actor *a, const uint8_t *s)
{
    static const uint8_t leave_step[3] = {0, 0, 0};
    (void)s;
    while (a->nframes > 0) {
        const mframe *f = top(a);
        if (f->kind == F_DETACH) {
            op_reattach(a, leave_step);
        } else {
            if (a->exception && f->kind == F_ENTER) {
                PyErr_Clear();
                a->exception = 0;
            }
            op_leave(a, leave_step);
        }
        check_state(a);
    }
}

static void
end_input(void)
{
    static const uint8_t none[3] = {0, 0, 0};
    /* The one attached first: the others' reattach needs its GIL. */
    int who = attached_actor();
    if (who >= 0)
        on_actor(&m.actors[who], op_unwind, none);
    for (int i = 0; i < ACTORS; i++)
        on_actor(&m.actors[i], op_unwind, none);
    for (int g = 0; g < GUARDS; g++)
        if (m.guards[g] != NULL) {
            want(NULL, pygate_guard_close(m.guards[g]), PYGATE_OK,
                 "pygate_guard_close");
            m.guards[g] = NULL;
        }
    for (int j = 0; j < JOBS; j++)
        if (m.jobs[j] != NULL) {
            int rc = pygate_job_wait(m.jobs[j], -1, NULL);
            static const int codes[] = {PYGATE_OK, PYGATE_ECANCELLED, 1};
            want_one_of(NULL, rc, codes, "pygate_job_wait");
            want(NULL, pygate_job_close(m.jobs[j]), PYGATE_OK,
                 "pygate_job_close");
            m.jobs[j] = NULL;
        }
    if (m.pool != NULL)
        want(NULL, pygate_pool_close(m.pool), PYGATE_OK, "pygate_pool_close");
    m.pool = NULL;
    if (m.member == OPEN)
        want(NULL, pygate_interp_pool_close(m.ipool), PYGATE_OK,
             "pygate_interp_pool_close");
    if (m.member == CLOSING) {
        CHECK(pthread_join(m.closer, NULL) == 0);
        want(NULL, atomic_load(&ipool_close_rc), PYGATE_OK,
             "pygate_interp_pool_close (on its thread)");
    }
    m.member = NONE;
    for (int v = 0; v < VIEWS; v++)
        if (m.views[v].view != NULL)
            forget_view(&m.views[v]);
    /* Every reference given to pygate_decref is gone once an entry into
     * main has drained them. */
    pygate_token t;
    want(NULL, pygate_enter(main_view_, &t), PYGATE_OK, "pygate_enter");
    for (int o = 0; o < OBJECTS; o++) {
        slot_object *so = &m.objects[o];
        if (so->obj == NULL)
            continue;
        if (Py_REFCNT(so->obj) != 1 + so->owned)
            fail(NULL, "a reference given to pygate_decref was not dropped",
                 (int)Py_REFCNT(so->obj));
        for (; so->owned > 0; so->owned--)
            Py_DECREF(so->obj);
        Py_CLEAR(so->obj);
    }
    want(NULL, pygate_leave(t), PYGATE_OK, "pygate_leave");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("PYGATE_DEBUG", "0", 1);     /* misuse returns codes */
    CHECK_OK(pygate_host_init(NULL));
    main_view_ = pygate_host_view();
    /* Jobs' uncollected exceptions go to sys.unraisablehook: quietly. */
    pygate_token t;
    CHECK_OK(pygate_enter(main_view_, &t));
    CHECK(PyRun_SimpleString("import sys\n"
                             "sys.unraisablehook = lambda u: None\n") == 0);
    CHECK_OK(pygate_leave(t));
    CHECK_OK(pygate_view_from_main(&m.closed_view));
    CHECK_OK(pygate_view_close(m.closed_view));
    CHECK_OK(pygate_guard_from_view(main_view_, &m.closed_guard));
    CHECK_OK(pygate_guard_close(m.closed_guard));
    for (int i = 0; i < ACTORS; i++) {
        actor *a = &m.actors[i];
        a->index = i;
        pthread_mutex_init(&a->mu, NULL);
        pthread_cond_init(&a->cv, NULL);
        if (i > 0)
            CHECK(pthread_create(&a->thread, NULL, actor_main, a) == 0);
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t steps = size / 3 < MAX_STEPS ? size / 3 : MAX_STEPS;
    m.forked = 0;
    for (size_t i = 0; i < steps; i++) {
        const uint8_t *s = data + 3 * i;
        m.step = (int)i;
        int who = attached_actor();
        actor *a = &m.actors[who >= 0 ? who : s[1] % ACTORS];
        on_actor(a, ops[s[0] % NOPS], s);
    }
    end_input();
    return 0;
}
