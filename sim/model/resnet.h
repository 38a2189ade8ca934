/* ResNet (SPEC section 6) on the tape, with the learning rules of sim/model/rules.h.
 * Default: the Tiny ImageNet ResNet-18.
 *
 *   input  [N, 3, S, S]                                   (S = 64)
 *   stem   tiny:     conv1 3x3 s2 p1 (3 -> W) - bn1 - relu  -> x_0 [N, W, S/2, S/2]
 *          imagenet: conv1 7x7 s2 p3 (3 -> W) - bn1 - relu - maxpool 3x3 s2 p1
 *                                                           -> x_0 [N, W, S/4, S/4]
 *   stages j = 0..3 of blocks[j] blocks of planes W, 2W, 4W, 8W; the first block of
 *          stages 1..3 has stride 2; a block whose shape changes has a projection
 *          shortcut (downsample: conv 1x1 s - bn)
 *   basic      conv1 3x3 s - bn1 - relu1 - conv2 3x3 - bn2, + shortcut, relu2
 *              (out channels = planes)
 *   bottleneck conv1 1x1 - bn1 - relu1 - conv2 3x3 s - bn2 - relu2 - conv3 1x1 - bn3,
 *              + shortcut, relu3 (out channels = 4 planes; the stride on the 3x3 conv,
 *              as torchvision's v1.5 and the authors' code)
 *   head   global average pool -> fc (out channels -> classes) -> softmax cross-entropy
 *
 * Parameters and buffers carry PyTorch's names and layouts (conv1.weight,
 * bn1.running_mean, layer2.0.downsample.0.weight, fc.weight [classes, 8W], ...). */
#ifndef AAL_RESNET_H
#define AAL_RESNET_H

#include <stdio.h>

#include "sim/model/rules.h"
#include "sim/core/tape.h"

/* sim/ops/ops.h: the table of ops a pass runs on */
typedef struct aal_ops aal_ops;

#define AAL_MAX_STAGES 4
#define AAL_PARAM_NAME_LEN 48

typedef enum { AAL_BLOCK_BASIC, AAL_BLOCK_BOTTLENECK } aal_block_kind;
typedef enum { AAL_STEM_TINY, AAL_STEM_IMAGENET } aal_stem_kind;

typedef struct {
  int base_width;              /* W: 64 for ResNet-18 */
  int nstages;                 /* 4 */
  int blocks[AAL_MAX_STAGES];  /* {2,2,2,2} ResNet-18, {3,4,6,3} ResNet-34 */
  int classes;                 /* 200 */
  int in_size;                 /* 64 */
  int in_channels;             /* 3 */
  aal_block_kind block;        /* basic (ResNet-18/34) or bottleneck (50/101/152) */
  aal_stem_kind stem;          /* tiny (the default) or imagenet */
} aal_resnet_config;

void aal_resnet_config_default(aal_resnet_config *cfg);
/* Width given as a multiplier of 64 (1/8 -> 8 channels), blocks as "2,2,2,2". */
int aal_resnet_config_set_width(aal_resnet_config *cfg, double multiplier, aal_error *err);
int aal_resnet_config_set_blocks(aal_resnet_config *cfg, const char *text, aal_error *err);
/* "resnet18" (the default), "resnet34", "resnet50", "resnet101", "resnet152": the block
 * kind and the blocks per stage; width, stem, size and classes are left alone. */
int aal_resnet_config_set_model(aal_resnet_config *cfg, const char *name, aal_error *err);
/* "tiny" or "imagenet" */
int aal_resnet_config_set_stem(aal_resnet_config *cfg, const char *name, aal_error *err);
/* The canonical text of the config's model and stem: "resnet50" when the blocks are a
 * named model's, else "basic-2-3-2-2" or "bottleneck-3-4-30-3" (no commas: it stands in
 * CSV); and "tiny"/"imagenet". */
void aal_resnet_config_model_name(const aal_resnet_config *cfg, char *buf, size_t len);
const char *aal_resnet_stem_name(aal_stem_kind stem);
/* Number of layers with weights on the main path, as the ResNet names count them:
 * the stem conv, every block's convs (2 or 3; shortcuts not counted) and the fc. */
int aal_resnet_config_depth(const aal_resnet_config *cfg);
/* Spatial size of the stem's output (the first block's input). */
int aal_resnet_config_stem_size(const aal_resnet_config *cfg);

typedef struct {
  char name[AAL_PARAM_NAME_LEN];
  aal_tensor *value;
  aal_tensor *grad;      /* NULL for buffers (running statistics) */
  aal_tensor *momentum;  /* SGD momentum buffer, NULL until the first step */
} aal_param;

/* Indices into aal_resnet.params of one conv + its batch norm. */
typedef struct {
  int weight;             /* conv weight [K, C, R, R] */
  int bn[4];              /* bn weight, bias, running_mean, running_var */
  int stride, pad;
  int in_channels, out_channels, ksize;
  char conv_name[AAL_PARAM_NAME_LEN];  /* module names, used on the tape too */
  char bn_name[AAL_PARAM_NAME_LEN];
} aal_conv_bn;

typedef struct {
  int in_channels, out_channels, stride, has_downsample;
  int in_size;         /* spatial size of the block's input */
  int bottleneck;      /* conv3 exists */
  char name[16];       /* "layer1.0" */
  aal_conv_bn conv1, conv2, conv3, downsample;
} aal_block;

/* The block's convs in forward order: conv1, conv2, conv3 (bottleneck), downsample (when
 * present); returns how many (at most 4). */
int aal_block_convs(const aal_block *blk, const aal_conv_bn **units);

