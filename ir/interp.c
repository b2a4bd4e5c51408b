/*
 * The reference interpreter: runs a module in f32 on one host thread. It is
 * the ground truth every compiled path is checked against, so it is written
 * to be obviously right rather than fast: every op is a loop over the flat
 * index of its result, unravelled into a multi-index, mapped to operand
 * multi-indices and ravelled again with row-major strides.
 *
 * Numerics (docs/ir.md):
 * - Every value is f32; integers and preds are stored as floats (a pred is 0
 *   or 1). convert to an integer type truncates toward zero (XLA); convert to
 *   pred gives x != 0.
 * - gelu is the tanh approximation (JAX's default, approximate=True):
 *   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * - dot accumulates in f32, in the order of the contracting multi-index.
 * - With InterpOptions.bf16_round, every bf16-typed result is rounded to
 *   bf16 (round to nearest, ties to even), and both dot operands are rounded
 *   to bf16 before the multiply whatever their dtype, as the MXU's input path
 *   does at default precision; accumulation stays f32.
 * - Collectives run as on one chip: all_reduce and collective_permute are the
 *   identity; all_gather, reduce_scatter and all_to_all are the identity when
 *   their group (product of the named mesh axes) is 1 and an error otherwise,
 *   since one chip cannot hold the other shards. The tiled-level DMA and
 *   async-collective ops are the identity (coll_start follows its op's rule).
 * - gather with an index outside [0, V) is an error (no clamping); one_hot of
 *   an index outside [0, depth) gives a row of zeros (JAX).
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float bf16_round(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) {
		/* NaN: keep the sign and the top payload bits, force a quiet NaN so
		 * that truncation cannot turn it into an infinity. */
		u = (u & 0xffff0000u) | 0x00400000u;
	} else {
		/* Add half an ulp of bf16 minus one, plus the lowest kept bit: ties
		 * go to the even neighbour. Overflow carries into the exponent and
		 * gives an infinity, as it should. */
		uint32_t lsb = (u >> 16) & 1u;
		u += 0x7fffu + lsb;
		u &= 0xffff0000u;
	}
	float r;
	memcpy(&r, &u, sizeof r);
	return r;
}

/* ---- Multi-index helpers ------------------------------------------------ */

static void strides_of(const Type *t, int64_t *s)
{
	int64_t acc = 1;
	for (int i = t->rank - 1; i >= 0; i--) {
		s[i] = acc;
		acc *= t->dims[i];
	}
}

static void unravel(int64_t flat, const Type *t, int64_t *idx)
{
	for (int i = t->rank - 1; i >= 0; i--) {
		idx[i] = t->dims[i] ? flat % t->dims[i] : 0;
		flat = t->dims[i] ? flat / t->dims[i] : 0;
	}
}

static int64_t ravel(const int64_t *idx, const Type *t)
{
	int64_t s[IR_MAX_RANK];
	strides_of(t, s);
	int64_t flat = 0;
	for (int i = 0; i < t->rank; i++)
		flat += idx[i] * s[i];
	return flat;
}

/* ---- Scalar functions --------------------------------------------------- */

