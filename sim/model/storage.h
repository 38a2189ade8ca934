/* What a training step keeps for backward, computed from the shapes alone (a dry run of
 * the tape: sim/model/resnet_net.c's forward, entry for entry, with nothing allocated),
 * and the storage policies that change it (SPEC section 7; issue 12).
 *
 * Entries are named as on the tape (layer, slot); entries that hold the same tensor
 * (a block input saved by conv1 and by the shortcut, the ARA register) share an id and
 * are counted once, at the first entry that is kept.  A test holds the plan against
 * the real tape, layer by layer.
 *
 * Policies (what is stored of each entry; bytes at float32, the paper's precision):
 *   none   what autograd keeps: the tape at float32 (one bit per mask or sign bit), and
 *          with the max pooling's input the int64 index of each window's winner, as
 *          PyTorch's nn.MaxPool2d saves it (this tape recomputes the winner instead);
 *   gcp    the authors' gradient checkpointing (resnet.py's *_GCP models, custom_layer.py's
 *          BnReLUConv / BnReLUConvBn): the stem is checkpointed (only the image is kept);
 *          in a block the ReLU outputs inside it and their masks are recomputed from the
 *          batch norms' inputs, and so is a bottleneck's bn3 input and the shortcut's
 *          batch-norm input of the plain lead block (the authors' ConvBn_ARA); the other
 *          batch-norm inputs, the block input (or register), the other shortcuts'
 *          batch-norm inputs and the block's output mask are kept;
 *   actnn  ActNN's 2-bit activations: every saved activation in groups of 256 values of
 *          one sample, 2 bits each plus a bfloat16 scale and minimum per group
 *          (2.125 bits a value); masks and signs stay 1 bit, batch-norm statistics 32;
 *          the max pooling keeps an 8-bit window index per output instead of its input;
 *   gcp-block  per-block checkpointing: the image, every block's input and the head's
 *          entries are kept, everything inside the stem and the blocks is recomputed a
 *          block at a time (the peak adds the largest block's tape).  A block's input is
 *          kept whatever the rule stores, since recomputing the block needs it: under
 *          this policy ARA saves nothing. */
#ifndef AAL_STORAGE_H
#define AAL_STORAGE_H

#include <stddef.h>
#include <stdio.h>

#include "sim/model/resnet.h"

typedef enum {
  AAL_SAVED_VALUES,  /* activation values (F64 on the tape) */
  AAL_SAVED_BITS,    /* ReLU masks, ASA signs */
  AAL_SAVED_STATS,   /* batch-norm mean and invstd, per channel */
  AAL_SAVED_POOL     /* the max pooling's input (its output size in `outputs`) */
} aal_saved_kind;

typedef struct {
  char layer[AAL_TAPE_NAME_LEN];
  char slot[16];
  aal_saved_kind kind;
  size_t elements;     /* of the whole batch */
  size_t per_sample;   /* elements of one sample (for ActNN's groups); 0 for stats */
  size_t outputs;      /* AAL_SAVED_POOL: elements of the pooling's output */
  long id;             /* equal ids: the same tensor */
  long prev_same;      /* the previous entry holding the same tensor; -1: none */
  int block;           /* -1: stem or head */
  int recomputed;      /* gcp drops it: recomputed in backward */
  size_t input;        /* the first entry of the stem or of a block: the elements of its
                          input (which gcp-block keeps whatever the rule stores); else 0 */
} aal_saved;

typedef struct {
  aal_saved *entries;
  size_t count, capacity;
} aal_storage_plan;

typedef enum {
  AAL_POLICY_NONE, AAL_POLICY_GCP, AAL_POLICY_ACTNN, AAL_POLICY_GCP_BLOCK
} aal_policy;

int aal_policy_parse(const char *text, aal_policy *policy, aal_error *err);
const char *aal_policy_name(aal_policy policy);

/* The entries one training-mode forward pass of (cfg, rule) on a batch of `batch` saves,
 * in the order the tape receives them.  Rules noise and flip are laid out too. */
int aal_storage_plan_make(const aal_resnet_config *cfg, const aal_rule *rule, int batch,
                          aal_storage_plan *plan, aal_error *err);
void aal_storage_plan_free(aal_storage_plan *plan);

/* Bytes of one entry as the tape holds it: at double (at_f32 0) or float32. */
size_t aal_saved_tape_bytes(const aal_saved *e, int at_f32);
/* Bytes of one entry under a policy (0 when the policy drops it). */
size_t aal_saved_policy_bytes(const aal_saved *e, aal_policy policy);
/* Total bytes under a policy, each tensor once.  recompute_peak (may be NULL) receives,
 * for gcp, the bytes of the largest tensor the backward pass recomputes (what the peak
 * adds to the stored bytes), else 0. */
size_t aal_storage_bytes(const aal_storage_plan *plan, aal_policy policy,
                         size_t *recompute_peak);
/* Bytes of the tensors first kept by `layer` (NULL: every layer), the tape's
 * attribution, under mode: -2 the tape at double, -1 the tape at float32 (these two
 * are aal_tape_layer_bytes of the real tape), else an aal_policy. */
size_t aal_storage_layer_bytes(const aal_storage_plan *plan, const char *layer, int mode);

#endif
