#!/bin/sh
# The aal command as a user meets it: --help everywhere, bad options named with a
# non-zero exit, and the smoke run learning.
set -u
AAL=${AAL_BIN:-./aal}
. "${top_srcdir:-.}/tests/lib.sh"

expect 0 "usage: aal COMMAND" -- "$AAL" --help
expect 2 "usage: aal COMMAND" -- "$AAL"
expect 0 "^aal [0-9]" -- "$AAL" --version
expect 2 "unknown command 'frobnicate'" -- "$AAL" frobnicate
for cmd in smoke "bench conv" "bench step" "bench kernels" kcheck devices train dump memory theorem gen-data data-info plot; do
  # shellcheck disable=SC2086
  expect 0 "usage: aal $cmd" -- "$AAL" $cmd --help
done
expect 0 "usage: aal bench WHAT" -- "$AAL" bench --help
expect 2 "unknown benchmark 'nope'" -- "$AAL" bench nope
expect 2 "option --steps expects an integer, got 'ten'" -- "$AAL" smoke --steps ten
expect 2 "option --lr expects a finite number, got 'nan'" -- "$AAL" smoke --lr nan
expect 2 "option --seed expects a non-negative integer, got '-3'" -- "$AAL" smoke --seed -3
expect 2 "unknown option '--bogus'" -- "$AAL" smoke --bogus 1
expect 2 "option --steps needs a value" -- "$AAL" smoke --steps
expect 1 "batch 0 must be in 2..4096" -- "$AAL" smoke --batch 0
expect 2 "threads -1 must be in 0..256" -- "$AAL" smoke --threads -1

expect 2 "unknown rule 'sgd'" -- "$AAL" memory --rule sgd
expect 2 "expected 4 block counts" -- "$AAL" memory --blocks 2,2
expect 2 "64 \* width must be a whole number" -- "$AAL" memory --width 0.3
expect 1 "cannot open" -- "$AAL" train --resume "$tmp/no-such-run"
expect 1 "cannot open" -- "$AAL" train --data "$tmp/no-such-data" --out "$tmp/r"
expect 1 "fewer than --batch" -- sh -c "'$AAL' gen-data --out '$tmp/d' --classes 2 --per-class 3 --val-per-class 1 >/dev/null && '$AAL' train --data '$tmp/d' --out '$tmp/r2' --batch 16"
expect 0 "violations" -- "$AAL" theorem --seeds 2 --steps 20 --out "$tmp/th.csv"
expect 2 "problem" -- "$AAL" theorem --problem foo
expect 0 "0 failed" -- "$AAL" kcheck --backend cpu32 --shapes random:2
expect 2 "foo" -- "$AAL" kcheck --backend foo
expect 2 "nope" -- "$AAL" kcheck --backend cpu32 --op nope
expect 2 "random:0" -- "$AAL" kcheck --backend cpu32 --shapes random:0
expect 0 "0 failed" -- "$AAL" kcheck --step --backend cpu32 --rule asa:2,2,2,2 --batch 4 --size 32
expect 2 "nope" -- "$AAL" kcheck --step --backend cpu32 --rule nope
# bench step --profile: the wall time per op of a backend's table (not of the reference)
expect 0 "(outside the ops)" -- "$AAL" bench step --backend cpu32 --rules bp --width 0.125 \
  --batch 2 --repeats 1 --dgemm-n 256 --profile
expect 0 "conv_backward_filter" -- "$AAL" bench step --backend cpu32 --rules bp --width 0.125 \
  --batch 2 --repeats 1 --dgemm-n 256 --profile
expect 2 "profile times a backend's ops" -- "$AAL" bench step --rules bp --width 0.125 \
  --batch 2 --repeats 1 --dgemm-n 256 --profile
# ASA's published decoding (decode=pm1): listed, parsed, the same tape as default ASA
expect 0 "decode=pm1" -- "$AAL" memory --help
expect 0 "decode=pm1" -- "$AAL" train --help
expect 0 "rule asa:2,2,2,2;eps=0.01;lr_expansion=100;decode=pm1," -- "$AAL" memory \
  --rule "asa:2,2,2,2;decode=pm1" --batch 2 --width 0.125 --size 16 --classes 4
