/* The tape: saving, loading, sharing counted once, refusing what was not saved; and a
 * small residual net whose backward reads only the tape, checked against finite
 * differences of its loss. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "sim/aal.h"
#include "tests/fdcheck.h"

static unsigned long seed;

START_TEST(test_save_load_share)
{
  aal_error err;
  aal_error_clear(&err);
  aal_tape *tape = aal_tape_new(&err);
  aal_tensor *a = aal_tensor_new4(2, 3, 4, 5, &err);  /* 120 doubles */
  const long bshape[1] = {100};
  aal_tensor *b = aal_tensor_new_bits(1, bshape, &err); /* 100 bits = 13 bytes */
  ck_assert_int_eq(aal_tape_save(tape, "block0", "x", a, &err), AAL_OK);
  ck_assert_int_eq(aal_tape_save(tape, "block1", "ara", a, &err), AAL_OK); /* shared */
  ck_assert_int_eq(aal_tape_save(tape, "relu", "mask", b, &err), AAL_OK);
  ck_assert_int_eq(a->refcount, 3);
  ck_assert_uint_eq(aal_tape_count(tape), 3);
  ck_assert_uint_eq(aal_tape_unique_count(tape), 2);
  ck_assert_uint_eq(aal_tape_bytes(tape), 120 * 8 + 13);
  ck_assert_uint_eq(aal_tape_bytes_f32(tape), 120 * 4 + 13);
  ck_assert_uint_eq(aal_tape_layer_bytes(tape, "block0", 0), 120 * 8);
  ck_assert_uint_eq(aal_tape_layer_bytes(tape, "block1", 0), 0);
  ck_assert_ptr_eq(aal_tape_load(tape, "block1", "ara", &err), a);
  /* a name pair can be saved once; what was not saved cannot be loaded */
  ck_assert_int_eq(aal_tape_save(tape, "block0", "x", b, &err), AAL_ETAPE);
  ck_assert_ptr_null(aal_tape_load(tape, "block1", "x", &err));
  ck_assert_int_eq(err.code, AAL_ETAPE);
  ck_assert(strstr(err.msg, "block1/x") != NULL);
  ck_assert_int_eq(aal_tape_save(tape, "", "x", a, &err), AAL_ETAPE);
  char long_name[100];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  ck_assert_int_eq(aal_tape_save(tape, long_name, "x", a, &err), AAL_ETAPE);
  ck_assert_int_eq(aal_tape_save(tape, "l", "x", NULL, &err), AAL_EINVAL);
  FILE *devnull = fopen("/dev/null", "w");
  ck_assert_int_eq(aal_tape_report(tape, devnull), AAL_OK);
  fclose(devnull);
  aal_tape_clear(tape);
  ck_assert_int_eq(a->refcount, 1);
  ck_assert_uint_eq(aal_tape_bytes(tape), 0);
  aal_tensor_release(a);
  aal_tensor_release(b);
  aal_tape_free(tape);
}
END_TEST

/* ---------------------------------------------------------------- the small net */

enum { NB = 4, S = 5, C = 3, CLASSES = 4 };

typedef struct {
  aal_smoke_net net;
  aal_tensor *x;
  int labels[NB];
  double *theta;   /* all parameters, concatenated in aal_smoke_param_names order */
  size_t ntheta;
} net_problem;

static void theta_to_params(net_problem *p)
{
  size_t off = 0;
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++) {
    memcpy(p->net.param[i]->data, p->theta + off, p->net.param[i]->size * sizeof(double));
    off += p->net.param[i]->size;
  }
}

static void loss_of_theta(void *ctx, double *y)
{
  net_problem *p = ctx;
  aal_error err;
  theta_to_params(p);
  aal_tape *tape = aal_tape_new(&err);
  int rc = aal_smoke_forward(&p->net, p->x, p->labels, tape, y, &err);
  aal_tape_free(tape);
  if (rc != AAL_OK)
    y[0] = NAN;
}

static void problem_init(net_problem *p, gsl_rng *rng)
{
  aal_error err;
  ck_assert_int_eq(aal_smoke_net_init(&p->net, C, CLASSES, seed, &err), AAL_OK);
  p->x = aal_tensor_new4(NB, 3, S, S, &err);
  fd_fill_uniform(rng, p->x->data, p->x->size, -1, 1);
  for (int n = 0; n < NB; n++)
    p->labels[n] = (int)gsl_rng_uniform_int(rng, CLASSES);
  p->ntheta = 0;
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++)
    p->ntheta += p->net.param[i]->size;
  p->theta = malloc(p->ntheta * sizeof(double));
  ck_assert_ptr_nonnull(p->theta);
  size_t off = 0;
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++) {
    aal_tensor *t = p->net.param[i];
    /* BN affine parameters and the fc bias start at 1 / 0: perturb them so that no
     * gradient is checked at a special point */
    for (size_t k = 0; k < t->size; k++)
      p->theta[off + k] = t->data[k] + 0.1 * (gsl_rng_uniform(rng) - 0.5);
    off += t->size;
  }
  theta_to_params(p);
}

static void problem_free(net_problem *p)
{
  aal_smoke_net_free(&p->net);
  aal_tensor_release(p->x);
  free(p->theta);
}

static double *analytic_gradient(net_problem *p)
{
  aal_error err;
  aal_error_clear(&err);
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  theta_to_params(p);
  ck_assert_int_eq(aal_smoke_forward(&p->net, p->x, p->labels, tape, &loss, &err), AAL_OK);
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++)  /* poison: an unwritten gradient fails */
    aal_tensor_fill(p->net.grad[i], NAN);
  int rc = aal_smoke_backward(&p->net, tape, p->labels, &err);
  ck_assert_msg(rc == AAL_OK, "backward: %s", err.msg);
  aal_tape_free(tape);
  double *g = malloc(p->ntheta * sizeof *g);
  ck_assert_ptr_nonnull(g);
  size_t off = 0;
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++) {
    memcpy(g + off, p->net.grad[i]->data, p->net.grad[i]->size * sizeof(double));
    off += p->net.grad[i]->size;
  }
  return g;
}

