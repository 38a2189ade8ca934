/* The reference layers of Transformer-like networks (issue 17, item 1), double precision,
 * one file each in sim/layers (layernorm.c, gelu.c, softmax.c, attention.c, embed.c,
 * transpose.c), forward and backward side by side.  As in layers.h: outputs are
 * allocated by the caller with the exact shape and overwritten, every function checks its
 * arguments (its aal_*_args contract, op naming the caller in the messages) and returns
 * an aal_status with a message naming the op.
 *
 * Dimension letters: B batch, T tokens (sequence length), D model width, H heads, dh the
 * width of a head (E = H dh), V vocabulary, M rows (= B T where a layer works per token),
 * C, Hi, Wi an image's channels and size, p the patch size, N = (Hi/p)(Wi/p) patches.
 *
 * What each layer's backward reads (what a tape saves):
 *   layernorm   x, mean [M], invstd [M] (and the parameter gamma)
 *   gelu        x
 *   softmax     y (its output)
 *   attention   q, k, v and P [B, H, T, T] (the softmax of the scores)
 *   embed       the token ids (ints) only; patchify nothing (a reshape)
 *   transpose   nothing
 *
 * Composite steps, built from these and the layers of layers.h:
 *   patch embedding     patchify (below) then linear over the last dimension C p p
 *                       (its weight [D, C p p] is PyTorch's Conv2d(C, D, p, stride p)
 *                       weight [D, C, p, p] flattened in the same order);
 *   MLP-Mixer token mixing  x [B, T, D] -> transpose -> [B, D, T] -> linear over T
 *                       (rows B D) -> [B, D, T] -> transpose -> [B, T, D].
 * aal_linear_* takes rank-2 tensors: [B, N, C p p] and [B, D, T] enter it as
 * [B N, C p p] and [B D, T], the same row-major bytes (a model needs a reshape of a
 * tensor's shape for that; sim/core has none yet, so the tests copy). */
#ifndef AAL_TRANSFORMER_H
#define AAL_TRANSFORMER_H

#include "sim/core/tensor.h"

/* 1 when a and b are one tensor or share host storage (tensors at a home have no host
 * data and their own buffers): the aliasing the contracts below refuse. */
static inline int aal_tensor_shares(const aal_tensor *a, const aal_tensor *b)
{
  return a == b || (a->data != NULL && a->data == b->data);
}

/* The contract of a row tensor [.., D] (layer norm's and softmax's x, y, dy, dx): F64,
 * rank 1..4; messages name op and name. */
static inline int aal_rows_check(const aal_tensor *t, const char *op, const char *name,
                                 aal_error *err)
{
  int rc = aal_tensor_check(t, AAL_F64, 0, NULL, op, name, NULL, err);
  if (rc == AAL_OK && (t->ndim < 1 || t->ndim > 4))
    rc = aal_fail(err, AAL_ESHAPE, "%s: %s has rank %d, must be 1..4", op, name, t->ndim);
  return rc;
}

/* ---- layer normalisation over the last dimension (PyTorch's nn.LayerNorm(D)) -------
 *   x, y, dy, dx [.., D] (rank 1..4, M = size / D rows);  gamma, beta, dgamma, dbeta [D];
 *   mean, invstd [M].
 * Per row: mean = sum x / D, var = sum (x - mean)^2 / D (biased, two passes),
 *   invstd = 1 / sqrt(var + eps), y = gamma (x - mean) invstd + beta.
 * Backward, with xhat = (x - mean) invstd and g = dy gamma:
 *   dx = invstd (g - mean_D(g) - xhat mean_D(g xhat)),  dgamma = sum_M dy xhat,
 *   dbeta = sum_M dy.
 * eps must be finite and > 0 (AAL_LN_EPS, PyTorch's default). */
#define AAL_LN_EPS 1e-5
int aal_layernorm_forward(const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *beta,
                          double eps, aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                          aal_error *err);
int aal_layernorm_backward(const aal_tensor *dy, const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *mean, const aal_tensor *invstd, aal_tensor *dx,
                           aal_tensor *dgamma, aal_tensor *dbeta, aal_error *err);
int aal_layernorm_forward_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                               const aal_tensor *beta, double eps, const aal_tensor *y,
                               const aal_tensor *mean, const aal_tensor *invstd,
                               aal_error *err);
int aal_layernorm_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                                const aal_tensor *gamma, const aal_tensor *mean,
                                const aal_tensor *invstd, const aal_tensor *dx,
                                const aal_tensor *dgamma, const aal_tensor *dbeta,
                                aal_error *err);

/* ---- GELU, the exact erf form (PyTorch's nn.GELU(), approximate='none') ------------
 *   x, y, dy, dx of one shape (any).  y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2.
 *   Backward from the saved input: dx = dy gelu'(x), gelu'(x) = Phi(x) + x phi(x),
 *   phi(x) = exp(-x^2 / 2) / sqrt(2 pi).  y may be x, dx may be dy (elementwise). */
int aal_gelu_forward(const aal_tensor *x, aal_tensor *y, aal_error *err);
int aal_gelu_backward(const aal_tensor *dy, const aal_tensor *x, aal_tensor *dx,
                      aal_error *err);
int aal_gelu_args(const char *op, const aal_tensor *a, const aal_tensor *b,
                  const aal_tensor *c, aal_error *err);
