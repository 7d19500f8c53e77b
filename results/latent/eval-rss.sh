#!/usr/bin/env bash
# Peak inference memory: `peftbench eval` of every task file named in the records, each in its own
# process under /usr/bin/time (max RSS, KiB), into results/latent/eval-rss.tsv.
#   bash results/latent/eval-rss.sh [RECORDS.jsonl]
set -eu
BIN=${BIN:-./build/peftbench}
R=${1:-results/latent/sst2-default.jsonl}
OUT=results/latent/eval-rss.tsv
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tmp=$(mktemp)
printf 'tag\ttask_file\tpeak_rss_kb\n' >"$tmp"
python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l); lt = r["backbone"].get("latent")
    tag = "uncompressed" if lt is None else "%s k=%d d'"'"'=%d %s" % (lt["variant"], lt["cut"], lt["d_prime"], r["backbone"]["source"].rstrip("/").split("/")[-1])
    print(tag + "\t" + r["storage"]["path"])' "$R" | while IFS=$'\t' read -r tag tf; do
  /usr/bin/time -f "%M" -o "$tmp.rss" "$BIN" eval "$tf" --out "$(dirname "$tf")" >/dev/null 2>"$tmp.err" || { cat "$tmp.err" >&2; exit 1; }
  printf '%s\t%s\t%s\n' "$tag" "$(basename "$tf")" "$(cat "$tmp.rss")" >>"$tmp"
done
mv "$tmp" "$OUT"
rm -f "$tmp.rss" "$tmp.err"
