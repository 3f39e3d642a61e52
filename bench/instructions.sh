#!/usr/bin/env bash
# Instructions per CPU-bound job, an interpreter pool beside interpreters
# made by hand, counted by valgrind's callgrind over the whole process (all
# threads): a figure the machine's other load does not move, where the
# wall-clock curve of make bench moves by up to 2x between runs here.
#
#   bench/instructions.sh POOL_BENCH [K...]     (default K: 1 2 4)
#
# For each side and K, pool_bench --one runs N1 and then N2 jobs of both
# kinds of work (bench_work.work allocates an int per step, .spin does
# not); (I(N2) - I(N1)) / (N2 - N1) is the cost of one job, with making
# and ending the interpreters taken out.  Prints a table; hand/pool >= 1
# means the pool spends no more instructions on a job than the hand-made
# interpreters do.
set -euo pipefail
bench=${1:?usage: bench/instructions.sh POOL_BENCH [K...]}
shift
ks=("$@")
[ ${#ks[@]} -gt 0 ] || ks=(1 2 4)
N1=${PYGATE_INSTR_N1:-8}
N2=${PYGATE_INSTR_N2:-24}
. "$(dirname "$0")/callgrind.sh"

# instructions SIDE K JOBS WORK: the process's instruction count.
instructions() {
  callgrind_count "$bench" --one "$1" "$2" "$3" "$4" \
    || { cat "$callgrind_log" >&2; exit 1; }
}

# per_job SIDE K WORK: instructions per job.
per_job() {
  callgrind_per "$N1" "$N2" "$(instructions "$1" "$2" "$N1" "$3")" \
    "$(instructions "$1" "$2" "$N2" "$3")"
}

"$bench" --one pool 1 1 work | head -1
printf "instructions per job (callgrind, whole process; %d and %d jobs)\n" "$N1" "$N2"
printf "%-5s %3s %16s %16s %10s\n" work K pool hand hand/pool
for work in work spin; do
  for k in "${ks[@]}"; do
    pool=$(per_job pool "$k" "$work")
    hand=$(per_job hand "$k" "$work")
    awk -v w="$work" -v k="$k" -v p="$pool" -v h="$hand" \
      'BEGIN { printf "%-5s %3d %16d %16d %10.4f\n", w, k, p, h, h / p }'
  done
done
