#!/usr/bin/env bash
# End-to-end: latent-space compression (`peftbench autoencoder`, `peftbench compress`).
#   bash tests/e2e_latent.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - autoencoder (nonlinear 32 -> 24 -> 16) and PCA (32 -> 16) on the hidden states of layer 1 of
#   a tiny random backbone (--shape 3,32,4,64) over an SST-2-layout folder written here; the
#   summary reports the reconstruction error (and the variance kept);
# - compress: ae (frozen), pca with --init project, aes (joint, layer 2), ll (joint, layer 1);
#   config.json carries peftbench_latent; `run` trains LoRA / full / Adapter / LayerConnect on the
#   folders with closed-form parameter counts (the frozen map is not trained even by full
#   fine-tuning; the joint one is stored in the task file), `eval` gives back the score, `ops
#   --model` counts the compressed shapes; `run --teacher` distils the uncompressed model's
#   predictions into the compressed one (--kd-hidden across the width change: exit 1); `plot`
#   draws memory_vs_width and score_vs_flops from compressed and uncompressed records;
# - bad input: d' >= d, d' not divisible by the heads, k out of range (exit 2 with one line),
#   --init project on a nonlinear map, pca with two widths (exit 2), a missing --ae file and an
#   autoencoder of another backbone (exit 1, no folder written).
set -u
. "$(dirname "$0")/lib/e2e.sh" latent "$@"
json() { perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; my $r = JSON::PP->new->decode(<$h>);
  for my $k (split /\./, $ARGV[1]) { $r = ref $r eq "ARRAY" ? $r->[$k] : $r->{$k} } print ref $r eq "ARRAY" ? join(",", @$r) : $r' "$1" "$2" 2>/dev/null; }

sst2_folder 64 17
BB=(--shape 3,32,4,64 --data-dir "$W/glue")

# ---- autoencoder and PCA on layer 1
"$BIN" autoencoder --layer 1 --widths 24,16 --steps 60 --batch 32 --sequences 12 --max-len 16 --quiet "${BB[@]}" \
  --out "$W/ae.safetensors" >"$W/out" 2>"$W/err"
expect "autoencoder exits 0" "$?" 0
grep -q "widths 32,24,16 (nonlinear)" "$W/out" && grep -q "reconstruction MSE train" "$W/out" && ok "autoencoder summary" ||
  fail "autoencoder summary: $(cat "$W/out")"
"$BIN" autoencoder --layer 1 --widths 16 --form pca --sequences 12 --max-len 16 --quiet "${BB[@]}" \
  --out "$W/pca.safetensors" >"$W/out" 2>"$W/err"
expect "pca exits 0" "$?" 0
grep -q "variance kept 0\.[0-9]" "$W/out" && ok "pca reports the variance kept" || fail "pca summary: $(cat "$W/out")"

# ---- compress: the four variants
"$BIN" compress --variant ae --ae "$W/ae.safetensors" --out "$W/c-ae" --shape 3,32,4,64 >"$W/out" 2>"$W/err"
expect "compress ae exits 0" "$?" 0
for f in config.json model.safetensors vocab.txt; do [ -s "$W/c-ae/$f" ] && ok "c-ae/$f written" || fail "c-ae/$f missing"; done
expect "config.json peftbench_latent (ae)" "$(json "$W/c-ae/config.json" peftbench_latent.cut)/$(json "$W/c-ae/config.json" peftbench_latent.widths)/$(json "$W/c-ae/config.json" peftbench_latent.ffn)/$(json "$W/c-ae/config.json" peftbench_latent.trainable)" "1/32,24,16/32/0"
"$BIN" compress --variant pca --ae "$W/pca.safetensors" --init project --ffn 64 --out "$W/c-pca" --shape 3,32,4,64 >"$W/out" 2>"$W/err"
expect "compress pca --init project exits 0" "$?" 0
"$BIN" compress --variant aes --layer 2 --widths 24,16 --out "$W/c-aes" --shape 3,32,4,64 >"$W/out" 2>"$W/err"
expect "compress aes exits 0" "$?" 0
"$BIN" compress --variant ll --layer 1 --widths 16 --heads 2 --out "$W/c-ll" --shape 3,32,4,64 >"$W/out" 2>"$W/err"
expect "compress ll exits 0" "$?" 0
expect "config.json peftbench_latent (ll)" "$(json "$W/c-ll/config.json" peftbench_latent.heads)/$(json "$W/c-ll/config.json" peftbench_latent.form)/$(json "$W/c-ll/config.json" peftbench_latent.trainable)" "2/linear/1"

RUN=(--task sst2 --data-dir "$W/glue" --steps 3 --batch 8 --max-len 16 --threads 1 --quiet --out "$W/out.d" --json)
V=$(wc -l <"$W/c-ae/vocab.txt")
# layer at (d, F): 4(d^2+d) + 2d + (F d + F) + (d F + d) + 2d
layer() { echo $((4 * ($1 * $1 + $1) + 2 * $1 + $2 * $1 + $2 + $1 * $2 + $1 + 2 * $1)); }
emb=$((V * 32 + 512 * 32 + 2 * 32 + 64))
map_ae=$((32 * 24 + 24 + 24 * 16 + 16))
head16=$((16 * 16 + 16 + 2 * 16 + 2))
all_ae=$((emb + $(layer 32 64) + map_ae + 2 * $(layer 16 32) + head16))
"$BIN" run --method lora --model "$W/c-ae" "${RUN[@]}" >"$W/rec" 2>"$W/err"
expect "lora on the ae folder exits 0" "$?" 0
# LoRA r=8 on query, value: 2 x (8 d + d 8) per layer; the head at d' = 16
lora=$((2 * 16 * 32 + 2 * 2 * 16 * 16))
expect "lora on ae: all parameters (closed form)" "$(json "$W/rec" params.all)" "$((all_ae + lora))"
expect "lora on ae: trainable = LoRA + head" "$(json "$W/rec" params.trainable)" "$((lora + 2 * 16 + 2))"
tf=$(json "$W/rec" storage.path)
"$BIN" eval "$tf" --data-dir "$W/glue" --json >"$W/evj" 2>"$W/err"
expect "eval of the compressed task file exits 0" "$?" 0
expect "eval gives back the recorded score" "$(json "$W/evj" splits.dev.metrics.accuracy)" "$(json "$W/rec" metrics.score)"
rm -f "$(json "$W/evj" splits.dev.predictions)"
"$BIN" run --method full --model "$W/c-ae" "${RUN[@]}" --results "$W/r.jsonl" >"$W/rec" 2>"$W/err"
expect "full on the ae folder exits 0" "$?" 0
expect "full on ae: the frozen map is not trained" "$(json "$W/rec" params.trainable)" "$((all_ae - map_ae))"
expect "record backbone.latent (variant, cut, d')" "$(json "$W/rec" backbone.latent.variant)/$(json "$W/rec" backbone.latent.cut)/$(json "$W/rec" backbone.latent.d_prime)" "ae/1/16"
expect "record memory.model_bytes: 4 per parameter, 12 per trainable one" \
  "$(json "$W/rec" memory.model_bytes.parameters)/$(json "$W/rec" memory.model_bytes.gradients_adamw)" "$((4 * all_ae))/$((12 * (all_ae - map_ae)))"
"$BIN" run --method full --shape 3,32,4,64 "${RUN[@]}" --results "$W/r.jsonl" >/dev/null 2>"$W/err"
expect "full on the uncompressed backbone exits 0" "$?" 0
# distillation from the uncompressed teacher into the compressed student (predictions only: the
# widths differ above the cut, so representation distillation is refused with one line)
teacher=$(perl -MJSON::PP -ne '$r = JSON::PP->new->decode($_); $p = $r->{storage}{path} unless $r->{backbone}{latent}; END { print $p }' "$W/r.jsonl")
"$BIN" run --method full --model "$W/c-ae" --teacher "$teacher" --kd-alpha 0.5 "${RUN[@]}" >"$W/rec" 2>"$W/err"
expect "distillation into the compressed model exits 0" "$?" 0
expect "  the record names the teacher" "$(json "$W/rec" distill.teacher.file)" "$teacher"
"$BIN" run --method full --model "$W/c-ae" --teacher "$teacher" --kd-alpha 0.5 --kd-hidden 1 "${RUN[@]}" >/dev/null 2>"$W/err"
rc=$?
[ "$rc" = 1 ] && grep -q "needs equal widths" "$W/err" && ok "--kd-hidden across the width change refused (exit 1)" ||
  fail "--kd-hidden on the compressed student: exit $rc, $(head -1 "$W/err")"
"$BIN" plot "$W/r.jsonl" --out "$W/figs" >/dev/null 2>"$W/err"
expect "plot of compressed and uncompressed records exits 0" "$?" 0
grep -q "^\"ae k=1 d'=16 (c-ae)\" 16 " "$W/figs/memory_vs_width.dat" && grep -q "^\"uncompressed full.*\" 32 " "$W/figs/memory_vs_width.dat" &&
  ok "memory_vs_width.dat: the compressed run at d' = 16, the uncompressed at d = 32" || fail "memory_vs_width.dat: $(cat "$W/figs/memory_vs_width.dat")"
grep -q "^\"ae k=1 d'=16 (c-ae)\" [0-9]" "$W/figs/score_vs_flops.dat" && ok "score_vs_flops.dat has the compressed run" ||
  fail "score_vs_flops.dat: $(cat "$W/figs/score_vs_flops.dat")"
"$BIN" run --method adapter --model "$W/c-ll" "${RUN[@]}" >"$W/rec" 2>"$W/err"
expect "adapter on the ll folder exits 0" "$?" 0
# adapter pfeiffer r=8 after the FFN: d 8 + 8 + 8 d + d per layer; the ll map (32 x 16 + 16) trains with it
expect "adapter on ll: trainable = adapter + map + head" "$(json "$W/rec" params.trainable)" \
  "$((17 * 32 + 8 + 2 * (17 * 16 + 8) + 32 * 16 + 16 + 2 * 16 + 2))"
tf=$(json "$W/rec" storage.path)
"$BIN" eval "$tf" --data-dir "$W/glue" --json >"$W/evj" 2>"$W/err"
expect "eval of adapter on ll (the trained map from the task file) gives back the score" \
  "$(json "$W/evj" splits.dev.metrics.accuracy)" "$(json "$W/rec" metrics.score)"
rm -f "$(json "$W/evj" splits.dev.predictions)"
"$BIN" run --method layerconnect --model "$W/c-pca" "${RUN[@]}" >"$W/rec" 2>"$W/err"
expect "layerconnect on the pca folder exits 0" "$?" 0
"$BIN" run --method lora+layerconnect --model "$W/c-aes" "${RUN[@]}" >"$W/rec" 2>"$W/err"
expect "lora+layerconnect on the aes folder exits 0" "$?" 0
# ops --model: backbone MACs at T = 128 per example: layer 1 at 32 (4 d^2 + 2 d F + 2 T d per token),
# the map, layers 2-3 at 16 (FFN 32)
macs() { "$BIN" ops --method bitfit "$@" 2>/dev/null | awk '$1 == "backbone" { gsub(",", "", $2); print $2; exit }'; }
expect "ops --model on the ae folder: backbone MACs (closed form)" "$(macs --model "$W/c-ae")" \
  "$((128 * (4 * 32 * 32 + 2 * 32 * 64 + 2 * 128 * 32) + 128 * (32 * 24 + 24 * 16) + 2 * 128 * (4 * 16 * 16 + 2 * 16 * 32 + 2 * 128 * 16)))"

# ---- bad input
bad() { # NAME EXIT NEEDLE ARGS...
  local name=$1 want=$2 needle=$3
  shift 3
  "$BIN" "$@" >/dev/null 2>"$W/err"
  local rc=$?
  if [ "$rc" = "$want" ] && grep -q -- "$needle" "$W/err" && [ "$(wc -l <"$W/err")" = 1 ]; then ok "$name: exit $want, one line"
  else fail "$name: exit $rc (want $want), stderr '$(head -2 "$W/err")'"; fi
}
bad "d' = d" 2 "must be smaller than the hidden size" compress --variant ll --layer 1 --widths 32 --out "$W/bad" --shape 3,32,4,64
bad "d' > d" 2 "decrease strictly\|smaller than" compress --variant aes --layer 1 --widths 48,16 --out "$W/bad" --shape 3,32,4,64
bad "d' not divisible by the heads" 2 "not divisible by 4 attention heads" compress --variant ll --layer 1 --widths 18 --out "$W/bad" --shape 3,32,4,64
bad "k = L" 2 "outside 1..2" compress --variant ll --layer 3 --widths 16 --out "$W/bad" --shape 3,32,4,64
bad "k = 0" 2 "outside 1..2" compress --variant aes --layer 0 --widths 16 --out "$W/bad" --shape 3,32,4,64
bad "autoencoder k = L" 2 "outside 1..2" autoencoder --layer 3 --widths 16 --out "$W/bad.st" "${BB[@]}"
bad "autoencoder widths not decreasing" 2 "decrease strictly" autoencoder --layer 1 --widths 16,24 --out "$W/bad.st" "${BB[@]}"
bad "pca with two widths" 2 "one width" autoencoder --layer 1 --widths 24,16 --form pca --out "$W/bad.st" "${BB[@]}"
bad "--init project on a nonlinear map" 2 "needs one pre-trained linear map" compress --variant ae --ae "$W/ae.safetensors" --init project --ffn 64 --out "$W/bad" --shape 3,32,4,64
bad "--variant pca with an autoencoder file" 2 "holds an autoencoder" compress --variant pca --ae "$W/ae.safetensors" --out "$W/bad" --shape 3,32,4,64
bad "missing --ae file" 1 "nofile.safetensors" compress --variant ae --ae "$W/nofile.safetensors" --out "$W/bad" --shape 3,32,4,64
bad "autoencoder of another backbone" 1 "fingerprint" compress --variant ae --ae "$W/ae.safetensors" --out "$W/bad" --shape 3,32,2,64
bad "unknown variant" 2 "ae, aes, ll or pca" compress --variant xx --out "$W/bad" --shape 3,32,4,64
[ ! -e "$W/bad" ] && [ ! -e "$W/bad.st" ] && ok "refused commands wrote nothing" || fail "a refused command wrote output"

finish
