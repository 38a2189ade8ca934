/* The oneDNN backend "dnnl" (kernels/dnnl), covered as cpu32 is:
 *
 *  a. the harness (kernels/check/kcheck.h) passes it on the ResNet-18 shapes (small
 *     batch), random and boundary shapes, at the default thread count and with one
 *     thread; no conv direction at a ResNet-18 shape runs a Winograd implementation;
 *  b. a small ResNet training step on dnnl agrees with the reference within the step
 *     check's tolerance for bp, ara:2,2,2,2 and asa:2,2,2,2 (kernels/check/step_check.h);
 *  c. the primitive cache: a steady-state training step creates no primitive and grows
 *     no workspace; a full cache evicts the least recently used entry, and an evicted
 *     shape comes back with the same results; the thread count is part of the key;
 *  d. every direction gives bit-identical results when run again (a training run
 *     resumes bit-identically);
 *  e. bad arguments are reported naming the op; the counters refuse other tables;
 *  f. the ops taken from cpu32, whose loops run on OpenMP's threads here, give cpu32's
 *     results bit for bit;
 *  g. backward-data reuses the dy that backward-filter reordered just before, and never
 *     a stale one (after an upload, after a conv wrote over it); every table member
 *     that may write a buffer is tracked.
 *
 * Exit 77 (skipped) when aal was built without oneDNN; then aal_backend_open("dnnl")
 * must fail naming Debian's package.  The seed is $AAL_TEST_SEED (default 20261128),
 * printed. */
#include <config.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "tests/aal_check.h"
#include "kernels/backend.h"
#include "kernels/check/kcheck.h"
#include "tests/check/kcheck_run.h"
#include "kernels/check/step_check.h"
#include "sim/model/memory.h"
#include "sim/model/resnet.h"
#include "sim/ops/ops.h"

#ifdef AAL_HAVE_DNNL
#include "kernels/dnnl/dnnl.h"
#endif

#define SKIP 77

static unsigned long g_seed;

#ifdef AAL_HAVE_DNNL

static aal_backend dnnl(void)
{
  aal_backend be;
  aal_error err;
  ck_assert_msg(aal_backend_open("dnnl", &be, &err) == AAL_OK, "%s", err.msg);
  ck_assert_str_eq(be.name, "dnnl");
  ck_assert_int_eq(be.precision_bits, 24);
  return be;
}

static aal_dnnl_stats stats(const aal_backend *be)
{
  aal_dnnl_stats s;
  aal_error err;
  ck_assert_msg(aal_backend_dnnl_stats(be, &s, &err) == AAL_OK, "%s", err.msg);
  return s;
}

static aal_kcheck_summary run_kcheck(const aal_backend *be, const char *op, const char *shapes,
                                     int batch)
{
  const aal_kcheck_summary sum = aal_test_kcheck(be, op, shapes, batch, g_seed);
  fprintf(stderr, "kcheck dnnl %-5s %-12s (%d threads): %3d checks, %d failed, worst %.3g (%s)\n",
          op ? op : "all", shapes, openblas_get_num_threads(), sum.checks, sum.failed,
          sum.worst_ratio, sum.worst);
  ck_assert_msg(sum.failed == 0, "%d failed; worst %s (%g)", sum.failed, sum.worst,
                sum.worst_ratio);
  ck_assert(sum.worst_ratio <= 1.0);
  return sum;
}

/* ------------------------------------------------------------------ a. the harness */

START_TEST(test_dnnl_resnet18)
{
  aal_backend be = dnnl();
  ck_assert_int_eq(run_kcheck(&be, NULL, "resnet18", 2).checks, 98 + 27); /* + the Transformer ops */
  be.destroy(&be);
}
END_TEST

START_TEST(test_dnnl_random)
{
  aal_backend be = dnnl();
  ck_assert_int_eq(run_kcheck(&be, NULL, "random:12", 0).checks, 38 * 12);
  be.destroy(&be);
}
END_TEST

START_TEST(test_dnnl_boundary)
{
  aal_backend be = dnnl();
  ck_assert_int_eq(run_kcheck(&be, NULL, "boundary", 0).checks, 38 * 8);
  be.destroy(&be);
}
END_TEST

