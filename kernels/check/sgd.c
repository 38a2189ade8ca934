/* kcheck's SGD case (the first step and a later one). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

static int sgd_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->sgd_update(be, k->sh->len, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v), k->lr,
                        k->momentum, k->wd, k->first, err);
}

/* With B = momentum |buf| (0 when first) + |g| + wd |w| and lr, momentum, wd rounded
 * to the backend's precision:
 *   buf: 4u B;   w: u |w| + 7u lr B   (each times c = 2). */
static void sgd_bounds(kc_run *run, kc_case *k, double *bw, double *bb)
{
  const double u = run->u;
  const double *w = k->buf[0].val[KC_REF], *g = k->buf[1].val[KC_REF];
  const double *b = k->buf[2].val[KC_REF];
  for (size_t i = 0; i < k->sh->len; i++) {
    const double B = (k->first ? 0.0 : k->momentum * fabs(b[i])) + fabs(g[i]) +
                     k->wd * fabs(w[i]);
    bb[i] = 2 * 4 * u * B;
    bw[i] = 2 * (u * fabs(w[i]) + 7 * u * k->lr * B);
  }
}

/* first: 1 the first step, 0 a later one, -1 as the candidate's tensors say (run->ext) */
static int sgd_once(kc_run *run, const kc_shape *sh, kc_row *row, int first)
{
  kc_case k = {.sh = sh, .lr = 0.05, .momentum = 0.9, .wd = 5e-4, .first = first};
  kc_add(&k, first == 1 ? "w(first)" : "w", KC_INOUT, sh->len, 0);
  kc_add(&k, "g", KC_IN, sh->len, 0);
  kc_add(&k, first == 1 ? "buf(first)" : "buf", KC_INOUT, sh->len, 0);
  double *bw = NULL, *bb = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK &&
      ((bw = kc_bounds(run, sh->len)) == NULL || (bb = kc_bounds(run, sh->len)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc))
    for (int i = 0; i < 3; i++)
      kc_fill_sym(run, &k.buf[i], 1.0);
  if (rc == AAL_OK) {
    sgd_bounds(run, &k, bw, bb); /* from the inputs, before the update overwrites them */
    rc = kc_execute(run, &k, sgd_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    kc_check_bound(row, &k.buf[0], bw, 0);
    kc_check_bound(row, &k.buf[2], bb, 0);
  }
  free(bw);
  free(bb);
  kc_free(run, &k);
  return rc;
}

int kc_sgd_update_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  if (run->ext != NULL) /* one step, the candidate's */
    return sgd_once(run, sh, row, -1);
  int rc = sgd_once(run, sh, row, 1);
  return rc == AAL_OK ? sgd_once(run, sh, row, 0) : rc;
}
