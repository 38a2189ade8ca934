/* The whole ResNet: stem, blocks (with the ARA register), head; training forward and
 * backward on the tape, and the evaluation forward. */
#include <math.h>
#include <string.h>

#include "sim/layers/conv.h"
#include "sim/layers/layers.h"
#include "sim/model/resnet_internal.h"

static int check_input(const aal_resnet *net, const aal_tensor *x, const int *labels,
                       aal_error *err)
{
  if (net == NULL || x == NULL)
    return aal_fail(err, AAL_EINVAL, "resnet forward: NULL argument");
  int rc = aal_tensor_require(x, 4, AAL_F64, "resnet input", err);
  if (rc != AAL_OK)
    return rc;
  const aal_resnet_config *c = &net->cfg;
  if (x->shape[1] != (size_t)c->in_channels || x->shape[2] != (size_t)c->in_size ||
      x->shape[3] != (size_t)c->in_size) {
    char s[64];
    aal_tensor_shape_str(x, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "resnet input has shape %s, expected Nx%dx%dx%d", s,
                    c->in_channels, c->in_size, c->in_size);
  }
  for (size_t n = 0; labels != NULL && n < x->shape[0]; n++)
    if (labels[n] < 0 || labels[n] >= c->classes)
      return aal_fail(err, AAL_EINVAL, "label %d of sample %zu is outside 0..%d", labels[n], n,
                      c->classes - 1);
  return AAL_OK;
}

static int count_correct(const aal_tensor *prob, const int *labels)
{
  int right = 0;
  const size_t classes = prob->shape[1];
  for (size_t n = 0; n < prob->shape[0]; n++) {
    const double *row = prob->data + n * classes;
    size_t best = 0;
    for (size_t k = 1; k < classes; k++)
      if (row[k] > row[best])
        best = k;
    right += (int)best == labels[n];
  }
  return right;
}

/* pool -> fc -> softmax cross-entropy; saves the pooled features and probabilities. */
static int head_forward(aal_resnet *net, const aal_ops *ops, aal_tape *tape,
                        const aal_tensor *feat, const int *labels, double *loss, int *correct,
                        aal_error *err)
{
  const long n = (long)feat->shape[0], c = (long)feat->shape[1];
  const long pool_shape[2] = {n, c}, logit_shape[2] = {n, net->cfg.classes};
  aal_tensor *pool = aal_ops_tensor_new(ops, 2, pool_shape, AAL_F64, err);
  aal_tensor *logits = aal_ops_tensor_new(ops, 2, logit_shape, AAL_F64, err);
  aal_tensor *prob = aal_ops_tensor_new(ops, 2, logit_shape, AAL_F64, err);
  int rc = (pool && logits && prob) ? ops->avgpool_forward(ops, feat, pool, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = ops->linear_forward(ops, pool, net->params[net->fc_weight].value,
                             net->params[net->fc_bias].value, logits, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, "fc", "x", pool, err);
  if (rc == AAL_OK)
    rc = ops->xent_forward(ops, logits, labels, loss, prob, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, "loss", "prob", prob, err);
  if (rc == AAL_OK && correct != NULL) {
    aal_tensor *hprob = aal_tensor_host_view(prob, err);
    rc = hprob != NULL ? AAL_OK : AAL_ENOMEM;
    if (rc == AAL_OK)
      *correct = count_correct(hprob, labels);
    aal_tensor_release(hprob);
  }
  aal_tensor_release(pool);
  aal_tensor_release(logits);
  aal_tensor_release(prob);
  return rc;
}

/* The stem's max pooling (imagenet stem): 3x3, stride 2, padding 1 */
enum { POOL_K = 3, POOL_STRIDE = 2, POOL_PAD = 1 };

/* r [N, W, S1, S1] (the stem ReLU's output) -> *out [N, W, S0, S0], a new tensor */
static int stem_pool(const aal_resnet *net, const aal_ops *ops, const aal_tensor *r,
                     aal_tensor **out, aal_error *err)
{
  const int s = aal_resnet_config_stem_size(&net->cfg);
  const long shape[4] = {(long)r->shape[0], (long)r->shape[1], s, s};
  if ((*out = aal_ops_tensor_new(ops, 4, shape, AAL_F64, err)) == NULL)
    return AAL_ENOMEM;
  return ops->maxpool_forward(ops, r, POOL_K, POOL_STRIDE, POOL_PAD, *out, err);
}

static int stem_forward(aal_resnet *net, const aal_resnet_pass *pass, aal_tape *tape,
                        const aal_tensor *x, aal_tensor **x0, aal_error *err)
{
  const aal_ops *ops = aal_pass_ops(pass);
  aal_conv_input in;
  aal_tensor *r = NULL;
  *x0 = NULL;
  /* the stem always learns by BP; the tape retains the image (where the table keeps its
   * tensors) rather than copying it */
  int rc = aal_conv_input_make(pass, AAL_R_INPUT, (aal_tensor *)x, NULL, &in, err);
  if (rc == AAL_OK)
    rc = aal_conv_bn_forward(net, pass, tape, &net->stem, x, &in, "relu", &r, err);
  aal_conv_input_release(&in);
  if (rc != AAL_OK || net->cfg.stem != AAL_STEM_IMAGENET) {
    *x0 = r;
    return rc;
  }
  rc = stem_pool(net, ops, r, x0, err);
  /* backward finds each window's winner again in the pooling's input */
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, "maxpool", "x", r, err);
  aal_tensor_release(r);
  return rc;
}

