/* The reference backend: buffers of doubles, every op delegating to the double reference
 * of sim/ and theory/ (the oracle the harness holds other backends against).  Raw
 * buffers, doubles and packed bits alike, are wrapped in aal_tensor views (no copy):
 * sim's BITS tensors have the table's bit layout. */
#include "kernels/backend.h"
#include "kernels/backend_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sim/layers/conv.h"
#include "sim/layers/layers.h"
#include "sim/layers/li.h"
#include "sim/layers/transformer.h"
#include "sim/core/tensor.h"

/* A view of n doubles as a tensor of the given shape (not reference-counted: never
 * retained or released). */
static aal_tensor view(const void *p, int ndim, size_t d0, size_t d1, size_t d2, size_t d3)
{
  aal_tensor t;
  memset(&t, 0, sizeof t);
  const size_t d[4] = {d0, d1, d2, d3};
  t.ndim = ndim;
  t.size = 1;
  for (int i = 0; i < ndim; i++) {
    t.shape[i] = d[i];
    t.size *= d[i];
  }
  t.dtype = AAL_F64;
  t.data = (double *)p;
  t.refcount = 1;
  return t;
}

/* A view of n packed bits as a 1-d BITS tensor (as view). */
static aal_tensor bits_view(const void *p, size_t n)
{
  aal_tensor t = view(NULL, 1, n, 0, 0, 0);
  t.dtype = AAL_BITS;
  t.bits = (uint32_t *)p;
  return t;
}

/* ---------------------------------------------------------------- memory */

static int ref_alloc(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref alloc", n, sizeof(double), err);
  if (rc != AAL_OK)
    return rc;
  *buf = calloc(n, sizeof(double));
  return *buf ? AAL_OK : aal_fail(err, AAL_ENOMEM, "ref alloc: %zu doubles", n);
}

static int ref_alloc_bits(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref alloc_bits", n, 1, err);
  if (rc != AAL_OK)
    return rc;
  *buf = calloc(aal_bit_words(n), sizeof(uint32_t));
  return *buf ? AAL_OK : aal_fail(err, AAL_ENOMEM, "ref alloc_bits: %zu bits", n);
}

static void ref_release(const aal_backend *be, void *buf)
{
  (void)be;
  free(buf);
}

static int ref_upload(const aal_backend *be, void *buf, const double *host, size_t n,
                      aal_error *err)
{
  (void)be;
  if (buf == NULL || host == NULL)
    return aal_fail(err, AAL_EINVAL, "ref upload: NULL buffer");
  memcpy(buf, host, n * sizeof(double));
  return AAL_OK;
}

static int ref_download(const aal_backend *be, double *host, const void *buf, size_t n,
                        aal_error *err)
{
  (void)be;
  if (buf == NULL || host == NULL)
    return aal_fail(err, AAL_EINVAL, "ref download: NULL buffer");
  memcpy(host, buf, n * sizeof(double));
  return AAL_OK;
}

static int ref_upload_bits(const aal_backend *be, void *buf, const uint32_t *words, size_t n,
                           aal_error *err)
{
  (void)be;
  if (buf == NULL || words == NULL)
    return aal_fail(err, AAL_EINVAL, "ref upload_bits: NULL buffer");
  memcpy(buf, words, aal_bit_words(n) * sizeof(uint32_t));
  return AAL_OK;
}

static int ref_download_bits(const aal_backend *be, uint32_t *words, const void *buf,
                             size_t n, aal_error *err)
{
  (void)be;
  if (buf == NULL || words == NULL)
    return aal_fail(err, AAL_EINVAL, "ref download_bits: NULL buffer");
  memcpy(words, buf, aal_bit_words(n) * sizeof(uint32_t));
  return AAL_OK;
}

/* ---------------------------------------------------------------- conv */

static int ref_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                            const void *w, void *y, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_conv(cs, "ref conv_forward", err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref conv_forward", "x, w, y", err, 3, x, w, y);
  if (rc != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 4, cs->n, cs->c, cs->h, cs->w);
  aal_tensor tw = view(w, 4, cs->k, cs->c, cs->r, cs->s);
  aal_tensor ty = view(y, 4, cs->n, cs->k, cs->p, cs->q);
  return aal_conv2d_forward(&tx, &tw, cs->stride, cs->pad, &ty, err);
}

