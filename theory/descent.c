/* Training with an alternative activation, the step-by-step check of the descent lemma
 * (D) and, where its hypotheses hold, of Theorem 1 itself (T) (see theory/theory.h).
 *
 * The batch form.  With R = 1/B sum_b delta_b r_b^T the step is dW = -eta R, and the
 * descent lemma for an L-Lipschitz gradient,  f(W + D) <= f(W) + <G, D> + L/2 ||D||^2,
 * gives
 *     f(W') <= f(W) - (eta/2) <R, 2G - L eta R>_F ,
 * which at eta = 1/L is  f(W) - (1/(2L)) <R, 2G - R>.  For B = 1, G = delta h^T and
 * R = delta r^T, so <R, 2G - R> = ||delta||^2 r^T(2h - r) = LI ||grad f||^2: the
 * per-sample LI decides, and for L eta <= 1 (so -L eta ||r||^2 >= -||r||^2) the bound
 * becomes (T).  For B > 1 the per-sample LIs do not decide: cross terms
 * (delta_b . delta_b')(h_b . r_b') enter, so each step also records the gradient-level
 * indicator  LI_G = <R, 2G - R> / ||G||^2  and its step-size-aware form
 * LI_eta = <R, 2G - L eta R> / ||G||^2, whose sign is what the lemma needs.  Note that
 * "LI_eta >= 0 => no rise" is the lemma itself: it tests nothing beyond (D).
 *
 * What each check can catch.  (D) holds for any r and step, so it catches a wrong L
 * (too small), a wrong loss or gradient, or an update that is not -eta R; it says
 * nothing about the rule.  (T) is checked only on one-sample runs with eta <= 1/L, with
 * the LI that aal_li_batch computes (the same code the ResNet trainer uses): it catches
 * a wrong LI and is the theorem's own statement.  Runs with eta > 1/L are flagged as
 * outside the theorem, and their steps with LI >= 0 that raised the loss are counted
 * (there the theorem promises nothing, and such steps exist).
 *
 * The rounding allowance.  Every quantity in (D) is a sum of at most
 * K = m n + n + m + B + 2 rounded terms (the Frobenius products have m n terms, each
 * residual or logit n + 1, the losses m B), so to first order its error is at most
 * K u times the sum of the absolute values of its terms (u = DBL_EPSILON/2).  The
 * magnitudes are: the loss scale of aal_theory_loss at W and W' (covers the
 * cancellation in W h - y near a minimum, where |f| alone would be far too small, and
 * the rounding of W' = W + dW, which moves f by at most u ||G(W')|| ||W'||); the
 * effect of the residual errors on G and on dW (a ||dW|| + ||G|| a_r + L ||dW|| a_r
 * with a = 1/B sum s_b ||h_b||, a_r = eta/B sum s_b ||r_b||, s_b = ||W|| ||h_b|| +
 * ||y_b||); and |f(W)|, |f(W')|, sum |G_ij dW_ij|, L/2 ||dW||^2.  The allowance is
 * ALLOW_C * DBL_EPSILON * K * (that sum), ALLOW_C = 2: DBL_EPSILON = 2u, times 2 for
 * the second-order terms and the handful of extra roundings (eta, L/2, the final
 * additions).  A wrong L (too small) fails the check by a margin many orders above
 * this (tests/theory/test_theory.c).  A step whose starting loss is below the allowance
 * is "at the rounding floor": its change cannot be resolved, so it counts neither as a
 * descent nor as flat (it still counts as a rise if the loss grows past the allowance). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "sim/layers/li.h"
#include "theory/theory_internal.h"

#define ALLOW_C 2.0
/* Stop a run whose loss has grown by this factor: the flip family grows the loss by 4x
 * per step on one-sample least squares and would overflow after ~500 steps. */
#define DIVERGED_FACTOR 1e100

typedef struct {
  double *W, *Wn, *R, *delta, *delta_n, *G, *D, *li;
  unsigned char *valid;
} train_buffers;

