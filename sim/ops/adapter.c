/* The backend adapter's entries (sim/ops/ops.h): each checks its arguments with the
 * contract of the reference function it stands for (sim/layers), so that both tables
 * refuse the same calls, adds what the backend's int sizes need, binds its tensors to
 * backend buffers (sim/ops/resident.c) and runs the backend's op.  What the backend
 * table leaves to its caller (BN running statistics, a NaN LI) is done here on the host. */
#include "sim/ops/ops_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "sim/layers/conv_check.h"
#include "sim/layers/layers.h"
#include "sim/layers/transformer.h"

/* The backend takes sizes as int. */
static int fits_int(size_t v, const char *op, const char *what, aal_error *err)
{
  if (v > (size_t)INT_MAX)
    return aal_fail(err, AAL_EINVAL, "%s: %s %zu does not fit an int", op, what, v);
  return AAL_OK;
}

/* ---------------------------------------------------------------- conv */

typedef int (*conv_contract)(const char *op, const aal_tensor *a, const aal_tensor *b,
                             int stride, int pad, const aal_tensor *out, aal_conv2d_dims *d,
                             aal_error *err);
typedef int (*conv_kernel)(const aal_backend *be, const aal_conv_shape *cs, const void *a,
                           const void *b, void *out, aal_error *err);

/* The backend's shape of a checked convolution. */
static int conv_shape(const aal_conv2d_dims *d, aal_conv_shape *cs, const char *op,
                      aal_error *err)
{
  const size_t sizes[] = {d->n, d->k, d->c, d->h, d->r, d->w, d->s};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (fits_int(sizes[i], op, "size", err) != AAL_OK)
      return AAL_EINVAL;
  *cs = (aal_conv_shape){.n = (int)d->n, .c = (int)d->c, .h = (int)d->h, .w = (int)d->w,
                         .k = (int)d->k, .r = (int)d->r, .s = (int)d->s,
                         .stride = (int)d->stride, .pad = (int)d->pad};
  return aal_conv_shape_init(cs, err);
}

/* The three convs differ only in their contract and kernel, which take the inputs a, b
 * and the output in the same order. */
static int conv(const aal_ops *ops, const char *name, conv_contract contract,
                conv_kernel kernel, const aal_tensor *a, const aal_tensor *b, int stride,
                int pad, aal_tensor *out, aal_error *err)
{
  aal_call c;
  aal_conv2d_dims d;
  aal_conv_shape cs;
  aal_call_begin(&c, ops, name, err);
  c.rc = contract(c.op, a, b, stride, pad, out, &d, err);
  if (c.rc == AAL_OK)
    c.rc = conv_shape(&d, &cs, c.op, err);
  void *ba = aal_call_in(&c, a), *bb = aal_call_in(&c, b), *bo = aal_call_out(&c, out);
  if (c.rc == AAL_OK)
    c.rc = kernel(ops->be, &cs, ba, bb, bo, err);
  return aal_call_end(&c);
}

static int ad_conv_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                           int stride, int pad, aal_tensor *y, aal_error *err)
{
  return conv(ops, "conv_forward", aal_conv2d_check_forward, ops->be->conv_forward, x, w,
              stride, pad, y, err);
}

static int ad_conv_backward_data(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *w,
                                 int stride, int pad, aal_tensor *dx, aal_error *err)
{
  return conv(ops, "conv_backward_data", aal_conv2d_check_backward_data,
              ops->be->conv_backward_data, dy, w, stride, pad, dx, err);
}

static int ad_conv_backward_filter(const aal_ops *ops, const aal_tensor *x,
                                   const aal_tensor *dy, int stride, int pad, aal_tensor *dw,
                                   aal_error *err)
{
  return conv(ops, "conv_backward_filter", aal_conv2d_check_backward_filter,
              ops->be->conv_backward_filter, x, dy, stride, pad, dw, err);
}

/* ---------------------------------------------------------------- batch norm */

/* The backend's sizes of x [N, C, H, W]: n, c and hw = H*W. */
typedef struct {
  int n, c, hw;
} bn_shape;

/* A step of call c (nothing once it has failed), after the layer's contract: the fused
 * ReLU's mask, if any, is BITS of x's shape (the ReLU's contract: its input and output
 * have x's shape), and x's sizes fit the backend's ints (N*H*W and C). */
static bn_shape bn_sizes(aal_call *c, const aal_tensor *x, const aal_tensor *mask)
{
  bn_shape s = {0, 0, 0};
  if (c->rc == AAL_OK && mask != NULL)
    c->rc = aal_relu_forward_args(c->op, x, x, mask, c->err);
  if (c->rc == AAL_OK)
    c->rc = fits_int(x->shape[0] * x->shape[2] * x->shape[3], c->op, "N*H*W", c->err);
  if (c->rc == AAL_OK)
    c->rc = fits_int(x->shape[1], c->op, "channels", c->err);
  if (c->rc == AAL_OK)
    s = (bn_shape){(int)x->shape[0], (int)x->shape[1], (int)(x->shape[2] * x->shape[3])};
  return s;
}

