/* Softmax along the last dimension in float32 (sim/layers/softmax.c).
 *   x, y, dy, dx [m, d].
 * Forward per row: mx = max x (a NaN makes the row NaN); e = expf(x - mx) in float (<= 1,
 *   so nothing overflows); s = sum e in double, rounded once; y = e / s.
 * Backward per row: s = sum dy y in double, rounded once; dx = y (dy - s) in float.
 * The row functions are shared with kernels/cpu/attention.c (its P and dS).  Threads
 * take whole rows. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

void aal_cpu32_softmax_rows(const float *x, float *y, size_t lo, size_t hi, size_t d)
{
  for (size_t r = lo; r < hi; r++) {
    const float *xr = x + r * d;
    float *yr = y + r * d;
    float mx = xr[0];
    for (size_t j = 1; j < d; j++)
      if (xr[j] > mx)
        mx = xr[j];
    double s = 0.0;
    for (size_t j = 0; j < d; j++) {
      yr[j] = expf(xr[j] - mx);
      s += yr[j];
    }
    const float sf = (float)s;
    for (size_t j = 0; j < d; j++)
      yr[j] /= sf;
  }
}

void aal_cpu32_softmax_backward_rows(const float *dy, const float *y, float *dx, size_t lo,
                                     size_t hi, size_t d)
{
  for (size_t r = lo; r < hi; r++) {
    const float *dyr = dy + r * d, *yr = y + r * d;
    float *dxr = dx + r * d;
    double s = 0.0;
    for (size_t j = 0; j < d; j++)
      s += (double)dyr[j] * yr[j];
    const float sf = (float)s;
    for (size_t j = 0; j < d; j++)
      dxr[j] = yr[j] * (dyr[j] - sf);
  }
}

typedef struct {
  size_t d;
  const float *x, *dy;
  float *y;
} sm_ctx;

static void sm_forward_rows(const void *arg, size_t lo, size_t hi)
{
  const sm_ctx *a = arg;
  aal_cpu32_softmax_rows(a->x, a->y, lo, hi, a->d);
}

static void sm_backward_rows(const void *arg, size_t lo, size_t hi)
{
  const sm_ctx *a = arg;
  aal_cpu32_softmax_backward_rows(a->dy, a->x, a->y, lo, hi, a->d);
}

static int sm_sizes(const char *op, int m, int d, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "m", m, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "d", d, err)) != AAL_OK)
    return rc;
  return aal_be_check_count(op, (size_t)m * (size_t)d, sizeof(float), err);
}

int aal_cpu32_softmax_forward(const aal_backend *be, int m, int d, const void *x, void *y,
                              aal_error *err)
{
  static const char op[] = "cpu32 softmax_forward";
  int rc;
  if ((rc = sm_sizes(op, m, d, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  const sm_ctx a = {(size_t)d, x, NULL, y};
  aal_team_par_for(aal_cpu32_be_team(be), sm_forward_rows, &a, (size_t)m,
                   (size_t)m * (size_t)d * sizeof(float));
  return AAL_OK;
}

int aal_cpu32_softmax_backward(const aal_backend *be, int m, int d, const void *dy,
                               const void *y, void *dx, aal_error *err)
{
  static const char op[] = "cpu32 softmax_backward";
  int rc;
  if ((rc = sm_sizes(op, m, d, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, y, dx", err, 3, dy, y, dx)) != AAL_OK)
    return rc;
  if (dx == y)
    return aal_fail(err, AAL_EINVAL, "%s: dx must not share storage with y", op);
  const sm_ctx a = {(size_t)d, y, dy, dx};
  aal_team_par_for(aal_cpu32_be_team(be), sm_backward_rows, &a, (size_t)m,
                   2 * (size_t)m * (size_t)d * sizeof(float));
  return AAL_OK;
}
