#include "sim/model/li_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/core/comm.h"
#include "sim/layers/li.h"

/* Process 0 receives every process's LI and valid flags of its slice of the batch, in
 * rank order, which is the whole batch's sample order; *li and *valid are replaced by the
 * whole batch's (on process 0) and *total is its size.  A failure any process saw alone
 * stops the run (the others would wait in this gather). */
static int gather_slices(aal_li_recorder *rec, int rc, double **li, unsigned char **valid,
                         size_t *total)
{
  const aal_comm *c = rec->comm;
  const size_t n = *total, p = (size_t)c->size;
  double *mine = rc == AAL_OK ? malloc(2 * n * sizeof *mine) : NULL;
  double *all = c->rank == 0 && mine ? malloc(2 * n * p * sizeof *all) : NULL;
  double *wli = c->rank == 0 && all ? malloc(n * p * sizeof *wli) : NULL;
  unsigned char *wvalid = c->rank == 0 && wli ? malloc(n * p) : NULL;
  if (rc == AAL_OK && (mine == NULL || (c->rank == 0 && wvalid == NULL)))
    rc = aal_fail(&rec->err, AAL_ENOMEM, "LI: cannot gather %zu samples", n * p);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal: rank %d of %d: %s\n", c->rank, c->size, rec->err.msg);
    c->abort(c, rc);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    mine[i] = (*li)[i];
    mine[n + i] = (*valid)[i];
  }
  rc = c->gather(c, mine, 2 * n * sizeof *mine, all, &rec->err);
  for (size_t k = 0; rc == AAL_OK && c->rank == 0 && k < p; k++)
    for (size_t i = 0; i < n; i++) {
      wli[k * n + i] = all[2 * n * k + i];
      wvalid[k * n + i] = all[2 * n * k + n + i] != 0.0;
    }
  free(mine);
  free(all);
  if (c->rank == 0) {
    free(*li);
    free(*valid);
    *li = wli;
    *valid = wvalid;
  }
  *total = n * p;
  return rc;
}

static void on_conv(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *x,
                    const aal_tensor *h, const aal_tensor *r)
{
  aal_li_recorder *rec = ctx;
  (void)x;
  if (rec->rc != AAL_OK || (source == AAL_R_INPUT && !rec->include_bp))
    return;
  size_t n = h->shape[0];
  double *li = malloc(n * sizeof *li);
  unsigned char *valid = malloc(n);
  size_t zero = 0;
  aal_li_summary s;
  int rc = (li && valid) ? AAL_OK : aal_fail(&rec->err, AAL_ENOMEM, "LI buffers");
  if (rc == AAL_OK)
    rc = rec->ops->li_reduce(rec->ops, h, r, li, valid, &zero, &rec->err);
  size_t total = n;
  if (aal_comm_size(rec->comm) > 1) {
    rc = gather_slices(rec, rc, &li, &valid, &total);
    if (aal_comm_rank(rec->comm) != 0) { /* process 0 writes the whole batch's rows */
      free(li);
      free(valid);
      return;
    }
  }
  n = total;
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
