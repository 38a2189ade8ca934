// Layer normalisation over the last dimension on the device (sim/layers/layernorm.c;
// kernels/cpu/layernorm.c computes the same way).
//   x, y, dy, dx [M, D];  gamma, beta, dgamma, dbeta [D];  mean, invstd [M].
// forward:  one block per row; mean and the biased variance in double, two passes (block
//   sums), each rounded once to float; y = gamma ((x - mean) invstd) + beta in float.
// backward: one block per row for dx (the row sums of g = dy gamma and g xh in double,
//   rounded once; dx = invstd (g - mean g - xh mean(g xh)) in float); one thread per
//   column for dgamma, dbeta (sums over the M rows in double, in row order).
#include "kernels/cuda/cuda_internal.h"

#include <cmath>

static const int LN_THREADS = 256;

__global__ void layernorm_forward_kernel(int m, int d, const float *__restrict__ x,
                                         const float *__restrict__ gamma,
                                         const float *__restrict__ beta, double eps,
                                         float *__restrict__ y, float *__restrict__ mean,
                                         float *__restrict__ invstd)
{
  __shared__ float stats[2];
  for (int r = blockIdx.x; r < m; r += gridDim.x) {
    const float *xr = x + (size_t)r * d;
    double s = 0.0;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      s += (double)xr[j];
    s = aal_block_sum(s);
    __shared__ double mu_sh;
    if (threadIdx.x == 0)
      mu_sh = s / (double)d;
    __syncthreads();
    const double mu = mu_sh;
    double ss = 0.0;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      ss += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    ss = aal_block_sum(ss);
    if (threadIdx.x == 0) {
      stats[0] = (float)mu;
      stats[1] = (float)(1.0 / sqrt(ss / (double)d + eps));
      mean[r] = stats[0];
      invstd[r] = stats[1];
    }
    __syncthreads();
    const float mf = stats[0], is = stats[1];
    for (int j = threadIdx.x; j < d; j += blockDim.x)
      y[(size_t)r * d + j] = gamma[j] * ((xr[j] - mf) * is) + beta[j];
    __syncthreads(); // stats and mu_sh are rewritten by the next row
  }
}

__global__ void layernorm_backward_rows_kernel(int m, int d, const float *__restrict__ dy,
                                               const float *__restrict__ x,
                                               const float *__restrict__ gamma,
                                               const float *__restrict__ mean,
                                               const float *__restrict__ invstd,
                                               float *__restrict__ dx)
{
  __shared__ float sums[2];
  for (int r = blockIdx.x; r < m; r += gridDim.x) {
    const float *xr = x + (size_t)r * d, *dyr = dy + (size_t)r * d;
    const float mf = mean[r], is = invstd[r];
    double sg = 0.0, sgx = 0.0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
      const float xh = (xr[j] - mf) * is, g = dyr[j] * gamma[j];
      sg += (double)g;
      sgx += (double)g * xh;
    }
    sg = aal_block_sum(sg);
    sgx = aal_block_sum(sgx);
    if (threadIdx.x == 0) {
      sums[0] = (float)(sg / (double)d);
      sums[1] = (float)(sgx / (double)d);
    }
    __syncthreads();
    const float mg = sums[0], mgx = sums[1];
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
      const float xh = (xr[j] - mf) * is;
      dx[(size_t)r * d + j] = is * (dyr[j] * gamma[j] - mg - xh * mgx);
    }
    __syncthreads();
  }
}

__global__ void layernorm_backward_cols_kernel(int m, int d, const float *__restrict__ dy,
                                               const float *__restrict__ x,
                                               const float *__restrict__ mean,
                                               const float *__restrict__ invstd,
                                               float *__restrict__ dgamma,
                                               float *__restrict__ dbeta)
{
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < d; j += gridDim.x * blockDim.x) {
    double sg = 0.0, sb = 0.0;
    for (int r = 0; r < m; r++) {
      const float dyv = dy[(size_t)r * d + j];
      const float xh = (x[(size_t)r * d + j] - mean[r]) * invstd[r];
      sg += (double)dyv * xh;
      sb += (double)dyv;
    }
    dgamma[j] = (float)sg;
    dbeta[j] = (float)sb;
  }
}

int aal_cuda_layernorm_forward(const aal_backend *be, int m, int d, const void *x,
                               const void *gamma, const void *beta, double eps, void *y,
                               void *mean, void *invstd, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(m > 0 && d > 0, "cuda layernorm_forward: bad sizes m=%d d=%d", m, d);
  REQUIRE(eps > 0.0 && std::isfinite(eps), "cuda layernorm_forward: eps is %g, must be > 0",
          eps);
  REQUIRE(x && gamma && beta && y && mean && invstd, "cuda layernorm_forward: NULL buffer");
  layernorm_forward_kernel<<<aal_cuda_blocks(ctx, (size_t)m * LN_THREADS, LN_THREADS),
                             LN_THREADS, 0, ctx->stream>>>(
      m, d, static_cast<const float *>(x), static_cast<const float *>(gamma),
      static_cast<const float *>(beta), eps, static_cast<float *>(y),
      static_cast<float *>(mean), static_cast<float *>(invstd));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_layernorm_backward(const aal_backend *be, int m, int d, const void *dy,
                                const void *x, const void *gamma, const void *mean,
                                const void *invstd, void *dx, void *dgamma, void *dbeta,
                                aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(m > 0 && d > 0, "cuda layernorm_backward: bad sizes m=%d d=%d", m, d);
  REQUIRE(dy && x && gamma && mean && invstd && dx && dgamma && dbeta,
          "cuda layernorm_backward: NULL buffer");
  REQUIRE(dx != x && dgamma != dy && dbeta != dy,
          "cuda layernorm_backward: outputs must not share storage with x or dy");
  const float *fdy = static_cast<const float *>(dy), *fx = static_cast<const float *>(x);
  const float *fm = static_cast<const float *>(mean), *fi = static_cast<const float *>(invstd);
  layernorm_backward_cols_kernel<<<aal_cuda_blocks(ctx, (size_t)d, AAL_CUDA_THREADS),
                                   AAL_CUDA_THREADS, 0, ctx->stream>>>(
      m, d, fdy, fx, fm, fi, static_cast<float *>(dgamma), static_cast<float *>(dbeta));
  LAUNCH_TRY();
  layernorm_backward_rows_kernel<<<aal_cuda_blocks(ctx, (size_t)m * LN_THREADS, LN_THREADS),
                                   LN_THREADS, 0, ctx->stream>>>(
      m, d, fdy, fx, static_cast<const float *>(gamma), fm, fi, static_cast<float *>(dx));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
