/* `aal kcheck --step`: one training step on the reference and on another op table, from
 * the same state, compared tensor by tensor (kernels/check/step_check.h, docs/KERNELS.md). */
#include "kernels/check/step_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/layers/li.h"
#include "sim/model/memory.h"
#include "sim/model/resnet.h"

void aal_step_check_opts_init(aal_step_check_opts *o)
{
  memset(o, 0, sizeof *o);
  o->rules = "bp ara:2,2,2,2 asa:2,2,2,2";
  o->seed = 1;
  o->width = 0.125;
  o->batch = 8;
  o->in_size = 64;
  o->classes = 200;
  o->blocks = NULL;
  o->model = "resnet18";
  o->stem = "tiny";
  o->c = AAL_STEP_TOL_C;
  o->lr = 0.05;
}

/* ---------------------------------------------------------------- the observer */

#define MAX_CONVS 256

typedef struct {
  int count;
  char name[MAX_CONVS][AAL_PARAM_NAME_LEN];
  int has_li[MAX_CONVS];
  double *li[MAX_CONVS];
  unsigned char *valid[MAX_CONVS];
  double *x[MAX_CONVS];            /* every conv's input, for the sign comparison */
  size_t xsize[MAX_CONVS], n;
  const aal_ops *ops;              /* the side's table: its li_reduce gives the LI */
  int rc;
  aal_error err;
} recorder;

static void recorder_free(recorder *r)
{
  if (r == NULL)
    return;
  for (int i = 0; i < r->count; i++) {
    free(r->li[i]);
    free(r->valid[i]);
    free(r->x[i]);
  }
  free(r);
}

static void on_conv(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *x,
                    const aal_tensor *h, const aal_tensor *r)
{
  recorder *rec = ctx;
  if (rec->rc != AAL_OK)
    return;
  if (rec->count == MAX_CONVS) {
    rec->rc = aal_fail(&rec->err, AAL_EINVAL, "step check: more than %d convs", MAX_CONVS);
    return;
  }
  const int i = rec->count++;
  const size_t n = h->shape[0];
  snprintf(rec->name[i], sizeof rec->name[i], "%s", u->conv_name);
  rec->n = n;
  rec->xsize[i] = x->size;
  rec->x[i] = malloc(x->size * sizeof(double));
  rec->has_li[i] = source != AAL_R_INPUT;
  if (rec->has_li[i]) {
    rec->li[i] = malloc(n * sizeof(double));
    rec->valid[i] = malloc(n);
  }
  if (rec->x[i] == NULL || (rec->has_li[i] && (rec->li[i] == NULL || rec->valid[i] == NULL))) {
    rec->rc = aal_fail(&rec->err, AAL_ENOMEM, "step check: LI buffers of %s", u->conv_name);
    return;
  }
  size_t zero = 0;
  aal_tensor *hx = aal_tensor_host_view(x, &rec->err);  /* a copy from a backend */
  rec->rc = hx != NULL ? AAL_OK : AAL_ENOMEM;
  if (rec->rc == AAL_OK)
    memcpy(rec->x[i], hx->data, x->size * sizeof(double));
  aal_tensor_release(hx);
  /* the LI as the side's table computes it (on a backend: its li_reduce) */
  if (rec->rc == AAL_OK && rec->has_li[i])
    rec->rc = rec->ops->li_reduce(rec->ops, h, r, rec->li[i], rec->valid[i], &zero, &rec->err);
}

/* ---------------------------------------------------------------- tolerances */

/* Depth in convs + fc on the longest path, and the longest dot product or reduction
 * (conv forward C*R*S, backward-data K*R*S, backward-filter and batch norm N*P*Q; fc
 * in, N, classes). */
