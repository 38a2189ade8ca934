#!/bin/sh
# Regenerates the seed corpora tests/fuzz/corpus/TARGET/ with the harnesses' own seed
# mode (FUZZ_WRITE_SEEDS=DIR: each writes its seeds with the project's writers, e.g.
# aal_checkpoint_save, aal_data_load, aal_gen_data, aal_train, and damaged copies of
# them, then exits).  Inputs named regress-* (crashes found by fuzzing, kept as
# regression tests) are left as they are.
#   usage: make fuzz && sh tests/fuzz/make-corpus.sh [BUILD_DIR [SRC_DIR]]
set -eu
build=${1:-fuzz-build}
src=${2:-$(dirname "$0")/../..}
base=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
TMPDIR=$(mktemp -d "$base/aal-fuzz-seeds.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
for t in checkpoint cache tinyimagenet config rule npy npyread jpeg mnist; do
  dir=$src/tests/fuzz/corpus/$t
  mkdir -p "$dir"
  find "$dir" -type f ! -name 'regress-*' -exec rm -f {} +
  FUZZ_WRITE_SEEDS=$dir "$build/fuzz_$t"
  chmod 644 "$dir"/*
  echo "$t: $(ls "$dir" | wc -l) files, $(cat "$dir"/* | wc -c) bytes"
done
