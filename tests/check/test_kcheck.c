/* The kernel cross-check harness (kernels/check/kcheck.h) and the float32 CPU backend:
 *
 *  a. cpu32 passes on the ResNet-18 shapes (small batch) and on random shapes; the
 *     reference backend passes against itself;
 *  b. the harness can fail: copies of the cpu32 table with one deliberately wrong op
 *     each (an off-by-one conv index, a dropped channel or input term, a transposed
 *     filter, a dropped image, a flipped sign bit, an unwritten last element, a wrong
 *     eps, a made-up LI for h = 0, a missing weight decay; fused: ASA input without eps
 *     or with eps one ulp low, a ReLU mask of x instead of bn(x), the mask left out of
 *     the bn reductions; max pooling that ignores NaN, pools over zero padding, gives
 *     ties to the last maximum or overwrites overlapping windows; the Transformer ops:
 *     a one-pass or unbiased layer-norm variance, a dropped backward term, GELU's tanh
 *     form, softmax unshifted, attention unscaled or with interleaved heads or dK
 *     untransposed, an embedding without pos or overwriting or not zeroing its scatter,
 *     patches in the wrong order, a transpose that copies or leaves an element) must
 *     each fail a check, and the loops they share pass without their slip;
 *  c. bad options and shapes are reported with a message;
 *  d. cpu32's fused ops (asa_input, bn_relu_forward, bn_relu_backward) equal the unfused
 *     compositions on cpu32 bit for bit (poisoned outputs, random inputs and shapes from
 *     the printed seed).
 *
 * The seed is $AAL_TEST_SEED (default 20261128), printed. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/aal_check.h"
#include "kernels/check/kcheck.h"
#include "tests/check/kcheck_run.h"
#include "kernels/check/step_check.h"
#include "kernels/cpu/cpu32.h"

static unsigned long g_seed;

static aal_backend cpu32(void)
{
  aal_backend be;
  aal_error err;
  ck_assert_msg(aal_backend_cpu32(&be, &err) == AAL_OK, "%s", err.msg);
  return be;
}

/* Runs kcheck (output to stderr when AAL_TEST_VERBOSE is set) and returns the summary. */
static aal_kcheck_summary run(const aal_backend *be, const char *op, const char *shapes,
                              int batch)
{
  const aal_kcheck_summary sum = aal_test_kcheck(be, op, shapes, batch, g_seed);
  fprintf(stderr, "kcheck %-5s %-20s %-9s: %3d checks, %2d failed, worst %.3g (%s)\n",
          be->name, op ? op : "all", shapes, sum.checks, sum.failed, sum.worst_ratio,
          sum.worst);
  return sum;
}

/* ------------------------------------------------------------------ a. correct kernels */

START_TEST(test_cpu32_resnet18)
{
  aal_backend be = cpu32();
  aal_kcheck_summary s = run(&be, NULL, "resnet18", 2);
  /* 98 ResNet-18 rows; the Transformer ops' 27: layer norm and softmax forward and
   * backward at 3 row shapes, GELU's two at the 4 activation sizes, attention's and the
   * embedding's two, patchify's two, transpose */
  ck_assert_int_eq(s.checks, 98 + 27);
  ck_assert_msg(s.failed == 0, "%d failed; worst %s (%g)", s.failed, s.worst, s.worst_ratio);
  ck_assert(s.worst_ratio <= 1.0);
  be.destroy(&be);
}
END_TEST

START_TEST(test_cpu32_random)
{
  aal_backend be = cpu32();
  aal_kcheck_summary s = run(&be, NULL, "random:12", 0);
  ck_assert_int_eq(s.checks, 38 * 12);
  ck_assert_msg(s.failed == 0, "%d failed; worst %s (%g)", s.failed, s.worst, s.worst_ratio);
  be.destroy(&be);
}
END_TEST

/* Channels, inner dimensions and lengths at and across 63/64/65/128 and 4096. */
START_TEST(test_cpu32_boundary)
{
  aal_backend be = cpu32();
  aal_kcheck_summary s = run(&be, NULL, "boundary", 0);
  ck_assert_int_eq(s.checks, 38 * 8);
  ck_assert_msg(s.failed == 0, "%d failed; worst %s (%g)", s.failed, s.worst, s.worst_ratio);
  be.destroy(&be);
}
END_TEST

START_TEST(test_ref_against_itself)
{
  aal_backend be;
  aal_error err;
  ck_assert(aal_backend_open("ref", &be, &err) == AAL_OK);
  aal_kcheck_summary s = run(&be, NULL, "random:4", 0);
  ck_assert_int_eq(s.failed, 0);
  ck_assert(s.worst_ratio <= 1.0);
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ b. wrong kernels
 * cpu32 buffers are host float arrays (kernels/cpu/cpu32.h), so a wrong kernel
 * can be a small variation of the right one on the same buffers. */

/* Direct float conv forward with two possible bugs: the input column read one to the
 * right (off by one), or input channel `skip` left out of the sum (-1: none). */
static int naive_conv(const aal_conv_shape *cs, const float *x, const float *w, float *y,
                      int shift, int skip)
{
  for (int n = 0; n < cs->n; n++)
    for (int k = 0; k < cs->k; k++)
      for (int p = 0; p < cs->p; p++)
        for (int q = 0; q < cs->q; q++) {
          float acc = 0.0f;
          for (int c = 0; c < cs->c; c++)
            for (int r = 0; r < cs->r; r++)
              for (int s = 0; c != skip && s < cs->s; s++) {
                const int ih = p * cs->stride - cs->pad + r;
                const int iw = q * cs->stride - cs->pad + s + shift;
                if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w)
                  continue;
                acc += w[((k * cs->c + c) * cs->r + r) * cs->s + s] *
                       x[((n * cs->c + c) * cs->h + ih) * cs->w + iw];
              }
          y[((n * cs->k + k) * cs->p + p) * cs->q + q] = acc;
        }
  return AAL_OK;
}

static int conv_off_by_one(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                           const void *w, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  return naive_conv(cs, x, w, y, 1, -1);
}

static int conv_skip_channel(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                             const void *w, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  return naive_conv(cs, x, w, y, 0, cs->c - 1);
}

/* ---- subtle ones: each the kind of slip an optimised kernel makes (issue 19) */

/* Block boundary: a kernel that sums channels in blocks of 64 and drops the first channel
 * of the second block (only shapes with C > 64 show it). */
static int conv_block_drop(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                           const void *w, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  return naive_conv(cs, x, w, y, 0, 64);
}

/* fl(t) rounded toward zero (t in double, as the sum of a float and an exact product). */
static float round_toward_zero(double t)
{
  float f = (float)t;
  if (fabs((double)f) > fabs(t))
    f = nextafterf(f, 0.0f);
  return f;
}

/* Rounding-mode bias: the direct conv with every partial sum rounded toward zero (every
 * element within its bound; the errors all shrink |y|). */
static int conv_toward_zero(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                            const void *w, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  const float *px = x, *pw = w;
  float *py = y;
  for (int n = 0; n < cs->n; n++)
    for (int k = 0; k < cs->k; k++)
      for (int p = 0; p < cs->p; p++)
        for (int q = 0; q < cs->q; q++) {
          float acc = 0.0f;
          for (int c = 0; c < cs->c; c++)
            for (int r = 0; r < cs->r; r++)
              for (int s = 0; s < cs->s; s++) {
                const int ih = p * cs->stride - cs->pad + r, iw = q * cs->stride - cs->pad + s;
                if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w)
                  continue;
                acc = round_toward_zero(
                    (double)acc + (double)pw[((k * cs->c + c) * cs->r + r) * cs->s + s] *
                                      px[((n * cs->c + c) * cs->h + ih) * cs->w + iw]);
              }
          py[((n * cs->k + k) * cs->p + p) * cs->q + q] = acc;
        }
  return AAL_OK;
}

/* TF32 operands (10 mantissa bits, round to nearest even), as tensor cores read them. */
static float to_tf32(float v)
{
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  b += 0xFFFu + ((b >> 13) & 1u);
  b &= ~0x1FFFu;
  memcpy(&v, &b, sizeof v);
  return v;
}

static float *tf32_copy(const void *src, size_t n)
{
  float *t = malloc(n * sizeof *t);
  for (size_t i = 0; t != NULL && i < n; i++)
    t[i] = to_tf32(((const float *)src)[i]);
  return t;
}

static int conv_tf32(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                     const void *w, void *y, aal_error *err)
{
  float *tx = tf32_copy(x, (size_t)cs->n * cs->c * cs->h * cs->w);
  float *tw = tf32_copy(w, (size_t)cs->k * cs->c * cs->r * cs->s);
  int rc = tx != NULL && tw != NULL ? aal_cpu32_conv_forward(be, cs, tx, tw, y, err)
                                    : AAL_ENOMEM;
  free(tx);
  free(tw);
  return rc;
}

