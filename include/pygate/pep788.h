/*
 * pygate/pep788.h - PEP 788's interpreter guards, views and
 * PyThreadState_Ensure on every CPython from 3.8.
 *
 * Code written against these names compiles and runs unchanged on 3.8-3.14
 * (implemented by pygate) and on 3.15+ (CPython's own functions; pygate
 * adds nothing there).  Include it instead of declaring the names
 * yourself; Python.h must be includable first, as usual.
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
 * Where pygate differs from CPython 3.15 (see docs/API.md):
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

#if PY_VERSION_HEX < 0x030F0000

#include "../pygate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PyInterpreterGuard PyInterpreterGuard;
typedef struct PyInterpreterView PyInterpreterView;
typedef struct PyThreadStateToken PyThreadStateToken;

PyInterpreterGuard *PyInterpreterGuard_FromCurrent(void);
PyInterpreterGuard *PyInterpreterGuard_FromView(PyInterpreterView *view);
void PyInterpreterGuard_Close(PyInterpreterGuard *guard);

PyInterpreterView *PyInterpreterView_FromCurrent(void);
PyInterpreterView *PyInterpreterView_FromMain(void);
void PyInterpreterView_Close(PyInterpreterView *view);

PyThreadStateToken *PyThreadState_Ensure(PyInterpreterGuard *guard);
PyThreadStateToken *PyThreadState_EnsureFromView(PyInterpreterView *view);
void PyThreadState_Release(PyThreadStateToken *token);

#ifdef __cplusplus
}
#endif

#endif /* PY_VERSION_HEX < 3.15 */
#endif /* PYGATE_PEP788_H */
