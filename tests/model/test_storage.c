/* The storage plan (sim/model/storage.h) against the real tape, and its policies against
 * closed forms:
 *  - for ResNet-18 and ResNet-50 (each stem) under bp, ara, asa, asa:all, noise and
 *    flip: the plan has the tape's entries, (layer, slot) for (layer, slot), with the
 *    tape's element counts and types, and the same bytes per layer and in total, at
 *    double and at float32 (a real forward pass of a small network);
 *  - gcp: the total is the tape's float32 total less the entries the authors' code
 *    recomputes, picked here by name from the real tape;
 *  - gcp-block: the image, the block inputs and the head, from the layout's shapes;
 *  - none: the tape at float32 and the int64 max-pooling indices PyTorch keeps;
 *  - actnn: one entry's bytes by hand; masks unchanged, the pooling one byte an output. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "sim/aal.h"
#include "sim/model/storage.h"
#include "tests/fdcheck.h"

static unsigned long seed;

static const struct { const char *model, *stem; int size; } arch[] = {
    {"resnet18", "tiny", 16}, {"resnet50", "tiny", 32}, {"resnet50", "imagenet", 32}};
#define NARCH (int)(sizeof arch / sizeof arch[0])

static const char *const rules[] = {"bp", "ara:2,2,2,2", "ara:3,1,2,2", "asa:2,2,2,2",
                                    "asa:all", "noise", "flip"};
#define NRULES (int)(sizeof rules / sizeof rules[0])
enum { BATCH = 3 };

static void config(int a, aal_resnet_config *cfg)
{
  aal_error err;
  aal_resnet_config_default(cfg);
  ck_assert_int_eq(aal_resnet_config_set_model(cfg, arch[a].model, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_set_stem(cfg, arch[a].stem, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_set_width(cfg, 0.125, &err), AAL_OK);
  cfg->in_size = arch[a].size;
  cfg->classes = 7;
}

/* One training-mode forward pass on a random batch; the tape it leaves. */
static aal_tape *real_tape(const aal_resnet_config *cfg, const aal_rule *rule)
{
  aal_error err;
  aal_resnet net;
  aal_resnet_pass pass;
  aal_tensor *x = NULL;
  int *labels = NULL;
  double loss;
  ck_assert_int_eq(aal_resnet_init(&net, cfg, seed, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_pass_init(&pass, &net, rule, seed, 0, &err), AAL_OK);
  ck_assert_int_eq(aal_random_batch(cfg, BATCH, seed + 1, &x, &labels, &err), AAL_OK);
  aal_tape *tape = aal_tape_new(&err);
  ck_assert_msg(aal_resnet_forward(&net, &pass, x, labels, tape, &loss, NULL, &err) == AAL_OK,
                "%s", err.msg);
  aal_tensor_release(x);
  free(labels);
  aal_resnet_free(&net);
  return tape;
}

START_TEST(test_plan_is_the_tape)
{
  const int a = _i / NRULES, r = _i % NRULES;
  aal_resnet_config cfg;
  aal_rule rule;
  aal_error err;
  config(a, &cfg);
  ck_assert_int_eq(aal_rule_parse(rules[r], &rule, &err), AAL_OK);
  aal_tape *tape = real_tape(&cfg, &rule);
  aal_storage_plan plan;
  ck_assert_int_eq(aal_storage_plan_make(&cfg, &rule, BATCH, &plan, &err), AAL_OK);
  const char *what = rules[r];
  ck_assert_msg(plan.count == aal_tape_count(tape), "%s %s %s: plan %zu entries, tape %zu",
                arch[a].model, arch[a].stem, what, plan.count, aal_tape_count(tape));
  for (size_t i = 0; i < plan.count; i++) {
    const aal_saved *e = &plan.entries[i];
    const aal_tensor *t = aal_tape_load(tape, e->layer, e->slot, NULL);
    ck_assert_msg(t != NULL, "%s: the plan's %s/%s is not on the tape", what, e->layer, e->slot);
    ck_assert_msg(t->size == e->elements, "%s: %s/%s has %zu elements on the tape, %zu in "
                  "the plan", what, e->layer, e->slot, t->size, e->elements);
    ck_assert_int_eq(t->dtype == AAL_BITS, e->kind == AAL_SAVED_BITS);
  }
  const size_t n = aal_tape_layers(tape, NULL, 0);
  const char **names = malloc(n * sizeof *names);
  ck_assert_ptr_nonnull(names);
  aal_tape_layers(tape, names, n);
  for (size_t i = 0; i < n; i++)
    for (int f32 = 0; f32 < 2; f32++) {
      const size_t want = aal_tape_layer_bytes(tape, names[i], f32);
      const size_t got = aal_storage_layer_bytes(&plan, names[i], f32 ? -1 : -2);
      ck_assert_msg(got == want, "%s %s %s: layer %s holds %zu bytes (%s) on the tape, the "
                    "plan says %zu", arch[a].model, arch[a].stem, what, names[i], want,
                    f32 ? "float32" : "double", got);
    }
  ck_assert_uint_eq(aal_storage_layer_bytes(&plan, NULL, -2), aal_tape_bytes(tape));
  ck_assert_uint_eq(aal_storage_layer_bytes(&plan, NULL, -1), aal_tape_bytes_f32(tape));
  /* policy none: the tape at float32, and PyTorch's int64 max-pooling indices */
  const aal_tensor *pooled = aal_tape_load(tape, "maxpool", "x", NULL);
  const int s = aal_resnet_config_stem_size(&cfg);
  const size_t indices = pooled ? 8 * pooled->shape[0] * pooled->shape[1] * s * s : 0;
  ck_assert_uint_eq(aal_storage_bytes(&plan, AAL_POLICY_NONE, NULL),
                    aal_tape_bytes_f32(tape) + indices);
  free(names);
  aal_storage_plan_free(&plan);
  aal_tape_free(tape);
}
END_TEST

static int ends_with(const char *s, const char *suffix)
{
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* What the authors' gradient checkpointing recomputes (resnet.py's *_GCP models), by
 * name: the stem (checkpoint(self.v1, x)) but its image; in every block conv2's and
 * conv3's inputs (ReLU outputs, BnReLUConv / BnReLUConvBn) and the masks of relu1 and
 * relu2; a bottleneck's bn3 input (BnReLUConvBn); layer1.0's shortcut batch norm in a
 * bottleneck network (ConvBn_ARA). */
static int authors_recompute(const char *layer, const char *slot, int bottleneck)
{
  if (strcmp(layer, "bn1") == 0 || strcmp(layer, "relu") == 0 || strcmp(layer, "maxpool") == 0)
    return strcmp(slot, "x") == 0 || strcmp(slot, "mask") == 0;
  if ((ends_with(layer, ".conv2") || ends_with(layer, ".conv3")) && strcmp(slot, "x") == 0)
    return 1;
  if (ends_with(layer, ".relu1") || (bottleneck && ends_with(layer, ".relu2")))
    return 1;
  if (bottleneck && ends_with(layer, ".bn3") && strcmp(slot, "x") == 0)
    return 1;
  return bottleneck && strcmp(layer, "layer1.0.downsample.1") == 0 && strcmp(slot, "x") == 0;
}

START_TEST(test_gcp_closed_form)
{
  aal_resnet_config cfg;
  aal_rule rule;
  aal_error err;
  config(_i, &cfg);
  const int bottleneck = cfg.block == AAL_BLOCK_BOTTLENECK;
  for (int r = 0; r < 2; r++) {
    ck_assert_int_eq(aal_rule_parse(r ? "ara:2,2,2,2" : "bp", &rule, &err), AAL_OK);
    aal_tape *tape = real_tape(&cfg, &rule);
    aal_storage_plan plan;
    ck_assert_int_eq(aal_storage_plan_make(&cfg, &rule, BATCH, &plan, &err), AAL_OK);
    /* the tape's float32 bytes, less what is recomputed: no dropped tensor is shared
     * with a kept entry (the ReLU outputs inside a block are saved once) */
    size_t want = aal_tape_bytes_f32(tape), dropped = 0, largest = 0;
    for (size_t i = 0; i < plan.count; i++) {
      const aal_saved *e = &plan.entries[i];
      const aal_tensor *t = aal_tape_load(tape, e->layer, e->slot, NULL);
      if (!authors_recompute(e->layer, e->slot, bottleneck))
        continue;
      dropped += aal_tensor_bytes_f32(t);
      if (aal_tensor_bytes_f32(t) > largest)
        largest = aal_tensor_bytes_f32(t);
    }
    want -= dropped;
    size_t peak;
    const size_t got = aal_storage_bytes(&plan, AAL_POLICY_GCP, &peak);
    ck_assert_msg(got == want, "%s %s %s gcp: %zu bytes, by name %zu", arch[_i].model,
                  arch[_i].stem, r ? "ara" : "bp", got, want);
    ck_assert_uint_eq(peak, largest);
    ck_assert_uint_gt(dropped, 0);
    aal_storage_plan_free(&plan);
    aal_tape_free(tape);
  }
}
END_TEST

/* Per-block checkpointing keeps the image, every block's input and the head, whatever
 * the rule: from the layout's shapes, and the same for BP and ARA. */
START_TEST(test_gcp_block_closed_form)
{
  aal_resnet_config cfg;
  aal_resnet net;
  aal_rule rule;
  aal_error err;
  config(_i, &cfg);
  ck_assert_int_eq(aal_resnet_layout(&net, &cfg, &err), AAL_OK);
  size_t want = (size_t)BATCH * cfg.in_channels * cfg.in_size * cfg.in_size;
  for (int b = 0; b < net.nblocks; b++)
    want += (size_t)BATCH * net.blocks[b].in_channels * net.blocks[b].in_size *
            net.blocks[b].in_size;
  want += (size_t)BATCH * (net.blocks[net.nblocks - 1].out_channels + cfg.classes);
  want *= 4;
  aal_resnet_free(&net);
  for (int r = 0; r < 3; r++) {
    const char *text[] = {"bp", "ara:2,2,2,2", "asa:2,2,2,2"};
    ck_assert_int_eq(aal_rule_parse(text[r], &rule, &err), AAL_OK);
    aal_storage_plan plan;
    ck_assert_int_eq(aal_storage_plan_make(&cfg, &rule, BATCH, &plan, &err), AAL_OK);
    size_t peak;
    const size_t got = aal_storage_bytes(&plan, AAL_POLICY_GCP_BLOCK, &peak);
    ck_assert_msg(got == want, "%s %s %s gcp-block: %zu bytes, closed form %zu",
                  arch[_i].model, arch[_i].stem, text[r], got, want);
    /* the peak recomputes one block's (or the stem's) tape: less than the whole tape */
    ck_assert_uint_gt(peak, 0);
    ck_assert_uint_lt(peak, aal_storage_bytes(&plan, AAL_POLICY_NONE, NULL));
    aal_storage_plan_free(&plan);
  }
}
END_TEST

START_TEST(test_actnn_by_hand)
{
  /* 1000 values a sample: 4 groups of 256 (the last padded), each 64 bytes of 2-bit
   * codes and two bfloat16 (scale, minimum): 272 bytes a sample */
  aal_saved e = {.kind = AAL_SAVED_VALUES, .elements = 5 * 1000, .per_sample = 1000};
  ck_assert_uint_eq(aal_saved_policy_bytes(&e, AAL_POLICY_ACTNN), 5 * 272);
  ck_assert_uint_eq(aal_saved_policy_bytes(&e, AAL_POLICY_NONE), 5 * 1000 * 4);
  e.per_sample = 256;
  e.elements = 256;
  ck_assert_uint_eq(aal_saved_policy_bytes(&e, AAL_POLICY_ACTNN), 68);
  aal_saved m = {.kind = AAL_SAVED_BITS, .elements = 1001, .per_sample = 1001};
  ck_assert_uint_eq(aal_saved_policy_bytes(&m, AAL_POLICY_ACTNN), 126);
  aal_saved p = {.kind = AAL_SAVED_POOL, .elements = 4 * 64, .per_sample = 64, .outputs = 64};
  ck_assert_uint_eq(aal_saved_policy_bytes(&p, AAL_POLICY_ACTNN), 64);
  ck_assert_uint_eq(aal_saved_policy_bytes(&p, AAL_POLICY_NONE), 4 * 64 * 4 + 8 * 64);
  aal_saved s = {.kind = AAL_SAVED_STATS, .elements = 64};
  ck_assert_uint_eq(aal_saved_policy_bytes(&s, AAL_POLICY_ACTNN), 256);
  aal_policy policy;
  aal_error err;
  ck_assert_int_eq(aal_policy_parse("actnn", &policy, &err), AAL_OK);
  ck_assert_int_eq(policy, AAL_POLICY_ACTNN);
  ck_assert_int_eq(aal_policy_parse("gcp-block", &policy, &err), AAL_OK);
  ck_assert_int_eq(policy, AAL_POLICY_GCP_BLOCK);
  ck_assert_int_eq(aal_policy_parse("gcp2", &policy, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--policy 'gcp2'") != NULL, "%s", err.msg);
}
END_TEST

/* Linear in the batch, and ResNet-152 at batch 512 laid out without allocating it. */
START_TEST(test_large_and_linear)
{
  aal_resnet_config cfg;
  aal_rule rule;
  aal_error err;
  aal_resnet_config_default(&cfg);
  ck_assert_int_eq(aal_resnet_config_set_model(&cfg, "resnet152", &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_set_stem(&cfg, "imagenet", &err), AAL_OK);
  cfg.in_size = 224;
  cfg.classes = 1000;
  ck_assert_int_eq(aal_rule_parse("ara:3,4,6,2", &rule, &err), AAL_OK);
  aal_storage_plan p1, p2;
  ck_assert_int_eq(aal_storage_plan_make(&cfg, &rule, 256, &p1, &err), AAL_OK);
  ck_assert_int_eq(aal_storage_plan_make(&cfg, &rule, 512, &p2, &err), AAL_OK);
  size_t stats = 0;
  for (size_t i = 0; i < p1.count; i++)
    if (p1.entries[i].kind == AAL_SAVED_STATS)
      stats += aal_saved_tape_bytes(&p1.entries[i], 1);
  for (int policy = 0; policy < 3; policy++) {
    const size_t b1 = aal_storage_bytes(&p1, (aal_policy)policy, NULL);
    const size_t b2 = aal_storage_bytes(&p2, (aal_policy)policy, NULL);
    ck_assert_uint_eq(b2 - stats, 2 * (b1 - stats));  /* only BN statistics are per batch */
  }
  ck_assert_uint_gt(aal_storage_bytes(&p2, AAL_POLICY_NONE, NULL), 50000000000u);
  aal_storage_plan_free(&p1);
  aal_storage_plan_free(&p2);
}
END_TEST

int main(void)
{
  seed = fd_test_seed();
  Suite *s = suite_create("storage");
  TCase *tc = tcase_create("plan");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_plan_is_the_tape, 0, NARCH * NRULES);
  tcase_add_loop_test(tc, test_gcp_closed_form, 0, NARCH);
  tcase_add_loop_test(tc, test_gcp_block_closed_form, 0, NARCH);
  tcase_add_test(tc, test_actnn_by_hand);
  tcase_add_test(tc, test_large_and_linear);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
