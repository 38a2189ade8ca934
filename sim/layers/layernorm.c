/* Layer normalisation over the last dimension, double precision (PyTorch's
 * nn.LayerNorm(D), biased variance, eps 1e-5 by default).
 *   x, y, dy, dx [.., D] (rank 1..4; M = size / D rows, a row per token);
 *   gamma, beta, dgamma, dbeta [D];  mean, invstd [M].
 * Forward per row: mean = sum x / D;  var = sum (x - mean)^2 / D (two passes: no
 *   cancellation of E[x^2] - mean^2);  invstd = 1 / sqrt(var + eps);
 *   y = gamma (x - mean) invstd + beta.  mean and invstd are saved for backward.
 * Backward per row, with xhat = (x - mean) invstd and g = dy gamma:
 *   dx = invstd (g - mean_D(g) - xhat mean_D(g xhat))
 *   (the derivative of xhat through mean and var: d xhat_i / d x_j = invstd (delta_ij -
 *   1/D - xhat_i xhat_j / D)),  dgamma = sum over rows of dy xhat,  dbeta = sum of dy. */
#include "sim/layers/transformer.h"

#include <math.h>
#include <string.h>

/* t must be a vector of n elements. */
static int require_vec(const aal_tensor *t, size_t n, const char *op, const char *name,
                       const char *why, aal_error *err)
{
  int rc = aal_tensor_check(t, AAL_F64, 1, NULL, op, name, NULL, err);
  if (rc != AAL_OK)
    return rc;
  if (t->shape[0] != n)
    return aal_fail(err, AAL_ESHAPE, "%s: %s has %zu elements, expected %zu (%s)", op, name,
                    t->shape[0], n, why);
  return AAL_OK;
}

int aal_layernorm_forward_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                               const aal_tensor *beta, double eps, const aal_tensor *y,
                               const aal_tensor *mean, const aal_tensor *invstd,
                               aal_error *err)
{
  int rc;
  if ((rc = aal_rows_check(x, op, "x", err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 0, x, op, "y", "x", err)) != AAL_OK)
    return rc;
  const size_t d = x->shape[x->ndim - 1], m = x->size / d;
  if ((rc = require_vec(gamma, d, op, "gamma", "D, the last size of x", err)) != AAL_OK ||
      (rc = require_vec(beta, d, op, "beta", "D, the last size of x", err)) != AAL_OK ||
      (rc = require_vec(mean, m, op, "mean", "M, the rows of x", err)) != AAL_OK ||
      (rc = require_vec(invstd, m, op, "invstd", "M, the rows of x", err)) != AAL_OK)
    return rc;
  if (!(eps > 0.0) || !isfinite(eps))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g, must be finite and > 0", op, eps);
  if (aal_tensor_shares(y, gamma) || aal_tensor_shares(y, beta))
    return aal_fail(err, AAL_EINVAL, "%s: y must not share storage with gamma or beta", op);
  return AAL_OK;
}

int aal_layernorm_forward(const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *beta,
                          double eps, aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                          aal_error *err)
{
  int rc = aal_layernorm_forward_args("layernorm forward", x, gamma, beta, eps, y, mean,
                                      invstd, err);
  if (rc != AAL_OK)
    return rc;
  const size_t d = x->shape[x->ndim - 1], m = x->size / d;
  for (size_t r = 0; r < m; r++) {
    const double *xr = x->data + r * d;
    double *yr = y->data + r * d;
    double s = 0.0;
    for (size_t j = 0; j < d; j++)
      s += xr[j];
    const double mu = s / (double)d;
    double ss = 0.0;
    for (size_t j = 0; j < d; j++)
      ss += (xr[j] - mu) * (xr[j] - mu);
    const double is = 1.0 / sqrt(ss / (double)d + eps);
    for (size_t j = 0; j < d; j++) /* y may be x: xr[j] is read before yr[j] is written */
      yr[j] = gamma->data[j] * ((xr[j] - mu) * is) + beta->data[j];
    mean->data[r] = mu;
    invstd->data[r] = is;
  }
  return AAL_OK;
}

