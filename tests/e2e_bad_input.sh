#!/usr/bin/env bash
# End-to-end: bad input never crashes the CLI and never loses a result.
#   bash tests/e2e_bad_input.sh path/to/peftbench        (from the repo root; ctest does this)
#
# For every bad input below the CLI must
#   - exit non-zero, and not by a signal or a sanitizer abort (exit < 124),
#   - print exactly one line on stderr (runs use --quiet), naming the file and the problem
#     (checked with a pattern per case),
#   - leave the existing results JSONL (one earlier valid record) byte-identical.
# Inputs are small: the tiny fixture model (tests/fixtures/tiny_bert, 2 layers, d=32, its own
# vocab) and a few-line SST-2 folder in the official layout written here (the real GLUE files
# are never copied). Only bash, coreutils and perl (for byte edits of binary files) are used.
set -u
if [ $# -lt 1 ]; then echo "usage: $0 PEFTBENCH" >&2; exit 2; fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
command -v perl >/dev/null || { echo "e2e_bad_input: perl is required" >&2; exit 2; }
TINY=tests/fixtures/tiny_bert
[ -f "$TINY/model.safetensors" ] || { echo "e2e_bad_input: run from the repo root ($TINY missing)" >&2; exit 2; }

W="$(mktemp -d "${TMPDIR:-/tmp}/pb-e2e-bad.XXXXXX")"
trap 'rm -rf "$W"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# under a sanitizer build: libsde (PAPI's SDE library) leaks its own strdup'ed names; that is
# not ours, so suppress it unless the caller set LSAN_OPTIONS already
if [ -z "${LSAN_OPTIONS:-}" ]; then
  printf 'leak:libsde.so\n' >"$W/lsan.supp"
  export LSAN_OPTIONS="suppressions=$W/lsan.supp:print_suppressions=0"
fi
R="$W/results.jsonl"
T0=$SECONDS
n_ok=0
n_fail=0

# ---------------------------------------------------------------- data and models

# mkdata DIR: DIR/SST-2/{train,dev}.tsv in the official layout (header "sentence<TAB>label").
mkdata() {
  mkdir -p "$1/SST-2"
  local words=(the a good bad film was is and it not very fine dull great awful) i
  {
    printf 'sentence\tlabel\n'
    for i in $(seq 0 31); do
      printf '%s %s %s %s \t%d\n' "${words[i % 15]}" "${words[(i * 7) % 15]}" "${words[(i * 3) % 15]}" \
        "${words[(i * 11) % 15]}" $((i % 2))
    done
  } >"$1/SST-2/train.tsv"
  head -9 "$1/SST-2/train.tsv" >"$1/SST-2/dev.tsv"
}

# mkmodel NAME: a copy of the tiny fixture folder at $W/NAME (then edited by the caller)
mkmodel() {
  mkdir -p "$W/$1"
  cp "$TINY/config.json" "$TINY/model.safetensors" "$TINY/vocab.txt" "$W/$1/"
  echo "$W/$1"
}

# st_edit FILE PERL: applies a same-length perl substitution to the safetensors header only
st_edit() {
  perl -e '
    my ($f, $code) = @ARGV;
    open(my $h, "+<:raw", $f) or die "$f: $!";
    read($h, my $len8, 8) == 8 or die "short";
    my $n = unpack("Q<", $len8);
    read($h, my $hdr, $n) == $n or die "short header";
    my $old = length $hdr;
    $_ = $hdr; eval $code; die $@ if $@;
    die "edit changed the header length or matched nothing\n" if length($_) != $old || $_ eq $hdr;
    seek($h, 8, 0); print $h $_; close $h;' "$1" "$2" || { echo "FAIL test set-up: st_edit $1 $2"; exit 1; }
}

