/* The kernel cross-check harness (SPEC section 8): holds any backend of the op table
 * (kernels/backend.h) against the double reference, op by op, on the ResNet-18
 * Tiny ImageNet shapes or on random shapes.
 *
 * For every op and shape: inputs are drawn from GSL's mt19937 (seeded from the seed, the
 * op and the shape, so a filtered run sees the same numbers), nonzero, rounded to
 * float32 so that both sides see the same values; the reference runs in double on them
 * and on their absolute values; the tested backend's outputs are poisoned (NaN, or the
 * complement of the expected bits) before it runs; every output element must satisfy
 * |y - y_ref| <= bound (docs/KERNELS.md derives each op's bound); bit outputs must match
 * bit for bit; NaN or Inf fails.  One row per op and shape is printed. */
#ifndef AAL_KCHECK_H
#define AAL_KCHECK_H

#include <stdio.h>

#include "kernels/backend.h"

typedef struct {
  const char *op;       /* an op name ("conv_forward") or family ("conv", "bn"); NULL: all */
  unsigned long seed;
  const char *shapes;   /* "resnet18", "random:N" (N small shapes per op family) or
                           "boundary[:N]" (N shapes per family, default 8, whose channels,
                           inner dimensions and lengths sit at and across 63/64/65, 128
                           and multiples of 4096); NULL: resnet18 */
  int batch;            /* batch of the resnet18 shapes; <= 0: 8 */
} aal_kcheck_opts;

typedef struct {
  int checks;           /* rows run (op x shape) */
  int failed;           /* rows that failed */
  double worst_ratio;   /* largest error/bound over all rows (Inf for NaN or a wrong bit) */
  char worst[96];       /* "op shape" of that row */
  double worst_bias;    /* largest |T|/tau of the bias test over the rows that run it */
  char worst_bias_row[96];
} aal_kcheck_summary;

/* Defaults: all ops, seed 1, resnet18 shapes, batch 8. */
void aal_kcheck_opts_init(aal_kcheck_opts *o);

/* Runs the checks, printing rows to out (may be NULL).  Returns AAL_OK when the harness
 * ran, whatever the checks found (sum->failed counts failed rows); AAL_EINVAL for a bad
 * op filter or shape set; another status when the harness itself failed (memory, a
 * reference op refusing a shape).  A tested op that returns an error fails its row. */
int aal_kcheck_run(const aal_backend *be, const aal_kcheck_opts *o, FILE *out,
                   aal_kcheck_summary *sum, aal_error *err);

/* The op names, in the order they run (i in 0 .. aal_kcheck_op_count() - 1). */
int aal_kcheck_op_count(void);
const char *aal_kcheck_op_name(int i);

#endif
