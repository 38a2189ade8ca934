#include "sim/model/memory.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "sim/model/storage.h"

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

static void print_header(const aal_resnet_config *cfg, const aal_rule *rule,
                         aal_policy policy, int batch, FILE *out)
{
  char text[128], model[64];
  aal_rule_format(rule, text, sizeof text);
  aal_resnet_config_model_name(cfg, model, sizeof model);
  fprintf(out, "rule %s, %s (%s blocks %d,%d,%d,%d, width %d, %s stem, %d classes), batch %d, "
          "input %dx%dx%d, policy %s\n\n", text, model,
          cfg->block == AAL_BLOCK_BOTTLENECK ? "bottleneck" : "basic", cfg->blocks[0],
          cfg->blocks[1], cfg->blocks[2], cfg->blocks[3], cfg->base_width,
          aal_resnet_stem_name(cfg->stem), cfg->classes, batch, cfg->in_channels, cfg->in_size,
          cfg->in_size, aal_policy_name(policy));
}

/* One row per layer, in the order the tape first hears of it. */
static void print_table(const aal_storage_plan *plan, const aal_storage_plan *bp,
                        aal_policy policy, FILE *out)
{
  fprintf(out, "%-28s %14s %14s %14s %14s %8s\n", "layer", "bytes", "bytes@f32", "policy",
          "bp bytes@f32", "ratio");
  for (size_t i = 0; i < plan->count; i++) {
    const char *layer = plan->entries[i].layer;
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = strcmp(plan->entries[j].layer, layer) == 0;
    if (seen)
      continue;
    const size_t b = aal_storage_layer_bytes(plan, layer, -2);
    const size_t f = aal_storage_layer_bytes(plan, layer, -1);
    const size_t q = aal_storage_layer_bytes(plan, layer, (int)policy);
    const size_t p = aal_storage_layer_bytes(bp, layer, -1);
    if (p > 0)
      fprintf(out, "%-28s %14zu %14zu %14zu %14zu %8.3f\n", layer, b, f, q, p,
              (double)q / (double)p);
    else
      fprintf(out, "%-28s %14zu %14zu %14zu %14zu %8s\n", layer, b, f, q, p, "-");
  }
}

int aal_memory_report(const aal_resnet_config *cfg, const aal_rule *rule, aal_policy policy,
                      int batch, FILE *out, aal_memory_totals *totals, aal_error *err)
{
  aal_rule bp_rule;
  aal_storage_plan plan, bp;
  memset(&bp, 0, sizeof bp);
  int rc = aal_rule_parse("bp", &bp_rule, err);
  if (rc == AAL_OK)
    rc = aal_storage_plan_make(cfg, rule, batch, &plan, err);
  if (rc != AAL_OK)
    return rc;
  if ((rc = aal_storage_plan_make(cfg, &bp_rule, batch, &bp, err)) != AAL_OK) {
    aal_storage_plan_free(&plan);
    return rc;
  }
  aal_memory_totals t;
  t.bytes = aal_storage_layer_bytes(&plan, NULL, -2);
  t.bytes_f32 = aal_storage_layer_bytes(&plan, NULL, -1);
  t.bp_bytes = aal_storage_layer_bytes(&bp, NULL, -2);
  t.bp_bytes_f32 = aal_storage_layer_bytes(&bp, NULL, -1);
  t.policy_bytes = aal_storage_bytes(&plan, policy, &t.recompute_peak);
  t.bp_none = aal_storage_bytes(&bp, AAL_POLICY_NONE, NULL);
  aal_resnet net;
  if ((rc = aal_resnet_layout(&net, cfg, err)) != AAL_OK) {
    aal_storage_plan_free(&plan);
    aal_storage_plan_free(&bp);
    return rc;
  }
  t.params = aal_resnet_layout_param_count(&net);
  aal_resnet_free(&net);
  if (totals != NULL)
    *totals = t;
  if (out != NULL) {
    print_header(cfg, rule, policy, batch, out);
    print_table(&plan, &bp, policy, out);
    fprintf(out, "\n%-28s %14zu %14zu %14zu %14zu %8.3f\n", "total", t.bytes, t.bytes_f32,
            t.policy_bytes, t.bp_bytes_f32, (double)t.policy_bytes / (double)t.bp_bytes_f32);
    fprintf(out, "tape at float32: %.1f MiB (BP %.1f MiB), ratio to BP %.3f; at double: "
            "%.1f MiB (BP %.1f MiB), ratio %.3f\n", t.bytes_f32 / 1048576.0,
            t.bp_bytes_f32 / 1048576.0, (double)t.bytes_f32 / (double)t.bp_bytes_f32,
            t.bytes / 1048576.0, t.bp_bytes / 1048576.0, (double)t.bytes / (double)t.bp_bytes);
    fprintf(out, "activation memory after the forward pass, policy %s: %.3f GB (BP, policy "
            "none: %.3f GB; 1 GB = 1e9 bytes), compression %.3fx", aal_policy_name(policy),
            t.policy_bytes * 1e-9, t.bp_none * 1e-9,
            (double)t.bp_none / (double)t.policy_bytes);
    if (policy == AAL_POLICY_GCP || policy == AAL_POLICY_GCP_BLOCK)
      fprintf(out, "; the backward pass recomputes at most %.3f GB more at a time",
              t.recompute_peak * 1e-9);
    fprintf(out, "\nmodel state: %zu parameters; weights, gradients and SGD momentum at "
            "float32: %.3f GB\n", t.params, 12.0 * (double)t.params * 1e-9);
  }
  aal_storage_plan_free(&plan);
  aal_storage_plan_free(&bp);
  return AAL_OK;
}
