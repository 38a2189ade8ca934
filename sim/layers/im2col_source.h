/* Convolution by im2col + GEMM over chunks of images, written once for both element
 * types: the double reference convolution (sim/layers/conv.c) and the float32 CPU backend
 * (kernels/cpu/conv.c) include it.  Internal to libaal; not installed.
 *
 * A template in the manner of GSL's templates_on.h / templates_off.h.  Before each
 * inclusion the including file defines
 *   IM2COL_REAL    the element type: double or float
 *   IM2COL_SUFFIX  the suffix of every name the inclusion defines: f64 or f32
 *   IM2COL_GEMM    the cblas GEMM of that type: cblas_dgemm or cblas_sgemm
 * and gets static types and functions NAME_SUFFIX (im2col_forward_f64, workspace_f32,
 * ...).  The inclusion undefines the three macros again, so the file may be included
 * once per element type.  The type-independent helpers above the template part are
 * defined once (include guard).
 *
 *   x [N, C, H, W]   w [K, C, R, S]   y [N, K, P, Q]   (sim/layers/conv.h)
 *
 * The batch is processed in chunks of nb images; nb is the including file's choice
 * (its chunk_images: the two files tune it differently).  For a chunk of m <= nb images
 * from image n0, im2col builds
 *   col [C*R*S, m*P*Q],  col[(c*R + r)*S + s, j*P*Q + p*Q + q]
 *                          = x[n0 + j, c, p*stride - pad + r, q*stride - pad + s]  (0 outside)
 * so that every direction is one large GEMM even where P*Q is tiny:
 *   forward          Y'  [K, m*PQ]   = W [K, CRS] * col,        then Y' -> y (NCHW)
 *   backward data    dcol[CRS, m*PQ] = W^T * dY',               then col2im -> dx
 *   backward filter  dW  [K, CRS]   += dY' [K, m*PQ] * col^T    (beta 0 on the first chunk)
 * where dY' [K, m*PQ] is dy of the chunk gathered from NCHW, and Y' is scattered back to
 * NCHW.  With m = 1, Y' and dY' are y and dy of the image themselves (no copy).
 *
 * The memory-bound loops (im2col, col2im, the NCHW copies) run on a team of helper
 * threads (sim/core/team.h) that sleeps while the GEMMs run; every output element is
 * written by exactly one item with the single-threaded arithmetic, so results are
 * bit-identical for any thread count, and, since the chunking depends only on the
 * shapes and each step runs in a fixed order, for a given OpenBLAS build and thread
 * count. */

/* ------------------------------------------------- type-independent (once) */
#ifndef AAL_IM2COL_SOURCE_COMMON
#define AAL_IM2COL_SOURCE_COMMON

#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim/core/error.h"
#include "sim/core/team.h"
#include "sim/layers/conv_check.h"

