/* kcheck's batch norm cases: bn_forward, bn_forward_eval, bn_backward, and the fused
 * bn_relu_forward and bn_relu_backward (against the reference within the bounds of the
 * unfused ops, and bit for bit against the unfused composition: "Fused ops" in
 * kernels/check/kcheck_internal.h). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

#include "sim/layers/layers.h" /* AAL_BN_EPS */

/* x [n, c, hw]: channel ch gets scale 10^-U(0,3), so that some channels have a variance
 * far below eps and the eps term matters, and a mean that is, with probability 1/2 each,
 * within half the scale of zero or 10^U(1,3) standard deviations (scale/sqrt(3)) from it,
 * of either sign: there the variance is a small difference of large numbers, and a
 * one-pass E[x^2] - m^2 in float loses it. */
static void fill_bn_x(kc_run *run, kc_buf *x, int n, int c, int hw)
{
  for (int ch = 0; ch < c; ch++) {
    const double scale = pow(10.0, -3.0 * gsl_rng_uniform(run->rng));
    const double far = pow(10.0, 1.0 + 2.0 * gsl_rng_uniform(run->rng)) * scale / sqrt(3.0);
    const double offset = gsl_rng_uniform(run->rng) < 0.5 ? 0.5 * kc_sym(run, scale)
                                                          : copysign(far, kc_sym(run, 1.0));
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++)
        x->val[KC_REF][((size_t)i * c + ch) * hw + j] =
            (double)(float)(offset + kc_sym(run, scale));
  }
}

/* Channel ch of x: mean, biased variance (two-pass, double) and mean |x|. */
static void bn_stats(const double *x, int n, int c, int hw, int ch, double *m, double *v,
                     double *ma)
{
  const double cnt = (double)n * hw;
  double s = 0.0, sa = 0.0, s2 = 0.0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < hw; j++) {
      const double xv = x[((size_t)i * c + ch) * hw + j];
      s += xv;
      sa += fabs(xv);
    }
  *m = s / cnt;
  *ma = sa / cnt;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < hw; j++) {
      const double d = x[((size_t)i * c + ch) * hw + j] - *m;
      s2 += d * d;
    }
  *v = s2 / cnt;
}

static int bn_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_forward(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
                        k->eps, KC_DEV(k, 3, v), KC_DEV(k, 4, v), KC_DEV(k, 5, v),
                        KC_DEV(k, 6, v), err);
}

/* Bounds of bn forward, per channel (M = N*HW, m, v, ma = mean |x| from the reference;
 * kc_gamma carries the factor c = 2 where it is deterministic, other roundings get 2x):
 *   mean:   Bm = kc_gamma(M + 2) ma                 (a sum of M terms, a division)
 *   var:    Bv = kc_gamma(M + 4) (v + Bm^2) + Bm^2   (two-pass: the mean's error enters
 *                                                    only squared, as sum (x - m) = 0)
 *   invstd: rel = 1/sqrt(max(v - Bv, 0) + eps) / invstd - 1 + 6u
 *                                                   (exact in Bv; eps, sqrt, division)
 *   var:    Bv + 2u v                               (the output rounded once)
 *   y:      |gamma| invstd (Bm (1 + rel) + |x - m| rel) + 10u (|gamma (x - m) invstd| + |beta|)
 * A one-pass E[x^2] - m^2 errs by ~ M^(1/2) u (v + m^2): it fails where m^2 >> v. */
