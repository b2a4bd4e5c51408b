/*
 * Transformer building blocks in graph IR: linear layers, norms, activations,
 * attention (multi-head, multi-query, grouped-query; rotary; additive bias),
 * dense and mixture-of-experts MLPs, and the cross-entropy loss. Every block
 * uses only ops of ir/ops.def; docs/models.md shows each one as IR.
 *
 * Layouts (B batch, S query and T key positions, D d_model, H heads, KV
 * key/value heads, G = H / KV query heads per kv head, hd head_dim, F d_ff,
 * E experts, C expert capacity per group):
 *   activations [B,S,D]; q [B,S,H,hd] viewed as [B,S,KV,G,hd];
 *   k, v [B,T,KV,hd]; attention logits [B,KV,S,G,T].
 */
#include "build.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

Type ty(DType dt, int rank, const int64_t *dims)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.rank = rank;
	if (rank)
		memcpy(t.dims, dims, sizeof(int64_t) * (size_t)rank);
	return t;
}

static ValueId param(Builder *b, const char *name, const char *role, Type t, int prefixed)
{
	char full[160];
	snprintf(full, sizeof full, "%s%s", prefixed ? b->prefix : "", name);
	ValueId v = ir_param(b->m, full, t);
	ir_set_str(b->m, v, "role", role);
	return v;
}

ValueId weight(Builder *b, const char *name, Type t) { return param(b, name, "weight", t, 1); }
ValueId input(Builder *b, const char *name, Type t) { return param(b, name, "input", t, 0); }

ValueId bcast(Builder *b, ValueId v, Type t, int n, const int64_t *dims)
{
	return ir_broadcast(b->m, v, t, n, dims);
}

/* dims {first, first+1, .., first+n-1} */
static const int64_t *seq_dims(int64_t *buf, int first, int n)
{
	for (int i = 0; i < n; i++)
		buf[i] = first + i;
	return buf;
}

static ValueId splat(Builder *b, double value, Type t) { return ir_const(b->m, value, t); }

ValueId linear(Builder *b, ValueId x, const char *name, int nout, const int64_t *out)
{
	const Type *tx = vtype(b, x);
	int64_t wd[IR_MAX_RANK];
	wd[0] = tx->dims[tx->rank - 1];
	memcpy(wd + 1, out, sizeof(int64_t) * (size_t)nout);
	char nm[96];
	snprintf(nm, sizeof nm, "%s/w", name);
	ValueId w = weight(b, nm, ty(b->dt, nout + 1, wd));
	ValueId y = ir_matmul(b->m, x, w);
	if (b->c->bias) {
		snprintf(nm, sizeof nm, "%s/b", name);
		ValueId bias = weight(b, nm, ty(b->dt, nout, out));
		Type ty_y = *vtype(b, y);
		int64_t dims[IR_MAX_RANK];
		y = ir_binary(b->m, OP_ADD, y,
		              bcast(b, bias, ty_y, nout, seq_dims(dims, ty_y.rank - nout, nout)));
	}
	return y;
}

ValueId norm(Builder *b, ValueId x, const char *name)
{
	const ModelConfig *c = b->c;
	Type t = *vtype(b, x);
	int r = t.rank;
	int64_t n = t.dims[r - 1];
	Type tr = t;
	tr.rank = r - 1;
	int64_t last = r - 1, keep[IR_MAX_RANK];
	seq_dims(keep, 0, r - 1);
	ValueId inv_n = splat(b, 1.0 / (double)n, tr);
	ValueId xc = x;
	if (c->norm == NORM_LAYER) {
		ValueId mean = ir_binary(b->m, OP_MUL, ir_reduce(b->m, OP_REDUCE_SUM, x, 1, &last), inv_n);
		xc = ir_binary(b->m, OP_SUB, x, bcast(b, mean, t, r - 1, keep));
	}
	ValueId sq = ir_binary(b->m, OP_MUL, xc, xc);
	ValueId var = ir_binary(b->m, OP_MUL, ir_reduce(b->m, OP_REDUCE_SUM, sq, 1, &last), inv_n);
	ValueId rs = ir_unary(b->m, OP_RSQRT, ir_binary(b->m, OP_ADD, var, splat(b, c->norm_eps, tr)));
	ValueId y = ir_binary(b->m, OP_MUL, xc, bcast(b, rs, t, r - 1, keep));
	char nm[96];
	snprintf(nm, sizeof nm, "%s/scale", name);
	ValueId scale = weight(b, nm, TY(b->dt, n));
	y = ir_binary(b->m, OP_MUL, y, bcast(b, scale, t, 1, &last));
	if (c->norm == NORM_LAYER && c->norm_bias) {
		snprintf(nm, sizeof nm, "%s/offset", name);
		ValueId off = weight(b, nm, TY(b->dt, n));
		y = ir_binary(b->m, OP_ADD, y, bcast(b, off, t, 1, &last));
	}
	return y;
}

