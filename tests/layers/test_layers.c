/* Tests of the non-conv reference layers (sim/layers/layers.h): batchnorm2d, relu, add,
 * global average pool, linear, softmax cross-entropy.
 *
 *  a. full-Jacobian finite differences on tiny shapes, for every backward;
 *  b. random directional derivatives on ResNet-18-like shapes;
 *  c. closed forms (stated tolerances, in multiples of DBL_EPSILON);
 *  d. bad input: the right code, a message, no crash.
 *
 * Inputs come from a GSL mt19937 stream seeded from fd_test_seed() (printed); each test
 * adds its own salt so tests are independent of order.  Outputs are poisoned with NaN
 * (masks with all-ones words) before every call so that an unwritten element fails. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "tests/tensors.h"
#include "sim/layers/layers.h"
#include "tests/fdcheck.h"
#include "tests/layer_fd.h"

#define U DBL_EPSILON

static unsigned long g_seed;

/* ------------------------------------------------------------------ helpers */

static aal_tensor *t2(long r, long c)
{
  aal_error err;
  aal_tensor *t = aal_tensor_new2(r, c, &err);
  ck_assert_msg(t != NULL, "aal_tensor_new2: %s", err.msg);
  return t;
}

static aal_tensor *t1(long n)
{
  aal_error err;
  aal_tensor *t = aal_tensor_new1(n, &err);
  ck_assert_msg(t != NULL, "aal_tensor_new1: %s", err.msg);
  return t;
}

static aal_tensor *bits_like(const aal_tensor *x)
{
  long shape[AAL_MAX_NDIM];
  for (int d = 0; d < x->ndim; d++)
    shape[d] = (long)x->shape[d];
  aal_error err;
  aal_tensor *t = aal_tensor_new_bits(x->ndim, shape, &err);
  ck_assert_msg(t != NULL, "aal_tensor_new_bits: %s", err.msg);
  return t;
}

static void poison(aal_tensor *t)
{
  if (t == NULL)
    return;
  if (t->dtype == AAL_F64)
    aal_tensor_fill(t, NAN);
  else
    memset(t->bits, 0xff, aal_bit_words(t->size) * sizeof *t->bits);
}

static void uniform(gsl_rng *r, double *x, size_t n, double lo, double hi)
{
  fd_fill_uniform(r, x, n, lo, hi);
}

static void fill(gsl_rng *r, aal_tensor *t, double lo, double hi)
{
  uniform(r, t->data, t->size, lo, hi);
}

/* Rounds x to a multiple of 2^-bits.  Variables of FD problems are made dyadic (2^-30,
 * make_dyadic) and steps are powers of 2, so that v + t (and v + t d for a dyadic d) is
 * exact for the steps t = +-h, +-h/2 that gsl_deriv_central takes: otherwise the
 * rounding of the perturbed variable, relative size DBL_EPSILON |v| / h, is an error
 * that GSL's estimate does not count (fdcheck differentiates in t at t = 0, where GSL's
 * "x + h" term vanishes), and exactly linear layers fail at the 1e-13 level. */
static void round_to_bits(double *x, size_t n, int bits)
{
  for (size_t i = 0; i < n; i++)
    x[i] = ldexp(nearbyint(ldexp(x[i], bits)), -bits);
}

static void make_dyadic(double *x, size_t n)
{
  round_to_bits(x, n, 30);
}

/* Uniform in [lo, hi), then dyadic: for FD variables and directions. */
static void fill_fd(gsl_rng *r, aal_tensor *t, double lo, double hi)
{
  uniform(r, t->data, t->size, lo, hi);
  make_dyadic(t->data, t->size);
}

/* |x| uniform in [lo, hi) with a random sign: keeps x away from 0 (relu's kink). */
static void fill_signed(gsl_rng *r, double *x, size_t n, double lo, double hi)
{
  uniform(r, x, n, lo, hi);
  for (size_t i = 0; i < n; i++)
    if (gsl_rng_uniform(r) < 0.5)
      x[i] = -x[i];
}

static void release_all(aal_tensor **ts, size_t n)
{
  for (size_t i = 0; i < n; i++)
    aal_tensor_release(ts[i]);
}

/* Full Jacobian by rows (tests/layer_fd.h). */
static void check_jacobian(const layer_fd *L, double step, const char *what)
{
  layer_fd_check_jacobian(L, step, what, g_seed);
}

/* One random direction d (and output weights c), both uniform in [-1, 1), d dyadic
 * (tests/layer_fd.h says what is compared). */
static void check_direction(const layer_fd *L, gsl_rng *r, double step, const char *what)
{
  double *c = aal_test_xmalloc(L->ny * sizeof(double));
  double *d = aal_test_xmalloc(L->nvar * sizeof(double));
  uniform(r, c, L->ny, -1.0, 1.0);
  uniform(r, d, L->nvar, -1.0, 1.0);
  make_dyadic(d, L->nvar);
  layer_fd_check_direction(L, c, d, step, what, g_seed);
  free(c);
  free(d);
}

/* ------------------------------------------------------------------ FD problems */

/* bn2d training forward as a function of v = [x, gamma, beta] -> y. */
typedef struct {
  aal_tensor *x, *g, *b, *rm, *rv, *y, *mean, *invstd, *dy, *dx, *dg, *db;
  var_split split;
  double *v;
} bn_ctx;

static int bn_run(bn_ctx *k, const double *v)
{
  aal_error err;
  split_load(&k->split, v);
  poison(k->y);
  poison(k->mean);
  poison(k->invstd);
  const int rc = aal_bn2d_forward_train(k->x, k->g, k->b, k->rm, k->rv, AAL_BN_MOMENTUM,
                                        AAL_BN_EPS, k->y, k->mean, k->invstd, &err);
  if (rc != AAL_OK)
    fprintf(stderr, "bn2d forward failed: %s\n", err.msg);
  return rc;
}

static void bn_forward(void *ctx, double *out)
{
  bn_ctx *k = ctx;
  copy_or_nan(bn_run(k, k->v), k->y, out);
}

static void bn_vjp(void *ctx, const double *c, double *g)
{
  bn_ctx *k = ctx;
  aal_error err;
  ck_assert_int_eq(bn_run(k, k->v), AAL_OK);
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  poison(k->dg);
  poison(k->db);
  const int rc = aal_bn2d_backward(k->dy, k->x, k->g, k->mean, k->invstd, k->dx, k->dg, k->db,
                                   &err);
  ck_assert_msg(rc == AAL_OK, "bn2d backward: %s", err.msg);
  const var_split grads = {{k->dx, k->dg, k->db}, 3};
  split_store(&grads, g);
}

/* exact_stats = 0: x in [-1, 2), gamma in [0.5, 1.5), beta in [-1, 1), dyadic (2^-30).
 *
 * exact_stats = 1, for the full Jacobian: fdcheck's pass test trusts GSL's rounding
 * estimate, which charges each evaluation of y_i about DBL_EPSILON |y_i|.  A bn output
 * really carries the rounding of the batch mean and variance (tens of ulps through a
 * 1/sqrt) and, where beta and gamma*xhat nearly cancel, errors relative to the terms
 * rather than to y_i; random seeds then failed in ~10% of runs with errors ~1e-11
 * (far inside FD_REL_TOL, but above 10x GSL's estimate).  So this problem is built
 * to make the statistics exact and the outputs free of cancellation:
 *   - M = N*H*W must be a power of 2 (the caller's shape) and x multiples of 2^-18 in
 *     [-1, 1): then sum x, mean = sum/M, d = x - mean, d^2 (<= 46 bits) and sum d^2 are
 *     all exact, for the perturbed x + t too (t = +-2^-10, +-2^-11);
 *   - beta in [4, 5) and gamma in [0.5, 1): |gamma xhat| <= sqrt(M - 1) < 4 can never
 *     cancel beta, and y_i >= 4 - |gamma xhat|.  beta does not enter the Jacobian (dy/dbeta
 *     is the identity and nothing else depends on it), so this loses no coverage.
 * What remains is the rounding of v + eps, sqrt, 1/, gamma*invstd, the product and + beta:
 * a few ulps of y, which is what GSL's estimate assumes. */
