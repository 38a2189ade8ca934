/* Checking a kernel written outside the project (kernels/check/external.h):
 *
 *  a. every op: inputs drawn from the printed seed (masks and labels too), outputs from
 *     cpu32's kernel, given as float32 tensors: every output passes; the same outputs
 *     with one element moved by 2^-10 of max(|v|, 1/8) (a wrong bit for masks and signs) fail,
 *     with that element reported as the worst;
 *  b. a naive float32 conv (this file's, not the project's) passes; its off-by-one twin
 *     fails; NaN fails; an output of the wrong shape fails without being compared;
 *  c. float16 and bfloat16 storage: the naive conv accumulating in float32 and storing
 *     float16 (bfloat16) passes when it says so; accumulating in float16 it passes when it
 *     says float16 and fails when it claims float32 (a bound is a claim about the
 *     arithmetic); the storage term of a bound is exactly bound + u_s (|y| + bound) + eta;
 *  d. bad input: an unknown op, a missing, unknown or twice-given tensor, the wrong
 *     dtype, a missing or superfluous argument, inputs whose shapes disagree,
 *     non-finite inputs, labels out of range, a bool that is not 0 or 1, inputs the
 *     reference refuses (batch norm over one value): AAL_EINVAL with a message naming the
 *     tensor's source or the argument.
 *
 * The seed is $AAL_TEST_SEED (default 20261128), printed. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "tests/check/halfprec.h"
#include "kernels/backend.h"
#include "kernels/check/external.h"

static unsigned long g_seed;

/* ------------------------------------------------------------------ problems */

enum kind { VAL, BITS, LABELS };

/* A tensor of the test: values in double (bits 0/1, labels integers). */
typedef struct {
  const char *name;
  enum kind kind;
  int ndim;
  size_t shape[8];
  size_t n;
  double *v;
} tt;

typedef struct {
  aal_kcheck_args a;
  int nin, nout;
  tt in[8], out[6];
  int classes;          /* xent */
  gsl_rng *rng;
} prob;

static tt *add(tt *list, int *count, const char *name, enum kind kind, int ndim, size_t d0,
               size_t d1, size_t d2, size_t d3)
{
  tt *t = &list[(*count)++];
  const size_t d[4] = {d0, d1, d2, d3};
  *t = (tt){.name = name, .kind = kind, .ndim = ndim, .n = 1};
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = d[i];
    t->n *= d[i];
  }
  t->v = calloc(t->n, sizeof(double));
  ck_assert_ptr_nonnull(t->v);
  return t;
}

#define IN(p, ...) add((p)->in, &(p)->nin, __VA_ARGS__)
#define OUT(p, ...) add((p)->out, &(p)->nout, __VA_ARGS__)

static tt *find(tt *list, int n, const char *name)
{
  for (int i = 0; i < n; i++)
    if (strcmp(list[i].name, name) == 0)
      return &list[i];
  return NULL;
}

/* uniform on +-[1/1024, 1), rounded to float */
static double sym(gsl_rng *r)
{
  double v;
  do
    v = 2.0 * gsl_rng_uniform(r) - 1.0;
  while (fabs(v) < 1.0 / 1024);
  return (double)(float)v;
}

static void fill(prob *p, tt *t)
{
  for (size_t i = 0; i < t->n; i++)
    t->v[i] = t->kind == BITS     ? (double)gsl_rng_uniform_int(p->rng, 2)
              : t->kind == LABELS ? (double)gsl_rng_uniform_int(p->rng, (unsigned long)p->classes)
                                  : sym(p->rng);
}

/* The saved batch-norm statistics of x [n, c, hw], as float. */
static void saved_stats(const tt *x, tt *mean, tt *invstd, double eps)
{
  const size_t n = x->shape[0], c = x->shape[1], hw = x->n / (n * c);
  for (size_t ch = 0; ch < c; ch++) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < hw; j++)
        s += x->v[(i * c + ch) * hw + j];
    const double m = s / (double)(n * hw);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < hw; j++)
        s2 += (x->v[(i * c + ch) * hw + j] - m) * (x->v[(i * c + ch) * hw + j] - m);
    mean->v[ch] = (double)(float)m;
    invstd->v[ch] = (double)(float)(1.0 / sqrt(s2 / (double)(n * hw) + eps));
  }
}