static int ref_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs,
                                  const void *dy, const void *w, void *dx, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_conv(cs, "ref conv_backward_data", err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref conv_backward_data", "dy, w, dx", err, 3, dy, w, dx);
  if (rc != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 4, cs->n, cs->k, cs->p, cs->q);
  aal_tensor tw = view(w, 4, cs->k, cs->c, cs->r, cs->s);
  aal_tensor tdx = view(dx, 4, cs->n, cs->c, cs->h, cs->w);
  return aal_conv2d_backward_data(&tdy, &tw, cs->stride, cs->pad, &tdx, err);
}

static int ref_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                    const void *x, const void *dy, void *dw, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_conv(cs, "ref conv_backward_filter", err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref conv_backward_filter", "x, dy, dw", err, 3, x, dy, dw);
  if (rc != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 4, cs->n, cs->c, cs->h, cs->w);
  aal_tensor tdy = view(dy, 4, cs->n, cs->k, cs->p, cs->q);
  aal_tensor tdw = view(dw, 4, cs->k, cs->c, cs->r, cs->s);
  return aal_conv2d_backward_filter(&tx, &tdy, cs->stride, cs->pad, &tdw, err);
}

/* ---------------------------------------------------------------- batch norm */

static int ref_bn_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                          const void *gamma, const void *beta, double eps, void *y,
                          void *mean, void *invstd, void *var, aal_error *err)
{
  (void)be;
  static const char op[] = "ref bn_forward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mean, invstd, var", err, 7, x, gamma,
                              beta, y, mean, invstd, var)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor ty = view(y, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor tg = view(gamma, 1, (size_t)c, 0, 0, 0), tb = view(beta, 1, (size_t)c, 0, 0, 0);
  aal_tensor tm = view(mean, 1, (size_t)c, 0, 0, 0), ti = view(invstd, 1, (size_t)c, 0, 0, 0);
  aal_tensor tv = view(var, 1, (size_t)c, 0, 0, 0);
  return aal_bn2d_forward_batch(&tx, &tg, &tb, eps, &ty, &tm, &ti, &tv, err);
}

static int ref_bn_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                           const void *x, const void *gamma, const void *mean,
                           const void *invstd, void *dx, void *dgamma, void *dbeta,
                           aal_error *err)
{
  (void)be;
  static const char op[] = "ref bn_backward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, gamma, mean, invstd, dx, dgamma, dbeta", err, 8, dy,
                              x, gamma, mean, invstd, dx, dgamma, dbeta)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor tx = view(x, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor tdx = view(dx, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor tg = view(gamma, 1, (size_t)c, 0, 0, 0), tm = view(mean, 1, (size_t)c, 0, 0, 0);
  aal_tensor ti = view(invstd, 1, (size_t)c, 0, 0, 0);
  aal_tensor tdg = view(dgamma, 1, (size_t)c, 0, 0, 0), tdb = view(dbeta, 1, (size_t)c, 0, 0, 0);
  return aal_bn2d_backward(&tdy, &tx, &tg, &tm, &ti, &tdx, &tdg, &tdb, err);
}

/* ---------------------------------------------------------------- relu */

static int ref_relu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                            void *mask, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref relu_forward", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref relu_forward", "x, y, mask", err, 3, x, y, mask);
  if (rc != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 1, n, 0, 0, 0), ty = view(y, 1, n, 0, 0, 0);
  aal_tensor tm = bits_view(mask, n);
  return aal_relu_forward(&tx, &ty, &tm, err);
}

static int ref_relu_backward(const aal_backend *be, size_t n, const void *dy,
                             const void *mask, void *dx, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref relu_backward", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref relu_backward", "dy, mask, dx", err, 3, dy, mask, dx);
  if (rc != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 1, n, 0, 0, 0), tdx = view(dx, 1, n, 0, 0, 0);
  aal_tensor tm = bits_view(mask, n);
  return aal_relu_backward(&tdy, &tm, &tdx, err);
}

/* ---------------------------------------------------------------- add, pooling */

