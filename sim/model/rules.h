/* Learning rules as data (SPEC sections 3-5).  A rule decides, for every conv of the
 * ResNet, what the forward pass stores and which alternative activation r its weight
 * gradient uses; the model code only asks the plan.
 *
 * Text forms (aal_rule_parse):
 *   bp
 *   ara:K1,K2,...      one k per block group (ResNet-18: 4 groups, [3,2,2,1] blocks)
 *   asa:K1,K2,...[;eps=E][;lr_expansion=X][;decode=01|pm1]     asa:all[;...]
 *   noise[:K1,...|:all]   flip[:K1,...|:all]   (default k = 2 in every group)
 *
 * Block groups: the blocks are cut after every block that changes the resolution
 * (stride 2) and after the last block.  A network may lead with plain blocks (the
 * bottleneck ResNets' first block, as the authors' `layer0`): they form a group of
 * their own that no k is written for and that learns by BP under every rule but ":all".
 * Block i (counted from 0 in group j):
 *   ARA reset point   iff  i mod k_j == k_j - 1  or  i is the group's last block;
 *   ASA/noise/flip    iff  i mod k_j != 0   (on the block's first conv and projection
 *                          shortcut);  ":all" means every conv but the stem. */
#ifndef AAL_RULES_H
#define AAL_RULES_H

#include <stddef.h>

#include "sim/core/error.h"

#define AAL_MAX_GROUPS 8
#define AAL_MAX_BLOCKS 1024

typedef enum {
  AAL_RULE_BP, AAL_RULE_ARA, AAL_RULE_ASA, AAL_RULE_NOISE, AAL_RULE_FLIP
} aal_rule_kind;

typedef struct {
  aal_rule_kind kind;
  int ngroups_given;      /* how many k were written; 0 for bp and for ":all" */
  int k[AAL_MAX_GROUPS];
  int all;                /* ":all": every conv but the stem */
  double eps;             /* ASA: auxiliary amplitude (default 0.01) */
  double lr_expansion;    /* ASA: weight-gradient multiplier (default 100) */
  int decode_pm1;         /* ASA, "decode=pm1": the published variant (SPEC section 4):
                           * forward on x + eps*b, b in {0,1}, but r = eps*(2b - 1)
                           * (+eps where x > 0, -eps where x == 0).  0 ("decode=01",
                           * the default): r = eps*b, the decoding of the forward. */
} aal_rule;

int aal_rule_parse(const char *text, aal_rule *rule, aal_error *err);
/* Canonical text, e.g. "ara:2,2,2,2" or "asa:2,2,2,2;eps=0.01;lr_expansion=100"; eps and
 * lr_expansion in the shortest form that reads back exactly, so that aal_rule_parse of
 * the text gives the same rule; ";decode=pm1" follows only when it is set (the default
 * decoding is not written, so texts from before the option are unchanged).  At most 119
 * characters (8 groups of 1000, eps and lr_expansion of 23 characters each). */
void aal_rule_format(const aal_rule *rule, char *buf, size_t len);

/* What a conv's weight gradient uses in place of its input h. */
typedef enum {
  AAL_R_INPUT,   /* r = h (BP) */
  AAL_R_ARA,     /* r = the ARA register */
  AAL_R_ASA,     /* r = eps * sign bits; forward computes on h = x + eps*s */
  AAL_R_NOISE,   /* r = Gaussian noise with ||r_n|| = ||h_n|| per sample */
  AAL_R_FLIP     /* r = -h */
} aal_r_source;

/* The rule applied to a network of nblocks blocks whose stride-2 blocks are flagged. */
typedef struct {
  int nblocks, ngroups;                /* ngroups counts the plain lead group too */
  int lead_plain;                      /* 1: group 0 is the plain lead group */
  int group_of[AAL_MAX_BLOCKS];        /* block -> group */
  int index_in_group[AAL_MAX_BLOCKS];
  int group_size[AAL_MAX_GROUPS];
  /* ARA: register_source[b] = a means block b's first conv and shortcut use x_a
   * (a == b: exact).  reset_after[b]: after block b, A := x_{b+1}. */
  int register_source[AAL_MAX_BLOCKS];
  int reset_after[AAL_MAX_BLOCKS];
  /* per block: source of r for its first conv + projection shortcut, and for its
   * second conv */
  aal_r_source first_conv[AAL_MAX_BLOCKS];
  aal_r_source second_conv[AAL_MAX_BLOCKS];
} aal_rule_plan;

/* lead_plain: how many leading blocks form the plain group (0 or more). */
int aal_rule_plan_make(const aal_rule *rule, int nblocks, const int *stride2, int lead_plain,
                       aal_rule_plan *plan, aal_error *err);

#endif