/* Inputs of op (shapes small, arguments set) and its outputs, unfilled. */
static void setup(prob *p, const char *op)
{
  memset(p, 0, sizeof *p);
  p->rng = gsl_rng_alloc(gsl_rng_mt19937);
  unsigned long h = 5381; /* the seed mixed with the op's name (djb2), so each op draws its own */
  for (const char *c = op; *c != '\0'; c++)
    h = h * 33 + (unsigned char)*c;
  gsl_rng_set(p->rng, g_seed ^ h);
  aal_kcheck_args_init(&p->a);
  p->a.op = op;
  const int bn = strncmp(op, "bn_", 3) == 0, relu = strstr(op, "relu") != NULL;
  if (strcmp(op, "conv_forward") == 0) { /* x [2,3,5,6], w [4,3,3,3], stride 2, pad 1 */
    p->a.stride = 2, p->a.pad = 1;
    IN(p, "x", VAL, 4, 2, 3, 5, 6), IN(p, "w", VAL, 4, 4, 3, 3, 3);
    OUT(p, "y", VAL, 4, 2, 4, 3, 3);
  } else if (strcmp(op, "conv_backward_data") == 0) {
    p->a.stride = 2, p->a.pad = 1;
    IN(p, "dy", VAL, 4, 2, 4, 3, 3), IN(p, "w", VAL, 4, 4, 3, 3, 3);
    OUT(p, "dx", VAL, 4, 2, 3, 5, 6);
  } else if (strcmp(op, "conv_backward_filter") == 0) {
    p->a.stride = 1, p->a.pad = 0;
    IN(p, "x", VAL, 4, 2, 3, 5, 6), IN(p, "dy", VAL, 4, 2, 4, 3, 4);
    OUT(p, "dw", VAL, 4, 4, 3, 3, 3);
  } else if (bn && strstr(op, "backward")) {
    IN(p, "dy", VAL, 3, 3, 4, 5, 0);
    if (relu)
      IN(p, "mask", BITS, 3, 3, 4, 5, 0);
    IN(p, "x", VAL, 3, 3, 4, 5, 0), IN(p, "gamma", VAL, 1, 4, 0, 0, 0);
    IN(p, "mean", VAL, 1, 4, 0, 0, 0), IN(p, "invstd", VAL, 1, 4, 0, 0, 0);
    OUT(p, "dx", VAL, 3, 3, 4, 5, 0), OUT(p, "dgamma", VAL, 1, 4, 0, 0, 0);
    OUT(p, "dbeta", VAL, 1, 4, 0, 0, 0);
  } else if (bn) {
    p->a.eps = 1e-5;
    IN(p, "x", VAL, 3, 3, 4, 5, 0), IN(p, "gamma", VAL, 1, 4, 0, 0, 0);
    IN(p, "beta", VAL, 1, 4, 0, 0, 0);
    if (strcmp(op, "bn_forward_eval") == 0) {
      IN(p, "running_mean", VAL, 1, 4, 0, 0, 0), IN(p, "running_var", VAL, 1, 4, 0, 0, 0);
      OUT(p, "y", VAL, 3, 3, 4, 5, 0);
    } else {
      OUT(p, "y", VAL, 3, 3, 4, 5, 0);
      if (relu)
        OUT(p, "mask", BITS, 3, 3, 4, 5, 0);
      OUT(p, "mean", VAL, 1, 4, 0, 0, 0), OUT(p, "invstd", VAL, 1, 4, 0, 0, 0);
      OUT(p, "var", VAL, 1, 4, 0, 0, 0);
    }
  } else if (strcmp(op, "avgpool_forward") == 0) {
    IN(p, "x", VAL, 4, 2, 3, 4, 5), OUT(p, "y", VAL, 2, 2, 3, 0, 0);
  } else if (strcmp(op, "avgpool_backward") == 0) {
    IN(p, "dy", VAL, 2, 2, 3, 0, 0), OUT(p, "dx", VAL, 4, 2, 3, 4, 5);
  } else if (strncmp(op, "maxpool", 7) == 0) { /* k 3, stride 2, pad 1 over 7x6 */
    p->a.kernel = 3, p->a.stride = 2, p->a.pad = 1;
    if (strstr(op, "forward")) {
      IN(p, "x", VAL, 4, 2, 3, 7, 6), OUT(p, "y", VAL, 4, 2, 3, 4, 3);
    } else {
      IN(p, "dy", VAL, 4, 2, 3, 4, 3), IN(p, "x", VAL, 4, 2, 3, 7, 6);
      OUT(p, "dx", VAL, 4, 2, 3, 7, 6);
    }
  } else if (strcmp(op, "linear_forward") == 0) {
    IN(p, "x", VAL, 2, 3, 7, 0, 0), IN(p, "w", VAL, 2, 5, 7, 0, 0), IN(p, "b", VAL, 1, 5, 0, 0, 0);
    OUT(p, "y", VAL, 2, 3, 5, 0, 0);
  } else if (strcmp(op, "linear_backward") == 0) {
    IN(p, "dy", VAL, 2, 3, 5, 0, 0), IN(p, "x", VAL, 2, 3, 7, 0, 0), IN(p, "w", VAL, 2, 5, 7, 0, 0);
    OUT(p, "dx", VAL, 2, 3, 7, 0, 0), OUT(p, "dw", VAL, 2, 5, 7, 0, 0);
    OUT(p, "db", VAL, 1, 5, 0, 0, 0);
  } else if (strncmp(op, "xent", 4) == 0) {
    p->classes = 6;
    const int fwd = strstr(op, "forward") != NULL;
    IN(p, fwd ? "logits" : "prob", VAL, 2, 4, 6, 0, 0), IN(p, "labels", LABELS, 1, 4, 0, 0, 0);
    if (fwd)
      OUT(p, "prob", VAL, 2, 4, 6, 0, 0), OUT(p, "loss", VAL, 0, 0, 0, 0, 0);
    else
      OUT(p, "dlogits", VAL, 2, 4, 6, 0, 0);
  } else if (strcmp(op, "li_reduce") == 0) {
    IN(p, "h", VAL, 2, 3, 10, 0, 0), IN(p, "r", VAL, 2, 3, 10, 0, 0), OUT(p, "li", VAL, 1, 3, 0, 0, 0);
  } else if (strcmp(op, "sgd_update") == 0) {
    p->a.lr = 0.05, p->a.momentum = 0.9, p->a.weight_decay = 1e-4, p->a.first = 0;
    IN(p, "w", VAL, 2, 6, 7, 0, 0), IN(p, "g", VAL, 2, 6, 7, 0, 0), IN(p, "buf", VAL, 2, 6, 7, 0, 0);
    OUT(p, "w", VAL, 2, 6, 7, 0, 0), OUT(p, "buf", VAL, 2, 6, 7, 0, 0);
  } else { /* elementwise over [2, 3, 17] */
    const aal_kcheck_op_info *info = aal_kcheck_external_op(op);
    ck_assert_ptr_nonnull(info);
    if (strcmp(op, "scale") == 0)
      p->a.s = -100.3;
    if (strcmp(op, "sign_unpack") == 0 || strcmp(op, "asa_input") == 0)
      p->a.eps = 0.01;
    for (int i = 0; info->inputs[i] != NULL; i++)
      IN(p, info->inputs[i], strcmp(info->inputs[i], "x") && strcmp(info->inputs[i], "a") &&
                                     strcmp(info->inputs[i], "b") && strcmp(info->inputs[i], "dy")
                                 ? BITS : VAL, 3, 2, 3, 17, 0);
    for (int i = 0; info->outputs[i] != NULL; i++)
      OUT(p, info->outputs[i], strcmp(info->outputs[i], "mask") && strcmp(info->outputs[i], "bits")
                                   ? VAL : BITS, 3, 2, 3, 17, 0);
  }
  for (int i = 0; i < p->nin; i++)
    fill(p, &p->in[i]);
  if (find(p->in, p->nin, "invstd") != NULL) /* bn backward: the statistics of x */
    saved_stats(find(p->in, p->nin, "x"), find(p->in, p->nin, "mean"),
                find(p->in, p->nin, "invstd"), 1e-5);
  if (find(p->in, p->nin, "running_var") != NULL) {
    tt *rv = find(p->in, p->nin, "running_var");
    for (size_t i = 0; i < rv->n; i++)
      rv->v[i] = fabs(rv->v[i]);
  }
}