typedef struct {
  aal_resnet_config cfg;
  aal_param *params;
  int nparams, capacity;
  aal_conv_bn stem;
  aal_block *blocks;
  int nblocks;
  int fc_weight, fc_bias;
  int layout_only;  /* aal_resnet_layout: names and shapes, no parameter tensors */
} aal_resnet;

/* Builds the network and initialises it from seed: Kaiming-normal (fan-out, ReLU) for
 * convs, BN weight 1 / bias 0 / running mean 0 / running var 1, and PyTorch's default
 * for the linear layer (uniform +-1/sqrt(fan_in) for weight and bias). */
int aal_resnet_init(aal_resnet *net, const aal_resnet_config *cfg, unsigned long seed,
                    aal_error *err);
/* The network's structure only (blocks, units, names, parameter names): no tensor is
 * allocated (every param's value and grad are NULL), so that any size can be laid out;
 * free with aal_resnet_free.  For the memory plan, which needs shapes, not values. */
int aal_resnet_layout(aal_resnet *net, const aal_resnet_config *cfg, aal_error *err);
void aal_resnet_free(aal_resnet *net);
/* The parameter or buffer of that name, or NULL. */
aal_param *aal_resnet_find(aal_resnet *net, const char *name);
/* 1 when stride2[b] is set for every stride-2 block (fills nblocks entries). */
void aal_resnet_stride2_flags(const aal_resnet *net, int *stride2);
size_t aal_resnet_param_count(const aal_resnet *net);  /* trainable scalars */
/* The same from the units' shapes (works on a layout as well). */
size_t aal_resnet_layout_param_count(const aal_resnet *net);
/* Moves the trainable parameters, their gradients and momentum buffers to where ops
 * keeps its tensors (a backend's buffers; the host for the reference table, so that
 * aal_resnet_move(net, aal_ops_ref(), err) brings them home).  The BN running
 * statistics are buffers and always live on the host.  A net trained through a backend
 * table must have been moved there first: an op refuses a tensor that lives elsewhere. */
int aal_resnet_move(aal_resnet *net, const aal_ops *ops, aal_error *err);

/* Observers: optional callbacks that see, without changing anything, each conv of a
 * training pass.  Forward: x is the conv's input as the previous layer produced it,
 * h what the conv computes on (x + eps*s for ASA, else x), r the alternative
 * activation its weight gradient will use (h for BP).  Backward: r and dy (the gradient
 * at the conv's output) that the weight gradient is computed from, and that gradient.
 * They serve the learning indicator and the tests of the rules.  On a backend table the
 * tensors live there: an observer copies what it reads (aal_tensor_copy,
 * aal_tensor_host_view) or reduces on the backend (aal_ops' li_reduce, as the LI
 * recorder does), so that observing costs no transfer it does not need. */
typedef struct {
  void (*conv_forward)(void *ctx, const aal_conv_bn *u, aal_r_source source,
                       const aal_tensor *x, const aal_tensor *h, const aal_tensor *r);
  void (*conv_backward)(void *ctx, const aal_conv_bn *u, aal_r_source source,
                        const aal_tensor *r, const aal_tensor *dy, const aal_tensor *dw);
  void *ctx;
} aal_resnet_observer;

/* One training step's forward/backward context. */
typedef struct {
  aal_rule rule;
  aal_rule_plan plan;
  unsigned long noise_seed;  /* with step: the noise rule's random stream */
  unsigned long step;
  aal_resnet_observer observer;  /* zero: none */
  const aal_ops *ops;  /* the ops every layer calls (sim/ops/ops.h); NULL (what
                          aal_resnet_pass_init sets): the double reference */
  size_t sample_offset;  /* the batch's first sample's index in the whole batch, when the
                            batch is one process's slice of a data-parallel step (0): the
                            noise rule draws the whole batch's stream and keeps the slice's */
} aal_resnet_pass;

int aal_resnet_pass_init(aal_resnet_pass *pass, const aal_resnet *net, const aal_rule *rule,
                         unsigned long noise_seed, unsigned long step, aal_error *err);

/* Training-mode forward: updates BN running statistics; saves what backward needs on
 * the tape as the rule decides; returns the mean loss and (optionally) the number of
 * correct top-1 predictions.  x [N, in_channels, in_size, in_size], labels [N]. */
int aal_resnet_forward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tensor *x,
                       const int *labels, aal_tape *tape, double *loss, int *correct,
                       aal_error *err);
/* Fills every parameter gradient from the tape (and labels, parameters, the pass). */
int aal_resnet_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                        const int *labels, aal_error *err);

/* Evaluation-mode forward (running statistics, no tape): logits [N, classes]. */
int aal_resnet_forward_eval(const aal_resnet *net, const aal_tensor *x, aal_tensor *logits,
                            aal_error *err);
/* The same on the ops of `ops` (NULL: the reference, as aal_resnet_forward_eval). */
int aal_resnet_forward_eval_ops(const aal_resnet *net, const aal_ops *ops, const aal_tensor *x,
                                aal_tensor *logits, aal_error *err);

/* PyTorch's SGD: d = g + weight_decay * p; buf = momentum * buf + d (buf = d on the
 * first step); p -= lr * buf. */
int aal_resnet_sgd_step(aal_resnet *net, double lr, double momentum, double weight_decay,
                        aal_error *err);
/* The same through ops->sgd_update, parameter by parameter (NULL: the reference, the same
 * arithmetic as aal_resnet_sgd_step). */
int aal_resnet_sgd_step_ops(aal_resnet *net, const aal_ops *ops, double lr, double momentum,
                            double weight_decay, aal_error *err);

#endif
