/* The Transformer-like storage plan (sim/model/tfmem.h) against hand counts:
 *  - a tiny BERT (1 block, width 4, 2 heads, FFN 16, 3 tokens, batch 2) under bp, mesa,
 *    asa1..asa4 and mesa+asa4, totals from the closed forms below;
 *  - every entry's bytes under every policy against its kind's formula, for all models;
 *  - shared tensors counted once (the q/k/v input; the encoder output every decoder
 *    layer's cross-attention keeps), Mesa's codes and ASA's signs per holder;
 *  - the tiny ViT, Mixer and Transformer totals by hand (closed forms below);
 *  - BERT-Large's parameter count (Hugging Face's bert-large-uncased, 335,141,888 with the
 *    pooler, and a 2-way classifier);
 *  - with softmax_input 0 (PyTorch 1.11's softmax keeps its output only), the same tiny
 *    models without the softmax and log-softmax inputs;
 *  - bad configurations refused with the option named. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/aal_check.h"
#include "sim/model/tfmem.h"

static const aal_tfmem_policy BP = {0, 0}, MESA = {0, 1};

static size_t total(const aal_tfmem_config *c, aal_tfmem_policy p)
{
  aal_tfmem_plan plan;
  aal_error err;
  size_t t = 0;
  ck_assert_int_eq(aal_tfmem_plan_make(c, &plan, &err), AAL_OK);
  ck_assert_int_eq(aal_tfmem_counted(&plan, p, NULL, &t, &err), AAL_OK);
  aal_tfmem_plan_free(&plan);
  return t;
}

static aal_tfmem_config tiny(aal_tfmem_model m)
{
  aal_tfmem_config c;
  aal_tfmem_config_default(&c, m);
  c.depth = 1;
  c.width = 4;
  c.heads = 2;
  c.mlp_ratio = 4;
  c.token_mlp = 2;
  c.seq = 3;
  c.image = 4;
  c.patch = 2;
  c.batch = 2;
  c.vocab = 10;
  c.classes = 2;
  return c;
}

/* Tiny BERT, per sample, N = 3 tokens, D = 4, H = 2, F = 16 (bytes):
 *   embed: token and segment ids 2 * 8N; TF LayerNorm 3 * 4ND + 4N (x-u twice, x-hat,
 *          the per-token std); dropout mask ND;
 *   block: q/k/v input 4ND (one tensor), Q and K copies 8ND, softmax input and output
 *          8HN^2 (PyTorch 1.8), dropout mask HN^2 and output 4HN^2, V copy 4ND, projection input 4ND, mask ND,
 *          norm1 12ND + 4N, fc1 input 4ND, GELU input 4NF, fc2 input 4NF, mask ND,
 *          norm2 12ND + 4N;
 *   head:  fc input 4ND (h[:, 0] is a view of the whole output), tanh output 4D, mask D,
 *          classifier input 4D.
 * BP = 28N + 67ND + 13HN^2 + 8NF + 9D = 84 + 804 + 234 + 384 + 36 = 1542, x 2 = 3084.
 * Mesa: one byte a code, every holder its own (q, k, v: 3ND; Q, K: 2ND; the softmax's
 * input and output 2HN^2; the probabilities HN^2 and V ND for Mesa's second MatMul;
 * projection, fc1 ND, GELU and fc2 NF each; fc: D, classifier D); TF LayerNorms, masks,
 * ids and tanh as BP: 28N + 47ND + 4HN^2 + 2NF + 7D = 84 + 564 + 72 + 96 + 28 = 844,
 * x 2 = 1688.
 * ASA: an input of n elements (whole batch) becomes ceil(n/32) int32 words: fc2 (96) 12
 * bytes, fc1, proj and each of q, k, v (24) 4 bytes. */
START_TEST(bert_by_hand)
{
  const aal_tfmem_config c = tiny(AAL_TFMEM_BERT);
  ck_assert_uint_eq(total(&c, BP), 3084);
  ck_assert_uint_eq(total(&c, MESA), 1688);
  ck_assert_uint_eq(total(&c, (aal_tfmem_policy){1, 0}), 3084 - 384 + 12);
  ck_assert_uint_eq(total(&c, (aal_tfmem_policy){2, 0}), 2712 - 96 + 4);
  ck_assert_uint_eq(total(&c, (aal_tfmem_policy){3, 0}), 2620 - 96 + 4);
  ck_assert_uint_eq(total(&c, (aal_tfmem_policy){4, 0}), 2528 - 96 + 3 * 4);
  ck_assert_uint_eq(total(&c, (aal_tfmem_policy){4, 1}), 1688 - (96 - 12) - 2 * (24 - 4) -
                                                             3 * (24 - 4));
}
END_TEST

