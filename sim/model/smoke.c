#include "sim/model/smoke.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sim/layers/conv.h"
#include "sim/layers/layers.h"

const char *const aal_smoke_param_names[AAL_SMOKE_NPARAM] = {
    "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
    "bn2.weight",   "bn2.bias",   "fc.weight", "fc.bias"};

void aal_smoke_net_free(aal_smoke_net *net)
{
  if (net == NULL)
    return;
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++) {
    aal_tensor_release(net->param[i]);
    aal_tensor_release(net->grad[i]);
    net->param[i] = net->grad[i] = NULL;
  }
  for (int i = 0; i < 4; i++) {
    aal_tensor_release(net->bn_running[i]);
    net->bn_running[i] = NULL;
  }
}

static void kaiming_normal_fan_out(aal_tensor *w, gsl_rng *rng)
{
  /* w [K, C, R, S]; fan_out = K*R*S, std = sqrt(2 / fan_out) (ReLU gain) */
  const double std = sqrt(2.0 / (double)(w->shape[0] * w->shape[2] * w->shape[3]));
  for (size_t i = 0; i < w->size; i++)
    w->data[i] = gsl_ran_gaussian(rng, std);
}

static int alloc_params(aal_smoke_net *net, int c, int classes, aal_error *err)
{
  const long shapes[AAL_SMOKE_NPARAM][4] = {
      {c, 3, 3, 3}, {c}, {c}, {c, c, 3, 3}, {c}, {c}, {classes, c}, {classes}};
  const int ranks[AAL_SMOKE_NPARAM] = {4, 1, 1, 4, 1, 1, 2, 1};
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++) {
    net->param[i] = aal_tensor_new(ranks[i], shapes[i], err);
    net->grad[i] = aal_tensor_new(ranks[i], shapes[i], err);
    if (net->param[i] == NULL || net->grad[i] == NULL)
      return err != NULL ? err->code : AAL_ENOMEM;
  }
  for (int i = 0; i < 4; i++)
    if ((net->bn_running[i] = aal_tensor_new1(c, err)) == NULL)
      return err != NULL ? err->code : AAL_ENOMEM;
  return AAL_OK;
}

int aal_smoke_net_init(aal_smoke_net *net, int channels, int classes, unsigned long seed,
                       aal_error *err)
{
  if (net == NULL)
    return aal_fail(err, AAL_EINVAL, "smoke net is NULL");
  memset(net, 0, sizeof *net);
  if (channels < 1 || classes < 2)
    return aal_fail(err, AAL_EINVAL, "smoke net: channels %d must be >= 1, classes %d >= 2",
                    channels, classes);
  net->channels = channels;
  net->classes = classes;
  int rc = alloc_params(net, channels, classes, err);
  if (rc != AAL_OK) {
    aal_smoke_net_free(net);
    return rc;
  }
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rng == NULL) {
    aal_smoke_net_free(net);
    return aal_fail(err, AAL_ENOMEM, "cannot allocate a random generator");
  }
  gsl_rng_set(rng, seed);
  kaiming_normal_fan_out(net->param[AAL_SMOKE_CONV1_W], rng);
  kaiming_normal_fan_out(net->param[AAL_SMOKE_CONV2_W], rng);
  aal_tensor_fill(net->param[AAL_SMOKE_BN1_W], 1.0);
  aal_tensor_fill(net->param[AAL_SMOKE_BN2_W], 1.0);
  const double bound = 1.0 / sqrt((double)channels);
  aal_tensor *fw = net->param[AAL_SMOKE_FC_W], *fb = net->param[AAL_SMOKE_FC_B];
  for (size_t i = 0; i < fw->size; i++)
    fw->data[i] = gsl_ran_flat(rng, -bound, bound);
  for (size_t i = 0; i < fb->size; i++)
    fb->data[i] = gsl_ran_flat(rng, -bound, bound);
  aal_tensor_fill(net->bn_running[1], 1.0);
  aal_tensor_fill(net->bn_running[3], 1.0);
  gsl_rng_free(rng);
  return AAL_OK;
}

/* ---------------------------------------------------------------- forward */

/* Saves x as (layer, "x") and returns y = conv(x, w) in *y (new reference). */
static int conv_forward(aal_tape *tape, const char *layer, aal_tensor *x, const aal_tensor *w,
                        aal_tensor **y, aal_error *err)
{
  long shape[4];
  int rc = aal_conv2d_output_shape(x, w, 1, 1, shape, err);
  if (rc != AAL_OK)
    return rc;
  if ((*y = aal_tensor_new(4, shape, err)) == NULL)
    return err != NULL ? err->code : AAL_ENOMEM;
  if ((rc = aal_conv2d_forward(x, w, 1, 1, *y, err)) != AAL_OK)
    return rc;
  return aal_tape_save(tape, layer, "x", x, err);
}

