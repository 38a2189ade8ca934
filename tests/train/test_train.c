/* The trainer on a generated data set: it learns, a resumed run is bit-identical to an
 * uninterrupted one, a divergent run stops with its last good checkpoint, checkpoints
 * reject corruption, and `aal dump`'s .npy files read back through an independent
 * reader. */
#define _DEFAULT_SOURCE /* flock */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "sim/aal.h"
#include "tests/aal_check.h"

static char root[256];     /* a fresh temporary directory for the whole suite */
static char data_dir[300];

static int remove_tree(const char *dir)
{
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0;
}

static void setup_data(void)
{
  aal_error err;
  aal_error_clear(&err);
  snprintf(root, sizeof root, "%s/aal-test-train-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    exit(EXIT_FAILURE);
  }
  snprintf(data_dir, sizeof data_dir, "%s/data", root);
  if (aal_gen_data(data_dir, 4, 16, 4, 11, NULL, &err) != AAL_OK) {
    fprintf(stderr, "gen-data: %s\n", err.msg);
    exit(EXIT_FAILURE);
  }
}

static void small_opts(aal_train_opts *o, const char *out)
{
  aal_train_opts_default(o);
  o->data_dir = data_dir;
  o->out_dir = out;
  o->width = 0.125;
  o->batch = 8;
  o->lr = 0.2;
  o->warmup = 2;
  o->progress = 0;
  o->seed = 5;
}

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* dir_a/name and dir_b/name hold the same bytes, and more than a header's worth */
static void assert_same_file(const char *dir_a, const char *dir_b, const char *name)
{
  char pa[4096], pb[4096];
  size_t la, lb;
  snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
  snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
  char *ca = slurp(pa, &la), *cb = slurp(pb, &lb);
  ck_assert_msg(la > 100 && la == lb && memcmp(ca, cb, la) == 0,
                "%s differs between the straight and the resumed run (%zu and %zu bytes)", name,
                la, lb);
  free(ca);
  free(cb);
}

/* metrics.csv rows as (step, loss, train_acc) */
static int read_losses(const char *run, double *loss, double *acc, int max)
{
  char path[512], line[512];
  snprintf(path, sizeof path, "%s/metrics.csv", run);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_str_eq(line, "step,epoch,lr,loss,train_acc,val_loss,val_acc,tape_bytes,"
                         "tape_bytes_f32,seconds\n");
  int n = 0;
  while (n < max && fgets(line, sizeof line, f) != NULL) {
    long step;
    double epoch, lr;
    ck_assert_int_eq(sscanf(line, "%ld,%lf,%lf,%lf,%lf", &step, &epoch, &lr, &loss[n], &acc[n]), 5);
    ck_assert_int_eq(step, n + 1);
    n++;
  }
  fclose(f);
  return n;
}

START_TEST(test_learns)
{
  aal_train_opts o;
  char out[512];
  aal_error err;
  aal_error_clear(&err);
  snprintf(out, sizeof out, "%s/learn", root);
  small_opts(&o, out);
  o.steps = 48;
  o.eval_every = 24;
  int rc = aal_train(&o, NULL, &err);
  ck_assert_msg(rc == AAL_OK, "%s", err.msg);
  double loss[64], acc[64];
  const int n = read_losses(out, loss, acc, 64);
  ck_assert_int_eq(n, 48);
  double first = 0, last = 0, last_acc = 0;
  for (int i = 0; i < 8; i++) {
    first += loss[i] / 8;
    last += loss[n - 8 + i] / 8;
    last_acc += acc[n - 8 + i] / 8;
  }
  fprintf(stderr, "learns: mean loss of the first 8 steps %.4f, of the last 8 %.4f; "
          "train accuracy of the last 8 %.3f (chance 0.25)\n", first, last, last_acc);
  ck_assert_msg(last < 0.8 * first, "loss did not fall: %g -> %g", first, last);
  ck_assert_msg(last_acc > 0.4, "train accuracy %g is not above chance", last_acc);
  /* a second run into the same directory is refused */
  ck_assert_int_eq(aal_train(&o, NULL, &err), AAL_EINVAL);
  ck_assert(strstr(err.msg, "already holds a run") != NULL);
}
END_TEST

/* The files a run appends rows to (a resume truncates each to its checkpoint) */
static const char *const run_rows[] = {"metrics.csv", "li_summary.csv", "li.csv", "align.csv"};
#define NRUN_ROWS (int)(sizeof run_rows / sizeof run_rows[0])

/* Appends text to every one of run's row files, as a crash mid-write would leave it. */
static void append_to_rows(const char *run, const char *text)
{
  char path[600];
  for (int i = 0; i < NRUN_ROWS; i++) {
    snprintf(path, sizeof path, "%s/%s", run, run_rows[i]);
    FILE *f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
  }
}

