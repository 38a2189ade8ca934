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
 *   aal_ops_from_backend() runs each call on a backend of the op table, on tensors that
 *                          live there (sim/core/tensor.h's home: a backend buffer at the
 *                          backend's precision, made by aal_ops_tensor_new).
 *
 * A tensor knows where it lives, and an op runs only on tensors that live where its
 * table keeps them: an adapter op given a host tensor (or one of another backend) fails
 * with a message naming the op and the tensor.  Values cross between the host and a
 * backend only through explicit copies: aal_ops_tensor_to (a tensor's values where the
 * table keeps its tensors: the caller's batch, the noise and flip rules' r, ASA's
 * decode=pm1 r),
 * aal_ops_move (a parameter moving there: aal_resnet_move), aal_tensor_read /
 * aal_tensor_copy / aal_tensor_host_view (values coming home: logits, observers,
 * checkpoints).  There is no shadow copy to keep in step, so nothing can be read stale
 * or written behind anyone's back.  On the reference table the host is where tensors
 * live: every copy there is the tensor itself, and a pass is bit-identical to a pass
 * without a table.
 *
 * What the adapter does on the host, because the model keeps it there in double:
 *   - BN training mode: the running statistics (host tensors on every table, C values
 *     per BN), from the batch mean and biased variance the backend op returns, by
 *     sim/layers/batchnorm.c's own update (aal_bn2d_update_running): nothing rebuilt;
 *   - BN eval mode: the running statistics are checked (finite, var >= 0, as the
 *     reference does) and copied to scratch buffers for the backend's bn_forward_eval.
 * Masks need nothing: sim's BITS tensors and the table's bit buffers share one layout.
 *
 * Host glue that stays in the model, in double: the noise rule's r, the flip rule's -x
 * and ASA's published decoding +-eps (rule option decode=pm1) (made on the host and
 * copied with aal_ops_tensor_to).  The ASA input (x + eps*s and
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
  /* 2-d max pooling (sim/layers/layers.h: aal_maxpool2d_forward / _backward; PyTorch's
   * MaxPool2d(k, stride, pad), ties to the first element of the window, padding never
   * wins, NaN wins).  Backward takes the forward's input x and recomputes the winners. */
  int (*maxpool_forward)(const aal_ops *ops, const aal_tensor *x, int k, int stride, int pad,
                         aal_tensor *y, aal_error *err);
  int (*maxpool_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x, int k,
                          int stride, int pad, aal_tensor *dx, aal_error *err);
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

  /* The Transformer layers (sim/layers/transformer.h, issue 17), with the reference
   * functions' signatures and contracts. */
  int (*layernorm_forward)(const aal_ops *ops, const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *beta, double eps, aal_tensor *y,
                           aal_tensor *mean, aal_tensor *invstd, aal_error *err);
  int (*layernorm_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                            const aal_tensor *gamma, const aal_tensor *mean,
                            const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                            aal_tensor *dbeta, aal_error *err);
  int (*gelu_forward)(const aal_ops *ops, const aal_tensor *x, aal_tensor *y, aal_error *err);
  int (*gelu_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                       aal_tensor *dx, aal_error *err);
  int (*softmax_forward)(const aal_ops *ops, const aal_tensor *x, aal_tensor *y,
                         aal_error *err);
  int (*softmax_backward)(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *y,
                          aal_tensor *dx, aal_error *err);
  int (*attention_forward)(const aal_ops *ops, const aal_tensor *q, const aal_tensor *k,
                           const aal_tensor *v, int heads, aal_tensor *p, aal_tensor *o,
                           aal_error *err);
  int (*attention_backward)(const aal_ops *ops, const aal_tensor *dout, const aal_tensor *q,
                            const aal_tensor *k, const aal_tensor *v, const aal_tensor *p,
                            int heads, aal_tensor *dq, aal_tensor *dk, aal_tensor *dv,
                            aal_error *err);
  int (*embed_forward)(const aal_ops *ops, const int *ids, const aal_tensor *table,
                       const aal_tensor *pos, aal_tensor *y, aal_error *err);
  int (*embed_backward)(const aal_ops *ops, const int *ids, const aal_tensor *dy,
                        aal_tensor *dtable, aal_tensor *dpos, aal_error *err);
  int (*patchify_forward)(const aal_ops *ops, const aal_tensor *x, int p, aal_tensor *y,
                          aal_error *err);
  int (*patchify_backward)(const aal_ops *ops, const aal_tensor *dy, int p, aal_tensor *dx,
                           aal_error *err);
  int (*transpose)(const aal_ops *ops, const aal_tensor *x, aal_tensor *y, aal_error *err);
};

/* The reference table (static; never freed). */
const aal_ops *aal_ops_ref(void);
/* ops ? ops : aal_ops_ref() */
const aal_ops *aal_ops_or_ref(const aal_ops *ops);

/* Builds the adapter over be (which must outlive the table); free with aal_ops_free. */
int aal_ops_from_backend(const aal_backend *be, aal_ops *ops, aal_error *err);
/* Releases the adapter's buffers (nothing for the reference table).  A tensor that
 * still lives on the adapter is first brought home (its values copied to new host
 * storage; NaN if that fails), so tensors may outlive the table. */
void aal_ops_free(aal_ops *ops);
/* A new tensor for an op to write, where the table keeps its tensors: on the reference
 * table an ordinary zero-filled host tensor; on an adapter a backend buffer, contents
 * undefined until an op writes it (NaN when poisoning, aal_ops_poison_new). */
aal_tensor *aal_ops_tensor_new(const aal_ops *ops, int ndim, const long *shape,
                               enum aal_dtype dtype, aal_error *err);
/* The same, with t's shape. */
aal_tensor *aal_ops_tensor_like(const aal_ops *ops, const aal_tensor *t, enum aal_dtype dtype,
                                aal_error *err);
/* t's values where the table keeps its tensors: t itself (retained) when it lives there
 * already (on the reference table: on the host), else a new copy (an upload, rounded to
 * the backend's precision, or a download).  Release it after use. */
aal_tensor *aal_ops_tensor_to(const aal_ops *ops, const aal_tensor *t, aal_error *err);
/* *t moves to where the table keeps its tensors (replaced by aal_ops_tensor_to's copy,
 * the old tensor released); nothing happens when it lives there already. */
int aal_ops_move(const aal_ops *ops, aal_tensor **t, aal_error *err);
/* Test aid: when on, every tensor aal_ops_tensor_new makes on the adapter starts as NaN
 * (bits: a fixed pattern), so that an op that reads an element nobody wrote shows up. */
void aal_ops_poison_new(const aal_ops *ops, int on);

/* The reference table for one process of a data-parallel run (sim/core/comm.h): every
 * entry is the reference's, but batch norm's training forward and backward (and the fused
 * BN-ReLU ones) are synchronised over comm (aal_bn2d_forward_train_sync /
 * aal_bn2d_backward_sync), so that N processes each holding a slice of the batch compute
 * what one process computes on the whole batch, up to the order of the sums.  dgamma and
 * dbeta are this process's parts, summed with the other gradients.  The table points at
 * comm, which must outlive it; nothing to free.  Only the reference: the backends' batch
 * norm does not split its sums. */
typedef struct aal_comm aal_comm;
typedef struct {
  aal_ops ops;            /* first: a pointer to it is a pointer to the whole */
  const aal_comm *comm;
} aal_ops_sync;
void aal_ops_sync_init(aal_ops_sync *s, const aal_comm *comm);

/* Opens backend `name` ("ref", "cpu32", "dnnl", "cuda") and its adapter.  For "ref" the table is
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
