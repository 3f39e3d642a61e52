#!/bin/sh
# run.sh KIND PYTHON SOURCE_DIR WORK_DIR [CC] - builds and runs a project
# that uses pygate the way the README says, from scratch, in WORK_DIR:
#   subdirectory  add_subdirectory(pygate) in a CMake project
#   installed     cmake --install, then find_package(pygate CONFIG) and
#                 pkg-config (pygate-cpXY-embed); a consumer whose CPython
#                 has no pygate build installed gets an error naming both
#   setuptools    an extension module built by setuptools from pygate's
#                 single file (tools/amalgamate.py); and two such modules,
#                 each with its own copy, imported into one interpreter
# Exits 0 on success, 77 (skip) when the tool a kind needs is missing.
set -eu
kind=$1 python=$2 src=$3 work=$4 cc=${5:-cc}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }; }
tag=$("$python" -c "import sys, sysconfig; print('cp%d%d%s' % (sys.version_info[0], sys.version_info[1], sysconfig.get_config_var('ABIFLAGS') or ''))")

case $kind in
subdirectory)
  quiet cmake -S "$here/subdirectory" -B "$work/build" \
    -DPYGATE_SOURCE_DIR="$src" -DPython_EXECUTABLE="$python" \
    -DCMAKE_C_COMPILER="$cc"
  quiet cmake --build "$work/build" -j2
  # A guest builds the library only: no tests, benchmark or examples.
  if [ -e "$work/build/pygate/tests" ] || [ -e "$work/build/pygate/bench" ]; then
    echo "pygate built its tests or benchmark as a subdirectory"; exit 1
  fi
  "$work/build/host"
  ;;
installed)
  quiet cmake -S "$src" -B "$work/pygate" -DPython_EXECUTABLE="$python" \
    -DCMAKE_C_COMPILER="$cc" -DPYGATE_TESTS=OFF -DPYGATE_BENCH=OFF \
    -DPYGATE_EXAMPLES=OFF
  quiet cmake --build "$work/pygate" -j2
  quiet cmake --install "$work/pygate" --prefix "$work/prefix"
  # The CMake package.
  quiet cmake -S "$here/package" -B "$work/package" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DPython_EXECUTABLE="$python" \
    -DCMAKE_C_COMPILER="$cc"
  quiet cmake --build "$work/package"
  "$work/package/host"
  # pkg-config.
  command -v pkg-config >/dev/null || { echo "skip: no pkg-config"; exit 77; }
  pc="$work/prefix/lib/pkgconfig"
  # The README's line as it is: the program starts without LD_LIBRARY_PATH.
  # shellcheck disable=SC2046
  env -u LD_LIBRARY_PATH PKG_CONFIG_PATH="$pc" "$cc" -o "$work/host_pkgconfig" \
    "$here/host.c" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs "pygate-$tag-embed")
  env -u LD_LIBRARY_PATH "$work/host_pkgconfig"
  # libpygate in a process that runs another CPython: refused at run time,
  # naming both (any other release libpython found here will do; a debug
  # libpygate needs symbols no release libpython has, and fails to load).
  ver=$("$python" -c "import sys; print('%d.%d' % sys.version_info[:2])")
  other_lib=
  case $tag in *d) ;; *)
    other_lib=$(ls /usr/lib/x86_64-linux-gnu/libpython3.*.so.1.0 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/lib/libpython3.*.so.1.0 \
        2>/dev/null | grep -v "libpython$ver[^0-9]" \
        | grep -v "d\.so" | head -n 1 || true) ;;
  esac
  if [ -n "$other_lib" ]; then
    # shellcheck disable=SC2046
    "$cc" -o "$work/host_mismatch" "$here/host.c" "$other_lib" \
      $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs "pygate-$tag") \
      -Wl,-rpath,"$work/prefix/lib" -Wl,-rpath,"$(dirname "$other_lib")" \
      -Wl,--unresolved-symbols=ignore-all
    if "$work/host_mismatch" >"$work/log" 2>&1; then
      echo "libpygate for $ver ran in a process with $other_lib"; exit 1
    fi
    grep -q "built for CPython $ver, but the process runs CPython" \
      "$work/log" || { cat "$work/log"; exit 1; }
    echo "run-time check: $(head -n 1 "$work/log")"
  fi
  # Another CPython than the one installed: a clear error, naming both.
  printf '#!/bin/sh\necho cp27\n' >"$work/other-python"
  chmod +x "$work/other-python"
  if cmake -S "$here/package" -B "$work/mismatch" \
      -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DPython_EXECUTABLE="$work/other-python" >"$work/log" 2>&1; then
    echo "find_package(pygate) accepted another CPython"; exit 1
  fi
  tr -s ' \n' '  ' <"$work/log" | grep -q "for $tag, not for cp27" \
    || { cat "$work/log"; exit 1; }
  echo "installed: CMake package, pkg-config, and a clear refusal of cp27"
  ;;
setuptools)
  "$python" -c "import setuptools" 2>/dev/null \
    || { echo "skip: no setuptools for $python"; exit 77; }
  "$python" "$src/tools/amalgamate.py" "$work/single"
  cp "$here/setuptools/setup.py" "$here/setuptools/vendored.c" \
     "$here/setuptools/check.py" "$here/setuptools/check_two_copies.py" \
     "$work/"
  cd "$work"
  PYGATE_SINGLE_FILE_DIR="$work/single" CC="$cc" \
    quiet "$python" setup.py build_ext --inplace
  "$python" check.py
  "$python" check_two_copies.py
  # Nothing of pygate is exported from the modules (README).
  for so in vendored*.so; do
    if nm -D --defined-only "$so" | grep -i pygate; then
      echo "$so exports pygate's names"; exit 1
    fi
  done
  echo "setuptools: no pygate name exported from $(ls vendored*.so | wc -l) modules"
  ;;
*)
  echo "unknown kind $kind"; exit 2
  ;;
esac
