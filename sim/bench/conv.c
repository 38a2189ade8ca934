/* Benchmark of the im2col + dgemm convolution on the ResNet-18 Tiny ImageNet layer
 * shapes, against the rate of a large square dgemm measured in the same run; or, with
 * --backend cpu32 or dnnl, of a float32 CPU backend's convs against a large sgemm
 * (for dnnl with the implementation oneDNN chose for each direction).
 * The goal it reports on: every 3x3 conv direction at >= 0.6 of the GEMM rate. */
#include <config.h>

#include "sim/bench/bench.h"
#include "sim/core/clock.h"

#include <cblas.h>
#include <gsl/gsl_rng.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/layers/conv.h"
#include "sim/core/tensor.h"
#include "kernels/backend.h"
#ifdef AAL_HAVE_DNNL
#include "kernels/dnnl/dnnl.h"
#endif

/* The goal: every 3x3 conv direction at >= this fraction of the dgemm rate. */
#define AAL_BENCH_CONV_GOAL 0.6

void aal_bench_conv_opts_default(aal_bench_conv_opts *opts)
{
  opts->batch = 32;
  opts->repeats = 3;
  opts->dgemm_n = 2048;
  opts->seed = 1;
  opts->backend = "ref";
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Uniform in [-1, 1): benchmarks never run on zeros. */
static void fill_random(gsl_rng *rng, double *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    x[i] = 2.0 * gsl_rng_uniform(rng) - 1.0;
}

static gsl_rng *rng_new(unsigned long seed, aal_error *err)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rng == NULL)
    aal_fail(err, AAL_ENOMEM, "bench: cannot allocate a random number generator");
  else
    gsl_rng_set(rng, seed);
  return rng;
}

/* ------------------------------------------------------------------- conv */

typedef struct {
  const char *name;
  int c, k, hw, ksize, stride, pad;
  int is_stem; /* the network never needs dx of the image */
} conv_layer;

/* ResNet-18 on Tiny ImageNet (64x64 input, 3x3 stride-2 stem): one entry per distinct
 * conv shape. */
static const conv_layer LAYERS[] = {
    {"stem   3->64  3x3 s2 @64", 3, 64, 64, 3, 2, 1, 1},
    {"l1    64->64  3x3 s1 @32", 64, 64, 32, 3, 1, 1, 0},
    {"l2    64->128 3x3 s2 @32", 64, 128, 32, 3, 2, 1, 0},
    {"l2   128->128 3x3 s1 @16", 128, 128, 16, 3, 1, 1, 0},
    {"l2    64->128 1x1 s2 @32", 64, 128, 32, 1, 2, 0, 0},
    {"l3   128->256 3x3 s2 @16", 128, 256, 16, 3, 2, 1, 0},
    {"l3   256->256 3x3 s1 @8", 256, 256, 8, 3, 1, 1, 0},
    {"l3   128->256 1x1 s2 @16", 128, 256, 16, 1, 2, 0, 0},
    {"l4   256->512 3x3 s2 @8", 256, 512, 8, 3, 2, 1, 0},
    {"l4   512->512 3x3 s1 @4", 512, 512, 4, 3, 1, 1, 0},
    {"l4   256->512 1x1 s2 @8", 256, 512, 8, 1, 2, 0, 0},
};

typedef int (*conv_fn)(const aal_tensor *a, const aal_tensor *b, int stride, int pad,
                       aal_tensor *out, aal_error *err);

/* Best of `repeats` after one warm-up, in seconds. */
static int time_conv(conv_fn fn, const aal_tensor *a, const aal_tensor *b, int stride,
                     int pad, aal_tensor *out, int repeats, double *best, aal_error *err)
{
  int rc = fn(a, b, stride, pad, out, err);
  for (int i = 0; i < repeats && rc == AAL_OK; i++) {
    const double t0 = now_s();
    rc = fn(a, b, stride, pad, out, err);
    const double t = now_s() - t0;
    if (i == 0 || t < *best)
      *best = t;
  }
  return rc;
}

/* x, w, y and their gradients for one layer at batch n. */
typedef struct {
  aal_tensor *x, *w, *y, *dx, *dw, *dy;
} conv_operands;

static void operands_free(conv_operands *o)
{
  aal_tensor *all[6] = {o->x, o->w, o->y, o->dx, o->dw, o->dy};
  for (int i = 0; i < 6; i++)
    aal_tensor_release(all[i]);
}

