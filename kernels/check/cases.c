/* The harness's cases: for each op, its inputs, its call and the bound each output
 * element must meet (derived in docs/KERNELS.md).  Notation: u is the tested backend's
 * unit roundoff (2^-24 for float32); "abs" is the reference run on |inputs|; c = 2
 * unless said otherwise (one factor of 2 of slack over the first-order bound). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/layers/layers.h" /* AAL_BN_EPS */

#define DEV(k, i, v) ((k)->buf[i].dev[v])

static void fill_sym(kc_run *run, kc_buf *b, double scale)
{
  for (size_t i = 0; i < b->n; i++)
    b->val[KC_REF][i] = kc_sym(run, scale);
}

static void fill_bits(kc_run *run, kc_buf *b)
{
  for (size_t i = 0; i < (b->n + 31) / 32; i++)
    b->words[KC_REF][i] = (uint32_t)gsl_rng_get(run->rng); /* mt19937: 32 random bits */
  if (b->n % 32) /* the unused high bits of the last word stay zero */
    b->words[KC_REF][b->n / 32] &= ((uint32_t)1 << (b->n % 32)) - 1;
}

static double *bounds(kc_run *run, size_t n)
{
  double *b = calloc(n, sizeof *b);
  if (b == NULL)
    aal_fail(run->err, AAL_ENOMEM, "kcheck: %zu bounds", n);
  return b;
}

/* ================================================================ conv
 * A conv output is a dot product of L terms (L = C*R*S forward, K*R*S backward-data,
 * N*P*Q backward-filter; padded positions contribute exact zeros), rounded to float:
 * |y - y_ref| <= 2 (L + 1) u (|A||B|)_ref. */

static size_t xsize(const aal_conv_shape *c) { return (size_t)c->n * c->c * c->h * c->w; }
static size_t wsize(const aal_conv_shape *c) { return (size_t)c->k * c->c * c->r * c->s; }
static size_t ysize(const aal_conv_shape *c) { return (size_t)c->n * c->k * c->p * c->q; }

static int conv_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->conv_forward(be, &k->sh->cs, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v), err);
}

static int conv_backward_data_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->conv_backward_data(be, &k->sh->cs, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                                err);
}

static int conv_backward_filter_call(const aal_backend *be, int v, kc_case *k,
                                     aal_error *err)
{
  return be->conv_backward_filter(be, &k->sh->cs, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                                  err);
}

/* Two inputs of n0 and n1 values in [-1, 1), one output of n2, bound 2 (L + 1) u abs. */
static int gemm_like(kc_run *run, const kc_shape *sh, kc_row *row, kc_call call,
                     const char *names[3], const size_t n[3], double terms)
{
  kc_case k = {.sh = sh};
  kc_add(&k, names[0], KC_IN, n[0], 0);
  kc_add(&k, names[1], KC_IN, n[1], 0);
  kc_add(&k, names[2], KC_OUT, n[2], 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    fill_sym(run, &k.buf[1], 1.0);
    rc = kc_execute(run, &k, call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_scaled(run, row, &k.buf[2], 2.0, terms + 1.0);
  kc_free(run, &k);
  return rc;
}

static int conv_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const aal_conv_shape *c = &sh->cs;
  const char *names[3] = {"x", "w", "y"};
  const size_t n[3] = {xsize(c), wsize(c), ysize(c)};
  return gemm_like(run, sh, row, conv_forward_call, names, n, (double)c->c * c->r * c->s);
}

static int conv_backward_data_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const aal_conv_shape *c = &sh->cs;
  const char *names[3] = {"dy", "w", "dx"};
  const size_t n[3] = {ysize(c), wsize(c), xsize(c)};
  return gemm_like(run, sh, row, conv_backward_data_call, names, n,
                   (double)c->k * c->r * c->s);
}

static int conv_backward_filter_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const aal_conv_shape *c = &sh->cs;
  const char *names[3] = {"x", "dy", "dw"};
  const size_t n[3] = {xsize(c), ysize(c), wsize(c)};
  return gemm_like(run, sh, row, conv_backward_filter_call, names, n,
                   (double)c->n * c->p * c->q);
}

/* ================================================================ batch norm */

/* x [n, c, hw]: channel ch gets scale 10^-U(0,3) and an offset within half its scale,
 * so that some channels have a variance far below eps and the eps term matters. */
static void fill_bn_x(kc_run *run, kc_buf *x, int n, int c, int hw)
{
  for (int ch = 0; ch < c; ch++) {
    const double scale = pow(10.0, -3.0 * gsl_rng_uniform(run->rng));
    const double offset = 0.5 * kc_sym(run, scale);
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
  return be->bn_forward(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                        k->eps, DEV(k, 3, v), DEV(k, 4, v), DEV(k, 5, v), err);
}

/* Bounds of bn forward, per channel (M = N*HW, m, v, ma = mean |x| from the reference):
 *   mean:   Em = (M + 2) u ma                       (a sum of M terms, a division)
 *   var:    Ev = (M + 4) u (v + m^2)                (two-pass or Welford; not E[x^2]-m^2)
 *   invstd: rel = Ev / (2 (v + eps)) + 3u           (sqrt halves the relative error)
 *   y:      |gamma| invstd (Em + |x - m| rel) + 5u (|gamma (x - m) invstd| + |beta|)
 * each times c = 2. */
static void bn_forward_bounds(kc_run *run, kc_case *k, double *by, double *bm, double *bi)
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
    const double em = (M + 2) * u * ma, ev = (M + 4) * u * (v + m * m);
    const double rel = ev / (2 * (v + k->eps)) + 3 * u;
    bm[ch] = 2 * em;
    bi[ch] = 2 * rel * is;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const size_t at = ((size_t)i * c + ch) * hw + j;
        const double d = fabs(x[at] - m);
        by[at] = 2 * (fabs(g[ch]) * is * (em + d * rel) +
                      5 * u * (fabs(g[ch]) * d * is + fabs(be[ch])));
      }
  }
}

