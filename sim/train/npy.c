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

int aal_npy_write(const char *path, aal_npy_dtype t, int ndim, const size_t *shape,
                  const void *data, aal_error *err)
{
  if (aal_npy_dtype_size(t) == 0)
    return aal_fail(err, AAL_EINVAL, "npy: unknown dtype %d for %s", (int)t,
                    path ? path : "(null)");
  return write_npy(path, aal_npy_dtype_descr(t), ndim, shape, data, aal_npy_dtype_size(t), err);
}

/* ================================================================ the reader */

const char *aal_npy_dtype_descr(aal_npy_dtype t)
{
  static const char *const d[] = {"<f8", "<f4", "<f2", "<i8", "<u2", "|u1", "|b1"};
  return (unsigned)t < sizeof d / sizeof d[0] ? d[t] : "?";
}

size_t aal_npy_dtype_size(aal_npy_dtype t)
{
  static const size_t s[] = {8, 4, 2, 8, 2, 1, 1};
  return (unsigned)t < sizeof s / sizeof s[0] ? s[t] : 0;
}

void aal_npy_free(aal_npy_array *a)
{
  if (a == NULL)
    return;
  free(a->data);
  a->data = NULL;
}

/* The header dict, a Python literal: a cursor over its text. */
typedef struct {
  const char *begin, *s, *end;
  const char *name; /* the file, for messages */
  aal_error *err;
} hdr;

static void skip_ws(hdr *h)
{
  while (h->s < h->end && (*h->s == ' ' || *h->s == '\t' || *h->s == '\n' || *h->s == '\r'))
    h->s++;
}

/* The next non-blank character is c: consumed, 1; else 0. */
static int eat(hdr *h, char c)
{
  skip_ws(h);
  if (h->s < h->end && *h->s == c) {
    h->s++;
    return 1;
  }
  return 0;
}

static int bad_header(hdr *h, const char *what)
{
  return aal_fail(h->err, AAL_EFORMAT, "%s: not an .npy header: %s (header byte %td)", h->name,
                  what, h->s - h->begin);
}

/* A quoted string ('...' or "...", no escapes) into buf (len bytes). */
static int quoted(hdr *h, char *buf, size_t len)
{
  skip_ws(h);
  if (h->s >= h->end || (*h->s != '\'' && *h->s != '"'))
    return bad_header(h, "expected a quoted string");
  const char q = *h->s++;
  size_t n = 0;
  while (h->s < h->end && *h->s != q) {
    if (*h->s == '\\' || n + 1 >= len)
      return bad_header(h, "a string too long or with an escape");
    buf[n++] = *h->s++;
  }
  if (h->s >= h->end)
    return bad_header(h, "an unterminated string");
  h->s++;
  buf[n] = '\0';
  return AAL_OK;
}

/* 'shape': a tuple of non-negative integers; (3) is not a tuple, (3,) is. */
static int shape_tuple(hdr *h, aal_npy_array *a)
{
  if (!eat(h, '('))
    return bad_header(h, "'shape' is not a tuple");
  int n = 0, commas = 0;
  while (!eat(h, ')')) {
    skip_ws(h);
    if (h->s >= h->end || *h->s < '0' || *h->s > '9')
      return bad_header(h, "'shape' holds something other than a non-negative integer");
    if (n == AAL_NPY_MAXDIM)
      return aal_fail(h->err, AAL_EFORMAT, "%s: more than %d dimensions", h->name,
                      AAL_NPY_MAXDIM);
    size_t v = 0;
    for (; h->s < h->end && *h->s >= '0' && *h->s <= '9'; h->s++) {
      const size_t digit = (size_t)(*h->s - '0');
      if (v > (SIZE_MAX - digit) / 10)
        return aal_fail(h->err, AAL_EFORMAT, "%s: dimension %d of the shape overflows",
                        h->name, n);
      v = v * 10 + digit;
    }
    a->shape[n++] = v;
    if (eat(h, ','))
      commas++;
    else if (!eat(h, ')'))
      return bad_header(h, "'shape' is not a tuple of integers");
    else
      break;
  }
  if (n == 1 && commas == 0)
    return bad_header(h, "'shape' is (N), an integer, not the tuple (N,)");
  a->ndim = n;
  return AAL_OK;
}

