/*
 * pygate.h - safe, fast entry into CPython from any native thread.
 *
 * pygate lets any native thread (a pthread of a C/C++ host, a worker of an
 * extension's own thread pool) call into a CPython interpreter:
 *
 *   - safely: a thread attaches a thread state before touching Python and
 *     detaches it after, so it neither crashes nor starves other threads;
 *   - fast: a thread's state for an interpreter is created on its first entry
 *     and kept, so each later entry costs one attach/detach pair instead of
 *     creating and destroying a thread state (about 20 us on CPython 3.11+);
 *   - through shutdown: an entry either happens before the interpreter starts
 *     to finalize (which then waits for it) or fails with an error code.  A
 *     native thread is never killed, hung or handed freed memory by pygate.
 *
 * Supported: CPython 3.8 and later, with the GIL.
 *
 * Conventions (the libuv way):
 *   - Every function returns 0 (PYGATE_OK) or a negative PYGATE_E* code;
 *     pygate_strerror() and pygate_err_name() describe a code.
 *   - Nothing is reported through errno or globals.
 *   - Interpreters are named by views (pygate_view), never by a
 *     PyInterpreterState pointer, which dangles once the interpreter is gone.
 *
 * Debug mode.  Misuse (leaving without entering, leaving on another thread,
 * unbalanced nesting, leaving with a Python exception set) is reported in
 * debug mode by printing the problem and the caller's file and line to stderr
 * and aborting.  In release mode the call returns the error code and changes
 * nothing.  Debug mode is on when pygate is built with PYGATE_DEBUG=1 (the
 * default for CMake Debug builds); the environment variable PYGATE_DEBUG=0 or
 * PYGATE_DEBUG=1, read once, overrides the build default.
 */
#ifndef PYGATE_H
#define PYGATE_H

/* pygate's declarations use CPython's types (PyConfig), so this header
 * includes Python.h itself: include it before or after Python.h, in C or
 * C++.  CPython wants Python.h before any standard header, and on 3.8-3.9
 * PY_SSIZE_T_CLEAN defined before it: do either before including this. */
#include <Python.h>

#include <stdint.h>
#include <sys/types.h>   /* pid_t */

/* pygate is built for one CPython's ABI (major.minor, whether it is a
 * debug build, and whether it is free-threaded).  Its CMake package and pkg-config file pass what it was
 * built for to the code that uses it, and a mismatch stops here rather
 * than crash at run time. */
#if defined(PYGATE_PY_ABI) && PYGATE_PY_ABI != (PY_VERSION_HEX >> 16)
#  error "pygate was built for another CPython than this Python.h (PYGATE_PY_ABI: 0xMMmm): build or install pygate for this CPython"
#endif
#if defined(PYGATE_PY_DEBUG) && (PYGATE_PY_DEBUG != 0) != defined(Py_DEBUG)
#  error "pygate was built for a debug CPython and this is a release one, or the reverse (PYGATE_PY_DEBUG): build pygate for this CPython"
#endif
#if defined(PYGATE_PY_FREE_THREADED) && (PYGATE_PY_FREE_THREADED != 0) != defined(Py_GIL_DISABLED)
#  error "pygate was built for a free-threaded CPython and this one has a GIL, or the reverse (PYGATE_PY_FREE_THREADED): build pygate for this CPython"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API: the only symbols libpygate exports (it is built
 * with -fvisibility=hidden; its internal functions are named pygate__*).
 * A project that compiles pygate into its own shared object and wants
 * nothing of it exported defines PYGATE_API as
 * __attribute__((visibility("hidden"))) for pygate's sources. */
#ifndef PYGATE_API
#  if defined(__GNUC__) || defined(__clang__)
#    define PYGATE_API __attribute__((visibility("default")))
#  else
#    define PYGATE_API
#  endif
#endif

#define PYGATE_VERSION_MAJOR 0
#define PYGATE_VERSION_MINOR 1
#define PYGATE_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Error codes                                                              */
/* ------------------------------------------------------------------------ */

/* The one list of error codes: XX(name, value, description).  The enum
 * below, pygate_strerror(), pygate_err_name(), the table in docs/API.md
 * and the tests are all derived from it (libuv's UV_ERRNO_MAP).
 * PYGATE_EVERSION may come from any function that makes a view or guard
 * while attached, or from pygate_host_init(): libpygate then runs in a
 * process whose CPython is not the one it was built for (stderr names
 * both); nothing else of pygate works there. */
#define PYGATE_ERRNO_MAP(XX)                                                  \
    XX(EINVAL, -1, "invalid argument: NULL or not a live pygate handle")      \
    XX(ENOMEM, -2, "out of memory")                                           \
    XX(ENOTINIT, -3, "Python is not initialized")                             \
    XX(ENOTATTACHED, -4, "the calling thread has no attached thread state")   \
    XX(EFINALIZING, -5, "the interpreter is shutting down; no new entries")   \
    XX(EGONE, -6, "the interpreter no longer exists")                         \
    XX(ENOTENTERED, -7, "nothing to leave: the thread is not entered")        \
    XX(EWRONGTHREAD, -8, "the token (or the call) belongs to another thread") \
    XX(EUNBALANCED, -9, "the token is not the thread's innermost entry")      \
    XX(EEXCEPTION, -10, "a Python exception: still set where none may be "  \
                        "(handle it first), or raised by the function "   \
                        "pygate ran (reported, or in the result)")        \
    XX(EPYTHON, -11, "a CPython call failed; its exception is set")           \
    XX(EBUSY, -12, "busy: the thread is attached or inside an entry, or "     \
                   "another thread is in host init, shutdown or fork")        \
    XX(EALREADY, -13, "already done: host init was called before, or a "    \
                      "PyConfig came too late for a Python running")          \
    XX(EVERSION, -14, "libpygate was built for another CPython than the one " \
                      "in this process")                                      \
    XX(ETIMEDOUT, -15, "the wait timed out; the job is still queued or runs") \
    XX(ECANCELLED, -16, "the job was cancelled: it never ran")                \
    XX(ECLOSED, -17, "the pool is closed, or closing: no new jobs")

typedef enum pygate_errno {
    PYGATE_OK = 0,
#define PYGATE_XX_(name, value, text) PYGATE_##name = (value),
    PYGATE_ERRNO_MAP(PYGATE_XX_)
#undef PYGATE_XX_
} pygate_errno;

/* Returns a one-line English description of err ("unknown error" for a
 * code pygate does not define).  Never NULL; the string is static. */
PYGATE_API const char *pygate_strerror(int err);

/* Returns the symbolic name of err, e.g. "PYGATE_EGONE". Never NULL. */
PYGATE_API const char *pygate_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Views: handles that name an interpreter                                  */
/* ------------------------------------------------------------------------ */

