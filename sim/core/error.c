#include "sim/core/error.h"

#include <stdarg.h>
#include <stdio.h>

int aal_fail(aal_error *err, int code, const char *fmt, ...)
{
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

void aal_error_clear(aal_error *err)
{
  if (err != NULL) {
    err->code = AAL_OK;
    err->msg[0] = '\0';
  }
}

const char *aal_status_name(int code)
{
  switch (code) {
  case AAL_OK: return "ok";
  case AAL_EINVAL: return "invalid argument";
  case AAL_ESHAPE: return "shape mismatch";
  case AAL_ENOMEM: return "out of memory";
  case AAL_EIO: return "i/o error";
  case AAL_EFORMAT: return "bad file format";
  case AAL_ENUMERIC: return "non-finite number";
  case AAL_ETAPE: return "tape error";
  default: return "unknown error";
  }
}