static void buffers_free(train_buffers *b)
{
  free(b->W);
  free(b->Wn);
  free(b->R);
  free(b->delta);
  free(b->delta_n);
  free(b->G);
  free(b->D);
  free(b->li);
  free(b->valid);
}

static int buffers_alloc(train_buffers *b, size_t m, size_t n, size_t B)
{
  memset(b, 0, sizeof *b);
  b->W = malloc(m * n * sizeof *b->W);
  b->Wn = malloc(m * n * sizeof *b->Wn);
  b->G = malloc(m * n * sizeof *b->G);
  b->D = malloc(m * n * sizeof *b->D);
  b->R = malloc(B * n * sizeof *b->R);
  b->delta = malloc(B * m * sizeof *b->delta);
  b->delta_n = malloc(B * m * sizeof *b->delta_n);
  b->li = malloc(B * sizeof *b->li);
  b->valid = malloc(B);
  if (!b->W || !b->Wn || !b->G || !b->D || !b->R || !b->delta || !b->delta_n || !b->li ||
      !b->valid) {
    buffers_free(b);
    return 0;
  }
  return 1;
}

/* What stays fixed over a run. */
typedef struct {
  const aal_theory_problem *p;
  const aal_theory_rspec *spec;
  gsl_rng *rng;
  double eta, eta_fraction, Lc, K;
  int in_theorem; /* one sample and eta <= 1/L */
  train_buffers bf;
} train_ctx;

/* LI of this step's samples: mean, min and count of the valid ones. */
typedef struct {
  double sum, min;
  size_t count, zero_norm;
} li_stats;

static int draw_r(train_ctx *t, li_stats *ls, aal_error *err)
{
  const aal_theory_problem *p = t->p;
  const size_t B = p->batch, n = p->n;
  for (size_t b = 0; b < B; b++) {
    int rc = aal_theory_make_r(t->spec, p->H + b * n, n, t->rng, t->bf.R + b * n, err);
    if (rc != AAL_OK)
      return rc;
  }
  ls->zero_norm = 0;
  int rc = aal_li_batch(p->H, t->bf.R, B, n, t->bf.li, t->bf.valid, &ls->zero_norm, err);
  if (rc != AAL_OK)
    return rc;
  ls->sum = 0.0;
  ls->min = INFINITY;
  ls->count = 0;
  for (size_t b = 0; b < B; b++)
    if (t->bf.valid[b]) {
      ls->sum += t->bf.li[b];
      ls->count++;
      if (t->bf.li[b] < ls->min)
        ls->min = t->bf.li[b];
    }
  return AAL_OK;
}

/* The update and the magnitudes of the rounding allowance that do not need f(W'). */
typedef struct {
  double gg, gd, dd, gd_abs, a, a_r, c;
  double li_mag; /* one sample: (eta/2) ||delta||^2 (2|h^T r| + ||r||^2), the magnitude of
                    the terms of the guaranteed decrease (its LI is a ratio of n-term sums) */
} step_terms;