static void step_sizes(const aal_resnet *net, long batch, long *depth, long *kmax)
{
  long k = 0;
  *depth = aal_resnet_config_depth(&net->cfg);
  for (int b = -1; b < net->nblocks; b++) {
    const aal_conv_bn *units[4] = {&net->stem};
    const int nu = b < 0 ? 1 : aal_block_convs(&net->blocks[b], units);
    /* a block's main-path convs read each other's outputs in turn, the shortcut the
     * block input */
    const long hblock = b < 0 ? net->cfg.in_size : net->blocks[b].in_size;
    long h = hblock;
    for (int j = 0; j < nu; j++) {
      const int shortcut = b >= 0 && units[j] == &net->blocks[b].downsample;
      const long hin = shortcut ? hblock : h;
      const long hout = (hin + 2L * units[j]->pad - units[j]->ksize) / units[j]->stride + 1;
      const long crs = (long)units[j]->in_channels * units[j]->ksize * units[j]->ksize;
      const long krs = (long)units[j]->out_channels * units[j]->ksize * units[j]->ksize;
      const long npq = batch * hout * hout;
      if (crs > k) k = crs;
      if (krs > k) k = krs;
      if (npq > k) k = npq;
      if (!shortcut)
        h = hout;
    }
  }
  const aal_tensor *fc = net->params[net->fc_weight].value;
  if ((long)fc->shape[1] > k) k = (long)fc->shape[1];
  if ((long)fc->shape[0] > k) k = (long)fc->shape[0];
  if (batch > k) k = batch;
  *kmax = k;
}

/* ---------------------------------------------------------------- comparison */

/* what is compared: loss, gradients, LI, parameters (and running statistics) after the
 * step, eval-mode logits, momentum buffers after the step, parameters and momentum after
 * a second step */
#define KINDS 8
enum { KIND_MOM = 5, KIND_PARAM2 = 6, KIND_MOM2 = 7 };

typedef struct {
  FILE *out;
  int verbose;
  const char *rule;
  double tol;
  aal_step_check_summary *sum;
  /* per kind: worst ratio and name, for the summary lines */
  double kind_worst[KINDS];
  char kind_name[KINDS][AAL_PARAM_NAME_LEN + 8];
  int kind_count[KINDS];
} cmp_ctx;

static const char *const kind_names[KINDS] = {"loss", "grad", "li",     "param",
                                              "eval", "mom",  "param2", "mom2"};

static void compare(cmp_ctx *c, int kind, const char *name, const double *ref,
                    const double *val, const unsigned char *vref, const unsigned char *vval,
                    size_t n)
{
  double scale = 0, worst = -1, ratio;
  size_t at = 0;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (vref != NULL && (vref[i] != vval[i])) {
      bad = 1;  /* one side says h = 0, the other does not */
      at = i;
      continue;
    }
    if (vref != NULL && !vref[i])
      continue;
    if (!isfinite(val[i]) || !isfinite(ref[i])) {
      if (!bad)
        at = i;
      bad = 1;
      continue;
    }
    const double e = fabs(val[i] - ref[i]);
    if (fabs(ref[i]) > scale)
      scale = fabs(ref[i]);
    if (e > worst) {
      worst = e;
      if (!bad)
        at = i;
    }
  }
  if (worst < 0)
    worst = 0;
  if (bad)
    ratio = INFINITY;
  else if (scale > 0)
    ratio = worst / (c->tol * scale);
  else
    ratio = worst == 0 ? 0 : INFINITY;
  const int pass = ratio <= 1.0;  /* NaN cannot pass */
  aal_step_check_summary *s = c->sum;
  s->checks++;
  if (!pass)
    s->failed++;
  if (!(ratio <= s->worst_ratio)) {
    s->worst_ratio = ratio;
    snprintf(s->worst, sizeof s->worst, "%s %s %s", c->rule, kind_names[kind], name);
  }
  c->kind_count[kind]++;
  if (!(ratio <= c->kind_worst[kind])) {
    c->kind_worst[kind] = ratio;
    snprintf(c->kind_name[kind], sizeof c->kind_name[kind], "%s", name);
  }
  if (c->out != NULL && (c->verbose || !pass))
    fprintf(c->out, "  %-5s %-34s %10.3e %9.3f  [%zu] ref %.9g got %.9g  %s\n",
            kind_names[kind], name, scale > 0 ? worst / scale : worst, ratio, at,
            n ? ref[at] : 0.0, n ? val[at] : 0.0, pass ? "PASS" : "FAIL");
}

/* ---------------------------------------------------------------- one side */

static void round_tensor(aal_tensor *t, int bits)
{
  if (t != NULL && t->dtype == AAL_F64 && bits == 24)
    for (size_t i = 0; i < t->size; i++)
      t->data[i] = (double)(float)t->data[i];
}

