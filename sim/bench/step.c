/* Benchmark of one full ResNet training step per learning rule. */
#include "sim/bench/bench.h"
#include "sim/bench/profile.h"
#include "sim/core/clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "sim/model/align.h"
#include "sim/model/li_record.h"
#include "sim/model/memory.h"
#include "sim/ops/ops.h"
#include "sim/model/resnet.h"

void aal_bench_step_opts_default(aal_bench_step_opts *opts)
{
  opts->batch = 32;
  opts->repeats = 3;
  opts->dgemm_n = 2048;
  opts->width = 1.0;
  opts->model = "resnet18";
  opts->stem = "tiny";
  opts->size = 64;
  opts->rules = "bp ara:2,2,2,2 asa:2,2,2,2";
  opts->seed = 1;
  opts->li = 0;
  opts->backend = "ref";
  opts->profile = 0;
}

static double conv_flops(const aal_resnet *net, const aal_conv_bn *u, long batch, long h_in,
                         long *h_out)
{
  const aal_tensor *w = net->params[u->weight].value;
  *h_out = (h_in + 2 * u->pad - (long)w->shape[2]) / u->stride + 1;
  return 2.0 * (double)batch * (double)w->shape[0] * (double)(*h_out * *h_out) *
         (double)(w->shape[1] * w->shape[2] * w->shape[3]);
}

/* FLOPs of one training step: every conv's forward, backward-filter and (except the
 * stem's) backward-data, and the fc's three products.  A block's main-path convs each
 * read the previous one's output, its shortcut the block's input. */
static double step_flops(const aal_resnet *net, long batch)
{
  long o;
  double total = 2.0 * conv_flops(net, &net->stem, batch, net->cfg.in_size, &o);
  for (int b = 0; b < net->nblocks; b++) {
    const aal_block *blk = &net->blocks[b];
    const aal_conv_bn *units[4];
    const int n = aal_block_convs(blk, units);
    long in = blk->in_size;
    for (int k = 0; k < n; k++) {
      const int shortcut = units[k] == &blk->downsample;
      total += 3.0 * conv_flops(net, units[k], batch, shortcut ? blk->in_size : in, &o);
      if (!shortcut)
        in = o;
    }
  }
  const aal_tensor *fc = net->params[net->fc_weight].value;
  return total + 3.0 * 2.0 * (double)batch * (double)fc->size;
}

/* One step; with li_sink non-NULL the learning indicator and the gradient alignment are
 * recorded into it, as `aal train --li-every` does on the steps it measures. */
static int one_step(aal_resnet *net, const aal_ops *ops, const aal_rule *rule,
                    const aal_tensor *x, const int *labels, unsigned long step, FILE *li_sink,
                    aal_error *err)
{
  aal_resnet_pass pass;
  aal_li_recorder rec;
  aal_align_recorder align;
  aal_tape *tape = aal_tape_new(err);
  double loss;
  int rc = tape ? aal_resnet_pass_init(&pass, net, rule, 1, step, err) : AAL_ENOMEM;
  pass.ops = ops;
  if (rc == AAL_OK) /* a no-op after the first step */
    rc = aal_resnet_move(net, aal_ops_or_ref(ops), err);
  if (rc == AAL_OK && li_sink != NULL)
    rc = aal_li_recorder_attach(&rec, &pass, li_sink, li_sink, (long)step, 0, err);
  if (rc == AAL_OK && li_sink != NULL)
    rc = aal_align_recorder_attach(&align, &pass, li_sink, (long)step, 0, err);
  if (rc == AAL_OK)
    rc = aal_resnet_forward(net, &pass, x, labels, tape, &loss, NULL, err);
  if (li_sink != NULL)
    rc = aal_li_recorder_finish(&rec, rc, err);
  if (rc == AAL_OK)
    rc = aal_resnet_backward(net, &pass, tape, labels, err);
  if (li_sink != NULL)
    rc = aal_align_recorder_finish(&align, rc, err);
  if (rc == AAL_OK)
    rc = aal_resnet_sgd_step_ops(net, ops, 1e-3, 0.9, 1e-4, err);
  aal_tape_free(tape);
  return rc;
}

/* One rule's network, batch and timings. */
typedef struct {
  char text[160];
  aal_rule rule;
  aal_resnet net;
  int ready;
  aal_tensor *x;
  int *labels;
  const aal_ops *ops;
  double *times;     /* [repeats] */
  double *li_times;  /* [repeats], the same step with LI recorded */
} rule_bench;

