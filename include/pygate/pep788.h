/*
 * pygate/pep788.h - PEP 788's interpreter guards, views and
 * PyThreadState_Ensure on every CPython from 3.8.
 *
 * Code written against these names compiles and runs unchanged on every
 * CPython from 3.8, with pygate's behaviour on all of them: the names are
 * macros for pygate's implementations (pygate_PyThreadState_Ensure and so
 * on), so libpygate puts no symbol in CPython's namespace and nothing
 * clashes with CPython 3.15's own functions or another backport.  Include
 * it instead of declaring the names yourself (or build with
 * `-include pygate/pep788.h`); Python.h must be includable first.
 *
 * On 3.15+ CPython has the same names itself.  pygate's differ from them
 * where it matters for native threads (below): shutdown completes under
 * any load, bounded by the longest call in flight, where CPython's waits
 * for a moment with no guard held, which busy threads may never give; and
 * an Ensure reuses the thread's kept state instead of creating and
 * deleting one per outermost call (about 13 us on 3.15).  Define
 * PYGATE_PEP788_NATIVE before including this header to get CPython's own
 * functions on 3.15+ instead (on 3.8-3.14 there are none, and the switch
 * changes nothing).  Objects of one kind must not be passed to the other:
 * a view or guard made by pygate's functions is not CPython's, and the
 * reverse.  The two live side by side in one process: pygate's shutdown
 * hook drains pygate's entries, then CPython waits for its own guards.
 *
 *   PyInterpreterGuard *PyInterpreterGuard_FromCurrent(void);
 *       Attached.  NULL with an exception set if the interpreter has begun
 *       finalizing or memory ran out.
 *   PyInterpreterGuard *PyInterpreterGuard_FromView(PyInterpreterView *);
 *       Any thread.  NULL, no exception, if the interpreter is finalizing,
 *       gone, or memory ran out.
 *   void PyInterpreterGuard_Close(PyInterpreterGuard *);
 *       Any thread; cannot fail.  Shutdown waits until every guard is
 *       closed.
 *   PyInterpreterView *PyInterpreterView_FromCurrent(void);
 *       Attached.  NULL with an exception set on failure.
 *   PyInterpreterView *PyInterpreterView_FromMain(void);
 *       Any thread.  NULL, no exception, if Python is not initialized or
 *       the main interpreter is finalizing or gone.
 *   void PyInterpreterView_Close(PyInterpreterView *);
 *       Any thread; cannot fail.
 *   PyThreadStateToken *PyThreadState_Ensure(PyInterpreterGuard *);
 *   PyThreadStateToken *PyThreadState_EnsureFromView(PyInterpreterView *);
 *       Any thread.  Make the calling thread attached to the interpreter,
 *       nesting like PyGILState_Ensure; NULL, no exception, on failure (do
 *       not call Release then).  FromView also guards the interpreter
 *       until the matching Release.
 *   void PyThreadState_Release(PyThreadStateToken *);
 *       Undoes one Ensure, on the same thread, innermost first.
 *
 * Where pygate's functions differ from CPython 3.15's (docs/API.md):
 *   - pygate keeps the thread state an Ensure created, for the next Ensure
 *     on that thread (PEP 788 deletes it at the outermost Release); it is
 *     deleted at thread exit or by pygate_thread_release().
 *   - A Python exception still set at Release is reported through
 *     sys.unraisablehook and cleared, so that it cannot leak into the next
 *     call on the kept state (a misuse that aborts in pygate's debug mode).
 *   - Misuse of Release (wrong thread, wrong order) is an error that
 *     aborts in debug mode and is otherwise ignored, not Py_FatalError.
 */
#ifndef PYGATE_PEP788_H
#define PYGATE_PEP788_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../pygate.h"

#ifdef __cplusplus
extern "C" {
#endif

#if PY_VERSION_HEX < 0x030F0000
/* CPython 3.15 declares these in pystate.h, the same way. */
typedef struct PyInterpreterGuard PyInterpreterGuard;
typedef struct PyInterpreterView PyInterpreterView;
typedef void PyThreadStateToken;
#endif

/* pygate's implementations, on every version. */
PYGATE_API PyInterpreterGuard *pygate_PyInterpreterGuard_FromCurrent(void);
PYGATE_API PyInterpreterGuard *
pygate_PyInterpreterGuard_FromView(PyInterpreterView *view);
PYGATE_API void pygate_PyInterpreterGuard_Close(PyInterpreterGuard *guard);

PYGATE_API PyInterpreterView *pygate_PyInterpreterView_FromCurrent(void);
PYGATE_API PyInterpreterView *pygate_PyInterpreterView_FromMain(void);
PYGATE_API void pygate_PyInterpreterView_Close(PyInterpreterView *view);

PYGATE_API PyThreadStateToken *
pygate_PyThreadState_Ensure(PyInterpreterGuard *guard);
PYGATE_API PyThreadStateToken *
pygate_PyThreadState_EnsureFromView(PyInterpreterView *view);
PYGATE_API void pygate_PyThreadState_Release(PyThreadStateToken *token);

#ifdef __cplusplus
}
#endif

#if PY_VERSION_HEX < 0x030F0000 || !defined(PYGATE_PEP788_NATIVE)
#define PyInterpreterGuard_FromCurrent pygate_PyInterpreterGuard_FromCurrent
#define PyInterpreterGuard_FromView pygate_PyInterpreterGuard_FromView
#define PyInterpreterGuard_Close pygate_PyInterpreterGuard_Close
#define PyInterpreterView_FromCurrent pygate_PyInterpreterView_FromCurrent
#define PyInterpreterView_FromMain pygate_PyInterpreterView_FromMain
#define PyInterpreterView_Close pygate_PyInterpreterView_Close
#define PyThreadState_Ensure pygate_PyThreadState_Ensure
#define PyThreadState_EnsureFromView pygate_PyThreadState_EnsureFromView
#define PyThreadState_Release pygate_PyThreadState_Release
#endif

#endif /* PYGATE_PEP788_H */
