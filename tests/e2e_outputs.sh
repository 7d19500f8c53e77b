#!/usr/bin/env bash
# End-to-end: what a researcher gets out of `run` and `eval` (issue 13).
#   bash tests/e2e_outputs.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - per-example prediction files for dev (and --test), named in the record, whose rows give
#   back the recorded metric exactly, with empty gold columns on test splits;
# - eval --json at full precision equals the record; eval --split test; eval --model DIR of an
#   HF BertForSequenceClassification folder as it is; a folder without a head is refused;
# - the head: loaded from the checkpoint or initialised, said on stderr and in the record; a
#   head of the wrong shape is refused unless --new-head;
# - task files never clobber: another config or the same config again get new names, and the
#   earlier files stay byte-identical;
# - --data-seed fixes the training subsample independently of --seed;
# - exit codes: 2 only for usage errors, 1 for bad files;
# - provenance: commit + dirty flag compiled in, vocab path + SHA-256, casing.
# - composition: run --method lora+bitfit, eval of its task file gives the recorded score and
#   predictions (also --merge); full+lora is a usage error; `methods` explains composition.
# Inputs: the tiny fixture (tests/fixtures/tiny_bert: 2 layers, d=32, a 3-label head) and small
# official-layout SST-2 and MNLI folders written here. Needs bash, coreutils, perl (JSON::PP).
set -u
TINY=tests/fixtures/tiny_bert
[ -f "$TINY/model.safetensors" ] || { echo "e2e_outputs: run from the repo root" >&2; exit 2; }
. "$(dirname "$0")/lib/e2e.sh" out "$@"
# jq-like field access on the last record of a JSONL file (or a JSON file): jget FILE a.b.c
jget() {
  perl -MJSON::PP -MB -e '
    my ($f, $path) = @ARGV; open(my $h, "<", $f) or die "$f: $!"; local $/; my $t = <$h>;
    my @l = grep { /\S/ } split /\n(?=\{)/, $t; my $o = JSON::PP->new->decode($l[-1]);
    for my $k (split /\./, $path) { $o = ref $o eq "HASH" ? $o->{$k} : undef; }
    if (!defined $o) { print "null" } elsif (JSON::PP::is_bool($o)) { print $o ? "true" : "false" }
    elsif (ref $o) { print JSON::PP->new->canonical->encode($o) }
    elsif (B::svref_2object(\$o)->FLAGS & (B::SVp_NOK | B::SVp_IOK) && $o =~ /[.eE]/) { printf "%.17g", $o }
    else { print $o }' "$1" "$2"
}

# ---------------------------------------------------------------- data
words=(the a good bad film was is and it not very movie great story plot)
mkdir -p "$W/glue/SST-2" "$W/glue/MNLI"
{
  printf 'sentence\tlabel\n'
  for i in $(seq 0 47); do
    printf '%s %s %s %s\t%d\n' "${words[i % 15]}" "${words[(i * 7) % 15]}" "${words[(i * 3) % 15]}" \
      "${words[(i * 11) % 15]}" $((i % 2))
  done
} >"$W/glue/SST-2/train.tsv"
head -13 "$W/glue/SST-2/train.tsv" >"$W/glue/SST-2/dev.tsv"
{
  printf 'index\tsentence\n'
  for i in $(seq 0 6); do printf '%d\t%s %s film\n' "$i" "${words[i]}" "${words[(i * 4) % 15]}"; done
} >"$W/glue/SST-2/test.tsv"
labs=(entailment neutral contradiction)
mnli_row() { # mnli_row I NLABELCOLS
  local i=$1 k
  printf '%d\t%d\t%de\tfiction\t(x)\t(y)\t(S x)\t(S y)\t%s %s film\t%s %s story' "$i" "$i" "$i" \
    "${words[i % 15]}" "${words[(i * 2) % 15]}" "${words[(i * 5) % 15]}" "${words[(i * 3) % 15]}"
  for k in $(seq 1 "$2"); do printf '\t%s' "${labs[i % 3]}"; done
  printf '\t%s\n' "${labs[i % 3]}"
}
H10='index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2'
{ printf "$H10"'\tlabel1\tgold_label\n'; for i in $(seq 0 23); do mnli_row "$i" 1; done; } >"$W/glue/MNLI/train.tsv"
for sp in dev_matched dev_mismatched; do
  { printf "$H10"'\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n'; for i in $(seq 0 8); do mnli_row "$i" 5; done; } \
    >"$W/glue/MNLI/$sp.tsv"
done

LOUD=(--model "$TINY" --data-dir "$W/glue" --batch 8 --max-len 24 --threads 1)
COMMON=("${LOUD[@]}" --quiet)
R="$W/results.jsonl"

# ---------------------------------------------------------------- head: refused, new, loaded
"$BIN" run --task sst2 --method lora --epochs 1 "${COMMON[@]}" --out "$W/o1" --results "$R" >/dev/null 2>"$W/err"
rc=$?
expect "wrong-shaped head refused: exit" "$rc" 1
grep -q 'classifier.weight \[3, 32\], the task needs \[2, 32\].*--new-head' "$W/err" && ok "wrong-shaped head: message names both shapes and --new-head" \
  || fail "wrong-shaped head: message"
[ ! -e "$R" ] && [ -z "$(ls -A "$W/o1" 2>/dev/null)" ] && ok "wrong-shaped head: nothing written" || fail "wrong-shaped head: files written"

"$BIN" run --task sst2 --method lora --epochs 1 --new-head "${COMMON[@]}" --out "$W/o1" --results "$R" >/dev/null 2>"$W/err"
expect "--new-head run: exit" "$?" 0
expect "--new-head: record head.source" "$(jget "$R" head.source)" initialised
"$BIN" run --task mnli --method lora --epochs 1 "${COMMON[@]}" --out "$W/o1" --results "$R" 2>"$W/err" >/dev/null
expect "mnli run (3 labels): exit" "$?" 0
expect "fitting head: record head.source" "$(jget "$R" head.source)" checkpoint
"$BIN" run --task mnli --method lora --epochs 1 "${LOUD[@]}" --out "$W/o1" >/dev/null 2>"$W/err"
grep -q '^head: loaded from .*tiny_bert/model.safetensors' "$W/err" && ok "stderr says the head was loaded" || fail "stderr head line"

# ---------------------------------------------------------------- predictions
P=$(jget "$R" predictions.dev_matched)
[ -f "$P" ] && ok "record names the dev_matched predictions" || fail "no predictions file '$P'"
expect "predictions header" "$(head -1 "$P")" "$(printf 'index\tgold\tprediction\tlogit_entailment\tlogit_neutral\tlogit_contradiction')"
expect "predictions rows" "$(($(wc -l <"$P") - 1))" 9
acc=$(perl -F'\t' -lane 'next if $.==1; $n++; $c++ if $F[1] eq $F[2]; END { printf "%.17g", $c/$n }' "$P")
want=$(jget "$R" metrics.splits.dev_matched.accuracy)
expect "accuracy from the prediction file == recorded accuracy" "$acc" "$want"
argmax_ok=$(perl -F'\t' -lane 'next if $.==1; my @l=@F[3..5]; my $b=0; for (1..2) { $b=$_ if $l[$_] > $l[$b] }
  my @n=qw(entailment neutral contradiction); print "bad $." if $n[$b] ne $F[2]' "$P")
expect "prediction = argmax of the logits" "$argmax_ok" ""

# eval of the task file: --json at full precision equals the record
TF=$(jget "$R" storage.path)
"$BIN" eval "$TF" --data-dir "$W/glue" --out "$W/ev" --json >"$W/ev.json" 2>"$W/err"
expect "eval --json: exit" "$?" 0
expect "eval --json dev_matched accuracy == record (exact)" "$(jget "$W/ev.json" splits.dev_matched.metrics.accuracy)" \
  "$(jget "$R" metrics.splits.dev_matched.accuracy)"
EP=$(jget "$W/ev.json" splits.dev_matched.predictions)
cmp -s <(cut -f1-3 "$EP") <(cut -f1-3 "$P") && ok "eval's predictions = run's predictions" || fail "eval predictions differ from run's"
"$BIN" eval "$TF" --data-dir "$W/glue" --out "$W/ev" --json >"$W/ev2.json" 2>"$W/err"
[ "$(jget "$W/ev2.json" splits.dev_matched.predictions)" != "$EP" ] && cmp -s "$EP" "$(jget "$W/ev2.json" splits.dev_matched.predictions)" \
  && ok "a second eval writes new prediction files, the first kept" || fail "second eval prediction file"

# --test: unlabelled test split, empty gold, index 0..n-1
R2="$W/r2.jsonl"
"$BIN" run --task sst2 --method adapter --epochs 1 --new-head --test "${COMMON[@]}" --out "$W/o2" --results "$R2" >/dev/null 2>"$W/err"
expect "run --test: exit" "$?" 0
TP=$(jget "$R2" predictions.test)
expect "test predictions: index column" "$(cut -f1 "$TP" | tail -n +2 | tr '\n' ' ')" "0 1 2 3 4 5 6 "
expect "test predictions: gold column empty" "$(cut -f2 "$TP" | tail -n +2 | sort -u)" ""
"$BIN" eval "$(jget "$R2" storage.path)" --split test --data-dir "$W/glue" --out "$W/ev" --json >"$W/evt.json" 2>"$W/err"
expect "eval --split test: exit" "$?" 0
expect "eval --split test: metrics null" "$(jget "$W/evt.json" splits.test.metrics)" null
cmp -s <(cut -f1,3 "$(jget "$W/evt.json" splits.test.predictions)") <(cut -f1,3 "$TP") && ok "eval --split test = run --test predictions" \
  || fail "eval --split test predictions differ"

# ---------------------------------------------------------------- any checkpoint: eval --model
"$BIN" eval --model "$TINY" --task mnli --data-dir "$W/glue" --max-len 24 --out "$W/ev" --json >"$W/hf.json" 2>"$W/err"
expect "eval --model (HF head): exit" "$?" 0
expect "eval --model: kind" "$(jget "$W/hf.json" kind)" hf-checkpoint
HP=$(jget "$W/hf.json" splits.dev_matched.predictions)
expect "eval --model: predictions rows" "$(($(wc -l <"$HP") - 1))" 9
"$BIN" eval --model "$TINY" --task sst2 --data-dir "$W/glue" --out "$W/ev" >/dev/null 2>"$W/err"
expect "eval --model with a head of another shape: exit" "$?" 1
# a head saved in another label order (id2label) is reordered into the task's order
mkdir -p "$W/perm"
cp "$TINY/model.safetensors" "$TINY/vocab.txt" "$W/perm/"
perl -0pe 's/"0": "LABEL_0",\s*"1": "LABEL_1",\s*"2": "LABEL_2"/"0": "contradiction", "1": "Entailment", "2": "neutral"/' \
  "$TINY/config.json" >"$W/perm/config.json"
"$BIN" eval --model "$W/perm" --task mnli --data-dir "$W/glue" --max-len 24 --out "$W/ev" --json >"$W/perm.json" 2>"$W/err"
expect "eval --model, permuted id2label: exit" "$?" 0
PP=$(jget "$W/perm.json" splits.dev_matched.predictions)
# original rows (generic labels, task order) L0 L1 L2 = entailment neutral contradiction;
# permuted file: entailment = row 1, neutral = row 2, contradiction = row 0
expect "permuted head: logits reordered" "$(cut -f4-6 "$PP" | tail -n +2)" "$(cut -f4-6 "$HP" | tail -n +2 | awk -F'\t' -v OFS='\t' '{print $2, $3, $1}')"
grep -q 'entailment=row 1 neutral=row 2 contradiction=row 0' "$W/perm.json" && ok "permuted head: label_map recorded" || fail "label_map note"
perl -0pe 's/"0": "LABEL_0"/"0": "positive"/' "$TINY/config.json" >"$W/perm/config.json"
"$BIN" eval --model "$W/perm" --task mnli --data-dir "$W/glue" --max-len 24 --out "$W/ev" >/dev/null 2>"$W/err"
expect "id2label names that are not the task's: exit 1" "$?" 1

mkdir -p "$W/nohead"
cp "$TINY/config.json" "$TINY/vocab.txt" "$W/nohead/"
perl -e '
  use JSON::PP; my ($in, $out) = @ARGV; open(my $h, "<:raw", $in) or die; read($h, my $l8, 8); my $n = unpack("Q<", $l8);
  read($h, my $hdr, $n); my $j = JSON::PP->new->decode($hdr); local $/; my $data = <$h>; my %o; my $off = 0; my $body = "";
  for my $k (sort grep { $_ ne "__metadata__" && !/^classifier/ } keys %$j) { my ($a, $b) = @{$j->{$k}{data_offsets}};
    $body .= substr($data, $a, $b - $a); $o{$k} = { %{$j->{$k}}, data_offsets => [$off, $off + $b - $a] }; $off += $b - $a; }
  my $t = JSON::PP->new->canonical->encode(\%o); $t .= " " x ((8 - length($t) % 8) % 8);
  open(my $w, ">:raw", $out) or die; print $w pack("Q<", length $t), $t, $body;' "$TINY/model.safetensors" "$W/nohead/model.safetensors"
"$BIN" eval --model "$W/nohead" --task mnli --data-dir "$W/glue" --out "$W/ev" >/dev/null 2>"$W/err"
rc=$?
expect "eval --model without a head: exit" "$rc" 1
grep -q 'nohead: no classifier head' "$W/err" && ok "eval --model without a head: message" || fail "eval --model without a head: message"
"$BIN" eval --model "$W/nohead" --data-dir "$W/glue" >/dev/null 2>"$W/err"
expect "eval --model without --task: usage error" "$?" 2

# ---------------------------------------------------------------- task files never clobber
R3="$W/r3.jsonl"
run3() { "$BIN" run --task sst2 --method lora --epochs 1 --new-head "${COMMON[@]}" --out "$W/o3" --results "$R3" "$@" >/dev/null 2>"$W/err"; }
run3 -o r=8 && F8=$(jget "$R3" storage.path) && S8=$(sha256sum "$F8")
run3 -o r=4 && F4=$(jget "$R3" storage.path)
[ "$F8" != "$F4" ] && ok "r=8 and r=4 get different task files" || fail "r=8 and r=4 share $F8"
run3 -o r=8 && F8b=$(jget "$R3" storage.path)
[ "$F8b" != "$F8" ] && [ "$F8b" != "$F4" ] && ok "the same config and seed again: a new name ($(basename "$F8b"))" || fail "rerun reused $F8b"
expect "the first r=8 task file is unchanged" "$(sha256sum "$F8")" "$S8"
cp -r "$W/glue" "$W/glue_copy"
"$BIN" run --task sst2 --method lora --epochs 1 --new-head "${COMMON[@]}" --data-dir "$W/glue_copy" --out "$W/o3" --results "$R3" -o r=8 >/dev/null 2>"$W/err"
expect "the same data at another path: the same config id" "$(jget "$R3" config_id)" "$(perl -ne 'print $1 if $. == 1 && /"config_id":"([0-9a-f]{8})"/' "$R3")"
expect "config ids of r=8 and r=4 differ" "$(perl -ne 'print "$1 " if /"config_id":"([0-9a-f]{8})"/' "$R3" | awk '{print ($1 != $2 && $1 == $3)}')" 1

# --skip-done: a sweep resumes; only runs not in the results file train
R5="$W/r5.jsonl"
run5() { "$BIN" run --task sst2 --method lora --steps 2 --new-head --skip-done "${COMMON[@]}" --out "$W/o5s" --results "$R5" "$@" >/dev/null 2>"$W/err"; }
run5 --seed 3; run5 --seed 3; rc=$?; run5 --seed 4
expect "--skip-done: the repeated run exits 0" "$rc" 0
expect "--skip-done: 2 records for 3 calls (seeds 3, 3, 4)" "$(grep -c '' "$R5")" 2
expect "--skip-done: 2 task files" "$(ls "$W/o5s"/*.safetensors | wc -l)" 2

# ---------------------------------------------------------------- seeds: --data-seed
R4="$W/r4.jsonl"
run4() { "$BIN" run --task sst2 --method layerconnect --steps 1 --max-train 16 --new-head "${COMMON[@]}" --out "$W/o4" --results "$R4" "$@" >/dev/null 2>"$W/err"; jget "$R4" data.train_subset; }
a=$(run4 --seed 1); b=$(run4 --seed 2); c=$(run4 --seed 1 --data-seed 5)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "--seed 1 and 2 train on the same subsample ($a)" || fail "subsample depends on --seed ($a vs $b)"
[ "$c" != "$a" ] && ok "--data-seed 5 draws another subsample" || fail "--data-seed has no effect"

# ---------------------------------------------------------------- composition: --method lora+bitfit
R6="$W/r6.jsonl"
"$BIN" run --task sst2 --method lora+bitfit -o r=4 -o bitfit.biases=query,layernorm,pooler --steps 3 --new-head \
  "${COMMON[@]}" --out "$W/o6" --results "$R6" >/dev/null 2>"$W/err"
expect "run --method lora+bitfit: exit" "$?" 0
expect "lora+bitfit: the record's method" "$(jget "$R6" method)" lora+bitfit
expect "lora+bitfit: method_desc, keys prefixed by their method" "$(jget "$R6" method_desc)" \
  "lora.r=4,lora.alpha=16,lora.dropout=0,lora.targets=query+value,lora.init=kaiming,bitfit.biases=query+layernorm+pooler"
TF6=$(jget "$R6" storage.path)
"$BIN" eval "$TF6" --data-dir "$W/glue" --out "$W/ev6" --json >"$W/ev6.json" 2>"$W/err"
expect "eval of the lora+bitfit task file: exit" "$?" 0
expect "eval lora+bitfit: dev accuracy == record (exact)" "$(jget "$W/ev6.json" splits.dev.metrics.accuracy)" \
  "$(jget "$R6" metrics.splits.dev.accuracy)"
cmp -s <(cut -f1-3 "$(jget "$W/ev6.json" splits.dev.predictions)") <(cut -f1-3 "$(jget "$R6" predictions.dev)") \
  && ok "eval lora+bitfit: predictions = run's" || fail "eval lora+bitfit predictions differ from run's"
"$BIN" eval "$TF6" --merge --data-dir "$W/glue" --out "$W/ev6" --json >"$W/ev6m.json" 2>"$W/err"
expect "eval --merge of lora+bitfit: exit" "$?" 0
cmp -s <(cut -f1-3 "$(jget "$W/ev6m.json" splits.dev.predictions)") <(cut -f1-3 "$(jget "$R6" predictions.dev)") \
  && ok "eval --merge lora+bitfit: predictions = run's" || fail "eval --merge lora+bitfit predictions differ"
"$BIN" run --task sst2 --method full+lora "${COMMON[@]}" --steps 1 --out "$W/o6" >/dev/null 2>"$W/err"
expect "run --method full+lora: usage error" "$?" 2
grep -q "cannot be combined" "$W/err" && ok "full+lora: says why" || fail "full+lora message"
"$BIN" methods | grep -q "^composition: join methods with '+'" && ok "peftbench methods explains composition" \
  || fail "peftbench methods lacks the composition line"

# ---------------------------------------------------------------- exit codes and provenance
m="$W/m_missing"; mkdir -p "$m"; cp "$TINY/config.json" "$TINY/vocab.txt" "$m/"
perl -e 'open(my $h,"<:raw",$ARGV[0]); local $/; my $d=<$h>; $d =~ s/bert\.pooler\.dense\.bias/bert.pooler.dense.bia_/; open(my $w,">:raw",$ARGV[1]); print $w $d' \
  "$TINY/model.safetensors" "$m/model.safetensors"
"$BIN" run --task mnli --method lora --steps 1 --model "$m" --data-dir "$W/glue" --max-len 24 --quiet --out "$W/o5" >/dev/null 2>"$W/err"
expect "missing tensor: exit 1 (a bad file, not a usage error)" "$?" 1
"$BIN" run --task nosuch --method lora >/dev/null 2>&1
expect "unknown task: exit 2" "$?" 2
"$BIN" run --task sst2 --method nosuch >/dev/null 2>&1
expect "unknown method: exit 2" "$?" 2
[[ "$(jget "$R" commit)" =~ ^([0-9a-f]{40}|null)$ ]] && ok "commit recorded ($(jget "$R" commit | head -c 8))" || fail "commit field"
[[ "$(jget "$R" commit_dirty)" =~ ^(true|false|null)$ ]] && ok "commit_dirty recorded ($(jget "$R" commit_dirty))" || fail "commit_dirty field"
expect "vocab SHA-256 recorded" "$(jget "$R" tokenizer.vocab_sha256)" "$(sha256sum "$TINY/vocab.txt" | cut -d' ' -f1)"
expect "config carries the vocab hash" "$(jget "$R" config.vocab_sha256)" "$(jget "$R" tokenizer.vocab_sha256)"

echo "e2e_outputs: $n_ok ok, $n_fail failed"
[ "$n_fail" -eq 0 ]
