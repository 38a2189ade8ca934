/* Elementwise add and global average pooling in float32.
 *   add: y = a + b (n elements); scale: y = s x (the product in double, rounded once).
 *   avgpool: x [rows, hw] -> y [rows] = mean of the row (summed in double: hw is small
 *   and the sum is then rounded once); backward dx[row, :] = dy[row] / hw. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

typedef struct {
  const float *a, *b;
  float *y;
} add_ctx;

static void add_elements(const void *arg, size_t lo, size_t hi)
{
  const add_ctx *c = arg;
  for (size_t i = lo; i < hi; i++)
    c->y[i] = c->a[i] + c->b[i];
}

/* Split over elements by the backend's team (each y[i] written by one thread). */
int aal_cpu32_add(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                  aal_error *err)
{
  int rc = aal_be_check_count("cpu32 add", n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("cpu32 add", "a, b, y", err, 3, a, b, y);
  if (rc != AAL_OK)
    return rc;
  const add_ctx c = {a, b, y};
  aal_team_par_for(aal_cpu32_be_team(be), add_elements, &c, n, n * sizeof(float));
  return AAL_OK;
}

typedef struct {
  const float *x;
  double s;
  float *y;
} scale_ctx;

static void scale_elements(const void *arg, size_t lo, size_t hi)
{
  const scale_ctx *c = arg;
  for (size_t i = lo; i < hi; i++)
    c->y[i] = (float)((double)c->x[i] * c->s);  /* the double product is exact: one rounding */
}

int aal_cpu32_scale(const aal_backend *be, size_t n, const void *x, double s, void *y,
                    aal_error *err)
{
  int rc = aal_be_check_count("cpu32 scale", n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("cpu32 scale", "x, y", err, 2, x, y);
  if (rc != AAL_OK)
    return rc;
  const scale_ctx c = {x, s, y};
  aal_team_par_for(aal_cpu32_be_team(be), scale_elements, &c, n, n * sizeof(float));
  return AAL_OK;
}

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
