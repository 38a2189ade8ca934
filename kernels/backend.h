/* One op table, several backends (ARCHITECTURE "one model, one loop, several backends";
 * SPEC section 8).
 *
 * A backend owns its memory: buffers are opaque pointers (host floats for cpu32, device
 * floats for cuda, host doubles for the reference) created by alloc and moved with
 * upload/download, which convert from/to double (upload rounds to the backend's
 * precision).  Bit buffers hold ReLU masks and ASA signs.
 * Packed bits are ceil(n/32) uint32 words, element i in bit i%32 of word i/32: one
 * layout for sim's BITS tensors and every backend's bit buffers, so that they cross
 * without conversion and compare bit for bit.
 * Shapes are plain integers; layouts are NCHW activations and OIHW weights, as in sim/.
 * Every op returns an aal_status and fills err (naming the op and the failing call).
 *
 * The ops: conv (forward, backward-data, backward-filter), batch norm (forward,
 * backward), ReLU (forward, backward), add, average pooling and 2-d max pooling
 * (forward, backward), linear (forward, backward), softmax cross-entropy (forward,
 * backward), ASA signs (pack, unpack), LI, SGD, three fused ops appended after them,
 * and the Transformer ops after those (layer norm, GELU, softmax, attention, embedding,
 * patchify, transpose):
 *   asa_input         sign_pack + sign_unpack + add in one pass: bits = (x > 0),
 *                     h[i] = x[i] + (bit ? eps_r : 0), eps_r = eps rounded once to the
 *                     backend's precision (float for cpu32 and cuda, eps itself for ref),
 *                     the sum rounded once: exactly add(x, sign_unpack(sign_pack(x)));
 *   bn_relu_forward   bn_forward then relu_forward (z never stored);
 *   bn_relu_backward  relu_backward then bn_backward (dz never stored).
 * Each fused op must equal the unfused composition on the same backend bit for bit
 * (kcheck checks it, besides the bound against the reference). */
#ifndef AAL_BACKEND_H
#define AAL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "sim/core/error.h"

typedef struct {
  int n, c, h, w;       /* input  [n, c, h, w] */
  int k, r, s;          /* weight [k, c, r, s] */
  int stride, pad;
  int p, q;             /* output [n, k, p, q]: (h + 2 pad - r) / stride + 1, ... */
} aal_conv_shape;

/* Fills p and q; fails (naming the sizes) for non-positive sizes, stride < 1, pad < 0 or
 * an empty output. */
int aal_conv_shape_init(aal_conv_shape *cs, aal_error *err);

/* Max pooling's output size along one axis (PyTorch, ceil_mode False):
 * (in + 2 pad - k) / stride + 1, or 0 where the geometry is refused (in, k or stride
 * < 1, pad < 0 or > k/2, k > in + 2 pad) -- sim/layers' aal_maxpool2d_output_size, here
 * for the backends (the CUDA one cannot include sim/layers). */
static inline int aal_pool_out(int in, int k, int stride, int pad)
{
  if (in < 1 || k < 1 || stride < 1 || pad < 0 || pad > k / 2 || (long long)in + 2LL * pad < k)
    return 0;
  return (int)(((long long)in + 2LL * pad - k) / stride + 1);
}

typedef struct aal_backend aal_backend;

struct aal_backend {
  const char *name;     /* "ref", "cpu32", "dnnl", "cuda" */
  int precision_bits;   /* significand bits: 53 (ref) or 24 (float32) */
  void *ctx;            /* the backend's own state (threads, cuBLAS handle, ...) */

  /* ---- memory: n elements of the backend's precision, or n bits for *_bits */
  int (*alloc)(const aal_backend *be, size_t n, void **buf, aal_error *err);
  int (*alloc_bits)(const aal_backend *be, size_t n, void **buf, aal_error *err);
  void (*release)(const aal_backend *be, void *buf);
  int (*upload)(const aal_backend *be, void *buf, const double *host, size_t n, aal_error *err);
  int (*download)(const aal_backend *be, double *host, const void *buf, size_t n,
                  aal_error *err);
  int (*upload_bits)(const aal_backend *be, void *buf, const uint32_t *words, size_t n,
                     aal_error *err);
  int (*download_bits)(const aal_backend *be, uint32_t *words, const void *buf, size_t n,
                       aal_error *err);

  /* ---- conv2d (no bias); outputs overwritten */
  int (*conv_forward)(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                      const void *w, void *y, aal_error *err);
  int (*conv_backward_data)(const aal_backend *be, const aal_conv_shape *cs, const void *dy,
                            const void *w, void *dx, aal_error *err);
  int (*conv_backward_filter)(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                              const void *dy, void *dw, aal_error *err);

