# peftbench plot (b): average GLUE score vs FLOPs the method adds per token at T=128 (log x).
# Methods that add nothing (full fine-tuning, merged LoRA) sit at x = floor, tic "0 (merged)".
# Error bars ± sample std over seeds where n > 1; dashed lines at the majority-class
# baseline and at full fine-tuning.
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'; ymin=..; ymax=..; base=..; fullv=..; nsingle=..; npts=..; floor=F" score_vs_ops.gp
# datafile columns: "label" x_plotted avg_score added_flops_per_token sd n_seeds_min label_side
# The score range comes from peftbench (harness/plot.h: at least 10 points, holding the
# baseline, full fine-tuning and every error bar); never autoscaled.
if (!exists("fmt")) fmt = 'png'
if (!exists("floor")) floor = 1
if (!exists("ymin")) ymin = 0
if (!exists("ymax")) ymax = 100
if (!exists("base")) base = NaN
if (!exists("fullv")) fullv = NaN
if (!exists("nsingle")) nsingle = 0
if (!exists("npts")) npts = 0
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'GLUE score vs added inference FLOPs per token (T = 128)'."\n".(nsingle > 0 ? sprintf('error bars: ± sample std over seeds; %d of %d points from one seed (no bar)', nsingle, npts) : 'error bars: ± sample std over seeds') font ',11'
set xlabel 'FLOPs the method adds per token (log scale)'
set ylabel 'average GLUE score x100 (tasks run)'
set logscale x 10
set format x '%.0e'
set xtics add ('0 (merged)' floor)
set yrange [ymin:ymax]
set grid xtics ytics
set key below horizontal Left reverse noautotitle font ',10' spacing 1.3 width 2
set offsets graph 0.08, graph 0.2, 0, 0
# reference lines across the plot; their key entries come from NaN proxies in the plot
refs = ''
if (base == base) {
  set arrow 1 from graph 0, first base to graph 1, first base nohead dt 2 lw 1.5 lc rgb '#444444' back
  refs = refs . sprintf(", NaN with lines dt 2 lw 1.5 lc rgb '#444444' title 'majority-class baseline %.1f (mean over the tasks)'", base)
}
if (fullv == fullv) {
  set arrow 2 from graph 0, first fullv to graph 1, first fullv nohead dt 3 lw 2 lc rgb '#2ca02c' back
  refs = refs . sprintf(", NaN with lines dt 3 lw 2 lc rgb '#2ca02c' title 'full fine-tuning %.1f'", fullv)
}
# labels above-right (label_side 1) or below-right (-1): peftbench alternates them along x
plot datafile using 2:($3-$5):(0):(2*$5) with vectors heads size screen 0.008,90 lw 1.5 lc rgb '#d62728', \
     '' using 2:3 with points pt 7 ps 1.6 lc rgb '#d62728', \
     '' using 2:3:($7 > 0 ? strcol(1) : '') with labels left offset char 1,0.6 font ',10', \
     '' using 2:3:($7 < 0 ? strcol(1) : '') with labels left offset char 1,-0.7 font ',10' @refs
