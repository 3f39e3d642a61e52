#!/usr/bin/env bash
# What pygate's builds need from Debian, in one list, and the one way to
# install it.
#
#   tools/deps.sh install   apt-get install all of it (root, or sudo)
#   tools/deps.sh ensure demo|test
#                           nothing when what `make demo` (or `make test`)
#                           needs is installed; else installs it as root,
#                           or prints the one command that does and fails
#
# .ci/run and `make deps` install; `make demo` and `make test` ensure.
set -euo pipefail

# demo: a C compiler, CMake, and Debian's python3 with its headers.
DEMO_PACKAGES="build-essential cmake pkg-config python3 python3-dev"
# test: also Debian's python3.11 and its debug build, the sid root's
# debootstrap, clang and its sanitizer runtimes, setuptools and pybind11
# for the consumer tests, gnuplot for the plots, valgrind for memcheck,
# Cython for foreign PyGILState code, and what a free-threaded CPython
# built from source needs (xz to unpack it, libffi for ctypes, zlib).
TEST_PACKAGES="$DEMO_PACKAGES debootstrap clang libclang-rt-14-dev
  python3.11 python3.11-dev python3.11-dbg python3-setuptools pybind11-dev
  gnuplot-nox valgrind cython3 xz-utils libffi-dev zlib1g-dev"

missing() {   # the packages of the list given that are not installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
      || echo "$p"
  done
}

install() {   # apt-get install the packages given
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  # shellcheck disable=SC2086
  $sudo apt-get install -y --no-install-recommends "$@"
}

case "${1:-}" in
install)
  # shellcheck disable=SC2086
  install $TEST_PACKAGES
  ;;
ensure)
  case "${2:-}" in
    demo) list=$DEMO_PACKAGES ;;
    test) list=$TEST_PACKAGES ;;
    *) echo "usage: $0 ensure demo|test" >&2; exit 2 ;;
  esac
  command -v dpkg-query >/dev/null || exit 0   # not Debian: up to you
  # shellcheck disable=SC2086
  need=$(missing $list | tr '\n' ' ')
  [ -z "$need" ] && exit 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "pygate: installing $need"
    # shellcheck disable=SC2086
    install $need
  else
    echo "pygate: make $2 needs Debian packages not installed: $need" >&2
    echo "pygate: install them with:  sudo make deps" >&2
    exit 1
  fi
  ;;
*)
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