  /* ---- batch norm, training mode: x, y, dy, dx [n, c, hw]; per-channel vectors [c].
   * Forward returns mean, invstd = 1/sqrt(var + eps) (what backward needs) and var, the
   * biased batch variance (what the running statistics need; the caller updates them
   * from mean and var, not part of the op, and rebuilds nothing). */
  int (*bn_forward)(const aal_backend *be, int n, int c, int hw, const void *x,
                    const void *gamma, const void *beta, double eps, void *y, void *mean,
                    void *invstd, void *var, aal_error *err);
  int (*bn_backward)(const aal_backend *be, int n, int c, int hw, const void *dy,
                     const void *x, const void *gamma, const void *mean, const void *invstd,
                     void *dx, void *dgamma, void *dbeta, aal_error *err);
  /* ---- batch norm, evaluation mode: y = (x - running_mean) gamma / sqrt(running_var +
   * eps) + beta per channel (nothing updated).  The caller checks the running
   * statistics (finite, var >= 0); y may alias x. */
  int (*bn_forward_eval)(const aal_backend *be, int n, int c, int hw, const void *x,
                         const void *gamma, const void *beta, const void *running_mean,
                         const void *running_var, double eps, void *y, aal_error *err);

  /* ---- ReLU with a packed mask (bit 1 where x > 0) */
  int (*relu_forward)(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                      aal_error *err);
  int (*relu_backward)(const aal_backend *be, size_t n, const void *dy, const void *mask,
                       void *dx, aal_error *err);

  /* ---- elementwise add, global average pooling ([rows, hw] -> [rows]) */
  int (*add)(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
             aal_error *err);
  /* ---- y = s * x, one rounded product with s in double (y may alias x): the ASA
   * lr_expansion scale of a weight gradient */
  int (*scale)(const aal_backend *be, size_t n, const void *x, double s, void *y,
               aal_error *err);
  int (*avgpool_forward)(const aal_backend *be, int rows, int hw, const void *x, void *y,
                         aal_error *err);
  int (*avgpool_backward)(const aal_backend *be, int rows, int hw, const void *dy, void *dx,
                          aal_error *err);

  /* ---- 2-d max pooling (PyTorch's MaxPool2d(k, stride, pad), ceil_mode False):
   * x, dx [n, c, h, w]; y, dy [n, c, p, q] with p = aal_pool_out(h, k, stride, pad),
   * q = aal_pool_out(w, ...).  y = x at each window's winner: padding never wins; in
   * row-major scan order (kh outer, kw inner) the first input position starts as the
   * winner and a later one takes over iff its value is > the running maximum or is NaN
   * (ties: the first; sim/layers/pool.c).  Backward takes the forward's input x,
   * recomputes the winners and writes dx = sum over windows of dy at their winners
   * (overwritten; overlapping windows add).  Arguments: sizes >= 1, k >= 1, stride >= 1,
   * 0 <= pad <= k/2, p, q >= 1. */
  int (*maxpool_forward)(const aal_backend *be, int n, int c, int h, int w, int k, int stride,
                         int pad, const void *x, void *y, aal_error *err);
  int (*maxpool_backward)(const aal_backend *be, int n, int c, int h, int w, int k,
                          int stride, int pad, const void *dy, const void *x, void *dx,
                          aal_error *err);

  /* ---- linear: x [n, in], w [out, in], b [out], y [n, out]; dx may be NULL */
  int (*linear_forward)(const aal_backend *be, int n, int in, int out, const void *x,
                        const void *w, const void *b, void *y, aal_error *err);
  int (*linear_backward)(const aal_backend *be, int n, int in, int out, const void *dy,
                         const void *x, const void *w, void *dx, void *dw, void *db,
                         aal_error *err);

  /* ---- softmax cross-entropy: logits, prob, dlogits [n, classes]; labels on the host;
   * the mean loss is returned on the host in double */
  int (*xent_forward)(const aal_backend *be, int n, int classes, const void *logits,
                      const int *labels, double *loss, void *prob, aal_error *err);
  int (*xent_backward)(const aal_backend *be, int n, int classes, const void *prob,
                       const int *labels, void *dlogits, aal_error *err);

  /* ---- ASA: bits = (x > 0); out = eps * bit (inputs that follow a ReLU, SPEC 4) */
  int (*sign_pack)(const aal_backend *be, size_t n, const void *x, void *bits,
                   aal_error *err);
  int (*sign_unpack)(const aal_backend *be, size_t n, const void *bits, double eps, void *out,
                     aal_error *err);

  /* ---- ASA conv input, fused (SPEC 4; x follows a ReLU): bits = (x > 0) and
   * h = x + eps * bit, in one pass over x */
  int (*asa_input)(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                   void *bits, aal_error *err);
  /* ---- batch norm (training mode, as bn_forward) followed by ReLU, fused:
   * z = bn(x); y = max(z, 0); mask bit = (z > 0).  mean/invstd/var as bn_forward.
   * Must equal bn_forward then relu_forward on the same backend bit for bit. */
  int (*bn_relu_forward)(const aal_backend *be, int n, int c, int hw, const void *x,
                         const void *gamma, const void *beta, double eps, void *y,
                         void *mask, void *mean, void *invstd, void *var, aal_error *err);
  /* ---- the backward of bn_relu_forward: dz = dy * mask, then bn_backward(dz).
   * Must equal relu_backward then bn_backward on the same backend bit for bit. */
  int (*bn_relu_backward)(const aal_backend *be, int n, int c, int hw, const void *dy,
                          const void *mask, const void *x, const void *gamma,
                          const void *mean, const void *invstd, void *dx, void *dgamma,
                          void *dbeta, aal_error *err);

