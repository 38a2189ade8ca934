/* The float32 CPU backend (aal_backend_cpu32): its ops, one file per op (named as in
 * sim/layers).
 * Buffers are plain host arrays: float[n] for values, uint32_t[ceil(n/32)] for bits
 * (the layout of kernels/backend.h), so tests may build variants of these kernels
 * on the same buffers. */
#ifndef AAL_CPU32_INTERNAL_H
#define AAL_CPU32_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/backend_check.h"
#include "sim/core/team.h"

/* kernels/cpu/conv.c: im2col + cblas_sgemm over chunks of images (one GEMM per chunk) */
int aal_cpu32_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                           const void *w, void *y, aal_error *err);
int aal_cpu32_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs,
                                 const void *dy, const void *w, void *dx, aal_error *err);
int aal_cpu32_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                   const void *x, const void *dy, void *dw, aal_error *err);
/* The same with an explicit cap on the im2col workspace in bytes (0: the default,
 * AAL_CPU32_CONV_WORKSPACE_BYTES), for tests that need several chunks on small shapes.
 * Results depend on the chunking only through the order of backward-filter's sum. */
#define AAL_CPU32_CONV_WORKSPACE_BYTES ((size_t)64 << 20)
int aal_cpu32_conv_forward_ws(const aal_conv_shape *cs, const void *x, const void *w, void *y,
                              size_t workspace_bytes, aal_error *err);
int aal_cpu32_conv_backward_data_ws(const aal_conv_shape *cs, const void *dy, const void *w,
                                    void *dx, size_t workspace_bytes, aal_error *err);
int aal_cpu32_conv_backward_filter_ws(const aal_conv_shape *cs, const void *x, const void *dy,
                                      void *dw, size_t workspace_bytes, aal_error *err);

/* kernels/cpu/backend.c: the backend's state (be->ctx, heap-allocated so that its address, which the
 * helpers hold, survives copies of the table: a copy shares it, only destroy frees it). */
typedef struct {
  aal_team team;
} aal_cpu32_state;

/* Fills every op and memory member of be with cpu32's (not name, ctx or destroy): the
 * table of aal_backend_cpu32, and the base of backends that replace some of its ops
 * (kernels/dnnl).  Such a backend's ctx must start with an aal_cpu32_state, whose team
 * cpu32's ops then use. */
void aal_cpu32_table(aal_backend *be);
/* The team of a cpu32 backend; NULL (single-threaded) when be or its ctx is NULL. */
aal_team *aal_cpu32_be_team(const aal_backend *be);
/* Restarts be's team with nthreads threads (1: every op single-threaded), for tests
 * that compare thread counts; fewer if helpers cannot be created.  No op of be may run
 * meanwhile.  Fails for a table that is not cpu32's or nthreads outside
 * [1, AAL_TEAM_MAX_THREADS]. */
int aal_backend_cpu32_threads(aal_backend *be, size_t nthreads, aal_error *err);
/* Threads of be's team, the calling thread included. */
size_t aal_backend_cpu32_thread_count(const aal_backend *be);

/* kernels/cpu/batchnorm.c */
/* n, c, hw >= 1 and N*HW >= 2 (training-mode statistics), or an error naming op. */
int aal_cpu32_bn_check_sizes(const char *op, int n, int c, int hw, aal_error *err);
int aal_cpu32_bn_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                         const void *gamma, const void *beta, double eps, void *y, void *mean,
                         void *invstd, void *var, aal_error *err);
int aal_cpu32_bn_forward_eval(const aal_backend *be, int n, int c, int hw, const void *x,
                              const void *gamma, const void *beta, const void *running_mean,
                              const void *running_var, double eps, void *y, aal_error *err);
int aal_cpu32_bn_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                          const void *x, const void *gamma, const void *mean,
                          const void *invstd, void *dx, void *dgamma, void *dbeta,
                          aal_error *err);
