/* The residency runtime of the backend adapter (sim/ops/ops.h, "The residency
 * protocol"): the buffer cache, the mirrors that keep tensors in backend buffers
 * between ops, the fingerprints that catch a host write behind a mirror's back, the
 * poisoning of stale host copies, and the bookkeeping of one call (ops_internal.h). */
#include "sim/ops/ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

/* Buffers given back after a call or by a dropped mirror, kept for the next request of
 * the same size; the oldest is released when the cache is full.  At the end of a step
 * the tape gives back every activation at once (about 300 buffers for ResNet-18), and
 * the next step asks for the same sizes again: 512 slots keep a steady-state step free
 * of backend allocations (64 slots: ~55 alloc/free pairs per step, which on a GPU are
 * synchronising cudaMalloc/cudaFree calls). */
#define CACHE_SLOTS 512

typedef struct mirror mirror;

struct aal_ops_cache {
  const aal_backend *be;
  int poison;      /* fill a tensor's host storage with NaN when its mirror takes over */
  void *buf[CACHE_SLOTS];
  size_t n[CACHE_SLOTS];
  int bits[CACHE_SLOTS];
  int count;
  mirror *live;    /* every mirror this adapter holds (aal_ops_free brings them home) */
};

/* The adapter's mirror of a tensor: a backend buffer of t->size elements (or bits). */
struct mirror {
  aal_tensor_mirror pub;  /* first member: t->mirror points here */
  aal_ops_cache *cache;
  aal_tensor *t;
  size_t n;
  int bits;
  /* fingerprint of the host storage when it was last known to match (or, host stale,
   * when the mirror took over): a host write behind the adapter's back changes it */
  uint64_t host_print;
  mirror *prev, *next;
};

/* the print of a tensor without host storage (FNV never yields 0 here in practice; a
 * collision would only skip one check) */
#define DEFERRED_PRINT 0u

/* FNV-1a over 16 evenly spaced host elements (and the last): cheap enough for every
 * call, and any rewrite of a tensor (a new batch, a loaded checkpoint, a test's
 * assignment) changes it with near certainty. */
static uint64_t host_print(const aal_tensor *t)
{
  if (t->data == NULL && t->bits == NULL)
    return DEFERRED_PRINT;  /* no host storage: nothing to write behind anyone's back */
  const unsigned char *base = t->dtype == AAL_F64 ? (const unsigned char *)t->data
                                                  : (const unsigned char *)t->bits;
  const size_t unit = t->dtype == AAL_F64 ? sizeof(double) : sizeof(uint32_t);
  const size_t count = t->dtype == AAL_F64 ? t->size : aal_bit_words(t->size);
  uint64_t h = 1469598103934665603ull;
  for (int k = 0; k <= 16; k++) {
    const size_t i = k == 16 ? count - 1 : (size_t)k * count / 16;
    for (size_t b = 0; b < unit; b++)
      h = (h ^ base[i * unit + b]) * 1099511628211ull;
  }
  return h;
}