/* Saves x, mean, invstd under layer; returns the normalised output in *y. */
static int bn_forward(aal_tape *tape, const char *layer, aal_tensor *x, const aal_tensor *g,
                      const aal_tensor *b, aal_tensor *rmean, aal_tensor *rvar, aal_tensor **y,
                      aal_error *err)
{
  const long c = (long)x->shape[1];
  aal_tensor *mean = aal_tensor_new1(c, err), *invstd = aal_tensor_new1(c, err);
  *y = aal_tensor_new_like(x, err);
  int rc = (mean && invstd && *y) ? AAL_OK : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_bn2d_forward_train(x, g, b, rmean, rvar, AAL_BN_MOMENTUM, AAL_BN_EPS, *y, mean,
                                invstd, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, layer, "x", x, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, layer, "mean", mean, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, layer, "invstd", invstd, err);
  aal_tensor_release(mean);
  aal_tensor_release(invstd);
  return rc;
}

/* Saves the 1-bit mask under (layer, "mask"); returns relu(x) in *y. */
static int relu_forward(aal_tape *tape, const char *layer, const aal_tensor *x, aal_tensor **y,
                        aal_error *err)
{
  long shape[4];
  for (int d = 0; d < 4; d++)
    shape[d] = (long)x->shape[d];
  aal_tensor *mask = aal_tensor_new_bits(4, shape, err);
  *y = aal_tensor_new_like(x, err);
  int rc = (mask && *y) ? aal_relu_forward(x, *y, mask, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, layer, "mask", mask, err);
  aal_tensor_release(mask);
  return rc;
}

/* The activations of one forward pass; every pointer owns one reference. */
typedef struct {
  aal_tensor *c1, *b1, *h1, *c2, *b2, *sum, *h2, *pool, *logits, *prob;
} smoke_acts;

static void acts_release(smoke_acts *a)
{
  aal_tensor *all[] = {a->c1, a->b1, a->h1, a->c2, a->b2, a->sum, a->h2, a->pool, a->logits,
                       a->prob};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
}

static int head_forward(aal_smoke_net *net, smoke_acts *a, const int *labels, aal_tape *tape,
                        double *loss, aal_error *err)
{
  const long n = (long)a->h2->shape[0];
  a->pool = aal_tensor_new2(n, net->channels, err);
  a->logits = aal_tensor_new2(n, net->classes, err);
  a->prob = aal_tensor_new2(n, net->classes, err);
  if (!a->pool || !a->logits || !a->prob)
    return err != NULL ? err->code : AAL_ENOMEM;
  int rc = aal_avgpool_forward(a->h2, a->pool, err);
  if (rc == AAL_OK)
    rc = aal_linear_forward(a->pool, net->param[AAL_SMOKE_FC_W], net->param[AAL_SMOKE_FC_B],
                            a->logits, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, "fc", "x", a->pool, err);
  if (rc == AAL_OK)
    rc = aal_xent_forward(a->logits, labels, loss, a->prob, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, "loss", "prob", a->prob, err);
  return rc;
}

