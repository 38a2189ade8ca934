/* The dry run of the tape and the storage policies (sim/model/storage.h). */
#include "sim/model/storage.h"

#include <stdlib.h>
#include <string.h>

#include "sim/model/resnet_internal.h"

int aal_policy_parse(const char *text, aal_policy *policy, aal_error *err)
{
  static const char *const names[] = {"none", "gcp", "actnn", "gcp-block"};
  for (int i = 0; text != NULL && i < 4; i++)
    if (strcmp(text, names[i]) == 0) {
      *policy = (aal_policy)i;
      return AAL_OK;
    }
  return aal_fail(err, AAL_EINVAL, "--policy '%s': expected none, gcp, actnn or gcp-block",
                  text ? text : "(null)");
}

const char *aal_policy_name(aal_policy policy)
{
  static const char *const names[] = {"none", "gcp", "actnn", "gcp-block"};
  return (unsigned)policy < 4 ? names[policy] : "?";
}

void aal_storage_plan_free(aal_storage_plan *plan)
{
  free(plan->entries);
  memset(plan, 0, sizeof *plan);
}

/* A tensor being laid out: its id, elements per sample and channels. */
typedef struct {
  long id;
  size_t per_sample;
} dry_tensor;

typedef struct {
  aal_storage_plan *plan;
  int batch;
  long next_id;
  int block;
} dry_run;

static dry_tensor dry_new(dry_run *d, size_t per_sample)
{
  return (dry_tensor){d->next_id++, per_sample};
}

static int save(dry_run *d, const char *layer, const char *slot, aal_saved_kind kind,
                dry_tensor t, int recomputed, aal_error *err)
{
  aal_storage_plan *p = d->plan;
  if (p->count == p->capacity) {
    const size_t cap = p->capacity ? 2 * p->capacity : 256;
    aal_saved *e = realloc(p->entries, cap * sizeof *e);
    if (e == NULL)
      return aal_fail(err, AAL_ENOMEM, "memory plan: cannot grow to %zu entries", cap);
    p->entries = e;
    p->capacity = cap;
  }
  aal_saved *e = &p->entries[p->count++];
  memset(e, 0, sizeof *e);
  snprintf(e->layer, sizeof e->layer, "%s", layer);
  snprintf(e->slot, sizeof e->slot, "%s", slot);
  e->kind = kind;
  e->per_sample = kind == AAL_SAVED_STATS ? 0 : t.per_sample;
  e->elements = kind == AAL_SAVED_STATS ? t.per_sample : t.per_sample * (size_t)d->batch;
  e->id = t.id;
  e->block = d->block;
  e->recomputed = recomputed;
  return AAL_OK;
}

/* What a conv stores for its weight gradient (aal_conv_input_make). */
static dry_tensor conv_stored(dry_run *d, aal_r_source source, dry_tensor x, dry_tensor reg,
                              aal_saved_kind *kind)
{
  *kind = AAL_SAVED_VALUES;
  switch (source) {
  case AAL_R_ARA: return reg;
  case AAL_R_ASA: *kind = AAL_SAVED_BITS; return dry_new(d, x.per_sample);
  case AAL_R_NOISE: return dry_new(d, 1);  /* one norm per sample */
  case AAL_R_INPUT:
  case AAL_R_FLIP: break;
  }
  return x;
}

/* conv + bn (+ relu): aal_conv_bn_forward's saves.  out_ps: the conv output's elements
 * per sample; stored: the conv's entry.  Returns the output tensor (the ReLU's when
 * relu is given, else the batch norm's). */
