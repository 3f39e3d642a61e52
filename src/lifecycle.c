/*
 * lifecycle.c - a record's life: born on first use of its interpreter, found
 * again through the interpreter's dict, shut down by the hook that drains
 * its guards before CPython tears thread states down.
 *
 * It sits above interp.c (the gate) and thread.c (the entries): the hook
 * closes the gate, waits for the guards, then has thread.c take the
 * entries' states back.  fork.c sets both right in a forked child.
 *
 * A record is found from its interpreter through the interpreter's own dict
 * (PyInterpreterState_GetDict), so it dies with the interpreter and a later
 * interpreter that reuses the ID or the address gets a fresh record.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The key of this copy's record in an interpreter's dict.  Another copy of
 * pygate in the process (a module that vendors it, api.c) has its own key,
 * so neither ever takes the other's record for its own. */
static char record_key[48];
static pthread_once_t record_key_once = PTHREAD_ONCE_INIT;

static void
record_key_init(void)
{
    snprintf(record_key, sizeof record_key, "pygate.record.%p",
             (void *)record_key);
}

#define RECORD_CAPSULE record_key

/* pygate_set_drain_limits(), in milliseconds; give-up < 0 means never. */
static _Atomic long drain_report_ms = 5000;
static _Atomic long drain_give_up_ms = -1;

/* Guards the calling thread itself holds on rec: the thread that runs the
 * shutdown may be inside an entry of the interpreter it finalizes. */
static uint64_t
guards_held_by_caller(record *rec)
{
    pygate_thread *t = pygate__thread_self(0);
    uint64_t n = 0;
    for (uint32_t i = 0; t != NULL && i < t->nframes; i++)
        if (t->frames[i].kind != FRAME_DETACH && t->frames[i].rec == rec)
            n++;
    return n;
}

int
pygate__impl_set_drain_limits(double report_every, double give_up_after)
{
    if (!(report_every > 0) || report_every > 1e6 || give_up_after > 1e6
            || give_up_after != give_up_after)
        return PYGATE_EINVAL;
    atomic_store(&drain_report_ms, (long)(report_every * 1000));
    atomic_store(&drain_give_up_ms,
                 give_up_after < 0 ? -1 : (long)(give_up_after * 1000));
    return PYGATE_OK;
}

/* ---- waiting during shutdown -------------------------------------------- */

/* How often a waiting shutdown looks for a signal (Ctrl-C). */
#define SIGNAL_POLL_MS 100

/* Not attached, rec->lock not held: attaches ts and runs the Python
 * handlers of the signals that arrived meanwhile.  Only for the main
 * interpreter's shutdown (ts NULL otherwise: CPython 3.8's
 * PyErr_CheckSignals() would run main's handlers in a sub-interpreter);
 * PyErr_CheckSignals() runs them only on the main thread, where CPython's
 * own waits let Ctrl-C through too, and elsewhere does nothing.
 * Returns 1 when a handler raised: the default SIGINT handler raises
 * KeyboardInterrupt, and the person pressing Ctrl-C wants the wait to end
 * (a handler that returns quietly asks for nothing).  The exception is
 * named on stderr and dropped: an atexit callback's would be too. */
static int
signal_handler_raised(PyThreadState *ts)
{
    if (ts == NULL)
        return 0;
    PyEval_RestoreThread(ts);
    int raised = PyErr_CheckSignals() < 0;
    if (raised) {
        PyObject *exc = PyErr_GetRaisedException();
        fprintf(stderr, "pygate: %s while shutdown waited\n",
                exc != NULL ? Py_TYPE(exc)->tp_name : "an exception");
        Py_XDECREF(exc);
    }
    PyEval_SaveThread();
    return raised;
}

void
pygate__shutdown_wait_begin(shutdown_wait *w, record *rec, PyThreadState *ts)
{
    w->rec = rec;
    w->ts = rec->is_main ? ts : NULL;
    w->last_report = pygate__now();
}

/* Milliseconds left before the give-up bound (LONG_MAX: none). */
static long
give_up_left_ms(const record *rec)
{
    long give_up_ms = atomic_load(&drain_give_up_ms);
    if (give_up_ms < 0)
        return LONG_MAX;
    return give_up_ms - (long)((pygate__now() - rec->shutdown_began) * 1000);
}

double
pygate__shutdown_wait_slice(const shutdown_wait *w)
{
    long report_ms = atomic_load(&drain_report_ms);
    long wait_ms = report_ms < SIGNAL_POLL_MS ? report_ms : SIGNAL_POLL_MS;
    long left = give_up_left_ms(w->rec);
    if (left < wait_ms)
        wait_ms = left > 1 ? left : 1;
    return wait_ms / 1e3;
}

