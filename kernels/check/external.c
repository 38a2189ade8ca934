/* A candidate's tensors held against the reference (kernels/check/external.h): their
 * validation against the op (kernels/check/external_ops.c says what each op takes and
 * gives), their decoding to doubles, the run of the harness's own case for the op with
 * the candidate's tensors in place of drawn inputs and of a tested backend (kc_ext_*: the
 * hooks the cases and the driver call, kernels/check/kcheck_internal.h), the report, and
 * the op file of the .npy route. */
#include "kernels/check/external_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

/* ================================================================ dtypes */

static const char *const dtype_names[] = {"float64", "float32", "float16", "bfloat16", "int64",
                                          "bool"};

const char *aal_kcheck_dtype_name(aal_kcheck_dtype t)
{
  return (unsigned)t < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[t] : "?";
}

int aal_kcheck_dtype_parse(const char *name)
{
  for (int i = 0; name != NULL && i < (int)(sizeof dtype_names / sizeof dtype_names[0]); i++)
    if (strcmp(name, dtype_names[i]) == 0)
      return i;
  return -1;
}

static int is_float(aal_kcheck_dtype t) { return t <= AAL_KCHECK_BF16; }

/* Significand bits (with the hidden one) of a float format: its unit roundoff is 2^-p. */
static int precision_bits(aal_kcheck_dtype t)
{
  return t == AAL_KCHECK_F64 ? 53 : t == AAL_KCHECK_F32 ? 24 : t == AAL_KCHECK_F16 ? 11 : 8;
}

/* Half the smallest subnormal: the absolute error of a rounding that underflows (float64:
 * the smallest itself, as 2^-1075 is no double; a float64 storage is never coarser than
 * the arithmetic, so it is not used). */
static double underflow_eta(aal_kcheck_dtype t)
{
  return t == AAL_KCHECK_F64 ? 0x1p-1074 : t == AAL_KCHECK_F32 ? 0x1p-150
         : t == AAL_KCHECK_F16 ? 0x1p-25 : 0x1p-134;
}

/* IEEE binary16 bits to double (exact). */
static double half_to_double(uint16_t h)
{
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double sign = h & 0x8000 ? -1.0 : 1.0;
  if (e == 0x1f)
    return m ? NAN : sign * INFINITY;
  if (e == 0)
    return sign * ldexp(m, -24); /* subnormal: m 2^-24 */
  return sign * ldexp(1024 + m, e - 25);
}

/* bfloat16 bits to double: the high half of a float32 (exact). */
static double bf16_to_double(uint16_t b)
{
  const uint32_t w = (uint32_t)b << 16;
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}

/* Element i of a tensor as a double (labels and bits too: they are small integers). */
static double element(const aal_kcheck_tensor *t, size_t i)
{
  switch (t->dtype) {
  case AAL_KCHECK_F64:
    return ((const double *)t->data)[i];
  case AAL_KCHECK_F32:
    return ((const float *)t->data)[i];
  case AAL_KCHECK_F16:
    return half_to_double(((const uint16_t *)t->data)[i]);
  case AAL_KCHECK_BF16:
    return bf16_to_double(((const uint16_t *)t->data)[i]);
  case AAL_KCHECK_I64:
    return (double)((const int64_t *)t->data)[i];
  case AAL_KCHECK_BOOL:
    return ((const uint8_t *)t->data)[i];
  }
  return NAN;
}

/* ================================================================ validation */

static int is_bits(const char *name) { return strcmp(name, "mask") == 0 || strcmp(name, "bits") == 0; }
static int is_labels(const char *name) { return strcmp(name, "labels") == 0; }

/* The dtype a tensor must have. */
static aal_kcheck_dtype dtype_of(const aal_kcheck_args *a, const char *name)
{
  return is_bits(name) ? AAL_KCHECK_BOOL : is_labels(name) ? AAL_KCHECK_I64 : a->storage;
}

