/*
 * Shape rules: the result type of every op from its operands and attributes.
 * The builder uses them to infer types, the verifier to check parsed ones.
 * Ops whose result is not determined by operands and attributes (leaves,
 * convert, broadcast, reshape, one_hot) check the declared type instead.
 * Shardings are not inferred here: the shard pass owns them.
 */
#include "ir.h"

#include <string.h>

#define FAIL(...) do { snprintf(err, errn, __VA_ARGS__); return -1; } while (0)

static int check_dims_attr(const Inst *in, const char *key, int rank, int exact,
                           const int64_t **out, int *n, char *err, size_t errn)
{
	*out = ir_attr_ints(in, key, n);
	if (!*out && exact >= 0)
		FAIL("%s needs attribute %s", op_name(in->op), key);
	if (exact > 0 && *n != exact)
		FAIL("%s attribute %s needs %d value%s, has %d", op_name(in->op), key,
		     exact, exact == 1 ? "" : "s", *n);
	uint32_t seen = 0;
	for (int i = 0; i < *n; i++) {
		int64_t d = (*out)[i];
		if (d < 0 || d >= rank)
			FAIL("%s attribute %s: dim %lld out of range for rank %d",
			     op_name(in->op), key, (long long)d, rank);
		if (seen & (1u << d))
			FAIL("%s attribute %s: dim %lld repeated", op_name(in->op), key, (long long)d);
		seen |= 1u << d;
	}
	return 0;
}

static int elemwise(const Module *m, const Inst *in, Type *out, char *err, size_t errn)
{
	int first = in->op == OP_SELECT ? 1 : 0;
	const Type *t0 = &m->insts[in->args[first]].type;
	for (int i = 0; i < in->nargs; i++) {
		const Type *t = &m->insts[in->args[i]].type;
		if (t->rank != t0->rank || memcmp(t->dims, t0->dims, sizeof(int64_t) * (size_t)t->rank))
			FAIL("%s operands differ in shape", op_name(in->op));
		if (i >= first && t->dtype != t0->dtype && in->op != OP_CONVERT)
			FAIL("%s operands differ in dtype (%s, %s)", op_name(in->op),
			     dtype_name(t0->dtype), dtype_name(t->dtype));
	}
	if (in->op == OP_SELECT && m->insts[in->args[0]].type.dtype != DT_PRED)
		FAIL("select predicate must be pred, is %s",
		     dtype_name(m->insts[in->args[0]].type.dtype));
	*out = *t0;
	if (in->op == OP_CMP_GT || in->op == OP_CMP_EQ)
		out->dtype = DT_PRED;
	if (in->op == OP_CONVERT)
		out->dtype = in->type.dtype;
	if (in->op != OP_CONVERT && in->op != OP_SELECT && in->op != OP_CMP_EQ &&
	    !dtype_is_float(t0->dtype) && in->op != OP_ADD && in->op != OP_SUB &&
	    in->op != OP_MUL && in->op != OP_MAX && in->op != OP_MIN && in->op != OP_NEG &&
	    in->op != OP_CMP_GT)
		FAIL("%s needs a floating-point operand, has %s", op_name(in->op),
		     dtype_name(t0->dtype));
	return 0;
}