static void release(prob *p)
{
  for (int i = 0; i < p->nin; i++)
    free(p->in[i].v);
  for (int i = 0; i < p->nout; i++)
    free(p->out[i].v);
  gsl_rng_free(p->rng);
}

/* ------------------------------------------------------------------ cpu32 as the candidate */

typedef struct {
  const aal_backend *be;
  prob *p;
  void *in[8], *out[6];
} dev;

static void *D(dev *d, const char *name, int output)
{
  tt *list = output ? d->p->out : d->p->in;
  const int n = output ? d->p->nout : d->p->nin;
  for (int i = 0; i < n; i++)
    if (strcmp(list[i].name, name) == 0)
      return output ? d->out[i] : d->in[i];
  return NULL;
}

static int cs_of(prob *p, aal_conv_shape *cs)
{
  const tt *x = find(p->in, p->nin, "x") ? find(p->in, p->nin, "x") : find(p->out, p->nout, "dx");
  const tt *w = find(p->in, p->nin, "w") ? find(p->in, p->nin, "w") : find(p->out, p->nout, "dw");
  *cs = (aal_conv_shape){.n = (int)x->shape[0], .c = (int)x->shape[1], .h = (int)x->shape[2],
                         .w = (int)x->shape[3], .k = (int)w->shape[0], .r = (int)w->shape[2],
                         .s = (int)w->shape[3], .stride = p->a.stride, .pad = p->a.pad};
  return aal_conv_shape_init(cs, NULL);
}

