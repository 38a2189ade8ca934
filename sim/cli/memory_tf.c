/* `aal memory --model vit-large|mixer-large|bert-large|transformer`: what a training step
 * of a Transformer-like model keeps for backward, per block and in total, under a rule
 * (bp, asa1..asa4) and a storage policy (none, mesa) (sim/model/tfmem.h). */
#include "sim/cli/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/model/tfmem.h"
#include "sim/cli/cli.h"

int aal_memory_tf_model(int argc, char **argv)
{
  const char *model = NULL;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
      model = argv[++i];
    else if (strncmp(argv[i], "--model=", 8) == 0)
      model = argv[i] + 8;
  }
  aal_tfmem_model m;
  return model != NULL && aal_tfmem_model_parse(model, &m, NULL) == AAL_OK;
}

/* One row per group (embed, blockN / encN / decN, head; a group's entries are
 * consecutive): the bytes first kept there under BP and under the policy. */
static int print_groups(const aal_tfmem_plan *plan, aal_tfmem_policy p, aal_error *err)
{
  size_t *bp = malloc(plan->count * sizeof *bp), *pol = malloc(plan->count * sizeof *pol);
  size_t bp_total = 0, total = 0;
  int rc = bp != NULL && pol != NULL
               ? AAL_OK
               : aal_fail(err, AAL_ENOMEM, "memory plan: %zu entries", plan->count);
  if (rc == AAL_OK)
    rc = aal_tfmem_counted(plan, (aal_tfmem_policy){0, 0}, bp, &bp_total, err);
  if (rc == AAL_OK)
    rc = aal_tfmem_counted(plan, p, pol, &total, err);
  if (rc == AAL_OK) {
    char name[32];
    aal_tfmem_policy_format(p, name, sizeof name);
    printf("%-10s %16s %16s %8s\n", "group", "bp bytes", name, "ratio");
    size_t a = 0, b = 0;
    for (size_t i = 0; i < plan->count; i++) {
      const char *g = plan->entries[i].group;
      a += bp[i];
      b += pol[i];
      if (i + 1 < plan->count && strcmp(plan->entries[i + 1].group, g) == 0)
        continue;
      printf("%-10s %16zu %16zu %7.3fx\n", g, a, b, b > 0 ? (double)a / (double)b : 0.0);
      a = b = 0;
    }
    printf("%-10s %16zu %16zu %7.3fx\n\n", "total", bp_total, total,
           (double)bp_total / (double)total);
  }
  free(bp);
  free(pol);
  return rc;
}

static int print_entries(const aal_tfmem_plan *plan, aal_tfmem_policy p, aal_error *err)
{
  static const char *const kinds[] = {"values", "stats", "mask", "index"};
  size_t *bytes = malloc(plan->count * sizeof *bytes), total;
  if (bytes == NULL)
    return aal_fail(err, AAL_ENOMEM, "memory plan: %zu entries", plan->count);
  int rc = aal_tfmem_counted(plan, p, bytes, &total, err);
  if (rc == AAL_OK) {
    printf("%-32s %-12s %-6s %12s %7s %4s %4s %14s\n", "layer", "slot", "kind", "elements",
           "id", "asa", "mesa", "bytes");
    for (size_t i = 0; i < plan->count; i++) {
      const aal_tfmem_entry *e = &plan->entries[i];
      printf("%-32s %-12s %-6s %12zu %7ld %4d %4s %14zu\n", e->layer, e->slot, kinds[e->kind],
             e->elements, e->id, e->asa, e->mesa_only ? "only" : e->mesa ? "yes" : "no",
             bytes[i]);
    }
    printf("\n");
  }
  free(bytes);
  return rc;
}

/* Every rule under both storage policies, against BP's bytes. */
static int print_policies(const aal_tfmem_plan *plan, aal_error *err)
{
  size_t bp = 0;
  int rc = aal_tfmem_counted(plan, (aal_tfmem_policy){0, 0}, NULL, &bp, err);
  for (int mesa = 0; mesa < 2 && rc == AAL_OK; mesa++)
    for (int asa = 0; asa <= 4 && rc == AAL_OK; asa++) {
      size_t b = 0;
      char name[32];
      aal_tfmem_policy_format((aal_tfmem_policy){asa, mesa}, name, sizeof name);
      rc = aal_tfmem_counted(plan, (aal_tfmem_policy){asa, mesa}, NULL, &b, err);
      if (rc == AAL_OK)
        printf("  %-10s %10.3f GB %8.3fx\n", name, (double)b / 1e9, (double)bp / (double)b);
    }
  return rc;
}

