/* The cpu32 backend's thread team (sim/core/team.h, one per backend):
 *
 *  a. aal_team_par_for runs every item of [0, items) exactly once, for item counts
 *     below, at and above the chunk count, with and without a team;
 *  b. every threaded op (conv in its three directions, bn forward/backward, the fused
 *     bn_relu forward/backward, relu forward/backward, add, sgd_update first and later,
 *     asa_input, sign_pack, sign_unpack; the Transformer ops: GELU, layer norm, softmax,
 *     attention) gives bit-identical outputs (memcmp) on a
 *     backend whose team has AAL_TEAM_MAX_THREADS threads and on one forced to a single
 *     thread (aal_backend_cpu32_threads), on random inputs above the size cutoff
 *     (AAL_TEAM_PAR_MIN_BYTES) with element counts that are not multiples of 32 (mask
 *     words cut by the chunks) and odd channel counts; the outputs of the two runs are
 *     poisoned with different bytes first, so an element either run leaves unwritten
 *     shows as a difference;
 *  c. a copy of the table shares the team (usable until the original is destroyed);
 *     aal_backend_cpu32_threads refuses other tables and bad counts.
 *
 * The seed is $AAL_TEST_SEED (default 20261128), printed. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/aal_check.h"
#include "kernels/cpu/cpu32.h"

static unsigned long g_seed;

/* A small deterministic generator: uniform in [-1, 1), with about 1 in 16 values an
 * exact 0 (the ReLU and sign masks test x > 0). */