# st_poke FILE TENSOR BYTES: overwrites the first bytes of TENSOR's data with BYTES (perl string)
st_poke() {
  perl -e '
    my ($f, $t, $bytes) = @ARGV;
    $bytes = eval $bytes;
    open(my $h, "+<:raw", $f) or die "$f: $!";
    read($h, my $len8, 8); my $n = unpack("Q<", $len8); read($h, my $hdr, $n);
    $hdr =~ /"\Q$t\E":\{[^}]*"data_offsets":\[(\d+),/ or die "no tensor $t\n";
    seek($h, 8 + $n + $1, 0); print $h $bytes; close $h;' "$1" "$2" "$3" || { echo "FAIL test set-up: st_poke $1 $2"; exit 1; }
}

# ---------------------------------------------------------------- the check

# check NAME PATTERN CMD...: runs CMD, which must fail cleanly with one stderr line matching
# the extended regex PATTERN, leaving the results file unchanged.
check() {
  local name="$1" pat="$2" rc why=""
  shift 2
  "$@" >"$W/stdout" 2>"$W/stderr" </dev/null
  rc=$?
  judge "$name" "$pat" "$rc"
}

judge() {
  local name="$1" pat="$2" rc="$3" why="" nl
  [ "$rc" -eq 0 ] && why="$why; exit status 0"
  [ "$rc" -ge 124 ] && why="$why; exit status $rc (killed by a signal or a sanitizer?)"
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault|core dumped' "$W/stderr"; then
    why="$why; crash or sanitizer report"
  fi
  nl=$(grep -c '' "$W/stderr")
  [ "$nl" -ne 1 ] && why="$why; $nl lines on stderr (want exactly 1)"
  grep -qE -- "$pat" "$W/stderr" || why="$why; stderr does not match /$pat/"
  cmp -s "$R" "$W/results.orig" || why="$why; the results file changed"
  if [ -z "$why" ]; then
    n_ok=$((n_ok + 1))
    printf 'ok   %-34s exit %d: %s\n' "$name" "$rc" "$(head -c 200 "$W/stderr")"
  else
    n_fail=$((n_fail + 1))
    printf 'FAIL %-34s%s\n' "$name" "$why"
    sed 's/^/       stderr: /' "$W/stderr" | head -8
    cp "$R" "$W/results.orig" 2>/dev/null # keep checking the later cases against what is there now
  fi
}

# ---------------------------------------------------------------- baseline: one valid record

GOOD="$W/glue"
mkdata "$GOOD"
# the tiny fixture has a 3-label head: SST-2 needs a new one (--new-head)
RUN=(run --task sst2 --method lora --epochs 1 --batch 8 --max-len 32 --quiet --seed 1 --new-head)
"$BIN" "${RUN[@]}" --model "$TINY" --data-dir "$GOOD" --out "$W/out" --results "$R" >"$W/stdout" 2>"$W/stderr"
rc=$?
if [ $rc -ne 0 ] || [ "$(grep -c '' "$R" 2>/dev/null)" != 1 ]; then
  echo "FAIL baseline run (exit $rc) did not write one record:"; cat "$W/stderr"; exit 1
fi
cp "$R" "$W/results.orig"
TASKFILE=$(perl -ne 'print $1 if /"storage":\{"path":"([^"]+)"/' "$R")
[ -f "$TASKFILE" ] || { echo "FAIL baseline run wrote no task file $TASKFILE"; exit 1; }
# every later run writes its task file elsewhere, so the baseline task file stays valid
TRUN=("${RUN[@]}" --data-dir "$GOOD" --out "$W/out2" --results "$R")
echo "baseline: 1 record in $R, task file $(basename "$TASKFILE")"

# ---------------------------------------------------------------- safetensors: model folder

m=$(mkmodel m_trunc_hdr)
head -c 100 "$TINY/model.safetensors" >"$m/model.safetensors"
check "model: truncated header" "m_trunc_hdr/model.safetensors.*(header length|truncated)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_trunc_data)
head -c 50000 "$TINY/model.safetensors" >"$m/model.safetensors"
check "model: truncated data" "m_trunc_data/model.safetensors.*(past the data buffer|truncated)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_short)
printf '\x10\x00\x00' >"$m/model.safetensors"
check "model: 3-byte file" "m_short/model.safetensors.*(shorter|bytes)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_empty)
: >"$m/model.safetensors"
check "model: empty model.safetensors" "m_empty/model.safetensors" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_huge_hdr)
{ printf '\xff\xff\xff\xff\xff\xff\xff\x7f'; tail -c +9 "$TINY/model.safetensors"; } >"$m/model.safetensors"
check "model: oversized header length" "m_huge_hdr/model.safetensors.*header length" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_offsets)
st_edit "$m/model.safetensors" 's/"data_offsets":\[0,12672\]/"data_offsets":[0,92672]/'
check "model: offsets past the end" "m_offsets/model.safetensors.*word_embeddings.*past" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_overlap)
st_edit "$m/model.safetensors" 's/"data_offsets":\[12672,17792\]/"data_offsets":[11672,16792]/'
check "model: overlapping tensors" "m_overlap/model.safetensors.*overlap" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_badjson)
st_edit "$m/model.safetensors" 's/\{"__metadata__"/["__metadata__"/'
check "model: header not JSON object" "m_badjson/model.safetensors.*(JSON|header)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_shape)
st_edit "$m/model.safetensors" 's/"shape":\[99,32\]/"shape":[32,99]/'
check "model: wrong shape for the config" "word_embeddings.*(32, 99|32,99).*|shape" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_dtype)
st_edit "$m/model.safetensors" 's/"dtype":"F32","shape":\[99,32\]/"dtype":"F16","shape":[99,32]/'
check "model: wrong dtype (size mismatch)" "m_dtype/model.safetensors.*word_embeddings.*F16" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_f8)
st_edit "$m/model.safetensors" 's/"dtype":"F32","shape":\[32\],"data_offsets":\[18048,18176\]/"dtype":"U8","shape":[128],"data_offsets":[18048,18176]/'
check "model: wrong dtype (U8 [128])" "LayerNorm.weight.*(shape|128)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_nan)
st_poke "$m/model.safetensors" bert.encoder.layer.1.attention.self.key.weight '"\x00\x00\xc0\x7f"'
check "model: NaN in a tensor" "layer\.1\.attention\.self\.key\.weight.*(NaN|finite|nan)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_inf)
st_poke "$m/model.safetensors" bert.embeddings.LayerNorm.bias '"\x00\x00\x80\xff"'
check "model: -inf in a tensor" "embeddings\.LayerNorm\.bias.*(inf|finite)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_missing)
st_edit "$m/model.safetensors" 's/"bert\.embeddings\.LayerNorm\.bias"/"bert.embeddings.LayerNorm.xxxx"/'
check "model: missing tensor" "embeddings\.LayerNorm\.bias" "$BIN" "${TRUN[@]}" --model "$m"