static int check_tensor(ext_ctx *c, const aal_kcheck_tensor *t)
{
  const aal_kcheck_dtype want_t = dtype_of(c->a, t->name);
  if (t->ndim < 0 || t->ndim > AAL_KCHECK_MAXDIM)
    return aal_fail(c->err, AAL_EINVAL, "%s: %d dimensions (0 to %d)", ext_src(t), t->ndim,
                    AAL_KCHECK_MAXDIM);
  if (t->dtype != want_t)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s holds %s; %s takes %s%s", ext_src(t), t->name,
                    aal_kcheck_dtype_name(t->dtype), c->op->info.name,
                    aal_kcheck_dtype_name(want_t),
                    is_float(want_t) ? " (the candidate's storage format)" : "");
  size_t n = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s has no elements", ext_src(t), t->name);
    if (n > SIZE_MAX / 8 / t->shape[d])
      return aal_fail(c->err, AAL_EINVAL, "%s: the shape of %s overflows", ext_src(t), t->name);
    n *= t->shape[d];
  }
  if (t->data == NULL)
    return aal_fail(c->err, AAL_EINVAL, "%s: %s has no data", ext_src(t), t->name);
  return AAL_OK;
}

/* Places the caller's tensors in the op's slots: every name known, none twice, every
 * input given, at least one output. */
static int take(ext_ctx *c, const aal_kcheck_tensor *ts, int n, int output)
{
  const char *const *names = output ? c->op->info.outputs : c->op->info.inputs;
  for (int i = 0; i < n; i++) {
    const aal_kcheck_tensor *t = &ts[i];
    ext_slot *s = t->name ? ext_slot_of(c, t->name, output) : NULL;
    if (s == NULL) {
      char list[128] = "";
      for (int j = 0; names[j] != NULL; j++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "",
                 names[j]);
      return aal_fail(c->err, AAL_EINVAL, "%s: %s has no %s '%s' (%s: %s)",
                      t->source ? t->source : c->op->info.name, c->op->info.name,
                      output ? "output" : "input", t->name ? t->name : "(null)",
                      output ? "outputs" : "inputs", list);
    }
    if (s->t != NULL)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s %s given twice", ext_src(t),
                      output ? "output" : "input", t->name);
    const int rc = check_tensor(c, t);
    if (rc != AAL_OK)
      return rc;
    s->t = t;
  }
  return AAL_OK;
}

static int make_slots(ext_ctx *c, const aal_kcheck_tensor *in, int nin,
                      const aal_kcheck_tensor *out, int nout)
{
  for (int o = 0; o < 2; o++) {
    const char *const *names = o ? c->op->info.outputs : c->op->info.inputs;
    for (int j = 0; names[j] != NULL; j++)
      c->slot[c->nslot++] = (ext_slot){.name = names[j], .output = o};
  }
  if ((nin > 0 && in == NULL) || (nout > 0 && out == NULL) || nin < 0 || nout < 0)
    return aal_fail(c->err, AAL_EINVAL, "%s: NULL tensors", c->op->info.name);
  int rc = take(c, in, nin, 0);
  if (rc == AAL_OK)
    rc = take(c, out, nout, 1);
  if (rc != AAL_OK)
    return rc;
  int given = 0;
  for (int i = 0; i < c->nslot; i++) {
    const ext_slot *s = &c->slot[i];
    if (!s->output && s->t == NULL)
      return aal_fail(c->err, AAL_EINVAL, "%s: input %s is missing", c->op->info.name, s->name);
    given += s->output && s->t != NULL;
  }
  if (given == 0)
    return aal_fail(c->err, AAL_EINVAL, "%s: no output of the candidate to check",
                    c->op->info.name);
  return AAL_OK;
}

static const char *const arg_names[] = {"stride", "pad", "kernel", "first", "eps", "s", "lr",
                                        "momentum", "weight_decay"};

/* Whether argument i (the order of arg_names, the bits A_*) is set, and valid if so. */
static int arg_set(const aal_kcheck_args *a, int i, int *valid)
{
  const int ints[4] = {a->stride, a->pad, a->kernel, a->first};
  const double dbl[5] = {a->eps, a->s, a->lr, a->momentum, a->weight_decay};
  if (i < 4) {
    const int v = ints[i];
    *valid = i == 3 ? v == 0 || v == 1 : i == 1 ? v >= 0 : v >= 1;
    return v != AAL_KCHECK_UNSET;
  }
  const double v = dbl[i - 4];
  *valid = isfinite(v) && (i != 4 || v > 0);
  return !isnan(v);
}

