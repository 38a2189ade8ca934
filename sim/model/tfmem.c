/* The dry run of what autograd keeps in the authors' Transformer-like models, and the
 * policies of Table 3 (sim/model/tfmem.h).  File and line references are to the authors'
 * repository, WooSunghyeon/Auxiliary_Activation_Learning at d8a5a32, experiments/...
 *
 * What each op keeps is PyTorch 1.8's, the authors' version (aal.yaml: pytorch=1.8.0),
 * from its tools/autograd/derivatives.yaml (read at SsnL/pytorch 4ed7f36, version.txt
 * 1.8.0a0): native_layer_norm keeps input, mean and rstd; gelu its input; _softmax and
 * _log_softmax pass `self` to their backward, so they keep their input as well as their
 * output (later versions pass its dtype only); mean.dim keeps sizes only (1.13 keeps the
 * input); bmm both operands; _fused_dropout its byte mask, and dropout with p = 0 is the
 * identity (aten/src/ATen/native/Dropout.cpp); tanh its output; embedding its indices;
 * masked_fill_ its mask.  softmax_input 0 (aal memory --autograd 1.11) keeps what 1.11
 * and later keep instead: the softmaxes' output only.
 * experiments/memory_torch_tf.py measures the same models in
 * PyTorch and tests/experiments/memory_torch_tf.sh holds this plan to it.
 *
 * Glossary: B batch, N tokens per sample (S source, T target for the transformer),
 * D width, H heads, F = mlp_ratio * D, V vocabulary, C classes.  Element counts below
 * are per sample unless said otherwise. */
#include "sim/model/tfmem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const model_names[] = {"vit-large", "mixer-large", "bert-large",
                                          "transformer"};

int aal_tfmem_model_parse(const char *text, aal_tfmem_model *model, aal_error *err)
{
  for (int i = 0; text != NULL && i < 4; i++)
    if (strcmp(text, model_names[i]) == 0) {
      *model = (aal_tfmem_model)i;
      return AAL_OK;
    }
  return aal_fail(err, AAL_EINVAL,
                  "--model '%s': expected vit-large, mixer-large, bert-large or transformer",
                  text ? text : "(null)");
}

const char *aal_tfmem_model_name(aal_tfmem_model model)
{
  return (unsigned)model < 4 ? model_names[model] : "?";
}

void aal_tfmem_config_default(aal_tfmem_config *cfg, aal_tfmem_model model)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->model = model;
  cfg->mlp_ratio = 4;
  switch (model) {
  case AAL_TFMEM_VIT:
    /* ViT-L_32 (ViT_L/README.md's command; models/configs.py get_l16_config: 1024, 4096,
     * 16 heads, 24 layers; L_32: patch 32), train.py: --img_size 224, batch 512,
     * CIFAR-100 */
    *cfg = (aal_tfmem_config){model, 24, 1024, 16, 4, 0, 0, 224, 32, 512, 0, 100, 1};
    break;
  case AAL_TFMEM_MIXER:
    /* Mixer-L_16 (models/configs.py get_mixer_l16_config: 1024, 24 blocks, tokens MLP
     * 512, channels MLP 4096), train.py: img_size 224, patch 16; README: batch 256 */
    *cfg = (aal_tfmem_config){model, 24, 1024, 0, 4, 512, 0, 224, 16, 256, 0, 100, 1};
    break;
  case AAL_TFMEM_BERT:
    /* config/bert_large.json; config/train_mrpc.json: batch 32; README and classify.py
     * main(): max_len 128; MRPC: 2 labels */
    *cfg = (aal_tfmem_config){model, 24, 1024, 16, 4, 0, 128, 0, 0, 32, 30522, 2, 1};
    break;
  case AAL_TFMEM_TRANSFORMER:
    /* utils/constants.py BASELINE_*: 6 layers, 512, 8 heads, dropout 0.1; FFN 4x
     * (transformer_model.py:32); a batch of 4096 tokens (README) as 40 pairs of 100 tokens,
     * the longest data_utils.py:134 admits (MAX_LEN 100); the vocabulary is the data's
     * (IWSLT'16, words seen twice: data_utils.py:176) and in no script:
     * experiments/memory-tables.sh fits it on the paper's BP figure, 24478 */
    *cfg = (aal_tfmem_config){model, 6, 512, 8, 4, 0, 100, 0, 0, 40, 24478, 0, 1};
    break;
  }
}