/* The running statistics, which live on the host, updated by sim/layers/batchnorm.c's
 * own update from the batch mean and variance the backend op returned (bvar, a scratch
 * buffer): 2C values come home. */
static int bn_running_update(aal_call *c, const aal_tensor *x, double momentum,
                             const aal_tensor *mean, const void *bvar,
                             aal_tensor *running_mean, aal_tensor *running_var)
{
  const size_t C = x->shape[1];
  if (!aal_tensor_on_host(running_mean) || !aal_tensor_on_host(running_var))
    return aal_fail(c->err, AAL_EINVAL, "%s: the running statistics must live on the host",
                    c->op);
  aal_tensor *m = aal_tensor_host_view(mean, c->err);
  double *var = m != NULL ? malloc(C * sizeof *var) : NULL;
  int rc = var != NULL ? c->ops->be->download(c->ops->be, var, bvar, C, c->err)
                       : aal_fail(c->err, AAL_ENOMEM, "%s: %zu statistics", c->op, C);
  for (size_t k = 0; rc == AAL_OK && k < C; k++)
    if (!isfinite(m->data[k]) || !(var[k] >= 0) || !isfinite(var[k]))
      rc = aal_fail(c->err, AAL_ENUMERIC, "%s: channel %zu has mean %g, variance %g", c->op,
                    k, m->data[k], var[k]);
  if (rc == AAL_OK)
    aal_bn2d_update_running(running_mean, running_var, m->data, var, momentum,
                            (double)(x->shape[0] * x->shape[2] * x->shape[3]));
  free(var);
  aal_tensor_release(m);
  return rc;
}

/* bn_forward_train, and with mask non-NULL bn_relu_forward_train */
static int bn_train(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                    const aal_tensor *beta, aal_tensor *running_mean, aal_tensor *running_var,
                    double momentum, double eps, aal_tensor *y, aal_tensor *mask,
                    aal_tensor *mean, aal_tensor *invstd, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, mask ? "bn_relu_forward_train" : "bn_forward_train", err);
  c.rc = aal_bn2d_train_args(c.op, x, gamma, beta, running_mean, running_var, momentum, eps,
                             y, mean, invstd, err);
  const bn_shape s = bn_sizes(&c, x, mask);
  void *bx = aal_call_in(&c, x), *bg = aal_call_in(&c, gamma), *bb = aal_call_in(&c, beta);
  void *by = aal_call_out(&c, y), *bm = aal_call_out(&c, mean);
  void *bi = aal_call_out(&c, invstd), *bmask = aal_call_out(&c, mask);
  void *bv = aal_call_scratch(&c, (size_t)s.c, 0);
  if (c.rc == AAL_OK && mask != NULL)
    c.rc = ops->be->bn_relu_forward(ops->be, s.n, s.c, s.hw, bx, bg, bb, eps, by, bmask, bm,
                                    bi, bv, err);
  else if (c.rc == AAL_OK)
    c.rc = ops->be->bn_forward(ops->be, s.n, s.c, s.hw, bx, bg, bb, eps, by, bm, bi, bv, err);
  if (c.rc == AAL_OK)
    c.rc = bn_running_update(&c, x, momentum, mean, bv, running_mean, running_var);
  return aal_call_end(&c);
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

/* A scratch buffer holding the values of host tensor t (nothing once c has failed). */
static void *call_upload(aal_call *c, const aal_tensor *t)
{
  void *buf = aal_call_scratch(c, t->size, 0);
  if (c->rc == AAL_OK && !aal_tensor_on_host(t))
    c->rc = aal_fail(c->err, AAL_EINVAL, "%s: the running statistics must live on the host",
                     c->op);
  if (c->rc == AAL_OK)
    c->rc = c->ops->be->upload(c->ops->be, buf, t->data, t->size, c->err);
  return c->rc == AAL_OK ? buf : NULL;
}

/* Evaluation mode on the backend, from the running statistics: they live on the host,
 * where the contract checks them, and are copied to scratch buffers for the op. */
static int ad_bn_forward_eval(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                              const aal_tensor *beta, const aal_tensor *running_mean,
                              const aal_tensor *running_var, double eps, aal_tensor *y,
                              aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "bn_forward_eval", err);
  c.rc = aal_bn2d_eval_args(c.op, x, gamma, beta, running_mean, running_var, eps, y, err);
  const bn_shape s = bn_sizes(&c, x, NULL);
  void *bx = aal_call_in(&c, x), *bg = aal_call_in(&c, gamma), *bb = aal_call_in(&c, beta);
  void *bm = call_upload(&c, running_mean), *bv = call_upload(&c, running_var);
  void *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->bn_forward_eval(ops->be, s.n, s.c, s.hw, bx, bg, bb, bm, bv, eps, by, err);
  return aal_call_end(&c);
}