static int check_args(ext_ctx *c)
{
  const aal_kcheck_args *a = c->a;
  const char *where = a->source ? a->source : c->op->info.name;
  if (!is_float(a->storage) || !is_float(a->accumulation))
    return aal_fail(c->err, AAL_EINVAL, "%s: storage and accumulation must be float64, "
                    "float32, float16 or bfloat16 (not %s, %s)", where,
                    aal_kcheck_dtype_name(a->storage), aal_kcheck_dtype_name(a->accumulation));
  for (int i = 0; i < (int)(sizeof arg_names / sizeof arg_names[0]); i++) {
    int valid = 0;
    const int set = arg_set(a, i, &valid), takes = (c->op->args >> i) & 1u;
    if (takes && !set)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s needs the argument %s (it takes: %s)", where,
                      c->op->info.name, arg_names[i], c->op->info.args);
    if (!takes && set)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s takes no argument %s (it takes: %s)", where,
                      c->op->info.name, arg_names[i],
                      c->op->info.args[0] ? c->op->info.args : "none");
    if (set && !valid)
      return aal_fail(c->err, AAL_EINVAL, "%s: argument %s of %s is out of range (stride, "
                      "kernel >= 1; pad >= 0; first 0 or 1; eps > 0 for batch norm; finite)",
                      where, arg_names[i], c->op->info.name);
  }
  return AAL_OK;
}

/* Shapes equal once dimensions of size 1 are left out ([N, C, 1, 1] is [N, C]; [1] a
 * scalar). */
static int same_shape(const aal_kcheck_tensor *t, const dims *w)
{
  size_t a[AAL_KCHECK_MAXDIM], b[AAL_KCHECK_MAXDIM];
  int na = 0, nb = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] != 1)
      a[na++] = t->shape[i];
  for (int i = 0; i < w->nd; i++)
    if (w->d[i] != 1)
      b[nb++] = w->d[i];
  return na == nb && memcmp(a, b, (size_t)na * sizeof a[0]) == 0;
}

static void shape_text(char *buf, size_t len, int nd, const size_t *d)
{
  int n = snprintf(buf, len, "(");
  for (int i = 0; i < nd && n > 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - (size_t)n, "%s%zu", i ? ", " : "", d[i]);
  if (n > 0 && (size_t)n < len)
    snprintf(buf + n, len - (size_t)n, "%s)", nd == 1 ? "," : "");
}

/* Inputs of the wrong shape are an error; outputs are reported (out[i].shape_mismatch)
 * and left out of the comparison. */
static int check_shapes(ext_ctx *c, aal_kcheck_report *r)
{
  for (int i = 0; i < c->nslot; i++) {
    ext_slot *s = &c->slot[i];
    if (s->t == NULL || !s->has_want || same_shape(s->t, &s->want))
      continue;
    char got[96], want_s[96];
    shape_text(got, sizeof got, s->t->ndim, s->t->shape);
    shape_text(want_s, sizeof want_s, s->want.nd, s->want.d);
    if (!s->output)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s has shape %s where %s needs %s",
                      ext_src(s->t), s->name, got, c->op->info.name, want_s);
    for (int j = 0; j < r->noutputs; j++)
      if (strcmp(r->out[j].name, s->name) == 0) {
        r->out[j].shape_mismatch = r->out[j].failed = 1;
        r->out[j].ratio = INFINITY;
        snprintf(r->out[j].note, sizeof r->out[j].note, "shape %s where %s gives %s", got,
                 c->op->info.name, want_s);
      }
    s->t = NULL; /* not compared */
  }
  return AAL_OK;
}

/* ================================================================ the harness's case */

/* A tensor decoded to doubles, by the name the case's buffer has. */
typedef struct {
  const char *name;
  size_t n;
  double *val;          /* n values (bits and labels: their integers) */
  kc_result res;        /* outputs: what the comparisons found */
  int given;            /* outputs: the candidate's values are compared */
} ext_tensor;

struct kc_ext {
  const ext_op *op;
  const aal_kcheck_args *a;
  int nin, nout;
  ext_tensor in[8], out[AAL_KCHECK_MAXOUT];
  aal_error *err;
};

