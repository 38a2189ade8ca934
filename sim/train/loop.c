/* The training loop: one step after another, evaluation, metrics.csv, checkpoints,
 * progress, and the resume that continues a run bit-identically. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/core/clock.h"
#include "sim/train/checkpoint.h"
#include "sim/layers/layers.h"
#include "sim/model/align.h"
#include "sim/model/li_record.h"
#include "sim/train/train_internal.h"

#define METRICS_HEADER \
  "step,epoch,lr,loss,train_acc,val_loss,val_acc,tape_bytes,tape_bytes_f32,seconds\n"

typedef struct {
  double t0, seconds_before;  /* wall clock at (re)start; seconds of earlier sessions */
  double last_print;
  long first_step;
  double data_seconds, step_seconds;  /* batch assembly, and whole training steps */
  long steps_timed;
  aal_comm_stats comm;  /* data parallel: this process's collectives inside the steps */
} clock_state;

/* A failure this process saw alone in a data-parallel run, where the others wait in a
 * collective: it stops every process (its message first).  Nothing for one process. */
static int alone(const aal_train_run *r, int rc, const aal_error *err)
{
  if (rc != AAL_OK && r->ranks > 1) {
    fprintf(stderr, "aal train: rank %d of %d: %s; stopping every rank\n", r->rank, r->ranks,
            err != NULL ? err->msg : "failed");
    fflush(stderr);
    r->comm->abort(r->comm, rc);
  }
  return rc;
}

/* The validation set in batches; batch k runs on process k mod ranks, and the batches'
 * loss sums and correct counts are added in batch order, as one process adds them. */
static int evaluate(aal_train_run *r, double *loss, double *acc, aal_error *err)
{
  const size_t n = r->ds.val.n, b = (size_t)r->o.batch, nb = (n + b - 1) / b;
  size_t *idx = malloc(b * sizeof *idx);
  int *labels = malloc(b * sizeof *labels);
  double *sums = calloc(2 * nb, sizeof *sums); /* [nb] loss sums, then [nb] correct */
  aal_tensor *x = NULL, *logits = NULL, *prob = NULL;
  int rc = (idx && labels && sums) ? AAL_OK : aal_fail(err, AAL_ENOMEM, "evaluation buffers");
  for (size_t start = 0, k = 0; start < n && rc == AAL_OK; start += b, k++) {
    const size_t m = n - start < b ? n - start : b;
    if (k % (size_t)r->ranks != (size_t)r->rank)
      continue;
    for (size_t i = 0; i < m; i++)
      idx[i] = start + i;
    aal_tensor_release(x);
    aal_tensor_release(logits);
    aal_tensor_release(prob);
    x = aal_tensor_new4((long)m, r->ds.geom.channels, r->ds.geom.size, r->ds.geom.size, err);
    logits = aal_tensor_new2((long)m, r->ds.classes, err);
    prob = aal_tensor_new2((long)m, r->ds.classes, err);
    if (x == NULL || logits == NULL || prob == NULL) {
      rc = AAL_ENOMEM;
      break;
    }
    rc = aal_augment_eval_batch(&r->ds.geom, r->ds.val.pixels, r->ds.val.labels, n, idx, m, x,
                                labels, err);
    double mean = 0;
    if (rc == AAL_OK)
      rc = aal_resnet_move(&r->net, r->ops.table, err);
    if (rc == AAL_OK)
      rc = aal_resnet_forward_eval_ops(&r->net, r->ops.table, x, logits, err);
    if (rc == AAL_OK)
      rc = aal_xent_forward(logits, labels, &mean, prob, err);
    sums[k] = mean * (double)m;
    long right = 0;
    for (size_t i = 0; rc == AAL_OK && i < m; i++) {
      const double *row = prob->data + i * (size_t)r->ds.classes;
      int best = 0;
      for (int c = 1; c < r->ds.classes; c++)
        if (row[c] > row[best])
          best = c;
      right += best == labels[i];
    }
    sums[nb + k] = (double)right;
  }
  rc = alone(r, rc, err);
  if (rc == AAL_OK) /* the others' batches are 0 here: adding them changes no bit */
    rc = alone(r, aal_comm_sum(r->comm, sums, 2 * nb, err), err);
  double total = 0, right = 0;
  for (size_t k = 0; rc == AAL_OK && k < nb; k++) {
    total += sums[k];
    right += sums[nb + k];
  }
  *loss = n ? total / (double)n : NAN;
  *acc = n ? right / (double)n : NAN;
  aal_tensor_release(x);
  aal_tensor_release(logits);
  aal_tensor_release(prob);
  free(idx);
  free(labels);
  free(sums);
  return rc;
}

