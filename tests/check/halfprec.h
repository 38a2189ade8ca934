/* float16 and bfloat16 for the tests (the library only decodes them, in
 * kernels/check/external.c; these are the tests' own, written separately): encoders
 * rounding to nearest even, and decoders. */
#ifndef AAL_TESTS_HALFPREC_H
#define AAL_TESTS_HALFPREC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* double to IEEE binary16 bits, rounded to nearest even: x is scaled so that its last
 * kept bit is the units digit, rounded with rint (the default rounding mode), scaled
 * back; 2^-24 is the subnormal step. */
static inline uint16_t to_half(double x)
{
  const uint16_t sign = signbit(x) ? 0x8000 : 0;
  const double a = fabs(x);
  if (isnan(a))
    return 0x7e00;
  int e;
  frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
  const int step = e - 11 < -24 ? -24 : e - 11;
  const double r = ldexp(rint(ldexp(a, -step)), step); /* a rounded to 11 bits */
  if (r > 65504.0)
    return sign | 0x7c00;
  if (r < 0x1p-14) /* subnormal (or 0): r / 2^-24 */
    return sign | (uint16_t)ldexp(r, 24);
  frexp(r, &e);
  return sign | (uint16_t)((e + 14) << 10) | (uint16_t)(ldexp(r, 11 - e) - 1024);
}

/* double to bfloat16 bits: via float (exact for floats), then the float's low 16 bits
 * rounded to nearest even. */
static inline uint16_t to_bf16(double x)
{
  const float f = (float)x;
  uint32_t w;
  memcpy(&w, &f, sizeof w);
  w += 0x7fff + ((w >> 16) & 1);
  return (uint16_t)(w >> 16);
}

static inline double half_value(uint16_t h)
{
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
  return h & 0x8000 ? -v : v;
}

static inline double bf16_value(uint16_t b)
{
  const uint32_t w = (uint32_t)b << 16;
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}

#endif
