/* The learning indicator during ResNet training (SPEC section 2): for every conv whose
 * weight gradient uses an alternative activation r, LI of every sample with h the conv's
 * actual input; for BP optionally the trivial LI = 1 of every conv, as a sanity check.
 * Rows go to li.csv (step,layer,sample,li) and li_summary.csv (one row per step and
 * layer: min, 5th percentile, median, mean, max, count, zero-norm count). */
#ifndef AAL_LI_RESNET_H
#define AAL_LI_RESNET_H

#include <stdio.h>

#include "sim/ops/ops.h"
#include "sim/model/resnet.h"

#define AAL_LI_CSV_HEADER "step,layer,sample,li\n"
#define AAL_LI_SUMMARY_HEADER "step,layer,min,p05,median,mean,max,count,zero_norm\n"

typedef struct {
  FILE *li, *summary;   /* either may be NULL */
  unsigned long step;   /* written as step + 1, the step's 1-based number */
  int include_bp;       /* also record convs whose r is their input (LI = 1) */
  int rc;               /* the first error, reported by aal_li_recorder_finish */
  aal_error err;
  size_t layers;        /* convs recorded */
  const aal_ops *ops;   /* the pass's table: the LI is reduced where the tensors are */
  const struct aal_comm *comm; /* a data-parallel run (sim/core/comm.h; set it after
                          attaching; NULL: one process): each process measures its slice
                          and process 0, which alone holds the files, writes the whole
                          batch's rows (sample = index in the whole batch) and summary */
} aal_li_recorder;

/* Installs the recorder as pass's forward observer; the LI is reduced with pass->ops'
 * li_reduce, so set pass->ops first (a recorder attached earlier uses the reference,
 * which brings h and r to the host: correct, only slower on a backend). */
int aal_li_recorder_attach(aal_li_recorder *rec, aal_resnet_pass *pass, FILE *li, FILE *summary,
                           long step, int include_bp, aal_error *err);
/* Returns rc if it is an error, else the recorder's first error (copied into err). */
int aal_li_recorder_finish(aal_li_recorder *rec, int rc, aal_error *err);

/* Opens (mode "w": creates with headers; "a": appends) run_dir/li.csv and
 * run_dir/li_summary.csv. */
int aal_li_files_open(const char *run_dir, const char *mode, FILE **li, FILE **summary,
                      aal_error *err);

#endif
