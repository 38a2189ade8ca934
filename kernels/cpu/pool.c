/* Pooling in float32: global average pooling and 2-d max pooling.
 *   avgpool: x [rows, hw] -> y [rows] = mean of the row (summed in double: hw is small
 *   and the sum is then rounded once); backward dx[row, :] = dy[row] / hw.
 *   maxpool: x [n, c, h, w] -> y [n, c, p, q], each output the value at its window's
 *   winner by sim/layers/pool.c's rule (padding never wins; scanning row-major, a later
 *   element takes over iff it is > the running maximum or NaN: ties go to the first), so
 *   y is exact (a selection).  Backward recomputes the winners from x and scatters dy
 *   into a zeroed dx in output order (oh outer, ow inner), accumulating in float: an
 *   element that wins m windows gets the float sum of their m dy in that order, the
 *   order kernels/cuda/pool.cu's gather adds them in.  Threads take whole planes (n, c),
 *   which share nothing, so results do not depend on the thread count. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

static int pool_args(const char *op, int rows, int hw, const void *in, const void *out,
                     aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "rows", rows, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK)
    return rc;
  return aal_be_check_ptrs(op, "input, output", err, 2, in, out);
}

int aal_cpu32_avgpool_forward(const aal_backend *be, int rows, int hw, const void *x, void *y,
                              aal_error *err)
{
  (void)be;
  int rc = pool_args("cpu32 avgpool_forward", rows, hw, x, y, err);
  if (rc != AAL_OK)
    return rc;
  const float *px = x;
  float *py = y;
  for (int i = 0; i < rows; i++) {
    const float *row = px + (size_t)i * hw;
    double s = 0.0;
    for (int k = 0; k < hw; k++)
      s += row[k];
    py[i] = (float)(s / hw);
  }
  return AAL_OK;
}

int aal_cpu32_avgpool_backward(const aal_backend *be, int rows, int hw, const void *dy,
                               void *dx, aal_error *err)
{
  (void)be;
  int rc = pool_args("cpu32 avgpool_backward", rows, hw, dy, dx, err);
  if (rc != AAL_OK)
    return rc;
  const float *pdy = dy;
  float *pdx = dx;
  const float div = (float)hw; /* exact: hw < 2^24 */
  for (int i = 0; i < rows; i++) {
    const float g = pdy[i] / div;
    float *row = pdx + (size_t)i * hw;
    for (int k = 0; k < hw; k++)
      row[k] = g;
  }
  return AAL_OK;
}

/* ---------------------------------------------------------------- max pooling */

typedef struct {
  long h, w, p, q, stride, pad;
  int k;
  const float *x, *dy;
  float *y, *dx;
} maxpool_ctx;

/* The winner of the window whose top-left corner is (h0, w0) in plane px [h, w]: its
 * index in the plane (the window holds an input position: pad <= k/2). */
static size_t maxpool_winner(const float *px, long h, long w, long h0, long w0, int k)
{
  const long hs = h0 > 0 ? h0 : 0, he = h0 + k < h ? h0 + k : h;
  const long ws = w0 > 0 ? w0 : 0, we = w0 + k < w ? w0 + k : w;
  size_t arg = (size_t)(hs * w + ws);
  float best = px[arg];
  for (long ih = hs; ih < he; ih++)
    for (long iw = ws; iw < we; iw++) {
      const float v = px[ih * w + iw];
      if (v > best || isnan(v)) {
        best = v;
        arg = (size_t)(ih * w + iw);
      }
    }
  return arg;
}

static void maxpool_forward_planes(const void *arg, size_t lo, size_t hi)
{
  const maxpool_ctx *a = arg;
  for (size_t pl = lo; pl < hi; pl++) {
    const float *px = a->x + pl * (size_t)(a->h * a->w);
    float *py = a->y + pl * (size_t)(a->p * a->q);
    for (long oh = 0; oh < a->p; oh++)
      for (long ow = 0; ow < a->q; ow++)
        py[oh * a->q + ow] = px[maxpool_winner(px, a->h, a->w, oh * a->stride - a->pad,
                                               ow * a->stride - a->pad, a->k)];
  }
}

static void maxpool_backward_planes(const void *arg, size_t lo, size_t hi)
{
  const maxpool_ctx *a = arg;
  for (size_t pl = lo; pl < hi; pl++) {
    const float *px = a->x + pl * (size_t)(a->h * a->w);
    const float *pdy = a->dy + pl * (size_t)(a->p * a->q);
    float *pdx = a->dx + pl * (size_t)(a->h * a->w);
    for (long i = 0; i < a->h * a->w; i++)
      pdx[i] = 0.0f;
    for (long oh = 0; oh < a->p; oh++)
      for (long ow = 0; ow < a->q; ow++)
        pdx[maxpool_winner(px, a->h, a->w, oh * a->stride - a->pad, ow * a->stride - a->pad,
                           a->k)] += pdy[oh * a->q + ow];
  }
}

int aal_cpu32_maxpool_forward(const aal_backend *be, int n, int c, int h, int w, int k,
                              int stride, int pad, const void *x, void *y, aal_error *err)
{
  static const char op[] = "cpu32 maxpool_forward";
  int p, q, rc;
  if ((rc = aal_be_check_pool2d(op, n, c, h, w, k, stride, pad, &p, &q, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  if (y == x)
    return aal_fail(err, AAL_EINVAL, "%s: y must not share storage with x", op);
  const maxpool_ctx a = {h, w, p, q, stride, pad, k, x, NULL, y, NULL};
  const size_t planes = (size_t)n * (size_t)c;
  aal_team_par_for(aal_cpu32_be_team(be), maxpool_forward_planes, &a, planes,
                   planes * (size_t)h * (size_t)w * sizeof(float));
  return AAL_OK;
}

int aal_cpu32_maxpool_backward(const aal_backend *be, int n, int c, int h, int w, int k,
                               int stride, int pad, const void *dy, const void *x, void *dx,
                               aal_error *err)
{
  static const char op[] = "cpu32 maxpool_backward";
  int p, q, rc;
  if ((rc = aal_be_check_pool2d(op, n, c, h, w, k, stride, pad, &p, &q, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, dx", err, 3, dy, x, dx)) != AAL_OK)
    return rc;
  if (dx == x || dx == dy)
    return aal_fail(err, AAL_EINVAL, "%s: dx must not share storage with x or dy", op);
  const maxpool_ctx a = {h, w, p, q, stride, pad, k, x, dy, NULL, dx};
  const size_t planes = (size_t)n * (size_t)c;
  aal_team_par_for(aal_cpu32_be_team(be), maxpool_backward_planes, &a, planes,
                   planes * (size_t)h * (size_t)w * sizeof(float));
  return AAL_OK;
}
