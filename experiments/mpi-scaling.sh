#!/bin/bash
# Data-parallel scaling on this machine (issue 14): the same training steps (same global
# batch, seed and options) by one process using every core, and by N MPI ranks using a
# core each, alternated round by round so that both see the same machine; each run's
# own log gives its time per step and, for the ranks, rank 0's share of the step spent
# in collectives and the bytes it sent.  --help for the options.
set -euo pipefail

usage() {
  cat <<EOF
usage: experiments/mpi-scaling.sh [--quick] [--out DIR] [--aal PATH] [--ranks N]
                                  [--rounds R] [--width W] [--batch B] [--steps S]

Writes into OUT (default runs/mpi-scaling):
  scaling.csv   config,round,ranks,threads,step_s,images_per_s,collective_pct,mb_per_step
  scaling.txt   the medians per config and the ranks' speed over one process's
  logs/         every run's log

Configs: "1xC" one process with OpenBLAS threads = C, the cores (the ref backend's conv
threads follow them), "Nx1" N ranks (mpirun --oversubscribe) with one thread each.
Defaults: the reference ResNet-18 (width 1), batch 32, 4 steps, 3 rounds, N = 2.
--quick: width 0.25, batch 16, 3 steps, 2 rounds (a check of the script, seconds).
Needs an aal built with MPI (configure --with-mpi) and mpirun.
EOF
}

die() { echo "mpi-scaling: $*" >&2; exit 2; }

out=runs/mpi-scaling
aal=
ranks=2
rounds=3
width=1
batch=32
steps=4
while [ $# -gt 0 ]; do
  case $1 in
    --help|-h) usage; exit 0 ;;
    --quick) width=0.25; batch=16; steps=3; rounds=2; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    --aal) [ $# -ge 2 ] || die "--aal needs a path"; aal=$2; shift 2 ;;
    --ranks) [ $# -ge 2 ] || die "--ranks needs a count"; ranks=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a count"; rounds=$2; shift 2 ;;
    --width) [ $# -ge 2 ] || die "--width needs a multiplier"; width=$2; shift 2 ;;
    --batch) [ $# -ge 2 ] || die "--batch needs a size"; batch=$2; shift 2 ;;
    --steps) [ $# -ge 2 ] || die "--steps needs a count"; steps=$2; shift 2 ;;
    *) die "unknown option '$1' (--help)" ;;
  esac
done
for v in ranks rounds batch steps; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v ${!v} must be a positive integer"
done
[ "$ranks" -ge 2 ] || die "--ranks $ranks: at least 2"
[ $((batch % ranks)) -eq 0 ] || die "--batch $batch is not a multiple of --ranks $ranks"
if [ -z "$aal" ]; then
  if [ -x ./aal ]; then aal=./aal; else aal=$(command -v aal || true); fi
fi
[ -n "$aal" ] && [ -x "$aal" ] || die "no aal binary (build it, or --aal PATH)"
mpirun=$(command -v mpirun || true)
[ -n "$mpirun" ] || die "mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)"
cores=$(nproc)

mkdir -p "$out/logs"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
common=(train --width "$width" --batch "$batch" --steps "$steps" --plain)
csv=$out/scaling.csv
echo "config,round,ranks,threads,step_s,images_per_s,collective_pct,mb_per_step" >"$csv.tmp"

# one run of a config; appends its row
run() {  # config round
  local config=$1 round=$2 log=$out/logs/$1-round$2.log dir n t
  dir=$(mktemp -d "$out/run.XXXXXX")
  if [ "$config" = "1x$cores" ]; then
    OPENBLAS_NUM_THREADS=$cores "$aal" "${common[@]}" --out "$dir/r" >"$log" 2>&1 ||
      { rm -rf "$dir"; die "the one-process run failed (log: $log)"; }
    n=1 t=$cores
  else
    OPENBLAS_NUM_THREADS=1 "$mpirun" --oversubscribe -x OPENBLAS_NUM_THREADS -np "$ranks" \
      "$aal" "${common[@]}" --out "$dir/r" >"$log" 2>&1 ||
      { rm -rf "$dir"; die "the $ranks-rank run failed (log: $log; is aal built with MPI?)"; }
    n=$ranks t=1
  fi
  rm -rf "$dir"
  local s pct mb
  s=$(sed -n 's/^time per training step \([0-9.]*\) s.*/\1/p' "$log")
  pct=$(sed -n 's/.*collectives ([^)]*) \([0-9.]*\)% of the step.*/\1/p' "$log")
  mb=$(sed -n 's/.* and \([0-9.]*\) MB sent per step.*/\1/p' "$log")
  [ -n "$s" ] || die "no step time in $log"
  echo "$config,$round,$n,$t,$s,$(awk -v s="$s" -v b="$batch" 'BEGIN { printf "%.3f", b / s }'),$pct,$mb" >>"$csv.tmp"
  echo "mpi-scaling: $config round $round: $s s per step${pct:+, collectives $pct%}"
}

for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="1x$cores ${ranks}x1"; else order="${ranks}x1 1x$cores"; fi
  for config in $order; do run "$config" "$round"; done
done
mv "$csv.tmp" "$csv"

awk -F, -v one="1x$cores" -v many="${ranks}x1" -v w="$width" -v b="$batch" -v st="$steps" '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  NR > 1 { k = $1; n[k]++; s[k, n[k]] = $5; if ($7 != "") { pc[k]++; p[k, pc[k]] = $7; mb[k] = $8 } }
  END {
    for (i = 1; i <= n[one]; i++) a1[i] = s[one, i]
    for (i = 1; i <= n[many]; i++) a2[i] = s[many, i]
    for (i = 1; i <= pc[many]; i++) a3[i] = p[many, i]
    m1 = median(a1, n[one]); m2 = median(a2, n[many]); m3 = pc[many] ? median(a3, pc[many]) : 0
    printf "ResNet-18 width %s, batch %s, %s steps, ref backend; medians of %d rounds\n", w, b, st, n[one]
    printf "%-10s %10s %10s %14s %12s\n", "config", "s/step", "images/s", "collectives", "MB/step"
    printf "%-10s %10.3f %10.2f %14s %12s\n", one, m1, b / m1, "-", "-"
    printf "%-10s %10.3f %10.2f %13.2f%% %12s\n", many, m2, b / m2, m3, mb[many]
    printf "speed of %s over %s: %.3f\n", many, one, m1 / m2
  }' "$csv" | tee "$out/scaling.txt"
