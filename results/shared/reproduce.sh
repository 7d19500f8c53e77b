#!/usr/bin/env bash
# Issue 17 measurements: ODE-step inference on the unshared default backbone and on two shared
# backbones made from it (one weight set for all 4 steps, the mean of its 4 layers, then 300 MLM
# steps; the second with --random-steps), each with LoRA, Adapter and LayerConnect on SST-2, each
# task file evaluated at S' = 1..4 steps. One thread per process.
#   bash results/shared/reproduce.sh [PEFTBENCH_BINARY] [WORK_DIR]
# Writes results/shared/{pretrain-*.json, runs.jsonl, ode.jsonl}; models and task files go to WORK_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
PB=${1:-./build/peftbench}
W=${2:-/tmp/pb17}
TASKS=${TASKS:-sst2}
export OPENBLAS_NUM_THREADS=1
mkdir -p "$W" results/shared
PT="--init-from models/default --layers 4 --groups 1 --steps 300 --batch 32 --max-len 64 --lr 3e-4 --seed 42 --threads 1 --fp16 --quiet"
[ -f "$W/shared/model.safetensors" ] || $PB pretrain --out "$W/shared" $PT
[ -f "$W/shared-rs/model.safetensors" ] || $PB pretrain --out "$W/shared-rs" $PT --random-steps
cp "$W/shared/pretrain.json" results/shared/pretrain-shared.json
cp "$W/shared-rs/pretrain.json" results/shared/pretrain-shared-rs.json
for task in $TASKS; do
  for bb in models/default "$W/shared" "$W/shared-rs"; do
    for method in lora adapter layerconnect; do
      $PB run --task "$task" --model "$bb" --method "$method" --max-train 2000 --epochs 1 --max-len 64 --seed 0 \
        --threads 1 --out "$W/out" --results results/shared/runs.jsonl --quiet --json > "$W/last-run.json"
      tf=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['storage']['path'])" "$W/last-run.json")
      $PB eval "$tf" --ode-steps 1,2,3,4 --out "$W/out" --results results/shared/ode.jsonl > /dev/null
    done
  done
done
$PB plot results/shared/ode.jsonl --out results/shared/figures --format png
