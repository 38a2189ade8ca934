/* Checking a kernel written outside the project: one op's inputs and a candidate's
 * outputs, held against the double reference with the harness's own bounds
 * (docs/KERNELS.md, "Checking your own kernel").
 *
 * The caller gives the op's name, its arguments, its input tensors and the candidate's
 * output tensors, with the candidate's storage format and the precision of its
 * arithmetic.  The reference runs in double on the inputs exactly as given (the
 * candidate's own, representable in its storage format), and on their absolute values
 * where the bound needs (|A||B|)_ref; each output is compared element by element with
 * the bound the harness (kcheck.h) derives for that op, the unit roundoff u of the
 * accumulation precision in its arithmetic, and the output's rounding to the storage
 * format on top where that format is coarser: bound + u_s (|y_ref| + bound) + eta_s.
 * Bits (masks, signs) must be equal; NaN or Inf in an output fails; an output whose
 * shape is not the op's fails without being compared.
 *
 *     aal_kcheck_args a;
 *     aal_kcheck_args_init(&a);            // float32 storage and arithmetic
 *     a.op = "conv_forward"; a.stride = 1; a.pad = 1;
 *     aal_kcheck_tensor in[2] = {{"x", AAL_KCHECK_F32, 4, {N, C, H, W}, x},
 *                                {"w", AAL_KCHECK_F32, 4, {K, C, R, S}, w}};
 *     aal_kcheck_tensor out[1] = {{"y", AAL_KCHECK_F32, 4, {N, K, P, Q}, y}};
 *     aal_kcheck_report r;
 *     if (aal_kcheck_external(&a, in, 2, out, 1, &r, &err) == AAL_OK)
 *       aal_kcheck_report_print(stdout, &r);   // r.failed: outputs that failed
 *
 * examples/conv_check.c is a whole program; aal_kcheck_external_op() lists each op's
 * tensors and arguments. */
#ifndef AAL_KCHECK_EXTERNAL_H
#define AAL_KCHECK_EXTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "sim/core/error.h"

/* How a tensor's elements are stored (data points to them, C order). */
typedef enum {
  AAL_KCHECK_F64,  /* double */
  AAL_KCHECK_F32,  /* float */
  AAL_KCHECK_F16,  /* uint16_t: IEEE binary16 bit patterns */
  AAL_KCHECK_BF16, /* uint16_t: bfloat16 bit patterns (the high half of a float32's) */
  AAL_KCHECK_I64,  /* int64_t: labels */
  AAL_KCHECK_BOOL  /* uint8_t, 0 or 1, one per element: masks and sign bits */
} aal_kcheck_dtype;

#define AAL_KCHECK_MAXDIM 8
#define AAL_KCHECK_MAXOUT 6
/* An integer argument not given (aal_kcheck_args_init); a double one not given is NaN. */
#define AAL_KCHECK_UNSET (-1)

typedef struct {
  const char *name;                 /* the op's name for it: "x", "w", "y", ... */
  aal_kcheck_dtype dtype;
  int ndim;                         /* 0 (a scalar) .. AAL_KCHECK_MAXDIM */
  size_t shape[AAL_KCHECK_MAXDIM];
  const void *data;
  const char *source;               /* where it came from, for messages (a file name);
                                       NULL: its name */
} aal_kcheck_tensor;

/* The op, its arguments and the candidate's precision.  An argument the op takes must
 * be given; one it does not take must be left unset. */
typedef struct {
  const char *op;                   /* "conv_forward", ... (aal_kcheck_external_op) */
  aal_kcheck_dtype storage;         /* of every value tensor: F64, F32, F16 or BF16 */
  aal_kcheck_dtype accumulation;    /* of its arithmetic (sums, products): the same set */
  int stride, pad;                  /* conv, max pooling (padding on every side) */
  int kernel;                       /* max pooling's window (square) */
  int first;                        /* sgd_update: 1 for the first step (no momentum yet) */
  double eps;                       /* batch norm's eps; ASA's eps (sign_unpack, asa_input) */
  double s;                         /* scale: y = s x */
  double lr, momentum, weight_decay; /* sgd_update */
  const char *source;               /* where the arguments came from, for messages */
} aal_kcheck_args;

