# peftbench plot (retrieval): test nDCG@10 and MRR@10 per retrieval configuration (BM25 and
# COIL with each method), x100, error bars = sample std over seeds; dashed line: BM25's nDCG@10.
#   gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'; bm25=33.8" retrieval.gp
# datafile: a comment line, then one row per configuration: "label" nDCG std MRR std
if (!exists("fmt")) fmt = 'png'
if (fmt eq 'svg') {
  set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'
} else {
  set terminal pngcairo size 900,600 noenhanced font 'Sans,11' background '#ffffff'
}
set output outfile
set title 'Retrieval on Cranfield (test queries)'
set ylabel 'score x100'
set yrange [0:100]
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -20 nomirror
set grid ytics
set key outside right top
if (exists("bm25")) {
  set arrow 1 from graph 0, first bm25 to graph 1, first bm25 nohead dashtype 2 lw 2 lc rgb '#444444'
  set label 1 sprintf('BM25 nDCG@10 %.1f', bm25) at graph 0.01, first bm25 + 2 left
}
plot datafile using 2:3:xtic(1) title 'nDCG@10', '' using 4:5 title 'MRR@10'
