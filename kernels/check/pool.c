/* kcheck's global average pooling cases. */
#include "kernels/check/kcheck_internal.h"

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
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, forward ? avgpool_forward_call : avgpool_backward_call, 1, row,
                    &ran);
  }
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
