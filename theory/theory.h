/* Theorem 1 of SPEC section 2 on convex testbeds where the Lipschitz constant L of the
 * gradient (w.r.t. W in the Frobenius norm) is known.
 *
 * A testbed is a linear layer z_b = W h_b (W is m x n, row-major) over a batch of B
 * fixed inputs h_b (rows of H, B x n) with a convex per-sample loss l_b(z_b):
 *
 *   AAL_THEORY_LSQ1     one sample, f(W) = 1/2 ||W h - y||^2,        L = ||h||^2
 *   AAL_THEORY_LSQ      f(W) = 1/(2B) sum_b ||W h_b - y_b||^2,        L = lambda_max(H^T H)/B
 *   AAL_THEORY_SOFTMAX  f(W) = 1/B sum_b CE(softmax(W h_b), label_b),  L <= lambda_max(H^T H)/(2B)
 *
 * The gradient is G = 1/B sum_b delta_b h_b^T with delta_b = dl_b/dz_b (W h_b - y_b,
 * resp. softmax(z_b) - onehot(label_b)).  Training replaces h_b by an alternative
 * activation r_b in the weight update only:
 *
 *   W' = W + dW,   dW = -eta * 1/B sum_b delta_b r_b^T,   eta = eta_fraction / L,
 *
 * and every step is checked against the descent lemma
 *
 *   f(W') <= f(W) + <G, dW>_F + L/2 ||dW||_F^2                                   (D)
 *
 * which for one sample is SPEC's  f(W') <= f(W) - eta ||delta||^2 h^T r
 * + (L eta^2/2) ||delta||^2 ||r||^2  (<G,dW> = -eta ||delta||^2 h^T r and
 * ||dW||^2 = eta^2 ||delta||^2 ||r||^2 because dW is rank one).  (D) holds for every
 * step size and every r (it only needs grad f to be L-Lipschitz); Theorem 1's
 * condition LI >= 0 is what makes its right-hand side <= f(W) when eta = 1/L.
 * Derivations: see the comments in lsq.c, softmax.c and descent.c. */
#ifndef AAL_THEORY_H
#define AAL_THEORY_H

#include <stddef.h>
#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "sim/core/error.h"

typedef enum { AAL_THEORY_LSQ1 = 0, AAL_THEORY_LSQ = 1, AAL_THEORY_SOFTMAX = 2 } aal_theory_kind;

typedef struct {
  aal_theory_kind kind;
  size_t m;        /* outputs (LSQ) or classes (softmax) */
  size_t n;        /* inputs */
  size_t batch;    /* B; 1 for LSQ1 */
  double *H;       /* B x n, row b = h_b (the layer's actual forward input) */
  double *Y;       /* LSQ: B x m targets; NULL for softmax */
  int *labels;     /* softmax: B labels in [0, m); NULL for LSQ */
  double *Wstar;   /* m x n: the teacher that made Y (realisable: min f = 0) or labels */
  double L;        /* Lipschitz constant (exact for LSQ, the 1/2 bound for softmax) */
} aal_theory_problem;

/* Size of each testbed used by the sweep; batch is ignored (forced to 1) for LSQ1. */
typedef struct {
  size_t m, n, batch;
} aal_theory_dims;

/* A random instance: H Gaussian N(0,1); for the sign family (asa_eps > 0) the forward
 * input is H + asa_eps * sign(H) (SPEC section 4: the layer computes on x + eps s), and
 * the teacher's targets are made from that input.  LSQ targets Y = H Wstar^T
 * (realisable); softmax labels = argmax of Wstar h_b.  Frees with aal_theory_problem_free. */
int aal_theory_problem_random(aal_theory_kind kind, const aal_theory_dims *dims, double asa_eps,
                              gsl_rng *rng, aal_theory_problem *p, aal_error *err);
void aal_theory_problem_free(aal_theory_problem *p);
/* Recomputes p->L from p->H (used after H is changed by hand). */
int aal_theory_problem_set_L(aal_theory_problem *p, aal_error *err);

/* lambda_max(H^T H) for H of B x n, by gsl_eigen_symm on the smaller of the two Gram
 * matrices (H^T H, n x n, or H H^T, B x B: same non-zero eigenvalues). */
int aal_theory_gram_lambda_max(const double *H, size_t B, size_t n, double *lambda,
                               aal_error *err);

/* Loss and per-sample delta (B x m, may be NULL) at W.  *scale (may be NULL) receives the
 * magnitude that bounds the rounding error of the computed loss to first order:
 *   1/B sum_b [ ||delta_b|| (||W||_F ||h_b|| + ||y_b||) + |l_b| ]
 * (the residual/logit components are (n+1)-term sums with error <= (n+1) u
 * (|W||h_b| + |y_b|), and || |W||h| || <= ||W||_F ||h||). */
int aal_theory_loss(const aal_theory_problem *p, const double *W, double *f, double *delta,
                    double *scale, aal_error *err);
/* The gradient G (m x n) from delta: G = 1/B sum_b delta_b h_b^T. */
void aal_theory_grad(const aal_theory_problem *p, const double *delta, double *G);

