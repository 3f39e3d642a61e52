# Finds the CPython named by Python_EXECUTABLE (default: python3) and defines
# the imported target pygate::python (headers + libpython, for embedding).
# sysconfig is asked directly because pyenv and Debian (incl. the debug
# build, python3.11-dbg) lay out headers and libraries differently.
if(NOT Python_EXECUTABLE)
  find_program(Python_EXECUTABLE NAMES python3 REQUIRED)
endif()

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "import sysconfig as s; v = s.get_config_var; print(';'.join([s.get_paths()['include'], v('LIBDIR') or '', v('LDLIBRARY') or '', v('VERSION'), v('ABIFLAGS') or '', str(v('Py_DEBUG') or 0), v('EXT_SUFFIX') or '.so']))"
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

if(PYGATE_PY_VERSION VERSION_LESS 3.8)
  message(FATAL_ERROR "pygate supports CPython 3.8 and later, not ${PYGATE_PY_VERSION}")
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

add_library(pygate::python INTERFACE IMPORTED)
set_target_properties(pygate::python PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${PYGATE_PY_INCLUDE}"
  INTERFACE_LINK_LIBRARIES "${PYGATE_PY_LIBRARY};pthread;dl;m")
# Headers only, for code loaded into a Python process (extension modules).
add_library(pygate::python_headers INTERFACE IMPORTED)
set_target_properties(pygate::python_headers PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${PYGATE_PY_INCLUDE}")
get_filename_component(PYGATE_PY_LIBRARY_DIR "${PYGATE_PY_LIBRARY}" DIRECTORY)
set(CMAKE_BUILD_RPATH "${PYGATE_PY_LIBRARY_DIR}")
message(STATUS "pygate: CPython ${PYGATE_PY_VERSION}${PYGATE_PY_ABIFLAGS} (Py_DEBUG=${PYGATE_PY_DEBUG}) from ${Python_EXECUTABLE}")
