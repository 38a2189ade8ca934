/* Theorem 1 and the learning indicator (SPEC section 2): LI closed forms, lambda_max,
 * the descent lemma at every step, and what LI >= 0 does and does not imply.
 *
 * Inputs are Gaussian from GSL mt19937 streams seeded from the printed suite seed
 * (AAL_TEST_SEED); property tests run many instances, instance k seeded with seed + k.
 * Tolerances are multiples of DBL_EPSILON with the reason next to each. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "tests/fdcheck.h"
#include "sim/layers/li.h"
#include "theory/theory.h"

static unsigned long g_seed;

static gsl_rng *rng_new(unsigned long offset)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(r);
  gsl_rng_set(r, g_seed + offset);
  return r;
}

static void fill_gauss(gsl_rng *rng, double *x, size_t n, double sd)
{
  for (size_t i = 0; i < n; i++)
    x[i] = gsl_ran_gaussian(rng, sd);
}

static double aal_norm2_test(const double *x, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += x[i] * x[i];
  return s;
}

static const aal_theory_dims test_dims[AAL_THEORY_NKINDS] = {{4, 12, 1}, {3, 12, 4}, {4, 10, 8},
                                                            {4, 10, 1}};

/* ------------------------------------------------------------------ LI */

START_TEST(test_li_exact_cases)
{
  enum { S = 5, N = 37 };
  gsl_rng *rng = rng_new(1);
  double h[S * N], r[S * N], li[S];
  unsigned char valid[S];
  size_t zn = 99;
  aal_error err;
  fill_gauss(rng, h, S * N, 1.0);
  /* r = h: rh = rr = hh bit for bit, LI = 2*1 - 1 = 1 exactly. */
  memcpy(r, h, sizeof h);
  ck_assert_int_eq(aal_li_batch(h, r, S, N, li, valid, &zn, &err), AAL_OK);
  ck_assert_uint_eq(zn, 0);
  for (int s = 0; s < S; s++)
    ck_assert(valid[s] == 1 && li[s] == 1.0);
  /* r = -h: rh = -hh exactly (rounding is symmetric), LI = -2 - 1 = -3 exactly. */
  for (int i = 0; i < S * N; i++)
    r[i] = -h[i];
  ck_assert_int_eq(aal_li_batch(h, r, S, N, li, valid, &zn, &err), AAL_OK);
  for (int s = 0; s < S; s++)
    ck_assert_msg(li[s] == -3.0, "sample %d: %.17g", s, li[s]);
  /* Far from 1: the power-of-two scaling keeps the sums away from underflow/overflow,
   * so the exact cases stay exact at 1e-200 and 1e200. */
  const double scales[2] = {1e-200, 1e200};
  for (int k = 0; k < 2; k++) {
    double hs[N], rs[N];
    for (int i = 0; i < N; i++) {
      hs[i] = h[i] * scales[k];
      rs[i] = -hs[i];
    }
    ck_assert_int_eq(aal_li_batch(hs, rs, 1, N, li, valid, &zn, &err), AAL_OK);
    ck_assert(valid[0] == 1 && li[0] == -3.0);
    ck_assert_int_eq(aal_li_batch(hs, hs, 1, N, li, valid, &zn, &err), AAL_OK);
    ck_assert(li[0] == 1.0);
  }
  /* r = alpha h with alpha a power of two: every product is exact up to the same
   * rounding as in hh, so LI = 2 alpha - alpha^2 exactly. */
  const double pow2[4] = {0.5, 0.25, 2.0, -0.5};
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < N; i++)
      r[i] = pow2[k] * h[i];
    ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
    ck_assert_msg(li[0] == 2 * pow2[k] - pow2[k] * pow2[k], "alpha %g: %.17g", pow2[k], li[0]);
  }
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_li_alpha_and_orthogonal)
{
  enum { N = 29 };
  gsl_rng *rng = rng_new(2);
  double h[N], r[N], li[1];
  unsigned char valid[1];
  size_t zn;
  aal_error err;
  for (int trial = 0; trial < 200; trial++) {
    fill_gauss(rng, h, N, 1.0);
    const double alpha = gsl_ran_flat(rng, -3.0, 3.0);
    for (int i = 0; i < N; i++)
      r[i] = alpha * h[i];
    ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
    /* rh and rr are N-term sums of products carrying one extra rounding (alpha h_i):
     * relative error <= (N + 2) u each (u = DBL_EPSILON/2), so the error of
     * 2 rh/hh - rr/hh is <= (N + 3) DBL_EPSILON (2|alpha| + alpha^2) to first order. */
    const double want = 2 * alpha - alpha * alpha;
    const double tol = (N + 3) * DBL_EPSILON * (2 * fabs(alpha) + alpha * alpha);
    ck_assert_msg(fabs(li[0] - want) <= tol, "alpha %.17g: LI %.17g want %.17g (tol %g)", alpha,
                  li[0], want, tol);

    /* parallel and parallel_hi: the two roots alpha = 1 -+ sqrt(1 - t) of 2a - a^2 = t
     * (|alpha| <= 1 + sqrt(3) for t >= -2), the same budget plus the rounding of alpha */
    const double tp = gsl_ran_flat(rng, -2.0, 1.0);
    for (int hi = 0; hi < 2; hi++) {
      const aal_theory_rspec ps = {hi ? AAL_THEORY_PARALLEL_HI : AAL_THEORY_PARALLEL, tp, 0, 0, 0};
      ck_assert_int_eq(aal_theory_make_r(&ps, h, N, rng, r, &err), AAL_OK);
      ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
      const double tol_p = (N + 5) * DBL_EPSILON * (2 * 2.75 + 2.75 * 2.75);
      ck_assert_msg(fabs(li[0] - tp) <= tol_p, "%s target %.17g: LI %.17g", hi ? "hi" : "lo", tp,
                    li[0]);
      /* the root: r_0/h_0 below 1 for parallel, above for parallel_hi */
      ck_assert(hi ? r[0] / h[0] >= 1.0 : r[0] / h[0] <= 1.0);
    }

    /* Orthogonal component of chosen norm: LI = 1 - ||o||^2/||h||^2.  make_r projects
     * twice, leaving h.o at rounding level ~ N u ||h|| ||o||; same error budget with
     * (2|c| + ||r||^2/||h||^2), c = 1. */
    const double target = gsl_ran_flat(rng, -2.0, 1.0);
    aal_theory_rspec spec = {AAL_THEORY_ORTHO, target, 0, 0, 0};
    ck_assert_int_eq(aal_theory_make_r(&spec, h, N, rng, r, &err), AAL_OK);
    ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
    const double tol_o = 4 * (N + 3) * DBL_EPSILON * (2 + (2 - target));
    ck_assert_msg(fabs(li[0] - target) <= tol_o, "ortho target %.17g: LI %.17g", target, li[0]);
    /* The same LI for any direction of the perturbation (STALE: r = h - g). */
    spec.family = AAL_THEORY_STALE;
    ck_assert_int_eq(aal_theory_make_r(&spec, h, N, rng, r, &err), AAL_OK);
    ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
    const double tol_s = 4 * (N + 3) * DBL_EPSILON * (2 * 2.5 + (2 - target) * 3);
    ck_assert_msg(fabs(li[0] - target) <= tol_s, "stale target %.17g: LI %.17g", target, li[0]);
  }
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_li_asa_closed_form)
{
  /* SPEC section 4 with lr_expansion k: x drawn here (not by the library), h = x + eps b
   * with b the forward bits, r = k eps d with d the backward decoding:
   *   PM1    x ~ N(0, s^2), b = d = +-1:          r^T h = k eps (||x||_1 + eps n)
   *   01     x = relu(z), b = d = {0, 1}:          r^T h = k eps (||x||_1 + eps nnz)
   *   MIXED  x = relu(z), b = {0, 1}, d = +-1:     r^T h = k eps (||x||_1 + eps nnz)
   * (where x = 0 after a ReLU, h = 0, so d's -1 entries add nothing to r^T h), and
   * ||r||^2 = k^2 eps^2 (n, nnz, n): LI = (2 r^T h - ||r||^2)/||h||^2.  The problem
   * generator's inputs are checked against the same rule, and the LI against the
   * closed form from x alone.  At k = 1 and PM1 this is SPEC's
   * (2 eps ||x||_1 + eps^2 n)/||x + eps s||^2 > 0. */
  enum { N = 50 };
  gsl_rng *rng = rng_new(3);
  double x[N], h[N], r[N], li[1];
  unsigned char valid[1];
  size_t zn;
  aal_error err;
  const double eps_list[3] = {0.01, 0.3, 2.0}, k_list[3] = {1.0, 100.0, 7.0};
  for (int dec = 0; dec < AAL_THEORY_NDECODINGS; dec++)
    for (int q = 0; q < 3; q++) {
      const double eps = eps_list[q], kx = k_list[q];
      const int relu = dec != AAL_THEORY_DECODE_PM1;
      double l1 = 0.0, hh = 0.0, nnz = 0.0;
      fill_gauss(rng, x, N, 1.0);
      for (int i = 0; i < N; i++) {
        if (relu && x[i] < 0)
          x[i] = 0.0;
        const double bit = x[i] > 0 ? 1.0 : relu ? 0.0 : -1.0;
        h[i] = x[i] + eps * bit;
        l1 += fabs(x[i]);
        hh += h[i] * h[i];
        nnz += x[i] > 0;
      }
      const aal_theory_rspec spec = {AAL_THEORY_SIGN, 0, eps, kx, (aal_theory_decoding)dec};
      ck_assert_int_eq(aal_theory_make_r(&spec, h, N, NULL, r, &err), AAL_OK);
      ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
      const double nb = dec == AAL_THEORY_DECODE_PM1 ? N : nnz;
      const double nr = dec == AAL_THEORY_DECODE_01 ? nnz : N;
      const double rh = kx * eps * (l1 + eps * nb), rr = kx * kx * eps * eps * nr;
      const double want = (2 * rh - rr) / hh;
      /* n-term sums of terms bounded by (2|rh| + rr): (N + 4) u relative to that each */
      const double tol = 2 * (N + 4) * DBL_EPSILON * (2 * fabs(rh) + rr) / hh;
      ck_assert_msg(fabs(li[0] - want) <= tol, "%s eps %g k %g: %.17g vs %.17g",
                    aal_theory_decoding_name((aal_theory_decoding)dec), eps, kx, li[0], want);
      if (kx == 1.0 && dec == AAL_THEORY_DECODE_PM1)
        ck_assert(li[0] > 0.0);
    }
  /* the generator: post-ReLU inputs are >= 0 with h_i in {0} or > eps, PM1 has |h_i| >= eps */
  for (int dec = 0; dec < AAL_THEORY_NDECODINGS; dec++) {
    const aal_theory_input in = {0.5, 0.01, (aal_theory_decoding)dec};
    const aal_theory_dims dims = {3, 8, 20};
    aal_theory_problem p;
    ck_assert_int_eq(aal_theory_problem_make(AAL_THEORY_LSQ, &dims, &in, rng, &p, &err), AAL_OK);
    size_t zeros = 0;
    for (size_t i = 0; i < p.batch * p.n; i++) {
      const double v = p.H[i];
      if (dec == AAL_THEORY_DECODE_PM1)
        ck_assert(fabs(v) >= 0.01);
      else
        ck_assert(v == 0.0 || v > 0.01);
      zeros += v == 0.0;
    }
    ck_assert(dec == AAL_THEORY_DECODE_PM1 ? zeros == 0 : zeros > 0);
    aal_theory_problem_free(&p);
  }
  const aal_theory_input bad = {0.0, 0.01, AAL_THEORY_DECODE_PM1};
  aal_theory_problem p;
  ck_assert_int_eq(aal_theory_problem_make(AAL_THEORY_LSQ1, &test_dims[0], &bad, rng, &p, &err),
                   AAL_EINVAL);
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_li_zero_norm_and_errors)
{
  enum { S = 4, N = 6 };
  gsl_rng *rng = rng_new(4);
  double h[S * N], r[S * N];
  double li[S] = {12345.0, 12345.0, 12345.0, 12345.0}; /* poison: must stay for invalid */
  unsigned char valid[S] = {7, 7, 7, 7};
  size_t zn = 0;
  aal_error err;
  fill_gauss(rng, h, S * N, 1.0);
  fill_gauss(rng, r, S * N, 1.0);
  for (int i = 0; i < N; i++)
    h[1 * N + i] = h[3 * N + i] = 0.0; /* r of those samples is not zero */
  ck_assert_int_eq(aal_li_batch(h, r, S, N, li, valid, &zn, &err), AAL_OK);
  ck_assert_uint_eq(zn, 2);
  ck_assert(valid[0] == 1 && valid[1] == 0 && valid[2] == 1 && valid[3] == 0);
  ck_assert(li[1] == 12345.0 && li[3] == 12345.0);
  ck_assert(isfinite(li[0]) && li[0] != 12345.0 && isfinite(li[2]));
  /* a tiny but non-zero h is a sample like any other (no epsilon, no underflow) */
  for (int i = 0; i < N; i++) {
    h[1 * N + i] = 1e-310 * (i + 1); /* subnormal */
    r[1 * N + i] = -h[1 * N + i];
  }
  ck_assert_int_eq(aal_li_batch(h, r, S, N, li, valid, &zn, &err), AAL_OK);
  ck_assert_uint_eq(zn, 1);
  ck_assert(valid[1] == 1 && li[1] == -3.0);
  /* r 1e300 times larger than h: the LI (~ -1e600) does not exist in double */
  for (int i = 0; i < N; i++)
    r[1 * N + i] = 1e-10 * (i + 1);
  ck_assert_int_eq(aal_li_batch(h, r, S, N, li, valid, &zn, &err), AAL_ENUMERIC);
  for (int i = 0; i < N; i++)
    r[1 * N + i] = -h[1 * N + i];
  /* NaN inputs are reported, not valued */
  h[2 * N + 3] = NAN;
  ck_assert_int_eq(aal_li_batch(h, r, S, N, li, valid, &zn, &err), AAL_ENUMERIC);
  ck_assert(strstr(err.msg, "sample 2") != NULL);
  ck_assert_int_eq(aal_li_batch(NULL, r, S, N, li, valid, &zn, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_li_batch(h, r, S, 0, li, valid, &zn, &err), AAL_EINVAL);

  /* summary: 1..100 valid plus three invalid entries */
  double v[103];
  unsigned char ok[103];
  for (int i = 0; i < 103; i++) {
    v[i] = i < 100 ? (double)(100 - i) : NAN; /* invalid entries are never read */
    ok[i] = i < 100;
  }
  aal_li_summary s;
  ck_assert_int_eq(aal_li_summarize(v, ok, 103, &s, &err), AAL_OK);
  ck_assert_uint_eq(s.count, 100);
  ck_assert_uint_eq(s.zero_norm, 3);
  ck_assert(s.min == 1.0 && s.max == 100.0 && s.median == 50.5 && s.mean == 50.5);
  /* GSL interpolates: index 0.05 * 99 = 4.95 between 5 and 6 */
  ck_assert(fabs(s.p05 - 5.95) <= 8 * DBL_EPSILON * 6);
  ck_assert_int_eq(aal_li_summarize(v, ok, 0, &s, &err), AAL_OK);
  ck_assert(s.count == 0 && isnan(s.median));
  ck_assert_int_eq(aal_li_summarize(v, NULL, 103, &s, &err), AAL_ENUMERIC);
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------------ lambda_max */

/* Rayleigh quotient after power iteration on A = H^T H (n x n), never forming A. */
static double power_lambda(const double *H, size_t B, size_t n, gsl_rng *rng)
{
  double *v = malloc(n * sizeof *v), *w = malloc(B * sizeof *w);
  ck_assert(v != NULL && w != NULL);
  fill_gauss(rng, v, n, 1.0);
  double lambda = 0.0;
  for (int it = 0; it < 20000; it++) {
    double vv = 0.0;
    for (size_t j = 0; j < n; j++)
      vv += v[j] * v[j];
    for (size_t j = 0; j < n; j++)
      v[j] /= sqrt(vv);
    double ww = 0.0;
    for (size_t b = 0; b < B; b++) {
      w[b] = 0.0;
      for (size_t j = 0; j < n; j++)
        w[b] += H[b * n + j] * v[j];
      ww += w[b] * w[b];
    }
    lambda = ww; /* v^T A v with ||v|| = 1 */
    for (size_t j = 0; j < n; j++) {
      v[j] = 0.0;
      for (size_t b = 0; b < B; b++)
        v[j] += H[b * n + j] * w[b];
    }
  }
  free(v);
  free(w);
  return lambda;
}

START_TEST(test_lambda_max)
{
  aal_error err;
  gsl_rng *rng = rng_new(5);
  /* diagonal Gram: rows are multiples of distinct unit vectors */
  double H[6 * 9];
  memset(H, 0, sizeof H);
  const double d[6] = {0.5, -3.0, 1.25, 2.0, -0.75, 1.0};
  for (int b = 0; b < 6; b++)
    H[b * 9 + b + 2] = d[b];
  double lam;
  ck_assert_int_eq(aal_theory_gram_lambda_max(H, 6, 9, &lam, &err), AAL_OK);
  /* eigen solver: backward stable, error <= c k u ||A|| with k = 6; c = 8 */
  ck_assert_msg(fabs(lam - 9.0) <= 8 * 6 * DBL_EPSILON * 9.0, "diag: %.17g", lam);
  /* rank one H = u v^T: lambda = ||u||^2 ||v||^2, through both Gram sizes */
  for (int shape = 0; shape < 2; shape++) {
    const size_t B = shape ? 11 : 5, n = shape ? 4 : 13;
    double u[11], v[13], R[11 * 13];
    fill_gauss(rng, u, B, 1.0);
    fill_gauss(rng, v, n, 1.0);
    double uu = 0, vv = 0;
    for (size_t i = 0; i < B; i++)
      uu += u[i] * u[i];
    for (size_t j = 0; j < n; j++)
      vv += v[j] * v[j];
    for (size_t i = 0; i < B; i++)
      for (size_t j = 0; j < n; j++)
        R[i * n + j] = u[i] * v[j];
    ck_assert_int_eq(aal_theory_gram_lambda_max(R, B, n, &lam, &err), AAL_OK);
    const size_t k = B < n ? B : n;
    ck_assert_msg(fabs(lam - uu * vv) <= 8 * (k + B + n) * DBL_EPSILON * uu * vv,
                  "rank one %zux%zu: %.17g vs %.17g", B, n, lam, uu * vv);
  }
  /* random H against power iteration (its Rayleigh quotient converges to lambda_max
   * from below at rate (l2/l1)^(2k); 20000 iterations reach rounding level for any
   * gap > 1e-3, and the test allows 1e-10 relative, far above rounding) */
  const size_t shapes[3][2] = {{4, 12}, {12, 4}, {8, 10}};
  for (int s = 0; s < 3; s++) {
    const size_t B = shapes[s][0], n = shapes[s][1];
    double X[12 * 12];
    fill_gauss(rng, X, B * n, 1.0);
    ck_assert_int_eq(aal_theory_gram_lambda_max(X, B, n, &lam, &err), AAL_OK);
    const double pw = power_lambda(X, B, n, rng);
    ck_assert_msg(fabs(lam - pw) <= 1e-10 * lam, "%zux%zu: eigen %.17g power %.17g", B, n, lam,
                  pw);
    ck_assert(pw <= lam * (1 + 64 * DBL_EPSILON)); /* a Rayleigh quotient never exceeds it */
  }
  ck_assert_int_eq(aal_theory_gram_lambda_max(NULL, 2, 2, &lam, &err), AAL_EINVAL);
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------------ training helpers */

typedef struct {
  aal_theory_problem p;
  double *W0;
} instance;

static void instance_make(instance *in, aal_theory_kind kind, double asa_eps, gsl_rng *rng)
{
  aal_error err;
  ck_assert_int_eq(aal_theory_problem_random(kind, &test_dims[kind], asa_eps, rng, &in->p, &err),
                   AAL_OK);
  in->W0 = malloc(in->p.m * in->p.n * sizeof *in->W0);
  ck_assert_ptr_nonnull(in->W0);
  fill_gauss(rng, in->W0, in->p.m * in->p.n, 1.0 / sqrt((double)in->p.n));
}

static void instance_free(instance *in)
{
  aal_theory_problem_free(&in->p);
  free(in->W0);
}

static void train(const instance *in, const aal_theory_rspec *spec, size_t steps, double eta,
                  double L_check, gsl_rng *rng, aal_theory_result *res, aal_theory_step *trace)
{
  aal_error err;
  const aal_theory_train_opts o = {steps, eta, L_check};
  ck_assert_int_eq(aal_theory_train(&in->p, in->W0, spec, &o, rng, res, trace, &err), AAL_OK);
}

static const aal_theory_rspec natural[4] = {{AAL_THEORY_SIGN, 0, 0.01, 1.0, 0},
                                            {AAL_THEORY_SIGN, 0, 0.01, 100.0, 0},
                                            {AAL_THEORY_NOISE, 0, 0, 0, 0},
                                            {AAL_THEORY_FLIP, 0, 0, 0, 0}};

/* The spec of family f (0..7: the four targetable ones with target t, then natural[]). */
static aal_theory_rspec family_spec(int f, double t)
{
  if (f < 4)
    return (aal_theory_rspec){(aal_theory_family)f, t, 0, 0, 0};
  return natural[f - 4];
}

/* ------------------------------------------------------------------ L of each testbed */

/* L against independent computations: ||h||^2 (least squares) and ||h||^2/2 (softmax,
 * the Popoviciu bound of softmax.c) for one sample, power iteration over B (and 2B) for
 * the batches.  A wrong L changes eta = 1/L, which the lemma check alone does not see
 * when L is too large (a larger L only loosens (D)). */
START_TEST(test_problem_L)
{
  gsl_rng *rng = rng_new(6);
  for (int kind = 0; kind < AAL_THEORY_NKINDS; kind++)
    for (int k = 0; k < 5; k++) {
      instance in;
      instance_make(&in, (aal_theory_kind)kind, 0.0, rng);
      const aal_theory_problem *p = &in.p;
      double want;
      if (p->batch == 1) {
        double hh = 0.0;
        for (size_t j = 0; j < p->n; j++)
          hh += p->H[j] * p->H[j];
        want = kind == AAL_THEORY_SOFTMAX1 ? hh / 2 : hh;
        /* the same n-term sum: <= n u apart whatever the order */
        ck_assert_msg(fabs(p->L - want) <= p->n * DBL_EPSILON * want, "%s: L %.17g want %.17g",
                      aal_theory_kind_name((aal_theory_kind)kind), p->L, want);
      } else {
        want = power_lambda(p->H, p->batch, p->n, rng) / (double)p->batch;
        if (kind == AAL_THEORY_SOFTMAX)
          want /= 2;
        ck_assert_msg(fabs(p->L - want) <= 1e-10 * want, "%s: L %.17g want %.17g",
                      aal_theory_kind_name((aal_theory_kind)kind), p->L, want);
      }
      instance_free(&in);
    }
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------------ the descent lemma */

/* (D) is the descent lemma: it must hold at every step for every r and every step
 * size, LI < 0 included, so it tests the code (L an upper bound, the loss, the update:
 * see test_descent_check_can_fail for the mutants it catches), never the rule.  The
 * one-sample least-squares closed form f (1 - eta ||h||^2 c)^2 is checked at every
 * step too: it catches an update that is not -eta delta r^T.  200 instances per
 * (problem, family), 30 steps each, eta in {1/2, 1, 3/2} / L. */
START_TEST(test_descent_inequality_always)
{
  enum { SEEDS = 200, STEPS = 30 };
  const double targets[5] = {-1.0, -0.5, 0.0, 0.5, 1.0};
  const double etas[3] = {0.5, 1.0, 1.5};
  size_t runs = 0, steps = 0;
  for (int kind = 0; kind < AAL_THEORY_NKINDS; kind++)
    for (int f = 0; f < 8; f++)
      for (int k = 0; k < SEEDS; k++) {
        gsl_rng *rng = rng_new(1000 + (unsigned long)k);
        const aal_theory_rspec spec = family_spec(f, targets[k % 5]);
        instance in;
        instance_make(&in, (aal_theory_kind)kind,
                      spec.family == AAL_THEORY_SIGN ? spec.eps : 0.0, rng);
        const double eta = etas[(k / 5) % 3];
        aal_theory_result res;
        train(&in, &spec, STEPS, eta, 0.0, rng, &res, NULL);
        ck_assert_msg(res.violations == 0, "%s %s seed %lu eta %g/L: %zu violations",
                      aal_theory_kind_name((aal_theory_kind)kind),
                      aal_theory_family_name(spec.family), g_seed + 1000 + k, eta,
                      res.violations);
        ck_assert_msg(res.exact_failures == 0, "%s %s seed %lu: closed form failed %zu times",
                      aal_theory_kind_name((aal_theory_kind)kind),
                      aal_theory_family_name(spec.family), g_seed + 1000 + k,
                      res.exact_failures);
        runs++;
        steps += res.steps;
        instance_free(&in);
        gsl_rng_free(rng);
      }
  fprintf(stderr, "descent lemma: %zu runs, %zu steps, no violation\n", runs, steps);
}
END_TEST

/* Softmax regression at W: the gradient G (m x n) and the curvature D:Hess:D along D,
 * naively from the definitions (softmax.c): 1/B sum_b (D h_b)^T (diag(p_b) - p_b p_b^T)
 * (D h_b), p_b = softmax(W h_b). */
static double softmax_grad_curv(const aal_theory_problem *p, const double *W, const double *D,
                                double *G)
{
  const size_t C = p->m, n = p->n, B = p->batch;
  double z[16], pr[16], u[16], curv = 0.0;
  ck_assert(C <= 16);
  memset(G, 0, C * n * sizeof *G);
  for (size_t b = 0; b < B; b++) {
    const double *h = p->H + b * n;
    double zmax = -INFINITY, se = 0.0;
    for (size_t c = 0; c < C; c++) {
      z[c] = 0.0;
      u[c] = 0.0;
      for (size_t j = 0; j < n; j++) {
        z[c] += W[c * n + j] * h[j];
        if (D != NULL)
          u[c] += D[c * n + j] * h[j];
      }
      zmax = fmax(zmax, z[c]);
    }
    for (size_t c = 0; c < C; c++)
      se += exp(z[c] - zmax);
    double pu = 0.0, puu = 0.0;
    for (size_t c = 0; c < C; c++) {
      pr[c] = exp(z[c] - zmax) / se;
      pu += pr[c] * u[c];
      puu += pr[c] * u[c] * u[c];
      const double d = pr[c] - ((int)c == p->labels[b] ? 1.0 : 0.0);
      for (size_t j = 0; j < n; j++)
        G[c * n + j] += d * h[j] / (double)B;
    }
    curv += (puu - pu * pu) / (double)B;
  }
  return curv;
}

/* The lemma check is not vacuous.  Least squares: with L underestimated by 4x, r = h
 * violates it at once (the lemma is an equality for r = h on one sample, and on a
 * batch along the top direction).  Softmax, where L is only a bound and can be far
 * above the curvature actually met: the step of r = h (eta = 0.01/L, short enough
 * that the curvature hardly changes along it) is checked with L_check = kappa/4 and
 * 4 kappa, kappa = D:Hess:D/||D||^2 the local curvature along the step D = -eta G:
 * the first must fail, the second hold, so the check resolves the curvature it is
 * given to within a factor of 16 (the logits move by <= 0.03, which changes the
 * softmax probabilities, and so kappa along the step, by a few per cent). */
START_TEST(test_descent_check_can_fail)
{
  gsl_rng *rng = rng_new(7);
  const aal_theory_rspec bp = {AAL_THEORY_PARALLEL, 1.0, 0, 0, 0};
  for (int kind = 0; kind < 2; kind++) {
    instance in;
    instance_make(&in, (aal_theory_kind)kind, 0.0, rng);
    aal_theory_result res;
    train(&in, &bp, 10, 1.0, in.p.L / 4.0, rng, &res, NULL);
    ck_assert_msg(res.violations > 0, "%s: a 4x too small L went unnoticed",
                  aal_theory_kind_name((aal_theory_kind)kind));
    instance_free(&in);
  }
  const aal_theory_kind soft[2] = {AAL_THEORY_SOFTMAX, AAL_THEORY_SOFTMAX1};
  for (int k = 0; k < 20; k++) {
    instance in;
    instance_make(&in, soft[k % 2], 0.0, rng);
    const size_t mn = in.p.m * in.p.n;
    double G[16 * 16], D[16 * 16];
    ck_assert(mn <= 256);
    softmax_grad_curv(&in.p, in.W0, NULL, G);
    const double eta = 0.01 / in.p.L;
    double dd = 0.0;
    for (size_t i = 0; i < mn; i++) {
      D[i] = -eta * G[i];
      dd += D[i] * D[i];
    }
    const double kappa = softmax_grad_curv(&in.p, in.W0, D, G) / dd;
    ck_assert(kappa > 0.0 && kappa <= in.p.L * (1 + 64 * DBL_EPSILON)); /* L bounds it */
    aal_theory_result res;
    aal_theory_step tr[1];
    train(&in, &bp, 1, 0.01, kappa / 4, rng, &res, tr);
    ck_assert_msg(!tr[0].held, "%s: L_check = kappa/4 = %g went unnoticed",
                  aal_theory_kind_name(in.p.kind), kappa / 4);
    train(&in, &bp, 1, 0.01, 4 * kappa, rng, &res, tr);
    ck_assert_msg(tr[0].held, "%s: L_check = 4 kappa = %g failed", aal_theory_kind_name(in.p.kind),
                  4 * kappa);
    instance_free(&in);
  }
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------------ Theorem 1 */

/* Smallest and largest non-zero eigenvalue of H H^T (B x B, B <= n). */
static void gram_extremes(const aal_theory_problem *p, double *lmin, double *lmax)
{
  const size_t B = p->batch, n = p->n;
  gsl_matrix *A = gsl_matrix_alloc(B, B);
  gsl_vector *ev = gsl_vector_alloc(B);
  gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc(B);
  ck_assert(A && ev && ws);
  for (size_t i = 0; i < B; i++)
    for (size_t j = 0; j < B; j++) {
      double s = 0;
      for (size_t t = 0; t < n; t++)
        s += p->H[i * n + t] * p->H[j * n + t];
      gsl_matrix_set(A, i, j, s);
    }
  gsl_eigen_symm(A, ev, ws);
  *lmin = INFINITY;
  *lmax = 0;
  for (size_t i = 0; i < B; i++) {
    const double e = gsl_vector_get(ev, i);
    *lmin = e < *lmin ? e : *lmin;
    *lmax = e > *lmax ? e : *lmax;
  }
  gsl_matrix_free(A);
  gsl_vector_free(ev);
  gsl_eigen_symm_free(ws);
}

/* (T) on its hypotheses: one sample (least squares and softmax), eta <= 1/L, every
 * family at targets over [-1, 1].  No step may raise the loss with LI >= 0 or fall short
 * of the guaranteed decrease (eta/2) LI ||grad f||^2.  The runs are inside the theorem
 * and every step is checked; the steps that are not at the rounding floor and have
 * LI >= 0 are counted, so that the check is seen to cover real descents. */
START_TEST(test_theorem_holds_on_its_hypotheses)
{
  enum { SEEDS = 60, STEPS = 40 };
  const double etas[3] = {0.25, 0.5, 1.0};
  const aal_theory_kind kinds[2] = {AAL_THEORY_LSQ1, AAL_THEORY_SOFTMAX1};
  aal_theory_step tr[STEPS];
  size_t covered = 0, checked = 0;
  for (int kk = 0; kk < 2; kk++)
    for (int f = 0; f < 8; f++)
      for (int k = 0; k < SEEDS; k++) {
        gsl_rng *rng = rng_new(5000 + (unsigned long)k);
        const aal_theory_rspec spec = family_spec(f, gsl_ran_flat(rng, -1.0, 1.0));
        instance in;
        instance_make(&in, kinds[kk], spec.family == AAL_THEORY_SIGN ? spec.eps : 0.0, rng);
        const double eta = etas[k % 3];
        aal_theory_result res;
        train(&in, &spec, STEPS, eta, 0.0, rng, &res, tr);
        ck_assert(res.in_theorem && !res.outside_theorem && res.theorem_steps == res.steps);
        ck_assert_msg(res.theorem_violations == 0, "%s %s seed %lu eta %g/L: %zu violations",
                      aal_theory_kind_name(kinds[kk]), aal_theory_family_name(spec.family),
                      g_seed + 5000 + k, eta, res.theorem_violations);
        for (size_t t = 0; t < res.steps; t++)
          covered += tr[t].li_min >= 0.0 && !tr[t].at_floor && tr[t].guaranteed > tr[t].allowance;
        checked += res.steps;
        instance_free(&in);
        gsl_rng_free(rng);
      }
  fprintf(stderr, "theorem: %zu steps checked, %zu with LI >= 0 and a resolved guarantee\n",
          checked, covered);
  ck_assert(covered > checked / 4);
}
END_TEST

/* The theorem check can fail, and its scope is enforced.
 * (a) L understated by 4 (eta = 4/L_true while the run believes eta = 1/L): with r = h
 *     the residual is multiplied by 1 - 4 = -3 per step, the loss by 9 although LI = 1:
 *     every step violates (T).
 * (b) L understated by 1.5: the residual is multiplied by -1/2, so the loss falls (to
 *     f/4) but the guaranteed decrease (eta/2) ||grad f||^2 = 1.5 f is impossible: every
 *     step violates the decrease part of (T) while no step rises.
 * (c) eta = 2.5/L with r = 0.9 h (LI = 0.99): the run is outside the theorem, nothing
 *     is checked, and every step raises the loss (residual times 1 - 2.25) with
 *     LI >= 0: all counted as outside_rose. */
START_TEST(test_theorem_check_can_fail_and_scope)
{
  gsl_rng *rng = rng_new(8);
  for (int k = 0; k < 10; k++) {
    enum { STEPS = 5 };
    instance in;
    instance_make(&in, AAL_THEORY_LSQ1, 0.0, rng);
    const aal_theory_rspec bp = {AAL_THEORY_PARALLEL, 1.0, 0, 0, 0};
    const double L = in.p.L;
    aal_theory_result res;
    in.p.L = L / 4;
    train(&in, &bp, STEPS, 1.0, 0.0, rng, &res, NULL);
    ck_assert(res.in_theorem && res.theorem_violations == STEPS && res.rose_steps == STEPS);
    in.p.L = L / 1.5;
    train(&in, &bp, STEPS, 1.0, 0.0, rng, &res, NULL);
    ck_assert(res.theorem_violations == STEPS && res.rose_steps == 0);
    in.p.L = L;
    const aal_theory_rspec near = {AAL_THEORY_PARALLEL, 0.99, 0, 0, 0};
    train(&in, &near, STEPS, 2.5, 0.0, rng, &res, NULL);
    ck_assert(!res.in_theorem && res.outside_theorem && res.theorem_steps == 0 &&
              res.theorem_violations == 0);
    ck_assert_uint_eq(res.outside_rose, STEPS);
    ck_assert(isnan(res.guaranteed_ratio) && isnan(res.guarantee_ratio_min));
    instance_free(&in);
  }
  gsl_rng_free(rng);
}
END_TEST

/* Convergence at the guaranteed rate, end to end (from the losses alone, not the
 * step bookkeeping).  One-sample least squares with LI >= 1/2 at every step (the
 * targetable families at targets in [1/2, 1]): (T) gives f_K <= prod (1 - LI_k) f_0
 * <= 2^-100 f_0 (8e-31) for K = 100; the test asks for 1e-25 f_0, above the rounding
 * floor of f (~ ((n+1) u ||W|| ||h||)^2 ~ 1e-28 for these sizes).  A wrong (too large)
 * L or a too small step fails it: with eta halved, r = 0.29 h gives (1 - 0.145)^200
 * = 2e-14.  Mini-batch least squares with r = alpha h (the update is alpha times the
 * gradient): the error in the row space of H contracts per eigenvalue lambda_i of H H^T
 * by |1 - alpha lambda_i/lambda_max|, so f_K <= rho^(2K) f_0, rho = max(|1 - alpha|,
 * 1 - alpha lambda_min/lambda_max); allowed: that times (1 + 1e-9) plus 1e-25 f_0. */
START_TEST(test_guaranteed_rate)
{
  enum { SEEDS = 100, STEPS = 100 };
  for (int k = 0; k < SEEDS; k++) {
    gsl_rng *rng = rng_new(6000 + (unsigned long)k);
    for (int f = 0; f < 4; f++) {
      const aal_theory_rspec spec = family_spec(f, 0.5 + 0.5 * gsl_rng_uniform(rng));
      instance in;
      instance_make(&in, AAL_THEORY_LSQ1, 0.0, rng);
      aal_theory_result res;
      train(&in, &spec, STEPS, 1.0, 0.0, rng, &res, NULL);
      ck_assert_msg(res.final_loss <= 1e-25 * res.initial_loss, "lsq1 %s seed %lu: %g -> %g",
                    aal_theory_family_name(spec.family), g_seed + 6000 + k, res.initial_loss,
                    res.final_loss);
      instance_free(&in);
    }
    for (int hi = 0; hi < 2; hi++) {
      const double t = 0.25 + 0.75 * gsl_rng_uniform(rng);
      const aal_theory_rspec spec = {hi ? AAL_THEORY_PARALLEL_HI : AAL_THEORY_PARALLEL, t, 0, 0, 0};
      const double alpha = hi ? 1 + sqrt(1 - t) : 1 - sqrt(1 - t);
      instance in;
      instance_make(&in, AAL_THEORY_LSQ, 0.0, rng);
      double lmin, lmax;
      gram_extremes(&in.p, &lmin, &lmax);
      const double rho = fmax(fabs(1 - alpha), 1 - alpha * lmin / lmax);
      aal_theory_result res;
      train(&in, &spec, STEPS, 1.0, 0.0, rng, &res, NULL);
      const double want = pow(rho, 2.0 * STEPS) * (1 + 1e-9) + 1e-25;
      ck_assert_msg(res.final_loss <= want * res.initial_loss, "lsq alpha %g seed %lu: ratio %g > %g",
                    alpha, g_seed + 6000 + k, res.final_loss / res.initial_loss, want);
      instance_free(&in);
    }
    gsl_rng_free(rng);
  }
}
END_TEST

/* ------------------------------------------------------------------ where LI is tight */

/* r = alpha h, one sample, eta = 1/||h||^2: the exact change is
 * ||delta||^2 (-c + c^2/2) = -(LI/2) ||delta||^2 (c = alpha), so the loss falls exactly
 * when LI > 0 and rises exactly when LI < 0; |LI| >= 0.02 keeps the sign well above the
 * rounding of the change (~ (n+1) u f). */
START_TEST(test_parallel_sign_is_exact)
{
  aal_theory_step tr[1];
  for (int k = 0; k < 400; k++) {
    gsl_rng *rng = rng_new(20000 + (unsigned long)k);
    double t;
    do
      t = gsl_ran_flat(rng, -1.5, 1.0);
    while (fabs(t) < 0.02);
    const aal_theory_rspec spec = {k % 2 ? AAL_THEORY_PARALLEL_HI : AAL_THEORY_PARALLEL, t, 0, 0, 0};
    instance in;
    instance_make(&in, AAL_THEORY_LSQ1, 0.0, rng);
    aal_theory_result res;
    train(&in, &spec, 1, 1.0, 0.0, rng, &res, tr);
    const double change = tr[0].loss_next - tr[0].loss;
    ck_assert_msg((tr[0].li_mean > 0) == (change < 0), "LI %g change %g", tr[0].li_mean, change);
    /* and it equals -(LI) f: f = ||delta||^2/2 */
    ck_assert(fabs(change + tr[0].li_mean * tr[0].loss) <= tr[0].allowance);
    instance_free(&in);
    gsl_rng_free(rng);
  }
}
END_TEST

/* Tightness over many steps.  parallel and parallel_hi on one-sample least squares at
 * eta = 1/L multiply the loss by exactly 1 - LI per step ((1 - alpha)^2 = 1 - LI), so
 * K = 100 steps at LI = t give (1 - t)^100: 1.01^100 = 2.7048 at t = -0.01 (the loss
 * RISES at the rate the theorem's bound allows: the bound is attained), 0.99^100 =
 * 0.3660 at t = 0.01.  The theorem's own bound, the product of (f - guaranteed)/f
 * (guaranteed_ratio), must equal it as well.
 *
 * The bound on the measured ratio, derived.  Step k computes delta_k = W_k h - y
 * ((n+1)-term sums: error <= (n+1) u M_k per component, M_k = ||W_k|| ||h|| + ||y||),
 * W_{k+1} = W_k - eta delta r^T (error <= 2u (|W| + |eta delta r^T|) per entry, which
 * moves delta_{k+1} by <= 2u (||W_k|| + |alpha| ||delta_k||/||h||) ||h||), and the
 * loss ((m)-term sum: m u).  So the relative error of delta_{k+1} is at most
 * e_k = ((n + 3)(1 + |alpha|) u M_k + 2u |alpha| ||delta_k||) / ||delta_{k+1}|| + m u,
 * and of the factor f_{k+1}/f_k, counting both residuals and the rounding of alpha and
 * eta (a few u in 1 - alpha): 2 e_k + 2 e_{k-1} + 8u.  Through K steps
 * |f_K - (1-t)^K f_0| <= sum_k (1-t)^(K-1-k) f_{k+1} (that), with ||W_k|| <= ||W_0|| +
 * |alpha| sum_{j<k} ||delta_j||/||h|| (each step adds eta ||delta|| ||r||).  The
 * losses in the bound are the measured ones (magnitudes only); 2x covers the
 * second-order terms. */
START_TEST(test_tightness)
{
  enum { K = 100 };
  const double ts[4] = {-0.01, 0.01, -0.1, 0.1};
  aal_theory_step tr[K];
  const double u = DBL_EPSILON / 2;
  for (int k = 0; k < 40; k++) {
    gsl_rng *rng = rng_new(40000 + (unsigned long)k);
    const double t = ts[k % 4];
    const int hi = (k / 4) % 2;
    const aal_theory_rspec spec = {hi ? AAL_THEORY_PARALLEL_HI : AAL_THEORY_PARALLEL, t, 0, 0, 0};
    const double alpha = hi ? 1 + sqrt(1 - t) : 1 - sqrt(1 - t);
    instance in;
    instance_make(&in, AAL_THEORY_LSQ1, 0.0, rng);
    const aal_theory_problem *p = &in.p;
    aal_theory_result res;
    train(&in, &spec, K, 1.0, 0.0, rng, &res, tr);
    ck_assert_uint_eq(res.steps, K);
    const double hn = sqrt(p->L), yn = sqrt(aal_norm2_test(p->Y, p->m));
    double wn = sqrt(aal_norm2_test(in.W0, p->m * p->n)), bound = 0.0, e_prev = 0.0;
    const double n = (double)p->n, m = (double)p->m;
    for (int s = 0; s < K; s++) {
      const double dk = sqrt(2 * tr[s].loss), dk1 = sqrt(2 * tr[s].loss_next);
      const double e = ((n + 3) * (1 + fabs(alpha)) * u * (wn * hn + yn) +
                        2 * u * fabs(alpha) * dk) / dk1 + m * u;
      bound += pow(1 - t, K - 1 - s) * tr[s].loss_next * (2 * e + 2 * e_prev + 8 * u);
      e_prev = e;
      wn += fabs(alpha) * dk / hn;
    }
    bound *= 2;
    const double want = pow(1 - t, K) * res.initial_loss;
    const double got = res.final_loss;
    ck_assert_msg(fabs(got - want) <= bound, "%s LI %g: f_K/f_0 %.17g, want %.17g (bound %g)",
                  aal_theory_family_name(spec.family), t, got / res.initial_loss,
                  want / res.initial_loss, bound / res.initial_loss);
    /* the theorem's bound, from the per-step LI (a ratio of n-term sums, error (n+2) u
     * relative to (2|c| + c^2) ~ 2|alpha| + alpha^2 for r = alpha h) and ||grad f||^2
     * ((m n)-term sum): per factor <= ((n + 2)(2|alpha| + alpha^2) + m n + 8) u */
    const double gb = K * ((n + 2) * (2 * fabs(alpha) + alpha * alpha) + m * n + 8) * u;
    ck_assert_msg(fabs(res.guaranteed_ratio - pow(1 - t, K)) <= 2 * gb * pow(1 - t, K),
                  "LI %g: guaranteed ratio %.17g", t, res.guaranteed_ratio);
    if (k == 0)
      fprintf(stderr, "tightness: parallel, LI = %g, %d steps: f_K/f_0 = %.6f, predicted %.6f\n",
              t, K, got / res.initial_loss, pow(1 - t, K));
    instance_free(&in);
    gsl_rng_free(rng);
  }
}
END_TEST

/* Existence.  r = h + o (o _|_ h): c = r^T h/||h||^2 = 1, so the exact change is
 * ||delta||^2 (-1 + 1/2) = -f: one step reaches the minimum whatever ||o||, although
 * LI = 1 - ||o||^2/||h||^2 < 0 for ||o|| > ||h||: the theorem's condition is
 * sufficient, not necessary (the exact change has c^2 where the bound has
 * ||r||^2/||h||^2).  The next steps start at the rounding floor: they are counted as
 * such, not as descents.  r = -h: c = -1 exactly, change = +3/2 ||delta||^2 = 3f, so
 * f' = 4f.  r = 0 (parallel, LI = 0): W does not move, the run is "flat", not
 * "descended". */
START_TEST(test_negative_li_both_ways)
{
  aal_theory_step tr[5];
  for (int k = 0; k < 100; k++) {
    gsl_rng *rng = rng_new(30000 + (unsigned long)k);
    instance in;
    instance_make(&in, AAL_THEORY_LSQ1, 0.0, rng);
    const double n = (double)in.p.n;
    aal_theory_result res;
    const aal_theory_rspec ortho = {AAL_THEORY_ORTHO, -1.0 - 2.0 * gsl_rng_uniform(rng), 0, 0, 0};
    train(&in, &ortho, 5, 1.0, 0.0, rng, &res, tr);
    ck_assert(tr[0].li_mean < -0.9);
    /* o^T h after two Gram-Schmidt passes <= 2(n+1) u ||o|| ||h||, r^T h rounded with
     * (n+1) u ||r|| ||h||, ||o||, ||r|| <= 2 ||h||: |c - 1| <= 6 (n+1) u */
    ck_assert_msg(fabs(tr[0].c - 1.0) <= 3 * (n + 1) * DBL_EPSILON, "c = %.17g", tr[0].c);
    ck_assert(tr[0].loss_next <= 1e-20 * tr[0].loss); /* to the minimum */
    ck_assert_uint_eq(res.fell_steps, 1);
    ck_assert_uint_eq(res.floor_steps, 4);
    ck_assert_uint_eq(res.rose_steps, 0);
    ck_assert_str_eq(aal_theory_outcome(&res), "descended");
    const aal_theory_rspec flip = {AAL_THEORY_FLIP, 0, 0, 0, 0};
    train(&in, &flip, 1, 1.0, 0.0, rng, &res, tr);
    ck_assert(tr[0].li_mean == -3.0 && tr[0].c == -1.0);
    ck_assert(fabs(tr[0].loss_next - 4 * tr[0].loss) <= tr[0].allowance);
    const aal_theory_rspec zero = {AAL_THEORY_PARALLEL, 0.0, 0, 0, 0};
    train(&in, &zero, 3, 1.0, 0.0, rng, &res, tr);
    ck_assert(res.final_loss == res.initial_loss);
    ck_assert_str_eq(aal_theory_outcome(&res), "flat");
    ck_assert(res.fell_steps == 0 && res.floor_steps == 0);
    instance_free(&in);
    gsl_rng_free(rng);
  }
}
END_TEST

/* ------------------------------------------------------------------ CSV helpers */

static size_t count_char(const char *s, char c)
{
  size_t k = 0;
  for (; *s; s++)
    k += *s == c;
  return k;
}

/* The field `col` (0-based) of a CSV line, copied into out. */
static void csv_field(const char *line, int col, char *out, size_t len)
{
  for (int i = 0; i < col; i++) {
    line = strchr(line, ',');
    ck_assert_ptr_nonnull(line);
    line++;
  }
  size_t k = strcspn(line, ",\n");
  ck_assert(k < len);
  memcpy(out, line, k);
  out[k] = '\0';
}

/* ------------------------------------------------------------------ ASA's scale */

/* One sample: the new loss depends on r only through c = r^T h/||h||^2, and the {0,1} and
 * mixed decodings differ only where h = 0 (r_j = 0 vs -k eps), which changes columns of
 * W that multiply h_j = 0 exactly.  So their loss trajectories are bit-identical, while
 * the mixed LI is lower by exactly k^2 eps^2 (n - nnz)/||h||^2 (to rounding).  On a batch
 * the zeros of one sample meet the non-zeros of another, and the trajectories differ. */
START_TEST(test_asa_decodings_one_sample)
{
  enum { STEPS = 30 };
  aal_theory_step t01[STEPS], tmx[STEPS];
  aal_error err;
  size_t differ = 0;
  for (int k = 0; k < 40; k++) {
    const double sigma = 0.2 + 0.1 * (k % 10), kx = k % 2 ? 100.0 : 20.0, eps = 0.01;
    const int kind = k < 20 ? AAL_THEORY_LSQ1 : AAL_THEORY_LSQ;
    aal_theory_result r01, rmx;
    for (int d = 0; d < 2; d++) {
      const aal_theory_decoding dec = d ? AAL_THEORY_DECODE_MIXED : AAL_THEORY_DECODE_01;
      gsl_rng *rng = rng_new(50000 + (unsigned long)k);
      const aal_theory_input in = {sigma, eps, dec};
      instance inst;
      ck_assert_int_eq(aal_theory_problem_make((aal_theory_kind)kind, &test_dims[kind], &in, rng,
                                               &inst.p, &err), AAL_OK);
      inst.W0 = malloc(inst.p.m * inst.p.n * sizeof *inst.W0);
      ck_assert_ptr_nonnull(inst.W0);
      fill_gauss(rng, inst.W0, inst.p.m * inst.p.n, 1.0 / sqrt((double)inst.p.n));
      const aal_theory_rspec spec = {AAL_THEORY_SIGN, 0, eps, kx, dec};
      train(&inst, &spec, STEPS, 1.0, 0.0, rng, d ? &rmx : &r01, d ? tmx : t01);
      if (kind == AAL_THEORY_LSQ1 && d == 1) {
        double hh = 0.0, zeros = 0.0;
        for (size_t j = 0; j < inst.p.n; j++) {
          hh += inst.p.H[j] * inst.p.H[j];
          zeros += inst.p.H[j] == 0.0;
        }
        const double gap = kx * kx * eps * eps * zeros / hh;
        for (int t = 0; t < STEPS; t++) {
          ck_assert_msg(tmx[t].loss_next == t01[t].loss_next, "step %d: %.17g vs %.17g", t,
                        tmx[t].loss_next, t01[t].loss_next);
          /* LI: ratios of n-term sums of magnitude <= 2|c| + ||r||^2/||h||^2 */
          const double mag = 2 * fabs(t01[t].c) + (t01[t].c * t01[t].c + gap) * 4;
          ck_assert_msg(fabs((t01[t].li_mean - tmx[t].li_mean) - gap) <=
                            4 * (inst.p.n + 4) * DBL_EPSILON * mag,
                        "LI gap %.17g, want %.17g", t01[t].li_mean - tmx[t].li_mean, gap);
        }
      }
      instance_free(&inst);
      gsl_rng_free(rng);
    }
    if (kind == AAL_THEORY_LSQ)
      differ += rmx.final_loss != r01.final_loss;
  }
  ck_assert_uint_eq(differ, 20);
}
END_TEST

/* The predicted boundaries are roots of their equations, and the LI of a long input
 * (n = 4000: relative spread of ||x||_1 about 1/sqrt(n) = 1.6%) has the predicted sign
 * 15% on either side of sigma_LI0 for every decoding, at k = 100 and k = 30. */
START_TEST(test_asa_boundaries)
{
  enum { N = 4000 };
  const double eps = 0.01, a = sqrt(2.0 / 3.14159265358979323846);
  gsl_rng *rng = rng_new(9);
  static double x[N], h[N], r[N];
  for (int q = 0; q < 2; q++) {
    const double kx = q ? 100.0 : 30.0;
    const double s2 = aal_theory_asa_sigma_c2(kx, eps);
    const double lhs = kx * eps * (s2 * a + eps), rhs = 2 * (s2 * s2 + 2 * eps * s2 * a + eps * eps);
    ck_assert_msg(fabs(lhs - rhs) <= 64 * DBL_EPSILON * rhs, "c = 2 root: %g vs %g", lhs, rhs);
    for (int dec = 0; dec < AAL_THEORY_NDECODINGS; dec++) {
      const double s0 = aal_theory_asa_sigma_li0((aal_theory_decoding)dec, kx, eps);
      const double want = dec == AAL_THEORY_DECODE_MIXED ? 1 + s0 * a / eps : 2 + 2 * s0 * a / eps;
      ck_assert(fabs(want - kx) <= 64 * DBL_EPSILON * kx);
      for (int side = 0; side < 2; side++) {
        const double sigma = s0 * (side ? 1.15 : 0.85);
        const int relu = dec != AAL_THEORY_DECODE_PM1;
        for (int i = 0; i < N; i++) {
          x[i] = gsl_ran_gaussian(rng, sigma);
          if (relu && x[i] < 0)
            x[i] = 0;
          h[i] = x[i] + eps * (x[i] > 0 ? 1.0 : relu ? 0.0 : -1.0);
        }
        const aal_theory_rspec spec = {AAL_THEORY_SIGN, 0, eps, kx, (aal_theory_decoding)dec};
        double li[1];
        unsigned char valid[1];
        size_t zn;
        aal_error err;
        ck_assert_int_eq(aal_theory_make_r(&spec, h, N, NULL, r, &err), AAL_OK);
        ck_assert_int_eq(aal_li_batch(h, r, 1, N, li, valid, &zn, &err), AAL_OK);
        ck_assert_msg(side ? li[0] > 0 : li[0] < 0, "%s k %g sigma %g: LI %g",
                      aal_theory_decoding_name((aal_theory_decoding)dec), kx, sigma, li[0]);
      }
    }
  }
  ck_assert(isnan(aal_theory_asa_sigma_li0(AAL_THEORY_DECODE_PM1, 1.0, eps)));
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_asa_sweep)
{
  aal_theory_asa_opts o;
  aal_theory_asa_opts_default(&o);
  ck_assert(o.nsigma == 16 && fabs(o.sigma[0] - 0.1) <= DBL_EPSILON &&
            fabs(o.sigma[15] - 3.0) <= 8 * DBL_EPSILON);
  aal_error err;
  ck_assert_int_eq(aal_theory_parse_list("0.3,1", o.sigma, AAL_THEORY_ASA_MAXGRID, &o.nsigma, &err),
                   AAL_OK);
  ck_assert(o.nsigma == 2 && o.sigma[0] == 0.3 && o.sigma[1] == 1.0);
  ck_assert_int_eq(aal_theory_parse_list("2,1000", o.k, AAL_THEORY_ASA_MAXGRID, &o.nk, &err),
                   AAL_OK);
  double tmp[2];
  size_t nt;
  ck_assert_int_eq(aal_theory_parse_list("1,-2", tmp, 2, &nt, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_theory_parse_list("1,2,3", tmp, 2, &nt, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_theory_parse_list("1,,2", tmp, 2, &nt, &err), AAL_EINVAL);
  o.seeds = 3;
  o.steps = 20;
  o.seed = g_seed;
  aal_theory_sweep_summary sum;
  char *buf = NULL;
  size_t len = 0;
  FILE *csv = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(csv);
  ck_assert_int_eq(aal_theory_asa_sweep(&o, csv, NULL, &sum, &err), AAL_OK);
  fclose(csv);
  /* 2 problems x 3 decodings x 2 sigmas x 2 k x 3 seeds; the lsq1 half is in the theorem */
  ck_assert_uint_eq(sum.runs, 72);
  ck_assert_uint_eq(sum.theorem_runs, 36);
  ck_assert(sum.theorem_violations == 0 && sum.lemma_violations == 0);
  size_t lines = 0, rose_k1000 = 0;
  for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
    ck_assert_uint_eq(count_char(line, ','), 16);
    char k[32], outcome[32];
    if (lines == 0)
      continue;
    csv_field(line, 3, k, sizeof k);
    csv_field(line, 11, outcome, sizeof outcome);
    /* k = 1000 with eps = 0.01 at sigma <= 1: c ~ 10 on one sample, the loss rises */
    rose_k1000 += strcmp(k, "1000") == 0 && strcmp(outcome, "rose") == 0;
  }
  free(buf);
  ck_assert_uint_eq(lines, 73);
  ck_assert_uint_eq(rose_k1000, 36);
  o.eps = 0.0;
  ck_assert_int_eq(aal_theory_asa_sweep(&o, NULL, NULL, &sum, &err), AAL_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ the sweep */

/* ------------------------------------------------------------------ the ARA-like network */

static void ara_loss_fn(void *ctx, double *y)
{
  y[0] = aal_theory_ara_net_loss(ctx);
}

/* The exact-BP gradient of the residual network against 5-point central differences
 * (tests/fdcheck.c: err <= 10 x GSL's estimate + 64 eps scale and 1e-6 relative), with
 * a small step (1e-6) so that no ReLU input crosses 0 inside the difference stencil
 * (the pre-activations are O(1); a crossing within 1e-6 has probability ~1e-4 per
 * parameter). */
START_TEST(test_ara_gradient)
{
  aal_theory_ara_opts o;
  aal_theory_ara_opts_default(&o);
  o.n0 = 5;
  o.n1 = 6;
  o.m = 3;
  o.batch = 7;
  aal_error err;
  const double betas[3] = {0.0, 0.5, 2.0};
  for (int k = 0; k < 6; k++) {
    aal_theory_ara_net *net;
    ck_assert_int_eq(aal_theory_ara_net_new(&o, betas[k % 3], g_seed + 60000 + k, &net, &err),
                     AAL_OK);
    size_t np;
    double *P = aal_theory_ara_net_params(net, &np);
    ck_assert_uint_eq(np, 5 * 6 + 6 * 6 + 3 * 6);
    double *G = malloc(np * sizeof *G);
    ck_assert_ptr_nonnull(G);
    memcpy(G, aal_theory_ara_net_grad(net), np * sizeof *G);
    const fd_problem fp = {P, np, 1, ara_loss_fn, net, 1e-6};
    fd_report rep;
    char what[64];
    snprintf(what, sizeof what, "ara net beta %g seed %lu", betas[k % 3], g_seed + 60000 + k);
    ck_assert_msg(fd_check_jacobian(&fp, G, what, &rep), "%s: %zu of %zu entries failed", what,
                  rep.failed, rep.checked);
    free(G);
    aal_theory_ara_net_free(net);
  }
}
END_TEST

/* The rules' plumbing, by identities that hold exactly:
 * bp: r = x_b, so W3's per-sample LI is 1 and the joint indicator is 1 (I_3 = ||G_3||^2
 *     summed in the same order);
 * ara at beta = 0: x_b = relu(x_a) = x_a, so ara IS bp (bit-identical losses), and at
 *     beta = 2 it is not (LI < 1);
 * flip on W3 alone: R3 = -G3 exactly, so J = -3 to rounding (2G + G rounded once per
 *     entry: |J + 3| <= 3 (m n1 + 2) u), and every step is gradient ascent on a convex
 *     quadratic in W3: the loss rises at every step. */
START_TEST(test_ara_rules)
{
  aal_theory_ara_opts o;
  aal_theory_ara_opts_default(&o);
  o.seeds = 2;
  o.steps = 15;
  o.nbeta = 2;
  o.beta[0] = 0.0;
  o.beta[1] = 2.0;
  o.seed = g_seed;
  char *buf = NULL;
  size_t len = 0;
  FILE *csv = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(csv);
  aal_error err;
  ck_assert_int_eq(aal_theory_ara_sweep(&o, csv, NULL, NULL, &err), AAL_OK);
  fclose(csv);
  char f_bp[2][64], f_ara[2][64];
  size_t lines = 0, checked = 0;
  for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
    ck_assert_uint_eq(count_char(line, ','), 18);
    if (lines == 0)
      continue;
    char rule[16], upd[16], beta[32], seed[32], fin[64], steps[16], rose[16], li[32], joint[64];
    csv_field(line, 0, rule, sizeof rule);
    csv_field(line, 1, upd, sizeof upd);
    csv_field(line, 2, beta, sizeof beta);
    csv_field(line, 3, seed, sizeof seed);
    csv_field(line, 4, steps, sizeof steps);
    csv_field(line, 6, fin, sizeof fin);
    csv_field(line, 8, rose, sizeof rose);
    csv_field(line, 9, li, sizeof li);
    csv_field(line, 13, joint, sizeof joint);
    const int s = strtoul(seed, NULL, 10) != g_seed;
    const int all = strcmp(upd, "all") == 0;
    if (strcmp(rule, "bp") == 0) {
      ck_assert(strtod(li, NULL) == 1.0 && strtod(joint, NULL) == 1.0);
      if (all && strcmp(beta, "0") == 0)
        snprintf(f_bp[s], sizeof f_bp[s], "%s", fin);
    } else if (strcmp(rule, "ara") == 0) {
      if (strcmp(beta, "0") == 0) {
        ck_assert(strtod(li, NULL) == 1.0);
        if (all)
          snprintf(f_ara[s], sizeof f_ara[s], "%s", fin);
      } else {
        ck_assert(strtod(li, NULL) < 1.0);
      }
    } else if (strcmp(rule, "flip") == 0 && !all) {
      const double J = strtod(joint, NULL), u = DBL_EPSILON / 2;
      ck_assert_msg(fabs(J + 3.0) <= 3 * (o.m * o.n1 + 2) * u, "flip J = %.17g", J);
      ck_assert_str_eq(rose, steps);
      checked++;
    }
  }
  free(buf);
  ck_assert_uint_eq(lines, 1 + 4 * 2 * 2 * 2);
  ck_assert_uint_eq(checked, 4);
  for (int s = 0; s < 2; s++)
    ck_assert_str_eq(f_bp[s], f_ara[s]);
  o.eta = 0.0;
  ck_assert_int_eq(aal_theory_ara_sweep(&o, NULL, NULL, NULL, &err), AAL_EINVAL);
}
END_TEST

START_TEST(test_sweep_csv)
{
  aal_theory_sweep_opts o;
  aal_theory_sweep_opts_default(&o);
  o.seed = g_seed;
  o.seeds = 2;
  o.steps = 20;
  o.points = 3;
  char dir[] = "/tmp/aal_theory_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/s.csv", dir);
  aal_error err;
  aal_theory_sweep_summary sum;
  FILE *table = fopen("/dev/null", "w");
  ck_assert_ptr_nonnull(table);
  ck_assert_int_eq(aal_theory_sweep_to_file(&o, path, table, &sum, &err), AAL_OK);
  /* 4 problems x (4 families x 3 points + 4 natural) x 2 seeds; half of them one-sample */
  const size_t runs = 4 * (4 * 3 + 4) * 2;
  ck_assert_uint_eq(sum.runs, runs);
  ck_assert_uint_eq(sum.theorem_runs, runs / 2);
  ck_assert_uint_eq(sum.batch_runs, runs / 2);
  ck_assert_uint_eq(sum.outside_runs, 0);
  ck_assert_uint_eq(sum.steps, runs * 20);
  ck_assert(sum.lemma_violations == 0 && sum.theorem_violations == 0 &&
            sum.closed_form_failures == 0);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  char line[2048], field[64];
  size_t lines = 0, flat = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    ck_assert_uint_eq(count_char(line, ','), 27);
    if (lines++ == 0) {
      ck_assert(strncmp(line, "problem,family,target_li,seed,measured_li_mean,", 47) == 0);
      csv_field(line, 22, field, sizeof field);
      ck_assert_str_eq(field, "outcome");
      continue;
    }
    /* r = 0 (parallel at target 0) never moves W: "flat", on every problem */
    csv_field(line, 1, field, sizeof field);
    const int parallel = strcmp(field, "parallel") == 0;
    csv_field(line, 2, field, sizeof field);
    if (parallel && strcmp(field, "0") == 0) {
      csv_field(line, 22, field, sizeof field);
      ck_assert_str_eq(field, "flat");
      flat++;
    }
  }
  fclose(f);
  ck_assert_uint_eq(lines, 1 + runs);
  ck_assert_uint_eq(flat, 4 * 2);
  unlink(path);
  ck_assert_int_eq(rmdir(dir), 0); /* nothing else (no temp file) was left */
  /* eta > 1/L: every one-sample run is outside the theorem, none is checked */
  o.eta_fraction = 2.5;
  ck_assert_int_eq(aal_theory_sweep(&o, NULL, table, &sum, &err), AAL_OK);
  ck_assert(sum.theorem_runs == 0 && sum.theorem_steps == 0 && sum.outside_runs == runs / 2);
  ck_assert(sum.outside_rose_steps > 0 && sum.outside_rose_runs > 0);
  fclose(table);
  /* one family, one problem */
  o.eta_fraction = 1.0;
  o.family = "parallel";
  o.problems = 1 << AAL_THEORY_LSQ1;
  ck_assert_int_eq(aal_theory_sweep(&o, NULL, NULL, &sum, &err), AAL_OK);
  ck_assert_uint_eq(sum.runs, 3 * 2);
  o.family = "bogus";
  ck_assert_int_eq(aal_theory_sweep(&o, NULL, NULL, &sum, &err), AAL_EINVAL);
  o.family = NULL;
  o.li_lo = 0.5;
  o.li_hi = 0.25;
  ck_assert_int_eq(aal_theory_sweep(&o, NULL, NULL, &sum, &err), AAL_EINVAL);
  o.li_lo = -1;
  o.li_hi = 1;
  o.points = 1;
  ck_assert_int_eq(aal_theory_sweep(&o, NULL, NULL, &sum, &err), AAL_EINVAL);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("theory");
  TCase *li = tcase_create("li");
  tcase_add_test(li, test_li_exact_cases);
  tcase_add_test(li, test_li_alpha_and_orthogonal);
  tcase_add_test(li, test_li_asa_closed_form);
  tcase_add_test(li, test_li_zero_norm_and_errors);
  suite_add_tcase(s, li);
  TCase *th = tcase_create("theorem");
  tcase_set_timeout(th, 300); /* valgrind runs are ~50x slower than the native seconds */
  tcase_add_test(th, test_lambda_max);
  tcase_add_test(th, test_problem_L);
  tcase_add_test(th, test_descent_inequality_always);
  tcase_add_test(th, test_descent_check_can_fail);
  tcase_add_test(th, test_theorem_holds_on_its_hypotheses);
  tcase_add_test(th, test_theorem_check_can_fail_and_scope);
  tcase_add_test(th, test_guaranteed_rate);
  tcase_add_test(th, test_parallel_sign_is_exact);
  tcase_add_test(th, test_tightness);
  tcase_add_test(th, test_negative_li_both_ways);
  tcase_add_test(th, test_asa_decodings_one_sample);
  tcase_add_test(th, test_asa_boundaries);
  tcase_add_test(th, test_asa_sweep);
  tcase_add_test(th, test_ara_gradient);
  tcase_add_test(th, test_ara_rules);
  tcase_add_test(th, test_sweep_csv);
  suite_add_tcase(s, th);
  return aal_check_run(s);
}
