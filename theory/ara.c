/* An ARA-like, non-convex testbed (theory/theory.h): a three-layer residual network whose
 * last layer is trained with an alternative activation while the others get exact BP,
 * all updated at once.  The question (issue 18): do the exact-BP layers' positive terms
 * ||G_l||^2 in the joint indicator offset a rule layer with negative LI, as they may on
 * ResNet-18 where noise and flip replace only 5 of 20 convs?
 *
 * Shapes (row-major, one row per sample): X B x n0, Z1 = X W1^T and XA = relu(Z1) B x n1,
 * U = XA + beta XA W2^T and XB = relu(U) B x n1, Y = XB W3^T B x m.  Backward, with
 * D3 = Y - T:  G3 = D3^T XB / B,  dXB = D3 W3,  dU = dXB . [U > 0],
 * G2 = beta dU^T XA / B,  dXA = dU + beta dU W2,  dZ1 = dXA . [Z1 > 0],  G1 = dZ1^T X / B.
 * The rule changes only W3's update: R3 = D3^T Rr / B with the rows of Rr the samples' r
 * (the input gradient dXB uses W3 itself, as in SPEC section 1). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "sim/layers/li.h"
#include "theory/theory_internal.h"

static const char *const rule_names[AAL_THEORY_ARA_NRULES] = {"bp", "ara", "noise", "flip"};

const char *aal_theory_ara_rule_name(aal_theory_ara_rule r)
{
  return (unsigned)r < AAL_THEORY_ARA_NRULES ? rule_names[r] : "?";
}

void aal_theory_ara_opts_default(aal_theory_ara_opts *o)
{
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->seeds = 20;
  o->steps = 100;
  o->eta = 0.5;
  o->n0 = 16;
  o->n1 = 16;
  o->m = 4;
  o->batch = 64;
  o->noise_sd = 0.1;
  const double betas[] = {0.5, 1.0, 2.0, 4.0};
  o->nbeta = sizeof betas / sizeof betas[0];
  memcpy(o->beta, betas, sizeof betas);
}

/* The network, its data and its work buffers.  The parameters W1 | W2 | W3 and their
 * gradients G1 | G2 | G3 are contiguous (P and G), so that a test can perturb them as one
 * vector. */
struct aal_theory_ara_net {
  size_t n0, n1, m, B, np;
  double beta;
  double *P, *G;
  double *X, *T, *W1, *W2, *W3;
  double *Z1, *XA, *U, *XB, *Y, *D3, *dXB, *dU, *dXA, *Rr, *G1, *G2, *G3, *R3, *li;
  unsigned char *valid;
};
typedef struct aal_theory_ara_net ara_net;

static void net_free(ara_net *t)
{
  double *bufs[] = {t->P,  t->G,  t->X,   t->T,  t->Z1,  t->XA, t->U,  t->XB,
                    t->Y,  t->D3, t->dXB, t->dU, t->dXA, t->Rr, t->R3, t->li};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    free(bufs[i]);
  free(t->valid);
  memset(t, 0, sizeof *t);
}

static int net_alloc(ara_net *t, const aal_theory_ara_opts *o)
{
  memset(t, 0, sizeof *t);
  t->n0 = o->n0;
  t->n1 = o->n1;
  t->m = o->m;
  t->B = o->batch;
  const size_t B = t->B, n0 = t->n0, n1 = t->n1, m = t->m;
  t->np = n1 * n0 + n1 * n1 + m * n1;
  struct {
    double **p;
    size_t n;
  } want[] = {{&t->P, t->np},   {&t->G, t->np},   {&t->X, B * n0},  {&t->T, B * m},
              {&t->Z1, B * n1}, {&t->XA, B * n1}, {&t->U, B * n1},  {&t->XB, B * n1},
              {&t->Y, B * m},   {&t->D3, B * m},  {&t->dXB, B * n1}, {&t->dU, B * n1},
              {&t->dXA, B * n1}, {&t->Rr, B * n1}, {&t->R3, m * n1}, {&t->li, B}};
  int ok = 1;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    *want[i].p = malloc(want[i].n * sizeof(double));
    ok &= *want[i].p != NULL;
  }
  t->valid = malloc(B);
  if (!ok || t->valid == NULL) {
    net_free(t);
    return 0;
  }
  t->W1 = t->P;
  t->W2 = t->P + n1 * n0;
  t->W3 = t->W2 + n1 * n1;
  t->G1 = t->G;
  t->G2 = t->G + n1 * n0;
  t->G3 = t->G2 + n1 * n1;
  return 1;
}

