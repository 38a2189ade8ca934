/* `aal theorem`: runs the LI sweep of theory/sweep.c, writes the CSV atomically and
 * prints the summary table.  Exit 1 if Theorem 1 (one sample, eta <= 1/L), the descent
 * lemma or the one-sample closed form failed anywhere: those are checks, not
 * statistics.  Runs with eta > 1/L are reported as outside the theorem. */
#include "sim/cli/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "theory/theory.h"
#include "sim/cli/cli.h"

/* The checks' verdict line, shared by the sweeps; returns the exit status. */
static int verdict(const aal_theory_sweep_summary *sum, double seconds, const char *out)
{
  char thm[160];
  if (sum->theorem_runs > 0)
    snprintf(thm, sizeof thm, "%zu theorem violations in %zu runs%s", sum->theorem_violations,
             sum->theorem_runs, sum->outside_runs > 0 ? " (the runs outside it not tested)" : "");
  else
    snprintf(thm, sizeof thm, "theorem NOT TESTED (%s)",
             sum->outside_runs > 0 ? "every one-sample run has eta > 1/L: outside the theorem"
                                   : "no one-sample run");
  printf("theorem: %s; %zu lemma and %zu closed-form violations (all must be 0); %.1f s CPU%s%s\n",
         thm, sum->lemma_violations, sum->closed_form_failures, seconds, out ? "; wrote " : "",
         out ? out : "");
  const size_t bad = sum->theorem_violations + sum->lemma_violations + sum->closed_form_failures;
  return bad == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

typedef struct {
  const aal_theory_asa_opts *o;
  aal_theory_sweep_summary *sum;
} asa_ctx;

static int asa_writer(void *ctx, FILE *csv, aal_error *err)
{
  asa_ctx *c = ctx;
  return aal_theory_asa_sweep(c->o, csv, stdout, c->sum, err);
}

/* --asa: ASA's sign activation over sigma x k, the three decodings. */
static int run_asa(const char *out, const char *sigmas, const char *ks, double eps,
                   unsigned long seeds, unsigned long steps, unsigned long seed)
{
  aal_theory_asa_opts o;
  aal_theory_asa_opts_default(&o);
  aal_error err;
  aal_error_clear(&err);
  if ((sigmas != NULL &&
       aal_theory_parse_list(sigmas, o.sigma, AAL_THEORY_ASA_MAXGRID, &o.nsigma, &err) != AAL_OK) ||
      (ks != NULL && aal_theory_parse_list(ks, o.k, AAL_THEORY_ASA_MAXGRID, &o.nk, &err) != AAL_OK)) {
    fprintf(stderr, "aal theorem: --sigmas/--ks: %s\n", err.msg);
    return 2;
  }
  o.eps = eps;
  o.seeds = seeds;
  o.steps = steps;
  o.seed = seed;
  printf("theorem --asa: seed %lu, %zu seeds, %zu steps, eps %g, %zu sigmas x %zu k, lsq1 and "
         "lsq, decodings pm1, 01, mixed\n", o.seed, o.seeds, o.steps, o.eps, o.nsigma, o.nk);
  aal_theory_sweep_summary sum;
  asa_ctx c = {&o, &sum};
  const clock_t t0 = clock();
  const int rc = out != NULL ? aal_theory_write_atomic(out, asa_writer, &c, &err)
                             : aal_theory_asa_sweep(&o, NULL, stdout, &sum, &err);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal theorem: %s (%s)\n", err.msg[0] ? err.msg : "failed", aal_status_name(rc));
    return rc == AAL_EINVAL ? 2 : EXIT_FAILURE;
  }
  return verdict(&sum, (double)(clock() - t0) / CLOCKS_PER_SEC, out);
}

typedef struct {
  const aal_theory_ara_opts *o;
  FILE *trace;
} ara_ctx;

static int ara_writer(void *ctx, FILE *csv, aal_error *err)
{
  ara_ctx *c = ctx;
  return aal_theory_ara_sweep(c->o, csv, c->trace, stdout, err);
}

