/* conv2d in float32: im2col + cblas_sgemm over chunks of images (forward,
 * backward-data, backward-filter side by side); the design of sim/layers/conv.c.
 *
 *   x [N, C, H, W]   w [K, C, R, S]   y [N, K, P, Q]
 *
 * The batch is processed in chunks of nb images.  For a chunk of m <= nb images from
 * image n0, im2col builds
 *   col [C*R*S, m*P*Q],  col[(c*R + r)*S + s, j*P*Q + p*Q + q]
 *                          = x[n0 + j, c, p*stride - pad + r, q*stride - pad + s]  (0 outside)
 * so that every direction is one large GEMM even where P*Q is tiny (late ResNet layers
 * have 8x8 or 4x4 outputs; per-image GEMMs there run far below the sgemm rate):
 *   forward          Y'  [K, m*PQ]   = W [K, CRS] * col,        then Y' -> y (NCHW)
 *   backward data    dcol[CRS, m*PQ] = W^T * dY',               then col2im -> dx
 *   backward filter  dW  [K, CRS]   += dY' [K, m*PQ] * col^T    (beta 0 on the first chunk)
 * where dY' [K, m*PQ] is dy of the chunk gathered from NCHW, and Y' is scattered back to
 * NCHW.  With m = 1, Y' and dY' are y and dy of the image themselves (no copy).
 *
 * nb is chosen so that col + Y' (nb * (CRS + K) * PQ floats) stay small enough to be
 * reused from cache (CHUNK_CACHE_BYTES), but the GEMM still has at least CHUNK_MIN_COLS
 * columns, within a hard cap on the workspace (AAL_CPU32_CONV_WORKSPACE_BYTES); where
 * one image has CHUNK_MIN_COLS columns already (PQ >= 1024), nb = 1.  The
 * memory-bound loops (im2col, col2im, the NCHW copies) run on a small team of threads
 * (sim/core/team.h) that sleeps while the GEMMs run: the backend's team, or one started
 * for the call by the *_ws entry points (which take no backend).
 *
 * Determinism: the chunking depends only on the shapes, each step runs in a fixed
 * order, and the threaded loops write disjoint outputs with the single-threaded
 * arithmetic, so results are bit-identical for given shapes and OpenBLAS thread count.
 *
 * The im2col, col2im, layout copies and chunk loops are sim/layers/im2col_source.h, shared
 * with the double reference (sim/layers/conv.c); this file chooses nb and checks the shape. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <stddef.h>

#include "sim/layers/conv_check.h"

#define IM2COL_REAL float
#define IM2COL_SUFFIX f32
#define IM2COL_GEMM cblas_sgemm
#include "sim/layers/im2col_source.h"

/* Preferred workspace (col + Y'): measured on the 2-core Xeon VM (2 MiB L2 per core)
 * for the double conv, a few MiB per chunk beat whole-batch chunks: col is still in
 * cache when the GEMM reads it, and malloc reuses the allocation instead of page-
 * faulting it in on every call. */
#ifndef CHUNK_CACHE_BYTES
#define CHUNK_CACHE_BYTES ((size_t)4 << 20)
#endif
/* ...but late layers (P*Q = 16) need several images per chunk for an efficient GEMM. */
#ifndef CHUNK_MIN_COLS
#define CHUNK_MIN_COLS 1024
#endif

/* Images per chunk: CHUNK_CACHE_BYTES worth, raised to CHUNK_MIN_COLS GEMM columns,
 * within the cap `limit` and the batch, and at least 1; then evened out over the
 * chunks that makes (32 images in chunks of 21 become 16 + 16: no short last GEMM).
 * bytes: workspace per image. */
static size_t chunk_images(const aal_conv2d_dims *d, size_t pq, size_t bytes, size_t limit)
{
  /* One image already gives the GEMM enough columns: a chunk would only add the
   * Y' <-> NCHW copies (measured: the stem, PQ = 1024 and C*R*S = 27, went from 0.17-0.22
   * of the sgemm rate per image to 0.14-0.18 in chunks of 11). */
  if (pq >= CHUNK_MIN_COLS)
    return 1;
  const size_t min_nb = (CHUNK_MIN_COLS + pq - 1) / pq;
  size_t nb = CHUNK_CACHE_BYTES / bytes;
  nb = nb > min_nb ? nb : min_nb;
  nb = min_size(min_size(nb, limit / bytes), d->n);
  if (nb == 0)
    return 1;
  const size_t chunks = (d->n + nb - 1) / nb;
  return (d->n + chunks - 1) / chunks;
}

/* ---------------------------------------------------------------- the ops */

