/* The ops a candidate's tensors can be checked for (kernels/check/external.h): what each
 * takes and gives, and the shapes its tensors must have, from which the harness's shape
 * (kc_shape) follows.  Used by kernels/check/external.c. */
#include "kernels/check/external_internal.h"

#include <string.h>

#include "kernels/backend.h"

/* ================================================================ the ops */

static int conv_forward_shape(ext_ctx *c);
static int conv_backward_data_shape(ext_ctx *c);
static int conv_backward_filter_shape(ext_ctx *c);
static int bn_shape(ext_ctx *c);
static int elem_shape(ext_ctx *c);
static int avgpool_forward_shape(ext_ctx *c);
static int avgpool_backward_shape(ext_ctx *c);
static int maxpool_shape(ext_ctx *c);
static int linear_shape(ext_ctx *c);
static int xent_shape(ext_ctx *c);
static int li_shape(ext_ctx *c);

/* Tensor names as the harness's cases name their buffers (kernels/check/<op>.c). */
static const ext_op ext_ops[] = {
    {{"conv_forward", {"x", "w"}, {"y"}, "stride pad",
      "y = conv2d(x, w), no bias: x [N,C,H,W], w [K,C,R,S], y [N,K,P,Q]"},
     A_STRIDE | A_PAD, conv_forward_shape},
    {{"conv_backward_data", {"dy", "w"}, {"dx"}, "stride pad",
      "dx = conv2d's input gradient: dy [N,K,P,Q], w [K,C,R,S], dx [N,C,H,W] (H, W from dx)"},
     A_STRIDE | A_PAD, conv_backward_data_shape},
    {{"conv_backward_filter", {"x", "dy"}, {"dw"}, "stride pad",
      "dw = conv2d's weight gradient: x [N,C,H,W], dy [N,K,P,Q], dw [K,C,R,S] (R, S from dw)"},
     A_STRIDE | A_PAD, conv_backward_filter_shape},
    {{"bn_forward", {"x", "gamma", "beta"}, {"y", "mean", "invstd", "var"}, "eps",
      "batch norm, training: x, y [N,C,...]; per channel mean, invstd = 1/sqrt(var + eps), "
      "var (biased)"},
     A_EPS, bn_shape},
    {{"bn_backward", {"dy", "x", "gamma", "mean", "invstd"}, {"dx", "dgamma", "dbeta"}, "",
      "batch norm's backward from the saved mean and invstd"},
     0, bn_shape},
    {{"bn_forward_eval", {"x", "gamma", "beta", "running_mean", "running_var"}, {"y"}, "eps",
      "batch norm, evaluation: y = (x - running_mean) gamma / sqrt(running_var + eps) + beta"},
     A_EPS, bn_shape},
    {{"bn_relu_forward", {"x", "gamma", "beta"}, {"y", "mask", "mean", "invstd", "var"}, "eps",
      "bn_forward then ReLU, fused: mask = (z > 0)"},
     A_EPS, bn_shape},
    {{"bn_relu_backward", {"dy", "mask", "x", "gamma", "mean", "invstd"},
      {"dx", "dgamma", "dbeta"}, "", "bn_backward of dy * mask, fused"},
     0, bn_shape},
    {{"relu_forward", {"x"}, {"y", "mask"}, "", "y = max(x, 0), mask = (x > 0)"}, 0, elem_shape},
    {{"relu_backward", {"dy", "mask"}, {"dx"}, "", "dx = dy * mask"}, 0, elem_shape},
    {{"add", {"a", "b"}, {"y"}, "", "y = a + b"}, 0, elem_shape},
    {{"scale", {"x"}, {"y"}, "s", "y = s x (ASA's lr_expansion)"}, A_S, elem_shape},
    {{"sign_pack", {"x"}, {"bits"}, "", "ASA's sign bit: bits = (x > 0)"}, 0, elem_shape},
    {{"sign_unpack", {"bits"}, {"out"}, "eps", "ASA's decoding: out = eps * bit"}, A_EPS,
     elem_shape},
    {{"asa_input", {"x"}, {"h", "bits"}, "eps", "ASA's conv input: bits = (x > 0), h = x + eps bit"},
     A_EPS, elem_shape},
    {{"avgpool_forward", {"x"}, {"y"}, "",
      "global average pooling: x [N,C,H,W] -> y [N,C] (or x [rows, HW] -> y [rows])"},
     0, avgpool_forward_shape},
    {{"avgpool_backward", {"dy"}, {"dx"}, "", "its backward: dx [N,C,H,W] (H, W from dx)"}, 0,
     avgpool_backward_shape},
    {{"maxpool_forward", {"x"}, {"y"}, "kernel stride pad",
      "PyTorch's MaxPool2d (ceil_mode False): x [N,C,H,W], y [N,C,P,Q]; NaN wins"},
     A_KERNEL | A_STRIDE | A_PAD, maxpool_shape},
    {{"maxpool_backward", {"dy", "x"}, {"dx"}, "kernel stride pad",
      "its backward, the winners found again from x (ties: the first)"},
     A_KERNEL | A_STRIDE | A_PAD, maxpool_shape},
    {{"linear_forward", {"x", "w", "b"}, {"y"}, "", "y = x w^T + b: x [N,I], w [O,I], b [O]"}, 0,
     linear_shape},
    {{"linear_backward", {"dy", "x", "w"}, {"dx", "dw", "db"}, "", "its backward"}, 0,
     linear_shape},
    {{"xent_forward", {"logits", "labels"}, {"prob", "loss"}, "",
      "softmax cross-entropy: prob [N,C], the mean loss (a scalar); labels int64 [N]"},
     0, xent_shape},
    {{"xent_backward", {"prob", "labels"}, {"dlogits"}, "", "dlogits = (prob - onehot) / N"}, 0,
     xent_shape},
    {{"li_reduce", {"h", "r"}, {"li"}, "",
      "learning indicator per sample: li = (2 r.h - r.r) / h.h, NaN where h = 0"},
     0, li_shape},
    {{"sgd_update", {"w", "g", "buf"}, {"w", "buf"}, "lr momentum weight_decay first",
      "SGD with momentum (PyTorch): d = g + wd w; buf = first ? d : momentum buf + d; "
      "w -= lr buf"},
     A_LR | A_MOMENTUM | A_WD | A_FIRST, elem_shape},
};