static void format_eta(char *buf, size_t len, double seconds)
{
  if (!(seconds >= 0) || seconds > 1e7)
    snprintf(buf, len, "?");
  else if (seconds >= 3600)
    snprintf(buf, len, "%dh%02dm", (int)(seconds / 3600), (int)fmod(seconds / 60, 60));
  else
    snprintf(buf, len, "%dm%02ds", (int)(seconds / 60), (int)fmod(seconds, 60));
}

static void progress(const aal_train_run *r, clock_state *c, long done, double loss, double acc,
                     int final)
{
  if (r->log == NULL)
    return;
  const double now = aal_clock_now(), elapsed = now - c->t0;
  const long in_session = done - c->first_step;
  const double rate = elapsed > 0 ? (double)in_session * r->o.batch / elapsed : 0;
  char eta[32];
  format_eta(eta, sizeof eta,
             in_session > 0 ? elapsed / (double)in_session * (double)(r->total_steps - done) : -1);
  if (r->o.progress == 1) {
    const int width = 30, filled = (int)(width * done / (r->total_steps ? r->total_steps : 1));
    fprintf(r->log, "\r[%.*s%*s] %ld/%ld loss %.4f acc %.3f %.1f img/s ETA %s ", filled,
            "==============================", width - filled, "", done, r->total_steps, loss,
            acc, rate, eta);
    if (final)
      fputc('\n', r->log);
    fflush(r->log);
    return;
  }
  if (!final && now - c->last_print < 10.0 && done != 1 + c->first_step)
    return;
  c->last_print = now;
  fprintf(r->log, "step %ld/%ld  loss %.4f  acc %.3f  %.1f img/s  ETA %s\n", done,
          r->total_steps, loss, acc, rate, eta);
  fflush(r->log);
}

/* The loss beyond which a run counts as diverged: 1e6 times ln(classes), the loss of a
 * uniform guess (a fixed bound, so a resumed run stops where the whole run would). */
static double loss_bound(const aal_train_run *r)
{
  return 1e6 * log((double)r->ds.classes);
}

static int diverged(const aal_train_run *r, long done, const char *what, aal_error *err)
{
  char path[PATH_MAX];
  aal_train_path(path, sizeof path, r->out_dir, "checkpoint.bin", NULL);
  const int have = access(path, R_OK) == 0;
  return aal_fail(err, AAL_ENUMERIC,
                  "step %ld: %s: the run diverged and stops here; %s%s (try a lower --lr)",
                  done, what,
                  have ? "its last good checkpoint is kept in " : "no checkpoint was written yet",
                  have ? path : "");
}

/* The first parameter (value or momentum) holding a non-finite number, or NULL. */
static int first_non_finite(const aal_train_run *r, const char **name, aal_error *err)
{
  *name = NULL;
  for (int i = 0; i < r->net.nparams && *name == NULL; i++) {
    const aal_param *p = &r->net.params[i];
    const aal_tensor *t[2] = {p->value, p->momentum};
    for (int k = 0; k < 2 && *name == NULL; k++) {
      if (t[k] == NULL)
        continue;
      aal_tensor *h = aal_tensor_host_view(t[k], err);
      if (h == NULL)
        return AAL_ENOMEM;
      for (size_t j = 0; j < h->size; j++)
        if (!isfinite(h->data[j])) {
          *name = p->name;
          break;
        }
      aal_tensor_release(h);
    }
  }
  return AAL_OK;
}

