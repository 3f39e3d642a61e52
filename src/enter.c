/*
 * enter.c - entering and leaving: where a caller's thread attaches and
 * detaches (pygate_enter, pygate_leave, pygate_detach, pygate_reattach).
 * pygate attaches on its own elsewhere only for its bookkeeping: to delete
 * a cached state (thread.c), to park or take back the host's state
 * (host.c), to run signal handlers while shutdown waits (lifecycle.c), for
 * the main interpreter's first view (view.c), around a worker pool's stop
 * at shutdown (pool_life.c), and to make and end an interpreter pool's
 * members
 * (interp_pool.c).
 *
 * Each thread keeps a stack of frames, one per open entry or detach; a
 * re-entry into the interpreter already attached by the top frame only
 * counts depth.  Every frame that entered holds a guard on its record, taken
 * before anything is attached, so nothing is attached once shutdown began.
 *
 * The gilstate slot (compat.h): while pygate has a state attached, the slot
 * points at it, so PyGILState_Ensure() in a callback finds the attached
 * state.  At leave a main-interpreter state stays in the slot (so later
 * PyGILState calls on this thread reuse it, never making a second); for a
 * sub-interpreter the slot gets back what it held before the entry
 * (pygate__thread_give_back_gilstate), so it never refers to a state that the
 * sub-interpreter's end will delete from another thread.
 */
#include "internal.h"

#include <stdlib.h>

/* A token's kind (pygate.h's, which the inline path tests). */
enum { TOKEN_ENTER = PYGATE_TOKEN_ENTER_,
       TOKEN_DETACH = PYGATE_TOKEN_DETACH_ };

static void unwind_frames(pygate_thread *t);

/* Makes room for more frames: rare, so kept out of push_frame. */
static __attribute__((noinline)) int
grow_frames(pygate_thread *t)
{
    if (t->cap == 0)   /* the thread's first frame */
        pygate__thread_set_unwinder(unwind_frames);
    uint32_t cap = t->cap ? 2 * t->cap : 8;
    frame *frames = (frame *)pygate__realloc(t->frames, cap * sizeof *frames);
    if (frames == NULL)
        return 0;
    t->frames = frames;
    t->cap = cap;
    return 1;
}

static inline frame *
push_frame(pygate_thread *t)
{
    if (t->nframes == t->cap && !grow_frames(t))
        return NULL;
    frame *f = &t->frames[t->nframes++];
    *f = (frame){0};
    t->level++;
    return f;
}

static void
pop_frame(pygate_thread *t)
{
    t->nframes--;
    t->level--;
}

static pygate_token
make_token(pygate_thread *t, uint32_t kind)
{
    pygate_token token = {t, t->level, kind};
    return token;
}

pygate_token
pygate__entry_token(uint32_t level)
{
    pygate_token token = {pygate__thread_self(0), level, TOKEN_ENTER};
    return token;
}

static frame *
top_frame(pygate_thread *t)
{
    return t->nframes ? &t->frames[t->nframes - 1] : NULL;
}

/* Takes the frame's guard: a local one on the thread's cached entry when
 * there is one, else a shared one.  `guarded`: the caller holds a guard of
 * its own on rec, so this one is taken even while the hook waits. */
static inline int
guard_frame(frame *f, record *rec, entry *e, int guarded)
{
    f->held = e != NULL && pygate__record_local_guards() ? &e->held : NULL;
    if (!guarded)
        return f->held != NULL
                   ? pygate__record_guard_acquire_local(rec, f->held)
                   : pygate__record_guard_acquire(rec);
    if (atomic_load_explicit(&rec->phase, memory_order_acquire) == PHASE_GONE)
        return PYGATE_EGONE;   /* only after the hook gave up waiting */
    if (f->held != NULL)
        pygate__record_guard_add_local(f->held);
    else
        pygate__record_guard_add(rec);
    return PYGATE_OK;
}

static void
unguard_frame(frame *f)
{
    if (f->held != NULL)
        pygate__record_guard_release_local(f->rec, f->held);
    else
        pygate__record_guard_release(f->rec);
}

/* Guards and attaches a state for rec, switching away from `current` if
 * set.  The guard comes first: nothing is attached once shutdown began. */
static int
attach(pygate_thread *t, frame *f, record *rec, PyThreadState *current,
       int guarded)
{
    entry *e = pygate__thread_entry(t, rec);
    int rc = guard_frame(f, rec, e, guarded);
    if (rc != PYGATE_OK)
        return rc;
    /* Only a sub-interpreter entry gives the slot back at leave.  Read
     * before a state is made: on 3.12+ making one may bind it. */
    PyThreadState *slot = rec->is_main ? NULL : pygate__compat_gilstate_get();
    PyThreadState *tstate = e != NULL ? e->tstate : NULL;
    if (tstate == NULL
            && (rc = pygate__thread_state_for(t, rec, &tstate)) != PYGATE_OK) {
        unguard_frame(f);
        return rc;
    }
    f->kind = FRAME_ATTACH;
    f->tstate = tstate;
    f->prev = current;
    f->gilstate_prev = slot;
    /* On 3.12+ re-attaching `current` at leave binds it again by itself.
     * A thread whose home is rec keeps rec's state in an empty slot. */
    f->restore_gilstate = !rec->is_main && slot != tstate
                          && (current == NULL
                              || !COMPAT_ATTACH_BINDS_GILSTATE)
                          && !(slot == NULL && t->home == rec);
    if (current != NULL)
        PyEval_SaveThread();
    PyEval_RestoreThread(tstate);
    compat_gilstate_bind_attached(tstate);
    return PYGATE_OK;
}

/* How enter_record is called: ENTER_GUARDED, the caller holds a guard of
 * its own on rec; ENTER_DETACHED, the caller knows nothing is attached on
 * this thread (it just looked), so the look is not made again. */
enum { ENTER_GUARDED = 1, ENTER_DETACHED = 2 };

/* Enters rec (`how`: ENTER_* flags).  `view`: the view the caller named,
 * for which the thread's fast record opens once attached (pygate.h), with
 * `closes` (pygate__views_closed_now() before view was checked); NULL keeps
 * it closed. */
static int
enter_record(record *rec, pygate_view *view, uint32_t closes, unsigned how,
             pygate_token *token, const char *file, int line)
{
    int guarded = (how & ENTER_GUARDED) != 0;
    pygate_thread *t = pygate__thread_self(1);
    if (t == NULL)
        return PYGATE_ENOMEM;
    pygate__fast_close(t);

    frame *top = top_frame(t);
    if (top != NULL && !(how & ENTER_DETACHED) && top->rec == rec
            && top->kind != FRAME_DETACH
            && atomic_load_explicit(&rec->phase, memory_order_relaxed)
               != PHASE_GONE   /* else top->tstate may be freed */
            && compat_tstate_is_attached(top->tstate)) {
        top->depth++;   /* nested: covered by the outer frame's guard */
        t->level++;
        *token = make_token(t, TOKEN_ENTER);
        if (view != NULL && !pygate__debug_mode()
                && atomic_load_explicit(&rec->phase, memory_order_relaxed)
                   == PHASE_OPEN)
            pygate__fast_open(t, view, top->tstate, closes);
        return PYGATE_OK;
    }

    PyThreadState *current = how & ENTER_DETACHED
                                 ? NULL
                                 : pygate__compat_current_tstate();
    frame *f = push_frame(t);
    if (f == NULL)
        return PYGATE_ENOMEM;
    f->rec = rec;
    int rc;
    if (current != NULL
            && PyThreadState_GetInterpreter(current) == rec->interp) {
        f->kind = FRAME_NEST;   /* attached already, by Python or the host */
        f->tstate = current;
        rc = guard_frame(f, rec, NULL, guarded);
    } else {
        rc = attach(t, f, rec, current, guarded);
    }
    if (rc != PYGATE_OK) {
        pop_frame(t);
        return rc;
    }
    int debug = pygate__debug_mode();
    if (debug)
        f->site = pygate__record_site_add(rec, file, line);
    /* References other threads dropped while not attached (pygate_decref)
     * go now, on this thread, which is attached to their interpreter. */
    if (pygate__decref_queue_any(rec))
        pygate__decref_queue_drop(rec);
    *token = make_token(t, TOKEN_ENTER);
    if (view != NULL && !debug)   /* last: the drop may enter and leave */
        pygate__fast_open(t, view, f->tstate, closes);
    return PYGATE_OK;
}

