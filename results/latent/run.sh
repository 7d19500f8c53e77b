#!/usr/bin/env bash
# Latent-space compression over the embedded default backbone (README "Latent-space compression"):
# PCA / autoencoders on the hidden states of layer k, compressed backbones at (k, d'), full
# fine-tuning of each against the uncompressed model on every GLUE task with training data (SST-2:
# all ten models; CoLA, MRPC, STS-B, RTE, WNLI: six of them), LoRA on one, and `eval` of each task
# file under /usr/bin/time for the peak inference memory (results/latent/eval-rss.sh). Fine-tuning:
# at most 4,000 training examples, 2 epochs, --max-len 64, seed 1, bf16, one thread. From the repo
# root, after the build:
#   bash results/latent/run.sh            (46 minutes on one thread of the 2-core machine, partly shared)
# Records: results/latent/TASK-default.jsonl; reconstruction reports: results/latent/autoencoders.txt;
# peak RSS of each eval: results/latent/eval-rss[-TASK].tsv; tables summary[-TASK].md. Resumable:
# runs already recorded are skipped (--skip-done); a new backbone needs the old records moved away.
# The compressed folders and task files go to $MODELS (default /tmp/pb-latent; not committed: 40 MB each).
set -eu
BIN=${BIN:-./build/peftbench}
OUT=results/latent
M=${MODELS:-/tmp/pb-latent}
R=$OUT/sst2-default.jsonl
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$M"
. results/lr-of.sh # lr_of METHOD: the rates of results/lr-sweep.sh
FT=(--max-train 4000 --epochs 2 --max-len 64 --threads 1 --seed 1 --precision bf16 --skip-done --quiet --out "$M/out")
RUN=(run --task sst2 --method full --lr "$(lr_of full)" "${FT[@]}" --results "$R")
[ -d "$M/pca-proj-k2-d64" ] || : >"$OUT/autoencoders.txt" # a fresh start (a resumed run keeps the reports)
ae() { "$BIN" autoencoder --quiet "$@" --sequences 400 --max-len 64 | tee -a "$OUT/autoencoders.txt"; }

# the uncompressed model
"$BIN" "${RUN[@]}"

# PCA of layer k at d' (k = 2: d' 64, 128, 192; d' 128: k 1, 3), compressed with the original upper
# layers projected through it (--init project keeps FFN 1024)
for kd in 2:64 2:128 2:192 1:128 3:128; do
  k=${kd%:*} d=${kd#*:}
  [ -d "$M/pca-proj-k$k-d$d" ] || {
    ae --layer "$k" --widths "$d" --form pca --out "$M/pca-k$k-d$d.safetensors"
    "$BIN" compress --variant pca --ae "$M/pca-k$k-d$d.safetensors" --init project --ffn 1024 --out "$M/pca-proj-k$k-d$d"
  }
  "$BIN" "${RUN[@]}" --model "$M/pca-proj-k$k-d$d"
done

# the four variants at k = 2, d' = 128 with fresh upper layers (FFN 512 = 1024 * 128/256)
[ -d "$M/ae-k2-d128" ] || {
  ae --layer 2 --widths 192,128 --steps 3000 --out "$M/ae-k2-d128.safetensors"
  "$BIN" compress --variant ae --ae "$M/ae-k2-d128.safetensors" --out "$M/ae-k2-d128"
}
[ -d "$M/pca-k2-d128" ] || "$BIN" compress --variant pca --ae "$M/pca-k2-d128.safetensors" --out "$M/pca-k2-d128"
[ -d "$M/aes-k2-d128" ] || "$BIN" compress --variant aes --layer 2 --widths 192,128 --out "$M/aes-k2-d128"
[ -d "$M/ll-k2-d128" ] || "$BIN" compress --variant ll --layer 2 --widths 128 --out "$M/ll-k2-d128"
for v in ae pca aes ll; do
  "$BIN" "${RUN[@]}" --model "$M/$v-k2-d128"
done
bash "$OUT/eval-rss.sh" "$R"
"$BIN" table "$R" --format md --out "$OUT/sst2-default.md"
"$BIN" plot "$R" --out "$OUT/figures" --format png
python3 "$OUT/summary.py" "$R" "$OUT/eval-rss.tsv" >"$OUT/summary.md"

# LoRA on the compressed model (the projected upper layers frozen) against LoRA on the uncompressed one
# (LoRA at 2e-3, the rate results/lr-sweep.sh chose over the default backbone)
LORA=(run --task sst2 --method lora --lr "$(lr_of lora)" "${FT[@]}" --results "$OUT/sst2-lora.jsonl")
"$BIN" "${LORA[@]}"
"$BIN" "${LORA[@]}" --model "$M/pca-proj-k2-d128"
python3 "$OUT/summary.py" "$OUT/sst2-lora.jsonl" "$OUT/eval-rss.tsv" >"$OUT/summary-lora.md"

# the other tasks: the uncompressed model, PCA-projected k=2 d' 64 / 128 and k=1 d' 128, AE and LL
# (fresh) at k=2 d'=128
all=("$R")
for task in rte cola mrpc stsb wnli; do
  TR=$OUT/$task-default.jsonl
  all+=("$TR")
  T=(run --task "$task" --method full --lr "$(lr_of full)" "${FT[@]}" --results "$TR")
  "$BIN" "${T[@]}"
  for f in pca-proj-k2-d64 pca-proj-k2-d128 pca-proj-k1-d128 ae-k2-d128 ll-k2-d128; do "$BIN" "${T[@]}" --model "$M/$f"; done
  bash "$OUT/eval-rss.sh" "$TR" && mv "$OUT/eval-rss.tsv" "$OUT/eval-rss-$task.tsv"
  python3 "$OUT/summary.py" "$TR" "$OUT/eval-rss-$task.tsv" >"$OUT/summary-$task.md"
done
bash "$OUT/eval-rss.sh" "$R"
"$BIN" table "${all[@]}" --format md --out "$OUT/glue-default.md"
"$BIN" plot "${all[@]}" --out "$OUT/figures-glue" --format png
