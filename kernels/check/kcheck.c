/* The cross-check harness: shapes, buffers on three runs (reference, reference on
 * absolute values, tested backend), poisoning, comparisons and the report.  The cases
 * (inputs and bounds of each op) are in kernels/check/<op>.c, one file per op as in
 * sim/layers, and listed in the table of cases (above the driver). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ buffers */

int kc_add(kc_case *k, const char *name, enum kc_role role, size_t n, int bits)
{
  if (k->nbuf >= KC_MAXBUF)
    return -1;
  kc_buf *b = &k->buf[k->nbuf];
  memset(b, 0, sizeof *b);
  b->name = name;
  b->role = role;
  b->bits = bits;
  b->n = n;
  return k->nbuf++;
}

kc_buf *kc_get(kc_case *k, const char *name)
{
  for (int i = 0; i < k->nbuf; i++)
    if (strcmp(k->buf[i].name, name) == 0)
      return &k->buf[i];
  return NULL;
}

double kc_sym(kc_run *run, double scale)
{
  double v;
  do
    v = 2.0 * gsl_rng_uniform(run->rng) - 1.0;
  while (fabs(v) < 1.0 / 1024);
  return (double)(float)(scale * v);
}

static size_t nwords(size_t n) { return (n + 31) / 32; }

/* With a candidate's tensors (run->ext) the tested run has host copies only: its
 * outputs are the candidate's, and no backend runs it. */
static int no_tested_backend(const kc_run *run, int v) { return run->ext != NULL && v == KC_GOT; }

int kc_alloc(kc_run *run, kc_case *k)
{
  for (int i = 0; i < k->nbuf; i++) {
    kc_buf *b = &k->buf[i];
    for (int v = 0; v < KC_RUNS; v++) {
      const aal_backend *be = run->be[v];
      int rc = no_tested_backend(run, v) ? AAL_OK
               : b->bits ? be->alloc_bits(be, b->n, &b->dev[v], run->err)
                         : be->alloc(be, b->n, &b->dev[v], run->err);
      if (rc != AAL_OK)
        return rc;
      if (b->bits)
        b->words[v] = calloc(nwords(b->n), sizeof(uint32_t));
      else
        b->val[v] = calloc(b->n, sizeof(double));
      if (b->words[v] == NULL && b->val[v] == NULL)
        return aal_fail(run->err, AAL_ENOMEM, "kcheck: host copy of %s (%zu elements)",
                        b->name, b->n);
    }
  }
  return AAL_OK;
}

void kc_free(kc_run *run, kc_case *k)
{
  if (run->ext != NULL)
    kc_ext_collect(run, k);
  for (int i = 0; i < k->nbuf; i++)
    for (int v = 0; v < KC_RUNS; v++) {
      kc_buf *b = &k->buf[i];
      if (b->dev[v] != NULL)
        run->be[v]->release(run->be[v], b->dev[v]);
      free(b->val[v]);
      free(b->words[v]);
    }
  free(k->labels);
  memset(k, 0, sizeof *k);
}

/* Inputs travel: the values are rounded to float32 (the caller drew them so; a
 * candidate's are exact in its storage format and stay as they are), the absolute-value
 * run gets |x|, bits go to every run unchanged. */
static int upload_inputs(kc_run *run, kc_case *k)
{
  for (int i = 0; i < k->nbuf; i++) {
    kc_buf *b = &k->buf[i];
    if (b->role == KC_OUT)
      continue;
    for (int v = 0; v < KC_RUNS; v++) {
      const aal_backend *be = run->be[v];
      int rc = AAL_OK;
      if (b->bits) {
        memcpy(b->words[v], b->words[KC_REF], nwords(b->n) * sizeof(uint32_t));
        if (!no_tested_backend(run, v))
          rc = be->upload_bits(be, b->dev[v], b->words[v], b->n, run->err);
      } else {
        for (size_t j = 0; j < b->n; j++) {
          const double x = run->ext ? b->val[KC_REF][j] : (double)(float)b->val[KC_REF][j];
          b->val[KC_REF][j] = x;
          b->val[v][j] = v == KC_ABS ? fabs(x) : x;
        }
        if (!no_tested_backend(run, v))
          rc = be->upload(be, b->dev[v], b->val[v], b->n, run->err);
      }
      if (rc != AAL_OK)
        return rc;
    }
  }
  return AAL_OK;
}

/* Poison the tested run's outputs: NaN values; for bits the complement of what the
 * reference wrote, so that every unwritten bit is wrong. */