int
pygate__impl_enter_at(pygate_view *view, pygate_token *token,
                      const char *file, int line)
{
    uint32_t closes = pygate__views_closed_now();
    record *rec = pygate__view_record(view);
    if (rec == NULL || token == NULL)
        return PYGATE_EINVAL;
    return enter_record(rec, view, closes, 0, token, file, line);
}

int
pygate__enter_record(record *rec, int detached, pygate_token *token,
                     const char *file, int line)
{
    return enter_record(rec, NULL, 0, detached ? ENTER_DETACHED : 0, token,
                        file, line);
}

PyThreadState *
pygate__token_tstate(pygate_token token)
{
    pygate_thread *t = (pygate_thread *)token.thread_;
    return top_frame(t)->tstate;
}

int
pygate__impl_enter_guarded_at(pygate_guard *guard, pygate_token *token,
                              const char *file, int line)
{
    int holds;
    record *rec = pygate__guard_record(guard, &holds);
    if (rec == NULL || token == NULL)
        return PYGATE_EINVAL;
    /* A guard inherited through fork() no longer holds: enter as with a
     * view, which may then fail once shutdown began. */
    return enter_record(rec, NULL, 0, holds ? ENTER_GUARDED : 0, token,
                        file, line);
}

/* Checks that token names the calling thread's innermost frame (t: the
 * calling thread's record, its fast record closed first). */
static int
check_token(pygate_thread *t, pygate_token token, uint32_t kind,
            const char *file, int line)
{
    if (t != NULL)
        pygate__fast_close(t);
    if (token.thread_ != NULL && token.thread_ != t)
        return pygate__misuse(PYGATE_EWRONGTHREAD, file, line,
                             "token used on a thread other than its own");
    if (t == NULL || t->nframes == 0)
        return pygate__misuse(PYGATE_ENOTENTERED, file, line,
                             "leave or reattach without a matching entry");
    frame *top = top_frame(t);
    uint32_t top_kind = top->kind == FRAME_DETACH ? TOKEN_DETACH : TOKEN_ENTER;
    if (token.thread_ != t || token.level_ != t->level || token.kind_ != kind
            || top_kind != kind)
        return pygate__misuse(PYGATE_EUNBALANCED, file, line,
                             "token is not the innermost entry or detach");
    return PYGATE_OK;
}

/* Detaches the frame's state and restores what was attached before. */
static void
detach(pygate_thread *t, frame *f)
{
    if (f->restore_gilstate)
        pygate__thread_give_back_gilstate(t, f->rec, f->gilstate_prev);
    else
        PyEval_SaveThread();
    if (f->prev != NULL) {
        PyEval_RestoreThread(f->prev);
        compat_gilstate_bind_attached(f->prev);
    }
}

int
pygate__impl_leave_at(pygate_token token, const char *file, int line)
{
    pygate_thread *t = pygate__thread_self(0);
    int rc = check_token(t, token, TOKEN_ENTER, file, line);
    if (rc != PYGATE_OK)
        return rc;
    frame *f = top_frame(t);
    if (f->depth > 0) {
        f->depth--;
        t->level--;
        return PYGATE_OK;
    }
    record *rec = f->rec;
    if (f->kind == FRAME_ATTACH
            && atomic_load_explicit(&rec->phase, memory_order_acquire)
               != PHASE_GONE) {
        /* GONE here means this very thread finalized the interpreter from
         * inside its entry: the state is freed, leave it alone. */
        if (!compat_tstate_is_attached(f->tstate))
            return pygate__misuse(PYGATE_EUNBALANCED, file, line,
                                 "the attached thread state changed inside "
                                 "the entry (unbalanced Py_BEGIN_ALLOW_THREADS"
                                 " or PyThreadState_Swap?)");
        if (compat_tstate_has_exception(f->tstate))
            return pygate__misuse(PYGATE_EEXCEPTION, file, line,
                                 "leaving with a Python exception set");
        detach(t, f);
    }
    if (f->site != NULL)
        pygate__record_site_remove(rec, f->site);
    unguard_frame(f);
    pop_frame(t);
    return PYGATE_OK;
}

