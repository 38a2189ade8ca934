/* The reference op table (sim/ops/ops.h): each entry forwards to the sim/layers
 * function it stands for, unchanged, so that a pass with it is bit-identical to a pass
 * without a table. */
#include "sim/ops/ops_internal.h"

#include <stdio.h>

#include "sim/layers/conv.h"
#include "sim/layers/layers.h"
#include "sim/layers/li.h"
#include "sim/layers/transformer.h"

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

static int ref_maxpool_forward(const aal_ops *ops, const aal_tensor *x, int k, int stride,
                               int pad, aal_tensor *y, aal_error *err)
{
  (void)ops;
  return aal_maxpool2d_forward(x, k, stride, pad, y, err);
}

static int ref_maxpool_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                                int k, int stride, int pad, aal_tensor *dx, aal_error *err)
{
  (void)ops;
  return aal_maxpool2d_backward(dy, x, k, stride, pad, dx, err);
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

/* ---------------------------------------------------------------- LI, scale: contracts
 * of ops without a layer function, for both tables */

int aal_ops_li_args(const char *op, const aal_tensor *h, const aal_tensor *r, aal_error *err)
{
  if (h == NULL || r == NULL || h->dtype != AAL_F64 || r->dtype != AAL_F64)
    return aal_fail(err, AAL_EINVAL, "%s: h and r must be value tensors", op);
  if (!aal_tensor_same_shape(h, r))
    return aal_tensor_require_same(h, r, "h", "r", err);
  return AAL_OK;
}

int aal_ops_scale_args(const char *op, const aal_tensor *t, aal_error *err)
{
  char what[96];
  snprintf(what, sizeof what, "%s: t", op);
  return aal_tensor_require(t, t != NULL ? t->ndim : 1, AAL_F64, what, err);
}

static int ref_li_reduce(const aal_ops *ops, const aal_tensor *h, const aal_tensor *r,
                         double *li, unsigned char *valid, size_t *zero_norm, aal_error *err)
{
  (void)ops;
  int rc = aal_ops_li_args("ref li_reduce", h, r, err);
  if (rc != AAL_OK)
    return rc;
  /* h and r may live elsewhere (the step check reduces a backend's tensors here) */
  aal_tensor *hh = aal_tensor_host_view(h, err);
  aal_tensor *hr = hh != NULL ? aal_tensor_host_view(r, err) : NULL;
  rc = hr != NULL ? aal_li_batch(hh->data, hr->data, h->shape[0], h->size / h->shape[0], li,
                                 valid, zero_norm, err)
                  : AAL_ENOMEM;
  aal_tensor_release(hh);
  aal_tensor_release(hr);
  return rc;
}

static int ref_scale(const aal_ops *ops, aal_tensor *t, double s, aal_error *err)
{
  (void)ops;
  int rc = aal_ops_scale_args("ref scale", t, err);
  for (size_t i = 0; rc == AAL_OK && i < t->size; i++)
    t->data[i] *= s;
  return rc;
}

/* ---- the Transformer layers */

static int ref_layernorm_forward(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                                 const aal_tensor *beta, double eps, aal_tensor *y,
                                 aal_tensor *mean, aal_tensor *invstd, aal_error *err)
{
  (void)ops;
  return aal_layernorm_forward(x, gamma, beta, eps, y, mean, invstd, err);
}

static int ref_layernorm_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                                  const aal_tensor *gamma, const aal_tensor *mean,
                                  const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                                  aal_tensor *dbeta, aal_error *err)
{
  (void)ops;
  return aal_layernorm_backward(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
}

static int ref_gelu_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                            aal_error *err)
{
  (void)ops;
  return aal_gelu_forward(x, y, err);
}

static int ref_gelu_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                             aal_tensor *dx, aal_error *err)
{
  (void)ops;
  return aal_gelu_backward(dy, x, dx, err);
}

static int ref_softmax_forward(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                               aal_error *err)
{
  (void)ops;
  return aal_softmax_forward(x, y, err);
}