"$AAL" memory --rule "asa:2,2,2,2;decode=pm1" --batch 2 --width 0.125 --size 16 --classes 4 \
  | grep '^total' >"$tmp/mem_pm1"
"$AAL" memory --rule "asa:2,2,2,2" --batch 2 --width 0.125 --size 16 --classes 4 \
  | grep '^total' >"$tmp/mem_01"
if [ -s "$tmp/mem_01" ] && cmp -s "$tmp/mem_01" "$tmp/mem_pm1"; then ok; else
  bad "aal memory: decode=pm1's total differs from default ASA's"; fi
expect 2 "decode 'pm2' is not 01 or pm1" -- "$AAL" memory --rule "asa:all;decode=pm2"
expect 2 "options apply to asa only" -- "$AAL" memory --rule "ara:2,2,2,2;decode=pm1"
expect 0 "0 failed" -- "$AAL" kcheck --step --backend cpu32 --rule "asa:2,2,2,2;decode=pm1" \
  --batch 4 --size 32
expect 2 "size 0 must be >= 8" -- "$AAL" kcheck --step --backend cpu32 --size 0
expect 2 "tol-c -1 must be > 0" -- "$AAL" kcheck --step --backend cpu32 --tol-c -1
expect 2 "tol-c 0 must be > 0" -- "$AAL" kcheck --step --backend cpu32 --tol-c=0
expect 2 "blocks '1,1,1,1,': trailing comma" -- "$AAL" memory --blocks 1,1,1,1,
# the models of issue 12: bad names, sizes and rule lengths are refused with the option named
for cmd in train dump "bench step" memory; do
  # shellcheck disable=SC2086  # "bench step" is two words
  expect 2 "--model 'resnet51': expected resnet18" -- "$AAL" $cmd --model resnet51
  # shellcheck disable=SC2086
  expect 2 "--stem 'cifar': expected tiny or imagenet" -- "$AAL" $cmd --stem cifar
done
expect 2 "--model 'resnet51'" -- "$AAL" kcheck --step --backend cpu32 --model resnet51
expect 2 "--policy 'gcp2': expected none, gcp, actnn or gcp-block" -- "$AAL" memory --policy gcp2
expect 2 "--size 31: outside 32..4096 for the imagenet stem" -- "$AAL" memory --stem imagenet --size 31
expect 2 "--size 15: outside 16..4096 for the tiny stem" -- "$AAL" memory --size 15
expect 2 "4 block groups after its plain first block" -- "$AAL" memory --model resnet50 \
  --rule ara:2,2,2,2,2
expect 2 "--blocks '3,4,2000,3'" -- "$AAL" memory --model resnet50 --blocks 3,4,2000,3
expect 0 "policy gcp" -- "$AAL" memory --model resnet50 --stem imagenet --size 224 --batch 512 \
  --classes 1000 --rule ara:3,4,6,2 --policy gcp
expect 0 "resnet152,imagenet,224,512,none,152,64," -- "$AAL" memory --model resnet152 \
  --stem imagenet --size 224 --classes 1000 --batch 512 --rule bp --csv
# ResNet-50 with ARA trains a few steps on the reference and resumes; the step check passes
expect 0 "step 3/3" -- "$AAL" train --model resnet50 --stem imagenet --rule ara:2,2,2,2 \
  --width 0.125 --steps 3 --batch 8 --out "$tmp/r50" --cache "$tmp/cache" --plain
expect 0 "model = resnet50" -- cat "$tmp/r50/config"
expect 1 "--model resnet34 contradicts the run" -- "$AAL" train --resume "$tmp/r50" \
  --model resnet34
expect 0 "PASS: 3075 tensors compared, 0 failed" -- "$AAL" kcheck --step --backend cpu32 \
  --model resnet50 --stem imagenet --batch 8 --size 64

