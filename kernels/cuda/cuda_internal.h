// Internal to the CUDA backend (kernels/cuda/*.cu): the context, the checked-call
// macros and the per-family entry points that backend.cu puts into the op table.
//
// Glossary of dimension letters (as in sim/): N batch, C input channels, H W input
// height and width, K output channels, R S filter height and width, P Q output height
// and width; CRS = C*R*S, PQ = P*Q.  All tensors are float32 on the device, row-major
// (NCHW activations, OIHW weights); bit buffers are uint32 words, element i in bit i%32
// of word i/32.
//
// Errors: every CUDA and cuBLAS call goes through CUDA_TRY/CUBLAS_TRY (or the *_STATUS
// forms where a function must clean up), which write the function, file, line, the call
// text and the CUDA/cuBLAS error name and string into the caller's aal_error (a local
// variable called `err` must be in scope).  Kernel launches are followed by LAUNCH_TRY().
// Kernels run asynchronously on the context's stream: a fault inside a kernel is
// reported by the next call that synchronises (download, xent_forward, or any op when
// the environment sets AAL_CUDA_SYNC=1, which synchronises after every op).
#ifndef AAL_CUDA_INTERNAL_H
#define AAL_CUDA_INTERNAL_H

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "kernels/backend.h"
#include "sim/core/error.h"
}

// The backend's state, in be->ctx.  No global mutable state: everything lives here.
struct aal_cuda_ctx {
  int device;             // the device this backend runs on (current device at open)
  int sm_count;           // multiprocessors, to size grid-stride launches
  int sync_each_op;       // AAL_CUDA_SYNC=1: synchronise (and check) after every op
  cudaStream_t stream;    // every kernel, copy and cuBLAS call runs on this stream
  cublasHandle_t blas;    // bound to stream
  void *scratch;          // device scratch (im2col columns, reduction partials, labels)
  size_t scratch_bytes;   // its capacity
};

static inline aal_cuda_ctx *aal_cuda_ctx_of(const aal_backend *be)
{
  return static_cast<aal_cuda_ctx *>(be->ctx);
}

// ---- checked calls -------------------------------------------------------------------

// AAL_OK, or records "func: file:line: call: NAME (string)" in err and returns the aal
// status (AAL_ENOMEM for allocation failures, AAL_EINVAL for invalid values or launch
// configurations, AAL_EIO for everything else the device reports).
int aal_cuda_status(aal_error *err, cudaError_t s, const char *func, const char *file,
                    int line, const char *call);
int aal_cublas_status(aal_error *err, cublasStatus_t s, const char *func, const char *file,
                      int line, const char *call);

#define CUDA_STATUS(call) aal_cuda_status(err, (call), __func__, __FILE__, __LINE__, #call)
#define CUBLAS_STATUS(call) aal_cublas_status(err, (call), __func__, __FILE__, __LINE__, #call)
#define CUDA_TRY(call)                                                                    \
  do {                                                                                    \
    const int rc_ = CUDA_STATUS(call);                                                    \
    if (rc_ != AAL_OK)                                                                    \
      return rc_;                                                                         \
  } while (0)
#define CUBLAS_TRY(call)                                                                  \
  do {                                                                                    \
    const int rc_ = CUBLAS_STATUS(call);                                                  \
    if (rc_ != AAL_OK)                                                                    \
      return rc_;                                                                         \
  } while (0)
// After every <<<...>>>: launch errors (bad configuration, no kernel image) show here.
#define LAUNCH_TRY() CUDA_TRY(cudaGetLastError())

// Ends an op: with AAL_CUDA_SYNC=1, waits for the stream so that a kernel fault is
// reported by the op that caused it.
#define OP_DONE(ctx)                                                                      \
  do {                                                                                    \
    if ((ctx)->sync_each_op)                                                              \
      CUDA_TRY(cudaStreamSynchronize((ctx)->stream));                                     \
    return AAL_OK;                                                                        \
  } while (0)