int aal_layernorm_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                                const aal_tensor *gamma, const aal_tensor *mean,
                                const aal_tensor *invstd, const aal_tensor *dx,
                                const aal_tensor *dgamma, const aal_tensor *dbeta,
                                aal_error *err)
{
  int rc;
  if ((rc = aal_rows_check(x, op, "x", err)) != AAL_OK ||
      (rc = aal_tensor_check(dy, AAL_F64, 0, x, op, "dy", "x", err)) != AAL_OK ||
      (rc = aal_tensor_check(dx, AAL_F64, 0, x, op, "dx", "x", err)) != AAL_OK)
    return rc;
  const size_t d = x->shape[x->ndim - 1], m = x->size / d;
  if ((rc = require_vec(gamma, d, op, "gamma", "D, the last size of x", err)) != AAL_OK ||
      (rc = require_vec(dgamma, d, op, "dgamma", "D, the last size of x", err)) != AAL_OK ||
      (rc = require_vec(dbeta, d, op, "dbeta", "D, the last size of x", err)) != AAL_OK ||
      (rc = require_vec(mean, m, op, "mean", "M, the rows of x", err)) != AAL_OK ||
      (rc = require_vec(invstd, m, op, "invstd", "M, the rows of x", err)) != AAL_OK)
    return rc;
  /* dx is written row by row while dgamma and dbeta accumulate over all rows of dy and x */
  if (aal_tensor_shares(dx, x) || aal_tensor_shares(dgamma, dy) || aal_tensor_shares(dbeta, dy))
    return aal_fail(err, AAL_EINVAL, "%s: outputs must not share storage with x or dy", op);
  return AAL_OK;
}

int aal_layernorm_backward(const aal_tensor *dy, const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *mean, const aal_tensor *invstd, aal_tensor *dx,
                           aal_tensor *dgamma, aal_tensor *dbeta, aal_error *err)
{
  int rc = aal_layernorm_backward_args("layernorm backward", dy, x, gamma, mean, invstd, dx,
                                       dgamma, dbeta, err);
  if (rc != AAL_OK)
    return rc;
  const size_t d = x->shape[x->ndim - 1], m = x->size / d;
  for (size_t r = 0; r < m; r++)
    if (!isfinite(mean->data[r]) || !(invstd->data[r] > 0.0) || !isfinite(invstd->data[r]))
      return aal_fail(err, AAL_ENUMERIC, "layernorm backward: row %zu has saved mean %g, "
                      "invstd %g (must be finite, invstd > 0)", r, mean->data[r],
                      invstd->data[r]);
  memset(dgamma->data, 0, d * sizeof(double));
  memset(dbeta->data, 0, d * sizeof(double));
  for (size_t r = 0; r < m; r++) {
    const double *xr = x->data + r * d, *dyr = dy->data + r * d;
    double *dxr = dx->data + r * d;
    const double mu = mean->data[r], is = invstd->data[r];
    double sg = 0.0, sgx = 0.0; /* sum g, sum g xhat */
    for (size_t j = 0; j < d; j++) {
      const double xh = (xr[j] - mu) * is, g = dyr[j] * gamma->data[j];
      sg += g;
      sgx += g * xh;
      dgamma->data[j] += dyr[j] * xh;
      dbeta->data[j] += dyr[j];
    }
    const double mg = sg / (double)d, mgx = sgx / (double)d;
    for (size_t j = 0; j < d; j++) { /* dx may be dy: dyr[j] read before dxr[j] written */
      const double xh = (xr[j] - mu) * is;
      dxr[j] = is * (dyr[j] * gamma->data[j] - mg - xh * mgx);
    }
  }
  return AAL_OK;
}
