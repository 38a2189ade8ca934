/* Pooling, double precision: global average pooling and 2-d max pooling.
 *
 * Global average pool:
 *   x, dx [N, C, H, W];  y, dy [N, C];  y[n,c] = (1/(H*W)) sum_{h,w} x[n,c,h,w].
 * Backward spreads dy[n,c] / (H*W) over the H*W positions; nothing is saved but the
 * shape of x, which dx carries.
 *
 * 2-d max pooling (PyTorch's nn.MaxPool2d(k, stride, pad), ceil_mode False, dilation 1):
 *   x, dx [N, C, H, W];  y, dy [N, C, Ho, Wo],  Ho = floor((H + 2 pad - k) / stride) + 1
 *   (Wo likewise).  Window (oh, ow) covers the input rows oh*stride - pad .. + k - 1 and
 *   columns ow*stride - pad .. + k - 1; y[n,c,oh,ow] is x at the window's winner.
 * The tie rule, one rule for every backend (kernels/cpu/pool.c, kernels/cuda/pool.cu):
 *   - padding positions never win (they are -infinity): only input positions are
 *     scanned;
 *   - the window's input positions are scanned in row-major order (kh outer, kw
 *     inner); the first one is the initial winner, and a later one takes over when its
 *     value is strictly greater than the running maximum or is NaN -- PyTorch's CPU and
 *     CUDA kernels, `if (val > maxval || isnan(val))`.
 *   So on ties the first element wins; a NaN wins, and no number displaces it (of
 *   several NaNs in one window the last in scan order is the winner, as in PyTorch).
 * Backward takes the forward's input x, not indices: it recomputes the winner of every
 * window and adds dy there, dx = sum over windows of dy[window] at its winner (dx is
 * overwritten: zeroed first, then accumulated, so that overlapping windows add).
 * Arguments: k >= 1, stride >= 1 and 0 <= pad <= k/2 (PyTorch's rule, which also
 * guarantees that every window holds at least one input position), Ho, Wo >= 1. */
#include "sim/layers/layers.h"

#include <limits.h>
#include <math.h>

/* The pooled tensor p [N, C] must match the first two sizes of the map m [N, C, H, W]. */
static int require_pooled(const aal_tensor *p, const aal_tensor *m, const char *op,
                          const char *p_name, const char *m_name, aal_error *err)
{
  if (p->shape[0] != m->shape[0] || p->shape[1] != m->shape[1]) {
    char sp[64], sm[64];
    aal_tensor_shape_str(p, sp, sizeof sp);
    aal_tensor_shape_str(m, sm, sizeof sm);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zux%zu (N x C of %s %s)",
                    op, p_name, sp, m->shape[0], m->shape[1], m_name, sm);
  }
  return AAL_OK;
}

int aal_avgpool_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                             aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 2, NULL, op, "y", NULL, err)) != AAL_OK)
    return rc;
  return require_pooled(y, x, op, "y", "x", err);
}

int aal_avgpool_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *dx,
                              aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(dy, AAL_F64, 2, NULL, op, "dy", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(dx, AAL_F64, 4, NULL, op, "dx", NULL, err)) != AAL_OK)
    return rc;
  return require_pooled(dy, dx, op, "dy", "dx", err);
}

int aal_avgpool_forward(const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  int rc = aal_avgpool_forward_args("avgpool forward", x, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
  for (size_t p = 0; p < planes; p++) {
    const double *px = x->data + p * hw;
    double s = 0.0;
    for (size_t k = 0; k < hw; k++)
      s += px[k];
    y->data[p] = s / (double)hw;
  }
  return AAL_OK;
}

int aal_avgpool_backward(const aal_tensor *dy, aal_tensor *dx, aal_error *err)
{
  int rc = aal_avgpool_backward_args("avgpool backward", dy, dx, err);
  if (rc != AAL_OK)
    return rc;
  const size_t planes = dx->shape[0] * dx->shape[1], hw = dx->shape[2] * dx->shape[3];
  for (size_t p = 0; p < planes; p++) {
    const double g = dy->data[p] / (double)hw;
    double *pdx = dx->data + p * hw;
    for (size_t k = 0; k < hw; k++)
      pdx[k] = g;
  }
  return AAL_OK;
}

/* ---------------------------------------------------------------- max pooling */

long aal_maxpool2d_output_size(long in, int k, int stride, int pad)
{
  if (in < 1 || k < 1 || stride < 1 || pad < 0 || pad > k / 2)
    return 0;
  /* no window fits when k > in + 2 pad */
  if (in > LONG_MAX - 2L * pad || in + 2L * pad < (long)k)
    return 0;
  return (in + 2L * pad - k) / stride + 1;
}

/* The pooling arguments (not the tensors): k, stride, pad, and the output size of an
 * [.., H, W] input, into *ho, *wo. */
static int maxpool_geometry(const char *op, const aal_tensor *x, const char *x_name, int k,
                            int stride, int pad, size_t *ho, size_t *wo, aal_error *err)
{
  if (k < 1)
    return aal_fail(err, AAL_EINVAL, "%s: k is %d, must be >= 1", op, k);
  if (stride < 1)
    return aal_fail(err, AAL_EINVAL, "%s: stride is %d, must be >= 1", op, stride);
  if (pad < 0 || pad > k / 2)
    return aal_fail(err, AAL_EINVAL, "%s: pad is %d, must be in [0, k/2] = [0, %d] (k = %d)",
                    op, pad, k / 2, k);
  const long h = (long)x->shape[2], w = (long)x->shape[3];
  const long oh = aal_maxpool2d_output_size(h, k, stride, pad);
  const long ow = aal_maxpool2d_output_size(w, k, stride, pad);
  if (oh < 1 || ow < 1) {
    char sx[64];
    aal_tensor_shape_str(x, sx, sizeof sx);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s: window k = %d with pad %d leaves "
                    "no output (the padded input %ldx%ld is smaller than k)", op, x_name, sx,
                    k, pad, h + 2L * pad, w + 2L * pad);
  }
  *ho = (size_t)oh;
  *wo = (size_t)ow;
  return AAL_OK;
}

