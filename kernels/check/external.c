/* A candidate's tensors held against the reference (kernels/check/external.h): the op
 * table of what each op takes and gives, the shapes the tensors must have, their
 * decoding to doubles, and the run of the harness's own case for the op with the
 * candidate's tensors in place of drawn inputs and a tested backend (kc_ext_*: the hooks
 * the cases and the driver call, kernels/check/kcheck_internal.h). */
#include "kernels/check/external.h"
#include "kernels/check/kcheck_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

/* ================================================================ the ops */

/* The arguments an op takes, as bits. */
enum { A_STRIDE = 1, A_PAD = 2, A_KERNEL = 4, A_FIRST = 8, A_EPS = 16, A_S = 32, A_LR = 64,
       A_MOMENTUM = 128, A_WD = 256 };

typedef struct ext_ctx ext_ctx;

typedef struct {
  aal_kcheck_op_info info;
  unsigned args;
  int (*shape)(ext_ctx *c); /* the harness's shape from the tensors; what each must be */
} ext_op;

/* A tensor's dimensions. */
typedef struct {
  int nd;
  size_t d[AAL_KCHECK_MAXDIM];
} dims;

/* The tensors of one check, by the op's names. */
typedef struct {
  const char *name;
  const aal_kcheck_tensor *t; /* the caller's, or NULL (an output not given) */
  int output;
  dims want;                  /* the shape the op gives it (set by the shape function) */
  int has_want;
} ext_slot;

struct ext_ctx {
  const ext_op *op;
  const aal_kcheck_args *a;
  int nslot;
  ext_slot slot[16];
  kc_shape sh;
  aal_error *err;
};

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

static const ext_op *find_op(const char *name)
{
  for (int i = 0; name != NULL && i < EXT_NOPS; i++)
    if (strcmp(ext_ops[i].info.name, name) == 0)
      return &ext_ops[i];
  return NULL;
}

const aal_kcheck_op_info *aal_kcheck_external_op(const char *name)
{
  const ext_op *op = find_op(name);
  return op ? &op->info : NULL;
}

/* ================================================================ dtypes */

static const char *const dtype_names[] = {"float64", "float32", "float16", "bfloat16", "int64",
                                          "bool"};

const char *aal_kcheck_dtype_name(aal_kcheck_dtype t)
{
  return (unsigned)t < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[t] : "?";
}

int aal_kcheck_dtype_parse(const char *name)
{
  for (int i = 0; name != NULL && i < (int)(sizeof dtype_names / sizeof dtype_names[0]); i++)
    if (strcmp(name, dtype_names[i]) == 0)
      return i;
  return -1;
}

static int is_float(aal_kcheck_dtype t) { return t <= AAL_KCHECK_BF16; }

/* Significand bits (with the hidden one) of a float format: its unit roundoff is 2^-p. */
static int precision_bits(aal_kcheck_dtype t)
{
  return t == AAL_KCHECK_F64 ? 53 : t == AAL_KCHECK_F32 ? 24 : t == AAL_KCHECK_F16 ? 11 : 8;
}

/* Half the smallest subnormal: the absolute error of a rounding that underflows (float64:
 * the smallest itself, as 2^-1075 is no double; a float64 storage is never coarser than
 * the arithmetic, so it is not used). */
static double underflow_eta(aal_kcheck_dtype t)
{
  return t == AAL_KCHECK_F64 ? 0x1p-1074 : t == AAL_KCHECK_F32 ? 0x1p-150
         : t == AAL_KCHECK_F16 ? 0x1p-25 : 0x1p-134;
}

/* IEEE binary16 bits to double (exact). */
static double half_to_double(uint16_t h)
{
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double sign = h & 0x8000 ? -1.0 : 1.0;
  if (e == 0x1f)
    return m ? NAN : sign * INFINITY;
  if (e == 0)
    return sign * ldexp(m, -24); /* subnormal: m 2^-24 */
  return sign * ldexp(1024 + m, e - 25);
}

/* bfloat16 bits to double: the high half of a float32 (exact). */
static double bf16_to_double(uint16_t b)
{
  const uint32_t w = (uint32_t)b << 16;
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}

