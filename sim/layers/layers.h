/* The non-conv reference layers, double precision.  Each layer's forward and backward
 * live side by side in one file (batchnorm.c, relu.c, add.c, pool.c, linear.c, xent.c,
 * asa.c, sgd.c).  Outputs are allocated by the caller with the exact shape and overwritten.
 * All functions validate their arguments and return an aal_status (message in err).
 * Each layer also exports its argument contract (aal_*_args, op naming the caller in
 * the messages), so that every implementation of the op (the backend adapter of
 * sim/ops) refuses exactly the calls the reference refuses. */
#ifndef AAL_LAYERS_H
#define AAL_LAYERS_H

#include "sim/core/tensor.h"

/* ---- batchnorm2d --------------------------------------------------------------
 *   x, y, dx [N, C, H, W];  gamma, beta, running_mean, running_var, mean, invstd,
 *   dgamma, dbeta [C].
 * Training: per channel mean m and biased variance v over N*H*W elements,
 *   invstd = 1/sqrt(v + eps), y = gamma * (x - m) * invstd + beta,
 *   running_mean = (1-momentum)*running_mean + momentum*m,
 *   running_var  = (1-momentum)*running_var + momentum*v*M/(M-1) (unbiased, M=N*H*W;
 *   M == 1 is an error in training mode, as in PyTorch).
 * mean and invstd are outputs that backward needs (with x). */
#define AAL_BN_MOMENTUM 0.1
#define AAL_BN_EPS 1e-5
int aal_bn2d_forward_train(const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *beta, aal_tensor *running_mean,
                           aal_tensor *running_var, double momentum, double eps,
                           aal_tensor *y, aal_tensor *mean, aal_tensor *invstd,
                           aal_error *err);
/* The training forward without the running statistics: y, mean, invstd and var [C],
 * the biased batch variance (what the running statistics need: the op table's backends
 * return it so that no caller rebuilds it from invstd). */
int aal_bn2d_forward_batch(const aal_tensor *x, const aal_tensor *gamma,
                           const aal_tensor *beta, double eps, aal_tensor *y,
                           aal_tensor *mean, aal_tensor *invstd, aal_tensor *var,
                           aal_error *err);
/* The running statistics' update from a batch's mean[C] and biased variance var[C] over
 * m_count values per channel (unbiased by m_count/(m_count-1), as PyTorch): what
 * aal_bn2d_forward_train does after the batch statistics. */
void aal_bn2d_update_running(aal_tensor *running_mean, aal_tensor *running_var,
                             const double *mean, const double *var, double momentum,
                             double m_count);
int aal_bn2d_forward_eval(const aal_tensor *x, const aal_tensor *gamma, const aal_tensor *beta,
                          const aal_tensor *running_mean, const aal_tensor *running_var,
                          double eps, aal_tensor *y, aal_error *err);
/* Synchronised batch norm, for a batch split across the processes of a data-parallel run
 * (sim/core/comm.h; comm NULL: this process holds the whole batch, and these are exactly
 * the functions above).  Forward: the statistics are the whole batch's (each sum is this
 * process's part, then the sum over the processes; M the total count), so every process
 * normalises with the same mean and invstd and updates the running statistics alike.  Backward: dx uses
 * the whole batch's sum dy and sum dy*xhat; dgamma and dbeta are this process's parts,
 * which the caller sums with the other parameter gradients. */
typedef struct aal_comm aal_comm;
int aal_bn2d_forward_train_sync(const aal_comm *comm, const aal_tensor *x,
                                const aal_tensor *gamma, const aal_tensor *beta,
                                aal_tensor *running_mean, aal_tensor *running_var,
                                double momentum, double eps, aal_tensor *y, aal_tensor *mean,
                                aal_tensor *invstd, aal_error *err);
int aal_bn2d_backward_sync(const aal_comm *comm, const aal_tensor *dy, const aal_tensor *x,
                           const aal_tensor *gamma, const aal_tensor *mean,
                           const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                           aal_tensor *dbeta, aal_error *err);
/* Backward of the training-mode forward. */
int aal_bn2d_backward(const aal_tensor *dy, const aal_tensor *x, const aal_tensor *gamma,
                      const aal_tensor *mean, const aal_tensor *invstd, aal_tensor *dx,
                      aal_tensor *dgamma, aal_tensor *dbeta, aal_error *err);
/* Their argument contracts: shapes, types, eps > 0, momentum in [0, 1], N*H*W >= 2 in
 * training; eval also reads the running statistics (finite, var >= 0).  Backward's
 * check of the saved mean and invstd (numbers, not arguments) stays in backward. */
