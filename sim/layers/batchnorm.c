/* BatchNorm2d, double precision: training forward (batch statistics), evaluation
 * forward (running statistics) and the backward of the training forward.
 *
 *   x, y, dy, dx [N, C, H, W];  per-channel vectors [C].
 *   Per channel c the statistics run over the M = N*H*W elements x[:, c, :, :]. */
#include "sim/layers/layers.h"
#include "sim/core/comm.h"

#include <math.h>
#include <stdlib.h>

/* Requires t to be an F64 vector of exactly c elements ("channels of x"), naming it
 * in the message: "bn2d forward: gamma has shape 5, expected 3 (channels of x)". */
static int require_channels(const aal_tensor *t, size_t c, const char *op,
                            const char *name, aal_error *err)
{
  if (t == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: %s is NULL", op, name);
  if (t->dtype != AAL_F64)
    return aal_fail(err, AAL_EINVAL, "%s: %s has the wrong element type (expected F64)", op,
                    name);
  if (t->ndim != 1 || t->shape[0] != c) {
    char s[64];
    aal_tensor_shape_str(t, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zu (channels of x)", op,
                    name, s, c);
  }
  return AAL_OK;
}

static int require_eps(double eps, const char *op, aal_error *err)
{
  /* Written so that NaN fails too. */
  if (!(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g; it must be finite and > 0", op, eps);
  return AAL_OK;
}

/* The sum of channel c of x over its N*H*W elements, n outer, h*w inner. */
static double channel_sum(const aal_tensor *x, size_t c)
{
  const size_t hw = x->shape[2] * x->shape[3];
  double sum = 0.0;
  for (size_t n = 0; n < x->shape[0]; n++) {
    const double *p = x->data + aal_idx4(x, n, c, 0, 0);
    for (size_t k = 0; k < hw; k++)
      sum += p[k];
  }
  return sum;
}

/* sum d and sum d^2 of channel c, d = x - m1, in channel_sum's order. */
static void channel_dev_sums(const aal_tensor *x, size_t c, double m1, double *sd, double *sd2)
{
  const size_t hw = x->shape[2] * x->shape[3];
  double s = 0.0, s2 = 0.0;
  for (size_t n = 0; n < x->shape[0]; n++) {
    const double *p = x->data + aal_idx4(x, n, c, 0, 0);
    for (size_t k = 0; k < hw; k++) {
      const double d = p[k] - m1;
      s += d;
      s2 += d * d;
    }
  }
  *sd = s;
  *sd2 = s2;
}

/* y[:, c] = (x[:, c] - m) * scale + shift, with scale = gamma*invstd, shift = beta. */
static void channel_affine(const aal_tensor *x, size_t c, double m, double scale,
                           double shift, aal_tensor *y)
{
  const size_t hw = x->shape[2] * x->shape[3];
  for (size_t n = 0; n < x->shape[0]; n++) {
    const size_t base = aal_idx4(x, n, c, 0, 0);
    const double *px = x->data + base;
    double *py = y->data + base;
    for (size_t k = 0; k < hw; k++)
      py[k] = (px[k] - m) * scale + shift;
  }
}

int aal_bn2d_batch_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                        const aal_tensor *beta, double eps, const aal_tensor *y,
                        const aal_tensor *mean, const aal_tensor *invstd,
                        const aal_tensor *var, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK)
    return rc;
  const size_t c = x->shape[1];
  if ((rc = require_channels(gamma, c, op, "gamma", err)) != AAL_OK ||
      (rc = require_channels(beta, c, op, "beta", err)) != AAL_OK ||
      (rc = require_channels(mean, c, op, "mean", err)) != AAL_OK ||
      (rc = require_channels(invstd, c, op, "invstd", err)) != AAL_OK ||
      (var != NULL && (rc = require_channels(var, c, op, "var", err)) != AAL_OK) ||
      (rc = aal_tensor_check(y, AAL_F64, 0, x, op, "y", "x", err)) != AAL_OK ||
      (rc = require_eps(eps, op, err)) != AAL_OK)
    return rc;
  const size_t m_count = x->shape[0] * x->shape[2] * x->shape[3];
  if (m_count < 2) {
    char s[64];
    aal_tensor_shape_str(x, s, sizeof s);
    return aal_fail(err, AAL_EINVAL,
                    "%s: x has shape %s, so each channel has N*H*W = 1 value; training "
                    "needs more than 1 value per channel",
                    op, s);
  }
  return AAL_OK;
}

int aal_bn2d_train_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                        const aal_tensor *beta, const aal_tensor *running_mean,
                        const aal_tensor *running_var, double momentum, double eps,
                        const aal_tensor *y, const aal_tensor *mean, const aal_tensor *invstd,
                        aal_error *err)
{
  int rc = aal_bn2d_batch_args(op, x, gamma, beta, eps, y, mean, invstd, NULL, err);
  if (rc != AAL_OK)
    return rc;
  const size_t c = x->shape[1];
  if ((rc = require_channels(running_mean, c, op, "running_mean", err)) != AAL_OK ||
      (rc = require_channels(running_var, c, op, "running_var", err)) != AAL_OK)
    return rc;
  if (!(momentum >= 0.0 && momentum <= 1.0))
    return aal_fail(err, AAL_EINVAL, "%s: momentum is %g; it must lie in [0, 1]", op,
                    momentum);
  return AAL_OK;
}

