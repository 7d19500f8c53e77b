#!/usr/bin/env bash
# Regenerates the committed results on the full training sets (issue 14, part 4):
#   results/glue-default.{jsonl,md,csv,tex}, results/figures/   full fine-tuning, LoRA, Adapter and
#       LayerConnect on the six GLUE tasks with training data in ../shared/data, over the embedded
#       default backbone
#   results/random-init.jsonl, results/pretrained-vs-random.md   the same four methods on SST-2,
#       MRPC, STS-B and RTE over a random-initialised backbone of the same shape
#   results/targets.md   issue 14's targets, computed from those records (results/targets.py)
# Settings: every training example; SST-2 1 epoch at --max-len 64 (seed 1), the small tasks
# (CoLA, MRPC, STS-B, RTE, WNLI) 3 epochs at --max-len 128 with seeds 1, 2 and 3; batch 32; each
# method at the learning rate results/lr-sweep.sh chose over the default backbone (its records:
# results/lr-sweep.jsonl; the methods' default rates are bert-base's and leave them at the
# majority baseline here), full fine-tuning at 1e-4; the random backbone at the same rates;
# bf16 matrix products (PB_REPRO_PRECISION=fp32 where the CPU has no bf16); two runs at a time,
# one thread each. About 2 hours on the 2-core machine: default 70 min, random 51 min (README,
# "Reproduced results").
# Resumable: every run appends its record straight to the committed JSONL with --skip-done, so a
# stopped reproduction (Ctrl-C, a closed session) continues where it stopped when run again; start
# afresh with PB_REPRO_FRESH=1 (the old JSONL is moved into PB_REPRO_TMP first, never deleted):
# needed after the default backbone changes, or the tables mix both backbones' runs.
# Usage: bash results/reproduce.sh [all|default|random|render] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-all}
case "$PHASE" in all | default | random | render) ;; *) echo "usage: $0 [all|default|random|render] [BUILD_DIR]" >&2; exit 2 ;; esac
BIN=${2:-build}/peftbench
OUT=${PB_REPRO_TMP:-/tmp/peftbench-repro}
PREC=${PB_REPRO_PRECISION:-bf16}
mkdir -p "$OUT"
COMMON="--batch 32 --threads 1 --precision $PREC --skip-done --quiet"
SMALL_SEEDS="1 2 3"

run_jobs() { xargs -P "${PB_REPRO_JOBS:-2}" -I{} sh -c '{} > /dev/null || echo "FAILED: {}" >&2'; }

fresh() { # PB_REPRO_FRESH=1: set the phase's JSONL aside before its first run
  if [ "${PB_REPRO_FRESH:-0}" = 1 ] && [ -f "$1" ]; then
    local old
    old="$OUT/$(basename "$1" .jsonl).$(date -u +%Y%m%dT%H%M%SZ).jsonl"
    mv "$1" "$old" && echo "moved $1 to $old" >&2
  fi
}

. results/lr-of.sh # lr_of METHOD: the rates of results/lr-sweep.sh

# the runs of one backbone: $1 = backbone options, $2 = results file, $3 = out folder, $4.. = tasks
runs() {
  local bb=$1 res=$2 dir=$3
  shift 3
  for task in "$@"; do
    for method in full lora adapter layerconnect; do
      lr="--lr $(lr_of $method)"
      if [ "$task" = sst2 ]; then
        echo "$BIN run --task sst2 --method $method $lr $bb --epochs 1 --max-len 64 --seed 1 $COMMON --out $dir --results $res"
      else
        for seed in $SMALL_SEEDS; do
          echo "$BIN run --task $task --method $method $lr $bb --epochs 3 --max-len 128 --seed $seed $COMMON --out $dir --results $res"
        done
      fi
    done
  done
}

if [ "$PHASE" = all ] || [ "$PHASE" = default ]; then
  fresh results/glue-default.jsonl
  runs "" results/glue-default.jsonl "$OUT/default" sst2 cola mrpc stsb rte wnli | run_jobs
fi
if [ "$PHASE" = all ] || [ "$PHASE" = random ]; then
  fresh results/random-init.jsonl
  runs "--shape 4,256,4,1024" results/random-init.jsonl "$OUT/random" sst2 mrpc stsb rte | run_jobs
fi
if [ "$PHASE" = all ] || [ "$PHASE" = render ]; then
  $BIN table results/glue-default.jsonl --format md --table both --out results/glue-default.md
  $BIN table results/glue-default.jsonl --format csv --out results/glue-default.csv
  $BIN table results/glue-default.jsonl --format latex --out results/glue-default.tex
  $BIN plot results/glue-default.jsonl --out results/figures --format both
  grep -E '"task":"(sst2|mrpc|stsb|rte)"' results/glue-default.jsonl > "$OUT/pre.jsonl"
  $BIN table "$OUT/pre.jsonl" results/random-init.jsonl --format md --out results/pretrained-vs-random.md
  python3 results/targets.py results/glue-default.jsonl results/random-init.jsonl > "$OUT/targets.md"
  mv "$OUT/targets.md" results/targets.md
fi
