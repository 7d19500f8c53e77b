#!/usr/bin/env bash
# Full-SST-2 check of a pre-trained backbone (issue 14's targets): all 67,349 training examples,
# 1 epoch, --max-len 64, seed 1, bf16, 2 threads; LoRA r 8 at its default lr 5e-4 and at 2e-3 (the
# best rate measured over the default), full fine-tuning at 1e-4. Appends to OUT.jsonl and skips
# runs already recorded there (--skip-done), so a stopped run continues. About 15 minutes.
#   results/pretrain/sst2-full.sh MODEL_DIR [OUT.jsonl]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 MODEL_DIR [OUT.jsonl]" >&2; exit 2; }
OUT=${2:-results/pretrain/sst2-full.jsonl}
for spec in lora:5e-4 lora:2e-3 full:1e-4; do
  ./build/peftbench run --task sst2 --method "${spec%%:*}" --model "$1" --epochs 1 --max-len 64 \
    --vocab ../shared/data/vocab/bert-base-uncased-vocab.txt --lr "${spec#*:}" --seed 1 --precision bf16 \
    --threads 2 --results "$OUT" --out /tmp/pb-sst2-full --skip-done --quiet >/dev/null
done
/usr/bin/python3 - "$OUT" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["backbone"]["source"].rstrip("/").endswith(sys.argv[2].rstrip("/")):
        print(f'{r["backbone"]["fingerprint"][:8]} {r["method"]:5s} lr {r["train"]["lr"]:g}: dev acc {r["metrics"]["score"]:.4f}')
PY