/* Corrected two-pass mean and biased variance of every channel (Chan, Golub & LeVeque):
 * with m1 the first-pass mean and d = x - m1, var = (sum d^2 - (sum d)^2 / M) / M and
 * mean = m1 + (sum d) / M.  sum d is the rounding error of the first pass (tiny), so
 * the correction refines the mean and removes its error from the variance; var can
 * only be negative by rounding and is clamped at 0.  Never E[x^2] - E[x]^2.
 * The batch may be split across processes (comm; NULL: this process holds all of it):
 * each sum is this process's partial sum, then its sum over the processes, and M is
 * the total count (*m_total).  mean [C], var[C]; AAL_ENUMERIC, before y or the running
 * statistics change, if any is not finite (every process sees the same sums, so all
 * fail alike). */
static int batch_stats(const aal_tensor *x, const aal_comm *comm, aal_tensor *mean,
                       double *var, double *m_total, aal_error *err)
{
  const size_t nch = x->shape[1];
  double *s = malloc((2 * nch + 1) * sizeof *s);
  if (s == NULL)
    return aal_fail(err, AAL_ENOMEM, "bn2d forward: cannot allocate %zu sums", 2 * nch + 1);
  for (size_t c = 0; c < nch; c++)
    s[c] = channel_sum(x, c);
  s[nch] = (double)(x->shape[0] * x->shape[2] * x->shape[3]);
  int rc = aal_comm_sum(comm, s, nch + 1, err);
  const double m_count = s[nch];
  for (size_t c = 0; rc == AAL_OK && c < nch; c++)
    mean->data[c] = s[c] / m_count; /* m1, refined below */
  for (size_t c = 0; rc == AAL_OK && c < nch; c++)
    channel_dev_sums(x, c, mean->data[c], &s[2 * c], &s[2 * c + 1]);
  if (rc == AAL_OK)
    rc = aal_comm_sum(comm, s, 2 * nch, err);
  for (size_t c = 0; rc == AAL_OK && c < nch; c++) {
    const double sd = s[2 * c], sd2 = s[2 * c + 1];
    const double v = (sd2 - sd * sd / m_count) / m_count;
    mean->data[c] += sd / m_count;
    var[c] = v < 0.0 ? 0.0 : v; /* NaN stays NaN and is reported */
    if (!isfinite(mean->data[c]) || !isfinite(var[c]))
      rc = aal_fail(err, AAL_ENUMERIC,
                    "bn2d forward: channel %zu of x has non-finite mean %g or variance %g", c,
                    mean->data[c], var[c]);
  }
  *m_total = m_count;
  free(s);
  return rc;
}

/* y, mean, invstd and the biased variances var[C] of one batch (args checked) */
static int forward_batch(const aal_tensor *x, const aal_comm *comm, const aal_tensor *gamma,
                         const aal_tensor *beta, double eps, aal_tensor *y, aal_tensor *mean,
                         aal_tensor *invstd, double *var, double *m_total, aal_error *err)
{
  int rc = batch_stats(x, comm, mean, var, m_total, err);
  for (size_t c = 0; rc == AAL_OK && c < x->shape[1]; c++) {
    invstd->data[c] = 1.0 / sqrt(var[c] + eps);
    channel_affine(x, c, mean->data[c], gamma->data[c] * invstd->data[c], beta->data[c], y);
  }
  return rc;
}

int aal_bn2d_forward_batch(const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *beta, double eps, aal_tensor *y,
                           aal_tensor *mean, aal_tensor *invstd, aal_tensor *var,
                           aal_error *err)
{
  int rc = aal_bn2d_batch_args("bn2d forward", x, gamma, beta, eps, y, mean, invstd, var,
                               err);
  if (rc != AAL_OK)
    return rc;
  if (var == NULL)
    return aal_fail(err, AAL_EINVAL, "bn2d forward: var is NULL");
  double m_total;
  return forward_batch(x, NULL, gamma, beta, eps, y, mean, invstd, var->data, &m_total, err);
}

