#!/bin/sh
# examples/check_torch_conv.py: PyTorch's float32 conv2d (forward, backward-data,
# backward-filter) and batch norm (forward, backward) written in the --npy layout and
# checked by `aal kcheck --npy`: every one must pass, the perturbed copies (conv's y,
# batch norm's dx) must fail; --help and bad options.  Skipped (77) without numpy and
# PyTorch for /usr/bin/python3 (Debian's python3-numpy, python3-torch).
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
py=/usr/bin/python3
if ! "$py" -c 'import numpy, torch' >/dev/null 2>&1; then
  echo "torch_conv: no numpy and PyTorch for $py (Debian's python3-torch), skipped"
  exit 77
fi
srcdir=${top_srcdir:-.}
script=$srcdir/examples/check_torch_conv.py
AAL=${AAL_BIN:-./aal}
. "$srcdir/tests/lib.sh"

expect 0 "usage: examples/check_torch_conv.py" -- "$py" "$script" --help
expect 2 "unrecognized arguments: --bogus" -- "$py" "$script" --bogus
expect 2 "aal /nonexistent/aal: no such command" -- "$py" "$script" --aal /nonexistent/aal

"$py" "$script" --aal "$AAL" --out "$tmp/t" --seed 3 >"$tmp/run" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "the example exited $rc"; sed 's/^/  | /' "$tmp/run" | tail -40; }
for op in conv_forward conv_backward_data conv_backward_filter bn_forward bn_backward; do
  grep -q "^check_torch_conv: $op  *PASS (exit 0, worst err/bound" "$tmp/run" && ok ||
    bad "$op did not pass"
  # and the directory it kept checks again on its own
  "$AAL" kcheck --npy "$tmp/t/$op" >/dev/null 2>&1 && ok || bad "aal kcheck --npy $tmp/t/$op"
done
for op in conv_forward_perturbed bn_backward_perturbed; do
  grep -q "^check_torch_conv: $op  *FAIL (exit 1, worst err/bound" "$tmp/run" && ok ||
    bad "$op was not reported failing"
done
grep -q "aal kcheck: $tmp/t/conv_forward_perturbed/y.npy: FAIL" "$tmp/run" && ok ||
  bad "the perturbed y.npy is not named"
grep -q "^dx .*FAIL  dx\[2,5,6,7\]" "$tmp/run" && ok || bad "the perturbed dx element is not the worst"
grep -q "every PyTorch output passes and every perturbed copy fails" "$tmp/run" && ok ||
  bad "no final verdict"
grep "^check_torch_conv: " "$tmp/run"

echo "torch_conv: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
