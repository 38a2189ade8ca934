#!/bin/bash
# experiments/memory_torch_tf.py (PyTorch's saved tensors of the authors' Transformer-like
# models, written independently of the C code) against `aal memory --model M --csv`
# (sim/model/tfmem.c) at small sizes, for bp and asa1..asa4: within 256 bytes of totals
# near 1 MB.  Both keep what PyTorch 1.8 (the authors') keeps; the script's --native
# shows what the installed PyTorch keeps instead, which aal memory --autograd 1.11 matches
# where the models take no mean.  What the plan leaves out and PyTorch keeps: the 0-dim float64 scalars that
# multiply or divide (8 bytes each: the 1/sqrt(d) of every attention, sqrt(D) of the
# Transformer's embeddings, the 1/n of a mean), the loss's int64 targets and total weight
# (ViT, Mixer) and BERT's position ids (one arange).  Skipped (77) without Debian's
# PyTorch (/usr/bin/python3 -c 'import torch').
# shellcheck disable=SC2015  # `test && ok || bad`: ok never fails
set -u
py=/usr/bin/python3
if ! "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "memory_torch_tf: no PyTorch for $py (Debian's python3-torch), skipped"
  exit 77
fi
srcdir=${top_srcdir:-.}
AAL=${AAL_BIN:-./aal}
script=$srcdir/experiments/memory_torch_tf.py
. "$srcdir/tests/lib.sh"

expect 0 "usage: experiments/memory_torch_tf.py" -- "$py" "$script" --help
expect 2 "invalid choice: 'resnet50'" -- "$py" "$script" --model resnet50

# the script's small configurations (DEFAULTS there), as aal memory options
declare -A conf=(
  [vit-large]="--depth 2 --width 64 --heads 4 --image 32 --patch 8 --batch 4 --classes 10"
  [mixer-large]="--depth 2 --width 64 --token-mlp 32 --image 32 --patch 8 --batch 4 --classes 10"
  [bert-large]="--depth 2 --width 64 --heads 4 --seq 16 --batch 4 --vocab 100"
  [transformer]="--depth 2 --width 64 --heads 4 --seq 16 --batch 4 --vocab 100")
for m in vit-large mixer-large bert-large transformer; do
  if ! "$py" "$script" --model "$m" >"$tmp/$m.csv" 2>"$tmp/err"; then
    bad "$m: the script failed"; sed 's/^/  | /' "$tmp/err" | head; continue
  fi
  rows=0
  while IFS=, read -r model rule torch; do
    rows=$((rows + 1))
    # shellcheck disable=SC2086  # the options split on purpose
    ours=$("$AAL" memory --model "$model" ${conf[$model]} --rule "$rule" --csv | cut -d, -f10)
    d=$((torch - ours))
    [ "$d" -ge 0 ] && [ "$d" -le 256 ] && ok ||
      bad "$model $rule: PyTorch keeps $torch bytes, aal memory says $ours"
  done <"$tmp/$m.csv"
  [ "$rows" -eq 5 ] && ok || bad "$m: $rows rules, not 5"
done
# --native on PyTorch 1.13 against aal memory --autograd 1.11 (the softmaxes keep their
# output only) where no mean is taken (ViT, the Transformer)
if "$py" -c 'import torch, sys; sys.exit(not torch.__version__.startswith("1.13"))'; then
  for m in vit-large transformer; do
    "$py" "$script" --model "$m" --native >"$tmp/$m-native.csv" || bad "$m --native failed"
    while IFS=, read -r model rule torch; do
      # shellcheck disable=SC2086  # the options split on purpose
      ours=$("$AAL" memory --model "$model" ${conf[$model]} --rule "$rule" --autograd 1.11 \
             --csv | cut -d, -f10)
      d=$((torch - ours))
      [ "$d" -ge 0 ] && [ "$d" -le 256 ] && ok ||
        bad "$model $rule --native: PyTorch keeps $torch bytes, aal memory --autograd 1.11 $ours"
    done <"$tmp/$m-native.csv"
  done
fi
# --native on PyTorch 1.13: torch.mean keeps its input, so BERT's LayerNorms (the
# embedding's and two a block: 5) keep two more B x N x D float tensors each, and the
# softmax keeps its output only (one B x H x N x N tensor less a block); less the 8-byte
# 1/n scalars the sums divide by
if "$py" -c 'import torch, sys; sys.exit(not torch.__version__.startswith("1.13"))'; then
  "$py" "$script" --model bert-large --native >"$tmp/native.csv" || bad "--native failed"
  v18=$(grep ',bp,' "$tmp/bert-large.csv" | cut -d, -f3)
  native=$(grep ',bp,' "$tmp/native.csv" | cut -d, -f3)
  want=$((5 * 2 * 4 * 16 * 64 * 4 - 2 * 4 * 4 * 16 * 16 * 4)); d=$((want - (native - v18)))
  [ "$d" -ge 0 ] && [ "$d" -le 256 ] && ok ||
    bad "--native adds $((native - v18)) bytes, not $want"
fi

echo "memory_torch_tf: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