void aal_bn2d_update_running(aal_tensor *running_mean, aal_tensor *running_var,
                             const double *mean, const double *var, double momentum,
                             double m_count)
{
  for (size_t c = 0; c < running_mean->size; c++) {
    /* Unbiased variance for the running estimate, as PyTorch does. */
    const double unbiased = var[c] * (m_count / (m_count - 1.0));
    double *rm = &running_mean->data[c], *rv = &running_var->data[c];
    *rm = (1.0 - momentum) * *rm + momentum * mean[c];
    *rv = (1.0 - momentum) * *rv + momentum * unbiased;
  }
}

int aal_bn2d_forward_train(const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *beta, aal_tensor *running_mean,
                           aal_tensor *running_var, double momentum, double eps,
                           aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                           aal_error *err)
{
  return aal_bn2d_forward_train_sync(NULL, x, gamma, beta, running_mean, running_var, momentum,
                                     eps, y, mean, invstd, err);
}

int aal_bn2d_forward_train_sync(const aal_comm *comm, const aal_tensor *x,
                                const aal_tensor *gamma, const aal_tensor *beta,
                                aal_tensor *running_mean, aal_tensor *running_var,
                                double momentum, double eps, aal_tensor *y, aal_tensor *mean,
                                aal_tensor *invstd, aal_error *err)
{
  int rc = aal_bn2d_train_args("bn2d forward", x, gamma, beta, running_mean, running_var,
                               momentum, eps, y, mean, invstd, err);
  if (rc != AAL_OK)
    return rc;
  const size_t nch = x->shape[1];
  /* Biased batch variances [C]: all channels are checked before the running statistics
   * change, so a failed forward leaves them as they were. */
  double *var = malloc(nch * sizeof *var);
  if (var == NULL)
    return aal_fail(err, AAL_ENOMEM, "bn2d forward: cannot allocate %zu variances", nch);
  double m_total = 0;
  rc = forward_batch(x, comm, gamma, beta, eps, y, mean, invstd, var, &m_total, err);
  if (rc == AAL_OK)
    aal_bn2d_update_running(running_mean, running_var, mean->data, var, momentum, m_total);
  free(var);
  return rc;
}

int aal_bn2d_eval_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                       const aal_tensor *beta, const aal_tensor *running_mean,
                       const aal_tensor *running_var, double eps, const aal_tensor *y,
                       aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK)
    return rc;
  const size_t nch = x->shape[1];
  if ((rc = require_channels(gamma, nch, op, "gamma", err)) != AAL_OK ||
      (rc = require_channels(beta, nch, op, "beta", err)) != AAL_OK ||
      (rc = require_channels(running_mean, nch, op, "running_mean", err)) != AAL_OK ||
      (rc = require_channels(running_var, nch, op, "running_var", err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 0, x, op, "y", "x", err)) != AAL_OK ||
      (rc = require_eps(eps, op, err)) != AAL_OK)
    return rc;
  for (size_t c = 0; c < nch; c++) {
    const double rm = running_mean->data[c], rv = running_var->data[c];
    if (!isfinite(rm) || !isfinite(rv))
      return aal_fail(err, AAL_ENUMERIC,
                      "%s: channel %zu has non-finite running_mean %g or running_var %g", op,
                      c, rm, rv);
    if (rv < 0.0)
      return aal_fail(err, AAL_EINVAL, "%s: channel %zu has negative running_var %g", op, c,
                      rv);
  }
  return AAL_OK;
}

int aal_bn2d_forward_eval(const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *beta,
                          const aal_tensor *running_mean, const aal_tensor *running_var,
                          double eps, aal_tensor *y, aal_error *err)
{
  int rc = aal_bn2d_eval_args("bn2d eval forward", x, gamma, beta, running_mean, running_var,
                              eps, y, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t c = 0; c < x->shape[1]; c++) {
    const double inv = 1.0 / sqrt(running_var->data[c] + eps);
    channel_affine(x, c, running_mean->data[c], gamma->data[c] * inv, beta->data[c], y);
  }
  return AAL_OK;
}

/* Per channel: sum dy and sum dy*xhat, xhat = (x - mean)*invstd. */
static void channel_grad_sums(const aal_tensor *dy, const aal_tensor *x, size_t c, double m,
                              double inv, double *sum_dy, double *sum_dy_xhat)
{
  const size_t hw = x->shape[2] * x->shape[3];
  double s = 0.0, sx = 0.0;
  for (size_t n = 0; n < x->shape[0]; n++) {
    const size_t base = aal_idx4(x, n, c, 0, 0);
    const double *px = x->data + base, *pdy = dy->data + base;
    for (size_t k = 0; k < hw; k++) {
      s += pdy[k];
      sx += pdy[k] * ((px[k] - m) * inv);
    }
  }
  *sum_dy = s;
  *sum_dy_xhat = sx;
}

