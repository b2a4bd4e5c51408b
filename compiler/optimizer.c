/*
 * The optimizer update as graph IR.
 *
 * Requires: a module with gradients for its weights (autodiff.c).
 * Changes: appends new parameters for the optimizer state (role="opt_state",
 * after every existing parameter, so the step's inputs are the forward's
 * inputs followed by the state) and the update; every appended instruction
 * carries optimizer=[1] so that FLOP counting can keep it out of model FLOPs.
 *
 * State, in parameter order:
 *   step                       f32 scalar, updates done so far (t - 1)
 *   Adam, per weight w:        <w>.adam_m, <w>.adam_v (shape of w)
 *   Adafactor, per weight w:   rank >= 2 and factored: <w>.adafactor_vr
 *                              (w without its last dim) and
 *                              <w>.adafactor_vc (w without its second-to-last
 *                              dim); otherwise <w>.adafactor_v (shape of w);
 *                              then <w>.adafactor_m if beta1 > 0.
 *
 * Adam (with t = step + 1):
 *   m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g^2
 *   w' = w - lr (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps) - lr wd w
 * Adafactor (Shazeer & Stern 2018, Algorithms 4-5, as in T5; PaLM ran it
 * unfactored, adafactor_factored = 0):
 *   b2t = 1 - t^-c;  G = g^2 + eps1
 *   factored: vr' = b2t vr + (1 - b2t) mean_last(G)
 *             vc' = b2t vc + (1 - b2t) mean_second_to_last(G)
 *             V = vr' vc' / mean(vr') (broadcast over the two dims)
 *   else:     V = v' = b2t v + (1 - b2t) G
 *   u = g / sqrt(V);  u = u / max(1, RMS(u) / d)
 *   if b1 > 0: m' = b1 m + (1 - b1) u; u = m'
 *   w' = w - lr_t u, lr_t = lr (times max(eps2, RMS(w)) with parameter scaling)
 */
#include "train.h"

#include <stdio.h>
#include <string.h>

typedef struct Opt {
	Module *m;
	ValueId *states, *new_states;
	int nstates, cap;
} Opt;

static Type scalar_f32(void)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = DT_F32;
	return t;
}

static Type plain(Type t)
{
	memset(t.shard, 0, sizeof t.shard);
	return t;
}

static ValueId cst(Module *m, double x, ValueId like)
{
	return ir_const(m, x, plain(m->insts[like].type));
}

static ValueId bin(Module *m, Op op, ValueId a, ValueId b)
{
	return ir_binary(m, op, a, b);
}

/* Broadcasts scalar s to type t (converting its dtype). */
static ValueId splat_t(Module *m, ValueId s, Type t)
{
	t = plain(t);
	if (m->insts[s].type.dtype != t.dtype)
		s = ir_convert(m, s, t.dtype);
	return ir_broadcast(m, s, t, 0, NULL);
}

static ValueId splat(Module *m, ValueId s, ValueId like)
{
	return splat_t(m, s, m->insts[like].type);
}

/* a * x + b * y with scalar constants a, b. */
static ValueId lerp(Module *m, double a, ValueId x, double b, ValueId y)
{
	return bin(m, OP_ADD, bin(m, OP_MUL, cst(m, a, x), x), bin(m, OP_MUL, cst(m, b, y), y));
}

/* Mean over all elements, as an f32 scalar. */
static ValueId mean_all(Module *m, ValueId x)
{
	Type t = m->insts[x].type;
	int64_t dims[IR_MAX_RANK];
	for (int i = 0; i < t.rank; i++)
		dims[i] = i;
	ValueId s = ir_reduce(m, OP_REDUCE_SUM, x, t.rank, dims);
	if (t.dtype != DT_F32)
		s = ir_convert(m, s, DT_F32);
	return bin(m, OP_DIV, s, ir_const(m, (double)type_numel(&t), scalar_f32()));
}

/* A new state parameter "<name of w>.<suffix>" ("<suffix>" if w < 0) of
 * type t; returns its index in o->states. If w carries logical=[...] axis
 * names (frontends), the state gets them too, without w's dim drop (-1:
 * none), so the shard pass lays the state out like its weight. */
