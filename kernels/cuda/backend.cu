// The CUDA backend: opening (device, stream, cuBLAS handle), memory ops and the op table.
// The ops themselves live one family per file beside their kernels (conv.cu,
// batchnorm.cu, relu.cu, add.cu, kernels/cuda/pool.cu, linear.cu, xent.cu, asa.cu, li.cu, sgd.cu).
#include "kernels/cuda/cuda_internal.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

// ---- status helpers ------------------------------------------------------------------

int aal_cuda_status(aal_error *err, cudaError_t s, const char *func, const char *file,
                    int line, const char *call)
{
  if (s == cudaSuccess)
    return AAL_OK;
  int code = AAL_EIO;
  if (s == cudaErrorMemoryAllocation)
    code = AAL_ENOMEM;
  else if (s == cudaErrorInvalidValue || s == cudaErrorInvalidConfiguration)
    code = AAL_EINVAL;
  return aal_fail(err, code, "cuda %s: %s:%d: %s: %s (%s)", func, file, line, call,
                  cudaGetErrorName(s), cudaGetErrorString(s));
}

int aal_cublas_status(aal_error *err, cublasStatus_t s, const char *func, const char *file,
                      int line, const char *call)
{
  if (s == CUBLAS_STATUS_SUCCESS)
    return AAL_OK;
  int code = AAL_EIO;
  if (s == CUBLAS_STATUS_ALLOC_FAILED)
    code = AAL_ENOMEM;
  else if (s == CUBLAS_STATUS_INVALID_VALUE)
    code = AAL_EINVAL;
  return aal_fail(err, code, "cuda %s: %s:%d: %s: %s (%s)", func, file, line, call,
                  cublasGetStatusName(s), cublasGetStatusString(s));
}

int aal_cuda_scratch(aal_cuda_ctx *ctx, size_t bytes, void **out, aal_error *err)
{
  if (bytes > ctx->scratch_bytes) {
    if (ctx->scratch != nullptr) {
      CUDA_TRY(cudaStreamSynchronize(ctx->stream));  // work queued on it may still use it
      CUDA_TRY(cudaFree(ctx->scratch));
      ctx->scratch = nullptr;
      ctx->scratch_bytes = 0;
    }
    CUDA_TRY(cudaMalloc(&ctx->scratch, bytes));
    ctx->scratch_bytes = bytes;
  }
  *out = ctx->scratch;
  return AAL_OK;
}

// ---- memory --------------------------------------------------------------------------

static int cuda_alloc(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  (void)be;
  REQUIRE(buf != nullptr, "cuda alloc: buf is NULL");
  *buf = nullptr;
  if (n > SIZE_MAX / sizeof(float))
    return aal_fail(err, AAL_ENOMEM, "cuda alloc: %zu floats overflow size_t", n);
  CUDA_TRY(cudaMalloc(buf, (n > 0 ? n : 1) * sizeof(float)));
  return AAL_OK;
}

static size_t words_of(size_t nbits) { return nbits / 32 + (nbits % 32 != 0); }

static int cuda_alloc_bits(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  (void)be;
  REQUIRE(buf != nullptr, "cuda alloc_bits: buf is NULL");
  *buf = nullptr;
  const size_t words = words_of(n);
  CUDA_TRY(cudaMalloc(buf, (words > 0 ? words : 1) * sizeof(uint32_t)));
  return AAL_OK;
}

static void cuda_release(const aal_backend *be, void *buf)
{
  (void)be;
  if (buf != nullptr)
    cudaFree(buf);  // synchronises with queued work; release cannot report a failure
}

