/* GELU, the exact erf form, double precision (PyTorch's nn.GELU(), approximate='none').
 *   x, y, dy, dx of one shape (any rank).
 *   y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2 (the standard normal CDF).
 *   Backward from the saved input x: dx = dy gelu'(x),
 *   gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
 * Elementwise, so y may be x and dx may be dy. */
#include "sim/layers/transformer.h"

#include <math.h>

/* 1/sqrt(2) and 1/sqrt(2 pi), to 17 significant digits */
#define GELU_RSQRT2 0.70710678118654752
#define GELU_RSQRT2PI 0.39894228040143268

int aal_gelu_args(const char *op, const aal_tensor *a, const aal_tensor *b,
                  const aal_tensor *c, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(a, AAL_F64, 0, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(b, AAL_F64, 0, a, op, c != NULL ? "dy" : "y", "x", err)) != AAL_OK)
    return rc;
  if (c != NULL)
    return aal_tensor_check(c, AAL_F64, 0, a, op, "dx", "x", err);
  return AAL_OK;
}

double aal_gelu_deriv(double x)
{
  return 0.5 * (1.0 + erf(x * GELU_RSQRT2)) + x * GELU_RSQRT2PI * exp(-0.5 * x * x);
}

int aal_gelu_forward(const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  int rc = aal_gelu_args("gelu forward", x, y, NULL, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t i = 0; i < x->size; i++) {
    const double v = x->data[i];
    y->data[i] = 0.5 * v * (1.0 + erf(v * GELU_RSQRT2));
  }
  return AAL_OK;
}

int aal_gelu_backward(const aal_tensor *dy, const aal_tensor *x, aal_tensor *dx,
                      aal_error *err)
{
  int rc = aal_gelu_args("gelu backward", x, dy, dx, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t i = 0; i < x->size; i++)
    dx->data[i] = dy->data[i] * aal_gelu_deriv(x->data[i]);
  return AAL_OK;
}
