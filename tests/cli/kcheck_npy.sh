#!/bin/sh
# `aal kcheck --npy DIR` without Python: tests/check/kcheck_npy_dirs (C) writes each
# DIR (op.txt and .npy files: inputs from the printed seed, candidates from cpu32's
# float32 kernels, a naive float32 conv, the naive conv storing float16 and bfloat16,
# wrong outputs and bad files), and each must give its exit status and name its file:
#   0  every output given passes (one row per output: err/bound, PASS, the worst element);
#   1  an output fails (a moved element, an off-by-one, a NaN, a flipped mask bit);
#   2  a file that cannot be checked (wrong shape, wrong dtype, missing, truncated,
#      bfloat16 bits under float32, a bad op file, no output), named in the message.
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
AAL=${AAL_BIN:-./aal}
. "$srcdir/tests/lib.sh"
dirs=$tmp/dirs
mkdir "$dirs"
if ! "$builddir/tests/check/kcheck_npy_dirs" "$dirs"; then
  echo "kcheck_npy: the helper could not write the directories"; exit 1
fi

# passes: one PASS row per output given; the not-given var of bn_forward says so
for d in conv_cpu32 conv_naive conv_float16 conv_bfloat16 conv_backward_data_cpu32 \
         conv_backward_filter_cpu32 bn_forward_cpu32 bn_backward_cpu32 relu_cpu32 xent_cpu32 \
         sgd_cpu32; do
  expect 0 "PASS" -- "$AAL" kcheck --npy "$dirs/$d"
  if grep -q "FAIL" "$tmp/out"; then bad "$d: a FAIL row"; sed 's/^/  | /' "$tmp/out"; fi
done
expect 0 "^y  *[0-9.e-]*  PASS  y\[[0-9],[0-9],[0-9],[0-9]\] ref=.* got=.* err=.* bound=.*  $dirs/conv_cpu32/y.npy" -- \
  "$AAL" kcheck --npy "$dirs/conv_cpu32"
expect 0 "kcheck conv_forward: arithmetic u = 2^-24, storage u = 2^-11" -- "$AAL" kcheck --npy "$dirs/conv_float16"
expect 0 "storage u = 2^-8" -- "$AAL" kcheck --npy "$dirs/conv_bfloat16"
expect 0 "^var .*(not given)" -- "$AAL" kcheck --npy "$dirs/bn_forward_cpu32"
expect 0 "3 outputs checked, 0 failed" -- "$AAL" kcheck --npy "$dirs/bn_forward_cpu32"
expect 0 "^mask .*PASS" -- "$AAL" kcheck --npy "$dirs/relu_cpu32"
expect 0 "^loss .*PASS  loss\[\] " -- "$AAL" kcheck --npy "$dirs/xent_cpu32"
expect 0 "$dirs/sgd_cpu32/w_new.npy" -- "$AAL" kcheck --npy "$dirs/sgd_cpu32"

# failures: exit 1, the row FAIL, the file named
expect 1 "^y .*FAIL  y\[0,0,3,2\] " -- "$AAL" kcheck --npy "$dirs/conv_perturbed"
expect 1 "aal kcheck: $dirs/conv_perturbed/y.npy: FAIL, err/bound" -- "$AAL" kcheck --npy "$dirs/conv_perturbed"
expect 1 "$dirs/conv_offbyone/y.npy: FAIL" -- "$AAL" kcheck --npy "$dirs/conv_offbyone"
expect 1 "^y  *inf  FAIL  y\[0,0,1,0\] ref=.* got=nan" -- "$AAL" kcheck --npy "$dirs/conv_nan"
expect 1 "^mask .*FAIL  mask\[2,23\] ref=.*1 wrong bits" -- "$AAL" kcheck --npy "$dirs/relu_wrong_bit"

# files that cannot be checked: exit 2, the file named
expect 2 "$dirs/bad_shape/y.npy: shape (2, 4, 6, 4) where conv_forward gives (2, 4, 6, 5)" -- \
  "$AAL" kcheck --npy "$dirs/bad_shape"
expect 2 "$dirs/bad_dtype/x.npy: x holds float64; conv_forward takes float32" -- \
  "$AAL" kcheck --npy "$dirs/bad_dtype"
expect 2 "$dirs/missing/w.npy: cannot open: No such file" -- "$AAL" kcheck --npy "$dirs/missing"
expect 2 "$dirs/truncated/y.npy: truncated: 953 bytes of data where its shape and dtype '<f4' need 960" -- \
  "$AAL" kcheck --npy "$dirs/truncated"
expect 2 "$dirs/u2_float32/x.npy: uint16 ('<u2') is how bfloat16 arrives" -- \
  "$AAL" kcheck --npy "$dirs/u2_float32"
expect 2 "$dirs/bad_op/op.txt: unknown op 'conv_sideways' (ops: conv_forward" -- \
  "$AAL" kcheck --npy "$dirs/bad_op"
expect 2 "$dirs/bad_key/op.txt:3: unknown key 'strides'" -- "$AAL" kcheck --npy "$dirs/bad_key"
expect 2 "$dirs/missing_arg/op.txt: conv_forward needs the argument pad" -- \
  "$AAL" kcheck --npy "$dirs/missing_arg"
expect 2 "$dirs/no_output holds no output of the candidate (conv_forward gives y.npy)" -- \
  "$AAL" kcheck --npy "$dirs/no_output"
expect 2 "$tmp/nowhere/op.txt: cannot open" -- "$AAL" kcheck --npy "$tmp/nowhere"
expect 2 "--npy takes no other option (--backend given)" -- \
  "$AAL" kcheck --npy "$dirs/conv_cpu32" --backend cpu32
expect 0 "--npy DIR" -- "$AAL" kcheck --help
expect 0 "conv_forward         x, w -> y; stride pad" -- "$AAL" kcheck --help

echo "kcheck_npy: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
