/*
 * host.c - the embedder's lifecycle: initialize and detach (so that the
 * host does not starve other threads), shut down from any thread, fork.
 *
 * One process-wide state machine, NONE -> BUSY -> RUNNING -> BUSY -> NONE,
 * moved by compare-and-swap, so that a second init, a shutdown without
 * init, or two threads racing get an error code instead of a crash.
 *
 * Python may also end under a RUNNING host without pygate_host_shutdown:
 * a plain Py_FinalizeEx on any thread, or sys.exit's.  The host's view then
 * names a record that is closing or gone (the hook ran), and every host
 * call looks at it first (host_claim_running): host_saved was freed with
 * the other thread states, so touching it would kill or abort the caller.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

enum { HOST_NONE, HOST_BUSY, HOST_RUNNING };

static _Atomic int host_phase = HOST_NONE;
/* The main interpreter's view made by the last host init, kept after
 * shutdown (entering through it then fails with EFINALIZING or EGONE, as
 * the guide's error handling expects) until the next init replaces it.
 * Written only by the thread that holds HOST_BUSY. */
static pygate_view *_Atomic host_view;
static PyThreadState *host_saved;   /* the init thread's state, detached */
static pthread_t host_thread;
static pthread_once_t host_fork_once = PTHREAD_ONCE_INIT;

/* pthread_atfork child handler: in a child only the forking thread is
 * left, and PyOS_AfterFork_Child keeps only the state it has attached.
 * host_saved survives only if it is that state (pygate_host_fork); the
 * forking thread is the host thread from now on. */
static void
host_after_fork_child(void)
{
    if (host_saved != NULL && host_saved != pygate__compat_current_tstate())
        host_saved = NULL;
    host_thread = pthread_self();
}

static void
host_watch_fork(void)
{
    if (pthread_atfork(NULL, NULL, host_after_fork_child) != 0) {
        fprintf(stderr, "pygate: pthread_atfork failed\n");
        abort();
    }
}

/* Moves the phase from `from` to BUSY, or says why it cannot. */
static int
host_claim(int from)
{
    int seen = from;
    if (atomic_compare_exchange_strong(&host_phase, &seen, HOST_BUSY))
        return PYGATE_OK;
    if (seen == HOST_BUSY)
        return PYGATE_EBUSY;
    return from == HOST_NONE ? PYGATE_EALREADY : PYGATE_ENOTINIT;
}

static int
initialize(const PyConfig *config)
{
    if (config == NULL) {
        Py_InitializeEx(0);   /* aborts on failure, as CPython does */
        return PYGATE_OK;
    }
    PyStatus status = Py_InitializeFromConfig(config);
    if (PyStatus_Exception(status)) {
        fprintf(stderr, "pygate: Python initialization failed: %s%s%s\n",
                status.func != NULL ? status.func : "",
                status.func != NULL ? ": " : "",
                status.err_msg != NULL ? status.err_msg
                                       : "it asked to exit the process");
        return PYGATE_EPYTHON;
    }
    return PYGATE_OK;
}

static int
host_start(const PyConfig *config)
{
    if (Py_IsInitialized()) {
        if (config != NULL)
            return PYGATE_EALREADY;   /* it could not be applied */
    } else {
        int rc = initialize(config);
        if (rc != PYGATE_OK)
            return rc;
    }
    PyThreadState *current = pygate__compat_current_tstate();
    pygate_view *view;
    int rc = pygate_view_from_main(&view);
    if (rc != PYGATE_OK)
        return rc;
    host_saved = NULL;
    if (current != NULL
            && (rc = pygate__thread_detach_unbound(pygate__view_record(view),
                                                   &host_saved))
               != PYGATE_OK) {
        pygate__view_close(view);
        return rc;
    }
    /* A thread that read the old view a moment ago gets EINVAL from it:
     * the one race left, and only with a re-init. */
    pygate__view_pin(view);
    pygate_view *old = atomic_exchange(&host_view, view);
    if (old != NULL)
        pygate__view_close_pinned(old);
    host_thread = pthread_self();
    pthread_once(&host_fork_once, host_watch_fork);
    return PYGATE_OK;
}

/* Under HOST_BUSY, claimed from RUNNING: 0 while the host's Python runs;
 * else PYGATE_EBUSY while someone else's finalization runs, or
 * PYGATE_ENOTINIT once it ended, when the host is forgotten (host_saved
 * was freed with every other state) and the phase is left to the caller. */
static int
host_outlived(void)
{
    record *rec = pygate__view_record(atomic_load(&host_view));
    int phase = rec != NULL ? atomic_load(&rec->phase) : PHASE_GONE;
    if (phase == PHASE_OPEN && Py_IsInitialized())
        return 0;
    if (phase == PHASE_CLOSING)
        return PYGATE_EBUSY;   /* the hook runs: Python is not gone yet */
    host_saved = NULL;
    return PYGATE_ENOTINIT;
}

/* Claims a RUNNING host whose Python still runs; a host that Python ended
 * under goes back to NONE and the caller gets PYGATE_ENOTINIT. */
static int
host_claim_running(void)
{
    int rc = host_claim(HOST_RUNNING);
    if (rc != PYGATE_OK)
        return rc;
    rc = host_outlived();
    if (rc != PYGATE_OK)
        atomic_store(&host_phase, rc == PYGATE_ENOTINIT ? HOST_NONE
                                                        : HOST_RUNNING);
    return rc;
}

/* Claims the host for init: from NONE, or from a RUNNING host whose
 * Python ended by other means. */
