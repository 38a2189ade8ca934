/* The op table's shared pieces: conv shape arithmetic, argument checks, opening a
 * backend by name (kernels/backend.h), the stubs of the optional backends. */
#include <config.h>

#include "kernels/backend.h"
#include "kernels/backend_check.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

int aal_conv_shape_init(aal_conv_shape *cs, aal_error *err)
{
  if (cs == NULL)
    return aal_fail(err, AAL_EINVAL, "conv shape: NULL shape");
  if (cs->n < 1 || cs->c < 1 || cs->h < 1 || cs->w < 1 || cs->k < 1 || cs->r < 1 ||
      cs->s < 1)
    return aal_fail(err, AAL_EINVAL,
                    "conv shape: sizes must be >= 1 (x %dx%dx%dx%d, w %dx%dx%dx%d)", cs->n,
                    cs->c, cs->h, cs->w, cs->k, cs->c, cs->r, cs->s);
  if (cs->stride < 1 || cs->pad < 0)
    return aal_fail(err, AAL_EINVAL, "conv shape: stride %d (must be >= 1), pad %d (>= 0)",
                    cs->stride, cs->pad);
  /* long arithmetic: h + 2 pad cannot overflow an int's range here */
  const long hp = (long)cs->h + 2L * cs->pad - cs->r, wp = (long)cs->w + 2L * cs->pad - cs->s;
  if (hp < 0 || wp < 0)
    return aal_fail(err, AAL_EINVAL,
                    "conv shape: empty output (x %dx%d, pad %d, kernel %dx%d)", cs->h, cs->w,
                    cs->pad, cs->r, cs->s);
  cs->p = (int)(hp / cs->stride + 1);
  cs->q = (int)(wp / cs->stride + 1);
  return AAL_OK;
}

int aal_be_check_conv(const aal_conv_shape *cs, const char *op, aal_error *err)
{
  if (cs == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: NULL conv shape", op);
  aal_conv_shape t = *cs;
  aal_error e;
  if (aal_conv_shape_init(&t, &e) != AAL_OK)
    return aal_fail(err, AAL_EINVAL, "%s: %s", op, e.msg);
  if (t.p != cs->p || t.q != cs->q)
    return aal_fail(err, AAL_EINVAL, "%s: conv shape has output %dx%d, expected %dx%d "
                    "(call aal_conv_shape_init)", op, cs->p, cs->q, t.p, t.q);
  return AAL_OK;
}

int aal_be_check_ptrs(const char *op, const char *names, aal_error *err, int count, ...)
{
  va_list ap;
  va_start(ap, count);
  int bad = -1;
  for (int i = 0; i < count; i++)
    if (va_arg(ap, const void *) == NULL && bad < 0)
      bad = i;
  va_end(ap);
  if (bad >= 0)
    return aal_fail(err, AAL_EINVAL, "%s: argument %d of (%s) is NULL", op, bad + 1, names);
  return AAL_OK;
}

int aal_be_check_pos(const char *op, const char *name, long value, aal_error *err)
{
  if (value < 1)
    return aal_fail(err, AAL_EINVAL, "%s: %s is %ld (must be >= 1)", op, name, value);
  return AAL_OK;
}

int aal_be_check_count(const char *op, size_t n, size_t elem, aal_error *err)
{
  if (n == 0)
    return aal_fail(err, AAL_EINVAL, "%s: 0 elements", op);
  if (n > SIZE_MAX / elem)
    return aal_fail(err, AAL_ENOMEM, "%s: %zu elements of %zu bytes overflow", op, n, elem);
  return AAL_OK;
}

int aal_be_check_pool2d(const char *op, int n, int c, int h, int w, int k, int stride, int pad,
                        int *p, int *q, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "c", c, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "h", h, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "w", w, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "k", k, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "stride", stride, err)) != AAL_OK)
    return rc;
  if (pad < 0 || pad > k / 2)
    return aal_fail(err, AAL_EINVAL, "%s: pad is %d, must be in [0, k/2] = [0, %d] (k = %d)",
                    op, pad, k / 2, k);
  *p = aal_pool_out(h, k, stride, pad);
  *q = aal_pool_out(w, k, stride, pad);
  if (*p < 1 || *q < 1)
    return aal_fail(err, AAL_EINVAL, "%s: empty output (x %dx%d, pad %d, window %d)", op, h, w,
                    pad, k);
  const size_t planes = (size_t)n * (size_t)c;
  if ((size_t)h * (size_t)w > SIZE_MAX / sizeof(float) / planes)
    return aal_fail(err, AAL_ENOMEM, "%s: %dx%dx%dx%d elements overflow", op, n, c, h, w);
  return AAL_OK;
}

#ifndef AAL_HAVE_CUDA
/* Without CUDA the name still links, so that callers need no #ifdef. */
int aal_backend_cuda(aal_backend *be, aal_error *err)
{
  (void)be;
  return aal_fail(err, AAL_EINVAL, "backend cuda: this aal was built without CUDA "
                  "(configure --with-cuda)");
}
#endif

#ifndef AAL_HAVE_DNNL
int aal_backend_dnnl(aal_backend *be, aal_error *err)
{
  (void)be;
  return aal_fail(err, AAL_EINVAL, "backend dnnl: this aal was built without oneDNN "
                  "(install Debian's libdnnl-dev and configure --with-dnnl)");
}
#endif

int aal_backend_open(const char *name, aal_backend *be, aal_error *err)
{
  if (name == NULL || be == NULL)
    return aal_fail(err, AAL_EINVAL, "backend open: NULL %s", name == NULL ? "name" : "table");
  memset(be, 0, sizeof *be);
  if (strcmp(name, "ref") == 0)
    return aal_backend_ref(be, err);
  if (strcmp(name, "cpu32") == 0)
    return aal_backend_cpu32(be, err);
  if (strcmp(name, "dnnl") == 0)
    return aal_backend_dnnl(be, err);
  if (strcmp(name, "cuda") == 0)
    return aal_backend_cuda(be, err);
  return aal_fail(err, AAL_EINVAL, "backend open: unknown backend '%s' (ref, cpu32, dnnl, cuda)",
                  name);
}