/* The statistics bn_forward uses for channel ch of x [n, c, hw]: the mean and the biased
 * variance (two-pass, in double), shared with kernels/cpu/bn_relu.c so that the fused op gets
 * the same numbers. */
void aal_cpu32_bn_channel_stats(const float *x, int n, int c, int hw, int ch, double *mean,
                                double *var);

/* Batch norm's per-channel sums, shared by batchnorm.c and bn_relu.c so that the fused
 * ops see the unfused ops' numbers bit for bit.  A sum over a channel's rows runs in
 * AAL_CPU32_LANES double accumulators, element k of a row (k counted from the row's
 * start) in lane k % AAL_CPU32_LANES, and the lanes are added in a fixed tree at the end
 * (aal_cpu32_lanes_total): independent chains instead of one, a sum of the same terms in
 * another fixed order (the harness's bounds take any order).  A caller that feeds a row
 * in pieces starts each piece at a multiple of AAL_CPU32_LANES. */
#define AAL_CPU32_LANES 8

static inline double aal_cpu32_lanes_total(const double acc[AAL_CPU32_LANES])
{
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* acc[lane] += x[k] over x[0..len) */
static inline void aal_cpu32_sum_lanes(const float *x, size_t len, double acc[AAL_CPU32_LANES])
{
  size_t k = 0;
  for (; k + AAL_CPU32_LANES <= len; k += AAL_CPU32_LANES)
    for (int l = 0; l < AAL_CPU32_LANES; l++)
      acc[l] += x[k + l];
  for (; k < len; k++)
    acc[k % AAL_CPU32_LANES] += x[k];
}

/* d = x[k] - m (double): sd[lane] += d, sd2[lane] += d d over x[0..len) */
static inline void aal_cpu32_dev_lanes(const float *x, size_t len, double m,
                                       double sd[AAL_CPU32_LANES], double sd2[AAL_CPU32_LANES])
{
  size_t k = 0;
  for (; k + AAL_CPU32_LANES <= len; k += AAL_CPU32_LANES)
    for (int l = 0; l < AAL_CPU32_LANES; l++) {
      const double d = x[k + l] - m;
      sd[l] += d;
      sd2[l] += d * d;
    }
  for (; k < len; k++) {
    const double d = x[k] - m;
    sd[k % AAL_CPU32_LANES] += d;
    sd2[k % AAL_CPU32_LANES] += d * d;
  }
}

/* Backward sums over dz[0..len), x[0..len): sdy[lane] += dz,
 * sxh[lane] += dz ((x - m) is) (double) */
static inline void aal_cpu32_bwd_lanes(const float *dz, const float *x, size_t len, float m,
                                       float is, double sdy[AAL_CPU32_LANES],
                                       double sxh[AAL_CPU32_LANES])
{
  size_t k = 0;
  for (; k + AAL_CPU32_LANES <= len; k += AAL_CPU32_LANES)
    for (int l = 0; l < AAL_CPU32_LANES; l++) {
      sdy[l] += dz[k + l];
      sxh[l] += (double)dz[k + l] * (((double)x[k + l] - m) * is);
    }
  for (; k < len; k++) {
    sdy[k % AAL_CPU32_LANES] += dz[k];
    sxh[k % AAL_CPU32_LANES] += (double)dz[k] * (((double)x[k] - m) * is);
  }
}

/* y[0..len) = (x - m) s + b in float (bn_forward's apply), 32 at a time. */
static inline void aal_cpu32_bn_apply(const float *x, size_t len, float m, float s, float b,
                                      float *y)
{
  size_t k = 0;
  for (; k + 32 <= len; k += 32) {
    float v[32], r[32];
    memcpy(v, x + k, sizeof v);
    for (int t = 0; t < 32; t++)
      r[t] = (v[t] - m) * s + b;
    memcpy(y + k, r, sizeof r);
  }
  for (; k < len; k++)
    y[k] = (x[k] - m) * s + b;
}

/* dx[0..len) = g (dz - b - (x - m) is cc) in float (bn_backward's dx), 32 at a time. */
static inline void aal_cpu32_bn_dx(const float *dz, const float *x, size_t len, float g,
                                   float b, float m, float is, float cc, float *dx)
{
  size_t k = 0;
  for (; k + 32 <= len; k += 32) {
    float vz[32], vx[32], r[32];
    memcpy(vz, dz + k, sizeof vz);
    memcpy(vx, x + k, sizeof vx);
    for (int t = 0; t < 32; t++)
      r[t] = g * (vz[t] - b - (vx[t] - m) * is * cc);
    memcpy(dx + k, r, sizeof r);
  }
  for (; k < len; k++)
    dx[k] = g * (dz[k] - b - (x[k] - m) * is * cc);
}

/* kernels/cpu/bn_relu.c: batch norm + ReLU, fused (bit-identical to bn_forward + relu_forward,
 * relu_backward + bn_backward) */
int aal_cpu32_bn_relu_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                              const void *gamma, const void *beta, double eps, void *y,
                              void *mask, void *mean, void *invstd, void *var,
                              aal_error *err);
