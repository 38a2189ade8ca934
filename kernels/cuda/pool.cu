// Global average pooling on the device: x [rows, HW] -> y [rows] (rows = N C).
//   forward:  y[row] = (sum_j x[row, j]) / HW, one warp per row, summed in double;
//   backward: dx[row, j] = dy[row] / HW.
#include "kernels/cuda/cuda_internal.h"

__global__ void avgpool_forward_kernel(int rows, int hw, const float *__restrict__ x,
                                       float *__restrict__ y)
{
  const int lane = threadIdx.x & 31;
  const size_t warps = ((size_t)gridDim.x * blockDim.x) / 32;
  for (size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; row < (size_t)rows;
       row += warps) {
    double acc = 0.0;
    for (int j = lane; j < hw; j += 32)
      acc += (double)x[row * hw + j];
    acc = aal_warp_sum(acc);
    if (lane == 0)
      y[row] = (float)(acc / hw);
  }
}

__global__ void avgpool_backward_kernel(int rows, int hw, const float *__restrict__ dy,
                                        float *__restrict__ dx)
{
  const size_t total = (size_t)rows * hw;
  // divide (as the reference does), not multiply by a rounded 1/HW
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x)
    dx[i] = dy[i / hw] / (float)hw;
}

int aal_cuda_avgpool_forward(const aal_backend *be, int rows, int hw, const void *x, void *y,
                             aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(rows > 0 && hw > 0, "cuda avgpool forward: bad sizes rows=%d hw=%d", rows, hw);
  REQUIRE(x && y, "cuda avgpool forward: NULL buffer");
  avgpool_forward_kernel<<<aal_cuda_blocks(ctx, (size_t)rows * 32, AAL_CUDA_THREADS),
                           AAL_CUDA_THREADS, 0, ctx->stream>>>(
      rows, hw, static_cast<const float *>(x), static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_avgpool_backward(const aal_backend *be, int rows, int hw, const void *dy,
                              void *dx, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(rows > 0 && hw > 0, "cuda avgpool backward: bad sizes rows=%d hw=%d", rows, hw);
  REQUIRE(dy && dx, "cuda avgpool backward: NULL buffer");
  avgpool_backward_kernel<<<aal_cuda_blocks(ctx, (size_t)rows * hw, AAL_CUDA_THREADS),
                            AAL_CUDA_THREADS, 0, ctx->stream>>>(
      rows, hw, static_cast<const float *>(dy), static_cast<float *>(dx));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
