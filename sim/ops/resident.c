/* Where the backend adapter's tensors live (sim/ops/ops.h): backend buffers from a cache
 * keyed by size, the tensors made there (sim/core/tensor.h's home), the explicit copies
 * across (aal_ops_tensor_to, aal_ops_move, the home's read and write), and the
 * bookkeeping of one call (ops_internal.h). */
#include "sim/ops/ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

/* Buffers given back after a call or by a freed tensor, kept for the next request of
 * the same size; the oldest is released when the cache is full.  At the end of a step
 * the tape gives back every activation at once (about 300 buffers for ResNet-18), and
 * the next step asks for the same sizes again: 512 slots keep a steady-state step free
 * of backend allocations (64 slots: ~55 alloc/free pairs per step, which on a GPU are
 * synchronising cudaMalloc/cudaFree calls). */
#define CACHE_SLOTS 512

typedef struct resident resident;

struct aal_ops_cache {
  aal_tensor_home home;  /* what the adapter's tensors point to (t->home) */
  const aal_backend *be;
  int poison;            /* new tensors start as NaN (bits: a fixed pattern) */
  void *buf[CACHE_SLOTS];
  size_t n[CACHE_SLOTS];
  int bits[CACHE_SLOTS];
  int count;
  resident *live;        /* every tensor living here (aal_ops_free brings them home) */
};

/* t->buf of a tensor that lives on the adapter: its backend buffer, and its place in
 * the list of live tensors. */
struct resident {
  void *buf;
  aal_tensor *t;
  resident *prev, *next;
};

static aal_ops_cache *cache_of(const aal_tensor_home *home)
{
  return (aal_ops_cache *)(void *)home;  /* home is the cache's first member */
}

/* the backend buffer of a tensor that lives on this adapter */
static void *buffer_of(const aal_tensor *t)
{
  return ((const resident *)t->buf)->buf;
}

static int acquire(aal_ops_cache *c, size_t n, int bits, void **buf, aal_error *err)
{
  for (int i = c->count - 1; i >= 0; i--)
    if (c->n[i] == n && c->bits[i] == bits) {
      *buf = c->buf[i];
      for (int j = i + 1; j < c->count; j++) {
        c->buf[j - 1] = c->buf[j];
        c->n[j - 1] = c->n[j];
        c->bits[j - 1] = c->bits[j];
      }
      c->count--;
      return AAL_OK;
    }
  *buf = NULL;
  return bits ? c->be->alloc_bits(c->be, n, buf, err) : c->be->alloc(c->be, n, buf, err);
}

static void give_back(aal_ops_cache *c, size_t n, int bits, void *buf)
{
  if (buf == NULL)
    return;
  if (c->count == CACHE_SLOTS) {
    c->be->release(c->be, c->buf[0]);
    memmove(c->buf, c->buf + 1, (CACHE_SLOTS - 1) * sizeof c->buf[0]);
    memmove(c->n, c->n + 1, (CACHE_SLOTS - 1) * sizeof c->n[0]);
    memmove(c->bits, c->bits + 1, (CACHE_SLOTS - 1) * sizeof c->bits[0]);
    c->count--;
  }
  c->buf[c->count] = buf;
  c->n[c->count] = n;
  c->bits[c->count] = bits;
  c->count++;
}

/* ---------------------------------------------------------------- the home */

static int home_read(const aal_tensor_home *home, const aal_tensor *t, aal_tensor *host,
                     aal_error *err)
{
  const aal_backend *be = cache_of(home)->be;
  if (t->dtype == AAL_F64)
    return be->download(be, host->data, buffer_of(t), t->size, err);
  return be->download_bits(be, host->bits, buffer_of(t), t->size, err);
}

static int home_write(const aal_tensor_home *home, aal_tensor *t, const aal_tensor *host,
                      aal_error *err)
{
  const aal_backend *be = cache_of(home)->be;
  if (t->dtype == AAL_F64)
    return be->upload(be, buffer_of(t), host->data, t->size, err);
  return be->upload_bits(be, buffer_of(t), host->bits, t->size, err);
}

static void unlink_resident(aal_ops_cache *c, resident *r)
{
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    c->live = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
}

static void home_release(const aal_tensor_home *home, aal_tensor *t)
{
  aal_ops_cache *c = cache_of(home);
  resident *r = t->buf;
  unlink_resident(c, r);
  give_back(c, t->size, t->dtype == AAL_BITS, r->buf);
  free(r);
  t->buf = NULL;
}

