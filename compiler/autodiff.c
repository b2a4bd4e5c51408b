/*
 * Reverse-mode automatic differentiation over the graph IR.
 *
 * Requires: a graph-level module and a scalar float value `loss` in it.
 * Changes: appends the backward pass after the existing (forward)
 * instructions; the forward region is left untouched.
 *
 * The module is straight-line SSA, so reverse mode is one sweep from the loss
 * down to instruction 0: each value's adjoint is complete when the sweep
 * reaches it (all its users come later), and its op's VJP rule adds the
 * contributions to its operands' adjoints (fan-out: summed with add). The
 * rules come from the vjp column of ir/ops.def through an X-macro, so an op
 * whose rule is missing does not compile. Only "active" values get
 * adjoints: those that depend on a role="weight" parameter through
 * differentiable ops, with a floating-point dtype.
 *
 * Every forward value a rule reads goes through remat_use() (remat.c), which
 * returns the value itself or a recomputed copy, as the policy says. The
 * instructions a rule appends take the layer=[i] of the forward instruction
 * they differentiate, so the schedule sees the backward of each layer.
 *
 * gather's VJP (a scatter-add into the table) is one_hot(indices) contracted
 * with the adjoint over the index dims: dot(one_hot [B.., V], g [B.., D..])
 * -> [V, D..]. The dot carries scatter_add=[1] so that FLOP counting treats
 * it as the scatter it stands for, not as a matmul of the model.
 */
#include "train.h"

#include <assert.h>
#include <string.h>

typedef struct AD {
	Module *m;
	int nfwd;               /* forward instructions [0, nfwd) */
	ValueId *adj;           /* (nfwd) adjoint, -1 if none */
	unsigned char *active;  /* (nfwd) */
	Remat remat;
	Diag *d;
} AD;

typedef int (*VjpRule)(AD *a, ValueId y, const Inst *in, ValueId g);

/* ---- Small builders ------------------------------------------------------*/

static Type plain(Type t)
{
	memset(t.shard, 0, sizeof t.shard);
	return t;
}

static const Type *ty(const AD *a, ValueId v)
{
	return &a->m->insts[v].type;
}

/* The value the backward reads for forward value v. */
static ValueId P(AD *a, ValueId v)
{
	return v < a->nfwd ? remat_use(&a->remat, v) : v;
}

static ValueId cst(AD *a, double x, ValueId like)
{
	return ir_const(a->m, x, plain(*ty(a, like)));
}

static ValueId cst_t(AD *a, double x, Type t)
{
	return ir_const(a->m, x, plain(t));
}

static ValueId bin(AD *a, Op op, ValueId x, ValueId y)
{
	return ir_binary(a->m, op, x, y);
}

static ValueId un(AD *a, Op op, ValueId x)
{
	return ir_unary(a->m, op, x);
}

/* Adds contribution g to the adjoint of forward value x (if x is active). */
static void acc(AD *a, ValueId x, ValueId g)
{
	if (x >= a->nfwd || !a->active[x])
		return;
	if (ty(a, g)->dtype != ty(a, x)->dtype)
		g = ir_convert(a->m, g, ty(a, x)->dtype);
	assert(type_same_shape(ty(a, g), ty(a, x)));
	a->adj[x] = a->adj[x] < 0 ? g : bin(a, OP_ADD, a->adj[x], g);
}

static int is_active(const AD *a, ValueId x)
{
	return x < a->nfwd && a->active[x];
}

/* Transposes v so that result dim i is v's dim perm[i]; a no-op if identity. */
static ValueId transpose_if(AD *a, ValueId v, const int64_t *perm, int rank)
{
	for (int i = 0; i < rank; i++)
		if (perm[i] != i)
			return ir_transpose(a->m, v, perm);
	return v;
}

/* ---- Elementwise rules -----------------------------------------------*/

static int vjp_neg(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	acc(a, in->args[0], un(a, OP_NEG, g));
	return 0;
}

static int vjp_exp(AD *a, ValueId y, const Inst *in, ValueId g)
{
	acc(a, in->args[0], bin(a, OP_MUL, g, P(a, y)));
	return 0;
}

