#!/usr/bin/env bash
# End-to-end: `peftbench sweep` run locally (harness/sweep*.c).
#   bash tests/e2e_sweep.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - a sweep file over a tiny random backbone and an SST-2-layout folder written here: lora with
#   r in {2,4} and bitfit, seeds {0,1}, plus one explicit run that fails (a missing teacher file)
#   = 7 runs; `sweep plan` lists 7 runs with steps, exact train FLOPs and a calibrated time, and
#   --json gives ids that are 12 hex digits, all distinct, stable when the file's keys and
#   lists are reordered;
# - `sweep run -j 2`: 6 shards, the failure recorded with its error line (failed/ID.txt), exit 1;
#   `status` counts 6 done and 1 failed; a second `run` redoes only the failed run; with
#   --skip-failed nothing; a removed shard and a stale running marker (dead pid) are redone;
# - `collect`: one JSONL of the 6 records in plan order with their sweep ids, exit 1 (one failed);
# - `slurm` (no --submit): an sbatch script whose --array holds the one index not done;
# - bad input: a malformed file, an unknown key, an unknown task, an empty list, -j 0, an
#   oversubscribing "threads": one line naming the file or the option;
# - the README's GLUE sweep file (between its sweep-example markers) plans 72 runs.
set -u
REPO="$(pwd)" # ctest runs from the repository root
. "$(dirname "$0")/lib/e2e.sh" sweep "$@"
count() { ls "$1" 2>/dev/null | wc -l | tr -d ' '; }

sst2_folder 48 13
cat >"$W/s.json" <<EOF
{"name": "tiny", "tasks": ["sst2"], "seeds": [0, 1],
 "train": {"shape": "2,32,2,64", "steps": 3, "batch": 8, "max_len": 16, "data_dir": "$W/glue"},
 "methods": [{"method": "lora", "options": {"r": [2, 4]}}, "bitfit"],
 "runs": [{"task": "sst2", "method": "full", "train": {"teacher": "$W/none.safetensors"}}]}
EOF
# the same plan written in another order: the same ids
cat >"$W/s2.json" <<EOF
{"methods": ["bitfit", {"options": {"r": [4, 2]}, "method": "lora"}], "seeds": [1, 0], "tasks": ["sst2"],
 "runs": [{"train": {"teacher": "$W/none.safetensors"}, "method": "full", "task": "sst2"}],
 "train": {"data_dir": "$W/glue", "max_len": 16, "batch": 8, "steps": 3, "shape": "2,32,2,64"}, "name": "tiny"}
EOF
D="$W/sweeps/tiny"
cd "$W" || exit 1

# ---------------------------------------------------------------- plan
"$BIN" sweep plan s.json >"$W/plan" 2>"$W/err"
expect "sweep plan: exit" "$?" 0
expect "plan: 7 runs" "$(grep -c ' missing ' "$W/plan")" 7
grep -q '^total: .* training FLOPs' "$W/plan" && ok "plan: a total line" || fail "plan: no total"
"$BIN" sweep plan s.json --json --no-calibrate >"$W/plan.json" 2>"$W/err"
expect "sweep plan --json: exit" "$?" 0
ids=$(perl -MJSON::PP -e 'local $/; my $a = decode_json(<STDIN>); print join(" ", sort map { $_->{id} } @$a)' <"$W/plan.json")
expect "plan: 7 distinct 12-hex-digit ids" "$(echo "$ids" | tr ' ' '\n' | grep -cE '^[0-9a-f]{12}$' | tr -d ' ')/$(echo "$ids" | tr ' ' '\n' | sort -u | wc -l | tr -d ' ')" "7/7"
ids2=$(perl -MJSON::PP -e 'local $/; my $a = decode_json(<STDIN>); print join(" ", sort map { $_->{id} } @$a)' \
  < <("$BIN" sweep plan s2.json --json --no-calibrate 2>/dev/null))