static int ext_index(const ext_tensor *ts, int n, const char *name)
{
  for (int i = 0; i < n; i++)
    if (strcmp(ts[i].name, name) == 0)
      return i;
  return -1;
}

static const ext_tensor *ext_find(const ext_tensor *ts, int n, const char *name)
{
  const int i = ext_index(ts, n, name);
  return i >= 0 ? &ts[i] : NULL;
}

/* The case names SGD's in-place buffers "w(first)" in the harness, "w" here. */
static int set_bits(kc_buf *b, const ext_tensor *t, int v)
{
  memset(b->words[v], 0, (b->n + 31) / 32 * sizeof(uint32_t));
  for (size_t i = 0; i < b->n; i++)
    if (t->val[i] != 0)
      b->words[v][i / 32] |= (uint32_t)1 << (i % 32);
  return AAL_OK;
}

static int set_labels(kc_ext *e, kc_case *k, const ext_tensor *t)
{
  k->labels = malloc(t->n * sizeof *k->labels);
  if (k->labels == NULL)
    return aal_fail(e->err, AAL_ENOMEM, "kcheck: %zu labels", t->n);
  for (size_t i = 0; i < t->n; i++)
    k->labels[i] = (int)t->val[i];
  return AAL_OK;
}

/* The op's arguments into the case's fields (scale keeps s in lr, as kernels/check/asa.c). */
static void set_args(const kc_ext *e, kc_case *k)
{
  const aal_kcheck_args *a = e->a;
  const unsigned takes = e->op->args;
  if (takes & A_EPS)
    k->eps = a->eps;
  if (takes & A_S)
    k->lr = a->s;
  if (takes & A_LR) {
    k->lr = a->lr;
    k->momentum = a->momentum;
    k->wd = a->weight_decay;
    k->first = a->first;
  }
}

int kc_ext_inputs(kc_run *run, kc_case *k, int *rc)
{
  kc_ext *e = run->ext;
  if (e == NULL)
    return 0;
  set_args(e, k);
  for (int i = 0; i < k->nbuf && *rc == AAL_OK; i++) {
    kc_buf *b = &k->buf[i];
    const ext_tensor *t = b->role == KC_OUT ? NULL : ext_find(e->in, e->nin, b->name);
    if (b->role == KC_OUT)
      continue;
    if (t == NULL || t->n != b->n) /* the shape functions size both: cannot happen */
      *rc = aal_fail(run->err, AAL_EINVAL, "kcheck: input %s of %s: %zu values for %zu",
                     b->name, e->op->info.name, t ? t->n : 0, b->n);
    else if (b->bits)
      set_bits(b, t, KC_REF);
    else
      memcpy(b->val[KC_REF], t->val, b->n * sizeof(double));
  }
  const ext_tensor *labels = ext_find(e->in, e->nin, "labels");
  if (*rc == AAL_OK && labels != NULL)
    *rc = set_labels(e, k, labels);
  return 1;
}

void kc_ext_outputs(kc_run *run, kc_case *k)
{
  kc_ext *e = run->ext;
  for (int i = 0; i < k->nbuf; i++) {
    kc_buf *b = &k->buf[i];
    const ext_tensor *t = b->role == KC_IN ? NULL : ext_find(e->out, e->nout, b->name);
    if (b->role == KC_IN)
      continue;
    const int given = t != NULL && t->given && t->n == b->n;
    if (b->bits && given)
      set_bits(b, t, KC_GOT);
    else if (b->bits)
      memcpy(b->words[KC_GOT], b->words[KC_REF], (b->n + 31) / 32 * sizeof(uint32_t));
    else
      memcpy(b->val[KC_GOT], given ? t->val : b->val[KC_REF], b->n * sizeof(double));
  }
  const ext_tensor *loss = ext_find(e->out, e->nout, "loss");
  if (loss != NULL)
    k->loss[KC_GOT] = loss->given ? loss->val[0] : k->loss[KC_REF];
}