static int state(Opt *o, ValueId w, int drop, const char *suffix, Type t)
{
	Module *m = o->m;
	char name[256];
	if (w >= 0)
		snprintf(name, sizeof name, "%s.%s", ir_attr_str(&m->insts[w], "name", "w"), suffix);
	else
		snprintf(name, sizeof name, "%s", suffix);
	ValueId p = ir_param(m, name, plain(t));
	ir_set_str(m, p, "role", "opt_state");
	const Attr *lg = w >= 0 ? ir_attr(&m->insts[w], "logical") : NULL;
	if (lg && lg->kind == ATTR_NAMES && lg->n == m->insts[w].type.rank) {
		const char *names[IR_MAX_RANK];
		int n = 0;
		for (int i = 0; i < lg->n; i++)
			if (i != drop)
				names[n++] = lg->names[i];
		ir_set_names(m, p, "logical", n, names);
	}
	if (o->nstates == o->cap) {
		int cap = o->cap ? 2 * o->cap : 16;
		o->states = arena_grow(&m->arena, o->states, sizeof(ValueId) * (size_t)o->cap,
		                       sizeof(ValueId) * (size_t)cap);
		o->new_states = arena_grow(&m->arena, o->new_states,
		                           sizeof(ValueId) * (size_t)o->cap, sizeof(ValueId) * (size_t)cap);
		o->cap = cap;
	}
	o->states[o->nstates] = p;
	o->new_states[o->nstates] = -1;
	return o->nstates++;
}

static ValueId adam(Opt *o, ValueId w, ValueId g, const TrainOptions *opt,
                    ValueId bc1, ValueId bc2)
{
	Module *m = o->m;
	Type t = m->insts[w].type;
	int km = state(o, w, -1, "adam_m", t), kv = state(o, w, -1, "adam_v", t);
	double b1 = opt->adam_beta1, b2 = opt->adam_beta2;
	ValueId m1 = lerp(m, b1, o->states[km], 1 - b1, g);
	ValueId v1 = lerp(m, b2, o->states[kv], 1 - b2, bin(m, OP_MUL, g, g));
	o->new_states[km] = m1;
	o->new_states[kv] = v1;
	ValueId mhat = bin(m, OP_DIV, m1, splat(m, bc1, w));
	ValueId vhat = bin(m, OP_DIV, v1, splat(m, bc2, w));
	ValueId den = bin(m, OP_ADD, ir_unary(m, OP_SQRT, vhat), cst(m, opt->adam_eps, w));
	ValueId upd = bin(m, OP_DIV, mhat, den);
	if (opt->weight_decay != 0)
		upd = bin(m, OP_ADD, upd, bin(m, OP_MUL, cst(m, opt->weight_decay, w), w));
	return bin(m, OP_SUB, w, bin(m, OP_MUL, cst(m, opt->lr, w), upd));
}

/* Removes dim k of t. */
static Type drop_dim(Type t, int k)
{
	for (int i = k; i + 1 < t.rank; i++)
		t.dims[i] = t.dims[i + 1];
	t.rank--;
	return plain(t);
}

