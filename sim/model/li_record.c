#include "sim/model/li_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/layers/li.h"

static void on_conv(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *x,
                    const aal_tensor *h, const aal_tensor *r)
{
  aal_li_recorder *rec = ctx;
  (void)x;
  if (rec->rc != AAL_OK || (source == AAL_R_INPUT && !rec->include_bp))
    return;
  const size_t n = h->shape[0];
  double *li = malloc(n * sizeof *li);
  unsigned char *valid = malloc(n);
  size_t zero = 0;
  aal_li_summary s;
  int rc = (li && valid) ? AAL_OK : aal_fail(&rec->err, AAL_ENOMEM, "LI buffers");
  if (rc == AAL_OK)
    rc = rec->ops->li_reduce(rec->ops, h, r, li, valid, &zero, &rec->err);
  if (rc == AAL_OK)
    rc = aal_li_summarize(li, valid, n, &s, &rec->err);
  for (size_t i = 0; rc == AAL_OK && rec->li != NULL && i < n; i++) {
    if (valid[i])
      fprintf(rec->li, "%lu,%s,%zu,%.17g\n", rec->step + 1, u->conv_name, i, li[i]);
    else
      fprintf(rec->li, "%lu,%s,%zu,\n", rec->step + 1, u->conv_name, i);
  }
  if (rc == AAL_OK && rec->summary != NULL)
    fprintf(rec->summary, "%lu,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%zu,%zu\n", rec->step + 1,
            u->conv_name, s.min, s.p05, s.median, s.mean, s.max, s.count, s.zero_norm);
  rec->layers++;
  rec->rc = rc;
  free(li);
  free(valid);
}

int aal_li_recorder_attach(aal_li_recorder *rec, aal_resnet_pass *pass, FILE *li, FILE *summary,
                           long step, int include_bp, aal_error *err)
{
  if (rec == NULL || pass == NULL || step < 0)
    return aal_fail(err, AAL_EINVAL, "LI recorder: bad arguments");
  memset(rec, 0, sizeof *rec);
  rec->li = li;
  rec->summary = summary;
  rec->step = (unsigned long)step;
  rec->include_bp = include_bp;
  rec->ops = aal_ops_or_ref(pass->ops);
  pass->observer.conv_forward = on_conv;
  pass->observer.ctx = rec;
  return AAL_OK;
}

int aal_li_recorder_finish(aal_li_recorder *rec, int rc, aal_error *err)
{
  if (rc != AAL_OK)
    return rc;
  if (rec->rc != AAL_OK && err != NULL)
    *err = rec->err;
  return rec->rc;
}

static int open_one(const char *run_dir, const char *name, const char *header, const char *mode,
                    FILE **f, aal_error *err)
{
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", run_dir, name) >= (int)sizeof path)
    return aal_fail(err, AAL_EINVAL, "path too long: %s/%s", run_dir, name);
  if ((*f = fopen(path, mode)) == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  if (mode[0] == 'w')
    fputs(header, *f);
  return AAL_OK;
}

int aal_li_files_open(const char *run_dir, const char *mode, FILE **li, FILE **summary,
                      aal_error *err)
{
  int rc = open_one(run_dir, "li.csv", AAL_LI_CSV_HEADER, mode, li, err);
  if (rc == AAL_OK)
    rc = open_one(run_dir, "li_summary.csv", AAL_LI_SUMMARY_HEADER, mode, summary, err);
  return rc;
}
