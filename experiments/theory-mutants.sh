#!/usr/bin/env bash
# Mutation check of tests/theory/test_theory.c: each mutant breaks the theory code (or
# the LI it uses) in one place; the suite must fail, and the test that should catch it
# must be among the failures.  Run from a configured build tree at the repository root
# (the worktree itself: the mutated file is restored on exit, even after Ctrl-C):
#
#   experiments/theory-mutants.sh            # all mutants, ~1 min on 2 cores
#   experiments/theory-mutants.sh M3         # one mutant by its name
#
# Prints one line per mutant: the tests that failed, and PASS when the expected one is
# among them.  Exits 1 if any mutant survived or was caught by the wrong test only.
set -u
top=$(pwd)
[ -f theory/descent.c ] && [ -f Makefile ] || { echo "run from a configured tree's root" >&2; exit 2; }
backup=$(mktemp -d)
current=
restore() {
  if [ -n "$current" ]; then cp "$backup/file" "$current"; touch "$current"; current=; fi
}
trap 'restore; make tests/theory/test_theory >/dev/null 2>&1; rm -rf "$backup"' EXIT
trap 'exit 130' INT TERM

# name | file | sed expression | the test that must fail
mutants=(
  "M1|theory/descent.c|s|st->guaranteed = 0.5 \* t->eta|st->guaranteed = t->eta|test_tightness"
  "M2|theory/descent.c|s|B == 1 \&\& opts->eta_fraction <= 1.0|B == 1|test_theorem_check_can_fail_and_scope"
  "M3|theory/descent.c|s|st->at_floor = !st->rose \&\& f <= al;|st->at_floor = 0;|test_negative_li_both_ways"
  "M4|theory/descent.c|s|st->fell = !st->rose \&\& !st->at_floor \&\& fn < f - al;|st->fell = !st->rose \&\& !st->at_floor;|test_negative_li_both_ways"
  "M5|theory/problem.c|s|p->L = lmax / (2.0 \* (double)p->batch);|p->L = lmax / (double)p->batch;|test_problem_L"
  "M6|theory/problem.c|s|    p->L = aal_theory_norm2(p->H, p->n);|    p->L = 2.0 * aal_theory_norm2(p->H, p->n);|test_guaranteed_rate"
  "M7|theory/altact.c|s|const double s = sqrt(1.0 - t);|const double s = 1.0 - t;|test_tightness"
  "M8|theory/altact.c|s|spec->decoding == AAL_THEORY_DECODE_01 ? 0.0 : -a|spec->decoding != AAL_THEORY_DECODE_PM1 ? 0.0 : -a|test_li_asa_closed_form"
  "M9|sim/layers/li.c|s|2.0 \* (rh / hh) - rr / hh|2.0 * (rh / hh) - 0.5 * rr / hh|test_theorem_holds_on_its_hypotheses"
  "M10|theory/descent.c|s|const double k = t->eta \* aal_theory_norm2(p->H, p->n) \* q->c;|const double k = q->c;|test_descent_inequality_always"
  "M11|theory/descent.c|s|#define ALLOW_C 2.0|#define ALLOW_C 2e10|test_descent_check_can_fail"
  "M12|theory/softmax.c|s|const double d = pc - ((int)c == y ? 1.0 : 0.0);|const double d = 1.1 * pc - ((int)c == y ? 1.0 : 0.0);|test_descent_inequality_always"
  "M13|theory/asa.c|s|const double disc = b \* b + 8.0|const double disc = b * b + 4.0|test_asa_boundaries"
  "M14|theory/ara.c|s|t->dU\[b \* n1 + j\] = t->U\[b \* n1 + j\] > 0.0|t->dU[b * n1 + j] = t->XA[b * n1 + j] > 0.0|test_ara_gradient"
  "M15|theory/ara.c|s|case AAL_THEORY_ARA_ARA: memcpy(r, xa,|case AAL_THEORY_ARA_ARA: memcpy(r, xb,|test_ara_rules"
)
want_name=${1:-}
bad=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file _ from to expect <<<"$m"
  [ -n "$want_name" ] && [ "$want_name" != "$name" ] && continue
  cp "$file" "$backup/file"
  current=$file
  sed -i "s|$from|$to|" "$file"
  if cmp -s "$file" "$backup/file"; then
    echo "$name: the mutation did not apply to $file (pattern out of date)"; bad=1; restore; continue
  fi
  if ! make tests/theory/test_theory >"$backup/build.log" 2>&1; then
    echo "$name: build failed"; tail -5 "$backup/build.log"; bad=1; restore; continue
  fi
  out=$(CK_DEFAULT_TIMEOUT=60 ./tests/theory/test_theory 2>&1)
  failed=$(printf '%s\n' "$out" | sed -n 's/^[^:]*:[0-9]*:[FE]:[^:]*:\([A-Za-z_0-9]*\):.*/\1/p' | sort -u | tr '\n' ' ')
  restore
  if [ -z "$failed" ]; then
    echo "$name ($file): SURVIVED"; bad=1
  elif printf '%s' " $failed" | grep -q " $expect "; then
    echo "$name ($file): PASS, failed: $failed"
  else
    echo "$name ($file): caught, but not by $expect: $failed"; bad=1
  fi
done
exit $bad
