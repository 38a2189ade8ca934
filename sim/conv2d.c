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
 * results are deterministic for a given OpenBLAS build and thread count. */
#include "aal_conv2d.h"

#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aal_team.h"
#include "conv2d_check.h"

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

/* *out = a * b; 0 when that overflows. */
static int mul_ok(size_t a, size_t b, size_t *out)
{
  if (a != 0 && b > SIZE_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

typedef struct {
  size_t crs;   /* C*R*S: rows of col */
  size_t pq;    /* P*Q: columns per image */
  size_t nb;    /* images per chunk */
  double *col;  /* [CRS, nb*PQ] */
  double *mat;  /* [K, nb*PQ]: Y' or dY'; NULL when nb == 1 (y or dy is used in place) */
  aal_team *tm;    /* helper threads of this call (see conv_threads) */
} workspace;

static void workspace_free(workspace *ws)
{
  free(ws->col);
  free(ws->mat);
}

/* Every BLAS dimension must fit in an int (OpenBLAS's default blasint). */
static int check_blas_dims(const char *op, const aal_conv2d_dims *d, const workspace *ws,
                           aal_error *err)
{
  size_t ld;
  if (!mul_ok(ws->nb, ws->pq, &ld) || ld > INT_MAX || ws->crs > INT_MAX || d->k > INT_MAX)
    return aal_fail(err, AAL_EINVAL,
                    "%s: GEMM of %zu x %zu x %zu images' columns exceeds the BLAS int range",
                    op, d->k, ws->crs, ws->nb);
  return AAL_OK;
}

/* Images per chunk: CHUNK_CACHE_BYTES worth, raised to CHUNK_MIN_COLS GEMM columns,
 * within the hard cap and the batch, and at least 1.  bytes: workspace per image. */
static size_t chunk_images(const aal_conv2d_dims *d, size_t pq, size_t bytes)
{
  const size_t cap = workspace_limit / bytes;
  size_t nb = CHUNK_CACHE_BYTES / bytes;
  nb = nb > (CHUNK_MIN_COLS + pq - 1) / pq ? nb : (CHUNK_MIN_COLS + pq - 1) / pq;
  nb = min_size(min_size(nb, cap), d->n);
  return nb ? nb : 1;
}

static int workspace_alloc(const char *op, const aal_conv2d_dims *d, workspace *ws,
                           aal_error *err)
{
  memset(ws, 0, sizeof *ws);
  size_t per_image, bytes;
  if (!mul_ok(d->c * d->r, d->s, &ws->crs) || !mul_ok(d->p, d->q, &ws->pq) ||
      ws->crs > SIZE_MAX - d->k || !mul_ok(ws->crs + d->k, ws->pq, &per_image) ||
      !mul_ok(per_image, sizeof(double), &bytes))
    return aal_fail(err, AAL_ENOMEM, "%s: im2col workspace size overflows", op);
  ws->nb = chunk_images(d, ws->pq, bytes);
  const int rc = check_blas_dims(op, d, ws, err);
  if (rc != AAL_OK)
    return rc;
  /* nb * bytes <= limit, or nb == 1 and bytes did not overflow: no overflow below. */
  ws->col = malloc(ws->crs * ws->nb * ws->pq * sizeof(double));
  if (ws->nb > 1)
    ws->mat = malloc(d->k * ws->nb * ws->pq * sizeof(double));
  if (ws->col == NULL || (ws->nb > 1 && ws->mat == NULL)) {
    workspace_free(ws);
    return aal_fail(err, AAL_ENOMEM, "%s: cannot allocate %zu bytes of im2col workspace", op,
                    ws->nb * bytes);
  }
  return AAL_OK;
}

/* Output positions o in [*lo, *hi) read input index o*stride + tap - pad inside
 * [0, in_len); the others read the zero padding. */
static void valid_range(const aal_conv2d_dims *d, size_t tap, size_t in_len, size_t out_len,
                        size_t *lo, size_t *hi)
{
  *lo = tap >= d->pad ? 0 : (d->pad - tap + d->stride - 1) / d->stride;
  *hi = tap >= in_len + d->pad ? 0 : (in_len + d->pad - 1 - tap) / d->stride + 1;
  *hi = min_size(*hi, out_len);
  *lo = min_size(*lo, *hi);
}

/* One row of col: out[q] = in[q*stride + s - pad] for q in [lo, hi), 0 elsewhere.
 * in is the input row h (W values); out has Q values. */
static void gather_row(const aal_conv2d_dims *d, size_t s, size_t lo, size_t hi,
                       const double *restrict in, double *restrict out)
{
  memset(out, 0, lo * sizeof(double));
  if (lo < hi) {
    const double *src = in + (lo * d->stride + s - d->pad);
    if (d->stride == 1) {
      memcpy(out + lo, src, (hi - lo) * sizeof(double));
    } else {
      for (size_t q = 0; q < hi - lo; q++)
        out[lo + q] = src[q * d->stride];
    }
  }
  memset(out + hi, 0, (d->q - hi) * sizeof(double));
}

/* The inverse of gather_row: in[q*stride + s - pad] += out[q] for q in [lo, hi). */
static void scatter_add_row(const aal_conv2d_dims *d, size_t s, size_t lo, size_t hi,
                            const double *restrict out, double *restrict in)
{
  if (lo >= hi)
    return;
  double *dst = in + (lo * d->stride + s - d->pad);
  const double *src = out + lo;
  if (d->stride == 1) {
    for (size_t q = 0; q < hi - lo; q++)
      dst[q] += src[q];
  } else {
    for (size_t q = 0; q < hi - lo; q++)
      dst[q * d->stride] += src[q];
  }
}

/* Row `row` = (c*R + r)*S + s of one image's block of col: dst[p*Q + q] =
 * xn[c, p*stride + r - pad, q*stride + s - pad] (0 outside), PQ values. */
static void im2col_row(const aal_conv2d_dims *d, const double *xn, size_t row, double *dst)
{
  const size_t s = row % d->s, r = row / d->s % d->r, c = row / (d->s * d->r);
  const double *plane = xn + c * d->h * d->w;
  size_t plo, phi, qlo, qhi;
  valid_range(d, r, d->h, d->p, &plo, &phi);
  valid_range(d, s, d->w, d->q, &qlo, &qhi);
  memset(dst, 0, plo * d->q * sizeof(double));
  if (d->stride == 1 && d->q == d->w && plo < phi && qlo < qhi) {
    /* Stride 1 and Q == W ("same" padding): rows plo..phi-1 are one contiguous span
     * of the plane, shifted; copy it at once, then zero the columns that read the
     * left and right padding (there the span wrapped into the neighbouring rows). */
    const size_t first = plo * d->q + qlo, last = (phi - 1) * d->q + qhi;
    memcpy(dst + first, plane + (plo + r - d->pad) * d->w + (qlo + s - d->pad),
           (last - first) * sizeof(double));
    for (size_t p = plo; p < phi; p++) {
      memset(dst + p * d->q, 0, qlo * sizeof(double));
      memset(dst + p * d->q + qhi, 0, (d->q - qhi) * sizeof(double));
    }
  } else {
    for (size_t p = plo; p < phi; p++)
      gather_row(d, s, qlo, qhi, plane + (p * d->stride + r - d->pad) * d->w,
                 dst + p * d->q);
  }
  memset(dst + phi * d->q, 0, (d->p - phi) * d->q * sizeof(double));
}

/* Plane c of dxn [C, H, W] = 0, then += the rows (c, r, s) of one image's block of dcol
 * (row stride ld), folded back in the order r, s, p, q. */
static void col2im_plane(const aal_conv2d_dims *d, const double *dcol, size_t ld, size_t c,
                         double *dxn)
{
  double *plane = dxn + c * d->h * d->w;
  memset(plane, 0, d->h * d->w * sizeof(double));
  for (size_t r = 0; r < d->r; r++) {
    size_t plo, phi;
    valid_range(d, r, d->h, d->p, &plo, &phi);
    for (size_t s = 0; s < d->s; s++) {
      size_t qlo, qhi;
      valid_range(d, s, d->w, d->q, &qlo, &qhi);
      const double *src = dcol + ((c * d->r + r) * d->s + s) * ld;
      for (size_t p = plo; p < phi; p++)
        scatter_add_row(d, s, qlo, qhi, src + p * d->q,
                        plane + (p * d->stride + r - d->pad) * d->w);
    }
  }
}

/* ---------------------------------------------------------------- threads
 *
 * im2col, col2im and the NCHW <-> [K, m*PQ] copies are memory-bound loops that would
 * otherwise run on one core between two multi-threaded GEMMs: a team of helper
 * threads (sim/aal_team.h) belongs to each call and splits them.  Every output element
 * is written by exactly one item, so results are bit-identical for any thread count. */

/* Threads for one call: the team's size, or 1 when even the largest loop of the call
 * (im2col or col2im of a chunk) is too small to share. */
static size_t conv_threads(const workspace *ws)
{
  return aal_team_threads(ws->nb * ws->crs * ws->pq * sizeof(double));
}

/* ------------------------------------------------------- chunk operations */

typedef struct {
  const aal_conv2d_dims *d;
  const workspace *ws;
  const double *src;  /* x (images n0..), dy or the chunk's dcol */
  double *dst;        /* dx or y (images n0..) */
  size_t m;           /* images in the chunk */
} chunk_ctx;

/* items j*CRS + row: row `row` of col for image j. */
static void im2col_items(const void *arg, size_t lo, size_t hi)
{
  const chunk_ctx *cx = arg;
  const size_t crs = cx->ws->crs, pq = cx->ws->pq, ld = cx->m * pq;
  const size_t image = cx->d->c * cx->d->h * cx->d->w;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / crs, row = i % crs;
    im2col_row(cx->d, cx->src + j * image, row, cx->ws->col + row * ld + j * pq);
  }
}

/* col [CRS, m*PQ] for images n0 .. n0+m-1 of x. */
static void im2col_chunk(const aal_conv2d_dims *d, const workspace *ws, const double *x,
                         size_t n0, size_t m)
{
  const size_t image = d->c * d->h * d->w;
  const chunk_ctx cx = {d, ws, x + n0 * image, NULL, m};
  aal_team_par_for(ws->tm, im2col_items, &cx, m * ws->crs,
                   m * ws->crs * ws->pq * sizeof(double));
}

/* items j*C + c: plane c of image j of dx, from dcol = ws->col. */
static void col2im_items(const void *arg, size_t lo, size_t hi)
{
  const chunk_ctx *cx = arg;
  const size_t C = cx->d->c, pq = cx->ws->pq, ld = cx->m * pq;
  const size_t image = C * cx->d->h * cx->d->w;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / C, c = i % C;
    col2im_plane(cx->d, cx->ws->col + j * pq, ld, c, cx->dst + j * image);
  }
}