/* Tiny ViT, per sample: image 4x4 (48 values), patch 2: N = 5 tokens (4 + the class
 * token), D = 4, H = 2, F = 16, C = 2; attention dropout 0, so the probabilities the
 * second product keeps are the softmax output (one tensor):
 *   embed: image 4*48 = 192; dropout mask ND;
 *   block: LN1 input 4ND + 8N, q/k/v input 4ND, Q, K 8ND, softmax input and output
 *          8HN^2, V 4ND,
 *          out input 4ND, LN2 input 4ND + 8N, fc1 input 4ND, GELU 4NF, mask NF,
 *          fc2 input 4NF, mask ND;
 *   head:  encoder norm 4ND + 8N, head input 4ND (the view keeps the normed tensor),
 *          log_softmax's input and output 8C.
 * BP = 192 + 42ND + 8HN^2 + 9NF + 24N + 8C = 192 + 840 + 400 + 720 + 120 + 16 = 2288,
 * x 2 = 4576. */
START_TEST(vit_by_hand)
{
  const aal_tfmem_config c = tiny(AAL_TFMEM_VIT);
  ck_assert_int_eq(aal_tfmem_tokens(&c), 5);
  ck_assert_uint_eq(total(&c, BP), 4576);
}
END_TEST

/* Tiny Mixer, per sample: N = 4 patches, D = 4, token MLP T = 2, F = 16, C = 2, no
 * dropout: image 192; pre_norm 4ND + 8N; token fc0 input (the transposed copy) 4ND; GELU
 * 4DT; token fc1 input 4DT; post_norm 4ND + 8N; channel fc0 4ND; GELU 4NF; fc1 4NF;
 * pre-head norm 4ND + 8N; head input (the token mean) 4D; log_softmax's input and output
 * 8C.  BP = 192 + 20ND + 24N + 8DT + 8NF + 4D + 8C = 192 + 320 + 96 + 64 + 512 + 16 + 16
 * = 1216, x 2 = 2432.  ASA4 replaces token fc0 (32 elements: 4 bytes), token fc1 (16: 4),
 * channel fc0 (32: 4), fc1 (128: 16): 2432 - 128 - 64 - 128 - 512 + 28. */
START_TEST(mixer_by_hand)
{
  const aal_tfmem_config c = tiny(AAL_TFMEM_MIXER);
  ck_assert_uint_eq(total(&c, BP), 2432);
  ck_assert_uint_eq(total(&c, (aal_tfmem_policy){4, 0}), 2432 - 128 - 64 - 128 - 512 + 28);
}
END_TEST

/* Tiny Transformer, per sentence pair: N = 3 (source = target), D = 4, H = 2, F = 16,
 * V = 10, 1 encoder and 1 decoder layer.  An attention sublayer of T queries on S keys
 * keeps: LN input 4TD + 8T, q input 4TD (k and v: the same tensor, or the encoder
 * output), Q 4TD, K 4SD, the bool mask it builds (S, or T*T in the decoder's
 * self-attention), softmax input and output 8HTS, dropout mask HTS and output 4HTS, V 4SD, out
 * input 4TD, dropout mask TD; the feed-forward sublayer: LN 4ND + 8N, linear1 4ND, GELU
 * 4NF, mask NF, linear2 4NF, mask ND.  With S = T = N = 3:
 *   encoder self-attention 25ND + 8N + 13HN^2 + N = 300 + 24 + 234 + 3 = 561;
 *   decoder self-attention: its mask N^2: 567;
 *   cross-attention: + the encoder output 4ND (one tensor): 609;
 *   feed-forward 9ND + 8N + 9NF = 108 + 24 + 432 = 564;
 *   embeddings: ids 8N and dropout masks ND, each twice: 72; encoder norm 4ND + 8N = 72;
 *   decoder norm 72; generator input 4ND = 48; log_softmax's input (the generator's
 *   output) and output 8NV = 240.
 * BP = 72 + 561 + 564 + 72 + 567 + 609 + 564 + 72 + 48 + 240 = 3369, x 2 = 6738. */
START_TEST(transformer_by_hand)
{
  const aal_tfmem_config c = tiny(AAL_TFMEM_TRANSFORMER);
  ck_assert_uint_eq(total(&c, BP), 6738);
}
END_TEST

/* Each entry's bytes under each policy follow its kind, and the counted bytes are the
 * entry's own except for a shared tensor's later holders. */
