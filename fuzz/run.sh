#!/usr/bin/env bash
# Builds the libFuzzer targets (clang + ASan + UBSan) and runs each for N seconds.
#   fuzz/run.sh [SECONDS] [TARGET...]     default 60 s each, all fuzz/fuzz_*.c targets
# Env: PB_FUZZ_BUILD (build folder, default build-fuzz), CC (default clang-14, else clang).
# The committed seed corpora fuzz/corpus/<target>/ are read only; new inputs go to
# $BUILD/corpus/<target>/ and crash reproducers to $BUILD/crashes/<target>/. Exits non-zero
# if any target found a crash (re-run one with: $BUILD/<target> $BUILD/crashes/<target>/crash-*).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"
shift || true
BUILD="${PB_FUZZ_BUILD:-build-fuzz}"
CC="${CC:-$(command -v clang-14 || command -v clang)}"
[ -n "$CC" ] || { echo "fuzz/run.sh: clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

CC="$CC" cmake -S . -B "$BUILD" -DPB_FUZZ=ON -DPB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g >/dev/null \
  || { echo "fuzz/run.sh: cmake configure failed" >&2; exit 2; }
mkdir -p "$BUILD"
cmake --build "$BUILD" -j2 --target fuzz_all >"$BUILD/fuzz-build.log" 2>&1 \
  || { tail -30 "$BUILD/fuzz-build.log" >&2; echo "fuzz/run.sh: build failed (log: $BUILD/fuzz-build.log)" >&2; exit 2; }

if [ "$#" -gt 0 ]; then targets=("$@"); else
  targets=(); for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
fail=0
for t in "${targets[@]}"; do
  bin="$BUILD/$t"
  [ -x "$bin" ] || { echo "fuzz/run.sh: no target $t" >&2; fail=1; continue; }
  mkdir -p "$BUILD/corpus/$t" "$BUILD/crashes/$t"
  log="$BUILD/crashes/$t/log.txt"
  seeds="fuzz/corpus/$t"; [ -d "$seeds" ] || seeds=""
  "$bin" "$BUILD/corpus/$t" $seeds -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$BUILD/crashes/$t/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{s+=$2} END{print s+0}')
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    echo "FAIL $t after ${SECS}s: exit $rc; see $log and $BUILD/crashes/$t/"
    grep -m3 -E 'ERROR: |runtime error|SUMMARY' "$log" | sed 's/^/    /'
    fail=1
  else
    echo "ok   $t: ${SECS}s, $runs runs, $cov, corpus $(ls "$BUILD/corpus/$t" | wc -l) files"
  fi
done
exit $fail
