/* Benchmarks (figures, not tests).  Each prints a table to `out`. */
#ifndef AAL_BENCH_H
#define AAL_BENCH_H

#include <stdio.h>

#include "aal_error.h"

typedef struct {
  int batch;      /* images per batch (default 32) */
  int repeats;    /* timed repetitions per measurement; the minimum time is reported */
  int dgemm_n;    /* size of the square reference dgemm (default 2048) */
  unsigned long seed;
} aal_bench_conv_opts;

void aal_bench_conv_opts_default(aal_bench_conv_opts *opts);

/* GFLOP/s of cblas_dgemm on n x n x n (best of `repeats`). */
int aal_bench_dgemm_gflops(int n, int repeats, unsigned long seed, double *gflops,
                           aal_error *err);

/* Times forward, backward-data and backward-filter of the im2col + dgemm conv on the
 * ResNet-18 Tiny ImageNet layer shapes and, in the same run, a large dgemm; prints
 * one row per shape and direction: time, GFLOP/s, ratio to the dgemm rate. */
int aal_bench_conv(const aal_bench_conv_opts *opts, FILE *out, aal_error *err);

#endif
