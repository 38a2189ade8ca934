/* What a training step of a Transformer-like model keeps for backward, from the shapes
 * alone (issue 17, item 4): a dry run of what PyTorch's autograd saves in the authors'
 * models (github.com/WooSunghyeon/Auxiliary_Activation_Learning, commit d8a5a32), as
 * sim/model/storage.c does for the ResNet, and the storage policies of the paper's
 * Table 3.  Nothing is allocated but the list of entries.
 *
 * Models (the authors' files, under experiments/):
 *   vit-large    ViT_L/models/modeling.py: pre-LN blocks (nn.LayerNorm), a class token,
 *                dropout 0.1 after the embedding and in the MLP, attention dropout 0;
 *   mixer-large  MLP-Mixer_L/models/modeling.py: token- and channel-mixing MLPs with GELU,
 *                nn.LayerNorm, no dropout, mean pooling;
 *   bert-large   BERT_L/models.py: post-LN blocks whose LayerNorm is a TF-style module of
 *                elementary ops (so autograd keeps its pieces, and Mesa leaves it alone),
 *                dropout 0.1 on the attention probabilities and the two residual branches;
 *   transformer  Transformer/transformer_model.py: the base encoder-decoder (6 + 6 layers,
 *                pre-LN nn.LayerNorm, dropout 0.1), its decoder's output log-probabilities.
 *
 * What each op keeps is PyTorch 1.8's (the authors' aal.yaml), tfmem.c says from where.
 *
 * Entries are named like a tape (layer, slot) and carry the id of the tensor they hold:
 * one tensor saved by several holders (the LayerNorm output that feeds the query, key and
 * value projections; the encoder output that every decoder layer's cross-attention
 * projects) is counted once.  Mesa gives every holder its own 8-bit copy, so under Mesa a
 * quantized holder counts on its own.
 *
 * Policies: a learning rule (bp, asa1..asa4: which linear layers store a 1-bit sign of
 * their input instead of the input, Figure 5, as each model file defines them) and a
 * storage policy (none: float32 as autograd keeps it; mesa: Mesa's 8-bit activations for
 * the layers Mesa's converter replaces).  Bytes: float32 values and statistics, one byte
 * per dropout mask element (bool), int64 token ids, ASA signs packed in int32 words, Mesa
 * one byte per value (its scale and shift are per-layer parameters, not activations). */
#ifndef AAL_TFMEM_H
#define AAL_TFMEM_H

#include <stddef.h>

#include "sim/core/error.h"

typedef enum {
  AAL_TFMEM_VIT, AAL_TFMEM_MIXER, AAL_TFMEM_BERT, AAL_TFMEM_TRANSFORMER
} aal_tfmem_model;

typedef struct {
  aal_tfmem_model model;
  int depth;      /* blocks; transformer: encoder layers (and as many decoder layers) */
  int width;      /* hidden size D */
  int heads;      /* attention heads H (not mixer) */
  int mlp_ratio;  /* feed-forward (mixer: channel-mixing) width = mlp_ratio * D */
  int token_mlp;  /* mixer: the token-mixing MLP's hidden width */
  int seq;        /* bert, transformer: tokens per sample (transformer: source = target) */
  int image;      /* vit, mixer: input height and width */
  int patch;      /* vit, mixer: patch size */
  int batch;      /* samples (transformer: sentence pairs) */
  int vocab;      /* bert: word pieces (parameters only); transformer: the target vocabulary
                     (the log-probabilities the model returns) and the source's */
  int classes;    /* vit, mixer, bert: classifier outputs */
  int softmax_input; /* 1: softmax and log_softmax keep their input as well as their output,
                        as PyTorch 1.8 (the authors') does; 0: their output only, as 1.11
                        and later do (aal memory --autograd 1.11) */
} aal_tfmem_config;

