#!/bin/sh
# The learning-indicator experiment on ResNet-18 (SPEC sections 2-5): trains bp,
# ara:2,2,2,2, asa:2,2,2,2, noise and flip from the same initialisation and the same
# batches (one --seed), recording the learning indicator, then draws
#   li_hist   LI histograms of ARA, ASA, noise and flip (count on a log scale)
#   li_steps  LI median and 5th percentile per layer over steps, ARA and ASA
#   loss      the training loss of all five runs on one chart
#   phase     the convex phase diagram of Theorem 1 (aal theorem + plots/phase.gp)
# Run with --help for the options.  Exits non-zero on any failure.
# shellcheck disable=SC2015  # `test && test || die`: die exits, so no else-branch surprise
set -eu

usage() {
  cat <<EOF
usage: experiments/li-resnet18.sh [options]

Trains ResNet-18 with bp, ara:2,2,2,2, asa:2,2,2,2, noise and flip (same seed: same
initialisation and batches), recording the learning indicator every K steps, and
draws the figures into OUT/figures (PNG and SVG).

Quick setting (the default, no --data): the built-in generated 10-class set, batch
32, 30 steps, peak lr 0.05, LI every 5 steps: about 10 minutes on 2 cores.
Full setting: give a real dataset and a longer budget, e.g.
  experiments/li-resnet18.sh --data ~/tiny-imagenet-200 --steps 20000 --batch 128 --li-every 500
(the peak lr is then aal train's default, 0.05 * batch / 512, unless --lr is given).

options:
  --data DIR      Tiny ImageNet directory (default: aal's built-in generated set)
  --steps N       training steps per rule (default 30)
  --batch B       images per batch (default 32)
  --li-every K    steps between LI measurements (default 5)
  --width W       width multiplier of ResNet-18 (default 1)
  --lr X          peak learning rate (default: 0.05 in the quick setting, else aal
                  train's default)
  --seed S        seed of the initialisation and the batches (default 1)
  --threads T     OpenBLAS threads per run (default: OpenBLAS's choice)
  --cache DIR     where aal keeps the built-in set (default: aal's, ~/.cache/aal)
  --out DIR       output directory, must not hold runs yet (default runs/li-resnet18)
  --aal PATH      the aal binary (default: \$AAL, ./aal, then aal or build/aal of the
                  repository)
  --help          show this help and exit
EOF
}

die() { echo "li-resnet18: $*" >&2; exit 1; }
usage_error() { echo "li-resnet18: $*" >&2; echo "(see experiments/li-resnet18.sh --help)" >&2; exit 2; }

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_pos_number() { awk -v x="$1" 'BEGIN { exit !(x ~ /^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ && x + 0 > 0) }'; }

data='' steps=30 batch=32 li_every=5 width=1 lr='' seed=1 threads='' cache='' out=runs/li-resnet18
aal=''
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --help | -h) usage; exit 0 ;;
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift; set -- "$opt" "$val" "$@" ;;
  esac
  case $opt in
    --data | --steps | --batch | --li-every | --width | --lr | --seed | --threads | --cache | --out | --aal)
      [ $# -ge 2 ] || usage_error "option $opt needs a value"
      val=$2; shift 2 ;;
    *) usage_error "unknown option '$opt'" ;;
  esac
  case $opt in
    --data) data=$val ;;
    --steps) steps=$val ;;
    --batch) batch=$val ;;
    --li-every) li_every=$val ;;
    --width) width=$val ;;
    --lr) lr=$val ;;
    --seed) seed=$val ;;
    --threads) threads=$val ;;
    --cache) cache=$val ;;
    --out) out=$val ;;
    --aal) aal=$val ;;
  esac
done

is_uint "$steps" && [ "$steps" -ge 1 ] || usage_error "--steps expects a positive integer, got '$steps'"
is_uint "$batch" && [ "$batch" -ge 2 ] || usage_error "--batch expects an integer >= 2, got '$batch'"
is_uint "$li_every" && [ "$li_every" -ge 1 ] || usage_error "--li-every expects a positive integer, got '$li_every'"
[ "$li_every" -le "$steps" ] || usage_error "--li-every $li_every exceeds --steps $steps: no LI would be recorded"
is_pos_number "$width" || usage_error "--width expects a positive number, got '$width'"
[ -z "$lr" ] || is_pos_number "$lr" || usage_error "--lr expects a positive number, got '$lr'"
is_uint "$seed" || usage_error "--seed expects a non-negative integer, got '$seed'"
[ -z "$threads" ] || is_uint "$threads" || usage_error "--threads expects a non-negative integer, got '$threads'"
[ -n "$out" ] || usage_error "--out needs a directory"
if [ -n "$data" ] && [ ! -d "$data" ]; then usage_error "--data $data is not a directory"; fi
# the quick setting: a larger peak lr, so that 30 steps show learning
if [ -z "$data" ] && [ -z "$lr" ]; then lr=0.05; fi

# ---- the tools
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
plots=$repo/plots
if [ -z "$aal" ]; then
  if [ -n "${AAL:-}" ]; then aal=$AAL
  elif [ -x ./aal ] && [ -f ./aal ]; then aal=./aal
  elif [ -x "$repo/aal" ]; then aal=$repo/aal
  elif [ -x "$repo/build/aal" ]; then aal=$repo/build/aal
  else die "no aal binary: build it (make) or pass --aal PATH or set AAL"; fi
