/* Pieces of the harness shared by kernels/check/kcheck.c (driver, buffers, comparisons, the
 * table of cases), kernels/check/common.c (what the cases share) and the cases, one file
 * per op as in sim/layers (kernels/check/conv.c, batchnorm.c, relu.c, add.c, pool.c,
 * linear.c, xent.c, asa.c, li.c, sgd.c, layernorm.c, gelu.c, softmax.c, attention.c,
 * embed.c, transpose.c: inputs, call, bounds). */
#ifndef AAL_KCHECK_INTERNAL_H
#define AAL_KCHECK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "kernels/check/kcheck.h"

/* Which of the three runs: the reference on the inputs, the reference on |inputs|
 * (the (|A||B|)_ref of the bounds), the tested backend on the inputs. */
enum { KC_REF = 0, KC_ABS = 1, KC_GOT = 2, KC_RUNS = 3 };

/* (New families last: a family's number seeds its random shapes, so appending keeps the
 * others' shapes.  The Transformer ops' (issue 17) follow max pooling.) */
enum kc_family { KC_CONV, KC_BN, KC_ELEM, KC_POOL, KC_LINEAR, KC_XENT, KC_LI, KC_SGD,
                 KC_MAXPOOL, KC_ROWS, KC_ATTN, KC_EMBED, KC_PATCH, KC_TRANSPOSE };

/* One shape; the fields a family uses:
 *   conv: cs;  bn: a = n, b = c, c = hw;  elem: len;  pool: a = rows, b = hw;
 *   linear: a = n, b = in, c = out;  xent: a = n, b = classes;  li: a = n, len = per;
 *   sgd: len;  maxpool: cs with n, c, h, w the input, r = s the window, stride, pad,
 *   p, q the output (aal_pool_out) and k = c;  rows (layer norm, softmax): a = m rows,
 *   b = d;  attn: a = B, b = T, c = heads, len = dh;  embed: a = B, b = T, c = V,
 *   len = D;  patch: cs with n, c, h, w the image, r = s = p;  transpose: a = B, b = A,
 *   c = C. */
typedef struct {
  aal_conv_shape cs;
  int a, b, c;
  size_t len;
  char desc[64];
} kc_shape;

enum kc_role { KC_IN, KC_OUT, KC_INOUT };

/* What the comparisons found in one output: its worst element.  The harness prints the
 * worst over all outputs of a row (kc_row); the check of a candidate's tensors
 * (kernels/check/external.c) reports each output on its own. */
typedef struct {
  int checked;            /* a comparison ran on it */
  int failed;
  double ratio;           /* worst error/bound (Inf: NaN, Inf, a wrong bit) */
  size_t index;           /* the worst element */
  double ref, got, err, bound;
  char note[AAL_ERRMSG_LEN / 2]; /* wrong bits, the bias test */
} kc_result;

typedef struct {
  const char *name;
  enum kc_role role;
  int bits;               /* packed bits instead of values */
  int poison_inf;         /* poison with +Inf rather than NaN (an output that may be NaN) */
  size_t n;
  void *dev[KC_RUNS];     /* the buffer on each backend */
  double *val[KC_RUNS];   /* values: inputs as uploaded, outputs as downloaded */
  uint32_t *words[KC_RUNS];
  kc_result res;          /* outputs: what the comparisons found */
} kc_buf;

#define KC_MAXBUF 10

typedef struct {
  const kc_shape *sh;
  int nbuf;
  kc_buf buf[KC_MAXBUF];
  int *labels;            /* xent: host labels, shared by all runs */
  double loss[KC_RUNS];   /* xent: the host loss of each run */
  kc_result loss_res;     /* xent: what the comparison of the loss found */
  double eps, lr, momentum, wd;
  int first;
} kc_case;

/* A row of the report: the worst element over all outputs of one op and shape. */
typedef struct {
  int failed;
  double ratio;           /* worst error/bound (Inf: NaN, a wrong bit, an op error) */
  double bias;            /* largest |T|/tau of the bias test (kc_check_bias); 0: not run */
  char worst[160];
  char note[AAL_ERRMSG_LEN + 64];
  /* The rounding of each output to a storage format coarser than the arithmetic (a
   * candidate's float16 outputs of float32 arithmetic, kernels/check/external.c): every
   * bound derived for arithmetic at u (kc_run.u), which counts an output's final rounding
   * at u, grows to bound + store_u (|y_ref| + bound) + store_eta (store_eta: half the
   * format's smallest subnormal, an underflow's absolute error).  0 in the harness: its
   * backends store at the precision they compute in. */
  double store_u, store_eta;
} kc_row;

typedef struct kc_ext kc_ext;

