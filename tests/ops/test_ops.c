/* The model's op table (sim/ops/ops.h) and the step check (kernels/check/step_check.h):
 *
 *  a. the reference table is the reference: a pass with pass->ops = aal_ops_ref() gives
 *     bit-identical loss, gradients, SGD update and eval logits to a pass without a
 *     table, for bp, ara:2,2,2,2, asa:2,2,2,2 and noise;
 *  b. a small ResNet step on cpu32 agrees with the reference within the documented
 *     tolerance (docs/KERNELS.md) for bp, ara:2,2,2,2 and asa:2,2,2,2; the adapter over
 *     the double ref backend agrees at 2^-53;
 *  c. the step check fails with a deliberately wrong backend op (the cpu32 table with a
 *     conv_backward_filter that leaves the last image out);
 *  d. tensors know where they live: adapter ops run on backend tensors and refuse host
 *     ones; values cross only through explicit copies; closing the table brings the
 *     tensors that still live there home;
 *  e. a steady-state step on cpu32 allocates no backend buffer and moves no activation
 *     between host and backend (counted on the table's memory functions);
 *  f. the adapter reports bad shapes naming the op;
 *  g. max pooling through the reference table and the adapter (cpu32, ref backend) gives
 *     the reference's values on inputs where float arithmetic is exact.
 *
 * The seed is $AAL_TEST_SEED (default 20261128), printed. */
#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/aal_check.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu32.h"
#include "sim/layers/layers.h"
#include "sim/layers/transformer.h"
#include "sim/model/memory.h"
#include "sim/ops/ops.h"
#include "sim/model/resnet.h"
#include "kernels/check/step_check.h"

static unsigned long g_seed;

static void small_config(aal_resnet_config *cfg)
{
  aal_error err;
  aal_resnet_config_default(cfg);
  cfg->in_size = 32;
  cfg->classes = 10;
  ck_assert_int_eq(aal_resnet_config_set_width(cfg, 0.125, &err), AAL_OK);
}

/* One forward + backward + SGD step; the loss into *loss. */
static void step(aal_resnet *net, const aal_ops *ops, const char *rule_text,
                 const aal_tensor *x, const int *labels, double *loss)
{
  aal_error err;
  aal_rule rule;
  aal_resnet_pass pass;
  ck_assert_int_eq(aal_rule_parse(rule_text, &rule, &err), AAL_OK);
  ck_assert_int_eq(aal_resnet_pass_init(&pass, net, &rule, 3, 1, &err), AAL_OK);
  ck_assert_ptr_null(pass.ops);  /* pass_init leaves the reference */
  pass.ops = ops;
  aal_tape *tape = aal_tape_new(&err);
  ck_assert_ptr_nonnull(tape);
  ck_assert_msg(aal_resnet_forward(net, &pass, x, labels, tape, loss, NULL, &err) == AAL_OK,
                "%s", err.msg);
  ck_assert_msg(aal_resnet_backward(net, &pass, tape, labels, &err) == AAL_OK, "%s", err.msg);
  aal_tape_free(tape);
}

static int same_bits(const aal_tensor *a, const aal_tensor *b)
{
  return a->size == b->size && memcmp(a->data, b->data, a->size * sizeof(double)) == 0;
}

/* ------------------------------------------------------------------ a. ref table */

START_TEST(test_ref_table_bit_identical)
{
  const char *rules[] = {"bp", "ara:2,2,2,2", "asa:2,2,2,2", "noise"};
  aal_resnet_config cfg;
  small_config(&cfg);
  aal_error err;
  aal_tensor *x;
  int *labels;
  ck_assert_int_eq(aal_random_batch(&cfg, 4, g_seed, &x, &labels, &err), AAL_OK);
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    aal_resnet a, b;
    ck_assert_int_eq(aal_resnet_init(&a, &cfg, g_seed, &err), AAL_OK);
    ck_assert_int_eq(aal_resnet_init(&b, &cfg, g_seed, &err), AAL_OK);
    double la, lb;
    step(&a, NULL, rules[r], x, labels, &la);
    step(&b, aal_ops_ref(), rules[r], x, labels, &lb);
    ck_assert_msg(memcmp(&la, &lb, sizeof la) == 0, "%s: loss differs", rules[r]);
    for (int i = 0; i < a.nparams; i++) {
      if (a.params[i].grad != NULL)
        ck_assert_msg(same_bits(a.params[i].grad, b.params[i].grad), "%s: grad of %s differs",
                      rules[r], a.params[i].name);
      /* the forward moved the running statistics identically */
      ck_assert_msg(same_bits(a.params[i].value, b.params[i].value), "%s: %s differs",
                    rules[r], a.params[i].name);
    }
    /* two SGD steps (the first creates the momentum buffers) */
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(aal_resnet_sgd_step(&a, 0.05, 0.9, 1e-4, &err), AAL_OK);
      ck_assert_int_eq(aal_resnet_sgd_step_ops(&b, aal_ops_ref(), 0.05, 0.9, 1e-4, &err),
                       AAL_OK);
    }
    for (int i = 0; i < a.nparams; i++)
      ck_assert_msg(same_bits(a.params[i].value, b.params[i].value), "%s: %s after SGD",
                    rules[r], a.params[i].name);
    aal_tensor *ya = aal_tensor_new2(4, cfg.classes, &err);
    aal_tensor *yb = aal_tensor_new2(4, cfg.classes, &err);
    ck_assert_int_eq(aal_resnet_forward_eval(&a, x, ya, &err), AAL_OK);
    ck_assert_int_eq(aal_resnet_forward_eval_ops(&b, aal_ops_ref(), x, yb, &err), AAL_OK);
    ck_assert(same_bits(ya, yb));
    aal_tensor_release(ya);
    aal_tensor_release(yb);
    aal_resnet_free(&a);
    aal_resnet_free(&b);
  }
  aal_tensor_release(x);
  free(labels);
}
END_TEST

