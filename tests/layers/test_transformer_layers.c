/* Tests of the Transformer reference layers (sim/layers/transformer.h): layer norm, GELU,
 * softmax, multi-head attention, token embedding, patchify, transpose (and MLP-Mixer token
 * mixing as transpose + linear + transpose).
 *
 *  a. every backward against central finite differences (tests/fdcheck.c: GSL's 5-point
 *     gsl_deriv_central with its error estimate e; pass iff err <= 10 e + 64 eps scale and
 *     err <= 1e-6 scale, written so that NaN fails): the full Jacobian on tiny shapes,
 *     random directional derivatives on larger ones;
 *  b. closed forms, with tolerances in multiples of DBL_EPSILON derived beside each;
 *  c. bad arguments: the right code and a message naming the op.
 *
 * The step.  The variables and directions are dyadic (multiples of 2^-30) and the initial
 * step a power of two, so that v + t d is exact at GSL's evaluation points (test_layers.c,
 * make_dyadic); every layer here is smooth (analytic: polynomials, exp, erf, 1/sqrt of a
 * variance >= eps), so the 5-point formula's truncation error is O(h^4 |F^(5)|) and GSL's
 * estimate e covers it; h = 2^-10 ~ 1e-3 makes it ~1e-12 relative for the O(1) inputs used
 * (|x| <= 3), well under the 1e-6 bound, while the rounding part, ~eps |F| / h ~ 2e-13, is
 * what e and the 64 eps term allow for.  Linear layers (embedding, patchify, transpose)
 * are exact at any step.
 *
 * Inputs come from GSL's mt19937 seeded from fd_test_seed() (printed; AAL_TEST_SEED
 * replays it) plus a salt per test; never zeros (uniform on +-[lo, hi) with lo > 0 where a
 * sign matters).  Outputs are poisoned with NaN before every call. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "sim/layers/layers.h"
#include "sim/layers/transformer.h"
#include "tests/aal_check.h"
#include "tests/fdcheck.h"
#include "tests/layer_fd.h"
#include "tests/tensors.h"

#define U DBL_EPSILON
#define STEP 0x1p-10

static unsigned long g_seed;

/* ------------------------------------------------------------------ helpers */

static aal_tensor *tn(int ndim, long a, long b, long c, long d)
{
  const long shape[4] = {a, b, c, d};
  aal_error err;
  aal_tensor *t = aal_tensor_new(ndim, shape, &err);
  ck_assert_msg(t != NULL, "aal_tensor_new: %s", err.msg);
  return t;
}

static gsl_rng *test_rng(unsigned long salt)
{
  return aal_test_rng(g_seed + salt);
}

static void poison(aal_tensor *t)
{
  if (t != NULL)
    aal_tensor_fill(t, NAN);
}

/* Uniform in [lo, hi), rounded to a multiple of 2^-30 (exact under dyadic steps). */
static void fill_fd(gsl_rng *r, aal_tensor *t, double lo, double hi)
{
  fd_fill_uniform(r, t->data, t->size, lo, hi);
  for (size_t i = 0; i < t->size; i++)
    t->data[i] = ldexp(nearbyint(ldexp(t->data[i], 30)), -30);
}

/* |x| uniform in [lo, hi) with a random sign, dyadic. */
static void fill_signed(gsl_rng *r, aal_tensor *t, double lo, double hi)
{
  fill_fd(r, t, lo, hi);
  for (size_t i = 0; i < t->size; i++)
    if (gsl_rng_uniform(r) < 0.5)
      t->data[i] = -t->data[i];
}

/* The full Jacobian by rows (tests/layer_fd.h). */
static void check_jacobian(const layer_fd *L, const char *what)
{
  layer_fd_check_jacobian(L, STEP, what, g_seed);
}

/* Random directions: c, d uniform in [-1, 1) (d dyadic); tests/layer_fd.h says what is
 * compared.  Three directions per call. */
static void check_direction(const layer_fd *L, gsl_rng *r, const char *what)
{
  double *c = aal_test_xmalloc(L->ny * sizeof(double));
  double *d = aal_test_xmalloc(L->nvar * sizeof(double));
  for (int rep_i = 0; rep_i < 3; rep_i++) {
    fd_fill_uniform(r, c, L->ny, -1.0, 1.0);
    fd_fill_uniform(r, d, L->nvar, -1.0, 1.0);
    for (size_t j = 0; j < L->nvar; j++)
      d[j] = ldexp(nearbyint(ldexp(d[j], 30)), -30);
    layer_fd_check_direction(L, c, d, STEP, what, g_seed);
  }
  free(c);
  free(d);
}

/* |got - want| <= bound at every element, NaN failing; reports the worst element. */
static void expect_close(const char *what, const double *got, const double *want,
                         const double *bound, double bound_all, size_t n)
{
  double worst = 0.0;
  size_t wi = 0;
  int fail = 0;
  for (size_t i = 0; i < n; i++) {
    const double b = bound != NULL ? bound[i] : bound_all, e = fabs(got[i] - want[i]);
    const double ratio = b > 0.0 ? e / b : (e == 0.0 ? 0.0 : INFINITY);
    if (!(e <= b)) {
      fail = 1;
      if (!(ratio <= worst) || isnan(ratio)) {
        worst = INFINITY;
        wi = i;
      }
    } else if (ratio > worst) {
      worst = ratio;
      wi = i;
    }
  }
  fprintf(stderr, "  %s: worst err/bound %.3g at [%zu] (seed %lu)\n", what, worst, wi, g_seed);
  ck_assert_msg(!fail, "%s: element %zu: got %.17g, want %.17g, bound %.3g (seed %lu)", what, wi,
                got[wi], want[wi], bound != NULL ? bound[wi] : bound_all, g_seed);
}

static void expect_err(int rc, const aal_error *err, int want, const char *opname,
                       const char *needle, const char *call)
{
  ck_assert_msg(rc == want, "%s returned %s, expected %s (%s)", call, aal_status_name(rc),
                aal_status_name(want), err->msg);
  ck_assert_msg(strstr(err->msg, opname) != NULL, "%s: message '%s' does not name '%s'", call,
                err->msg, opname);
  ck_assert_msg(needle == NULL || strstr(err->msg, needle) != NULL,
                "%s: message '%s' does not name '%s'", call, err->msg, needle);
}

