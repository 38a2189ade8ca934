// Softmax along the last dimension on the device (sim/layers/softmax.c; the same
// arithmetic as kernels/cpu/softmax.c):
//   forward:  one block per row; mx = max x (a NaN anywhere makes the row NaN), e =
//     expf(x - mx) in float, s = sum e in double (block sum) rounded once, y = e / s;
//   backward: one block per row; s = sum dy y in double rounded once, dx = y (dy - s).
// The row launches are shared with attention.cu (its P and dS, in place).
#include "kernels/cuda/cuda_internal.h"

static const int SM_THREADS = 256;

// The maximum over the block (valid in every thread); a NaN propagates (fmaxf would drop
// it, so the comparison is written out).
__device__ __forceinline__ float block_max(float v)
{
  __shared__ float part[32];
  __shared__ float result;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_down_sync(0xffffffffu, v, o);
    v = (w > v || w != w) ? w : v;
  }
  __syncthreads();
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float mx = part[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); i++)
      mx = (part[i] > mx || part[i] != part[i]) ? part[i] : mx;
    result = mx;
  }
  __syncthreads();
  return result;
}

__global__ void softmax_rows_kernel(size_t rows, int d, const float *x, float *y)
{
  __shared__ float sum_sh;
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * (size_t)d;
    float *yr = y + r * (size_t)d;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      mx = (xr[j] > mx || xr[j] != xr[j]) ? xr[j] : mx;
    mx = block_max(mx);
    double s = 0.0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
      const float e = expf(xr[j] - mx);
      yr[j] = e; // y may be x: each element is read before this thread writes it
      s += (double)e;
    }
    s = aal_block_sum(s);
    if (threadIdx.x == 0)
      sum_sh = (float)s;
    __syncthreads();
    const float sf = sum_sh;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      yr[j] /= sf;
    __syncthreads();
  }
}

__global__ void softmax_backward_rows_kernel(size_t rows, int d, const float *dy,
                                             const float *__restrict__ y, float *dx)
{
  __shared__ float sum_sh;
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *dyr = dy + r * (size_t)d, *yr = y + r * (size_t)d;
    float *dxr = dx + r * (size_t)d;
    double s = 0.0;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      s += (double)dyr[j] * yr[j];
    s = aal_block_sum(s);
    if (threadIdx.x == 0)
      sum_sh = (float)s;
    __syncthreads();
    const float sf = sum_sh;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      dxr[j] = yr[j] * (dyr[j] - sf); // dx may be dy: the same thread read it
    __syncthreads();
  }
}

int aal_cuda_softmax_rows(aal_cuda_ctx *ctx, size_t rows, int d, const float *x, float *y,
                          aal_error *err)
{
  softmax_rows_kernel<<<aal_cuda_blocks(ctx, rows * SM_THREADS, SM_THREADS), SM_THREADS, 0,
                        ctx->stream>>>(rows, d, x, y);
  LAUNCH_TRY();
  return AAL_OK;
}

int aal_cuda_softmax_backward_rows(aal_cuda_ctx *ctx, size_t rows, int d, const float *dy,
                                   const float *y, float *dx, aal_error *err)
{
  softmax_backward_rows_kernel<<<aal_cuda_blocks(ctx, rows * SM_THREADS, SM_THREADS),
                                 SM_THREADS, 0, ctx->stream>>>(rows, d, dy, y, dx);
  LAUNCH_TRY();
  return AAL_OK;
}

int aal_cuda_softmax_forward(const aal_backend *be, int m, int d, const void *x, void *y,
                             aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(m > 0 && d > 0, "cuda softmax_forward: bad sizes m=%d d=%d", m, d);
  REQUIRE(x && y, "cuda softmax_forward: NULL buffer");
  const int rc = aal_cuda_softmax_rows(ctx, (size_t)m, d, static_cast<const float *>(x),
                                       static_cast<float *>(y), err);
  if (rc != AAL_OK)
    return rc;
  OP_DONE(ctx);
}

int aal_cuda_softmax_backward(const aal_backend *be, int m, int d, const void *dy,
                              const void *y, void *dx, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(m > 0 && d > 0, "cuda softmax_backward: bad sizes m=%d d=%d", m, d);
  REQUIRE(dy && y && dx, "cuda softmax_backward: NULL buffer");
  REQUIRE(dx != y, "cuda softmax_backward: dx must not share storage with y");
  const int rc = aal_cuda_softmax_backward_rows(ctx, (size_t)m, d, static_cast<const float *>(dy),
                                                static_cast<const float *>(y),
                                                static_cast<float *>(dx), err);
  if (rc != AAL_OK)
    return rc;
  OP_DONE(ctx);
}
