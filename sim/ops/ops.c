/* The model's op table (sim/ops/ops.h): the reference table, and the adapter that runs
 * each op on a backend of kernels/backend.h through upload / op / download. */
#include "sim/ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "sim/layers/conv.h"
#include "sim/layers/layers.h"
#include "sim/layers/conv_check.h"
#include "sim/layers/li.h"

/* ================================================================ the reference */

static int ref_conv_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                            int stride, int pad, aal_tensor *y, aal_error *err)
{
  (void)ops;
  return aal_conv2d_forward(x, w, stride, pad, y, err);
}

static int ref_conv_backward_data(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *w,
                                  int stride, int pad, aal_tensor *dx, aal_error *err)
{
  (void)ops;
  return aal_conv2d_backward_data(dy, w, stride, pad, dx, err);
}

static int ref_conv_backward_filter(const aal_ops *ops, const aal_tensor *x,
                                    const aal_tensor *dy, int stride, int pad, aal_tensor *dw,
                                    aal_error *err)
{
  (void)ops;
  return aal_conv2d_backward_filter(x, dy, stride, pad, dw, err);
}

static int ref_bn_forward_train(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                                const aal_tensor *beta, aal_tensor *running_mean,
                                aal_tensor *running_var, double momentum, double eps,
                                aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                                aal_error *err)
{
  (void)ops;
  return aal_bn2d_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps, y,
                                mean, invstd, err);
}

static int ref_bn_forward_eval(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                               const aal_tensor *beta, const aal_tensor *running_mean,
                               const aal_tensor *running_var, double eps, aal_tensor *y,
                               aal_error *err)
{
  (void)ops;
  return aal_bn2d_forward_eval(x, gamma, beta, running_mean, running_var, eps, y, err);
}

static int ref_bn_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                           const aal_tensor *gamma, const aal_tensor *mean,
                           const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                           aal_tensor *dbeta, aal_error *err)
{
  (void)ops;
  return aal_bn2d_backward(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
}

static int ref_relu_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                            aal_tensor *mask, aal_error *err)
{
  (void)ops;
  return aal_relu_forward(x, y, mask, err);
}

static int ref_relu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                             aal_tensor *dx, aal_error *err)
{
  (void)ops;
  return aal_relu_backward(dy, mask, dx, err);
}

static int ref_add_forward(const aal_ops *ops, const aal_tensor *a, const aal_tensor *b,
                           aal_tensor *y, aal_error *err)
{
  (void)ops;
  return aal_add_forward(a, b, y, err);
}

static int ref_avgpool_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                               aal_error *err)
{
  (void)ops;
  return aal_avgpool_forward(x, y, err);
}

static int ref_avgpool_backward(const aal_ops *ops, const aal_tensor *dy, aal_tensor *dx,
                                aal_error *err)
{
  (void)ops;
  return aal_avgpool_backward(dy, dx, err);
}

static int ref_linear_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                              const aal_tensor *b, aal_tensor *y, aal_error *err)
{
  (void)ops;
  return aal_linear_forward(x, w, b, y, err);
}

static int ref_linear_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                               const aal_tensor *w, aal_tensor *dx, aal_tensor *dw,
                               aal_tensor *db, aal_error *err)
{
  (void)ops;
  return aal_linear_backward(dy, x, w, dx, dw, db, err);
}

static int ref_xent_forward(const aal_ops *ops, const aal_tensor *logits, const int *labels,
                            double *loss, aal_tensor *prob, aal_error *err)
{
  (void)ops;
  return aal_xent_forward(logits, labels, loss, prob, err);
}

static int ref_xent_backward(const aal_ops *ops, const aal_tensor *prob, const int *labels,
                             aal_tensor *dlogits, aal_error *err)
{
  (void)ops;
  return aal_xent_backward(prob, labels, dlogits, err);
}

static int ref_sgd_update(const aal_ops *ops, aal_tensor *w, const aal_tensor *g,
                          aal_tensor *buf, double lr, double momentum, double weight_decay,
                          int first, aal_error *err)
{
  (void)ops;
  return aal_sgd_update(w, g, buf, lr, momentum, weight_decay, first, err);
}

static int ref_asa_input(const aal_ops *ops, const aal_tensor *x, double eps, aal_tensor *h,
                         aal_tensor *bits, aal_error *err)
{
  (void)ops;
  return aal_asa_input(x, eps, h, bits, err);
}

static int ref_asa_decode(const aal_ops *ops, const aal_tensor *bits, double eps,
                          aal_tensor *out, aal_error *err)
{
  (void)ops;
  return aal_asa_decode(bits, eps, out, err);
}

static int ref_bn_relu_forward_train(const aal_ops *ops, const aal_tensor *x,
                                     const aal_tensor *gamma, const aal_tensor *beta,
                                     aal_tensor *running_mean, aal_tensor *running_var,
                                     double momentum, double eps, aal_tensor *y,
                                     aal_tensor *mask, aal_tensor *mean, aal_tensor *invstd,
                                     aal_error *err)
{
  (void)ops;
  aal_tensor *z = aal_tensor_new_like(x, err);
  int rc = z ? aal_bn2d_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps,
                                      z, mean, invstd, err)
             : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_relu_forward(z, y, mask, err);
  aal_tensor_release(z);
  return rc;
}

