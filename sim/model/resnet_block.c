/* A conv + batch norm unit under a learning rule, and the BasicBlock built from them:
 * forward and backward side by side. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sim/layers/conv.h"
#include "sim/layers/layers.h"
#include "sim/model/resnet_internal.h"

const char *aal_r_slot(aal_r_source source)
{
  switch (source) {
  case AAL_R_INPUT: return "x";
  case AAL_R_ARA: return "ara";
  case AAL_R_ASA: return "sign";
  case AAL_R_NOISE: return "norm";
  case AAL_R_FLIP: return "x";
  }
  return "?";
}

static void shape_of(const aal_tensor *t, long *shape)
{
  for (int d = 0; d < t->ndim; d++)
    shape[d] = (long)t->shape[d];
}

/* s = 1 bit per element, 1 where x > 0; h = x + eps*s.  x follows a ReLU (x >= 0),
 * so the bit decodes to {0, 1} in both passes (SPEC section 4); under the rule option
 * decode=pm1 (the published variant) the forward is the same and only the backward's r
 * differs (aal_conv_r_from_stored). */
static int asa_input(const aal_resnet_pass *pass, aal_tensor *x, aal_conv_input *in,
                     aal_error *err)
{
  const aal_ops *ops = aal_pass_ops(pass);
  in->stored = aal_ops_tensor_like(ops, x, AAL_BITS, err);
  in->h = aal_ops_tensor_like(ops, x, AAL_F64, err);
  if (in->stored == NULL || in->h == NULL)
    return AAL_ENOMEM;
  return ops->asa_input(ops, x, pass->rule.eps, in->h, in->stored, err);
}

/* per-sample 2-norms of x [N, ...] -> [N] */
static aal_tensor *sample_norms(const aal_tensor *x, aal_error *err)
{
  aal_tensor *hx = aal_tensor_host_view(x, err);
  aal_tensor *norms = hx != NULL ? aal_tensor_new1((long)x->shape[0], err) : NULL;
  if (norms != NULL) {
    const size_t per = x->size / x->shape[0];
    for (size_t n = 0; n < x->shape[0]; n++) {
      double s = 0;
      for (size_t i = 0; i < per; i++)
        s += hx->data[n * per + i] * hx->data[n * per + i];
      norms->data[n] = sqrt(s);
    }
  }
  aal_tensor_release(hx);
  return norms;
}

int aal_conv_input_make(const aal_resnet_pass *pass, aal_r_source source, aal_tensor *x,
                        aal_tensor *reg, aal_conv_input *in, aal_error *err)
{
  memset(in, 0, sizeof *in);
  in->source = source;
  switch (source) {
  case AAL_R_ASA:
    return asa_input(pass, x, in, err);
  case AAL_R_ARA:
    if (!aal_tensor_same_shape(reg, x))
      return aal_tensor_require_same(reg, x, "ARA register", "block input", err);
    in->stored = aal_tensor_retain(reg);
    break;
  case AAL_R_NOISE:
    if ((in->stored = sample_norms(x, err)) == NULL)
      return AAL_ENOMEM;
    break;
  case AAL_R_INPUT:
  case AAL_R_FLIP:
    in->stored = aal_tensor_retain(x);
    break;
  }
  in->h = aal_tensor_retain(x);
  return AAL_OK;
}

void aal_conv_input_release(aal_conv_input *in)
{
  aal_tensor_release(in->h);
  aal_tensor_release(in->stored);
  in->h = in->stored = NULL;
}

/* The noise rule's r for one conv: Gaussian, rescaled per sample to ||h_n||.  Its
 * stream depends only on (noise seed, step, conv), so backward regenerates it. */