/* cpu32's op on the problem's buffers. */
static int call(dev *d, aal_error *err)
{
  const aal_backend *be = d->be;
  prob *p = d->p;
  const char *op = p->a.op;
  const tt *x0 = &p->in[0];
  const int n = (int)x0->shape[0], c = x0->ndim > 1 ? (int)x0->shape[1] : 0;
  const int hw = x0->ndim > 2 ? (int)(x0->n / x0->shape[0] / x0->shape[1]) : 0;
  int labels[16];
  const tt *lab = find(p->in, p->nin, "labels");
  for (size_t i = 0; lab != NULL && i < lab->n; i++)
    labels[i] = (int)lab->v[i];
  aal_conv_shape cs;
#define I(name) D(d, name, 0)
#define O(name) D(d, name, 1)
  if (strncmp(op, "conv", 4) == 0 && cs_of(p, &cs) != AAL_OK)
    return AAL_EINVAL;
  if (!strcmp(op, "conv_forward")) return be->conv_forward(be, &cs, I("x"), I("w"), O("y"), err);
  if (!strcmp(op, "conv_backward_data")) return be->conv_backward_data(be, &cs, I("dy"), I("w"), O("dx"), err);
  if (!strcmp(op, "conv_backward_filter")) return be->conv_backward_filter(be, &cs, I("x"), I("dy"), O("dw"), err);
  const tt *bx = find(p->in, p->nin, "x");
  const int bn = bx ? (int)bx->shape[0] : 0, bc = bx && bx->ndim > 1 ? (int)bx->shape[1] : 0;
  const int bhw = bx && bx->ndim > 2 ? (int)(bx->n / bx->shape[0] / bx->shape[1]) : 0;
  if (!strcmp(op, "bn_forward")) return be->bn_forward(be, n, c, hw, I("x"), I("gamma"), I("beta"), p->a.eps, O("y"), O("mean"), O("invstd"), O("var"), err);
  if (!strcmp(op, "bn_relu_forward")) return be->bn_relu_forward(be, n, c, hw, I("x"), I("gamma"), I("beta"), p->a.eps, O("y"), O("mask"), O("mean"), O("invstd"), O("var"), err);
  if (!strcmp(op, "bn_forward_eval")) return be->bn_forward_eval(be, n, c, hw, I("x"), I("gamma"), I("beta"), I("running_mean"), I("running_var"), p->a.eps, O("y"), err);
  if (!strcmp(op, "bn_backward")) return be->bn_backward(be, bn, bc, bhw, I("dy"), I("x"), I("gamma"), I("mean"), I("invstd"), O("dx"), O("dgamma"), O("dbeta"), err);
  if (!strcmp(op, "bn_relu_backward")) return be->bn_relu_backward(be, bn, bc, bhw, I("dy"), I("mask"), I("x"), I("gamma"), I("mean"), I("invstd"), O("dx"), O("dgamma"), O("dbeta"), err);
  if (!strcmp(op, "relu_forward")) return be->relu_forward(be, x0->n, I("x"), O("y"), O("mask"), err);
  if (!strcmp(op, "relu_backward")) return be->relu_backward(be, x0->n, I("dy"), I("mask"), O("dx"), err);
  if (!strcmp(op, "add")) return be->add(be, x0->n, I("a"), I("b"), O("y"), err);
  if (!strcmp(op, "scale")) return be->scale(be, x0->n, I("x"), p->a.s, O("y"), err);
  if (!strcmp(op, "sign_pack")) return be->sign_pack(be, x0->n, I("x"), O("bits"), err);
  if (!strcmp(op, "sign_unpack")) return be->sign_unpack(be, x0->n, I("bits"), p->a.eps, O("out"), err);
  if (!strcmp(op, "asa_input")) return be->asa_input(be, x0->n, I("x"), p->a.eps, O("h"), O("bits"), err);
  if (!strcmp(op, "avgpool_forward")) return be->avgpool_forward(be, n * c, hw, I("x"), O("y"), err);
  if (!strcmp(op, "avgpool_backward")) return be->avgpool_backward(be, 6, 20, I("dy"), O("dx"), err);
  if (!strcmp(op, "maxpool_forward")) return be->maxpool_forward(be, bn, bc, (int)bx->shape[2], (int)bx->shape[3], 3, 2, 1, I("x"), O("y"), err);
  if (!strcmp(op, "maxpool_backward")) return be->maxpool_backward(be, bn, bc, (int)bx->shape[2], (int)bx->shape[3], 3, 2, 1, I("dy"), I("x"), O("dx"), err);
  if (!strcmp(op, "linear_forward")) return be->linear_forward(be, 3, 7, 5, I("x"), I("w"), I("b"), O("y"), err);
  if (!strcmp(op, "linear_backward")) return be->linear_backward(be, 3, 7, 5, I("dy"), I("x"), I("w"), O("dx"), O("dw"), O("db"), err);
  if (!strcmp(op, "xent_forward")) {
    double loss;
    const int rc = be->xent_forward(be, 4, 6, I("logits"), labels, &loss, O("prob"), err);
    find(p->out, p->nout, "loss")->v[0] = (double)(float)loss; /* a float32 output */
    return rc;
  }
  if (!strcmp(op, "xent_backward")) return be->xent_backward(be, 4, 6, I("prob"), labels, O("dlogits"), err);
  if (!strcmp(op, "li_reduce")) return be->li_reduce(be, 3, 10, I("h"), I("r"), O("li"), err);
  if (!strcmp(op, "sgd_update")) { /* in place: the outputs are the inputs' buffers */
    const int rc = be->sgd_update(be, x0->n, I("w"), I("g"), I("buf"), p->a.lr, p->a.momentum, p->a.weight_decay, p->a.first, err);
    d->out[0] = d->in[0], d->out[1] = d->in[2];
    return rc;
  }
#undef I
#undef O
  return aal_fail(err, AAL_EINVAL, "the test has no call for %s", op);
}

static void buffer(const aal_backend *be, tt *t, void **buf, int upload)
{
  aal_error err;
  const size_t nw = (t->n + 31) / 32;
  if (t->kind == BITS) {
    ck_assert(be->alloc_bits(be, t->n, buf, &err) == AAL_OK);
    uint32_t *w = calloc(nw, sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; upload && i < t->n; i++)
      w[i / 32] |= (uint32_t)(t->v[i] != 0) << (i % 32);
    if (upload)
      ck_assert(be->upload_bits(be, *buf, w, t->n, &err) == AAL_OK);
    free(w);
  } else if (t->kind == VAL) {
    ck_assert(be->alloc(be, t->n, buf, &err) == AAL_OK);
    if (upload)
      ck_assert(be->upload(be, *buf, t->v, t->n, &err) == AAL_OK);
  }
}

static void download(const aal_backend *be, tt *t, void *buf)
{
  aal_error err;
  if (t->kind == BITS) {
    uint32_t *w = calloc((t->n + 31) / 32, sizeof *w);
    ck_assert_ptr_nonnull(w);
    ck_assert(be->download_bits(be, w, buf, t->n, &err) == AAL_OK);
    for (size_t i = 0; i < t->n; i++)
      t->v[i] = (w[i / 32] >> (i % 32)) & 1u;
    free(w);
  } else if (buf != NULL) {
    ck_assert(be->download(be, t->v, buf, t->n, &err) == AAL_OK);
  }
}

