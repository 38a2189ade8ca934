/* Internal to libaal: argument validation shared by the im2col convolution
 * (sim/layers/conv.c) and the direct oracle (sim/layers/conv_direct.c), so that both reject exactly the
 * same inputs with the same messages.  Not installed.
 *
 * Every message starts with the operation, e.g.
 *   "conv2d forward: y has shape 2x4x5x5, expected 2x4x3x3". */
#ifndef AAL_CONV2D_CHECK_H
#define AAL_CONV2D_CHECK_H

#include <stdio.h>

#include "sim/layers/conv.h"

/* The geometry of one convolution; see sim/layers/conv.h for the names.  Also the shape
 * that sim/layers/im2col_source.h works on, for the float32 backend too (kernels/cpu/conv.c). */
typedef struct {
  size_t n, c, h, w;  /* input  x [N, C, H, W] */
  size_t k, r, s;     /* weight w [K, C, R, S] */
  size_t p, q;        /* output y [N, K, P, Q] */
  size_t stride, pad;
} aal_conv2d_dims;

/* Test hook (defined in sim/layers/conv.c): caps the im2col workspace of aal_conv2d_* at
 * `bytes` (0 restores the default), so that tests can force many batch chunks on
 * small shapes.  Returns the previous cap.  Applies to the calling thread; tests only. */
size_t aal_conv2d_set_workspace_limit(size_t bytes);

/* Rank 4, dtype F64, not NULL; `name` is e.g. "x". */
static inline int aal_conv2d_check_tensor(const char *op, const char *name,
                                          const aal_tensor *t, aal_error *err)
{
  char what[96];
  snprintf(what, sizeof what, "%s: %s", op, name);
  return aal_tensor_require(t, 4, AAL_F64, what, err);
}

/* Fills d from an input-like tensor act [N, C, H, W] and a weight-like tensor
 * wt [K, C, R, S]; checks stride >= 1, pad >= 0, equal C and P, Q >= 1. */
static inline int aal_conv2d_check_dims(const char *op, const char *act_name,
                                        const aal_tensor *act, const char *wt_name,
                                        const aal_tensor *wt, int stride, int pad,
                                        aal_conv2d_dims *d, aal_error *err)
{
  *d = (aal_conv2d_dims){0};
  int rc = aal_conv2d_check_tensor(op, act_name, act, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_tensor(op, wt_name, wt, err);
  if (rc != AAL_OK)
    return rc;
  if (stride < 1)
    return aal_fail(err, AAL_EINVAL, "%s: stride is %d, must be >= 1", op, stride);
  if (pad < 0)
    return aal_fail(err, AAL_EINVAL, "%s: pad is %d, must be >= 0", op, pad);
  char sa[64], sw[64];
  aal_tensor_shape_str(act, sa, sizeof sa);
  aal_tensor_shape_str(wt, sw, sizeof sw);
  if (act->shape[1] != wt->shape[1])
    return aal_fail(err, AAL_ESHAPE,
                    "%s: %s has shape %s (%zu channels) but %s has shape %s (%zu input "
                    "channels)", op, act_name, sa, act->shape[1], wt_name, sw, wt->shape[1]);
  /* Tensor sizes are below SIZE_MAX / 8 and pad below INT_MAX: no overflow here. */
  const size_t hp = act->shape[2] + 2 * (size_t)pad, wp = act->shape[3] + 2 * (size_t)pad;
  if (hp < wt->shape[2] || wp < wt->shape[3])
    return aal_fail(err, AAL_ESHAPE,
                    "%s: kernel %zux%zu (%s %s) is larger than the padded input %zux%zu "
                    "(%s %s, pad %d)", op, wt->shape[2], wt->shape[3], wt_name, sw, hp, wp,
                    act_name, sa, pad);
  d->n = act->shape[0];
  d->c = act->shape[1];
  d->h = act->shape[2];
  d->w = act->shape[3];
  d->k = wt->shape[0];
  d->r = wt->shape[2];
  d->s = wt->shape[3];
  d->stride = (size_t)stride;
  d->pad = (size_t)pad;
  d->p = (hp - d->r) / d->stride + 1;
  d->q = (wp - d->s) / d->stride + 1;
  return AAL_OK;
}

/* t must be rank 4 F64 with exactly the shape a, b, c, e. */
static inline int aal_conv2d_check_shape(const char *op, const char *name,
                                         const aal_tensor *t, size_t a, size_t b, size_t c,
                                         size_t e, aal_error *err)
{
  const int rc = aal_conv2d_check_tensor(op, name, t, err);
  if (rc != AAL_OK)
    return rc;
  if (t->shape[0] == a && t->shape[1] == b && t->shape[2] == c && t->shape[3] == e)
    return AAL_OK;
  char st[64];
  aal_tensor_shape_str(t, st, sizeof st);
  return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zux%zux%zux%zu", op,
                  name, st, a, b, c, e);
}

/* The output is overwritten while the inputs are read: they must not share storage. */
static inline int aal_conv2d_check_alias(const char *op, const char *out_name,
                                         const aal_tensor *out, const char *in_name,
                                         const aal_tensor *in, aal_error *err)
{
  /* deferred host storage (NULL, sim/core/tensor.h) is not shared: each tensor has its
   * own backend buffer */
  if (out == in || (out->data != NULL && out->data == in->data))
    return aal_fail(err, AAL_EINVAL, "%s: %s must not share storage with %s", op, out_name,
                    in_name);
  return AAL_OK;
}

/* x [N,C,H,W], w [K,C,R,S] -> y [N,K,P,Q]. */
static inline int aal_conv2d_check_forward(const char *op, const aal_tensor *x,
                                           const aal_tensor *w, int stride, int pad,
                                           const aal_tensor *y, aal_conv2d_dims *d,
                                           aal_error *err)
{
  int rc = aal_conv2d_check_dims(op, "x", x, "w", w, stride, pad, d, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_shape(op, "y", y, d->n, d->k, d->p, d->q, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_alias(op, "y", y, "x", x, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_alias(op, "y", y, "w", w, err);
  return rc;
}

/* dy [N,K,P,Q], w [K,C,R,S] -> dx [N,C,H,W]; H, W come from dx (P does not fix H). */
static inline int aal_conv2d_check_backward_data(const char *op, const aal_tensor *dy,
                                                 const aal_tensor *w, int stride, int pad,
                                                 const aal_tensor *dx, aal_conv2d_dims *d,
                                                 aal_error *err)
{
  int rc = aal_conv2d_check_dims(op, "dx", dx, "w", w, stride, pad, d, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_shape(op, "dy", dy, d->n, d->k, d->p, d->q, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_alias(op, "dx", dx, "dy", dy, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_alias(op, "dx", dx, "w", w, err);
  return rc;
}

/* x [N,C,H,W], dy [N,K,P,Q] -> dw [K,C,R,S]; R, S come from dw. */
static inline int aal_conv2d_check_backward_filter(const char *op, const aal_tensor *x,
                                                   const aal_tensor *dy, int stride,
                                                   int pad, const aal_tensor *dw,
                                                   aal_conv2d_dims *d, aal_error *err)
{
  int rc = aal_conv2d_check_dims(op, "x", x, "dw", dw, stride, pad, d, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_shape(op, "dy", dy, d->n, d->k, d->p, d->q, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_alias(op, "dw", dw, "x", x, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_check_alias(op, "dw", dw, "dy", dy, err);
  return rc;
}

#endif