/* Element i of a tensor as a double (labels and bits too: they are small integers). */
static double element(const aal_kcheck_tensor *t, size_t i)
{
  switch (t->dtype) {
  case AAL_KCHECK_F64:
    return ((const double *)t->data)[i];
  case AAL_KCHECK_F32:
    return ((const float *)t->data)[i];
  case AAL_KCHECK_F16:
    return half_to_double(((const uint16_t *)t->data)[i]);
  case AAL_KCHECK_BF16:
    return bf16_to_double(((const uint16_t *)t->data)[i]);
  case AAL_KCHECK_I64:
    return (double)((const int64_t *)t->data)[i];
  case AAL_KCHECK_BOOL:
    return ((const uint8_t *)t->data)[i];
  }
  return NAN;
}

/* ================================================================ tensors and shapes */

static const char *src(const aal_kcheck_tensor *t) { return t->source ? t->source : t->name; }

static size_t count(const aal_kcheck_tensor *t)
{
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

static ext_slot *slot(ext_ctx *c, const char *name, int output)
{
  for (int i = 0; i < c->nslot; i++)
    if (c->slot[i].output == output && strcmp(c->slot[i].name, name) == 0)
      return &c->slot[i];
  return NULL;
}

/* Input name (given: slots of inputs are checked present before the shape function). */
static const aal_kcheck_tensor *input(ext_ctx *c, const char *name)
{
  const ext_slot *s = slot(c, name, 0);
  return s ? s->t : NULL;
}

/* The shape the op gives tensor name: dims d[0..nd). */
static void want(ext_ctx *c, const char *name, int output, int nd, const size_t *d)
{
  ext_slot *s = slot(c, name, output);
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
                    src(t), t->name, t->ndim, c->op->info.name, layout);
  return AAL_OK;
}

static int need_rank_min(ext_ctx *c, const aal_kcheck_tensor *t, int nd, const char *layout)
{
  if (t->ndim < nd)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has %d dimensions; %s takes it as %s",
                    src(t), t->name, t->ndim, c->op->info.name, layout);
  return AAL_OK;
}

/* A size the harness keeps in an int. */
static int as_int(ext_ctx *c, const aal_kcheck_tensor *t, size_t v, int *out)
{
  if (v > 1u << 30)
    return aal_fail(c->err, AAL_EINVAL, "%s: a dimension of %s is %zu (at most 2^30)", src(t),
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
    return aal_fail(c->err, AAL_EINVAL, "%s: %s (x %s, w %s)", c->op->info.name, e.msg, src(tx),
                    src(tw));
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
  const ext_slot *s = slot(c, name, 1);
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
  c->sh.len = count(x);
  if (c->sh.len == 0)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has no elements", src(x), x->name);
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
                    c->op->info.name, a->kernel, a->stride, a->pad, src(x), g->h, g->w);
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

/* ================================================================ validation */

static int is_bits(const char *name) { return strcmp(name, "mask") == 0 || strcmp(name, "bits") == 0; }
static int is_labels(const char *name) { return strcmp(name, "labels") == 0; }

/* The dtype a tensor must have. */
static aal_kcheck_dtype dtype_of(const aal_kcheck_args *a, const char *name)
{
  return is_bits(name) ? AAL_KCHECK_BOOL : is_labels(name) ? AAL_KCHECK_I64 : a->storage;
}

static int check_tensor(ext_ctx *c, const aal_kcheck_tensor *t)
{
  const aal_kcheck_dtype want_t = dtype_of(c->a, t->name);
  if (t->ndim < 0 || t->ndim > AAL_KCHECK_MAXDIM)
    return aal_fail(c->err, AAL_EINVAL, "%s: %d dimensions (0 to %d)", src(t), t->ndim,
                    AAL_KCHECK_MAXDIM);
  if (t->dtype != want_t)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s holds %s; %s takes %s%s", src(t), t->name,
                    aal_kcheck_dtype_name(t->dtype), c->op->info.name,
                    aal_kcheck_dtype_name(want_t),
                    is_float(want_t) ? " (the candidate's storage format)" : "");
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s has no elements", src(t), t->name);
    if (n > SIZE_MAX / 8 / t->shape[d])
      return aal_fail(c->err, AAL_EINVAL, "%s: the shape of %s overflows", src(t), t->name);
    n *= t->shape[d];
  }
  if (t->data == NULL)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has no data", src(t), t->name);
  return AAL_OK;
}

/* Places the caller's tensors in the op's slots: every name known, none twice, every
 * input given, at least one output. */