# the trainer on the float32 CPU backend: a tiny run, the backend in the config, resume
if "$AAL" gen-data --out "$tmp/d4" --classes 4 --per-class 8 --val-per-class 2 >/dev/null 2>&1; then
  expect 0 "backend cpu32" -- "$AAL" train --backend cpu32 --data "$tmp/d4" --out "$tmp/r32" \
    --width 0.125 --batch 8 --steps 2 --rule asa:2,2,2,2 --li-every 1 --plain
  expect 0 "backend = cpu32" -- cat "$tmp/r32/config"
  expect 0 "resuming" -- "$AAL" train --resume "$tmp/r32" --steps 3 --plain
  expect 0 "^3," -- cat "$tmp/r32/metrics.csv"
  # a resume refuses options that contradict the run, and takes those that agree
  expect 1 "rule bp contradicts the run in $tmp/r32, which has rule = asa:2,2,2,2" -- \
    "$AAL" train --resume "$tmp/r32" --rule bp --steps 4
  expect 1 "seed 9 contradicts .* seed = 1" -- "$AAL" train --resume "$tmp/r32" --seed 9
  expect 1 "width 0.25 contradicts .* width = 0.125" -- "$AAL" train --resume "$tmp/r32" --width 0.25
  expect 1 "batch 4 contradicts .* batch = 8" -- "$AAL" train --resume "$tmp/r32" --batch=4
  expect 1 "lr 0.5 contradicts" -- "$AAL" train --resume "$tmp/r32" --lr 0.5
  expect 1 "data $tmp/d contradicts .* data = $tmp/d4" -- "$AAL" train --resume "$tmp/r32" --data "$tmp/d"
  expect 1 "epochs is not taken by a resume" -- "$AAL" train --resume "$tmp/r32" --epochs 2
  expect 0 "resuming" -- "$AAL" train --resume "$tmp/r32" --rule "asa:2,2,2,2;eps=0.01" \
    --width 0.125 --batch 8 --data "$tmp/d4/" --backend cpu32 --steps 4 --plain
  expect 0 "^4," -- cat "$tmp/r32/metrics.csv"
  expect 0 "it takes --steps" -- "$AAL" train --help
  # decode=pm1 is kept in the config and by a resume; the default decoding contradicts it
  expect 0 "training asa:2,2,2,2;eps=0.01;lr_expansion=100;decode=pm1 " -- "$AAL" train \
    --backend cpu32 --data "$tmp/d4" --out "$tmp/rpm1" --width 0.125 --batch 8 --steps 2 \
    --rule "asa:2,2,2,2;decode=pm1" --li-every 1 --plain
  expect 0 "^rule = asa:2,2,2,2;eps=0.01;lr_expansion=100;decode=pm1$" -- cat "$tmp/rpm1/config"
  expect 0 "^2,layer1.1.conv1," -- cat "$tmp/rpm1/li.csv"
  expect 1 "rule asa:2,2,2,2 contradicts .*;decode=pm1" -- "$AAL" train --resume "$tmp/rpm1" \
    --rule asa:2,2,2,2 --steps 3
  expect 0 "resuming" -- "$AAL" train --resume "$tmp/rpm1" --rule "asa:2,2,2,2;decode=pm1;eps=0.01" \
    --steps 3 --plain
  expect 0 "^rule = asa:2,2,2,2;eps=0.01;lr_expansion=100;decode=pm1$" -- cat "$tmp/rpm1/config"
  expect 0 "^3," -- cat "$tmp/rpm1/metrics.csv"
  expect 1 "steps -3 must be >= 0" -- "$AAL" train --resume "$tmp/r32" --steps -3
  expect 1 "stop-after -1 must be >= 0" -- "$AAL" train --resume "$tmp/r32" --stop-after -1
  expect 1 "stop-after -1 must be >= 0" -- "$AAL" train --data "$tmp/d4" --out "$tmp/rs" \
    --batch 8 --steps 1 --stop-after -1
  expect 1 "warmup -5 must be >= 0" -- "$AAL" train --data "$tmp/d4" --out "$tmp/rw" \
    --batch 8 --steps 1 --warmup -5
  expect 1 "blocks '1,1,1,1,': trailing comma" -- "$AAL" train --data "$tmp/d4" \
    --out "$tmp/rb" --batch 8 --steps 1 --blocks 1,1,1,1,
  # a run directory another process writes is refused at once (flock(1) holds its lock)
  if command -v flock >/dev/null 2>&1; then
    mkdir -p "$tmp/busy"
    expect 1 "$tmp/busy is in use" -- flock "$tmp/busy/.lock" "$AAL" train --data "$tmp/d4" \
      --out "$tmp/busy" --width 0.125 --batch 8 --steps 1 --plain
    expect 1 "$tmp/r32 is in use" -- flock "$tmp/r32/.lock" "$AAL" train --resume "$tmp/r32" \
      --steps 5 --plain
  fi
  # a run killed before its first checkpoint resumes from step 0; a killed writer's
  # temporary files are removed when the run is next opened
  mkdir -p "$tmp/r0"
  sed 's/^backend = cpu32$/backend = ref/' "$tmp/r32/config" >"$tmp/r0/config"
  : >"$tmp/r0/checkpoint.bin.tmp.AbC123"
  : >"$tmp/r0/metrics.csv.tmp.xYz789"
  expect 0 "no checkpoint yet, so it starts again from step 0" -- "$AAL" train --resume "$tmp/r0" --plain
  expect 0 "^4," -- tail -1 "$tmp/r0/metrics.csv"
  expect 0 "removed" -- sh -c "test ! -e '$tmp/r0/checkpoint.bin.tmp.AbC123' && test ! -e '$tmp/r0/metrics.csv.tmp.xYz789' && echo removed"
  # a directory or a FIFO given as a checkpoint is refused at once, named
  mkdir -p "$tmp/ckdir"
  expect 1 "$tmp/ckdir is a directory, not a checkpoint file" -- timeout 30 "$AAL" dump \
    --data "$tmp/d4" --out "$tmp/dumpdir" --width 0.125 --batch 8 --checkpoint "$tmp/ckdir"
  cp -r "$tmp/r0" "$tmp/rdir"
  rm "$tmp/rdir/checkpoint.bin" && mkdir "$tmp/rdir/checkpoint.bin"
  expect 1 "$tmp/rdir/checkpoint.bin is a directory" -- timeout 30 "$AAL" train --resume "$tmp/rdir"
  if command -v mkfifo >/dev/null 2>&1 && mkfifo "$tmp/ckfifo"; then
    expect 1 "$tmp/ckfifo is a FIFO, not a checkpoint file" -- timeout 30 "$AAL" dump \
      --data "$tmp/d4" --out "$tmp/dumpfifo" --width 0.125 --batch 8 --checkpoint "$tmp/ckfifo"
    cp -r "$tmp/r0" "$tmp/rfifo"
    rm "$tmp/rfifo/checkpoint.bin" && mkfifo "$tmp/rfifo/checkpoint.bin"
    expect 1 "$tmp/rfifo/checkpoint.bin is a FIFO" -- timeout 30 "$AAL" train --resume "$tmp/rfifo"
  fi
  # a step whose successor overflows is refused, named
  expect 1 "step 9223372036854775807 must be in 0..9223372036854775806" -- "$AAL" dump \
    --data "$tmp/d4" --out "$tmp/dumpbig" --width 0.125 --batch 8 --step 9223372036854775807
  # divergence stops the run with exit 1 naming the step; the last checkpoint is kept
  expect 1 "step 3: the loss is .* beyond 1e6 ln(4 classes) .*the run diverged.*$tmp/rdiv/checkpoint.bin" \
    -- "$AAL" train --data "$tmp/d4" --out "$tmp/rdiv" --width 0.125 --batch 8 --steps 20 \
    --lr 999 --warmup 0 --checkpoint-every 1 --plain
  expect 0 "^2," -- tail -1 "$tmp/rdiv/metrics.csv"
  expect 1 "nope" -- "$AAL" train --backend nope --data "$tmp/d4" --out "$tmp/rn" --batch 8 --steps 1
  expect 0 "loss" -- "$AAL" dump --backend cpu32 --data "$tmp/d4" --out "$tmp/dump32" --width 0.125 --batch 8
  # the OpenBLAS thread count (issue 15, finding 12): cpu32's sums depend on it (the
  # control: 1 and 2 threads end apart), so the config records it and a cpu32 resume
  # runs with the run's count whatever OPENBLAS_NUM_THREADS says, refusing another
  # --threads; a ref resume takes any count; a config without the key checks nothing
  thr="--backend cpu32 --data $tmp/d4 --width 0.125 --batch 8 --steps 3 --plain"
  # shellcheck disable=SC2086
  "$AAL" train $thr --out "$tmp/rt" --threads 2 >/dev/null 2>&1
  # shellcheck disable=SC2086
  "$AAL" train $thr --out "$tmp/rt1thr" --threads 1 >/dev/null 2>&1
  expect 0 "^blas_threads = 2$" -- cat "$tmp/rt/config"
  expect 0 "differ" -- sh -c "cmp -s '$tmp/rt/checkpoint.bin' '$tmp/rt1thr/checkpoint.bin' || echo differ"
  # shellcheck disable=SC2086
  expect 0 "stopped after step 1" -- "$AAL" train $thr --out "$tmp/rts" --threads 2 --stop-after 1
  cp -r "$tmp/rts" "$tmp/rtold"
  expect 1 "threads 1 contradicts the run in $tmp/rts, which has blas_threads = 2" -- \
    "$AAL" train --resume "$tmp/rts" --threads 1
  expect 0 "OpenBLAS threads: 2, as the run recorded" -- env OPENBLAS_NUM_THREADS=1 \
    "$AAL" train --resume "$tmp/rts" --threads 0 --plain
  expect 0 "identical" -- sh -c "cmp '$tmp/rt/checkpoint.bin' '$tmp/rts/checkpoint.bin' && echo identical"
  sed -i '/^blas_threads = /d' "$tmp/rtold/config"
  expect 0 "resuming $tmp/rtold at step 1 of 3" -- "$AAL" train --resume "$tmp/rtold" --threads 1 --plain
  expect 0 "stopped after step 1" -- "$AAL" train --data "$tmp/d4" --width 0.125 --batch 8 \
    --steps 3 --plain --out "$tmp/rtref" --threads 1 --stop-after 1
  expect 0 "^blas_threads = 1$" -- cat "$tmp/rtref/config"
  expect 0 "resuming $tmp/rtref at step 1 of 3" -- "$AAL" train --resume "$tmp/rtref" --threads 2 --plain
