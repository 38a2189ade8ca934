/* The LI sweep: many runs per (problem, family, LI target), one CSV row each, and a
 * summary table per problem, family and LI bin. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "theory/theory_internal.h"

void aal_theory_sweep_opts_default(aal_theory_sweep_opts *o)
{
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->seeds = 20;
  o->steps = 100;
  o->points = 9;
  o->problems = (1 << AAL_THEORY_LSQ1) | (1 << AAL_THEORY_LSQ) | (1 << AAL_THEORY_SOFTMAX);
  o->eta_fraction = 1.0;
  o->dims[AAL_THEORY_LSQ1] = (aal_theory_dims){4, 16, 1};
  /* B < n: H^T H is singular, so L comes from the B x B Gram and the problem has a
   * continuum of minimisers (realisable, min 0). */
  o->dims[AAL_THEORY_LSQ] = (aal_theory_dims){4, 16, 8};
  o->dims[AAL_THEORY_SOFTMAX] = (aal_theory_dims){5, 16, 16};
}

/* The families of the sweep: the four with a settable LI, and the natural ones (ASA
 * at its defaults eps = 0.01 without and with lr_expansion = 100, noise, flip). */
typedef struct {
  const char *label;
  aal_theory_rspec spec;
} sweep_family;

static const sweep_family sweep_families[] = {
    {"parallel", {AAL_THEORY_PARALLEL, 0, 0, 0}},
    {"parallel_hi", {AAL_THEORY_PARALLEL_HI, 0, 0, 0}},
    {"ortho", {AAL_THEORY_ORTHO, 0, 0, 0}},
    {"stale", {AAL_THEORY_STALE, 0, 0, 0}},
    {"sign", {AAL_THEORY_SIGN, 0, 0.01, 1.0}},
    {"sign_x100", {AAL_THEORY_SIGN, 0, 0.01, 100.0}},
    {"noise", {AAL_THEORY_NOISE, 0, 0, 0}},
    {"flip", {AAL_THEORY_FLIP, 0, 0, 0}},
};
#define NSWEEP_FAMILIES (sizeof sweep_families / sizeof sweep_families[0])

typedef struct {
  int kind;
  int family;   /* index into sweep_families */
  double target;
  unsigned long seed;
  aal_theory_result res;
} sweep_row;

/* Bins of the measured mean LI for the summary table. */
static const double bin_lo[] = {-INFINITY, -1.5, -0.5, 0.0, 0.5};
static const char *const bin_name[] = {"< -1.5", "[-1.5,-0.5)", "[-0.5,0)", "[0,0.5)", ">= 0.5"};
#define NBINS 5

static int li_bin(double li)
{
  int k = 0;
  for (int i = 0; i < NBINS; i++)
    if (li >= bin_lo[i])
      k = i;
  return k;
}

static int run_one(const aal_theory_sweep_opts *o, sweep_row *row, gsl_rng *rng, aal_error *err)
{
  const sweep_family *fam = &sweep_families[row->family];
  aal_theory_rspec spec = fam->spec;
  spec.target_li = row->target;
  aal_theory_problem p;
  gsl_rng_set(rng, row->seed);
  const double asa = spec.family == AAL_THEORY_SIGN ? spec.eps : 0.0;
  int rc = aal_theory_problem_random((aal_theory_kind)row->kind, &o->dims[row->kind], asa, rng, &p,
                                     err);
  if (rc != AAL_OK)
    return rc;
  double *W0 = malloc(p.m * p.n * sizeof *W0);
  if (W0 == NULL) {
    aal_theory_problem_free(&p);
    return aal_fail(err, AAL_ENOMEM, "sweep: W0");
  }
  /* Start away from the teacher at the teacher's scale (never zeros). */
  for (size_t i = 0; i < p.m * p.n; i++)
    W0[i] = gsl_ran_gaussian(rng, 1.0 / sqrt((double)p.n));
  const aal_theory_train_opts topts = {o->steps, o->eta_fraction, 0.0};
  rc = aal_theory_train(&p, W0, &spec, &topts, rng, &row->res, NULL, err);
  free(W0);
  aal_theory_problem_free(&p);
  return rc;
}

