/* numpy .npy files, format version 1.0 (what numpy.save writes for small headers):
 *   "\x93NUMPY" 0x01 0x00, u16 little-endian header length, an ASCII dict
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and a
 *   final '\n' so that the data starts at a multiple of 64 bytes; then the C-order data. */
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

#endif
