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

/* Where a tensor lives (ARCHITECTURE idea 1).  A tensor whose home is NULL lives on the
 * host: its elements are data (F64) or bits (BITS), and every reference tensor is such
 * a tensor.  A tensor with a home lives in a buffer of that home (a backend, behind the
 * op table of sim/ops/ops.h): data and bits are NULL, its values are held at the home's
 * precision, only the home's ops read and write them, and the host sees them only
 * through an explicit copy (aal_tensor_read, aal_tensor_write, aal_tensor_copy).  There
 * is no second copy to keep in step. */
typedef struct aal_tensor_home {
  const char *name;   /* the backend's name, for messages */
  int precision_bits; /* significand bits of its values (24 for float32) */
  /* t's values into host (a host tensor of t's shape and dtype) */
  int (*read)(const struct aal_tensor_home *home, const struct aal_tensor *t,
              struct aal_tensor *host, aal_error *err);
  /* host's values into t, rounded to the home's precision */
  int (*write)(const struct aal_tensor_home *home, struct aal_tensor *t,
               const struct aal_tensor *host, aal_error *err);
  /* gives t->buf back (the tensor is being freed) */
  void (*release)(const struct aal_tensor_home *home, struct aal_tensor *t);
} aal_tensor_home;

typedef struct aal_tensor {
  int ndim;
  size_t shape[AAL_MAX_NDIM];
  size_t size;          /* product of the shape */
  enum aal_dtype dtype; /* values or bits (on a home: at its precision) */
  double *data;         /* on the host, F64: size doubles; else NULL */
  uint32_t *bits;       /* on the host, BITS: aal_bit_words(size) words; else NULL */
  const aal_tensor_home *home; /* NULL: on the host */
  void *buf;            /* the home's buffer (NULL on the host) */
  int refcount;
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
/* A new host tensor with t's values (t on the host or on a home). */
aal_tensor *aal_tensor_copy(const aal_tensor *t, aal_error *err);
/* A tensor of the given shape and dtype that lives at home in buf (the home made buf
 * and takes it back through home->release when the tensor is freed). */
aal_tensor *aal_tensor_new_at(const aal_tensor_home *home, void *buf, int ndim,
                              const long *shape, enum aal_dtype dtype, aal_error *err);

/* 1 when t lives on the host (its data / bits may be read and written directly). */
static inline int aal_tensor_on_host(const aal_tensor *t)
{
  return t != NULL && t->home == NULL;
}
/* A host tensor with t's values, to read: t itself (retained) when it lives on the
 * host, else a copy.  Release it after use. */
aal_tensor *aal_tensor_host_view(const aal_tensor *t, aal_error *err);
/* t's values into host, a host tensor of t's shape and dtype (a download when t lives
 * at a home). */
int aal_tensor_read(const aal_tensor *t, aal_tensor *host, aal_error *err);
/* host's values into t (an upload when t lives at a home, rounded to its precision). */
int aal_tensor_write(aal_tensor *t, const aal_tensor *host, aal_error *err);

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
/* The argument check every op shares: t non-NULL, of element type dtype, of rank ndim
 * (0: any) and, when ref is non-NULL, of ref's shape.  Fails with AAL_EINVAL (NULL, wrong
 * type) or AAL_ESHAPE, the message naming the op (when op is non-NULL) and the tensors:
 * "relu forward: mask has shape 2x3 but x has shape 2x4". */
int aal_tensor_check(const aal_tensor *t, enum aal_dtype dtype, int ndim,
                     const aal_tensor *ref, const char *op, const char *name,
                     const char *ref_name, aal_error *err);
/* aal_tensor_check(t, dtype, ndim, NULL, NULL, what, NULL, err). */
int aal_tensor_require(const aal_tensor *t, int ndim, enum aal_dtype dtype,
                       const char *what, aal_error *err);
/* Fails with AAL_EINVAL (NULL) or AAL_ESHAPE unless a and b have equal shapes. */
int aal_tensor_require_same(const aal_tensor *a, const aal_tensor *b,
                            const char *what_a, const char *what_b, aal_error *err);

/* Every element of a host tensor := value (a tensor that lives at a home is left as it
 * is: write it with aal_tensor_write). */
void aal_tensor_fill(aal_tensor *t, double value);

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
