/* The CUDA backend's op table, a few ops held against plain CPU loops in this file:
 * ReLU forward/backward with packed masks and ASA sign pack/unpack (bit-exact), add
 * (bit-exact: one correctly rounded float add on both sides), SGD (within a bound in
 * units of u = 2^-24), the per-sample LI (a zero-norm sample must give NaN) and max
 * pooling (forward bit-exact, ties to the first maximum, NaN wins; backward within a
 * float sum's bound and bit-identical run to run).  The
 * full bound-based comparison of every op against the reference is the harness's job
 * (`aal kcheck --backend cuda`).  Exit 77 (automake's "skipped") when built without
 * CUDA or when there is no device.
 *
 * No GSL: the inputs come from a fixed-seed splitmix64 below, so that
 * experiments/gpu-check.sh can build this test with nvcc alone on a bare GPU machine. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

#define SKIP 77

#ifdef AAL_HAVE_CUDA

static uint64_t rng_state;

static uint64_t splitmix64(void)
{
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform float in [-1, 1), already rounded to float (so upload is exact). */
static double uniform(void) { return (double)(float)((double)(splitmix64() >> 11) * 0x1p-53 * 2 - 1); }

static int failures, checks;

static void report(const char *what, int ok, const char *detail)
{
  checks++;
  if (!ok)
    failures++;
  printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail[0] ? ": " : "", detail);
}

/* Same float bit pattern (so -0 != +0), any NaN matching any NaN (the GPU's arithmetic
 * writes the canonical NaN 0x7fffffff, x86 keeps the payload). */
static int same_bits(double a, double b)
{
  if (isnan(a) || isnan(b))
    return isnan(a) && isnan(b);
  float fa = (float)a, fb = (float)b;
  return memcmp(&fa, &fb, sizeof fa) == 0;
}

static int op_failed(const char *what, int rc, const aal_error *err)
{
  if (rc == AAL_OK)
    return 0;
  char detail[AAL_ERRMSG_LEN + 32];
  snprintf(detail, sizeof detail, "%s (%s)", err->msg, aal_status_name(rc));
  report(what, 0, detail);
  return 1;
}

/* Packs (v[i] > 0) as the header says: bit i%32 of word i/32, high bits of the last word 0. */
static void pack_cpu(const double *v, size_t n, uint32_t *words)
{
  memset(words, 0, (n + 31) / 32 * sizeof *words);
  for (size_t i = 0; i < n; i++)
    if (v[i] > 0)
      words[i / 32] |= 1u << (i % 32);
}

/* Exact element-by-element comparison; reports the first mismatch. */
static void compare_exact(const char *what, const double *got, const double *want, size_t n)
{
  char detail[160] = "";
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++)
    if (!same_bits(got[i], want[i])) {
      ok = 0;
      snprintf(detail, sizeof detail, "element %zu: got %.9g, want %.9g", i, got[i], want[i]);
    }
  if (ok)
    snprintf(detail, sizeof detail, "%zu elements bit-exact", n);
  report(what, ok, detail);
}

static void compare_words(const char *what, const uint32_t *got, const uint32_t *want, size_t n)
{
  char detail[160] = "";
  int ok = 1;
  const size_t nw = (n + 31) / 32;
  for (size_t k = 0; k < nw && ok; k++)
    if (got[k] != want[k]) {
      ok = 0;
      snprintf(detail, sizeof detail, "word %zu: got %08x, want %08x", k, got[k], want[k]);
    }
  if (ok)
    snprintf(detail, sizeof detail, "%zu words bit-exact", nw);
  report(what, ok, detail);
}

/* |got - want| <= bound for every element, NaN failing; reports the worst err/bound. */
static void compare_bound(const char *what, const double *got, const double *want,
                          const double *bound, size_t n)
{
  int ok = 1;
  size_t worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = fabs(got[i] - want[i]);
    if (!(e <= bound[i]))
      ok = 0;
    const double ratio = bound[i] > 0 ? e / bound[i] : (e == 0 ? 0 : INFINITY);
    if (!(ratio <= worst_ratio)) { /* NaN becomes the worst */
      worst_ratio = ratio;
      worst = i;
    }
  }
  char detail[200];
  snprintf(detail, sizeof detail, "worst err/bound %.3g at %zu (got %.9g, want %.9g)",
           worst_ratio, worst, got[worst], want[worst]);
  report(what, ok, detail);
}