/* bn_backward, and with mask non-NULL bn_relu_backward */
static int bn_back(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                   const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *mean,
                   const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                   aal_tensor *dbeta, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, mask ? "bn_relu_backward" : "bn_backward", err);
  c.rc = aal_bn2d_backward_args(c.op, dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
  const bn_shape s = bn_sizes(&c, x, mask);
  void *bdy = aal_call_in(&c, dy), *bx = aal_call_in(&c, x), *bg = aal_call_in(&c, gamma);
  void *bm = aal_call_in(&c, mean), *bi = aal_call_in(&c, invstd);
  void *bmask = aal_call_in(&c, mask), *bdx = aal_call_out(&c, dx);
  void *bdg = aal_call_out(&c, dgamma), *bdb = aal_call_out(&c, dbeta);
  if (c.rc == AAL_OK && mask != NULL)
    c.rc = ops->be->bn_relu_backward(ops->be, s.n, s.c, s.hw, bdy, bmask, bx, bg, bm, bi, bdx,
                                     bdg, bdb, err);
  else if (c.rc == AAL_OK)
    c.rc = ops->be->bn_backward(ops->be, s.n, s.c, s.hw, bdy, bx, bg, bm, bi, bdx, bdg, bdb,
                                err);
  return aal_call_end(&c);
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

static int ad_relu_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                           aal_tensor *mask, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "relu_forward", err);
  if ((c.rc = aal_relu_forward_args(c.op, x, y, mask, err)) != AAL_OK)
    return c.rc;
  void *bx = aal_call_in(&c, x), *by = aal_call_out(&c, y);
  /* no mask wanted (evaluation): a scratch one */
  void *bm = mask != NULL ? aal_call_out(&c, mask) : aal_call_scratch(&c, x->size, 1);
  if (c.rc == AAL_OK)
    c.rc = ops->be->relu_forward(ops->be, x->size, bx, by, bm, err);
  return aal_call_end(&c);
}

typedef int (*binary_contract)(const char *op, const aal_tensor *a, const aal_tensor *b,
                               const aal_tensor *out, aal_error *err);
typedef int (*binary_kernel)(const aal_backend *be, size_t n, const void *a, const void *b,
                             void *out, aal_error *err);

/* out from a and b element by element: add, and relu_backward (b the mask). */
static int binary(const aal_ops *ops, const char *name, binary_contract contract,
                  binary_kernel kernel, const aal_tensor *a, const aal_tensor *b,
                  aal_tensor *out, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, name, err);
  c.rc = contract(c.op, a, b, out, err);
  void *ba = aal_call_in(&c, a), *bb = aal_call_in(&c, b), *bo = aal_call_out(&c, out);
  if (c.rc == AAL_OK)
    c.rc = kernel(ops->be, a->size, ba, bb, bo, err);
  return aal_call_end(&c);
}

static int ad_relu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                            aal_tensor *dx, aal_error *err)
{
  return binary(ops, "relu_backward", aal_relu_backward_args, ops->be->relu_backward, dy, mask,
                dx, err);
}

static int ad_add_forward(const aal_ops *ops, const aal_tensor *a, const aal_tensor *b,
                          aal_tensor *y, aal_error *err)
{
  return binary(ops, "add", aal_add_args, ops->be->add, a, b, y, err);
}

typedef int (*pool_contract)(const char *op, const aal_tensor *in, const aal_tensor *out,
                             aal_error *err);
typedef int (*pool_kernel)(const aal_backend *be, int rows, int hw, const void *in, void *out,
                           aal_error *err);

/* Both directions of the pooling: in -> out, map the [N, C, H, W] one of the two. */
static int pool(const aal_ops *ops, const char *name, pool_contract contract,
                pool_kernel kernel, const aal_tensor *in, aal_tensor *out,
                const aal_tensor *map, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, name, err);
  if ((c.rc = contract(c.op, in, out, err)) != AAL_OK)
    return c.rc;
  const size_t rows = map->shape[0] * map->shape[1], hw = map->shape[2] * map->shape[3];
  c.rc = fits_int(rows, c.op, "rows", err);
  if (c.rc == AAL_OK)
    c.rc = fits_int(hw, c.op, "H*W", err);
  void *bi = aal_call_in(&c, in), *bo = aal_call_out(&c, out);
  if (c.rc == AAL_OK)
    c.rc = kernel(ops->be, (int)rows, (int)hw, bi, bo, err);
  return aal_call_end(&c);
}

static int ad_avgpool_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                              aal_error *err)
{
  return pool(ops, "avgpool_forward", aal_avgpool_forward_args, ops->be->avgpool_forward, x,
              y, x, err);
}

static int ad_avgpool_backward(const aal_ops *ops, const aal_tensor *dy, aal_tensor *dx,
                               aal_error *err)
{
  return pool(ops, "avgpool_backward", aal_avgpool_backward_args, ops->be->avgpool_backward,
              dy, dx, dx, err);
}

/* The backend's sizes of max pooling over x [N, C, H, W] (after the layer's contract):
 * each must fit an int (the backends compute offsets in size_t). */
static int maxpool_sizes(aal_call *c, const aal_tensor *x, int s[4])
{
  for (int d = 0; d < 4 && c->rc == AAL_OK; d++) {
    static const char *const names[4] = {"N", "C", "H", "W"};
    c->rc = fits_int(x->shape[d], c->op, names[d], c->err);
    if (c->rc == AAL_OK)
      s[d] = (int)x->shape[d];
  }
  return c->rc;
}