static int noise_r(const aal_resnet_pass *pass, const aal_conv_bn *u, const aal_tensor *norms,
                   aal_tensor *r, aal_error *err)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rng == NULL)
    return aal_fail(err, AAL_ENOMEM, "cannot allocate a random generator");
  /* splitmix-style mixing of the three inputs into one 32-bit mt19937 seed */
  uint64_t z = pass->noise_seed * 0x9E3779B97F4A7C15ull + pass->step * 0xBF58476D1CE4E5B9ull +
               (uint64_t)u->weight * 0x94D049BB133111EBull;
  z ^= z >> 31;
  gsl_rng_set(rng, (unsigned long)(z & 0xffffffffu));
  const size_t per = r->size / r->shape[0];
  /* a data-parallel slice: the draws of the batch's earlier samples go to other processes */
  for (size_t i = 0; i < pass->sample_offset * per; i++)
    (void)gsl_ran_gaussian_ziggurat(rng, 1.0);
  for (size_t n = 0; n < r->shape[0]; n++) {
    double *row = r->data + n * per, s = 0;
    for (size_t i = 0; i < per; i++) {
      row[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
      s += row[i] * row[i];
    }
    const double scale = s > 0 ? norms->data[n] / sqrt(s) : 0.0;
    for (size_t i = 0; i < per; i++)
      row[i] *= scale;
  }
  gsl_rng_free(rng);
  return AAL_OK;
}

int aal_conv_r_from_stored(const aal_resnet_pass *pass, const aal_conv_bn *u,
                           aal_r_source source, const aal_tensor *stored,
                           const long *x_shape, aal_tensor **r, double *scale,
                           aal_error *err)
{
  *scale = 1.0;
  *r = NULL;
  if (source == AAL_R_INPUT || source == AAL_R_ARA) {
    *r = aal_tensor_retain((aal_tensor *)stored);
    return AAL_OK;
  }
  const aal_ops *ops = aal_pass_ops(pass);
  if (source == AAL_R_ASA && !pass->rule.decode_pm1) {
    *scale = pass->rule.lr_expansion;
    *r = aal_ops_tensor_new(ops, 4, x_shape, AAL_F64, err);
    return *r != NULL ? ops->asa_decode(ops, stored, pass->rule.eps, *r, err) : AAL_ENOMEM;
  }
  /* the noise and flip rules, and ASA's published decoding (+-eps, decode=pm1), make
   * their r on the host, in double, and copy it to where the table's tensors live */
  aal_tensor *host = aal_tensor_new(4, x_shape, err);
  if (host == NULL)
    return AAL_ENOMEM;
  int rc = AAL_OK;
  if (source == AAL_R_ASA) {
    *scale = pass->rule.lr_expansion;
    aal_tensor *bits = aal_tensor_host_view(stored, err);
    rc = bits != NULL ? aal_asa_decode_pm1(bits, pass->rule.eps, host, err) : AAL_ENOMEM;
    aal_tensor_release(bits);
  } else if (source == AAL_R_NOISE) {
    rc = noise_r(pass, u, stored, host, err);
  } else if (source == AAL_R_FLIP) {
    aal_tensor *x = aal_tensor_host_view(stored, err);
    rc = x != NULL ? AAL_OK : AAL_ENOMEM;
    for (size_t i = 0; rc == AAL_OK && i < x->size; i++)
      host->data[i] = -x->data[i];
    aal_tensor_release(x);
  }
  if (rc == AAL_OK && (*r = aal_ops_tensor_to(ops, host, err)) == NULL)
    rc = AAL_ENOMEM;
  aal_tensor_release(host);
  return rc;
}

/* Hands the observer x, h and r (r rebuilt from what is stored, exactly as backward
 * will rebuild it). */
static int observe_forward(const aal_resnet_pass *pass, const aal_conv_bn *u,
                           const aal_tensor *x, const aal_conv_input *in, aal_error *err)
{
  if (pass->observer.conv_forward == NULL)
    return AAL_OK;
  long shape[4];
  shape_of(in->h, shape);
  aal_tensor *r = NULL;
  double scale;
  int rc = aal_conv_r_from_stored(pass, u, in->source, in->stored, shape, &r, &scale, err);
  if (rc == AAL_OK)
    pass->observer.conv_forward(pass->observer.ctx, u, in->source, x, in->h, r);
  aal_tensor_release(r);
  return rc;
}

