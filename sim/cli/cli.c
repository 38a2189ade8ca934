#include "sim/cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage(const char *cmd, const char *usage, const cli_option *opts)
{
  printf("usage: aal %s %s\n\n", cmd, usage);
  printf("options:\n");
  for (const cli_option *o = opts; o->name != NULL; o++) {
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
    if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
      return o;
  return NULL;
}

int cli_parse(const char *cmd, const char *usage, const cli_option *opts, int argc,
              char **argv, int first)
{
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      cli_usage(cmd, usage, opts);
      return 1;
    }
    if (strncmp(arg, "--", 2) != 0) {
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
  return 0;
}
