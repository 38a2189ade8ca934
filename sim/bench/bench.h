/* Benchmarks (figures, not tests).  Each prints a table to `out`. */
#ifndef AAL_BENCH_H
#define AAL_BENCH_H

#include <stdio.h>

#include "sim/core/error.h"

typedef struct {
  int batch;      /* images per batch (default 32) */
  int repeats;    /* timed repetitions per measurement; the minimum time is reported */
  int dgemm_n;    /* size of the square reference dgemm / sgemm (default 2048) */
  unsigned long seed;
  const char *backend; /* "ref" (default): sim/layers/conv.c in double, against dgemm;
                          "cpu32", "dnnl": a float32 CPU backend's convs, against sgemm */
} aal_bench_conv_opts;

void aal_bench_conv_opts_default(aal_bench_conv_opts *opts);

/* GFLOP/s of cblas_dgemm on n x n x n (best of `repeats`). */
int aal_bench_dgemm_gflops(int n, int repeats, unsigned long seed, double *gflops,
                           aal_error *err);
/* The same for cblas_sgemm (float). */
int aal_bench_sgemm_gflops(int n, int repeats, unsigned long seed, double *gflops,
                           aal_error *err);

/* Times forward, backward-data and backward-filter of the im2col + dgemm conv (or, with
 * backend "cpu32" or "dnnl", of that float32 CPU backend's convs) on the ResNet-18 Tiny
 * ImageNet layer shapes and, in the same run, a large dgemm (sgemm for a float backend);
 * prints one row per shape and direction: time, GFLOP/s, ratio to the dgemm (sgemm)
 * rate, and for dnnl the implementation oneDNN chose. */
int aal_bench_conv(const aal_bench_conv_opts *opts, FILE *out, aal_error *err);

typedef struct {
  int batch;          /* default 32 */
  int repeats;        /* interleaved rounds of one step per rule (default 3) */
  int dgemm_n;        /* default 2048 */
  double width;       /* width multiplier (default 1: ResNet-18) */
  const char *model;  /* "resnet18" (default) .. "resnet152" */
  const char *stem;   /* "tiny" (default) or "imagenet" */
  int size;           /* input height and width (default 64) */
  const char *rules;  /* space-separated rule texts (default "bp ara:2,2,2,2 asa:2,2,2,2") */
  unsigned long seed;
  int li;             /* also time each step with LI and alignment recorded */
  const char *backend;  /* ops of the step (sim/ops/ops.h): "ref" (default), "cpu32",
                           "dnnl", "cuda"; a float backend is also held against cblas_sgemm */
  int profile;        /* also print each rule's wall time per op (not for "ref";
                         sim/bench/profile.h) */
} aal_bench_step_opts;

void aal_bench_step_opts_default(aal_bench_step_opts *opts);

/* Times one full training step (forward, backward, SGD) of the Tiny ImageNet ResNet-18
 * in double for each rule; prints images/s, GFLOP/s (conv and fc multiply-adds, 2 FLOPs
 * each), the ratio to a large dgemm measured in the same run, and time relative to BP. */
int aal_bench_step(const aal_bench_step_opts *opts, FILE *out, aal_error *err);

#endif
