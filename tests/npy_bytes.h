/* An .npy file as numpy lays it out, for the tests and the fuzz seeds of the reader. */
#ifndef AAL_TESTS_NPY_BYTES_H
#define AAL_TESTS_NPY_BYTES_H

#include <stddef.h>
#include <string.h>

/* Magic, version, header length (u16 for 1.0, u32 for 2.0), the header text padded with
 * spaces and a final '\n' so that the data starts at a multiple of 64, the data.  Into
 * buf (large enough); returns its length. */
static inline size_t aal_test_npy_bytes(unsigned char *buf, int version, const char *header,
                                        const void *data, size_t ndata)
{
  const size_t pre = version == 1 ? 10 : 12, n = strlen(header);
  const size_t hlen = (pre + n + 1 + 63) / 64 * 64 - pre;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)version;
  buf[7] = 0;
  for (size_t i = 8; i < pre; i++)
    buf[i] = (unsigned char)(hlen >> (8 * (i - 8)));
  memcpy(buf + pre, header, n);
  memset(buf + pre + n, ' ', hlen - n - 1);
  buf[pre + hlen - 1] = '\n';
  memcpy(buf + pre + hlen, data, ndata);
  return pre + hlen + ndata;
}

#endif