int aal_tfmem_tokens(const aal_tfmem_config *c)
{
  switch (c->model) {
  case AAL_TFMEM_VIT:
    return (c->image / c->patch) * (c->image / c->patch) + 1;  /* + the class token */
  case AAL_TFMEM_MIXER:
    return (c->image / c->patch) * (c->image / c->patch);
  case AAL_TFMEM_BERT:
  case AAL_TFMEM_TRANSFORMER:
    break;
  }
  return c->seq;
}

int aal_tfmem_autograd_parse(const char *text, int *softmax_input, aal_error *err)
{
  if (text != NULL && (strcmp(text, "1.8") == 0 || strcmp(text, "1.11") == 0)) {
    *softmax_input = strcmp(text, "1.8") == 0;
    return AAL_OK;
  }
  return aal_fail(err, AAL_EINVAL, "--autograd '%s': expected 1.8 or 1.11",
                  text ? text : "(null)");
}

static int in_range(int v, int lo, int hi)
{
  return v >= lo && v <= hi;
}

int aal_tfmem_config_check(const aal_tfmem_config *c, aal_error *err)
{
  const int vision = c->model == AAL_TFMEM_VIT || c->model == AAL_TFMEM_MIXER;
  if (!in_range(c->depth, 1, 1024))
    return aal_fail(err, AAL_EINVAL, "--depth %d must be in 1..1024", c->depth);
  if (!in_range(c->width, 1, 65536))
    return aal_fail(err, AAL_EINVAL, "--width %d must be in 1..65536", c->width);
  if (!in_range(c->mlp_ratio, 1, 64))
    return aal_fail(err, AAL_EINVAL, "--mlp-ratio %d must be in 1..64", c->mlp_ratio);
  if (c->softmax_input != 0 && c->softmax_input != 1)
    return aal_fail(err, AAL_EINVAL, "--autograd: softmax_input %d is not 0 or 1",
                    c->softmax_input);
  if (!in_range(c->batch, 1, 1 << 20))
    return aal_fail(err, AAL_EINVAL, "--batch %d must be in 1..%d", c->batch, 1 << 20);
  if (c->model != AAL_TFMEM_MIXER) {
    if (!in_range(c->heads, 1, c->width))
      return aal_fail(err, AAL_EINVAL, "--heads %d must be in 1..%d (the width)", c->heads,
                      c->width);
    if (c->width % c->heads != 0)
      return aal_fail(err, AAL_EINVAL, "--heads %d must divide --width %d", c->heads,
                      c->width);
  } else if (!in_range(c->token_mlp, 1, 1 << 20)) {
    return aal_fail(err, AAL_EINVAL, "--token-mlp %d must be in 1..%d", c->token_mlp, 1 << 20);
  }
  if (vision) {
    if (!in_range(c->patch, 1, 1024))
      return aal_fail(err, AAL_EINVAL, "--patch %d must be in 1..1024", c->patch);
    if (!in_range(c->image, c->patch, 16384) || c->image % c->patch != 0)
      return aal_fail(err, AAL_EINVAL,
                      "--image %d must be a multiple of --patch %d, at most 16384", c->image,
                      c->patch);
  } else {
    /* BERT's position table has max_len 512 rows (config/bert_large.json) */
    const int most = c->model == AAL_TFMEM_BERT ? 512 : 65536;
    if (!in_range(c->seq, 1, most))
      return aal_fail(err, AAL_EINVAL, "--seq %d must be in 1..%d", c->seq, most);
    if (!in_range(c->vocab, 1, 1 << 24))
      return aal_fail(err, AAL_EINVAL, "--vocab %d must be in 1..%d", c->vocab, 1 << 24);
  }
  if (c->model != AAL_TFMEM_TRANSFORMER && !in_range(c->classes, 1, 1 << 24))
    return aal_fail(err, AAL_EINVAL, "--classes %d must be in 1..%d", c->classes, 1 << 24);
  /* the largest tensor: B * H * N * N attention probabilities, or B * N * F; keep every
   * element count (and 8 bytes of it) well inside size_t */
  const double n = aal_tfmem_tokens(c), big = (double)c->batch * n *
      (n * (c->heads > 0 ? c->heads : 1) + (double)c->width * (c->mlp_ratio + 4) +
       (double)c->vocab + (double)c->token_mlp);
  if (big * c->depth * 16.0 > (double)SIZE_MAX / 4)
    return aal_fail(err, AAL_EINVAL, "--batch %d: the model's activations overflow a count",
                    c->batch);
  return AAL_OK;
}

