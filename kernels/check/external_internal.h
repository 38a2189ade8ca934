/* Shared by kernels/check/external.c (validation, decoding, the run, the report) and
 * kernels/check/external_ops.c (the ops and their shapes). */
#ifndef AAL_KCHECK_EXTERNAL_INTERNAL_H
#define AAL_KCHECK_EXTERNAL_INTERNAL_H

#include <stddef.h>

#include "kernels/check/external.h"
#include "kernels/check/kcheck_internal.h"

/* The arguments an op takes, as bits. */
enum { A_STRIDE = 1, A_PAD = 2, A_KERNEL = 4, A_FIRST = 8, A_EPS = 16, A_S = 32, A_LR = 64,
       A_MOMENTUM = 128, A_WD = 256 };

typedef struct ext_ctx ext_ctx;

typedef struct {
  aal_kcheck_op_info info;
  unsigned args;
  int (*shape)(ext_ctx *c); /* the harness's shape from the tensors; what each must be */
} ext_op;

/* A tensor's dimensions. */
typedef struct {
  int nd;
  size_t d[AAL_KCHECK_MAXDIM];
} dims;

/* The tensors of one check, by the op's names. */
typedef struct {
  const char *name;
  const aal_kcheck_tensor *t; /* the caller's, or NULL (an output not given) */
  int output;
  dims want;                  /* the shape the op gives it (set by the shape function) */
  int has_want;
} ext_slot;

struct ext_ctx {
  const ext_op *op;
  const aal_kcheck_args *a;
  int nslot;
  ext_slot slot[16];
  kc_shape sh;
  aal_error *err;
};

/* The ops: by name (NULL when unknown). */
const ext_op *ext_find_op(const char *name);

/* A tensor's source for messages (its name when none), its element count. */
const char *ext_src(const aal_kcheck_tensor *t);
size_t ext_count(const aal_kcheck_tensor *t);
/* The slot of the op's tensor name (an input, or an output); NULL if the op has none. */
ext_slot *ext_slot_of(ext_ctx *c, const char *name, int output);

#endif
