/* `aal kcheck --npy DIR`: a candidate's tensors from .npy files, held against the
 * reference (kernels/check/external.h).  DIR/op.txt names the op, its arguments and the
 * candidate's precision (`key = value` lines: aal_kcheck_args_read); DIR/NAME.npy holds
 * each input and each output the candidate gives, under the op's names for them (an
 * output updated in place, SGD's w and buf, as NAME_new.npy).  Values in the storage
 * format ('<f8', '<f4', '<f2'; bfloat16 as its uint16 bit patterns, '<u2'), labels
 * '<i8', masks and sign bits '|b1' or '|u1'.  Exit 0 when every output given passes, 1
 * when one fails (NaN included), 2 for input that cannot be checked (a missing, truncated
 * or malformed file, a wrong dtype or shape, a bad op file), naming the file. */
#include "sim/cli/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/check/external.h"
#include "sim/train/npy.h"

#define MAXT 8

/* The files of one check: paths, arrays and the tensors that point into them. */
typedef struct {
  const char *dir;
  aal_kcheck_args args;
  char op_buf[64], op_path[4200];
  const aal_kcheck_op_info *info;
  int nin, nout;
  char path[2 * MAXT][4200];
  aal_npy_array arr[2 * MAXT];
  aal_kcheck_tensor in[MAXT], out[MAXT];
} npy_check;

static int usage_error(const char *msg)
{
  fprintf(stderr, "aal kcheck: %s\n", msg);
  return 2;
}

/* The npy dtype as the check's (bfloat16 arrives as uint16 bit patterns). */
static int tensor_dtype(npy_check *c, const char *path, aal_npy_dtype t, aal_kcheck_dtype *out)
{
  switch (t) {
  case AAL_NPY_F64: *out = AAL_KCHECK_F64; return 0;
  case AAL_NPY_F32: *out = AAL_KCHECK_F32; return 0;
  case AAL_NPY_F16: *out = AAL_KCHECK_F16; return 0;
  case AAL_NPY_I64: *out = AAL_KCHECK_I64; return 0;
  case AAL_NPY_BOOL:
  case AAL_NPY_U8: *out = AAL_KCHECK_BOOL; return 0;
  case AAL_NPY_U16:
    if (c->args.storage == AAL_KCHECK_BF16) {
      *out = AAL_KCHECK_BF16;
      return 0;
    }
    fprintf(stderr, "aal kcheck: %s: uint16 ('<u2') is how bfloat16 arrives, but %s/op.txt "
            "says storage = %s\n", path, c->dir, aal_kcheck_dtype_name(c->args.storage));
    return 2;
  }
  return 2;
}

/* Reads DIR/STEM.npy into the next array and tensor; a missing output file (optional)
 * returns 1 and is skipped. */
static int load(npy_check *c, const char *name, const char *stem, int output)
{
  const int i = c->nin + c->nout;
  char *path = c->path[i];
  snprintf(path, sizeof c->path[i], "%s/%s.npy", c->dir, stem);
  if (output && access(path, F_OK) != 0 && errno == ENOENT)
    return 1;
  aal_error err;
  if (aal_npy_read(path, &c->arr[i], &err) != AAL_OK)
    return usage_error(err.msg);
  aal_kcheck_tensor *t = output ? &c->out[c->nout++] : &c->in[c->nin++];
  memset(t, 0, sizeof *t);
  t->name = name;
  t->source = path;
  t->ndim = c->arr[i].ndim;
  memcpy(t->shape, c->arr[i].shape, sizeof t->shape);
  t->data = c->arr[i].data;
  return tensor_dtype(c, path, c->arr[i].dtype, &t->dtype);
}

static int is_input(const aal_kcheck_op_info *info, const char *name)
{
  for (int i = 0; info->inputs[i] != NULL; i++)
    if (strcmp(info->inputs[i], name) == 0)
      return 1;
  return 0;
}

static int load_all(npy_check *c)
{
  int rc = 0;
  for (int i = 0; rc == 0 && c->info->inputs[i] != NULL; i++)
    rc = load(c, c->info->inputs[i], c->info->inputs[i], 0);
  char files[256] = "";
  for (int i = 0; rc == 0 && c->info->outputs[i] != NULL; i++) {
    const char *name = c->info->outputs[i];
    char stem[64];
    snprintf(stem, sizeof stem, is_input(c->info, name) ? "%s_new" : "%s", name);
    snprintf(files + strlen(files), sizeof files - strlen(files), "%s%s.npy", i ? ", " : "",
             stem);
    rc = load(c, name, stem, 1);
    rc = rc == 1 ? 0 : rc;
  }
  if (rc == 0 && c->nout == 0) {
    fprintf(stderr, "aal kcheck: %s holds no output of the candidate (%s gives %s)\n", c->dir,
            c->info->name, files);
    return 2;
  }
  return rc;
}

static int open_op(npy_check *c)
{
  snprintf(c->op_path, sizeof c->op_path, "%s/op.txt", c->dir);
  aal_error err;
  if (aal_kcheck_args_read(c->op_path, &c->args, c->op_buf, sizeof c->op_buf, &err) != AAL_OK)
    return usage_error(err.msg);
  if ((c->info = aal_kcheck_external_op(c->args.op)) == NULL) {
    fprintf(stderr, "aal kcheck: %s: unknown op '%s' (ops:", c->op_path, c->args.op);
    for (int i = 0; i < aal_kcheck_external_op_count(); i++)
      fprintf(stderr, " %s", aal_kcheck_external_op_at(i)->name);
    fprintf(stderr, ")\n");
    return 2;
  }
  return 0;
}

/* Prints the report; the exit status: 2 for an output of the wrong shape, 1 for a
 * failure, else 0 (each failed output named on stderr). */
static int verdict(const npy_check *c, const aal_kcheck_report *r)
{
  printf("kcheck --npy %s: %s, storage %s, accumulation %s\n", c->dir, r->op,
         aal_kcheck_dtype_name(c->args.storage), aal_kcheck_dtype_name(c->args.accumulation));
  aal_kcheck_report_print(stdout, r);
  fflush(stdout);
  for (int i = 0; i < r->noutputs; i++) {
    const aal_kcheck_output *o = &r->out[i];
    if (o->shape_mismatch)
      fprintf(stderr, "aal kcheck: %s: %s\n", o->source, o->note);
    else if (o->failed)
      fprintf(stderr, "aal kcheck: %s: FAIL, err/bound %.3g\n", o->source, o->ratio);
  }
  return r->shape_mismatches > 0 ? 2 : r->failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int aal_cmd_kcheck_npy(const char *dir)
{
  npy_check *c = calloc(1, sizeof *c);
  if (c == NULL)
    return usage_error("out of memory");
  c->dir = dir;
  int rc = open_op(c);
  if (rc == 0)
    rc = load_all(c);
  if (rc == 0) {
    aal_kcheck_report r;
    aal_error err;
    const int st = aal_kcheck_external(&c->args, c->in, c->nin, c->out, c->nout, &r, &err);
    if (st == AAL_EINVAL) {
      rc = usage_error(err.msg);
    } else if (st != AAL_OK) { /* the check itself could not run (memory) */
      fprintf(stderr, "aal kcheck: %s (%s)\n", err.msg, aal_status_name(st));
      rc = EXIT_FAILURE;
    } else {
      rc = verdict(c, &r);
    }
  }
  for (int i = 0; i < 2 * MAXT; i++)
    aal_npy_free(&c->arr[i]);
  free(c);
  return rc;
}