static int ad_maxpool_forward(const aal_ops *ops, const aal_tensor *x, int k, int stride,
                              int pad, aal_tensor *y, aal_error *err)
{
  aal_call c;
  int s[4] = {0, 0, 0, 0};
  aal_call_begin(&c, ops, "maxpool_forward", err);
  if ((c.rc = aal_maxpool2d_forward_args(c.op, x, k, stride, pad, y, err)) != AAL_OK)
    return c.rc;
  maxpool_sizes(&c, x, s);
  void *bx = aal_call_in(&c, x), *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->maxpool_forward(ops->be, s[0], s[1], s[2], s[3], k, stride, pad, bx, by,
                                    err);
  return aal_call_end(&c);
}

static int ad_maxpool_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                               int k, int stride, int pad, aal_tensor *dx, aal_error *err)
{
  aal_call c;
  int s[4] = {0, 0, 0, 0};
  aal_call_begin(&c, ops, "maxpool_backward", err);
  if ((c.rc = aal_maxpool2d_backward_args(c.op, dy, x, k, stride, pad, dx, err)) != AAL_OK)
    return c.rc;
  maxpool_sizes(&c, x, s);
  void *bdy = aal_call_in(&c, dy), *bx = aal_call_in(&c, x), *bdx = aal_call_out(&c, dx);
  if (c.rc == AAL_OK)
    c.rc = ops->be->maxpool_backward(ops->be, s[0], s[1], s[2], s[3], k, stride, pad, bdy, bx,
                                     bdx, err);
  return aal_call_end(&c);
}

/* ---------------------------------------------------------------- linear, xent */

/* The backend's sizes of a checked linear layer: x [n, in], w [out, in]. */
static int linear_sizes(const aal_tensor *x, const aal_tensor *w, const char *op, int *n,
                        int *in, int *out, aal_error *err)
{
  int rc = fits_int(x->size > w->size ? x->size : w->size, op, "size", err);
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
  aal_call c;
  int n = 0, in = 0, out = 0;
  aal_call_begin(&c, ops, "linear_forward", err);
  c.rc = aal_linear_forward_args(c.op, x, w, b, y, err);
  if (c.rc == AAL_OK)
    c.rc = linear_sizes(x, w, c.op, &n, &in, &out, err);
  void *bx = aal_call_in(&c, x), *bw = aal_call_in(&c, w), *bb = aal_call_in(&c, b);
  void *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->linear_forward(ops->be, n, in, out, bx, bw, bb, by, err);
  return aal_call_end(&c);
}

/* dx may be NULL (no input gradient): the backend then gets a NULL buffer. */
static int ad_linear_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                              const aal_tensor *w, aal_tensor *dx, aal_tensor *dw,
                              aal_tensor *db, aal_error *err)
{
  aal_call c;
  int n = 0, in = 0, out = 0;
  aal_call_begin(&c, ops, "linear_backward", err);
  c.rc = aal_linear_backward_args(c.op, dy, x, w, dx, dw, db, err);
  if (c.rc == AAL_OK)
    c.rc = linear_sizes(x, w, c.op, &n, &in, &out, err);
  void *bdy = aal_call_in(&c, dy), *bx = aal_call_in(&c, x), *bw = aal_call_in(&c, w);
  void *bdx = aal_call_out(&c, dx), *bdw = aal_call_out(&c, dw), *bdb = aal_call_out(&c, db);
  if (c.rc == AAL_OK)
    c.rc = ops->be->linear_backward(ops->be, n, in, out, bdy, bx, bw, bdx, bdw, bdb, err);
  return aal_call_end(&c);
}

/* As the reference: a non-finite logit is a numerical failure (a diverged run). */
static int finite_logits(const aal_tensor *logits, const char *op, aal_error *err)
{
  aal_tensor *h = aal_tensor_host_view(logits, err);  /* N x classes values come home */
  int rc = h != NULL ? AAL_OK : AAL_ENOMEM;
  for (size_t i = 0; rc == AAL_OK && i < h->size; i++)
    if (!isfinite(h->data[i]))
      rc = aal_fail(err, AAL_ENUMERIC, "%s: sample %zu has non-finite logit %g", op,
                    i / h->shape[1], h->data[i]);
  aal_tensor_release(h);
  return rc;
}

static int ad_xent_forward(const aal_ops *ops, const aal_tensor *logits, const int *labels,
                           double *loss, aal_tensor *prob, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "xent_forward", err);
  c.rc = aal_xent_forward_args(c.op, logits, labels, loss, prob, err);
  if (c.rc == AAL_OK)
    c.rc = fits_int(logits->size, c.op, "size", err);
  if (c.rc == AAL_OK)
    c.rc = finite_logits(logits, c.op, err);
  void *bl = aal_call_in(&c, logits), *bp = aal_call_out(&c, prob);
  if (c.rc == AAL_OK)
    c.rc = ops->be->xent_forward(ops->be, (int)logits->shape[0], (int)logits->shape[1], bl,
                                 labels, loss, bp, err);
  return aal_call_end(&c);
}

