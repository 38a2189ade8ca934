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
  o->li_lo = -1.0;
  o->li_hi = 1.0;
  o->problems = (1 << AAL_THEORY_NKINDS) - 1;
  o->family = NULL;
  o->eta_fraction = 1.0;
  o->dims[AAL_THEORY_LSQ1] = (aal_theory_dims){4, 16, 1};
  /* B < n: H^T H is singular, so L comes from the B x B Gram and the problem has a
   * continuum of minimisers (realisable, min 0). */
  o->dims[AAL_THEORY_LSQ] = (aal_theory_dims){4, 16, 8};
  o->dims[AAL_THEORY_SOFTMAX] = (aal_theory_dims){5, 16, 16};
  o->dims[AAL_THEORY_SOFTMAX1] = (aal_theory_dims){5, 16, 1};
}

/* The families of the sweep: the four with a settable LI, and the natural ones (ASA
 * at its defaults eps = 0.01 without and with lr_expansion = 100, noise, flip). */
typedef struct {
  const char *label;
  aal_theory_rspec spec;
} sweep_family;

static const sweep_family sweep_families[] = {
    {"parallel", {AAL_THEORY_PARALLEL, 0, 0, 0, AAL_THEORY_DECODE_PM1}},
    {"parallel_hi", {AAL_THEORY_PARALLEL_HI, 0, 0, 0, AAL_THEORY_DECODE_PM1}},
    {"ortho", {AAL_THEORY_ORTHO, 0, 0, 0, AAL_THEORY_DECODE_PM1}},
    {"stale", {AAL_THEORY_STALE, 0, 0, 0, AAL_THEORY_DECODE_PM1}},
    {"sign", {AAL_THEORY_SIGN, 0, 0.01, 1.0, AAL_THEORY_DECODE_PM1}},
    {"sign_x100", {AAL_THEORY_SIGN, 0, 0.01, 100.0, AAL_THEORY_DECODE_PM1}},
    {"noise", {AAL_THEORY_NOISE, 0, 0, 0, AAL_THEORY_DECODE_PM1}},
    {"flip", {AAL_THEORY_FLIP, 0, 0, 0, AAL_THEORY_DECODE_PM1}},
};
#define NSWEEP_FAMILIES (sizeof sweep_families / sizeof sweep_families[0])

typedef struct {
  int kind;
  int family;   /* index into sweep_families */
  double target;
  unsigned long seed;
  aal_theory_result res;
} sweep_row;

/* Bins of the run's minimum LI (the theorem needs LI >= 0 at every step, so the minimum,
 * not the mean, says whether a run is covered); r = h exactly (LI = 1 at every step:
 * BP, the targets 1) gets its own bin so that it does not inflate the [0.5, 1) counts. */
static const double bin_lo[] = {-INFINITY, -1.5, -0.5, 0.0, 0.5, 1.0};
static const char *const bin_name[] = {"< -1.5", "[-1.5,-0.5)", "[-0.5,0)", "[0,0.5)", "[0.5,1)",
                                       "1 (r = h)"};
#define NBINS 6

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
  const aal_theory_train_opts topts = {o->steps, o->eta_fraction, 0.0};
  rc = aal_theory_train_random_start(&p, &spec, &topts, rng, &row->res, err);
  aal_theory_problem_free(&p);
  return rc;
}

static const char csv_header[] =
    "problem,family,target_li,seed,measured_li_mean,measured_li_min,final_over_initial_loss,"
    "monotone,steps,lemma_violations,closed_form_failures,grad_li_min,diverged,eta_fraction,"
    "in_theorem,outside_theorem,theorem_steps,theorem_violations,outside_rose_steps,"
    "floor_steps,fell_steps,rose_steps,outcome,c_min,c_max,guarantee_ratio_min,"
    "guaranteed_ratio,eta_li_min\n";

