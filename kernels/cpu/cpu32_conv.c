/* conv2d in float32: im2col + cblas_sgemm over chunks of images (forward,
 * backward-data, backward-filter side by side); the design of sim/conv2d.c.
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
 * (sim/aal_team.h) that sleeps while the GEMMs run: the backend's team, or one started
 * for the call by the *_ws entry points (which take no backend).
 *
 * Determinism: the chunking depends only on the shapes, each step runs in a fixed
 * order, and the threaded loops write disjoint outputs with the single-threaded
 * arithmetic, so results are bit-identical for given shapes and OpenBLAS thread count. */
#include "cpu32_internal.h"
#include "../backend_check.h"

#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* The shape in size_t, so that index arithmetic never overflows int. */
typedef struct {
  size_t n, c, h, w, k, r, s, stride, pad, p, q;
} dims;

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* *out = a * b; 0 when that overflows. */
static int mul_ok(size_t a, size_t b, size_t *out)
{
  if (a != 0 && b > SIZE_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

typedef struct {
  size_t crs;          /* C*R*S: rows of col */
  size_t pq;           /* P*Q: columns per image */
  size_t nb;           /* images per chunk */
  float *col;          /* [CRS, nb*PQ]: col, or dcol in backward-data */
  float *mat;          /* [K, nb*PQ]: Y' or dY'; NULL when nb == 1 (y or dy used in place) */
  aal_team *tm;  /* helper threads: the backend's, or `own` */
  aal_team *own; /* a team started for this call (stopped by conv_end), or NULL */
} workspace;

static void workspace_free(workspace *ws)
{
  free(ws->col);
  free(ws->mat);
}

/* Images per chunk: CHUNK_CACHE_BYTES worth, raised to CHUNK_MIN_COLS GEMM columns,
 * within the cap `limit` and the batch, and at least 1; then evened out over the
 * chunks that makes (32 images in chunks of 21 become 16 + 16: no short last GEMM).
 * bytes: workspace per image. */
static size_t chunk_images(const dims *d, size_t pq, size_t bytes, size_t limit)
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

static int workspace_alloc(const char *op, const dims *d, size_t limit, workspace *ws,
                           aal_error *err)
{
  memset(ws, 0, sizeof *ws);
  size_t per_image, bytes, ld;
  if (!mul_ok(d->c * d->r, d->s, &ws->crs) || !mul_ok(d->p, d->q, &ws->pq) ||
      ws->crs > SIZE_MAX - d->k || !mul_ok(ws->crs + d->k, ws->pq, &per_image) ||
      !mul_ok(per_image, sizeof(float), &bytes))
    return aal_fail(err, AAL_ENOMEM, "%s: im2col workspace size overflows", op);
  ws->nb = chunk_images(d, ws->pq, bytes, limit ? limit : AAL_CPU32_CONV_WORKSPACE_BYTES);
  /* Every BLAS dimension must fit in an int (OpenBLAS's default blasint). */
  if (!mul_ok(ws->nb, ws->pq, &ld) || ld > INT_MAX || ws->crs > INT_MAX || d->k > INT_MAX)
    return aal_fail(err, AAL_EINVAL,
                    "%s: GEMM of %zu x %zu x %zu images' columns exceeds the BLAS int range",
                    op, d->k, ws->crs, ws->nb);
  /* nb * bytes <= limit, or nb == 1 and bytes did not overflow: no overflow below. */
  ws->col = malloc(ws->crs * ld * sizeof(float));
  if (ws->nb > 1)
    ws->mat = malloc(d->k * ld * sizeof(float));
  if (ws->col == NULL || (ws->nb > 1 && ws->mat == NULL)) {
    workspace_free(ws);
    return aal_fail(err, AAL_ENOMEM, "%s: cannot allocate %zu bytes of im2col workspace", op,
                    ws->nb * bytes);
  }
  return AAL_OK;
}

/* ------------------------------------------------------------ im2col, col2im */

/* Output positions o in [*lo, *hi) read input index o*stride + tap - pad inside
 * [0, in_len); the others read the zero padding. */
static void valid_range(const dims *d, size_t tap, size_t in_len, size_t out_len, size_t *lo,
                        size_t *hi)
{
  *lo = tap >= d->pad ? 0 : (d->pad - tap + d->stride - 1) / d->stride;
  *hi = tap >= in_len + d->pad ? 0 : (in_len + d->pad - 1 - tap) / d->stride + 1;
  *hi = min_size(*hi, out_len);
  *lo = min_size(*lo, *hi);
}

/* One row of col: out[q] = in[q*stride + s - pad] for q in [lo, hi), 0 elsewhere.
 * in is the input row (W values); out has Q values. */
static void gather_row(const dims *d, size_t s, size_t lo, size_t hi, const float *restrict in,
                       float *restrict out)
{
  memset(out, 0, lo * sizeof(float));
  if (lo < hi) {
    const float *src = in + (lo * d->stride + s - d->pad);
    if (d->stride == 1) {
      memcpy(out + lo, src, (hi - lo) * sizeof(float));
    } else {
      for (size_t q = 0; q < hi - lo; q++)
        out[lo + q] = src[q * d->stride];
    }
  }
  memset(out + hi, 0, (d->q - hi) * sizeof(float));
}

/* The inverse of gather_row: in[q*stride + s - pad] += out[q] for q in [lo, hi). */
static void scatter_add_row(const dims *d, size_t s, size_t lo, size_t hi,
                            const float *restrict out, float *restrict in)
{
  if (lo >= hi)
    return;
  float *dst = in + (lo * d->stride + s - d->pad);
  const float *src = out + lo;
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
static void im2col_row(const dims *d, const float *xn, size_t row, float *dst)
{
  const size_t s = row % d->s, r = row / d->s % d->r, c = row / (d->s * d->r);
  const float *plane = xn + c * d->h * d->w;
  size_t plo, phi, qlo, qhi;
  valid_range(d, r, d->h, d->p, &plo, &phi);
  valid_range(d, s, d->w, d->q, &qlo, &qhi);
  memset(dst, 0, plo * d->q * sizeof(float));
  if (d->stride == 1 && d->q == d->w && plo < phi && qlo < qhi) {
    /* Stride 1 and Q == W ("same" padding): rows plo..phi-1 are one contiguous span
     * of the plane, shifted; copy it at once, then zero the columns that read the
     * left and right padding (there the span wrapped into the neighbouring rows). */
    const size_t first = plo * d->q + qlo, last = (phi - 1) * d->q + qhi;
    memcpy(dst + first, plane + (plo + r - d->pad) * d->w + (qlo + s - d->pad),
           (last - first) * sizeof(float));
    for (size_t p = plo; p < phi; p++) {
      memset(dst + p * d->q, 0, qlo * sizeof(float));
      memset(dst + p * d->q + qhi, 0, (d->q - qhi) * sizeof(float));
    }
  } else {
    for (size_t p = plo; p < phi; p++)
      gather_row(d, s, qlo, qhi, plane + (p * d->stride + r - d->pad) * d->w, dst + p * d->q);
  }
  memset(dst + phi * d->q, 0, (d->p - phi) * d->q * sizeof(float));
}

/* Plane c of dxn [C, H, W] = 0, then += the rows (c, r, s) of one image's block of dcol
 * (row stride ld), folded back in the order r, s, p, q. */
static void col2im_plane(const dims *d, const float *dcol, size_t ld, size_t c, float *dxn)
{
  float *plane = dxn + c * d->h * d->w;
  memset(plane, 0, d->h * d->w * sizeof(float));
  for (size_t r = 0; r < d->r; r++) {
    size_t plo, phi;
    valid_range(d, r, d->h, d->p, &plo, &phi);
    for (size_t s = 0; s < d->s; s++) {
      size_t qlo, qhi;
      valid_range(d, s, d->w, d->q, &qlo, &qhi);
      const float *src = dcol + ((c * d->r + r) * d->s + s) * ld;
      for (size_t p = plo; p < phi; p++)
        scatter_add_row(d, s, qlo, qhi, src + p * d->q,
                        plane + (p * d->stride + r - d->pad) * d->w);
    }
  }
}

/* ------------------------------------------------------- chunk operations
 * Each is a par_for over independent items (one output row or plane each). */

typedef struct {
  const dims *d;
  const workspace *ws;
  const float *src;  /* x (image n0 on), dy (image n0 on) */
  float *dst;        /* dx or y (image n0 on) */
  size_t m;          /* images in the chunk */
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
static void im2col_chunk(const dims *d, const workspace *ws, const float *x, size_t n0,
                         size_t m)
{
  const size_t image = d->c * d->h * d->w;
  const chunk_ctx cx = {d, ws, x + n0 * image, NULL, m};
  aal_team_par_for(ws->tm, im2col_items, &cx, m * ws->crs,
                    m * ws->crs * ws->pq * sizeof(float));
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
static void col2im_chunk(const dims *d, const workspace *ws, float *dx, size_t n0, size_t m)
{
  const size_t image = d->c * d->h * d->w;
  const chunk_ctx cx = {d, ws, NULL, dx + n0 * image, m};
  aal_team_par_for(ws->tm, col2im_items, &cx, m * d->c, m * ws->crs * ws->pq * sizeof(float));
}

/* items k*m + j: mat [K, m*PQ] <- t [m, K, PQ] (dy of the chunk). */
static void to_mat_items(const void *arg, size_t lo, size_t hi)
{
  const chunk_ctx *cx = arg;
  const size_t K = cx->d->k, pq = cx->ws->pq, m = cx->m;
  for (size_t i = lo; i < hi; i++) {
    const size_t k = i / m, j = i % m;
    memcpy(cx->ws->mat + i * pq, cx->src + (j * K + k) * pq, pq * sizeof(float));
  }
}

/* items j*K + k: t [m, K, PQ] (y of the chunk) <- mat [K, m*PQ]. */
static void from_mat_items(const void *arg, size_t lo, size_t hi)
{
  const chunk_ctx *cx = arg;
  const size_t K = cx->d->k, pq = cx->ws->pq, m = cx->m;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / K, k = i % K;
    memcpy(cx->dst + i * pq, cx->ws->mat + (k * m + j) * pq, pq * sizeof(float));
  }
}

/* ws->mat [K, m*PQ] <- t [m, K, PQ] (dy from image n0, passed offset). */
static void nchw_to_mat(const dims *d, const workspace *ws, const float *t, size_t m)
{
  const chunk_ctx cx = {d, ws, t, NULL, m};
  aal_team_par_for(ws->tm, to_mat_items, &cx, d->k * m, d->k * m * ws->pq * sizeof(float));
}

/* t [m, K, PQ] (y from image n0, passed offset) <- ws->mat [K, m*PQ]. */
static void mat_to_nchw(const dims *d, const workspace *ws, float *t, size_t m)
{
  const chunk_ctx cx = {d, ws, NULL, t, m};
  aal_team_par_for(ws->tm, from_mat_items, &cx, d->k * m, d->k * m * ws->pq * sizeof(float));
}

/* ---------------------------------------------------------------- the ops */

/* Checks cs and the pointers, fills d, allocates the workspace and takes the team:
 * `team` (the backend's) or, when NULL, one started in *own for the call. */
static int conv_begin(const char *op, const aal_conv_shape *cs, const void *a, const void *b,
                      const void *c, size_t limit, aal_team *team, dims *d,
                      workspace *ws, aal_team *own, aal_error *err)
{
  int rc = aal_be_check_conv(cs, op, err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "input, input, output", err, 3, a, b, c);
  if (rc != AAL_OK)
    return rc;
  /* aal_be_check_conv: every size positive, stride >= 1, pad >= 0. */
  *d = (dims){(size_t)cs->n, (size_t)cs->c, (size_t)cs->h, (size_t)cs->w, (size_t)cs->k,
              (size_t)cs->r, (size_t)cs->s, (size_t)cs->stride, (size_t)cs->pad,
              (size_t)cs->p, (size_t)cs->q};
  rc = workspace_alloc(op, d, limit, ws, err);
  if (rc != AAL_OK)
    return rc;
  if (team != NULL) {
    ws->tm = team;
  } else {
    /* the largest loop of a call: im2col or col2im of a whole chunk */
    aal_team_start(own,
                         aal_team_threads(ws->nb * ws->crs * ws->pq * sizeof(float)));
    ws->tm = ws->own = own;
  }
  return AAL_OK;
}

static void conv_end(workspace *ws)
{
  if (ws->own != NULL)
    aal_team_stop(ws->own);
  workspace_free(ws);
}

static int conv_forward(aal_team *team, const aal_conv_shape *cs, const void *x,
                        const void *w, void *y, size_t workspace_bytes, aal_error *err)
{
  static const char op[] = "cpu32 conv_forward";
  dims d;
  workspace ws;
  aal_team own;
  const int rc = conv_begin(op, cs, x, w, y, workspace_bytes, team, &d, &ws, &own, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    float *yn = (float *)y + n0 * d.k * ws.pq;
    im2col_chunk(&d, &ws, x, n0, m);
    /* Y' [K, m*PQ] = W [K, CRS] * col; one image: Y' is y[n] in NCHW already. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d.k, (int)ld, (int)ws.crs,
                1.0f, w, (int)ws.crs, ws.col, (int)ld, 0.0f, m == 1 ? yn : ws.mat, (int)ld);
    if (m > 1)
      mat_to_nchw(&d, &ws, yn, m);
  }
  conv_end(&ws);
  return AAL_OK;
}

static int conv_backward_data(aal_team *team, const aal_conv_shape *cs, const void *dy,
                              const void *w, void *dx, size_t workspace_bytes, aal_error *err)
{
  static const char op[] = "cpu32 conv_backward_data";
  dims d;
  workspace ws;
  aal_team own;
  const int rc = conv_begin(op, cs, dy, w, dx, workspace_bytes, team, &d, &ws, &own, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    const float *dyn = (const float *)dy + n0 * d.k * ws.pq;
    if (m > 1)
      nchw_to_mat(&d, &ws, dyn, m);
    /* dcol [CRS, m*PQ] = W^T [CRS, K] * dY' [K, m*PQ]; dcol lives in ws.col. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ws.crs, (int)ld, (int)d.k, 1.0f,
                w, (int)ws.crs, m == 1 ? dyn : ws.mat, (int)ld, 0.0f, ws.col, (int)ld);
    col2im_chunk(&d, &ws, dx, n0, m);
  }
  conv_end(&ws);
  return AAL_OK;
}

static int conv_backward_filter(aal_team *team, const aal_conv_shape *cs,
                                const void *x, const void *dy, void *dw,
                                size_t workspace_bytes, aal_error *err)
{
  static const char op[] = "cpu32 conv_backward_filter";
  dims d;
  workspace ws;
  aal_team own;
  const int rc = conv_begin(op, cs, x, dy, dw, workspace_bytes, team, &d, &ws, &own, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t n0 = 0; n0 < d.n; n0 += ws.nb) {
    const size_t m = min_size(ws.nb, d.n - n0), ld = m * ws.pq;
    const float *dyn = (const float *)dy + n0 * d.k * ws.pq;
    im2col_chunk(&d, &ws, x, n0, m);
    if (m > 1)
      nchw_to_mat(&d, &ws, dyn, m);
    /* dW [K, CRS] (+)= dY' [K, m*PQ] * col^T [m*PQ, CRS]: beta 0 on the first chunk. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d.k, (int)ws.crs, (int)ld, 1.0f,
                m == 1 ? dyn : ws.mat, (int)ld, ws.col, (int)ld, n0 == 0 ? 0.0f : 1.0f, dw,
                (int)ws.crs);
  }
  conv_end(&ws);
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
