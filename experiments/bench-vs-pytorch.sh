#!/bin/bash
# AAL's training step against PyTorch's on this CPU (issue 13): in one run, alternating,
# the ResNet-18 Tiny ImageNet BP step of `aal bench step` on the double reference, on
# cpu32 and on dnnl, and PyTorch's float64 and float32 steps of the same network
# (experiments/step_torch.py, run with /usr/bin/python3).  --help for the options.
set -euo pipefail

usage() {
  cat <<EOF
usage: experiments/bench-vs-pytorch.sh [--quick] [--rounds N] [--repeats N] [--threads T]
                                       [--batch B] [--width W] [--aal PATH] [--out DIR]

One BP training step (forward, softmax cross-entropy, backward, SGD with momentum and
weight decay) of the Tiny ImageNet ResNet-18 (3x3 stride-2 stem, no max pooling, 200
classes, 64x64 input), timed five ways:

  aal-ref    aal bench step --backend ref    (double, the reference)
  aal-cpu32  aal bench step --backend cpu32  (float32, im2col + OpenBLAS sgemm)
  aal-dnnl   aal bench step --backend dnnl   (float32, oneDNN convolutions)
  torch-f64  experiments/step_torch.py --dtype float64
  torch-f32  experiments/step_torch.py --dtype float32

A round runs each once, in that order, as separate processes; the rounds alternate
them (A B C D E A B C D E ...), so that a change in the machine's load hits all alike.
Each run does a warm-up step and then --repeats timed steps and reports their median;
the table gives the median over the rounds.  Ratios: GFLOP/s (aal's count of the
step's conv and fc FLOPs, the same network for PyTorch) over the dgemm (double) or
sgemm (float32) rate that the aal runs of the same round measured (cblas 2048^3), and
the per-round ratio of step times to PyTorch float32's, median over rounds.

PyTorch runs with /usr/bin/python3 (Debian's python3-torch); without it the torch rows
are skipped, and said so.  --threads sets aal's --threads (OpenBLAS and oneDNN) and
torch.set_num_threads.

options:
  --quick       2 rounds of 1 timed step each (a minute or two)
  --rounds N    rounds (default 5)
  --repeats N   timed steps per run (default 3)
  --threads T   threads of every run (default 2)
  --batch B     batch (default 32)
  --width W     width multiplier (default 1; tests use 0.125)
  --aal PATH    the aal binary (default: ./aal, else build/aal, else aal on PATH)
  --out DIR     runs.csv (round,config,seconds,images_s,dgemm,sgemm,load) and
                table.txt go here (default runs/bench-vs-pytorch)
  --help        this text
EOF
}

die() { echo "bench-vs-pytorch: $*" >&2; exit 2; }
posint() { case $2 in '' | *[!0-9]*) die "$1 expects a positive integer, got '$2'" ;; esac
  [ "$2" -ge 1 ] || die "$1 expects a positive integer, got '$2'"; }

rounds=5 repeats=3 threads=2 batch=32 width=1 aal= out=runs/bench-vs-pytorch
while [ $# -gt 0 ]; do
  case $1 in
    --help | -h) usage; exit 0 ;;
    --quick) rounds=2 repeats=1; shift ;;
    --rounds | --repeats | --threads | --batch | --width | --aal | --out)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --rounds) posint "$1" "$2"; rounds=$2 ;;
        --repeats) posint "$1" "$2"; repeats=$2 ;;
        --threads) posint "$1" "$2"; threads=$2 ;;
        --batch) posint "$1" "$2"; batch=$2 ;;
        --width) width=$2 ;;
        --aal) aal=$2 ;;
        --out) out=$2 ;;
      esac
      shift 2 ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
[ "$batch" -ge 2 ] || die "--batch must be >= 2"
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$aal" ]; then
  for c in ./aal build/aal "$here/../aal" "$here/../build/aal"; do
    if [ -x "$c" ]; then aal=$c; break; fi
  done
  [ -n "$aal" ] || aal=$(command -v aal || true)
fi
[ -n "$aal" ] && [ -x "$aal" ] || die "no aal binary (build it, or give --aal PATH)"
py=/usr/bin/python3
torch=yes
if ! "$py" -c 'import torch' >/dev/null 2>&1; then
  torch=no
  echo "bench-vs-pytorch: no PyTorch for $py (Debian: apt-get install python3-torch);" \
       "the torch rows are skipped"
fi
configs="aal-ref aal-cpu32 aal-dnnl"
[ "$torch" = yes ] && configs="$configs torch-f64 torch-f32"
if "$aal" kcheck --backend dnnl --op add --shapes random:1 2>&1 | grep -q "built without oneDNN"; then
  echo "bench-vs-pytorch: $aal was built without oneDNN; the aal-dnnl row is skipped"
  configs=$(echo "$configs" | sed 's/ aal-dnnl//')
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
csv=$out/runs.csv
echo "round,config,seconds,images_s,dgemm,sgemm,load" >"$csv"

echo "bench-vs-pytorch: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $rounds rounds x {$configs}, $repeats timed step(s) each, batch $batch, width $width, threads $threads"
echo "  aal: $aal; torch: $torch"

