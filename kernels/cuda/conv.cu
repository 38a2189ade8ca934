// conv2d (no bias) on the device: im2col / col2im kernels and cuBLAS SGEMM.
//
//   x  [N, C, H, W]    w  [K, C, R, S]    y  [N, K, P, Q]
//   col: for a chunk of nb samples, the unfolded input, element (n, crs, pq) at
//        n * ld_n + crs * ld_crs + pq, crs = (c R + r) S + s, pq = p Q + q, and
//        col(n, crs, pq) = x[n, c, p stride - pad + r, q stride - pad + s] (0 outside).
//   Two layouts of col are used:
//     per-sample: ld_crs = PQ,      ld_n = CRS PQ   (row-major [nb][CRS][PQ])
//     wide:       ld_crs = nb PQ,   ld_n = PQ       (row-major [CRS][nb PQ])
//
// cuBLAS is column-major: a row-major matrix M [a, b] stored densely is, to cuBLAS, the
// column-major matrix M^T [b, a] with leading dimension b.  Each call below is written
// as the row-major product wanted, then as what cuBLAS sees.
//
// The batch is processed in chunks of nb samples so that the column buffer stays below
// COL_LIMIT floats (1 GiB); one chunk suffices for ResNet-18 at batch 256 except for the
// 64-channel 32x32 convs.
#include "kernels/cuda/cuda_internal.h"

static const size_t COL_LIMIT = (size_t)1 << 28;  // floats in the column scratch

struct conv_dims {
  int n, c, h, w, k, r, s, stride, pad, p, q;
  size_t crs, pq;
};

static int check_shape(const aal_conv_shape *cs, conv_dims *d, const char *op, aal_error *err)
{
  REQUIRE(cs != nullptr, "cuda %s: shape is NULL", op);
  REQUIRE(cs->n > 0 && cs->c > 0 && cs->h > 0 && cs->w > 0 && cs->k > 0 && cs->r > 0 &&
              cs->s > 0 && cs->stride >= 1 && cs->pad >= 0,
          "cuda %s: bad shape n=%d c=%d h=%d w=%d k=%d r=%d s=%d stride=%d pad=%d", op, cs->n,
          cs->c, cs->h, cs->w, cs->k, cs->r, cs->s, cs->stride, cs->pad);
  const int hp = cs->h + 2 * cs->pad - cs->r, wp = cs->w + 2 * cs->pad - cs->s;
  REQUIRE(hp >= 0 && wp >= 0 && cs->p == hp / cs->stride + 1 && cs->q == wp / cs->stride + 1,
          "cuda %s: output %dx%d does not match input %dx%d, filter %dx%d, stride %d, pad %d"
          " (call aal_conv_shape_init)",
          op, cs->p, cs->q, cs->h, cs->w, cs->r, cs->s, cs->stride, cs->pad);
  *d = {cs->n, cs->c, cs->h, cs->w, cs->k, cs->r, cs->s, cs->stride, cs->pad, cs->p, cs->q,
        (size_t)cs->c * cs->r * cs->s, (size_t)cs->p * cs->q};
  REQUIRE(d->crs <= INT32_MAX && d->pq <= INT32_MAX && (size_t)cs->k * d->pq <= INT32_MAX,
          "cuda %s: a matrix dimension exceeds the 32-bit range of cuBLAS", op);
  return AAL_OK;
}

// Samples per chunk so that `per_sample` floats per sample fit in COL_LIMIT (at least 1),
// also keeping nb * PQ within int for the wide layout.
static int chunk_samples(const conv_dims &d, size_t per_sample)
{
  size_t nb = COL_LIMIT / (per_sample > 0 ? per_sample : 1);
  const size_t int_cap = (size_t)INT32_MAX / d.pq;
  if (nb > int_cap)
    nb = int_cap;
  if (nb > (size_t)d.n)
    nb = (size_t)d.n;
  return nb < 1 ? 1 : (int)nb;
}

// ---- kernels ---------------------------------------------------------------------------

// col(n, crs, pq) for samples [n0, n0 + nb) of x; one thread per element (grid-stride).
__global__ void im2col_kernel(const float *__restrict__ x, float *__restrict__ col, int n0,
                              int nb, conv_dims d, size_t ld_n, size_t ld_crs)
{
  const size_t total = (size_t)nb * d.crs * d.pq;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t pq = i % d.pq;
    const size_t crs = (i / d.pq) % d.crs;
    const size_t nl = i / (d.pq * d.crs);
    const int p = (int)(pq / d.q), q = (int)(pq % d.q);
    const int s = (int)(crs % d.s), r = (int)((crs / d.s) % d.r), c = (int)(crs / (d.s * d.r));
    const int hi = p * d.stride - d.pad + r, wi = q * d.stride - d.pad + s;
    float v = 0.0f;
    if (hi >= 0 && hi < d.h && wi >= 0 && wi < d.w)
      v = x[(((size_t)(n0 + nl) * d.c + c) * d.h + hi) * d.w + wi];
    col[nl * ld_n + crs * ld_crs + pq] = v;
  }
}

