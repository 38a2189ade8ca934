#!/bin/bash
# The paper's memory tables from the simulator's storage plan (issue 12): Table 2
# (ResNet-50 and ResNet-152 on ImageNet, 224x224, batch 512: BP and four ARA settings,
# each plain, with GCP and with ActNN, beside the paper's figures) and Table 4 (the
# deepest and the widest ResNet trainable in 24 GB); issue 17: Table 3 (the Transformer,
# BERT-Large, ViT-Large and Mixer-Large under BP, ASA1-4, Mesa and Mesa+ASA1-4) and the
# BERT-Large half of Table 4.  Shapes only: `aal memory --csv`, no network is allocated;
# the whole script runs in seconds.  --help for the options.
set -euo pipefail

usage() {
  cat <<EOF
usage: experiments/memory-tables.sh [--out DIR] [--aal PATH] [--table 2|3|4|all] [--ara RULE]

Writes into OUT (default runs/memory-tables):
  table2.csv   model,policy,gb,compression,paper,diff,goal,met,rule  (one row per cell;
               the rule last, since it holds commas)
  table4.csv   what,method,ours,paper,diff_pct,met; the fitted batch first
  table3.csv   model,rule,policy,gb,compression,paper,diff,goal,met  (one row per cell)
  table4_bert.csv
               what,method,ours,paper,diff_pct,met; the fitted batch first
  tables.txt   the tables as text, beside the paper's, with the goal of each cell
  table2.png, table2.svg
               Table 2's compression rates beside the paper's (plots/memory_table2.gp;
               needs gnuplot, else skipped with a note)

Table 2: activation memory after the forward pass (float32, GB = 1e9 bytes) of
ResNet-50 and ResNet-152 (ImageNet stem, 224x224, 1000 classes, batch 512); BP, ARA(2,2,2,2),
ARA(3,4,2,2), ARA(3,4,4,2), ARA(3,4,6,2), each under the storage policies none, gcp and
actnn (aal memory --help); compression = BP's bytes (policy none) / the cell's.
Goals (issue 12): BP within 2% of the paper's GB, every ARA cell within 0.03x of the
paper's rate, GCP and ActNN cells within 5%.

Table 4: the deepest (stage blocks 3,8,N,3, depth = 3 * blocks + 2) and the widest
(ResNet-152's blocks, the first bottleneck block W planes wide) ResNet whose activation
training memory fits in 24 GB (24e9 bytes), for BP, ARA (--ara), ActNN and ARA+ActNN.  Training memory here: the activations after the forward pass and
the model state (weights, gradients and SGD momentum at float32, 12 bytes a parameter),
which grows with the square of the width.
The paper does not say its batch or input size: the input is taken as 224x224 and the
batch is fitted so that BP's depth is the paper's 146; the other seven cells are then
predictions.  Goal: within 10% of the paper.

Table 3: what autograd keeps after the forward pass (float32, GB = 1e9 bytes) of the
authors' base Transformer (40 sentence pairs of 100 tokens: 4096 tokens at most), BERT-Large
(batch 32, 128 tokens), ViT-Large/32 (batch 512, 224x224) and Mixer-Large/16 (batch 256,
224x224) under bp, asa1..asa4, mesa and mesa+asa1..4 (aal memory --model M --help);
compression = BP's bytes / the cell's.  The Transformer's vocabulary (the log-probabilities
it returns) is the data's and in no script: it is fitted so that BP is the paper's 3.6 GB,
and the nine rates are then predictions.  Goals (issue 17): BP within 5% of the paper's
GB, every rate within 0.1x.

Table 4, BERT-Large: the deepest (width 1024) and the widest (depth 24, widths in steps of
64, 16 heads) BERT whose training memory fits in 24 GB, for BP, ASA4, Mesa and
Mesa+ASA4 (the paper's column says Mesa+ActNN; see docs/RESULTS.md).  Training memory:
the activations and the model state (weights, gradients and the two Adam moments of the
authors' BertAdam at float32, 16 bytes a parameter).  128 tokens; the batch is fitted so
that BP's depth is the paper's 50, the other seven cells are predictions.  Goal: within
10%.

options:
  --out DIR     output directory (default runs/memory-tables)
  --aal PATH    the aal binary (default: ./aal, else aal on PATH)
  --table T     2, 3, 4 or all (default all; 4: the ResNet and the BERT halves)
  --no-figures  skip the figure
  --ara RULE    the ARA setting of Table 4 (default ara:2,2,2,2, the paper's first;
                its Table 4 does not say which)
  --help        this text
EOF
}

die() { echo "memory-tables: $*" >&2; exit 2; }

out=runs/memory-tables
figures=1
ara=ara:2,2,2,2
aal=
table=all
while [ $# -gt 0 ]; do
  case $1 in
    --help|-h) usage; exit 0 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --aal) [ $# -ge 2 ] || die "--aal needs a path"; aal=$2; shift 2 ;;
    --aal=*) aal=${1#*=}; shift ;;
    --ara) [ $# -ge 2 ] || die "--ara needs a rule"; ara=$2; shift 2 ;;
    --ara=*) ara=${1#*=}; shift ;;
    --no-figures) figures=0; shift ;;
    --table) [ $# -ge 2 ] || die "--table needs 2, 3, 4 or all"; table=$2; shift 2 ;;
    --table=*) table=${1#*=}; shift ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case $table in 2|3|4|all) ;; *) die "--table '$table': expected 2, 3, 4 or all" ;; esac
if [ -z "$aal" ]; then
  if [ -x ./aal ]; then aal=./aal; else aal=$(command -v aal || true); fi
fi
if [ -z "$aal" ] || [ ! -x "$aal" ]; then die "no aal binary (build it, or give --aal PATH)"; fi
mkdir -p "$out" || die "cannot create $out"

IMAGENET=(--stem imagenet --size 224 --classes 1000)

# bytes MODEL_ARGS... -> "policy_bytes bp_bytes params" of one configuration
bytes() {
  local line
  line=$("$aal" memory --csv "$@") || die "aal memory $* failed"
  echo "$line" | awk -F, '{print $8, $9, $11}'
}

# write FILE: stdin to FILE atomically
write() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  # mktemp makes the file 0600; give it the mode a plain redirection would (the umask's)
  cat >"$tmp" && chmod "$(printf '%o' $(( 0666 & ~0$(umask) )))" "$tmp" && mv -f "$tmp" "$1"
}

