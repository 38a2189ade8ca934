/* kcheck's pooling cases: global average pooling, 2-d max pooling. */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

#include "sim/layers/layers.h"

static int avgpool_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->avgpool_forward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

static int avgpool_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->avgpool_backward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

/* One input, one output: forward is a sum of hw terms and a division (bound
 * kc_gamma(hw + 2) abs); backward one division, or a multiplication by a rounded 1/hw:
 * held to those two roundings (kc_check_rounded, k = 2). */
static int pool_case(kc_run *run, const kc_shape *sh, kc_row *row, int forward)
{
  const size_t big = (size_t)sh->a * sh->b, small = (size_t)sh->a;
  kc_case k = {.sh = sh};
  kc_add(&k, forward ? "x" : "dy", KC_IN, forward ? big : small, 0);
  kc_add(&k, forward ? "y" : "dx", KC_OUT, forward ? small : big, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    kc_fill_sym(run, &k.buf[0], 1.0);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, forward ? avgpool_forward_call : avgpool_backward_call, 1, row,
                    &ran);
  if (rc == AAL_OK && ran) {
    if (forward)
      kc_check_sum(run, row, &k.buf[1], sh->b + 2.0);
    else
      kc_check_rounded(run, row, &k.buf[1], 2);
  }
  kc_free(run, &k);
  return rc;
}

int kc_avgpool_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return pool_case(run, sh, row, 1);
}

int kc_avgpool_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return pool_case(run, sh, row, 0);
}

/* ---------------------------------------------------------------- max pooling
 *
 * Inputs (rounded to float32 like every input, so both sides pool the same numbers and
 * the tie rule, not rounding, decides between equal values), one kind per plane (n, c),
 * in turn from a random start so that a shape of one plane gets any kind:
 *   ties      values from {+-1/8, +-3/8, +-5/8, +-7/8}: most windows have a tied
 *             maximum, which only the first-wins rule resolves as the reference does;
 *   random    kc_sym values (no ties);
 *   negative  -|kc_sym|: a padded window whose input positions are all negative (where
 *             padding taken as 0 would win);
 *   NaN       kc_sym values and one NaN: the NaN wins every window it is in (a max that
 *             ignores NaN, as fmaxf does, gives a number).
 * Forward is a selection: y must equal the reference's y exactly (NaN where the
 * reference is NaN; the output is poisoned with +Inf, not NaN, so that an unwritten
 * element fails there too).  Backward: dx_i is a sum of the dy of the windows i wins,
 * at most M = ceil(k/stride)^2 of them, in any order: |dx - dx_ref| <= kc_gamma(M) S_i
 * with S_i the same sum over |dy| (computed here with the reference on x and |dy|: the
 * harness's absolute-value run would pool |x|, whose winners differ); an element that
 * wins nothing must be exactly 0. */

enum { MP_TIES, MP_RANDOM, MP_NEGATIVE, MP_NAN, MP_KINDS };

static void maxpool_fill_x(kc_run *run, const kc_shape *sh, kc_buf *b)
{
  const aal_conv_shape *g = &sh->cs;
  const size_t plane = (size_t)g->h * g->w, planes = (size_t)g->n * g->c;
  const unsigned long start = gsl_rng_uniform_int(run->rng, MP_KINDS);
  double *v = b->val[KC_REF];
  for (size_t pl = 0; pl < planes; pl++) {
    const int kind = (int)((start + pl) % MP_KINDS);
    double *px = v + pl * plane;
    for (size_t i = 0; i < plane; i++) {
      if (kind == MP_TIES) {
        const double m = (double)(2 * gsl_rng_uniform_int(run->rng, 4) + 1) / 8.0;
        px[i] = gsl_rng_uniform(run->rng) < 0.5 ? -m : m;
      } else {
        px[i] = kc_sym(run, 1.0);
        if (kind == MP_NEGATIVE)
          px[i] = -fabs(px[i]);
      }
    }
    if (kind == MP_NAN)
      px[gsl_rng_uniform_int(run->rng, plane)] = NAN;
  }
}

/* Windows whose maximum is held by more than one input position (the tie rule decides),
 * and windows holding a NaN, over all planes of x (host values): for the row's note. */
static void maxpool_count(const kc_shape *sh, const double *x, size_t *ties, size_t *nans)
{
  const aal_conv_shape *g = &sh->cs;
  *ties = *nans = 0;
  for (long pl = 0; pl < (long)g->n * g->c; pl++) {
    const double *px = x + (size_t)pl * g->h * g->w;
    for (int oh = 0; oh < g->p; oh++)
      for (int ow = 0; ow < g->q; ow++) {
        double m = -INFINITY;
        int count = 0, nan = 0;
        for (int a = 0; a < g->r; a++)
          for (int c = 0; c < g->s; c++) {
            const int ih = oh * g->stride - g->pad + a, iw = ow * g->stride - g->pad + c;
            if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
              continue;
            const double v = px[(size_t)ih * g->w + iw];
            nan |= isnan(v);
            if (v > m) {
              m = v;
              count = 1;
            } else if (v == m) {
              count++;
            }
          }
        *ties += !nan && count > 1;
        *nans += nan;
      }
  }
}