// dx[n, c, hi, wi] = sum over (r, s, p, q) with p stride - pad + r = hi and
// q stride - pad + s = wi of dcol(n, crs, pq): a gather, one thread per dx element, so
// every element is written exactly once and no atomics are needed.
__global__ void col2im_kernel(const float *__restrict__ dcol, float *__restrict__ dx, int n0,
                              int nb, conv_dims d, size_t ld_n, size_t ld_crs)
{
  const size_t total = (size_t)nb * d.c * d.h * d.w;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const int wi = (int)(i % d.w);
    const int hi = (int)((i / d.w) % d.h);
    const int c = (int)((i / ((size_t)d.w * d.h)) % d.c);
    const size_t nl = i / ((size_t)d.w * d.h * d.c);
    float acc = 0.0f;
    for (int r = 0; r < d.r; r++) {
      const int hp = hi + d.pad - r;  // = p stride
      if (hp < 0 || hp % d.stride != 0)
        continue;
      const int p = hp / d.stride;
      if (p >= d.p)
        continue;
      for (int s = 0; s < d.s; s++) {
        const int wp = wi + d.pad - s;
        if (wp < 0 || wp % d.stride != 0)
          continue;
        const int q = wp / d.stride;
        if (q >= d.q)
          continue;
        const size_t crs = ((size_t)c * d.r + r) * d.s + s;
        acc += dcol[nl * ld_n + crs * ld_crs + (size_t)p * d.q + q];
      }
    }
    dx[(size_t)(n0 + nl) * d.c * d.h * d.w + ((size_t)c * d.h + hi) * d.w + wi] = acc;
  }
}

// dyT[k, nl * PQ + pq] = dy[n0 + nl, k, pq]: the chunk of dy as row-major [K][nb PQ].
__global__ void nkpq_to_knpq_kernel(const float *__restrict__ dy, float *__restrict__ dyt,
                                    int n0, int nb, int k, size_t pq)
{
  const size_t total = (size_t)nb * k * pq;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t j = i % pq;
    const size_t kk = (i / pq) % (size_t)k;
    const size_t nl = i / (pq * (size_t)k);
    dyt[kk * ((size_t)nb * pq) + nl * pq + j] = dy[(size_t)n0 * k * pq + i];
  }
}

// ---- ops -------------------------------------------------------------------------------

int aal_cuda_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *xv,
                          const void *wv, void *yv, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  conv_dims d;
  int rc = check_shape(cs, &d, "conv forward", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(xv && wv && yv, "cuda conv forward: NULL buffer");
  const float *x = static_cast<const float *>(xv), *w = static_cast<const float *>(wv);
  float *y = static_cast<float *>(yv);
  const int nb_max = chunk_samples(d, d.crs * d.pq);
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, (size_t)nb_max * d.crs * d.pq * sizeof(float), &scratch,
                             err)) != AAL_OK)
    return rc;
  float *col = static_cast<float *>(scratch);
  const float one = 1.0f, zero = 0.0f;
  for (int n0 = 0; n0 < d.n; n0 += nb_max) {
    const int nb = d.n - n0 < nb_max ? d.n - n0 : nb_max;
    const size_t work = (size_t)nb * d.crs * d.pq;
    im2col_kernel<<<aal_cuda_blocks(ctx, work, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                    ctx->stream>>>(x, col, n0, nb, d, d.crs * d.pq, d.pq);
    LAUNCH_TRY();
    // Per sample, row-major:  y_n [K, PQ] = w [K, CRS] * col_n [CRS, PQ].
    // Column-major (cuBLAS):  y_n^T [PQ, K] = col_n^T [PQ, CRS] * w^T [CRS, K], where
    //   col_n stored [CRS][PQ] is col_n^T col-major with ld PQ  -> op N, lda = PQ
    //   w stored [K][CRS]      is w^T col-major with ld CRS      -> op N, ldb = CRS
    //   y_n stored [K][PQ]     is y_n^T col-major with ld PQ     -> ldc = PQ
    // Batched over the chunk: strides CRS PQ (col), 0 (w shared), K PQ (y).
    CUBLAS_TRY(cublasSgemmStridedBatched(
        ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d.pq, d.k, (int)d.crs, &one, col, (int)d.pq,
        (long long)(d.crs * d.pq), w, (int)d.crs, 0LL, &zero, y + (size_t)n0 * d.k * d.pq,
        (int)d.pq, (long long)((size_t)d.k * d.pq), nb));
  }
  OP_DONE(ctx);
}