static void bn_setup(bn_ctx *k, gsl_rng *r, long n, long c, long h, long w, int exact_stats,
                     layer_fd *L)
{
  memset(k, 0, sizeof *k);
  k->x = aal_test_tensor4(n, c, h, w);
  k->y = aal_test_tensor4(n, c, h, w);
  k->dy = aal_test_tensor4(n, c, h, w);
  k->dx = aal_test_tensor4(n, c, h, w);
  k->g = t1(c);
  k->b = t1(c);
  k->rm = t1(c);
  k->rv = t1(c);
  k->mean = t1(c);
  k->invstd = t1(c);
  k->dg = t1(c);
  k->db = t1(c);
  if (exact_stats) {
    const long m_count = n * h * w;
    ck_assert_msg(m_count > 1 && (m_count & (m_count - 1)) == 0, "M = %ld", m_count);
    fill(r, k->x, -1.0, 1.0);
    round_to_bits(k->x->data, k->x->size, 18);
    fill_fd(r, k->g, 0.5, 1.0);
    fill_fd(r, k->b, 4.0, 5.0);
  } else {
    fill_fd(r, k->x, -1.0, 2.0);
    fill_fd(r, k->g, 0.5, 1.5);
    fill_fd(r, k->b, -1.0, 1.0);
  }
  aal_tensor_fill(k->rv, 1.0);
  k->split = (var_split){{k->x, k->g, k->b}, 3};
  const size_t nvar = split_size(&k->split);
  k->v = aal_test_xmalloc(nvar * sizeof(double));
  split_store(&k->split, k->v);
  *L = (layer_fd){k->v, nvar, k->y->size, bn_forward, bn_vjp, k};
}

static void bn_teardown(bn_ctx *k)
{
  aal_tensor *all[] = {k->x, k->g, k->b, k->rm, k->rv, k->y, k->mean, k->invstd,
                       k->dy, k->dx, k->dg, k->db};
  release_all(all, sizeof all / sizeof all[0]);
  free(k->v);
}

/* relu: v = x -> y. */
typedef struct {
  aal_tensor *x, *y, *mask, *dy, *dx;
} relu_ctx;

static void relu_forward(void *ctx, double *out)
{
  relu_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  poison(k->mask);
  copy_or_nan(aal_relu_forward(k->x, k->y, k->mask, &err), k->y, out);
}

static void relu_vjp(void *ctx, const double *c, double *g)
{
  relu_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  poison(k->mask);
  ck_assert_int_eq(aal_relu_forward(k->x, k->y, k->mask, &err), AAL_OK);
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  ck_assert_msg(aal_relu_backward(k->dy, k->mask, k->dx, &err) == AAL_OK, "%s", err.msg);
  memcpy(g, k->dx->data, k->dx->size * sizeof(double));
}

/* add: v = [a, b] -> y. */
typedef struct {
  aal_tensor *a, *b, *y, *dy, *da, *db;
  var_split split;
  double *v;
} add_ctx;

static void add_forward(void *ctx, double *out)
{
  add_ctx *k = ctx;
  aal_error err;
  split_load(&k->split, k->v);
  poison(k->y);
  copy_or_nan(aal_add_forward(k->a, k->b, k->y, &err), k->y, out);
}

static void add_vjp(void *ctx, const double *c, double *g)
{
  add_ctx *k = ctx;
  aal_error err;
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->da);
  poison(k->db);
  ck_assert_msg(aal_add_backward(k->dy, k->da, k->db, &err) == AAL_OK, "%s", err.msg);
  const var_split grads = {{k->da, k->db}, 2};
  split_store(&grads, g);
}

/* avgpool: v = x -> y. */
typedef struct {
  aal_tensor *x, *y, *dy, *dx;
} pool_ctx;

static void pool_forward(void *ctx, double *out)
{
  pool_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  copy_or_nan(aal_avgpool_forward(k->x, k->y, &err), k->y, out);
}

static void pool_vjp(void *ctx, const double *c, double *g)
{
  pool_ctx *k = ctx;
  aal_error err;
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  ck_assert_msg(aal_avgpool_backward(k->dy, k->dx, &err) == AAL_OK, "%s", err.msg);
  memcpy(g, k->dx->data, k->dx->size * sizeof(double));
}

static void pool_setup(pool_ctx *k, gsl_rng *r, long n, long c, long h, long w, layer_fd *L)
{
  k->x = aal_test_tensor4(n, c, h, w);
  k->dx = aal_test_tensor4(n, c, h, w);
  k->y = t2(n, c);
  k->dy = t2(n, c);
  fill_fd(r, k->x, -1.0, 1.0);
  *L = (layer_fd){k->x->data, k->x->size, k->y->size, pool_forward, pool_vjp, k};
}

static void pool_teardown(pool_ctx *k)
{
  aal_tensor *all[] = {k->x, k->y, k->dy, k->dx};
  release_all(all, 4);
}

/* linear: v = [x, w, b] -> y. */
typedef struct {
  aal_tensor *x, *w, *b, *y, *dy, *dx, *dw, *db;
  var_split split;
  double *v;
} lin_ctx;

static void lin_forward(void *ctx, double *out)
{
  lin_ctx *k = ctx;
  aal_error err;
  split_load(&k->split, k->v);
  poison(k->y);
  copy_or_nan(aal_linear_forward(k->x, k->w, k->b, k->y, &err), k->y, out);
}

static void lin_vjp(void *ctx, const double *c, double *g)
{
  lin_ctx *k = ctx;
  aal_error err;
  split_load(&k->split, k->v);
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  poison(k->dw);
  poison(k->db);
  ck_assert_msg(aal_linear_backward(k->dy, k->x, k->w, k->dx, k->dw, k->db, &err) == AAL_OK,
                "%s", err.msg);
  const var_split grads = {{k->dx, k->dw, k->db}, 3};
  split_store(&grads, g);
}

static void lin_setup(lin_ctx *k, gsl_rng *r, long n, long in, long out, layer_fd *L)
{
  k->x = t2(n, in);
  k->dx = t2(n, in);
  k->w = t2(out, in);
  k->dw = t2(out, in);
  k->b = t1(out);
  k->db = t1(out);
  k->y = t2(n, out);
  k->dy = t2(n, out);
  fill_fd(r, k->x, -1.0, 1.0);
  fill_fd(r, k->w, -1.0, 1.0);
  fill_fd(r, k->b, -1.0, 1.0);
  k->split = (var_split){{k->x, k->w, k->b}, 3};
  const size_t nvar = split_size(&k->split);
  k->v = aal_test_xmalloc(nvar * sizeof(double));
  split_store(&k->split, k->v);
  *L = (layer_fd){k->v, nvar, k->y->size, lin_forward, lin_vjp, k};
}

static void lin_teardown(lin_ctx *k)
{
  aal_tensor *all[] = {k->x, k->w, k->b, k->y, k->dy, k->dx, k->dw, k->db};
  release_all(all, 8);
  free(k->v);
}

/* xent: v = logits -> loss (ny = 1). */
typedef struct {
  aal_tensor *z, *prob, *dz;
  int *labels;
} xent_ctx;

static void xent_forward(void *ctx, double *out)
{
  xent_ctx *k = ctx;
  aal_error err;
  double loss = NAN;
  poison(k->prob);
  const int rc = aal_xent_forward(k->z, k->labels, &loss, k->prob, &err);
  out[0] = rc == AAL_OK ? loss : NAN;
}

static void xent_vjp(void *ctx, const double *c, double *g)
{
  xent_ctx *k = ctx;
  aal_error err;
  double loss;
  poison(k->prob);
  ck_assert_int_eq(aal_xent_forward(k->z, k->labels, &loss, k->prob, &err), AAL_OK);
  poison(k->dz);
  ck_assert_msg(aal_xent_backward(k->prob, k->labels, k->dz, &err) == AAL_OK, "%s", err.msg);
  for (size_t j = 0; j < k->dz->size; j++)
    g[j] = c[0] * k->dz->data[j];
}

