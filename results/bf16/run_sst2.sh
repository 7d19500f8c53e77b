#!/usr/bin/env bash
# bf16 vs fp32 fine-tuning on SST-2 over the embedded default backbone: full fine-tuning, 20,000
# training examples, 1 epoch, max-len 64, lr 1e-4, seeds 1-3, the two precisions alternating.
# Records: results/bf16/sst2.jsonl (resumable: --skip-done).   ~12 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/../.."
for seed in 1 2 3; do
  for p in fp32 bf16; do
    ./build/peftbench run --task sst2 --method full --max-train 20000 --epochs 1 --max-len 64 --lr 1e-4 \
      --seed "$seed" --precision "$p" --threads 2 --results results/bf16/sst2.jsonl --out /tmp/pb-bf16-sst2 \
      --skip-done --quiet
  done
done
/usr/bin/python3 - <<'PY'
import json, statistics as st
rs = [json.loads(l) for l in open("results/bf16/sst2.jsonl")]
by = {}
for r in rs:
    by.setdefault(r["host"]["precision"]["mode"], []).append((r["seed"], r["metrics"]["score"], r["timings"]["train"]["wall_s"]))
for p, v in sorted(by.items()):
    v.sort()
    print(p, "seeds", [s for s, _, _ in v], "dev acc", [round(a, 4) for _, a, _ in v],
          "mean %.4f" % st.mean(a for _, a, _ in v), "train s", [round(t) for _, _, t in v])
if len(by) == 2:
    print("bf16 - fp32 (points): %+.2f" % (100 * (st.mean(a for _, a, _ in by["bf16"]) - st.mean(a for _, a, _ in by["fp32"]))))
PY