int aal_cuda_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs,
                                const void *dyv, const void *wv, void *dxv, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  conv_dims d;
  int rc = check_shape(cs, &d, "conv backward data", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(dyv && wv && dxv, "cuda conv backward data: NULL buffer");
  const float *dy = static_cast<const float *>(dyv), *w = static_cast<const float *>(wv);
  float *dx = static_cast<float *>(dxv);
  const int nb_max = chunk_samples(d, d.crs * d.pq);
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, (size_t)nb_max * d.crs * d.pq * sizeof(float), &scratch,
                             err)) != AAL_OK)
    return rc;
  float *dcol = static_cast<float *>(scratch);
  const float one = 1.0f, zero = 0.0f;
  for (int n0 = 0; n0 < d.n; n0 += nb_max) {
    const int nb = d.n - n0 < nb_max ? d.n - n0 : nb_max;
    // Per sample, row-major:  dcol_n [CRS, PQ] = w^T [CRS, K] * dy_n [K, PQ].
    // Column-major (cuBLAS):  dcol_n^T [PQ, CRS] = dy_n^T [PQ, K] * w [K, CRS], where
    //   dy_n stored [K][PQ]  is dy_n^T col-major with ld PQ      -> op N, lda = PQ
    //   w stored [K][CRS]    is w^T col-major [CRS, K], ld CRS   -> op T, ldb = CRS
    //   dcol_n stored [CRS][PQ] is dcol_n^T col-major, ld PQ     -> ldc = PQ
    // Batched over the chunk: strides K PQ (dy), 0 (w), CRS PQ (dcol).
    CUBLAS_TRY(cublasSgemmStridedBatched(
        ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)d.pq, (int)d.crs, d.k, &one,
        dy + (size_t)n0 * d.k * d.pq, (int)d.pq, (long long)((size_t)d.k * d.pq), w,
        (int)d.crs, 0LL, &zero, dcol, (int)d.pq, (long long)(d.crs * d.pq), nb));
    const size_t work = (size_t)nb * d.c * d.h * d.w;
    col2im_kernel<<<aal_cuda_blocks(ctx, work, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                    ctx->stream>>>(dcol, dx, n0, nb, d, d.crs * d.pq, d.pq);
    LAUNCH_TRY();
  }
  OP_DONE(ctx);
}

int aal_cuda_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                  const void *xv, const void *dyv, void *dwv, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  conv_dims d;
  int rc = check_shape(cs, &d, "conv backward filter", err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(xv && dyv && dwv, "cuda conv backward filter: NULL buffer");
  const float *x = static_cast<const float *>(xv), *dy = static_cast<const float *>(dyv);
  float *dw = static_cast<float *>(dwv);
  // Scratch per sample: the wide col [CRS][nb PQ] and dy transposed to [K][nb PQ].
  const int nb_max = chunk_samples(d, (d.crs + (size_t)d.k) * d.pq);
  const size_t col_floats = (size_t)nb_max * d.crs * d.pq;
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, (col_floats + (size_t)nb_max * d.k * d.pq) * sizeof(float),
                             &scratch, err)) != AAL_OK)
    return rc;
  float *col = static_cast<float *>(scratch), *dyt = col + col_floats;
  const float one = 1.0f, zero = 0.0f;
  for (int n0 = 0; n0 < d.n; n0 += nb_max) {
    const int nb = d.n - n0 < nb_max ? d.n - n0 : nb_max;
    const size_t L = (size_t)nb * d.pq;  // the reduction length of this chunk
    size_t work = (size_t)nb * d.crs * d.pq;
    im2col_kernel<<<aal_cuda_blocks(ctx, work, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                    ctx->stream>>>(x, col, n0, nb, d, d.pq, L);
    LAUNCH_TRY();
    work = (size_t)nb * d.k * d.pq;
    nkpq_to_knpq_kernel<<<aal_cuda_blocks(ctx, work, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                          ctx->stream>>>(dy, dyt, n0, nb, d.k, d.pq);
    LAUNCH_TRY();
    // Row-major:  dw [K, CRS] (+)= dyT [K, L] * colw^T [L, CRS],  L = nb PQ.
    // Column-major (cuBLAS):  dw^T [CRS, K] (+)= colw^T... written as op(A) op(B) with
    //   A = colw stored [CRS][L]  = col-major [L, CRS], ld L  -> op T gives [CRS, L]
    //   B = dyT stored [K][L]     = col-major [L, K],   ld L  -> op N gives [L, K]
    //   C = dw stored [K][CRS]    = col-major [CRS, K], ld CRS
    // beta = 0 for the first chunk (dw is overwritten, never read), 1 after.
    CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)d.crs, d.k, (int)L, &one,
                           col, (int)L, dyt, (int)L, n0 == 0 ? &zero : &one, dw, (int)d.crs));
  }
  OP_DONE(ctx);
}