static int ref_bn_relu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                                const aal_tensor *x, const aal_tensor *gamma,
                                const aal_tensor *mean, const aal_tensor *invstd,
                                aal_tensor *dx, aal_tensor *dgamma, aal_tensor *dbeta,
                                aal_error *err)
{
  (void)ops;
  aal_tensor *dz = aal_tensor_new_like(x, err);
  int rc = dz ? aal_relu_backward(dy, mask, dz, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_bn2d_backward(dz, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
  aal_tensor_release(dz);
  return rc;
}

static int li_check(const char *op, const aal_tensor *h, const aal_tensor *r, aal_error *err)
{
  if (h == NULL || r == NULL || h->dtype != AAL_F64 || r->dtype != AAL_F64)
    return aal_fail(err, AAL_EINVAL, "%s: h and r must be value tensors", op);
  if (!aal_tensor_same_shape(h, r))
    return aal_tensor_require_same(h, r, "h", "r", err);
  return AAL_OK;
}

static int ref_li_reduce(const aal_ops *ops, const aal_tensor *h, const aal_tensor *r,
                         double *li, unsigned char *valid, size_t *zero_norm, aal_error *err)
{
  (void)ops;
  int rc = li_check("ref li_reduce", h, r, err);
  /* h and r may be another table's outputs */
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(h, err);
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(r, err);
  if (rc != AAL_OK)
    return rc;
  return aal_li_batch(h->data, r->data, h->shape[0], h->size / h->shape[0], li, valid,
                      zero_norm, err);
}

static int ref_scale(const aal_ops *ops, aal_tensor *t, double s, aal_error *err)
{
  (void)ops;
  int rc = aal_tensor_require(t, t != NULL ? t->ndim : 1, AAL_F64, "ref scale: t", err);
  for (size_t i = 0; rc == AAL_OK && i < t->size; i++)
    t->data[i] *= s;
  return rc;
}

static const aal_ops ref_table = {
    "ref", 53, NULL, NULL,
    ref_conv_forward, ref_conv_backward_data, ref_conv_backward_filter,
    ref_bn_forward_train, ref_bn_forward_eval, ref_bn_backward,
    ref_relu_forward, ref_relu_backward, ref_add_forward,
    ref_avgpool_forward, ref_avgpool_backward, ref_linear_forward, ref_linear_backward,
    ref_xent_forward, ref_xent_backward, ref_sgd_update, ref_asa_input,
    ref_bn_relu_forward_train, ref_bn_relu_backward, ref_li_reduce, ref_scale,
    ref_asa_decode};

const aal_ops *aal_ops_ref(void)
{
  return &ref_table;
}

const aal_ops *aal_ops_or_ref(const aal_ops *ops)
{
  return ops != NULL ? ops : &ref_table;
}

/* ================================================================ the adapter */

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

/* The buffers and outputs of one call: scratch buffers are given back at its end;
 * outputs become the current copy (host stale) if the call succeeded, and lose their
 * mirror if it failed (a half-written buffer must never be read as current). */
#define CALL_BUFS 12

typedef struct {
  const aal_ops *ops;
  const char *op;
  void *buf[CALL_BUFS];
  size_t n[CALL_BUFS];
  int bits[CALL_BUFS];
  int count;
  aal_tensor *out[CALL_BUFS];
  int nout;
} call;

static void call_begin(call *c, const aal_ops *ops, const char *op)
{
  memset(c, 0, sizeof *c);
  c->ops = ops;
  c->op = op;
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

static int call_end(call *c, int rc)
{
  for (int i = 0; i < c->count; i++)
    give_back(c->ops->cache, c->n[i], c->bits[i], c->buf[i]);
  c->count = 0;
  for (int i = 0; i < c->nout; i++) {
    aal_tensor *t = c->out[i];
    if (rc != AAL_OK || t->mirror == NULL) {
      aal_tensor_forget_mirror(t, NULL);
      continue;
    }
    t->mirror->host_stale = 1;
    if (c->ops->cache->poison)
      poison_host(t);
    ((mirror *)t->mirror)->host_print = host_print(t);
  }
  c->nout = 0;
  return rc;
}

/* A scratch buffer of n elements (bits: n bits), contents undefined. */
static int call_buffer(call *c, size_t n, int bits, void **buf, aal_error *err)
{
  if (c->count == CALL_BUFS)
    return aal_fail(err, AAL_EINVAL, "ops %s %s: too many buffers", c->ops->name, c->op);
  int rc = acquire(c->ops->cache, n, bits, buf, err);
  if (rc != AAL_OK)
    return rc;
  c->buf[c->count] = *buf;
  c->n[c->count] = n;
  c->bits[c->count] = bits;
  c->count++;
  return AAL_OK;
}

/* The backend copy of input t: its mirror, made (uploaded) on first use. */
static int call_in(call *c, const aal_tensor *t, void **buf, aal_error *err)
{
  int rc = AAL_OK;
  if (t->mirror != NULL && t->mirror->owner == c->ops->cache)
    rc = host_unchanged((const mirror *)t->mirror, c->op, err);
  if (rc == AAL_OK)
    rc = mirror_attach(c->ops->cache, (aal_tensor *)t, 1, err);
  *buf = rc == AAL_OK ? t->mirror->buf : NULL;
  return rc;
}

/* The buffer output t is written into: its mirror (t may also be an input of the call:
 * the same buffer then serves both). */
static int call_out(call *c, aal_tensor *t, void **buf, aal_error *err)
{
  if (c->nout == CALL_BUFS)
    return aal_fail(err, AAL_EINVAL, "ops %s %s: too many outputs", c->ops->name, c->op);
  int rc = mirror_attach(c->ops->cache, t, 0, err);
  *buf = rc == AAL_OK ? t->mirror->buf : NULL;
  if (rc == AAL_OK)
    c->out[c->nout++] = t;
  return rc;
}

/* ---------------------------------------------------------------- argument checks */

static int need(const aal_tensor *t, int ndim, enum aal_dtype dtype, const char *op,
                const char *name, aal_error *err)
{
  char what[96];
  snprintf(what, sizeof what, "%s: %s", op, name);
  return aal_tensor_require(t, ndim, dtype, what, err);
}

/* t has exactly the given shape. */
static int need_shape(const aal_tensor *t, int ndim, const size_t *shape, const char *op,
                      const char *name, aal_error *err)
{
  int rc = need(t, ndim, t != NULL ? t->dtype : AAL_F64, op, name, err);
  if (rc != AAL_OK)
    return rc;
  for (int d = 0; d < ndim; d++)
    if (t->shape[d] != shape[d]) {
      char s[64];
      aal_tensor_shape_str(t, s, sizeof s);
      return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s (dimension %d should be %zu)",
                      op, name, s, d, shape[d]);
    }
  return AAL_OK;
}

static int need_vec(const aal_tensor *t, size_t n, const char *op, const char *name,
                    aal_error *err)
{
  int rc = need(t, 1, AAL_F64, op, name, err);
  if (rc == AAL_OK && t->size != n)
    rc = aal_fail(err, AAL_ESHAPE, "%s: %s has %zu elements, expected %zu", op, name, t->size,
                  n);
  return rc;
}

static int need_int(size_t v, const char *op, const char *what, aal_error *err)
{
  if (v > (size_t)2147483647)
    return aal_fail(err, AAL_EINVAL, "%s: %s %zu does not fit an int", op, what, v);
  return AAL_OK;
}

static int fill_conv(const aal_tensor *act, const aal_tensor *wt, int stride, int pad,
                     aal_conv_shape *cs, const char *op, aal_error *err)
{
  int rc = AAL_OK;
  for (int d = 0; d < 4 && rc == AAL_OK; d++)
    rc = need_int(act->shape[d], op, "size", err) == AAL_OK
             ? need_int(wt->shape[d], op, "size", err)
             : AAL_EINVAL;
  if (rc != AAL_OK)
    return rc;
  cs->n = (int)act->shape[0];
  cs->c = (int)act->shape[1];
  cs->h = (int)act->shape[2];
  cs->w = (int)act->shape[3];
  cs->k = (int)wt->shape[0];
  cs->r = (int)wt->shape[2];
  cs->s = (int)wt->shape[3];
  cs->stride = stride;
  cs->pad = pad;
  return aal_conv_shape_init(cs, err);
}

/* ---------------------------------------------------------------- conv */

#define OPNAME(ops, op, buf) snprintf(buf, sizeof buf, "ops %s %s", (ops)->name, op)

static int ad_conv_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                           int stride, int pad, aal_tensor *y, aal_error *err)
{
  char op[64];
  OPNAME(ops, "conv_forward", op);
  aal_conv2d_dims d;
  aal_conv_shape cs;
  int rc = aal_conv2d_check_forward(op, x, w, stride, pad, y, &d, err);
  if (rc == AAL_OK)
    rc = fill_conv(x, w, stride, pad, &cs, op, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *bw, *by;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, w, &bw, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  if (rc == AAL_OK)
    rc = ops->be->conv_forward(ops->be, &cs, bx, bw, by, err);
  return call_end(&c, rc);
}

static int ad_conv_backward_data(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *w,
                                 int stride, int pad, aal_tensor *dx, aal_error *err)
{
  char op[64];
  OPNAME(ops, "conv_backward_data", op);
  aal_conv2d_dims d;
  aal_conv_shape cs;
  int rc = aal_conv2d_check_backward_data(op, dy, w, stride, pad, dx, &d, err);
  if (rc == AAL_OK)
    rc = fill_conv(dx, w, stride, pad, &cs, op, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bdy, *bw, *bdx;
  call_begin(&c, ops, op);
  rc = call_in(&c, dy, &bdy, err);
  if (rc == AAL_OK)
    rc = call_in(&c, w, &bw, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dx, &bdx, err);
  if (rc == AAL_OK)
    rc = ops->be->conv_backward_data(ops->be, &cs, bdy, bw, bdx, err);
  return call_end(&c, rc);
}

static int ad_conv_backward_filter(const aal_ops *ops, const aal_tensor *x,
                                   const aal_tensor *dy, int stride, int pad, aal_tensor *dw,
                                   aal_error *err)
{
  char op[64];
  OPNAME(ops, "conv_backward_filter", op);
  aal_conv2d_dims d;
  aal_conv_shape cs;
  int rc = aal_conv2d_check_backward_filter(op, x, dy, stride, pad, dw, &d, err);
  if (rc == AAL_OK)
    rc = fill_conv(x, dw, stride, pad, &cs, op, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *bdy, *bdw;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, dy, &bdy, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dw, &bdw, err);
  if (rc == AAL_OK)
    rc = ops->be->conv_backward_filter(ops->be, &cs, bx, bdy, bdw, err);
  return call_end(&c, rc);
}

/* ---------------------------------------------------------------- batch norm */

static int bn_dims(const aal_tensor *x, const char *op, int *n, int *ch, int *hw,
                   aal_error *err)
{
  int rc = need(x, 4, AAL_F64, op, "x", err);
  if (rc == AAL_OK)
    rc = need_int(x->shape[0] * x->shape[2] * x->shape[3], op, "N*H*W", err);
  if (rc == AAL_OK)
    rc = need_int(x->shape[1], op, "channels", err);
  if (rc != AAL_OK)
    return rc;
  *n = (int)x->shape[0];
  *ch = (int)x->shape[1];
  *hw = (int)(x->shape[2] * x->shape[3]);
  return AAL_OK;
}

static int same_size(const aal_tensor *a, const aal_tensor *b, enum aal_dtype bt,
                     const char *op, const char *na, const char *nb, aal_error *err);

/* bn_forward_train, and with mask non-NULL bn_relu_forward_train */
static int bn_train(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                    const aal_tensor *beta, aal_tensor *running_mean, aal_tensor *running_var,
                    double momentum, double eps, aal_tensor *y, aal_tensor *mask,
                    aal_tensor *mean, aal_tensor *invstd, aal_error *err)
{
  char op[64];
  OPNAME(ops, mask ? "bn_relu_forward_train" : "bn_forward_train", op);
  int n = 0, ch = 0, hw = 0;
  int rc = bn_dims(x, op, &n, &ch, &hw, err);
  const size_t C = (size_t)ch;
  if (rc == AAL_OK)
    rc = need_shape(y, 4, x->shape, op, "y", err);
  if (rc == AAL_OK && mask != NULL)
    rc = same_size(x, mask, AAL_BITS, op, "x", "mask", err);
  const aal_tensor *vecs[] = {gamma, beta, running_mean, running_var, mean, invstd};
  const char *names[] = {"gamma", "beta", "running_mean", "running_var", "mean", "invstd"};
  for (int i = 0; i < 6 && rc == AAL_OK; i++)
    rc = need_vec(vecs[i], C, op, names[i], err);
  if (rc != AAL_OK)
    return rc;
  const double m_count = (double)n * (double)hw;
  if (m_count < 2)
    return aal_fail(err, AAL_EINVAL, "%s: one value per channel; training mode needs at "
                    "least 2", op);
  if (!(momentum >= 0.0 && momentum <= 1.0) || !(eps > 0.0 && isfinite(eps)))
    return aal_fail(err, AAL_EINVAL, "%s: momentum %g must lie in [0, 1] and eps %g be > 0",
                    op, momentum, eps);
  call c;
  void *bx, *bg, *bb, *by, *bm, *bi;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, gamma, &bg, err);
  if (rc == AAL_OK)
    rc = call_in(&c, beta, &bb, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  if (rc == AAL_OK)
    rc = call_out(&c, mean, &bm, err);
  if (rc == AAL_OK)
    rc = call_out(&c, invstd, &bi, err);
  void *bmask = NULL;
  if (rc == AAL_OK && mask != NULL)
    rc = call_out(&c, mask, &bmask, err);
  if (rc == AAL_OK && mask != NULL)
    rc = ops->be->bn_relu_forward(ops->be, n, ch, hw, bx, bg, bb, eps, by, bmask, bm, bi, err);
  else if (rc == AAL_OK)
    rc = ops->be->bn_forward(ops->be, n, ch, hw, bx, bg, bb, eps, by, bm, bi, err);
  rc = call_end(&c, rc);
  /* the per-channel statistics come home for the running averages (C values) */
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(mean, err);
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(invstd, err);
  if (rc == AAL_OK)
    rc = aal_tensor_detach(running_mean, err);
  if (rc == AAL_OK)
    rc = aal_tensor_detach(running_var, err);
  for (size_t k = 0; rc == AAL_OK && k < C; k++)
    if (!isfinite(mean->data[k]) || !(invstd->data[k] > 0) || !isfinite(invstd->data[k]))
      rc = aal_fail(err, AAL_ENUMERIC, "%s: channel %zu has mean %g, invstd %g", op, k,
                    mean->data[k], invstd->data[k]);
  if (rc != AAL_OK)
    return rc;
  /* running statistics as sim/layers/batchnorm.c: the batch variance recovered from invstd
   * (clamped at 0: for a variance far below eps the subtraction may round below it) */
  for (size_t k = 0; k < C; k++) {
    double var = 1.0 / (invstd->data[k] * invstd->data[k]) - eps;
    if (var < 0)
      var = 0;
    const double unbiased = var * (m_count / (m_count - 1.0));
    double *rm = &running_mean->data[k], *rv = &running_var->data[k];
    *rm = (1.0 - momentum) * *rm + momentum * mean->data[k];
    *rv = (1.0 - momentum) * *rv + momentum * unbiased;
  }
  return AAL_OK;
}

static int ad_bn_forward_train(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                               const aal_tensor *beta, aal_tensor *running_mean,
                               aal_tensor *running_var, double momentum, double eps,
                               aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                               aal_error *err)
{
  return bn_train(ops, x, gamma, beta, running_mean, running_var, momentum, eps, y, NULL, mean,
                  invstd, err);
}

static int ad_bn_relu_forward_train(const aal_ops *ops, const aal_tensor *x,
                                    const aal_tensor *gamma, const aal_tensor *beta,
                                    aal_tensor *running_mean, aal_tensor *running_var,
                                    double momentum, double eps, aal_tensor *y,
                                    aal_tensor *mask, aal_tensor *mean, aal_tensor *invstd,
                                    aal_error *err)
{
  if (mask == NULL)
    return aal_fail(err, AAL_EINVAL, "ops %s bn_relu_forward_train: mask is NULL", ops->name);
  return bn_train(ops, x, gamma, beta, running_mean, running_var, momentum, eps, y, mask, mean,
                  invstd, err);
}

/* Evaluation mode on the backend, from the running statistics; these are checked on the
 * host first (they live there: the adapter updates them after each training step), as
 * the reference checks them. */
static int ad_bn_forward_eval(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                              const aal_tensor *beta, const aal_tensor *running_mean,
                              const aal_tensor *running_var, double eps, aal_tensor *y,
                              aal_error *err)
{
  char op[64];
  OPNAME(ops, "bn_forward_eval", op);
  int n = 0, ch = 0, hw = 0;
  int rc = bn_dims(x, op, &n, &ch, &hw, err);
  const size_t C = (size_t)ch;
  if (rc == AAL_OK)
    rc = need_shape(y, 4, x->shape, op, "y", err);
  const aal_tensor *vecs[] = {gamma, beta, running_mean, running_var};
  const char *names[] = {"gamma", "beta", "running_mean", "running_var"};
  for (int i = 0; i < 4 && rc == AAL_OK; i++)
    rc = need_vec(vecs[i], C, op, names[i], err);
  if (rc == AAL_OK && !(eps > 0.0 && isfinite(eps)))
    rc = aal_fail(err, AAL_EINVAL, "%s: eps %g must be finite and > 0", op, eps);
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(running_mean, err);
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(running_var, err);
  for (size_t k = 0; rc == AAL_OK && k < C; k++) {
    const double rm = running_mean->data[k], rv = running_var->data[k];
    if (!isfinite(rm) || !isfinite(rv))
      rc = aal_fail(err, AAL_ENUMERIC, "%s: channel %zu has non-finite running_mean %g or "
                    "running_var %g", op, k, rm, rv);
    else if (rv < 0.0)
      rc = aal_fail(err, AAL_EINVAL, "%s: channel %zu has negative running_var %g", op, k, rv);
  }
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *bg, *bb, *bm, *bv, *by;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, gamma, &bg, err);
  if (rc == AAL_OK)
    rc = call_in(&c, beta, &bb, err);
  if (rc == AAL_OK)
    rc = call_in(&c, running_mean, &bm, err);
  if (rc == AAL_OK)
    rc = call_in(&c, running_var, &bv, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  if (rc == AAL_OK)
    rc = ops->be->bn_forward_eval(ops->be, n, ch, hw, bx, bg, bb, bm, bv, eps, by, err);
  return call_end(&c, rc);
}

/* bn_backward, and with mask non-NULL bn_relu_backward */
static int bn_back(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                   const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *mean,
                   const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                   aal_tensor *dbeta, aal_error *err)
{
  char op[64];
  OPNAME(ops, mask ? "bn_relu_backward" : "bn_backward", op);
  int n = 0, ch = 0, hw = 0;
  int rc = bn_dims(x, op, &n, &ch, &hw, err);
  const size_t C = (size_t)ch;
  if (rc == AAL_OK)
    rc = need_shape(dy, 4, x->shape, op, "dy", err);
  if (rc == AAL_OK)
    rc = need_shape(dx, 4, x->shape, op, "dx", err);
  if (rc == AAL_OK && mask != NULL)
    rc = same_size(x, mask, AAL_BITS, op, "x", "mask", err);
  const aal_tensor *vecs[] = {gamma, mean, invstd, dgamma, dbeta};
  const char *names[] = {"gamma", "mean", "invstd", "dgamma", "dbeta"};
  for (int i = 0; i < 5 && rc == AAL_OK; i++)
    rc = need_vec(vecs[i], C, op, names[i], err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bdy, *bx, *bg, *bm, *bi, *bdx, *bdg, *bdb;
  call_begin(&c, ops, op);
  rc = call_in(&c, dy, &bdy, err);
  if (rc == AAL_OK)
    rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, gamma, &bg, err);
  if (rc == AAL_OK)
    rc = call_in(&c, mean, &bm, err);
  if (rc == AAL_OK)
    rc = call_in(&c, invstd, &bi, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dx, &bdx, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dgamma, &bdg, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dbeta, &bdb, err);
  void *bmask = NULL;
  if (rc == AAL_OK && mask != NULL)
    rc = call_in(&c, mask, &bmask, err);
  if (rc == AAL_OK && mask != NULL)
    rc = ops->be->bn_relu_backward(ops->be, n, ch, hw, bdy, bmask, bx, bg, bm, bi, bdx, bdg,
                                   bdb, err);
  else if (rc == AAL_OK)
    rc = ops->be->bn_backward(ops->be, n, ch, hw, bdy, bx, bg, bm, bi, bdx, bdg, bdb, err);
  return call_end(&c, rc);
}

static int ad_bn_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                          const aal_tensor *gamma, const aal_tensor *mean,
                          const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                          aal_tensor *dbeta, aal_error *err)
{
  return bn_back(ops, dy, NULL, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
}

static int ad_bn_relu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                               const aal_tensor *x, const aal_tensor *gamma,
                               const aal_tensor *mean, const aal_tensor *invstd, aal_tensor *dx,
                               aal_tensor *dgamma, aal_tensor *dbeta, aal_error *err)
{
  if (mask == NULL)
    return aal_fail(err, AAL_EINVAL, "ops %s bn_relu_backward: mask is NULL", ops->name);
  return bn_back(ops, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
}

/* ---------------------------------------------------------------- relu, add, pool */

static int same_size(const aal_tensor *a, const aal_tensor *b, enum aal_dtype bt,
                     const char *op, const char *na, const char *nb, aal_error *err)
{
  if (a == NULL || b == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: %s is NULL", op, a == NULL ? na : nb);
  if (a->dtype != AAL_F64 || b->dtype != bt)
    return aal_fail(err, AAL_EINVAL, "%s: %s or %s has the wrong type", op, na, nb);
  if (!aal_tensor_same_shape(a, b))
    return aal_tensor_require_same(a, b, na, nb, err);
  return AAL_OK;
}

static int ad_relu_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                           aal_tensor *mask, aal_error *err)
{
  char op[64];
  OPNAME(ops, "relu_forward", op);
  int rc = same_size(x, y, AAL_F64, op, "x", "y", err);
  if (rc == AAL_OK && mask != NULL)
    rc = same_size(x, mask, AAL_BITS, op, "x", "mask", err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *by, *bm;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  /* no mask wanted (evaluation): a scratch one */
  if (rc == AAL_OK && mask != NULL)
    rc = call_out(&c, mask, &bm, err);
  else if (rc == AAL_OK)
    rc = call_buffer(&c, x->size, 1, &bm, err);
  if (rc == AAL_OK)
    rc = ops->be->relu_forward(ops->be, x->size, bx, by, bm, err);
  return call_end(&c, rc);
}

static int ad_relu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                            aal_tensor *dx, aal_error *err)
{
  char op[64];
  OPNAME(ops, "relu_backward", op);
  int rc = same_size(dy, dx, AAL_F64, op, "dy", "dx", err);
  if (rc == AAL_OK)
    rc = same_size(dy, mask, AAL_BITS, op, "dy", "mask", err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bdy, *bm, *bdx;
  call_begin(&c, ops, op);
  rc = call_in(&c, dy, &bdy, err);
  if (rc == AAL_OK)
    rc = call_in(&c, mask, &bm, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dx, &bdx, err);
  if (rc == AAL_OK)
    rc = ops->be->relu_backward(ops->be, dy->size, bdy, bm, bdx, err);
  return call_end(&c, rc);
}

static int ad_add_forward(const aal_ops *ops, const aal_tensor *a, const aal_tensor *b,
                          aal_tensor *y, aal_error *err)
{
  char op[64];
  OPNAME(ops, "add", op);
  int rc = same_size(a, b, AAL_F64, op, "a", "b", err);
  if (rc == AAL_OK)
    rc = same_size(a, y, AAL_F64, op, "a", "y", err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *ba, *bb, *by;
  call_begin(&c, ops, op);
  rc = call_in(&c, a, &ba, err);
  if (rc == AAL_OK)
    rc = call_in(&c, b, &bb, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  if (rc == AAL_OK)
    rc = ops->be->add(ops->be, a->size, ba, bb, by, err);
  return call_end(&c, rc);
}

static int pool_dims(const aal_tensor *x4, const aal_tensor *y2, const char *op,
                     const char *n4, const char *n2, int *rows, int *hw, aal_error *err)
{
  int rc = need(x4, 4, AAL_F64, op, n4, err);
  if (rc == AAL_OK) {
    const size_t shape[2] = {x4->shape[0], x4->shape[1]};
    rc = need_shape(y2, 2, shape, op, n2, err);
  }
  if (rc == AAL_OK)
    rc = need_int(x4->shape[0] * x4->shape[1], op, "rows", err);
  if (rc == AAL_OK)
    rc = need_int(x4->shape[2] * x4->shape[3], op, "H*W", err);
  if (rc == AAL_OK && y2->dtype != AAL_F64)
    rc = aal_fail(err, AAL_EINVAL, "%s: %s has the wrong type", op, n2);
  if (rc != AAL_OK)
    return rc;
  *rows = (int)(x4->shape[0] * x4->shape[1]);
  *hw = (int)(x4->shape[2] * x4->shape[3]);
  return AAL_OK;
}

static int ad_avgpool_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                              aal_error *err)
{
  char op[64];
  OPNAME(ops, "avgpool_forward", op);
  int rows = 0, hw = 0;
  int rc = pool_dims(x, y, op, "x", "y", &rows, &hw, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *by;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  if (rc == AAL_OK)
    rc = ops->be->avgpool_forward(ops->be, rows, hw, bx, by, err);
  return call_end(&c, rc);
}

static int ad_avgpool_backward(const aal_ops *ops, const aal_tensor *dy, aal_tensor *dx,
                               aal_error *err)
{
  char op[64];
  OPNAME(ops, "avgpool_backward", op);
  int rows = 0, hw = 0;
  int rc = pool_dims(dx, dy, op, "dx", "dy", &rows, &hw, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bdy, *bdx;
  call_begin(&c, ops, op);
  rc = call_in(&c, dy, &bdy, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dx, &bdx, err);
  if (rc == AAL_OK)
    rc = ops->be->avgpool_backward(ops->be, rows, hw, bdy, bdx, err);
  return call_end(&c, rc);
}

/* ---------------------------------------------------------------- linear, xent */

static int linear_dims(const aal_tensor *x, const aal_tensor *w, const char *op, int *n,
                       int *in, int *out, aal_error *err)
{
  int rc = need(x, 2, AAL_F64, op, "x", err);
  if (rc == AAL_OK)
    rc = need(w, 2, AAL_F64, op, "w", err);
  if (rc == AAL_OK && w->shape[1] != x->shape[1])
    rc = aal_fail(err, AAL_ESHAPE, "%s: x has %zu features, w expects %zu", op, x->shape[1],
                  w->shape[1]);
  if (rc == AAL_OK)
    rc = need_int(x->size > w->size ? x->size : w->size, op, "size", err);
  if (rc != AAL_OK)
    return rc;
  *n = (int)x->shape[0];
  *in = (int)x->shape[1];
  *out = (int)w->shape[0];
  return AAL_OK;
}

static int ad_linear_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                             const aal_tensor *b, aal_tensor *y, aal_error *err)
{
  char op[64];
  OPNAME(ops, "linear_forward", op);
  int n = 0, in = 0, out = 0;
  int rc = linear_dims(x, w, op, &n, &in, &out, err);
  if (rc == AAL_OK)
    rc = need_vec(b, (size_t)out, op, "b", err);
  if (rc == AAL_OK) {
    const size_t shape[2] = {(size_t)n, (size_t)out};
    rc = need_shape(y, 2, shape, op, "y", err);
  }
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *bw, *bb, *by;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, w, &bw, err);
  if (rc == AAL_OK)
    rc = call_in(&c, b, &bb, err);
  if (rc == AAL_OK)
    rc = call_out(&c, y, &by, err);
  if (rc == AAL_OK)
    rc = ops->be->linear_forward(ops->be, n, in, out, bx, bw, bb, by, err);
  return call_end(&c, rc);
}

static int ad_linear_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                              const aal_tensor *w, aal_tensor *dx, aal_tensor *dw,
                              aal_tensor *db, aal_error *err)
{
  char op[64];
  OPNAME(ops, "linear_backward", op);
  int n = 0, in = 0, out = 0;
  int rc = linear_dims(x, w, op, &n, &in, &out, err);
  const size_t sdy[2] = {(size_t)n, (size_t)out};
  if (rc == AAL_OK)
    rc = need_shape(dy, 2, sdy, op, "dy", err);
  if (rc == AAL_OK && dx != NULL)
    rc = need_shape(dx, 2, x->shape, op, "dx", err);
  if (rc == AAL_OK)
    rc = need_shape(dw, 2, w->shape, op, "dw", err);
  if (rc == AAL_OK)
    rc = need_vec(db, (size_t)out, op, "db", err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bdy, *bx, *bw, *bdx = NULL, *bdw, *bdb;
  call_begin(&c, ops, op);
  rc = call_in(&c, dy, &bdy, err);
  if (rc == AAL_OK)
    rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_in(&c, w, &bw, err);
  if (rc == AAL_OK && dx != NULL)
    rc = call_out(&c, dx, &bdx, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dw, &bdw, err);
  if (rc == AAL_OK)
    rc = call_out(&c, db, &bdb, err);
  if (rc == AAL_OK)
    rc = ops->be->linear_backward(ops->be, n, in, out, bdy, bx, bw, bdx, bdw, bdb, err);
  return call_end(&c, rc);
}

static int xent_check(const aal_tensor *t, const int *labels, const char *op, const char *name,
                      aal_error *err)
{
  int rc = need(t, 2, AAL_F64, op, name, err);
  if (rc == AAL_OK)
    rc = need_int(t->size, op, "size", err);
  if (rc == AAL_OK && labels == NULL)
    rc = aal_fail(err, AAL_EINVAL, "%s: labels is NULL", op);
  for (size_t i = 0; rc == AAL_OK && i < t->shape[0]; i++)
    if (labels[i] < 0 || (size_t)labels[i] >= t->shape[1])
      rc = aal_fail(err, AAL_EINVAL, "%s: label %d of sample %zu is outside 0..%zu", op,
                    labels[i], i, t->shape[1] - 1);
  return rc;
}

static int ad_xent_forward(const aal_ops *ops, const aal_tensor *logits, const int *labels,
                           double *loss, aal_tensor *prob, aal_error *err)
{
  char op[64];
  OPNAME(ops, "xent_forward", op);
  int rc = xent_check(logits, labels, op, "logits", err);
  if (rc == AAL_OK)
    rc = need_shape(prob, 2, logits->shape, op, "prob", err);
  if (rc == AAL_OK && loss == NULL)
    rc = aal_fail(err, AAL_EINVAL, "%s: loss is NULL", op);
  /* as the reference: a non-finite logit is a numerical failure (a diverged run) */
  if (rc == AAL_OK)
    rc = aal_tensor_sync_host(logits, err);
  for (size_t i = 0; rc == AAL_OK && i < logits->size; i++)
    if (!isfinite(logits->data[i]))
      rc = aal_fail(err, AAL_ENUMERIC, "%s: sample %zu has non-finite logit %g", op,
                    i / logits->shape[1], logits->data[i]);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bl, *bp;
  call_begin(&c, ops, op);
  rc = call_in(&c, logits, &bl, err);
  if (rc == AAL_OK)
    rc = call_out(&c, prob, &bp, err);
  if (rc == AAL_OK)
    rc = ops->be->xent_forward(ops->be, (int)logits->shape[0], (int)logits->shape[1], bl,
                               labels, loss, bp, err);
  return call_end(&c, rc);
}

static int ad_xent_backward(const aal_ops *ops, const aal_tensor *prob, const int *labels,
                            aal_tensor *dlogits, aal_error *err)
{
  char op[64];
  OPNAME(ops, "xent_backward", op);
  int rc = xent_check(prob, labels, op, "prob", err);
  if (rc == AAL_OK)
    rc = need_shape(dlogits, 2, prob->shape, op, "dlogits", err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bp, *bd;
  call_begin(&c, ops, op);
  rc = call_in(&c, prob, &bp, err);
  if (rc == AAL_OK)
    rc = call_out(&c, dlogits, &bd, err);
  if (rc == AAL_OK)
    rc = ops->be->xent_backward(ops->be, (int)prob->shape[0], (int)prob->shape[1], bp, labels,
                                bd, err);
  return call_end(&c, rc);
}

/* ---------------------------------------------------------------- sgd */

static int ad_sgd_update(const aal_ops *ops, aal_tensor *w, const aal_tensor *g, aal_tensor *buf,
                         double lr, double momentum, double weight_decay, int first,
                         aal_error *err)
{
  char op[64];
  OPNAME(ops, "sgd_update", op);
  int rc = aal_sgd_args(op, w, g, buf, lr, momentum, weight_decay, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bw, *bg, *bb;
  call_begin(&c, ops, op);
  rc = call_in(&c, w, &bw, err);
  if (rc == AAL_OK)
    rc = call_out(&c, w, &bw, err);
  if (rc == AAL_OK)
    rc = call_in(&c, g, &bg, err);
  /* no momentum buffer (momentum 0): a scratch one, always "first" (buf = d) */
  if (rc == AAL_OK && buf != NULL && !first)
    rc = call_in(&c, buf, &bb, err);
  if (rc == AAL_OK && buf != NULL)
    rc = call_out(&c, buf, &bb, err);
  else if (rc == AAL_OK)
    rc = call_buffer(&c, w->size, 0, &bb, err);
  if (rc == AAL_OK)
    rc = ops->be->sgd_update(ops->be, w->size, bw, bg, bb, lr, momentum, weight_decay,
                             first || buf == NULL, err);
  return call_end(&c, rc);
}

/* ---------------------------------------------------------------- ASA */

/* bits = (x > 0) and h = x + eps*bit in one pass (the backend's fused asa_input).  x is
 * not checked for negative elements here (it is a ReLU output by construction; the
 * reference table checks). */
static int ad_asa_input(const aal_ops *ops, const aal_tensor *x, double eps, aal_tensor *h,
                        aal_tensor *bits, aal_error *err)
{
  char op[64];
  OPNAME(ops, "asa_input", op);
  int rc = aal_asa_args(op, x, bits, h, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bx, *bh, *bb;
  call_begin(&c, ops, op);
  rc = call_in(&c, x, &bx, err);
  if (rc == AAL_OK)
    rc = call_out(&c, h, &bh, err);
  if (rc == AAL_OK)
    rc = call_out(&c, bits, &bb, err);
  if (rc == AAL_OK)
    rc = ops->be->asa_input(ops->be, x->size, bx, eps, bh, bb, err);
  return call_end(&c, rc);
}

/* The backend's li_reduce gives NaN for a sample whose h is zero, and also for one with
 * a non-finite element or an overflowing LI.  A NaN is therefore looked at on the host
 * (rare: h is synced only then), so that the outputs and errors are aal_li_batch's. */
static int ad_li_reduce(const aal_ops *ops, const aal_tensor *h, const aal_tensor *r,
                        double *li, unsigned char *valid, size_t *zero_norm, aal_error *err)
{
  char op[64];
  OPNAME(ops, "li_reduce", op);
  int rc = li_check(op, h, r, err);
  if (rc == AAL_OK && (li == NULL || valid == NULL || zero_norm == NULL))
    rc = aal_fail(err, AAL_EINVAL, "%s: NULL output", op);
  if (rc == AAL_OK)
    rc = need_int(h->shape[0], op, "samples", err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = h->shape[0], per = h->size / n;
  call c;
  void *bh, *br, *bli;
  call_begin(&c, ops, op);
  rc = call_in(&c, h, &bh, err);
  if (rc == AAL_OK)
    rc = call_in(&c, r, &br, err);
  if (rc == AAL_OK)
    rc = call_buffer(&c, n, 0, &bli, err);
  if (rc == AAL_OK)
    rc = ops->be->li_reduce(ops->be, (int)n, per, bh, br, bli, err);
  if (rc == AAL_OK)
    rc = ops->be->download(ops->be, li, bli, n, err);
  rc = call_end(&c, rc);
  *zero_norm = 0;
  for (size_t s = 0; rc == AAL_OK && s < n; s++) {
    valid[s] = !isnan(li[s]);
    if (valid[s])
      continue;
    size_t i = 0;
    if ((rc = aal_tensor_sync_host(h, err)) != AAL_OK)
      break;
    while (i < per && h->data[s * per + i] == 0.0)
      i++;
    if (i == per)
      (*zero_norm)++;
    else
      rc = aal_fail(err, AAL_ENUMERIC, "%s: sample %zu: a non-finite h or r, or an LI that "
                    "overflows", op, s);
  }
  return rc;
}

static int ad_scale(const aal_ops *ops, aal_tensor *t, double s, aal_error *err)
{
  char op[64];
  OPNAME(ops, "scale", op);
  int rc = need(t, t != NULL ? t->ndim : 1, AAL_F64, op, "t", err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bt;
  call_begin(&c, ops, op);
  rc = call_in(&c, t, &bt, err);
  if (rc == AAL_OK)
    rc = call_out(&c, t, &bt, err);
  if (rc == AAL_OK)
    rc = ops->be->scale(ops->be, t->size, bt, s, bt, err);
  return call_end(&c, rc);
}

static int ad_asa_decode(const aal_ops *ops, const aal_tensor *bits, double eps,
                         aal_tensor *out, aal_error *err)
{
  char op[64];
  OPNAME(ops, "asa_decode", op);
  int rc = aal_asa_args(op, out, bits, out, err);
  if (rc != AAL_OK)
    return rc;
  call c;
  void *bb, *bo;
  call_begin(&c, ops, op);
  rc = call_in(&c, bits, &bb, err);
  if (rc == AAL_OK)
    rc = call_out(&c, out, &bo, err);
  if (rc == AAL_OK)
    rc = ops->be->sign_unpack(ops->be, bits->size, bb, eps, bo, err);
  return call_end(&c, rc);
}

/* ---------------------------------------------------------------- the table */

int aal_ops_from_backend(const aal_backend *be, aal_ops *ops, aal_error *err)
{
  if (be == NULL || ops == NULL)
    return aal_fail(err, AAL_EINVAL, "ops from backend: NULL argument");
  if (be->precision_bits != 24 && be->precision_bits != 53)
    return aal_fail(err, AAL_EINVAL, "ops from backend %s: precision of %d bits (24 or 53 "
                    "expected)", be->name, be->precision_bits);
  memset(ops, 0, sizeof *ops);
  ops->cache = calloc(1, sizeof *ops->cache);
  if (ops->cache == NULL)
    return aal_fail(err, AAL_ENOMEM, "ops from backend %s: buffer cache", be->name);
  ops->cache->be = be;
  ops->name = be->name;
  ops->precision_bits = be->precision_bits;
  ops->be = be;
  ops->conv_forward = ad_conv_forward;
  ops->conv_backward_data = ad_conv_backward_data;
  ops->conv_backward_filter = ad_conv_backward_filter;
  ops->bn_forward_train = ad_bn_forward_train;
  ops->bn_forward_eval = ad_bn_forward_eval;
  ops->bn_backward = ad_bn_backward;
  ops->relu_forward = ad_relu_forward;
  ops->relu_backward = ad_relu_backward;
  ops->add_forward = ad_add_forward;
  ops->avgpool_forward = ad_avgpool_forward;
  ops->avgpool_backward = ad_avgpool_backward;
  ops->linear_forward = ad_linear_forward;
  ops->linear_backward = ad_linear_backward;
  ops->xent_forward = ad_xent_forward;
  ops->xent_backward = ad_xent_backward;
  ops->sgd_update = ad_sgd_update;
  ops->asa_input = ad_asa_input;
  ops->bn_relu_forward_train = ad_bn_relu_forward_train;
  ops->bn_relu_backward = ad_bn_relu_backward;
  ops->asa_decode = ad_asa_decode;
  ops->scale = ad_scale;
  ops->li_reduce = ad_li_reduce;
  return AAL_OK;
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

int aal_ops_open(const char *name, aal_ops_handle *h, aal_error *err)
{
  memset(h, 0, sizeof *h);
  if (name == NULL || strcmp(name, "ref") == 0) {
    h->table = aal_ops_ref();
    return AAL_OK;
  }
  if ((h->be = calloc(1, sizeof *h->be)) == NULL)
    return aal_fail(err, AAL_ENOMEM, "ops: backend %s", name);
  int rc = aal_backend_open(name, h->be, err);
  if (rc != AAL_OK) {
    free(h->be);
    h->be = NULL;
    return rc;
  }
  rc = aal_ops_from_backend(h->be, &h->ops, err);
  if (rc != AAL_OK) {
    aal_ops_close(h);
    return rc;
  }
  h->table = &h->ops;
  return AAL_OK;
}

void aal_ops_close(aal_ops_handle *h)
{
  if (h == NULL)
    return;
  aal_ops_free(&h->ops);
  if (h->be != NULL) {
    h->be->destroy(h->be);
    free(h->be);
  }
  memset(h, 0, sizeof *h);
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