static int operands_new(const conv_layer *l, int batch, gsl_rng *rng, conv_operands *o,
                        aal_error *err)
{
  *o = (conv_operands){0};
  long ys[4];
  o->x = aal_tensor_new4(batch, l->c, l->hw, l->hw, err);
  o->w = aal_tensor_new4(l->k, l->c, l->ksize, l->ksize, err);
  if (o->x == NULL || o->w == NULL ||
      aal_conv2d_output_shape(o->x, o->w, l->stride, l->pad, ys, err) != AAL_OK) {
    operands_free(o);
    return err ? err->code : AAL_EINVAL;
  }
  o->y = aal_tensor_new(4, ys, err);
  o->dy = aal_tensor_new(4, ys, err);
  o->dx = aal_tensor_new_like(o->x, err);
  o->dw = aal_tensor_new_like(o->w, err);
  if (o->y == NULL || o->dy == NULL || o->dx == NULL || o->dw == NULL) {
    operands_free(o);
    return AAL_ENOMEM;
  }
  fill_random(rng, o->x->data, o->x->size);
  fill_random(rng, o->w->data, o->w->size);
  fill_random(rng, o->dy->data, o->dy->size);
  return AAL_OK;
}

typedef struct {
  double min_ratio, min_ratio_nostem;
  const char *min_where, *min_where_nostem;
  const char *min_dir, *min_dir_nostem;
} bench_summary;

static const char *const DIRS[3] = {"forward", "backward_data", "backward_filter"};

static void summary_add(bench_summary *s, const conv_layer *l, int dir, double ratio)
{
  if (l->ksize != 3 || (l->is_stem && dir == 1))
    return;
  if (ratio < s->min_ratio) {
    s->min_ratio = ratio;
    s->min_where = l->name;
    s->min_dir = DIRS[dir];
  }
  if (!l->is_stem && ratio < s->min_ratio_nostem) {
    s->min_ratio_nostem = ratio;
    s->min_where_nostem = l->name;
    s->min_dir_nostem = DIRS[dir];
  }
}

/* One row per direction: time, GFLOP/s and the ratio to the large GEMM's rate, then
 * the implementation (impl[dir], may be NULL). */
static void print_rows(const conv_layer *l, double flops, const double t[3], double gemm,
                       char impl[3][64], FILE *out, bench_summary *sum)
{
  for (int dir = 0; dir < 3; dir++) {
    const double gf = flops / t[dir] * 1e-9, ratio = gf / gemm;
    fprintf(out, "%-26s %-16s %10.3f %9.2f %7.3f%s%s%s\n", l->name, DIRS[dir], t[dir] * 1e3,
            gf, ratio, impl != NULL ? "  " : "", impl != NULL ? impl[dir] : "",
            !l->is_stem ? ""
            : dir == 1  ? "  [stem*] (not needed by training)"
                        : "  [stem*]");
    summary_add(sum, l, dir, ratio);
  }
}

/* Times the three directions of one layer (sim/layers/conv.c, double) and prints them. */
static int bench_layer(const conv_layer *l, const aal_bench_conv_opts *opts, double dgemm,
                       gsl_rng *rng, FILE *out, bench_summary *sum, aal_error *err)
{
  conv_operands o;
  int rc = operands_new(l, opts->batch, rng, &o, err);
  if (rc != AAL_OK)
    return rc;
  /* FLOPs = 2 N K P Q C R S for each direction */
  const double flops = 2.0 * (double)o.y->size * (double)l->c * l->ksize * l->ksize;
  double t[3] = {0.0, 0.0, 0.0};
  rc = time_conv(aal_conv2d_forward, o.x, o.w, l->stride, l->pad, o.y, opts->repeats, &t[0],
                 err);
  if (rc == AAL_OK)
    rc = time_conv(aal_conv2d_backward_data, o.dy, o.w, l->stride, l->pad, o.dx,
                   opts->repeats, &t[1], err);
  if (rc == AAL_OK)
    rc = time_conv(aal_conv2d_backward_filter, o.x, o.dy, l->stride, l->pad, o.dw,
                   opts->repeats, &t[2], err);
  if (rc == AAL_OK)
    print_rows(l, flops, t, dgemm, NULL, out, sum);
  operands_free(&o);
  return rc;
}

/* ------------------------------------------------ a float32 CPU backend (cpu32, dnnl) */

/* Backend buffers of one layer, in the order of conv_operands. */
enum { BX, BW, BY, BDX, BDW, BDY, NBUF };

/* Best of `repeats` after one warm-up of direction dir (0 forward, 1 backward-data,
 * 2 backward-filter), in seconds. */
