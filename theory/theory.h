/* Theorem 1 of SPEC section 2 on convex testbeds where the Lipschitz constant L of the
 * gradient (w.r.t. W in the Frobenius norm) is known.
 *
 * A testbed is a linear layer z_b = W h_b (W is m x n, row-major) over a batch of B
 * fixed inputs h_b (rows of H, B x n) with a convex per-sample loss l_b(z_b):
 *
 *   AAL_THEORY_LSQ1     one sample, f(W) = 1/2 ||W h - y||^2,        L = ||h||^2
 *   AAL_THEORY_LSQ      f(W) = 1/(2B) sum_b ||W h_b - y_b||^2,        L = lambda_max(H^T H)/B
 *   AAL_THEORY_SOFTMAX  f(W) = 1/B sum_b CE(softmax(W h_b), label_b),  L <= lambda_max(H^T H)/(2B)
 *   AAL_THEORY_SOFTMAX1 the same with one sample,                      L <= ||h||^2/2
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
 * step size and every r (it only needs grad f to be L-Lipschitz): checking it tests
 * the implementation (L, the loss, the update), not the theorem.
 *
 * Theorem 1 itself is checked separately, on one-sample problems with eta <= 1/L only
 * (its hypotheses): with L eta <= 1, (D) implies
 *
 *   f(W') <= f(W) - (eta/2) LI ||grad f||^2                                      (T)
 *
 * (||grad f||^2 = ||delta||^2 ||h||^2), so a step with LI >= 0 must not raise the loss
 * and must lower it by at least the guaranteed amount (eta/2) LI ||grad f||^2.  A run
 * with eta > 1/L is outside the theorem and flagged, not checked; mini-batch runs are
 * outside the per-sample theorem (cross-sample terms, see descent.c).  On one sample the
 * new loss depends on r only through c = r^T h/||h||^2 (W'h = W h - eta ||h||^2 c
 * delta), and LI = 2c - ||r||^2/||h||^2 = (2c - c^2) - ||r_perp||^2/||h||^2.
 * Derivations: see the comments in lsq.c, softmax.c and descent.c. */
#ifndef AAL_THEORY_H
#define AAL_THEORY_H

#include <stddef.h>
#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "sim/core/error.h"

typedef enum {
  AAL_THEORY_LSQ1 = 0,
  AAL_THEORY_LSQ = 1,
  AAL_THEORY_SOFTMAX = 2,
  AAL_THEORY_SOFTMAX1 = 3
} aal_theory_kind;
#define AAL_THEORY_NKINDS 4

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

/* Size of each testbed used by the sweep; batch is ignored (forced to 1) for LSQ1 and
 * SOFTMAX1. */
typedef struct {
  size_t m, n, batch;
} aal_theory_dims;

/* How the inputs h_b are drawn.  x ~ N(0, sigma^2) per entry (PM1), or x = max(0, z) with
 * z ~ N(0, sigma^2) (post-ReLU: DECODE_01 and DECODE_MIXED).  With asa_eps > 0 the forward
 * input is ASA's h = x + asa_eps s (SPEC section 4) with s = +1 where x > 0 and -1
 * otherwise (PM1), or s = 1 where x > 0 and 0 otherwise (01 and MIXED: the published
 * code adds eps * {0,1} after a ReLU in the forward pass). */
typedef enum {
  AAL_THEORY_DECODE_PM1 = 0,  /* inputs of either sign, s and r in {-1, +1}             */
  AAL_THEORY_DECODE_01 = 1,   /* post-ReLU inputs, s and r in {0, 1} (SPEC's decoding)   */
  AAL_THEORY_DECODE_MIXED = 2 /* post-ReLU inputs, s in {0, 1} forward, r in {-1, +1}
                                 backward (the authors' released code, SPEC section 4) */
} aal_theory_decoding;
#define AAL_THEORY_NDECODINGS 3

typedef struct {
  double sigma;                 /* > 0 */
  double asa_eps;               /* >= 0 */
  aal_theory_decoding decoding;
} aal_theory_input;

const char *aal_theory_decoding_name(aal_theory_decoding d);

