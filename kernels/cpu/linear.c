/* The linear layer in float32 (a row-major sgemm: cblas_sgemm on cpu32; the dnnl backend
 * gives oneDNN's, kernels/dnnl/linear.c).
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

/* cpu32's gemm: OpenBLAS (cblas_sgemm returns nothing to check) */
static int cblas_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc, const char *op,
                      aal_error *err)
{
  (void)op;
  (void)err;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  return AAL_OK;
}

/* y = x w^T + b: y starts as b in every row, then the gemm with beta = 1. */
int aal_cpu32_linear_forward_with(aal_cpu32_gemm_fn gemm, const char *op, int n, int in,
                                  int out, const void *x, const void *w, const void *b, void *y,
                                  aal_error *err)
{
  int rc;
  if ((rc = lin_sizes(op, n, in, out, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, w, b, y", err, 4, x, w, b, y)) != AAL_OK)
    return rc;
  float *py = y;
  for (int i = 0; i < n; i++)
    memcpy(py + (size_t)i * out, b, (size_t)out * sizeof(float));
  return gemm(0, 1, n, out, in, x, in, w, in, 1.0f, py, out, op, err);
}

/* dx = dy w (skipped when dx is NULL), dw = dy^T x, db = column sums of dy (double). */
int aal_cpu32_linear_backward_with(aal_cpu32_gemm_fn gemm, const char *op, int n, int in,
                                   int out, const void *dy, const void *x, const void *w,
                                   void *dx, void *dw, void *db, aal_error *err)
{
  int rc;
  if ((rc = lin_sizes(op, n, in, out, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, w, dw, db", err, 5, dy, x, w, dw, db)) != AAL_OK)
    return rc;
  if (dx != NULL && (rc = gemm(0, 0, n, in, out, dy, out, w, in, 0.0f, dx, in, op, err)) != AAL_OK)
    return rc;
  if ((rc = gemm(1, 0, out, in, n, dy, out, x, in, 0.0f, dw, in, op, err)) != AAL_OK)
    return rc;
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

int aal_cpu32_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                             const void *w, const void *b, void *y, aal_error *err)
{
  (void)be;
  return aal_cpu32_linear_forward_with(cblas_gemm, "cpu32 linear_forward", n, in, out, x, w, b,
                                       y, err);
}

int aal_cpu32_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                              const void *x, const void *w, void *dx, void *dw, void *db,
                              aal_error *err)
{
  (void)be;
  return aal_cpu32_linear_backward_with(cblas_gemm, "cpu32 linear_backward", n, in, out, dy, x,
                                        w, dx, dw, db, err);
}