size_t aal_tfmem_params(const aal_tfmem_config *c)
{
  const size_t d = (size_t)c->width, f = d * (size_t)c->mlp_ratio, n = (size_t)aal_tfmem_tokens(c);
  const size_t linear_dd = d * d + d, ln = 2 * d;
  const size_t attn = 4 * linear_dd, ffn = d * f + f + f * d + d;
  const size_t p2 = (size_t)c->patch * (size_t)c->patch;
  size_t total = 0;
  switch (c->model) {
  case AAL_TFMEM_VIT: /* patch conv, class token, positions, blocks, encoder norm, head */
    total = 3 * p2 * d + d + d + n * d + (size_t)c->depth * (2 * ln + attn + ffn) + ln +
            d * (size_t)c->classes + (size_t)c->classes;
    break;
  case AAL_TFMEM_MIXER: { /* stem, blocks (two norms, token MLP, channel MLP), norm, head */
    const size_t t = (size_t)c->token_mlp;
    total = 3 * p2 * d + d +
            (size_t)c->depth * (2 * ln + (n * t + t + t * n + n) + ffn) + ln +
            d * (size_t)c->classes + (size_t)c->classes;
    break;
  }
  case AAL_TFMEM_BERT: /* words, 512 positions, 2 segments, norm; blocks; pooler, classifier */
    total = ((size_t)c->vocab + 512 + 2) * d + ln +
            (size_t)c->depth * (attn + ffn + 2 * ln) + linear_dd + d * (size_t)c->classes +
            (size_t)c->classes;
    break;
  case AAL_TFMEM_TRANSFORMER: /* two embeddings, encoder, decoder, two norms, generator */
    total = 2 * (size_t)c->vocab * d +
            (size_t)c->depth * (2 * ln + attn + ffn) +
            (size_t)c->depth * (3 * ln + 2 * attn + ffn) + 2 * ln +
            d * (size_t)c->vocab + (size_t)c->vocab;
    break;
  }
  return total;
}

int aal_tfmem_rule_parse(const char *text, int *asa, aal_error *err)
{
  static const char *const names[] = {"bp", "asa1", "asa2", "asa3", "asa4"};
  for (int i = 0; text != NULL && i < 5; i++)
    if (strcmp(text, names[i]) == 0) {
      *asa = i;
      return AAL_OK;
    }
  return aal_fail(err, AAL_EINVAL, "--rule '%s': expected bp, asa1, asa2, asa3 or asa4",
                  text ? text : "(null)");
}

int aal_tfmem_storage_parse(const char *text, int *mesa, aal_error *err)
{
  if (text != NULL && (strcmp(text, "none") == 0 || strcmp(text, "mesa") == 0)) {
    *mesa = strcmp(text, "mesa") == 0;
    return AAL_OK;
  }
  return aal_fail(err, AAL_EINVAL, "--policy '%s': expected none or mesa",
                  text ? text : "(null)");
}

void aal_tfmem_policy_format(aal_tfmem_policy p, char *buf, size_t n)
{
  if (p.asa == 0)
    snprintf(buf, n, "%s", p.mesa ? "mesa" : "bp");
  else
    snprintf(buf, n, "%sasa%d", p.mesa ? "mesa+" : "", p.asa);
}

void aal_tfmem_plan_free(aal_tfmem_plan *plan)
{
  free(plan->entries);
  memset(plan, 0, sizeof *plan);
}

/* ------------------------------------------------------------------ the dry run */

/* A tensor being laid out: its id and its elements per sample. */
typedef struct {
  long id;
  size_t n;
} tens;

typedef struct {
  aal_tfmem_plan *plan;
  const aal_tfmem_config *cfg;
  size_t batch;
  char group[24]; /* "block%d" for any int b */
  aal_error *err;
  int rc;  /* the first failure; the walk goes on without recording */
} walk;

static tens fresh(walk *w, size_t n)
{
  return (tens){w->plan->ids++, n};
}

