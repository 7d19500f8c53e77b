#!/usr/bin/env bash
# Issue 14, session 2026-12-02 (third): continue pre-training the default backbone with 4x the
# tokens per CPU-hour of the runs before (bf16 on AMX, 2 threads, batch 64): MLM only, GLUE
# training text, lr 1e-3, warm-up 200, 5,000 steps (41 M tokens), stopped cleanly after 75 min.
# Resumable: run it again (it adds --resume when the checkpoint exists). The run folder is
# outside the repo (135 MB with the optimizer state); its log.tsv and pretrain.json are copied
# here at the end, and the model is copied only if its held-out MLM loss beats the default's.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${PB_PRETRAIN_DIR:-/work/pretrain-2026-12-02}
ARGS=(--out "$OUT" --save-every 200 --time-limit 75 --threads 2 --precision bf16 --fp16)
if [ -f "$OUT/checkpoint.safetensors" ]; then
  ./build/peftbench pretrain "${ARGS[@]}" --resume || [ $? = 3 ]
else
  ./build/peftbench pretrain "${ARGS[@]}" --init-from models/default --lr 1e-3 --batch 64 --steps 5000 \
    --warmup 200 --seed 7 || [ $? = 3 ]
fi
mkdir -p results/pretrain/2026-12-02
cp "$OUT/log.tsv" results/pretrain/2026-12-02/log.tsv
[ -f "$OUT/pretrain.json" ] && cp "$OUT/pretrain.json" results/pretrain/2026-12-02/pretrain.json || true