/* NaN (bits: a fixed pattern) into t's buffer, so that reading an element no op wrote
 * shows up. */
static int poison(aal_tensor *t, aal_error *err)
{
  long shape[AAL_MAX_NDIM];
  for (int d = 0; d < t->ndim; d++)
    shape[d] = (long)t->shape[d];
  aal_tensor *h = t->dtype == AAL_F64 ? aal_tensor_new(t->ndim, shape, err)
                                      : aal_tensor_new_bits(t->ndim, shape, err);
  if (h == NULL)
    return AAL_ENOMEM;
  if (t->dtype == AAL_F64)
    aal_tensor_fill(h, NAN);
  else
    memset(h->bits, 0xA5, aal_bit_words(h->size) * sizeof h->bits[0]);
  int rc = aal_tensor_write(t, h, err);
  aal_tensor_release(h);
  return rc;
}

/* A new tensor of this adapter: a cached or new backend buffer, contents undefined
 * (NaN when poisoning). */
static aal_tensor *resident_new(aal_ops_cache *c, int ndim, const long *shape,
                                enum aal_dtype dtype, aal_error *err)
{
  resident *r = calloc(1, sizeof *r);
  if (r == NULL) {
    aal_fail(err, AAL_ENOMEM, "ops %s: a tensor", c->be->name);
    return NULL;
  }
  aal_tensor *t = aal_tensor_new_at(&c->home, r, ndim, shape, dtype, err);
  if (t == NULL) {
    free(r);
    return NULL;
  }
  r->t = t;
  r->next = c->live;
  if (c->live != NULL)
    c->live->prev = r;
  c->live = r;
  /* from here on, releasing t unlinks r and gives its buffer back */
  int rc = acquire(c, t->size, dtype == AAL_BITS, &r->buf, err);
  if (rc == AAL_OK && c->poison)
    rc = poison(t, err);
  if (rc != AAL_OK) {
    aal_tensor_release(t);
    return NULL;
  }
  return t;
}

/* ---------------------------------------------------------------- one call */

void aal_call_begin(aal_call *c, const aal_ops *ops, const char *name, aal_error *err)
{
  memset(c, 0, sizeof *c);
  c->ops = ops;
  c->err = err;
  snprintf(c->op, sizeof c->op, "ops %s %s", ops->name, name);
}

int aal_call_end(aal_call *c)
{
  for (int i = 0; i < c->count; i++)
    give_back(c->ops->cache, c->n[i], c->bits[i], c->buf[i]);
  c->count = 0;
  return c->rc;
}

void *aal_call_scratch(aal_call *c, size_t n, int bits)
{
  void *buf = NULL;
  if (c->rc != AAL_OK)
    return NULL;
  if (c->count == AAL_CALL_BUFS) {
    c->rc = aal_fail(c->err, AAL_EINVAL, "%s: too many buffers", c->op);
    return NULL;
  }
  c->rc = acquire(c->ops->cache, n, bits, &buf, c->err);
  if (c->rc != AAL_OK)
    return NULL;
  c->buf[c->count] = buf;
  c->n[c->count] = n;
  c->bits[c->count] = bits;
  c->count++;
  return buf;
}

/* t must live on this adapter: a tensor that lives anywhere else is refused, naming the
 * call and the tensor (by its place among the call's tensors and its shape). */
static void *bind(aal_call *c, const aal_tensor *t, const char *role)
{
  const int index = ++c->bound;
  if (c->rc != AAL_OK || t == NULL)
    return NULL;
  if (t->home != &c->ops->cache->home) {
    char s[64];
    aal_tensor_shape_str(t, s, sizeof s);
    c->rc = aal_fail(c->err, AAL_EINVAL, "%s: tensor %d (%s, %s) lives %s%s, not on backend "
                     "%s: copy it there first (aal_ops_tensor_to)", c->op, index, role, s,
                     t->home == NULL ? "on the host" : "on backend ",
                     t->home == NULL ? "" : t->home->name, c->ops->be->name);
    return NULL;
  }
  return buffer_of(t);
}

void *aal_call_in(aal_call *c, const aal_tensor *t)
{
  return bind(c, t, "input");
}

/* t may also be an input of the call: the same buffer then serves both. */
void *aal_call_out(aal_call *c, aal_tensor *t)
{
  return bind(c, t, "output");
}

void *aal_call_inout(aal_call *c, aal_tensor *t)
{
  aal_call_in(c, t);
  return aal_call_out(c, t);
}