static void write_row(FILE *csv, const sweep_row *r, double eta_fraction)
{
  const aal_theory_result *s = &r->res;
  const double ratio = s->initial_loss > 0.0 ? s->final_loss / s->initial_loss : NAN;
  fprintf(csv, "%s,%s,%.17g,%lu,%.17g,%.17g,%.17g,%d,%zu,%zu,%zu,%.17g,%d,",
          aal_theory_kind_name((aal_theory_kind)r->kind), sweep_families[r->family].label,
          r->target, r->seed, s->li_mean, s->li_min, ratio, s->monotone, s->steps, s->violations,
          s->exact_failures, s->li_grad_min, s->diverged);
  fprintf(csv, "%.17g,%d,%d,%zu,%zu,%zu,%zu,%zu,%zu,%s,%.17g,%.17g,%.17g,%.17g,%.17g\n",
          eta_fraction, s->in_theorem, s->outside_theorem, s->theorem_steps,
          s->theorem_violations, s->outside_rose, s->floor_steps, s->fell_steps, s->rose_steps,
          aal_theory_outcome(s), s->c_min, s->c_max, s->guarantee_ratio_min, s->guaranteed_ratio,
          s->li_eta_min);
}

/* Counts of one table cell (problem, family, bin). */
typedef struct {
  size_t runs, descended, flat, rose, c_band, eta_pos, steps, floor, thm_viol, lemma_viol,
      closed, outside;
} cell_counts;

static void cell_add(cell_counts *c, const aal_theory_result *r)
{
  const char *out = aal_theory_outcome(r);
  c->runs++;
  c->descended += strcmp(out, "descended") == 0;
  c->flat += strcmp(out, "flat") == 0;
  c->rose += strcmp(out, "rose") == 0;
  c->c_band += r->c_min >= 0.0 && r->c_max <= 2.0;
  c->eta_pos += r->li_eta_min >= 0.0;
  c->steps += r->steps;
  c->floor += r->floor_steps;
  c->thm_viol += r->theorem_violations;
  c->lemma_viol += r->violations;
  c->closed += r->exact_failures;
  c->outside += r->outside_theorem != 0;
}

static void print_cell(FILE *out, int kind, size_t fam, int bin, const cell_counts *c,
                       double median)
{
  const double n = (double)c->runs;
  const int one = kind == AAL_THEORY_LSQ1 || kind == AAL_THEORY_SOFTMAX1;
  char cband[16], thm[16];
  if (one)
    snprintf(cband, sizeof cband, "%.2f", (double)c->c_band / n);
  else
    snprintf(cband, sizeof cband, "-");
  if (!one)
    snprintf(thm, sizeof thm, "-");
  else if (c->outside == c->runs)
    snprintf(thm, sizeof thm, "outside");
  else
    snprintf(thm, sizeof thm, "%zu", c->thm_viol);
  fprintf(out, "%-8s %-11s %-11s %4zu %6.2f %5.2f %5.2f %11.3g %6s %7.2f %6.1f %8s %6zu%s\n",
          aal_theory_kind_name((aal_theory_kind)kind), sweep_families[fam].label, bin_name[bin],
          c->runs, (double)c->descended / n, (double)c->flat / n, (double)c->rose / n, median,
          cband, (double)c->eta_pos / n, 100.0 * (double)c->floor / (double)c->steps, thm,
          c->lemma_viol, c->closed ? "  CLOSED-FORM FAILURES" : "");
}

static int print_table(FILE *out, const sweep_row *rows, size_t nrows, aal_error *err)
{
  double *ratios = malloc((nrows > 0 ? nrows : 1) * sizeof *ratios);
  if (ratios == NULL)
    return aal_fail(err, AAL_ENOMEM, "sweep: summary buffer");
  fprintf(out, "%-8s %-11s %-11s %4s %6s %5s %5s %11s %6s %7s %6s %8s %6s\n", "problem",
          "family", "min-LI bin", "runs", "descnd", "flat", "rose", "median f/f0", "c~[0,2]",
          "etaLI>=0", "floor%", "thm-viol", "lemma");
  for (int kind = 0; kind < AAL_THEORY_NKINDS; kind++)
    for (size_t fam = 0; fam < NSWEEP_FAMILIES; fam++)
      for (int bin = 0; bin < NBINS; bin++) {
        cell_counts c;
        memset(&c, 0, sizeof c);
        for (size_t i = 0; i < nrows; i++) {
          const sweep_row *r = &rows[i];
          if (r->kind != kind || r->family != (int)fam || li_bin(r->res.li_min) != bin)
            continue;
          ratios[c.runs] = r->res.final_loss / r->res.initial_loss;
          cell_add(&c, &r->res);
        }
        if (c.runs == 0)
          continue;
        gsl_sort(ratios, 1, c.runs);
        print_cell(out, kind, fam, bin, &c, gsl_stats_median_from_sorted_data(ratios, 1, c.runs));
      }
  free(ratios);
  return AAL_OK;
}

