/* Ops with packed bits in float32: ReLU (forward writes y and the mask of x > 0,
 * backward gates dy by it) and ASA sign packing (bits = x > 0; unpack gives eps * bit).
 * Bits: uint32 words, element i in bit i%32 of word i/32; a word is assembled in a
 * register and stored once, so the unused high bits of the last word are zero.
 * Threads (the backend's team, aal_team_par_for): every op is split over whole mask
 * words (word j and its elements 32j .. 32j+31), so no two threads write one word;
 * each element's arithmetic is the single-threaded one, whatever the thread count. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

/* Word j of the mask of x > 0 (elements 32j .. min(32j + 32, n) - 1). */
static uint32_t positive_word(const float *x, size_t n, size_t j)
{
  const size_t lo = 32 * j, hi = lo + 32 < n ? lo + 32 : n;
  uint32_t word = 0;
  for (size_t i = lo; i < hi; i++)
    word |= (uint32_t)(x[i] > 0.0f) << (i - lo);
  return word;
}

/* Elements [*lo, *hi) of mask words [wlo, whi) over n elements. */
static void word_elements(size_t n, size_t wlo, size_t whi, size_t *lo, size_t *hi)
{
  *lo = 32 * wlo < n ? 32 * wlo : n;
  *hi = 32 * whi < n ? 32 * whi : n;
}

/* The arguments of a word-split loop: n elements, x/dy/bits in, y/h/dx/bits/out out. */
typedef struct {
  size_t n;
  const float *x;
  const uint32_t *in_words;
  float e;
  float *y;
  uint32_t *out_words;
} bits_ctx;

static int bits_args(const char *op, size_t n, const void *a, const void *b, aal_error *err)
{
  int rc = aal_be_check_count(op, n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "input, output", err, 2, a, b);
  return rc;
}

static void relu_forward_words(const void *arg, size_t wlo, size_t whi)
{
  const bits_ctx *a = arg;
  size_t lo, hi;
  word_elements(a->n, wlo, whi, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    a->y[i] = a->x[i] > 0.0f ? a->x[i] : 0.0f;
  for (size_t j = wlo; j < whi; j++)
    a->out_words[j] = positive_word(a->x, a->n, j);
}

int aal_cpu32_relu_forward(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                           aal_error *err)
{
  int rc = bits_args("cpu32 relu_forward", n, x, y, err);
  if (rc == AAL_OK && mask == NULL)
    rc = aal_fail(err, AAL_EINVAL, "cpu32 relu_forward: mask is NULL");
  if (rc != AAL_OK)
    return rc;
  const bits_ctx a = {n, x, NULL, 0.0f, y, mask};
  aal_team_par_for(aal_cpu32_be_team(be), relu_forward_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void relu_backward_words(const void *arg, size_t wlo, size_t whi)
{
  const bits_ctx *a = arg;
  size_t lo, hi;
  word_elements(a->n, wlo, whi, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    a->y[i] = ((a->in_words[i / 32] >> (i % 32)) & 1u) ? a->x[i] : 0.0f;
}

int aal_cpu32_relu_backward(const aal_backend *be, size_t n, const void *dy, const void *mask,
                            void *dx, aal_error *err)
{
  int rc = bits_args("cpu32 relu_backward", n, dy, dx, err);
  if (rc == AAL_OK && mask == NULL)
    rc = aal_fail(err, AAL_EINVAL, "cpu32 relu_backward: mask is NULL");
  if (rc != AAL_OK)
    return rc;
  const bits_ctx a = {n, dy, mask, 0.0f, dx, NULL};
  aal_team_par_for(aal_cpu32_be_team(be), relu_backward_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void sign_pack_words(const void *arg, size_t wlo, size_t whi)
{
  const bits_ctx *a = arg;
  for (size_t j = wlo; j < whi; j++)
    a->out_words[j] = positive_word(a->x, a->n, j);
}

int aal_cpu32_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                        aal_error *err)
{
  int rc = bits_args("cpu32 sign_pack", n, x, bits, err);
  if (rc != AAL_OK)
    return rc;
  const bits_ctx a = {n, x, NULL, 0.0f, NULL, bits};
  /* writes only n/8 bytes: the n floats read are the work */
  aal_team_par_for(aal_cpu32_be_team(be), sign_pack_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void sign_unpack_words(const void *arg, size_t wlo, size_t whi)
{
  const bits_ctx *a = arg;
  size_t lo, hi;
  word_elements(a->n, wlo, whi, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    a->y[i] = ((a->in_words[i / 32] >> (i % 32)) & 1u) ? a->e : 0.0f;
}

int aal_cpu32_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                          void *out, aal_error *err)
{
  int rc = bits_args("cpu32 sign_unpack", n, bits, out, err);
  if (rc != AAL_OK)
    return rc;
  const bits_ctx a = {n, NULL, bits, (float)eps, out, NULL};
  aal_team_par_for(aal_cpu32_be_team(be), sign_unpack_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void asa_input_words(const void *arg, size_t wlo, size_t whi)
{
  const bits_ctx *a = arg;
  const float *px = a->x, e = a->e;
  float *ph = a->y;
  for (size_t j = wlo; j < whi; j++) {
    const size_t lo = 32 * j, hi = lo + 32 < a->n ? lo + 32 : a->n;
    uint32_t word = 0;
    for (size_t i = lo; i < hi; i++) {
      const uint32_t bit = px[i] > 0.0f;
      word |= bit << (i - lo);
      ph[i] = px[i] + (bit ? e : 0.0f);
    }
    a->out_words[j] = word;
  }
}

/* ASA conv input in one pass, a word at a time: bits = (x > 0), h = x + (bit ? e : 0)
 * with e = (float)eps - exactly what sign_pack, sign_unpack and add give (add rounds
 * x + e once; x + 0 is x, and -0 + 0 is +0 as add makes it). */
int aal_cpu32_asa_input(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                        void *bits, aal_error *err)
{
  static const char op[] = "cpu32 asa_input";
  int rc = bits_args(op, n, x, h, err);
  if (rc == AAL_OK && bits == NULL)
    rc = aal_fail(err, AAL_EINVAL, "%s: bits is NULL", op);
  if (rc != AAL_OK)
    return rc;
  const bits_ctx a = {n, x, NULL, (float)eps, h, bits};
  aal_team_par_for(aal_cpu32_be_team(be), asa_input_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}