/* The outputs of cpu32's op on the inputs. */
static void run_cpu32(prob *p)
{
  aal_backend be;
  aal_error err;
  ck_assert(aal_backend_cpu32(&be, &err) == AAL_OK);
  dev d = {.be = &be, .p = p};
  for (int i = 0; i < p->nin; i++)
    buffer(&be, &p->in[i], &d.in[i], 1);
  for (int i = 0; i < p->nout; i++)
    if (strcmp(p->out[i].name, "loss") != 0)
      buffer(&be, &p->out[i], &d.out[i], 0);
  const int sgd = strcmp(p->a.op, "sgd_update") == 0;
  if (sgd)
    for (int i = 0; i < p->nout; i++)
      be.release(&be, d.out[i]);
  ck_assert_msg(call(&d, &err) == AAL_OK, "%s: %s", p->a.op, err.msg);
  for (int i = 0; i < p->nout; i++)
    download(&be, &p->out[i], d.out[i]);
  for (int i = 0; i < p->nin; i++)
    if (p->in[i].kind != LABELS)
      be.release(&be, d.in[i]);
  for (int i = 0; i < p->nout && !sgd; i++)
    if (d.out[i] != NULL)
      be.release(&be, d.out[i]);
  be.destroy(&be);
}

/* ------------------------------------------------------------------ to the check */

/* The inputs rounded to the storage format (what the candidate computes on). */
static void round_inputs(prob *p, aal_kcheck_dtype dtype)
{
  for (int i = 0; i < p->nin; i++)
    for (size_t j = 0; p->in[i].kind == VAL && j < p->in[i].n; j++) {
      const double v = p->in[i].v[j];
      p->in[i].v[j] = dtype == AAL_KCHECK_F16    ? half_value(to_half(v))
                      : dtype == AAL_KCHECK_BF16 ? bf16_value(to_bf16(v))
                                                 : v;
    }
}

/* The problem's tensors as the check takes them, stored as dtype (values), int64 labels,
 * bool bits.  Data freed by untensors. */
static void tensors(tt *list, int n, aal_kcheck_dtype dtype, aal_kcheck_tensor *out)
{
  for (int i = 0; i < n; i++) {
    const tt *t = &list[i];
    aal_kcheck_tensor *o = &out[i];
    memset(o, 0, sizeof *o);
    o->name = t->name;
    o->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
      o->shape[d] = t->shape[d];
    o->dtype = t->kind == BITS ? AAL_KCHECK_BOOL : t->kind == LABELS ? AAL_KCHECK_I64 : dtype;
    void *data = malloc(t->n * 8);
    ck_assert_ptr_nonnull(data);
    for (size_t j = 0; j < t->n; j++)
      switch (o->dtype) {
      case AAL_KCHECK_F64: ((double *)data)[j] = t->v[j]; break;
      case AAL_KCHECK_F32: ((float *)data)[j] = (float)t->v[j]; break;
      case AAL_KCHECK_F16: ((uint16_t *)data)[j] = to_half(t->v[j]); break;
      case AAL_KCHECK_BF16: ((uint16_t *)data)[j] = to_bf16(t->v[j]); break;
      case AAL_KCHECK_I64: ((int64_t *)data)[j] = (int64_t)t->v[j]; break;
      case AAL_KCHECK_BOOL: ((uint8_t *)data)[j] = (uint8_t)t->v[j]; break;
      }
    o->data = data;
  }
}

static void untensors(aal_kcheck_tensor *t, int n)
{
  for (int i = 0; i < n; i++)
    free((void *)t[i].data);
}

/* The check of the problem's outputs stored as dtype; returns its status. */
static int check(prob *p, aal_kcheck_dtype dtype, aal_kcheck_report *r, aal_error *err)
{
  aal_kcheck_tensor in[8], out[6];
  tensors(p->in, p->nin, dtype, in);
  tensors(p->out, p->nout, dtype, out);
  p->a.storage = dtype;
  const int rc = aal_kcheck_external(&p->a, in, p->nin, out, p->nout, r, err);
  untensors(in, p->nin);
  untensors(out, p->nout);
  return rc;
}

static const aal_kcheck_output *output(const aal_kcheck_report *r, const char *name)
{
  for (int i = 0; i < r->noutputs; i++)
    if (strcmp(r->out[i].name, name) == 0)
      return &r->out[i];
  ck_abort_msg("no output %s in the report", name);
  return NULL;
}

/* ------------------------------------------------------------------ a. every op */

/* Moves element i of t by 2^-10 of max(|v|, 1/8) (a value: 2^-10 relative, or 2^-13
 * absolute near 0, far beyond every bound of these small shapes), or flips it (a bit). */
static void perturb(tt *t, size_t i)
{
  if (t->kind == BITS)
    t->v[i] = 1.0 - t->v[i];
  else
    t->v[i] = (double)(float)(t->v[i] + 0x1p-10 * fmax(fabs(t->v[i]), 0.125));
}

