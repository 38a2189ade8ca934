/* Embeddings in float32 (sim/layers/embed.c): token embedding and patchify.
 * Token embedding: y[b, t] = table[ids[b, t]] + pos[t] (one float addition; a copy
 *   without pos).  Backward: dtable zeroed, then dy's rows added at their ids in (b, t)
 *   order in float; dpos[t] = sum over b of dy[b, t] in float, in b order.  One thread
 *   (a scatter; the order of the additions is fixed, so are the bits).
 * Patchify: a copy, y[b, ph (w/p) + pw, c p p + i p + j] = x[b, c, ph p + i, pw p + j];
 *   its backward the inverse copy.  Exact. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <string.h>

static int embed_args(const char *op, int b, int t, int vocab, int d, const int *ids,
                      aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "b", b, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "t", t, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "vocab", vocab, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "d", d, err)) != AAL_OK ||
      (rc = aal_be_check_count(op, (size_t)b * (size_t)t, (size_t)d * sizeof(float), err)) != AAL_OK)
    return rc;
  if (ids == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: ids is NULL", op);
  for (size_t i = 0; i < (size_t)b * (size_t)t; i++)
    if (ids[i] < 0 || ids[i] >= vocab)
      return aal_fail(err, AAL_EINVAL, "%s: id %d at (b %zu, t %zu) is outside 0..%d", op,
                      ids[i], i / (size_t)t, i % (size_t)t, vocab - 1);
  return AAL_OK;
}

int aal_cpu32_embed_forward(const aal_backend *be, int b, int t, int vocab, int d,
                            const int *ids, const void *table, const void *pos, void *y,
                            aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 embed_forward";
  int rc;
  if ((rc = embed_args(op, b, t, vocab, d, ids, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "table, y", err, 2, table, y)) != AAL_OK)
    return rc;
  const float *ft = table, *fp = pos;
  float *fy = y;
  for (size_t i = 0; i < (size_t)b * (size_t)t; i++) {
    const float *row = ft + (size_t)ids[i] * (size_t)d;
    float *yr = fy + i * (size_t)d;
    for (size_t j = 0; j < (size_t)d; j++)
      yr[j] = fp != NULL ? row[j] + fp[(i % (size_t)t) * (size_t)d + j] : row[j];
  }
  return AAL_OK;
}

int aal_cpu32_embed_backward(const aal_backend *be, int b, int t, int vocab, int d,
                             const int *ids, const void *dy, void *dtable, void *dpos,
                             aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 embed_backward";
  int rc;
  if ((rc = embed_args(op, b, t, vocab, d, ids, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, dtable", err, 2, dy, dtable)) != AAL_OK)
    return rc;
  const float *fdy = dy;
  float *fdt = dtable, *fdp = dpos;
  memset(fdt, 0, (size_t)vocab * (size_t)d * sizeof(float));
  if (fdp != NULL)
    memset(fdp, 0, (size_t)t * (size_t)d * sizeof(float));
  for (size_t i = 0; i < (size_t)b * (size_t)t; i++) {
    const float *dyr = fdy + i * (size_t)d;
    float *row = fdt + (size_t)ids[i] * (size_t)d;
    for (size_t j = 0; j < (size_t)d; j++)
      row[j] += dyr[j];
    if (fdp != NULL)
      for (size_t j = 0; j < (size_t)d; j++)
        fdp[(i % (size_t)t) * (size_t)d + j] += dyr[j];
  }
  return AAL_OK;
}

/* ---------------------------------------------------------------- patchify */

static int patch_args(const char *op, int b, int c, int h, int w, int p, const void *img,
                      const void *patches, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "b", b, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "h", h, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "w", w, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "p", p, err)) != AAL_OK ||
      (rc = aal_be_check_count(op, (size_t)b * (size_t)c, (size_t)h * (size_t)w * sizeof(float),
                               err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "image, patches", err, 2, img, patches)) != AAL_OK)
    return rc;
  if (h % p != 0 || w % p != 0)
    return aal_fail(err, AAL_EINVAL, "%s: the image is %dx%d, not divisible by p = %d", op, h,
                    w, p);
  return AAL_OK;
}

/* Every element of the patches with its element of the image, in the patches' order. */
static void patch_copy(float *img, float *pt, size_t b, size_t c, size_t h, size_t w, size_t p,
                       int to_patches)
{
  const size_t nw = w / p, n = (h / p) * nw, f = c * p * p;
  for (size_t bb = 0; bb < b; bb++)
    for (size_t pn = 0; pn < n; pn++)
      for (size_t fi = 0; fi < f; fi++) {
        const size_t cc = fi / (p * p), i = (fi / p) % p, j = fi % p;
        float *xe = img + ((bb * c + cc) * h + (pn / nw) * p + i) * w + (pn % nw) * p + j;
        float *ye = pt + (bb * n + pn) * f + fi;
        if (to_patches)
          *ye = *xe;
        else
          *xe = *ye;
      }
}

int aal_cpu32_patchify_forward(const aal_backend *be, int b, int c, int h, int w, int p,
                               const void *x, void *y, aal_error *err)
{
  (void)be;
  int rc = patch_args("cpu32 patchify_forward", b, c, h, w, p, x, y, err);
  if (rc == AAL_OK)
    patch_copy((float *)x, y, (size_t)b, (size_t)c, (size_t)h, (size_t)w, (size_t)p, 1);
  return rc;
}

int aal_cpu32_patchify_backward(const aal_backend *be, int b, int c, int h, int w, int p,
                                const void *dy, void *dx, aal_error *err)
{
  (void)be;
  int rc = patch_args("cpu32 patchify_backward", b, c, h, w, p, dx, dy, err);
  if (rc == AAL_OK)
    patch_copy(dx, (float *)dy, (size_t)b, (size_t)c, (size_t)h, (size_t)w, (size_t)p, 0);
  return rc;
}