static int ref_bn_forward_eval(const aal_backend *be, int n, int c, int hw, const void *x,
                               const void *gamma, const void *beta, const void *running_mean,
                               const void *running_var, double eps, void *y, aal_error *err)
{
  (void)be;
  static const char op[] = "ref bn_forward_eval";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, running_mean, running_var, y", err, 6, x,
                              gamma, beta, running_mean, running_var, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor ty = view(y, 4, (size_t)n, (size_t)c, 1, (size_t)hw);
  aal_tensor tg = view(gamma, 1, (size_t)c, 0, 0, 0), tb = view(beta, 1, (size_t)c, 0, 0, 0);
  aal_tensor tm = view(running_mean, 1, (size_t)c, 0, 0, 0);
  aal_tensor tv = view(running_var, 1, (size_t)c, 0, 0, 0);
  return aal_bn2d_forward_eval(&tx, &tg, &tb, &tm, &tv, eps, &ty, err);
}

static int ref_add(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                   aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref add", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref add", "a, b, y", err, 3, a, b, y);
  if (rc != AAL_OK)
    return rc;
  aal_tensor ta = view(a, 1, n, 0, 0, 0), tb = view(b, 1, n, 0, 0, 0);
  aal_tensor ty = view(y, 1, n, 0, 0, 0);
  return aal_add_forward(&ta, &tb, &ty, err);
}

static int ref_scale(const aal_backend *be, size_t n, const void *xv, double s, void *yv,
                     aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref scale", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref scale", "x, y", err, 2, xv, yv);
  if (rc != AAL_OK)
    return rc;
  const double *x = xv;
  double *y = yv;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] * s;
  return AAL_OK;
}

