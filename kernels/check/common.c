/* Pieces shared by kcheck's cases (kernels/check/<op>.c): inputs, bound arrays, and the
 * scratch buffers with which a fused op is checked against its unfused composition
 * (declared, with what they do, in kernels/check/kcheck_internal.h). */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

void kc_fill_sym(kc_run *run, kc_buf *b, double scale)
{
  for (size_t i = 0; i < b->n; i++)
    b->val[KC_REF][i] = kc_sym(run, scale);
}

void kc_fill_bits(kc_run *run, kc_buf *b)
{
  for (size_t i = 0; i < (b->n + 31) / 32; i++)
    b->words[KC_REF][i] = (uint32_t)gsl_rng_get(run->rng); /* mt19937: 32 random bits */
  if (b->n % 32) /* the unused high bits of the last word stay zero */
    b->words[KC_REF][b->n / 32] &= ((uint32_t)1 << (b->n % 32)) - 1;
}

void kc_fill_sym_zeros(kc_run *run, kc_buf *b, double scale)
{
  double *v = b->val[KC_REF];
  for (size_t i = 0; i < b->n; i++) {
    const double t = gsl_rng_uniform(run->rng);
    v[i] = t < 0.125 ? 0.0 : t < 0.25 ? -0.0 : kc_sym(run, scale);
  }
  if (b->n >= 2) { /* every row asks both questions */
    const size_t i = gsl_rng_uniform_int(run->rng, b->n);
    v[i] = 0.0;
    v[(i + 1 + gsl_rng_uniform_int(run->rng, b->n - 1)) % b->n] = -0.0;
  }
}

/* gamma_L = L u / (1 - L u), infinite where L u >= 1 */
static double gamma_det(double L, double u) { return L * u < 1.0 ? L * u / (1.0 - L * u) : INFINITY; }

double kc_gamma(const kc_run *run, double L)
{
  const double u = run->u;
  const double lambda = sqrt(2.0 * log(2.0 * L / KC_P_FALSE)) / (1.0 - u);
  const double prob = expm1(lambda * sqrt(L) * u + L * u * u / (1.0 - u));
  const double det = 2.0 * gamma_det(L, u);
  return (prob < det ? prob : det) + gamma_det(L, 0x1p-53);
}

void kc_check_sum(kc_run *run, kc_row *row, kc_buf *b, double L)
{
  kc_check_scaled(run, row, b, kc_gamma(run, L) / (L * run->u), L);
}

void kc_check_rounded(kc_run *run, kc_row *row, kc_buf *b, int k)
{
  double *bound = kc_bounds(run, b->n);
  if (bound == NULL) { /* no memory for the bounds: the row cannot pass */
    row->failed = 1;
    row->ratio = INFINITY;
    snprintf(row->note, sizeof row->note, "no memory for %zu bounds", b->n);
    return;
  }
  const double f = gamma_det(k, run->u) + 0x1p-52;
  for (size_t i = 0; i < b->n; i++)
    bound[i] = f * fabs(b->val[KC_REF][i]);
  kc_check_bound(row, b, bound, 0);
  free(bound);
}

void kc_check_bias(kc_row *row, kc_buf *b)
{
  const double tau = sqrt(2.0 * log(4.0 / KC_P_FALSE));
  double s1 = 0.0, s2 = 0.0, ss = 0.0;
  for (size_t i = 0; i < b->n; i++) {
    const double ref = b->val[KC_REF][i], a = fabs(b->val[KC_ABS][i]);
    const double z = (b->val[KC_GOT][i] - ref) / a;
    if (!(a > 0.0) || !isfinite(z)) /* an exact zero sum, or an element failed already */
      continue;
    s1 += z;
    s2 += ref > 0 ? z : ref < 0 ? -z : 0.0;
    ss += z * z;
  }
  const double t1 = ss > 0 ? s1 / sqrt(ss) : 0.0, t2 = ss > 0 ? s2 / sqrt(ss) : 0.0;
  const double r = fmax(fabs(t1), fabs(t2)) / tau;
  if (r > row->bias)
    row->bias = r;
  if (r > 1.0) {
    row->failed = 1;
    if (!(row->ratio >= r))
      row->ratio = r;
    b->res.failed = 1;
    if (!(b->res.ratio >= r))
      b->res.ratio = r;
  }
  if (row->note[0] == '\0' || r > 1.0)
    snprintf(row->note, sizeof row->note, "bias %s: T1 %+.2f, T2 %+.2f, tau %.2f", b->name, t1,
             t2, tau);
  snprintf(b->res.note, sizeof b->res.note, "bias T1 %+.2f, T2 %+.2f, tau %.2f%s", t1, t2, tau,
           r > 1.0 ? ": FAIL (the errors lean one way)" : "");
}

double *kc_bounds(kc_run *run, size_t n)
{
  double *b = calloc(n, sizeof *b);
  if (b == NULL)
    aal_fail(run->err, AAL_ENOMEM, "kcheck: %zu bounds", n);
  return b;
}

int kc_tmp_add(kc_tmp *t, size_t len, int bits, const uint32_t *fused)
{
  const aal_backend *be = t->run->be[KC_GOT];
  aal_error *err = t->run->err;
  if (t->n >= KC_MAXTMP) {
    aal_fail(err, AAL_EINVAL, "kcheck: more than %d scratch buffers", KC_MAXTMP);
    return -1;
  }
  const int i = t->n++;
  const size_t nw = (len + 31) / 32;
  t->len[i] = len;
  t->bits[i] = bits;
  int rc = bits ? be->alloc_bits(be, len, &t->dev[i], err)
                : be->alloc(be, len, &t->dev[i], err);
  if (rc != AAL_OK)
    return -1;
  if (bits) {
    if ((t->words[i] = malloc(nw * sizeof(uint32_t))) == NULL) {
      aal_fail(err, AAL_ENOMEM, "kcheck: scratch of %zu bits", len);
      return -1;
    }
    for (size_t j = 0; j < nw; j++)
      t->words[i][j] = ~fused[j];
    rc = be->upload_bits(be, t->dev[i], t->words[i], len, err);
  } else {
    if ((t->val[i] = malloc(len * sizeof(double))) == NULL) {
      aal_fail(err, AAL_ENOMEM, "kcheck: scratch of %zu values", len);
      return -1;
    }
    for (size_t j = 0; j < len; j++)
      t->val[i][j] = NAN;
    rc = be->upload(be, t->dev[i], t->val[i], len, err);
  }
  return rc == AAL_OK ? i : -1;
}

int kc_tmp_download(kc_tmp *t)
{
  const aal_backend *be = t->run->be[KC_GOT];
  for (int i = 0; i < t->n; i++) {
    const int rc = t->bits[i]
                       ? be->download_bits(be, t->words[i], t->dev[i], t->len[i], t->run->err)
                       : be->download(be, t->val[i], t->dev[i], t->len[i], t->run->err);
    if (rc != AAL_OK)
      return rc;
  }
  return AAL_OK;
}

void kc_tmp_free(kc_tmp *t)
{
  for (int i = 0; i < t->n; i++) {
    if (t->dev[i] != NULL)
      t->run->be[KC_GOT]->release(t->run->be[KC_GOT], t->dev[i]);
    free(t->val[i]);
    free(t->words[i]);
  }
  t->n = 0;
}

void kc_unfused_failed(kc_row *row, const char *op, int rc, const aal_error *e)
{
  row->failed = 1;
  row->ratio = INFINITY;
  snprintf(row->note, sizeof row->note, "the unfused %s returned %s: %s", op,
           aal_status_name(rc), e->msg);
}
