#!/bin/bash
# experiments/bench-vs-pytorch.sh (issue 13): --help and bad options (exit 2); one round
# of every row on a small network (width 0.125, batch 4): the runs file has a row per
# run and the table a row per config, with the dnnl/PyTorch line when both ran.
# Without Debian's PyTorch the torch rows are skipped and the script says so; without
# oneDNN the dnnl row.  Figures are not judged here (docs/BENCHMARKS.md).
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
AAL=${AAL_BIN:-./aal}
srcdir=${top_srcdir:-.}
script=$srcdir/experiments/bench-vs-pytorch.sh
. "$srcdir/tests/lib.sh"

expect 0 "usage: experiments/bench-vs-pytorch.sh" -- bash "$script" --help
expect 2 "unknown option '--bogus'" -- bash "$script" --bogus
expect 2 "rounds expects a positive integer, got '0'" -- bash "$script" --rounds 0
expect 2 "threads expects a positive integer, got 'two'" -- bash "$script" --threads two
expect 2 "batch must be >= 2" -- bash "$script" --batch 1
expect 2 "--out needs a value" -- bash "$script" --out
expect 2 "no aal binary" -- bash "$script" --aal "$tmp/none"

rows="aal-ref aal-cpu32 aal-dnnl torch-f64 torch-f32"
if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  rows="aal-ref aal-cpu32 aal-dnnl"
  expect 0 "the torch rows are skipped" -- bash "$script" --aal "$AAL" --width 0.125 \
    --batch 4 --rounds 1 --repeats 1 --out "$tmp/b"
fi
if "$AAL" kcheck --backend dnnl --op add --shapes random:1 2>&1 | grep -q "built without oneDNN"; then
  rows=$(echo "$rows" | sed 's/ aal-dnnl//')
fi
expect 0 "bench-vs-pytorch: done" -- bash "$script" --aal "$AAL" --width 0.125 --batch 4 \
  --rounds 1 --repeats 1 --out "$tmp/b"
n=$(echo "$rows" | wc -w)
[ "$(grep -c '^1,' "$tmp/b/runs.csv")" -eq "$n" ] && ok || bad "runs.csv has not $n runs"
for r in $rows; do
  grep -q "^$r " "$tmp/b/table.txt" && ok || bad "table.txt lacks the row $r"
done
case $rows in
  *aal-dnnl*torch-f32*) grep -q "AAL dnnl / PyTorch float32: " "$tmp/b/table.txt" && ok ||
    bad "table.txt lacks the dnnl/PyTorch line" ;;
esac

echo "bench_vs_pytorch: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
