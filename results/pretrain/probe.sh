#!/usr/bin/env bash
# SST-2 probes of a pre-trained backbone against the embedded default, the same runs for both:
# LoRA (r 8) and full fine-tuning, 4,000 training examples, 1 epoch, max-len 64, seed 1, bf16.
#   results/pretrain/probe.sh MODEL_DIR OUT.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# = 2 ] || { echo "usage: $0 MODEL_DIR OUT.jsonl" >&2; exit 2; }
for model in models/default "$1"; do
  for m in lora full; do
    lr=1e-3; [ "$m" = full ] && lr=1e-4
    ./build/peftbench run --task sst2 --method "$m" --model "$model" --max-train 4000 --epochs 1 --max-len 64 \
      --vocab ../shared/data/vocab/bert-base-uncased-vocab.txt --lr "$lr" --seed 1 --precision bf16 --threads 2 --results "$2" --out /tmp/pb-probe --skip-done --quiet >/dev/null
  done
done
/usr/bin/python3 - "$2" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f'{r["backbone"]["source"] if "backbone" in r else "?":60.60s} {r["config"]["method"]:5s} dev acc {r["metrics"]["score"]:.4f}')
PY