/* Saves the checkpoint after step `done`, unless a parameter is no longer finite: then
 * the run has diverged and the previous checkpoint is kept. */
static int checkpoint(aal_train_run *r, long done, aal_error *err)
{
  char path[PATH_MAX];
  const char *bad = NULL;
  int rc = first_non_finite(r, &bad, err);
  if (rc == AAL_OK && bad != NULL) {
    char what[160];
    snprintf(what, sizeof what, "parameter %s is not finite after the update", bad);
    return diverged(r, done, what, err);
  }
  if (rc != AAL_OK || r->rank != 0) /* the processes hold the same parameters */
    return rc;
  rc = aal_train_path(path, sizeof path, r->out_dir, "checkpoint.bin", err);
  FILE *files[] = {r->metrics, r->li, r->li_summary, r->align};
  for (int i = 0; i < 4 && rc == AAL_OK; i++)
    if (files[i] != NULL && (fflush(files[i]) != 0 || fsync(fileno(files[i])) != 0))
      rc = aal_fail(err, AAL_EIO, "%s: cannot flush a CSV file: %s", r->out_dir,
                    strerror(errno));
  if (rc == AAL_OK)
    rc = aal_checkpoint_save(&r->net, (uint64_t)done, path, err);
  return rc;
}

static int loss_diverged(const aal_train_run *r, long s, double loss, aal_error *err)
{
  char what[160];
  if (isfinite(loss))
    snprintf(what, sizeof what, "the loss is %g, beyond 1e6 ln(%d classes) = %g", loss,
             r->ds.classes, loss_bound(r));
  else
    snprintf(what, sizeof what, "the loss is %g", loss);
  return diverged(r, s + 1, what, err);
}

/* Data parallel: the whole batch's loss and correct count from the processes' (every
 * process's slice is batch/ranks samples, so the mean of the means is the mean). */
static int whole_batch_loss(const aal_train_run *r, double *loss, int *correct, aal_error *err)
{
  double v[2] = {*loss, (double)*correct};
  int rc = alone(r, aal_comm_sum(r->comm, v, 2, err), err);
  *loss = v[0] / r->ranks;
  *correct = (int)v[1];
  return rc;
}

/* Data parallel: every parameter gradient summed over the processes (rank order) and
 * scaled by 1/ranks: each process's loss is the mean over its slice, the step's over
 * the whole batch. */
static int sum_gradients(aal_train_run *r, aal_error *err)
{
  size_t at = 0;
  for (int i = 0; i < r->net.nparams; i++) {
    const aal_tensor *g = r->net.params[i].grad;
    if (g != NULL) {
      memcpy(r->grads + at, g->data, g->size * sizeof *r->grads);
      at += g->size;
    }
  }
  int rc = alone(r, aal_comm_sum(r->comm, r->grads, r->ngrads, err), err);
  const double inv = 1.0 / r->ranks;
  at = 0;
  for (int i = 0; rc == AAL_OK && i < r->net.nparams; i++) {
    aal_tensor *g = r->net.params[i].grad;
    for (size_t j = 0; g != NULL && j < g->size; j++)
      g->data[j] = r->grads[at++] * inv;
  }
  return rc;
}