/* backward-data with each R x S kernel transposed (w[k, c, s, r] for w[k, c, r, s]). */
static int conv_bwd_transposed(const aal_backend *be, const aal_conv_shape *cs,
                               const void *dy, const void *w, void *dx, aal_error *err)
{
  if (cs->r != cs->s) /* the layout does not allow it: stay right */
    return aal_cpu32_conv_backward_data(be, cs, dy, w, dx, err);
  const size_t nw = (size_t)cs->k * cs->c * cs->r * cs->s;
  float *t = malloc(nw * sizeof *t);
  if (t == NULL)
    return AAL_ENOMEM;
  const float *pw = w;
  for (size_t kc = 0; kc < (size_t)cs->k * cs->c; kc++)
    for (int r = 0; r < cs->r; r++)
      for (int s = 0; s < cs->s; s++)
        t[(kc * cs->r + s) * cs->s + r] = pw[(kc * cs->r + r) * cs->s + s];
  const int rc = aal_cpu32_conv_backward_data(be, cs, dy, t, dx, err);
  free(t);
  return rc;
}

/* backward-filter summed over all images but the last. */
static int conv_filter_drop_image(const aal_backend *be, const aal_conv_shape *cs,
                                  const void *x, const void *dy, void *dw, aal_error *err)
{
  aal_conv_shape c = *cs;
  if (c.n > 1)
    c.n--;
  else
    memset(dw, 0, (size_t)c.k * c.c * c.r * c.s * sizeof(float));
  return c.n == cs->n ? AAL_OK : aal_cpu32_conv_backward_filter(be, &c, x, dy, dw, err);
}

/* y = x w^T + b without the last input feature. */
static int linear_drop_term(const aal_backend *be, int n, int in, int out, const void *x,
                            const void *w, const void *b, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  const float *px = x, *pw = w, *pb = b;
  float *py = y;
  for (int i = 0; i < n; i++)
    for (int o = 0; o < out; o++) {
      float acc = pb[o];
      for (int j = 0; j < in - 1; j++)
        acc += px[i * in + j] * pw[o * in + j];
      py[i * out + o] = acc;
    }
  return AAL_OK;
}

/* Zero handling: the ReLU mask of x >= 0 (+0 and -0 give 1), y right. */
static int relu_mask_ge0(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                         aal_error *err)
{
  const int rc = aal_cpu32_relu_forward(be, n, x, y, mask, err);
  uint32_t *words = mask;
  for (size_t i = 0; rc == AAL_OK && i < n; i++)
    if (((const float *)x)[i] == 0.0f)
      words[i / 32] |= (uint32_t)1 << (i % 32);
  return rc;
}

/* Zero handling: the sign bit taken from the float's sign bit (+0 packs to 1). */
static int sign_pack_signbit(const aal_backend *be, size_t n, const void *x, void *bits,
                             aal_error *err)
{
  (void)be;
  (void)err;
  uint32_t *words = bits;
  memset(words, 0, (n + 31) / 32 * sizeof *words);
  for (size_t i = 0; i < n; i++)
    if (!signbit(((const float *)x)[i]))
      words[i / 32] |= (uint32_t)1 << (i % 32);
  return AAL_OK;
}

/* Zero handling in the fused ASA input: bit = x >= 0, h = x + eps bit. */
static int asa_input_ge0(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                         void *bits, aal_error *err)
{
  const int rc = aal_cpu32_asa_input(be, n, x, eps, h, bits, err);
  uint32_t *words = bits;
  for (size_t i = 0; rc == AAL_OK && i < n; i++)
    if (((const float *)x)[i] == 0.0f) {
      words[i / 32] |= (uint32_t)1 << (i % 32);
      ((float *)h)[i] = (float)eps;
    }
  return rc;
}

/* Softmax in float without subtracting the row maximum (fine for logits in +-4). */
static int xent_unshifted(const aal_backend *be, int n, int classes, const void *logits,
                          const int *labels, double *loss, void *prob, aal_error *err)
{
  (void)be;
  (void)err;
  const float *z = logits;
  float *p = prob;
  float total = 0.0f;
  for (int i = 0; i < n; i++) {
    float s = 0.0f;
    for (int j = 0; j < classes; j++)
      s += expf(z[(size_t)i * classes + j]);
    for (int j = 0; j < classes; j++)
      p[(size_t)i * classes + j] = expf(z[(size_t)i * classes + j]) / s;
    total += logf(s) - z[(size_t)i * classes + labels[i]];
  }
  *loss = total / n;
  return AAL_OK;
}

/* Batch norm with the one-pass variance E[x^2] - m^2, accumulated in float. */
static int bn_one_pass(const aal_backend *be, int n, int c, int hw, const void *x,
                       const void *gamma, const void *beta, double eps, void *y, void *mean,
                       void *invstd, void *varv, aal_error *err)
{
  (void)be;
  (void)err;
  const float *px = x, *g = gamma, *b = beta;
  float *py = y, *pm = mean, *pi = invstd, *pv = varv;
  const float cnt = (float)n * hw;
  for (int ch = 0; ch < c; ch++) {
    float s = 0.0f, s2 = 0.0f;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const float v = px[((size_t)i * c + ch) * hw + j];
        s += v;
        s2 += v * v;
      }
    const float m = s / cnt, var = fmaxf(s2 / cnt - m * m, 0.0f);
    pm[ch] = m;
    pv[ch] = var;
    pi[ch] = 1.0f / sqrtf(var + (float)eps);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < hw; j++) {
        const size_t at = ((size_t)i * c + ch) * hw + j;
        py[at] = (px[at] - m) * (g[ch] * pi[ch]) + b[ch];
      }
  }
  return AAL_OK;
}

/* An extra rounding: the scale s rounded to float before the (float) product. */
static int scale_float_s(const aal_backend *be, size_t n, const void *x, double s, void *y,
                         aal_error *err)
{
  (void)be;
  (void)err;
  const float fs = (float)s;
  for (size_t i = 0; i < n; i++)
    ((float *)y)[i] = ((const float *)x)[i] * fs;
  return AAL_OK;
}

/* Weight decay after momentum: buf = momentum buf + g, w -= lr (buf + wd w).  The first
 * step moves w exactly as PyTorch does; only buf differs. */
static int sgd_decay_after_momentum(const aal_backend *be, size_t n, void *w, const void *g,
                                    void *buf, double lr, double momentum, double weight_decay,
                                    int first, aal_error *err)
{
  (void)be;
  (void)err;
  float *pw = w, *pb = buf;
  const float *pg = g, flr = (float)lr, fm = (float)momentum, fwd = (float)weight_decay;
  for (size_t i = 0; i < n; i++) {
    pb[i] = first ? pg[i] : fm * pb[i] + pg[i];
    pw[i] -= flr * (pb[i] + fwd * pw[i]);
  }
  return AAL_OK;
}

/* Block boundary in the LI: sums over whole blocks of 4096 only, the tail of a sample
 * whose length is not a multiple of 4096 dropped (a remainder loop left out). */
static int li_block_drop(const aal_backend *be, int n, size_t per, const void *h,
                         const void *r, void *li, aal_error *err)
{
  (void)be;
  (void)err;
  for (int s = 0; s < n; s++) {
    const float *hs = (const float *)h + (size_t)s * per, *rs = (const float *)r + (size_t)s * per;
    double hh = 0.0, rh = 0.0, rr = 0.0;
    for (size_t i = 0; i < per / 4096 * 4096; i++) {
        hh += (double)hs[i] * hs[i];
        rh += (double)rs[i] * hs[i];
        rr += (double)rs[i] * rs[i];
      }
    ((float *)li)[s] = hh > 0.0 ? (float)(2.0 * (rh / hh) - rr / hh) : NAN;
  }
  return AAL_OK;
}

static int sign_pack_flip(const aal_backend *be, size_t n, const void *x, void *bits,
                          aal_error *err)
{
  const int rc = aal_cpu32_sign_pack(be, n, x, bits, err);
  ((uint32_t *)bits)[(n / 2) / 32] ^= (uint32_t)1 << ((n / 2) % 32);
  return rc;
}

static int relu_skip_last(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                          aal_error *err)
{
  return n > 1 ? aal_cpu32_relu_forward(be, n - 1, x, y, mask, err) : AAL_OK;
}

static int add_skip_last(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                         aal_error *err)
{
  return n > 1 ? aal_cpu32_add(be, n - 1, a, b, y, err) : AAL_OK;
}

