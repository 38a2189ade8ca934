#!/bin/sh
# Theorem 1 on the convex testbeds (docs/RESULTS.md, "Theorem 1 where L is known"):
#   theorem.csv          the default sweep (aal theorem), eta = 1/L
#   theorem-eta2.5.csv   the same at eta = 2.5/L: outside the theorem
#   tight.csv            parallel r at LI in [-0.1, 0.1], lsq1 and softmax1, 100 steps
#   asa.csv              ASA over input scale sigma x lr_expansion k, three decodings
#                        (aal theorem --asa), and asa-grid.csv, its per-point summary
#   asa-probe.csv        ASA at k = 100, sigma in {1, 0.6, 0.4, 0.3}, 50 seeds
#   ara.csv, ara-trace.csv  the ARA-like residual network (aal theorem --ara)
# and the figures phase.png (plots/phase.gp), tightness.png (plots/tightness.gp),
# asa_phase.png (plots/asa_phase.gp) and ara.png (plots/ara.gp) in OUT/figures.  --quick runs 4 seeds instead of
# 20 (seconds).  Run with --help.
set -eu

usage() {
  cat <<USAGE
usage: experiments/theorem.sh [--out DIR] [--quick] [--aal PATH]

  --out DIR    output directory (default runs/theorem); CSVs in DIR, figures in
               DIR/figures, logs in DIR/logs
  --quick      4 seeds per point instead of 20 (the full run takes ~30 s on 2 cores)
  --aal PATH   the aal binary (default: \$AAL, ./aal, then the repository's aal or
               build/aal)
USAGE
}

die() { echo "theorem.sh: $*" >&2; exit 1; }
out=runs/theorem quick=0 aal=''
while [ $# -gt 0 ]; do
  case $1 in
    --help | -h) usage; exit 0 ;;
    --quick) quick=1; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    --aal) [ $# -ge 2 ] || die "--aal needs a value"; aal=$2; shift 2 ;;
    *) usage >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ -z "$aal" ]; then
  if [ -n "${AAL:-}" ]; then aal=$AAL
  elif [ -x ./aal ] && [ -f ./aal ]; then aal=./aal
  elif [ -x "$repo/aal" ]; then aal=$repo/aal
  elif [ -x "$repo/build/aal" ]; then aal=$repo/build/aal
  else die "no aal binary: build it (make) or pass --aal PATH"; fi
fi
gnuplot=${GNUPLOT:-$(command -v gnuplot || true)}
[ -n "$gnuplot" ] || die "gnuplot not found (or set GNUPLOT)"
seeds=20
[ "$quick" -eq 1 ] && seeds=4
mkdir -p "$out/figures" "$out/logs" || die "cannot create $out"

run() {  # name, then the aal theorem arguments; the log keeps the table and totals
  name=$1; shift
  echo "theorem.sh: aal theorem $*"
  "$aal" theorem "$@" >"$out/logs/$name.log" 2>&1 || {
    tail -n 8 "$out/logs/$name.log" >&2; die "aal theorem $* failed (log: $out/logs/$name.log)"; }
  tail -n 7 "$out/logs/$name.log" | sed 's/^/  | /'
}
run theorem --seeds "$seeds" --out "$out/theorem.csv"
run theorem-eta2.5 --seeds "$seeds" --eta-fraction 2.5 --out "$out/theorem-eta2.5.csv"
run tight --seeds "$((seeds / 4 > 0 ? seeds / 4 : 1))" --family parallel --li-min -0.1 \
  --li-max 0.1 --points 21 --steps 100 --out "$out/tight.csv"

run asa --asa --seeds "$seeds" --out "$out/asa.csv"
run asa-probe --asa --seeds "$((seeds * 5 / 2))" --ks 100 --sigmas 1,0.6,0.4,0.3 --out "$out/asa-probe.csv"
# per (problem, decoding, sigma, k): runs, fraction whose loss rose, mean LI
awk -F, 'NR > 1 { k = $1 "," $2 "," $3 "," $4; n[k]++; r[k] += ($13 > 0); li[k] += $7 }
  END { print "problem,decoding,sigma,k,runs,rose_fraction,li_mean"
        for (k in n) printf "%s,%d,%.6g,%.6g\n", k, n[k], r[k] / n[k], li[k] / n[k] }' \
  "$out/asa.csv" >"$out/asa-grid.csv"
run ara --ara --seeds "$seeds" --out "$out/ara.csv" --trace "$out/ara-trace.csv"

plot() {  # script, gnuplot -e assignments
  "$gnuplot" -e "$2" "$repo/plots/$1" >>"$out/logs/gnuplot.log" 2>&1 ||
    die "gnuplot $1 failed (log: $out/logs/gnuplot.log)"
}
plot phase.gp "csv='$out/theorem.csv'; out='$out/figures/phase'"
plot tightness.gp "csv='$out/tight.csv'; steps=100; out='$out/figures/tightness'"
plot asa_phase.gp "csv='$out/asa-grid.csv'; eps=0.01; out='$out/figures/asa_phase'"
plot ara.gp "csv='$out/ara-trace.csv'; beta=2; out='$out/figures/ara'"
echo "theorem.sh: CSVs in $out, figures in $out/figures (phase, tightness, asa_phase, ara)"
