# peftbench plot (only with compressed-backbone records, `peftbench compress`): memory of the
# training run vs the width d' of the layers above the cut. Two series per row: the training
# process's peak RSS (memory.peak_rss_kb) and the exact bytes the model allocated for training
# (memory.model_bytes.total: parameters, gradients + AdamW moments, activations). Uncompressed
# rows sit at their hidden size d.
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'; npts=..; wmin=..; wmax=.." memory_vs_width.gp
# Columns: "label" width rss_mb model_mb cut avg_score
if (!exists("fmt")) fmt = 'png'
if (!exists("npts")) npts = 0
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title sprintf('memory of the training run vs the width of the compressed layers (%d runs)', npts) font ',11'
set xlabel "width of the layers above the cut (d'; uncompressed: d)"
set ylabel 'MiB'
set yrange [0:*]
set grid xtics ytics
set key below horizontal Left reverse font ',10' spacing 1.3 width 2
set offsets graph 0.1, graph 0.35, graph 0.05, 0
short(s) = strlen(s) > 40 ? s[1:37].'...' : s
plot datafile using 2:3 with points pt 7 ps 1.4 lc rgb '#1f77b4' title 'peak RSS of the training process', \
     '' using 2:4 with points pt 5 ps 1.4 lc rgb '#d62728' title 'model bytes for training (parameters + gradients/AdamW + activations)', \
     '' using 2:4:(short(strcol(1))) with labels left offset char 1,0 font ',8' notitle
