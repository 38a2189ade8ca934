// Batch norm, training mode, on the device.
//   x, y, dy, dx [N, C, HW];  gamma, beta, mean, invstd, dgamma, dbeta [C];  M = N HW.
// Forward (two passes, as the reference): mean = sum x / M; var = sum (x - mean)^2 / M
// (biased); invstd = 1 / sqrt(var + eps); y = (x - mean) gamma invstd + beta.
// Backward: xhat = (x - mean) invstd; dbeta = sum dy; dgamma = sum dy xhat;
// dx = gamma invstd ((dy - dbeta / M) - xhat dgamma / M).
// Fused with ReLU (bn_relu_forward / bn_relu_backward; mask: packed uint32 words,
// element i in bit i%32 of word i/32): the forward runs the same statistics kernels and
// one apply kernel that also takes the ReLU and ballots the mask bits (z = bn(x) stays in
// a register); the backward runs the same two kernels as bn_backward with the mask
// folded in (dz = bit ? dy : 0 is a register value).  The arithmetic of each element is
// shared with the unfused kernels (bn_affine, bn_dz) so that the fused ops equal
// bn_forward + relu_forward and relu_backward + bn_backward bit for bit (the same
// contraction into FMAs, the same reduction order: splits depend on the shape only).
//
// Per-channel reductions: a grid of (S, C) blocks, block (s, c) summing every S-th
// stretch of channel c in double; a finalize kernel adds the S partials of a channel in
// a fixed order (deterministic, no atomics).  Sums are kept in double so that the
// statistics are accurate to float rounding whatever M is; the elementwise passes
// (apply, dx) are float.
#include "kernels/cuda/cuda_internal.h"

static const int BN_THREADS = 256;

// Splits per channel: about 4 blocks per multiprocessor over all channels, at most one
// split per 4 block-widths of elements, between 1 and 1024.
static int bn_splits(const aal_cuda_ctx *ctx, int c, size_t m)
{
  size_t s = (size_t)(ctx->sm_count > 0 ? ctx->sm_count : 1) * 4 / (size_t)c;
  const size_t by_size = m / ((size_t)BN_THREADS * 4);
  if (s > by_size)
    s = by_size;
  if (s > 1024)
    s = 1024;
  return s < 1 ? 1 : (int)s;
}

// Element j (0 <= j < M) of channel c lives at (j / HW) C HW + c HW + j % HW.
__device__ __forceinline__ size_t bn_index(size_t j, int c, int nc, int hw)
{
  return (j / (size_t)hw) * (size_t)nc * hw + (size_t)c * hw + j % (size_t)hw;
}

// part[c S + s] = sum over the block's elements of x (center == NULL) or (x - center[c])^2.
__global__ void bn_sum_kernel(const float *__restrict__ x, int n, int nc, int hw,
                              const double *__restrict__ center, double *__restrict__ part)
{
  const int c = blockIdx.y, s = blockIdx.x, splits = gridDim.x;
  const size_t m = (size_t)n * hw;
  const double mu = center != nullptr ? center[c] : 0.0;
  double acc = 0.0;
  for (size_t j = (size_t)s * blockDim.x + threadIdx.x; j < m;
       j += (size_t)splits * blockDim.x) {
    const double v = (double)x[bn_index(j, c, nc, hw)];
    acc += center != nullptr ? (v - mu) * (v - mu) : v;
  }
  acc = aal_block_sum(acc);
  if (threadIdx.x == 0)
    part[(size_t)c * splits + s] = acc;
}

// dmean[c] = sum of partials / M; mean[c] = float of it.
__global__ void bn_mean_kernel(const double *__restrict__ part, int nc, int splits, double m,
                               double *__restrict__ dmean, float *__restrict__ mean)
{
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < nc; c += gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int s = 0; s < splits; s++)
      acc += part[(size_t)c * splits + s];
    dmean[c] = acc / m;
    mean[c] = (float)(acc / m);
  }
}