static int vjp_log(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	acc(a, in->args[0], bin(a, OP_DIV, g, P(a, in->args[0])));
	return 0;
}

static int vjp_tanh(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId t = P(a, y);
	ValueId d = bin(a, OP_SUB, cst(a, 1, t), bin(a, OP_MUL, t, t));
	acc(a, in->args[0], bin(a, OP_MUL, g, d));
	return 0;
}

static int vjp_sqrt(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId s = P(a, y); /* d sqrt(x) = 1 / (2 sqrt(x)) */
	acc(a, in->args[0], bin(a, OP_DIV, g, bin(a, OP_MUL, cst(a, 2, s), s)));
	return 0;
}

static int vjp_rsqrt(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId r = P(a, y); /* d x^-1/2 = -1/2 x^-3/2 = -1/2 r^3 */
	ValueId r3 = bin(a, OP_MUL, r, bin(a, OP_MUL, r, r));
	acc(a, in->args[0], bin(a, OP_MUL, g, bin(a, OP_MUL, cst(a, -0.5, r), r3)));
	return 0;
}

static int vjp_relu(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId x = P(a, in->args[0]);
	ValueId pos = bin(a, OP_CMP_GT, x, cst(a, 0, x));
	acc(a, in->args[0], ir_select(a->m, pos, g, cst(a, 0, g)));
	return 0;
}

/* gelu(x) = 0.5 x (1 + t), t = tanh(c (x + k x^3)) (the interpreter's tanh
 * form); gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2). */
static int vjp_gelu(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	const double c = 0.7978845608028654, k = 0.044715;
	ValueId x = P(a, in->args[0]);
	ValueId x2 = bin(a, OP_MUL, x, x);
	ValueId inner = bin(a, OP_MUL, cst(a, c, x),
	                    bin(a, OP_ADD, x, bin(a, OP_MUL, cst(a, k, x), bin(a, OP_MUL, x, x2))));
	ValueId t = un(a, OP_TANH, inner);
	ValueId one = cst(a, 1, x), half = cst(a, 0.5, x);
	ValueId dinner = bin(a, OP_MUL, cst(a, c, x),
	                     bin(a, OP_ADD, one, bin(a, OP_MUL, cst(a, 3 * k, x), x2)));
	ValueId sech2 = bin(a, OP_SUB, one, bin(a, OP_MUL, t, t));
	ValueId d = bin(a, OP_ADD, bin(a, OP_MUL, half, bin(a, OP_ADD, one, t)),
	                bin(a, OP_MUL, bin(a, OP_MUL, half, x), bin(a, OP_MUL, sech2, dinner)));
	acc(a, in->args[0], bin(a, OP_MUL, g, d));
	return 0;
}

static int vjp_sigmoid(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId s = P(a, y);
	ValueId d = bin(a, OP_MUL, s, bin(a, OP_SUB, cst(a, 1, s), s));
	acc(a, in->args[0], bin(a, OP_MUL, g, d));
	return 0;
}

/* silu(x) = x s(x); silu'(x) = s (1 + x (1 - s)). */
static int vjp_silu(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId x = P(a, in->args[0]);
	ValueId s = un(a, OP_SIGMOID, x);
	ValueId one = cst(a, 1, x);
	ValueId d = bin(a, OP_MUL, s, bin(a, OP_ADD, one, bin(a, OP_MUL, x, bin(a, OP_SUB, one, s))));
	acc(a, in->args[0], bin(a, OP_MUL, g, d));
	return 0;
}

static int vjp_convert(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	if (dtype_is_float(ty(a, in->args[0])->dtype))
		acc(a, in->args[0], g); /* acc converts to the operand's dtype */
	return 0;
}

static int vjp_add(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	acc(a, in->args[0], g);
	acc(a, in->args[1], g);
	return 0;
}

static int vjp_sub(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	acc(a, in->args[0], g);
	if (is_active(a, in->args[1]))
		acc(a, in->args[1], un(a, OP_NEG, g));
	return 0;
}