#define EXT_NOPS ((int)(sizeof ext_ops / sizeof ext_ops[0]))

int aal_kcheck_external_op_count(void) { return EXT_NOPS; }

const aal_kcheck_op_info *aal_kcheck_external_op_at(int i)
{
  return i >= 0 && i < EXT_NOPS ? &ext_ops[i].info : NULL;
}

const ext_op *ext_find_op(const char *name)
{
  for (int i = 0; name != NULL && i < EXT_NOPS; i++)
    if (strcmp(ext_ops[i].info.name, name) == 0)
      return &ext_ops[i];
  return NULL;
}

const aal_kcheck_op_info *aal_kcheck_external_op(const char *name)
{
  const ext_op *op = ext_find_op(name);
  return op ? &op->info : NULL;
}

/* ================================================================ tensors and shapes */

const char *ext_src(const aal_kcheck_tensor *t) { return t->source ? t->source : t->name; }

size_t ext_count(const aal_kcheck_tensor *t)
{
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

ext_slot *ext_slot_of(ext_ctx *c, const char *name, int output)
{
  for (int i = 0; i < c->nslot; i++)
    if (c->slot[i].output == output && strcmp(c->slot[i].name, name) == 0)
      return &c->slot[i];
  return NULL;
}

/* Input name (given: slots of inputs are checked present before the shape function). */
static const aal_kcheck_tensor *input(ext_ctx *c, const char *name)
{
  const ext_slot *s = ext_slot_of(c, name, 0);
  return s ? s->t : NULL;
}

/* The shape the op gives tensor name: dims d[0..nd). */
static void want(ext_ctx *c, const char *name, int output, int nd, const size_t *d)
{
  ext_slot *s = ext_slot_of(c, name, output);
  if (s == NULL)
    return;
  s->want.nd = nd;
  for (int i = 0; i < nd; i++)
    s->want.d[i] = d[i];
  s->has_want = 1;
}

/* The same shape for every tensor of the op, inputs and outputs. */
static void want_all(ext_ctx *c, int nd, const size_t *d)
{
  for (int i = 0; i < c->nslot; i++)
    want(c, c->slot[i].name, c->slot[i].output, nd, d);
}

static void want4(ext_ctx *c, const char *name, int output, size_t a, size_t b, size_t e,
                  size_t f)
{
  const size_t d[4] = {a, b, e, f};
  want(c, name, output, 4, d);
}

/* The tensor name must have rank nd (it defines sizes the others follow). */
static int need_rank(ext_ctx *c, const aal_kcheck_tensor *t, int nd, const char *layout)
{
  if (t->ndim != nd)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has %d dimensions; %s takes it as %s",
                    ext_src(t), t->name, t->ndim, c->op->info.name, layout);
  return AAL_OK;
}

