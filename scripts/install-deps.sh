#!/bin/sh
# Installs what AAL needs from Debian's packages (build tools, GSL, OpenBLAS, Check,
# libjpeg, zlib, gnuplot; oneDNN, libdnnl-dev, for the dnnl backend; Open MPI,
# libopenmpi-dev and openmpi-bin, for data-parallel training (mpirun); clang and its
# libFuzzer runtime for `make fuzz`) and the Fashion-MNIST data set
# (dataset-fashion-mnist: its IDX files in /usr/share/datasets/fashion-mnist).  Run as
# root, or as a user with sudo.  The CUDA toolkit is not a Debian package here: install
# it separately to build the GPU parts (optional).
set -eu
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  build-essential autoconf automake libtool pkg-config \
  libgsl-dev libopenblas-dev check libjpeg-dev zlib1g-dev gnuplot-nox libdnnl-dev \
  libopenmpi-dev openmpi-bin \
  dataset-fashion-mnist clang libclang-rt-14-dev