int aal_conv_bn_forward(aal_resnet *net, const aal_resnet_pass *pass, aal_tape *tape,
                        const aal_conv_bn *u, const aal_tensor *x, const aal_conv_input *in,
                        const char *relu, aal_tensor **out, aal_error *err)
{
  const aal_ops *ops = aal_pass_ops(pass);
  const aal_tensor *w = net->params[u->weight].value;
  long shape[4];
  *out = NULL;
  int rc = aal_conv2d_output_shape(in->h, w, u->stride, u->pad, shape, err);
  if (rc == AAL_OK)
    rc = observe_forward(pass, u, x, in, err);
  if (rc != AAL_OK)
    return rc;
  aal_tensor *y = aal_ops_tensor_new(ops, 4, shape, AAL_F64, err);
  aal_tensor *mean = aal_ops_tensor_new(ops, 1, &shape[1], AAL_F64, err);
  aal_tensor *invstd = aal_ops_tensor_new(ops, 1, &shape[1], AAL_F64, err);
  *out = aal_ops_tensor_new(ops, 4, shape, AAL_F64, err);
  aal_tensor *mask = relu ? aal_ops_tensor_new(ops, 4, shape, AAL_BITS, err) : NULL;
  rc = (y && mean && invstd && *out && (mask || !relu)) ? AAL_OK : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = ops->conv_forward(ops, in->h, w, u->stride, u->pad, y, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, u->conv_name, aal_r_slot(in->source), in->stored, err);
  const aal_tensor *gamma = net->params[u->bn[0]].value, *beta = net->params[u->bn[1]].value;
  aal_tensor *run_mean = net->params[u->bn[2]].value, *run_var = net->params[u->bn[3]].value;
  if (rc == AAL_OK && relu != NULL)
    rc = ops->bn_relu_forward_train(ops, y, gamma, beta, run_mean, run_var, AAL_BN_MOMENTUM,
                                    AAL_BN_EPS, *out, mask, mean, invstd, err);
  else if (rc == AAL_OK)
    rc = ops->bn_forward_train(ops, y, gamma, beta, run_mean, run_var, AAL_BN_MOMENTUM,
                               AAL_BN_EPS, *out, mean, invstd, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, u->bn_name, "x", y, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, u->bn_name, "mean", mean, err);
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, u->bn_name, "invstd", invstd, err);
  if (rc == AAL_OK && relu != NULL)
    rc = aal_tape_save(tape, relu, "mask", mask, err);
  aal_tensor_release(mask);
  aal_tensor_release(y);
  aal_tensor_release(mean);
  aal_tensor_release(invstd);
  return rc;
}

static int bn_backward_taped(aal_resnet *net, const aal_ops *ops, const aal_tape *tape,
                             const aal_conv_bn *u, const char *relu, const aal_tensor *dout,
                             aal_tensor **dy, aal_error *err)
{
  const aal_tensor *y = aal_tape_load(tape, u->bn_name, "x", err);
  const aal_tensor *mean = y ? aal_tape_load(tape, u->bn_name, "mean", err) : NULL;
  const aal_tensor *invstd = mean ? aal_tape_load(tape, u->bn_name, "invstd", err) : NULL;
  const aal_tensor *mask = NULL;
  if (invstd == NULL || (relu && (mask = aal_tape_load(tape, relu, "mask", err)) == NULL))
    return AAL_ETAPE;
  if ((*dy = aal_ops_tensor_like(ops, y, AAL_F64, err)) == NULL)
    return AAL_ENOMEM;
  const aal_tensor *gamma = net->params[u->bn[0]].value;
  aal_tensor *dgamma = net->params[u->bn[0]].grad, *dbeta = net->params[u->bn[1]].grad;
  if (relu != NULL)
    return ops->bn_relu_backward(ops, dout, mask, y, gamma, mean, invstd, *dy, dgamma, dbeta,
                                 err);
  return ops->bn_backward(ops, dout, y, gamma, mean, invstd, *dy, dgamma, dbeta, err);
}


