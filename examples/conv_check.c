/* A deliberately simple conv2d kernel (float32, naive loops) held against AAL's double
 * reference through the installed C API (kernels/check/external.h).
 *
 *   cc conv_check.c -o conv_check $(pkg-config --cflags --libs aal) && ./conv_check [SEED]
 *
 * Prints one row per output (max error/bound, the worst element) and exits 0 when the
 * kernel passes, 1 when it fails, 2 when the check could not run.  Built with -DBROKEN
 * the kernel reads the input one column to the right (an off-by-one): the check must
 * report it failing.  `make installcheck` builds and runs both. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/check/external.h"

/* x [N, C, H, W], w [K, C, R, S], y [N, K, P, Q]: stride 1, padding 1 keep 8x8 */
enum { N = 2, C = 3, H = 8, W = 8, K = 4, R = 3, S = 3, STRIDE = 1, PAD = 1, P = 8, Q = 8 };

#ifdef BROKEN
#define SHIFT 1 /* the slip */
#else
#define SHIFT 0
#endif

/* The candidate: y = conv2d(x, w), no bias, summed in float. */
static void conv(const float *x, const float *w, float *y)
{
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++) {
          float sum = 0.0f;
          for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
              for (int s = 0; s < S; s++) {
                const int ih = p * STRIDE - PAD + r, iw = q * STRIDE - PAD + s + SHIFT;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                  sum += w[((k * C + c) * R + r) * S + s] * x[((n * C + c) * H + ih) * W + iw];
              }
          y[((n * K + k) * P + p) * Q + q] = sum;
        }
}

/* Uniform on +-[1/1024, 1) from a 64-bit LCG (never zero). */
static float draw(unsigned long long *state)
{
  float v;
  do {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    v = (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  } while (v > -1.0f / 1024 && v < 1.0f / 1024);
  return v;
}

int main(int argc, char **argv)
{
  static float x[N * C * H * W], w[K * C * R * S], y[N * K * P * Q];
  unsigned long long seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
  printf("conv_check%s: seed %llu\n", SHIFT ? " (BROKEN: off by one)" : "", seed);
  for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
    x[i] = draw(&seed);
  for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
    w[i] = draw(&seed);
  for (size_t i = 0; i < sizeof y / sizeof y[0]; i++)
    y[i] = 0.0f / 0.0f; /* poisoned: an element the kernel does not write fails */
  conv(x, w, y);

  aal_kcheck_args a;
  aal_kcheck_args_init(&a); /* storage and arithmetic float32 */
  a.op = "conv_forward";
  a.stride = STRIDE;
  a.pad = PAD;
  const aal_kcheck_tensor in[2] = {{"x", AAL_KCHECK_F32, 4, {N, C, H, W}, x, NULL},
                                   {"w", AAL_KCHECK_F32, 4, {K, C, R, S}, w, NULL}};
  const aal_kcheck_tensor out[1] = {{"y", AAL_KCHECK_F32, 4, {N, K, P, Q}, y, NULL}};
  aal_kcheck_report r;
  aal_error err;
  if (aal_kcheck_external(&a, in, 2, out, 1, &r, &err) != AAL_OK) {
    fprintf(stderr, "conv_check: %s\n", err.msg);
    return 2;
  }
  aal_kcheck_report_print(stdout, &r);
  return r.failed ? 1 : 0;
}
