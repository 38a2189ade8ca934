#include "sim/core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int element_count(int ndim, const long *shape, size_t *count, aal_error *err)
{
  if (ndim < 1 || ndim > AAL_MAX_NDIM)
    return aal_fail(err, AAL_EINVAL, "tensor rank %d is outside 1..%d", ndim, AAL_MAX_NDIM);
  if (shape == NULL)
    return aal_fail(err, AAL_EINVAL, "tensor shape is NULL");
  size_t total = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 1)
      return aal_fail(err, AAL_EINVAL, "tensor dimension %d has size %ld; sizes must be >= 1",
                      d, shape[d]);
    if ((size_t)shape[d] > SIZE_MAX / sizeof(double) / total)
      return aal_fail(err, AAL_ENOMEM, "tensor of rank %d overflows at dimension %d", ndim, d);
    total *= (size_t)shape[d];
  }
  *count = total;
  return AAL_OK;
}

static aal_tensor *tensor_header(int ndim, const long *shape, enum aal_dtype dtype,
                                 aal_error *err)
{
  size_t count = 0;
  if (element_count(ndim, shape, &count, err) != AAL_OK)
    return NULL;
  aal_tensor *t = calloc(1, sizeof *t);
  if (t == NULL) {
    aal_fail(err, AAL_ENOMEM, "cannot allocate a tensor header");
    return NULL;
  }
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++)
    t->shape[d] = (size_t)shape[d];
  t->size = count;
  t->dtype = dtype;
  t->refcount = 1;
  return t;
}

static aal_tensor *tensor_alloc(int ndim, const long *shape, enum aal_dtype dtype,
                                aal_error *err)
{
  aal_tensor *t = tensor_header(ndim, shape, dtype, err);
  if (t == NULL)
    return NULL;
  if (dtype == AAL_F64)
    t->data = calloc(t->size, sizeof(double));
  else
    t->bits = calloc(aal_bit_words(t->size), sizeof *t->bits);
  if (t->data == NULL && t->bits == NULL) {
    aal_fail(err, AAL_ENOMEM, "cannot allocate a tensor of %zu elements", t->size);
    free(t);
    return NULL;
  }
  return t;
}

aal_tensor *aal_tensor_new_at(const aal_tensor_home *home, void *buf, int ndim,
                              const long *shape, enum aal_dtype dtype, aal_error *err)
{
  if (home == NULL || buf == NULL) {
    aal_fail(err, AAL_EINVAL, "aal_tensor_new_at: NULL home or buffer");
    return NULL;
  }
  aal_tensor *t = tensor_header(ndim, shape, dtype, err);
  if (t != NULL) {
    t->home = home;
    t->buf = buf;
  }
  return t;
}

aal_tensor *aal_tensor_new(int ndim, const long *shape, aal_error *err)
{
  return tensor_alloc(ndim, shape, AAL_F64, err);
}

aal_tensor *aal_tensor_new_bits(int ndim, const long *shape, aal_error *err)
{
  return tensor_alloc(ndim, shape, AAL_BITS, err);
}

aal_tensor *aal_tensor_new4(long n, long c, long h, long w, aal_error *err)
{
  const long shape[4] = {n, c, h, w};
  return aal_tensor_new(4, shape, err);
}

aal_tensor *aal_tensor_new2(long rows, long cols, aal_error *err)
{
  const long shape[2] = {rows, cols};
  return aal_tensor_new(2, shape, err);
}

aal_tensor *aal_tensor_new1(long n, aal_error *err)
{
  return aal_tensor_new(1, &n, err);
}

static void shape_as_long(const aal_tensor *t, long *shape)
{
  for (int d = 0; d < t->ndim; d++)
    shape[d] = (long)t->shape[d];
}

aal_tensor *aal_tensor_new_like(const aal_tensor *t, aal_error *err)
{
  if (t == NULL) {
    aal_fail(err, AAL_EINVAL, "aal_tensor_new_like: tensor is NULL");
    return NULL;
  }
  long shape[AAL_MAX_NDIM];
  shape_as_long(t, shape);
  return aal_tensor_new(t->ndim, shape, err);
}

aal_tensor *aal_tensor_copy(const aal_tensor *t, aal_error *err)
{
  if (t == NULL) {
    aal_fail(err, AAL_EINVAL, "aal_tensor_copy: tensor is NULL");
    return NULL;
  }
  long shape[AAL_MAX_NDIM];
  shape_as_long(t, shape);
  aal_tensor *c = tensor_alloc(t->ndim, shape, t->dtype, err);
  if (c != NULL && aal_tensor_read(t, c, err) != AAL_OK) {
    aal_tensor_release(c);
    return NULL;
  }
  return c;
}

aal_tensor *aal_tensor_host_view(const aal_tensor *t, aal_error *err)
{
  if (t != NULL && t->home == NULL)
    return aal_tensor_retain((aal_tensor *)t);
  return aal_tensor_copy(t, err);
}

