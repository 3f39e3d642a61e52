/*
 * pool_job.c - the bottom of the worker pool: references to pools and
 * jobs, running one job, a job's handle (wait, exception, close), and the
 * list of every pool not freed yet.
 *
 * A pool is referenced by its handle, its shutdown listener and each job
 * not freed; a job by the queue or the worker that runs it, and by its
 * handle.  Both counts change under p->lock; whoever drops a pool's last
 * reference frees it after unlocking.
 */
#include "pool_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* Every pool not freed yet: for the fork handlers (pool_fork.c) and the
 * census. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pool *all_pools;

void
pygate__pools_lock(void)
{
    pthread_mutex_lock(&pools_lock);
}

void
pygate__pools_unlock(void)
{
    pthread_mutex_unlock(&pools_lock);
}

pool *
pygate__pools_first(void)
{
    return all_pools;
}

void
pygate__pools_add(pool *p)
{
    pthread_mutex_lock(&pools_lock);
    PYGATE__LIST_PUSH(all_pools, p, all_prev, all_next);
    pthread_mutex_unlock(&pools_lock);
}

#if PYGATE_DEBUG
void
pygate__pool_assert_locked(pool *p, const char *file, int line)
{
    /* An error-checking lock would say who holds it; this one says only
     * that somebody does, which catches a caller that forgot it. */
    if (pthread_mutex_trylock(&p->lock) == 0) {
        pthread_mutex_unlock(&p->lock);
        fprintf(stderr, "pygate: %s:%d: pool %p's lock is not held\n", file,
                line, (void *)p);
        abort();
    }
}
#endif

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

void
pygate__pool_free(pool *p)
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
        pygate__view_close(p->view);
    free(p->lanes);
    free(p->chunks);
    free(p->threads);
    free(p);
}

/* Under p->lock; returns 1 when the last reference went (free after
 * unlocking). */
int
pygate__pool_unref_locked(pool *p)
{
    POOL_ASSERT_LOCKED(p);
    return --p->refs == 0;
}

void
pygate__pool_unref(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int last = pygate__pool_unref_locked(p);
    pthread_mutex_unlock(&p->lock);
    if (last)
        pygate__pool_free(p);
}

/* Under p->lock: drops a reference to j, a job of p (its exception
 * object is gone already); the last one frees it and drops its reference
 * to the pool.  Returns 1 when that was the pool's last (free it after
 * unlocking).  A worker never sees 1: the pool's handle or listener
 * outlives it. */
int
pygate__job_unref_locked(pool *p, job *j)
{
    POOL_ASSERT_LOCKED(p);
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
    return pygate__pool_unref_locked(p);
}

/* The pool of a live handle, under a use bracket of it (end it with
 * pygate__handle_unuse(*slot)): a concurrent close then waits before it
 * frees the pool.  NULL when the handle is not a live pool. */
pool *
pygate__pool_use(pygate_pool *handle, handle_slot **slot)
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
outcome
pygate__job_run(job *j)
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

/* Under p->lock: j, off the queue or its worker gone, ends CANCELLED and
 * is counted so. */
void
pygate__job_end_cancelled_locked(pool *p, job *j)
{
    POOL_ASSERT_LOCKED(p);
    j->state = JOB_CANCELLED;
    p->cancelled += job_size(j);
    pygate__job_unref_locked(p, j);
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
    if (exc != NULL && pygate__enter(p->view, &tok) == PYGATE_OK) {
        PyErr_SetRaisedException(exc);
        PyErr_WriteUnraisable(NULL);
        pygate__leave(tok);
        return;
    }
    /* Refused when the interpreter is ending: left alone. */
    if (exc != NULL)
        pygate__impl_decref(p->view, exc);
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
    int last = pygate__job_unref_locked(p, &w->job);
    pthread_mutex_unlock(&p->lock);
    if (uncollected)
        report_uncollected(p, exc, text);
    else if (exc != NULL)
        pygate__impl_decref(p->view, exc);
    free(text);
    if (last)
        pygate__pool_free(p);
    return PYGATE_OK;
}