int
pygate__shutdown_wait_tick(shutdown_wait *w,
                           void (*report)(void *arg, const record *rec,
                                          double waited),
                           void *arg)
{
    record *rec = w->rec;
    double waited = pygate__now() - rec->shutdown_began;
    int end = atomic_load(&rec->gave_up) || give_up_left_ms(rec) <= 0
              || signal_handler_raised(w->ts);
    if (end || (pygate__now() - w->last_report) * 1000
                   >= atomic_load(&drain_report_ms)) {
        report(arg, rec, waited);
        w->last_report = pygate__now();
    }
    if (end && atomic_exchange(&rec->gave_up, 1) == 0)
        fprintf(stderr, "pygate: giving up the wait; those threads"
                " are now on their own, like daemon threads\n");
    return end;
}

/* ---- draining ----------------------------------------------------------- */

typedef struct guards_report {
    record *rec;
    uint64_t own;
} guards_report;

/* Debug mode lists each guard's site. */
static void
report_outstanding(void *arg, const record *shutting, double waited)
{
    guards_report *r = (guards_report *)arg;
    record *rec = r->rec;
    (void)shutting;   /* rec itself */
    record_lock(rec);
    fprintf(stderr, "pygate: shutdown of interpreter %lld has waited %.1f s"
            " for %llu native guards or entries to be released\n",
            (long long)rec->id, waited,
            (unsigned long long)(pygate__record_guards_held(rec) - r->own));
    for (guard_site *s = rec->sites; s != NULL; s = s->next)
        fprintf(stderr, "pygate:   guard taken at %s:%d on thread %#lx\n",
                s->file, s->line, s->thread);
    record_unlock(rec);
}

/* Not attached (ts is the caller's detached state, to run signal handlers
 * on, or NULL for none).  Returns 1 once the guards drained, 0 when the
 * wait was given up (pygate__shutdown_wait_tick). */
static int
wait_until_drained(record *rec, uint64_t own, PyThreadState *ts)
{
    shutdown_wait w;
    pygate__shutdown_wait_begin(&w, rec, ts);
    guards_report r = {rec, own};
    int drained = 1;
    record_lock(rec);
    while (pygate__record_guards_held(rec) > own) {
        struct timespec deadline =
            pygate__deadline_after(pygate__shutdown_wait_slice(&w));
        record_wait(rec, &deadline);
        if (pygate__record_guards_held(rec) <= own)
            break;
        record_unlock(rec);   /* never held while waiting for the GIL */
        int end = pygate__shutdown_wait_tick(&w, report_outstanding, &r);
        record_lock(rec);
        if (end) {
            drained = 0;
            break;
        }
    }
    record_unlock(rec);
    return drained;
}

/* ---- shutdown ----------------------------------------------------------- */

/* ---- listeners ---------------------------------------------------------- */

int
pygate__record_listen(record *rec, record_listener *l)
{
    record_lock(rec);
    int open = atomic_load(&rec->phase) == PHASE_OPEN && !rec->listening_done;
    if (open) {
        l->next = rec->listeners;
        rec->listeners = l;
    }
    record_unlock(rec);
    return open ? PYGATE_OK : pygate__record_error(rec);
}

int
pygate__record_unlisten(record *rec, record_listener *l)
{
    record_lock(rec);
    record_listener **link = &rec->listeners;
    while (*link != NULL && *link != l)
        link = &(*link)->next;
    int found = *link != NULL;
    if (found)
        *link = l->next;
    record_unlock(rec);
    return found;
}

/* Calls every listener once, newest first; one that registers meanwhile
 * is refused (listening_done). */
static void
call_listeners(record *rec)
{
    for (;;) {
        record_lock(rec);
        record_listener *l = rec->listeners;
        if (l != NULL)
            rec->listeners = l->next;
        else
            rec->listening_done = 1;
        record_unlock(rec);
        if (l == NULL)
            return;
        l->fn(l->arg);
    }
}

/* Runs in the interpreter's atexit stage, on the finalizing thread, with
 * the GIL held.  From here on no guard can be taken. */
static void
record_shutdown(void *arg)
{
    record *rec = (record *)arg;
    rec->shutdown_began = pygate__now();   /* every wait's clock */
    /* The finalizing thread may be inside an entry: its later nested ones
     * take the exported path, which sees the gate (enter.c never opens
     * the record again for a record past PHASE_OPEN). */
    pygate_thread *self = pygate__thread_self(0);
    if (self != NULL)
        pygate__fast_close(self);
    /* Pools first, while their workers can still enter. */
    call_listeners(rec);
    pygate__record_close_gate(rec);

    uint64_t own = guards_held_by_caller(rec);
    record_lock(rec);
    int busy = pygate__record_guards_held(rec) > own;
    record_unlock(rec);
    int drained = 1;
    if (busy) {
        PyThreadState *ts = PyEval_SaveThread();
        drained = wait_until_drained(rec, own, rec->is_main ? ts : NULL);
        PyEval_RestoreThread(ts);
    }
    /* Attached again, every guard released: no decref can be queued from
     * here on (the gate is closed), so this is the last drain. */
    pygate__decref_queue_drop(rec);
    pygate__thread_forget_entries(rec, drained);
    pygate__record_mark_gone(rec);
    pygate__record_forget_main(rec);
    /* Frames still open (the caller's own, or any left after giving up)
     * point at rec without a reference: keep it alive for them. */
    if (own == 0 && drained)
        pygate__record_unref(rec);   /* the hook's reference */
    else
        atomic_store(&rec->hook_kept, 1);
}