static void fill(gsl_rng *rng, double *x, size_t n, double sd)
{
  for (size_t i = 0; i < n; i++)
    x[i] = gsl_ran_gaussian(rng, sd);
}

/* Data, teacher targets (tanh of a random projection plus noise: no network of this
 * shape fits them exactly, and the noise alone keeps the minimum above 0) and a He-style
 * initialisation.  The same seed gives the same data and start for every rule. */
static int net_init(ara_net *t, const aal_theory_ara_opts *o, gsl_rng *rng, aal_error *err)
{
  const size_t B = t->B, n0 = t->n0, n1 = t->n1, m = t->m;
  double *V = malloc(m * n0 * sizeof *V);
  if (V == NULL)
    return aal_fail(err, AAL_ENOMEM, "ara: teacher");
  fill(rng, t->X, B * n0, 1.0);
  fill(rng, V, m * n0, 1.0 / sqrt((double)n0));
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < m; i++)
      t->T[b * m + i] = tanh(aal_theory_dot(V + i * n0, t->X + b * n0, n0)) +
                        gsl_ran_gaussian(rng, o->noise_sd);
  free(V);
  fill(rng, t->W1, n1 * n0, sqrt(2.0 / (double)n0));
  fill(rng, t->W2, n1 * n1, 1.0 / sqrt((double)n1));
  fill(rng, t->W3, m * n1, 1.0 / sqrt((double)n1));
  return AAL_OK;
}

/* out (rows x k) = A (rows x n) B^T (k x n), row by row */
static void mul_abt(const double *A, const double *Bm, size_t rows, size_t n, size_t k,
                    double *out)
{
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < k; c++)
      out[r * k + c] = aal_theory_dot(A + r * n, Bm + c * n, n);
}

/* out (k x n) = scale * A^T (k x rows) Bm (rows x n): the weight gradients */
static void mul_atb(const double *A, const double *Bm, size_t rows, size_t k, size_t n,
                    double scale, double *out)
{
  memset(out, 0, k * n * sizeof *out);
  for (size_t r = 0; r < rows; r++)
    for (size_t i = 0; i < k; i++) {
      const double a = A[r * k + i] * scale;
      for (size_t j = 0; j < n; j++)
        out[i * n + j] += a * Bm[r * n + j];
    }
}

static double net_forward(ara_net *t)
{
  const size_t B = t->B, n0 = t->n0, n1 = t->n1, m = t->m;
  mul_abt(t->X, t->W1, B, n0, n1, t->Z1);
  for (size_t i = 0; i < B * n1; i++)
    t->XA[i] = t->Z1[i] > 0.0 ? t->Z1[i] : 0.0;
  mul_abt(t->XA, t->W2, B, n1, n1, t->U);
  for (size_t i = 0; i < B * n1; i++) {
    t->U[i] = t->XA[i] + t->beta * t->U[i];
    t->XB[i] = t->U[i] > 0.0 ? t->U[i] : 0.0;
  }
  mul_abt(t->XB, t->W3, B, n1, m, t->Y);
  double f = 0.0;
  for (size_t i = 0; i < B * m; i++) {
    t->D3[i] = t->Y[i] - t->T[i];
    f += t->D3[i] * t->D3[i];
  }
  return 0.5 * f / (double)B;
}

