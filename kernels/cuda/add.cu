// Elementwise add on the device: y = a + b, n floats (y may alias a or b).
#include "cuda_internal.h"

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
