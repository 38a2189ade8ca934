/* `aal plot RUN_DIR [--out DIR] [--plots DIR]`: the figures of a training run through
 * gnuplot (sim/train/plot.h). */
#include "sim/cli/commands.h"

#include <stdio.h>

#include "sim/train/plot.h"
#include "sim/cli/cli.h"

int aal_cmd_plot(int argc, char **argv)
{
  const char *out = NULL, *plots = NULL, *run = NULL;
  const cli_option opts[] = {
      {"RUN_DIR", CLI_OPERAND, &run, NULL},
      {"out", CLI_STRING, &out, "output directory (default RUN_DIR/plots)"},
      {"plots", CLI_STRING, &plots, "directory of the gnuplot scripts (default $AAL_PLOTS, "
                                    "else the source tree's plots/)"},
      {0}};
  int rc = cli_parse("plot", "RUN_DIR [options]\n\nDraws the figures of a run of aal train "
                     "with gnuplot: loss.png/.svg (training\nloss, from metrics.csv) and, "
                     "when the run recorded the learning indicator\n(--li-every), "
                     "li_hist.png/.svg (LI histogram, from li.csv) and li_steps.png/.svg\n(LI "
                     "median and 5th percentile per layer over steps, from li_summary.csv).",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_require("plot", run, "RUN_DIR") != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  return cli_report("plot", aal_plot_run(run, out, plots, stdout, &err), &err);
}
