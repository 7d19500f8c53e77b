#!/usr/bin/env bash
# End-to-end: `peftbench retrieve` (BM25, and COIL with LoRA over a tiny random backbone, two
# training steps, short texts: seconds) and `peftbench ircompare` on the shared Cranfield
# collection, the retrieval table, and bad input (usage errors exit 2; a missing folder, a
# malformed cranqrel or cran.qry exit 1 with one line naming the file). Records are parsed with
# perl's core JSON::PP.
#   bash tests/e2e_retrieve.sh path/to/peftbench        (from the repo root; ctest does this)
set -u
if [ $# -lt 1 ]; then echo "usage: $0 PEFTBENCH" >&2; exit 2; fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
perl -MJSON::PP -e 1 2>/dev/null || { echo "e2e_retrieve: perl JSON::PP is required" >&2; exit 2; }
DATA="$(pwd)/../shared/data/cranfield"
[ -n "${PEFTBENCH_DATA:-}" ] && DATA="$PEFTBENCH_DATA/cranfield"
if [ ! -r "$DATA/cran.all.1400" ]; then echo "SKIP: no Cranfield collection at $DATA"; exit 0; fi

W="$(mktemp -d "${TMPDIR:-/tmp}/pb-e2e-retrieve.XXXXXX")"
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
if [ -z "${LSAN_OPTIONS:-}" ]; then
  printf 'leak:libsde.so\n' >"$W/lsan.supp"
  export LSAN_OPTIONS="suppressions=$W/lsan.supp:print_suppressions=0"
fi
export OPENBLAS_NUM_THREADS=1
n_ok=0
n_fail=0
ok() { n_ok=$((n_ok + 1)); printf 'ok   %s\n' "$1"; }
fail() { n_fail=$((n_fail + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }
# jget FILE LINE PATH: a value of record LINE (1-based) at a slash path
jget() {
  perl -MJSON::PP -e 'my @l = <STDIN>; my $r = decode_json($l[$ARGV[0] - 1]); my $v = $r;
    for my $k (split m{/}, $ARGV[1]) { $v = ref($v) eq "HASH" ? $v->{$k} : undef; }
    print defined($v) ? (JSON::PP::is_bool($v) ? ($v ? "true" : "false") : $v) : "null";' "$2" "$3" <"$1"
}
# expect NAME CODE NEEDLE CMD...: exit code and a stderr line containing NEEDLE
expect() {
  local name="$1" code="$2" needle="$3"
  shift 3
  "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  if [ "$rc" -ne "$code" ]; then fail "$name" "exit $rc, expected $code: $(head -c 300 "$W/err")"; return; fi
  if ! grep -qF -- "$needle" "$W/err"; then fail "$name" "stderr lacks '$needle': $(head -c 300 "$W/err")"; return; fi
  if [ "$(wc -l <"$W/err")" -ne 1 ]; then fail "$name" "expected one stderr line, got: $(cat "$W/err")"; return; fi
  ok "$name"
}

R="$W/r.jsonl"
O="$W/out.d"
# ---- usage errors (exit 2) and bad files (exit 1)
expect "no --method" 2 "--method is required" "$BIN" retrieve --out "$O"
expect "bad option" 2 "--nope" "$BIN" retrieve --method bm25 --nope
expect "bad number" 2 "--k1" "$BIN" retrieve --method bm25 --k1 x
expect "unknown method" 2 "unknown method" "$BIN" retrieve --method nosuch --data-dir "$DATA" --out "$O"
expect "missing folder" 1 "$W/none: no Cranfield collection" "$BIN" retrieve --method bm25 --data-dir "$W/none" --out "$O"
mkdir -p "$W/bad"
cp "$DATA/cran.all.1400" "$DATA/cran.qry" "$W/bad/"
{ head -n 3 "$DATA/cranqrel"; echo "1 99999 2"; } >"$W/bad/cranqrel"
expect "qrel: unknown document" 1 "$W/bad/cranqrel:4: document 99999 is not in the collection" \
  "$BIN" retrieve --method bm25 --data-dir "$W/bad" --out "$O"
{ head -n 3 "$DATA/cranqrel"; echo "1 184 7"; } >"$W/bad/cranqrel"
expect "qrel: bad code" 1 "$W/bad/cranqrel:4: relevance code 7" "$BIN" retrieve --method bm25 --data-dir "$W/bad" --out "$O"
cp "$DATA/cranqrel" "$W/bad/"
printf 'stray text\n' | cat - "$DATA/cran.qry" >"$W/bad/cran.qry"
expect "qry: text before .I" 1 "$W/bad/cran.qry:1: text before the first .I" "$BIN" retrieve --method bm25 --data-dir "$W/bad" --out "$O"
[ ! -e "$R" ] && ok "no record after errors" || fail "no record after errors" "$R exists"

# ---- BM25
if "$BIN" retrieve --method bm25 --data-dir "$DATA" --out "$O" --results "$R" >"$W/bm25.txt" 2>"$W/err"; then
  ok "bm25 runs"
else
  fail "bm25 runs" "$(cat "$W/err")"
fi
[ "$(jget "$R" 1 task)" = cranfield ] && [ "$(jget "$R" 1 task_family)" = retrieval ] && ok "bm25 record" ||
  fail "bm25 record" "task $(jget "$R" 1 task)"
q=$(jget "$R" 1 metrics/splits/test/queries)
[ "$q" = 50 ] && [ "$(jget "$R" 1 metrics/splits/dev/queries)" = 25 ] && ok "split 25 dev / 50 test" || fail "split" "test $q"
BM_TEST=$(jget "$R" 1 predictions/test)
[ -f "$BM_TEST" ] && [ "$(wc -l <"$BM_TEST")" -eq 51 ] && ok "per-query file (50 queries + header)" || fail "per-query file" "$BM_TEST"
RUN=$(jget "$R" 1 runs/test)
[ "$(wc -l <"$RUN")" -eq 50000 ] && [ "$(head -n 1 "$RUN" | awk '{print $2, $4}')" = "Q0 1" ] && ok "TREC run: top 1000 x 50" ||
  fail "TREC run" "$(wc -l <"$RUN") lines"
# the mean of the per-query column is the record's metric
m=$(awk -F'\t' 'NR > 1 { s += $4; n++ } END { printf "%.6f", s / n }' "$BM_TEST")
r=$(printf '%.6f' "$(jget "$R" 1 metrics/splits/test/ndcg@10)")
[ "$m" = "$r" ] && ok "per-query nDCG@10 averages to the record's ($m)" || fail "per-query mean" "$m vs $r"
"$BIN" retrieve --method bm25 --data-dir "$DATA" --out "$O" --results "$R" >/dev/null 2>&1
B2=$(jget "$R" 2 predictions/test)
[ "$B2" != "$BM_TEST" ] && [ -f "$BM_TEST" ] && ok "a second run gets its own files" || fail "no overwrite" "$B2"

# cross-validation fold: 45 test and 20 dev queries, its own configuration
expect "--fold out of range" 2 "--fold" "$BIN" retrieve --method bm25 --fold 6
"$BIN" retrieve --method bm25 --fold 2 --data-dir "$DATA" --out "$W/folds" --results "$W/folds.jsonl" >/dev/null 2>&1
[ "$(jget "$W/folds.jsonl" 1 metrics/splits/test/queries)" = 45 ] && [ "$(jget "$W/folds.jsonl" 1 metrics/splits/dev/queries)" = 20 ] &&
  [ "$(jget "$W/folds.jsonl" 1 config/split)" = fold-2-of-5 ] && ok "--fold 2: 45 test, 20 dev queries" || fail "--fold" "$(jget "$W/folds.jsonl" 1 config/split)"

# ---- COIL with LoRA over a tiny random backbone
if "$BIN" retrieve --method lora -o r=2 --shape 1,32,2,64 --steps 2 --query-len 12 --doc-len 24 --group 4 \
    --queries 2 --data-dir "$DATA" --out "$O" --results "$R" --threads 1 --quiet >"$W/coil.txt" 2>"$W/err"; then
  ok "coil lora runs"
else
  fail "coil lora runs" "$(cat "$W/err")"
fi
[ "$(jget "$R" 3 retrieval)" = coil ] && [ "$(jget "$R" 3 method)" = lora ] && ok "coil record" || fail "coil record" "$(jget "$R" 3 method)"
[ "$(jget "$R" 3 ops/measured/match)" = true ] && ok "measured op counts == counting-only twins" || fail "ops match" "$(jget "$R" 3 ops/measured/match)"
TF=$(jget "$R" 3 storage/path)
if [ -f "$TF" ] && grep -qa "coil.tok_proj.weight" "$TF" && grep -qa "lora." "$TF" && ! grep -qa '"classifier.weight"' "$TF"; then
  ok "task file: method tensors + projections, no classifier"
else
  fail "task file" "$TF"
fi
ip=$(jget "$R" 3 storage/index_postings)
[ "$ip" -gt 1400 ] 2>/dev/null && ok "index holds $ip postings" || fail "index" "$ip"
ne=$(jget "$R" 3 train/steps)
[ "$ne" = 2 ] && ok "trained 2 steps through the trainer" || fail "steps" "$ne"

# ---- the task file evaluated again (--from): the same rankings, query by query
if "$BIN" retrieve --from "$TF" --data-dir "$DATA" --out "$O" --results "$R" --threads 1 --quiet >/dev/null 2>"$W/err"; then
  F4=$(jget "$R" 4 predictions/test)
  if cmp -s "$F4" "$(jget "$R" 3 predictions/test)" && cmp -s "$(jget "$R" 4 runs/test)" "$(jget "$R" 3 runs/test)" &&
    [ "$(jget "$R" 4 train/steps)" = 0 ] && [ "$(jget "$R" 4 storage/path)" = "$TF" ]; then
    ok "--from TASKFILE reproduces the run and the metrics exactly"
  else
    fail "--from" "$F4 differs"
  fi
else
  fail "--from" "$(cat "$W/err")"
fi
expect "--from: not a task file" 1 "safetensors" "$BIN" retrieve --from "$R" --data-dir "$DATA" --out "$O"
expect "--from: another method" 2 "holds method lora, not full" "$BIN" retrieve --from "$TF" --method full --data-dir "$DATA" --out "$O"

# the token LayerNorm: stored in the task file, and --from restores it
if "$BIN" retrieve --method bitfit --token-act layernorm --shape 1,32,2,64 --steps 1 --query-len 12 --doc-len 24 \
    --group 4 --queries 2 --data-dir "$DATA" --out "$W/ln" --results "$W/ln.jsonl" --threads 1 --quiet >/dev/null 2>"$W/err"; then
  LT=$(jget "$W/ln.jsonl" 1 storage/path)
  "$BIN" retrieve --from "$LT" --data-dir "$DATA" --out "$W/ln" --results "$W/ln.jsonl" --threads 1 --quiet >/dev/null 2>&1
  if grep -qa "coil.tok_norm.weight" "$LT" && [ "$(jget "$W/ln.jsonl" 2 config/token_act)" = layernorm ] &&
    cmp -s "$(jget "$W/ln.jsonl" 1 predictions/test)" "$(jget "$W/ln.jsonl" 2 predictions/test)"; then
    ok "--token-act layernorm: stored, restored by --from"
  else
    fail "--token-act layernorm" "$LT"
  fi
else
  fail "--token-act layernorm" "$(cat "$W/err")"
fi
expect "--token-act bad" 2 "--token-act" "$BIN" retrieve --method lora --token-act tanh

# ---- significance over queries
CO_TEST=$(jget "$R" 3 predictions/test)
if "$BIN" ircompare --a "$BM_TEST" --b "$CO_TEST" --samples 2000 --json >"$W/cmp.json" 2>"$W/err"; then
  n=$(perl -MJSON::PP -e 'local $/; print decode_json(<STDIN>)->{queries}' <"$W/cmp.json")
  [ "$n" = 50 ] && ok "ircompare over 50 queries" || fail "ircompare" "$n"
else
  fail "ircompare" "$(cat "$W/err")"
fi
# identical systems: difference 0, p = 1
"$BIN" ircompare --a "$BM_TEST" --b "$B2" --samples 500 --json >"$W/same.json" 2>/dev/null
p=$(perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); print "$j->{diff} $j->{p_randomisation} $j->{p_t}"' <"$W/same.json")
[ "$p" = "0 1 1" ] && ok "identical runs: diff 0, p 1" || fail "identical runs" "$p"
expect "ircompare: bad metric" 2 "--metric" "$BIN" ircompare --a "$BM_TEST" --b "$B2" --metric nope
printf 'x\ty\n' >"$W/notpq.tsv"
expect "ircompare: not a per-query file" 1 "$W/notpq.tsv:1: not a per-query metrics file" "$BIN" ircompare --a "$W/notpq.tsv" --b "$B2"
DEV=$(jget "$R" 1 predictions/dev)
expect "ircompare: different queries" 1 "list different queries" "$BIN" ircompare --a "$DEV" --b "$B2"

# ---- table
if "$BIN" table "$R" >"$W/table.md" 2>"$W/err" && grep -q "Retrieval on Cranfield" "$W/table.md" &&
  grep -q "^| bm25 " "$W/table.md" && grep -q "^| lora " "$W/table.md"; then
  ok "table: retrieval rows"
else
  fail "table" "$(cat "$W/err" "$W/table.md" | head -20)"
fi

echo "$n_ok passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