static int vjp_mul(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	if (is_active(a, in->args[0]))
		acc(a, in->args[0], bin(a, OP_MUL, g, P(a, in->args[1])));
	if (is_active(a, in->args[1]))
		acc(a, in->args[1], bin(a, OP_MUL, g, P(a, in->args[0])));
	return 0;
}

/* y = a / b: da = g / b, db = -g a / b^2 = -(g y) / b. */
static int vjp_div(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId b = in->args[1];
	if (is_active(a, in->args[0]))
		acc(a, in->args[0], bin(a, OP_DIV, g, P(a, b)));
	if (is_active(a, b))
		acc(a, b, un(a, OP_NEG, bin(a, OP_DIV, bin(a, OP_MUL, g, P(a, y)), P(a, b))));
	return 0;
}

/* max/min: the adjoint goes to the chosen operand; on a tie it is split in
 * half between both (as JAX does). */
static int vjp_minmax(AD *a, const Inst *in, ValueId g, int is_max)
{
	ValueId x = P(a, in->args[0]), z = P(a, in->args[1]);
	ValueId wins = is_max ? bin(a, OP_CMP_GT, x, z) : bin(a, OP_CMP_GT, z, x);
	ValueId tie = bin(a, OP_CMP_EQ, x, z);
	ValueId w = ir_select(a->m, wins, cst(a, 1, g),
	                      ir_select(a->m, tie, cst(a, 0.5, g), cst(a, 0, g)));
	ValueId gx = bin(a, OP_MUL, g, w);
	acc(a, in->args[0], gx);
	if (is_active(a, in->args[1]))
		acc(a, in->args[1], bin(a, OP_SUB, g, gx));
	return 0;
}

static int vjp_max(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	return vjp_minmax(a, in, g, 1);
}

static int vjp_min(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	return vjp_minmax(a, in, g, 0);
}

/* y = a^b: da = g b a^(b-1), db = g y log(a) (only when b is active, so a
 * constant exponent does not need a > 0). */
static int vjp_pow(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId x = in->args[0], e = in->args[1];
	if (is_active(a, x)) {
		ValueId pe = P(a, e);
		ValueId pm1 = bin(a, OP_POW, P(a, x), bin(a, OP_SUB, pe, cst(a, 1, pe)));
		acc(a, x, bin(a, OP_MUL, g, bin(a, OP_MUL, pe, pm1)));
	}
	if (is_active(a, e))
		acc(a, e, bin(a, OP_MUL, g, bin(a, OP_MUL, P(a, y), un(a, OP_LOG, P(a, x)))));
	return 0;
}

static int vjp_select(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId p = P(a, in->args[0]), z = cst(a, 0, g);
	if (is_active(a, in->args[1]))
		acc(a, in->args[1], ir_select(a->m, p, g, z));
	if (is_active(a, in->args[2]))
		acc(a, in->args[2], ir_select(a->m, p, z, g));
	return 0;
}

/* ---- Contraction, reductions, softmax ------------------------------------*/

/* y = dot(L, R): y dims are [batch (nb), L free (nlf), R free (nrf)].
 * dL = dot(g, R) contracting g's R-free dims with R's free dims, batched on
 * the batch dims; its dims are [batch, L free, R's contracting dims in R
 * order], transposed back into L's order. dR likewise with dot(L, g). */
