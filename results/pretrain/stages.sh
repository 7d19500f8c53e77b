#!/usr/bin/env bash
# Issue 14: what limits the SST-2 targets — MLM loss against pre-training compute, and SST-2 against
# MLM loss, over the three stages of the default backbone (README, "The embedded default backbone").
#   bash results/pretrain/stages.sh [BUILD_DIR]
# For each stage it scores the checkpoint with `pretrain --eval-dev` (GLUE dev text, which no stage
# trained on; masks seeded 42) and reads, from the committed records, its cumulative pre-training
# tokens and seconds (the stages' pretrain.json) and the full-SST-2 dev accuracies over it
# (results/pretrain/sst2-full.jsonl: 1 epoch, --max-len 64, seed 1, bf16; LoRA at 5e-4, full at
# 1e-4). Stage 1's weights come from git: the embedded default of commit b302ff6, which stage 3
# replaced (stage 2 was never embedded; its weights are in results/pretrain/2026-12-02/model). Writes results/pretrain/stages.tsv and stages.png; about 2 minutes
# on 2 threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build}/peftbench
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/stage1"
for f in config.json model.safetensors; do git show "b302ff6:models/default/$f" > "$TMP/stage1/$f"; done
dirs=("$TMP/stage1" results/pretrain/2026-12-02/model models/default)
fps=(0fc623e4 98be580b c8277967) # the stages' backbone fingerprints, as the run records name them
recs=(models/default/pretrain-stage1.json results/pretrain/2026-12-02/pretrain.json results/pretrain/stage3/pretrain.json)
out=results/pretrain/stages.tsv
{
  printf 'stage\tfingerprint\ttokens_M\ttrain_hours\tdev_mlm\tsst2_lora\tsst2_full\n'
  for i in 0 1 2; do
    line=$("$BIN" pretrain --eval-dev "${dirs[$i]}" --threads 2 | grep -m1 'MLM loss')
    loss=$(sed -E 's/.*MLM loss ([0-9.]+).*/\1/' <<< "$line")
    python3 - "$i" "$loss" "${fps[$i]}" "${recs[@]:0:$((i + 1))}" <<'EOF'
import json, sys
i, loss, fp, recs = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
tok = sum(json.load(open(r))["tokens_seen"] for r in recs) / 1e6
hours = sum(json.load(open(r))["train_seconds"] for r in recs) / 3600
score = {}
for line in open("results/pretrain/sst2-full.jsonl"):
    r = json.loads(line)
    lr = r["train"]["lr"]
    want = {"lora": 5e-4, "full": 1e-4}.get(r["method"])
    if want and abs(lr - want) < 1e-9 and r["backbone"]["fingerprint"].startswith(fp):
        score[r["method"]] = r["metrics"]["score"]
f = lambda m: f"{score[m]:.4f}" if m in score else "nan"
print(f"{i + 1}\t{fp}\t{tok:.2f}\t{hours:.2f}\t{loss:.4f}\t{f('lora')}\t{f('full')}")
EOF
  done
} > "$out.tmp"
mv "$out.tmp" "$out"
gnuplot -e "set terminal pngcairo size 1000,420 font ',10'; set output 'results/pretrain/stages.png';
  set datafile separator '\t'; set datafile missing 'nan'; set multiplot layout 1,2; set grid; set key bottom right;
  set title 'MLM loss on GLUE dev text vs pre-training compute'; set logscale x; set xlabel 'tokens seen (millions, log)';
  set ylabel 'dev-text MLM loss'; plot '$out' every ::1 using 3:5:(sprintf('stage %d', \$1)) with labels offset 0,1 notitle,
  '' every ::1 using 3:5 with linespoints pt 7 lw 2 title 'default backbone';
  unset logscale x; set title 'Full SST-2 dev accuracy vs dev-text MLM loss'; set xlabel 'dev-text MLM loss'; set xrange [*:*] reverse;
  set ylabel 'SST-2 dev accuracy'; plot '' every ::1 using 5:6 with linespoints pt 7 lw 2 title 'LoRA r=8 (lr 5e-4)',
  '' every ::1 using 5:7 with linespoints pt 5 lw 2 title 'full (lr 1e-4)', 0.82 with lines dt 2 title 'LoRA target', 0.85 with lines dt 3 title 'full target';
  unset multiplot"
cat "$out"
echo "wrote $out and results/pretrain/stages.png"