/* G1, G2, G3 by exact backprop from the last forward pass. */
static void net_backward(ara_net *t)
{
  const size_t B = t->B, n0 = t->n0, n1 = t->n1, m = t->m;
  const double inv = 1.0 / (double)B;
  mul_atb(t->D3, t->XB, B, m, n1, inv, t->G3);
  for (size_t b = 0; b < B; b++)
    for (size_t j = 0; j < n1; j++) {
      double s = 0.0;
      for (size_t i = 0; i < m; i++)
        s += t->D3[b * m + i] * t->W3[i * n1 + j];
      t->dXB[b * n1 + j] = s;
      t->dU[b * n1 + j] = t->U[b * n1 + j] > 0.0 ? s : 0.0;
    }
  mul_atb(t->dU, t->XA, B, n1, n1, t->beta * inv, t->G2);
  for (size_t b = 0; b < B; b++)
    for (size_t j = 0; j < n1; j++) {
      double s = 0.0;
      for (size_t i = 0; i < n1; i++)
        s += t->dU[b * n1 + i] * t->W2[i * n1 + j];
      const double d = t->dU[b * n1 + j] + t->beta * s;
      t->dXA[b * n1 + j] = t->Z1[b * n1 + j] > 0.0 ? d : 0.0; /* dZ1 */
    }
  mul_atb(t->dXA, t->X, B, n1, n0, inv, t->G1);
}

int aal_theory_ara_net_new(const aal_theory_ara_opts *o, double beta, unsigned long seed,
                           aal_theory_ara_net **out, aal_error *err)
{
  if (o == NULL || out == NULL)
    return aal_fail(err, AAL_EINVAL, "ara_net_new: NULL argument");
  *out = NULL;
  ara_net *t = malloc(sizeof *t);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (t == NULL || rng == NULL || !net_alloc(t, o)) {
    free(t);
    gsl_rng_free(rng);
    return aal_fail(err, AAL_ENOMEM, "ara_net_new");
  }
  t->beta = beta;
  gsl_rng_set(rng, seed);
  int rc = net_init(t, o, rng, err);
  gsl_rng_free(rng);
  if (rc != AAL_OK) {
    aal_theory_ara_net_free(t);
    return rc;
  }
  *out = t;
  return AAL_OK;
}

void aal_theory_ara_net_free(aal_theory_ara_net *t)
{
  if (t == NULL)
    return;
  net_free(t);
  free(t);
}

double *aal_theory_ara_net_params(aal_theory_ara_net *t, size_t *n)
{
  *n = t->np;
  return t->P;
}

double aal_theory_ara_net_loss(aal_theory_ara_net *t)
{
  return net_forward(t);
}

const double *aal_theory_ara_net_grad(aal_theory_ara_net *t)
{
  net_forward(t);
  net_backward(t);
  return t->G;
}

/* Rr (the samples' r for W3) and R3 = D3^T Rr / B. */
static void net_rule(ara_net *t, aal_theory_ara_rule rule, gsl_rng *rng)
{
  const size_t B = t->B, n1 = t->n1, m = t->m;
  for (size_t b = 0; b < B; b++) {
    const double *xb = t->XB + b * n1, *xa = t->XA + b * n1;
    double *r = t->Rr + b * n1;
    switch (rule) {
    case AAL_THEORY_ARA_BP: memcpy(r, xb, n1 * sizeof *r); break;
    case AAL_THEORY_ARA_ARA: memcpy(r, xa, n1 * sizeof *r); break;
    case AAL_THEORY_ARA_FLIP:
      for (size_t j = 0; j < n1; j++)
        r[j] = -xb[j];
      break;
    case AAL_THEORY_ARA_NOISE: {
      fill(rng, r, n1, 1.0);
      const double rr = aal_theory_norm2(r, n1), hh = aal_theory_norm2(xb, n1);
      const double k = rr > 0.0 ? sqrt(hh / rr) : 0.0;
      for (size_t j = 0; j < n1; j++)
        r[j] *= k;
      break;
    }
    }
  }
  mul_atb(t->D3, t->Rr, B, m, n1, 1.0 / (double)B, t->R3);
}

