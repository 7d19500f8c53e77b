#!/usr/bin/env bash
# COST-EFF measurements over the embedded default backbone (records in results/cost-eff/):
#   glue.jsonl + glue-eval.jsonl   `exits` (COST-EFF's multi-exit model, pooler=tanh) trained on every
#       GLUE task with training data in ../shared/data, then evaluated at the entropy thresholds
#       below (one record each; STS-B is regression: threshold 0 only);
#   sst2.jsonl + sst2-eval.jsonl   SST-2's COST-EFF pipeline in parts: a full fine-tuned teacher;
#       exits distilled from it (prediction + representation); the teacher slenderized (2 of 4 heads,
#       FFN 256 of 1024, word rank 128; Taylor importance of its fine-tuned head) with exits, without
#       and with prediction distillation from the teacher.
# Resumable: runs use --skip-done, an evaluation is skipped when its records exist. Task files go
# to $PB_COSTEFF_OUT (default /work/costeff-run, not in the repository).
# Usage: bash results/cost-eff/run.sh [glue|sst2|render|all] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
PHASE=${1:-all}
BIN=${2:-build}/peftbench
OUT=${PB_COSTEFF_OUT:-/work/costeff-run}
R=results/cost-eff
mkdir -p "$OUT"
THREADS=${PB_COSTEFF_THREADS:-2}
COMMON="--max-train 4000 --epochs 2 --max-len 64 --batch 32 --seed 0 --threads $THREADS --quiet"
# the SST-2 pipeline: 1 epoch (four trainings and a teacher)
COMMON1="--max-train 4000 --epochs 1 --max-len 64 --batch 32 --seed 0 --threads $THREADS --quiet"
THR2=0,0.05,0.1,0.2,0.3,0.4,0.5,0.55,0.6,0.65,0.68,0.69,0.693

# the task file of the last record of FILE with this task and method_desc prefix
task_file() {
  T_TASK=$2 T_DESC=$3 T_KD=${4:-} perl -MJSON::PP -e 'my $p = "";
    while (<STDIN>) { my $o = decode_json($_);
      $p = $o->{storage}{path} if $o->{task} eq $ENV{T_TASK} && index($o->{method_desc}, $ENV{T_DESC}) == 0
        && ($ENV{T_KD} eq "" || ($o->{distill} ? 1 : 0) == $ENV{T_KD}); }
    print $p' <"$1"
}
# evaluate TASKFILE at thresholds into RECORDS unless records of it are there
sweep() {
  local tf=$1 thr=$2 rec=$3
  [ -n "$tf" ] || { echo "no task file" >&2; return 1; }
  if [ -f "$rec" ] && grep -qF "\"path\":\"$tf\"" "$rec"; then return 0; fi
  "$BIN" eval "$tf" --exit-threshold "$thr" --out "$OUT/eval" --results "$rec" >/dev/null
}

if [ "$PHASE" = all ] || [ "$PHASE" = glue ]; then
  for task in sst2 cola mrpc rte wnli stsb; do
    "$BIN" run --task $task --method exits -o pooler=tanh --lr 1e-4 $COMMON --skip-done --out "$OUT/glue" \
      --results $R/glue.jsonl
    thr=$THR2; [ $task = stsb ] && thr=0
    sweep "$(task_file $R/glue.jsonl $task threshold=0)" $thr $R/glue-eval.jsonl
  done
fi

if [ "$PHASE" = all ] || [ "$PHASE" = sst2 ]; then
  S="$R/sst2.jsonl"
  "$BIN" run --task sst2 --method full --lr 1e-4 $COMMON1 --skip-done --out "$OUT/sst2" --results $S
  TEACHER=$(task_file $S sst2 "")
  "$BIN" run --task sst2 --method exits -o pooler=tanh --lr 1e-4 $COMMON1 --teacher "$TEACHER" --kd-alpha 0.5 \
    --kd-hidden 1 --skip-done --out "$OUT/sst2" --results $S
  # slenderized from the fine-tuned teacher (COST-EFF prunes the fine-tuned model), its head kept
  [ -d "$OUT/slim" ] || "$BIN" slenderize --task sst2 --from "$TEACHER" --out "$OUT/slim" --heads 2 --ffn 256 \
    --word-rank 128 --batches 16 --max-len 64 --seed 0 | tee "$R/slenderize.log"
  "$BIN" run --task sst2 --method exits -o pooler=tanh --model "$OUT/slim" --lr 1e-4 $COMMON1 --skip-done \
    --out "$OUT/sst2" --results $S
  "$BIN" run --task sst2 --method exits -o pooler=tanh --model "$OUT/slim" --lr 1e-4 $COMMON1 --teacher "$TEACHER" \
    --kd-alpha 0.5 --skip-done --out "$OUT/sst2" --results $S
  # every exits model of the pipeline (plain, distilled, slender, slender distilled)
  perl -MJSON::PP -ne 'my $o = decode_json($_); print $o->{storage}{path}, "\n" if $o->{method} eq "exits"' <$S |
    while read -r tf; do sweep "$tf" $THR2 $R/sst2-eval.jsonl; done
fi

if [ "$PHASE" = all ] || [ "$PHASE" = render ]; then
  "$BIN" plot $R/glue.jsonl $R/glue-eval.jsonl --out $R/figures/glue --format both >/dev/null
  "$BIN" plot $R/sst2.jsonl $R/sst2-eval.jsonl --out $R/figures/sst2 --format both >/dev/null
fi
