/* ReLU, double precision.  x, y, dy, dx: F64, any rank, one shape; mask: BITS of that
 * shape, bit i = (x[i] > 0), packed as sim/core/tensor.h says.
 * The mask is what the tape stores: 1 bit per element instead of 64. */
#include "sim/layers/layers.h"

#include <stdint.h>

/* Requires t non-NULL, of dtype `dtype` and of ref's shape (ref already validated). */
static int require_like(const aal_tensor *t, const aal_tensor *ref, enum aal_dtype dtype,
                        const char *op, const char *name, const char *ref_name,
                        aal_error *err)
{
  if (t == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: %s is NULL", op, name);
  if (t->dtype != dtype)
    return aal_fail(err, AAL_EINVAL, "%s: %s has the wrong element type (expected %s)", op,
                    name, dtype == AAL_F64 ? "F64" : "BITS");
  if (!aal_tensor_same_shape(t, ref)) {
    char st[64], sr[64];
    aal_tensor_shape_str(t, st, sizeof st);
    aal_tensor_shape_str(ref, sr, sizeof sr);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s but %s has shape %s", op, name, st,
                    ref_name, sr);
  }
  return AAL_OK;
}

static int require_f64(const aal_tensor *t, const char *op, const char *name, aal_error *err)
{
  if (t == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: %s is NULL", op, name);
  if (t->dtype != AAL_F64)
    return aal_fail(err, AAL_EINVAL, "%s: %s has the wrong element type (expected F64)", op,
                    name);
  return AAL_OK;
}

/* Packs bits (x[i] > 0) for i in [0, n) a whole word at a time; the unused high bits of
 * the last word are written as 0 so that equal masks are equal bit for bit. */
static void pack_positive(const double *x, size_t n, uint32_t *bits)
{
  const size_t words = aal_bit_words(n);
  for (size_t k = 0; k < words; k++) {
    const size_t lo = k * 32, hi = lo + 32 < n ? lo + 32 : n;
    uint32_t w = 0;
    for (size_t i = lo; i < hi; i++)
      w |= (uint32_t)(x[i] > 0.0) << (i - lo);
    bits[k] = w;
  }
}

int aal_relu_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                          const aal_tensor *mask, aal_error *err)
{
  int rc;
  if ((rc = require_f64(x, op, "x", err)) != AAL_OK ||
      (rc = require_like(y, x, AAL_F64, op, "y", "x", err)) != AAL_OK)
    return rc;
  return mask != NULL ? require_like(mask, x, AAL_BITS, op, "mask", "x", err) : AAL_OK;
}

int aal_relu_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *mask,
                           const aal_tensor *dx, aal_error *err)
{
  int rc;
  if ((rc = require_f64(dy, op, "dy", err)) != AAL_OK ||
      (rc = require_like(mask, dy, AAL_BITS, op, "mask", "dy", err)) != AAL_OK)
    return rc;
  return require_like(dx, dy, AAL_F64, op, "dx", "dy", err);
}

int aal_relu_forward(const aal_tensor *x, aal_tensor *y, aal_tensor *mask, aal_error *err)
{
  int rc = aal_relu_forward_args("relu forward", x, y, mask, err);
  if (rc != AAL_OK)
    return rc;
  /* Mask first: y may alias x. */
  if (mask != NULL)
    pack_positive(x->data, x->size, mask->bits);
  /* NaN is not <= 0, so it propagates instead of turning into 0 (as max() might). */
  for (size_t i = 0; i < x->size; i++)
    y->data[i] = x->data[i] <= 0.0 ? 0.0 : x->data[i];
  return AAL_OK;
}

int aal_relu_backward(const aal_tensor *dy, const aal_tensor *mask, aal_tensor *dx,
                      aal_error *err)
{
  int rc = aal_relu_backward_args("relu backward", dy, mask, dx, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = dy->size, words = aal_bit_words(n);
  for (size_t k = 0; k < words; k++) {
    const uint32_t w = mask->bits[k];
    const size_t lo = k * 32, hi = lo + 32 < n ? lo + 32 : n;
    for (size_t i = lo; i < hi; i++)
      dx->data[i] = (w >> (i - lo)) & 1u ? dy->data[i] : 0.0;
  }
  return AAL_OK;
}