static int ref_avgpool_forward(const aal_backend *be, int rows, int hw, const void *x,
                               void *y, aal_error *err)
{
  (void)be;
  static const char op[] = "ref avgpool_forward";
  int rc;
  if ((rc = aal_be_check_pos(op, "rows", rows, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 4, (size_t)rows, 1, 1, (size_t)hw);
  aal_tensor ty = view(y, 2, (size_t)rows, 1, 0, 0);
  return aal_avgpool_forward(&tx, &ty, err);
}

static int ref_avgpool_backward(const aal_backend *be, int rows, int hw, const void *dy,
                                void *dx, aal_error *err)
{
  (void)be;
  static const char op[] = "ref avgpool_backward";
  int rc;
  if ((rc = aal_be_check_pos(op, "rows", rows, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, dx", err, 2, dy, dx)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 2, (size_t)rows, 1, 0, 0);
  aal_tensor tdx = view(dx, 4, (size_t)rows, 1, 1, (size_t)hw);
  return aal_avgpool_backward(&tdy, &tdx, err);
}

static int ref_maxpool_forward(const aal_backend *be, int n, int c, int h, int w, int k,
                               int stride, int pad, const void *x, void *y, aal_error *err)
{
  (void)be;
  static const char op[] = "ref maxpool_forward";
  int p, q, rc;
  if ((rc = aal_be_check_pool2d(op, n, c, h, w, k, stride, pad, &p, &q, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 4, (size_t)n, (size_t)c, (size_t)h, (size_t)w);
  aal_tensor ty = view(y, 4, (size_t)n, (size_t)c, (size_t)p, (size_t)q);
  return aal_maxpool2d_forward(&tx, k, stride, pad, &ty, err);
}

static int ref_maxpool_backward(const aal_backend *be, int n, int c, int h, int w, int k,
                                int stride, int pad, const void *dy, const void *x, void *dx,
                                aal_error *err)
{
  (void)be;
  static const char op[] = "ref maxpool_backward";
  int p, q, rc;
  if ((rc = aal_be_check_pool2d(op, n, c, h, w, k, stride, pad, &p, &q, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, dx", err, 3, dy, x, dx)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 4, (size_t)n, (size_t)c, (size_t)p, (size_t)q);
  aal_tensor tx = view(x, 4, (size_t)n, (size_t)c, (size_t)h, (size_t)w);
  aal_tensor tdx = view(dx, 4, (size_t)n, (size_t)c, (size_t)h, (size_t)w);
  return aal_maxpool2d_backward(&tdy, &tx, k, stride, pad, &tdx, err);
}

/* ---------------------------------------------------------------- Transformer ops */

/* Sizes named in names ("m, d"), each >= 1. */
static int ref_sizes(const char *op, const char *names, aal_error *err, int count, ...)
{
  va_list ap;
  va_start(ap, count);
  int rc = AAL_OK;
  char name[16];
  const char *p = names;
  for (int i = 0; i < count && rc == AAL_OK; i++) {
    size_t len = strcspn(p, ",");
    if (len >= sizeof name)
      len = sizeof name - 1;
    memcpy(name, p, len);
    name[len] = '\0';
    rc = aal_be_check_pos(op, name, va_arg(ap, int), err);
    p += strcspn(p, ",");
    p += strspn(p, ", ");
  }
  va_end(ap);
  return rc;
}

static int ref_layernorm_forward(const aal_backend *be, int m, int d, const void *x,
                                 const void *gamma, const void *beta, double eps, void *y,
                                 void *mean, void *invstd, aal_error *err)
{
  (void)be;
  static const char op[] = "ref layernorm_forward";
  int rc;
  if ((rc = ref_sizes(op, "m, d", err, 2, m, d)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mean, invstd", err, 6, x, gamma, beta, y,
                              mean, invstd)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 2, (size_t)m, (size_t)d, 0, 0), ty = view(y, 2, (size_t)m, (size_t)d, 0, 0);
  aal_tensor tg = view(gamma, 1, (size_t)d, 0, 0, 0), tb = view(beta, 1, (size_t)d, 0, 0, 0);
  aal_tensor tm = view(mean, 1, (size_t)m, 0, 0, 0), ti = view(invstd, 1, (size_t)m, 0, 0, 0);
  return aal_layernorm_forward(&tx, &tg, &tb, eps, &ty, &tm, &ti, err);
}

static int ref_layernorm_backward(const aal_backend *be, int m, int d, const void *dy,
                                  const void *x, const void *gamma, const void *mean,
                                  const void *invstd, void *dx, void *dgamma, void *dbeta,
                                  aal_error *err)
{
  (void)be;
  static const char op[] = "ref layernorm_backward";
  int rc;
  if ((rc = ref_sizes(op, "m, d", err, 2, m, d)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, gamma, mean, invstd, dx, dgamma, dbeta", err, 8, dy,
                              x, gamma, mean, invstd, dx, dgamma, dbeta)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 2, (size_t)m, (size_t)d, 0, 0);
  aal_tensor tx = view(x, 2, (size_t)m, (size_t)d, 0, 0);
  aal_tensor tdx = view(dx, 2, (size_t)m, (size_t)d, 0, 0);
  aal_tensor tg = view(gamma, 1, (size_t)d, 0, 0, 0), tdg = view(dgamma, 1, (size_t)d, 0, 0, 0);
  aal_tensor tdb = view(dbeta, 1, (size_t)d, 0, 0, 0);
  aal_tensor tm = view(mean, 1, (size_t)m, 0, 0, 0), ti = view(invstd, 1, (size_t)m, 0, 0, 0);
  return aal_layernorm_backward(&tdy, &tx, &tg, &tm, &ti, &tdx, &tdg, &tdb, err);
}

static int ref_gelu_forward(const aal_backend *be, size_t n, const void *x, void *y,
                            aal_error *err)
{
  (void)be;
  static const char op[] = "ref gelu_forward";
  int rc;
  if ((rc = aal_be_check_count(op, n, sizeof(double), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 1, n, 0, 0, 0), ty = view(y, 1, n, 0, 0, 0);
  return aal_gelu_forward(&tx, &ty, err);
}

static int ref_gelu_backward(const aal_backend *be, size_t n, const void *dy, const void *x,
                             void *dx, aal_error *err)
{
  (void)be;
  static const char op[] = "ref gelu_backward";
  int rc;
  if ((rc = aal_be_check_count(op, n, sizeof(double), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, dx", err, 3, dy, x, dx)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 1, n, 0, 0, 0), tx = view(x, 1, n, 0, 0, 0);
  aal_tensor tdx = view(dx, 1, n, 0, 0, 0);
  return aal_gelu_backward(&tdy, &tx, &tdx, err);
}

static int ref_softmax_forward(const aal_backend *be, int m, int d, const void *x, void *y,
                               aal_error *err)
{
  (void)be;
  static const char op[] = "ref softmax_forward";
  int rc;
  if ((rc = ref_sizes(op, "m, d", err, 2, m, d)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 2, (size_t)m, (size_t)d, 0, 0), ty = view(y, 2, (size_t)m, (size_t)d, 0, 0);
  return aal_softmax_forward(&tx, &ty, err);
}

static int ref_softmax_backward(const aal_backend *be, int m, int d, const void *dy,
                                const void *y, void *dx, aal_error *err)
{
  (void)be;
  static const char op[] = "ref softmax_backward";
  int rc;
  if ((rc = ref_sizes(op, "m, d", err, 2, m, d)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, y, dx", err, 3, dy, y, dx)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 2, (size_t)m, (size_t)d, 0, 0);
  aal_tensor ty = view(y, 2, (size_t)m, (size_t)d, 0, 0);
  aal_tensor tdx = view(dx, 2, (size_t)m, (size_t)d, 0, 0);
  return aal_softmax_backward(&tdy, &ty, &tdx, err);
}

static int ref_attention_forward(const aal_backend *be, int b, int t, int heads, int dh,
                                 const void *q, const void *k, const void *v, void *p, void *o,
                                 aal_error *err)
{
  (void)be;
  static const char op[] = "ref attention_forward";
  int rc;
  if ((rc = ref_sizes(op, "b, t, heads, dh", err, 4, b, t, heads, dh)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "q, k, v, p, o", err, 5, q, k, v, p, o)) != AAL_OK)
    return rc;
  const size_t e = (size_t)heads * (size_t)dh;
  aal_tensor tq = view(q, 3, (size_t)b, (size_t)t, e, 0), tk = view(k, 3, (size_t)b, (size_t)t, e, 0);
  aal_tensor tv = view(v, 3, (size_t)b, (size_t)t, e, 0), to = view(o, 3, (size_t)b, (size_t)t, e, 0);
  aal_tensor tp = view(p, 4, (size_t)b, (size_t)heads, (size_t)t, (size_t)t);
  return aal_attention_forward(&tq, &tk, &tv, heads, &tp, &to, err);
}

static int ref_attention_backward(const aal_backend *be, int b, int t, int heads, int dh,
                                  const void *dout, const void *q, const void *k,
                                  const void *v, const void *p, void *dq, void *dk, void *dv,
                                  aal_error *err)
{
  (void)be;
  static const char op[] = "ref attention_backward";
  int rc;
  if ((rc = ref_sizes(op, "b, t, heads, dh", err, 4, b, t, heads, dh)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dout, q, k, v, p, dq, dk, dv", err, 8, dout, q, k, v, p, dq,
                              dk, dv)) != AAL_OK)
    return rc;
  const size_t e = (size_t)heads * (size_t)dh, bb = (size_t)b, tt = (size_t)t;
  aal_tensor tdo = view(dout, 3, bb, tt, e, 0), tq = view(q, 3, bb, tt, e, 0);
  aal_tensor tk = view(k, 3, bb, tt, e, 0), tv = view(v, 3, bb, tt, e, 0);
  aal_tensor tp = view(p, 4, bb, (size_t)heads, tt, tt);
  aal_tensor tdq = view(dq, 3, bb, tt, e, 0), tdk = view(dk, 3, bb, tt, e, 0);
  aal_tensor tdv = view(dv, 3, bb, tt, e, 0);
  return aal_attention_backward(&tdo, &tq, &tk, &tv, &tp, heads, &tdq, &tdk, &tdv, err);
}

static int ref_embed_forward(const aal_backend *be, int b, int t, int vocab, int d,
                             const int *ids, const void *table, const void *pos, void *y,
                             aal_error *err)
{
  (void)be;
  static const char op[] = "ref embed_forward";
  int rc;
  if ((rc = ref_sizes(op, "b, t, vocab, d", err, 4, b, t, vocab, d)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "ids, table, y", err, 3, ids, table, y)) != AAL_OK)
    return rc;
  aal_tensor tt = view(table, 2, (size_t)vocab, (size_t)d, 0, 0);
  aal_tensor tp = view(pos, 2, (size_t)t, (size_t)d, 0, 0);
  aal_tensor ty = view(y, 3, (size_t)b, (size_t)t, (size_t)d, 0);
  return aal_embed_forward(ids, &tt, pos != NULL ? &tp : NULL, &ty, err);
}

static int ref_embed_backward(const aal_backend *be, int b, int t, int vocab, int d,
                              const int *ids, const void *dy, void *dtable, void *dpos,
                              aal_error *err)
{
  (void)be;
  static const char op[] = "ref embed_backward";
  int rc;
  if ((rc = ref_sizes(op, "b, t, vocab, d", err, 4, b, t, vocab, d)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "ids, dy, dtable", err, 3, ids, dy, dtable)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 3, (size_t)b, (size_t)t, (size_t)d, 0);
  aal_tensor tdt = view(dtable, 2, (size_t)vocab, (size_t)d, 0, 0);
  aal_tensor tdp = view(dpos, 2, (size_t)t, (size_t)d, 0, 0);
  return aal_embed_backward(ids, &tdy, &tdt, dpos != NULL ? &tdp : NULL, err);
}

static int ref_patchify(const aal_backend *be, int b, int c, int h, int w, int p,
                        const void *img, void *patches, int forward, aal_error *err)
{
  (void)be;
  const char *op = forward ? "ref patchify_forward" : "ref patchify_backward";
  int rc;
  if ((rc = ref_sizes(op, "b, c, h, w, p", err, 5, b, c, h, w, p)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, forward ? "x, y" : "dx, dy", err, 2, img, patches)) != AAL_OK)
    return rc;
  if (h % p != 0 || w % p != 0)
    return aal_fail(err, AAL_EINVAL, "%s: the image is %dx%d, not divisible by p = %d", op, h,
                    w, p);
  const size_t n = (size_t)(h / p) * (size_t)(w / p), f = (size_t)c * (size_t)p * (size_t)p;
  aal_tensor ti = view(img, 4, (size_t)b, (size_t)c, (size_t)h, (size_t)w);
  aal_tensor tp = view(patches, 3, (size_t)b, n, f, 0);
  return forward ? aal_patchify_forward(&ti, p, &tp, err) : aal_patchify_backward(&tp, p, &ti, err);
}

static int ref_patchify_forward(const aal_backend *be, int b, int c, int h, int w, int p,
                                const void *x, void *y, aal_error *err)
{
  return ref_patchify(be, b, c, h, w, p, x, y, 1, err);
}

static int ref_patchify_backward(const aal_backend *be, int b, int c, int h, int w, int p,
                                 const void *dy, void *dx, aal_error *err)
{
  return ref_patchify(be, b, c, h, w, p, dx, (void *)dy, 0, err);
}

static int ref_transpose(const aal_backend *be, int b, int a, int c, const void *x, void *y,
                         aal_error *err)
{
  (void)be;
  static const char op[] = "ref transpose";
  int rc;
  if ((rc = ref_sizes(op, "b, a, c", err, 3, b, a, c)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, y", err, 2, x, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 3, (size_t)b, (size_t)a, (size_t)c, 0);
  aal_tensor ty = view(y, 3, (size_t)b, (size_t)c, (size_t)a, 0);
  return aal_transpose(&tx, &ty, err);
}

/* ---------------------------------------------------------------- linear */

static int ref_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                              const void *w, const void *b, void *y, aal_error *err)
{
  (void)be;
  static const char op[] = "ref linear_forward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "in", in, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "out", out, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, w, b, y", err, 4, x, w, b, y)) != AAL_OK)
    return rc;
  aal_tensor tx = view(x, 2, (size_t)n, (size_t)in, 0, 0);
  aal_tensor tw = view(w, 2, (size_t)out, (size_t)in, 0, 0);
  aal_tensor tb = view(b, 1, (size_t)out, 0, 0, 0);
  aal_tensor ty = view(y, 2, (size_t)n, (size_t)out, 0, 0);
  return aal_linear_forward(&tx, &tw, &tb, &ty, err);
}

static int ref_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                               const void *x, const void *w, void *dx, void *dw, void *db,
                               aal_error *err)
{
  (void)be;
  static const char op[] = "ref linear_backward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "in", in, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "out", out, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, x, w, dw, db", err, 5, dy, x, w, dw, db)) != AAL_OK)
    return rc;
  aal_tensor tdy = view(dy, 2, (size_t)n, (size_t)out, 0, 0);
  aal_tensor tx = view(x, 2, (size_t)n, (size_t)in, 0, 0);
  aal_tensor tw = view(w, 2, (size_t)out, (size_t)in, 0, 0);
  aal_tensor tdx = view(dx, 2, (size_t)n, (size_t)in, 0, 0);
  aal_tensor tdw = view(dw, 2, (size_t)out, (size_t)in, 0, 0);
  aal_tensor tdb = view(db, 1, (size_t)out, 0, 0, 0);
  return aal_linear_backward(&tdy, &tx, &tw, dx ? &tdx : NULL, &tdw, &tdb, err);
}

/* ---------------------------------------------------------------- softmax cross-entropy */

static int ref_xent_forward(const aal_backend *be, int n, int classes, const void *logits,
                            const int *labels, double *loss, void *prob, aal_error *err)
{
  (void)be;
  static const char op[] = "ref xent_forward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "classes", classes, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "logits, labels, loss, prob", err, 4, logits, labels, loss,
                              prob)) != AAL_OK)
    return rc;
  aal_tensor tz = view(logits, 2, (size_t)n, (size_t)classes, 0, 0);
  aal_tensor tp = view(prob, 2, (size_t)n, (size_t)classes, 0, 0);
  return aal_xent_forward(&tz, labels, loss, &tp, err);
}

static int ref_xent_backward(const aal_backend *be, int n, int classes, const void *prob,
                             const int *labels, void *dlogits, aal_error *err)
{
  (void)be;
  static const char op[] = "ref xent_backward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "classes", classes, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "prob, labels, dlogits", err, 3, prob, labels, dlogits)) !=
          AAL_OK)
    return rc;
  aal_tensor tp = view(prob, 2, (size_t)n, (size_t)classes, 0, 0);
  aal_tensor td = view(dlogits, 2, (size_t)n, (size_t)classes, 0, 0);
  return aal_xent_backward(&tp, labels, &td, err);
}

/* ---------------------------------------------------------------- ASA signs */

static int ref_sign_pack(const aal_backend *be, size_t n, const void *x, void *bits,
                         aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref sign_pack", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref sign_pack", "x, bits", err, 2, x, bits);
  if (rc != AAL_OK)
    return rc;
  const double *px = x;
  uint32_t *words = bits;
  memset(words, 0, aal_bit_words(n) * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++)
    if (px[i] > 0)
      words[i / 32] |= (uint32_t)1 << (i % 32);
  return AAL_OK;
}

static int ref_sign_unpack(const aal_backend *be, size_t n, const void *bits, double eps,
                           void *out, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref sign_unpack", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref sign_unpack", "bits, out", err, 2, bits, out);
  if (rc != AAL_OK)
    return rc;
  aal_tensor tb = bits_view(bits, n), to = view(out, 1, n, 0, 0, 0);
  return aal_asa_decode(&tb, eps, &to, err);  /* the one decoder */
}

/* ---------------------------------------------------------------- fused ops
 * The reference's fused ops are its unfused compositions: the oracle for a fused kernel
 * is the op sequence it replaces. */

/* h = x + (bit ? eps : 0), bits = (x > 0): add(x, sign_unpack(sign_pack(x))) in double
 * (eps is not rounded: the reference's precision is double). */
static int ref_asa_input(const aal_backend *be, size_t n, const void *x, double eps, void *h,
                         void *bits, aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref asa_input", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref asa_input", "x, h, bits", err, 3, x, h, bits);
  if (rc != AAL_OK)
    return rc;
  const double *px = x;
  double *ph = h;
  uint32_t *words = bits;
  memset(words, 0, aal_bit_words(n) * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++) {
    const int bit = px[i] > 0;
    if (bit)
      words[i / 32] |= (uint32_t)1 << (i % 32);
    ph[i] = px[i] + (bit ? eps : 0.0);
  }
  return AAL_OK;
}

/* bn_forward into y, then relu_forward in place (the mask is taken before y is
 * overwritten; aal_relu_forward allows y to alias x). */
static int ref_bn_relu_forward(const aal_backend *be, int n, int c, int hw, const void *x,
                               const void *gamma, const void *beta, double eps, void *y,
                               void *mask, void *mean, void *invstd, void *var,
                               aal_error *err)
{
  static const char op[] = "ref bn_relu_forward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "x, gamma, beta, y, mask, mean, invstd, var", err, 8, x,
                              gamma, beta, y, mask, mean, invstd, var)) != AAL_OK)
    return rc;
  rc = ref_bn_forward(be, n, c, hw, x, gamma, beta, eps, y, mean, invstd, var, err);
  if (rc == AAL_OK)
    rc = ref_relu_forward(be, (size_t)n * c * hw, y, y, mask, err);
  return rc;
}

