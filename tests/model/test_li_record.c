/* The learning indicator recorded during ResNet training (SPEC sections 2 and 4):
 * ASA's LI equals its closed form (2 eps ||x||_1 + eps^2 nnz(s)) / ||x + eps s||^2 for
 * every sample and conv, and under decode=pm1 (r = eps (2s - 1), the r backward uses)
 * (eps (2 ||x||_1 + eps nnz(x)) - eps^2 (n - nnz(x))) / ||x + eps s||^2; ARA with k = 1
 * (= BP) and BP give exactly 1; flip exactly -3; the CSV rows are complete and the
 * summary agrees with them.
 * Gradient alignment (SPEC section 4b): the recorded cosine and projection equal those
 * computed here from the rule's gradients and those of a separate BP forward/backward
 * of the same state and batch; flip gives exactly -1, BP 1; recording changes no
 * gradient. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "sim/aal.h"
#include "tests/fdcheck.h"

static unsigned long seed;

enum { NB = 4, SIZE = 16, CLASSES = 5, MAXROWS = 4096 };

typedef struct {
  char layer[AAL_PARAM_NAME_LEN];
  size_t sample;
  double li;
  int valid;
} li_row;

typedef struct {
  aal_resnet net;
  aal_resnet_pass pass;
  aal_tensor *x;
  int labels[NB];
} setup;

static void setup_init(setup *s, const char *rule_text)
{
  aal_error err;
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  ck_assert_int_eq(aal_resnet_config_set_width(&cfg, 0.125, &err), AAL_OK);
  cfg.classes = CLASSES;
  cfg.in_size = SIZE;
  ck_assert_int_eq(aal_resnet_init(&s->net, &cfg, seed, &err), AAL_OK);
  aal_rule rule;
  ck_assert_int_eq(aal_rule_parse(rule_text, &rule, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_pass_init(&s->pass, &s->net, &rule, seed, 0, &err), AAL_OK);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  s->x = aal_tensor_new4(NB, 3, SIZE, SIZE, &err);
  fd_fill_uniform(rng, s->x->data, s->x->size, -2, 2);
  for (int n = 0; n < NB; n++)
    s->labels[n] = (int)gsl_rng_uniform_int(rng, CLASSES);
  gsl_rng_free(rng);
}

static void setup_free(setup *s)
{
  aal_resnet_free(&s->net);
  aal_tensor_release(s->x);
}

/* One forward pass with the recorder; returns the parsed li.csv rows. */
static size_t record(setup *s, int include_bp, li_row *rows, FILE **summary_out)
{
  aal_error err;
  aal_error_clear(&err);
  FILE *li = tmpfile(), *summary = tmpfile();
  ck_assert(li != NULL && summary != NULL);
  aal_li_recorder rec;
  ck_assert_int_eq(aal_li_recorder_attach(&rec, &s->pass, li, summary, 6, include_bp, &err),
                   AAL_OK);
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  int rc = aal_resnet_forward(&s->net, &s->pass, s->x, s->labels, tape, &loss, NULL, &err);
  rc = aal_li_recorder_finish(&rec, rc, &err);
  ck_assert_msg(rc == AAL_OK, "%s", err.msg);
  aal_tape_free(tape);
  s->pass.observer = (aal_resnet_observer){0};
  rewind(li);
  char line[256];
  size_t n = 0;
  while (fgets(line, sizeof line, li) != NULL && n < MAXROWS) {
    unsigned long step;
    char *p = line;
    step = strtoul(p, &p, 10);
    ck_assert_uint_eq(step, 7);  /* the recorder writes the 1-based step */
    ck_assert(*p == ',');
    char *comma = strchr(++p, ',');
    ck_assert_ptr_nonnull(comma);
    snprintf(rows[n].layer, sizeof rows[n].layer, "%.*s", (int)(comma - p), p);
    rows[n].sample = strtoul(comma + 1, &p, 10);
    rows[n].valid = p[1] != '\n';
    rows[n].li = rows[n].valid ? strtod(p + 1, NULL) : NAN;
    n++;
  }
  fclose(li);
  if (summary_out != NULL) {
    rewind(summary);
    *summary_out = summary;
  } else {
    fclose(summary);
  }
  return n;
}

