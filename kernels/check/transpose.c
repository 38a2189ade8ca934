/* kcheck's transpose case (shape a = B, b = A, c = C: x [B, A, C] -> y [B, C, A]): a copy,
 * exact. */
#include "kernels/check/kcheck_internal.h"

static int transpose_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->transpose(be, k->sh->a, k->sh->b, k->sh->c, KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

int kc_transpose_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t n = (size_t)sh->a * sh->b * sh->c;
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, n, 0);
  kc_add(&k, "y", KC_OUT, n, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, transpose_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_exact(row, &k.buf[1], 0);
  kc_free(run, &k);
  return rc;
}