// Host double -> float (round to nearest) in a temporary host buffer, then one copy.
static int cuda_upload(const aal_backend *be, void *buf, const double *host, size_t n,
                       aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(buf != nullptr && (host != nullptr || n == 0), "cuda upload: NULL buffer");
  if (n == 0)
    return AAL_OK;
  float *tmp = static_cast<float *>(malloc(n * sizeof(float)));
  if (tmp == nullptr)
    return aal_fail(err, AAL_ENOMEM, "cuda upload: cannot allocate %zu host floats", n);
  for (size_t i = 0; i < n; i++)
    tmp[i] = (float)host[i];
  int rc = CUDA_STATUS(
      cudaMemcpyAsync(buf, tmp, n * sizeof(float), cudaMemcpyHostToDevice, ctx->stream));
  if (rc == AAL_OK)
    rc = CUDA_STATUS(cudaStreamSynchronize(ctx->stream));  // before tmp is freed
  free(tmp);
  return rc;
}

static int cuda_download(const aal_backend *be, double *host, const void *buf, size_t n,
                         aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(buf != nullptr && (host != nullptr || n == 0), "cuda download: NULL buffer");
  if (n == 0)
    return AAL_OK;
  float *tmp = static_cast<float *>(malloc(n * sizeof(float)));
  if (tmp == nullptr)
    return aal_fail(err, AAL_ENOMEM, "cuda download: cannot allocate %zu host floats", n);
  int rc = CUDA_STATUS(
      cudaMemcpyAsync(tmp, buf, n * sizeof(float), cudaMemcpyDeviceToHost, ctx->stream));
  if (rc == AAL_OK)
    rc = CUDA_STATUS(cudaStreamSynchronize(ctx->stream));
  if (rc == AAL_OK)
    for (size_t i = 0; i < n; i++)
      host[i] = (double)tmp[i];
  free(tmp);
  return rc;
}

static int cuda_upload_bits(const aal_backend *be, void *buf, const uint32_t *words, size_t n,
                            aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(buf != nullptr && (words != nullptr || n == 0), "cuda upload_bits: NULL buffer");
  const size_t nw = words_of(n);
  if (nw == 0)
    return AAL_OK;
  CUDA_TRY(cudaMemcpyAsync(buf, words, nw * sizeof(uint32_t), cudaMemcpyHostToDevice,
                           ctx->stream));
  CUDA_TRY(cudaStreamSynchronize(ctx->stream));
  return AAL_OK;
}

static int cuda_download_bits(const aal_backend *be, uint32_t *words, const void *buf,
                              size_t n, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(buf != nullptr && (words != nullptr || n == 0), "cuda download_bits: NULL buffer");
  const size_t nw = words_of(n);
  if (nw == 0)
    return AAL_OK;
  CUDA_TRY(cudaMemcpyAsync(words, buf, nw * sizeof(uint32_t), cudaMemcpyDeviceToHost,
                           ctx->stream));
  CUDA_TRY(cudaStreamSynchronize(ctx->stream));
  return AAL_OK;
}

// ---- open / destroy ------------------------------------------------------------------

static void cuda_destroy(aal_backend *be)
{
  if (be == nullptr || be->ctx == nullptr)
    return;
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  if (ctx->stream != nullptr)
    cudaStreamSynchronize(ctx->stream);
  if (ctx->scratch != nullptr)
    cudaFree(ctx->scratch);
  if (ctx->blas != nullptr)
    cublasDestroy(ctx->blas);
  if (ctx->stream != nullptr)
    cudaStreamDestroy(ctx->stream);
  delete ctx;
  be->ctx = nullptr;
}

static int open_ctx(aal_cuda_ctx *ctx, aal_error *err)
{
  CUDA_TRY(cudaGetDevice(&ctx->device));
  CUDA_TRY(cudaDeviceGetAttribute(&ctx->sm_count, cudaDevAttrMultiProcessorCount, ctx->device));
  CUDA_TRY(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
  CUBLAS_TRY(cublasCreate(&ctx->blas));
  CUBLAS_TRY(cublasSetStream(ctx->blas, ctx->stream));
  // Plain FP32 arithmetic: no TF32 tensor-op downconversion (the error bounds of the
  // cross-check assume float32 products, u = 2^-24).
  CUBLAS_TRY(cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH));
  CUBLAS_TRY(cublasSetPointerMode(ctx->blas, CUBLAS_POINTER_MODE_HOST));
  return AAL_OK;
}

