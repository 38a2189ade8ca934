// GELU (exact erf form) on the device (sim/layers/gelu.c; kernels/cpu/gelu.c):
//   forward:  y = 0.5 x (1 + erff(x / sqrt 2));
//   backward: dx = dy (0.5 (1 + erff(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)).
// One thread per element, float arithmetic with CUDA's erff and expf (at most 2 ulp: the
// harness's bound counts each libm call at 2u).
#include "kernels/cuda/cuda_internal.h"

__global__ void gelu_forward_kernel(size_t n, const float *__restrict__ x, float *__restrict__ y)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678f));
  }
}

__global__ void gelu_backward_kernel(size_t n, const float *__restrict__ dy,
                                     const float *__restrict__ x, float *__restrict__ dx)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    const float cdf = 0.5f * (1.0f + erff(v * 0.70710678f));
    const float pdf = 0.39894228f * expf(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

int aal_cuda_gelu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                          aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(n > 0, "cuda gelu_forward: n is 0");
  REQUIRE(x && y, "cuda gelu_forward: NULL buffer");
  gelu_forward_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                        ctx->stream>>>(n, static_cast<const float *>(x), static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_gelu_backward(const aal_backend *be, size_t n, const void *dy, const void *x,
                           void *dx, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(n > 0, "cuda gelu_backward: n is 0");
  REQUIRE(dy && x && dx, "cuda gelu_backward: NULL buffer");
  gelu_backward_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                         ctx->stream>>>(n, static_cast<const float *>(dy),
                                        static_cast<const float *>(x), static_cast<float *>(dx));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