static int ad_xent_backward(const aal_ops *ops, const aal_tensor *prob, const int *labels,
                            aal_tensor *dlogits, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "xent_backward", err);
  c.rc = aal_xent_backward_args(c.op, prob, labels, dlogits, err);
  if (c.rc == AAL_OK)
    c.rc = fits_int(prob->size, c.op, "size", err);
  void *bp = aal_call_in(&c, prob), *bd = aal_call_out(&c, dlogits);
  if (c.rc == AAL_OK)
    c.rc = ops->be->xent_backward(ops->be, (int)prob->shape[0], (int)prob->shape[1], bp,
                                  labels, bd, err);
  return aal_call_end(&c);
}

/* ---------------------------------------------------------------- sgd, scale */

static int ad_sgd_update(const aal_ops *ops, aal_tensor *w, const aal_tensor *g, aal_tensor *buf,
                         double lr, double momentum, double weight_decay, int first,
                         aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "sgd_update", err);
  if ((c.rc = aal_sgd_args(c.op, w, g, buf, lr, momentum, weight_decay, err)) != AAL_OK)
    return c.rc;
  void *bw = aal_call_inout(&c, w), *bg = aal_call_in(&c, g);
  /* no momentum buffer (momentum 0): a scratch one, always "first" (buf = d) */
  void *bb = buf == NULL ? aal_call_scratch(&c, w->size, 0)
             : first     ? aal_call_out(&c, buf)
                         : aal_call_inout(&c, buf);
  if (c.rc == AAL_OK)
    c.rc = ops->be->sgd_update(ops->be, w->size, bw, bg, bb, lr, momentum, weight_decay,
                               first || buf == NULL, err);
  return aal_call_end(&c);
}

static int ad_scale(const aal_ops *ops, aal_tensor *t, double s, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "scale", err);
  c.rc = aal_ops_scale_args(c.op, t, err);
  void *bt = aal_call_inout(&c, t);
  if (c.rc == AAL_OK)
    c.rc = ops->be->scale(ops->be, t->size, bt, s, bt, err);
  return aal_call_end(&c);
}

/* ---------------------------------------------------------------- ASA */

/* bits = (x > 0) and h = x + eps*bit in one pass (the backend's fused asa_input).  x is
 * not checked for negative elements here (it is a ReLU output by construction; the
 * reference table checks). */
static int ad_asa_input(const aal_ops *ops, const aal_tensor *x, double eps, aal_tensor *h,
                        aal_tensor *bits, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "asa_input", err);
  c.rc = aal_asa_args(c.op, x, bits, h, err);
  void *bx = aal_call_in(&c, x), *bh = aal_call_out(&c, h), *bb = aal_call_out(&c, bits);
  if (c.rc == AAL_OK)
    c.rc = ops->be->asa_input(ops->be, x->size, bx, eps, bh, bb, err);
  return aal_call_end(&c);
}

static int ad_asa_decode(const aal_ops *ops, const aal_tensor *bits, double eps,
                         aal_tensor *out, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "asa_decode", err);
  c.rc = aal_asa_args(c.op, out, bits, out, err);
  void *bb = aal_call_in(&c, bits), *bo = aal_call_out(&c, out);
  if (c.rc == AAL_OK)
    c.rc = ops->be->sign_unpack(ops->be, bits->size, bb, eps, bo, err);
  return aal_call_end(&c);
}

/* ---------------------------------------------------------------- LI */

/* The backend's li_reduce gives NaN for a sample whose h is zero, and also for one with
 * a non-finite element or an overflowing LI.  A NaN is therefore looked at on the host
 * (rare: h comes home only then), so that the outputs and errors are aal_li_batch's. */
static int li_nan_samples(const aal_tensor *h, const double *li, unsigned char *valid,
                          size_t *zero_norm, const char *op, aal_error *err)
{
  const size_t n = h->shape[0], per = h->size / n;
  int rc = AAL_OK;
  aal_tensor *hh = NULL;
  for (size_t s = 0; rc == AAL_OK && s < n; s++) {
    valid[s] = !isnan(li[s]);
    if (valid[s])
      continue;
    size_t i = 0;
    if (hh == NULL && (hh = aal_tensor_host_view(h, err)) == NULL) {
      rc = AAL_ENOMEM;
      break;
    }
    while (i < per && hh->data[s * per + i] == 0.0)
      i++;
    if (i == per)
      (*zero_norm)++;
    else
      rc = aal_fail(err, AAL_ENUMERIC, "%s: sample %zu: a non-finite h or r, or an LI that "
                    "overflows", op, s);
  }
  aal_tensor_release(hh);
  return rc;
}

static int ad_li_reduce(const aal_ops *ops, const aal_tensor *h, const aal_tensor *r,
                        double *li, unsigned char *valid, size_t *zero_norm, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "li_reduce", err);
  c.rc = aal_ops_li_args(c.op, h, r, err);
  if (c.rc == AAL_OK && (li == NULL || valid == NULL || zero_norm == NULL))
    c.rc = aal_fail(err, AAL_EINVAL, "%s: NULL output", c.op);
  if (c.rc == AAL_OK)
    c.rc = fits_int(h->shape[0], c.op, "samples", err);
  if (c.rc != AAL_OK)
    return c.rc;
  const size_t n = h->shape[0];
  void *bh = aal_call_in(&c, h), *br = aal_call_in(&c, r), *bli = aal_call_scratch(&c, n, 0);
  if (c.rc == AAL_OK)
    c.rc = ops->be->li_reduce(ops->be, (int)n, h->size / n, bh, br, bli, err);
  if (c.rc == AAL_OK)
    c.rc = ops->be->download(ops->be, li, bli, n, err);
  *zero_norm = 0;
  if (aal_call_end(&c) != AAL_OK)
    return c.rc;
  return li_nan_samples(h, li, valid, zero_norm, c.op, err);
}

