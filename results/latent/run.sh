#!/usr/bin/env bash
# Latent-space compression on SST-2 over the embedded default backbone (README "Latent-space
# compression"): PCA / autoencoders on the hidden states of layer k, compressed backbones at
# (k, d'), full fine-tuning of each against the uncompressed model, and `eval` of each task file
# under /usr/bin/time for the peak inference memory (results/latent/eval-rss.sh). From the repo root, after the build:
#   bash results/latent/run.sh            (about 15 minutes on a shared 2-core machine)
# Records: results/latent/sst2-default.jsonl; reconstruction reports: results/latent/autoencoders.txt;
# peak RSS of each eval: results/latent/eval-rss.tsv. The compressed folders and task files go to
# $MODELS (default /tmp/pb-latent; not committed: 40 MB each).
set -eu
BIN=${BIN:-./build/peftbench}
OUT=results/latent
M=${MODELS:-/tmp/pb-latent}
R=$OUT/sst2-default.jsonl
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$M"
RUN=(run --task sst2 --method full --lr 1e-4 --max-train 2000 --epochs 1 --max-len 64 --threads 1 --seed 0
     --skip-done --quiet --results "$R" --out "$M/out")
: >"$OUT/autoencoders.txt"
ae() { "$BIN" autoencoder --quiet "$@" --sequences 400 --max-len 64 | tee -a "$OUT/autoencoders.txt"; }

# the uncompressed model
"$BIN" "${RUN[@]}"

# PCA of layer k at d' (k = 2: d' 64, 128, 192; d' 128: k 1, 3), compressed with the original upper
# layers projected through it (--init project keeps FFN 1024)
for kd in 2:64 2:128 2:192 1:128 3:128; do
  k=${kd%:*} d=${kd#*:}
  ae --layer "$k" --widths "$d" --form pca --out "$M/pca-k$k-d$d.safetensors"
  "$BIN" compress --variant pca --ae "$M/pca-k$k-d$d.safetensors" --init project --ffn 1024 --out "$M/pca-proj-k$k-d$d"
  "$BIN" "${RUN[@]}" --model "$M/pca-proj-k$k-d$d"
done

# the four variants at k = 2, d' = 128 with fresh upper layers (FFN 512 = 1024 * 128/256)
ae --layer 2 --widths 192,128 --steps 3000 --out "$M/ae-k2-d128.safetensors"
"$BIN" compress --variant ae --ae "$M/ae-k2-d128.safetensors" --out "$M/ae-k2-d128"
"$BIN" compress --variant pca --ae "$M/pca-k2-d128.safetensors" --out "$M/pca-k2-d128"
"$BIN" compress --variant aes --layer 2 --widths 192,128 --out "$M/aes-k2-d128"
"$BIN" compress --variant ll --layer 2 --widths 128 --out "$M/ll-k2-d128"
for v in ae pca aes ll; do
  "$BIN" "${RUN[@]}" --model "$M/$v-k2-d128"
done
bash "$OUT/eval-rss.sh" "$R"
"$BIN" table "$R" --format md --out "$OUT/sst2-default.md"
"$BIN" plot "$R" --out "$OUT/figures" --format png
python3 "$OUT/summary.py" "$R" "$OUT/eval-rss.tsv" >"$OUT/summary.md"

# LoRA on the compressed model (the projected upper layers frozen) against LoRA on the uncompressed one
LORA=(run --task sst2 --method lora --lr 5e-4 --max-train 2000 --epochs 1 --max-len 64 --threads 1 --seed 0
      --skip-done --quiet --results "$OUT/sst2-lora.jsonl" --out "$M/out")
"$BIN" "${LORA[@]}"
"$BIN" "${LORA[@]}" --model "$M/pca-proj-k2-d128"
python3 "$OUT/summary.py" "$OUT/sst2-lora.jsonl" "$OUT/eval-rss.tsv" >"$OUT/summary-lora.md"

# RTE: the uncompressed model, PCA-projected k=2 d' 64 / 128 and k=1 d' 128, AE and LL (fresh) at k=2 d'=128
RTE=(run --task rte --method full --lr 1e-4 --max-train 2000 --epochs 1 --max-len 64 --threads 1 --seed 0
     --skip-done --quiet --results "$OUT/rte-default.jsonl" --out "$M/out")
"$BIN" "${RTE[@]}"
for f in pca-proj-k2-d64 pca-proj-k2-d128 pca-proj-k1-d128 ae-k2-d128 ll-k2-d128; do "$BIN" "${RTE[@]}" --model "$M/$f"; done
bash "$OUT/eval-rss.sh" "$OUT/rte-default.jsonl" && mv "$OUT/eval-rss.tsv" "$OUT/eval-rss-rte.tsv"
bash "$OUT/eval-rss.sh" "$R"
python3 "$OUT/summary.py" "$OUT/rte-default.jsonl" "$OUT/eval-rss-rte.tsv" >"$OUT/summary-rte.md"
"$BIN" table "$R" "$OUT/rte-default.jsonl" --format md --out "$OUT/glue-default.md"
"$BIN" plot "$R" "$OUT/rte-default.jsonl" --out "$OUT/figures-both" --format png