void aal_theory_summary_init(aal_theory_sweep_summary *sum)
{
  memset(sum, 0, sizeof *sum);
  sum->guarantee_ratio_min = NAN;
}

void aal_theory_summary_add(aal_theory_sweep_summary *sum, const aal_theory_result *r)
{
  sum->runs++;
  sum->steps += r->steps;
  sum->lemma_violations += r->violations;
  sum->closed_form_failures += r->exact_failures;
  sum->floor_steps += r->floor_steps;
  if (r->in_theorem) {
    sum->theorem_runs++;
    sum->theorem_steps += r->theorem_steps;
    sum->theorem_floor_steps += r->floor_steps;
    sum->theorem_violations += r->theorem_violations;
    if (!isnan(r->guarantee_ratio_min) &&
        (isnan(sum->guarantee_ratio_min) || r->guarantee_ratio_min < sum->guarantee_ratio_min))
      sum->guarantee_ratio_min = r->guarantee_ratio_min;
  } else if (r->outside_theorem) {
    sum->outside_runs++;
    sum->outside_rose_steps += r->outside_rose;
    sum->outside_rose_runs += r->outside_rose > 0;
  } else {
    sum->batch_runs++;
  }
}

static int check_sweep_opts(const aal_theory_sweep_opts *o, int *family, aal_error *err)
{
  const int all = (1 << AAL_THEORY_NKINDS) - 1;
  if (o->seeds == 0 || o->steps == 0 || o->points < 2 || o->points > 10000 ||
      o->seeds > 1000000 || (o->problems & all) == 0 || (o->problems & ~all) != 0)
    return aal_fail(err, AAL_EINVAL,
                    "sweep: need seeds >= 1, steps >= 1, 2 <= points <= 10000 and a problem "
                    "(seeds=%zu steps=%zu points=%zu)",
                    o->seeds, o->steps, o->points);
  if (!(o->li_lo <= o->li_hi) || !(o->li_hi <= 1.0) || !isfinite(o->li_lo))
    return aal_fail(err, AAL_EINVAL, "sweep: LI targets need li_lo <= li_hi <= 1 (%g, %g)",
                    o->li_lo, o->li_hi);
  *family = -1;
  if (o->family != NULL) {
    for (size_t f = 0; f < NSWEEP_FAMILIES; f++)
      if (strcmp(o->family, sweep_families[f].label) == 0)
        *family = (int)f;
    if (*family < 0)
      return aal_fail(err, AAL_EINVAL, "sweep: unknown family '%s' (parallel, parallel_hi, "
                      "ortho, stale, sign, sign_x100, noise, flip)", o->family);
  }
  return AAL_OK;
}

/* The sweep's runs in order: problem, family, LI target, seed. */
static size_t plan_rows(const aal_theory_sweep_opts *o, int only, sweep_row *rows)
{
  size_t k = 0;
  for (int kind = 0; kind < AAL_THEORY_NKINDS; kind++) {
    if (!(o->problems & (1 << kind)))
      continue;
    for (size_t f = 0; f < NSWEEP_FAMILIES; f++) {
      if (only >= 0 && (int)f != only)
        continue;
      const int targeted = aal_theory_family_has_target(sweep_families[f].spec.family);
      const size_t npts = targeted ? o->points : 1;
      for (size_t pt = 0; pt < npts; pt++)
        for (size_t s = 0; s < o->seeds; s++, k++)
          if (rows != NULL) {
            sweep_row *r = &rows[k];
            r->kind = kind;
            r->family = (int)f;
            /* targets evenly over [li_lo, li_hi], the last exactly li_hi (1 by default:
             * BP for the targeted families) */
            r->target = !targeted ? NAN
                        : pt + 1 == npts
                            ? o->li_hi
                            : o->li_lo + (o->li_hi - o->li_lo) * (double)pt / (double)(npts - 1);
            r->seed = o->seed + s;
          }
    }
  }
  return k;
}

