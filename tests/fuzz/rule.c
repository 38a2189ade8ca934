/* Fuzzes the learning-rule parser (sim/model/rules.c, aal_rule_parse) with the property
 * that format then parse gives the same rule: for any text that parses, its canonical
 * text (aal_rule_format) is at most 119 characters, parses, has the same kind, k values,
 * ":all", eps and lr_expansion (bit for bit) and decoding, and formats to itself.  A
 * rule that parses also makes a plan for ResNet-18's blocks or fails with a message.
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (every form of aal memory --help, and
 * broken ones) and exits. */
#include "tests/fuzz/fuzz.h"

#include "sim/model/rules.h"

static void same_rule(const aal_rule *a, const aal_rule *b, const char *text)
{
  FUZZ_REQUIRE(a->kind == b->kind && a->ngroups_given == b->ngroups_given &&
               a->all == b->all && a->decode_pm1 == b->decode_pm1,
               "'%s': kind %d/%d, groups %d/%d, all %d/%d, decode %d/%d", text, a->kind,
               b->kind, a->ngroups_given, b->ngroups_given, a->all, b->all, a->decode_pm1,
               b->decode_pm1);
  FUZZ_REQUIRE(a->ngroups_given >= 0 && a->ngroups_given <= AAL_MAX_GROUPS, "'%s': %d groups",
               text, a->ngroups_given);
  for (int g = 0; g < a->ngroups_given; g++)
    FUZZ_REQUIRE(a->k[g] == b->k[g], "'%s': k[%d] %d/%d", text, g, a->k[g], b->k[g]);
  FUZZ_REQUIRE(memcmp(&a->eps, &b->eps, sizeof a->eps) == 0 &&
               memcmp(&a->lr_expansion, &b->lr_expansion, sizeof a->lr_expansion) == 0,
               "'%s': eps %.17g/%.17g, lr_expansion %.17g/%.17g", text, a->eps, b->eps,
               a->lr_expansion, b->lr_expansion);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 4096)
    return 0;
  char text[4097];
  memcpy(text, data, size);
  text[size] = '\0';
  aal_rule r1, r2;
  aal_error err;
  if (aal_rule_parse(text, &r1, &err) != AAL_OK) {
    FUZZ_REQUIRE(err.msg[0] != '\0', "'%s' refused without a message", text);
    return 0;
  }
  char t1[160], t2[160];
  memset(t1, 'x', sizeof t1);
  aal_rule_format(&r1, t1, sizeof t1);
  FUZZ_REQUIRE(memchr(t1, '\0', sizeof t1) != NULL && strlen(t1) <= 119,
               "'%s' formats to more than 119 characters", text);
  FUZZ_REQUIRE(aal_rule_parse(t1, &r2, &err) == AAL_OK, "'%s' formats to '%s', which does "
               "not parse: %s", text, t1, err.msg);
  same_rule(&r1, &r2, text);
  aal_rule_format(&r2, t2, sizeof t2);
  FUZZ_REQUIRE(strcmp(t1, t2) == 0, "'%s' -> '%s' -> '%s'", text, t1, t2);
  /* ResNet-18's blocks: the stride-2 blocks are the first of stages 2-4 */
  const int stride2[8] = {0, 0, 1, 0, 1, 0, 1, 0};
  aal_rule_plan plan;
  if (aal_rule_plan_make(&r1, 8, stride2, 0, &plan, &err) != AAL_OK)
    FUZZ_REQUIRE(err.msg[0] != '\0', "'%s': plan refused without a message", t1);
  return 0;
}

static void write_seeds(const char *dir)
{
  static const char *const seeds[][2] = {
      {"bp", "bp"},
      {"ara", "ara:2,2,2,2"},
      {"ara-odd", "ara:3,2,2,1"},
      {"asa", "asa:2,2,2,2;eps=0.01;lr_expansion=100"},
      {"asa-all-pm1", "asa:all;decode=pm1;eps=0.0123456789"},
      {"asa-options", "asa:1,2,3,4;lr_expansion=1e3;decode=01;eps=5e-324"},
      {"noise", "noise:all"},
      {"flip", "flip:1,1,1,1"},
      {"bad-kind", "sgd:2,2,2,2"},
      {"bad-option", "ara:2,2,2,2;decode=pm1"},
      {"bad-number", "asa:2,2,2,2;eps=nan;lr_expansion=-1"},
      {"too-many", "asa:1,1,1,1,1,1,1,1,1"}};
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    char path[4300];
    fuzz_path(path, sizeof path, dir, seeds[i][0]);
    fuzz_write(path, seeds[i][1], strlen(seeds[i][1]));
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  return 0;
}
