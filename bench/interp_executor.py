"""CPython 3.14+'s own answer, measured as bench/pool_bench.c measures
pygate's interpreter pool: concurrent.futures.InterpreterPoolExecutor with
K = 1, 2, 4, 8 workers, N cpu jobs (bench_work.work(steps), about 1 ms)
and tiny jobs (bench_work.empty()), submitted from one thread and then
waited for.  Prints "csv," lines as pool_bench does.

usage: python3.14 interp_executor.py STEPS [LABEL] [--quick]
(bench/ must be on PYTHONPATH: each interpreter imports bench_work).
pool_bench.c runs it inside its own process, LABEL "embedded", so that
both sides use the same libpython; run_bench.sh also runs it with the
python executable, LABEL "exe" (Debian links that one statically, and it
is faster)."""
import sys
import sysconfig
import time

try:
    from concurrent.futures import InterpreterPoolExecutor
except ImportError:
    print("interp_executor: no InterpreterPoolExecutor before CPython 3.14")
    sys.exit(0)

import bench_work

# "3.14.7t" for a free-threaded build, as the C benchmarks name it.
VERSION = sys.version.split()[0] + (
    "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")


def rate(ex, jobs, fn, *args):
    t0 = time.monotonic()
    futures = [ex.submit(fn, *args) for _ in range(jobs)]
    for f in futures:
        f.result()
    return jobs / (time.monotonic() - t0)


def main():
    steps = int(sys.argv[1])
    quick = "--quick" in sys.argv
    args = [a for a in sys.argv[2:] if a != "--quick"]
    what = "interpreter_pool_executor_" + (args[0] if args else "exe")
    cpu_jobs, tiny_jobs = (16, 100) if quick else (800, 20000)
    print("InterpreterPoolExecutor (%s): cpu job = bench_work.work(%d)"
          % (what, steps))
    print("%3s %14s %14s" % ("K", "cpu jobs/s", "tiny jobs/s"))
    for k in (1, 2, 4, 8):
        with InterpreterPoolExecutor(max_workers=k) as ex:
            rate(ex, 2 * k, bench_work.empty)   # start every worker
            cpu = rate(ex, cpu_jobs, bench_work.work, steps)
            tiny = rate(ex, tiny_jobs, bench_work.empty)
        print("%3d %14.0f %14.0f" % (k, cpu, tiny))
        print("csv,%s,cpu_jobs_per_second,%s,%d,%.3f,jobs/s"
              % (VERSION, what, k, cpu))
        print("csv,%s,tiny_jobs_per_second,%s,%d,%.3f,jobs/s"
              % (VERSION, what, k, tiny))


if __name__ == "__main__":
    main()
