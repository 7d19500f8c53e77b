#!/usr/bin/env bash
# bf16 side by side: the C backbone in fp32 and in bf16 (--precision bf16: oneDNN's AMX matmul)
# against PyTorch under torch.autocast("cpu", bfloat16) (bench/torch_bench.py --precision bf16),
# same shapes, the three processes rotated round by round (each one goes first in turn), then a
# table of medians, paired ratios, GFLOP/s against the measured bf16 peak and peak RSS
# (bench/bf16_summary.py).
#
#   bench/bf16.sh [--quick] [--threads N] [--build DIR] [--out FILE]
#
#   default   the shapes of the issue: tiny/mini at batch 32, bert-base at batch 8 and 1, seq 128;
#             inference, full fine-tuning step and LoRA step; 3 rounds; torch with 2 threads (t2:
#             oneDNN runs torch's bf16 products on its OpenMP threads).   ~15 min
#   --quick   1 round, tiny and mini only.   ~2 min
# Run from the repo root on a quiet machine (stop pretraining first).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0 THREADS=2 BUILD=build-bench OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --threads) THREADS="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: bench/bf16.sh [--quick] [--threads N] [--build DIR] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
. bench/common.sh
[ -n "$OUT" ] || OUT="bench/bf16-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"
echo "bench: $(nproc) cores, $THREADS threads -> $OUT" >&2
"$BIN" --sgemm --precision bf16 --threads "$THREADS" | tee -a "$OUT" >&2
CORE=$(sed -n 's/.*"blas_core":"\([^"]*\)".*/\1/p' "$OUT" | head -1)

# shape batch reps(infer) reps(train) modes
if [ "$QUICK" = 1 ]; then
  ROUNDS=1
  CONFIGS="tiny 32 5 3 infer,full,lora
mini 32 5 3 infer,full,lora"
else
  ROUNDS=3
  CONFIGS="tiny 32 7 5 infer,full,lora
mini 32 7 5 infer,full,lora
base 8 5 3 infer,full,lora
base 1 7 5 infer,full,lora"
fi

while read -r shape batch ri rt modes; do
  for round in $(seq 1 "$ROUNDS"); do
    for mode in ${modes//,/ }; do
      reps=$rt; [ "$mode" = infer ] && reps=$ri
      c=("$BIN" --shape "$shape" --batch "$batch" --modes "$mode" --reps "$reps" --warmup 2 --threads "$THREADS" --round "$round")
      t=(env OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$THREADS" "$PY" bench/torch_bench.py
         --shape "$shape" --batch "$batch" --modes "$mode" --reps "$reps" --warmup 2 --settings t2 --round "$round"
         --precision bf16)
      # rotate which of the three goes first
      case $((round % 3)) in
        1) "${c[@]}" --precision fp32 >> "$OUT"; "${c[@]}" --precision bf16 >> "$OUT"; "${t[@]}" >> "$OUT" ;;
        2) "${c[@]}" --precision bf16 >> "$OUT"; "${t[@]}" >> "$OUT"; "${c[@]}" --precision fp32 >> "$OUT" ;;
        0) "${t[@]}" >> "$OUT"; "${c[@]}" --precision fp32 >> "$OUT"; "${c[@]}" --precision bf16 >> "$OUT" ;;
      esac
      echo "bench: $shape b$batch $mode round $round done" >&2
    done
  done
done <<< "$CONFIGS"
"$BIN" --sgemm --precision bf16 --threads "$THREADS" | tee -a "$OUT" >&2
"$PY" bench/bf16_summary.py "$OUT"
