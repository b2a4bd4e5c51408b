/*
 * The builder: append instructions with inferred types. Frontends and passes
 * build IR only through these calls (or ir_append), so every built module
 * satisfies the shape rules by construction; a violation is a bug in the
 * caller and aborts with the rule's message.
 */
#include "ir.h"

#include <string.h>

static ValueId args_inst(Module *m, Op op, int nargs, const ValueId *args, Inst *in)
{
	memset(in, 0, sizeof *in);
	in->op = op;
	in->nargs = nargs;
	if (nargs) {
		in->args = arena_alloc(&m->arena, sizeof(ValueId) * (size_t)nargs);
		for (int i = 0; i < nargs; i++) {
			if (args[i] < 0 || args[i] >= m->ninsts)
				ir_die("%s operand %d is %d, not a value of the module", op_name(op), i,
				       args[i]);
			in->args[i] = args[i];
		}
	}
	in->unit = ir_ops[op].unit;
	return 0;
}

/* Infers the type of the last-appended instruction, aborting on a bad one. */
static ValueId finish(Module *m, ValueId v)
{
	char err[256];
	Type t;
	Inst *in = &m->insts[v];
	if (ir_infer_type(m, in, &t, err, sizeof err) != 0)
		ir_die("builder: %%%d = %s: %s", v, op_name(in->op), err);
	in->type = t;
	return v;
}

static ValueId build(Module *m, Op op, int nargs, const ValueId *args, const Type *t)
{
	Inst in;
	args_inst(m, op, nargs, args, &in);
	if (t)
		in.type = *t;
	return ir_append(m, &in);
}

ValueId ir_param(Module *m, const char *name, Type t)
{
	ValueId v = build(m, OP_PARAMETER, 0, NULL, &t);
	ir_set_str(m, v, "name", name);
	return v;
}

ValueId ir_const(Module *m, double value, Type t)
{
	ValueId v = build(m, OP_CONSTANT, 0, NULL, &t);
	ir_set_float(m, v, "value", value);
	return v;
}

ValueId ir_iota(Module *m, Type t, int dim)
{
	ValueId v = build(m, OP_IOTA, 0, NULL, &t);
	int64_t d = dim;
	ir_set_ints(m, v, "dim", 1, &d);
	return finish(m, v);
}

ValueId ir_unary(Module *m, Op op, ValueId a)
{
	return finish(m, build(m, op, 1, &a, NULL));
}

ValueId ir_binary(Module *m, Op op, ValueId a, ValueId b)
{
	ValueId args[2] = {a, b};
	return finish(m, build(m, op, 2, args, NULL));
}

ValueId ir_select(Module *m, ValueId p, ValueId a, ValueId b)
{
	ValueId args[3] = {p, a, b};
	return finish(m, build(m, OP_SELECT, 3, args, NULL));
}

ValueId ir_convert(Module *m, ValueId a, DType to)
{
	Type t = m->insts[a].type;
	t.dtype = to;
	return finish(m, build(m, OP_CONVERT, 1, &a, &t));
}

ValueId ir_dot(Module *m, ValueId a, ValueId b, int nc, const int64_t *lc,
               const int64_t *rc, int nb, const int64_t *lb, const int64_t *rb)
{
	ValueId args[2] = {a, b};
	Type t = {0};
	t.dtype = m->insts[a].type.dtype;
	ValueId v = build(m, OP_DOT, 2, args, &t);
	ir_set_ints(m, v, "lhs_contract", nc, lc);
	ir_set_ints(m, v, "rhs_contract", nc, rc);
	if (nb) {
		ir_set_ints(m, v, "lhs_batch", nb, lb);
		ir_set_ints(m, v, "rhs_batch", nb, rb);
	}
	return finish(m, v);
}

ValueId ir_matmul(Module *m, ValueId a, ValueId b)
{
	int64_t lc = m->insts[a].type.rank - 1, rc = 0;
	return ir_dot(m, a, b, 1, &lc, &rc, 0, NULL, NULL);
}