fi
[ -x "$aal" ] && [ -f "$aal" ] || die "aal binary '$aal' is not an executable file"
gnuplot=${GNUPLOT:-$(command -v gnuplot || true)}
[ -n "$gnuplot" ] || die "gnuplot not found (Debian: apt-get install gnuplot-nox), or set GNUPLOT"
for s in li_hist.gp li_steps.gp loss.gp phase.gp; do
  [ -r "$plots/$s" ] || die "missing gnuplot script $plots/$s"
done

rules="bp ara:2,2,2,2 asa:2,2,2,2 noise flip"
name_of() { echo "${1%%:*}"; }
for r in $rules; do
  if [ -e "$out/runs/$(name_of "$r")" ]; then
    die "$out/runs/$(name_of "$r") exists: remove it or choose another --out"
  fi
done
mkdir -p "$out/runs" "$out/logs" "$out/figures" || die "cannot create $out"

now() { date +%s; }
t0=$(now)
echo "li-resnet18: aal $aal, output $out"
echo "li-resnet18: ResNet-18 width $width, ${data:-built-in generated data}, $steps steps of $batch," \
  "lr ${lr:-default}, LI every $li_every steps, seed $seed"

# ---- training: five rules, one seed
i=0
for r in $rules; do
  i=$((i + 1))
  n=$(name_of "$r")
  set -- train --rule "$r" --out "$out/runs/$n" --steps "$steps" --batch "$batch" \
    --li-every "$li_every" --width "$width" --seed "$seed" --plain
  [ -z "$data" ] || set -- "$@" --data "$data"
  [ -z "$lr" ] || set -- "$@" --lr "$lr"
  [ -z "$threads" ] || set -- "$@" --threads "$threads"
  [ -z "$cache" ] || set -- "$@" --cache "$cache"
  echo "li-resnet18: [$i/5] $r: aal $*"
  ts=$(now)
  if ! "$aal" "$@" >"$out/logs/$n.log" 2>&1; then
    tail -n 15 "$out/logs/$n.log" | sed 's/^/  | /' >&2
    die "training $r failed (log: $out/logs/$n.log)"
  fi
  m=$out/runs/$n/metrics.csv
  [ -s "$m" ] && [ -s "$out/runs/$n/li_summary.csv" ] || die "run $r wrote no metrics or LI (see $out/logs/$n.log)"
  awk -F, -v r="$r" -v s=$(($(now) - ts)) 'NR == 2 { f = $4 } NR > 1 { l = $4; if ($6 != "") v = $6 }
    END { printf "li-resnet18: [%s] done in %d s: loss %s -> %s, val loss %s\n", r, s, f, l, (v == "" ? "-" : v) }' "$m"
done

# ---- the convex testbeds of Theorem 1
echo "li-resnet18: aal theorem --out $out/theorem.csv"
if ! "$aal" theorem --out "$out/theorem.csv" >"$out/logs/theorem.log" 2>&1; then
  tail -n 15 "$out/logs/theorem.log" | sed 's/^/  | /' >&2
  die "aal theorem failed (log: $out/logs/theorem.log)"
fi

# ---- figures
# gnuplot strings are single-quoted: a quote in a path is written twice; each file is
# one word of a list in double quotes
gq() { printf '%s' "$1" | sed "s/'/''/g"; }
case $out in *'"'*) die "--out must not contain a double quote (gnuplot file lists)" ;; esac
R=$(gq "$out/runs") F=$(gq "$out/figures")
plot() {
  script=$1 expr=$2 fig=$3
  echo "li-resnet18: drawing $fig"
  if ! "$gnuplot" -e "$expr" "$plots/$script" >>"$out/logs/gnuplot.log" 2>&1; then
    tail -n 15 "$out/logs/gnuplot.log" | sed 's/^/  | /' >&2
    die "gnuplot failed on $plots/$script (log: $out/logs/gnuplot.log)"
  fi
  [ -s "$out/figures/$fig.png" ] && [ -s "$out/figures/$fig.svg" ] || die "gnuplot wrote no $out/figures/$fig.png/.svg"
}
: >"$out/logs/gnuplot.log"
# the loss curve's moving average: short for short runs
if [ "$steps" -lt 200 ]; then ema=0.6; else ema=0.9; fi
plot li_hist.gp "files='\"$R/ara/li.csv\" \"$R/asa/li.csv\" \"$R/noise/li.csv\" \"$R/flip/li.csv\"'; \
labels='ARA(2,2,2,2) ASA(2,2,2,2) noise flip'; out='$F/li_hist'" li_hist
plot li_steps.gp "files='\"$R/ara/li_summary.csv\" \"$R/asa/li_summary.csv\"'; \
labels='ARA(2,2,2,2) ASA(2,2,2,2)'; out='$F/li_steps'" li_steps
plot loss.gp "files='\"$R/bp/metrics.csv\" \"$R/ara/metrics.csv\" \"$R/asa/metrics.csv\" \"$R/noise/metrics.csv\" \"$R/flip/metrics.csv\"'; \
labels='\"bp (LI = 1)\" \"ARA(2,2,2,2) (LI > 0)\" \"ASA(2,2,2,2) (LI > 0)\" \"noise (LI < 0)\" \"flip (LI = -3)\"'; \
ema=$ema; title='ResNet-18 training loss, same initialisation and batches'; out='$F/loss'" loss
plot phase.gp "csv='$(gq "$out/theorem.csv")'; out='$F/phase'" phase

echo "li-resnet18: done in $(($(now) - t0)) s; figures (PNG and SVG) in $out/figures:"
for f in li_hist li_steps loss phase; do echo "  $out/figures/$f.png"; done