/* dx images n0 .. n0+m-1 = dcol (ws->col) folded back. */
static void col2im_chunk(const aal_conv2d_dims *d, const workspace *ws, double *dx,
                         size_t n0, size_t m)
{
  const size_t image = d->c * d->h * d->w;
  const chunk_ctx cx = {d, ws, NULL, dx + n0 * image, m};
  aal_team_par_for(ws->tm, col2im_items, &cx, m * d->c,
                   m * ws->crs * ws->pq * sizeof(double));
}

/* items k*m + j: mat [K, m*PQ] <- t [m, K, PQ] (dy of the chunk). */
static void to_mat_items(const void *arg, size_t lo, size_t hi)
{
  const chunk_ctx *cx = arg;
  const size_t K = cx->d->k, pq = cx->ws->pq, m = cx->m;
  for (size_t i = lo; i < hi; i++) {
    const size_t k = i / m, j = i % m;
    memcpy(cx->ws->mat + i * pq, cx->src + (j * K + k) * pq, pq * sizeof(double));
  }
}

/* items j*K + k: t [m, K, PQ] (y of the chunk) <- mat [K, m*PQ]. */
static void from_mat_items(const void *arg, size_t lo, size_t hi)
{
  const chunk_ctx *cx = arg;
  const size_t K = cx->d->k, pq = cx->ws->pq, m = cx->m;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / K, k = i % K;
    memcpy(cx->dst + i * pq, cx->ws->mat + (k * m + j) * pq, pq * sizeof(double));
  }
}

