/* Batch norm followed by ReLU in float32, fused (training mode).
 *   x, y, dy, dx [N, C, HW];  gamma, beta, mean, invstd, dgamma, dbeta [C];
 *   mask: ceil(N C HW / 32) uint32 words, element i in bit i%32 of word i/32.
 * Forward: the statistics of every channel as bn_forward computes them
 * (aal_cpu32_bn_channel_stats, kernels/cpu/batchnorm.c), then one pass over x in memory order
 * that normalises, applies the ReLU and assembles each mask word in a register (z is
 * never stored; the unused high bits of the last word are zero).
 * Backward: the mask is folded into the two per-channel reductions and the dx loop
 * (dz = bit ? dy : 0 is a register value, never stored).
 * Both are bit-identical to the unfused ops of this backend (bn_forward then
 * relu_forward; relu_backward then bn_backward): the same operations on the same values
 * in the same order, so a change to one must be made to the other (kcheck and
 * tests/check/test_kcheck.c compare them bit for bit).
 * Threads (the backend's team, aal_team_par_for): the statistics and the backward are
 * split over channels (each channel's sums by one thread, in the single-threaded
 * order); the forward's apply pass over whole mask words, so that no two threads write
 * one word.  Results do not depend on the thread count. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int n, c, hw;
  const float *x, *gamma, *beta;
  double eps;
  float *y, *mean, *invstd, *var;
  uint32_t *words;
  float *mf, *scale;  /* [c]: the shift and scale of the apply, as bn_forward rounds them */
} fwd_ctx;

/* channels [lo, hi): statistics and the apply coefficients */
static void forward_stats(const void *arg, size_t lo, size_t hi)
{
  const fwd_ctx *a = arg;
  for (int ch = (int)lo; ch < (int)hi; ch++) {
    double m, v;
    aal_cpu32_bn_channel_stats(a->x, a->n, a->c, a->hw, ch, &m, &v);
    const double is = 1.0 / sqrt(v + a->eps);
    a->mean[ch] = (float)m;
    a->invstd[ch] = (float)is;
    a->var[ch] = (float)v;
    a->mf[ch] = (float)m;
    a->scale[ch] = (float)(a->gamma[ch] * is);
  }
}

/* Word j when its 32 elements lie in one channel row (the common case: HW a multiple
 * of 32): z = (x - m) s + shift, y = relu(z) and the mask word, vectorized; the same
 * operations on each element as the general loop below. */
static void forward_word32(const fwd_ctx *a, size_t j, int ch)
{
  const size_t at = 32 * j;
  float v[32], z[32];
  memcpy(v, a->x + at, sizeof v);
  const float m = a->mf[ch], s = a->scale[ch], shift = a->beta[ch];
  for (int t = 0; t < 32; t++)
    z[t] = (v[t] - m) * s + shift;
  a->words[j] = aal_cpu32_relu32(z, a->y + at);
}

/* mask words [lo, hi) and their elements [32 lo, min(32 hi, N C HW)), in memory order:
 * element at = (i c + ch) hw + k; a word is filled over consecutive elements (possibly
 * across channel rows) and stored when full or at the end of the tensor */
static void forward_apply(const void *arg, size_t lo, size_t hi)
{
  const fwd_ctx *a = arg;
  const size_t total = (size_t)a->n * a->c * a->hw, hw = (size_t)a->hw;
  /* whole words inside one row each: the vectorized path */
  while (lo < hi && 32 * lo + 32 <= total && (32 * lo) / hw == (32 * lo + 31) / hw) {
    forward_word32(a, lo, (int)((32 * lo / hw) % (size_t)a->c));
    lo++;
  }
  const size_t end = 32 * hi < total ? 32 * hi : total;
  size_t at = 32 * lo;
  if (at >= end)
    return;
  size_t row = at / hw, k = at % hw;  /* row = i c + ch */
  int ch = (int)(row % (size_t)a->c);
  uint32_t word = 0;
  while (at < end) {
    const float m = a->mf[ch], s = a->scale[ch], shift = a->beta[ch];
    const size_t stop = at + (hw - k) < end ? at + (hw - k) : end;
    for (; at < stop; at++) {
      const float z = (a->x[at] - m) * s + shift;
      a->y[at] = z > 0.0f ? z : 0.0f;
      word |= (uint32_t)(z > 0.0f) << (at % 32);
      if (at % 32 == 31) {
        a->words[at / 32] = word;
        word = 0;
      }
    }
    k = 0;
    if (++ch == a->c)
      ch = 0;
  }
  if (at % 32 != 0)
    a->words[at / 32] = word;
}