static int vjp_dot(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId L = in->args[0], R = in->args[1];
	Type lt = *ty(a, L), rt = *ty(a, R);
	int nc, nb, n2;
	const int64_t *lc = ir_attr_ints(in, "lhs_contract", &nc);
	const int64_t *rc = ir_attr_ints(in, "rhs_contract", &n2);
	const int64_t *lb = ir_attr_ints(in, "lhs_batch", &nb);
	const int64_t *rb = ir_attr_ints(in, "rhs_batch", &n2);
	int lrole[IR_MAX_RANK], rrole[IR_MAX_RANK]; /* -1 free, else contract index k */
	int lbat[IR_MAX_RANK], rbat[IR_MAX_RANK];
	for (int i = 0; i < IR_MAX_RANK; i++)
		lrole[i] = rrole[i] = -1, lbat[i] = rbat[i] = 0;
	for (int k = 0; k < nc; k++) {
		lrole[lc[k]] = k;
		rrole[rc[k]] = k;
	}
	for (int k = 0; k < nb; k++) {
		lbat[lb[k]] = 1;
		rbat[rb[k]] = 1;
	}
	int64_t lf[IR_MAX_RANK], rf[IR_MAX_RANK], gb[IR_MAX_RANK];
	int nlf = 0, nrf = 0;
	for (int i = 0; i < lt.rank; i++)
		if (lrole[i] < 0 && !lbat[i])
			lf[nlf++] = i;
	for (int i = 0; i < rt.rank; i++)
		if (rrole[i] < 0 && !rbat[i])
			rf[nrf++] = i;
	for (int k = 0; k < nb; k++)
		gb[k] = k;

	if (is_active(a, L)) {
		int64_t gc[IR_MAX_RANK], pos[IR_MAX_RANK];
		for (int j = 0; j < nrf; j++)
			gc[j] = nb + nlf + j;
		ValueId v = ir_dot(a->m, g, P(a, R), nrf, gc, rf, nb, gb, rb);
		for (int k = 0; k < nb; k++)
			pos[lb[k]] = k;
		for (int j = 0; j < nlf; j++)
			pos[lf[j]] = nb + j;
		int cnt = 0;
		for (int r = 0; r < rt.rank; r++)
			if (rrole[r] >= 0)
				pos[lc[rrole[r]]] = nb + nlf + cnt++;
		acc(a, L, transpose_if(a, v, pos, lt.rank));
	}
	if (is_active(a, R)) {
		int64_t gc[IR_MAX_RANK], pos[IR_MAX_RANK];
		for (int j = 0; j < nlf; j++)
			gc[j] = nb + j;
		ValueId v = ir_dot(a->m, P(a, L), g, nlf, lf, gc, nb, lb, gb);
		for (int k = 0; k < nb; k++)
			pos[rb[k]] = k;
		int cnt = 0;
		for (int l = 0; l < lt.rank; l++)
			if (lrole[l] >= 0)
				pos[rc[lrole[l]]] = nb + cnt++;
		for (int j = 0; j < nrf; j++)
			pos[rf[j]] = nb + nc + j;
		acc(a, R, transpose_if(a, v, pos, rt.rank));
	}
	return 0;
}

/* The dims of x that survive reducing over dims (in order). */
static int kept_dims(const Type *x, const int64_t *dims, int nd, int64_t *kept)
{
	uint32_t red = 0;
	for (int i = 0; i < nd; i++)
		red |= 1u << dims[i];
	int n = 0;
	for (int i = 0; i < x->rank; i++)
		if (!(red & (1u << i)))
			kept[n++] = i;
	return n;
}

static int vjp_reduce_sum(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId x = in->args[0];
	int nd;
	const int64_t *dims = ir_attr_ints(in, "dims", &nd);
	int64_t kept[IR_MAX_RANK];
	int nk = kept_dims(ty(a, x), dims, nd, kept);
	acc(a, x, ir_broadcast(a->m, g, plain(*ty(a, x)), nk, kept));
	return 0;
}

/* The adjoint goes to the elements equal to the max (cmp_eq mask), split
 * evenly among ties. */
static int vjp_reduce_max(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId x = in->args[0];
	int nd;
	const int64_t *dims = ir_attr_ints(in, "dims", &nd);
	int64_t kept[IR_MAX_RANK];
	Type xt = plain(*ty(a, x));
	int nk = kept_dims(&xt, dims, nd, kept);
	ValueId px = P(a, x);
	ValueId mask = bin(a, OP_CMP_EQ, px, ir_broadcast(a->m, P(a, y), xt, nk, kept));
	ValueId mf = ir_convert(a->m, mask, xt.dtype);
	ValueId count = ir_reduce(a->m, OP_REDUCE_SUM, mf, nd, dims);
	ValueId share = bin(a, OP_DIV, g, count);
	acc(a, x, bin(a, OP_MUL, ir_broadcast(a->m, share, xt, nk, kept), mf));
	return 0;
}

