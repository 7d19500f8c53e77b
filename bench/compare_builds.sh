#!/usr/bin/env bash
# Before/after speed of two builds of the C backbone (e.g. main before and after a change):
# bench_backbone of build A and of build B at the same shapes, alternating A/B process by
# process (A first in odd rounds, B first in even rounds), then per shape and mode the median
# step time of each, their ratio A/B (above 1: B is faster) and the median of the per-round
# paired ratios (steadier when the VM's speed drifts between processes).
#
#   bench/compare_builds.sh BUILD_A BUILD_B [--rounds N] [--threads N] [--out FILE]
#
# BUILD_x: a build folder holding bench/bench_backbone (cmake --build DIR --target
# bench_backbone). Shapes as bench/run.sh: tiny and mini at batch 32, bert-base at 8 and 1,
# seq 128, modes infer/full/lora. Default 3 rounds (~10 min on 2 quiet cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/compare_builds.sh BUILD_A BUILD_B [--rounds N] [--threads N] [--out FILE]" >&2; exit 2; }
DIR_A="$1" DIR_B="$2"
A="$DIR_A/bench/bench_backbone" B="$DIR_B/bench/bench_backbone"
shift 2
ROUNDS=3 THREADS=2 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "bench/compare_builds.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "bench/compare_builds.sh: $bin: no such executable" >&2; exit 2; }; done
[ -n "$OUT" ] || OUT="bench/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"
CONFIGS="tiny 32 5 3
mini 32 5 3
base 8 3 2
base 1 5 3"
for round in $(seq 1 "$ROUNDS"); do
  while read -r shape batch ri rt; do
    for mode in infer full lora; do
      reps=$rt; [ "$mode" = infer ] && reps=$ri
      order="A B"; [ $((round % 2)) = 0 ] && order="B A"
      for who in $order; do
        bin=$A; [ "$who" = B ] && bin=$B
        "$bin" --shape "$shape" --batch "$batch" --modes "$mode" --reps "$reps" --threads "$THREADS" --round "$round" |
          sed "s/^{/{\"build\":\"$who\",/" >> "$OUT"
      done
    done
    echo "compare: $shape b$batch round $round done" >&2
  done <<< "$CONFIGS"
done
summarise() {
/usr/bin/env python3 - "$1" <<'EOF'
import json, statistics as st, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t = collections.defaultdict(lambda: collections.defaultdict(list))  # key -> build -> [median per round]
per_round = collections.defaultdict(dict)
for r in rows:
    k = (r["shape"], r["batch"], r["mode"])
    t[k][r["build"]].append(r["median_s"])
    per_round[k + (r["round"],)][r["build"]] = r["median_s"]
print("| shape | mode | A ms | B ms | A/B | paired A/B |")
print("|---|---|---|---|---|---|")
order = {"tiny": 0, "mini": 1, "base": 2}
for k in sorted(t, key=lambda k: (order.get(k[0], 9), -k[1], ["infer", "full", "lora"].index(k[2]))):
    a, b = st.median(t[k]["A"]), st.median(t[k]["B"])
    pr = [v["A"] / v["B"] for kk, v in per_round.items() if kk[:3] == k and "A" in v and "B" in v]
    print("| %s b%d | %s | %.1f | %.1f | %.3f | %.3f |" % (k[0], k[1], k[2], 1e3 * a, 1e3 * b, a / b, st.median(pr)))
EOF
}
summarise "$OUT"
echo "compare: A = $A, B = $B; raw rows in $OUT" >&2