/* ---- birth -------------------------------------------------------------- */

static void
record_capsule_free(PyObject *capsule)
{
    record *rec = (record *)PyCapsule_GetPointer(capsule, RECORD_CAPSULE);
    atomic_store(&rec->capsule_alive, 0);
    pygate__record_unref(rec);
}

/* The record a capsule found in an interpreter dict holds, as a new
 * reference in *out; the capsule's reference is given up. */
static int
record_from_capsule(PyObject *capsule, record **out)
{
    record *rec = (record *)PyCapsule_GetPointer(capsule, RECORD_CAPSULE);
    Py_DECREF(capsule);   /* the dict keeps the record's */
    if (rec == NULL)
        return PYGATE_EPYTHON;
    if (atomic_load(&rec->phase) != PHASE_OPEN)
        return pygate__record_error(rec);
    pygate__record_ref(rec);
    *out = rec;
    return PYGATE_OK;
}

/* Stores rec in the interpreter dict (one reference), unless another
 * thread stored its record for the interpreter first (two threads making
 * the interpreter's first entry at the same moment, as a free-threaded
 * build allows): then *other gets that one (a new reference) and rec is
 * not stored.  On failure: PYGATE_EPYTHON with the exception set. */
static int
record_publish(record *rec, PyObject *dict, record **other)
{
    *other = NULL;
    PyObject *capsule = PyCapsule_New(rec, RECORD_CAPSULE,
                                      record_capsule_free);
    if (capsule == NULL)
        return PYGATE_EPYTHON;
    pygate__record_ref(rec);   /* owned by the capsule from here */
    atomic_store(&rec->capsule_alive, 1);
    PyObject *held = compat_dict_publish(dict, RECORD_CAPSULE, capsule);
    Py_DECREF(capsule);
    if (held == NULL)
        return PYGATE_EPYTHON;
    if (held == capsule) {
        Py_DECREF(held);
        return PYGATE_OK;
    }
    return record_from_capsule(held, other);
}

/* Stores rec in the interpreter dict and installs the hook (one reference
 * each); *other as record_publish.  On failure: PYGATE_ENOMEM, or
 * PYGATE_EPYTHON with the Python exception left set. */
static int
record_install(record *rec, PyObject *dict, record **other)
{
    int rc = record_publish(rec, dict, other);
    if (rc != PYGATE_OK || *other != NULL)
        return rc;
    pygate__record_ref(rec);   /* the hook's */
    if (pygate__compat_register_shutdown_hook(record_shutdown, rec) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyDict_DelItemString(dict, RECORD_CAPSULE) < 0)
            PyErr_Clear();   /* ours to clear: the caller gets the first */
        pygate__record_mark_gone(rec);
        pygate__record_unref(rec);
        /* Out of memory is an error code of its own, with nothing set. */
        int no_memory = PyErr_GivenExceptionMatches(type, PyExc_MemoryError);
        PyErr_Restore(type, value, tb);
        if (no_memory)
            PyErr_Clear();
        return no_memory ? PYGATE_ENOMEM : PYGATE_EPYTHON;
    }
    return PYGATE_OK;
}

int
pygate__record_for_current(record **out)
{
    if (!pygate__compat_runtime_matches())
        return PYGATE_EVERSION;
    pthread_once(&record_key_once, record_key_init);
    PyThreadState *tstate = pygate__compat_current_tstate_attached();
    if (tstate == NULL)
        return PYGATE_ENOTATTACHED;
    PyInterpreterState *interp = PyThreadState_GetInterpreter(tstate);
    PyObject *dict = pygate__compat_interp_dict(interp);
    if (dict == NULL)
        return PYGATE_ENOMEM;

    PyObject *capsule;
    int found = PyDict_GetItemStringRef(dict, RECORD_CAPSULE, &capsule);
    if (found != 0)
        return found < 0 ? PYGATE_EPYTHON : record_from_capsule(capsule, out);
    /* No record yet and the runtime already past its atexit stage: a hook
     * installed now would never run. */
    if (Py_IsFinalizing())
        return PYGATE_EFINALIZING;

    int64_t id = PyInterpreterState_GetID(interp);
    if (id < 0)
        return PYGATE_EPYTHON;
    pygate__fork_watch();
    record *rec = pygate__record_new(interp, id);
    if (rec == NULL)
        return PYGATE_ENOMEM;
    record *other;
    int rc = record_install(rec, dict, &other);
    if (rc != PYGATE_OK || other != NULL) {
        pygate__record_mark_gone(rec);   /* never anyone's but ours */
        pygate__record_unref(rec);
        *out = other;
        return rc;
    }
    if (rec->is_main)
        pygate__record_set_main(rec);
    *out = rec;
    return PYGATE_OK;
}
