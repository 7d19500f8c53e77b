#!/usr/bin/env bash
# Issue 17 measurements: ODE-step inference on the unshared default backbone and on two shared
# backbones made from it (one weight set for all 4 steps, the mean of its 4 layers, then 300 MLM
# steps on the default's text; the second with --random-steps): the validation MLM loss of each
# backbone at S' = 1..4, then LoRA, Adapter and LayerConnect on the GLUE tasks of PB17_TASKS (default:
# all six with training data), each task file evaluated at S' = 1..4 steps.
# Downstream settings: at most 4,000 training examples, 2 epochs, --max-len 64, seed 1, each method
# at the rate of results/lr-sweep.sh (LoRA 2e-3, Adapter 4e-3, LayerConnect 3e-2; their default rates
# leave them at the majority baseline on runs this short), bf16, one thread per process.
#   bash results/shared/reproduce.sh [PEFTBENCH_BINARY] [WORK_DIR]
# Writes results/shared/{pretrain-*.json, runs.jsonl, ode-TASK.jsonl, figures/TASK/}; models and task
# files go to WORK_DIR. Resumable on the same machine: finished models and runs (WORK_DIR/done/) are
# skipped when run again. A rerun for a new default backbone needs the old records moved away first.
set -euo pipefail
cd "$(dirname "$0")/../.."
PB=${1:-./build/peftbench}
W=${2:-/tmp/pb17}
TASKS=${PB17_TASKS:-sst2 cola mrpc stsb rte wnli}
export OPENBLAS_NUM_THREADS=1
mkdir -p "$W/done" results/shared
PT="--layers 4 --batch 32 --max-len 64 --seed 42 --threads 1 --precision bf16 --extra-text wordnet,fortunes --fp16 --quiet"
SH="--init-from models/default --groups 1 --steps 300 --lr 3e-4"
[ -f "$W/shared/model.safetensors" ] || $PB pretrain --out "$W/shared" $PT $SH
[ -f "$W/shared-rs/model.safetensors" ] || $PB pretrain --out "$W/shared-rs" $PT $SH --random-steps
# the validation MLM loss at S' steps (the same held-out sequences: same corpus, max-len and seed);
# the unshared default through one optimizer step at learning rate 0 (T = 1, no warm-up: lr 0)
for m in shared shared-rs; do
  [ -f "$W/done/val-$m" ] || { $PB pretrain --out "$W/$m" --resume --val-steps 1,2,3,4 --fp16 --quiet && touch "$W/done/val-$m"; }
done
[ -f "$W/default-val/model.safetensors" ] ||
  $PB pretrain --out "$W/default-val" --init-from models/default $PT --steps 1 --warmup 0 --val-steps 1,2,3,4
# the choice of initialisation: a shared set as the mean or as the first of the default's layers,
# before any training (one step at learning rate 0)
for how in mean first; do
  [ -f "$W/init-$how/model.safetensors" ] ||
    $PB pretrain --out "$W/init-$how" --init-from models/default $PT --groups 1 --share-init $how --steps 1 --warmup 0 --val-steps 1,2,3,4
  cp "$W/init-$how/pretrain.json" "results/shared/pretrain-init-$how.json"
done
cp "$W/shared/pretrain.json" results/shared/pretrain-shared.json
cp "$W/shared-rs/pretrain.json" results/shared/pretrain-shared-rs.json
cp "$W/default-val/pretrain.json" results/shared/pretrain-default-val.json
. results/lr-of.sh # lr_of METHOD: the rates of results/lr-sweep.sh
one() { # task backbone method
  local mark="$W/done/$1-$(basename "$2")-$3"
  [ -f "$mark" ] && return 0
  $PB run --task "$1" --model "$2" --method "$3" --lr "$(lr_of "$3")" --max-train 4000 --epochs 2 --max-len 64 \
    --seed 1 --precision bf16 --threads 1 --out "$W/out" --results results/shared/runs.jsonl --quiet --json > "$W/last-run-$1.json"
  tf=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['storage']['path'])" "$W/last-run-$1.json")
  $PB eval "$tf" --ode-steps 1,2,3,4 --precision bf16 --out "$W/out" --results "results/shared/ode-$1.jsonl" > /dev/null
  touch "$mark"
}
for task in $TASKS; do
  for bb in models/default "$W/shared" "$W/shared-rs"; do
    for method in lora adapter layerconnect; do one "$task" "$bb" "$method"; done
  done
done
for task in $TASKS; do $PB plot "results/shared/ode-$task.jsonl" --out "results/shared/figures/$task" --format png; done