ValueId activate(Builder *b, ValueId x, Activation act)
{
	switch (act) {
	case ACT_RELU:
		return ir_unary(b->m, OP_RELU, x);
	case ACT_GELU:
	case ACT_GEGLU:
		return ir_unary(b->m, OP_GELU, x);
	case ACT_SWIGLU:
		return ir_unary(b->m, OP_SILU, x);
	case ACT_COUNT:
		break;
	}
	ir_die("bad activation %d", (int)act);
}

/* Rotary embedding of x [B,S,N,hd] over its first rd dims of each head, with
 * the "rotate half" pairing (i, i + rd/2): x*cos + rotate_half(x)*sin. */
static ValueId rotary(Builder *b, ValueId x, ValueId cos_t, ValueId sin_t)
{
	Type t = *vtype(b, x);
	int64_t hd = t.dims[3], rd = b->c->rotary_dims;
	int64_t s0[4] = {0, 0, 0, 0}, l0[4] = {t.dims[0], t.dims[1], t.dims[2], rd};
	ValueId xr = rd < hd ? ir_slice(b->m, x, s0, l0) : x;
	Type tr = *vtype(b, xr);
	int64_t s1[4] = {0, 0, 0, 0}, l1[4] = {t.dims[0], t.dims[1], t.dims[2], rd / 2};
	int64_t s2[4] = {0, 0, 0, rd / 2}, l2[4] = {t.dims[0], t.dims[1], t.dims[2], rd};
	ValueId x1 = ir_slice(b->m, xr, s1, l1), x2 = ir_slice(b->m, xr, s2, l2);
	ValueId halves[2] = {ir_unary(b->m, OP_NEG, x2), x1};
	ValueId rot = ir_concat(b->m, 2, halves, 3);
	int64_t pd[2] = {1, 3};
	ValueId y = ir_binary(b->m, OP_ADD,
	                      ir_binary(b->m, OP_MUL, xr, bcast(b, cos_t, tr, 2, pd)),
	                      ir_binary(b->m, OP_MUL, rot, bcast(b, sin_t, tr, 2, pd)));
	if (rd < hd) {
		int64_t s3[4] = {0, 0, 0, rd}, l3[4] = {t.dims[0], t.dims[1], t.dims[2], hd};
		ValueId parts[2] = {y, ir_slice(b->m, x, s3, l3)};
		y = ir_concat(b->m, 2, parts, 3);
	}
	return y;
}