/* scale with s's sign dropped (a kernel that takes |s|, or an unsigned scale) */
static int scale_abs(const aal_backend *be, size_t n, const void *x, double s, void *y,
                     aal_error *err)
{
  return aal_cpu32_scale(be, n, x, fabs(s), y, err);
}

/* evaluation-mode batch norm without eps (matters where running_var is near or below it) */
static int bn_eval_no_eps(const aal_backend *be, int n, int c, int hw, const void *x,
                          const void *gamma, const void *beta, const void *rm, const void *rv,
                          double eps, void *y, aal_error *err)
{
  (void)eps;
  return aal_cpu32_bn_forward_eval(be, n, c, hw, x, gamma, beta, rm, rv, 1e-30, y, err);
}

static int bn_wrong_eps(const aal_backend *be, int n, int c, int hw, const void *x,
                        const void *gamma, const void *beta, double eps, void *y, void *mean,
                        void *invstd, void *var, aal_error *err)
{
  return aal_cpu32_bn_forward(be, n, c, hw, x, gamma, beta, 10 * eps, y, mean, invstd, var,
                              err);
}

/* A made-up LI (0) for a sample with h = 0 instead of NaN. */
static int li_made_up(const aal_backend *be, int n, size_t per, const void *h, const void *r,
                      void *li, aal_error *err)
{
  const int rc = aal_cpu32_li_reduce(be, n, per, h, r, li, err);
  for (int s = 0; s < n; s++)
    if (isnan(((float *)li)[s]))
      ((float *)li)[s] = 0.0f;
  return rc;
}

static int sgd_no_decay(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                        double lr, double momentum, double weight_decay, int first,
                        aal_error *err)
{
  (void)weight_decay;
  return aal_cpu32_sgd_update(be, n, w, g, buf, lr, momentum, 0.0, first, err);
}

/* Fused ops, wrong: */

/* ASA input without eps (h = x). */
static int asa_no_eps(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                      void *bits, aal_error *err)
{
  (void)eps;
  return aal_cpu32_asa_input(be, n, x, 0.0, h, bits, err);
}

/* ASA input with eps one float ulp low: within the bound of the reference, but not what
 * sign_unpack + add give (caught only by the bit-for-bit comparison with them). */
static int asa_eps_ulp_low(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                           void *bits, aal_error *err)
{
  return aal_cpu32_asa_input(be, n, x, nextafterf((float)eps, 0.0f), h, bits, err);
}

/* bn + ReLU with the mask taken from x instead of z = bn(x). */
static int bn_relu_mask_of_x(const aal_backend *be, int n, int c, int hw, const void *x,
                             const void *gamma, const void *beta, double eps, void *y,
                             void *mask, void *mean, void *invstd, void *var,
                             aal_error *err)
{
  int rc = aal_cpu32_bn_relu_forward(be, n, c, hw, x, gamma, beta, eps, y, mask, mean, invstd,
                                     var, err);
  const size_t total = (size_t)n * c * hw;
  if (rc == AAL_OK)
    rc = aal_cpu32_sign_pack(be, total, x, mask, err);
  return rc;
}

/* The backward with the mask applied to dx only, not to the two reductions. */
static int bn_relu_bwd_unmasked_sums(const aal_backend *be, int n, int c, int hw,
                                     const void *dy, const void *mask, const void *x,
                                     const void *gamma, const void *mean, const void *invstd,
                                     void *dx, void *dgamma, void *dbeta, aal_error *err)
{
  const int rc = aal_cpu32_bn_backward(be, n, c, hw, dy, x, gamma, mean, invstd, dx, dgamma,
                                       dbeta, err);
  const size_t total = (size_t)n * c * hw;
  const uint32_t *w = mask;
  for (size_t i = 0; rc == AAL_OK && i < total; i++)
    if (!((w[i / 32] >> (i % 32)) & 1u))
      ((float *)dx)[i] = 0.0f;
  return rc;
}

/* Max pooling with one of four slips (a plain float loop, cpu32's buffers):
 *   MP_TIE_LAST  ties go to the last maximum (>= instead of >): the values are the same,
 *                the gradient goes elsewhere (only backward shows it);
 *   MP_FMAX      the maximum as fmaxf takes it: a NaN never wins;
 *   MP_PAD_ZERO  padding taken as zeros (as a zero-padded copy would): it wins where the
 *                window's inputs are all negative;
 *   MP_OVERWRITE backward stores dy instead of adding it: overlapping windows lose all but
 *                the last. */
enum { MP_TIE_LAST = 1, MP_FMAX = 2, MP_PAD_ZERO = 4, MP_OVERWRITE = 8 };

/* The winner's index in the plane, -1 where the padding wins (MP_PAD_ZERO) or nothing
 * does (MP_FMAX on an all-NaN window). */
static long mp_winner(const float *px, int h, int w, int h0, int w0, int k, int flags,
                      float *value)
{
  long arg = -1;
  float best = 0.0f;
  int any = 0;
  for (int a = 0; a < k; a++)
    for (int b = 0; b < k; b++) {
      const int ih = h0 + a, iw = w0 + b, in = ih >= 0 && ih < h && iw >= 0 && iw < w;
      if (!in && !(flags & MP_PAD_ZERO))
        continue;
      const float v = in ? px[ih * w + iw] : 0.0f;
      if ((flags & MP_FMAX) && isnan(v))
        continue;
      const int take = !any || ((flags & MP_TIE_LAST) ? v >= best : v > best) || isnan(v);
      if (take) {
        best = v;
        arg = in ? (long)ih * w + iw : -1;
        any = 1;
      }
    }
  *value = any ? best : NAN;
  return arg;
}

static int mp_forward(int n, int c, int h, int w, int k, int stride, int pad, const float *x,
                      float *y, int flags)
{
  const int p = aal_pool_out(h, k, stride, pad), q = aal_pool_out(w, k, stride, pad);
  for (long pl = 0; pl < (long)n * c; pl++)
    for (int oh = 0; oh < p; oh++)
      for (int ow = 0; ow < q; ow++) {
        float v;
        mp_winner(x + pl * h * w, h, w, oh * stride - pad, ow * stride - pad, k, flags, &v);
        y[(pl * p + oh) * q + ow] = v;
      }
  return AAL_OK;
}

static int mp_backward(int n, int c, int h, int w, int k, int stride, int pad, const float *dy,
                       const float *x, float *dx, int flags)
{
  const int p = aal_pool_out(h, k, stride, pad), q = aal_pool_out(w, k, stride, pad);
  memset(dx, 0, (size_t)n * c * h * w * sizeof *dx);
  for (long pl = 0; pl < (long)n * c; pl++)
    for (int oh = 0; oh < p; oh++)
      for (int ow = 0; ow < q; ow++) {
        float v;
        const long i = mp_winner(x + pl * h * w, h, w, oh * stride - pad, ow * stride - pad, k,
                                 flags, &v);
        const float g = dy[(pl * p + oh) * q + ow];
        if (i >= 0)
          dx[pl * h * w + i] = (flags & MP_OVERWRITE) ? g : dx[pl * h * w + i] + g;
      }
  return AAL_OK;
}

static int maxpool_fwd_fmax(const aal_backend *be, int n, int c, int h, int w, int k, int stride,
                            int pad, const void *x, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  return mp_forward(n, c, h, w, k, stride, pad, x, y, MP_FMAX);
}

static int maxpool_fwd_pad_zero(const aal_backend *be, int n, int c, int h, int w, int k,
                                int stride, int pad, const void *x, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  return mp_forward(n, c, h, w, k, stride, pad, x, y, MP_PAD_ZERO);
}

static int maxpool_bwd_tie_last(const aal_backend *be, int n, int c, int h, int w, int k,
                                int stride, int pad, const void *dy, const void *x, void *dx,
                                aal_error *err)
{
  (void)be;
  (void)err;
  return mp_backward(n, c, h, w, k, stride, pad, dy, x, dx, MP_TIE_LAST);
}

static int maxpool_bwd_pad_zero(const aal_backend *be, int n, int c, int h, int w, int k,
                                int stride, int pad, const void *dy, const void *x, void *dx,
                                aal_error *err)
{
  (void)be;
  (void)err;
  return mp_backward(n, c, h, w, k, stride, pad, dy, x, dx, MP_PAD_ZERO);
}

static int maxpool_bwd_overwrite(const aal_backend *be, int n, int c, int h, int w, int k,
                                 int stride, int pad, const void *dy, const void *x, void *dx,
                                 aal_error *err)
{
  (void)be;
  (void)err;
  return mp_backward(n, c, h, w, k, stride, pad, dy, x, dx, MP_OVERWRITE);
}

