/* The classifier head in float32: linear layer (cblas_sgemm) and softmax
 * cross-entropy.
 *   x, dx [N, I];  w, dw [O, I];  b, db [O];  y, dy [N, O];  logits, prob [N, C].
 * Softmax works per row in double (C exponentials: cheap next to the GEMMs, and it makes
 * prob exact to one float rounding and the loss exact to double rounding, with the row
 * maximum subtracted so that large logits cannot overflow). */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static int lin_sizes(const char *op, int n, int in, int out, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "in", in, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "out", out, err)) != AAL_OK)
    return rc;
  return AAL_OK;
}

/* y = x w^T + b: y starts as b in every row, then sgemm with beta = 1. */
int aal_cpu32_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                             const void *w, const void *b, void *y, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 linear_forward";
  int rc;
  if ((rc = lin_sizes(op, n, in, out, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, w, b, y", err, 4, x, w, b, y)) != AAL_OK)
    return rc;
  float *py = y;
  for (int i = 0; i < n; i++)
    memcpy(py + (size_t)i * out, b, (size_t)out * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 1.0f,
              py, out);
  return AAL_OK;
}

/* dx = dy w (skipped when dx is NULL), dw = dy^T x, db = column sums of dy (double). */
int aal_cpu32_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                              const void *x, const void *w, void *dx, void *dw, void *db,
                              aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 linear_backward";
  int rc;
  if ((rc = lin_sizes(op, n, in, out, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, w, dw, db", err, 5, dy, x, w, dw, db)) != AAL_OK)
    return rc;
  if (dx != NULL)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in,
                0.0f, dx, in);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 0.0f,
              dw, in);
  const float *pdy = dy;
  float *pdb = db;
  for (int o = 0; o < out; o++) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
      s += pdy[(size_t)i * out + o];
    pdb[o] = (float)s;
  }
  return AAL_OK;
}

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
