/* ResNet construction, naming, initialisation and the SGD update. */
#include "sim/model/resnet.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sim/ops/ops.h"

void aal_resnet_config_default(aal_resnet_config *cfg)
{
  cfg->base_width = 64;
  cfg->nstages = 4;
  for (int j = 0; j < AAL_MAX_STAGES; j++)
    cfg->blocks[j] = 2;
  cfg->classes = 200;
  cfg->in_size = 64;
  cfg->in_channels = 3;
  cfg->block = AAL_BLOCK_BASIC;
  cfg->stem = AAL_STEM_TINY;
}

static const struct {
  const char *name;
  aal_block_kind block;
  int blocks[AAL_MAX_STAGES];
} models[] = {
    {"resnet18", AAL_BLOCK_BASIC, {2, 2, 2, 2}},
    {"resnet34", AAL_BLOCK_BASIC, {3, 4, 6, 3}},
    {"resnet50", AAL_BLOCK_BOTTLENECK, {3, 4, 6, 3}},
    {"resnet101", AAL_BLOCK_BOTTLENECK, {3, 4, 23, 3}},
    {"resnet152", AAL_BLOCK_BOTTLENECK, {3, 8, 36, 3}},
};
#define NMODELS (sizeof models / sizeof models[0])

int aal_resnet_config_set_model(aal_resnet_config *cfg, const char *name, aal_error *err)
{
  for (size_t i = 0; name != NULL && i < NMODELS; i++)
    if (strcmp(name, models[i].name) == 0) {
      cfg->block = models[i].block;
      cfg->nstages = AAL_MAX_STAGES;
      memcpy(cfg->blocks, models[i].blocks, sizeof cfg->blocks);
      return AAL_OK;
    }
  return aal_fail(err, AAL_EINVAL, "--model '%s': expected resnet18, resnet34, resnet50, "
                  "resnet101 or resnet152", name ? name : "(null)");
}

int aal_resnet_config_set_stem(aal_resnet_config *cfg, const char *name, aal_error *err)
{
  if (name != NULL && strcmp(name, "tiny") == 0)
    cfg->stem = AAL_STEM_TINY;
  else if (name != NULL && strcmp(name, "imagenet") == 0)
    cfg->stem = AAL_STEM_IMAGENET;
  else
    return aal_fail(err, AAL_EINVAL, "--stem '%s': expected tiny or imagenet",
                    name ? name : "(null)");
  return AAL_OK;
}

const char *aal_resnet_stem_name(aal_stem_kind stem)
{
  return stem == AAL_STEM_IMAGENET ? "imagenet" : "tiny";
}

void aal_resnet_config_model_name(const aal_resnet_config *cfg, char *buf, size_t len)
{
  for (size_t i = 0; i < NMODELS; i++)
    if (models[i].block == cfg->block &&
        memcmp(models[i].blocks, cfg->blocks, sizeof cfg->blocks) == 0) {
      snprintf(buf, len, "%s", models[i].name);
      return;
    }
  snprintf(buf, len, "%s-%d-%d-%d-%d", cfg->block == AAL_BLOCK_BOTTLENECK ? "bottleneck" : "basic",
           cfg->blocks[0], cfg->blocks[1], cfg->blocks[2], cfg->blocks[3]);
}

int aal_resnet_config_depth(const aal_resnet_config *cfg)
{
  int blocks = 0;
  for (int j = 0; j < cfg->nstages; j++)
    blocks += cfg->blocks[j];
  return 2 + blocks * (cfg->block == AAL_BLOCK_BOTTLENECK ? 3 : 2);
}

/* conv output size, (in + 2 pad - k) / stride + 1 */
static int out_size(int in, int k, int stride, int pad)
{
  return (in + 2 * pad - k) / stride + 1;
}

int aal_resnet_config_stem_size(const aal_resnet_config *cfg)
{
  if (cfg->stem == AAL_STEM_IMAGENET)
    return out_size(out_size(cfg->in_size, 7, 2, 3), 3, 2, 1);
  return out_size(cfg->in_size, 3, 2, 1);
}

int aal_resnet_config_set_width(aal_resnet_config *cfg, double multiplier, aal_error *err)
{
  const double w = 64.0 * multiplier;
  if (!(w >= 1.0 && w <= 1024.0) || fabs(w - round(w)) > 1e-9)
    return aal_fail(err, AAL_EINVAL,
                    "--width %g: 64 * width must be a whole number of channels in 1..1024",
                    multiplier);
  cfg->base_width = (int)round(w);
  return AAL_OK;
}