/* A random instance with inputs drawn as `in` says (a post-ReLU sample that came out
 * all zero, probability 2^-n, is drawn again: it has no LI and no gradient).  The
 * teacher Wstar ~ N(0, 1/n) makes the targets from the forward input H: LSQ targets
 * Y = H Wstar^T (realisable: min f = 0); softmax labels = argmax of Wstar h_b.  Frees
 * with aal_theory_problem_free. */
int aal_theory_problem_make(aal_theory_kind kind, const aal_theory_dims *dims,
                            const aal_theory_input *in, gsl_rng *rng, aal_theory_problem *p,
                            aal_error *err);
/* The sweep's instances: aal_theory_problem_make with sigma = 1, PM1 and asa_eps. */
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
  aal_theory_decoding decoding; /* SIGN: how r decodes the sign bit (default PM1) */
} aal_theory_rspec;

const char *aal_theory_family_name(aal_theory_family f);
int aal_theory_family_parse(const char *name, aal_theory_family *f);
const char *aal_theory_kind_name(aal_theory_kind k);
/* The family's target is settable (PARALLEL*, ORTHO, STALE) rather than natural. */
int aal_theory_family_has_target(aal_theory_family f);

/* r (n) for one sample h (n) that is not zero.  rng is used by ORTHO, STALE and NOISE
 * (fresh directions each call).  For SIGN, h is the ASA forward input x + eps s; the bit
 * (x > 0) is recovered from h exactly, because h_i > 0 exactly where x_i > 0 when eps > 0
 * (PM1: x_i <= 0 gives h_i <= -eps; post-ReLU: x_i = 0 gives h_i = 0), and decoded to
 * r_i = expansion * eps * (+1, or -1 / 0 / -1 where the bit is 0 for PM1 / 01 / MIXED). */
int aal_theory_make_r(const aal_theory_rspec *spec, const double *h, size_t n, gsl_rng *rng,
                      double *r, aal_error *err);

/* ------------------------------------------------------------ training and checks */
typedef struct {
  double loss;        /* f(W) before the step */
  double loss_next;   /* f(W') */
  double li_mean;     /* mean over samples of this step's LI */
  double li_min;
  double li_grad;     /* <R, 2G - R>/||G||^2, R = 1/B sum_b delta_b r_b^T: the batch form of
                         LI that the descent lemma needs at eta = 1/L (= LI for B = 1);
                         NaN if G = 0 */
  double li_eta;      /* <R, 2G - L eta R>/||G||^2: the step-size-aware form (= li_grad at
                         eta = 1/L); (D) gives f(W') <= f(W) - (eta/2) li_eta ||G||^2 */
  double c;           /* one sample: r^T h/||h||^2; NaN for B > 1 */
  double bound;       /* right-hand side of (D) */
  double allowance;   /* rounding allowance added to the bound, see descent.c */
  int held;           /* (D): loss_next <= bound + allowance (NaN fails) */
  double exact;       /* LSQ1: f(W) (1 - eta ||h||^2 c)^2, the exact new loss; else NaN */
  int exact_ok;       /* |loss_next - exact| <= allowance; 1 when exact is NaN */
  int in_theorem;     /* one sample, eta <= 1/L and an LI: (T) is checked */
  double guaranteed;  /* (eta/2) LI ||grad f||^2 when in_theorem; else NaN */
  int theorem_ok;     /* in_theorem: (LI < 0 or loss_next <= loss + allowance) and
                         loss - loss_next >= guaranteed - allowance; else 1 */
  int at_floor;       /* loss <= allowance: the change cannot be resolved */
  int rose, fell;     /* loss_next > loss + allowance; loss_next < loss - allowance */
} aal_theory_step;