int aal_resnet_forward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tensor *x,
                       const int *labels, aal_tape *tape, double *loss, int *correct,
                       aal_error *err)
{
  if (pass == NULL || labels == NULL || tape == NULL || loss == NULL)
    return aal_fail(err, AAL_EINVAL, "resnet forward: NULL argument");
  int rc = check_input(net, x, labels, err);
  if (rc != AAL_OK)
    return rc;
  if (pass->plan.nblocks != net->nblocks)
    return aal_fail(err, AAL_EINVAL, "resnet forward: the rule plan is for %d blocks, the "
                    "network has %d", pass->plan.nblocks, net->nblocks);
  aal_tensor *cur = NULL, *reg = NULL;
  /* the caller's batch, copied once to where the table keeps its tensors (on the
   * reference: the batch itself) */
  aal_tensor *image = aal_ops_tensor_to(aal_pass_ops(pass), x, err);
  rc = image != NULL ? stem_forward(net, pass, tape, image, &cur, err) : AAL_ENOMEM;
  aal_tensor_release(image);
  reg = aal_tensor_retain(cur);  /* A := x_0 */
  for (int b = 0; b < net->nblocks && rc == AAL_OK; b++) {
    aal_tensor *next = NULL;
    rc = aal_block_forward(net, pass, tape, b, cur, reg, &next, err);
    aal_tensor_release(cur);
    cur = next;
    if (rc == AAL_OK && pass->plan.reset_after[b]) {
      aal_tensor_release(reg);
      reg = aal_tensor_retain(cur);  /* A := x_{b+1} */
    }
  }
  if (rc == AAL_OK)
    rc = head_forward(net, aal_pass_ops(pass), tape, cur, labels, loss, correct, err);
  aal_tensor_release(cur);
  aal_tensor_release(reg);
  return rc;
}

/* A tensor shaped like the input of block b (b == nblocks: the last block's output), for
 * its gradient; the batch size is read from the tape. */
static aal_tensor *block_input_like(const aal_resnet *net, const aal_ops *ops,
                                    const aal_tape *tape, int b, aal_error *err)
{
  const aal_tensor *prob = aal_tape_load(tape, "loss", "prob", err);
  if (prob == NULL)
    return NULL;
  const aal_block *blk = &net->blocks[b < net->nblocks ? b : net->nblocks - 1];
  long size = blk->in_size, channels = blk->in_channels;
  if (b == net->nblocks) {
    size = (blk->in_size - 1) / blk->stride + 1;
    channels = blk->out_channels;
  }
  const long shape[4] = {(long)prob->shape[0], channels, size, size};
  return aal_ops_tensor_new(ops, 4, shape, AAL_F64, err);
}