/* A view names one interpreter.  It holds pygate's record of the
 * interpreter (its ID and lifetime state), never a bare pointer that could
 * dangle: a view may be kept, passed to other threads and used after the
 * interpreter is gone, when entering through it fails with PYGATE_EGONE.
 * A view is closed with pygate_view_close(); a handle that is closed, or
 * was never one, is refused with PYGATE_EINVAL by every function. */
typedef struct pygate_view pygate_view;

/* Makes a view of the interpreter the calling thread is attached to.
 * The first view of an interpreter installs pygate's shutdown hook in it
 * (an atexit callback), so this must be called while attached.
 * May block briefly on an internal lock.  Does not release the GIL.
 * Errors: PYGATE_EINVAL (out is NULL), PYGATE_ENOTATTACHED,
 *         PYGATE_EFINALIZING (the interpreter has begun shutting down),
 *         PYGATE_ENOMEM, PYGATE_EPYTHON (the hook could not be installed;
 *         the Python exception is left set for the caller). */
PYGATE_API int pygate_view_from_current(pygate_view **out);

/* Makes a view of the main interpreter.  May be called from any thread
 * once Python is initialized: attached to the main interpreter, or not
 * attached at all.  The first view of the main interpreter installs the
 * shutdown hook; if the caller is not attached then, pygate attaches a
 * temporary thread state (PyGILState) for it, which it cannot do for a
 * thread that has a thread state of another interpreter (or a detached
 * one of its own): such a thread gets PYGATE_ENOTATTACHED until a view of
 * the main interpreter exists.  May block on the GIL the first time.
 * Errors: PYGATE_EINVAL, PYGATE_ENOTINIT (Python is not initialized),
 *         PYGATE_ENOTATTACHED (see above), PYGATE_EFINALIZING,
 *         PYGATE_EGONE, PYGATE_ENOMEM, PYGATE_EPYTHON. */
PYGATE_API int pygate_view_from_main(pygate_view **out);

/* Closes a view.  Any thread, any time, attached or not, also after the
 * interpreter is gone.  Entries made through the view are not affected.
 * Closing a view twice, or pygate_host_view() (which is pygate's), is
 * misuse: in debug mode it aborts naming the caller's file and line; in
 * release mode it returns the error and changes nothing.
 * Errors: PYGATE_EINVAL (NULL, closed already, not a view: any pointer
 *         may be passed, none is dereferenced; or pygate_host_view()). */
#define pygate_view_close(view) \
    pygate_view_close_at((view), __FILE__, __LINE__)

PYGATE_API int pygate_view_close_at(pygate_view *view, const char *file,
                                    int line);

/* Returns the interpreter ID the view names (>= 0), or PYGATE_EINVAL. */
PYGATE_API int64_t pygate_view_id(const pygate_view *view);

/* ------------------------------------------------------------------------ */
/* Guards: holding an interpreter back from finalizing                      */
/* ------------------------------------------------------------------------ */

/* While a guard is held, the interpreter's shutdown (Py_FinalizeEx,
 * Py_EndInterpreter) waits in pygate's hook, before any thread state is
 * torn down, with its GIL released.  Once shutdown has begun no guard can
 * be taken.  Every entry holds one implicitly; an explicit guard is for
 * native work that must finish before the interpreter goes (flushing a
 * queue of Python callbacks, holding a lock the finalizer needs) and lets
 * the holder enter with pygate_enter_guarded(), which then cannot fail for
 * lifetime reasons.  A guard is closed once, on any thread (a second
 * close is refused with PYGATE_EINVAL).
 * Forgetting to close one makes shutdown wait (see
 * pygate_set_drain_limits for the bound and the reports). */
typedef struct pygate_guard pygate_guard;

/* Takes a guard on the interpreter named by view.  Any thread, attached or
 * not.  Never waits for the GIL or for shutdown: the guard itself is one
 * atomic add, and its handle is made under a brief lock (the first
 * handles of a process allocate a table page).  In debug mode it also
 * records the caller's file:line (an allocation), which shutdown reports
 * while waiting.
 * Errors: PYGATE_EINVAL (view or out NULL, view closed),
 *         PYGATE_EFINALIZING, PYGATE_EGONE, PYGATE_ENOMEM. */
#define pygate_guard_from_view(view, out) \
    pygate_guard_from_view_at((view), (out), __FILE__, __LINE__)

/* Takes a guard on the interpreter the calling thread is attached to.
 * Errors: PYGATE_EINVAL, PYGATE_ENOTATTACHED, PYGATE_EFINALIZING,
 *         PYGATE_ENOMEM, PYGATE_EPYTHON (as pygate_view_from_current). */
#define pygate_guard_from_current(out) \
    pygate_guard_from_current_at((out), __FILE__, __LINE__)

PYGATE_API int pygate_guard_from_view_at(pygate_view *view, pygate_guard **out,
                              const char *file, int line);
PYGATE_API int pygate_guard_from_current_at(pygate_guard **out,
                                 const char *file, int line);

/* Releases a guard; a shutdown waiting only for it proceeds.  Any thread,
 * attached or not.  Never waits for the GIL or for shutdown (it takes the
 * handle table's lock briefly, and in debug mode the record's).
 * Errors: PYGATE_EINVAL (NULL, closed already, or not a guard: any
 *         pointer may be passed; none is dereferenced).  A guard taken
 *         before a fork() no longer holds shutdown in the child (it still
 *         enters and closes; docs/ARCHITECTURE.md, "fork()"). */
PYGATE_API int pygate_guard_close(pygate_guard *guard);

/* Returns the interpreter ID the guard holds (>= 0), or PYGATE_EINVAL. */
PYGATE_API int64_t pygate_guard_id(const pygate_guard *guard);

/* Bounds every wait of pygate's at an interpreter's shutdown: for guards
 * and entries, and first for its pools' jobs (a job running, a
 * PYGATE_POOL_FINISH backlog, their callbacks; the main interpreter's
 * shutdown also waits for interpreter pools' jobs).  While waiting, pygate
 * prints on stderr every report_every seconds (default 5) what it waits
 * for: how many guards and entries are outstanding and, in debug mode,
 * where each was taken; or which pool, how many of its jobs are not
 * finished and how many workers are at work.  give_up_after seconds
 * (default: < 0, wait for ever) after the shutdown began it proceeds
 * anyway: threads still inside are then on their own, as CPython's daemon
 * threads are (killed or hung on their next attach, by CPython version);
 * a pool's queued jobs are cancelled and its running ones left so (its
 * close then waits for them no more); and a sub-interpreter whose states
 * are still in use cannot be ended (CPython aborts).  A bound trades that risk for a process that exits.
 * Ctrl-C ends the main interpreter's wait the same way, with the same
 * report, when Python's signal handlers are installed and shutdown runs
 * on the main thread: the wait runs the Python handlers of arriving
 * signals every 0.1 s, and one that raises (the default SIGINT handler
 * raises KeyboardInterrupt) ends it.  A handler that returns quietly, or
 * a host's own C handler (Py_InitializeEx(0)), leaves the wait as is.
 * Any thread, any time; applies to shutdowns that start afterwards.
 * Errors: PYGATE_EINVAL (report_every not > 0, or a value above 1e6). */
