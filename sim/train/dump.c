/* `aal dump`: one training step's input, labels, parameters and gradients as .npy files
 * named as in PyTorch, for analysis in numpy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim/train/checkpoint.h"
#include "sim/train/npy.h"
#include "sim/train/train_internal.h"

void aal_dump_opts_default(aal_dump_opts *o)
{
  memset(o, 0, sizeof *o);
  o->rule = "bp";
  o->out_dir = "dump";
  o->batch = 32;
  o->width = 1.0;
  o->model = "resnet18";
  o->stem = "tiny";
  o->blocks = NULL;
  o->seed = 1;
  o->backend = "ref";
}

static int write_tensors(const aal_resnet *net, const char *dir, int grads, aal_error *err)
{
  char path[PATH_MAX];
  int rc = aal_mkdir_p(dir, err);
  for (int i = 0; i < net->nparams && rc == AAL_OK; i++) {
    const aal_param *p = &net->params[i];
    const aal_tensor *t = grads ? p->grad : p->value;
    if (t == NULL)
      continue;  /* buffers (running statistics) have no gradient */
    if (snprintf(path, sizeof path, "%s/%s.npy", dir, p->name) >= (int)sizeof path)
      return aal_fail(err, AAL_EINVAL, "path too long: %s/%s.npy", dir, p->name);
    aal_tensor *h = aal_tensor_host_view(t, err);  /* a copy if it lives on a backend */
    rc = h != NULL ? aal_npy_write_f64(path, h->ndim, h->shape, h->data, err) : AAL_ENOMEM;
    aal_tensor_release(h);
  }
  return rc;
}

static int write_batch(const aal_train_run *r, const char *out, aal_error *err)
{
  char path[PATH_MAX];
  const size_t n = (size_t)r->o.batch;
  int64_t *labels = malloc(n * sizeof *labels);
  if (labels == NULL)
    return aal_fail(err, AAL_ENOMEM, "dump: labels");
  for (size_t i = 0; i < n; i++)
    labels[i] = r->labels[i];
  int rc = aal_train_path(path, sizeof path, out, "input.npy", err);
  if (rc == AAL_OK)
    rc = aal_npy_write_f64(path, 4, r->x->shape, r->x->data, err);
  if (rc == AAL_OK)
    rc = aal_train_path(path, sizeof path, out, "labels.npy", err);
  if (rc == AAL_OK)
    rc = aal_npy_write_i64(path, 1, &n, labels, err);
  free(labels);
  return rc;
}

/* forward and backward of step `step` on the batch already in r->x */
static int one_step(aal_train_run *r, long step, FILE *log, aal_error *err)
{
  aal_resnet_pass pass;
  aal_tape *tape = aal_tape_new(err);
  double loss = 0;
  int rc = tape ? aal_train_pass(r, step, &pass, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_resnet_forward(&r->net, &pass, r->x, r->labels, tape, &loss, NULL, err);
  if (rc == AAL_OK)
    rc = aal_resnet_backward(&r->net, &pass, tape, r->labels, err);
  aal_tape_free(tape);
  if (rc == AAL_OK && log != NULL)
    fprintf(log, "dump: %s, step %ld, loss %.17g\n", r->rule_text, step, loss);
  return rc;
}

int aal_dump(const aal_dump_opts *d, FILE *log, aal_error *err)
{
  aal_train_opts o;
  aal_train_opts_default(&o);
  o.rule = d->rule;
  o.data_dir = d->data_dir;
  o.cache_dir = d->cache_dir;
  o.batch = d->batch;
  o.width = d->width;
  o.blocks = d->blocks;
  o.model = d->model;
  o.stem = d->stem;
  o.seed = d->seed;
  o.backend = d->backend;
  if (d->step < 0 || d->step >= LONG_MAX)
    return aal_fail(err, AAL_EINVAL, "--step %ld must be in 0..%ld", d->step, LONG_MAX - 1);
  o.steps = d->step + 1;
  aal_train_run r;
  int rc = aal_train_run_open(&r, &o, log, err);
  uint64_t ckpt_step = 0;
  if (rc == AAL_OK && d->checkpoint != NULL)
    rc = aal_checkpoint_load(&r.net, &ckpt_step, d->checkpoint, err);
  char dir[PATH_MAX];
  if (rc == AAL_OK)
    rc = aal_mkdir_p(d->out_dir, err);
  if (rc == AAL_OK)
    rc = aal_train_batch(&r, d->step, err);
  if (rc == AAL_OK)
    rc = write_batch(&r, d->out_dir, err);
  /* parameters and buffers as they are before the step (its forward pass moves the BN
   * running statistics) */
  if (rc == AAL_OK)
    rc = aal_train_path(dir, sizeof dir, d->out_dir, "params", err);
  if (rc == AAL_OK)
    rc = write_tensors(&r.net, dir, 0, err);
  if (rc == AAL_OK)
    rc = one_step(&r, d->step, log, err);
  if (rc == AAL_OK)
    rc = aal_train_path(dir, sizeof dir, d->out_dir, "grads", err);
  if (rc == AAL_OK)
    rc = write_tensors(&r.net, dir, 1, err);
  aal_train_run_close(&r);
  return rc;
}