static int dot(const Module *m, const Inst *in, Type *out, char *err, size_t errn)
{
	const Type *a = &m->insts[in->args[0]].type, *b = &m->insts[in->args[1]].type;
	const int64_t *lc, *rc, *lb, *rb;
	int nlc, nrc, nlb, nrb;
	if (check_dims_attr(in, "lhs_contract", a->rank, 0, &lc, &nlc, err, errn) ||
	    check_dims_attr(in, "rhs_contract", b->rank, 0, &rc, &nrc, err, errn) ||
	    check_dims_attr(in, "lhs_batch", a->rank, -1, &lb, &nlb, err, errn) ||
	    check_dims_attr(in, "rhs_batch", b->rank, -1, &rb, &nrb, err, errn))
		return -1;
	if (nlc != nrc)
		FAIL("dot has %d lhs and %d rhs contracting dims", nlc, nrc);
	if (nlb != nrb)
		FAIL("dot has %d lhs and %d rhs batch dims", nlb, nrb);
	if (!dtype_is_float(a->dtype) || !dtype_is_float(b->dtype))
		FAIL("dot needs floating-point operands");
	uint32_t used_a = 0, used_b = 0;
	for (int i = 0; i < nlc; i++) {
		if (a->dims[lc[i]] != b->dims[rc[i]])
			FAIL("dot contracting dims differ: lhs dim %lld is %lld, rhs dim %lld is %lld",
			     (long long)lc[i], (long long)a->dims[lc[i]], (long long)rc[i],
			     (long long)b->dims[rc[i]]);
		used_a |= 1u << lc[i];
		used_b |= 1u << rc[i];
	}
	for (int i = 0; i < nlb; i++) {
		if (a->dims[lb[i]] != b->dims[rb[i]])
			FAIL("dot batch dims differ: lhs dim %lld is %lld, rhs dim %lld is %lld",
			     (long long)lb[i], (long long)a->dims[lb[i]], (long long)rb[i],
			     (long long)b->dims[rb[i]]);
		if ((used_a & (1u << lb[i])) || (used_b & (1u << rb[i])))
			FAIL("dot dim is both batch and contracting");
		used_a |= 1u << lb[i];
		used_b |= 1u << rb[i];
	}
	memset(out, 0, sizeof *out);
	out->dtype = in->type.dtype; /* the accumulation dtype is the caller's choice */
	if (!dtype_is_float(out->dtype))
		FAIL("dot result must be floating-point");
	int r = nlb + (a->rank - nlc - nlb) + (b->rank - nrc - nrb);
	if (r > IR_MAX_RANK)
		FAIL("dot result rank %d exceeds %d", r, IR_MAX_RANK);
	r = 0;
	for (int i = 0; i < nlb; i++)
		out->dims[r++] = a->dims[lb[i]];
	for (int i = 0; i < a->rank; i++)
		if (!(used_a & (1u << i)))
			out->dims[r++] = a->dims[i];
	for (int i = 0; i < b->rank; i++)
		if (!(used_b & (1u << i)))
			out->dims[r++] = b->dims[i];
	if (r > IR_MAX_RANK)
		FAIL("dot result rank %d exceeds %d", r, IR_MAX_RANK);
	out->rank = r;
	return 0;
}

static int collective(const Module *m, const Inst *in, const Type *a, Type *out,
                      char *err, size_t errn)
{
	const Attr *ax = ir_attr(in, "axes");
	if (!ax || ax->kind != ATTR_NAMES || ax->n == 0)
		FAIL("%s needs attribute axes=[...] naming mesh axes", op_name(in->op));
	int64_t group = 1;
	for (int i = 0; i < ax->n; i++) {
		int k = mesh_axis_index(&m->mesh, ax->names[i], strlen(ax->names[i]));
		if (k < 0)
			FAIL("%s: mesh has no axis '%s'", op_name(in->op), ax->names[i]);
		group *= (int64_t)m->mesh.axes[k].ici * m->mesh.axes[k].dcn;
	}
	*out = *a;
	memset(out->shard, 0, sizeof out->shard);
	const int64_t *d;
	int n;
	switch (in->op) {
	case OP_ALL_GATHER:
		if (check_dims_attr(in, "dim", a->rank, 1, &d, &n, err, errn))
			return -1;
		out->dims[d[0]] *= group;
		break;
	case OP_REDUCE_SCATTER:
		if (check_dims_attr(in, "dim", a->rank, 1, &d, &n, err, errn))
			return -1;
		if (a->dims[d[0]] % group)
			FAIL("reduce_scatter: dim %lld of size %lld is not divisible by %lld",
			     (long long)d[0], (long long)a->dims[d[0]], (long long)group);
		out->dims[d[0]] /= group;
		break;
	case OP_ALL_TO_ALL: {
		const int64_t *c;
		int nc;
		if (check_dims_attr(in, "split_dim", a->rank, 1, &d, &n, err, errn) ||
		    check_dims_attr(in, "concat_dim", a->rank, 1, &c, &nc, err, errn))
			return -1;
		if (a->dims[d[0]] % group)
			FAIL("all_to_all: split dim %lld of size %lld is not divisible by %lld",
			     (long long)d[0], (long long)a->dims[d[0]], (long long)group);
		out->dims[d[0]] /= group;
		out->dims[c[0]] *= group;
		break;
	}
	default:
		break;
	}
	return 0;
}