static int bn_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nx = (size_t)sh->a * sh->b * sh->c, nc = (size_t)sh->b;
  kc_case k = {.sh = sh, .eps = AAL_BN_EPS};
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, nc, 0);
  kc_add(&k, "beta", KC_IN, nc, 0);
  kc_add(&k, "y", KC_OUT, nx, 0);
  kc_add(&k, "mean", KC_OUT, nc, 0);
  kc_add(&k, "invstd", KC_OUT, nc, 0);
  double *by = NULL, *bm = NULL, *bi = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((by = bounds(run, nx)) == NULL || (bm = bounds(run, nc)) == NULL ||
                       (bi = bounds(run, nc)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_bn_x(run, &k.buf[0], sh->a, sh->b, sh->c);
    fill_sym(run, &k.buf[1], 1.0);
    fill_sym(run, &k.buf[2], 1.0);
    rc = kc_execute(run, &k, bn_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    bn_forward_bounds(run, &k, by, bm, bi);
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

static int bn_forward_eval_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_forward_eval(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                             DEV(k, 3, v), DEV(k, 4, v), k->eps, DEV(k, 5, v), err);
}

/* Evaluation mode: the training bound's y term with the statistics given (Em = 0) and
 * invstd = 1/sqrt(rv + eps) from rv in at most 3 roundings (rel = 3u):
 *   y: 2 (|gamma| is d 3u + 5u (|gamma| d is + |beta|)),  d = |x - rm|.
 * rv = 10^-U(0,6) reaches below eps = 1e-5, so that eps matters for some channels. */
static int bn_forward_eval_case(kc_run *run, const kc_shape *sh, kc_row *row)
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
  if (rc == AAL_OK && (by = bounds(run, nx)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_bn_x(run, &k.buf[0], sh->a, sh->b, sh->c);
    fill_sym(run, &k.buf[1], 1.0);
    fill_sym(run, &k.buf[2], 1.0);
    for (size_t ch = 0; ch < nc; ch++) {
      k.buf[3].val[KC_REF][ch] = (double)(float)kc_sym(run, 0.01);
      k.buf[4].val[KC_REF][ch] = (double)(float)pow(10.0, -6.0 * gsl_rng_uniform(run->rng));
    }
    rc = kc_execute(run, &k, bn_forward_eval_call, 0, row, &ran);
  }
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
  return be->bn_backward(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                         DEV(k, 3, v), DEV(k, 4, v), DEV(k, 5, v), DEV(k, 6, v),
                         DEV(k, 7, v), err);
}

/* Bounds of bn backward, per channel, with xh = (x - m) invstd from the given (float)
 * m and invstd, S1 = sum |dy|, S2 = sum |dy xh|:
 *   dbeta:  (M + 1) u S1;   dgamma: (M + 3) u S2;
 *   dx:     |gamma| invstd ((M + 1) u S1/M + |xh| (M + 3) u S2/M
 *                           + 6u (|dy| + S1/M + |xh| S2/M))
 * each times c = 2. */
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
    bb[ch] = 2 * (M + 1) * u * s1;
    bg[ch] = 2 * (M + 3) * u * s2;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const size_t at = ((size_t)i * c + ch) * hw + j;
        const double xh = fabs((x[at] - mean[ch]) * inv[ch]);
        bx[at] = 2 * fabs(g[ch]) * inv[ch] *
                 ((M + 1) * u * s1 / M + xh * (M + 3) * u * s2 / M +
                  6 * u * (fabs(dy[at]) + s1 / M + xh * s2 / M));
      }
  }
}

static int bn_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
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
  if (rc == AAL_OK && ((bx = bounds(run, nx)) == NULL || (bg = bounds(run, nc)) == NULL ||
                       (bb = bounds(run, nc)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    fill_bn_x(run, &k.buf[1], n, c, hw);
    fill_sym(run, &k.buf[2], 1.0);
    saved_stats(&k.buf[1], &k.buf[3], &k.buf[4], n, c, hw, k.eps);
    rc = kc_execute(run, &k, bn_backward_call, 0, row, &ran);
  }
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

/* ================================================================ ReLU, signs (exact) */

static int relu_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->relu_forward(be, k->sh->len, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v), err);
}

static int relu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, sh->len, 0);
  kc_add(&k, "y", KC_OUT, sh->len, 0);
  kc_add(&k, "mask", KC_OUT, sh->len, 1);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, relu_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    kc_check_exact(row, &k.buf[1]);
    kc_check_bits(row, &k.buf[2]);
  }
  kc_free(run, &k);
  return rc;
}

static int relu_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->relu_backward(be, k->sh->len, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v), err);
}

static int relu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "dy", KC_IN, sh->len, 0);
  kc_add(&k, "mask", KC_IN, sh->len, 1);
  kc_add(&k, "dx", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    fill_bits(run, &k.buf[1]);
    rc = kc_execute(run, &k, relu_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_exact(row, &k.buf[2]);
  kc_free(run, &k);
  return rc;
}

static int sign_pack_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->sign_pack(be, k->sh->len, DEV(k, 0, v), DEV(k, 1, v), err);
}

