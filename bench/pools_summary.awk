# Markdown tables of bench/results/pools.csv (pool_bench.c and
# interp_executor.py): worker pools, deferred decref, interpreter pools.
# Columns: python,measure,what,k,value,unit
BEGIN { FS = "," }
NR > 1 {
    v[$1] = 1
    m[$1, $2, $3, $4] = $5
}
function get(ver, measure, what, k) {
    return ((ver, measure, what, k) in m) ? m[ver, measure, what, k] : ""
}
function fmt(x, digits) {
    return x == "" ? "–" : sprintf("%." digits "f", x)
}
function ratio(a, b) {
    return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2f", a / b)
}
END {
    n = 0
    for (ver in v) vers[++n] = ver
    # sort versions numerically by their parts
    for (i = 1; i <= n; i++)
        for (j = i + 1; j <= n; j++) {
            split(vers[i], a, "."); split(vers[j], b, ".")
            if (a[1] * 10000 + a[2] * 100 + a[3] > b[1] * 10000 + b[2] * 100 + b[3]) {
                t = vers[i]; vers[i] = vers[j]; vers[j] = t
            }
        }
    print "\n## Worker pools and deferred decref\n"
    print "| CPython | submit+wait ns | enter+call+leave ns | ratio | decref ns (1 thread, reused memory) | decref ns (1 thread, fresh memory) | fresh page us | decref ns (8 threads) | RSS after 8x decrefs KiB | Python ticks, pool saturated |"
    print "|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        x = vers[i]
        p = get(x, "round_trip_ns", "pool_submit_wait", 1)
        e = get(x, "round_trip_ns", "pygate_enter", 1)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x, fmt(p, 0), fmt(e, 0),
            ratio(p, e), fmt(get(x, "decref_ns", "one_thread_reused", 1), 1),
            fmt(get(x, "decref_ns", "one_thread", 1), 1),
            fmt(get(x, "fresh_page_us", "mmap_first_write", 1), 2),
            fmt(get(x, "decref_ns", "eight_threads", 8), 1),
            fmt(get(x, "decref_rss_growth", "eight_threads", 8), 0),
            fmt(get(x, "python_ticks_share", "pool_saturated", 8) * 100, 0) "%"
    }
    print "\n## Interpreter pools: ~1 ms Python jobs per second (pool / by hand / InterpreterPoolExecutor in the same process)\n"
    print "| CPython | K=1 | K=2 | K=4 | K=8 | pool/hand (min) | speed-up at K=2 | pool/executor (cpu, min) | pool/executor (tiny, min) |"
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        x = vers[i]
        line = "| " x
        minhand = ""; minexe = ""; mintiny = ""
        for (k = 1; k <= 8; k *= 2) {
            p = get(x, "cpu_jobs_per_second", "interp_pool", k)
            h = get(x, "cpu_jobs_per_second", "by_hand", k)
            ex = get(x, "cpu_jobs_per_second", "interpreter_pool_executor_embedded", k)
            line = line " | " fmt(p, 0) " / " fmt(h, 0) " / " fmt(ex, 0)
            if (p != "" && h != "" && (minhand == "" || p / h < minhand)) minhand = p / h
            if (p != "" && ex != "" && (minexe == "" || p / ex < minexe)) minexe = p / ex
            tp = get(x, "tiny_jobs_per_second", "interp_pool", k)
            te = get(x, "tiny_jobs_per_second", "interpreter_pool_executor_embedded", k)
            if (tp != "" && te != "" && (mintiny == "" || tp / te < mintiny)) mintiny = tp / te
        }
        s = ratio(get(x, "cpu_jobs_per_second", "interp_pool", 2),
                  get(x, "cpu_jobs_per_second", "interp_pool", 1))
        print line " | " fmt(minhand, 3) " | " s " | " fmt(minexe, 2) " | " fmt(mintiny, 1) " |"
    }
    print "\nThe same, with a job that allocates nothing (bench_work.spin(): cached small ints only), pool / by hand:\n"
    print "| CPython | K=1 | K=2 | K=4 | K=8 | pool/hand (min) |"
    print "|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        x = vers[i]
        line = "| " x
        minhand = ""
        for (k = 1; k <= 8; k *= 2) {
            p = get(x, "cpu_noalloc_jobs_per_second", "interp_pool", k)
            h = get(x, "cpu_noalloc_jobs_per_second", "by_hand", k)
            line = line " | " fmt(p, 0) " / " fmt(h, 0)
            if (p != "" && h != "" && (minhand == "" || p / h < minhand)) minhand = p / h
        }
        print line " | " fmt(minhand, 3) " |"
    }
    print "\n| CPython | RSS per interpreter KiB | open K=8 ms | close K=8 ms | tiny jobs/s K=1 | K=8 | executor in python executable, cpu K=1 / K=2 |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        x = vers[i]
        printf "| %s | %s | %s | %s | %s | %s | %s / %s |\n", x,
            fmt(get(x, "rss_per_interpreter", "interp_pool", 8), 0),
            fmt(get(x, "interp_pool_open_ms", "open", 8), 1),
            fmt(get(x, "interp_pool_close_ms", "close", 8), 1),
            fmt(get(x, "tiny_jobs_per_second", "interp_pool", 1), 0),
            fmt(get(x, "tiny_jobs_per_second", "interp_pool", 8), 0),
            fmt(get(x, "cpu_jobs_per_second", "interpreter_pool_executor_exe", 1), 0),
            fmt(get(x, "cpu_jobs_per_second", "interpreter_pool_executor_exe", 2), 0)
    }
}