expect "plan: ids stable when keys and lists are reordered" "$ids2" "$ids"
# the id: the first 12 hex digits of sha256sum of the canonical line (computed outside peftbench)
c0=$(perl -MJSON::PP -e 'local $/; my $a = decode_json(<STDIN>); print $a->[0]{canonical}' <"$W/plan.json")
i0=$(perl -MJSON::PP -e 'local $/; my $a = decode_json(<STDIN>); print $a->[0]{id}' <"$W/plan.json")
expect "plan: id = sha256sum of the canonical line" "$(printf '%s' "$c0" | sha256sum | cut -c1-12)" "$i0"
f0=$(perl -MJSON::PP -e 'local $/; my $a = decode_json(<STDIN>); print $a->[0]{train_flops} > 0 ? "yes" : "no"' <"$W/plan.json")
expect "plan: exact train FLOPs per run" "$f0" yes

# ---------------------------------------------------------------- run
"$BIN" sweep run s.json -j 2 >"$W/out" 2>"$W/err"
expect "sweep run -j 2 with one failing run: exit" "$?" 1
expect "6 shards" "$(count "$D/shards")" 6
expect "1 failure recorded" "$(count "$D/failed")" 1
grep -q 'none.safetensors' "$D"/failed/*.txt && ok "the failure's error line names the file" || fail "failed/ID.txt: $(cat "$D"/failed/*.txt)"
grep -q '2 at a time x 1 thread' "$W/err" && ok "2 processes x 1 thread on this machine's cores" || fail "no pool line"
grep -q 'done, .* running, .* failed, .* to go' "$W/err" && ok "a progress line for the plan" || fail "no progress line"
expect "no running markers left" "$(count "$D/running")" 0
"$BIN" sweep status s.json >"$W/st" 2>"$W/err"
expect "status: exit" "$?" 0
grep -q '7 runs: 6 done, 0 running, 0 queued, 1 failed, 0 missing' "$W/st" && ok "status counts" || fail "status: $(tail -1 "$W/st")"
grep -q 'none.safetensors' "$W/st" && ok "status shows the failure's line" || fail "status without the error line"
"$BIN" sweep run s.json -j 2 --skip-failed >"$W/out" 2>"$W/err"
expect "run --skip-failed: exit" "$?" 0
grep -q '6 done, 0 to run, 1 failed (skipped' "$W/err" && ok "--skip-failed runs nothing" || fail "skip-failed: $(head -1 "$W/err")"
"$BIN" sweep run s.json -j 2 >"$W/out" 2>"$W/err"
grep -q '6 done, 1 to run' "$W/err" && ok "a second run retries only the failed one" || fail "retry: $(head -1 "$W/err")"
# resumability: a lost shard and a stale running marker (a process that no longer exists)
victim=$(ls "$D/shards" | head -1)
rm "$D/shards/$victim"
stale=$(ls "$D/shards" | head -1 | sed 's/\.jsonl$//')
mv "$D/shards/$stale.jsonl" "$W/stale.jsonl"
printf '%s 999999\n' "$(hostname)" >"$D/running/$stale"
"$BIN" sweep status s.json --list >"$W/st" 2>"$W/err"
grep -q "$stale  missing" "$W/st" && ok "a stale running marker is not 'running'" || fail "stale marker: $(grep "$stale" "$W/st")"
"$BIN" sweep run s.json -j 2 --skip-failed >"$W/out" 2>"$W/err"
grep -q '4 done, 2 to run' "$W/err" && ok "the lost and the stale run are redone (and only they)" || fail "resume: $(head -1 "$W/err")"
expect "6 shards again" "$(count "$D/shards")" 6

# ---------------------------------------------------------------- collect
"$BIN" sweep collect s.json --out "$W/all.jsonl" >"$W/out" 2>"$W/err"
expect "collect with a failed run: exit" "$?" 1
expect "collect: 6 records" "$(grep -c . "$W/all.jsonl")" 6
order=$(perl -MJSON::PP -ne 'print decode_json($_)->{sweep}{index}, " "' "$W/all.jsonl")
expect "collect: plan order, with sweep.index" "$order" "0 1 2 3 4 5 "
ok_ids=$(perl -MJSON::PP -ne 'my $o = decode_json($_); print $o->{sweep}{run_id} =~ /^[0-9a-f]{12}$/ && $o->{sweep}{name} eq "tiny" ? 1 : 0' "$W/all.jsonl")
expect "collect: every record names its sweep run" "$ok_ids" 111111
grep -q 'none.safetensors' "$W/err" && ok "collect lists the failed run" || fail "collect: failed run not listed"
"$BIN" table "$W/all.jsonl" --format md >/dev/null 2>"$W/err"
expect "the collected file is a results file (table)" "$?" 0

# ---------------------------------------------------------------- slurm script (not submitted)
"$BIN" sweep slurm s.json >"$W/out" 2>"$W/err"
expect "sweep slurm: exit" "$?" 0
S="$D/slurm/sweep.sbatch"
grep -q '^#SBATCH --array=6$' "$S" && ok "sbatch --array: the one run not done" || fail "array line: $(grep array "$S")"
grep -q "sweep exec '$D/sweep.json' --dir '$D' --index \"\$SLURM_ARRAY_TASK_ID\"" "$S" && ok "each task: sweep exec on the submitted copy" \
  || fail "exec line: $(tail -1 "$S")"
cmp -s s.json "$D/sweep.json" && ok "the submitted copy of the sweep file" || fail "sweep.json differs"

# ---------------------------------------------------------------- the README's GLUE plan
README="$REPO/README.md"
sed -n '/<!-- sweep-example -->/,/<!-- \/sweep-example -->/p' "$README" | sed '1,2d;$d' | sed '$d' >"$W/glue.json"
"$BIN" sweep plan "$W/glue.json" --no-calibrate --json >"$W/glue.plan" 2>"$W/err"
expect "the README's sweep file plans" "$?" 0
expect "  72 runs (6 tasks x 4 methods x 3 seeds)" "$(perl -MJSON::PP -e 'local $/; print scalar @{decode_json(<STDIN>)}' <"$W/glue.plan")" 72

# ---------------------------------------------------------------- bad input
printf '{"tasks": ["sst2"], "methods": ["lora"' >"$W/bad1.json"
printf '{"tasks": ["sst2"], "methods": ["lora"], "seed": [0]}' >"$W/bad2.json"
printf '{"tasks": ["nosuch"], "methods": ["lora"]}' >"$W/bad3.json"
printf '{"tasks": ["sst2"], "methods": [{"method": "lora", "options": {"r": []}}]}' >"$W/bad4.json"
printf '{"tasks": ["sst2"], "methods": ["lora"], "train": {"lrr": 1}}' >"$W/bad5.json"
for k in 1 2 3 4 5; do
  "$BIN" sweep plan "$W/bad$k.json" --no-calibrate >/dev/null 2>"$W/err"
  rc=$?
  [ $rc -ne 0 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && grep -q "bad$k.json" "$W/err" \
    && ok "bad sweep file $k: one line naming the file ($(cut -c1-90 "$W/err"))" || fail "bad sweep file $k (exit $rc)"
done
"$BIN" sweep run s.json -j 0 >/dev/null 2>"$W/err"
expect "-j 0: exit" "$?" 2
printf '{"tasks": ["sst2"], "methods": ["lora"], "threads": 64}' >"$W/over.json"
"$BIN" sweep run "$W/over.json" -j 2 >/dev/null 2>"$W/err"
expect "threads x -j over the cores: exit" "$?" 2
grep -q 'oversubscribe' "$W/err" && ok "  the message says why" || fail "oversubscribe message"
"$BIN" sweep frobnicate s.json >/dev/null 2>"$W/err"
expect "unknown sweep command: exit" "$?" 2

finish
