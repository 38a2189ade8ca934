/* Shared between the ResNet's files; not installed. */
#ifndef AAL_RESNET_INTERNAL_H
#define AAL_RESNET_INTERNAL_H

#include "sim/ops/ops.h"
#include "sim/model/resnet.h"

/* Tape slot names: what a conv's weight gradient reads, by r source. */
const char *aal_r_slot(aal_r_source source);

/* What the forward pass of a conv stores for its weight gradient, and the input it
 * computes on.  h is the conv's actual input (for ASA: x + eps*s). */
typedef struct {
  aal_r_source source;
  aal_tensor *h;        /* actual input of the conv (new reference) */
  aal_tensor *stored;   /* saved under (conv, aal_r_slot(source)) (new reference) */
} aal_conv_input;

/* Prepares the input of a conv whose input is x (x >= 0: it follows a ReLU).  reg is
 * the ARA register (used when source is AAL_R_ARA; must have x's shape). */
int aal_conv_input_make(const aal_resnet_pass *pass, aal_r_source source, aal_tensor *x,
                        aal_tensor *reg, aal_conv_input *in, aal_error *err);
void aal_conv_input_release(aal_conv_input *in);

/* Rebuilds r (x_shape) from what was stored for conv `u` (the tape's entry in
 * backward, in->stored in forward); `scale` receives the factor the weight gradient is
 * multiplied by (lr_expansion for ASA, else 1). */
int aal_conv_r_from_stored(const aal_resnet_pass *pass, const aal_conv_bn *u,
                           aal_r_source source, const aal_tensor *stored,
                           const long *x_shape, aal_tensor **r, double *scale,
                           aal_error *err);

/* conv + batch norm, training mode: saves in->stored, and the bn's x, mean, invstd.
 * x is the conv's input before any rule touched it (for the observer).  With relu
 * non-NULL a ReLU follows the batch norm in the same op (bn_relu_forward_train), its
 * mask saved under (relu, "mask"), and out is the ReLU's output. */
int aal_conv_bn_forward(aal_resnet *net, const aal_resnet_pass *pass, aal_tape *tape,
                        const aal_conv_bn *u, const aal_tensor *x, const aal_conv_input *in,
                        const char *relu, aal_tensor **out, aal_error *err);
/* Gradients of the conv weight and bn affine parameters; dx (may be NULL) receives the
 * gradient with respect to the conv's input.  relu: as in forward (dout is then the
 * gradient of the ReLU's output). */
int aal_conv_bn_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                         const aal_conv_bn *u, aal_r_source source, const char *relu,
                         const aal_tensor *dout, aal_tensor *dx, aal_error *err);

/* The name of the ReLU at the block's output (relu2, or relu3 for a bottleneck). */
void aal_block_out_relu(const aal_block *blk, char *buf, size_t len);
/* One block: x -> out, saving on the tape; reg is the ARA register. */
int aal_block_forward(aal_resnet *net, const aal_resnet_pass *pass, aal_tape *tape, int b,
                      aal_tensor *x, aal_tensor *reg, aal_tensor **out, aal_error *err);
/* dout (gradient of the block output) -> dx (gradient of the block input). */
int aal_block_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                       int b, const aal_tensor *dout, aal_tensor *dx, aal_error *err);

/* The pass's ops: pass->ops, or the reference when it is NULL. */
static inline const aal_ops *aal_pass_ops(const aal_resnet_pass *pass)
{
  return aal_ops_or_ref(pass->ops);
}

/* Relu that saves its 1-bit mask under (layer, "mask"). */
int aal_relu_forward_taped(const aal_ops *ops, aal_tape *tape, const char *layer,
                           const aal_tensor *x, aal_tensor **y, aal_error *err);
int aal_relu_backward_taped(const aal_ops *ops, const aal_tape *tape, const char *layer,
                            const aal_tensor *dy, aal_tensor *dx, aal_error *err);


#endif
