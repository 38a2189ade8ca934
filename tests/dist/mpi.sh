#!/bin/sh
# Data-parallel training over MPI (issue 14), 2 processes on this machine
# (mpirun --oversubscribe); skipped (77) in a build without MPI.
#   1. Two 2-rank runs are bit-identical: checkpoint.bin, li.csv, li_summary.csv,
#      align.csv, metrics.csv but for its seconds column.
#   2. A 2-rank run equals the one-process run of the same options: every parameter and
#      momentum buffer after 5 steps within a relative 1e-12 of its tensor's largest
#      value (tests/dist/ckpt_cmp; docs/DESIGN.md says why they differ at all), li.csv
#      the same rows (step, layer, sample) with LI within 1e-12, metrics.csv's loss, lr
#      and validation columns equal as printed.  For bp, asa:all (LI of every conv), and
#      noise (each process keeps its slice of the whole batch's random stream).  And
#      3 ranks (batch 12, asa:all): bit-identical twice, within 1e-12 of one process.
#   3. A 2-rank run stopped after 3 steps and resumed by 2 ranks ends as the run left
#      alone; a resume by 1 process is refused naming the rank count.
#   4. Refusals: ranks started with different rules (the key and both values named), a
#      batch that is not a multiple of the ranks, a backend other than ref, a rank whose
#      data directory does not open (its message, and the others stop): each a clean
#      non-zero exit, within a timeout.
#   5. A rank killed with SIGKILL mid-run: mpirun stops the others and exits non-zero
#      within a timeout (no hang); the checkpoint left is whole (a 2-rank resume loads it
#      and finishes).
set -u
. "${top_srcdir:-.}/tests/lib.sh"
AAL=${AAL_BIN:-./aal}
CMP=${top_builddir:-.}/tests/dist/ckpt_cmp
if [ -z "${MPIRUN:-}" ]; then
  echo "mpi.sh: built without MPI (configure --with-mpi): skipped"
  exit 77
fi
# root in CI containers; one core per rank need not exist
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMPI_MCA_rmaps_base_oversubscribe
# under AddressSanitizer: full malloc stacks, and Open MPI's own leaks suppressed
LSAN_OPTIONS="suppressions=${top_srcdir:-.}/tests/dist/lsan-mpi.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS ASAN_OPTIONS
seed=${AAL_MPI_SEED:-$(date +%s)}
seed=$((seed % 1000 + 1))
echo "mpi.sh: seed $seed (AAL_MPI_SEED=$seed repeats it)"
common="--cache $tmp/cache --width 0.125 --batch 8 --steps 5 --li-every 2 --eval-every 5 --seed $seed --plain"
mpi() { timeout 300 "$MPIRUN" --oversubscribe -x LSAN_OPTIONS -x ASAN_OPTIONS -np "$@"; }

no_seconds() { cut -d, -f1-9 "$1"; }

for rule in bp asa:all noise; do
  tag=$(echo "$rule" | tr -c 'a-z0-9\n' _)
  # shellcheck disable=SC2086
  "$AAL" train --rule "$rule" $common --out "$tmp/one_$tag" >"$tmp/one.log" 2>&1 ||
    { bad "$rule: the one-process run"; cat "$tmp/one.log"; continue; }
  for k in a b; do
    # shellcheck disable=SC2086
    mpi 2 "$AAL" train --rule "$rule" $common --out "$tmp/two_${tag}_$k" >"$tmp/two.log" 2>&1 ||
      { bad "$rule: the 2-rank run $k"; cat "$tmp/two.log"; }
  done
  a=$tmp/two_${tag}_a b=$tmp/two_${tag}_b
  for f in checkpoint.bin li.csv li_summary.csv align.csv; do
    if cmp -s "$a/$f" "$b/$f"; then ok; else bad "$rule: two 2-rank runs differ in $f"; fi
  done
  if [ "$(no_seconds "$a/metrics.csv")" = "$(no_seconds "$b/metrics.csv")" ]; then ok
  else bad "$rule: two 2-rank runs differ in metrics.csv"; fi
  if "$CMP" "$tmp/one_$tag/checkpoint.bin" "$a/checkpoint.bin" 1e-12; then ok
  else bad "$rule: the 2-rank parameters are not the one-process ones within 1e-12"; fi
  # step, epoch, lr, loss, train_acc, val_loss, val_acc: as printed (9 digits)
  if [ "$(cut -d, -f1-7 "$tmp/one_$tag/metrics.csv")" = "$(cut -d, -f1-7 "$a/metrics.csv")" ]
  then ok; else bad "$rule: metrics.csv's loss or accuracy differ from one process"; fi
  if paste -d, "$tmp/one_$tag/li.csv" "$a/li.csv" | awk -F, '
      NR == 1 { next }
      $1 != $5 || $2 != $6 || $3 != $7 { print "row " NR ": " $0; bad = 1; exit }
      { d = $4 - $8; if (d < 0) d = -d; if (d > m) m = d; n++ }
      END { if (bad) exit 1; printf "li.csv: %d rows, worst LI difference %.3g\n", n, m;
            exit !(n > 0 && m <= 1e-12) }'; then ok
  else bad "$rule: li.csv differs from the one-process run's"; fi
done

