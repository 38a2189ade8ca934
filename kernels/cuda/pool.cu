// Pooling on the device: global average pooling and 2-d max pooling.
//
// Global average pooling: x [rows, HW] -> y [rows] (rows = N C).
//   forward:  y[row] = (sum_j x[row, j]) / HW, one warp per row, summed in double;
//   backward: dx[row, j] = dy[row] / HW.
//
// 2-d max pooling (PyTorch's MaxPool2d(k, stride, pad), ceil_mode False):
//   x, dx [N, C, H, W];  y, dy [N, C, P, Q].  The winner of a window is
//   sim/layers/pool.c's: padding never wins; scanning row-major (kh outer, kw inner) the
//   first input position starts as the winner and a later one takes over iff its value
//   is > the running maximum or is NaN (ties: the first).
//   forward:  one thread per output, y = x at the winner (exact: a selection);
//   backward: a gather, deterministic without atomics: one thread per element of dx
//     visits the windows that contain it (at most ceil(k/stride)^2), recomputes each
//     one's winner from x and adds its dy when the winner is this element; the sum is
//     a float sum in window order (oh outer, ow inner), the order in which
//     kernels/cpu/pool.c scatters, so both backends give the same bits.
#include "kernels/cuda/cuda_internal.h"

#include <cmath>

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

// ---- max pooling

// The geometry of a max pooling call (sizes as long long: no int overflow in products).
struct maxpool_geom {
  long long h, w, p, q;
  int k, stride, pad;
};

// The winner of the window whose top-left corner is (h0, w0) in plane px [h, w], as its
// index in the plane (the window holds an input position: pad <= k/2).
__device__ __forceinline__ long long maxpool_winner(const float *__restrict__ px,
                                                    const maxpool_geom &g, long long h0,
                                                    long long w0)
{
  const long long hs = h0 > 0 ? h0 : 0, he = h0 + g.k < g.h ? h0 + g.k : g.h;
  const long long ws = w0 > 0 ? w0 : 0, we = w0 + g.k < g.w ? w0 + g.k : g.w;
  long long arg = hs * g.w + ws;
  float best = px[arg];
  for (long long ih = hs; ih < he; ih++)
    for (long long iw = ws; iw < we; iw++) {
      const float v = px[ih * g.w + iw];
      if (v > best || isnan(v)) {
        best = v;
        arg = ih * g.w + iw;
      }
    }
  return arg;
}

__global__ void maxpool_forward_kernel(size_t total, maxpool_geom g,
                                       const float *__restrict__ x, float *__restrict__ y)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const long long ow = (long long)(i % (size_t)g.q), t = (long long)(i / (size_t)g.q);
    const long long oh = t % g.p, plane = t / g.p;
    const float *px = x + (size_t)plane * (size_t)(g.h * g.w);
    y[i] = px[maxpool_winner(px, g, oh * g.stride - g.pad, ow * g.stride - g.pad)];
  }
}

// First and last window index (along one axis) whose k positions contain input index i:
// o * stride - pad <= i <= o * stride - pad + k - 1, 0 <= o < n.
__device__ __forceinline__ void maxpool_windows(long long i, const maxpool_geom &g,
                                                long long n, long long *lo, long long *hi)
{
  const long long t = i + g.pad - g.k + 1;
  *lo = t <= 0 ? 0 : (t + g.stride - 1) / g.stride;
  const long long last = (i + g.pad) / g.stride;
  *hi = last < n - 1 ? last : n - 1;
}

__global__ void maxpool_backward_kernel(size_t total, maxpool_geom g,
                                        const float *__restrict__ dy,
                                        const float *__restrict__ x, float *__restrict__ dx)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const long long iw = (long long)(i % (size_t)g.w), t = (long long)(i / (size_t)g.w);
    const long long ih = t % g.h, plane = t / g.h;
    const float *px = x + (size_t)plane * (size_t)(g.h * g.w);
    const float *pdy = dy + (size_t)plane * (size_t)(g.p * g.q);
    const long long self = ih * g.w + iw;
    long long oh0, oh1, ow0, ow1;
    maxpool_windows(ih, g, g.p, &oh0, &oh1);
    maxpool_windows(iw, g, g.q, &ow0, &ow1);
    float acc = 0.0f;
    for (long long oh = oh0; oh <= oh1; oh++)
      for (long long ow = ow0; ow <= ow1; ow++)
        if (maxpool_winner(px, g, oh * g.stride - g.pad, ow * g.stride - g.pad) == self)
          acc += pdy[oh * g.q + ow];
    dx[i] = acc;
  }
}

// The arguments of both directions: sizes, window, stride, pad as the table says
// (aal_pool_out), into g.
static int maxpool_args(const char *op, int n, int c, int h, int w, int k, int stride, int pad,
                        maxpool_geom *g, aal_error *err)
{
  REQUIRE(n > 0 && c > 0 && h > 0 && w > 0, "%s: bad sizes n=%d c=%d h=%d w=%d", op, n, c, h,
          w);
  REQUIRE(k > 0 && stride > 0, "%s: k is %d, stride %d (must be >= 1)", op, k, stride);
  REQUIRE(pad >= 0 && pad <= k / 2, "%s: pad is %d, must be in [0, k/2] = [0, %d] (k = %d)", op,
          pad, k / 2, k);
  const int p = aal_pool_out(h, k, stride, pad), q = aal_pool_out(w, k, stride, pad);
  REQUIRE(p > 0 && q > 0, "%s: empty output (x %dx%d, pad %d, window %d)", op, h, w, pad, k);
  *g = maxpool_geom{h, w, p, q, k, stride, pad};
  return AAL_OK;
}

int aal_cuda_maxpool_forward(const aal_backend *be, int n, int c, int h, int w, int k,
                             int stride, int pad, const void *x, void *y, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  maxpool_geom g;
  const int rc = maxpool_args("cuda maxpool_forward", n, c, h, w, k, stride, pad, &g, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(x && y, "cuda maxpool_forward: NULL buffer");
  REQUIRE(x != y, "cuda maxpool_forward: y must not share storage with x");
  const size_t total = (size_t)n * (size_t)c * (size_t)g.p * (size_t)g.q;
  maxpool_forward_kernel<<<aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                           ctx->stream>>>(total, g, static_cast<const float *>(x),
                                          static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_maxpool_backward(const aal_backend *be, int n, int c, int h, int w, int k,
                              int stride, int pad, const void *dy, const void *x, void *dx,
                              aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  maxpool_geom g;
  const int rc = maxpool_args("cuda maxpool_backward", n, c, h, w, k, stride, pad, &g, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(dy && x && dx, "cuda maxpool_backward: NULL buffer");
  REQUIRE(dx != x && dx != dy, "cuda maxpool_backward: dx must not share storage with x or dy");
  const size_t total = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
  maxpool_backward_kernel<<<aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                            ctx->stream>>>(total, g, static_cast<const float *>(dy),
                                           static_cast<const float *>(x),
                                           static_cast<float *>(dx));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
