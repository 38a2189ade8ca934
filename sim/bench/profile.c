/* Time per op of a backend table (sim/bench/profile.h). */
#include "sim/bench/profile.h"
#include "sim/core/clock.h"

#include <stdlib.h>
#include <string.h>

/* The timed ops, in the order they are printed. */
enum {
  P_CONV_FWD, P_CONV_BWD_DATA, P_CONV_BWD_FILTER, P_BN_FWD, P_BN_BWD, P_BN_FWD_EVAL,
  P_BN_RELU_FWD, P_BN_RELU_BWD, P_RELU_FWD, P_RELU_BWD, P_ADD, P_SCALE, P_AVGPOOL_FWD,
  P_AVGPOOL_BWD, P_MAXPOOL_FWD, P_MAXPOOL_BWD, P_LINEAR_FWD, P_LINEAR_BWD, P_XENT_FWD,
  P_XENT_BWD, P_SIGN_PACK, P_SIGN_UNPACK, P_ASA_INPUT, P_LI_REDUCE, P_SGD, P_N
};
static const char *const NAMES[P_N] = {
    "conv_forward", "conv_backward_data", "conv_backward_filter", "bn_forward",
    "bn_backward", "bn_forward_eval", "bn_relu_forward", "bn_relu_backward", "relu_forward",
    "relu_backward", "add", "scale", "avgpool_forward", "avgpool_backward",
    "maxpool_forward", "maxpool_backward", "linear_forward", "linear_backward",
    "xent_forward", "xent_backward", "sign_pack", "sign_unpack", "asa_input", "li_reduce",
    "sgd_update"};

struct aal_prof {
  aal_backend table; /* first member: the timed ops receive &table and find the rest */
  aal_backend inner; /* the backend itself */
  int slots, cur;
  double *t;         /* [slots][P_N] seconds */
  long *n;           /* [slots][P_N] calls */
};

static aal_prof *prof_of(const aal_backend *be)
{
  return (aal_prof *)(void *)be; /* the object itself is not const */
}

static void account(aal_prof *p, int op, double t0)
{
  if (p->cur < 0)
    return;
  p->t[p->cur * P_N + op] += aal_clock_now() - t0;
  p->n[p->cur * P_N + op]++;
}

/* timed_MEMBER(params): the backend's MEMBER(args), timed into slot P. */
#define TIMED(member, P, params, args)                                                    \
  static int timed_##member params                                                        \
  {                                                                                       \
    aal_prof *p_ = prof_of(be);                                                           \
    const aal_backend *in_ = &p_->inner;                                                  \
    const double t0_ = aal_clock_now();                                                   \
    const int rc_ = in_->member args;                                                     \
    account(p_, P, t0_);                                                                  \
    return rc_;                                                                           \
  }

TIMED(conv_forward, P_CONV_FWD,
      (const aal_backend *be, const aal_conv_shape *cs, const void *x, const void *w, void *y,
       aal_error *err),
      (in_, cs, x, w, y, err))
TIMED(conv_backward_data, P_CONV_BWD_DATA,
      (const aal_backend *be, const aal_conv_shape *cs, const void *dy, const void *w,
       void *dx, aal_error *err),
      (in_, cs, dy, w, dx, err))
TIMED(conv_backward_filter, P_CONV_BWD_FILTER,
      (const aal_backend *be, const aal_conv_shape *cs, const void *x, const void *dy,
       void *dw, aal_error *err),
      (in_, cs, x, dy, dw, err))
TIMED(bn_forward, P_BN_FWD,
      (const aal_backend *be, int n, int c, int hw, const void *x, const void *gamma,
       const void *beta, double eps, void *y, void *mean, void *invstd, void *var,
       aal_error *err),
      (in_, n, c, hw, x, gamma, beta, eps, y, mean, invstd, var, err))
TIMED(bn_backward, P_BN_BWD,
      (const aal_backend *be, int n, int c, int hw, const void *dy, const void *x,
       const void *gamma, const void *mean, const void *invstd, void *dx, void *dgamma,
       void *dbeta, aal_error *err),
      (in_, n, c, hw, dy, x, gamma, mean, invstd, dx, dgamma, dbeta, err))
TIMED(bn_forward_eval, P_BN_FWD_EVAL,
      (const aal_backend *be, int n, int c, int hw, const void *x, const void *gamma,
       const void *beta, const void *running_mean, const void *running_var, double eps,
       void *y, aal_error *err),
      (in_, n, c, hw, x, gamma, beta, running_mean, running_var, eps, y, err))
