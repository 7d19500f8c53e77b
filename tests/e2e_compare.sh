#!/usr/bin/env bash
# End-to-end: `peftbench compare` over prediction files and result records that this script
# writes itself (no data, no model, no training).
#   bash tests/e2e_compare.sh path/to/peftbench        (from the repo root; ctest does this)
#
# Checks both modes, the --json fields (parsed with perl's core JSON::PP), the statistics on
# inputs with known answers (Welch t/df/p from scipy 1.10, exact permutation p = 20/35,
# differences of accuracies), reproducibility from --seed, the refusal of mismatched files
# (one stderr line naming both), and the exit codes: 0 whether or not the difference is
# significant, 1 on bad input, 2 on usage errors.
set -u
if [ $# -lt 1 ]; then echo "usage: $0 PEFTBENCH" >&2; exit 2; fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
command -v perl >/dev/null || { echo "e2e_compare: perl is required" >&2; exit 2; }
perl -MJSON::PP -e 1 2>/dev/null || { echo "e2e_compare: perl JSON::PP is required" >&2; exit 2; }

W="$(mktemp -d "${TMPDIR:-/tmp}/pb-e2e-compare.XXXXXX")"
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT # KEEP=1 keeps the folder (debugging)
if [ -z "${LSAN_OPTIONS:-}" ]; then
  printf 'leak:libsde.so\n' >"$W/lsan.supp"
  export LSAN_OPTIONS="suppressions=$W/lsan.supp:print_suppressions=0"
fi
n_ok=0
n_fail=0

ok() { n_ok=$((n_ok + 1)); printf 'ok   %s\n' "$1"; }
fail() {
  n_fail=$((n_fail + 1))
  printf 'FAIL %s: %s\n' "$1" "$2"
  sed 's/^/       stderr: /' "$W/stderr" 2>/dev/null | head -5
}

# runs the CLI: stdout -> $W/stdout, stderr -> $W/stderr, exit status -> $RC
pb() { "$BIN" compare "$@" >"$W/stdout" 2>"$W/stderr" </dev/null; RC=$?; }

# jcheck NAME PERL-EXPR: EXPR (with $j the decoded JSON of $W/stdout) must be true
jcheck() {
  if perl -MJSON::PP -e '
      local $/; open(my $h, "<", $ARGV[0]) or die; my $j = decode_json(<$h>);
      my $ok = eval $ARGV[1]; die $@ if $@; exit($ok ? 0 : 1);' "$W/stdout" "$2" 2>"$W/perl.err"; then
    ok "$1"
  else
    n_fail=$((n_fail + 1))
    printf 'FAIL %s: not true: %s %s\n' "$1" "$2" "$(head -c 300 "$W/perl.err")"
    head -c 1500 "$W/stdout" | sed 's/^/       stdout: /'
  fi
}

# expect_ok NAME ARGS...: exit 0, nothing on stderr
expect_ok() {
  local name="$1"
  shift
  pb "$@"
  if [ "$RC" -ne 0 ]; then fail "$name" "exit $RC (want 0)"
  elif [ -s "$W/stderr" ]; then fail "$name" "unexpected stderr"
  else ok "$name"; fi
}

# expect_err NAME CODE PATTERN ARGS...: exit CODE, exactly one stderr line matching PATTERN
expect_err() {
  local name="$1" code="$2" pat="$3" why="" nl
  shift 3
  pb "$@"
  [ "$RC" -ne "$code" ] && why="$why; exit $RC (want $code)"
  grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$W/stderr" && why="$why; sanitizer report"
  nl=$(grep -c '' "$W/stderr")
  [ "$nl" -ne 1 ] && why="$why; $nl stderr lines (want 1)"
  grep -qE -- "$pat" "$W/stderr" || why="$why; stderr does not match /$pat/"
  if [ -z "$why" ]; then ok "$name: $(head -c 160 "$W/stderr")"; else fail "$name" "${why#; }"; fi
}

# ---------------------------------------------------------------- prediction files

# mkpred FILE N CORRECT SHIFT: SST-2 predictions of N examples (gold i % 2) where example i is
# right iff (i + SHIFT) % N < CORRECT
mkpred() {
  local f="$1" n="$2" c="$3" s="$4" i g p
  {
    printf 'index\tgold\tprediction\tlogit_0\tlogit_1\n'
    for ((i = 0; i < n; i++)); do
      g=$((i % 2))
      if (((i + s) % n < c)); then p=$g; else p=$((1 - g)); fi
      if [ $p -eq 1 ]; then printf '%d\t%d\t1\t-0.25\t0.75\n' $i $g; else printf '%d\t%d\t0\t0.5\t-0.5\n' $i $g; fi
    done
  } >"$f"
}

A="$W/a.dev.predictions.tsv"
B="$W/b.dev.predictions.tsv"
mkpred "$A" 40 24 0 # accuracy 0.6
mkpred "$B" 40 36 5 # accuracy 0.9

expect_ok "files: sst2 --json" "$A" "$B" --task sst2 --json --samples 2000 --seed 3
jcheck "files: mode, task, metric, n" '$j->{mode} eq "examples" && $j->{task} eq "sst2" && $j->{metric} eq "accuracy" && $j->{n_examples} == 40'
jcheck "files: values and difference B - A" 'abs($j->{a}{value} - 0.6) < 1e-15 && abs($j->{b}{value} - 0.9) < 1e-15 && abs($j->{difference} - 0.3) < 1e-12'
jcheck "files: bootstrap CI holds the difference, excludes 0" 'my $b = $j->{bootstrap}; $b->{samples} == 2000 && $b->{ci_low} > 0 && $b->{ci_low} <= 0.3 && 0.3 <= $b->{ci_high} && abs($b->{confidence} - 0.95) < 1e-15'
jcheck "files: p-values small, significant" '$j->{bootstrap}{p_value} < 0.01 && $j->{randomization}{p_value} < 0.01 && $j->{bootstrap}{significant} && $j->{randomization}{significant}'
jcheck "files: p = (count + 1) / (R + 1)" 'my $r = $j->{randomization}; abs($r->{p_value} - ($r->{count} + 1) / 2001) < 1e-15 && abs($j->{bootstrap}{p_value} - ($j->{bootstrap}{count} + 1) / 2001) < 1e-15'
if grep -qE '"value":[[:space:]]*0\.59999999999999998' "$W/stdout"; then ok "files: --json numbers are %.17g"; else fail "files: --json numbers are %.17g" "no 0.59999999999999998 in the output"; fi
cp "$W/stdout" "$W/first.json"
pb "$A" "$B" --task sst2 --json --samples 2000 --seed 3
if cmp -s "$W/stdout" "$W/first.json"; then ok "files: same --seed, same output"; else fail "files: same --seed, same output" "outputs differ"; fi
pb "$A" "$B" --task sst2 --json --samples 2000 --seed 4
if ! cmp -s "$W/stdout" "$W/first.json"; then ok "files: another --seed, other resamples"; else fail "files: another --seed" "identical output"; fi

expect_ok "files: B A (swapped)" "$B" "$A" --task sst2 --json --samples 2000 --seed 3
P1=$(perl -MJSON::PP -e 'local $/; open(my $h,"<",$ARGV[0]); my $j=decode_json(<$h>); printf "%.17g %.17g", $j->{bootstrap}{p_value}, $j->{randomization}{p_value}' "$W/first.json")
CI1=$(perl -MJSON::PP -e 'local $/; open(my $h,"<",$ARGV[0]); my $j=decode_json(<$h>); printf "%.17g,%.17g", $j->{bootstrap}{ci_low}, $j->{bootstrap}{ci_high}' "$W/first.json")
jcheck "files: swapped: difference -0.3, same p-values" "abs(\$j->{difference} + 0.3) < 1e-12 && sprintf('%.17g %.17g', \$j->{bootstrap}{p_value}, \$j->{randomization}{p_value}) eq '$P1'"
jcheck "files: swapped: the CI negates (same resamples)" "my (\$l, \$h) = split /,/, '$CI1'; abs(\$j->{bootstrap}{ci_low} + \$h) < 1e-12 && abs(\$j->{bootstrap}{ci_high} + \$l) < 1e-12"

expect_ok "files: identical predictions" "$A" "$A" --task sst2 --json --samples 500
jcheck "files: identical: difference 0, p 1, not significant" '$j->{difference} == 0 && $j->{bootstrap}{p_value} == 1 && $j->{randomization}{p_value} == 1 && !$j->{bootstrap}{significant}'

expect_ok "files: text table" "$A" "$B" --task sst2 --samples 1000
if grep -q 'paired bootstrap.*95% CI' "$W/stdout" && grep -q 'randomisation' "$W/stdout" && grep -q 'B - A' "$W/stdout"; then
  ok "files: text shows CI, both tests, B - A"
else fail "files: text" "$(head -c 400 "$W/stdout")"; fi
expect_ok "files: --metric score" "$A" "$B" --task sst2 --metric score --samples 200 --json
jcheck "files: --metric score" '$j->{metric} eq "score" && abs($j->{difference} - 0.3) < 1e-12'

# STS-B: regression files; B predicts the gold exactly (Pearson 1)
{
  printf 'index\tgold\tprediction\n'
  for i in $(seq 0 29); do printf '%d\t%s\t%s\n' $i "$(( (i * 7) % 26 / 5 )).$(( i % 10 ))" "$(( (i * 3) % 5 )).5"; done
} >"$W/sa.tsv"
awk -F'\t' 'BEGIN{OFS="\t"} NR==1{print; next} {print $1, $2, $2}' "$W/sa.tsv" >"$W/sb.tsv"
expect_ok "files: stsb pearson" "$W/sa.tsv" "$W/sb.tsv" --task stsb --json --samples 500
jcheck "files: stsb: B Pearson 1, metric pearson" '$j->{metric} eq "pearson" && abs($j->{b}{value} - 1) < 1e-12 && $j->{difference} > 0'
expect_ok "files: stsb spearman" "$W/sa.tsv" "$W/sb.tsv" --task stsb --metric spearman --json --samples 500
jcheck "files: stsb: B Spearman 1" 'abs($j->{b}{value} - 1) < 1e-12'

# refusals: bad input exits 1 with one line naming the file(s)
perl -pe 's/^5\t/6\t/ if $. == 7' "$A" >"$W/idx.tsv"
expect_err "files: indices differ" 1 "a.dev.predictions.tsv and .*idx.tsv.*same examples" "$A" "$W/idx.tsv" --task sst2
perl -pe 's/^(7)\t1\t/$1\t0\t/' "$B" >"$W/gold.tsv"
expect_err "files: gold differs" 1 "b.dev.predictions.tsv and .*gold.tsv.*gold" "$B" "$W/gold.tsv" --task sst2
head -30 "$A" >"$W/short.tsv"
expect_err "files: fewer rows" 1 "a.dev.predictions.tsv and .*short.tsv.*40 vs 29 rows" "$A" "$W/short.tsv" --task sst2
expect_err "files: header of another task" 1 "a.dev.predictions.tsv:1: not a mnli prediction file" "$A" "$B" --task mnli
expect_err "files: missing file" 1 "nope.tsv" "$A" "$W/nope.tsv" --task sst2
perl -pe 's/^3\t1\t/3\t\t/' "$A" >"$W/nolabel.tsv"
expect_err "files: unlabelled row" 1 "nolabel.tsv:5: no gold value" "$W/nolabel.tsv" "$A" --task sst2
perl -pe 's/^30\t0\t1\t/30\t0\tx\t/' "$A" >"$W/badlab.tsv"
expect_err "files: unknown label" 1 "badlab.tsv:32: prediction 'x'" "$W/badlab.tsv" "$A" --task sst2
perl -pe 's/\t-0.25\t0.75$/\t0.75/ if $. == 3' "$A" >"$W/cols.tsv"
expect_err "files: column count" 1 "cols.tsv:3: 4 columns, expected 5" "$W/cols.tsv" "$A" --task sst2

# usage errors exit 2
expect_err "usage: no --task" 2 "--task is required" "$A" "$B"
expect_err "usage: one file" 2 "expected two prediction files" "$A" --task sst2
expect_err "usage: three files" 2 "expected two prediction files" "$A" "$B" "$A" --task sst2
expect_err "usage: metric of another task" 2 "sst2 does not report metric 'pearson'" "$A" "$B" --task sst2 --metric pearson
expect_err "usage: --samples 1" 2 "--samples '1'" "$A" "$B" --task sst2 --samples 1
expect_err "usage: --alpha 2" 2 "--alpha '2'" "$A" "$B" --task sst2 --alpha 2
expect_err "usage: unknown option" 2 "unknown option '--bogus'" "$A" "$B" --task sst2 --bogus
expect_err "usage: unknown task" 2 "unknown task 'sst3'" "$A" "$B" --task sst3

# ---------------------------------------------------------------- result records

# A = lora, seeds 0-3: accuracies 32 33 34 31 / 40; B = adapter, seeds 0-2: 33 36 32 / 40.
mkdir -p "$W/res/preds"
CA=1a2b3c4d
CB=5e6f7a8b
record() { # method desc config_id lr seed correct shift [predictions-path]
  local acc pred
  acc=$(perl -e "printf '%.17g', $6 / 40")
  pred="${8-preds/$1-s$5.dev.predictions.tsv}"
  [ -n "$pred" ] && [ -z "${8-}" ] && mkpred "$W/res/$pred" 40 "$6" "$7"
  printf '{"schema":"peftbench-result/1","task":"sst2","method":"%s","method_desc":"%s","seed":%d,' "$1" "$2" "$5"
  printf '"config":{"method":"%s","method_desc":"%s","backbone":"00ff00ff00ff00ff","lr":%s,"epochs":3,"batch":32},' "$1" "$2" "$4"
  printf '"config_id":"%s","train":{"lr":%s,"epochs":3,"batch":32},' "$3" "$4"
  printf '"metrics":{"splits":{"dev":{"accuracy":%s}},"score":%s,"main":"accuracy"},' "$acc" "$acc"
  if [ -n "$pred" ]; then printf '"predictions":{"dev":"%s"}}\n' "$pred"; else printf '"predictions":{}}\n'; fi
}
R="$W/res/results.jsonl"
{
  record lora "r=8,alpha=16" $CA 0.00050000002374872565 0 32 0
  record adapter "mode=pfeiffer,r=8" $CB 0.0010000000474974513 0 33 3
  record lora "r=8,alpha=16" $CA 0.00050000002374872565 1 33 11
  record adapter "mode=pfeiffer,r=8" $CB 0.0010000000474974513 1 36 17
  record lora "r=8,alpha=16" $CA 0.00050000002374872565 2 34 23
  record adapter "mode=pfeiffer,r=8" $CB 0.0010000000474974513 2 32 29
  record lora "r=8,alpha=16" $CA 0.00050000002374872565 3 31 31
} >"$R"
RT="$W/res/torn.jsonl"
{ cat "$R"; printf '{"task":"sst2","method":"lora","seed":9,"config\n'; } >"$RT" # a torn last line

# scipy 1.10: ttest_ind(b, a, equal_var=False) and permutation_test(..., n_resamples=inf)
T_REF=0.8551861104941402
P_REF=0.4526458609567548
DF_REF=3.1457603363700057
pb "$RT" --a method=lora --b method=adapter --json --samples 2000
if [ "$RC" -eq 0 ] && grep -q 'skipped 1 line' "$W/stderr" && [ "$(grep -c '' "$W/stderr")" -eq 1 ]; then
  ok "records: torn line skipped with one warning, exit 0"
else fail "records: torn line" "exit $RC"; fi
jcheck "records: mode, task (detected), split, metric" '$j->{mode} eq "seeds" && $j->{task} eq "sst2" && $j->{split} eq "dev" && $j->{metric} eq "accuracy"'
jcheck "records: groups: n, seeds, config ids" '$j->{a}{n} == 4 && $j->{b}{n} == 3 && join(",", @{$j->{a}{seeds}}) eq "0,1,2,3" && $j->{a}{config_id} eq "'$CA'" && $j->{b}{config_id} eq "'$CB'"'
jcheck "records: means and difference" 'abs($j->{a}{mean} - 32.5/40) < 1e-15 && abs($j->{b}{mean} - 101/120) < 1e-15 && abs($j->{difference} - (101/120 - 32.5/40)) < 1e-15'
jcheck "records: Welch t, df, p = scipy (1e-9)" "abs(\$j->{welch}{t} / $T_REF - 1) < 1e-9 && abs(\$j->{welch}{df} / $DF_REF - 1) < 1e-9 && abs(\$j->{welch}{p_value} / $P_REF - 1) < 1e-9 && !\$j->{welch}{significant}"
jcheck "records: permutation exact over C(7,3) = 35 splits, p = 20/35" '$j->{permutation}{exact} && $j->{permutation}{splits} == 35 && abs($j->{permutation}{p_value} - 20/35) < 1e-15'
jcheck "records: examples over matched seeds 0,1,2" 'join(",", @{$j->{examples}{seeds}}) eq "0,1,2" && $j->{examples}{n_examples} == 40 && abs($j->{examples}{difference} - 1/60) < 1e-12'
jcheck "records: example tests present" 'my $e = $j->{examples}; $e->{bootstrap}{samples} == 2000 && $e->{bootstrap}{ci_low} <= 1/60 && 1/60 <= $e->{bootstrap}{ci_high} && $e->{randomization}{p_value} > 0 && $e->{randomization}{p_value} <= 1 && @{$e->{files}{a}} == 3'

pb "$R" --a method=lora --b method=adapter --samples 500
if [ "$RC" -eq 0 ] && grep -q "Welch's t-test *t = 0.8552" "$W/stdout" && grep -q 'exact over 35 splits' "$W/stdout" && grep -q 'paired bootstrap' "$W/stdout"; then
  ok "records: text table"
else fail "records: text table" "exit $RC: $(head -c 600 "$W/stdout")"; fi

pb "$R" --a method=lora --b method=adapter --json --no-examples
jcheck "records: --no-examples" '!defined $j->{examples} && $j->{examples_note} =~ /no-examples/'
pb "$R" --a lr=5e-4 --b config_id=$CB --json --no-examples --task sst2
jcheck "records: select by lr=5e-4 (float32-stored) and config_id" '$j->{a}{n} == 4 && $j->{b}{n} == 3 && $j->{a}{method} eq "lora"'
pb "$R" --a "method=lora,method_desc=r=8,alpha=16" --b method=adapter --a seed=1 --json --no-examples
jcheck "records: method_desc with commas, repeated --a" '$j->{a}{n} == 1 && $j->{a}{seeds}[0] == 1 && !defined $j->{welch}{t} && $j->{welch}{undefined} =~ /2 seeds/'

# a second configuration of lora (lr 1e-3) in another file
R2="$W/res/more.jsonl"
record lora "r=8,alpha=16" 99999999 0.0010000000474974513 0 30 0 "" >"$R2"
expect_err "records: two configurations in one group" 1 "--a method=lora selects several configurations.*more.jsonl" "$R" "$R2" --a method=lora --b method=adapter --no-examples
pb "$R" "$R2" --a method=lora,lr=0.0005 --b method=adapter --json --no-examples
jcheck "records: narrowed with lr=0.0005" '$j->{a}{n} == 4'
R3="$W/res/dup.jsonl"
record lora "r=8,alpha=16" $CA 0.00050000002374872565 0 32 0 "" >"$R3"
expect_err "records: a seed twice" 1 "two records of seed 0 .*results.jsonl and .*dup.jsonl" "$R" "$R3" --a method=lora --b method=adapter
expect_err "records: nothing matches" 1 "--b method=full: no sst2 record matches" "$R" --a method=lora --b method=full
R4="$W/res/gone.jsonl"
{
  record lora "r=8,alpha=16" $CA 0.00050000002374872565 0 32 0 "preds/gone.tsv"
  record adapter "mode=pfeiffer,r=8" $CB 0.0010000000474974513 0 33 3 "preds/adapter-s0.dev.predictions.tsv"
} >"$R4"
expect_err "records: missing prediction file" 1 "gone.tsv.*--no-examples" "$R4" --a method=lora --b method=adapter
pb "$R4" --a method=lora --b method=adapter --no-examples
if [ "$RC" -eq 0 ]; then ok "records: missing prediction file with --no-examples: exit 0"; else fail "records: --no-examples" "exit $RC"; fi
R5="$W/res/other.jsonl"
mkpred "$W/res/preds/short.tsv" 38 30 0
{
  record lora "r=8,alpha=16" $CA 0.00050000002374872565 0 32 0 "preds/lora-s0.dev.predictions.tsv"
  record adapter "mode=pfeiffer,r=8" $CB 0.0010000000474974513 0 33 3 "preds/short.tsv"
} >"$R5"
expect_err "records: prediction files of different examples" 1 "lora-s0.dev.predictions.tsv and .*short.tsv" "$R5" --a method=lora --b method=adapter
expect_err "records: split not in the records" 1 "no metrics.splits.dev_matched.accuracy" "$R" --a method=lora --b method=adapter --split dev_matched
expect_err "usage: --a without --b" 2 "give both --a and --b" "$R" --a method=lora
expect_err "usage: bad selection" 2 "expected KEY=VAL" "$R" --a method --b method=adapter
expect_err "usage: no result files" 2 "no result files" --a method=lora --b method=adapter
expect_err "records: unreadable results file" 1 "nothere.jsonl" "$W/nothere.jsonl" --a method=lora --b method=adapter

echo "e2e_compare: $n_ok ok, $n_fail failed"
[ "$n_fail" -eq 0 ]
