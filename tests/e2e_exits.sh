#!/usr/bin/env bash
# End-to-end: early exit (methods/exits.c, harness/exitstats.c), the COST-EFF multi-exit model.
#   bash tests/e2e_exits.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - run --method exits trains on a tiny random backbone (--shape 3,32,2,64) and a learnable
#   SST-2-layout folder written here; its record and task file;
# - eval --exit-threshold 0,0.3,0.6 --results: three records, each with the `exits` block
#   (threshold, distribution over the 3 layers summing to the examples, mean layer, FLOPs per
#   example mean/median/max/min, static FLOPs, speedup), config.exit_threshold, an exact eval op
#   count (eval_match), and one prediction file per threshold named with it; threshold 0 is
#   the static model (every example at layer 3, speedup 1) with run's predictions; a larger
#   threshold never costs more per example than a smaller one once examples leave;
# - --batch 1 gives the same predictions and exit statistics as the default batch;
# - bad input: a negative threshold and a method without exits are usage errors (exit 2);
# - lora+exits with a frozen backbone trains and evaluates;
# - run --teacher: an exits student distils from a full fine-tuned teacher (record's distill block:
#   weights, teacher, layer map, teacher forwards, teacher file SHA-256 in the config); a teacher
#   of another width distils predictions only, and refuses --kd-hidden; bad --teacher/--kd-* input;
# - table --table exits: one row per model and threshold, numbers from the records;
# - plot renders score_vs_flops (one curve of three points, static points for the run records).
# Needs bash, coreutils, perl (JSON::PP), gnuplot.
set -u
. "$(dirname "$0")/lib/e2e.sh" exits "$@"
# field of record LINE (1-based; -1 = last) of a JSONL file: jget FILE LINE a.b.c
jget() {
  perl -MJSON::PP -e '
    my ($f, $n, $path) = @ARGV; open(my $h, "<", $f) or die "$f: $!"; my @l = grep { /\S/ } <$h>;
    my $o = JSON::PP->new->decode($l[$n < 0 ? $n : $n - 1]);
    for my $k (split /\./, $path) { $o = ref $o eq "HASH" ? $o->{$k} : undef; }
    if (!defined $o) { print "null" } elsif (JSON::PP::is_bool($o)) { print $o ? "true" : "false" }
    elsif (ref $o) { print JSON::PP->new->canonical->encode($o) } else { print $o }' "$1" "$2" "$3"
}
lines() { grep -c . "$1" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- data: the label is in the words
words=(the a film was is and it very movie story plot)
mkdir -p "$W/glue/SST-2"
{
  printf 'sentence\tlabel\n'
  for i in $(seq 0 63); do
    if [ $((i % 2)) = 1 ]; then p="good great"; else p="bad awful"; fi
    extra=""
    for k in $(seq 1 $((i % 4))); do extra="$extra ${words[(i + k) % 11]}"; done
    printf '%s %s %s %s%s\t%d\n' "${words[i % 11]}" "$p" "${words[(i * 7) % 11]}" "${words[(i * 3) % 11]}" "$extra" $((i % 2))
  done
} >"$W/glue/SST-2/train.tsv"
head -25 "$W/glue/SST-2/train.tsv" >"$W/glue/SST-2/dev.tsv"
COMMON=(--shape 3,32,2,64 --data-dir "$W/glue" --batch 8 --max-len 24 --threads 1 --quiet)
R="$W/results.jsonl"
E="$W/exits.jsonl"

# ---------------------------------------------------------------- train
"$BIN" run --task sst2 --method exits --steps 60 --lr 3e-3 "${COMMON[@]}" --out "$W/o" --results "$R" >/dev/null 2>"$W/err"
expect "run --method exits: exit" "$?" 0
expect "run record: method" "$(jget "$R" -1 method)" exits
expect "run record: method_desc" "$(jget "$R" -1 method_desc)" "threshold=0,weight=1,init=copy,train_backbone=1,pooler=dense"
expect "run record: its own eval op count is exact" "$(jget "$R" -1 ops.measured.eval_match)" true
TF=$(jget "$R" -1 storage.path)
[ -f "$TF" ] && ok "task file written" || fail "no task file '$TF'"
RUNP=$(jget "$R" -1 predictions.dev)

# ---------------------------------------------------------------- eval at three thresholds
"$BIN" eval "$TF" --data-dir "$W/glue" --out "$W/ev" --exit-threshold 0,0.3,0.6 --results "$E" >"$W/out" 2>"$W/err"
expect "eval --exit-threshold 0,0.3,0.6: exit" "$?" 0
expect "three records" "$(lines "$E")" 3
n=$(jget "$E" 1 data.eval_examples.dev)
prev_flops=""
for k in 1 2 3; do
  t=$(jget "$E" $k exits.threshold)
  expect "record $k: exits.threshold" "$t" "$(echo "0 0.3 0.6" | cut -d' ' -f$k)"
  expect "record $k: config.exit_threshold" "$(jget "$E" $k config.exit_threshold)" "$t"
  expect "record $k: source eval, method exits" "$(jget "$E" $k source)/$(jget "$E" $k method)" eval/exits
  sum=$(jget "$E" $k exits.distribution | perl -MJSON::PP -e 'my $d = decode_json(<STDIN>); my $s = 0; $s += $_ for values %$d; print $s, " ", scalar(keys %$d)')
  expect "record $k: distribution over 3 layers sums to the $n examples" "$sum" "$n 3"
  for f in mean median max min; do
    v=$(jget "$E" $k exits.flops_per_example.$f)
    perl -e 'exit !($ARGV[0] > 0)' "$v" || fail "record $k: flops_per_example.$f '$v'"
  done
  expect "record $k: the eval's instrumented op count equals its counting-only twin" "$(jget "$E" $k ops.measured.eval_match)" true
  expect "record $k: ops.inference_per_example = exits mean" "$(jget "$E" $k ops.inference_per_example.flops.total)" \
    "$(jget "$E" $k exits.flops_per_example.mean)"
  P=$(jget "$E" $k predictions.dev)
  case "$P" in *"-exit$t.dev.predictions.tsv") ok "record $k: prediction file named with the threshold ($P)";;
    *) fail "record $k: prediction file '$P'";; esac
  [ -f "$P" ] && expect "record $k: prediction rows" "$(($(wc -l <"$P") - 1))" "$n" || fail "record $k: no file '$P'"
  acc=$(perl -F'\t' -lane 'next if $.==1; $n++; $c++ if $F[1] eq $F[2]; END { printf "%.17g", $c/$n }' "$P")
  expect "record $k: accuracy from its prediction file == recorded" "$acc" \
    "$(jget "$E" $k metrics.splits.dev.accuracy | perl -ne 'printf "%.17g", $_')"