TIMED(bn_relu_forward, P_BN_RELU_FWD,
      (const aal_backend *be, int n, int c, int hw, const void *x, const void *gamma,
       const void *beta, double eps, void *y, void *mask, void *mean, void *invstd,
       void *var, aal_error *err),
      (in_, n, c, hw, x, gamma, beta, eps, y, mask, mean, invstd, var, err))
TIMED(bn_relu_backward, P_BN_RELU_BWD,
      (const aal_backend *be, int n, int c, int hw, const void *dy, const void *mask,
       const void *x, const void *gamma, const void *mean, const void *invstd, void *dx,
       void *dgamma, void *dbeta, aal_error *err),
      (in_, n, c, hw, dy, mask, x, gamma, mean, invstd, dx, dgamma, dbeta, err))
TIMED(relu_forward, P_RELU_FWD,
      (const aal_backend *be, size_t n, const void *x, void *y, void *mask, aal_error *err),
      (in_, n, x, y, mask, err))
TIMED(relu_backward, P_RELU_BWD,
      (const aal_backend *be, size_t n, const void *dy, const void *mask, void *dx,
       aal_error *err),
      (in_, n, dy, mask, dx, err))
TIMED(add, P_ADD,
      (const aal_backend *be, size_t n, const void *a, const void *b, void *y, aal_error *err),
      (in_, n, a, b, y, err))
TIMED(scale, P_SCALE,
      (const aal_backend *be, size_t n, const void *x, double s, void *y, aal_error *err),
      (in_, n, x, s, y, err))
TIMED(avgpool_forward, P_AVGPOOL_FWD,
      (const aal_backend *be, int rows, int hw, const void *x, void *y, aal_error *err),
      (in_, rows, hw, x, y, err))
TIMED(avgpool_backward, P_AVGPOOL_BWD,
      (const aal_backend *be, int rows, int hw, const void *dy, void *dx, aal_error *err),
      (in_, rows, hw, dy, dx, err))
TIMED(maxpool_forward, P_MAXPOOL_FWD,
      (const aal_backend *be, int n, int c, int h, int w, int k, int stride, int pad,
       const void *x, void *y, aal_error *err),
      (in_, n, c, h, w, k, stride, pad, x, y, err))
TIMED(maxpool_backward, P_MAXPOOL_BWD,
      (const aal_backend *be, int n, int c, int h, int w, int k, int stride, int pad,
       const void *dy, const void *x, void *dx, aal_error *err),
      (in_, n, c, h, w, k, stride, pad, dy, x, dx, err))
TIMED(linear_forward, P_LINEAR_FWD,
      (const aal_backend *be, int n, int in, int out, const void *x, const void *w,
       const void *b, void *y, aal_error *err),
      (in_, n, in, out, x, w, b, y, err))
TIMED(linear_backward, P_LINEAR_BWD,
      (const aal_backend *be, int n, int in, int out, const void *dy, const void *x,
       const void *w, void *dx, void *dw, void *db, aal_error *err),
      (in_, n, in, out, dy, x, w, dx, dw, db, err))
TIMED(xent_forward, P_XENT_FWD,
      (const aal_backend *be, int n, int classes, const void *logits, const int *labels,
       double *loss, void *prob, aal_error *err),
      (in_, n, classes, logits, labels, loss, prob, err))
TIMED(xent_backward, P_XENT_BWD,
      (const aal_backend *be, int n, int classes, const void *prob, const int *labels,
       void *dlogits, aal_error *err),
      (in_, n, classes, prob, labels, dlogits, err))
TIMED(sign_pack, P_SIGN_PACK,
      (const aal_backend *be, size_t n, const void *x, void *bits, aal_error *err),
      (in_, n, x, bits, err))
TIMED(sign_unpack, P_SIGN_UNPACK,
      (const aal_backend *be, size_t n, const void *bits, double eps, void *out,
       aal_error *err),
      (in_, n, bits, eps, out, err))
TIMED(asa_input, P_ASA_INPUT,
      (const aal_backend *be, size_t n, const void *x, double eps, void *h, void *bits,
       aal_error *err),
      (in_, n, x, eps, h, bits, err))
TIMED(li_reduce, P_LI_REDUCE,
      (const aal_backend *be, int n, size_t per, const void *h, const void *r, void *li,
       aal_error *err),
      (in_, n, per, h, r, li, err))
TIMED(sgd_update, P_SGD,
      (const aal_backend *be, size_t n, void *w, const void *g, void *buf, double lr,
       double momentum, double weight_decay, int first, aal_error *err),
      (in_, n, w, g, buf, lr, momentum, weight_decay, first, err))