/* Records that `layer` keeps t (its own elements; mesa_n: what Mesa quantizes). */
static void keep_as(walk *w, const char *layer, const char *slot, aal_tfmem_kind kind, tens t,
                    size_t mesa_n, int asa, int mesa, int mesa_only)
{
  aal_tfmem_plan *p = w->plan;
  if (w->rc != AAL_OK)
    return;
  if (p->count == p->capacity) {
    const size_t cap = p->capacity ? 2 * p->capacity : 256;
    aal_tfmem_entry *e = realloc(p->entries, cap * sizeof *e);
    if (e == NULL) {
      w->rc = aal_fail(w->err, AAL_ENOMEM, "memory plan: cannot grow to %zu entries", cap);
      return;
    }
    p->entries = e;
    p->capacity = cap;
  }
  aal_tfmem_entry *e = &p->entries[p->count++];
  memset(e, 0, sizeof *e);
  snprintf(e->layer, sizeof e->layer, "%s.%s", w->group, layer);
  snprintf(e->slot, sizeof e->slot, "%s", slot);
  snprintf(e->group, sizeof e->group, "%s", w->group);
  e->kind = kind;
  e->elements = t.n * w->batch;
  e->mesa_elements = mesa_n * w->batch;
  e->id = t.id;
  e->asa = asa;
  e->mesa = mesa;
  e->mesa_only = mesa_only;
}

static void keep(walk *w, const char *layer, const char *slot, aal_tfmem_kind kind, tens t,
                 int asa, int mesa)
{
  keep_as(w, layer, slot, kind, t, t.n, asa, mesa, 0);
}

/* nn.LayerNorm (native_layer_norm keeps its input, mean and rstd per token; Mesa's
 * custom_layer_norm.py quantizes the input and keeps mean and rstd) over `tokens` rows. */
static tens layernorm(walk *w, const char *name, tens x, size_t tokens)
{
  keep(w, name, "x", AAL_TFMEM_VALUES, x, 0, 1);
  keep(w, name, "mean", AAL_TFMEM_STATS, fresh(w, tokens), 0, 0);
  keep(w, name, "rstd", AAL_TFMEM_STATS, fresh(w, tokens), 0, 0);
  return fresh(w, x.n);
}

/* BERT's LayerNorm (BERT_L/models.py:44-56): u = mean(x); s = mean((x-u)^2);
 * y = gamma * (x-u)/sqrt(s+eps) + beta, in elementary ops, so autograd keeps the two
 * x-u (pow's and the division's: computed twice), sqrt(s+eps) per token and the
 * normalised x (the product with gamma).  Not an nn.LayerNorm: Mesa leaves it float. */
static tens layernorm_tf(walk *w, const char *name, tens x, size_t tokens)
{
  keep(w, name, "centred_pow", AAL_TFMEM_VALUES, fresh(w, x.n), 0, 0);
  keep(w, name, "centred_div", AAL_TFMEM_VALUES, fresh(w, x.n), 0, 0);
  keep(w, name, "std", AAL_TFMEM_STATS, fresh(w, tokens), 0, 0);
  keep(w, name, "xhat", AAL_TFMEM_VALUES, fresh(w, x.n), 0, 0);
  return fresh(w, x.n);
}

/* A linear layer keeps its input (F.linear; Mesa: custom_fc.py; ASA: a sign instead). */
static tens linear(walk *w, const char *name, tens x, size_t out, int asa)
{
  keep(w, name, "x", AAL_TFMEM_VALUES, x, asa, 1);
  return fresh(w, out);
}

/* Dropout with p > 0 in training keeps its bool mask (native_dropout). */
static tens dropout(walk *w, const char *name, tens x)
{
  keep(w, name, "mask", AAL_TFMEM_MASK, fresh(w, x.n), 0, 0);
  return fresh(w, x.n);
}

/* GELU keeps its input (nn.GELU; Mesa: custom_gelu.py quantizes it). */
static tens gelu(walk *w, const char *name, tens x)
{
  keep(w, name, "x", AAL_TFMEM_VALUES, x, 0, 1);
  return fresh(w, x.n);
}

typedef struct {
  int attn_dropout;  /* dropout on the probabilities (p > 0) */
  int mesa_pv;       /* the probabilities-by-values product is Mesa's MatMul */
  int mask;          /* masked_fill_ keeps a bool mask of mask_n elements */
  size_t mask_n;
} attn_opts;

/* Scaled dot-product attention of T queries over S keys from the projections q (T*D),
 * k and v (S*D): torch.matmul of the head views copies them contiguous, and bmm keeps
 * the copies (Q, K^T for the scores; the probabilities and V for the context); Mesa's
 * MatMul (custom_matmul.py) keeps 8-bit codes of both operands instead.  The softmax
 * keeps its input and its output (PyTorch 1.8; Mesa's custom_softmax.py: 8 bits each). */