static float next_value(unsigned long *z)
{
  *z = *z * 6364136223846793005ul + 1442695040888963407ul;
  if ((*z >> 60) == 0)
    return 0.0f;
  return (float)((double)(*z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint32_t next_word(unsigned long *z)
{
  *z = *z * 6364136223846793005ul + 1442695040888963407ul;
  return (uint32_t)(*z >> 32);
}

static size_t next_below(unsigned long *z, size_t n)
{
  *z = *z * 6364136223846793005ul + 1442695040888963407ul;
  return (size_t)((*z >> 33) % n);
}

static void *xmalloc(size_t bytes)
{
  void *p = malloc(bytes);
  ck_assert_ptr_nonnull(p);
  return p;
}

static float *random_floats(size_t n, unsigned long *z)
{
  float *f = xmalloc(n * sizeof *f);
  for (size_t i = 0; i < n; i++)
    f[i] = next_value(z);
  return f;
}

/* Positive values in [0.5, 1.5) (gamma, invstd). */
static float *positive_floats(size_t n, unsigned long *z)
{
  float *f = random_floats(n, z);
  for (size_t i = 0; i < n; i++)
    f[i] = 1.0f + 0.5f * f[i];
  return f;
}

static size_t words(size_t n)
{
  return (n + 31) / 32;
}

/* Two backends: `many` with AAL_TEAM_MAX_THREADS threads, `one` with one. */
typedef struct {
  aal_backend many, one;
} pair;

static pair pair_open(void)
{
  pair p;
  aal_error err;
  ck_assert_msg(aal_backend_cpu32(&p.many, &err) == AAL_OK, "%s", err.msg);
  ck_assert_msg(aal_backend_cpu32(&p.one, &err) == AAL_OK, "%s", err.msg);
  ck_assert_msg(aal_backend_cpu32_threads(&p.many, AAL_TEAM_MAX_THREADS, &err) == AAL_OK,
                "%s", err.msg);
  ck_assert_msg(aal_backend_cpu32_threads(&p.one, 1, &err) == AAL_OK, "%s", err.msg);
  /* thread creation does not fail here: a smaller team would make the test vacuous */
  ck_assert_uint_eq(aal_backend_cpu32_thread_count(&p.many), AAL_TEAM_MAX_THREADS);
  ck_assert_uint_eq(aal_backend_cpu32_thread_count(&p.one), 1);
  return p;
}

static void pair_close(pair *p)
{
  p->many.destroy(&p->many);
  p->one.destroy(&p->one);
}

/* Output buffers of one op, run on `many` into a (poisoned 0xA5) and on `one` into b
 * (poisoned 0x5A). */
#define MAX_OUT 5
typedef struct {
  size_t count;
  size_t bytes[MAX_OUT];
  void *a[MAX_OUT], *b[MAX_OUT];
} outputs;

static void out_add(outputs *o, size_t bytes)
{
  ck_assert(o->count < MAX_OUT);
  o->bytes[o->count] = bytes;
  o->a[o->count] = xmalloc(bytes);
  o->b[o->count] = xmalloc(bytes);
  memset(o->a[o->count], 0xA5, bytes);
  memset(o->b[o->count], 0x5A, bytes);
  o->count++;
}

static void out_check_free(outputs *o, const char *op)
{
  for (size_t k = 0; k < o->count; k++) {
    ck_assert_msg(memcmp(o->a[k], o->b[k], o->bytes[k]) == 0,
                  "%s: output %zu differs between %d threads and 1 (seed %lu)", op, k,
                  AAL_TEAM_MAX_THREADS, g_seed);
    free(o->a[k]);
    free(o->b[k]);
  }
  memset(o, 0, sizeof *o);
}

static void ok(int rc, const aal_error *err)
{
  ck_assert_msg(rc == AAL_OK, "%s", err->msg);
}

/* ------------------------------------------------------------------ a. par_for */

typedef struct {
  unsigned *seen;
} count_ctx;

static void count_items(const void *arg, size_t lo, size_t hi)
{
  const count_ctx *c = arg;
  for (size_t i = lo; i < hi; i++)
    c->seen[i]++;  /* each item in one chunk: no two threads write one counter */
}

START_TEST(test_par_for_covers_items)
{
  aal_team tm;
  aal_team_start(&tm, AAL_TEAM_MAX_THREADS);
  ck_assert_uint_eq(aal_team_size(&tm), AAL_TEAM_MAX_THREADS);
  ck_assert_uint_eq(aal_team_size(NULL), 1);
  const size_t counts[] = {1, 2, 3, 15, 16, 17, 100, 4099};
  for (size_t t = 0; t < 2; t++)
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
      const size_t items = counts[k];
      unsigned *seen = calloc(items, sizeof *seen);
      ck_assert_ptr_nonnull(seen);
      const count_ctx c = {seen};
      /* a large byte count, so that the team is used */
      for (int rep = 0; rep < 3; rep++)
        aal_team_par_for(t == 0 ? &tm : NULL, count_items, &c, items, (size_t)1 << 30);
      for (size_t i = 0; i < items; i++)
        ck_assert_msg(seen[i] == 3, "item %zu of %zu run %u times in 3 loops", i, items,
                      seen[i]);
      free(seen);
    }
  aal_team_stop(&tm);
}
END_TEST

/* ------------------------------------------------------------------ b. ops */

/* bn sizes: an odd channel count and hw not a multiple of 32, x above the cutoff. */
typedef struct {
  int n, c, hw;
  size_t total;
} bn_dims;

static bn_dims bn_random(unsigned long *z)
{
  bn_dims d;
  d.n = 2 + (int)next_below(z, 3);
  d.c = 2 * (int)next_below(z, 20) + 41;
  d.hw = 4 * (int)next_below(z, 40) + 401;
  d.total = (size_t)d.n * d.c * d.hw;
  ck_assert(d.total * sizeof(float) >= AAL_TEAM_PAR_MIN_BYTES);
  return d;
}

START_TEST(test_bn_ops_thread_independent)
{
  unsigned long z = g_seed;
  pair p = pair_open();
  aal_error err;
  for (int round = 0; round < 3; round++) {
    const bn_dims d = bn_random(&z);
    const size_t c = (size_t)d.c, fb = d.total * sizeof(float), cb = c * sizeof(float);
    float *x = random_floats(d.total, &z), *dy = random_floats(d.total, &z);
    float *gamma = positive_floats(c, &z), *beta = random_floats(c, &z);
    /* backward inputs as a forward makes them (any values would do: same on both) */
    float *mean = random_floats(c, &z), *invstd = positive_floats(c, &z);
    uint32_t *mask = xmalloc(words(d.total) * sizeof *mask);
    for (size_t j = 0; j < words(d.total); j++)
      mask[j] = next_word(&z);
    outputs o = {0};

    /* bn_forward: y, mean, invstd, var */
    out_add(&o, fb);
    out_add(&o, cb);
    out_add(&o, cb);
    out_add(&o, cb);
    ok(p.many.bn_forward(&p.many, d.n, d.c, d.hw, x, gamma, beta, 1e-5, o.a[0], o.a[1],
                         o.a[2], o.a[3], &err), &err);
    ok(p.one.bn_forward(&p.one, d.n, d.c, d.hw, x, gamma, beta, 1e-5, o.b[0], o.b[1],
                        o.b[2], o.b[3], &err), &err);
    out_check_free(&o, "bn_forward");

    /* bn_backward: dx, dgamma, dbeta */
    out_add(&o, fb);
    out_add(&o, cb);
    out_add(&o, cb);
    ok(p.many.bn_backward(&p.many, d.n, d.c, d.hw, dy, x, gamma, mean, invstd, o.a[0],
                          o.a[1], o.a[2], &err), &err);
    ok(p.one.bn_backward(&p.one, d.n, d.c, d.hw, dy, x, gamma, mean, invstd, o.b[0],
                         o.b[1], o.b[2], &err), &err);
    out_check_free(&o, "bn_backward");

    /* bn_relu_forward: y, mask, mean, invstd, var */
    out_add(&o, fb);
    out_add(&o, words(d.total) * sizeof(uint32_t));
    out_add(&o, cb);
    out_add(&o, cb);
    out_add(&o, cb);
    ok(p.many.bn_relu_forward(&p.many, d.n, d.c, d.hw, x, gamma, beta, 1e-5, o.a[0], o.a[1],
                              o.a[2], o.a[3], o.a[4], &err), &err);
    ok(p.one.bn_relu_forward(&p.one, d.n, d.c, d.hw, x, gamma, beta, 1e-5, o.b[0], o.b[1],
                             o.b[2], o.b[3], o.b[4], &err), &err);
    out_check_free(&o, "bn_relu_forward");

    /* bn_relu_backward: dx, dgamma, dbeta */
    out_add(&o, fb);
    out_add(&o, cb);
    out_add(&o, cb);
    ok(p.many.bn_relu_backward(&p.many, d.n, d.c, d.hw, dy, mask, x, gamma, mean, invstd,
                               o.a[0], o.a[1], o.a[2], &err), &err);
    ok(p.one.bn_relu_backward(&p.one, d.n, d.c, d.hw, dy, mask, x, gamma, mean, invstd,
                              o.b[0], o.b[1], o.b[2], &err), &err);
    out_check_free(&o, "bn_relu_backward");

    free(x);
    free(dy);
    free(gamma);
    free(beta);
    free(mean);
    free(invstd);
    free(mask);
  }
  pair_close(&p);
}
END_TEST

START_TEST(test_elementwise_ops_thread_independent)
{
  unsigned long z = g_seed + 1;
  pair p = pair_open();
  aal_error err;
  for (int round = 0; round < 3; round++) {
    /* not a multiple of 32: the last mask word is partial */
    const size_t n = 40000 + 32 * next_below(&z, 300) + 1 + next_below(&z, 31);
    const size_t fb = n * sizeof(float), wb = words(n) * sizeof(uint32_t);
    float *x = random_floats(n, &z), *y = random_floats(n, &z), *g = random_floats(n, &z);
    float *w0 = random_floats(n, &z), *buf0 = random_floats(n, &z);
    uint32_t *mask = xmalloc(wb);
    for (size_t j = 0; j < words(n); j++)
      mask[j] = next_word(&z);
    outputs o = {0};

    out_add(&o, fb);
    out_add(&o, wb);
    ok(p.many.relu_forward(&p.many, n, x, o.a[0], o.a[1], &err), &err);
    ok(p.one.relu_forward(&p.one, n, x, o.b[0], o.b[1], &err), &err);
    out_check_free(&o, "relu_forward");

    out_add(&o, fb);
    ok(p.many.relu_backward(&p.many, n, y, mask, o.a[0], &err), &err);
    ok(p.one.relu_backward(&p.one, n, y, mask, o.b[0], &err), &err);
    out_check_free(&o, "relu_backward");

    out_add(&o, fb);
    ok(p.many.add(&p.many, n, x, y, o.a[0], &err), &err);
    ok(p.one.add(&p.one, n, x, y, o.b[0], &err), &err);
    out_check_free(&o, "add");

    out_add(&o, fb);
    out_add(&o, wb);
    ok(p.many.asa_input(&p.many, n, x, 0.01, o.a[0], o.a[1], &err), &err);
    ok(p.one.asa_input(&p.one, n, x, 0.01, o.b[0], o.b[1], &err), &err);
    out_check_free(&o, "asa_input");

    out_add(&o, wb);
    ok(p.many.sign_pack(&p.many, n, x, o.a[0], &err), &err);
    ok(p.one.sign_pack(&p.one, n, x, o.b[0], &err), &err);
    out_check_free(&o, "sign_pack");

    out_add(&o, fb);
    ok(p.many.sign_unpack(&p.many, n, mask, 0.01, o.a[0], &err), &err);
    ok(p.one.sign_unpack(&p.one, n, mask, 0.01, o.b[0], &err), &err);
    out_check_free(&o, "sign_unpack");

    /* sgd_update updates w and buf in place: both start from copies of w0, buf0
     * (buf0 only matters when not first) */
    for (int first = 1; first >= 0; first--) {
      out_add(&o, fb);
      out_add(&o, fb);
      for (int k = 0; k < 2; k++) {
        memcpy(o.a[k], k == 0 ? w0 : buf0, fb);
        memcpy(o.b[k], k == 0 ? w0 : buf0, fb);
      }
      if (first) {  /* buf is written before it is read: poison it */
        memset(o.a[1], 0xA5, fb);
        memset(o.b[1], 0x5A, fb);
      }
      ok(p.many.sgd_update(&p.many, n, o.a[0], g, o.a[1], 0.1, 0.9, 5e-4, first, &err),
         &err);
      ok(p.one.sgd_update(&p.one, n, o.b[0], g, o.b[1], 0.1, 0.9, 5e-4, first, &err), &err);
      out_check_free(&o, first ? "sgd_update (first)" : "sgd_update");
    }

    free(x);
    free(y);
    free(g);
    free(w0);
    free(buf0);
    free(mask);
  }
  pair_close(&p);
}
END_TEST

START_TEST(test_conv_thread_independent)
{
  unsigned long z = g_seed + 2;
  pair p = pair_open();
  aal_error err;
  /* col [C*R*S, m*P*Q] above the cutoff; several images per chunk at P*Q < 1024 */
  aal_conv_shape cs = {.n = 3 + (int)next_below(&z, 3), .c = 5 + (int)next_below(&z, 4),
                       .h = 17 + (int)next_below(&z, 8), .w = 19 + (int)next_below(&z, 8),
                       .k = 6 + (int)next_below(&z, 4), .r = 3, .s = 3,
                       .stride = 1 + (int)next_below(&z, 2), .pad = 1};
  ok(aal_conv_shape_init(&cs, &err), &err);
  const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * cs.c * cs.r * cs.s,
               ny = (size_t)cs.n * cs.k * cs.p * cs.q;
  float *x = random_floats(nx, &z), *w = random_floats(nw, &z), *dy = random_floats(ny, &z);
  outputs o = {0};

  out_add(&o, ny * sizeof(float));
  ok(p.many.conv_forward(&p.many, &cs, x, w, o.a[0], &err), &err);
  ok(p.one.conv_forward(&p.one, &cs, x, w, o.b[0], &err), &err);
  out_check_free(&o, "conv_forward");

  out_add(&o, nx * sizeof(float));
  ok(p.many.conv_backward_data(&p.many, &cs, dy, w, o.a[0], &err), &err);
  ok(p.one.conv_backward_data(&p.one, &cs, dy, w, o.b[0], &err), &err);
  out_check_free(&o, "conv_backward_data");

  out_add(&o, nw * sizeof(float));
  ok(p.many.conv_backward_filter(&p.many, &cs, x, dy, o.a[0], &err), &err);
  ok(p.one.conv_backward_filter(&p.one, &cs, x, dy, o.b[0], &err), &err);
  out_check_free(&o, "conv_backward_filter");

  free(x);
  free(w);
  free(dy);
  pair_close(&p);
}
END_TEST

/* ------------------------------------------------------------------ c. the table */

/* The Transformer ops on the team (issue 17): GELU (ranges of elements), layer norm
 * (rows forward and dx, columns for dgamma and dbeta), softmax (rows), and attention's
 * softmax rows (its products are OpenBLAS's, at the same thread count on both sides):
 * above the size cutoff (m = 301 rows of d = 193 floats: 232 KB), odd sizes. */
START_TEST(test_transformer_ops_thread_independent)
{
  unsigned long z = g_seed + 3;
  pair p = pair_open();
  aal_error err;
  const int m = 301, d = 193;
  const size_t n = (size_t)m * d, fb = n * sizeof(float);
  float *x = random_floats(n, &z), *dy = random_floats(n, &z);
  float *gamma = positive_floats((size_t)d, &z), *beta = random_floats((size_t)d, &z);
  float *mean = random_floats((size_t)m, &z), *invstd = positive_floats((size_t)m, &z);
  outputs o = {0};

  out_add(&o, fb);
  ok(p.many.gelu_forward(&p.many, n, x, o.a[0], &err), &err);
  ok(p.one.gelu_forward(&p.one, n, x, o.b[0], &err), &err);
  out_check_free(&o, "gelu_forward");
  out_add(&o, fb);
  ok(p.many.gelu_backward(&p.many, n, dy, x, o.a[0], &err), &err);
  ok(p.one.gelu_backward(&p.one, n, dy, x, o.b[0], &err), &err);
  out_check_free(&o, "gelu_backward");

  out_add(&o, fb);
  out_add(&o, (size_t)m * sizeof(float));
  out_add(&o, (size_t)m * sizeof(float));
  ok(p.many.layernorm_forward(&p.many, m, d, x, gamma, beta, 1e-5, o.a[0], o.a[1], o.a[2], &err),
     &err);
  ok(p.one.layernorm_forward(&p.one, m, d, x, gamma, beta, 1e-5, o.b[0], o.b[1], o.b[2], &err),
     &err);
  out_check_free(&o, "layernorm_forward");
  out_add(&o, fb);
  out_add(&o, (size_t)d * sizeof(float));
  out_add(&o, (size_t)d * sizeof(float));
  ok(p.many.layernorm_backward(&p.many, m, d, dy, x, gamma, mean, invstd, o.a[0], o.a[1],
                               o.a[2], &err), &err);
  ok(p.one.layernorm_backward(&p.one, m, d, dy, x, gamma, mean, invstd, o.b[0], o.b[1], o.b[2],
                              &err), &err);
  out_check_free(&o, "layernorm_backward");

  out_add(&o, fb);
  ok(p.many.softmax_forward(&p.many, m, d, x, o.a[0], &err), &err);
  ok(p.one.softmax_forward(&p.one, m, d, x, o.b[0], &err), &err);
  float *y = xmalloc(fb); /* a softmax output for the backward */
  memcpy(y, o.a[0], fb);
  out_check_free(&o, "softmax_forward");
  out_add(&o, fb);
  ok(p.many.softmax_backward(&p.many, m, d, dy, y, o.a[0], &err), &err);
  ok(p.one.softmax_backward(&p.one, m, d, dy, y, o.b[0], &err), &err);
  out_check_free(&o, "softmax_backward");

  /* attention: b 2, t 97, 3 heads of 8 (p: 2 x 3 x 97 x 97 floats, 226 KB) */
  const int b = 2, t = 97, heads = 3, dh = 8;
  const size_t nq = (size_t)b * t * heads * dh, np = (size_t)b * heads * t * t;
  out_add(&o, np * sizeof(float));
  out_add(&o, nq * sizeof(float));
  ok(p.many.attention_forward(&p.many, b, t, heads, dh, x, dy, x + nq, o.a[0], o.a[1], &err),
     &err);
  ok(p.one.attention_forward(&p.one, b, t, heads, dh, x, dy, x + nq, o.b[0], o.b[1], &err),
     &err);
  float *pp = xmalloc(np * sizeof(float));
  memcpy(pp, o.a[0], np * sizeof(float));
  out_check_free(&o, "attention_forward");
  for (int k = 0; k < 3; k++)
    out_add(&o, nq * sizeof(float));
  ok(p.many.attention_backward(&p.many, b, t, heads, dh, dy + nq, x, dy, x + nq, pp, o.a[0],
                               o.a[1], o.a[2], &err), &err);
  ok(p.one.attention_backward(&p.one, b, t, heads, dh, dy + nq, x, dy, x + nq, pp, o.b[0],
                              o.b[1], o.b[2], &err), &err);
  out_check_free(&o, "attention_backward");

  free(x);
  free(dy);
  free(gamma);
  free(beta);
  free(mean);
  free(invstd);
  free(y);
  free(pp);
  pair_close(&p);
}
END_TEST

START_TEST(test_copy_shares_team)
{
  aal_backend be, ref;
  aal_error err;
  ck_assert_int_eq(aal_backend_cpu32(&be, &err), AAL_OK);
  ck_assert_ptr_nonnull(be.ctx);
  /* a copy by value (as tests build wrong tables) uses the same team */
  aal_backend copy = be;
  ck_assert_ptr_eq(aal_cpu32_be_team(&copy), aal_cpu32_be_team(&be));
  const size_t n = 50001;
  float *a = xmalloc(n * sizeof *a), *y = xmalloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++)
    a[i] = (float)i;
  ck_assert_int_eq(copy.add(&copy, n, a, a, y, &err), AAL_OK);
  for (size_t i = 0; i < n; i++)
    ck_assert(y[i] == 2.0f * (float)i);
  /* bad thread counts and other tables are refused */
  ck_assert_int_eq(aal_backend_cpu32_threads(&be, 0, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_backend_cpu32_threads(&be, AAL_TEAM_MAX_THREADS + 1, &err),
                   AAL_EINVAL);
  ck_assert_int_eq(aal_backend_cpu32_threads(NULL, 1, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_backend_ref(&ref, &err), AAL_OK);
  ck_assert_int_eq(aal_backend_cpu32_threads(&ref, 1, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "cpu32"));
  ref.destroy(&ref);
  /* ops on a table without state run single-threaded */
  aal_backend bare = be;
  bare.ctx = NULL;
  ck_assert_uint_eq(aal_backend_cpu32_thread_count(&bare), 1);
  ck_assert_int_eq(bare.add(&bare, n, a, a, y, &err), AAL_OK);
  ck_assert(y[n - 1] == 2.0f * (float)(n - 1));
  be.destroy(&be);
  ck_assert_ptr_null(be.ctx);
  free(a);
  free(y);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("cpu32_threads");
  TCase *tc = tcase_create("cpu32_threads");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_par_for_covers_items);
  tcase_add_test(tc, test_bn_ops_thread_independent);
  tcase_add_test(tc, test_elementwise_ops_thread_independent);
  tcase_add_test(tc, test_conv_thread_independent);
  tcase_add_test(tc, test_transformer_ops_thread_independent);
  tcase_add_test(tc, test_copy_shares_team);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