static int take(ext_ctx *c, const aal_kcheck_tensor *ts, int n, int output)
{
  const char *const *names = output ? c->op->info.outputs : c->op->info.inputs;
  for (int i = 0; i < n; i++) {
    const aal_kcheck_tensor *t = &ts[i];
    ext_slot *s = t->name ? slot(c, t->name, output) : NULL;
    if (s == NULL) {
      char list[128] = "";
      for (int j = 0; names[j] != NULL; j++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "",
                 names[j]);
      return aal_fail(c->err, AAL_EINVAL, "%s: %s has no %s '%s' (%s: %s)",
                      t->source ? t->source : c->op->info.name, c->op->info.name,
                      output ? "output" : "input", t->name ? t->name : "(null)",
                      output ? "outputs" : "inputs", list);
    }
    if (s->t != NULL)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s %s given twice", src(t),
                      output ? "output" : "input", t->name);
    const int rc = check_tensor(c, t);
    if (rc != AAL_OK)
      return rc;
    s->t = t;
  }
  return AAL_OK;
}

static int make_slots(ext_ctx *c, const aal_kcheck_tensor *in, int nin,
                      const aal_kcheck_tensor *out, int nout)
{
  for (int o = 0; o < 2; o++) {
    const char *const *names = o ? c->op->info.outputs : c->op->info.inputs;
    for (int j = 0; names[j] != NULL; j++)
      c->slot[c->nslot++] = (ext_slot){.name = names[j], .output = o};
  }
  if ((nin > 0 && in == NULL) || (nout > 0 && out == NULL) || nin < 0 || nout < 0)
    return aal_fail(c->err, AAL_EINVAL, "%s: NULL tensors", c->op->info.name);
  int rc = take(c, in, nin, 0);
  if (rc == AAL_OK)
    rc = take(c, out, nout, 1);
  if (rc != AAL_OK)
    return rc;
  int given = 0;
  for (int i = 0; i < c->nslot; i++) {
    const ext_slot *s = &c->slot[i];
    if (!s->output && s->t == NULL)
      return aal_fail(c->err, AAL_EINVAL, "%s: input %s is missing", c->op->info.name, s->name);
    given += s->output && s->t != NULL;
  }
  if (given == 0)
    return aal_fail(c->err, AAL_EINVAL, "%s: no output of the candidate to check",
                    c->op->info.name);
  return AAL_OK;
}

static const char *const arg_names[] = {"stride", "pad", "kernel", "first", "eps", "s", "lr",
                                        "momentum", "weight_decay"};

/* Whether argument i (the order of arg_names, the bits A_*) is set, and valid if so. */
static int arg_set(const aal_kcheck_args *a, int i, int *valid)
{
  const int ints[4] = {a->stride, a->pad, a->kernel, a->first};
  const double dbl[5] = {a->eps, a->s, a->lr, a->momentum, a->weight_decay};
  if (i < 4) {
    const int v = ints[i];
    *valid = i == 3 ? v == 0 || v == 1 : i == 1 ? v >= 0 : v >= 1;
    return v != AAL_KCHECK_UNSET;
  }
  const double v = dbl[i - 4];
  *valid = isfinite(v) && (i != 4 || v > 0);
  return !isnan(v);
}

static int check_args(ext_ctx *c)
{
  const aal_kcheck_args *a = c->a;
  const char *where = a->source ? a->source : c->op->info.name;
  if (!is_float(a->storage) || !is_float(a->accumulation))
    return aal_fail(c->err, AAL_EINVAL, "%s: storage and accumulation must be float64, "
                    "float32, float16 or bfloat16 (not %s, %s)", where,
                    aal_kcheck_dtype_name(a->storage), aal_kcheck_dtype_name(a->accumulation));
  for (int i = 0; i < (int)(sizeof arg_names / sizeof arg_names[0]); i++) {
    int valid = 0;
    const int set = arg_set(a, i, &valid), takes = (c->op->args >> i) & 1u;
    if (takes && !set)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s needs the argument %s (it takes: %s)", where,
                      c->op->info.name, arg_names[i], c->op->info.args);
    if (!takes && set)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s takes no argument %s (it takes: %s)", where,
                      c->op->info.name, arg_names[i],
                      c->op->info.args[0] ? c->op->info.args : "none");
    if (set && !valid)
      return aal_fail(c->err, AAL_EINVAL, "%s: argument %s of %s is out of range (stride, "
                      "kernel >= 1; pad >= 0; first 0 or 1; eps > 0 for batch norm; finite)",
                      where, arg_names[i], c->op->info.name);
  }
  return AAL_OK;
}

/* Shapes equal once dimensions of size 1 are left out ([N, C, 1, 1] is [N, C]; [1] a
 * scalar). */