int aal_theory_sweep(const aal_theory_sweep_opts *o, FILE *csv, FILE *table,
                     aal_theory_sweep_summary *sum, aal_error *err)
{
  if (o == NULL || sum == NULL)
    return aal_fail(err, AAL_EINVAL, "sweep: NULL argument");
  aal_theory_summary_init(sum);
  int only;
  int rc = check_sweep_opts(o, &only, err);
  if (rc != AAL_OK)
    return rc;
  const size_t nrows = plan_rows(o, only, NULL);
  sweep_row *rows = calloc(nrows, sizeof *rows);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rows == NULL || rng == NULL) {
    free(rows);
    gsl_rng_free(rng);
    return aal_fail(err, AAL_ENOMEM, "sweep: %zu rows", nrows);
  }
  plan_rows(o, only, rows);
  if (csv != NULL)
    fputs(csv_header, csv);
  for (size_t k = 0; k < nrows && rc == AAL_OK; k++) {
    rc = run_one(o, &rows[k], rng, err);
    if (rc != AAL_OK)
      break;
    aal_theory_summary_add(sum, &rows[k].res);
    if (csv != NULL)
      write_row(csv, &rows[k], o->eta_fraction);
  }
  if (rc == AAL_OK && csv != NULL && ferror(csv))
    rc = aal_fail(err, AAL_EIO, "sweep: writing the CSV failed");
  if (rc == AAL_OK && table != NULL)
    rc = print_table(table, rows, nrows, err);
  free(rows);
  gsl_rng_free(rng);
  return rc;
}

void aal_theory_sweep_print_summary(FILE *out, const aal_theory_sweep_opts *o,
                                    const aal_theory_sweep_summary *s)
{
  fprintf(out, "lemma (D), every step of every run: %zu steps, %zu violations\n", s->steps,
          s->lemma_violations);
  fprintf(out, "closed form (lsq1): %zu failures\n", s->closed_form_failures);
  if (s->theorem_runs > 0)
    fprintf(out,
            "theorem (T), one sample, eta = %g/L <= 1/L: %zu runs, %zu steps checked (%zu at "
            "the rounding floor), %zu theorem violations; observed/guaranteed decrease >= "
            "%.6g\n",
            o->eta_fraction, s->theorem_runs, s->theorem_steps, s->theorem_floor_steps,
            s->theorem_violations, s->guarantee_ratio_min);
  if (s->outside_runs > 0)
    fprintf(out,
            "OUTSIDE THE THEOREM: %zu one-sample runs have eta = %g/L > 1/L and were not "
            "checked; in %zu of them %zu steps with LI >= 0 raised the loss\n",
            s->outside_runs, o->eta_fraction, s->outside_rose_runs, s->outside_rose_steps);
  if (s->batch_runs > 0)
    fprintf(out, "mini-batch runs: %zu (the per-sample theorem does not apply; lemma checked)\n",
            s->batch_runs);
  fprintf(out, "rounding floor: %zu of %zu steps (%.1f%%) started with f <= allowance; they "
          "count as neither descended nor flat\n",
          s->floor_steps, s->steps, s->steps ? 100.0 * (double)s->floor_steps / (double)s->steps : 0.0);
}

typedef struct {
  const aal_theory_sweep_opts *o;
  FILE *table;
  aal_theory_sweep_summary *sum;
} sweep_writer_ctx;

static int sweep_writer(void *ctx, FILE *csv, aal_error *err)
{
  sweep_writer_ctx *c = ctx;
  return aal_theory_sweep(c->o, csv, c->table, c->sum, err);
}

int aal_theory_sweep_to_file(const aal_theory_sweep_opts *o, const char *path, FILE *table,
                             aal_theory_sweep_summary *sum, aal_error *err)
{
  sweep_writer_ctx c = {o, table, sum};
  return aal_theory_write_atomic(path, sweep_writer, &c, err);
}

int aal_theory_write_atomic(const char *path, aal_theory_csv_writer writer, void *ctx,
                            aal_error *err)
{
  if (path == NULL || *path == '\0' || writer == NULL)
    return aal_fail(err, AAL_EINVAL, "write_atomic: empty output path or no writer");
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
  rc = writer(ctx, f, err);
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
