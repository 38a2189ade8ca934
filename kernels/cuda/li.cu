// Learning indicator per sample on the device (SPEC 2):
//   h, r [N, PER] -> li [N],  li[n] = r.(2h - r) / ||h||^2, summed in double,
//   one block per sample (grid-stride over samples); ||h|| = 0 gives NaN (never a
//   made-up value: the caller counts NaNs).
#include "kernels/cuda/cuda_internal.h"

#include <cmath>

static const int LI_THREADS = 512;

__global__ void li_kernel(int n, size_t per, const float *__restrict__ h,
                          const float *__restrict__ r, float *__restrict__ li)
{
  for (int smp = blockIdx.x; smp < n; smp += gridDim.x) {
    const float *hs = h + (size_t)smp * per, *rs = r + (size_t)smp * per;
    double num = 0.0, hh = 0.0;
    for (size_t j = threadIdx.x; j < per; j += blockDim.x) {
      const double hv = (double)hs[j], rv = (double)rs[j];
      num += rv * (2.0 * hv - rv);
      hh += hv * hv;
    }
    num = aal_block_sum(num);
    hh = aal_block_sum(hh);
    if (threadIdx.x == 0)
      li[smp] = hh > 0.0 ? (float)(num / hh) : (float)NAN;
    __syncthreads();  // the next sample's block sums reuse the shared partials
  }
}

int aal_cuda_li_reduce(const aal_backend *be, int n, size_t per, const void *h, const void *r,
                       void *li, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(n > 0 && per > 0, "cuda li reduce: bad sizes n=%d per=%zu", n, per);
  REQUIRE(h && r && li, "cuda li reduce: NULL buffer");
  const unsigned blocks = n < 65535 ? (unsigned)n : 65535u;
  li_kernel<<<blocks, LI_THREADS, 0, ctx->stream>>>(n, per, static_cast<const float *>(h),
                                                    static_cast<const float *>(r),
                                                    static_cast<float *>(li));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
