# ~1 ms Python jobs per second against K interpreters, from
# bench/results/pools.csv: pygate's interpreter pool (solid) beside
# interpreters driven by hand (dashed), one colour per CPython version.
if (!exists("results")) results = 'bench/results'
set datafile separator ','
set terminal pngcairo size 1100,600 noenhanced
set output results.'/interp_pool_scaling.png'
set title 'Python jobs of ~1 ms per second, K interpreters (higher is better)'
set xlabel 'K (interpreters)'
set ylabel 'jobs per second'
set logscale x 2
set xtics (1, 2, 4, 8)
set key outside right top
set grid
# scaling.dat: "version,what,k,value" rows, one block per version and kind.
system(sprintf("awk -F, 'NR>1 && $2==\"cpu_jobs_per_second\" && $3!~/executor/ {print $1\",\"$3\",\"$4\",\"$5}' %s/pools.csv | sort -t, -k1,1V -k2,2 -k3,3n | awk -F, 'NR>1 && ($1\",\"$2)!=last {print \"\"; print \"\"} {print; last=$1\",\"$2}' > %s/scaling.dat", results, results))
titles = system(sprintf("awk -F, 'NR>1 && $2==\"cpu_jobs_per_second\" && $3!~/executor/ {print $1\"_\"$3}' %s/pools.csv | sort -t_ -k1,1V -k2 | uniq | tr '\\n' ' '", results))
plot for [i=0:words(titles)-1] results.'/scaling.dat' index i using 3:4 \
     with linespoints lt i / 2 + 1 dt 2 - i % 2 \
     title word(titles, i + 1)