// Argument checks shared by the ops (name the op through func).
#define REQUIRE(cond, ...)                                                                \
  do {                                                                                    \
    if (!(cond))                                                                          \
      return aal_fail(err, AAL_EINVAL, __VA_ARGS__);                                      \
  } while (0)

// ---- launch helpers ------------------------------------------------------------------

static const int AAL_CUDA_THREADS = 256;

// Blocks for a grid-stride loop over `work` items with `threads` per block: enough to
// fill the device, never more than the work needs.
static inline unsigned aal_cuda_blocks(const aal_cuda_ctx *ctx, size_t work, int threads)
{
  size_t want = (work + (size_t)threads - 1) / (size_t)threads;
  const size_t cap = (size_t)(ctx->sm_count > 0 ? ctx->sm_count : 1) * 32;
  if (want > cap)
    want = cap;
  return want < 1 ? 1u : (unsigned)want;
}

// Grows the context's scratch to at least `bytes` (the stream is synchronised first, so
// work still using the old buffer finishes before it is freed).  One backend instance
// is used by one host thread at a time (the scratch is shared by its ops).
int aal_cuda_scratch(aal_cuda_ctx *ctx, size_t bytes, void **out, aal_error *err);

// ---- device reductions ---------------------------------------------------------------

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); the result is
// valid in thread 0.  Every thread of the block must call it.
__device__ __forceinline__ double aal_warp_sum(double v)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double aal_block_sum(double v)
{
  __shared__ double part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = aal_warp_sum(v);
  __syncthreads();  // part may still be read by a previous call
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  const int warps = (int)(blockDim.x >> 5);
  v = threadIdx.x < (unsigned)warps ? part[threadIdx.x] : 0.0;
  if (warp == 0)
    v = aal_warp_sum(v);
  return v;
}

// ---- the ops, by family (one .cu each) -----------------------------------------------

// conv.cu
int aal_cuda_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                          const void *w, void *y, aal_error *err);
int aal_cuda_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs,
                                const void *dy, const void *w, void *dx, aal_error *err);
int aal_cuda_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                  const void *x, const void *dy, void *dw, aal_error *err);
// batchnorm.cu
int aal_cuda_bn_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                        const void *gamma, const void *beta, double eps, void *y, void *mean,
                        void *invstd, void *var, aal_error *err);
int aal_cuda_bn_forward_eval(const aal_backend *be, int n, int c, int hw, const void *x,
                             const void *gamma, const void *beta, const void *running_mean,
                             const void *running_var, double eps, void *y, aal_error *err);
int aal_cuda_bn_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                         const void *x, const void *gamma, const void *mean,
                         const void *invstd, void *dx, void *dgamma, void *dbeta,
                         aal_error *err);
int aal_cuda_bn_relu_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                             const void *gamma, const void *beta, double eps, void *y,
                             void *mask, void *mean, void *invstd, void *var,
                             aal_error *err);
int aal_cuda_bn_relu_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                              const void *mask, const void *x, const void *gamma,
                              const void *mean, const void *invstd, void *dx, void *dgamma,
                              void *dbeta, aal_error *err);
// relu.cu
int aal_cuda_relu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                          void *mask, aal_error *err);
int aal_cuda_relu_backward(const aal_backend *be, size_t n, const void *dy, const void *mask,
                           void *dx, aal_error *err);
// add.cu
int aal_cuda_scale(const aal_backend *be, size_t n, const void *x, double s, void *y,
                   aal_error *err);
int aal_cuda_add(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                 aal_error *err);
// kernels/cuda/pool.cu
int aal_cuda_avgpool_forward(const aal_backend *be, int rows, int hw, const void *x, void *y,
                             aal_error *err);
int aal_cuda_avgpool_backward(const aal_backend *be, int rows, int hw, const void *dy,
                              void *dx, aal_error *err);
int aal_cuda_maxpool_forward(const aal_backend *be, int n, int c, int h, int w, int k,
                             int stride, int pad, const void *x, void *y, aal_error *err);
