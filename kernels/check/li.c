/* kcheck's LI reduction case. */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

static int li_reduce_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->li_reduce(be, k->sh->a, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
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

/* With hh = h.h, A = sum |r h|, rr = r.r over `per` terms, each sum within g =
 * kc_gamma(per) of its absolute sum (the deterministic 2 per u or the probabilistic
 * bound), and LI = (2 rh - rr)/hh: the numerator is off by g (2A + rr), the quotient by
 * g |LI| <= g (2A + rr)/hh from hh, and the subtraction and the division by 2 * 2u:
 *   |LI - LI_ref| <= (2 g + 8u) (2A + rr) / hh. */
static void li_bounds(kc_run *run, kc_case *k, double *bl)
{
  const size_t per = k->sh->len;
  const double g = kc_gamma(run, (double)per);
  for (int s = 0; s < k->sh->a; s++) {
    const double *h = k->buf[0].val[KC_REF] + (size_t)s * per;
    const double *r = k->buf[1].val[KC_REF] + (size_t)s * per;
    double hh = 0.0, a = 0.0, rr = 0.0;
    for (size_t i = 0; i < per; i++) {
      hh += h[i] * h[i];
      a += fabs(r[i] * h[i]);
      rr += r[i] * r[i];
    }
    bl[s] = hh > 0 ? (2 * g + 8 * run->u) * (2 * a + rr) / hh : 0.0;
  }
}

int kc_li_reduce_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nh = (size_t)sh->a * sh->len;
  kc_case k = {.sh = sh};
  kc_add(&k, "h", KC_IN, nh, 0);
  kc_add(&k, "r", KC_IN, nh, 0);
  kc_add(&k, "li", KC_OUT, (size_t)sh->a, 0);
  k.buf[2].poison_inf = 1;
  double *bl = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bl = kc_bounds(run, (size_t)sh->a)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    fill_li(run, &k);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, li_reduce_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    li_bounds(run, &k, bl);
    kc_check_bound(row, &k.buf[2], bl, 1);
  }
  free(bl);
  kc_free(run, &k);
  return rc;
}
