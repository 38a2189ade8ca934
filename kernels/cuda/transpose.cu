// Transpose of the last two dimensions on the device (sim/layers/transpose.c):
// x [B, A, C] -> y [B, C, A], one thread per element of y (a copy, exact).
#include "kernels/cuda/cuda_internal.h"

__global__ void transpose_kernel(size_t total, int a, int c, const float *__restrict__ x,
                                 float *__restrict__ y)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t ai = i % (size_t)a, rest = i / (size_t)a;
    const size_t ci = rest % (size_t)c, bb = rest / (size_t)c;
    y[i] = x[(bb * a + ai) * c + ci];
  }
}

int aal_cuda_transpose(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                       aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(b > 0 && a > 0 && c > 0, "cuda transpose: bad sizes b=%d a=%d c=%d", b, a, c);
  REQUIRE(x && y, "cuda transpose: NULL buffer");
  REQUIRE(x != y, "cuda transpose: y must not share storage with x");
  const size_t total = (size_t)b * a * c;
  transpose_kernel<<<aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                     ctx->stream>>>(total, a, c, static_cast<const float *>(x),
                                    static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
