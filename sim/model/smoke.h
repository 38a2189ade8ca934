/* A small residual network written directly against the reference layers and the
 * tape: the smoke run of `aal smoke` and the end-to-end check that a backward pass
 * reading only the tape reproduces finite differences of the loss.
 *
 *   x [N, 3, S, S]
 *   conv1 3x3 s1 p1 (3 -> C) - bn1 - relu1                 -> h1 [N, C, S, S]
 *   conv2 3x3 s1 p1 (C -> C) - bn2 - (+ h1) - relu2          -> h2 [N, C, S, S]
 *   global average pool -> fc (C -> classes) -> softmax cross-entropy */
#ifndef AAL_SMOKE_H
#define AAL_SMOKE_H

#include <stdio.h>

#include "sim/core/tape.h"

enum {
  AAL_SMOKE_CONV1_W, AAL_SMOKE_BN1_W, AAL_SMOKE_BN1_B,
  AAL_SMOKE_CONV2_W, AAL_SMOKE_BN2_W, AAL_SMOKE_BN2_B,
  AAL_SMOKE_FC_W, AAL_SMOKE_FC_B,
  AAL_SMOKE_NPARAM
};

typedef struct {
  int channels, classes;
  aal_tensor *param[AAL_SMOKE_NPARAM];
  aal_tensor *grad[AAL_SMOKE_NPARAM];
  aal_tensor *bn_running[4];  /* bn1 mean, bn1 var, bn2 mean, bn2 var */
} aal_smoke_net;

extern const char *const aal_smoke_param_names[AAL_SMOKE_NPARAM];

/* Kaiming-normal convs (fan-out), BN weight 1 bias 0, fc uniform(+-1/sqrt(C)). */
int aal_smoke_net_init(aal_smoke_net *net, int channels, int classes, unsigned long seed,
                       aal_error *err);
void aal_smoke_net_free(aal_smoke_net *net);

/* Training-mode forward; every activation backward needs goes on the tape. */
int aal_smoke_forward(aal_smoke_net *net, const aal_tensor *x, const int *labels,
                      aal_tape *tape, double *loss, aal_error *err);
/* Fills net->grad from the tape alone (plus labels and parameters). */
int aal_smoke_backward(aal_smoke_net *net, const aal_tape *tape, const int *labels,
                       aal_error *err);

typedef struct {
  int batch, size, channels, classes, steps;
  double lr;
  unsigned long seed;
} aal_smoke_opts;

void aal_smoke_opts_default(aal_smoke_opts *opts);
/* Fits a fixed random batch with plain SGD, printing loss, accuracy and tape bytes
 * per step; fails with AAL_ENUMERIC if the loss becomes non-finite.  The final and
 * initial loss are returned through the pointers (may be NULL). */
int aal_smoke_run(const aal_smoke_opts *opts, FILE *out, double *first_loss,
                  double *last_loss, aal_error *err);

#endif
