/* Gradient alignment during ResNet training (SPEC section 4b): for every conv whose
 * weight gradient uses an alternative activation r, the rule's weight gradient g_r (as
 * the step applies it, lr_expansion included) against the true BP weight gradient g_h of
 * the same state and batch.  g_h = conv_backward_filter(h, dy): h the conv's actual
 * input (kept from the forward pass), dy the gradient at its output.  No rule changes
 * dy (only weight gradients use r), so this is BP's dy and g_h is BP's gradient of the
 * function the network computes; nothing of the step changes.
 *
 * Rows go to align.csv, one per conv and measured step:
 *   step,layer,cosine,projection,norm_rule,norm_bp
 * cosine = <g_r, g_h> / (||g_r|| ||g_h||), projection = <g_r, g_h> / ||g_h||^2 (empty
 * where a norm is 0).  Costs one extra backward-filter per recorded conv and keeps the
 * recorded convs' inputs alive until backward, on the measured steps only. */
#ifndef AAL_ALIGN_H
#define AAL_ALIGN_H

#include <stdio.h>

#include "sim/model/resnet.h"

#define AAL_ALIGN_CSV_HEADER "step,layer,cosine,projection,norm_rule,norm_bp\n"

typedef struct {
  int weight;       /* the conv's weight parameter */
  aal_tensor *h;    /* its input, kept from forward */
} aal_align_input;

typedef struct {
  FILE *out;
  unsigned long step;       /* written as step + 1 */
  int include_bp;           /* also record convs whose r is their input (cosine 1) */
  const aal_ops *ops;
  aal_resnet_observer next; /* the observer this one wraps (called after it) */
  aal_align_input *inputs;
  int ninputs, capacity;
  size_t layers;            /* rows written */
  int rc;
  aal_error err;
  const struct aal_comm *comm; /* a data-parallel run (sim/core/comm.h; set it after
                          attaching; NULL: one process): the rows are the whole batch's
                          gradients, written by process 0 (the one with out) */
} aal_align_recorder;

/* Wraps pass's observer (an LI recorder attached before stays in place and is called
 * too); set pass->ops first.  Call aal_align_recorder_finish after backward. */
int aal_align_recorder_attach(aal_align_recorder *rec, aal_resnet_pass *pass, FILE *out,
                              long step, int include_bp, aal_error *err);
/* Releases the kept inputs; returns rc if it is an error, else the recorder's first
 * error (copied into err). */
int aal_align_recorder_finish(aal_align_recorder *rec, int rc, aal_error *err);

/* The sums of one pair of gradients (an independent check can recompute them):
 * dot = <a, b>, aa = ||a||^2, bb = ||b||^2, each in index order. */
void aal_align_sums(const double *a, const double *b, size_t n, double *dot, double *aa,
                    double *bb);

#endif
