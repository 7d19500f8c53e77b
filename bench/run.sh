#!/usr/bin/env bash
# Side-by-side speed comparison: C backbone (bench_backbone) vs the same BERT in PyTorch
# (bench/torch_bench.py, Debian python3-torch), same shapes, alternating C / torch processes
# round by round, then a table of medians, ratios, GFLOP/s and peak RSS (bench/summary.py).
#
#   bench/run.sh [--quick] [--threads N] [--build DIR] [--out FILE]
#
#   default   4 shapes (tiny/mini L2-4 at batch 32, bert-base at batch 8 and 1; seq 128),
#             modes infer/full/lora, 2 rounds (inference 4), C with N threads (default 2), torch with the
#             thread settings t1,t2,t2b (see torch_bench.py) and the best one reported;
#             plus the sgemm peak and the op-count/PAPI overhead check.   ~12 min
#   --quick   1 round, fewer repetitions and steps (tiny infer/full, mini infer/lora, bert-base
#             b1 full, b8 infer), torch settings t1,t2b.   < 2 min on a quiet machine
#   --threads 1  C on 1 thread and torch on t1 only (for a busy machine).
#   --tune    only compare the 2-thread policies of backbone/ops.c (PB_GEMM_SPLIT_MAX,
#             PB_ELEMWISE_PAR_MIN) at tiny, mini and bert-base b1, alternating.   ~2 min
# Run from the repo root; builds bench_backbone in build-bench unless --build names a build.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0 TUNE=0 THREADS=2 BUILD=build-bench OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --tune) TUNE=1 ;;
    --threads) THREADS="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: bench/run.sh [--quick | --tune] [--threads N] [--build DIR] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
. bench/common.sh
if [ "$TUNE" = 1 ]; then
  # policy = "GEMM split limit / elementwise split minimum" (backbone/ops.c)
  POLICIES="-1/65536 -1/0 128/65536 0/65536 0/0"
  for round in 1 2; do
    for pol in $POLICIES; do
      for cfg in "tiny 32 infer,full" "mini 32 infer,full" "base 1 infer"; do
        set -- $cfg
        PB_GEMM_SPLIT_MAX=${pol%/*} PB_ELEMWISE_PAR_MIN=${pol#*/} "$BIN" --shape "$1" --batch "$2" --modes "$3" \
          --reps 3 --threads "$THREADS" | sed "s|^|$pol |"
      done
    done
  done | "$PY" -c '
import sys, json, statistics as st, collections
d = collections.defaultdict(list); pols = []
for l in sys.stdin:
    pol, j = l.split(" ", 1); r = json.loads(j); d[(r["shape"], r["batch"], r["mode"], pol)] += r["times"]
    pols += [pol] if pol not in pols else []
print("median step seconds; policy = PB_GEMM_SPLIT_MAX/PB_ELEMWISE_PAR_MIN (default -1/65536: every GEMM split, elementwise from 65536)")
print("%-16s" % "shape" + "".join("%12s" % p for p in pols))
for k in sorted(set(x[:3] for x in d)):
    print("%-16s" % ("%s b%d %s" % k) + "".join("%12.4f" % st.median(d[k + (p,)]) for p in pols))
'
  exit 0
fi
[ -n "$OUT" ] || OUT="bench/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"
if [ "$THREADS" = 1 ]; then SETTINGS=t1; elif [ "$QUICK" = 1 ]; then SETTINGS=t1,t2b; else SETTINGS=t1,t2,t2b; fi

echo "bench: $(nproc) cores, C threads $THREADS, torch settings $SETTINGS -> $OUT" >&2
"$BIN" --sgemm --threads "$THREADS" | tee -a "$OUT" >&2
# torch loads the same OpenBLAS, which may not recognise this CPU (backbone/blas.h): give it the
# kernels C runs on, so both sides multiply with the same sgemm
CORE=$(sed -n 's/.*"blas_core":"\([^"]*\)".*/\1/p' "$OUT" | head -1)
echo "bench: OpenBLAS core $CORE for C and torch" >&2

# shape batch reps(infer) reps(train) modes   (quick: one round, bert-base b8 infer + small shapes)
if [ "$QUICK" = 1 ]; then
  ROUNDS=1 IROUNDS=1
  CONFIGS="tiny 32 3 2 infer,full
mini 32 3 2 infer,lora
base 1 3 2 full
base 8 2 1 infer"
else
  ROUNDS=2 IROUNDS=4   # inference steps are cheap: 4 rounds make their medians steadier
  CONFIGS="tiny 32 5 3 infer,full,lora
mini 32 5 3 infer,full,lora
base 1 5 3 infer,full,lora
base 8 3 2 infer,full,lora"
fi

while read -r shape batch ri rt modes; do
  for round in $(seq 1 "$IROUNDS"); do
    for mode in ${modes//,/ }; do
      [ "$mode" != infer ] && [ "$round" -gt "$ROUNDS" ] && continue
      reps=$rt; [ "$mode" = infer ] && reps=$ri
      # alternate: C first in odd rounds, torch first in even rounds
      c_cmd=("$BIN" --shape "$shape" --batch "$batch" --modes "$mode" --reps "$reps" --threads "$THREADS" --round "$round")
      t_cmd=(env OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$THREADS" "$PY" bench/torch_bench.py --shape "$shape" --batch "$batch"
             --modes "$mode" --reps "$reps" --settings "$SETTINGS" --round "$round")
      if [ $((round % 2)) = 1 ]; then
        "${c_cmd[@]}" >> "$OUT"; "${t_cmd[@]}" >> "$OUT"
      else
        "${t_cmd[@]}" >> "$OUT"; "${c_cmd[@]}" >> "$OUT"
      fi
      echo "bench: $shape b$batch $mode round $round done" >&2
    done
  done
done <<< "$CONFIGS"

# the sgemm peak again at the end (the summary takes the best of both: a shared VM's throughput drifts)
"$BIN" --sgemm --threads "$THREADS" | tee -a "$OUT" >&2

# op counting + PAPI reading overhead (C), full step and inference at mini batch 32
ovr=15; [ "$QUICK" = 1 ] && ovr=5
"$BIN" --overhead --shape mini --batch 32 --modes full,infer --reps "$ovr" --threads "$THREADS" >> "$OUT"

"$PY" bench/summary.py "$OUT"