static int sign_pack_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, sh->len, 0);
  kc_add(&k, "bits", KC_OUT, sh->len, 1);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, sign_pack_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_bits(row, &k.buf[1]);
  kc_free(run, &k);
  return rc;
}

static int sign_unpack_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->sign_unpack(be, k->sh->len, DEV(k, 0, v), k->eps, DEV(k, 1, v), err);
}

/* out = eps * bit: one rounding of eps, |out - ref| <= u eps bit; bound 2u eps bit. */
static int sign_unpack_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh, .eps = 0.1}; /* not a float: the rounding of eps is checked */
  kc_add(&k, "bits", KC_IN, sh->len, 1);
  kc_add(&k, "out", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_bits(run, &k.buf[0]);
    rc = kc_execute(run, &k, sign_unpack_call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_scaled(run, row, &k.buf[1], 2.0, 1.0);
  kc_free(run, &k);
  return rc;
}

/* ================================================================ add, scale, pooling */

static int scale_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  /* the absolute-value run scales by |s| */
  const double s = v == KC_ABS ? fabs(k->lr) : k->lr;
  return be->scale(be, k->sh->len, DEV(k, 0, v), s, DEV(k, 1, v), err);
}

/* y = s x, one rounding of the product (s stays in double): |y - y_ref| <= u |s x|;
 * the bound is 2u |s| |x| (c = 2, K = 1: a factor 2 of slack).  s = -100.3: ASA's
 * lr_expansion is 100; not a float, and negative, so that a kernel that rounds s to
 * float or drops its sign shows. */
static int scale_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh, .lr = -100.3};
  kc_add(&k, "x", KC_IN, sh->len, 0);
  kc_add(&k, "y", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, scale_call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_scaled(run, row, &k.buf[1], 2.0, 1.0);
  kc_free(run, &k);
  return rc;
}

static int add_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->add(be, k->sh->len, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v), err);
}

/* y = a + b, correctly rounded: |y - y_ref| <= u |a + b| <= u (|a| + |b|); the bound is
 * 2u (|a| + |b|) (c = 2, K = 1: a factor 2 of slack, as elsewhere). */
static int add_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "a", KC_IN, sh->len, 0);
  kc_add(&k, "b", KC_IN, sh->len, 0);
  kc_add(&k, "y", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    fill_sym(run, &k.buf[1], 1.0);
    rc = kc_execute(run, &k, add_call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_scaled(run, row, &k.buf[2], 2.0, 1.0);
  kc_free(run, &k);
  return rc;
}

static int avgpool_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->avgpool_forward(be, k->sh->a, k->sh->b, DEV(k, 0, v), DEV(k, 1, v), err);
}

static int avgpool_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->avgpool_backward(be, k->sh->a, k->sh->b, DEV(k, 0, v), DEV(k, 1, v), err);
}

/* One input, one output: forward is a sum of hw terms and a division (K = hw + 2);
 * backward one division, or a multiplication by a rounded 1/hw (K = 2). */
static int pool_case(kc_run *run, const kc_shape *sh, kc_row *row, int forward)
{
  const size_t big = (size_t)sh->a * sh->b, small = (size_t)sh->a;
  kc_case k = {.sh = sh};
  kc_add(&k, forward ? "x" : "dy", KC_IN, forward ? big : small, 0);
  kc_add(&k, forward ? "y" : "dx", KC_OUT, forward ? small : big, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, forward ? avgpool_forward_call : avgpool_backward_call, 1, row,
                    &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_scaled(run, row, &k.buf[1], 2.0, forward ? sh->b + 2.0 : 2.0);
  kc_free(run, &k);
  return rc;
}

static int avgpool_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return pool_case(run, sh, row, 1);
}

static int avgpool_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return pool_case(run, sh, row, 0);
}

/* ================================================================ linear */

static int linear_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->linear_forward(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                            DEV(k, 3, v), err);
}

/* y = x w^T + b: I products and the bias (K = I + 2, abs = |x||w|^T + |b|). */
static int linear_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t n = (size_t)sh->a, in = (size_t)sh->b, out = (size_t)sh->c;
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, n * in, 0);
  kc_add(&k, "w", KC_IN, out * in, 0);
  kc_add(&k, "b", KC_IN, out, 0);
  kc_add(&k, "y", KC_OUT, n * out, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    for (int i = 0; i < 3; i++)
      fill_sym(run, &k.buf[i], 1.0);
    rc = kc_execute(run, &k, linear_forward_call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_scaled(run, row, &k.buf[3], 2.0, in + 2.0);
  kc_free(run, &k);
  return rc;
}

static int linear_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->linear_backward(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                             DEV(k, 3, v), DEV(k, 4, v), DEV(k, 5, v), err);
}

/* dx = dy w (K = O + 1), dw = dy^T x (K = N + 1), db = sum_n dy (K = N + 1). */
static int linear_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t n = (size_t)sh->a, in = (size_t)sh->b, out = (size_t)sh->c;
  kc_case k = {.sh = sh};
  kc_add(&k, "dy", KC_IN, n * out, 0);
  kc_add(&k, "x", KC_IN, n * in, 0);
  kc_add(&k, "w", KC_IN, out * in, 0);
  kc_add(&k, "dx", KC_OUT, n * in, 0);
  kc_add(&k, "dw", KC_OUT, out * in, 0);
  kc_add(&k, "db", KC_OUT, out, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    for (int i = 0; i < 3; i++)
      fill_sym(run, &k.buf[i], 1.0);
    rc = kc_execute(run, &k, linear_backward_call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    kc_check_scaled(run, row, &k.buf[3], 2.0, out + 1.0);
    kc_check_scaled(run, row, &k.buf[4], 2.0, n + 1.0);
    kc_check_scaled(run, row, &k.buf[5], 2.0, n + 1.0);
  }
  kc_free(run, &k);
  return rc;
}