else
  bad "aal gen-data failed"
fi

# the oneDNN backend (issue 13): the harness, the step check, a training run that resumes
# bit-identically and the conv benchmark; without oneDNN the name is refused naming the
# Debian package
if "$AAL" kcheck --backend dnnl --op add --shapes random:1 2>&1 | grep -q "built without oneDNN"; then
  expect 1 "libdnnl-dev" -- "$AAL" kcheck --backend dnnl --op conv --shapes random:1
  expect 1 "libdnnl-dev" -- "$AAL" bench step --backend dnnl --rules bp --width 0.125 --batch 2
else
  expect 0 "0 failed" -- "$AAL" kcheck --backend dnnl --shapes random:2
  expect 0 "0 failed" -- "$AAL" kcheck --step --backend dnnl --rule asa:2,2,2,2 --batch 4 --size 32
  if "$AAL" gen-data --out "$tmp/dd" --classes 4 --per-class 8 --val-per-class 2 >/dev/null 2>&1; then
    dn="--backend dnnl --data $tmp/dd --width 0.125 --batch 8 --steps 3 --plain --threads 2"
    # shellcheck disable=SC2086
    expect 0 "backend dnnl" -- "$AAL" train $dn --out "$tmp/rd"
    expect 0 "^backend = dnnl$" -- cat "$tmp/rd/config"
    # shellcheck disable=SC2086
    expect 0 "stopped after step 1" -- "$AAL" train $dn --out "$tmp/rds" --stop-after 1
    expect 0 "OpenBLAS threads: 2, as the run recorded" -- env OPENBLAS_NUM_THREADS=1 \
      "$AAL" train --resume "$tmp/rds" --plain
    expect 0 "identical" -- sh -c "cmp '$tmp/rd/checkpoint.bin' '$tmp/rds/checkpoint.bin' && echo identical"
    expect 1 "threads 1 contradicts the run in $tmp/rds, which has blas_threads = 2" -- \
      "$AAL" train --resume "$tmp/rds" --threads 1
  else
    bad "aal gen-data failed"
  fi
  expect 0 "jit" -- "$AAL" bench conv --backend dnnl --batch 2 --repeats 1 --dgemm-n 256
  expect 0 "bn_relu_forward" -- "$AAL" bench step --backend dnnl --rules bp --width 0.125 \
    --batch 2 --repeats 1 --dgemm-n 256 --profile