/* x of every conv, captured by an observer in a second, identical forward pass */
typedef struct {
  aal_tensor *x[256];
  aal_r_source source[256];
  char name[256][AAL_PARAM_NAME_LEN];
  int n;
} inputs;

static void on_forward(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *x,
                       const aal_tensor *h, const aal_tensor *r)
{
  inputs *in = ctx;
  (void)h;
  (void)r;
  if (in->n < 256) {
    in->x[in->n] = aal_tensor_copy(x, NULL);
    in->source[in->n] = source;
    snprintf(in->name[in->n], AAL_PARAM_NAME_LEN, "%s", u->conv_name);
    in->n++;
  }
}

/* The recorder's LI of every ASA conv and sample against the closed form, computed
 * here from the conv's input x alone. */
static void check_asa_closed_form(const char *rule_text, double eps, int pm1)
{
  setup s;
  setup_init(&s, rule_text);
  ck_assert_int_eq(s.pass.rule.decode_pm1, pm1);
  li_row *rows = malloc(MAXROWS * sizeof *rows);
  const size_t n = record(&s, 0, rows, NULL);
  inputs in = {.n = 0};
  s.pass.observer.conv_forward = on_forward;
  s.pass.observer.ctx = &in;
  aal_error err;
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  ck_assert_int_eq(aal_resnet_forward(&s.net, &s.pass, s.x, s.labels, tape, &loss, NULL, &err),
                   AAL_OK);
  aal_tape_free(tape);
  int asa_convs = 0;
  double worst = 0, lo = INFINITY, hi = -INFINITY;
  size_t checked = 0, with_zeros = 0;
  for (int c = 0; c < in.n; c++) {
    if (in.source[c] != AAL_R_ASA)
      continue;
    asa_convs++;
    const aal_tensor *x = in.x[c];
    const size_t per = x->size / NB;
    for (size_t smp = 0; smp < NB; smp++) {
      /* closed form, SPEC section 4: s in {0,1} (x >= 0) */
      double l1 = 0, nnz = 0, hh = 0;
      for (size_t k = 0; k < per; k++) {
        const double v = x->data[smp * per + k], sgn = v > 0;
        l1 += fabs(v);
        nnz += sgn;
        hh += (v + eps * sgn) * (v + eps * sgn);
      }
      with_zeros += nnz < per;
      double want, bound;
      if (!pm1) {
        want = (2 * eps * l1 + eps * eps * nnz) / hh;
        ck_assert_msg(want > 0, "ASA LI must be positive");
        /* both sides are sums of `per` rounded terms: relative error <= 4 per eps each,
         * plus the %.17g round trip */
        bound = 8.0 * per * DBL_EPSILON * want;
      } else {
        /* r = +eps where x > 0, -eps where x == 0 */
        want = (eps * (2 * l1 + eps * nnz) - eps * eps * ((double)per - nnz)) / hh;
        /* the terms of r^T(2h - r) have both signs and may cancel: the bound is absolute,
         * on the scale of the sums of magnitudes, 2 |r|^T|h| + r^T r = 2 eps (||x||_1 +
         * eps nnz) + per eps^2 (over hh); each side errs by about 3 per u times that
         * (tests/layers/test_asa.c, test_decode_pm1_li_closed_form) */
        bound = 8.0 * per * DBL_EPSILON * (2 * eps * (l1 + eps * nnz) + per * eps * eps) / hh;
      }
      const li_row *row = NULL;
      for (size_t i = 0; i < n && row == NULL; i++)
        if (strcmp(rows[i].layer, in.name[c]) == 0 && rows[i].sample == smp)
          row = &rows[i];
      ck_assert_msg(row != NULL, "no LI row for %s sample %zu", in.name[c], smp);
      ck_assert(row->valid);
      const double e = fabs(row->li - want);
      ck_assert_msg(e <= bound, "%s %s sample %zu: LI %.17g, closed form %.17g (|err| %.3g > "
                    "%.3g)", rule_text, in.name[c], smp, row->li, want, e, bound);
      worst = fmax(worst, e / bound);
      lo = fmin(lo, row->li);
      hi = fmax(hi, row->li);
      checked++;
    }
  }
  fprintf(stderr, "%s: LI vs closed form: %zu values in [%.4g, %.4g], worst error/bound %.3g\n",
          rule_text, checked, lo, hi, worst);
  ck_assert_int_eq(asa_convs, 2 * s.net.nblocks + 3);  /* every conv but the stem */
  ck_assert_uint_eq(n, (size_t)asa_convs * NB);
  ck_assert_uint_gt(with_zeros, 0);  /* where the two decodings differ */
  for (int c = 0; c < in.n; c++)
    aal_tensor_release(in.x[c]);
  free(rows);
  setup_free(&s);
}

