/* `aal smoke`: a small residual net of the double reference layers learning a fixed
 * synthetic batch (sim/model/smoke.h). */
#include "sim/cli/commands.h"

#include <stdio.h>

#include "sim/model/smoke.h"
#include "sim/cli/cli.h"

int aal_cmd_smoke(int argc, char **argv)
{
  aal_smoke_opts o;
  aal_smoke_opts_default(&o);
  int threads = 0;
  const cli_option opts[] = {
      {"batch", CLI_INT, &o.batch, "images per batch (default 16)"},
      {"size", CLI_INT, &o.size, "image height and width (default 8)"},
      {"channels", CLI_INT, &o.channels, "conv channels (default 8)"},
      {"classes", CLI_INT, &o.classes, "classes (default 4)"},
      {"steps", CLI_INT, &o.steps, "SGD steps (default 30)"},
      {"lr", CLI_DOUBLE, &o.lr, "learning rate (default 0.1)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads, "OpenBLAS threads (default: OpenBLAS's choice)"},
      {0}};
  int rc = cli_parse("smoke", "[options]\n\nTrains a small residual net of the double "
                     "reference layers on a fixed\nsynthetic batch, backward reading only "
                     "the tape; prints loss, accuracy and\ntape bytes per step.",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_set_threads("smoke", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  double first = 0, last = 0;
  rc = aal_smoke_run(&o, stdout, &first, &last, &err);
  if (rc == AAL_OK)
    printf("smoke: loss %.6f -> %.6f over %d steps\n", first, last, o.steps);
  return cli_report("smoke", rc, &err);
}