int aal_resnet_config_set_blocks(aal_resnet_config *cfg, const char *text, aal_error *err)
{
  int blocks[AAL_MAX_STAGES], n = 0;
  const char *p = text;
  while (p != NULL && *p != '\0') {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno != 0 || v < 1 || v > AAL_MAX_BLOCKS || n == AAL_MAX_STAGES ||
        (*end != ',' && *end != '\0'))
      return aal_fail(err, AAL_EINVAL,
                      "--blocks '%s': expected %d comma-separated block counts in 1..%d",
                      text, AAL_MAX_STAGES, AAL_MAX_BLOCKS);
    blocks[n++] = (int)v;
    p = *end == ',' ? end + 1 : end;
    if (*end == ',' && *p == '\0')
      return aal_fail(err, AAL_EINVAL, "--blocks '%s': trailing comma", text);
  }
  if (n != AAL_MAX_STAGES)
    return aal_fail(err, AAL_EINVAL, "--blocks '%s': expected %d block counts, e.g. 2,2,2,2",
                    text, AAL_MAX_STAGES);
  memcpy(cfg->blocks, blocks, sizeof blocks);
  cfg->nstages = AAL_MAX_STAGES;
  return AAL_OK;
}

static int check_config(const aal_resnet_config *c, aal_error *err)
{
  if (c->base_width < 1 || c->base_width > 1024)
    return aal_fail(err, AAL_EINVAL, "resnet: base width %d outside 1..1024", c->base_width);
  if (c->nstages != AAL_MAX_STAGES)
    return aal_fail(err, AAL_EINVAL, "resnet: %d stages; this model has %d", c->nstages,
                    AAL_MAX_STAGES);
  int total = 0;
  for (int j = 0; j < c->nstages; j++) {
    if (c->blocks[j] < 1 || c->blocks[j] > AAL_MAX_BLOCKS)
      return aal_fail(err, AAL_EINVAL, "resnet: stage %d has %d blocks (1..%d)", j + 1,
                      c->blocks[j], AAL_MAX_BLOCKS);
    total += c->blocks[j];
  }
  if (total > AAL_MAX_BLOCKS)
    return aal_fail(err, AAL_EINVAL, "resnet: %d blocks; at most %d", total, AAL_MAX_BLOCKS);
  if (c->block != AAL_BLOCK_BASIC && c->block != AAL_BLOCK_BOTTLENECK)
    return aal_fail(err, AAL_EINVAL, "resnet: unknown block kind %d", (int)c->block);
  if (c->stem != AAL_STEM_TINY && c->stem != AAL_STEM_IMAGENET)
    return aal_fail(err, AAL_EINVAL, "resnet: unknown stem %d", (int)c->stem);
  if (c->classes < 2 || c->classes > 100000)
    return aal_fail(err, AAL_EINVAL, "resnet: %d classes (2..100000)", c->classes);
  /* the stem halves the size once (tiny) or twice (imagenet), the three stride-2 stages
   * three more times: every stage must keep at least one pixel */
  const int min_size = c->stem == AAL_STEM_IMAGENET ? 32 : 16;
  if (c->in_size < min_size || c->in_size > 4096)
    return aal_fail(err, AAL_EINVAL, "--size %d: outside %d..4096 for the %s stem", c->in_size,
                    min_size, aal_resnet_stem_name(c->stem));
  if (c->in_channels < 1 || c->in_channels > 64)
    return aal_fail(err, AAL_EINVAL, "resnet: %d input channels (1..64)", c->in_channels);
  return AAL_OK;
}

static int add_param(aal_resnet *net, const char *name, int ndim, const long *shape,
                     int trainable, aal_error *err)
{
  if (net->nparams == net->capacity) {
    int cap = net->capacity ? 2 * net->capacity : 64;
    aal_param *p = realloc(net->params, (size_t)cap * sizeof *p);
    if (p == NULL)
      return -aal_fail(err, AAL_ENOMEM, "resnet: cannot grow the parameter list");
    net->params = p;
    net->capacity = cap;
  }
  aal_param *p = &net->params[net->nparams];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  if (net->layout_only)
    return net->nparams++;
  p->value = aal_tensor_new(ndim, shape, err);
  if (p->value == NULL)
    return -AAL_ENOMEM;
  if (trainable && (p->grad = aal_tensor_new(ndim, shape, err)) == NULL) {
    aal_tensor_release(p->value);
    return -AAL_ENOMEM;
  }
  return net->nparams++;
}