int
pygate__impl_detach_at(pygate_token *token, const char *file, int line)
{
    if (token == NULL)
        return PYGATE_EINVAL;
    pygate_thread *t = pygate__thread_self(0);
    if (t != NULL)
        pygate__fast_close(t);
    frame *top = t != NULL ? top_frame(t) : NULL;
    PyThreadState *current = pygate__compat_current_tstate();
    if (top == NULL || top->kind == FRAME_DETACH || current == NULL
            || current != top->tstate)
        return pygate__misuse(PYGATE_ENOTATTACHED, file, line,
                             "detach outside an attached pygate entry");
    /* The exception would wait, set, for whatever runs on this state
     * after the reattach (as at a leave, pygate.h). */
    if (compat_tstate_has_exception(current))
        return pygate__misuse(PYGATE_EEXCEPTION, file, line,
                             "detaching with a Python exception set");
    frame *f = push_frame(t);
    if (f == NULL)
        return PYGATE_ENOMEM;
    f->kind = FRAME_DETACH;
    f->tstate = PyEval_SaveThread();
    *token = make_token(t, TOKEN_DETACH);
    return PYGATE_OK;
}

int
pygate__impl_reattach_at(pygate_token token, const char *file, int line)
{
    pygate_thread *t = pygate__thread_self(0);
    int rc = check_token(t, token, TOKEN_DETACH, file, line);
    if (rc != PYGATE_OK)
        return rc;
    PyThreadState *tstate = top_frame(t)->tstate;
    pop_frame(t);
    /* The entry below still holds its guard: the interpreter is alive. */
    PyEval_RestoreThread(tstate);
    return PYGATE_OK;
}

/* ---- PyGILState callers on a kept state ---------------------------------- */

int
pygate__impl_thread_keep_gilstate(pygate_view *view)
{
    record *rec = pygate__view_record(view);
    if (rec == NULL || !rec->is_main)
        return PYGATE_EINVAL;
    if (pygate__compat_current_tstate() != NULL)
        return PYGATE_EBUSY;
    /* A state bound by someone else (PyGILState_Ensure's own, or another
     * library's) is theirs to delete: pygate cannot keep it. */
    PyThreadState *slot = pygate__compat_gilstate_get();
    pygate_thread *t = pygate__thread_self(0);
    entry *e = t != NULL ? pygate__thread_entry(t, rec) : NULL;
    if (slot != NULL && (e == NULL || slot != e->tstate))
        return PYGATE_EBUSY;
    /* An entry binds the thread's kept main-interpreter state in the slot,
     * and its leave leaves it there (pygate.h, pygate_enter).  CPython's
     * Release pairs never delete it: PyThreadState_New starts a state's
     * gilstate counter at 1 on every version (3.8-3.11 in
     * _PyGILState_NoteThreadState, 3.12+ in init_threadstate), and only
     * a count of 0 deletes (test_enter.foreign_gilstate_reuses_kept_state
     * enters again with the same state after such calls). */
    pygate_token token;
    int rc = enter_record(rec, NULL, 0, 0, &token, __FILE__, __LINE__);
    if (rc != PYGATE_OK)
        return rc;
    return pygate__impl_leave_at(token, __FILE__, __LINE__);
}

/* ---- a thread that ends inside entries ---------------------------------- */

/* Whether the frame holds anything others wait for: a guard on a record
 * whose shutdown has not given up on it. */