START_TEST(test_asa_closed_form)
{
  check_asa_closed_form("asa:all;eps=0.03", 0.03, 0);
}
END_TEST

/* The recorder measures decode=pm1 with the r backward uses (+-eps), not the forward's
 * {0, eps}: its LI is the published variant's closed form, below the default's by
 * eps^2 (n - nnz(x)) / ||h||^2 (far beyond the bound wherever x has a zero, which the
 * check requires of some sample); at eps = 0.5 that term is large. */
START_TEST(test_asa_pm1_closed_form)
{
  check_asa_closed_form("asa:all;eps=0.03;decode=pm1", 0.03, 1);
  check_asa_closed_form("asa:all;decode=pm1;eps=0.5", 0.5, 1);
}
END_TEST

START_TEST(test_exact_values)
{
  struct { const char *rule; int include_bp; double want; size_t convs; } cases[] = {
      {"ara:1,1,1,1", 1, 1.0, 0}, {"bp", 1, 1.0, 0}, {"flip", 0, -3.0, 5}};
  for (int t = 0; t < 3; t++) {
    setup s;
    setup_init(&s, cases[t].rule);
    li_row *rows = malloc(MAXROWS * sizeof *rows);
    FILE *summary;
    const size_t n = record(&s, cases[t].include_bp, rows, &summary);
    const size_t convs = cases[t].convs ? cases[t].convs : (size_t)(1 + 2 * s.net.nblocks + 3);
    ck_assert_uint_eq(n, convs * NB);
    for (size_t i = 0; i < n; i++)
      ck_assert_msg(rows[i].valid && rows[i].li == cases[t].want, "%s: %s sample %zu: LI %.17g",
                    cases[t].rule, rows[i].layer, rows[i].sample, rows[i].li);
    char line[512];
    size_t lines = 0;
    while (fgets(line, sizeof line, summary) != NULL) {
      double mn, p05, med, mean, mx;
      size_t count, zero;
      char *p = strchr(strchr(line, ',') + 1, ',');
      ck_assert_int_eq(sscanf(p + 1, "%lf,%lf,%lf,%lf,%lf,%zu,%zu", &mn, &p05, &med, &mean, &mx,
                              &count, &zero), 7);
      ck_assert(mn == cases[t].want && mx == cases[t].want && med == cases[t].want);
      ck_assert_uint_eq(count, NB);
      ck_assert_uint_eq(zero, 0);
      lines++;
    }
    ck_assert_uint_eq(lines, convs);
    fclose(summary);
    free(rows);
    setup_free(&s);
  }
}
END_TEST


/* ------------------------------------------------------------ gradient alignment */

typedef struct {
  char layer[AAL_PARAM_NAME_LEN];
  double cosine, projection, norm_rule, norm_bp;
} align_row;

/* Forward and backward of s (its pass as set up), with the alignment recorder when rows
 * is not NULL; returns the rows read back from align.csv. */