typedef struct {
  size_t steps;           /* steps run (fewer than asked when the loss blew up) */
  double initial_loss, final_loss;
  double li_mean, li_min; /* over all steps and samples */
  double li_grad_min;     /* min over steps of the gradient-level indicator */
  double li_eta_min;      /* min over steps of the step-size-aware indicator */
  double c_min, c_max;    /* one sample: the range of c over the steps not at the rounding
                             floor; NaN for B > 1 (or no such step) */
  int monotone;           /* no step rose: f(W_{k+1}) <= f(W_k) + allowance_k throughout */
  int diverged;           /* stopped because f exceeded 1e100 f(W_0) or became non-finite */
  size_t violations;      /* lemma violations: steps where (D) failed */
  size_t exact_failures;  /* LSQ1: steps where the closed form disagreed */
  size_t zero_norm;       /* samples without an LI (never for Gaussian data) */
  /* Theorem 1 (T).  A run is in the theorem when it has one sample and eta <= 1/L;
   * outside_theorem marks a one-sample run with eta > 1/L (not checked). */
  int in_theorem, outside_theorem;
  size_t theorem_steps;      /* steps checked against (T) */
  size_t theorem_violations; /* of those, steps that failed (T) */
  size_t outside_rose;       /* outside_theorem: steps with LI >= 0 that raised the loss */
  size_t floor_steps;        /* steps that started at the rounding floor (and did not rise) */
  size_t rose_steps, fell_steps; /* resolved steps that rose / fell beyond the allowance */
  double guarantee_ratio_min; /* in_theorem: min over steps with guaranteed > allowance of
                                 (f - f')/guaranteed (>= 1 - allowance/guaranteed when (T)
                                 holds; 1 where it is tight); NaN if no such step */
  double guaranteed_ratio;   /* in_theorem: prod over steps of (f - guaranteed)/f, the
                                theorem's bound on final/initial; NaN otherwise */
} aal_theory_result;

/* The run's outcome, from the step counts: "rose" if any step rose, else "descended" if a
 * resolved step fell, else "flat" (no resolved change: r = 0, or the loss at the floor). */
const char *aal_theory_outcome(const aal_theory_result *res);

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
/* The same from a W0 drawn from rng, N(0, 1/n) elementwise: away from the teacher at
 * the teacher's scale, never zeros (then rng drives the training as above). */
int aal_theory_train_random_start(const aal_theory_problem *p, const aal_theory_rspec *spec,
                                  const aal_theory_train_opts *opts, gsl_rng *rng,
                                  aal_theory_result *res, aal_error *err);

/* ------------------------------------------------------------ the sweep */
typedef struct {
  unsigned long seed;       /* base seed; run k of a point uses seed + k */
  size_t seeds;             /* runs per (problem, family, point) */
  size_t steps;
  size_t points;            /* LI targets over [li_lo, li_hi] for the targetable families */
  double li_lo, li_hi;      /* default -1, 1; li_hi <= 1 */
  int problems;             /* bit mask of 1 << aal_theory_kind */
  const char *family;       /* one sweep family by its label (e.g. "sign_x100"); NULL: all */
  double eta_fraction;
  aal_theory_dims dims[AAL_THEORY_NKINDS]; /* per kind */
} aal_theory_sweep_opts;

void aal_theory_sweep_opts_default(aal_theory_sweep_opts *o);

/* The sweep's totals.  The three checks (must all be 0): lemma_violations ((D) on every
 * step of every run), closed_form_failures (LSQ1) and theorem_violations ((T) on the
 * steps of the runs inside the theorem). */
typedef struct {
  size_t runs, steps;
  size_t lemma_violations, closed_form_failures;
  size_t theorem_runs, theorem_steps, theorem_floor_steps, theorem_violations;
  size_t outside_runs;        /* one-sample runs with eta > 1/L: not checked */
  size_t outside_rose_runs, outside_rose_steps; /* of those: LI >= 0 and the loss rose */
  size_t batch_runs;          /* mini-batch runs: the per-sample theorem does not apply */
  size_t floor_steps;         /* steps, all runs, that started at the rounding floor */
  double guarantee_ratio_min; /* min over the theorem's runs (NaN if none) */
} aal_theory_sweep_summary;

/* One CSV row per run (header first):
 *   problem,family,target_li,seed,measured_li_mean,measured_li_min,
 *   final_over_initial_loss,monotone,steps,lemma_violations,closed_form_failures,
 *   grad_li_min,diverged,eta_fraction,in_theorem,outside_theorem,theorem_steps,
 *   theorem_violations,outside_rose_steps,floor_steps,fell_steps,rose_steps,outcome,
 *   c_min,c_max,guarantee_ratio_min,guaranteed_ratio,eta_li_min
 * target_li is nan for the natural families (sign, noise, flip).  The table (may be
 * NULL) gets a summary per problem, family and bin of the run's minimum LI, and the
 * totals. */