/* host must be a host tensor of t's shape and dtype */
static int host_peer(const aal_tensor *t, const aal_tensor *host, const char *op,
                     aal_error *err)
{
  if (t == NULL || host == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: NULL tensor", op);
  if (host->home != NULL)
    return aal_fail(err, AAL_EINVAL, "%s: the host side lives on backend %s", op,
                    host->home->name);
  if (host->dtype != t->dtype || !aal_tensor_same_shape(t, host)) {
    char st[64], sh[64];
    aal_tensor_shape_str(t, st, sizeof st);
    aal_tensor_shape_str(host, sh, sizeof sh);
    return aal_fail(err, AAL_ESHAPE, "%s: tensor %s and host tensor %s differ in shape or "
                    "element type", op, st, sh);
  }
  return AAL_OK;
}

static void host_to_host(aal_tensor *dst, const aal_tensor *src)
{
  if (dst == src)
    return;
  if (src->dtype == AAL_F64)
    memcpy(dst->data, src->data, src->size * sizeof(double));
  else
    memcpy(dst->bits, src->bits, aal_bit_words(src->size) * sizeof *src->bits);
}

int aal_tensor_read(const aal_tensor *t, aal_tensor *host, aal_error *err)
{
  int rc = host_peer(t, host, "tensor read", err);
  if (rc != AAL_OK)
    return rc;
  if (t->home != NULL)
    return t->home->read(t->home, t, host, err);
  host_to_host(host, t);
  return AAL_OK;
}

int aal_tensor_write(aal_tensor *t, const aal_tensor *host, aal_error *err)
{
  int rc = host_peer(t, host, "tensor write", err);
  if (rc != AAL_OK)
    return rc;
  if (t->home != NULL)
    return t->home->write(t->home, t, host, err);
  host_to_host(t, host);
  return AAL_OK;
}

aal_tensor *aal_tensor_retain(aal_tensor *t)
{
  if (t != NULL)
    t->refcount++;
  return t;
}

void aal_tensor_release(aal_tensor *t)
{
  if (t == NULL)
    return;
  if (--t->refcount > 0)
    return;
  if (t->home != NULL)
    t->home->release(t->home, t);
  free(t->data);
  free(t->bits);
  free(t);
}

size_t aal_tensor_bytes(const aal_tensor *t)
{
  if (t == NULL)
    return 0;
  return t->dtype == AAL_F64 ? t->size * sizeof(double) : (t->size + 7) / 8;
}

size_t aal_tensor_bytes_f32(const aal_tensor *t)
{
  if (t == NULL)
    return 0;
  return t->dtype == AAL_F64 ? t->size * sizeof(float) : (t->size + 7) / 8;
}

int aal_tensor_same_shape(const aal_tensor *a, const aal_tensor *b)
{
  if (a == NULL || b == NULL || a->ndim != b->ndim)
    return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d])
      return 0;
  return 1;
}

void aal_tensor_shape_str(const aal_tensor *t, char *buf, size_t len)
{
  if (len == 0)
    return;
  buf[0] = '\0';
  if (t == NULL) {
    snprintf(buf, len, "(null)");
    return;
  }
  size_t used = 0;
  for (int d = 0; d < t->ndim && used < len; d++) {
    int n = snprintf(buf + used, len - used, d ? "x%zu" : "%zu", t->shape[d]);
    if (n < 0)
      return;
    used += (size_t)n;
  }
}

int aal_tensor_check(const aal_tensor *t, enum aal_dtype dtype, int ndim,
                     const aal_tensor *ref, const char *op, const char *name,
                     const char *ref_name, aal_error *err)
{
  const char *sep = op != NULL ? ": " : "";
  op = op != NULL ? op : "";
  if (t == NULL)
    return aal_fail(err, AAL_EINVAL, "%s%s%s is NULL", op, sep, name);
  if (t->dtype != dtype)
    return aal_fail(err, AAL_EINVAL, "%s%s%s has the wrong element type (expected %s)", op,
                    sep, name, dtype == AAL_F64 ? "F64" : "BITS");
  char st[64], sr[64];
  aal_tensor_shape_str(t, st, sizeof st);
  if (ndim > 0 && t->ndim != ndim)
    return aal_fail(err, AAL_ESHAPE, "%s%s%s must have rank %d, has shape %s", op, sep, name,
                    ndim, st);
  if (ref != NULL && !aal_tensor_same_shape(t, ref)) {
    aal_tensor_shape_str(ref, sr, sizeof sr);
    return aal_fail(err, AAL_ESHAPE, "%s%s%s has shape %s but %s has shape %s", op, sep, name,
                    st, ref_name != NULL ? ref_name : "the reference", sr);
  }
  return AAL_OK;
}

int aal_tensor_require(const aal_tensor *t, int ndim, enum aal_dtype dtype,
                       const char *what, aal_error *err)
{
  return aal_tensor_check(t, dtype, ndim, NULL, NULL, what, NULL, err);
}

int aal_tensor_require_same(const aal_tensor *a, const aal_tensor *b,
                            const char *what_a, const char *what_b, aal_error *err)
{
  if (a == NULL || b == NULL)
    return aal_fail(err, AAL_EINVAL, "%s is NULL", a == NULL ? what_a : what_b);
  return aal_tensor_check(a, a->dtype, 0, b, NULL, what_a, what_b, err);
}

void aal_tensor_fill(aal_tensor *t, double value)
{
  if (t == NULL || t->dtype != AAL_F64 || t->home != NULL)
    return;
  for (size_t i = 0; i < t->size; i++)
    t->data[i] = value;
}
