/* The data subcommands of the `aal` command (sim/cli/data.c):
 *   aal gen-data --out DIR [--classes C] [--per-class N] [--val-per-class M] [--seed S]
 *   aal data-info --data DIR [--cache FILE]
 * Both take the whole argv (argv[1] is the subcommand) and return the exit status:
 * 0 success, 1 failure, 2 bad usage. */
#ifndef AAL_CMD_DATA_H
#define AAL_CMD_DATA_H

int aal_cmd_gen_data(int argc, char **argv);
int aal_cmd_data_info(int argc, char **argv);

#endif
