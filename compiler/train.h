/*
 * The training step: forward -> autodiff (with a rematerialization policy)
 * -> optimizer update, all as graph IR in one module (docs/training.md).
 *
 * Contract with the frontends: a forward model is a graph-level Module whose
 * parameters carry role="weight" (trainable) or role="input" (tokens,
 * labels, images) and whose first output is the scalar f32 loss. Outputs
 * after the first are ignored. Instructions of transformer layer i may carry
 * layer=[i]; the remat policy "full" uses it.
 *
 * The step module train_step() returns has these parameters, in order: the
 * forward's parameters (unchanged, same order), then the optimizer state
 * (role="opt_state") in the order listed in docs/training.md. Its outputs
 * are: the loss, the updated weights (in weight order), then the updated
 * optimizer states (in state-parameter order).
 */
#ifndef PODSIM_TRAIN_H
#define PODSIM_TRAIN_H

#include "ir/ir.h"

typedef enum OptimizerKind { OPTIMIZER_ADAM, OPTIMIZER_ADAFACTOR } OptimizerKind;

typedef enum RematPolicy {
	REMAT_NONE,    /* keep every forward value for the backward pass */
	REMAT_MINIMAL, /* keep dot (and gather, collective) outputs; recompute the rest */
	REMAT_FULL,    /* keep only each layer's inputs; recompute the layer */
} RematPolicy;

typedef struct TrainOptions {
	OptimizerKind optimizer;
	RematPolicy remat;
	double lr;             /* learning rate (Adafactor: before parameter scaling) */
	/* Adam (Kingma & Ba), decoupled weight decay as AdamW */
	double adam_beta1;     /* 0.9 */
	double adam_beta2;     /* 0.999 */
	double adam_eps;       /* 1e-8, added to sqrt(v_hat) */
	double weight_decay;   /* 0: none; w -= lr * weight_decay * w */
	/* Adafactor (Shazeer & Stern 2018), as T5 and PaLM ran it */
	int adafactor_factored;      /* 1: factored second moments for rank >= 2 */
	double adafactor_beta1;      /* 0: no momentum (default) */
	double adafactor_decay;      /* c in beta2_t = 1 - t^-c, 0.8 */
	double adafactor_eps1;       /* 1e-30, added to g^2 */
	double adafactor_clip;       /* update clipping threshold d on RMS(u), 1.0 */
	int adafactor_param_scale;   /* 1: step = lr * max(eps2, RMS(w)) */
	double adafactor_eps2;       /* 1e-3 */
} TrainOptions;

/* Adafactor as T5 ran it (factored, no momentum, update clipping 1,
 * parameter scaling), lr 1e-2, no remat. PaLM's run differs in two fields:
 * adafactor_factored = 0, adafactor_beta1 = 0.9. */
void train_options_default(TrainOptions *o);
const char *remat_policy_name(RematPolicy p);
int remat_policy_from_name(const char *s); /* -1 if unknown */
const char *optimizer_name(OptimizerKind k);
int optimizer_from_name(const char *s);    /* -1 if unknown */

/* Builds the whole training step from a forward model (which it does not
 * change). Returns a new module, or NULL with d filled. */
Module *train_step(const Module *forward, const TrainOptions *opt, Diag *d);

/* ---- The stages (compiler/autodiff.c, remat.c, optimizer.c) ------------- */

/* Gradients of a scalar w.r.t. the role="weight" parameters. Arrays live in
 * the module's arena. */
typedef struct Grads {
	int n;
	ValueId *weights; /* (n) the weight parameters, in instruction order */
	ValueId *grads;   /* (n) d loss / d weight, same type as the weight */
} Grads;

/* Appends to m the backward pass of loss (a scalar value of m): one VJP rule
 * per op, gradients of fan-out summed with add. Forward values the backward
 * reads are kept or recomputed as the remat policy says (recomputed copies
 * carry remat=[1]). A weight the loss does not depend on gets a zero
 * gradient. Returns 0, or -1 with d filled (a non-differentiable use). */
int autodiff(Module *m, ValueId loss, RematPolicy remat, Grads *out, Diag *d);

/* Remat state for one backward pass over the forward region [0, nfwd). */
typedef struct Remat {
	Module *m;
	int nfwd;          /* forward instructions: [0, nfwd) */
	RematPolicy policy;
	unsigned char *keep; /* (nfwd) 1: the backward reads the value itself */
	ValueId *copy;       /* (nfwd) its recomputed copy, -1 if none yet */
	int64_t *layer;      /* (nfwd) its layer=[i], -1 if none */
	ValueId *by_layer;   /* (nfwd) under full: forward indices by layer, then
	                      * by index; NULL: find a layer by scanning */
} Remat;

void remat_init(Remat *r, Module *m, int nfwd, RematPolicy policy);
/* The value the backward pass should read for forward value v: v itself if
 * kept, else a copy recomputed (recursively, once) at the end of m. */
ValueId remat_use(Remat *r, ValueId v);

/* Appends the update of every weight in g: new parameters for the optimizer
 * state (role="opt_state", appended after the existing ones), the updated
 * weights in new_weights (n = g->n) and the updated states in new_states
 * (one per state parameter created, in creation order; *nstates set; the
 * array is allocated in m's arena). Instructions carry optimizer=[1]. */
int optimizer_update(Module *m, const Grads *g, const TrainOptions *opt,
                     ValueId *new_weights, ValueId **states, ValueId **new_states,
                     int *nstates, Diag *d);

/* ---- FLOPs (compiler/flops.c) -------------------------------------------
 * Conventions (docs/training.md): dot = 2 x numel(result) x contracted size;
 * elementwise = 1 per result element (transcendentals too); reduce = 1 per
 * operand element; softmax = 5 per element; a gradient scatter-add (a dot
 * tagged scatter_add=[1]) = 1 per element of its update; data movement,
 * leaves and collectives = 0. */
typedef struct FlopCount {
	double model;           /* forward + backward, no recompute, FLOPs */
	double hardware;        /* forward + backward + recompute, FLOPs */
	double model_matmul;    /* the dot part of model */
	double hardware_matmul; /* the dot part of hardware */
	double optimizer;       /* the update (optimizer=[1]), in neither above */
} FlopCount;

double flops_inst(const Module *m, ValueId v);
void flops_count(const Module *m, FlopCount *out);
/* PaLM appendix B: matmul FLOPs per token of a dense decoder, fwd + bwd:
 * 6 N + 12 L H Q T (N = parameters that take part in a matmul per token). */
double flops_palm_per_token(double n_params, int64_t layers, int64_t heads,
                            int64_t head_dim, int64_t seq);

#endif