static float gelu_tanh(float x)
{
	const float c = 0.7978845608028654f; /* sqrt(2/pi) */
	return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

static float sigmoidf(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

static float unary(Op op, float x)
{
	switch (op) {
	case OP_NEG: return -x;
	case OP_EXP: return expf(x);
	case OP_LOG: return logf(x);
	case OP_TANH: return tanhf(x);
	case OP_SQRT: return sqrtf(x);
	case OP_RSQRT: return 1.0f / sqrtf(x);
	case OP_RELU: return x > 0.0f ? x : 0.0f;
	case OP_GELU: return gelu_tanh(x);
	case OP_SIGMOID: return sigmoidf(x);
	case OP_SILU: return x * sigmoidf(x);
	default: ir_die("unary: %s", op_name(op));
	}
}

static float binary(Op op, float a, float b)
{
	switch (op) {
	case OP_ADD: return a + b;
	case OP_SUB: return a - b;
	case OP_MUL: return a * b;
	case OP_DIV: return a / b;
	case OP_MAX: return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
	case OP_MIN: return isnan(a) || isnan(b) ? NAN : (a < b ? a : b);
	case OP_POW: return powf(a, b);
	case OP_CMP_GT: return a > b ? 1.0f : 0.0f;
	case OP_CMP_EQ: return a == b ? 1.0f : 0.0f;
	default: ir_die("binary: %s", op_name(op));
	}
}

static float convert_to(DType t, float x)
{
	switch (t) {
	case DT_F32:
	case DT_F16:
	case DT_BF16:
		return x; /* bf16 rounding, if asked for, happens on every bf16 result */
	case DT_S32:
	case DT_S8:
		return isnan(x) ? 0.0f : truncf(x);
	case DT_PRED:
		return x != 0.0f ? 1.0f : 0.0f;
	case DT_COUNT:
		break;
	}
	ir_die("convert to dtype %d", (int)t);
}

/* ---- Ops with index arithmetic ------------------------------------------ */

typedef struct Ctx {
	const Module *m;
	const Inst *in;
	const Tensor *vals; /* (m->ninsts) results computed so far */
	const InterpOptions *opt;
	Diag *d;
	const Tensor *argv; /* (in->nargs) operands given directly (ir_interp_inst),
	                     * or NULL: operands are vals[in->args[i]] */
} Ctx;

static const Tensor *arg(const Ctx *c, int i)
{
	return c->argv ? &c->argv[i] : &c->vals[c->in->args[i]];
}

static int fail(const Ctx *c, const char *fmt, const char *what)
{
	diag_error(c->d, c->m->file, c->in->line, c->in->col, fmt, what);
	return -1;
}

static void run_dot(const Ctx *c, float *out)
{
	const Tensor *a = arg(c, 0), *b = arg(c, 1);
	const Type *rt = &c->in->type;
	int nlc, nrc, nlb, nrb;
	const int64_t *lc = ir_attr_ints(c->in, "lhs_contract", &nlc);
	const int64_t *rc = ir_attr_ints(c->in, "rhs_contract", &nrc);
	const int64_t *lb = ir_attr_ints(c->in, "lhs_batch", &nlb);
	const int64_t *rb = ir_attr_ints(c->in, "rhs_batch", &nrb);
	int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK];
	strides_of(&a->type, sa);
	strides_of(&b->type, sb);
	uint32_t a_used = 0, b_used = 0;
	Type kt = {0}; /* the contracted index space */
	for (int j = 0; j < nlc; j++) {
		a_used |= 1u << lc[j];
		b_used |= 1u << rc[j];
		kt.dims[kt.rank++] = a->type.dims[lc[j]];
	}
	for (int j = 0; j < nlb; j++) {
		a_used |= 1u << lb[j];
		b_used |= 1u << rb[j];
	}
	int round = c->opt && c->opt->bf16_round;
	int64_t n = type_numel(rt), nk = type_numel(&kt);
	for (int64_t f = 0; f < n; f++) {
		/* The result multi-index gives the batch and free coordinates of
		 * both operands (their offsets with the contracting dims at 0). */
		int64_t r[IR_MAX_RANK], k[IR_MAX_RANK];
		unravel(f, rt, r);
		int64_t a0 = 0, b0 = 0;
		int p = 0;
		for (int j = 0; j < nlb; j++, p++) {
			a0 += r[p] * sa[lb[j]];
			b0 += r[p] * sb[rb[j]];
		}
		for (int i = 0; i < a->type.rank; i++)
			if (!(a_used & (1u << i)))
				a0 += r[p++] * sa[i];
		for (int i = 0; i < b->type.rank; i++)
			if (!(b_used & (1u << i)))
				b0 += r[p++] * sb[i];
		/* Walk the contracted multi-index k in row-major order (an
		 * odometer), keeping both operands' offsets in step with it. */
		float acc = 0.0f;
		int64_t ao = a0, bo = b0;
		for (int j = 0; j < nlc; j++)
			k[j] = 0;
		for (int64_t kf = 0; kf < nk; kf++) {
			float x = a->data[ao], y = b->data[bo];
			if (round) {
				x = bf16_round(x);
				y = bf16_round(y);
			}
			acc += x * y;
			for (int j = nlc - 1; j >= 0; j--) {
				k[j]++;
				ao += sa[lc[j]];
				bo += sb[rc[j]];
				if (k[j] < kt.dims[j])
					break;
				ao -= k[j] * sa[lc[j]];
				bo -= k[j] * sb[rc[j]];
				k[j] = 0;
			}
		}
		out[f] = acc;
	}
}

static void run_reduce(const Ctx *c, float *out)
{
	const Tensor *a = arg(c, 0);
	int nd;
	const int64_t *dims = ir_attr_ints(c->in, "dims", &nd);
	uint32_t red = 0;
	for (int j = 0; j < nd; j++)
		red |= 1u << dims[j];
	int is_max = c->in->op == OP_REDUCE_MAX;
	int64_t n = type_numel(&c->in->type);
	for (int64_t f = 0; f < n; f++)
		out[f] = is_max ? -INFINITY : 0.0f;
	int64_t na = type_numel(&a->type);
	for (int64_t f = 0; f < na; f++) {
		int64_t ai[IR_MAX_RANK], ri[IR_MAX_RANK];
		unravel(f, &a->type, ai);
		int p = 0;
		for (int i = 0; i < a->type.rank; i++)
			if (!(red & (1u << i)))
				ri[p++] = ai[i];
		int64_t o = ravel(ri, &c->in->type);
		float x = a->data[f];
		if (!is_max)
			out[o] += x;
		else if (isnan(x) || x > out[o])
			out[o] = isnan(out[o]) ? out[o] : x;
	}
}

/* Softmax along dim d: for each position of the other dims, subtract the max
 * (for range, not for meaning), exponentiate and normalise. */
static void run_softmax(const Ctx *c, float *out)
{
	const Tensor *a = arg(c, 0);
	const Type *t = &a->type;
	int d = (int)ir_attr_int(c->in, "dim", 0);
	int64_t s[IR_MAX_RANK];
	strides_of(t, s);
	int64_t n = type_numel(t), len = t->dims[d];
	for (int64_t f = 0; f < n; f++) {
		int64_t idx[IR_MAX_RANK] = {0};
		unravel(f, t, idx);
		if (idx[d] != 0)
			continue;
		float mx = -INFINITY;
		for (int64_t j = 0; j < len; j++)
			mx = fmaxf(mx, a->data[f + j * s[d]]);
		float sum = 0.0f;
		for (int64_t j = 0; j < len; j++) {
			float e = expf(a->data[f + j * s[d]] - mx);
			out[f + j * s[d]] = e;
			sum += e;
		}
		for (int64_t j = 0; j < len; j++)
			out[f + j * s[d]] /= sum;
	}
}

static void run_broadcast(const Ctx *c, float *out)
{
	const Tensor *a = arg(c, 0);
	int nd;
	const int64_t *dims = ir_attr_ints(c->in, "dims", &nd);
	int64_t n = type_numel(&c->in->type);
	for (int64_t f = 0; f < n; f++) {
		int64_t r[IR_MAX_RANK], ai[IR_MAX_RANK];
		unravel(f, &c->in->type, r);
		for (int i = 0; i < a->type.rank; i++)
			ai[i] = a->type.dims[i] == 1 ? 0 : r[dims[i]];
		out[f] = a->data[ravel(ai, &a->type)];
	}
}

static void run_transpose(const Ctx *c, float *out)
{
	const Tensor *a = arg(c, 0);
	int np;
	const int64_t *perm = ir_attr_ints(c->in, "perm", &np);
	int64_t n = type_numel(&c->in->type);
	for (int64_t f = 0; f < n; f++) {
		int64_t r[IR_MAX_RANK], ai[IR_MAX_RANK];
		unravel(f, &c->in->type, r);
		for (int i = 0; i < np; i++)
			ai[perm[i]] = r[i];
		out[f] = a->data[ravel(ai, &a->type)];
	}
}

static void run_slice(const Ctx *c, float *out)
{
	const Tensor *a = arg(c, 0);
	int ns;
	const int64_t *start = ir_attr_ints(c->in, "start", &ns);
	int64_t n = type_numel(&c->in->type);
	for (int64_t f = 0; f < n; f++) {
		int64_t r[IR_MAX_RANK];
		unravel(f, &c->in->type, r);
		for (int i = 0; i < ns; i++)
			r[i] += start[i];
		out[f] = a->data[ravel(r, &a->type)];
	}
}

static void run_concat(const Ctx *c, float *out)
{
	int d = (int)ir_attr_int(c->in, "dim", 0);
	int64_t n = type_numel(&c->in->type);
	for (int64_t f = 0; f < n; f++) {
		int64_t r[IR_MAX_RANK];
		unravel(f, &c->in->type, r);
		int k = 0;
		while (r[d] >= arg(c, k)->type.dims[d]) {
			r[d] -= arg(c, k)->type.dims[d];
			k++;
		}
		out[f] = arg(c, k)->data[ravel(r, &arg(c, k)->type)];
	}
}

static int run_gather(const Ctx *c, float *out)
{
	const Tensor *tab = arg(c, 0), *ix = arg(c, 1);
	int64_t rows = tab->type.dims[0];
	int64_t row = rows ? type_numel(&tab->type) / rows : 0;
	int64_t nb = type_numel(&ix->type);
	for (int64_t b = 0; b < nb; b++) {
		float v = ix->data[b];
		if (!(v >= 0.0f && v < (float)rows)) {
			char what[64];
			snprintf(what, sizeof what, "%g", (double)v);
			return fail(c, "gather index %s out of range", what);
		}
		int64_t r = (int64_t)v;
		memcpy(out + b * row, tab->data + r * row, sizeof(float) * (size_t)row);
	}
	return 0;
}

static void run_one_hot(const Ctx *c, float *out)
{
	const Tensor *ix = arg(c, 0);
	const Type *t = &c->in->type;
	int64_t depth = t->dims[t->rank - 1];
	int64_t nb = type_numel(&ix->type);
	for (int64_t b = 0; b < nb; b++)
		for (int64_t k = 0; k < depth; k++)
			out[b * depth + k] = ix->data[b] == (float)k ? 1.0f : 0.0f;
}

static void run_iota(const Ctx *c, float *out)
{
	int d = (int)ir_attr_int(c->in, "dim", 0);
	int64_t n = type_numel(&c->in->type);
	for (int64_t f = 0; f < n; f++) {
		int64_t r[IR_MAX_RANK];
		unravel(f, &c->in->type, r);
		out[f] = (float)r[d];
	}
}

/* A collective (op, or coll_start's op) on one chip. */
static int run_collective(const Ctx *c, Op op, float *out)
{
	const Tensor *a = arg(c, 0);
	if (op == OP_ALL_GATHER || op == OP_REDUCE_SCATTER || op == OP_ALL_TO_ALL) {
		const Attr *ax = ir_attr(c->in, "axes");
		int64_t group = 1;
		for (int i = 0; ax && ax->kind == ATTR_NAMES && i < ax->n; i++) {
			int k = mesh_axis_index(&c->m->mesh, ax->names[i], strlen(ax->names[i]));
			if (k >= 0)
				group *= (int64_t)c->m->mesh.axes[k].ici * c->m->mesh.axes[k].dcn;
		}
		if (group > 1)
			return fail(c, "%s over a group of more than one chip cannot run in the "
			            "single-chip interpreter", op_name(op));
	}
	memcpy(out, a->data, sizeof(float) * (size_t)type_numel(&a->type));
	return 0;
}

/* Computes c->in into out (numel of its type). */
static int run_inst(const Ctx *c, const Tensor *inputs, int *next_input, float *out)
{
	const Inst *in = c->in;
	int64_t n = type_numel(&in->type);
	switch (in->op) {
	case OP_PARAMETER: {
		const Tensor *t = &inputs[(*next_input)++];
		memcpy(out, t->data, sizeof(float) * (size_t)n);
		return 0;
	}
	case OP_CONSTANT: {
		float v = (float)ir_attr_float(in, "value", 0.0);
		for (int64_t i = 0; i < n; i++)
			out[i] = v;
		return 0;
	}
	case OP_IOTA:
		run_iota(c, out);
		return 0;
	case OP_NEG: case OP_EXP: case OP_LOG: case OP_TANH: case OP_SQRT:
	case OP_RSQRT: case OP_RELU: case OP_GELU: case OP_SIGMOID: case OP_SILU:
		for (int64_t i = 0; i < n; i++)
			out[i] = unary(in->op, arg(c, 0)->data[i]);
		return 0;
	case OP_CONVERT:
		for (int64_t i = 0; i < n; i++)
			out[i] = convert_to(in->type.dtype, arg(c, 0)->data[i]);
		return 0;
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX:
	case OP_MIN: case OP_POW: case OP_CMP_GT: case OP_CMP_EQ:
		for (int64_t i = 0; i < n; i++)
			out[i] = binary(in->op, arg(c, 0)->data[i], arg(c, 1)->data[i]);
		return 0;
	case OP_SELECT:
		for (int64_t i = 0; i < n; i++)
			out[i] = arg(c, 0)->data[i] != 0.0f ? arg(c, 1)->data[i] : arg(c, 2)->data[i];
		return 0;
	case OP_DOT:
		run_dot(c, out);
		return 0;
	case OP_REDUCE_SUM:
	case OP_REDUCE_MAX:
		run_reduce(c, out);
		return 0;
	case OP_SOFTMAX:
		run_softmax(c, out);
		return 0;
	case OP_BROADCAST:
		run_broadcast(c, out);
		return 0;
	case OP_RESHAPE:
	case OP_DMA_START:
	case OP_DMA_DONE:
	case OP_COLL_DONE:
		memcpy(out, arg(c, 0)->data, sizeof(float) * (size_t)n);
		return 0;
	case OP_TRANSPOSE:
		run_transpose(c, out);
		return 0;
	case OP_SLICE:
		run_slice(c, out);
		return 0;
	case OP_CONCAT:
		run_concat(c, out);
		return 0;
	case OP_GATHER:
		return run_gather(c, out);
	case OP_ONE_HOT:
		run_one_hot(c, out);
		return 0;
	case OP_ALL_REDUCE:
	case OP_ALL_GATHER:
	case OP_REDUCE_SCATTER:
	case OP_ALL_TO_ALL:
	case OP_COLLECTIVE_PERMUTE:
		return run_collective(c, in->op, out);
	case OP_COLL_START: {
		const char *cop = ir_attr_str(in, "op", "");
		int k = op_from_name(cop, strlen(cop));
		if (k < 0)
			return fail(c, "coll_start names no collective ('%s')", cop);
		return run_collective(c, (Op)k, out);
	}
	case OP_COUNT:
		break;
	}
	ir_die("interp: op %d", (int)in->op);
}

static void free_values(Tensor *vals, int n)
{
	for (int i = 0; i < n; i++)
		free(vals[i].data);
	free(vals);
}

int ir_interp(const Module *m, const Tensor *inputs, int ninputs,
              const InterpOptions *opt, Tensor *outputs, Tensor **values, Diag *d)
{
	if (values)
		*values = NULL;
	int nparams = 0;
	for (int i = 0; i < m->ninsts; i++)
		if (m->insts[i].op == OP_PARAMETER) {
			const Inst *in = &m->insts[i];
			if (nparams < ninputs) {
				const Type *t = &inputs[nparams].type;
				int same = t->rank == in->type.rank;
				for (int k = 0; same && k < t->rank; k++)
					same = t->dims[k] == in->type.dims[k];
				if (!same || !inputs[nparams].data) {
					diag_error(d, m->file, in->line, in->col,
					           "input %d (parameter %%%d '%s') has the wrong shape",
					           nparams, i, ir_attr_str(in, "name", "?"));
					return -1;
				}
			}
			nparams++;
		}
	if (nparams != ninputs) {
		diag_error(d, m->file, 0, 0, "module '%s' has %d parameters, given %d inputs",
		           m->name, nparams, ninputs);
		return -1;
	}
	Tensor *vals = calloc(m->ninsts > 0 ? (size_t)m->ninsts : 1, sizeof *vals);
	if (!vals)
		ir_die("out of memory");
	int next_input = 0;
	for (int i = 0; i < m->ninsts; i++) {
		const Inst *in = &m->insts[i];
		Ctx c = {m, in, vals, opt, d, NULL};
		/* Re-check the shape rule so that a module that skipped the verifier
		 * cannot make the index arithmetic read out of bounds. */
		char err[256];
		Type t;
		if (in->op != OP_PARAMETER) {
			for (int k = 0; k < in->nargs; k++)
				if (in->args[k] < 0 || in->args[k] >= i) {
					diag_error(d, m->file, in->line, in->col,
					           "%%%d: operand %d is not an earlier value", i, k);
					free_values(vals, m->ninsts);
					return -1;
				}
			int bad = ir_infer_type(m, in, &t, err, sizeof err) != 0;
			if (bad || !type_same_shape(&t, &in->type)) {
				diag_error(d, m->file, in->line, in->col, "%%%d = %s: %s", i,
				           op_name(in->op),
				           bad ? err : "result type differs from its shape rule");
				free_values(vals, m->ninsts);
				return -1;
			}
		}
		int64_t n = type_numel(&in->type);
		vals[i].type = in->type;
		vals[i].data = malloc(sizeof(float) * (size_t)(n ? n : 1));
		if (!vals[i].data)
			ir_die("out of memory");
		if (run_inst(&c, inputs, &next_input, vals[i].data) != 0) {
			free_values(vals, m->ninsts);
			return -1;
		}
		if (opt && opt->bf16_round && in->type.dtype == DT_BF16)
			for (int64_t k = 0; k < n; k++)
				vals[i].data[k] = bf16_round(vals[i].data[k]);
	}
	for (int o = 0; o < m->noutputs; o++) {
		const Tensor *v = &vals[m->outputs[o]];
		int64_t n = type_numel(&v->type);
		outputs[o].type = v->type;
		outputs[o].data = malloc(sizeof(float) * (size_t)(n ? n : 1));
		if (!outputs[o].data)
			ir_die("out of memory");
		memcpy(outputs[o].data, v->data, sizeof(float) * (size_t)n);
	}
	if (values)
		*values = vals;
	else
		free_values(vals, m->ninsts);
	return 0;
}

int ir_interp_inst(const Module *m, ValueId v, const Tensor *args, float *out,
                   const InterpOptions *opt, Diag *d)
{
	if (v < 0 || v >= m->ninsts)
		ir_die("ir_interp_inst: value %d out of range", (int)v);
	const Inst *in = &m->insts[v];
	Ctx c = {m, in, NULL, opt, d, args};
	if (in->op == OP_PARAMETER) {
		diag_error(d, m->file, in->line, in->col,
		           "%%%d: a parameter has no computation (the caller supplies it)", (int)v);
		return -1;
	}
	for (int k = 0; k < in->nargs; k++)
		if (!args[k].data || !type_same_shape(&args[k].type, &m->insts[in->args[k]].type)) {
			diag_error(d, m->file, in->line, in->col,
			           "%%%d = %s: operand %d has the wrong shape", (int)v,
			           op_name(in->op), k);
			return -1;
		}
	char err[256];
	Type t;
	int bad = ir_infer_type(m, in, &t, err, sizeof err) != 0;
	if (bad || !type_same_shape(&t, &in->type)) {
		diag_error(d, m->file, in->line, in->col, "%%%d = %s: %s", (int)v, op_name(in->op),
		           bad ? err : "result type differs from its shape rule");
		return -1;
	}
	int unused = 0;
	if (run_inst(&c, NULL, &unused, out) != 0)
		return -1;
	if (opt && opt->bf16_round && in->type.dtype == DT_BF16) {
		int64_t n = type_numel(&in->type);
		for (int64_t k = 0; k < n; k++)
			out[k] = bf16_round(out[k]);
	}
	return 0;
}
