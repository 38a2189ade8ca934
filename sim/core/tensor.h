/* Dense tensors for the double-precision reference.
 *
 * Layout: row-major; 4-d activations are NCHW (batch, channel, height, width) and
 * conv weights OIHW (out channel, in channel, kernel height, kernel width).
 * A tensor is either F64 (one double per element) or BITS (one bit per element), which
 * is how ReLU masks and ASA signs are stored.
 * Packed bits are ceil(n/32) uint32 words, element i in bit i%32 of word i/32: one
 * layout for sim's BITS tensors and every backend's bit buffers, so that they cross
 * without conversion and compare bit for bit.
 * Tensors are reference-counted so that the tape can share one saved tensor between
 * several layers and count its bytes once. */
#ifndef AAL_TENSOR_H
#define AAL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "sim/core/error.h"

#define AAL_MAX_NDIM 4

enum aal_dtype { AAL_F64 = 0, AAL_BITS = 1 };

struct aal_tensor;

/* A copy of a tensor's elements held by someone else: the backend adapter
 * (sim/ops/resident.c) keeps activations, gradients and parameters in backend buffers
 * between ops instead of converting them through host doubles on every op.  While
 * host_stale is set the host storage (data / bits) is NOT current: read it only after
 * aal_tensor_sync_host.  Before writing the host storage of a tensor that may have a
 * mirror, call aal_tensor_detach (else the mirror, now out of date, would be used by the
 * next op). */
typedef struct aal_tensor_mirror {
  const void *owner;  /* the holder (the adapter's buffer cache) */
  void *buf;          /* the holder's buffer */
  int host_stale;     /* buf is newer than the host storage */
  /* copies buf into the host storage and clears host_stale */
  int (*pull)(struct aal_tensor *t, aal_error *err);
  /* gives buf back and sets t->mirror to NULL; the host storage is not updated */
  void (*drop)(struct aal_tensor *t);
} aal_tensor_mirror;

typedef struct aal_tensor {
  int ndim;
  size_t shape[AAL_MAX_NDIM];
  size_t size;          /* product of the shape */
  enum aal_dtype dtype;
  double *data;         /* F64: size doubles, else NULL (also: deferred, see below) */
  uint32_t *bits;       /* BITS: ceil(size/32) words, else NULL (also: deferred) */
  int refcount;
  aal_tensor_mirror *mirror;  /* NULL unless a backend holds a copy (see above) */
} aal_tensor;

/* New zero-filled tensor. Sizes are signed so that a negative size is reported,
 * not wrapped; each must be >= 1 and the element count must not overflow.
 * Returns NULL (and fills err) on failure. */
aal_tensor *aal_tensor_new(int ndim, const long *shape, aal_error *err);
aal_tensor *aal_tensor_new4(long n, long c, long h, long w, aal_error *err);
aal_tensor *aal_tensor_new2(long rows, long cols, aal_error *err);
aal_tensor *aal_tensor_new1(long n, aal_error *err);
aal_tensor *aal_tensor_new_bits(int ndim, const long *shape, aal_error *err);
/* Same shape as t, dtype F64, zero-filled. */
aal_tensor *aal_tensor_new_like(const aal_tensor *t, aal_error *err);
/* A host-only copy (a stale host is brought up to date first). */
aal_tensor *aal_tensor_copy(const aal_tensor *t, aal_error *err);

aal_tensor *aal_tensor_retain(aal_tensor *t);
/* Drops one reference; frees at zero. NULL is allowed. */
void aal_tensor_release(aal_tensor *t);

/* Bytes of storage at the tensor's own precision (8 per F64 element, packed bits
 * rounded up to whole bytes) and at float32 (4 per element; bits unchanged). */
size_t aal_tensor_bytes(const aal_tensor *t);
size_t aal_tensor_bytes_f32(const aal_tensor *t);

int aal_tensor_same_shape(const aal_tensor *a, const aal_tensor *b);
/* "2x3x5x5" into buf. */
void aal_tensor_shape_str(const aal_tensor *t, char *buf, size_t len);
/* Fails with AAL_EINVAL (t NULL, wrong dtype) or AAL_ESHAPE (wrong ndim), naming what. */
int aal_tensor_require(const aal_tensor *t, int ndim, enum aal_dtype dtype,
                       const char *what, aal_error *err);
/* Fails with AAL_ESHAPE unless a and b have equal shapes. */
int aal_tensor_require_same(const aal_tensor *a, const aal_tensor *b,
                            const char *what_a, const char *what_b, aal_error *err);

/* Detaches any mirror first (the host is then the only copy). */
void aal_tensor_fill(aal_tensor *t, double value);

/* Makes the host storage current (a no-op without a stale mirror); the mirror stays.
 * Logically const: only the cached copy changes. */
int aal_tensor_sync_host(const aal_tensor *t, aal_error *err);
/* Makes the host storage current and drops the mirror, so that the host may be
 * written.  NULL is allowed. */
int aal_tensor_detach(aal_tensor *t, aal_error *err);
/* Drops the mirror without updating the host (whose values are then those before the
 * mirror took over, zeros for deferred storage): only for a tensor about to be
 * overwritten on the host. */
int aal_tensor_forget_mirror(aal_tensor *t, aal_error *err);

/* A tensor whose host storage (data / bits) is not allocated yet: NULL until
 * aal_tensor_host_alloc, which aal_tensor_sync_host, _detach and _forget_mirror call.
 * For a backend adapter that attaches a current mirror at once (aal_ops_tensor_new),
 * so that intermediates that never come home cost no host memory or zero-filling. */
aal_tensor *aal_tensor_new_deferred(int ndim, const long *shape, enum aal_dtype dtype,
                                    aal_error *err);
/* Allocates zero-filled host storage if there is none. */
int aal_tensor_host_alloc(aal_tensor *t, aal_error *err);

static inline size_t aal_idx4(const aal_tensor *t, size_t n, size_t c, size_t h, size_t w)
{
  return ((n * t->shape[1] + c) * t->shape[2] + h) * t->shape[3] + w;
}

/* Words of packed bits for n elements. */
static inline size_t aal_bit_words(size_t n)
{
  return (n + 31) / 32;
}

static inline int aal_bit_get(const uint32_t *bits, size_t i)
{
  return (int)((bits[i >> 5] >> (i & 31)) & 1u);
}

static inline void aal_bit_set(uint32_t *bits, size_t i, int value)
{
  const uint32_t mask = (uint32_t)1 << (i & 31);
  if (value)
    bits[i >> 5] |= mask;
  else
    bits[i >> 5] &= ~mask;
}

#endif