PYGATE_API int pygate_set_drain_limits(double report_every,
                                       double give_up_after);

/* ------------------------------------------------------------------------ */
/* Entering and leaving                                                     */
/* ------------------------------------------------------------------------ */

/* Proof of one entry (or detach), to be handed back to the matching leave
 * (or reattach).  Treat as opaque; copy it freely within its thread. */
typedef struct pygate_token {
    void *thread_;
    uint32_t level_;
    uint32_t kind_;
} pygate_token;

/* Attaches the calling thread to the interpreter named by view, so that it
 * may use the Python C API until the matching pygate_leave().
 *
 *  - The first entry of a thread into an interpreter creates a thread state
 *    for the pair and keeps it; later entries re-attach it.  A thread that
 *    already has a thread state for the interpreter (the main thread, a
 *    threading.Thread, one made by PyGILState_Ensure) uses that one.
 *  - Entering while already attached to the same interpreter only counts a
 *    nesting level (no CPython call).
 *  - Entering while attached to another interpreter detaches that one; the
 *    matching leave re-attaches it.
 *  - Every entry holds a guard on the interpreter: the interpreter does not
 *    finalize until every entry has left, and no entry starts once
 *    finalization has begun.
 *  - While entered, PyGILState_GetThisThreadState() is the attached state,
 *    so PyGILState_Ensure() in a callback finds it.  After the outermost
 *    leave a main-interpreter state stays there; for a sub-interpreter the
 *    thread's earlier state is bound again, and where there was none (or
 *    its interpreter is closing) the sub-interpreter state is deleted at
 *    that leave instead of kept (CPython 3.12+: docs/ARCHITECTURE.md, "The
 *    gilstate slot").
 *
 * May be called from any thread.  Blocks while waiting for the GIL.
 * Errors: PYGATE_EINVAL (view or token NULL, view closed),
 *         PYGATE_EFINALIZING, PYGATE_EGONE (nothing was attached; the thread
 *         is exactly as before), PYGATE_ENOMEM. */
#define pygate_enter(view, token) \
    pygate_enter_inline_((view), (token), __FILE__, __LINE__)

/* Undoes the entry that produced token: detaches (or only counts down a
 * nesting level) and re-attaches whatever was attached before the entry.
 * Must be called on the thread that entered, innermost entry first.
 * A Python exception still set when the leave would detach is misuse: the
 * exception would be lost or leak into an unrelated later call.  Handle it
 * (PyErr_Print, PyErr_Clear or pass it on) before leaving.  pygate never
 * clears an exception.
 * Blocks only when it re-attaches an outer interpreter (waiting for its GIL).
 * Errors (the thread stays exactly as it was): PYGATE_ENOTENTERED,
 *         PYGATE_EWRONGTHREAD, PYGATE_EUNBALANCED, PYGATE_EEXCEPTION. */
#define pygate_leave(token) pygate_leave_inline_((token), __FILE__, __LINE__)

/* Detaches the calling thread around native work that does not touch
 * Python (I/O, computation, waiting), letting other threads run Python
 * meanwhile; pygate_reattach(token) re-attaches the same thread state.
 * Like Py_BEGIN_ALLOW_THREADS, but known to pygate, so pygate_enter() inside
 * the detached stretch attaches for real.  The entry's guard stays held, so
 * the interpreter will not finalize during the native work; reattach never
 * fails for lifetime reasons.
 * Must be called attached.  Does not block.
 * Errors: PYGATE_EINVAL (token NULL), PYGATE_ENOTATTACHED,
 *         PYGATE_EEXCEPTION (an exception is set), PYGATE_ENOMEM. */
#define pygate_detach(token) pygate_detach_at((token), __FILE__, __LINE__)

/* Re-attaches after pygate_detach().  Blocks while waiting for the GIL.
 * Errors: PYGATE_ENOTENTERED, PYGATE_EWRONGTHREAD, PYGATE_EUNBALANCED. */
#define pygate_reattach(token) pygate_reattach_at((token), __FILE__, __LINE__)

/* Enters like pygate_enter(), for a caller that holds guard: the entry
 * then succeeds even while the interpreter's shutdown is waiting for
 * guards (it is waiting for this caller).  Blocks while waiting for the GIL.
 * Errors: PYGATE_EINVAL (guard or token NULL, guard closed),
 *         PYGATE_EGONE (only after shutdown gave up waiting),
 *         PYGATE_ENOMEM. */
#define pygate_enter_guarded(guard, token) \
    pygate_enter_guarded_at((guard), (token), __FILE__, __LINE__)

PYGATE_API int pygate_enter_at(pygate_view *view, pygate_token *token,
                    const char *file, int line);
PYGATE_API int pygate_enter_guarded_at(pygate_guard *guard,
                                       pygate_token *token,
                            const char *file, int line);
PYGATE_API int pygate_leave_at(pygate_token token, const char *file, int line);
PYGATE_API int pygate_detach_at(pygate_token *token, const char *file,
                                int line);
PYGATE_API int pygate_reattach_at(pygate_token token, const char *file,
                                  int line);

/* The inline path of pygate_enter() and pygate_leave() (and of the scoped
 * forms, PYGATE_ENTERED and pygate.hpp's pygate::entered): a nested entry,
 * into the interpreter the thread's innermost entry attached through the
 * same view, is counted here in the caller's code, without a call into
 * pygate (about 60 instructions a pair instead of 160 on 3.12.1, a third
 * of them CPython's current-state read: docs/PERFORMANCE.md).
 *
 * ABI contract (docs/ARCHITECTURE.md, "The fast record"): each copy of
 * pygate keeps, per thread, one pygate_fast_v1_ that it exports as
 * initial-exec TLS under that name.  pygate opens it (view_ != 0) only
 * after an entry by a view has attached, outside debug mode, and closes it
 * before anything else it does on the thread: before every call into the
 * library that is not this inline path, and on the thread that finalizes
 * the interpreter.  While it is open the thread's innermost entry attached
 * tstate_ through view_, the thread's token id is thread_, level_ counts
 * every open entry and detach, and nested_ the entries counted here on top
 * of the innermost one.  The inline path only reads these, counts nested_
 * and level_ up or down, and otherwise calls the exported functions, which
 * fold what it counted into the library's own bookkeeping.  A layout
 * change gets a new name (pygate_fast_v2_, pygate__fast_v2); a library
 * keeps exporting the older records, never opened, so that a program
 * built against an older header always takes the exported functions, and
 * a program built against a newer header than its library fails to load,
 * naming the missing record.  Building with PYGATE_NO_INLINE, or with
 * Py_LIMITED_API (no unchecked current-state read in it), compiles the
 * calls alone.
 *
 * On this path no file/line is kept (debug mode never opens the record:
 * every entry there takes the exported path, with its checks and sites);
 * a view closed since the outer entry is refused as on the exported path
 * (the close counts in pygate__views_closed_v1). */