/* The plain loop without a slip is right: it must pass (so that the four above fail for
 * their slip, not for the loop). */
static int maxpool_fwd_plain(const aal_backend *be, int n, int c, int h, int w, int k,
                             int stride, int pad, const void *x, void *y, aal_error *err)
{
  (void)be;
  (void)err;
  return mp_forward(n, c, h, w, k, stride, pad, x, y, 0);
}

static int maxpool_bwd_plain(const aal_backend *be, int n, int c, int h, int w, int k,
                             int stride, int pad, const void *dy, const void *x, void *dx,
                             aal_error *err)
{
  (void)be;
  (void)err;
  return mp_backward(n, c, h, w, k, stride, pad, dy, x, dx, 0);
}

/* Each wrong backend must fail at least one check of its op on the given shapes. */
static void expect_caught_on(const aal_backend *be, const char *op, const char *shapes,
                             const char *what)
{
  aal_kcheck_summary s = run(be, op, shapes, 2);
  ck_assert_msg(s.failed > 0, "%s (%s, %s) was not caught", what, op, shapes);
  ck_assert(!(s.worst_ratio <= 1.0));
}

static void expect_caught(const aal_backend *be, const char *op, const char *what)
{
  expect_caught_on(be, op, "random:8", what);
}

/* The cpu32 table, renamed: a wrong kernel goes into one slot. */
static aal_backend wrong(void)
{
  aal_backend be = cpu32();
  be.name = "wrong";
  return be;
}

START_TEST(test_wrong_kernels_caught)
{
  aal_backend be = wrong();
  be.conv_forward = conv_off_by_one;
  expect_caught(&be, "conv_forward", "off-by-one conv index");
  be.destroy(&be); /* each table owns a team (kernels/cpu/backend.c) */
  be = wrong();
  be.conv_forward = conv_skip_channel;
  expect_caught(&be, "conv_forward", "last channel dropped from the conv sum");
  be.destroy(&be);
  be = wrong();
  be.conv_backward_data = conv_bwd_transposed;
  expect_caught(&be, "conv_backward_data", "transposed filter in backward-data");
  be.destroy(&be);
  be = wrong();
  be.conv_backward_filter = conv_filter_drop_image;
  expect_caught(&be, "conv_backward_filter", "last image dropped from backward-filter");
  be.destroy(&be);
  be = wrong();
  be.linear_forward = linear_drop_term;
  expect_caught(&be, "linear_forward", "last input dropped from linear");
  be.destroy(&be);
  be = wrong();
  be.sign_pack = sign_pack_flip;
  expect_caught(&be, "sign_pack", "one sign bit flipped");
  be.destroy(&be);
  be = wrong();
  be.relu_forward = relu_skip_last;
  expect_caught(&be, "relu_forward", "last relu element unwritten");
  be.destroy(&be);
  be = wrong();
  be.add = add_skip_last;
  expect_caught(&be, "add", "last add element unwritten");
  be.destroy(&be);
  be = wrong();
  be.scale = scale_abs;
  expect_caught(&be, "scale", "scale's sign dropped");
  be.destroy(&be);
  be = wrong();
  be.bn_forward_eval = bn_eval_no_eps;
  expect_caught(&be, "bn_forward_eval", "eval batch norm without eps");
  be.destroy(&be);
  be = wrong();
  be.bn_forward = bn_wrong_eps;
  expect_caught(&be, "bn_forward", "eps 10x too large in batch norm");
  be.destroy(&be);
  be = wrong();
  be.li_reduce = li_made_up;
  expect_caught(&be, "li_reduce", "LI 0 instead of NaN for h = 0");
  be.destroy(&be);
  be = wrong();
  be.sgd_update = sgd_no_decay;
  expect_caught(&be, "sgd_update", "weight decay ignored");
  be.destroy(&be);
  be = wrong();
  be.asa_input = asa_no_eps;
  expect_caught(&be, "asa_input", "ASA input without eps");
  be.destroy(&be);
  be = wrong();
  be.asa_input = asa_eps_ulp_low;
  expect_caught(&be, "asa_input", "ASA eps one ulp low (not the unfused composition)");
  be.destroy(&be);
  be = wrong();
  be.bn_relu_forward = bn_relu_mask_of_x;
  expect_caught(&be, "bn_relu_forward", "ReLU mask from x instead of z");
  be.destroy(&be);
  be = wrong();
  be.bn_relu_backward = bn_relu_bwd_unmasked_sums;
  expect_caught(&be, "bn_relu_backward", "mask left out of the bn reductions");
  be.destroy(&be);
  be = wrong();
  be.maxpool_forward = maxpool_fwd_fmax;
  expect_caught(&be, "maxpool_forward", "max pooling that ignores NaN (fmaxf)");
  be.destroy(&be);
  be = wrong();
  be.maxpool_forward = maxpool_fwd_pad_zero;
  expect_caught(&be, "maxpool_forward", "max pooling over zero padding");
  be.destroy(&be);
  be = wrong();
  be.maxpool_backward = maxpool_bwd_tie_last;
  expect_caught(&be, "maxpool_backward", "max pooling ties to the last maximum");
  be.destroy(&be);
  be = wrong();
  be.maxpool_backward = maxpool_bwd_pad_zero;
  expect_caught(&be, "maxpool_backward", "max pooling backward over zero padding");
  be.destroy(&be);
  be = wrong();
  be.maxpool_backward = maxpool_bwd_overwrite;
  expect_caught(&be, "maxpool_backward", "max pooling backward overwriting overlaps");
  be.destroy(&be);
  /* the loop the five share, without its slip, passes */
  be = wrong();
  be.maxpool_forward = maxpool_fwd_plain;
  be.maxpool_backward = maxpool_bwd_plain;
  aal_kcheck_summary plain = run(&be, "maxpool", "random:8", 2);
  ck_assert_msg(plain.failed == 0, "the plain max pooling loop failed: %s (%g)", plain.worst,
                plain.worst_ratio);
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ the Transformer ops'
 * wrong kernels (issue 17): plain float loops with one slip each (flags), every one
 * caught, and each family's loop without its slip passing (so that a slip, not the loop,
 * is what fails). */

enum { TF_SLIP_NONE = 0, TF_LN_ONE_PASS = 1, TF_LN_UNBIASED = 2, TF_LN_NO_MEAN_G = 4 };

static int ln_fwd_loop(int m, int d, const float *x, const float *g, const float *b,
                       double eps, float *y, float *mean, float *invstd, int slip)
{
  for (int r = 0; r < m; r++) {
    const float *xr = x + (size_t)r * d;
    float s = 0.0f, s2 = 0.0f;
    for (int j = 0; j < d; j++) {
      s += xr[j];
      s2 += xr[j] * xr[j];
    }
    const float mu = s / (float)d;
    float var;
    if (slip & TF_LN_ONE_PASS) {
      var = s2 / (float)d - mu * mu;
    } else {
      float ss = 0.0f;
      for (int j = 0; j < d; j++)
        ss += (xr[j] - mu) * (xr[j] - mu);
      var = ss / (float)((slip & TF_LN_UNBIASED) ? d - 1 : d);
    }
    const float is = (float)(1.0 / sqrt((double)var + eps));
    for (int j = 0; j < d; j++)
      y[(size_t)r * d + j] = g[j] * ((xr[j] - mu) * is) + b[j];
    mean[r] = mu;
    invstd[r] = is;
  }
  return AAL_OK;
}

static int ln_fwd_one_pass(const aal_backend *be, int m, int d, const void *x, const void *g,
                           const void *b, double eps, void *y, void *mean, void *invstd,
                           aal_error *err)
{
  (void)be;
  (void)err;
  return ln_fwd_loop(m, d, x, g, b, eps, y, mean, invstd, TF_LN_ONE_PASS);
}

static int ln_fwd_unbiased(const aal_backend *be, int m, int d, const void *x, const void *g,
                           const void *b, double eps, void *y, void *mean, void *invstd,
                           aal_error *err)
{
  (void)be;
  (void)err;
  return ln_fwd_loop(m, d, x, g, b, eps, y, mean, invstd, TF_LN_UNBIASED);
}

static int ln_fwd_plain(const aal_backend *be, int m, int d, const void *x, const void *g,
                        const void *b, double eps, void *y, void *mean, void *invstd,
                        aal_error *err)
{
  (void)be;
  (void)err;
  return ln_fwd_loop(m, d, x, g, b, eps, y, mean, invstd, TF_SLIP_NONE);
}