/* y = softmax(x, d): dx = y (g - sum_d(g y)). */
static int vjp_softmax(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId x = in->args[0];
	int64_t d = ir_attr_int(in, "dim", 0);
	ValueId py = P(a, y);
	ValueId s = ir_reduce(a->m, OP_REDUCE_SUM, bin(a, OP_MUL, g, py), 1, &d);
	int64_t kept[IR_MAX_RANK];
	int nk = kept_dims(ty(a, x), &d, 1, kept);
	ValueId sb = ir_broadcast(a->m, s, plain(*ty(a, y)), nk, kept);
	acc(a, x, bin(a, OP_MUL, py, bin(a, OP_SUB, g, sb)));
	return 0;
}

/* ---- Data movement -------------------------------------------------------*/

/* broadcast's transpose is reduce_sum over the result dims the operand does
 * not map to, and over its size-1 dims that were expanded; a reshape puts
 * those size-1 dims back. */
static int vjp_broadcast(AD *a, ValueId y, const Inst *in, ValueId g)
{
	ValueId x = in->args[0];
	Type xt = plain(*ty(a, x)), yt = *ty(a, y);
	int nd;
	const int64_t *dims = ir_attr_ints(in, "dims", &nd);
	int from[IR_MAX_RANK];
	for (int j = 0; j < yt.rank; j++)
		from[j] = -1;
	for (int i = 0; i < nd; i++)
		from[dims[i]] = i;
	int64_t red[IR_MAX_RANK];
	int nr = 0;
	for (int j = 0; j < yt.rank; j++)
		if (from[j] < 0 || (xt.dims[from[j]] == 1 && yt.dims[j] != 1))
			red[nr++] = j;
	ValueId r = nr ? ir_reduce(a->m, OP_REDUCE_SUM, g, nr, red) : g;
	if (ty(a, r)->rank != xt.rank)
		r = ir_reshape(a->m, r, xt.rank, xt.dims);
	acc(a, x, r);
	return 0;
}

static int vjp_reshape(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	const Type *xt = ty(a, in->args[0]);
	acc(a, in->args[0], ir_reshape(a->m, g, xt->rank, xt->dims));
	return 0;
}

static int vjp_transpose(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	int np;
	const int64_t *perm = ir_attr_ints(in, "perm", &np);
	int64_t inv[IR_MAX_RANK];
	for (int i = 0; i < np; i++)
		inv[perm[i]] = i;
	acc(a, in->args[0], transpose_if(a, g, inv, np));
	return 0;
}

/* slice's transpose is a pad with zeros, built as concat with zero blocks
 * one dim at a time. */
static int vjp_slice(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId x = in->args[0];
	Type xt = *ty(a, x);
	int ns;
	const int64_t *start = ir_attr_ints(in, "start", &ns);
	const int64_t *limit = ir_attr_ints(in, "limit", &ns);
	ValueId cur = g;
	for (int i = 0; i < xt.rank; i++) {
		int64_t before = start[i], after = xt.dims[i] - limit[i];
		if (!before && !after)
			continue;
		ValueId parts[3];
		int np = 0;
		Type zt = plain(*ty(a, cur));
		if (before) {
			zt.dims[i] = before;
			parts[np++] = cst_t(a, 0, zt);
		}
		parts[np++] = cur;
		if (after) {
			zt.dims[i] = after;
			parts[np++] = cst_t(a, 0, zt);
		}
		cur = ir_concat(a->m, np, parts, i);
	}
	acc(a, x, cur);
	return 0;
}

static int vjp_concat(AD *a, ValueId y, const Inst *in, ValueId g)
{
	Type yt = *ty(a, y);
	int d = (int)ir_attr_int(in, "dim", 0);
	int64_t off = 0;
	for (int k = 0; k < in->nargs; k++) {
		ValueId x = in->args[k];
		int64_t len = ty(a, x)->dims[d];
		if (is_active(a, x)) {
			int64_t start[IR_MAX_RANK] = {0}, limit[IR_MAX_RANK];
			for (int i = 0; i < yt.rank; i++)
				limit[i] = yt.dims[i];
			start[d] = off;
			limit[d] = off + len;
			acc(a, x, ir_slice(a->m, g, start, limit));
		}
		off += len;
	}
	return 0;
}

