// ASA sign bits on the device (SPEC 4, inputs that follow a ReLU).
//   x, out [n];  bits: ceil(n/32) uint32 words, element i in bit i%32 of word i/32.
//   pack:   bit = (x > 0), one word per warp with __ballot_sync (bits past n are 0);
//   unpack: out = bit ? (float)eps : 0  (the {0, 1} decoding times eps).
//   asa_input (fused pack + unpack + add): bit = (x > 0) balloted as in pack, and
//           h = x + (bit ? (float)eps : 0) in the same pass - the expression of
//           sign_unpack then add (add.cu), so it equals them bit for bit.
#include "kernels/cuda/cuda_internal.h"

// Loop bound rounded up to a multiple of 32 so that whole warps stay together for the
// ballot (see relu.cu).
__global__ void sign_pack_kernel(size_t n, const float *__restrict__ x,
                                 uint32_t *__restrict__ bits)
{
  const size_t padded = (n + 31) / 32 * 32;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < padded;
       i += (size_t)gridDim.x * blockDim.x) {
    const bool pos = i < n && x[i] > 0.0f;
    const uint32_t word = __ballot_sync(0xffffffffu, pos);
    if ((threadIdx.x & 31) == 0)
      bits[i / 32] = word;
  }
}

// h may alias x: each element is read and written by the same thread.
__global__ void asa_input_kernel(size_t n, const float *x, float eps, float *h,
                                 uint32_t *__restrict__ bits)
{
  const size_t padded = (n + 31) / 32 * 32;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < padded;
       i += (size_t)gridDim.x * blockDim.x) {
    const bool in = i < n;
    const float v = in ? x[i] : 0.0f;
    const bool pos = in && v > 0.0f;
    if (in)
      h[i] = v + (pos ? eps : 0.0f);
    const uint32_t word = __ballot_sync(0xffffffffu, pos);
    if ((threadIdx.x & 31) == 0)
      bits[i / 32] = word;
  }
}

__global__ void sign_unpack_kernel(size_t n, const uint32_t *__restrict__ bits, float eps,
                                   float *__restrict__ out)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    out[i] = (bits[i / 32] >> (i % 32)) & 1u ? eps : 0.0f;
}

int aal_cuda_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                       aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(x && bits, "cuda sign pack: NULL buffer");
  if (n == 0)
    return AAL_OK;
  sign_pack_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                     ctx->stream>>>(n, static_cast<const float *>(x),
                                    static_cast<uint32_t *>(bits));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                         void *out, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(bits && out, "cuda sign unpack: NULL buffer");
  if (n == 0)
    return AAL_OK;
  sign_unpack_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                       ctx->stream>>>(n, static_cast<const uint32_t *>(bits), (float)eps,
                                      static_cast<float *>(out));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_asa_input(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                       void *bits, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(x && h && bits, "cuda asa input: NULL buffer");
  if (n == 0)
    return AAL_OK;
  asa_input_kernel<<<aal_cuda_blocks(ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                     ctx->stream>>>(n, static_cast<const float *>(x), (float)eps,
                                    static_cast<float *>(h), static_cast<uint32_t *>(bits));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