/* ================================================================ softmax cross-entropy */

static int fill_labels(kc_run *run, kc_case *k, int n, int classes)
{
  k->labels = malloc((size_t)n * sizeof *k->labels);
  if (k->labels == NULL)
    return aal_fail(run->err, AAL_ENOMEM, "kcheck: %d labels", n);
  for (int i = 0; i < n; i++)
    k->labels[i] = (int)gsl_rng_uniform_int(run->rng, (unsigned long)classes);
  return AAL_OK;
}

static int xent_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->xent_forward(be, k->sh->a, k->sh->b, DEV(k, 0, v), k->labels, &k->loss[v],
                          DEV(k, 1, v), err);
}

/* Bounds of softmax cross-entropy (per row: mx the max logit, D_j = mx - z_j, s the sum
 * of exp(-D_j), C classes; exp and log within 2 ulp):
 *   prob_j: p_j (C + 5 + D_j + max D) u            (exp's argument off by u D_j; s off
 *                                                   by (C + 2 + max D) u; the division)
 *   loss:   mean_n [u D_label + (C + 2 + max D) u + 2u log s + u L_n] + (N + 1) u L
 * each times c = 2. */
static void xent_bounds(kc_run *run, kc_case *k, double *bp, double *bl)
{
  const int n = k->sh->a, C = k->sh->b;
  const double u = run->u, *z = k->buf[0].val[KC_REF], *p = k->buf[1].val[KC_REF];
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    const double *zi = z + (size_t)i * C;
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < C; j++)
      mx = zi[j] > mx ? zi[j] : mx;
    double dmax = 0.0;
    for (int j = 0; j < C; j++) {
      s += exp(zi[j] - mx);
      dmax = mx - zi[j] > dmax ? mx - zi[j] : dmax;
    }
    for (int j = 0; j < C; j++)
      bp[(size_t)i * C + j] = 2 * p[(size_t)i * C + j] * (C + 5 + (mx - zi[j]) + dmax) * u;
    const double dl = mx - zi[k->labels[i]], ln = dl + log(s);
    sum += u * dl + (C + 2 + dmax) * u + 2 * u * log(s) + u * ln;
  }
  *bl = 2 * (sum / n + (n + 1) * u * k->loss[KC_REF]);
}

static int xent_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nz = (size_t)sh->a * sh->b;
  kc_case k = {.sh = sh, .loss = {NAN, NAN, NAN}};
  kc_add(&k, "logits", KC_IN, nz, 0);
  kc_add(&k, "prob", KC_OUT, nz, 0);
  double *bp = NULL, bl = 0.0;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bp = bounds(run, nz)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = fill_labels(run, &k, sh->a, sh->b);
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 4.0); /* logits in +-4: probabilities from ~e^-8 to ~1 */
    rc = kc_execute(run, &k, xent_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    xent_bounds(run, &k, bp, &bl);
    kc_check_bound(row, &k.buf[1], bp, 0);
    kc_check_scalar(row, "loss", k.loss[KC_REF], k.loss[KC_GOT], bl);
  }
  free(bp);
  kc_free(run, &k);
  return rc;
}

static int xent_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->xent_backward(be, k->sh->a, k->sh->b, DEV(k, 0, v), k->labels, DEV(k, 1, v),
                           err);
}

/* dlogits = (p - onehot) / N: a subtraction and a division, |err| <= 2 * 2u (p + onehot)/N. */
static int xent_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int n = sh->a, C = sh->b;
  const size_t nz = (size_t)n * C;
  kc_case k = {.sh = sh};
  kc_add(&k, "prob", KC_IN, nz, 0);
  kc_add(&k, "dlogits", KC_OUT, nz, 0);
  double *bd = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bd = bounds(run, nz)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = fill_labels(run, &k, n, C);
  if (rc == AAL_OK) {
    double *p = k.buf[0].val[KC_REF];
    for (int i = 0; i < n; i++) { /* a softmax of logits in +-4, rounded to float */
      double s = 0.0;
      for (int j = 0; j < C; j++)
        s += (p[(size_t)i * C + j] = exp(kc_sym(run, 4.0)));
      for (int j = 0; j < C; j++)
        p[(size_t)i * C + j] = (double)(float)(p[(size_t)i * C + j] / s);
    }
    rc = kc_execute(run, &k, xent_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    for (int i = 0; i < n; i++)
      for (int j = 0; j < C; j++) {
        const size_t at = (size_t)i * C + j;
        bd[at] = 4 * run->u * (k.buf[0].val[KC_REF][at] + (j == k.labels[i])) / n;
      }
    kc_check_bound(row, &k.buf[1], bd, 0);
  }
  free(bd);
  kc_free(run, &k);
  return rc;
}

/* ================================================================ LI, SGD */

static int li_reduce_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->li_reduce(be, k->sh->a, k->sh->len, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                       err);
}