extern "C" int aal_backend_cuda(aal_backend *be, aal_error *err)
{
  if (be == nullptr)
    return aal_fail(err, AAL_EINVAL, "cuda backend: be is NULL");
  memset(be, 0, sizeof *be);
  int count = 0;
  const cudaError_t s = cudaGetDeviceCount(&count);
  if (s != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the "no device / no driver" error
    return aal_fail(err, AAL_EINVAL, "no CUDA device (cudaGetDeviceCount: %s)",
                    s != cudaSuccess ? cudaGetErrorString(s) : "0 devices");
  }
  aal_cuda_ctx *ctx = new (std::nothrow) aal_cuda_ctx();
  if (ctx == nullptr)
    return aal_fail(err, AAL_ENOMEM, "cuda backend: cannot allocate the context");
  const char *sync = getenv("AAL_CUDA_SYNC");
  ctx->sync_each_op = sync != nullptr && strcmp(sync, "1") == 0;
  be->ctx = ctx;
  const int rc = open_ctx(ctx, err);
  if (rc != AAL_OK) {
    cuda_destroy(be);
    return rc;
  }
  be->name = "cuda";
  be->precision_bits = 24;
  be->alloc = cuda_alloc;
  be->alloc_bits = cuda_alloc_bits;
  be->release = cuda_release;
  be->upload = cuda_upload;
  be->download = cuda_download;
  be->upload_bits = cuda_upload_bits;
  be->download_bits = cuda_download_bits;
  be->conv_forward = aal_cuda_conv_forward;
  be->conv_backward_data = aal_cuda_conv_backward_data;
  be->conv_backward_filter = aal_cuda_conv_backward_filter;
  be->bn_forward = aal_cuda_bn_forward;
  be->bn_backward = aal_cuda_bn_backward;
  be->bn_forward_eval = aal_cuda_bn_forward_eval;
  be->relu_forward = aal_cuda_relu_forward;
  be->relu_backward = aal_cuda_relu_backward;
  be->add = aal_cuda_add;
  be->scale = aal_cuda_scale;
  be->avgpool_forward = aal_cuda_avgpool_forward;
  be->avgpool_backward = aal_cuda_avgpool_backward;
  be->maxpool_forward = aal_cuda_maxpool_forward;
  be->maxpool_backward = aal_cuda_maxpool_backward;
  be->layernorm_forward = aal_cuda_layernorm_forward;
  be->layernorm_backward = aal_cuda_layernorm_backward;
  be->gelu_forward = aal_cuda_gelu_forward;
  be->gelu_backward = aal_cuda_gelu_backward;
  be->softmax_forward = aal_cuda_softmax_forward;
  be->softmax_backward = aal_cuda_softmax_backward;
  be->attention_forward = aal_cuda_attention_forward;
  be->attention_backward = aal_cuda_attention_backward;
  be->embed_forward = aal_cuda_embed_forward;
  be->embed_backward = aal_cuda_embed_backward;
  be->patchify_forward = aal_cuda_patchify_forward;
  be->patchify_backward = aal_cuda_patchify_backward;
  be->transpose = aal_cuda_transpose;
  be->linear_forward = aal_cuda_linear_forward;
  be->linear_backward = aal_cuda_linear_backward;
  be->xent_forward = aal_cuda_xent_forward;
  be->xent_backward = aal_cuda_xent_backward;
  be->sign_pack = aal_cuda_sign_pack;
  be->sign_unpack = aal_cuda_sign_unpack;
  be->li_reduce = aal_cuda_li_reduce;
  be->sgd_update = aal_cuda_sgd_update;
  be->asa_input = aal_cuda_asa_input;
  be->bn_relu_forward = aal_cuda_bn_relu_forward;
  be->bn_relu_backward = aal_cuda_bn_relu_backward;
  be->destroy = cuda_destroy;
  return AAL_OK;
}