/* ---------------------------------------------------------------- the table */

/* ---------------------------------------------------------------- Transformer layers */

/* The sizes of a row tensor [.., d] after its contract: *m = size / d, *d = last size,
 * each fitting an int. */
static int row_sizes(aal_call *c, const aal_tensor *x, int *m, int *d)
{
  if (c->rc != AAL_OK)
    return c->rc;
  const size_t dd = x->shape[x->ndim - 1];
  if ((c->rc = fits_int(x->size / dd, c->op, "M (rows)", c->err)) == AAL_OK &&
      (c->rc = fits_int(dd, c->op, "D (the last size)", c->err)) == AAL_OK) {
    *m = (int)(x->size / dd);
    *d = (int)dd;
  }
  return c->rc;
}

static int ad_layernorm_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                                const aal_tensor *beta, double eps, aal_tensor *y,
                                aal_tensor *mean, aal_tensor *invstd, aal_error *err)
{
  aal_call c;
  int m = 0, d = 0;
  aal_call_begin(&c, ops, "layernorm_forward", err);
  if ((c.rc = aal_layernorm_forward_args(c.op, x, gamma, beta, eps, y, mean, invstd, err)) !=
      AAL_OK)
    return c.rc;
  row_sizes(&c, x, &m, &d);
  void *bx = aal_call_in(&c, x), *bg = aal_call_in(&c, gamma), *bb = aal_call_in(&c, beta);
  void *by = aal_call_out(&c, y), *bm = aal_call_out(&c, mean), *bi = aal_call_out(&c, invstd);
  if (c.rc == AAL_OK)
    c.rc = ops->be->layernorm_forward(ops->be, m, d, bx, bg, bb, eps, by, bm, bi, err);
  return aal_call_end(&c);
}

static int ad_layernorm_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                                 const aal_tensor *gamma, const aal_tensor *mean,
                                 const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                                 aal_tensor *dbeta, aal_error *err)
{
  aal_call c;
  int m = 0, d = 0;
  aal_call_begin(&c, ops, "layernorm_backward", err);
  if ((c.rc = aal_layernorm_backward_args(c.op, dy, x, gamma, mean, invstd, dx, dgamma, dbeta,
                                          err)) != AAL_OK)
    return c.rc;
  row_sizes(&c, x, &m, &d);
  void *bdy = aal_call_in(&c, dy), *bx = aal_call_in(&c, x), *bg = aal_call_in(&c, gamma);
  void *bm = aal_call_in(&c, mean), *bi = aal_call_in(&c, invstd);
  void *bdx = aal_call_out(&c, dx), *bdg = aal_call_out(&c, dgamma);
  void *bdb = aal_call_out(&c, dbeta);
  if (c.rc == AAL_OK)
    c.rc = ops->be->layernorm_backward(ops->be, m, d, bdy, bx, bg, bm, bi, bdx, bdg, bdb, err);
  return aal_call_end(&c);
}

static int ad_gelu_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                           aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "gelu_forward", err);
  if ((c.rc = aal_gelu_args(c.op, x, y, NULL, err)) != AAL_OK)
    return c.rc;
  void *bx = aal_call_in(&c, x), *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->gelu_forward(ops->be, x->size, bx, by, err);
  return aal_call_end(&c);
}

static int ad_gelu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                            aal_tensor *dx, aal_error *err)
{
  aal_call c;
  aal_call_begin(&c, ops, "gelu_backward", err);
  if ((c.rc = aal_gelu_args(c.op, x, dy, dx, err)) != AAL_OK)
    return c.rc;
  void *bdy = aal_call_in(&c, dy), *bx = aal_call_in(&c, x), *bdx = aal_call_out(&c, dx);
  if (c.rc == AAL_OK)
    c.rc = ops->be->gelu_backward(ops->be, x->size, bdy, bx, bdx, err);
  return aal_call_end(&c);
}

static int ad_softmax_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                              aal_error *err)
{
  aal_call c;
  int m = 0, d = 0;
  aal_call_begin(&c, ops, "softmax_forward", err);
  if ((c.rc = aal_softmax_forward_args(c.op, x, y, err)) != AAL_OK)
    return c.rc;
  row_sizes(&c, x, &m, &d);
  void *bx = aal_call_in(&c, x), *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->softmax_forward(ops->be, m, d, bx, by, err);
  return aal_call_end(&c);
}