/* One training step s; fills loss, accuracy and tape bytes. */
static int train_step(aal_train_run *r, long s, aal_tape *tape, clock_state *c, double *loss,
                      double *acc, size_t *bytes, size_t *bytes_f32, aal_error *err)
{
  aal_resnet_pass pass;
  int correct = 0;
  const double t0 = aal_clock_now();
  const aal_comm_stats comm0 =
      r->ranks > 1 && r->comm->stats != NULL ? *r->comm->stats : (aal_comm_stats){0, 0, 0};
  int rc = aal_train_batch(r, s, err);
  c->data_seconds += aal_clock_now() - t0;
  if (rc == AAL_OK)
    rc = aal_train_pass(r, s, &pass, err);
  aal_li_recorder li;
  aal_align_recorder align;
  const int measure = r->o.li_every > 0 && s % r->o.li_every == 0;
  const int bp = r->rule.kind == AAL_RULE_BP;
  if (rc == AAL_OK && measure)
    rc = aal_li_recorder_attach(&li, &pass, r->li, r->li_summary, s, bp, err);
  if (rc == AAL_OK && measure)
    rc = aal_align_recorder_attach(&align, &pass, r->align, s, bp, err);
  li.comm = align.comm = r->ranks > 1 ? r->comm : NULL;
  if (rc == AAL_OK)
    rc = aal_resnet_forward(&r->net, &pass, r->x_local, r->labels_local, tape, loss, &correct,
                            err);
  if (measure)
    rc = aal_li_recorder_finish(&li, rc, err);
  if (r->ranks > 1) {
    /* non-finite logits on some process: through the sum every process sees the loss
     * NaN and stops alike; any other failure was this process's alone */
    if (rc == AAL_ENUMERIC) {
      *loss = NAN;
      rc = AAL_OK;
    }
    rc = alone(r, rc, err);
    if (rc == AAL_OK)
      rc = whole_batch_loss(r, loss, &correct, err);
  }
  if (rc == AAL_ENUMERIC) /* non-finite logits: the same divergence, caught earlier */
    rc = loss_diverged(r, s, NAN, err);
  else if (rc == AAL_OK && !(*loss <= loss_bound(r)))
    rc = loss_diverged(r, s, *loss, err);
  if (rc == AAL_OK) {
    *acc = (double)correct / r->o.batch;
    *bytes = aal_tape_bytes(tape);
    *bytes_f32 = aal_tape_bytes_f32(tape);
    rc = alone(r, aal_resnet_backward(&r->net, &pass, tape, r->labels_local, err), err);
  }
  if (measure)
    rc = alone(r, aal_align_recorder_finish(&align, rc, err), err);
  if (rc == AAL_OK && r->ranks > 1)
    rc = sum_gradients(r, err);
  if (rc != AAL_OK) {
    aal_tape_clear(tape);
    return rc;
  }
  rc = aal_resnet_sgd_step_ops(&r->net, r->ops.table, aal_train_lr(r, s), r->o.momentum,
                               r->o.weight_decay, err);
  aal_tape_clear(tape);
  c->step_seconds += aal_clock_now() - t0;
  c->steps_timed++;
  if (r->ranks > 1 && r->comm->stats != NULL) {
    c->comm.seconds += r->comm->stats->seconds - comm0.seconds;
    c->comm.bytes_sent += r->comm->stats->bytes_sent - comm0.bytes_sent;
    c->comm.calls += r->comm->stats->calls - comm0.calls;
  }
  return rc;
}

