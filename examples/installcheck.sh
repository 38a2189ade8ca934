#!/bin/sh
# `make installcheck`: examples/conv_check.c built against the INSTALLED libaal through
# pkg-config (PKG_CONFIG_PATH = the install's lib/pkgconfig), once as it is and once with
# -DBROKEN (an off-by-one).  Passes only if the first passes (exit 0, a PASS row) and the
# second is reported failing (exit 1, a FAIL row); then the same link with --static.
#   usage: installcheck.sh CC PKG_CONFIG LIBDIR EXAMPLES_DIR
set -u
cc=$1 pkgconfig=${2:-pkg-config} libdir=$3 src=$4
PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
if ! flags=$($pkgconfig --cflags --libs aal); then
  echo "installcheck: pkg-config finds no aal.pc in $libdir/pkgconfig"; exit 1
fi
static=$($pkgconfig --static --cflags --libs aal) || exit 1
echo "installcheck: pkg-config --cflags --libs aal: $flags"
# run NAME STATUS WORD: the example must exit STATUS and print a row with WORD
run() {
  LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/$1" >"$tmp/$1.out" 2>&1
  got=$?
  sed 's/^/  | /' "$tmp/$1.out"
  if [ "$got" -ne "$2" ] || ! grep -q "^y .* $3 " "$tmp/$1.out"; then
    echo "installcheck: FAIL: $1 exited $got, want $2 with a $3 row"; fail=1
  else
    echo "installcheck: $1 exited $got as it must"
  fi
}
for how in shared static; do
  f=$flags
  [ "$how" = static ] && f=$static
  # shellcheck disable=SC2086  # the flags are words
  if ! $cc -o "$tmp/conv_check" "$src/conv_check.c" $f ||
     ! $cc -DBROKEN -o "$tmp/conv_check_broken" "$src/conv_check.c" $f; then
    echo "installcheck: FAIL: the example does not build with pkg-config ($how: $f)"
    fail=1; continue
  fi
  run conv_check 0 PASS
  run conv_check_broken 1 FAIL
done
[ "$fail" -eq 0 ] && echo "installcheck: the example passes and its broken twin is reported failing"
exit $fail