static int
host_claim_for_init(void)
{
    int rc = host_claim(HOST_NONE);
    if (rc != PYGATE_EALREADY)
        return rc;
    rc = host_claim_running();
    if (rc == PYGATE_OK) {
        atomic_store(&host_phase, HOST_RUNNING);
        return PYGATE_EALREADY;
    }
    return rc == PYGATE_ENOTINIT ? host_claim(HOST_NONE) : rc;
}

int
pygate__impl_host_init(const PyConfig *config)
{
    if (!pygate__compat_runtime_matches())
        return PYGATE_EVERSION;
    int rc = host_claim_for_init();
    if (rc != PYGATE_OK)
        return rc;
    rc = host_start(config);
    atomic_store(&host_phase, rc == PYGATE_OK ? HOST_RUNNING : HOST_NONE);
    return rc;
}

pygate_view *
pygate__impl_host_view(void)
{
    return atomic_load(&host_view);
}

/* Attaches the calling thread to the main interpreter for Py_FinalizeEx:
 * the init thread takes its own state back; so does any other thread
 * where CPython finalizes with the main thread's state (compat.h); up to
 * 3.12, and on free-threaded builds, any other thread enters (and there
 * becomes the runtime's main thread). */
static int
attach_for_finalize(pygate_token *token, int *entered)
{
    *entered = 0;
    int own = pthread_equal(host_thread, pthread_self());
    if (host_saved != NULL && (COMPAT_FINALIZE_USES_MAIN_TSTATE || own)) {
        PyEval_RestoreThread(host_saved);
        if (!own)   /* the init thread's stack bounds (compat.h) */
            pygate__compat_adopt_stack(host_saved);
        host_saved = NULL;
        return PYGATE_OK;
    }
    int rc = pygate__enter(atomic_load(&host_view), token);
    if (rc != PYGATE_OK)
        return rc;
    *entered = 1;
    host_saved = NULL;   /* Py_FinalizeEx deletes it with the others */
    pygate__compat_finalize_here(pygate__compat_current_tstate());
    if (pygate__compat_finish_main_thread_object() < 0) {
        /* Shutdown may then wait for the init thread's state to go;
         * report why rather than hide it. */
        PyErr_WriteUnraisable(NULL);
    }
    return PYGATE_OK;
}

/* Whether the calling thread is neither attached nor inside an entry, as
 * shutdown and fork need. */
static int
caller_is_outside_python(void)
{
    pygate_thread *t = pygate__thread_self(0);
    return (t == NULL || t->nframes == 0)
           && pygate__compat_current_tstate() == NULL;
}

static int
host_finalize(void)
{
    if (!caller_is_outside_python())
        return PYGATE_EBUSY;
    pygate_token token;
    int entered;
    int rc = attach_for_finalize(&token, &entered);
    if (rc != PYGATE_OK)
        return rc;
    /* The hook runs inside, on this thread, and waits for every other
     * guard; this thread's own entry is not counted. */
    int status = Py_FinalizeEx();
    if (entered)
        pygate__leave(token);   /* interpreter gone: only pops the frame */
    return status < 0 ? PYGATE_EPYTHON : PYGATE_OK;
}

int
pygate__impl_host_shutdown(void)
{
    int rc = host_claim_running();
    if (rc != PYGATE_OK)
        return rc;
    rc = host_finalize();
    int finalized = rc == PYGATE_OK || rc == PYGATE_EPYTHON;
    atomic_store(&host_phase, finalized ? HOST_NONE : HOST_RUNNING);
    return rc;
}

/* ---- fork() ------------------------------------------------------------- */

/* Parks host_saved again after it was attached for the fork: detached, and
 * on 3.13+ unbound (pygate__thread_detach_unbound), as pygate_host_init
 * left it. */
static int
repark_host_state(void)
{
    return pygate__thread_detach_unbound(
        pygate__view_record(atomic_load(&host_view)), &host_saved);
}

/* Attached, holding the GIL: forks with CPython's before and after
 * hooks, in both processes. */
static int
fork_attached(pid_t *pid)
{
    /* CPython's child cannot survive a live sub-interpreter: up to 3.12
     * PyOS_AfterFork_Child hangs deleting it, from 3.13 it dies of a fatal
     * error (test_fork.c, cpython_forks_with_subinterpreter). */
    if (PyInterpreterState_Next(PyInterpreterState_Head()) != NULL)
        return PYGATE_EBUSY;
    PyOS_BeforeFork();
    *pid = fork();
    int fork_errno = errno;
    if (*pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    if (*pid < 0)
        return fork_errno == ENOSYS ? PYGATE_EINVAL : PYGATE_ENOMEM;
    return PYGATE_OK;
}

static int
host_fork(pid_t *pid)
{
    if (!caller_is_outside_python())
        return PYGATE_EBUSY;
    int own = pthread_equal(host_thread, pthread_self());
    if (COMPAT_CHILD_FINALIZES_ON_INIT_THREAD && !own)
        return PYGATE_EWRONGTHREAD;
    /* The init thread forks attached to its own first state: the one
     * CPython 3.13+ finalizes with (compat.h), which the child keeps. */
    pygate_token token;
    int parked = own && host_saved != NULL;
    if (parked) {
        PyEval_RestoreThread(host_saved);
    } else {
        int rc = pygate__enter(atomic_load(&host_view), &token);
        if (rc != PYGATE_OK)
            return rc;
    }
    int forked = fork_attached(pid);
    int rc = parked ? repark_host_state() : pygate__leave(token);
    return rc != PYGATE_OK ? rc : forked;
}

int
pygate__impl_host_fork(pid_t *pid)
{
    if (pid == NULL)
        return PYGATE_EINVAL;
    *pid = -1;
    int rc = host_claim_running();
    if (rc != PYGATE_OK)
        return rc;
    rc = host_fork(pid);
    atomic_store(&host_phase, HOST_RUNNING);
    return rc;
}