static int conv_bn(dry_run *d, const aal_conv_bn *u, const char *slot, dry_tensor stored,
                   aal_saved_kind kind, int stored_recomputed, size_t out_ps, const char *relu, int bn_recomputed,
                   int relu_recomputed, dry_tensor *out, aal_error *err)
{
  const dry_tensor y = dry_new(d, out_ps), stat = {-1, (size_t)u->out_channels};
  dry_tensor mean = stat, invstd = stat;
  mean.id = d->next_id++;
  invstd.id = d->next_id++;
  int rc = save(d, u->conv_name, slot, kind, stored, stored_recomputed, err);
  if (rc == AAL_OK)
    rc = save(d, u->bn_name, "x", AAL_SAVED_VALUES, y, bn_recomputed, err);
  if (rc == AAL_OK)
    rc = save(d, u->bn_name, "mean", AAL_SAVED_STATS, mean, 0, err);
  if (rc == AAL_OK)
    rc = save(d, u->bn_name, "invstd", AAL_SAVED_STATS, invstd, 0, err);
  if (rc == AAL_OK && relu != NULL)
    rc = save(d, relu, "mask", AAL_SAVED_BITS, dry_new(d, out_ps), relu_recomputed, err);
  *out = dry_new(d, out_ps);
  return rc;
}

static int out_size(int in, const aal_conv_bn *u)
{
  return (in + 2 * u->pad - u->ksize) / u->stride + 1;
}

static int stem(dry_run *d, const aal_resnet *net, dry_tensor *x0, aal_error *err)
{
  const aal_resnet_config *c = &net->cfg;
  const dry_tensor image = dry_new(d, (size_t)c->in_channels * c->in_size * c->in_size);
  const int s1 = out_size(c->in_size, &net->stem);
  const int imagenet = c->stem == AAL_STEM_IMAGENET;
  const size_t first = d->plan->count;
  /* the authors checkpoint the whole stem (resnet.py: checkpoint(self.v1, x)) */
  int rc = conv_bn(d, &net->stem, aal_r_slot(AAL_R_INPUT), image, AAL_SAVED_VALUES, 0,
                   (size_t)net->stem.out_channels * s1 * s1, "relu", 1, 1, x0, err);
  if (rc == AAL_OK)
    d->plan->entries[first].input = image.per_sample * (size_t)d->batch;
  if (rc != AAL_OK || !imagenet)
    return rc;
  rc = save(d, "maxpool", "x", AAL_SAVED_POOL, *x0, 1, err);
  const int s = aal_resnet_config_stem_size(c);
  d->plan->entries[d->plan->count - 1].outputs = (size_t)net->stem.out_channels * s * s *
                                                 (size_t)d->batch;
  *x0 = dry_new(d, (size_t)net->stem.out_channels * s * s);
  return rc;
}

static int block(dry_run *d, const aal_resnet *net, const aal_rule_plan *rp, int b,
                 dry_tensor x, dry_tensor reg, dry_tensor *out, aal_error *err)
{
  const aal_block *blk = &net->blocks[b];
  const aal_conv_bn *units[3] = {&blk->conv1, &blk->conv2, &blk->conv3};
  const int nmain = blk->bottleneck ? 3 : 2;
  char name[AAL_TAPE_NAME_LEN];
  aal_saved_kind kind1, kind;
  const dry_tensor stored1 = conv_stored(d, rp->first_conv[b], x, reg, &kind1);
  dry_tensor h = x;
  int size = blk->in_size, rc = AAL_OK;
  const size_t first = d->plan->count;
  d->block = b;
  for (int k = 0; k < nmain && rc == AAL_OK; k++) {
    const int last = k == nmain - 1;
    dry_tensor stored = stored1;
    aal_r_source source = rp->first_conv[b];
    kind = kind1;
    if (k > 0) {
      source = rp->second_conv[b];
      stored = conv_stored(d, source, h, reg, &kind);
    }
    size = out_size(size, units[k]);
    snprintf(name, sizeof name, "%s.relu%d", blk->name, k + 1);
    /* gcp: a ReLU output inside the block (the next conv's input) and its mask are
     * recomputed from the batch norm's input; so is a bottleneck's bn3 input */
    const int recomputed_input = k > 0 && kind == AAL_SAVED_VALUES;
    rc = conv_bn(d, units[k], aal_r_slot(source), stored, kind, recomputed_input,
                 (size_t)units[k]->out_channels * size * size, last ? NULL : name,
                 last && blk->bottleneck, !last, &h, err);
  }
  if (rc == AAL_OK && blk->has_downsample) {
    const int s = out_size(blk->in_size, &blk->downsample);
    dry_tensor sc;
    /* gcp: the plain lead block's shortcut is the authors' ConvBn_ARA, which recomputes
     * conv and batch norm from the block input (resnet.py: "only self.layer0 is
     * convbn=True because the shortcut in self.layer0 consumes lots of memory") */
    const int lead = rp->lead_plain && rp->group_of[b] == 0;
    rc = conv_bn(d, &blk->downsample, aal_r_slot(rp->first_conv[b]), stored1, kind1, 0,
                 (size_t)blk->downsample.out_channels * s * s, NULL, lead, 0, &sc, err);
  }
  aal_block_out_relu(blk, name, sizeof name);
  if (rc == AAL_OK)
    rc = save(d, name, "mask", AAL_SAVED_BITS, dry_new(d, h.per_sample), 0, err);
  if (rc == AAL_OK)
    d->plan->entries[first].input = x.per_sample * (size_t)d->batch;
  *out = dry_new(d, h.per_sample);
  return rc;
}

