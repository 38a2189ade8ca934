/* kcheck's ASA cases: sign_pack (exact), sign_unpack, asa_input (fused: also checked bit
 * for bit against sign_pack, sign_unpack and add on the tested backend), and scale (the
 * lr_expansion). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

static int sign_pack_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->sign_pack(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), err);
}

int kc_sign_pack_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh};
  kc_add(&k, "x", KC_IN, sh->len, 0);
  kc_add(&k, "bits", KC_OUT, sh->len, 1);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    kc_fill_sym_zeros(run, &k.buf[0], 1.0); /* +0 and -0 pack to 0 */
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, sign_pack_call, 0, row, &ran);
  if (rc == AAL_OK && ran)
    kc_check_bits(row, &k.buf[1]);
  kc_free(run, &k);
  return rc;
}

static int sign_unpack_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->sign_unpack(be, k->sh->len, KC_DEV(k, 0, v), k->eps, KC_DEV(k, 1, v), err);
}

/* out = eps * bit: one rounding of eps, held to it (kc_check_rounded). */
int kc_sign_unpack_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh, .eps = 0.1}; /* not a float: the rounding of eps is checked */
  kc_add(&k, "bits", KC_IN, sh->len, 1);
  kc_add(&k, "out", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    kc_fill_bits(run, &k.buf[0]);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, sign_unpack_call, 0, row, &ran);
  if (rc == AAL_OK && ran)
    kc_check_rounded(run, row, &k.buf[1], 1);
  kc_free(run, &k);
  return rc;
}

/* ---- asa_input */

static int asa_input_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->asa_input(be, k->sh->len, KC_DEV(k, 0, v), k->eps, KC_DEV(k, 1, v),
                       KC_DEV(k, 2, v), err);
}

/* sign_pack, sign_unpack, add on the tested backend: h and bits must be identical. */
static int asa_input_unfused(kc_run *run, kc_case *k, kc_row *row)
{
  const aal_backend *be = run->be[KC_GOT];
  const size_t n = k->sh->len;
  kc_tmp t = {.run = run};
  int rc = AAL_OK, ib, io, ih;
  if ((ib = kc_tmp_add(&t, n, 1, k->buf[2].words[KC_GOT])) < 0 ||
      (io = kc_tmp_add(&t, n, 0, NULL)) < 0 || (ih = kc_tmp_add(&t, n, 0, NULL)) < 0)
    rc = run->err->code != AAL_OK ? run->err->code : AAL_ENOMEM;
  if (rc == AAL_OK) {
    aal_error e;
    aal_error_clear(&e);
    const void *x = KC_DEV(k, 0, KC_GOT);
    int orc;
    if ((orc = be->sign_pack(be, n, x, t.dev[ib], &e)) != AAL_OK)
      kc_unfused_failed(row, "sign_pack", orc, &e);
    else if ((orc = be->sign_unpack(be, n, t.dev[ib], k->eps, t.dev[io], &e)) != AAL_OK)
      kc_unfused_failed(row, "sign_unpack", orc, &e);
    else if ((orc = be->add(be, n, x, t.dev[io], t.dev[ih], &e)) != AAL_OK)
      kc_unfused_failed(row, "add", orc, &e);
    else if ((rc = kc_tmp_download(&t)) == AAL_OK) {
      kc_check_same(row, "h", k->buf[1].val[KC_GOT], t.val[ih], n);
      kc_check_same_bits(row, "bits", k->buf[2].words[KC_GOT], t.words[ib], n);
    }
  }
  kc_tmp_free(&t);
  return rc;
}

/* h = x + e bit with e = eps rounded once to the backend (|e - eps| <= u eps) and one
 * rounded addition (|h - (x + e bit)| <= u |x + e bit|), each held to its rounding:
 *   |h - h_ref| <= u (1 + u) eps bit + (u + 2^-52) |h_ref|
 * (2^-52: the reference's own rounding of x + eps).  bits = (x > 0) of an exact input:
 * exact; x holds exact +0 and -0 (bit 0, h = 0). */
int kc_asa_input_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t n = sh->len;
  kc_case k = {.sh = sh, .eps = 0.1}; /* not a float: the rounding of eps is checked */
  kc_add(&k, "x", KC_IN, n, 0);
  kc_add(&k, "h", KC_OUT, n, 0);
  kc_add(&k, "bits", KC_OUT, n, 1);
  double *bh = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bh = kc_bounds(run, n)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    kc_fill_sym_zeros(run, &k.buf[0], 1.0);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, asa_input_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    const double *x = k.buf[0].val[KC_REF], *h = k.buf[1].val[KC_REF], u = run->u;
    for (size_t i = 0; i < n; i++)
      bh[i] = u * (1 + u) * k.eps * (x[i] > 0) + (u + 0x1p-52) * fabs(h[i]);
    kc_check_bound(row, &k.buf[1], bh, 0);
    kc_check_bits(row, &k.buf[2]);
    if (run->ext == NULL) /* a candidate's tensors have no backend to compose */
      rc = asa_input_unfused(run, &k, row);
  }
  free(bh);
  kc_free(run, &k);
  return rc;
}

static int scale_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->scale(be, k->sh->len, KC_DEV(k, 0, v), k->lr, KC_DEV(k, 1, v), err);
}

/* y = s x, one rounding of the product (s stays in double), held to it
 * (kc_check_rounded: |y - y_ref| <= (u + 2^-52) |y_ref|).  s = -100.3: ASA's
 * lr_expansion is 100; not a float (float(s) is 0.51 u off), and negative, so that a
 * kernel that rounds s to float first (a second rounding) or drops its sign shows. */
int kc_scale_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  kc_case k = {.sh = sh, .lr = -100.3};
  kc_add(&k, "x", KC_IN, sh->len, 0);
  kc_add(&k, "y", KC_OUT, sh->len, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    kc_fill_sym(run, &k.buf[0], 1.0);
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, scale_call, 0, row, &ran);
  if (rc == AAL_OK && ran)
    kc_check_rounded(run, row, &k.buf[1], 1);
  kc_free(run, &k);
  return rc;
}
