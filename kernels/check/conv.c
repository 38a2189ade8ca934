/* kcheck's conv cases (forward, backward-data, backward-filter).
 * A conv output is a dot product of L terms (L = C*R*S forward, K*R*S backward-data,
 * N*P*Q backward-filter; padded positions contribute exact zeros), rounded to float:
 * |y - y_ref| <= kc_gamma(L + 1) (|A||B|)_ref (the deterministic 2 (L + 1) u, or the
 * probabilistic bound where it is smaller), and the errors of all outputs together must
 * pass the bias test (kc_check_bias). */
#include "kernels/check/kcheck_internal.h"

static size_t xsize(const aal_conv_shape *c) { return (size_t)c->n * c->c * c->h * c->w; }
static size_t wsize(const aal_conv_shape *c) { return (size_t)c->k * c->c * c->r * c->s; }
static size_t ysize(const aal_conv_shape *c) { return (size_t)c->n * c->k * c->p * c->q; }

static int conv_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->conv_forward(be, &k->sh->cs, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

static int conv_backward_data_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  return be->conv_backward_data(be, &k->sh->cs, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
                                err);
}

static int conv_backward_filter_call(const aal_backend *be, int v, kc_case *k,
                                     aal_error *err)
{
  return be->conv_backward_filter(be, &k->sh->cs, KC_DEV(k, 0, v), KC_DEV(k, 1, v), KC_DEV(k, 2, v),
                                  err);
}

/* Two inputs of n0 and n1 values in [-1, 1), one output of n2, bound kc_gamma(L + 1) abs,
 * and the bias test. */
static int gemm_like(kc_run *run, const kc_shape *sh, kc_row *row, kc_call call,
                     const char *names[3], const size_t n[3], double terms)
{
  kc_case k = {.sh = sh};
  kc_add(&k, names[0], KC_IN, n[0], 0);
  kc_add(&k, names[1], KC_IN, n[1], 0);
  kc_add(&k, names[2], KC_OUT, n[2], 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && !kc_ext_inputs(run, &k, &rc)) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_sym(run, &k.buf[1], 1.0);
  }
  if (rc == AAL_OK)
    rc = kc_execute(run, &k, call, 1, row, &ran);
  if (rc == AAL_OK && ran) {
    kc_check_sum(run, row, &k.buf[2], terms + 1.0);
    kc_check_bias(row, &k.buf[2]);
  }
  kc_free(run, &k);
  return rc;
}

int kc_conv_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const aal_conv_shape *c = &sh->cs;
  const char *names[3] = {"x", "w", "y"};
  const size_t n[3] = {xsize(c), wsize(c), ysize(c)};
  return gemm_like(run, sh, row, conv_forward_call, names, n, (double)c->c * c->r * c->s);
}

int kc_conv_backward_data_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const aal_conv_shape *c = &sh->cs;
  const char *names[3] = {"dy", "w", "dx"};
  const size_t n[3] = {ysize(c), wsize(c), xsize(c)};
  return gemm_like(run, sh, row, conv_backward_data_call, names, n,
                   (double)c->k * c->r * c->s);
}

int kc_conv_backward_filter_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const aal_conv_shape *c = &sh->cs;
  const char *names[3] = {"x", "dy", "dw"};
  const size_t n[3] = {xsize(c), ysize(c), wsize(c)};
  return gemm_like(run, sh, row, conv_backward_filter_call, names, n,
                   (double)c->n * c->p * c->q);
}