/* r = alpha h + beta noise per sample (LI spread around [-3, 1]); the last sample of a
 * batch of two or more has h = 0 and must give NaN (li is poisoned with +Inf, so an
 * unwritten NaN cannot pass). */
static void fill_li(kc_run *run, kc_case *k)
{
  const int n = k->sh->a;
  const size_t per = k->sh->len;
  double *h = k->buf[0].val[KC_REF], *r = k->buf[1].val[KC_REF];
  for (int s = 0; s < n; s++) {
    const double alpha = 3 * gsl_rng_uniform(run->rng) - 1, beta = gsl_rng_uniform(run->rng);
    const int zero = n >= 2 && s == n - 1;
    for (size_t i = 0; i < per; i++) {
      const size_t at = (size_t)s * per + i;
      h[at] = zero ? 0.0 : kc_sym(run, 1.0);
      r[at] = (double)(float)(alpha * h[at] + beta * kc_sym(run, 1.0));
    }
  }
}

/* With hh = h.h, A = sum |r h|, rr = r.r over `per` terms, each sum within
 * (per) u of its absolute sum, and LI = (2 rh - rr)/hh:
 *   |LI - LI_ref| <= c (2 per + 4) u (2A + rr) / hh,  c = 2. */
static void li_bounds(kc_run *run, kc_case *k, double *bl)
{
  const size_t per = k->sh->len;
  for (int s = 0; s < k->sh->a; s++) {
    const double *h = k->buf[0].val[KC_REF] + (size_t)s * per;
    const double *r = k->buf[1].val[KC_REF] + (size_t)s * per;
    double hh = 0.0, a = 0.0, rr = 0.0;
    for (size_t i = 0; i < per; i++) {
      hh += h[i] * h[i];
      a += fabs(r[i] * h[i]);
      rr += r[i] * r[i];
    }
    bl[s] = hh > 0 ? 2 * (2.0 * per + 4) * run->u * (2 * a + rr) / hh : 0.0;
  }
}

static int li_reduce_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nh = (size_t)sh->a * sh->len;
  kc_case k = {.sh = sh};
  kc_add(&k, "h", KC_IN, nh, 0);
  kc_add(&k, "r", KC_IN, nh, 0);
  kc_add(&k, "li", KC_OUT, (size_t)sh->a, 0);
  k.buf[2].poison_inf = 1;
  double *bl = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bl = bounds(run, (size_t)sh->a)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_li(run, &k);
    rc = kc_execute(run, &k, li_reduce_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    li_bounds(run, &k, bl);
    kc_check_bound(row, &k.buf[2], bl, 1);
  }
  free(bl);
  kc_free(run, &k);
  return rc;
}

static int sgd_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->sgd_update(be, k->sh->len, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v), k->lr,
                        k->momentum, k->wd, k->first, err);
}

/* With B = momentum |buf| (0 when first) + |g| + wd |w| and lr, momentum, wd rounded
 * to the backend's precision:
 *   buf: 4u B;   w: u |w| + 7u lr B   (each times c = 2). */
static void sgd_bounds(kc_run *run, kc_case *k, double *bw, double *bb)
{
  const double u = run->u;
  const double *w = k->buf[0].val[KC_REF], *g = k->buf[1].val[KC_REF];
  const double *b = k->buf[2].val[KC_REF];
  for (size_t i = 0; i < k->sh->len; i++) {
    const double B = (k->first ? 0.0 : k->momentum * fabs(b[i])) + fabs(g[i]) +
                     k->wd * fabs(w[i]);
    bb[i] = 2 * 4 * u * B;
    bw[i] = 2 * (u * fabs(w[i]) + 7 * u * k->lr * B);
  }
}