/* gather(table [V, D..], idx [B..]) -> [B.., D..]: the table's adjoint is
 * the scatter-add of g's rows into rows idx, written as
 * dot(one_hot(idx) [B.., V], g [B.., D..]) contracting the B dims. */
static int vjp_gather(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	ValueId table = in->args[0], idx = in->args[1];
	int64_t V = ty(a, table)->dims[0];
	int nb = ty(a, idx)->rank;
	ValueId oh = ir_one_hot(a->m, P(a, idx), V, ty(a, g)->dtype);
	int64_t c[IR_MAX_RANK];
	for (int i = 0; i < nb; i++)
		c[i] = i;
	ValueId v = ir_dot(a->m, oh, g, nb, c, c, 0, NULL, NULL);
	int64_t one = 1;
	ir_set_ints(a->m, v, "scatter_add", 1, &one);
	acc(a, table, v);
	return 0;
}

/* ---- Collectives: each one's transpose -----------------------------------*/

/* Appends collective op on g with src's axes; dims as given (-1: unset). */
static ValueId coll(AD *a, Op op, ValueId g, const Inst *src, int64_t dim, int64_t split,
                    int64_t concat, int64_t shift, int *err)
{
	Inst ni;
	memset(&ni, 0, sizeof ni);
	ni.op = op;
	ni.nargs = 1;
	ni.args = arena_alloc(&a->m->arena, sizeof(ValueId));
	ni.args[0] = g;
	ni.unit = ir_ops[op].unit;
	ValueId v = ir_append(a->m, &ni);
	const Attr *ax = ir_attr(src, "axes");
	if (ax && ax->kind == ATTR_NAMES)
		ir_set_names(a->m, v, "axes", ax->n, ax->names);
	if (dim >= 0)
		ir_set_ints(a->m, v, "dim", 1, &dim);
	if (split >= 0) {
		ir_set_ints(a->m, v, "split_dim", 1, &split);
		ir_set_ints(a->m, v, "concat_dim", 1, &concat);
	}
	if (op == OP_COLLECTIVE_PERMUTE)
		ir_set_ints(a->m, v, "shift", 1, &shift);
	char msg[256];
	Type t;
	if (ir_infer_type(a->m, &a->m->insts[v], &t, msg, sizeof msg) != 0) {
		diag_error(a->d, a->m->file, src->line, src->col, "autodiff: %s", msg);
		*err = 1;
		return g;
	}
	a->m->insts[v].type = t;
	return v;
}

static int vjp_all_reduce(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	const char *r = ir_attr_str(in, "reduce", "sum");
	if (strcmp(r, "sum") != 0) {
		diag_error(a->d, a->m->file, in->line, in->col,
		           "autodiff: all_reduce with reduce=\"%s\" is not differentiable", r);
		return -1;
	}
	int err = 0;
	ValueId v = coll(a, OP_ALL_REDUCE, g, in, -1, -1, -1, 0, &err);
	if (!err)
		acc(a, in->args[0], v);
	return err ? -1 : 0;
}

static int vjp_all_gather(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	int err = 0;
	ValueId v = coll(a, OP_REDUCE_SCATTER, g, in, ir_attr_int(in, "dim", 0), -1, -1, 0, &err);
	if (!err)
		acc(a, in->args[0], v);
	return err ? -1 : 0;
}

static int vjp_reduce_scatter(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	int err = 0;
	ValueId v = coll(a, OP_ALL_GATHER, g, in, ir_attr_int(in, "dim", 0), -1, -1, 0, &err);
	if (!err)
		acc(a, in->args[0], v);
	return err ? -1 : 0;
}

static int vjp_all_to_all(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	int err = 0;
	ValueId v = coll(a, OP_ALL_TO_ALL, g, in, -1, ir_attr_int(in, "concat_dim", 0),
	                 ir_attr_int(in, "split_dim", 0), 0, &err);
	if (!err)
		acc(a, in->args[0], v);
	return err ? -1 : 0;
}