/* Checks cs and the pointers, fills d, allocates the workspace and takes the team:
 * `team` (the backend's) or, when NULL, one started in *own for the call. */
static int conv_begin(const char *op, const aal_conv_shape *cs, const void *a, const void *b,
                      const void *c, size_t limit, aal_team *team, aal_conv2d_dims *d,
                      workspace_f32 *ws, aal_team *own, aal_error *err)
{
  int rc = aal_be_check_conv(cs, op, err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "input, input, output", err, 3, a, b, c);
  if (rc != AAL_OK)
    return rc;
  /* aal_be_check_conv: every size positive, stride >= 1, pad >= 0. */
  *d = (aal_conv2d_dims){.n = (size_t)cs->n, .c = (size_t)cs->c, .h = (size_t)cs->h,
                         .w = (size_t)cs->w, .k = (size_t)cs->k, .r = (size_t)cs->r,
                         .s = (size_t)cs->s, .p = (size_t)cs->p, .q = (size_t)cs->q,
                         .stride = (size_t)cs->stride, .pad = (size_t)cs->pad};
  return begin_f32(op, d, chunk_images, limit ? limit : AAL_CPU32_CONV_WORKSPACE_BYTES, team,
                   own, ws, err);
}

static int conv_forward(aal_team *team, const aal_conv_shape *cs, const void *x,
                        const void *w, void *y, size_t workspace_bytes, aal_error *err)
{
  static const char op[] = "cpu32 conv_forward";
  aal_conv2d_dims d;
  workspace_f32 ws;
  aal_team own;
  const int rc = conv_begin(op, cs, x, w, y, workspace_bytes, team, &d, &ws, &own, err);
  if (rc != AAL_OK)
    return rc;
  im2col_forward_f32(&d, &ws, x, w, y);
  end_f32(&ws);
  return AAL_OK;
}

static int conv_backward_data(aal_team *team, const aal_conv_shape *cs, const void *dy,
                              const void *w, void *dx, size_t workspace_bytes, aal_error *err)
{
  static const char op[] = "cpu32 conv_backward_data";
  aal_conv2d_dims d;
  workspace_f32 ws;
  aal_team own;
  const int rc = conv_begin(op, cs, dy, w, dx, workspace_bytes, team, &d, &ws, &own, err);
  if (rc != AAL_OK)
    return rc;
  im2col_backward_data_f32(&d, &ws, dy, w, dx);
  end_f32(&ws);
  return AAL_OK;
}

static int conv_backward_filter(aal_team *team, const aal_conv_shape *cs,
                                const void *x, const void *dy, void *dw,
                                size_t workspace_bytes, aal_error *err)
{
  static const char op[] = "cpu32 conv_backward_filter";
  aal_conv2d_dims d;
  workspace_f32 ws;
  aal_team own;
  const int rc = conv_begin(op, cs, x, dy, dw, workspace_bytes, team, &d, &ws, &own, err);
  if (rc != AAL_OK)
    return rc;
  im2col_backward_filter_f32(&d, &ws, x, dy, dw);
  end_f32(&ws);
  return AAL_OK;
}

/* The *_ws entry points (tests): a team per call. */
int aal_cpu32_conv_forward_ws(const aal_conv_shape *cs, const void *x, const void *w, void *y,
                              size_t workspace_bytes, aal_error *err)
{
  return conv_forward(NULL, cs, x, w, y, workspace_bytes, err);
}

int aal_cpu32_conv_backward_data_ws(const aal_conv_shape *cs, const void *dy, const void *w,
                                    void *dx, size_t workspace_bytes, aal_error *err)
{
  return conv_backward_data(NULL, cs, dy, w, dx, workspace_bytes, err);
}

int aal_cpu32_conv_backward_filter_ws(const aal_conv_shape *cs, const void *x, const void *dy,
                                      void *dw, size_t workspace_bytes, aal_error *err)
{
  return conv_backward_filter(NULL, cs, x, dy, dw, workspace_bytes, err);
}

/* The backend's ops: its persistent team (a per-call one if be has no state). */
int aal_cpu32_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                           const void *w, void *y, aal_error *err)
{
  return conv_forward(aal_cpu32_be_team(be), cs, x, w, y, 0, err);
}

int aal_cpu32_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs,
                                 const void *dy, const void *w, void *dx, aal_error *err)
{
  return conv_backward_data(aal_cpu32_be_team(be), cs, dy, w, dx, 0, err);
}

int aal_cpu32_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                   const void *x, const void *dy, void *dw, aal_error *err)
{
  return conv_backward_filter(aal_cpu32_be_team(be), cs, x, dy, dw, 0, err);
}