// invstd[c] = 1 / sqrt(var + eps), var = sum of partials / M.
__global__ void bn_invstd_kernel(const double *__restrict__ part, int nc, int splits, double m,
                                 double eps, float *__restrict__ invstd,
                                 float *__restrict__ var)
{
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < nc; c += gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int s = 0; s < splits; s++)
      acc += part[(size_t)c * splits + s];
    invstd[c] = (float)(1.0 / sqrt(acc / m + eps));
    var[c] = (float)(acc / m);  // the biased variance, for the running statistics
  }
}

// z = (x - mean) (gamma invstd) + beta: the one expression of the apply, shared by the
// plain and the ReLU-fused kernel.
__device__ __forceinline__ float bn_affine(float x, float mean, float gamma, float invstd,
                                           float beta)
{
  return (x - mean) * (gamma * invstd) + beta;
}

// y = (x - mean) (gamma invstd) + beta, every element (fused apply).
// y may alias x: each element is read and written by the same thread.
__global__ void bn_apply_kernel(const float *x, const float *__restrict__ gamma,
                                const float *__restrict__ beta, const float *__restrict__ mean,
                                const float *__restrict__ invstd, int nc, int hw, size_t total,
                                float *y)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const int c = (int)((i / (size_t)hw) % (size_t)nc);
    y[i] = bn_affine(x[i], mean[c], gamma[c], invstd[c], beta[c]);
  }
}

// z = bn_affine(x); y = z <= 0 ? 0 : z (as relu.cu: NaN propagates); mask bit = z > 0.
// The loop runs over total rounded up to a multiple of 32 so that whole warps stay
// together for the ballot; blockDim.x and the stride are multiples of 32, so a warp's 32
// elements form one mask word, which lane 0 stores (bits past total are 0).
// y may alias x: each element is read and written by the same thread.
__global__ void bn_relu_apply_kernel(const float *x, const float *__restrict__ gamma,
                                     const float *__restrict__ beta,
                                     const float *__restrict__ mean,
                                     const float *__restrict__ invstd, int nc, int hw,
                                     size_t total, float *y, uint32_t *__restrict__ mask)
{
  const size_t padded = (total + 31) / 32 * 32;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < padded;
       i += (size_t)gridDim.x * blockDim.x) {
    const bool in = i < total;
    float z = 0.0f;
    if (in) {
      const int c = (int)((i / (size_t)hw) % (size_t)nc);
      z = bn_affine(x[i], mean[c], gamma[c], invstd[c], beta[c]);
      y[i] = z <= 0.0f ? 0.0f : z;
    }
    const uint32_t word = __ballot_sync(0xffffffffu, in && z > 0.0f);
    if ((threadIdx.x & 31) == 0)
      mask[i / 32] = word;
  }
}

// The gradient entering batch norm: dy, or with a ReLU mask dz = bit ? dy : 0 (exactly
// what relu_backward stores).
__device__ __forceinline__ float bn_dz(const float *dy, const uint32_t *mask, size_t i)
{
  if (mask == nullptr)
    return dy[i];
  return (mask[i / 32] >> (i % 32)) & 1u ? dy[i] : 0.0f;
}

// part1[c S + s] = sum dy, part2[c S + s] = sum dy xhat over the block's elements
// (dy gated by mask unless mask is NULL).
__global__ void bn_bwd_sum_kernel(const float *__restrict__ dy,
                                  const uint32_t *__restrict__ mask,
                                  const float *__restrict__ x,
                                  const float *__restrict__ mean,
                                  const float *__restrict__ invstd, int n, int nc, int hw,
                                  double *__restrict__ part1, double *__restrict__ part2)
{
  const int c = blockIdx.y, s = blockIdx.x, splits = gridDim.x;
  const size_t m = (size_t)n * hw;
  const float mu = mean[c], is = invstd[c];
  double a1 = 0.0, a2 = 0.0;
  for (size_t j = (size_t)s * blockDim.x + threadIdx.x; j < m;
       j += (size_t)splits * blockDim.x) {
    const size_t i = bn_index(j, c, nc, hw);
    const double g = (double)bn_dz(dy, mask, i);
    a1 += g;
    a2 += g * (double)((x[i] - mu) * is);
  }
  a1 = aal_block_sum(a1);
  a2 = aal_block_sum(a2);
  if (threadIdx.x == 0) {
    part1[(size_t)c * splits + s] = a1;
    part2[(size_t)c * splits + s] = a2;
  }
}

