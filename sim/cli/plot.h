/* `aal plot RUN_DIR [--out DIR] [--plots DIR]` (sim/cli/plot.c): the figures of a
 * training run through gnuplot (sim/train/plot.h).  Takes the whole argv (argv[1] is "plot")
 * and returns the exit status: 0 success, 1 failure, 2 bad usage. */
#ifndef AAL_CMD_PLOT_H
#define AAL_CMD_PLOT_H

int aal_cmd_plot(int argc, char **argv);

#endif
