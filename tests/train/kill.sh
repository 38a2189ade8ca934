#!/bin/sh
# The kill test (issue 15): a short run killed with SIGKILL at seeded random moments and
# resumed each time ends byte-identical to the same run left alone: metrics.csv (every
# column but the wall-clock seconds), li.csv, li_summary.csv, align.csv and
# checkpoint.bin.  A kill may land before the first checkpoint (the resume starts again
# from step 0) or while a file is being replaced (its *.tmp.* file is removed by the
# next writer).
# Then two writers started together on one directory: one is refused, the run intact.
# AAL_KILL_SEED=N repeats a run of kills; the seed is printed either way.
set -u
AAL=${AAL_BIN:-./aal}
seed=${AAL_KILL_SEED:-$(date +%s)}
kills_wanted=${AAL_KILL_COUNT:-20}
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
echo "kill.sh: seed $seed (AAL_KILL_SEED=$seed repeats it)"
run="--cache $tmp/cache --width 0.125 --batch 4 --steps 12 --checkpoint-every 1 --li-every 2 --plain"

# shellcheck disable=SC2086
if ! "$AAL" train $run --out "$tmp/ref" >"$tmp/ref.log" 2>&1; then
  echo "FAIL: the uninterrupted run"; cat "$tmp/ref.log"; exit 1
fi
start=$(date +%s%N)
# shellcheck disable=SC2086
"$AAL" train $run --out "$tmp/timed" >/dev/null 2>&1
span=$((($(date +%s%N) - start) / 1000000))  # one whole run, in ms
[ "$span" -gt 0 ] || span=1000

# the moments: uniform in 0..span ms, from the seed
awk -v s="$seed" -v n=${AAL_KILL_TRIES:-200} -v span="$span" \
  'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%.3f\n", rand() * span / 1000 }' \
  >"$tmp/delays"

# one session in DIR: a resume once DIR holds a run, else a fresh run; killed after DELAY
# seconds unless it ends first (DELAY "end": never killed).  Sets $status: 137 killed,
# else the exit status.
session() {
  if [ -f "$1/config" ]; then
    "$AAL" train --resume "$1" --plain >>"$tmp/run.log" 2>&1 &
  else
    # shellcheck disable=SC2086
    "$AAL" train $run --out "$1" >>"$tmp/run.log" 2>&1 &
  fi
  pid=$!
  if [ "$2" != end ]; then
    sleep "$2"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  status=$?
  echo "kill.sh: session of $1 after ${2}s: status $status" >>"$tmp/run.log"
}

# rounds of sessions, each round until its run ends by itself, until 10 kills landed
fail=0
kills=0
tries=0
round=0
exec 3<"$tmp/delays"
while [ "$kills" -lt "$kills_wanted" ] && [ "$fail" -eq 0 ]; do
  round=$((round + 1))
  dir="$tmp/run$round"
  status=137
  round_kills=0
  while [ "$status" -eq 137 ]; do
    # a machine slowed down after the timed run can make every delay too short for a
    # session to finish: after 25 kills in a round its next session runs to the end
    if [ "$round_kills" -ge 25 ]; then
      session "$dir" end
      echo "kill.sh: round $round: 25 kills, so a session ran to the end" >>"$tmp/run.log"
      break
    fi
    if ! read -r delay <&3; then
      echo "FAIL: only $kills kills landed in $tries tries (seed $seed)"; exit 1
    fi
    tries=$((tries + 1))
    session "$dir" "$delay"
    [ "$status" -eq 137 ] && kills=$((kills + 1)) && round_kills=$((round_kills + 1))
  done
  if [ "$status" -ne 0 ]; then
    echo "FAIL: a session of $dir ended with status $status (seed $seed)"
    tail -20 "$tmp/run.log"; exit 1
  fi
  cut -d, -f1-9 "$tmp/ref/metrics.csv" >"$tmp/ref.metrics"
  cut -d, -f1-9 "$dir/metrics.csv" >"$tmp/run.metrics"
  for f in ref.metrics:run.metrics ref/li.csv:$dir/li.csv ref/li_summary.csv:$dir/li_summary.csv \
      ref/align.csv:$dir/align.csv ref/checkpoint.bin:$dir/checkpoint.bin; do
    case ${f#*:} in /*) b=${f#*:} ;; *) b=$tmp/${f#*:} ;; esac
    if ! cmp "$tmp/${f%%:*}" "$b"; then
      echo "FAIL: $(basename "$b") of round $round differs from the uninterrupted run (seed $seed)"
      fail=1
    fi
  done
  left=$(find "$dir" -name '*.tmp.*' | wc -l)
  if [ "$left" -ne 0 ]; then
    echo "FAIL: $left *.tmp.* files left in $dir (seed $seed)"; fail=1
  fi
done
exec 3<&-
if [ "$fail" -ne 0 ]; then
  tail -40 "$tmp/run.log"; exit 1
fi
# two writers started together on one directory: one runs, the other is refused (the
# lock, or the config the first wrote), and the run is the one left alone
compare() {
  cut -d, -f1-9 "$1/metrics.csv" >"$tmp/run.metrics"
  for f in li.csv li_summary.csv align.csv checkpoint.bin; do
    cmp "$tmp/ref/$f" "$1/$f" || return 1
  done
  cmp "$tmp/ref.metrics" "$tmp/run.metrics"
}
# shellcheck disable=SC2086
"$AAL" train $run --out "$tmp/pair" >"$tmp/pair1.log" 2>&1 &
p1=$!
# shellcheck disable=SC2086
"$AAL" train $run --out "$tmp/pair" >"$tmp/pair2.log" 2>&1 &
p2=$!
wait "$p1"; s1=$?
wait "$p2"; s2=$?
if [ $((s1 + s2)) -ne 1 ] || ! cat "$tmp/pair1.log" "$tmp/pair2.log" |
    grep -q "is in use\|already holds a run"; then
  echo "FAIL: two writers of one directory exited $s1 and $s2, want 0 and 1"
  cat "$tmp/pair1.log" "$tmp/pair2.log"; exit 1
fi
if ! compare "$tmp/pair"; then
  echo "FAIL: the run two writers were started on differs from the run left alone"; exit 1
fi
echo "kill.sh: $kills kills in $tries sessions over $round runs, each byte-identical (seed $seed)"
