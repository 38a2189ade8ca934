/* The tape: what a forward pass stores for its backward pass, and the project's measure
 * of training memory (SPEC section 7).
 *
 * A forward op saves tensors under (layer, slot) names; the backward op loads them by
 * the same names and can read nothing else, so a learning rule that does not save a
 * tensor cannot use it.  Saved tensors are retained (reference-counted): a tensor saved
 * by several layers (the ARA register, a block output that is also the next block's
 * input) is stored once and counted once, attributed to the first layer that saved it. */
#ifndef AAL_TAPE_H
#define AAL_TAPE_H

#include <stdio.h>

#include "sim/core/tensor.h"

#define AAL_TAPE_NAME_LEN 64

typedef struct aal_tape aal_tape;

aal_tape *aal_tape_new(aal_error *err);
/* Releases every saved tensor and the tape itself.  NULL is allowed. */
void aal_tape_free(aal_tape *tape);
/* Releases every saved tensor (after backward); the tape can be reused. */
void aal_tape_clear(aal_tape *tape);

/* Retains t under (layer, slot).  Saving the same (layer, slot) twice is an error
 * (AAL_ETAPE), as are empty or over-long names. */
int aal_tape_save(aal_tape *tape, const char *layer, const char *slot, aal_tensor *t,
                  aal_error *err);
/* The tensor saved under (layer, slot), or NULL with AAL_ETAPE naming both. */
const aal_tensor *aal_tape_load(const aal_tape *tape, const char *layer, const char *slot,
                                aal_error *err);

size_t aal_tape_count(const aal_tape *tape);          /* entries (names) */
size_t aal_tape_unique_count(const aal_tape *tape);   /* distinct tensors */
/* Bytes held: each distinct tensor once, at its own precision / at float32. */
size_t aal_tape_bytes(const aal_tape *tape);
size_t aal_tape_bytes_f32(const aal_tape *tape);
/* Bytes of the tensors whose first save was by `layer`. */
size_t aal_tape_layer_bytes(const aal_tape *tape, const char *layer, int at_f32);

/* The distinct layer names, in the order of their first save; returns how many there
 * are (names beyond max are not written).  The pointers live until the tape changes. */
size_t aal_tape_layers(const aal_tape *tape, const char **names, size_t max);

/* Per-layer table: layer, slots, bytes, float32 bytes; shared entries marked; total. */
int aal_tape_report(const aal_tape *tape, FILE *out);

#endif