START_TEST(entry_formulas)
{
  for (int k = 0; k < 8; k++) {
    aal_tfmem_config c = tiny((aal_tfmem_model)(k % 4));
    c.depth = 2;
    c.softmax_input = k < 4;
    aal_tfmem_plan plan;
    aal_error err;
    ck_assert_int_eq(aal_tfmem_plan_make(&c, &plan, &err), AAL_OK);
    size_t *bytes = malloc(plan.count * sizeof *bytes);
    ck_assert_ptr_nonnull(bytes);
    for (int mesa = 0; mesa < 2; mesa++)
      for (int asa = 0; asa <= 4; asa++) {
        const aal_tfmem_policy p = {asa, mesa};
        size_t t, sum = 0;
        ck_assert_int_eq(aal_tfmem_counted(&plan, p, bytes, &t, &err), AAL_OK);
        for (size_t i = 0; i < plan.count; i++) {
          const aal_tfmem_entry *e = &plan.entries[i];
          size_t want;
          if (e->mesa_only && !mesa)
            want = 0;
          else if (e->asa > 0 && asa >= e->asa)
            want = 4 * ((e->elements + 31) / 32);
          else if (mesa && e->mesa)
            want = e->mesa_elements;
          else
            want = e->kind == AAL_TFMEM_MASK    ? e->elements
                   : e->kind == AAL_TFMEM_INDEX ? 8 * e->elements
                                                : 4 * e->elements;
          ck_assert_uint_eq(aal_tfmem_entry_bytes(e, p), want);
          ck_assert(bytes[i] == want || (bytes[i] == 0 && aal_tfmem_entry_shared(e, p)));
          sum += bytes[i];
        }
        ck_assert_uint_eq(sum, t);
      }
    free(bytes);
    aal_tfmem_plan_free(&plan);
  }
}
END_TEST

/* Entries of one id: the tensor counts once (at its first holder) while it is shared;
 * every ASA or Mesa holder pays for its own copy. */
START_TEST(ids_counted_once)
{
  aal_tfmem_config c = tiny(AAL_TFMEM_TRANSFORMER);
  c.depth = 3;
  aal_tfmem_plan plan;
  aal_error err;
  ck_assert_int_eq(aal_tfmem_plan_make(&c, &plan, &err), AAL_OK);
  size_t *bytes = malloc(plan.count * sizeof *bytes), t;
  ck_assert_ptr_nonnull(bytes);
  /* the encoder output: the k and v inputs of every decoder cross-attention */
  long memory = -1;
  int holders = 0;
  for (size_t i = 0; i < plan.count; i++)
    if (strstr(plan.entries[i].layer, ".cross.k") != NULL ||
        strstr(plan.entries[i].layer, ".cross.v") != NULL) {
      if (memory < 0)
        memory = plan.entries[i].id;
      ck_assert_int_eq(plan.entries[i].id, memory);
      holders++;
    }
  ck_assert_int_eq(holders, 2 * c.depth);
  /* each group's entries are consecutive (the table sums them in one pass) */
  for (size_t i = 1; i < plan.count; i++)
    if (strcmp(plan.entries[i].group, plan.entries[i - 1].group) != 0)
      for (size_t j = i + 1; j < plan.count; j++)
        ck_assert_str_ne(plan.entries[j].group, plan.entries[i - 1].group);
  const aal_tfmem_policy pols[] = {{0, 0}, {4, 0}, {0, 1}, {3, 1}};
  for (int k = 0; k < 4; k++) {
    ck_assert_int_eq(aal_tfmem_counted(&plan, pols[k], bytes, &t, &err), AAL_OK);
    size_t paid = 0, payers = 0;
    for (size_t i = 0; i < plan.count; i++)
      if (plan.entries[i].id == memory && bytes[i] > 0) {
        paid += bytes[i];
        payers++;
      }
    const size_t n = (size_t)c.seq * (size_t)c.width * (size_t)c.batch;
    if (pols[k].asa == 4) /* each holder its sign: n bits in int32 words */
      ck_assert_uint_eq(paid, 2 * (size_t)c.depth * 4 * ((n + 31) / 32));
    else if (pols[k].mesa) /* each holder its 8-bit code */
      ck_assert_uint_eq(paid, 2 * (size_t)c.depth * n);
    else /* one float32 tensor */
      ck_assert_uint_eq(payers, 1);
    if (!pols[k].mesa && pols[k].asa < 4)
      ck_assert_uint_eq(paid, 4 * n);
  }
  free(bytes);
  aal_tfmem_plan_free(&plan);
}
END_TEST