/* What the comparison found in one output. */
typedef struct {
  char name[16];
  char source[256];                 /* the tensor's source (or name) */
  int given;                        /* 0: the candidate did not give it: not checked */
  int shape_mismatch;               /* its shape is not the op's: failed, not compared */
  int failed;
  double ratio;                     /* worst |got - ref| / bound (Inf: NaN, Inf, a wrong
                                       bit, a shape mismatch) */
  size_t index;                     /* the worst element (C order), and its coordinates */
  int ndim;
  size_t coord[AAL_KCHECK_MAXDIM];
  double ref, got, err, bound;      /* the reference, the candidate's value, their
                                       difference, the bound there (bits: 0/1) */
  char note[256];                   /* wrong bits, the bias test, a shape mismatch */
} aal_kcheck_output;

typedef struct {
  char op[32];
  int noutputs;
  aal_kcheck_output out[AAL_KCHECK_MAXOUT];
  int checked;                      /* outputs compared */
  int failed;                       /* outputs that failed (shape mismatches included) */
  int shape_mismatches;
  double worst_ratio;               /* over the compared outputs */
  double u, u_storage;              /* the unit roundoffs of the arithmetic and the storage */
  char note[AAL_ERRMSG_LEN + 64];   /* the harness's note for the op (mask ties, max
                                       pooling's windows; the bias statistics are in the
                                       outputs' notes) */
} aal_kcheck_report;

/* An op the check knows: its input and output tensors (NULL-terminated) and arguments. */
typedef struct {
  const char *name;
  const char *inputs[8];
  const char *outputs[AAL_KCHECK_MAXOUT + 1];
  const char *args;                 /* "stride pad", "" for none */
  const char *what;                 /* one line */
} aal_kcheck_op_info;

/* storage and accumulation float32, every argument unset. */
void aal_kcheck_args_init(aal_kcheck_args *a);

/* Checks the candidate's outputs.  Returns AAL_OK when the check ran, whatever it found
 * (r->failed); AAL_EINVAL, with a message naming the tensor (its source) or the
 * argument, for an unknown op, a missing, unknown or twice-given tensor, a dtype other
 * than the storage format (labels: I64; masks and bits: BOOL), inputs whose shapes do
 * not fit together, non-finite input values (but max pooling's x), labels out of range,
 * a missing or superfluous argument, no output at all, or inputs the reference refuses
 * (its reason quoted). */
int aal_kcheck_external(const aal_kcheck_args *a, const aal_kcheck_tensor *in, int nin,
                        const aal_kcheck_tensor *out, int nout, aal_kcheck_report *r,
                        aal_error *err);

/* One line per output (err/bound, PASS/FAIL, the worst element with its coordinates,
 * reference, value, error and bound, the source), then a summary line. */
void aal_kcheck_report_print(FILE *f, const aal_kcheck_report *r);

/* The ops: by name (NULL when unknown) and by index (0 .. count - 1). */
const aal_kcheck_op_info *aal_kcheck_external_op(const char *name);
int aal_kcheck_external_op_count(void);
const aal_kcheck_op_info *aal_kcheck_external_op_at(int i);

/* "float64", "float32", "float16", "bfloat16", "int64", "bool"; and back (-1: unknown). */
const char *aal_kcheck_dtype_name(aal_kcheck_dtype t);
int aal_kcheck_dtype_parse(const char *name);

/* Reads arguments from an op file: `key = value` lines (# comments, blank lines) with
 * the keys op, storage, accumulation (float64, float32, float16, bfloat16) and the
 * arguments above (weight_decay for weight_decay).  The op's name is kept in strings
 * (len bytes), which must outlive *a; a->source is path.  AAL_EFORMAT naming the file
 * and line for an unknown key, a key given twice, a malformed value; AAL_EIO when the
 * file cannot be read. */
int aal_kcheck_args_read(const char *path, aal_kcheck_args *a, char *strings, size_t len,
                         aal_error *err);

#endif
