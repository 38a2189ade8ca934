/* Batch norm in float32, training mode (forward and backward side by side).
 *   x, y, dy, dx [N, C, HW];  gamma, beta, mean, invstd, dgamma, dbeta [C];  M = N*HW.
 * The per-channel reductions (sum x, sum (x - m)^2, sum dy, sum dy xhat) accumulate in
 * double: they are a small part of the work (one pass over x each) and make the
 * statistics exact to float rounding whatever M is.  Each runs in AAL_CPU32_LANES
 * independent accumulators added in a fixed order (kernels/cpu/cpu32.h), and the
 * elementwise passes in blocks of 32 that the compiler vectorizes.  The elementwise parts run in float
 * in the form (x - m) * scale + beta, which keeps the error relative to |x - m| rather
 * than to |x| (no cancellation between x*scale and a folded shift).
 * Channels are independent: the backend's team (aal_team_par_for) splits them into
 * blocks, each channel's sums computed by one thread in the single-threaded order, so
 * results do not depend on the thread count. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

int aal_cpu32_bn_check_sizes(const char *op, int n, int c, int hw, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK)
    return rc;
  if ((long)n * hw < 2)
    return aal_fail(err, AAL_EINVAL, "%s: N*HW = 1 value per channel; training needs more",
                    op);
  return AAL_OK;
}

/* Two-pass mean and biased variance of channel c (the corrected form of the reference:
 * the rounding error of the first pass, sum d, refines the mean). */
static void channel_stats(const float *x, int n, int c, int hw, int ch, double *mean,
                          double *var)
{
  const double m_count = (double)n * hw;
  double acc[AAL_CPU32_LANES] = {0}, acc2[AAL_CPU32_LANES] = {0};
  for (int i = 0; i < n; i++)
    aal_cpu32_sum_lanes(x + ((size_t)i * c + ch) * hw, (size_t)hw, acc);
  const double m = aal_cpu32_lanes_total(acc) / m_count;
  for (int l = 0; l < AAL_CPU32_LANES; l++)
    acc[l] = 0.0;
  for (int i = 0; i < n; i++)
    aal_cpu32_dev_lanes(x + ((size_t)i * c + ch) * hw, (size_t)hw, m, acc, acc2);
  const double sd = aal_cpu32_lanes_total(acc), sd2 = aal_cpu32_lanes_total(acc2);
  const double v = (sd2 - sd * sd / m_count) / m_count;
  *mean = m + sd / m_count;
  *var = v < 0.0 ? 0.0 : v;
}

typedef struct {
  int n, c, hw;
  const float *x, *gamma, *beta;
  double eps;
  float *y, *mean, *invstd, *var;
} bn_fwd_ctx;

/* channels [lo, hi) of bn_forward */
static void bn_forward_channels(const void *arg, size_t lo, size_t hi)
{
  const bn_fwd_ctx *a = arg;
  const int n = a->n, c = a->c, hw = a->hw;
  const float *px = a->x;
  float *py = a->y;
  for (int ch = (int)lo; ch < (int)hi; ch++) {
    double m, v;
    channel_stats(px, n, c, hw, ch, &m, &v);
    const double is = 1.0 / sqrt(v + a->eps);
    a->mean[ch] = (float)m;
    a->invstd[ch] = (float)is;
    a->var[ch] = (float)v;
    const float mf = (float)m, scale = (float)(a->gamma[ch] * is), shift = a->beta[ch];
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      aal_cpu32_bn_apply(px + base, (size_t)hw, mf, scale, shift, py + base);
    }
  }
}

