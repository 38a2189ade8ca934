#include "sim/cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "sim/model/resnet.h"

void cli_usage(const char *cmd, const char *usage, const cli_option *opts)
{
  printf("usage: aal %s %s\n\n", cmd, usage);
  printf("options:\n");
  for (const cli_option *o = opts; o->name != NULL; o++) {
    if (o->kind == CLI_OPERAND)
      continue;
    const char *arg = o->kind == CLI_FLAG     ? ""
                      : o->kind == CLI_STRING ? " TEXT"
                      : o->kind == CLI_DOUBLE ? " X"
                                              : " N";
    char left[64];
    snprintf(left, sizeof left, "--%s%s", o->name, arg);
    printf("  %-24s %s\n", left, o->help);
  }
  printf("  %-24s %s\n", "--help", "show this help and exit");
}

static int parse_value(const char *cmd, const cli_option *o, const char *text)
{
  char *end = NULL;
  errno = 0;
  switch (o->kind) {
  case CLI_INT: {
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < INT_MIN || v > INT_MAX)
      break;
    *(int *)o->target = (int)v;
    return 0;
  }
  case CLI_LONG: {
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
      break;
    *(long *)o->target = v;
    return 0;
  }
  case CLI_ULONG: {
    if (text[0] == '-')
      break;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
      break;
    *(unsigned long *)o->target = v;
    return 0;
  }
  case CLI_DOUBLE: {
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
      break;
    *(double *)o->target = v;
    return 0;
  }
  case CLI_STRING:
    *(const char **)o->target = text;
    return 0;
  case CLI_FLAG:
  case CLI_OPERAND:
    break;
  }
  const char *want = o->kind == CLI_DOUBLE ? "a finite number"
                     : o->kind == CLI_ULONG ? "a non-negative integer"
                                            : "an integer";
  fprintf(stderr, "aal %s: option --%s expects %s, got '%s'\n", cmd, o->name, want, text);
  return 2;
}

static const cli_option *find_option(const cli_option *opts, const char *name, size_t len)
{
  for (const cli_option *o = opts; o->name != NULL; o++)
    if (o->kind != CLI_OPERAND && strlen(o->name) == len && strncmp(o->name, name, len) == 0)
      return o;
  return NULL;
}

static const cli_option *find_operand(const cli_option *opts)
{
  for (const cli_option *o = opts; o->name != NULL; o++)
    if (o->kind == CLI_OPERAND)
      return o;
  return NULL;
}

static int is_help(const char *arg)
{
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Takes the operand before the options are parsed: the one word that is neither an
 * option nor the value of one (every option but --help, a flag or --name=value takes the
 * next word).  A second such word is an error, whatever else the line holds. */
static int take_operand(const char *cmd, const cli_option *opts, const cli_option *operand,
                        int argc, char **argv, int first)
{
  int seen = 0;
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) == 0) {
      const cli_option *o = find_option(opts, arg + 2, strlen(arg + 2));
      if (!is_help(arg) && strchr(arg, '=') == NULL && !(o != NULL && o->kind == CLI_FLAG))
        i++;
    } else if (is_help(arg)) {
      continue;
    } else if (!seen) {
      *(const char **)operand->target = arg;
      seen = 1;
    } else {
      fprintf(stderr, "aal %s: unexpected argument '%s': one %s only (see aal %s --help)\n",
              cmd, arg, operand->name, cmd);
      return 2;
    }
  }
  return 0;
}

int cli_parse(const char *cmd, const char *usage, const cli_option *opts, int argc,
              char **argv, int first)
{
  const cli_option *operand = find_operand(opts);
  if (operand != NULL && take_operand(cmd, opts, operand, argc, argv, first) != 0)
    return 2;
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (is_help(arg)) {
      cli_usage(cmd, usage, opts);
      return 0;
    }
    if (strncmp(arg, "--", 2) != 0) {
      if (operand != NULL) /* taken above */
        continue;
      fprintf(stderr, "aal %s: unexpected argument '%s' (see aal %s --help)\n", cmd, arg, cmd);
      return 2;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_option *o = find_option(opts, name, len);
    if (o == NULL) {
      fprintf(stderr, "aal %s: unknown option '%.*s' (see aal %s --help)\n", cmd,
              (int)(len + 2), arg, cmd);
      return 2;
    }
    if (o->kind == CLI_FLAG) {
      if (eq != NULL) {
        fprintf(stderr, "aal %s: option --%s takes no value\n", cmd, o->name);
        return 2;
      }
      *(int *)o->target = 1;
      continue;
    }
    const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (value == NULL) {
      fprintf(stderr, "aal %s: option --%s needs a value\n", cmd, o->name);
      return 2;
    }
    int rc = parse_value(cmd, o, value);
    if (rc != 0)
      return rc;
  }
  return CLI_RUN;
}

int cli_given(const cli_option *opts, int argc, char **argv, int first, const char *name)
{
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0 || is_help(arg))
      continue;
    const char *eq = strchr(arg + 2, '=');
    const size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (strlen(name) == len && strncmp(arg + 2, name, len) == 0)
      return 1;
    const cli_option *o = find_option(opts, arg + 2, len);
    if (eq == NULL && !(o != NULL && o->kind == CLI_FLAG))
      i++; /* its value */
  }
  return 0;
}

int cli_require(const char *cmd, const void *value, const char *what)
{
  if (value != NULL)
    return 0;
  fprintf(stderr, "aal %s: %s is required (see aal %s --help)\n", cmd, what, cmd);
  return 2;
}

int cli_report(const char *cmd, int rc, const aal_error *err)
{
  if (rc == AAL_OK)
    return EXIT_SUCCESS;
  fprintf(stderr, "aal %s: %s (%s)\n", cmd, err->msg[0] ? err->msg : "failed",
          aal_status_name(rc));
  return EXIT_FAILURE;
}

int cli_set_threads(const char *cmd, int threads)
{
  if (threads < 0 || threads > 256) {
    fprintf(stderr, "aal %s: --threads %d must be in 0..256 (0: OpenBLAS's default)\n", cmd,
            threads);
    return 2;
  }
  if (threads > 0)
    openblas_set_num_threads(threads);
  return 0;
}

void cli_list(FILE *out, const cli_command *table, size_t n, int width)
{
  for (size_t i = 0; i < n; i++)
    fprintf(out, "  %-*s %s\n", width, table[i].name, table[i].help);
}

int cli_dispatch(const char *prog, const char *noun, const cli_command *table, size_t n,
                 void (*usage)(FILE *out), FILE *missing_out, int argc, char **argv,
                 int first)
{
  if (argc <= first) {
    usage(missing_out);
    return 2;
  }
  if (is_help(argv[first])) {
    usage(stdout);
    return EXIT_SUCCESS;
  }
  for (size_t i = 0; i < n; i++)
    if (strcmp(argv[first], table[i].name) == 0)
      return table[i].run(argc, argv);
  fprintf(stderr, "%s: unknown %s '%s' (see %s --help)\n", prog, noun, argv[first], prog);
  return 2;
}

int cli_check_model(const char *cmd, const char *model, const char *stem)
{
  aal_resnet_config cfg;
  aal_error err;
  aal_error_clear(&err);
  aal_resnet_config_default(&cfg);
  if (aal_resnet_config_set_model(&cfg, model, &err) != AAL_OK ||
      aal_resnet_config_set_stem(&cfg, stem, &err) != AAL_OK) {
    fprintf(stderr, "aal %s: %s\n", cmd, err.msg);
    return 2;
  }
  return 0;
}