#define PYGATE_TOKEN_ENTER_ 0x454e5452u   /* a token's kind_: an entry */
#define PYGATE_TOKEN_DETACH_ 0x44455441u  /* a token's kind_: a detach */

typedef struct pygate_fast_v1_ {
    uintptr_t view_;          /* the view of the innermost entry; 0: closed */
    PyThreadState *tstate_;   /* the state that entry attached */
    void *thread_;            /* the thread's token id */
    uint32_t level_;          /* open entries and detaches, nested_ too */
    uint32_t nested_;         /* entries counted inline on the innermost */
    uint32_t closes_;         /* pygate__views_closed_v1 before that entry */
} pygate_fast_v1_;

#if (defined(__GNUC__) || defined(__clang__)) && !defined(Py_LIMITED_API) \
    && !defined(PYGATE_NO_INLINE)
#  define PYGATE_INLINE_NESTING 1
#  if PY_VERSION_HEX >= 0x030D0000
#    define PYGATE_CURRENT_STATE_() PyThreadState_GetUnchecked()
#  else
#    define PYGATE_CURRENT_STATE_() _PyThreadState_UncheckedGet()
#  endif
PYGATE_API extern __thread pygate_fast_v1_ pygate__fast_v1
    __attribute__((tls_model("initial-exec")));
/* Counts view closes (part of the same contract): a record opened before
 * a close no longer matches, so a closed view is refused on this path as
 * on the exported one. */
PYGATE_API extern uint32_t pygate__views_closed_v1;
#else
#  define PYGATE_INLINE_NESTING 0
#endif

static inline int
pygate_enter_inline_(pygate_view *view, pygate_token *token,
                     const char *file, int line)
{
#if PYGATE_INLINE_NESTING
    pygate_fast_v1_ *fast = &pygate__fast_v1;
    if (fast->view_ == (uintptr_t)view && fast->view_ != 0 && token != NULL
            && fast->closes_ == __atomic_load_n(&pygate__views_closed_v1,
                                                __ATOMIC_RELAXED)
            && fast->tstate_ == PYGATE_CURRENT_STATE_()) {
        fast->nested_++;
        token->thread_ = fast->thread_;
        token->level_ = ++fast->level_;
        token->kind_ = PYGATE_TOKEN_ENTER_;
        return PYGATE_OK;
    }
#endif
    return pygate_enter_at(view, token, file, line);
}

/* Leaves inline the entry of token when it was counted inline and is the
 * innermost; returns 1 then, else 0 (nothing changed). */
static inline int
pygate_leave_counted_(pygate_token token)
{
#if PYGATE_INLINE_NESTING
    pygate_fast_v1_ *fast = &pygate__fast_v1;
    if (fast->nested_ != 0 && token.thread_ == fast->thread_
            && token.level_ == fast->level_
            && token.kind_ == PYGATE_TOKEN_ENTER_) {
        fast->nested_--;
        fast->level_--;
        return 1;
    }
#else
    (void)token;
#endif
    return 0;
}

static inline int
pygate_leave_inline_(pygate_token token, const char *file, int line)
{
    if (pygate_leave_counted_(token))
        return PYGATE_OK;
    return pygate_leave_at(token, file, line);
}

/* Returns the calling thread's number of open entries and detaches
 * (0 when it is inside none).  Never fails; does not block. */
PYGATE_API unsigned pygate_thread_depth(void);

/* ------------------------------------------------------------------------ */
/* Thread exit                                                              */
/* ------------------------------------------------------------------------ */

/* A thread that ends inside entries (a forgotten pygate_leave) is a
 * misuse: in debug mode its exit aborts, naming where each open entry was
 * made.  In release mode pygate leaves them at the thread's exit, the
 * innermost first, as pygate_leave would (an exception still set goes to
 * sys.unraisablehook), says so on stderr, and frees the thread's states:
 * the GIL and the guards go back, so other threads enter and shutdown
 * does not wait for the ended thread. */

/* Releases the thread states pygate keeps for the calling thread, now
 * rather than at thread exit (where pygate does it on its own).  States of
 * interpreters that are gone are forgotten without touching them.  The
 * thread may enter again later; it then gets fresh states.
 * Must not be called inside an entry.  Blocks while waiting for each
 * interpreter's GIL.
 * Errors: PYGATE_EBUSY (the thread is inside an entry or detach). */
PYGATE_API int pygate_thread_release(void);

/* For native threads that run code written against CPython's own
 * PyGILState_Ensure()/PyGILState_Release() (ctypes and cffi callbacks,
 * Cython's `with gil`, SWIG, Boost.Python): makes the thread's kept state
 * of the main interpreter (made now if it has none) the one PyGILState
 * finds, so each outermost Ensure/Release pair attaches and detaches it
 * instead of creating and deleting a thread state (threading.local()
 * data then lasts across calls, as on a Python thread).  Call it once on
 * the thread, for example when a worker starts; pygate frees the state at
 * thread exit, or at pygate_thread_release().  It changes nothing of what
 * CPython does with such a call once finalization began (the thread is
 * then killed or hung by CPython, by version): only pygate_enter() can
 * refuse cleanly.  A pygate entry into the main interpreter does the same
 * as a side effect.
 * Not attached, any native thread; blocks while waiting for the GIL once.
 * Errors: PYGATE_EINVAL (view not live, or not the main interpreter's:
 *         PyGILState knows only that one), PYGATE_EBUSY (the thread is
 *         attached, or its PyGILState slot holds a state of someone
 *         else's), PYGATE_EFINALIZING, PYGATE_EGONE, PYGATE_ENOMEM. */
PYGATE_API int pygate_thread_keep_gilstate(pygate_view *view);

/* ------------------------------------------------------------------------ */
/* Dropping a reference from any thread                                     */
/* ------------------------------------------------------------------------ */

/* Drops one reference to obj, an object of the view's interpreter, from
 * any thread, attached or not, without blocking and without attaching (for
 * a native library's destructor, or a callback's cleanup).  On a thread
 * attached to that interpreter it is Py_DECREF(obj), at once.  Otherwise
 * the reference is queued without a lock, and dropped by the next pygate
 * entry into that interpreter, on whichever thread makes it, or at the
 * latest by pygate's shutdown hook before any thread state is torn down.
 * obj NULL does nothing (as Py_XDECREF).  There is no deferred incref: the
 * caller must own the reference it gives away.  On a free-threaded CPython
 * an object made on another thread is then freed on the thread that made
 * it, at its next check for pending work (biased reference counting).
 * Errors: PYGATE_EINVAL (view not live), PYGATE_EFINALIZING (shutdown has
 *         begun: the reference is left alone, as a finalizing interpreter
 *         can afford; so is one queued at the very moment shutdown drains
 *         for the last time), PYGATE_EGONE (the interpreter is gone, and
 *         its objects with it), PYGATE_ENOMEM (the reference is left
 *         alone). */
