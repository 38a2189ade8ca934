/* `aal plot`: the figures of a training run. */
#include "sim/cli/plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/train/plot.h"
#include "sim/cli/cli.h"

int aal_cmd_plot(int argc, char **argv)
{
  const char *out = NULL, *plots = NULL, *run = NULL;
  const cli_option opts[] = {
      {"out", CLI_STRING, &out, "output directory (default RUN_DIR/plots)"},
      {"plots", CLI_STRING, &plots, "directory of the gnuplot scripts (default $AAL_PLOTS, "
                                    "else the source tree's plots/)"},
      {0}};
  const char *usage = "RUN_DIR [options]\n\nDraws the figures of a run of aal train with "
                      "gnuplot: loss.png/.svg (training\nloss, from metrics.csv) and, when "
                      "the run recorded the learning indicator\n(--li-every), li_hist.png/.svg "
                      "(LI histogram, from li.csv) and li_steps.png/.svg\n(LI median and 5th "
                      "percentile per layer over steps, from li_summary.csv).";
  /* RUN_DIR may stand anywhere: take the one word that is neither an option nor the
   * value of one (every option here but --help takes a value) */
  char **args = malloc(sizeof *args * (size_t)(argc > 2 ? argc : 2));
  if (args == NULL) {
    fprintf(stderr, "aal plot: out of memory\n");
    return EXIT_FAILURE;
  }
  int n = 0;
  args[n++] = argv[0];
  args[n++] = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) == 0 || strcmp(a, "-h") == 0) {
      args[n++] = argv[i];
      int takes_value = strcmp(a, "--help") != 0 && strcmp(a, "-h") != 0 &&
                        strchr(a, '=') == NULL;
      if (takes_value && i + 1 < argc)
        args[n++] = argv[++i];
    } else if (run == NULL) {
      run = a;
    } else {
      fprintf(stderr, "aal plot: unexpected argument '%s': one RUN_DIR only (see aal plot "
              "--help)\n", a);
      free(args);
      return 2;
    }
  }
  int rc = cli_parse("plot", usage, opts, n, args, 2);
  free(args);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (run == NULL) {
    fprintf(stderr, "aal plot: RUN_DIR is required (see aal plot --help)\n");
    return 2;
  }
  aal_error err;
  aal_error_clear(&err);
  rc = aal_plot_run(run, out, plots, stdout, &err);
  if (rc != 0) {
    fprintf(stderr, "aal plot: %s (%s)\n", err.msg[0] ? err.msg : "failed",
            aal_status_name(rc));
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