/* The timed table: the backend's, every op replaced by its timed wrapper. */
static void timed_table(aal_prof *p)
{
  aal_backend *t = &p->table;
  *t = p->inner;
  t->conv_forward = timed_conv_forward;
  t->conv_backward_data = timed_conv_backward_data;
  t->conv_backward_filter = timed_conv_backward_filter;
  t->bn_forward = timed_bn_forward;
  t->bn_backward = timed_bn_backward;
  t->bn_forward_eval = timed_bn_forward_eval;
  t->bn_relu_forward = timed_bn_relu_forward;
  t->bn_relu_backward = timed_bn_relu_backward;
  t->relu_forward = timed_relu_forward;
  t->relu_backward = timed_relu_backward;
  t->add = timed_add;
  t->scale = timed_scale;
  t->avgpool_forward = timed_avgpool_forward;
  t->avgpool_backward = timed_avgpool_backward;
  t->maxpool_forward = timed_maxpool_forward;
  t->maxpool_backward = timed_maxpool_backward;
  t->linear_forward = timed_linear_forward;
  t->linear_backward = timed_linear_backward;
  t->xent_forward = timed_xent_forward;
  t->xent_backward = timed_xent_backward;
  t->sign_pack = timed_sign_pack;
  t->sign_unpack = timed_sign_unpack;
  t->asa_input = timed_asa_input;
  t->li_reduce = timed_li_reduce;
  t->sgd_update = timed_sgd_update;
  t->destroy = NULL; /* aal_prof_close destroys the backend itself */
}

int aal_prof_open(const char *name, int slots, aal_prof **out, aal_error *err)
{
  *out = NULL;
  if (slots < 1 || slots > 64)
    return aal_fail(err, AAL_EINVAL, "profile: %d slots (1..64)", slots);
  aal_prof *p = calloc(1, sizeof *p);
  if (p == NULL)
    return aal_fail(err, AAL_ENOMEM, "profile: %s:%d: %zu bytes", __FILE__, __LINE__,
                    sizeof *p);
  p->t = calloc((size_t)slots * P_N, sizeof *p->t);
  p->n = calloc((size_t)slots * P_N, sizeof *p->n);
  if (p->t == NULL || p->n == NULL) {
    free(p->t);
    free(p->n);
    free(p);
    return aal_fail(err, AAL_ENOMEM, "profile: %s:%d: timers of %d slots", __FILE__,
                    __LINE__, slots);
  }
  const int rc = aal_backend_open(name, &p->inner, err);
  if (rc != AAL_OK) {
    free(p->t);
    free(p->n);
    free(p);
    return rc;
  }
  p->slots = slots;
  p->cur = -1;
  timed_table(p);
  *out = p;
  return AAL_OK;
}

const aal_backend *aal_prof_table(const aal_prof *p)
{
  return &p->table;
}

void aal_prof_select(aal_prof *p, int slot)
{
  p->cur = slot >= 0 && slot < p->slots ? slot : -1;
}

void aal_prof_print(const aal_prof *p, int slot, long steps, double step_seconds, FILE *out)
{
  if (slot < 0 || slot >= p->slots || steps < 1 || !(step_seconds > 0))
    return;
  const double *t = p->t + slot * P_N;
  const long *n = p->n + slot * P_N;
  const double step = step_seconds / (double)steps;
  double sum = 0;
  fprintf(out, "  %-22s %9s %11s %8s\n", "op", "calls", "ms/step", "share");
  for (int i = 0; i < P_N; i++) {
    if (n[i] == 0)
      continue;
    const double ms = 1e3 * t[i] / (double)steps;
    sum += t[i];
    fprintf(out, "  %-22s %9.1f %11.2f %7.1f%%\n", NAMES[i], (double)n[i] / (double)steps, ms,
            100.0 * ms / (1e3 * step));
  }
  const double rest = step_seconds - sum;
  fprintf(out, "  %-22s %9s %11.2f %7.1f%%\n", "(outside the ops)", "", 1e3 * rest / (double)steps,
          100.0 * rest / step_seconds);
  fprintf(out, "  %-22s %9s %11.2f %7.1f%%  (%ld steps)\n", "step", "", 1e3 * step, 100.0, steps);
}

void aal_prof_close(aal_prof *p)
{
  if (p == NULL)
    return;
  if (p->inner.destroy != NULL)
    p->inner.destroy(&p->inner);
  free(p->t);
  free(p->n);
  free(p);
}
