/* The commands of `aal`, one file each in sim/cli (main.c holds the table).  Each takes
 * the whole argv (argv[1] is the command; for bench, argv[2] names the benchmark) and
 * returns the exit status: 0 success, 1 failure (for the checks kcheck and theorem, also
 * a failed check), 2 bad usage. */
#ifndef AAL_CLI_COMMANDS_H
#define AAL_CLI_COMMANDS_H

int aal_cmd_smoke(int argc, char **argv);     /* smoke.c */
int aal_cmd_train(int argc, char **argv);     /* train.c */
int aal_cmd_dump(int argc, char **argv);      /* dump.c */
int aal_cmd_gen_data(int argc, char **argv);  /* data.c */
int aal_cmd_data_info(int argc, char **argv); /* data.c */
int aal_cmd_theorem(int argc, char **argv);   /* theorem.c */
int aal_cmd_kcheck(int argc, char **argv);    /* kcheck.c */
int aal_cmd_kcheck_npy(const char *dir);      /* kcheck_npy.c: aal kcheck --npy DIR */
int aal_cmd_plot(int argc, char **argv);      /* plot.c */
int aal_cmd_memory(int argc, char **argv);    /* memory.c */
int aal_cmd_memory_tf(int argc, char **argv); /* memory_tf.c: --model vit-large, ... */
int aal_memory_tf_model(int argc, char **argv); /* 1: --model names a Transformer-like model */
int aal_cmd_bench(int argc, char **argv);     /* bench.c: conv, step or kernels */
int aal_cmd_bench_conv(int argc, char **argv);
int aal_cmd_bench_step(int argc, char **argv);
int aal_cmd_bench_kernels(int argc, char **argv);
int aal_cmd_devices(int argc, char **argv);   /* devices.c */

#endif
