#!/usr/bin/env bash
# bench/many_threads.sh: the many-threads targets only, for every CPython
# make bench finds (PYGATE_ONLY=3.12 for one).  Per version, in one process
# each: calls per second of one thread entering, eight threads entering,
# eight threads calling through pygate_call and eight submitting pool jobs
# (to a pool with the default unbounded queue, and to one bounded at
# 16384 jobs), empty and json calls, median of REPS; pygate_decref's ns per
# call into reused and into fresh memory, and what a fresh page costs (the
# unbounded pool's jobs are fresh memory too: 64 bytes each); one submit
# + wait on an idle pool beside one entry; and a Python thread's ticks with
# the pool saturated, as a share of its ticks with the pool idle; and the
# pool's two halves apart: a submission, and one worker running queued jobs
# alone, beside an entry making the same call; and what one switch between
# two threads on a core costs here (pygate_bench's first line), which a
# synchronous caller that is not running waits for.
# Prints a markdown table with the ratios the targets name, also written
# to bench/results/many_threads.md.  Reuses make bench's Release builds.
#
#   REPS=5 bench/many_threads.sh   (CALLS=1600000: 10^5 calls per thread with 8)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-5}
CALLS=${CALLS:-1600000}
OUT=bench/results/many_threads.md
mkdir -p bench/results build/bench
. tests/pythons.sh
find_pythons

# rate CSV STRATEGY WORKLOAD THREADS: the median calls per second
rate() {
  awk -F, -v s="$2" -v w="$3" -v t="$4" \
    '$2 == "calls_per_second" && $3 == s && $4 == w && $5 == t { print $6 }' "$1"
}

# measure LINES MEASURE WHAT: a value of pool_bench's csv lines
measure() {
  echo "$1" | awk -F, -v m="$2" -v w="$3" '$3 == m && $4 == w { print $6 }'
}

{
  echo "| CPython | empty: 1 enters | 8 enter | 8 pool | 8 pool, bounded | pool / 1 enters (>= 1) | bounded / 1 enters | pool / 8 enter (>= 3) | bounded / 8 enter | 8 \`pygate_call\` / 8 enter (>= 2) | json: 8 \`pygate_call\` / 8 enter | json: 8 pool / 8 enter | decref ns, reused memory (<= 25) | decref ns, fresh memory | fresh page us | idle pool round trip us | entry + the same call ns | round trip / entry | Python ticks, pool saturated (>= 25%) | submission ns | one worker alone, ns per job | worker alone / entry | thread switch us |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT.tmp"
for r in "${runs[@]}"; do
  IFS='|' read -r label exe type flags where <<<"$r"
  bench_wanted "$label" || continue
  if ! bench_build "$label" "$exe" "$where"; then
    echo "FAIL  $label: the build failed ($bench_dir.log)"
    continue
  fi
  dir=$bench_dir
  csv="$ROOT/$dir.many_threads.csv"
  # One thread entering, then eight of each kind (the figures asked for
  # only: every thread count of every strategy takes minutes per version).
  at "$where" "$ROOT/$dir/bench/pygate_bench" --calls "$CALLS" --reps "$REPS" \
    --only pygate --threads 1 --csv "$csv.1" >/dev/null &&
  at "$where" "$ROOT/$dir/bench/pygate_bench" --calls "$CALLS" --reps "$REPS" \
    --only pygate,pygate_call,pygate_pool,pygate_pool_bounded --threads 8 \
    --csv "$csv.8" >/dev/null || { echo "FAIL  $label: pygate_bench"; continue; }
  cat "$csv.1" "$csv.8" >"$csv" && rm -f "$csv.1" "$csv.8"
  targets=$(at "$where" "$ROOT/$dir/bench/pool_bench" --targets | grep '^csv,')
  awk -v label="$label" -v e1="$(rate "$csv" pygate empty 1)" \
      -v e8="$(rate "$csv" pygate empty 8)" -v p8="$(rate "$csv" pygate_pool empty 8)" \
      -v b8="$(rate "$csv" pygate_pool_bounded empty 8)" \
      -v c8="$(rate "$csv" pygate_call empty 8)" -v j8="$(rate "$csv" pygate json 8)" \
      -v jp8="$(rate "$csv" pygate_pool json 8)" \
      -v jc8="$(rate "$csv" pygate_call json 8)" \
      -v sw="$(awk -F, '$2 == "thread_switch_us" { print $6; exit }' "$csv")" \
      -v d="$(measure "$targets" decref_ns one_thread_reused)" \
      -v df="$(measure "$targets" decref_ns one_thread)" \
      -v pg="$(measure "$targets" fresh_page_us mmap_first_write)" \
      -v rt="$(measure "$targets" round_trip_ns pool_submit_wait)" \
      -v re="$(measure "$targets" round_trip_ns pygate_enter)" \
      -v tk="$(measure "$targets" python_ticks_share pool_saturated)" \
      -v ds="$(measure "$targets" drain_ns pool_submit)" \
      -v dw="$(measure "$targets" drain_ns pool_worker)" \
      -v de="$(measure "$targets" drain_ns pygate_enter)" 'BEGIN {
    printf "| %s | %.2f M | %.2f M | %.2f M | %.2f M | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f | %.1f | %.0f | %.0f | %.0f%% | %.0f | %.0f | %.2f | %.2f |\n",
      label, e1 / 1e6, e8 / 1e6, p8 / 1e6, b8 / 1e6, p8 / e1, b8 / e1, p8 / e8, b8 / e8,
      c8 / e8, jc8 / j8, jp8 / j8, d, df, pg, rt / 1e3, re, rt / re, tk * 100, ds, dw, dw / de, sw }' \
    | tee -a "$OUT.tmp"
done
mv "$OUT.tmp" "$OUT"
echo "table: $OUT"
