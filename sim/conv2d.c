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
#include <stdlib.h>
#include <string.h>

#include "conv2d_check.h"

/* Hard cap on the workspace: 64 MiB holds a whole batch of 32 for every ResNet-18
 * layer from layer2 on, and is still an unremarkable allocation. */
#define DEFAULT_WORKSPACE_BYTES ((size_t)64 << 20)
/* Preferred workspace: measured on a 2-core Xeon (2 MiB L2), chunks of a few MiB beat
 * whole-batch chunks, because col is then still in cache when the GEMM reads it and
 * the allocation is reused by malloc instead of being page-faulted in on every call. */
#define CHUNK_CACHE_BYTES ((size_t)4 << 20)
/* ...but late layers (P*Q = 16) need several images per chunk for an efficient GEMM. */
#define CHUNK_MIN_COLS 1024

static size_t workspace_limit = DEFAULT_WORKSPACE_BYTES;

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

/* Columns [0, PQ) of col (row stride ld) from one image xn [C, H, W]. */
static void im2col_image(const aal_conv2d_dims *d, const double *xn, double *col, size_t ld)
{
  for (size_t c = 0; c < d->c; c++) {
    const double *plane = xn + c * d->h * d->w;
    for (size_t r = 0; r < d->r; r++) {
      size_t plo, phi;
      valid_range(d, r, d->h, d->p, &plo, &phi);
      for (size_t s = 0; s < d->s; s++) {
        size_t qlo, qhi;
        valid_range(d, s, d->w, d->q, &qlo, &qhi);
        double *dst = col + ((c * d->r + r) * d->s + s) * ld;
        memset(dst, 0, plo * d->q * sizeof(double));
        for (size_t p = plo; p < phi; p++)
          gather_row(d, s, qlo, qhi, plane + (p * d->stride + r - d->pad) * d->w,
                     dst + p * d->q);
        memset(dst + phi * d->q, 0, (d->p - phi) * d->q * sizeof(double));
      }
    }
  }
}

/* dxn [C, H, W] += the columns [0, PQ) of dcol (row stride ld), folded back. */
static void col2im_image(const aal_conv2d_dims *d, const double *dcol, size_t ld, double *dxn)
{
  for (size_t c = 0; c < d->c; c++) {
    double *plane = dxn + c * d->h * d->w;
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
}

/* col [CRS, m*PQ] for images n0 .. n0+m-1 of x. */
static void im2col_chunk(const aal_conv2d_dims *d, const workspace *ws, const double *x,
                         size_t n0, size_t m)
{
  const size_t image = d->c * d->h * d->w;
  for (size_t j = 0; j < m; j++)
    im2col_image(d, x + (n0 + j) * image, ws->col + j * ws->pq, m * ws->pq);
}

/* mat [K, m*PQ] <-> t [m, K, PQ] (NCHW images n0.. of y or dy, passed offset). */
static void nchw_to_mat(const aal_conv2d_dims *d, const workspace *ws, const double *t,
                        size_t m)
{
  for (size_t k = 0; k < d->k; k++)
    for (size_t j = 0; j < m; j++)
      memcpy(ws->mat + (k * m + j) * ws->pq, t + (j * d->k + k) * ws->pq,
             ws->pq * sizeof(double));
}

static void mat_to_nchw(const aal_conv2d_dims *d, const workspace *ws, double *t, size_t m)
{
  for (size_t j = 0; j < m; j++)
    for (size_t k = 0; k < d->k; k++)
      memcpy(t + (j * d->k + k) * ws->pq, ws->mat + (k * m + j) * ws->pq,
             ws->pq * sizeof(double));
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
  const size_t image = d.c * d.h * d.w;
  memset(dx->data, 0, dx->size * sizeof(double));
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    const double *dyn = dy->data + n0 * d.k * ws.pq;
    if (m > 1)
      nchw_to_mat(&d, &ws, dyn, m);
    /* dcol [CRS, m*PQ] = W^T [CRS, K] * dY' [K, m*PQ]; dcol lives in ws.col. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ws.crs, (int)ld, (int)d.k, 1.0,
                w->data, (int)ws.crs, m == 1 ? dyn : ws.mat, (int)ld, 0.0, ws.col, (int)ld);
    for (size_t j = 0; j < m; j++)
      col2im_image(&d, ws.col + j * ws.pq, ld, dx->data + (n0 + j) * image);
  }
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
  workspace_free(&ws);
  return AAL_OK;
}
