#!/bin/bash
# experiments/li-theorem.sh --quick (issue 11): bad options name the option and exit 2;
# a run killed with SIGKILL part-way continues when started again and ends with every
# run counted once; summary.csv, the verdict and the figures are there; LI and alignment
# of the controls have their exact values (flip: LI -3, cosine -1; BP: 1 and 1).
# Fashion-MNIST is used when Debian's dataset-fashion-mnist is installed.
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
AAL=${AAL_BIN:-./aal}
srcdir=${top_srcdir:-.}
script=$srcdir/experiments/li-theorem.sh
. "${top_srcdir:-.}/tests/lib.sh"

expect 0 "usage: experiments/li-theorem.sh" -- bash "$script" --help
expect 2 "unknown option '--bogus'" -- bash "$script" --bogus
expect 2 "seeds expects a positive integer, got '0'" -- bash "$script" --seeds 0
expect 2 "steps expects a positive integer, got 'ten'" -- bash "$script" --steps=ten
expect 2 "unknown data set 'cifar'" -- bash "$script" --sets builtin,cifar
expect 2 "backend expects ref, cpu32 or cuda, got 'gpu'" -- bash "$script" --backend gpu
expect 2 "option --out needs a value" -- bash "$script" --out
expect 2 "does not take the rule 'ara:0'" -- bash "$script" --aal "$AAL" --rules "bp ara:0"
expect 2 "li-every 50 exceeds the 12 steps" -- bash "$script" --aal "$AAL" --quick --li-every 50 \
  --sets builtin --out "$tmp/x"

sets=builtin
n_sets=1
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  sets=builtin,fashion; n_sets=2
else
  echo "li_theorem: no Fashion-MNIST (dataset-fashion-mnist): the built-in set only"
fi
figs=''
command -v gnuplot >/dev/null 2>&1 || figs=--no-figures
out=$tmp/quick
# shellcheck disable=SC2086
run() { bash "$script" --aal "$AAL" --quick --sets "$sets" --out "$out" $figs; }

# killed part-way (the whole process group: the script and its aal runs), then again
# (job control gives the background job its own process group, whose id is its pid)
set -m
# shellcheck disable=SC2086
bash "$script" --aal "$AAL" --quick --sets "$sets" --out "$out" $figs >"$tmp/first.log" 2>&1 &
pid=$!
set +m
seconds=0
while [ "$(find "$out/runs" -name summary_row.csv 2>/dev/null | wc -l)" -lt 5 ] && [ $seconds -lt 120 ]; do
  sleep 1; seconds=$((seconds + 1))
done
kill -KILL -- -"$pid" || bad "could not kill the process group $pid"
wait "$pid" 2>/dev/null
sleep 1
left=$(ps -o pid= -g "$pid" | wc -l)
[ "$left" -eq 0 ] || bad "$left processes of the killed group $pid are still running"
done_before=$(find "$out/runs" -name summary_row.csv | wc -l)
if run >"$tmp/second.log" 2>&1; then ok; else bad "the continued quick run failed"; tail -20 "$tmp/second.log"; fi
resumed=$(grep -c "seed" "$tmp/second.log")
n_rules=10
want=$((n_rules * 2 * n_sets))
rows=$(($(wc -l <"$out/summary.csv") - 1))
[ "$rows" -eq "$want" ] && ok || bad "summary.csv has $rows runs, want $want"
dups=$(cut -d, -f1-3 "$out/summary.csv" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] && ok || bad "summary.csv counts $dups runs twice"
echo "li_theorem: $done_before runs were done when the first invocation was killed; the second ran the rest ($resumed lines)"
[ "$done_before" -lt "$want" ] && ok || bad "the kill came after the end: nothing was resumed"
# a third invocation has nothing left to train
if run >"$tmp/third.log" 2>&1; then ok; else bad "the third invocation failed"; fi
grep -q ' seed [0-9]*: loss' "$tmp/third.log" && bad "the third invocation trained again" || ok

# exact controls: flip LI -3 and cosine -1, bp LI 1 and cosine 1
check_row() { # rule li cos
  awk -F, -v r="$1" -v li="$2" -v cs="$3" '$2 == r { n++; if ($7 + 0 != li || ($10 - cs > 1e-15 || cs - $10 > 1e-15)) bad++ }
    END { exit !(n > 0 && bad == 0) }' "$out/summary.csv" && ok ||
    bad "$1: LI median or cosine differ from $2 and $3 in summary.csv"
}
check_row flip -3 -1
check_row bp 1 1
for s in $(echo "$sets" | tr , ' '); do
  [ -s "$out/verdict-$s.csv" ] && grep -q "^# $s: the LI sign told" "$out/verdict-$s.csv" && ok ||
    bad "no verdict for $s"
  if [ -z "$figs" ]; then
    for f in li_hist li_steps loss scatter; do
      [ -s "$out/figures/$f-$s.png" ] && [ -s "$out/figures/$f-$s.svg" ] && ok ||
        bad "figure $f-$s missing"
    done
  fi
done
grep -q "asa:2-2-2-2;decode=pm1" "$out/summary.csv" && ok || bad "no published-decoding ASA run"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