/* An option given for a model it does not apply to: exit 2, naming it. */
static int refuse_foreign(const cli_option *opts, int argc, char **argv, aal_tfmem_model m)
{
  static const struct { const char *name; unsigned models; } only[] = {
      {"heads", 1u << AAL_TFMEM_VIT | 1u << AAL_TFMEM_BERT | 1u << AAL_TFMEM_TRANSFORMER},
      {"token-mlp", 1u << AAL_TFMEM_MIXER},
      {"seq", 1u << AAL_TFMEM_BERT | 1u << AAL_TFMEM_TRANSFORMER},
      {"vocab", 1u << AAL_TFMEM_BERT | 1u << AAL_TFMEM_TRANSFORMER},
      {"image", 1u << AAL_TFMEM_VIT | 1u << AAL_TFMEM_MIXER},
      {"patch", 1u << AAL_TFMEM_VIT | 1u << AAL_TFMEM_MIXER},
      {"classes", 1u << AAL_TFMEM_VIT | 1u << AAL_TFMEM_MIXER | 1u << AAL_TFMEM_BERT}};
  for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
    if (!(only[i].models & 1u << m) && cli_given(opts, argc, argv, 2, only[i].name)) {
      fprintf(stderr, "aal memory: --%s does not apply to --model %s\n", only[i].name,
              aal_tfmem_model_name(m));
      return 2;
    }
  return 0;
}

