/* The dnnl backend's write epoch (kernels/dnnl/conv.c, "Reuse"): every member of the
 * table that may write a backend buffer - cpu32's ops, alloc, release and the uploads -
 * runs behind a wrapper that bumps st->epoch and calls cpu32's own (st->base, with the
 * dnnl table, so cpu32's ops find their team).  The convs and the linear layer bump it
 * themselves; downloads write no backend buffer. */
#include <config.h>

#include "kernels/dnnl/dnnl_internal.h"

static aal_dnnl_state *bump(const aal_backend *be)
{
  aal_dnnl_state *st = be->ctx;
  st->epoch++;
  return st;
}

/* tracked_MEMBER(params): cpu32's MEMBER(args) after a bump */
#define TRACKED(member, params, args)                                                     \
  static int tracked_##member params                                                     \
  {                                                                                      \
    return bump(be)->base.member args;                                                   \
  }

TRACKED(alloc, (const aal_backend *be, size_t n, void **buf, aal_error *err),
        (be, n, buf, err))
TRACKED(alloc_bits, (const aal_backend *be, size_t n, void **buf, aal_error *err),
        (be, n, buf, err))
TRACKED(upload,
        (const aal_backend *be, void *buf, const double *host, size_t n, aal_error *err),
        (be, buf, host, n, err))
TRACKED(upload_bits,
        (const aal_backend *be, void *buf, const uint32_t *words, size_t n, aal_error *err),
        (be, buf, words, n, err))
TRACKED(bn_forward,
        (const aal_backend *be, int n, int c, int hw, const void *x, const void *gamma,
         const void *beta, double eps, void *y, void *mean, void *invstd, void *var,
         aal_error *err),
        (be, n, c, hw, x, gamma, beta, eps, y, mean, invstd, var, err))
TRACKED(bn_backward,
        (const aal_backend *be, int n, int c, int hw, const void *dy, const void *x,
         const void *gamma, const void *mean, const void *invstd, void *dx, void *dgamma,
         void *dbeta, aal_error *err),
        (be, n, c, hw, dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err))
TRACKED(bn_forward_eval,
        (const aal_backend *be, int n, int c, int hw, const void *x, const void *gamma,
         const void *beta, const void *running_mean, const void *running_var, double eps,
         void *y, aal_error *err),
        (be, n, c, hw, x, gamma, beta, running_mean, running_var, eps, y, err))
TRACKED(relu_forward,
        (const aal_backend *be, size_t n, const void *x, void *y, void *mask, aal_error *err),
        (be, n, x, y, mask, err))
TRACKED(relu_backward,
        (const aal_backend *be, size_t n, const void *dy, const void *mask, void *dx,
         aal_error *err),
        (be, n, dy, mask, dx, err))
TRACKED(add,
        (const aal_backend *be, size_t n, const void *a, const void *b, void *y,
         aal_error *err),
        (be, n, a, b, y, err))
TRACKED(scale,
        (const aal_backend *be, size_t n, const void *x, double s, void *y, aal_error *err),
        (be, n, x, s, y, err))
TRACKED(avgpool_forward,
        (const aal_backend *be, int rows, int hw, const void *x, void *y, aal_error *err),
        (be, rows, hw, x, y, err))
TRACKED(avgpool_backward,
        (const aal_backend *be, int rows, int hw, const void *dy, void *dx, aal_error *err),
        (be, rows, hw, dy, dx, err))
TRACKED(maxpool_forward,
        (const aal_backend *be, int n, int c, int h, int w, int k, int stride, int pad,
         const void *x, void *y, aal_error *err),
        (be, n, c, h, w, k, stride, pad, x, y, err))
TRACKED(maxpool_backward,
        (const aal_backend *be, int n, int c, int h, int w, int k, int stride, int pad,
         const void *dy, const void *x, void *dx, aal_error *err),
        (be, n, c, h, w, k, stride, pad, dy, x, dx, err))
TRACKED(xent_forward,
        (const aal_backend *be, int n, int classes, const void *logits, const int *labels,
         double *loss, void *prob, aal_error *err),
        (be, n, classes, logits, labels, loss, prob, err))
TRACKED(xent_backward,
        (const aal_backend *be, int n, int classes, const void *prob, const int *labels,
         void *dlogits, aal_error *err),
        (be, n, classes, prob, labels, dlogits, err))
TRACKED(sign_pack,
        (const aal_backend *be, size_t n, const void *x, void *bits, aal_error *err),
        (be, n, x, bits, err))
TRACKED(sign_unpack,
        (const aal_backend *be, size_t n, const void *bits, double eps, void *out,
         aal_error *err),
        (be, n, bits, eps, out, err))
TRACKED(asa_input,
        (const aal_backend *be, size_t n, const void *x, double eps, void *h, void *bits,
         aal_error *err),
        (be, n, x, eps, h, bits, err))
TRACKED(bn_relu_forward,
        (const aal_backend *be, int n, int c, int hw, const void *x, const void *gamma,
         const void *beta, double eps, void *y, void *mask, void *mean, void *invstd,
         void *var, aal_error *err),
        (be, n, c, hw, x, gamma, beta, eps, y, mask, mean, invstd, var, err))
TRACKED(bn_relu_backward,
        (const aal_backend *be, int n, int c, int hw, const void *dy, const void *mask,
         const void *x, const void *gamma, const void *mean, const void *invstd, void *dx,
         void *dgamma, void *dbeta, aal_error *err),
        (be, n, c, hw, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta, err))
