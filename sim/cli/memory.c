/* `aal memory`: the bytes a rule keeps on the tape per layer, beside BP's
 * (sim/model/memory.h). */
#include "sim/cli/commands.h"

#include <stdio.h>

#include "sim/model/memory.h"
#include "sim/model/resnet.h"
#include "sim/model/rules.h"
#include "sim/model/storage.h"
#include "sim/cli/cli.h"

/* The model options of the ResNet to measure. */
typedef struct {
  const char *model, *stem, *blocks;
  double width;
  int classes, size;
} model_args;

static void model_args_default(model_args *m)
{
  m->model = "resnet18";
  m->stem = "tiny";
  m->blocks = NULL;
  m->width = 1.0;
  m->classes = 200;
  m->size = 64;
}

static int model_config(const char *cmd, const model_args *m, aal_resnet_config *cfg)
{
  aal_error err;
  aal_error_clear(&err);
  aal_resnet_config_default(cfg);
  int rc = aal_resnet_config_set_model(cfg, m->model, &err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_stem(cfg, m->stem, &err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_width(cfg, m->width, &err);
  if (rc == AAL_OK && m->blocks != NULL)
    rc = aal_resnet_config_set_blocks(cfg, m->blocks, &err);
  cfg->classes = m->classes;
  cfg->in_size = m->size;
  /* the layout checks the rest (sizes, classes) and names the option */
  aal_resnet net;
  if (rc == AAL_OK && (rc = aal_resnet_layout(&net, cfg, &err)) == AAL_OK)
    aal_resnet_free(&net);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal %s: %s\n", cmd, err.msg);
    return 2;
  }
  return 0;
}

int aal_cmd_memory(int argc, char **argv)
{
  if (aal_memory_tf_model(argc, argv)) /* a Transformer-like model: memory_tf.c */
    return aal_cmd_memory_tf(argc, argv);
  model_args m;
  model_args_default(&m);
  const char *rule_text = "ara:2,2,2,2", *policy_text = "none";
  int batch = 32, csv = 0;
  unsigned long seed = 1;
  const cli_option opts[] = {
      {"rule", CLI_STRING, &rule_text, "learning rule (default ara:2,2,2,2)"},
      {"policy", CLI_STRING, &policy_text, "storage policy: none (default), gcp, actnn, gcp-block"},
      {"batch", CLI_INT, &batch, "images per batch (default 32)"},
      {"model", CLI_STRING, &m.model, "resnet18 (default), resnet34, resnet50, resnet101, resnet152; "
       "vit-large, mixer-large, bert-large, transformer: see aal memory --model vit-large --help"},
      {"stem", CLI_STRING, &m.stem, "tiny (default: 3x3 s2 conv) or imagenet (7x7 s2 conv, 3x3 s2 max pool)"},
      {"width", CLI_DOUBLE, &m.width, "width multiplier (default 1: 64 channels in the first stage)"},
      {"blocks", CLI_STRING, &m.blocks, "blocks per stage (default: the model's; ResNet-34: 3,4,6,3)"},
      {"classes", CLI_INT, &m.classes, "classes (default 200)"},
      {"size", CLI_INT, &m.size, "input height and width (default 64)"},
      {"csv", CLI_FLAG, &csv, "one CSV line instead of the table: model,stem,size,batch,"
       "policy,depth,width,bytes,bp_bytes,compression,params,rule (bytes: under the policy; "
       "bp_bytes: BP's under none; the rule last: it has commas)"},
      {"seed", CLI_ULONG, &seed, "accepted for compatibility; the report depends on shapes only"},
      {0}};
  int rc = cli_parse("memory", "[options]\n\nBytes a training step keeps for backward at the "
                     "end of the forward pass, per layer\nand in total, at double, at float32 "
                     "and under a storage policy, beside BP's.\nComputed from the shapes (the "
                     "tape's entries without their values), so ResNet-152\nat batch 512 and "
                     "224x224 takes moments.\n\nRules: bp, "
                     "ara:K1,K2,K3,K4, asa:K1,K2,K3,K4[;eps=E;lr_expansion=X;decode=pm1],\n"
                     "asa:all[;...], noise[:K...|:all], flip[:K...|:all].  The bottleneck "
                     "models\n(resnet50, 101, 152) lead with a plain block, as the authors' "
                     "code does; the k\nvalues are for the four groups after it.\n"
                     "ASA's decode=pm1 is the published variant: the forward adds eps*{0,1} as "
                     "always,\nthe weight gradient uses r = +eps where x > 0 and -eps where "
                     "x = 0 (default\ndecode=01: r = eps*{0,1}); the tape is the same, one bit "
                     "per element.\n\nPolicies (bytes at float32):\n"
                     "  none   what autograd keeps: the tape at float32 (1 bit per ReLU mask or "
                     "ASA sign)\n         and the int64 indices nn.MaxPool2d keeps;\n"
                     "  gcp    the authors' gradient checkpointing: the stem keeps only the "
                     "image; in a\n         block the ReLU outputs and masks inside it (and a "
                     "bottleneck's bn3 input)\n         are recomputed in backward from the "
                     "batch norms' inputs, which are kept; so is\n         the first "
                     "bottleneck block's shortcut batch norm (ConvBn_ARA);\n"
                     "  actnn  ActNN's 2-bit activations: groups of 256 values per sample, 2 "
                     "bits each\n         and a bfloat16 scale and minimum per group; masks "
                     "and signs stay 1 bit,\n         the max pooling keeps an 8-bit index per "
                     "output;\n"
                     "  gcp-block  per-block checkpointing: the image, every block's input and "
                     "the head\n         are kept, each block recomputed in backward (ARA then "
                     "saves nothing).\nCombine a policy with any rule (ara + gcp, ara + actnn, as the "
                     "paper's Table 2).\nGB here is 1e9 bytes.", opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  (void)seed;
  aal_resnet_config cfg;
  if (model_config("memory", &m, &cfg) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  aal_rule rule;
  aal_policy policy;
  if (aal_rule_parse(rule_text, &rule, &err) != AAL_OK) {
    fprintf(stderr, "aal memory: --rule: %s\n", err.msg);
    return 2;
  }
  if (aal_policy_parse(policy_text, &policy, &err) != AAL_OK) {
    fprintf(stderr, "aal memory: %s\n", err.msg);
    return 2;
  }
  if (batch < 2 || batch > 65536) {
    fprintf(stderr, "aal memory: --batch %d must be in 2..65536\n", batch);
    return 2;
  }
  aal_memory_totals t;
  rc = aal_memory_report(&cfg, &rule, policy, batch, csv ? NULL : stdout, &t, &err);
  if (rc == AAL_OK && csv) {
    char model[64], text[128];
    aal_resnet_config_model_name(&cfg, model, sizeof model);
    aal_rule_format(&rule, text, sizeof text);
    printf("%s,%s,%d,%d,%s,%d,%d,%zu,%zu,%.6f,%zu,%s\n", model,
           aal_resnet_stem_name(cfg.stem), cfg.in_size, batch, aal_policy_name(policy),
           aal_resnet_config_depth(&cfg), cfg.base_width, t.policy_bytes, t.bp_none,
           (double)t.bp_none / (double)t.policy_bytes, t.params, text);
  }
  if (rc == AAL_EINVAL) {
    fprintf(stderr, "aal memory: %s\n", err.msg);
    return 2;
  }
  return cli_report("memory", rc, &err);
}
