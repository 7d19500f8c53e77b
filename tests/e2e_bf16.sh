#!/usr/bin/env bash
# End-to-end: --precision bf16 (backbone/bf16.h, issue 20).
#   bash tests/e2e_bf16.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - run --precision fp32 and bf16 on the same tiny task: both exit 0; the bf16 record says
#   host.precision {mode bf16, linear oneDNN, an AMX/avx512_bf16 kernel, 0 fp32 fallbacks} and its
#   config has "precision": "bf16", so its config id differs from fp32's (whose config has no such
#   key: ids of fp32 runs made before stay); exact op counts (train and eval) equal fp32's;
#   --skip-done finds each precision's own record only
# - eval --precision bf16 of the bf16 task file: exit 0, an eval record with the precision block
# - pretrain --precision bf16: pretrain.json records precision and kernel
# - a CPU without bf16 (PEFTBENCH_NO_BF16=1): one line naming the missing feature, exit 1, nothing
#   written; --precision fp16 is a usage error (exit 2) for run, eval and pretrain
# Skipped (exit 77) on a CPU without avx512_bf16 / amx_bf16.
set -u
. "$(dirname "$0")/lib/e2e.sh" bf16 "$@"
json() { perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; my @l = split /\n/, <$h>; my $j = JSON::PP->new->decode($l[$ARGV[2] // 0]); my $v = eval $ARGV[1]; print defined $v ? $v : "undef"' "$1" "$2" "${3:-0}" 2>/dev/null; }
jfile() { perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; my $j = JSON::PP->new->decode(<$h>); my $v = eval $ARGV[1]; print defined $v ? $v : "undef"' "$1" "$2" 2>/dev/null; }
grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo || { echo "SKIP: this CPU has no bf16"; exit 77; }

sst2_folder 96 33
R=(--task sst2 --method lora --shape 2,64,4,128 --max-len 16 --batch 8 --epochs 1 --data-dir "$W/glue" --out "$W/out" --quiet)
"$BIN" run "${R[@]}" --precision fp32 --results "$W/r.jsonl" >/dev/null 2>"$W/err"
expect "run --precision fp32 exits 0" "$?" 0
"$BIN" run "${R[@]}" --precision bf16 --results "$W/r.jsonl" >/dev/null 2>"$W/err"
expect "run --precision bf16 exits 0" "$?" 0
expect "fp32 record: host.precision" "$(json "$W/r.jsonl" 'join ",", $j->{host}{precision}{mode}, $j->{host}{precision}{linear}' 0)" "fp32,OpenBLAS sgemm"
expect "fp32 config has no precision key" "$(json "$W/r.jsonl" 'exists $j->{config}{precision} ? 1 : 0' 0)" 0
expect "bf16 record: mode, library, fallbacks" \
  "$(json "$W/r.jsonl" 'join ",", $j->{host}{precision}{mode}, $j->{host}{precision}{linear} =~ /^oneDNN / ? 1 : 0, $j->{host}{precision}{fp32_fallbacks}' 1)" "bf16,1,0"
kernel=$(json "$W/r.jsonl" '$j->{host}{precision}{kernel}' 1)
case "$kernel" in *amx*|*bf16*) ok "bf16 kernel named: $kernel" ;; *) fail "bf16 kernel: '$kernel'" ;; esac
expect "bf16 config precision" "$(json "$W/r.jsonl" '$j->{config}{precision}' 1)" bf16
id32=$(json "$W/r.jsonl" '$j->{config_id}' 0); id16=$(json "$W/r.jsonl" '$j->{config_id}' 1)
[ -n "$id32" ] && [ "$id32" != "$id16" ] && ok "config ids differ ($id32, $id16)" || fail "config ids: '$id32' '$id16'"
for part in train eval; do
  expect "op counts of $part equal in both precisions" \
    "$(json "$W/r.jsonl" "JSON::PP->new->canonical->encode(\$j->{ops}{measured}{$part})" 0)" \
    "$(json "$W/r.jsonl" "JSON::PP->new->canonical->encode(\$j->{ops}{measured}{$part})" 1)"
done
"$BIN" run "${R[@]}" --precision bf16 --results "$W/r.jsonl" --skip-done >/dev/null 2>"$W/err"
expect "--skip-done finds the bf16 run" "$?" 0
expect "... and appends nothing" "$(wc -l <"$W/r.jsonl")" 2
tf=$(ls "$W"/out/*.safetensors | while read -r f; do [ "$(basename "$f" | grep -c "$id16")" = 1 ] && echo "$f"; done | head -1)
[ -n "$tf" ] && ok "bf16 task file written" || fail "no task file with id $id16"
"$BIN" eval "$tf" --data-dir "$W/glue" --precision bf16 --results "$W/e.jsonl" --out "$W/eo" >/dev/null 2>"$W/err"
expect "eval --precision bf16 exits 0" "$?" 0
expect "eval record precision" "$(json "$W/e.jsonl" '$j->{host}{precision}{mode}')" bf16

"$BIN" pretrain --out "$W/pt" --layers 2 --hidden 32 --heads 4 --ffn 64 --max-len 16 --batch 4 --steps 2 \
  --data-dir "$W/glue" --precision bf16 --quiet 2>"$W/err"
expect "pretrain --precision bf16 exits 0" "$?" 0
expect "pretrain.json precision" "$(jfile "$W/pt/pretrain.json" '$j->{precision}')" bf16
case "$(jfile "$W/pt/pretrain.json" '$j->{precision_kernel}')" in oneDNN*) ok "pretrain.json kernel" ;; *) fail "pretrain.json kernel" ;; esac

# ---- a CPU without bf16, and bad values
PEFTBENCH_NO_BF16=1 "$BIN" run "${R[@]}" --precision bf16 --results "$W/nb.jsonl" >/dev/null 2>"$W/err"
expect "no bf16 CPU: run exits 1" "$?" 1
grep -q "neither avx512_bf16 nor amx_bf16" "$W/err" && ok "no bf16 CPU: the message names the features" || fail "message"
expect "no bf16 CPU: one line" "$(wc -l <"$W/err")" 1
[ ! -e "$W/nb.jsonl" ] && ok "no bf16 CPU: nothing written" || fail "a record was written"
PEFTBENCH_NO_BF16=1 "$BIN" eval "$tf" --data-dir "$W/glue" --precision bf16 >/dev/null 2>"$W/err"
expect "no bf16 CPU: eval exits 1" "$?" 1
for cmd in "run ${R[*]}" "eval $tf --data-dir $W/glue" "pretrain --out $W/pt2 --data-dir $W/glue"; do
  "$BIN" $cmd --precision fp16 >/dev/null 2>"$W/err"
  expect "--precision fp16: ${cmd%% *} exits 2" "$?" 2
  grep -q "fp16" "$W/err" && ok "... naming the value" || fail "${cmd%% *}: message without the value"
done
finish
