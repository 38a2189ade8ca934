#!/bin/sh
# The README's first command, as a newcomer types it, on a small setting: its `aal train`
# part runs with the same options plus overrides that make it small (later options win),
# on the built-in data generated into a temporary cache.
set -u
AAL=${AAL_BIN:-./aal}
README=${top_srcdir:-.}/README.md
. "${top_srcdir:-.}/tests/lib.sh"

first=$(grep -m1 '^    sh scripts/install-deps.sh' "$README")
if [ -z "$first" ]; then
  bad "README.md has no first command starting with 'sh scripts/install-deps.sh'"
else
  ok
  for part in "autoreconf -fi" "./configure" "make -j2" "./aal train"; do
    case "$first" in *"$part"*) ok ;; *) bad "the first command lacks '$part'" ;; esac
  done
  train=$(printf '%s\n' "$first" | sed 's/.*\.\/aal train//')
  # shellcheck disable=SC2086
  if "$AAL" train $train --out "$tmp/run" --steps 2 --width 0.125 --batch 8 \
       --cache "$tmp/cache" --li-every 1 --plain >"$tmp/log" 2>&1; then
    ok
    for f in config metrics.csv li.csv li_summary.csv align.csv checkpoint.bin; do
      if [ -s "$tmp/run/$f" ]; then ok; else bad "the run has no $f"; fi
    done
    rows=$(($(wc -l <"$tmp/run/metrics.csv") - 1))
    if [ "$rows" -eq 2 ]; then ok; else bad "metrics.csv has $rows rows, want 2"; fi
  else
    bad "aal train$train failed:"; sed 's/^/  | /' "$tmp/log" | tail -20
  fi
fi
if grep -q '^    make check$' "$README"; then ok; else bad "README.md does not give 'make check'"; fi
echo "readme: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
