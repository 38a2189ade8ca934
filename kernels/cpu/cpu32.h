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

/* Word j of the mask of x > 0 (elements 32j .. min(32j + 32, n) - 1). */
static inline uint32_t aal_cpu32_positive_word(const float *x, size_t n, size_t j)
{
  const size_t lo = 32 * j, hi = lo + 32 < n ? lo + 32 : n;
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

/* kernels/cpu/linear.c: linear layer */
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