int aal_conv_bn_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                         const aal_conv_bn *u, aal_r_source source, const char *relu,
                         const aal_tensor *dout, aal_tensor *dx, aal_error *err)
{
  aal_tensor *dy = NULL, *r = NULL;
  const aal_ops *ops = aal_pass_ops(pass);
  aal_param *w = &net->params[u->weight];
  int rc = bn_backward_taped(net, ops, tape, u, relu, dout, &dy, err);
  const aal_tensor *stored =
      rc == AAL_OK ? aal_tape_load(tape, u->conv_name, aal_r_slot(source), err) : NULL;
  if (rc == AAL_OK && stored == NULL)
    rc = AAL_ETAPE;
  /* r has the shape of the conv's input: dx's, or (first layer, no dx) that of the
   * stored tensor, which for every source but noise is the input's own shape */
  long x_shape[4] = {0};
  if (rc == AAL_OK && dx == NULL && source == AAL_R_NOISE)
    rc = aal_fail(err, AAL_EINVAL, "%s: the noise rule needs the input gradient's shape",
                  u->conv_name);
  if (rc == AAL_OK)
    shape_of(dx != NULL ? dx : stored, x_shape);
  double scale = 1.0;
  if (rc == AAL_OK)
    rc = aal_conv_r_from_stored(pass, u, source, stored, x_shape, &r, &scale, err);
  if (rc == AAL_OK)
    rc = ops->conv_backward_filter(ops, r, dy, u->stride, u->pad, w->grad, err);
  if (rc == AAL_OK)
    rc = scale != 1.0 ? ops->scale(ops, w->grad, scale, err) : AAL_OK;
  if (rc == AAL_OK && pass->observer.conv_backward != NULL)
    pass->observer.conv_backward(pass->observer.ctx, u, source, r, dy, w->grad);
  if (rc == AAL_OK && dx != NULL)
    rc = ops->conv_backward_data(ops, dy, w->value, u->stride, u->pad, dx, err);
  aal_tensor_release(dy);
  aal_tensor_release(r);
  return rc;
}