static void bn_forward_bounds(kc_run *run, kc_case *k, double *by, double *bm, double *bi,
                              double *bv)
{
  const kc_shape *s = k->sh;
  const int n = s->a, c = s->b, hw = s->c;
  const double u = run->u, M = (double)n * hw;
  const double *x = k->buf[0].val[KC_REF], *g = k->buf[1].val[KC_REF];
  const double *be = k->buf[2].val[KC_REF];
  for (int ch = 0; ch < c; ch++) {
    double m, v, ma;
    bn_stats(x, n, c, hw, ch, &m, &v, &ma);
    const double is = 1.0 / sqrt(v + k->eps);
    const double em = kc_gamma(run, M + 2) * ma;
    const double ev = kc_gamma(run, M + 4) * (v + em * em) + em * em;
    const double rel = 1.0 / sqrt(fmax(v - ev, 0.0) + k->eps) / is - 1.0 + 6 * u;
    bm[ch] = em;
    bi[ch] = rel * is;
    bv[ch] = ev + 2 * u * v;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const size_t at = ((size_t)i * c + ch) * hw + j;
        const double d = fabs(x[at] - m);
        by[at] = fabs(g[ch]) * is * (em * (1 + rel) + d * rel) +
                 10 * u * (fabs(g[ch]) * d * is + fabs(be[ch]));
      }
  }
}

/* Forward declarations: the fused op's call and its comparison with the unfused ops. */
static int bn_relu_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err);
static int bn_relu_forward_unfused(kc_run *run, kc_case *k, kc_row *row);

/* z_ref [n, c, hw] in double from the reference's mean and invstd, as
 * sim/layers/batchnorm.c computes it: where a mask bit may tie. */
static void bn_z_ref(const kc_case *k, int im, double *z)
{
  const kc_shape *sh = k->sh;
  const size_t nx = (size_t)sh->a * sh->b * sh->c, nc = (size_t)sh->b;
  const double *x = k->buf[0].val[KC_REF], *g = k->buf[1].val[KC_REF];
  const double *b = k->buf[2].val[KC_REF], *m = k->buf[im].val[KC_REF];
  const double *is = k->buf[im + 1].val[KC_REF];
  for (size_t i = 0; i < nx; i++) {
    const size_t ch = (i / (size_t)sh->c) % nc;
    z[i] = (x[i] - m[ch]) * (g[ch] * is[ch]) + b[ch];
  }
}

/* bn_forward, and with relu the fused bn_relu_forward: the same bounds (y = max(z, 0) is
 * 1-Lipschitz, so z's bound holds for y); a mask bit may differ from the reference only
 * where |z_ref| is within that bound of 0 (a tie), and the fused op must equal the
 * unfused ops bit for bit. */
static int bn_train_case(kc_run *run, const kc_shape *sh, kc_row *row, int relu)
{
  const size_t nx = (size_t)sh->a * sh->b * sh->c, nc = (size_t)sh->b;
  const int im = relu ? 5 : 4; /* the statistics follow y, and the mask if there is one */
  kc_case k = {.sh = sh, .eps = AAL_BN_EPS};
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, nc, 0);
  kc_add(&k, "beta", KC_IN, nc, 0);
  kc_add(&k, "y", KC_OUT, nx, 0);
  if (relu)
    kc_add(&k, "mask", KC_OUT, nx, 1);
  kc_add(&k, "mean", KC_OUT, nc, 0);
  kc_add(&k, "invstd", KC_OUT, nc, 0);
  kc_add(&k, "var", KC_OUT, nc, 0);
  double *by = NULL, *bm = NULL, *bi = NULL, *bv = NULL, *z = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((by = kc_bounds(run, nx)) == NULL || (bm = kc_bounds(run, nc)) == NULL ||
                       (bi = kc_bounds(run, nc)) == NULL || (bv = kc_bounds(run, nc)) == NULL ||
                       (relu && (z = kc_bounds(run, nx)) == NULL)))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    fill_bn_x(run, &k.buf[0], sh->a, sh->b, sh->c);
    kc_fill_sym(run, &k.buf[1], 1.0);
    kc_fill_sym(run, &k.buf[2], 1.0);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, relu ? bn_relu_forward_call : bn_forward_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    bn_forward_bounds(run, &k, by, bm, bi, bv); /* reads x, gamma, beta: buffers 0-2 */
    kc_check_bound(row, &k.buf[3], by, 0);
    size_t ties = 0;
    if (relu) {
      bn_z_ref(&k, im, z);
      ties = kc_check_bits_ties(row, &k.buf[4], z, by);
    }
    kc_check_bound(row, &k.buf[im], bm, 0);
    kc_check_bound(row, &k.buf[im + 1], bi, 0);
    kc_check_bound(row, &k.buf[im + 2], bv, 0);
    if (relu && run->ext == NULL) /* a candidate's tensors have no backend to compose */
      rc = bn_relu_forward_unfused(run, &k, row);
    if (ties > 0 && row->note[0] == '\0')
      snprintf(row->note, sizeof row->note, "%zu mask ties (|z_ref| within the bound of 0)",
               ties);
  }
  free(by);
  free(bm);
  free(bi);
  free(bv);
  free(z);
  kc_free(run, &k);
  return rc;
}

