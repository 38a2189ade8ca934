// Kernel benchmark of the CUDA backend at the ResNet-18 / Tiny ImageNet shapes (SPEC 6):
// every op of the table, timed with CUDA events on the backend's stream, against two
// rates measured first on the same device (device-to-device copy bandwidth, a large
// square cublasSgemm).  See kernels/cuda/cuda.h for what the columns mean.
//
// Built with -DAAL_CUDA_BENCH_MAIN it is also a stand-alone program (used by
// experiments/gpu-check.sh when the full build is not possible):
//   nvcc -DAAL_CUDA_BENCH_MAIN ... kernels/cuda/*.cu sim/core/error.c -lcublas
//   ./aal-cuda-bench [batch]
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cuda_internal.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

const int REPS = 10;

// Uniform in [-1, 1) from a hash of (seed, i): reproducible, no host traffic.
__global__ void fill_kernel(float *buf, size_t n, uint32_t seed)
{
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    buf[i] = (float)((double)(z >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
  }
}

struct bench {
  aal_backend be;
  aal_cuda_ctx *ctx;
  FILE *out;
  aal_error *err;
  cudaEvent_t start, stop;
  double copy_gbs;      // measured device-to-device bandwidth, GB/s (read + write)
  double gemm_tflops;   // measured large SGEMM rate
  std::vector<void *> bufs;
};

int fill(bench &b, void *buf, size_t n, uint32_t seed)
{
  aal_error *err = b.err;
  fill_kernel<<<aal_cuda_blocks(b.ctx, n, AAL_CUDA_THREADS), AAL_CUDA_THREADS, 0,
                b.ctx->stream>>>(static_cast<float *>(buf), n, seed);
  LAUNCH_TRY();
  return AAL_OK;
}

int alloc(bench &b, size_t n, void **buf, uint32_t seed)
{
  int rc = b.be.alloc(&b.be, n, buf, b.err);
  if (rc != AAL_OK)
    return rc;
  b.bufs.push_back(*buf);
  return fill(b, *buf, n, seed);
}

// Mean milliseconds per call of f over REPS calls, after one warm-up call.
template <class F> int time_ms(bench &b, F f, double *ms)
{
  aal_error *err = b.err;
  int rc = f();
  if (rc != AAL_OK)
    return rc;
  CUDA_TRY(cudaEventRecord(b.start, b.ctx->stream));
  for (int i = 0; i < REPS; i++)
    if ((rc = f()) != AAL_OK)
      return rc;
  CUDA_TRY(cudaEventRecord(b.stop, b.ctx->stream));
  CUDA_TRY(cudaEventSynchronize(b.stop));
  float total = 0.0f;
  CUDA_TRY(cudaEventElapsedTime(&total, b.start, b.stop));
  *ms = (double)total / REPS;
  return AAL_OK;
}

// One table row: bytes > 0 for a memory-bound op, flops > 0 for a GEMM-bound one.
template <class F>
int row(bench &b, const char *op, const char *shape, double bytes, double flops, F f)
{
  double ms = 0.0;
  const int rc = time_ms(b, f, &ms);
  if (rc != AAL_OK)
    return rc;
  if (flops > 0) {
    const double tf = flops / (ms * 1e-3) / 1e12;
    fprintf(b.out, "%-24s %-30s %10.4f %10s %10.2f %7.1f%% of sgemm\n", op, shape, ms, "-", tf,
            100.0 * tf / b.gemm_tflops);
  } else {
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    fprintf(b.out, "%-24s %-30s %10.4f %10.1f %10s %7.1f%% of copy\n", op, shape, ms, gbs, "-",
            100.0 * gbs / b.copy_gbs);
  }
  fflush(b.out);
  return AAL_OK;
}

int measure_roofs(bench &b)
{
  aal_error *err = b.err;
  // Copy: 2^28 floats (1 GiB) each way.
  const size_t n = (size_t)1 << 28;
  void *src = nullptr, *dst = nullptr;
  int rc;
  if ((rc = alloc(b, n, &src, 1)) != AAL_OK || (rc = alloc(b, n, &dst, 2)) != AAL_OK)
    return rc;
  double ms = 0.0;
  rc = time_ms(
      b,
      [&]() {
        return CUDA_STATUS(cudaMemcpyAsync(dst, src, n * sizeof(float),
                                           cudaMemcpyDeviceToDevice, b.ctx->stream));
      },
      &ms);
  if (rc != AAL_OK)
    return rc;
  b.copy_gbs = 2.0 * n * sizeof(float) / (ms * 1e-3) / 1e9;
  // SGEMM: 8192^3, reusing the copy buffers (3 x 2^26 floats fit in 2 x 2^28).
  const int m = 8192;
  const float one = 1.0f, zero = 0.0f;
  float *a = static_cast<float *>(src), *bm = a + (size_t)m * m;
  float *c = static_cast<float *>(dst);
  rc = time_ms(
      b,
      [&]() {
        return CUBLAS_STATUS(cublasSgemm(b.ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, &one,
                                         a, m, bm, m, &zero, c, m));
      },
      &ms);
  if (rc != AAL_OK)
    return rc;
  b.gemm_tflops = 2.0 * m * (double)m * m / (ms * 1e-3) / 1e12;
  fprintf(b.out, "# device-to-device copy: %.1f GB/s (read + write, 1 GiB)\n", b.copy_gbs);
  fprintf(b.out, "# cublasSgemm %dx%dx%d (FP32, no TF32): %.2f TFLOP/s\n", m, m, m,
          b.gemm_tflops);
  b.be.release(&b.be, src);
  b.be.release(&b.be, dst);
  b.bufs.clear();
  return AAL_OK;
}

struct conv_case {
  const char *name;
  int c, h, k, r, stride, pad;
};

int run(bench &b, int batch)
{
  int rc = measure_roofs(b);
  if (rc != AAL_OK)
    return rc;
  fprintf(b.out, "# batch %d, %d calls per op after one warm-up; GB/s counts each input "
                 "read once and each output written once\n",
          batch, REPS);
  fprintf(b.out, "%-24s %-30s %10s %10s %10s %s\n", "op", "shape", "ms", "GB/s", "TFLOP/s",
          "fraction");
  const size_t B = (size_t)batch;
  const size_t act = B * 64 * 32 * 32;  // the largest activation (stem output)
  const size_t params = 11300000;       // ResNet-18 with a 200-way head, about
  const size_t big = act > params ? act : params;
  const size_t small = B > 1024 ? B : 1024;  // per-channel and per-sample vectors
  void *x, *y, *dy, *dx, *w, *dw, *bits, *vec[8];
  if ((rc = alloc(b, big, &x, 11)) || (rc = alloc(b, big, &y, 12)) ||
      (rc = alloc(b, big, &dy, 13)) || (rc = alloc(b, big, &dx, 14)) ||
      (rc = alloc(b, (size_t)512 * 512 * 9, &w, 15)) ||
      (rc = alloc(b, (size_t)512 * 512 * 9, &dw, 16)))
    return rc;
  for (int i = 0; i < 8; i++)
    if ((rc = alloc(b, small, &vec[i], 20 + i)) != AAL_OK)
      return rc;
  if ((rc = b.be.alloc_bits(&b.be, act, &bits, b.err)) != AAL_OK)
    return rc;
  b.bufs.push_back(bits);
  const aal_backend *be = &b.be;
  aal_error *err = b.err;
  char shape[64];

  // ---- convolutions (Tiny ImageNet 64x64 input; SPEC 6)
  static const conv_case convs[] = {
      {"stem", 3, 64, 64, 3, 2, 1},          {"layer1 3x3", 64, 32, 64, 3, 1, 1},
      {"layer2 3x3/2", 64, 32, 128, 3, 2, 1}, {"layer2 3x3", 128, 16, 128, 3, 1, 1},
      {"layer2 1x1/2", 64, 32, 128, 1, 2, 0}, {"layer3 3x3/2", 128, 16, 256, 3, 2, 1},
      {"layer3 3x3", 256, 8, 256, 3, 1, 1},   {"layer3 1x1/2", 128, 16, 256, 1, 2, 0},
      {"layer4 3x3/2", 256, 8, 512, 3, 2, 1}, {"layer4 3x3", 512, 4, 512, 3, 1, 1},
      {"layer4 1x1/2", 256, 8, 512, 1, 2, 0},
  };
  for (const conv_case &cc : convs) {
    aal_conv_shape cs = {batch, cc.c, cc.h, cc.h, cc.k, cc.r, cc.r, cc.stride, cc.pad, 0, 0};
    cs.p = (cs.h + 2 * cs.pad - cs.r) / cs.stride + 1;
    cs.q = (cs.w + 2 * cs.pad - cs.s) / cs.stride + 1;
    const double flops = 2.0 * B * cs.k * cs.c * cs.r * cs.s * cs.p * cs.q;
    snprintf(shape, sizeof shape, "%dx%dx%d -> %dx%dx%d", cs.c, cs.h, cs.w, cs.k, cs.p, cs.q);
    char name[64];
    snprintf(name, sizeof name, "conv fwd %s", cc.name);
    if ((rc = row(b, name, shape, 0, flops,
                  [&]() { return be->conv_forward(be, &cs, x, w, y, err); })))
      return rc;
    snprintf(name, sizeof name, "conv bwd-data %s", cc.name);
    if ((rc = row(b, name, shape, 0, flops,
                  [&]() { return be->conv_backward_data(be, &cs, dy, w, dx, err); })))
      return rc;
    snprintf(name, sizeof name, "conv bwd-filter %s", cc.name);
    if ((rc = row(b, name, shape, 0, flops,
                  [&]() { return be->conv_backward_filter(be, &cs, x, dy, dw, err); })))
      return rc;
  }

  // ---- batch norm at the four stage widths
  static const int bn_c[] = {64, 128, 256, 512}, bn_hw[] = {1024, 256, 64, 16};
  for (int i = 0; i < 4; i++) {
    const int c = bn_c[i], hw = bn_hw[i];
    const double elems = (double)B * c * hw;
    snprintf(shape, sizeof shape, "%zu x %d x %d", B, c, hw);
    if ((rc = row(b, "bn forward", shape, 8.0 * elems, 0, [&]() {
           return be->bn_forward(be, batch, c, hw, x, vec[0], vec[1], 1e-5, y, vec[2], vec[3],
                                 vec[7], err);
         })))
      return rc;
    if ((rc = row(b, "bn backward", shape, 12.0 * elems, 0, [&]() {
           return be->bn_backward(be, batch, c, hw, dy, x, vec[0], vec[2], vec[3], dx, vec[4],
                                  vec[5], err);
         })))
      return rc;
    // eval: running statistics = the batch's mean and (positive) invstd from above
    if ((rc = row(b, "bn forward (eval)", shape, 8.0 * elems, 0, [&]() {
           return be->bn_forward_eval(be, batch, c, hw, x, vec[0], vec[1], vec[2], vec[3],
                                      1e-5, y, err);
         })))
      return rc;
    // fused with the ReLU: the same traffic plus the mask (1 bit per element)
    if ((rc = row(b, "bn+relu forward", shape, 8.0 * elems + elems / 8, 0, [&]() {
           return be->bn_relu_forward(be, batch, c, hw, x, vec[0], vec[1], 1e-5, y, bits,
                                      vec[2], vec[3], vec[7], err);
         })))
      return rc;
    if ((rc = row(b, "bn+relu backward", shape, 12.0 * elems + elems / 8, 0, [&]() {
           return be->bn_relu_backward(be, batch, c, hw, dy, bits, x, vec[0], vec[2], vec[3],
                                       dx, vec[4], vec[5], err);
         })))
      return rc;
  }

  // ---- elementwise at the largest activation
  snprintf(shape, sizeof shape, "%zu floats", act);
  const double a = (double)act;
  if ((rc = row(b, "relu forward", shape, 8.0 * a + a / 8, 0,
                [&]() { return be->relu_forward(be, act, x, y, bits, err); })) ||
      (rc = row(b, "relu backward", shape, 8.0 * a + a / 8, 0,
                [&]() { return be->relu_backward(be, act, dy, bits, dx, err); })) ||
      (rc = row(b, "add", shape, 12.0 * a, 0,
                [&]() { return be->add(be, act, x, dy, y, err); })) ||
      (rc = row(b, "sign pack", shape, 4.0 * a + a / 8, 0,
                [&]() { return be->sign_pack(be, act, x, bits, err); })) ||
      (rc = row(b, "sign unpack", shape, 4.0 * a + a / 8, 0,
                [&]() { return be->sign_unpack(be, act, bits, 0.01, y, err); })) ||
      (rc = row(b, "asa input (h, bits)", shape, 8.0 * a + a / 8, 0,
                [&]() { return be->asa_input(be, act, x, 0.01, y, bits, err); })) ||
      (rc = row(b, "scale", shape, 8.0 * a, 0,
                [&]() { return be->scale(be, act, x, 100.0, y, err); })))
    return rc;
  snprintf(shape, sizeof shape, "%zu x %d", B, 64 * 32 * 32);
  if ((rc = row(b, "li reduce", shape, 8.0 * a, 0, [&]() {
         return be->li_reduce(be, batch, (size_t)64 * 32 * 32, x, y, vec[6], err);
       })))
    return rc;

  // ---- max pooling at the stem output, k 3 stride 2 pad 1 (the ImageNet stem's):
  // forward reads x and writes y (a quarter of x); backward reads x, dy, writes dx
  snprintf(shape, sizeof shape, "%zu x 64 x 32x32 k3 s2 p1", B);
  if ((rc = row(b, "maxpool forward", shape, 5.0 * a, 0, [&]() {
         return be->maxpool_forward(be, batch, 64, 32, 32, 3, 2, 1, x, y, err);
       })) ||
      (rc = row(b, "maxpool backward", shape, 9.0 * a, 0, [&]() {
         return be->maxpool_backward(be, batch, 64, 32, 32, 3, 2, 1, dy, x, dx, err);
       })))
    return rc;

  // ---- head: avgpool 512 x 4x4, linear 512 -> 200, cross-entropy over 200 classes
  const int rows = batch * 512, classes = 200;
  snprintf(shape, sizeof shape, "%d x 16", rows);
  if ((rc = row(b, "avgpool forward", shape, 4.0 * rows * 17, 0,
                [&]() { return be->avgpool_forward(be, rows, 16, x, y, err); })) ||
      (rc = row(b, "avgpool backward", shape, 4.0 * rows * 17, 0,
                [&]() { return be->avgpool_backward(be, rows, 16, dy, dx, err); })))
    return rc;
  snprintf(shape, sizeof shape, "%zu x 512 -> 200", B);
  const double lin_flops = 2.0 * B * 512 * classes;
  if ((rc = row(b, "linear forward", shape, 0, lin_flops, [&]() {
         return be->linear_forward(be, batch, 512, classes, x, w, vec[7], y, err);
       })) ||
      (rc = row(b, "linear backward", shape, 0, 2 * lin_flops, [&]() {
         return be->linear_backward(be, batch, 512, classes, dy, x, w, dx, dw, vec[7], err);
       })))
    return rc;
  std::vector<int> labels(B);
  for (size_t i = 0; i < B; i++)
    labels[i] = (int)((i * 7919u) % (unsigned)classes);
  snprintf(shape, sizeof shape, "%zu x %d (loss to host)", B, classes);
  double loss = 0.0;
  if ((rc = row(b, "xent forward", shape, 8.0 * B * classes, 0, [&]() {
         return be->xent_forward(be, batch, classes, x, labels.data(), &loss, y, err);
       })) ||
      (rc = row(b, "xent backward", shape, 8.0 * B * classes, 0, [&]() {
         return be->xent_backward(be, batch, classes, y, labels.data(), dx, err);
       })))
    return rc;

  // ---- SGD over all of ResNet-18's parameters
  snprintf(shape, sizeof shape, "%zu parameters", params);
  int first = 1;
  if ((rc = row(b, "sgd update", shape, 20.0 * params, 0, [&]() {
         const int r2 = be->sgd_update(be, params, x, dy, y, 1e-3, 0.9, 1e-4, first, err);
         first = 0;
         return r2;
       })))
    return rc;
  CUDA_TRY(cudaStreamSynchronize(b.ctx->stream));
  return AAL_OK;
}

}  // namespace

