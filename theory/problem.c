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
  case AAL_THEORY_SOFTMAX1:
    p->L = 0.5 * aal_theory_norm2(p->H, p->n); /* the same bound, B = 1 */
    break;
  }
  if (!(p->L > 0.0) || !isfinite(p->L))
    return aal_fail(err, AAL_ENUMERIC, "problem: L = %g (data all zero?)", p->L);
  return AAL_OK;
}

static int one_sample(aal_theory_kind kind)
{
  return kind == AAL_THEORY_LSQ1 || kind == AAL_THEORY_SOFTMAX1;
}

static int is_softmax(aal_theory_kind kind)
{
  return kind == AAL_THEORY_SOFTMAX || kind == AAL_THEORY_SOFTMAX1;
}

static int check_make_args(aal_theory_kind kind, size_t m, size_t n, size_t B,
                           const aal_theory_input *in, aal_error *err)
{
  if ((unsigned)kind >= AAL_THEORY_NKINDS)
    return aal_fail(err, AAL_EINVAL, "problem_make: unknown kind %d", (int)kind);
  if (m == 0 || n == 0 || B == 0 || m > 4096 || n > 4096 || B > 65536 ||
      (is_softmax(kind) && m < 2))
    return aal_fail(err, AAL_EINVAL, "problem_make: sizes m=%zu n=%zu B=%zu out of range%s", m,
                    n, B, is_softmax(kind) ? " (softmax needs m >= 2 classes)" : "");
  if (!(in->asa_eps >= 0.0) || !isfinite(in->asa_eps) || !(in->sigma > 0.0) ||
      !isfinite(in->sigma) || (unsigned)in->decoding >= AAL_THEORY_NDECODINGS)
    return aal_fail(err, AAL_EINVAL, "problem_make: sigma %g must be > 0, asa eps %g >= 0, "
                    "decoding %d known", in->sigma, in->asa_eps, (int)in->decoding);
  return AAL_OK;
}

/* One sample's forward input (SPEC section 4): x of either sign (PM1) or post-ReLU, plus
 * eps s.  A post-ReLU draw with no positive entry is drawn again (see theory.h). */
static void draw_input(const aal_theory_input *in, size_t n, gsl_rng *rng, double *h)
{
  const int relu = in->decoding != AAL_THEORY_DECODE_PM1;
  for (;;) {
    int any = 0;
    for (size_t j = 0; j < n; j++) {
      double x = gsl_ran_gaussian(rng, in->sigma);
      if (relu && !(x > 0.0))
        x = 0.0;
      any |= x > 0.0;
      const double s = x > 0.0 ? 1.0 : (relu ? 0.0 : -1.0);
      h[j] = in->asa_eps > 0.0 ? x + in->asa_eps * s : x;
    }
    if (any || !relu)
      return;
  }
}

/* Teacher targets: least-squares outputs, or the teacher's argmax class. */
static void make_targets(aal_theory_problem *p)
{
  for (size_t b = 0; b < p->batch; b++) {
    const double *h = p->H + b * p->n;
    if (is_softmax(p->kind)) {
      size_t best = 0;
      double zbest = -INFINITY;
      for (size_t c = 0; c < p->m; c++) {
        const double z = aal_theory_dot(p->Wstar + c * p->n, h, p->n);
        if (z > zbest) {
          zbest = z;
          best = c;
        }
      }
      p->labels[b] = (int)best;
    } else {
      for (size_t i = 0; i < p->m; i++)
        p->Y[b * p->m + i] = aal_theory_dot(p->Wstar + i * p->n, h, p->n);
    }
  }
}

int aal_theory_problem_make(aal_theory_kind kind, const aal_theory_dims *dims,
                            const aal_theory_input *in, gsl_rng *rng, aal_theory_problem *p,
                            aal_error *err)
{
  if (p == NULL || dims == NULL || in == NULL || rng == NULL)
    return aal_fail(err, AAL_EINVAL, "problem_make: NULL argument");
  memset(p, 0, sizeof *p);
  const size_t B = one_sample(kind) ? 1 : dims->batch;
  const size_t m = dims->m, n = dims->n;
  int rc = check_make_args(kind, m, n, B, in, err);
  if (rc != AAL_OK)
    return rc;
  p->kind = kind;
  p->m = m;
  p->n = n;
  p->batch = B;
  p->H = malloc(B * n * sizeof *p->H);
  p->Wstar = malloc(m * n * sizeof *p->Wstar);
  if (is_softmax(kind))
    p->labels = malloc(B * sizeof *p->labels);
  else
    p->Y = malloc(B * m * sizeof *p->Y);
  if (p->H == NULL || p->Wstar == NULL || (p->labels == NULL && p->Y == NULL)) {
    aal_theory_problem_free(p);
    return aal_fail(err, AAL_ENOMEM, "problem_make: m=%zu n=%zu B=%zu", m, n, B);
  }
  for (size_t b = 0; b < B; b++)
    draw_input(in, n, rng, p->H + b * n);
  /* Teacher scaled by 1/sqrt(n) so that targets and logits are O(1) whatever n. */
  for (size_t i = 0; i < m * n; i++)
    p->Wstar[i] = gsl_ran_gaussian(rng, 1.0 / sqrt((double)n));
  make_targets(p);
  rc = aal_theory_problem_set_L(p, err);
  if (rc != AAL_OK)
    aal_theory_problem_free(p);
  return rc;
}

int aal_theory_problem_random(aal_theory_kind kind, const aal_theory_dims *dims, double asa_eps,
                              gsl_rng *rng, aal_theory_problem *p, aal_error *err)
{
  const aal_theory_input in = {1.0, asa_eps, AAL_THEORY_DECODE_PM1};
  return aal_theory_problem_make(kind, dims, &in, rng, p, err);
}

int aal_theory_loss(const aal_theory_problem *p, const double *W, double *f, double *delta,
                    double *scale, aal_error *err)
{
  if (p == NULL || W == NULL || f == NULL)
    return aal_fail(err, AAL_EINVAL, "theory_loss: NULL argument");
  if (is_softmax(p->kind))
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
  case AAL_THEORY_SOFTMAX1: return "softmax1";
  }
  return "?";
}

const char *aal_theory_decoding_name(aal_theory_decoding d)
{
  switch (d) {
  case AAL_THEORY_DECODE_PM1: return "pm1";
  case AAL_THEORY_DECODE_01: return "01";
  case AAL_THEORY_DECODE_MIXED: return "mixed";
  }
  return "?";
}
