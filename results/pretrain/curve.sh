#!/usr/bin/env bash
# Pre-training learning curve: the MLM training loss, mean of each block of 100 steps, against the
# tokens seen since the start of the default's own pre-training (8,559,929 tokens), from a
# run's log.tsv (step, loss, lr, grad_norm, tokens_per_s); one step = batch x max-len tokens.
#   results/pretrain/curve.sh LOG.tsv TOKENS_PER_STEP OUT.png
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 LOG.tsv TOKENS_PER_STEP OUT.png" >&2; exit 2; }
dat="${3%.png}.dat"
awk -F'\t' -v tps="$2" -v t0=8559929 'NR > 1 { s += $2; n++; if (n == 100) { printf "%.3f\t%.4f\n", (t0 + $1 * tps) / 1e6, s / n; s = 0; n = 0 } }' "$1" > "$dat"
gnuplot -e "set terminal pngcairo size 900,500 font ',10'; set output '$3'; set datafile separator '\t';
  set xlabel 'tokens seen (millions; 8.56 M before this run)'; set ylabel 'MLM training loss (mean of 100 steps)';
  set grid; set key off; plot '$dat' using 1:2 with linespoints pt 7 ps 0.6 lw 2"
echo "wrote $3 and $dat"
