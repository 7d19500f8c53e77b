#!/bin/sh
# The table, figure and significance tests of results/retrieval from its records and per-query
# files (after run.sh): table.md, figures/, significance.txt (every COIL method, all seeds,
# against BM25 on nDCG@10 and MAP, and each PEFT method against full fine-tuning on nDCG@10).
set -e
B=${PB:-./build/peftbench}
D=results/retrieval
O=$D/out
$B table $D/results.jsonl >$D/table.md
$B plot $D/results.jsonl --out $D/figures
BM=$(ls $O/cranfield-bm25-*-s0.test.predictions.tsv)
side() { for f in $O/cranfield-$2-*-s*.test.predictions.tsv; do printf -- '--%s %s ' "$1" "$f"; done; }
{
  for m in full lora adapter layerconnect; do
    for met in ndcg@10 map; do
      echo "## COIL-$m (all seeds) vs BM25, $met: peftbench ircompare --a $BM $(side b $m)--metric $met"
      $B ircompare --a $BM $(side b $m) --metric $met
    done
  done
  for m in lora adapter layerconnect; do
    echo "## COIL-$m vs COIL-full (all seeds), ndcg@10"
    $B ircompare $(side a full) $(side b $m)
  done
  echo "## COIL-layerconnect vs COIL-lora (all seeds), ndcg@10"
  $B ircompare $(side a lora) $(side b layerconnect)
  echo "## COIL-layerconnect vs COIL-adapter (all seeds), ndcg@10"
  $B ircompare $(side a adapter) $(side b layerconnect)
} >$D/significance.txt