/* PyTorch 1.11 and later: the softmax keeps its output only (Mesa's softmax still codes
 * both), the log-softmaxes too.  Per sample: ViT 2288 - 4HN^2 (200) - 4C (8) = 2080;
 * Mixer 1216 - 4C = 1208; BERT 1542 - 4HN^2 (72) = 1470; the Transformer 3369 less three
 * attentions' 4HN^2 (216) and the generator's output 4NV (120) = 3033.  Mesa unchanged. */
START_TEST(autograd_111)
{
  const int want[4] = {2 * (2288 - 208), 2 * 1208, 2 * 1470, 2 * 3033};
  for (int m = 0; m < 4; m++) {
    aal_tfmem_config c = tiny((aal_tfmem_model)m);
    c.softmax_input = 0;
    ck_assert_uint_eq(total(&c, BP), (size_t)want[m]);
  }
  aal_tfmem_config c = tiny(AAL_TFMEM_BERT);
  c.softmax_input = 0;
  ck_assert_uint_eq(total(&c, MESA), 1688);
  int si = -1;
  aal_error err;
  ck_assert_int_eq(aal_tfmem_autograd_parse("1.11", &si, &err), AAL_OK);
  ck_assert_int_eq(si, 0);
  ck_assert_int_eq(aal_tfmem_autograd_parse("1.8", &si, &err), AAL_OK);
  ck_assert_int_eq(si, 1);
  ck_assert_int_eq(aal_tfmem_autograd_parse("2.0", &si, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "--autograd"));
}
END_TEST

START_TEST(bert_large_params)
{
  aal_tfmem_config c;
  aal_tfmem_config_default(&c, AAL_TFMEM_BERT);
  ck_assert_uint_eq(aal_tfmem_params(&c), 335141888u + 1024u * 2u + 2u);
}
END_TEST

static void refused(aal_tfmem_config c, const char *option)
{
  aal_error err;
  aal_error_clear(&err);
  aal_tfmem_plan plan;
  ck_assert_int_eq(aal_tfmem_config_check(&c, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, option) != NULL, "'%s' does not name %s", err.msg, option);
  ck_assert_int_eq(aal_tfmem_plan_make(&c, &plan, &err), AAL_EINVAL);
  ck_assert_ptr_null(plan.entries);
}

START_TEST(bad_options)
{
  aal_tfmem_config c = tiny(AAL_TFMEM_BERT);
  c.depth = 0;
  refused(c, "--depth");
  c = tiny(AAL_TFMEM_BERT);
  c.heads = 3;  /* does not divide 4 */
  refused(c, "--heads");
  c = tiny(AAL_TFMEM_BERT);
  c.seq = 513;  /* beyond BERT's 512 positions */
  refused(c, "--seq");
  c = tiny(AAL_TFMEM_VIT);
  c.image = 5;  /* not a multiple of the patch */
  refused(c, "--image");
  c = tiny(AAL_TFMEM_VIT);
  c.patch = 0;
  refused(c, "--patch");
  c = tiny(AAL_TFMEM_MIXER);
  c.token_mlp = 0;
  refused(c, "--token-mlp");
  c = tiny(AAL_TFMEM_TRANSFORMER);
  c.vocab = 0;
  refused(c, "--vocab");
  c = tiny(AAL_TFMEM_TRANSFORMER);
  c.batch = 0;
  refused(c, "--batch");
  c = tiny(AAL_TFMEM_VIT);
  c.mlp_ratio = 0;
  refused(c, "--mlp-ratio");
  c = tiny(AAL_TFMEM_VIT);
  c.width = 0;
  refused(c, "--width");
  c = tiny(AAL_TFMEM_VIT);
  c.classes = 0;
  refused(c, "--classes");
  aal_error err;
  int asa, mesa;
  aal_tfmem_model m;
  ck_assert_int_eq(aal_tfmem_rule_parse("asa5", &asa, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "--rule"));
  ck_assert_int_eq(aal_tfmem_storage_parse("actnn", &mesa, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "--policy"));
  ck_assert_int_eq(aal_tfmem_model_parse("vit", &m, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "--model"));
  ck_assert_int_eq(aal_tfmem_rule_parse("asa3", &asa, &err), AAL_OK);
  ck_assert_int_eq(asa, 3);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("tfmem");
  TCase *tc = tcase_create("plan");
  tcase_add_test(tc, bert_by_hand);
  tcase_add_test(tc, vit_by_hand);
  tcase_add_test(tc, mixer_by_hand);
  tcase_add_test(tc, transformer_by_hand);
  tcase_add_test(tc, entry_formulas);
  tcase_add_test(tc, ids_counted_once);
  tcase_add_test(tc, autograd_111);
  tcase_add_test(tc, bert_large_params);
  tcase_add_test(tc, bad_options);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