START_TEST(test_every_op)
{
  const int nops = aal_kcheck_external_op_count();
  ck_assert_int_eq(nops, 25); /* the harness's 25 ops, every one */
  for (int o = 0; o < nops; o++) {
    const char *op = aal_kcheck_external_op_at(o)->name;
    prob p;
    setup(&p, op);
    if (strcmp(op, "li_reduce") == 0) /* the last sample's h = 0: li is NaN on both sides */
      memset(p.in[0].v + 20, 0, 10 * sizeof(double));
    run_cpu32(&p);
    aal_kcheck_report r;
    aal_error err;
    ck_assert_msg(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK, "%s: %s", op, err.msg);
    if (getenv("AAL_TEST_VERBOSE"))
      aal_kcheck_report_print(stderr, &r);
    ck_assert_msg(r.failed == 0 && r.checked == p.nout, "%s: %d of %d failed (worst %g)", op,
                  r.failed, r.checked, r.worst_ratio);
    const double worst = r.worst_ratio;
    for (int i = 0; i < p.nout; i++) { /* each output moved at one element must fail there */
      tt *t = &p.out[i];
      const size_t at = (size_t)gsl_rng_uniform_int(p.rng, t->n);
      if (strcmp(op, "li_reduce") == 0 && at == 2)
        continue; /* NaN, moved or not */
      const double keep = t->v[at];
      perturb(t, at);
      ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
      const aal_kcheck_output *res = output(&r, t->name);
      ck_assert_msg(res->failed && r.failed == 1 && res->index == at,
                    "%s: %s[%zu] moved from %g to %g: failed %d, worst at %zu (ratio %g)", op,
                    t->name, at, keep, t->v[at], res->failed, res->index, res->ratio);
      t->v[at] = keep;
    }
    fprintf(stderr, "%-21s passes (worst err/bound %.3g); each output moved at one element "
            "fails\n", op, worst);
    release(&p);
  }
}
END_TEST

/* ------------------------------------------------------------------ b, c. a naive conv */

/* How the naive conv computes: its accumulator, where its output is rounded, a slip. */
enum acc { ACC_F32, ACC_F16 };

/* y = conv(x, w) over [n, c, h, w] * [k, c, r, s], stride and pad of p->a, accumulated
 * in float (or rounded to float16 after every operation: ACC_F16) and rounded to
 * `store` (float, float16 or bfloat16); shift 1 reads the input column one to the right
 * (the off-by-one). */
static void naive_conv(prob *p, enum acc acc, aal_kcheck_dtype store, int shift)
{
  aal_conv_shape cs;
  ck_assert_int_eq(cs_of(p, &cs), AAL_OK);
  const double *x = find(p->in, p->nin, "x")->v, *w = find(p->in, p->nin, "w")->v;
  double *y = find(p->out, p->nout, "y")->v;
  for (int n = 0; n < cs.n; n++)
    for (int k = 0; k < cs.k; k++)
      for (int i = 0; i < cs.p * cs.q; i++) {
        const int oh = i / cs.q, ow = i % cs.q;
        float sum = 0.0f;
        for (int c = 0; c < cs.c; c++)
          for (int r = 0; r < cs.r; r++)
            for (int s = 0; s < cs.s; s++) {
              const int ih = oh * cs.stride - cs.pad + r, iw = ow * cs.stride - cs.pad + s + shift;
              if (ih < 0 || ih >= cs.h || iw < 0 || iw >= cs.w)
                continue;
              const float prod = (float)w[((k * cs.c + c) * cs.r + r) * cs.s + s] *
                                 (float)x[((n * cs.c + c) * cs.h + ih) * cs.w + iw];
              sum = acc == ACC_F16 ? (float)half_value(to_half(sum + half_value(to_half(prod))))
                                   : sum + prod;
            }
        double out = sum;
        if (store == AAL_KCHECK_F16)
          out = half_value(to_half(sum));
        else if (store == AAL_KCHECK_BF16)
          out = bf16_value(to_bf16(sum));
        y[((n * cs.k + k) * cs.p + oh) * cs.q + ow] = out;
      }
}

/* conv_forward with 16 input channels (C R S = 144: long enough for float16 arithmetic to
 * show), stride 1, pad 1. */
static void setup_conv16(prob *p)
{
  memset(p, 0, sizeof *p);
  p->rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(p->rng, g_seed + 16);
  aal_kcheck_args_init(&p->a);
  p->a.op = "conv_forward";
  p->a.stride = 1, p->a.pad = 1;
  IN(p, "x", VAL, 4, 2, 16, 6, 6), IN(p, "w", VAL, 4, 4, 16, 3, 3);
  OUT(p, "y", VAL, 4, 2, 4, 6, 6);
  fill(p, &p->in[0]);
  fill(p, &p->in[1]);
}