static int sgd_once(kc_run *run, const kc_shape *sh, kc_row *row, int first)
{
  kc_case k = {.sh = sh, .lr = 0.05, .momentum = 0.9, .wd = 5e-4, .first = first};
  kc_add(&k, first ? "w(first)" : "w", KC_INOUT, sh->len, 0);
  kc_add(&k, "g", KC_IN, sh->len, 0);
  kc_add(&k, first ? "buf(first)" : "buf", KC_INOUT, sh->len, 0);
  double *bw = NULL, *bb = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((bw = bounds(run, sh->len)) == NULL || (bb = bounds(run, sh->len)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    for (int i = 0; i < 3; i++)
      fill_sym(run, &k.buf[i], 1.0);
    sgd_bounds(run, &k, bw, bb); /* from the inputs, before the update overwrites them */
    rc = kc_execute(run, &k, sgd_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    kc_check_bound(row, &k.buf[0], bw, 0);
    kc_check_bound(row, &k.buf[2], bb, 0);
  }
  free(bw);
  free(bb);
  kc_free(run, &k);
  return rc;
}

static int sgd_update_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  int rc = sgd_once(run, sh, row, 1);
  return rc == AAL_OK ? sgd_once(run, sh, row, 0) : rc;
}

/* ================================================================ fused ops
 * Each fused op is checked twice: against the reference within the bound of the unfused
 * ops it replaces, and against the unfused composition on the tested backend itself,
 * bit for bit (scratch buffers on that backend, poisoned first: NaN, or the complement
 * of the fused op's bits). */

#define KC_MAXTMP 6

typedef struct {
  kc_run *run;
  int n;
  void *dev[KC_MAXTMP];
  size_t len[KC_MAXTMP];
  int bits[KC_MAXTMP];
  double *val[KC_MAXTMP];
  uint32_t *words[KC_MAXTMP];
} kc_tmp;

/* A poisoned buffer of len values (bits: len bits, poisoned with ~fused) on the tested
 * backend; its index, or -1 with run->err set. */
static int tmp_add(kc_tmp *t, size_t len, int bits, const uint32_t *fused)
{
  const aal_backend *be = t->run->be[KC_GOT];
  aal_error *err = t->run->err;
  if (t->n >= KC_MAXTMP) {
    aal_fail(err, AAL_EINVAL, "kcheck: more than %d scratch buffers", KC_MAXTMP);
    return -1;
  }
  const int i = t->n++;
  const size_t nw = (len + 31) / 32;
  t->len[i] = len;
  t->bits[i] = bits;
  int rc = bits ? be->alloc_bits(be, len, &t->dev[i], err)
                : be->alloc(be, len, &t->dev[i], err);
  if (rc != AAL_OK)
    return -1;
  if (bits) {
    if ((t->words[i] = malloc(nw * sizeof(uint32_t))) == NULL) {
      aal_fail(err, AAL_ENOMEM, "kcheck: scratch of %zu bits", len);
      return -1;
    }
    for (size_t j = 0; j < nw; j++)
      t->words[i][j] = ~fused[j];
    rc = be->upload_bits(be, t->dev[i], t->words[i], len, err);
  } else {
    if ((t->val[i] = malloc(len * sizeof(double))) == NULL) {
      aal_fail(err, AAL_ENOMEM, "kcheck: scratch of %zu values", len);
      return -1;
    }
    for (size_t j = 0; j < len; j++)
      t->val[i][j] = NAN;
    rc = be->upload(be, t->dev[i], t->val[i], len, err);
  }
  return rc == AAL_OK ? i : -1;
}

static int tmp_download(kc_tmp *t)
{
  const aal_backend *be = t->run->be[KC_GOT];
  for (int i = 0; i < t->n; i++) {
    const int rc = t->bits[i]
                       ? be->download_bits(be, t->words[i], t->dev[i], t->len[i], t->run->err)
                       : be->download(be, t->val[i], t->dev[i], t->len[i], t->run->err);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

static void tmp_free(kc_tmp *t)
{
  for (int i = 0; i < t->n; i++) {
    if (t->dev[i] != NULL)
      t->run->be[KC_GOT]->release(t->run->be[KC_GOT], t->dev[i]);
    free(t->val[i]);
    free(t->words[i]);
  }
  t->n = 0;
}

/* An unfused op of the composition returned an error: the row fails (it is the tested
 * backend's op, not the harness). */
static void unfused_failed(kc_row *row, const char *op, int rc, const aal_error *e)
{
  row->failed = 1;
  row->ratio = INFINITY;
  snprintf(row->note, sizeof row->note, "the unfused %s returned %s: %s", op,
           aal_status_name(rc), e->msg);
}

/* ---- asa_input */

static int asa_input_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->asa_input(be, k->sh->len, DEV(k, 0, v), k->eps, DEV(k, 1, v), DEV(k, 2, v), err);
}

/* sign_pack, sign_unpack, add on the tested backend: h and bits must be identical. */
static int asa_input_unfused(kc_run *run, kc_case *k, kc_row *row)
{
  const aal_backend *be = run->be[KC_GOT];
  const size_t n = k->sh->len;
  kc_tmp t = {.run = run};
  int rc = AAL_OK, ib, io, ih;
  if ((ib = tmp_add(&t, n, 1, k->buf[2].words[KC_GOT])) < 0 ||
      (io = tmp_add(&t, n, 0, NULL)) < 0 || (ih = tmp_add(&t, n, 0, NULL)) < 0)
    rc = run->err->code != AAL_OK ? run->err->code : AAL_ENOMEM;
  if (rc == AAL_OK) {
    aal_error e;
    aal_error_clear(&e);
    const void *x = DEV(k, 0, KC_GOT);
    int orc;
    if ((orc = be->sign_pack(be, n, x, t.dev[ib], &e)) != AAL_OK)
      unfused_failed(row, "sign_pack", orc, &e);
    else if ((orc = be->sign_unpack(be, n, t.dev[ib], k->eps, t.dev[io], &e)) != AAL_OK)
      unfused_failed(row, "sign_unpack", orc, &e);
    else if ((orc = be->add(be, n, x, t.dev[io], t.dev[ih], &e)) != AAL_OK)
      unfused_failed(row, "add", orc, &e);
    else if ((rc = tmp_download(&t)) == AAL_OK) {
      kc_check_same(row, "h", k->buf[1].val[KC_GOT], t.val[ih], n);
      kc_check_same_bits(row, "bits", k->buf[2].words[KC_GOT], t.words[ib], n);
    }
  }
  tmp_free(&t);
  return rc;
}

/* h = x + eps bit with eps rounded once to the backend (|e - eps| <= u eps) and one
 * rounded addition: |h - h_ref| <= u eps bit + u |x + e bit| <= u (|x| + 2 eps bit)
 * (to first order); the bound is 2u (|x| + 2 eps bit).  bits = (x > 0) of an exact input:
 * exact. */
static int asa_input_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t n = sh->len;
  kc_case k = {.sh = sh, .eps = 0.1}; /* not a float: the rounding of eps is checked */
  kc_add(&k, "x", KC_IN, n, 0);
  kc_add(&k, "h", KC_OUT, n, 0);
  kc_add(&k, "bits", KC_OUT, n, 1);
  double *bh = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bh = bounds(run, n)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, asa_input_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const double *x = k.buf[0].val[KC_REF];
    for (size_t i = 0; i < n; i++)
      bh[i] = 2 * run->u * (fabs(x[i]) + 2 * k.eps * (x[i] > 0));
    kc_check_bound(row, &k.buf[1], bh, 0);
    kc_check_bits(row, &k.buf[2]);
    rc = asa_input_unfused(run, &k, row);
  }
  free(bh);
  kc_free(run, &k);
  return rc;
}

