// Elementwise add on the device: y = a + b, n floats (y may alias a or b); and the
// scale y = s x (the product in double, exact for a float x, rounded once).
#include "kernels/cuda/cuda_internal.h"

__global__ void add_kernel(size_t n, const float *a, const float *b, float *y)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    y[i] = a[i] + b[i];
}

int aal_cuda_add(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                 aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(a && b && y, "cuda add: NULL buffer");
  if (n == 0)
    return AAL_OK;
  add_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0, ctx->stream>>>(
      n, static_cast<const float *>(a), static_cast<const float *>(b), static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

__global__ void scale_kernel(size_t n, const float *x, double s, float *y)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    y[i] = (float)((double)x[i] * s);
}

int aal_cuda_scale(const aal_backend *be, size_t n, const void *x, double s, void *y,
                   aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(x && y, "cuda scale: NULL buffer");
  if (n == 0)
    return AAL_OK;
  scale_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0, ctx->stream>>>(
      n, static_cast<const float *>(x), s, static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
