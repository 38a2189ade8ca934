/* kcheck's softmax cases (along the last dimension; shape a = m rows, b = d).
 *
 * Forward inputs: kc_sym(8) values (a row's spread up to 16: exps down to e^-16), row r
 * offset by 0, +10^U(2, 3.3) or -10^U(2, 3.3) in turn from a random start (as the
 * cross-entropy case: exp overflows float above ~88), rounded to float.
 * Bound (the float algorithm of kernels/cpu/softmax.c: mx = max x exact; e_j =
 * expf(x_j - mx), whose argument is off by u D_j, D_j = mx - x_j, and exp by 2u; s = sum
 * e in any order, off by (d + 2 + max D) u relative; the division u), xent's prob bound:
 *   |y_j - y_ref_j| <= 2 y_ref_j u (d + 5 + D_j + max D).
 * Backward inputs: dy kc_sym(1); y a softmax of kc_sym(4) logits computed in double and
 * rounded to float (positive, rows summing to 1 within d u).  With A = sum |dy_k y_k|:
 * s = sum dy y errs by kc_gamma(d) A + u A (the sum in any order, its rounding), dy_j - s
 * by u (|dy_j| + A), the product by y_j another u:
 *   |dx_j - dx_ref_j| <= 2 y_j (kc_gamma(d) A + 3u (|dy_j| + A)). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

static int softmax_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->softmax_forward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

static int softmax_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->softmax_backward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                              KC_DEV(k, 2, v), err);
}

int kc_softmax_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int m = sh->a, d = sh->b;
  const size_t n = (size_t)m * d;
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, n, 0);
  kc_add(&k, "y", KC_OUT, n, 0);
  double *bound = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bound = kc_bounds(run, n)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    const unsigned long start = gsl_rng_uniform_int(run->rng, 3);
    for (int r = 0; r < m; r++) {
      const unsigned long kind = ((unsigned long)r + start) % 3;
      const double mag = pow(10.0, 2.0 + 1.3 * gsl_rng_uniform(run->rng));
      const double off = kind == 0 ? 0.0 : kind == 1 ? mag : -mag;
      for (int j = 0; j < d; j++)
        k.buf[0].val[KC_REF][(size_t)r * d + j] = (double)(float)(off + kc_sym(run, 8.0));
    }
    rc = kc_execute(run, &k, softmax_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const double u = run->u, *x = k.buf[0].val[KC_REF], *y = k.buf[1].val[KC_REF];
    for (int r = 0; r < m; r++) {
      const double *xr = x + (size_t)r * d;
      double mx = -INFINITY, dmax = 0.0;
      for (int j = 0; j < d; j++)
        mx = xr[j] > mx ? xr[j] : mx;
      for (int j = 0; j < d; j++)
        dmax = fmax(dmax, mx - xr[j]);
      for (int j = 0; j < d; j++)
        bound[(size_t)r * d + j] = 2 * y[(size_t)r * d + j] * u * (d + 5 + (mx - xr[j]) + dmax);
    }
    kc_check_bound(row, &k.buf[1], bound, 0);
  }
  free(bound);
  kc_free(run, &k);
  return rc;
}

int kc_softmax_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int m = sh->a, d = sh->b;
  const size_t n = (size_t)m * d;
  kc_case k = {.sh = sh};
  kc_add(&k, "dy", KC_IN, n, 0);
  kc_add(&k, "y", KC_IN, n, 0);
  kc_add(&k, "dx", KC_OUT, n, 0);
  double *bound = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bound = kc_bounds(run, n)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    double *y = k.buf[1].val[KC_REF];
    for (int r = 0; r < m; r++) { /* a softmax of logits in +-4, rounded to float */
      double s = 0.0;
      for (int j = 0; j < d; j++)
        s += (y[(size_t)r * d + j] = exp(kc_sym(run, 4.0)));
      for (int j = 0; j < d; j++)
        y[(size_t)r * d + j] = (double)(float)(y[(size_t)r * d + j] / s);
    }
    rc = kc_execute(run, &k, softmax_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    const double u = run->u, *dy = k.buf[0].val[KC_REF], *y = k.buf[1].val[KC_REF];
    const double g = kc_gamma(run, d);
    for (int r = 0; r < m; r++) {
      double a = 0.0;
      for (int j = 0; j < d; j++)
        a += fabs(dy[(size_t)r * d + j] * y[(size_t)r * d + j]);
      for (int j = 0; j < d; j++) {
        const size_t at = (size_t)r * d + j;
        bound[at] = 2 * y[at] * (g * a + 3 * u * (fabs(dy[at]) + a));
      }
    }
    kc_check_bound(row, &k.buf[2], bound, 0);
  }
  free(bound);
  kc_free(run, &k);
  return rc;
}
