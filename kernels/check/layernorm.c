/* kcheck's layer norm cases: layernorm_forward and layernorm_backward (shape a = m rows,
 * b = d, the normalised dimension).  The bounds are batch norm's (kernels/check/
 * batchnorm.c) with a channel's N*HW values replaced by a row's d: the derivation is the
 * same, over the last dimension instead of over N, H, W. */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

#include "sim/layers/transformer.h" /* AAL_LN_EPS */

/* x [m, d]: row r gets scale 10^-U(0,3) (some rows' variance below eps, where eps
 * matters) and a mean, with probability 1/2 each, within half the scale of 0 or
 * 10^U(1,3) standard deviations from it, of either sign: there the variance is a small
 * difference of large numbers, which a one-pass E[x^2] - mean^2 in float loses. */
static void fill_rows(kc_run *run, kc_buf *x, int m, int d)
{
  for (int r = 0; r < m; r++) {
    const double scale = pow(10.0, -3.0 * gsl_rng_uniform(run->rng));
    const double far = pow(10.0, 1.0 + 2.0 * gsl_rng_uniform(run->rng)) * scale / sqrt(3.0);
    const double offset = gsl_rng_uniform(run->rng) < 0.5 ? 0.5 * kc_sym(run, scale)
                                                          : copysign(far, kc_sym(run, 1.0));
    for (int j = 0; j < d; j++)
      x->val[KC_REF][(size_t)r * d + j] = (double)(float)(offset + kc_sym(run, scale));
  }
}

/* Row r of x [m, d]: mean, biased variance (two-pass, double) and mean |x|. */
static void row_stats(const double *x, int d, int r, double *mu, double *var, double *ma)
{
  const double *xr = x + (size_t)r * d;
  double s = 0.0, sa = 0.0, s2 = 0.0;
  for (int j = 0; j < d; j++) {
    s += xr[j];
    sa += fabs(xr[j]);
  }
  *mu = s / d;
  *ma = sa / d;
  for (int j = 0; j < d; j++)
    s2 += (xr[j] - *mu) * (xr[j] - *mu);
  *var = s2 / d;
}

static int ln_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->layernorm_forward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                               KC_DEV(k, 2, v), k->eps, KC_DEV(k, 3, v), KC_DEV(k, 4, v),
                               KC_DEV(k, 5, v), err);
}

/* Bounds of the forward, per row (d values, mu, var, ma = mean |x| from the reference;
 * kc_gamma carries c = 2 where deterministic, the other roundings get 2x), batch norm's:
 *   mean:   Bm = kc_gamma(d + 2) ma                  (a sum of d terms, a division, the
 *                                                     rounding to float)
 *   var:    Bv = kc_gamma(d + 4) (var + Bm^2) + Bm^2  (two passes: the mean's error enters
 *                                                     only squared)
 *   invstd: rel = 1/sqrt(max(var - Bv, 0) + eps) / invstd - 1 + 6u  (eps, sqrt, 1/)
 *   y:      |gamma| invstd (Bm (1 + rel) + |x - mu| rel) + 10u (|gamma (x - mu) invstd| + |beta|)
 * with gamma and beta per column here. */
int kc_layernorm_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int m = sh->a, d = sh->b;
  const size_t nx = (size_t)m * d;
  kc_case k = {.sh = sh, .eps = AAL_LN_EPS};
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, (size_t)d, 0);
  kc_add(&k, "beta", KC_IN, (size_t)d, 0);
  kc_add(&k, "y", KC_OUT, nx, 0);
  kc_add(&k, "mean", KC_OUT, (size_t)m, 0);
  kc_add(&k, "invstd", KC_OUT, (size_t)m, 0);
  double *by = NULL, *bm = NULL, *bi = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((by = kc_bounds(run, nx)) == NULL ||
                       (bm = kc_bounds(run, (size_t)m)) == NULL ||
                       (bi = kc_bounds(run, (size_t)m)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_rows(run, &k.buf[0], m, d);
    kc_fill_sym(run, &k.buf[1], 1.0);
    kc_fill_sym(run, &k.buf[2], 1.0);
    rc = kc_execute(run, &k, ln_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const double u = run->u, *x = k.buf[0].val[KC_REF], *g = k.buf[1].val[KC_REF];
    const double *b = k.buf[2].val[KC_REF];
    for (int r = 0; r < m; r++) {
      double mu, var, ma;
      row_stats(x, d, r, &mu, &var, &ma);
      const double is = 1.0 / sqrt(var + k.eps);
      const double em = kc_gamma(run, d + 2) * ma;
      const double ev = kc_gamma(run, d + 4) * (var + em * em) + em * em;
      const double rel = 1.0 / sqrt(fmax(var - ev, 0.0) + k.eps) / is - 1.0 + 6 * u;
      bm[r] = em;
      bi[r] = rel * is;
      for (int j = 0; j < d; j++) {
        const size_t at = (size_t)r * d + j;
        const double dd = fabs(x[at] - mu);
        by[at] = fabs(g[j]) * is * (em * (1 + rel) + dd * rel) +
                 10 * u * (fabs(g[j]) * dd * is + fabs(b[j]));
      }
    }
    kc_check_bound(row, &k.buf[3], by, 0);
    kc_check_bound(row, &k.buf[4], bm, 0);
    kc_check_bound(row, &k.buf[5], bi, 0);
  }
  free(by);
  free(bm);
  free(bi);
  kc_free(run, &k);
  return rc;
}

static int ln_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->layernorm_backward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                                KC_DEV(k, 2, v), KC_DEV(k, 3, v), KC_DEV(k, 4, v),
                                KC_DEV(k, 5, v), KC_DEV(k, 6, v), KC_DEV(k, 7, v), err);
}