void kc_ext_collect(kc_run *run, const kc_case *k)
{
  kc_ext *e = run->ext;
  for (int i = 0; i < k->nbuf; i++) {
    const int j = k->buf[i].role == KC_IN ? -1 : ext_index(e->out, e->nout, k->buf[i].name);
    if (j >= 0)
      e->out[j].res = k->buf[i].res;
  }
  const int loss = ext_index(e->out, e->nout, "loss");
  if (loss >= 0)
    e->out[loss].res = k->loss_res;
}

/* ================================================================ decoding, the run */

/* Decodes a tensor to doubles; inputs must be finite (but max pooling's x, whose NaN
 * wins), labels in [0, classes), bits 0 or 1. */
static int decode(ext_ctx *c, const aal_kcheck_tensor *t, int output, ext_tensor *d)
{
  d->name = t->name;
  d->n = ext_count(t);
  d->given = 1;
  if ((d->val = malloc(d->n * sizeof(double))) == NULL)
    return aal_fail(c->err, AAL_ENOMEM, "%s: %zu values", ext_src(t), d->n);
  const int nan_ok = strcmp(c->op->info.name, "maxpool_forward") == 0 ||
                     strcmp(c->op->info.name, "maxpool_backward") == 0;
  for (size_t i = 0; i < d->n; i++) {
    const double v = d->val[i] = element(t, i);
    if (t->dtype == AAL_KCHECK_BOOL && v > 1)
      return aal_fail(c->err, AAL_EINVAL, "%s: %s[%zu] is %g, not 0 or 1", ext_src(t), t->name, i,
                      v);
    if (t->dtype == AAL_KCHECK_I64 && !(v >= 0 && v < c->sh.b))
      return aal_fail(c->err, AAL_EINVAL, "%s: label %zu is %.0f, not in [0, %d)", ext_src(t), i,
                      v, c->sh.b);
    if (!output && !isfinite(v) && !(nan_ok && strcmp(t->name, "x") == 0))
      return aal_fail(c->err, AAL_EINVAL, "%s: %s[%zu] is %g: the reference needs finite "
                      "inputs (but max pooling's x)", ext_src(t), t->name, i, v);
  }
  return AAL_OK;
}

static void ext_free(kc_ext *e)
{
  for (int i = 0; i < e->nin; i++)
    free(e->in[i].val);
  for (int i = 0; i < e->nout; i++)
    free(e->out[i].val);
}

/* Every tensor of the check decoded: inputs, and outputs given with the op's shape (an
 * output left out has no values and is not compared). */
static int decode_all(ext_ctx *c, kc_ext *e)
{
  for (int i = 0; i < c->nslot; i++) {
    const ext_slot *s = &c->slot[i];
    ext_tensor *d = s->output ? &e->out[e->nout++] : &e->in[e->nin++];
    d->name = s->name;
    if (s->t == NULL)
      continue;
    const int rc = decode(c, s->t, s->output, d);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

/* The harness's case for the op (kernels/check/kcheck.c's table). */
static const kc_op *harness_case(const char *name)
{
  for (int i = 0; i < kc_nops; i++)
    if (strcmp(kc_ops[i].name, name) == 0)
      return &kc_ops[i];
  return NULL;
}

/* Runs the case on the reference backend, the candidate's outputs as the tested run's. */
static int run_case(ext_ctx *c, kc_ext *e, aal_kcheck_report *r)
{
  const kc_op *op = harness_case(c->op->info.name);
  aal_backend ref;
  int rc = op ? aal_backend_ref(&ref, c->err)
              : aal_fail(c->err, AAL_EINVAL, "kcheck: no case for %s", c->op->info.name);
  if (rc != AAL_OK)
    return rc;
  const aal_kcheck_args *a = c->a;
  kc_run run = {.be = {&ref, &ref, &ref}, .u = ldexp(1.0, -precision_bits(a->accumulation)),
                .rng = gsl_rng_alloc(gsl_rng_mt19937), .err = c->err, .ext = e};
  kc_row row;
  memset(&row, 0, sizeof row);
  r->u = run.u;
  r->u_storage = ldexp(1.0, -precision_bits(a->storage));
  if (r->u_storage > r->u) { /* outputs rounded once more, to a coarser format */
    row.store_u = r->u_storage;
    row.store_eta = underflow_eta(a->storage);
  }
  if (run.rng == NULL)
    rc = aal_fail(c->err, AAL_ENOMEM, "kcheck: a generator");
  else
    rc = op->run(&run, &c->sh, &row);
  if (rc != AAL_OK && rc != AAL_ENOMEM) { /* the reference refuses what it was given */
    char msg[AAL_ERRMSG_LEN];
    snprintf(msg, sizeof msg, "%s", c->err->msg); /* aal_fail must not read what it writes */
    const ext_slot *first = &c->slot[0];
    rc = aal_fail(c->err, AAL_EINVAL, "%s: %s: the reference refuses these inputs: %s",
                  first->t ? ext_src(first->t) : c->op->info.name, c->op->info.name, msg);
  }
  /* the op's note (ties, windows); the bias statistics are each output's own note */
  if (strncmp(row.note, "bias ", 5) != 0)
    snprintf(r->note, sizeof r->note, "%s", row.note);
  gsl_rng_free(run.rng);
  ref.destroy(&ref);
  return rc;
}

/* ================================================================ the report */

static void report_init(ext_ctx *c, aal_kcheck_report *r)
{
  memset(r, 0, sizeof *r);
  snprintf(r->op, sizeof r->op, "%s", c->op->info.name);
  for (int i = 0; i < c->nslot; i++) {
    const ext_slot *s = &c->slot[i];
    if (!s->output || r->noutputs == AAL_KCHECK_MAXOUT)
      continue;
    aal_kcheck_output *o = &r->out[r->noutputs++];
    snprintf(o->name, sizeof o->name, "%s", s->name);
    snprintf(o->source, sizeof o->source, "%s", s->t ? ext_src(s->t) : s->name);
    o->given = s->t != NULL;
    if (s->t != NULL) {
      o->ndim = s->t->ndim;
      memcpy(o->coord, s->t->shape, sizeof o->coord); /* the shape until the worst is known */
    }
  }
}

/* The worst element's coordinates in the output's own shape (C order). */
static void coordinates(aal_kcheck_output *o)
{
  size_t rest = o->index;
  const size_t *shape = o->coord;
  size_t c[AAL_KCHECK_MAXDIM];
  for (int d = o->ndim - 1; d >= 0; d--) {
    c[d] = shape[d] ? rest % shape[d] : 0;
    rest = shape[d] ? rest / shape[d] : 0;
  }
  memcpy(o->coord, c, (size_t)o->ndim * sizeof c[0]);
}

static void report_fill(const kc_ext *e, aal_kcheck_report *r)
{
  for (int i = 0; i < r->noutputs; i++) {
    aal_kcheck_output *o = &r->out[i];
    const ext_tensor *t = ext_find(e->out, e->nout, o->name);
    if (o->given && !o->shape_mismatch && t != NULL && t->res.checked) {
      const kc_result *res = &t->res;
      o->failed = res->failed;
      o->ratio = res->ratio;
      o->index = res->index;
      o->ref = res->ref;
      o->got = res->got;
      o->err = res->err;
      o->bound = res->bound;
      snprintf(o->note, sizeof o->note, "%s", res->note);
      coordinates(o);
      r->checked++;
      if (!(r->worst_ratio >= o->ratio))
        r->worst_ratio = o->ratio;
    }
    r->failed += o->failed;
    r->shape_mismatches += o->shape_mismatch;
  }
}

void aal_kcheck_args_init(aal_kcheck_args *a)
{
  memset(a, 0, sizeof *a);
  a->storage = a->accumulation = AAL_KCHECK_F32;
  a->stride = a->pad = a->kernel = a->first = AAL_KCHECK_UNSET;
  a->eps = a->s = a->lr = a->momentum = a->weight_decay = NAN;
}

static int unknown_op(const char *name, const char *where, aal_error *err)
{
  char list[1024] = "";
  for (int i = 0; i < aal_kcheck_external_op_count(); i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
             aal_kcheck_external_op_at(i)->name);
  return aal_fail(err, AAL_EINVAL, "%s: unknown op '%s' (ops: %s)", where,
                  name ? name : "(none)", list);
}

int aal_kcheck_external(const aal_kcheck_args *a, const aal_kcheck_tensor *in, int nin,
                        const aal_kcheck_tensor *out, int nout, aal_kcheck_report *r,
                        aal_error *err)
{
  aal_error local;
  if (err == NULL)
    err = &local;
  if (a == NULL || r == NULL)
    return aal_fail(err, AAL_EINVAL, "kcheck: NULL arguments or report");
  memset(r, 0, sizeof *r);
  ext_ctx c = {.op = ext_find_op(a->op), .a = a, .err = err};
  if (c.op == NULL)
    return unknown_op(a->op, a->source ? a->source : "kcheck", err);
  int rc = check_args(&c);
  if (rc == AAL_OK)
    rc = make_slots(&c, in, nin, out, nout);
  if (rc == AAL_OK)
    rc = c.op->shape(&c);
  if (rc == AAL_OK) {
    report_init(&c, r);
    rc = check_shapes(&c, r);
  }
  kc_ext e = {.op = c.op, .a = a, .err = err};
  if (rc == AAL_OK)
    rc = decode_all(&c, &e);
  if (rc == AAL_OK)
    rc = run_case(&c, &e, r);
  if (rc == AAL_OK)
    report_fill(&e, r);
  ext_free(&e);
  return rc;
}

static void print_output(FILE *f, const aal_kcheck_output *o)
{
  char ratio[32], where[128] = "";
  snprintf(ratio, sizeof ratio, isinf(o->ratio) ? "inf" : "%.3g", o->ratio);
  if (!o->given && !o->shape_mismatch) {
    fprintf(f, "%-8s %9s  %-4s  (not given)\n", o->name, "-", "-");
    return;
  }
  if (o->shape_mismatch) {
    fprintf(f, "%-8s %9s  FAIL  %s%s%s\n", o->name, "-", o->note,
            strcmp(o->source, o->name) ? "  " : "", strcmp(o->source, o->name) ? o->source : "");
    return;
  }
  int n = snprintf(where, sizeof where, "%s[", o->name);
  for (int d = 0; d < o->ndim && n > 0 && (size_t)n < sizeof where; d++)
    n += snprintf(where + n, sizeof where - (size_t)n, "%s%zu", d ? "," : "", o->coord[d]);
  if (n > 0 && (size_t)n < sizeof where)
    snprintf(where + n, sizeof where - (size_t)n, "]");
  const int named = strcmp(o->source, o->name) != 0; /* a file, say */
  fprintf(f, "%-8s %9s  %-4s  %s ref=%.9g got=%.9g err=%.3g bound=%.3g%s%s%s%s\n", o->name,
          ratio, o->failed ? "FAIL" : "PASS", where, o->ref, o->got, o->err, o->bound,
          o->note[0] ? "  " : "", o->note, named ? "  " : "", named ? o->source : "");
}

void aal_kcheck_report_print(FILE *f, const aal_kcheck_report *r)
{
  if (f == NULL || r == NULL)
    return;
  fprintf(f, "kcheck %s: arithmetic u = 2^%d, storage u = 2^%d\n", r->op, ilogb(r->u),
          ilogb(r->u_storage));
  fprintf(f, "%-8s %9s  %-4s  %s\n", "output", "err/bound", "", "worst element");
  for (int i = 0; i < r->noutputs; i++)
    print_output(f, &r->out[i]);
  if (r->note[0] != '\0')
    fprintf(f, "note: %s\n", r->note);
  fprintf(f, "kcheck %s: %d output%s checked, %d failed%s, worst err/bound %.3g\n", r->op,
          r->checked, r->checked == 1 ? "" : "s", r->failed,
          r->shape_mismatches ? " (shapes)" : "", r->worst_ratio);
}

/* ================================================================ the op file */

static char *trim(char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

/* One value into the argument key names. */
static int set_arg(aal_kcheck_args *a, const char *key, const char *v, const char *path,
                   int line, aal_error *err)
{
  char *end;
  errno = 0;
  if (strcmp(key, "storage") == 0 || strcmp(key, "accumulation") == 0) {
    const int t = aal_kcheck_dtype_parse(v);
    if (t < 0 || !is_float((aal_kcheck_dtype)t))
      return aal_fail(err, AAL_EFORMAT, "%s:%d: %s '%s' (float64, float32, float16, bfloat16)",
                      path, line, key, v);
    *(key[0] == 's' ? &a->storage : &a->accumulation) = (aal_kcheck_dtype)t;
    return AAL_OK;
  }
  int *ints[4] = {&a->stride, &a->pad, &a->kernel, &a->first};
  double *dbl[5] = {&a->eps, &a->s, &a->lr, &a->momentum, &a->weight_decay};
  for (int i = 0; i < 9; i++) {
    if (strcmp(key, arg_names[i]) != 0)
      continue;
    if (i < 4) {
      const long x = strtol(v, &end, 10);
      if (end == v || *end != '\0' || errno == ERANGE || x < 0 || x > 1 << 30)
        return aal_fail(err, AAL_EFORMAT, "%s:%d: %s '%s' is not a non-negative integer", path,
                        line, key, v);
      *ints[i] = (int)x;
    } else {
      const double x = strtod(v, &end);
      if (end == v || *end != '\0' || !isfinite(x))
        return aal_fail(err, AAL_EFORMAT, "%s:%d: %s '%s' is not a finite number", path, line,
                        key, v);
      *dbl[i - 4] = x;
    }
    return AAL_OK;
  }
  return aal_fail(err, AAL_EFORMAT, "%s:%d: unknown key '%s' (op, storage, accumulation, "
                  "stride, pad, kernel, first, eps, s, lr, momentum, weight_decay)", path, line,
                  key);
}

/* Line `text` (number line) of the op file; seen: the keys given so far, one byte each. */
static int op_line(char *text, int line, aal_kcheck_args *a, char *strings, size_t len,
                   char *seen, const char *path, aal_error *err)
{
  char *s = trim(text);
  if (*s == '\0' || *s == '#')
    return AAL_OK;
  char *eq = strchr(s, '=');
  if (eq == NULL)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: expected 'key = value'", path, line);
  *eq = '\0';
  const char *key = trim(s), *v = trim(eq + 1);
  static const char *const keys[] = {"op", "storage", "accumulation", "stride", "pad", "kernel",
                                     "first", "eps", "s", "lr", "momentum", "weight_decay"};
  for (int i = 0; i < (int)(sizeof keys / sizeof keys[0]); i++)
    if (strcmp(key, keys[i]) == 0 && seen[i]++)
      return aal_fail(err, AAL_EFORMAT, "%s:%d: %s given twice", path, line, key);
  if (strcmp(key, "op") != 0)
    return set_arg(a, key, v, path, line, err);
  if (strlen(v) + 1 > len)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: op name too long", path, line);
  memcpy(strings, v, strlen(v) + 1);
  a->op = strings;
  return AAL_OK;
}

int aal_kcheck_args_read(const char *path, aal_kcheck_args *a, char *strings, size_t len,
                         aal_error *err)
{
  if (path == NULL || a == NULL || strings == NULL)
    return aal_fail(err, AAL_EINVAL, "kcheck: NULL op file, arguments or buffer");
  aal_kcheck_args_init(a);
  a->source = path;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  char text[512], seen[12] = {0};
  int rc = AAL_OK, line = 0;
  while (rc == AAL_OK && fgets(text, sizeof text, f) != NULL) {
    line++;
    if (strchr(text, '\n') == NULL && !feof(f))
      rc = aal_fail(err, AAL_EFORMAT, "%s:%d: line longer than %zu bytes", path, line,
                    sizeof text - 2);
    else
      rc = op_line(text, line, a, strings, len, seen, path, err);
  }
  if (rc == AAL_OK && ferror(f))
    rc = aal_fail(err, AAL_EIO, "%s: read error", path);
  fclose(f);
  if (rc == AAL_OK && !seen[0])
    rc = aal_fail(err, AAL_EFORMAT, "%s: no 'op = NAME' line", path);
  if (rc == AAL_OK && (!seen[1] || !seen[2]))
    rc = aal_fail(err, AAL_EFORMAT, "%s: the candidate's precision must be stated: 'storage = "
                  "...' and 'accumulation = ...' (float64, float32, float16, bfloat16)", path);
  return rc;
}
