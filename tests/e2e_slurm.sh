#!/usr/bin/env bash
# End-to-end: `peftbench sweep slurm --submit` against a real Slurm (Debian slurm-wlm + munge).
#   bash tests/e2e_slurm.sh path/to/peftbench        (from the repo root; ctest does this)
#
# Starts a private single-node cluster on this machine (its own munged socket and key, slurmctld
# and slurmd on private ports, configuration and state under a temporary folder), submits a
# 4-run sweep (tiny random backbone, an SST-2-layout folder written here) as one array job,
# waits for it, then: 4 shards, `sweep status` counts 4 done, `sweep collect` merges 4 records
# (exit 0), every array task's log exists, the merged file renders as a table (one row per
# method), and a second `sweep slurm` has nothing to submit.
# The daemons are shut down at the end (also on failure). Skipped (exit 77, reason printed)
# only when the daemons are not installed, not root, or cannot start.
set -u
if [ $# -lt 1 ]; then echo "usage: $0 PEFTBENCH" >&2; exit 2; fi
skip() { echo "SKIP: $1"; exit 77; }
for b in munged slurmctld slurmd sbatch squeue scontrol; do
  command -v "$b" >/dev/null 2>&1 || skip "$b not installed (Debian: slurm-wlm, munge; tools/install-deps.sh)"
done
[ "$(id -u)" -eq 0 ] || skip "the private cluster runs its daemons as root (SlurmUser=root)"
. "$(dirname "$0")/lib/e2e.sh" slurm "$@"
chmod 755 "$W"
export SLURM_CONF="$W/slurm.conf"
cleanup() {
  scontrol shutdown >/dev/null 2>&1
  for p in slurmd slurmctld munged; do
    [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null
  done
  sleep 1
  for p in slurmd slurmctld munged; do
    [ -f "$W/$p.pid" ] && kill -9 "$(cat "$W/$p.pid")" 2>/dev/null
  done
  [ -n "${PB_TEST_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT # replaces the library's: the daemons go first

# ---------------------------------------------------------------- the cluster
H=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ { m = int($2 / 1024) - 2048; print (m > 512 ? m : 512) }' /proc/meminfo)
PORT=$((20000 + $$ % 20000))
dd if=/dev/urandom of="$W/munge.key" bs=1 count=1024 2>/dev/null
chmod 600 "$W/munge.key"
mkdir -p "$W/state" "$W/spool"
munged --force --socket="$W/munge.sock" --key-file="$W/munge.key" --log-file="$W/munged.log" \
  --pid-file="$W/munged.pid" --seed-file="$W/munge.seed" >"$W/munged.out" 2>&1 || skip "munged did not start: $(tail -1 "$W/munged.out")"
cat >"$SLURM_CONF" <<EOF
ClusterName=pbtest
SlurmctldHost=$H
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$W/munge.sock
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$H CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=pbtest Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF" >"$W/ctld.out" 2>&1 || skip "slurmctld did not start: $(tail -1 "$W/ctld.out")"
slurmd -f "$SLURM_CONF" >"$W/slurmd.out" 2>&1 || skip "slurmd did not start: $(tail -1 "$W/slurmd.out")"
up=0
for _ in $(seq 1 40); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then up=1; break; fi
  sleep 0.5
done
[ $up = 1 ] || skip "the node did not come up: $(sinfo 2>&1 | tail -1); $(tail -2 "$W/slurmctld.log" 2>/dev/null)"
ok "private cluster up (slurmctld + slurmd on $H, ports $PORT-$((PORT + 1)))"

# ---------------------------------------------------------------- the sweep
sst2_folder 40 11
cat >"$W/s.json" <<EOF
{"name": "slurmtiny", "tasks": ["sst2"], "seeds": [0, 1],
 "train": {"shape": "2,32,2,64", "steps": 2, "batch": 8, "max_len": 16, "data_dir": "$W/glue"},
 "methods": ["bitfit", {"method": "lora", "options": {"r": 2}}],
 "slurm": {"cpus_per_task": 1, "time": "00:10:00", "max_parallel": 2}}
EOF
cd "$W" || exit 1
D="$W/sweeps/slurmtiny"
"$BIN" sweep slurm s.json --submit >"$W/sub" 2>"$W/err"
expect "sweep slurm --submit: exit" "$?" 0
grep -q '^#SBATCH --array=0-3%2$' "$D/slurm/sweep.sbatch" && ok "array 0-3, at most 2 at a time" || fail "array: $(grep array "$D/slurm/sweep.sbatch")"
JOB=$(sed -n 's/^submitted: job \([0-9]*\).*/\1/p' "$W/sub")
[ -n "$JOB" ] && ok "job id $JOB recorded" || fail "no job id: $(cat "$W/sub" "$W/err")"
expect "jobs.txt holds it" "$(cat "$D/slurm/jobs.txt" 2>/dev/null)" "$JOB"
"$BIN" sweep status s.json >"$W/st0" 2>&1
grep -qE '4 runs: [0-9] done' "$W/st0" && ok "status while queued/running: $(tail -1 "$W/st0")" || fail "status: $(cat "$W/st0")"
for _ in $(seq 1 240); do
  [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] && ok "the array finished" || fail "the array is still queued: $(squeue 2>&1)"
expect "4 shards" "$(ls "$D/shards" | wc -l | tr -d ' ')" 4
expect "4 array task logs" "$(ls "$D"/slurm/"$JOB"_*.out 2>/dev/null | wc -l | tr -d ' ')" 4
"$BIN" sweep status s.json >"$W/st" 2>&1
grep -q '4 runs: 4 done, 0 running, 0 queued, 0 failed, 0 missing' "$W/st" && ok "status: 4 done" || fail "status: $(cat "$W/st")"
"$BIN" sweep collect s.json >"$W/col" 2>"$W/err"
expect "collect: exit" "$?" 0
expect "collect: 4 records" "$(grep -c . "$D/results.jsonl")" 4
th=$(perl -MJSON::PP -ne 'my $o = decode_json($_); print $o->{host}{threads}, " "' "$D/results.jsonl" 2>/dev/null)
expect "each run used its --cpus-per-task threads" "$th" "1 1 1 1 "
"$BIN" table "$D/results.jsonl" --table main --format csv >"$W/table.csv" 2>"$W/err"
expect "table of the collected records: exit" "$?" 0
expect "  one row per configuration (bitfit, lora)" "$(grep -c '^"\?\(bitfit\|lora\)' "$W/table.csv")" 2
"$BIN" sweep slurm s.json >"$W/again" 2>&1
grep -q 'every run is done; nothing to submit' "$W/again" && ok "nothing left to submit" || fail "again: $(cat "$W/again")"

finish