/* <R, 2G - R> */
static double indicator(const double *R, const double *G, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += R[i] * (2.0 * G[i] - R[i]);
  return s;
}

static void descend(double *W, const double *R, size_t n, double eta)
{
  for (size_t i = 0; i < n; i++)
    W[i] -= eta * R[i];
}

/* One run's statistics (the CSV row). */
typedef struct {
  size_t steps, rose, joint_neg, rose_joint_pos, li_count, li_neg;
  double f0, f, eta, li_sum, li_min, i3_sum, joint_sum, joint_min, share_sum;
} ara_stats;

/* One step's indicators; returns the joint indicator. */
static double step_indicators(ara_net *t, int all, ara_stats *st, double *li_mean, double *i3g)
{
  const size_t n0 = t->n0, n1 = t->n1, m = t->m;
  size_t zn = 0, cnt = 0;
  double sum = 0.0;
  /* the LI of W3's samples; a sample with x_b = 0 (all ReLUs off) has none */
  if (aal_li_batch(t->XB, t->Rr, t->B, n1, t->li, t->valid, &zn, NULL) == AAL_OK)
    for (size_t b = 0; b < t->B; b++)
      if (t->valid[b]) {
        sum += t->li[b];
        cnt++;
        st->li_neg += t->li[b] < 0.0;
        st->li_min = fmin(st->li_min, t->li[b]);
      }
  st->li_sum += sum;
  st->li_count += cnt;
  *li_mean = cnt ? sum / (double)cnt : NAN;
  const double g3 = aal_theory_norm2(t->G3, m * n1), i3 = indicator(t->R3, t->G3, m * n1);
  const double g12 = all ? aal_theory_norm2(t->G1, n1 * n0) + aal_theory_norm2(t->G2, n1 * n1)
                         : 0.0;
  *i3g = g3 > 0.0 ? i3 / g3 : NAN;
  const double joint = g3 + g12 > 0.0 ? (i3 + g12) / (g3 + g12) : NAN;
  st->i3_sum += *i3g;
  st->joint_sum += joint;
  st->joint_min = fmin(st->joint_min, joint);
  st->joint_neg += joint < 0.0;
  st->share_sum += g3 + g12 > 0.0 ? g3 / (g3 + g12) : NAN;
  return joint;
}

