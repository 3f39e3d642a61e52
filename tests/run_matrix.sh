#!/usr/bin/env bash
# Builds and runs the whole suite once per CPython found on this machine
# and in the Debian sid root (tests/sid_root.sh: today's 3.13, 3.14, 3.15
# and their debug builds), then once more under AddressSanitizer +
# UndefinedBehaviorSanitizer, once under ThreadSanitizer, once built
# with clang, and once under valgrind memcheck (Debian's python3.11, whose
# package installs CPython's suppression file).
# Prints one summary line per run and fails if any run fails.
#
#   tests/run_matrix.sh            every CPython found
#   PYGATE_ONLY=3.12 tests/...     only runs whose label contains "3.12"
#   PYGATE_CTEST_ARGS="-R torture"  extra ctest arguments (make torture)
#   PYGATE_NO_SID=1                 skip the sid root's CPythons
#   PYGATE_REQUIRE_SID=1            fail when they cannot run (CI sets it)
#   PYGATE_CPYTHON_SRC=FILE         a CPython 3.14 source tarball to build
#                                   the free-threaded builds from, where
#                                   none is found (tests/free_threaded.sh)
#   PYGATE_REQUIRE_FREE_THREADED=1  fail when those cannot run (CI sets it)
#   PYGATE_TSAN_FT=1                also run the suite under TSan on a
#                                   free-threaded CPython built with TSan
#                                   (make tsan-ft)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=build/matrix
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# label|python executable|cmake build type|extra cmake flags|where
. tests/pythons.sh
find_pythons

# The sanitizer runs: the newest pyenv CPython (runs are in version order),
# else any release build found.  TSan: libpython is not instrumented, so
# only pygate's own memory accesses are checked, but the GIL's pthread
# mutex and condition variable are intercepted, so its hand-offs order
# them (a lock removed from pygate is reported; nothing else is).
if [ ${#runs[@]} -gt 0 ]; then
  sanitizer_python=""
  for r in "${runs[@]}"; do
    IFS='|' read -r label exe type flags where <<<"$r"
    [ "$where" = host ] || continue
    case "$label" in
      *pyenv*) sanitizer_python=$exe; sanitizer_label=$label ;;
      *debug*) ;;
      *) [ -z "$sanitizer_python" ] && { sanitizer_python=$exe; sanitizer_label=$label; } ;;
    esac
  done
  if [ -n "$sanitizer_python" ]; then
    runs+=("${sanitizer_label} + ASan/UBSan|$sanitizer_python|Debug|-DPYGATE_SANITIZE=ON|host")
    runs+=("${sanitizer_label} + TSan|$sanitizer_python|Debug|-DPYGATE_TSAN=ON|host")
    # clang too: warnings are errors in pygate's own builds with every
    # compiler it supports (gcc 12 here, gcc 16 in the sid root, clang).
    if command -v clang >/dev/null && command -v clang++ >/dev/null; then
      runs+=("${sanitizer_label} + clang|$sanitizer_python|RelWithDebInfo|-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++|host")
      # The API fuzzer for a minute from fuzz/corpus (ASan+UBSan, Debug).
      runs+=("${sanitizer_label} + libFuzzer|$sanitizer_python|Debug|-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPYGATE_FUZZ=ON -DPYGATE_TESTS=OFF -DPYGATE_EXAMPLES=OFF -DPYGATE_BENCH=OFF|host")
    else
      missing+=("${sanitizer_label} + clang (apt-get install clang)")
    fi
  fi
  memcheck_python=/usr/bin/python3.11
  if ! command -v valgrind >/dev/null; then
    missing+=("memcheck (apt-get install valgrind)")
  elif [ ! -x "$memcheck_python" ]; then
    missing+=("memcheck (it runs on Debian's python3.11)")
  else
    runs+=("CPython $($memcheck_python -c 'import platform; print(platform.python_version())') (Debian) + memcheck|$memcheck_python|RelWithDebInfo|-DPYGATE_MEMCHECK=ON -DPYGATE_EXAMPLES=OFF -DPYGATE_BENCH=OFF|host")
  fi
fi

# tsan_runs BUILD_DIR LOG: whether a TSan-built program starts at all (some
# kernels' address-space layouts defeat gcc 12's TSan runtime); its
# complaint goes to LOG.
tsan_runs() {
  local out
  out=$("$1/tests/test_enter" 2>&1)
  case "$out" in *ThreadSanitizer*) echo "$out" >>"$2"; return 1 ;; esac
  return 0
}

