#!/usr/bin/env bash
# End-to-end: parameter-shared backbones and ODE-step inference (backbone/share.h, issue 17).
#   bash tests/e2e_share.sh path/to/peftbench        (from the repo root; ctest does this)
#
# - pretrain a tiny unshared backbone, then a shared one from it (--groups 2 --share-init mean)
#   and one from scratch with --random-steps: ALBERT folders (model_type albert, 4 steps over 2
#   groups, ALBERT tensor names, the identity mapping), pretrain.json's sharing block;
# - run --model on the shared folder: the parameter count of 2 sets (closed form);
# - eval --ode-steps 1,2,4: one record per S', FLOPs per example growing with S', counting-only ==
#   instrumented, S'=4 (= S) gives back run's score; S' = 0 and S' = 5 are usage errors (exit 2);
# - ops --groups / --ode-steps: parameters of G sets, backbone MACs of S'=2 = half of S'=4;
#   --groups 3 of 4 layers and pretrain --groups 3 are usage errors (exit 2);
# - plot draws the ODE sweep as a score-vs-FLOPs curve (S'=K points).
set -u
. "$(dirname "$0")/lib/e2e.sh" share "$@"
json() { perl -MJSON::PP -e 'local $/; open(my $h, "<", $ARGV[0]) or die; my $j = JSON::PP->new->decode(<$h>); my $e = $ARGV[1]; my $v = eval $e; print defined $v ? $v : "undef"' "$1" "$2" 2>/dev/null; }

sst2_folder 64 17
PT=(--layers 4 --hidden 32 --heads 4 --ffn 64 --max-len 16 --batch 4 --steps 2 --data-dir "$W/glue" --quiet)

# ---- pretrain: unshared, shared from it (mean), shared from scratch with random steps
"$BIN" pretrain --out "$W/plain" "${PT[@]}" 2>"$W/err"
expect "pretrain unshared exits 0" "$?" 0
"$BIN" pretrain --out "$W/shared" "${PT[@]}" --init-from "$W/plain" --groups 2 --share-init mean 2>"$W/err"
expect "pretrain --groups 2 --init-from exits 0" "$?" 0
expect "config.json model_type" "$(json "$W/shared/config.json" '$j->{model_type}')" albert
expect "config.json steps/groups/embedding_size" \
  "$(json "$W/shared/config.json" 'join ",", $j->{num_hidden_layers}, $j->{num_hidden_groups}, $j->{inner_group_num}, $j->{embedding_size}')" "4,2,1,32"
expect "pretrain.json sharing" "$(json "$W/shared/pretrain.json" 'join ",", $j->{sharing}{steps}, $j->{sharing}{weight_sets}, $j->{sharing}{init}')" \
  "4,2,mean of each group's layers of --init-from"
expect "pretrain.json options keep string values" \
  "$(json "$W/shared/pretrain.json" 'join ",", $j->{options}{"init-from"} eq "'"$W/plain"'" ? 1 : 0, $j->{options}{"share-init"}, $j->{options}{groups}')" "1,mean,2"