table2() {
  # model policy rule paper(GB for BP none, else the rate; - where the paper has none)
  local cells="
resnet50 none bp 44.6
resnet50 none ara:2,2,2,2 1.12
resnet50 none ara:3,4,2,2 1.2
resnet50 none ara:3,4,4,2 1.21
resnet50 none ara:3,4,6,2 1.22
resnet50 gcp bp 2.2
resnet50 gcp ara:2,2,2,2 2.88
resnet50 gcp ara:3,4,2,2 3.44
resnet50 gcp ara:3,4,4,2 3.54
resnet50 gcp ara:3,4,6,2 3.66
resnet50 actnn bp 11.8
resnet50 actnn ara:2,2,2,2 14
resnet50 actnn ara:3,4,2,2 14.6
resnet50 actnn ara:3,4,4,2 14.8
resnet50 actnn ara:3,4,6,2 15.01
resnet152 none bp 90.2
resnet152 none ara:2,2,2,2 1.16
resnet152 none ara:3,4,2,2 1.21
resnet152 none ara:3,4,4,2 1.27
resnet152 none ara:3,4,6,2 1.29
resnet152 gcp bp 2.1
resnet152 gcp ara:2,2,2,2 2.92
resnet152 gcp ara:3,4,2,2 3.26
resnet152 gcp ara:3,4,4,2 3.75
resnet152 gcp ara:3,4,6,2 3.95
resnet152 actnn bp -
resnet152 actnn ara:3,4,6,2 -"
  {
    echo "model,policy,gb,compression,paper,diff,goal,met,rule"
    echo "$cells" | while read -r model policy rule paper; do
      [ -n "$model" ] || continue
      read -r b bp _ < <(bytes --model "$model" "${IMAGENET[@]}" --batch 512 --rule "$rule" \
                         --policy "$policy")
      awk -v m="$model" -v p="$policy" -v r="$rule" -v b="$b" -v bp="$bp" -v paper="$paper" '
        BEGIN {
          gb = b / 1e9; rate = bp / b
          if (paper == "-") { printf "%s,%s,%.3f,%.3f,-,-,-,-,%s\n", m, p, gb, rate, r; exit }
          if (p == "none" && r == "bp") {        # the paper gives GB: within 2%
            d = gb / paper - 1; met = (d <= 0.02 && d >= -0.02)
            printf "%s,%s,%.3f,%.3f,%s,%+.2f%%,2%%,%s,%s\n", m, p, gb, rate, paper, 100 * d, met ? "yes" : "NO", r
          } else if (p == "none") {              # ARA rates: within 0.03x
            d = rate - paper; met = (d <= 0.03 && d >= -0.03)
            printf "%s,%s,%.3f,%.3f,%s,%+.3fx,0.03x,%s,%s\n", m, p, gb, rate, paper, d, met ? "yes" : "NO", r
          } else {                               # GCP and ActNN rates: within 5%
            d = rate / paper - 1; met = (d <= 0.05 && d >= -0.05)
            printf "%s,%s,%.3f,%.3f,%s,%+.2f%%,5%%,%s,%s\n", m, p, gb, rate, paper, 100 * d, met ? "yes" : "NO", r
          }
        }'
    done
  } | write "$out/table2.csv"
}