done
expect "threshold 0: every example runs the 3 layers" "$(jget "$E" 1 exits.distribution)" '{"1":0,"2":0,"3":'"$n"'}'
expect "threshold 0: speedup 1" "$(jget "$E" 1 exits.speedup)" 1
expect "threshold 0: static FLOPs = FLOPs" "$(jget "$E" 1 exits.flops_static)" "$(jget "$E" 1 exits.flops_per_example.mean)"
cmp -s <(cut -f1-3 "$(jget "$E" 1 predictions.dev)") <(cut -f1-3 "$RUNP") && ok "threshold 0: run's predictions" \
  || fail "threshold 0: predictions differ from run's"
ml=$(jget "$E" 3 exits.mean_layer)
perl -e 'exit !($ARGV[0] < 3)' "$ml" && ok "threshold 0.6: examples leave early (mean layer $ml, speedup $(jget "$E" 3 exits.speedup))" \
  || fail "threshold 0.6: nobody left early (mean layer $ml)"
perl -e 'exit !($ARGV[0] <= $ARGV[1])' "$(jget "$E" 3 exits.flops_per_example.mean)" "$(jget "$E" 2 exits.flops_per_example.mean)" \
  && ok "a larger threshold costs no more per example" || fail "threshold 0.6 costs more than 0.3"
grep -q 'exits: mean layer' "$W/out" && ok "eval prints the exit statistics" || fail "no exit statistics printed"

# the same at batch 1, and --json
"$BIN" eval "$TF" --data-dir "$W/glue" --out "$W/ev1" --exit-threshold 0.6 --batch 1 --json >"$W/b1.json" 2>"$W/err"
expect "eval --batch 1 --json: exit" "$?" 0
expect "batch 1: the same exit distribution" "$(perl -MJSON::PP -e 'local $/; my $o = decode_json(<STDIN>); print JSON::PP->new->canonical->encode($o->{thresholds}[0]{exits}{distribution})' <"$W/b1.json")" \
  "$(jget "$E" 3 exits.distribution)"
expect "batch 1: the same FLOPs per example" "$(perl -MJSON::PP -e 'local $/; my $o = decode_json(<STDIN>); print $o->{thresholds}[0]{exits}{flops_per_example}{mean}' <"$W/b1.json")" \
  "$(jget "$E" 3 exits.flops_per_example.mean)"