static int rule_bench_open(rule_bench *b, const aal_bench_step_opts *o, const aal_ops *ops,
                           const aal_resnet_config *cfg, const char *text, aal_error *err)
{
  memset(b, 0, sizeof *b);
  b->ops = ops;
  snprintf(b->text, sizeof b->text, "%s", text);
  int rc = aal_rule_parse(text, &b->rule, err);
  if (rc == AAL_OK && (rc = aal_resnet_init(&b->net, cfg, o->seed, err)) == AAL_OK)
    b->ready = 1;
  if (rc == AAL_OK)
    rc = aal_random_batch(cfg, o->batch, o->seed, &b->x, &b->labels, err);
  b->times = calloc((size_t)o->repeats, sizeof *b->times);
  b->li_times = calloc((size_t)o->repeats, sizeof *b->li_times);
  if (rc == AAL_OK && (b->times == NULL || b->li_times == NULL))
    rc = aal_fail(err, AAL_ENOMEM, "bench step: timings");
  if (rc == AAL_OK)
    rc = one_step(&b->net, ops, &b->rule, b->x, b->labels, 0, NULL, err);  /* warm-up */
  return rc;
}

static void rule_bench_close(rule_bench *b)
{
  if (b->ready)
    aal_resnet_free(&b->net);
  aal_tensor_release(b->x);
  free(b->labels);
  free(b->times);
  free(b->li_times);
}