/* ------------------------------------------------------------ alternative activations */
typedef enum {
  AAL_THEORY_PARALLEL = 0,    /* r = alpha h, alpha = 1 - sqrt(1 - LI)  (LI = 2a - a^2)   */
  AAL_THEORY_PARALLEL_HI = 1, /* r = alpha h, alpha = 1 + sqrt(1 - LI)  (the other root)  */
  AAL_THEORY_ORTHO = 2,       /* r = h + o, o _|_ h, ||o||^2 = (1 - LI) ||h||^2           */
  AAL_THEORY_STALE = 3,       /* r = h - g, g random, ||g||^2 = (1 - LI) ||h||^2 (ARA:
                                 h = x_b = x_a + residual g, r = x_a); LI = 1 - ||g||^2/||h||^2 */
  AAL_THEORY_SIGN = 4,        /* ASA: h = x + eps s, r = expansion * eps * s, s = +-1       */
  AAL_THEORY_NOISE = 5,       /* r Gaussian with ||r|| = ||h||  (E LI ~ -1)                */
  AAL_THEORY_FLIP = 6         /* r = -h  (LI = -3)                                          */
} aal_theory_family;
#define AAL_THEORY_NFAMILIES 7

typedef struct {
  aal_theory_family family;
  double target_li;  /* PARALLEL*, ORTHO, STALE: the LI to produce, <= 1 */
  double eps;        /* SIGN: auxiliary amplitude (SPEC default 0.01) */
  double expansion;  /* SIGN: multiplier of eps*s in the update (1: the pure theorem
                        setting; 100 is ASA's lr_expansion) */
} aal_theory_rspec;

const char *aal_theory_family_name(aal_theory_family f);
int aal_theory_family_parse(const char *name, aal_theory_family *f);
const char *aal_theory_kind_name(aal_theory_kind k);
/* The family's target is settable (PARALLEL*, ORTHO, STALE) rather than natural. */
int aal_theory_family_has_target(aal_theory_family f);

/* r (n) for one sample h (n) that is not zero.  rng is used by ORTHO, STALE and NOISE
 * (fresh directions each call).  For SIGN, h is the ASA forward input x + eps s; s is
 * recovered from h exactly (with the SPEC's +-1 decoding, +1 where x > 0 and -1
 * otherwise, h_i = x_i + eps s_i has the sign s_i for every x_i when eps > 0). */
int aal_theory_make_r(const aal_theory_rspec *spec, const double *h, size_t n, gsl_rng *rng,
                      double *r, aal_error *err);

/* ------------------------------------------------------------ training and checks */
typedef struct {
  double loss;        /* f(W) before the step */
  double loss_next;   /* f(W') */
  double li_mean;     /* mean over samples of this step's LI */
  double li_min;
  double li_grad;     /* <R, 2G - R>/||G||^2, R = 1/B sum_b delta_b r_b^T: the batch form of
                         LI that the descent lemma needs (= LI for B = 1); NaN if G = 0 */
  double bound;       /* right-hand side of (D) */
  double allowance;   /* rounding allowance added to the bound, see descent.c */
  int held;           /* loss_next <= bound + allowance (NaN fails) */
  double exact;       /* LSQ1 with eta = 1/L: f(W) + ||delta||^2 (-c + c^2/2); else NaN */
  int exact_ok;       /* |loss_next - exact| <= allowance; 1 when exact is NaN */
} aal_theory_step;

typedef struct {
  size_t steps;           /* steps run (fewer than asked when the loss blew up) */
  double initial_loss, final_loss;
  double li_mean, li_min; /* over all steps and samples */
  double li_grad_min;     /* min over steps of the gradient-level indicator */
  int monotone;           /* f(W_{k+1}) <= f(W_k) + allowance_k at every step */
  int diverged;           /* stopped because f exceeded 1e100 f(W_0) or became non-finite */
  size_t violations;      /* steps where (D) failed */
  size_t exact_failures;  /* LSQ1, eta = 1/L: steps where the closed form disagreed */
  size_t zero_norm;       /* samples without an LI (never for Gaussian data) */
} aal_theory_result;

typedef struct {
  size_t steps;
  double eta_fraction;    /* eta = eta_fraction / L (default 1) */
  double L_check;         /* L used in (D); 0: the problem's L.  Tests set a wrong one
                             to show that the check can fail. */
} aal_theory_train_opts;

/* Trains from W0 (m x n, not modified) with r from spec, re-drawn every step.  trace
 * (may be NULL) receives opts->steps entries.  rng drives the random families. */
int aal_theory_train(const aal_theory_problem *p, const double *W0, const aal_theory_rspec *spec,
                     const aal_theory_train_opts *opts, gsl_rng *rng, aal_theory_result *res,
                     aal_theory_step *trace, aal_error *err);

/* ------------------------------------------------------------ the sweep */
typedef struct {
  unsigned long seed;       /* base seed; run k of a point uses seed + k */
  size_t seeds;             /* runs per (problem, family, point) */
  size_t steps;
  size_t points;            /* LI targets over [-1, 1] for the targetable families */
  int problems;             /* bit mask of 1 << aal_theory_kind */
  double eta_fraction;
  aal_theory_dims dims[3];  /* per kind */
} aal_theory_sweep_opts;

void aal_theory_sweep_opts_default(aal_theory_sweep_opts *o);

/* One CSV row per run (header first):
 *   problem,family,target_li,seed,measured_li_mean,measured_li_min,
 *   final_over_initial_loss,monotone,steps,inequality_violations,closed_form_failures
 * target_li is nan for the natural families (sign, noise, flip).  The table (may be
 * NULL) gets a summary per problem, family and LI bin.  *violations receives the total
 * number of (D) failures and closed-form failures (must be 0). */
int aal_theory_sweep(const aal_theory_sweep_opts *o, FILE *csv, FILE *table, size_t *violations,
                     aal_error *err);

/* Writes the sweep's CSV to path atomically (path.tmp.PID, fsync, rename). */
int aal_theory_sweep_to_file(const aal_theory_sweep_opts *o, const char *path, FILE *table,
                             size_t *violations, aal_error *err);

#endif
