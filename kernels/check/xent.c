/* kcheck's softmax cross-entropy cases. */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

static int fill_labels(kc_run *run, kc_case *k, int n, int classes)
{
  k->labels = malloc((size_t)n * sizeof *k->labels);
  if (k->labels == NULL)
    return aal_fail(run->err, AAL_ENOMEM, "kcheck: %d labels", n);
  for (int i = 0; i < n; i++)
    k->labels[i] = (int)gsl_rng_uniform_int(run->rng, (unsigned long)classes);
  return AAL_OK;
}

/* Logits in offset +-4 (probabilities from ~e^-8 to ~1), the offset of row i by
 * (i + r) mod 3, r random per case: 0, +10^U(2, 3.3) or -10^U(2, 3.3) (100 to 2000:
 * exp overflows float above ~88 and double above ~709, and underflows below -87 and
 * -745), so that a softmax that does not subtract the row's maximum shows. */
static void fill_logits(kc_run *run, kc_buf *z, int n, int classes)
{
  const unsigned long r = gsl_rng_uniform_int(run->rng, 3);
  for (int i = 0; i < n; i++) {
    const unsigned long kind = ((unsigned long)i + r) % 3;
    const double mag = pow(10.0, 2.0 + 1.3 * gsl_rng_uniform(run->rng));
    const double off = kind == 0 ? 0.0 : kind == 1 ? mag : -mag;
    for (int j = 0; j < classes; j++)
      z->val[KC_REF][(size_t)i * classes + j] = (double)(float)(off + kc_sym(run, 4.0));
  }
}

static int xent_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->xent_forward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), k->labels, &k->loss[v],
                          KC_DEV(k, 1, v), err);
}

/* Bounds of softmax cross-entropy (per row: mx the max logit, D_j = mx - z_j, s the sum
 * of exp(-D_j), C classes; exp and log within 2 ulp):
 *   prob_j: p_j (C + 5 + D_j + max D) u            (exp's argument off by u D_j; s off
 *                                                   by (C + 2 + max D) u; the division)
 *   loss:   mean_n [u D_label + (C + 2 + max D) u + 2u log s + u L_n] + (N + 1) u L
 * each times c = 2. */
static void xent_bounds(kc_run *run, kc_case *k, double *bp, double *bl)
{
  const int n = k->sh->a, C = k->sh->b;
  const double u = run->u, *z = k->buf[0].val[KC_REF], *p = k->buf[1].val[KC_REF];
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    const double *zi = z + (size_t)i * C;
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < C; j++)
      mx = zi[j] > mx ? zi[j] : mx;
    double dmax = 0.0;
    for (int j = 0; j < C; j++) {
      s += exp(zi[j] - mx);
      dmax = mx - zi[j] > dmax ? mx - zi[j] : dmax;
    }
    for (int j = 0; j < C; j++)
      bp[(size_t)i * C + j] = 2 * p[(size_t)i * C + j] * (C + 5 + (mx - zi[j]) + dmax) * u;
    const double dl = mx - zi[k->labels[i]], ln = dl + log(s);
    sum += u * dl + (C + 2 + dmax) * u + 2 * u * log(s) + u * ln;
  }
  *bl = 2 * (sum / n + (n + 1) * u * k->loss[KC_REF]);
}

int kc_xent_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t nz = (size_t)sh->a * sh->b;
  kc_case k = {.sh = sh, .loss = {NAN, NAN, NAN}};
  kc_add(&k, "logits", KC_IN, nz, 0);
  kc_add(&k, "prob", KC_OUT, nz, 0);
  double *bp = NULL, bl = 0.0;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && (bp = kc_bounds(run, nz)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    rc = fill_labels(run, &k, sh->a, sh->b);
    if (rc == AAL_OK)
      fill_logits(run, &k.buf[0], sh->a, sh->b);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, xent_forward_call, 0, row, &ran);
  if (rc == AAL_OK && ran) {
    xent_bounds(run, &k, bp, &bl);
    kc_check_bound(row, &k.buf[1], bp, 0);
    kc_check_scalar(row, &k.loss_res, "loss", k.loss[KC_REF], k.loss[KC_GOT], bl);
  }
  free(bp);
  kc_free(run, &k);
  return rc;
}

static int xent_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->xent_backward(be, k->sh->a, k->sh->b, KC_DEV(k, 0, v), k->labels, KC_DEV(k, 1, v),
                           err);
}

/* dlogits = (p - onehot) / N: a subtraction and a division, held to those two roundings
 * (kc_check_rounded, k = 2: |err| <= (gamma_2 + 2^-52) |dlogits_ref|). */
int kc_xent_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const int n = sh->a, C = sh->b;
  const size_t nz = (size_t)n * C;
  kc_case k = {.sh = sh};
  kc_add(&k, "prob", KC_IN, nz, 0);
  kc_add(&k, "dlogits", KC_OUT, nz, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    rc = fill_labels(run, &k, n, C);
    double *p = k.buf[0].val[KC_REF];
    for (int i = 0; i < n; i++) { /* a softmax of logits in +-4, rounded to float */
      double s = 0.0;
      for (int j = 0; j < C; j++)
        s += (p[(size_t)i * C + j] = exp(kc_sym(run, 4.0)));
      for (int j = 0; j < C; j++)
        p[(size_t)i * C + j] = (double)(float)(p[(size_t)i * C + j] / s);
    }
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, xent_backward_call, 0, row, &ran);
  if (rc == AAL_OK && ran)
    kc_check_rounded(run, row, &k.buf[1], 2);
  kc_free(run, &k);
  return rc;
}
