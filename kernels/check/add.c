/* kcheck's add case. */
#include "kernels/check/kcheck_internal.h"

static int add_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->add(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

/* y = a + b, one correct rounding: held to it, |y - y_ref| <= (u + 2^-52) |y_ref|
 * (kc_check_rounded; no slack: a second rounding anywhere shows). */
int kc_add_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "a", KC_IN, sh->len, 0);
  kc_add(&k, "b", KC_IN, sh->len, 0);
  kc_add(&k, "y", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_sym(run, &k.buf[1], 1.0);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, add_call, 0, row, &ran);
  if (rc == AAL_OK && ran)
    kc_check_rounded(run, row, &k.buf[2], 1);
  kc_free(run, &k);
  return rc;
}
