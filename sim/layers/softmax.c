/* Softmax along the last dimension, double precision.
 *   x, y, dy, dx [.., D] (rank 1..4; M = size / D rows).
 * Forward per row: mx = max x;  e_j = exp(x_j - mx) (<= 1, one of them exactly 1, so the
 *   sum s lies in [1, D] and nothing overflows or divides by 0);  y_j = e_j / s.
 *   A NaN in a row makes the row NaN (PyTorch's behaviour; no error).
 * Backward from the saved output: dx_j = y_j (dy_j - sum_i dy_i y_i) (the Jacobian
 *   diag(y) - y y^T applied to dy).
 * Row by row, each row read before it is written: y may be x, dx may be dy (attention.c
 * runs both in place on its [B, H, T, T] buffers). */
#include "sim/layers/transformer.h"

#include <math.h>

int aal_softmax_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                             aal_error *err)
{
  int rc = aal_rows_check(x, op, "x", err);
  return rc != AAL_OK ? rc : aal_tensor_check(y, AAL_F64, 0, x, op, "y", "x", err);
}

int aal_softmax_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *y,
                              const aal_tensor *dx, aal_error *err)
{
  int rc;
  if ((rc = aal_rows_check(y, op, "y", err)) != AAL_OK ||
      (rc = aal_tensor_check(dy, AAL_F64, 0, y, op, "dy", "y", err)) != AAL_OK ||
      (rc = aal_tensor_check(dx, AAL_F64, 0, y, op, "dx", "y", err)) != AAL_OK)
    return rc;
  if (aal_tensor_shares(dx, y))
    return aal_fail(err, AAL_EINVAL, "%s: dx must not share storage with y", op);
  return AAL_OK;
}

int aal_softmax_forward(const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  int rc = aal_softmax_forward_args("softmax forward", x, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t d = x->shape[x->ndim - 1], m = x->size / d;
  for (size_t r = 0; r < m; r++) {
    const double *xr = x->data + r * d;
    double *yr = y->data + r * d;
    double mx = xr[0];
    for (size_t j = 1; j < d; j++) /* a NaN anywhere makes a term, so the row, NaN */
      if (xr[j] > mx)
        mx = xr[j];
    double s = 0.0;
    for (size_t j = 0; j < d; j++) {
      yr[j] = exp(xr[j] - mx);
      s += yr[j];
    }
    for (size_t j = 0; j < d; j++)
      yr[j] /= s;
  }
  return AAL_OK;
}

int aal_softmax_backward(const aal_tensor *dy, const aal_tensor *y, aal_tensor *dx,
                         aal_error *err)
{
  int rc = aal_softmax_backward_args("softmax backward", dy, y, dx, err);
  if (rc != AAL_OK)
    return rc;
  const size_t d = y->shape[y->ndim - 1], m = y->size / d;
  for (size_t r = 0; r < m; r++) {
    const double *yr = y->data + r * d, *dyr = dy->data + r * d;
    double *dxr = dx->data + r * d;
    double s = 0.0;
    for (size_t j = 0; j < d; j++)
      s += dyr[j] * yr[j];
    for (size_t j = 0; j < d; j++)
      dxr[j] = yr[j] * (dyr[j] - s);
  }
  return AAL_OK;
}