int aal_cpu32_bn_relu_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                               const void *mask, const void *x, const void *gamma,
                               const void *mean, const void *invstd, void *dx, void *dgamma,
                               void *dbeta, aal_error *err);

/* kernels/cpu/relu.c: ReLU with its mask */
int aal_cpu32_relu_forward(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                           aal_error *err);
int aal_cpu32_relu_backward(const aal_backend *be, size_t n, const void *dy, const void *mask,
                            void *dx, aal_error *err);

/* kernels/cpu/asa.c: ASA sign packing, the fused ASA input, the lr_expansion scale */
int aal_cpu32_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                        aal_error *err);
int aal_cpu32_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                          void *out, aal_error *err);
/* fused: bits = (x > 0), h = x + (bit ? (float)eps : 0) */
int aal_cpu32_asa_input(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                        void *bits, aal_error *err);
int aal_cpu32_scale(const aal_backend *be, size_t n, const void *x, double s, void *y,
                    aal_error *err);

/* Word-split loops over packed bits, shared by kernels/cpu/relu.c and kernels/cpu/asa.c.
 * Bits: uint32 words, element i in bit i%32 of word i/32; a word is assembled in a
 * register and stored once, so the unused high bits of the last word are zero.
 * Threads (the backend's team, aal_team_par_for): every op is split over whole mask
 * words (word j and its elements 32j .. 32j+31), so no two threads write one word;
 * each element's arithmetic is the single-threaded one, whatever the thread count.
 * Inline: they sit in the inner loops of both files. */

/* Blocks of 32 elements (one mask word) that GCC vectorizes at -O2 (fixed trip count;
 * bit t from a table, not a shift by the loop counter; selects written as bit masks;
 * the caller's arrays copied through locals, so that an in-place call, y == x, stays
 * correct without restrict).  Each element's arithmetic is the scalar one, so results
 * are those of the element-by-element loops they replace, bit for bit. */
