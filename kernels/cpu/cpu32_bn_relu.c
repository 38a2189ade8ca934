/* Batch norm followed by ReLU in float32, fused (training mode).
 *   x, y, dy, dx [N, C, HW];  gamma, beta, mean, invstd, dgamma, dbeta [C];
 *   mask: ceil(N C HW / 32) uint32 words, element i in bit i%32 of word i/32.
 * Forward: the statistics of every channel as bn_forward computes them
 * (aal_cpu32_bn_channel_stats, cpu32_batchnorm.c), then one pass over x in memory order
 * that normalises, applies the ReLU and assembles each mask word in a register (z is
 * never stored; the unused high bits of the last word are zero).
 * Backward: the mask is folded into the two per-channel reductions and the dx loop
 * (dz = bit ? dy : 0 is a register value, never stored).
 * Both are bit-identical to the unfused ops of this backend (bn_forward then
 * relu_forward; relu_backward then bn_backward): the same operations on the same values
 * in the same order, so a change to one must be made to the other (kcheck and
 * tests/test_kcheck.c compare them bit for bit). */
#include "cpu32_internal.h"
#include "../backend_check.h"

#include <math.h>
#include <stdlib.h>

static int bn_relu_sizes(const char *op, int n, int c, int hw, aal_error *err)
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

int aal_cpu32_bn_relu_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                              const void *gamma, const void *beta, double eps, void *y,
                              void *mask, void *mean, void *invstd, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 bn_relu_forward";
  int rc;
  if ((rc = bn_relu_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mask, mean, invstd", err, 7, x, gamma,
                              beta, y, mask, mean, invstd)) != AAL_OK)
    return rc;
  if (!(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g; it must be finite and > 0", op, eps);
  const float *px = x, *pg = gamma, *pb = beta;
  float *py = y, *pm = mean, *pi = invstd;
  uint32_t *words = mask;
  /* per channel: the shift and scale of the apply, as bn_forward rounds them */
  float *aff = malloc(2 * (size_t)c * sizeof *aff);
  if (aff == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: %d channel coefficients", op, c);
  float *mf = aff, *scale = aff + c;
  for (int ch = 0; ch < c; ch++) {
    double m, v;
    aal_cpu32_bn_channel_stats(px, n, c, hw, ch, &m, &v);
    const double is = 1.0 / sqrt(v + eps);
    pm[ch] = (float)m;
    pi[ch] = (float)is;
    mf[ch] = (float)m;
    scale[ch] = (float)(pg[ch] * is);
  }
  /* memory order: element at = (i c + ch) hw + k; a word is filled over consecutive
   * elements (possibly across channel rows) and stored when full */
  uint32_t word = 0;
  size_t at = 0;
  for (int i = 0; i < n; i++)
    for (int ch = 0; ch < c; ch++) {
      const float m = mf[ch], s = scale[ch], shift = pb[ch];
      for (int k = 0; k < hw; k++, at++) {
        const float z = (px[at] - m) * s + shift;
        py[at] = z > 0.0f ? z : 0.0f;
        word |= (uint32_t)(z > 0.0f) << (at % 32);
        if (at % 32 == 31) {
          words[at / 32] = word;
          word = 0;
        }
      }
    }
  if (at % 32 != 0)
    words[at / 32] = word;
  free(aff);
  return AAL_OK;
}

/* dz = bit ? dy : 0;  dbeta = sum dz, dgamma = sum dz xhat (double);
 * dx = gamma invstd (dz - dbeta/M - xhat dgamma/M), as bn_backward. */
int aal_cpu32_bn_relu_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                               const void *mask, const void *x, const void *gamma,
                               const void *mean, const void *invstd, void *dx, void *dgamma,
                               void *dbeta, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 bn_relu_backward";
  int rc;
  if ((rc = bn_relu_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta", err,
                              9, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta)) !=
          AAL_OK)
    return rc;
  const float *pdy = dy, *px = x, *pg = gamma, *pm = mean, *pi = invstd;
  const uint32_t *words = mask;
  float *pdx = dx, *pdg = dgamma, *pdb = dbeta;
  const double m_count = (double)n * hw;
#define DZ(at) (((words[(at) / 32] >> ((at) % 32)) & 1u) ? pdy[at] : 0.0f)
  for (int ch = 0; ch < c; ch++) {
    const float m = pm[ch], is = pi[ch];
    double s_dy = 0.0, s_dyxh = 0.0;
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (int k = 0; k < hw; k++) {
        const float dz = DZ(base + k);
        s_dy += dz;
        s_dyxh += (double)dz * (((double)px[base + k] - m) * is);
      }
    }
    pdg[ch] = (float)s_dyxh;
    pdb[ch] = (float)s_dy;
    const float a = pg[ch] * is, b = (float)(s_dy / m_count), cc = (float)(s_dyxh / m_count);
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (int k = 0; k < hw; k++) {
        const float dz = DZ(base + k);
        pdx[base + k] = a * (dz - b - (px[base + k] - m) * is * cc);
      }
    }
  }
#undef DZ
  return AAL_OK;
}