# ---------------------------------------------------------------- config.json, vocab, folders

m=$(mkmodel m_cfg_empty)
: >"$m/config.json"
check "config.json: empty" "m_cfg_empty/config.json" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_cfg_type)
perl -0pi -e 's/"hidden_size": 32/"hidden_size": "32"/' "$m/config.json"
check "config.json: wrong field type" "m_cfg_type/config.json.*hidden_size" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_cfg_size)
perl -0pi -e 's/"hidden_size": 32/"hidden_size": 64/' "$m/config.json"
check "config.json: disagrees with weights" "word_embeddings.*(shape|64)" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_cfg_missing)
rm "$m/config.json"
check "config.json: missing" "m_cfg_missing/config.json" "$BIN" "${TRUN[@]}" --model "$m"

m=$(mkmodel m_vocab_empty)
: >"$m/vocab.txt"
check "vocab.txt: empty" "m_vocab_empty/vocab.txt.*empty" "$BIN" "${TRUN[@]}" --model "$m"

# (a vocabulary SMALLER than vocab_size is fine: every id it gives has an embedding row)
m=$(mkmodel m_vocab_big)
seq 1 20 | sed 's/^/extra/' >>"$m/vocab.txt"
check "vocab.txt: more tokens than vocab_size" "m_vocab_big/vocab.txt.*99" "$BIN" "${TRUN[@]}" --model "$m"