static int run_steps(aal_train_run *r, long start, double seconds_before, aal_error *err)
{
  aal_tape *tape = aal_tape_new(err);
  if (tape == NULL)
    return AAL_ENOMEM;
  clock_state c = {aal_clock_now(), seconds_before, 0, start, 0, 0, 0, {0, 0, 0}};
  int rc = AAL_OK;
  for (long s = start; s < r->total_steps && rc == AAL_OK; s++) {
    double loss = NAN, acc = NAN, vloss = NAN, vacc = NAN;
    size_t bytes = 0, bytes_f32 = 0;
    rc = train_step(r, s, tape, &c, &loss, &acc, &bytes, &bytes_f32, err);
    if (rc != AAL_OK)
      break;
    const long done = s + 1;
    const int stop = r->o.stop_after > 0 && done == r->o.stop_after;
    const int last = done == r->total_steps;
    const int eval = last || (r->o.eval_every > 0 && done % r->o.eval_every == 0);
    if (eval && r->ds.val.n > 0)
      rc = evaluate(r, &vloss, &vacc, err);
    if (r->metrics != NULL) { /* process 0's */
      fprintf(r->metrics, "%ld,%.6f,%.9g,%.9g,%.6f,", done,
              (double)done / (double)r->steps_per_epoch, aal_train_lr(r, s), loss, acc);
      if (eval && r->ds.val.n > 0)
        fprintf(r->metrics, "%.9g,%.6f,", vloss, vacc);
      else
        fprintf(r->metrics, ",,");
      fprintf(r->metrics, "%zu,%zu,%.3f\n", bytes, bytes_f32,
              c.seconds_before + aal_clock_now() - c.t0);
    }
    if (rc == AAL_OK &&
        (last || stop || (r->o.checkpoint_every > 0 && done % r->o.checkpoint_every == 0))) {
      rc = checkpoint(r, done, err);
      /* process 0 wrote it: its failure (or success) is everyone's */
      rc = aal_comm_agree(r->ranks > 1 ? r->comm : NULL, rc, err);
    }
    progress(r, &c, done, loss, acc, last || stop);
    if (eval && r->log != NULL && r->ds.val.n > 0 && rc == AAL_OK)
      fprintf(r->log, "%sstep %ld: val loss %.4f, val acc %.3f\n", r->o.progress == 1 ? "\n" : "",
              done, vloss, vacc);
    if (stop && rc == AAL_OK) {
      if (r->log != NULL)
        fprintf(r->log, "stopped after step %ld as asked; continue with --resume %s\n", done,
                r->out_dir);
      break;
    }
  }
  if (rc == AAL_OK && r->log != NULL && c.step_seconds > 0)
    fprintf(r->log, "time per training step %.3f s, of which batch assembly (augmentation, "
            "normalisation) %.2f%%\n", c.step_seconds / (double)c.steps_timed,
            100.0 * c.data_seconds / c.step_seconds);
  if (rc == AAL_OK && r->log != NULL && c.step_seconds > 0 && r->ranks > 1 &&
      r->comm->stats != NULL) {
    const double steps = (double)c.steps_timed;
    fprintf(r->log, "rank 0 of %d: collectives (batch norm, gradient sum, loss; LI on its "
            "steps) %.2f%% of the step time (waiting for the others included), %.0f calls "
            "and %.2f MB sent per step\n", r->ranks, 100.0 * c.comm.seconds / c.step_seconds,
            (double)c.comm.calls / steps, c.comm.bytes_sent / steps / 1e6);
  }
  aal_tape_free(tape);
  return rc;
}

static int open_outputs(aal_train_run *r, const char *mode, aal_error *err)
{
  char path[PATH_MAX];
  int rc = aal_train_path(path, sizeof path, r->out_dir, "metrics.csv", err);
  if (rc == AAL_OK && (r->metrics = fopen(path, mode)) == NULL)
    rc = aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  if (rc == AAL_OK && mode[0] == 'w')
    fputs(METRICS_HEADER, r->metrics);
  if (rc == AAL_OK && r->o.li_every > 0)
    rc = aal_li_files_open(r->out_dir, mode, &r->li, &r->li_summary, err);
  if (rc == AAL_OK && r->o.li_every > 0)
    rc = aal_train_path(path, sizeof path, r->out_dir, "align.csv", err);
  if (rc == AAL_OK && r->o.li_every > 0 && (r->align = fopen(path, mode)) == NULL)
    rc = aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  if (rc == AAL_OK && r->o.li_every > 0 && mode[0] == 'w')
    fputs(AAL_ALIGN_CSV_HEADER, r->align);
  return rc;
}

static int resolve_progress(int progress, FILE *log)
{
  if (progress >= 0)
    return progress;
  return log != NULL && isatty(fileno(log));
}

/* The out directory, claimed for this run: it must not hold a run; locked (*lock). */
static int claim_out_dir(const aal_train_opts *opts, int *lock, aal_error *err)
{
  char config[PATH_MAX];
  if (opts->out_dir == NULL)
    return aal_fail(err, AAL_EINVAL, "--out is required");
  snprintf(config, sizeof config, "%s/config", opts->out_dir);
  if (access(config, F_OK) == 0)
    return aal_fail(err, AAL_EINVAL, "%s already holds a run (%s exists); use --resume %s "
                    "or another --out", opts->out_dir, config, opts->out_dir);
  int rc = aal_mkdir_p(opts->out_dir, err);
  if (rc == AAL_OK)
    rc = aal_run_lock(opts->out_dir, lock, err);
  if (rc == AAL_OK && access(config, F_OK) == 0) /* written before this process locked */
    rc = aal_fail(err, AAL_EINVAL, "%s already holds a run (%s exists); use --resume %s "
                  "or another --out", opts->out_dir, config, opts->out_dir);
  return rc;
}

