/* The model's ops over aal_tensor: what the ResNet (sim/model/resnet_block.c, resnet_net.c)
 * and the trainer call, so that one model and one loop run on any backend of the op
 * table (kernels/backend.h; ARCHITECTURE idea 1).
 *
 * Every entry has the signature of the reference function it stands for (sim/layers/conv.h,
 * sim/layers/layers.h) with one leading argument, the table itself: the backend adapter needs
 * its backend and buffers and C has no closures.  Two tables exist:
 *
 *   aal_ops_ref()          forwards each call to the reference function, unchanged:
 *                          a pass with it is bit-identical to a pass without a table;
 *   aal_ops_from_backend() runs each call on a backend of the op table.  Tensors are
 *                          RESIDENT there: the first time a tensor enters a call it
 *                          is uploaded into a backend buffer attached to it (its
 *                          mirror, sim/core/tensor.h; rounded to the backend's
 *                          precision), and outputs are written only into their
 *                          mirrors, so a step's activations, gradients and parameters
 *                          move between ops without host round trips.
 *
 * The residency protocol (what callers and model code must do):
 *   - read the host storage of a tensor an adapter op wrote only after
 *     aal_tensor_sync_host (observers do so for what they read, or reduce on the
 *     backend with li_reduce; the trainer and checkpoints go through
 *     aal_resnet_sync_host); aal_ops_sync_host brings every mirrored tensor home;
 *   - write the host storage of a tensor that may have a mirror only after
 *     aal_tensor_detach (aal_resnet_detach for the parameters; checkpoint loading does
 *     it).  A write behind the adapter's back is refused with an error when the tensor
 *     next enters a call or is synced (a fingerprint of 17 sampled elements: a rewrite
 *     is caught, a single-element poke may not be);
 *   - the caller's input batch keeps no mirror after aal_resnet_forward / _backward /
 *     _forward_eval_ops return (it is refilled on the host every step);
 *   - aal_ops_free brings every mirrored tensor home first, so tensors may outlive the
 *     table; aal_ops_poison_stale_host fills the host storage of outputs with NaN so
 *     that a forgotten sync shows up (`aal kcheck --step` runs with it on).
 *
 * The adapter does on the host what the backend table leaves to its caller:
 *   - BN training mode: the running statistics, from the (synced) mean and the batch
 *     variance var = 1/invstd^2 - eps, as sim/layers/batchnorm.c does (unbiased running
 *     variance, var * M/(M-1));
 *   - BN eval mode: the running statistics are checked on the host (finite, var >= 0, as
 *     the reference does), then the backend's bn_forward_eval runs on them.
 * Masks need nothing: sim's BITS tensors and the table's bit buffers share one layout.
 *
 * Host glue that stays in the model, in double: the noise rule's r and the flip rule's
 * -x (each syncs, or detaches, what it reads or writes).  The ASA input (x + eps*s and
 * its sign bits), its decoding, the lr_expansion scale of its weight gradients, the sum
 * of a block's two input gradients and the ARA register run as ops. */
#ifndef AAL_OPS_H
#define AAL_OPS_H

#include "sim/core/tensor.h"

/* kernels/backend.h (not needed to use a table) */
typedef struct aal_backend aal_backend;

typedef struct aal_ops aal_ops;
typedef struct aal_ops_cache aal_ops_cache;

struct aal_ops {
  const char *name;           /* "ref" or the backend's name */
  int precision_bits;         /* 53 for the reference, else the backend's */
  const aal_backend *be;      /* NULL for the reference table */
  aal_ops_cache *cache;       /* the adapter's buffers (NULL for the reference) */