ValueId attention(Builder *b, ValueId xq, ValueId xkv, ValueId bias, ValueId rope_cos,
                  ValueId rope_sin, const char *name)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	int64_t B = vtype(b, xq)->dims[0], S = vtype(b, xq)->dims[1];
	int64_t H = c->heads, KV = c->kv_heads, G = H / KV, hd = c->head_dim, D = c->d_model;
	char nm[96];
	snprintf(nm, sizeof nm, "%s/q", name);
	ValueId q = linear(b, xq, nm, 2, (int64_t[]){H, hd});
	snprintf(nm, sizeof nm, "%s/k", name);
	ValueId k = linear(b, xkv, nm, 2, (int64_t[]){KV, hd});
	snprintf(nm, sizeof nm, "%s/v", name);
	ValueId v = linear(b, xkv, nm, 2, (int64_t[]){KV, hd});
	if (rope_cos >= 0) {
		q = rotary(b, q, rope_cos, rope_sin);
		k = rotary(b, k, rope_cos, rope_sin);
	}
	q = ir_binary(m, OP_MUL, q, splat(b, 1.0 / sqrt((double)hd), *vtype(b, q)));
	q = ir_reshape(m, q, DIMS(B, S, KV, G, hd));
	/* logits [B,KV,S,G,T] */
	ValueId lg = ir_dot(m, q, k, 1, (int64_t[]){4}, (int64_t[]){3}, 2, (int64_t[]){0, 2},
	                    (int64_t[]){0, 2});
	if (bias >= 0) {
		Type tl = *vtype(b, lg);
		ValueId bb = vtype(b, bias)->rank == 2 ? bcast(b, bias, tl, DIMS(2, 4))
		                                       : bcast(b, bias, tl, DIMS(1, 2, 3, 4));
		lg = ir_binary(m, OP_ADD, lg, bb);
	}
	ValueId p = ir_softmax(m, lg, 4);
	/* [B,KV,S,G,hd] -> [B,S,KV,G,hd] -> [B,S,H,hd] */
	ValueId ctx = ir_dot(m, p, v, 1, (int64_t[]){4}, (int64_t[]){1}, 2, (int64_t[]){0, 1},
	                     (int64_t[]){0, 2});
	ctx = ir_transpose(m, ctx, (int64_t[]){0, 2, 1, 3, 4});
	ctx = ir_reshape(m, ctx, DIMS(B, S, H, hd));
	snprintf(nm, sizeof nm, "%s/o/w", name);
	ValueId wo = weight(b, nm, TY(b->dt, H, hd, D));
	ValueId y = ir_dot(m, ctx, wo, 2, (int64_t[]){2, 3}, (int64_t[]){0, 1}, 0, NULL, NULL);
	if (c->bias) {
		snprintf(nm, sizeof nm, "%s/o/b", name);
		ValueId bo = weight(b, nm, TY(b->dt, D));
		y = ir_binary(m, OP_ADD, y, bcast(b, bo, *vtype(b, y), DIMS(2)));
	}
	return y;
}

static int gated(Activation a) { return a == ACT_SWIGLU || a == ACT_GEGLU; }

static ValueId dense_mlp(Builder *b, ValueId x)
{
	const ModelConfig *c = b->c;
	ValueId h = linear(b, x, "mlp/wi", 1, &c->d_ff);
	if (gated(c->act))
		h = ir_binary(b->m, OP_MUL, activate(b, linear(b, x, "mlp/wg", 1, &c->d_ff), c->act), h);
	else
		h = activate(b, h, c->act);
	return linear(b, h, "mlp/wo", 1, &c->d_model);
}

/* One expert weight matrix set, batched over experts: x [E,N,K] . w [E,K,M]. */
static ValueId expert_linear(Builder *b, ValueId x, const char *name, int64_t out)
{
	const Type *tx = vtype(b, x);
	int64_t E = tx->dims[0], K = tx->dims[2];
	char nm[96];
	snprintf(nm, sizeof nm, "mlp/experts/%s/w", name);
	ValueId w = weight(b, nm, TY(b->dt, E, K, out));
	ValueId y = ir_dot(b->m, x, w, 1, (int64_t[]){2}, (int64_t[]){1}, 1, (int64_t[]){0},
	                   (int64_t[]){0});
	if (b->c->bias) {
		snprintf(nm, sizeof nm, "mlp/experts/%s/b", name);
		ValueId bias = weight(b, nm, TY(b->dt, E, out));
		y = ir_binary(b->m, OP_ADD, y, bcast(b, bias, *vtype(b, y), DIMS(0, 2)));
	}
	return y;
}