static int time_backend_dir(const aal_backend *be, const aal_conv_shape *cs, void *const b[NBUF],
                            int dir, int repeats, double *best, aal_error *err)
{
  int rc = AAL_OK;
  for (int i = 0; i <= repeats && rc == AAL_OK; i++) {
    const double t0 = now_s();
    if (dir == 0)
      rc = be->conv_forward(be, cs, b[BX], b[BW], b[BY], err);
    else if (dir == 1)
      rc = be->conv_backward_data(be, cs, b[BDY], b[BW], b[BDX], err);
    else
      rc = be->conv_backward_filter(be, cs, b[BX], b[BDY], b[BDW], err);
    const double t = now_s() - t0;
    if (i == 1 || (i > 1 && t < *best)) /* i == 0 is the warm-up */
      *best = t;
  }
  return rc;
}

/* The implementation of each direction at cs, where the backend tells (dnnl: oneDNN's
 * impl_info_str); 0 if it does not. */
static int backend_impl(const aal_backend *be, const aal_conv_shape *cs, char impl[3][64])
{
#ifdef AAL_HAVE_DNNL
  if (strcmp(be->name, "dnnl") == 0) {
    aal_error e;
    for (int dir = 0; dir < 3; dir++)
      if (aal_backend_dnnl_conv_impl(be, cs, dir, impl[dir], sizeof impl[dir], &e) != AAL_OK)
        snprintf(impl[dir], sizeof impl[dir], "?");
    return 1;
  }
#endif
  (void)be;
  (void)cs;
  (void)impl;
  return 0;
}

/* Times the three directions of one layer on backend be and prints them.  x, w and dy
 * are uniform in [-1, 1) from rng, rounded to the backend's precision by upload. */
static int bench_layer_backend(const aal_backend *be, const conv_layer *l,
                               const aal_bench_conv_opts *opts, double gemm, gsl_rng *rng,
                               FILE *out, bench_summary *sum, aal_error *err)
{
  aal_conv_shape cs = {.n = opts->batch, .c = l->c, .h = l->hw, .w = l->hw, .k = l->k,
                       .r = l->ksize, .s = l->ksize, .stride = l->stride, .pad = l->pad};
  int rc = aal_conv_shape_init(&cs, err);
  if (rc != AAL_OK)
    return rc;
  const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * cs.c * cs.r * cs.s;
  const size_t ny = (size_t)cs.n * cs.k * cs.p * cs.q;
  const size_t count[NBUF] = {nx, nw, ny, nx, nw, ny};
  void *b[NBUF] = {0};
  double *host = malloc((nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw)) * sizeof *host);
  if (host == NULL)
    rc = aal_fail(err, AAL_ENOMEM, "bench conv: cannot allocate the host buffer of %s",
                  l->name);
  for (int i = 0; i < NBUF && rc == AAL_OK; i++)
    rc = be->alloc(be, count[i], &b[i], err);
  const int inputs[3] = {BX, BW, BDY};
  for (int i = 0; i < 3 && rc == AAL_OK; i++) {
    fill_random(rng, host, count[inputs[i]]);
    rc = be->upload(be, b[inputs[i]], host, count[inputs[i]], err);
  }
  double t[3] = {0.0, 0.0, 0.0};
  for (int dir = 0; dir < 3 && rc == AAL_OK; dir++)
    rc = time_backend_dir(be, &cs, b, dir, opts->repeats, &t[dir], err);
  char impl[3][64];
  const int named = backend_impl(be, &cs, impl);
  if (rc == AAL_OK) /* FLOPs = 2 N K P Q C R S for each direction */
    print_rows(l, 2.0 * (double)ny * (double)cs.c * cs.r * cs.s, t, gemm, named ? impl : NULL,
               out, sum);
  for (int i = 0; i < NBUF; i++)
    if (b[i] != NULL)
      be->release(be, b[i]);
  free(host);
  return rc;
}

/* gemm: "dgemm" or "sgemm", the rate the ratios are taken against; im2col: the convs
 * are im2col + GEMM (ref, cpu32), whose stem is explained. */
static void print_footer(const bench_summary *sum, const char *gemm, int im2col, FILE *out)
{
  if (im2col)
    fprintf(out, "[stem*] C*R*S = 27: the GEMM's inner dimension is 27, far too short for "
                 "any GEMM to run near the large-%s rate;\n"
                 "        the >= %.1f goal cannot be met for the stem by im2col + GEMM.\n",
            gemm, AAL_BENCH_CONV_GOAL);
  else
    fprintf(out, "[stem*] the stem: 3 input channels, C*R*S = 27.\n");
  fprintf(out, "min ratio over 3x3 convs except the stem: %.3f (%s %s)%s\n",
          sum->min_ratio_nostem, sum->min_where_nostem, sum->min_dir_nostem,
          sum->min_ratio_nostem >= AAL_BENCH_CONV_GOAL ? "" : "  below the goal");
  fprintf(out, "min ratio over all 3x3 convs (stem included): %.3f (%s %s)%s\n",
          sum->min_ratio, sum->min_where, sum->min_dir,
          sum->min_ratio >= AAL_BENCH_CONV_GOAL ? "" : "  below the goal");
}