static int
frame_holds(const frame *f)
{
    return f->kind != FRAME_DETACH
           && atomic_load_explicit(&f->rec->phase, memory_order_acquire)
              != PHASE_GONE;
}

/* Says on stderr which entries the thread leaves open, where they were
 * made (debug mode), and in debug mode aborts: a forgotten leave is a
 * misuse.  Returns how many entries were open. */
static uint32_t
report_open_frames(pygate_thread *t)
{
    uint32_t open = 0;
    const guard_site *site = NULL;
    for (uint32_t i = 0; i < t->nframes; i++) {
        frame *f = &t->frames[i];
        if (!frame_holds(f))
            continue;
        open += 1 + f->depth;
        if (f->site != NULL) {
            fprintf(stderr, "pygate:   entry made at %s:%d is still open\n",
                    f->site->file, f->site->line);
            site = site != NULL ? site : f->site;
        }
    }
    if (open > 0 && site != NULL)
        pygate__misuse(PYGATE_EUNBALANCED, site->file, site->line,
                      "the thread ended inside this entry");
    return open;
}

/* Exit destructor of a thread with frames (thread.c): leaves each, the
 * innermost first, as pygate_leave would, so that the GIL and the guards
 * go back to the other threads and to shutdown.  An exception still set
 * is reported through sys.unraisablehook.  A state that a detach frame
 * left detached stays so; a frame whose interpreter was given up on
 * touches nothing of it. */
static void
unwind_frames(pygate_thread *t)
{
    pygate__fast_close(t);   /* on the thread itself: its exit */
    uint32_t open = report_open_frames(t);
    if (open > 0)
        fprintf(stderr, "pygate: a thread ended inside %u pygate entries;"
                " pygate left them for it (detached, guards released)\n",
                open);
    while (t->nframes > 0) {
        frame *f = top_frame(t);
        if (frame_holds(f) && f->kind == FRAME_ATTACH
                && compat_tstate_is_attached(f->tstate)) {
            if (compat_tstate_has_exception(f->tstate))
                PyErr_WriteUnraisable(NULL);
            detach(t, f);
        }
        if (f->kind != FRAME_DETACH) {   /* as pygate_leave does */
            if (f->site != NULL)
                pygate__record_site_remove(f->rec, f->site);
            unguard_frame(f);
        }
        t->level -= f->depth;
        pop_frame(t);
    }
}

/* ---- scoped forms ------------------------------------------------------- */

pygate_scope_
pygate__impl_scope_enter_(pygate_view *view, int *rc, const char *file,
                          int line)
{
    pygate_scope_ scope = {{0}, file, line, 0};
    int r = pygate__impl_enter_at(view, &scope.token, file, line);
    if (rc != NULL)
        *rc = r;
    scope.active = r == PYGATE_OK;
    return scope;
}

pygate_scope_
pygate__impl_scope_detach_(int *rc, const char *file, int line)
{
    pygate_scope_ scope = {{0}, file, line, 0};
    int r = pygate__impl_detach_at(&scope.token, file, line);
    if (rc != NULL)
        *rc = r;
    scope.active = r == PYGATE_OK;
    return scope;
}

void
pygate__impl_scope_end_(pygate_scope_ *scope)
{
    if (!scope->active)
        return;
    scope->active = 0;
    if (scope->token.kind_ == TOKEN_DETACH) {
        pygate__impl_reattach_at(scope->token, scope->file, scope->line);
        return;
    }
    pygate__leave_reporting_exception(scope->token, scope->file, scope->line);
}

int
pygate__leave_reporting_exception(pygate_token token, const char *file,
                                  int line)
{
    int rc = pygate__impl_leave_at(token, file, line);
    if (rc == PYGATE_EEXCEPTION) {
        /* An exception cannot propagate out of a C scope: report it the
         * way CPython reports exceptions nobody can receive. */
        PyErr_WriteUnraisable(NULL);
        rc = pygate__impl_leave_at(token, file, line);
    }
    return rc;
}
