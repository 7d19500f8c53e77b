#!/bin/sh
# The retrieval measurements in the README (Cranfield, default backbone L=4 d=256): BM25, then
# COIL with LoRA, LayerConnect, Adapter and full fine-tuning, 1 epoch (38 steps of 4 queries x 8
# documents), query length 32, document length 128, seeds 0, 1 and 2. Run from the repository root
# after building; one thread (the machine is shared). Per-query metrics land in out/ beside
# results.jsonl; `peftbench ircompare` tests them against BM25.
set -e
B=${PB:-./build/peftbench}
R=results/retrieval/results.jsonl
O=results/retrieval/out
export OPENBLAS_NUM_THREADS=1
$B retrieve --method bm25 --out $O --results $R --quiet
for seed in 0 1 2; do
  for m in lora layerconnect adapter full; do
    $B retrieve --method $m --epochs 1 --seed $seed --threads 1 --out $O --results $R --quiet
  done
done