/* Bounds of the backward, from the given (float) mean and invstd, xh = (x - mean) invstd,
 * g = dy gamma; per row S1 = sum |g|, S2 = sum |g xh| (batch norm's with gamma inside the
 * sums):
 *   dx:      invstd (kc_gamma(d + 1) S1 / d + |xh| kc_gamma(d + 3) S2 / d
 *                    + 12u (|g| + S1/d + |xh| S2/d));
 *   per column, over the m rows:
 *   dbeta:   kc_gamma(m + 1) sum |dy|;   dgamma:  kc_gamma(m + 3) sum |dy xh|. */
int kc_layernorm_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int m = sh->a, d = sh->b;
  const size_t nx = (size_t)m * d;
  kc_case k = {.sh = sh, .eps = AAL_LN_EPS};
  kc_add(&k, "dy", KC_IN, nx, 0);
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, (size_t)d, 0);
  kc_add(&k, "mean", KC_IN, (size_t)m, 0);
  kc_add(&k, "invstd", KC_IN, (size_t)m, 0);
  kc_add(&k, "dx", KC_OUT, nx, 0);
  kc_add(&k, "dgamma", KC_OUT, (size_t)d, 0);
  kc_add(&k, "dbeta", KC_OUT, (size_t)d, 0);
  double *bx = NULL, *bg = NULL, *bb = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((bx = kc_bounds(run, nx)) == NULL ||
                       (bg = kc_bounds(run, (size_t)d)) == NULL ||
                       (bb = kc_bounds(run, (size_t)d)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    fill_rows(run, &k.buf[1], m, d);
    kc_fill_sym(run, &k.buf[2], 1.0);
    for (int r = 0; r < m; r++) { /* the statistics forward saved, as floats */
      double mu, var, ma;
      row_stats(k.buf[1].val[KC_REF], d, r, &mu, &var, &ma);
      k.buf[3].val[KC_REF][r] = (double)(float)mu;
      k.buf[4].val[KC_REF][r] = (double)(float)(1.0 / sqrt(var + k.eps));
    }
    rc = kc_execute(run, &k, ln_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const double u = run->u, *dy = k.buf[0].val[KC_REF], *x = k.buf[1].val[KC_REF];
    const double *g = k.buf[2].val[KC_REF], *mu = k.buf[3].val[KC_REF];
    const double *is = k.buf[4].val[KC_REF];
    const double fb = kc_gamma(run, m + 1), fg = kc_gamma(run, m + 3);
    for (int j = 0; j < d; j++)
      bg[j] = bb[j] = 0.0;
    for (int r = 0; r < m; r++) {
      double s1 = 0.0, s2 = 0.0;
      for (int j = 0; j < d; j++) {
        const size_t at = (size_t)r * d + j;
        const double xh = fabs((x[at] - mu[r]) * is[r]);
        s1 += fabs(dy[at] * g[j]);
        s2 += fabs(dy[at] * g[j]) * xh;
        bb[j] += fb * fabs(dy[at]);
        bg[j] += fg * fabs(dy[at]) * xh;
      }
      const double e1 = kc_gamma(run, d + 1) * s1, e2 = kc_gamma(run, d + 3) * s2;
      for (int j = 0; j < d; j++) {
        const size_t at = (size_t)r * d + j;
        const double xh = fabs((x[at] - mu[r]) * is[r]);
        bx[at] = is[r] * (e1 / d + xh * e2 / d +
                          12 * u * (fabs(dy[at] * g[j]) + s1 / d + xh * s2 / d));
      }
    }
    kc_check_bound(row, &k.buf[5], bx, 0);
    kc_check_bound(row, &k.buf[6], bg, 0);
    kc_check_bound(row, &k.buf[7], bb, 0);
  }
  free(bx);
  free(bg);
  free(bb);
  kc_free(run, &k);
  return rc;
}
