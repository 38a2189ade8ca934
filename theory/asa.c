/* ASA's sign activation where its lr_expansion bites: a sweep over the input scale sigma
 * and lr_expansion k for the three decodings (theory/theory.h).
 *
 * Why sigma matters.  With h = x + eps b and r = k eps d (SPEC section 4), per entry and
 * in expectation (a = sqrt(2/pi), E|x| = sigma a for x ~ N(0, sigma^2); half of that
 * and P(x > 0) = 1/2 after a ReLU):
 *   r^T h    = k eps (||x||_1 + eps nnz(b))        -> PM1: k eps (sigma a + eps),
 *                                                     01, MIXED: k eps (sigma a + eps)/2
 *   ||r||^2  = k^2 eps^2 (n for PM1 and MIXED, nnz for 01)
 *   ||h||^2  -> PM1: sigma^2 + 2 eps sigma a + eps^2; post-ReLU: half of that.
 * So c = r^T h/||h||^2 is the same for all three decodings, and LI = 2c - ||r||^2/||h||^2
 * is positive for k below 2 + 2 sigma a/eps (PM1, 01) or 1 + sigma a/eps (MIXED, whose
 * -eps entries where x = 0 are orthogonal to h).  The ratio eps/sigma is what counts:
 * the paper's k = 100 with eps = 0.01 needs sigma above ~0.61 (PM1, 01) or ~1.24
 * (MIXED) for LI >= 0, and on one sample the loss rises once c > 2 (sigma below ~0.40
 * at k = 100).  These are ratios of expectations; n = 16 entries scatter around them. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "theory/theory_internal.h"

#define PI 3.14159265358979323846

void aal_theory_asa_opts_default(aal_theory_asa_opts *o)
{
  static const double ks[] = {1, 2, 3, 5, 10, 20, 30, 50, 70, 100, 150, 200, 500, 1000};
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->seeds = 20;
  o->steps = 100;
  o->eps = 0.01;
  o->nsigma = 16;
  for (size_t i = 0; i < o->nsigma; i++)
    o->sigma[i] = 0.1 * pow(30.0, (double)i / (double)(o->nsigma - 1));
  o->nk = sizeof ks / sizeof ks[0];
  memcpy(o->k, ks, sizeof ks);
  o->problems = (1 << AAL_THEORY_LSQ1) | (1 << AAL_THEORY_LSQ);
  o->dims[AAL_THEORY_LSQ1] = (aal_theory_dims){4, 16, 1};
  o->dims[AAL_THEORY_LSQ] = (aal_theory_dims){4, 16, 8};
  o->dims[AAL_THEORY_SOFTMAX] = (aal_theory_dims){5, 16, 16};
  o->dims[AAL_THEORY_SOFTMAX1] = (aal_theory_dims){5, 16, 1};
}

double aal_theory_asa_sigma_li0(aal_theory_decoding d, double k, double eps)
{
  const double a = sqrt(2.0 / PI);
  const double s = d == AAL_THEORY_DECODE_MIXED ? (k - 1.0) * eps / a : (k - 2.0) * eps / (2.0 * a);
  return s > 0.0 ? s : NAN;
}

double aal_theory_asa_sigma_c2(double k, double eps)
{
  /* 2 (s^2 + 2 eps s a + eps^2) = k eps (s a + eps):
   * 2 s^2 - (k - 4) eps a s - (k - 2) eps^2 = 0, the positive root */
  const double a = sqrt(2.0 / PI), b = (k - 4.0) * eps * a;
  const double disc = b * b + 8.0 * (k - 2.0) * eps * eps;
  if (!(disc >= 0.0))
    return NAN;
  const double s = (b + sqrt(disc)) / 4.0;
  return s > 0.0 ? s : NAN;
}

int aal_theory_parse_list(const char *text, double *out, size_t max, size_t *n, aal_error *err)
{
  if (text == NULL || out == NULL || n == NULL)
    return aal_fail(err, AAL_EINVAL, "parse_list: NULL argument");
  *n = 0;
  const char *p = text;
  while (*p != '\0') {
    char *end;
    errno = 0;
    const double v = strtod(p, &end);
    if (end == p || errno != 0 || !(v > 0.0) || !isfinite(v) || (*end != ',' && *end != '\0'))
      return aal_fail(err, AAL_EINVAL, "'%s' is not a list of positive numbers", text);
    if (*n == max)
      return aal_fail(err, AAL_EINVAL, "'%s' has more than %zu entries", text, max);
    out[(*n)++] = v;
    p = *end == ',' ? end + 1 : end;
  }
  if (*n == 0)
    return aal_fail(err, AAL_EINVAL, "empty list");
  return AAL_OK;
}

/* One run's row and the fields the table needs. */
typedef struct {
  int kind;
  aal_theory_decoding dec;
  size_t is, ik;
  unsigned long seed;
  aal_theory_result res;
} asa_row;

