#!/bin/bash
# Theorem 1 on the deep net (issue 11): does the sign and size of the learning indicator
# predict whether a rule trains as well as backpropagation?  Trains a ResNet-18 with
# every rule below, over several seeds, on the built-in Tiny-ImageNet-layout set (100
# classes) and on Fashion-MNIST, recording per-sample LI and gradient alignment; writes a
# summary row per run, a verdict table per data set and the figures.  Resumable: run it
# again with the same --out and it continues where it stopped; a run counts as done only
# once its summary row is written.  --help for the options.
# shellcheck disable=SC2015  # `test && test || die`: die exits, so no else-branch surprise
set -euo pipefail

RULES_ALL="bp ara:2,2,2,2 ara:3,2,2,1 asa:2,2,2,2 asa:all asa:2,2,2,2;decode=pm1 noise flip noise:all flip:all"

usage() {
  cat <<EOF
usage: experiments/li-theorem.sh [--quick | --full] [options]

Trains ResNet-18 (float32 CPU backend by default) with the rules
  $RULES_ALL
for several seeds on each data set, recording the learning indicator (li.csv) and the
gradient alignment with BP (align.csv) every --li-every steps, then writes into OUT:
  summary.csv           one row per run (set, rule, seed, final loss = mean of the last
                        10% of steps, validation accuracy, LI median / 5th percentile /
                        fraction > 0, median alignment cosine and projection)
  layers.csv            the same LI and alignment figures per run and layer
  verdict-SET.csv, verdict.txt
                        per rule: mean and spread over seeds of the loss gap and the
                        accuracy relative to BP, the LI sign, whether it trains, and
                        whether the LI sign (and the alignment) told which rules train
  figures/*-SET.png/.svg  LI histograms, LI over steps per layer, loss with a band over
                        seeds, and LI / alignment against the final loss gap to BP

Settings (per data set; the options below override them):
  default  built-in: 100 classes x 100 train / 10 val images (64x64), width 0.125,
             batch 64, 800 steps, lr 0.1, LI every 50 steps, 3 seeds
           fashion: Fashion-MNIST (28x28 padded to 1x32x32, 60000 / 10000 images),
             width 0.125, batch 64, 2500 steps, lr 0.1, LI every 125 steps, 3 seeds
           2 runs at a time with 1 OpenBLAS thread each: about 60 minutes on 2 cores
  --quick  built-in: 100 classes x 8 train / 2 val images; Fashion-MNIST as it is;
             12 steps, batch 16, LI every 4, 2 seeds: a few minutes
  --full   for a GPU (--backend cuda): ResNet-18 at width 1 on the built-in set at
             Tiny ImageNet's size (200 classes x 500 / 50 images), batch 256, 2 epochs
             (780 steps), LI every 130 steps, 1 seed, 3 runs at a time on the device:
             sized for 8 minutes on one H200 at the 4100 images/s of docs/GPU.md
             (fashion only when --sets names it: 470 steps)

options:
  --sets LIST      data sets, comma-separated: builtin, fashion (default both; fashion
                   is skipped with a note when its directory is missing)
  --rules LIST     rules, separated by spaces (default: all of the above)
  --seeds N        seeds 1..N per rule
  --steps N        training steps per run (both sets)
  --batch B        images per batch
  --width X        width multiplier of ResNet-18
  --lr X           peak learning rate
  --li-every K     steps between LI and alignment measurements
  --classes N      classes of the built-in set (>= 2)
  --per-class N    train images per class of the built-in set
  --jobs J         runs at a time (default 2; 3 with --full)
  --threads T      OpenBLAS threads per run (default 1; with --full the backend's)
  --backend B      ref, cpu32 (default) or cuda
  --fashion DIR    Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --data DIR       a Tiny ImageNet tree to use instead of the generated built-in set
  --out DIR        output directory (default runs/li-theorem; runs/li-theorem-quick
                   with --quick); an existing one is continued
  --aal PATH       the aal binary (default: \$AAL, ./aal, then the repository's)
  --no-figures     skip the figures (no gnuplot needed)
  --help           show this help and exit
EOF
}

die() { echo "li-theorem: $*" >&2; exit 1; }
usage_error() { echo "li-theorem: $*" >&2; echo "(see experiments/li-theorem.sh --help)" >&2; exit 2; }
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_pos_number() { awk -v x="$1" 'BEGIN { exit !(x ~ /^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ && x + 0 > 0) }'; }

mode=default sets=builtin,fashion rules=$RULES_ALL
seeds='' steps='' batch='' width='' lr='' li_every='' classes='' per_class='' jobs='' threads=''
backend=cpu32 fashion=/usr/share/datasets/fashion-mnist data='' out='' aal='' figures=1
set_backend=0 set_sets=0
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --help | -h) usage; exit 0 ;;
    --quick) mode=quick; shift; continue ;;
    --full) mode=full; shift; continue ;;
    --no-figures) figures=0; shift; continue ;;
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift; set -- "$opt" "$val" "$@" ;;
  esac
  case $opt in
    --sets | --rules | --seeds | --steps | --batch | --width | --lr | --li-every | --classes | \
    --per-class | --jobs | --threads | --backend | --fashion | --data | --out | --aal)
      [ $# -ge 2 ] || usage_error "option $opt needs a value"
      val=$2; shift 2 ;;
    *) usage_error "unknown option '$opt'" ;;
  esac
  case $opt in
    --sets) sets=$val; set_sets=1 ;;
    --rules) rules=$val ;;
    --seeds) is_uint "$val" && [ "$val" -ge 1 ] || usage_error "--seeds expects a positive integer, got '$val'"; seeds=$val ;;
    --steps) is_uint "$val" && [ "$val" -ge 1 ] || usage_error "--steps expects a positive integer, got '$val'"; steps=$val ;;
    --batch) is_uint "$val" && [ "$val" -ge 2 ] || usage_error "--batch expects an integer >= 2, got '$val'"; batch=$val ;;
    --width) is_pos_number "$val" || usage_error "--width expects a positive number, got '$val'"; width=$val ;;
    --lr) is_pos_number "$val" || usage_error "--lr expects a positive number, got '$val'"; lr=$val ;;
    --li-every) is_uint "$val" && [ "$val" -ge 1 ] || usage_error "--li-every expects a positive integer, got '$val'"; li_every=$val ;;
    --classes) is_uint "$val" && [ "$val" -ge 2 ] || usage_error "--classes expects an integer >= 2, got '$val'"; classes=$val ;;
    --per-class) is_uint "$val" && [ "$val" -ge 1 ] || usage_error "--per-class expects a positive integer, got '$val'"; per_class=$val ;;
    --jobs) is_uint "$val" && [ "$val" -ge 1 ] || usage_error "--jobs expects a positive integer, got '$val'"; jobs=$val ;;
    --threads) is_uint "$val" || usage_error "--threads expects a non-negative integer, got '$val'"; threads=$val ;;
    --backend) case $val in ref | cpu32 | cuda) backend=$val; set_backend=1 ;; *) usage_error "--backend expects ref, cpu32 or cuda, got '$val'" ;; esac ;;
    --fashion) fashion=$val ;;
    --data) [ -d "$val" ] || usage_error "--data $val is not a directory"; data=$val ;;
    --out) [ -n "$val" ] || usage_error "--out needs a directory"; out=$val ;;
    --aal) aal=$val ;;
  esac
done
for s in ${sets//,/ }; do
  case $s in builtin | fashion) ;; *) usage_error "--sets: unknown data set '$s' (builtin, fashion)" ;; esac
done
[ -n "${sets//,/}" ] || usage_error "--sets is empty"
[ -n "${rules// /}" ] || usage_error "--rules is empty"

# ---- the settings of the mode, then the options given
case $mode in
  default)
    d_seeds=3 d_width=0.125 d_batch=64 d_lr=0.1 d_jobs=2 d_threads=1 d_classes=100 d_per_class=100 d_val=10
    b_steps=800 b_li=50 f_steps=2500 f_li=125 ;;
  quick)
    d_seeds=2 d_width=0.125 d_batch=16 d_lr=0.1 d_jobs=2 d_threads=1 d_classes=100 d_per_class=8 d_val=2
    b_steps=12 b_li=4 f_steps=12 f_li=4 ;;
  full)
    d_seeds=1 d_width=1 d_batch=256 d_lr=0.2 d_jobs=3 d_threads=0 d_classes=200 d_per_class=500 d_val=50
    b_steps=780 b_li=130 f_steps=470 f_li=94
    [ "$set_backend" = 1 ] || backend=cuda
    [ "$set_sets" = 1 ] || sets=builtin ;;
esac
seeds=${seeds:-$d_seeds} width=${width:-$d_width} batch=${batch:-$d_batch} lr=${lr:-$d_lr}
jobs=${jobs:-$d_jobs} threads=${threads:-$d_threads} classes=${classes:-$d_classes}
per_class=${per_class:-$d_per_class}
[ -n "$out" ] || { if [ "$mode" = quick ]; then out=runs/li-theorem-quick; else out=runs/li-theorem; fi; }
case $out in *'"'* | *"'"*) usage_error "--out must not contain a quote (gnuplot file lists)" ;; esac

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
for r in $rules; do
  "$aal" memory --rule "$r" --width 0.125 >/dev/null 2>&1 || usage_error "--rules: aal does not take the rule '$r' ($("$aal" memory --rule "$r" 2>&1 | head -1))"
done
gnuplot=${GNUPLOT:-$(command -v gnuplot || true)}
if [ "$figures" = 1 ] && [ -z "$gnuplot" ]; then
  die "gnuplot not found (Debian: apt-get install gnuplot-nox), or pass --no-figures"
fi
mkdir -p "$out/logs" "$out/figures" || die "cannot create $out"
out=$(cd "$out" && pwd)

now() { date +%s; }
t0=$(now)
slug() { printf '%s' "$1" | tr ':,;=' '_-__'; }
# a rule in the CSV files: its text with the commas written as '-' (ara:2-2-2-2)
rule_id() { printf '%s' "$1" | tr ',' '-'; }
say() { echo "li-theorem: $*"; }

# ---- the data sets
builtin_dir() {
  if [ -n "$data" ]; then echo "$data"; return; fi
  local d=$out/data/builtin-c$classes-n$per_class-v$d_val
  if [ ! -f "$d/.complete" ]; then
    rm -rf "$d.tmp" && mkdir -p "$out/data"
    say "generating the built-in set: $classes classes x $per_class train / $d_val val images" >&2
    "$aal" gen-data --out "$d.tmp" --classes "$classes" --per-class "$per_class" \
      --val-per-class "$d_val" --seed 1 >"$out/logs/gen-data.log" 2>&1 ||
      die "aal gen-data failed (log: $out/logs/gen-data.log)"
    rm -rf "$d" && mv "$d.tmp" "$d" && : >"$d/.complete"
  fi
  echo "$d"
}

# ---- one run: train (or resume), then its summary row; done = the row exists
# median, 5th percentile (nearest rank) and fraction > 0 of column COL of FILE's rows
# (header skipped; rows with LAYER in column 2 only, when given), as "median,p05,frac"
quantiles() { # file col [layer]
  awk -F, -v c="$2" -v l="${3:-}" 'FNR > 1 && $c != "" && (l == "" || $2 == l) { print $c }' "$1" |
    sort -g | awk '{ v[NR] = $1; p += ($1 > 0) }
      END { if (NR) printf "%s,%s,%.4f", v[int(0.5 * (NR - 1) + 0.5) + 1], v[int(0.05 * (NR - 1) + 0.5) + 1], p / NR; else printf ",," }'
}

summarise_run() { # dir set rule seed seconds diverged -> dir/summary_row.csv, dir/layers.csv
  local dir=$1 set=$2 rule=$3 seed=$4 secs=$5 diverged=$6 li cs pr layer
  li=$(quantiles "$dir/li.csv" 4)
  cs=$(quantiles "$dir/align.csv" 3)
  pr=$(quantiles "$dir/align.csv" 4)
  awk -F, -v head="$set,$rule,$seed" -v li="$li" -v cs="${cs%%,*}" -v pr="${pr%%,*}" -v div="$diverged" -v secs="$secs" '
    FNR == 1 { next }
    { n++; loss[n] = $4; if ($7 != "") acc = $7 }
    END {
      k = int(n / 10); if (k < 1) k = 1
      s = 0; for (i = n - k + 1; i <= n; i++) s += loss[i]
      printf "%s,%d,%.6g,%s,%s,%s,%s,%d,%d\n", head, n, n ? s / k : "nan", acc, li, cs, pr, div, secs
    }' "$dir/metrics.csv" >"$dir/summary_row.csv.tmp"
  : >"$dir/layers.csv.tmp"
  # shellcheck disable=SC2013  # layer names hold no blanks
  for layer in $(awk -F, 'FNR > 1 { print $2 }' "$dir/li.csv" | sort -u); do
    cs=$(quantiles "$dir/align.csv" 3 "$layer")
    pr=$(quantiles "$dir/align.csv" 4 "$layer")
    echo "$set,$rule,$seed,$layer,$(quantiles "$dir/li.csv" 4 "$layer"),${cs%%,*},${pr%%,*}" >>"$dir/layers.csv.tmp"
  done
  mv "$dir/layers.csv.tmp" "$dir/layers.csv"
  mv "$dir/summary_row.csv.tmp" "$dir/summary_row.csv"
}

run_one() { # set set_dir rule seed steps li_every
  local set=$1 setdir=$2 rule=$3 seed=$4 steps=$5 li=$6
  local dir log
  dir=$out/runs/$set/$(slug "$rule")/seed$seed
  log=$out/logs/$set-$(slug "$rule")-seed$seed.log
  [ -f "$dir/summary_row.csv" ] && return 0
  local ts diverged=0 status=0
  ts=$(now)
  mkdir -p "$(dirname "$dir")"
  local -a args=(--steps "$steps" --threads "$threads" --plain)
  if [ -f "$dir/config" ]; then
    echo "resuming" >>"$log"
    "$aal" train --resume "$dir" "${args[@]}" >>"$log" 2>&1 || status=$?
  else
    "$aal" train --rule "$rule" --data "$setdir" --out "$dir" --batch "$batch" --lr "$lr" \
      --width "$width" --li-every "$li" --seed "$seed" --backend "$backend" "${args[@]}" \
      >"$log" 2>&1 || status=$?
  fi
  if [ "$status" -ne 0 ]; then
    # a diverged run is a result (the rule did not train), not a failure of the experiment
    grep -q 'the run diverged' "$log" || { tail -n 8 "$log" | sed 's/^/  | /' >&2; echo "li-theorem: $set $rule seed $seed failed (log: $log)" >&2; return 1; }
    diverged=1
  fi
  summarise_run "$dir" "$set" "$(rule_id "$rule")" "$seed" $(($(now) - ts)) $diverged
  say "$set $rule seed $seed: $(awk -F, '{ printf "loss %s, val acc %s, LI median %s, cosine %s%s", $5, $6, $7, $10, $12 ? " (diverged)" : "" }' "$dir/summary_row.csv") ($(($(now) - ts)) s)"
}

# ---- the verdict of one set from summary.csv
verdict() { # set chance -> verdict-SET.csv
  local set=$1 chance=$2
  awk -F, -v set="$set" -v chance="$chance" -v rules="$(rule_id "$rules")" '
    FNR == 1 { next }
    $1 != set { next }
    { r = $2; s = $3; loss[r, s] = $5; acc[r, s] = ($6 == "" ? chance : $6); li[r, s] = $7; cs[r, s] = $10; pj[r, s] = $11; dv[r, s] = $12; seen[r, s] = 1 }
    function mean_sd(v, m,   i, s, q) { s = 0; for (i = 1; i <= m; i++) s += v[i]; MEAN = m ? s / m : 0; q = 0; for (i = 1; i <= m; i++) q += (v[i] - MEAN)^2; SD = m > 1 ? sqrt(q / (m - 1)) : 0 }
    END {
      nr = split(rules, R, " ")
      print "rule,seeds,loss_gap_mean,loss_gap_sd,acc_mean,acc_sd,acc_rel_bp,li_median_mean,li_sign,cos_median_mean,proj_median_mean,diverged,trains,li_predicts,align_predicts"
      nb = 0; bpacc = 0
      for (s = 1; s <= 1000; s++) if (seen["bp", s]) { nb++; bpacc += acc["bp", s]; bploss[s] = loss["bp", s] }
      if (nb == 0) { print "no bp runs: no verdict" > "/dev/stderr"; exit 1 }
      bpacc /= nb
      agree = 0; total = 0; aagree = 0
      for (i = 1; i <= nr; i++) {
        r = R[i]; m = 0; npos = 0; nneg = 0; ndiv = 0; csum = 0; psum = 0; lsum = 0
        delete g; delete a
        for (s = 1; s <= 1000; s++) {
          if (!seen[r, s] || !(s in bploss)) continue
          m++; g[m] = loss[r, s] - bploss[s]; a[m] = acc[r, s]
          lsum += li[r, s]; csum += cs[r, s]; psum += pj[r, s]; ndiv += dv[r, s]
          if (li[r, s] > 0) npos++; else nneg++
        }
        if (m == 0) continue
        mean_sd(g, m); gm = MEAN; gs = SD
        mean_sd(a, m); am = MEAN; as = SD
        sign = npos == m ? "+" : (nneg == m ? "-" : "mixed")
        # trains: its accuracy keeps at least half of BP s margin over chance
        trains = (am - chance >= 0.5 * (bpacc - chance)) && ndiv == 0
        lipred = (sign == "+") ; apred = (psum / m > 0)
        if (r != "bp") { total++; agree += (lipred == trains); aagree += (apred == trains) }
        printf "%s,%d,%.4g,%.2g,%.4f,%.2g,%.3f,%.4g,%s,%.4g,%.4g,%d,%s,%s,%s\n", r, m, gm, gs, am, as,
          (bpacc > chance ? (am - chance) / (bpacc - chance) : 0), lsum / m, sign, csum / m, psum / m, ndiv,
          (trains ? "yes" : "no"), (lipred == trains ? "right" : "wrong"), (apred == trains ? "right" : "wrong")
      }
      printf "# %s: the LI sign told %d of %d rules right (trains or not); the sign of the alignment projection %d of %d\n", set, agree, total, aagree, total
    }' "$out/summary.csv" >"$out/verdict-$set.csv.tmp"
  mv "$out/verdict-$set.csv.tmp" "$out/verdict-$set.csv"
}

# ---- figures of one set
gq() { printf '%s' "$1" | sed "s/'/''/g"; }
draw() { # script expr fig
  local script=$1 expr=$2 fig=$3
  if ! "$gnuplot" -e "$expr" "$plots/$script" >>"$out/logs/gnuplot.log" 2>&1; then
    tail -n 15 "$out/logs/gnuplot.log" | sed 's/^/  | /' >&2
    die "gnuplot failed on $plots/$script (log: $out/logs/gnuplot.log)"
  fi
  [ -s "$out/figures/$fig.png" ] || die "gnuplot wrote no $out/figures/$fig.png"
}
figures_of() { # set steps
  local set=$1 nsteps=$2 r files='' labels='' names='' w
  local R=$out/runs/$set
  # LI histograms and LI over steps: seed 1 of each rule but BP (LI = 1)
  for r in $rules; do
    [ "$r" = bp ] && continue
    files="$files \"$R/$(slug "$r")/seed1/li.csv\""; labels="$labels $r"
  done
  draw li_hist.gp "files='$(gq "$files")'; labels='$labels'; out='$(gq "$out/figures/li_hist-$set")'; title='$set: per-sample LI, seed 1, layers and steps pooled'" "li_hist-$set"
  files='' labels=''
  for r in $rules; do
    case $r in ara* | asa*) files="$files \"$R/$(slug "$r")/seed1/li_summary.csv\""; labels="$labels $r" ;; esac
  done
  [ -z "$files" ] || draw li_steps.gp "files='$(gq "$files")'; labels='$labels'; out='$(gq "$out/figures/li_steps-$set")'" "li_steps-$set"
  # loss: moving average over a window of ~2% of the steps, then mean/min/max over seeds
  w=$((nsteps / 50)); [ "$w" -ge 1 ] || w=1
  : >"$out/loss_band-$set.csv"
  for r in $rules; do
    names="$names $r"
    cat "$R/$(slug "$r")"/seed*/metrics.csv | awk -F, -v w="$w" '
      $1 == "step" { run++; n = 0; next }
      { n++; v[run, n] = $4; if (n > len) len = n }
      END {
        for (s = 1; s <= len; s++) {
          mn = 1e300; mx = -1e300; sum = 0; k = 0
          for (j = 1; j <= run; j++) {
            if (!((j, s) in v)) continue
            a = 0; c = 0; for (t = s - w + 1; t <= s; t++) if (t >= 1) { a += v[j, t]; c++ }
            a /= c; sum += a; k++; if (a < mn) mn = a; if (a > mx) mx = a
          }
          if (k) printf "%d,%.6g,%.6g,%.6g\n", s, sum / k, mn, mx
        }
        printf "\n\n"
      }' >>"$out/loss_band-$set.csv"
  done
  draw loss_band.gp "csv='$(gq "$out/loss_band-$set.csv")'; names='$names'; out='$(gq "$out/figures/loss-$set")'; title='$set: training loss, mean over seeds (line) and lowest to highest seed (band)'" "loss-$set"
  # scatter: one point per rule but BP and seed
  : >"$out/scatter-$set.csv"; names=''
  for r in $rules; do
    [ "$r" = bp ] && continue
    names="$names $r"
    awk -F, -v set="$set" -v r="$(rule_id "$r")" 'FNR == 1 { next } $1 == set && $2 == "bp" { bp[$3] = $5 }
      $1 == set && $2 == r { row[$3] = $7 "," $10 "," $5 }
      END { for (s in row) if (s in bp) { split(row[s], f, ","); printf "%s,%s,%.6g\n", f[1], f[2], f[3] - bp[s] } printf "\n\n" }' \
      "$out/summary.csv" >>"$out/scatter-$set.csv"
  done
  draw li_scatter.gp "csv='$(gq "$out/scatter-$set.csv")'; names='$names'; out='$(gq "$out/figures/scatter-$set")'; title='$set: final loss gap to BP (same seed) against median LI (left) and alignment cosine (right)'" "scatter-$set"
}