int kc_bn_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return bn_train_case(run, sh, row, 0);
}

static int bn_forward_eval_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_forward_eval(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                             KC_DEV(k, 2, v), KC_DEV(k, 3, v), KC_DEV(k, 4, v), k->eps,
                             KC_DEV(k, 5, v), err);
}

/* Evaluation mode: the training bound's y term with the statistics given (Em = 0) and
 * invstd = 1/sqrt(rv + eps) from rv in at most 3 roundings (rel = 3u):
 *   y: 2 (|gamma| is d 3u + 5u (|gamma| d is + |beta|)),  d = |x - rm|.
 * rv = 10^-U(0,6) reaches below eps = 1e-5, so that eps matters for some channels. */
int kc_bn_forward_eval_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nx = (size_t)sh->a * sh->b * sh->c, nc = (size_t)sh->b;
  kc_case k = {.sh = sh, .eps = AAL_BN_EPS};
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, nc, 0);
  kc_add(&k, "beta", KC_IN, nc, 0);
  kc_add(&k, "running_mean", KC_IN, nc, 0);
  kc_add(&k, "running_var", KC_IN, nc, 0);
  kc_add(&k, "y", KC_OUT, nx, 0);
  double *by = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (by = kc_bounds(run, nx)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    fill_bn_x(run, &k.buf[0], sh->a, sh->b, sh->c);
    kc_fill_sym(run, &k.buf[1], 1.0);
    kc_fill_sym(run, &k.buf[2], 1.0);
    for (size_t ch = 0; ch < nc; ch++) {
      k.buf[3].val[KC_REF][ch] = (double)(float)kc_sym(run, 0.01);
      k.buf[4].val[KC_REF][ch] = (double)(float)pow(10.0, -6.0 * gsl_rng_uniform(run->rng));
    }
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, bn_forward_eval_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    const double u = run->u, *x = k.buf[0].val[KC_REF], *g = k.buf[1].val[KC_REF];
    const double *b = k.buf[2].val[KC_REF], *rm = k.buf[3].val[KC_REF];
    const double *rv = k.buf[4].val[KC_REF];
    for (int i = 0; i < sh->a; i++)
      for (int ch = 0; ch < sh->b; ch++) {
        const double is = 1.0 / sqrt(rv[ch] + k.eps);
        for (int j = 0; j < sh->c; j++) {
          const size_t at = ((size_t)i * sh->b + ch) * sh->c + j;
          const double d = fabs(x[at] - rm[ch]);
          by[at] = 2 * (fabs(g[ch]) * is * d * 3 * u +
                        5 * u * (fabs(g[ch]) * d * is + fabs(b[ch])));
        }
      }
    kc_check_bound(row, &k.buf[5], by, 0);
  }
  free(by);
  kc_free(run, &k);
  return rc;
}