BUDGET=24000000000

# fits POLICY RULE KIND N BATCH: 1 when the network (KIND depth: blocks 3,8,N,3; width:
# ResNet-152 with first-stage width N) fits in the budget at BATCH
fits() {
  local policy=$1 rule=$2 kind=$3 n=$4 batch=$5 args b params
  if [ "$kind" = depth ]; then
    args=(--model resnet152 --blocks "3,8,$n,3")
  else
    args=(--model resnet152 --width "$(awk -v n="$n" 'BEGIN { printf "%.17g", n / 64 }')")
  fi
  read -r b _ params < <(bytes "${args[@]}" "${IMAGENET[@]}" --batch "$batch" --rule "$rule" \
                    --policy "$policy")
  # training memory: the activations and the model state (weights, gradients and SGD
  # momentum at float32, 12 bytes a parameter)
  [ $(( b + 12 * params )) -le "$BUDGET" ]
}

# largest POLICY RULE KIND BATCH LIMIT: the largest n in 1..LIMIT that fits (0: none)
largest() {
  local lo=0 hi=$(( $5 + 1 )) mid
  while [ $(( hi - lo )) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    if fits "$1" "$2" "$3" "$mid" "$4"; then lo=$mid; else hi=$mid; fi
  done
  echo "$lo"
}

table4() {
  # the batch: the largest at which BP's deepest network is depth 146 (stage-3 blocks 34)
  local n146=34 lo=2 hi=4096 mid batch
  fits none bp depth "$n146" 2 || die "depth 146 does not fit at batch 2"
  while [ $(( hi - lo )) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    if fits none bp depth "$n146" "$mid"; then lo=$mid; else hi=$mid; fi
  done
  batch=$lo
  # the smallest batch at which depth 149 no longer fits: the batches giving 146
  lo=1; hi=$batch
  fits none bp depth $(( n146 + 1 )) 2 || hi=2
  while [ $(( hi - lo )) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    if [ "$mid" -ge 2 ] && fits none bp depth $(( n146 + 1 )) "$mid"; then lo=$mid; else hi=$mid; fi
  done
  local batch_min=$hi
  {
    echo "what,method,ours,paper,diff_pct,met"
    echo "batch,fitted,$batch_min..$batch,-,-,-"
    echo "ara,setting,${ara//,/\/},-,-,-"
    local methods="BP:none:bp ARA:none:$ara ActNN:actnn:bp ARA+ActNN:actnn:$ara"
    local pd=(146 165 622 718) pw=(62 76 214 238) i=0 m name policy rule n depth
    for m in $methods; do
      name=${m%%:*}; policy=${m#*:}; rule=${policy#*:}; policy=${policy%%:*}
      n=$(largest "$policy" "$rule" depth "$batch" 1000)
      depth=$(( 3 * (14 + n) + 2 ))
      awk -v w="depth" -v m="$name" -v o="$depth" -v p="${pd[$i]}" 'BEGIN {
        d = 100 * (o / p - 1); printf "%s,%s,%d,%d,%+.1f,%s\n", w, m, o, p, d,
          (d <= 10 && d >= -10) ? "yes" : "NO" }'
      n=$(largest "$policy" "$rule" width "$batch" 1024)
      awk -v w="width" -v m="$name" -v o="$n" -v p="${pw[$i]}" 'BEGIN {
        d = 100 * (o / p - 1); printf "%s,%s,%d,%d,%+.1f,%s\n", w, m, o, p, d,
          (d <= 10 && d >= -10) ? "yes" : "NO" }'
      i=$(( i + 1 ))
    done
  } | write "$out/table4.csv"
}

# tfbytes MODEL_ARGS... -> "bytes bp_bytes params" of a Transformer-like configuration
tfbytes() {
  local line
  line=$("$aal" memory --csv "$@") || die "aal memory $* failed"
  echo "$line" | awk -F, '{print $10, $11, $13}'
}

# the Transformer's vocabulary: the smallest at which BP keeps the paper's 3.6 GB
transformer_vocab() {
  local lo=1 hi=1000000 mid b
  while [ $(( hi - lo )) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    read -r b _ _ < <(tfbytes --model transformer --vocab "$mid")
    if [ "$b" -ge 3600000000 ]; then hi=$mid; else lo=$mid; fi
  done
  echo "$hi"
}

table3() {
  # model: its paper cells, BP's GB then bp asa1..asa4 none, then mesa, mesa+asa1..4
  # (- where the paper has none)
  local vocab cells
  vocab=$(transformer_vocab)
  cells="
transformer 3.6 1.1 1.1 1.2 1.3 1.6 1.7 1.7 1.7 1.8
bert-large 10.9 1.1 1.2 1.3 1.3 2.1 2.3 2.4 2.4 2.5
vit-large 48 1.3 1.5 1.5 1.6 3.0 3.5 3.6 3.7 4.3
mixer-large 86.8 1.3 1.4 1.7 2.0 - - - - -"
  {
    echo "model,rule,policy,gb,compression,paper,diff,goal,met"
    echo "$cells" | while read -r model gb p1 p2 p3 p4 m0 m1 m2 m3 m4; do
      [ -n "$model" ] || continue
      local extra=() papers=("$gb" "$p1" "$p2" "$p3" "$p4" "$m0" "$m1" "$m2" "$m3" "$m4") i=0
      [ "$model" = transformer ] && extra=(--vocab "$vocab")
      for policy in none mesa; do
        for rule in bp asa1 asa2 asa3 asa4; do
          read -r b bp _ < <(tfbytes --model "$model" "${extra[@]}" --rule "$rule" --policy "$policy")
          awk -v m="$model" -v r="$rule" -v p="$policy" -v b="$b" -v bp="$bp" \
              -v paper="${papers[$i]}" -v fitted="${#extra[@]}" '
            BEGIN {
              gb = b / 1e9; rate = bp / b
              if (paper == "-") { printf "%s,%s,%s,%.3f,%.3f,-,-,-,-\n", m, r, p, gb, rate; exit }
              if (r == "bp" && p == "none") {      # the paper gives GB: within 5%
                d = gb / paper - 1; met = (d <= 0.05 && d >= -0.05) ? "yes" : "NO"
                if (fitted > 0) met = "fitted"
                printf "%s,%s,%s,%.3f,%.3f,%s,%+.2f%%,5%%,%s\n", m, r, p, gb, rate, paper, 100 * d, met
              } else {                             # rates: within 0.1x
                d = rate - paper; met = (d <= 0.1 + 1e-9 && d >= -0.1 - 1e-9) ? "yes" : "NO"
                printf "%s,%s,%s,%.3f,%.3f,%s,%+.3fx,0.1x,%s\n", m, r, p, gb, rate, paper, d, met
              }
            }'
          i=$(( i + 1 ))
        done
      done
    done
  } | write "$out/table3.csv"
  echo "$vocab" | write "$out/table3_vocab.txt"
}

BERT_BUDGET=24000000000

# bert_fits POLICY RULE KIND N BATCH: 1 when BERT (KIND depth: N blocks of width 1024;
# width: 24 blocks of width 64*N) fits in the budget with its model state at BATCH
bert_fits() {
  local policy=$1 rule=$2 kind=$3 n=$4 batch=$5 args b params
  if [ "$kind" = depth ]; then args=(--depth "$n"); else args=(--width $(( 64 * n ))); fi
  read -r b _ params < <(tfbytes --model bert-large "${args[@]}" --batch "$batch" \
                         --rule "$rule" --policy "$policy")
  # training memory: activations and BertAdam's state (weights, gradients, next_m, next_v)
  [ $(( b + 16 * params )) -le "$BERT_BUDGET" ]
}

# bert_largest POLICY RULE KIND BATCH LIMIT: the largest n in 1..LIMIT that fits (0: none)
bert_largest() {
  local lo=0 hi=$(( $5 + 1 )) mid
  while [ $(( hi - lo )) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    if bert_fits "$1" "$2" "$3" "$mid" "$4"; then lo=$mid; else hi=$mid; fi
  done
  echo "$lo"
}

table4_bert() {
  # the batch: the largest at which BP's deepest BERT has 50 blocks (a batch one larger
  # leaves fewer than 50; the deepest at this batch may hold more)
  local lo=1 hi=1024 mid batch
  bert_fits none bp depth 50 1 || die "BERT depth 50 does not fit at batch 1"
  while [ $(( hi - lo )) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    if bert_fits none bp depth 50 "$mid"; then lo=$mid; else hi=$mid; fi
  done
  batch=$lo
  {
    echo "what,method,ours,paper,diff_pct,met"
    echo "batch,fitted,$batch,-,-,-"
    local methods="BP:none:bp ASA4:none:asa4 Mesa:mesa:bp Mesa+ASA4:mesa:asa4"
    local pd=(50 60 64 70) pw=(1600 1728 1792 1856) i=0 m name policy rule n
    for m in $methods; do
      name=${m%%:*}; policy=${m#*:}; rule=${policy#*:}; policy=${policy%%:*}
      n=$(bert_largest "$policy" "$rule" depth "$batch" 1024)
      awk -v w="depth" -v m="$name" -v o="$n" -v p="${pd[$i]}" 'BEGIN {
        d = 100 * (o / p - 1); printf "%s,%s,%d,%d,%+.1f,%s\n", w, m, o, p, d,
          (d <= 10 + 1e-9 && d >= -10 - 1e-9) ? "yes" : "NO" }'
      n=$(bert_largest "$policy" "$rule" width "$batch" 128)
      awk -v w="width" -v m="$name" -v o="$(( 64 * n ))" -v p="${pw[$i]}" 'BEGIN {
        d = 100 * (o / p - 1); printf "%s,%s,%d,%d,%+.1f,%s\n", w, m, o, p, d,
          (d <= 10 + 1e-9 && d >= -10 - 1e-9) ? "yes" : "NO" }'
      i=$(( i + 1 ))
    done
  } | write "$out/table4_bert.csv"
}

render() {
  {
    if [ -f "$out/table2.csv" ]; then
      echo "Table 2: activation memory after the forward pass, ImageNet 224x224, batch 512"
      echo "(GB = 1e9 bytes at float32; compression against BP's bytes; paper: Woo & Jeon, Table 2)"
      echo
      awk -F, 'NR > 1 {
        rule = $9; for (i = 10; i <= NF; i++) rule = rule "," $i
        printf "  %-9s %-12s %-6s %9s GB %8sx   paper %-6s diff %-9s goal %-6s %s\n",
          $1, rule, $2, $3, $4, $5, $6, $7, $8 }' "$out/table2.csv"
      echo
    fi
    if [ -f "$out/table4.csv" ]; then
      echo "Table 4: the largest ResNet whose training memory (activations + weights, gradients"
      echo "and SGD momentum at float32) fits in 24 GB (224x224; depth: blocks 3,8,N,3;"
      echo "width: ResNet-152 with the first bottleneck block W planes wide)"
      awk -F, 'NR == 2 { printf "batch fitted on BP depth 146: %s (any batch in this range gives it)\n", $3 }
        NR == 3 { r = $3; gsub("/", ",", r); printf "ARA: %s\n\n", r }
        NR > 3 { printf "  %-5s %-10s ours %5s   paper %5s   diff %6s%%   %s\n", $1, $2, $3, $4, $5,
          ($6 == "yes") ? "within 10%" : "MISSED" }' "$out/table4.csv"
    fi
    if [ -f "$out/table3.csv" ]; then
      echo
      echo "Table 3: what autograd keeps after the forward pass (GB = 1e9 bytes at float32;"
      echo "compression against BP; Transformer 40 x 100 tokens, BERT-Large 32 x 128 tokens,"
      echo "ViT-Large/32 512 x 224^2, Mixer-Large/16 256 x 224^2; paper: Woo & Jeon, Table 3)"
      [ -f "$out/table3_vocab.txt" ] &&
        echo "Transformer vocabulary fitted on BP's 3.6 GB: $(cat "$out/table3_vocab.txt")"
      echo
      awk -F, 'NR > 1 {
        printf "  %-12s %-5s %-5s %9s GB %8sx   paper %-5s diff %-9s goal %-5s %s\n",
          $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$out/table3.csv"
    fi
    if [ -f "$out/table4_bert.csv" ]; then
      echo
      echo "Table 4, BERT-Large: the largest BERT whose training memory (activations + weights,"
      echo "gradients and two Adam moments at float32) fits in 24 GB (128 tokens; depth: blocks"
      echo "of width 1024; width: 24 blocks, steps of 64; the paper's last column is"
      echo "Mesa+ActNN, computed here as Mesa+ASA4)"
      awk -F, 'NR == 2 { printf "batch fitted on BP depth 50: %s (the largest at which 50 blocks fit)\n\n", $3 }
        NR > 2 { printf "  %-5s %-10s ours %5s   paper %5s   diff %6s%%   %s\n", $1, $2, $3, $4, $5,
          ($6 == "yes") ? "within 10%" : "MISSED" }' "$out/table4_bert.csv"
    fi
  } | write "$out/tables.txt"
}

case $table in
  2) table2 ;;
  3) table3 ;;
  4) table4; table4_bert ;;
  all) table2; table3; table4; table4_bert ;;
esac
render
if [ "$figures" = 1 ] && [ -f "$out/table2.csv" ]; then
  plots=$(cd "$(dirname "$0")/.." && pwd)/plots
  case $out in *"'"*) die "--out must not contain a quote (gnuplot strings)" ;; esac
  if command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "csv='$out/table2.csv'; out='$out/table2'" "$plots/memory_table2.gp" ||
      die "gnuplot failed on $out/table2.csv"
  else
    echo "memory-tables: gnuplot not found (Debian: gnuplot-nox): no figure" >&2
  fi
fi
cat "$out/tables.txt"