static const uint32_t aal_cpu32_bit[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

/* The mask word of v[0..31] > 0 (NaN and -0 give 0). */
static inline uint32_t aal_cpu32_positive32(const float v[32])
{
  uint32_t word = 0;
  for (int t = 0; t < 32; t++)
    word |= aal_cpu32_bit[t] & -(uint32_t)(v[t] > 0.0f);
  return word;
}

/* y[0..31] = max(x, 0) as x > 0 ? x : +0 (NaN and -0 give +0); returns the mask word. */
static inline uint32_t aal_cpu32_relu32(const float *x, float *y)
{
  float v[32], r[32];
  memcpy(v, x, sizeof v);
  for (int t = 0; t < 32; t++)
    r[t] = v[t] > 0.0f ? v[t] : 0.0f;
  memcpy(y, r, sizeof r);
  return aal_cpu32_positive32(v);
}

/* out[0..31] = bit t of word ? in[t] : +0 (the value's bits kept, NaN included). */
static inline void aal_cpu32_gate32(const float *in, uint32_t word, float *out)
{
  uint32_t u[32];
  memcpy(u, in, sizeof u);
  for (int t = 0; t < 32; t++)
    u[t] &= -(uint32_t)((word & aal_cpu32_bit[t]) != 0);
  memcpy(out, u, sizeof u);
}

/* Word j of the mask of x > 0 (elements 32j .. min(32j + 32, n) - 1). */
static inline uint32_t aal_cpu32_positive_word(const float *x, size_t n, size_t j)
{
  const size_t lo = 32 * j, hi = lo + 32 < n ? lo + 32 : n;
  if (hi - lo == 32) {
    float v[32];
    memcpy(v, x + lo, sizeof v);
    return aal_cpu32_positive32(v);
  }
  uint32_t word = 0;
  for (size_t i = lo; i < hi; i++)
    word |= (uint32_t)(x[i] > 0.0f) << (i - lo);
  return word;
}

/* Elements [*lo, *hi) of mask words [wlo, whi) over n elements. */
static inline void aal_cpu32_word_elements(size_t n, size_t wlo, size_t whi, size_t *lo,
                                           size_t *hi)
{
  *lo = 32 * wlo < n ? 32 * wlo : n;
  *hi = 32 * whi < n ? 32 * whi : n;
}

/* The arguments of a word-split loop: n elements, x/dy/bits in, y/h/dx/bits/out out. */
typedef struct {
  size_t n;
  const float *x;
  const uint32_t *in_words;
  float e;
  float *y;
  uint32_t *out_words;
} aal_cpu32_bits_ctx;

static inline int aal_cpu32_bits_args(const char *op, size_t n, const void *a, const void *b,
                                      aal_error *err)
{
  int rc = aal_be_check_count(op, n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "input, output", err, 2, a, b);
  return rc;
}

/* kernels/cpu/add.c */
int aal_cpu32_add(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                  aal_error *err);

/* kernels/cpu/pool.c: global average pooling */
int aal_cpu32_avgpool_forward(const aal_backend *be, int rows, int hw, const void *x, void *y,
                              aal_error *err);
int aal_cpu32_avgpool_backward(const aal_backend *be, int rows, int hw, const void *dy,
                               void *dx, aal_error *err);
/* kernels/cpu/pool.c: 2-d max pooling (the winner rule of sim/layers/pool.c) */
int aal_cpu32_maxpool_forward(const aal_backend *be, int n, int c, int h, int w, int k,
                              int stride, int pad, const void *x, void *y, aal_error *err);
int aal_cpu32_maxpool_backward(const aal_backend *be, int n, int c, int h, int w, int k,
                               int stride, int pad, const void *dy, const void *x, void *dx,
                               aal_error *err);

/* kernels/cpu/linear.c: linear layer.  The _with forms take the row-major sgemm,
 * c = op(a) op(b) + beta c (alpha 1; op transposes when trans_* is 1), which returns
 * AAL_OK or an error naming op: cpu32 gives OpenBLAS's, dnnl oneDNN's. */
typedef int (*aal_cpu32_gemm_fn)(int trans_a, int trans_b, int m, int n, int k, const float *a,
                                 int lda, const float *b, int ldb, float beta, float *c,
                                 int ldc, const char *op, aal_error *err);
int aal_cpu32_linear_forward_with(aal_cpu32_gemm_fn gemm, const char *op, int n, int in,
                                  int out, const void *x, const void *w, const void *b, void *y,
                                  aal_error *err);
int aal_cpu32_linear_backward_with(aal_cpu32_gemm_fn gemm, const char *op, int n, int in,
                                   int out, const void *dy, const void *x, const void *w,
                                   void *dx, void *dw, void *db, aal_error *err);
int aal_cpu32_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                             const void *w, const void *b, void *y, aal_error *err);
int aal_cpu32_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                              const void *x, const void *w, void *dx, void *dw, void *db,
                              aal_error *err);