fi

# Fashion-MNIST: a miniature set in IDX, gzip-compressed as Debian ships the real one
# (printf and gzip only): N images of 28x28 whose bytes cycle through printable text
# (never all zero), and labels i mod 10.
be32() { printf "\\0\\0\\$(printf %03o $(($1 / 256)))\\$(printf %03o $(($1 % 256)))"; }
idx_split() {  # DIR PREFIX N [LABELS]: LABELS (default N) labels for N images
  n=$3; nl=${4:-$3}
  { printf '\0\0\10\3'; be32 "$n"; be32 28; be32 28
    yes 'Fashion-MNIST in IDX, 0123456789' | tr -d '\n' | head -c $((n * 784)); } |
    gzip -c >"$1/$2-images-idx3-ubyte.gz"
  { printf '\0\0\10\1'; be32 "$nl"
    i=0; while [ $i -lt "$nl" ]; do printf "\\$(printf %03o $((i % 10)))"; i=$((i + 1)); done; } |
    gzip -c >"$1/$2-labels-idx1-ubyte.gz"
}
mkdir -p "$tmp/fm" && idx_split "$tmp/fm" train 8 && idx_split "$tmp/fm" t10k 4
expect 0 "format: fashion-mnist" -- "$AAL" data-info --data "$tmp/fm"
expect 0 "images: 1x32x32 (channels x height x width; 28x28 padded" -- "$AAL" data-info --data "$tmp/fm"
expect 0 "class 4: 4 Coat" -- "$AAL" data-info --data "$tmp/fm"
expect 1 "holds Fashion-MNIST (IDX files), which is read without a cache" -- \
  "$AAL" data-info --data "$tmp/fm" --cache "$tmp/fm.cache"
