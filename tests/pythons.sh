# Sourced by tests/run_matrix.sh and bench/run_bench.sh: finds every CPython
# on this machine (pyenv 3.8+, Debian's python3.X and python3.X-dbg), the
# free-threaded 3.14 release and debug builds (tests/free_threaded.sh: found,
# or built from $PYGATE_CPYTHON_SRC) and, in the Debian sid root of
# tests/sid_root.sh, today's releases.
# find_pythons fills
#   runs=("label|python executable|cmake build type|extra flags|where")
#        in version order; where is "host" or "sid" (run inside the root)
#   missing=("what was looked for and not found, and why")
find_pythons() {
  runs=()
  missing=()
  pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for minor in 8 9 10 11 12 13 14 15; do
    found=""
    for dir in $(ls -d "$pyenv_root"/versions/3.$minor.* 2>/dev/null | sort -V); do
      [ -x "$dir/bin/python3.$minor" ] && found="$dir/bin/python3.$minor"
    done
    if [ -n "$found" ]; then
      ver=$(basename "$(dirname "$(dirname "$found")")")
      runs+=("CPython $ver (pyenv)|$found|RelWithDebInfo||host")
    elif [ "$minor" -le 13 ]; then
      missing+=("CPython 3.$minor (pyenv)")
    fi
  done
  for minor in 8 9 10 11 12 13 14 15; do
    exe=/usr/bin/python3.$minor
    [ -x "$exe" ] && runs+=("CPython $($exe -c 'import platform; print(platform.python_version())') (Debian)|$exe|RelWithDebInfo||host")
    exe=/usr/bin/python3.$minor-dbg
    [ -x "$exe" ] && runs+=("CPython $($exe -c 'import platform; print(platform.python_version())') debug (Debian -dbg)|$exe|Debug||host")
  done
  [ -x /usr/bin/python3.11 ] || missing+=("CPython 3.11 (Debian python3.11)")
  [ -x /usr/bin/python3.11-dbg ] || missing+=("CPython 3.11 debug (Debian python3.11-dbg)")
  # The free-threaded builds are made (when they must be) while the sid
  # root is: one compiles, the other mostly downloads.
  local ft_out
  ft_out=$(mktemp)
  ensure_free_threaded >"$ft_out" &
  local ft_job=$!
  [ "${PYGATE_NO_SID:-0}" = 1 ] || find_sid_pythons
  wait "$ft_job"
  add_free_threaded "$ft_out"
  rm -f "$ft_out"
}

# Prints "release EXE" and "debug EXE" for the free-threaded builds found
# or made, or "release-missing WHY" (and debug) where none could be had;
# with PYGATE_TSAN_FT=1 the ThreadSanitizer build's line ("tsan EXE") too.
ensure_free_threaded() {
  local here kind exe err kinds="release debug"
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  err=$(mktemp)
  [ "${PYGATE_TSAN_FT:-0}" = 1 ] && kinds="$kinds tsan"
  for kind in $kinds; do
    if exe=$("$here/free_threaded.sh" ensure "$kind" 2> >(tee "$err" >&2)); then
      echo "$kind $exe"
    else
      echo "$kind-missing $(tail -n 1 "$err")"
    fi
  done
  rm -f "$err"
}

# add_free_threaded FILE: ensure_free_threaded's lines into runs/missing.
add_free_threaded() {
  local kind rest ver
  while read -r kind rest; do
    case "$kind" in
      release|debug)
        ver=$("$rest" -c 'import platform; print(platform.python_version())')
        if [ "$kind" = release ]; then
          runs+=("CPython ${ver}t (free-threaded)|$rest|RelWithDebInfo||host")
        else
          runs+=("CPython ${ver}t debug (free-threaded)|$rest|Debug||host")
        fi ;;
      tsan)   # clang: the compiler that built that CPython, one TSan runtime
        ver=$("$rest" -c 'import platform; print(platform.python_version())')
        runs+=("CPython ${ver}t (free-threaded, built with TSan) + TSan|$rest|Debug|-DPYGATE_TSAN=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPYGATE_EXAMPLES=OFF -DPYGATE_BENCH=OFF|host") ;;
      *-missing) missing+=("CPython 3.14t free-threaded (${kind%-missing}): $rest") ;;
    esac
  done <"$1"
}

# Today's releases, from the sid root (made here when it does not exist).
find_sid_pythons() {
  local here why versions line
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if ! why=$("$here/sid_root.sh" why-not); then
    missing+=("CPython 3.13, 3.14, 3.15 and their debug builds (Debian sid root): $why")
    return
  fi
  if ! "$here/sid_root.sh" ensure; then
    missing+=("CPython 3.13, 3.14, 3.15 and their debug builds (Debian sid root): it could not be made (network?)")
    return
  fi
  versions=$("$here/sid_root.sh" run "$(dirname "$here")" bash -c \
    'for m in 13 14 15; do for s in "" -dbg; do e=/usr/bin/python3.$m$s; [ -x $e ] && echo "$e $($e -c "import platform; print(platform.python_version())")"; done; done')
  while read -r line; do
    set -- $line
    [ -n "${1:-}" ] || continue
    case "$1" in
      *-dbg) runs+=("CPython $2 debug (Debian sid -dbg)|$1|Debug||sid") ;;
      *) runs+=("CPython $2 (Debian sid)|$1|RelWithDebInfo||sid") ;;
    esac
  done <<<"$versions"
  for m in 13 14 15; do
    case "$versions" in *python3.$m-dbg*) ;; *) missing+=("CPython 3.$m debug in the sid root") ;; esac
  done
}

# at WHERE CMD...: runs CMD on this machine, or (WHERE = sid) inside the
# sid root with the checkout visible at the same path; PYGATE_ENV
# ("NAME=value ...") passes variables into the root.
at() {
  local where=$1 checkout
  shift
  if [ "$where" = sid ]; then
    checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    "$checkout/tests/sid_root.sh" run "$checkout" "$@"
  else
    "$@"
  fi
}

# bench_wanted LABEL: whether make bench and bench/many_threads.sh measure
# this CPython (not a debug build; PYGATE_ONLY, if set, in its label).
bench_wanted() {
  case "$1" in *debug*) return 1 ;; esac
  case "$1" in *"${PYGATE_ONLY:-}"*) return 0 ;; esac
  return 1
}

# bench_build LABEL EXE WHERE: the Release build of the benchmarks for
# one CPython, in bench_dir (build/bench/<label>), its log in
# $bench_dir.log.  Returns nonzero when the build failed.
bench_build() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  bench_dir="build/bench/$(echo "$1" | tr -c 'A-Za-z0-9.\n' '_')"
  { at "$3" cmake -S "$root" -B "$root/$bench_dir" -DPython_EXECUTABLE="$2" \
      -DCMAKE_BUILD_TYPE=Release -DPYGATE_TESTS=OFF &&
    at "$3" cmake --build "$root/$bench_dir" -j "$(nproc)" \
      --target pygate_bench pool_bench; } >"$root/$bench_dir.log" 2>&1
}