  int (*conv_forward)(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                      int stride, int pad, aal_tensor *y, aal_error *err);
  int (*conv_backward_data)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *w,
                            int stride, int pad, aal_tensor *dx, aal_error *err);
  int (*conv_backward_filter)(const aal_ops *ops, const aal_tensor *x, const aal_tensor *dy,
                              int stride, int pad, aal_tensor *dw, aal_error *err);
  int (*bn_forward_train)(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                          const aal_tensor *beta, aal_tensor *running_mean,
                          aal_tensor *running_var, double momentum, double eps,
                          aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                          aal_error *err);
  int (*bn_forward_eval)(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                         const aal_tensor *beta, const aal_tensor *running_mean,
                         const aal_tensor *running_var, double eps, aal_tensor *y,
                         aal_error *err);
  int (*bn_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                     const aal_tensor *gamma, const aal_tensor *mean,
                     const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                     aal_tensor *dbeta, aal_error *err);
  int (*relu_forward)(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                      aal_tensor *mask, aal_error *err);
  int (*relu_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                       aal_tensor *dx, aal_error *err);
  int (*add_forward)(const aal_ops *ops, const aal_tensor *a, const aal_tensor *b,
                     aal_tensor *y, aal_error *err);
  int (*avgpool_forward)(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                         aal_error *err);
  int (*avgpool_backward)(const aal_ops *ops, const aal_tensor *dy, aal_tensor *dx,
                          aal_error *err);
  int (*linear_forward)(const aal_ops *ops, const aal_tensor *x, const aal_tensor *w,
                        const aal_tensor *b, aal_tensor *y, aal_error *err);
  int (*linear_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                         const aal_tensor *w, aal_tensor *dx, aal_tensor *dw, aal_tensor *db,
                         aal_error *err);
  int (*xent_forward)(const aal_ops *ops, const aal_tensor *logits, const int *labels,
                      double *loss, aal_tensor *prob, aal_error *err);
  int (*xent_backward)(const aal_ops *ops, const aal_tensor *prob, const int *labels,
                       aal_tensor *dlogits, aal_error *err);
  /* PyTorch's SGD on one parameter (aal_resnet_sgd_step's formula); buf is the momentum
   * buffer (read unless first, always written). */
  int (*sgd_update)(const aal_ops *ops, aal_tensor *w, const aal_tensor *g, aal_tensor *buf,
                    double lr, double momentum, double weight_decay, int first,
                    aal_error *err);
  /* The ASA conv input (x follows a ReLU, SPEC 4): bits [x's shape, BITS] = (x > 0) and
   * h = x + eps * bit.  The reference fails on a negative or NaN element of x. */
  int (*asa_input)(const aal_ops *ops, const aal_tensor *x, double eps, aal_tensor *h,
                   aal_tensor *bits, aal_error *err);
  /* Batch norm (training mode) then ReLU: as bn_forward_train into z followed by
   * relu_forward(z, y, mask), with z never kept (fused where the backend has it). */
  int (*bn_relu_forward_train)(const aal_ops *ops, const aal_tensor *x,
                               const aal_tensor *gamma, const aal_tensor *beta,
                               aal_tensor *running_mean, aal_tensor *running_var,
                               double momentum, double eps, aal_tensor *y, aal_tensor *mask,
                               aal_tensor *mean, aal_tensor *invstd, aal_error *err);
  /* Its backward: relu_backward(dy, mask) then bn_backward, the masked gradient never
   * kept. */
  int (*bn_relu_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *mask,
                          const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *mean,
                          const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                          aal_tensor *dbeta, aal_error *err);
  /* The learning indicator per sample of h, r [N, ...] (sim/layers/li.h's aal_li_batch,
   * whose outputs and errors it has): li, valid [N] and *zero_norm on the host.  On a
   * backend the reduction runs there and only the N values come home. */
  int (*li_reduce)(const aal_ops *ops, const aal_tensor *h, const aal_tensor *r, double *li,
                   unsigned char *valid, size_t *zero_norm, aal_error *err);
  /* t *= s in place (the ASA lr_expansion scale of a weight gradient). */
  int (*scale)(const aal_ops *ops, aal_tensor *t, double s, aal_error *err);
  /* The stored signs decoded for the weight gradient: out = eps * bit. */
  int (*asa_decode)(const aal_ops *ops, const aal_tensor *bits, double eps, aal_tensor *out,
                    aal_error *err);
};

/* The reference table (static; never freed). */
const aal_ops *aal_ops_ref(void);
/* ops ? ops : aal_ops_ref() */
const aal_ops *aal_ops_or_ref(const aal_ops *ops);

/* Builds the adapter over be (which must outlive the table); free with aal_ops_free. */
int aal_ops_from_backend(const aal_backend *be, aal_ops *ops, aal_error *err);
/* Brings every tensor the adapter holds a mirror of back to the host (current values)
 * and releases its buffers (nothing for the reference table). */
void aal_ops_free(aal_ops *ops);
/* Makes the host storage of every tensor the adapter mirrors current (mirrors stay). */
int aal_ops_sync_host(const aal_ops *ops, aal_error *err);
/* A new tensor for an op to write: on the reference table an ordinary zero-filled one;
 * on an adapter one whose only storage is its backend buffer (host storage deferred
 * until synced), contents undefined until an op writes it (NaN when poisoning). */
aal_tensor *aal_ops_tensor_new(const aal_ops *ops, int ndim, const long *shape,
                               enum aal_dtype dtype, aal_error *err);
/* The same, with t's shape. */
aal_tensor *aal_ops_tensor_like(const aal_ops *ops, const aal_tensor *t, enum aal_dtype dtype,
                                aal_error *err);
/* Test aid: when on, each output's host storage is filled with NaN (bits with a fixed
 * pattern) as its mirror becomes the current copy, so that a host read that forgot
 * aal_tensor_sync_host shows up as NaN instead of a plausible stale number. */
void aal_ops_poison_stale_host(const aal_ops *ops, int on);

/* Opens backend `name` ("ref", "cpu32", "cuda") and its adapter.  For "ref" the table is
 * the reference table itself (not the ref backend behind the adapter), so that
 * `--backend ref` is the verified path, bit for bit.  The handle must not be moved
 * (copied) while open: table may point into it. */
typedef struct {
  aal_backend *be;       /* NULL for "ref" */
  aal_ops ops;
  const aal_ops *table;  /* what to hand to a pass: &ops or aal_ops_ref() */
} aal_ops_handle;

int aal_ops_open(const char *name, aal_ops_handle *h, aal_error *err);
void aal_ops_close(aal_ops_handle *h);

#endif