ValueId ir_reduce(Module *m, Op op, ValueId a, int ndims, const int64_t *dims)
{
	ValueId v = build(m, op, 1, &a, NULL);
	ir_set_ints(m, v, "dims", ndims, dims);
	return finish(m, v);
}

ValueId ir_softmax(Module *m, ValueId a, int dim)
{
	ValueId v = build(m, OP_SOFTMAX, 1, &a, NULL);
	int64_t d = dim;
	ir_set_ints(m, v, "dim", 1, &d);
	return finish(m, v);
}

ValueId ir_broadcast(Module *m, ValueId a, Type t, int ndims, const int64_t *dims)
{
	ValueId v = build(m, OP_BROADCAST, 1, &a, &t);
	ir_set_ints(m, v, "dims", ndims, dims);
	return finish(m, v);
}

ValueId ir_reshape(Module *m, ValueId a, int rank, const int64_t *dims)
{
	Type t = {0};
	t.dtype = m->insts[a].type.dtype;
	t.rank = rank;
	memcpy(t.dims, dims, sizeof(int64_t) * (size_t)rank);
	return finish(m, build(m, OP_RESHAPE, 1, &a, &t));
}

ValueId ir_transpose(Module *m, ValueId a, const int64_t *perm)
{
	ValueId v = build(m, OP_TRANSPOSE, 1, &a, NULL);
	ir_set_ints(m, v, "perm", m->insts[a].type.rank, perm);
	return finish(m, v);
}

ValueId ir_slice(Module *m, ValueId a, const int64_t *start, const int64_t *limit)
{
	int r = m->insts[a].type.rank;
	ValueId v = build(m, OP_SLICE, 1, &a, NULL);
	ir_set_ints(m, v, "start", r, start);
	ir_set_ints(m, v, "limit", r, limit);
	return finish(m, v);
}

ValueId ir_concat(Module *m, int n, const ValueId *xs, int dim)
{
	ValueId v = build(m, OP_CONCAT, n, xs, NULL);
	int64_t d = dim;
	ir_set_ints(m, v, "dim", 1, &d);
	return finish(m, v);
}

ValueId ir_gather(Module *m, ValueId table, ValueId idx)
{
	return ir_binary(m, OP_GATHER, table, idx);
}

ValueId ir_one_hot(Module *m, ValueId idx, int64_t depth, DType dt)
{
	Type t = m->insts[idx].type;
	memset(t.shard, 0, sizeof t.shard);
	t.dtype = dt;
	if (t.rank >= IR_MAX_RANK)
		ir_die("builder: one_hot of rank-%d indices exceeds rank %d", t.rank, IR_MAX_RANK);
	t.dims[t.rank++] = depth;
	return finish(m, build(m, OP_ONE_HOT, 1, &idx, &t));
}

ValueId ir_collective(Module *m, Op op, ValueId a, uint32_t axes, int dim)
{
	ValueId v = build(m, op, 1, &a, NULL);
	const char *names[IR_MAX_MESH_AXES];
	int n = 0;
	for (int i = 0; i < m->mesh.naxes; i++)
		if (axes & (1u << i))
			names[n++] = m->mesh.axes[i].name;
	ir_set_names(m, v, "axes", n, names);
	int64_t d = dim;
	if (op == OP_ALL_GATHER || op == OP_REDUCE_SCATTER)
		ir_set_ints(m, v, "dim", 1, &d);
	if (op == OP_ALL_TO_ALL) {
		ir_set_ints(m, v, "split_dim", 1, &d);
		ir_set_ints(m, v, "concat_dim", 1, &d);
	}
	if (op == OP_COLLECTIVE_PERMUTE) {
		int64_t one = 1;
		ir_set_ints(m, v, "shift", 1, &one);
	}
	return finish(m, v);
}