int aal_theory_sweep(const aal_theory_sweep_opts *o, FILE *csv, FILE *table,
                     aal_theory_sweep_summary *sum, aal_error *err);

/* The totals, one line per check, the runs outside the theorem and the floor. */
void aal_theory_sweep_print_summary(FILE *out, const aal_theory_sweep_opts *o,
                                    const aal_theory_sweep_summary *s);

/* Writes the sweep's CSV to path atomically (path.tmp.PID, fsync, rename). */
int aal_theory_sweep_to_file(const aal_theory_sweep_opts *o, const char *path, FILE *table,
                             aal_theory_sweep_summary *sum, aal_error *err);

/* ------------------------------------------------------------ ASA's scale */
/* ASA's sign activation on the one-sample and mini-batch least-squares testbeds, over a
 * grid of input scales sigma and lr_expansion k (eps fixed), for the three decodings
 * (theory/asa.c).  Inputs x ~ N(0, sigma^2) (PM1) or relu(N(0, sigma^2)) (01, MIXED),
 * h = x + eps b, r = k eps d, eta = 1/L.  In expectation over the inputs (per entry,
 * a = sqrt(2/pi)), LI = 0 at k = 2 + 2 sigma a/eps (PM1 and 01) and k = 1 + sigma a/eps
 * (MIXED), and c = 2 (beyond which the one-sample loss rises) at
 * k = 2 (sigma^2 + 2 eps sigma a + eps^2)/(eps (sigma a + eps)) (all three). */
#define AAL_THEORY_ASA_MAXGRID 64
typedef struct {
  unsigned long seed;       /* run j of a grid point uses seed + j */
  size_t seeds, steps;
  double eps;
  double sigma[AAL_THEORY_ASA_MAXGRID];
  size_t nsigma;
  double k[AAL_THEORY_ASA_MAXGRID];
  size_t nk;
  int problems;             /* bit mask of 1 << kind: LSQ1, LSQ, SOFTMAX1, SOFTMAX */
  aal_theory_dims dims[AAL_THEORY_NKINDS];
} aal_theory_asa_opts;

/* sigma: 16 points geometric over [0.1, 3]; k: 1 ... 1000 (14 values); eps 0.01;
 * 20 seeds, 100 steps; lsq1 and lsq with the sweep's sizes. */
void aal_theory_asa_opts_default(aal_theory_asa_opts *o);

/* The predictions above, for one k: the sigma where LI = 0 and where c = 2 (both NaN
 * when there is none, e.g. k <= 2). */
double aal_theory_asa_sigma_li0(aal_theory_decoding d, double k, double eps);
double aal_theory_asa_sigma_c2(double k, double eps);

/* One CSV row per run:
 *   problem,decoding,sigma,k,eps,seed,li_mean,li_min,c_min,c_max,final_over_initial_loss,
 *   outcome,rose_steps,steps,diverged,theorem_violations,lemma_violations
 * The table (may be NULL) gets, per problem and decoding, the fraction of runs that rose
 * for each (sigma, k) and the boundaries found at each k (the largest grid sigma with
 * mean LI < 0, and with at least half the runs rising) beside the predicted ones.
 * sum receives the checks' totals as for the sweep (theorem and lemma violations must
 * be 0). */
int aal_theory_asa_sweep(const aal_theory_asa_opts *o, FILE *csv, FILE *table,
                         aal_theory_sweep_summary *sum, aal_error *err);

/* Parses a comma-separated list of positive numbers into out[max]; *n its length. */
int aal_theory_parse_list(const char *text, double *out, size_t max, size_t *n, aal_error *err);