/* ---- bn_relu_forward */

static int bn_relu_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_relu_forward(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                             k->eps, DEV(k, 3, v), DEV(k, 4, v), DEV(k, 5, v), DEV(k, 6, v),
                             err);
}

/* bn_forward into a scratch z, relu_forward(z) on the tested backend: y, mask, mean and
 * invstd must be identical. */
static int bn_relu_forward_unfused(kc_run *run, kc_case *k, kc_row *row)
{
  const aal_backend *be = run->be[KC_GOT];
  const kc_shape *s = k->sh;
  const size_t nx = (size_t)s->a * s->b * s->c, nc = (size_t)s->b;
  kc_tmp t = {.run = run};
  int rc = AAL_OK, iz, iy, im, imean, iinv;
  if ((iz = tmp_add(&t, nx, 0, NULL)) < 0 || (iy = tmp_add(&t, nx, 0, NULL)) < 0 ||
      (im = tmp_add(&t, nx, 1, k->buf[4].words[KC_GOT])) < 0 ||
      (imean = tmp_add(&t, nc, 0, NULL)) < 0 || (iinv = tmp_add(&t, nc, 0, NULL)) < 0)
    rc = run->err->code != AAL_OK ? run->err->code : AAL_ENOMEM;
  if (rc == AAL_OK) {
    aal_error e;
    aal_error_clear(&e);
    int orc;
    if ((orc = be->bn_forward(be, s->a, s->b, s->c, DEV(k, 0, KC_GOT), DEV(k, 1, KC_GOT),
                              DEV(k, 2, KC_GOT), k->eps, t.dev[iz], t.dev[imean],
                              t.dev[iinv], &e)) != AAL_OK)
      unfused_failed(row, "bn_forward", orc, &e);
    else if ((orc = be->relu_forward(be, nx, t.dev[iz], t.dev[iy], t.dev[im], &e)) != AAL_OK)
      unfused_failed(row, "relu_forward", orc, &e);
    else if ((rc = tmp_download(&t)) == AAL_OK) {
      kc_check_same(row, "y", k->buf[3].val[KC_GOT], t.val[iy], nx);
      kc_check_same_bits(row, "mask", k->buf[4].words[KC_GOT], t.words[im], nx);
      kc_check_same(row, "mean", k->buf[5].val[KC_GOT], t.val[imean], nc);
      kc_check_same(row, "invstd", k->buf[6].val[KC_GOT], t.val[iinv], nc);
    }
  }
  tmp_free(&t);
  return rc;
}

/* The bounds of bn_forward (y = max(z, 0) is 1-Lipschitz, so z's bound holds for y);
 * a mask bit may differ from the reference only where |z_ref| is within that bound of 0
 * (a tie: z_ref recomputed in double from the reference's mean and invstd, as
 * sim/layers/batchnorm.c computes it). */
static int bn_relu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nx = (size_t)sh->a * sh->b * sh->c, nc = (size_t)sh->b;
  kc_case k = {.sh = sh, .eps = AAL_BN_EPS};
  kc_add(&k, "x", KC_IN, nx, 0);
  kc_add(&k, "gamma", KC_IN, nc, 0);
  kc_add(&k, "beta", KC_IN, nc, 0);
  kc_add(&k, "y", KC_OUT, nx, 0);
  kc_add(&k, "mask", KC_OUT, nx, 1);
  kc_add(&k, "mean", KC_OUT, nc, 0);
  kc_add(&k, "invstd", KC_OUT, nc, 0);
  double *by = NULL, *bm = NULL, *bi = NULL, *z = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((by = bounds(run, nx)) == NULL || (bm = bounds(run, nc)) == NULL ||
                       (bi = bounds(run, nc)) == NULL || (z = bounds(run, nx)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_bn_x(run, &k.buf[0], sh->a, sh->b, sh->c);
    fill_sym(run, &k.buf[1], 1.0);
    fill_sym(run, &k.buf[2], 1.0);
    rc = kc_execute(run, &k, bn_relu_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    bn_forward_bounds(run, &k, by, bm, bi); /* reads x, gamma, beta: buffers 0-2 */
    const double *x = k.buf[0].val[KC_REF], *g = k.buf[1].val[KC_REF];
    const double *b = k.buf[2].val[KC_REF], *m = k.buf[5].val[KC_REF];
    const double *is = k.buf[6].val[KC_REF];
    for (size_t i = 0; i < nx; i++) {
      const size_t ch = (i / (size_t)sh->c) % nc;
      z[i] = (x[i] - m[ch]) * (g[ch] * is[ch]) + b[ch];
    }
    kc_check_bound(row, &k.buf[3], by, 0);
    const size_t ties = kc_check_bits_ties(row, &k.buf[4], z, by);
    kc_check_bound(row, &k.buf[5], bm, 0);
    kc_check_bound(row, &k.buf[6], bi, 0);
    rc = bn_relu_forward_unfused(run, &k, row);
    if (ties > 0 && row->note[0] == '\0')
      snprintf(row->note, sizeof row->note, "%zu mask ties (|z_ref| within the bound of 0)",
               ties);
  }
  free(by);
  free(bm);
  free(bi);
  free(z);
  kc_free(run, &k);
  return rc;
}

/* ---- bn_relu_backward */

static int bn_relu_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->bn_relu_backward(be, s->a, s->b, s->c, DEV(k, 0, v), DEV(k, 1, v), DEV(k, 2, v),
                              DEV(k, 3, v), DEV(k, 4, v), DEV(k, 5, v), DEV(k, 6, v),
                              DEV(k, 7, v), DEV(k, 8, v), err);
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
  if ((idz = tmp_add(&t, nx, 0, NULL)) < 0 || (idx = tmp_add(&t, nx, 0, NULL)) < 0 ||
      (idg = tmp_add(&t, nc, 0, NULL)) < 0 || (idb = tmp_add(&t, nc, 0, NULL)) < 0)
    rc = run->err->code != AAL_OK ? run->err->code : AAL_ENOMEM;
  if (rc == AAL_OK) {
    aal_error e;
    aal_error_clear(&e);
    int orc;
    if ((orc = be->relu_backward(be, nx, DEV(k, 0, KC_GOT), DEV(k, 1, KC_GOT), t.dev[idz],
                                 &e)) != AAL_OK)
      unfused_failed(row, "relu_backward", orc, &e);
    else if ((orc = be->bn_backward(be, s->a, s->b, s->c, t.dev[idz], DEV(k, 2, KC_GOT),
                                    DEV(k, 3, KC_GOT), DEV(k, 4, KC_GOT), DEV(k, 5, KC_GOT),
                                    t.dev[idx], t.dev[idg], t.dev[idb], &e)) != AAL_OK)
      unfused_failed(row, "bn_backward", orc, &e);
    else if ((rc = tmp_download(&t)) == AAL_OK) {
      kc_check_same(row, "dx", k->buf[6].val[KC_GOT], t.val[idx], nx);
      kc_check_same(row, "dgamma", k->buf[7].val[KC_GOT], t.val[idg], nc);
      kc_check_same(row, "dbeta", k->buf[8].val[KC_GOT], t.val[idb], nc);
    }
  }
  tmp_free(&t);
  return rc;
}