/* Adds "<conv>.weight" and the batch norm "<bn>.{weight,bias,running_mean,running_var}". */
static int add_conv_bn(aal_resnet *net, aal_conv_bn *u, const char *conv_name,
                       const char *bn_name, int cin, int cout, int ksize, int stride,
                       aal_error *err)
{
  char name[AAL_PARAM_NAME_LEN + 16];
  snprintf(u->conv_name, sizeof u->conv_name, "%s", conv_name);
  snprintf(u->bn_name, sizeof u->bn_name, "%s", bn_name);
  u->stride = stride;
  u->pad = ksize / 2;
  u->in_channels = cin;
  u->out_channels = cout;
  u->ksize = ksize;
  const long wshape[4] = {cout, cin, ksize, ksize}, cshape[1] = {cout};
  snprintf(name, sizeof name, "%s.weight", conv_name);
  if ((u->weight = add_param(net, name, 4, wshape, 1, err)) < 0)
    return -u->weight;
  static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "%s.%s", bn_name, suffix[i]);
    if ((u->bn[i] = add_param(net, name, 1, cshape, i < 2, err)) < 0)
      return -u->bn[i];
  }
  return AAL_OK;
}

static int add_unit(aal_resnet *net, aal_block *b, aal_conv_bn *u, const char *conv,
                    const char *bn, int cin, int cout, int ksize, int stride, aal_error *err)
{
  char conv_name[AAL_PARAM_NAME_LEN], bn_name[AAL_PARAM_NAME_LEN];
  snprintf(conv_name, sizeof conv_name, "%s.%s", b->name, conv);
  snprintf(bn_name, sizeof bn_name, "%s.%s", b->name, bn);
  return add_conv_bn(net, u, conv_name, bn_name, cin, cout, ksize, stride, err);
}

/* planes: the block's inner width; its output has planes (basic) or 4 planes channels */
static int add_block(aal_resnet *net, aal_block *b, int stage, int index, int cin, int planes,
                     int stride, int in_size, aal_error *err)
{
  const int bottleneck = net->cfg.block == AAL_BLOCK_BOTTLENECK;
  const int cout = bottleneck ? 4 * planes : planes;
  snprintf(b->name, sizeof b->name, "layer%d.%d", (stage + 1) % 100, index % 1000);
  b->in_channels = cin;
  b->out_channels = cout;
  b->stride = stride;
  b->in_size = in_size;
  b->bottleneck = bottleneck;
  b->has_downsample = stride != 1 || cin != cout;
  int rc;
  if (bottleneck) {
    rc = add_unit(net, b, &b->conv1, "conv1", "bn1", cin, planes, 1, 1, err);
    if (rc == AAL_OK)
      rc = add_unit(net, b, &b->conv2, "conv2", "bn2", planes, planes, 3, stride, err);
    if (rc == AAL_OK)
      rc = add_unit(net, b, &b->conv3, "conv3", "bn3", planes, cout, 1, 1, err);
  } else {
    rc = add_unit(net, b, &b->conv1, "conv1", "bn1", cin, cout, 3, stride, err);
    if (rc == AAL_OK)
      rc = add_unit(net, b, &b->conv2, "conv2", "bn2", cout, cout, 3, 1, err);
  }
  if (rc == AAL_OK && b->has_downsample)
    rc = add_unit(net, b, &b->downsample, "downsample.0", "downsample.1", cin, cout, 1, stride,
                  err);
  return rc;
}

int aal_block_convs(const aal_block *blk, const aal_conv_bn **units)
{
  int n = 0;
  units[n++] = &blk->conv1;
  units[n++] = &blk->conv2;
  if (blk->bottleneck)
    units[n++] = &blk->conv3;
  if (blk->has_downsample)
    units[n++] = &blk->downsample;
  return n;
}