static int ara_run(const aal_theory_ara_opts *o, aal_theory_ara_rule rule, int all, double beta,
                   unsigned long seed, gsl_rng *rng, FILE *trace, ara_stats *st, aal_error *err)
{
  memset(st, 0, sizeof *st);
  ara_net t;
  if (!net_alloc(&t, o))
    return aal_fail(err, AAL_ENOMEM, "ara: buffers for n0=%zu n1=%zu m=%zu B=%zu", o->n0, o->n1,
                    o->m, o->batch);
  t.beta = beta;
  gsl_rng_set(rng, seed);
  int rc = net_init(&t, o, rng, err);
  if (rc != AAL_OK) {
    net_free(&t);
    return rc;
  }
  st->li_min = st->joint_min = INFINITY;
  double f = net_forward(&t);
  st->f0 = st->f = f;
  /* eta = eta_fraction / L3, L3 = lambda_max(XB^T XB)/B the Lipschitz constant of the
   * loss in W3 at the start (exact for the W3 sub-problem there), so that runs with
   * different beta (and so different scales of x_b) take comparable steps */
  double lmax;
  rc = aal_theory_gram_lambda_max(t.XB, t.B, t.n1, &lmax, err);
  if (rc != AAL_OK || !(lmax > 0.0)) {
    net_free(&t);
    return rc != AAL_OK ? rc : aal_fail(err, AAL_ENUMERIC, "ara: x_b is zero at the start");
  }
  const double eta = o->eta * (double)t.B / lmax;
  st->eta = eta;
  /* rounding level of the loss: B m terms, each a chain of n0 + 2 n1 + 2 products */
  const double K = (double)(o->n0 + 2 * o->n1 + o->m + 4);
  for (size_t k = 0; k < o->steps; k++) {
    net_backward(&t);
    net_rule(&t, rule, rng);
    double li_mean, i3g;
    const double joint = step_indicators(&t, all, st, &li_mean, &i3g);
    if (all) {
      descend(t.W1, t.G1, t.n1 * t.n0, eta);
      descend(t.W2, t.G2, t.n1 * t.n1, eta);
    }
    descend(t.W3, t.R3, t.m * t.n1, eta);
    const double fn = net_forward(&t);
    const int rose = !(fn <= f + 4.0 * K * DBL_EPSILON * (f + fn));
    st->rose += rose;
    st->rose_joint_pos += rose && joint >= 0.0;
    if (trace != NULL)
      fprintf(trace, "%s,%s,%.17g,%zu,%.17g,%.17g,%.17g,%.17g\n", aal_theory_ara_rule_name(rule),
              all ? "all" : "rule", beta, k, f, li_mean, i3g, joint);
    f = fn;
    st->steps = k + 1;
    if (!isfinite(f) || f > 1e100 * st->f0)
      break;
  }
  st->f = f;
  net_free(&t);
  return AAL_OK;
}

static void ara_write_row(FILE *csv, aal_theory_ara_rule rule, int all, double beta,
                          unsigned long seed, const ara_stats *s)
{
  const double n = (double)s->steps;
  fprintf(csv, "%s,%s,%.17g,%lu,%zu,%.17g,%.17g,%.17g,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%zu,"
               "%zu,%.17g,%.17g\n",
          aal_theory_ara_rule_name(rule), all ? "all" : "rule", beta, seed, s->steps, s->f0, s->f,
          s->f / s->f0, s->rose, s->li_count ? s->li_sum / (double)s->li_count : NAN, s->li_min,
          s->li_count ? (double)s->li_neg / (double)s->li_count : NAN, s->i3_sum / n,
          s->joint_sum / n, s->joint_min, s->joint_neg, s->rose_joint_pos, s->share_sum / n,
          s->eta);
}

/* Summary of the runs of one (rule, update, beta). */
typedef struct {
  size_t runs, rose_runs, above_one, joint_neg_runs, rose_joint_pos, li_neg, li_count;
  double joint_sum, share_sum;
  double ratios[1024];
} ara_cell;

static void cell_print(FILE *out, aal_theory_ara_rule rule, int all, double beta, ara_cell *c)
{
  gsl_sort(c->ratios, 1, c->runs);
  const double n = (double)c->runs;
  fprintf(out, "%-6s %-5s %5g %4zu %12.3g %9zu %9zu %9.3f %9.3f %10zu %8.3f %9zu\n",
          aal_theory_ara_rule_name(rule), all ? "all" : "rule", beta, c->runs,
          gsl_stats_median_from_sorted_data(c->ratios, 1, c->runs), c->above_one, c->rose_runs,
          c->li_count ? (double)c->li_neg / (double)c->li_count : NAN, c->joint_sum / n,
          c->joint_neg_runs, c->share_sum / n, c->rose_joint_pos);
}