/* t must be [N, C, ho, wo] with N, C those of x. */
static int require_pooled_map(const char *op, const aal_tensor *t, const char *t_name,
                              const aal_tensor *x, size_t ho, size_t wo, aal_error *err)
{
  if (t->shape[0] == x->shape[0] && t->shape[1] == x->shape[1] && t->shape[2] == ho &&
      t->shape[3] == wo)
    return AAL_OK;
  char st[64];
  aal_tensor_shape_str(t, st, sizeof st);
  return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zux%zux%zux%zu", op, t_name,
                  st, x->shape[0], x->shape[1], ho, wo);
}

/* An output is overwritten while the inputs are read: they must not share storage
 * (tensors at a home have no host data and their own buffers). */
static int require_apart(const char *op, const aal_tensor *out, const char *out_name,
                         const aal_tensor *in, const char *in_name, aal_error *err)
{
  if (out == in || (out->data != NULL && out->data == in->data))
    return aal_fail(err, AAL_EINVAL, "%s: %s must not share storage with %s", op, out_name,
                    in_name);
  return AAL_OK;
}

int aal_maxpool2d_forward_args(const char *op, const aal_tensor *x, int k, int stride, int pad,
                               const aal_tensor *y, aal_error *err)
{
  size_t ho = 0, wo = 0;
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 4, NULL, op, "y", NULL, err)) != AAL_OK ||
      (rc = maxpool_geometry(op, x, "x", k, stride, pad, &ho, &wo, err)) != AAL_OK ||
      (rc = require_pooled_map(op, y, "y", x, ho, wo, err)) != AAL_OK)
    return rc;
  return require_apart(op, y, "y", x, "x", err);
}

int aal_maxpool2d_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                                int k, int stride, int pad, const aal_tensor *dx,
                                aal_error *err)
{
  size_t ho = 0, wo = 0;
  int rc;
  if ((rc = aal_tensor_check(dy, AAL_F64, 4, NULL, op, "dy", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(dx, AAL_F64, 4, x, op, "dx", "x", err)) != AAL_OK ||
      (rc = maxpool_geometry(op, x, "x", k, stride, pad, &ho, &wo, err)) != AAL_OK ||
      (rc = require_pooled_map(op, dy, "dy", x, ho, wo, err)) != AAL_OK ||
      (rc = require_apart(op, dx, "dx", x, "x", err)) != AAL_OK)
    return rc;
  return require_apart(op, dx, "dx", dy, "dy", err);
}

/* The winner of the window whose top-left corner is (h0, w0) (may lie in the padding)
 * in the plane p [h, w]: its index in the plane, by the rule of the top comment.  The
 * window holds at least one input position (pad <= k/2). */
static size_t maxpool_winner(const double *p, long h, long w, long h0, long w0, int k)
{
  const long hs = h0 > 0 ? h0 : 0, he = h0 + k < h ? h0 + k : h;
  const long ws = w0 > 0 ? w0 : 0, we = w0 + k < w ? w0 + k : w;
  size_t arg = (size_t)(hs * w + ws);
  double best = p[arg];
  for (long ih = hs; ih < he; ih++)
    for (long iw = ws; iw < we; iw++) {
      const double v = p[ih * w + iw];
      if (v > best || isnan(v)) {
        best = v;
        arg = (size_t)(ih * w + iw);
      }
    }
  return arg;
}

int aal_maxpool2d_forward(const aal_tensor *x, int k, int stride, int pad, aal_tensor *y,
                          aal_error *err)
{
  int rc = aal_maxpool2d_forward_args("maxpool2d forward", x, k, stride, pad, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t planes = x->shape[0] * x->shape[1];
  const long h = (long)x->shape[2], w = (long)x->shape[3];
  const size_t ho = y->shape[2], wo = y->shape[3];
  for (size_t pl = 0; pl < planes; pl++) {
    const double *px = x->data + pl * (size_t)(h * w);
    double *py = y->data + pl * ho * wo;
    for (size_t oh = 0; oh < ho; oh++)
      for (size_t ow = 0; ow < wo; ow++)
        py[oh * wo + ow] = px[maxpool_winner(px, h, w, (long)oh * stride - pad,
                                             (long)ow * stride - pad, k)];
  }
  return AAL_OK;
}

int aal_maxpool2d_backward(const aal_tensor *dy, const aal_tensor *x, int k, int stride, int pad,
                           aal_tensor *dx, aal_error *err)
{
  int rc = aal_maxpool2d_backward_args("maxpool2d backward", dy, x, k, stride, pad, dx, err);
  if (rc != AAL_OK)
    return rc;
  const size_t planes = x->shape[0] * x->shape[1];
  const long h = (long)x->shape[2], w = (long)x->shape[3];
  const size_t ho = dy->shape[2], wo = dy->shape[3];
  for (size_t i = 0; i < dx->size; i++)
    dx->data[i] = 0.0;
  for (size_t pl = 0; pl < planes; pl++) {
    const double *px = x->data + pl * (size_t)(h * w), *pdy = dy->data + pl * ho * wo;
    double *pdx = dx->data + pl * (size_t)(h * w);
    for (size_t oh = 0; oh < ho; oh++)
      for (size_t ow = 0; ow < wo; ow++)
        pdx[maxpool_winner(px, h, w, (long)oh * stride - pad, (long)ow * stride - pad, k)] +=
            pdy[oh * wo + ow];
  }
  return AAL_OK;
}
