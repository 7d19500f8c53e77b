# peftbench plot (e, only with early-exit or ODE-step records): average GLUE score vs mean FLOPs per example
# at the examples' own lengths. One curve per configuration with exits (`peftbench eval
# --exit-threshold` or `--ode-steps`), its points ordered by threshold (t=THRESHOLD) or steps (S'=K); methods without
# exits as grey points. Error bars ± sample std over seeds where n > 1; dashed lines at the
# majority-class baseline and at full fine-tuning.
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'; ymin=..; ymax=..; base=..; fullv=..; nsingle=..; npts=..; ncurves=..; nstatic=.." score_vs_flops.gp
# datafile: index blocks 0..ncurves-1 are the curves (first line: a header whose first column is
# the curve's title), block ncurves the static points (when nstatic > 0). Columns:
#   "label" mean_flops_per_example avg_score sd threshold speedup n_seeds_min
# The score range comes from peftbench (harness/plot.h); never autoscaled.
if (!exists("fmt")) fmt = 'png'
if (!exists("ymin")) ymin = 0
if (!exists("ymax")) ymax = 100
if (!exists("base")) base = NaN
if (!exists("fullv")) fullv = NaN
if (!exists("nsingle")) nsingle = 0
if (!exists("npts")) npts = 0
if (!exists("ncurves")) ncurves = 0
if (!exists("nstatic")) nstatic = 0
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'GLUE score vs mean inference FLOPs per example (one curve per sweep: early-exit threshold t or ODE steps S'')'."\n".(nsingle > 0 ? sprintf('error bars: ± sample std over seeds; %d of %d points from one seed (no bar)', nsingle, npts) : 'error bars: ± sample std over seeds') font ',11'
set xlabel 'mean FLOPs per example at the examples'' own lengths (2 x MACs + elementwise + transcendental)'
set ylabel 'average GLUE score x100 (tasks run)'
set format x '%.1s%c'
set yrange [ymin:ymax]
set grid xtics ytics
set key below horizontal Left reverse noautotitle font ',10' spacing 1.3 width 2
set offsets graph 0.08, graph 0.2, 0, 0
refs = ''
if (base == base) {
  set arrow 1 from graph 0, first base to graph 1, first base nohead dt 2 lw 1.5 lc rgb '#444444' back
  refs = refs . sprintf(", NaN with lines dt 2 lw 1.5 lc rgb '#444444' title 'majority-class baseline %.1f (mean over the tasks)'", base)
}
if (fullv == fullv) {
  set arrow 2 from graph 0, first fullv to graph 1, first fullv nohead dt 3 lw 2 lc rgb '#2ca02c' back
  refs = refs . sprintf(", NaN with lines dt 3 lw 2 lc rgb '#2ca02c' title 'full fine-tuning %.1f'", fullv)
}
# long row labels (a configuration told apart by many keys) are cut for the figure; the data file has them whole
short(s) = strlen(s) > 48 ? s[1:45].'...' : s
statics = ''
if (nstatic > 0) {
  statics = sprintf(", datafile index %d using 2:($3-$4):(0):(2*$4) with vectors heads size screen 0.008,90 lw 1.2 lc rgb '#777777' notitle", ncurves) . \
            sprintf(", '' index %d using 2:3 with points pt 5 ps 1.4 lc rgb '#555555' title 'no early exit'", ncurves) . \
            sprintf(", '' index %d using 2:3:(short(strcol(1))) with labels left offset char 1,-0.7 font ',9' notitle", ncurves)
}
plot for [i=0:ncurves-1] datafile index i using 2:3 with linespoints lw 2 pt 7 ps 1.3 lc i+1 title columnheader(1), \
     for [i=0:ncurves-1] datafile index i using 2:($3-$4):(0):(2*$4) with vectors heads size screen 0.008,90 lw 1.2 lc i+1 notitle, \
     for [i=0:ncurves-1] datafile index i using 2:3:1 with labels offset char 0,0.9 font ',9' notitle @statics @refs
