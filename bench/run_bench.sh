#!/usr/bin/env bash
# make bench: builds the benchmark (Release) for every CPython found (not
# the debug builds; today's 3.13, 3.14 and 3.15 in the sid root of
# tests/sid_root.sh, with sid's pybind11 3.x), runs it, prints its tables, writes one CSV per version
# and all.csv under bench/results/, and plots ns per call with gnuplot.
#
#   PYGATE_ONLY=3.12 make bench       one version (labels containing 3.12)
#   PYGATE_BENCH_ARGS="--calls 50000"  other counts (see pygate_bench.c)
#   PYGATE_POOL_BENCH_ARGS=--quick     tiny counts for pool_bench.c
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS=bench/results
mkdir -p "$RESULTS" build/bench
. tests/pythons.sh
find_pythons

status=0
csvs=()
for r in "${runs[@]}"; do
  IFS='|' read -r label exe type flags where <<<"$r"
  bench_wanted "$label" || continue
  echo "=== $label"
  if ! bench_build "$label" "$exe" "$where"; then
    tail -20 "$bench_dir.log"
    status=1
    continue
  fi
  dir=$bench_dir
  name=${dir#build/bench/}
  csv="$RESULTS/$name.csv"
  if at "$where" "$ROOT/$dir/bench/pygate_bench" --csv "$ROOT/$csv" ${PYGATE_BENCH_ARGS:-}; then
    csvs+=("$csv")
  else
    echo "FAIL  $label: the benchmark failed"
    status=1
  fi
  # Instructions per iteration, side by side, with the targets' ratios
  # (callgrind: valgrind in the sid root is installed on first use).
  instr="$RESULTS/$name.instructions.txt"
  if [ "$where" = sid ]; then
    at sid sh -c 'command -v valgrind >/dev/null ||
      apt-get install -y -q valgrind >/dev/null 2>&1' || true
  fi
  if at "$where" "$ROOT/bench/per_call_instructions.sh" \
      "$ROOT/$dir/bench/pygate_bench" >"$instr.tmp" 2>&1; then
    mv "$instr.tmp" "$instr"
    echo "instructions per iteration, empty call (callgrind):"
    cat "$instr"
  else
    echo "instructions per iteration: not counted ($(tail -1 "$instr.tmp"))"
    rm -f "$instr.tmp"
  fi
  # Pools, deferred decref, interpreter pools; InterpreterPoolExecutor on
  # 3.14+ with the same jobs (bench/interp_executor.py), in pool_bench's
  # process and with the python executable.
  out="$dir.pools.txt"
  if at "$where" "$ROOT/$dir/bench/pool_bench" ${PYGATE_POOL_BENCH_ARGS:-} >"$out"; then
    steps=$(sed -n '/bench_work.work()/s/.*a Python loop of \([0-9]*\) steps.*/\1/p' "$out")
    at "$where" env PYTHONPATH="$ROOT/bench" PYTHONDONTWRITEBYTECODE=1 "$exe" "$ROOT/bench/interp_executor.py" \
      "$steps" exe ${PYGATE_POOL_BENCH_ARGS:-} >>"$out"
    grep -v '^csv,' "$out"
    { echo "python,measure,what,k,value,unit"; sed -n 's/^csv,//p' "$out"; } \
      >"$RESULTS/$name.pools.csv"
  else
    cat "$out"
    echo "FAIL  $label: the pool benchmark failed"
    status=1
  fi
done
[ ${#csvs[@]} -eq 0 ] && { echo "no benchmark ran"; exit 1; }

# all.csv: every version's rows under one header, the versions measured
# now and those measured earlier (PYGATE_ONLY runs add to the picture).
head -1 "${csvs[0]}" >"$RESULTS/all.csv"
for c in $(ls "$RESULTS"/CPython_*.csv | sort -V); do
  tail -n +2 "$c" >>"$RESULTS/all.csv"
done

awk -f bench/summary.awk "$RESULTS/all.csv" >"$RESULTS/summary.md"
# The pools' rows of every version, under one header.
echo "python,measure,what,k,value,unit" >"$RESULTS/pools.csv"
for c in $(ls "$RESULTS"/CPython_*.pools.csv 2>/dev/null | sort -V); do
  tail -n +2 "$c" >>"$RESULTS/pools.csv"
done
awk -f bench/pools_summary.awk "$RESULTS/pools.csv" >>"$RESULTS/summary.md"
cat "$RESULTS/summary.md"

if command -v gnuplot >/dev/null; then
  gnuplot -e "results='$RESULTS'" bench/plot.gp &&
    echo "plot: $RESULTS/ns_per_call.png"
  gnuplot -e "results='$RESULTS'" bench/plot_pools.gp &&
    echo "plot: $RESULTS/interp_pool_scaling.png"
else
  echo "gnuplot not found: no plot (apt-get install gnuplot-nox)"
fi
echo "csv: $RESULTS/all.csv"
exit $status
