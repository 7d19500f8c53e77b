# peftbench plot (a): average GLUE score vs trainable parameters (log x), one labelled
# point per method. Run by `peftbench plot` as
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'" score_vs_params.gp
# datafile columns: "label" trainable_no_head avg_score n_tasks
if (!exists("fmt")) fmt = 'png'
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'GLUE score vs trainable parameters'
set xlabel 'trainable parameters without the task head (log scale)'
set ylabel 'average GLUE score x100 (tasks run)'
set logscale x 10
set format x '%.0e'
set grid xtics ytics
set key off
set offsets graph 0.08, graph 0.2, graph 0.12, graph 0.12
plot datafile using 2:3 with points pt 7 ps 1.6 lc rgb '#1f77b4', \
     '' using 2:3:1 with labels left offset char 1,0.6 font ',10'