# one run: prints "seconds dgemm sgemm gflop" (0 for a rate the run does not measure)
run_aal() {  # BACKEND
  "$aal" bench step --backend "$1" --rules bp --repeats "$repeats" --batch "$batch" \
    --width "$width" --threads "$threads" >"$tmp/out" 2>&1 || {
    sed 's/^/  | /' "$tmp/out" >&2; die "aal bench step --backend $1 failed"; }
  awk '/^dgemm /{ for (i = 1; i <= NF; i++) { if ($i == "sgemm:") s = $(i + 1);
                                             if ($i == "step:") f = $(i + 1) }
                  d = $3 }
       /^bp /{ t = $2 }
       END { if (t == "") exit 1; printf "%s %s %s %s\n", t, d, s == "" ? 0 : s, f }' "$tmp/out"
}
run_torch() {  # DTYPE
  "$py" "$here/step_torch.py" --dtype "$1" --threads "$threads" --batch "$batch" \
    --width "$width" --repeats "$repeats" >"$tmp/out" 2>&1 || {
    sed 's/^/  | /' "$tmp/out" >&2; die "step_torch.py --dtype $1 failed"; }
  awk '/^step_s /{ t[n++] = $2 }
       END { if (n == 0) exit 1
             for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
             m = n % 2 ? t[int(n / 2)] : 0.5 * (t[n / 2 - 1] + t[n / 2])
             printf "%s 0 0 0\n", m }' "$tmp/out"
}

gflop=0
for r in $(seq 1 "$rounds"); do
  for c in $configs; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    case $c in
      aal-ref) res=$(run_aal ref) ;;
      aal-cpu32) res=$(run_aal cpu32) ;;
      aal-dnnl) res=$(run_aal dnnl) ;;
      torch-f64) res=$(run_torch float64) ;;
      torch-f32) res=$(run_torch float32) ;;
    esac
    set -- $res
    [ "$4" != 0 ] && gflop=$4
    echo "$r,$c,$1,$(awk -v t="$1" -v b="$batch" 'BEGIN { printf "%.3f", b / t }'),$2,$3,$load" >>"$csv"
    printf '  round %d %-10s %8.3f s  (load %s)\n' "$r" "$c" "$1" "$load"
  done
done

# the table: medians over rounds; the round's dgemm (median of its aal runs) and sgemm
# (median of its cpu32 and dnnl runs)
awk -F, -v gflop="$gflop" -v configs="$configs" '
function median(a, n,    i, j, x) {
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
  return n % 2 ? a[(n + 1) / 2] : 0.5 * (a[n / 2] + a[n / 2 + 1])
}
NR > 1 { t[$1, $2] = $3; R = $1 > R ? $1 : R
         if ($5 > 0) { nd[$1]++; d[$1, nd[$1]] = $5 }
         if ($6 > 0) { ns[$1]++; s[$1, ns[$1]] = $6 }
         ld[++nl] = $7 }
END {
  nc = split(configs, C, " ")
  for (r = 1; r <= R; r++) {
    delete a; for (i = 1; i <= nd[r]; i++) a[i] = d[r, i]; D[r] = median(a, nd[r])
    delete a; for (i = 1; i <= ns[r]; i++) a[i] = s[r, i]; S[r] = ns[r] ? median(a, ns[r]) : 0
  }
  printf "%-10s %9s %9s %9s %10s %13s %13s\n", "config", "median s", "images/s", "GFLOP/s",
         "vs gemm", "vs torch-f32", "vs torch-f64"
  for (c = 1; c <= nc; c++) {
    n = 0; delete a; delete g; delete v32; delete v64
    for (r = 1; r <= R; r++) {
      a[++n] = t[r, C[c]]
      g[n] = gflop / t[r, C[c]] / (C[c] ~ /ref|f64/ ? D[r] : S[r])
      if ((r, "torch-f32") in t) v32[n] = t[r, "torch-f32"] / t[r, C[c]]
      if ((r, "torch-f64") in t) v64[n] = t[r, "torch-f64"] / t[r, C[c]]
    }
    m = median(a, n)
    printf "%-10s %9.3f %9.2f %9.2f %6.3f %-3s", C[c], m, '"$batch"' / m, gflop / m,
           median(g, n), C[c] ~ /ref|f64/ ? "dg" : "sg"
    printf " %13s", length(v32) ? sprintf("%.3f", median(v32, n)) : "-"
    printf " %13s\n", length(v64) ? sprintf("%.3f", median(v64, n)) : "-"
  }
  delete a; for (r = 1; r <= R; r++) a[r] = D[r]; printf "dgemm %.1f GFLOP/s", median(a, R)
  delete a; for (r = 1; r <= R; r++) a[r] = S[r]; printf ", sgemm %.1f GFLOP/s (medians over rounds)", median(a, R)
  printf "; step %.2f GFLOP; load %s..%s\n", gflop, ld[1], ld[nl]
  printf "(vs gemm: the step GFLOP/s over the round'"'"'s dgemm (dg) or sgemm (sg); vs torch-f32/f64: PyTorch'"'"'s step time over this one'"'"'s, per round; medians over %d rounds)\n", R
}' "$csv" | tee "$out/table.txt"

if grep -q '^aal-dnnl ' "$out/table.txt" && grep -q '^torch-f32 ' "$out/table.txt"; then
  awk '$1 == "aal-dnnl" { printf "AAL dnnl / PyTorch float32: %s (goal >= 1.1: %s); AAL dnnl vs sgemm: %s (goal >= 0.7: %s)\n",
         $7, ($7 >= 1.1) ? "met" : "not met", $5, ($5 >= 0.7) ? "met" : "not met" }' "$out/table.txt" |
    tee -a "$out/table.txt"
fi
echo "bench-vs-pytorch: done, load $(cut -d' ' -f1-3 /proc/loadavg); $csv"