static int same_shape(const aal_kcheck_tensor *t, const dims *w)
{
  size_t a[AAL_KCHECK_MAXDIM], b[AAL_KCHECK_MAXDIM];
  int na = 0, nb = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] != 1)
      a[na++] = t->shape[i];
  for (int i = 0; i < w->nd; i++)
    if (w->d[i] != 1)
      b[nb++] = w->d[i];
  return na == nb && memcmp(a, b, (size_t)na * sizeof a[0]) == 0;
}

static void shape_text(char *buf, size_t len, int nd, const size_t *d)
{
  int n = snprintf(buf, len, "(");
  for (int i = 0; i < nd && n > 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - (size_t)n, "%s%zu", i ? ", " : "", d[i]);
  if (n > 0 && (size_t)n < len)
    snprintf(buf + n, len - (size_t)n, "%s)", nd == 1 ? "," : "");
}

/* Inputs of the wrong shape are an error; outputs are reported (out[i].shape_mismatch)
 * and left out of the comparison. */
static int check_shapes(ext_ctx *c, aal_kcheck_report *r)
{
  for (int i = 0; i < c->nslot; i++) {
    ext_slot *s = &c->slot[i];
    if (s->t == NULL || !s->has_want || same_shape(s->t, &s->want))
      continue;
    char got[96], want_s[96];
    shape_text(got, sizeof got, s->t->ndim, s->t->shape);
    shape_text(want_s, sizeof want_s, s->want.nd, s->want.d);
    if (!s->output)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s has shape %s where %s needs %s",
                      src(s->t), s->name, got, c->op->info.name, want_s);
    for (int j = 0; j < r->noutputs; j++)
      if (strcmp(r->out[j].name, s->name) == 0) {
        r->out[j].shape_mismatch = r->out[j].failed = 1;
        r->out[j].ratio = INFINITY;
        snprintf(r->out[j].note, sizeof r->out[j].note, "shape %s where %s gives %s", got,
                 c->op->info.name, want_s);
      }
    s->t = NULL; /* not compared */
  }
  return AAL_OK;
}

/* ================================================================ the harness's case */

/* A tensor decoded to doubles, by the name the case's buffer has. */
typedef struct {
  const char *name;
  size_t n;
  double *val;          /* n values (bits and labels: their integers) */
  kc_result res;        /* outputs: what the comparisons found */
  int given;            /* outputs: the candidate's values are compared */
} ext_tensor;

struct kc_ext {
  const ext_op *op;
  const aal_kcheck_args *a;
  int nin, nout;
  ext_tensor in[8], out[AAL_KCHECK_MAXOUT];
  aal_error *err;
};

static int ext_index(const ext_tensor *ts, int n, const char *name)
{
  for (int i = 0; i < n; i++)
    if (strcmp(ts[i].name, name) == 0)
      return i;
  return -1;
}

static const ext_tensor *ext_find(const ext_tensor *ts, int n, const char *name)
{
  const int i = ext_index(ts, n, name);
  return i >= 0 ? &ts[i] : NULL;
}

/* The case names SGD's in-place buffers "w(first)" in the harness, "w" here. */
static int set_bits(kc_buf *b, const ext_tensor *t, int v)
{
  memset(b->words[v], 0, (b->n + 31) / 32 * sizeof(uint32_t));
  for (size_t i = 0; i < b->n; i++)
    if (t->val[i] != 0)
      b->words[v][i / 32] |= (uint32_t)1 << (i % 32);
  return AAL_OK;
}

static int set_labels(kc_ext *e, kc_case *k, const ext_tensor *t)
{
  k->labels = malloc(t->n * sizeof *k->labels);
  if (k->labels == NULL)
    return aal_fail(e->err, AAL_ENOMEM, "kcheck: %zu labels", t->n);
  for (size_t i = 0; i < t->n; i++)
    k->labels[i] = (int)t->val[i];
  return AAL_OK;
}

/* The op's arguments into the case's fields (scale keeps s in lr, as kernels/check/asa.c). */
static void set_args(const kc_ext *e, kc_case *k)
{
  const aal_kcheck_args *a = e->a;
  const unsigned takes = e->op->args;
  if (takes & A_EPS)
    k->eps = a->eps;
  if (takes & A_S)
    k->lr = a->s;
  if (takes & A_LR) {
    k->lr = a->lr;
    k->momentum = a->momentum;
    k->wd = a->weight_decay;
    k->first = a->first;
  }
}