/* Links each entry to the previous one holding the same tensor (ids are 0..nids-1), so
 * that finding a tensor's first kept entry walks its few holders, not the whole plan. */
static int link_same(aal_storage_plan *plan, long nids, aal_error *err)
{
  long *last = malloc((size_t)(nids > 0 ? nids : 1) * sizeof *last);
  if (last == NULL)
    return aal_fail(err, AAL_ENOMEM, "memory plan: %ld tensor ids", nids);
  for (long k = 0; k < nids; k++)
    last[k] = -1;
  for (size_t i = 0; i < plan->count; i++) {
    aal_saved *e = &plan->entries[i];
    e->prev_same = last[e->id];
    last[e->id] = (long)i;
  }
  free(last);
  return AAL_OK;
}

int aal_storage_plan_make(const aal_resnet_config *cfg, const aal_rule *rule, int batch,
                          aal_storage_plan *plan, aal_error *err)
{
  memset(plan, 0, sizeof *plan);
  if (batch < 1)
    return aal_fail(err, AAL_EINVAL, "--batch %d must be >= 1", batch);
  aal_resnet net;
  int rc = aal_resnet_layout(&net, cfg, err);
  if (rc != AAL_OK)
    return rc;
  aal_resnet_pass pass;
  rc = aal_resnet_pass_init(&pass, &net, rule, 0, 0, err);
  dry_run d = {plan, batch, 0, -1};
  dry_tensor cur = {0, 0}, reg;
  if (rc == AAL_OK)
    rc = stem(&d, &net, &cur, err);
  reg = cur;
  for (int b = 0; b < net.nblocks && rc == AAL_OK; b++) {
    dry_tensor next;
    rc = block(&d, &net, &pass.plan, b, cur, reg, &next, err);
    cur = next;
    if (pass.plan.reset_after[b])
      reg = cur;
  }
  d.block = -1;
  const int c_out = net.blocks[net.nblocks - 1].out_channels;
  if (rc == AAL_OK)
    rc = save(&d, "fc", "x", AAL_SAVED_VALUES, dry_new(&d, (size_t)c_out), 0, err);
  if (rc == AAL_OK)
    rc = save(&d, "loss", "prob", AAL_SAVED_VALUES, dry_new(&d, (size_t)cfg->classes), 0, err);
  aal_resnet_free(&net);
  if (rc == AAL_OK)
    rc = link_same(plan, d.next_id, err);
  if (rc != AAL_OK)
    aal_storage_plan_free(plan);
  return rc;
}

size_t aal_saved_tape_bytes(const aal_saved *e, int at_f32)
{
  if (e->kind == AAL_SAVED_BITS)
    return (e->elements + 7) / 8;
  return e->elements * (at_f32 ? 4 : 8);
}

