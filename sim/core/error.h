/* Error codes and messages for libaal (GSL style: library code returns a status,
 * never aborts; the message goes into a caller-owned aal_error, so no global state). */
#ifndef AAL_ERROR_H
#define AAL_ERROR_H

#include <stddef.h>

/* The reference is the oracle: IEEE semantics, no reassociation. */
#if defined(__FAST_MATH__)
#error "libaal must not be built with -ffast-math or -Ofast"
#endif

enum aal_status {
  AAL_OK = 0,
  AAL_EINVAL = 1,   /* bad argument: a size, a shape, an option */
  AAL_ESHAPE = 2,   /* shapes of the operands do not agree */
  AAL_ENOMEM = 3,   /* allocation failed or a size overflows */
  AAL_EIO = 4,      /* a file could not be read or written */
  AAL_EFORMAT = 5,  /* a file's content is malformed */
  AAL_ENUMERIC = 6, /* NaN or Inf where a finite number is required */
  AAL_ETAPE = 7     /* the tape does not hold what backward asked for */
};

#define AAL_ERRMSG_LEN 512

/* Filled by the first failure; callers may pass NULL when they only want the code. */
typedef struct {
  int code;
  char msg[AAL_ERRMSG_LEN];
} aal_error;

/* Records code and a printf-style message in err (when non-NULL) and returns code,
 * so that library functions can write `return aal_fail(err, AAL_EINVAL, "...")`. */
int aal_fail(aal_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void aal_error_clear(aal_error *err);
const char *aal_status_name(int code);

#endif
