/* Global average pooling in float32.
 *   avgpool: x [rows, hw] -> y [rows] = mean of the row (summed in double: hw is small
 *   and the sum is then rounded once); backward dx[row, :] = dy[row] / hw. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

static int pool_args(const char *op, int rows, int hw, const void *in, const void *out,
                     aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "rows", rows, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK)
    return rc;
  return aal_be_check_ptrs(op, "input, output", err, 2, in, out);
}

int aal_cpu32_avgpool_forward(const aal_backend *be, int rows, int hw, const void *x, void *y,
                              aal_error *err)
{
  (void)be;
  int rc = pool_args("cpu32 avgpool_forward", rows, hw, x, y, err);
  if (rc != AAL_OK)
    return rc;
  const float *px = x;
  float *py = y;
  for (int i = 0; i < rows; i++) {
    const float *row = px + (size_t)i * hw;
    double s = 0.0;
    for (int k = 0; k < hw; k++)
      s += row[k];
    py[i] = (float)(s / hw);
  }
  return AAL_OK;
}

int aal_cpu32_avgpool_backward(const aal_backend *be, int rows, int hw, const void *dy,
                               void *dx, aal_error *err)
{
  (void)be;
  int rc = pool_args("cpu32 avgpool_backward", rows, hw, dy, dx, err);
  if (rc != AAL_OK)
    return rc;
  const float *pdy = dy;
  float *pdx = dx;
  const float div = (float)hw; /* exact: hw < 2^24 */
  for (int i = 0; i < rows; i++) {
    const float g = pdy[i] / div;
    float *row = pdx + (size_t)i * hw;
    for (int k = 0; k < hw; k++)
      row[k] = g;
  }
  return AAL_OK;
}