static int vjp_collective_permute(AD *a, ValueId y, const Inst *in, ValueId g)
{
	(void)y;
	int err = 0;
	ValueId v = coll(a, OP_COLLECTIVE_PERMUTE, g, in, -1, -1, -1,
	                 -ir_attr_int(in, "shift", 1), &err);
	if (!err)
		acc(a, in->args[0], v);
	return err ? -1 : 0;
}

/* ---- The rule table, from ops.def ----------------------------------------*/

#define vjp_NONE NULL
static const VjpRule vjp_rules[] = {
#define OP(e, text, nargs, flags, vjp, unit) [OP_##e] = vjp_##vjp,
#include "ir/ops.def"
#undef OP
};
#undef vjp_NONE
_Static_assert(sizeof vjp_rules / sizeof vjp_rules[0] == OP_COUNT,
               "every op in ir/ops.def needs a vjp entry");

int autodiff(Module *m, ValueId loss, RematPolicy remat, Grads *out, Diag *d)
{
	memset(out, 0, sizeof *out);
	if (loss < 0 || loss >= m->ninsts) {
		diag_error(d, m->file, 0, 0, "autodiff: loss %%%d is not a value of the module", loss);
		return -1;
	}
	const Inst *li = &m->insts[loss];
	if (li->type.rank != 0 || !dtype_is_float(li->type.dtype)) {
		diag_error(d, m->file, li->line, li->col,
		           "autodiff: the loss must be a floating-point scalar");
		return -1;
	}
	AD a;
	memset(&a, 0, sizeof a);
	a.m = m;
	a.d = d;
	a.nfwd = m->ninsts;
	a.adj = arena_alloc(&m->arena, sizeof(ValueId) * (size_t)a.nfwd);
	a.active = arena_alloc(&m->arena, (size_t)a.nfwd);
	for (int i = 0; i < a.nfwd; i++) {
		const Inst *in = &m->insts[i];
		a.adj[i] = -1;
		if (!dtype_is_float(in->type.dtype))
			continue;
		if (in->op == OP_PARAMETER) {
			const char *role = ir_attr_str(in, "role", "");
			a.active[i] = strcmp(role, "weight") == 0;
			if (a.active[i])
				out->n++;
			continue;
		}
		if (!vjp_rules[in->op])
			continue;
		for (int k = 0; k < in->nargs; k++)
			if (a.active[in->args[k]])
				a.active[i] = 1;
	}
	remat_init(&a.remat, m, a.nfwd, remat);

	out->weights = arena_alloc(&m->arena, sizeof(ValueId) * (size_t)(out->n + 1));
	out->grads = arena_alloc(&m->arena, sizeof(ValueId) * (size_t)(out->n + 1));
	if (a.active[loss]) {
		a.adj[loss] = cst(&a, 1.0, loss);
		for (ValueId v = loss; v >= 0; v--) {
			if (a.adj[v] < 0 || !a.active[v] || !vjp_rules[m->insts[v].op])
				continue;
			Inst in = m->insts[v]; /* a copy: appending moves m->insts */
			int first = m->ninsts;
			if (vjp_rules[in.op](&a, v, &in, a.adj[v]) != 0)
				return -1;
			/* The backward of layer i is layer i too (recomputed copies
			 * already carry their own layer). */
			int64_t layer = ir_attr_int(&in, "layer", -1);
			for (int i = first; layer >= 0 && i < m->ninsts; i++)
				if (!ir_attr(&m->insts[i], "layer"))
					ir_set_ints(m, i, "layer", 1, &layer);
		}
	}
	int k = 0;
	for (int i = 0; i < a.nfwd; i++) {
		const Inst *in = &m->insts[i];
		if (in->op != OP_PARAMETER || !dtype_is_float(in->type.dtype) ||
		    strcmp(ir_attr_str(in, "role", ""), "weight") != 0)
			continue;
		out->weights[k] = i;
		out->grads[k] = a.adj[i] >= 0 ? a.adj[i] : cst(&a, 0, i);
		k++;
	}
	return 0;
}