/* kernels/cpu/xent.c: softmax cross-entropy */
int aal_cpu32_xent_forward(const aal_backend *be, int n, int classes, const void *logits,
                           const int *labels, double *loss, void *prob, aal_error *err);
int aal_cpu32_xent_backward(const aal_backend *be, int n, int classes, const void *prob,
                            const int *labels, void *dlogits, aal_error *err);

/* kernels/cpu/li.c: LI reduction */
int aal_cpu32_li_reduce(const aal_backend *be, int n, size_t per, const void *h, const void *r,
                        void *li, aal_error *err);

/* kernels/cpu/sgd.c: SGD */
int aal_cpu32_sgd_update(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                         double lr, double momentum, double weight_decay, int first,
                         aal_error *err);

/* The Transformer ops (issue 17), one file each as in sim/layers.
 * kernels/cpu/layernorm.c */
int aal_cpu32_layernorm_forward(const aal_backend *be, int m, int d, const void *x,
                                const void *gamma, const void *beta, double eps, void *y,
                                void *mean, void *invstd, aal_error *err);
int aal_cpu32_layernorm_backward(const aal_backend *be, int m, int d, const void *dy,
                                 const void *x, const void *gamma, const void *mean,
                                 const void *invstd, void *dx, void *dgamma, void *dbeta,
                                 aal_error *err);
/* kernels/cpu/gelu.c */
int aal_cpu32_gelu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                           aal_error *err);
int aal_cpu32_gelu_backward(const aal_backend *be, size_t n, const void *dy, const void *x,
                            void *dx, aal_error *err);
/* kernels/cpu/softmax.c; the row loops are shared with attention.c: rows lo..hi-1 of
 * [.., d] (y may be x; dx may be dy) */
int aal_cpu32_softmax_forward(const aal_backend *be, int m, int d, const void *x, void *y,
                              aal_error *err);
int aal_cpu32_softmax_backward(const aal_backend *be, int m, int d, const void *dy,
                               const void *y, void *dx, aal_error *err);
void aal_cpu32_softmax_rows(const float *x, float *y, size_t lo, size_t hi, size_t d);
void aal_cpu32_softmax_backward_rows(const float *dy, const float *y, float *dx, size_t lo,
                                     size_t hi, size_t d);
/* kernels/cpu/attention.c */
int aal_cpu32_attention_forward(const aal_backend *be, int b, int t, int heads, int dh,
                                const void *q, const void *k, const void *v, void *p, void *o,
                                aal_error *err);
int aal_cpu32_attention_backward(const aal_backend *be, int b, int t, int heads, int dh,
                                 const void *dout, const void *q, const void *k, const void *v,
                                 const void *p, void *dq, void *dk, void *dv, aal_error *err);
/* kernels/cpu/embed.c: token embedding and patchify */
int aal_cpu32_embed_forward(const aal_backend *be, int b, int t, int vocab, int d,
                            const int *ids, const void *table, const void *pos, void *y,
                            aal_error *err);
int aal_cpu32_embed_backward(const aal_backend *be, int b, int t, int vocab, int d,
                             const int *ids, const void *dy, void *dtable, void *dpos,
                             aal_error *err);
int aal_cpu32_patchify_forward(const aal_backend *be, int b, int c, int h, int w, int p,
                               const void *x, void *y, aal_error *err);
int aal_cpu32_patchify_backward(const aal_backend *be, int b, int c, int h, int w, int p,
                                const void *dy, void *dx, aal_error *err);
/* kernels/cpu/transpose.c */
int aal_cpu32_transpose(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                        aal_error *err);

#endif
