# SPDX-License-Identifier: MIT
# Draws ev-value-bench's CSV (make bench-plot): wake latency per mechanism
# beside its in-run baseline, and the cost of a set against the number of
# watchers on a log scale.  Called with csv='...' and png='...'.
set terminal pngcairo size 1400,560 font ",10"
set output png
set datafile separator whitespace
set multiplot layout 1,2
set bmargin 12

# The rows of the first run only (the CSV's last column), in case of --runs.
rows(filter) = sprintf("< awk -F, '$NF == 1' %s | awk -F, '%s'", csv, filter)

set title "Wake latency, median (round trip / 2 for ping-pong)"
set ylabel "microseconds"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 left
set key top left
set grid ytics
plot rows('$1=="ping-pong" || ($1=="peers" && $2=="ping-pong") {printf "\"%s, %s\" %f %f\n", $1=="peers" ? "poll vs " $8 : $2, $3, $6/1000, $9/1000}') \
        using 2:xtic(1) title "libevvalue", \
     '' using 3 title "baseline (raw eventfd + the same wait, ZeroMQ, condvar)"

set title "Cost of one set against the number of watchers N"
set ylabel "nanoseconds per set"
set xlabel "N (watchers)"
set style data linespoints
set logscale xy
set xtics norotate
unset xtics
set xtics (1, 10, 100, 1000, 10000)
set key top left
plot rows('$1=="set-idle" && $8 ~ /naive/ {sub("N=","",$2); print $2, $6, $9}') \
        using 1:2 title "set, N idle watchers (libevvalue)" lw 2, \
     '' using 1:3 title "naive: write all N eventfds" lw 2, \
     rows('$1=="set-armed" {sub("N=","",$2); print $2, $6, $9}') \
        using 1:2 title "set, N armed watchers (libevvalue)" lw 2, \
     '' using 1:3 title "malloc+free + N eventfd writes" lw 2 dt 2
unset multiplot