/* dz = dy * mask is exact, so the bounds are bn_backward's with dz for dy. */
static int bn_relu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
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
  if (rc == AAL_OK && ((bx = bounds(run, nx)) == NULL || (bg = bounds(run, nc)) == NULL ||
                       (bb = bounds(run, nc)) == NULL || (dz = bounds(run, nx)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    fill_sym(run, &k.buf[0], 1.0);
    fill_bits(run, &k.buf[1]);
    fill_bn_x(run, &k.buf[2], n, c, hw);
    fill_sym(run, &k.buf[3], 1.0);
    saved_stats(&k.buf[2], &k.buf[4], &k.buf[5], n, c, hw, k.eps);
    rc = kc_execute(run, &k, bn_relu_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const uint32_t *w = k.buf[1].words[KC_REF];
    for (size_t i = 0; i < nx; i++)
      dz[i] = (w[i / 32] >> (i % 32)) & 1u ? k.buf[0].val[KC_REF][i] : 0.0;
    bn_backward_bounds(run, sh, dz, k.buf[2].val[KC_REF], k.buf[3].val[KC_REF],
                       k.buf[4].val[KC_REF], k.buf[5].val[KC_REF], bx, bg, bb);
    kc_check_bound(row, &k.buf[6], bx, 0);
    kc_check_bound(row, &k.buf[7], bg, 0);
    kc_check_bound(row, &k.buf[8], bb, 0);
    rc = bn_relu_backward_unfused(run, &k, row);
  }
  free(bx);
  free(bg);
  free(bb);
  free(dz);
  kc_free(run, &k);
  return rc;
}

/* ================================================================ the table */

const kc_op kc_ops[] = {
    {"conv_forward", KC_CONV, conv_forward_case},
    {"conv_backward_data", KC_CONV, conv_backward_data_case},
    {"conv_backward_filter", KC_CONV, conv_backward_filter_case},
    {"bn_forward", KC_BN, bn_forward_case},
    {"bn_backward", KC_BN, bn_backward_case},
    {"relu_forward", KC_ELEM, relu_forward_case},
    {"relu_backward", KC_ELEM, relu_backward_case},
    {"add", KC_ELEM, add_case},
    {"avgpool_forward", KC_POOL, avgpool_forward_case},
    {"avgpool_backward", KC_POOL, avgpool_backward_case},
    {"linear_forward", KC_LINEAR, linear_forward_case},
    {"linear_backward", KC_LINEAR, linear_backward_case},
    {"xent_forward", KC_XENT, xent_forward_case},
    {"xent_backward", KC_XENT, xent_backward_case},
    {"sign_pack", KC_ELEM, sign_pack_case},
    {"sign_unpack", KC_ELEM, sign_unpack_case},
    {"li_reduce", KC_LI, li_reduce_case},
    {"sgd_update", KC_SGD, sgd_update_case},
    {"asa_input", KC_ELEM, asa_input_case},
    {"bn_relu_forward", KC_BN, bn_relu_forward_case},
    {"bn_relu_backward", KC_BN, bn_relu_backward_case},
    {"scale", KC_ELEM, scale_case},
    {"bn_forward_eval", KC_BN, bn_forward_eval_case},
};

const int kc_nops = (int)(sizeof kc_ops / sizeof kc_ops[0]);
