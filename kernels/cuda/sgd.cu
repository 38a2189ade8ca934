// SGD with momentum and weight decay (PyTorch's rule), fused, on the device:
//   d = g + wd w;  buf = first ? d : momentum buf + d;  w -= lr buf.
//   w, g, buf [n] floats; the scalars are rounded to float once.
#include "kernels/cuda/cuda_internal.h"

__global__ void sgd_kernel(size_t n, float *__restrict__ w, const float *__restrict__ g,
                           float *__restrict__ buf, float lr, float momentum, float wd,
                           int first)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float d = g[i] + wd * w[i];
    const float b = first ? d : momentum * buf[i] + d;
    buf[i] = b;
    w[i] = w[i] - lr * b;
  }
}

int aal_cuda_sgd_update(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                        double lr, double momentum, double weight_decay, int first,
                        aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(w && g && buf, "cuda sgd update: NULL buffer");
  if (n == 0)
    return AAL_OK;
  sgd_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0, ctx->stream>>>(
      n, static_cast<float *>(w), static_cast<const float *>(g), static_cast<float *>(buf),
      (float)lr, (float)momentum, (float)weight_decay, first);
  LAUNCH_TRY();
  OP_DONE(ctx);
}
