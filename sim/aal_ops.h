/* The model's ops over aal_tensor: what the ResNet (sim/resnet_block.c, resnet_net.c)
 * and the trainer call, so that one model and one loop run on any backend of the op
 * table (kernels/aal_backend.h; ARCHITECTURE idea 1).
 *
 * Every entry has the signature of the reference function it stands for (aal_conv2d.h,
 * aal_layers.h) with one leading argument, the table itself: the backend adapter needs
 * its backend and buffers and C has no closures.  Two tables exist:
 *
 *   aal_ops_ref()          forwards each call to the reference function, unchanged:
 *                          a pass with it is bit-identical to a pass without a table;
 *   aal_ops_from_backend() for each call uploads the input tensors to buffers of the
 *                          backend (rounding to its precision), runs the backend's op,
 *                          downloads the outputs into the caller's tensors (double
 *                          storage holding, for float backends, float values) and gives
 *                          the buffers back to a small per-table cache.
 *
 * The adapter does on the host what the backend table leaves to its caller:
 *   - BN training mode: the running statistics, from the downloaded mean and the batch
 *     variance var = 1/invstd^2 - eps, as sim/batchnorm2d.c does (unbiased running
 *     variance, var * M/(M-1));
 *   - BN eval mode: the reference aal_bn2d_forward_eval in double on the host, its output
 *     rounded to the backend's precision (the backend table has no eval-mode BN; eval is
 *     not part of the training step the backends are compared on);
 *   - masks: sim's BITS tensors (64-bit words) are converted to and from the table's
 *     32-bit words (element i in bit i%32 of word i/32).
 * sgd_update runs be->sgd_update on the parameter, gradient and momentum buffer.
 *
 * Host glue that stays in the model, in double on every backend: the ASA input
 * x + eps*s and its sign bits, the noise rule's r, the ASA lr_expansion scale, the sum of
 * the two input gradients of a block, the ARA register.  Each such value is rounded when
 * it enters the next backend op. */
#ifndef AAL_OPS_H
#define AAL_OPS_H

#include "aal_tensor.h"

/* kernels/aal_backend.h (not needed to use a table) */
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
