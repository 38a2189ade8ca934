/* ReLU, double precision.  x, y, dy, dx: F64, any rank, one shape; mask: BITS of that
 * shape, bit i = (x[i] > 0), packed as sim/core/tensor.h says.
 * The mask is what the tape stores: 1 bit per element instead of 64. */
#include "sim/layers/layers.h"

#include <stdint.h>

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
  if ((rc = aal_tensor_check(x, AAL_F64, 0, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 0, x, op, "y", "x", err)) != AAL_OK)
    return rc;
  return mask != NULL ? aal_tensor_check(mask, AAL_BITS, 0, x, op, "mask", "x", err) : AAL_OK;
}

int aal_relu_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *mask,
                           const aal_tensor *dx, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(dy, AAL_F64, 0, NULL, op, "dy", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(mask, AAL_BITS, 0, dy, op, "mask", "dy", err)) != AAL_OK)
    return rc;
  return aal_tensor_check(dx, AAL_F64, 0, dy, op, "dx", "dy", err);
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