/* relu_backward into a scratch dz, then bn_backward(dz). */
static int ref_bn_relu_backward(const aal_backend *be, int n, int c, int hw, const void *dy,
                                const void *mask, const void *x, const void *gamma,
                                const void *mean, const void *invstd, void *dx, void *dgamma,
                                void *dbeta, aal_error *err)
{
  static const char op[] = "ref bn_relu_backward";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "hw", hw, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta", err,
                              9, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta)) !=
          AAL_OK)
    return rc;
  const size_t total = (size_t)n * c * hw;
  double *dz = malloc(total * sizeof *dz);
  if (dz == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: dz (%zu doubles)", op, total);
  rc = ref_relu_backward(be, total, dy, mask, dz, err);
  if (rc == AAL_OK)
    rc = ref_bn_backward(be, n, c, hw, dz, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
  free(dz);
  return rc;
}

/* ---------------------------------------------------------------- LI, SGD */

static int ref_li_reduce(const aal_backend *be, int n, size_t per, const void *h,
                         const void *r, void *li, aal_error *err)
{
  (void)be;
  static const char op[] = "ref li_reduce";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_count(op, per, sizeof(double), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "h, r, li", err, 3, h, r, li)) != AAL_OK)
    return rc;
  unsigned char *valid = malloc((size_t)n);
  if (valid == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: %d flags", op, n);
  size_t zero = 0;
  double *pl = li;
  rc = aal_li_batch(h, r, (size_t)n, per, pl, valid, &zero, err);
  if (rc == AAL_OK)
    for (int s = 0; s < n; s++)
      if (!valid[s])
        pl[s] = NAN; /* no LI for h = 0: the caller counts it */
  free(valid);
  return rc;
}

