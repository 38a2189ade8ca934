// Device discovery and a first checked kernel; every CUDA call goes through
// CUDA_CHECK, which reports the call, file and line.
#include "kernels/cuda/cuda.h"

#include <cstdio>

#include <cuda_runtime.h>

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    cudaError_t status_ = (call);                                                         \
    if (status_ != cudaSuccess) {                                                         \
      snprintf(msg, msg_len, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                  \
               cudaGetErrorString(status_));                                              \
      goto fail;                                                                          \
    }                                                                                     \
  } while (0)

extern "C" int aal_cuda_device_count(void)
{
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return count;
}

extern "C" int aal_cuda_device_info(char *msg, size_t msg_len)
{
  int count = 0;
  size_t used = 0;
  if (msg_len > 0)
    msg[0] = '\0';
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    snprintf(msg, msg_len, "no CUDA device (or no driver)");
    return 0;
  }
  for (int d = 0; d < count && used < msg_len; d++) {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
    used += (size_t)snprintf(msg + used, msg_len - used, "%sdevice %d: %s, sm_%d%d, %.1f GiB",
                             d ? "\n" : "", d, prop.name, prop.major, prop.minor,
                             (double)prop.totalGlobalMem / (1u << 30));
  }
  return count;
fail:
  return -1;
}

__global__ void saxpy_kernel(size_t n, float a, const float *x, float *y)
{
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = a * x[i] + y[i];
}

extern "C" int aal_cuda_saxpy(size_t n, float a, const float *x, float *y, char *msg,
                              size_t msg_len)
{
  float *dx = nullptr, *dy = nullptr;
  const unsigned threads = 256;
  const unsigned blocks = (unsigned)((n + threads - 1) / threads);
  CUDA_CHECK(cudaMalloc(&dx, n * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&dy, n * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(dy, y, n * sizeof(float), cudaMemcpyHostToDevice));
  saxpy_kernel<<<blocks, threads>>>(n, a, dx, dy);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(y, dy, n * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(dx));
  CUDA_CHECK(cudaFree(dy));
  return 0;
fail:
  cudaFree(dx);
  cudaFree(dy);
  return -1;
}