names=$(perl -MJSON::PP -e 'open(my $h, "<", $ARGV[0]) or die; read($h, my $n, 8); my $l = unpack("Q<", $n); read($h, my $hd, $l);
  my @k = grep { $_ ne "__metadata__" } keys %{JSON::PP->new->decode($hd)}; print scalar(grep { /^albert\.encoder\.albert_layer_groups\.\d\.albert_layers\.0\./ } @k), ",",
  scalar(grep { /^bert\.encoder/ } @k), ",", scalar(grep { /embedding_hidden_mapping_in/ } @k)' "$W/shared/model.safetensors")
expect "ALBERT tensor names: 2 groups x 16, no BERT layer names, the mapping" "$names" "32,0,2"
"$BIN" pretrain --out "$W/rs" "${PT[@]}" --groups 1 --random-steps --val-steps 1,2,4 2>"$W/err"
expect "pretrain --groups 1 --random-steps exits 0" "$?" 0
expect "random steps recorded" "$(json "$W/rs/pretrain.json" '$j->{sharing}{random_steps} ? 1 : 0')" 1
expect "--val-steps: the loss at S'=4 is the validation loss" \
  "$(json "$W/rs/pretrain.json" 'join ",", scalar(keys %{$j->{val_mlm_loss_at_steps}}), $j->{val_mlm_loss_at_steps}{4} == $j->{val_mlm_loss} ? 1 : 0, $j->{val_mlm_loss_at_steps}{1} != $j->{val_mlm_loss} ? 1 : 0')" "3,1,1"
"$BIN" pretrain --out "$W/rs" --resume --val-steps 5 --quiet >/dev/null 2>"$W/err"
expect "--val-steps 5 of 4 is a usage error" "$?" 2
# a stopped and resumed --random-steps run draws the same S' per step: the same model
RS0=(--layers 4 --hidden 32 --heads 4 --ffn 64 --max-len 16 --batch 4 --steps 4 --data-dir "$W/glue" --quiet --groups 1)
RS=("${RS0[@]}" --random-steps)
"$BIN" pretrain --out "$W/rs4" "${RS[@]}" 2>"$W/err"
"$BIN" pretrain --out "$W/rs4b" "${RS[@]}" --stop-after 2 >/dev/null 2>"$W/err"
expect "random-steps run stopped after 2 steps" "$?" 3
"$BIN" pretrain --out "$W/rs4b" --resume --quiet 2>"$W/err"
expect "random-steps run resumed" "$?" 0
cmp -s "$W/rs4/model.safetensors" "$W/rs4b/model.safetensors" && ok "resumed --random-steps run == uninterrupted" ||
  fail "resumed --random-steps run differs from the uninterrupted one"
"$BIN" pretrain --out "$W/rs4n" "${RS0[@]}" 2>"$W/err" # the same without --random-steps
cmp -s "$W/rs4/model.safetensors" "$W/rs4n/model.safetensors" && fail "--random-steps changed nothing" ||
  ok "--random-steps trains another model"
"$BIN" pretrain --out "$W/bad" "${PT[@]}" --groups 3 >/dev/null 2>"$W/err"
expect "pretrain --groups 3 of 4 layers is a usage error" "$?" 2
grep -q "G=3 weight sets do not divide the 4 layers" "$W/err" && ok "pretrain --groups 3 message" || fail "pretrain --groups 3 message"

# ---- run on the shared folder: 2 weight sets counted once
V=$(wc -l <"$W/shared/vocab.txt")
layer=$((4 * (32 * 32 + 32) + 2 * 32 + 64 * 32 + 64 + 32 * 64 + 32 + 2 * 32))
want=$((V * 32 + 512 * 32 + 2 * 32 + 64 + 2 * layer + 32 * 32 + 32 + 2 * 32 + 2))
"$BIN" run --task sst2 --method lora --model "$W/shared" --data-dir "$W/glue" --steps 3 --batch 8 --max-len 16 \
  --threads 1 --quiet --out "$W/out" --json >"$W/rec" 2>"$W/err"
expect "run on the shared folder exits 0" "$?" 0
expect "shared parameter count (2 sets)" "$(json "$W/rec" '$j->{params}{backbone} + $j->{params}{head}')" "$want"
expect "record backbone steps" "$(json "$W/rec" '$j->{backbone}{config}{steps} . "/" . $j->{backbone}{config}{layers}')" "4/2"
tf=$(json "$W/rec" '$j->{storage}{path}')
score=$(json "$W/rec" '$j->{metrics}{score}')

# ---- eval --ode-steps
"$BIN" eval "$tf" --ode-steps 1,2,4 --data-dir "$W/glue" --out "$W/out" --results "$W/ode.jsonl" --json >"$W/ev" 2>"$W/err"
expect "eval --ode-steps exits 0" "$?" 0
expect "three ODE records" "$(wc -l <"$W/ode.jsonl")" 3
fl=$(perl -MJSON::PP -ne 'my $r = JSON::PP->new->decode($_); print join(":", $r->{ode}{steps_run}, $r->{ode}{step_size},
  $r->{ops}{inference_per_example}{flops}{total} > 0 ? 1 : 0, $r->{ops}{measured}{eval_match} ? 1 : 0), " "' "$W/ode.jsonl")
expect "ode blocks (S', step size, FLOPs, counting == instrumented)" "$fl" "1:4:1:1 2:2:1:1 4:1:1:1 "
inc=$(perl -MJSON::PP -ne 'my $r = JSON::PP->new->decode($_); push @f, $r->{ops}{inference_per_example}{flops}{total}; END { print(($f[0] < $f[1] && $f[1] < $f[2]) ? 1 : 0) }' "$W/ode.jsonl")
expect "FLOPs per example grow with S'" "$inc" 1
s4=$(perl -MJSON::PP -ne 'my $r = JSON::PP->new->decode($_); print $r->{metrics}{score} if $r->{ode}{steps_run} == 4' "$W/ode.jsonl")
expect "S'=S gives back run's score" "$s4" "$score"
"$BIN" eval "$tf" --ode-steps 0 --data-dir "$W/glue" --out "$W/out" >/dev/null 2>"$W/err"
expect "--ode-steps 0 is a usage error" "$?" 2
"$BIN" eval "$tf" --ode-steps 5 --data-dir "$W/glue" --out "$W/out" >/dev/null 2>"$W/err"
expect "--ode-steps 5 of 4 is a usage error" "$?" 2
grep -q "S' must be 1..4" "$W/err" && ok "--ode-steps 5 message" || fail "--ode-steps 5 message"

# ---- ops
"$BIN" ops --method lora --shape 4,32,4,64 --vocab-size 100 --groups 2 --json >"$W/ops" 2>"$W/err"
expect "ops --groups 2 exits 0" "$?" 0
wantb=$((100 * 32 + 512 * 32 + 2 * 32 + 64 + 2 * layer + 32 * 32 + 32))
expect "ops --groups 2 backbone parameters" "$(json "$W/ops" '$j->{reports}[0]{params}{backbone}')" "$wantb"
"$BIN" ops --method lora --shape 4,32,4,64 --vocab-size 100 --groups 1 --ode-steps 2 --json >"$W/ops2" 2>"$W/err"
"$BIN" ops --method lora --shape 4,32,4,64 --vocab-size 100 --groups 1 --json >"$W/ops4" 2>"$W/err"
m2=$(json "$W/ops2" '$j->{reports}[0]{inference}{matmul_macs}{backbone}')
m4=$(json "$W/ops4" '$j->{reports}[0]{inference}{matmul_macs}{backbone}')
expect "backbone MACs at S'=2 are half of S'=4" "$((2 * m2))" "$m4"
"$BIN" ops --method lora --shape 4,32,4,64 --groups 3 >/dev/null 2>"$W/err"
expect "ops --groups 3 of 4 is a usage error" "$?" 2

# ---- plot: the ODE sweep is a curve
"$BIN" plot "$W/ode.jsonl" --out "$W/figs" --format svg >/dev/null 2>"$W/err"
expect "plot exits 0" "$?" 0
grep -q "S'=2" "$W/figs/score_vs_flops.dat" 2>/dev/null && ok "score_vs_flops.dat has the S' points" || fail "no S' points in score_vs_flops.dat"

printf '%d ok, %d failed\n' "$n_ok" "$n_fail"
[ "$n_fail" = 0 ]