/* Whether a config line takes part in the processes' comparison: not the data path (the
 * fingerprint compares the data itself, wherever it lies) nor OpenBLAS's thread count
 * (the ref backend's results do not depend on it), nor comments. */
static int compared(const char *line)
{
  return line[0] != '#' && strncmp(line, "data = ", 7) != 0 &&
         strncmp(line, "blas_threads = ", 15) != 0;
}

/* The first line where config b (rank k's) differs from a (rank 0's), as an error. */
static int config_diff(const char *a, const char *b, int k, aal_error *err)
{
  while (*a != '\0' || *b != '\0') {
    const size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
    if (compared(a) && (la != lb || memcmp(a, b, la) != 0))
      return aal_fail(err, AAL_EINVAL, "rank %d was started with another run than rank 0: "
                      "'%.*s' there, '%.*s' on rank 0 (every process of a run takes the same "
                      "options and the same data)", k, (int)lb, b, (int)la, a);
    a += la + (a[la] == '\n');
    b += lb + (b[lb] == '\n');
  }
  return AAL_OK;
}

/* Data parallel: every process must run the same config; process 0 compares them. */
static int config_agree(aal_train_run *r, aal_error *err)
{
  const size_t len = AAL_CONFIG_MAX;
  char *mine = calloc(1, len), *all = r->rank == 0 ? calloc((size_t)r->ranks, len) : NULL;
  int rc = mine != NULL && (r->rank != 0 || all != NULL)
               ? aal_train_config_text(r, mine, len, err)
               : aal_fail(err, AAL_ENOMEM, "config comparison buffers");
  rc = alone(r, rc, err);
  rc = alone(r, r->comm->gather(r->comm, mine, len, all, err), err);
  for (int k = 1; rc == AAL_OK && r->rank == 0 && k < r->ranks; k++)
    rc = config_diff(all, all + (size_t)k * len, k, err);
  free(mine);
  free(all);
  return aal_comm_agree(r->comm, rc, err);
}

int aal_train(const aal_train_opts *opts, FILE *log, aal_error *err)
{
  aal_train_run r;
  const aal_comm *comm = aal_comm_size(opts->comm) > 1 ? opts->comm : NULL;
  const int root = aal_comm_rank(comm) == 0;
  int lock = -1, rc = root ? claim_out_dir(opts, &lock, err) : AAL_OK;
  if (rc != AAL_OK && comm == NULL) {
    aal_run_unlock(lock);
    return rc;
  }
  if (rc == AAL_OK)
    rc = aal_train_run_open(&r, opts, root ? log : NULL, err);
  else
    memset(&r, 0, sizeof r);
  rc = aal_comm_agree(comm, rc, err);
  r.o.progress = resolve_progress(opts->progress, r.log);
  if (rc == AAL_OK && snprintf(r.out_dir, sizeof r.out_dir, "%s", opts->out_dir) >=
                          (int)sizeof r.out_dir)
    rc = aal_fail(err, AAL_EINVAL, "--out path too long");
  if (rc == AAL_OK && comm != NULL)
    rc = config_agree(&r, err);
  if (rc == AAL_OK) { /* every process is here, or none: they agreed */
    if (root)
      rc = aal_train_config_write(&r, err);
    if (rc == AAL_OK && root)
      rc = open_outputs(&r, "w", err);
    rc = aal_comm_agree(comm, rc, err);
  }
  if (rc == AAL_OK && r.log != NULL)
    fprintf(log, "training %s on %s (%s, %dx%dx%d; backend %s): %zu train / %zu val images, "
            "%d classes; %ld steps of %d (%ld per epoch%s), lr %g, warm-up %ld; run in %s\n",
            r.rule_text, r.data_dir, aal_data_format_name(r.ds.format), r.ds.geom.channels,
            r.ds.geom.size, r.ds.geom.size, r.backend, r.ds.train.n, r.ds.val.n,
            r.ds.classes, r.total_steps, r.o.batch, r.steps_per_epoch,
            comm != NULL ? "; data parallel" : "", r.lr, r.warmup, r.out_dir);
  if (rc == AAL_OK && r.log != NULL && comm != NULL)
    fprintf(log, "%d processes, %d images each per step\n", r.ranks, r.local_batch);
  if (rc == AAL_OK)
    rc = run_steps(&r, 0, 0.0, err);
  aal_train_run_close(&r);
  aal_run_unlock(lock);
  return rc;
}

