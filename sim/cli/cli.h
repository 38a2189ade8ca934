/* Option parsing for the `aal` command: `--name value` or `--name=value`; every error
 * names the option and the bad text, and the caller exits non-zero. */
#ifndef AAL_CLI_H
#define AAL_CLI_H

typedef enum { CLI_INT, CLI_LONG, CLI_ULONG, CLI_DOUBLE, CLI_STRING, CLI_FLAG } cli_kind;

typedef struct {
  const char *name;   /* without the leading dashes */
  cli_kind kind;
  void *target;       /* int*, long*, unsigned long*, double*, const char**, int* (flag) */
  const char *help;   /* one line, shown by --help */
} cli_option;

/* Parses argv[first..argc) against opts (terminated by a zero entry).  Returns 0 on
 * success, 1 when --help was given (usage printed to stdout), 2 on an error (printed
 * to stderr as "aal CMD: ..."). */
int cli_parse(const char *cmd, const char *usage, const cli_option *opts, int argc,
              char **argv, int first);
void cli_usage(const char *cmd, const char *usage, const cli_option *opts);

#endif
