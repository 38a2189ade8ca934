/* The linear layer in float32 (cblas_sgemm).
 *   x, dx [N, I];  w, dw [O, I];  b, db [O];  y, dy [N, O]. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <cblas.h>
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
