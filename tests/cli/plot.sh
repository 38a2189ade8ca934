#!/bin/sh
# `aal plot` and the gnuplot scripts on a tiny real run: PNG and SVG figures that are
# not empty, clear failures naming the missing file or script, and the experiment
# script's --help.  Skipped (77) when gnuplot is missing.
set -u
AAL=${AAL_BIN:-./aal}
srcdir=${top_srcdir:-.}
. "${top_srcdir:-.}/tests/lib.sh"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot: gnuplot not found, skipped"
  exit 77
fi

# figures DIR NAME...: each NAME.png is a PNG and each NAME.svg an SVG, both non-empty
figures() {
  dir=$1; shift
  for f in "$@"; do
    if [ ! -s "$dir/$f.png" ]; then bad "$dir/$f.png missing or empty"; continue; fi
    magic=$(head -c 8 "$dir/$f.png" | od -An -tx1 | tr -d ' \n')
    if [ "$magic" = 89504e470d0a1a0a ]; then ok; else bad "$dir/$f.png is not a PNG ($magic)"; fi
    if [ -s "$dir/$f.svg" ] && grep -q '<svg' "$dir/$f.svg"; then ok; else
      bad "$dir/$f.svg missing, empty or not SVG"; fi
  done
}

expect 0 "usage: aal plot RUN_DIR" -- "$AAL" plot --help
expect 2 "RUN_DIR is required" -- "$AAL" plot
expect 2 "unknown option '--bogus'" -- "$AAL" plot "$tmp" --bogus 1
expect 2 "unexpected argument 'two'" -- "$AAL" plot one two

# a directory that is not a run: the message names the missing file
mkdir "$tmp/empty"
expect 1 "$tmp/empty/metrics.csv" -- "$AAL" plot "$tmp/empty"
if [ -e "$tmp/empty/plots" ]; then bad "aal plot created $tmp/empty/plots for a non-run"; else ok; fi

# a tiny data set and two three-step runs, one recording the learning indicator
if ! "$AAL" gen-data --out "$tmp/data" --classes 4 --per-class 16 --val-per-class 4 \
    >"$tmp/gen.log" 2>&1; then
  bad "aal gen-data failed"; sed 's/^/  | /' "$tmp/gen.log"
fi
train() {
  "$AAL" train --data "$tmp/data" --width 0.125 --batch 8 --steps 3 --threads 1 --plain "$@" \
    >"$tmp/train.log" 2>&1 || { bad "aal train $* failed"; sed 's/^/  | /' "$tmp/train.log" | tail -20; }
}
train --rule asa:2,2,2,2 --li-every 1 --out "$tmp/asa"
train --rule bp --out "$tmp/nolI"

if "$AAL" plot "$tmp/asa" >"$tmp/out" 2>&1; then ok; else
  if grep -q "gnuplot was not found" "$tmp/out"; then
    echo "plot: aal was configured without gnuplot, skipped"; exit 77
  fi
  bad "aal plot $tmp/asa failed"; sed 's/^/  | /' "$tmp/out" | head -20
fi
figures "$tmp/asa/plots" loss li_hist li_steps

# --out, and a directory name with a space and a quote (gnuplot string quoting)
odd="$tmp/fig's dir/sub"
expect 0 "wrote" -- "$AAL" plot "$tmp/asa" --out "$odd"
figures "$odd" loss li_hist li_steps

# a run without --li-every: the loss figure only, and a word why
expect 0 "li-every" -- "$AAL" plot "$tmp/nolI"
figures "$tmp/nolI/plots" loss
if [ -e "$tmp/nolI/plots/li_hist.png" ]; then bad "li_hist drawn for a run without LI"; else ok; fi

# a wrong plots directory: the message names the script
expect 1 "$tmp/noplots/loss.gp" -- env AAL_PLOTS="$tmp/noplots" "$AAL" plot "$tmp/asa"
expect 1 "$tmp/noplots/loss.gp" -- "$AAL" plot "$tmp/asa" --plots "$tmp/noplots"
# a script that gnuplot rejects: the failure names the script
mkdir "$tmp/badplots"
cp "$srcdir/plots/loss.gp" "$srcdir/plots/li_hist.gp" "$srcdir/plots/li_steps.gp" "$tmp/badplots/"
echo "plot no_such_function(x)" >>"$tmp/badplots/li_hist.gp"
expect 1 "gnuplot failed on $tmp/badplots/li_hist.gp" -- "$AAL" plot "$tmp/asa" --plots "$tmp/badplots"

# the experiment script: --help, and a bad option named
expect 0 "usage: experiments/li-theorem.sh" -- bash "$srcdir/experiments/li-theorem.sh" --help

echo "plot: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