typedef struct {
  const aal_backend *be[KC_RUNS];
  double u;               /* unit roundoff of the tested backend: 2^-precision_bits */
  gsl_rng *rng;
  aal_error *err;
  /* NULL in the harness.  Else a candidate's tensors (kernels/check/external.c): the cases
   * take their inputs and arguments from it instead of drawing them, the reference runs
   * on them as they are (exact in the candidate's storage format, not rounded to float),
   * and the candidate's outputs stand for the tested run's (no tested backend runs). */
  kc_ext *ext;
} kc_run;

/* The call of one op on backend be (run v) with the case's buffers. */
typedef int (*kc_call)(const aal_backend *be, int v, kc_case *k, aal_error *err);

/* ---- kcheck.c */
int kc_add(kc_case *k, const char *name, enum kc_role role, size_t n, int bits);
/* Uniform on +-[scale/1024, scale), rounded to float32: never zero, never tiny. */
double kc_sym(kc_run *run, double scale);
/* Allocates the case's buffers on all backends, lets the case's inputs (val[KC_REF] or
 * words[KC_REF], filled by the caller after kc_alloc) travel, runs the reference (and
 * its absolute-value twin when need_abs), poisons and runs the tested backend, and
 * downloads everything.  Returns a harness status; an error of the tested op is
 * recorded in row (and *ran is 0). */
int kc_alloc(kc_run *run, kc_case *k);
int kc_execute(kc_run *run, kc_case *k, kc_call call, int need_abs, kc_row *row, int *ran);
void kc_free(kc_run *run, kc_case *k);
kc_buf *kc_get(kc_case *k, const char *name);

/* Comparisons (pass iff err <= bound, so NaN fails); each records the row's worst element
 * and the buffer's own (b->res).  The bounds are derived for arithmetic at run->u and
 * grow by the row's storage rounding (kc_row.store_u), all but kc_check_exact's. */
void kc_check_bound(kc_row *row, kc_buf *b, const double *bound, int nan_ok);
/* bound_i = c * K * u * |abs-run output_i| */
void kc_check_scaled(kc_run *run, kc_row *row, kc_buf *b, double c, double kterms);
/* An exact op (a selection): y = y_ref; nan_ok: NaN where the reference is NaN. */
void kc_check_exact(kc_row *row, kc_buf *b, int nan_ok);
void kc_check_bits(kc_row *row, kc_buf *b);
void kc_check_scalar(kc_row *row, kc_result *res, const char *name, double ref, double got,
                     double bound);
/* Bits that must match the reference except where the reference's pre-image is a tie:
 * bit i may differ only where |zref_i| <= bound_i (zref: the value the reference compared
 * with 0, e.g. z = bn(x) before a ReLU).  Returns the number of tolerated ties. */
size_t kc_check_bits_ties(kc_row *row, kc_buf *b, const double *zref, const double *bound);
/* A fused op against the unfused composition on the same backend: every element (or
 * bit) must be identical (bitwise, so -0 differs from +0). */
void kc_check_same(kc_row *row, const char *name, const double *fused, const double *unfused,
                   size_t n);
void kc_check_same_bits(kc_row *row, const char *name, const uint32_t *fused,
                        const uint32_t *unfused, size_t n);

/* ---- kernels/check/common.c */
/* Buffer i of case k on run v, as a call passes it to the backend. */
#define KC_DEV(k, i, v) ((k)->buf[i].dev[v])
/* Inputs of a case (into val[KC_REF] / words[KC_REF]): kc_sym values in +-scale; random
 * bits, the unused high bits of the last word zero. */
void kc_fill_sym(kc_run *run, kc_buf *b, double scale);
void kc_fill_bits(kc_run *run, kc_buf *b);
/* kc_sym values with exact +0 and -0 mixed in (each with probability 1/8, and at least one
 * of each where n >= 2): for the ops whose answer at 0 is exact (ReLU, sign, ASA). */
void kc_fill_sym_zeros(kc_run *run, kc_buf *b, double scale);

/* The false-alarm probability that the probabilistic bound (per output element) and the
 * bias test (per row) are built for, under their models (docs/KERNELS.md). */
#define KC_P_FALSE 0x1p-40
/* Relative error factor of a sum of L terms (L - 1 additions and L - 1 other roundings at
 * most per term), against the sum of the terms' absolute values: the smaller of
 *   the deterministic 2 gamma_L = 2 L u / (1 - L u)  (c = 2, as the tables), and
 *   the probabilistic gamma~_L(lambda) = exp(lambda sqrt(L) u + L u^2/(1 - u)) - 1
 *     (Higham & Mary 2019, Theorem 3.1: rounding errors independent and of mean zero; it
 *     fails with probability at most 2 L exp(-lambda^2 (1-u)^2 / 2) = KC_P_FALSE),
 * plus gamma_L of the double reference (2^-53). */
double kc_gamma(const kc_run *run, double L);
/* bound_i = kc_gamma(L) * |abs-run output_i|: a sum of L terms (kc_check_scaled with
 * the factor of kc_gamma). */