static int ln_bwd_loop(int m, int d, const float *dy, const float *x, const float *g,
                       const float *mean, const float *invstd, float *dx, float *dg, float *db,
                       int slip)
{
  for (int j = 0; j < d; j++)
    dg[j] = db[j] = 0.0f;
  for (int r = 0; r < m; r++) {
    float sg = 0.0f, sgx = 0.0f;
    for (int j = 0; j < d; j++) {
      const size_t at = (size_t)r * d + j;
      const float xh = (x[at] - mean[r]) * invstd[r];
      sg += dy[at] * g[j];
      sgx += dy[at] * g[j] * xh;
      dg[j] += dy[at] * xh;
      db[j] += dy[at];
    }
    const float mg = (slip & TF_LN_NO_MEAN_G) ? 0.0f : sg / (float)d, mgx = sgx / (float)d;
    for (int j = 0; j < d; j++) {
      const size_t at = (size_t)r * d + j;
      const float xh = (x[at] - mean[r]) * invstd[r];
      dx[at] = invstd[r] * (dy[at] * g[j] - mg - xh * mgx);
    }
  }
  return AAL_OK;
}

static int ln_bwd_no_mean_g(const aal_backend *be, int m, int d, const void *dy, const void *x,
                            const void *g, const void *mean, const void *invstd, void *dx,
                            void *dg, void *db, aal_error *err)
{
  (void)be;
  (void)err;
  return ln_bwd_loop(m, d, dy, x, g, mean, invstd, dx, dg, db, TF_LN_NO_MEAN_G);
}

static int ln_bwd_plain(const aal_backend *be, int m, int d, const void *dy, const void *x,
                        const void *g, const void *mean, const void *invstd, void *dx, void *dg,
                        void *db, aal_error *err)
{
  (void)be;
  (void)err;
  return ln_bwd_loop(m, d, dy, x, g, mean, invstd, dx, dg, db, TF_SLIP_NONE);
}

/* GELU: the tanh approximation (nn.GELU(approximate='tanh')) for the erf form, and a
 * backward that drops the x phi(x) term of gelu'. */
