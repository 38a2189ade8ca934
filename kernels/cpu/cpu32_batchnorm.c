/* Batch norm in float32, training mode (forward and backward side by side).
 *   x, y, dy, dx [N, C, HW];  gamma, beta, mean, invstd, dgamma, dbeta [C];  M = N*HW.
 * The per-channel reductions (sum x, sum (x - m)^2, sum dy, sum dy xhat) accumulate in
 * double: they are a small part of the work (one pass over x each) and make the
 * statistics exact to float rounding whatever M is.  The elementwise parts run in float
 * in the form (x - m) * scale + beta, which keeps the error relative to |x - m| rather
 * than to |x| (no cancellation between x*scale and a folded shift). */
#include "cpu32_internal.h"
#include "../backend_check.h"

#include <math.h>

static int bn_sizes(const char *op, int n, int c, int hw, aal_error *err)
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
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    const float *p = x + ((size_t)i * c + ch) * hw;
    for (int k = 0; k < hw; k++)
      sum += p[k];
  }
  const double m = sum / m_count;
  double sd = 0.0, sd2 = 0.0;
  for (int i = 0; i < n; i++) {
    const float *p = x + ((size_t)i * c + ch) * hw;
    for (int k = 0; k < hw; k++) {
      const double d = p[k] - m;
      sd += d;
      sd2 += d * d;
    }
  }
  const double v = (sd2 - sd * sd / m_count) / m_count;
  *mean = m + sd / m_count;
  *var = v < 0.0 ? 0.0 : v;
}

int aal_cpu32_bn_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                         const void *gamma, const void *beta, double eps, void *y, void *mean,
                         void *invstd, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 bn_forward";
  int rc;
  if ((rc = bn_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mean, invstd", err, 6, x, gamma, beta,
                              y, mean, invstd)) != AAL_OK)
    return rc;
  if (!(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g; it must be finite and > 0", op, eps);
  const float *px = x, *pg = gamma, *pb = beta;
  float *py = y, *pm = mean, *pi = invstd;
  for (int ch = 0; ch < c; ch++) {
    double m, v;
    channel_stats(px, n, c, hw, ch, &m, &v);
    const double is = 1.0 / sqrt(v + eps);
    pm[ch] = (float)m;
    pi[ch] = (float)is;
    const float mf = (float)m, scale = (float)(pg[ch] * is), shift = pb[ch];
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (int k = 0; k < hw; k++)
        py[base + k] = (px[base + k] - mf) * scale + shift;
    }
  }
  return AAL_OK;
}

/* dx = gamma invstd (dy - sum(dy)/M - xhat sum(dy xhat)/M), xhat = (x - mean) invstd;
 * dgamma = sum dy xhat, dbeta = sum dy (sums over the channel's M values). */
int aal_cpu32_bn_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                          const void *x, const void *gamma, const void *mean,
                          const void *invstd, void *dx, void *dgamma, void *dbeta,
                          aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 bn_backward";
  int rc;
  if ((rc = bn_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, gamma, mean, invstd, dx, dgamma, dbeta", err, 8, dy,
                              x, gamma, mean, invstd, dx, dgamma, dbeta)) != AAL_OK)
    return rc;
  const float *pdy = dy, *px = x, *pg = gamma, *pm = mean, *pi = invstd;
  float *pdx = dx, *pdg = dgamma, *pdb = dbeta;
  const double m_count = (double)n * hw;
  for (int ch = 0; ch < c; ch++) {
    const float m = pm[ch], is = pi[ch];
    double s_dy = 0.0, s_dyxh = 0.0;
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (int k = 0; k < hw; k++) {
        s_dy += pdy[base + k];
        s_dyxh += (double)pdy[base + k] * (((double)px[base + k] - m) * is);
      }
    }
    pdg[ch] = (float)s_dyxh;
    pdb[ch] = (float)s_dy;
    const float a = pg[ch] * is, b = (float)(s_dy / m_count), cc = (float)(s_dyxh / m_count);
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (int k = 0; k < hw; k++)
        pdx[base + k] = a * (pdy[base + k] - b - (px[base + k] - m) * is * cc);
    }
  }
  return AAL_OK;
}

/* channel_stats for kernels/cpu/cpu32_bn_relu.c (the fused op must see the same
 * statistics as bn_forward, bit for bit). */
void aal_cpu32_bn_channel_stats(const float *x, int n, int c, int hw, int ch, double *mean,
                                double *var)
{
  channel_stats(x, n, c, hw, ch, mean, var);
}
