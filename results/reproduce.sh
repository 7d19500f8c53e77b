#!/usr/bin/env bash
# Regenerates the committed results (two runs at a time, one thread each):
#   results/glue-default.{jsonl,md,csv,tex}, results/figures/   the four methods on the six GLUE
#       tasks with training data in ../shared/data, over the embedded default backbone
#   results/random-init.jsonl, results/pretrained-vs-random.md   LoRA, Adapter and LayerConnect on
#       SST-2, MRPC and RTE over a random-initialised backbone of the same shape, vs the default
# Usage: bash results/reproduce.sh [all|default|random|render] [BUILD_DIR]   (all: ~40 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-all}
BIN=${2:-build}/peftbench
OUT=${PB_REPRO_TMP:-/tmp/peftbench-repro}
mkdir -p "$OUT"
COMMON="--max-train 2000 --epochs 3 --max-len 128 --batch 32 --seed 0 --threads 1 --quiet"

run_jobs() { xargs -P "${PB_REPRO_JOBS:-2}" -I{} sh -c '{} > /dev/null || echo "FAILED: {}" >&2'; }

if [ "$PHASE" = all ] || [ "$PHASE" = default ]; then
  rm -f "$OUT/glue-default.jsonl"
  for task in cola sst2 mrpc stsb rte wnli; do
    for method in full lora adapter layerconnect; do
      # full fine-tuning's default lr (2e-5) is bert-base's; the small default backbone wants 1e-4
      lr=""; [ $method = full ] && lr="--lr 1e-4"
      echo "$BIN run --task $task --method $method $lr $COMMON --out $OUT/default --results $OUT/glue-default.jsonl"
    done
  done | run_jobs
  cp "$OUT/glue-default.jsonl" results/glue-default.jsonl
fi
if [ "$PHASE" = all ] || [ "$PHASE" = random ]; then
  rm -f "$OUT/random-init.jsonl"
  for task in sst2 mrpc rte; do
    for method in lora adapter layerconnect; do
      echo "$BIN run --task $task --method $method $COMMON --shape 4,256,4,1024 --out $OUT/random --results $OUT/random-init.jsonl"
    done
  done | run_jobs
  cp "$OUT/random-init.jsonl" results/random-init.jsonl
fi
if [ "$PHASE" = all ] || [ "$PHASE" = render ]; then
  $BIN table results/glue-default.jsonl --format md --table both --out results/glue-default.md
  $BIN table results/glue-default.jsonl --format csv --out results/glue-default.csv
  $BIN table results/glue-default.jsonl --format latex --out results/glue-default.tex
  $BIN plot results/glue-default.jsonl --out results/figures --format both
  grep -E '"task":"(sst2|mrpc|rte)"' results/glue-default.jsonl | grep -v '"method":"full"' > "$OUT/pre.jsonl"
  $BIN table "$OUT/pre.jsonl" results/random-init.jsonl --format md --out results/pretrained-vs-random.md
fi
