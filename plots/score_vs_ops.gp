# peftbench plot (b): average GLUE score vs FLOPs the method adds per token at T=128 (log x).
# Methods that add nothing (full fine-tuning, merged LoRA) sit at x = floor, tic "0 (merged)".
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'; floor=F" score_vs_ops.gp
# datafile columns: "label" x_plotted avg_score added_flops_per_token
if (!exists("fmt")) fmt = 'png'
if (!exists("floor")) floor = 1
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'GLUE score vs added inference FLOPs per token (T = 128)'
set xlabel 'FLOPs the method adds per token (log scale)'
set ylabel 'average GLUE score x100 (tasks run)'
set logscale x 10
set format x '%.0e'
set xtics add ('0 (merged)' floor)
set grid xtics ytics
set key off
set offsets graph 0.08, graph 0.2, graph 0.12, graph 0.12
plot datafile using 2:3 with points pt 7 ps 1.6 lc rgb '#d62728', \
     '' using 2:3:1 with labels left offset char 1,0.6 font ',10'