summary=()
total_pass=0
total_fail=0
total_skip=0
status=0
for r in "${runs[@]}"; do
  IFS='|' read -r label exe type flags where <<<"$r"
  case "$label" in *"${PYGATE_ONLY:-}"*) ;; *) continue ;; esac
  dir="$OUT/$(echo "$label" | tr -c 'A-Za-z0-9.\n' '_')"
  log="$dir.log"
  run_start=$SECONDS
  echo "=== $label: $exe ($type${flags:+, $flags})"
  if ! { at "$where" cmake -S "$ROOT" -B "$dir" -DPython_EXECUTABLE="$exe" \
           -DCMAKE_BUILD_TYPE="$type" $flags &&
         at "$where" cmake --build "$dir" -j "$JOBS"; } >"$log" 2>&1; then
    tail -30 "$log"
    summary+=("FAIL  $label: build failed (see $log), $((SECONDS - run_start)) s")
    status=1
    total_fail=$((total_fail + 1))
    continue
  fi
  if [[ "$flags" == *TSAN* ]] && ! tsan_runs "$dir" "$log"; then
    summary+=("FAIL  $label: the TSan runtime cannot start here (see $log), $((SECONDS - run_start)) s")
    status=1
    total_fail=$((total_fail + 1))
    continue
  fi
  rm -f "$ROOT/$dir.torture"
  # TSan: a Python daemon thread is never joined, by design (thread leaks).
  # A CPython built with TSan: the races it knows of in itself are left out
  # with its own list (tests/free_threaded.sh keeps it beside the build) and
  # those found here (tests/tsan_ft.supp, each explained).
  tsan_options=report_thread_leaks=0:second_deadlock_stack=1
  supp="$(dirname "$(dirname "$exe")")/tsan-suppressions.txt"
  if [[ "$flags" == *TSAN* && -f "$supp" ]]; then
    cat "$supp" tests/tsan_ft.supp >"$dir.tsan.supp"
    tsan_options="$tsan_options:suppressions=$ROOT/$dir.tsan.supp"
  fi
  (export PYGATE_TORTURE_LOG="$ROOT/$dir.torture" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
     UBSAN_OPTIONS=print_stacktrace=1 TSAN_OPTIONS=$tsan_options
   PYGATE_ENV="PYGATE_TORTURE_LOG=$ROOT/$dir.torture" \
     at "$where" ctest --test-dir "$dir" -j "$JOBS" --output-on-failure ${PYGATE_CTEST_ARGS:-}) >>"$log" 2>&1
  rc=$?
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1)
  ran=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
  failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed.*/\1/')
  [ -z "$ran" ] && ran=0 && failed=1
  skipped=$(grep -c "(Skipped)" "$log")
  passed=$((ran - failed - skipped))
  [ "$passed" -lt 0 ] && passed=0   # no test ran (a bad -R, a crash in ctest)
  total_pass=$((total_pass + passed))
  total_skip=$((total_skip + skipped))
  total_fail=$((total_fail + failed))
  if [ $rc -eq 0 ] && [ "$failed" -eq 0 ] && [ "$ran" -gt 0 ]; then
    summary+=("PASS  $label: $passed passed, 0 failed, $skipped skipped, $((SECONDS - run_start)) s")
  else
    grep -E "\*\*\*|Failed|CHECK failed|misuse|ERROR: AddressSanitizer|WARNING: ThreadSanitizer|runtime error" "$log" | head -20
    # The names too: CI shows the summary, not the log.
    names=$(sed -n '/The following tests FAILED:/,$p' "$log" \
            | grep -oE '[0-9]+ - [^ ]+' | sed 's/^[0-9]* - //' | tr '\n' ' ')
    summary+=("FAIL  $label: $passed passed, $failed failed: ${names:-?}(see $log), $((SECONDS - run_start)) s")
    status=1
  fi
done

echo
echo "pygate test summary"
for s in "${summary[@]}"; do echo "  $s"; done
for m in "${missing[@]}"; do echo "  NOT RUN  $m"; done
case "${missing[*]}" in
  *"sid root"*) [ "${PYGATE_REQUIRE_SID:-0}" = 1 ] && status=1 ;;
esac
case "${missing[*]}" in
  *"free-threaded"*) [ "${PYGATE_REQUIRE_FREE_THREADED:-0}" = 1 ] && status=1 ;;
esac
echo "torture runs (each: threads enter/call/leave while the interpreter ends)"
for r in "${runs[@]}"; do
  IFS='|' read -r label exe type flags where <<<"$r"
  case "$label" in *"${PYGATE_ONLY:-}"*) ;; *) continue ;; esac   # this run's only
  f="$OUT/$(echo "$label" | tr -c 'A-Za-z0-9.\n' '_').torture"
  [ -f "$f" ] && sort "$f" | sed -E "s|^torture |  $label: |; s|; [0-9]+ calls.*||"
done
[ ${#summary[@]} -eq 0 ] && { echo "  no CPython found"; status=1; }
echo "$total_pass passed, $total_fail failed, $total_skip skipped in $SECONDS s"
exit $status
