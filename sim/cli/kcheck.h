/* `aal kcheck`: holds a backend of the op table against the double reference
 * (kernels/check/kcheck.h). */
#ifndef AAL_CMD_KCHECK_H
#define AAL_CMD_KCHECK_H

/* Exit status: 0 all checks passed, 1 a check failed or the backend is unavailable,
 * 2 a bad command line. */
int aal_cmd_kcheck(int argc, char **argv);

#endif
