/* Figures of a training run through gnuplot (see sim/train/plot.h). */
#define _POSIX_C_SOURCE 200809L

#include <config.h>

#include "sim/train/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AAL_PLOTS_DIR
#define AAL_PLOTS_DIR "plots"
#endif

#ifndef AAL_GNUPLOT
#define AAL_GNUPLOT ""
#endif

extern char **environ;

const char *aal_plot_default_dir(void)
{
  const char *env = getenv("AAL_PLOTS");
  return (env != NULL && env[0] != '\0') ? env : AAL_PLOTS_DIR;
}

/* A new string "a/b" (or "b" when a is empty); NULL when out of memory. */
static char *path_join(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *p = malloc(la + lb + 2);
  if (p == NULL)
    return NULL;
  if (la == 0) {
    memcpy(p, b, lb + 1);
    return p;
  }
  memcpy(p, a, la);
  size_t k = la;
  if (a[la - 1] != '/')
    p[k++] = '/';
  memcpy(p + k, b, lb + 1);
  return p;
}

/* A new string printf-style; NULL when out of memory. */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *s = malloc((size_t)n + 1);
  if (s == NULL)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* s as the body of a gnuplot single-quoted string: ' is written ''.  NULL when out of
 * memory. */
static char *gp_quote(const char *s)
{
  size_t n = strlen(s), q = 0;
  for (size_t i = 0; i < n; i++)
    q += s[i] == '\'';
  char *out = malloc(n + q + 1);
  if (out == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    out[k++] = s[i];
    if (s[i] == '\'')
      out[k++] = '\'';
  }
  out[k] = '\0';
  return out;
}

/* mkdir -p: makes dir and its missing parents. */
static int make_dirs(const char *dir, aal_error *err)
{
  char *p = strdup(dir);
  if (p == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0')
      continue;
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      int e = errno;
      int rc = aal_fail(err, AAL_EIO, "%s: cannot create directory: %s", p, strerror(e));
      free(p);
      return rc;
    }
    p[i] = c;
  }
  struct stat st;
  int rc = AAL_OK;
  if (stat(p, &st) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: cannot create directory: %s", p, strerror(errno));
  else if (!S_ISDIR(st.st_mode))
    rc = aal_fail(err, AAL_EIO, "%s: exists and is not a directory", p);
  free(p);
  return rc;
}

/* 1 when path is a readable file with at least one line after the CSV header, 0 when
 * it does not exist or has no data rows; an unreadable existing file is an error. */
static int csv_has_rows(const char *path, int *has, aal_error *err)
{
  *has = 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    if (errno == ENOENT)
      return AAL_OK;
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  }
  int c, lines = 0, in_line = 0;
  while ((c = getc(f)) != EOF && lines < 2) {
    if (c == '\n') {
      if (in_line)
        lines++;
      in_line = 0;
    } else if (c != '\r') {
      in_line = 1;
    }
  }
  if (in_line)
    lines++;
  int bad = ferror(f);
  fclose(f);
  if (bad)
    return aal_fail(err, AAL_EIO, "%s: read error", path);
  *has = lines >= 2;
  return AAL_OK;
}

/* The run's rule from RUN/config ("rule = ara:2,2,2,2;eps=..." gives "ara:2,2,2,2"),
 * else the last component of run_dir.  Writes at most len bytes. */
static void run_label(const char *run_dir, const char *config, char *label, size_t len)
{
  label[0] = '\0';
  FILE *f = fopen(config, "r");
  if (f != NULL) {
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
      if (strncmp(line, "rule", 4) != 0)
        continue;
      const char *v = line + 4;
      v += strspn(v, " \t");
      if (*v != '=')
        continue;
      v++;
      v += strspn(v, " \t");
      size_t n = strcspn(v, ";\r\n");
      if (n > 0 && n < len) {
        memcpy(label, v, n);
        label[n] = '\0';
      }
      break;
    }
    fclose(f);
  }
  if (label[0] != '\0')
    return;
  size_t n = strlen(run_dir);
  while (n > 1 && run_dir[n - 1] == '/')
    n--;
  size_t b = n;
  while (b > 0 && run_dir[b - 1] != '/')
    b--;
  if (n - b == 0 || n - b >= len) {
    snprintf(label, len, "run");
    return;
  }
  memcpy(label, run_dir + b, n - b);
  label[n - b] = '\0';
}

/* Runs `gnuplot -e "csv='CSV'; label='LABEL'; out='OUT'" SCRIPT` and checks that it
 * exited 0 and wrote OUT.png and OUT.svg. */
