# Shared by the shell tests (sourced, POSIX sh): the pass/fail counters, a temporary
# directory $tmp removed on exit, and
#   ok                          count a pass
#   bad MESSAGE                 count a failure and print it
#   expect STATUS PATTERN -- CMD...
#                               CMD exits with STATUS and its stdout+stderr matches PATTERN
# Each test ends with: echo "NAME: $pass passed, $fail failed"; [ "$fail" -eq 0 ]
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

expect() {
  want=$1; pattern=$2; shift 3
  "$@" >"$tmp/out" 2>&1
  got=$?
  if [ "$got" -ne "$want" ]; then
    bad "$* exited $got, want $want"; sed 's/^/  | /' "$tmp/out" | head -20; return
  fi
  if ! grep -q -- "$pattern" "$tmp/out"; then
    bad "$* output lacks '$pattern'"; sed 's/^/  | /' "$tmp/out" | head -20; return
  fi
  ok
}
