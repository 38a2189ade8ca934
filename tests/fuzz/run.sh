#!/bin/sh
# make fuzz-run: runs each libFuzzer harness for SECONDS from a fresh copy of its seed
# corpus.  A crash, a leak, a sanitizer report, a timeout (10 s on one input) or an
# out-of-memory (2 GB) stops that harness; its input is saved as OUT/TARGET/crash-*
# (or leak-*, timeout-*, oom-*), and the script goes on to the next harness and exits 1
# at the end.  Prints per harness the executions, libFuzzer's final coverage (cov: edges,
# ft: features), the corpus size and the seconds; OUT/TARGET/log has the whole output.
#   usage: run.sh BUILD_DIR CORPUS_DIR OUT_DIR SECONDS TARGET...
set -u
build=$1 corpus=$2 out=$3 seconds=$4
shift 4
case $seconds in '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac
# the harnesses write their files under TMPDIR: a private directory, in memory when it can
base=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
TMPDIR=$(mktemp -d "$base/aal-fuzz-run.XXXXXX") || exit 2
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT INT TERM
failed=''
printf '%-13s %10s %7s %7s %7s %5s  %s\n' target execs cov ft corpus s result
for t in "$@"; do
  bin=$build/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "run.sh: $bin is missing (make fuzz)" >&2; failed="$failed $t"; continue
  fi
  rm -rf "$out/$t"
  mkdir -p "$out/$t/corpus"
  if [ -d "$corpus/$t" ]; then cp "$corpus/$t"/* "$out/$t/corpus/" 2>/dev/null; fi
  start=$(date +%s)
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/$t/" "$out/$t/corpus" >"$out/$t/log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t/log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$out/$t/log" | grep 'cov:' | tail -1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  units=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  artifacts=$(ls "$out/$t" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
  if [ "$rc" -eq 0 ] && [ -z "$artifacts" ]; then result=ok; else
    result="FAILED (exit $rc): $(echo $artifacts | sed "s|\([^ ]*\)|$out/$t/\1|g")"
    failed="$failed $t"
    grep -E 'ERROR|SUMMARY|property failed|==[0-9]+==' "$out/$t/log" | head -8 | sed 's/^/    /'
  fi
  printf '%-13s %10s %7s %7s %7s %5s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${units:-?}" "$secs" "$result"
done
if [ -n "$failed" ]; then
  echo "fuzz-run: failed:$failed (inputs saved under $out/TARGET/)"
  exit 1
fi
echo "fuzz-run: every harness ran ${seconds}s without a finding"