/* One thread: oneDNN's OpenMP follows OpenBLAS's count (--threads), and the cache keys
 * on it, so these are other primitives than the default's. */
START_TEST(test_dnnl_one_thread)
{
  const int threads = openblas_get_num_threads();
  aal_backend be = dnnl();
  openblas_set_num_threads(1);
  run_kcheck(&be, "conv", "random:8", 0);
  run_kcheck(&be, "conv", "resnet18", 1);
  ck_assert_int_eq(stats(&be).threads, 1);
  openblas_set_num_threads(threads);
  be.destroy(&be);
}
END_TEST

/* The implementation oneDNN chose for each direction at each ResNet-18 conv shape: never
 * Winograd (the conv bound is that of a sum of products; docs/KERNELS.md). */
START_TEST(test_dnnl_no_winograd)
{
  static const int L[][6] = {{3, 64, 64, 3, 2, 1},   {64, 64, 32, 3, 1, 1},
                             {64, 128, 32, 3, 2, 1}, {128, 128, 16, 3, 1, 1},
                             {64, 128, 32, 1, 2, 0}, {256, 512, 8, 3, 2, 1},
                             {512, 512, 4, 3, 1, 1}};
  aal_backend be = dnnl();
  aal_error err;
  for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
    for (int dir = 0; dir < 3; dir++) {
      aal_conv_shape cs = {.n = 4, .c = L[i][0], .k = L[i][1], .h = L[i][2], .w = L[i][2],
                           .r = L[i][3], .s = L[i][3], .stride = L[i][4], .pad = L[i][5]};
      ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_OK);
      char name[128];
      ck_assert_msg(aal_backend_dnnl_conv_impl(&be, &cs, dir, name, sizeof name, &err) ==
                    AAL_OK, "%s", err.msg);
      fprintf(stderr, "impl %3d->%-3d %dx%d s%d @%-2d dir %d: %s\n", cs.c, cs.k, cs.r, cs.s,
              cs.stride, cs.h, dir, name);
      ck_assert_msg(name[0] != '\0' && strstr(name, "wino") == NULL, "%s", name);
    }
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ b. the step */