static int ad_softmax_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *y,
                               aal_tensor *dx, aal_error *err)
{
  aal_call c;
  int m = 0, d = 0;
  aal_call_begin(&c, ops, "softmax_backward", err);
  if ((c.rc = aal_softmax_backward_args(c.op, dy, y, dx, err)) != AAL_OK)
    return c.rc;
  row_sizes(&c, y, &m, &d);
  void *bdy = aal_call_in(&c, dy), *by = aal_call_in(&c, y), *bdx = aal_call_out(&c, dx);
  if (c.rc == AAL_OK)
    c.rc = ops->be->softmax_backward(ops->be, m, d, bdy, by, bdx, err);
  return aal_call_end(&c);
}

/* b, t, dh of q [B, T, E] (after the contract), each fitting an int. */
static int attention_sizes(aal_call *c, const aal_tensor *q, int heads, int s[3])
{
  static const char *const names[3] = {"B", "T", "E"};
  for (int i = 0; i < 3 && c->rc == AAL_OK; i++)
    c->rc = fits_int(q->shape[i], c->op, names[i], c->err);
  if (c->rc == AAL_OK) {
    s[0] = (int)q->shape[0];
    s[1] = (int)q->shape[1];
    s[2] = (int)q->shape[2] / heads;
  }
  return c->rc;
}

static int ad_attention_forward(const aal_ops *ops, const aal_tensor *q, const aal_tensor *k,
                                const aal_tensor *v, int heads, aal_tensor *p, aal_tensor *o,
                                aal_error *err)
{
  aal_call c;
  int s[3] = {0, 0, 0};
  aal_call_begin(&c, ops, "attention_forward", err);
  if ((c.rc = aal_attention_forward_args(c.op, q, k, v, heads, p, o, err)) != AAL_OK)
    return c.rc;
  attention_sizes(&c, q, heads, s);
  void *bq = aal_call_in(&c, q), *bk = aal_call_in(&c, k), *bv = aal_call_in(&c, v);
  void *bp = aal_call_out(&c, p), *bo = aal_call_out(&c, o);
  if (c.rc == AAL_OK)
    c.rc = ops->be->attention_forward(ops->be, s[0], s[1], heads, s[2], bq, bk, bv, bp, bo, err);
  return aal_call_end(&c);
}

static int ad_attention_backward(const aal_ops *ops, const aal_tensor *dout,
                                 const aal_tensor *q, const aal_tensor *k, const aal_tensor *v,
                                 const aal_tensor *p, int heads, aal_tensor *dq, aal_tensor *dk,
                                 aal_tensor *dv, aal_error *err)
{
  aal_call c;
  int s[3] = {0, 0, 0};
  aal_call_begin(&c, ops, "attention_backward", err);
  if ((c.rc = aal_attention_backward_args(c.op, dout, q, k, v, p, heads, dq, dk, dv, err)) !=
      AAL_OK)
    return c.rc;
  attention_sizes(&c, q, heads, s);
  void *bdo = aal_call_in(&c, dout), *bq = aal_call_in(&c, q), *bk = aal_call_in(&c, k);
  void *bv = aal_call_in(&c, v), *bp = aal_call_in(&c, p);
  void *bdq = aal_call_out(&c, dq), *bdk = aal_call_out(&c, dk), *bdv = aal_call_out(&c, dv);
  if (c.rc == AAL_OK)
    c.rc = ops->be->attention_backward(ops->be, s[0], s[1], heads, s[2], bdo, bq, bk, bv, bp,
                                       bdq, bdk, bdv, err);
  return aal_call_end(&c);
}

/* b, t, vocab, d of y [B, T, D] and table [V, D], each fitting an int. */
static int embed_sizes(aal_call *c, const aal_tensor *y, const aal_tensor *table, int s[4])
{
  const size_t v[4] = {y->shape[0], y->shape[1], table->shape[0], y->shape[2]};
  static const char *const names[4] = {"B", "T", "V", "D"};
  for (int i = 0; i < 4 && c->rc == AAL_OK; i++)
    if ((c->rc = fits_int(v[i], c->op, names[i], c->err)) == AAL_OK)
      s[i] = (int)v[i];
  return c->rc;
}

static int ad_embed_forward(const aal_ops *ops, const int *ids, const aal_tensor *table,
                            const aal_tensor *pos, aal_tensor *y, aal_error *err)
{
  aal_call c;
  int s[4] = {0, 0, 0, 0};
  aal_call_begin(&c, ops, "embed_forward", err);
  if ((c.rc = aal_embed_args(c.op, ids, table, pos, y, err)) != AAL_OK)
    return c.rc;
  embed_sizes(&c, y, table, s);
  void *bt = aal_call_in(&c, table), *bp = aal_call_in(&c, pos), *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->embed_forward(ops->be, s[0], s[1], s[2], s[3], ids, bt, bp, by, err);
  return aal_call_end(&c);
}

static int ad_embed_backward(const aal_ops *ops, const int *ids, const aal_tensor *dy,
                             aal_tensor *dtable, aal_tensor *dpos, aal_error *err)
{
  aal_call c;
  int s[4] = {0, 0, 0, 0};
  aal_call_begin(&c, ops, "embed_backward", err);
  if ((c.rc = aal_embed_args(c.op, ids, dtable, dpos, dy, err)) != AAL_OK)
    return c.rc;
  embed_sizes(&c, dy, dtable, s);
  void *bdy = aal_call_in(&c, dy), *bdt = aal_call_out(&c, dtable);
  void *bdp = aal_call_out(&c, dpos);
  if (c.rc == AAL_OK)
    c.rc = ops->be->embed_backward(ops->be, s[0], s[1], s[2], s[3], ids, bdy, bdt, bdp, err);
  return aal_call_end(&c);
}

