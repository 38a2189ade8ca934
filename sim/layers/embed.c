/* Embeddings, double precision: token embedding (a table lookup plus a learned position
 * embedding) and patchify, the reshape of patch embedding (patch embedding = patchify +
 * linear, sim/layers/transformer.h).
 *
 * Token embedding:  ids [B, T] ints in 0..V-1;  table, dtable [V, D];  pos, dpos [T, D]
 *   (NULL: no position embedding);  y, dy [B, T, D].
 *   y[b, t, :] = table[ids[b, t], :] + pos[t, :].
 *   Backward: dtable = scatter-add, dtable[id, :] = sum of dy[b, t, :] over the (b, t)
 *   holding id (zeroed first; rows of ids that never occur stay 0), dpos[t, :] = sum_b
 *   dy[b, t, :].  The ids are the only thing backward needs (B T ints).
 *
 * Patchify:  x, dx [B, C, Hi, Wi];  y, dy [B, N, C p p], N = (Hi/p) (Wi/p).
 *   y[b, ph (Wi/p) + pw, c p p + i p + j] = x[b, c, ph p + i, pw p + j]; backward is the
 *   inverse reshape (every element of dx receives exactly one element of dy). */
#include "sim/layers/transformer.h"

#include <string.h>

/* t must be [d0, d1]. */
static int require_2(const aal_tensor *t, size_t d0, size_t d1, const char *op,
                     const char *name, const char *why, aal_error *err)
{
  int rc = aal_tensor_check(t, AAL_F64, 2, NULL, op, name, NULL, err);
  if (rc != AAL_OK)
    return rc;
  if (t->shape[0] != d0 || t->shape[1] != d1) {
    char s[64];
    aal_tensor_shape_str(t, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zux%zu (%s)", op, name, s,
                    d0, d1, why);
  }
  return AAL_OK;
}

/* ids: B T entries in 0..V-1. */
static int check_ids(const int *ids, size_t b, size_t t, size_t vocab, const char *op,
                     aal_error *err)
{
  if (ids == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: ids is NULL", op);
  for (size_t i = 0; i < b * t; i++)
    if (ids[i] < 0 || (size_t)ids[i] >= vocab)
      return aal_fail(err, AAL_EINVAL, "%s: id %d at (b %zu, t %zu) is outside 0..%zu", op,
                      ids[i], i / t, i % t, vocab - 1);
  return AAL_OK;
}

int aal_embed_args(const char *op, const int *ids, const aal_tensor *table,
                   const aal_tensor *pos, const aal_tensor *y, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(y, AAL_F64, 3, NULL, op, "y", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(table, AAL_F64, 2, NULL, op, "table", NULL, err)) != AAL_OK)
    return rc;
  const size_t b = y->shape[0], t = y->shape[1], d = y->shape[2];
  if (table->shape[1] != d) {
    char s[64];
    aal_tensor_shape_str(table, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "%s: table has shape %s, expected Vx%zu (D from y)", op,
                    s, d);
  }
  if (pos != NULL &&
      (rc = require_2(pos, t, d, op, "pos", "T x D from y", err)) != AAL_OK)
    return rc;
  if (aal_tensor_shares(y, table) || (pos != NULL && aal_tensor_shares(y, pos)))
    return aal_fail(err, AAL_EINVAL, "%s: y must not share storage with table or pos", op);
  return check_ids(ids, b, t, table->shape[0], op, err);
}

