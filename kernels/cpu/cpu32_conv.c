/* conv2d in float32: im2col + cblas_sgemm, one image at a time (forward, backward-data,
 * backward-filter side by side).
 *
 *   x [N, C, H, W]   w [K, C, R, S]   y [N, K, P, Q]
 *   col [C*R*S, P*Q]: col[(c*R + r)*S + s, p*Q + q] = x[c, p*stride - pad + r,
 *                                                      q*stride - pad + s] (0 outside)
 *   forward:          y_n = W [K, CRS] * col_n
 *   backward-data:    col = W^T dy_n, scattered back (col2im, accumulating) into dx_n
 *   backward-filter:  dW = sum_n dy_n [K, PQ] * col_n^T
 * A 1x1, stride-1, unpadded conv uses x_n itself as col_n (no copy). */
#include "cpu32_internal.h"
#include "../backend_check.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static int is_pointwise(const aal_conv_shape *cs)
{
  return cs->r == 1 && cs->s == 1 && cs->stride == 1 && cs->pad == 0;
}

/* Workspace of C*R*S*P*Q floats, or NULL with err filled (the op named). */
static float *col_alloc(const aal_conv_shape *cs, const char *op, aal_error *err)
{
  const size_t rows = (size_t)cs->c * cs->r * cs->s, cols = (size_t)cs->p * cs->q;
  if (aal_be_check_count(op, rows, cols * sizeof(float), err) != AAL_OK)
    return NULL;
  float *col = malloc(rows * cols * sizeof(float));
  if (col == NULL)
    aal_fail(err, AAL_ENOMEM, "%s: im2col workspace of %zu x %zu floats", op, rows, cols);
  return col;
}

/* col_n from x_n [C, H, W]; a row (c, r, s) at a time, zero where the window leaves x. */
static void im2col(const aal_conv_shape *cs, const float *x, float *col)
{
  const int P = cs->p, Q = cs->q, st = cs->stride;
  for (int c = 0; c < cs->c; c++)
    for (int r = 0; r < cs->r; r++)
      for (int s = 0; s < cs->s; s++) {
        float *row = col + ((size_t)(c * cs->r + r) * cs->s + s) * P * Q;
        for (int p = 0; p < P; p++) {
          const int ih = p * st - cs->pad + r;
          float *out = row + (size_t)p * Q;
          if (ih < 0 || ih >= cs->h) {
            memset(out, 0, (size_t)Q * sizeof(float));
            continue;
          }
          const float *in = x + ((size_t)c * cs->h + ih) * cs->w;
          for (int q = 0; q < Q; q++) {
            const int iw = q * st - cs->pad + s;
            out[q] = (iw >= 0 && iw < cs->w) ? in[iw] : 0.0f;
          }
        }
      }
}

/* dx_n [C, H, W] = sum of col entries over the positions each input element feeds. */
static void col2im(const aal_conv_shape *cs, const float *col, float *dx)
{
  const int P = cs->p, Q = cs->q, st = cs->stride;
  memset(dx, 0, (size_t)cs->c * cs->h * cs->w * sizeof(float));
  for (int c = 0; c < cs->c; c++)
    for (int r = 0; r < cs->r; r++)
      for (int s = 0; s < cs->s; s++) {
        const float *row = col + ((size_t)(c * cs->r + r) * cs->s + s) * P * Q;
        for (int p = 0; p < P; p++) {
          const int ih = p * st - cs->pad + r;
          if (ih < 0 || ih >= cs->h)
            continue;
          float *out = dx + ((size_t)c * cs->h + ih) * cs->w;
          const float *in = row + (size_t)p * Q;
          for (int q = 0; q < Q; q++) {
            const int iw = q * st - cs->pad + s;
            if (iw >= 0 && iw < cs->w)
              out[iw] += in[q];
          }
        }
      }
}

static int conv_args(const aal_conv_shape *cs, const char *op, const void *a, const void *b,
                     const void *c, aal_error *err)
{
  int rc = aal_be_check_conv(cs, op, err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "input, input, output", err, 3, a, b, c);
  return rc;
}

int aal_cpu32_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                           const void *w, void *y, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 conv_forward";
  int rc = conv_args(cs, op, x, w, y, err);
  if (rc != AAL_OK)
    return rc;
  const int crs = cs->c * cs->r * cs->s, pq = cs->p * cs->q;
  const size_t x_img = (size_t)cs->c * cs->h * cs->w, y_img = (size_t)cs->k * pq;
  const int direct = is_pointwise(cs);
  float *col = direct ? NULL : col_alloc(cs, op, err);
  if (!direct && col == NULL)
    return err ? err->code : AAL_ENOMEM;
  for (int n = 0; n < cs->n; n++) {
    const float *xn = (const float *)x + n * x_img;
    if (!direct)
      im2col(cs, xn, col);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cs->k, pq, crs, 1.0f, w, crs,
                direct ? xn : col, pq, 0.0f, (float *)y + n * y_img, pq);
  }
  free(col);
  return AAL_OK;
}

int aal_cpu32_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs,
                                 const void *dy, const void *w, void *dx, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 conv_backward_data";
  int rc = conv_args(cs, op, dy, w, dx, err);
  if (rc != AAL_OK)
    return rc;
  const int crs = cs->c * cs->r * cs->s, pq = cs->p * cs->q;
  const size_t x_img = (size_t)cs->c * cs->h * cs->w, y_img = (size_t)cs->k * pq;
  const int direct = is_pointwise(cs);
  float *col = direct ? NULL : col_alloc(cs, op, err);
  if (!direct && col == NULL)
    return err ? err->code : AAL_ENOMEM;
  for (int n = 0; n < cs->n; n++) {
    float *dxn = (float *)dx + n * x_img;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, crs, pq, cs->k, 1.0f, w, crs,
                (const float *)dy + n * y_img, pq, 0.0f, direct ? dxn : col, pq);
    if (!direct)
      col2im(cs, col, dxn);
  }
  free(col);
  return AAL_OK;
}

int aal_cpu32_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                   const void *x, const void *dy, void *dw, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 conv_backward_filter";
  int rc = conv_args(cs, op, x, dy, dw, err);
  if (rc != AAL_OK)
    return rc;
  const int crs = cs->c * cs->r * cs->s, pq = cs->p * cs->q;
  const size_t x_img = (size_t)cs->c * cs->h * cs->w, y_img = (size_t)cs->k * pq;
  const int direct = is_pointwise(cs);
  float *col = direct ? NULL : col_alloc(cs, op, err);
  if (!direct && col == NULL)
    return err ? err->code : AAL_ENOMEM;
  for (int n = 0; n < cs->n; n++) {
    const float *xn = (const float *)x + n * x_img;
    if (!direct)
      im2col(cs, xn, col);
    /* beta = 1 after the first image: dW accumulates over the batch */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cs->k, crs, pq, 1.0f,
                (const float *)dy + n * y_img, pq, direct ? xn : col, pq, n ? 1.0f : 0.0f, dw,
                crs);
  }
  free(col);
  return AAL_OK;
}