/* The statistics bn forward would have saved for x, as floats. */
static void saved_stats(kc_buf *x, kc_buf *mean, kc_buf *invstd, int n, int c, int hw,
                        double eps)
{
  for (int ch = 0; ch < c; ch++) {
    double m, v, ma;
    bn_stats(x->val[KC_REF], n, c, hw, ch, &m, &v, &ma);
    mean->val[KC_REF][ch] = (double)(float)m;
    invstd->val[KC_REF][ch] = (double)(float)(1.0 / sqrt(v + eps));
  }
}

static int bn_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_backward(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
                         KC_DEV(k, 3, v), KC_DEV(k, 4, v), KC_DEV(k, 5, v), KC_DEV(k, 6, v),
                         KC_DEV(k, 7, v), err);
}

/* Bounds of bn backward, per channel, with xh = (x - m) invstd from the given (float)
 * m and invstd, S1 = sum |dy|, S2 = sum |dy xh| (kc_gamma: c = 2 where deterministic;
 * the other roundings 2x):
 *   dbeta:  Bb = kc_gamma(M + 1) S1;   dgamma: Bg = kc_gamma(M + 3) S2;
 *   dx:     |gamma| invstd (Bb/M + |xh| Bg/M + 12u (|dy| + S1/M + |xh| S2/M)). */
static void bn_backward_bounds(kc_run *run, const kc_shape *s, const double *dy,
                               const double *x, const double *g, const double *mean,
                               const double *inv, double *bx, double *bg, double *bb)
{
  const int n = s->a, c = s->b, hw = s->c;
  const double u = run->u, M = (double)n * hw;
  for (int ch = 0; ch < c; ch++) {
    double s1 = 0.0, s2 = 0.0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const size_t at = ((size_t)i * c + ch) * hw + j;
        s1 += fabs(dy[at]);
        s2 += fabs(dy[at] * (x[at] - mean[ch]) * inv[ch]);
      }
    bb[ch] = kc_gamma(run, M + 1) * s1;
    bg[ch] = kc_gamma(run, M + 3) * s2;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const size_t at = ((size_t)i * c + ch) * hw + j;
        const double xh = fabs((x[at] - mean[ch]) * inv[ch]);
        bx[at] = fabs(g[ch]) * inv[ch] *
                 (bb[ch] / M + xh * bg[ch] / M + 12 * u * (fabs(dy[at]) + s1 / M + xh * s2 / M));
      }
  }
}