static void write_row(FILE *csv, const sweep_row *r)
{
  const aal_theory_result *s = &r->res;
  const double ratio = s->initial_loss > 0.0 ? s->final_loss / s->initial_loss : NAN;
  fprintf(csv, "%s,%s,%.17g,%lu,%.17g,%.17g,%.17g,%d,%zu,%zu,%zu,%.17g,%d\n",
          aal_theory_kind_name((aal_theory_kind)r->kind), sweep_families[r->family].label,
          r->target, r->seed, s->li_mean, s->li_min, ratio, s->monotone, s->steps, s->violations,
          s->exact_failures, s->li_grad_min, s->diverged);
}

static int print_table(FILE *out, const sweep_row *rows, size_t nrows, aal_error *err)
{
  double *ratios = malloc((nrows > 0 ? nrows : 1) * sizeof *ratios);
  if (ratios == NULL)
    return aal_fail(err, AAL_ENOMEM, "sweep: summary buffer");
  fprintf(out, "%-8s %-12s %-12s %5s %9s %12s %11s %10s %9s\n", "problem", "family", "LI bin",
          "runs", "monotone", "median f/f0", "grad-LI>=0", "violations", "closed-x");
  for (int kind = 0; kind < 3; kind++)
    for (size_t fam = 0; fam < NSWEEP_FAMILIES; fam++)
      for (int bin = 0; bin < NBINS; bin++) {
        size_t runs = 0, mono = 0, gpos = 0, viol = 0, closed = 0;
        for (size_t i = 0; i < nrows; i++) {
          const sweep_row *r = &rows[i];
          if (r->kind != kind || r->family != (int)fam || li_bin(r->res.li_mean) != bin)
            continue;
          ratios[runs++] = r->res.final_loss / r->res.initial_loss;
          mono += r->res.monotone != 0;
          gpos += r->res.li_grad_min >= 0.0;
          viol += r->res.violations;
          closed += r->res.exact_failures;
        }
        if (runs == 0)
          continue;
        gsl_sort(ratios, 1, runs);
        fprintf(out, "%-8s %-12s %-12s %5zu %9.2f %12.3g %11.2f %10zu %9s\n",
                aal_theory_kind_name((aal_theory_kind)kind), sweep_families[fam].label,
                bin_name[bin], runs, (double)mono / (double)runs,
                gsl_stats_median_from_sorted_data(ratios, 1, runs), (double)gpos / (double)runs,
                viol, kind == AAL_THEORY_LSQ1 ? (closed == 0 ? "0" : "FAIL") : "-");
        if (kind == AAL_THEORY_LSQ1 && closed != 0)
          fprintf(out, "  (%zu closed-form failures)\n", closed);
      }
  free(ratios);
  return AAL_OK;
}