  /* ---- learning indicator per sample: h, r [n, per] -> li [n]; a sample with h = 0
   * gets NaN in li (the caller counts it; never a made-up value) */
  int (*li_reduce)(const aal_backend *be, int n, size_t per, const void *h, const void *r,
                   void *li, aal_error *err);

  /* ---- SGD with momentum and weight decay (PyTorch): d = g + wd w;
   * buf = first ? d : momentum buf + d; w -= lr buf */
  int (*sgd_update)(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                    double lr, double momentum, double weight_decay, int first,
                    aal_error *err);

  /* ---- Transformer ops (issue 17; sim/layers/transformer.h says what each computes).
   * Appended after the ResNet's, like the fused ops.  Sizes >= 1; outputs overwritten.
   * layer norm over the last dimension: x, y, dy, dx [m, d]; gamma, beta, dgamma,
   *   dbeta [d]; mean, invstd [m] (biased variance, eps > 0) */
  int (*layernorm_forward)(const aal_backend *be, int m, int d, const void *x,
                           const void *gamma, const void *beta, double eps, void *y,
                           void *mean, void *invstd, aal_error *err);
  int (*layernorm_backward)(const aal_backend *be, int m, int d, const void *dy, const void *x,
                            const void *gamma, const void *mean, const void *invstd, void *dx,
                            void *dgamma, void *dbeta, aal_error *err);
  /* GELU, exact erf form: x, y, dy, dx [n]; backward from x */
  int (*gelu_forward)(const aal_backend *be, size_t n, const void *x, void *y, aal_error *err);
  int (*gelu_backward)(const aal_backend *be, size_t n, const void *dy, const void *x, void *dx,
                       aal_error *err);
  /* softmax along the last dimension: x, y, dy, dx [m, d]; backward from y */
  int (*softmax_forward)(const aal_backend *be, int m, int d, const void *x, void *y,
                         aal_error *err);
  int (*softmax_backward)(const aal_backend *be, int m, int d, const void *dy, const void *y,
                          void *dx, aal_error *err);
  /* multi-head attention: q, k, v, o, dout, dq, dk, dv [b, t, heads dh]; p [b, heads, t, t] */
  int (*attention_forward)(const aal_backend *be, int b, int t, int heads, int dh,
                           const void *q, const void *k, const void *v, void *p, void *o,
                           aal_error *err);
  int (*attention_backward)(const aal_backend *be, int b, int t, int heads, int dh,
                            const void *dout, const void *q, const void *k, const void *v,
                            const void *p, void *dq, void *dk, void *dv, aal_error *err);
  /* token embedding: ids [b t] on the host (as xent's labels) in 0..vocab-1; table, dtable
   * [vocab, d]; pos, dpos [t, d] (NULL: none); y, dy [b, t, d] */
  int (*embed_forward)(const aal_backend *be, int b, int t, int vocab, int d, const int *ids,
                       const void *table, const void *pos, void *y, aal_error *err);
  int (*embed_backward)(const aal_backend *be, int b, int t, int vocab, int d, const int *ids,
                        const void *dy, void *dtable, void *dpos, aal_error *err);
  /* patchify: x, dx [b, c, h, w] <-> y, dy [b, (h/p) (w/p), c p p]; p divides h and w */
  int (*patchify_forward)(const aal_backend *be, int b, int c, int h, int w, int p,
                          const void *x, void *y, aal_error *err);
  int (*patchify_backward)(const aal_backend *be, int b, int c, int h, int w, int p,
                           const void *dy, void *dx, aal_error *err);
  /* transpose of the last two dimensions: x [b, a, c] -> y [b, c, a] (its own backward) */
  int (*transpose)(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                   aal_error *err);

  void (*destroy)(aal_backend *be);
};

/* Backends: fill *be; destroy with be->destroy(be). */
int aal_backend_ref(aal_backend *be, aal_error *err);
int aal_backend_cpu32(aal_backend *be, aal_error *err);
/* Fails with AAL_EINVAL and a message saying why when built without CUDA or when no
 * device is present. */
int aal_backend_cuda(aal_backend *be, aal_error *err);
/* cpu32's table with the three convolutions run by oneDNN primitives (kernels/dnnl).
 * Fails with AAL_EINVAL and a message naming the Debian package when built without
 * oneDNN (configure --with-dnnl). */
int aal_backend_dnnl(aal_backend *be, aal_error *err);
/* By name: "ref", "cpu32", "dnnl", "cuda". */
int aal_backend_open(const char *name, aal_backend *be, aal_error *err);

#endif