static int need_rank_min(ext_ctx *c, const aal_kcheck_tensor *t, int nd, const char *layout)
{
  if (t->ndim < nd)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has %d dimensions; %s takes it as %s",
                    ext_src(t), t->name, t->ndim, c->op->info.name, layout);
  return AAL_OK;
}

/* A size the harness keeps in an int. */
static int as_int(ext_ctx *c, const aal_kcheck_tensor *t, size_t v, int *out)
{
  if (v > 1u << 30)
    return aal_fail(c->err, AAL_EINVAL, "%s: a dimension of %s is %zu (at most 2^30)", ext_src(t),
                    t->name, v);
  *out = (int)v;
  return AAL_OK;
}

static size_t prod(const aal_kcheck_tensor *t, int from)
{
  size_t n = 1;
  for (int d = from; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

/* Conv geometry from x's (or dx's) [n, c, h, w] and w's (or dw's) [k, c, r, s]. */
static int conv_geometry(ext_ctx *c, const aal_kcheck_tensor *tx, const aal_kcheck_tensor *tw,
                         int n, int k)
{
  aal_conv_shape *cs = &c->sh.cs;
  int rc = AAL_OK;
  cs->n = n;
  cs->k = k;
  if ((rc = as_int(c, tx, tx->shape[1], &cs->c)) != AAL_OK ||
      (rc = as_int(c, tx, tx->shape[2], &cs->h)) != AAL_OK ||
      (rc = as_int(c, tx, tx->shape[3], &cs->w)) != AAL_OK ||
      (rc = as_int(c, tw, tw->shape[2], &cs->r)) != AAL_OK ||
      (rc = as_int(c, tw, tw->shape[3], &cs->s)) != AAL_OK)
    return rc;
  cs->stride = c->a->stride;
  cs->pad = c->a->pad;
  aal_error e;
  if (aal_conv_shape_init(cs, &e) != AAL_OK)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s (x %s, w %s)", c->op->info.name, e.msg, ext_src(tx),
                    ext_src(tw));
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%dx%dx%d k%d %dx%d s%d p%d", cs->n, cs->c, cs->h,
           cs->w, cs->k, cs->r, cs->s, cs->stride, cs->pad);
  return AAL_OK;
}

/* x [n, c, h, w], w [k, c, r, s] and y [n, k, p, q] of the conv's geometry. */
static void want_conv(ext_ctx *c, const char *x, int xout, const char *w, int wout,
                      const char *y, int yout)
{
  const aal_conv_shape *g = &c->sh.cs;
  want4(c, x, xout, (size_t)g->n, (size_t)g->c, (size_t)g->h, (size_t)g->w);
  want4(c, w, wout, (size_t)g->k, (size_t)g->c, (size_t)g->r, (size_t)g->s);
  want4(c, y, yout, (size_t)g->n, (size_t)g->k, (size_t)g->p, (size_t)g->q);
}

static int conv_forward_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, "x"), *w = input(c, "w");
  int rc, n = 0, k = 0;
  if ((rc = need_rank(c, x, 4, "[N,C,H,W]")) != AAL_OK ||
      (rc = need_rank(c, w, 4, "[K,C,R,S]")) != AAL_OK ||
      (rc = as_int(c, x, x->shape[0], &n)) != AAL_OK ||
      (rc = as_int(c, w, w->shape[0], &k)) != AAL_OK ||
      (rc = conv_geometry(c, x, w, n, k)) != AAL_OK)
    return rc;
  want_conv(c, "x", 0, "w", 0, "y", 1);
  return AAL_OK;
}

/* An output that defines sizes (conv's dx or dw: a stride above 1 leaves them open). */
static int defining_output(ext_ctx *c, const char *name, const aal_kcheck_tensor **t)
{
  const ext_slot *s = ext_slot_of(c, name, 1);
  if (s == NULL || s->t == NULL)
    return aal_fail(c->err, AAL_EINVAL, "%s needs its output %s: its shape gives sizes the "
                    "inputs do not", c->op->info.name, name);
  *t = s->t;
  return AAL_OK;
}

static int conv_backward_data_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *dy = input(c, "dy"), *w = input(c, "w"), *dx = NULL;
  int rc, n = 0, k = 0;
  if ((rc = defining_output(c, "dx", &dx)) != AAL_OK ||
      (rc = need_rank(c, dy, 4, "[N,K,P,Q]")) != AAL_OK ||
      (rc = need_rank(c, w, 4, "[K,C,R,S]")) != AAL_OK ||
      (rc = need_rank(c, dx, 4, "[N,C,H,W]")) != AAL_OK ||
      (rc = as_int(c, dy, dy->shape[0], &n)) != AAL_OK ||
      (rc = as_int(c, w, w->shape[0], &k)) != AAL_OK)
    return rc;
  aal_kcheck_tensor g = *dx; /* x's geometry: dx's height and width, w's channels */
  g.shape[1] = w->shape[1];
  if ((rc = conv_geometry(c, &g, w, n, k)) != AAL_OK)
    return rc;
  want_conv(c, "dx", 1, "w", 0, "dy", 0);
  return AAL_OK;
}