int aal_theory_sweep(const aal_theory_sweep_opts *o, FILE *csv, FILE *table, size_t *violations,
                     aal_error *err)
{
  if (o == NULL || violations == NULL)
    return aal_fail(err, AAL_EINVAL, "sweep: NULL argument");
  *violations = 0;
  if (o->seeds == 0 || o->steps == 0 || o->points < 2 || o->points > 10000 ||
      o->seeds > 1000000 || (o->problems & 7) == 0 || (o->problems & ~7) != 0)
    return aal_fail(err, AAL_EINVAL,
                    "sweep: need seeds >= 1, steps >= 1, 2 <= points <= 10000 and a problem "
                    "(seeds=%zu steps=%zu points=%zu)",
                    o->seeds, o->steps, o->points);
  size_t configs = 0;
  for (int kind = 0; kind < 3; kind++)
    if (o->problems & (1 << kind))
      for (size_t f = 0; f < NSWEEP_FAMILIES; f++)
        configs += aal_theory_family_has_target(sweep_families[f].spec.family) ? o->points : 1;
  const size_t nrows = configs * o->seeds;
  sweep_row *rows = calloc(nrows, sizeof *rows);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rows == NULL || rng == NULL) {
    free(rows);
    gsl_rng_free(rng);
    return aal_fail(err, AAL_ENOMEM, "sweep: %zu rows", nrows);
  }
  int rc = AAL_OK;
  size_t k = 0;
  for (int kind = 0; kind < 3 && rc == AAL_OK; kind++) {
    if (!(o->problems & (1 << kind)))
      continue;
    for (size_t f = 0; f < NSWEEP_FAMILIES && rc == AAL_OK; f++) {
      const int targeted = aal_theory_family_has_target(sweep_families[f].spec.family);
      const size_t npts = targeted ? o->points : 1;
      for (size_t pt = 0; pt < npts && rc == AAL_OK; pt++)
        for (size_t s = 0; s < o->seeds && rc == AAL_OK; s++) {
          sweep_row *r = &rows[k++];
          r->kind = kind;
          r->family = (int)f;
          /* targets evenly over [-1, 1], the last exactly 1 (BP for the targeted families) */
          r->target = targeted ? -1.0 + 2.0 * (double)pt / (double)(o->points - 1) : NAN;
          r->seed = o->seed + s;
          rc = run_one(o, r, rng, err);
          if (rc == AAL_OK) {
            *violations += r->res.violations + r->res.exact_failures;
            if (csv != NULL) {
              if (k == 1)
                fprintf(csv, "problem,family,target_li,seed,measured_li_mean,measured_li_min,"
                             "final_over_initial_loss,monotone,steps,inequality_violations,"
                             "closed_form_failures,grad_li_min,diverged\n");
              write_row(csv, r);
            }
          }
        }
    }
  }
  if (rc == AAL_OK && csv != NULL && ferror(csv))
    rc = aal_fail(err, AAL_EIO, "sweep: writing the CSV failed");
  if (rc == AAL_OK && table != NULL)
    rc = print_table(table, rows, nrows, err);
  free(rows);
  gsl_rng_free(rng);
  return rc;
}

int aal_theory_sweep_to_file(const aal_theory_sweep_opts *o, const char *path, FILE *table,
                             size_t *violations, aal_error *err)
{
  if (path == NULL || *path == '\0')
    return aal_fail(err, AAL_EINVAL, "sweep: empty output path");
  /* Write next to the target and rename: a reader never sees a half-written CSV, and
   * an interrupted run leaves the old file in place. */
  const size_t len = strlen(path) + 32;
  char *tmp = malloc(len), *dircopy = strdup(path);
  if (tmp == NULL || dircopy == NULL) {
    free(tmp);
    free(dircopy);
    return aal_fail(err, AAL_ENOMEM, "sweep: path buffer");
  }
  snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  int rc = AAL_OK;
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    rc = aal_fail(err, AAL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    goto done;
  }
  rc = aal_theory_sweep(o, f, table, violations, err);
  if (rc == AAL_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
    rc = aal_fail(err, AAL_EIO, "cannot write %s: %s", tmp, strerror(errno));
  if (fclose(f) != 0 && rc == AAL_OK)
    rc = aal_fail(err, AAL_EIO, "cannot close %s: %s", tmp, strerror(errno));
  if (rc == AAL_OK && rename(tmp, path) != 0)
    rc = aal_fail(err, AAL_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  if (rc != AAL_OK) {
    unlink(tmp);
    goto done;
  }
  /* Make the rename itself durable (best effort: some file systems refuse fsync on a
   * directory, which does not make the data wrong). */
  int dfd = open(dirname(dircopy), O_RDONLY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
done:
  free(tmp);
  free(dircopy);
  return rc;
}