int kc_bn_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int n = sh->a, c = sh->b, hw = sh->c;
  const size_t nx = (size_t)n * c * hw, nc = (size_t)c;
  kc_case k = {.sh = sh, .eps = AAL_BN_EPS};
  kc_add(&k, "dy", KC_IN, nx, 0);
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, nc, 0);
  kc_add(&k, "mean", KC_IN, nc, 0);
  kc_add(&k, "invstd", KC_IN, nc, 0);
  kc_add(&k, "dx", KC_OUT, nx, 0);
  kc_add(&k, "dgamma", KC_OUT, nc, 0);
  kc_add(&k, "dbeta", KC_OUT, nc, 0);
  double *bx = NULL, *bg = NULL, *bb = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((bx = kc_bounds(run, nx)) == NULL || (bg = kc_bounds(run, nc)) == NULL ||
                       (bb = kc_bounds(run, nc)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    fill_bn_x(run, &k.buf[1], n, c, hw);
    kc_fill_sym(run, &k.buf[2], 1.0);
    saved_stats(&k.buf[1], &k.buf[3], &k.buf[4], n, c, hw, k.eps);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, bn_backward_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    bn_backward_bounds(run, sh, k.buf[0].val[KC_REF], k.buf[1].val[KC_REF],
                       k.buf[2].val[KC_REF], k.buf[3].val[KC_REF], k.buf[4].val[KC_REF], bx,
                       bg, bb);
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

/* ---- bn_relu_forward */

static int bn_relu_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_relu_forward(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                             KC_DEV(k, 2, v), k->eps, KC_DEV(k, 3, v), KC_DEV(k, 4, v),
                             KC_DEV(k, 5, v), KC_DEV(k, 6, v), KC_DEV(k, 7, v), err);
}

/* bn_forward into a scratch z, relu_forward(z) on the tested backend: y, mask, mean,
 * invstd and var must be identical. */
static int bn_relu_forward_unfused(kc_run *run, kc_case *k, kc_row *row)
{
  const aal_backend *be = run->be[KC_GOT];
  const kc_shape *s = k->sh;
  const size_t nx = (size_t)s->a * s->b * s->c, nc = (size_t)s->b;
  kc_tmp t = {.run = run};
  int rc = AAL_OK, iz, iy, im, imean, iinv, ivar;
  if ((iz = kc_tmp_add(&t, nx, 0, NULL)) < 0 || (iy = kc_tmp_add(&t, nx, 0, NULL)) < 0 ||
      (im = kc_tmp_add(&t, nx, 1, k->buf[4].words[KC_GOT])) < 0 ||
      (imean = kc_tmp_add(&t, nc, 0, NULL)) < 0 || (iinv = kc_tmp_add(&t, nc, 0, NULL)) < 0 ||
      (ivar = kc_tmp_add(&t, nc, 0, NULL)) < 0)
    rc = run->err->code != AAL_OK ? run->err->code : AAL_ENOMEM;
  if (rc == AAL_OK) {
    aal_error e;
    aal_error_clear(&e);
    int orc;
    if ((orc = be->bn_forward(be, s->a, s->b, s->c, KC_DEV(k, 0, KC_GOT), KC_DEV(k, 1, KC_GOT),
                              KC_DEV(k, 2, KC_GOT), k->eps, t.dev[iz], t.dev[imean],
                              t.dev[iinv], t.dev[ivar], &e)) != AAL_OK)
      kc_unfused_failed(row, "bn_forward", orc, &e);
    else if ((orc = be->relu_forward(be, nx, t.dev[iz], t.dev[iy], t.dev[im], &e)) != AAL_OK)
      kc_unfused_failed(row, "relu_forward", orc, &e);
    else if ((rc = kc_tmp_download(&t)) == AAL_OK) {
      kc_check_same(row, "y", k->buf[3].val[KC_GOT], t.val[iy], nx);
      kc_check_same_bits(row, "mask", k->buf[4].words[KC_GOT], t.words[im], nx);
      kc_check_same(row, "mean", k->buf[5].val[KC_GOT], t.val[imean], nc);
      kc_check_same(row, "invstd", k->buf[6].val[KC_GOT], t.val[iinv], nc);
      kc_check_same(row, "var", k->buf[7].val[KC_GOT], t.val[ivar], nc);
    }
  }
  kc_tmp_free(&t);
  return rc;
}

int kc_bn_relu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return bn_train_case(run, sh, row, 1);
}

/* ---- bn_relu_backward */

static int bn_relu_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_relu_backward(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                              KC_DEV(k, 2, v), KC_DEV(k, 3, v), KC_DEV(k, 4, v), KC_DEV(k, 5, v),
                              KC_DEV(k, 6, v), KC_DEV(k, 7, v), KC_DEV(k, 8, v), err);
}

/* relu_backward into a scratch dz, bn_backward(dz) on the tested backend: dx, dgamma and
 * dbeta must be identical. */