static ValueId adafactor(Opt *o, ValueId w, ValueId g,
                         const TrainOptions *opt, ValueId b2t_s)
{
	Module *m = o->m;
	Type t = plain(m->insts[w].type);
	int r = t.rank;
	ValueId b2t = splat(m, b2t_s, w);
	ValueId one = cst(m, 1, w);
	ValueId G = bin(m, OP_ADD, bin(m, OP_MUL, g, g), cst(m, opt->adafactor_eps1, w));
	ValueId V;
	if (r >= 2 && opt->adafactor_factored) {
		int64_t last = r - 1, prev = r - 2;
		Type tr = drop_dim(t, r - 1), tc = drop_dim(t, r - 2);
		int kr = state(o, w, r - 1, "adafactor_vr", tr);
		int kc = state(o, w, r - 2, "adafactor_vc", tc);
		ValueId rmean = bin(m, OP_DIV, ir_reduce(m, OP_REDUCE_SUM, G, 1, &last),
		                    ir_const(m, (double)t.dims[r - 1], tr));
		ValueId cmean = bin(m, OP_DIV, ir_reduce(m, OP_REDUCE_SUM, G, 1, &prev),
		                    ir_const(m, (double)t.dims[r - 2], tc));
		ValueId b2r = splat_t(m, b2t_s, tr), b2c = splat_t(m, b2t_s, tc);
		ValueId vr = o->states[kr], vc = o->states[kc];
		ValueId vr1 = bin(m, OP_ADD, bin(m, OP_MUL, b2r, vr),
		                  bin(m, OP_MUL, bin(m, OP_SUB, ir_const(m, 1, tr), b2r), rmean));
		ValueId vc1 = bin(m, OP_ADD, bin(m, OP_MUL, b2c, vc),
		                  bin(m, OP_MUL, bin(m, OP_SUB, ir_const(m, 1, tc), b2c), cmean));
		o->new_states[kr] = vr1;
		o->new_states[kc] = vc1;
		/* mean of vr' over the row dim: shape t without its last two dims */
		Type tm = drop_dim(tr, r - 2);
		ValueId vrm = bin(m, OP_DIV, ir_reduce(m, OP_REDUCE_SUM, vr1, 1, &prev),
		                  ir_const(m, (double)t.dims[r - 2], tm));
		int64_t dr[IR_MAX_RANK], dc[IR_MAX_RANK], dm[IR_MAX_RANK];
		for (int i = 0; i < r - 1; i++)
			dr[i] = i;                    /* vr: all but the last dim */
		for (int i = 0; i < r - 1; i++)
			dc[i] = i < r - 2 ? i : r - 1; /* vc: all but dim r-2 */
		for (int i = 0; i < r - 2; i++)
			dm[i] = i;
		V = bin(m, OP_DIV,
		        bin(m, OP_MUL, ir_broadcast(m, vr1, t, r - 1, dr),
		            ir_broadcast(m, vc1, t, r - 1, dc)),
		        ir_broadcast(m, vrm, t, r - 2, dm));
	} else {
		int kv = state(o, w, -1, "adafactor_v", t);
		V = bin(m, OP_ADD, bin(m, OP_MUL, b2t, o->states[kv]),
		        bin(m, OP_MUL, bin(m, OP_SUB, one, b2t), G));
		o->new_states[kv] = V;
	}
	ValueId u = bin(m, OP_MUL, g, ir_unary(m, OP_RSQRT, V));
	/* update clipping: u / max(1, RMS(u) / d) */
	ValueId rms_u = ir_unary(m, OP_SQRT, mean_all(m, bin(m, OP_MUL, u, u)));
	ValueId sc = bin(m, OP_MAX, ir_const(m, 1, scalar_f32()),
	                 bin(m, OP_DIV, rms_u, ir_const(m, opt->adafactor_clip, scalar_f32())));
	u = bin(m, OP_DIV, u, splat(m, sc, w));
	if (opt->adafactor_beta1 > 0) {
		int km = state(o, w, -1, "adafactor_m", t);
		u = lerp(m, opt->adafactor_beta1, o->states[km], 1 - opt->adafactor_beta1, u);
		o->new_states[km] = u;
	}
	ValueId lr = ir_const(m, opt->lr, scalar_f32());
	if (opt->adafactor_param_scale) {
		ValueId rms_w = ir_unary(m, OP_SQRT, mean_all(m, bin(m, OP_MUL, w, w)));
		lr = bin(m, OP_MUL, lr,
		         bin(m, OP_MAX, ir_const(m, opt->adafactor_eps2, scalar_f32()), rms_w));
	}
	return bin(m, OP_SUB, w, bin(m, OP_MUL, splat(m, lr, w), u));
}

int optimizer_update(Module *m, const Grads *g, const TrainOptions *opt,
                     ValueId *new_weights, ValueId **states, ValueId **new_states,
                     int *nstates, Diag *d)
{
	(void)d;
	int first = m->ninsts;
	Opt o;
	memset(&o, 0, sizeof o);
	o.m = m;
	int kstep = state(&o, -1, -1, "step", scalar_f32());
	ValueId t = bin(m, OP_ADD, o.states[kstep], ir_const(m, 1, scalar_f32()));
	o.new_states[kstep] = t;
	if (opt->optimizer == OPTIMIZER_ADAM) {
		ValueId one = ir_const(m, 1, scalar_f32());
		ValueId bc1 = bin(m, OP_SUB, one,
		                  bin(m, OP_POW, ir_const(m, opt->adam_beta1, scalar_f32()), t));
		ValueId bc2 = bin(m, OP_SUB, one,
		                  bin(m, OP_POW, ir_const(m, opt->adam_beta2, scalar_f32()), t));
		for (int k = 0; k < g->n; k++)
			new_weights[k] = adam(&o, g->weights[k], g->grads[k], opt, bc1, bc2);
	} else {
		ValueId b2t = bin(m, OP_SUB, ir_const(m, 1, scalar_f32()),
		                  bin(m, OP_POW, t, ir_const(m, -opt->adafactor_decay, scalar_f32())));
		for (int k = 0; k < g->n; k++)
			new_weights[k] = adafactor(&o, g->weights[k], g->grads[k], opt, b2t);
	}
	int64_t one = 1;
	for (int i = first; i < m->ninsts; i++)
		if (m->insts[i].op != OP_PARAMETER)
			ir_set_ints(m, i, "optimizer", 1, &one);
	*states = o.states;
	*new_states = o.new_states;
	*nstates = o.nstates;
	return 0;
}