START_TEST(test_dnnl_step_within_tolerance)
{
  aal_backend be = dnnl();
  aal_ops ops;
  aal_error err;
  aal_step_check_opts o;
  aal_step_check_summary s;
  aal_step_check_opts_init(&o);
  o.seed = g_seed;
  o.batch = 4;
  o.in_size = 32;
  o.classes = 10;
  ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
  ck_assert_msg(aal_step_check(&ops, &o, stdout, &s, &err) == AAL_OK, "%s", err.msg);
  aal_ops_free(&ops);
  ck_assert_msg(s.failed == 0, "%d failed; worst %s (%g)", s.failed, s.worst, s.worst_ratio);
  ck_assert(s.worst_ratio <= 1.0);
  ck_assert_int_ge(s.checks, 3 * 60);
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ c. the cache */

/* Three training steps of a small ResNet on dnnl: the third creates no primitive, finds
 * every conv in the cache and grows no workspace. */
START_TEST(test_dnnl_steady_state_creates_nothing)
{
  aal_backend be = dnnl();
  aal_ops ops;
  aal_error err;
  aal_resnet_config cfg;
  aal_resnet net;
  aal_tensor *x = NULL;
  int *labels = NULL;
  aal_resnet_config_default(&cfg);
  cfg.in_size = 32;
  cfg.classes = 10;
  ck_assert_int_eq(aal_resnet_config_set_width(&cfg, 0.125, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, g_seed, &err), AAL_OK);
  ck_assert_int_eq(aal_random_batch(&cfg, 4, g_seed, &x, &labels, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_move(&net, &ops, &err), AAL_OK);
  aal_rule rule;
  ck_assert_int_eq(aal_rule_parse("asa:2,2,2,2", &rule, &err), AAL_OK);
  for (unsigned long step = 0; step < 3; step++) {
    const aal_dnnl_stats s0 = stats(&be);
    aal_resnet_pass pass;
    double loss;
    ck_assert_int_eq(aal_resnet_pass_init(&pass, &net, &rule, 3, step, &err), AAL_OK);
    pass.ops = &ops;
    aal_tape *tape = aal_tape_new(&err);
    ck_assert_ptr_nonnull(tape);
    ck_assert_msg(aal_resnet_forward(&net, &pass, x, labels, tape, &loss, NULL, &err) ==
                  AAL_OK, "%s", err.msg);
    ck_assert_msg(aal_resnet_backward(&net, &pass, tape, labels, &err) == AAL_OK, "%s",
                  err.msg);
    ck_assert_int_eq(aal_resnet_sgd_step_ops(&net, &ops, 0.01, 0.9, 1e-4, &err), AAL_OK);
    aal_tape_free(tape);
    const aal_dnnl_stats s1 = stats(&be);
    printf("dnnl step %lu: %ld primitives created, %ld cache hits, %ld reorders reused, %d "
           "entries, workspace %zu bytes, %d threads\n", step, s1.created - s0.created,
           s1.hits - s0.hits, s1.reused - s0.reused, s1.entries, s1.workspace_bytes,
           s1.threads);
    if (step == 0) /* 11 geometries; the stem needs no backward-data */
      ck_assert_int_eq(s1.created - s0.created, 32);
    if (step < 2)
      continue;
    ck_assert_int_eq(s1.created, s0.created);
    ck_assert_int_eq(s1.evicted, s0.evicted);
    ck_assert_int_ge(s1.hits - s0.hits, 3 * 20 - 1);
    ck_assert_uint_eq(s1.workspace_bytes, s0.workspace_bytes);
    ck_assert_int_gt(s1.reused - s0.reused, 0);
  }
  aal_ops_free(&ops);
  aal_resnet_free(&net);
  aal_tensor_release(x);
  free(labels);
  be.destroy(&be);
}
END_TEST

/* Uniform in +-[1/1024, 1), never zero. */
static float *random_floats(gsl_rng *rng, size_t n)
{
  float *p = malloc(n * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++) {
    const double m = 1.0 / 1024 + (1 - 1.0 / 1024) * gsl_rng_uniform(rng);
    p[i] = (float)(gsl_rng_uniform(rng) < 0.5 ? -m : m);
  }
  return p;
}

/* The three directions at shape cs, outputs written to y, dx, dw. */
static void conv_all(const aal_backend *be, const aal_conv_shape *cs, const float *x,
                     const float *w, const float *dy, float *y, float *dx, float *dw)
{
  aal_error err;
  ck_assert_msg(be->conv_forward(be, cs, x, w, y, &err) == AAL_OK, "%s", err.msg);
  ck_assert_msg(be->conv_backward_data(be, cs, dy, w, dx, &err) == AAL_OK, "%s", err.msg);
  ck_assert_msg(be->conv_backward_filter(be, cs, x, dy, dw, &err) == AAL_OK, "%s", err.msg);
}

/* A conv problem with inputs, reference outputs (a first run) and output buffers. */
typedef struct {
  aal_conv_shape cs;
  size_t nx, nw, ny;
  float *x, *w, *dy, *y0, *dx0, *dw0, *y, *dx, *dw;
} conv_problem;

static void problem_init(conv_problem *p, gsl_rng *rng, int n, int c, int hw, int k, int r,
                         int stride, int pad)
{
  aal_error err;
  p->cs = (aal_conv_shape){.n = n, .c = c, .h = hw, .w = hw + 1, .k = k, .r = r, .s = r,
                           .stride = stride, .pad = pad};
  ck_assert_int_eq(aal_conv_shape_init(&p->cs, &err), AAL_OK);
  p->nx = (size_t)n * c * hw * (hw + 1);
  p->nw = (size_t)k * c * r * r;
  p->ny = (size_t)n * k * p->cs.p * p->cs.q;
  p->x = random_floats(rng, p->nx);
  p->w = random_floats(rng, p->nw);
  p->dy = random_floats(rng, p->ny);
  p->y0 = random_floats(rng, p->ny);
  p->dx0 = random_floats(rng, p->nx);
  p->dw0 = random_floats(rng, p->nw);
  p->y = random_floats(rng, p->ny);
  p->dx = random_floats(rng, p->nx);
  p->dw = random_floats(rng, p->nw);
}

static void problem_free(conv_problem *p)
{
  float *all[] = {p->x, p->w, p->dy, p->y0, p->dx0, p->dw0, p->y, p->dx, p->dw};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    free(all[i]);
}

/* The outputs of the last run equal the first run's bit for bit. */
static void problem_same(const conv_problem *p, const char *what)
{
  ck_assert_msg(memcmp(p->y, p->y0, p->ny * sizeof(float)) == 0, "%s: forward differs", what);
  ck_assert_msg(memcmp(p->dx, p->dx0, p->nx * sizeof(float)) == 0, "%s: backward-data differs",
                what);
  ck_assert_msg(memcmp(p->dw, p->dw0, p->nw * sizeof(float)) == 0,
                "%s: backward-filter differs", what);
}

/* More geometries than the cache holds: the least recently used are evicted, the
 * cache stays at its size, and the first geometry, evicted, gives the same bits when it
 * comes back (a new primitive).  The same holds across backends and thread counts:
 * a run is a function of the inputs, the geometry and the thread count. */
START_TEST(test_dnnl_cache_eviction_and_repeatability)
{
  aal_backend be = dnnl();
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(rng);
  gsl_rng_set(rng, g_seed);
  conv_problem first, big;
  problem_init(&first, rng, 2, 5, 9, 7, 3, 2, 1);
  problem_init(&big, rng, 4, 64, 16, 64, 3, 1, 1); /* blocked layouts and reorders */
  conv_all(&be, &first.cs, first.x, first.w, first.dy, first.y0, first.dx0, first.dw0);
  conv_all(&be, &big.cs, big.x, big.w, big.dy, big.y0, big.dx0, big.dw0);
  conv_all(&be, &big.cs, big.x, big.w, big.dy, big.y, big.dx, big.dw);
  problem_same(&big, "64 channels, run twice");
  const aal_dnnl_stats s0 = stats(&be);
  ck_assert_int_eq(s0.created, 6);
  ck_assert_int_eq(s0.hits, 3);
  /* forward at enough other geometries (1x1 convs of one channel, batch 1..) to push
   * `first` and `big` out */
  const int more = AAL_DNNL_CACHE_ENTRIES;
  float *ones = malloc((size_t)more * sizeof *ones), *out = malloc((size_t)more * sizeof *out);
  ck_assert(ones != NULL && out != NULL);
  for (int i = 0; i < more; i++)
    ones[i] = 0.5f;
  aal_error err;
  for (int i = 0; i < more; i++) {
    aal_conv_shape cs = {.n = 1 + i, .c = 1, .h = 1, .w = 1, .k = 1, .r = 1, .s = 1,
                         .stride = 1, .pad = 0};
    ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_OK);
    ck_assert_msg(be.conv_forward(&be, &cs, ones, ones, out, &err) == AAL_OK, "%s", err.msg);
    ck_assert(out[i] == 0.25f); /* x * w, exact */
  }
  const aal_dnnl_stats s1 = stats(&be);
  ck_assert_int_eq(s1.entries, AAL_DNNL_CACHE_ENTRIES);
  ck_assert_int_eq(s1.evicted, 6); /* the 6 entries of `first` and `big`, the oldest */
  conv_all(&be, &first.cs, first.x, first.w, first.dy, first.y, first.dx, first.dw);
  ck_assert_int_eq(stats(&be).created, s1.created + 3);
  problem_same(&first, "evicted and recreated");
  /* another backend, same thread count: the same bits */
  aal_backend other = dnnl();
  conv_all(&other, &big.cs, big.x, big.w, big.dy, big.y, big.dx, big.dw);
  problem_same(&big, "a second backend");
  other.destroy(&other);
  free(ones);
  free(out);
  problem_free(&first);
  problem_free(&big);
  gsl_rng_free(rng);
  be.destroy(&be);
}
END_TEST

/* The thread count is part of the key: at one thread the calls create their own
 * primitives, and back at the default they find the old ones again. */
START_TEST(test_dnnl_threads_key)
{
  const int threads = openblas_get_num_threads();
  aal_backend be = dnnl();
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(rng);
  gsl_rng_set(rng, g_seed + 1);
  conv_problem p;
  problem_init(&p, rng, 4, 32, 12, 48, 3, 1, 1);
  conv_all(&be, &p.cs, p.x, p.w, p.dy, p.y0, p.dx0, p.dw0);
  const aal_dnnl_stats s0 = stats(&be);
  ck_assert_int_eq(s0.threads, threads);
  openblas_set_num_threads(1);
  conv_all(&be, &p.cs, p.x, p.w, p.dy, p.y, p.dx, p.dw);
  const aal_dnnl_stats s1 = stats(&be);
  ck_assert_int_eq(s1.threads, 1);
  ck_assert_int_eq(s1.created, s0.created + (threads == 1 ? 0 : 3));
  openblas_set_num_threads(threads);
  conv_all(&be, &p.cs, p.x, p.w, p.dy, p.y, p.dx, p.dw);
  ck_assert_int_eq(stats(&be).created, s1.created);
  problem_same(&p, "back at the default thread count");
  problem_free(&p);
  gsl_rng_free(rng);
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ f. cpu32's loops */

/* The ops dnnl takes from cpu32 run their loops on OpenMP's threads (the team's runner,
 * kernels/dnnl/omp.c) instead of cpu32's helper: the results must be cpu32's bit for
 * bit.  Sizes above the team's threshold (AAL_TEAM_PAR_MIN_BYTES), so the loops split;
 * outputs poisoned differently on the two sides. */
START_TEST(test_dnnl_loops_equal_cpu32)
{
  enum { N = 4, C = 16, HW = 32 * 32 + 7, M = N * C * HW, WORDS = (M + 31) / 32 };
  aal_backend d = dnnl(), c;
  aal_error err;
  ck_assert_int_eq(aal_backend_open("cpu32", &c, &err), AAL_OK);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(rng);
  gsl_rng_set(rng, g_seed + 2);
  float *x = random_floats(rng, M), *dy = random_floats(rng, M), *g = random_floats(rng, C),
        *b = random_floats(rng, C);
  const aal_backend *be[2] = {&d, &c};
  float *y[2], *dx[2], *stat[2], *grads[2], *h[2], *w[2], *buf[2];
  uint32_t *mask[2], *bits[2];
  for (int i = 0; i < 2; i++) {
    y[i] = malloc(M * sizeof(float));
    dx[i] = malloc(M * sizeof(float));
    h[i] = malloc(M * sizeof(float));
    stat[i] = malloc(3 * C * sizeof(float));
    grads[i] = malloc(2 * C * sizeof(float));
    mask[i] = malloc(WORDS * sizeof(uint32_t));
    bits[i] = malloc(WORDS * sizeof(uint32_t));
    w[i] = malloc(M * sizeof(float));
    buf[i] = malloc(M * sizeof(float));
    ck_assert(y[i] && dx[i] && h[i] && stat[i] && grads[i] && mask[i] && bits[i] && w[i] &&
              buf[i]);
    memset(y[i], i ? 0xAA : 0x55, M * sizeof(float));
    memset(dx[i], i ? 0xAA : 0x55, M * sizeof(float));
    memset(h[i], i ? 0xAA : 0x55, M * sizeof(float));
    memset(mask[i], i ? 0xAA : 0x55, WORDS * sizeof(uint32_t));
    memset(bits[i], i ? 0xAA : 0x55, WORDS * sizeof(uint32_t));
    memcpy(w[i], x, M * sizeof(float));
    memcpy(buf[i], dy, M * sizeof(float));
    const aal_backend *t = be[i];
    float *mean = stat[i], *invstd = stat[i] + C, *var = stat[i] + 2 * C;
    ck_assert_msg(t->bn_relu_forward(t, N, C, HW, x, g, b, 1e-5, y[i], mask[i], mean, invstd,
                                     var, &err) == AAL_OK, "%s", err.msg);
    ck_assert_msg(t->bn_relu_backward(t, N, C, HW, dy, mask[i], x, g, mean, invstd, dx[i],
                                      grads[i], grads[i] + C, &err) == AAL_OK, "%s", err.msg);
    ck_assert_msg(t->asa_input(t, M, y[i], 0.01, h[i], bits[i], &err) == AAL_OK, "%s",
                  err.msg);
    ck_assert_msg(t->add(t, M, h[i], dx[i], h[i], &err) == AAL_OK, "%s", err.msg);
    ck_assert_msg(t->sgd_update(t, M, w[i], dx[i], buf[i], 0.05, 0.9, 1e-4, 0, &err) == AAL_OK,
                  "%s", err.msg);
  }
  ck_assert(memcmp(y[0], y[1], M * sizeof(float)) == 0);
  ck_assert(memcmp(mask[0], mask[1], WORDS * sizeof(uint32_t)) == 0);
  ck_assert(memcmp(stat[0], stat[1], 3 * C * sizeof(float)) == 0);
  ck_assert(memcmp(dx[0], dx[1], M * sizeof(float)) == 0);
  ck_assert(memcmp(grads[0], grads[1], 2 * C * sizeof(float)) == 0);
  ck_assert(memcmp(bits[0], bits[1], WORDS * sizeof(uint32_t)) == 0);
  ck_assert(memcmp(h[0], h[1], M * sizeof(float)) == 0);
  ck_assert(memcmp(w[0], w[1], M * sizeof(float)) == 0);
  ck_assert(memcmp(buf[0], buf[1], M * sizeof(float)) == 0);
  for (int i = 0; i < 2; i++) {
    float *all[] = {y[i], dx[i], h[i], stat[i], grads[i], w[i], buf[i]};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
      free(all[k]);
    free(mask[i]);
    free(bits[i]);
  }
  float *in[] = {x, dy, g, b};
  for (size_t k = 0; k < sizeof in / sizeof in[0]; k++)
    free(in[k]);
  gsl_rng_free(rng);
  c.destroy(&c);
  d.destroy(&d);
}
END_TEST

/* ------------------------------------------------------------------ g. reuse */

/* n doubles uniform in +-[1/1024, 1), as floats (so that upload rounds nothing). */
static double *random_doubles(gsl_rng *rng, size_t n)
{
  float *f = random_floats(rng, n);
  double *d = malloc(n * sizeof *d);
  ck_assert_ptr_nonnull(d);
  for (size_t i = 0; i < n; i++)
    d[i] = f[i];
  free(f);
  return d;
}

/* backward-data of a fresh backend (nothing cached) on the same values: the reference
 * for a call that may have reused a reordered dy */
static void fresh_backward_data(const aal_conv_shape *cs, const float *dy, const float *w,
                                float *dx)
{
  aal_backend f = dnnl();
  aal_error err;
  ck_assert_msg(f.conv_backward_data(&f, cs, dy, w, dx, &err) == AAL_OK, "%s", err.msg);
  f.destroy(&f);
}

/* The dy that backward-filter reordered is reused by backward-data right after it, and
 * only then: not after an upload into dy (the epoch moved), not after a conv wrote its
 * output over dy (the tag is cleared), each checked bit for bit against a fresh
 * backend. */
START_TEST(test_dnnl_reuse_is_exact)
{
  aal_backend be = dnnl();
  aal_error err;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(rng);
  gsl_rng_set(rng, g_seed + 3);
  aal_conv_shape cs = {.n = 2, .c = 32, .h = 10, .w = 9, .k = 48, .r = 3, .s = 3, .stride = 1,
                       .pad = 1};
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_OK);
  const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * cs.c * cs.r * cs.s,
               ny = (size_t)cs.n * cs.k * cs.p * cs.q;
  void *x, *w, *dy, *dx, *dw;
  ck_assert_int_eq(be.alloc(&be, nx, &x, &err), AAL_OK);
  ck_assert_int_eq(be.alloc(&be, nw, &w, &err), AAL_OK);
  ck_assert_int_eq(be.alloc(&be, ny, &dy, &err), AAL_OK);
  ck_assert_int_eq(be.alloc(&be, nx, &dx, &err), AAL_OK);
  ck_assert_int_eq(be.alloc(&be, nw, &dw, &err), AAL_OK);
  double *hx = random_doubles(rng, nx), *hw = random_doubles(rng, nw),
         *hdy = random_doubles(rng, ny), *hdy2 = random_doubles(rng, ny);
  ck_assert_int_eq(be.upload(&be, x, hx, nx, &err), AAL_OK);
  ck_assert_int_eq(be.upload(&be, w, hw, nw, &err), AAL_OK);
  ck_assert_int_eq(be.upload(&be, dy, hdy, ny, &err), AAL_OK);
  float *want = malloc(nx * sizeof *want);
  ck_assert_ptr_nonnull(want);
  for (int round = 0; round < 3; round++) {
    ck_assert_int_eq(be.conv_backward_filter(&be, &cs, x, dy, dw, &err), AAL_OK);
    if (round == 1) /* new values in dy, through the table */
      ck_assert_int_eq(be.upload(&be, dy, hdy2, ny, &err), AAL_OK);
    if (round == 2) /* a conv's output written over dy */
      ck_assert_int_eq(be.conv_forward(&be, &cs, x, w, dy, &err), AAL_OK);
    const long reused0 = stats(&be).reused;
    ck_assert_int_eq(be.conv_backward_data(&be, &cs, dy, w, dx, &err), AAL_OK);
    const long reused = stats(&be).reused - reused0;
    fresh_backward_data(&cs, dy, w, want);
    ck_assert_msg(memcmp(dx, want, nx * sizeof(float)) == 0, "round %d: stale dy", round);
    ck_assert_msg(reused == (round == 0 ? 1 : 0), "round %d: %ld reused", round, reused);
  }
  void *bufs[] = {x, w, dy, dx, dw};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    be.release(&be, bufs[i]);
  double *hs[] = {hx, hw, hdy, hdy2};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    free(hs[i]);
  free(want);
  gsl_rng_free(rng);
  be.destroy(&be);
}
END_TEST

/* The tracking of kernels/dnnl/track.c lists the table's members that may write a
 * buffer; a member added to the table must be added there (or the reuse above could
 * miss a write).  This counts the table's function members. */
START_TEST(test_dnnl_table_members_tracked)
{
  const size_t members =
      (sizeof(aal_backend) - offsetof(aal_backend, alloc)) / sizeof(int (*)(void));
  ck_assert_msg(members == 46, "aal_backend has %zu function members, not 46: track the new "
                "ones in kernels/dnnl/track.c, then update this count", members);
  aal_backend d = dnnl(), c;
  aal_error err;
  ck_assert_int_eq(aal_backend_open("cpu32", &c, &err), AAL_OK);
  /* every member that writes a buffer is dnnl's own (tracked or replaced) */
  ck_assert(d.alloc != c.alloc && d.alloc_bits != c.alloc_bits && d.release != c.release);
  ck_assert(d.upload != c.upload && d.upload_bits != c.upload_bits);
  ck_assert(d.bn_forward != c.bn_forward && d.bn_backward != c.bn_backward &&
            d.bn_forward_eval != c.bn_forward_eval && d.relu_forward != c.relu_forward &&
            d.relu_backward != c.relu_backward && d.add != c.add && d.scale != c.scale);
  ck_assert(d.avgpool_forward != c.avgpool_forward && d.avgpool_backward != c.avgpool_backward &&
            d.maxpool_forward != c.maxpool_forward && d.maxpool_backward != c.maxpool_backward);
  ck_assert(d.linear_forward != c.linear_forward && d.linear_backward != c.linear_backward &&
            d.xent_forward != c.xent_forward && d.xent_backward != c.xent_backward);
  ck_assert(d.sign_pack != c.sign_pack && d.sign_unpack != c.sign_unpack &&
            d.asa_input != c.asa_input && d.bn_relu_forward != c.bn_relu_forward &&
            d.bn_relu_backward != c.bn_relu_backward && d.li_reduce != c.li_reduce &&
            d.sgd_update != c.sgd_update);
  ck_assert(d.layernorm_forward != c.layernorm_forward &&
            d.layernorm_backward != c.layernorm_backward && d.gelu_forward != c.gelu_forward &&
            d.gelu_backward != c.gelu_backward && d.softmax_forward != c.softmax_forward &&
            d.softmax_backward != c.softmax_backward &&
            d.attention_forward != c.attention_forward &&
            d.attention_backward != c.attention_backward && d.embed_forward != c.embed_forward &&
            d.embed_backward != c.embed_backward && d.patchify_forward != c.patchify_forward &&
            d.patchify_backward != c.patchify_backward && d.transpose != c.transpose);
  c.destroy(&c);
  d.destroy(&d);
}
END_TEST

/* ------------------------------------------------------------------ e. errors */

START_TEST(test_dnnl_errors)
{
  aal_backend be = dnnl();
  aal_error err;
  float buf[64] = {0};
  aal_conv_shape cs = {.n = 1, .c = 1, .h = 4, .w = 4, .k = 1, .r = 3, .s = 3, .stride = 1,
                       .pad = 0};
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_OK);
  ck_assert_int_eq(be.conv_forward(&be, &cs, NULL, buf, buf, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "dnnl conv_forward"));
  ck_assert_int_eq(be.conv_backward_filter(&be, &cs, buf, buf, NULL, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "dnnl conv_backward_filter"));
  cs.p = 3; /* not what aal_conv_shape_init says */
  ck_assert_int_eq(be.conv_backward_data(&be, &cs, buf, buf, buf, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "dnnl conv_backward_data"));
  char name[8];
  ck_assert_int_eq(aal_backend_dnnl_conv_impl(&be, &cs, 3, name, sizeof name, &err),
                   AAL_EINVAL);
  /* the counters and the convs refuse another backend's table */
  aal_backend cpu;
  ck_assert_int_eq(aal_backend_open("cpu32", &cpu, &err), AAL_OK);
  aal_dnnl_stats s;
  ck_assert_int_eq(aal_backend_dnnl_stats(&cpu, &s, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "not a dnnl backend"));
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_OK);
  ck_assert_int_eq(be.conv_forward(&cpu, &cs, buf, buf, buf + 32, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "not a dnnl backend"));
  cpu.destroy(&cpu);
  /* through the model's table: opened by name */
  aal_ops_handle h;
  ck_assert_int_eq(aal_ops_open("dnnl", &h, &err), AAL_OK);
  ck_assert_str_eq(h.table->name, "dnnl");
  aal_ops_close(&h);
  be.destroy(&be);
}
END_TEST