static int asa_run(const aal_theory_asa_opts *o, asa_row *row, gsl_rng *rng, aal_error *err)
{
  const aal_theory_input in = {o->sigma[row->is], o->eps, row->dec};
  const aal_theory_rspec spec = {AAL_THEORY_SIGN, 0.0, o->eps, o->k[row->ik], row->dec};
  aal_theory_problem p;
  gsl_rng_set(rng, row->seed);
  int rc = aal_theory_problem_make((aal_theory_kind)row->kind, &o->dims[row->kind], &in, rng, &p,
                                   err);
  if (rc != AAL_OK)
    return rc;
  const aal_theory_train_opts topts = {o->steps, 1.0, 0.0};
  rc = aal_theory_train_random_start(&p, &spec, &topts, rng, &row->res, err);
  aal_theory_problem_free(&p);
  return rc;
}

static void asa_write_row(FILE *csv, const aal_theory_asa_opts *o, const asa_row *r)
{
  const aal_theory_result *s = &r->res;
  fprintf(csv, "%s,%s,%.17g,%.17g,%.17g,%lu,%.17g,%.17g,%.17g,%.17g,%.17g,%s,%zu,%zu,%d,%zu,%zu\n",
          aal_theory_kind_name((aal_theory_kind)r->kind), aal_theory_decoding_name(r->dec),
          o->sigma[r->is], o->k[r->ik], o->eps, r->seed, s->li_mean, s->li_min, s->c_min, s->c_max,
          s->initial_loss > 0.0 ? s->final_loss / s->initial_loss : NAN, aal_theory_outcome(s),
          s->rose_steps, s->steps, s->diverged, s->theorem_violations, s->violations);
}

static int asa_check_opts(const aal_theory_asa_opts *o, aal_error *err)
{
  const int all = (1 << AAL_THEORY_NKINDS) - 1;
  if (o->seeds == 0 || o->seeds > 1000000 || o->steps == 0 || o->nsigma == 0 || o->nk == 0 ||
      o->nsigma > AAL_THEORY_ASA_MAXGRID || o->nk > AAL_THEORY_ASA_MAXGRID ||
      (o->problems & all) == 0 || (o->problems & ~all) != 0 || !(o->eps > 0.0) ||
      !isfinite(o->eps))
    return aal_fail(err, AAL_EINVAL, "asa sweep: need seeds, steps, a sigma and a k grid, a "
                    "problem and eps > 0 (seeds=%zu steps=%zu sigmas=%zu ks=%zu eps=%g)",
                    o->seeds, o->steps, o->nsigma, o->nk, o->eps);
  for (size_t i = 0; i < o->nsigma; i++)
    if (!(o->sigma[i] > 0.0) || !isfinite(o->sigma[i]))
      return aal_fail(err, AAL_EINVAL, "asa sweep: sigma %g must be > 0", o->sigma[i]);
  for (size_t i = 0; i < o->nk; i++)
    if (!(o->k[i] > 0.0) || !isfinite(o->k[i]))
      return aal_fail(err, AAL_EINVAL, "asa sweep: k %g must be > 0", o->k[i]);
  return AAL_OK;
}

/* Per (sigma, k) of one problem and decoding: runs, runs that rose, sum of mean LI. */
typedef struct {
  size_t runs, rose;
  double li_sum;
} asa_cell;

static void asa_cells(const asa_row *rows, size_t nrows, int kind, aal_theory_decoding dec,
                      size_t nk, asa_cell *cells)
{
  for (size_t i = 0; i < nrows; i++) {
    const asa_row *r = &rows[i];
    if (r->kind != kind || r->dec != dec)
      continue;
    asa_cell *c = &cells[r->is * nk + r->ik];
    c->runs++;
    c->rose += r->res.rose_steps > 0;
    c->li_sum += r->res.li_mean;
  }
}

/* The largest grid sigma (the grid need not be sorted) with mean LI < 0, and with at
 * least half the runs rising, at k index ik; NaN when none. */
static void asa_boundaries(const aal_theory_asa_opts *o, const asa_cell *cells, size_t ik,
                           double *s_li, double *s_rose)
{
  *s_li = *s_rose = NAN;
  for (size_t is = 0; is < o->nsigma; is++) {
    const asa_cell *c = &cells[is * o->nk + ik];
    if (c->runs == 0)
      continue;
    if (c->li_sum / (double)c->runs < 0.0 && !(o->sigma[is] <= *s_li))
      *s_li = o->sigma[is];
    if (2 * c->rose >= c->runs && !(o->sigma[is] <= *s_rose))
      *s_rose = o->sigma[is];
  }
}

