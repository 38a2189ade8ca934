/* Convolution by im2col + cblas_dgemm (the implementation the trainer uses).
 *
 * The batch is processed in chunks of nb images.  For a chunk, im2col builds
 *   col [C*R*S, nb*P*Q],  col[(c*R + r)*S + s, j*P*Q + p*Q + q]
 *                           = x[n0 + j, c, p*stride - pad + r, q*stride - pad + s]  (0 outside)
 * so that every direction is one large GEMM even where P*Q is tiny (late ResNet layers
 * have 4x4 or 2x2 outputs; per-image GEMMs there would be too small to run fast):
 *   forward          Y'  [K, nb*PQ]  = W [K, CRS] * col,        then Y' -> y (NCHW)
 *   backward data    dcol[CRS, nb*PQ] = W^T * dY',               then col2im (+=) -> dx
 *   backward filter  dW  [K, CRS]    += dY' [K, nb*PQ] * col^T   (beta 0 on the first chunk)
 * where dY' [K, nb*PQ] is dy of the chunk gathered from NCHW.  nb is chosen so that
 * col + Y' stay small enough to be reused from cache (CHUNK_CACHE_BYTES) but the GEMM
 * still has at least CHUNK_MIN_COLS columns, within a hard cap on the workspace.
 * Chunking depends only on the shapes, and each step runs in a fixed order, so
 * results are deterministic for a given OpenBLAS build and thread count.
 *
 * The im2col, col2im, layout copies and chunk loops are sim/layers/im2col_source.h, shared
 * with the float32 backend (kernels/cpu/conv.c); this file chooses nb and checks
 * the tensors.  Each call starts its own team of helper threads (sim/core/team.h). */
#include "sim/layers/conv.h"

#include <limits.h>
#include <stddef.h>

#include "sim/layers/conv_check.h"

#define IM2COL_REAL double
#define IM2COL_SUFFIX f64
#define IM2COL_GEMM cblas_dgemm
#include "sim/layers/im2col_source.h"

/* Hard cap on the workspace: 64 MiB holds a whole batch of 32 for every ResNet-18
 * layer from layer2 on, and is still an unremarkable allocation. */
#define DEFAULT_WORKSPACE_BYTES ((size_t)64 << 20)
/* Preferred workspace: measured on a 2-core Xeon (2 MiB L2), chunks of a few MiB beat
 * whole-batch chunks, because col is then still in cache when the GEMM reads it and
 * the allocation is reused by malloc instead of being page-faulted in on every call. */
#ifndef CHUNK_CACHE_BYTES
#define CHUNK_CACHE_BYTES ((size_t)4 << 20)
#endif
/* ...but late layers (P*Q = 16) need several images per chunk for an efficient GEMM. */
#define CHUNK_MIN_COLS 1024

/* The one mutable static of the library: a test hook (aal_conv2d_set_workspace_limit)
 * that forces several batch chunks on small shapes.  Thread-local, so a test's setting
 * is never seen by another thread. */
static _Thread_local size_t workspace_limit = DEFAULT_WORKSPACE_BYTES;

size_t aal_conv2d_set_workspace_limit(size_t bytes)
{
  const size_t old = workspace_limit;
  workspace_limit = bytes ? bytes : DEFAULT_WORKSPACE_BYTES;
  return old;
}

/* Images per chunk: CHUNK_CACHE_BYTES worth, raised to CHUNK_MIN_COLS GEMM columns,
 * within the hard cap `limit` and the batch, and at least 1.  bytes: workspace per
 * image. */
static size_t chunk_images(const aal_conv2d_dims *d, size_t pq, size_t bytes, size_t limit)
{
  const size_t cap = limit / bytes;
  size_t nb = CHUNK_CACHE_BYTES / bytes;
  nb = nb > (CHUNK_MIN_COLS + pq - 1) / pq ? nb : (CHUNK_MIN_COLS + pq - 1) / pq;
  nb = min_size(min_size(nb, cap), d->n);
  return nb ? nb : 1;
}

int aal_conv2d_output_shape(const aal_tensor *x, const aal_tensor *w, int stride, int pad,
                            long y_shape[4], aal_error *err)
{
  const char *op = "conv2d output_shape";
  aal_conv2d_dims d;
  if (y_shape == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: y_shape is NULL", op);
  const int rc = aal_conv2d_check_dims(op, "x", x, "w", w, stride, pad, &d, err);
  if (rc != AAL_OK)
    return rc;
  if (d.p > LONG_MAX || d.q > LONG_MAX)
    return aal_fail(err, AAL_ENOMEM, "%s: output %zux%zu is too large", op, d.p, d.q);
  y_shape[0] = (long)d.n;
  y_shape[1] = (long)d.k;
  y_shape[2] = (long)d.p;
  y_shape[3] = (long)d.q;
  return AAL_OK;
}

int aal_conv2d_forward(const aal_tensor *x, const aal_tensor *w, int stride, int pad,
                       aal_tensor *y, aal_error *err)
{
  const char *op = "conv2d forward";
  aal_conv2d_dims d;
  workspace_f64 ws;
  aal_team tm;
  int rc = aal_conv2d_check_forward(op, x, w, stride, pad, y, &d, err);
  if (rc == AAL_OK)
    rc = begin_f64(op, &d, chunk_images, workspace_limit, NULL, &tm, &ws, err);
  if (rc != AAL_OK)
    return rc;
  im2col_forward_f64(&d, &ws, x->data, w->data, y->data);
  end_f64(&ws);
  return AAL_OK;
}

int aal_conv2d_backward_data(const aal_tensor *dy, const aal_tensor *w, int stride, int pad,
                             aal_tensor *dx, aal_error *err)
{
  const char *op = "conv2d backward_data";
  aal_conv2d_dims d;
  workspace_f64 ws;
  aal_team tm;
  int rc = aal_conv2d_check_backward_data(op, dy, w, stride, pad, dx, &d, err);
  if (rc == AAL_OK)
    rc = begin_f64(op, &d, chunk_images, workspace_limit, NULL, &tm, &ws, err);
  if (rc != AAL_OK)
    return rc;
  im2col_backward_data_f64(&d, &ws, dy->data, w->data, dx->data);
  end_f64(&ws);
  return AAL_OK;
}

int aal_conv2d_backward_filter(const aal_tensor *x, const aal_tensor *dy, int stride, int pad,
                               aal_tensor *dw, aal_error *err)
{
  const char *op = "conv2d backward_filter";
  aal_conv2d_dims d;
  workspace_f64 ws;
  aal_team tm;
  int rc = aal_conv2d_check_backward_filter(op, x, dy, stride, pad, dw, &d, err);
  if (rc == AAL_OK)
    rc = begin_f64(op, &d, chunk_images, workspace_limit, NULL, &tm, &ws, err);
  if (rc != AAL_OK)
    return rc;
  im2col_backward_filter_f64(&d, &ws, x->data, dy->data, dw->data);
  end_f64(&ws);
  return AAL_OK;
}
