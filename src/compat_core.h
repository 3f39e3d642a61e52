/*
 * compat_core.h - the CPython internal headers compat_core.c reads
 * _PyRuntime's gilstate key (3.8-3.11) and main thread (free-threaded
 * 3.14) from, for a file that defined Py_BUILD_CORE first.  A header of its own so that the single-file build
 * (tools/amalgamate.py) can include them before it hides pygate's names.
 */
#ifndef PYGATE_COMPAT_CORE_H
#define PYGATE_COMPAT_CORE_H

#include <Python.h>
#if PY_VERSION_HEX < 0x03090000
#  include "internal/pycore_pystate.h"
#elif PY_VERSION_HEX < 0x030C0000 || defined(Py_GIL_DISABLED)
#  include "internal/pycore_runtime.h"
#endif

#endif /* PYGATE_COMPAT_CORE_H */