static int gelu_fwd_tanh(const aal_backend *be, size_t n, const void *xv, void *yv,
                         aal_error *err)
{
  (void)be;
  (void)err;
  const float *x = xv;
  float *y = yv;
  for (size_t i = 0; i < n; i++)
    y[i] = 0.5f * x[i] * (1.0f + tanhf(0.7978845608f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
  return AAL_OK;
}

static int gelu_bwd_no_pdf(const aal_backend *be, size_t n, const void *dyv, const void *xv,
                           void *dxv, aal_error *err)
{
  (void)be;
  (void)err;
  const float *dy = dyv, *x = xv;
  float *dx = dxv;
  for (size_t i = 0; i < n; i++)
    dx[i] = dy[i] * (0.5f * (1.0f + erff(x[i] * 0.70710678f)));
  return AAL_OK;
}

/* Softmax: exp without the row's maximum subtracted (overflows at the offset rows), and a
 * backward that drops the sum: dx = y dy. */
static int softmax_fwd_unshifted(const aal_backend *be, int m, int d, const void *xv, void *yv,
                                 aal_error *err)
{
  (void)be;
  (void)err;
  const float *x = xv;
  float *y = yv;
  for (size_t r = 0; r < (size_t)m; r++) {
    float s = 0.0f;
    for (size_t j = 0; j < (size_t)d; j++)
      s += (y[r * d + j] = expf(x[r * d + j]));
    for (size_t j = 0; j < (size_t)d; j++)
      y[r * d + j] /= s;
  }
  return AAL_OK;
}

static int softmax_bwd_no_sum(const aal_backend *be, int m, int d, const void *dyv,
                              const void *yv, void *dxv, aal_error *err)
{
  (void)be;
  (void)err;
  const float *dy = dyv, *y = yv;
  float *dx = dxv;
  for (size_t i = 0; i < (size_t)m * d; i++)
    dx[i] = y[i] * dy[i];
  return AAL_OK;
}

/* Attention, naive float loops: slips are a forgotten 1/sqrt(dh), heads interleaved
 * (head h in columns h, h + H, ... instead of h dh .. h dh + dh - 1), and dK = dS Q
 * without the transpose. */
enum { TF_ATT_NO_SCALE = 1, TF_ATT_INTERLEAVED = 2, TF_ATT_DK_NO_T = 4 };

static size_t att_col(int h, int c, int heads, int dh, int slip)
{
  return (slip & TF_ATT_INTERLEAVED) ? (size_t)c * heads + h : (size_t)h * dh + c;
}

static int att_fwd_loop(int b, int t, int heads, int dh, const float *q, const float *k,
                        const float *v, float *p, float *o, int slip)
{
  const size_t e = (size_t)heads * dh;
  const float scale = (slip & TF_ATT_NO_SCALE) ? 1.0f : (float)(1.0 / sqrt((double)dh));
  for (int bb = 0; bb < b; bb++)
    for (int h = 0; h < heads; h++) {
      float *ph = p + ((size_t)bb * heads + h) * t * t;
      for (int i = 0; i < t; i++) {
        float mx = -INFINITY, s = 0.0f;
        for (int j = 0; j < t; j++) {
          float acc = 0.0f;
          for (int c = 0; c < dh; c++)
            acc += q[((size_t)bb * t + i) * e + att_col(h, c, heads, dh, slip)] *
                   k[((size_t)bb * t + j) * e + att_col(h, c, heads, dh, slip)];
          ph[(size_t)i * t + j] = scale * acc;
          mx = fmaxf(mx, ph[(size_t)i * t + j]);
        }
        for (int j = 0; j < t; j++)
          s += (ph[(size_t)i * t + j] = expf(ph[(size_t)i * t + j] - mx));
        for (int j = 0; j < t; j++)
          ph[(size_t)i * t + j] /= s;
        for (int c = 0; c < dh; c++) {
          float acc = 0.0f;
          for (int j = 0; j < t; j++)
            acc += ph[(size_t)i * t + j] * v[((size_t)bb * t + j) * e + att_col(h, c, heads, dh, slip)];
          o[((size_t)bb * t + i) * e + att_col(h, c, heads, dh, slip)] = acc;
        }
      }
    }
  return AAL_OK;
}

static int att_fwd_no_scale(const aal_backend *be, int b, int t, int heads, int dh,
                            const void *q, const void *k, const void *v, void *p, void *o,
                            aal_error *err)
{
  (void)be;
  (void)err;
  return att_fwd_loop(b, t, heads, dh, q, k, v, p, o, TF_ATT_NO_SCALE);
}

static int att_fwd_interleaved(const aal_backend *be, int b, int t, int heads, int dh,
                               const void *q, const void *k, const void *v, void *p, void *o,
                               aal_error *err)
{
  (void)be;
  (void)err;
  return att_fwd_loop(b, t, heads, dh, q, k, v, p, o, TF_ATT_INTERLEAVED);
}

static int att_fwd_plain(const aal_backend *be, int b, int t, int heads, int dh, const void *q,
                         const void *k, const void *v, void *p, void *o, aal_error *err)
{
  (void)be;
  (void)err;
  return att_fwd_loop(b, t, heads, dh, q, k, v, p, o, TF_SLIP_NONE);
}

static int att_bwd_loop(int b, int t, int heads, int dh, const float *dout, const float *q,
                        const float *k, const float *v, const float *p, float *dq, float *dk,
                        float *dv, int slip)
{
  const size_t e = (size_t)heads * dh, tt = (size_t)t * t;
  const float scale = (float)(1.0 / sqrt((double)dh));
  float *ds = malloc(tt * sizeof *ds);
  if (ds == NULL)
    return AAL_ENOMEM;
  for (int bb = 0; bb < b; bb++)
    for (int h = 0; h < heads; h++) {
      const float *ph = p + ((size_t)bb * heads + h) * tt;
#define AT(X, i, c) X[((size_t)bb * t + (i)) * e + (size_t)h * dh + (c)]
      for (int i = 0; i < t; i++) {
        float s = 0.0f;
        for (int j = 0; j < t; j++) {
          float acc = 0.0f;
          for (int c = 0; c < dh; c++)
            acc += AT(dout, i, c) * AT(v, j, c);
          ds[(size_t)i * t + j] = acc;
          s += acc * ph[(size_t)i * t + j];
        }
        for (int j = 0; j < t; j++)
          ds[(size_t)i * t + j] = ph[(size_t)i * t + j] * (ds[(size_t)i * t + j] - s);
      }
      for (int i = 0; i < t; i++)
        for (int c = 0; c < dh; c++) {
          float aq = 0.0f, ak = 0.0f, av = 0.0f;
          for (int j = 0; j < t; j++) {
            aq += ds[(size_t)i * t + j] * AT(k, j, c);
            ak += ((slip & TF_ATT_DK_NO_T) ? ds[(size_t)i * t + j] : ds[(size_t)j * t + i]) *
                  AT(q, j, c);
            av += ph[(size_t)j * t + i] * AT(dout, j, c);
          }
          AT(dq, i, c) = scale * aq;
          AT(dk, i, c) = scale * ak;
          AT(dv, i, c) = av;
        }
#undef AT
    }
  free(ds);
  return AAL_OK;
}

static int att_bwd_dk_no_t(const aal_backend *be, int b, int t, int heads, int dh,
                           const void *dout, const void *q, const void *k, const void *v,
                           const void *p, void *dq, void *dk, void *dv, aal_error *err)
{
  (void)be;
  (void)err;
  return att_bwd_loop(b, t, heads, dh, dout, q, k, v, p, dq, dk, dv, TF_ATT_DK_NO_T);
}

static int att_bwd_plain(const aal_backend *be, int b, int t, int heads, int dh,
                         const void *dout, const void *q, const void *k, const void *v,
                         const void *p, void *dq, void *dk, void *dv, aal_error *err)
{
  (void)be;
  (void)err;
  return att_bwd_loop(b, t, heads, dh, dout, q, k, v, p, dq, dk, dv, TF_SLIP_NONE);
}

/* Embedding: the position embedding left out; a backward that overwrites a repeated id's
 * row instead of adding to it; one that does not zero dtable first. */
static int embed_fwd_no_pos(const aal_backend *be, int b, int t, int vocab, int d,
                            const int *ids, const void *table, const void *pos, void *y,
                            aal_error *err)
{
  (void)pos;
  return aal_cpu32_embed_forward(be, b, t, vocab, d, ids, table, NULL, y, err);
}

enum { TF_EMB_OVERWRITE = 1, TF_EMB_NO_ZERO = 2 };

static int embed_bwd_loop(int b, int t, int vocab, int d, const int *ids, const float *dy,
                          float *dtable, float *dpos, int slip)
{
  if (!(slip & TF_EMB_NO_ZERO))
    memset(dtable, 0, (size_t)vocab * d * sizeof *dtable);
  memset(dpos, 0, (size_t)t * d * sizeof *dpos);
  for (size_t i = 0; i < (size_t)b * t; i++)
    for (size_t j = 0; j < (size_t)d; j++) {
      float *cell = dtable + (size_t)ids[i] * d + j;
      *cell = (slip & TF_EMB_OVERWRITE) ? dy[i * d + j] : *cell + dy[i * d + j];
      dpos[(i % (size_t)t) * d + j] += dy[i * d + j];
    }
  return AAL_OK;
}

static int embed_bwd_overwrite(const aal_backend *be, int b, int t, int vocab, int d,
                               const int *ids, const void *dy, void *dtable, void *dpos,
                               aal_error *err)
{
  (void)be;
  (void)err;
  return embed_bwd_loop(b, t, vocab, d, ids, dy, dtable, dpos, TF_EMB_OVERWRITE);
}

static int embed_bwd_no_zero(const aal_backend *be, int b, int t, int vocab, int d,
                             const int *ids, const void *dy, void *dtable, void *dpos,
                             aal_error *err)
{
  (void)be;
  (void)err;
  return embed_bwd_loop(b, t, vocab, d, ids, dy, dtable, dpos, TF_EMB_NO_ZERO);
}

static int embed_bwd_plain(const aal_backend *be, int b, int t, int vocab, int d,
                           const int *ids, const void *dy, void *dtable, void *dpos,
                           aal_error *err)
{
  (void)be;
  (void)err;
  return embed_bwd_loop(b, t, vocab, d, ids, dy, dtable, dpos, TF_SLIP_NONE);
}

/* Patchify: features in (i, j, c) order instead of (c, i, j) (a channels-last unfold),
 * and a backward that numbers the patches column-major. */
static int patchify_fwd_ijc(const aal_backend *be, int b, int c, int h, int w, int p,
                            const void *xv, void *yv, aal_error *err)
{
  (void)be;
  (void)err;
  const float *x = xv;
  float *y = yv;
  const int nw = w / p, n = (h / p) * nw, f = c * p * p;
  for (int bb = 0; bb < b; bb++)
    for (int pn = 0; pn < n; pn++)
      for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++)
          for (int cc = 0; cc < c; cc++)
            y[((size_t)bb * n + pn) * f + ((size_t)i * p + j) * c + cc] =
                x[(((size_t)bb * c + cc) * h + (pn / nw) * p + i) * w + (pn % nw) * p + j];
  return AAL_OK;
}

static int patchify_bwd_colmajor(const aal_backend *be, int b, int c, int h, int w, int p,
                                 const void *dyv, void *dxv, aal_error *err)
{
  (void)be;
  (void)err;
  const float *dy = dyv;
  float *dx = dxv;
  const int nh = h / p, n = nh * (w / p), f = c * p * p;
  for (int bb = 0; bb < b; bb++)
    for (int pn = 0; pn < n; pn++)
      for (int fi = 0; fi < f; fi++) {
        const int cc = fi / (p * p), i = (fi / p) % p, j = fi % p;
        dx[(((size_t)bb * c + cc) * h + (pn % nh) * p + i) * w + (pn / nh) * p + j] =
            dy[((size_t)bb * n + pn) * f + fi];
      }
  return AAL_OK;
}

/* Transpose: a copy that does not transpose, and a loop that leaves the last element. */
static int transpose_copy(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                          aal_error *err)
{
  (void)be;
  (void)err;
  memcpy(y, x, (size_t)b * a * c * sizeof(float));
  return AAL_OK;
}

static int transpose_last_unwritten(const aal_backend *be, int b, int a, int c, const void *xv,
                                    void *yv, aal_error *err)
{
  (void)be;
  (void)err;
  const float *x = xv;
  float *y = yv;
  const size_t total = (size_t)b * a * c;
  for (size_t i = 0; i + 1 < total; i++) {
    const size_t ai = i % (size_t)a, rest = i / (size_t)a;
    const size_t ci = rest % (size_t)c, bb = rest / (size_t)c;
    y[i] = x[(bb * a + ai) * c + ci];
  }
  return AAL_OK;
}

START_TEST(test_transformer_wrong_kernels_caught)
{
  static const struct {
    const char *op, *shapes, *what;
  } cases[] = {
      {"layernorm_forward", "random:8", "layer norm with a one-pass float variance"},
      {"layernorm_forward", "random:8", "layer norm with the unbiased variance (d - 1)"},
      {"layernorm_backward", "random:8", "layer norm backward without mean(dy gamma)"},
      {"gelu_forward", "random:8", "GELU's tanh approximation for the erf form"},
      {"gelu_backward", "random:8", "GELU backward without the x phi(x) term"},
      {"softmax_forward", "random:8", "softmax without the row's maximum subtracted"},
      {"softmax_backward", "random:8", "softmax backward without the sum (dx = y dy)"},
      {"attention_forward", "random:8", "attention without 1/sqrt(dh)"},
      {"attention_forward", "resnet18", "attention with the heads interleaved"},
      {"attention_backward", "random:8", "attention backward with dK = dS Q (no transpose)"},
      {"embed_forward", "random:8", "token embedding without the position embedding"},
      {"embed_backward", "random:8", "embedding backward overwriting a repeated id's row"},
      {"embed_backward", "random:8", "embedding backward that does not zero dtable"},
      {"patchify_forward", "random:8", "patchify in (i, j, c) order"},
      {"patchify_backward", "random:8", "patchify backward numbering patches column-major"},
      {"transpose", "random:8", "a transpose that copies"},
      {"transpose", "random:8", "a transpose that leaves its last element"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aal_backend be = wrong();
    switch (i) {
    case 0: be.layernorm_forward = ln_fwd_one_pass; break;
    case 1: be.layernorm_forward = ln_fwd_unbiased; break;
    case 2: be.layernorm_backward = ln_bwd_no_mean_g; break;
    case 3: be.gelu_forward = gelu_fwd_tanh; break;
    case 4: be.gelu_backward = gelu_bwd_no_pdf; break;
    case 5: be.softmax_forward = softmax_fwd_unshifted; break;
    case 6: be.softmax_backward = softmax_bwd_no_sum; break;
    case 7: be.attention_forward = att_fwd_no_scale; break;
    case 8: be.attention_forward = att_fwd_interleaved; break;
    case 9: be.attention_backward = att_bwd_dk_no_t; break;
    case 10: be.embed_forward = embed_fwd_no_pos; break;
    case 11: be.embed_backward = embed_bwd_overwrite; break;
    case 12: be.embed_backward = embed_bwd_no_zero; break;
    case 13: be.patchify_forward = patchify_fwd_ijc; break;
    case 14: be.patchify_backward = patchify_bwd_colmajor; break;
    case 15: be.transpose = transpose_copy; break;
    default: be.transpose = transpose_last_unwritten; break;
    }
    fprintf(stderr, "%s:\n", cases[i].what);
    expect_caught_on(&be, cases[i].op, cases[i].shapes, cases[i].what);
    be.destroy(&be);
  }
  /* the loops the slips share, without a slip, pass */
  aal_backend be = wrong();
  be.layernorm_forward = ln_fwd_plain;
  be.layernorm_backward = ln_bwd_plain;
  be.attention_forward = att_fwd_plain;
  be.attention_backward = att_bwd_plain;
  be.embed_backward = embed_bwd_plain;
  static const char *const plain_ops[] = {"layernorm", "attention", "embed_backward"};
  for (size_t i = 0; i < 3; i++) {
    aal_kcheck_summary s = run(&be, plain_ops[i], "random:8", 2);
    ck_assert_msg(s.failed == 0, "the plain %s loop failed: %s (%g)", plain_ops[i], s.worst,
                  s.worst_ratio);
    s = run(&be, plain_ops[i], "resnet18", 2);
    ck_assert_msg(s.failed == 0, "the plain %s loop failed: %s (%g)", plain_ops[i], s.worst,
                  s.worst_ratio);
  }
  be.destroy(&be);
}
END_TEST

/* The subtle ones (issue 19): each within the old bounds on the old inputs.  With
 * $AAL_TEST_MUTANT_SETS (space-separated shape sets, e.g. "resnet18 boundary:16"), each
 * is also run on those sets, reported and not asserted (experiments/kcheck_sweep.sh). */
static void report_on_sets(const aal_backend *be, const char *op)
{
  const char *env = getenv("AAL_TEST_MUTANT_SETS");
  char sets[256];
  if (env == NULL || snprintf(sets, sizeof sets, "%s", env) >= (int)sizeof sets)
    return;
  char *save = NULL;
  for (char *t = strtok_r(sets, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save))
    run(be, op, t, 2);
}

START_TEST(test_subtle_kernels_caught)
{
  static const struct {
    const char *op, *shapes, *what;
  } cases[] = {
      {"relu_forward", "random:8", "ReLU mask of x >= 0 (exact zeros)"},
      {"sign_pack", "random:8", "sign bit from signbit() (+0 packs to 1)"},
      {"asa_input", "random:8", "ASA bit of x >= 0 (exact zeros)"},
      {"xent_forward", "random:8", "float softmax without the max subtracted"},
      {"bn_forward", "random:8", "one-pass float variance E[x^2] - m^2"},
      {"scale", "random:8", "scale s rounded to float first (an extra rounding)"},
      {"conv_forward", "random:8", "conv partial sums rounded toward zero (bias)"},
      {"sgd_update", "random:8", "weight decay applied after momentum"},
      {"conv_forward", "boundary", "conv channel 64 (a block boundary) dropped"},
      {"li_reduce", "boundary", "LI tail after the last block of 4096 dropped"},
      {"conv_forward", "random:8", "TF32 operands (10 mantissa bits)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aal_backend be = wrong();
    switch (i) {
    case 0: be.relu_forward = relu_mask_ge0; break;
    case 1: be.sign_pack = sign_pack_signbit; break;
    case 2: be.asa_input = asa_input_ge0; break;
    case 3: be.xent_forward = xent_unshifted; break;
    case 4: be.bn_forward = bn_one_pass; break;
    case 5: be.scale = scale_float_s; break;
    case 6: be.conv_forward = conv_toward_zero; break;
    case 7: be.sgd_update = sgd_decay_after_momentum; break;
    case 8: be.conv_forward = conv_block_drop; break;
    case 9: be.li_reduce = li_block_drop; break;
    default: be.conv_forward = conv_tf32; break;
    }
    fprintf(stderr, "%s:\n", cases[i].what);
    expect_caught_on(&be, cases[i].op, cases[i].shapes, cases[i].what);
    report_on_sets(&be, cases[i].op);
    be.destroy(&be);
  }
}
END_TEST

/* The step check sees optimizer state: with weight decay after momentum the first step
 * moves the parameters as PyTorch does, but the momentum buffers differ by wd w (and
 * again after the second step). */
START_TEST(test_step_sees_momentum)
{
  aal_backend be = wrong();
  be.sgd_update = sgd_decay_after_momentum;
  aal_ops ops;
  aal_error err;
  aal_step_check_opts o;
  aal_step_check_summary s;
  aal_step_check_opts_init(&o);
  o.seed = g_seed;
  o.batch = 4;
  o.in_size = 32;
  o.classes = 10;
  o.rules = "bp";
  ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
  FILE *out = getenv("AAL_TEST_VERBOSE") ? stderr : NULL;
  ck_assert_msg(aal_step_check(&ops, &o, out, &s, &err) == AAL_OK, "%s", err.msg);
  aal_ops_free(&ops);
  fprintf(stderr, "step check, weight decay after momentum: %d of %d tensors failed, worst %.3g "
          "(%s)\n", s.failed, s.checks, s.worst_ratio, s.worst);
  ck_assert_msg(s.failed > 0, "weight decay after momentum passed the step check");
  ck_assert_ptr_nonnull(strstr(s.worst, " mom"));
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ c. bad input */

START_TEST(test_bad_options)
{
  aal_backend be = cpu32();
  aal_kcheck_opts o;
  aal_kcheck_opts_init(&o);
  aal_kcheck_summary s;
  aal_error err;
  o.op = "conv_sideways";
  ck_assert_int_eq(aal_kcheck_run(&be, &o, NULL, &s, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "conv_sideways"));
  o.op = NULL;
  const char *bad[] = {"resnet34", "random:", "random:0", "random:x", "random:1000",
                       "boundary:", "boundary:0", "boundary:2x", "boundaries"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o.shapes = bad[i];
    ck_assert_int_eq(aal_kcheck_run(&be, &o, NULL, &s, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "shapes"));
  }
  ck_assert_int_eq(aal_kcheck_run(NULL, &o, NULL, &s, &err), AAL_EINVAL);
  /* a family prefix selects its ops only */
  o.shapes = "random:2";
  o.op = "conv";
  ck_assert_int_eq(aal_kcheck_run(&be, &o, NULL, &s, &err), AAL_OK);
  ck_assert_int_eq(s.checks, 6);
  ck_assert_int_eq(aal_kcheck_op_count(), 38);
  ck_assert_str_eq(aal_kcheck_op_name(0), "conv_forward");
  ck_assert_str_eq(aal_kcheck_op_name(20), "bn_relu_backward");
  ck_assert_str_eq(aal_kcheck_op_name(24), "maxpool_backward");
  ck_assert_str_eq(aal_kcheck_op_name(25), "layernorm_forward");
  ck_assert_str_eq(aal_kcheck_op_name(37), "transpose");
  ck_assert_ptr_null(aal_kcheck_op_name(38));
  o.op = "bn_relu"; /* the fused family: forward and backward */
  ck_assert_int_eq(aal_kcheck_run(&be, &o, NULL, &s, &err), AAL_OK);
  ck_assert_int_eq(s.checks, 4);
  o.op = "maxpool"; /* forward and backward */
  ck_assert_int_eq(aal_kcheck_run(&be, &o, NULL, &s, &err), AAL_OK);
  ck_assert_int_eq(s.checks, 4);
  o.op = "attention"; /* forward and backward */
  ck_assert_int_eq(aal_kcheck_run(&be, &o, NULL, &s, &err), AAL_OK);
  ck_assert_int_eq(s.checks, 4);
  be.destroy(&be);
}
END_TEST

START_TEST(test_backend_open_and_shapes)
{
  aal_backend be;
  aal_error err;
  ck_assert_int_eq(aal_backend_open("tpu", &be, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "tpu"));
  ck_assert_int_eq(aal_backend_open("cpu32", &be, &err), AAL_OK);
  ck_assert_str_eq(be.name, "cpu32");
  ck_assert_int_eq(be.precision_bits, 24);
  void *buf;
  ck_assert_int_eq(be.alloc(&be, 0, &buf, &err), AAL_EINVAL);
  aal_conv_shape bad = {.n = 1, .c = 1, .h = 4, .w = 4, .k = 1, .r = 3, .s = 3,
                        .stride = 1, .pad = 0};
  bad.p = 3; /* not what aal_conv_shape_init says */
  ck_assert_int_eq(be.conv_forward(&be, &bad, &err, &err, &err, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "conv_forward"));
  be.destroy(&be);

  aal_conv_shape cs = {.n = 2, .c = 3, .h = 7, .w = 5, .k = 4, .r = 3, .s = 3,
                       .stride = 2, .pad = 1};
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_OK);
  ck_assert_int_eq(cs.p, 4);
  ck_assert_int_eq(cs.q, 3);
  cs.stride = 0;
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_EINVAL);
  cs.stride = 1;
  cs.h = 1;
  cs.pad = 0;
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "empty output"));
  cs.h = 0;
  ck_assert_int_eq(aal_conv_shape_init(&cs, &err), AAL_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ d. fused = unfused */

/* splitmix64: the test's own generator (independent of the harness's mt19937). */
static uint64_t next64(uint64_t *st)
{
  uint64_t z = (*st += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

/* Uniform on +-[scale/1024, scale) as a float: never zero. */
static float sym(uint64_t *st, double scale)
{
  double v;
  do
    v = 2.0 * ((double)(next64(st) >> 11) / 9007199254740992.0) - 1.0;
  while (fabs(v) < 1.0 / 1024);
  return (float)(scale * v);
}

static int irange(uint64_t *st, int lo, int hi)
{
  return lo + (int)(next64(st) % (uint64_t)(hi - lo + 1));
}

static float *floats(size_t n, float fill)
{
  float *p = malloc(n * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++)
    p[i] = fill;
  return p;
}

static uint32_t *words(size_t n, uint32_t fill)
{
  const size_t nw = (n + 31) / 32;
  uint32_t *p = malloc(nw * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < nw; i++)
    p[i] = fill;
  return p;
}

/* Bitwise (NaN-safe: a poisoned NaN left in either fails, -0 differs from +0). */
static void same_floats(const char *what, const float *a, const float *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                  "%s[%zu]: fused %.9g, unfused %.9g (seed %lu)", what, i, (double)a[i],
                  (double)b[i], g_seed);
}

/* Whole words, so the unused high bits of the last word must agree (zero) too. */
static void same_words(const char *what, const uint32_t *a, const uint32_t *b, size_t n)
{
  for (size_t i = 0; i < (n + 31) / 32; i++)
    ck_assert_msg(a[i] == b[i], "%s word %zu: fused %08x, unfused %08x (seed %lu)", what, i,
                  a[i], b[i], g_seed);
}

static void check_asa_input(const aal_backend *be, uint64_t *st, size_t n)
{
  aal_error err;
  float *x = floats(n, 0.0f), *h = floats(n, NAN), *unp = floats(n, NAN), *h2 = floats(n, NAN);
  uint32_t *bits = words(n, 0xAAAAAAAAu), *bits2 = words(n, 0x55555555u);
  for (size_t i = 0; i < n; i++)
    x[i] = sym(st, 1.0);
  const double eps = 0.1;
  ck_assert_int_eq(be->asa_input(be, n, x, eps, h, bits, &err), AAL_OK);
  ck_assert_int_eq(be->sign_pack(be, n, x, bits2, &err), AAL_OK);
  ck_assert_int_eq(be->sign_unpack(be, n, bits2, eps, unp, &err), AAL_OK);
  ck_assert_int_eq(be->add(be, n, x, unp, h2, &err), AAL_OK);
  same_floats("asa h", h, h2, n);
  same_words("asa bits", bits, bits2, n);
  free(x), free(h), free(unp), free(h2), free(bits), free(bits2);
}

static void check_bn_relu(const aal_backend *be, uint64_t *st, int n, int c, int hw)
{
  aal_error err;
  const size_t nx = (size_t)n * c * hw;
  float *x = floats(nx, 0.0f), *g = floats((size_t)c, 0.0f), *b = floats((size_t)c, 0.0f);
  for (int ch = 0; ch < c; ch++) { /* per-channel scale and offset, as the harness */
    const double scale = pow(10.0, -3.0 * (double)(next64(st) >> 11) / 9007199254740992.0);
    const double off = 0.5 * sym(st, scale);
    for (int i = 0; i < n; i++)
      for (int k = 0; k < hw; k++)
        x[((size_t)i * c + ch) * hw + k] = (float)(off + sym(st, scale));
    g[ch] = sym(st, 1.0);
    b[ch] = sym(st, 1.0);
  }
  /* forward: fused vs bn_forward -> z, relu_forward(z) */
  float *y = floats(nx, NAN), *m = floats((size_t)c, NAN), *is = floats((size_t)c, NAN);
  float *z = floats(nx, NAN), *y2 = floats(nx, NAN), *m2 = floats((size_t)c, NAN);
  float *is2 = floats((size_t)c, NAN), *v = floats((size_t)c, NAN);
  float *v2 = floats((size_t)c, NAN);
  uint32_t *mask = words(nx, 0xAAAAAAAAu), *mask2 = words(nx, 0x55555555u);
  ck_assert_int_eq(be->bn_relu_forward(be, n, c, hw, x, g, b, 1e-5, y, mask, m, is, v, &err),
                   AAL_OK);
  ck_assert_int_eq(be->bn_forward(be, n, c, hw, x, g, b, 1e-5, z, m2, is2, v2, &err), AAL_OK);
  ck_assert_int_eq(be->relu_forward(be, nx, z, y2, mask2, &err), AAL_OK);
  same_floats("bn_relu y", y, y2, nx);
  same_words("bn_relu mask", mask, mask2, nx);
  same_floats("bn_relu mean", m, m2, (size_t)c);
  same_floats("bn_relu invstd", is, is2, (size_t)c);
  same_floats("bn_relu var", v, v2, (size_t)c);
  /* backward with the forward's statistics and an independent random mask */
  float *dy = floats(nx, 0.0f), *dx = floats(nx, NAN), *dg = floats((size_t)c, NAN);
  float *db = floats((size_t)c, NAN), *dz = floats(nx, NAN), *dx2 = floats(nx, NAN);
  float *dg2 = floats((size_t)c, NAN), *db2 = floats((size_t)c, NAN);
  uint32_t *bm = words(nx, 0);
  for (size_t i = 0; i < nx; i++)
    dy[i] = sym(st, 1.0);
  for (size_t i = 0; i < (nx + 31) / 32; i++)
    bm[i] = (uint32_t)next64(st);
  if (nx % 32)
    bm[nx / 32] &= ((uint32_t)1 << (nx % 32)) - 1;
  ck_assert_int_eq(be->bn_relu_backward(be, n, c, hw, dy, bm, x, g, m, is, dx, dg, db, &err),
                   AAL_OK);
  ck_assert_int_eq(be->relu_backward(be, nx, dy, bm, dz, &err), AAL_OK);
  ck_assert_int_eq(be->bn_backward(be, n, c, hw, dz, x, g, m, is, dx2, dg2, db2, &err), AAL_OK);
  same_floats("bn_relu dx", dx, dx2, nx);
  same_floats("bn_relu dgamma", dg, dg2, (size_t)c);
  same_floats("bn_relu dbeta", db, db2, (size_t)c);
  free(x), free(g), free(b), free(y), free(m), free(is), free(z), free(y2), free(m2);
  free(is2), free(v), free(v2), free(mask), free(mask2), free(dy), free(dx), free(dg), free(db), free(dz);
  free(dx2), free(dg2), free(db2), free(bm);
}

START_TEST(test_cpu32_fused_equals_unfused)
{
  aal_backend be = cpu32();
  uint64_t st = g_seed ^ 0x46555345u; /* "FUSE" */
  fprintf(stderr, "fused = unfused on cpu32: seed %lu\n", g_seed);
  for (int t = 0; t < 40; t++) {
    check_asa_input(&be, &st, (size_t)irange(&st, 1, 3000));
    int n = irange(&st, 1, 4), c = irange(&st, 1, 6), hw = irange(&st, 1, 40);
    if (n * hw < 2)
      hw = 2;
    check_bn_relu(&be, &st, n, c, hw);
  }
  check_asa_input(&be, &st, 64 * 32 * 32 + 17);
  check_bn_relu(&be, &st, 4, 16, 64);
  check_bn_relu(&be, &st, 2, 3, 7 * 7); /* channel rows not aligned to mask words */
  be.destroy(&be);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("kcheck");
  TCase *tc = tcase_create("kcheck");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_backend_open_and_shapes);
  tcase_add_test(tc, test_bad_options);
  tcase_add_test(tc, test_cpu32_resnet18);
  tcase_add_test(tc, test_cpu32_random);
  tcase_add_test(tc, test_cpu32_boundary);
  tcase_add_test(tc, test_ref_against_itself);
  tcase_add_test(tc, test_wrong_kernels_caught);
  tcase_add_test(tc, test_subtle_kernels_caught);
  tcase_add_test(tc, test_transformer_wrong_kernels_caught);
  tcase_add_test(tc, test_step_sees_momentum);
  tcase_add_test(tc, test_cpu32_fused_equals_unfused);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