/* ---- max pooling: plain float loops with the reference's winner rule (padding never
 * wins; row-major scan, a later element takes over iff > the running maximum or NaN) */
static long pool_winner(const double *px, int h, int w, int h0, int w0, int k)
{
  long arg = -1;
  double best = 0;
  for (int a = 0; a < k; a++)
    for (int b = 0; b < k; b++) {
      const int ih = h0 + a, iw = w0 + b;
      if (ih < 0 || ih >= h || iw < 0 || iw >= w)
        continue;
      const double v = px[(long)ih * w + iw];
      if (arg < 0 || v > best || isnan(v)) {
        best = v;
        arg = (long)ih * w + iw;
      }
    }
  return arg;
}

/* Forward bit-exact; backward within the bound of a float sum of at most
 * M = ceil(k/stride)^2 dy values, 2 M u sum|dy| (NaN fails), and bit-identical in two
 * runs (the gather has no atomics). */
static void check_maxpool(const aal_backend *be, int n, int c, int h, int w, int k, int stride,
                          int pad)
{
  aal_error err = {0, ""};
  const int p = aal_pool_out(h, k, stride, pad), q = aal_pool_out(w, k, stride, pad);
  const size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * p * q;
  double *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy), *y = malloc(ny * sizeof *y);
  double *yw = malloc(ny * sizeof *yw), *dx = malloc(nx * sizeof *dx), *dx2 = malloc(nx * sizeof *dx2);
  double *dxw = malloc(nx * sizeof *dxw), *bound = malloc(nx * sizeof *bound);
  double *pois = malloc(nx * sizeof *pois);
  void *bx = NULL, *bdy = NULL, *by = NULL, *bdx = NULL;
  char what[96];
  if (!x || !dy || !y || !yw || !dx || !dx2 || !dxw || !bound || !pois) {
    report("maxpool: host memory", 0, "");
    return;
  }
  for (size_t pl = 0; pl < (size_t)n * c; pl++)
    for (size_t i = 0; i < (size_t)h * w; i++) {
      const double v = uniform();
      /* every other plane on a grid of 1/8: ties, which the first-wins rule decides */
      x[pl * h * w + i] = pl % 2 ? v : (double)(float)(nearbyint(v * 8) / 8 + 1.0 / 16);
    }
  x[(size_t)h * w + (size_t)(h / 2) * w + w / 3] = NAN; /* plane 1: a NaN wins its windows */
  for (size_t i = 0; i < ny; i++)
    dy[i] = uniform();
  for (size_t i = 0; i < nx; i++) {
    pois[i] = NAN;
    dxw[i] = 0;
    bound[i] = 0;
  }
  const double u = 0x1p-24, m = (double)((k + stride - 1) / stride) * ((k + stride - 1) / stride);
  for (size_t pl = 0; pl < (size_t)n * c; pl++)
    for (int oh = 0; oh < p; oh++)
      for (int ow = 0; ow < q; ow++) {
        const long i = pool_winner(x + pl * h * w, h, w, oh * stride - pad, ow * stride - pad, k);
        const size_t o = (pl * p + oh) * q + ow;
        yw[o] = x[pl * h * w + i];
        dxw[pl * h * w + i] += dy[o];
        bound[pl * h * w + i] += 2 * m * u * fabs(dy[o]);
      }
  snprintf(what, sizeof what, "maxpool %dx%dx%dx%d k%d s%d p%d", n, c, h, w, k, stride, pad);
  if (op_failed("alloc", be->alloc(be, nx, &bx, &err), &err) ||
      op_failed("alloc", be->alloc(be, ny, &bdy, &err), &err) ||
      op_failed("alloc", be->alloc(be, ny, &by, &err), &err) ||
      op_failed("alloc", be->alloc(be, nx, &bdx, &err), &err))
    return;
  char name[128];
  if (!op_failed("upload", be->upload(be, bx, x, nx, &err), &err) &&
      !op_failed("upload", be->upload(be, bdy, dy, ny, &err), &err) &&
      !op_failed("poison", be->upload(be, by, pois, ny, &err), &err) &&
      !op_failed("maxpool forward",
                 be->maxpool_forward(be, n, c, h, w, k, stride, pad, bx, by, &err), &err) &&
      !op_failed("download", be->download(be, y, by, ny, &err), &err)) {
    snprintf(name, sizeof name, "%s forward", what);
    compare_exact(name, y, yw, ny);
  }
  for (int run = 0; run < 2; run++)
    if (!op_failed("poison", be->upload(be, bdx, pois, nx, &err), &err) &&
        !op_failed("maxpool backward",
                   be->maxpool_backward(be, n, c, h, w, k, stride, pad, bdy, bx, bdx, &err),
                   &err) &&
        !op_failed("download", be->download(be, run ? dx2 : dx, bdx, nx, &err), &err)) {
      if (run == 0) {
        snprintf(name, sizeof name, "%s backward", what);
        compare_bound(name, dx, dxw, bound, nx);
      } else {
        snprintf(name, sizeof name, "%s backward twice: bit-identical", what);
        compare_exact(name, dx2, dx, nx);
      }
    }
  be->release(be, bx);
  be->release(be, bdy);
  be->release(be, by);
  be->release(be, bdx);
  free(x), free(dy), free(y), free(yw), free(dx), free(dx2), free(dxw), free(bound), free(pois);
}

