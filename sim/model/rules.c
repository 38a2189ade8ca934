#include "sim/model/rules.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_EPS 0.01
#define DEFAULT_LR_EXPANSION 100.0
#define DEFAULT_CONTROL_K 2

static int parse_k_list(const char *text, aal_rule *rule, const char *whole, aal_error *err)
{
  const char *p = text;
  rule->ngroups_given = 0;
  while (*p != '\0' && *p != ';') {
    if (rule->ngroups_given == AAL_MAX_GROUPS)
      return aal_fail(err, AAL_EINVAL, "rule '%s': more than %d group values", whole,
                      AAL_MAX_GROUPS);
    char *end;
    errno = 0;
    long k = strtol(p, &end, 10);
    if (end == p || errno != 0 || k < 1 || k > 1000 || (*end != ',' && *end != ';' && *end))
      return aal_fail(err, AAL_EINVAL, "rule '%s': '%.*s' is not a group value k >= 1", whole,
                      (int)strcspn(p, ",;"), p);
    rule->k[rule->ngroups_given++] = (int)k;
    p = *end == ',' ? end + 1 : end;
    if (*end == ',' && (*p == '\0' || *p == ';'))
      return aal_fail(err, AAL_EINVAL, "rule '%s': trailing comma", whole);
  }
  if (rule->ngroups_given == 0)
    return aal_fail(err, AAL_EINVAL, "rule '%s': expected k values, e.g. 2,2,2,2", whole);
  return AAL_OK;
}

static int parse_option(const char *opt, size_t len, aal_rule *rule, const char *whole,
                        aal_error *err)
{
  const char *eq = memchr(opt, '=', len);
  if (eq == NULL)
    return aal_fail(err, AAL_EINVAL, "rule '%s': option '%.*s' needs NAME=VALUE", whole,
                    (int)len, opt);
  const size_t nlen = (size_t)(eq - opt);
  char value[64];
  const size_t vlen = len - nlen - 1;
  if (vlen == 0 || vlen >= sizeof value)
    return aal_fail(err, AAL_EINVAL, "rule '%s': bad value in '%.*s'", whole, (int)len, opt);
  memcpy(value, eq + 1, vlen);
  value[vlen] = '\0';
  if (rule->kind != AAL_RULE_ASA)
    return aal_fail(err, AAL_EINVAL, "rule '%s': options apply to asa only", whole);
  if (nlen == 6 && strncmp(opt, "decode", 6) == 0) {
    /* SPEC section 4: {0,1} in both passes (the default), or the published variant:
     * {0,1} forward, {-1,+1} backward */
    if (strcmp(value, "01") == 0)
      rule->decode_pm1 = 0;
    else if (strcmp(value, "pm1") == 0)
      rule->decode_pm1 = 1;
    else
      return aal_fail(err, AAL_EINVAL, "rule '%s': decode '%s' is not 01 or pm1", whole,
                      value);
    return AAL_OK;
  }
  double *slot;
  if (nlen == 3 && strncmp(opt, "eps", 3) == 0)
    slot = &rule->eps;
  else if (nlen == 12 && strncmp(opt, "lr_expansion", 12) == 0)
    slot = &rule->lr_expansion;
  else
    return aal_fail(err, AAL_EINVAL, "rule '%s': unknown option '%.*s' (eps, lr_expansion, "
                    "decode)", whole, (int)nlen, opt);
  char *end;
  errno = 0;
  const double v = strtod(value, &end);
  /* normal numbers only: a subnormal one would be written in a form that reads back with
   * an underflow (ERANGE) */
  if (end == value || *end != '\0' || errno != 0 || !isnormal(v) || !(v > 0))
    return aal_fail(err, AAL_EINVAL, "rule '%s': '%s' is not a positive normal number "
                    "(%g..%g)", whole, value, DBL_MIN, DBL_MAX);
  *slot = v;
  return AAL_OK;
}

static int parse_options(const char *p, aal_rule *rule, const char *whole, aal_error *err)
{
  while (*p == ';') {
    p++;
    const size_t len = strcspn(p, ";");
    int rc = parse_option(p, len, rule, whole, err);
    if (rc != AAL_OK)
      return rc;
    p += len;
  }
  if (*p != '\0')
    return aal_fail(err, AAL_EINVAL, "rule '%s': unexpected '%s'", whole, p);
  return AAL_OK;
}