static tens attention(walk *w, const char *name, size_t t_q, size_t s_k, const attn_opts *o)
{
  const aal_tfmem_config *c = w->cfg;
  const size_t d = (size_t)c->width, probs = (size_t)c->heads * t_q * s_k;
  char layer[40];
  snprintf(layer, sizeof layer, "%s.qk", name);
  keep(w, layer, "q", AAL_TFMEM_VALUES, fresh(w, t_q * d), 0, 1);
  keep(w, layer, "k", AAL_TFMEM_VALUES, fresh(w, s_k * d), 0, 1);
  if (o->mask) {
    snprintf(layer, sizeof layer, "%s.mask", name);
    keep(w, layer, "mask", AAL_TFMEM_MASK, fresh(w, o->mask_n), 0, 0);
  }
  snprintf(layer, sizeof layer, "%s.softmax", name);
  keep_as(w, layer, "x", AAL_TFMEM_VALUES, fresh(w, probs), probs, 0, 1, !c->softmax_input);
  tens p = fresh(w, probs);
  keep(w, layer, "y", AAL_TFMEM_VALUES, p, 0, 1);
  if (o->attn_dropout) {
    snprintf(layer, sizeof layer, "%s.drop", name);
    p = dropout(w, layer, p);
  }
  snprintf(layer, sizeof layer, "%s.pv", name);
  keep(w, layer, "p", AAL_TFMEM_VALUES, p, 0, o->mesa_pv);
  keep(w, layer, "v", AAL_TFMEM_VALUES, fresh(w, s_k * d), 0, o->mesa_pv);
  /* the context, heads merged: a contiguous copy (T*D), the output projection's input */
  return fresh(w, t_q * d);
}

/* The cross-entropy inside the model's forward (ViT and Mixer: train.py reads the memory
 * around model(x, y)): log_softmax keeps the logits and the log-probabilities (C each);
 * nll_loss's int64 target (an input of the step) and its scalar weight are left out. */
static void loss(walk *w)
{
  const size_t c = (size_t)w->cfg->classes;
  if (w->cfg->softmax_input)
    keep(w, "loss", "logits", AAL_TFMEM_VALUES, fresh(w, c), 0, 0);
  keep(w, "loss", "logp", AAL_TFMEM_VALUES, fresh(w, c), 0, 0);
}

/* ViT_L/models/modeling.py: Embeddings (203-247), Block (250-269, pre-LN), Attention
 * (104-166; ASA: asa3 the output projection, asa4 also query, key, value: 111-128), Mlp
 * (169-200; asa1 fc2, asa2..asa4 fc1 and fc2: 172-180), the head on the class token
 * (354-359).  Dropout: configs.py dropout_rate 0.1, attention_dropout_rate 0.0 (so the
 * attention and projection dropouts keep nothing). */
static void vit(walk *w)
{
  const aal_tfmem_config *c = w->cfg;
  const size_t n = (size_t)aal_tfmem_tokens(c), d = (size_t)c->width;
  const size_t f = d * (size_t)c->mlp_ratio, img = 3 * (size_t)c->image * (size_t)c->image;
  const attn_opts ao = {0, 1, 0, 0};
  snprintf(w->group, sizeof w->group, "embed");
  (void)linear(w, "patch", fresh(w, img), 0, 0);  /* the conv keeps the image */
  tens x = dropout(w, "drop", fresh(w, n * d));
  for (int b = 0; b < c->depth; b++) {
    snprintf(w->group, sizeof w->group, "block%d", b);
    tens h = layernorm(w, "attention_norm", x, n);
    keep(w, "attn.query", "x", AAL_TFMEM_VALUES, h, 4, 1);
    keep(w, "attn.key", "x", AAL_TFMEM_VALUES, h, 4, 1);
    keep(w, "attn.value", "x", AAL_TFMEM_VALUES, h, 4, 1);
    tens ctx = attention(w, "attn", n, n, &ao);
    (void)linear(w, "attn.out", ctx, n * d, 3);
    x = fresh(w, n * d);  /* the residual sum */
    h = layernorm(w, "ffn_norm", x, n);
    h = linear(w, "ffn.fc1", h, n * f, 2);
    h = gelu(w, "ffn.act", h);
    h = dropout(w, "ffn.drop1", h);
    (void)linear(w, "ffn.fc2", h, n * d, 1);
    (void)dropout(w, "ffn.drop2", fresh(w, n * d));
    x = fresh(w, n * d);
  }
  snprintf(w->group, sizeof w->group, "head");
  x = layernorm(w, "encoder_norm", x, n);
  /* x[:, 0] is a view: the head's saved input keeps the whole normed tensor; Mesa's
   * Linear quantizes the B x D view only */
  keep_as(w, "head", "x", AAL_TFMEM_VALUES, x, d, 0, 1, 0);
  loss(w);
}