/* gelu'(x) (for the tests and the kernels' documentation) */
double aal_gelu_deriv(double x);

/* ---- softmax along the last dimension -----------------------------------------------
 *   x, y, dy, dx [.., D] (rank 1..4, M = size / D rows).
 * Per row: y = exp(x - max x) / sum exp(x - max x) (the max subtracted: no overflow).
 * A NaN in a row makes the row NaN, as in PyTorch (no error).
 * Backward from the saved output y: dx = y (dy - sum_D(dy y)).
 * y may be x and dx may be dy (row by row: each row is read before it is written). */
int aal_softmax_forward(const aal_tensor *x, aal_tensor *y, aal_error *err);
int aal_softmax_backward(const aal_tensor *dy, const aal_tensor *y, aal_tensor *dx,
                         aal_error *err);
int aal_softmax_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                             aal_error *err);
int aal_softmax_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *y,
                              const aal_tensor *dx, aal_error *err);

/* ---- multi-head scaled dot-product attention (no mask) -------------------------------
 *   q, k, v, o, dout, dq, dk, dv [B, T, E], E = H dh (head h is columns h dh .. h dh +
 *   dh - 1, PyTorch's layout after the projections);  p [B, H, T, T].
 * Per (b, h), with Q, K, V the [T, dh] slices:
 *   S = Q K^T / sqrt(dh),  P = softmax(S) (aal_softmax_forward, row-wise),  O = P V.
 * Forward writes o and p; p is what backward reads besides q, k, v (save all four).
 * Backward: dP = dO V^T, dS = softmax backward(P, dP) (aal_softmax_backward),
 *   dQ = dS K / sqrt(dh), dK = dS^T Q / sqrt(dh), dV = P^T dO.
 * The products are cblas_dgemm on strided slices; nothing is fused, so the tape sees the
 * composition.  heads >= 1 and must divide E; outputs must not share storage with
 * inputs. */
int aal_attention_forward(const aal_tensor *q, const aal_tensor *k, const aal_tensor *v,
                          int heads, aal_tensor *p, aal_tensor *o, aal_error *err);
int aal_attention_backward(const aal_tensor *dout, const aal_tensor *q, const aal_tensor *k,
                           const aal_tensor *v, const aal_tensor *p, int heads,
                           aal_tensor *dq, aal_tensor *dk, aal_tensor *dv, aal_error *err);
int aal_attention_forward_args(const char *op, const aal_tensor *q, const aal_tensor *k,
                               const aal_tensor *v, int heads, const aal_tensor *p,
                               const aal_tensor *o, aal_error *err);
int aal_attention_backward_args(const char *op, const aal_tensor *dout, const aal_tensor *q,
                                const aal_tensor *k, const aal_tensor *v,
                                const aal_tensor *p, int heads, const aal_tensor *dq,
                                const aal_tensor *dk, const aal_tensor *dv, aal_error *err);

/* ---- token embedding (embed.c) -------------------------------------------------------
 *   ids [B, T] ints (B T of them, row-major) in 0..V-1;  table, dtable [V, D];
 *   pos, dpos [T, D] (a learned position embedding; may be NULL: none);  y, dy [B, T, D].
 * y[b, t] = table[ids[b, t]] + pos[t].
 * Backward: dtable = scatter-add of dy rows at their ids (zeroed first; a repeated id
 *   adds up), dpos = sum_b dy[b] (when dpos is non-NULL).  An id outside 0..V-1 is an
 *   error (AAL_EINVAL) naming the position. */
int aal_embed_forward(const int *ids, const aal_tensor *table, const aal_tensor *pos,
                      aal_tensor *y, aal_error *err);
int aal_embed_backward(const int *ids, const aal_tensor *dy, aal_tensor *dtable,
                       aal_tensor *dpos, aal_error *err);
int aal_embed_args(const char *op, const int *ids, const aal_tensor *table,
                   const aal_tensor *pos, const aal_tensor *y, aal_error *err);

/* ---- patchify (embed.c): the reshape of patch embedding ----------------------------
 *   x, dx [B, C, Hi, Wi];  y, dy [B, N, C p p], N = (Hi/p) (Wi/p).
 * Patch n = ph (Wi/p) + pw covers rows ph p .. ph p + p - 1 and columns pw p .. + p - 1;
 * its feature f = c p p + i p + j is x[b, c, ph p + i, pw p + j] (the order of a Conv2d
 * weight [D, C, p, p] flattened).  Backward is the inverse reshape.  p >= 1 must divide
 * Hi and Wi. */
int aal_patchify_forward(const aal_tensor *x, int p, aal_tensor *y, aal_error *err);
int aal_patchify_backward(const aal_tensor *dy, int p, aal_tensor *dx, aal_error *err);
int aal_patchify_args(const char *op, const aal_tensor *img, int p, const aal_tensor *patches,
                      aal_error *err);

/* ---- transpose of the last two dimensions (transpose.c) ------------------------------
 *   x [B, A, C] -> y [B, C, A], y[b, c, a] = x[b, a, c].  Its backward is the same op on
 *   dy [B, C, A] -> dx [B, A, C]: aal_transpose(dy, dx).  y must not share storage with x. */
int aal_transpose(const aal_tensor *x, aal_tensor *y, aal_error *err);
int aal_transpose_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                       aal_error *err);

#endif