int kc_ext_inputs(kc_run *run, kc_case *k, int *rc)
{
  kc_ext *e = run->ext;
  if (e == NULL)
    return 0;
  set_args(e, k);
  for (int i = 0; i < k->nbuf && *rc == AAL_OK; i++) {
    kc_buf *b = &k->buf[i];
    const ext_tensor *t = b->role == KC_OUT ? NULL : ext_find(e->in, e->nin, b->name);
    if (b->role == KC_OUT)
      continue;
    if (t == NULL || t->n != b->n) /* the shape functions size both: cannot happen */
      *rc = aal_fail(run->err, AAL_EINVAL, "kcheck: input %s of %s: %zu values for %zu",
                     b->name, e->op->info.name, t ? t->n : 0, b->n);
    else if (b->bits)
      set_bits(b, t, KC_REF);
    else
      memcpy(b->val[KC_REF], t->val, b->n * sizeof(double));
  }
  const ext_tensor *labels = ext_find(e->in, e->nin, "labels");
  if (*rc == AAL_OK && labels != NULL)
    *rc = set_labels(e, k, labels);
  return 1;
}

void kc_ext_outputs(kc_run *run, kc_case *k)
{
  kc_ext *e = run->ext;
  for (int i = 0; i < k->nbuf; i++) {
    kc_buf *b = &k->buf[i];
    const ext_tensor *t = b->role == KC_IN ? NULL : ext_find(e->out, e->nout, b->name);
    if (b->role == KC_IN)
      continue;
    const int given = t != NULL && t->given && t->n == b->n;
    if (b->bits && given)
      set_bits(b, t, KC_GOT);
    else if (b->bits)
      memcpy(b->words[KC_GOT], b->words[KC_REF], (b->n + 31) / 32 * sizeof(uint32_t));
    else
      memcpy(b->val[KC_GOT], given ? t->val : b->val[KC_REF], b->n * sizeof(double));
  }
  const ext_tensor *loss = ext_find(e->out, e->nout, "loss");
  if (loss != NULL)
    k->loss[KC_GOT] = loss->given ? loss->val[0] : k->loss[KC_REF];
}

void kc_ext_collect(kc_run *run, const kc_case *k)
{
  kc_ext *e = run->ext;
  for (int i = 0; i < k->nbuf; i++) {
    const int j = k->buf[i].role == KC_IN ? -1 : ext_index(e->out, e->nout, k->buf[i].name);
    if (j >= 0)
      e->out[j].res = k->buf[i].res;
  }
  const int loss = ext_index(e->out, e->nout, "loss");
  if (loss >= 0)
    e->out[loss].res = k->loss_res;
}

/* ================================================================ decoding, the run */

/* Decodes a tensor to doubles; inputs must be finite (but max pooling's x, whose NaN
 * wins), labels in [0, classes), bits 0 or 1. */
static int decode(ext_ctx *c, const aal_kcheck_tensor *t, int output, ext_tensor *d)
{
  d->name = t->name;
  d->n = count(t);
  d->given = 1;
  if ((d->val = malloc(d->n * sizeof(double))) == NULL)
    return aal_fail(c->err, AAL_ENOMEM, "%s: %zu values", src(t), d->n);
  const int nan_ok = strcmp(c->op->info.name, "maxpool_forward") == 0 ||
                     strcmp(c->op->info.name, "maxpool_backward") == 0;
  for (size_t i = 0; i < d->n; i++) {
    const double v = d->val[i] = element(t, i);
    if (t->dtype == AAL_KCHECK_BOOL && v > 1)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s[%zu] is %g, not 0 or 1", src(t), t->name, i,
                      v);
    if (t->dtype == AAL_KCHECK_I64 && !(v >= 0 && v < c->sh.b))
      return aal_fail(c->err, AAL_EINVAL, "%s: label %zu is %.0f, not in [0, %d)", src(t), i,
                      v, c->sh.b);
    if (!output && !isfinite(v) && !(nan_ok && strcmp(t->name, "x") == 0))
      return aal_fail(c->err, AAL_EINVAL, "%s: %s[%zu] is %g: the reference needs finite "
                      "inputs (but max pooling's x)", src(t), t->name, i, v);
  }
  return AAL_OK;
}

static void ext_free(kc_ext *e)
{
  for (int i = 0; i < e->nin; i++)
    free(e->in[i].val);
  for (int i = 0; i < e->nout; i++)
    free(e->out[i].val);
}

/* Every tensor of the check decoded: inputs, and outputs given with the op's shape (an
 * output left out has no values and is not compared). */