static int build(aal_resnet *net, aal_error *err)
{
  const aal_resnet_config *c = &net->cfg;
  const int imagenet = c->stem == AAL_STEM_IMAGENET;
  int rc = add_conv_bn(net, &net->stem, "conv1", "bn1", c->in_channels, c->base_width,
                       imagenet ? 7 : 3, 2, err);
  net->nblocks = 0;
  for (int j = 0; j < c->nstages; j++)
    net->nblocks += c->blocks[j];
  if (net->nblocks > AAL_MAX_BLOCKS)
    return aal_fail(err, AAL_EINVAL, "resnet: %d blocks; at most %d", net->nblocks,
                    AAL_MAX_BLOCKS);
  net->blocks = calloc((size_t)net->nblocks, sizeof *net->blocks);
  if (net->blocks == NULL)
    return aal_fail(err, AAL_ENOMEM, "resnet: cannot allocate blocks");
  int b = 0, cin = c->base_width, size = aal_resnet_config_stem_size(c);
  for (int j = 0; j < c->nstages && rc == AAL_OK; j++) {
    for (int i = 0; i < c->blocks[j] && rc == AAL_OK; i++, b++) {
      const int stride = (j > 0 && i == 0) ? 2 : 1;
      rc = add_block(net, &net->blocks[b], j, i, cin, c->base_width << j, stride, size, err);
      cin = net->blocks[b].out_channels;
      size = out_size(size, 3, stride, 1);
    }
  }
  const long wshape[2] = {c->classes, cin}, bshape[1] = {c->classes};
  if (rc == AAL_OK && (net->fc_weight = add_param(net, "fc.weight", 2, wshape, 1, err)) < 0)
    rc = -net->fc_weight;
  if (rc == AAL_OK && (net->fc_bias = add_param(net, "fc.bias", 1, bshape, 1, err)) < 0)
    rc = -net->fc_bias;
  return rc;
}

static void init_conv_bn(aal_resnet *net, const aal_conv_bn *u, gsl_rng *rng)
{
  aal_tensor *w = net->params[u->weight].value;
  /* Kaiming normal, mode fan_out, ReLU gain: std = sqrt(2 / (K * R * S)) */
  const double std = sqrt(2.0 / (double)(w->shape[0] * w->shape[2] * w->shape[3]));
  for (size_t i = 0; i < w->size; i++)
    w->data[i] = gsl_ran_gaussian(rng, std);
  aal_tensor_fill(net->params[u->bn[0]].value, 1.0);
  aal_tensor_fill(net->params[u->bn[3]].value, 1.0);
}

static void init_params(aal_resnet *net, unsigned long seed)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  init_conv_bn(net, &net->stem, rng);
  for (int b = 0; b < net->nblocks; b++) {
    const aal_conv_bn *units[4];
    const int n = aal_block_convs(&net->blocks[b], units);
    for (int k = 0; k < n; k++)
      init_conv_bn(net, units[k], rng);
  }
  /* nn.Linear's default: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), same bias */
  aal_tensor *w = net->params[net->fc_weight].value, *bias = net->params[net->fc_bias].value;
  const double bound = 1.0 / sqrt((double)w->shape[1]);
  for (size_t i = 0; i < w->size; i++)
    w->data[i] = gsl_ran_flat(rng, -bound, bound);
  for (size_t i = 0; i < bias->size; i++)
    bias->data[i] = gsl_ran_flat(rng, -bound, bound);
  gsl_rng_free(rng);
}

int aal_resnet_init(aal_resnet *net, const aal_resnet_config *cfg, unsigned long seed,
                    aal_error *err)
{
  if (net == NULL || cfg == NULL)
    return aal_fail(err, AAL_EINVAL, "resnet init: NULL argument");
  memset(net, 0, sizeof *net);
  int rc = check_config(cfg, err);
  if (rc != AAL_OK)
    return rc;
  net->cfg = *cfg;
  if ((rc = build(net, err)) != AAL_OK) {
    aal_resnet_free(net);
    return rc;
  }
  init_params(net, seed);
  return AAL_OK;
}

int aal_resnet_layout(aal_resnet *net, const aal_resnet_config *cfg, aal_error *err)
{
  if (net == NULL || cfg == NULL)
    return aal_fail(err, AAL_EINVAL, "resnet layout: NULL argument");
  memset(net, 0, sizeof *net);
  int rc = check_config(cfg, err);
  if (rc != AAL_OK)
    return rc;
  net->cfg = *cfg;
  net->layout_only = 1;
  if ((rc = build(net, err)) != AAL_OK)
    aal_resnet_free(net);
  return rc;
}

void aal_resnet_free(aal_resnet *net)
{
  if (net == NULL)
    return;
  for (int i = 0; i < net->nparams; i++) {
    aal_tensor_release(net->params[i].value);
    aal_tensor_release(net->params[i].grad);
    aal_tensor_release(net->params[i].momentum);
  }
  free(net->params);
  free(net->blocks);
  memset(net, 0, sizeof *net);
}

