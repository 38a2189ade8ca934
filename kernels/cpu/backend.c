/* The float32 CPU backend: memory (host float arrays) and the op table. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <stdlib.h>
#include <string.h>

static size_t words32(size_t n) { return (n + 31) / 32; }

static int cpu32_alloc(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("cpu32 alloc", n, sizeof(float), err);
  if (rc != AAL_OK)
    return rc;
  *buf = malloc(n * sizeof(float));
  return *buf ? AAL_OK : aal_fail(err, AAL_ENOMEM, "cpu32 alloc: %zu floats", n);
}

static int cpu32_alloc_bits(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("cpu32 alloc_bits", n, 1, err);
  if (rc != AAL_OK)
    return rc;
  *buf = calloc(words32(n), sizeof(uint32_t));
  return *buf ? AAL_OK : aal_fail(err, AAL_ENOMEM, "cpu32 alloc_bits: %zu bits", n);
}

static void cpu32_release(const aal_backend *be, void *buf)
{
  (void)be;
  free(buf);
}

/* Rounds to nearest float (NaN stays NaN, so a poisoned upload stays poisoned). */
static int cpu32_upload(const aal_backend *be, void *buf, const double *host, size_t n,
                        aal_error *err)
{
  (void)be;
  if (buf == NULL || host == NULL)
    return aal_fail(err, AAL_EINVAL, "cpu32 upload: NULL buffer");
  float *f = buf;
  for (size_t i = 0; i < n; i++)
    f[i] = (float)host[i];
  return AAL_OK;
}

static int cpu32_download(const aal_backend *be, double *host, const void *buf, size_t n,
                          aal_error *err)
{
  (void)be;
  if (buf == NULL || host == NULL)
    return aal_fail(err, AAL_EINVAL, "cpu32 download: NULL buffer");
  const float *f = buf;
  for (size_t i = 0; i < n; i++)
    host[i] = f[i];
  return AAL_OK;
}

static int cpu32_upload_bits(const aal_backend *be, void *buf, const uint32_t *words, size_t n,
                             aal_error *err)
{
  (void)be;
  if (buf == NULL || words == NULL)
    return aal_fail(err, AAL_EINVAL, "cpu32 upload_bits: NULL buffer");
  memcpy(buf, words, words32(n) * sizeof(uint32_t));
  return AAL_OK;
}

static int cpu32_download_bits(const aal_backend *be, uint32_t *words, const void *buf,
                               size_t n, aal_error *err)
{
  (void)be;
  if (buf == NULL || words == NULL)
    return aal_fail(err, AAL_EINVAL, "cpu32 download_bits: NULL buffer");
  memcpy(words, buf, words32(n) * sizeof(uint32_t));
  return AAL_OK;
}

/* Stops the team and frees the state.  Copies of the table share be->ctx: only the
 * table destroy is called on frees it (the copies must not be used afterwards). */
static void cpu32_destroy(aal_backend *be)
{
  if (be == NULL)
    return;
  aal_cpu32_state *st = be->ctx;
  if (st != NULL) {
    aal_team_stop(&st->team);
    free(st);
  }
  memset(be, 0, sizeof *be);
}

aal_team *aal_cpu32_be_team(const aal_backend *be)
{
  aal_cpu32_state *st = be == NULL ? NULL : be->ctx;
  return st == NULL ? NULL : &st->team;
}

int aal_backend_cpu32_threads(aal_backend *be, size_t nthreads, aal_error *err)
{
  if (be == NULL || be->ctx == NULL || be->destroy != cpu32_destroy)
    return aal_fail(err, AAL_EINVAL, "backend cpu32 threads: not a cpu32 backend");
  if (nthreads < 1 || nthreads > AAL_TEAM_MAX_THREADS)
    return aal_fail(err, AAL_EINVAL, "backend cpu32 threads: %zu; it must be in [1, %d]",
                    nthreads, AAL_TEAM_MAX_THREADS);
  aal_cpu32_state *st = be->ctx;
  aal_team_stop(&st->team);
  aal_team_start(&st->team, nthreads);
  return AAL_OK;
}