int aal_bn2d_batch_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                        const aal_tensor *beta, double eps, const aal_tensor *y,
                        const aal_tensor *mean, const aal_tensor *invstd,
                        const aal_tensor *var, aal_error *err);
int aal_bn2d_train_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                        const aal_tensor *beta, const aal_tensor *running_mean,
                        const aal_tensor *running_var, double momentum, double eps,
                        const aal_tensor *y, const aal_tensor *mean, const aal_tensor *invstd,
                        aal_error *err);
int aal_bn2d_eval_args(const char *op, const aal_tensor *x, const aal_tensor *gamma,
                       const aal_tensor *beta, const aal_tensor *running_mean,
                       const aal_tensor *running_var, double eps, const aal_tensor *y,
                       aal_error *err);
int aal_bn2d_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                           const aal_tensor *gamma, const aal_tensor *mean,
                           const aal_tensor *invstd, const aal_tensor *dx,
                           const aal_tensor *dgamma, const aal_tensor *dbeta, aal_error *err);

/* ---- relu ---------------------------------------------------------------------
 * y = max(x, 0); mask (BITS, x's shape) gets bit 1 where x > 0.  mask may be NULL.
 * Backward: dx = dy where the mask bit is 1, else 0. */
int aal_relu_forward(const aal_tensor *x, aal_tensor *y, aal_tensor *mask, aal_error *err);
int aal_relu_backward(const aal_tensor *dy, const aal_tensor *mask, aal_tensor *dx,
                      aal_error *err);
int aal_relu_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                          const aal_tensor *mask, aal_error *err);
int aal_relu_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *mask,
                           const aal_tensor *dx, aal_error *err);

/* ---- add ----------------------------------------------------------------------
 * y = a + b (same shapes).  Backward: da = db = dy (either may be NULL). */
int aal_add_forward(const aal_tensor *a, const aal_tensor *b, aal_tensor *y, aal_error *err);
int aal_add_backward(const aal_tensor *dy, aal_tensor *da, aal_tensor *db, aal_error *err);
int aal_add_args(const char *op, const aal_tensor *a, const aal_tensor *b,
                 const aal_tensor *y, aal_error *err);

/* ---- global average pool ------------------------------------------------------
 *   x, dx [N, C, H, W];  y, dy [N, C];  y[n,c] = mean over H*W of x[n,c,:,:]. */
int aal_avgpool_forward(const aal_tensor *x, aal_tensor *y, aal_error *err);
int aal_avgpool_backward(const aal_tensor *dy, aal_tensor *dx, aal_error *err);
int aal_avgpool_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                             aal_error *err);
int aal_avgpool_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *dx,
                              aal_error *err);

/* ---- 2-d max pooling (PyTorch's nn.MaxPool2d(k, stride, pad), ceil_mode False) ------
 *   x, dx [N, C, H, W];  y, dy [N, C, Ho, Wo],
 *   Ho = aal_maxpool2d_output_size(H, k, stride, pad), Wo likewise.
 *   y[n,c,oh,ow] = x[n,c] at the winner of the k x k window at (oh*stride - pad,
 *   ow*stride - pad).  The winner: padding never wins (it is -infinity); scanning the
 *   window row-major (kh outer, kw inner), the first input position is the initial
 *   winner and a later one takes over iff its value is > the running maximum or is NaN
 *   (PyTorch: val > maxval || isnan(val)).  So ties go to the first element, and a NaN
 *   wins (no number displaces it; of several NaNs the last wins).
 * Backward takes the forward's input x (not indices), recomputes the winners, and
 *   writes dx = sum over windows of dy at their winners (overwritten: zeroed, then
 *   accumulated; overlapping windows add).
 * Arguments: k >= 1, stride >= 1, 0 <= pad <= k/2 (PyTorch's rule), Ho, Wo >= 1; the
 *   outputs must not share storage with the inputs. */
/* floor((in + 2 pad - k) / stride) + 1; 0 when the arguments are invalid (in, k or
 * stride < 1, pad < 0 or > k/2, k > in + 2 pad). */
long aal_maxpool2d_output_size(long in, int k, int stride, int pad);
int aal_maxpool2d_forward(const aal_tensor *x, int k, int stride, int pad, aal_tensor *y,
                          aal_error *err);
int aal_maxpool2d_backward(const aal_tensor *dy, const aal_tensor *x, int k, int stride, int pad,
                           aal_tensor *dx, aal_error *err);
