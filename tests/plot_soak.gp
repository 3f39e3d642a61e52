# The soak's samples (tests/soak.c) against time: RSS on the left axis,
# thread states and pygate's thread records on the right.
#   gnuplot -e "csv='bench/results/soak.csv'; png='bench/results/soak.png'" tests/plot_soak.gp
if (!exists("csv")) csv = 'bench/results/soak.csv'
if (!exists("png")) png = 'bench/results/soak.png'
set datafile separator ','
set terminal pngcairo size 1100,600 noenhanced
set output png
set title 'soak: 16 native threads entering, with thread, pool and interpreter churn'
set xlabel 'minutes'
set ylabel 'RSS (MiB)'
set y2label 'count'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key outside right top
set grid
plot csv using ($1/60):($2/1024) skip 1 with linespoints title 'RSS', \
     csv using ($1/60):3 skip 1 axes x1y2 with lines title 'thread states (main)', \
     csv using ($1/60):5 skip 1 axes x1y2 with lines title 'pygate thread records', \
     csv using ($1/60):4 skip 1 axes x1y2 with lines title 'pygate records'
