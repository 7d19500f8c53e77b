# peftbench plot (d): per-task GLUE score, bars grouped by task, one bar per row (training
# configuration), error bars ± sample std over seeds where n > 1; per task a dashed segment
# at the majority-class baseline and a dotted one at full fine-tuning.
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'; ymin=..; ymax=..; nm=N; hasfull=0|1; nsingle=..; npts=.." task_scores.gp
# datafile: header row "task" "<label>" "<label> sd" ... "majority-class baseline"
# "full fine-tuning"; then one row per task: "<task>" mean sd mean sd ... base full (NaN: none)
# The score range comes from peftbench (harness/plot.h: bars start at 0, the axis always
# holds 0..100); never autoscaled.
if (!exists("fmt")) fmt = 'png'
if (!exists("ymin")) ymin = 0
if (!exists("ymax")) ymax = 100
if (!exists("nm")) nm = 1
if (!exists("hasfull")) hasfull = 0
if (!exists("nsingle")) nsingle = 0
if (!exists("npts")) npts = 0
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'GLUE dev score per task'."\n".(nsingle > 0 ? sprintf('error bars: ± sample std over seeds; %d of %d bars from one seed (no bar)', nsingle, npts) : 'error bars: ± sample std over seeds') font ',11'
set ylabel 'task score x100'
set yrange [ymin:ymax]
cw = 0.8          # width of one task's group of bars
bw = cw / nm      # width of one bar
set boxwidth bw
set style fill solid 0.85 border -1
set xtics nomirror
set grid ytics
set key below horizontal Left reverse autotitle columnhead font ',10' width 2
basecol = 2 + 2 * nm
plot datafile using 0:(NaN):xtic(1) with points notitle, \
     for [i=0:nm-1] '' using ($0 + (i - (nm - 1) / 2.0) * bw):(column(2 + 2 * i)) with boxes lc i + 1 title columnhead(2 + 2 * i), \
     for [i=0:nm-1] '' using ($0 + (i - (nm - 1) / 2.0) * bw):(column(2 + 2 * i) - column(3 + 2 * i)):(0):(2 * column(3 + 2 * i)) with vectors heads size screen 0.006,90 lw 1.5 lc rgb 'black' notitle, \
     '' using ($0 - cw / 2 - 0.04):(column(basecol)):(cw + 0.08):(0) with vectors nohead dt 2 lw 2 lc rgb 'black' title columnhead(basecol), \
     for [h=1:hasfull] '' using ($0 - cw / 2 - 0.04):(column(basecol + 1)):(cw + 0.08):(0) with vectors nohead dt 3 lw 2.5 lc rgb '#d62728' title columnhead(basecol + 1)
