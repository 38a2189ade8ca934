#!/bin/sh
# experiments/mpi-scaling.sh in its quick mode (one round): both configs run, the CSV
# has a row each with a positive step time, rank 0's collectives share and bytes for
# the ranks, and the summary names the speed ratio; bad options exit 2 naming them.
# Skipped (77) without MPI.
set -u
. "${top_srcdir:-.}/tests/lib.sh"
if [ -z "${MPIRUN:-}" ]; then
  echo "mpi_scaling.sh: built without MPI: skipped"
  exit 77
fi
# under AddressSanitizer: Open MPI's own leaks suppressed (tests/dist/mpi.sh says why)
LSAN_OPTIONS="suppressions=${top_srcdir:-.}/tests/dist/lsan-mpi.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS ASAN_OPTIONS
script=${top_srcdir:-.}/experiments/mpi-scaling.sh
expect 0 "speed of 2x1 over 1x" -- bash "$script" --quick --rounds 1 --aal "$AAL_BIN" --out "$tmp/s"
rows=$(awk -F, 'NR > 1 && $5 > 0' "$tmp/s/scaling.csv" | wc -l)
[ "$rows" -eq 2 ] && ok || bad "scaling.csv has $rows rows with a step time, want 2"
awk -F, 'NR > 1 && $3 == 2 && $7 >= 0 && $7 <= 100 && $8 > 0 { found = 1 } END { exit !found }' \
  "$tmp/s/scaling.csv" && ok || bad "the 2-rank row lacks its collectives share or bytes"
expect 2 "batch 15 is not a multiple of --ranks 2" -- bash "$script" --batch 15 --aal "$AAL_BIN" --out "$tmp/b"
expect 2 "unknown option '--bogus'" -- bash "$script" --bogus
echo "mpi_scaling.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