static int head_backward(aal_resnet *net, const aal_ops *ops, const aal_tape *tape,
                         const int *labels, aal_tensor *dfeat, aal_error *err)
{
  const aal_tensor *prob = aal_tape_load(tape, "loss", "prob", err);
  const aal_tensor *pool = prob ? aal_tape_load(tape, "fc", "x", err) : NULL;
  if (pool == NULL)
    return AAL_ETAPE;
  aal_tensor *dlogits = aal_ops_tensor_like(ops, prob, AAL_F64, err);
  aal_tensor *dpool = aal_ops_tensor_like(ops, pool, AAL_F64, err);
  int rc = (dlogits && dpool) ? ops->xent_backward(ops, prob, labels, dlogits, err)
                               : AAL_ENOMEM;
  aal_param *w = &net->params[net->fc_weight], *bias = &net->params[net->fc_bias];
  if (rc == AAL_OK)
    rc = ops->linear_backward(ops, dlogits, pool, w->value, dpool, w->grad, bias->grad, err);
  if (rc == AAL_OK)
    rc = ops->avgpool_backward(ops, dpool, dfeat, err);
  aal_tensor_release(dlogits);
  aal_tensor_release(dpool);
  return rc;
}

static int stem_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                         const aal_tensor *dx0, aal_error *err)
{
  const aal_ops *ops = aal_pass_ops(pass);
  aal_tensor *dr = NULL;
  int rc = AAL_OK;
  if (net->cfg.stem == AAL_STEM_IMAGENET) {
    const aal_tensor *r = aal_tape_load(tape, "maxpool", "x", err);
    if (r == NULL)
      return AAL_ETAPE;
    if ((dr = aal_ops_tensor_like(ops, r, AAL_F64, err)) == NULL)
      return AAL_ENOMEM;
    rc = ops->maxpool_backward(ops, dx0, r, POOL_K, POOL_STRIDE, POOL_PAD, dr, err);
  }
  /* the image needs no gradient */
  if (rc == AAL_OK)
    rc = aal_conv_bn_backward(net, pass, tape, &net->stem, AAL_R_INPUT, "relu",
                              dr != NULL ? dr : dx0, NULL, err);
  aal_tensor_release(dr);
  return rc;
}

int aal_resnet_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                        const int *labels, aal_error *err)
{
  if (net == NULL || pass == NULL || tape == NULL || labels == NULL)
    return aal_fail(err, AAL_EINVAL, "resnet backward: NULL argument");
  const aal_ops *ops = aal_pass_ops(pass);
  aal_tensor *dcur = block_input_like(net, ops, tape, net->nblocks, err);
  int rc = dcur ? head_backward(net, ops, tape, labels, dcur, err) : AAL_ETAPE;
  for (int b = net->nblocks - 1; b >= 0 && rc == AAL_OK; b--) {
    aal_tensor *dx = block_input_like(net, ops, tape, b, err);
    rc = dx ? aal_block_backward(net, pass, tape, b, dcur, dx, err) : AAL_ETAPE;
    aal_tensor_release(dcur);
    dcur = dx;
  }
  if (rc == AAL_OK)
    rc = stem_backward(net, pass, tape, dcur, err);
  aal_tensor_release(dcur);
  return rc;
}

/* ---------------------------------------------------------------- evaluation */

