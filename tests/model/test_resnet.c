/* The ResNet and its learning rules (SPEC sections 3-6):
 *  - rule parsing and the block plans, against the SPEC's rule re-implemented here;
 *  - BP gradients of a small ResNet against finite differences of the loss;
 *  - ARA: forward and every gradient but the ARA conv weights bit-identical to BP, ARA
 *    weight gradients = backward_filter(A, delta) exactly, A = the right block's input;
 *  - ASA: stored bits = the forward's signs, ASA weight gradients = lr_expansion *
 *    backward_filter(eps*s, delta), every other gradient = exact backprop of the
 *    modified forward (finite differences);
 *  - ASA's published decoding (decode=pm1): forward, loss and every gradient but the ASA
 *    convs' weights bit-identical to default ASA, ASA weight gradients = lr_expansion *
 *    backward_filter(eps*(2s - 1), delta) with s recomputed from the conv's input;
 *  - noise and flip: r as defined; tape bytes against closed forms; reproducibility. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "sim/aal.h"
#include "tests/fdcheck.h"

static unsigned long seed;

/* ---------------------------------------------------------------- rules */

START_TEST(test_rule_parse)
{
  aal_rule r;
  aal_error err;
  char buf[128];
  ck_assert_int_eq(aal_rule_parse("bp", &r, &err), AAL_OK);
  ck_assert_int_eq(r.kind, AAL_RULE_BP);
  ck_assert_int_eq(aal_rule_parse("ara:3,2,2,1", &r, &err), AAL_OK);
  ck_assert_int_eq(r.kind, AAL_RULE_ARA);
  ck_assert_int_eq(r.ngroups_given, 4);
  ck_assert_int_eq(r.k[0], 3);
  ck_assert_int_eq(r.k[3], 1);
  aal_rule_format(&r, buf, sizeof buf);
  ck_assert_str_eq(buf, "ara:3,2,2,1");
  ck_assert_int_eq(aal_rule_parse("asa:2,2,2,2;eps=0.05;lr_expansion=10", &r, &err), AAL_OK);
  ck_assert(r.eps == 0.05 && r.lr_expansion == 10);
  ck_assert_int_eq(aal_rule_parse("asa:all", &r, &err), AAL_OK);
  ck_assert(r.all && r.eps == 0.01 && r.lr_expansion == 100);
  ck_assert_int_eq(aal_rule_parse("noise", &r, &err), AAL_OK);
  ck_assert_int_eq(aal_rule_parse("flip:all", &r, &err), AAL_OK);
  ck_assert(!r.decode_pm1);
  const char *bad[] = {"", "sgd", "ara", "ara:", "ara:2,,2", "ara:0,1,1,1", "ara:2,2,x,2",
                       "ara:all", "asa", "asa:2,2,2,2;eps=-1", "asa:2;foo=1", "bp:1",
                       "ara:2,2,2,2;eps=0.1", "ara:2,2,2,", "asa:2,2,2,2;eps=nan"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aal_error_clear(&err);
    ck_assert_msg(aal_rule_parse(bad[i], &r, &err) == AAL_EINVAL, "'%s' accepted", bad[i]);
    ck_assert_msg(err.msg[0] != '\0', "'%s': no message", bad[i]);
  }
}
END_TEST

/* decode=pm1 (the published variant) and decode=01 (the default, spelled out): with
 * asa:K... and asa:all, beside eps and lr_expansion in any order; written back only
 * when set; anything else after decode=, or decode on another rule, is an error that
 * names it. */
