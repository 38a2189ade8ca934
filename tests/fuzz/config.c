/* Fuzzes the run config reader (sim/train/config.c, aal_train_config_read) and the
 * resume check that compares options with it (aal_train_resume_check).
 *
 * The input is written as RUN/config and read.  Properties of a config that reads:
 * every string it gives lies in the caller's buffer, NUL-terminated (or is the default
 * aal_train_opts_default set, for a key that may be absent); the integers are in
 * their documented ranges; and when its rule parses, a resume asked for exactly the
 * config's own values agrees with it (every option flagged; --lr only when positive, as
 * 0 asks for the default).
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (the config of a real one-step run on a
 * generated tree, and broken variants) and exits. */
#include "tests/fuzz/fuzz.h"

#include <limits.h>

#include "sim/data/data.h"
#include "sim/model/rules.h"
#include "sim/train/train.h"
#include "sim/train/train_internal.h"

#define STRINGS (3 * 4096)

static char run[4200], config_path[4300];
static char strings[STRINGS];

/* A string the reader gave: in the caller's buffer, or the default it started from. */
static void check_string(const char *s, const char *dflt, const char *key)
{
  if (s == NULL || s == dflt)
    return;
  FUZZ_REQUIRE(s >= strings && s < strings + STRINGS, "%s outside the buffer", key);
  FUZZ_REQUIRE(memchr(s, '\0', (size_t)(strings + STRINGS - s)) != NULL, "%s unterminated",
               key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_write(config_path, data, size);
  aal_train_opts o;
  aal_error err;
  if (aal_train_config_read(run, &o, strings, sizeof strings, &err) != AAL_OK)
    return 0;
  aal_train_opts d;
  aal_train_opts_default(&d);
  check_string(o.rule, d.rule, "rule");
  check_string(o.data_dir, d.data_dir, "data");
  check_string(o.blocks, d.blocks, "blocks");
  check_string(o.backend, d.backend, "backend");
  FUZZ_REQUIRE(o.steps >= 0 && o.eval_every >= 0 && o.checkpoint_every >= 0 &&
               o.li_every >= 0 && o.blas_threads >= 0 && o.ranks >= 1,
               "steps %ld eval %ld checkpoint %ld li %ld threads %d ranks %d", o.steps,
               o.eval_every, o.checkpoint_every, o.li_every, o.blas_threads, o.ranks);
  aal_rule rule;
  if (aal_rule_parse(o.rule, &rule, &err) != AAL_OK)
    return 0;
  unsigned set = AAL_SET_RULE | AAL_SET_DATA | AAL_SET_BATCH | AAL_SET_WARMUP |
                 AAL_SET_MOMENTUM | AAL_SET_WEIGHT_DECAY | AAL_SET_EVAL_EVERY |
                 AAL_SET_CHECKPOINT_EVERY | AAL_SET_LI_EVERY | AAL_SET_WIDTH |
                 AAL_SET_BLOCKS | AAL_SET_SEED | AAL_SET_BACKEND | AAL_SET_THREADS;
  if (o.lr > 0)
    set |= AAL_SET_LR;
  aal_train_opts asked = o; /* the check reads the config into a buffer of its own */
  asked.out_dir = run;
  const int rc = aal_train_resume_check(run, &asked, set, &err);
  FUZZ_REQUIRE(rc == AAL_OK, "the config's own values contradict it: %s", err.msg);
  return 0;
}

/* The config text with the lines starting with `drop` left out and `add` appended. */
static void variant(const char *dir, const char *name, const char *text, const char *drop,
                    const char *add)
{
  char path[4300];
  fuzz_path(path, sizeof path, dir, name);
  FILE *f = fopen(path, "wb");
  FUZZ_SETUP(f != NULL, path);
  for (const char *p = text; *p != '\0';) {
    const char *nl = strchr(p, '\n');
    const size_t n = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
    if (drop == NULL || strncmp(p, drop, strlen(drop)) != 0)
      fwrite(p, 1, n, f);
    p += n;
  }
  fputs(add, f);
  FUZZ_SETUP(fclose(f) == 0, path);
}

static void write_seeds(const char *dir)
{
  char data[4300], out[4300], path[4400];
  aal_error err;
  fuzz_path(data, sizeof data, fuzz_root, "tree");
  fuzz_path(out, sizeof out, fuzz_root, "seed-run");
  FUZZ_SETUP(aal_gen_data(data, 2, 2, 1, 1, NULL, &err) == AAL_OK, err.msg);
  aal_train_opts o;
  aal_train_opts_default(&o);
  o.data_dir = data;
  o.out_dir = out;
  o.rule = "asa:1,1,1;eps=0.0123456789;decode=pm1"; /* 3 groups for 1,1,1,1 */
  o.width = 1.0 / 64;
  o.blocks = "1,1,1,1";
  o.batch = 2;
  o.steps = 1;
  o.progress = 0;
  o.seed = 18446744073709551615ul;
  o.backend = "cpu32";
  FUZZ_SETUP(aal_train(&o, NULL, &err) == AAL_OK, err.msg);
  fuzz_path(path, sizeof path, out, "config");
  size_t len;
  char *text = (char *)fuzz_read(path, &len);
  FUZZ_SETUP(text != NULL, path);
  char *t = realloc(text, len + 1);
  FUZZ_SETUP(t != NULL, "realloc");
  t[len] = '\0';
  variant(dir, "run.config", t, NULL, "");
  variant(dir, "no-rule.config", t, "rule", "");
  variant(dir, "old-no-backend-threads.config", t, "b", "batch = 2\nblocks = 1,1,1,1\n");
  variant(dir, "twice.config", t, NULL, "seed = 1\n");
  variant(dir, "ranks.config", t, "ranks", "ranks = 2\n"); /* a data-parallel run's */
  variant(dir, "bad-values.config", t, "steps", "steps = 3.5\nwidth = 1e999\nfoo\n");
  /* a line longer than the reader's buffer (4160 bytes), whose rest looks like a key */
  char *seedless = malloc(len + 1), *line = malloc(4300);
  FUZZ_SETUP(seedless != NULL && line != NULL, "malloc");
  seedless[0] = '\0';
  for (const char *p = t; *p != '\0';) {
    const char *nl = strchr(p, '\n');
    const size_t n = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
    if (strncmp(p, "seed", 4) != 0 && strncmp(p, "data ", 5) != 0)
      strncat(seedless, p, n);
    p += n;
  }
  int n = snprintf(line, 4300, "data = ");
  while (n < 7 + 4152)
    line[n++] = 'd';
  snprintf(line + n, 4300 - (size_t)n, "seed = 7\n");
  variant(dir, "long-line.config", seedless, NULL, line);
  free(seedless);
  free(line);
  free(t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  const char *root = fuzz_tmpdir("config");
  fuzz_path(run, sizeof run, root, "run");
  FUZZ_SETUP(mkdir(run, 0755) == 0, run);
  fuzz_path(config_path, sizeof config_path, run, "config");
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  return 0;
}
