// ReLU with a packed mask on the device.
//   x, y, dy, dx [n];  mask: ceil(n/32) uint32 words, element i in bit i%32 of word i/32,
//   bit = (x > 0); bits of the last word past n are 0.
// Forward: y = x <= 0 ? 0 : x (NaN propagates, as in the reference); a warp covers 32
// consecutive elements, which form exactly one mask word: __ballot_sync gathers the
// 32 predicates with lane l's in bit l, and lane 0 stores the word.
#include "kernels/cuda/cuda_internal.h"

// The grid-stride loop runs over n rounded up to a multiple of 32 so that all lanes of a
// warp stay in the loop together (the ballot needs the full warp); blockDim.x and the
// stride are multiples of 32, so the 32 elements of a warp share one word.
// y may alias x (each element is read and written by the same thread).
__global__ void relu_forward_kernel(size_t n, const float *x, float *y,
                                    uint32_t *__restrict__ mask)
{
  const size_t padded = (n + 31) / 32 * 32;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < padded;
       i += (size_t)gridDim.x * blockDim.x) {
    const bool in = i < n;
    const float v = in ? x[i] : 0.0f;
    const bool pos = in && v > 0.0f;
    if (in)
      y[i] = v <= 0.0f ? 0.0f : v;
    const uint32_t word = __ballot_sync(0xffffffffu, pos);
    if ((threadIdx.x & 31) == 0)
      mask[i / 32] = word;
  }
}

__global__ void relu_backward_kernel(size_t n, const float *dy, const uint32_t *mask,
                                     float *dx)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    dx[i] = (mask[i / 32] >> (i % 32)) & 1u ? dy[i] : 0.0f;
}

int aal_cuda_relu_forward(const aal_backend *be, size_t n, const void *x, void *y, void *mask,
                          aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(x && y && mask, "cuda relu forward: NULL buffer");
  if (n == 0)
    return AAL_OK;
  relu_forward_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                        ctx->stream>>>(n, static_cast<const float *>(x),
                                       static_cast<float *>(y), static_cast<uint32_t *>(mask));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_relu_backward(const aal_backend *be, size_t n, const void *dy, const void *mask,
                           void *dx, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(dy && mask && dx, "cuda relu backward: NULL buffer");
  if (n == 0)
    return AAL_OK;
  relu_backward_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                         ctx->stream>>>(n, static_cast<const float *>(dy),
                                        static_cast<const uint32_t *>(mask),
                                        static_cast<float *>(dx));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