static int ara_check(const aal_theory_ara_opts *o, aal_error *err)
{
  if (o->seeds == 0 || o->seeds > 1024 || o->steps == 0 || o->nbeta == 0 || o->nbeta > 16 ||
      o->n0 == 0 || o->n1 == 0 || o->m == 0 || o->batch == 0 || o->n0 > 4096 ||
      o->n1 > 4096 || o->m > 4096 || o->batch > 65536 || !(o->eta > 0.0) || !isfinite(o->eta) ||
      !(o->noise_sd >= 0.0) || !isfinite(o->noise_sd))
    return aal_fail(err, AAL_EINVAL, "ara: need 1..1024 seeds, steps, 1..16 betas, sizes and "
                    "eta > 0 (seeds=%zu steps=%zu betas=%zu eta=%g)",
                    o->seeds, o->steps, o->nbeta, o->eta);
  for (size_t i = 0; i < o->nbeta; i++)
    if (!(o->beta[i] >= 0.0) || !isfinite(o->beta[i]))
      return aal_fail(err, AAL_EINVAL, "ara: beta %g must be >= 0", o->beta[i]);
  return AAL_OK;
}

int aal_theory_ara_sweep(const aal_theory_ara_opts *o, FILE *csv, FILE *trace, FILE *table,
                         aal_error *err)
{
  if (o == NULL)
    return aal_fail(err, AAL_EINVAL, "ara: NULL options");
  int rc = ara_check(o, err);
  if (rc != AAL_OK)
    return rc;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  ara_cell *cell = malloc(sizeof *cell);
  if (rng == NULL || cell == NULL) {
    gsl_rng_free(rng);
    free(cell);
    return aal_fail(err, AAL_ENOMEM, "ara: generator");
  }
  if (csv != NULL)
    fputs("rule,update,beta,seed,steps,initial_loss,final_loss,final_over_initial_loss,"
          "rose_steps,li_w3_mean,li_w3_min,li_w3_negative_fraction,i3_over_g3_mean,joint_mean,"
          "joint_min,joint_negative_steps,rose_with_joint_positive,w3_gradient_share,eta\n",
          csv);
  if (trace != NULL)
    fputs("rule,update,beta,step,loss,li_w3_mean,i3_over_g3,joint\n", trace);
  if (table != NULL)
    fprintf(table, "%-6s %-5s %5s %4s %12s %9s %9s %9s %9s %10s %8s %9s\n", "rule", "upd",
            "beta", "runs", "median f/f0", "f>f0 runs", "rose runs", "W3 LI<0", "joint", "J<0 runs",
            "W3 share", "rose,J>=0");
  for (int r = 0; r < AAL_THEORY_ARA_NRULES && rc == AAL_OK; r++)
    for (int all = 1; all >= 0 && rc == AAL_OK; all--)
      for (size_t ib = 0; ib < o->nbeta && rc == AAL_OK; ib++) {
        memset(cell, 0, sizeof *cell);
        for (size_t s = 0; s < o->seeds && rc == AAL_OK; s++) {
          ara_stats st;
          rc = ara_run(o, (aal_theory_ara_rule)r, all, o->beta[ib], o->seed + s, rng,
                       s == 0 ? trace : NULL, &st, err);
          if (rc != AAL_OK)
            break;
          if (csv != NULL)
            ara_write_row(csv, (aal_theory_ara_rule)r, all, o->beta[ib], o->seed + s, &st);
          cell->ratios[cell->runs++] = st.f / st.f0;
          cell->rose_runs += st.rose > 0;
          cell->above_one += !(st.f <= st.f0);
          cell->joint_neg_runs += st.joint_neg > 0;
          cell->rose_joint_pos += st.rose_joint_pos;
          cell->li_neg += st.li_neg;
          cell->li_count += st.li_count;
          cell->joint_sum += st.joint_sum / (double)st.steps;
          cell->share_sum += st.share_sum / (double)st.steps;
        }
        if (rc == AAL_OK && table != NULL)
          cell_print(table, (aal_theory_ara_rule)r, all, o->beta[ib], cell);
      }
  if (rc == AAL_OK && ((csv != NULL && ferror(csv)) || (trace != NULL && ferror(trace))))
    rc = aal_fail(err, AAL_EIO, "ara: writing the CSV failed");
  gsl_rng_free(rng);
  free(cell);
  return rc;
}
