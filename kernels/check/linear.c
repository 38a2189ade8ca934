/* kcheck's linear layer cases. */
#include "kernels/check/kcheck_internal.h"

static int linear_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->linear_forward(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
                            KC_DEV(k, 3, v), err);
}

/* y = x w^T + b: I products and the bias (L = I + 2, abs = |x||w|^T + |b|); bound
 * kc_gamma(L) abs, and the bias test. */
int kc_linear_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t n = (size_t)sh->a, in = (size_t)sh->b, out = (size_t)sh->c;
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, n * in, 0);
  kc_add(&k, "w", KC_IN, out * in, 0);
  kc_add(&k, "b", KC_IN, out, 0);
  kc_add(&k, "y", KC_OUT, n * out, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    for (int i = 0; i < 3; i++)
      kc_fill_sym(run, &k.buf[i], 1.0);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, linear_forward_call, 1, row, &ran);
  if (rc == AAL_OK && ran) {
    kc_check_sum(run, row, &k.buf[3], in + 2.0);
    kc_check_bias(row, &k.buf[3]);
  }
  kc_free(run, &k);
  return rc;
}

static int linear_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->linear_backward(be, s->a, s->b, s->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                             KC_DEV(k, 2, v), KC_DEV(k, 3, v), KC_DEV(k, 4, v), KC_DEV(k, 5, v),
                             err);
}

/* dx = dy w (L = O + 1), dw = dy^T x (L = N + 1), db = sum_n dy (L = N + 1): bounds
 * kc_gamma(L) abs; the bias test on dx and dw. */
int kc_linear_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
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
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    for (int i = 0; i < 3; i++)
      kc_fill_sym(run, &k.buf[i], 1.0);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, linear_backward_call, 1, row, &ran);
  if (rc == AAL_OK && ran) {
    kc_check_sum(run, row, &k.buf[3], out + 1.0);
    kc_check_sum(run, row, &k.buf[4], n + 1.0);
    kc_check_sum(run, row, &k.buf[5], n + 1.0);
    kc_check_bias(row, &k.buf[3]);
    kc_check_bias(row, &k.buf[4]);
  }
  kc_free(run, &k);
  return rc;
}
