#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (H200; CUDA toolkit, but no GSL,
# OpenBLAS, Check or libjpeg installed).  Run from the repository root:
#
#   experiments/gpu-check.sh            # writes $OUT/gpu-check.txt (OUT defaults to ./gpu-check-out)
#
# 1. Extracts every .deb in .device/debs into .device/root (dpkg -x, or ar + tar) and
#    points CPATH, LIBRARY_PATH, LD_LIBRARY_PATH (and pkg-config) at it.  The .debs must
#    include the -dev packages (headers and pkg-config files): libgsl-dev, libopenblas-dev,
#    check, libjpeg-dev, zlib1g-dev and their runtime libraries (libgsl*, libgslcblas0,
#    libopenblas0-pthread, libsubunit0, libjpeg-turbo8 / libjpeg62-turbo).
# 2. Builds: prebuilt mode when build/aal exists and runs (carry build/); otherwise
#    autoreconf -fi (or a carried ./configure) && ./configure --with-cuda=yes && make -j16.
#    Independently, builds the CUDA backend's own test and kernel benchmark with nvcc
#    alone (no GSL needed), so that those two run even when the full build cannot.
# 3. Runs aal devices, aal kcheck --backend cuda (resnet18, random:50 and boundary:16
#    shapes, and the 20-seed false-alarm sweep experiments/kcheck-sweep.sh), the
#    step check (aal kcheck --step) and a 5-step ASA training run with LI on the device,
#    the CUDA backend test (also with AAL_CUDA_SYNC=1), the kernel benchmark and the
#    training-step benchmark at batch 256; then experiments/li-theorem.sh --full (every
#    rule at full width on a Tiny-ImageNet-sized built-in set; FULL_TIMEOUT, default 540 s).
# Every step's command, output, exit status and time go to the log; the script goes on
# after a failure and exits non-zero if any step failed (a skip, exit 77, counts as a
# failure here: this script exists to run on a device).
set -u

top=$(pwd)
OUT=${OUT:-$top/gpu-check-out}
mkdir -p "$OUT"
log=$OUT/gpu-check.txt
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
JOBS=${JOBS:-16}
: >"$log"
summary=()
failed=0

say() { printf '%s\n' "$*" | tee -a "$log"; }

# step NAME CMD...: runs CMD under timeout, logging the command, its output and status.
step() {
  local name=$1; shift
  say ""
  say "## $name"
  say "\$ $*"
  local t0=$SECONDS rc
  if declare -F "$1" >/dev/null; then
    "$@" >>"$log" 2>&1  # a function of this script (builds): no timeout
  else
    timeout "$STEP_TIMEOUT" "$@" >>"$log" 2>&1
  fi
  rc=$?
  local dt=$((SECONDS - t0))
  say "exit status $rc (${dt}s)"
  local verdict=ok
  if [ "$rc" -eq 77 ]; then verdict=SKIPPED; failed=1
  elif [ "$rc" -eq 124 ]; then verdict="TIMEOUT(${STEP_TIMEOUT}s)"; failed=1
  elif [ "$rc" -ne 0 ]; then verdict=FAILED; failed=1
  fi
  summary+=("$(printf '%-52s %-16s %4s %6ss' "$name" "$verdict" "$rc" "$dt")")
  return "$rc"
}

say "# aal gpu-check, $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
say "# repository: $top ($(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
export PATH=/usr/local/cuda/bin:$PATH
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step "nvidia-smi" nvidia-smi -L
step "nvcc --version" nvcc --version

