/* Softmax cross-entropy in float32.
 *   logits, prob [N, C].
 * Softmax works per row in double (C exponentials: cheap next to the GEMMs, and it makes
 * prob exact to one float rounding and the loss exact to double rounding, with the row
 * maximum subtracted so that large logits cannot overflow). */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

static int xent_args(const char *op, int n, int classes, const int *labels, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "classes", classes, err)) != AAL_OK)
    return rc;
  if (labels == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: labels is NULL", op);
  for (int i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= classes)
      return aal_fail(err, AAL_EINVAL, "%s: sample %d has label %d, outside 0..%d", op, i,
                      labels[i], classes - 1);
  return AAL_OK;
}

/* One row: prob written (float), the row's loss returned; a non-finite logit fails. */
static int xent_row(const float *z, int classes, int label, int row, float *prob,
                    double *loss_n, aal_error *err)
{
  double mx = -INFINITY;
  for (int k = 0; k < classes; k++) {
    if (!isfinite(z[k]))
      return aal_fail(err, AAL_ENUMERIC, "cpu32 xent_forward: sample %d has non-finite "
                      "logit %g at class %d", row, (double)z[k], k);
    if (z[k] > mx)
      mx = z[k];
  }
  double s = 0.0;
  for (int k = 0; k < classes; k++)
    s += exp(z[k] - mx);
  *loss_n = (mx - z[label]) + log(s);
  for (int k = 0; k < classes; k++)
    prob[k] = (float)(exp(z[k] - mx) / s);
  return AAL_OK;
}

int aal_cpu32_xent_forward(const aal_backend *be, int n, int classes, const void *logits,
                           const int *labels, double *loss, void *prob, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 xent_forward";
  int rc;
  if ((rc = xent_args(op, n, classes, labels, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "logits, loss, prob", err, 3, logits, loss, prob)) != AAL_OK)
    return rc;
  const float *pz = logits;
  float *pp = prob;
  double total = 0.0;
  for (int i = 0; i < n; i++) {
    double l = 0.0;
    rc = xent_row(pz + (size_t)i * classes, classes, labels[i], i, pp + (size_t)i * classes,
                  &l, err);
    if (rc != AAL_OK)
      return rc;
    total += l;
  }
  *loss = total / n;
  return AAL_OK;
}

/* dlogits = (prob - onehot(label)) / N, formed in double and rounded once. */
int aal_cpu32_xent_backward(const aal_backend *be, int n, int classes, const void *prob,
                            const int *labels, void *dlogits, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 xent_backward";
  int rc;
  if ((rc = xent_args(op, n, classes, labels, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "prob, dlogits", err, 2, prob, dlogits)) != AAL_OK)
    return rc;
  const float *pp = prob;
  float *pd = dlogits;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < classes; k++) {
      const size_t at = (size_t)i * classes + k;
      pd[at] = (float)(((double)pp[at] - (k == labels[i])) / n);
    }
  return AAL_OK;
}
