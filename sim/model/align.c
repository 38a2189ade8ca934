#include "sim/model/align.h"

#include <math.h>
#include <stdlib.h>

#include "sim/core/comm.h"
#include "sim/ops/ops.h"

void aal_align_sums(const double *a, const double *b, size_t n, double *dot, double *aa,
                    double *bb)
{
  double d = 0, x = 0, y = 0;
  for (size_t i = 0; i < n; i++) {
    d += a[i] * b[i];
    x += a[i] * a[i];
    y += b[i] * b[i];
  }
  *dot = d;
  *aa = x;
  *bb = y;
}

static int records(const aal_align_recorder *rec, aal_r_source source)
{
  return rec->rc == AAL_OK && (source != AAL_R_INPUT || rec->include_bp);
}

static void on_forward(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *x,
                       const aal_tensor *h, const aal_tensor *r)
{
  aal_align_recorder *rec = ctx;
  if (rec->next.conv_forward != NULL)
    rec->next.conv_forward(rec->next.ctx, u, source, x, h, r);
  if (!records(rec, source))
    return;
  if (rec->ninputs == rec->capacity) {
    const int cap = rec->capacity ? 2 * rec->capacity : 16;
    aal_align_input *grown = realloc(rec->inputs, (size_t)cap * sizeof *grown);
    if (grown == NULL) {
      rec->rc = aal_fail(&rec->err, AAL_ENOMEM, "gradient alignment: inputs");
      return;
    }
    rec->inputs = grown;
    rec->capacity = cap;
  }
  /* the forward pass never writes into a tensor once made, so holding h is holding its
   * values as the conv saw them */
  rec->inputs[rec->ninputs].weight = u->weight;
  rec->inputs[rec->ninputs].h = aal_tensor_retain((aal_tensor *)h);
  rec->ninputs++;
}

static const aal_tensor *kept_input(const aal_align_recorder *rec, int weight)
{
  for (int i = 0; i < rec->ninputs; i++)
    if (rec->inputs[i].weight == weight)
      return rec->inputs[i].h;
  return NULL;
}

/* In a data-parallel run (rec->comm) g_rule and g_bp are this process's parts: both are
 * summed over the processes (the order of sim/core/comm.h) and scaled by 1/N, as the step
 * sums the gradients, before the sums; process 0 writes the row. */
static int whole_batch(const aal_align_recorder *rec, const aal_tensor *a, const aal_tensor *b,
                       double **sum, aal_error *err)
{
  const aal_comm *c = rec->comm;
  double *v = malloc(2 * a->size * sizeof *v);
  int rc = v != NULL ? AAL_OK : aal_fail(err, AAL_ENOMEM, "gradient alignment: sums");
  if (rc != AAL_OK) { /* the others would wait in the sum */
    c->abort(c, rc);
    return rc;
  }
  for (size_t i = 0; i < a->size; i++) {
    v[i] = a->data[i];
    v[a->size + i] = b->data[i];
  }
  rc = c->sum(c, v, 2 * a->size, err);
  const double inv = 1.0 / c->size;
  for (size_t i = 0; i < 2 * a->size; i++)
    v[i] *= inv;
  *sum = v;
  return rc;
}

static int write_row(aal_align_recorder *rec, const aal_conv_bn *u, const aal_tensor *g_rule,
                     const aal_tensor *g_bp)
{
  aal_tensor *a = aal_tensor_host_view(g_rule, &rec->err);
  aal_tensor *b = a != NULL ? aal_tensor_host_view(g_bp, &rec->err) : NULL;
  if (b == NULL) {
    aal_tensor_release(a);
    return AAL_ENOMEM;
  }
  double dot, aa, bb, *whole = NULL;
  int rc = AAL_OK;
  if (aal_comm_size(rec->comm) > 1)
    rc = whole_batch(rec, a, b, &whole, &rec->err);
  if (rc == AAL_OK && whole != NULL)
    aal_align_sums(whole, whole + a->size, a->size, &dot, &aa, &bb);
  else if (rc == AAL_OK)
    aal_align_sums(a->data, b->data, a->size, &dot, &aa, &bb);
  free(whole);
  aal_tensor_release(a);
  aal_tensor_release(b);
  if (rc != AAL_OK || rec->out == NULL)
    return rc;
  fprintf(rec->out, "%lu,%s,", rec->step + 1, u->conv_name);
  if (aa > 0 && bb > 0)
    fprintf(rec->out, "%.17g,", dot / (sqrt(aa) * sqrt(bb)));
  else
    fputc(',', rec->out);
  if (bb > 0)
    fprintf(rec->out, "%.17g,", dot / bb);
  else
    fputc(',', rec->out);
  fprintf(rec->out, "%.17g,%.17g\n", sqrt(aa), sqrt(bb));
  rec->layers++;
  return AAL_OK;
}

static void on_backward(void *ctx, const aal_conv_bn *u, aal_r_source source, const aal_tensor *r,
                        const aal_tensor *dy, const aal_tensor *dw)
{
  aal_align_recorder *rec = ctx;
  if (rec->next.conv_backward != NULL)
    rec->next.conv_backward(rec->next.ctx, u, source, r, dy, dw);
  if (!records(rec, source))
    return;
  const aal_tensor *h = kept_input(rec, u->weight);
  if (h == NULL) {
    rec->rc = aal_fail(&rec->err, AAL_EINVAL, "gradient alignment: %s has no input kept from "
                       "the forward pass", u->conv_name);
    return;
  }
  aal_tensor *g_bp = aal_ops_tensor_like(rec->ops, dw, AAL_F64, &rec->err);
  int rc = g_bp != NULL ? AAL_OK : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = rec->ops->conv_backward_filter(rec->ops, h, dy, u->stride, u->pad, g_bp, &rec->err);
  if (rc == AAL_OK && (rec->out != NULL || aal_comm_size(rec->comm) > 1))
    rc = write_row(rec, u, dw, g_bp);
  aal_tensor_release(g_bp);
  rec->rc = rc;
}

int aal_align_recorder_attach(aal_align_recorder *rec, aal_resnet_pass *pass, FILE *out,
                              long step, int include_bp, aal_error *err)
{
  if (rec == NULL || pass == NULL || step < 0)
    return aal_fail(err, AAL_EINVAL, "gradient alignment: bad arguments");
  *rec = (aal_align_recorder){0};
  rec->out = out;
  rec->step = (unsigned long)step;
  rec->include_bp = include_bp;
  rec->ops = aal_ops_or_ref(pass->ops);
  rec->next = pass->observer;
  pass->observer.conv_forward = on_forward;
  pass->observer.conv_backward = on_backward;
  pass->observer.ctx = rec;
  return AAL_OK;
}

int aal_align_recorder_finish(aal_align_recorder *rec, int rc, aal_error *err)
{
  for (int i = 0; i < rec->ninputs; i++)
    aal_tensor_release(rec->inputs[i].h);
  free(rec->inputs);
  rec->inputs = NULL;
  rec->ninputs = rec->capacity = 0;
  if (rc != AAL_OK)
    return rc;
  if (rec->rc != AAL_OK && err != NULL)
    *err = rec->err;
  return rec->rc;
}