static int maxpool_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const aal_conv_shape *g = &k->sh->cs;
  return be->maxpool_forward(be, g->n, g->c, g->h, g->w, g->r, g->stride, g->pad,
                             KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

static int maxpool_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const aal_conv_shape *g = &k->sh->cs;
  return be->maxpool_backward(be, g->n, g->c, g->h, g->w, g->r, g->stride, g->pad,
                              KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

/* S_i = sum of |dy| over the windows that element i wins (the reference backward on x
 * and |dy|), into bound[i] times the factor f. */
static int maxpool_abs_sums(kc_run *run, const kc_shape *sh, const double *x, const double *dy,
                            double f, double *bound)
{
  const aal_conv_shape *g = &sh->cs;
  aal_tensor *tx = aal_tensor_new4(g->n, g->c, g->h, g->w, run->err);
  aal_tensor *tdx = tx ? aal_tensor_new4(g->n, g->c, g->h, g->w, run->err) : NULL;
  aal_tensor *tdy = tdx ? aal_tensor_new4(g->n, g->c, g->p, g->q, run->err) : NULL;
  int rc = tdy != NULL ? AAL_OK : AAL_ENOMEM;
  if (rc == AAL_OK) {
    for (size_t i = 0; i < tx->size; i++)
      tx->data[i] = x[i];
    for (size_t i = 0; i < tdy->size; i++)
      tdy->data[i] = fabs(dy[i]);
    rc = aal_maxpool2d_backward(tdy, tx, g->r, g->stride, g->pad, tdx, run->err);
  }
  for (size_t i = 0; rc == AAL_OK && i < tdx->size; i++)
    bound[i] = f * tdx->data[i];
  aal_tensor_release(tx);
  aal_tensor_release(tdx);
  aal_tensor_release(tdy);
  return rc;
}

static int maxpool_case(kc_run *run, const kc_shape *sh, kc_row *row, int forward)
{
  const aal_conv_shape *g = &sh->cs;
  const size_t nx = (size_t)g->n * g->c * g->h * g->w, ny = (size_t)g->n * g->c * g->p * g->q;
  kc_case k = {.sh = sh};
  if (forward) {
    kc_add(&k, "x", KC_IN, nx, 0);
    kc_add(&k, "y", KC_OUT, ny, 0);
    k.buf[1].poison_inf = 1; /* y may be NaN where x is */
  } else {
    kc_add(&k, "dy", KC_IN, ny, 0);
    kc_add(&k, "x", KC_IN, nx, 0);
    kc_add(&k, "dx", KC_OUT, nx, 0);
  }
  kc_buf *bx = kc_get(&k, "x");
  int ran = 0, rc = kc_alloc(run, &k);
  double *bound = rc == AAL_OK ? kc_bounds(run, forward ? ny : nx) : NULL;
  if (rc == AAL_OK && bound == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    maxpool_fill_x(run, sh, bx);
    if (!forward)
      kc_fill_sym(run, kc_get(&k, "dy"), 1.0);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, forward ? maxpool_forward_call : maxpool_backward_call, 0, row,
                    &ran);
  if (rc == AAL_OK && ran) {
    if (forward) { /* a selection: exact, NaN where the reference is NaN */
      kc_check_exact(row, &k.buf[1], 1);
    } else {
      const int per = (g->r + g->stride - 1) / g->stride; /* windows per axis, at most */
      rc = maxpool_abs_sums(run, sh, bx->val[KC_REF], kc_get(&k, "dy")->val[KC_REF],
                            kc_gamma(run, (double)per * per), bound);
      if (rc == AAL_OK)
        kc_check_bound(row, &k.buf[2], bound, 0);
    }
  }
  if (rc == AAL_OK && ran && row->note[0] == '\0') {
    size_t ties, nans;
    maxpool_count(sh, bx->val[KC_REF], &ties, &nans);
    snprintf(row->note, sizeof row->note, "windows: %zu with a tied maximum, %zu with a NaN, "
             "of %zu", ties, nans, ny);
  }
  free(bound);
  kc_free(run, &k);
  return rc;
}

int kc_maxpool_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return maxpool_case(run, sh, row, 1);
}

int kc_maxpool_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return maxpool_case(run, sh, row, 0);
}