/* --ara: the ARA-like residual network (non-convex: no theorem to check, statistics only). */
static int run_ara(const char *out, const char *trace_path, const char *betas, double lr,
                   unsigned long seeds, unsigned long steps, unsigned long seed)
{
  aal_theory_ara_opts o;
  aal_theory_ara_opts_default(&o);
  aal_error err;
  aal_error_clear(&err);
  if (betas != NULL && aal_theory_parse_list(betas, o.beta, 16, &o.nbeta, &err) != AAL_OK) {
    fprintf(stderr, "aal theorem: --betas: %s\n", err.msg);
    return 2;
  }
  if (lr > 0.0)
    o.eta = lr;
  o.seeds = seeds;
  o.steps = steps;
  o.seed = seed;
  printf("theorem --ara: seed %lu, %zu seeds, %zu steps, eta %g, x_a = relu(W1 x), x_b = "
         "relu(x_a + beta W2 x_a), y = W3 x_b; W3 trained with r = x_b (bp), x_a (ara), noise "
         "or -x_b (flip)\n", o.seed, o.seeds, o.steps, o.eta);
  FILE *trace = NULL;
  if (trace_path != NULL && (trace = fopen(trace_path, "w")) == NULL) {
    fprintf(stderr, "aal theorem: cannot create %s\n", trace_path);
    return EXIT_FAILURE;
  }
  ara_ctx c = {&o, trace};
  int rc = out != NULL ? aal_theory_write_atomic(out, ara_writer, &c, &err)
                       : aal_theory_ara_sweep(&o, NULL, trace, stdout, &err);
  if (trace != NULL && fclose(trace) != 0 && rc == AAL_OK)
    rc = aal_fail(&err, AAL_EIO, "cannot write %s", trace_path);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal theorem: %s (%s)\n", err.msg[0] ? err.msg : "failed", aal_status_name(rc));
    return rc == AAL_EINVAL ? 2 : EXIT_FAILURE;
  }
  printf("theorem --ara: done (a non-convex testbed: no theorem check)%s%s\n",
         out ? "; wrote " : "", out ? out : "");
  return EXIT_SUCCESS;
}

