# peftbench plot (c): task-file size per method (groups) and task (bars), log y.
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'" storage.gp
# datafile: header row "method" "<task>" ...; then "label" KB KB ... (NaN: not run)
if (!exists("fmt")) fmt = 'png'
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'Storage per task (task file size)'
set ylabel 'KB per task (log scale)'
set logscale y 10
set yrange [0.1:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -20 nomirror
set grid ytics
set key outside right top autotitle columnhead
plot for [i=2:*] datafile using i:xtic(1)
