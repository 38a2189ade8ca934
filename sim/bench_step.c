/* Benchmark of one full ResNet training step per learning rule. */
#include "aal_bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "aal_memory.h"
#include "aal_resnet.h"

double aal_bench_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void aal_bench_step_opts_default(aal_bench_step_opts *opts)
{
  opts->batch = 32;
  opts->repeats = 2;
  opts->dgemm_n = 2048;
  opts->width = 1.0;
  opts->rules = "bp ara:2,2,2,2 asa:2,2,2,2";
  opts->seed = 1;
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
 * stem's) backward-data, and the fc's three products. */
static double step_flops(const aal_resnet *net, long batch)
{
  long h, h1, hd;
  double total = 2.0 * conv_flops(net, &net->stem, batch, net->cfg.in_size, &h);
  for (int b = 0; b < net->nblocks; b++) {
    const aal_block *blk = &net->blocks[b];
    total += 3.0 * conv_flops(net, &blk->conv1, batch, h, &h1);
    total += 3.0 * conv_flops(net, &blk->conv2, batch, h1, &h1);
    if (blk->has_downsample)
      total += 3.0 * conv_flops(net, &blk->downsample, batch, h, &hd);
    h = h1;
  }
  const aal_tensor *fc = net->params[net->fc_weight].value;
  return total + 3.0 * 2.0 * (double)batch * (double)fc->size;
}

static int one_step(aal_resnet *net, const aal_rule *rule, const aal_tensor *x,
                    const int *labels, unsigned long step, aal_error *err)
{
  aal_resnet_pass pass;
  aal_tape *tape = aal_tape_new(err);
  double loss;
  int rc = tape ? aal_resnet_pass_init(&pass, net, rule, 1, step, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_resnet_forward(net, &pass, x, labels, tape, &loss, NULL, err);
  if (rc == AAL_OK)
    rc = aal_resnet_backward(net, &pass, tape, labels, err);
  if (rc == AAL_OK)
    rc = aal_resnet_sgd_step(net, 1e-3, 0.9, 1e-4, err);
  aal_tape_free(tape);
  return rc;
}

static int time_rule(const aal_bench_step_opts *o, const aal_resnet_config *cfg,
                     const char *text, double *best, aal_error *err)
{
  aal_rule rule;
  aal_resnet net;
  aal_tensor *x = NULL;
  int *labels = NULL;
  int rc = aal_rule_parse(text, &rule, err);
  if (rc == AAL_OK)
    rc = aal_resnet_init(&net, cfg, o->seed, err);
  if (rc != AAL_OK)
    return rc;
  rc = aal_random_batch(cfg, o->batch, o->seed, &x, &labels, err);
  if (rc == AAL_OK)
    rc = one_step(&net, &rule, x, labels, 0, err);  /* warm-up */
  for (int r = 0; r < o->repeats && rc == AAL_OK; r++) {
    const double t0 = aal_bench_now();
    rc = one_step(&net, &rule, x, labels, (unsigned long)r + 1, err);
    const double t = aal_bench_now() - t0;
    if (r == 0 || t < *best)
      *best = t;
  }
  aal_tensor_release(x);
  free(labels);
  aal_resnet_free(&net);
  return rc;
}

int aal_bench_step(const aal_bench_step_opts *o, FILE *out, aal_error *err)
{
  if (o->batch < 2 || o->repeats < 1)
    return aal_fail(err, AAL_EINVAL, "bench step: --batch %d must be >= 2, --repeats %d >= 1",
                    o->batch, o->repeats);
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  int rc = aal_resnet_config_set_width(&cfg, o->width, err);
  aal_resnet net;
  if (rc == AAL_OK)
    rc = aal_resnet_init(&net, &cfg, o->seed, err);
  if (rc != AAL_OK)
    return rc;
  const double flops = step_flops(&net, o->batch);
  aal_resnet_free(&net);
  double dgemm = 0;
  if ((rc = aal_bench_dgemm_gflops(o->dgemm_n, 3, o->seed, &dgemm, err)) != AAL_OK)
    return rc;
  fprintf(out, "ResNet-18 (width %g) training step in double, batch %d, OpenBLAS threads %d\n"
          "dgemm %dx%dx%d: %.1f GFLOP/s; step: %.2f GFLOP (conv + fc)\n\n", o->width, o->batch,
          openblas_get_num_threads(), o->dgemm_n, o->dgemm_n, o->dgemm_n, dgemm, flops * 1e-9);
  fprintf(out, "%-40s %10s %10s %10s %10s %10s\n", "rule", "s/step", "images/s", "GFLOP/s",
          "vs dgemm", "vs bp");
  char rules[512];
  snprintf(rules, sizeof rules, "%s", o->rules);
  double first = 0;
  char *save = NULL;
  for (char *t = strtok_r(rules, " ", &save); t != NULL && rc == AAL_OK;
       t = strtok_r(NULL, " ", &save)) {
    double best = 0;
    if ((rc = time_rule(o, &cfg, t, &best, err)) != AAL_OK)
      break;
    if (first == 0)
      first = best;
    fprintf(out, "%-40s %10.3f %10.2f %10.2f %10.3f %10.3f\n", t, best, o->batch / best,
            flops / best * 1e-9, flops / best * 1e-9 / dgemm, best / first);
    fflush(out);
  }
  return rc;
}