/* OpenBLAS's idle threads spin (sched_yield) for about 0.1 s after a GEMM; the convs
 * of a backend that runs on other threads (dnnl's OpenMP) would compete with them for
 * the cores: measured, the first rows after the sgemm (the stem) ran 25x slower.  So
 * the timings start 0.3 s after it. */
static void settle_after_gemm(void)
{
  struct timespec t = {0, 300000000L};
  while (nanosleep(&t, &t) != 0)
    ; /* interrupted: sleep the rest */
}

/* --backend cpu32 or dnnl: a float32 CPU backend against sgemm. */
static int bench_conv_float(const char *name, const aal_bench_conv_opts *opts, FILE *out,
                            aal_error *err)
{
  double sgemm;
  int rc = aal_bench_sgemm_gflops(opts->dgemm_n, opts->repeats, opts->seed, &sgemm, err);
  if (rc != AAL_OK)
    return rc;
  settle_after_gemm();
  aal_backend be;
  rc = aal_backend_open(name, &be, err);
  if (rc != AAL_OK)
    return rc;
  fprintf(out, "OpenBLAS threads: %d\n", openblas_get_num_threads());
  fprintf(out, "sgemm %dx%dx%d: %.2f GFLOP/s (best of %d)\n", opts->dgemm_n, opts->dgemm_n,
          opts->dgemm_n, sgemm, opts->repeats);
  fprintf(out, "conv2d backend %s (float32), batch %d, best of %d, inputs uniform in "
               "[-1, 1) from seed %lu:\n",
          be.name, opts->batch, opts->repeats, opts->seed + 1);
  fprintf(out, "%-26s %-16s %10s %9s %7s\n", "shape", "op", "ms", "GFLOP/s", "ratio");
  gsl_rng *rng = rng_new(opts->seed + 1, err);
  if (rng == NULL)
    rc = AAL_ENOMEM;
  bench_summary sum = {1e300, 1e300, "-", "-", "-", "-"};
  for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0] && rc == AAL_OK; i++)
    rc = bench_layer_backend(&be, &LAYERS[i], opts, sgemm, rng, out, &sum, err);
  gsl_rng_free(rng);
  be.destroy(&be);
  if (rc == AAL_OK)
    print_footer(&sum, "sgemm", strcmp(name, "cpu32") == 0, out);
  return rc;
}

int aal_bench_conv(const aal_bench_conv_opts *opts, FILE *out, aal_error *err)
{
  if (opts == NULL || out == NULL)
    return aal_fail(err, AAL_EINVAL, "bench conv: opts or out is NULL");
  if (opts->batch < 1 || opts->repeats < 1 || opts->dgemm_n < 1)
    return aal_fail(err, AAL_EINVAL, "bench conv: batch %d, repeats %d, dgemm_n %d must be >= 1",
                    opts->batch, opts->repeats, opts->dgemm_n);
  const char *backend = opts->backend ? opts->backend : "ref";
  if (strcmp(backend, "cpu32") == 0 || strcmp(backend, "dnnl") == 0)
    return bench_conv_float(backend, opts, out, err);
  if (strcmp(backend, "ref") != 0)
    return aal_fail(err, AAL_EINVAL, "bench conv: backend '%s' is not timed here (ref, cpu32, "
                    "dnnl)", backend);
  double dgemm;
  int rc = aal_bench_dgemm_gflops(opts->dgemm_n, opts->repeats, opts->seed, &dgemm, err);
  if (rc != AAL_OK)
    return rc;
  fprintf(out, "OpenBLAS threads: %d\n", openblas_get_num_threads());
  fprintf(out, "dgemm %dx%dx%d: %.2f GFLOP/s (best of %d)\n", opts->dgemm_n, opts->dgemm_n,
          opts->dgemm_n, dgemm, opts->repeats);
  fprintf(out, "conv2d im2col+dgemm, batch %d, best of %d:\n", opts->batch, opts->repeats);
  fprintf(out, "%-26s %-16s %10s %9s %7s\n", "shape", "op", "ms", "GFLOP/s", "ratio");
  gsl_rng *rng = rng_new(opts->seed + 1, err);
  if (rng == NULL)
    return AAL_ENOMEM;
  bench_summary sum = {1e300, 1e300, "-", "-", "-", "-"};
  for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0] && rc == AAL_OK; i++)
    rc = bench_layer(&LAYERS[i], opts, dgemm, rng, out, &sum, err);
  gsl_rng_free(rng);
  if (rc != AAL_OK)
    return rc;
  print_footer(&sum, "dgemm", 1, out);
  return AAL_OK;
}
