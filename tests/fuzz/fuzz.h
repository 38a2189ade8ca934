/* Shared by the libFuzzer harnesses (tests/fuzz/TARGET.c, built by `make fuzz`): a private
 * temporary directory per process (under $TMPDIR, removed at exit), files written from
 * the fuzzer's bytes, and a check that stops the process (abort, so that libFuzzer saves
 * the input) when a property does not hold.
 *
 * A harness must not leak (LeakSanitizer runs at exit and on every input libFuzzer
 * suspects), must not write outside its directory and must be deterministic. */
#ifndef AAL_TESTS_FUZZ_H
#define AAL_TESTS_FUZZ_H

#define _GNU_SOURCE /* nftw, memmem */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/core/error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test failed: say which and abort (libFuzzer saves the
 * input as a crash). */
#define FUZZ_REQUIRE(cond, ...)                                                           \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "fuzz: %s:%d: property failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                       \
      fputc('\n', stderr);                                                                \
      abort();                                                                            \
    }                                                                                     \
  } while (0)

/* The harness itself cannot go on (no temp dir, a full disk): not a finding. */
#define FUZZ_SETUP(cond, what)                                                     \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "fuzz: setup failed: %s: %s\n", what, strerror(errno));      \
      exit(2);                                                                     \
    }                                                                              \
  } while (0)

static char fuzz_root[4096];

static int fuzz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path); /* best effort */
  return 0;
}

static void fuzz_cleanup(void)
{
  if (fuzz_root[0] != '\0')
    nftw(fuzz_root, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes the process's directory $TMPDIR/aal-fuzz-NAME-XXXXXX (removed at exit). */
static const char *fuzz_tmpdir(const char *name)
{
  const char *base = getenv("TMPDIR");
  if (base == NULL || *base == '\0')
    base = "/tmp";
  snprintf(fuzz_root, sizeof fuzz_root, "%s/aal-fuzz-%s-XXXXXX", base, name);
  FUZZ_SETUP(mkdtemp(fuzz_root) != NULL, fuzz_root);
  atexit(fuzz_cleanup);
  return fuzz_root;
}

/* root/rel, into buf. */
static void fuzz_path(char *buf, size_t len, const char *root, const char *rel)
{
  FUZZ_SETUP(snprintf(buf, len, "%s/%s", root, rel) < (int)len, "path too long");
}

/* Writes exactly the bytes (replacing the file). */
static void fuzz_write(const char *path, const void *data, size_t size)
{
  FILE *f = fopen(path, "wb");
  FUZZ_SETUP(f != NULL, path);
  FUZZ_SETUP(size == 0 || fwrite(data, 1, size, f) == size, path);
  FUZZ_SETUP(fclose(f) == 0, path);
}

/* The whole file into a malloc'd buffer (*len bytes); NULL when it cannot be read. */
static unsigned char *fuzz_read(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, n = 0;
  unsigned char *b = malloc(cap);
  while (b != NULL) {
    n += fread(b + n, 1, cap - n, f);
    if (n < cap)
      break;
    unsigned char *g = realloc(b, cap * 2);
    if (g == NULL)
      free(b);
    b = g;
    cap *= 2;
  }
  fclose(f);
  *len = n;
  return b;
}

#endif
