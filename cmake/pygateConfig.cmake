# find_package(pygate CONFIG [COMPONENTS cp312]) -> pygate::pygate (static),
# pygate::shared, pygate::python (libpython, for embedding hosts) and
# pygate::python_headers.
#
# pygate is built for one CPython; builds for several may be installed side
# by side here.  The one used is, in this order: the component asked for
# (cp312, cp311d, cp314t, cp314td), the CPython of the consumer's Python_EXECUTABLE or
# Python3_EXECUTABLE (set by FindPython/FindPython3), or the only one
# installed.  A consumer whose CPython has no pygate build here gets an
# error naming both.
set(_pygate_dir "${CMAKE_CURRENT_LIST_DIR}")
file(GLOB _pygate_found "${_pygate_dir}/pygate-cp*-python.cmake")
set(_pygate_tags "")
foreach(_f IN LISTS _pygate_found)
  string(REGEX REPLACE ".*/pygate-(cp[0-9]+t?d?)-python\\.cmake$" "\\1" _t "${_f}")
  list(APPEND _pygate_tags "${_t}")
endforeach()

set(_pygate_want "")
set(_pygate_why "")
if(pygate_FIND_COMPONENTS)
  list(GET pygate_FIND_COMPONENTS 0 _pygate_want)
  set(_pygate_why "asked for as a component")
else()
  set(_pygate_exe "${Python_EXECUTABLE}")
  if(NOT _pygate_exe)
    set(_pygate_exe "${Python3_EXECUTABLE}")
  endif()
  if(_pygate_exe)
    execute_process(COMMAND "${_pygate_exe}" -c
      "import sys, sysconfig; print('cp%d%d%s' % (sys.version_info[0], sys.version_info[1], sysconfig.get_config_var('ABIFLAGS') or ''))"
      OUTPUT_VARIABLE _pygate_want OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(_pygate_why "the CPython of ${_pygate_exe}")
  else()
    list(LENGTH _pygate_tags _pygate_n)
    if(_pygate_n EQUAL 1)
      set(_pygate_want "${_pygate_tags}")
      set(_pygate_why "the only one installed")
    endif()
  endif()
endif()

if(NOT _pygate_want OR NOT _pygate_want IN_LIST _pygate_tags)
  set(pygate_FOUND FALSE)
  if(_pygate_want)
    set(pygate_NOT_FOUND_MESSAGE "pygate is installed in ${_pygate_dir} for ${_pygate_tags}, not for ${_pygate_want} (${_pygate_why}): build and install pygate with that CPython (cmake -DPython_EXECUTABLE=...)")
  else()
    set(pygate_NOT_FOUND_MESSAGE "pygate is installed in ${_pygate_dir} for several CPythons (${_pygate_tags}): say which, with find_package(pygate CONFIG COMPONENTS <tag>) or by setting Python_EXECUTABLE")
  endif()
  return()
endif()

include("${_pygate_dir}/pygate-${_pygate_want}-python.cmake")
include(CMakeFindDependencyMacro)
find_dependency(Threads)
if(NOT TARGET pygate::python_headers)
  add_library(pygate::python_headers INTERFACE IMPORTED)
  set_target_properties(pygate::python_headers PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_pygate_py_include}")
  add_library(pygate::python INTERFACE IMPORTED)
  set_target_properties(pygate::python PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_pygate_py_include}"
    INTERFACE_LINK_LIBRARIES "${_pygate_py_library};Threads::Threads;dl;m")
  # -I, not -isystem: see PygatePython.cmake (Debian's debug headers).
  set_target_properties(pygate::python pygate::python_headers PROPERTIES
    SYSTEM OFF)
endif()
include("${_pygate_dir}/pygate-${_pygate_want}-targets.cmake")
set(pygate_PYTHON_TAG "${_pygate_want}")
set(pygate_PYTHON_VERSION "${_pygate_py_version}")
set(pygate_PYTHON_EXECUTABLE "${_pygate_py_executable}")