/* ------------------------------------------------------------------ b. cpu32 step */

static void small_opts(aal_step_check_opts *o)
{
  aal_step_check_opts_init(o);
  o->seed = g_seed;
  o->batch = 4;
  o->in_size = 32;
  o->classes = 10;
}

static aal_step_check_summary check_backend(const aal_backend *be, const char *rules)
{
  aal_ops ops;
  aal_error err;
  aal_step_check_opts o;
  aal_step_check_summary s;
  small_opts(&o);
  o.rules = rules;
  ck_assert_int_eq(aal_ops_from_backend(be, &ops, &err), AAL_OK);
  ck_assert_msg(aal_step_check(&ops, &o, stdout, &s, &err) == AAL_OK, "%s", err.msg);
  aal_ops_free(&ops);
  return s;
}

START_TEST(test_cpu32_step_within_tolerance)
{
  aal_backend be;
  aal_error err;
  ck_assert_int_eq(aal_backend_cpu32(&be, &err), AAL_OK);
  aal_step_check_summary s = check_backend(&be, NULL);
  ck_assert_int_eq(s.failed, 0);
  ck_assert(s.worst_ratio <= 1.0);
  ck_assert_int_ge(s.checks, 3 * 60);
  be.destroy(&be);
}
END_TEST

START_TEST(test_ref_backend_adapter)
{
  aal_backend be;
  aal_error err;
  ck_assert_int_eq(aal_backend_ref(&be, &err), AAL_OK);
  aal_step_check_summary s = check_backend(&be, "bp asa:2,2,2,2");
  ck_assert_int_eq(s.failed, 0);
  ck_assert(s.tol < 1e-12);  /* the tolerance is at 2^-53 */
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ c. wrong op */

/* backward-filter that leaves the last image out of the batch sum (the first n-1 images
 * of NCHW x and dy are a prefix of the buffers). */
static int filter_drop_image(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                             const void *dy, void *dw, aal_error *err)
{
  aal_conv_shape t = *cs;
  if (t.n > 1)
    t.n--;
  return aal_cpu32_conv_backward_filter(be, &t, x, dy, dw, err);
}

START_TEST(test_wrong_backend_caught)
{
  aal_backend be;
  aal_error err;
  ck_assert_int_eq(aal_backend_cpu32(&be, &err), AAL_OK);
  aal_backend wrong = be;
  wrong.name = "wrong";
  wrong.conv_backward_filter = filter_drop_image;
  aal_step_check_summary s = check_backend(&wrong, "bp");
  ck_assert_int_gt(s.failed, 0);
  ck_assert(!(s.worst_ratio <= 1.0));
  ck_assert_ptr_nonnull(strstr(s.worst, "grad"));
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ d. residency */

/* Uniform in [-1, 1) from g_seed (never all zeros). */
static void fill_uniform(aal_tensor *t, gsl_rng *rng)
{
  for (size_t i = 0; i < t->size; i++)
    t->data[i] = 2.0 * gsl_rng_uniform(rng) - 1.0;
}

/* Tensors know where they live: an adapter op runs on tensors that live on its backend
 * and refuses a host tensor, naming the op and the tensor; values cross only through
 * explicit copies (aal_ops_tensor_to, aal_tensor_read / _write / _copy); a new tensor
 * starts as NaN when poisoning is on; closing the table brings every tensor that still
 * lives there home with its values. */
START_TEST(test_tensors_know_where_they_live)
{
  aal_backend be;
  aal_ops ops;
  aal_error err;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, g_seed);
  ck_assert_int_eq(aal_backend_cpu32(&be, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
  aal_ops_poison_new(&ops, 1);
  aal_tensor *x = aal_tensor_new4(2, 3, 6, 6, &err), *w = aal_tensor_new4(4, 3, 3, 3, &err);
  aal_tensor *y_ref = aal_tensor_new4(2, 4, 6, 6, &err);
  fill_uniform(x, rng);
  fill_uniform(w, rng);
  aal_tensor *xb = aal_ops_tensor_to(&ops, x, &err), *wb = aal_ops_tensor_to(&ops, w, &err);
  aal_tensor *y = aal_ops_tensor_like(&ops, y_ref, AAL_F64, &err);
  aal_tensor *z = aal_ops_tensor_like(&ops, y_ref, AAL_F64, &err);
  ck_assert(xb && wb && y && z);
  ck_assert(xb != x && xb->home != NULL && xb->data == NULL && x->home == NULL);
  ck_assert(aal_ops_tensor_to(&ops, xb, &err) == xb);  /* there already: itself */
  aal_tensor_release(xb);
  /* a new tensor is NaN until an op writes it */
  aal_tensor *hy = aal_tensor_copy(y, &err);
  ck_assert(hy != NULL && isnan(hy->data[0]) && isnan(hy->data[hy->size - 1]));
  aal_tensor_release(hy);
  /* a host tensor given to an adapter op is refused, naming the op and the tensor */
  ck_assert_int_eq(ops.conv_forward(&ops, x, wb, 1, 1, y, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "conv_forward"));
  ck_assert_ptr_nonnull(strstr(err.msg, "lives on the host"));
  ck_assert_int_eq(ops.relu_forward(&ops, y, y_ref, NULL, &err), AAL_EINVAL);
  /* on the backend: the conv, then a ReLU reading the conv's buffer */
  ck_assert_int_eq(ops.conv_forward(&ops, xb, wb, 1, 1, y, &err), AAL_OK);
  ck_assert_int_eq(ops.relu_forward(&ops, y, z, NULL, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_ref()->conv_forward(aal_ops_ref(), x, w, 1, 1, y_ref, &err),
                   AAL_OK);
  aal_tensor *hz = aal_tensor_new_like(y_ref, &err);
  ck_assert_int_eq(aal_tensor_read(z, hz, &err), AAL_OK);
  /* 27 products per output: float rounding stays far below 1e-5 for |x|, |w| < 1 */
  for (size_t i = 0; i < hz->size; i++) {
    const double want = y_ref->data[i] > 0 ? y_ref->data[i] : 0.0;
    ck_assert_msg(fabs(hz->data[i] - want) <= 1e-5, "z[%zu] = %g, ref %g", i, hz->data[i],
                  want);
  }
  /* a write rounds to the backend's precision; reading it back gives the float value */
  aal_tensor *third = aal_tensor_new_like(y_ref, &err), *back = aal_tensor_new_like(y_ref, &err);
  aal_tensor_fill(third, 1.0 / 3.0);
  ck_assert_int_eq(aal_tensor_write(y, third, &err), AAL_OK);
  ck_assert_int_eq(aal_tensor_read(y, back, &err), AAL_OK);
  ck_assert(back->data[5] == (double)(float)(1.0 / 3.0));
  /* reading into a tensor of another shape is an error, not a partial copy */
  ck_assert_int_eq(aal_tensor_read(y, x, &err), AAL_ESHAPE);
  /* closing the table: z (still on the backend) comes home with its values */
  aal_ops_free(&ops);
  ck_assert(z->home == NULL && z->data != NULL);
  for (size_t i = 0; i < z->size; i++)
    ck_assert(z->data[i] == hz->data[i]);
  aal_tensor *all[] = {x, w, xb, wb, y, z, y_ref, hz, third, back};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
  gsl_rng_free(rng);
  be.destroy(&be);
}
END_TEST

/* The cpu32 table with counters on its memory functions: what crosses between the host
 * and the backend.  The ops receive &counting.be, so each function finds its counters. */
typedef struct {
  aal_backend be; /* first member */
  aal_backend inner;
  long allocs;
  size_t up, down; /* elements (values and bits) */
} counting_backend;

static counting_backend *counting_of(const aal_backend *be)
{
  return (counting_backend *)(void *)be; /* the object itself is not const */
}

static int count_alloc(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  counting_backend *c = counting_of(be);
  c->allocs++;
  return c->inner.alloc(&c->inner, n, buf, err);
}

static int count_alloc_bits(const aal_backend *be, size_t n, void **buf, aal_error *err)
{
  counting_backend *c = counting_of(be);
  c->allocs++;
  return c->inner.alloc_bits(&c->inner, n, buf, err);
}

static int count_upload(const aal_backend *be, void *buf, const double *host, size_t n,
                        aal_error *err)
{
  counting_backend *c = counting_of(be);
  c->up += n;
  return c->inner.upload(&c->inner, buf, host, n, err);
}

static int count_download(const aal_backend *be, double *host, const void *buf, size_t n,
                          aal_error *err)
{
  counting_backend *c = counting_of(be);
  c->down += n;
  return c->inner.download(&c->inner, host, buf, n, err);
}

static int count_upload_bits(const aal_backend *be, void *buf, const uint32_t *w, size_t n,
                             aal_error *err)
{
  counting_backend *c = counting_of(be);
  c->up += n;
  return c->inner.upload_bits(&c->inner, buf, w, n, err);
}

static int count_download_bits(const aal_backend *be, uint32_t *w, const void *buf, size_t n,
                               aal_error *err)
{
  counting_backend *c = counting_of(be);
  c->down += n;
  return c->inner.download_bits(&c->inner, w, buf, n, err);
}

/* A steady-state training step (the third) on cpu32 with ASA (the bit packing, decoding
 * and lr_expansion scale) moves no activation, gradient or parameter between host and
 * backend and allocates no buffer.  Exactly: up, the batch once (copied to the backend
 * at forward; the tape keeps that copy for the stem's weight gradient); down, each
 * batch norm's mean and invstd (for the running statistics, on the host) and the
 * logits (checked for finiteness). */
START_TEST(test_resident_step_traffic)
{
  counting_backend cb;
  aal_ops ops;
  aal_error err;
  aal_resnet_config cfg;
  aal_resnet net;
  aal_tensor *x = NULL;
  int *labels = NULL;
  ck_assert_int_eq(aal_backend_cpu32(&cb.inner, &err), AAL_OK);
  cb.be = cb.inner;
  cb.be.alloc = count_alloc;
  cb.be.alloc_bits = count_alloc_bits;
  cb.be.upload = count_upload;
  cb.be.download = count_download;
  cb.be.upload_bits = count_upload_bits;
  cb.be.download_bits = count_download_bits;
  cb.allocs = 0;
  cb.up = cb.down = 0;
  ck_assert_int_eq(aal_ops_from_backend(&cb.be, &ops, &err), AAL_OK);
  small_config(&cfg);
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, g_seed, &err), AAL_OK);
  ck_assert_int_eq(aal_random_batch(&cfg, 4, g_seed, &x, &labels, &err), AAL_OK);
  size_t bn_channels = 0, params = 0;
  for (int i = 0; i < net.nparams; i++) {
    const char *name = net.params[i].name, *tail = strrchr(name, '.');
    bn_channels += tail != NULL && strcmp(tail, ".running_mean") == 0 ? net.params[i].value->size
                                                                       : 0;
    params += net.params[i].value->size;
  }
  ck_assert_uint_gt(bn_channels, 0);
  ck_assert_int_eq(aal_resnet_move(&net, &ops, &err), AAL_OK);
  aal_rule rule;
  /* the default lr_expansion (100): the weight gradients' scale runs on the backend */
  ck_assert_int_eq(aal_rule_parse("asa:2,2,2,2", &rule, &err), AAL_OK);
  size_t tape_elements = 0;
  for (unsigned long s = 0; s < 3; s++) {
    const long allocs0 = cb.allocs;
    const size_t up0 = cb.up, down0 = cb.down;
    aal_resnet_pass pass;
    double loss;
    ck_assert_int_eq(aal_resnet_pass_init(&pass, &net, &rule, 3, s, &err), AAL_OK);
    pass.ops = &ops;
    aal_tape *tape = aal_tape_new(&err);
    ck_assert_msg(aal_resnet_forward(&net, &pass, x, labels, tape, &loss, NULL, &err) == AAL_OK,
                  "%s", err.msg);
    tape_elements = aal_tape_bytes_f32(tape) / sizeof(float);
    ck_assert_msg(aal_resnet_backward(&net, &pass, tape, labels, &err) == AAL_OK, "%s",
                  err.msg);
    ck_assert_int_eq(aal_resnet_sgd_step_ops(&net, &ops, 0.01, 0.9, 1e-4, &err), AAL_OK);
    aal_tape_free(tape);
    printf("residency: step %lu: %ld allocations, %zu elements up, %zu down (tape ~%zu, "
           "parameters %zu)\n", s, cb.allocs - allocs0, cb.up - up0, cb.down - down0,
           tape_elements, params);
    if (s < 2)
      continue;
    ck_assert_int_eq(cb.allocs - allocs0, 0);
    ck_assert_uint_eq(cb.up - up0, x->size);
    ck_assert_uint_eq(cb.down - down0, 2 * bn_channels + 4 * (size_t)cfg.classes);
  }
  aal_ops_free(&ops);
  aal_resnet_free(&net);
  aal_tensor_release(x);
  free(labels);
  cb.inner.destroy(&cb.inner);
}
END_TEST

/* The LI reduced on cpu32 (li_reduce of the adapter) against the reference table's
 * (aal_li_batch in double): the same valid flags and zero-norm count, values within
 * the harness's li_reduce bound (docs/KERNELS.md, "Learning indicator":
 * 2 (2 per + 4) u (2A + rr)/hh with A = sum |r h|), and a non-finite h is an error on
 * both, not a zero-norm sample. */
START_TEST(test_li_reduce_on_backend)
{
  aal_backend be;
  aal_ops ops;
  aal_error err;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, g_seed);
  ck_assert_int_eq(aal_backend_cpu32(&be, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
  aal_tensor *h = aal_tensor_new4(5, 3, 4, 4, &err), *r = aal_tensor_new_like(h, &err);
  fill_uniform(h, rng);
  fill_uniform(r, rng);
  const size_t per = h->size / 5;
  for (size_t i = 0; i < per; i++)
    h->data[2 * per + i] = 0.0; /* sample 2: h = 0, no LI */
  /* float values on both sides, so that only the reduction differs */
  for (size_t i = 0; i < h->size; i++) {
    h->data[i] = (double)(float)h->data[i];
    r->data[i] = (double)(float)r->data[i];
  }
  double li_ref[5], li_be[5];
  unsigned char v_ref[5], v_be[5];
  size_t z_ref = 9, z_be = 9;
  ck_assert_int_eq(aal_ops_ref()->li_reduce(aal_ops_ref(), h, r, li_ref, v_ref, &z_ref, &err),
                   AAL_OK);
  aal_tensor *hb = aal_ops_tensor_to(&ops, h, &err), *rb = aal_ops_tensor_to(&ops, r, &err);
  ck_assert(hb != NULL && rb != NULL);
  ck_assert_int_eq(ops.li_reduce(&ops, hb, rb, li_be, v_be, &z_be, &err), AAL_OK);
  ck_assert_uint_eq(z_ref, 1);
  ck_assert_uint_eq(z_be, 1);
  for (int s = 0; s < 5; s++) {
    ck_assert_int_eq(v_be[s], v_ref[s]);
    ck_assert_int_eq(v_ref[s], s != 2);
    if (!v_ref[s])
      continue;
    double hh = 0, a = 0, rr = 0;
    for (size_t i = 0; i < per; i++) {
      const double hv = h->data[s * per + i], rv = r->data[s * per + i];
      hh += hv * hv;
      a += fabs(rv * hv);
      rr += rv * rv;
    }
    const double bound = 2.0 * (2.0 * (double)per + 4.0) * ldexp(1.0, -24) * (2 * a + rr) / hh;
    ck_assert_msg(fabs(li_be[s] - li_ref[s]) <= bound, /* NaN fails */
                  "sample %d: LI %.9g on cpu32, %.9g on the reference (bound %.3g)", s,
                  li_be[s], li_ref[s], bound);
  }
  /* a NaN in h: an error naming the op on both tables */
  h->data[per + 3] = NAN;
  ck_assert_int_eq(aal_tensor_write(hb, h, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_ref()->li_reduce(aal_ops_ref(), h, r, li_ref, v_ref, &z_ref, &err),
                   AAL_ENUMERIC);
  ck_assert_int_eq(ops.li_reduce(&ops, hb, rb, li_be, v_be, &z_be, &err), AAL_ENUMERIC);
  ck_assert_ptr_nonnull(strstr(err.msg, "li_reduce"));
  aal_tensor_release(hb);
  aal_tensor_release(rb);
  aal_ops_free(&ops);
  aal_tensor_release(h);
  aal_tensor_release(r);
  gsl_rng_free(rng);
  be.destroy(&be);
}
END_TEST

/* ------------------------------------------------------------------ f. errors */

START_TEST(test_adapter_errors)
{
  aal_backend be;
  aal_ops ops;
  aal_error err;
  ck_assert_int_eq(aal_backend_cpu32(&be, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
  aal_tensor *x = aal_tensor_new4(2, 3, 5, 5, &err), *w = aal_tensor_new4(4, 3, 3, 3, &err);
  for (size_t i = 0; i < x->size; i++)
    x->data[i] = 0.1 * (double)(i % 7) - 0.3;
  for (size_t i = 0; i < w->size; i++)
    w->data[i] = 0.05 * (double)(i % 5) - 0.1;
  aal_tensor *xb = aal_ops_tensor_to(&ops, x, &err), *wb = aal_ops_tensor_to(&ops, w, &err);
  const long bad[4] = {2, 4, 4, 4}, good[4] = {2, 4, 5, 5};
  aal_tensor *y = aal_ops_tensor_new(&ops, 4, bad, AAL_F64, &err);
  aal_tensor *y_ok = aal_ops_tensor_new(&ops, 4, good, AAL_F64, &err);
  ck_assert_int_eq(ops.conv_forward(&ops, xb, wb, 1, 1, y, &err), AAL_ESHAPE);
  ck_assert_ptr_nonnull(strstr(err.msg, "conv_forward"));
  ck_assert_int_eq(ops.conv_forward(&ops, xb, wb, 1, 1, y_ok, &err), AAL_OK);
  /* the output holds float values: the reference on the same inputs agrees to ~1e-7 */
  aal_tensor *y_ref = aal_tensor_new(4, good, &err);
  ck_assert_int_eq(aal_ops_ref()->conv_forward(aal_ops_ref(), x, w, 1, 1, y_ref, &err), AAL_OK);
  aal_tensor *hy = aal_tensor_copy(y_ok, &err);
  ck_assert_ptr_nonnull(hy);
  for (size_t i = 0; i < hy->size; i++) {
    ck_assert(hy->data[i] == (double)(float)hy->data[i]);
    ck_assert(fabs(hy->data[i] - y_ref->data[i]) < 1e-5);
  }
  int labels[2] = {0, 7};
  aal_tensor *logits = aal_tensor_new2(2, 4, &err);
  aal_tensor *lb = aal_ops_tensor_to(&ops, logits, &err);
  aal_tensor *prob = aal_ops_tensor_like(&ops, logits, AAL_F64, &err);
  double loss;
  ck_assert_int_eq(ops.xent_forward(&ops, lb, labels, &loss, prob, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "xent_forward"));
  labels[1] = 1;
  ck_assert_int_eq(ops.xent_forward(&ops, lb, labels, &loss, prob, &err), AAL_OK);
  logits->data[3] = NAN;
  ck_assert_int_eq(aal_tensor_write(lb, logits, &err), AAL_OK);
  ck_assert_int_eq(ops.xent_forward(&ops, lb, labels, &loss, prob, &err), AAL_ENUMERIC);
  aal_ops_handle h;
  ck_assert_int_ne(aal_ops_open("nope", &h, &err), AAL_OK);
  ck_assert_int_eq(aal_ops_open("ref", &h, &err), AAL_OK);
  ck_assert_ptr_eq(h.table, aal_ops_ref());
  aal_ops_close(&h);
  aal_tensor *all[] = {x, w, xb, wb, y, y_ok, y_ref, hy, logits, lb, prob};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
  aal_ops_free(&ops);
  be.destroy(&be);
}
END_TEST

/* Max pooling through the tables: the reference table is the layer; the adapter over
 * cpu32 and over the ref backend gives the reference's values exactly on inputs where
 * float arithmetic is exact (x: floats with many ties, dy: multiples of 1/16 whose sums
 * of up to 4 are exact in float), at the stem geometry (k 3, stride 2, pad 1) and at k 2
 * stride 1 (heavy overlap); the adapter refuses a host tensor and bad arguments with the
 * layer's contract, naming the op. */
static void maxpool_on(const aal_ops *ops, int k, int stride, int pad)
{
  aal_error err;
  const long xs[4] = {2, 3, 9, 8}, ho = aal_maxpool2d_output_size(9, k, stride, pad),
             wo = aal_maxpool2d_output_size(8, k, stride, pad);
  const long ys[4] = {2, 3, ho, wo};
  aal_tensor *x = aal_tensor_new(4, xs, &err), *dy = aal_tensor_new(4, ys, &err);
  aal_tensor *y_ref = aal_tensor_new(4, ys, &err), *dx_ref = aal_tensor_new(4, xs, &err);
  ck_assert(x && dy && y_ref && dx_ref);
  for (size_t i = 0; i < x->size; i++)
    x->data[i] = (double)((long)(i * 37 % 29) - 14) / 8.0; /* period 29: ties in windows */
  for (size_t i = 0; i < dy->size; i++)
    dy->data[i] = (double)((long)(i * 13 % 17) - 8) / 16.0;
  const aal_ops *ref = aal_ops_ref();
  ck_assert_int_eq(ref->maxpool_forward(ref, x, k, stride, pad, y_ref, &err), AAL_OK);
  ck_assert_int_eq(ref->maxpool_backward(ref, dy, x, k, stride, pad, dx_ref, &err), AAL_OK);
  aal_tensor *bx = aal_ops_tensor_to(ops, x, &err), *bdy = aal_ops_tensor_to(ops, dy, &err);
  aal_tensor *by = aal_ops_tensor_like(ops, y_ref, AAL_F64, &err);
  aal_tensor *bdx = aal_ops_tensor_like(ops, dx_ref, AAL_F64, &err);
  ck_assert(bx && bdy && by && bdx);
  ck_assert_msg(ops->maxpool_forward(ops, bx, k, stride, pad, by, &err) == AAL_OK, "%s",
                err.msg);
  ck_assert_msg(ops->maxpool_backward(ops, bdy, bx, k, stride, pad, bdx, &err) == AAL_OK, "%s",
                err.msg);
  aal_tensor *hy = aal_tensor_copy(by, &err), *hdx = aal_tensor_copy(bdx, &err);
  ck_assert(hy && hdx);
  for (size_t i = 0; i < hy->size; i++)
    ck_assert_msg(hy->data[i] == y_ref->data[i], "%s maxpool k%d s%d: y[%zu] = %.9g, ref %.9g",
                  ops->name, k, stride, i, hy->data[i], y_ref->data[i]);
  for (size_t i = 0; i < hdx->size; i++)
    ck_assert_msg(hdx->data[i] == dx_ref->data[i],
                  "%s maxpool k%d s%d: dx[%zu] = %.9g, ref %.9g", ops->name, k, stride, i,
                  hdx->data[i], dx_ref->data[i]);
  if (ops->be != NULL) { /* the adapter's refusals, with the layer's contract */
    ck_assert_int_eq(ops->maxpool_forward(ops, x, k, stride, pad, by, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "maxpool_forward"));
    ck_assert_ptr_nonnull(strstr(err.msg, "lives on the host"));
    ck_assert_int_eq(ops->maxpool_forward(ops, bx, 3, 2, 2, by, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "maxpool_forward"));
    ck_assert_ptr_nonnull(strstr(err.msg, "pad"));
    ck_assert_int_eq(ops->maxpool_backward(ops, bdy, bx, k, 0, pad, bdx, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "maxpool_backward"));
    ck_assert_int_eq(ops->maxpool_backward(ops, bx, bx, k, stride, pad, bdx, &err), AAL_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "dy"));
  }
  aal_tensor *all[] = {x, dy, y_ref, dx_ref, bx, bdy, by, bdx, hy, hdx};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
}

START_TEST(test_maxpool_tables)
{
  aal_error err;
  const char *names[] = {"ref", "cpu32"};
  maxpool_on(aal_ops_ref(), 3, 2, 1);
  for (size_t b = 0; b < 2; b++) {
    aal_backend be;
    aal_ops ops;
    ck_assert_int_eq(aal_backend_open(names[b], &be, &err), AAL_OK);
    ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
    aal_ops_poison_new(&ops, 1); /* an output element nobody writes stays NaN */
    maxpool_on(&ops, 3, 2, 1);
    maxpool_on(&ops, 2, 1, 0);
    maxpool_on(&ops, 2, 2, 1);
    aal_ops_free(&ops);
    be.destroy(&be);
  }
}
END_TEST

/* The Transformer ops through the tables: every op on one table, its outputs brought
 * home (aal_tensor_copy) and concatenated in the order the ops ran.  Inputs are
 * multiples of 2^-8 in (-1, 1) (softmax's y and attention's p a valid softmax of such
 * numbers), so the adapter over the ref backend must give the reference table's values
 * bit for bit, and over cpu32 the same within float rounding: 2^-12 of the largest |value|
 * of each output (the ops' sums here are at most 16 terms long; the derived bounds are
 * the harness's, kernels/check; what this test shows is that each adapter entry binds
 * the right tensors to the right arguments: a swapped or misrouted one is off by O(1)).
 * The adapter refuses a host tensor, naming the op. */
#define TF_NOUT 20
typedef struct {
  aal_tensor *out[TF_NOUT];
  int n;
} tf_outs;

static aal_tensor *tf_in(const aal_ops *ops, const aal_tensor *host)
{
  aal_error err;
  aal_tensor *t = aal_ops_tensor_to(ops, host, &err);
  ck_assert_msg(t != NULL, "%s", err.msg);
  return t;
}

static aal_tensor *tf_new(const aal_ops *ops, int ndim, long a, long b, long c, long d)
{
  aal_error err;
  const long shape[4] = {a, b, c, d};
  aal_tensor *h = aal_tensor_new(ndim, shape, &err);
  ck_assert_ptr_nonnull(h);
  aal_tensor *t = aal_ops_tensor_like(ops, h, AAL_F64, &err);
  ck_assert_msg(t != NULL, "%s", err.msg);
  aal_tensor_release(h);
  return t;
}

static void tf_keep(tf_outs *o, aal_tensor *t)
{
  aal_error err;
  ck_assert_int_lt(o->n, TF_NOUT);
  o->out[o->n] = aal_tensor_copy(t, &err);
  ck_assert_msg(o->out[o->n] != NULL, "%s", err.msg);
  o->n++;
  aal_tensor_release(t);
}

static aal_tensor *tf_host(int ndim, long a, long b, long c, long d, unsigned salt)
{
  aal_error err;
  const long shape[4] = {a, b, c, d};
  aal_tensor *t = aal_tensor_new(ndim, shape, &err);
  ck_assert_ptr_nonnull(t);
  for (size_t i = 0; i < t->size; i++) { /* nonzero multiples of 2^-8 in (-1, 1) */
    const long m = (long)((i * 97 + salt * 31) % 255) - 127;
    t->data[i] = (m != 0 ? (double)m : 1.0) / 256.0;
  }
  return t;
}

#define TF_RUN(call)                                                                          \
  do {                                                                                        \
    aal_error e_;                                                                             \
    const int rc_ = (call);                                                                   \
    ck_assert_msg(rc_ == AAL_OK, "%s: %s: %s", ops->name, #call, e_.msg);                     \
  } while (0)

static void tf_run(const aal_ops *ops, tf_outs *o)
{
  aal_error err;
  o->n = 0;
  /* layer norm [6, 16] */
  aal_tensor *x = tf_host(2, 6, 16, 0, 0, 1), *g = tf_host(1, 16, 0, 0, 0, 2);
  aal_tensor *b = tf_host(1, 16, 0, 0, 0, 3), *dy = tf_host(2, 6, 16, 0, 0, 4);
  aal_tensor *bx = tf_in(ops, x), *bg = tf_in(ops, g), *bb = tf_in(ops, b), *bdy = tf_in(ops, dy);
  aal_tensor *y = tf_new(ops, 2, 6, 16, 0, 0), *mean = tf_new(ops, 1, 6, 0, 0, 0);
  aal_tensor *inv = tf_new(ops, 1, 6, 0, 0, 0), *dx = tf_new(ops, 2, 6, 16, 0, 0);
  aal_tensor *dg = tf_new(ops, 1, 16, 0, 0, 0), *db = tf_new(ops, 1, 16, 0, 0, 0);
  TF_RUN(ops->layernorm_forward(ops, bx, bg, bb, 1e-5, y, mean, inv, &e_));
  TF_RUN(ops->layernorm_backward(ops, bdy, bx, bg, mean, inv, dx, dg, db, &e_));
  tf_keep(o, y);
  tf_keep(o, mean);
  tf_keep(o, inv);
  tf_keep(o, dx);
  tf_keep(o, dg);
  tf_keep(o, db);
  /* GELU and softmax on the same [6, 16] */
  y = tf_new(ops, 2, 6, 16, 0, 0);
  dx = tf_new(ops, 2, 6, 16, 0, 0);
  TF_RUN(ops->gelu_forward(ops, bx, y, &e_));
  TF_RUN(ops->gelu_backward(ops, bdy, bx, dx, &e_));
  tf_keep(o, y);
  tf_keep(o, dx);
  y = tf_new(ops, 2, 6, 16, 0, 0);
  dx = tf_new(ops, 2, 6, 16, 0, 0);
  TF_RUN(ops->softmax_forward(ops, bx, y, &e_));
  TF_RUN(ops->softmax_backward(ops, bdy, y, dx, &e_));
  tf_keep(o, y);
  tf_keep(o, dx);
  /* attention B 2, T 4, H 2, dh 4 */
  aal_tensor *q = tf_host(3, 2, 4, 8, 0, 5), *k = tf_host(3, 2, 4, 8, 0, 6);
  aal_tensor *v = tf_host(3, 2, 4, 8, 0, 7), *dout = tf_host(3, 2, 4, 8, 0, 8);
  aal_tensor *bq = tf_in(ops, q), *bk = tf_in(ops, k), *bv = tf_in(ops, v), *bdo = tf_in(ops, dout);
  aal_tensor *p = tf_new(ops, 4, 2, 2, 4, 4), *ao = tf_new(ops, 3, 2, 4, 8, 0);
  aal_tensor *dq = tf_new(ops, 3, 2, 4, 8, 0), *dk = tf_new(ops, 3, 2, 4, 8, 0);
  aal_tensor *dv = tf_new(ops, 3, 2, 4, 8, 0);
  TF_RUN(ops->attention_forward(ops, bq, bk, bv, 2, p, ao, &e_));
  TF_RUN(ops->attention_backward(ops, bdo, bq, bk, bv, p, 2, dq, dk, dv, &e_));
  tf_keep(o, ao);
  tf_keep(o, dq);
  tf_keep(o, dk);
  tf_keep(o, dv);
  aal_tensor_release(p);
  /* embedding (ids with a repeat), patchify, transpose */
  static const int ids[8] = {3, 0, 3, 1, 4, 4, 2, 3};
  aal_tensor *tab = tf_host(2, 5, 8, 0, 0, 9), *pos = tf_host(2, 4, 8, 0, 0, 10);
  aal_tensor *btab = tf_in(ops, tab), *bpos = tf_in(ops, pos);
  aal_tensor *ey = tf_new(ops, 3, 2, 4, 8, 0), *dtab = tf_new(ops, 2, 5, 8, 0, 0);
  aal_tensor *dpos = tf_new(ops, 2, 4, 8, 0, 0);
  TF_RUN(ops->embed_forward(ops, ids, btab, bpos, ey, &e_));
  TF_RUN(ops->embed_backward(ops, ids, bdo, dtab, dpos, &e_));
  aal_tensor *img = tf_host(4, 2, 2, 4, 6, 11), *bimg = tf_in(ops, img);
  aal_tensor *pt = tf_new(ops, 3, 2, 6, 8, 0), *back = tf_new(ops, 4, 2, 2, 4, 6);
  TF_RUN(ops->patchify_forward(ops, bimg, 2, pt, &e_));
  TF_RUN(ops->patchify_backward(ops, pt, 2, back, &e_));
  aal_tensor *tr = tf_new(ops, 3, 2, 8, 4, 0);
  TF_RUN(ops->transpose(ops, bq, tr, &e_));
  if (ops->be != NULL) { /* a host tensor is refused, naming the op */
    ck_assert_int_eq(ops->transpose(ops, q, tr, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "transpose"));
    aal_tensor *gy = tf_new(ops, 2, 6, 16, 0, 0);
    ck_assert_int_eq(ops->gelu_forward(ops, x, gy, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "gelu_forward"));
    ck_assert_ptr_nonnull(strstr(err.msg, "lives on the host"));
    aal_tensor_release(gy);
  }
  tf_keep(o, ey);
  tf_keep(o, dtab);
  tf_keep(o, dpos);
  tf_keep(o, pt);
  tf_keep(o, back);
  tf_keep(o, tr);
  aal_tensor *all[] = {x, g, b, dy, bx, bg, bb, bdy, q, k, v, dout, bq, bk, bv, bdo, tab, pos,
                       btab, bpos, img, bimg};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
}

START_TEST(test_transformer_tables)
{
  aal_error err;
  tf_outs want, got;
  tf_run(aal_ops_ref(), &want);
  const char *names[] = {"ref", "cpu32"};
  for (size_t bi = 0; bi < 2; bi++) {
    aal_backend be;
    aal_ops ops;
    ck_assert_int_eq(aal_backend_open(names[bi], &be, &err), AAL_OK);
    ck_assert_int_eq(aal_ops_from_backend(&be, &ops, &err), AAL_OK);
    aal_ops_poison_new(&ops, 1);
    tf_run(&ops, &got);
    ck_assert_int_eq(got.n, want.n);
    for (int t = 0; t < want.n; t++) {
      ck_assert(aal_tensor_same_shape(got.out[t], want.out[t]));
      double mx = 0.0;
      for (size_t i = 0; i < want.out[t]->size; i++)
        mx = fmax(mx, fabs(want.out[t]->data[i]));
      const double tol = bi == 0 ? 0.0 : 0x1p-12 * mx;
      for (size_t i = 0; i < want.out[t]->size; i++)
        ck_assert_msg(fabs(got.out[t]->data[i] - want.out[t]->data[i]) <= tol,
                      "%s: output %d [%zu] = %.9g, reference %.9g (tolerance %.3g)", names[bi],
                      t, i, got.out[t]->data[i], want.out[t]->data[i], tol);
      aal_tensor_release(got.out[t]);
    }
    aal_ops_free(&ops);
    be.destroy(&be);
  }
  for (int t = 0; t < want.n; t++)
    aal_tensor_release(want.out[t]);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("ops");
  TCase *tc = tcase_create("ops");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_ref_table_bit_identical);
  tcase_add_test(tc, test_cpu32_step_within_tolerance);
  tcase_add_test(tc, test_ref_backend_adapter);
  tcase_add_test(tc, test_wrong_backend_caught);
  tcase_add_test(tc, test_adapter_errors);
  tcase_add_test(tc, test_tensors_know_where_they_live);
  tcase_add_test(tc, test_resident_step_traffic);
  tcase_add_test(tc, test_li_reduce_on_backend);
  tcase_add_test(tc, test_maxpool_tables);
  tcase_add_test(tc, test_transformer_tables);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