static int conv_bn_eval(const aal_resnet *net, const aal_ops *ops, const aal_conv_bn *u,
                        const aal_tensor *x, aal_tensor **out, aal_error *err)
{
  const aal_tensor *w = net->params[u->weight].value;
  long shape[4];
  *out = NULL;
  int rc = aal_conv2d_output_shape(x, w, u->stride, u->pad, shape, err);
  if (rc != AAL_OK)
    return rc;
  aal_tensor *y = aal_ops_tensor_new(ops, 4, shape, AAL_F64, err);
  *out = aal_ops_tensor_new(ops, 4, shape, AAL_F64, err);
  rc = (y && *out) ? ops->conv_forward(ops, x, w, u->stride, u->pad, y, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = ops->bn_forward_eval(ops, y, net->params[u->bn[0]].value,
                              net->params[u->bn[1]].value, net->params[u->bn[2]].value,
                              net->params[u->bn[3]].value, AAL_BN_EPS, *out, err);
  aal_tensor_release(y);
  return rc;
}

static int relu_inplace(const aal_ops *ops, aal_tensor *x, aal_error *err)
{
  return ops->relu_forward(ops, x, x, NULL, err);
}

static int block_eval(const aal_resnet *net, const aal_ops *ops, const aal_block *blk,
                      const aal_tensor *x, aal_tensor **out, aal_error *err)
{
  const aal_conv_bn *units[3] = {&blk->conv1, &blk->conv2, &blk->conv3};
  const int nmain = blk->bottleneck ? 3 : 2;
  aal_tensor *h = aal_tensor_retain((aal_tensor *)x), *sc = NULL;
  int rc = AAL_OK;
  for (int k = 0; k < nmain && rc == AAL_OK; k++) {
    aal_tensor *next = NULL;
    rc = conv_bn_eval(net, ops, units[k], h, &next, err);
    if (rc == AAL_OK && k < nmain - 1)
      rc = relu_inplace(ops, next, err);
    aal_tensor_release(h);
    h = next;
  }
  if (rc == AAL_OK && blk->has_downsample)
    rc = conv_bn_eval(net, ops, &blk->downsample, x, &sc, err);
  if (rc == AAL_OK)
    rc = ops->add_forward(ops, h, blk->has_downsample ? sc : x, h, err);
  if (rc == AAL_OK)
    rc = relu_inplace(ops, h, err);
  aal_tensor_release(sc);
  if (rc != AAL_OK) {
    aal_tensor_release(h);
    h = NULL;
  }
  *out = h;
  return rc;
}

/* stem: conv - bn - relu (- maxpool) */
static int stem_eval(const aal_resnet *net, const aal_ops *ops, const aal_tensor *image,
                     aal_tensor **out, aal_error *err)
{
  aal_tensor *r = NULL;
  *out = NULL;
  int rc = conv_bn_eval(net, ops, &net->stem, image, &r, err);
  if (rc == AAL_OK)
    rc = relu_inplace(ops, r, err);
  if (rc != AAL_OK || net->cfg.stem != AAL_STEM_IMAGENET) {
    *out = r;
    return rc;
  }
  rc = stem_pool(net, ops, r, out, err);
  aal_tensor_release(r);
  return rc;
}

int aal_resnet_forward_eval(const aal_resnet *net, const aal_tensor *x, aal_tensor *logits,
                            aal_error *err)
{
  return aal_resnet_forward_eval_ops(net, NULL, x, logits, err);
}

int aal_resnet_forward_eval_ops(const aal_resnet *net, const aal_ops *table, const aal_tensor *x,
                                aal_tensor *logits, aal_error *err)
{
  const aal_ops *ops = aal_ops_or_ref(table);
  int rc = check_input(net, x, NULL, err);
  if (rc != AAL_OK)
    return rc;
  aal_tensor *cur = NULL, *out = NULL;
  aal_tensor *image = aal_ops_tensor_to(ops, x, err);
  rc = image != NULL ? stem_eval(net, ops, image, &cur, err) : AAL_ENOMEM;
  aal_tensor_release(image);
  for (int b = 0; b < net->nblocks && rc == AAL_OK; b++) {
    aal_tensor *next = NULL;
    rc = block_eval(net, ops, &net->blocks[b], cur, &next, err);
    aal_tensor_release(cur);
    cur = next;
  }
  aal_tensor *pool = NULL;
  const long pool_shape[2] = {rc == AAL_OK ? (long)cur->shape[0] : 1,
                              rc == AAL_OK ? (long)cur->shape[1] : 1};
  if (rc == AAL_OK && ((pool = aal_ops_tensor_new(ops, 2, pool_shape, AAL_F64, err)) == NULL ||
                       (out = aal_ops_tensor_like(ops, logits, AAL_F64, err)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = ops->avgpool_forward(ops, cur, pool, err);
  if (rc == AAL_OK)
    rc = ops->linear_forward(ops, pool, net->params[net->fc_weight].value,
                             net->params[net->fc_bias].value, out, err);
  /* the logits come home into the caller's (host) tensor */
  if (rc == AAL_OK)
    rc = aal_tensor_read(out, logits, err);
  aal_tensor_release(cur);
  aal_tensor_release(pool);
  aal_tensor_release(out);
  return rc;
}