static int poison_outputs(kc_run *run, kc_case *k)
{
  const aal_backend *be = run->be[KC_GOT];
  for (int i = 0; i < k->nbuf; i++) {
    kc_buf *b = &k->buf[i];
    if (b->role != KC_OUT)
      continue;
    int rc;
    if (b->bits) {
      for (size_t j = 0; j < nwords(b->n); j++)
        b->words[KC_GOT][j] = ~b->words[KC_REF][j];
      rc = be->upload_bits(be, b->dev[KC_GOT], b->words[KC_GOT], b->n, run->err);
    } else {
      for (size_t j = 0; j < b->n; j++)
        b->val[KC_GOT][j] = b->poison_inf ? INFINITY : NAN;
      rc = be->upload(be, b->dev[KC_GOT], b->val[KC_GOT], b->n, run->err);
    }
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

static int download_outputs(kc_run *run, kc_case *k, int v)
{
  const aal_backend *be = run->be[v];
  for (int i = 0; i < k->nbuf; i++) {
    kc_buf *b = &k->buf[i];
    if (b->role == KC_IN)
      continue;
    int rc = b->bits ? be->download_bits(be, b->words[v], b->dev[v], b->n, run->err)
                     : be->download(be, b->val[v], b->dev[v], b->n, run->err);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

static void row_fail(kc_row *row, const char *fmt, const char *a, const char *b)
{
  row->failed = 1;
  row->ratio = INFINITY;
  snprintf(row->note, sizeof row->note, fmt, a, b);
}

int kc_execute(kc_run *run, kc_case *k, kc_call call, int need_abs, kc_row *row, int *ran)
{
  *ran = 0;
  int rc = upload_inputs(run, k);
  for (int v = KC_REF; v <= KC_ABS && rc == AAL_OK; v++) {
    if (v == KC_ABS && !need_abs)
      break;
    rc = call(run->be[v], v, k, run->err);
    if (rc == AAL_OK)
      rc = download_outputs(run, k, v);
  }
  if (rc == AAL_OK && run->ext != NULL) { /* the candidate's outputs are the tested run's */
    kc_ext_outputs(run, k);
    *ran = 1;
    return AAL_OK;
  }
  if (rc == AAL_OK)
    rc = poison_outputs(run, k);
  if (rc != AAL_OK)
    return rc;
  aal_error e;
  aal_error_clear(&e);
  rc = call(run->be[KC_GOT], KC_GOT, k, &e);
  if (rc != AAL_OK) {
    row_fail(row, "the op returned %s: %s", aal_status_name(rc), e.msg);
    return AAL_OK;
  }
  rc = download_outputs(run, k, KC_GOT);
  if (rc != AAL_OK) {
    row_fail(row, "%s: %s", "download failed", run->err->msg);
    return AAL_OK;
  }
  *ran = 1;
  return AAL_OK;
}

/* ================================================================ comparisons */

/* Records the element if it is the output's worst so far (res may be NULL). */
static void note_res(kc_result *res, double ratio, int fail, size_t i, double ref, double got,
                     double err, double bound)
{
  if (res == NULL)
    return;
  res->failed |= fail;
  if (ratio > res->ratio || (isnan(ratio) && !isinf(res->ratio)) || !res->checked) {
    res->ratio = isnan(ratio) ? INFINITY : ratio;
    res->index = i;
    res->ref = ref;
    res->got = got;
    res->err = err;
    res->bound = bound;
  }
  res->checked = 1;
}

/* Records element i of output name if it is the row's (and the output's) worst so far. */
static void note_elem(kc_row *row, kc_result *res, double ratio, int fail, const char *name,
                      size_t i, double ref, double got, double err, double bound)
{
  note_res(res, ratio, fail, i, ref, got, err, bound);
  if (fail)
    row->failed = 1;
  if (ratio > row->ratio || (isnan(ratio) && !isinf(row->ratio)) || row->worst[0] == '\0') {
    row->ratio = isnan(ratio) ? INFINITY : ratio;
    snprintf(row->worst, sizeof row->worst, "%s[%zu] ref=%.9g got=%.9g err=%.3g bound=%.3g",
             name, i, ref, got, err, bound);
  }
}

/* pass iff err <= bound (NaN never passes); both NaN passes only where nan_ok and the
 * reference is NaN.  A bound of arithmetic (not exact) grows by the row's storage
 * rounding (kc_row.store_u). */
static void check_elem(kc_row *row, kc_result *res, const char *name, size_t i, double ref,
                       double got, double bound, int nan_ok, int exact)
{
  if (nan_ok && isnan(ref)) {
    const int ok = isnan(got);
    note_elem(row, res, ok ? 0.0 : INFINITY, !ok, name, i, ref, got, ok ? 0.0 : INFINITY, 0.0);
    return;
  }
  if (!exact && row->store_u > 0)
    bound += row->store_u * (fabs(ref) + bound) + row->store_eta;
  const double err = fabs(got - ref);
  const int ok = isfinite(ref) && isfinite(got) && err <= bound;
  double ratio = err == 0.0 ? 0.0 : err / bound; /* err/0 is Inf: fails */
  if (!ok)
    ratio = isfinite(ratio) && ratio > 1.0 ? ratio : INFINITY;
  note_elem(row, res, ratio, !ok, name, i, ref, got, err, bound);
}

void kc_check_bound(kc_row *row, kc_buf *b, const double *bound, int nan_ok)
{
  for (size_t i = 0; i < b->n; i++)
    check_elem(row, &b->res, b->name, i, b->val[KC_REF][i], b->val[KC_GOT][i], bound[i],
               nan_ok, 0);
}

void kc_check_scaled(kc_run *run, kc_row *row, kc_buf *b, double c, double kterms)
{
  const double f = c * kterms * run->u;
  for (size_t i = 0; i < b->n; i++)
    check_elem(row, &b->res, b->name, i, b->val[KC_REF][i], b->val[KC_GOT][i],
               f * fabs(b->val[KC_ABS][i]), 0, 0);
}

void kc_check_exact(kc_row *row, kc_buf *b, int nan_ok)
{
  for (size_t i = 0; i < b->n; i++)
    check_elem(row, &b->res, b->name, i, b->val[KC_REF][i], b->val[KC_GOT][i], 0.0, nan_ok, 1);
}

/* A bit output with `wrong` differing bits, the first at index first (ref: its bit). */
static void note_bits(kc_result *res, size_t wrong, size_t first, unsigned r)
{
  note_res(res, wrong ? INFINITY : 0.0, wrong > 0, first, r, wrong ? !r : r, wrong > 0, 0.0);
  if (wrong > 0)
    snprintf(res->note, sizeof res->note, "%zu wrong bits", wrong);
}

void kc_check_bits(kc_row *row, kc_buf *b)
{
  size_t wrong = 0, first = 0;
  for (size_t i = 0; i < b->n; i++) {
    const unsigned r = (b->words[KC_REF][i / 32] >> (i % 32)) & 1u;
    const unsigned g = (b->words[KC_GOT][i / 32] >> (i % 32)) & 1u;
    if (r != g && wrong++ == 0)
      first = i;
  }
  const unsigned r = (b->words[KC_REF][first / 32] >> (first % 32)) & 1u;
  note_bits(&b->res, wrong, first, r);
  if (wrong == 0) {
    if (row->worst[0] == '\0')
      note_elem(row, NULL, 0.0, 0, b->name, 0, 0, 0, 0, 0);
    return;
  }
  row->failed = 1;
  row->ratio = INFINITY;
  snprintf(row->worst, sizeof row->worst, "%s[%zu] ref=%u got=%u (%zu wrong bits)", b->name,
           first, r, !r, wrong);
}

void kc_check_scalar(kc_row *row, kc_result *res, const char *name, double ref, double got,
                     double bound)
{
  check_elem(row, res, name, 0, ref, got, bound, 0, 0);
}

size_t kc_check_bits_ties(kc_row *row, kc_buf *b, const double *zref, const double *bound)
{
  size_t wrong = 0, first = 0, ties = 0;
  for (size_t i = 0; i < b->n; i++) {
    const unsigned r = (b->words[KC_REF][i / 32] >> (i % 32)) & 1u;
    const unsigned g = (b->words[KC_GOT][i / 32] >> (i % 32)) & 1u;
    if (r == g)
      continue;
    if (fabs(zref[i]) <= bound[i]) /* NaN is never a tie */
      ties++;
    else if (wrong++ == 0)
      first = i;
  }
  const unsigned r = (b->words[KC_REF][first / 32] >> (first % 32)) & 1u;
  note_bits(&b->res, wrong, first, r);
  if (ties > 0 && wrong == 0)
    snprintf(b->res.note, sizeof b->res.note, "%zu ties (|z_ref| within the bound of 0)", ties);
  if (wrong == 0) {
    if (row->worst[0] == '\0')
      note_elem(row, NULL, 0.0, 0, b->name, 0, 0, 0, 0, 0);
    return ties;
  }
  row->failed = 1;
  row->ratio = INFINITY;
  snprintf(row->worst, sizeof row->worst,
           "%s[%zu] ref=%u got=%u z_ref=%.9g bound=%.3g (%zu wrong bits, %zu ties)", b->name,
           first, r, !r, zref[first], bound[first], wrong, ties);
  return ties;
}

/* Bitwise equality of two doubles (which hold floats or doubles): -0 differs from +0, a
 * NaN equals only the same NaN. */
static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

void kc_check_same(kc_row *row, const char *name, const double *fused, const double *unfused,
                   size_t n)
{
  if (row->note[0] != '\0' && row->failed)
    return; /* the first difference is reported */
  for (size_t i = 0; i < n; i++)
    if (!same_bits(fused[i], unfused[i])) {
      row->failed = 1;
      row->ratio = INFINITY;
      snprintf(row->note, sizeof row->note,
               "not the unfused composition bit for bit: %s[%zu] fused=%.9g unfused=%.9g",
               name, i, fused[i], unfused[i]);
      return;
    }
}

void kc_check_same_bits(kc_row *row, const char *name, const uint32_t *fused,
                        const uint32_t *unfused, size_t n)
{
  if (row->note[0] != '\0' && row->failed)
    return; /* the first difference is reported */
  for (size_t i = 0; i < n; i++) {
    const unsigned f = (fused[i / 32] >> (i % 32)) & 1u, u = (unfused[i / 32] >> (i % 32)) & 1u;
    if (f != u) {
      row->failed = 1;
      row->ratio = INFINITY;
      snprintf(row->note, sizeof row->note,
               "not the unfused composition bit for bit: %s[%zu] fused=%u unfused=%u", name, i,
               f, u);
      return;
    }
  }
}

/* ================================================================ shapes */

static void conv_desc(kc_shape *s)
{
  const aal_conv_shape *c = &s->cs;
  snprintf(s->desc, sizeof s->desc, "%dx%dx%dx%d k%d %dx%d s%d p%d", c->n, c->c, c->h, c->w,
           c->k, c->r, c->s, c->stride, c->pad);
}

static int conv_shape(kc_shape *s, int n, int c, int h, int w, int k, int r, int st, int pad)
{
  memset(s, 0, sizeof *s);
  s->cs = (aal_conv_shape){.n = n, .c = c, .h = h, .w = w, .k = k, .r = r, .s = r,
                           .stride = st, .pad = pad};
  conv_desc(s);
  return aal_conv_shape_init(&s->cs, NULL) == AAL_OK;
}

/* Max pooling of x [n, c, h, w], window k, stride st, pad: 1 if the geometry is valid. */
static int maxpool_shape(kc_shape *s, int n, int c, int h, int w, int k, int st, int pad)
{
  memset(s, 0, sizeof *s);
  s->cs = (aal_conv_shape){.n = n, .c = c, .h = h, .w = w, .k = c, .r = k, .s = k,
                           .stride = st, .pad = pad, .p = aal_pool_out(h, k, st, pad),
                           .q = aal_pool_out(w, k, st, pad)};
  snprintf(s->desc, sizeof s->desc, "%dx%dx%dx%d k%d s%d p%d", n, c, h, w, k, st, pad);
  return n >= 1 && c >= 1 && s->cs.p >= 1 && s->cs.q >= 1;
}

/* Patchify of an image [n, c, h, w] into p x p patches (p divides h and w). */
static void patch_shape(kc_shape *s, int n, int c, int h, int w, int p)
{
  memset(s, 0, sizeof *s);
  s->cs = (aal_conv_shape){.n = n, .c = c, .h = h, .w = w, .r = p, .s = p};
  snprintf(s->desc, sizeof s->desc, "%dx%dx%dx%d p%d", n, c, h, w, p);
}

/* Attention (a = B, b = T, c = heads, len = dh) and embedding (a = B, b = T, c = V,
 * len = D) shapes. */
static void abcl_shape(kc_shape *s, int a, int b, int c, int len, const char *what)
{
  memset(s, 0, sizeof *s);
  s->a = a;
  s->b = b;
  s->c = c;
  s->len = (size_t)len;
  snprintf(s->desc, sizeof s->desc, what[0] == 'h' ? "%dx%d h%d dh%d" : "%dx%d V%d D%d", a, b,
           c, len);
}

static void abc_shape(kc_shape *s, int a, int b, int c, size_t len, const char *fmt)
{
  memset(s, 0, sizeof *s);
  s->a = a;
  s->b = b;
  s->c = c;
  s->len = len;
  if (strcmp(fmt, "len") == 0)
    snprintf(s->desc, sizeof s->desc, "%zu", len);
  else if (strcmp(fmt, "n,per") == 0)
    snprintf(s->desc, sizeof s->desc, "%dx%zu", a, len);
  else if (c > 0)
    snprintf(s->desc, sizeof s->desc, "%dx%dx%d", a, b, c);
  else
    snprintf(s->desc, sizeof s->desc, "%dx%d", a, b);
}

#define KC_MAXSHAPES 64

/* ResNet-18 on Tiny ImageNet (SPEC section 6) at batch B: the distinct layer shapes. */
static int resnet18_shapes(enum kc_family f, int B, kc_shape *s)
{
  static const int conv[][6] = {/* c, h, k, r, stride, pad */
                                {3, 64, 64, 3, 2, 1},     {64, 32, 64, 3, 1, 1},
                                {64, 32, 128, 3, 2, 1},   {64, 32, 128, 1, 2, 0},
                                {128, 16, 128, 3, 1, 1},  {128, 16, 256, 3, 2, 1},
                                {128, 16, 256, 1, 2, 0},  {256, 8, 256, 3, 1, 1},
                                {256, 8, 512, 3, 2, 1},   {256, 8, 512, 1, 2, 0},
                                {512, 4, 512, 3, 1, 1}};
  static const int act[][2] = {{64, 32}, {128, 16}, {256, 8}, {512, 4}}; /* channels, size */
  static const size_t params[] = {1728, 36864, 2359296, 102400, 200};
  int m = 0;
  switch (f) {
  case KC_CONV:
    for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++)
      m += conv_shape(&s[m], B, conv[i][0], conv[i][1], conv[i][1], conv[i][2], conv[i][3],
                      conv[i][4], conv[i][5]);
    break;
  case KC_BN:
    for (int i = 0; i < 4; i++, m++)
      abc_shape(&s[m], B, act[i][0], act[i][1] * act[i][1], 0, "abc");
    break;
  case KC_ELEM:
    for (int i = 0; i < 4; i++, m++)
      abc_shape(&s[m], 0, 0, 0, (size_t)B * act[i][0] * act[i][1] * act[i][1], "len");
    break;
  case KC_LI:
    for (int i = 0; i < 4; i++, m++)
      abc_shape(&s[m], B, 0, 0, (size_t)act[i][0] * act[i][1] * act[i][1], "n,per");
    break;
  case KC_POOL:
    abc_shape(&s[m++], B * 512, 16, 0, 0, "ab");
    break;
  case KC_LINEAR:
    abc_shape(&s[m++], B, 512, 200, 0, "abc");
    break;
  case KC_XENT:
    abc_shape(&s[m++], B, 200, 0, 0, "ab");
    break;
  case KC_SGD:
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++, m++)
      abc_shape(&s[m], 0, 0, 0, params[i], "len");
    break;
  case KC_MAXPOOL: /* the ImageNet stem's pooling (3x3, s2, p1) after its 7x7 s2 conv */
    m += maxpool_shape(&s[m], B, 64, 32, 32, 3, 2, 1);
    break;
  /* The Transformer ops at a ViT-Tiny-like size on 64x64 images (patch 8: 64 patches and
   * a class token, T = 65; D = 192, 3 heads of 64, MLP 768), batch B: */
  case KC_ROWS: /* layer norm's and the MLP's rows, and the attention's score rows */
    abc_shape(&s[m++], B * 65, 192, 0, 0, "ab");
    abc_shape(&s[m++], B * 65, 768, 0, 0, "ab");
    abc_shape(&s[m++], B * 3 * 65, 65, 0, 0, "ab");
    break;
  case KC_ATTN:
    abcl_shape(&s[m++], B, 65, 3, 64, "heads");
    break;
  case KC_EMBED: /* a BERT-like token embedding, smaller vocabulary */
    abcl_shape(&s[m++], B, 64, 1000, 192, "vocab");
    break;
  case KC_PATCH:
    patch_shape(&s[m++], B, 3, 64, 64, 8);
    break;
  case KC_TRANSPOSE: /* MLP-Mixer's token mixing: [B, T, D] <-> [B, D, T] */
    abc_shape(&s[m++], B, 64, 192, 0, "abc");
    break;
  }
  return m;
}

static int uni(gsl_rng *r, int lo, int hi) /* uniform integer in [lo, hi] */
{
  return lo + (int)gsl_rng_uniform_int(r, (unsigned long)(hi - lo + 1));
}

/* Random conv shape i: stride, pad and batch 1 cycle with i so that any 4 shapes cover
 * stride 1 and 2, pad 0 and 1; sizes are small and mostly odd-friendly; kernels square
 * but for every fourth shape. */
static void random_conv(gsl_rng *r, int i, kc_shape *s)
{
  do {
    const int st = 1 + i % 2, pad = (i / 2) % 2, n = i % 3 == 0 ? 1 : uni(r, 2, 3);
    const int k = uni(r, 1, 3), h = uni(r, 1, 11), w = uni(r, 1, 11);
    conv_shape(s, n, uni(r, 1, 7), h, w, uni(r, 1, 9), k, st, pad);
    if (i % 4 == 3) {
      s->cs.s = uni(r, 1, 3);
      conv_desc(s);
    }
  } while (aal_conv_shape_init(&s->cs, NULL) != AAL_OK);
  conv_desc(s);
}

/* Random max pooling shape i: i % 4 cycles the ResNet stem's geometry (k 3, stride 2,
 * pad 1 on 17..18-pixel images, batch 2, 3..8 channels), k 2 stride 2 pad 0, k 3 stride
 * 1 pad 1 (on 1..12-pixel images, not square), and any k 1..5, stride 1..3, pad 0..k/2. */
static void random_maxpool(gsl_rng *r, int i, kc_shape *s)
{
  switch (i % 4) {
  case 0: {
    const int hw = uni(r, 17, 18);
    maxpool_shape(s, 2, uni(r, 3, 8), hw, hw, 3, 2, 1);
    break;
  }
  case 1:
    maxpool_shape(s, uni(r, 1, 3), uni(r, 1, 6), uni(r, 2, 12), uni(r, 2, 12), 2, 2, 0);
    break;
  case 2:
    maxpool_shape(s, uni(r, 1, 3), uni(r, 1, 6), uni(r, 1, 12), uni(r, 1, 12), 3, 1, 1);
    break;
  default: {
    int k, st, pad, n, c, h, w;
    do {
      k = uni(r, 1, 5);
      st = uni(r, 1, 3);
      pad = uni(r, 0, k / 2);
      n = uni(r, 1, 3);
      c = uni(r, 1, 6);
      h = uni(r, 1, 12);
      w = uni(r, 1, 12);
    } while (!maxpool_shape(s, n, c, h, w, k, st, pad));
    break;
  }
  }
}

static void random_shape(enum kc_family f, gsl_rng *r, int i, kc_shape *s)
{
  switch (f) {
  case KC_CONV:
    random_conv(r, i, s);
    break;
  case KC_BN: {
    int n = i % 3 == 0 ? 1 : uni(r, 2, 4), hw = uni(r, 1, 40);
    if (n * hw < 2) /* training needs two values per channel */
      hw = 2;
    abc_shape(s, n, uni(r, 1, 6), hw, 0, "abc");
    break;
  }
  case KC_ELEM:
    abc_shape(s, 0, 0, 0, (size_t)uni(r, 1, 3000), "len");
    break;
  case KC_LI:
    abc_shape(s, uni(r, 1, 5), 0, 0, (size_t)uni(r, 1, 300), "n,per");
    break;
  case KC_POOL:
    abc_shape(s, uni(r, 1, 20), uni(r, 1, 50), 0, 0, "ab");
    break;
  case KC_LINEAR:
    abc_shape(s, i % 3 == 0 ? 1 : uni(r, 2, 5), uni(r, 1, 40), uni(r, 1, 30), 0, "abc");
    break;
  case KC_XENT:
    abc_shape(s, i % 3 == 0 ? 1 : uni(r, 2, 5), uni(r, 1, 30), 0, 0, "ab");
    break;
  case KC_SGD:
    abc_shape(s, 0, 0, 0, (size_t)uni(r, 1, 3000), "len");
    break;
  case KC_MAXPOOL:
    random_maxpool(r, i, s);
    break;
  case KC_ROWS:
    abc_shape(s, uni(r, 1, 20), uni(r, 1, 300), 0, 0, "ab");
    break;
  case KC_ATTN:
    abcl_shape(s, uni(r, 1, 3), uni(r, 1, 20), uni(r, 1, 4), uni(r, 1, 16), "heads");
    break;
  case KC_EMBED:
    abcl_shape(s, uni(r, 1, 4), uni(r, 1, 20), uni(r, 1, 50), uni(r, 1, 40), "vocab");
    break;
  case KC_PATCH: {
    const int p = uni(r, 1, 4);
    patch_shape(s, uni(r, 1, 3), uni(r, 1, 4), p * uni(r, 1, 5), p * uni(r, 1, 5), p);
    break;
  }
  case KC_TRANSPOSE:
    abc_shape(s, uni(r, 1, 4), uni(r, 1, 40), uni(r, 1, 40), 0, "abc");
    break;
  }
}

/* ---- the boundary shapes: sizes at and across the block sizes optimised kernels use */

static const int kc_chans[] = {63, 64, 65, 127, 128, 129};

static int pick(gsl_rng *r, const int *v, size_t n) { return v[gsl_rng_uniform_int(r, n)]; }

#define PICK(r, v) pick(r, v, sizeof v / sizeof v[0])

/* k 4096 + {-1, 0, 1}, k in 1..kmax */
static size_t near4096(gsl_rng *r, int kmax) { return 4096u * (size_t)uni(r, 1, kmax) + (size_t)uni(r, 0, 2) - 1; }

/* Even i: C and K in 63..129 (C*R*S up to 1161), small images; odd i: few channels and
 * N*P*Q at and across 4096 and 8192 (63..65 square-ish images, stride 1, "same" pad). */
static void boundary_conv(gsl_rng *r, int i, kc_shape *s)
{
  static const int side[] = {63, 64, 65};
  const int k = uni(r, 0, 1) ? 3 : 1;
  if (i % 2 == 0) {
    const int st = 1 + (i / 2) % 2, pad = k == 3 ? (i / 4) % 2 : 0;
    conv_shape(s, uni(r, 1, 2), PICK(r, kc_chans), uni(r, 3, 8), uni(r, 3, 8), PICK(r, kc_chans),
               k, st, pad);
    if (i % 8 == 6) { /* one non-square kernel in four */
      s->cs.s = 3 - s->cs.r + 1;
      s->cs.pad = 0;
    }
  } else {
    conv_shape(s, uni(r, 1, 2), uni(r, 1, 8), PICK(r, side), PICK(r, side), uni(r, 1, 8), k, 1,
               k / 2);
  }
  aal_conv_shape_init(&s->cs, NULL); /* valid by construction: 3 <= size, pad <= 1 */
  conv_desc(s);
}

static void boundary_shape(enum kc_family f, gsl_rng *r, int i, kc_shape *s)
{
  static const int small_hw[] = {63, 64, 65}, pool_hw[] = {1, 16, 49, 63, 64, 65};
  static const int inner[] = {63, 64, 65, 127, 128, 129, 255, 256, 257, 4095, 4096, 4097};
  static const int classes[] = {63, 64, 65, 127, 128, 129, 200};
  switch (f) {
  case KC_CONV:
    boundary_conv(r, i, s);
    break;
  case KC_BN: /* many channels over M near 64, or few over M near 4096 and 8192 */
    if (i % 2 == 0)
      abc_shape(s, uni(r, 1, 2), PICK(r, kc_chans), PICK(r, small_hw), 0, "abc");
    else
      abc_shape(s, uni(r, 1, 2), uni(r, 1, 3), (int)near4096(r, 1), 0, "abc");
    break;
  case KC_ELEM:
    abc_shape(s, 0, 0, 0, near4096(r, 16), "len");
    break;
  case KC_LI:
    abc_shape(s, uni(r, 1, 3), 0, 0, near4096(r, 4), "n,per");
    break;
  case KC_POOL:
    abc_shape(s, PICK(r, kc_chans), PICK(r, pool_hw), 0, 0, "ab");
    break;
  case KC_LINEAR:
    abc_shape(s, uni(r, 1, 8), PICK(r, inner), PICK(r, kc_chans), 0, "abc");
    break;
  case KC_XENT:
    abc_shape(s, uni(r, 1, 8), PICK(r, classes), 0, 0, "ab");
    break;
  case KC_SGD:
    abc_shape(s, 0, 0, 0, near4096(r, 16), "len");
    break;
  case KC_MAXPOOL: /* many channels (planes) over small images, or few over 63..65 pixels */
    if (i % 2 == 0)
      maxpool_shape(s, uni(r, 1, 2), PICK(r, kc_chans), uni(r, 7, 9), uni(r, 7, 9), 3, 2, 1);
    else
      maxpool_shape(s, uni(r, 1, 2), uni(r, 1, 3), PICK(r, small_hw), PICK(r, small_hw), 3,
                    1 + (i / 2) % 2, 1);
    break;
  case KC_ROWS: /* rows of 63..4097 values */
    abc_shape(s, uni(r, 1, 8), PICK(r, inner), 0, 0, "ab");
    break;
  case KC_ATTN: { /* sequences and heads around 64 and 128 */
    static const int seq[] = {63, 64, 65, 127, 128, 129};
    abcl_shape(s, uni(r, 1, 2), PICK(r, seq), uni(r, 1, 3), PICK(r, small_hw), "heads");
    break;
  }
  case KC_EMBED:
    abcl_shape(s, uni(r, 1, 2), PICK(r, kc_chans), PICK(r, kc_chans), PICK(r, kc_chans), "vocab");
    break;
  case KC_PATCH: { /* 64x64 and 128x64 images, patches of 2..16 */
    static const int ps[] = {2, 4, 8, 16};
    patch_shape(s, uni(r, 1, 2), uni(r, 1, 3), 64 * uni(r, 1, 2), 64, PICK(r, ps));
    break;
  }
  case KC_TRANSPOSE:
    abc_shape(s, uni(r, 1, 2), PICK(r, kc_chans), PICK(r, kc_chans), 0, "abc");
    break;
  }
}

/* Mixes (seed, a, b) into a generator seed (splitmix64 finaliser). */
static unsigned long mix(unsigned long seed, unsigned long a, unsigned long b)
{
  uint64_t z = (uint64_t)seed * 0x9E3779B97F4A7C15u + a * 0xBF58476D1CE4E5B9u + b + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return (unsigned long)(z ^ (z >> 31));
}

enum kc_set { KC_SET_RESNET18, KC_SET_RANDOM, KC_SET_BOUNDARY };

#define KC_BOUNDARY_DEFAULT 8

/* "resnet18" -> 0 shapes of the fixed set, "random:N" and "boundary[:N]" -> N
 * (1..KC_MAXSHAPES); -1 if malformed. */
static int parse_shapes(const char *spec, enum kc_set *set)
{
  *set = KC_SET_RESNET18;
  if (spec == NULL || strcmp(spec, "resnet18") == 0)
    return 0;
  if (strcmp(spec, "boundary") == 0) {
    *set = KC_SET_BOUNDARY;
    return KC_BOUNDARY_DEFAULT;
  }
  size_t skip;
  if (strncmp(spec, "random:", 7) == 0) {
    *set = KC_SET_RANDOM;
    skip = 7;
  } else if (strncmp(spec, "boundary:", 9) == 0) {
    *set = KC_SET_BOUNDARY;
    skip = 9;
  } else {
    return -1;
  }
  char *end;
  const long n = strtol(spec + skip, &end, 10);
  if (end == spec + skip || *end != '\0' || n < 1 || n > KC_MAXSHAPES)
    return -1;
  return (int)n;
}

static int shapes_for(enum kc_family f, const aal_kcheck_opts *o, enum kc_set set, int nrand,
                      kc_shape *s)
{
  if (set == KC_SET_RESNET18)
    return resnet18_shapes(f, o->batch > 0 ? o->batch : 8, s);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL)
    return -1;
  gsl_rng_set(r, mix(o->seed, (set == KC_SET_BOUNDARY ? 2000 : 1000) + (unsigned long)f, 0));
  for (int i = 0; i < nrand; i++) {
    if (set == KC_SET_BOUNDARY)
      boundary_shape(f, r, i, &s[i]);
    else
      random_shape(f, r, i, &s[i]);
  }
  gsl_rng_free(r);
  return nrand;
}

/* ================================================================ the table of cases
 * One row per op, in the order of the report (and of the random numbers each draws). */

const kc_op kc_ops[] = {
    {"conv_forward", KC_CONV, kc_conv_forward_case},
    {"conv_backward_data", KC_CONV, kc_conv_backward_data_case},
    {"conv_backward_filter", KC_CONV, kc_conv_backward_filter_case},
    {"bn_forward", KC_BN, kc_bn_forward_case},
    {"bn_backward", KC_BN, kc_bn_backward_case},
    {"relu_forward", KC_ELEM, kc_relu_forward_case},
    {"relu_backward", KC_ELEM, kc_relu_backward_case},
    {"add", KC_ELEM, kc_add_case},
    {"avgpool_forward", KC_POOL, kc_avgpool_forward_case},
    {"avgpool_backward", KC_POOL, kc_avgpool_backward_case},
    {"linear_forward", KC_LINEAR, kc_linear_forward_case},
    {"linear_backward", KC_LINEAR, kc_linear_backward_case},
    {"xent_forward", KC_XENT, kc_xent_forward_case},
    {"xent_backward", KC_XENT, kc_xent_backward_case},
    {"sign_pack", KC_ELEM, kc_sign_pack_case},
    {"sign_unpack", KC_ELEM, kc_sign_unpack_case},
    {"li_reduce", KC_LI, kc_li_reduce_case},
    {"sgd_update", KC_SGD, kc_sgd_update_case},
    {"asa_input", KC_ELEM, kc_asa_input_case},
    {"bn_relu_forward", KC_BN, kc_bn_relu_forward_case},
    {"bn_relu_backward", KC_BN, kc_bn_relu_backward_case},
    {"scale", KC_ELEM, kc_scale_case},
    {"bn_forward_eval", KC_BN, kc_bn_forward_eval_case},
    {"maxpool_forward", KC_MAXPOOL, kc_maxpool_forward_case},
    {"maxpool_backward", KC_MAXPOOL, kc_maxpool_backward_case},
    {"layernorm_forward", KC_ROWS, kc_layernorm_forward_case},
    {"layernorm_backward", KC_ROWS, kc_layernorm_backward_case},
    {"gelu_forward", KC_ELEM, kc_gelu_forward_case},
    {"gelu_backward", KC_ELEM, kc_gelu_backward_case},
    {"softmax_forward", KC_ROWS, kc_softmax_forward_case},
    {"softmax_backward", KC_ROWS, kc_softmax_backward_case},
    {"attention_forward", KC_ATTN, kc_attention_forward_case},
    {"attention_backward", KC_ATTN, kc_attention_backward_case},
    {"embed_forward", KC_EMBED, kc_embed_forward_case},
    {"embed_backward", KC_EMBED, kc_embed_backward_case},
    {"patchify_forward", KC_PATCH, kc_patchify_forward_case},
    {"patchify_backward", KC_PATCH, kc_patchify_backward_case},
    {"transpose", KC_TRANSPOSE, kc_transpose_case},
};

const int kc_nops = (int)(sizeof kc_ops / sizeof kc_ops[0]);

/* ================================================================ driver */

int aal_kcheck_op_count(void) { return kc_nops; }

const char *aal_kcheck_op_name(int i) { return i >= 0 && i < kc_nops ? kc_ops[i].name : NULL; }

void aal_kcheck_opts_init(aal_kcheck_opts *o)
{
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->shapes = "resnet18";
  o->batch = 8;
}

/* filter "conv" selects conv_*; "add" selects add; NULL or "all" selects everything. */
static int selected(const char *filter, const char *name)
{
  if (filter == NULL || strcmp(filter, "all") == 0 || strcmp(filter, name) == 0)
    return 1;
  const size_t n = strlen(filter);
  return strncmp(filter, name, n) == 0 && name[n] == '_';
}

static void print_row(FILE *out, const char *op, const char *shape, const kc_row *row)
{
  if (out == NULL)
    return;
  char ratio[32];
  snprintf(ratio, sizeof ratio, isinf(row->ratio) ? "inf" : "%.3g", row->ratio);
  fprintf(out, "%-21s %-28s %9s  %-4s  %s%s%s\n", op, shape, ratio,
          row->failed ? "FAIL" : "PASS", row->worst, row->note[0] ? "  " : "", row->note);
}

static void tally(aal_kcheck_summary *sum, const char *op, const char *shape,
                  const kc_row *row)
{
  sum->checks++;
  sum->failed += row->failed != 0;
  if (row->ratio > sum->worst_ratio || sum->checks == 1) {
    sum->worst_ratio = row->ratio;
    snprintf(sum->worst, sizeof sum->worst, "%s %s", op, shape);
  }
  if (row->bias > sum->worst_bias) {
    sum->worst_bias = row->bias;
    snprintf(sum->worst_bias_row, sizeof sum->worst_bias_row, "%s %s", op, shape);
  }
}

static int run_op(kc_run *run, const kc_op *op, const kc_shape *s, int ns,
                  const aal_kcheck_opts *o, int op_index, FILE *out, aal_kcheck_summary *sum)
{
  for (int i = 0; i < ns; i++) {
    gsl_rng_set(run->rng, mix(o->seed, (unsigned long)op_index + 1, (unsigned long)i));
    kc_row row;
    memset(&row, 0, sizeof row);
    int rc = op->run(run, &s[i], &row);
    if (rc != AAL_OK) {
      char msg[AAL_ERRMSG_LEN];
      snprintf(msg, sizeof msg, "%s", run->err->msg); /* aal_fail must not read what it writes */
      return aal_fail(run->err, rc, "kcheck %s %s: %s", op->name, s[i].desc, msg);
    }
    print_row(out, op->name, s[i].desc, &row);
    tally(sum, op->name, s[i].desc, &row);
  }
  return AAL_OK;
}

static int check_opts(const aal_kcheck_opts *o, enum kc_set *set, int *nrand, aal_error *err)
{
  *nrand = parse_shapes(o->shapes, set);
  if (*nrand < 0)
    return aal_fail(err, AAL_EINVAL, "kcheck: shapes '%s': expected resnet18, random:N or "
                    "boundary[:N] with 1 <= N <= %d", o->shapes, KC_MAXSHAPES);
  int any = 0;
  for (int i = 0; i < kc_nops; i++)
    any |= selected(o->op, kc_ops[i].name);
  if (!any) {
    char names[512] = "";
    for (int i = 0; i < kc_nops; i++)
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
               kc_ops[i].name);
    return aal_fail(err, AAL_EINVAL, "kcheck: unknown op '%s' (ops: %s; or a family prefix "
                    "such as conv, bn, relu, linear, xent, sign)", o->op, names);
  }
  return AAL_OK;
}