/* MLP-Mixer_L/models/modeling.py: MlpBlock (30-49), MixerBlock (52-82; asa1 the channel
 * MLP's fc1, asa2 both channel fcs, asa3 also the token MLP's fc1, asa4 all four: 55-64),
 * MlpMixer (111-149: stem conv, pre-head LayerNorm, mean over tokens, head).  No dropout. */
static void mixer(walk *w)
{
  const aal_tfmem_config *c = w->cfg;
  const size_t n = (size_t)aal_tfmem_tokens(c), d = (size_t)c->width;
  const size_t f = d * (size_t)c->mlp_ratio, t = (size_t)c->token_mlp;
  const size_t img = 3 * (size_t)c->image * (size_t)c->image;
  snprintf(w->group, sizeof w->group, "embed");
  (void)linear(w, "stem", fresh(w, img), 0, 0);
  tens x = fresh(w, n * d);
  for (int b = 0; b < c->depth; b++) {
    snprintf(w->group, sizeof w->group, "block%d", b);
    (void)layernorm(w, "pre_norm", x, n);
    /* the token MLP runs on the transposed (D x N) view: F.linear copies it contiguous
     * and keeps the copy */
    tens h = linear(w, "token_mlp.fc0", fresh(w, d * n), d * t, 4);
    h = gelu(w, "token_mlp.act", h);
    (void)linear(w, "token_mlp.fc1", h, d * n, 3);
    x = fresh(w, n * d);
    h = layernorm(w, "post_norm", x, n);
    h = linear(w, "channel_mlp.fc0", h, n * f, 2);
    h = gelu(w, "channel_mlp.act", h);
    (void)linear(w, "channel_mlp.fc1", h, n * d, 1);
    x = fresh(w, n * d);
  }
  snprintf(w->group, sizeof w->group, "head");
  (void)layernorm(w, "pre_head_ln", x, n);
  (void)linear(w, "head", fresh(w, d), (size_t)c->classes, 0);  /* on the token mean */
  loss(w);
}

/* BERT_L/models.py: Embeddings (59-76), MultiHeadedSelfAttention (79-127; asa4 query, key,
 * value: 83-90), SelfAttention (129-153: Mesa's MatMul for both products when mesa,
 * dropout p_drop_attn on the probabilities), PositionWiseFeedForward (156-176: asa1 fc2,
 * asa2..asa4 fc1 and fc2), Block (179-198: proj ASA under asa3 and asa4; post-LN);
 * classify.py:180-191 the pooler (tanh) and classifier on h[:, 0]; the loss is taken
 * after the memory is read (classify.py:245-248).  The attention keeps `self.scores`
 * (models.py:125) on the module; the authors' trainer runs nn.DataParallel
 * (train.py:47-48), whose per-step replicas drop it, so it is not counted. */
static void bert(walk *w)
{
  const aal_tfmem_config *c = w->cfg;
  const size_t n = (size_t)c->seq, d = (size_t)c->width, f = d * (size_t)c->mlp_ratio;
  const attn_opts ao = {1, 1, 0, 0};
  snprintf(w->group, sizeof w->group, "embed");
  keep(w, "tok_embed", "ids", AAL_TFMEM_INDEX, fresh(w, n), 0, 0);
  keep(w, "seg_embed", "ids", AAL_TFMEM_INDEX, fresh(w, n), 0, 0);
  /* (pos_embed's ids: one arange of N int64 for the whole batch, left out) */
  tens x = layernorm_tf(w, "norm", fresh(w, n * d), n);
  x = dropout(w, "drop", x);
  for (int b = 0; b < c->depth; b++) {
    snprintf(w->group, sizeof w->group, "block%d", b);
    keep(w, "attn.proj_q", "x", AAL_TFMEM_VALUES, x, 4, 1);
    keep(w, "attn.proj_k", "x", AAL_TFMEM_VALUES, x, 4, 1);
    keep(w, "attn.proj_v", "x", AAL_TFMEM_VALUES, x, 4, 1);
    tens h = attention(w, "attn", n, n, &ao);
    h = linear(w, "proj", h, n * d, 3);
    (void)dropout(w, "drop1", h);
    h = layernorm_tf(w, "norm1", fresh(w, n * d), n);
    tens g = linear(w, "pwff.fc1", h, n * f, 2);
    g = gelu(w, "pwff.gelu", g);
    (void)linear(w, "pwff.fc2", g, n * d, 1);
    (void)dropout(w, "drop2", fresh(w, n * d));
    x = layernorm_tf(w, "norm2", fresh(w, n * d), n);
  }
  snprintf(w->group, sizeof w->group, "head");
  /* h[:, 0] is a view: fc keeps the whole last block output; Mesa quantizes B x D */
  keep_as(w, "fc", "x", AAL_TFMEM_VALUES, x, d, 0, 1, 0);
  keep(w, "activ", "y", AAL_TFMEM_VALUES, fresh(w, d), 0, 0);  /* tanh keeps its output */
  tens p = dropout(w, "drop", fresh(w, d));
  (void)linear(w, "classifier", p, (size_t)c->classes, 0);
}