int aal_cpu32_bn_relu_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                              const void *gamma, const void *beta, double eps, void *y,
                              void *mask, void *mean, void *invstd, void *var,
                              aal_error *err)
{
  static const char op[] = "cpu32 bn_relu_forward";
  int rc;
  if ((rc = aal_cpu32_bn_check_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mask, mean, invstd, var", err, 8, x,
                              gamma, beta, y, mask, mean, invstd, var)) != AAL_OK)
    return rc;
  if (!(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: eps is %g; it must be finite and > 0", op, eps);
  float *aff = malloc(2 * (size_t)c * sizeof *aff);
  if (aff == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: %d channel coefficients", op, c);
  const fwd_ctx a = {n, c, hw, x, gamma, beta, eps, y, mean, invstd, var, mask, aff, aff + c};
  aal_team *tm = aal_cpu32_be_team(be);
  const size_t total = (size_t)n * c * hw, bytes = total * sizeof(float);
  /* the statistics read x twice and write [c]: x's size is the work */
  aal_team_par_for(tm, forward_stats, &a, (size_t)c, bytes);
  aal_team_par_for(tm, forward_apply, &a, (total + 31) / 32, bytes);
  free(aff);
  return AAL_OK;
}

typedef struct {
  int n, c, hw;
  const float *dy;
  const uint32_t *words;
  const float *x, *gamma, *mean, *invstd;
  float *dx, *dgamma, *dbeta;
} bwd_ctx;

/* Elements of a row handled at a time by the backward: dz = bit ? dy : 0 is formed
 * for a piece of a row in a local buffer (a multiple of 32 and of AAL_CPU32_LANES, so
 * that every piece starts on the lane of its position in the row). */
#define PIECE 1024

/* dz[0..len) for the elements at .. at + len - 1 (a word at a time where aligned) */
static void gate_piece(const float *dy, const uint32_t *words, size_t at, size_t len,
                       float *dz)
{
  size_t k = 0;
  if (at % 32 == 0)
    for (; k + 32 <= len; k += 32)
      aal_cpu32_gate32(dy + at + k, words[(at + k) / 32], dz + k);
  for (; k < len; k++) {
    const size_t e = at + k;
    dz[k] = ((words[e / 32] >> (e % 32)) & 1u) ? dy[e] : 0.0f;
  }
}

/* channels [lo, hi) of bn_relu_backward (the mask is only read, so any split works):
 * the sums and dx of bn_backward with dz in place of dy, in the same pieces and lanes */
static void backward_channels(const void *arg, size_t lo, size_t hi)
{
  const bwd_ctx *a = arg;
  const int n = a->n, c = a->c;
  const size_t hw = (size_t)a->hw;
  const float *pdy = a->dy, *px = a->x;
  float *pdx = a->dx;
  const double m_count = (double)n * (double)hw;
  float dz[PIECE];
  for (int ch = (int)lo; ch < (int)hi; ch++) {
    const float m = a->mean[ch], is = a->invstd[ch];
    double sdy[AAL_CPU32_LANES] = {0}, sxh[AAL_CPU32_LANES] = {0};
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (size_t k = 0; k < hw; k += PIECE) {
        const size_t len = hw - k < PIECE ? hw - k : PIECE;
        gate_piece(pdy, a->words, base + k, len, dz);
        aal_cpu32_bwd_lanes(dz, px + base + k, len, m, is, sdy, sxh);
      }
    }
    const double s_dy = aal_cpu32_lanes_total(sdy), s_dyxh = aal_cpu32_lanes_total(sxh);
    a->dgamma[ch] = (float)s_dyxh;
    a->dbeta[ch] = (float)s_dy;
    const float g = a->gamma[ch] * is, b = (float)(s_dy / m_count),
                cc = (float)(s_dyxh / m_count);
    for (int i = 0; i < n; i++) {
      const size_t base = ((size_t)i * c + ch) * hw;
      for (size_t k = 0; k < hw; k += PIECE) {
        const size_t len = hw - k < PIECE ? hw - k : PIECE;
        gate_piece(pdy, a->words, base + k, len, dz);
        aal_cpu32_bn_dx(dz, px + base + k, len, g, b, m, is, cc, pdx + base + k);
      }
    }
  }
}

/* dz = bit ? dy : 0;  dbeta = sum dz, dgamma = sum dz xhat (double);
 * dx = gamma invstd (dz - dbeta/M - xhat dgamma/M), as bn_backward. */
int aal_cpu32_bn_relu_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                               const void *mask, const void *x, const void *gamma,
                               const void *mean, const void *invstd, void *dx, void *dgamma,
                               void *dbeta, aal_error *err)
{
  static const char op[] = "cpu32 bn_relu_backward";
  int rc;
  if ((rc = aal_cpu32_bn_check_sizes(op, n, c, hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta", err,
                              9, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta)) !=
          AAL_OK)
    return rc;
  const bwd_ctx a = {n, c, hw, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta};
  aal_team_par_for(aal_cpu32_be_team(be), backward_channels, &a, (size_t)c,
                    (size_t)n * c * hw * sizeof(float));
  return AAL_OK;
}
