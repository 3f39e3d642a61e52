#!/usr/bin/env bash
# Free-threaded CPython 3.14 (release "t" and debug "td" builds, and a
# release build under ThreadSanitizer): found on this machine, or built
# once from a CPython source tarball and kept outside the checkout, so that
# a fresh clone (CI) reuses it.
#
#   tests/free_threaded.sh find KIND    print the python3.14t (KIND release
#                                       or tsan) or debug python3.14td
#                                       found; exit 1 and say why on stderr
#                                       when none is
#   tests/free_threaded.sh ensure KIND  the same, building it first from
#                                       $PYGATE_CPYTHON_SRC when none is found
#
# Looked for, in this order: $PYGATE_FT_PYTHON (release),
# $PYGATE_FT_PYTHON_DEBUG and $PYGATE_FT_PYTHON_TSAN; python3.14t /
# python3.14td on PATH; pyenv's 3.14t versions (3.14.Nt, 3.14.Nt-debug);
# uv's cpython-3.14.N+freethreaded; and the builds this script made, in
# $PYGATE_FT_CACHE (default /var/tmp/pygate-cpython).  The TSan build
# (configure --with-thread-sanitizer, with clang as CPython's own CI does)
# is only ever this script's or $PYGATE_FT_PYTHON_TSAN.  A build takes
# about 3 minutes on two cores (the TSan one 6): the test-only extension
# modules and those no test imports (Tk, SQLite, SSL, the CJK codecs, ...)
# are left out of it.
set -u
CACHE=${PYGATE_FT_CACHE:-/var/tmp/pygate-cpython}
# Extension modules no scenario, benchmark or example imports; building
# them is most of a CPython build's time.
UNUSED_MODULES="_tkinter _sqlite3 _ssl _hashlib _curses _curses_panel _dbm
  _gdbm readline _lzma _bz2 _zstd _decimal _elementtree pyexpat _uuid
  _multibytecodec _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp
  _codecs_kr _codecs_tw xxlimited xxlimited_35 xxsubtype _ctypes_test
  _testcapi _testinternalcapi _testbuffer _testmultiphase _testsinglephase
  _testimportmultiple _testclinic _testclinic_limited _testlimitedcapi
  _testexternalinspection _remote_debugging _tkinter"

suffix() { [ "$1" = debug ] && echo td || echo t; }
prefix_of() { [ "$1" = tsan ] && echo "$CACHE/3.14t-tsan" || echo "$CACHE/3.14$(suffix "$1")"; }

usable() {   # usable EXE KIND: a free-threaded CPython 3.14 of that kind
  [ -x "$1" ] || return 1
  "$1" -c "import sys, sysconfig
ft = sysconfig.get_config_var('Py_GIL_DISABLED') == 1
dbg = hasattr(sys, 'gettotalrefcount')
tsan = '--with-thread-sanitizer' in sysconfig.get_config_var('CONFIG_ARGS')
ok = (ft and sys.version_info[:2] == (3, 14) and dbg == ('$2' == 'debug')
      and tsan == ('$2' == 'tsan'))
sys.exit(0 if ok else 1)" 2>/dev/null
}

find_one() {   # find_one KIND: prints the executable
  local kind=$1 s want c
  s=$(suffix "$kind")
  case $kind in
  debug) want=${PYGATE_FT_PYTHON_DEBUG:-} ;;
  tsan) want=${PYGATE_FT_PYTHON_TSAN:-}
        for c in "$want" "$(prefix_of tsan)/bin/python3.14t"; do
          [ -n "$c" ] && usable "$c" tsan && { echo "$c"; return 0; }
        done
        return 1 ;;
  *) want=${PYGATE_FT_PYTHON:-} ;;
  esac
  for c in "$want" "$(command -v "python3.14$s" 2>/dev/null)" \
           $(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.14*t* 2>/dev/null | sort -rV | sed "s|\$|/bin/python3.14$s|") \
           $(ls -d "$HOME"/.local/share/uv/python/cpython-3.14*freethreaded* 2>/dev/null | sort -rV | sed "s|\$|/bin/python3.14$s|") \
           "$CACHE/3.14$s/bin/python3.14$s"; do
    [ -n "$c" ] && usable "$c" "$kind" && { echo "$c"; return 0; }
  done
  return 1
}

build() {   # build KIND: from $PYGATE_CPYTHON_SRC into $(prefix_of KIND)
  local kind=$1 s src prefix work flags="" m
  s=$(suffix "$kind")
  src=${PYGATE_CPYTHON_SRC:-}
  [ -n "$src" ] || { echo "no free-threaded CPython 3.14 ($kind) found; set PYGATE_CPYTHON_SRC to a CPython 3.14 source tarball to build one" >&2; return 1; }
  [ -f "$src" ] || { echo "PYGATE_CPYTHON_SRC=$src: no such file" >&2; return 1; }
  prefix=$(prefix_of "$kind")
  work="$prefix.build.$$"
  [ "$kind" = debug ] && flags=--with-pydebug
  # TSan: the interpreter runs during the build; its races are CPython's
  # (Tools/tsan lists the known ones) and must not stop the build.
  [ "$kind" = tsan ] && flags="--with-thread-sanitizer CC=clang CXX=clang++"
  [ "$kind" = tsan ] && export TSAN_OPTIONS=report_bugs=0
  for m in $UNUSED_MODULES; do flags="$flags py_cv_module_$m=n/a"; done
  echo "pygate: building free-threaded CPython 3.14 ($kind) from $src into $prefix (log: $work.log)" >&2
  rm -rf "$work" "$prefix" && mkdir -p "$work" || return 1
  (
    set -e
    tar -xf "$src" -C "$work" --strip-components=1
    cd "$work"
    # shellcheck disable=SC2086
    ./configure --disable-gil --enable-shared --with-ensurepip=no \
      --disable-test-modules --prefix="$prefix" \
      LDFLAGS="-Wl,-rpath,$prefix/lib" $flags
    make -j "$(nproc 2>/dev/null || echo 2)"
    # -l: byte-compile the standard library's top level only (Python
    # compiles the rest on first import), to keep the install short.
    make install COMPILEALL_OPTS="-j0 -l"
    # The data races CPython knows of in itself, for TSAN_OPTIONS.
    cp Tools/tsan/suppressions_free_threading.txt "$prefix/tsan-suppressions.txt"
  ) >"$work.log" 2>&1 || { tail -30 "$work.log" >&2; echo "pygate: the build failed (see $work.log)" >&2; return 1; }
  rm -rf "$work" "$work.log"
  usable "$prefix/bin/python3.14$s" "$kind" || { echo "pygate: $prefix/bin/python3.14$s is not a free-threaded 3.14 ($kind)" >&2; return 1; }
}

case "${1:-}-${2:-}" in
find-release|find-debug|find-tsan)
  find_one "$2" || { echo "no free-threaded CPython 3.14 ($2) found (python3.14$(suffix "$2"), pyenv, uv, $CACHE)" >&2; exit 1; } ;;
ensure-release|ensure-debug|ensure-tsan)
  find_one "$2" && exit 0
  build "$2" && find_one "$2" ;;
*) echo "usage: $0 find|ensure release|debug|tsan" >&2; exit 2 ;;
esac
