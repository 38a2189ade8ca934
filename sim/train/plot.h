/* Figures of a training run: runs gnuplot on the CSV files that `aal train` writes
 * (metrics.csv, li.csv, li_summary.csv) with the scripts of the plots directory
 * (loss.gp, li_hist.gp, li_steps.gp) and writes loss, li_hist and li_steps as .png and
 * .svg.  gnuplot is the one configure found (config.h's AAL_GNUPLOT); it runs through
 * posix_spawn with an argument vector (no shell), and its exit status is checked. */
#ifndef AAL_PLOT_H
#define AAL_PLOT_H

#include <stdio.h>

#include "sim/core/error.h"

/* The plots directory to use when the caller gives none: the environment variable
 * AAL_PLOTS when it is set and not empty, else the compile-time AAL_PLOTS_DIR (the
 * source tree's plots/ as the build defines it; "plots" when undefined). */
const char *aal_plot_default_dir(void);

/* Draws the figures of the run in run_dir into out_dir (NULL: run_dir/plots, created
 * when missing, parents included) with the scripts in plots_dir (NULL:
 * aal_plot_default_dir()).  Always draws loss.{png,svg} from metrics.csv, which must
 * exist; draws li_hist.{png,svg} from li.csv and li_steps.{png,svg} from li_summary.csv
 * when the run recorded the learning indicator (a file with data rows), and says so on
 * log when it did not.  Progress and gnuplot's own messages go to log (NULL: progress
 * dropped, gnuplot's messages to stderr).  Returns AAL_OK, or: AAL_EINVAL (gnuplot was
 * not found at configure time, or a path holds a newline), AAL_EIO (a missing input
 * file or script, a directory that cannot be made, gnuplot failing or not writing its
 * output: the message names the file or the script), AAL_ENOMEM. */
int aal_plot_run(const char *run_dir, const char *out_dir, const char *plots_dir, FILE *log,
                 aal_error *err);

#endif