PYGATE_API int pygate_decref(pygate_view *view, PyObject *obj);

/* ------------------------------------------------------------------------ */
/* Worker pools                                                             */
/* ------------------------------------------------------------------------ */

/* A pool: native threads bound to one interpreter, each with its kept
 * thread state, that run submitted jobs attached to it.  A worker that
 * holds the GIL runs queued jobs back to back, up to `batch` jobs and
 * `hold_seconds`, so a burst of small jobs costs one GIL hand-off rather
 * than one each, and Python threads still get the GIL within the bound.
 * While one worker runs jobs, another joins it only when that pays: when
 * it found the GIL free most of its last round (jobs that release the GIL
 * or block, which then run on every worker at once), or after standing by
 * for `hold_seconds` (say the running job waits for one queued behind
 * it).  Jobs that hold the GIL then run on one worker at a time, without
 * the workers handing the GIL to each other after every batch.  On a
 * free-threaded CPython there is no GIL to share: every worker runs jobs
 * at once, and none pauses every hold_seconds. */
typedef struct pygate_pool pygate_pool;
typedef struct pygate_job pygate_job;

/* A job: runs attached to the pool's interpreter; returns any int, handed
 * to its waiter.  If it leaves a Python exception set, the exception is
 * kept in the job (or, nobody waiting, reported to sys.unraisablehook). */
typedef int (*pygate_job_fn)(void *arg);

/* What closing a pool, or its interpreter's shutdown, does with jobs still
 * queued: run them all first, or cancel them (they never run). */
enum { PYGATE_POOL_FINISH = 0, PYGATE_POOL_CANCEL = 1 };

typedef struct pygate_pool_options {
    unsigned workers;      /* native threads; 0: one per CPU (<= 1024) */
    unsigned batch;        /* jobs per GIL hold; 0: 1024 */
    double hold_seconds;   /* bound of one hold; 0: 5 ms (CPython's switch
                              interval by default) */
    int on_close;          /* PYGATE_POOL_FINISH (0) or PYGATE_POOL_CANCEL */
    unsigned max_queued;   /* a bound on jobs not started yet; 0: none.
                              See pygate_pool_submit(). */
} pygate_pool_options;

/* Opens a pool on the view's interpreter (options NULL: the defaults) and
 * starts its workers.  Any thread, attached or not.
 * When the interpreter shuts down (Py_FinalizeEx, Py_EndInterpreter), the
 * pool stops first, before pygate's gate closes: it refuses new jobs
 * (PYGATE_EFINALIZING), finishes or cancels its queue as on_close says,
 * and its workers exit; jobs' exception objects are dropped then (their
 * text stays).  That wait is reported and bounded as
 * pygate_set_drain_limits says.  A pool nobody closes does not keep a process from exiting.
 * A worker that finds no memory for its thread state tries again every
 * millisecond; the queue waits meanwhile.
 * In a child of fork() the pool has no workers: it refuses new jobs
 * (PYGATE_ECLOSED), and the jobs it had end cancelled (docs/
 * ARCHITECTURE.md, "fork()"); close it there as usual.  A pool whose own
 * worker forked (os.fork() in a job) works on in the child with that
 * worker.
 * Errors: PYGATE_EINVAL (view not live, out NULL, an option out of range),
 *         PYGATE_EFINALIZING, PYGATE_EGONE, PYGATE_ENOMEM (also: a worker
 *         thread could not be started). */
PYGATE_API int pygate_pool_open(pygate_view *view,
                                const pygate_pool_options *options,
                                pygate_pool **out);

/* Closes a pool: refuses new jobs (PYGATE_ECLOSED), finishes or cancels
 * the queue as on_close says, waits for the workers to exit, and frees
 * the pool once no job handle refers to it.  Any thread but the pool's own
 * workers; blocks (with the GIL released if the caller is attached).  Also
 * after the interpreter is gone.
 * Errors: PYGATE_EINVAL (not a live pool: closed already, or never one),
 *         PYGATE_EBUSY (called from one of the pool's own jobs). */
PYGATE_API int pygate_pool_close(pygate_pool *pool);

/* Queues fn(arg) on the pool.  Any thread, attached or not, any
 * interpreter.  *job (if job is not NULL) is a handle to wait on, to close
 * with pygate_job_close(); with job NULL nobody waits.
 * Never blocks, except in a bounded pool (max_queued): there a caller that
 * is not attached and is not a pool's worker, finding max_queued jobs
 * not started yet, waits until half of them have started or the pool
 * stops accepting.  Attached callers and workers are let through: they
 * might hold what the workers need.  So the queue holds about max_queued
 * jobs (more when such callers or several submitters race).  A bound
 * keeps a fast producer's memory flat and its jobs in cache, which makes
 * bursts of small jobs run faster (docs/PERFORMANCE.md, "Many threads").
 * One thread's jobs are queued in the order it submitted them (with one
 * worker they run in that order; with more, one may start while another
 * worker's earlier one still runs).  Jobs with job NULL cost least: those
 * a thread submits one after another are queued together, up to 27, and
 * taken by a worker as one (each still counted and run on its own).
 * Errors: PYGATE_EINVAL (pool not live, fn NULL), PYGATE_ECLOSED (the pool
 *         is closed or closing), PYGATE_EFINALIZING (its interpreter is
 *         shutting down), PYGATE_ENOMEM.  Nothing is queued on error. */
PYGATE_API int pygate_pool_submit(pygate_pool *pool, pygate_job_fn fn,
                                  void *arg, pygate_job **job);

/* A completion callback: status PYGATE_OK when the job ran (result is
 * what it returned, exc what it raised or NULL, borrowed: take a
 * reference to keep it; the callback runs on the worker, attached), or
 * PYGATE_ECANCELLED when it never will (result 0, exc NULL; on the thread
 * that cancels, not attached). */
typedef void (*pygate_done_fn)(int status, int result, PyObject *exc,
                               void *arg);

/* pygate_pool_submit() with a completion callback instead of a handle:
 * done(status, result, exc, done_arg) is called exactly once for the job.
 * Errors: those of pygate_pool_submit(), and PYGATE_EINVAL for done NULL;
 *         done is not called on error. */
PYGATE_API int pygate_pool_submit_then(pygate_pool *pool, pygate_job_fn fn,
                                       void *arg, pygate_done_fn done,
                                       void *done_arg);

/* Jobs submitted, completed (ran) and cancelled (never ran) so far; once
 * the pool has stopped, submitted = completed + cancelled.  NULL outputs
 * are skipped.  Any thread.  Errors: PYGATE_EINVAL. */
PYGATE_API int pygate_pool_counts(pygate_pool *pool, uint64_t *submitted,
                                  uint64_t *completed, uint64_t *cancelled);