START_TEST(test_naive_conv)
{
  prob p;
  aal_kcheck_report r;
  aal_error err;
  setup(&p, "conv_forward");
  naive_conv(&p, ACC_F32, AAL_KCHECK_F32, 0);
  ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 0 && r.checked == 1, "worst %g", r.worst_ratio);
  ck_assert(r.out[0].ratio <= 1 && r.out[0].ndim == 4);
  fprintf(stderr, "naive float32 conv: passes, worst err/bound %.3g\n", r.worst_ratio);
  naive_conv(&p, ACC_F32, AAL_KCHECK_F32, 1); /* the off-by-one twin */
  ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 1 && r.out[0].ratio > 1e3, "off-by-one: ratio %g", r.out[0].ratio);
  fprintf(stderr, "its off-by-one twin: fails, worst err/bound %.3g at y[%zu,%zu,%zu,%zu]\n",
          r.out[0].ratio, r.out[0].coord[0], r.out[0].coord[1], r.out[0].coord[2],
          r.out[0].coord[3]);
  naive_conv(&p, ACC_F32, AAL_KCHECK_F32, 0);
  tt *y = find(p.out, p.nout, "y");
  y->v[y->n - 1] = NAN; /* NaN fails, at its place */
  ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
  ck_assert(r.failed == 1 && isinf(r.out[0].ratio) && r.out[0].index == y->n - 1);
  ck_assert(r.out[0].coord[0] == 1 && r.out[0].coord[1] == 3 && r.out[0].coord[2] == 2 &&
            r.out[0].coord[3] == 2);
  y->v[y->n - 1] = INFINITY;
  ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
  ck_assert(r.failed == 1 && isinf(r.out[0].ratio));
  y->shape[3] = 2; /* [2, 4, 3, 2]: the wrong shape, not compared */
  ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
  ck_assert(r.failed == 1 && r.shape_mismatches == 1 && r.checked == 0 &&
            r.out[0].shape_mismatch && strstr(r.out[0].note, "shape (2, 4, 3, 2) where "
                                                             "conv_forward gives (2, 4, 3, 3)"));
  y->shape[3] = 3;
  y->ndim = 5; /* a leading dimension of 1 is the same shape */
  memmove(y->shape + 1, y->shape, 4 * sizeof(size_t));
  y->shape[0] = 1;
  naive_conv(&p, ACC_F32, AAL_KCHECK_F32, 0);
  ck_assert(check(&p, AAL_KCHECK_F32, &r, &err) == AAL_OK);
  ck_assert(r.failed == 0 && r.checked == 1);
  release(&p);
}
END_TEST