static int conv_backward_filter_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, "x"), *dy = input(c, "dy"), *dw = NULL;
  int rc, n = 0, k = 0;
  if ((rc = defining_output(c, "dw", &dw)) != AAL_OK ||
      (rc = need_rank(c, x, 4, "[N,C,H,W]")) != AAL_OK ||
      (rc = need_rank(c, dy, 4, "[N,K,P,Q]")) != AAL_OK ||
      (rc = need_rank(c, dw, 4, "[K,C,R,S]")) != AAL_OK ||
      (rc = as_int(c, x, x->shape[0], &n)) != AAL_OK ||
      (rc = as_int(c, dy, dy->shape[1], &k)) != AAL_OK ||
      (rc = conv_geometry(c, x, dw, n, k)) != AAL_OK)
    return rc;
  want_conv(c, "x", 0, "dw", 1, "dy", 0);
  return AAL_OK;
}

/* Batch norm: x [N, C, ...] (dy, y, dx, mask alike), per-channel tensors [C]. */
static int bn_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, "x");
  int rc;
  if ((rc = need_rank_min(c, x, 2, "[N,C,...]")) != AAL_OK ||
      (rc = as_int(c, x, x->shape[0], &c->sh.a)) != AAL_OK ||
      (rc = as_int(c, x, x->shape[1], &c->sh.b)) != AAL_OK ||
      (rc = as_int(c, x, prod(x, 2), &c->sh.c)) != AAL_OK)
    return rc;
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%dx%d", c->sh.a, c->sh.b, c->sh.c);
  static const char *const per[] = {"x", "y", "dy", "dx", "mask"};
  for (int i = 0; i < c->nslot; i++) {
    ext_slot *s = &c->slot[i];
    int big = 0;
    for (size_t j = 0; j < sizeof per / sizeof per[0]; j++)
      big |= strcmp(s->name, per[j]) == 0;
    if (big)
      want(c, s->name, s->output, x->ndim, x->shape);
    else
      want(c, s->name, s->output, 1, &x->shape[1]);
  }
  return AAL_OK;
}

/* Elementwise ops and SGD: every tensor has the first input's shape. */
static int elem_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, c->op->info.inputs[0]);
  c->sh.len = ext_count(x);
  if (c->sh.len == 0)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has no elements", ext_src(x), x->name);
  snprintf(c->sh.desc, sizeof c->sh.desc, "%zu", c->sh.len);
  want_all(c, x->ndim, x->shape);
  return AAL_OK;
}

/* x [N, C, ...] pools to [N, C] (x [rows, HW] to [rows]): rows and hw of the harness. */
static int pool_rows(ext_ctx *c, const aal_kcheck_tensor *x, dims *small)
{
  int rc = need_rank_min(c, x, 2, "[N,C,H,W] or [rows,HW]");
  if (rc != AAL_OK)
    return rc;
  const int lead = x->ndim == 2 ? 1 : 2;
  small->nd = lead;
  for (int i = 0; i < lead; i++)
    small->d[i] = x->shape[i];
  const size_t rows = lead == 1 ? x->shape[0] : x->shape[0] * x->shape[1];
  if ((rc = as_int(c, x, rows, &c->sh.a)) != AAL_OK ||
      (rc = as_int(c, x, prod(x, lead), &c->sh.b)) != AAL_OK)
    return rc;
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%d", c->sh.a, c->sh.b);
  return AAL_OK;
}

static int avgpool_forward_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, "x");
  dims y;
  const int rc = pool_rows(c, x, &y);
  if (rc == AAL_OK) {
    want(c, "x", 0, x->ndim, x->shape);
    want(c, "y", 1, y.nd, y.d);
  }
  return rc;
}

static int avgpool_backward_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *dx = NULL;
  dims dy;
  int rc = defining_output(c, "dx", &dx);
  if (rc == AAL_OK)
    rc = pool_rows(c, dx, &dy);
  if (rc == AAL_OK) {
    want(c, "dx", 1, dx->ndim, dx->shape);
    want(c, "dy", 0, dy.nd, dy.d);
  }
  return rc;
}

