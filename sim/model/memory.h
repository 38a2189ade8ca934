/* Training memory of a learning rule: the tape's bytes at the end of the forward pass,
 * per layer and in total, at the run's precision and at float32, beside BP's. */
#ifndef AAL_MEMORY_H
#define AAL_MEMORY_H

#include <stdio.h>

#include "sim/model/resnet.h"

typedef struct {
  size_t bytes, bytes_f32;        /* the rule */
  size_t bp_bytes, bp_bytes_f32;  /* BP on the same network and batch */
} aal_memory_totals;

/* Runs one training-mode forward pass of a fresh network (cfg, seed) on a random batch
 * for BP and for `rule`, and prints the per-layer table to out (may be NULL). */
int aal_memory_report(const aal_resnet_config *cfg, const aal_rule *rule, int batch,
                      unsigned long seed, FILE *out, aal_memory_totals *totals,
                      aal_error *err);

/* A random batch: x uniform in [-2, 2) [batch, C, S, S], labels uniform. */
int aal_random_batch(const aal_resnet_config *cfg, int batch, unsigned long seed,
                     aal_tensor **x, int **labels, aal_error *err);

#endif