int ir_infer_type(const Module *m, const Inst *in, Type *out, char *err, size_t errn)
{
	const OpInfo *oi = &ir_ops[in->op];
	if (oi->nargs >= 0 && in->nargs != oi->nargs)
		FAIL("%s takes %d operand%s, has %d", oi->name, oi->nargs,
		     oi->nargs == 1 ? "" : "s", in->nargs);
	if (oi->nargs < 0 && in->nargs < 1)
		FAIL("%s takes at least one operand", oi->name);
	const Type *a = in->nargs ? &m->insts[in->args[0]].type : NULL;
	const int64_t *d;
	int n;

	if (oi->flags & OPF_ELEMWISE)
		return elemwise(m, in, out, err, errn);
	if (oi->flags & OPF_COLLECTIVE)
		return collective(m, in, a, out, err, errn);

	switch (in->op) {
	case OP_PARAMETER:
	case OP_CONSTANT:
		*out = in->type;
		return 0;
	case OP_IOTA:
		if (check_dims_attr(in, "dim", in->type.rank, 1, &d, &n, err, errn))
			return -1;
		*out = in->type;
		return 0;
	case OP_DOT:
		return dot(m, in, out, err, errn);
	case OP_REDUCE_SUM:
	case OP_REDUCE_MAX: {
		if (check_dims_attr(in, "dims", a->rank, 0, &d, &n, err, errn))
			return -1;
		uint32_t red = 0;
		for (int i = 0; i < n; i++)
			red |= 1u << d[i];
		memset(out, 0, sizeof *out);
		out->dtype = a->dtype;
		for (int i = 0; i < a->rank; i++)
			if (!(red & (1u << i)))
				out->dims[out->rank++] = a->dims[i];
		return 0;
	}
	case OP_SOFTMAX:
		if (check_dims_attr(in, "dim", a->rank, 1, &d, &n, err, errn))
			return -1;
		if (!dtype_is_float(a->dtype))
			FAIL("softmax needs a floating-point operand");
		*out = *a;
		memset(out->shard, 0, sizeof out->shard);
		return 0;
	case OP_BROADCAST: {
		const Type *t = &in->type;
		if (check_dims_attr(in, "dims", t->rank, a->rank, &d, &n, err, errn))
			return -1;
		if (n != a->rank)
			FAIL("broadcast dims has %d entries, operand rank is %d", n, a->rank);
		for (int i = 0; i < n; i++) {
			if (i > 0 && d[i] <= d[i - 1])
				FAIL("broadcast dims must increase");
			if (a->dims[i] != t->dims[d[i]] && a->dims[i] != 1)
				FAIL("broadcast: operand dim %d is %lld, result dim %lld is %lld", i,
				     (long long)a->dims[i], (long long)d[i], (long long)t->dims[d[i]]);
		}
		if (t->dtype != a->dtype)
			FAIL("broadcast changes dtype from %s to %s", dtype_name(a->dtype),
			     dtype_name(t->dtype));
		*out = *t;
		return 0;
	}
	case OP_RESHAPE:
		if (type_numel(&in->type) != type_numel(a))
			FAIL("reshape from %lld to %lld elements", (long long)type_numel(a),
			     (long long)type_numel(&in->type));
		if (in->type.dtype != a->dtype)
			FAIL("reshape changes dtype from %s to %s", dtype_name(a->dtype),
			     dtype_name(in->type.dtype));
		*out = in->type;
		return 0;
	case OP_TRANSPOSE: {
		d = ir_attr_ints(in, "perm", &n);
		if (!d || n != a->rank)
			FAIL("transpose needs perm with %d entries", a->rank);
		uint32_t seen = 0;
		memset(out, 0, sizeof *out);
		out->dtype = a->dtype;
		out->rank = a->rank;
		for (int i = 0; i < n; i++) {
			if (d[i] < 0 || d[i] >= a->rank || (seen & (1u << d[i])))
				FAIL("transpose perm is not a permutation of 0..%d", a->rank - 1);
			seen |= 1u << d[i];
			out->dims[i] = a->dims[d[i]];
		}
		return 0;
	}
	case OP_SLICE: {
		int ns, nl;
		const int64_t *s = ir_attr_ints(in, "start", &ns);
		const int64_t *l = ir_attr_ints(in, "limit", &nl);
		if (!s || !l || ns != a->rank || nl != a->rank)
			FAIL("slice needs start and limit with %d entries each", a->rank);
		memset(out, 0, sizeof *out);
		out->dtype = a->dtype;
		out->rank = a->rank;
		for (int i = 0; i < a->rank; i++) {
			if (s[i] < 0 || l[i] < s[i] || l[i] > a->dims[i])
				FAIL("slice [%lld, %lld) out of range for dim %d of size %lld",
				     (long long)s[i], (long long)l[i], i, (long long)a->dims[i]);
			out->dims[i] = l[i] - s[i];
		}
		return 0;
	}
	case OP_CONCAT: {
		if (check_dims_attr(in, "dim", a->rank, 1, &d, &n, err, errn))
			return -1;
		*out = *a;
		memset(out->shard, 0, sizeof out->shard);
		for (int k = 1; k < in->nargs; k++) {
			const Type *t = &m->insts[in->args[k]].type;
			if (t->rank != a->rank || t->dtype != a->dtype)
				FAIL("concat operand %d differs in rank or dtype", k);
			for (int i = 0; i < a->rank; i++)
				if (i != d[0] && t->dims[i] != a->dims[i])
					FAIL("concat operand %d differs in dim %d", k, i);
			out->dims[d[0]] += t->dims[d[0]];
		}
		return 0;
	}
	case OP_GATHER: {
		const Type *ix = &m->insts[in->args[1]].type;
		if (a->rank < 1)
			FAIL("gather table must have rank >= 1");
		if (dtype_is_float(ix->dtype))
			FAIL("gather indices must be integers, are %s", dtype_name(ix->dtype));
		if (ix->rank + a->rank - 1 > IR_MAX_RANK)
			FAIL("gather result rank too large");
		memset(out, 0, sizeof *out);
		out->dtype = a->dtype;
		for (int i = 0; i < ix->rank; i++)
			out->dims[out->rank++] = ix->dims[i];
		for (int i = 1; i < a->rank; i++)
			out->dims[out->rank++] = a->dims[i];
		return 0;
	}
	case OP_ONE_HOT: {
		const Type *t = &in->type;
		if (dtype_is_float(a->dtype))
			FAIL("one_hot indices must be integers, are %s", dtype_name(a->dtype));
		if (t->rank != a->rank + 1)
			FAIL("one_hot result rank must be operand rank + 1");
		for (int i = 0; i < a->rank; i++)
			if (t->dims[i] != a->dims[i])
				FAIL("one_hot result dim %d differs from the indices", i);
		*out = *t;
		return 0;
	}
	case OP_DMA_START:
	case OP_DMA_DONE:
	case OP_COLL_DONE:
		*out = *a;
		return 0;
	case OP_COLL_START: {
		const char *cop = ir_attr_str(in, "op", NULL);
		int k = cop ? op_from_name(cop, strlen(cop)) : -1;
		if (k < 0 || !(ir_ops[k].flags & OPF_COLLECTIVE))
			FAIL("coll_start needs op=\"<collective>\"");
		Inst tmp = *in;
		tmp.op = (Op)k;
		return collective(m, &tmp, a, out, err, errn);
	}
	default:
		break;
	}
	FAIL("no shape rule for %s", oi->name);
}