static int maxpool_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, "x");
  aal_conv_shape *g = &c->sh.cs;
  const aal_kcheck_args *a = c->a;
  int rc;
  if ((rc = need_rank(c, x, 4, "[N,C,H,W]")) != AAL_OK ||
      (rc = as_int(c, x, x->shape[0], &g->n)) != AAL_OK ||
      (rc = as_int(c, x, x->shape[1], &g->c)) != AAL_OK ||
      (rc = as_int(c, x, x->shape[2], &g->h)) != AAL_OK ||
      (rc = as_int(c, x, x->shape[3], &g->w)) != AAL_OK)
    return rc;
  g->k = g->c;
  g->r = g->s = a->kernel;
  g->stride = a->stride;
  g->pad = a->pad;
  g->p = aal_pool_out(g->h, a->kernel, a->stride, a->pad);
  g->q = aal_pool_out(g->w, a->kernel, a->stride, a->pad);
  if (g->p < 1 || g->q < 1)
    return aal_fail(c->err, AAL_EINVAL, "%s: kernel %d, stride %d, pad %d do not pool %s's "
                    "%dx%d (PyTorch's rule: pad <= kernel/2, kernel <= size + 2 pad)",
                    c->op->info.name, a->kernel, a->stride, a->pad, ext_src(x), g->h, g->w);
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%dx%dx%d k%d s%d p%d", g->n, g->c, g->h, g->w,
           a->kernel, a->stride, a->pad);
  want(c, "x", 0, 4, x->shape);
  want(c, "dx", 1, 4, x->shape);
  want4(c, "y", 1, x->shape[0], x->shape[1], (size_t)g->p, (size_t)g->q);
  want4(c, "dy", 0, x->shape[0], x->shape[1], (size_t)g->p, (size_t)g->q);
  return AAL_OK;
}

/* x [N, I], w [O, I], b [O]; y, dy [N, O]; dx [N, I], dw [O, I], db [O]. */
static int linear_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *x = input(c, "x"), *w = input(c, "w");
  int rc;
  if ((rc = need_rank(c, x, 2, "[N,I]")) != AAL_OK ||
      (rc = need_rank(c, w, 2, "[O,I]")) != AAL_OK ||
      (rc = as_int(c, x, x->shape[0], &c->sh.a)) != AAL_OK ||
      (rc = as_int(c, x, x->shape[1], &c->sh.b)) != AAL_OK ||
      (rc = as_int(c, w, w->shape[0], &c->sh.c)) != AAL_OK)
    return rc;
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%dx%d", c->sh.a, c->sh.b, c->sh.c);
  const size_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
  const size_t nin[2] = {n, in}, oin[2] = {out, in}, nout[2] = {n, out};
  want(c, "x", 0, 2, nin);
  want(c, "dx", 1, 2, nin);
  want(c, "w", 0, 2, oin);
  want(c, "dw", 1, 2, oin);
  want(c, "b", 0, 1, &out);
  want(c, "db", 1, 1, &out);
  want(c, "y", 1, 2, nout);
  want(c, "dy", 0, 2, nout);
  return AAL_OK;
}

/* logits, prob, dlogits [N, C]; labels [N]; loss a scalar. */
static int xent_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *z = input(c, c->op->info.inputs[0]);
  int rc;
  if ((rc = need_rank(c, z, 2, "[N,classes]")) != AAL_OK ||
      (rc = as_int(c, z, z->shape[0], &c->sh.a)) != AAL_OK ||
      (rc = as_int(c, z, z->shape[1], &c->sh.b)) != AAL_OK)
    return rc;
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%d", c->sh.a, c->sh.b);
  for (int i = 0; i < c->nslot; i++)
    want(c, c->slot[i].name, c->slot[i].output, 2, z->shape);
  want(c, "labels", 0, 1, z->shape);
  want(c, "loss", 1, 0, NULL);
  return AAL_OK;
}

/* h, r [N, ...] (per = the product of the rest), li [N]. */
static int li_shape(ext_ctx *c)
{
  const aal_kcheck_tensor *h = input(c, "h");
  int rc;
  if ((rc = need_rank_min(c, h, 1, "[N,...]")) != AAL_OK ||
      (rc = as_int(c, h, h->shape[0], &c->sh.a)) != AAL_OK)
    return rc;
  c->sh.len = prod(h, 1);
  snprintf(c->sh.desc, sizeof c->sh.desc, "%dx%zu", c->sh.a, c->sh.len);
  want(c, "h", 0, h->ndim, h->shape);
  want(c, "r", 0, h->ndim, h->shape);
  want(c, "li", 1, 1, h->shape);
  return AAL_OK;
}
