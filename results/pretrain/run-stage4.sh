#!/usr/bin/env bash
# Issue 14, stage 4 (session 2026-12-02, sixth): continue from stage 3 (the default, c8277967) with
# next-sentence prediction added (--nsp), the one lever of the issue not yet measured: every earlier
# stage was MLM only, so the pooler every PEFT method reads was still at its random initialisation.
# Same text as stage 3 (GLUE training text, WordNet, fortunes), lr 5e-4, warm-up 100, batch 64 x 128,
# 1,000 steps (8.2 M tokens), bf16, 2 threads, --time-limit 50 min. Resumable: run it again (it adds
# --resume when the checkpoint exists). The run folder is outside the repo (it does not survive a
# new machine); its log.tsv (and pretrain.json once complete) are copied to results/pretrain/stage4/.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${PB_PRETRAIN_DIR:-/work/pretrain-stage4}
ARGS=(--out "$OUT" --save-every 100 --time-limit "${PB_PRETRAIN_MINUTES:-50}" --threads 2 --precision bf16 --fp16)
if [ -f "$OUT/checkpoint.safetensors" ]; then
  ./build/peftbench pretrain "${ARGS[@]}" --resume || [ $? = 3 ]
else
  ./build/peftbench pretrain "${ARGS[@]}" --init-from models/default --extra-text wordnet,fortunes --nsp \
    --lr 5e-4 --batch 64 --steps 1000 --warmup 100 --seed 9 || [ $? = 3 ]
fi
mkdir -p results/pretrain/stage4
cp "$OUT/log.tsv" results/pretrain/stage4/log.tsv
[ -f "$OUT/pretrain.json" ] && cp "$OUT/pretrain.json" results/pretrain/stage4/pretrain.json || true