void kc_check_sum(kc_run *run, kc_row *row, kc_buf *b, double L);
/* An op of k roundings (1: a correctly rounded +, *, /), held to them:
 *   |y - y_ref| <= (gamma_k + 2^-52) |y_ref|   (gamma_k = k u / (1 - k u); 2^-52 covers
 * the double reference's own rounding). */
void kc_check_rounded(kc_run *run, kc_row *row, kc_buf *b, int k);
/* The bias test of a long reduction over the row's n outputs: with z_i = (y_i - y_ref_i)
 * / |abs-run output_i|, the self-normalised sums
 *   T1 = sum z_i / sqrt(sum z_i^2),   T2 = sum sign(y_ref_i) z_i / sqrt(sum z_i^2)
 * (T2: a bias towards or away from zero).  With errors symmetric about 0 and independent,
 * P(|T| >= tau) <= 2 exp(-tau^2/2) (Hoeffding, conditional on |z_i|); tau =
 * sqrt(2 ln(4 / KC_P_FALSE)) for the two together.  |T| > tau fails the row. */
void kc_check_bias(kc_row *row, kc_buf *b);
/* n zeroed bounds (free()d by the caller); NULL with run->err set. */
double *kc_bounds(kc_run *run, size_t n);

/* Fused ops.  Each fused op is checked twice: against the reference within the bound of
 * the unfused ops it replaces, and against the unfused composition on the tested backend
 * itself, bit for bit (scratch buffers on that backend, poisoned first: NaN, or the
 * complement of the fused op's bits). */
#define KC_MAXTMP 6

typedef struct {
  kc_run *run;
  int n;
  void *dev[KC_MAXTMP];
  size_t len[KC_MAXTMP];
  int bits[KC_MAXTMP];
  double *val[KC_MAXTMP];
  uint32_t *words[KC_MAXTMP];
} kc_tmp;

/* A poisoned buffer of len values (bits: len bits, poisoned with ~fused) on the tested
 * backend; its index, or -1 with run->err set. */
int kc_tmp_add(kc_tmp *t, size_t len, int bits, const uint32_t *fused);
/* Downloads every scratch buffer into val or words. */
int kc_tmp_download(kc_tmp *t);
void kc_tmp_free(kc_tmp *t);
/* An unfused op of the composition returned an error: the row fails (it is the tested
 * backend's op, not the harness). */
void kc_unfused_failed(kc_row *row, const char *op, int rc, const aal_error *e);

/* ---- a candidate's tensors (kernels/check/external.c; run->ext set) */
/* Where a case would draw its inputs: with run->ext, sets them (values, bits, labels) and
 * the op's arguments (eps, lr, momentum, wd, first) from the candidate's tensors and
 * returns 1 (*rc set on an error); without, returns 0 and the case draws its own. */
int kc_ext_inputs(kc_run *run, kc_case *k, int *rc);
/* After the reference runs: the candidate's outputs into val[KC_GOT] / words[KC_GOT]
 * (and loss[KC_GOT]); an output it did not give gets the reference's, so that it cannot
 * fail, and is reported as not given. */
void kc_ext_outputs(kc_run *run, kc_case *k);
/* Before the case's buffers go (kc_free): what the comparisons found, per output. */
void kc_ext_collect(kc_run *run, const kc_case *k);

/* ---- the cases, kernels/check/<op>.c: one row of the report each */
/* conv.c */
int kc_conv_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_conv_backward_data_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_conv_backward_filter_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* batchnorm.c */
int kc_bn_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_bn_forward_eval_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_bn_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_bn_relu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_bn_relu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* relu.c */
int kc_relu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_relu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* add.c, pool.c */
int kc_add_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_avgpool_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_avgpool_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_maxpool_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_maxpool_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* linear.c, xent.c */
int kc_linear_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_linear_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_xent_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_xent_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* asa.c */
int kc_sign_pack_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_sign_unpack_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_asa_input_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_scale_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* the Transformer ops: layernorm.c, gelu.c, softmax.c, attention.c, embed.c, transpose.c */
int kc_layernorm_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_layernorm_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_gelu_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_gelu_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_softmax_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_softmax_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_attention_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_attention_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_embed_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_embed_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_patchify_forward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_patchify_backward_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_transpose_case(kc_run *run, const kc_shape *sh, kc_row *row);
/* li.c, sgd.c */
int kc_li_reduce_case(kc_run *run, const kc_shape *sh, kc_row *row);
int kc_sgd_update_case(kc_run *run, const kc_shape *sh, kc_row *row);

/* ---- kernels/check/kcheck.c: the table of cases, in the order of the report */
typedef struct {
  const char *name;
  enum kc_family family;
  int (*run)(kc_run *run, const kc_shape *sh, kc_row *row);
} kc_op;

extern const kc_op kc_ops[];
extern const int kc_nops;

#endif
