#!/usr/bin/env bash
# Instructions per iteration of pygate_bench's strategies on one thread,
# counted by valgrind's callgrind over the whole process (pool workers
# included): a figure the machine's other load does not move, for
# comparing two builds of pygate (a change that must not make the entry or
# the pool dearer) or two strategies.
#
#   bench/per_call_instructions.sh PYGATE_BENCH [STRATEGY...]
#       (default: floor pygate pygate_nested pygate_call pygate_pool)
#
# Each strategy runs N1 and then N2 empty calls (PYGATE_INSTR_N1/N2,
# default 2000 and 12000); (I(N2) - I(N1)) / (N2 - N1) is one iteration,
# with start-up and the measurement's own set-up taken out.
set -euo pipefail
bench=${1:?usage: bench/per_call_instructions.sh PYGATE_BENCH [STRATEGY...]}
shift
strategies=("$@")
[ ${#strategies[@]} -gt 0 ] ||
  strategies=(floor pygate pygate_nested pygate_call pygate_pool)
N1=${PYGATE_INSTR_N1:-2000}
N2=${PYGATE_INSTR_N2:-12000}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# instructions STRATEGY CALLS: the process's instruction count.
instructions() {
  PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
    "$bench" --only "$1" --workload empty --threads 1 --reps 1 \
    --calls "$2" >/dev/null 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
  sed -nE 's/.*Collected : ([0-9]+).*/\1/p' "$out/log"
}

printf '%-22s %12s\n' strategy instructions
for s in "${strategies[@]}"; do
  a=$(instructions "$s" "$N1")
  b=$(instructions "$s" "$N2")
  printf '%-22s %12d\n' "$s" $(( (b - a) / (N2 - N1) ))
done