/*
 * Mixture of experts, one group per sequence (G = B groups of S tokens):
 *   router logits [G,S,E] = x . Wr (f32), probs = softmax over E;
 *   top-k by k rounds of reduce_max + cmp_eq, each masking its winner;
 *   slot of a token in its expert's buffer = (number of earlier-or-same
 *   tokens of the group routed there) - 1, a cumulative sum written as a dot
 *   with a lower-triangular [S,S] matrix; slots >= C are dropped;
 *   dispatch [G,S,E,C] one-hot of (expert, slot); combine = dispatch * gate;
 *   expert inputs [E, G*C, D] = dispatch . x; outputs combined back by a dot.
 */
static ValueId moe_mlp(Builder *b, ValueId x)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	int64_t G = vtype(b, x)->dims[0], S = vtype(b, x)->dims[1], D = c->d_model;
	int64_t E = c->experts, K = c->top_k;
	int64_t C = c->expert_capacity > 0 ? c->expert_capacity
	                                   : (int64_t)ceil(c->capacity_factor * (double)(S * K) / (double)E);
	if (C > S)
		C = S;
	if (C < 1)
		C = 1;
	Type tge = TY(DT_F32, G, S, E);

	ValueId wr = weight(b, "mlp/router/w", TY(b->dt, D, E));
	ValueId logits = ir_matmul(m, ir_convert(m, x, DT_F32), ir_convert(m, wr, DT_F32));
	ValueId probs = ir_softmax(m, logits, 2);

	ValueId one = splat(b, 1.0, tge), zero = splat(b, 0.0, tge), neg = splat(b, -1.0, tge);
	ValueId mask = -1, rest = probs;
	for (int64_t k = 0; k < K; k++) {
		ValueId mx = ir_reduce(m, OP_REDUCE_MAX, rest, DIMS(2));
		ValueId win = ir_binary(m, OP_CMP_EQ, rest, bcast(b, mx, tge, DIMS(0, 1)));
		ValueId sel = ir_select(m, win, one, zero);
		mask = mask < 0 ? sel : ir_binary(m, OP_ADD, mask, sel);
		if (k + 1 < K)
			rest = ir_select(m, win, neg, rest);
	}
	ValueId gates = ir_binary(m, OP_MUL, probs, mask);
	if (K > 1) {
		ValueId sum = ir_reduce(m, OP_REDUCE_SUM, gates, DIMS(2));
		gates = ir_binary(m, OP_DIV, gates, bcast(b, sum, tge, DIMS(0, 1)));
	}

	/* tri[i][j] = 1 if j <= i: pos = tri . mask, inclusive count per expert */
	Type tss = TY(DT_S32, S, S), tssf = TY(DT_F32, S, S);
	ValueId later = ir_binary(m, OP_CMP_GT, ir_iota(m, tss, 1), ir_iota(m, tss, 0));
	ValueId tri = ir_select(m, later, splat(b, 0.0, tssf), splat(b, 1.0, tssf));
	ValueId pos = ir_dot(m, tri, mask, 1, (int64_t[]){1}, (int64_t[]){1}, 0, NULL, NULL);
	pos = ir_transpose(m, pos, (int64_t[]){1, 0, 2});
	ValueId slot = ir_binary(m, OP_SUB, pos, one);

	Type tdc = TY(DT_F32, G, S, E, C);
	ValueId hit = ir_binary(m, OP_CMP_EQ, ir_iota(m, tdc, 3), bcast(b, slot, tdc, DIMS(0, 1, 2)));
	ValueId disp = ir_select(m, hit, bcast(b, mask, tdc, DIMS(0, 1, 2)), splat(b, 0.0, tdc));
	ValueId comb = ir_binary(m, OP_MUL, disp, bcast(b, gates, tdc, DIMS(0, 1, 2)));
	if (b->dt != DT_F32) {
		disp = ir_convert(m, disp, b->dt);
		comb = ir_convert(m, comb, b->dt);
	}

	/* expert buffers [G,E,C,D] -> [E, G*C, D] */
	ValueId xe = ir_dot(m, disp, x, 1, (int64_t[]){1}, (int64_t[]){1}, 1, (int64_t[]){0},
	                    (int64_t[]){0});
	xe = ir_transpose(m, xe, (int64_t[]){1, 0, 2, 3});
	xe = ir_reshape(m, xe, DIMS(E, G * C, D));
	ValueId h = expert_linear(b, xe, "wi", c->d_ff);
	if (gated(c->act))
		h = ir_binary(m, OP_MUL, activate(b, expert_linear(b, xe, "wg", c->d_ff), c->act), h);
	else
		h = activate(b, h, c->act);
	ValueId ye = expert_linear(b, h, "wo", D);
	ye = ir_reshape(m, ye, DIMS(E, G, C, D));
	ye = ir_transpose(m, ye, (int64_t[]){1, 0, 2, 3});
	ValueId y = ir_dot(m, comb, ye, 2, (int64_t[]){2, 3}, (int64_t[]){1, 2}, 1, (int64_t[]){0},
	                   (int64_t[]){0});

	if (c->aux_loss_coef > 0) {
		/* Switch: coef * E * sum_e (fraction routed to e) * (mean prob of e) */
		Type te = TY(DT_F32, E);
		double inv = 1.0 / (double)(G * S);
		ValueId frac = ir_reduce(m, OP_REDUCE_SUM, mask, DIMS(0, 1));
		frac = ir_binary(m, OP_MUL, frac, splat(b, inv / (double)K, te));
		ValueId mp = ir_binary(m, OP_MUL, ir_reduce(m, OP_REDUCE_SUM, probs, DIMS(0, 1)),
		                       splat(b, inv, te));
		ValueId aux = ir_reduce(m, OP_REDUCE_SUM, ir_binary(m, OP_MUL, frac, mp), DIMS(0));
		aux = ir_binary(m, OP_MUL, aux, splat(b, c->aux_loss_coef * (double)E, ty(DT_F32, 0, NULL)));
		b->aux = b->aux < 0 ? aux : ir_binary(m, OP_ADD, b->aux, aux);
	}
	return y;
}

