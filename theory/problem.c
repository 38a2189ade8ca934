/* Random testbed instances, their L, and the loss/gradient dispatch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "theory/theory_internal.h"

void aal_theory_problem_free(aal_theory_problem *p)
{
  if (p == NULL)
    return;
  free(p->H);
  free(p->Y);
  free(p->labels);
  free(p->Wstar);
  memset(p, 0, sizeof *p);
}

int aal_theory_problem_set_L(aal_theory_problem *p, aal_error *err)
{
  double lmax;
  int rc = aal_theory_gram_lambda_max(p->H, p->batch, p->n, &lmax, err);
  if (rc != AAL_OK)
    return rc;
  switch (p->kind) {
  case AAL_THEORY_LSQ1:
    /* lambda_max(h h^T) = ||h||^2; computed as a plain sum rather than through the
     * eigen solver so that eta = 1/L is exactly 1/||h||^2 as in SPEC's closed form. */
    p->L = aal_theory_norm2(p->H, p->n);
    break;
  case AAL_THEORY_LSQ:
    p->L = lmax / (double)p->batch;
    break;
  case AAL_THEORY_SOFTMAX:
    p->L = lmax / (2.0 * (double)p->batch);
    break;
  }
  if (!(p->L > 0.0) || !isfinite(p->L))
    return aal_fail(err, AAL_ENUMERIC, "problem: L = %g (data all zero?)", p->L);
  return AAL_OK;
}

int aal_theory_problem_random(aal_theory_kind kind, const aal_theory_dims *dims, double asa_eps,
                              gsl_rng *rng, aal_theory_problem *p, aal_error *err)
{
  if (p == NULL || dims == NULL || rng == NULL)
    return aal_fail(err, AAL_EINVAL, "problem_random: NULL argument");
  memset(p, 0, sizeof *p);
  if (kind != AAL_THEORY_LSQ1 && kind != AAL_THEORY_LSQ && kind != AAL_THEORY_SOFTMAX)
    return aal_fail(err, AAL_EINVAL, "problem_random: unknown kind %d", (int)kind);
  const size_t B = kind == AAL_THEORY_LSQ1 ? 1 : dims->batch;
  const size_t m = dims->m, n = dims->n;
  if (m == 0 || n == 0 || B == 0 || m > 4096 || n > 4096 || B > 65536 ||
      (kind == AAL_THEORY_SOFTMAX && m < 2))
    return aal_fail(err, AAL_EINVAL, "problem_random: sizes m=%zu n=%zu B=%zu out of range%s", m,
                    n, B, kind == AAL_THEORY_SOFTMAX ? " (softmax needs m >= 2 classes)" : "");
  if (!(asa_eps >= 0.0) || !isfinite(asa_eps))
    return aal_fail(err, AAL_EINVAL, "problem_random: asa eps %g must be >= 0", asa_eps);
  p->kind = kind;
  p->m = m;
  p->n = n;
  p->batch = B;
  p->H = malloc(B * n * sizeof *p->H);
  p->Wstar = malloc(m * n * sizeof *p->Wstar);
  if (kind == AAL_THEORY_SOFTMAX)
    p->labels = malloc(B * sizeof *p->labels);
  else
    p->Y = malloc(B * m * sizeof *p->Y);
  if (p->H == NULL || p->Wstar == NULL || (p->labels == NULL && p->Y == NULL)) {
    aal_theory_problem_free(p);
    return aal_fail(err, AAL_ENOMEM, "problem_random: m=%zu n=%zu B=%zu", m, n, B);
  }
  for (size_t i = 0; i < B * n; i++) {
    const double x = gsl_ran_gaussian(rng, 1.0);
    /* SPEC section 4: the layer's forward input is x + eps s, s = +1 where x > 0 and
     * -1 otherwise (mixed-sign input). */
    p->H[i] = asa_eps > 0.0 ? x + asa_eps * (x > 0.0 ? 1.0 : -1.0) : x;
  }
  /* Teacher scaled by 1/sqrt(n) so that targets and logits are O(1) whatever n. */
  for (size_t i = 0; i < m * n; i++)
    p->Wstar[i] = gsl_ran_gaussian(rng, 1.0 / sqrt((double)n));
  for (size_t b = 0; b < B; b++) {
    const double *h = p->H + b * n;
    if (kind == AAL_THEORY_SOFTMAX) {
      size_t best = 0;
      double zbest = -INFINITY;
      for (size_t c = 0; c < m; c++) {
        const double z = aal_theory_dot(p->Wstar + c * n, h, n);
        if (z > zbest) {
          zbest = z;
          best = c;
        }
      }
      p->labels[b] = (int)best;
    } else {
      for (size_t i = 0; i < m; i++)
        p->Y[b * m + i] = aal_theory_dot(p->Wstar + i * n, h, n);
    }
  }
  int rc = aal_theory_problem_set_L(p, err);
  if (rc != AAL_OK)
    aal_theory_problem_free(p);
  return rc;
}

int aal_theory_loss(const aal_theory_problem *p, const double *W, double *f, double *delta,
                    double *scale, aal_error *err)
{
  if (p == NULL || W == NULL || f == NULL)
    return aal_fail(err, AAL_EINVAL, "theory_loss: NULL argument");
  if (p->kind == AAL_THEORY_SOFTMAX)
    aal_theory_softmax_loss(p, W, f, delta, scale);
  else
    aal_theory_lsq_loss(p, W, f, delta, scale);
  return AAL_OK;
}

void aal_theory_grad(const aal_theory_problem *p, const double *delta, double *G)
{
  const size_t m = p->m, n = p->n, B = p->batch;
  for (size_t i = 0; i < m * n; i++)
    G[i] = 0.0;
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < m; i++) {
      const double d = delta[b * m + i];
      for (size_t j = 0; j < n; j++)
        G[i * n + j] += d * p->H[b * n + j];
    }
  for (size_t i = 0; i < m * n; i++)
    G[i] /= (double)B;
}

const char *aal_theory_kind_name(aal_theory_kind k)
{
  switch (k) {
  case AAL_THEORY_LSQ1: return "lsq1";
  case AAL_THEORY_LSQ: return "lsq";
  case AAL_THEORY_SOFTMAX: return "softmax";
  }
  return "?";
}