static int bn_relu_backward_unfused(kc_run *run, kc_case *k, kc_row *row)
{
  const aal_backend *be = run->be[KC_GOT];
  const kc_shape *s = k->sh;
  const size_t nx = (size_t)s->a * s->b * s->c, nc = (size_t)s->b;
  kc_tmp t = {.run = run};
  int rc = AAL_OK, idz, idx, idg, idb;
  if ((idz = kc_tmp_add(&t, nx, 0, NULL)) < 0 || (idx = kc_tmp_add(&t, nx, 0, NULL)) < 0 ||
      (idg = kc_tmp_add(&t, nc, 0, NULL)) < 0 || (idb = kc_tmp_add(&t, nc, 0, NULL)) < 0)
    rc = run->err->code != AAL_OK ? run->err->code : AAL_ENOMEM;
  if (rc == AAL_OK) {
    aal_error e;
    aal_error_clear(&e);
    int orc;
    if ((orc = be->relu_backward(be, nx, KC_DEV(k, 0, KC_GOT), KC_DEV(k, 1, KC_GOT), t.dev[idz],
                                 &e)) != AAL_OK)
      kc_unfused_failed(row, "relu_backward", orc, &e);
    else if ((orc = be->bn_backward(be, s->a, s->b, s->c, t.dev[idz], KC_DEV(k, 2, KC_GOT),
                                    KC_DEV(k, 3, KC_GOT), KC_DEV(k, 4, KC_GOT),
                                    KC_DEV(k, 5, KC_GOT), t.dev[idx], t.dev[idg], t.dev[idb],
                                    &e)) != AAL_OK)
      kc_unfused_failed(row, "bn_backward", orc, &e);
    else if ((rc = kc_tmp_download(&t)) == AAL_OK) {
      kc_check_same(row, "dx", k->buf[6].val[KC_GOT], t.val[idx], nx);
      kc_check_same(row, "dgamma", k->buf[7].val[KC_GOT], t.val[idg], nc);
      kc_check_same(row, "dbeta", k->buf[8].val[KC_GOT], t.val[idb], nc);
    }
  }
  kc_tmp_free(&t);
  return rc;
}

/* dz = dy * mask is exact, so the bounds are bn_backward's with dz for dy. */
int kc_bn_relu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int n = sh->a, c = sh->b, hw = sh->c;
  const size_t nx = (size_t)n * c * hw, nc = (size_t)c;
  kc_case k = {.sh = sh, .eps = AAL_BN_EPS};
  kc_add(&k, "dy", KC_IN, nx, 0);
  kc_add(&k, "mask", KC_IN, nx, 1);
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, nc, 0);
  kc_add(&k, "mean", KC_IN, nc, 0);
  kc_add(&k, "invstd", KC_IN, nc, 0);
  kc_add(&k, "dx", KC_OUT, nx, 0);
  kc_add(&k, "dgamma", KC_OUT, nc, 0);
  kc_add(&k, "dbeta", KC_OUT, nc, 0);
  double *bx = NULL, *bg = NULL, *bb = NULL, *dz = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((bx = kc_bounds(run, nx)) == NULL || (bg = kc_bounds(run, nc)) == NULL ||
                       (bb = kc_bounds(run, nc)) == NULL || (dz = kc_bounds(run, nx)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_bits(run, &k.buf[1]);
    fill_bn_x(run, &k.buf[2], n, c, hw);
    kc_fill_sym(run, &k.buf[3], 1.0);
    saved_stats(&k.buf[2], &k.buf[4], &k.buf[5], n, c, hw, k.eps);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, bn_relu_backward_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    const uint32_t *w = k.buf[1].words[KC_REF];
    for (size_t i = 0; i < nx; i++)
      dz[i] = (w[i / 32] >> (i % 32)) & 1u ? k.buf[0].val[KC_REF][i] : 0.0;
    bn_backward_bounds(run, sh, dz, k.buf[2].val[KC_REF], k.buf[3].val[KC_REF],
                       k.buf[4].val[KC_REF], k.buf[5].val[KC_REF], bx, bg, bb);
    kc_check_bound(row, &k.buf[6], bx, 0);
    kc_check_bound(row, &k.buf[7], bg, 0);
    kc_check_bound(row, &k.buf[8], bb, 0);
    if (run->ext == NULL) /* a candidate's tensors have no backend to compose */
      rc = bn_relu_backward_unfused(run, &k, row);
  }
  free(bx);
  free(bg);
  free(bb);
  free(dz);
  kc_free(run, &k);
  return rc;
}