int aal_maxpool2d_forward_args(const char *op, const aal_tensor *x, int k, int stride, int pad,
                               const aal_tensor *y, aal_error *err);
int aal_maxpool2d_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                                int k, int stride, int pad, const aal_tensor *dx,
                                aal_error *err);

/* ---- linear -------------------------------------------------------------------
 *   x, dx [N, I];  w, dw [O, I] (PyTorch layout);  b, db [O];  y, dy [N, O].
 *   y = x w^T + b.  Backward: dx = dy w, dw = dy^T x, db = sum_n dy.  dx may be NULL
 *   (the first layer needs no input gradient). */
int aal_linear_forward(const aal_tensor *x, const aal_tensor *w, const aal_tensor *b,
                       aal_tensor *y, aal_error *err);
int aal_linear_backward(const aal_tensor *dy, const aal_tensor *x, const aal_tensor *w,
                        aal_tensor *dx, aal_tensor *dw, aal_tensor *db, aal_error *err);
int aal_linear_forward_args(const char *op, const aal_tensor *x, const aal_tensor *w,
                            const aal_tensor *b, const aal_tensor *y, aal_error *err);
int aal_linear_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *x,
                             const aal_tensor *w, const aal_tensor *dx, const aal_tensor *dw,
                             const aal_tensor *db, aal_error *err);

/* ---- softmax cross-entropy ----------------------------------------------------
 *   logits, prob, dlogits [N, C];  labels[N] in 0..C-1.
 *   loss = (1/N) sum_n ( logsumexp(logits[n,:]) - logits[n, labels[n]] ), computed with
 *   the max subtracted so that large logits do not overflow; prob = softmax(logits)
 *   (what backward needs).  Backward: dlogits = (prob - onehot(labels)) / N.
 *   A label outside 0..C-1 or a non-finite logit is an error. */
int aal_xent_forward(const aal_tensor *logits, const int *labels, double *loss,
                     aal_tensor *prob, aal_error *err);
int aal_xent_backward(const aal_tensor *prob, const int *labels, aal_tensor *dlogits,
                      aal_error *err);
/* Shapes, types and labels; the finiteness of the logits is forward's own check. */
int aal_xent_forward_args(const char *op, const aal_tensor *logits, const int *labels,
                          const double *loss, const aal_tensor *prob, aal_error *err);
int aal_xent_backward_args(const char *op, const aal_tensor *prob, const int *labels,
                           const aal_tensor *dlogits, aal_error *err);

/* ---- ASA (SPEC section 4) -------------------------------------------------------
 *   x, h, out [any shape, F64]; bits [x's shape, BITS].
 * Input: bits = (x > 0), h = x + eps * bit (what forward convolves); x follows a ReLU,
 *   so a negative or NaN element is an error.  Decode: out = eps * bit (the r of the
 *   weight gradient). */
int aal_asa_input(const aal_tensor *x, double eps, aal_tensor *h, aal_tensor *bits,
                  aal_error *err);
int aal_asa_decode(const aal_tensor *bits, double eps, aal_tensor *out, aal_error *err);
/* The published variant's backward decoding (rule option decode=pm1): out = +eps where
 * the bit is 1 (x > 0), -eps where it is 0 (x == 0), exactly; the forward still
 * computes on x + eps * bit (aal_asa_input). */
int aal_asa_decode_pm1(const aal_tensor *bits, double eps, aal_tensor *out, aal_error *err);
/* Their argument contract, for every implementation of the op (op names the caller):
 * a and b F64, bits BITS, all of one shape. */
int aal_asa_args(const char *op, const aal_tensor *a, const aal_tensor *bits,
                 const aal_tensor *b, aal_error *err);

/* ---- SGD (sim/layers/sgd.c): d = g + weight_decay w; buf = first ? d : momentum buf + d;
 *   w -= lr buf; buf may be NULL (no momentum: w -= lr d).  w, g, buf of one size. */
int aal_sgd_update(aal_tensor *w, const aal_tensor *g, aal_tensor *buf, double lr,
                   double momentum, double weight_decay, int first, aal_error *err);
/* Its argument contract (op names the caller): sizes and types agree, lr >= 0,
 * 0 <= momentum < 1, weight_decay >= 0. */
int aal_sgd_args(const char *op, const aal_tensor *w, const aal_tensor *g,
                 const aal_tensor *buf, double lr, double momentum, double weight_decay,
                 aal_error *err);
/* The same loop on arrays of n doubles (the ref backend's buffers). */
void aal_sgd_update_array(size_t n, double *w, const double *g, double *buf, double lr,
                          double momentum, double weight_decay, int first);

#endif
