#!/bin/sh
# aal memory --model vit-large|mixer-large|bert-large|transformer (sim/cli/memory_tf.c):
# help, bad options refused with exit 2 and the option named, the table and the CSV line
# agreeing, and the paper's default configurations.
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
AAL=${AAL_BIN:-./aal}
. "${top_srcdir:-.}/tests/lib.sh"

expect 0 "usage: aal memory --model vit-large" -- "$AAL" memory --model vit-large --help
expect 0 "vit-large, mixer-large, bert-large, transformer" -- "$AAL" memory --help
expect 2 "--heads 5 must divide --width 1024" -- "$AAL" memory --model bert-large --heads 5
expect 2 "--depth 0 must be in 1..1024" -- "$AAL" memory --model vit-large --depth 0
expect 2 "--width 0 must be in" -- "$AAL" memory --model mixer-large --width 0
expect 2 "--seq 513 must be in 1..512" -- "$AAL" memory --model bert-large --seq 513
expect 2 "--image 230 must be a multiple of --patch 32" -- "$AAL" memory --model vit-large --image 230
expect 2 "--patch 0 must be in" -- "$AAL" memory --model mixer-large --patch 0
expect 2 "--token-mlp 0 must be in" -- "$AAL" memory --model mixer-large --token-mlp 0
expect 2 "--mlp-ratio 0 must be in" -- "$AAL" memory --model transformer --mlp-ratio 0
expect 2 "--vocab 0 must be in" -- "$AAL" memory --model transformer --vocab 0
expect 2 "--batch 0 must be in" -- "$AAL" memory --model transformer --batch 0
expect 2 "--classes 0 must be in" -- "$AAL" memory --model vit-large --classes 0
expect 2 "--rule 'asa5': expected bp, asa1, asa2, asa3 or asa4" -- "$AAL" memory --model vit-large --rule asa5
expect 2 "--policy 'actnn': expected none or mesa" -- "$AAL" memory --model bert-large --policy actnn
expect 2 "--patch does not apply to --model bert-large" -- "$AAL" memory --model bert-large --patch 16
expect 2 "--heads does not apply to --model mixer-large" -- "$AAL" memory --model mixer-large --heads 8
expect 2 "--seq does not apply to --model vit-large" -- "$AAL" memory --model vit-large --seq 8
expect 2 "--classes does not apply to --model transformer" -- "$AAL" memory --model transformer --classes 8
expect 2 "option --depth expects an integer" -- "$AAL" memory --model vit-large --depth x
expect 2 "--autograd '2.0': expected 1.8 or 1.11" -- "$AAL" memory --model vit-large --autograd 2.0
expect 2 "unknown option '--stem'" -- "$AAL" memory --model vit-large --stem imagenet

# the paper's configurations: ViT-L/32 at 224 (50 tokens), Mixer-L/16 (196), BERT-Large
# (128 tokens, 335M parameters with a 2-way classifier), the base Transformer
expect 0 "^vit-large,24,1024,16,4096,50,512,bp,none," -- "$AAL" memory --model vit-large --csv
expect 0 "^mixer-large,24,1024,0,4096,196,256,asa4,none," -- "$AAL" memory --model mixer-large --csv --rule asa4
expect 0 "^bert-large,24,1024,16,4096,128,32,asa4,mesa,.*,335143938$" -- "$AAL" memory --model bert-large --csv --rule asa4 --policy mesa
expect 0 "^transformer,6,512,8,2048,100,40,bp,mesa," -- "$AAL" memory --model transformer --csv --policy mesa

# the table's total is the CSV's bytes; its list of policies holds the same figure
for m in vit-large mixer-large bert-large transformer; do
  "$AAL" memory --model "$m" --depth 2 --rule asa3 --policy mesa >"$tmp/table" 2>&1 || bad "$m: table failed"
  csv=$("$AAL" memory --model "$m" --depth 2 --rule asa3 --policy mesa --csv) || bad "$m: csv failed"
  bytes=$(echo "$csv" | cut -d, -f10); bp=$(echo "$csv" | cut -d, -f11)
  grep -q "^total  *$bp  *$bytes " "$tmp/table" && ok || bad "$m: table total is not $bp $bytes"
  gb=$(awk -v b="$bytes" 'BEGIN { printf "%.3f", b / 1e9 }')
  grep -q "mesa+asa3  *$gb GB" "$tmp/table" && ok || bad "$m: policy list lacks mesa+asa3 $gb GB"
done
# --autograd 1.11: the softmaxes keep their output only, so BP keeps less and Mesa the same
bp18=$("$AAL" memory --model bert-large --depth 2 --csv | cut -d, -f10)
bp111=$("$AAL" memory --model bert-large --depth 2 --csv --autograd 1.11 | cut -d, -f10)
mesa18=$("$AAL" memory --model bert-large --depth 2 --csv --policy mesa | cut -d, -f10)
mesa111=$("$AAL" memory --model bert-large --depth 2 --csv --policy mesa --autograd 1.11 | cut -d, -f10)
# two blocks' softmax inputs, B x H x N x N float32 each
[ $((bp18 - bp111)) -eq $((2 * 32 * 16 * 128 * 128 * 4)) ] && ok || bad "--autograd 1.11: bp $bp18 -> $bp111"
[ "$mesa18" -eq "$mesa111" ] && ok || bad "--autograd 1.11 changed Mesa's bytes: $mesa18 -> $mesa111"
# --entries lists every holder, the shared q/k/v input under one id
"$AAL" memory --model bert-large --depth 1 --entries >"$tmp/entries" 2>&1 || bad "--entries failed"
ids=$(grep -E '^block0\.attn\.proj_[qkv] ' "$tmp/entries" | awk '{ print $5 }' | sort -u | wc -l)
[ "$ids" -eq 1 ] && ok || bad "q, k and v inputs have $ids ids, not 1"

echo "memory_tf: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