/* One pre-LN sublayer of Transformer/transformer_model.py (SublayerLogic 227-236:
 * x + dropout(sublayer(norm(x)))) around attention: queries from norm(x) (T tokens),
 * keys and values from kv (the same tensor, or the encoder output: S tokens).  The
 * second product is a plain torch.matmul (Self_Attention 350-387: only QK^T is Mesa's);
 * masked_fill_ keeps the bool mask it builds (mask == False) of mask_n elements. */
static void tf_attention(walk *w, const char *name, tens *x, const tens *kv, size_t t,
                         size_t s, size_t mask_n)
{
  const size_t d = (size_t)w->cfg->width;
  const attn_opts ao = {1, 0, 1, mask_n};
  char layer[40];
  snprintf(layer, sizeof layer, "%s.norm", name);
  tens h = layernorm(w, layer, *x, t);
  const tens k = kv != NULL ? *kv : h;
  snprintf(layer, sizeof layer, "%s.q", name);
  keep(w, layer, "x", AAL_TFMEM_VALUES, h, 4, 1);
  snprintf(layer, sizeof layer, "%s.k", name);
  keep(w, layer, "x", AAL_TFMEM_VALUES, k, 4, 1);
  snprintf(layer, sizeof layer, "%s.v", name);
  keep(w, layer, "x", AAL_TFMEM_VALUES, k, 4, 1);
  tens ctx = attention(w, name, t, s, &ao);
  snprintf(layer, sizeof layer, "%s.out", name);
  (void)linear(w, layer, ctx, t * d, 3);
  snprintf(layer, sizeof layer, "%s.drop", name);
  (void)dropout(w, layer, fresh(w, t * d));
  *x = fresh(w, t * d);
}

/* The feed-forward sublayer (PositionwiseFeedForwardNet 257-288: asa1 linear2, asa2..asa4
 * linear1 and linear2; dropout between them). */
static void tf_ffn(walk *w, tens *x, size_t t)
{
  const size_t d = (size_t)w->cfg->width, f = d * (size_t)w->cfg->mlp_ratio;
  tens h = layernorm(w, "ffn.norm", *x, t);
  h = linear(w, "ffn.linear1", h, t * f, 2);
  h = gelu(w, "ffn.gelu", h);
  h = dropout(w, "ffn.drop", h);
  (void)linear(w, "ffn.linear2", h, t * d, 1);
  (void)dropout(w, "ffn.drop_out", fresh(w, t * d));
  *x = fresh(w, t * d);
}

/* Transformer/transformer_model.py: the base encoder-decoder (Transformer 15-87; ASA in
 * MultiHeadedAttention 304-308, asa3 the output projection, asa4 also the q, k, v
 * projections, in every attention, the decoder's too).  Source and target both seq
 * tokens; the source mask is B x 1 x 1 x S, the target's B x 1 x T x T. */