static int ref_sgd_update(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                          double lr, double momentum, double weight_decay, int first,
                          aal_error *err)
{
  (void)be;
  int rc = aal_be_check_count("ref sgd_update", n, sizeof(double), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("ref sgd_update", "w, g, buf", err, 3, w, g, buf);
  if (rc != AAL_OK)
    return rc;
  aal_sgd_update_array(n, w, g, buf, lr, momentum, weight_decay, first);
  return AAL_OK;
}

static void ref_destroy(aal_backend *be)
{
  if (be != NULL)
    memset(be, 0, sizeof *be);
}

int aal_backend_ref(aal_backend *be, aal_error *err)
{
  if (be == NULL)
    return aal_fail(err, AAL_EINVAL, "backend ref: NULL table");
  memset(be, 0, sizeof *be);
  be->name = "ref";
  be->precision_bits = 53;
  be->alloc = ref_alloc;
  be->alloc_bits = ref_alloc_bits;
  be->release = ref_release;
  be->upload = ref_upload;
  be->download = ref_download;
  be->upload_bits = ref_upload_bits;
  be->download_bits = ref_download_bits;
  be->conv_forward = ref_conv_forward;
  be->conv_backward_data = ref_conv_backward_data;
  be->conv_backward_filter = ref_conv_backward_filter;
  be->bn_forward = ref_bn_forward;
  be->bn_backward = ref_bn_backward;
  be->bn_forward_eval = ref_bn_forward_eval;
  be->relu_forward = ref_relu_forward;
  be->relu_backward = ref_relu_backward;
  be->add = ref_add;
  be->scale = ref_scale;
  be->avgpool_forward = ref_avgpool_forward;
  be->avgpool_backward = ref_avgpool_backward;
  be->maxpool_forward = ref_maxpool_forward;
  be->maxpool_backward = ref_maxpool_backward;
  be->layernorm_forward = ref_layernorm_forward;
  be->layernorm_backward = ref_layernorm_backward;
  be->gelu_forward = ref_gelu_forward;
  be->gelu_backward = ref_gelu_backward;
  be->softmax_forward = ref_softmax_forward;
  be->softmax_backward = ref_softmax_backward;
  be->attention_forward = ref_attention_forward;
  be->attention_backward = ref_attention_backward;
  be->embed_forward = ref_embed_forward;
  be->embed_backward = ref_embed_backward;
  be->patchify_forward = ref_patchify_forward;
  be->patchify_backward = ref_patchify_backward;
  be->transpose = ref_transpose;
  be->linear_forward = ref_linear_forward;
  be->linear_backward = ref_linear_backward;
  be->xent_forward = ref_xent_forward;
  be->xent_backward = ref_xent_backward;
  be->sign_pack = ref_sign_pack;
  be->sign_unpack = ref_sign_unpack;
  be->li_reduce = ref_li_reduce;
  be->sgd_update = ref_sgd_update;
  be->asa_input = ref_asa_input;
  be->bn_relu_forward = ref_bn_relu_forward;
  be->bn_relu_backward = ref_bn_relu_backward;
  be->destroy = ref_destroy;
  return AAL_OK;
}