/* ------------------------------------------------------------ an ARA-like network */
/* A non-convex, non-realisable testbed for ARA (theory/ara.c): a residual network
 *   x_a = relu(W1 x),  x_b = relu(x_a + beta W2 x_a),  y = W3 x_b,
 *   f = 1/(2B) sum_b ||y_b - t_b||^2,  t = tanh(V x) + noise (V a fixed random teacher),
 * trained by full-batch gradient steps of size eta on all three layers at once
 * (update "all") or on W3 alone (update "rule": W1, W2 frozen, so f is convex in W3).
 * W1 and W2 always get exact BP gradients; W3's update uses r in place of its input x_b:
 *   bp: r = x_b;  ara: r = x_a (the earlier layer's activation, fixed by the forward
 *   pass, correlated with x_b and biased: ARA's r);  noise: r Gaussian with ||r|| =
 *   ||x_b||;  flip: r = -x_b.
 * beta scales the residual branch: the larger it is, the further x_b is from x_a and the
 * lower W3's LI under ara.  Per step: the per-sample LI of W3, the layer indicators
 * I_l = <R_l, 2 G_l - R_l> (R_l = G_l for the BP layers, so I_l = ||G_l||^2 > 0), and the
 * joint indicator J = sum_l I_l / sum_l ||G_l||^2 over the updated layers, whose sign
 * decides descent to first order in eta (f' = f - eta sum_l <G_l, R_l> + O(eta^2)). */
typedef enum {
  AAL_THEORY_ARA_BP = 0,
  AAL_THEORY_ARA_ARA = 1,
  AAL_THEORY_ARA_NOISE = 2,
  AAL_THEORY_ARA_FLIP = 3
} aal_theory_ara_rule;
#define AAL_THEORY_ARA_NRULES 4

typedef struct {
  unsigned long seed;  /* run j of a point uses seed + j (same data and init for every rule) */
  size_t seeds, steps;
  double eta;          /* step = eta / L3, L3 = lambda_max(X_b^T X_b)/B at the start: the
                          Lipschitz constant of the loss in W3 there */
  size_t n0, n1, m, batch;
  double noise_sd;     /* label noise on the teacher's targets */
  double beta[16];
  size_t nbeta;
} aal_theory_ara_opts;

/* n0 = 16, n1 = 16, m = 4, batch 64, eta 0.5 (/L3), 100 steps, 20 seeds,
 * beta {0.5, 1, 2, 4}, label noise 0.1. */
void aal_theory_ara_opts_default(aal_theory_ara_opts *o);
const char *aal_theory_ara_rule_name(aal_theory_ara_rule r);

/* One CSV row per run (rule, update, beta, seed):
 *   rule,update,beta,seed,steps,initial_loss,final_loss,final_over_initial_loss,
 *   rose_steps,li_w3_mean,li_w3_min,li_w3_negative_fraction,i3_over_g3_mean,joint_mean,
 *   joint_min,joint_negative_steps,rose_with_joint_positive,w3_gradient_share,eta
 * (li_w3: per-sample LI of W3 over all steps and samples, and the fraction of those < 0;
 * i3_over_g3: W3's layer indicator I_3/||G_3||^2, mean over steps; w3_gradient_share:
 * mean over steps of ||G_3||^2 / sum_l ||G_l||^2 over the updated layers; eta the step).  trace (may be NULL) gets one row per step of the first
 * seed: rule,update,beta,step,loss,li_w3_mean,i3_over_g3,joint.  table (may be NULL):
 * the summary per rule, update and beta. */
int aal_theory_ara_sweep(const aal_theory_ara_opts *o, FILE *csv, FILE *trace, FILE *table,
                         aal_error *err);

/* The network of one run, for tests: data, targets and start from `seed` as in the sweep.
 * The parameters W1 | W2 | W3 are one vector (params, may be changed in place); loss
 * evaluates f there; grad returns the exact-BP gradient G1 | G2 | G3 (owned by the net,
 * valid until the next call). */
typedef struct aal_theory_ara_net aal_theory_ara_net;
int aal_theory_ara_net_new(const aal_theory_ara_opts *o, double beta, unsigned long seed,
                           aal_theory_ara_net **out, aal_error *err);
void aal_theory_ara_net_free(aal_theory_ara_net *t);
double *aal_theory_ara_net_params(aal_theory_ara_net *t, size_t *n);
double aal_theory_ara_net_loss(aal_theory_ara_net *t);
const double *aal_theory_ara_net_grad(aal_theory_ara_net *t);

/* Runs writer(ctx, csv_stream) into path.tmp.PID and renames it to path on success. */
typedef int (*aal_theory_csv_writer)(void *ctx, FILE *csv, aal_error *err);
int aal_theory_write_atomic(const char *path, aal_theory_csv_writer writer, void *ctx,
                            aal_error *err);

#endif
