// Multi-head scaled dot-product attention on the device (sim/layers/attention.c; the same
// composition as kernels/cpu/attention.c): cuBLAS GEMMs on strided head slices, one per
// (b, head), and softmax.cu's row kernels in place.
//   q, k, v, o, dout, dq, dk, dv [B, T, E], E = H dh;  p [B, H, T, T].
// cuBLAS is column-major: a row-major slice X [T, dh] with row stride E is, to cuBLAS,
// X^T [dh, T] with ld E; a row-major P [T, T] is P^T with ld T.  So
//   S = Q K^T      is  S^T  = K Q^T      : (op T on K^T) x (op N on Q^T), m = n = T, k = dh
//   O = P V        is  O^T  = V^T P^T    : (N on V^T) x (N on P^T),     m = dh, n = k = T
//   dP = dO V^T    is  dP^T = V dO^T     : (T on V^T) x (N on dO^T)
//   dQ = dS K      is  dQ^T = K^T dS^T   : (N on K^T) x (N on dS^T)
//   dK = dS^T Q    is  dK^T = Q^T dS     : (N on Q^T) x (T on dS^T)
//   dV = P^T dO    is  dV^T = dO^T P     : (N on dO^T) x (T on P^T)
// Backward's dP (then dS, in place) lives in the context's scratch.
#include "kernels/cuda/cuda_internal.h"

#include <cmath>

static int att_args(const char *op, int b, int t, int heads, int dh, aal_error *err)
{
  REQUIRE(b > 0 && t > 0 && heads > 0 && dh > 0, "cuda %s: bad sizes b=%d t=%d heads=%d dh=%d",
          op, b, t, heads, dh);
  REQUIRE((long long)heads * dh <= 0x7fffffff, "cuda %s: heads x dh exceeds the int range", op);
  return AAL_OK;
}

int aal_cuda_attention_forward(const aal_backend *be, int b, int t, int heads, int dh,
                               const void *qv, const void *kv, const void *vv, void *pv,
                               void *ov, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = att_args("attention_forward", b, t, heads, dh, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(qv && kv && vv && pv && ov, "cuda attention_forward: NULL buffer");
  const int e = heads * dh;
  const size_t tt = (size_t)t * t, te = (size_t)t * e;
  const float scale = (float)(1.0 / std::sqrt((double)dh)), one = 1.0f, zero = 0.0f;
  const float *q = static_cast<const float *>(qv), *k = static_cast<const float *>(kv);
  const float *v = static_cast<const float *>(vv);
  float *p = static_cast<float *>(pv), *o = static_cast<float *>(ov);
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) {
      const size_t off = bb * te + h * (size_t)dh, po = (bb * heads + h) * tt;
      CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, t, t, dh, &scale, k + off, e,
                             q + off, e, &zero, p + po, t));
    }
  if ((rc = aal_cuda_softmax_rows(ctx, (size_t)b * heads * t, t, p, p, err)) != AAL_OK)
    return rc;
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) {
      const size_t off = bb * te + h * (size_t)dh, po = (bb * heads + h) * tt;
      CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, dh, t, t, &one, v + off, e,
                             p + po, t, &zero, o + off, e));
    }
  OP_DONE(ctx);
}

int aal_cuda_attention_backward(const aal_backend *be, int b, int t, int heads, int dh,
                                const void *doutv, const void *qv, const void *kv,
                                const void *vv, const void *pv, void *dqv, void *dkv, void *dvv,
                                aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  int rc = att_args("attention_backward", b, t, heads, dh, err);
  if (rc != AAL_OK)
    return rc;
  REQUIRE(doutv && qv && kv && vv && pv && dqv && dkv && dvv,
          "cuda attention_backward: NULL buffer");
  const int e = heads * dh;
  const size_t tt = (size_t)t * t, te = (size_t)t * e, rows = (size_t)b * heads * t;
  void *scratch;
  if ((rc = aal_cuda_scratch(ctx, rows * (size_t)t * sizeof(float), &scratch, err)) != AAL_OK)
    return rc;
  float *ds = static_cast<float *>(scratch);
  const float scale = (float)(1.0 / std::sqrt((double)dh)), one = 1.0f, zero = 0.0f;
  const float *dout = static_cast<const float *>(doutv), *q = static_cast<const float *>(qv);
  const float *k = static_cast<const float *>(kv), *v = static_cast<const float *>(vv);
  const float *p = static_cast<const float *>(pv);
  float *dq = static_cast<float *>(dqv), *dk = static_cast<float *>(dkv);
  float *dv = static_cast<float *>(dvv);
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) {
      const size_t off = bb * te + h * (size_t)dh, po = (bb * heads + h) * tt;
      CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, t, t, dh, &one, v + off, e,
                             dout + off, e, &zero, ds + po, t));
    }
  if ((rc = aal_cuda_softmax_backward_rows(ctx, rows, t, ds, p, ds, err)) != AAL_OK)
    return rc;
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) {
      const size_t off = bb * te + h * (size_t)dh, po = (bb * heads + h) * tt;
      CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, dh, t, t, &scale, k + off, e,
                             ds + po, t, &zero, dq + off, e));
      CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, dh, t, t, &scale, q + off, e,
                             ds + po, t, &zero, dk + off, e));
      CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, dh, t, t, &one, dout + off, e,
                             p + po, t, &zero, dv + off, e));
    }
  OP_DONE(ctx);
}
