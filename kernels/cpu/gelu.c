/* GELU (exact erf form) in float32 (sim/layers/gelu.c).
 *   forward:  z = x * (1/sqrt 2), y = 0.5 x (1 + erff(z));
 *   backward: dx = dy (0.5 (1 + erff(z)) + x * 1/sqrt(2 pi) * expf(-0.5 x^2)).
 * All in float with libm's erff and expf (glibc: within 1-2 ulp); the harness's bound
 * (kernels/check/gelu.c) counts each rounding and each libm call at 2u.  Threads take
 * ranges of elements (each element's arithmetic is the single-threaded one). */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

#define GELU_RSQRT2F 0.70710678f
#define GELU_RSQRT2PIF 0.39894228f

typedef struct {
  const float *x, *dy;
  float *y;
} gelu_ctx;

static void gelu_forward_range(const void *arg, size_t lo, size_t hi)
{
  const gelu_ctx *a = arg;
  for (size_t i = lo; i < hi; i++) {
    const float v = a->x[i];
    a->y[i] = 0.5f * v * (1.0f + erff(v * GELU_RSQRT2F));
  }
}

static void gelu_backward_range(const void *arg, size_t lo, size_t hi)
{
  const gelu_ctx *a = arg;
  for (size_t i = lo; i < hi; i++) {
    const float v = a->x[i];
    const float cdf = 0.5f * (1.0f + erff(v * GELU_RSQRT2F));
    const float pdf = GELU_RSQRT2PIF * expf(-0.5f * v * v);
    a->y[i] = a->dy[i] * (cdf + v * pdf);
  }
}

int aal_cpu32_gelu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                           aal_error *err)
{
  static const char op[] = "cpu32 gelu_forward";
  int rc;
  if ((rc = aal_be_check_count(op, n, sizeof(float), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  const gelu_ctx a = {x, NULL, y};
  aal_team_par_for(aal_cpu32_be_team(be), gelu_forward_range, &a, n, n * sizeof(float));
  return AAL_OK;
}

int aal_cpu32_gelu_backward(const aal_backend *be, size_t n, const void *dy, const void *x,
                            void *dx, aal_error *err)
{
  static const char op[] = "cpu32 gelu_backward";
  int rc;
  if ((rc = aal_be_check_count(op, n, sizeof(float), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, dx", err, 3, dy, x, dx)) != AAL_OK)
    return rc;
  const gelu_ctx a = {x, dy, dx};
  aal_team_par_for(aal_cpu32_be_team(be), gelu_backward_range, &a, n, 2 * n * sizeof(float));
  return AAL_OK;
}