static void asa_print_block(FILE *out, const aal_theory_asa_opts *o, int kind,
                            aal_theory_decoding dec, const asa_cell *cells)
{
  fprintf(out, "\n%s, %s decoding, eps %g: fraction of runs whose loss rose (rows sigma, "
          "columns k)\n%8s", aal_theory_kind_name((aal_theory_kind)kind),
          aal_theory_decoding_name(dec), o->eps, "sigma");
  for (size_t ik = 0; ik < o->nk; ik++)
    fprintf(out, " %5g", o->k[ik]);
  fputc('\n', out);
  for (size_t is = 0; is < o->nsigma; is++) {
    fprintf(out, "%8.3g", o->sigma[is]);
    for (size_t ik = 0; ik < o->nk; ik++) {
      const asa_cell *c = &cells[is * o->nk + ik];
      fprintf(out, " %5.2f", c->runs ? (double)c->rose / (double)c->runs : NAN);
    }
    fputc('\n', out);
  }
  fprintf(out, "%8s %10s %10s %10s %10s\n", "k", "LI<0 at", "(pred.)", "rose at", "(c=2 pred.)");
  for (size_t ik = 0; ik < o->nk; ik++) {
    double s_li, s_rose;
    asa_boundaries(o, cells, ik, &s_li, &s_rose);
    fprintf(out, "%8g %10.3g %10.3g %10.3g %10.3g\n", o->k[ik], s_li,
            aal_theory_asa_sigma_li0(dec, o->k[ik], o->eps), s_rose,
            aal_theory_asa_sigma_c2(o->k[ik], o->eps));
  }
}

static int asa_print_table(FILE *out, const aal_theory_asa_opts *o, const asa_row *rows,
                           size_t nrows, aal_error *err)
{
  asa_cell *cells = malloc(o->nsigma * o->nk * sizeof *cells);
  if (cells == NULL)
    return aal_fail(err, AAL_ENOMEM, "asa sweep: table");
  fprintf(out, "ASA sweep: 'LI<0 at' is the largest sigma of the grid with mean LI < 0, "
          "'rose at' the largest\nwith at least half the runs rising; the predictions "
          "are expectations over the inputs.\n");
  for (int kind = 0; kind < AAL_THEORY_NKINDS; kind++)
    for (int d = 0; d < AAL_THEORY_NDECODINGS && (o->problems & (1 << kind)); d++) {
      memset(cells, 0, o->nsigma * o->nk * sizeof *cells);
      asa_cells(rows, nrows, kind, (aal_theory_decoding)d, o->nk, cells);
      asa_print_block(out, o, kind, (aal_theory_decoding)d, cells);
    }
  free(cells);
  return AAL_OK;
}

static size_t asa_plan(const aal_theory_asa_opts *o, asa_row *rows)
{
  size_t k = 0;
  for (int kind = 0; kind < AAL_THEORY_NKINDS; kind++) {
    if (!(o->problems & (1 << kind)))
      continue;
    for (int d = 0; d < AAL_THEORY_NDECODINGS; d++)
      for (size_t is = 0; is < o->nsigma; is++)
        for (size_t ik = 0; ik < o->nk; ik++)
          for (size_t s = 0; s < o->seeds; s++, k++)
            if (rows != NULL)
              rows[k] = (asa_row){kind, (aal_theory_decoding)d, is, ik, o->seed + s, {0}};
  }
  return k;
}

int aal_theory_asa_sweep(const aal_theory_asa_opts *o, FILE *csv, FILE *table,
                         aal_theory_sweep_summary *sum, aal_error *err)
{
  if (o == NULL || sum == NULL)
    return aal_fail(err, AAL_EINVAL, "asa sweep: NULL argument");
  aal_theory_summary_init(sum);
  int rc = asa_check_opts(o, err);
  if (rc != AAL_OK)
    return rc;
  const size_t nrows = asa_plan(o, NULL);
  asa_row *rows = calloc(nrows, sizeof *rows);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rows == NULL || rng == NULL) {
    free(rows);
    gsl_rng_free(rng);
    return aal_fail(err, AAL_ENOMEM, "asa sweep: %zu rows", nrows);
  }
  asa_plan(o, rows);
  if (csv != NULL)
    fputs("problem,decoding,sigma,k,eps,seed,li_mean,li_min,c_min,c_max,"
          "final_over_initial_loss,outcome,rose_steps,steps,diverged,theorem_violations,"
          "lemma_violations\n", csv);
  for (size_t i = 0; i < nrows && rc == AAL_OK; i++) {
    rc = asa_run(o, &rows[i], rng, err);
    if (rc != AAL_OK)
      break;
    aal_theory_summary_add(sum, &rows[i].res);
    if (csv != NULL)
      asa_write_row(csv, o, &rows[i]);
  }
  if (rc == AAL_OK && csv != NULL && ferror(csv))
    rc = aal_fail(err, AAL_EIO, "asa sweep: writing the CSV failed");
  if (rc == AAL_OK && table != NULL)
    rc = asa_print_table(table, o, rows, nrows, err);
  free(rows);
  gsl_rng_free(rng);
  return rc;
}
