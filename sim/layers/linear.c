/* Fully connected layer, double precision, products by cblas_dgemm (row-major).
 *   x, dx [N, I];  w, dw [O, I] (PyTorch layout);  b, db [O];  y, dy [N, O].
 *   y = x w^T + b;  dx = dy w;  dw = dy^T x;  db = sum_n dy[n, :]. */
#include "sim/layers/layers.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

/* Requires t (already of the right rank) to have sizes {d0[, d1]}; `why` explains the
 * expectation in the message, e.g. "N x O from x and w". */
static int require_sizes(const aal_tensor *t, size_t d0, size_t d1, const char *op,
                         const char *name, const char *why, aal_error *err)
{
  const int ok = t->ndim == 1 ? t->shape[0] == d0 : t->shape[0] == d0 && t->shape[1] == d1;
  if (ok)
    return AAL_OK;
  char s[64];
  aal_tensor_shape_str(t, s, sizeof s);
  if (t->ndim == 1)
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zu (%s)", op, name, s, d0,
                    why);
  return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zux%zu (%s)", op, name, s,
                  d0, d1, why);
}

/* x and w agree on I, and every size fits the int that CBLAS takes. */
static int check_x_w(const aal_tensor *x, const aal_tensor *w, const char *op, aal_error *err)
{
  if (x->shape[1] != w->shape[1]) {
    char sx[64], sw[64];
    aal_tensor_shape_str(x, sx, sizeof sx);
    aal_tensor_shape_str(w, sw, sizeof sw);
    return aal_fail(err, AAL_ESHAPE,
                    "%s: x has shape %s but w has shape %s (w must be [O, I], I = %zu)", op,
                    sx, sw, x->shape[1]);
  }
  if (x->shape[0] > INT_MAX || x->shape[1] > INT_MAX || w->shape[0] > INT_MAX)
    return aal_fail(err, AAL_EINVAL, "%s: sizes %zu, %zu, %zu exceed the CBLAS int range", op,
                    x->shape[0], x->shape[1], w->shape[0]);
  return AAL_OK;
}

int aal_linear_forward_args(const char *op, const aal_tensor *x, const aal_tensor *w,
                            const aal_tensor *b, const aal_tensor *y, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 2, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(w, AAL_F64, 2, NULL, op, "w", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(b, AAL_F64, 1, NULL, op, "b", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 2, NULL, op, "y", NULL, err)) != AAL_OK ||
      (rc = check_x_w(x, w, op, err)) != AAL_OK)
    return rc;
  const size_t n = x->shape[0], out = w->shape[0];
  if ((rc = require_sizes(b, out, 0, op, "b", "O from w", err)) != AAL_OK)
    return rc;
  return require_sizes(y, n, out, op, "y", "N x O from x and w", err);
}

int aal_linear_forward(const aal_tensor *x, const aal_tensor *w, const aal_tensor *b,
                       aal_tensor *y, aal_error *err)
{
  int rc = aal_linear_forward_args("linear forward", x, w, b, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
  /* y = b broadcast, then y += x w^T (beta = 1, so y's old content is never read as is). */
  for (size_t r = 0; r < n; r++)
    memcpy(y->data + r * out, b->data, out * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0, x->data,
              (int)in, w->data, (int)in, 1.0, y->data, (int)out);
  return AAL_OK;
}

/* db[o] = sum_n dy[n, o]  (dy [N, O]). */
static void sum_rows(const aal_tensor *dy, aal_tensor *db)
{
  const size_t n = dy->shape[0], out = dy->shape[1];
  for (size_t o = 0; o < out; o++)
    db->data[o] = 0.0;
  for (size_t r = 0; r < n; r++)
    for (size_t o = 0; o < out; o++)
      db->data[o] += dy->data[r * out + o];
}

int aal_linear_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                             const aal_tensor *w, const aal_tensor *dx, const aal_tensor *dw,
                             const aal_tensor *db, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(dy, AAL_F64, 2, NULL, op, "dy", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(x, AAL_F64, 2, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(w, AAL_F64, 2, NULL, op, "w", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(dw, AAL_F64, 2, NULL, op, "dw", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(db, AAL_F64, 1, NULL, op, "db", NULL, err)) != AAL_OK ||
      (dx != NULL && (rc = aal_tensor_check(dx, AAL_F64, 2, NULL, op, "dx", NULL, err)) != AAL_OK) ||
      (rc = check_x_w(x, w, op, err)) != AAL_OK)
    return rc;
  const size_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
  if ((rc = require_sizes(dy, n, out, op, "dy", "N x O from x and w", err)) != AAL_OK ||
      (rc = require_sizes(dw, out, in, op, "dw", "the shape of w", err)) != AAL_OK ||
      (rc = require_sizes(db, out, 0, op, "db", "O from w", err)) != AAL_OK ||
      (dx != NULL &&
       (rc = require_sizes(dx, n, in, op, "dx", "the shape of x", err)) != AAL_OK))
    return rc;
  return AAL_OK;
}

int aal_linear_backward(const aal_tensor *dy, const aal_tensor *x, const aal_tensor *w,
                        aal_tensor *dx, aal_tensor *dw, aal_tensor *db, aal_error *err)
{
  int rc = aal_linear_backward_args("linear backward", dy, x, w, dx, dw, db, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
  /* Outputs are zeroed before beta = 0 products so that a poisoned (NaN) buffer can never
   * leak through a BLAS that scales C by beta instead of overwriting it. */
  if (dx != NULL) {
    memset(dx->data, 0, dx->size * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)out, 1.0,
                dy->data, (int)out, w->data, (int)in, 0.0, dx->data, (int)in);
  }
  memset(dw->data, 0, dw->size * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0,
              dy->data, (int)out, x->data, (int)in, 0.0, dw->data, (int)in);
  sum_rows(dy, db);
  return AAL_OK;
}