static int run_side(aal_resnet *net, const aal_ops *ops, const aal_rule *rule,
                    const aal_tensor *x, const int *labels, const aal_step_check_opts *o,
                    recorder *rec, double *loss, aal_error *err)
{
  aal_resnet_pass pass;
  aal_tape *tape = aal_tape_new(err);
  int rc = tape ? aal_resnet_pass_init(&pass, net, rule, o->seed, 0, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_resnet_move(net, aal_ops_or_ref(ops), err);
  if (rc == AAL_OK) {
    pass.ops = ops;
    rec->ops = aal_ops_or_ref(ops);
    pass.observer.conv_forward = on_conv;
    pass.observer.ctx = rec;
    rc = aal_resnet_forward(net, &pass, x, labels, tape, loss, NULL, err);
  }
  if (rc == AAL_OK && rec->rc != AAL_OK) {
    rc = rec->rc;
    if (err != NULL)
      *err = rec->err;
  }
  if (rc == AAL_OK)
    rc = aal_resnet_backward(net, &pass, tape, labels, err);
  aal_tape_free(tape);
  return rc;
}

/* Signs of the conv inputs that differ between the runs, and how many of them are ties:
 * both values within tol * max|x_ref| of zero (a pre-activation that rounding alone
 * puts on either side of the ReLU). */
static void count_flips(const recorder *ra, const recorder *rb, double tol, long *flips,
                        long *ties)
{
  *flips = *ties = 0;
  for (int i = 0; i < ra->count; i++) {
    double mx = 0;
    for (size_t k = 0; k < ra->xsize[i]; k++)
      if (fabs(ra->x[i][k]) > mx)
        mx = fabs(ra->x[i][k]);
    for (size_t k = 0; k < ra->xsize[i]; k++)
      if ((ra->x[i][k] > 0) != (rb->x[i][k] > 0)) {
        (*flips)++;
        *ties += fabs(ra->x[i][k]) <= tol * mx && fabs(rb->x[i][k]) <= tol * mx;
      }
  }
}

/* Every parameter and running statistic (kind kp) and every momentum buffer (kind km). */
static void compare_state(cmp_ctx *c, const aal_resnet *a, const aal_resnet *b, int kp, int km)
{
  for (int i = 0; i < a->nparams; i++) {
    const aal_param *pa = &a->params[i], *pb = &b->params[i];
    compare(c, kp, pa->name, pa->value->data, pb->value->data, NULL, NULL, pa->value->size);
    if (pa->momentum != NULL && pb->momentum != NULL)
      compare(c, km, pa->name, pa->momentum->data, pb->momentum->data, NULL, NULL,
              pa->momentum->size);
  }
}

#define MAX_DRAWS 5

/* The reference side takes the tested side's gradients (b at home) before the SGD step,
 * so that the parameters and momentum buffers after it hold the update's error only (a
 * wrong gradient shows as one, not again downstream). */
static void adopt_grads(aal_resnet *a, const aal_resnet *b)
{
  for (int i = 0; i < a->nparams; i++)
    if (a->params[i].grad != NULL && b->params[i].grad != NULL)
      memcpy(a->params[i].grad->data, b->params[i].grad->data,
             a->params[i].grad->size * sizeof(double));
}

/* The reference side takes the tested side's state (parameters, running statistics,
 * momentum; b at home), so that the second step starts from identical values as the
 * first did: its comparison holds one step's error, and no tie carried over. */
static void adopt_state(aal_resnet *a, const aal_resnet *b)
{
  for (int i = 0; i < a->nparams; i++) {
    const aal_param *pb = &b->params[i];
    aal_param *pa = &a->params[i];
    memcpy(pa->value->data, pb->value->data, pa->value->size * sizeof(double));
    if (pa->momentum != NULL && pb->momentum != NULL)
      memcpy(pa->momentum->data, pb->momentum->data, pa->momentum->size * sizeof(double));
  }
}

/* One draw of the second step: b's state adopted by a (b at home), forward + backward on
 * both with batch seed `seed`; *flips and *ties as count_flips. */
static int second_pass(aal_resnet *a, aal_resnet *b, const aal_ops *ops, const aal_rule *rule,
                       unsigned long seed, const aal_step_check_opts *o, double tol,
                       long *flips, long *ties, aal_error *err)
{
  recorder *ra = calloc(1, sizeof *ra), *rb = calloc(1, sizeof *rb);
  aal_tensor *x = NULL;
  int *labels = NULL;
  double la = 0, lb = 0;
  int rc = (ra && rb) ? aal_resnet_move(b, aal_ops_ref(), err)
                      : aal_fail(err, AAL_ENOMEM, "step check: recorders");
  if (rc == AAL_OK)
    rc = aal_random_batch(&a->cfg, o->batch, seed, &x, &labels, err);
  if (rc == AAL_OK) {
    round_tensor(x, ops->precision_bits);
    adopt_state(a, b);
    rc = run_side(a, NULL, rule, x, labels, o, ra, &la, err);
  }
  if (rc == AAL_OK)
    rc = run_side(b, ops, rule, x, labels, o, rb, &lb, err);
  if (rc == AAL_OK)
    count_flips(ra, rb, tol, flips, ties);
  aal_tensor_release(x);
  free(labels);
  recorder_free(ra);
  recorder_free(rb);
  return rc;
}

/* A second step on both sides from the tested side's state after the first: the
 * momentum buffers are read back and the running statistics updated again; then
 * compare_state.  As in the first step, a batch whose conv-input signs differ only by
 * ties (within rounding of 0) is redrawn (at most MAX_DRAWS); a sign that differs
 * otherwise, or ties in every draw, fails. */
static int second_step(aal_resnet *a, aal_resnet *b, const aal_ops *ops, const aal_rule *rule,
                       const aal_step_check_opts *o, cmp_ctx *c, aal_error *err)
{
  long flips = 0, ties = 0;
  int rc = AAL_OK;
  for (int attempt = 0; rc == AAL_OK && attempt < MAX_DRAWS; attempt++) {
    const unsigned long seed = o->seed + 104729ul + 7919ul * (unsigned long)attempt;
    rc = second_pass(a, b, ops, rule, seed, o, c->tol, &flips, &ties, err);
    if (rc != AAL_OK || flips == 0 || flips > ties)
      break;
    if (c->out != NULL)
      fprintf(c->out, "  step 2: batch seed %lu: %ld conv-input sign(s) differ, all ties; "
              "drawing another batch\n", seed, ties);
  }
  if (rc == AAL_OK && flips == 0 && (rc = aal_resnet_move(b, aal_ops_ref(), err)) == AAL_OK) {
    adopt_grads(a, b);
    rc = aal_resnet_sgd_step_ops(a, NULL, o->lr, 0.9, 1e-4, err);
    if (rc == AAL_OK)
      rc = aal_resnet_move(b, ops, err);
    if (rc == AAL_OK)
      rc = aal_resnet_sgd_step_ops(b, ops, o->lr, 0.9, 1e-4, err);
    if (rc == AAL_OK)
      rc = aal_resnet_move(b, aal_ops_ref(), err);
    if (rc == AAL_OK)
      compare_state(c, a, b, KIND_PARAM2, KIND_MOM2);
  } else if (rc == AAL_OK) {
    c->sum->checks++;
    c->sum->failed++;
    c->sum->worst_ratio = INFINITY;
    snprintf(c->sum->worst, sizeof c->sum->worst, "%s step-2 conv-input signs", c->rule);
    if (c->out != NULL)
      fprintf(c->out, "  step 2: %ld conv-input sign(s) differ (%ld of them ties)  FAIL\n",
              flips, ties);
  }
  return rc;
}

/* One draw of the batch (attempt): returns AAL_OK and *retry = 1 when the only
 * differences in sign are ties, so that another batch should be drawn. */
static int check_draw(const aal_ops *ops, const aal_step_check_opts *o, const char *text,
                      int attempt, FILE *out, aal_step_check_summary *sum, int *retry,
                      aal_error *err)
{
  aal_rule rule;
  aal_resnet_config cfg;
  aal_resnet a, b;
  int a_ready = 0, b_ready = 0, *labels = NULL;
  aal_tensor *x = NULL;
  *retry = 0;
  recorder *ra = calloc(1, sizeof *ra), *rb = calloc(1, sizeof *rb);
  int rc = (ra && rb) ? AAL_OK : aal_fail(err, AAL_ENOMEM, "step check: recorders");
  if (rc == AAL_OK)
    rc = aal_rule_parse(text, &rule, err);
  aal_resnet_config_default(&cfg);
  cfg.classes = o->classes;
  cfg.in_size = o->in_size;
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_model(&cfg, o->model, err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_stem(&cfg, o->stem, err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_width(&cfg, o->width, err);
  if (rc == AAL_OK && o->blocks != NULL)
    rc = aal_resnet_config_set_blocks(&cfg, o->blocks, err);
  if (rc == AAL_OK && (rc = aal_resnet_init(&a, &cfg, o->seed, err)) == AAL_OK)
    a_ready = 1;
  if (rc == AAL_OK && (rc = aal_resnet_init(&b, &cfg, o->seed, err)) == AAL_OK)
    b_ready = 1;
  const unsigned long batch_seed = o->seed + 7919ul * (unsigned long)attempt;
  if (rc == AAL_OK)
    rc = aal_random_batch(&cfg, o->batch, batch_seed, &x, &labels, err);
  if (rc != AAL_OK)
    goto done;
  /* the same starting values on both sides: what the tested table can represent */
  round_tensor(x, ops->precision_bits);
  for (int i = 0; i < a.nparams; i++) {
    round_tensor(a.params[i].value, ops->precision_bits);
    round_tensor(b.params[i].value, ops->precision_bits);
  }
  long depth, kmax;
  step_sizes(&a, o->batch, &depth, &kmax);
  const double c = o->c > 0 ? o->c : AAL_STEP_TOL_C;
  const double tol = c * sqrt(2.0 * (double)depth) * sqrt((double)kmax) *
                     ldexp(1.0, -ops->precision_bits);
  sum->tol = tol;
  double la = 0, lb = 0;
  rc = run_side(&a, NULL, &rule, x, labels, o, ra, &la, err);
  if (rc == AAL_OK)
    rc = run_side(&b, ops, &rule, x, labels, o, rb, &lb, err);
  /* the gradients come home to be compared */
  if (rc == AAL_OK)
    rc = aal_resnet_move(&b, aal_ops_ref(), err);
  if (rc == AAL_OK && ra->count != rb->count)
    rc = aal_fail(err, AAL_EINVAL, "step check: %d convs observed on the reference, %d on %s",
                  ra->count, rb->count, ops->name);
  if (rc != AAL_OK)
    goto done;
  long flips, ties;
  count_flips(ra, rb, tol, &flips, &ties);
  if (flips > 0 && flips == ties && attempt + 1 < MAX_DRAWS) {
    if (out != NULL)
      fprintf(out, "%s: batch seed %lu puts %ld conv input(s) within rounding of 0 on "
              "different sides of the ReLU (ties; the step is not comparable after them); "
              "drawing another batch\n", text, batch_seed, ties);
    *retry = 1;
    goto done;
  }
  sum->sign_flips += flips;
  if (out != NULL)
    fprintf(out, "%s on %s vs ref: width %g, batch %d, input %d, seed %lu (batch seed %lu); "
            "D = %ld, K = %ld;\n  tol = %g * sqrt(2D) * sqrt(K) * 2^-%d = %.3g (relative, "
            "max norm); conv-input signs differing: %ld (ties %ld)\n", text, ops->name,
            o->width, o->batch, o->in_size, o->seed, batch_seed, depth, kmax, c,
            ops->precision_bits, tol, flips, ties);
  cmp_ctx cc;
  memset(&cc, 0, sizeof cc);
  cc.out = out;
  cc.verbose = o->verbose;
  cc.rule = text;
  cc.tol = tol;
  cc.sum = sum;
  for (int k = 0; k < KINDS; k++)
    cc.kind_worst[k] = -1;
  if (flips > 0) { /* signs that are not ties, or ties in every draw: a failure */
    sum->checks++;
    sum->failed++;
    sum->worst_ratio = INFINITY;
    snprintf(sum->worst, sizeof sum->worst, "%s conv-input signs", text);
    if (out != NULL)
      fprintf(out, "  sign  %ld conv-input sign(s) differ (%ld of them ties)  FAIL\n", flips,
              ties);
  }
  if (out != NULL && o->verbose)
    fprintf(out, "  %-5s %-34s %10s %9s  worst element\n", "kind", "tensor", "rel err",
            "err/tol");
  compare(&cc, 0, "loss", &la, &lb, NULL, NULL, 1);
  for (int i = 0; i < a.nparams; i++)
    if (a.params[i].grad != NULL)
      compare(&cc, 1, a.params[i].name, a.params[i].grad->data, b.params[i].grad->data, NULL,
              NULL, a.params[i].grad->size);
  for (int i = 0; i < ra->count; i++)
    if (ra->has_li[i])
      compare(&cc, 2, ra->name[i], ra->li[i], rb->li[i], ra->valid[i], rb->valid[i], ra->n);
  adopt_grads(&a, &b);
  rc = aal_resnet_sgd_step_ops(&a, NULL, o->lr, 0.9, 1e-4, err);
  if (rc == AAL_OK)
    rc = aal_resnet_move(&b, ops, err);
  if (rc == AAL_OK)
    rc = aal_resnet_sgd_step_ops(&b, ops, o->lr, 0.9, 1e-4, err);
  if (rc == AAL_OK)
    rc = aal_resnet_move(&b, aal_ops_ref(), err);
  if (rc == AAL_OK)
    compare_state(&cc, &a, &b, 3, KIND_MOM);
  /* evaluation mode (running statistics) on the updated networks: the logits */
  aal_tensor *ea = NULL, *eb = NULL;
  if (rc == AAL_OK && ((ea = aal_tensor_new2(o->batch, o->classes, err)) == NULL ||
                       (eb = aal_tensor_new2(o->batch, o->classes, err)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_resnet_forward_eval_ops(&a, NULL, x, ea, err);
  if (rc == AAL_OK)
    rc = aal_resnet_move(&b, ops, err);
  if (rc == AAL_OK)
    rc = aal_resnet_forward_eval_ops(&b, ops, x, eb, err);
  if (rc == AAL_OK)
    compare(&cc, 4, "logits", ea->data, eb->data, NULL, NULL, ea->size);
  aal_tensor_release(ea);
  aal_tensor_release(eb);
  if (rc == AAL_OK)
    rc = second_step(&a, &b, ops, &rule, o, &cc, err);
  if (rc == AAL_OK && out != NULL) {
    fprintf(out, "  worst err/tol:");
    for (int k = 0; k < KINDS; k++)
      if (cc.kind_count[k] > 0)
        fprintf(out, " %s %.3f (%s, %d tensors);", kind_names[k], cc.kind_worst[k],
                cc.kind_name[k], cc.kind_count[k]);
    fprintf(out, "\n");
  }
done:
  if (a_ready)
    aal_resnet_free(&a);
  if (b_ready)
    aal_resnet_free(&b);
  aal_tensor_release(x);
  free(labels);
  recorder_free(ra);
  recorder_free(rb);
  return rc;
}

static int check_rule(const aal_ops *ops, const aal_step_check_opts *o, const char *text,
                      FILE *out, aal_step_check_summary *sum, aal_error *err)
{
  int rc = AAL_OK, retry = 1;
  for (int attempt = 0; rc == AAL_OK && retry && attempt < MAX_DRAWS; attempt++)
    rc = check_draw(ops, o, text, attempt, out, sum, &retry, err);
  return rc;
}

int aal_step_check(const aal_ops *ops, const aal_step_check_opts *o, FILE *out,
                   aal_step_check_summary *sum, aal_error *err)
{
  if (ops == NULL || o == NULL || sum == NULL)
    return aal_fail(err, AAL_EINVAL, "step check: NULL argument");
  memset(sum, 0, sizeof *sum);
  if (o->batch < 2 || o->in_size < 8 || o->classes < 2 || !(o->lr >= 0))
    return aal_fail(err, AAL_EINVAL, "step check: --batch %d must be >= 2, input %d >= 8, "
                    "classes %d >= 2, lr %g >= 0", o->batch, o->in_size, o->classes, o->lr);
  char rules[512];
  if (snprintf(rules, sizeof rules, "%s", o->rules ? o->rules : "bp ara:2,2,2,2 asa:2,2,2,2") >=
      (int)sizeof rules)
    return aal_fail(err, AAL_EINVAL, "step check: rules too long");
  char *save = NULL;
  int rc = AAL_OK, nrules = 0;
  /* an op that reads an element nobody wrote must show up as NaN here */
  aal_ops_poison_new(ops, 1);
  for (char *t = strtok_r(rules, " ", &save); t != NULL && rc == AAL_OK;
       t = strtok_r(NULL, " ", &save), nrules++)
    rc = check_rule(ops, o, t, out, sum, err);
  aal_ops_poison_new(ops, 0);
  if (rc == AAL_OK && nrules == 0)
    rc = aal_fail(err, AAL_EINVAL, "step check: no rule given");
  if (rc == AAL_OK && out != NULL)
    fprintf(out, "%s: %d tensors compared, %d failed; worst err/tol %.3f (%s)\n",
            sum->failed ? "FAIL" : "PASS", sum->checks, sum->failed, sum->worst_ratio,
            sum->worst);
  return rc;
}