static int ref_softmax_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *y,
                                aal_tensor *dx, aal_error *err)
{
  (void)ops;
  return aal_softmax_backward(dy, y, dx, err);
}

static int ref_attention_forward(const aal_ops *ops, const aal_tensor *q, const aal_tensor *k,
                                 const aal_tensor *v, int heads, aal_tensor *p, aal_tensor *o,
                                 aal_error *err)
{
  (void)ops;
  return aal_attention_forward(q, k, v, heads, p, o, err);
}

static int ref_attention_backward(const aal_ops *ops, const aal_tensor *dout,
                                  const aal_tensor *q, const aal_tensor *k, const aal_tensor *v,
                                  const aal_tensor *p, int heads, aal_tensor *dq,
                                  aal_tensor *dk, aal_tensor *dv, aal_error *err)
{
  (void)ops;
  return aal_attention_backward(dout, q, k, v, p, heads, dq, dk, dv, err);
}

static int ref_embed_forward(const aal_ops *ops, const int *ids, const aal_tensor *table,
                             const aal_tensor *pos, aal_tensor *y, aal_error *err)
{
  (void)ops;
  return aal_embed_forward(ids, table, pos, y, err);
}

static int ref_embed_backward(const aal_ops *ops, const int *ids, const aal_tensor *dy,
                              aal_tensor *dtable, aal_tensor *dpos, aal_error *err)
{
  (void)ops;
  return aal_embed_backward(ids, dy, dtable, dpos, err);
}

static int ref_patchify_forward(const aal_ops *ops, const aal_tensor *x, int p, aal_tensor *y,
                                aal_error *err)
{
  (void)ops;
  return aal_patchify_forward(x, p, y, err);
}

static int ref_patchify_backward(const aal_ops *ops, const aal_tensor *dy, int p,
                                 aal_tensor *dx, aal_error *err)
{
  (void)ops;
  return aal_patchify_backward(dy, p, dx, err);
}

static int ref_transpose(const aal_ops *ops, const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  (void)ops;
  return aal_transpose(x, y, err);
}

static const aal_ops ref_table = {
    .name = "ref",
    .precision_bits = 53,
    .be = NULL,
    .cache = NULL,
    .conv_forward = ref_conv_forward,
    .conv_backward_data = ref_conv_backward_data,
    .conv_backward_filter = ref_conv_backward_filter,
    .bn_forward_train = ref_bn_forward_train,
    .bn_forward_eval = ref_bn_forward_eval,
    .bn_backward = ref_bn_backward,
    .relu_forward = ref_relu_forward,
    .relu_backward = ref_relu_backward,
    .add_forward = ref_add_forward,
    .avgpool_forward = ref_avgpool_forward,
    .avgpool_backward = ref_avgpool_backward,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .linear_forward = ref_linear_forward,
    .linear_backward = ref_linear_backward,
    .xent_forward = ref_xent_forward,
    .xent_backward = ref_xent_backward,
    .sgd_update = ref_sgd_update,
    .asa_input = ref_asa_input,
    .bn_relu_forward_train = ref_bn_relu_forward_train,
    .bn_relu_backward = ref_bn_relu_backward,
    .li_reduce = ref_li_reduce,
    .scale = ref_scale,
    .asa_decode = ref_asa_decode,
    .layernorm_forward = ref_layernorm_forward,
    .layernorm_backward = ref_layernorm_backward,
    .gelu_forward = ref_gelu_forward,
    .gelu_backward = ref_gelu_backward,
    .softmax_forward = ref_softmax_forward,
    .softmax_backward = ref_softmax_backward,
    .attention_forward = ref_attention_forward,
    .attention_backward = ref_attention_backward,
    .embed_forward = ref_embed_forward,
    .embed_backward = ref_embed_backward,
    .patchify_forward = ref_patchify_forward,
    .patchify_backward = ref_patchify_backward,
    .transpose = ref_transpose};

const aal_ops *aal_ops_ref(void)
{
  return &ref_table;
}

const aal_ops *aal_ops_or_ref(const aal_ops *ops)
{
  return ops != NULL ? ops : &ref_table;
}