// dbeta, dgamma and the two means the dx pass needs (mdy = dbeta / M, mdyx = dgamma / M).
__global__ void bn_bwd_finalize_kernel(const double *__restrict__ part1,
                                       const double *__restrict__ part2, int nc, int splits,
                                       double m, float *__restrict__ dgamma,
                                       float *__restrict__ dbeta, float *__restrict__ mdy,
                                       float *__restrict__ mdyx)
{
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < nc; c += gridDim.x * blockDim.x) {
    double a1 = 0.0, a2 = 0.0;
    for (int s = 0; s < splits; s++) {
      a1 += part1[(size_t)c * splits + s];
      a2 += part2[(size_t)c * splits + s];
    }
    dbeta[c] = (float)a1;
    dgamma[c] = (float)a2;
    mdy[c] = (float)(a1 / m);
    mdyx[c] = (float)(a2 / m);
  }
}

// dx = gamma invstd ((dy - mdy) - xhat mdyx), every element (dy gated by mask unless
// mask is NULL).  dx may alias dy: each element is read and written by the same thread.
__global__ void bn_bwd_dx_kernel(const float *dy, const uint32_t *__restrict__ mask,
                                 const float *x,
                                 const float *__restrict__ gamma,
                                 const float *__restrict__ mean,
                                 const float *__restrict__ invstd,
                                 const float *__restrict__ mdy, const float *__restrict__ mdyx,
                                 int nc, int hw, size_t total, float *dx)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const int c = (int)((i / (size_t)hw) % (size_t)nc);
    const float xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = (gamma[c] * invstd[c]) * ((bn_dz(dy, mask, i) - mdy[c]) - xhat * mdyx[c]);
  }
}

static int check_dims(int n, int c, int hw, const char *op, aal_error *err)
{
  REQUIRE(n > 0 && c > 0 && hw > 0, "cuda %s: bad sizes n=%d c=%d hw=%d", op, n, c, hw);
  REQUIRE(c <= 65535, "cuda %s: %d channels exceed the grid's y limit 65535", op, c);
  return AAL_OK;
}

