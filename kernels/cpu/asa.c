/* ASA's ops in float32: sign packing (bits = x > 0; unpack gives eps * bit), the fused
 * ASA conv input, and scale (y = s x, the product in double, rounded once: the
 * lr_expansion of the update).
 * Bits and threads: the word-split loops of kernels/cpu/cpu32.h (no two threads write
 * one mask word; each element's arithmetic is the single-threaded one); scale is split
 * over elements. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

static void sign_pack_words(const void *arg, size_t wlo, size_t whi)
{
  const aal_cpu32_bits_ctx *a = arg;
  for (size_t j = wlo; j < whi; j++)
    a->out_words[j] = aal_cpu32_positive_word(a->x, a->n, j);
}

int aal_cpu32_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                        aal_error *err)
{
  int rc = aal_cpu32_bits_args("cpu32 sign_pack", n, x, bits, err);
  if (rc != AAL_OK)
    return rc;
  const aal_cpu32_bits_ctx a = {n, x, NULL, 0.0f, NULL, bits};
  /* writes only n/8 bytes: the n floats read are the work */
  aal_team_par_for(aal_cpu32_be_team(be), sign_pack_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void sign_unpack_words(const void *arg, size_t wlo, size_t whi)
{
  const aal_cpu32_bits_ctx *a = arg;
  size_t lo, hi;
  aal_cpu32_word_elements(a->n, wlo, whi, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    a->y[i] = ((a->in_words[i / 32] >> (i % 32)) & 1u) ? a->e : 0.0f;
}

int aal_cpu32_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                          void *out, aal_error *err)
{
  int rc = aal_cpu32_bits_args("cpu32 sign_unpack", n, bits, out, err);
  if (rc != AAL_OK)
    return rc;
  const aal_cpu32_bits_ctx a = {n, NULL, bits, (float)eps, out, NULL};
  aal_team_par_for(aal_cpu32_be_team(be), sign_unpack_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void asa_input_words(const void *arg, size_t wlo, size_t whi)
{
  const aal_cpu32_bits_ctx *a = arg;
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
  int rc = aal_cpu32_bits_args(op, n, x, h, err);
  if (rc == AAL_OK && bits == NULL)
    rc = aal_fail(err, AAL_EINVAL, "%s: bits is NULL", op);
  if (rc != AAL_OK)
    return rc;
  const aal_cpu32_bits_ctx a = {n, x, NULL, (float)eps, h, bits};
  aal_team_par_for(aal_cpu32_be_team(be), asa_input_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

typedef struct {
  const float *x;
  double s;
  float *y;
} scale_ctx;

static void scale_elements(const void *arg, size_t lo, size_t hi)
{
  const scale_ctx *c = arg;
  for (size_t i = lo; i < hi; i++)
    c->y[i] = (float)((double)c->x[i] * c->s);  /* the double product is exact: one rounding */
}

int aal_cpu32_scale(const aal_backend *be, size_t n, const void *x, double s, void *y,
                    aal_error *err)
{
  int rc = aal_be_check_count("cpu32 scale", n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("cpu32 scale", "x, y", err, 2, x, y);
  if (rc != AAL_OK)
    return rc;
  const scale_ctx c = {x, s, y};
  aal_team_par_for(aal_cpu32_be_team(be), scale_elements, &c, n, n * sizeof(float));
  return AAL_OK;
}
