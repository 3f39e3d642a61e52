# Markdown tables from bench/results/all.csv (run_bench.sh writes them to
# bench/results/summary.md; docs/PERFORMANCE.md shows them).
# Columns: python,measure,strategy,workload,threads,median,min,max,unit
BEGIN { FS = "," }
NR == 1 { next }
{
    v = $1
    if (!(v in seen)) { seen[v] = 1; order[++n] = v }
    key = v SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5
    med[key] = $6; lo[key] = $7; hi[key] = $8
}

function ns(v, s, w) {
    return val(v, "ns_per_call", s, w, "%.1f")
}

function ratio(v, m, s, w, fmt,    k) {
    k = v SUBSEP m SUBSEP s SUBSEP w SUBSEP 1
    if (!(k in med)) return "–"
    return sprintf(fmt " (" fmt "–" fmt ")", med[k], lo[k], hi[k])
}

function val(v, m, s, w, fmt,    k) {
    k = v SUBSEP m SUBSEP s SUBSEP w SUBSEP 1
    return (k in med) ? sprintf(fmt, med[k]) : "–"
}

END {
    print "ns per call from one native thread, empty Python call (median of the repetitions):"
    print ""
    print "| CPython | gilstate | pinned | floor | pybind11 | pybind11_keep | nanobind_keep | pygate | pygate/floor | gilstate/pygate | pygate_nested | nested enter/leave alone | explicit guard take + close |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        v = order[i]
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", v,
            ns(v, "gilstate", "empty"), ns(v, "pinned", "empty"),
            ns(v, "floor", "empty"), ns(v, "pybind11", "empty"),
            ns(v, "pybind11_keep", "empty"), ns(v, "nanobind_keep", "empty"),
            ns(v, "pygate", "empty"),
            ratio(v, "ratio_pygate_over_floor", "pygate", "empty", "%.3f"),
            ratio(v, "ratio_gilstate_over_pygate", "gilstate", "empty", "%.1f"),
            ns(v, "pygate_nested", "empty"),
            ns(v, "nested_enter_leave_only", "none"),
            ns(v, "guard_take_close_only", "none")
    }
    print ""
    print "json call (build a dict, json.dumps it), and memory:"
    print ""
    print "| CPython | floor ns | pygate ns | pygate/floor | RSS growth over the calls, pygate KiB | churn µs per thread, gilstate / pygate | RSS growth after the churn, gilstate / pygate KiB |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        v = order[i]
        printf "| %s | %s | %s | %s | %s | %s / %s | %s / %s |\n", v,
            ns(v, "floor", "json"), ns(v, "pygate", "json"),
            ratio(v, "ratio_pygate_over_floor", "pygate", "json", "%.3f"),
            val(v, "rss_growth_over_calls", "pygate", "empty", "%d"),
            val(v, "churn_us_per_thread", "gilstate", "empty", "%.1f"),
            val(v, "churn_us_per_thread", "pygate", "empty", "%.1f"),
            val(v, "churn_rss_growth", "gilstate", "empty", "%d"),
            val(v, "churn_rss_growth", "pygate", "empty", "%d")
    }
    print ""
    print "CPython 3.15's own PEP 788 (`PyThreadState_EnsureFromView`/`Release` per call) beside pygate, empty call:"
    print ""
    print "| CPython | cpython_pep788 ns | pygate ns | cpython_pep788/pygate | pygate/floor |"
    print "|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        v = order[i]
        if (!((v SUBSEP "ns_per_call" SUBSEP "cpython_pep788" SUBSEP "empty" SUBSEP 1) in med)) continue
        printf "| %s | %s | %s | %s | %s |\n", v,
            ns(v, "cpython_pep788", "empty"), ns(v, "pygate", "empty"),
            ratio(v, "ratio_cpython_pep788_over_pygate", "cpython_pep788", "empty", "%.1f"),
            ratio(v, "ratio_pygate_over_floor", "pygate", "empty", "%.3f")
    }
}