#endif /* AAL_HAVE_DNNL */

int main(void)
{
#ifndef AAL_HAVE_DNNL
  aal_backend be;
  aal_error err;
  if (aal_backend_open("dnnl", &be, &err) != AAL_EINVAL || strstr(err.msg, "libdnnl-dev") == NULL) {
    fprintf(stderr, "built without oneDNN, but backend dnnl did not fail naming libdnnl-dev\n");
    return EXIT_FAILURE;
  }
  printf("built without oneDNN (%s): skipped\n", err.msg);
  return SKIP;
#else
  g_seed = aal_test_seed();
  Suite *s = suite_create("dnnl");
  TCase *tc = tcase_create("dnnl");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_dnnl_errors);
  tcase_add_test(tc, test_dnnl_resnet18);
  tcase_add_test(tc, test_dnnl_random);
  tcase_add_test(tc, test_dnnl_boundary);
  tcase_add_test(tc, test_dnnl_one_thread);
  tcase_add_test(tc, test_dnnl_no_winograd);
  tcase_add_test(tc, test_dnnl_step_within_tolerance);
  tcase_add_test(tc, test_dnnl_steady_state_creates_nothing);
  tcase_add_test(tc, test_dnnl_cache_eviction_and_repeatability);
  tcase_add_test(tc, test_dnnl_threads_key);
  tcase_add_test(tc, test_dnnl_loops_equal_cpu32);
  tcase_add_test(tc, test_dnnl_reuse_is_exact);
  tcase_add_test(tc, test_dnnl_table_members_tracked);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
#endif
}