check "--model: no such folder" "$W/nosuchmodel" "$BIN" "${TRUN[@]}" --model "$W/nosuchmodel"

# ---------------------------------------------------------------- GLUE TSV

bad_data() { # bad_data NAME: a fresh copy of the good data folder at $W/NAME
  rm -rf "${W:?}/$1"
  mkdata "$W/$1"
  echo "$W/$1"
}
RUNM=("${RUN[@]}" --model "$TINY" --out "$W/out2" --results "$R")

d=$(bad_data d_utf8)
perl -pi -e 's/^good/go\xff\xfeod/ if $. == 4' "$d/SST-2/train.tsv"
check "tsv: non-UTF-8 text" "d_utf8/SST-2/train.tsv:4: invalid UTF-8" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_nul)
perl -pi -e 's/ / \x00 / if $. == 6' "$d/SST-2/dev.tsv"
check "tsv: NUL byte" "d_nul/SST-2/dev.tsv:6:" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_empty)
: >"$d/SST-2/train.tsv"
check "tsv: empty train file" "d_empty/SST-2/train.tsv.*empty" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_hdronly)
printf 'sentence\tlabel\n' >"$d/SST-2/dev.tsv"
check "tsv: header only" "d_hdronly/SST-2/dev.tsv.*no data rows" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_cols)
perl -pi -e 's/\t[01]$// if $. == 5' "$d/SST-2/train.tsv"
check "tsv: missing column" "d_cols/SST-2/train.tsv:5: too few columns" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_extra)
perl -pi -e 's/$/\textra/ if $. == 3' "$d/SST-2/dev.tsv"
check "tsv: extra column" "d_extra/SST-2/dev.tsv:3: too many columns" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_header)
perl -pi -e 's/^sentence\tlabel/text\tlabel/ if $. == 1' "$d/SST-2/train.tsv"
check "tsv: wrong header" "d_header/SST-2/train.tsv:1: wrong header" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_label)
perl -pi -e 's/\t[01]$/\t2/ if $. == 7' "$d/SST-2/train.tsv"
check "tsv: label out of range (2)" "d_label/SST-2/train.tsv:7: label '2'" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_label_neg)
perl -pi -e 's/\t[01]$/\t-1/ if $. == 2' "$d/SST-2/dev.tsv"
check "tsv: label out of range (-1)" "d_label_neg/SST-2/dev.tsv:2: label '-1'" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_blank)
perl -pi -e 's/^.*$// if $. == 4' "$d/SST-2/train.tsv"
check "tsv: blank line inside" "d_blank/SST-2/train.tsv:4: blank line" "$BIN" "${RUNM[@]}" --data-dir "$d"

d=$(bad_data d_nodev)
rm "$d/SST-2/dev.tsv"
check "tsv: dev file missing" "d_nodev/SST-2.*dev\.tsv" "$BIN" "${RUNM[@]}" --data-dir "$d"

mkdir -p "$W/stsb/STS-B"
printf 'index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n' >"$W/stsb/STS-B/train.tsv"
printf '0\tmain\tf\t2012\t0\tnone\tnone\tA man runs.\tA man is running.\t%s\n' 4.5 7.25 >>"$W/stsb/STS-B/train.tsv"
cp "$W/stsb/STS-B/train.tsv" "$W/stsb/STS-B/dev.tsv"
check "tsv: STS-B score outside [0, 5]" "stsb/STS-B/train.tsv:3: score 7.25 outside" "$BIN" run --task stsb --method lora \
  --model "$TINY" --epochs 1 --max-len 32 --quiet --data-dir "$W/stsb" --out "$W/out2" --results "$R"