int aal_smoke_forward(aal_smoke_net *net, const aal_tensor *x, const int *labels,
                      aal_tape *tape, double *loss, aal_error *err)
{
  if (net == NULL || x == NULL || labels == NULL || tape == NULL || loss == NULL)
    return aal_fail(err, AAL_EINVAL, "smoke forward: NULL argument");
  int rc = aal_tensor_require(x, 4, AAL_F64, "smoke forward: x", err);
  if (rc != AAL_OK)
    return rc;
  aal_tensor **p = net->param;
  smoke_acts a = {0};
  /* the tape retains what it saves, so the input is kept without copying */
  rc = conv_forward(tape, "conv1", (aal_tensor *)x, p[AAL_SMOKE_CONV1_W], &a.c1, err);
  if (rc == AAL_OK)
    rc = bn_forward(tape, "bn1", a.c1, p[AAL_SMOKE_BN1_W], p[AAL_SMOKE_BN1_B],
                    net->bn_running[0], net->bn_running[1], &a.b1, err);
  if (rc == AAL_OK)
    rc = relu_forward(tape, "relu1", a.b1, &a.h1, err);
  if (rc == AAL_OK)
    rc = conv_forward(tape, "conv2", a.h1, p[AAL_SMOKE_CONV2_W], &a.c2, err);
  if (rc == AAL_OK)
    rc = bn_forward(tape, "bn2", a.c2, p[AAL_SMOKE_BN2_W], p[AAL_SMOKE_BN2_B],
                    net->bn_running[2], net->bn_running[3], &a.b2, err);
  if (rc == AAL_OK && (a.sum = aal_tensor_new_like(a.b2, err)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_add_forward(a.b2, a.h1, a.sum, err);
  if (rc == AAL_OK)
    rc = relu_forward(tape, "relu2", a.sum, &a.h2, err);
  if (rc == AAL_OK)
    rc = head_forward(net, &a, labels, tape, loss, err);
  acts_release(&a);
  return rc;
}

/* ---------------------------------------------------------------- backward */

static const aal_tensor *load(const aal_tape *tape, const char *layer, const char *slot,
                              int *rc, aal_error *err)
{
  if (*rc != AAL_OK)
    return NULL;
  const aal_tensor *t = aal_tape_load(tape, layer, slot, err);
  if (t == NULL)
    *rc = AAL_ETAPE;
  return t;
}

/* dy -> dx through relu (mask from the tape) then bn (x, mean, invstd from the tape). */
static int relu_backward(const aal_tape *tape, const char *layer, const aal_tensor *dy,
                         aal_tensor *dx, aal_error *err)
{
  int rc = AAL_OK;
  const aal_tensor *mask = load(tape, layer, "mask", &rc, err);
  return rc == AAL_OK ? aal_relu_backward(dy, mask, dx, err) : rc;
}

static int bn_backward(const aal_tape *tape, const char *layer, const aal_tensor *gamma,
                       const aal_tensor *dy, aal_tensor *dx, aal_tensor *dgamma,
                       aal_tensor *dbeta, aal_error *err)
{
  int rc = AAL_OK;
  const aal_tensor *x = load(tape, layer, "x", &rc, err);
  const aal_tensor *mean = load(tape, layer, "mean", &rc, err);
  const aal_tensor *invstd = load(tape, layer, "invstd", &rc, err);
  return rc == AAL_OK ? aal_bn2d_backward(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err)
                      : rc;
}

static int conv_backward(const aal_tape *tape, const char *layer, const aal_tensor *w,
                         const aal_tensor *dy, aal_tensor *dx, aal_tensor *dw, aal_error *err)
{
  int rc = AAL_OK;
  const aal_tensor *x = load(tape, layer, "x", &rc, err);
  if (rc == AAL_OK)
    rc = aal_conv2d_backward_filter(x, dy, 1, 1, dw, err);
  if (rc == AAL_OK && dx != NULL)
    rc = aal_conv2d_backward_data(dy, w, 1, 1, dx, err);
  return rc;
}

/* Activation-gradient buffers, all [N, C, S, S] except the head's. */
typedef struct {
  aal_tensor *dlogits, *dpool, *dh2, *dsum, *dc2, *dh1, *dh1_res, *db1, *dc1;
} smoke_grads;

static void grads_release(smoke_grads *g)
{
  aal_tensor *all[] = {g->dlogits, g->dpool, g->dh2, g->dsum, g->dc2,
                       g->dh1, g->dh1_res, g->db1, g->dc1};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
}

static int grads_alloc(smoke_grads *g, const aal_tensor *prob, const aal_tensor *mask,
                       const aal_tensor *pool, aal_error *err)
{
  aal_tensor *proto = aal_tensor_new4((long)mask->shape[0], (long)mask->shape[1],
                                      (long)mask->shape[2], (long)mask->shape[3], err);
  if (proto == NULL)
    return err != NULL ? err->code : AAL_ENOMEM;
  g->dlogits = aal_tensor_new_like(prob, err);
  g->dpool = aal_tensor_new_like(pool, err);
  g->dh2 = aal_tensor_new_like(proto, err);
  g->dsum = aal_tensor_new_like(proto, err);
  g->dc2 = aal_tensor_new_like(proto, err);
  g->dh1 = aal_tensor_new_like(proto, err);
  g->dh1_res = aal_tensor_new_like(proto, err);
  g->db1 = aal_tensor_new_like(proto, err);
  g->dc1 = aal_tensor_new_like(proto, err);
  aal_tensor_release(proto);
  if (!g->dlogits || !g->dpool || !g->dh2 || !g->dsum || !g->dc2 || !g->dh1 || !g->dh1_res ||
      !g->db1 || !g->dc1)
    return err != NULL ? err->code : AAL_ENOMEM;
  return AAL_OK;
}

static int head_backward(aal_smoke_net *net, const aal_tape *tape, const int *labels,
                         smoke_grads *g, aal_error *err)
{
  aal_tensor **p = net->param, **d = net->grad;
  int rc = AAL_OK;
  const aal_tensor *prob = load(tape, "loss", "prob", &rc, err);
  const aal_tensor *pool = load(tape, "fc", "x", &rc, err);
  if (rc == AAL_OK)
    rc = aal_xent_backward(prob, labels, g->dlogits, err);
  if (rc == AAL_OK)
    rc = aal_linear_backward(g->dlogits, pool, p[AAL_SMOKE_FC_W], g->dpool, d[AAL_SMOKE_FC_W],
                             d[AAL_SMOKE_FC_B], err);
  if (rc == AAL_OK)
    rc = aal_avgpool_backward(g->dpool, g->dh2, err);
  return rc;
}

int aal_smoke_backward(aal_smoke_net *net, const aal_tape *tape, const int *labels,
                       aal_error *err)
{
  if (net == NULL || tape == NULL || labels == NULL)
    return aal_fail(err, AAL_EINVAL, "smoke backward: NULL argument");
  int rc = AAL_OK;
  const aal_tensor *prob = load(tape, "loss", "prob", &rc, err);
  const aal_tensor *mask = load(tape, "relu2", "mask", &rc, err);
  const aal_tensor *pool = load(tape, "fc", "x", &rc, err);
  if (rc != AAL_OK)
    return rc;
  aal_tensor **p = net->param, **d = net->grad;
  smoke_grads g = {0};
  rc = grads_alloc(&g, prob, mask, pool, err);
  if (rc == AAL_OK)
    rc = head_backward(net, tape, labels, &g, err);
  if (rc == AAL_OK)
    rc = relu_backward(tape, "relu2", g.dh2, g.dsum, err);
  /* the residual add sends dsum both into bn2 and straight to h1 */
  if (rc == AAL_OK)
    rc = bn_backward(tape, "bn2", p[AAL_SMOKE_BN2_W], g.dsum, g.dc2, d[AAL_SMOKE_BN2_W],
                     d[AAL_SMOKE_BN2_B], err);
  if (rc == AAL_OK)
    rc = conv_backward(tape, "conv2", p[AAL_SMOKE_CONV2_W], g.dc2, g.dh1_res,
                       d[AAL_SMOKE_CONV2_W], err);
  if (rc == AAL_OK)
    rc = aal_add_forward(g.dh1_res, g.dsum, g.dh1, err);
  if (rc == AAL_OK)
    rc = relu_backward(tape, "relu1", g.dh1, g.db1, err);
  if (rc == AAL_OK)
    rc = bn_backward(tape, "bn1", p[AAL_SMOKE_BN1_W], g.db1, g.dc1, d[AAL_SMOKE_BN1_W],
                     d[AAL_SMOKE_BN1_B], err);
  if (rc == AAL_OK)
    rc = conv_backward(tape, "conv1", p[AAL_SMOKE_CONV1_W], g.dc1, NULL, d[AAL_SMOKE_CONV1_W],
                       err);
  grads_release(&g);
  return rc;
}

/* ---------------------------------------------------------------- the smoke run */

void aal_smoke_opts_default(aal_smoke_opts *opts)
{
  opts->batch = 16;
  opts->size = 8;
  opts->channels = 8;
  opts->classes = 4;
  opts->steps = 30;
  opts->lr = 0.1;
  opts->seed = 1;
}

static int check_opts(const aal_smoke_opts *o, aal_error *err)
{
  if (o->batch < 2 || o->batch > 4096)
    return aal_fail(err, AAL_EINVAL, "--batch %d must be in 2..4096", o->batch);
  if (o->size < 1 || o->size > 256)
    return aal_fail(err, AAL_EINVAL, "--size %d must be in 1..256", o->size);
  if (o->channels < 1 || o->channels > 512)
    return aal_fail(err, AAL_EINVAL, "--channels %d must be in 1..512", o->channels);
  if (o->classes < 2 || o->classes > 1000)
    return aal_fail(err, AAL_EINVAL, "--classes %d must be in 2..1000", o->classes);
  if (o->steps < 0)
    return aal_fail(err, AAL_EINVAL, "--steps %d must be >= 0", o->steps);
  if (!(o->lr > 0 && o->lr < 1e3))
    return aal_fail(err, AAL_EINVAL, "--lr %g must be in (0, 1000)", o->lr);
  return AAL_OK;
}

static void sgd_step(aal_smoke_net *net, double lr)
{
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++)
    for (size_t k = 0; k < net->param[i]->size; k++)
      net->param[i]->data[k] -= lr * net->grad[i]->data[k];
}

/* A batch whose label is learnable: class k adds a bump to channel k % 3. */
static int make_batch(const aal_smoke_opts *o, aal_tensor **x, int **labels, aal_error *err)
{
  *x = aal_tensor_new4(o->batch, 3, o->size, o->size, err);
  *labels = malloc((size_t)o->batch * sizeof **labels);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (*x == NULL || *labels == NULL || rng == NULL) {
    gsl_rng_free(rng);
    return aal_fail(err, AAL_ENOMEM, "cannot allocate the smoke batch");
  }
  gsl_rng_set(rng, o->seed + 1000);
  const size_t plane = (size_t)o->size * (size_t)o->size;
  for (int n = 0; n < o->batch; n++) {
    const int label = (int)gsl_rng_uniform_int(rng, (unsigned long)o->classes);
    (*labels)[n] = label;
    for (size_t c = 0; c < 3; c++)
      for (size_t i = 0; i < plane; i++)
        (*x)->data[((size_t)n * 3 + c) * plane + i] =
            gsl_ran_gaussian(rng, 1.0) + ((int)c == label % 3 ? 0.5 + label / 3 : 0.0);
  }
  gsl_rng_free(rng);
  return AAL_OK;
}

static double batch_accuracy(const aal_smoke_net *net, const aal_tape *tape, const int *labels,
                             int batch)
{
  const aal_tensor *prob = aal_tape_load(tape, "loss", "prob", NULL);
  int right = 0;
  for (int n = 0; prob != NULL && n < batch; n++) {
    const double *row = prob->data + (size_t)n * (size_t)net->classes;
    int best = 0;
    for (int k = 1; k < net->classes; k++)
      if (row[k] > row[best])
        best = k;
    right += best == labels[n];
  }
  return (double)right / batch;
}

static int train_steps(const aal_smoke_opts *o, aal_smoke_net *net, const aal_tensor *x,
                       const int *labels, FILE *out, double *first, double *last,
                       aal_error *err)
{
  aal_tape *tape = aal_tape_new(err);
  if (tape == NULL)
    return AAL_ENOMEM;
  int rc = AAL_OK;
  for (int step = 0; step <= o->steps && rc == AAL_OK; step++) {
    double loss = NAN;
    rc = aal_smoke_forward(net, x, labels, tape, &loss, err);
    if (rc == AAL_OK && !isfinite(loss))
      rc = aal_fail(err, AAL_ENUMERIC, "smoke: loss is %g at step %d; lower --lr", loss, step);
    if (rc != AAL_OK)
      break;
    if (step == 0 && first != NULL)
      *first = loss;
    if (last != NULL)
      *last = loss;
    if (out != NULL)
      fprintf(out, "step %4d  loss %.6f  acc %.3f  tape %zu B (%zu B at f32, %zu tensors)\n",
              step, loss, batch_accuracy(net, tape, labels, o->batch), aal_tape_bytes(tape),
              aal_tape_bytes_f32(tape), aal_tape_unique_count(tape));
    if (step < o->steps && (rc = aal_smoke_backward(net, tape, labels, err)) == AAL_OK)
      sgd_step(net, o->lr);
    aal_tape_clear(tape);
  }
  aal_tape_free(tape);
  return rc;
}

int aal_smoke_run(const aal_smoke_opts *o, FILE *out, double *first_loss, double *last_loss,
                  aal_error *err)
{
  int rc = check_opts(o, err);
  if (rc != AAL_OK)
    return rc;
  aal_smoke_net net;
  if ((rc = aal_smoke_net_init(&net, o->channels, o->classes, o->seed, err)) != AAL_OK)
    return rc;
  aal_tensor *x = NULL;
  int *labels = NULL;
  rc = make_batch(o, &x, &labels, err);
  if (rc == AAL_OK)
    rc = train_steps(o, &net, x, labels, out, first_loss, last_loss, err);
  aal_tensor_release(x);
  free(labels);
  aal_smoke_net_free(&net);
  return rc;
}
