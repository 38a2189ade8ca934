#!/bin/bash
# experiments/memory-tables.sh: options, and the tables from a clean output directory,
# each cell checked against `aal memory` run here, and the goals the closing note states:
# every ARA cell of Table 2 within 0.03x of the paper, ResNet-152's BP within 2%, and
# BP's fitted depth 146 (the one unknown of Table 4) recovered; Table 3 (issue 17): every
# cell met but the ones docs/RESULTS.md explains (ViT-Large's ASA2, the Transformer's
# Mesa row), the Transformer's BP the fitted 3.6 GB; Table 4's BERT half: BP's fitted
# depth (50, or 51 at the largest batch that holds 50) and the four widths within 10%.
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
srcdir=${top_srcdir:-.}
AAL=${AAL_BIN:-./aal}
script=$srcdir/experiments/memory-tables.sh
. "$srcdir/tests/lib.sh"

expect 0 "usage: experiments/memory-tables.sh" -- bash "$script" --help
expect 2 "unknown option '--bogus'" -- bash "$script" --bogus
expect 2 "--table '5': expected 2, 3, 4 or all" -- bash "$script" --table 5 --aal "$AAL"
expect 2 "no aal binary" -- bash "$script" --aal "$tmp/none"

out=$tmp/tables
if bash "$script" --aal "$AAL" --out "$out" >"$tmp/log" 2>&1; then ok; else
  bad "memory-tables.sh failed"; sed 's/^/  | /' "$tmp/log" | head; fi
for f in table2.csv table3.csv table4.csv table4_bert.csv tables.txt; do
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

# every Table 3 cell is what aal memory --model says for that configuration
vocab=$(cat "$out/table3_vocab.txt")
rows=0
while IFS=, read -r model rule policy gb rate _ _ _ _; do
  [ "$model" = model ] && continue
  rows=$((rows + 1))
  extra=()
  [ "$model" = transformer ] && extra=(--vocab "$vocab")
  line=$("$AAL" memory --csv --model "$model" "${extra[@]}" --rule "$rule" --policy "$policy")
  want=$(echo "$line" | awk -F, '{ printf "%.3f %.3f", $10 / 1e9, $12 }')
  [ "$want" = "$gb $rate" ] && ok || bad "$model $rule $policy: table $gb $rate, aal memory $want"
done <"$out/table3.csv"
[ "$rows" -eq 40 ] && ok || bad "table3.csv has $rows cells, not 40"
# the misses are the documented ones, and nothing else
missed=$(awk -F, '$9 == "NO" { printf "%s/%s/%s ", $1, $2, $3 }' "$out/table3.csv")
[ "$missed" = "transformer/bp/mesa transformer/asa1/mesa transformer/asa2/mesa transformer/asa3/mesa transformer/asa4/mesa vit-large/asa2/none " ] &&
  ok || bad "Table 3 misses: $missed"
grep -q '^transformer,bp,none,3.600,1.000,3.6,+0.00%,5%,fitted$' "$out/table3.csv" && ok ||
  bad "the Transformer's BP is not the fitted 3.6 GB"
# Table 4, BERT: the fitted batch, BP's depth 50 (or 51), every width within 10%
grep -q '^batch,fitted,[0-9]*,' "$out/table4_bert.csv" && ok || bad "no fitted batch"
grep -Eq '^depth,BP,5[01],50,' "$out/table4_bert.csv" && ok || bad "BERT BP's depth is not 50 or 51"
[ "$(grep -c '^width,.*,yes$' "$out/table4_bert.csv")" -eq 4 ] && ok ||
  bad "a BERT width of Table 4 is more than 10% from the paper"
grep -q "Table 3: what autograd keeps" "$out/tables.txt" && ok || bad "tables.txt lacks Table 3"
grep -q "Table 4, BERT-Large" "$out/tables.txt" && ok || bad "tables.txt lacks Table 4's BERT half"

echo "memory_tables: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
