/* ReLU in float32: forward writes y and the mask of x > 0, backward gates dy by it.
 * Bits and threads: the word-split loops of kernels/cpu/cpu32.h (no two threads write
 * one mask word; each element's arithmetic is the single-threaded one). */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

/* whole words through the 32-element blocks of cpu32.h; the last, partial word (n not a
 * multiple of 32) element by element, with the same arithmetic */
static void relu_forward_words(const void *arg, size_t wlo, size_t whi)
{
  const aal_cpu32_bits_ctx *a = arg;
  size_t j = wlo;
  for (; j < whi && 32 * j + 32 <= a->n; j++)
    a->out_words[j] = aal_cpu32_relu32(a->x + 32 * j, a->y + 32 * j);
  if (j == whi)
    return;
  size_t lo, hi;
  aal_cpu32_word_elements(a->n, j, whi, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    a->y[i] = a->x[i] > 0.0f ? a->x[i] : 0.0f;
  for (; j < whi; j++)
    a->out_words[j] = aal_cpu32_positive_word(a->x, a->n, j);
}

int aal_cpu32_relu_forward(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                           aal_error *err)
{
  int rc = aal_cpu32_bits_args("cpu32 relu_forward", n, x, y, err);
  if (rc == AAL_OK && mask == NULL)
    rc = aal_fail(err, AAL_EINVAL, "cpu32 relu_forward: mask is NULL");
  if (rc != AAL_OK)
    return rc;
  const aal_cpu32_bits_ctx a = {n, x, NULL, 0.0f, y, mask};
  aal_team_par_for(aal_cpu32_be_team(be), relu_forward_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}

static void relu_backward_words(const void *arg, size_t wlo, size_t whi)
{
  const aal_cpu32_bits_ctx *a = arg;
  size_t j = wlo;
  for (; j < whi && 32 * j + 32 <= a->n; j++)
    aal_cpu32_gate32(a->x + 32 * j, a->in_words[j], a->y + 32 * j);
  if (j == whi)
    return;
  size_t lo, hi;
  aal_cpu32_word_elements(a->n, j, whi, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    a->y[i] = ((a->in_words[i / 32] >> (i % 32)) & 1u) ? a->x[i] : 0.0f;
}

int aal_cpu32_relu_backward(const aal_backend *be, size_t n, const void *dy, const void *mask,
                            void *dx, aal_error *err)
{
  int rc = aal_cpu32_bits_args("cpu32 relu_backward", n, dy, dx, err);
  if (rc == AAL_OK && mask == NULL)
    rc = aal_fail(err, AAL_EINVAL, "cpu32 relu_backward: mask is NULL");
  if (rc != AAL_OK)
    return rc;
  const aal_cpu32_bits_ctx a = {n, dy, mask, 0.0f, dx, NULL};
  aal_team_par_for(aal_cpu32_be_team(be), relu_backward_words, &a, (n + 31) / 32,
                    n * sizeof(float));
  return AAL_OK;
}