int aal_cmd_memory_tf(int argc, char **argv)
{
  const char *model_text = NULL, *rule_text = "bp", *policy_text = "none", *autograd = "1.8";
  int csv = 0, entries = 0;
  aal_tfmem_model m = AAL_TFMEM_VIT;
  for (int i = 2; i < argc; i++) /* the model's defaults first: the options override them */
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
      (void)aal_tfmem_model_parse(argv[i + 1], &m, NULL);
    else if (strncmp(argv[i], "--model=", 8) == 0)
      (void)aal_tfmem_model_parse(argv[i] + 8, &m, NULL);
  aal_tfmem_config cfg;
  aal_tfmem_config_default(&cfg, m);
  const cli_option opts[] = {
      {"model", CLI_STRING, &model_text, "vit-large, mixer-large, bert-large or transformer "
       "(resnet18..resnet152: see aal memory --help)"},
      {"rule", CLI_STRING, &rule_text, "bp (default), asa1, asa2, asa3 or asa4 (Figure 5)"},
      {"policy", CLI_STRING, &policy_text, "none (default: float32 as autograd keeps it) or "
       "mesa (8-bit activations)"},
      {"batch", CLI_INT, &cfg.batch, "samples (default: the paper's: vit 512, mixer 256, "
       "bert 32, transformer 40 pairs of 100 tokens)"},
      {"depth", CLI_INT, &cfg.depth, "blocks (default 24; transformer: 6 encoder and 6 "
       "decoder layers)"},
      {"width", CLI_INT, &cfg.width, "hidden size (default 1024; transformer 512)"},
      {"heads", CLI_INT, &cfg.heads, "attention heads (default 16; transformer 8; not mixer)"},
      {"mlp-ratio", CLI_INT, &cfg.mlp_ratio, "feed-forward width over the hidden size "
       "(default 4; mixer: the channel MLP)"},
      {"token-mlp", CLI_INT, &cfg.token_mlp, "mixer: the token MLP's width (default 512)"},
      {"seq", CLI_INT, &cfg.seq, "bert, transformer: tokens per sample (default 128; 100)"},
      {"image", CLI_INT, &cfg.image, "vit, mixer: image height and width (default 224)"},
      {"patch", CLI_INT, &cfg.patch, "vit, mixer: patch size (default 32; mixer 16)"},
      {"vocab", CLI_INT, &cfg.vocab, "bert: word pieces (default 30522); transformer: the "
       "vocabulary (default 24478, fitted: docs/RESULTS.md)"},
      {"classes", CLI_INT, &cfg.classes, "vit, mixer, bert: outputs (default 100; bert 2)"},
      {"autograd", CLI_STRING, &autograd, "what PyTorch's autograd keeps: 1.8 (default, the "
       "authors': softmax and log-softmax keep input and output) or 1.11 (and later: the "
       "output only)"},
      {"entries", CLI_FLAG, &entries, "also list every saved tensor: layer, slot, kind, "
       "elements, id, asa level, mesa"},
      {"csv", CLI_FLAG, &csv, "one CSV line instead of the table: model,depth,width,heads,"
       "ffn,tokens,batch,rule,policy,bytes,bp_bytes,compression,params"},
      {0}};
  int rc = cli_parse(
      "memory", "--model vit-large|mixer-large|bert-large|transformer [options]\n\n"
      "Bytes a training step of the authors' Transformer-like models keeps for backward at\n"
      "the end of the forward pass (what PyTorch's autograd saves; shapes only), per\n"
      "block and in total, under a rule and a storage policy, beside BP's.\n\n"
      "Rules (the authors' Figure 5, per model file): asa1 the second feed-forward linear\n"
      "(mixer: the channel MLP's), asa2 both feed-forward linears, asa3 also the attention\n"
      "output projection (mixer: the token MLP's second linear), asa4 also query, key and\n"
      "value (mixer: the token MLP's first); an ASA linear keeps one bit of its input.\n"
      "Policies: none (float32, bool dropout masks, int64 token ids); mesa (Mesa's 8-bit\n"
      "codes for what its converter replaces: linear, LayerNorm, GELU, softmax (input and\n"
      "output), the attention products where the model uses Mesa's MatMul).\n"
      "GB here is 1e9 bytes; docs/DESIGN.md lists every assumption and its source.",
      opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  aal_error err;
  aal_error_clear(&err);
  aal_tfmem_policy p = {0, 0};
  if (aal_tfmem_model_parse(model_text, &m, &err) != AAL_OK ||
      aal_tfmem_rule_parse(rule_text, &p.asa, &err) != AAL_OK ||
      aal_tfmem_storage_parse(policy_text, &p.mesa, &err) != AAL_OK ||
      aal_tfmem_autograd_parse(autograd, &cfg.softmax_input, &err) != AAL_OK ||
      aal_tfmem_config_check(&cfg, &err) != AAL_OK) {
    fprintf(stderr, "aal memory: %s\n", err.msg);
    return 2;
  }
  if (refuse_foreign(opts, argc, argv, m) != 0)
    return 2;
  aal_tfmem_plan plan;
  rc = aal_tfmem_plan_make(&cfg, &plan, &err);
  size_t bytes = 0, bp = 0;
  if (rc == AAL_OK)
    rc = aal_tfmem_counted(&plan, p, NULL, &bytes, &err);
  if (rc == AAL_OK)
    rc = aal_tfmem_counted(&plan, (aal_tfmem_policy){0, 0}, NULL, &bp, &err);
  const size_t params = aal_tfmem_params(&cfg);
  const int ffn = cfg.width * cfg.mlp_ratio;
  if (rc == AAL_OK && csv) {
    printf("%s,%d,%d,%d,%d,%d,%d,%s,%s,%zu,%zu,%.6f,%zu\n", aal_tfmem_model_name(m),
           cfg.depth, cfg.width, m == AAL_TFMEM_MIXER ? 0 : cfg.heads, ffn,
           aal_tfmem_tokens(&cfg), cfg.batch, rule_text, policy_text, bytes, bp,
           (double)bp / (double)bytes, params);
  } else if (rc == AAL_OK) {
    printf("%s: depth %d, width %d, ", aal_tfmem_model_name(m), cfg.depth, cfg.width);
    if (m == AAL_TFMEM_MIXER)
      printf("token MLP %d, channel MLP %d, ", cfg.token_mlp, ffn);
    else
      printf("%d heads, feed-forward %d, ", cfg.heads, ffn);
    printf("%d tokens a sample, batch %d; rule %s, policy %s\n", aal_tfmem_tokens(&cfg),
           cfg.batch, rule_text, policy_text);
    printf("kept for backward after the forward pass (%zu tensors' holders)\n\n", plan.count);
    if (entries)
      rc = print_entries(&plan, p, &err);
    if (rc == AAL_OK)
      rc = print_groups(&plan, p, &err);
    if (rc == AAL_OK) {
      printf("every rule and policy (GB = 1e9 bytes, compression against bp):\n");
      rc = print_policies(&plan, &err);
    }
    if (rc == AAL_OK)
      printf("\nparameters: %zu (%.3f GB at float32)\n", params, 4.0 * (double)params / 1e9);
  }
  aal_tfmem_plan_free(&plan);
  return cli_report("memory", rc, &err);
}
