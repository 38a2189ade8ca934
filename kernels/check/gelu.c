/* kcheck's GELU cases (exact erf form; shape: len elements).
 *
 * Inputs kc_sym(5): |x| from 5/1024 to 5, both tails (erf(x/sqrt 2) within 2^-20 of -1
 * below x = -5: 1 + erf cancels there) and the curved middle.
 *
 * The float algorithm the bounds count (kernels/cpu/gelu.c, kernels/cuda/gelu.cu), with
 * z = x / sqrt 2, E = erf(z), E' = 2/sqrt(pi) exp(-z^2), phi = exp(-x^2/2)/sqrt(2 pi),
 * every +, *, rounded constant at u and every libm call (erff, expf) at 2u:
 *   z_f = x (1/sqrt 2)_f: relative 2u, which moves erf by E' |z| 2u;
 *   forward y = 0.5 x (1 + erff(z_f)):
 *     |y - y_ref| <= 0.5 |x| (2u |z| E' + 2u |E| + 2u |1 + E|);
 *   backward dx = dy (0.5 (1 + erff(z_f)) + x (1/sqrt(2 pi))_f expf(-0.5 x x)):
 *     the cdf term errs by 0.5 (2u |z| E' + 2u |E| + u |1 + E|), the x phi term
 *     relatively by u x^2/2 (exp's argument) + 5u, the sum and the product by dy 2u |d|:
 *     |dx - dx_ref| <= |dy| (u |z| E' + u |E| + u/2 |1 + E| + u |x phi| (x^2/2 + 5) + 2u |d|),
 *     d = Phi + x phi;
 * each times c = 2, plus 2^-52 of the reference value (its own rounding). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

/* 2/sqrt(pi) and 1/sqrt(2 pi), to 17 significant digits */
#define GELU_2_RSQRTPI 1.1283791670955126
#define GELU_RSQRT2PI 0.39894228040143268

static int gelu_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->gelu_forward(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

static int gelu_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->gelu_backward(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
                           err);
}

static int gelu_case(kc_run *run, const kc_shape *sh, kc_row *row, int forward)
{
  const size_t n = sh->len;
  kc_case k = {.sh = sh};
  if (!forward)
    kc_add(&k, "dy", KC_IN, n, 0);
  kc_add(&k, "x", KC_IN, n, 0);
  kc_add(&k, forward ? "y" : "dx", KC_OUT, n, 0);
  const int ix = forward ? 0 : 1, io = forward ? 1 : 2;
  double *bound = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bound = kc_bounds(run, n)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    if (!forward)
      kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_sym(run, &k.buf[ix], 5.0);
    rc = kc_execute(run, &k, forward ? gelu_forward_call : gelu_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const double u = run->u, *x = k.buf[ix].val[KC_REF], *ref = k.buf[io].val[KC_REF];
    for (size_t i = 0; i < n; i++) {
      const double z = x[i] / sqrt(2.0), e = erf(z), ed = GELU_2_RSQRTPI * exp(-z * z);
      double b;
      if (forward) {
        b = 0.5 * fabs(x[i]) * (2 * u * fabs(z) * ed + 2 * u * fabs(e) + 2 * u * fabs(1 + e));
      } else {
        const double phi = GELU_RSQRT2PI * exp(-0.5 * x[i] * x[i]);
        const double dd = 0.5 * (1 + e) + x[i] * phi, xp = fabs(x[i] * phi);
        b = fabs(k.buf[0].val[KC_REF][i]) *
            (u * fabs(z) * ed + u * fabs(e) + 0.5 * u * fabs(1 + e) +
             u * xp * (0.5 * x[i] * x[i] + 5) + 2 * u * fabs(dd));
      }
      bound[i] = 2 * b + 0x1p-52 * fabs(ref[i]);
    }
    kc_check_bound(row, &k.buf[io], bound, 0);
  }
  free(bound);
  kc_free(run, &k);
  return rc;
}

int kc_gelu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return gelu_case(run, sh, row, 1);
}

int kc_gelu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return gelu_case(run, sh, row, 0);
}