int aal_embed_forward(const int *ids, const aal_tensor *table, const aal_tensor *pos,
                      aal_tensor *y, aal_error *err)
{
  int rc = aal_embed_args("embed forward", ids, table, pos, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t b = y->shape[0], t = y->shape[1], d = y->shape[2];
  for (size_t i = 0; i < b * t; i++) {
    const double *row = table->data + (size_t)ids[i] * d;
    double *yr = y->data + i * d;
    for (size_t j = 0; j < d; j++)
      yr[j] = pos != NULL ? row[j] + pos->data[(i % t) * d + j] : row[j];
  }
  return AAL_OK;
}

int aal_embed_backward(const int *ids, const aal_tensor *dy, aal_tensor *dtable,
                       aal_tensor *dpos, aal_error *err)
{
  static const char op[] = "embed backward";
  int rc = aal_embed_args(op, ids, dtable, dpos, dy, err);
  if (rc != AAL_OK)
    return rc;
  const size_t b = dy->shape[0], t = dy->shape[1], d = dy->shape[2];
  memset(dtable->data, 0, dtable->size * sizeof(double));
  if (dpos != NULL)
    memset(dpos->data, 0, dpos->size * sizeof(double));
  for (size_t i = 0; i < b * t; i++) { /* in (b, t) order: a fixed order of the additions */
    const double *dyr = dy->data + i * d;
    double *row = dtable->data + (size_t)ids[i] * d;
    for (size_t j = 0; j < d; j++)
      row[j] += dyr[j];
    if (dpos != NULL)
      for (size_t j = 0; j < d; j++)
        dpos->data[(i % t) * d + j] += dyr[j];
  }
  return AAL_OK;
}

/* ---------------------------------------------------------------- patchify */

int aal_patchify_args(const char *op, const aal_tensor *img, int p, const aal_tensor *patches,
                      aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(img, AAL_F64, 4, NULL, op, "image", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(patches, AAL_F64, 3, NULL, op, "patches", NULL, err)) != AAL_OK)
    return rc;
  const size_t b = img->shape[0], c = img->shape[1], hi = img->shape[2], wi = img->shape[3];
  if (p < 1)
    return aal_fail(err, AAL_EINVAL, "%s: patch size p is %d, must be >= 1", op, p);
  if (hi % (size_t)p != 0 || wi % (size_t)p != 0)
    return aal_fail(err, AAL_EINVAL, "%s: the image is %zux%zu, not divisible by the patch "
                    "size p = %d", op, hi, wi, p);
  const size_t n = (hi / (size_t)p) * (wi / (size_t)p), f = c * (size_t)p * (size_t)p;
  if (patches->shape[0] != b || patches->shape[1] != n || patches->shape[2] != f) {
    char s[64];
    aal_tensor_shape_str(patches, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "%s: patches have shape %s, expected %zux%zux%zu ([B, N, "
                    "C p p] with p = %d)", op, s, b, n, f, p);
  }
  if (aal_tensor_shares(img, patches))
    return aal_fail(err, AAL_EINVAL, "%s: the image and the patches must not share storage",
                    op);
  return AAL_OK;
}

/* Every element of y [B, N, C p p] with its element of x [B, C, Hi, Wi], in y's order:
 * to_patches 1 copies x into y (forward), 0 y into x (backward). */
static void patch_copy(double *x, double *y, size_t b, size_t c, size_t hi, size_t wi,
                       size_t p, int to_patches)
{
  const size_t nw = wi / p, n = (hi / p) * nw, f = c * p * p;
  for (size_t bb = 0; bb < b; bb++)
    for (size_t pn = 0; pn < n; pn++)
      for (size_t fi = 0; fi < f; fi++) {
        const size_t cc = fi / (p * p), i = (fi / p) % p, j = fi % p;
        const size_t row = (pn / nw) * p + i, col = (pn % nw) * p + j;
        double *xe = x + ((bb * c + cc) * hi + row) * wi + col;
        double *ye = y + (bb * n + pn) * f + fi;
        if (to_patches)
          *ye = *xe;
        else
          *xe = *ye;
      }
}

int aal_patchify_forward(const aal_tensor *x, int p, aal_tensor *y, aal_error *err)
{
  int rc = aal_patchify_args("patchify forward", x, p, y, err);
  if (rc != AAL_OK)
    return rc;
  patch_copy(x->data, y->data, x->shape[0], x->shape[1], x->shape[2], x->shape[3], (size_t)p,
             1);
  return AAL_OK;
}

int aal_patchify_backward(const aal_tensor *dy, int p, aal_tensor *dx, aal_error *err)
{
  int rc = aal_patchify_args("patchify backward", dx, p, dy, err);
  if (rc != AAL_OK)
    return rc;
  patch_copy(dx->data, dy->data, dx->shape[0], dx->shape[1], dx->shape[2], dx->shape[3],
             (size_t)p, 0);
  return AAL_OK;
}
