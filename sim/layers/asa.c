/* ASA's stored activation (SPEC section 4) for a conv input x that follows a ReLU
 * (x >= 0): one sign bit per element, s = (x > 0), decoded as eps * s in both passes.
 * Forward uses h = x + eps*s; the weight gradient uses r = eps*s.  The published variant
 * (rule option decode=pm1) decodes the same bits as +-eps for the weight gradient only:
 * aal_asa_decode_pm1. */
#include <stdint.h>

#include "sim/layers/layers.h"

int aal_asa_args(const char *op, const aal_tensor *a, const aal_tensor *bits,
                    const aal_tensor *b, aal_error *err)
{
  if (a == NULL || bits == NULL || b == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: NULL tensor", op);
  if (a->dtype != AAL_F64 || b->dtype != AAL_F64 || bits->dtype != AAL_BITS)
    return aal_fail(err, AAL_EINVAL, "%s: wrong element types (values, bits, values)", op);
  if (!aal_tensor_same_shape(a, bits) || !aal_tensor_same_shape(a, b))
    return aal_fail(err, AAL_ESHAPE, "%s: the three tensors differ in shape", op);
  return AAL_OK;
}

int aal_asa_input(const aal_tensor *x, double eps, aal_tensor *h, aal_tensor *bits,
                  aal_error *err)
{
  int rc = aal_asa_args("asa input", x, bits, h, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = x->size;
  for (size_t w = 0; w * 32 < n; w++) {
    const size_t end = (w + 1) * 32 < n ? (w + 1) * 32 : n;
    uint32_t word = 0;
    for (size_t i = w * 32; i < end; i++) {
      const double v = x->data[i];
      if (!(v >= 0))
        return aal_fail(err, AAL_EINVAL, "ASA input element %zu is %g; ASA convs must follow "
                        "a ReLU", i, v);
      const int bit = v > 0;
      word |= (uint32_t)bit << (i & 31);
      /* the same decoding as aal_asa_decode */
      h->data[i] = v + (bit ? eps : 0.0);
    }
    bits->bits[w] = word;
  }
  return AAL_OK;
}

/* out[i] = one where bit i is set, zero where it is not: a word at a time, since this
 * runs on every ASA conv in both passes */
static int decode(const char *what, const aal_tensor *bits, double one, double zero,
                  aal_tensor *out, aal_error *err)
{
  int rc = aal_asa_args(what, out, bits, out, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = bits->size;
  for (size_t w = 0; w * 32 < n; w++) {
    const uint32_t word = bits->bits[w];
    const size_t end = (w + 1) * 32 < n ? (w + 1) * 32 : n;
    for (size_t i = w * 32; i < end; i++)
      out->data[i] = ((word >> (i & 31)) & 1u) ? one : zero;
  }
  return AAL_OK;
}

int aal_asa_decode(const aal_tensor *bits, double eps, aal_tensor *out, aal_error *err)
{
  return decode("asa decode", bits, eps, 0.0, out, err);
}

int aal_asa_decode_pm1(const aal_tensor *bits, double eps, aal_tensor *out, aal_error *err)
{
  return decode("asa decode pm1", bits, eps, -eps, out, err);
}
