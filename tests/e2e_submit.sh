#!/usr/bin/env bash
# End-to-end: `peftbench submit` writes the GLUE leaderboard files from test-split predictions.
#   bash tests/e2e_submit.sh path/to/peftbench        (from the repo root; ctest does this)
#
# Through the built CLI: the command is wired in (usage, unknown-command list, --help); a small
# data folder in the official layouts (RTE, WNLI, STS-B, MNLI test_matched/test_mismatched, the
# diagnostic set) and prediction files in the run/eval format written here give byte-exact
# RTE.tsv WNLI.tsv STS-B.tsv MNLI-m.tsv MNLI-mm.tsv AX.tsv, also from a results JSONL; bad input
# exits 1 with one stderr line naming the file and writes nothing; usage errors exit 2; with the
# shared GLUE data the row count is that of its test file. (tests/test_submit.c covers every
# task and every check in detail.) Only bash and coreutils are used.
set -u
if [ $# -lt 1 ]; then echo "usage: $0 PEFTBENCH" >&2; exit 2; fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
W="$(mktemp -d "${TMPDIR:-/tmp}/pb-e2e-submit.XXXXXX")"
trap 'rm -rf "$W"' EXIT
unset PEFTBENCH_DATA
if [ -z "${LSAN_OPTIONS:-}" ]; then # sanitizer builds: libsde's own leaks are not ours
  printf 'leak:libsde.so\n' >"$W/lsan.supp"
  export LSAN_OPTIONS="suppressions=$W/lsan.supp:print_suppressions=0"
fi
n_ok=0
n_fail=0
ok() { n_ok=$((n_ok + 1)); }
fail() { echo "FAIL $*"; n_fail=$((n_fail + 1)); }

# expect NAME CODE PATTERN -- ARGS...: exit CODE; with CODE != 0, exactly one stderr line
# matching PATTERN (grep -E)
expect() {
  local name=$1 code=$2 pat=$3
  shift 4
  "$BIN" submit "$@" >"$W/stdout" 2>"$W/stderr"
  local rc=$?
  if [ "$rc" != "$code" ]; then fail "$name: exit $rc, want $code: $(cat "$W/stderr")"; return; fi
  if [ "$code" != 0 ]; then
    local n
    n=$(grep -c '' "$W/stderr")
    if [ "$n" != 1 ]; then fail "$name: $n stderr lines, want 1: $(cat "$W/stderr")"; return; fi
    if ! grep -Eq -- "$pat" "$W/stderr"; then fail "$name: stderr lacks /$pat/: $(cat "$W/stderr")"; return; fi
  fi
  if [ "$code" != 0 ]; then echo "  $name -> $rc: $(cat "$W/stderr")"; else echo "  $name -> 0"; fi
  ok
}

# same FILE EXPECTED-TEXT (printf format)
same() {
  printf "$2" >"$W/want"
  if cmp -s "$1" "$W/want"; then ok; else fail "$1: bytes differ: $(od -c "$1" | head -5)"; fi
}

# ---------------------------------------------------------------- the command is wired in
"$BIN" >/dev/null 2>"$W/usage"
grep -q '^  submit ' "$W/usage" && ok || fail "peftbench usage lacks submit"
"$BIN" nosuch 2>"$W/unk"
grep -q 'submit' "$W/unk" && ok || fail "unknown-command message lacks submit"
"$BIN" submit --help >"$W/help" && grep -q 'TASK=PREDICTIONS.tsv' "$W/help" && grep -q '1 = entailment' "$W/help" &&
  ok || fail "submit --help"

# ---------------------------------------------------------------- data + predictions
D="$W/data"
mkdir -p "$D/RTE" "$D/WNLI" "$D/STS-B" "$D/MNLI" "$D/diagnostic" "$W/p"
printf 'index\tsentence1\tsentence2\n0\tA man sat.\tA man stood.\n1\tOil fell.\tOil dropped.\n2\tIt rained.\tIt was dry.\n' >"$D/RTE/test.tsv"
printf 'index\tsentence1\tsentence2\n0\tThe drain is clogged with hair.\tThe hair is clogged.\n1\tJane knocked.\tSusan knocked.\n' >"$D/WNLI/test.tsv"
printf 'index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n' >"$D/STS-B/test.tsv"
printf '%s\tmain-captions\tMSRvid\t2012test\t00%s\tnone\tnone\tA girl.\tA woman.\n' 0 24 1 33 2 45 >>"$D/STS-B/test.tsv"
H='index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\n'
printf "${H}0\t1\t1n\tslate\tx\ty\tx\ty\tHe spoke.\tHe said it.\n1\t2\t2e\tfiction\tx\ty\tx\ty\tShe ran.\tShe moved.\n" >"$D/MNLI/test_matched.tsv"
printf "${H}0\t3\t3c\tletters\tx\ty\tx\ty\tIt helped.\tIt did not help.\n" >"$D/MNLI/test_mismatched.tsv"
printf 'index\tsentence1\tsentence2\n0\tThe cat sat on the mat.\tThe cat did not sit on the mat.\n1\tThe cat did not sit on the mat.\tThe cat sat on the mat.' >"$D/diagnostic/diagnostic.tsv"

printf 'index\tgold\tprediction\tlogit_entailment\tlogit_not_entailment\n1\t\tentailment\t2\t-1\n0\t\tnot_entailment\t-0.5\t0.5\n2\t\tnot_entailment\t0\t0\n' >"$W/p/rte.tsv"
# WNLI: 1 = entailment (logit_1 the larger), written as 1, never as a string
printf 'index\tgold\tprediction\tlogit_0\tlogit_1\n0\t\t1\t-1\t1\n1\t\t0\t1\t-1\n' >"$W/p/wnli.tsv"
printf 'index\tgold\tprediction\n0\t\t-0.2\n1\t\t3.14159\n2\t\t5.0004\n' >"$W/p/stsb.tsv"
M='index\tgold\tprediction\tlogit_entailment\tlogit_neutral\tlogit_contradiction\n'
printf "${M}0\t\tneutral\t0\t1\t0\n1\t\tentailment\t1\t0\t0\n" >"$W/p/mnlim.tsv"
printf "${M}0\t\tcontradiction\t0\t0\t1\n" >"$W/p/mnlimm.tsv"
printf "${M}0\t\tcontradiction\t0\t0\t1\n1\t\tentailment\t1\t0\t0\n" >"$W/p/ax.tsv"

W_RTE='index\tprediction\n0\tnot_entailment\n1\tentailment\n2\tnot_entailment\n'
W_WNLI='index\tprediction\n0\t1\n1\t0\n'
W_STSB='index\tprediction\n0\t0.000\n1\t3.142\n2\t5.000\n'
W_MNLIM='index\tprediction\n0\tneutral\n1\tentailment\n'
W_MNLIMM='index\tprediction\n0\tcontradiction\n'
W_AX='index\tprediction\n0\tcontradiction\n1\tentailment\n'

echo "six files from TASK=FILE sources"
S="$W/sub"
expect "6 of 11" 0 "" -- --out "$S" --data-dir "$D" rte="$W/p/rte.tsv" WNLI="$W/p/wnli.tsv" STS-B="$W/p/stsb.tsv" \
  mnli-m="$W/p/mnlim.tsv" mnli-mm="$W/p/mnlimm.tsv" ax="$W/p/ax.tsv"
same "$S/RTE.tsv" "$W_RTE"
same "$S/WNLI.tsv" "$W_WNLI"
same "$S/STS-B.tsv" "$W_STSB"
same "$S/MNLI-m.tsv" "$W_MNLIM"
same "$S/MNLI-mm.tsv" "$W_MNLIMM"
same "$S/AX.tsv" "$W_AX"
grep -q 'wrote 6 of 11 files; missing: CoLA.tsv SST-2.tsv MRPC.tsv QNLI.tsv QQP.tsv' "$W/stdout" && ok ||
  fail "report of the missing files: $(cat "$W/stdout")"
[ "$(ls "$S" | wc -l)" = 6 ] && ok || fail "exactly six files in $S: $(ls "$S")"

echo "refusals"
expect "existing file, no --force" 1 "RTE.tsv exists.*--force" -- --out "$S" --data-dir "$D" rte="$W/p/rte.tsv"
same "$S/RTE.tsv" "$W_RTE"
expect "existing file, --force" 0 "" -- --out "$S" --data-dir "$D" --force rte="$W/p/rte.tsv"
printf 'index\tgold\tprediction\tlogit_entailment\tlogit_not_entailment\n0\tentailment\tentailment\t1\t0\n1\t\tentailment\t1\t0\n2\t\tentailment\t1\t0\n' >"$W/p/rte_dev.tsv"
expect "gold present" 1 "rte_dev.tsv:2: gold is 'entailment'" -- --out "$W/s2" --data-dir "$D" rte="$W/p/rte_dev.tsv" wnli="$W/p/wnli.tsv"
[ ! -e "$W/s2/WNLI.tsv" ] && ok || fail "WNLI.tsv written despite the refusal"
expect "RTE header for WNLI" 1 "rte.tsv:1: header" -- --out "$W/s2" --data-dir "$D" wnli="$W/p/rte.tsv"
head -n 3 "$W/p/rte.tsv" >"$W/p/rte2.tsv"
expect "wrong count" 1 "rte2.tsv: 2 prediction rows, but RTE.tsv has 3 test rows" -- --out "$W/s2" --data-dir "$D" rte="$W/p/rte2.tsv"
expect "--require-all" 1 "require-all.*CoLA.tsv" -- --out "$W/s2" --data-dir "$D" --require-all rte="$W/p/rte.tsv"
[ ! -e "$W/s2" ] || [ -z "$(ls "$W/s2")" ] && ok || fail "files written despite refusals: $(ls "$W/s2")"

echo "usage errors"
expect "no --out" 2 "--out" -- rte="$W/p/rte.tsv"
expect "no SOURCE" 2 "SOURCE" -- --out "$W/s3"
expect "unknown task" 2 "unknown task 'squad'" -- --out "$W/s3" squad="$W/p/rte.tsv"
expect "unknown option" 2 "unknown option '--nope'" -- --out "$W/s3" --nope rte="$W/p/rte.tsv"

echo "results JSONL"
mkdir -p "$W/runs"
cp "$W/p/rte.tsv" "$W/runs/rte.test.predictions.tsv"
cp "$W/p/ax.tsv" "$W/runs/mnli.ax.predictions.tsv"
cat >"$W/runs/results.jsonl" <<EOF
{"task":"rte","method":"lora","seed":0,"predictions":{"dev":"rte.dev.predictions.tsv","test":"rte.test.predictions.tsv"}}
{"task":"mnli","method":"lora","seed":0,"predictions":{"ax":"mnli.ax.predictions.tsv","test_matched":"$W/p/mnlim.tsv"}}
{"task":"rte","method":"full","seed":0,"predictions":{"test":"$W/p/rte_dev.tsv"}}
EOF
expect "two records offer RTE.tsv" 2 "2 records offer RTE.tsv.*results.jsonl:1.*results.jsonl:3" -- \
  --out "$W/s4" --data-dir "$D" "$W/runs/results.jsonl"
expect "--where method=lora" 0 "" -- --out "$W/s4" --data-dir "$D" --where method=lora "$W/runs/results.jsonl"
same "$W/s4/RTE.tsv" "$W_RTE"
same "$W/s4/AX.tsv" "$W_AX"
same "$W/s4/MNLI-m.tsv" "$W_MNLIM"

GLUE=../shared/data/glue
if [ -f "$GLUE/WNLI/test.tsv" ]; then
  echo "shared GLUE data (default data folder from the repo root)"
  { printf 'index\tgold\tprediction\tlogit_0\tlogit_1\n'
    for i in $(seq 0 145); do printf '%d\t\t%d\t%d\t%d\n' $i $((i % 2)) $((1 - i % 2)) $((i % 2)); done; } >"$W/p/wnli_real.tsv"
  expect "WNLI, 146 rows" 0 "" -- --out "$W/s5" wnli="$W/p/wnli_real.tsv"
  grep -q 'shared/data/glue/WNLI/test.tsv' "$W/stdout" && ok || fail "row count not from the shared WNLI test file"
  [ "$(sed -n '2p;3p;147p' "$W/s5/WNLI.tsv" | tr '\n' ' ')" = "$(printf '0\t0 1\t1 145\t1 ')" ] && ok ||
    fail "WNLI rows: $(sed -n '2p;3p;147p' "$W/s5/WNLI.tsv")"
  head -n 146 "$W/p/wnli_real.tsv" >"$W/p/wnli_short.tsv"
  expect "WNLI, 145 rows" 1 "145 prediction rows, but WNLI.tsv has 146 test rows" -- --out "$W/s6" wnli="$W/p/wnli_short.tsv"
fi

echo "e2e_submit: $n_ok ok, $n_fail failed"
[ "$n_fail" -eq 0 ]
