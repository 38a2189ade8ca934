/* `aal memory`: the bytes a rule keeps on the tape per layer, beside BP's
 * (sim/model/memory.h). */
#include "sim/cli/commands.h"

#include <stdio.h>

#include "sim/model/memory.h"
#include "sim/model/resnet.h"
#include "sim/model/rules.h"
#include "sim/cli/cli.h"

/* The model options of the ResNet to measure. */
typedef struct {
  double width;
  const char *blocks;
  int classes, size;
} model_args;

static void model_args_default(model_args *m)
{
  m->width = 1.0;
  m->blocks = "2,2,2,2";
  m->classes = 200;
  m->size = 64;
}

static int model_config(const char *cmd, const model_args *m, aal_resnet_config *cfg)
{
  aal_error err;
  aal_error_clear(&err);
  aal_resnet_config_default(cfg);
  int rc = aal_resnet_config_set_width(cfg, m->width, &err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_blocks(cfg, m->blocks, &err);
  cfg->classes = m->classes;
  cfg->in_size = m->size;
  if (rc != AAL_OK) {
    fprintf(stderr, "aal %s: %s\n", cmd, err.msg);
    return 2;
  }
  return 0;
}

int aal_cmd_memory(int argc, char **argv)
{
  model_args m;
  model_args_default(&m);
  const char *rule_text = "ara:2,2,2,2";
  int batch = 32;
  unsigned long seed = 1;
  const cli_option opts[] = {
      {"rule", CLI_STRING, &rule_text, "learning rule (default ara:2,2,2,2)"},
      {"batch", CLI_INT, &batch, "images per batch (default 32)"},
      {"width", CLI_DOUBLE, &m.width, "width multiplier (default 1: 64 channels)"},
      {"blocks", CLI_STRING, &m.blocks, "blocks per stage (default 2,2,2,2; ResNet-34: 3,4,6,3)"},
      {"classes", CLI_INT, &m.classes, "classes (default 200)"},
      {"size", CLI_INT, &m.size, "input height and width (default 64)"},
      {"seed", CLI_ULONG, &seed, "random seed (default 1)"},
      {0}};
  int rc = cli_parse("memory", "[options]\n\nBytes on the tape at the end of the forward "
                     "pass, per layer and in total,\nat double and at float32, beside BP's "
                     "(one forward pass of each on a random batch).\nRules: bp, "
                     "ara:K1,K2,K3,K4, asa:K1,K2,K3,K4[;eps=E;lr_expansion=X;decode=pm1],\n"
                     "asa:all[;...], noise[:K...|:all], flip[:K...|:all].\n"
                     "ASA's decode=pm1 is the published variant: the forward adds eps*{0,1} as "
                     "always,\nthe weight gradient uses r = +eps where x > 0 and -eps where "
                     "x = 0 (default\ndecode=01: r = eps*{0,1}); the tape is the same, one bit "
                     "per element.", opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  aal_resnet_config cfg;
  if (model_config("memory", &m, &cfg) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  aal_rule rule;
  if (aal_rule_parse(rule_text, &rule, &err) != AAL_OK) {
    fprintf(stderr, "aal memory: --rule: %s\n", err.msg);
    return 2;
  }
  if (batch < 2 || batch > 65536) {
    fprintf(stderr, "aal memory: --batch %d must be in 2..65536\n", batch);
    return 2;
  }
  return cli_report("memory",
                    aal_memory_report(&cfg, &rule, batch, seed, stdout, NULL, &err), &err);
}