/* ActNN: per sample, ceil(n/256) groups of 256 2-bit values and two bfloat16 */
static size_t actnn_bytes(const aal_saved *e)
{
  const size_t groups = (e->per_sample + 255) / 256;
  return (e->elements / e->per_sample) * groups * (256 * 2 / 8 + 2 * 2);
}

/* The head's entries (the pooled features and the probabilities) */
static int is_head(const aal_saved *e)
{
  return e->block < 0 && e->input == 0 &&
         (strcmp(e->layer, "fc") == 0 || strcmp(e->layer, "loss") == 0);
}

size_t aal_saved_policy_bytes(const aal_saved *e, aal_policy policy)
{
  if (policy == AAL_POLICY_GCP_BLOCK) {
    if (e->input > 0)
      return 4 * e->input;  /* the stem's or the block's input, at float32 */
    return is_head(e) ? aal_saved_tape_bytes(e, 1) : 0;
  }
  if (policy == AAL_POLICY_GCP && e->recomputed)
    return 0;
  if (policy == AAL_POLICY_ACTNN && e->kind == AAL_SAVED_VALUES && e->per_sample > 1)
    return actnn_bytes(e);
  if (policy == AAL_POLICY_ACTNN && e->kind == AAL_SAVED_POOL)
    return e->outputs;  /* one byte: which of the k*k window's elements won */
  if (e->kind == AAL_SAVED_POOL)
    return aal_saved_tape_bytes(e, 1) + 8 * e->outputs;  /* + nn.MaxPool2d's int64 indices */
  return aal_saved_tape_bytes(e, 1);
}

/* Bytes of entry i under `mode` (-2: tape at double, -1: tape at float32, else a policy),
 * 0 unless it is the first kept entry of its tensor. */
static size_t entry_bytes(const aal_storage_plan *plan, size_t i, int mode)
{
  const aal_saved *e = &plan->entries[i];
  const size_t own = mode == -2   ? aal_saved_tape_bytes(e, 0)
                     : mode == -1 ? aal_saved_tape_bytes(e, 1)
                                  : aal_saved_policy_bytes(e, (aal_policy)mode);
  if (own == 0)
    return 0;
  if (mode == AAL_POLICY_GCP_BLOCK && e->input > 0)
    return own;  /* a block's input, not the tensor this entry holds: each counts once */
  for (long j = e->prev_same; j >= 0; j = plan->entries[j].prev_same)
    if (mode < 0 || aal_saved_policy_bytes(&plan->entries[j], (aal_policy)mode) > 0)
      return 0;
  return own;
}

/* gcp-block's peak: the largest tape (float32) of the stem or one block, recomputed */
static size_t largest_block(const aal_storage_plan *plan)
{
  size_t best = 0, cur = 0;
  for (size_t i = 0; i < plan->count; i++) {
    const aal_saved *e = &plan->entries[i];
    if (is_head(e))
      continue;  /* kept, not recomputed */
    if (e->input > 0)
      cur = 0;   /* the stem or the next block begins */
    cur += entry_bytes(plan, i, -1);
    if (cur > best)
      best = cur;
  }
  return best;
}

size_t aal_storage_bytes(const aal_storage_plan *plan, aal_policy policy,
                         size_t *recompute_peak)
{
  size_t total = 0, peak = 0;
  for (size_t i = 0; i < plan->count; i++) {
    total += entry_bytes(plan, i, (int)policy);
    const aal_saved *e = &plan->entries[i];
    if (policy == AAL_POLICY_GCP && e->recomputed && aal_saved_tape_bytes(e, 1) > peak)
      peak = aal_saved_tape_bytes(e, 1);
  }
  if (policy == AAL_POLICY_GCP_BLOCK)
    peak = largest_block(plan);
  if (recompute_peak != NULL)
    *recompute_peak = peak;
  return total;
}

size_t aal_storage_layer_bytes(const aal_storage_plan *plan, const char *layer, int mode)
{
  size_t total = 0;
  for (size_t i = 0; i < plan->count; i++)
    if (layer == NULL || strcmp(plan->entries[i].layer, layer) == 0)
      total += entry_bytes(plan, i, mode);
  return total;
}