TRACKED(li_reduce,
        (const aal_backend *be, int n, size_t per, const void *h, const void *r, void *li,
         aal_error *err),
        (be, n, per, h, r, li, err))
TRACKED(sgd_update,
        (const aal_backend *be, size_t n, void *w, const void *g, void *buf, double lr,
         double momentum, double weight_decay, int first, aal_error *err),
        (be, n, w, g, buf, lr, momentum, weight_decay, first, err))

TRACKED(layernorm_forward,
        (const aal_backend *be, int m, int d, const void *x, const void *gamma,
         const void *beta, double eps, void *y, void *mean, void *invstd, aal_error *err),
        (be, m, d, x, gamma, beta, eps, y, mean, invstd, err))
TRACKED(layernorm_backward,
        (const aal_backend *be, int m, int d, const void *dy, const void *x,
         const void *gamma, const void *mean, const void *invstd, void *dx, void *dgamma,
         void *dbeta, aal_error *err),
        (be, m, d, dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err))
TRACKED(gelu_forward,
        (const aal_backend *be, size_t n, const void *x, void *y, aal_error *err),
        (be, n, x, y, err))
TRACKED(gelu_backward,
        (const aal_backend *be, size_t n, const void *dy, const void *x, void *dx,
         aal_error *err),
        (be, n, dy, x, dx, err))
TRACKED(softmax_forward,
        (const aal_backend *be, int m, int d, const void *x, void *y, aal_error *err),
        (be, m, d, x, y, err))
TRACKED(softmax_backward,
        (const aal_backend *be, int m, int d, const void *dy, const void *y, void *dx,
         aal_error *err),
        (be, m, d, dy, y, dx, err))
TRACKED(attention_forward,
        (const aal_backend *be, int b, int t, int heads, int dh, const void *q,
         const void *k, const void *v, void *p, void *o, aal_error *err),
        (be, b, t, heads, dh, q, k, v, p, o, err))
TRACKED(attention_backward,
        (const aal_backend *be, int b, int t, int heads, int dh, const void *dout,
         const void *q, const void *k, const void *v, const void *p, void *dq, void *dk,
         void *dv, aal_error *err),
        (be, b, t, heads, dh, dout, q, k, v, p, dq, dk, dv, err))
TRACKED(embed_forward,
        (const aal_backend *be, int b, int t, int vocab, int d, const int *ids,
         const void *table, const void *pos, void *y, aal_error *err),
        (be, b, t, vocab, d, ids, table, pos, y, err))
TRACKED(embed_backward,
        (const aal_backend *be, int b, int t, int vocab, int d, const int *ids,
         const void *dy, void *dtable, void *dpos, aal_error *err),
        (be, b, t, vocab, d, ids, dy, dtable, dpos, err))
TRACKED(patchify_forward,
        (const aal_backend *be, int b, int c, int h, int w, int p, const void *x, void *y,
         aal_error *err),
        (be, b, c, h, w, p, x, y, err))
TRACKED(patchify_backward,
        (const aal_backend *be, int b, int c, int h, int w, int p, const void *dy,
         void *dx, aal_error *err),
        (be, b, c, h, w, p, dy, dx, err))
TRACKED(transpose,
        (const aal_backend *be, int b, int a, int c, const void *x, void *y, aal_error *err),
        (be, b, a, c, x, y, err))

static void tracked_release(const aal_backend *be, void *buf)
{
  bump(be)->base.release(be, buf);
}

void aal_dnnl_track(aal_backend *be)
{
  be->alloc = tracked_alloc;
  be->alloc_bits = tracked_alloc_bits;
  be->release = tracked_release;
  be->upload = tracked_upload;
  be->upload_bits = tracked_upload_bits;
  be->bn_forward = tracked_bn_forward;
  be->bn_backward = tracked_bn_backward;
  be->bn_forward_eval = tracked_bn_forward_eval;
  be->relu_forward = tracked_relu_forward;
  be->relu_backward = tracked_relu_backward;
  be->add = tracked_add;
  be->scale = tracked_scale;
  be->avgpool_forward = tracked_avgpool_forward;
  be->avgpool_backward = tracked_avgpool_backward;
  be->maxpool_forward = tracked_maxpool_forward;
  be->maxpool_backward = tracked_maxpool_backward;
  be->xent_forward = tracked_xent_forward;
  be->xent_backward = tracked_xent_backward;
  be->sign_pack = tracked_sign_pack;
  be->sign_unpack = tracked_sign_unpack;
  be->asa_input = tracked_asa_input;
  be->bn_relu_forward = tracked_bn_relu_forward;
  be->bn_relu_backward = tracked_bn_relu_backward;
  be->li_reduce = tracked_li_reduce;
  be->sgd_update = tracked_sgd_update;
  be->layernorm_forward = tracked_layernorm_forward;
  be->layernorm_backward = tracked_layernorm_backward;
  be->gelu_forward = tracked_gelu_forward;
  be->gelu_backward = tracked_gelu_backward;
  be->softmax_forward = tracked_softmax_forward;
  be->softmax_backward = tracked_softmax_backward;
  be->attention_forward = tracked_attention_forward;
  be->attention_backward = tracked_attention_backward;
  be->embed_forward = tracked_embed_forward;
  be->embed_backward = tracked_embed_backward;
  be->patchify_forward = tracked_patchify_forward;
  be->patchify_backward = tracked_patchify_backward;
  be->transpose = tracked_transpose;
}