static int host_unchanged(const mirror *m, const char *op, aal_error *err)
{
  /* storage that did not exist when the print was taken (deferred, aal_ops_tensor_new)
   * has since been allocated zero-filled by the sync itself: nothing was written */
  if (m->host_print == DEFERRED_PRINT || host_print(m->t) == m->host_print)
    return AAL_OK;
  return aal_fail(err, AAL_EINVAL, "%s: a tensor was written on the host while backend %s "
                  "held a copy of it (aal_tensor_detach must come first)", op, m->cache->be->name);
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

/* host (F64 or BITS) -> buf */
static int upload_tensor(const aal_backend *be, const aal_tensor *t, void *buf, aal_error *err)
{
  if (t->dtype == AAL_F64)
    return be->upload(be, buf, t->data, t->size, err);
  return be->upload_bits(be, buf, t->bits, t->size, err);
}

/* buf -> host (F64 or BITS; t->size elements) */
static int download_tensor(const aal_backend *be, aal_tensor *t, const void *buf,
                           aal_error *err)
{
  if (t->dtype == AAL_F64)
    return be->download(be, t->data, buf, t->size, err);
  return be->download_bits(be, t->bits, buf, t->size, err);
}

static int mirror_pull(aal_tensor *t, aal_error *err)
{
  mirror *m = (mirror *)t->mirror;
  int rc = host_unchanged(m, "sync to host", err);
  if (rc == AAL_OK)
    rc = download_tensor(m->cache->be, t, m->pub.buf, err);
  if (rc == AAL_OK) {
    m->pub.host_stale = 0;
    m->host_print = host_print(t);
  }
  return rc;
}

static void mirror_drop(aal_tensor *t)
{
  mirror *m = (mirror *)t->mirror;
  if (m->prev != NULL)
    m->prev->next = m->next;
  else
    m->cache->live = m->next;
  if (m->next != NULL)
    m->next->prev = m->prev;
  give_back(m->cache, m->n, m->bits, m->pub.buf);
  free(m);
  t->mirror = NULL;
}

/* Gives t a mirror of this cache (a foreign one is first brought home and dropped);
 * with upload, the mirror receives the host values. */
static int mirror_attach(aal_ops_cache *c, aal_tensor *t, int upload, aal_error *err)
{
  if (t->mirror != NULL && t->mirror->owner == c)
    return AAL_OK;
  int rc = AAL_OK;
  if (t->mirror != NULL)
    rc = upload ? aal_tensor_detach(t, err) : aal_tensor_forget_mirror(t, err);
  if (rc != AAL_OK)
    return rc;
  mirror *m = calloc(1, sizeof *m);
  if (m == NULL)
    return aal_fail(err, AAL_ENOMEM, "ops %s: mirror of a tensor", c->be->name);
  m->bits = t->dtype == AAL_BITS;
  m->n = t->size;
  rc = acquire(c, m->n, m->bits, &m->pub.buf, err);
  if (rc == AAL_OK && upload)
    rc = upload_tensor(c->be, t, m->pub.buf, err);
  if (rc != AAL_OK) {
    give_back(c, m->n, m->bits, m->pub.buf);
    free(m);
    return rc;
  }
  m->host_print = host_print(t);
  m->pub.owner = c;
  m->pub.pull = mirror_pull;
  m->pub.drop = mirror_drop;
  m->cache = c;
  m->t = t;
  m->next = c->live;
  if (c->live != NULL)
    c->live->prev = m;
  c->live = m;
  t->mirror = &m->pub;
  return AAL_OK;
}


static void poison_host(aal_tensor *t)
{
  if (t->data == NULL && t->bits == NULL)
    return;
  if (t->dtype == AAL_F64)
    for (size_t i = 0; i < t->size; i++)
      t->data[i] = NAN;
  else
    memset(t->bits, 0xA5, aal_bit_words(t->size) * sizeof t->bits[0]);
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
  for (int i = 0; i < c->nout; i++) {
    aal_tensor *t = c->out[i];
    if (c->rc != AAL_OK || t->mirror == NULL) {
      aal_tensor_forget_mirror(t, NULL);
      continue;
    }
    t->mirror->host_stale = 1;
    if (c->ops->cache->poison)
      poison_host(t);
    ((mirror *)t->mirror)->host_print = host_print(t);
  }
  c->nout = 0;
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

void *aal_call_in(aal_call *c, const aal_tensor *t)
{
  if (c->rc != AAL_OK || t == NULL)
    return NULL;
  if (t->mirror != NULL && t->mirror->owner == c->ops->cache)
    c->rc = host_unchanged((const mirror *)t->mirror, c->op, c->err);
  if (c->rc == AAL_OK)
    c->rc = mirror_attach(c->ops->cache, (aal_tensor *)t, 1, c->err);
  return c->rc == AAL_OK ? t->mirror->buf : NULL;
}

/* t may also be an input of the call: the same buffer then serves both. */
void *aal_call_out(aal_call *c, aal_tensor *t)
{
  if (c->rc != AAL_OK || t == NULL)
    return NULL;
  if (c->nout == AAL_CALL_BUFS) {
    c->rc = aal_fail(c->err, AAL_EINVAL, "%s: too many outputs", c->op);
    return NULL;
  }
  c->rc = mirror_attach(c->ops->cache, t, 0, c->err);
  if (c->rc != AAL_OK)
    return NULL;
  c->out[c->nout++] = t;
  return t->mirror->buf;
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
  if (c != NULL)
    c->be = be;
  return c;
}

void aal_ops_free(aal_ops *ops)
{
  if (ops == NULL || ops->cache == NULL)
    return;
  aal_ops_cache *c = ops->cache;
  /* tensors outlive the table: each gets its current values back on the host (a
   * failed download leaves NaN there, never stale numbers) */
  while (c->live != NULL) {
    aal_tensor *t = c->live->t;
    aal_error ignored;
    if (aal_tensor_sync_host(t, &ignored) != AAL_OK)
      poison_host(t);
    if (aal_tensor_forget_mirror(t, &ignored) != AAL_OK)
      t->mirror->drop(t);  /* no host memory left: the tensor keeps NULL storage */
  }
  for (int i = 0; i < c->count; i++)
    ops->be->release(ops->be, c->buf[i]);
  free(ops->cache);
  ops->cache = NULL;
}

void aal_ops_poison_stale_host(const aal_ops *ops, int on)
{
  if (ops != NULL && ops->cache != NULL)
    ops->cache->poison = on != 0;
}

int aal_ops_sync_host(const aal_ops *ops, aal_error *err)
{
  if (ops == NULL || ops->cache == NULL)
    return AAL_OK;
  for (mirror *m = ops->cache->live; m != NULL; m = m->next) {
    int rc = aal_tensor_sync_host(m->t, err);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

/* NaN (bits: a fixed pattern) into t's backend buffer, through a temporary host copy:
 * t keeps its deferred host storage, as without poisoning, and reading an element no
 * op wrote shows up. */
static int poison_buffer(const aal_backend *be, aal_tensor *t, aal_error *err)
{
  const size_t words = aal_bit_words(t->size);
  void *tmp = t->dtype == AAL_F64 ? malloc(t->size * sizeof(double))
                                  : malloc(words * sizeof(uint32_t));
  if (tmp == NULL)
    return aal_fail(err, AAL_ENOMEM, "ops %s: poison of %zu elements", be->name, t->size);
  int rc;
  if (t->dtype == AAL_F64) {
    double *d = tmp;
    for (size_t i = 0; i < t->size; i++)
      d[i] = NAN;
    rc = be->upload(be, t->mirror->buf, d, t->size, err);
  } else {
    memset(tmp, 0xA5, words * sizeof(uint32_t));
    rc = be->upload_bits(be, t->mirror->buf, tmp, t->size, err);
  }
  free(tmp);
  return rc;
}

aal_tensor *aal_ops_tensor_new(const aal_ops *ops, int ndim, const long *shape,
                               enum aal_dtype dtype, aal_error *err)
{
  ops = aal_ops_or_ref(ops);
  if (ops->cache == NULL)
    return dtype == AAL_BITS ? aal_tensor_new_bits(ndim, shape, err)
                             : aal_tensor_new(ndim, shape, err);
  aal_tensor *t = aal_tensor_new_deferred(ndim, shape, dtype, err);
  if (t == NULL)
    return NULL;
  int rc = mirror_attach(ops->cache, t, 0, err);
  if (rc == AAL_OK)
    t->mirror->host_stale = 1;  /* the mirror is the copy; no host storage yet */
  if (rc == AAL_OK && ops->cache->poison)
    rc = poison_buffer(ops->cache->be, t, err);
  if (rc != AAL_OK) {
    aal_tensor_release(t);
    return NULL;
  }
  return t;
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
