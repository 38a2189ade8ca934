// Softmax cross-entropy on the device, one warp per row (sample).
//   logits, prob, dlogits [N, CLASSES];  labels [N] on the host (copied to the device).
// Per row, with mx = max_k z[k] and s = sum_k exp(z[k] - mx), in double:
//   prob[k] = exp(z[k] - mx) / s;   loss_n = (mx - z[label]) + log(s)   (as the reference).
// The N loss terms are written to device scratch and summed by one block in a fixed
// order (deterministic); the host gets total / N as a double.  A non-finite logit makes
// the loss non-finite, reported as AAL_ENUMERIC.
// prob may alias logits: the label's logit is read, and the warp synchronised, before
// any lane writes prob; each other element is read and written by the same lane.
#include "kernels/cuda/cuda_internal.h"

#include <cmath>

static const int XENT_THREADS = 256;  // 8 rows per block

__global__ void xent_forward_kernel(int n, int classes, const float *logits,
                                    const int *__restrict__ labels, double *__restrict__ terms,
                                    float *prob)
{
  const int lane = threadIdx.x & 31;
  const int warps = (int)((gridDim.x * blockDim.x) / 32);
  for (int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) / 32); row < n; row += warps) {
    const float *z = logits + (size_t)row * classes;
    float *p = prob + (size_t)row * classes;
    double mx = -INFINITY;
    for (int k = lane; k < classes; k += 32)
      mx = fmax(mx, (double)z[k]);
    for (int o = 16; o > 0; o >>= 1)
      mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    // A NaN logit is lost by fmax and a -Inf one vanishes in exp: flag any non-finite
    // logit so that the loss term (and the loss) becomes NaN, as the reference refuses.
    bool bad = false;
    double s = 0.0;
    for (int k = lane; k < classes; k += 32) {
      bad = bad || !isfinite(z[k]);
      s += exp((double)z[k] - mx);
    }
    for (int o = 16; o > 0; o >>= 1)
      s += __shfl_xor_sync(0xffffffffu, s, o);
    bad = __any_sync(0xffffffffu, bad);
    const double z_label = (double)z[labels[row]];
    __syncwarp();
    for (int k = lane; k < classes; k += 32)
      p[k] = (float)(exp((double)z[k] - mx) / s);
    if (lane == 0)
      terms[row] = bad ? (double)NAN : (mx - z_label) + log(s);
  }
}

// total[0] = sum of terms[0..n), one block.
__global__ void sum_terms_kernel(int n, const double *__restrict__ terms,
                                 double *__restrict__ total)
{
  double acc = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    acc += terms[i];
  acc = aal_block_sum(acc);
  if (threadIdx.x == 0)
    total[0] = acc;
}

// dlogits = (prob - onehot) / N (divided, as the reference); dlogits may alias prob.
__global__ void xent_backward_kernel(int n, int classes, const float *prob,
                                     const int *__restrict__ labels, float *dlogits)
{
  const size_t total = (size_t)n * classes;
  const float dn = (float)n;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t row = i / (size_t)classes;
    const int k = (int)(i % (size_t)classes);
    const float onehot = labels[row] == k ? 1.0f : 0.0f;
    dlogits[i] = (prob[i] - onehot) / dn;
  }
}

static int check_labels(int n, int classes, const int *labels, const char *op, aal_error *err)
{
  REQUIRE(n > 0 && classes > 0, "cuda %s: bad sizes n=%d classes=%d", op, n, classes);
  REQUIRE(labels != nullptr, "cuda %s: labels is NULL", op);
  for (int i = 0; i < n; i++)
    REQUIRE(labels[i] >= 0 && labels[i] < classes,
            "cuda %s: sample %d has label %d, outside 0..%d", op, i, labels[i], classes - 1);
  return AAL_OK;
}

int aal_cuda_xent_forward(const aal_backend *be, int n, int classes, const void *logits,
                          const int *labels, double *loss, void *prob, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = check_labels(n, classes, labels, "xent forward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(logits && prob && loss, "cuda xent forward: NULL buffer");
  // scratch: terms [N] doubles, total [1] double, labels [N] ints
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, ((size_t)n + 1) * sizeof(double) + (size_t)n * sizeof(int),
                             &scratch, err)) != AAL_OK)
    return rc;
  double *terms = static_cast<double *>(scratch), *dtotal = terms + n;
  int *dlabels = reinterpret_cast<int *>(dtotal + 1);
  // From pageable memory this returns once labels are staged, so they may change after.
  CUDA_TRY(cudaMemcpyAsync(dlabels, labels, (size_t)n * sizeof(int), cudaMemcpyHostToDevice,
                           ctx->stream));
  xent_forward_kernel<<<aal_cuda_blocks(ctx, (size_t)n * 32, XENT_THREADS), XENT_THREADS, 0,
                        ctx->stream>>>(n, classes, static_cast<const float *>(logits), dlabels,
                                       terms, static_cast<float *>(prob));
  LAUNCH_TRY();
  sum_terms_kernel<<<1, 1024, 0, ctx->stream>>>(n, terms, dtotal);
  LAUNCH_TRY();
  double total = 0.0;
  CUDA_TRY(cudaMemcpyAsync(&total, dtotal, sizeof total, cudaMemcpyDeviceToHost, ctx->stream));
  CUDA_TRY(cudaStreamSynchronize(ctx->stream));
  if (!std::isfinite(total))
    return aal_fail(err, AAL_ENUMERIC,
                    "cuda xent forward: the loss is %g (a logit is NaN or infinite)", total);
  *loss = total / (double)n;
  return AAL_OK;
}

int aal_cuda_xent_backward(const aal_backend *be, int n, int classes, const void *prob,
                           const int *labels, void *dlogits, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = check_labels(n, classes, labels, "xent backward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(prob && dlogits, "cuda xent backward: NULL buffer");
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, (size_t)n * sizeof(int), &scratch, err)) != AAL_OK)
    return rc;
  int *dlabels = static_cast<int *>(scratch);
  CUDA_TRY(cudaMemcpyAsync(dlabels, labels, (size_t)n * sizeof(int), cudaMemcpyHostToDevice,
                           ctx->stream));
  xent_backward_kernel<<<aal_cuda_blocks(ctx, (size_t)n * classes, AAL_CUDA_THREADS),
                         AAL_CUDA_THREADS, 0, ctx->stream>>>(
      n, classes, static_cast<const float *>(prob), dlabels, static_cast<float *>(dlogits));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
