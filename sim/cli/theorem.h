/* `aal theorem`: the Theorem 1 sweep on the convex testbeds (theory/theory.h). */
#ifndef AAL_CMD_THEOREM_H
#define AAL_CMD_THEOREM_H

/* argv[1] is "theorem"; options from argv[2].  Returns the process exit status: 0, 1
 * (a failure, or any violation of the descent inequality or the closed form), 2 (bad
 * options). */
int aal_cmd_theorem(int argc, char **argv);

#endif