ValueId mlp(Builder *b, ValueId x, int moe)
{
	return moe ? moe_mlp(b, x) : dense_mlp(b, x);
}

ValueId cross_entropy(Builder *b, ValueId logits, ValueId labels)
{
	Module *m = b->m;
	Type t = *vtype(b, logits);
	int r = t.rank;
	int64_t last = r - 1, keep[IR_MAX_RANK], all[IR_MAX_RANK];
	seq_dims(keep, 0, r - 1);
	seq_dims(all, 0, r - 1);
	ValueId mx = ir_reduce(m, OP_REDUCE_MAX, logits, 1, &last);
	ValueId z = ir_binary(m, OP_SUB, logits, bcast(b, mx, t, r - 1, keep));
	ValueId se = ir_reduce(m, OP_REDUCE_SUM, ir_unary(m, OP_EXP, z), 1, &last);
	ValueId lse = ir_binary(m, OP_ADD, ir_unary(m, OP_LOG, se), mx);
	ValueId oh = ir_one_hot(m, labels, t.dims[last], DT_F32);
	ValueId tgt = ir_reduce(m, OP_REDUCE_SUM, ir_binary(m, OP_MUL, oh, logits), 1, &last);
	ValueId per = ir_binary(m, OP_SUB, lse, tgt);
	ValueId sum = ir_reduce(m, OP_REDUCE_SUM, per, r - 1, all);
	int64_t n = type_numel(vtype(b, per));
	return ir_binary(m, OP_MUL, sum, splat(b, 1.0 / (double)n, ty(DT_F32, 0, NULL)));
}

ValueId causal_mask(Builder *b, int64_t s)
{
	Module *m = b->m;
	Type ti = TY(DT_S32, s, s), tf = TY(b->dt, s, s);
	ValueId future = ir_binary(m, OP_CMP_GT, ir_iota(m, ti, 1), ir_iota(m, ti, 0));
	return ir_select(m, future, splat(b, -1e9, tf), splat(b, 0.0, tf));
}
