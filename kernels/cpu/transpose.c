/* Transpose of the last two dimensions in float32 (sim/layers/transpose.c):
 * x [b, a, c] -> y [b, c, a].  A copy (exact); its own backward. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

int aal_cpu32_transpose(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                        aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 transpose";
  int rc;
  if ((rc = aal_be_check_pos(op, "b", b, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "a", a, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_count(op, (size_t)b * (size_t)a, (size_t)c * sizeof(float), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  if (x == y)
    return aal_fail(err, AAL_EINVAL, "%s: y must not share storage with x", op);
  const float *fx = x;
  float *fy = y;
  const size_t ca = (size_t)c * (size_t)a;
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t i = 0; i < (size_t)a; i++)
      for (size_t j = 0; j < (size_t)c; j++)
        fy[bb * ca + j * (size_t)a + i] = fx[bb * ca + i * (size_t)c + j];
  return AAL_OK;
}