/* Waits for the job to end: timeout in seconds, < 0 for ever, 0 to poll,
 * measured on the monotonic clock (a step of the wall clock neither
 * stretches nor cuts it; so are the pool's own waits).  Any thread; an attached caller waits with the GIL released.
 * Returns PYGATE_OK when it ran (*result, if not NULL, is what it
 * returned; see pygate_job_exception for what it raised),
 * PYGATE_ECANCELLED when it never will, PYGATE_ETIMEDOUT,
 * PYGATE_EINVAL (not a live job). */
PYGATE_API int pygate_job_wait(pygate_job *job, double timeout, int *result);

/* The exception the job raised, as a new reference (NULL if none), for a
 * caller attached to the pool's interpreter.  Marks it collected.
 * Errors: PYGATE_EINVAL, PYGATE_ENOTATTACHED (not attached there),
 *         PYGATE_EBUSY (the job has not run yet), PYGATE_EGONE (the
 *         interpreter shut down: only the text is left). */
PYGATE_API int pygate_job_exception(pygate_job *job, PyObject **exc);

/* The same exception formatted as a traceback (NULL if none), owned by
 * the job until it is closed.  Any thread.  Marks it collected.
 * Errors: PYGATE_EINVAL, PYGATE_EBUSY (the job has not run yet). */
PYGATE_API int pygate_job_exception_text(pygate_job *job, const char **text);

/* Releases the handle (a job still queued or running goes on).  An
 * exception nobody collected goes to sys.unraisablehook, or to stderr
 * when its interpreter is shutting down or gone: it is never lost.  Any
 * thread.  Errors: PYGATE_EINVAL (not a live job). */
PYGATE_API int pygate_job_close(pygate_job *job);

/* Runs fn(arg) attached to the view's interpreter and returns when it has
 * run, *result (if not NULL) being what it returned.  Many native threads
 * calling at once are combined (flat combining): a caller that finds no
 * other one combining enters, runs its own call, then the calls the
 * others published meanwhile, one GIL hand-off for many calls.  So fn
 * may run on another thread's state: it sees that thread's
 * threading.get_ident() and threading.local(); pygate_enter() is the way
 * to run on the caller's own state.  A thread already attached (to any
 * interpreter) runs fn itself, entering as pygate_enter() does; so does
 * every thread on a free-threaded CPython, where there is no GIL hold to
 * share and calls run side by side (docs/API.md, "Free-threaded CPython").
 * fn may detach and wait for another thread's pygate_call: a call that no
 * combiner has taken for 50 ms is taken back and entered by its own
 * thread, so such waits end (after those 50 ms) instead of waiting for
 * each other.
 * Any thread; blocks until fn has run.  An exception fn leaves set is
 * reported to sys.unraisablehook (the thread that ran it could not hand it
 * over) and the call returns PYGATE_EEXCEPTION.
 * Errors: PYGATE_EINVAL (view not live, fn NULL), PYGATE_EFINALIZING,
 *         PYGATE_EGONE (fn did not run), PYGATE_EEXCEPTION (it ran and
 *         raised), PYGATE_ENOMEM. */
PYGATE_API int pygate_call(pygate_view *view, pygate_job_fn fn, void *arg,
                           int *result);

/* ------------------------------------------------------------------------ */
/* Interpreter pools: Python in parallel                                    */
/* ------------------------------------------------------------------------ */

/* An interpreter pool: K sub-interpreters made by pygate, each with a
 * worker pool of its own (above).  From CPython 3.12 on each interpreter
 * has its own GIL (PEP 684), so Python code in different interpreters runs
 * truly in parallel; before 3.12 they share the one GIL, and the pool
 * still works, one interpreter at a time (pygate_interp_pool_parallel
 * says which).  On a free-threaded CPython (3.14t) Python runs in
 * parallel in any interpreter, so there the pool is for isolation: each
 * interpreter has its own modules, globals and import state, and the
 * interpreters always run at once (shared_gil then only chooses the
 * legacy settings: the main allocator, fork, exec and daemon threads
 * allowed; CPython accepts only multi-phase-init extension modules in
 * them either way).  Objects cannot cross interpreters: jobs take and give C
 * data (or pygate_values, pygate_interp_pool_call).  Job handles are
 * pygate_jobs: wait on them and close them as for a worker pool. */
typedef struct pygate_interp_pool pygate_interp_pool;

typedef struct pygate_interp_pool_options {
    unsigned interpreters; /* K; 0: one per CPU (<= 256) */
    unsigned workers;      /* native threads per interpreter; 0: 1 */
    unsigned batch;        /* as pygate_pool_options */
    double hold_seconds;   /* as pygate_pool_options */
    int on_close;          /* PYGATE_POOL_FINISH (0) or PYGATE_POOL_CANCEL */
    int shared_gil;        /* nonzero: share the main GIL also on 3.12+
                              (for modules that refuse an own GIL) */
    pygate_job_fn init;    /* or NULL: runs once in each new interpreter,
                              attached, before it takes jobs (imports,
                              state); fails by returning nonzero or by
                              leaving an exception set */
    void *init_arg;
    unsigned max_queued;   /* as pygate_pool_options, per interpreter */
} pygate_interp_pool_options;

/* Opens an interpreter pool (options NULL: the defaults): makes the K
 * interpreters one after the other, on a thread of the pool's own that
 * lives until they are ended, runs init in each, and starts their
 * workers.  All or nothing: on any failure the interpreters made so far
 * are ended and nothing is left.  Any thread, attached or not (an attached
 * caller waits with its GIL released); blocks while the interpreters are
 * made (milliseconds each).  Python must be initialized.
 * When the main interpreter finalizes with the pool open, pygate's hook
 * stops the pool first, as pygate_interp_pool_close would, and ends its
 * interpreters in order, so Py_FinalizeEx neither aborts nor hangs; jobs
 * submitted meanwhile get PYGATE_EFINALIZING.
 * error (if not NULL, error_size bytes) receives why it failed, with the
 * Python traceback when init raised (an import of a module that refuses
 * sub-interpreters raises ImportError naming it).
 * Errors: PYGATE_EINVAL (out NULL, an option out of range),
 *         PYGATE_ENOTINIT, PYGATE_EFINALIZING, PYGATE_EEXCEPTION (init
 *         failed), PYGATE_EPYTHON (CPython could not make an interpreter),
 *         PYGATE_ENOMEM. */
PYGATE_API int pygate_interp_pool_open(
    const pygate_interp_pool_options *options, pygate_interp_pool **out,
    char *error, size_t error_size);

/* Closes the pool: refuses new jobs (PYGATE_ECLOSED), finishes or cancels
 * the queued ones as on_close says, stops the workers, then ends every
 * interpreter (Py_EndInterpreter, on the thread that made it: CPython
 * 3.14+ leaks an interpreter ended on another thread whose stack lies
 * below that one's) and frees every thread state.  Any thread but the pool's own workers; blocks (an
 * attached caller with its GIL released).  After the main interpreter
 * finalized it only frees the handle.
 * Errors: PYGATE_EINVAL (not a live pool), PYGATE_EBUSY (called from one
 *         of the pool's own jobs). */