static int compare_double(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, compare_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Rounds: every rule once per round, in turn, so that a drift of the machine's speed
 * hits all rules alike; the ratio to the first rule is taken round by round.  With prof,
 * the ops of rule i's timed steps are timed into slot i (not the LI steps). */
static int run_rounds(rule_bench *b, int nrules, const aal_bench_step_opts *o, FILE *li_sink,
                      aal_prof *prof, aal_error *err)
{
  int rc = AAL_OK;
  for (int r = 0; r < o->repeats && rc == AAL_OK; r++)
    for (int i = 0; i < nrules && rc == AAL_OK; i++) {
      if (prof != NULL)
        aal_prof_select(prof, i);
      double t0 = aal_clock_now();
      rc = one_step(&b[i].net, b[i].ops, &b[i].rule, b[i].x, b[i].labels, (unsigned long)r + 1,
                    NULL, err);
      b[i].times[r] = aal_clock_now() - t0;
      if (prof != NULL)
        aal_prof_select(prof, -1);
      if (rc != AAL_OK || li_sink == NULL)
        continue;
      t0 = aal_clock_now();
      rc = one_step(&b[i].net, b[i].ops, &b[i].rule, b[i].x, b[i].labels, (unsigned long)r + 1,
                    li_sink, err);
      b[i].li_times[r] = aal_clock_now() - t0;
    }
  return rc;
}

static void print_rows(rule_bench *b, int nrules, const aal_bench_step_opts *o, double flops,
                       double dgemm, double sgemm, FILE *out)
{
  double *ratio = malloc((size_t)o->repeats * sizeof *ratio);
  double *copy = malloc((size_t)o->repeats * sizeof *copy);
  if (ratio == NULL || copy == NULL) {
    free(ratio);
    free(copy);
    return;
  }
  fprintf(out, "%-28s %9s %9s %9s %9s %9s %9s %9s %9s\n", "rule", "median s", "min s",
          "images/s", "GFLOP/s", "vs dgemm", "vs sgemm", "vs first", "LI cost");
  for (int i = 0; i < nrules; i++) {
    for (int r = 0; r < o->repeats; r++) {
      ratio[r] = b[i].times[r] / b[0].times[r];
      copy[r] = b[i].times[r];
    }
    const double med = median(copy, o->repeats), best = copy[0];
    fprintf(out, "%-28s %9.3f %9.3f %9.2f %9.2f %9.3f", b[i].text, med, best,
            o->batch / med, flops / med * 1e-9, flops / med * 1e-9 / dgemm);
    if (sgemm > 0)
      fprintf(out, " %9.3f", flops / med * 1e-9 / sgemm);
    else
      fprintf(out, " %9s", "-");
    fprintf(out, " %9.3f", median(ratio, o->repeats));
    if (o->li) {
      for (int r = 0; r < o->repeats; r++)
        ratio[r] = b[i].li_times[r] / b[i].times[r] - 1.0;
      fprintf(out, " %8.1f%%", 100.0 * median(ratio, o->repeats));
    }
    fputc('\n', out);
  }
  fprintf(out, "\n(median of %d interleaved rounds; 'vs first' is the median of the per-round "
          "time ratios to the first rule;\n 'LI cost' the median extra time of the same step "
          "with the learning indicator and the gradient alignment recorded)\n", o->repeats);
  free(ratio);
  free(copy);
}

/* --profile: each rule's time per op over its timed steps. */
static void print_profile(const rule_bench *b, int nrules, const aal_bench_step_opts *o,
                          const aal_prof *prof, FILE *out)
{
  for (int i = 0; i < nrules; i++) {
    double total = 0;
    for (int r = 0; r < o->repeats; r++)
      total += b[i].times[r];
    fprintf(out, "\ntime per op, %s (wall time of each call, mean over the %d timed steps):\n",
            b[i].text, o->repeats);
    aal_prof_print(prof, i, o->repeats, total, out);
  }
}

/* The step's op table: the backend's (aal_ops_open) or, with --profile, the adapter over
 * the timed copy of the backend (sim/bench/profile.h). */
typedef struct {
  aal_ops_handle h;
  aal_prof *prof;
  aal_ops ops;
  const aal_ops *table;
} step_ops;

static int step_ops_open(const aal_bench_step_opts *o, int slots, step_ops *s, aal_error *err)
{
  memset(s, 0, sizeof *s);
  if (!o->profile) {
    const int rc = aal_ops_open(o->backend, &s->h, err);
    s->table = s->h.table;
    return rc;
  }
  if (o->backend == NULL || strcmp(o->backend, "ref") == 0)
    return aal_fail(err, AAL_EINVAL, "bench step: --profile times a backend's ops (cpu32, "
                    "dnnl, cuda), not the reference table");
  int rc = aal_prof_open(o->backend, slots, &s->prof, err);
  if (rc == AAL_OK && (rc = aal_ops_from_backend(aal_prof_table(s->prof), &s->ops, err)) != AAL_OK) {
    aal_prof_close(s->prof);
    s->prof = NULL;
  }
  s->table = &s->ops;
  return rc;
}

static void step_ops_close(step_ops *s)
{
  if (s->prof == NULL) {
    aal_ops_close(&s->h);
    return;
  }
  aal_ops_free(&s->ops);
  aal_prof_close(s->prof);
}

int aal_bench_step(const aal_bench_step_opts *o, FILE *out, aal_error *err)
{
  if (o->batch < 2 || o->repeats < 1)
    return aal_fail(err, AAL_EINVAL, "bench step: --batch %d must be >= 2, --repeats %d >= 1",
                    o->batch, o->repeats);
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  int rc = aal_resnet_config_set_model(&cfg, o->model, err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_stem(&cfg, o->stem, err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_width(&cfg, o->width, err);
  cfg.in_size = o->size;
  aal_resnet net;
  if (rc == AAL_OK)
    rc = aal_resnet_init(&net, &cfg, o->seed, err);
  if (rc != AAL_OK)
    return rc;
  const double flops = step_flops(&net, o->batch);
  aal_resnet_free(&net);
  double dgemm = 0, sgemm = 0;
  step_ops ops;
  if ((rc = step_ops_open(o, 8, &ops, err)) != AAL_OK)
    return rc;
  rc = aal_bench_dgemm_gflops(o->dgemm_n, 3, o->seed, &dgemm, err);
  if (rc == AAL_OK && ops.table->precision_bits == 24)
    rc = aal_bench_sgemm_gflops(o->dgemm_n, 3, o->seed, &sgemm, err);
  if (rc != AAL_OK) {
    step_ops_close(&ops);
    return rc;
  }
  char model[64];
  aal_resnet_config_model_name(&cfg, model, sizeof model);
  fprintf(out, "%s (%s stem, width %g, %dx%d) training step on backend %s (%d-bit), batch %d, "
          "OpenBLAS threads %d\ndgemm %dx%dx%d: %.1f GFLOP/s", model,
          aal_resnet_stem_name(cfg.stem), o->width, cfg.in_size, cfg.in_size, ops.table->name,
          ops.table->precision_bits, o->batch, openblas_get_num_threads(), o->dgemm_n,
          o->dgemm_n, o->dgemm_n, dgemm);
  if (sgemm > 0)
    fprintf(out, "; sgemm: %.1f GFLOP/s", sgemm);
  fprintf(out, "; step: %.2f GFLOP (conv + fc)\n\n", flops * 1e-9);
  char rules[512];
  snprintf(rules, sizeof rules, "%s", o->rules);
  rule_bench b[8];
  int nrules = 0;
  char *save = NULL;
  for (char *t = strtok_r(rules, " ", &save); t != NULL && rc == AAL_OK;
       t = strtok_r(NULL, " ", &save)) {
    if (nrules == 8) {
      rc = aal_fail(err, AAL_EINVAL, "bench step: at most 8 rules");
      break;
    }
    rc = rule_bench_open(&b[nrules], o, ops.table, &cfg, t, err);
    nrules++;
  }
  if (rc == AAL_OK && nrules == 0)
    rc = aal_fail(err, AAL_EINVAL, "bench step: --rules is empty");
  FILE *li_sink = NULL;
  if (rc == AAL_OK && o->li && (li_sink = tmpfile()) == NULL)
    rc = aal_fail(err, AAL_EIO, "bench step: cannot open a temporary file for the LI rows");
  if (rc == AAL_OK)
    rc = run_rounds(b, nrules, o, li_sink, ops.prof, err);
  if (li_sink != NULL)
    fclose(li_sink);
  if (rc == AAL_OK)
    print_rows(b, nrules, o, flops, dgemm, sgemm, out);
  if (rc == AAL_OK && ops.prof != NULL)
    print_profile(b, nrules, o, ops.prof, out);
  for (int i = 0; i < nrules; i++)
    rule_bench_close(&b[i]);
  step_ops_close(&ops);
  return rc;
}