expect 0 "on $tmp/fm (fashion-mnist, 1x32x32; backend ref): 8 train / 4 val images, 10 classes" -- \
  "$AAL" train --data "$tmp/fm" --steps 2 --width 0.125 --batch 4 --out "$tmp/rfm" --plain
expect 0 "^2,.*,0\.[0-9]*,[0-9]" -- tail -1 "$tmp/rfm/metrics.csv"
# stopped and resumed (the data found again from the config), it ends as the whole run did
expect 0 "stopped after step 1" -- "$AAL" train --data "$tmp/fm" --steps 2 --width 0.125 \
  --batch 4 --out "$tmp/rfm2" --plain --stop-after 1
expect 0 "resuming $tmp/rfm2 at step 1 of 2" -- "$AAL" train --resume "$tmp/rfm2" --plain
expect 0 "identical" -- sh -c "cmp '$tmp/rfm/checkpoint.bin' '$tmp/rfm2/checkpoint.bin' && echo identical"
expect 0 "'shape': (4, 1, 32, 32)" -- sh -c "'$AAL' dump --data '$tmp/fm' --out '$tmp/dfm' \
  --width 0.125 --batch 4 && head -c 128 '$tmp/dfm/input.npy'"
# a damaged set is refused, naming the file: 3 labels for the 4 test images
mkdir -p "$tmp/fmbad" && idx_split "$tmp/fmbad" train 8 && idx_split "$tmp/fmbad" t10k 4 3
expect 1 "$tmp/fmbad/t10k-images-idx3-ubyte.gz holds 4 images but $tmp/fmbad/t10k-labels-idx1-ubyte.gz holds 3 labels" \
  -- "$AAL" train --data "$tmp/fmbad" --steps 1 --width 0.125 --batch 4 --out "$tmp/rfmbad"

# the smoke run learns: the last loss is well below the first
"$AAL" smoke --steps 20 --seed 7 >"$tmp/smoke" 2>&1
if [ $? -ne 0 ]; then
  bad "aal smoke failed"; cat "$tmp/smoke"
else
  first=$(awk '/^step +0 /{print $4}' "$tmp/smoke")
  last=$(awk '/^step/{l=$4} END{print l}' "$tmp/smoke")
  if awk -v f="$first" -v l="$last" 'BEGIN{exit !(l < 0.5 * f)}'; then ok; else
    bad "smoke loss did not halve: $first -> $last"; fi
  # same seed, same output: the reference is reproducible
  "$AAL" smoke --steps 20 --seed 7 >"$tmp/smoke2" 2>&1
  if cmp -s "$tmp/smoke" "$tmp/smoke2"; then ok; else bad "smoke run is not reproducible"; fi
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