aal_param *aal_resnet_find(aal_resnet *net, const char *name)
{
  for (int i = 0; net != NULL && name != NULL && i < net->nparams; i++)
    if (strcmp(net->params[i].name, name) == 0)
      return &net->params[i];
  return NULL;
}

void aal_resnet_stride2_flags(const aal_resnet *net, int *stride2)
{
  for (int b = 0; b < net->nblocks; b++)
    stride2[b] = net->blocks[b].stride != 1;
}

size_t aal_resnet_param_count(const aal_resnet *net)
{
  size_t n = 0;
  for (int i = 0; i < net->nparams; i++)
    if (net->params[i].grad != NULL)
      n += net->params[i].value->size;
  return n;
}

static size_t unit_params(const aal_conv_bn *u)
{
  return (size_t)u->out_channels * (size_t)u->in_channels * (size_t)(u->ksize * u->ksize) +
         2 * (size_t)u->out_channels;
}

size_t aal_resnet_layout_param_count(const aal_resnet *net)
{
  size_t n = unit_params(&net->stem);
  for (int b = 0; b < net->nblocks; b++) {
    const aal_conv_bn *units[4];
    const int k = aal_block_convs(&net->blocks[b], units);
    for (int i = 0; i < k; i++)
      n += unit_params(units[i]);
  }
  const size_t features = (size_t)net->blocks[net->nblocks - 1].out_channels;
  return n + (size_t)net->cfg.classes * (features + 1);
}

int aal_resnet_move(aal_resnet *net, const aal_ops *ops, aal_error *err)
{
  int rc = AAL_OK;
  for (int i = 0; i < net->nparams && rc == AAL_OK; i++) {
    aal_param *p = &net->params[i];
    if (p->grad == NULL)
      continue;  /* buffers (BN running statistics) live on the host */
    aal_tensor **t[] = {&p->value, &p->grad, &p->momentum};
    for (int k = 0; k < 3 && rc == AAL_OK; k++)
      if (*t[k] != NULL)
        rc = aal_ops_move(ops, t[k], err);
  }
  return rc;
}

int aal_resnet_sgd_step(aal_resnet *net, double lr, double momentum, double weight_decay,
                        aal_error *err)
{
  return aal_resnet_sgd_step_ops(net, NULL, lr, momentum, weight_decay, err);
}

/* The reference entry (sim/ops/ref.c) is the loop d = g + wd w; buf = first ? d : m buf + d;
 * w -= lr buf, element by element in double, as this function always computed it. */
int aal_resnet_sgd_step_ops(aal_resnet *net, const aal_ops *table, double lr, double momentum,
                            double weight_decay, aal_error *err)
{
  const aal_ops *ops = aal_ops_or_ref(table);
  if (!(lr >= 0) || !(momentum >= 0 && momentum < 1) || !(weight_decay >= 0))
    return aal_fail(err, AAL_EINVAL, "sgd: lr %g, momentum %g, weight decay %g out of range",
                    lr, momentum, weight_decay);
  for (int i = 0; i < net->nparams; i++) {
    aal_param *p = &net->params[i];
    if (p->grad == NULL)
      continue;
    const int first = p->momentum == NULL;
    if (first && momentum > 0 &&
        (p->momentum = aal_ops_tensor_like(ops, p->value, AAL_F64, err)) == NULL)
      return AAL_ENOMEM;
    int rc = ops->sgd_update(ops, p->value, p->grad, p->momentum, lr, momentum, weight_decay,
                             first, err);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

int aal_resnet_pass_init(aal_resnet_pass *pass, const aal_resnet *net, const aal_rule *rule,
                         unsigned long noise_seed, unsigned long step, aal_error *err)
{
  if (pass == NULL || net == NULL || rule == NULL)
    return aal_fail(err, AAL_EINVAL, "resnet pass: NULL argument");
  int stride2[AAL_MAX_BLOCKS];
  aal_resnet_stride2_flags(net, stride2);
  memset(pass, 0, sizeof *pass);
  pass->rule = *rule;
  pass->noise_seed = noise_seed;
  pass->step = step;
  /* the bottleneck ResNets' first block is the authors' plain `layer0` */
  const int lead_plain = net->cfg.block == AAL_BLOCK_BOTTLENECK ? 1 : 0;
  return aal_rule_plan_make(rule, net->nblocks, stride2, lead_plain, &pass->plan, err);
}
