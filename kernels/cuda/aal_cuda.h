/* The CUDA side of AAL (built when configure finds nvcc).  Host-callable C API. */
#ifndef AAL_CUDA_H
#define AAL_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is no device or no driver (never fails). */
int aal_cuda_device_count(void);

/* One line per device (name, compute capability, memory) into buf; returns the device
 * count, or -1 when a CUDA call failed (the message, with file and line, in buf). */
int aal_cuda_device_info(char *buf, size_t len);

/* Runs y[i] = a*x[i] + y[i] on the device for n floats (host arrays) and copies y back.
 * Returns 0, or -1 with the failing CUDA call, file and line in msg. */
int aal_cuda_saxpy(size_t n, float a, const float *x, float *y, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif
