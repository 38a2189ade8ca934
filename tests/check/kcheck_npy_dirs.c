/* Writes the directories tests/cli/kcheck_npy.sh runs `aal kcheck --npy` on, without
 * Python: one op's inputs and a candidate's outputs as .npy files and DIR/op.txt.
 * Candidates: cpu32's float32 kernels (conv forward and both backwards, batch norm
 * forward and backward, ReLU with its mask, softmax cross-entropy with labels and the
 * loss, SGD), a naive float32 conv (this file's), and the naive conv storing float16 and
 * bfloat16; wrong ones: an element moved by 2^-10, an off-by-one, a NaN, a flipped mask
 * bit; bad files: a wrong shape,
 * a wrong dtype, a missing input, a truncated file, bfloat16 bits under float32, an
 * unknown op, an unknown key, a missing argument, no output.  Inputs are drawn from
 * the seed $AAL_TEST_SEED (default 20261128), printed.
 *   usage: kcheck_npy_dirs OUT */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "tests/check/halfprec.h"
#include "kernels/backend.h"
#include "sim/train/npy.h"

static const char *g_out;
static gsl_rng *g_rng;
static aal_backend g_be;

#define DIE(...) (fprintf(stderr, "kcheck_npy_dirs: " __VA_ARGS__), fputc('\n', stderr), exit(1))

/* A tensor of the helper: shape and double values. */
typedef struct {
  int ndim;
  size_t shape[4], n;
  double *v;
} ten;

static ten make(int ndim, size_t a, size_t b, size_t c, size_t d)
{
  ten t = {.ndim = ndim, .shape = {a, b, c, d}, .n = 1};
  for (int i = 0; i < ndim; i++)
    t.n *= t.shape[i];
  if ((t.v = calloc(t.n, sizeof(double))) == NULL)
    DIE("out of memory");
  return t;
}

/* uniform on +-[1/1024, 1), rounded to float */
static ten drawn(int ndim, size_t a, size_t b, size_t c, size_t d)
{
  ten t = make(ndim, a, b, c, d);
  for (size_t i = 0; i < t.n; i++) {
    double v;
    do
      v = 2.0 * gsl_rng_uniform(g_rng) - 1.0;
    while (fabs(v) < 1.0 / 1024);
    t.v[i] = (double)(float)v;
  }
  return t;
}

static void dir(const char *name, char *path, size_t len)
{
  snprintf(path, len, "%s/%s", g_out, name);
  if (mkdir(path, 0755) != 0)
    DIE("cannot make %s", path);
}

static void op_file(const char *d, const char *text)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/op.txt", d);
  FILE *f = fopen(path, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
    DIE("cannot write %s", path);
}

/* t as DIR/NAME.npy in dtype (values converted: float, float16 or bfloat16 bits, int64
 * labels, bool). */
static void save(const char *d, const char *name, const ten *t, aal_npy_dtype dtype)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.npy", d, name);
  void *data = malloc(t->n * 8 + 1);
  if (data == NULL)
    DIE("out of memory");
  for (size_t i = 0; i < t->n; i++)
    switch (dtype) {
    case AAL_NPY_F64: ((double *)data)[i] = t->v[i]; break;
    case AAL_NPY_F32: ((float *)data)[i] = (float)t->v[i]; break;
    case AAL_NPY_F16: ((uint16_t *)data)[i] = to_half(t->v[i]); break;
    case AAL_NPY_U16: ((uint16_t *)data)[i] = to_bf16(t->v[i]); break;
    case AAL_NPY_I64: ((int64_t *)data)[i] = (int64_t)t->v[i]; break;
    case AAL_NPY_U8:
    case AAL_NPY_BOOL: ((uint8_t *)data)[i] = (uint8_t)t->v[i]; break;
    }
  aal_error err;
  if (aal_npy_write(path, dtype, t->ndim, t->shape, data, &err) != AAL_OK)
    DIE("%s", err.msg);
  free(data);
}

/* ---- cpu32 runs: buffers in, op, buffers out */

static void *up(const ten *t)
{
  void *b;
  aal_error err;
  if (g_be.alloc(&g_be, t->n, &b, &err) != AAL_OK || g_be.upload(&g_be, b, t->v, t->n, &err) != AAL_OK)
    DIE("%s", err.msg);
  return b;
}

static void down(ten *t, void *b)
{
  aal_error err;
  if (g_be.download(&g_be, t->v, b, t->n, &err) != AAL_OK)
    DIE("%s", err.msg);
  g_be.release(&g_be, b);
}

static void ok(int rc, const aal_error *err)
{
  if (rc != AAL_OK)
    DIE("cpu32: %s", err->msg);
}

static aal_conv_shape conv_shape(const ten *x, const ten *w, int stride, int pad)
{
  aal_conv_shape cs = {.n = (int)x->shape[0], .c = (int)x->shape[1], .h = (int)x->shape[2],
                       .w = (int)x->shape[3], .k = (int)w->shape[0], .r = (int)w->shape[2],
                       .s = (int)w->shape[3], .stride = stride, .pad = pad};
  if (aal_conv_shape_init(&cs, NULL) != AAL_OK)
    DIE("conv shape");
  return cs;
}

/* The naive conv: float products and sums (shift 1: the input column one to the right),
 * stored rounded to float, float16 or bfloat16. */
static void naive_conv(const aal_conv_shape *cs, const ten *x, const ten *w, ten *y, int shift,
                       aal_npy_dtype store)
{
  for (int n = 0; n < cs->n; n++)
    for (int k = 0; k < cs->k; k++)
      for (int i = 0; i < cs->p * cs->q; i++) {
        const int oh = i / cs->q, ow = i % cs->q;
        float sum = 0.0f;
        for (int c = 0; c < cs->c; c++)
          for (int r = 0; r < cs->r; r++)
            for (int s = 0; s < cs->s; s++) {
              const int ih = oh * cs->stride - cs->pad + r, iw = ow * cs->stride - cs->pad + s + shift;
              if (ih >= 0 && ih < cs->h && iw >= 0 && iw < cs->w)
                sum += (float)w->v[((k * cs->c + c) * cs->r + r) * cs->s + s] *
                       (float)x->v[((n * cs->c + c) * cs->h + ih) * cs->w + iw];
            }
        y->v[((size_t)(n * cs->k + k) * cs->p + oh) * cs->q + ow] =
            store == AAL_NPY_F16 ? half_value(to_half(sum))
            : store == AAL_NPY_U16 ? bf16_value(to_bf16(sum)) : sum;
      }
}

/* ---- the directories */

static const char conv_op[] =
    "# a conv2d forward from cpu32\nop = conv_forward\nstorage = float32\n"
    "accumulation = float32\nstride = 1\npad = 1\n";

/* conv_forward on x [2,3,6,5], w [4,3,3,3]: cpu32's y, the naive one, and the wrong ones
 * and bad files made from them. */
static void conv_dirs(void)
{
  ten x = drawn(4, 2, 3, 6, 5), w = drawn(4, 4, 3, 3, 3), y = make(4, 2, 4, 6, 5);
  const aal_conv_shape cs = conv_shape(&x, &w, 1, 1);
  aal_error err;
  void *bx = up(&x), *bw = up(&w), *by = up(&y);
  ok(g_be.conv_forward(&g_be, &cs, bx, bw, by, &err), &err);
  down(&y, by);
  g_be.release(&g_be, bx);
  g_be.release(&g_be, bw);
  static const char *const names[] = {"conv_cpu32", "conv_naive", "conv_perturbed",
                                      "conv_offbyone", "conv_nan", "bad_shape", "bad_dtype",
                                      "missing", "truncated", "u2_float32", "bad_op",
                                      "bad_key", "missing_arg", "no_output"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char d[4200];
    dir(names[i], d, sizeof d);
    const char *n = names[i];
    ten yy = make(4, 2, 4, 6, 5);
    memcpy(yy.v, y.v, y.n * sizeof(double));
    if (!strcmp(n, "conv_naive") || !strcmp(n, "conv_offbyone"))
      naive_conv(&cs, &x, &w, &yy, !strcmp(n, "conv_offbyone"), AAL_NPY_F32);
    if (!strcmp(n, "conv_perturbed"))
      yy.v[17] = (double)(float)(yy.v[17] + 0x1p-10); /* ~50 bounds: |terms| sum to ~7 */
    if (!strcmp(n, "conv_nan"))
      yy.v[5] = NAN;
    if (!strcmp(n, "bad_shape"))
      yy.shape[3] = 4; /* (2, 4, 6, 4): the first 192 values */
    op_file(d, !strcmp(n, "bad_op") ? "op = conv_sideways\nstorage = float32\naccumulation = float32\n"
               : !strcmp(n, "bad_key") ? "op = conv_forward\nstorage = float32\nstrides = 1\n"
               : !strcmp(n, "missing_arg") ? "op = conv_forward\nstorage = float32\naccumulation = float32\nstride = 1\n"
               : conv_op);
    save(d, "x", &x, !strcmp(n, "bad_dtype") ? AAL_NPY_F64 : !strcmp(n, "u2_float32") ? AAL_NPY_U16 : AAL_NPY_F32);
    if (strcmp(n, "missing") != 0)
      save(d, "w", &w, AAL_NPY_F32);
    if (strcmp(n, "no_output") != 0)
      save(d, "y", &yy, AAL_NPY_F32);
    if (!strcmp(n, "truncated")) {
      char path[4300];
      snprintf(path, sizeof path, "%s/y.npy", d);
      struct stat st;
      if (stat(path, &st) != 0 || truncate(path, st.st_size - 7) != 0)
        DIE("cannot truncate %s", path);
    }
    free(yy.v);
  }
  free(x.v), free(w.v), free(y.v);
}

/* The naive conv storing float16 and bfloat16 (inputs rounded to them first). */
static void conv_half_dirs(void)
{
  const aal_npy_dtype types[2] = {AAL_NPY_F16, AAL_NPY_U16};
  const char *names[2] = {"conv_float16", "conv_bfloat16"};
  for (int i = 0; i < 2; i++) {
    ten x = drawn(4, 2, 16, 6, 6), w = drawn(4, 4, 16, 3, 3), y = make(4, 2, 4, 6, 6);
    for (size_t j = 0; j < x.n; j++)
      x.v[j] = i ? bf16_value(to_bf16(x.v[j])) : half_value(to_half(x.v[j]));
    for (size_t j = 0; j < w.n; j++)
      w.v[j] = i ? bf16_value(to_bf16(w.v[j])) : half_value(to_half(w.v[j]));
    const aal_conv_shape cs = conv_shape(&x, &w, 1, 1);
    naive_conv(&cs, &x, &w, &y, 0, types[i]);
    char d[4200], text[256];
    dir(names[i], d, sizeof d);
    snprintf(text, sizeof text, "op = conv_forward\nstorage = %s\naccumulation = float32\n"
             "stride = 1\npad = 1\n", i ? "bfloat16" : "float16");
    op_file(d, text);
    save(d, "x", &x, types[i]);
    save(d, "w", &w, types[i]);
    save(d, "y", &y, types[i]);
    free(x.v), free(w.v), free(y.v);
  }
}

/* conv's two backwards from cpu32: stride 2, pad 1. */
static void conv_backward_dirs(void)
{
  ten x = drawn(4, 2, 3, 7, 6), w = drawn(4, 4, 3, 3, 3);
  const aal_conv_shape cs = conv_shape(&x, &w, 2, 1);
  ten dy = drawn(4, 2, 4, (size_t)cs.p, (size_t)cs.q), dx = make(4, 2, 3, 7, 6),
      dw = make(4, 4, 3, 3, 3);
  aal_error err;
  void *bx = up(&x), *bw = up(&w), *bdy = up(&dy), *bdx = up(&dx), *bdw = up(&dw);
  ok(g_be.conv_backward_data(&g_be, &cs, bdy, bw, bdx, &err), &err);
  ok(g_be.conv_backward_filter(&g_be, &cs, bx, bdy, bdw, &err), &err);
  down(&dx, bdx), down(&dw, bdw);
  g_be.release(&g_be, bx), g_be.release(&g_be, bw), g_be.release(&g_be, bdy);
  char d[4200];
  dir("conv_backward_data_cpu32", d, sizeof d);
  op_file(d, "op = conv_backward_data\nstorage = float32\naccumulation = float32\nstride = 2\npad = 1\n");
  save(d, "dy", &dy, AAL_NPY_F32), save(d, "w", &w, AAL_NPY_F32), save(d, "dx", &dx, AAL_NPY_F32);
  dir("conv_backward_filter_cpu32", d, sizeof d);
  op_file(d, "op = conv_backward_filter\nstorage = float32\naccumulation = float32\nstride = 2\npad = 1\n");
  save(d, "x", &x, AAL_NPY_F32), save(d, "dy", &dy, AAL_NPY_F32), save(d, "dw", &dw, AAL_NPY_F32);
  free(x.v), free(w.v), free(dy.v), free(dx.v), free(dw.v);
}

/* Batch norm forward (y, mean, invstd; no biased variance, as PyTorch gives none) and
 * backward from its saved statistics, cpu32, x [4, 3, 5, 5]. */
static void bn_dirs(void)
{
  ten x = drawn(4, 4, 3, 5, 5), g = drawn(1, 3, 0, 0, 0), b = drawn(1, 3, 0, 0, 0);
  ten y = make(4, 4, 3, 5, 5), m = make(1, 3, 0, 0, 0), is = make(1, 3, 0, 0, 0),
      var = make(1, 3, 0, 0, 0), dy = drawn(4, 4, 3, 5, 5), dx = make(4, 4, 3, 5, 5),
      dg = make(1, 3, 0, 0, 0), db = make(1, 3, 0, 0, 0);
  aal_error err;
  void *bx = up(&x), *bg = up(&g), *bb = up(&b), *byy = up(&y), *bm = up(&m), *bi = up(&is),
       *bv = up(&var), *bdy = up(&dy), *bdx = up(&dx), *bdg = up(&dg), *bdb = up(&db);
  ok(g_be.bn_forward(&g_be, 4, 3, 25, bx, bg, bb, 1e-5, byy, bm, bi, bv, &err), &err);
  ok(g_be.bn_backward(&g_be, 4, 3, 25, bdy, bx, bg, bm, bi, bdx, bdg, bdb, &err), &err);
  down(&y, byy), down(&m, bm), down(&is, bi), down(&var, bv), down(&dx, bdx), down(&dg, bdg);
  down(&db, bdb);
  g_be.release(&g_be, bx), g_be.release(&g_be, bg), g_be.release(&g_be, bb);
  g_be.release(&g_be, bdy);
  char d[4200];
  dir("bn_forward_cpu32", d, sizeof d);
  op_file(d, "op = bn_forward\nstorage = float32\naccumulation = float32\neps = 1e-5\n");
  save(d, "x", &x, AAL_NPY_F32), save(d, "gamma", &g, AAL_NPY_F32), save(d, "beta", &b, AAL_NPY_F32);
  save(d, "y", &y, AAL_NPY_F32), save(d, "mean", &m, AAL_NPY_F32), save(d, "invstd", &is, AAL_NPY_F32);
  dir("bn_backward_cpu32", d, sizeof d);
  op_file(d, "op = bn_backward\nstorage = float32\naccumulation = float32\n");
  save(d, "dy", &dy, AAL_NPY_F32), save(d, "x", &x, AAL_NPY_F32), save(d, "gamma", &g, AAL_NPY_F32);
  save(d, "mean", &m, AAL_NPY_F32), save(d, "invstd", &is, AAL_NPY_F32);
  save(d, "dx", &dx, AAL_NPY_F32), save(d, "dgamma", &dg, AAL_NPY_F32), save(d, "dbeta", &db, AAL_NPY_F32);
  ten *all[] = {&x, &g, &b, &y, &m, &is, &var, &dy, &dx, &dg, &db};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    free(all[i]->v);
}

/* ReLU with its mask as bool; then the same with one mask bit flipped. */
static void relu_dirs(void)
{
  ten x = drawn(2, 6, 50, 0, 0), y = make(2, 6, 50, 0, 0), mask = make(2, 6, 50, 0, 0);
  void *bx = up(&x), *by = up(&y), *bm;
  aal_error err;
  uint32_t words[16];
  if (g_be.alloc_bits(&g_be, 300, &bm, &err) != AAL_OK)
    DIE("%s", err.msg);
  ok(g_be.relu_forward(&g_be, 300, bx, by, bm, &err), &err);
  ok(g_be.download_bits(&g_be, words, bm, 300, &err), &err);
  for (size_t i = 0; i < 300; i++)
    mask.v[i] = (words[i / 32] >> (i % 32)) & 1u;
  down(&y, by);
  g_be.release(&g_be, bx), g_be.release(&g_be, bm);
  for (int wrong = 0; wrong < 2; wrong++) {
    char d[4200];
    dir(wrong ? "relu_wrong_bit" : "relu_cpu32", d, sizeof d);
    op_file(d, "op = relu_forward\nstorage = float32\naccumulation = float32\n");
    if (wrong)
      mask.v[123] = 1 - mask.v[123];
    save(d, "x", &x, AAL_NPY_F32), save(d, "y", &y, AAL_NPY_F32), save(d, "mask", &mask, AAL_NPY_BOOL);
  }
  free(x.v), free(y.v), free(mask.v);
}

/* Softmax cross-entropy: logits [5, 7], int64 labels, prob and the loss (a scalar). */
static void xent_dir(void)
{
  ten z = drawn(2, 5, 7, 0, 0), lab = make(1, 5, 0, 0, 0), p = make(2, 5, 7, 0, 0);
  ten loss = make(0, 0, 0, 0, 0);
  int labels[5];
  for (int i = 0; i < 5; i++)
    lab.v[i] = labels[i] = (int)gsl_rng_uniform_int(g_rng, 7);
  void *bz = up(&z), *bp = up(&p);
  aal_error err;
  double l;
  ok(g_be.xent_forward(&g_be, 5, 7, bz, labels, &l, bp, &err), &err);
  loss.v[0] = (float)l;
  down(&p, bp);
  g_be.release(&g_be, bz);
  char d[4200];
  dir("xent_cpu32", d, sizeof d);
  op_file(d, "op = xent_forward\nstorage = float32\naccumulation = float32\n");
  save(d, "logits", &z, AAL_NPY_F32), save(d, "labels", &lab, AAL_NPY_I64);
  save(d, "prob", &p, AAL_NPY_F32), save(d, "loss", &loss, AAL_NPY_F32);
  free(z.v), free(lab.v), free(p.v), free(loss.v);
}

/* SGD with momentum, a later step: w_new and buf_new. */
static void sgd_dir(void)
{
  ten w = drawn(2, 8, 9, 0, 0), g = drawn(2, 8, 9, 0, 0), buf = drawn(2, 8, 9, 0, 0);
  ten w2 = make(2, 8, 9, 0, 0), buf2 = make(2, 8, 9, 0, 0);
  void *bw = up(&w), *bg = up(&g), *bb = up(&buf);
  aal_error err;
  ok(g_be.sgd_update(&g_be, 72, bw, bg, bb, 0.05, 0.9, 1e-4, 0, &err), &err);
  down(&w2, bw), down(&buf2, bb);
  g_be.release(&g_be, bg);
  char d[4200];
  dir("sgd_cpu32", d, sizeof d);
  op_file(d, "op = sgd_update\nstorage = float32\naccumulation = float32\nlr = 0.05\n"
             "momentum = 0.9\nweight_decay = 1e-4\nfirst = 0\n");
  save(d, "w", &w, AAL_NPY_F32), save(d, "g", &g, AAL_NPY_F32), save(d, "buf", &buf, AAL_NPY_F32);
  save(d, "w_new", &w2, AAL_NPY_F32), save(d, "buf_new", &buf2, AAL_NPY_F32);
  free(w.v), free(g.v), free(buf.v), free(w2.v), free(buf2.v);
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: kcheck_npy_dirs OUT\n");
    return 2;
  }
  g_out = argv[1];
  g_rng = gsl_rng_alloc(gsl_rng_mt19937);
  aal_error err;
  if (g_rng == NULL || aal_backend_cpu32(&g_be, &err) != AAL_OK)
    DIE("setup");
  gsl_rng_set(g_rng, aal_test_seed());
  conv_dirs();
  conv_half_dirs();
  conv_backward_dirs();
  bn_dirs();
  relu_dirs();
  xent_dir();
  sgd_dir();
  g_be.destroy(&g_be);
  gsl_rng_free(g_rng);
  return 0;
}