int aal_cpu32_bn_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                         const void *gamma, const void *beta, double eps, void *y, void *mean,
                         void *invstd, void *var, aal_error *err)
{
  static const char op[] = "cpu32 bn_forward";
  int rc;
  if ((rc = aal_cpu32_bn_check_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mean, invstd, var", err, 7, x, gamma,
                              beta, y, mean, invstd, var)) != AAL_OK)
    return rc;
  if (!(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g; it must be finite and > 0", op, eps);
  const bn_fwd_ctx a = {n, c, hw, x, gamma, beta, eps, y, mean, invstd, var};
  aal_team_par_for(aal_cpu32_be_team(be), bn_forward_channels, &a, (size_t)c,
                    (size_t)n * c * hw * sizeof(float));
  return AAL_OK;
}

typedef struct {
  int n, c, hw;
  const float *x, *gamma, *beta, *rmean, *rvar;
  double eps;
  float *y;
} bn_eval_ctx;

/* channels [lo, hi) of bn_forward_eval: the reference's expression (x - m) (gamma inv) +
 * beta in double, rounded once to float */
static void bn_eval_channels(const void *arg, size_t lo, size_t hi)
{
  const bn_eval_ctx *a = arg;
  for (int ch = (int)lo; ch < (int)hi; ch++) {
    const double m = a->rmean[ch], scale = a->gamma[ch] / sqrt((double)a->rvar[ch] + a->eps);
    const double shift = a->beta[ch];
    for (int i = 0; i < a->n; i++) {
      const size_t base = ((size_t)i * a->c + ch) * a->hw;
      for (int k = 0; k < a->hw; k++)
        a->y[base + k] = (float)(((double)a->x[base + k] - m) * scale + shift);
    }
  }
}

int aal_cpu32_bn_forward_eval(const aal_backend *be, int n, int c, int hw, const void *x,
                              const void *gamma, const void *beta, const void *running_mean,
                              const void *running_var, double eps, void *y, aal_error *err)
{
  static const char op[] = "cpu32 bn_forward_eval";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, running_mean, running_var, y", err, 6, x,
                              gamma, beta, running_mean, running_var, y)) != AAL_OK)
    return rc;
  if (!(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g; it must be finite and > 0", op, eps);
  const bn_eval_ctx a = {n, c, hw, x, gamma, beta, running_mean, running_var, eps, y};
  aal_team_par_for(aal_cpu32_be_team(be), bn_eval_channels, &a, (size_t)c,
                   (size_t)n * c * hw * sizeof(float));
  return AAL_OK;
}

typedef struct {
  int n, c, hw;
  const float *dy, *x, *gamma, *mean, *invstd;
  float *dx, *dgamma, *dbeta;
} bn_bwd_ctx;

/* channels [lo, hi) of bn_backward */
static void bn_backward_channels(const void *arg, size_t lo, size_t hi)
{
  const bn_bwd_ctx *a = arg;
  const int n = a->n, c = a->c, hw = a->hw;
  const float *pdy = a->dy, *px = a->x;
  float *pdx = a->dx;
  const double m_count = (double)n * hw;
  for (int ch = (int)lo; ch < (int)hi; ch++) {
    const float m = a->mean[ch], is = a->invstd[ch];
    double sdy[AAL_CPU32_LANES] = {0}, sxh[AAL_CPU32_LANES] = {0};
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      aal_cpu32_bwd_lanes(pdy + base, px + base, (size_t)hw, m, is, sdy, sxh);
    }
    const double s_dy = aal_cpu32_lanes_total(sdy), s_dyxh = aal_cpu32_lanes_total(sxh);
    a->dgamma[ch] = (float)s_dyxh;
    a->dbeta[ch] = (float)s_dy;
    const float g = a->gamma[ch] * is, b = (float)(s_dy / m_count),
                cc = (float)(s_dyxh / m_count);
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      aal_cpu32_bn_dx(pdy + base, px + base, (size_t)hw, g, b, m, is, cc, pdx + base);
    }
  }
}

/* dx = gamma invstd (dy - sum(dy)/M - xhat sum(dy xhat)/M), xhat = (x - mean) invstd;
 * dgamma = sum dy xhat, dbeta = sum dy (sums over the channel's M values). */
int aal_cpu32_bn_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                          const void *x, const void *gamma, const void *mean,
                          const void *invstd, void *dx, void *dgamma, void *dbeta,
                          aal_error *err)
{
  static const char op[] = "cpu32 bn_backward";
  int rc;
  if ((rc = aal_cpu32_bn_check_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, gamma, mean, invstd, dx, dgamma, dbeta", err, 8, dy,
                              x, gamma, mean, invstd, dx, dgamma, dbeta)) != AAL_OK)
    return rc;
  const bn_bwd_ctx a = {n, c, hw, dy, x, gamma, mean, invstd, dx, dgamma, dbeta};
  aal_team_par_for(aal_cpu32_be_team(be), bn_backward_channels, &a, (size_t)c,
                    (size_t)n * c * hw * sizeof(float));
  return AAL_OK;
}

/* channel_stats for kernels/cpu/bn_relu.c (the fused op must see the same
 * statistics as bn_forward, bit for bit). */
void aal_cpu32_bn_channel_stats(const float *x, int n, int c, int hw, int ch, double *mean,
                                double *var)
{
  channel_stats(x, n, c, hw, ch, mean, var);
}