static size_t align_step(setup *s, int include_bp, align_row *rows)
{
  aal_error err;
  aal_error_clear(&err);
  FILE *out = rows != NULL ? tmpfile() : NULL;
  aal_align_recorder rec;
  if (rows != NULL)
    ck_assert_int_eq(aal_align_recorder_attach(&rec, &s->pass, out, 2, include_bp, &err), AAL_OK);
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  int rc = aal_resnet_forward(&s->net, &s->pass, s->x, s->labels, tape, &loss, NULL, &err);
  if (rc == AAL_OK)
    rc = aal_resnet_backward(&s->net, &s->pass, tape, s->labels, &err);
  if (rows != NULL)
    rc = aal_align_recorder_finish(&rec, rc, &err);
  ck_assert_msg(rc == AAL_OK, "%s", err.msg);
  aal_tape_free(tape);
  s->pass.observer = (aal_resnet_observer){0};
  if (rows == NULL)
    return 0;
  rewind(out);
  char line[512];
  size_t n = 0;
  while (fgets(line, sizeof line, out) != NULL && n < MAXROWS) {
    char *p = line;
    ck_assert_uint_eq(strtoul(p, &p, 10), 3);
    char *comma = strchr(++p, ',');
    ck_assert_ptr_nonnull(comma);
    snprintf(rows[n].layer, sizeof rows[n].layer, "%.*s", (int)(comma - p), p);
    ck_assert_int_eq(sscanf(comma + 1, "%lf,%lf,%lf,%lf", &rows[n].cosine, &rows[n].projection,
                            &rows[n].norm_rule, &rows[n].norm_bp), 4);
    n++;
  }
  fclose(out);
  return n;
}

static const aal_tensor *weight_grad(aal_resnet *net, const char *conv)
{
  char name[AAL_PARAM_NAME_LEN + 8];
  snprintf(name, sizeof name, "%s.weight", conv);
  const aal_param *p = aal_resnet_find(net, name);
  ck_assert_msg(p != NULL && p->grad != NULL, "no parameter %s", name);
  return p->grad;
}

/* |got - want| <= bound * |want|, NaN-safe, with the worst ratio kept */
static void near(const char *what, const char *layer, double got, double want, double bound,
                 double *worst)
{
  const double e = fabs(got - want) / fabs(want);
  ck_assert_msg(e <= bound, "%s %s: recorded %.17g, by hand %.17g (rel %.3g > %.3g)", layer,
                what, got, want, e, bound);
  *worst = fmax(*worst, e / bound);
}

START_TEST(test_align_by_hand)
{
  const char *rules[] = {"ara:2,2,2,2", "noise", "ara:1,2,1,1"};
  for (int t = 0; t < 3; t++) {
    setup rule, bp;
    setup_init(&rule, rules[t]);
    setup_init(&bp, "bp");
    align_row *rows = malloc(MAXROWS * sizeof *rows);
    const size_t n = align_step(&rule, 0, rows);
    align_step(&bp, 0, NULL);
    size_t want_rows = 0;
    for (int b = 0; b < rule.net.nblocks; b++)
      want_rows += (rule.pass.plan.first_conv[b] != AAL_R_INPUT) *
                       (1 + rule.net.blocks[b].has_downsample) +
                   (rule.pass.plan.second_conv[b] != AAL_R_INPUT);
    ck_assert_uint_eq(n, want_rows);
    ck_assert_uint_gt(n, 0);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      const aal_tensor *gr = weight_grad(&rule.net, rows[i].layer);
      const aal_tensor *gb = weight_grad(&bp.net, rows[i].layer);
      long double dot = 0, aa = 0, bb = 0, abs_dot = 0;
      for (size_t k = 0; k < gr->size; k++) {
        dot += (long double)gr->data[k] * gb->data[k];
        abs_dot += fabsl((long double)gr->data[k] * gb->data[k]);
        aa += (long double)gr->data[k] * gr->data[k];
        bb += (long double)gb->data[k] * gb->data[k];
      }
      /* the recorder sums n products in double: relative error <= n u on the norms and
       * n u sum|a b| / |<a, b>| on the dot; a few u more for sqrt, division and the
       * %.17g round trip */
      const double u = DBL_EPSILON / 2, m = (double)gr->size;
      const double e_norm = m * u + 4 * u, e_dot = m * u * (double)(abs_dot / fabsl(dot)) + 4 * u;
      near("norm_rule", rows[i].layer, rows[i].norm_rule, (double)sqrtl(aa), e_norm, &worst);
      near("norm_bp", rows[i].layer, rows[i].norm_bp, (double)sqrtl(bb), e_norm, &worst);
      near("cosine", rows[i].layer, rows[i].cosine, (double)(dot / sqrtl(aa * bb)),
           e_dot + 2 * e_norm, &worst);
      near("projection", rows[i].layer, rows[i].projection, (double)(dot / bb), e_dot + 2 * e_norm,
           &worst);
      ck_assert_msg(rows[i].cosine < 1 - 1e-6, "%s %s: cosine %.17g: r = h?", rules[t],
                    rows[i].layer, rows[i].cosine);
    }
    fprintf(stderr, "%s: alignment of %zu convs vs a separate BP step, worst error/bound %.3g\n",
            rules[t], n, worst);
    free(rows);
    setup_free(&rule);
    setup_free(&bp);
  }
}
END_TEST

