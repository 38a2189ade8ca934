/* Training with an alternative activation and the step-by-step check of the descent
 * lemma (D) (see theory/theory.h).
 *
 * The batch form.  With R = 1/B sum_b delta_b r_b^T the step is dW = -eta R, and the
 * descent lemma for an L-Lipschitz gradient,  f(W + D) <= f(W) + <G, D> + L/2 ||D||^2,
 * gives with eta = 1/L
 *     f(W') <= f(W) - (1/(2L)) <R, 2G - R>_F .
 * For B = 1, G = delta h^T and R = delta r^T, so <R, 2G - R> = ||delta||^2 r^T(2h - r):
 * the per-sample LI decides.  For B > 1 the per-sample LIs do not: cross terms
 * (delta_b . delta_b')(h_b . r_b') enter, so each step also records the gradient-level
 * indicator  LI_G = <R, 2G - R> / ||G||^2  (= LI for one sample), whose sign is what the
 * lemma needs.
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
 * this (tests/theory/test_theory.c). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int aal_theory_train(const aal_theory_problem *p, const double *W0, const aal_theory_rspec *spec,
                     const aal_theory_train_opts *opts, gsl_rng *rng, aal_theory_result *res,
                     aal_theory_step *trace, aal_error *err)
{
  if (p == NULL || W0 == NULL || spec == NULL || opts == NULL || res == NULL)
    return aal_fail(err, AAL_EINVAL, "theory_train: NULL argument");
  if (!(opts->eta_fraction >= 0.0) || !isfinite(opts->eta_fraction) || !(opts->L_check >= 0.0) ||
      !isfinite(opts->L_check))
    return aal_fail(err, AAL_EINVAL, "theory_train: eta_fraction %g and L_check %g must be >= 0",
                    opts->eta_fraction, opts->L_check);
  const size_t m = p->m, n = p->n, B = p->batch, mn = m * n;
  train_buffers bf;
  if (!buffers_alloc(&bf, m, n, B))
    return aal_fail(err, AAL_ENOMEM, "theory_train: buffers for m=%zu n=%zu B=%zu", m, n, B);
  memset(res, 0, sizeof *res);
  res->monotone = 1;
  res->li_min = INFINITY;
  res->li_grad_min = INFINITY;
  double li_sum = 0.0;
  size_t li_count = 0;
  const double eta = opts->eta_fraction / p->L;
  const double Lc = opts->L_check > 0.0 ? opts->L_check : p->L;
  const double K = (double)(mn + n + m + B + 2);
  memcpy(bf.W, W0, mn * sizeof *bf.W);
  double f, scale;
  int rc = aal_theory_loss(p, bf.W, &f, bf.delta, &scale, err);
  res->initial_loss = res->final_loss = f;
  for (size_t k = 0; rc == AAL_OK && k < opts->steps; k++) {
    for (size_t b = 0; b < B && rc == AAL_OK; b++)
      rc = aal_theory_make_r(spec, p->H + b * n, n, rng, bf.R + b * n, err);
    size_t zn = 0;
    if (rc == AAL_OK)
      rc = aal_li_batch(p->H, bf.R, B, n, bf.li, bf.valid, &zn, err);
    if (rc != AAL_OK)
      break;
    res->zero_norm += zn;
    double step_sum = 0.0, step_min = INFINITY;
    size_t step_count = 0;
    for (size_t b = 0; b < B; b++)
      if (bf.valid[b]) {
        step_sum += bf.li[b];
        step_count++;
        if (bf.li[b] < step_min)
          step_min = bf.li[b];
      }
    li_sum += step_sum;
    li_count += step_count;
    if (step_min < res->li_min)
      res->li_min = step_min;

    /* G and D = -eta/B sum_b delta_b r_b^T, and the residual-error magnitudes. */
    aal_theory_grad(p, bf.delta, bf.G);
    memset(bf.D, 0, mn * sizeof *bf.D);
    const double wnorm = sqrt(aal_theory_norm2(bf.W, mn));
    double a = 0.0, a_r = 0.0;
    for (size_t b = 0; b < B; b++) {
      const double *r = bf.R + b * n, *h = p->H + b * n;
      for (size_t i = 0; i < m; i++) {
        const double d = bf.delta[b * m + i];
        for (size_t j = 0; j < n; j++)
          bf.D[i * n + j] += d * r[j];
      }
      const double hn = sqrt(aal_theory_norm2(h, n));
      const double yn = p->Y != NULL ? sqrt(aal_theory_norm2(p->Y + b * m, m)) : 0.0;
      const double s = wnorm * hn + yn;
      a += s * hn;
      a_r += s * sqrt(aal_theory_norm2(r, n));
    }
    a /= (double)B;
    a_r *= eta / (double)B;
    /* Gradient-level indicator from R = D/B before the step size is applied. */
    double rg = 0.0, rr = 0.0;
    for (size_t i = 0; i < mn; i++) {
      const double ri = bf.D[i] / (double)B;
      rg += ri * bf.G[i];
      rr += ri * ri;
    }
    const double gg = aal_theory_norm2(bf.G, mn);
    /* At an exact stationary point (G = 0) there is no indicator: NaN, skipped below. */
    const double li_grad = gg > 0.0 ? (2.0 * rg - rr) / gg : NAN;
    if (li_grad < res->li_grad_min)
      res->li_grad_min = li_grad;
    double gd_abs = 0.0;
    for (size_t i = 0; i < mn; i++) {
      bf.D[i] *= -eta / (double)B;
      bf.Wn[i] = bf.W[i] + bf.D[i];
      gd_abs += fabs(bf.G[i] * bf.D[i]);
    }
    double gd, dd;
    double c = NAN;
    if (B == 1) {
      /* SPEC's one-sample form: <G, D> = -eta ||delta||^2 h^T r, ||D||^2 = eta^2
       * ||delta||^2 ||r||^2 (D is the rank-one delta r^T). */
      const double dl = aal_theory_norm2(bf.delta, m);
      const double hr = aal_theory_dot(p->H, bf.R, n);
      gd = -eta * dl * hr;
      dd = eta * eta * dl * aal_theory_norm2(bf.R, n);
      c = hr / aal_theory_norm2(p->H, n);
    } else {
      gd = aal_theory_dot(bf.G, bf.D, mn);
      dd = aal_theory_norm2(bf.D, mn);
    }
    const double bound = f + gd + 0.5 * Lc * dd;
    double fn, scale_n;
    rc = aal_theory_loss(p, bf.Wn, &fn, bf.delta_n, &scale_n, err);
    if (rc != AAL_OK)
      break;
    const double gnorm = sqrt(gg), dnorm = sqrt(dd);
    const double allowance =
        ALLOW_C * DBL_EPSILON * K *
        (scale + scale_n + a * dnorm + gnorm * a_r + Lc * dnorm * a_r + fabs(f) + fabs(fn) +
         gd_abs + 0.5 * Lc * dd);
    const int held = fn <= bound + allowance; /* NaN fails */
    if (!held)
      res->violations++;
    if (!(fn <= f + allowance))
      res->monotone = 0;
    double exact = NAN;
    int exact_ok = 1;
    if (p->kind == AAL_THEORY_LSQ1 && opts->eta_fraction == 1.0) {
      /* SPEC: with eta = 1/||h||^2, W'h - y = delta (1 - c), so the exact change is
       * ||delta||^2 ((1 - c)^2 - 1)/2 = ||delta||^2 (-c + c^2/2), c = r^T h/||h||^2. */
      exact = f + aal_theory_norm2(bf.delta, m) * (-c + 0.5 * c * c);
      exact_ok = fabs(fn - exact) <= allowance;
      if (!exact_ok)
        res->exact_failures++;
    }
    if (trace != NULL) {
      aal_theory_step *t = &trace[k];
      t->loss = f;
      t->loss_next = fn;
      t->li_mean = step_count > 0 ? step_sum / (double)step_count : NAN;
      t->li_min = step_count > 0 ? step_min : NAN;
      t->li_grad = li_grad;
      t->bound = bound;
      t->allowance = allowance;
      t->held = held;
      t->exact = exact;
      t->exact_ok = exact_ok;
    }
    res->steps = k + 1;
    res->final_loss = fn;
    /* advance */
    double *tmp = bf.W;
    bf.W = bf.Wn;
    bf.Wn = tmp;
    tmp = bf.delta;
    bf.delta = bf.delta_n;
    bf.delta_n = tmp;
    f = fn;
    scale = scale_n;
    if (!isfinite(fn) || (res->initial_loss > 0.0 && fn > DIVERGED_FACTOR * res->initial_loss)) {
      res->diverged = 1;
      break;
    }
  }
  res->li_mean = li_count > 0 ? li_sum / (double)li_count : NAN;
  if (li_count == 0)
    res->li_min = NAN;
  if (res->li_grad_min == INFINITY)
    res->li_grad_min = NAN;
  buffers_free(&bf);
  return rc;
}