# 2b. 3 ranks (a count that is no power of two: the short sums' fold-in, 1/3 rounded)
# shellcheck disable=SC2086
c3="--cache $tmp/cache --width 0.125 --batch 12 --steps 3 --li-every 1 --seed $seed --plain"
# shellcheck disable=SC2086
"$AAL" train --rule asa:all $c3 --out "$tmp/one3" >"$tmp/one.log" 2>&1 || bad "the batch-12 run"
for k in a b; do
  # shellcheck disable=SC2086
  mpi 3 "$AAL" train --rule asa:all $c3 --out "$tmp/three_$k" >"$tmp/three.log" 2>&1 ||
    { bad "the 3-rank run $k"; cat "$tmp/three.log"; }
done
if cmp -s "$tmp/three_a/checkpoint.bin" "$tmp/three_b/checkpoint.bin" &&
   cmp -s "$tmp/three_a/li.csv" "$tmp/three_b/li.csv"; then ok
else bad "two 3-rank runs differ"; fi
if "$CMP" "$tmp/one3/checkpoint.bin" "$tmp/three_a/checkpoint.bin" 1e-12; then ok
else bad "the 3-rank parameters are not the one-process ones within 1e-12"; fi

# 3. stop and resume
# shellcheck disable=SC2086
mpi 2 "$AAL" train --rule asa:all $common --checkpoint-every 1 --stop-after 3 --out "$tmp/res" \
  >"$tmp/res.log" 2>&1 || { bad "the 2-rank run stopped after 3 steps"; cat "$tmp/res.log"; }
expect 1 "trained by 2 processes" -- "$AAL" train --resume "$tmp/res"
mpi 2 "$AAL" train --resume "$tmp/res" --plain >"$tmp/res.log" 2>&1 ||
  { bad "the 2-rank resume"; cat "$tmp/res.log"; }
for f in checkpoint.bin li.csv li_summary.csv align.csv; do
  if cmp -s "$tmp/res/$f" "$tmp/two_asa_all_a/$f"; then ok
  else bad "the resumed 2-rank run differs in $f"; fi
done

# 4. refusals
# shellcheck disable=SC2086
expect 1 "rank 1 was started with another run than rank 0: 'rule = asa:all;[^']*' there, 'rule = bp' on rank 0" -- \
  mpi 1 "$AAL" train --rule bp $common --out "$tmp/mix" : -np 1 "$AAL" train --rule asa:all $common --out "$tmp/mix"
[ ! -e "$tmp/mix/checkpoint.bin" ] && ok || bad "the mixed run wrote a checkpoint"
# shellcheck disable=SC2086
expect 1 "batch 6 is not a multiple of the 4 processes" -- \
  mpi 4 "$AAL" train --cache "$tmp/cache" --width 0.125 --batch 6 --steps 1 --out "$tmp/b6"
# shellcheck disable=SC2086
expect 1 "runs the ref backend only" -- \
  mpi 2 "$AAL" train --backend cpu32 $common --out "$tmp/cpu"
mkdir -p "$tmp/empty"
# shellcheck disable=SC2086
expect 1 "stopping: rank 1 of 2 failed" -- \
  mpi 1 "$AAL" train $common --out "$tmp/dd" : -np 1 "$AAL" train $common --data "$tmp/empty" --out "$tmp/dd"
grep -q "rank 1 of 2.*$tmp/empty" "$tmp/out" && ok ||
  { bad "rank 1's own message is missing"; sed 's/^/  | /' "$tmp/out"; }

# 5. a rank killed mid-run
# shellcheck disable=SC2086
mpi 2 "$AAL" train --cache "$tmp/cache" --width 0.125 --batch 8 --steps 400 --checkpoint-every 1 \
  --seed "$seed" --plain --out "$tmp/kill" >"$tmp/kill.log" 2>&1 &
job=$!
victim=
for _ in $(seq 1 600); do
  rows=$(awk 'END { print NR - 1 }' "$tmp/kill/metrics.csv" 2>/dev/null || echo 0)
  if [ "$rows" -ge 3 ]; then
    for p in $(pgrep -x aal 2>/dev/null || pgrep -f "aal train" 2>/dev/null); do
      { tr '\0' '\n' <"/proc/$p/environ" | grep -q '^OMPI_COMM_WORLD_RANK=1$' &&
        tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "$tmp/kill" && victim=$p; } 2>/dev/null
    done
    break
  fi
  sleep 0.1
done
if [ -n "$victim" ]; then
  kill -9 "$victim"
  wait "$job"
  status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then ok
  else bad "after rank 1 was killed, mpirun exited $status (124: it hung)"; cat "$tmp/kill.log"; fi
  done_steps=$(($(wc -l <"$tmp/kill/metrics.csv") - 1))
  if [ "$done_steps" -lt 400 ]; then ok; else bad "the killed run ran to its end"; fi
  mpi 2 "$AAL" train --resume "$tmp/kill" --steps $((done_steps + 2)) --plain >"$tmp/kres.log" 2>&1 &&
    ok || { bad "the checkpoint left by the killed run does not resume"; cat "$tmp/kres.log"; }
else
  bad "rank 1 of the run to kill was not found"
  kill "$job" 2>/dev/null
  wait "$job"
fi

echo "mpi.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