/* b, c, h, w of the image [B, C, H, W], each fitting an int. */
static int image_sizes(aal_call *c, const aal_tensor *img, int s[4])
{
  static const char *const names[4] = {"B", "C", "H", "W"};
  for (int i = 0; i < 4 && c->rc == AAL_OK; i++)
    if ((c->rc = fits_int(img->shape[i], c->op, names[i], c->err)) == AAL_OK)
      s[i] = (int)img->shape[i];
  return c->rc;
}

static int ad_patchify_forward(const aal_ops *ops, const aal_tensor *x, int p, aal_tensor *y,
                               aal_error *err)
{
  aal_call c;
  int s[4] = {0, 0, 0, 0};
  aal_call_begin(&c, ops, "patchify_forward", err);
  if ((c.rc = aal_patchify_args(c.op, x, p, y, err)) != AAL_OK)
    return c.rc;
  image_sizes(&c, x, s);
  void *bx = aal_call_in(&c, x), *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->patchify_forward(ops->be, s[0], s[1], s[2], s[3], p, bx, by, err);
  return aal_call_end(&c);
}

static int ad_patchify_backward(const aal_ops *ops, const aal_tensor *dy, int p, aal_tensor *dx,
                                aal_error *err)
{
  aal_call c;
  int s[4] = {0, 0, 0, 0};
  aal_call_begin(&c, ops, "patchify_backward", err);
  if ((c.rc = aal_patchify_args(c.op, dx, p, dy, err)) != AAL_OK)
    return c.rc;
  image_sizes(&c, dx, s);
  void *bdy = aal_call_in(&c, dy), *bdx = aal_call_out(&c, dx);
  if (c.rc == AAL_OK)
    c.rc = ops->be->patchify_backward(ops->be, s[0], s[1], s[2], s[3], p, bdy, bdx, err);
  return aal_call_end(&c);
}

static int ad_transpose(const aal_ops *ops, const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  aal_call c;
  int s[3] = {0, 0, 0};
  aal_call_begin(&c, ops, "transpose", err);
  if ((c.rc = aal_transpose_args(c.op, x, y, err)) != AAL_OK)
    return c.rc;
  static const char *const names[3] = {"B", "A", "C"};
  for (int i = 0; i < 3 && c.rc == AAL_OK; i++)
    if ((c.rc = fits_int(x->shape[i], c.op, names[i], err)) == AAL_OK)
      s[i] = (int)x->shape[i];
  void *bx = aal_call_in(&c, x), *by = aal_call_out(&c, y);
  if (c.rc == AAL_OK)
    c.rc = ops->be->transpose(ops->be, s[0], s[1], s[2], bx, by, err);
  return aal_call_end(&c);
}

int aal_ops_from_backend(const aal_backend *be, aal_ops *ops, aal_error *err)
{
  if (be == NULL || ops == NULL)
    return aal_fail(err, AAL_EINVAL, "ops from backend: NULL argument");
  if (be->precision_bits != 24 && be->precision_bits != 53)
    return aal_fail(err, AAL_EINVAL, "ops from backend %s: precision of %d bits (24 or 53 "
                    "expected)", be->name, be->precision_bits);
  memset(ops, 0, sizeof *ops);
  ops->cache = aal_ops_cache_new(be);
  if (ops->cache == NULL)
    return aal_fail(err, AAL_ENOMEM, "ops from backend %s: buffer cache", be->name);
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
  ops->maxpool_forward = ad_maxpool_forward;
  ops->maxpool_backward = ad_maxpool_backward;
  ops->linear_forward = ad_linear_forward;
  ops->linear_backward = ad_linear_backward;
  ops->xent_forward = ad_xent_forward;
  ops->xent_backward = ad_xent_backward;
  ops->sgd_update = ad_sgd_update;
  ops->asa_input = ad_asa_input;
  ops->bn_relu_forward_train = ad_bn_relu_forward_train;
  ops->bn_relu_backward = ad_bn_relu_backward;
  ops->asa_decode = ad_asa_decode;
  ops->layernorm_forward = ad_layernorm_forward;
  ops->layernorm_backward = ad_layernorm_backward;
  ops->gelu_forward = ad_gelu_forward;
  ops->gelu_backward = ad_gelu_backward;
  ops->softmax_forward = ad_softmax_forward;
  ops->softmax_backward = ad_softmax_backward;
  ops->attention_forward = ad_attention_forward;
  ops->attention_backward = ad_attention_backward;
  ops->embed_forward = ad_embed_forward;
  ops->embed_backward = ad_embed_backward;
  ops->patchify_forward = ad_patchify_forward;
  ops->patchify_backward = ad_patchify_backward;
  ops->transpose = ad_transpose;
  ops->scale = ad_scale;
  ops->li_reduce = ad_li_reduce;
  return AAL_OK;
}