/* dx = gamma*invstd/M * (M*dy - sum dy - xhat * sum(dy*xhat)), written as
 * gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)) so nothing is scaled by M. */
static void channel_dx(const aal_tensor *dy, const aal_tensor *x, size_t c, double m,
                       double inv, double g, double mean_dy, double mean_dy_xhat,
                       aal_tensor *dx)
{
  const size_t hw = x->shape[2] * x->shape[3];
  const double k_scale = g * inv;
  for (size_t n = 0; n < x->shape[0]; n++) {
    const size_t base = aal_idx4(x, n, c, 0, 0);
    const double *px = x->data + base, *pdy = dy->data + base;
    double *pdx = dx->data + base;
    for (size_t k = 0; k < hw; k++) {
      const double xhat = (px[k] - m) * inv;
      pdx[k] = k_scale * ((pdy[k] - mean_dy) - xhat * mean_dy_xhat);
    }
  }
}

int aal_bn2d_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                           const aal_tensor *gamma, const aal_tensor *mean,
                           const aal_tensor *invstd, const aal_tensor *dx,
                           const aal_tensor *dgamma, const aal_tensor *dbeta, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK)
    return rc;
  const size_t nch = x->shape[1];
  if ((rc = aal_tensor_check(dy, AAL_F64, 0, x, op, "dy", "x", err)) != AAL_OK ||
      (rc = aal_tensor_check(dx, AAL_F64, 0, x, op, "dx", "x", err)) != AAL_OK ||
      (rc = require_channels(gamma, nch, op, "gamma", err)) != AAL_OK ||
      (rc = require_channels(mean, nch, op, "mean", err)) != AAL_OK ||
      (rc = require_channels(invstd, nch, op, "invstd", err)) != AAL_OK ||
      (rc = require_channels(dgamma, nch, op, "dgamma", err)) != AAL_OK ||
      (rc = require_channels(dbeta, nch, op, "dbeta", err)) != AAL_OK)
    return rc;
  return AAL_OK;
}

int aal_bn2d_backward(const aal_tensor *dy, const aal_tensor *x, const aal_tensor *gamma,
                      const aal_tensor *mean, const aal_tensor *invstd, aal_tensor *dx,
                      aal_tensor *dgamma, aal_tensor *dbeta, aal_error *err)
{
  return aal_bn2d_backward_sync(NULL, dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
}

int aal_bn2d_backward_sync(const aal_comm *comm, const aal_tensor *dy, const aal_tensor *x,
                           const aal_tensor *gamma, const aal_tensor *mean,
                           const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                           aal_tensor *dbeta, aal_error *err)
{
  static const char op[] = "bn2d backward";
  int rc = aal_bn2d_backward_args(op, dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
  if (rc != AAL_OK)
    return rc;
  const size_t nch = x->shape[1];
  for (size_t c = 0; c < nch; c++)
    if (!isfinite(mean->data[c]) || !(invstd->data[c] > 0.0 && isfinite(invstd->data[c])))
      return aal_fail(err, AAL_ENUMERIC,
                      "%s: channel %zu has saved mean %g and invstd %g; need finite mean and "
                      "finite invstd > 0",
                      op, c, mean->data[c], invstd->data[c]);
  /* s [2C + 1]: sum dy and sum dy*xhat per channel, then the count; every sum before any
   * dx is written (dx may alias dy) */
  double *s = malloc((2 * nch + 1) * sizeof *s);
  if (s == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: cannot allocate %zu sums", op, 2 * nch + 1);
  for (size_t c = 0; c < nch; c++) {
    channel_grad_sums(dy, x, c, mean->data[c], invstd->data[c], &s[2 * c], &s[2 * c + 1]);
    dbeta->data[c] = s[2 * c]; /* this process's part: the caller sums the gradients */
    dgamma->data[c] = s[2 * c + 1];
  }
  s[2 * nch] = (double)(x->shape[0] * x->shape[2] * x->shape[3]);
  rc = aal_comm_sum(comm, s, 2 * nch + 1, err);
  const double m_count = s[2 * nch];
  for (size_t c = 0; rc == AAL_OK && c < nch; c++)
    channel_dx(dy, x, c, mean->data[c], invstd->data[c], gamma->data[c], s[2 * c] / m_count,
               s[2 * c + 1] / m_count, dx);
  free(s);
  return rc;
}