static void xent_setup(xent_ctx *k, gsl_rng *r, long n, long c, double spread, layer_fd *L)
{
  k->z = t2(n, c);
  k->prob = t2(n, c);
  k->dz = t2(n, c);
  fill_fd(r, k->z, -spread, spread);
  k->labels = aal_test_xmalloc((size_t)n * sizeof(int));
  for (long i = 0; i < n; i++)
    k->labels[i] = (int)gsl_rng_uniform_int(r, (unsigned long)c);
  *L = (layer_fd){k->z->data, k->z->size, 1, xent_forward, xent_vjp, k};
}

static void xent_teardown(xent_ctx *k)
{
  aal_tensor *all[] = {k->z, k->prob, k->dz};
  release_all(all, 3);
  free(k->labels);
}

/* ------------------------------------------------------------------ a. full Jacobians */

/* Step 2^-10 ~ 1e-3 (GSL only shrinks it; a power of 2, see make_dyadic): the layers are
 * smooth (bn, xent), linear, or (relu) piecewise linear with every input at least 0.05
 * from the kink. */
#define FD_STEP 0x1p-10
#ifndef BN_FD_STEP
#define BN_FD_STEP FD_STEP
#endif

START_TEST(jac_bn2d_train)
{
  gsl_rng *r = aal_test_rng(g_seed + 101);
  bn_ctx k;
  layer_fd L;
  /* M = N*H*W = 16 per channel (a power of 2, see bn_setup); y_i depends on every x of
   * its channel through the batch statistics. */
  bn_setup(&k, r, 4, 2, 2, 2, 1, &L);
  check_jacobian(&L, BN_FD_STEP, "bn2d train jacobian (x, gamma, beta)");
  bn_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

START_TEST(jac_relu)
{
  gsl_rng *r = aal_test_rng(g_seed + 102);
  relu_ctx k = {aal_test_tensor4(2, 3, 2, 2), aal_test_tensor4(2, 3, 2, 2), NULL, aal_test_tensor4(2, 3, 2, 2), aal_test_tensor4(2, 3, 2, 2)};
  k.mask = bits_like(k.x);
  fill_signed(r, k.x->data, k.x->size, 0.05, 1.0);
  make_dyadic(k.x->data, k.x->size);
  const layer_fd L = {k.x->data, k.x->size, k.y->size, relu_forward, relu_vjp, &k};
  check_jacobian(&L, FD_STEP, "relu jacobian");
  aal_tensor *all[] = {k.x, k.y, k.mask, k.dy, k.dx};
  release_all(all, 5);
  gsl_rng_free(r);
}
END_TEST

START_TEST(jac_add)
{
  gsl_rng *r = aal_test_rng(g_seed + 103);
  add_ctx k = {aal_test_tensor4(2, 3, 2, 2), aal_test_tensor4(2, 3, 2, 2), aal_test_tensor4(2, 3, 2, 2),
               aal_test_tensor4(2, 3, 2, 2), aal_test_tensor4(2, 3, 2, 2), aal_test_tensor4(2, 3, 2, 2), {{NULL}, 0}, NULL};
  fill_fd(r, k.a, -1.0, 1.0);
  fill_fd(r, k.b, -1.0, 1.0);
  k.split = (var_split){{k.a, k.b}, 2};
  k.v = aal_test_xmalloc(split_size(&k.split) * sizeof(double));
  split_store(&k.split, k.v);
  const layer_fd L = {k.v, split_size(&k.split), k.y->size, add_forward, add_vjp, &k};
  check_jacobian(&L, FD_STEP, "add jacobian (a, b)");
  aal_tensor *all[] = {k.a, k.b, k.y, k.dy, k.da, k.db};
  release_all(all, 6);
  free(k.v);
  gsl_rng_free(r);
}
END_TEST

START_TEST(jac_avgpool)
{
  gsl_rng *r = aal_test_rng(g_seed + 104);
  pool_ctx k;
  layer_fd L;
  pool_setup(&k, r, 2, 3, 2, 3, &L);
  check_jacobian(&L, FD_STEP, "avgpool jacobian");
  pool_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

START_TEST(jac_linear)
{
  gsl_rng *r = aal_test_rng(g_seed + 105);
  lin_ctx k;
  layer_fd L;
  lin_setup(&k, r, 3, 4, 5, &L);
  check_jacobian(&L, FD_STEP, "linear jacobian (x, w, b)");
  lin_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

START_TEST(jac_xent)
{
  gsl_rng *r = aal_test_rng(g_seed + 106);
  xent_ctx k;
  layer_fd L;
  xent_setup(&k, r, 3, 5, 3.0, &L);
  check_jacobian(&L, FD_STEP, "xent jacobian (logits)");
  xent_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ b. directions */

START_TEST(dir_bn2d_train)
{
  gsl_rng *r = aal_test_rng(g_seed + 201);
  bn_ctx k;
  layer_fd L;
  bn_setup(&k, r, 4, 64, 8, 8, 0, &L);
  check_direction(&L, r, BN_FD_STEP, "bn2d train direction 4x64x8x8");
  bn_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

START_TEST(dir_linear)
{
  gsl_rng *r = aal_test_rng(g_seed + 202);
  lin_ctx k;
  layer_fd L;
  lin_setup(&k, r, 4, 512, 200, &L);
  check_direction(&L, r, FD_STEP, "linear direction 4x512 -> 200");
  lin_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

START_TEST(dir_xent)
{
  gsl_rng *r = aal_test_rng(g_seed + 203);
  xent_ctx k;
  layer_fd L;
  xent_setup(&k, r, 4, 200, 5.0, &L);
  check_direction(&L, r, FD_STEP, "xent direction 4x200");
  xent_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

START_TEST(dir_avgpool)
{
  gsl_rng *r = aal_test_rng(g_seed + 204);
  pool_ctx k;
  layer_fd L;
  pool_setup(&k, r, 4, 512, 2, 2, &L);
  check_direction(&L, r, FD_STEP, "avgpool direction 4x512x2x2");
  pool_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ c. closed forms */

/* Compares a computed value with a reference under an absolute tolerance; NaN fails.
 * Tracks the worst ratio err/tol for the log. */
typedef struct {
  const char *what;
  size_t count;
  double worst;
  size_t worst_i;
  double worst_val, worst_ref;
} close_log;

static void expect_close(close_log *lg, size_t i, double val, double ref, double tol)
{
  const double e = fabs(val - ref);
  const double ratio = tol > 0 ? e / tol : (e == 0 ? 0 : INFINITY);
  if (lg->count++ == 0 || !(ratio <= lg->worst)) {
    lg->worst = ratio;
    lg->worst_i = i;
    lg->worst_val = val;
    lg->worst_ref = ref;
  }
  ck_assert_msg(e <= tol, "%s[%zu]: %.17g vs reference %.17g, error %.3g > tolerance %.3g",
                lg->what, i, val, ref, e, tol);
}

static void report_close(const close_log *lg)
{
  fprintf(stderr,
          "%s: %zu checked, worst error/tolerance %.3g at %zu (value %.17g, reference "
          "%.17g)\n",
          lg->what, lg->count, lg->worst, lg->worst_i, lg->worst_val, lg->worst_ref);
}

/* Softmax cross-entropy of equal logits is log(C) whatever their value (1000 would
 * overflow exp without the max subtracted).  Tolerances:
 *   loss: (N + 1) ulps of log(C): log is within 1 ulp, the mean of N equal terms adds at
 *         most N - 1 roundings, the division one more;
 *   dlogits: 2 ulps of the reference (1/C - onehot)/N computed in the test: prob = 1/C
 *         is one division, prob - onehot and /N one rounding each. */
START_TEST(xent_uniform_logits)
{
  const double values[] = {0.0, -3.25, 1000.0, -1000.0, 1e15};
  const long n = 4, c = 200;
  aal_tensor *z = t2(n, c), *prob = t2(n, c), *dz = t2(n, c);
  const int labels[] = {0, 199, 7, 100};
  aal_error err;
  close_log ll = {"xent uniform loss", 0, 0, 0, 0, 0};
  close_log lg = {"xent uniform dlogits", 0, 0, 0, 0, 0};
  for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
    aal_tensor_fill(z, values[v]);
    double loss = NAN;
    poison(prob);
    ck_assert_msg(aal_xent_forward(z, labels, &loss, prob, &err) == AAL_OK, "%s", err.msg);
    const double ref = log((double)c);
    expect_close(&ll, v, loss, ref, (double)(n + 1) * U * ref);
    poison(dz);
    ck_assert_msg(aal_xent_backward(prob, labels, dz, &err) == AAL_OK, "%s", err.msg);
    for (long i = 0; i < n; i++)
      for (long k = 0; k < c; k++) {
        const double g = (1.0 / (double)c - (labels[i] == k ? 1.0 : 0.0)) / (double)n;
        expect_close(&lg, (size_t)(i * c + k), dz->data[i * c + k], g, 2.0 * U * fabs(g));
      }
  }
  report_close(&ll);
  report_close(&lg);
  aal_tensor *all[] = {z, prob, dz};
  release_all(all, 3);
}
END_TEST

/* Logits 1e4 apart: exp of the raw values overflows, the stable form is exact.
 *   row 0: {0, 1e4, 2e4}, label 0  -> loss 2e4, prob {0, 0, 1}
 *   row 1: {-1e4, 0, 1e4}, label 2 -> loss 0 (log(1 + e^-1e4 + e^-2e4) = 0 in double)
 *   row 2: {1e4, 1e4, -1e4}, label 1 -> loss log 2, prob {1/2, 1/2, 0}
 * Mean loss (2e4 + log 2)/3 to 4 ulps; probabilities and gradients exact. */
START_TEST(xent_huge_logits)
{
  const double zv[] = {0, 1e4, 2e4, -1e4, 0, 1e4, 1e4, 1e4, -1e4};
  const int labels[] = {0, 2, 1};
  const double pref[] = {0, 0, 1, 0, 0, 1, 0.5, 0.5, 0};
  aal_tensor *z = t2(3, 3), *prob = t2(3, 3), *dz = t2(3, 3);
  memcpy(z->data, zv, sizeof zv);
  aal_error err;
  double loss = NAN;
  poison(prob);
  ck_assert_msg(aal_xent_forward(z, labels, &loss, prob, &err) == AAL_OK, "%s", err.msg);
  ck_assert_msg(isfinite(loss), "loss %g", loss);
  const double ref = (2e4 + log(2.0)) / 3.0;
  ck_assert_msg(fabs(loss - ref) <= 4 * U * ref, "loss %.17g vs %.17g", loss, ref);
  poison(dz);
  ck_assert_msg(aal_xent_backward(prob, labels, dz, &err) == AAL_OK, "%s", err.msg);
  for (int i = 0; i < 9; i++) {
    ck_assert_msg(prob->data[i] == pref[i], "prob[%d] = %.17g, expected %g", i, prob->data[i],
                  pref[i]);
    const double g = (pref[i] - (labels[i / 3] == i % 3 ? 1.0 : 0.0)) / 3.0;
    ck_assert_msg(dz->data[i] == g, "dlogits[%d] = %.17g, expected %.17g", i, dz->data[i], g);
  }
  aal_tensor *all[] = {z, prob, dz};
  release_all(all, 3);
}
END_TEST

/* Mean and biased variance of channel c, computed in long double with two passes,
 * independently of the library. */
static void ref_channel_stats(const aal_tensor *x, size_t c, long double *mean,
                              long double *var)
{
  const size_t hw = x->shape[2] * x->shape[3];
  const long double m = (long double)(x->shape[0] * hw);
  long double s = 0;
  for (size_t n = 0; n < x->shape[0]; n++)
    for (size_t k = 0; k < hw; k++)
      s += x->data[aal_idx4(x, n, c, 0, 0) + k];
  const long double mu = s / m;
  long double s2 = 0;
  for (size_t n = 0; n < x->shape[0]; n++)
    for (size_t k = 0; k < hw; k++) {
      const long double d = x->data[aal_idx4(x, n, c, 0, 0) + k] - mu;
      s2 += d * d;
    }
  *mean = mu;
  *var = s2 / m;
}

/* BN training with gamma = 1, beta = 0 on x with channel offsets 1, 10, 1000 (the last
 * defeats E[x^2] - E[x]^2).  Closed forms, per channel c with batch mean mu_c and
 * biased variance v_c (from ref_channel_stats):
 *   mean(y_c) = 0,  biased var(y_c) = v_c / (v_c + eps)   (not 1: eps is 0.01 here),
 *   mean output = mu_c,  invstd output = 1/sqrt(v_c + eps),
 *   running_mean = (1-m) rm0 + m mu_c,  running_var = (1-m) rv0 + m v_c M/(M-1).
 * Tolerance factor F = 2 (M + 8) DBL_EPSILON with M = N*H*W = 256: a sum of M terms in
 * double has error at most about M u times the sum of |terms| (Higham's bound), the
 * library and this test each make such sums, and 8 covers the few roundings around them.
 *   mean(y): F * (|mu_c| + max|x - mu_c|) * invstd   (y's absolute scale via x's)
 *   var(y), invstd, running_var: F relative;  mean, running_mean: F * max|x_c| scale. */
START_TEST(bn2d_train_closed_form)
{
  gsl_rng *r = aal_test_rng(g_seed + 301);
  const long n = 4, c = 3, h = 8, w = 8;
  const double eps = 0.01, offset[] = {1.0, 10.0, 1000.0};
  const double moms[] = {AAL_BN_MOMENTUM, 0.3};
  aal_tensor *x = aal_test_tensor4(n, c, h, w), *y = aal_test_tensor4(n, c, h, w);
  aal_tensor *g = t1(c), *b = t1(c), *rm = t1(c), *rv = t1(c), *mean = t1(c), *inv = t1(c);
  fill(r, x, -1.0, 1.0);
  for (long i = 0; i < n; i++)
    for (long ch = 0; ch < c; ch++)
      for (long k = 0; k < h * w; k++)
        x->data[aal_idx4(x, (size_t)i, (size_t)ch, 0, 0) + (size_t)k] += offset[ch];
  aal_tensor_fill(g, 1.0);
  aal_tensor_fill(b, 0.0);
  const double m_count = (double)(n * h * w), F = 2.0 * (m_count + 8.0) * U;
  close_log lm = {"bn2d train mean(y)", 0, 0, 0, 0, 0};
  close_log lv = {"bn2d train var(y) = v/(v+eps)", 0, 0, 0, 0, 0};
  close_log ls = {"bn2d train saved mean, invstd", 0, 0, 0, 0, 0};
  close_log lr = {"bn2d running stats", 0, 0, 0, 0, 0};
  for (size_t t = 0; t < 2; t++) {
    const double mom = moms[t];
    fill(r, rm, -1.0, 1.0);
    fill(r, rv, 0.5, 2.0);
    double rm0[3], rv0[3];
    memcpy(rm0, rm->data, sizeof rm0);
    memcpy(rv0, rv->data, sizeof rv0);
    aal_error err;
    poison(y);
    poison(mean);
    poison(inv);
    ck_assert_msg(aal_bn2d_forward_train(x, g, b, rm, rv, mom, eps, y, mean, inv, &err) ==
                      AAL_OK, "%s", err.msg);
    for (long ch = 0; ch < c; ch++) {
      long double mu, v;
      ref_channel_stats(x, (size_t)ch, &mu, &v);
      long double my, vy;
      ref_channel_stats(y, (size_t)ch, &my, &vy);
      double maxdev = 0, maxabs = 0;
      for (long i = 0; i < n; i++)
        for (long k = 0; k < h * w; k++) {
          const double xv = x->data[aal_idx4(x, (size_t)i, (size_t)ch, 0, 0) + (size_t)k];
          maxdev = fmax(maxdev, fabs(xv - (double)mu));
          maxabs = fmax(maxabs, fabs(xv));
        }
      const double invref = (double)(1.0L / sqrtl(v + eps));
      const double vyref = (double)(v / (v + eps));
      const size_t id = t * 3 + (size_t)ch;
      expect_close(&lm, id, (double)my, 0.0, F * (fabs((double)mu) + maxdev) * invref);
      expect_close(&lv, id, (double)vy, vyref, F * vyref);
      expect_close(&ls, id, mean->data[ch], (double)mu, F * maxabs);
      expect_close(&ls, id, inv->data[ch], invref, F * invref);
      const long double rmref = (1.0L - mom) * rm0[ch] + mom * mu;
      const long double rvref = (1.0L - mom) * rv0[ch] + mom * v * m_count / (m_count - 1.0L);
      expect_close(&lr, id, rm->data[ch], (double)rmref,
                   F * ((1.0 - mom) * fabs(rm0[ch]) + mom * maxabs));
      expect_close(&lr, id, rv->data[ch], (double)rvref, F * (double)rvref);
      /* eps must show: var(y) differs from 1 by far more than the tolerance. */
      ck_assert(fabs((double)vy - 1.0) > 100 * F);
    }
  }
  report_close(&lm);
  report_close(&lv);
  report_close(&ls);
  report_close(&lr);
  aal_tensor *all[] = {x, y, g, b, rm, rv, mean, inv};
  release_all(all, 8);
  gsl_rng_free(r);
}
END_TEST

/* Eval mode: y = (x - rm)/sqrt(rv + eps)*g + b elementwise.  Either side makes about 6
 * roundings, so the tolerance is 16 DBL_EPSILON (|x - rm| |g| / sqrt(rv + eps) + |b|).
 * N*H*W = 1 is fine in eval mode (no batch statistics). */
START_TEST(bn2d_eval_closed_form)
{
  gsl_rng *r = aal_test_rng(g_seed + 302);
  const long shapes[2][4] = {{3, 5, 4, 3}, {1, 5, 1, 1}};
  close_log le = {"bn2d eval", 0, 0, 0, 0, 0};
  for (int s = 0; s < 2; s++) {
    const long *sh = shapes[s];
    aal_tensor *x = aal_test_tensor4(sh[0], sh[1], sh[2], sh[3]), *y = aal_test_tensor4(sh[0], sh[1], sh[2], sh[3]);
    aal_tensor *g = t1(sh[1]), *b = t1(sh[1]), *rm = t1(sh[1]), *rv = t1(sh[1]);
    fill(r, x, -2.0, 2.0);
    fill(r, g, -1.5, 1.5);
    fill(r, b, -1.0, 1.0);
    fill(r, rm, -1.0, 1.0);
    fill(r, rv, 0.1, 3.0);
    const double eps = AAL_BN_EPS;
    aal_error err;
    poison(y);
    ck_assert_msg(aal_bn2d_forward_eval(x, g, b, rm, rv, eps, y, &err) == AAL_OK, "%s",
                  err.msg);
    for (size_t i = 0; i < x->size; i++) {
      const size_t ch = (i / (x->shape[2] * x->shape[3])) % x->shape[1];
      const double den = sqrt(rv->data[ch] + eps);
      const double ref = (x->data[i] - rm->data[ch]) / den * g->data[ch] + b->data[ch];
      const double scale =
          fabs(x->data[i] - rm->data[ch]) / den * fabs(g->data[ch]) + fabs(b->data[ch]);
      expect_close(&le, i, y->data[i], ref, 16 * U * scale);
    }
    aal_tensor *all[] = {x, y, g, b, rm, rv};
    release_all(all, 6);
  }
  report_close(&le);
  gsl_rng_free(r);
}
END_TEST

/* Mask bits are exactly (x > 0) (0 and -0 give 0), the packed tensor takes ceil(n/8)
 * bytes, the unused bits of the last word are 0, y = max(x, 0) and dx = dy or 0 exactly. */
START_TEST(relu_mask_closed_form)
{
  gsl_rng *r = aal_test_rng(g_seed + 303);
  aal_tensor *x = aal_test_tensor4(3, 5, 7, 3), *y = aal_test_tensor4(3, 5, 7, 3), *dy = aal_test_tensor4(3, 5, 7, 3),
             *dx = aal_test_tensor4(3, 5, 7, 3);
  aal_tensor *mask = bits_like(x);
  const size_t n = x->size; /* 315: not a multiple of 8 or 32 */
  fill_signed(r, x->data, n, 0.0, 1.0);
  x->data[0] = 0.0;
  x->data[64] = -0.0;
  x->data[n - 1] = 0.0;
  fill(r, dy, -1.0, 1.0);
  aal_error err;
  poison(y);
  poison(mask);
  ck_assert_msg(aal_relu_forward(x, y, mask, &err) == AAL_OK, "%s", err.msg);
  ck_assert_uint_eq(aal_tensor_bytes(mask), (n + 7) / 8);
  for (size_t i = 0; i < n; i++) {
    ck_assert_msg(aal_bit_get(mask->bits, i) == (x->data[i] > 0.0), "mask bit %zu", i);
    const double ref = x->data[i] > 0.0 ? x->data[i] : 0.0;
    ck_assert_msg(y->data[i] == ref, "y[%zu] = %g, expected %g", i, y->data[i], ref);
  }
  for (size_t i = n; i < aal_bit_words(n) * 32; i++)
    ck_assert_msg(aal_bit_get(mask->bits, i) == 0, "padding bit %zu is set", i);
  poison(dx);
  ck_assert_msg(aal_relu_backward(dy, mask, dx, &err) == AAL_OK, "%s", err.msg);
  for (size_t i = 0; i < n; i++) {
    const double ref = x->data[i] > 0.0 ? dy->data[i] : 0.0;
    ck_assert_msg(dx->data[i] == ref, "dx[%zu] = %g, expected %g", i, dx->data[i], ref);
  }
  /* mask may be NULL in forward. */
  poison(y);
  ck_assert_msg(aal_relu_forward(x, y, NULL, &err) == AAL_OK, "%s", err.msg);
  for (size_t i = 0; i < n; i++)
    ck_assert(y->data[i] == (x->data[i] > 0.0 ? x->data[i] : 0.0));
  aal_tensor *all[] = {x, y, dy, dx, mask};
  release_all(all, 5);
  gsl_rng_free(r);
}
END_TEST

/* The average of H*W copies of a constant k: the sum makes at most H*W - 1 roundings
 * of size <= H*W |k| u, then one division, so the tolerance is (H*W + 1) u |k| ... per
 * copy, i.e. (H*W + 1) DBL_EPSILON |k| after the division.  dx = dy/(H*W) exactly. */
START_TEST(avgpool_constant)
{
  const long n = 2, c = 3, h = 5, w = 7, hw = h * w;
  aal_tensor *x = aal_test_tensor4(n, c, h, w), *y = t2(n, c), *dy = t2(n, c), *dx = aal_test_tensor4(n, c, h, w);
  for (long p = 0; p < n * c; p++) {
    const double k = 0.1 * (double)(p + 1) - 0.35;
    for (long q = 0; q < hw; q++)
      x->data[p * hw + q] = k;
    dy->data[p] = 0.3 * (double)p - 1.1;
  }
  aal_error err;
  poison(y);
  ck_assert_msg(aal_avgpool_forward(x, y, &err) == AAL_OK, "%s", err.msg);
  close_log lc = {"avgpool constant", 0, 0, 0, 0, 0};
  for (long p = 0; p < n * c; p++) {
    const double k = x->data[p * hw];
    expect_close(&lc, (size_t)p, y->data[p], k, (double)(hw + 1) * U * fabs(k));
  }
  report_close(&lc);
  poison(dx);
  ck_assert_msg(aal_avgpool_backward(dy, dx, &err) == AAL_OK, "%s", err.msg);
  for (long p = 0; p < n * c; p++)
    for (long q = 0; q < hw; q++)
      ck_assert(dx->data[p * hw + q] == dy->data[p] / (double)hw);
  aal_tensor *all[] = {x, y, dy, dx};
  release_all(all, 4);
}
END_TEST

/* Linear against naive loops, forward and backward.  For a sum of K products, either
 * side's error is at most about K u (sum |terms|) (Higham), so the tolerance is
 * 2 (K + 2) DBL_EPSILON (sum |a||b| + |bias|), K = I for y, O for dx, N for dw and db. */
START_TEST(linear_naive)
{
  gsl_rng *r = aal_test_rng(g_seed + 304);
  lin_ctx k;
  layer_fd L;
  const long n = 5, in = 37, out = 11;
  lin_setup(&k, r, n, in, out, &L);
  fill(r, k.dy, -1.0, 1.0);
  aal_error err;
  poison(k.y);
  ck_assert_msg(aal_linear_forward(k.x, k.w, k.b, k.y, &err) == AAL_OK, "%s", err.msg);
  poison(k.dx);
  poison(k.dw);
  poison(k.db);
  ck_assert_msg(aal_linear_backward(k.dy, k.x, k.w, k.dx, k.dw, k.db, &err) == AAL_OK, "%s",
                err.msg);
  const double *x = k.x->data, *w = k.w->data, *b = k.b->data, *dy = k.dy->data;
  close_log ly = {"linear y", 0, 0, 0, 0, 0}, ldx = {"linear dx", 0, 0, 0, 0, 0};
  close_log ldw = {"linear dw", 0, 0, 0, 0, 0}, ldb = {"linear db", 0, 0, 0, 0, 0};
  for (long i = 0; i < n; i++)
    for (long o = 0; o < out; o++) {
      double s = b[o], a = fabs(b[o]);
      for (long j = 0; j < in; j++) {
        s += x[i * in + j] * w[o * in + j];
        a += fabs(x[i * in + j] * w[o * in + j]);
      }
      expect_close(&ly, (size_t)(i * out + o), k.y->data[i * out + o], s,
                   2.0 * (double)(in + 2) * U * a);
    }
  for (long i = 0; i < n; i++)
    for (long j = 0; j < in; j++) {
      double s = 0, a = 0;
      for (long o = 0; o < out; o++) {
        s += dy[i * out + o] * w[o * in + j];
        a += fabs(dy[i * out + o] * w[o * in + j]);
      }
      expect_close(&ldx, (size_t)(i * in + j), k.dx->data[i * in + j], s,
                   2.0 * (double)(out + 2) * U * a);
    }
  for (long o = 0; o < out; o++) {
    double sb = 0, ab = 0;
    for (long j = 0; j < in; j++) {
      double s = 0, a = 0;
      for (long i = 0; i < n; i++) {
        s += dy[i * out + o] * x[i * in + j];
        a += fabs(dy[i * out + o] * x[i * in + j]);
      }
      expect_close(&ldw, (size_t)(o * in + j), k.dw->data[o * in + j], s,
                   2.0 * (double)(n + 2) * U * a);
    }
    for (long i = 0; i < n; i++) {
      sb += dy[i * out + o];
      ab += fabs(dy[i * out + o]);
    }
    expect_close(&ldb, (size_t)o, k.db->data[o], sb, 2.0 * (double)(n + 2) * U * ab);
  }
  report_close(&ly);
  report_close(&ldx);
  report_close(&ldw);
  report_close(&ldb);
  /* dx may be NULL. */
  poison(k.dw);
  ck_assert_msg(aal_linear_backward(k.dy, k.x, k.w, NULL, k.dw, k.db, &err) == AAL_OK, "%s",
                err.msg);
  for (size_t i = 0; i < k.dw->size; i++)
    ck_assert(isfinite(k.dw->data[i]));
  lin_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ d. bad input */

static void expect_status(int rc, const aal_error *err, int want, const char *expr)
{
  ck_assert_msg(rc == want, "%s returned %d (%s), expected %d (%s); message '%s'", expr, rc,
                aal_status_name(rc), want, aal_status_name(want), err->msg);
  ck_assert_msg(err->code == want, "%s: err.code %d, expected %d", expr, err->code, want);
  ck_assert_msg(err->msg[0] != '\0', "%s: empty message", expr);
  if (getenv("AAL_TEST_VERBOSE") != NULL)
    fprintf(stderr, "  %-10s %s\n", aal_status_name(rc), err->msg);
}

/* `err` must be an aal_error in scope; the call passes &err. */
#define EXPECT(want, call)                                                                    \
  do {                                                                                        \
    aal_error_clear(&err);                                                                    \
    const int rc_ = (call);                                                                   \
    expect_status(rc_, &err, (want), #call);                                                  \
  } while (0)

#define EXPECT_OK(call)                                                                       \
  do {                                                                                        \
    aal_error_clear(&err);                                                                    \
    const int rc_ = (call);                                                                   \
    ck_assert_msg(rc_ == AAL_OK, "%s failed: %s", #call, err.msg);                            \
  } while (0)

START_TEST(bad_bn2d)
{
  aal_error err;
  aal_tensor *x = aal_test_tensor4(2, 3, 2, 2), *y = aal_test_tensor4(2, 3, 2, 2), *y_bad = aal_test_tensor4(2, 3, 2, 3);
  aal_tensor *g = t1(3), *b = t1(3), *rm = t1(3), *rv = t1(3), *mean = t1(3), *inv = t1(3);
  aal_tensor *g5 = t1(5), *x2 = t2(6, 4), *x3 = aal_tensor_copy(g, NULL);
  aal_tensor *mean_bits = bits_like(mean);
  aal_tensor *x1 = aal_test_tensor4(1, 3, 1, 1), *y1 = aal_test_tensor4(1, 3, 1, 1);
  aal_tensor *dy = aal_test_tensor4(2, 3, 2, 2), *dx = aal_test_tensor4(2, 3, 2, 2), *dg = t1(3), *db = t1(3);
  aal_tensor_fill(g, 1.0);
  aal_tensor_fill(rv, 1.0);
  aal_tensor_fill(inv, 1.0);
  aal_tensor_fill(x, 0.5);
  x->data[1] = -0.5;
  const double m = AAL_BN_MOMENTUM, e = AAL_BN_EPS;

  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(NULL, g, b, rm, rv, m, e, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, NULL, b, rm, rv, m, e, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, NULL, rv, m, e, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, m, e, NULL, mean, inv, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_forward_train(x, g5, b, rm, rv, m, e, y, mean, inv, &err));
  ck_assert_msg(strstr(err.msg, "gamma has shape 5, expected 3 (channels of x)") != NULL,
                "message '%s'", err.msg);
  EXPECT(AAL_ESHAPE, aal_bn2d_forward_train(x2, g, b, rm, rv, m, e, y, mean, inv, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_forward_train(x3, g, b, rm, rv, m, e, y, mean, inv, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_forward_train(x, g, b, rm, rv, m, e, y_bad, mean, inv, &err));
  EXPECT(AAL_EINVAL,
         aal_bn2d_forward_train(x, g, b, rm, rv, m, e, y, mean_bits, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, m, 0.0, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, m, -1e-5, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, m, NAN, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, -0.1, e, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, 1.5, e, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x, g, b, rm, rv, NAN, e, y, mean, inv, &err));
  /* M = N*H*W = 1: training is undefined (as in PyTorch); running stats untouched. */
  rm->data[0] = 0.25;
  EXPECT(AAL_EINVAL, aal_bn2d_forward_train(x1, g, b, rm, rv, m, e, y1, mean, inv, &err));
  ck_assert(rm->data[0] == 0.25 && rv->data[0] == 1.0);
  /* A NaN in x is reported, running stats untouched. */
  x->data[5] = NAN;
  EXPECT(AAL_ENUMERIC, aal_bn2d_forward_train(x, g, b, rm, rv, m, e, y, mean, inv, &err));
  ck_assert(rm->data[0] == 0.25 && rv->data[0] == 1.0);
  x->data[5] = 0.5;
  /* err may be NULL. */
  ck_assert_int_eq(aal_bn2d_forward_train(NULL, g, b, rm, rv, m, e, y, mean, inv, NULL),
                   AAL_EINVAL);

  EXPECT(AAL_EINVAL, aal_bn2d_forward_eval(NULL, g, b, rm, rv, e, y, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_forward_eval(x, g5, b, rm, rv, e, y, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_forward_eval(x, g, b, rm, rv, e, y_bad, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_forward_eval(x, g, b, rm, rv, 0.0, y, &err));
  rv->data[1] = -1.0;
  EXPECT(AAL_EINVAL, aal_bn2d_forward_eval(x, g, b, rm, rv, e, y, &err));
  rv->data[1] = NAN;
  EXPECT(AAL_ENUMERIC, aal_bn2d_forward_eval(x, g, b, rm, rv, e, y, &err));
  rv->data[1] = 1.0;
  EXPECT_OK(aal_bn2d_forward_eval(x1, g, b, rm, rv, e, y1, &err));

  EXPECT(AAL_EINVAL, aal_bn2d_backward(NULL, x, g, mean, inv, dx, dg, db, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_backward(dy, x, g, mean, inv, NULL, dg, db, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_backward(dy, x, g, mean, inv, dx, dg, NULL, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_backward(y_bad, x, g, mean, inv, dx, dg, db, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_backward(dy, x, g, mean, inv, y_bad, dg, db, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_backward(dy, x, g, mean, inv, dx, g5, db, &err));
  EXPECT(AAL_ESHAPE, aal_bn2d_backward(dy, x2, g, mean, inv, dx, dg, db, &err));
  EXPECT(AAL_EINVAL, aal_bn2d_backward(dy, x, g, mean_bits, inv, dx, dg, db, &err));
  aal_tensor_fill(mean, 0.0);
  inv->data[2] = 0.0;
  EXPECT(AAL_ENUMERIC, aal_bn2d_backward(dy, x, g, mean, inv, dx, dg, db, &err));
  inv->data[2] = 1.0;
  EXPECT_OK(aal_bn2d_backward(dy, x, g, mean, inv, dx, dg, db, &err));

  aal_tensor *all[] = {x, y, y_bad, g, b, rm, rv, mean, inv, g5, x2, x3,
                       mean_bits, x1, y1, dy, dx, dg, db};
  release_all(all, sizeof all / sizeof all[0]);
}
END_TEST

START_TEST(bad_relu_add)
{
  aal_error err;
  aal_tensor *x = aal_test_tensor4(2, 3, 2, 2), *y = aal_test_tensor4(2, 3, 2, 2), *y_bad = aal_test_tensor4(2, 3, 2, 3);
  aal_tensor *x2 = t2(6, 4); /* same size, other rank */
  aal_tensor *mask = bits_like(x), *mask_bad = bits_like(y_bad), *mask_f64 = aal_test_tensor4(2, 3, 2, 2);
  aal_tensor *dy = aal_test_tensor4(2, 3, 2, 2), *dx = aal_test_tensor4(2, 3, 2, 2);

  EXPECT(AAL_EINVAL, aal_relu_forward(NULL, y, mask, &err));
  EXPECT(AAL_EINVAL, aal_relu_forward(x, NULL, mask, &err));
  EXPECT(AAL_ESHAPE, aal_relu_forward(x, y_bad, mask, &err));
  EXPECT(AAL_ESHAPE, aal_relu_forward(x, x2, mask, &err));
  EXPECT(AAL_EINVAL, aal_relu_forward(x, y, mask_f64, &err));
  EXPECT(AAL_ESHAPE, aal_relu_forward(x, y, mask_bad, &err));
  EXPECT(AAL_EINVAL, aal_relu_forward(mask, y, NULL, &err));
  EXPECT_OK(aal_relu_forward(x, y, NULL, &err));
  EXPECT(AAL_EINVAL, aal_relu_backward(NULL, mask, dx, &err));
  EXPECT(AAL_EINVAL, aal_relu_backward(dy, NULL, dx, &err));
  EXPECT(AAL_EINVAL, aal_relu_backward(dy, mask_f64, dx, &err));
  EXPECT(AAL_ESHAPE, aal_relu_backward(dy, mask_bad, dx, &err));
  EXPECT(AAL_ESHAPE, aal_relu_backward(dy, mask, y_bad, &err));
  EXPECT(AAL_EINVAL, aal_relu_backward(dy, mask, NULL, &err));
  EXPECT(AAL_EINVAL, aal_relu_backward(mask, mask, dx, &err));

  EXPECT(AAL_EINVAL, aal_add_forward(NULL, x, y, &err));
  EXPECT(AAL_EINVAL, aal_add_forward(x, NULL, y, &err));
  EXPECT(AAL_EINVAL, aal_add_forward(x, x, NULL, &err));
  EXPECT(AAL_ESHAPE, aal_add_forward(x, y_bad, y, &err));
  EXPECT(AAL_ESHAPE, aal_add_forward(x, x, y_bad, &err));
  EXPECT(AAL_ESHAPE, aal_add_forward(x, x2, y, &err));
  EXPECT(AAL_EINVAL, aal_add_forward(x, mask, y, &err));
  EXPECT(AAL_EINVAL, aal_add_backward(NULL, dx, dx, &err));
  EXPECT(AAL_ESHAPE, aal_add_backward(dy, y_bad, dx, &err));
  EXPECT(AAL_ESHAPE, aal_add_backward(dy, dx, x2, &err));
  EXPECT(AAL_EINVAL, aal_add_backward(dy, mask, NULL, &err));
  EXPECT_OK(aal_add_backward(dy, NULL, NULL, &err));
  EXPECT_OK(aal_add_backward(dy, dx, NULL, &err));

  aal_tensor *all[] = {x, y, y_bad, x2, mask, mask_bad, mask_f64, dy, dx};
  release_all(all, sizeof all / sizeof all[0]);
}
END_TEST

START_TEST(bad_avgpool_linear)
{
  aal_error err;
  aal_tensor *x = aal_test_tensor4(2, 3, 2, 2), *y = t2(2, 3), *y_bad = t2(3, 2), *y4 = aal_test_tensor4(2, 3, 1, 1);
  aal_tensor *xb = bits_like(x);

  EXPECT(AAL_EINVAL, aal_avgpool_forward(NULL, y, &err));
  EXPECT(AAL_EINVAL, aal_avgpool_forward(x, NULL, &err));
  EXPECT(AAL_ESHAPE, aal_avgpool_forward(y, y, &err));
  EXPECT(AAL_ESHAPE, aal_avgpool_forward(x, y_bad, &err));
  EXPECT(AAL_ESHAPE, aal_avgpool_forward(x, y4, &err));
  EXPECT(AAL_EINVAL, aal_avgpool_forward(xb, y, &err));
  EXPECT(AAL_EINVAL, aal_avgpool_backward(NULL, x, &err));
  EXPECT(AAL_EINVAL, aal_avgpool_backward(y, NULL, &err));
  EXPECT(AAL_ESHAPE, aal_avgpool_backward(y_bad, x, &err));
  EXPECT(AAL_ESHAPE, aal_avgpool_backward(y, y, &err));
  EXPECT(AAL_EINVAL, aal_avgpool_backward(y, xb, &err));

  /* linear: x [4, 6], w [5, 6], b [5], y [4, 5]. */
  aal_tensor *lx = t2(4, 6), *lw = t2(5, 6), *lb = t1(5), *ly = t2(4, 5);
  aal_tensor *lw_bad = t2(5, 7), *lb_bad = t1(4), *ly_bad = t2(4, 6), *lx4 = aal_test_tensor4(4, 6, 1, 1);
  aal_tensor *lwb = bits_like(lw), *ldx = t2(4, 6), *ldw = t2(5, 6), *ldb = t1(5);
  EXPECT(AAL_EINVAL, aal_linear_forward(NULL, lw, lb, ly, &err));
  EXPECT(AAL_EINVAL, aal_linear_forward(lx, NULL, lb, ly, &err));
  EXPECT(AAL_EINVAL, aal_linear_forward(lx, lw, NULL, ly, &err));
  EXPECT(AAL_EINVAL, aal_linear_forward(lx, lw, lb, NULL, &err));
  EXPECT(AAL_EINVAL, aal_linear_forward(lx, lwb, lb, ly, &err));
  EXPECT(AAL_ESHAPE, aal_linear_forward(lx4, lw, lb, ly, &err));
  EXPECT(AAL_ESHAPE, aal_linear_forward(lx, lw_bad, lb, ly, &err));
  EXPECT(AAL_ESHAPE, aal_linear_forward(lx, lw, lb_bad, ly, &err));
  EXPECT(AAL_ESHAPE, aal_linear_forward(lx, lw, lb, ly_bad, &err));
  EXPECT(AAL_ESHAPE, aal_linear_forward(lx, lw, ly, ly, &err));
  EXPECT(AAL_EINVAL, aal_linear_backward(NULL, lx, lw, ldx, ldw, ldb, &err));
  EXPECT(AAL_EINVAL, aal_linear_backward(ly, lx, lw, ldx, NULL, ldb, &err));
  EXPECT(AAL_EINVAL, aal_linear_backward(ly, lx, lw, ldx, ldw, NULL, &err));
  EXPECT(AAL_ESHAPE, aal_linear_backward(ly_bad, lx, lw, ldx, ldw, ldb, &err));
  EXPECT(AAL_ESHAPE, aal_linear_backward(ly, lx, lw, ly, ldw, ldb, &err));
  EXPECT(AAL_ESHAPE, aal_linear_backward(ly, lx, lw, ldx, lw_bad, ldb, &err));
  EXPECT(AAL_ESHAPE, aal_linear_backward(ly, lx, lw, ldx, ldw, lb_bad, &err));
  EXPECT(AAL_ESHAPE, aal_linear_backward(ly, lx, lw_bad, ldx, ldw, ldb, &err));
  EXPECT(AAL_EINVAL, aal_linear_backward(ly, lx, lwb, ldx, ldw, ldb, &err));
  EXPECT_OK(aal_linear_backward(ly, lx, lw, NULL, ldw, ldb, &err));

  aal_tensor *all[] = {x,      y,      y_bad,  y4,  xb,  lx,  lw,  lb, ly,
                       lw_bad, lb_bad, ly_bad, lx4, lwb, ldx, ldw, ldb};
  release_all(all, sizeof all / sizeof all[0]);
}
END_TEST

START_TEST(bad_xent)
{
  aal_error err;
  const long n = 3, c = 4;
  aal_tensor *z = t2(n, c), *prob = t2(n, c), *bad = t2(n, c + 1), *z4 = aal_test_tensor4(n, c, 1, 1);
  aal_tensor *zb = bits_like(z);
  for (size_t i = 0; i < z->size; i++)
    z->data[i] = 0.1 * (double)i;
  int labels[] = {0, 3, 1};
  double loss;

  EXPECT(AAL_EINVAL, aal_xent_forward(NULL, labels, &loss, prob, &err));
  EXPECT(AAL_EINVAL, aal_xent_forward(z, NULL, &loss, prob, &err));
  EXPECT(AAL_EINVAL, aal_xent_forward(z, labels, NULL, prob, &err));
  EXPECT(AAL_EINVAL, aal_xent_forward(z, labels, &loss, NULL, &err));
  EXPECT(AAL_EINVAL, aal_xent_forward(zb, labels, &loss, prob, &err));
  EXPECT(AAL_ESHAPE, aal_xent_forward(z4, labels, &loss, prob, &err));
  EXPECT(AAL_ESHAPE, aal_xent_forward(z, labels, &loss, bad, &err));
  labels[2] = -1;
  EXPECT(AAL_EINVAL, aal_xent_forward(z, labels, &loss, prob, &err));
  ck_assert_msg(strstr(err.msg, "sample 2") != NULL, "message '%s'", err.msg);
  EXPECT(AAL_EINVAL, aal_xent_backward(prob, labels, prob, &err));
  labels[2] = (int)c;
  EXPECT(AAL_EINVAL, aal_xent_forward(z, labels, &loss, prob, &err));
  ck_assert_msg(strstr(err.msg, "sample 2") != NULL, "message '%s'", err.msg);
  EXPECT(AAL_EINVAL, aal_xent_backward(prob, labels, prob, &err));
  labels[2] = 1;
  z->data[1 * c + 2] = NAN;
  EXPECT(AAL_ENUMERIC, aal_xent_forward(z, labels, &loss, prob, &err));
  ck_assert_msg(strstr(err.msg, "sample 1") != NULL, "message '%s'", err.msg);
  z->data[1 * c + 2] = -INFINITY;
  EXPECT(AAL_ENUMERIC, aal_xent_forward(z, labels, &loss, prob, &err));
  z->data[1 * c + 2] = 0.5;
  EXPECT_OK(aal_xent_forward(z, labels, &loss, prob, &err));
  EXPECT(AAL_EINVAL, aal_xent_backward(NULL, labels, prob, &err));
  EXPECT(AAL_EINVAL, aal_xent_backward(prob, NULL, prob, &err));
  EXPECT(AAL_EINVAL, aal_xent_backward(prob, labels, NULL, &err));
  EXPECT(AAL_ESHAPE, aal_xent_backward(prob, labels, bad, &err));
  EXPECT(AAL_ESHAPE, aal_xent_backward(z4, labels, prob, &err));
  ck_assert_int_eq(aal_xent_forward(z, NULL, &loss, prob, NULL), AAL_EINVAL);

  aal_tensor *all[] = {z, prob, bad, z4, zb};
  release_all(all, sizeof all / sizeof all[0]);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *layers_suite(void)
{
  Suite *s = suite_create("layers");
  TCase *jac = tcase_create("full jacobian");
  tcase_add_test(jac, jac_bn2d_train);
  tcase_add_test(jac, jac_relu);
  tcase_add_test(jac, jac_add);
  tcase_add_test(jac, jac_avgpool);
  tcase_add_test(jac, jac_linear);
  tcase_add_test(jac, jac_xent);
  TCase *dir = tcase_create("directional");
  tcase_add_test(dir, dir_bn2d_train);
  tcase_add_test(dir, dir_linear);
  tcase_add_test(dir, dir_xent);
  tcase_add_test(dir, dir_avgpool);
  TCase *closed = tcase_create("closed forms");
  tcase_add_test(closed, xent_uniform_logits);
  tcase_add_test(closed, xent_huge_logits);
  tcase_add_test(closed, bn2d_train_closed_form);
  tcase_add_test(closed, bn2d_eval_closed_form);
  tcase_add_test(closed, relu_mask_closed_form);
  tcase_add_test(closed, avgpool_constant);
  tcase_add_test(closed, linear_naive);
  TCase *bad = tcase_create("bad input");
  tcase_add_test(bad, bad_bn2d);
  tcase_add_test(bad, bad_relu_add);
  tcase_add_test(bad, bad_avgpool_linear);
  tcase_add_test(bad, bad_xent);
  /* Generous per-test limits so that runs under valgrind do not time out; a normal run
   * takes well under a second per test. */
  TCase *all[] = {jac, dir, closed, bad};
  for (size_t i = 0; i < 4; i++) {
    tcase_set_timeout(all[i], 120);
    suite_add_tcase(s, all[i]);
  }
  return s;
}

int main(void)
{
  g_seed = fd_test_seed();
  return aal_check_run(layers_suite());
}