# ---- 1. dependencies from .deb files ---------------------------------------------------
root=$top/.device/root
extract_debs() {
  mkdir -p "$root"
  local deb n=0
  for deb in "$top"/.device/debs/*.deb; do
    [ -e "$deb" ] || continue
    if command -v dpkg >/dev/null; then
      dpkg -x "$deb" "$root" || return 1
    else
      local tmp; tmp=$(mktemp -d)
      (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$root") || return 1
      rm -rf "$tmp"
    fi
    echo "extracted $(basename "$deb")"; n=$((n + 1))
  done
  echo "$n .deb files"
  # Runtime packages ship libX.so.N only (and Debian's alternatives links are not made
  # by dpkg -x): add libX.so links so that -lX finds them.
  local f base
  find "$root" -name 'lib*.so.*' | while read -r f; do
    base=${f%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$f")" "$base"
  done
  return 0
}
if ls "$top"/.device/debs/*.deb >/dev/null 2>&1; then
  step "extract .device/debs into .device/root" extract_debs
  dirs_of() { find "$root" -name "$1" -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -; }
  libdirs=$(dirs_of 'lib*.so*')
  incdirs="$root/usr/include:$root/usr/include/x86_64-linux-gnu"
  cblasdirs=$(dirs_of cblas.h)
  incdirs="$incdirs${cblasdirs:+:$cblasdirs}"
  export CPATH="$incdirs${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$libdirs${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$libdirs:$LD_LIBRARY_PATH"
  pcdirs=$(dirs_of '*.pc')
  if command -v pkg-config >/dev/null && [ -n "$pcdirs" ]; then
    export PKG_CONFIG_LIBDIR="$pcdirs" PKG_CONFIG_SYSROOT_DIR="$root"
  else  # no pkg-config: configure takes these as given
    export GSL_CFLAGS="" GSL_LIBS="-lgsl -lm" CHECK_CFLAGS=""
    CHECK_LIBS="-lcheck -pthread -lrt -lm"
    [ -n "$(find "$root" -name 'libsubunit*' -print -quit)" ] && CHECK_LIBS="$CHECK_LIBS -lsubunit"
    export CHECK_LIBS
  fi
  say "CPATH=$CPATH"
  say "LIBRARY_PATH=$LIBRARY_PATH"
  say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
else
  say "no .device/debs/*.deb: using the system's libraries"
fi

# ---- 2. build ----------------------------------------------------------------------------
AAL=""
TEST=""
if [ -x build/aal ] && build/aal devices >/dev/null 2>&1; then
  say ""; say "## build: prebuilt mode (build/aal runs)"
  AAL=$top/build/aal
  [ -x build/tests/cuda/test_cuda_backend ] && TEST=$top/build/tests/cuda/test_cuda_backend
else
  full_build() {
    if command -v autoreconf >/dev/null; then autoreconf -fi || return 1
    elif [ ! -x ./configure ]; then echo "no autoreconf and no ./configure"; return 1
    fi
    ./configure --with-cuda=yes && make -j"$JOBS" && { make -j"$JOBS" tests/cuda/test_cuda_backend || true; }
  }
  if step "build: autoreconf, configure --with-cuda=yes, make -j$JOBS" full_build; then
    AAL=$top/aal
    [ -x tests/cuda/test_cuda_backend ] && TEST=$top/tests/cuda/test_cuda_backend
  fi
fi

# The CUDA backend's test and benchmark with nvcc alone (sim/core/error.c is all of libaal
# they need); the .cu files compile in parallel.
sa=$top/.device/standalone
standalone_build() {
  mkdir -p "$sa" || return 1
  rm -f "$sa"/*.o
  local f pids=() rc=0
  # shellcheck disable=SC2054  # the commas belong to nvcc's -gencode value
  local flags=(-gencode=arch=compute_90,code=sm_90 -O2 -I.)
  for f in kernels/cuda/*.cu; do
    nvcc "${flags[@]}" -DAAL_CUDA_BENCH_MAIN -c "$f" -o "$sa/k_$(basename "${f%.cu}").o" &
    pids+=($!)
  done
  for f in "${pids[@]}"; do wait "$f" || rc=1; done
  [ "$rc" -eq 0 ] || return 1
  local lib=()
  for f in "$sa"/k_*.o; do [ "$f" = "$sa/k_bench.o" ] || lib+=("$f"); done
  gcc -std=c11 -O2 -I. -c sim/core/error.c -o "$sa/aal_error.o" &&
  nvcc "${flags[@]}" -o "$sa/aal-cuda-bench" "$sa/k_bench.o" "${lib[@]}" "$sa/aal_error.o" -lcublas &&
  gcc -std=c11 -O2 -Wall -DAAL_HAVE_CUDA -I. -c tests/cuda/test_cuda_backend.c \
    -o "$sa/test.o" &&
  nvcc "${flags[@]}" -o "$sa/test_cuda_backend" "$sa/test.o" "${lib[@]}" "$sa/aal_error.o" -lcublas
}
step "build: standalone CUDA test and benchmark (nvcc)" standalone_build
[ -z "$TEST" ] && [ -x "$sa/test_cuda_backend" ] && TEST=$sa/test_cuda_backend

# ---- 3. checks ---------------------------------------------------------------------------
if [ -n "$AAL" ]; then
  step "aal devices" "$AAL" devices
  step "aal kcheck --backend cuda --shapes resnet18" "$AAL" kcheck --backend cuda --shapes resnet18
  step "aal kcheck --backend cuda --shapes random:50" "$AAL" kcheck --backend cuda --shapes random:50
  step "aal kcheck --backend cuda --shapes boundary:16" "$AAL" kcheck --backend cuda --shapes boundary:16
  # the false-alarm sweep of docs/KERNELS.md on the device (20 seeds of every set)
  step "experiments/kcheck-sweep.sh --backend cuda" env AAL="$AAL" \
    "$top/experiments/kcheck-sweep.sh" --backend cuda
  # the model on the device, tensors resident there (poisoned stale host copies)
  step "aal kcheck --step --backend cuda" "$AAL" kcheck --step --backend cuda
  # ResNet-50 with the ImageNet stem (max pooling, bottleneck blocks; issue 12)
  step "aal kcheck --step --backend cuda --model resnet50" "$AAL" kcheck --step \
    --backend cuda --model resnet50 --stem imagenet --size 64 --batch 8
  step "aal train --backend cuda (5 steps, ASA, LI)" "$AAL" train --backend cuda \
    --rule asa:2,2,2,2 --steps 5 --li-every 1 --out "$OUT/train-cuda" --plain
else
  say ""; say "## no aal binary: kcheck not run"; failed=1
  summary+=("$(printf '%-52s %-16s' "aal kcheck (resnet18, random:50)" "NOT BUILT")")
fi
if [ -n "$TEST" ]; then
  step "test_cuda_backend" "$TEST"
  step "test_cuda_backend (AAL_CUDA_SYNC=1)" env AAL_CUDA_SYNC=1 "$TEST"
else
  say ""; say "## test_cuda_backend: not built"; failed=1
  summary+=("$(printf '%-52s %-16s' "test_cuda_backend" "NOT BUILT")")
fi
[ -x tests/cuda/test_cuda ] && step "test_cuda (saxpy)" tests/cuda/test_cuda

# Benchmark: the wired command when it works, else the standalone program.
if [ -n "$AAL" ] && "$AAL" bench kernels --help >/dev/null 2>&1; then
  step "aal bench kernels --backend cuda" "$AAL" bench kernels --backend cuda
  step "aal bench step --backend cuda" "$AAL" bench step --backend cuda --repeats 3 \
    --batch 256 --li
elif [ -x "$sa/aal-cuda-bench" ]; then
  step "aal-cuda-bench 256 (standalone)" "$sa/aal-cuda-bench" 256
fi

# The full-scale Theorem-1 experiment (issue 11): every rule, ResNet-18 at width 1 on the
# built-in set at Tiny ImageNet's size, 2 epochs; its verdict table goes into the log
if [ -n "$AAL" ]; then
  STEP_TIMEOUT=${FULL_TIMEOUT:-540} step "experiments/li-theorem.sh --full" \
    "$top/experiments/li-theorem.sh" --full --aal "$AAL" --out "$OUT/li-theorem" --no-figures
  [ -f "$OUT/li-theorem/verdict.txt" ] && cat "$OUT/li-theorem/verdict.txt" >>"$log"
fi

say ""
say "## summary ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
say "$(printf '%-52s %-16s %4s %7s' step verdict rc time)"
for line in "${summary[@]}"; do say "$line"; done
say "overall: $([ "$failed" -eq 0 ] && echo PASS || echo FAIL)"
exit "$failed"
