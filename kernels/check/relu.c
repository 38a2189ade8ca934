/* kcheck's ReLU cases (exact: y, dx and the mask bit for bit).  The forward's x holds
 * exact +0 and -0 (y = 0, bit 0: a mask of x >= 0, or of the sign bit, shows). */
#include "kernels/check/kcheck_internal.h"

static int relu_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->relu_forward(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

int kc_relu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, sh->len, 0);
  kc_add(&k, "y", KC_OUT, sh->len, 0);
  kc_add(&k, "mask", KC_OUT, sh->len, 1);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    kc_fill_sym_zeros(run, &k.buf[0], 1.0);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, relu_forward_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    kc_check_exact(row, &k.buf[1], 0);
    kc_check_bits(row, &k.buf[2]);
  }
  kc_free(run, &k);
  return rc;
}

static int relu_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->relu_backward(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

int kc_relu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "dy", KC_IN, sh->len, 0);
  kc_add(&k, "mask", KC_IN, sh->len, 1);
  kc_add(&k, "dx", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_bits(run, &k.buf[1]);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, relu_backward_call, 0, row, &ran);
  if (rc == AAL_OK && ran)
    kc_check_exact(row, &k.buf[2], 0);
  kc_free(run, &k);
  return rc;
}