START_TEST(test_align_exact_and_inert)
{
  struct { const char *rule; int include_bp; double want; } cases[] = {
      {"flip:all", 0, -1.0}, {"bp", 1, 1.0}, {"asa:all", 0, 0.0}};
  for (int t = 0; t < 3; t++) {
    setup a, b;
    setup_init(&a, cases[t].rule);
    setup_init(&b, cases[t].rule);
    align_row *rows = malloc(MAXROWS * sizeof *rows);
    const size_t n = align_step(&a, cases[t].include_bp, rows);
    align_step(&b, 0, NULL);
    ck_assert_uint_eq(n, (size_t)(2 * a.net.nblocks + 3 + cases[t].include_bp));
    for (size_t i = 0; i < n && cases[t].want != 0; i++) {
      /* r = -h (or h) through the same op: g_r = -g_h exactly, so <g_r, g_h> = -||g_h||^2
       * and only the square roots of the cosine round */
      ck_assert_msg(rows[i].projection == cases[t].want, "%s %s: projection %.17g",
                    cases[t].rule, rows[i].layer, rows[i].projection);
      ck_assert_msg(fabs(rows[i].cosine - cases[t].want) <= 4 * DBL_EPSILON,
                    "%s %s: cosine %.17g", cases[t].rule, rows[i].layer, rows[i].cosine);
      ck_assert(rows[i].norm_rule == rows[i].norm_bp);
    }
    for (size_t i = 0; i < n; i++)
      ck_assert_msg(fabs(rows[i].cosine) <= 1 + 4 * DBL_EPSILON, "%s: |cosine| %.17g > 1",
                    rows[i].layer, rows[i].cosine);
    /* recording changes nothing: every gradient is bit-identical to the unrecorded step */
    for (int p = 0; p < a.net.nparams; p++) {
      const aal_tensor *ga = a.net.params[p].grad, *gb = b.net.params[p].grad;
      if (ga != NULL)
        ck_assert_msg(memcmp(ga->data, gb->data, ga->size * sizeof *ga->data) == 0,
                      "%s: recording the alignment changed %s's gradient", cases[t].rule,
                      a.net.params[p].name);
    }
    free(rows);
    setup_free(&a);
    setup_free(&b);
  }
}
END_TEST

int main(void)
{
  seed = fd_test_seed();
  Suite *s = suite_create("li_resnet");
  TCase *tc = tcase_create("li");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_asa_closed_form);
  tcase_add_test(tc, test_asa_pm1_closed_form);
  tcase_add_test(tc, test_exact_values);
  tcase_add_test(tc, test_align_by_hand);
  tcase_add_test(tc, test_align_exact_and_inert);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