int aal_cuda_maxpool_backward(const aal_backend *be, int n, int c, int h, int w, int k,
                              int stride, int pad, const void *dy, const void *x, void *dx,
                              aal_error *err);
// linear.cu
int aal_cuda_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                            const void *w, const void *b, void *y, aal_error *err);
int aal_cuda_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                             const void *x, const void *w, void *dx, void *dw, void *db,
                             aal_error *err);
// xent.cu
int aal_cuda_xent_forward(const aal_backend *be, int n, int classes, const void *logits,
                          const int *labels, double *loss, void *prob, aal_error *err);
int aal_cuda_xent_backward(const aal_backend *be, int n, int classes, const void *prob,
                           const int *labels, void *dlogits, aal_error *err);
// asa.cu
int aal_cuda_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                       aal_error *err);
int aal_cuda_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                         void *out, aal_error *err);
int aal_cuda_asa_input(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                       void *bits, aal_error *err);
// li.cu
int aal_cuda_li_reduce(const aal_backend *be, int n, size_t per, const void *h, const void *r,
                       void *li, aal_error *err);
// sgd.cu
int aal_cuda_sgd_update(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                        double lr, double momentum, double weight_decay, int first,
                        aal_error *err);

// The Transformer ops (issue 17), one .cu each as in sim/layers.
// layernorm.cu
int aal_cuda_layernorm_forward(const aal_backend *be, int m, int d, const void *x,
                               const void *gamma, const void *beta, double eps, void *y,
                               void *mean, void *invstd, aal_error *err);
int aal_cuda_layernorm_backward(const aal_backend *be, int m, int d, const void *dy,
                                const void *x, const void *gamma, const void *mean,
                                const void *invstd, void *dx, void *dgamma, void *dbeta,
                                aal_error *err);
// gelu.cu
int aal_cuda_gelu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                          aal_error *err);
int aal_cuda_gelu_backward(const aal_backend *be, size_t n, const void *dy, const void *x,
                           void *dx, aal_error *err);
// softmax.cu; the row launches shared with attention.cu (y may be x, dx may be dy)
int aal_cuda_softmax_forward(const aal_backend *be, int m, int d, const void *x, void *y,
                             aal_error *err);
int aal_cuda_softmax_backward(const aal_backend *be, int m, int d, const void *dy,
                              const void *y, void *dx, aal_error *err);
int aal_cuda_softmax_rows(aal_cuda_ctx *ctx, size_t rows, int d, const float *x, float *y,
                          aal_error *err);
int aal_cuda_softmax_backward_rows(aal_cuda_ctx *ctx, size_t rows, int d, const float *dy,
                                   const float *y, float *dx, aal_error *err);
// attention.cu
int aal_cuda_attention_forward(const aal_backend *be, int b, int t, int heads, int dh,
                               const void *q, const void *k, const void *v, void *p, void *o,
                               aal_error *err);
int aal_cuda_attention_backward(const aal_backend *be, int b, int t, int heads, int dh,
                                const void *dout, const void *q, const void *k, const void *v,
                                const void *p, void *dq, void *dk, void *dv, aal_error *err);
// embed.cu: token embedding and patchify
int aal_cuda_embed_forward(const aal_backend *be, int b, int t, int vocab, int d,
                           const int *ids, const void *table, const void *pos, void *y,
                           aal_error *err);
int aal_cuda_embed_backward(const aal_backend *be, int b, int t, int vocab, int d,
                            const int *ids, const void *dy, void *dtable, void *dpos,
                            aal_error *err);
int aal_cuda_patchify_forward(const aal_backend *be, int b, int c, int h, int w, int p,
                              const void *x, void *y, aal_error *err);
int aal_cuda_patchify_backward(const aal_backend *be, int b, int c, int h, int w, int p,
                               const void *dy, void *dx, aal_error *err);
// transpose.cu
int aal_cuda_transpose(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                       aal_error *err);

#endif