START_TEST(test_net_gradient_fd)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  net_problem p;
  problem_init(&p, rng);
  double *g = analytic_gradient(&p);
  /* a step of 1e-6 along unit-norm directions moves each ReLU input by about 1e-6, so
   * a kink is crossed with probability ~1e-4 (it would fail with a large GSL error
   * estimate, never pass); round-off is ~1e-16/1e-6 relative */
  fd_problem fp = {p.theta, p.ntheta, 1, loss_of_theta, &p, 1e-6};
  fd_report rep;
  memset(&rep, 0, sizeof rep);
  const double one = 1.0;
  double *dir = malloc(p.ntheta * sizeof *dir);
  ck_assert_ptr_nonnull(dir);
  int ok = 1;
  for (int trial = 0; trial < 8; trial++) {
    /* random direction: the analytic value is g . dir; the floor sum |g_i dir_i| */
    double analytic = 0, floor = 0, norm = 0;
    fd_fill_uniform(rng, dir, p.ntheta, -1, 1);
    for (size_t k = 0; k < p.ntheta; k++)
      norm += dir[k] * dir[k];
    for (size_t k = 0; k < p.ntheta; k++) {
      dir[k] /= sqrt(norm);
      analytic += g[k] * dir[k];
      floor += fabs(g[k] * dir[k]);
    }
    ok &= fd_check_direction(&fp, &one, dir, analytic, floor, "net: random direction", &rep);
  }
  /* single entries: the first element of every parameter tensor, and a random one */
  size_t off = 0;
  for (int i = 0; i < AAL_SMOKE_NPARAM; i++) {
    const size_t size = p.net.param[i]->size;
    const size_t picks[2] = {off, off + gsl_rng_uniform_int(rng, size)};
    for (int k = 0; k < 2; k++) {
      memset(dir, 0, p.ntheta * sizeof *dir);
      dir[picks[k]] = 1.0;
      char what[96];
      snprintf(what, sizeof what, "net: d loss / d %s[%zu]", aal_smoke_param_names[i],
               picks[k] - off);
      ok &= fd_check_direction(&fp, &one, dir, g[picks[k]], fabs(g[picks[k]]), what, &rep);
    }
    off += size;
  }
  fprintf(stderr, "net gradient: %zu checks, %zu failed, worst rel err %.3g\n", rep.checked,
          rep.failed, rep.worst_rel);
  ck_assert_msg(ok && rep.failed == 0, "%zu of %zu finite-difference checks failed",
                rep.failed, rep.checked);
  free(dir);
  free(g);
  problem_free(&p);
  gsl_rng_free(rng);
}
END_TEST

/* Tape bytes of the small net from the layer list, counted independently. */
START_TEST(test_net_tape_bytes)
{
  aal_error err;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  net_problem p;
  problem_init(&p, rng);
  aal_tape *tape = aal_tape_new(&err);
  double loss;
  ck_assert_int_eq(aal_smoke_forward(&p.net, p.x, p.labels, tape, &loss, &err), AAL_OK);
  const size_t img = NB * 3 * S * S, act = NB * C * S * S;
  const size_t doubles = img      /* conv1 x */
                         + act + 2 * C /* bn1 x, mean, invstd */
                         + act    /* conv2 x (= relu1 output) */
                         + act + 2 * C /* bn2 */
                         + NB * C /* fc x */
                         + NB * CLASSES; /* softmax probabilities */
  const size_t mask_bytes = 2 * ((act + 7) / 8);
  ck_assert_uint_eq(aal_tape_bytes(tape), 8 * doubles + mask_bytes);
  ck_assert_uint_eq(aal_tape_bytes_f32(tape), 4 * doubles + mask_bytes);
  aal_tape_free(tape);
  problem_free(&p);
  gsl_rng_free(rng);
}
END_TEST

/* Backward cannot use what forward did not store. */
START_TEST(test_backward_needs_tape)
{
  aal_error err;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  net_problem p;
  problem_init(&p, rng);
  aal_tape *tape = aal_tape_new(&err);
  aal_error_clear(&err);
  ck_assert_int_eq(aal_smoke_backward(&p.net, tape, p.labels, &err), AAL_ETAPE);
  ck_assert(strstr(err.msg, "did not save") != NULL);
  aal_tape_free(tape);
  problem_free(&p);
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_smoke_run_learns)
{
  aal_error err;
  aal_smoke_opts o;
  aal_smoke_opts_default(&o);
  o.seed = seed;
  double first, last;
  ck_assert_int_eq(aal_smoke_run(&o, NULL, &first, &last, &err), AAL_OK);
  fprintf(stderr, "smoke: loss %.6f -> %.6f\n", first, last);
  ck_assert_msg(last < 0.75 * first, "loss %g -> %g did not fall by a quarter", first, last);
  o.lr = -1;
  ck_assert_int_eq(aal_smoke_run(&o, NULL, &first, &last, &err), AAL_EINVAL);
}
END_TEST

int main(void)
{
  seed = fd_test_seed();
  Suite *s = suite_create("tape");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_save_load_share);
  tcase_add_test(tc, test_net_gradient_fd);
  tcase_add_test(tc, test_net_tape_bytes);
  tcase_add_test(tc, test_backward_needs_tape);
  tcase_add_test(tc, test_smoke_run_learns);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
