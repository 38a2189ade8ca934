/* The lock of a run directory: RUN/.lock, held (flock, exclusive) by the one process that
 * writes the run, for as long as it writes it.  flock rather than fcntl: its lock belongs
 * to the open file, so two writers in one process exclude each other too.  The file is
 * never removed (removing it would let a third writer lock a new file beside a held one). */
#define _DEFAULT_SOURCE /* flock */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "sim/train/train_internal.h"

/* A temporary file of aal_write_atomic for one of the run's files: NAME.tmp.XXXXXX. */
static int stale_tmp(const char *entry)
{
  static const char *const names[] = {"config", "metrics.csv", "li.csv", "li_summary.csv",
                                      "align.csv", "checkpoint.bin"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const size_t n = strlen(names[i]);
    if (strncmp(entry, names[i], n) == 0 && strncmp(entry + n, ".tmp.", 5) == 0 &&
        strlen(entry + n + 5) == 6)
      return 1;
  }
  return 0;
}

/* Removes the temporary files a killed writer left (only the lock holder writes them). */
static int remove_stale(const char *run_dir, aal_error *err)
{
  DIR *d = opendir(run_dir);
  if (d == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot list: %s", run_dir, strerror(errno));
  int rc = AAL_OK;
  const struct dirent *e;
  char path[PATH_MAX];
  while (rc == AAL_OK && (e = readdir(d)) != NULL) {
    if (!stale_tmp(e->d_name))
      continue;
    rc = aal_train_path(path, sizeof path, run_dir, e->d_name, err);
    if (rc == AAL_OK && unlink(path) != 0 && errno != ENOENT)
      rc = aal_fail(err, AAL_EIO, "%s: cannot remove this file a killed run left: %s", path,
                    strerror(errno));
  }
  closedir(d);
  return rc;
}

int aal_run_lock(const char *run_dir, int *fd, aal_error *err)
{
  char path[PATH_MAX];
  *fd = -1;
  int rc = aal_train_path(path, sizeof path, run_dir, ".lock", err);
  if (rc != AAL_OK)
    return rc;
  const int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (f < 0)
    return aal_fail(err, AAL_EIO, "%s: cannot open the run's lock file: %s", path,
                    strerror(errno));
  int r;
  while ((r = flock(f, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
    ;
  if (r != 0) {
    const int e = errno;
    close(f);
    if (e == EWOULDBLOCK)
      return aal_fail(err, AAL_EIO, "%s is in use: another aal process is writing this run "
                      "(it holds %s); wait for it to end or use another directory", run_dir,
                      path);
    return aal_fail(err, AAL_EIO, "%s: cannot lock: %s", path, strerror(e));
  }
  rc = remove_stale(run_dir, err);
  if (rc != AAL_OK) {
    close(f);
    return rc;
  }
  *fd = f;
  return AAL_OK;
}

void aal_run_unlock(int fd)
{
  if (fd >= 0)
    close(fd); /* releases the lock */
}
