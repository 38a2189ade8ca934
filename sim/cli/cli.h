/* What every command of `aal` shares: the option parser (`--name value` or
 * `--name=value`, plus at most one operand such as RUN_DIR), the dispatch of a table of
 * commands, and the exit status of a library call.  Every error names the option and the
 * bad text, and the caller exits non-zero. */
#ifndef AAL_CLI_H
#define AAL_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "sim/core/error.h"

typedef enum {
  CLI_INT, CLI_LONG, CLI_ULONG, CLI_DOUBLE, CLI_STRING, CLI_FLAG,
  CLI_OPERAND /* the one word that is neither an option nor its value; name: as in usage */
} cli_kind;

typedef struct {
  const char *name;   /* without the leading dashes */
  cli_kind kind;
  void *target;       /* int*, long*, unsigned long*, double*, const char**, int* (flag),
                         const char** (operand) */
  const char *help;   /* one line, shown by --help (none for the operand) */
} cli_option;

/* cli_parse's answer when the command should run; any other answer is its exit status. */
#define CLI_RUN (-1)

/* Parses argv[first..argc) against opts (terminated by a zero entry).  Returns CLI_RUN
 * on success, 0 when --help was given (usage printed to stdout), 2 on an error (printed
 * to stderr as "aal CMD: ...").  With a CLI_OPERAND entry, the one word that is neither
 * an option nor the value of one may stand anywhere; a second such word is an error. */
int cli_parse(const char *cmd, const char *usage, const cli_option *opts, int argc,
              char **argv, int first);
void cli_usage(const char *cmd, const char *usage, const cli_option *opts);

/* 1 when argv[first..argc), a line cli_parse accepted, gives the option `name` (as
 * --name VALUE, --name=VALUE or, for a flag, --name), else 0. */
int cli_given(const cli_option *opts, int argc, char **argv, int first, const char *name);

/* 0 when value is set; else prints "aal CMD: WHAT is required (see aal CMD --help)" and
 * returns 2. */
int cli_require(const char *cmd, const void *value, const char *what);

/* The exit status of a library call's status rc: 0 for AAL_OK, else 1 after printing
 * "aal CMD: MESSAGE (STATUS)" to stderr. */
int cli_report(const char *cmd, int rc, const aal_error *err);

/* --threads: 0 keeps OpenBLAS's default, 1..256 sets it; another value prints an error
 * and returns 2. */
int cli_set_threads(const char *cmd, int threads);

/* --model and --stem: 0 when both name a model and a stem (aal_resnet_config_set_model,
 * _set_stem), else prints the error naming the option and returns 2. */
int cli_check_model(const char *cmd, const char *model, const char *stem);

/* A command of a table: its name, its body (given the whole argv) and one line of help. */
typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} cli_command;

/* Prints "  NAME HELP" per command of table[0..n), the names padded to width. */
void cli_list(FILE *out, const cli_command *table, size_t n, int width);

/* Runs the command of table[0..n) named argv[first] with the whole argv.  No name: usage
 * on missing_out, exit 2; --help or -h: usage on stdout, exit 0; an unknown name: "PROG:
 * unknown NOUN 'NAME' (see PROG --help)", exit 2. */
int cli_dispatch(const char *prog, const char *noun, const cli_command *table, size_t n,
                 void (*usage)(FILE *out), FILE *missing_out, int argc, char **argv,
                 int first);

#endif