check "--data-dir: no such folder" "$W/nosuchdata" "$BIN" "${RUN[@]}" --model "$TINY" --data-dir "$W/nosuchdata" --results "$R"

# ---------------------------------------------------------------- task files (eval)

EVAL=(eval --data-dir "$GOOD" --out "$W/evalout")
cp "$TASKFILE" "$W/t_shape.safetensors"
st_edit "$W/t_shape.safetensors" 's/"classifier\.weight":\{"shape":\[2,32\]/"classifier.weight":{"shape":[32,2]/'
check "eval: tensor shape changed" "classifier\.weight.*(32, 2|shape)" "$BIN" "${EVAL[@]}" "$W/t_shape.safetensors"

cp "$TASKFILE" "$W/t_dtype.safetensors"
st_edit "$W/t_dtype.safetensors" 's/("classifier\.weight":\{[^}]*"dtype":")F32/${1}F64/'
check "eval: wrong dtype" "t_dtype.safetensors.*classifier\.weight.*F64" "$BIN" "${EVAL[@]}" "$W/t_dtype.safetensors"

cp "$TASKFILE" "$W/t_nan.safetensors"
st_poke "$W/t_nan.safetensors" classifier.bias '"\x00\x00\xc0\x7f"'
check "eval: NaN in a task tensor" "classifier\.bias.*(NaN|finite|nan)" "$BIN" "${EVAL[@]}" "$W/t_nan.safetensors"

head -c 40 "$TASKFILE" >"$W/t_trunc.safetensors"
check "eval: truncated task file" "t_trunc.safetensors.*(header length|truncated)" "$BIN" "${EVAL[@]}" "$W/t_trunc.safetensors"

: >"$W/t_empty.safetensors"
check "eval: empty task file" "t_empty.safetensors" "$BIN" "${EVAL[@]}" "$W/t_empty.safetensors"

cp "$TINY/model.safetensors" "$W/t_notask.safetensors"
check "eval: not a task file" "t_notask.safetensors.*(task|format)" "$BIN" "${EVAL[@]}" "$W/t_notask.safetensors"

cp "$TASKFILE" "$W/t_meta.safetensors"
st_edit "$W/t_meta.safetensors" 's/"method":"lora"/"method":"lorb"/'
check "eval: unknown method in metadata" "lorb" "$BIN" "${EVAL[@]}" "$W/t_meta.safetensors"

cp "$TASKFILE" "$W/t_task.safetensors"
st_edit "$W/t_task.safetensors" 's/"task":"sst2"/"task":"sst9"/'
check "eval: unknown task in metadata" "t_task.safetensors" "$BIN" "${EVAL[@]}" "$W/t_task.safetensors"

# a random-initialised backbone is rebuilt from the shape in the metadata (backbone_config)
"$BIN" run --task sst2 --method lora --shape 1,32,2,64 --epochs 1 --batch 8 --max-len 32 --quiet --data-dir "$GOOD" \
  --out "$W/out_rand" >/dev/null 2>&1 || { echo "FAIL set-up: random-init run"; exit 1; }
cp "$W"/out_rand/sst2-lora-*-s0.safetensors "$W/t_bconf.safetensors"
st_edit "$W/t_bconf.safetensors" 's/\\"layers\\":1/\\"xayers\\":1/'
check "eval: backbone_config lacks a field" "t_bconf.safetensors.*backbone_config" "$BIN" "${EVAL[@]}" "$W/t_bconf.safetensors"

check "eval: no such file" "$W/nosuch.safetensors" "$BIN" "${EVAL[@]}" "$W/nosuch.safetensors"

# ---------------------------------------------------------------- training diverges