int aal_relu_forward_taped(const aal_ops *ops, aal_tape *tape, const char *layer,
                           const aal_tensor *x, aal_tensor **y, aal_error *err)
{
  aal_tensor *mask = aal_ops_tensor_like(ops, x, AAL_BITS, err);
  *y = aal_ops_tensor_like(ops, x, AAL_F64, err);
  int rc = (mask && *y) ? ops->relu_forward(ops, x, *y, mask, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_tape_save(tape, layer, "mask", mask, err);
  aal_tensor_release(mask);
  return rc;
}

int aal_relu_backward_taped(const aal_ops *ops, const aal_tape *tape, const char *layer,
                            const aal_tensor *dy, aal_tensor *dx, aal_error *err)
{
  const aal_tensor *mask = aal_tape_load(tape, layer, "mask", err);
  return mask != NULL ? ops->relu_backward(ops, dy, mask, dx, err) : AAL_ETAPE;
}

/* ---------------------------------------------------------------- the blocks */

static void layer_name(char *buf, size_t len, const aal_block *blk, const char *suffix)
{
  snprintf(buf, len, "%s.%s", blk->name, suffix);
}

/* The main path: conv1, conv2 (and conv3 for a bottleneck); a ReLU follows every one but
 * the last, named relu1, relu2. */
static int main_path(const aal_block *blk, const aal_conv_bn **units)
{
  units[0] = &blk->conv1;
  units[1] = &blk->conv2;
  units[2] = &blk->conv3;
  return blk->bottleneck ? 3 : 2;
}

void aal_block_out_relu(const aal_block *blk, char *buf, size_t len)
{
  layer_name(buf, len, blk, blk->bottleneck ? "relu3" : "relu2");
}

int aal_block_forward(aal_resnet *net, const aal_resnet_pass *pass, aal_tape *tape, int b,
                      aal_tensor *x, aal_tensor *reg, aal_tensor **out, aal_error *err)
{
  const aal_ops *ops = aal_pass_ops(pass);
  const aal_block *blk = &net->blocks[b];
  const aal_conv_bn *units[3];
  const int nmain = main_path(blk, units);
  char name[AAL_PARAM_NAME_LEN];
  aal_conv_input in1, in = {0};
  aal_tensor *h = aal_tensor_retain(x), *sc = NULL, *sum = NULL;
  *out = NULL;
  int rc = aal_conv_input_make(pass, pass->plan.first_conv[b], x, reg, &in1, err);
  for (int k = 0; k < nmain && rc == AAL_OK; k++) {
    aal_tensor *next = NULL;
    /* a conv's batch norm and the ReLU after it run as one op (the mask under reluK) */
    char relu[16];
    snprintf(relu, sizeof relu, "relu%d", k + 1);
    layer_name(name, sizeof name, blk, relu);
    if (k > 0)
      rc = aal_conv_input_make(pass, pass->plan.second_conv[b], h, NULL, &in, err);
    if (rc == AAL_OK)
      rc = aal_conv_bn_forward(net, pass, tape, units[k], h, k == 0 ? &in1 : &in,
                               k < nmain - 1 ? name : NULL, &next, err);
    aal_conv_input_release(&in);
    aal_tensor_release(h);
    h = next;
  }
  /* the projection shortcut computes on the same input as conv1 (x + eps*s for ASA);
   * the identity shortcut passes x itself */
  if (rc == AAL_OK && blk->has_downsample)
    rc = aal_conv_bn_forward(net, pass, tape, &blk->downsample, x, &in1, NULL, &sc, err);
  else if (rc == AAL_OK)
    sc = aal_tensor_retain(x);
  if (rc == AAL_OK && (sum = aal_ops_tensor_like(ops, h, AAL_F64, err)) == NULL)
    rc = AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = ops->add_forward(ops, h, sc, sum, err);
  aal_block_out_relu(blk, name, sizeof name);
  if (rc == AAL_OK)
    rc = aal_relu_forward_taped(ops, tape, name, sum, out, err);
  aal_conv_input_release(&in1);
  aal_tensor *tmp[] = {h, sc, sum};
  for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
    aal_tensor_release(tmp[i]);
  return rc;
}

/* A tensor for the gradient at the input of main-path unit k > 0, which is the output of
 * the ReLU reluK before it: shaped like that ReLU's mask. */
static aal_tensor *unit_input_like(const aal_ops *ops, const aal_tape *tape,
                                   const aal_block *blk, int k, aal_error *err)
{
  char relu[16], name[AAL_PARAM_NAME_LEN];
  snprintf(relu, sizeof relu, "relu%d", k);
  layer_name(name, sizeof name, blk, relu);
  const aal_tensor *mask = aal_tape_load(tape, name, "mask", err);
  return mask != NULL ? aal_ops_tensor_like(ops, mask, AAL_F64, err) : NULL;
}

int aal_block_backward(aal_resnet *net, const aal_resnet_pass *pass, const aal_tape *tape,
                       int b, const aal_tensor *dout, aal_tensor *dx, aal_error *err)
{
  const aal_ops *ops = aal_pass_ops(pass);
  const aal_block *blk = &net->blocks[b];
  const aal_conv_bn *units[3];
  const int nmain = main_path(blk, units);
  char name[AAL_PARAM_NAME_LEN];
  aal_tensor *dsum = aal_ops_tensor_like(ops, dout, AAL_F64, err);
  aal_tensor *dsc = NULL;
  if (blk->has_downsample)
    dsc = aal_ops_tensor_like(ops, dx, AAL_F64, err);
  int rc = (dsum && (dsc || !blk->has_downsample)) ? AAL_OK : AAL_ENOMEM;
  aal_block_out_relu(blk, name, sizeof name);
  if (rc == AAL_OK)
    rc = aal_relu_backward_taped(ops, tape, name, dout, dsum, err);
  /* d(x + eps*s)/dx = 1 almost everywhere, so the ASA input gradient is unchanged */
  aal_tensor *dh = aal_tensor_retain(dsum);
  for (int k = nmain - 1; k >= 0 && rc == AAL_OK; k--) {
    aal_tensor *dprev = k > 0 ? unit_input_like(ops, tape, blk, k, err) : aal_tensor_retain(dx);
    if (dprev == NULL) {
      rc = AAL_ETAPE;
      break;
    }
    char relu[16];
    snprintf(relu, sizeof relu, "relu%d", k + 1);
    layer_name(name, sizeof name, blk, relu);
    rc = aal_conv_bn_backward(net, pass, tape, units[k],
                              k == 0 ? pass->plan.first_conv[b] : pass->plan.second_conv[b],
                              k < nmain - 1 ? name : NULL, dh, dprev, err);
    aal_tensor_release(dh);
    dh = dprev;
  }
  aal_tensor_release(dh);
  if (rc == AAL_OK && blk->has_downsample)
    rc = aal_conv_bn_backward(net, pass, tape, &blk->downsample, pass->plan.first_conv[b], NULL,
                              dsum, dsc, err);
  /* the two paths' input gradients meet: dx += the shortcut's (dsum for the identity) */
  if (rc == AAL_OK)
    rc = ops->add_forward(ops, dx, blk->has_downsample ? dsc : dsum, dx, err);
  aal_tensor_release(dsum);
  aal_tensor_release(dsc);
  return rc;
}
