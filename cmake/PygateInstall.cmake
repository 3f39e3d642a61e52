# Install rules: headers, the static and shared libraries named for the
# CPython they are built for (libpygate-cp312.a), a CMake package
# (find_package(pygate CONFIG) -> pygate::pygate, pygate::shared,
# pygate::python) and a pkg-config file (pygate-cp312.pc).  Several
# CPythons' builds install side by side under one prefix: they share the
# headers and pygateConfig.cmake, which picks the build for the consumer's
# CPython.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(PYGATE_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/pygate")

install(FILES include/pygate.h include/pygate.hpp
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(FILES include/pygate/pep788.h
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/pygate")
install(TARGETS pygate pygate_shared EXPORT pygate-${PYGATE_PY_TAG}
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}")
install(EXPORT pygate-${PYGATE_PY_TAG} NAMESPACE pygate::
  FILE pygate-${PYGATE_PY_TAG}-targets.cmake
  DESTINATION "${PYGATE_CMAKE_DIR}")

# What this build's CPython is, for pygateConfig.cmake.
configure_file("${CMAKE_CURRENT_LIST_DIR}/pygate-python.cmake.in"
  "${CMAKE_CURRENT_BINARY_DIR}/pygate-${PYGATE_PY_TAG}-python.cmake" @ONLY)
write_basic_package_version_file(
  "${CMAKE_CURRENT_BINARY_DIR}/pygateConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES
  "${CMAKE_CURRENT_LIST_DIR}/pygateConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/pygateConfigVersion.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/pygate-${PYGATE_PY_TAG}-python.cmake"
  DESTINATION "${PYGATE_CMAKE_DIR}")

# The .pc files find their prefix from where they are (${pcfiledir}), so
# that cmake --install --prefix anywhere gives working ones.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(PYGATE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  string(REGEX REPLACE "[^/]+" ".." _pygate_up "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(PYGATE_PC_PREFIX "\${pcfiledir}/${_pygate_up}")
endif()
# pygate-cp312.pc for extension modules, pygate-cp312-embed.pc for hosts
# (with libpython), as CPython's own python3.pc and python3-embed.pc.
# Their Libs carry an rpath to libpygate and libpython, so that the one
# line the README shows builds a program that starts wherever either was
# installed (a prefix of one's own, pyenv).
get_filename_component(PYGATE_PY_LIBDIR "${PYGATE_PY_LIBRARY}" DIRECTORY)
configure_file("${CMAKE_CURRENT_LIST_DIR}/pygate.pc.in"
  "${CMAKE_CURRENT_BINARY_DIR}/pygate-${PYGATE_PY_TAG}.pc" @ONLY)
configure_file("${CMAKE_CURRENT_LIST_DIR}/pygate-embed.pc.in"
  "${CMAKE_CURRENT_BINARY_DIR}/pygate-${PYGATE_PY_TAG}-embed.pc" @ONLY)
install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/pygate-${PYGATE_PY_TAG}.pc"
  "${CMAKE_CURRENT_BINARY_DIR}/pygate-${PYGATE_PY_TAG}-embed.pc"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
