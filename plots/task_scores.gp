# peftbench plot (d): per-task GLUE score per method (groups) and task (bars).
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'" task_scores.gp
# datafile: header row "method" "<task>" ...; then "label" score score ... (NaN: not run)
if (!exists("fmt")) fmt = 'png'
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'GLUE dev score per task'
set ylabel 'task score x100'
set yrange [*<0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -20 nomirror
set grid ytics
set key outside right top autotitle columnhead
plot for [i=2:*] datafile using i:xtic(1)