#define EXPECT(want, opname, needle, call)                                                    \
  do {                                                                                        \
    aal_error_clear(&err);                                                                    \
    const int rc_ = (call);                                                                   \
    expect_err(rc_, &err, (want), (opname), (needle), #call);                                 \
  } while (0)

#define OK(call)                                                                              \
  do {                                                                                        \
    aal_error err_;                                                                           \
    const int rc_ = (call);                                                                   \
    ck_assert_msg(rc_ == AAL_OK, "%s: %s", #call, err_.msg);                                  \
  } while (0)

/* ------------------------------------------------------------------ layer norm */

typedef struct {
  aal_tensor *x, *g, *b, *y, *mean, *invstd, *dy, *dx, *dg, *db;
  var_split split;
  double *v;
} ln_ctx;

static int ln_run(ln_ctx *k)
{
  aal_error err;
  split_load(&k->split, k->v);
  poison(k->y);
  poison(k->mean);
  poison(k->invstd);
  return aal_layernorm_forward(k->x, k->g, k->b, AAL_LN_EPS, k->y, k->mean, k->invstd, &err);
}

static void ln_forward(void *ctx, double *out)
{
  ln_ctx *k = ctx;
  copy_or_nan(ln_run(k), k->y, out);
}

static void ln_vjp(void *ctx, const double *c, double *g)
{
  ln_ctx *k = ctx;
  aal_error err;
  ck_assert_int_eq(ln_run(k), AAL_OK);
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  poison(k->dg);
  poison(k->db);
  const int rc = aal_layernorm_backward(k->dy, k->x, k->g, k->mean, k->invstd, k->dx, k->dg,
                                        k->db, &err);
  ck_assert_msg(rc == AAL_OK, "layernorm backward: %s", err.msg);
  const var_split grads = {{k->dx, k->dg, k->db}, 3};
  split_store(&grads, g);
}

/* x [shape], D its last size.  exact = 1 (the full Jacobian), as test_layers.c's batch
 * norm: D a power of two and x multiples of 2^-18 in [-1, 1) make the row sums, the mean,
 * x - mean and the sum of squares exact, at x + t too (t = +-2^-10, +-2^-11), and beta in
 * [4, 5) with gamma in [0.5, 1) keeps y = gamma xhat + beta away from cancellation
 * (|xhat| <= sqrt(D - 1) < 4 for D <= 16); what remains is a few roundings of y, which is
 * what GSL's error estimate assumes.  Without it, the rounding of the statistics (tens of
 * ulps through 1/sqrt) exceeds 10x GSL's estimate on some seeds, far inside 1e-6. */
static void ln_setup(ln_ctx *k, gsl_rng *r, int ndim, long a, long b, long c, int exact,
                     layer_fd *L)
{
  memset(k, 0, sizeof *k);
  k->x = tn(ndim, a, b, c, 1);
  const size_t d = k->x->shape[ndim - 1], m = k->x->size / d;
  k->y = tn(ndim, a, b, c, 1);
  k->dy = tn(ndim, a, b, c, 1);
  k->dx = tn(ndim, a, b, c, 1);
  k->g = tn(1, (long)d, 0, 0, 0);
  k->b = tn(1, (long)d, 0, 0, 0);
  k->dg = tn(1, (long)d, 0, 0, 0);
  k->db = tn(1, (long)d, 0, 0, 0);
  k->mean = tn(1, (long)m, 0, 0, 0);
  k->invstd = tn(1, (long)m, 0, 0, 0);
  if (exact) {
    ck_assert_msg(d > 1 && d <= 16 && (d & (d - 1)) == 0, "D = %zu", d);
    fd_fill_uniform(r, k->x->data, k->x->size, -1.0, 1.0);
    for (size_t i = 0; i < k->x->size; i++)
      k->x->data[i] = ldexp(nearbyint(ldexp(k->x->data[i], 18)), -18);
    fill_fd(r, k->g, 0.5, 1.0);
    fill_fd(r, k->b, 4.0, 5.0);
  } else {
    fill_fd(r, k->x, -1.0, 2.0);
    fill_fd(r, k->g, 0.5, 1.5);
    fill_fd(r, k->b, -1.0, 1.0);
  }
  k->split = (var_split){{k->x, k->g, k->b}, 3};
  const size_t nvar = split_size(&k->split);
  k->v = aal_test_xmalloc(nvar * sizeof(double));
  split_store(&k->split, k->v);
  *L = (layer_fd){k->v, nvar, k->y->size, ln_forward, ln_vjp, k};
}

static void ln_teardown(ln_ctx *k)
{
  aal_tensor *all[] = {k->x, k->g, k->b, k->y, k->mean, k->invstd, k->dy, k->dx, k->dg, k->db};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
  free(k->v);
}

START_TEST(layernorm_fd)
{
  gsl_rng *r = test_rng(1);
  ln_ctx k;
  layer_fd L;
  ln_setup(&k, r, 2, 3, 8, 0, 1, &L); /* M 3, D 8: v = x, gamma, beta (40 variables) */
  check_jacobian(&L, "layernorm 3x8 full Jacobian");
  ln_teardown(&k);
  ln_setup(&k, r, 3, 2, 8, 64, 0, &L); /* tokens [2, 8], D 64 */
  check_direction(&L, r, "layernorm 2x8x64 directions");
  ln_teardown(&k);
  gsl_rng_free(r);
}
END_TEST

/* Before gamma and beta (gamma = 1, beta = 0) every row has mean 0 and biased variance
 * var/(var + eps) (1 up to eps).  The mean is a sum of D terms |xhat_j| <= sqrt(D), each
 * with a few roundings: |mean| <= 8 D eps sqrt(D) / D; the variance's error the same
 * order, relative: 16 D eps.  The saved mean and invstd equal a long double recomputation
 * within 4 D eps relative (sums of D rounded terms). */
START_TEST(layernorm_closed_form)
{
  gsl_rng *r = test_rng(2);
  const long m = 6, d = 37;
  aal_tensor *x = tn(2, m, d, 0, 0), *y = tn(2, m, d, 0, 0), *g = tn(1, d, 0, 0, 0),
             *b = tn(1, d, 0, 0, 0), *mean = tn(1, m, 0, 0, 0), *inv = tn(1, m, 0, 0, 0);
  fill_signed(r, x, 0.01, 3.0);
  for (long i = 0; i < m; i++) /* rows far from 0 and of different scales */
    for (long j = 0; j < d; j++)
      x->data[i * d + j] = x->data[i * d + j] * pow(10.0, (double)(i % 3) - 1.0) + 100.0 * i;
  aal_tensor_fill(g, 1.0);
  aal_tensor_fill(b, 0.0);
  poison(y);
  OK(aal_layernorm_forward(x, g, b, AAL_LN_EPS, y, mean, inv, &err_));
  for (long i = 0; i < m; i++) {
    long double s = 0, ss = 0;
    for (long j = 0; j < d; j++)
      s += x->data[i * d + j];
    const long double mu = s / d;
    for (long j = 0; j < d; j++)
      ss += (x->data[i * d + j] - mu) * (x->data[i * d + j] - mu);
    const long double var = ss / d;
    double ym = 0.0, yv = 0.0;
    for (long j = 0; j < d; j++)
      ym += y->data[i * d + j];
    ym /= (double)d;
    for (long j = 0; j < d; j++)
      yv += (y->data[i * d + j] - ym) * (y->data[i * d + j] - ym);
    yv /= (double)d;
    const double want_var = (double)(var / (var + AAL_LN_EPS));
    const double mu_d = (double)mu, inv_d = (double)(1.0L / sqrtl(var + AAL_LN_EPS));
    double xmax = 0.0;
    for (long j = 0; j < d; j++)
      xmax = fmax(xmax, fabs(x->data[i * d + j]));
    /* the saved mean errs by at most D eps max|x| (a sum of D terms, then / D), a shift
     * common to the row that moves mean(y) by invstd times it */
    const double mean_err = d * U * xmax;
    ck_assert_msg(fabs(ym) <= 8.0 * U * sqrt((double)d) + 2.0 * inv_d * mean_err,
                  "row %ld: mean of y %.3g", i, ym);
    ck_assert_msg(fabs(yv - want_var) <= 16.0 * d * U * want_var,
                  "row %ld: variance of y %.17g, want %.17g", i, yv, want_var);
    ck_assert_msg(fabs(mean->data[i] - mu_d) <= 2.0 * mean_err, "row %ld: mean %.17g, want %.17g",
                  i, mean->data[i], mu_d);
    /* invstd: the sum of squares errs by D eps relative, sqrt and 1/ add a few roundings */
    ck_assert_msg(fabs(inv->data[i] - inv_d) <= (d + 4.0) * U * inv_d,
                  "row %ld: invstd %.17g, want %.17g", i, inv->data[i], inv_d);
  }
  fprintf(stderr, "  layernorm closed form: %ld rows of %ld (seed %lu)\n", m, d, g_seed);
  aal_tensor *all[] = {x, y, g, b, mean, inv};
  for (size_t i = 0; i < 6; i++)
    aal_tensor_release(all[i]);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ GELU */

typedef struct {
  aal_tensor *x, *y, *dy, *dx;
} gelu_ctx;

static void gelu_fwd(void *ctx, double *out)
{
  gelu_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  copy_or_nan(aal_gelu_forward(k->x, k->y, &err), k->y, out);
}

static void gelu_vjp(void *ctx, const double *c, double *g)
{
  gelu_ctx *k = ctx;
  aal_error err;
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  ck_assert_msg(aal_gelu_backward(k->dy, k->x, k->dx, &err) == AAL_OK, "%s", err.msg);
  memcpy(g, k->dx->data, k->dx->size * sizeof(double));
}

START_TEST(gelu_fd)
{
  gsl_rng *r = test_rng(3);
  const long sizes[2] = {17, 4096};
  for (int s = 0; s < 2; s++) {
    gelu_ctx k = {tn(1, sizes[s], 0, 0, 0), tn(1, sizes[s], 0, 0, 0), tn(1, sizes[s], 0, 0, 0),
                  tn(1, sizes[s], 0, 0, 0)};
    fill_signed(r, k.x, 0.05, 3.0); /* both tails and the curved middle */
    const layer_fd L = {k.x->data, k.x->size, k.y->size, gelu_fwd, gelu_vjp, &k};
    if (s == 0)
      check_jacobian(&L, "gelu 17 full Jacobian");
    else
      check_direction(&L, r, "gelu 4096 directions");
    aal_tensor_release(k.x);
    aal_tensor_release(k.y);
    aal_tensor_release(k.dy);
    aal_tensor_release(k.dx);
  }
  gsl_rng_free(r);
}
END_TEST

/* GELU(0) = 0 and GELU'(0) = 1/2 exactly (erf(0) = 0); GELU(x) - GELU(-x) = x (Phi(x) +
 * Phi(-x) = 1), within 4 eps (|x| Phi(x) + |x| Phi(-x)) = 4 eps |x| (a few roundings of
 * each term, erf correctly rounded to within an ulp); GELU(1) = Phi(1) =
 * 0.841344746068542948585 (erfc(-1/sqrt2)/2, to 21 digits) within 4 eps; y equals
 * x (1 + erf(x/sqrt 2))/2 recomputed in long double within 4 eps |y| + 4 eps |x| (the
 * difference of x/sqrt2's roundings moves erf by at most eps |x| phi). */
START_TEST(gelu_closed_form)
{
  gsl_rng *r = test_rng(4);
  aal_tensor *x = tn(1, 5, 0, 0, 0), *y = tn(1, 5, 0, 0, 0), *dy = tn(1, 5, 0, 0, 0),
             *dx = tn(1, 5, 0, 0, 0);
  const double xs[5] = {0.0, 1.0, -1.0, 2.5, -0.375};
  memcpy(x->data, xs, sizeof xs);
  aal_tensor_fill(dy, 1.0);
  poison(y);
  poison(dx);
  OK(aal_gelu_forward(x, y, &err_));
  OK(aal_gelu_backward(dy, x, dx, &err_));
  ck_assert_msg(y->data[0] == 0.0, "GELU(0) = %.17g", y->data[0]);
  ck_assert_msg(dx->data[0] == 0.5, "GELU'(0) = %.17g", dx->data[0]);
  ck_assert_msg(aal_gelu_deriv(0.0) == 0.5, "aal_gelu_deriv(0) = %.17g", aal_gelu_deriv(0.0));
  ck_assert_msg(fabs(y->data[1] - 0.841344746068542948585) <= 4 * U, "GELU(1) = %.17g",
                y->data[1]);
  ck_assert_msg(fabs((y->data[1] - y->data[2]) - 1.0) <= 4 * U, "GELU(1) - GELU(-1) = %.17g",
                y->data[1] - y->data[2]);
  aal_tensor_release(x);
  aal_tensor_release(y);
  aal_tensor_release(dy);
  aal_tensor_release(dx);

  const long n = 1000;
  x = tn(1, n, 0, 0, 0);
  y = tn(1, n, 0, 0, 0);
  aal_tensor *xm = tn(1, n, 0, 0, 0), *ym = tn(1, n, 0, 0, 0);
  fill_signed(r, x, 1e-3, 6.0);
  for (long i = 0; i < n; i++)
    xm->data[i] = -x->data[i];
  poison(y);
  poison(ym);
  OK(aal_gelu_forward(x, y, &err_));
  OK(aal_gelu_forward(xm, ym, &err_));
  double *diff = aal_test_xmalloc((size_t)n * sizeof *diff), *bound = aal_test_xmalloc((size_t)n * sizeof *bound);
  double *want = aal_test_xmalloc((size_t)n * sizeof *want);
  for (long i = 0; i < n; i++) {
    diff[i] = y->data[i] - ym->data[i];
    bound[i] = 4 * U * fabs(x->data[i]);
    const long double v = x->data[i];
    want[i] = (double)(0.5L * v * (1.0L + erfl(v / sqrtl(2.0L))));
  }
  expect_close("GELU(x) - GELU(-x) = x", diff, x->data, bound, 0.0, (size_t)n);
  for (long i = 0; i < n; i++)
    bound[i] = 4 * U * (fabs(want[i]) + fabs(x->data[i]));
  expect_close("GELU against long double", y->data, want, bound, 0.0, (size_t)n);
  free(diff);
  free(bound);
  free(want);
  aal_tensor_release(x);
  aal_tensor_release(y);
  aal_tensor_release(xm);
  aal_tensor_release(ym);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ softmax */

typedef struct {
  aal_tensor *x, *y, *dy, *dx;
} sm_ctx;

static void sm_fwd(void *ctx, double *out)
{
  sm_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  copy_or_nan(aal_softmax_forward(k->x, k->y, &err), k->y, out);
}

static void sm_vjp(void *ctx, const double *c, double *g)
{
  sm_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  ck_assert_int_eq(aal_softmax_forward(k->x, k->y, &err), AAL_OK);
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  ck_assert_msg(aal_softmax_backward(k->dy, k->y, k->dx, &err) == AAL_OK, "%s", err.msg);
  memcpy(g, k->dx->data, k->dx->size * sizeof(double));
}

START_TEST(softmax_fd)
{
  gsl_rng *r = test_rng(5);
  for (int s = 0; s < 2; s++) {
    const int nd = s == 0 ? 2 : 3;
    const long a = s == 0 ? 3 : 4, b = s == 0 ? 7 : 8, c = s == 0 ? 0 : 33;
    sm_ctx k = {tn(nd, a, b, c, 0), tn(nd, a, b, c, 0), tn(nd, a, b, c, 0), tn(nd, a, b, c, 0)};
    fill_fd(r, k.x, -2.0, 2.0);
    const layer_fd L = {k.x->data, k.x->size, k.y->size, sm_fwd, sm_vjp, &k};
    if (s == 0)
      check_jacobian(&L, "softmax 3x7 full Jacobian");
    else
      check_direction(&L, r, "softmax 4x8x33 directions");
    aal_tensor_release(k.x);
    aal_tensor_release(k.y);
    aal_tensor_release(k.dy);
    aal_tensor_release(k.dx);
  }
  gsl_rng_free(r);
}
END_TEST

/* Rows sum to 1 within 2 D eps (D quotients of one rounding each, a sum of D terms);
 * rows offset by +-1e3 and +-1e5 (exp would overflow without the max subtracted) are
 * finite and sum to 1 too; a constant row is 1/D exactly where D is a power of 2; in
 * place (y = x) gives the same bits as out of place; the backward of dy = constant is 0
 * (sum dy y = c sum y = c (1 + O(D eps))): |dx| <= 4 D eps |c| y. */
START_TEST(softmax_closed_form)
{
  gsl_rng *r = test_rng(6);
  const long m = 8, d = 50;
  aal_tensor *x = tn(2, m, d, 0, 0), *y = tn(2, m, d, 0, 0), *y2 = tn(2, m, d, 0, 0);
  fill_fd(r, x, -3.0, 3.0);
  static const double offs[8] = {0, 1e3, -1e3, 1e5, -1e5, 700, -745, 0.5};
  for (long i = 0; i < m; i++)
    for (long j = 0; j < d; j++)
      x->data[i * d + j] += offs[i];
  poison(y);
  OK(aal_softmax_forward(x, y, &err_));
  double worst = 0.0;
  for (long i = 0; i < m; i++) {
    double s = 0.0;
    for (long j = 0; j < d; j++) {
      ck_assert_msg(isfinite(y->data[i * d + j]) && y->data[i * d + j] >= 0.0, "y[%ld,%ld] = %g",
                    i, j, y->data[i * d + j]);
      s += y->data[i * d + j];
    }
    worst = fmax(worst, fabs(s - 1.0) / (2.0 * d * U));
    ck_assert_msg(fabs(s - 1.0) <= 2.0 * d * U, "row %ld (offset %g) sums to 1 + %.3g", i,
                  offs[i], s - 1.0);
  }
  fprintf(stderr, "  softmax rows sum to 1: worst err/bound %.3g (seed %lu)\n", worst, g_seed);
  memcpy(y2->data, x->data, x->size * sizeof(double));
  OK(aal_softmax_forward(y2, y2, &err_));
  ck_assert_msg(memcmp(y->data, y2->data, y->size * sizeof(double)) == 0,
                "softmax in place differs from out of place");

  /* dy = constant: dx = y (c - c sum y) ~ 0 */
  aal_tensor *dy = tn(2, m, d, 0, 0), *dx = tn(2, m, d, 0, 0);
  aal_tensor_fill(dy, 0.75);
  poison(dx);
  OK(aal_softmax_backward(dy, y, dx, &err_));
  for (size_t i = 0; i < dx->size; i++)
    ck_assert_msg(fabs(dx->data[i]) <= 4.0 * d * U * 0.75 * y->data[i] + 1e-300,
                  "dx[%zu] = %g for a constant dy", i, dx->data[i]);
  /* a constant row, D = 16: exp(0) = 1 everywhere, 1/16 exactly */
  aal_tensor *c = tn(2, 2, 16, 0, 0), *cy = tn(2, 2, 16, 0, 0);
  aal_tensor_fill(c, -12.375);
  OK(aal_softmax_forward(c, cy, &err_));
  for (size_t i = 0; i < cy->size; i++)
    ck_assert_msg(cy->data[i] == 0.0625, "constant row: y[%zu] = %.17g", i, cy->data[i]);
  /* a NaN makes its row NaN and leaves the others alone */
  c->data[3] = NAN;
  OK(aal_softmax_forward(c, cy, &err_));
  for (size_t i = 0; i < cy->size; i++)
    ck_assert_msg(i < 16 ? isnan(cy->data[i]) : cy->data[i] == 0.0625, "NaN row: y[%zu] = %g",
                  i, cy->data[i]);
  aal_tensor *all[] = {x, y, y2, dy, dx, c, cy};
  for (size_t i = 0; i < 7; i++)
    aal_tensor_release(all[i]);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ attention */

typedef struct {
  aal_tensor *q, *k, *v, *p, *o, *dout, *dq, *dk, *dv;
  int heads;
  var_split split;
  double *var;
} att_ctx;

static int att_run(att_ctx *a)
{
  aal_error err;
  split_load(&a->split, a->var);
  poison(a->p);
  poison(a->o);
  return aal_attention_forward(a->q, a->k, a->v, a->heads, a->p, a->o, &err);
}

static void att_fwd(void *ctx, double *out)
{
  att_ctx *a = ctx;
  copy_or_nan(att_run(a), a->o, out);
}

static void att_vjp(void *ctx, const double *c, double *g)
{
  att_ctx *a = ctx;
  aal_error err;
  ck_assert_int_eq(att_run(a), AAL_OK);
  memcpy(a->dout->data, c, a->dout->size * sizeof(double));
  poison(a->dq);
  poison(a->dk);
  poison(a->dv);
  const int rc = aal_attention_backward(a->dout, a->q, a->k, a->v, a->p, a->heads, a->dq, a->dk,
                                        a->dv, &err);
  ck_assert_msg(rc == AAL_OK, "attention backward: %s", err.msg);
  const var_split grads = {{a->dq, a->dk, a->dv}, 3};
  split_store(&grads, g);
}

static void att_setup(att_ctx *a, gsl_rng *r, long b, long t, long e, int heads, layer_fd *L)
{
  memset(a, 0, sizeof *a);
  a->heads = heads;
  aal_tensor **qkv[9] = {&a->q, &a->k, &a->v, &a->o, &a->dout, &a->dq, &a->dk, &a->dv, NULL};
  for (int i = 0; qkv[i] != NULL; i++)
    *qkv[i] = tn(3, b, t, e, 0);
  a->p = tn(4, b, heads, t, t);
  fill_fd(r, a->q, -1.5, 1.5);
  fill_fd(r, a->k, -1.5, 1.5);
  fill_fd(r, a->v, -1.0, 1.0);
  a->split = (var_split){{a->q, a->k, a->v}, 3};
  const size_t nvar = split_size(&a->split);
  a->var = aal_test_xmalloc(nvar * sizeof(double));
  split_store(&a->split, a->var);
  *L = (layer_fd){a->var, nvar, a->o->size, att_fwd, att_vjp, a};
}

static void att_teardown(att_ctx *a)
{
  aal_tensor *all[] = {a->q, a->k, a->v, a->p, a->o, a->dout, a->dq, a->dk, a->dv};
  for (size_t i = 0; i < 9; i++)
    aal_tensor_release(all[i]);
  free(a->var);
}

START_TEST(attention_fd)
{
  gsl_rng *r = test_rng(7);
  att_ctx a;
  layer_fd L;
  att_setup(&a, r, 2, 3, 4, 2, &L); /* B 2, T 3, H 2, dh 2: 72 variables, 24 outputs */
  check_jacobian(&L, "attention 2x3x4 H2 full Jacobian");
  att_teardown(&a);
  att_setup(&a, r, 2, 9, 24, 3, &L); /* H 3, dh 8 */
  check_direction(&L, r, "attention 2x9x24 H3 directions");
  att_teardown(&a);
  gsl_rng_free(r);
}
END_TEST

/* Forward against a naive per-element loop in long double: P within 8 (dh + T) eps |P|
 * (a dot product of dh terms, exp of it (relative error amplified by |S| <= sum |q k| /
 * sqrt dh, bounded here by the same sum of magnitudes), a sum of T exps and a quotient:
 * the bound uses the scores' magnitudes sa = sum |q_i k_i| / sqrt dh), O within
 * 4 T eps sum_j P_j |v_j| + the propagated P error.  And the closed form: keys equal in
 * every row of a head make every score row constant, P = 1/T and O = the mean of V's rows
 * (to 2 T eps of the sum of |v|). */
START_TEST(attention_closed_form)
{
  gsl_rng *r = test_rng(8);
  const long b = 2, t = 5, e = 12;
  const int heads = 3;
  const long dh = e / heads;
  att_ctx a;
  layer_fd L;
  att_setup(&a, r, b, t, e, heads, &L);
  ck_assert_int_eq(att_run(&a), AAL_OK);
  double *pw = aal_test_xmalloc(a.p->size * sizeof(double)), *pb = aal_test_xmalloc(a.p->size * sizeof(double));
  double *ow = aal_test_xmalloc(a.o->size * sizeof(double)), *ob = aal_test_xmalloc(a.o->size * sizeof(double));
  for (long bb = 0; bb < b; bb++)
    for (long h = 0; h < heads; h++) {
      for (long i = 0; i < t; i++) {
        long double s[16], mx = -INFINITY, sum = 0;
        double sa = 0.0;
        for (long j = 0; j < t; j++) {
          long double acc = 0;
          double mag = 0.0;
          for (long c = 0; c < dh; c++) {
            const double qv = a.q->data[(bb * t + i) * e + h * dh + c];
            const double kv = a.k->data[(bb * t + j) * e + h * dh + c];
            acc += (long double)qv * kv;
            mag += fabs(qv * kv);
          }
          s[j] = acc / sqrtl((long double)dh);
          sa = fmax(sa, mag / sqrt((double)dh));
          mx = s[j] > mx ? s[j] : mx;
        }
        for (long j = 0; j < t; j++)
          sum += expl(s[j] - mx);
        for (long j = 0; j < t; j++) {
          const size_t pi = (size_t)(((bb * heads + h) * t + i) * t + j);
          pw[pi] = (double)(expl(s[j] - mx) / sum);
          pb[pi] = 8.0 * (dh + t) * U * (1.0 + 2.0 * sa) * pw[pi];
        }
      }
      for (long i = 0; i < t; i++)
        for (long c = 0; c < dh; c++) {
          long double acc = 0;
          double mag = 0.0, pmag = 0.0;
          for (long j = 0; j < t; j++) {
            const size_t pi = (size_t)(((bb * heads + h) * t + i) * t + j);
            const double vv = a.v->data[(bb * t + j) * e + h * dh + c];
            acc += (long double)pw[pi] * vv;
            mag += fabs(pw[pi] * vv);
            pmag += pb[pi] * fabs(vv);
          }
          const size_t oi = (size_t)((bb * t + i) * e + h * dh + c);
          ow[oi] = (double)acc;
          ob[oi] = 4.0 * t * U * mag + pmag;
        }
    }
  expect_close("attention P against a naive loop", a.p->data, pw, pb, 0.0, a.p->size);
  expect_close("attention O against a naive loop", a.o->data, ow, ob, 0.0, a.o->size);

  /* keys constant along T in each head: P = 1/T, O = mean of V's rows */
  for (long bb = 0; bb < b; bb++)
    for (long j = 1; j < t; j++)
      memcpy(a.var + a.q->size + (size_t)((bb * t + j) * e),
             a.var + a.q->size + (size_t)(bb * t * e), (size_t)e * sizeof(double));
  ck_assert_int_eq(att_run(&a), AAL_OK);
  /* The scores of a row are equal up to the dot products' rounding (BLAS may order
   * columns differently): |q|, |k| < 1.5 give sa = sum |q k| / sqrt dh < 2.25 sqrt dh, the
   * scores differ by at most 2 (dh + 2) eps sa, which moves P relatively by that, plus T
   * eps for the sum and one for the quotient. */
  const double sa_max = 2.25 * sqrt((double)dh);
  const double p_rel = 2.0 * (dh + 2) * U * sa_max + (t + 2) * U;
  for (size_t i = 0; i < a.p->size; i++)
    ck_assert_msg(fabs(a.p->data[i] - 1.0 / t) <= p_rel / t, "P[%zu] = %.17g, want 1/%ld",
                  i, a.p->data[i], t);
  for (long bb = 0; bb < b; bb++)
    for (long i = 0; i < t; i++)
      for (long c = 0; c < e; c++) {
        double s = 0.0, sa = 0.0;
        for (long j = 0; j < t; j++) {
          s += a.v->data[(bb * t + j) * e + c];
          sa += fabs(a.v->data[(bb * t + j) * e + c]);
        }
        const double got = a.o->data[(bb * t + i) * e + c];
        ck_assert_msg(fabs(got - s / t) <= (4.0 * t * U + p_rel) * sa / t, "O[%ld,%ld,%ld] = %.17g, want "
                      "the mean %.17g", bb, i, c, got, s / t);
      }
  free(pw);
  free(pb);
  free(ow);
  free(ob);
  att_teardown(&a);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ embedding */

typedef struct {
  const int *ids;
  aal_tensor *table, *pos, *y, *dy, *dtable, *dpos;
  var_split split;
  double *v;
} emb_ctx;

static void emb_fwd(void *ctx, double *out)
{
  emb_ctx *k = ctx;
  aal_error err;
  split_load(&k->split, k->v);
  poison(k->y);
  copy_or_nan(aal_embed_forward(k->ids, k->table, k->pos, k->y, &err), k->y, out);
}

static void emb_vjp(void *ctx, const double *c, double *g)
{
  emb_ctx *k = ctx;
  aal_error err;
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dtable);
  poison(k->dpos);
  ck_assert_msg(aal_embed_backward(k->ids, k->dy, k->dtable, k->dpos, &err) == AAL_OK, "%s",
                err.msg);
  const var_split grads = {{k->dtable, k->dpos}, 2};
  split_store(&grads, g);
}

/* The full Jacobian in [table, pos] (a linear map: exact at any step) on B 2, T 3, V 5,
 * D 4 with ids that repeat (id 1 three times) and leave id 4 unused; the closed forms of
 * the scatter-add: dtable's row of an unused id is 0 exactly, a repeated id's row is the
 * sum of its dy rows (in (b, t) order, so equal bit for bit to that sum), and without pos
 * y is the table's rows. */
START_TEST(embed_fd_and_scatter)
{
  gsl_rng *r = test_rng(9);
  static const int ids[6] = {1, 0, 1, 3, 1, 2};
  emb_ctx k = {ids, tn(2, 5, 4, 0, 0), tn(2, 3, 4, 0, 0), tn(3, 2, 3, 4, 0), tn(3, 2, 3, 4, 0),
               tn(2, 5, 4, 0, 0), tn(2, 3, 4, 0, 0), {{NULL}, 0}, NULL};
  fill_fd(r, k.table, -1.0, 1.0);
  fill_fd(r, k.pos, -0.5, 0.5);
  k.split = (var_split){{k.table, k.pos}, 2};
  const size_t nvar = split_size(&k.split);
  k.v = aal_test_xmalloc(nvar * sizeof(double));
  split_store(&k.split, k.v);
  const layer_fd L = {k.v, nvar, k.y->size, emb_fwd, emb_vjp, &k};
  check_jacobian(&L, "embed 2x3 V5 D4 full Jacobian");

  fill_fd(r, k.dy, -1.0, 1.0);
  poison(k.dtable);
  poison(k.dpos);
  OK(aal_embed_backward(ids, k.dy, k.dtable, k.dpos, &err_));
  for (int j = 0; j < 4; j++) {
    ck_assert_msg(k.dtable->data[4 * 4 + j] == 0.0, "unused id 4: dtable = %g",
                  k.dtable->data[16 + j]);
    const double want1 = (k.dy->data[0 * 4 + j] + k.dy->data[2 * 4 + j]) + k.dy->data[4 * 4 + j];
    ck_assert_msg(k.dtable->data[1 * 4 + j] == want1, "id 1 (3 times): %.17g, want %.17g",
                  k.dtable->data[4 + j], want1);
    for (int t = 0; t < 3; t++)
      ck_assert_msg(k.dpos->data[t * 4 + j] == k.dy->data[t * 4 + j] + k.dy->data[(3 + t) * 4 + j],
                    "dpos[%d,%d]", t, j);
  }
  poison(k.y);
  OK(aal_embed_forward(ids, k.table, NULL, k.y, &err_));
  for (int i = 0; i < 6; i++)
    ck_assert_msg(memcmp(k.y->data + i * 4, k.table->data + ids[i] * 4, 4 * sizeof(double)) == 0,
                  "y without pos: row %d is not table[%d]", i, ids[i]);
  aal_tensor *all[] = {k.table, k.pos, k.y, k.dy, k.dtable, k.dpos};
  for (size_t i = 0; i < 6; i++)
    aal_tensor_release(all[i]);
  free(k.v);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ patchify */

typedef struct {
  int p;
  aal_tensor *x, *y, *dy, *dx;
} pat_ctx;

static void pat_fwd(void *ctx, double *out)
{
  pat_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  copy_or_nan(aal_patchify_forward(k->x, k->p, k->y, &err), k->y, out);
}

static void pat_vjp(void *ctx, const double *c, double *g)
{
  pat_ctx *k = ctx;
  aal_error err;
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  ck_assert_msg(aal_patchify_backward(k->dy, k->p, k->dx, &err) == AAL_OK, "%s", err.msg);
  memcpy(g, k->dx->data, k->dx->size * sizeof(double));
}

/* The full Jacobian (a permutation) on B 2, C 2, 4x6 images, p 2; then patch embedding =
 * patchify + linear against a naive stride-p convolution with the same weight [D, C, p, p]
 * (the ViT stem, PyTorch's Conv2d(C, D, p, stride p)), B 2, C 3, 8x12, p 4, D 5: each
 * output a sum of C p p products, within 2 (C p p + 1) eps sum |w x| + |b|. */
START_TEST(patchify_fd_and_conv)
{
  gsl_rng *r = test_rng(10);
  pat_ctx k = {2, tn(4, 2, 2, 4, 6), tn(3, 2, 6, 8, 0), tn(3, 2, 6, 8, 0), tn(4, 2, 2, 4, 6)};
  fill_fd(r, k.x, -1.0, 1.0);
  const layer_fd L = {k.x->data, k.x->size, k.y->size, pat_fwd, pat_vjp, &k};
  check_jacobian(&L, "patchify 2x2x4x6 p2 full Jacobian");
  aal_tensor_release(k.x);
  aal_tensor_release(k.y);
  aal_tensor_release(k.dy);
  aal_tensor_release(k.dx);

  const long b = 2, c = 3, hi = 8, wi = 12, p = 4, d = 5, n = (hi / p) * (wi / p), f = c * p * p;
  aal_tensor *x = tn(4, b, c, hi, wi), *pt = tn(3, b, n, f, 0), *w = tn(2, d, f, 0, 0),
             *bias = tn(1, d, 0, 0, 0), *y = tn(2, b * n, d, 0, 0), *pt2 = tn(2, b * n, f, 0, 0);
  fill_fd(r, x, -1.0, 1.0);
  fill_fd(r, w, -1.0, 1.0);
  fill_fd(r, bias, -1.0, 1.0);
  poison(pt);
  OK(aal_patchify_forward(x, (int)p, pt, &err_));
  memcpy(pt2->data, pt->data, pt->size * sizeof(double)); /* [B, N, F] as [B N, F] */
  poison(y);
  OK(aal_linear_forward(pt2, w, bias, y, &err_));
  double *want = aal_test_xmalloc(y->size * sizeof(double)), *bound = aal_test_xmalloc(y->size * sizeof(double));
  for (long bb = 0; bb < b; bb++)
    for (long ph = 0; ph < hi / p; ph++)
      for (long pw = 0; pw < wi / p; pw++)
        for (long o = 0; o < d; o++) {
          long double acc = bias->data[o];
          double mag = fabs(bias->data[o]);
          for (long cc = 0; cc < c; cc++)
            for (long i = 0; i < p; i++)
              for (long j = 0; j < p; j++) {
                const double xv = x->data[((bb * c + cc) * hi + ph * p + i) * wi + pw * p + j];
                const double wv = w->data[o * f + (cc * p + i) * p + j]; /* w [D, C, p, p] */
                acc += (long double)wv * xv;
                mag += fabs(wv * xv);
              }
          const size_t yi = (size_t)((bb * n + ph * (wi / p) + pw) * d + o);
          want[yi] = (double)acc;
          bound[yi] = 2.0 * (f + 1) * U * mag;
        }
  expect_close("patch embedding = stride-p conv", y->data, want, bound, 0.0, y->size);
  free(want);
  free(bound);
  aal_tensor *all[] = {x, pt, w, bias, y, pt2};
  for (size_t i = 0; i < 6; i++)
    aal_tensor_release(all[i]);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ transpose, token mixing */

typedef struct {
  aal_tensor *x, *y, *dy, *dx;
} tp_ctx;

static void tp_fwd(void *ctx, double *out)
{
  tp_ctx *k = ctx;
  aal_error err;
  poison(k->y);
  copy_or_nan(aal_transpose(k->x, k->y, &err), k->y, out);
}

static void tp_vjp(void *ctx, const double *c, double *g)
{
  tp_ctx *k = ctx;
  aal_error err;
  memcpy(k->dy->data, c, k->dy->size * sizeof(double));
  poison(k->dx);
  ck_assert_msg(aal_transpose(k->dy, k->dx, &err) == AAL_OK, "%s", err.msg);
  memcpy(g, k->dx->data, k->dx->size * sizeof(double));
}

/* The full Jacobian of transpose (its backward is transpose of dy) on 2x3x4; then
 * MLP-Mixer token mixing, transpose + linear over T + transpose, on x [B 2, T 6, D 5] with
 * w [T, T], b [T]: y[b, t, d] = sum_s w[t, s] x[b, s, d] + bias[t], against that formula
 * in long double within 2 (T + 1) eps sum |w x| + |bias|; and its input gradient
 * (transpose, linear backward, transpose) against finite differences of the whole step. */
typedef struct {
  aal_tensor *x, *xt, *xt2, *w, *b, *yt, *yt2, *y, *dy, *dyt, *dyt2, *dxt, *dxt2, *dx, *dw, *db;
} mix_ctx;

static int mix_run(mix_ctx *m)
{
  aal_error err;
  int rc;
  poison(m->y);
  if ((rc = aal_transpose(m->x, m->xt, &err)) != AAL_OK)
    return rc;
  memcpy(m->xt2->data, m->xt->data, m->xt->size * sizeof(double)); /* [B, D, T] as [B D, T] */
  if ((rc = aal_linear_forward(m->xt2, m->w, m->b, m->yt2, &err)) != AAL_OK)
    return rc;
  memcpy(m->yt->data, m->yt2->data, m->yt2->size * sizeof(double));
  return aal_transpose(m->yt, m->y, &err);
}

static void mix_fwd(void *ctx, double *out)
{
  mix_ctx *m = ctx;
  copy_or_nan(mix_run(m), m->y, out);
}

static void mix_vjp(void *ctx, const double *c, double *g)
{
  mix_ctx *m = ctx;
  aal_error err;
  ck_assert_int_eq(mix_run(m), AAL_OK);
  memcpy(m->dy->data, c, m->dy->size * sizeof(double));
  OK(aal_transpose(m->dy, m->dyt, &err_));
  memcpy(m->dyt2->data, m->dyt->data, m->dyt->size * sizeof(double));
  ck_assert_msg(aal_linear_backward(m->dyt2, m->xt2, m->w, m->dxt2, m->dw, m->db, &err) ==
                AAL_OK, "%s", err.msg);
  memcpy(m->dxt->data, m->dxt2->data, m->dxt2->size * sizeof(double));
  poison(m->dx);
  OK(aal_transpose(m->dxt, m->dx, &err_));
  memcpy(g, m->dx->data, m->dx->size * sizeof(double));
}

START_TEST(transpose_and_token_mixing)
{
  gsl_rng *r = test_rng(11);
  tp_ctx k = {tn(3, 2, 3, 4, 0), tn(3, 2, 4, 3, 0), tn(3, 2, 4, 3, 0), tn(3, 2, 3, 4, 0)};
  fill_fd(r, k.x, -1.0, 1.0);
  const layer_fd L = {k.x->data, k.x->size, k.y->size, tp_fwd, tp_vjp, &k};
  check_jacobian(&L, "transpose 2x3x4 full Jacobian");
  aal_tensor_release(k.x);
  aal_tensor_release(k.y);
  aal_tensor_release(k.dy);
  aal_tensor_release(k.dx);

  const long b = 2, t = 6, d = 5;
  mix_ctx m = {tn(3, b, t, d, 0), tn(3, b, d, t, 0), tn(2, b * d, t, 0, 0), tn(2, t, t, 0, 0),
               tn(1, t, 0, 0, 0), tn(3, b, d, t, 0), tn(2, b * d, t, 0, 0), tn(3, b, t, d, 0),
               tn(3, b, t, d, 0), tn(3, b, d, t, 0), tn(2, b * d, t, 0, 0), tn(3, b, d, t, 0),
               tn(2, b * d, t, 0, 0), tn(3, b, t, d, 0), tn(2, t, t, 0, 0), tn(1, t, 0, 0, 0)};
  fill_fd(r, m.x, -1.0, 1.0);
  fill_fd(r, m.w, -1.0, 1.0);
  fill_fd(r, m.b, -1.0, 1.0);
  ck_assert_int_eq(mix_run(&m), AAL_OK);
  double *want = aal_test_xmalloc(m.y->size * sizeof(double)), *bound = aal_test_xmalloc(m.y->size * sizeof(double));
  for (long bb = 0; bb < b; bb++)
    for (long tt = 0; tt < t; tt++)
      for (long dd = 0; dd < d; dd++) {
        long double acc = m.b->data[tt];
        double mag = fabs(m.b->data[tt]);
        for (long s = 0; s < t; s++) {
          acc += (long double)m.w->data[tt * t + s] * m.x->data[(bb * t + s) * d + dd];
          mag += fabs(m.w->data[tt * t + s] * m.x->data[(bb * t + s) * d + dd]);
        }
        want[(bb * t + tt) * d + dd] = (double)acc;
        bound[(bb * t + tt) * d + dd] = 2.0 * (t + 1) * U * mag;
      }
  expect_close("token mixing = transpose + linear + transpose", m.y->data, want, bound, 0.0,
               m.y->size);
  const layer_fd LM = {m.x->data, m.x->size, m.y->size, mix_fwd, mix_vjp, &m};
  check_jacobian(&LM, "token mixing 2x6x5 full Jacobian in x");
  free(want);
  free(bound);
  aal_tensor *all[] = {m.x, m.xt, m.xt2, m.w, m.b, m.yt, m.yt2, m.y, m.dy, m.dyt, m.dyt2,
                       m.dxt, m.dxt2, m.dx, m.dw, m.db};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ bad arguments */

START_TEST(bad_arguments)
{
  aal_error err;
  aal_tensor *x = tn(2, 3, 8, 0, 0), *y = tn(2, 3, 8, 0, 0), *g = tn(1, 8, 0, 0, 0),
             *b = tn(1, 8, 0, 0, 0), *g7 = tn(1, 7, 0, 0, 0), *mean = tn(1, 3, 0, 0, 0),
             *inv = tn(1, 3, 0, 0, 0), *m4 = tn(1, 4, 0, 0, 0), *y2 = tn(2, 3, 7, 0, 0);
  aal_tensor_fill(x, 0.5);
  aal_tensor_fill(g, 1.0);
  /* layer norm */
  EXPECT(AAL_EINVAL, "layernorm forward", "eps",
         aal_layernorm_forward(x, g, b, 0.0, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, "layernorm forward", "eps",
         aal_layernorm_forward(x, g, b, -1e-5, y, mean, inv, &err));
  EXPECT(AAL_EINVAL, "layernorm forward", "eps",
         aal_layernorm_forward(x, g, b, NAN, y, mean, inv, &err));
  EXPECT(AAL_ESHAPE, "layernorm forward", "gamma",
         aal_layernorm_forward(x, g7, b, 1e-5, y, mean, inv, &err));
  EXPECT(AAL_ESHAPE, "layernorm forward", "mean",
         aal_layernorm_forward(x, g, b, 1e-5, y, m4, inv, &err));
  EXPECT(AAL_ESHAPE, "layernorm forward", "y",
         aal_layernorm_forward(x, g, b, 1e-5, y2, mean, inv, &err));
  EXPECT(AAL_EINVAL, "layernorm forward", "x",
         aal_layernorm_forward(NULL, g, b, 1e-5, y, mean, inv, &err));
  ck_assert_int_eq(aal_layernorm_forward(x, g, b, 1e-5, y, mean, inv, &err), AAL_OK);
  aal_tensor_fill(inv, -1.0);
  aal_tensor *dg = tn(1, 8, 0, 0, 0), *db = tn(1, 8, 0, 0, 0), *dx = tn(2, 3, 8, 0, 0);
  EXPECT(AAL_ENUMERIC, "layernorm backward", "invstd",
         aal_layernorm_backward(y, x, g, mean, inv, dx, dg, db, &err));
  EXPECT(AAL_ESHAPE, "layernorm backward", "dgamma",
         aal_layernorm_backward(y, x, g, mean, inv, dx, g7, db, &err));
  /* GELU, softmax */
  EXPECT(AAL_ESHAPE, "gelu forward", "y", aal_gelu_forward(x, y2, &err));
  EXPECT(AAL_ESHAPE, "gelu backward", "dx", aal_gelu_backward(y, x, y2, &err));
  EXPECT(AAL_ESHAPE, "softmax forward", "y", aal_softmax_forward(x, y2, &err));
  EXPECT(AAL_EINVAL, "softmax backward", "share", aal_softmax_backward(x, y, y, &err));
  /* attention */
  aal_tensor *q = tn(3, 2, 3, 6, 0), *o = tn(3, 2, 3, 6, 0), *p = tn(4, 2, 2, 3, 3),
             *p3 = tn(4, 2, 3, 3, 3), *q5 = tn(3, 2, 3, 5, 0);
  EXPECT(AAL_EINVAL, "attention forward", "heads",
         aal_attention_forward(q, q, q, 4, p, o, &err)); /* 4 does not divide 6 */
  EXPECT(AAL_EINVAL, "attention forward", "heads",
         aal_attention_forward(q, q, q, 0, p, o, &err));
  EXPECT(AAL_ESHAPE, "attention forward", "p", aal_attention_forward(q, q, q, 3, p, o, &err));
  EXPECT(AAL_ESHAPE, "attention forward", "k", aal_attention_forward(q, q5, q, 2, p, o, &err));
  EXPECT(AAL_EINVAL, "attention forward", "share",
         aal_attention_forward(q, q, q, 3, p3, q, &err));
  ck_assert_int_eq(aal_attention_forward(q, q, q, 3, p3, o, &err), AAL_OK);
  EXPECT(AAL_EINVAL, "attention backward", "share",
         aal_attention_backward(o, q, q, q, p3, 3, q, o, o, &err));
  /* embedding, patchify, transpose */
  aal_tensor *tab = tn(2, 5, 6, 0, 0), *pos = tn(2, 3, 6, 0, 0), *pos4 = tn(2, 4, 6, 0, 0);
  int ids[6] = {0, 1, 2, 3, 4, 0};
  ck_assert_int_eq(aal_embed_forward(ids, tab, pos, q, &err), AAL_OK);
  ids[4] = 5;
  EXPECT(AAL_EINVAL, "embed forward", "outside", aal_embed_forward(ids, tab, pos, q, &err));
  ids[4] = -1;
  EXPECT(AAL_EINVAL, "embed backward", "outside", aal_embed_backward(ids, q, tab, pos, &err));
  ids[4] = 1;
  EXPECT(AAL_ESHAPE, "embed forward", "pos", aal_embed_forward(ids, tab, pos4, q, &err));
  EXPECT(AAL_EINVAL, "embed forward", "ids", aal_embed_forward(NULL, tab, pos, q, &err));
  aal_tensor *img = tn(4, 2, 3, 8, 6), *pt = tn(3, 2, 12, 12, 0), *pt_bad = tn(3, 2, 12, 13, 0);
  ck_assert_int_eq(aal_patchify_forward(img, 2, pt, &err), AAL_OK);
  EXPECT(AAL_EINVAL, "patchify forward", "divisible", aal_patchify_forward(img, 4, pt, &err));
  EXPECT(AAL_EINVAL, "patchify forward", "patch size", aal_patchify_forward(img, 0, pt, &err));
  EXPECT(AAL_ESHAPE, "patchify backward", "patches",
         aal_patchify_backward(pt_bad, 2, img, &err));
  EXPECT(AAL_ESHAPE, "transpose", "y", aal_transpose(q, q, &err));
  EXPECT(AAL_ESHAPE, "transpose", "x", aal_transpose(x, y, &err)); /* rank 2 */
  aal_tensor *all[] = {x, y, g, b, g7, mean, inv, m4, y2, q, o, p, p3, q5, tab, pos, pos4,
                       img, pt, pt_bad, dg, db, dx};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
}
END_TEST

int main(void)
{
  g_seed = fd_test_seed();
  Suite *s = suite_create("transformer layers");
  TCase *tc = tcase_create("transformer layers");
  tcase_add_test(tc, layernorm_fd);
  tcase_add_test(tc, layernorm_closed_form);
  tcase_add_test(tc, gelu_fd);
  tcase_add_test(tc, gelu_closed_form);
  tcase_add_test(tc, softmax_fd);
  tcase_add_test(tc, softmax_closed_form);
  tcase_add_test(tc, attention_fd);
  tcase_add_test(tc, attention_closed_form);
  tcase_add_test(tc, embed_fd_and_scatter);
  tcase_add_test(tc, patchify_fd_and_conv);
  tcase_add_test(tc, transpose_and_token_mixing);
  tcase_add_test(tc, bad_arguments);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