// The forward of bn_forward and bn_relu_forward: the statistics (mean, invstd, var), then the
// apply, plain (mask NULL) or with the ReLU and its mask.
static int bn_forward_impl(const aal_backend *be, const char *op, int n, int c, int hw,
                           const void *xv, const void *gammav, const void *betav, double eps,
                           void *yv, void *maskv, void *meanv, void *invstdv, void *varv,
                           aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = check_dims(n, c, hw, op, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(eps >= 0.0, "cuda %s: eps %g is negative", op, eps);
  const float *x = static_cast<const float *>(xv);
  const size_t m = (size_t)n * hw, total = m * (size_t)c;
  const int splits = bn_splits(ctx, c, m);
  // scratch: partials [C S] doubles, then the double means [C]
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, ((size_t)c * splits + (size_t)c) * sizeof(double), &scratch,
                             err)) != AAL_OK)
    return rc;
  double *part = static_cast<double *>(scratch), *dmean = part + (size_t)c * splits;
  float *mean = static_cast<float *>(meanv), *invstd = static_cast<float *>(invstdv);
  const float *gamma = static_cast<const float *>(gammav);
  const float *beta = static_cast<const float *>(betav);
  const dim3 grid((unsigned)splits, (unsigned)c);
  const unsigned cblocks = aal_cuda_blocks(ctx, (size_t)c, AAL_CUDA_THREADS);
  const unsigned eblocks = aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS);

  bn_sum_kernel<<<grid, BN_THREADS, 0, ctx->stream>>>(x, n, c, hw, nullptr, part);
  LAUNCH_TRY();
  bn_mean_kernel<<<cblocks, AAL_CUDA_THREADS, 0, ctx->stream>>>(part, c, splits, (double)m,
                                                                 dmean, mean);
  LAUNCH_TRY();
  bn_sum_kernel<<<grid, BN_THREADS, 0, ctx->stream>>>(x, n, c, hw, dmean, part);
  LAUNCH_TRY();
  bn_invstd_kernel<<<cblocks, AAL_CUDA_THREADS, 0, ctx->stream>>>(
      part, c, splits, (double)m, eps, invstd, static_cast<float *>(varv));
  LAUNCH_TRY();
  if (maskv == nullptr)
    bn_apply_kernel<<<eblocks, AAL_CUDA_THREADS, 0, ctx->stream>>>(
        x, gamma, beta, mean, invstd, c, hw, total, static_cast<float *>(yv));
  else
    bn_relu_apply_kernel<<<eblocks, AAL_CUDA_THREADS, 0, ctx->stream>>>(
        x, gamma, beta, mean, invstd, c, hw, total, static_cast<float *>(yv),
        static_cast<uint32_t *>(maskv));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_bn_forward(const aal_backend *be, int n, int c, int hw, const void *xv,
                        const void *gammav, const void *betav, double eps, void *yv,
                        void *meanv, void *invstdv, void *varv, aal_error *err)
{
  const int rc = check_dims(n, c, hw, "bn forward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(xv && gammav && betav && yv && meanv && invstdv && varv,
          "cuda bn forward: NULL buffer");
  return bn_forward_impl(be, "bn forward", n, c, hw, xv, gammav, betav, eps, yv, nullptr,
                         meanv, invstdv, varv, err);
}

int aal_cuda_bn_relu_forward(const aal_backend *be, int n, int c, int hw, const void *xv,
                             const void *gammav, const void *betav, double eps, void *yv,
                             void *maskv, void *meanv, void *invstdv, void *varv,
                             aal_error *err)
{
  const int rc = check_dims(n, c, hw, "bn_relu forward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(xv && gammav && betav && yv && maskv && meanv && invstdv && varv,
          "cuda bn_relu forward: NULL buffer");
  return bn_forward_impl(be, "bn_relu forward", n, c, hw, xv, gammav, betav, eps, yv, maskv,
                         meanv, invstdv, varv, err);
}

// Evaluation mode: invstd[c] = 1 / sqrt(running_var[c] + eps) (in double, rounded once),
// then the same apply kernel as training with the running mean in place of the batch's.
__global__ void bn_eval_invstd_kernel(const float *__restrict__ var, int nc, double eps,
                                      float *invstd)
{
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < nc; c += gridDim.x * blockDim.x)
    invstd[c] = (float)(1.0 / sqrt((double)var[c] + eps));
}

int aal_cuda_bn_forward_eval(const aal_backend *be, int n, int c, int hw, const void *xv,
                             const void *gammav, const void *betav, const void *meanv,
                             const void *varv, double eps, void *yv, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = check_dims(n, c, hw, "bn forward eval", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(xv && gammav && betav && meanv && varv && yv, "cuda bn forward eval: NULL buffer");
  REQUIRE(eps > 0.0, "cuda bn forward eval: eps %g must be > 0", eps);
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, (size_t)c * sizeof(float), &scratch, err)) != AAL_OK)
    return rc;
  float *invstd = static_cast<float *>(scratch);
  const size_t total = (size_t)n * hw * (size_t)c;
  bn_eval_invstd_kernel<<<aal_cuda_blocks(ctx, (size_t)c, AAL_CUDA_THREADS), AAL_CUDA_THREADS,
                          0, ctx->stream>>>(static_cast<const float *>(varv), c, eps, invstd);
  LAUNCH_TRY();
  bn_apply_kernel<<<aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                    ctx->stream>>>(static_cast<const float *>(xv),
                                   static_cast<const float *>(gammav),
                                   static_cast<const float *>(betav),
                                   static_cast<const float *>(meanv), invstd, c, hw, total,
                                   static_cast<float *>(yv));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