B1P=$(perl -MJSON::PP -e 'local $/; my $o = decode_json(<STDIN>); print $o->{thresholds}[0]{splits}{dev}{predictions}' <"$W/b1.json")
cmp -s <(cut -f1-3 "$B1P") <(cut -f1-3 "$(jget "$E" 3 predictions.dev)") && ok "batch 1: the same predictions" \
  || fail "batch 1: predictions differ"

# ---------------------------------------------------------------- bad input
"$BIN" eval "$TF" --data-dir "$W/glue" --out "$W/ev" --exit-threshold 0,-0.1 >/dev/null 2>"$W/err"
expect "negative threshold: exit" "$?" 2
grep -q 'exit-threshold' "$W/err" && ok "negative threshold: the message names --exit-threshold" || fail "negative threshold message"
"$BIN" run --task sst2 --method lora --steps 2 "${COMMON[@]}" --out "$W/o" --results "$R" >/dev/null 2>"$W/err"
expect "lora run: exit" "$?" 0
"$BIN" eval "$(jget "$R" -1 storage.path)" --data-dir "$W/glue" --out "$W/ev" --exit-threshold 0.3 >/dev/null 2>"$W/err"
expect "--exit-threshold on a method without exits: exit" "$?" 2
grep -q 'has no exits' "$W/err" && ok "no exits: one clear line" || fail "no exits: message"

# ---------------------------------------------------------------- composition
"$BIN" run --task sst2 --method lora+exits -o exits.train_backbone=0 -o r=4 --steps 20 --lr 3e-3 "${COMMON[@]}" \
  --out "$W/o" --results "$R" >/dev/null 2>"$W/err"
expect "lora+exits (frozen backbone) run: exit" "$?" 0
expect "lora+exits: trainable = lora + exits + head" "$(jget "$R" -1 params.trainable)" \
  "$(perl -e 'print $ARGV[0] + $ARGV[1]' "$(jget "$R" -1 params.method)" "$(jget "$R" -1 params.head)")"
"$BIN" eval "$(jget "$R" -1 storage.path)" --data-dir "$W/glue" --out "$W/ev" --exit-threshold 0,0.6 --results "$E" >/dev/null 2>"$W/err"
expect "lora+exits eval at two thresholds: exit" "$?" 0
expect "lora+exits: record threshold" "$(jget "$E" -1 exits.threshold)/$(jget "$E" -1 method)" "0.6/lora+exits"

