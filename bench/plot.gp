# ns per call (median, empty Python call, one native thread) per strategy
# and CPython version, from bench/results/all.csv; log scale, because
# per-call thread-state creation is ~300x slower than the rest on 3.11+.
if (!exists("results")) results = 'bench/results'
set datafile separator ','
set terminal pngcairo size 1100,600 noenhanced
set output results.'/ns_per_call.png'
set title 'ns per empty Python call from a native thread (median; lower is better)'
set logscale y
set ylabel 'ns per call (log scale)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right top
set xtics rotate by -20
set grid ytics
# One cluster per CPython version; one bar per strategy.
strategies = 'gilstate pinned floor pybind11 pybind11_keep pygate pygate_nested cpython_pep788'
# rows.dat: version, then one column per strategy (missing: '-').
system(sprintf("awk -F, -v s='%s' 'NR>1 && $2==\"ns_per_call\" && $4==\"empty\" {v[$1]=1; m[$1\" \"$3]=$6} END {n=split(s,a,\" \"); for (k in v) {line=k; for(i=1;i<=n;i++){x=m[k\" \"a[i]]; line=line\",\"(x==\"\"?\"-\":x)} print line}}' %s/all.csv | sort -V > %s/rows.dat", strategies, results, results))
set datafile missing '-'
plot for [i=2:9] results.'/rows.dat' using i:xtic(1) title word(strategies, i-1)
