/* Ops with packed bits in float32: ReLU (forward writes y and the mask of x > 0,
 * backward gates dy by it) and ASA sign packing (bits = x > 0; unpack gives eps * bit).
 * Bits: uint32 words, element i in bit i%32 of word i/32; a word is assembled in a
 * register and stored once, so the unused high bits of the last word are zero. */
#include "cpu32_internal.h"
#include "../backend_check.h"

/* Word j of the mask of x > 0 (elements 32j .. min(32j + 32, n) - 1). */
static uint32_t positive_word(const float *x, size_t n, size_t j)
{
  const size_t lo = 32 * j, hi = lo + 32 < n ? lo + 32 : n;
  uint32_t word = 0;
  for (size_t i = lo; i < hi; i++)
    word |= (uint32_t)(x[i] > 0.0f) << (i - lo);
  return word;
}

static int bits_args(const char *op, size_t n, const void *a, const void *b, aal_error *err)
{
  int rc = aal_be_check_count(op, n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "input, output", err, 2, a, b);
  return rc;
}

int aal_cpu32_relu_forward(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                           aal_error *err)
{
  (void)be;
  int rc = bits_args("cpu32 relu_forward", n, x, y, err);
  if (rc == AAL_OK && mask == NULL)
    rc = aal_fail(err, AAL_EINVAL, "cpu32 relu_forward: mask is NULL");
  if (rc != AAL_OK)
    return rc;
  const float *px = x;
  float *py = y;
  uint32_t *words = mask;
  for (size_t i = 0; i < n; i++)
    py[i] = px[i] > 0.0f ? px[i] : 0.0f;
  for (size_t j = 0; j < (n + 31) / 32; j++)
    words[j] = positive_word(px, n, j);
  return AAL_OK;
}

int aal_cpu32_relu_backward(const aal_backend *be, size_t n, const void *dy, const void *mask,
                            void *dx, aal_error *err)
{
  (void)be;
  int rc = bits_args("cpu32 relu_backward", n, dy, dx, err);
  if (rc == AAL_OK && mask == NULL)
    rc = aal_fail(err, AAL_EINVAL, "cpu32 relu_backward: mask is NULL");
  if (rc != AAL_OK)
    return rc;
  const float *pdy = dy;
  const uint32_t *words = mask;
  float *pdx = dx;
  for (size_t i = 0; i < n; i++)
    pdx[i] = ((words[i / 32] >> (i % 32)) & 1u) ? pdy[i] : 0.0f;
  return AAL_OK;
}

int aal_cpu32_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                        aal_error *err)
{
  (void)be;
  int rc = bits_args("cpu32 sign_pack", n, x, bits, err);
  if (rc != AAL_OK)
    return rc;
  uint32_t *words = bits;
  for (size_t j = 0; j < (n + 31) / 32; j++)
    words[j] = positive_word(x, n, j);
  return AAL_OK;
}

int aal_cpu32_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                          void *out, aal_error *err)
{
  (void)be;
  int rc = bits_args("cpu32 sign_unpack", n, bits, out, err);
  if (rc != AAL_OK)
    return rc;
  const uint32_t *words = bits;
  const float e = (float)eps;
  float *po = out;
  for (size_t i = 0; i < n; i++)
    po[i] = ((words[i / 32] >> (i % 32)) & 1u) ? e : 0.0f;
  return AAL_OK;
}

/* ASA conv input in one pass, a word at a time: bits = (x > 0), h = x + (bit ? e : 0)
 * with e = (float)eps - exactly what sign_pack, sign_unpack and add give (add rounds
 * x + e once; x + 0 is x, and -0 + 0 is +0 as add makes it). */
int aal_cpu32_asa_input(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                        void *bits, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 asa_input";
  int rc = bits_args(op, n, x, h, err);
  if (rc == AAL_OK && bits == NULL)
    rc = aal_fail(err, AAL_EINVAL, "%s: bits is NULL", op);
  if (rc != AAL_OK)
    return rc;
  const float *px = x;
  const float e = (float)eps;
  float *ph = h;
  uint32_t *words = bits;
  for (size_t j = 0; j < (n + 31) / 32; j++) {
    const size_t lo = 32 * j, hi = lo + 32 < n ? lo + 32 : n;
    uint32_t word = 0;
    for (size_t i = lo; i < hi; i++) {
      const uint32_t bit = px[i] > 0.0f;
      word |= bit << (i - lo);
      ph[i] = px[i] + (bit ? e : 0.0f);
    }
    words[j] = word;
  }
  return AAL_OK;
}