/* The file's whole text in a fresh buffer (*len bytes, NUL-terminated). */
static int read_whole(const char *path, char **text, size_t *len, aal_error *err)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap *= 2) : NULL;
    if (grown == NULL)
      free(buf);
    buf = grown;
  }
  const int failed = buf != NULL && ferror(f);
  fclose(f);
  if (buf == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: cannot hold it in memory", path);
  if (failed) {
    free(buf);
    return aal_fail(err, AAL_EIO, "%s: cannot read: %s", path, strerror(errno));
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return AAL_OK;
}

/* Keeps the header and the complete rows (ending in a newline) of a CSV whose first
 * column (the step) is at most `keep`, up to the first row that is not: rows written
 * after the checkpoint the run resumes from, and a line torn by a kill, are dropped.
 * Returns the last column of the last kept row (for metrics.csv: the seconds). */
static int truncate_csv(const char *run_dir, const char *name, long keep, double *seconds,
                        aal_error *err)
{
  char path[PATH_MAX], *text = NULL;
  size_t len = 0, kept = 0;
  int rc = aal_train_path(path, sizeof path, run_dir, name, err);
  if (rc == AAL_OK)
    rc = read_whole(path, &text, &len, err);
  if (rc != AAL_OK)
    return rc;
  *seconds = 0;
  for (size_t at = 0; at < len;) {
    char *nl = memchr(text + at, '\n', len - at);
    if (nl == NULL)
      break; /* a torn last line */
    char *line = text + at, *end;
    errno = 0;
    const long step = strtol(line, &end, 10);
    const int header = at == 0 && end == line;
    if (!header && (end == line || *end != ',' || errno != 0 || step > keep))
      break;
    if (!header) {
      *nl = '\0';
      const char *last = strrchr(line, ',');
      *seconds = last ? atof(last + 1) : 0;
      *nl = '\n';
    }
    at = kept = (size_t)(nl - text) + 1;
  }
  rc = aal_write_atomic(path, text, kept, err);
  free(text);
  return rc;
}

int aal_train_resume(const char *run_dir, long total_steps, long stop_after, int progress,
                     const aal_comm *comm_in, FILE *log, aal_error *err)
{
  aal_train_opts o;
  char strings[3 * PATH_MAX], path[PATH_MAX];
  const aal_comm *comm = aal_comm_size(comm_in) > 1 ? comm_in : NULL;
  const int root = aal_comm_rank(comm) == 0, ranks = aal_comm_size(comm);
  if (total_steps < 0)
    return aal_fail(err, AAL_EINVAL, "--steps %ld must be >= 0 (0: the run's own total)",
                    total_steps);
  int rc = aal_train_config_read(run_dir, &o, strings, sizeof strings, err);
  int lock = -1;
  if (rc == AAL_OK && root)
    rc = aal_run_lock(run_dir, &lock, err);
  if (rc == AAL_OK && o.ranks != ranks)
    rc = aal_fail(err, AAL_EINVAL, "%s was trained by %d process%s (its config: ranks = %d) "
                  "and resumes with as many (mpirun -np %d); this is %d", run_dir, o.ranks,
                  o.ranks == 1 ? "" : "es", o.ranks, o.ranks, ranks);
  if (rc == AAL_OK) /* before the backend opens: its thread team is sized from it */
    rc = aal_train_blas_threads_apply(run_dir, &o, err);
  if (rc != AAL_OK && comm == NULL) {
    aal_run_unlock(lock);
    return rc;
  }
  if (total_steps > 0)
    o.steps = total_steps;
  aal_train_run r;
  o.stop_after = stop_after;
  o.comm = comm;
  if (rc == AAL_OK)
    rc = aal_train_run_open(&r, &o, root ? log : NULL, err);
  else
    memset(&r, 0, sizeof r);
  rc = aal_comm_agree(comm, rc, err);
  int together = rc == AAL_OK; /* the same on every process */
  r.o.progress = resolve_progress(progress, r.log);
  snprintf(r.out_dir, sizeof r.out_dir, "%s", run_dir);
  uint64_t step = 0;
  int fresh = 0; /* killed before its first checkpoint: the run starts again from step 0 */
  struct stat st;
  if (rc == AAL_OK)
    rc = aal_train_path(path, sizeof path, run_dir, "checkpoint.bin", err);
  if (rc == AAL_OK)
    fresh = stat(path, &st) != 0 && errno == ENOENT;
  if (rc == AAL_OK && !fresh)
    rc = aal_checkpoint_load(&r.net, &step, path, err);
  if (rc == AAL_OK && step > (uint64_t)r.total_steps)
    rc = aal_fail(err, AAL_EINVAL, "%s is at step %llu, past the requested total %ld", path,
                  (unsigned long long)step, r.total_steps);
  /* every process read the same checkpoint; process 0 alone rewrites the run's files.
   * Every process takes part in an agreement, or none does: an earlier one failed, and
   * so every process knows it */
  if (together)
    rc = aal_comm_agree(comm, rc, err);
  together = rc == AAL_OK;
  double seconds = 0, unused;
  if (rc == AAL_OK && root && !fresh)
    rc = truncate_csv(run_dir, "metrics.csv", (long)step, &seconds, err);
  if (rc == AAL_OK && root && !fresh && r.o.li_every > 0)
    rc = truncate_csv(run_dir, "li.csv", (long)step, &unused, err);
  if (rc == AAL_OK && root && !fresh && r.o.li_every > 0)
    rc = truncate_csv(run_dir, "li_summary.csv", (long)step, &unused, err);
  if (rc == AAL_OK && root && !fresh && r.o.li_every > 0)
    rc = truncate_csv(run_dir, "align.csv", (long)step, &unused, err);
  if (rc == AAL_OK && root && total_steps > 0)
    rc = aal_train_config_write(&r, err);
  if (rc == AAL_OK && root)
    rc = open_outputs(&r, fresh ? "w" : "a", err);
  if (together)
    rc = aal_comm_agree(comm, rc, err);
  if (rc == AAL_OK && r.log != NULL && fresh)
    fprintf(log, "resuming %s: it has no checkpoint yet, so it starts again from step 0 of "
            "%ld\n", run_dir, r.total_steps);
  else if (rc == AAL_OK && r.log != NULL)
    fprintf(log, "resuming %s at step %llu of %ld%s\n", run_dir, (unsigned long long)step,
            r.total_steps, comm != NULL ? " (data parallel)" : "");
  if (rc == AAL_OK && r.log != NULL && o.blas_threads > 0 && !aal_train_backend_is_ref(o.backend))
    fprintf(log, "OpenBLAS threads: %d, as the run recorded (the %s backend's results "
            "depend on the count)\n", o.blas_threads, o.backend);
  if (rc == AAL_OK) /* the seconds of earlier sessions: process 0's file */
    rc = aal_comm_bcast(comm, &seconds, sizeof seconds, err);
  if (rc == AAL_OK)
    rc = run_steps(&r, (long)step, seconds, err);
  aal_train_run_close(&r);
  aal_run_unlock(lock);
  return rc;
}