static inline size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* *out = a * b; 0 when that overflows. */
static inline int mul_ok(size_t a, size_t b, size_t *out)
{
  if (a != 0 && b > SIZE_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

/* The including file's chunk policy: images per chunk (>= 1, <= N unless N is 0) for a
 * workspace of `bytes` per image (col + Y', (CRS + K) * PQ elements), PQ columns per
 * image and a hard cap of `limit` bytes (exceeded only by a single image). */
typedef size_t aal_im2col_chunk_fn(const aal_conv2d_dims *d, size_t pq, size_t bytes,
                                   size_t limit);

/* Output positions o in [*lo, *hi) read input index o*stride + tap - pad inside
 * [0, in_len); the others read the zero padding. */
static inline void valid_range(const aal_conv2d_dims *d, size_t tap, size_t in_len,
                               size_t out_len, size_t *lo, size_t *hi)
{
  *lo = tap >= d->pad ? 0 : (d->pad - tap + d->stride - 1) / d->stride;
  *hi = tap >= in_len + d->pad ? 0 : (in_len + d->pad - 1 - tap) / d->stride + 1;
  *hi = min_size(*hi, out_len);
  *lo = min_size(*lo, *hi);
}

#endif /* AAL_IM2COL_SOURCE_COMMON */

/* ------------------------------------------------ per element type (each time) */
#if !defined(IM2COL_REAL) || !defined(IM2COL_SUFFIX) || !defined(IM2COL_GEMM)
#error "define IM2COL_REAL, IM2COL_SUFFIX and IM2COL_GEMM before including im2col_source.h"
#endif
#if defined(REAL) || defined(FN)
#error "im2col_source.h uses the macros REAL and FN itself"
#endif

#define REAL IM2COL_REAL
#define IM2COL_CAT2(a, b) a##_##b
#define IM2COL_CAT(a, b) IM2COL_CAT2(a, b)
#define FN(name) IM2COL_CAT(name, IM2COL_SUFFIX)

typedef struct {
  size_t crs;   /* C*R*S: rows of col */
  size_t pq;    /* P*Q: columns per image */
  size_t nb;    /* images per chunk */
  REAL *col;    /* [CRS, nb*PQ]: col, or dcol in backward-data */
  REAL *mat;    /* [K, nb*PQ]: Y' or dY'; NULL when nb == 1 (y or dy is used in place) */
  aal_team *tm;  /* helper threads: the caller's, or `own` */
  aal_team *own; /* a team started for this call (stopped by FN(end)), or NULL */
} FN(workspace);

static void FN(workspace_free)(FN(workspace) *ws)
{
  free(ws->col);
  free(ws->mat);
}

/* Sizes and allocates ws for d: nb = chunk(d, PQ, bytes per image, limit). */
static int FN(workspace_alloc)(const char *op, const aal_conv2d_dims *d,
                               aal_im2col_chunk_fn *chunk, size_t limit, FN(workspace) *ws,
                               aal_error *err)
{
  memset(ws, 0, sizeof *ws);
  size_t per_image, bytes, ld;
  if (!mul_ok(d->c * d->r, d->s, &ws->crs) || !mul_ok(d->p, d->q, &ws->pq) ||
      ws->crs > SIZE_MAX - d->k || !mul_ok(ws->crs + d->k, ws->pq, &per_image) ||
      !mul_ok(per_image, sizeof(REAL), &bytes))
    return aal_fail(err, AAL_ENOMEM, "%s: im2col workspace size overflows", op);
  ws->nb = chunk(d, ws->pq, bytes, limit);
  /* Every BLAS dimension must fit in an int (OpenBLAS's default blasint). */
  if (!mul_ok(ws->nb, ws->pq, &ld) || ld > INT_MAX || ws->crs > INT_MAX || d->k > INT_MAX)
    return aal_fail(err, AAL_EINVAL,
                    "%s: GEMM of %zu x %zu x %zu images' columns exceeds the BLAS int range",
                    op, d->k, ws->crs, ws->nb);
  /* nb * bytes <= limit, or nb == 1 and bytes did not overflow: no overflow below. */
  ws->col = malloc(ws->crs * ld * sizeof(REAL));
  if (ws->nb > 1)
    ws->mat = malloc(d->k * ld * sizeof(REAL));
  if (ws->col == NULL || (ws->nb > 1 && ws->mat == NULL)) {
    FN(workspace_free)(ws);
    return aal_fail(err, AAL_ENOMEM, "%s: cannot allocate %zu bytes of im2col workspace", op,
                    ws->nb * bytes);
  }
  return AAL_OK;
}

/* Allocates the workspace and takes the team: `team` or, when NULL, one started in
 * *own for the call, sized by the largest loop of a call (im2col or col2im of a whole
 * chunk).  On success FN(end) undoes both. */
static int FN(begin)(const char *op, const aal_conv2d_dims *d, aal_im2col_chunk_fn *chunk,
                     size_t limit, aal_team *team, aal_team *own, FN(workspace) *ws,
                     aal_error *err)
{
  const int rc = FN(workspace_alloc)(op, d, chunk, limit, ws, err);
  if (rc != AAL_OK)
    return rc;
  if (team != NULL) {
    ws->tm = team;
  } else {
    aal_team_start(own, aal_team_threads(ws->nb * ws->crs * ws->pq * sizeof(REAL)));
    ws->tm = ws->own = own;
  }
  return AAL_OK;
}

static void FN(end)(FN(workspace) *ws)
{
  if (ws->own != NULL)
    aal_team_stop(ws->own);
  FN(workspace_free)(ws);
}

/* ------------------------------------------------------------ im2col, col2im */

/* One row of col: out[q] = in[q*stride + s - pad] for q in [lo, hi), 0 elsewhere.
 * in is the input row (W values); out has Q values. */
static void FN(gather_row)(const aal_conv2d_dims *d, size_t s, size_t lo, size_t hi,
                           const REAL *restrict in, REAL *restrict out)
{
  memset(out, 0, lo * sizeof(REAL));
  if (lo < hi) {
    const REAL *src = in + (lo * d->stride + s - d->pad);
    if (d->stride == 1) {
      memcpy(out + lo, src, (hi - lo) * sizeof(REAL));
    } else {
      for (size_t q = 0; q < hi - lo; q++)
        out[lo + q] = src[q * d->stride];
    }
  }
  memset(out + hi, 0, (d->q - hi) * sizeof(REAL));
}

/* The inverse of gather_row: in[q*stride + s - pad] += out[q] for q in [lo, hi). */
static void FN(scatter_add_row)(const aal_conv2d_dims *d, size_t s, size_t lo, size_t hi,
                                const REAL *restrict out, REAL *restrict in)
{
  if (lo >= hi)
    return;
  REAL *dst = in + (lo * d->stride + s - d->pad);
  const REAL *src = out + lo;
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
static void FN(im2col_row)(const aal_conv2d_dims *d, const REAL *xn, size_t row, REAL *dst)
{
  const size_t s = row % d->s, r = row / d->s % d->r, c = row / (d->s * d->r);
  const REAL *plane = xn + c * d->h * d->w;
  size_t plo, phi, qlo, qhi;
  valid_range(d, r, d->h, d->p, &plo, &phi);
  valid_range(d, s, d->w, d->q, &qlo, &qhi);
  memset(dst, 0, plo * d->q * sizeof(REAL));
  if (d->stride == 1 && d->q == d->w && plo < phi && qlo < qhi) {
    /* Stride 1 and Q == W ("same" padding): rows plo..phi-1 are one contiguous span
     * of the plane, shifted; copy it at once, then zero the columns that read the
     * left and right padding (there the span wrapped into the neighbouring rows). */
    const size_t first = plo * d->q + qlo, last = (phi - 1) * d->q + qhi;
    memcpy(dst + first, plane + (plo + r - d->pad) * d->w + (qlo + s - d->pad),
           (last - first) * sizeof(REAL));
    for (size_t p = plo; p < phi; p++) {
      memset(dst + p * d->q, 0, qlo * sizeof(REAL));
      memset(dst + p * d->q + qhi, 0, (d->q - qhi) * sizeof(REAL));
    }
  } else {
    for (size_t p = plo; p < phi; p++)
      FN(gather_row)(d, s, qlo, qhi, plane + (p * d->stride + r - d->pad) * d->w,
                     dst + p * d->q);
  }
  memset(dst + phi * d->q, 0, (d->p - phi) * d->q * sizeof(REAL));
}

/* Plane c of dxn [C, H, W] = 0, then += the rows (c, r, s) of one image's block of dcol
 * (row stride ld), folded back in the order r, s, p, q. */
static void FN(col2im_plane)(const aal_conv2d_dims *d, const REAL *dcol, size_t ld, size_t c,
                             REAL *dxn)
{
  REAL *plane = dxn + c * d->h * d->w;
  memset(plane, 0, d->h * d->w * sizeof(REAL));
  for (size_t r = 0; r < d->r; r++) {
    size_t plo, phi;
    valid_range(d, r, d->h, d->p, &plo, &phi);
    for (size_t s = 0; s < d->s; s++) {
      size_t qlo, qhi;
      valid_range(d, s, d->w, d->q, &qlo, &qhi);
      const REAL *src = dcol + ((c * d->r + r) * d->s + s) * ld;
      for (size_t p = plo; p < phi; p++)
        FN(scatter_add_row)(d, s, qlo, qhi, src + p * d->q,
                            plane + (p * d->stride + r - d->pad) * d->w);
    }
  }
}

/* ------------------------------------------------------- chunk operations
 * Each is a par_for over independent items (one output row or plane each). */

typedef struct {
  const aal_conv2d_dims *d;
  const FN(workspace) *ws;
  const REAL *src;  /* x or dy (image n0 on) */
  REAL *dst;        /* dx or y (image n0 on) */
  size_t m;         /* images in the chunk */
} FN(chunk_ctx);

/* items j*CRS + row: row `row` of col for image j. */
static void FN(im2col_items)(const void *arg, size_t lo, size_t hi)
{
  const FN(chunk_ctx) *cx = arg;
  const size_t crs = cx->ws->crs, pq = cx->ws->pq, ld = cx->m * pq;
  const size_t image = cx->d->c * cx->d->h * cx->d->w;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / crs, row = i % crs;
    FN(im2col_row)(cx->d, cx->src + j * image, row, cx->ws->col + row * ld + j * pq);
  }
}

/* col [CRS, m*PQ] for images n0 .. n0+m-1 of x. */
static void FN(im2col_chunk)(const aal_conv2d_dims *d, const FN(workspace) *ws,
                             const REAL *x, size_t n0, size_t m)
{
  const size_t image = d->c * d->h * d->w;
  const FN(chunk_ctx) cx = {d, ws, x + n0 * image, NULL, m};
  aal_team_par_for(ws->tm, FN(im2col_items), &cx, m * ws->crs,
                   m * ws->crs * ws->pq * sizeof(REAL));
}

/* items j*C + c: plane c of image j of dx, from dcol = ws->col. */
static void FN(col2im_items)(const void *arg, size_t lo, size_t hi)
{
  const FN(chunk_ctx) *cx = arg;
  const size_t C = cx->d->c, pq = cx->ws->pq, ld = cx->m * pq;
  const size_t image = C * cx->d->h * cx->d->w;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / C, c = i % C;
    FN(col2im_plane)(cx->d, cx->ws->col + j * pq, ld, c, cx->dst + j * image);
  }
}

/* dx images n0 .. n0+m-1 = dcol (ws->col) folded back. */
static void FN(col2im_chunk)(const aal_conv2d_dims *d, const FN(workspace) *ws, REAL *dx,
                             size_t n0, size_t m)
{
  const size_t image = d->c * d->h * d->w;
  const FN(chunk_ctx) cx = {d, ws, NULL, dx + n0 * image, m};
  aal_team_par_for(ws->tm, FN(col2im_items), &cx, m * d->c,
                   m * ws->crs * ws->pq * sizeof(REAL));
}

/* items k*m + j: mat [K, m*PQ] <- t [m, K, PQ] (dy of the chunk). */
static void FN(to_mat_items)(const void *arg, size_t lo, size_t hi)
{
  const FN(chunk_ctx) *cx = arg;
  const size_t K = cx->d->k, pq = cx->ws->pq, m = cx->m;
  for (size_t i = lo; i < hi; i++) {
    const size_t k = i / m, j = i % m;
    memcpy(cx->ws->mat + i * pq, cx->src + (j * K + k) * pq, pq * sizeof(REAL));
  }
}

/* items j*K + k: t [m, K, PQ] (y of the chunk) <- mat [K, m*PQ]. */
static void FN(from_mat_items)(const void *arg, size_t lo, size_t hi)
{
  const FN(chunk_ctx) *cx = arg;
  const size_t K = cx->d->k, pq = cx->ws->pq, m = cx->m;
  for (size_t i = lo; i < hi; i++) {
    const size_t j = i / K, k = i % K;
    memcpy(cx->dst + i * pq, cx->ws->mat + (k * m + j) * pq, pq * sizeof(REAL));
  }
}

/* ws->mat [K, m*PQ] <- t [m, K, PQ] (dy from image n0, passed offset). */
static void FN(nchw_to_mat)(const aal_conv2d_dims *d, const FN(workspace) *ws, const REAL *t,
                            size_t m)
{
  const FN(chunk_ctx) cx = {d, ws, t, NULL, m};
  aal_team_par_for(ws->tm, FN(to_mat_items), &cx, d->k * m,
                   d->k * m * ws->pq * sizeof(REAL));
}

/* t [m, K, PQ] (y from image n0, passed offset) <- ws->mat [K, m*PQ]. */
static void FN(mat_to_nchw)(const aal_conv2d_dims *d, const FN(workspace) *ws, REAL *t,
                            size_t m)
{
  const FN(chunk_ctx) cx = {d, ws, NULL, t, m};
  aal_team_par_for(ws->tm, FN(from_mat_items), &cx, d->k * m,
                   d->k * m * ws->pq * sizeof(REAL));
}

/* ------------------------------------------------------- the three directions
 * d checked and ws from FN(begin); the tensors do not overlap. */

/* y [N, K, P, Q] = conv(x [N, C, H, W], w [K, C, R, S]). */
static void FN(im2col_forward)(const aal_conv2d_dims *d, const FN(workspace) *ws,
                               const REAL *x, const REAL *w, REAL *y)
{
  for (size_t n0 = 0; n0 < d->n; n0 += ws->nb) {
    const size_t m = min_size(ws->nb, d->n - n0), ld = m * ws->pq;
    REAL *yn = y + n0 * d->k * ws->pq;
    FN(im2col_chunk)(d, ws, x, n0, m);
    /* Y' [K, m*PQ] = W [K, CRS] * col; one image: Y' is y[n] in NCHW already. */
    IM2COL_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d->k, (int)ld, (int)ws->crs,
                (REAL)1, w, (int)ws->crs, ws->col, (int)ld, (REAL)0, m == 1 ? yn : ws->mat,
                (int)ld);
    if (m > 1)
      FN(mat_to_nchw)(d, ws, yn, m);
  }
}

