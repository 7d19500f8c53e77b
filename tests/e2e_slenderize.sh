#!/usr/bin/env bash
# End-to-end: `peftbench slenderize` (COST-EFF slenderization, backbone/slender.h).
#   bash tests/e2e_slenderize.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - slenderize a tiny random backbone (--shape 2,32,4,64) on an SST-2-layout folder written here:
#   4 -> 2 heads, FFN 64 -> 32, word rank 16; the folder has config.json with peftbench_slender
#   (2 layers, 2 heads of 8, FFN 32, word rank 16), model.safetensors and vocab.txt;
# - `run --model` on that folder trains and evaluates, with the slender parameter count;
# - `ops --model` on that folder counts the slender shapes (closed-form backbone MACs);
# - --from TASKFILE (full fine-tuning): the written folder holds the fine-tuned classifier, pooler and
#   kept tensors; exits train on it; --from another method is a usage error, a missing file exit 1;
# - bad shapes (heads 0 / 5, FFN 65, rank 32 = d) and a missing --out are usage errors (exit 2).
set -u
. "$(dirname "$0")/lib/e2e.sh" slender "$@"

sst2_folder 48 17
COMMON=(--shape 2,32,4,64 --data-dir "$W/glue" --batch 8 --max-len 16)

"$BIN" slenderize --task sst2 --out "$W/slim" --heads 2 --ffn 32 --word-rank 16 --batches 3 "${COMMON[@]}" >"$W/out" 2>"$W/err"
expect "slenderize exits 0" "$?" 0
for f in config.json model.safetensors vocab.txt; do [ -s "$W/slim/$f" ] && ok "slim/$f written" || fail "slim/$f missing"; done
shape=$(perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; my $c = JSON::PP->new->decode(<$h>);
  my $s = $c->{peftbench_slender}; print join(",", scalar @{$s->{layers}}, map({ "$_->{heads}x$_->{head_dim}/$_->{ffn}" } @{$s->{layers}}), $s->{word_rank})' "$W/slim/config.json")
expect "config.json peftbench_slender" "$shape" "2,2x8/32,2x8/32,16"
grep -q "3 batches; heads 4 -> 2, FFN 64 -> 32, word rank 16" "$W/out" && ok "summary line" || fail "summary line: $(cat "$W/out")"

# the slender folder as a backbone: parameters of the slender shapes
# E [V,16] + P [32,16] + pos 512x32 + type 2x32 + LN 64 + 2 x (3 (16x32+16) + 32x16+32 + 64 + 32x32+32 + 32x32+32 + 64)
# + pooler 32x32+32 + classifier 2x32+2
V=$(wc -l <"$W/slim/vocab.txt")
want=$((V * 16 + 32 * 16 + 512 * 32 + 2 * 32 + 64 + 2 * (3 * (16 * 32 + 16) + 32 * 16 + 32 + 64 + 32 * 32 + 32 + 32 * 32 + 32 + 64) + 32 * 32 + 32 + 2 * 32 + 2))
"$BIN" run --task sst2 --method bitfit --model "$W/slim" --data-dir "$W/glue" --steps 2 --batch 8 --max-len 16 \
  --threads 1 --quiet --out "$W/out.d" --json >"$W/rec" 2>"$W/err"
expect "run on the slender folder exits 0" "$?" 0
got=$(perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; my $r = JSON::PP->new->decode(<$h>); print $r->{params}{all}' "$W/rec" 2>/dev/null)
expect "slender parameter count" "$got" "$want"
# the task file trained on the slender folder evaluates with eval (the slender shapes are rebuilt
# from the folder it names) and gives back the recorded score
tf=$(ls "$W"/out.d/*.safetensors 2>/dev/null | head -1)
[ -n "$tf" ] && ok "task file written" || fail "no task file in $W/out.d"
rec_acc=$(perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; print JSON::PP->new->decode(<$h>)->{metrics}{score}' "$W/rec" 2>/dev/null)
"$BIN" eval "$tf" --data-dir "$W/glue" --json >"$W/evj" 2>"$W/err"
expect "eval of the slender task file exits 0" "$?" 0
ev_acc=$(perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; print JSON::PP->new->decode(<$h>)->{splits}{dev}{metrics}{accuracy}' \
  "$W/evj" 2>/dev/null)
expect "eval gives back the recorded dev accuracy" "$ev_acc" "$rec_acc"
run_pred=$(ls "$W"/out.d/*.dev.predictions.tsv 2>/dev/null | head -1)
ev_pred=$(perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; print JSON::PP->new->decode(<$h>)->{splits}{dev}{predictions}' "$W/evj")
if [ -n "$run_pred" ] && [ -f "$ev_pred" ] && cmp -s <(cut -f1-3 "$run_pred") <(cut -f1-3 "$ev_pred"); then
  ok "eval's predictions = run's (index, gold, prediction of every dev row)"
else
  fail "eval's predictions differ from run's ($run_pred vs $ev_pred)"
fi
rm -f "$ev_pred"

# ops --model on the slender folder counts the slender shapes: fewer backbone MACs than the source shape
macs() { "$BIN" ops --method bitfit "$@" 2>/dev/null | awk '$1 == "backbone" { gsub(",", "", $2); print $2; exit }'; }
m_slim=$(macs --model "$W/slim")
m_full=$(macs --shape 2,32,4,64)
# per token and layer at T=128: 3*32*16 + 16*32 + 2*32*32 + 2*128*16 = 8192 (slender), the word projection 16*32
expect "ops --model slender backbone MACs" "$m_slim" "$((128 * 16 * 32 + 2 * 128 * 8192))"
[ -n "$m_full" ] && [ "$m_slim" -lt "$m_full" ] && ok "slender counts below the source's ($m_slim < $m_full)" || fail "ops: $m_slim vs $m_full"

# --from: slenderize a fine-tuned model (COST-EFF prunes the fine-tuned one); its values are kept
# md5 of one tensor's bytes in a safetensors file
tensor_md5() {
  perl -MJSON::PP -MDigest::MD5=md5_hex -e 'open(my $h, "<:raw", $ARGV[0]) or die; read($h, my $n, 8);
    my $len = unpack("Q<", $n); read($h, my $j, $len); my $t = JSON::PP->new->decode($j)->{$ARGV[1]} or exit 1;
    my ($a, $b) = @{$t->{data_offsets}}; seek($h, 8 + $len + $a, 0); read($h, my $d, $b - $a); print md5_hex($d)' "$1" "$2"
}
"$BIN" run --task sst2 --method full --steps 20 --lr 3e-3 "${COMMON[@]}" --threads 1 --quiet --out "$W/ft" --json >"$W/ftrec" 2>"$W/err"
expect "full fine-tuning for --from: exit" "$?" 0
FT=$(perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; print JSON::PP->new->decode(<$h>)->{storage}{path}' "$W/ftrec")
"$BIN" slenderize --task sst2 --from "$FT" --out "$W/slimft" --heads 2 --ffn 32 --word-rank 0 --batches 3 \
  --data-dir "$W/glue" --batch 8 --max-len 16 >"$W/out" 2>"$W/err"
expect "slenderize --from TASKFILE: exit" "$?" 0
for t in classifier.weight bert.pooler.dense.weight bert.encoder.layer.1.output.LayerNorm.weight; do
  a=$(tensor_md5 "$FT" "$t"); b=$(tensor_md5 "$W/slimft/model.safetensors" "$t")
  [ -n "$a" ] && [ "$a" = "$b" ] && ok "--from: $t is the fine-tuned one" || fail "--from: $t differs ($a vs $b)"
done
a=$(tensor_md5 "$W/slim/model.safetensors" bert.pooler.dense.weight); b=$(tensor_md5 "$W/slimft/model.safetensors" bert.pooler.dense.weight)
[ "$a" != "$b" ] && ok "--from: not the base model's values" || fail "--from wrote the base model's pooler"
"$BIN" run --task sst2 --method exits --model "$W/slimft" --data-dir "$W/glue" --steps 2 --batch 8 --max-len 16 \
  --threads 1 --quiet --out "$W/out.d" >/dev/null 2>"$W/err"
expect "exits on the slenderized fine-tuned model: exit" "$?" 0
"$BIN" slenderize --task sst2 --from "$(ls "$W"/out.d/*.safetensors | head -1)" --out "$W/bad" --heads 2 --ffn 32 \
  --word-rank 0 --batches 1 --data-dir "$W/glue" --batch 8 --max-len 16 >/dev/null 2>"$W/err"
expect "--from a task file that is not full fine-tuning: exit" "$?" 2
grep -q "must be .full." "$W/err" && ok "  one line saying why" || fail "--from method message"
"$BIN" slenderize --task sst2 --from "$W/nofile.safetensors" --out "$W/bad" --heads 2 --ffn 32 --word-rank 0 \
  --data-dir "$W/glue" >/dev/null 2>"$W/err"
expect "--from a missing file: exit" "$?" 1
[ ! -e "$W/bad" ] && ok "refused runs wrote no folder" || fail "a refused run wrote $W/bad"

for bad in "--heads 0 --ffn 32 --word-rank 0" "--heads 5 --ffn 32 --word-rank 0" "--heads 2 --ffn 65 --word-rank 0" \
  "--heads 2 --ffn 32 --word-rank 32"; do
  # shellcheck disable=SC2086
  "$BIN" slenderize --task sst2 --out "$W/bad" $bad --batches 1 "${COMMON[@]}" >/dev/null 2>"$W/err"
  expect "slenderize $bad refused" "$?" 2
done
"$BIN" slenderize --task sst2 --heads 2 --ffn 32 --word-rank 0 "${COMMON[@]}" >/dev/null 2>"$W/err"
expect "slenderize without --out refused" "$?" 2

finish