int aal_kcheck_run(const aal_backend *be, const aal_kcheck_opts *o, FILE *out,
                   aal_kcheck_summary *sum, aal_error *err)
{
  if (be == NULL || o == NULL || sum == NULL)
    return aal_fail(err, AAL_EINVAL, "kcheck: NULL backend, options or summary");
  memset(sum, 0, sizeof *sum);
  enum kc_set set;
  int nrand, rc = check_opts(o, &set, &nrand, err);
  if (rc != AAL_OK)
    return rc;
  aal_backend ref;
  if ((rc = aal_backend_ref(&ref, err)) != AAL_OK)
    return rc;
  aal_error local;
  kc_run run = {.be = {&ref, &ref, be}, .u = ldexp(1.0, -be->precision_bits),
                .rng = gsl_rng_alloc(gsl_rng_mt19937), .err = err ? err : &local};
  kc_shape *shapes = malloc(KC_MAXSHAPES * sizeof *shapes);
  if (run.rng == NULL || shapes == NULL) {
    rc = aal_fail(err, AAL_ENOMEM, "kcheck: generator or shape table");
    goto done;
  }
  if (out != NULL) {
    fprintf(out, "kcheck: backend %s (u = 2^-%d), seed %lu, shapes %s", be->name,
            be->precision_bits, o->seed, o->shapes ? o->shapes : "resnet18");
    if (set == KC_SET_RESNET18)
      fprintf(out, ", batch %d", o->batch > 0 ? o->batch : 8);
    fprintf(out, "\n");
    fprintf(out, "%-21s %-28s %9s  %-4s  %s\n", "op", "shape", "err/bound", "", "worst element");
  }
  for (int i = 0; i < kc_nops && rc == AAL_OK; i++) {
    if (!selected(o->op, kc_ops[i].name))
      continue;
    const int ns = shapes_for(kc_ops[i].family, o, set, nrand, shapes);
    if (ns < 0) {
      rc = aal_fail(err, AAL_ENOMEM, "kcheck: shape generator");
      break;
    }
    rc = run_op(&run, &kc_ops[i], shapes, ns, o, i, out, sum);
  }
  if (rc == AAL_OK && out != NULL) {
    fprintf(out, "kcheck: %d checks, %d failed, worst err/bound %.3g (%s)", sum->checks,
            sum->failed, sum->worst_ratio, sum->worst);
    if (sum->worst_bias > 0)
      fprintf(out, "; worst bias |T|/tau %.3g (%s)", sum->worst_bias, sum->worst_bias_row);
    fprintf(out, "\n");
  }
done:
  free(shapes);
  gsl_rng_free(run.rng);
  ref.destroy(&ref);
  return rc;
}
