#include "sim/train/npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/train/checkpoint.h"

/* header dict for descr and shape; returns its length before padding, or -1 */
static int header_dict(char *buf, size_t len, const char *descr, int ndim, const size_t *shape)
{
  int n = snprintf(buf, len, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  /* Python tuple syntax, as numpy writes it: (), (5,), (2, 3) */
  for (int d = 0; d < ndim && n > 0 && (size_t)n < len; d++)
    n += snprintf(buf + n, len - (size_t)n, "%s%zu%s", d ? ", " : "", shape[d],
                  ndim == 1 ? "," : "");
  if (n > 0 && (size_t)n < len)
    n += snprintf(buf + n, len - (size_t)n, "), }");
  return (n > 0 && (size_t)n < len) ? n : -1;
}

static int write_npy(const char *path, const char *descr, int ndim, const size_t *shape,
                     const void *data, size_t elem_size, aal_error *err)
{
  if (path == NULL || (ndim > 0 && shape == NULL) || data == NULL || ndim < 0 || ndim > 8)
    return aal_fail(err, AAL_EINVAL, "npy: bad arguments for %s", path ? path : "(null)");
  /* the exact element count: 0 when any dimension is 0, whatever the others are */
  size_t count = 1;
  int empty = 0;
  for (int d = 0; d < ndim; d++)
    empty |= shape[d] == 0;
  for (int d = 0; d < ndim && !empty; d++) {
    if (count > SIZE_MAX / shape[d])
      return aal_fail(err, AAL_EINVAL, "npy: the shape of %s overflows its element count at "
                      "dimension %d (%zu)", path, d, shape[d]);
    count *= shape[d];
  }
  if (empty)
    count = 0;
  if (count > (SIZE_MAX - 4096) / elem_size)
    return aal_fail(err, AAL_EINVAL, "npy: %zu elements of %s overflow its byte count", count,
                    path);
  char dict[512];
  int n = header_dict(dict, sizeof dict, descr, ndim, shape);
  if (n < 0)
    return aal_fail(err, AAL_EINVAL, "npy: header too long for %s", path);
  /* 10 bytes of preamble + dict + padding + '\n' = a multiple of 64 */
  const size_t header = ((10 + (size_t)n + 1 + 63) / 64) * 64 - 10;
  const size_t total = 10 + header + count * elem_size;
  unsigned char *buf = malloc(total);
  if (buf == NULL)
    return aal_fail(err, AAL_ENOMEM, "npy: cannot allocate %zu bytes for %s", total, path);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(header & 0xff);
  buf[9] = (unsigned char)(header >> 8);
  memcpy(buf + 10, dict, (size_t)n);
  memset(buf + 10 + n, ' ', header - (size_t)n - 1);
  buf[10 + header - 1] = '\n';
  memcpy(buf + 10 + header, data, count * elem_size);
  int rc = aal_write_atomic(path, buf, total, err);
  free(buf);
  return rc;
}

int aal_npy_write_f64(const char *path, int ndim, const size_t *shape, const double *data,
                      aal_error *err)
{
  return write_npy(path, "<f8", ndim, shape, data, sizeof(double), err);
}

int aal_npy_write_i64(const char *path, int ndim, const size_t *shape, const int64_t *data,
                      aal_error *err)
{
  return write_npy(path, "<i8", ndim, shape, data, sizeof(int64_t), err);
}