/* float16 and bfloat16 storage; float16 arithmetic claimed right and wrong. */
START_TEST(test_half_precisions)
{
  prob p;
  aal_kcheck_report r;
  aal_error err;
  setup_conv16(&p);
  round_inputs(&p, AAL_KCHECK_F16);
  naive_conv(&p, ACC_F32, AAL_KCHECK_F16, 0);
  p.a.accumulation = AAL_KCHECK_F32;
  ck_assert(check(&p, AAL_KCHECK_F16, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 0, "float16 storage: %g", r.worst_ratio);
  ck_assert(r.u == 0x1p-24 && r.u_storage == 0x1p-11);
  fprintf(stderr, "float16 storage, float32 arithmetic: passes, worst %.3g\n", r.worst_ratio);
  naive_conv(&p, ACC_F16, AAL_KCHECK_F16, 0);
  p.a.accumulation = AAL_KCHECK_F16;
  ck_assert(check(&p, AAL_KCHECK_F16, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 0, "float16 arithmetic, said: %g", r.worst_ratio);
  fprintf(stderr, "float16 arithmetic, said so: passes, worst %.3g\n", r.worst_ratio);
  p.a.accumulation = AAL_KCHECK_F32;
  ck_assert(check(&p, AAL_KCHECK_F16, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 1, "float16 arithmetic claimed float32 passed: %g", r.worst_ratio);
  fprintf(stderr, "float16 arithmetic claimed float32: fails, worst %.3g\n", r.worst_ratio);
  release(&p);

  setup_conv16(&p);
  round_inputs(&p, AAL_KCHECK_BF16);
  naive_conv(&p, ACC_F32, AAL_KCHECK_BF16, 0);
  ck_assert(check(&p, AAL_KCHECK_BF16, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 0, "bfloat16 storage: %g", r.worst_ratio);
  fprintf(stderr, "bfloat16 storage, float32 arithmetic: passes, worst %.3g\n", r.worst_ratio);
  naive_conv(&p, ACC_F32, AAL_KCHECK_BF16, 1);
  ck_assert(check(&p, AAL_KCHECK_BF16, &r, &err) == AAL_OK);
  ck_assert(r.failed == 1);
  release(&p);

  /* add in float32 stored as float16: the bound at the worst element is the harness's
   * one rounding, (gamma_1 + 2^-52) |y|, grown by the storage term */
  setup(&p, "add");
  round_inputs(&p, AAL_KCHECK_F16);
  for (size_t i = 0; i < p.out[0].n; i++)
    p.out[0].v[i] = half_value(to_half((float)p.in[0].v[i] + (float)p.in[1].v[i]));
  ck_assert(check(&p, AAL_KCHECK_F16, &r, &err) == AAL_OK);
  ck_assert_msg(r.failed == 0, "add: %g", r.worst_ratio);
  const double yref = r.out[0].ref, u = 0x1p-24, us = 0x1p-11;
  const double b = (u / (1 - u) + 0x1p-52) * fabs(yref);
  const double want = b + us * (fabs(yref) + b) + 0x1p-25;
  ck_assert_msg(fabs(r.out[0].bound - want) <= 1e-15 * want, "bound %.17g, derived %.17g",
                r.out[0].bound, want);
  release(&p);
}
END_TEST

/* ------------------------------------------------------------------ d. bad input */

/* The check of p (float32) refuses with AAL_EINVAL and a message holding the words. */
static void refused(prob *p, aal_kcheck_tensor *in, int nin, aal_kcheck_tensor *out, int nout,
                    const char *words)
{
  aal_kcheck_report r;
  aal_error err;
  aal_error_clear(&err);
  const int rc = aal_kcheck_external(&p->a, in, nin, out, nout, &r, &err);
  ck_assert_msg(rc == AAL_EINVAL && strstr(err.msg, words), "want '%s', got %d: %s", words, rc,
                err.msg);
}

START_TEST(test_bad_input)
{
  prob p;
  setup(&p, "conv_forward");
  naive_conv(&p, ACC_F32, AAL_KCHECK_F32, 0);
  aal_kcheck_tensor in[3], out[2];
  tensors(p.in, p.nin, AAL_KCHECK_F32, in);
  tensors(p.out, p.nout, AAL_KCHECK_F32, out);
  in[0].source = "dir/x.npy";
  out[0].source = "dir/y.npy";
  p.a.op = "conv_sideways";
  refused(&p, in, 2, out, 1, "unknown op 'conv_sideways' (ops: conv_forward, ");
  p.a.op = "conv_forward";
  refused(&p, in + 1, 1, out, 1, "conv_forward: input x is missing");
  refused(&p, in, 2, out, 0, "no output of the candidate to check");
  in[2] = in[0];
  refused(&p, in, 3, out, 1, "dir/x.npy: input x given twice");
  in[2].name = "z";
  refused(&p, in, 3, out, 1, "conv_forward has no input 'z' (inputs: x, w)");
  out[1] = out[0];
  out[1].name = "dx";
  refused(&p, in, 2, out, 2, "conv_forward has no output 'dx' (outputs: y)");
  in[0].dtype = AAL_KCHECK_F64;
  refused(&p, in, 2, out, 1, "dir/x.npy: x holds float64; conv_forward takes float32");
  in[0].dtype = AAL_KCHECK_F32;
  out[0].dtype = AAL_KCHECK_BF16;
  refused(&p, in, 2, out, 1, "dir/y.npy: y holds bfloat16; conv_forward takes float32");
  out[0].dtype = AAL_KCHECK_F32;
  in[0].shape[1] = 2; /* x has 2 channels, w 3 */
  refused(&p, in, 2, out, 1, "w has shape (4, 3, 3, 3) where conv_forward needs (4, 2, 3, 3)");
  in[0].shape[1] = 3;
  in[0].ndim = 3;
  refused(&p, in, 2, out, 1, "dir/x.npy: x has 3 dimensions; conv_forward takes it as [N,C,H,W]");
  in[0].ndim = 4;
  ((float *)in[0].data)[7] = NAN;
  refused(&p, in, 2, out, 1, "dir/x.npy: x[7] is nan: the reference needs finite inputs");
  ((float *)in[0].data)[7] = 0.5f;
  p.a.stride = AAL_KCHECK_UNSET;
  refused(&p, in, 2, out, 1, "conv_forward needs the argument stride (it takes: stride pad)");
  p.a.stride = 0;
  refused(&p, in, 2, out, 1, "argument stride of conv_forward is out of range");
  p.a.stride = 2;
  p.a.eps = 1e-5;
  p.a.source = "dir/op.txt";
  refused(&p, in, 2, out, 1, "dir/op.txt: conv_forward takes no argument eps");
  p.a.eps = NAN;
  p.a.storage = AAL_KCHECK_I64;
  refused(&p, in, 2, out, 1, "storage and accumulation must be float64, float32, float16 or "
                             "bfloat16");
  untensors(in, 2);
  untensors(out, 1);
  release(&p);

  setup(&p, "xent_backward"); /* labels out of range; bits that are not 0 or 1 */
  run_cpu32(&p);
  tensors(p.in, p.nin, AAL_KCHECK_F32, in);
  tensors(p.out, p.nout, AAL_KCHECK_F32, out);
  ((int64_t *)in[1].data)[2] = 6;
  refused(&p, in, 2, out, 1, "labels: label 2 is 6, not in [0, 6)");
  ((int64_t *)in[1].data)[2] = -1;
  refused(&p, in, 2, out, 1, "label 2 is -1");
  untensors(in, 2);
  untensors(out, 1);
  release(&p);
  setup(&p, "bn_forward"); /* one value per channel: the reference refuses it */
  p.in[0].ndim = 2, p.in[0].shape[0] = 1, p.in[0].shape[1] = 4;
  p.out[0].ndim = 2, p.out[0].shape[0] = 1, p.out[0].shape[1] = 4;
  tensors(p.in, p.nin, AAL_KCHECK_F32, in);
  tensors(p.out, 1, AAL_KCHECK_F32, out);
  in[0].source = "dir/x.npy";
  refused(&p, in, 3, out, 1, "dir/x.npy: bn_forward: the reference refuses these inputs: bn2d "
                             "forward: x has shape 1x4x1x1");
  untensors(in, 3);
  untensors(out, 1);
  release(&p);
  setup(&p, "relu_forward");
  run_cpu32(&p);
  tensors(p.in, p.nin, AAL_KCHECK_F32, in);
  tensors(p.out, p.nout, AAL_KCHECK_F32, out);
  ((uint8_t *)out[1].data)[4] = 2;
  refused(&p, in, 1, out, 2, "mask: mask[4] is 2, not 0 or 1");
  out[1].dtype = AAL_KCHECK_F32;
  refused(&p, in, 1, out, 2, "mask holds float32; relu_forward takes bool");
  untensors(in, 1);
  untensors(out, 2);
  release(&p);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("external");
  TCase *tc = tcase_create("external");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_every_op);
  tcase_add_test(tc, test_naive_conv);
  tcase_add_test(tc, test_half_precisions);
  tcase_add_test(tc, test_bad_input);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