PYGATE_API int pygate_interp_pool_close(pygate_interp_pool *pool);

/* The number of interpreters (K), or PYGATE_EINVAL. */
PYGATE_API int pygate_interp_pool_size(pygate_interp_pool *pool);

/* 1 when Python runs in the interpreters at once (a GIL each: 3.12+
 * unless shared_gil; always on a free-threaded CPython), 0 when they share
 * the main GIL, or PYGATE_EINVAL. */
PYGATE_API int pygate_interp_pool_parallel(pygate_interp_pool *pool);

/* A new view of interpreter `index` (0..K-1), to enter it directly or to
 * open more pools on it; close it with pygate_view_close().  Entering
 * fails with PYGATE_EGONE once the pool has ended the interpreter.
 * Errors: PYGATE_EINVAL (pool not live, index out of range, out NULL),
 *         PYGATE_ECLOSED (the pool is closing), PYGATE_ENOMEM. */
PYGATE_API int pygate_interp_pool_view(pygate_interp_pool *pool,
                                       int index, pygate_view **out);

/* Any interpreter: the one with the fewest jobs queued or running. */
#define PYGATE_ANY_INTERP (-1)

/* Queues fn(arg) on interpreter `index`, or PYGATE_ANY_INTERP; otherwise
 * as pygate_pool_submit (job NULL: nobody waits).  Any thread, attached or
 * not.  Never blocks, except with max_queued, as pygate_pool_submit: an
 * unattached caller waits while the member's queue is full
 * (test_interp_pool.bounded_member_makes_submitter_wait).
 * Errors: PYGATE_EINVAL (pool not live, index out of range, fn NULL),
 *         PYGATE_ECLOSED (closing), PYGATE_EFINALIZING (the main
 *         interpreter is finalizing), PYGATE_ENOMEM. */
PYGATE_API int pygate_interp_pool_submit(pygate_interp_pool *pool,
                                         int index, pygate_job_fn fn,
                                         void *arg, pygate_job **job);

/* pygate_interp_pool_submit() with a completion callback instead of a
 * handle, as pygate_pool_submit_then(): done(status, result, exc,
 * done_arg) is called exactly once for the job, on the worker (attached
 * to the member's interpreter) when it ran, or not attached when it was
 * cancelled.
 * Errors: those of pygate_interp_pool_submit(), and PYGATE_EINVAL for
 *         done NULL; done is not called on error. */
PYGATE_API int pygate_interp_pool_submit_then(pygate_interp_pool *pool,
                                              int index, pygate_job_fn fn,
                                              void *arg, pygate_done_fn done,
                                              void *done_arg);

/* Jobs submitted, completed and cancelled so far, all interpreters
 * together; once the pool is closed, submitted = completed + cancelled.
 * Errors: PYGATE_EINVAL. */
PYGATE_API int pygate_interp_pool_counts(pygate_interp_pool *pool,
                                         uint64_t *submitted,
                                         uint64_t *completed,
                                         uint64_t *cancelled);

/* A value that crosses interpreters: an argument or result of
 * pygate_interp_pool_call.  data is UTF-8 for STR (size bytes, plus a
 * terminating NUL in results), raw bytes for BYTES; an ERROR result holds
 * the formatted traceback as STR does. */
typedef enum pygate_value_kind {
    PYGATE_VALUE_NONE = 0,
    PYGATE_VALUE_INT,
    PYGATE_VALUE_FLOAT,
    PYGATE_VALUE_BYTES,
    PYGATE_VALUE_STR,
    PYGATE_VALUE_ERROR
} pygate_value_kind;

typedef struct pygate_value {
    pygate_value_kind kind;
    long long integer;     /* INT */
    double number;         /* FLOAT */
    const char *data;      /* BYTES, STR, ERROR */
    size_t size;
} pygate_value;

/* Calls module.function(*args) in interpreter `index` (or
 * PYGATE_ANY_INTERP) and waits for it: arguments and result are
 * pygate_values (None, int, float, bytes, str), so no C glue is needed.
 * *result receives the return value, owned by the caller (free it with
 * pygate_value_clear); when the function raised, or returned another
 * type, it is PYGATE_VALUE_ERROR with the traceback.  The module is
 * imported in that interpreter on first use (cached by Python's import).
 * Any thread; blocks (an attached caller with its GIL released).
 * Errors: those of pygate_interp_pool_submit, PYGATE_EINVAL (module,
 *         function or result NULL, args NULL with nargs > 0, an argument
 *         of unknown kind), PYGATE_EEXCEPTION (it raised: see *result),
 *         PYGATE_ECANCELLED (the pool closed before it ran),
 *         PYGATE_ENOMEM (also: the function ran, but there was no memory
 *         to hand its result or traceback back; *result is NONE). */
PYGATE_API int pygate_interp_pool_call(pygate_interp_pool *pool, int index,
                                       const char *module,
                                       const char *function,
                                       const pygate_value *args,
                                       size_t nargs, pygate_value *result);

/* Frees what a result holds and makes it PYGATE_VALUE_NONE.  Only for
 * results pygate filled in; NULL is ignored. */
PYGATE_API void pygate_value_clear(pygate_value *value);

/* ------------------------------------------------------------------------ */
/* Host lifecycle (embedders)                                               */
/* ------------------------------------------------------------------------ */

/* For a host that embeds Python.  Initializes Python unless it already is
 * (config: a PyConfig to initialize with, or NULL for the defaults with
 * Python's signal handlers left out, as Py_InitializeEx(0)), installs
 * pygate's shutdown hook in the main interpreter and then detaches the
 * calling thread, so that Python threads and other native threads run
 * while the host does native work (a host that keeps the GIL after
 * start-up stalls every other thread).  Afterwards the host enters like any
 * other thread, with pygate_view_from_main() or pygate_host_view().
 * If Python was initialized by someone else, config must be NULL; the
 * calling thread is detached if it is attached.
 * Any thread.  Blocks while Python initializes.
 * After a shutdown (pygate_host_shutdown, or Python finalized by other
 * means) it initializes afresh.
 * Errors: PYGATE_EALREADY (host init done already and Python not shut
 *         down since, or config given while Python is already
 *         initialized),
 *         PYGATE_EBUSY (another thread is in host init or shutdown),
 *         PYGATE_EPYTHON (initialization failed: the reason is printed on
 *         stderr; or the hook could not be installed), PYGATE_ENOMEM. */
#if !defined(Py_LIMITED_API)
PYGATE_API int pygate_host_init(const PyConfig *config);
#endif