int aal_cmd_theorem(int argc, char **argv)
{
  aal_theory_sweep_opts o;
  aal_theory_sweep_opts_default(&o);
  const char *out = NULL, *problem = "all", *family = NULL;
  double li_min = o.li_lo, li_max = o.li_hi, eps = 0.01;
  const char *sigmas = NULL, *ks = NULL, *betas = NULL, *trace = NULL;
  int asa = 0, ara = 0;
  double lr = 0.0;
  unsigned long seeds = o.seeds, steps = o.steps, points = o.points, seed = o.seed;
  double eta_fraction = o.eta_fraction;
  const cli_option opts[] = {
      {"out", CLI_STRING, &out, "CSV file, one row per run (default: none)"},
      {"seeds", CLI_ULONG, &seeds,
       "runs per point: problem, family and LI target (--asa: sigma and k; --ara: rule, update "
       "and beta) (default 20)"},
      {"steps", CLI_ULONG, &steps, "training steps per run (default 100)"},
      {"points", CLI_ULONG, &points, "LI targets over [li-min, li-max] (default 9)"},
      {"li-min", CLI_DOUBLE, &li_min, "lowest LI target (default -1)"},
      {"li-max", CLI_DOUBLE, &li_max, "highest LI target, <= 1 (default 1)"},
      {"problem", CLI_STRING, &problem, "lsq1, lsq, softmax, softmax1 or all (default all)"},
      {"family", CLI_STRING, &family,
       "only this family of r: parallel, parallel_hi, ortho, stale, sign, sign_x100, noise, "
       "flip (default all)"},
      {"seed", CLI_ULONG, &seed, "base seed; run k uses seed + k (default 1)"},
      {"eta-fraction", CLI_DOUBLE, &eta_fraction, "step eta = X / L, 0 < X (default 1)"},
      {"asa", CLI_FLAG, &asa,
       "instead: ASA's sign activation over input scale sigma x lr_expansion k, for the "
       "+-1, {0,1} and mixed (published) decodings, on lsq1 and lsq"},
      {"eps", CLI_DOUBLE, &eps, "--asa: ASA's eps (default 0.01)"},
      {"sigmas", CLI_STRING, &sigmas, "--asa: input scales, e.g. 0.3,0.4,1 (default 16 in [0.1, 3])"},
      {"ks", CLI_STRING, &ks, "--asa: lr_expansion values, e.g. 1,100 (default 14 in [1, 1000])"},
      {"ara", CLI_FLAG, &ara,
       "instead: an ARA-like residual network (non-convex), W3 trained with r = x_a, bp, "
       "noise or flip, all layers or W3 alone"},
      {"betas", CLI_STRING, &betas, "--ara: residual branch scales (default 0.5,1,2,4)"},
      {"lr", CLI_DOUBLE, &lr, "--ara: step = X / L3, L3 the Lipschitz constant in W3 at the start (default 0.5)"},
      {"trace", CLI_STRING, &trace, "--ara: per-step CSV of the first seed's runs"},
      {0}};
  int rc = cli_parse("theorem",
                     "[options]\n\nTheorem 1 (SPEC section 2) on convex testbeds with a known "
                     "Lipschitz constant L:\none-sample and mini-batch least squares and softmax "
                     "regression (one-sample and mini-batch), trained with\nalternative "
                     "activations r of chosen learning indicator LI = r^T(2h - r)/||h||^2.\n"
                     "Three checks, each must have 0 violations: Theorem 1 on one-sample runs "
                     "with\neta <= 1/L (LI >= 0: the loss does not rise, and it falls by at "
                     "least\n(eta/2) LI ||grad f||^2); the descent lemma on every step (holds "
                     "for any r: it\ntests the code, not the rule); the one-sample "
                     "least-squares closed form.\nOne-sample runs with eta > 1/L are reported "
                     "as outside the theorem.  The table\ngives, per family and bin of the "
                     "run's minimum LI, the fraction of runs that\ndescended, stayed flat "
                     "(no change beyond rounding) or rose, the median\nfinal/initial loss, "
                     "the fraction with c = r^T h/||h||^2 in [0, 2] throughout\n(one sample), "
                     "the fraction whose step-size-aware indicator stayed >= 0, the\nshare of "
                     "steps at the rounding floor, and the theorem and lemma violations.",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (strcmp(problem, "all") == 0)
    o.problems = (1 << AAL_THEORY_NKINDS) - 1;
  else if (strcmp(problem, "lsq1") == 0)
    o.problems = 1 << AAL_THEORY_LSQ1;
  else if (strcmp(problem, "lsq") == 0)
    o.problems = 1 << AAL_THEORY_LSQ;
  else if (strcmp(problem, "softmax") == 0)
    o.problems = 1 << AAL_THEORY_SOFTMAX;
  else if (strcmp(problem, "softmax1") == 0)
    o.problems = 1 << AAL_THEORY_SOFTMAX1;
  else {
    fprintf(stderr,
            "aal theorem: option --problem expects lsq1, lsq, softmax, softmax1 or all, got "
            "'%s'\n",
            problem);
    return 2;
  }
  if (!(li_min <= li_max) || !(li_max <= 1.0) || !(li_min >= -1e6)) {
    fprintf(stderr, "aal theorem: options --li-min/--li-max expect -1e6 <= li-min <= li-max <= 1, "
            "got %g, %g\n", li_min, li_max);
    return 2;
  }
  if (seeds < 1 || seeds > 100000) {
    fprintf(stderr, "aal theorem: option --seeds expects 1..100000, got %lu\n", seeds);
    return 2;
  }
  if (steps < 1 || steps > 1000000) {
    fprintf(stderr, "aal theorem: option --steps expects 1..1000000, got %lu\n", steps);
    return 2;
  }
  if (ara) {
    if (!(lr >= 0.0) || !(lr < 1e6)) {
      fprintf(stderr, "aal theorem: option --lr expects a number in (0, 1e6), got %g\n", lr);
      return 2;
    }
    if (seeds > 1024) {
      fprintf(stderr, "aal theorem: --ara takes at most 1024 seeds, got %lu\n", seeds);
      return 2;
    }
    return run_ara(out, trace, betas, lr, seeds, steps, seed);
  }
  if (asa) {
    if (!(eps > 0.0) || !(eps < 1e6)) {
      fprintf(stderr, "aal theorem: option --eps expects a number in (0, 1e6), got %g\n", eps);
      return 2;
    }
    return run_asa(out, sigmas, ks, eps, seeds, steps, seed);
  }
  if (points < 2 || points > 10000) {
    fprintf(stderr, "aal theorem: option --points expects 2..10000, got %lu\n", points);
    return 2;
  }
  if (!(eta_fraction > 0.0) || eta_fraction > 1e6) {
    fprintf(stderr, "aal theorem: option --eta-fraction expects a number in (0, 1e6], got %g\n",
            eta_fraction);
    return 2;
  }
  o.seeds = seeds;
  o.steps = steps;
  o.points = points;
  o.seed = seed;
  o.eta_fraction = eta_fraction;
  o.li_lo = li_min;
  o.li_hi = li_max;
  o.family = family;
  printf("theorem: seed %lu, %zu seeds, %zu steps, %zu LI points in [%g, %g], eta = %g/L, "
         "problem %s, family %s\n",
         o.seed, o.seeds, o.steps, o.points, o.li_lo, o.li_hi, o.eta_fraction, problem,
         family ? family : "all");
  aal_error err;
  aal_error_clear(&err);
  aal_theory_sweep_summary sum;
  const clock_t t0 = clock();
  rc = out != NULL ? aal_theory_sweep_to_file(&o, out, stdout, &sum, &err)
                   : aal_theory_sweep(&o, NULL, stdout, &sum, &err);
  if (rc != AAL_OK)
    return cli_report("theorem", rc, &err);
  aal_theory_sweep_print_summary(stdout, &o, &sum);
  return verdict(&sum, (double)(clock() - t0) / CLOCKS_PER_SEC, out);
}