extern "C" int aal_cuda_bench_kernels(FILE *out, int batch, aal_error *err)
{
  if (out == nullptr || batch <= 0)
    return aal_fail(err, AAL_EINVAL, "cuda bench: need an output stream and batch > 0 (got %d)",
                    batch);
  bench b;
  b.out = out;
  b.err = err;
  b.copy_gbs = b.gemm_tflops = 0.0;
  int rc = aal_backend_cuda(&b.be, err);
  if (rc != AAL_OK)
    return rc;
  b.ctx = aal_cuda_ctx_of(&b.be);
  rc = CUDA_STATUS(cudaEventCreate(&b.start));
  if (rc == AAL_OK) {
    rc = CUDA_STATUS(cudaEventCreate(&b.stop));
    if (rc == AAL_OK) {
      int dev = 0;
      cudaDeviceProp prop;
      rc = CUDA_STATUS(cudaGetDevice(&dev));
      if (rc == AAL_OK)
        rc = CUDA_STATUS(cudaGetDeviceProperties(&prop, dev));
      if (rc == AAL_OK) {
        fprintf(out, "# aal cuda kernel benchmark: %s, sm_%d%d, %d SMs, %.1f GiB\n", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount,
                (double)prop.totalGlobalMem / (1u << 30));
        rc = run(b, batch);
      }
      cudaEventDestroy(b.stop);
    }
    cudaEventDestroy(b.start);
  }
  for (void *p : b.bufs)
    b.be.release(&b.be, p);
  b.be.destroy(&b.be);
  return rc;
}

#ifdef AAL_CUDA_BENCH_MAIN
int main(int argc, char **argv)
{
  const int batch = argc > 1 ? atoi(argv[1]) : 256;
  aal_error e = {0, ""};
  const int rc = aal_cuda_bench_kernels(stdout, batch, &e);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal-cuda-bench: %s\n", e.msg);
    return strncmp(e.msg, "no CUDA device", 14) == 0 ? 77 : 1;  // 77: skipped
  }
  return 0;
}
#endif