static int decode_all(ext_ctx *c, kc_ext *e)
{
  for (int i = 0; i < c->nslot; i++) {
    const ext_slot *s = &c->slot[i];
    ext_tensor *d = s->output ? &e->out[e->nout++] : &e->in[e->nin++];
    d->name = s->name;
    if (s->t == NULL)
      continue;
    const int rc = decode(c, s->t, s->output, d);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

/* The harness's case for the op (kernels/check/kcheck.c's table). */
static const kc_op *harness_case(const char *name)
{
  for (int i = 0; i < kc_nops; i++)
    if (strcmp(kc_ops[i].name, name) == 0)
      return &kc_ops[i];
  return NULL;
}

/* Runs the case on the reference backend, the candidate's outputs as the tested run's. */
static int run_case(ext_ctx *c, kc_ext *e, aal_kcheck_report *r)
{
  const kc_op *op = harness_case(c->op->info.name);
  aal_backend ref;
  int rc = op ? aal_backend_ref(&ref, c->err)
              : aal_fail(c->err, AAL_EINVAL, "kcheck: no case for %s", c->op->info.name);
  if (rc != AAL_OK)
    return rc;
  const aal_kcheck_args *a = c->a;
  kc_run run = {.be = {&ref, &ref, &ref}, .u = ldexp(1.0, -precision_bits(a->accumulation)),
                .rng = gsl_rng_alloc(gsl_rng_mt19937), .err = c->err, .ext = e};
  kc_row row;
  memset(&row, 0, sizeof row);
  r->u = run.u;
  r->u_storage = ldexp(1.0, -precision_bits(a->storage));
  if (r->u_storage > r->u) { /* outputs rounded once more, to a coarser format */
    row.store_u = r->u_storage;
    row.store_eta = underflow_eta(a->storage);
  }
  if (run.rng == NULL)
    rc = aal_fail(c->err, AAL_ENOMEM, "kcheck: a generator");
  else
    rc = op->run(&run, &c->sh, &row);
  /* the op's note (ties, windows); the bias statistics are each output's own note */
  if (strncmp(row.note, "bias ", 5) != 0)
    snprintf(r->note, sizeof r->note, "%s", row.note);
  gsl_rng_free(run.rng);
  ref.destroy(&ref);
  return rc;
}

/* ================================================================ the report */

static void report_init(ext_ctx *c, aal_kcheck_report *r)
{
  memset(r, 0, sizeof *r);
  snprintf(r->op, sizeof r->op, "%s", c->op->info.name);
  for (int i = 0; i < c->nslot; i++) {
    const ext_slot *s = &c->slot[i];
    if (!s->output || r->noutputs == AAL_KCHECK_MAXOUT)
      continue;
    aal_kcheck_output *o = &r->out[r->noutputs++];
    snprintf(o->name, sizeof o->name, "%s", s->name);
    snprintf(o->source, sizeof o->source, "%s", s->t ? src(s->t) : s->name);
    o->given = s->t != NULL;
    if (s->t != NULL) {
      o->ndim = s->t->ndim;
      memcpy(o->coord, s->t->shape, sizeof o->coord); /* the shape until the worst is known */
    }
  }
}

/* The worst element's coordinates in the output's own shape (C order). */
static void coordinates(aal_kcheck_output *o)
{
  size_t rest = o->index;
  const size_t *shape = o->coord;
  size_t c[AAL_KCHECK_MAXDIM];
  for (int d = o->ndim - 1; d >= 0; d--) {
    c[d] = shape[d] ? rest % shape[d] : 0;
    rest = shape[d] ? rest / shape[d] : 0;
  }
  memcpy(o->coord, c, (size_t)o->ndim * sizeof c[0]);
}

static void report_fill(const kc_ext *e, aal_kcheck_report *r)
{
  for (int i = 0; i < r->noutputs; i++) {
    aal_kcheck_output *o = &r->out[i];
    const ext_tensor *t = ext_find(e->out, e->nout, o->name);
    if (o->given && !o->shape_mismatch && t != NULL && t->res.checked) {
      const kc_result *res = &t->res;
      o->failed = res->failed;
      o->ratio = res->ratio;
      o->index = res->index;
      o->ref = res->ref;
      o->got = res->got;
      o->err = res->err;
      o->bound = res->bound;
      snprintf(o->note, sizeof o->note, "%s", res->note);
      coordinates(o);
      r->checked++;
      if (!(r->worst_ratio >= o->ratio))
        r->worst_ratio = o->ratio;
    }
    r->failed += o->failed;
    r->shape_mismatches += o->shape_mismatch;
  }
}

void aal_kcheck_args_init(aal_kcheck_args *a)
{
  memset(a, 0, sizeof *a);
  a->storage = a->accumulation = AAL_KCHECK_F32;
  a->stride = a->pad = a->kernel = a->first = AAL_KCHECK_UNSET;
  a->eps = a->s = a->lr = a->momentum = a->weight_decay = NAN;
}

static int unknown_op(const char *name, const char *where, aal_error *err)
{
  char list[1024] = "";
  for (int i = 0; i < EXT_NOPS; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
             ext_ops[i].info.name);
  return aal_fail(err, AAL_EINVAL, "%s: unknown op '%s' (ops: %s)", where,
                  name ? name : "(none)", list);
}

int aal_kcheck_external(const aal_kcheck_args *a, const aal_kcheck_tensor *in, int nin,
                        const aal_kcheck_tensor *out, int nout, aal_kcheck_report *r,
                        aal_error *err)
{
  aal_error local;
  if (err == NULL)
    err = &local;
  if (a == NULL || r == NULL)
    return aal_fail(err, AAL_EINVAL, "kcheck: NULL arguments or report");
  memset(r, 0, sizeof *r);
  ext_ctx c = {.op = find_op(a->op), .a = a, .err = err};
  if (c.op == NULL)
    return unknown_op(a->op, a->source ? a->source : "kcheck", err);
  int rc = check_args(&c);
  if (rc == AAL_OK)
    rc = make_slots(&c, in, nin, out, nout);
  if (rc == AAL_OK)
    rc = c.op->shape(&c);
  if (rc == AAL_OK) {
    report_init(&c, r);
    rc = check_shapes(&c, r);
  }
  kc_ext e = {.op = c.op, .a = a, .err = err};
  if (rc == AAL_OK)
    rc = decode_all(&c, &e);
  if (rc == AAL_OK)
    rc = run_case(&c, &e, r);
  if (rc == AAL_OK)
    report_fill(&e, r);
  ext_free(&e);
  return rc;
}

static void print_output(FILE *f, const aal_kcheck_output *o)
{
  char ratio[32], where[128] = "";
  snprintf(ratio, sizeof ratio, isinf(o->ratio) ? "inf" : "%.3g", o->ratio);
  if (!o->given && !o->shape_mismatch) {
    fprintf(f, "%-8s %9s  %-4s  (not given)\n", o->name, "-", "-");
    return;
  }
  if (o->shape_mismatch) {
    fprintf(f, "%-8s %9s  FAIL  %s%s%s\n", o->name, "-", o->note,
            strcmp(o->source, o->name) ? "  " : "", strcmp(o->source, o->name) ? o->source : "");
    return;
  }
  int n = snprintf(where, sizeof where, "%s[", o->name);
  for (int d = 0; d < o->ndim && n > 0 && (size_t)n < sizeof where; d++)
    n += snprintf(where + n, sizeof where - (size_t)n, "%s%zu", d ? "," : "", o->coord[d]);
  if (n > 0 && (size_t)n < sizeof where)
    snprintf(where + n, sizeof where - (size_t)n, "]");
  const int named = strcmp(o->source, o->name) != 0; /* a file, say */
  fprintf(f, "%-8s %9s  %-4s  %s ref=%.9g got=%.9g err=%.3g bound=%.3g%s%s%s%s\n", o->name,
          ratio, o->failed ? "FAIL" : "PASS", where, o->ref, o->got, o->err, o->bound,
          o->note[0] ? "  " : "", o->note, named ? "  " : "", named ? o->source : "");
}

void aal_kcheck_report_print(FILE *f, const aal_kcheck_report *r)
{
  if (f == NULL || r == NULL)
    return;
  fprintf(f, "kcheck %s: arithmetic u = 2^%d, storage u = 2^%d\n", r->op, ilogb(r->u),
          ilogb(r->u_storage));
  fprintf(f, "%-8s %9s  %-4s  %s\n", "output", "err/bound", "", "worst element");
  for (int i = 0; i < r->noutputs; i++)
    print_output(f, &r->out[i]);
  if (r->note[0] != '\0')
    fprintf(f, "note: %s\n", r->note);
  fprintf(f, "kcheck %s: %d output%s checked, %d failed%s, worst err/bound %.3g\n", r->op,
          r->checked, r->checked == 1 ? "" : "s", r->failed,
          r->shape_mismatches ? " (shapes)" : "", r->worst_ratio);
}

/* ================================================================ the op file */

static char *trim(char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

/* One value into the argument key names. */
static int set_arg(aal_kcheck_args *a, const char *key, const char *v, const char *path,
                   int line, aal_error *err)
{
  char *end;
  errno = 0;
  if (strcmp(key, "storage") == 0 || strcmp(key, "accumulation") == 0) {
    const int t = aal_kcheck_dtype_parse(v);
    if (t < 0 || !is_float((aal_kcheck_dtype)t))
      return aal_fail(err, AAL_EFORMAT, "%s:%d: %s '%s' (float64, float32, float16, bfloat16)",
                      path, line, key, v);
    *(key[0] == 's' ? &a->storage : &a->accumulation) = (aal_kcheck_dtype)t;
    return AAL_OK;
  }
  int *ints[4] = {&a->stride, &a->pad, &a->kernel, &a->first};
  double *dbl[5] = {&a->eps, &a->s, &a->lr, &a->momentum, &a->weight_decay};
  for (int i = 0; i < 9; i++) {
    if (strcmp(key, arg_names[i]) != 0)
      continue;
    if (i < 4) {
      const long x = strtol(v, &end, 10);
      if (end == v || *end != '\0' || errno == ERANGE || x < 0 || x > 1 << 30)
        return aal_fail(err, AAL_EFORMAT, "%s:%d: %s '%s' is not a non-negative integer", path,
                        line, key, v);
      *ints[i] = (int)x;
    } else {
      const double x = strtod(v, &end);
      if (end == v || *end != '\0' || !isfinite(x))
        return aal_fail(err, AAL_EFORMAT, "%s:%d: %s '%s' is not a finite number", path, line,
                        key, v);
      *dbl[i - 4] = x;
    }
    return AAL_OK;
  }
  return aal_fail(err, AAL_EFORMAT, "%s:%d: unknown key '%s' (op, storage, accumulation, "
                  "stride, pad, kernel, first, eps, s, lr, momentum, weight_decay)", path, line,
                  key);
}

/* Line `text` (number line) of the op file; seen: the keys given so far, one byte each. */
static int op_line(char *text, int line, aal_kcheck_args *a, char *strings, size_t len,
                   char *seen, const char *path, aal_error *err)
{
  char *s = trim(text);
  if (*s == '\0' || *s == '#')
    return AAL_OK;
  char *eq = strchr(s, '=');
  if (eq == NULL)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: expected 'key = value'", path, line);
  *eq = '\0';
  const char *key = trim(s), *v = trim(eq + 1);
  static const char *const keys[] = {"op", "storage", "accumulation", "stride", "pad", "kernel",
                                     "first", "eps", "s", "lr", "momentum", "weight_decay"};
  for (int i = 0; i < (int)(sizeof keys / sizeof keys[0]); i++)
    if (strcmp(key, keys[i]) == 0 && seen[i]++)
      return aal_fail(err, AAL_EFORMAT, "%s:%d: %s given twice", path, line, key);
  if (strcmp(key, "op") != 0)
    return set_arg(a, key, v, path, line, err);
  if (strlen(v) + 1 > len)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: op name too long", path, line);
  memcpy(strings, v, strlen(v) + 1);
  a->op = strings;
  return AAL_OK;
}

int aal_kcheck_args_read(const char *path, aal_kcheck_args *a, char *strings, size_t len,
                         aal_error *err)
{
  if (path == NULL || a == NULL || strings == NULL)
    return aal_fail(err, AAL_EINVAL, "kcheck: NULL op file, arguments or buffer");
  aal_kcheck_args_init(a);
  a->source = path;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  char text[512], seen[12] = {0};
  int rc = AAL_OK, line = 0;
  while (rc == AAL_OK && fgets(text, sizeof text, f) != NULL) {
    line++;
    if (strchr(text, '\n') == NULL && !feof(f))
      rc = aal_fail(err, AAL_EFORMAT, "%s:%d: line longer than %zu bytes", path, line,
                    sizeof text - 2);
    else
      rc = op_line(text, line, a, strings, len, seen, path, err);
  }
  if (rc == AAL_OK && ferror(f))
    rc = aal_fail(err, AAL_EIO, "%s: read error", path);
  fclose(f);
  if (rc == AAL_OK && !seen[0])
    rc = aal_fail(err, AAL_EFORMAT, "%s: no 'op = NAME' line", path);
  if (rc == AAL_OK && (!seen[1] || !seen[2]))
    rc = aal_fail(err, AAL_EFORMAT, "%s: the candidate's precision must be stated: 'storage = "
                  "...' and 'accumulation = ...' (float64, float32, float16, bfloat16)", path);
  return rc;
}