START_TEST(test_rule_decode)
{
  aal_rule r;
  aal_error err;
  char buf[160];
  struct { const char *text; int pm1; double eps, lr_expansion; const char *canonical; } ok[] = {
      {"asa:2,2,2,2;decode=pm1", 1, 0.01, 100, "asa:2,2,2,2;eps=0.01;lr_expansion=100;decode=pm1"},
      {"asa:all;decode=pm1", 1, 0.01, 100, "asa:all;eps=0.01;lr_expansion=100;decode=pm1"},
      {"asa:2,2,2,2;decode=pm1;eps=0.05;lr_expansion=10", 1, 0.05, 10,
       "asa:2,2,2,2;eps=0.05;lr_expansion=10;decode=pm1"},
      {"asa:3,2,2,1;lr_expansion=10;decode=pm1;eps=0.05", 1, 0.05, 10,
       "asa:3,2,2,1;eps=0.05;lr_expansion=10;decode=pm1"},
      {"asa:all;eps=0.02;decode=pm1", 1, 0.02, 100, "asa:all;eps=0.02;lr_expansion=100;decode=pm1"},
      {"asa:2,2,2,2;decode=01", 0, 0.01, 100, "asa:2,2,2,2;eps=0.01;lr_expansion=100"},
      {"asa:all;decode=01;eps=0.05", 0, 0.05, 100, "asa:all;eps=0.05;lr_expansion=100"},
      {"asa:2,2,2,2;decode=01;decode=pm1", 1, 0.01, 100,
       "asa:2,2,2,2;eps=0.01;lr_expansion=100;decode=pm1"}, /* the last one counts, as eps */
      {"asa:2,2,2,2;decode=pm1;decode=01", 0, 0.01, 100, "asa:2,2,2,2;eps=0.01;lr_expansion=100"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    aal_error_clear(&err);
    ck_assert_msg(aal_rule_parse(ok[i].text, &r, &err) == AAL_OK, "'%s': %s", ok[i].text,
                  err.msg);
    ck_assert_int_eq(r.kind, AAL_RULE_ASA);
    ck_assert_msg(r.decode_pm1 == ok[i].pm1 && r.eps == ok[i].eps &&
                  r.lr_expansion == ok[i].lr_expansion, "'%s' read as decode_pm1 %d, eps %g, "
                  "lr_expansion %g", ok[i].text, r.decode_pm1, r.eps, r.lr_expansion);
    aal_rule_format(&r, buf, sizeof buf);
    ck_assert_str_eq(buf, ok[i].canonical);
  }
  /* the longest canonical text the header promises fits in 120 bytes */
  ck_assert_int_eq(aal_rule_parse("asa:1000,1000,1000,1000,1000,1000,1000,1000;decode=pm1;"
                                  "eps=2.2250738585072014e-308;lr_expansion=1.7976931348623157e308",
                                  &r, &err), AAL_OK);
  aal_rule_format(&r, buf, sizeof buf);
  ck_assert_uint_eq(strlen(buf), 119);
  ck_assert_str_eq(buf + strlen(buf) - 11, ";decode=pm1");
  struct { const char *text, *named; } bad[] = {
      {"asa:2,2,2,2;decode=pm2", "'pm2'"},
      {"asa:2,2,2,2;decode=PM1", "'PM1'"},
      {"asa:all;decode=pm1x", "'pm1x'"},
      {"asa:2,2,2,2;decode=1", "'1'"},
      {"asa:2,2,2,2;decode=", "decode="},
      {"asa:2,2,2,2;decode", "decode"},
      {"asa:2,2,2,2;decode=pm1;", "''"},
      {"asa:2,2,2,2;Decode=pm1", "'Decode'"},
      {"asa:2,2,2,2;foo=pm1", "'foo'"},
      {"ara:2,2,2,2;decode=pm1", "asa only"},
      {"noise;decode=pm1", "asa only"},
      {"noise:all;decode=01", "asa only"},
      {"flip:2,2,2,2;decode=pm1", "asa only"},
      {"bp;decode=pm1", "asa only"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aal_error_clear(&err);
    ck_assert_msg(aal_rule_parse(bad[i].text, &r, &err) == AAL_EINVAL, "'%s' accepted",
                  bad[i].text);
    ck_assert_msg(strstr(err.msg, bad[i].named) != NULL, "'%s': the message does not name "
                  "%s: %s", bad[i].text, bad[i].named, err.msg);
  }
}
END_TEST

/* format then parse gives the same rule, for values %g would round; a subnormal eps,
 * whose written form would read back with an underflow, is refused. */
START_TEST(test_rule_round_trip)
{
  const char *texts[] = {"asa:2,2,2,2;eps=0.0123456789",
                         "asa:all;eps=0.1;lr_expansion=3.0000000000000004",
                         "asa:1,3;eps=2.2250738585072014e-308;lr_expansion=1.7976931348623157e308",
                         "asa:2,2,2,2", "ara:3,2,2,1", "flip:all", "noise", "bp",
                         "asa:2,2,2,2;decode=pm1",
                         "asa:all;decode=pm1;eps=0.0123456789;lr_expansion=3.0000000000000004"};
  aal_error err;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    aal_rule a, b;
    char buf[160];
    ck_assert_msg(aal_rule_parse(texts[i], &a, &err) == AAL_OK, "%s", err.msg);
    aal_rule_format(&a, buf, sizeof buf);
    ck_assert_msg(aal_rule_parse(buf, &b, &err) == AAL_OK, "'%s': %s", buf, err.msg);
    ck_assert_msg(a.kind == b.kind && a.all == b.all && a.ngroups_given == b.ngroups_given &&
                  memcmp(a.k, b.k, sizeof a.k) == 0 && a.eps == b.eps &&
                  a.lr_expansion == b.lr_expansion && a.decode_pm1 == b.decode_pm1,
                  "'%s' reads back from '%s' as another rule",
                  texts[i], buf);
  }
  aal_rule r;
  char buf[160];
  ck_assert_int_eq(aal_rule_parse("asa:2,2,2,2;eps=0.01;lr_expansion=100", &r, &err), AAL_OK);
  aal_rule_format(&r, buf, sizeof buf);
  ck_assert_str_eq(buf, "asa:2,2,2,2;eps=0.01;lr_expansion=100"); /* as %g wrote it */
  const char *subnormal[] = {"asa:2,2,2,2;eps=0x1p-1074", "asa:2,2,2,2;eps=1e-310",
                             "asa:all;lr_expansion=4.9e-324"};
  for (size_t i = 0; i < sizeof subnormal / sizeof subnormal[0]; i++) {
    ck_assert_msg(aal_rule_parse(subnormal[i], &r, &err) == AAL_EINVAL, "'%s' accepted",
                  subnormal[i]);
    ck_assert_msg(strstr(err.msg, "normal") != NULL, "%s", err.msg);
  }
}
END_TEST

/* The SPEC's rule, written out again: groups end at stride-2 blocks and the last block;
 * block i of group j is a reset point iff i mod k == k-1 or it ends the group. */
static void spec_register_sources(int nblocks, const int *stride2, const int *k, int *source)
{
  int group = 0, i = 0, a = 0;
  for (int b = 0; b < nblocks; b++) {
    source[b] = a;
    const int ends_group = stride2[b] || b == nblocks - 1;
    if (i % k[group] == k[group] - 1 || ends_group)
      a = b + 1;
    if (ends_group) {
      group++;
      i = 0;
    } else {
      i++;
    }
  }
}

START_TEST(test_rule_plans)
{
  const int stride2[8] = {0, 0, 1, 0, 1, 0, 1, 0}; /* ResNet-18: b2, b4, b6 */
  aal_rule rule;
  aal_rule_plan plan;
  aal_error err;
  int want[8];
  const char *texts[] = {"ara:1,1,1,1", "ara:2,2,2,2", "ara:3,2,2,1", "ara:3,1,2,4"};
  const int ks[4][4] = {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 2, 2, 1}, {3, 1, 2, 4}};
  for (int t = 0; t < 4; t++) {
    ck_assert_int_eq(aal_rule_parse(texts[t], &rule, &err), AAL_OK);
    ck_assert_int_eq(aal_rule_plan_make(&rule, 8, stride2, 0, &plan, &err), AAL_OK);
    ck_assert_int_eq(plan.ngroups, 4);
    spec_register_sources(8, stride2, ks[t], want);
    for (int b = 0; b < 8; b++) {
      ck_assert_msg(plan.register_source[b] == want[b], "%s: block %d uses x_%d, SPEC says x_%d",
                    texts[t], b, plan.register_source[b], want[b]);
      ck_assert_int_eq(plan.first_conv[b], want[b] == b ? AAL_R_INPUT : AAL_R_ARA);
      ck_assert_int_eq(plan.second_conv[b], AAL_R_INPUT);
    }
  }
  /* the SPEC's worked example, literally: ARA(2,2,2,2): b1 <- x0, b4 <- x3, b6 <- x5 */
  ck_assert_int_eq(aal_rule_parse("ara:2,2,2,2", &rule, &err), AAL_OK);
  aal_rule_plan_make(&rule, 8, stride2, 0, &plan, &err);
  const int example[8] = {0, 0, 2, 3, 3, 5, 5, 7};
  for (int b = 0; b < 8; b++)
    ck_assert_int_eq(plan.register_source[b], example[b]);
  /* ara:1,1,1,1 is BP */
  ck_assert_int_eq(aal_rule_parse("ara:1,1,1,1", &rule, &err), AAL_OK);
  aal_rule_plan_make(&rule, 8, stride2, 0, &plan, &err);
  for (int b = 0; b < 8; b++)
    ck_assert_int_eq(plan.first_conv[b], AAL_R_INPUT);
  /* ASA(2,2,2,2): blocks with i mod 2 != 0: b1, b4, b6 */
  ck_assert_int_eq(aal_rule_parse("asa:2,2,2,2", &rule, &err), AAL_OK);
  aal_rule_plan_make(&rule, 8, stride2, 0, &plan, &err);
  for (int b = 0; b < 8; b++)
    ck_assert_int_eq(plan.first_conv[b], (b == 1 || b == 4 || b == 6) ? AAL_R_ASA : AAL_R_INPUT);
  ck_assert_int_eq(aal_rule_parse("asa:all", &rule, &err), AAL_OK);
  aal_rule_plan_make(&rule, 8, stride2, 0, &plan, &err);
  for (int b = 0; b < 8; b++)
    ck_assert(plan.first_conv[b] == AAL_R_ASA && plan.second_conv[b] == AAL_R_ASA);
  /* ResNet-34 (3,4,6,3): groups [4,4,6,2] */
  int s34[16] = {0};
  s34[3] = s34[7] = s34[13] = 1;
  ck_assert_int_eq(aal_rule_parse("ara:2,2,2,2", &rule, &err), AAL_OK);
  ck_assert_int_eq(aal_rule_plan_make(&rule, 16, s34, 0, &plan, &err), AAL_OK);
  ck_assert_int_eq(plan.ngroups, 4);
  const int sizes[4] = {4, 4, 6, 2};
  for (int g = 0; g < 4; g++)
    ck_assert_int_eq(plan.group_size[g], sizes[g]);
  /* the wrong number of k values for the network is an error */
  ck_assert_int_eq(aal_rule_parse("ara:2,2,2", &rule, &err), AAL_OK);
  ck_assert_int_eq(aal_rule_plan_make(&rule, 8, stride2, 0, &plan, &err), AAL_EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- a small ResNet */

enum { NB = 3, SIZE = 16, CLASSES = 10 };

typedef struct {
  aal_resnet net;
  aal_resnet_pass pass;
  aal_tensor *x;
  int labels[NB];
} small_net;

static void small_config(aal_resnet_config *cfg)
{
  aal_error err;
  aal_resnet_config_default(cfg);
  ck_assert_int_eq(aal_resnet_config_set_width(cfg, 1.0 / 8, &err), AAL_OK);
  cfg->classes = CLASSES;
  cfg->in_size = SIZE;
}

/* The networks the rule tests run on: ResNet-18, and ResNet-50 with each stem. */
static const struct {
  const char *model, *stem;
  int ara_blocks;  /* blocks that read the register under ara:2,2,2,2 */
  int asa_blocks;  /* blocks whose first conv is ASA's under asa:2,2,2,2 */
} arch[] = {{"resnet18", "tiny", 3, 3}, {"resnet50", "tiny", 7, 7},
            {"resnet50", "imagenet", 7, 7}};
#define NARCH (int)(sizeof arch / sizeof arch[0])


/* A small network of `model` with `stem` (the imagenet stem at 32x32, so that its two
 * halvings leave the tiny stem's 8x8 for the first block). */
static void small_init_model(small_net *s, const char *rule_text, const char *model,
                             const char *stem)
{
  aal_error err;
  aal_error_clear(&err);
  aal_resnet_config cfg;
  small_config(&cfg);
  ck_assert_int_eq(aal_resnet_config_set_model(&cfg, model, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_set_stem(&cfg, stem, &err), AAL_OK);
  /* a bottleneck network at twice the size: its last stage then normalises over 2x2
   * pixels per sample rather than one */
  if (cfg.block == AAL_BLOCK_BOTTLENECK)
    cfg.in_size *= 2;
  if (cfg.stem == AAL_STEM_IMAGENET)
    cfg.in_size *= 2;
  ck_assert_msg(aal_resnet_init(&s->net, &cfg, seed, &err) == AAL_OK, "%s", err.msg);
  aal_rule rule;
  ck_assert_msg(aal_rule_parse(rule_text, &rule, &err) == AAL_OK, "%s", err.msg);
  ck_assert_int_eq(aal_resnet_pass_init(&s->pass, &s->net, &rule, seed + 7, 0, &err), AAL_OK);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed + 1);
  s->x = aal_tensor_new4(NB, 3, cfg.in_size, cfg.in_size, &err);
  fd_fill_uniform(rng, s->x->data, s->x->size, -2, 2);
  for (int n = 0; n < NB; n++)
    s->labels[n] = (int)gsl_rng_uniform_int(rng, CLASSES);
  /* move BN affine parameters and the fc bias off their special initial values */
  for (int i = 0; i < s->net.nparams; i++) {
    aal_param *p = &s->net.params[i];
    if (p->grad != NULL && p->value->ndim == 1)
      for (size_t k = 0; k < p->value->size; k++)
        p->value->data[k] += 0.2 * (gsl_rng_uniform(rng) - 0.5);
  }
  gsl_rng_free(rng);
}

static void small_init(small_net *s, const char *rule_text)
{
  small_init_model(s, rule_text, "resnet18", "tiny");
}

static void small_free(small_net *s)
{
  aal_resnet_free(&s->net);
  aal_tensor_release(s->x);
}

/* forward + backward; grads poisoned first; the tape is returned for inspection */
static aal_tape *small_step(small_net *s, double *loss)
{
  aal_error err;
  aal_error_clear(&err);
  aal_tape *tape = aal_tape_new(&err);
  for (int i = 0; i < s->net.nparams; i++)
    if (s->net.params[i].grad != NULL)
      aal_tensor_fill(s->net.params[i].grad, NAN);
  int rc = aal_resnet_forward(&s->net, &s->pass, s->x, s->labels, tape, loss, NULL, &err);
  ck_assert_msg(rc == AAL_OK, "forward: %s", err.msg);
  rc = aal_resnet_backward(&s->net, &s->pass, tape, s->labels, &err);
  ck_assert_msg(rc == AAL_OK, "backward: %s", err.msg);
  return tape;
}

/* The authors' ResNet_ARA for bottleneck networks, read again (resnet.py, _make_layer):
 * a plain first block (layer0); then groups of sizes[g] blocks, the stride-2 block last;
 * block i of a group is a distribute point iff i % k == k - 1 or it is the last; a
 * block's conv1 and shortcut use the register, which a distribute point sets to its own
 * output (the next block's input).  source[b]: the block whose input the register is. */
static void authors_register_sources(int ngroups, const int *sizes, const int *k, int *source)
{
  int b = 0, reg = 1;
  source[b++] = 0;
  for (int g = 0; g < ngroups; g++)
    for (int i = 0; i < sizes[g]; i++, b++) {
      source[b] = reg;
      if (i % k[g] == k[g] - 1 || i == sizes[g] - 1)
        reg = b + 1;
    }
}

/* Bottleneck networks: a plain first block, then the authors' groups (resnet.py:
 * ResNet-50 [3,4,6,2], ResNet-152 [3,8,36,2] after layer0), against the authors' loop
 * re-read in authors_register_sources. */
START_TEST(test_bottleneck_plans)
{
  static const struct { int nblocks, stride2_at[3], sizes[4]; } nets[] = {
      {16, {3, 7, 13}, {3, 4, 6, 2}},    /* ResNet-50 (3,4,6,3) */
      {50, {3, 11, 47}, {3, 8, 36, 2}}}; /* ResNet-152 (3,8,36,3) */
  const char *texts[] = {"ara:2,2,2,2", "ara:3,4,2,2", "ara:3,4,6,2", "ara:1,1,1,1"};
  const int ks[4][4] = {{2, 2, 2, 2}, {3, 4, 2, 2}, {3, 4, 6, 2}, {1, 1, 1, 1}};
  aal_rule rule;
  aal_rule_plan plan;
  aal_error err;
  for (int n = 0; n < 2; n++) {
    int stride2[AAL_MAX_BLOCKS] = {0}, want[AAL_MAX_BLOCKS];
    for (int j = 0; j < 3; j++)
      stride2[nets[n].stride2_at[j]] = 1;
    for (int t = 0; t < 4; t++) {
      ck_assert_int_eq(aal_rule_parse(texts[t], &rule, &err), AAL_OK);
      ck_assert_int_eq(aal_rule_plan_make(&rule, nets[n].nblocks, stride2, 1, &plan, &err),
                       AAL_OK);
      ck_assert_int_eq(plan.ngroups, 5);
      ck_assert_int_eq(plan.group_size[0], 1);
      for (int g = 0; g < 4; g++)
        ck_assert_int_eq(plan.group_size[g + 1], nets[n].sizes[g]);
      authors_register_sources(4, nets[n].sizes, ks[t], want);
      for (int b = 0; b < nets[n].nblocks; b++) {
        ck_assert_msg(plan.register_source[b] == want[b],
                      "%d blocks, %s: block %d uses x_%d, the authors' code x_%d",
                      nets[n].nblocks, texts[t], b, plan.register_source[b], want[b]);
        ck_assert_int_eq(plan.first_conv[b], want[b] == b ? AAL_R_INPUT : AAL_R_ARA);
      }
    }
    /* ASA: block i of a group after the lead iff i mod k != 0; the lead learns by BP */
    ck_assert_int_eq(aal_rule_parse("asa:2,2,2,2", &rule, &err), AAL_OK);
    ck_assert_int_eq(aal_rule_plan_make(&rule, nets[n].nblocks, stride2, 1, &plan, &err),
                     AAL_OK);
    int b = 1;
    ck_assert_int_eq(plan.first_conv[0], AAL_R_INPUT);
    for (int g = 0; g < 4; g++)
      for (int i = 0; i < nets[n].sizes[g]; i++, b++)
        ck_assert_int_eq(plan.first_conv[b], i % 2 ? AAL_R_ASA : AAL_R_INPUT);
    /* k values are written for the groups after the lead only */
    ck_assert_int_eq(aal_rule_parse("ara:2,2,2,2,2", &rule, &err), AAL_OK);
    ck_assert_int_eq(aal_rule_plan_make(&rule, nets[n].nblocks, stride2, 1, &plan, &err),
                     AAL_EINVAL);
    ck_assert_msg(strstr(err.msg, "after its plain first block") != NULL, "%s", err.msg);
  }
}
END_TEST

/* The ImageNet ResNets' trainable parameters, as torchvision counts them
 * (sum(p.numel() for p in resnetNN().parameters())). */
START_TEST(test_torchvision_param_counts)
{
  static const struct { const char *model; size_t count; const char *some; } want[] = {
      {"resnet18", 11689512, "layer4.1.bn2.weight"},
      {"resnet34", 21797672, "layer3.5.conv2.weight"},
      {"resnet50", 25557032, "layer4.2.conv3.weight"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    aal_resnet_config cfg;
    aal_resnet net;
    aal_error err;
    aal_resnet_config_default(&cfg);
    ck_assert_int_eq(aal_resnet_config_set_model(&cfg, want[i].model, &err), AAL_OK);
    ck_assert_int_eq(aal_resnet_config_set_stem(&cfg, "imagenet", &err), AAL_OK);
    cfg.classes = 1000;
    cfg.in_size = 224;
    ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_OK);
    ck_assert_msg(aal_resnet_param_count(&net) == want[i].count, "%s: %zu parameters, "
                  "torchvision %zu", want[i].model, aal_resnet_param_count(&net), want[i].count);
    ck_assert_ptr_nonnull(aal_resnet_find(&net, want[i].some));
    ck_assert_uint_eq(aal_resnet_layout_param_count(&net), want[i].count);
    aal_resnet_free(&net);
  }
  /* the deeper ones laid out only (no tensors): the count from the shapes */
  static const struct { const char *model; size_t count; } deep[] = {
      {"resnet101", 44549160}, {"resnet152", 60192808}};
  for (size_t i = 0; i < 2; i++) {
    aal_resnet_config cfg;
    aal_resnet net;
    aal_error err;
    aal_resnet_config_default(&cfg);
    ck_assert_int_eq(aal_resnet_config_set_model(&cfg, deep[i].model, &err), AAL_OK);
    ck_assert_int_eq(aal_resnet_config_set_stem(&cfg, "imagenet", &err), AAL_OK);
    cfg.classes = 1000;
    ck_assert_int_eq(aal_resnet_layout(&net, &cfg, &err), AAL_OK);
    ck_assert_ptr_null(net.params[0].value);
    ck_assert_msg(aal_resnet_layout_param_count(&net) == deep[i].count, "%s: %zu, torchvision "
                  "%zu", deep[i].model, aal_resnet_layout_param_count(&net), deep[i].count);
    aal_resnet_free(&net);
  }
  /* ResNet-50's shapes where they differ from a basic network */
  aal_resnet_config cfg;
  aal_resnet net;
  aal_error err;
  aal_resnet_config_default(&cfg);
  ck_assert_int_eq(aal_resnet_config_set_model(&cfg, "resnet50", &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_set_stem(&cfg, "imagenet", &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_set_width(&cfg, 0.125, &err), AAL_OK);
  cfg.in_size = 224;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_OK);
  struct { const char *name; long shape[4]; } shapes[] = {
      {"conv1.weight", {8, 3, 7, 7}},
      {"layer1.0.conv1.weight", {8, 8, 1, 1}},
      {"layer1.0.conv3.weight", {32, 8, 1, 1}},
      {"layer1.0.downsample.0.weight", {32, 8, 1, 1}},
      {"layer2.0.conv1.weight", {16, 32, 1, 1}},
      {"layer2.0.conv2.weight", {16, 16, 3, 3}},
      {"layer2.0.downsample.0.weight", {64, 32, 1, 1}},
      {"fc.weight", {200, 256, 0, 0}}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    aal_param *p = aal_resnet_find(&net, shapes[i].name);
    ck_assert_msg(p != NULL, "no %s", shapes[i].name);
    for (int d = 0; d < p->value->ndim; d++)
      ck_assert_uint_eq(p->value->shape[d], (size_t)shapes[i].shape[d]);
  }
  /* the stride of a bottleneck is on its 3x3 conv (torchvision v1.5, the authors' code) */
  ck_assert_int_eq(net.blocks[3].conv1.stride, 1);
  ck_assert_int_eq(net.blocks[3].conv2.stride, 2);
  ck_assert_int_eq(net.blocks[3].downsample.stride, 2);
  ck_assert_int_eq(net.blocks[0].in_size, 56);
  ck_assert_int_eq(net.blocks[3].in_size, 56);
  ck_assert_int_eq(net.blocks[4].in_size, 28);
  ck_assert_int_eq(aal_resnet_config_depth(&cfg), 50);
  aal_resnet_free(&net);
  ck_assert_int_eq(aal_resnet_config_set_model(&cfg, "resnet51", &err), AAL_EINVAL);
  ck_assert_int_eq(aal_resnet_config_set_stem(&cfg, "cifar", &err), AAL_EINVAL);
  ck_assert_int_eq(aal_resnet_config_set_model(&cfg, "resnet152", &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_config_depth(&cfg), 152);
  cfg.in_size = 31; /* the imagenet stem needs 32 */
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--size 31") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_names_and_shapes)
{
  aal_resnet net;
  aal_resnet_config cfg;
  aal_error err;
  aal_resnet_config_default(&cfg);
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_OK);
  struct { const char *name; int ndim; long shape[4]; } want[] = {
      {"conv1.weight", 4, {64, 3, 3, 3}},
      {"bn1.running_var", 1, {64}},
      {"layer1.0.conv1.weight", 4, {64, 64, 3, 3}},
      {"layer2.0.conv1.weight", 4, {128, 64, 3, 3}},
      {"layer2.0.downsample.0.weight", 4, {128, 64, 1, 1}},
      {"layer2.0.downsample.1.running_mean", 1, {128}},
      {"layer4.1.bn2.bias", 1, {512}},
      {"fc.weight", 2, {200, 512}},
      {"fc.bias", 1, {200}}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    aal_param *p = aal_resnet_find(&net, want[i].name);
    ck_assert_msg(p != NULL, "no parameter %s", want[i].name);
    ck_assert_int_eq(p->value->ndim, want[i].ndim);
    for (int d = 0; d < want[i].ndim; d++)
      ck_assert_uint_eq(p->value->shape[d], (size_t)want[i].shape[d]);
  }
  ck_assert_ptr_null(aal_resnet_find(&net, "layer1.0.downsample.0.weight"));
  ck_assert_ptr_null(aal_resnet_find(&net, "layer5.0.conv1.weight"));
  /* ResNet-18 for 200 classes: 11,271,432 trainable parameters (PyTorch's count for
   * this stem: 3x3 conv, no maxpool) */
  ck_assert_uint_eq(aal_resnet_param_count(&net), 11271432);
  /* Kaiming fan-out: the sample std of a large conv is within 2% of sqrt(2/(K*9)) */
  aal_param *w = aal_resnet_find(&net, "layer4.1.conv2.weight");
  double ss = 0;
  for (size_t k = 0; k < w->value->size; k++)
    ss += w->value->data[k] * w->value->data[k];
  const double std = sqrt(ss / (double)w->value->size), want_std = sqrt(2.0 / (512 * 9));
  ck_assert_msg(fabs(std / want_std - 1) < 0.02, "conv std %g, want %g", std, want_std);
  aal_resnet_free(&net);
  /* ResNet-34 */
  ck_assert_int_eq(aal_resnet_config_set_blocks(&cfg, "3,4,6,3", &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_OK);
  ck_assert_int_eq(net.nblocks, 16);
  ck_assert_ptr_nonnull(aal_resnet_find(&net, "layer3.5.conv2.weight"));
  aal_resnet_free(&net);
  ck_assert_int_eq(aal_resnet_config_set_blocks(&cfg, "3,4,6", &err), AAL_EINVAL);
  ck_assert_int_eq(aal_resnet_config_set_width(&cfg, 0.3, &err), AAL_EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- finite differences */

typedef struct {
  small_net *s;
  double *theta;
  size_t ntheta;
} theta_ctx;

static size_t theta_size(const aal_resnet *net)
{
  return aal_resnet_param_count(net);
}

static void theta_to_net(theta_ctx *c)
{
  size_t off = 0;
  for (int i = 0; i < c->s->net.nparams; i++) {
    aal_param *p = &c->s->net.params[i];
    if (p->grad == NULL)
      continue;
    memcpy(p->value->data, c->theta + off, p->value->size * sizeof(double));
    off += p->value->size;
  }
}

static void net_to_flat(const aal_resnet *net, int grads, double *out)
{
  size_t off = 0;
  for (int i = 0; i < net->nparams; i++) {
    const aal_param *p = &net->params[i];
    if (p->grad == NULL)
      continue;
    memcpy(out + off, (grads ? p->grad : p->value)->data, p->value->size * sizeof(double));
    off += p->value->size;
  }
}

static void loss_of_theta(void *ctx, double *y)
{
  theta_ctx *c = ctx;
  aal_error err;
  theta_to_net(c);
  aal_tape *tape = aal_tape_new(&err);
  if (aal_resnet_forward(&c->s->net, &c->s->pass, c->s->x, c->s->labels, tape, y, NULL,
                         &err) != AAL_OK)
    y[0] = NAN;
  aal_tape_free(tape);
}

/* Checks the analytic gradient g against finite differences of the loss, along random
 * unit directions and on single entries (the first and a random element of every
 * trainable tensor), skipping the parameters with skip[param index] set. */
static void check_gradient_fd(small_net *s, const double *g, const int *skip, const char *what)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed + 2);
  theta_ctx c = {s, NULL, theta_size(&s->net)};
  c.theta = malloc(c.ntheta * sizeof(double));
  double *dir = malloc(c.ntheta * sizeof(double));
  ck_assert(c.theta != NULL && dir != NULL);
  net_to_flat(&s->net, 0, c.theta);
  /* a step of 1e-6 along a unit direction moves the few thousand ReLU inputs by about
   * 1e-6, so a kink is crossed with probability ~1e-3 (it would show as a failure with
   * a large GSL error estimate, not as a pass); round-off is ~1e-16/1e-6 relative */
  fd_problem fp = {c.theta, c.ntheta, 1, loss_of_theta, &c, 1e-6};
  fd_report rep;
  memset(&rep, 0, sizeof rep);
  const double one = 1.0;
  char label[160];
  for (int trial = 0; trial < 6; trial++) {
    double norm = 0, analytic = 0, floor = 0;
    size_t off = 0;
    for (int i = 0; i < s->net.nparams; i++) {
      const aal_param *p = &s->net.params[i];
      if (p->grad == NULL)
        continue;
      for (size_t k = 0; k < p->value->size; k++)
        dir[off + k] = skip[i] ? 0.0 : gsl_rng_uniform(rng) - 0.5;
      off += p->value->size;
    }
    for (size_t k = 0; k < c.ntheta; k++)
      norm += dir[k] * dir[k];
    norm = sqrt(norm);
    for (size_t k = 0; k < c.ntheta; k++) {
      dir[k] /= norm;
      analytic += g[k] * dir[k];
      floor += fabs(g[k] * dir[k]);
    }
    snprintf(label, sizeof label, "%s: random direction %d", what, trial);
    fd_check_direction(&fp, &one, dir, analytic, floor, label, &rep);
  }
  size_t off = 0;
  for (int i = 0; i < s->net.nparams; i++) {
    const aal_param *p = &s->net.params[i];
    if (p->grad == NULL)
      continue;
    const size_t size = p->value->size;
    const size_t picks[2] = {off, off + gsl_rng_uniform_int(rng, size)};
    /* single entries are judged relative to the largest gradient entry of their tensor
     * (an entry of a dead channel is exactly zero, and its finite difference is
     * round-off); one parameter moving by 1e-5 disturbs few ReLU inputs, and the
     * larger step keeps the loss's round-off (~1e-14) at ~1e-9 of the derivative.  The
     * 16 bottleneck blocks of a small ResNet-50 curve the loss more (their second
     * differences showed as failures of ~2e-6 at 1e-5, with no wrong sign or factor):
     * there the step is 1e-6, whose round-off is still ~1e-8 of the derivative */
    double tensor_max = 0;
    for (size_t k = 0; k < size; k++)
      tensor_max = fmax(tensor_max, fabs(g[off + k]));
    fd_problem single = fp;
    single.step = s->net.cfg.block == AAL_BLOCK_BOTTLENECK ? 1e-6 : 1e-5;
    for (int k = 0; k < 2 && !skip[i]; k++) {
      memset(dir, 0, c.ntheta * sizeof(double));
      dir[picks[k]] = 1.0;
      snprintf(label, sizeof label, "%s: d loss / d %s[%zu]", what, p->name, picks[k] - off);
      fd_check_direction(&single, &one, dir, g[picks[k]], tensor_max, label, &rep);
    }
    off += size;
  }
  theta_to_net(&c);
  fprintf(stderr, "%s: %zu finite-difference checks, %zu failed, worst rel err %.3g\n", what,
          rep.checked, rep.failed, rep.worst_rel);
  ck_assert_msg(rep.failed == 0, "%s: %zu of %zu finite-difference checks failed", what,
                rep.failed, rep.checked);
  free(dir);
  free(c.theta);
  gsl_rng_free(rng);
}

START_TEST(test_bp_gradient_fd)
{
  small_net s;
  small_init_model(&s, "bp", arch[_i].model, arch[_i].stem);
  double loss;
  aal_tape_free(small_step(&s, &loss));
  const size_t n = theta_size(&s.net);
  double *g = malloc(n * sizeof *g);
  net_to_flat(&s.net, 1, g);
  for (size_t k = 0; k < n; k++)
    ck_assert_msg(isfinite(g[k]), "gradient entry %zu not written", k);
  int *skip = calloc((size_t)s.net.nparams, sizeof *skip);
  char what[64];
  snprintf(what, sizeof what, "bp %s %s", arch[_i].model, arch[_i].stem);
  check_gradient_fd(&s, g, skip, what);
  free(skip);
  free(g);
  small_free(&s);
}
END_TEST

/* ---------------------------------------------------------------- rule identities */

/* Copies of what the observers saw, indexed by the conv's weight parameter index. */
typedef struct {
  int n;
  aal_tensor **x, **h, **r_fwd, **r_bwd, **dy;
  aal_r_source *source;
} capture;

static void capture_init(capture *c, int nparams)
{
  c->n = nparams;
  c->x = calloc((size_t)nparams, sizeof(aal_tensor *));
  c->h = calloc((size_t)nparams, sizeof(aal_tensor *));
  c->r_fwd = calloc((size_t)nparams, sizeof(aal_tensor *));
  c->r_bwd = calloc((size_t)nparams, sizeof(aal_tensor *));
  c->dy = calloc((size_t)nparams, sizeof(aal_tensor *));
  c->source = calloc((size_t)nparams, sizeof(aal_r_source));
  ck_assert(c->x && c->h && c->r_fwd && c->r_bwd && c->dy && c->source);
}

static void capture_free(capture *c)
{
  for (int i = 0; i < c->n; i++) {
    aal_tensor_release(c->x[i]);
    aal_tensor_release(c->h[i]);
    aal_tensor_release(c->r_fwd[i]);
    aal_tensor_release(c->r_bwd[i]);
    aal_tensor_release(c->dy[i]);
  }
  free(c->x);
  free(c->h);
  free(c->r_fwd);
  free(c->r_bwd);
  free(c->dy);
  free(c->source);
}

static void keep(aal_tensor **slot, const aal_tensor *t)
{
  aal_tensor_release(*slot);
  *slot = aal_tensor_copy(t, NULL);
}

static void on_forward(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *x,
                       const aal_tensor *h, const aal_tensor *r)
{
  capture *c = ctx;
  keep(&c->x[u->weight], x);
  keep(&c->h[u->weight], h);
  keep(&c->r_fwd[u->weight], r);
  c->source[u->weight] = source;
}

static void on_backward(void *ctx, const aal_conv_bn *u, aal_r_source source,
                        const aal_tensor *r, const aal_tensor *dy, const aal_tensor *dw)
{
  capture *c = ctx;
  (void)dw;
  ck_assert_int_eq(c->source[u->weight], source);
  keep(&c->r_bwd[u->weight], r);
  keep(&c->dy[u->weight], dy);
}

static void observe(small_net *s, capture *c)
{
  capture_init(c, s->net.nparams);
  s->pass.observer.conv_forward = on_forward;
  s->pass.observer.conv_backward = on_backward;
  s->pass.observer.ctx = c;
}

static int bits_equal(const aal_tensor *a, const aal_tensor *b)
{
  return aal_tensor_same_shape(a, b) && memcmp(a->data, b->data, a->size * sizeof(double)) == 0;
}

/* 1 for the weight of every conv whose source is not the input */
static int *rule_convs(const small_net *s, const capture *c)
{
  int *mask = calloc((size_t)s->net.nparams, sizeof *mask);
  for (int i = 0; i < s->net.nparams; i++)
    mask[i] = c->x[i] != NULL && c->source[i] != AAL_R_INPUT;
  return mask;
}

/* dW from r and dy again, with the trainer's own backward_filter: an exact identity */
static void check_weight_grad(const small_net *s, int i, const aal_tensor *r, const aal_tensor *dy,
                              double scale)
{
  aal_error err;
  const aal_param *p = &s->net.params[i];
  const aal_conv_bn *u = NULL;
  for (int b = 0; b < s->net.nblocks && u == NULL; b++) {
    const aal_conv_bn *units[4];
    const int n = aal_block_convs(&s->net.blocks[b], units);
    for (int k = 0; k < n; k++)
      if (units[k]->weight == i)
        u = units[k];
  }
  ck_assert_ptr_nonnull(u);
  aal_tensor *want = aal_tensor_new_like(p->grad, &err);
  ck_assert_int_eq(aal_conv2d_backward_filter(r, dy, u->stride, u->pad, want, &err), AAL_OK);
  for (size_t k = 0; k < want->size; k++)
    want->data[k] *= scale;
  ck_assert_msg(bits_equal(want, p->grad), "%s: weight gradient is not scale*bwd_filter(r, dy)",
                p->name);
  aal_tensor_release(want);
}

/* The register sources of arch a under ara:k (independent of the rule plan). */
static void expected_sources(int a, const int *k, int *source)
{
  if (strcmp(arch[a].model, "resnet18") == 0) {
    const int stride2[8] = {0, 0, 1, 0, 1, 0, 1, 0};
    spec_register_sources(8, stride2, k, source);
  } else {
    const int sizes[4] = {3, 4, 6, 2};  /* ResNet-50 after layer0: [3,4,6,3] regrouped */
    authors_register_sources(4, sizes, k, source);
  }
}

START_TEST(test_ara_identities)
{
  small_net bp, ara;
  capture cb, ca;
  small_init_model(&bp, "bp", arch[_i].model, arch[_i].stem);
  small_init_model(&ara, "ara:2,2,2,2", arch[_i].model, arch[_i].stem);
  observe(&bp, &cb);
  observe(&ara, &ca);
  double loss_bp, loss_ara;
  aal_tape *tb = small_step(&bp, &loss_bp), *ta = small_step(&ara, &loss_ara);
  ck_assert_msg(memcmp(&loss_bp, &loss_ara, sizeof loss_bp) == 0, "loss %.17g vs %.17g",
                loss_bp, loss_ara);
  int *ara_conv = rule_convs(&ara, &ca);
  int spec_source[AAL_MAX_BLOCKS], nara = 0;
  const int k[4] = {2, 2, 2, 2};
  expected_sources(_i, k, spec_source);
  for (int b = 0; b < ara.net.nblocks; b++) {
    const aal_block *blk = &ara.net.blocks[b];
    const int a = spec_source[b], w = blk->conv1.weight;
    ck_assert_int_eq(ara_conv[w], a != b);
    if (a == b)
      continue;
    nara++;
    /* the register holds x_a: BP's input of block a's first conv, bit for bit */
    ck_assert_msg(bits_equal(ca.r_fwd[w], cb.x[ara.net.blocks[a].conv1.weight]),
                  "block %d: register is not x_%d", b, a);
    ck_assert(bits_equal(ca.r_bwd[w], ca.r_fwd[w]));
    ck_assert(bits_equal(ca.dy[w], cb.dy[w])); /* errors propagate as in BP */
    check_weight_grad(&ara, w, ca.r_bwd[w], ca.dy[w], 1.0);
    if (blk->has_downsample) {
      const int d = blk->downsample.weight;
      ck_assert(ara_conv[d]);
      ck_assert(bits_equal(ca.r_bwd[d], ca.r_fwd[w]));
      check_weight_grad(&ara, d, ca.r_bwd[d], ca.dy[d], 1.0);
    }
    /* the ARA block's own input is nowhere on its conv1's tape entry */
    ck_assert_ptr_null(aal_tape_load(ta, blk->conv1.conv_name, "x", NULL));
  }
  ck_assert_int_eq(nara, arch[_i].ara_blocks);
  fprintf(stderr, "ara identities on %s (%s stem): %d of %d blocks read the register\n",
          arch[_i].model, arch[_i].stem, nara, ara.net.nblocks);
  for (int i = 0; i < ara.net.nparams; i++) {
    const aal_param *p = &ara.net.params[i], *q = &bp.net.params[i];
    ck_assert_msg(bits_equal(p->value, q->value), "%s differs after forward", p->name);
    if (p->grad != NULL && !ara_conv[i])
      ck_assert_msg(bits_equal(p->grad, q->grad), "%s: gradient differs from BP", p->name);
  }
  ck_assert_uint_lt(aal_tape_bytes(ta), aal_tape_bytes(tb));
  free(ara_conv);
  aal_tape_free(tb);
  aal_tape_free(ta);
  capture_free(&cb);
  capture_free(&ca);
  small_free(&bp);
  small_free(&ara);
}
END_TEST

START_TEST(test_asa_identities)
{
  small_net asa;
  capture c;
  small_init_model(&asa, "asa:2,2,2,2;eps=0.05;lr_expansion=30", arch[_i].model,
                   arch[_i].stem);
  observe(&asa, &c);
  double loss;
  aal_tape *tape = small_step(&asa, &loss);
  int *asa_conv = rule_convs(&asa, &c);
  int nasa = 0;
  for (int b = 0; b < asa.net.nblocks; b++) {
    const aal_block *blk = &asa.net.blocks[b];
    const int w = blk->conv1.weight;
    if (!asa_conv[w])
      continue;
    nasa++;
    ck_assert_int_eq(c.source[w], AAL_R_ASA);
    const aal_tensor *bits = aal_tape_load(tape, blk->conv1.conv_name, "sign", NULL);
    ck_assert_ptr_nonnull(bits);
    ck_assert_int_eq(bits->dtype, AAL_BITS);
    ck_assert_ptr_null(aal_tape_load(tape, blk->conv1.conv_name, "x", NULL));
    const aal_tensor *x = c.x[w], *h = c.h[w], *r = c.r_bwd[w];
    for (size_t i = 0; i < x->size; i++) {
      const int sign = x->data[i] > 0;   /* x follows a ReLU: s in {0, 1} */
      ck_assert_int_eq(aal_bit_get(bits->bits, i), sign);
      ck_assert(h->data[i] == x->data[i] + 0.05 * sign);  /* forward computed on x + eps s */
      ck_assert(r->data[i] == 0.05 * sign);               /* backward decodes the same way */
    }
    check_weight_grad(&asa, w, r, c.dy[w], 30.0);
    if (blk->has_downsample) {
      const int d = blk->downsample.weight;
      ck_assert(asa_conv[d]);
      ck_assert_ptr_eq(aal_tape_load(tape, blk->downsample.conv_name, "sign", NULL), bits);
      check_weight_grad(&asa, d, c.r_bwd[d], c.dy[d], 30.0);
    }
  }
  ck_assert_int_eq(nasa, arch[_i].asa_blocks);
  /* every other gradient is exact backprop of the modified forward */
  const size_t n = theta_size(&asa.net);
  double *g = malloc(n * sizeof *g);
  net_to_flat(&asa.net, 1, g);
  asa.pass.observer = (aal_resnet_observer){0};
  check_gradient_fd(&asa, g, asa_conv, "asa (non-ASA parameters)");
  free(g);
  free(asa_conv);
  aal_tape_free(tape);
  capture_free(&c);
  small_free(&asa);
}
END_TEST

/* decode=pm1 against default ASA from the same initial state and batch: the forward
 * (h, the stored bits, the loss) is the same bit for bit, and so is every error signal
 * dy and every gradient but the ASA convs' weights; those are lr_expansion *
 * backward_filter(r, dy) exactly, with r = +eps where the conv's input x > 0 and -eps
 * where x == 0, rebuilt here from x (not from the model's bits or decoder). */
START_TEST(test_asa_pm1_identities)
{
  const char *rules[2][2] = {
      {"asa:2,2,2,2;eps=0.05;lr_expansion=30", "asa:2,2,2,2;eps=0.05;lr_expansion=30;decode=pm1"},
      {"asa:all;eps=0.05;lr_expansion=30", "asa:all;decode=pm1;lr_expansion=30;eps=0.05"}};
  const double eps = 0.05;
  for (int t = 0; t < 2; t++) {
    small_net def, pm1;
    capture cd, cp;
    small_init(&def, rules[t][0]);
    small_init(&pm1, rules[t][1]);
    ck_assert(!def.pass.rule.decode_pm1 && pm1.pass.rule.decode_pm1);
    observe(&def, &cd);
    observe(&pm1, &cp);
    double loss_def, loss_pm1;
    aal_tape *td = small_step(&def, &loss_def), *tp = small_step(&pm1, &loss_pm1);
    ck_assert_msg(memcmp(&loss_def, &loss_pm1, sizeof loss_def) == 0, "%s: loss %.17g vs %.17g",
                  rules[t][1], loss_pm1, loss_def);
    ck_assert_uint_eq(aal_tape_bytes(tp), aal_tape_bytes(td)); /* one bit per element too */
    int *asa_conv = rule_convs(&pm1, &cp);
    int nasa = 0;
    size_t npos = 0, nneg = 0;
    for (int i = 0; i < pm1.net.nparams; i++) {
      const aal_param *p = &pm1.net.params[i], *q = &def.net.params[i];
      if (cp.x[i] != NULL) { /* a conv: the same forward and error signal */
        ck_assert_int_eq(cp.source[i], cd.source[i]);
        ck_assert_msg(bits_equal(cp.h[i], cd.h[i]), "%s: h differs", p->name);
        ck_assert_msg(bits_equal(cp.dy[i], cd.dy[i]), "%s: dy differs", p->name);
      }
      if (!asa_conv[i]) {
        if (p->grad != NULL)
          ck_assert_msg(bits_equal(p->grad, q->grad), "%s: %s: gradient differs from default "
                        "ASA", rules[t][1], p->name);
        continue;
      }
      nasa++;
      ck_assert_int_eq(cp.source[i], AAL_R_ASA);
      const aal_tensor *x = cp.x[i];
      aal_error err;
      aal_tensor *r = aal_tensor_new_like(x, &err);
      ck_assert_ptr_nonnull(r);
      for (size_t k = 0; k < x->size; k++) {
        ck_assert(x->data[k] >= 0);
        r->data[k] = x->data[k] > 0 ? eps : -eps;
        npos += x->data[k] > 0;
        nneg += !(x->data[k] > 0);
        /* the forward added eps * {0,1}, as default ASA does */
        ck_assert(cp.h[i]->data[k] == x->data[k] + (x->data[k] > 0 ? eps : 0.0));
      }
      /* the r of both passes (the observer's, so the LI recorder's, and backward's) */
      ck_assert_msg(bits_equal(cp.r_fwd[i], r), "%s: forward's r is not +-eps", p->name);
      ck_assert_msg(bits_equal(cp.r_bwd[i], r), "%s: backward's r is not +-eps", p->name);
      check_weight_grad(&pm1, i, r, cp.dy[i], 30.0);
      ck_assert_msg(!bits_equal(p->grad, q->grad), "%s: the same gradient as default ASA",
                    p->name);
      aal_tensor_release(r);
    }
    ck_assert_int_eq(nasa, t == 0 ? 5 : 2 * pm1.net.nblocks + 3);
    ck_assert(npos > 0 && nneg > 0); /* both signs of r were asked about */
    free(asa_conv);
    aal_tape_free(td);
    aal_tape_free(tp);
    capture_free(&cd);
    capture_free(&cp);
    small_free(&def);
    small_free(&pm1);
  }
}
END_TEST

START_TEST(test_controls)
{
  const char *rules[] = {"flip", "noise", "noise:all"};
  for (int t = 0; t < 3; t++) {
    small_net s;
    capture c;
    small_init(&s, rules[t]);
    observe(&s, &c);
    double loss;
    aal_tape_free(small_step(&s, &loss));
    int count = 0;
    for (int i = 0; i < s.net.nparams; i++) {
      if (c.x[i] == NULL || c.source[i] == AAL_R_INPUT)
        continue;
      count++;
      const aal_tensor *h = c.h[i], *r = c.r_fwd[i];
      /* backward regenerates exactly the r that forward saw */
      ck_assert_msg(bits_equal(r, c.r_bwd[i]), "%s: %s: r differs between passes", rules[t],
                    s.net.params[i].name);
      ck_assert(bits_equal(h, c.x[i]));
      const size_t per = h->size / h->shape[0];
      for (size_t nn = 0; nn < h->shape[0]; nn++) {
        double hh = 0, rr = 0, hr = 0;
        for (size_t k = 0; k < per; k++) {
          const double hv = h->data[nn * per + k], rv = r->data[nn * per + k];
          hh += hv * hv;
          rr += rv * rv;
          hr += hv * rv;
          if (c.source[i] == AAL_R_FLIP)
            ck_assert(rv == -hv);
        }
        /* ||r_n|| = ||h_n||: relative error of two sums of `per` squares */
        ck_assert_msg(fabs(sqrt(rr) - sqrt(hh)) <= 4.0 * per * 1.1e-16 * sqrt(hh),
                      "%s: sample %zu norm %g vs %g", rules[t], nn, sqrt(rr), sqrt(hh));
        if (c.source[i] == AAL_R_NOISE) /* independent noise: |cos(h, r)| is small */
          ck_assert_msg(fabs(hr) < 0.5 * hh, "%s: noise correlated with h", rules[t]);
      }
      check_weight_grad(&s, i, c.r_bwd[i], c.dy[i], 1.0);
    }
    ck_assert_int_eq(count, t == 2 ? 2 * s.net.nblocks + 3 : 5);
    capture_free(&c);
    small_free(&s);
  }
}
END_TEST

/* ---------------------------------------------------------------- tape bytes */

typedef struct { size_t doubles, bits_bytes; } tape_count;

static void add_doubles(tape_count *t, size_t n) { t->doubles += n; }
static void add_bits(tape_count *t, size_t n) { t->bits_bytes += (n + 7) / 8; }

/* Closed-form tape contents of ResNet-18 (Tiny ImageNet) at batch n under BP, with the
 * inputs of the blocks in `alt` stored as nothing extra (ARA: the register is already
 * stored) or as bits (ASA). */
static tape_count resnet18_tape(size_t n, const int *alt, int asa)
{
  tape_count t = {0, 0};
  add_doubles(&t, n * 3 * 64 * 64);             /* stem conv input (the image) */
  add_doubles(&t, n * 64 * 32 * 32 + 2 * 64);   /* stem bn: x, mean, invstd */
  add_bits(&t, n * 64 * 32 * 32);               /* stem relu mask */
  const size_t cin[8] = {64, 64, 64, 128, 128, 256, 256, 512};
  const size_t cout[8] = {64, 64, 128, 128, 256, 256, 512, 512};
  const size_t hin[8] = {32, 32, 32, 16, 16, 8, 8, 4};
  const size_t stride[8] = {1, 1, 2, 1, 2, 1, 2, 1};
  for (int b = 0; b < 8; b++) {
    const size_t x = n * cin[b] * hin[b] * hin[b], ho = hin[b] / stride[b];
    const size_t a = n * cout[b] * ho * ho;
    if (!alt[b])
      add_doubles(&t, x);           /* conv1 (and downsample) input x_b, shared */
    else if (asa)
      add_bits(&t, x);              /* its sign bits, shared with the downsample */
    add_doubles(&t, a + 2 * cout[b]); /* bn1 */
    add_bits(&t, a);                /* relu1 */
    add_doubles(&t, a);             /* conv2 input */
    add_doubles(&t, a + 2 * cout[b]); /* bn2 */
    if (stride[b] != 1)
      add_doubles(&t, a + 2 * cout[b]); /* downsample bn */
    add_bits(&t, a);                /* relu2 */
  }
  add_doubles(&t, n * 512);         /* fc input */
  add_doubles(&t, n * 200);         /* probabilities */
  return t;
}

/* AAL_TEST_LIGHT=1 (for valgrind, which is ~50x slower) shrinks the two full-size
 * tests: the tape count at batch 2 instead of 32, reproducibility at width 1/8. */
static int light(void)
{
  const char *v = getenv("AAL_TEST_LIGHT");
  return v != NULL && *v != '\0' && *v != '0';
}

START_TEST(test_tape_bytes_resnet18)
{
  const size_t n = light() ? 2 : 32;
  aal_resnet net;
  aal_resnet_config cfg;
  aal_error err;
  aal_error_clear(&err);
  aal_resnet_config_default(&cfg);
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, seed, &err), AAL_OK);
  aal_tensor *x = aal_tensor_new4((long)n, 3, 64, 64, &err);
  int labels[32];
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  fd_fill_uniform(rng, x->data, x->size, -2, 2);
  for (size_t i = 0; i < n; i++)
    labels[i] = (int)gsl_rng_uniform_int(rng, 200);
  const char *rules[3] = {"bp", "ara:2,2,2,2", "asa:2,2,2,2"};
  const int none[8] = {0}, alt[8] = {0, 1, 0, 0, 1, 0, 1, 0};
  size_t bytes[3];
  for (int t = 0; t < 3; t++) {
    aal_rule rule;
    aal_resnet_pass pass;
    ck_assert_int_eq(aal_rule_parse(rules[t], &rule, &err), AAL_OK);
    ck_assert_int_eq(aal_resnet_pass_init(&pass, &net, &rule, 1, 0, &err), AAL_OK);
    aal_tape *tape = aal_tape_new(&err);
    double loss;
    int rc = aal_resnet_forward(&net, &pass, x, labels, tape, &loss, NULL, &err);
    ck_assert_msg(rc == AAL_OK, "%s", err.msg);
    const tape_count want = resnet18_tape(n, t == 0 ? none : alt, t == 2);
    bytes[t] = aal_tape_bytes(tape);
    fprintf(stderr, "%-12s tape %zu bytes (%.1f MiB), %zu at float32; closed form %zu\n",
            rules[t], bytes[t], bytes[t] / 1048576.0, aal_tape_bytes_f32(tape),
            8 * want.doubles + want.bits_bytes);
    ck_assert_uint_eq(bytes[t], 8 * want.doubles + want.bits_bytes);
    ck_assert_uint_eq(aal_tape_bytes_f32(tape), 4 * want.doubles + want.bits_bytes);
    aal_tape_free(tape);
  }
  ck_assert_uint_lt(bytes[2], bytes[0]);
  ck_assert_uint_lt(bytes[1], bytes[2]);
  aal_tensor_release(x);
  gsl_rng_free(rng);
  aal_resnet_free(&net);
}
END_TEST

/* ---------------------------------------------------------------- reproducibility */

static double *step_gradients(int threads, const char *rule_text, size_t *n)
{
  openblas_set_num_threads(threads);
  aal_resnet net;
  aal_resnet_config cfg;
  aal_error err;
  aal_resnet_config_default(&cfg);
  ck_assert_int_eq(aal_resnet_config_set_width(&cfg, light() ? 0.125 : 0.25, &err), AAL_OK);
  cfg.in_size = 32;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, seed, &err), AAL_OK);
  aal_tensor *x = aal_tensor_new4(8, 3, 32, 32, &err);
  int labels[8];
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  fd_fill_uniform(rng, x->data, x->size, -2, 2);
  for (int i = 0; i < 8; i++)
    labels[i] = (int)gsl_rng_uniform_int(rng, 200);
  aal_rule rule;
  aal_resnet_pass pass;
  ck_assert_int_eq(aal_rule_parse(rule_text, &rule, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_pass_init(&pass, &net, &rule, 5, 3, &err), AAL_OK);
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  ck_assert_int_eq(aal_resnet_forward(&net, &pass, x, labels, tape, &loss, NULL, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_backward(&net, &pass, tape, labels, &err), AAL_OK);
  *n = aal_resnet_param_count(&net);
  double *g = malloc((*n + 1) * sizeof *g);
  net_to_flat(&net, 1, g);
  g[*n] = loss;
  aal_tape_free(tape);
  aal_tensor_release(x);
  gsl_rng_free(rng);
  aal_resnet_free(&net);
  return g;
}

START_TEST(test_reproducible)
{
  const char *rules[] = {"bp", "asa:2,2,2,2", "noise"};
  for (int t = 0; t < 3; t++) {
    size_t n;
    double *a = step_gradients(2, rules[t], &n), *b = step_gradients(2, rules[t], &n);
    double *c = step_gradients(1, rules[t], &n);
    ck_assert_msg(memcmp(a, b, (n + 1) * sizeof *a) == 0, "%s: repeated run differs", rules[t]);
    ck_assert_msg(memcmp(a, c, (n + 1) * sizeof *a) == 0, "%s: 1 vs 2 threads differ", rules[t]);
    free(a);
    free(b);
    free(c);
  }
  openblas_set_num_threads(2);
}
END_TEST

/* ---------------------------------------------------------------- bad input */

START_TEST(test_bad_input)
{
  small_net s;
  small_init(&s, "bp");
  aal_error err;
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  aal_tensor *wrong = aal_tensor_new4(NB, 3, SIZE + 1, SIZE, &err);
  aal_error_clear(&err);
  ck_assert_int_eq(aal_resnet_forward(&s.net, &s.pass, wrong, s.labels, tape, &loss, NULL, &err),
                   AAL_ESHAPE);
  ck_assert(strstr(err.msg, "expected Nx3x16x16") != NULL);
  int bad_labels[NB] = {0, CLASSES, 1};
  ck_assert_int_eq(aal_resnet_forward(&s.net, &s.pass, s.x, bad_labels, tape, &loss, NULL, &err),
                   AAL_EINVAL);
  ck_assert(strstr(err.msg, "sample 1") != NULL);
  /* backward with nothing on the tape names what it misses */
  aal_tape_clear(tape);
  ck_assert_int_eq(aal_resnet_backward(&s.net, &s.pass, tape, s.labels, &err), AAL_ETAPE);
  /* a plan made for another depth */
  aal_rule rule;
  aal_resnet_pass other;
  const int stride2[3] = {0, 1, 0};
  ck_assert_int_eq(aal_rule_parse("bp", &rule, &err), AAL_OK);
  other = s.pass;
  ck_assert_int_eq(aal_rule_plan_make(&rule, 3, stride2, 0, &other.plan, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_forward(&s.net, &other, s.x, s.labels, tape, &loss, NULL, &err),
                   AAL_EINVAL);
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  cfg.in_size = 8;
  aal_resnet net;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_EINVAL);
  aal_tensor_release(wrong);
  aal_tape_free(tape);
  small_free(&s);
}
END_TEST

START_TEST(test_sgd_matches_pytorch_formula)
{
  small_net s;
  small_init(&s, "bp");
  aal_error err;
  aal_param *p = aal_resnet_find(&s.net, "fc.bias");
  const double w0 = p->value->data[0];
  p->grad->data[0] = 0.5;
  for (int i = 0; i < s.net.nparams; i++)
    if (s.net.params[i].grad != NULL && s.net.params[i].grad != p->grad)
      aal_tensor_fill(s.net.params[i].grad, 0.0);
  ck_assert_int_eq(aal_resnet_sgd_step(&s.net, 0.1, 0.9, 1e-4, &err), AAL_OK);
  const double d1 = 0.5 + 1e-4 * w0, w1 = w0 - 0.1 * d1;
  ck_assert(p->value->data[0] == w1);
  ck_assert_int_eq(aal_resnet_sgd_step(&s.net, 0.1, 0.9, 1e-4, &err), AAL_OK);
  const double d2 = 0.9 * d1 + (0.5 + 1e-4 * w1), w2 = w1 - 0.1 * d2;
  ck_assert(p->value->data[0] == w2);
  ck_assert_int_eq(aal_resnet_sgd_step(&s.net, 0.1, 1.0, 1e-4, &err), AAL_EINVAL);
  small_free(&s);
}
END_TEST

int main(void)
{
  seed = fd_test_seed();
  Suite *s = suite_create("resnet");
  TCase *tc = tcase_create("rules");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_rule_parse);
  tcase_add_test(tc, test_rule_round_trip);
  tcase_add_test(tc, test_rule_decode);
  tcase_add_test(tc, test_rule_plans);
  tcase_add_test(tc, test_names_and_shapes);
  tcase_add_test(tc, test_bottleneck_plans);
  tcase_add_test(tc, test_torchvision_param_counts);
  tcase_add_loop_test(tc, test_bp_gradient_fd, 0, NARCH);
  tcase_add_loop_test(tc, test_ara_identities, 0, NARCH);
  tcase_add_loop_test(tc, test_asa_identities, 0, NARCH);
  tcase_add_test(tc, test_asa_pm1_identities);
  tcase_add_test(tc, test_controls);
  tcase_add_test(tc, test_tape_bytes_resnet18);
  tcase_add_test(tc, test_reproducible);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_sgd_matches_pytorch_formula);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
