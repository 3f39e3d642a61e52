# Finds the CPython named by Python_EXECUTABLE (default: the one a parent
# project found with FindPython or FindPython3, else python3) and defines
# the global imported targets pygate::python (headers + libpython, for
# embedding hosts) and pygate::python_headers (for extension modules).
# sysconfig is asked directly because pyenv and Debian (incl. the debug
# build, python3.11-dbg) lay out headers and libraries differently.
if(NOT Python_EXECUTABLE AND Python3_EXECUTABLE)
  set(Python_EXECUTABLE "${Python3_EXECUTABLE}")
endif()
if(NOT Python_EXECUTABLE)
  find_program(Python_EXECUTABLE NAMES python3 REQUIRED)
endif()

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "import sysconfig as s; v = s.get_config_var; print(';'.join([s.get_paths()['include'], v('LIBDIR') or '', v('LDLIBRARY') or '', v('VERSION'), v('ABIFLAGS') or '', str(v('Py_DEBUG') or 0), v('EXT_SUFFIX') or '.so', str(v('Py_GIL_DISABLED') or 0)]))"
  OUTPUT_VARIABLE _pygate_py OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _pygate_py_rc)
if(NOT _pygate_py_rc EQUAL 0)
  message(FATAL_ERROR "pygate: cannot query ${Python_EXECUTABLE}")
endif()
list(GET _pygate_py 0 PYGATE_PY_INCLUDE)
list(GET _pygate_py 1 PYGATE_PY_LIBDIR)
list(GET _pygate_py 2 PYGATE_PY_LDLIBRARY)
list(GET _pygate_py 3 PYGATE_PY_VERSION)
list(GET _pygate_py 4 PYGATE_PY_ABIFLAGS)
list(GET _pygate_py 5 PYGATE_PY_DEBUG)
list(GET _pygate_py 6 PYGATE_PY_EXT_SUFFIX)
list(GET _pygate_py 7 PYGATE_PY_FREE_THREADED)

if(PYGATE_PY_VERSION VERSION_LESS 3.8)
  message(FATAL_ERROR "pygate supports CPython 3.8 and later, not ${PYGATE_PY_VERSION}")
endif()
# The ABI pygate is built for: a tag for file names (cp312, cp311d, cp314t,
# cp314td: ABIFLAGS say free-threaded and debug) and
# (major << 8 | minor) in hex for pygate.h's check (0x030C).
string(REPLACE "." ";" _pygate_v "${PYGATE_PY_VERSION}")
list(GET _pygate_v 0 _pygate_major)
list(GET _pygate_v 1 _pygate_minor)
set(PYGATE_PY_TAG "cp${_pygate_major}${_pygate_minor}${PYGATE_PY_ABIFLAGS}")
math(EXPR PYGATE_PY_ABI_HEX "(${_pygate_major} << 8) | ${_pygate_minor}"
  OUTPUT_FORMAT HEXADECIMAL)
string(REPLACE "0x" "" PYGATE_PY_ABI_HEX "${PYGATE_PY_ABI_HEX}")
string(LENGTH "${PYGATE_PY_ABI_HEX}" _pygate_len)
if(_pygate_len LESS 4)
  set(PYGATE_PY_ABI_HEX "0${PYGATE_PY_ABI_HEX}")
endif()

find_library(PYGATE_PY_LIBRARY NAMES "${PYGATE_PY_LDLIBRARY}"
  "python${PYGATE_PY_VERSION}${PYGATE_PY_ABIFLAGS}"
  HINTS "${PYGATE_PY_LIBDIR}" NO_DEFAULT_PATH)
if(NOT PYGATE_PY_LIBRARY)
  find_library(PYGATE_PY_LIBRARY NAMES "python${PYGATE_PY_VERSION}${PYGATE_PY_ABIFLAGS}")
endif()
if(NOT PYGATE_PY_LIBRARY)
  message(FATAL_ERROR "pygate: no libpython for ${Python_EXECUTABLE} (install python3-dev or the -dev package of that build)")
endif()

add_library(pygate::python INTERFACE IMPORTED GLOBAL)
set_target_properties(pygate::python PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${PYGATE_PY_INCLUDE}"
  INTERFACE_LINK_LIBRARIES "${PYGATE_PY_LIBRARY};Threads::Threads;dl;m")
# Headers only, for code loaded into a Python process (extension modules).
add_library(pygate::python_headers INTERFACE IMPORTED GLOBAL)
set_target_properties(pygate::python_headers PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${PYGATE_PY_INCLUDE}")
# Not as system headers: GCC resolves a system header's symlinks, and
# Debian's debug headers (python3.11d/Python.h -> ../python3.11/Python.h)
# would then take the release pyconfig.h (no Py_DEBUG) from beside the
# link's target; pygate.h's check catches that (PYGATE_PY_DEBUG).
set_target_properties(pygate::python pygate::python_headers PROPERTIES
  SYSTEM OFF)
get_filename_component(PYGATE_PY_LIBRARY_DIR "${PYGATE_PY_LIBRARY}" DIRECTORY)
set(CMAKE_BUILD_RPATH "${PYGATE_PY_LIBRARY_DIR}")
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
message(STATUS "pygate: CPython ${PYGATE_PY_VERSION}${PYGATE_PY_ABIFLAGS} (Py_DEBUG=${PYGATE_PY_DEBUG}, Py_GIL_DISABLED=${PYGATE_PY_FREE_THREADED}, ${PYGATE_PY_TAG}) from ${Python_EXECUTABLE}")