int aal_rule_parse(const char *text, aal_rule *rule, aal_error *err)
{
  if (text == NULL || rule == NULL)
    return aal_fail(err, AAL_EINVAL, "rule: NULL argument");
  memset(rule, 0, sizeof *rule);
  rule->eps = DEFAULT_EPS;
  rule->lr_expansion = DEFAULT_LR_EXPANSION;
  static const struct { const char *name; aal_rule_kind kind; } names[] = {
      {"bp", AAL_RULE_BP}, {"ara", AAL_RULE_ARA}, {"asa", AAL_RULE_ASA},
      {"noise", AAL_RULE_NOISE}, {"flip", AAL_RULE_FLIP}};
  const size_t nlen = strcspn(text, ":;");
  size_t i = 0;
  while (i < sizeof names / sizeof names[0] &&
         !(strlen(names[i].name) == nlen && strncmp(text, names[i].name, nlen) == 0))
    i++;
  if (i == sizeof names / sizeof names[0])
    return aal_fail(err, AAL_EINVAL,
                    "unknown rule '%s' (bp, ara:K1,K2,K3,K4, asa:K1,K2,K3,K4, asa:all, "
                    "noise, flip)", text);
  rule->kind = names[i].kind;
  const char *p = text + nlen;
  if (*p == ':') {
    p++;
    if (rule->kind == AAL_RULE_BP)
      return aal_fail(err, AAL_EINVAL, "rule '%s': bp takes no values", text);
    if (strncmp(p, "all", 3) == 0 && (p[3] == '\0' || p[3] == ';')) {
      if (rule->kind == AAL_RULE_ARA)
        return aal_fail(err, AAL_EINVAL, "rule '%s': ara needs k values", text);
      rule->all = 1;
      p += 3;
    } else {
      int rc = parse_k_list(p, rule, text, err);
      if (rc != AAL_OK)
        return rc;
      p += strcspn(p, ";");
    }
  } else if (rule->kind == AAL_RULE_ARA || rule->kind == AAL_RULE_ASA) {
    return aal_fail(err, AAL_EINVAL, "rule '%s' needs k values, e.g. %s:2,2,2,2", text,
                    names[i].name);
  }
  return parse_options(p, rule, text, err);
}

/* v in the shortest of %.6g (%g, what the format always wrote) .. %.17g that reads back
 * as v exactly. */
static void format_exact(char *buf, size_t len, double v)
{
  for (int digits = 6; digits <= 17; digits++) {
    snprintf(buf, len, "%.*g", digits, v);
    if (strtod(buf, NULL) == v)
      return;
  }
}

void aal_rule_format(const aal_rule *rule, char *buf, size_t len)
{
  static const char *const names[] = {"bp", "ara", "asa", "noise", "flip"};
  size_t used = 0;
  int n = snprintf(buf, len, "%s", names[rule->kind]);
  used = n > 0 ? (size_t)n : 0;
  if (rule->all && used < len)
    used += (size_t)snprintf(buf + used, len - used, ":all");
  for (int g = 0; g < rule->ngroups_given && used < len; g++)
    used += (size_t)snprintf(buf + used, len - used, "%c%d", g ? ',' : ':', rule->k[g]);
  if (rule->kind == AAL_RULE_ASA && used < len) {
    char eps[32], lr_expansion[32];
    format_exact(eps, sizeof eps, rule->eps);
    format_exact(lr_expansion, sizeof lr_expansion, rule->lr_expansion);
    n = snprintf(buf + used, len - used, ";eps=%s;lr_expansion=%s", eps, lr_expansion);
    used += n > 0 ? (size_t)n : 0;
    if (rule->decode_pm1 && used < len)
      snprintf(buf + used, len - used, ";decode=pm1");
  }
}

