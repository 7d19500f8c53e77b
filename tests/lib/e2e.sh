# Shared by the tests/e2e_*.sh scripts. Source it right after `set -u`:
#   . "$(dirname "$0")/lib/e2e.sh" NAME "$@"
# It sets BIN (the CLI given as $1, made absolute) and W (a fresh temporary folder
# pb-e2e-NAME.XXXXXX, removed at exit unless PB_TEST_KEEP is set), one thread for OpenBLAS and
# OpenMP, LSan's suppression of libsde's own leak (unless LSAN_OPTIONS is set), and the checks:
#   ok MSG / fail MSG (FAIL, with the first lines of $W/err) / expect MSG GOT WANT
#   finish   prints "N passed, M failed" and returns non-zero when something failed
#   sst2_folder ROWS DEV   an SST-2-layout folder $W/glue/SST-2 whose label is in its words
#            (ROWS training rows; dev.tsv: the header and the first DEV-1 of them)
if [ $# -lt 2 ]; then echo "usage: $0 PEFTBENCH" >&2; exit 2; fi
BIN="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
W="$(mktemp -d "${TMPDIR:-/tmp}/pb-e2e-$1.XXXXXX")"
trap '[ -n "${PB_TEST_KEEP:-}" ] || rm -rf "$W"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ -z "${LSAN_OPTIONS:-}" ]; then
  printf 'leak:libsde.so\n' >"$W/lsan.supp"
  export LSAN_OPTIONS="suppressions=$W/lsan.supp:print_suppressions=0"
fi
n_ok=0
n_fail=0
ok() { n_ok=$((n_ok + 1)); printf 'ok   %s\n' "$1"; }
fail() { n_fail=$((n_fail + 1)); printf 'FAIL %s\n' "$1"; [ -f "$W/err" ] && sed 's/^/       stderr: /' "$W/err" | head -5; }
expect() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi; }
finish() {
  printf '%d passed, %d failed\n' "$n_ok" "$n_fail"
  [ "$n_fail" -eq 0 ]
}
sst2_folder() {
  local words=(the a film was is and it very movie story plot) p i
  mkdir -p "$W/glue/SST-2"
  {
    printf 'sentence\tlabel\n'
    for i in $(seq 0 $(($1 - 1))); do
      if [ $((i % 2)) = 1 ]; then p="good great"; else p="bad awful"; fi
      printf '%s %s %s %s\t%d\n' "${words[i % 11]}" "$p" "${words[(i * 7) % 11]}" "${words[(i * 3) % 11]}" $((i % 2))
    done
  } >"$W/glue/SST-2/train.tsv"
  head -"$2" "$W/glue/SST-2/train.tsv" >"$W/glue/SST-2/dev.tsv"
}