/* mat [K, m*PQ] <-> t [m, K, PQ] (NCHW images n0.. of y or dy, passed offset). */
static void nchw_to_mat(const aal_conv2d_dims *d, const workspace *ws, const double *t,
                        size_t m)
{
  const chunk_ctx cx = {d, ws, t, NULL, m};
  aal_team_par_for(ws->tm, to_mat_items, &cx, d->k * m,
                   d->k * m * ws->pq * sizeof(double));
}

static void mat_to_nchw(const aal_conv2d_dims *d, const workspace *ws, double *t, size_t m)
{
  const chunk_ctx cx = {d, ws, NULL, t, m};
  aal_team_par_for(ws->tm, from_mat_items, &cx, d->k * m,
                   d->k * m * ws->pq * sizeof(double));
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
  workspace ws;
  int rc = aal_conv2d_check_forward(op, x, w, stride, pad, y, &d, err);
  if (rc == AAL_OK)
    rc = workspace_alloc(op, &d, &ws, err);
  if (rc != AAL_OK)
    return rc;
  aal_team tm;
  aal_team_start(&tm, conv_threads(&ws));
  ws.tm = &tm;
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    double *yn = y->data + n0 * d.k * ws.pq;
    im2col_chunk(&d, &ws, x->data, n0, m);
    /* One image: Y' [K, PQ] is already y[n] in NCHW. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d.k, (int)ld, (int)ws.crs,
                1.0, w->data, (int)ws.crs, ws.col, (int)ld, 0.0, m == 1 ? yn : ws.mat,
                (int)ld);
    if (m > 1)
      mat_to_nchw(&d, &ws, yn, m);
  }
  aal_team_stop(&tm);
  workspace_free(&ws);
  return AAL_OK;
}

int aal_conv2d_backward_data(const aal_tensor *dy, const aal_tensor *w, int stride, int pad,
                             aal_tensor *dx, aal_error *err)
{
  const char *op = "conv2d backward_data";
  aal_conv2d_dims d;
  workspace ws;
  int rc = aal_conv2d_check_backward_data(op, dy, w, stride, pad, dx, &d, err);
  if (rc == AAL_OK)
    rc = workspace_alloc(op, &d, &ws, err);
  if (rc != AAL_OK)
    return rc;
  aal_team tm;
  aal_team_start(&tm, conv_threads(&ws));
  ws.tm = &tm;
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    const double *dyn = dy->data + n0 * d.k * ws.pq;
    if (m > 1)
      nchw_to_mat(&d, &ws, dyn, m);
    /* dcol [CRS, m*PQ] = W^T [CRS, K] * dY' [K, m*PQ]; dcol lives in ws.col. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ws.crs, (int)ld, (int)d.k, 1.0,
                w->data, (int)ws.crs, m == 1 ? dyn : ws.mat, (int)ld, 0.0, ws.col, (int)ld);
    col2im_chunk(&d, &ws, dx->data, n0, m);
  }
  aal_team_stop(&tm);
  workspace_free(&ws);
  return AAL_OK;
}

int aal_conv2d_backward_filter(const aal_tensor *x, const aal_tensor *dy, int stride, int pad,
                               aal_tensor *dw, aal_error *err)
{
  const char *op = "conv2d backward_filter";
  aal_conv2d_dims d;
  workspace ws;
  int rc = aal_conv2d_check_backward_filter(op, x, dy, stride, pad, dw, &d, err);
  if (rc == AAL_OK)
    rc = workspace_alloc(op, &d, &ws, err);
  if (rc != AAL_OK)
    return rc;
  aal_team tm;
  aal_team_start(&tm, conv_threads(&ws));
  ws.tm = &tm;
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    const double *dyn = dy->data + n0 * d.k * ws.pq;
    im2col_chunk(&d, &ws, x->data, n0, m);
    if (m > 1)
      nchw_to_mat(&d, &ws, dyn, m);
    /* dW [K, CRS] (+)= dY' [K, m*PQ] * col^T [m*PQ, CRS]. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d.k, (int)ws.crs, (int)ld, 1.0,
                m == 1 ? dyn : ws.mat, (int)ld, ws.col, (int)ld, n0 == 0 ? 0.0 : 1.0, dw->data,
                (int)ws.crs);
  }
  aal_team_stop(&tm);
  workspace_free(&ws);
  return AAL_OK;
}