static int descr_dtype(hdr *h, const char *d, aal_npy_dtype *t)
{
  for (int i = AAL_NPY_F64; i <= AAL_NPY_BOOL; i++)
    if (strcmp(d, aal_npy_dtype_descr((aal_npy_dtype)i)) == 0) {
      *t = (aal_npy_dtype)i;
      return AAL_OK;
    }
  if (d[0] == '>')
    return aal_fail(h->err, AAL_EFORMAT, "%s: big-endian data ('%s') is not supported (write "
                    "it little-endian: arr.astype(arr.dtype.newbyteorder('<')))", h->name, d);
  return aal_fail(h->err, AAL_EFORMAT, "%s: dtype '%s' is not supported (float64 '<f8', "
                  "float32 '<f4', float16 '<f2', int64 '<i8', uint16 '<u2', uint8 '|u1', "
                  "bool '|b1')", h->name, d);
}

/* One key: value pair; seen: bit 0 descr, 1 fortran_order, 2 shape. */
static int header_pair(hdr *h, aal_npy_array *a, unsigned *seen)
{
  char key[32], val[32];
  int rc = quoted(h, key, sizeof key);
  if (rc != AAL_OK)
    return rc;
  if (!eat(h, ':'))
    return bad_header(h, "expected ':' after a key");
  unsigned bit;
  if (strcmp(key, "descr") == 0) {
    bit = 1;
    if ((rc = quoted(h, val, sizeof val)) == AAL_OK)
      rc = descr_dtype(h, val, &a->dtype);
  } else if (strcmp(key, "fortran_order") == 0) {
    bit = 2;
    skip_ws(h);
    if ((size_t)(h->end - h->s) >= 5 && memcmp(h->s, "False", 5) == 0)
      h->s += 5;
    else if ((size_t)(h->end - h->s) >= 4 && memcmp(h->s, "True", 4) == 0)
      rc = aal_fail(h->err, AAL_EFORMAT, "%s: Fortran order is not supported (save a C-order "
                    "array: numpy.ascontiguousarray)", h->name);
    else
      rc = bad_header(h, "'fortran_order' is neither True nor False");
  } else if (strcmp(key, "shape") == 0) {
    bit = 4;
    rc = shape_tuple(h, a);
  } else {
    return aal_fail(h->err, AAL_EFORMAT, "%s: unknown header key '%s'", h->name, key);
  }
  if (rc == AAL_OK && (*seen & bit))
    rc = aal_fail(h->err, AAL_EFORMAT, "%s: header key '%s' given twice", h->name, key);
  *seen |= bit;
  return rc;
}

static int parse_header(hdr *h, aal_npy_array *a)
{
  unsigned seen = 0;
  if (!eat(h, '{'))
    return bad_header(h, "expected '{'");
  while (!eat(h, '}')) {
    int rc = header_pair(h, a, &seen);
    if (rc != AAL_OK)
      return rc;
    if (!eat(h, ',')) {
      if (!eat(h, '}'))
        return bad_header(h, "expected ',' or '}'");
      break;
    }
  }
  skip_ws(h);
  if (h->s != h->end)
    return bad_header(h, "text after the dict");
  if (seen != 7)
    return aal_fail(h->err, AAL_EFORMAT, "%s: the header lacks '%s'", h->name,
                    !(seen & 1) ? "descr" : !(seen & 2) ? "fortran_order" : "shape");
  return AAL_OK;
}