/* D = -eta/B sum_b delta_b r_b^T, W' = W + D; the indicators li_grad and li_eta. */
static void make_update(train_ctx *t, aal_theory_step *st, step_terms *q)
{
  const aal_theory_problem *p = t->p;
  train_buffers *bf = &t->bf;
  const size_t m = p->m, n = p->n, B = p->batch, mn = m * n;
  aal_theory_grad(p, bf->delta, bf->G);
  memset(bf->D, 0, mn * sizeof *bf->D);
  const double wnorm = sqrt(aal_theory_norm2(bf->W, mn));
  q->a = q->a_r = 0.0;
  for (size_t b = 0; b < B; b++) {
    const double *r = bf->R + b * n, *h = p->H + b * n;
    for (size_t i = 0; i < m; i++) {
      const double d = bf->delta[b * m + i];
      for (size_t j = 0; j < n; j++)
        bf->D[i * n + j] += d * r[j];
    }
    const double hn = sqrt(aal_theory_norm2(h, n));
    const double yn = p->Y != NULL ? sqrt(aal_theory_norm2(p->Y + b * m, m)) : 0.0;
    const double s = wnorm * hn + yn;
    q->a += s * hn;
    q->a_r += s * sqrt(aal_theory_norm2(r, n));
  }
  q->a /= (double)B;
  q->a_r *= t->eta / (double)B;
  /* The indicators from R = D/B before the step size is applied. */
  double rg = 0.0, rr = 0.0;
  for (size_t i = 0; i < mn; i++) {
    const double ri = bf->D[i] / (double)B;
    rg += ri * bf->G[i];
    rr += ri * ri;
  }
  q->gg = aal_theory_norm2(bf->G, mn);
  /* At an exact stationary point (G = 0) there is no indicator: NaN, skipped later. */
  st->li_grad = q->gg > 0.0 ? (2.0 * rg - rr) / q->gg : NAN;
  st->li_eta = q->gg > 0.0 ? (2.0 * rg - t->eta_fraction * rr) / q->gg : NAN;
  q->gd_abs = 0.0;
  for (size_t i = 0; i < mn; i++) {
    bf->D[i] *= -t->eta / (double)B;
    bf->Wn[i] = bf->W[i] + bf->D[i];
    q->gd_abs += fabs(bf->G[i] * bf->D[i]);
  }
  q->c = NAN;
  q->li_mag = 0.0;
  if (B == 1) {
    /* SPEC's one-sample form: <G, D> = -eta ||delta||^2 h^T r, ||D||^2 = eta^2
     * ||delta||^2 ||r||^2 (D is the rank-one delta r^T). */
    const double dl = aal_theory_norm2(bf->delta, m);
    const double hr = aal_theory_dot(p->H, bf->R, n);
    q->gd = -t->eta * dl * hr;
    const double rr1 = aal_theory_norm2(bf->R, n);
    q->dd = t->eta * t->eta * dl * rr1;
    q->c = hr / aal_theory_norm2(p->H, n);
    q->li_mag = 0.5 * t->eta * dl * (2.0 * fabs(hr) + rr1);
  } else {
    q->gd = aal_theory_dot(bf->G, bf->D, mn);
    q->dd = aal_theory_norm2(bf->D, mn);
  }
}

/* The checks of one step, given f = f(W), f' = f(W') and their loss scales. */
static void check_step(const train_ctx *t, double f, double scale, double fn, double scale_n,
                       const step_terms *q, const li_stats *ls, aal_theory_step *st)
{
  const aal_theory_problem *p = t->p;
  const double Lc = t->Lc, gnorm = sqrt(q->gg), dnorm = sqrt(q->dd);
  st->loss = f;
  st->loss_next = fn;
  st->li_mean = ls->count > 0 ? ls->sum / (double)ls->count : NAN;
  st->li_min = ls->count > 0 ? ls->min : NAN;
  st->c = q->c;
  st->bound = f + q->gd + 0.5 * Lc * q->dd;
  st->allowance = ALLOW_C * DBL_EPSILON * t->K *
                  (scale + scale_n + q->a * dnorm + gnorm * q->a_r + Lc * dnorm * q->a_r +
                   fabs(f) + fabs(fn) + q->gd_abs + 0.5 * Lc * q->dd);
  const double al = st->allowance;
  st->held = fn <= st->bound + al; /* NaN fails */
  st->rose = !(fn <= f + al);
  st->at_floor = !st->rose && f <= al;
  st->fell = !st->rose && !st->at_floor && fn < f - al;
  st->exact = NAN;
  st->exact_ok = 1;
  if (p->kind == AAL_THEORY_LSQ1) {
    /* W'h - y = delta - eta delta r^T h = delta (1 - eta ||h||^2 c), so the exact new loss
     * is f (1 - k)^2 = f + ||delta||^2 (-k + k^2/2), k = eta ||h||^2 c (k = c at
     * eta = 1/L: SPEC's ||delta||^2 (-c + c^2/2)). */
    const double k = t->eta * aal_theory_norm2(p->H, p->n) * q->c;
    st->exact = f + aal_theory_norm2(t->bf.delta, p->m) * (-k + 0.5 * k * k);
    st->exact_ok = fabs(fn - st->exact) <= al;
  }
  /* (T): only with an LI for the sample (h != 0). */
  st->in_theorem = t->in_theorem && ls->count == 1;
  st->guaranteed = NAN;
  st->theorem_ok = 1;
  if (st->in_theorem) {
    /* the allowance of (D) plus the rounding of the guaranteed decrease itself */
    const double alt = al + ALLOW_C * DBL_EPSILON * t->K * q->li_mag;
    st->guaranteed = 0.5 * t->eta * st->li_min * q->gg;
    /* the headline (no rise with LI >= 0) is implied by the decrease for LI >= 0 up to
     * the li_mag term; it is kept as a check of its own because it is what the
     * theorem is quoted for */
    const int no_rise = st->li_min < 0.0 || fn <= f + al;
    const int decrease = f - fn >= st->guaranteed - alt;
    st->theorem_ok = no_rise && decrease; /* NaN fails */
  }
}