static void transformer(walk *w)
{
  const aal_tfmem_config *c = w->cfg;
  const size_t n = (size_t)c->seq, d = (size_t)c->width, v = (size_t)c->vocab;
  snprintf(w->group, sizeof w->group, "embed");
  keep(w, "src_embedding", "ids", AAL_TFMEM_INDEX, fresh(w, n), 0, 0);
  tens x = dropout(w, "src_pos.drop", fresh(w, n * d));  /* PositionalEncoding 410-441 */
  for (int b = 0; b < c->depth; b++) {
    snprintf(w->group, sizeof w->group, "enc%d", b);
    tf_attention(w, "self", &x, NULL, n, n, n);
    tf_ffn(w, &x, n);
  }
  snprintf(w->group, sizeof w->group, "enc_norm");
  (void)layernorm(w, "encoder.norm", x, n);
  const tens memory = fresh(w, n * d);  /* the encoder's output: every cross-attention's K, V */
  snprintf(w->group, sizeof w->group, "trg_embed");
  keep(w, "trg_embedding", "ids", AAL_TFMEM_INDEX, fresh(w, n), 0, 0);
  x = dropout(w, "trg_pos.drop", fresh(w, n * d));
  for (int b = 0; b < c->depth; b++) {
    snprintf(w->group, sizeof w->group, "dec%d", b);
    tf_attention(w, "self", &x, NULL, n, n, n * n);
    tf_attention(w, "cross", &x, &memory, n, n, n);
    tf_ffn(w, &x, n);
  }
  snprintf(w->group, sizeof w->group, "head");
  x = layernorm(w, "decoder.norm", x, n);
  x = linear(w, "generator.linear", x, n * v, 0);
  /* nn.LogSoftmax (not Mesa's) keeps its input and its output, the log-probabilities the
   * model returns */
  if (c->softmax_input)
    keep(w, "generator.log_softmax", "x", AAL_TFMEM_VALUES, x, 0, 0);
  keep(w, "generator.log_softmax", "y", AAL_TFMEM_VALUES, fresh(w, n * v), 0, 0);
}

int aal_tfmem_plan_make(const aal_tfmem_config *cfg, aal_tfmem_plan *plan, aal_error *err)
{
  memset(plan, 0, sizeof *plan);
  int rc = aal_tfmem_config_check(cfg, err);
  if (rc != AAL_OK)
    return rc;
  walk w = {plan, cfg, (size_t)cfg->batch, "", err, AAL_OK};
  switch (cfg->model) {
  case AAL_TFMEM_VIT: vit(&w); break;
  case AAL_TFMEM_MIXER: mixer(&w); break;
  case AAL_TFMEM_BERT: bert(&w); break;
  case AAL_TFMEM_TRANSFORMER: transformer(&w); break;
  }
  if (w.rc != AAL_OK)
    aal_tfmem_plan_free(plan);
  return w.rc;
}

/* ------------------------------------------------------------------ the policies */

static int is_sign(const aal_tfmem_entry *e, aal_tfmem_policy p)
{
  return e->asa > 0 && p.asa >= e->asa;
}

static int is_code(const aal_tfmem_entry *e, aal_tfmem_policy p)
{
  return p.mesa && e->mesa && !is_sign(e, p);
}

int aal_tfmem_entry_shared(const aal_tfmem_entry *e, aal_tfmem_policy p)
{
  return !is_sign(e, p) && !is_code(e, p);
}

size_t aal_tfmem_entry_bytes(const aal_tfmem_entry *e, aal_tfmem_policy p)
{
  if (e->mesa_only && !p.mesa)
    return 0;
  if (is_sign(e, p))  /* make_asa_cuda_kernel.cu: one bit an element in int32 words */
    return (e->elements + 31) / 32 * 4;
  if (is_code(e, p))  /* custom_quant.py: pack_single_precision(..., 8, ...) */
    return e->mesa_elements;
  switch (e->kind) {
  case AAL_TFMEM_VALUES:
  case AAL_TFMEM_STATS: return 4 * e->elements;
  case AAL_TFMEM_MASK: return e->elements;
  case AAL_TFMEM_INDEX: return 8 * e->elements;
  }
  return 0;
}

int aal_tfmem_counted(const aal_tfmem_plan *plan, aal_tfmem_policy p, size_t *bytes,
                      size_t *total, aal_error *err)
{
  unsigned char *seen = calloc((size_t)(plan->ids > 0 ? plan->ids : 1), 1);
  if (seen == NULL)
    return aal_fail(err, AAL_ENOMEM, "memory plan: %ld tensor ids", plan->ids);
  size_t sum = 0;
  for (size_t i = 0; i < plan->count; i++) {
    const aal_tfmem_entry *e = &plan->entries[i];
    size_t own = aal_tfmem_entry_bytes(e, p);
    if (own > 0 && aal_tfmem_entry_shared(e, p)) {
      if (seen[e->id])
        own = 0;
      seen[e->id] = 1;
    }
    if (bytes != NULL)
      bytes[i] = own;
    sum += own;
  }
  free(seen);
  *total = sum;
  return AAL_OK;
}