# AdamW with --lr 10 alone stays finite (normalised steps, LayerNorm): the loss jumps around but
# a record is written. lr x weight decay = 100 multiplies the weights by -99 per step: inf, NaN.
check "diverging loss (full, NaN)" "diverged at step" "$BIN" run --task sst2 --method full --model "$TINY" --new-head --lr 10 --weight-decay 10 \
  --epochs 20 --batch 8 --max-len 32 --quiet --data-dir "$GOOD" --out "$W/out2" --results "$R"

# ---------------------------------------------------------------- CLI usage

check "unknown command" "unknown command 'frobnicate'" "$BIN" frobnicate
check "unknown option" "bogus" "$BIN" run --task sst2 --method lora --bogus
check "option without value" "--epochs" "$BIN" run --task sst2 --method lora --epochs
check "bad number" "--epochs 'abc'" "$BIN" run --task sst2 --method lora --epochs abc
check "--lr out of range" "--lr" "$BIN" run --task sst2 --method lora --lr 1e9
check "unknown task" "unknown task 'sst3'" "$BIN" "${TRUN[@]/sst2/sst3}" --model "$TINY"
check "unknown method" "lorax" "$BIN" "${TRUN[@]/lora/lorax}" --model "$TINY"
check "unknown method option" "zzz" "$BIN" "${TRUN[@]}" --model "$TINY" --opt zzz=1
check "bad method option value" "(r|rank).*(abc)|abc" "$BIN" "${TRUN[@]}" --model "$TINY" --opt r=abc
check "missing --task" "--task" "$BIN" run --method lora
check "eval without a file" "task file" "$BIN" eval
check "stray argument" "unexpected argument" "$BIN" run --task sst2 --method lora extra

# ---------------------------------------------------------------- results / output not writable

for bad in /dev/null/x "$W/adir" /proc/version /dev/full; do
  mkdir -p "$W/adir"
  check "--results $bad" "$bad" "$BIN" "${RUN[@]}" --model "$TINY" --data-dir "$GOOD" --out "$W/out2" --results "$bad"
done
check "--out under a file" "/dev/null/out" "$BIN" "${RUN[@]}" --model "$TINY" --data-dir "$GOOD" --out /dev/null/out --results "$R"

# ---------------------------------------------------------------- SIGINT / SIGTERM during a run

# Without --quiet the run prints "method: ..." once its signal handlers are installed and the
# model is built; the signal is sent just after that, so a slow (sanitizer) build cannot be hit
# before it is ready. Only the last stderr line (the error) is judged.
SRUN=(run --task sst2 --method lora --batch 8 --max-len 32 --seed 1 --new-head --model "$TINY" --data-dir "$GOOD")
for sig in INT TERM; do
  "$BIN" "${SRUN[@]}" --steps 1000000 --out "$W/out_sig" --results "$R" >"$W/stdout" 2>"$W/stderr_all" </dev/null &
  pid=$!
  for _ in $(seq 1 300); do grep -q '^method:' "$W/stderr_all" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  sleep 0.5
  kill -s "$sig" "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    echo "FAIL SIG$sig during a run: still running 10 s after the signal"
    n_fail=$((n_fail + 1))
    wait "$pid" 2>/dev/null
    continue
  fi
  wait "$pid"
  rc=$?
  tail -n 1 "$W/stderr_all" >"$W/stderr"
  judge "SIG$sig during a run" "interrupted.*(not|no ).*(result|written)" $rc
  if ls "$W/out_sig"/*.safetensors >/dev/null 2>&1; then
    echo "FAIL SIG$sig during a run: a task file was written"
    n_fail=$((n_fail + 1))
  fi
done

# the baseline record is still the only one and still parses as one JSON line
[ "$(grep -c '' "$R")" = 1 ] || { echo "FAIL results file no longer has exactly one line"; n_fail=$((n_fail + 1)); }

echo "e2e_bad_input: $n_ok ok, $n_fail failed ($((SECONDS - T0)) s)"
[ "$n_fail" -eq 0 ]