/* Adds one step to the run's result. */
static void record_step(const aal_theory_step *st, aal_theory_result *res)
{
  if (!st->held)
    res->violations++;
  if (!st->exact_ok)
    res->exact_failures++;
  if (st->rose)
    res->monotone = 0;
  res->rose_steps += st->rose != 0;
  res->fell_steps += st->fell != 0;
  res->floor_steps += st->at_floor != 0;
  if (st->li_grad < res->li_grad_min)
    res->li_grad_min = st->li_grad;
  if (st->li_eta < res->li_eta_min)
    res->li_eta_min = st->li_eta;
  /* c at the floor says nothing: the step cannot change the loss measurably */
  if (!st->at_floor && (st->c < res->c_min || isnan(res->c_min)))
    res->c_min = st->c;
  if (!st->at_floor && (st->c > res->c_max || isnan(res->c_max)))
    res->c_max = st->c;
  if (res->outside_theorem && st->li_min >= 0.0 && st->rose)
    res->outside_rose++;
  if (!st->in_theorem)
    return;
  res->theorem_steps++;
  res->theorem_violations += st->theorem_ok == 0;
  if (st->guaranteed > st->allowance) {
    const double ratio = (st->loss - st->loss_next) / st->guaranteed;
    if (!(ratio >= res->guarantee_ratio_min))
      res->guarantee_ratio_min = ratio;
  }
  if (st->loss > 0.0)
    res->guaranteed_ratio *= (st->loss - st->guaranteed) / st->loss;
}

static void result_init(aal_theory_result *res, const train_ctx *t, double f)
{
  memset(res, 0, sizeof *res);
  res->monotone = 1;
  res->li_min = res->li_grad_min = res->li_eta_min = INFINITY;
  res->c_min = res->c_max = NAN;
  res->initial_loss = res->final_loss = f;
  res->in_theorem = t->in_theorem;
  res->outside_theorem = t->p->batch == 1 && !t->in_theorem;
  res->guarantee_ratio_min = NAN;
  res->guaranteed_ratio = t->in_theorem ? 1.0 : NAN;
}

static void result_finish(aal_theory_result *res, double li_sum, size_t li_count)
{
  res->li_mean = li_count > 0 ? li_sum / (double)li_count : NAN;
  if (li_count == 0)
    res->li_min = NAN;
  if (res->li_grad_min == INFINITY)
    res->li_grad_min = NAN;
  if (res->li_eta_min == INFINITY)
    res->li_eta_min = NAN;
}

static int check_args(const aal_theory_problem *p, const double *W0, const aal_theory_rspec *spec,
                      const aal_theory_train_opts *opts, const aal_theory_result *res,
                      aal_error *err)
{
  if (p == NULL || W0 == NULL || spec == NULL || opts == NULL || res == NULL)
    return aal_fail(err, AAL_EINVAL, "theory_train: NULL argument");
  if (!(opts->eta_fraction >= 0.0) || !isfinite(opts->eta_fraction) || !(opts->L_check >= 0.0) ||
      !isfinite(opts->L_check))
    return aal_fail(err, AAL_EINVAL, "theory_train: eta_fraction %g and L_check %g must be >= 0",
                    opts->eta_fraction, opts->L_check);
  return AAL_OK;
}

