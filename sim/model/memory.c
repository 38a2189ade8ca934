#include "sim/model/memory.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

int aal_random_batch(const aal_resnet_config *cfg, int batch, unsigned long seed,
                     aal_tensor **x, int **labels, aal_error *err)
{
  *labels = NULL;
  if (batch < 1)
    return aal_fail(err, AAL_EINVAL, "--batch %d must be >= 1", batch);
  *x = aal_tensor_new4(batch, cfg->in_channels, cfg->in_size, cfg->in_size, err);
  if (*x == NULL)
    return err != NULL ? err->code : AAL_ENOMEM;
  *labels = malloc((size_t)batch * sizeof **labels);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (*labels == NULL || rng == NULL) {
    gsl_rng_free(rng);
    free(*labels);
    *labels = NULL;
    aal_tensor_release(*x);
    *x = NULL;
    return aal_fail(err, AAL_ENOMEM, "cannot allocate a batch of %d", batch);
  }
  gsl_rng_set(rng, seed);
  for (size_t i = 0; i < (*x)->size; i++)
    (*x)->data[i] = 4.0 * gsl_rng_uniform(rng) - 2.0;
  for (int n = 0; n < batch; n++)
    (*labels)[n] = (int)gsl_rng_uniform_int(rng, (unsigned long)cfg->classes);
  gsl_rng_free(rng);
  return AAL_OK;
}

static int forward_tape(aal_resnet *net, const aal_rule *rule, const aal_tensor *x,
                        const int *labels, aal_tape *tape, aal_error *err)
{
  aal_resnet_pass pass;
  int rc = aal_resnet_pass_init(&pass, net, rule, 1, 0, err);
  double loss;
  if (rc == AAL_OK)
    rc = aal_resnet_forward(net, &pass, x, labels, tape, &loss, NULL, err);
  return rc;
}

static void print_table(const aal_tape *tape, const aal_tape *bp, FILE *out)
{
  const size_t n = aal_tape_layers(tape, NULL, 0);
  const char **names = malloc((n ? n : 1) * sizeof *names);
  if (names == NULL)
    return;
  aal_tape_layers(tape, names, n);
  fprintf(out, "%-26s %14s %14s %14s %8s\n", "layer", "bytes", "bytes@f32", "bp bytes@f32",
          "ratio");
  for (size_t i = 0; i < n; i++) {
    const size_t b = aal_tape_layer_bytes(tape, names[i], 0);
    const size_t f = aal_tape_layer_bytes(tape, names[i], 1);
    const size_t p = aal_tape_layer_bytes(bp, names[i], 1);
    if (p > 0)
      fprintf(out, "%-26s %14zu %14zu %14zu %8.3f\n", names[i], b, f, p, (double)f / (double)p);
    else
      fprintf(out, "%-26s %14zu %14zu %14zu %8s\n", names[i], b, f, p, "-");
  }
  free(names);
}

int aal_memory_report(const aal_resnet_config *cfg, const aal_rule *rule, int batch,
                      unsigned long seed, FILE *out, aal_memory_totals *totals,
                      aal_error *err)
{
  aal_resnet net;
  aal_tensor *x = NULL;
  int *labels = NULL;
  aal_rule bp_rule;
  int rc = aal_rule_parse("bp", &bp_rule, err);
  if (rc == AAL_OK)
    rc = aal_resnet_init(&net, cfg, seed, err);
  if (rc != AAL_OK)
    return rc;
  aal_tape *tape = aal_tape_new(err), *bp = aal_tape_new(err);
  rc = (tape && bp) ? aal_random_batch(cfg, batch, seed, &x, &labels, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = forward_tape(&net, &bp_rule, x, labels, bp, err);
  if (rc == AAL_OK)
    rc = forward_tape(&net, rule, x, labels, tape, err);
  if (rc == AAL_OK) {
    aal_memory_totals t = {aal_tape_bytes(tape), aal_tape_bytes_f32(tape), aal_tape_bytes(bp),
                           aal_tape_bytes_f32(bp)};
    if (totals != NULL)
      *totals = t;
    if (out != NULL) {
      char text[128];
      aal_rule_format(rule, text, sizeof text);
      fprintf(out, "rule %s, ResNet (width %d, blocks %d,%d,%d,%d, %d classes), batch %d, "
              "input %dx%dx%d\n\n", text, cfg->base_width, cfg->blocks[0], cfg->blocks[1],
              cfg->blocks[2], cfg->blocks[3], cfg->classes, batch, cfg->in_channels,
              cfg->in_size, cfg->in_size);
      print_table(tape, bp, out);
      fprintf(out, "\n%-26s %14zu %14zu %14zu %8.3f\n", "total", t.bytes, t.bytes_f32,
              t.bp_bytes_f32, (double)t.bytes_f32 / (double)t.bp_bytes_f32);
      fprintf(out, "tape at float32: %.1f MiB (BP %.1f MiB), ratio to BP %.3f; "
              "at double: %.1f MiB (BP %.1f MiB), ratio %.3f\n", t.bytes_f32 / 1048576.0,
              t.bp_bytes_f32 / 1048576.0, (double)t.bytes_f32 / (double)t.bp_bytes_f32,
              t.bytes / 1048576.0, t.bp_bytes / 1048576.0, (double)t.bytes / (double)t.bp_bytes);
    }
  }
  aal_tape_free(tape);
  aal_tape_free(bp);
  aal_tensor_release(x);
  free(labels);
  aal_resnet_free(&net);
  return rc;
}
