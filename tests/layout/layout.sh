#!/bin/sh
# The direction of dependencies (docs/DESIGN.md, "Layout"): a source file may include
# only headers of its own folder and of the folders below it,
#
#   sim/cli -> sim/train, sim/bench, theory, kernels/check -> sim/model -> sim/ops
#     -> kernels (the backend table), kernels/ref, kernels/cpu, kernels/cuda,
#        kernels/dnnl (on kernels/cpu)
#     -> sim/layers -> sim/core
#
# (sim/data and sim/dist, MPI behind sim/core/comm.h, sit on sim/core alone).  Because every folder's list below names only
# folders further down, an include cycle between folders cannot pass either.  Fails with
# one line per offending include, naming both files.  Usage: layout.sh [TREE]; with no
# TREE it checks $top_srcdir (or .) and then checks itself on a planted violation.
set -u

allowed() {  # the folders a file in folder $1 may include from
  case $1 in
    sim/core) echo "sim/core" ;;
    sim/layers) echo "sim/core sim/layers" ;;
    kernels) echo "sim/core kernels" ;;
    kernels/ref) echo "sim/core sim/layers kernels kernels/ref" ;;
    kernels/cpu) echo "sim/core sim/layers kernels kernels/cpu" ;;
    kernels/cuda) echo "sim/core kernels kernels/cuda" ;;
    kernels/dnnl) echo "sim/core sim/layers kernels kernels/cpu kernels/dnnl" ;;
    sim/ops) echo "sim/core sim/layers kernels sim/ops" ;;
    sim/model) echo "sim/core sim/layers sim/ops sim/model" ;;
    sim/data) echo "sim/core sim/data" ;;
    sim/dist) echo "sim/core sim/dist" ;;
    theory) echo "sim/core sim/layers theory" ;;
    sim/train) echo "sim/core sim/layers sim/ops sim/model sim/data sim/train" ;;
    sim/bench) echo "sim/core sim/layers kernels kernels/dnnl sim/ops sim/model sim/bench" ;;
    kernels/check) echo "sim/core sim/layers kernels kernels/cpu sim/ops sim/model kernels/check" ;;
    sim) echo "sim/core sim/layers kernels sim/ops sim/model sim/data sim/dist theory sim/train sim/bench kernels/check" ;;
    sim/cli) echo "*" ;;
    *) echo "?" ;;
  esac
}

check_tree() {  # prints violations; returns 1 if any
  tree=$1
  bad=0
  for f in $(cd "$tree" && find sim kernels theory -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \) | sort); do
    dir=${f%/*}
    ok=$(allowed "$dir")
    if [ "$ok" = "?" ]; then
      echo "layout: $f: folder $dir is not in tests/layout/layout.sh's list of folders"
      bad=1
      continue
    fi
    [ "$ok" = "*" ] && continue
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$tree/$f"); do
      case $inc in
        */*) idir=${inc%/*} ;;
        *) echo "layout: $f includes \"$inc\": include by path from the top (folder/file.h)"
           bad=1; continue ;;
      esac
      if [ ! -f "$tree/$inc" ]; then
        echo "layout: $f includes $inc, which does not exist"
        bad=1
        continue
      fi
      pass=0
      for a in $ok; do [ "$a" = "$idir" ] && pass=1; done
      if [ $pass = 0 ]; then
        echo "layout: $f includes $inc: $dir may not depend on $idir (allowed: $ok)"
        bad=1
      fi
    done
  done
  return $bad
}

self_test() {  # the check must fail on a planted upward include and name both files
  t=$(mktemp -d) || return 1
  mkdir -p "$t/sim/core" "$t/sim/model" "$t/kernels" "$t/theory"
  printf '#include "sim/model/resnet.h"\n' > "$t/sim/core/tensor.c"
  printf '/* model */\n' > "$t/sim/model/resnet.h"
  out=$(check_tree "$t")
  rc=$?
  rm -rf "$t"
  if [ $rc -eq 0 ] || ! printf '%s\n' "$out" | grep -q 'sim/core/tensor.c includes sim/model/resnet.h'; then
    echo "layout: self-test: a planted include of sim/model from sim/core was not reported ($out)"
    return 1
  fi
  return 0
}

if [ $# -ge 1 ]; then
  check_tree "$1"
  exit $?
fi
top=${top_srcdir:-.}
check_tree "$top" || exit 1
self_test || exit 1
echo "layout: every include follows the direction of docs/DESIGN.md"
