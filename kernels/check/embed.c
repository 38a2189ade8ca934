/* kcheck's embedding cases: token embedding (shape a = B, b = T, c = V, len = D; ids on
 * the host in the case's labels) and patchify (cs: n, c, h, w the image, r = s = p).
 *
 * embed_forward: y = table[id] + pos[t], one rounding: kc_check_rounded(1).
 * embed_backward: dtable's row of id v is the sum of the dy rows at the positions
 *   holding v (count_v of them), dpos[t] the sum of dy[b, t] over the B batches: sums of
 *   at most max count_v and B terms, in any order: kc_gamma(L) times the same sum of
 *   |dy| (the reference on |dy|); a row whose id never occurs must be exactly 0.  The
 *   ids are drawn from the first max(1, V/2) ids only (every shape has repeated ids and
 *   rows of dtable that no position touches, which a scatter that skips zeroing or
 *   overwrites instead of adding gets wrong).
 * patchify_forward / _backward: a copy each way, exact. */
#include "kernels/check/kcheck_internal.h"

#include <stdlib.h>

static int embed_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->embed_forward(be, s->a, s->b, s->c, (int)s->len, k->labels, KC_DEV(k, 0, v),
                           KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

static int embed_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const kc_shape *s = k->sh;
  return be->embed_backward(be, s->a, s->b, s->c, (int)s->len, k->labels, KC_DEV(k, 0, v),
                            KC_DEV(k, 1, v), KC_DEV(k, 2, v), err);
}

/* B T ids from 0 .. max(1, V/2) - 1; the largest count of one id into *maxcount. */
static int fill_ids(kc_run *run, kc_case *k, int *maxcount)
{
  const kc_shape *s = k->sh;
  const size_t n = (size_t)s->a * s->b;
  const int used = s->c / 2 > 1 ? s->c / 2 : 1;
  k->labels = malloc(n * sizeof *k->labels);
  int *count = calloc((size_t)s->c, sizeof *count);
  if (k->labels == NULL || count == NULL) {
    free(count);
    return aal_fail(run->err, AAL_ENOMEM, "kcheck: %zu token ids", n);
  }
  *maxcount = 1;
  for (size_t i = 0; i < n; i++) {
    k->labels[i] = (int)gsl_rng_uniform_int(run->rng, (unsigned long)used);
    if (++count[k->labels[i]] > *maxcount)
      *maxcount = count[k->labels[i]];
  }
  free(count);
  return AAL_OK;
}

int kc_embed_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t d = sh->len, ny = (size_t)sh->a * sh->b * d;
  kc_case k = {.sh = sh};
  kc_add(&k, "table", KC_IN, (size_t)sh->c * d, 0);
  kc_add(&k, "pos", KC_IN, (size_t)sh->b * d, 0);
  kc_add(&k, "y", KC_OUT, ny, 0);
  int maxcount = 0, ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK)
    rc = fill_ids(run, &k, &maxcount);
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_sym(run, &k.buf[1], 1.0);
    rc = kc_execute(run, &k, embed_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_rounded(run, row, &k.buf[2], 1);
  kc_free(run, &k);
  return rc;
}

int kc_embed_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const size_t d = sh->len, ny = (size_t)sh->a * sh->b * d;
  kc_case k = {.sh = sh};
  kc_add(&k, "dy", KC_IN, ny, 0);
  kc_add(&k, "dtable", KC_OUT, (size_t)sh->c * d, 0);
  kc_add(&k, "dpos", KC_OUT, (size_t)sh->b * d, 0);
  int maxcount = 0, ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK)
    rc = fill_ids(run, &k, &maxcount);
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, embed_backward_call, 1, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    kc_check_sum(run, row, &k.buf[1], (double)maxcount);
    kc_check_sum(run, row, &k.buf[2], (double)sh->a);
    if (row->note[0] == '\0')
      snprintf(row->note, sizeof row->note, "ids: at most %d positions per id", maxcount);
  }
  kc_free(run, &k);
  return rc;
}

/* ---------------------------------------------------------------- patchify */

static int patchify_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const aal_conv_shape *g = &k->sh->cs;
  return be->patchify_forward(be, g->n, g->c, g->h, g->w, g->r, KC_DEV(k, 0, v),
                              KC_DEV(k, 1, v), err);
}

static int patchify_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const aal_conv_shape *g = &k->sh->cs;
  return be->patchify_backward(be, g->n, g->c, g->h, g->w, g->r, KC_DEV(k, 0, v),
                               KC_DEV(k, 1, v), err);
}

static int patchify_case(kc_run *run, const kc_shape *sh, kc_row *row, int forward)
{
  const aal_conv_shape *g = &sh->cs;
  const size_t n = (size_t)g->n * g->c * g->h * g->w; /* as many patches' elements */
  kc_case k = {.sh = sh};
  kc_add(&k, forward ? "x" : "dy", KC_IN, n, 0);
  kc_add(&k, forward ? "y" : "dx", KC_OUT, n, 0);
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    rc = kc_execute(run, &k, forward ? patchify_forward_call : patchify_backward_call, 0, row,
                    &ran);
  }
  if (rc == AAL_OK && ran)
    kc_check_exact(row, &k.buf[1], 0);
  kc_free(run, &k);
  return rc;
}

int kc_patchify_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return patchify_case(run, sh, row, 1);
}

int kc_patchify_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  return patchify_case(run, sh, row, 0);
}
