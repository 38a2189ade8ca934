// Embeddings on the device (sim/layers/embed.c; kernels/cpu/embed.c):
// token embedding: ids [B T] on the host, copied to the scratch; y[b, t] = table[id] +
//   pos[t], one thread per element.  Backward, deterministic without atomics and in
//   kernels/cpu/embed.c's order: one thread per column j walks the B T positions in
//   order and adds dy into dtable[id, j] (dtable zeroed first); one thread per (t, j)
//   sums dpos over b in order.  Same float additions in the same order as cpu32.
// patchify: one thread per element of the patches (a copy), backward the inverse copy.
#include "kernels/cuda/cuda_internal.h"

__global__ void embed_forward_kernel(size_t bt, int t, int d, const int *__restrict__ ids,
                                     const float *__restrict__ table,
                                     const float *__restrict__ pos, float *__restrict__ y)
{
  const size_t total = bt * (size_t)d;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t row = i / (size_t)d, j = i % (size_t)d;
    const float v = table[(size_t)ids[row] * d + j];
    y[i] = pos != nullptr ? v + pos[(row % (size_t)t) * d + j] : v;
  }
}

__global__ void embed_dtable_kernel(size_t bt, int d, const int *__restrict__ ids,
                                    const float *__restrict__ dy, float *__restrict__ dtable)
{
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < d; j += gridDim.x * blockDim.x)
    for (size_t i = 0; i < bt; i++)
      dtable[(size_t)ids[i] * d + j] += dy[i * d + j];
}

__global__ void embed_dpos_kernel(int b, int t, int d, const float *__restrict__ dy,
                                  float *__restrict__ dpos)
{
  const size_t total = (size_t)t * d;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    float acc = 0.0f;
    for (int bb = 0; bb < b; bb++)
      acc += dy[(size_t)bb * total + i];
    dpos[i] = acc;
  }
}

static int embed_ids(aal_cuda_ctx *ctx, const char *op, int b, int t, int vocab, int d,
                     const int *ids, int **dids, aal_error *err)
{
  REQUIRE(b > 0 && t > 0 && vocab > 0 && d > 0, "cuda %s: bad sizes b=%d t=%d vocab=%d d=%d",
          op, b, t, vocab, d);
  REQUIRE(ids != nullptr, "cuda %s: ids is NULL", op);
  const size_t bt = (size_t)b * t;
  for (size_t i = 0; i < bt; i++)
    REQUIRE(ids[i] >= 0 && ids[i] < vocab, "cuda %s: id %d at (b %zu, t %zu) is outside 0..%d",
            op, ids[i], i / (size_t)t, i % (size_t)t, vocab - 1);
  void *scratch;
  int rc = aal_cuda_scratch(ctx, bt * sizeof(int), &scratch, err);
  if (rc != AAL_OK)
    return rc;
  *dids = static_cast<int *>(scratch);
  CUDA_TRY(cudaMemcpyAsync(*dids, ids, bt * sizeof(int), cudaMemcpyHostToDevice, ctx->stream));
  return AAL_OK;
}

int aal_cuda_embed_forward(const aal_backend *be, int b, int t, int vocab, int d,
                           const int *ids, const void *table, const void *pos, void *y,
                           aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int *dids = nullptr;
  int rc = embed_ids(ctx, "embed_forward", b, t, vocab, d, ids, &dids, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(table && y, "cuda embed_forward: NULL buffer");
  const size_t bt = (size_t)b * t;
  embed_forward_kernel<<<aal_cuda_blocks(ctx, bt * d, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                         ctx->stream>>>(bt, t, d, dids, static_cast<const float *>(table),
                                        static_cast<const float *>(pos), static_cast<float *>(y));
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_embed_backward(const aal_backend *be, int b, int t, int vocab, int d,
                            const int *ids, const void *dy, void *dtable, void *dpos,
                            aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int *dids = nullptr;
  int rc = embed_ids(ctx, "embed_backward", b, t, vocab, d, ids, &dids, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(dy && dtable, "cuda embed_backward: NULL buffer");
  const size_t bt = (size_t)b * t;
  CUDA_TRY(cudaMemsetAsync(dtable, 0, (size_t)vocab * d * sizeof(float), ctx->stream));
  embed_dtable_kernel<<<aal_cuda_blocks(ctx, (size_t)d, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                        ctx->stream>>>(bt, d, dids, static_cast<const float *>(dy),
                                       static_cast<float *>(dtable));
  LAUNCH_TRY();
  if (dpos != nullptr) {
    embed_dpos_kernel<<<aal_cuda_blocks(ctx, (size_t)t * d, AAL_CUDA_THREADS), AAL_CUDA_THREADS,
                        0, ctx->stream>>>(b, t, d, static_cast<const float *>(dy),
                                          static_cast<float *>(dpos));
    LAUNCH_TRY();
  }
  OP_DONE(ctx);
}

// ---- patchify

__global__ void patchify_kernel(size_t total, int c, int h, int w, int p, float *img, float *pt,
                                int to_patches)
{
  const int nw = w / p, n = (h / p) * nw;
  const size_t f = (size_t)c * p * p;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t fi = i % f, rest = i / f;
    const size_t pn = rest % (size_t)n, bb = rest / (size_t)n;
    const size_t cc = fi / ((size_t)p * p), ii = (fi / p) % p, jj = fi % p;
    const size_t xi = ((bb * c + cc) * h + (pn / nw) * p + ii) * w + (pn % nw) * p + jj;
    if (to_patches)
      pt[i] = img[xi];
    else
      img[xi] = pt[i];
  }
}

static int patchify(const aal_backend *be, const char *op, int b, int c, int h, int w, int p,
                    float *img, float *pt, int to_patches, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(b > 0 && c > 0 && h > 0 && w > 0 && p > 0, "cuda %s: bad sizes", op);
  REQUIRE(h % p == 0 && w % p == 0, "cuda %s: the image is %dx%d, not divisible by p = %d", op,
          h, w, p);
  REQUIRE(img && pt, "cuda %s: NULL buffer", op);
  const size_t total = (size_t)b * c * h * w;
  patchify_kernel<<<aal_cuda_blocks(ctx, total, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                    ctx->stream>>>(total, c, h, w, p, img, pt, to_patches);
  LAUNCH_TRY();
  OP_DONE(ctx);
}

int aal_cuda_patchify_forward(const aal_backend *be, int b, int c, int h, int w, int p,
                              const void *x, void *y, aal_error *err)
{
  return patchify(be, "patchify_forward", b, c, h, w, p, const_cast<float *>(static_cast<const float *>(x)),
                  static_cast<float *>(y), 1, err);
}

int aal_cuda_patchify_backward(const aal_backend *be, int b, int c, int h, int w, int p,
                               const void *dy, void *dx, aal_error *err)
{
  return patchify(be, "patchify_backward", b, c, h, w, p, static_cast<float *>(dx),
                  const_cast<float *>(static_cast<const float *>(dy)), 0, err);
}