int aal_tfmem_model_parse(const char *text, aal_tfmem_model *model, aal_error *err);
const char *aal_tfmem_model_name(aal_tfmem_model model);
/* The paper's configuration of a model (Table 3's batch; docs/DESIGN.md gives sources). */
void aal_tfmem_config_default(aal_tfmem_config *cfg, aal_tfmem_model model);
/* "1.8" (softmax_input 1) or "1.11" (0): what PyTorch's autograd keeps. */
int aal_tfmem_autograd_parse(const char *text, int *softmax_input, aal_error *err);
/* AAL_OK, or AAL_EINVAL with a message that names the option (--depth, --heads, ...). */
int aal_tfmem_config_check(const aal_tfmem_config *cfg, aal_error *err);
/* Tokens per sample: (image/patch)^2 (+1 for ViT's class token) or seq. */
int aal_tfmem_tokens(const aal_tfmem_config *cfg);
/* Trainable parameters of the authors' model. */
size_t aal_tfmem_params(const aal_tfmem_config *cfg);

typedef enum {
  AAL_TFMEM_VALUES,  /* float32 activations */
  AAL_TFMEM_STATS,   /* float32 per-token statistics (LayerNorm mean, rstd, std) */
  AAL_TFMEM_MASK,    /* bool, one byte an element (dropout, attention masks) */
  AAL_TFMEM_INDEX    /* int64 token ids (embedding lookups) */
} aal_tfmem_kind;

typedef struct {
  char layer[48];
  char slot[16];
  char group[24];        /* the row of the summary: embed, blockN, head; the transformer's
                            embed, encN, enc_norm, trg_embed, decN, head (in plan order,
                            each group's entries consecutive) */
  aal_tfmem_kind kind;
  size_t elements;       /* of the whole batch, as autograd keeps it */
  size_t mesa_elements;  /* what Mesa quantizes when `mesa` (a view's own size) */
  long id;               /* equal ids: the same tensor */
  int asa;               /* a linear layer's input: the lowest k whose ASAk stores its sign
                            instead (1..4); 0: kept under every rule */
  int mesa;              /* Mesa's converter replaces this holder: an 8-bit copy of its own */
  int mesa_only;         /* kept under Mesa only (a softmax's input when the plain softmax
                            keeps its output alone: softmax_input 0) */
} aal_tfmem_entry;

typedef struct {
  aal_tfmem_entry *entries;
  size_t count, capacity;
  long ids;              /* ids are 0..ids-1 */
} aal_tfmem_plan;

typedef struct {
  int asa;   /* 0: bp; 1..4: ASA1..ASA4 */
  int mesa;  /* 0: none; 1: Mesa */
} aal_tfmem_policy;

/* rule: bp, asa1..asa4; policy: none, mesa. */
int aal_tfmem_rule_parse(const char *text, int *asa, aal_error *err);
int aal_tfmem_storage_parse(const char *text, int *mesa, aal_error *err);
/* "bp", "asa3", "mesa", "mesa+asa3" */
void aal_tfmem_policy_format(aal_tfmem_policy p, char *buf, size_t n);

/* The entries one training-mode forward pass saves, in the order autograd sees them. */
int aal_tfmem_plan_make(const aal_tfmem_config *cfg, aal_tfmem_plan *plan, aal_error *err);
void aal_tfmem_plan_free(aal_tfmem_plan *plan);

/* Bytes of one holder under a policy before tensors are shared out. */
size_t aal_tfmem_entry_bytes(const aal_tfmem_entry *e, aal_tfmem_policy p);
/* 1 when the holder keeps the shared tensor under p (so its id counts once), 0 when it
 * keeps a copy of its own (an ASA sign, a Mesa code). */
int aal_tfmem_entry_shared(const aal_tfmem_entry *e, aal_tfmem_policy p);
/* Bytes of each entry with every shared tensor counted at its first holder (bytes[i] for
 * entry i; may be NULL), and the total. */
int aal_tfmem_counted(const aal_tfmem_plan *plan, aal_tfmem_policy p, size_t *bytes,
                      size_t *total, aal_error *err);

#endif
