#!/usr/bin/env bash
# False-alarm sweep of the kernel harness (docs/KERNELS.md, "What the harness can and
# cannot see"): `aal kcheck` on a backend over many seeds of every shape set, one table
# per set: for each op the rows run, the rows failed and the worst error/bound, and the
# worst bias statistic |T|/tau (conv and linear); then the step check (aal kcheck
# --step, bp, ara and asa) over the same seeds: tensors failed and the worst err/tol of
# each kind.  The correct kernels must fail nothing.
#
#   experiments/kcheck-sweep.sh [--quick] [--backend NAME] [--seeds N] [--batch B]
#
# Default: cpu32, seeds 1..20 of resnet18 (batch 8), random:32, boundary:16 and the
# step check (about 80 s on 2 cores).  --quick: seeds 1..3, resnet18 at batch 2.  Run from the
# repository root after `make` ($AAL names another aal binary); exits 1 if any row or
# tensor failed.
set -u

backend=cpu32 seeds=20 batch=8
while [ $# -gt 0 ]; do
  case $1 in
    --quick) seeds=3 batch=2 ;;
    --backend) backend=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    --batch) batch=$2; shift ;;
    *) echo "usage: $0 [--quick] [--backend NAME] [--seeds N] [--batch B]" >&2; exit 2 ;;
  esac
  shift
done
aal=${AAL:-./aal}
[ -x "$aal" ] || { echo "$0: run from the repository root after make, or set AAL (no $aal)" >&2; exit 2; }

status=0
for set in resnet18 random:32 boundary:16; do
  tmp=$(mktemp)
  for s in $(seq 1 "$seeds"); do
    "$aal" kcheck --backend "$backend" --shapes "$set" --batch "$batch" --seed "$s" >>"$tmp"
    rc=$?
    [ $rc -le 1 ] || { echo "$0: aal kcheck failed to run (exit $rc)" >&2; exit 2; }
  done
  echo "== $backend, shapes $set$([ "$set" = resnet18 ] && echo " batch $batch"), seeds 1..$seeds"
  # Rows: op (cols 1-21), shape (23-50), err/bound (52-60), PASS/FAIL (63-66), worst
  # element and note; the bias note reads "bias NAME: T1 +x, T2 +y, tau t".
  awk '
    /^kcheck:/ || /^op / { next }
    {
      op = $1; r = substr($0, 52, 9) + 0; st = substr($0, 63, 4)
      if (substr($0, 52, 9) ~ /inf/) r = 1e300
      n[op]++; if (st == "FAIL") f[op]++
      if (!(op in w) || r > w[op]) w[op] = r
      if (match($0, /T1 [-+][0-9.]+, T2 [-+][0-9.]+, tau [0-9.]+/)) {
        split(substr($0, RSTART, RLENGTH), t, /[ ,]+/)
        b = (t[2] < 0 ? -t[2] : t[2]); c = (t[4] < 0 ? -t[4] : t[4]); if (c > b) b = c
        b /= t[6]; if (b > wb) { wb = b; wbop = op }
      }
      if (!(op in order)) { order[op] = ++k; name[k] = op }
    }
    END {
      printf "%-21s %6s %6s %12s\n", "op", "rows", "failed", "worst ratio"
      for (i = 1; i <= k; i++) { op = name[i]; printf "%-21s %6d %6d %12.3g\n", op, n[op], f[op] + 0, w[op] }
      printf "worst bias |T|/tau: %.3g (%s)\n", wb, wbop
    }' "$tmp"
  if grep -q ' FAIL ' "$tmp"; then status=1; grep ' FAIL ' "$tmp" | head -5; fi
  rm -f "$tmp"
done
echo "== $backend, step check (bp, ara:2,2,2,2, asa:2,2,2,2; width 0.125, batch 8, input 64), seeds 1..$seeds"
tmp=$(mktemp)
for s in $(seq 1 "$seeds"); do
  "$aal" kcheck --backend "$backend" --step --seed "$s" >>"$tmp"
  rc=$?
  [ $rc -le 1 ] || { echo "$0: aal kcheck --step failed to run (exit $rc)" >&2; exit 2; }
done
# "  worst err/tol: loss 0.000 (loss, 1 tensors); grad 0.014 (NAME, 62 tensors); ..."
awk '
  /worst err\/tol:/ {
    n = split($0, part, ";")
    for (i = 1; i <= n; i++) {
      if (!match(part[i], /[a-z0-9]+ [0-9.]+(e[-+]?[0-9]+)? \(/)) continue
      split(substr(part[i], RSTART, RLENGTH), t, " ")
      if (!(t[1] in w)) { order[++k] = t[1]; w[t[1]] = 0 }
      if (t[2] + 0 > w[t[1]]) w[t[1]] = t[2] + 0
    }
  }
  /^(PASS|FAIL): / { runs++; failed += $4 + 0 }
  /drawing another batch/ { redraws++ }
  END {
    printf "%d runs, %d tensors failed, %d batches redrawn for ties; worst err/tol:", runs, failed, redraws
    for (i = 1; i <= k; i++) printf " %s %.3f", order[i], w[order[i]]
    printf "\n"
  }' "$tmp"
if grep -q '^FAIL' "$tmp"; then status=1; fi
rm -f "$tmp"
exit $status
