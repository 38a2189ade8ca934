/* Layer normalisation over the last dimension in float32 (sim/layers/layernorm.c).
 *   x, y, dy, dx [m, d];  gamma, beta, dgamma, dbeta [d];  mean, invstd [m].
 * Forward per row: mean and the biased variance in double, two passes (as batch norm's
 *   statistics, kernels/cpu/batchnorm.c: a one-pass E[x^2] - mean^2 in float loses a
 *   row far from 0), each rounded once to float; y = gamma ((x - mean) invstd) + beta in
 *   float.
 * Backward per row: xh = (x - mean) invstd in float; the row sums of g = dy gamma and
 *   g xh in double, rounded once; dx = invstd (g - sum g / d - xh sum(g xh) / d) in float.
 *   dgamma, dbeta: column sums over the m rows in double, rounded once.
 * Threads take whole rows (forward, dx) or whole columns (dgamma, dbeta), so results do
 * not depend on the thread count. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

typedef struct {
  size_t m, d;
  const float *x, *gamma, *beta, *dy, *mean, *invstd;
  float *y, *outm, *outi, *dx, *dgamma, *dbeta;
  double eps;
} ln_ctx;

static int ln_sizes(const char *op, int m, int d, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "m", m, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "d", d, err)) != AAL_OK)
    return rc;
  return aal_be_check_count(op, (size_t)m * (size_t)d, sizeof(float), err);
}

static void ln_forward_rows(const void *arg, size_t lo, size_t hi)
{
  const ln_ctx *a = arg;
  for (size_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * a->d;
    float *yr = a->y + r * a->d;
    double s = 0.0, ss = 0.0;
    for (size_t j = 0; j < a->d; j++)
      s += xr[j];
    const double mu = s / (double)a->d;
    for (size_t j = 0; j < a->d; j++)
      ss += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    const float mf = (float)mu, is = (float)(1.0 / sqrt(ss / (double)a->d + a->eps));
    for (size_t j = 0; j < a->d; j++)
      yr[j] = a->gamma[j] * ((xr[j] - mf) * is) + a->beta[j];
    a->outm[r] = mf;
    a->outi[r] = is;
  }
}

int aal_cpu32_layernorm_forward(const aal_backend *be, int m, int d, const void *x,
                                const void *gamma, const void *beta, double eps, void *y,
                                void *mean, void *invstd, aal_error *err)
{
  static const char op[] = "cpu32 layernorm_forward";
  int rc;
  if ((rc = ln_sizes(op, m, d, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mean, invstd", err, 6, x, gamma, beta, y,
                              mean, invstd)) != AAL_OK)
    return rc;
  if (!(eps > 0.0) || !isfinite(eps))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g, must be finite and > 0", op, eps);
  const ln_ctx a = {.m = (size_t)m, .d = (size_t)d, .x = x, .gamma = gamma, .beta = beta,
                    .y = y, .outm = mean, .outi = invstd, .eps = eps};
  aal_team_par_for(aal_cpu32_be_team(be), ln_forward_rows, &a, (size_t)m,
                   (size_t)m * (size_t)d * sizeof(float));
  return AAL_OK;
}

static void ln_backward_rows(const void *arg, size_t lo, size_t hi)
{
  const ln_ctx *a = arg;
  for (size_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * a->d, *dyr = a->dy + r * a->d;
    float *dxr = a->dx + r * a->d;
    const float mf = a->mean[r], is = a->invstd[r];
    double sg = 0.0, sgx = 0.0;
    for (size_t j = 0; j < a->d; j++) {
      const float xh = (xr[j] - mf) * is, g = dyr[j] * a->gamma[j];
      sg += g;
      sgx += (double)g * xh;
    }
    const float mg = (float)(sg / (double)a->d), mgx = (float)(sgx / (double)a->d);
    for (size_t j = 0; j < a->d; j++) {
      const float xh = (xr[j] - mf) * is;
      dxr[j] = is * (dyr[j] * a->gamma[j] - mg - xh * mgx);
    }
  }
}

static void ln_backward_cols(const void *arg, size_t lo, size_t hi)
{
  const ln_ctx *a = arg;
  for (size_t j = lo; j < hi; j++) {
    double sg = 0.0, sb = 0.0;
    for (size_t r = 0; r < a->m; r++) {
      const float dyv = a->dy[r * a->d + j];
      const float xh = (a->x[r * a->d + j] - a->mean[r]) * a->invstd[r];
      sg += (double)dyv * xh;
      sb += dyv;
    }
    a->dgamma[j] = (float)sg;
    a->dbeta[j] = (float)sb;
  }
}

int aal_cpu32_layernorm_backward(const aal_backend *be, int m, int d, const void *dy,
                                 const void *x, const void *gamma, const void *mean,
                                 const void *invstd, void *dx, void *dgamma, void *dbeta,
                                 aal_error *err)
{
  static const char op[] = "cpu32 layernorm_backward";
  int rc;
  if ((rc = ln_sizes(op, m, d, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, gamma, mean, invstd, dx, dgamma, dbeta", err, 8, dy,
                              x, gamma, mean, invstd, dx, dgamma, dbeta)) != AAL_OK)
    return rc;
  if (dx == x || dgamma == dy || dbeta == dy)
    return aal_fail(err, AAL_EINVAL, "%s: outputs must not share storage with x or dy", op);
  const ln_ctx a = {.m = (size_t)m, .d = (size_t)d, .x = x, .gamma = gamma, .dy = dy,
                    .mean = mean, .invstd = invstd, .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
  aal_team *tm = aal_cpu32_be_team(be);
  const size_t bytes = (size_t)m * (size_t)d * sizeof(float);
  aal_team_par_for(tm, ln_backward_cols, &a, (size_t)d, bytes);
  aal_team_par_for(tm, ln_backward_rows, &a, (size_t)m, bytes);
  return AAL_OK;
}