/* Little-endian bytes to the host's representation, whatever the host's byte order. */
static uint64_t le(const unsigned char *p, size_t n)
{
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static int decode(const unsigned char *p, aal_npy_array *a, const char *name, aal_error *err)
{
  const size_t size = aal_npy_dtype_size(a->dtype);
  for (size_t i = 0; i < a->count; i++, p += size) {
    const uint64_t v = le(p, size);
    switch (a->dtype) {
    case AAL_NPY_F64: {
      double d;
      memcpy(&d, &v, sizeof d);
      ((double *)a->data)[i] = d;
      break;
    }
    case AAL_NPY_F32: {
      const uint32_t w = (uint32_t)v;
      float f;
      memcpy(&f, &w, sizeof f);
      ((float *)a->data)[i] = f;
      break;
    }
    case AAL_NPY_I64:
      ((int64_t *)a->data)[i] = (int64_t)v; /* two's complement, as numpy writes it */
      break;
    case AAL_NPY_F16:
    case AAL_NPY_U16:
      ((uint16_t *)a->data)[i] = (uint16_t)v;
      break;
    case AAL_NPY_BOOL:
      if (v > 1)
        return aal_fail(err, AAL_EFORMAT, "%s: bool element %zu is byte %u, not 0 or 1", name,
                        i, (unsigned)v);
      /* fall through */
    case AAL_NPY_U8:
      ((uint8_t *)a->data)[i] = (uint8_t)v;
      break;
    }
  }
  return AAL_OK;
}

/* The element count of the shape (0 when a dimension is 0) and its bytes; AAL_EFORMAT
 * when either overflows. */
static int count_elements(aal_npy_array *a, const char *name, size_t *bytes, aal_error *err)
{
  size_t count = 1;
  int empty = 0;
  for (int d = 0; d < a->ndim; d++)
    empty |= a->shape[d] == 0;
  for (int d = 0; d < a->ndim && !empty; d++) {
    if (count > SIZE_MAX / a->shape[d])
      return aal_fail(err, AAL_EFORMAT, "%s: the shape's element count overflows at "
                      "dimension %d (%zu)", name, d, a->shape[d]);
    count *= a->shape[d];
  }
  a->count = empty ? 0 : count;
  const size_t size = aal_npy_dtype_size(a->dtype);
  if (a->count > SIZE_MAX / size)
    return aal_fail(err, AAL_EFORMAT, "%s: %zu elements overflow the byte count", name,
                    a->count);
  *bytes = a->count * size;
  return AAL_OK;
}

int aal_npy_parse(const void *bytes, size_t len, const char *name, aal_npy_array *a,
                  aal_error *err)
{
  if (a != NULL)
    memset(a, 0, sizeof *a);
  if (a == NULL || (bytes == NULL && len > 0))
    return aal_fail(err, AAL_EINVAL, "npy: NULL array or bytes for %s", name ? name : "(null)");
  if (name == NULL)
    name = "(npy bytes)";
  const unsigned char *b = bytes;
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return aal_fail(err, AAL_EFORMAT, "%s: not an .npy file (no \\x93NUMPY magic)", name);
  if ((b[6] != 1 && b[6] != 2) || b[7] != 0)
    return aal_fail(err, AAL_EFORMAT, "%s: .npy format version %u.%u is not supported (1.0, "
                    "2.0)", name, b[6], b[7]);
  const size_t pre = b[6] == 1 ? 10 : 12;
  if (len < pre)
    return aal_fail(err, AAL_EFORMAT, "%s: truncated in the preamble", name);
  const size_t hlen = (size_t)le(b + 8, pre - 8);
  if (hlen > len - pre)
    return aal_fail(err, AAL_EFORMAT, "%s: truncated: a header of %zu bytes in a file of %zu",
                    name, hlen, len);
  hdr h = {(const char *)b + pre, (const char *)b + pre, (const char *)b + pre + hlen, name,
           err};
  size_t need = 0;
  int rc = parse_header(&h, a);
  if (rc == AAL_OK)
    rc = count_elements(a, name, &need, err);
  if (rc != AAL_OK)
    return rc;
  const size_t have = len - pre - hlen;
  if (have < need)
    return aal_fail(err, AAL_EFORMAT, "%s: truncated: %zu bytes of data where its shape and "
                    "dtype '%s' need %zu", name, have, aal_npy_dtype_descr(a->dtype), need);
  if (have > need)
    return aal_fail(err, AAL_EFORMAT, "%s: %zu bytes after the data its header describes",
                    name, have - need);
  if ((a->data = malloc(need > 0 ? need : 1)) == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: cannot allocate %zu bytes", name, need);
  rc = decode(b + pre + hlen, a, name, err);
  if (rc != AAL_OK)
    aal_npy_free(a);
  return rc;
}

int aal_npy_read(const char *path, aal_npy_array *a, aal_error *err)
{
  if (a != NULL)
    memset(a, 0, sizeof *a);
  if (path == NULL || a == NULL)
    return aal_fail(err, AAL_EINVAL, "npy read: NULL path or array");
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = aal_read_file(path, "an .npy file", &data, &len, err);
  if (rc == AAL_OK)
    rc = aal_npy_parse(data, len, path, a, err);
  free(data);
  return rc;
}
