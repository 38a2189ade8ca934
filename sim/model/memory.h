/* Training memory of a learning rule: the tape's bytes at the end of the forward pass,
 * per layer and in total, at the run's precision, at float32 and under a storage policy
 * (sim/model/storage.h), beside BP's.  Computed from the shapes (the storage plan), so
 * any size is reported in moments. */
#ifndef AAL_MEMORY_H
#define AAL_MEMORY_H

#include <stdio.h>

#include "sim/model/resnet.h"
#include "sim/model/storage.h"

typedef struct {
  size_t bytes, bytes_f32;        /* the rule's tape */
  size_t bp_bytes, bp_bytes_f32;  /* BP's tape on the same network and batch */
  size_t policy_bytes;            /* the rule's under the policy (float32) */
  size_t bp_none;                 /* BP's under the policy none: what compression is
                                     measured against */
  size_t recompute_peak;          /* gcp: the largest tensor backward recomputes */
  size_t params;                  /* trainable parameters of the network */
} aal_memory_totals;

/* The storage plans of `rule` and of BP on cfg at `batch`; prints the per-layer table to
 * out (may be NULL). */
int aal_memory_report(const aal_resnet_config *cfg, const aal_rule *rule, aal_policy policy,
                      int batch, FILE *out, aal_memory_totals *totals, aal_error *err);

/* A random batch: x uniform in [-2, 2) [batch, C, S, S], labels uniform. */
int aal_random_batch(const aal_resnet_config *cfg, int batch, unsigned long seed,
                     aal_tensor **x, int **labels, aal_error *err);

#endif