// The backward of bn_backward (mask NULL) and bn_relu_backward.
static int bn_backward_impl(const aal_backend *be, const char *op, int n, int c, int hw,
                            const void *dyv, const void *maskv, const void *xv,
                            const void *gammav, const void *meanv, const void *invstdv,
                            void *dxv, void *dgammav, void *dbetav, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = check_dims(n, c, hw, op, err);
  if (rc != AAL_OK)
    return rc;
  const float *dy = static_cast<const float *>(dyv), *x = static_cast<const float *>(xv);
  const uint32_t *mask = static_cast<const uint32_t *>(maskv);
  const float *mean = static_cast<const float *>(meanv);
  const float *invstd = static_cast<const float *>(invstdv);
  const size_t m = (size_t)n * hw, total = m * (size_t)c;
  const int splits = bn_splits(ctx, c, m);
  // scratch: part1, part2 [C S] doubles, then mdy, mdyx [C] floats
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, 2 * (size_t)c * splits * sizeof(double) +
                                      2 * (size_t)c * sizeof(float),
                             &scratch, err)) != AAL_OK)
    return rc;
  double *part1 = static_cast<double *>(scratch), *part2 = part1 + (size_t)c * splits;
  float *mdy = reinterpret_cast<float *>(part2 + (size_t)c * splits), *mdyx = mdy + c;
  const dim3 grid((unsigned)splits, (unsigned)c);

  bn_bwd_sum_kernel<<<grid, BN_THREADS, 0, ctx->stream>>>(dy, mask, x, mean, invstd, n, c, hw,
                                                          part1, part2);
  LAUNCH_TRY();
  bn_bwd_finalize_kernel<<<aal_cuda_blocks(ctx, (size_t)c, AAL_CUDA_THREADS), AAL_CUDA_THREADS,
                           0, ctx->stream>>>(part1, part2, c, splits, (double)m,
                                             static_cast<float *>(dgammav),
                                             static_cast<float *>(dbetav), mdy, mdyx);
  LAUNCH_TRY();
  bn_bwd_dx_kernel<<<aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                     ctx->stream>>>(dy, mask, x, static_cast<const float *>(gammav), mean,
                                    invstd, mdy, mdyx, c, hw, total,
                                    static_cast<float *>(dxv));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_bn_backward(const aal_backend *be, int n, int c, int hw, const void *dyv,
                         const void *xv, const void *gammav, const void *meanv,
                         const void *invstdv, void *dxv, void *dgammav, void *dbetav,
                         aal_error *err)
{
  const int rc = check_dims(n, c, hw, "bn backward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(dyv && xv && gammav && meanv && invstdv && dxv && dgammav && dbetav,
          "cuda bn backward: NULL buffer");
  return bn_backward_impl(be, "bn backward", n, c, hw, dyv, nullptr, xv, gammav, meanv,
                          invstdv, dxv, dgammav, dbetav, err);
}

int aal_cuda_bn_relu_backward(const aal_backend *be, int n, int c, int hw, const void *dyv,
                              const void *maskv, const void *xv, const void *gammav,
                              const void *meanv, const void *invstdv, void *dxv,
                              void *dgammav, void *dbetav, aal_error *err)
{
  const int rc = check_dims(n, c, hw, "bn_relu backward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(dyv && maskv && xv && gammav && meanv && invstdv && dxv && dgammav && dbetav,
          "cuda bn_relu backward: NULL buffer");
  return bn_backward_impl(be, "bn_relu backward", n, c, hw, dyv, maskv, xv, gammav, meanv,
                          invstdv, dxv, dgammav, dbetav, err);
}
