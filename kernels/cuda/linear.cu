// Linear layer on the device with cuBLAS.
//   x [N, IN], w [OUT, IN], b [OUT], y [N, OUT] (row-major);  y = x w^T + b.
//   backward: dx [N, IN] = dy w;  dw [OUT, IN] = dy^T x;  db [OUT] = sum_n dy.
// cuBLAS is column-major: a row-major M [a, b] is, to cuBLAS, M^T [b, a] with ld b.
#include "kernels/cuda/cuda_internal.h"

// y[i, j] = b[j]: the bias, to which the GEMM then adds x w^T (beta = 1).
__global__ void bias_rows_kernel(int n, int out, const float *__restrict__ b,
                                 float *__restrict__ y)
{
  const size_t total = (size_t)n * out;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x)
    y[i] = b[i % (size_t)out];
}

// db[j] = sum_i dy[i, j], in double, one thread per column (coalesced across j).
__global__ void column_sum_kernel(int n, int out, const float *__restrict__ dy,
                                  float *__restrict__ db)
{
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < out; j += gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int i = 0; i < n; i++)
      acc += (double)dy[(size_t)i * out + j];
    db[j] = (float)acc;
  }
}

int aal_cuda_linear_forward(const aal_backend *be, int n, int in, int out, const void *xv,
                            const void *wv, const void *bv, void *yv, aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(n > 0 && in > 0 && out > 0, "cuda linear forward: bad sizes n=%d in=%d out=%d", n,
          in, out);
  REQUIRE(xv && wv && bv && yv, "cuda linear forward: NULL buffer");
  float *y = static_cast<float *>(yv);
  bias_rows_kernel<<<aal_cuda_blocks(ctx, (size_t)n * out, AAL_CUDA_THREADS), AAL_CUDA_THREADS,
                     0, ctx->stream>>>(n, out, static_cast<const float *>(bv), y);
  LAUNCH_TRY();
  const float one = 1.0f;
  // Row-major:     y [N, OUT] += x [N, IN] * w^T [IN, OUT].
  // Column-major:  y^T [OUT, N] += w [OUT, IN] * x^T [IN, N], where
  //   w stored [OUT][IN] = col-major [IN, OUT], ld IN  -> op T gives [OUT, IN]
  //   x stored [N][IN]   = col-major [IN, N],   ld IN  -> op N
  //   y stored [N][OUT]  = col-major [OUT, N],  ld OUT
  CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one,
                         static_cast<const float *>(wv), in, static_cast<const float *>(xv), in,
                         &one, y, out));
  OP_DONE(ctx);
}

int aal_cuda_linear_backward(const aal_backend *be, int n, int in, int out, const void *dyv,
                             const void *xv, const void *wv, void *dxv, void *dwv, void *dbv,
                             aal_error *err)
{
  aal_cuda_ctx *ctx = aal_cuda_ctx_of(be);
  REQUIRE(n > 0 && in > 0 && out > 0, "cuda linear backward: bad sizes n=%d in=%d out=%d", n,
          in, out);
  REQUIRE(dyv && xv && wv && dwv && dbv, "cuda linear backward: NULL buffer");
  const float *dy = static_cast<const float *>(dyv), *x = static_cast<const float *>(xv);
  const float *w = static_cast<const float *>(wv);
  const float one = 1.0f, zero = 0.0f;
  if (dxv != nullptr) {
    // Row-major:     dx [N, IN] = dy [N, OUT] * w [OUT, IN].
    // Column-major:  dx^T [IN, N] = w^T [IN, OUT] * dy^T [OUT, N], where
    //   w stored [OUT][IN]  = col-major [IN, OUT], ld IN   -> op N
    //   dy stored [N][OUT]  = col-major [OUT, N],  ld OUT  -> op N
    //   dx stored [N][IN]   = col-major [IN, N],   ld IN
    CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out,
                           &zero, static_cast<float *>(dxv), in));
  }
  // Row-major:     dw [OUT, IN] = dy^T [OUT, N] * x [N, IN].
  // Column-major:  dw^T [IN, OUT] = x^T [IN, N] * dy [N, OUT], where
  //   x stored [N][IN]    = col-major [IN, N],   ld IN   -> op N
  //   dy stored [N][OUT]  = col-major [OUT, N],  ld OUT  -> op T gives [N, OUT]
  //   dw stored [OUT][IN] = col-major [IN, OUT], ld IN
  CUBLAS_TRY(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out,
                         &zero, static_cast<float *>(dwv), in));
  column_sum_kernel<<<aal_cuda_blocks(ctx, (size_t)out, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                      ctx->stream>>>(n, out, dy, static_cast<float *>(dbv));
  LAUNCH_TRY();
  OP_DONE(ctx);
}