/* ---------------------------------------------------------------- the cache's life */

aal_ops_cache *aal_ops_cache_new(const aal_backend *be)
{
  aal_ops_cache *c = calloc(1, sizeof *c);
  if (c != NULL) {
    c->be = be;
    c->home.name = be->name;
    c->home.precision_bits = be->precision_bits;
    c->home.read = home_read;
    c->home.write = home_write;
    c->home.release = home_release;
  }
  return c;
}

/* t comes home: new host storage with its values (NaN if the copy fails), its buffer
 * back to the cache. */
static void bring_home(aal_ops_cache *c, aal_tensor *t)
{
  long shape[AAL_MAX_NDIM];
  for (int d = 0; d < t->ndim; d++)
    shape[d] = (long)t->shape[d];
  aal_error ignored;
  aal_tensor *h = aal_tensor_copy(t, &ignored);
  if (h == NULL && (h = t->dtype == AAL_F64 ? aal_tensor_new(t->ndim, shape, &ignored)
                                           : aal_tensor_new_bits(t->ndim, shape, &ignored)))
    aal_tensor_fill(h, NAN);
  home_release(&c->home, t);
  t->home = NULL;
  if (h != NULL) {  /* t takes h's storage; without memory it keeps none */
    t->data = h->data;
    t->bits = h->bits;
    h->data = NULL;
    h->bits = NULL;
    aal_tensor_release(h);
  }
}

void aal_ops_free(aal_ops *ops)
{
  if (ops == NULL || ops->cache == NULL)
    return;
  aal_ops_cache *c = ops->cache;
  while (c->live != NULL)
    bring_home(c, c->live->t);
  for (int i = 0; i < c->count; i++)
    ops->be->release(ops->be, c->buf[i]);
  free(ops->cache);
  ops->cache = NULL;
}

void aal_ops_poison_new(const aal_ops *ops, int on)
{
  if (ops != NULL && ops->cache != NULL)
    ops->cache->poison = on != 0;
}

aal_tensor *aal_ops_tensor_new(const aal_ops *ops, int ndim, const long *shape,
                               enum aal_dtype dtype, aal_error *err)
{
  ops = aal_ops_or_ref(ops);
  if (ops->cache == NULL)
    return dtype == AAL_BITS ? aal_tensor_new_bits(ndim, shape, err)
                             : aal_tensor_new(ndim, shape, err);
  return resident_new(ops->cache, ndim, shape, dtype, err);
}

aal_tensor *aal_ops_tensor_like(const aal_ops *ops, const aal_tensor *t, enum aal_dtype dtype,
                                aal_error *err)
{
  if (t == NULL) {
    aal_fail(err, AAL_EINVAL, "aal_ops_tensor_like: tensor is NULL");
    return NULL;
  }
  long shape[AAL_MAX_NDIM];
  for (int d = 0; d < t->ndim; d++)
    shape[d] = (long)t->shape[d];
  return aal_ops_tensor_new(ops, t->ndim, shape, dtype, err);
}

aal_tensor *aal_ops_tensor_to(const aal_ops *ops, const aal_tensor *t, aal_error *err)
{
  ops = aal_ops_or_ref(ops);
  if (t == NULL) {
    aal_fail(err, AAL_EINVAL, "aal_ops_tensor_to: tensor is NULL");
    return NULL;
  }
  const aal_tensor_home *here = ops->cache != NULL ? &ops->cache->home : NULL;
  if (t->home == here)
    return aal_tensor_retain((aal_tensor *)t);
  if (here == NULL)
    return aal_tensor_copy(t, err);  /* home to the host */
  /* the values pass through the host when t lives on another backend */
  aal_tensor *h = aal_tensor_host_view(t, err);
  aal_tensor *c = h != NULL ? aal_ops_tensor_like(ops, t, t->dtype, err) : NULL;
  if (c != NULL && aal_tensor_write(c, h, err) != AAL_OK) {
    aal_tensor_release(c);
    c = NULL;
  }
  aal_tensor_release(h);
  return c;
}

int aal_ops_move(const aal_ops *ops, aal_tensor **t, aal_error *err)
{
  aal_tensor *moved = aal_ops_tensor_to(ops, *t, err);
  if (moved == NULL)
    return err != NULL && err->code != AAL_OK ? err->code : AAL_ENOMEM;
  aal_tensor_release(*t);
  *t = moved;
  return AAL_OK;
}