# ---- the experiment
say "aal $aal; output $out; mode $mode; backend $backend; rules: $rules"
: >"$out/logs/gnuplot.log"
ran_sets=''
for set in ${sets//,/ }; do
  if [ "$set" = builtin ]; then
    setdir=$(builtin_dir); nsteps=${steps:-$b_steps}; li=${li_every:-$b_li}
    nclasses=$(grep -c . "$setdir/wnids.txt")
  else
    if [ ! -f "$fashion/train-images-idx3-ubyte.gz" ]; then
      say "skipping fashion: no $fashion/train-images-idx3-ubyte.gz (Debian: apt-get install dataset-fashion-mnist, or --fashion DIR)"
      continue
    fi
    setdir=$fashion; nsteps=${steps:-$f_steps}; li=${li_every:-$f_li}; nclasses=10
  fi
  [ "$li" -le "$nsteps" ] || usage_error "--li-every $li exceeds the $nsteps steps: no LI would be recorded"
  ran_sets="$ran_sets $set"
  say "$set: $setdir, $nclasses classes; ResNet-18 width $width, batch $batch, $nsteps steps, lr $lr, LI every $li; seeds 1..$seeds; $jobs at a time"
  ts=$(now) failed=0 running=0
  for seed in $(seq 1 "$seeds"); do
    for rule in $rules; do
      if [ "$running" -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
      run_one "$set" "$setdir" "$rule" "$seed" "$nsteps" "$li" &
      running=$((running + 1))
    done
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  [ "$failed" = 0 ] || die "$set: some runs failed (see above); run the same command again to continue"
  say "$set: runs done in $(($(now) - ts)) s"
  echo "$set,$nclasses,$nsteps" >>"$out/.sets"
done
[ -n "$ran_sets" ] || die "no data set to run"

# summary.csv and layers.csv from every finished run (also those of earlier invocations)
{
  echo "set,rule,seed,steps,final_loss,val_acc,li_median,li_p05,li_frac_pos,cos_median,proj_median,diverged,seconds"
  find "$out/runs" -name summary_row.csv -print0 | sort -z | xargs -0 -r cat
} >"$out/summary.csv.tmp" && mv "$out/summary.csv.tmp" "$out/summary.csv"
{
  echo "set,rule,seed,layer,li_median,li_p05,li_frac_pos,cos_median,proj_median"
  find "$out/runs" -name layers.csv -print0 | sort -z | xargs -0 -r cat
} >"$out/layers.csv.tmp" && mv "$out/layers.csv.tmp" "$out/layers.csv"

: >"$out/verdict.txt.tmp"
case " $rules " in *" bp "*) ;; *) say "no verdict and no figures: they compare with bp, which --rules leaves out"; ran_sets='' ;; esac
for set in $ran_sets; do
  nclasses=$(awk -F, -v s="$set" '$1 == s { c = $2 } END { print c }' "$out/.sets")
  nsteps=$(awk -F, -v s="$set" '$1 == s { c = $3 } END { print c }' "$out/.sets")
  verdict "$set" "$(awk -v c="$nclasses" 'BEGIN { printf "%.6g", 1 / c }')"
  {
    echo "== $set ($nclasses classes, chance $(awk -v c="$nclasses" 'BEGIN { printf "%.3f", 1 / c }'))"
    # the CSV as aligned columns
    awk -F, '!/^#/ { n++; for (i = 1; i <= NF; i++) { c[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf[n] = NF }
      END { for (r = 1; r <= n; r++) { for (i = 1; i <= nf[r]; i++) if (i < nf[r]) printf "%-*s  ", w[i], c[r, i]; else print c[r, i] } }' \
      "$out/verdict-$set.csv"
    grep '^#' "$out/verdict-$set.csv"
    echo
  } >>"$out/verdict.txt.tmp"
  if [ "$figures" = 1 ]; then figures_of "$set" "$nsteps"; fi
done
mv "$out/verdict.txt.tmp" "$out/verdict.txt"
cat "$out/verdict.txt"
figs_said=''
[ "$figures" = 1 ] && figs_said=", figures in $out/figures"
say "done in $(($(now) - t0)) s: $out/summary.csv, $out/layers.csv, $out/verdict.txt$figs_said"