int main(void)
{
  aal_backend be;
  aal_error err = {0, ""};
  int rc = aal_backend_cuda(&be, &err);
  if (rc != AAL_OK) {
    printf("cuda backend: %s\n", err.msg);
    if (rc == AAL_EINVAL && strncmp(err.msg, "no CUDA device", 14) == 0) {
      printf("skipped\n");
      return SKIP;
    }
    return EXIT_FAILURE;
  }
  const uint64_t seed = 20261128u;
  rng_state = seed;
  printf("backend %s, precision %d bits, seed %llu\n", be.name, be.precision_bits,
         (unsigned long long)seed);

  const size_t n = 1000003; /* not a multiple of 32 or of a block */
  const size_t nw = (n + 31) / 32;
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *want = malloc(n * sizeof *want);
  double *g = malloc(n * sizeof *g), *b2 = malloc(n * sizeof *b2), *bound = malloc(n * sizeof *bound);
  uint32_t *bits = malloc(nw * sizeof *bits), *wbits = malloc(nw * sizeof *wbits);
  double *poison = malloc(n * sizeof *poison);
  uint32_t *pbits = malloc(nw * sizeof *pbits);
  if (!x || !y || !want || !g || !b2 || !bound || !bits || !wbits || !poison || !pbits) {
    fprintf(stderr, "out of host memory\n");
    return EXIT_FAILURE;
  }
  for (size_t i = 0; i < n; i++) {
    x[i] = uniform();
    g[i] = uniform();
    poison[i] = NAN;
  }
  x[0] = 0.0;       /* zero: bit 0, y = 0 */
  x[1] = -0.0;      /* negative zero: bit 0, y = +0 */
  x[2] = NAN;       /* NaN: bit 0, y = NaN (propagates, as in the reference) */
  x[n - 1] = 0.5;   /* the last element sets a bit in the partial last word */
  for (size_t k = 0; k < nw; k++)
    pbits[k] = 0xA5A5A5A5u;

  void *dx_ = NULL, *dy_ = NULL, *dz_ = NULL, *dw_ = NULL, *dmask = NULL;
  if (op_failed("alloc", be.alloc(&be, n, &dx_, &err), &err) ||
      op_failed("alloc", be.alloc(&be, n, &dy_, &err), &err) ||
      op_failed("alloc", be.alloc(&be, n, &dz_, &err), &err) ||
      op_failed("alloc", be.alloc(&be, n, &dw_, &err), &err) ||
      op_failed("alloc_bits", be.alloc_bits(&be, n, &dmask, &err), &err))
    return EXIT_FAILURE;

  /* ---- upload/download round trip of float-representable values is exact */
  if (!op_failed("upload", be.upload(&be, dx_, x, n, &err), &err) &&
      !op_failed("download", be.download(&be, y, dx_, n, &err), &err))
    compare_exact("upload/download round trip", y, x, n);

  /* ---- relu forward: y = x <= 0 ? 0 : x, mask bit (x > 0) */
  for (size_t i = 0; i < n; i++)
    want[i] = x[i] <= 0 ? 0.0 : x[i];
  pack_cpu(x, n, wbits);
  if (!op_failed("poison", be.upload(&be, dy_, poison, n, &err), &err) &&
      !op_failed("poison", be.upload_bits(&be, dmask, pbits, n, &err), &err) &&
      !op_failed("relu forward", be.relu_forward(&be, n, dx_, dy_, dmask, &err), &err) &&
      !op_failed("download", be.download(&be, y, dy_, n, &err), &err) &&
      !op_failed("download_bits", be.download_bits(&be, bits, dmask, n, &err), &err)) {
    compare_exact("relu forward y", y, want, n);
    compare_words("relu forward mask", bits, wbits, n);
  }

  /* ---- relu backward: dx = bit ? dy : 0 (dy = g) */
  for (size_t i = 0; i < n; i++)
    want[i] = x[i] > 0 ? g[i] : 0.0;
  if (!op_failed("upload", be.upload(&be, dz_, g, n, &err), &err) &&
      !op_failed("poison", be.upload(&be, dy_, poison, n, &err), &err) &&
      !op_failed("relu backward", be.relu_backward(&be, n, dz_, dmask, dy_, &err), &err) &&
      !op_failed("download", be.download(&be, y, dy_, n, &err), &err))
    compare_exact("relu backward", y, want, n);

  /* ---- sign pack (of g, which has both signs) and unpack: eps * bit */
  const double eps = 0.01;
  pack_cpu(g, n, wbits);
  for (size_t i = 0; i < n; i++)
    want[i] = g[i] > 0 ? (double)(float)eps : 0.0;
  if (!op_failed("poison", be.upload_bits(&be, dmask, pbits, n, &err), &err) &&
      !op_failed("sign pack", be.sign_pack(&be, n, dz_, dmask, &err), &err) &&
      !op_failed("download_bits", be.download_bits(&be, bits, dmask, n, &err), &err))
    compare_words("sign pack", bits, wbits, n);
  if (!op_failed("poison", be.upload(&be, dy_, poison, n, &err), &err) &&
      !op_failed("sign unpack", be.sign_unpack(&be, n, dmask, eps, dy_, &err), &err) &&
      !op_failed("download", be.download(&be, y, dy_, n, &err), &err))
    compare_exact("sign unpack", y, want, n);

  /* ---- add: y = a + b, one float rounding on both sides (x[2] is NaN: NaN + b = NaN) */
  for (size_t i = 0; i < n; i++)
    want[i] = (double)((float)x[i] + (float)g[i]);
  if (!op_failed("poison", be.upload(&be, dy_, poison, n, &err), &err) &&
      !op_failed("add", be.add(&be, n, dx_, dz_, dy_, &err), &err) &&
      !op_failed("download", be.download(&be, y, dy_, n, &err), &err))
    compare_exact("add", y, want, n);

  /* ---- sgd, two steps (first, then with momentum), against double loops on the same
   * float inputs with a propagated error bound (u = 2^-24; the device rounds lr,
   * momentum and wd to float, and may fuse multiply-adds):
   *   buf: eb' = 6u (|g| + wd|w| + m|buf|) + m eb + wd ew   (m eb only after the first)
   *   w:   ew' = ew + lr eb' + 4u (|w'| + lr |buf'|)
   * NaN fails (the comparison is written as !(err <= bound)). */
  const double lr = 0.05, mom = 0.9, wd = 1e-4, u = 0x1p-24;
  double *w = malloc(n * sizeof *w), *buf = malloc(n * sizeof *buf), *eb = malloc(n * sizeof *eb);
  if (!w || !buf || !eb)
    return EXIT_FAILURE;
  for (size_t i = 0; i < n; i++) {
    w[i] = uniform();
    buf[i] = 0.0;
    eb[i] = 0.0;
    bound[i] = 0.0; /* ew */
  }
  if (!op_failed("upload", be.upload(&be, dw_, w, n, &err), &err) &&
      !op_failed("poison", be.upload(&be, dy_, poison, n, &err), &err)) {
    int ok = 1;
    for (int step = 0; step < 2 && ok; step++) {
      const int first = step == 0;
      for (size_t i = 0; i < n; i++) {
        const double t = fabs(g[i]) + wd * fabs(w[i]) + (first ? 0 : mom * fabs(buf[i]));
        eb[i] = 6 * u * t + (first ? 0 : mom * eb[i]) + wd * bound[i];
        const double d = g[i] + wd * w[i];
        buf[i] = first ? d : mom * buf[i] + d;
        w[i] -= lr * buf[i];
        bound[i] += lr * eb[i] + 4 * u * (fabs(w[i]) + lr * fabs(buf[i]));
      }
      ok = !op_failed("sgd update",
                      be.sgd_update(&be, n, dw_, dz_, dy_, lr, mom, wd, first, &err), &err);
    }
    if (ok && !op_failed("download", be.download(&be, y, dw_, n, &err), &err))
      compare_bound("sgd update w (2 steps)", y, w, bound, n);
    if (ok && !op_failed("download", be.download(&be, b2, dy_, n, &err), &err))
      compare_bound("sgd update buf (2 steps)", b2, buf, eb, n);
  }

  /* ---- LI per sample: li = r.(2h - r) / ||h||^2, NaN for a zero-norm sample */
  {
    const int ns = 7;
    const size_t per = 10007;
    double *h = malloc(ns * per * sizeof *h), *r = malloc(ns * per * sizeof *r);
    double li[7], li_want[7], li_bound[7], lipoison[7];
    void *dh = NULL, *dr = NULL, *dli = NULL;
    if (!h || !r)
      return EXIT_FAILURE;
    for (int s = 0; s < ns; s++) {
      double num = 0, den = 0, absum = 0;
      for (size_t j = 0; j < per; j++) {
        const size_t i = (size_t)s * per + j;
        h[i] = s == 3 ? 0.0 : uniform();
        r[i] = s == 5 ? h[i] : uniform(); /* sample 5 is BP: li = 1 */
        num += r[i] * (2 * h[i] - r[i]);
        absum += fabs(r[i]) * (2 * fabs(h[i]) + fabs(r[i]));
        den += h[i] * h[i];
      }
      li_want[s] = den > 0 ? num / den : NAN;
      /* float result of double sums: one float rounding plus double-sum error */
      li_bound[s] = den > 0 ? 2 * u * fabs(li_want[s]) + 1e-12 * absum / den : 0;
      lipoison[s] = -12345.0;
    }
    if (!op_failed("alloc", be.alloc(&be, ns * per, &dh, &err), &err) &&
        !op_failed("alloc", be.alloc(&be, ns * per, &dr, &err), &err) &&
        !op_failed("alloc", be.alloc(&be, ns, &dli, &err), &err) &&
        !op_failed("upload", be.upload(&be, dh, h, ns * per, &err), &err) &&
        !op_failed("upload", be.upload(&be, dr, r, ns * per, &err), &err) &&
        !op_failed("poison", be.upload(&be, dli, lipoison, ns, &err), &err) &&
        !op_failed("li reduce", be.li_reduce(&be, ns, per, dh, dr, dli, &err), &err) &&
        !op_failed("download", be.download(&be, li, dli, ns, &err), &err)) {
      char detail[120];
      snprintf(detail, sizeof detail, "sample 3 (h = 0) gives %g", li[3]);
      report("li reduce: zero-norm sample is NaN", isnan(li[3]), detail);
      snprintf(detail, sizeof detail, "sample 5 (r = h) gives %.9g", li[5]);
      report("li reduce: r = h gives 1", li[5] == 1.0, detail);
      li[3] = li_want[3] = 0; /* compared above */
      compare_bound("li reduce", li, li_want, li_bound, ns);
    }
    be.release(&be, dh);
    be.release(&be, dr);
    be.release(&be, dli);
    free(h);
    free(r);
  }

  /* ---- max pooling: the ImageNet stem's geometry, stride 1 with overlap, k 2 */
  check_maxpool(&be, 4, 64, 32, 32, 3, 2, 1);
  check_maxpool(&be, 2, 3, 17, 18, 3, 1, 1);
  check_maxpool(&be, 3, 5, 9, 7, 2, 2, 0);

  be.release(&be, dx_);
  be.release(&be, dy_);
  be.release(&be, dz_);
  be.release(&be, dw_);
  be.release(&be, dmask);
  be.destroy(&be);
  free(x); free(y); free(want); free(g); free(b2); free(bound); free(bits); free(wbits);
  free(poison); free(pbits); free(w); free(buf); free(eb);
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

#else /* !AAL_HAVE_CUDA */

int main(void)
{
  printf("built without CUDA: skipped\n");
  return SKIP;
}

#endif
