/* One training step on two op tables (ARCHITECTURE idea 2: the reference is the oracle,
 * step by step): `aal kcheck --step`.
 *
 * For each rule: two networks from the same seed, their parameters and the batch rounded
 * to the tested table's precision so that both sides start from the same values; one
 * forward + backward on the reference (pass->ops NULL) and one on the tested table;
 * then one SGD step on each (the reference's sgd and the table's sgd_update), then a
 * second forward + backward + SGD step.  Compared, each in the max norm relative to the
 * reference tensor's max norm:
 *   the loss, every parameter gradient, the LI values of every rule conv (the forward
 *   observer; per conv, all samples), every parameter, BN running statistic and SGD
 *   momentum buffer after the first step, the eval-mode logits, and every parameter,
 *   running statistic and momentum buffer after the second step.
 * Each SGD step on the reference uses the tested side's gradients, and the second step
 * starts from the tested side's state on both, so that each comparison holds the error
 * of one stage (a wrong gradient fails as a gradient, a wrong update as an update).
 * A tensor passes when max|t - t_ref| <= tol * max|t_ref| with
 *   tol = c * sqrt(2 D) * sqrt(K) * 2^-p
 * (D the depth in convs + fc, K the longest dot product or reduction of the step, p the
 * table's precision bits, c = AAL_STEP_TOL_C unless given): docs/KERNELS.md derives it.
 * NaN or Inf fails.  The number of conv inputs whose sign (ReLU mask) differs between
 * the two runs is reported: a pre-activation within rounding of 0 may flip a mask or an
 * ASA bit, which the tolerance does not cover. */
#ifndef AAL_STEP_CHECK_H
#define AAL_STEP_CHECK_H

#include <stdio.h>

#include "sim/ops/ops.h"

#define AAL_STEP_TOL_C 4.0

typedef struct {
  const char *rules;    /* space-separated rules; NULL: "bp ara:2,2,2,2 asa:2,2,2,2" */
  unsigned long seed;   /* network, batch and noise stream (default 1) */
  double width;         /* width multiplier (default 0.125) */
  int batch;            /* default 8 */
  int in_size;          /* input size (default 64) */
  int classes;          /* default 200 */
  const char *model;    /* "resnet18" (default) .. "resnet152" */
  const char *stem;     /* "tiny" (default) or "imagenet" */
  const char *blocks;   /* blocks per stage; NULL (default): the model's */
  double c;             /* tolerance constant (<= 0: AAL_STEP_TOL_C) */
  double lr;            /* the SGD step (default 0.05, momentum 0.9, weight decay 1e-4) */
  int verbose;          /* 1: a row per tensor; 0: failing tensors and a summary per kind */
} aal_step_check_opts;

typedef struct {
  int checks;           /* tensors compared */
  int failed;
  double worst_ratio;   /* largest error/tolerance (Inf for NaN) */
  char worst[128];      /* "rule kind name" of that tensor */
  long sign_flips;      /* conv inputs whose sign differs between the runs */
  double tol;           /* the relative tolerance used (the last rule's) */
} aal_step_check_summary;

void aal_step_check_opts_init(aal_step_check_opts *o);

/* Runs the comparison of `ops` against the reference, printing to out (may be NULL).
 * Returns AAL_OK when it ran, whatever it found (sum->failed); an error status when a
 * step itself failed on either side (the message names the op). */
int aal_step_check(const aal_ops *ops, const aal_step_check_opts *o, FILE *out,
                   aal_step_check_summary *sum, aal_error *err);

#endif
