#!/bin/bash
# experiments/memory-tables.sh: options, and both tables from a clean output directory,
# each cell checked against `aal memory` run here, and the goals the closing note states:
# every ARA cell of Table 2 within 0.03x of the paper, ResNet-152's BP within 2%, and
# BP's fitted depth 146 (the one unknown of Table 4) recovered.
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
srcdir=${top_srcdir:-.}
AAL=${AAL_BIN:-./aal}
script=$srcdir/experiments/memory-tables.sh
. "$srcdir/tests/lib.sh"

expect 0 "usage: experiments/memory-tables.sh" -- bash "$script" --help
expect 2 "unknown option '--bogus'" -- bash "$script" --bogus
expect 2 "--table '3': expected 2, 4 or all" -- bash "$script" --table 3 --aal "$AAL"
expect 2 "no aal binary" -- bash "$script" --aal "$tmp/none"

out=$tmp/tables
if bash "$script" --aal "$AAL" --out "$out" >"$tmp/log" 2>&1; then ok; else
  bad "memory-tables.sh failed"; sed 's/^/  | /' "$tmp/log" | head; fi
for f in table2.csv table4.csv tables.txt; do
  [ -s "$out/$f" ] && ok || bad "no $out/$f"
done
if command -v gnuplot >/dev/null 2>&1; then
  [ -s "$out/table2.png" ] && [ -s "$out/table2.svg" ] && ok || bad "no figure of Table 2"
fi
# every Table 2 cell is what aal memory says for that configuration
rows=0
while IFS=, read -r model policy gb rate _ _ _ _ rule; do
  [ "$model" = model ] && continue
  rows=$((rows + 1))
  line=$("$AAL" memory --csv --model "$model" --stem imagenet --size 224 --classes 1000 \
           --batch 512 --rule "$rule" --policy "$policy")
  want=$(echo "$line" | awk -F, '{ printf "%.3f %.3f", $8 / 1e9, $10 }')
  [ "$want" = "$gb $rate" ] && ok || bad "$model $rule $policy: table $gb $rate, aal memory $want"
done <"$out/table2.csv"
[ "$rows" -eq 27 ] && ok || bad "table2.csv has $rows cells, not 27"
# the goals that hold (docs/RESULTS.md lists the cells that miss, and why)
awk -F, '$2 == "none" && $9 ~ /^ara/ && $8 != "yes" { bad = 1 } END { exit bad }' \
  "$out/table2.csv" && ok || bad "an ARA cell of Table 2 is more than 0.03x from the paper"
grep -q '^resnet152,none,.*,yes,bp$' "$out/table2.csv" && ok ||
  bad "ResNet-152's BP is not within 2% of the paper's 90.2 GB"
grep -q '^depth,BP,146,146,' "$out/table4.csv" && ok || bad "BP's depth is not the fitted 146"

echo "memory_tables: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