/* dx [N, C, H, W] from dy [N, K, P, Q] and w [K, C, R, S]. */
static void FN(im2col_backward_data)(const aal_conv2d_dims *d, const FN(workspace) *ws,
                                     const REAL *dy, const REAL *w, REAL *dx)
{
  for (size_t n0 = 0; n0 < d->n; n0 += ws->nb) {
    const size_t m = min_size(ws->nb, d->n - n0), ld = m * ws->pq;
    const REAL *dyn = dy + n0 * d->k * ws->pq;
    if (m > 1)
      FN(nchw_to_mat)(d, ws, dyn, m);
    /* dcol [CRS, m*PQ] = W^T [CRS, K] * dY' [K, m*PQ]; dcol lives in ws->col. */
    IM2COL_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ws->crs, (int)ld, (int)d->k,
                (REAL)1, w, (int)ws->crs, m == 1 ? dyn : ws->mat, (int)ld, (REAL)0, ws->col,
                (int)ld);
    FN(col2im_chunk)(d, ws, dx, n0, m);
  }
}

/* dw [K, C, R, S] from x [N, C, H, W] and dy [N, K, P, Q]. */
static void FN(im2col_backward_filter)(const aal_conv2d_dims *d, const FN(workspace) *ws,
                                       const REAL *x, const REAL *dy, REAL *dw)
{
  for (size_t n0 = 0; n0 < d->n; n0 += ws->nb) {
    const size_t m = min_size(ws->nb, d->n - n0), ld = m * ws->pq;
    const REAL *dyn = dy + n0 * d->k * ws->pq;
    FN(im2col_chunk)(d, ws, x, n0, m);
    if (m > 1)
      FN(nchw_to_mat)(d, ws, dyn, m);
    /* dW [K, CRS] (+)= dY' [K, m*PQ] * col^T [m*PQ, CRS]: beta 0 on the first chunk. */
    IM2COL_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d->k, (int)ws->crs, (int)ld,
                (REAL)1, m == 1 ? dyn : ws->mat, (int)ld, ws->col, (int)ld,
                n0 == 0 ? (REAL)0 : (REAL)1, dw, (int)ws->crs);
  }
}

/* templates_off: the next inclusion may instantiate another type. */
#undef FN
#undef IM2COL_CAT
#undef IM2COL_CAT2
#undef REAL
#undef IM2COL_REAL
#undef IM2COL_SUFFIX
#undef IM2COL_GEMM
