#!/usr/bin/env bash
# Instructions per iteration of pygate_bench's strategies (enter, an empty
# Python call, leave) on one thread, counted by valgrind's callgrind over
# the whole process (pool workers included): figures the machine's other
# load does not move, side by side in one run, with the ratios the
# performance targets are stated in (docs/PERFORMANCE.md).
#
#   bench/per_call_instructions.sh PYGATE_BENCH [STRATEGY...]
#
# Each strategy runs N1 and then N2 iterations (pygate_bench --iterations;
# PYGATE_INSTR_N1/N2, default 2000 and 12000); (I(N2) - I(N1)) / (N2 - N1)
# is one iteration, start-up and set-up taken out.  "over the call" is that
# less call_only's (the call alone, attached throughout): what entering
# and leaving cost.  PYTHONHASHSEED=0 makes a run repeat to the
# instruction; a strategy not built for this CPython is left out.
set -euo pipefail
bench=${1:?usage: bench/per_call_instructions.sh PYGATE_BENCH [STRATEGY...]}
shift
strategies=("$@")
[ ${#strategies[@]} -gt 0 ] ||
  strategies=(call_only floor pinned gilstate_kept pybind11_keep
              nanobind_keep pygate pygate_nested pygate_call pygate_pool
              gilstate pybind11 nanobind cpython_pep788)
N1=${PYGATE_INSTR_N1:-2000}
N2=${PYGATE_INSTR_N2:-12000}
. "$(dirname "$0")/callgrind.sh"
export PYTHONHASHSEED=0

# instructions STRATEGY CALLS: the process's instruction count; empty when
# the strategy is not built here (pygate_bench exits 3).
instructions() {
  local rc=0
  callgrind_count "$bench" --iterations "$1" --calls "$2" || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { cat "$callgrind_log" >&2; exit 1; }
}

declare -A per
for s in "${strategies[@]}"; do
  a=$(instructions "$s" "$N1")
  [ -n "$a" ] || continue
  per[$s]=$(callgrind_per "$N1" "$N2" "$a" "$(instructions "$s" "$N2")")
done

base=${per[call_only]:-}
printf '%-16s %14s %15s\n' strategy "instr/iter" "over the call"
for s in "${strategies[@]}"; do
  [ -n "${per[$s]:-}" ] || continue
  over=-
  [ -n "$base" ] && over=$(( per[$s] - base ))
  printf '%-16s %14d %15s\n' "$s" "${per[$s]}" "$over"
done

# ratio A B TARGET: A's instructions over B's, with the target beside it.
ratio() {
  [ -n "${per[$1]:-}" ] && [ -n "${per[$2]:-}" ] || return 0
  awk -v a="${per[$1]}" -v b="${per[$2]}" -v n1="$1" -v n2="$2" -v t="$3" \
    'BEGIN { printf "  %s / %s = %.3f   (target %s)\n", n1, n2, a / b, t }'
}
echo "ratios of instructions per iteration"
ratio pygate floor "<= 1.05"
ratio pygate pinned "< 1"
ratio pygate gilstate_kept "< 1"
ratio pygate pybind11_keep "< 1"
ratio pygate nanobind_keep "< 1"
ratio pygate_call pygate "<= 1.02"
ratio gilstate gilstate_kept "foreign PyGILState code, kept state: > 1"
if [ -n "$base" ] && [ -n "${per[pygate_nested]:-}" ]; then
  echo "  nested enter/leave pair: $(( per[pygate_nested] - base )) instructions (target <= 10)"
fi