# ---------------------------------------------------------------- table --table exits
"$BIN" table "$E" --table exits --format md >"$W/tbl" 2>"$W/err"
expect "table --table exits: exit" "$?" 0
expect "  one row per model and threshold (3 exits + 2 lora+exits)" "$(grep -c '^| sst2 |' "$W/tbl")" 5
row=$(grep '^| sst2 | exits |' "$W/tbl" | sed -n 3p | awk -F'|' '{ gsub(/ /, "", $5); gsub(/ /, "", $6); gsub(/ /, "", $12); print $5 "/" $6 "/" $12 }')
want=$(perl -MJSON::PP -e 'my @l = grep { /\S/ } <STDIN>; my $o = decode_json($l[2]);
  printf "%g/%.1f/%.2fx", $o->{exits}{threshold}, 100 * $o->{metrics}{score}, $o->{exits}{speedup}' <"$E")
expect "  the 0.6 row: threshold / score / speedup from its record" "$row" "$want"

# ---------------------------------------------------------------- distillation from a teacher task file
TR="$W/teacher.jsonl"
"$BIN" run --task sst2 --method full --steps 40 --lr 3e-3 "${COMMON[@]}" --out "$W/t" --results "$TR" >/dev/null 2>"$W/err"
expect "teacher (full fine-tuning) run: exit" "$?" 0
TT=$(jget "$TR" -1 storage.path)
"$BIN" run --task sst2 --method exits --steps 12 --lr 3e-3 "${COMMON[@]}" --out "$W/o" --results "$R" \
  --teacher "$TT" --kd-alpha 0.7 --kd-temp 2 --kd-hidden 0.5 >/dev/null 2>"$W/err"
expect "exits --teacher (prediction + representation): exit" "$?" 0
expect "distill: alpha/temperature/beta" "$(jget "$R" -1 distill.alpha)/$(jget "$R" -1 distill.temperature)/$(jget "$R" -1 distill.beta)" "0.7/2/0.5"
expect "distill: the teacher's method and config id" "$(jget "$R" -1 distill.teacher.method)/$(jget "$R" -1 distill.teacher.config_id)" \
  "full/$(jget "$TR" -1 config_id)"
expect "distill: layer map of equal depths (1-based)" "$(jget "$R" -1 distill.layer_map)" "[1,2,3]"
expect "distill: one teacher forward per training step" "$(jget "$R" -1 distill.teacher_forwards)" 12
expect "config.distill.teacher_sha256 is the teacher file's" "$(jget "$R" -1 config.distill.teacher_sha256)" \
  "$(sha256sum "$TT" | cut -d' ' -f1)"
expect "a run without --teacher has no config.distill" "$(jget "$R" 1 config.distill)" null
expect "teacher forward cost: the teacher's training-free inference at batch x max-len" \
  "$(jget "$R" -1 distill.teacher_forward_per_step.batch)x$(jget "$R" -1 distill.teacher_forward_per_step.seq_len)" 8x24
"$BIN" eval "$(jget "$R" -1 storage.path)" --data-dir "$W/glue" --out "$W/ev" --exit-threshold 0.6 >/dev/null 2>"$W/err"
expect "the distilled student evaluates with --exit-threshold" "$?" 0
"$BIN" run --task sst2 --method full --steps 30 --lr 3e-3 --shape 2,48,2,64 --data-dir "$W/glue" --batch 8 --max-len 24 \
  --threads 1 --quiet --out "$W/t" --results "$TR" >/dev/null 2>"$W/err"
T2=$(jget "$TR" -1 storage.path)
"$BIN" run --task sst2 --method exits --steps 4 "${COMMON[@]}" --out "$W/o" --results "$R" --teacher "$T2" >/dev/null 2>"$W/err"
expect "a teacher of another shape, prediction distillation only: exit" "$?" 0
expect "  its layer map: no representation terms" "$(jget "$R" -1 distill.layer_map)" "[null,null,null]"
"$BIN" run --task sst2 --method exits --steps 4 "${COMMON[@]}" --out "$W/o" --results "$R" --teacher "$T2" --kd-hidden 1 >/dev/null 2>"$W/err"
expect "--kd-hidden with a teacher of another width: exit" "$?" 1
grep -q 'equal widths' "$W/err" && ok "  one line naming the widths" || fail "width mismatch message"
nr=$(lines "$R")
"$BIN" run --task sst2 --method exits --steps 4 "${COMMON[@]}" --out "$W/o" --results "$R" --teacher "$W/none.safetensors" >/dev/null 2>"$W/err"
expect "a missing teacher file: exit" "$?" 1
grep -q 'none.safetensors' "$W/err" && ok "  the message names the file" || fail "missing teacher message"
"$BIN" run --task sst2 --method exits --steps 4 "${COMMON[@]}" --out "$W/o" --kd-alpha 0.5 >/dev/null 2>"$W/err"
expect "--kd-alpha without --teacher: exit" "$?" 2
"$BIN" run --task sst2 --method exits --steps 4 "${COMMON[@]}" --out "$W/o" --teacher "$TT" --kd-alpha 1.5 >/dev/null 2>"$W/err"
expect "--kd-alpha 1.5: exit" "$?" 2
"$BIN" run --task sst2 --method exits --steps 4 "${COMMON[@]}" --out "$W/o" --teacher "$TT" --kd-alpha 0 >/dev/null 2>"$W/err"
expect "--kd-alpha 0 without --kd-hidden (distils nothing): exit" "$?" 2
expect "failed runs appended nothing" "$(lines "$R")" "$nr"

# ---------------------------------------------------------------- plot
"$BIN" plot "$R" "$E" --out "$W/figs" --format png >"$W/out" 2>"$W/err"
expect "plot: exit" "$?" 0
[ -s "$W/figs/score_vs_flops.png" ] && ok "score_vs_flops.png rendered" || fail "no score_vs_flops.png"
D="$W/figs/score_vs_flops.dat"
expect "score_vs_flops.dat: the exits curve's points, by threshold" \
  "$(perl -ne 'print "$1 " if /^"t=([0-9.]+)"/' "$D")" "0 0.3 0.6 0 0.6 "
grep -q '^"exits' "$D" && grep -q '^"lora+exits' "$D" && ok "one curve per configuration (exits, lora+exits)" || fail "curve titles in $D"
grep -q '^"static (no early exit)"' "$D" && ok "static points block (the run records)" || fail "no static block"
for f in score_vs_params score_vs_ops storage task_scores; do
  [ -s "$W/figs/$f.png" ] && ok "$f.png still rendered" || fail "$f.png missing"
done

finish
