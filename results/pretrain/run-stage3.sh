#!/usr/bin/env bash
# Issue 14, stage 3 (session 2026-12-02, fourth): continue from stage 2 (results/pretrain/2026-12-02/
# model, held-out MLM 3.48) with more varied English: the GLUE training text plus WordNet 3.0
# glosses and examples and the fortune cookies (--extra-text wordnet,fortunes), MLM only, lr 5e-4,
# warm-up 200, batch 64 x 128, 3,000 steps (25 M tokens), bf16, 2 threads, stopped cleanly after
# 80 min. Resumable: run it again (it adds --resume when the checkpoint exists), in this session or
# a later one. The run folder is outside the repo (135 MB with the optimizer state); its log.tsv
# (and pretrain.json once complete) are copied to results/pretrain/stage3/ after every slice.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${PB_PRETRAIN_DIR:-/work/pretrain-stage3}
ARGS=(--out "$OUT" --save-every 100 --time-limit "${PB_PRETRAIN_MINUTES:-80}" --threads 2 --precision bf16 --fp16)
if [ -f "$OUT/checkpoint.safetensors" ]; then
  ./build/peftbench pretrain "${ARGS[@]}" --resume || [ $? = 3 ]
else
  ./build/peftbench pretrain "${ARGS[@]}" --init-from results/pretrain/2026-12-02/model --extra-text wordnet,fortunes \
    --lr 5e-4 --batch 64 --steps 3000 --warmup 200 --seed 8 || [ $? = 3 ]
fi
mkdir -p results/pretrain/stage3
cp "$OUT/log.tsv" results/pretrain/stage3/log.tsv
[ -f "$OUT/pretrain.json" ] && cp "$OUT/pretrain.json" results/pretrain/stage3/pretrain.json || true