int aal_theory_train(const aal_theory_problem *p, const double *W0, const aal_theory_rspec *spec,
                     const aal_theory_train_opts *opts, gsl_rng *rng, aal_theory_result *res,
                     aal_theory_step *trace, aal_error *err)
{
  int rc = check_args(p, W0, spec, opts, res, err);
  if (rc != AAL_OK)
    return rc;
  const size_t m = p->m, n = p->n, B = p->batch, mn = m * n;
  train_ctx t = {p, spec, rng, opts->eta_fraction / p->L, opts->eta_fraction,
                 opts->L_check > 0.0 ? opts->L_check : p->L, (double)(mn + n + m + B + 2),
                 B == 1 && opts->eta_fraction <= 1.0, {0}};
  if (!buffers_alloc(&t.bf, m, n, B))
    return aal_fail(err, AAL_ENOMEM, "theory_train: buffers for m=%zu n=%zu B=%zu", m, n, B);
  memcpy(t.bf.W, W0, mn * sizeof *t.bf.W);
  double f, scale, li_sum = 0.0;
  size_t li_count = 0;
  rc = aal_theory_loss(p, t.bf.W, &f, t.bf.delta, &scale, err);
  result_init(res, &t, f);
  for (size_t k = 0; rc == AAL_OK && k < opts->steps; k++) {
    li_stats ls;
    rc = draw_r(&t, &ls, err);
    if (rc != AAL_OK)
      break;
    res->zero_norm += ls.zero_norm;
    li_sum += ls.sum;
    li_count += ls.count;
    if (ls.min < res->li_min)
      res->li_min = ls.min;
    aal_theory_step st;
    step_terms q;
    make_update(&t, &st, &q);
    double fn, scale_n;
    rc = aal_theory_loss(p, t.bf.Wn, &fn, t.bf.delta_n, &scale_n, err);
    if (rc != AAL_OK)
      break;
    check_step(&t, f, scale, fn, scale_n, &q, &ls, &st);
    record_step(&st, res);
    if (trace != NULL)
      trace[k] = st;
    res->steps = k + 1;
    res->final_loss = fn;
    /* advance: W <- W', delta <- delta' */
    double *tmp = t.bf.W;
    t.bf.W = t.bf.Wn;
    t.bf.Wn = tmp;
    tmp = t.bf.delta;
    t.bf.delta = t.bf.delta_n;
    t.bf.delta_n = tmp;
    f = fn;
    scale = scale_n;
    if (!isfinite(fn) || (res->initial_loss > 0.0 && fn > DIVERGED_FACTOR * res->initial_loss)) {
      res->diverged = 1;
      break;
    }
  }
  result_finish(res, li_sum, li_count);
  buffers_free(&t.bf);
  return rc;
}

const char *aal_theory_outcome(const aal_theory_result *res)
{
  if (res->rose_steps > 0)
    return "rose";
  return res->fell_steps > 0 ? "descended" : "flat";
}

int aal_theory_train_random_start(const aal_theory_problem *p, const aal_theory_rspec *spec,
                                  const aal_theory_train_opts *opts, gsl_rng *rng,
                                  aal_theory_result *res, aal_error *err)
{
  double *W0 = malloc(p->m * p->n * sizeof *W0);
  if (W0 == NULL)
    return aal_fail(err, AAL_ENOMEM, "theory: a %zux%zu start", p->m, p->n);
  for (size_t i = 0; i < p->m * p->n; i++)
    W0[i] = gsl_ran_gaussian(rng, 1.0 / sqrt((double)p->n));
  const int rc = aal_theory_train(p, W0, spec, opts, rng, res, NULL, err);
  free(W0);
  return rc;
}