size_t aal_backend_cpu32_thread_count(const aal_backend *be)
{
  return aal_team_size(aal_cpu32_be_team(be));
}

void aal_cpu32_table(aal_backend *be)
{
  be->precision_bits = 24;
  be->alloc = cpu32_alloc;
  be->alloc_bits = cpu32_alloc_bits;
  be->release = cpu32_release;
  be->upload = cpu32_upload;
  be->download = cpu32_download;
  be->upload_bits = cpu32_upload_bits;
  be->download_bits = cpu32_download_bits;
  be->conv_forward = aal_cpu32_conv_forward;
  be->conv_backward_data = aal_cpu32_conv_backward_data;
  be->conv_backward_filter = aal_cpu32_conv_backward_filter;
  be->bn_forward = aal_cpu32_bn_forward;
  be->bn_backward = aal_cpu32_bn_backward;
  be->bn_forward_eval = aal_cpu32_bn_forward_eval;
  be->relu_forward = aal_cpu32_relu_forward;
  be->relu_backward = aal_cpu32_relu_backward;
  be->add = aal_cpu32_add;
  be->scale = aal_cpu32_scale;
  be->avgpool_forward = aal_cpu32_avgpool_forward;
  be->avgpool_backward = aal_cpu32_avgpool_backward;
  be->maxpool_forward = aal_cpu32_maxpool_forward;
  be->maxpool_backward = aal_cpu32_maxpool_backward;
  be->layernorm_forward = aal_cpu32_layernorm_forward;
  be->layernorm_backward = aal_cpu32_layernorm_backward;
  be->gelu_forward = aal_cpu32_gelu_forward;
  be->gelu_backward = aal_cpu32_gelu_backward;
  be->softmax_forward = aal_cpu32_softmax_forward;
  be->softmax_backward = aal_cpu32_softmax_backward;
  be->attention_forward = aal_cpu32_attention_forward;
  be->attention_backward = aal_cpu32_attention_backward;
  be->embed_forward = aal_cpu32_embed_forward;
  be->embed_backward = aal_cpu32_embed_backward;
  be->patchify_forward = aal_cpu32_patchify_forward;
  be->patchify_backward = aal_cpu32_patchify_backward;
  be->transpose = aal_cpu32_transpose;
  be->linear_forward = aal_cpu32_linear_forward;
  be->linear_backward = aal_cpu32_linear_backward;
  be->xent_forward = aal_cpu32_xent_forward;
  be->xent_backward = aal_cpu32_xent_backward;
  be->sign_pack = aal_cpu32_sign_pack;
  be->sign_unpack = aal_cpu32_sign_unpack;
  be->li_reduce = aal_cpu32_li_reduce;
  be->sgd_update = aal_cpu32_sgd_update;
  be->asa_input = aal_cpu32_asa_input;
  be->bn_relu_forward = aal_cpu32_bn_relu_forward;
  be->bn_relu_backward = aal_cpu32_bn_relu_backward;
}

int aal_backend_cpu32(aal_backend *be, aal_error *err)
{
  if (be == NULL)
    return aal_fail(err, AAL_EINVAL, "backend cpu32: NULL table");
  /* The state lives on the heap: the helpers hold its address, and the table may be
   * copied by value. */
  aal_cpu32_state *st = malloc(sizeof *st);
  if (st == NULL)
    return aal_fail(err, AAL_ENOMEM, "backend cpu32: %zu bytes of state", sizeof *st);
  /* As many threads as OpenBLAS uses (it sizes itself to the cores), so the
   * memory-bound ops between GEMMs use the cores the GEMMs do. */
  aal_team_start(&st->team, aal_team_max_threads());
  memset(be, 0, sizeof *be);
  aal_cpu32_table(be);
  be->name = "cpu32";
  be->ctx = st;
  be->destroy = cpu32_destroy;
  return AAL_OK;
}