/* The main interpreter's view kept by pygate_host_init (owned by pygate:
 * do not close it), or NULL before the first host init.  It outlives the
 * interpreter: after shutdown, by pygate_host_shutdown or by any other
 * means, entering through it gives PYGATE_EFINALIZING or PYGATE_EGONE,
 * until the next pygate_host_init replaces it (a thread that read it just
 * before that gets PYGATE_EINVAL from it).  Any thread; never blocks. */
PYGATE_API pygate_view *pygate_host_view(void);

/* Shuts Python down: waits for pygate guards and entries to drain, then
 * finalizes (Py_FinalizeEx; non-daemon threading threads are joined
 * first, as usual).  Callable from any thread, not only the one that
 * called pygate_host_init(); the caller must not be attached (detach or
 * leave first).  On CPython 3.13+ another thread finalizes with the init
 * thread's main-interpreter state, as CPython requires (pygate_host_init
 * keeps it unbound for that), told the stack it now runs on (3.14+
 * otherwise frees no GC object during the finalization on a thread whose
 * stack lies below the init thread's).  Blocks until shutdown completes.
 * pygate_host_init() may be called again afterwards.
 * Python may also have ended by other means (a plain Py_FinalizeEx on
 * any thread, sys.exit): pygate then forgets the host, without touching
 * what CPython freed, and returns PYGATE_ENOTINIT, so generic clean-up
 * may call this whatever ended Python.
 * Errors: PYGATE_ENOTINIT (no pygate_host_init, shut down already, or
 *         Python finalized by other means),
 *         PYGATE_EBUSY (the caller is attached or inside an entry, or
 *         another thread is in host init or shutdown, or is finalizing
 *         Python by other means right now),
 *         PYGATE_EPYTHON (Py_FinalizeEx reported an error flushing
 *         buffered data; Python is finalized all the same). */
PYGATE_API int pygate_host_shutdown(void);

/* fork() for a host started with pygate_host_init(): forks the process the
 * way CPython needs (attached, between PyOS_BeforeFork() and
 * PyOS_AfterFork_Parent()/PyOS_AfterFork_Child()), and returns with the
 * calling thread detached again in both processes.  *pid is fork()'s
 * result: 0 in the child, the child's pid in the parent.
 * In the child only the calling thread exists: pygate has forgotten every
 * other thread's states, entries and guards (docs/ARCHITECTURE.md, "fork"),
 * so the child's threads enter as usual and pygate_host_shutdown() does not
 * wait for threads the child does not have.  Other threads may go on
 * entering, submitting jobs and making or closing handles meanwhile:
 * pygate's pthread_atfork handlers hold each of its locks across the fork,
 * so the child inherits none held (what such a thread had in hand, a job
 * made and not yet queued, is lost with it in the child).
 * The caller must not be attached or inside an entry.  On CPython 3.13+
 * only the thread that called pygate_host_init() may fork: CPython's child
 * can finalize only on it (Py_FinalizeEx uses the init thread's state,
 * which the child keeps only if that thread forked attached to it); up to
 * 3.12 any thread may.  Blocks while waiting for the GIL.
 * A host may also fork by hand (attached: PyOS_BeforeFork(), fork(),
 * PyOS_AfterFork_*()); pygate's pthread_atfork handlers do the same
 * forgetting, but on 3.13+ the child can then finalize only if the
 * forking thread was attached to the init thread's first state.
 * A sub-interpreter alive (one of an interpreter pool, or any other) makes
 * it refuse: CPython's child cannot survive one (up to 3.12 it hangs in
 * PyOS_AfterFork_Child, from 3.13 it dies; 3.8-3.15.2 alike).
 * Errors: PYGATE_EINVAL (pid NULL), PYGATE_ENOTINIT (no host init, or
 *         Python shut down since),
 *         PYGATE_EBUSY (the caller is attached or inside an entry,
 *         another thread is in host init, shutdown or fork, or a
 *         sub-interpreter is alive; nothing was forked),
 *         PYGATE_EWRONGTHREAD (3.13+, not the init thread),
 *         PYGATE_ENOMEM (fork() failed: EAGAIN or ENOMEM; *pid is -1). */
PYGATE_API int pygate_host_fork(pid_t *pid);

/* ------------------------------------------------------------------------ */
/* Scoped forms (gcc and clang)                                             */
/* ------------------------------------------------------------------------ */

#if defined(__GNUC__) || defined(__clang__)

typedef struct pygate_scope_ {
    pygate_token token;
    const char *file;
    int line;
    int active;
} pygate_scope_;

PYGATE_API pygate_scope_ pygate_scope_enter_(pygate_view *view, int *rc,
                                  const char *file, int line);
PYGATE_API pygate_scope_ pygate_scope_detach_(int *rc, const char *file,
                                              int line);
PYGATE_API void pygate_scope_end_(pygate_scope_ *scope);

/* The scoped forms' entry and end, with the inline path of pygate_enter()
 * and pygate_leave() (a nested entry's leave never reports an exception:
 * it does not detach). */
static inline pygate_scope_
pygate_scope_enter_inline_(pygate_view *view, int *rc, const char *file,
                           int line)
{
    pygate_scope_ scope = {{0, 0, 0}, file, line, 0};
    int r = pygate_enter_inline_(view, &scope.token, file, line);
    if (rc != 0)
        *rc = r;
    scope.active = r == PYGATE_OK;
    return scope;
}

static inline void
pygate_scope_end_inline_(pygate_scope_ *scope)
{
    if (scope->active && pygate_leave_counted_(scope->token)) {
        scope->active = 0;
        return;
    }
    pygate_scope_end_(scope);
}

/* PYGATE_ENTERED(view, &rc) { ...Python calls... }
 * Enters the interpreter, runs the block, and always leaves, also on an
 * early return, break or goto out of the block.  *rc receives the entry's
 * result; when it is negative the block does not run.  A Python exception
 * still set at the end of the block cannot propagate out of a C scope: it
 * is reported through sys.unraisablehook (PyErr_WriteUnraisable) and then
 * the scope leaves; in debug mode it is a misuse and aborts. */
#define PYGATE_ENTERED(view, rcp)                                          \
    for (pygate_scope_ pygate_scope_var_                                   \
             __attribute__((cleanup(pygate_scope_end_inline_))) =          \
             pygate_scope_enter_inline_((view), (rcp), __FILE__, __LINE__); \
         pygate_scope_var_.active == 1; pygate_scope_var_.active = 2)

/* PYGATE_DETACHED(&rc) { ...native work... }
 * Detaches for the block and always re-attaches after it.  Usable inside
 * an entered region or PYGATE_ENTERED block. */
#define PYGATE_DETACHED(rcp)                                               \
    for (pygate_scope_ pygate_scope_var_                                   \
             __attribute__((cleanup(pygate_scope_end_))) =                 \
             pygate_scope_detach_((rcp), __FILE__, __LINE__);              \
         pygate_scope_var_.active == 1; pygate_scope_var_.active = 2)

#endif /* __GNUC__ || __clang__ */

#ifdef __cplusplus
}
#endif

#endif /* PYGATE_H */
