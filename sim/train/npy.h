/* numpy .npy files.
 *
 * The writer: format version 1.0 (what numpy.save writes for small headers):
 *   "\x93NUMPY" 0x01 0x00, u16 little-endian header length, an ASCII dict
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and a
 *   final '\n' so that the data starts at a multiple of 64 bytes; then the C-order data.
 *
 * The reader: versions 1.0 and 2.0 (2.0: a u32 header length), the dict as numpy writes
 * it (keys 'descr', 'fortran_order', 'shape' once each, in any order, Python literals;
 * whitespace and a trailing comma allowed), little-endian '<f8', '<f4', '<f2', '<i8',
 * '<u2' and the one-byte '|u1', '|b1' (numpy's uint8 and bool), C order only.  Refused,
 * with a message naming the file (AAL_EFORMAT): a bad magic, another version, Fortran
 * order, big-endian or any other dtype, a shape of more than AAL_NPY_MAXDIM dimensions
 * or whose element or byte count overflows, data shorter (truncated) or longer than
 * the shape says.  A path that cannot be opened or is not a regular file is AAL_EIO
 * naming it. */
#ifndef AAL_NPY_H
#define AAL_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "sim/core/error.h"

/* Writes float64 (descr '<f8') or int64 ('<i8') data atomically.  ndim 0..8; a shape
 * whose element or byte count overflows size_t is AAL_EINVAL naming the file (a shape
 * with a dimension of 0 holds 0 elements, whatever its other dimensions). */
int aal_npy_write_f64(const char *path, int ndim, const size_t *shape, const double *data,
                      aal_error *err);
int aal_npy_write_i64(const char *path, int ndim, const size_t *shape, const int64_t *data,
                      aal_error *err);

#define AAL_NPY_MAXDIM 8

/* The dtypes the reader takes.  F16 and U16 arrive alike as uint16_t values (float16
 * bit patterns, or bfloat16 bit patterns by the reader's caller's convention: numpy has
 * no bfloat16). */
typedef enum {
  AAL_NPY_F64,  /* '<f8' -> double */
  AAL_NPY_F32,  /* '<f4' -> float */
  AAL_NPY_F16,  /* '<f2' -> uint16_t, IEEE binary16 bit patterns */
  AAL_NPY_I64,  /* '<i8' -> int64_t */
  AAL_NPY_U16,  /* '<u2' -> uint16_t */
  AAL_NPY_U8,   /* '|u1' -> uint8_t */
  AAL_NPY_BOOL  /* '|b1' -> uint8_t, 0 or 1 (another byte is refused) */
} aal_npy_dtype;

typedef struct {
  aal_npy_dtype dtype;
  int ndim;                      /* 0 (a scalar) .. AAL_NPY_MAXDIM */
  size_t shape[AAL_NPY_MAXDIM];
  size_t count;                  /* elements: the product of the shape (1 for a scalar) */
  void *data;                    /* count elements in the host's representation (the
                                    type named above), C order; malloc'd, never NULL */
} aal_npy_array;

/* Writes count(shape) elements of dtype t in the host's representation (as the reader
 * gives them: double, float, uint16_t, int64_t, uint8_t; copied as they are, so on a
 * little-endian host, like every machine this project runs on), atomically, as the
 * writers above. */
int aal_npy_write(const char *path, aal_npy_dtype t, int ndim, const size_t *shape,
                  const void *data, aal_error *err);

/* Reads the file at path into *a (release with aal_npy_free). */
int aal_npy_read(const char *path, aal_npy_array *a, aal_error *err);
/* The same from len bytes in memory; name is what messages call them (a file name). */
int aal_npy_parse(const void *bytes, size_t len, const char *name, aal_npy_array *a,
                  aal_error *err);
void aal_npy_free(aal_npy_array *a);
/* '<f4', ... and the bytes of one element. */
const char *aal_npy_dtype_descr(aal_npy_dtype t);
size_t aal_npy_dtype_size(aal_npy_dtype t);

#endif
