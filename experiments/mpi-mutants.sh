#!/usr/bin/env bash
# Mutation check of tests/dist/mpi.sh (issue 14): each mutant breaks the data-parallel
# code in one place; the test must fail.  Run from a configured build tree (with MPI) at
# the repository root; the mutated file is restored on exit, even after Ctrl-C:
#
#   experiments/mpi-mutants.sh         # all six, ~3 min on 2 cores
#
# Prints one line per mutant with the failures mpi.sh reported (seed 7); exits 1 if a
# mutant survived.
set -u
[ -f sim/dist/dist.c ] && [ -f Makefile ] || { echo "run from a configured tree's root" >&2; exit 2; }
grep -q '^#define AAL_HAVE_MPI 1' config.h || { echo "configure --with-mpi first" >&2; exit 2; }
backup=$(mktemp -d)
current=
restore() {
  if [ -n "$current" ]; then cp "$backup/file" "$current"; touch "$current"; current=; fi
}
trap 'restore; make -j2 >/dev/null 2>&1; rm -rf "$backup"' EXIT
survived=0

mutant() {  # name file old new
  local name=$1 file=$2
  cp "$file" "$backup/file"
  current=$file
  python3 - "$file" "$3" "$4" <<'PY' || { echo "$name: the text to mutate is gone"; restore; survived=1; return; }
import sys
p, old, new = sys.argv[1:4]
s = open(p).read()
if old not in s:
    sys.exit(1)
open(p, 'w').write(s.replace(old, new, 1))
PY
  if ! make -j2 >/dev/null 2>&1; then
    echo "$name: does not build"; restore; survived=1; return
  fi
  AAL_MPI_SEED=7 make check TESTS=tests/dist/mpi.sh >/dev/null 2>&1
  local n
  n=$(grep -c '^FAIL' tests/dist/mpi.sh.log)
  if [ "$n" -gt 0 ]; then
    echo "$name: caught, $n failures: $(grep '^FAIL' tests/dist/mpi.sh.log | head -2 | tr '\n' ' ')"
  else
    echo "$name: SURVIVED"; survived=1
  fi
  restore
}

mutant "M1 gradient sum not scaled by 1/N" sim/train/loop.c \
  'const double inv = 1.0 / r->ranks;' 'const double inv = 1.0;'
mutant "M2 batch norm not synchronised" sim/ops/sync.c \
  'return ((const aal_ops_sync *)ops)->comm;' 'return ops ? NULL : NULL;'
mutant "M3 the noise rule's slice offset ignored" sim/model/resnet_block.c \
  'i < pass->sample_offset * per;' 'i < 0 * per;'
mutant "M4 LI gathered in reverse rank order" sim/model/li_record.c \
  'wli[k * n + i] = all[2 * n * k + i];' 'wli[(p - 1 - k) * n + i] = all[2 * n * k + i];'
mutant "M5 BN backward with the local element count" sim/layers/batchnorm.c \
  'const double m_count = s[2 * nch];' \
  'const double m_count = (double)(x->shape[0] * x->shape[2] * x->shape[3]);'
mutant "M6 every validation batch on rank 0, counted on both" sim/train/loop.c \
  'if (k % (size_t)r->ranks != (size_t)r->rank)' 'if (k % (size_t)r->ranks != 0)'
exit $survived