/* Groups end after every stride-2 block, after the plain lead and after the last block. */
static int make_groups(int nblocks, const int *stride2, int lead_plain, aal_rule_plan *plan,
                       aal_error *err)
{
  int g = 0, i = 0;
  for (int b = 0; b < nblocks; b++) {
    if (g == AAL_MAX_GROUPS)
      return aal_fail(err, AAL_EINVAL, "network has more than %d block groups",
                      AAL_MAX_GROUPS);
    plan->group_of[b] = g;
    plan->index_in_group[b] = i++;
    plan->group_size[g] = i;
    if (stride2[b] || b == nblocks - 1 || b == lead_plain - 1) {
      g++;
      i = 0;
    }
  }
  plan->ngroups = g;
  return AAL_OK;
}

/* The k of group g; the plain lead group's k is 1 (every block reads its own input). */
static int group_k(const aal_rule *rule, const aal_rule_plan *plan, int g)
{
  if (plan->lead_plain && g == 0)
    return 1;
  if (rule->ngroups_given == 0)
    return DEFAULT_CONTROL_K;
  return rule->k[g - plan->lead_plain];
}

static void plan_ara(const aal_rule *rule, aal_rule_plan *plan)
{
  int source = 0;  /* A := x_0 after the stem */
  for (int b = 0; b < plan->nblocks; b++) {
    const int g = plan->group_of[b], i = plan->index_in_group[b], k = group_k(rule, plan, g);
    plan->register_source[b] = source;
    plan->first_conv[b] = source == b ? AAL_R_INPUT : AAL_R_ARA;
    plan->second_conv[b] = AAL_R_INPUT;
    plan->reset_after[b] = (i % k == k - 1) || (i == plan->group_size[g] - 1);
    if (plan->reset_after[b])
      source = b + 1;
  }
}

static void plan_selected(const aal_rule *rule, aal_r_source r, aal_rule_plan *plan)
{
  for (int b = 0; b < plan->nblocks; b++) {
    const int g = plan->group_of[b], i = plan->index_in_group[b];
    const int selected = rule->all || i % group_k(rule, plan, g) != 0;
    plan->first_conv[b] = selected ? r : AAL_R_INPUT;
    plan->second_conv[b] = rule->all ? r : AAL_R_INPUT;
  }
}

int aal_rule_plan_make(const aal_rule *rule, int nblocks, const int *stride2, int lead_plain,
                       aal_rule_plan *plan, aal_error *err)
{
  if (rule == NULL || stride2 == NULL || plan == NULL)
    return aal_fail(err, AAL_EINVAL, "rule plan: NULL argument");
  if (nblocks < 1 || nblocks > AAL_MAX_BLOCKS)
    return aal_fail(err, AAL_EINVAL, "rule plan: %d blocks is outside 1..%d", nblocks,
                    AAL_MAX_BLOCKS);
  if (lead_plain < 0 || lead_plain >= nblocks)
    return aal_fail(err, AAL_EINVAL, "rule plan: %d plain lead blocks of %d", lead_plain,
                    nblocks);
  memset(plan, 0, sizeof *plan);
  plan->nblocks = nblocks;
  plan->lead_plain = lead_plain > 0;
  int rc = make_groups(nblocks, stride2, lead_plain, plan, err);
  if (rc != AAL_OK)
    return rc;
  const int ruled = plan->ngroups - plan->lead_plain;
  if (rule->ngroups_given != 0 && rule->ngroups_given != ruled)
    return aal_fail(err, AAL_EINVAL,
                    "rule gives %d group values but this network has %d block groups%s",
                    rule->ngroups_given, ruled,
                    plan->lead_plain ? " after its plain first block" : "");
  for (int b = 0; b < nblocks; b++) {
    plan->register_source[b] = b;
    plan->reset_after[b] = 1;
  }
  switch (rule->kind) {
  case AAL_RULE_BP: break;
  case AAL_RULE_ARA: plan_ara(rule, plan); break;
  case AAL_RULE_ASA: plan_selected(rule, AAL_R_ASA, plan); break;
  case AAL_RULE_NOISE: plan_selected(rule, AAL_R_NOISE, plan); break;
  case AAL_RULE_FLIP: plan_selected(rule, AAL_R_FLIP, plan); break;
  }
  return AAL_OK;
}