START_TEST(test_resume_bit_identical)
{
  aal_train_opts o;
  char a[512], b[512];
  aal_error err;
  aal_error_clear(&err);
  snprintf(a, sizeof a, "%s/straight", root);
  snprintf(b, sizeof b, "%s/interrupted", root);
  small_opts(&o, a);
  o.rule = "noise";  /* the rule with its own random stream */
  o.steps = 14;
  o.checkpoint_every = 4;
  o.li_every = 3;
  ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  small_opts(&o, b);
  o.rule = "noise";
  o.steps = 14;
  o.checkpoint_every = 4;
  o.li_every = 3;
  o.stop_after = 6;  /* stops at 6 with a checkpoint; rows 7.. never existed */
  ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  /* a crash between checkpoints leaves rows past the checkpoint: resume drops them */
  append_to_rows(b, "7,garbage from a step that was lost\n");
  ck_assert_msg(aal_train_resume(b, 0, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  assert_same_file(a, b, "checkpoint.bin");
  /* metrics identical but for the seconds column */
  double l1[32], a1[32], l2[32], a2[32];
  ck_assert_int_eq(read_losses(a, l1, a1, 32), 14);
  ck_assert_int_eq(read_losses(b, l2, a2, 32), 14);
  ck_assert(memcmp(l1, l2, 14 * sizeof *l1) == 0 && memcmp(a1, a2, 14 * sizeof *a1) == 0);
  assert_same_file(a, b, "li_summary.csv");
  assert_same_file(a, b, "align.csv");
  /* resume of something that is not a run names the file */
  ck_assert_int_eq(aal_train_resume(root, 0, 0, 0, NULL, NULL, &err), AAL_EIO);
  ck_assert(strstr(err.msg, "config") != NULL);
}
END_TEST

/* The file's lines with the last column of each dropped when drop_last (the seconds of
 * metrics.csv), as one string. */
static char *csv_without_last_column(const char *run, const char *name, int drop_last)
{
  char path[600];
  size_t len;
  snprintf(path, sizeof path, "%s/%s", run, name);
  char *text = slurp(path, &len), *out = malloc(len + 1), *o = out;
  ck_assert_ptr_nonnull(out);
  for (char *line = text; *line != '\0';) {
    char *nl = strchr(line, '\n');
    const size_t n = nl ? (size_t)(nl - line) : strlen(line);
    size_t keep = n;
    if (drop_last)
      for (size_t i = 0; i < n; i++)
        if (line[i] == ',')
          keep = i;
    memcpy(o, line, keep);
    o += keep;
    *o++ = '\n';
    line += n + (nl != NULL);
  }
  *o = '\0';
  free(text);
  return out;
}

START_TEST(test_resume_torn_line)
{
  aal_train_opts o;
  char a[512], b[512];
  aal_error err;
  aal_error_clear(&err);
  snprintf(a, sizeof a, "%s/torn-straight", root);
  snprintf(b, sizeof b, "%s/torn", root);
  for (int run = 0; run < 2; run++) {
    small_opts(&o, run ? b : a);
    o.steps = 9;
    o.checkpoint_every = 3;
    o.li_every = 2;
    o.stop_after = run ? 5 : 0;
    ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  }
  /* a kill in the middle of a row leaves a line without its newline; a later resume must
   * not glue the next row to it */
  append_to_rows(b, "1");
  ck_assert_msg(aal_train_resume(b, 0, 7, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  append_to_rows(b, "8,0.5"); /* and again, torn after a resume */
  ck_assert_msg(aal_train_resume(b, 0, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  for (int i = 0; i < NRUN_ROWS; i++) {
    char *ta = csv_without_last_column(a, run_rows[i], i == 0);
    char *tb = csv_without_last_column(b, run_rows[i], i == 0);
    ck_assert_msg(strcmp(ta, tb) == 0, "%s differs from the uninterrupted run's:\n%s\n---\n%s",
                  run_rows[i], ta, tb);
    free(ta);
    free(tb);
  }
}
END_TEST

/* Locks dir/.lock as another writer would; returns the descriptor holding it. */
static int hold_lock(const char *dir)
{
  char path[600];
  snprintf(path, sizeof path, "%s/.lock", dir);
  const int fd = open(path, O_RDWR | O_CREAT, 0666);
  ck_assert_msg(fd >= 0, "cannot open %s", path);
  ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
  return fd;
}

START_TEST(test_run_lock)
{
  aal_train_opts o;
  char out[512], path[600];
  aal_error err;
  aal_error_clear(&err);
  snprintf(out, sizeof out, "%s/locked", root);
  ck_assert_int_eq(mkdir(out, 0777), 0);
  small_opts(&o, out);
  o.steps = 2;
  /* a second writer to a directory another one holds is refused at once, and writes
   * nothing there */
  int fd = hold_lock(out);
  ck_assert_int_ne(aal_train(&o, NULL, &err), AAL_OK);
  ck_assert_msg(strstr(err.msg, "in use") != NULL && strstr(err.msg, out) != NULL, "%s",
                err.msg);
  snprintf(path, sizeof path, "%s/config", out);
  ck_assert_int_ne(access(path, F_OK), 0);
  close(fd);
  /* the lock is released when the run ends */
  ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  fd = hold_lock(out);
  ck_assert_int_ne(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err), AAL_OK);
  ck_assert_msg(strstr(err.msg, "in use") != NULL && strstr(err.msg, out) != NULL, "%s",
                err.msg);
  double loss[8], acc[8];
  ck_assert_int_eq(read_losses(out, loss, acc, 8), 2);
  close(fd);
  ck_assert_msg(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert_int_eq(read_losses(out, loss, acc, 8), 3);
  close(hold_lock(out));
}
END_TEST

/* Rewrites run/config without the lines starting with `drop` and with `add` appended. */
static void edit_config(const char *run, const char *drop, const char *add)
{
  char path[600];
  size_t len;
  snprintf(path, sizeof path, "%s/config", run);
  char *text = slurp(path, &len);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
    if (strncmp(line, drop, strlen(drop)) != 0)
      fprintf(f, "%s\n", line);
  fputs(add, f);
  fclose(f);
  free(text);
}

START_TEST(test_resume_refuses)
{
  aal_train_opts o, asked;
  char out[512];
  aal_error err;
  aal_error_clear(&err);
  snprintf(out, sizeof out, "%s/refuse", root);
  small_opts(&o, out);
  o.rule = "asa:2,2,2,2";
  o.steps = 2;
  ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  /* the options the run was set up with agree, however spelled */
  const unsigned all = AAL_SET_RULE | AAL_SET_DATA | AAL_SET_BATCH | AAL_SET_LR |
                       AAL_SET_WARMUP | AAL_SET_MOMENTUM | AAL_SET_WEIGHT_DECAY |
                       AAL_SET_EVAL_EVERY | AAL_SET_CHECKPOINT_EVERY | AAL_SET_LI_EVERY |
                       AAL_SET_WIDTH | AAL_SET_BLOCKS | AAL_SET_SEED | AAL_SET_BACKEND |
                       AAL_SET_OUT | AAL_SET_MODEL | AAL_SET_STEM;
  asked = o;
  asked.rule = "asa:2,2,2,2;lr_expansion=100";
  ck_assert_msg(aal_train_resume_check(out, &asked, all, &err) == AAL_OK, "%s", err.msg);
  /* one that differs is named with both values */
  asked.rule = "bp";
  ck_assert_int_eq(aal_train_resume_check(out, &asked, all, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--rule bp") && strstr(err.msg, "asa:2,2,2,2"), "%s", err.msg);
  asked = o;
  asked.seed = 6;
  ck_assert_int_eq(aal_train_resume_check(out, &asked, all, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--seed 6") && strstr(err.msg, "seed = 5"), "%s", err.msg);
  ck_assert_int_eq(aal_train_resume_check(out, &asked, all & ~AAL_SET_SEED, &err), AAL_OK);
  asked = o;
  asked.width = 0.25;
  ck_assert_int_eq(aal_train_resume_check(out, &asked, AAL_SET_WIDTH, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--width 0.25") && strstr(err.msg, "width = 0.125"), "%s",
                err.msg);
  asked = o;
  asked.model = "resnet50";
  ck_assert_int_eq(aal_train_resume_check(out, &asked, AAL_SET_MODEL, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--model resnet50") && strstr(err.msg, "model = resnet18"),
                "%s", err.msg);
  asked = o;
  asked.blocks = "2,2,3,2";
  ck_assert_int_eq(aal_train_resume_check(out, &asked, AAL_SET_BLOCKS, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "blocks = 2,2,2,2"), "%s", err.msg);
  ck_assert_int_eq(aal_train_resume_check(out, &o, AAL_SET_EPOCHS, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--epochs"), "%s", err.msg);
  /* a config whose rule line is gone, or given twice, does not resume under another rule */
  edit_config(out, "rule", "");
  ck_assert_int_eq(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
  ck_assert_msg(strstr(err.msg, "config") && strstr(err.msg, "'rule' is missing"), "%s",
                err.msg);
  edit_config(out, "rule", "rule = asa:2,2,2,2\nrule = bp\n");
  ck_assert_int_eq(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
  ck_assert_msg(strstr(err.msg, "'rule' is given twice"), "%s", err.msg);
  edit_config(out, "rule", "rule = asa:2,2,2,2\n");
  const char *keys[] = {"seed", "width", "batch", "lr", "data", "blocks"};
  for (int i = 0; i < 6; i++) {
    char path[600], key[64];
    size_t len;
    snprintf(path, sizeof path, "%s/config", out);
    char *saved = slurp(path, &len);
    snprintf(key, sizeof key, "%s ", keys[i]);
    edit_config(out, key, "");
    ck_assert_int_eq(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
    snprintf(key, sizeof key, "'%s' is missing", keys[i]);
    ck_assert_msg(strstr(err.msg, key), "%s", err.msg);
    FILE *f = fopen(path, "w");
    fwrite(saved, 1, len, f);
    fclose(f);
    free(saved);
  }
  /* the rank count (issue 14): a run of 2 processes does not resume in one; 0 is no
   * count; a config without the key ran in one process */
  edit_config(out, "ranks", "ranks = 2\n");
  ck_assert_int_eq(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "trained by 2 processes") && strstr(err.msg, "this is 1"),
                "%s", err.msg);
  edit_config(out, "ranks", "ranks = 0\n");
  ck_assert_int_eq(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
  ck_assert_msg(strstr(err.msg, "ranks = '0' is not an integer in 1.."), "%s", err.msg);
  edit_config(out, "ranks", "");
  ck_assert_msg(aal_train_resume(out, 3, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
}
END_TEST

/* The OpenBLAS thread count (issue 15, finding 12): recorded in the config; a resume
 * of a cpu32 run refuses another --threads (naming both counts) and takes 0 or the same;
 * of a ref run takes any; a config without the key checks nothing; the key is read as a
 * whole count, once; a count OpenBLAS cannot run is refused before anything runs. */
START_TEST(test_resume_threads)
{
  aal_train_opts o, asked;
  char cpu[512], ref[512], path[600];
  aal_error err;
  aal_error_clear(&err);
  openblas_set_num_threads(2);
  const int n = openblas_get_num_threads();
  ck_assert_int_eq(n, 2);
  snprintf(cpu, sizeof cpu, "%s/threads-cpu32", root);
  snprintf(ref, sizeof ref, "%s/threads-ref", root);
  for (int run = 0; run < 2; run++) {
    small_opts(&o, run ? ref : cpu);
    o.backend = run ? "ref" : "cpu32";
    o.steps = 2;
    o.stop_after = 1;
    ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/config", run ? ref : cpu);
    size_t len;
    char *text = slurp(path, &len);
    ck_assert_msg(strstr(text, "\nblas_threads = 2\n") != NULL, "%s", text);
    free(text);
  }
  asked = o;
  asked.blas_threads = 3;
  ck_assert_int_eq(aal_train_resume_check(cpu, &asked, AAL_SET_THREADS, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "--threads 3") && strstr(err.msg, "blas_threads = 2") &&
                strstr(err.msg, cpu), "%s", err.msg);
  ck_assert_int_eq(aal_train_resume_check(cpu, &asked, 0, &err), AAL_OK); /* not given */
  ck_assert_int_eq(aal_train_resume_check(ref, &asked, AAL_SET_THREADS, &err), AAL_OK);
  asked.blas_threads = 2;
  ck_assert_int_eq(aal_train_resume_check(cpu, &asked, AAL_SET_THREADS, &err), AAL_OK);
  asked.blas_threads = 0;
  ck_assert_int_eq(aal_train_resume_check(cpu, &asked, AAL_SET_THREADS, &err), AAL_OK);
  /* a resume runs cpu32 with the recorded count, whatever the process had */
  openblas_set_num_threads(1);
  ck_assert_msg(aal_train_resume(cpu, 0, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert_int_eq(openblas_get_num_threads(), 2);
  /* ... and ref with the process's count */
  openblas_set_num_threads(1);
  ck_assert_msg(aal_train_resume(ref, 0, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert_int_eq(openblas_get_num_threads(), 1);
  /* the key's values, and a config without it */
  const char *bad[] = {"blas_threads = 0\n", "blas_threads = 2.0\n", "blas_threads = -2\n",
                       "blas_threads = 2\nblas_threads = 2\n"};
  for (int i = 0; i < 4; i++) {
    edit_config(cpu, "blas_threads", bad[i]);
    ck_assert_int_eq(aal_train_resume(cpu, 3, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
    ck_assert_msg(strstr(err.msg, "config") && strstr(err.msg, "blas_threads"), "%s", err.msg);
  }
  edit_config(cpu, "blas_threads", "blas_threads = 4096\n"); /* above OpenBLAS's maximum */
  ck_assert_int_eq(aal_train_resume(cpu, 3, 0, 0, NULL, NULL, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "blas_threads = 4096") && strstr(err.msg, "cpu32"), "%s",
                err.msg);
  ck_assert_int_eq(openblas_get_num_threads(), 1); /* left as it was */
  edit_config(cpu, "blas_threads", "");
  asked.blas_threads = 1;
  ck_assert_int_eq(aal_train_resume_check(cpu, &asked, AAL_SET_THREADS, &err), AAL_OK);
  ck_assert_msg(aal_train_resume(cpu, 3, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert_int_eq(openblas_get_num_threads(), 1);
  snprintf(path, sizeof path, "%s/config", cpu);
  size_t len;
  char *text = slurp(path, &len); /* rewritten for the new total: the count it ran with */
  ck_assert_msg(strstr(text, "\nblas_threads = 1\n") != NULL, "%s", text);
  free(text);
}
END_TEST

/* A run stopped after one step and resumed ends with the checkpoint of an uninterrupted
 * run: every setting the resume reads back from the config is the one the run began with. */
static void check_resume_exact(const char *name, const char *rule, unsigned long seed)
{
  aal_train_opts o;
  char a[512], b[512], pa[600], pb[600];
  aal_error err;
  aal_error_clear(&err);
  snprintf(a, sizeof a, "%s/%s-straight", root, name);
  snprintf(b, sizeof b, "%s/%s", root, name);
  for (int run = 0; run < 2; run++) {
    small_opts(&o, run ? b : a);
    o.rule = rule;
    o.seed = seed;
    o.steps = 3;
    o.stop_after = run ? 1 : 0;
    ck_assert_msg(aal_train(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  }
  ck_assert_msg(aal_train_resume_check(b, &o, AAL_SET_SEED | AAL_SET_RULE, &err) == AAL_OK,
                "%s: %s", name, err.msg);
  ck_assert_msg(aal_train_resume(b, 0, 0, 0, NULL, NULL, &err) == AAL_OK, "%s", err.msg);
  size_t la, lb;
  snprintf(pa, sizeof pa, "%s/checkpoint.bin", a);
  snprintf(pb, sizeof pb, "%s/checkpoint.bin", b);
  char *ca = slurp(pa, &la), *cb = slurp(pb, &lb);
  ck_assert_msg(la == lb && memcmp(ca, cb, la) == 0, "%s: the resumed run differs", name);
  free(ca);
  free(cb);
}

START_TEST(test_config_round_trip)
{
  check_resume_exact("seed-max", "bp", ULONG_MAX);            /* 2^64-1 */
  check_resume_exact("seed-2p53", "bp", (1ul << 53) + 1);     /* not a double */
  check_resume_exact("eps", "asa:2,2,2,2;eps=0.0123456789", 5); /* %g: 0.0123457 */
  char path[600];
  size_t len;
  snprintf(path, sizeof path, "%s/eps/config", root);
  char *text = slurp(path, &len);
  ck_assert_msg(strstr(text, "eps=0.0123456789;") != NULL, "%s", text);
  free(text);
  snprintf(path, sizeof path, "%s/seed-max/config", root);
  text = slurp(path, &len);
  ck_assert_msg(strstr(text, "seed = 18446744073709551615\n") != NULL, "%s", text);
  free(text);
  /* a seed the reader cannot hold exactly is refused, naming the file and the value */
  snprintf(path, sizeof path, "%s/seed-max", root);
  const char *bad[] = {"seed = 18446744073709551616\n", "seed = -1\n", "seed = 1e3\n",
                       "seed = 5.5\n"};
  aal_error err;
  for (int i = 0; i < 4; i++) {
    edit_config(path, "seed", bad[i]);
    ck_assert_int_eq(aal_train_resume(path, 0, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
    ck_assert_msg(strstr(err.msg, "config") && strstr(err.msg, "seed"), "%s", err.msg);
  }
  edit_config(path, "seed", "seed = 18446744073709551615\n");
  edit_config(path, "steps ", "steps = 3.5\n");
  ck_assert_int_eq(aal_train_resume(path, 0, 0, 0, NULL, NULL, &err), AAL_EFORMAT);
  ck_assert_msg(strstr(err.msg, "steps = '3.5'"), "%s", err.msg);
  /* a line longer than the reader's buffer is refused, not read as two lines: here the
   * second would set the seed and the first a truncated data path */
  edit_config(path, "steps ", "steps = 3\n");
  edit_config(path, "seed", "");
  char *line = malloc(8200);
  ck_assert_ptr_nonnull(line);
  int n = snprintf(line, 8200, "data = ");
  while (n < 7 + 4152)
    line[n++] = 'd';
  snprintf(line + n, 8200 - (size_t)n, "seed = 7\n");
  edit_config(path, "data", line);
  free(line);
  aal_train_opts o;
  aal_train_opts_default(&o);
  ck_assert_int_eq(aal_train_resume_check(path, &o, 0, &err), AAL_EFORMAT);
  ck_assert_msg(strstr(err.msg, "config") && strstr(err.msg, "longer than"), "%s", err.msg);
}
END_TEST

START_TEST(test_divergence_keeps_checkpoint)
{
  aal_train_opts o;
  char out[512], path[600];
  aal_error err;
  aal_error_clear(&err);
  snprintf(out, sizeof out, "%s/diverge", root);
  small_opts(&o, out);
  o.steps = 200;       /* at this rate the weights overflow after ~40 steps */
  o.checkpoint_every = 1;
  o.lr = 900;
  o.warmup = 0;
  o.weight_decay = 0;
  ck_assert_int_eq(aal_train(&o, NULL, &err), AAL_ENUMERIC);
  fprintf(stderr, "divergence: %s\n", err.msg);
  ck_assert(strstr(err.msg, "diverged") != NULL);
  snprintf(path, sizeof path, "%s/checkpoint.bin", out);
  aal_resnet net;
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  aal_resnet_config_set_width(&cfg, 0.125, &err);
  cfg.classes = 4;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 1, &err), AAL_OK);
  uint64_t step;
  ck_assert_msg(aal_checkpoint_load(&net, &step, path, &err) == AAL_OK, "%s", err.msg);
  for (int i = 0; i < net.nparams; i++)
    for (size_t k = 0; k < net.params[i].value->size; k++)
      ck_assert_msg(isfinite(net.params[i].value->data[k]), "checkpoint holds a non-finite %s",
                    net.params[i].name);
  aal_resnet_free(&net);
}
END_TEST

START_TEST(test_checkpoint_corruption)
{
  aal_resnet net;
  aal_resnet_config cfg;
  aal_error err;
  char path[512];
  aal_resnet_config_default(&cfg);
  aal_resnet_config_set_width(&cfg, 0.125, &err);
  cfg.classes = 4;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 3, &err), AAL_OK);
  snprintf(path, sizeof path, "%s/ckpt.bin", root);
  ck_assert_int_eq(aal_checkpoint_save(&net, 17, path, &err), AAL_OK);
  uint64_t step = 0;
  ck_assert_int_eq(aal_checkpoint_load(&net, &step, path, &err), AAL_OK);
  ck_assert_uint_eq(step, 17);
  size_t len;
  char *buf = slurp(path, &len);
  buf[len / 2] ^= 0x10;
  FILE *f = fopen(path, "wb");
  fwrite(buf, 1, len, f);
  fclose(f);
  ck_assert_int_eq(aal_checkpoint_load(&net, &step, path, &err), AAL_EFORMAT);
  ck_assert(strstr(err.msg, "checksum") != NULL);
  f = fopen(path, "wb");
  fwrite(buf, 1, 20, f);
  fclose(f);
  ck_assert_int_eq(aal_checkpoint_load(&net, &step, path, &err), AAL_EFORMAT);
  free(buf);
  /* a checkpoint of another configuration names the mismatch */
  aal_resnet other;
  cfg.classes = 5;
  ck_assert_int_eq(aal_resnet_init(&other, &cfg, 3, &err), AAL_OK);
  ck_assert_int_eq(aal_checkpoint_save(&other, 1, path, &err), AAL_OK);
  ck_assert_int_eq(aal_checkpoint_load(&net, &step, path, &err), AAL_EFORMAT);
  ck_assert(strstr(err.msg, "fc.weight") != NULL);
  aal_resnet_free(&other);
  aal_resnet_free(&net);
}
END_TEST

/* ---------------------------------------------------------------- an independent .npy reader */

typedef struct {
  char descr[8];
  int ndim;
  size_t shape[8];
  const unsigned char *data;
  size_t data_len;
} npy;

static int npy_parse(const char *buf, size_t len, npy *out)
{
  if (len < 10 || memcmp(buf, "\x93NUMPY\x01\x00", 8) != 0)
    return 0;
  const size_t hlen = (unsigned char)buf[8] | ((size_t)(unsigned char)buf[9] << 8);
  if ((10 + hlen) % 64 != 0 || 10 + hlen > len || buf[10 + hlen - 1] != '\n')
    return 0;
  char header[1024];
  memcpy(header, buf + 10, hlen);
  header[hlen] = '\0';
  const char *d = strstr(header, "'descr': '");
  const char *fo = strstr(header, "'fortran_order': False");
  const char *sh = strstr(header, "'shape': (");
  if (!d || !fo || !sh)
    return 0;
  memcpy(out->descr, d + 10, 3);
  out->descr[3] = '\0';
  out->ndim = 0;
  const char *p = sh + 10;
  while (*p != ')') {
    char *end;
    out->shape[out->ndim++] = strtoul(p, &end, 10);
    p = end;
    while (*p == ',' || *p == ' ')
      p++;
  }
  out->data = (const unsigned char *)buf + 10 + hlen;
  out->data_len = len - 10 - hlen;
  return 1;
}

/* The byte length of the tensor record at buf + at in a checkpoint (checkpoint.h). */
static size_t record_len(const unsigned char *buf, size_t at)
{
  uint32_t name_len, ndim;
  memcpy(&name_len, buf + at, 4);
  size_t pos = at + 4 + name_len;
  memcpy(&ndim, buf + pos, 4);
  pos += 4;
  uint64_t size = 1;
  for (uint32_t d = 0; d < ndim; d++, pos += 8) {
    uint64_t extent;
    memcpy(&extent, buf + pos, 8);
    size *= extent;
  }
  const unsigned char has_momentum = buf[pos];
  pos += 1 + (size_t)size * sizeof(double) * (1u + has_momentum);
  return pos - at;
}

START_TEST(test_checkpoint_duplicate_tensor)
{
  aal_resnet net;
  aal_resnet_config cfg;
  aal_error err;
  char path[512];
  aal_resnet_config_default(&cfg);
  aal_resnet_config_set_width(&cfg, 0.125, &err);
  cfg.classes = 4;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, 3, &err), AAL_OK);
  snprintf(path, sizeof path, "%s/ckpt-dup.bin", root);
  ck_assert_int_eq(aal_checkpoint_save(&net, 5, path, &err), AAL_OK);
  size_t len;
  unsigned char *buf = (unsigned char *)slurp(path, &len);
  ck_assert_ptr_nonnull(buf);
  /* the same count of tensors, the first one twice in place of the second */
  const size_t header = 8 + 4 + 8 + 4, first = record_len(buf, header),
               second = record_len(buf, header + first);
  const size_t out_len = len - second + first;
  unsigned char *out = malloc(out_len);
  ck_assert_ptr_nonnull(out);
  memcpy(out, buf, header + first);
  memcpy(out + header + first, buf + header, first);
  memcpy(out + header + 2 * first, buf + header + first + second,
         len - 8 - (header + first + second));
  const uint64_t sum = aal_data_fnv1a64(AAL_FNV1A64_INIT, out, out_len - 8);
  memcpy(out + out_len - 8, &sum, 8);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(out, 1, out_len, f), out_len);
  fclose(f);
  char name[64] = {0};
  uint32_t name_len;
  memcpy(&name_len, buf + header, 4);
  ck_assert_uint_lt(name_len, sizeof name);
  memcpy(name, buf + header + 4, name_len);
  uint64_t step = 0;
  ck_assert_int_eq(aal_checkpoint_load(&net, &step, path, &err), AAL_EFORMAT);
  ck_assert_msg(strstr(err.msg, name) && strstr(err.msg, "twice") && strstr(err.msg, path),
                "%s", err.msg);
  free(out);
  free(buf);
  aal_resnet_free(&net);
}
END_TEST

START_TEST(test_npy_shape_overflow)
{
  aal_error err;
  char path[512];
  const double data[4] = {0};
  snprintf(path, sizeof path, "%s/overflow.npy", root);
  /* 2^62 x 8 elements: the count wraps to 0 in size_t */
  const size_t shape[2] = {((size_t)SIZE_MAX >> 2) + 1, 8};
  aal_error_clear(&err);
  ck_assert_int_eq(aal_npy_write_f64(path, 2, shape, data, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "overflow"), "%s", err.msg);
  const size_t big[1] = {SIZE_MAX / 4};  /* the count fits, its bytes do not */
  ck_assert_int_eq(aal_npy_write_f64(path, 1, big, data, &err), AAL_EINVAL);
  ck_assert_msg(strstr(err.msg, "overflow"), "%s", err.msg);
  ck_assert_int_eq(access(path, F_OK), -1);
  /* a dimension of 0 makes the count 0 whatever comes before it: written, and it reads
   * back as an empty array of that shape (found by tests/fuzz/npy.c) */
  const size_t empty[3] = {((size_t)SIZE_MAX >> 2) + 1, 8, 0};
  ck_assert_msg(aal_npy_write_f64(path, 3, empty, data, &err) == AAL_OK, "%s", err.msg);
  size_t len;
  char *buf = slurp(path, &len);
  npy a;
  ck_assert(npy_parse(buf, len, &a));
  ck_assert_int_eq(a.ndim, 3);
  ck_assert(a.shape[0] == empty[0] && a.shape[1] == 8 && a.shape[2] == 0);
  ck_assert_uint_eq(a.data_len, 0);
  free(buf);
}
END_TEST

START_TEST(test_dump_npy)
{
  aal_dump_opts o;
  aal_error err;
  char out[512], path[700];
  aal_error_clear(&err);
  aal_dump_opts_default(&o);
  snprintf(out, sizeof out, "%s/dump", root);
  o.out_dir = out;
  o.data_dir = data_dir;
  o.width = 0.125;
  o.batch = 4;
  o.rule = "asa:2,2,2,2";
  ck_assert_msg(aal_dump(&o, NULL, &err) == AAL_OK, "%s", err.msg);
  size_t len;
  npy a;
  snprintf(path, sizeof path, "%s/input.npy", out);
  char *buf = slurp(path, &len);
  ck_assert(npy_parse(buf, len, &a));
  ck_assert_str_eq(a.descr, "<f8");
  ck_assert_int_eq(a.ndim, 4);
  ck_assert(a.shape[0] == 4 && a.shape[1] == 3 && a.shape[2] == 64 && a.shape[3] == 64);
  ck_assert_uint_eq(a.data_len, 4 * 3 * 64 * 64 * 8);
  free(buf);
  snprintf(path, sizeof path, "%s/labels.npy", out);
  buf = slurp(path, &len);
  ck_assert(npy_parse(buf, len, &a));
  ck_assert_str_eq(a.descr, "<i8");
  ck_assert(a.ndim == 1 && a.shape[0] == 4);
  for (int i = 0; i < 4; i++) {
    int64_t v;
    memcpy(&v, a.data + 8 * i, 8);
    ck_assert(v >= 0 && v < 4);
  }
  free(buf);
  /* a parameter before the step equals a fresh network's, bit for bit */
  aal_resnet net;
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  aal_resnet_config_set_width(&cfg, 0.125, &err);
  cfg.classes = 4;
  ck_assert_int_eq(aal_resnet_init(&net, &cfg, o.seed, &err), AAL_OK);
  const char *names[] = {"layer2.0.downsample.0.weight", "bn1.running_var", "fc.bias"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/params/%s.npy", out, names[i]);
    buf = slurp(path, &len);
    ck_assert(npy_parse(buf, len, &a));
    const aal_param *p = aal_resnet_find(&net, names[i]);
    ck_assert_int_eq(a.ndim, p->value->ndim);
    for (int d = 0; d < a.ndim; d++)
      ck_assert_uint_eq(a.shape[d], p->value->shape[d]);
    ck_assert_uint_eq(a.data_len, p->value->size * 8);
    ck_assert(memcmp(a.data, p->value->data, a.data_len) == 0);
    free(buf);
  }
  /* gradients exist for parameters, not for buffers, and are finite */
  snprintf(path, sizeof path, "%s/grads/layer4.1.conv2.weight.npy", out);
  buf = slurp(path, &len);
  ck_assert(npy_parse(buf, len, &a));
  for (size_t k = 0; k < a.data_len / 8; k++) {
    double v;
    memcpy(&v, a.data + 8 * k, 8);
    ck_assert(isfinite(v));
  }
  free(buf);
  snprintf(path, sizeof path, "%s/grads/bn1.running_mean.npy", out);
  ck_assert_int_ne(access(path, F_OK), 0);
  aal_resnet_free(&net);
}
END_TEST

int main(void)
{
  setup_data();
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("train");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_learns);
  tcase_add_test(tc, test_resume_bit_identical);
  tcase_add_test(tc, test_resume_threads);
  tcase_add_test(tc, test_resume_torn_line);
  tcase_add_test(tc, test_run_lock);
  tcase_add_test(tc, test_resume_refuses);
  tcase_add_test(tc, test_config_round_trip);
  tcase_add_test(tc, test_divergence_keeps_checkpoint);
  tcase_add_test(tc, test_checkpoint_corruption);
  tcase_add_test(tc, test_checkpoint_duplicate_tensor);
  tcase_add_test(tc, test_dump_npy);
  tcase_add_test(tc, test_npy_shape_overflow);
  suite_add_tcase(s, tc);
  const int status = aal_check_run(s);
  if (!remove_tree(root))
    fprintf(stderr, "could not remove %s\n", root);
  return status;
}
