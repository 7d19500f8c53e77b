# Sourced by bench/run.sh and bench/bf16.sh after their options (BUILD set): checks that Debian's
# PyTorch is there (PY), builds bench_backbone in $BUILD when needed and sets BIN to it.
PY=/usr/bin/python3
"$PY" -c "import torch" 2>/dev/null || { echo "bench: $PY has no torch (apt-get install python3-torch)" >&2; exit 2; }
if [ ! -x "$BUILD/bench/bench_backbone" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j2 --target bench_backbone >/dev/null
BIN="$BUILD/bench/bench_backbone"