static int run_gnuplot(const char *script, const char *csv, const char *label,
                       const char *out, FILE *log, aal_error *err)
{
  int rc = AAL_OK;
  char *qc = gp_quote(csv), *ql = gp_quote(label), *qo = gp_quote(out);
  char *expr = NULL, *png = NULL, *svg = NULL;
  if (qc == NULL || ql == NULL || qo == NULL)
    goto nomem;
  expr = str_printf("csv='%s'; label='%s'; out='%s'", qc, ql, qo);
  png = str_printf("%s.png", out);
  svg = str_printf("%s.svg", out);
  if (expr == NULL || png == NULL || svg == NULL)
    goto nomem;
  /* a stale figure must not pass for a new one */
  unlink(png);
  unlink(svg);

  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0)
    goto nomem;
  int fe = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (fe == 0 && log != NULL) {
    fflush(log);
    int fd = fileno(log);
    if (fd >= 0 && fd != 1)
      fe = posix_spawn_file_actions_adddup2(&fa, fd, 1);
    if (fe == 0 && fd >= 0 && fd != 2)
      fe = posix_spawn_file_actions_adddup2(&fa, fd, 2);
  } else if (fe == 0) {
    fe = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  if (fe != 0) {
    posix_spawn_file_actions_destroy(&fa);
    rc = aal_fail(err, AAL_EIO, "cannot set up gnuplot for %s: %s", script, strerror(fe));
    goto done;
  }
  fflush(stdout);
  fflush(stderr);
  char *argv[] = {(char *)AAL_GNUPLOT, (char *)"-e", expr, (char *)script, NULL};
  pid_t pid;
  int se = posix_spawn(&pid, AAL_GNUPLOT, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (se != 0) {
    rc = aal_fail(err, AAL_EIO, "cannot run %s for %s: %s", AAL_GNUPLOT, script,
                  strerror(se));
    goto done;
  }
  int status;
  pid_t w;
  do
    w = waitpid(pid, &status, 0);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    rc = aal_fail(err, AAL_EIO, "waiting for gnuplot on %s: %s", script, strerror(errno));
    goto done;
  }
  if (WIFSIGNALED(status)) {
    rc = aal_fail(err, AAL_EIO, "gnuplot on %s (input %s) was killed by signal %d", script,
                  csv, WTERMSIG(status));
    goto done;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    rc = aal_fail(err, AAL_EIO,
                  "gnuplot failed on %s (input %s, exit status %d; its messages are above)",
                  script, csv, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    goto done;
  }
  const char *made[2] = {png, svg};
  for (int k = 0; k < 2; k++) {
    struct stat st;
    if (stat(made[k], &st) != 0 || st.st_size == 0) {
      rc = aal_fail(err, AAL_EIO, "gnuplot ran %s but did not write %s", script, made[k]);
      goto done;
    }
  }
  if (log != NULL)
    fprintf(log, "plot: wrote %s and %s\n", png, svg);
  goto done;
nomem:
  rc = aal_fail(err, AAL_ENOMEM, "out of memory");
done:
  free(qc);
  free(ql);
  free(qo);
  free(expr);
  free(png);
  free(svg);
  return rc;
}

int aal_plot_run(const char *run_dir, const char *out_dir, const char *plots_dir, FILE *log,
                 aal_error *err)
{
  if (run_dir == NULL || run_dir[0] == '\0')
    return aal_fail(err, AAL_EINVAL, "no run directory given");
  if (AAL_GNUPLOT[0] == '\0')
    return aal_fail(err, AAL_EINVAL,
                    "gnuplot was not found when aal was configured: install it (Debian: "
                    "gnuplot-nox) and run configure again");
  if (plots_dir == NULL || plots_dir[0] == '\0')
    plots_dir = aal_plot_default_dir();
  const char *paths[3] = {run_dir, out_dir ? out_dir : "", plots_dir};
  for (int k = 0; k < 3; k++)
    if (strchr(paths[k], '\n') != NULL)
      return aal_fail(err, AAL_EINVAL, "a path with a newline cannot be passed to gnuplot");

  enum { LOSS, HIST, STEPS, NFIG };
  static const char *const scripts[NFIG] = {"loss.gp", "li_hist.gp", "li_steps.gp"};
  static const char *const inputs[NFIG] = {"metrics.csv", "li.csv", "li_summary.csv"};
  static const char *const outputs[NFIG] = {"loss", "li_hist", "li_steps"};
  char *script[NFIG] = {0}, *input[NFIG] = {0}, *output[NFIG] = {0};
  char *config = NULL, *out_own = NULL;
  int rc = AAL_OK;

  if (out_dir == NULL || out_dir[0] == '\0') {
    out_own = path_join(run_dir, "plots");
    if (out_own == NULL)
      goto nomem;
    out_dir = out_own;
  }
  config = path_join(run_dir, "config");
  if (config == NULL)
    goto nomem;
  for (int k = 0; k < NFIG; k++) {
    script[k] = path_join(plots_dir, scripts[k]);
    input[k] = path_join(run_dir, inputs[k]);
    output[k] = path_join(out_dir, outputs[k]);
    if (script[k] == NULL || input[k] == NULL || output[k] == NULL)
      goto nomem;
  }

  /* inputs and scripts first, so that nothing is created for a wrong directory */
  if (access(input[LOSS], R_OK) != 0) {
    rc = aal_fail(err, AAL_EIO, "%s: %s (is %s a run directory of aal train?)", input[LOSS],
                  strerror(errno), run_dir);
    goto done;
  }
  int has[NFIG] = {1, 0, 0};
  for (int k = HIST; k < NFIG; k++) {
    rc = csv_has_rows(input[k], &has[k], err);
    if (rc != AAL_OK)
      goto done;
  }
  for (int k = 0; k < NFIG; k++) {
    if (has[k] && access(script[k], R_OK) != 0) {
      rc = aal_fail(err, AAL_EIO,
                    "%s: %s (the plots directory is %s; set AAL_PLOTS or --plots to "
                    "another)",
                    script[k], strerror(errno), plots_dir);
      goto done;
    }
  }
  rc = make_dirs(out_dir, err);
  if (rc != AAL_OK)
    goto done;

  char label[128];
  run_label(run_dir, config, label, sizeof label);
  for (int k = 0; k < NFIG; k++) {
    if (!has[k]) {
      if (log != NULL)
        fprintf(log, "plot: %s has no learning-indicator rows (train with --li-every N); "
                "no %s figure\n", input[k], outputs[k]);
      continue;
    }
    rc = run_gnuplot(script[k], input[k], label, output[k], log, err);
    if (rc != AAL_OK)
      goto done;
  }
  goto done;
nomem:
  rc = aal_fail(err, AAL_ENOMEM, "out of memory");
done:
  for (int k = 0; k < NFIG; k++) {
    free(script[k]);
    free(input[k]);
    free(output[k]);
  }
  free(config);
  free(out_own);
  return rc;
}
