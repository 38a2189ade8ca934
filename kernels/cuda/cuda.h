/* The CUDA side of AAL (built when configure finds nvcc).  Host-callable C API. */
#ifndef AAL_CUDA_H
#define AAL_CUDA_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "sim/core/error.h" /* a C header: inside extern "C" so that aal_fail keeps C linkage */

/* Number of usable CUDA devices; 0 when there is no device or no driver (never fails). */
int aal_cuda_device_count(void);

/* One line per device (name, compute capability, memory) into buf; returns the device
 * count, or -1 when a CUDA call failed (the message, with file and line, in buf). */
int aal_cuda_device_info(char *buf, size_t len);

/* Runs y[i] = a*x[i] + y[i] on the device for n floats (host arrays) and copies y back.
 * Returns 0, or -1 with the failing CUDA call, file and line in msg. */
int aal_cuda_saxpy(size_t n, float a, const float *x, float *y, char *msg, size_t msg_len);

/* Times every op of the CUDA backend (kernels/cuda/bench.cu) at the ResNet-18 /
 * Tiny ImageNet shapes for the given batch (256 is the reference figure) with CUDA
 * events, and writes a table to out: milliseconds per call, and GB/s (memory-bound ops,
 * counting the minimal traffic: each input read once, each output written once) or
 * TFLOP/s (GEMM-bound ops), each also as a percentage of two rates measured first on the
 * same device: a device-to-device copy (read + write bytes / time) and a large square
 * cublasSgemm.  Inputs are random (fixed seed).  Returns AAL_OK or the failing call in
 * err (AAL_EINVAL with "no CUDA device" when there is none). */
int aal_cuda_bench_kernels(FILE *out, int batch, aal_error *err);

#ifdef __cplusplus
}
#endif

#endif
