/*
 * Reductions (reduce_sum, reduce_max over any set of dims) and softmax.
 *
 * A reduction initialises its result with the identity (0, -inf) and walks
 * the operand once in row-major order, folding each element into the result
 * element it maps to. Each result element therefore sums in increasing
 * index order, exactly as ir/interp.c, with no fast-math: when the innermost
 * dim is kept the loop is contiguous in both buffers and vectorises without
 * reassociation; when it is reduced, the running value stays in a register.
 *
 * Softmax along dim d loops over every other position and makes three passes
 * along d (max; exp and sum; divide), in interp.c's order.
 */
#include "cg.h"

#include <math.h>

typedef struct RedCtx {
	LLVMValueRef in, out;
	int is_max;
	int64_t len, stride; /* softmax: the dim's extent and stride */
} RedCtx;

static void reduce_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	RedCtx *r = ctx;
	LLVMBuilderRef b = c->b;
	LLVMValueRef x = cg_load(c, r->in, offs[0]);
	LLVMValueRef acc = cg_load(c, r->out, offs[1]);
	LLVMValueRef v;
	if (!r->is_max) {
		v = LLVMBuildFAdd(b, acc, x, "");
	} else {
		/* interp.c: if (isnan(x) || x > acc) acc = isnan(acc) ? acc : x */
		LLVMValueRef take = LLVMBuildOr(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""),
		                                LLVMBuildFCmp(b, LLVMRealOGT, x, acc, ""), "");
		LLVMValueRef keep = LLVMBuildFCmp(b, LLVMRealUNO, acc, acc, "");
		v = LLVMBuildSelect(b, take, LLVMBuildSelect(b, keep, acc, x, ""), acc, "");
	}
	cg_store(c, v, r->out, offs[1]);
}

int cg_reduce(CG *c, const Inst *in, LLVMValueRef out, LLVMValueRef a)
{
	const Type *at = &c->m->insts[in->args[0]].type;
	int nd;
	const int64_t *dims = ir_attr_ints(in, "dims", &nd);
	uint32_t red = 0;
	for (int j = 0; j < nd; j++)
		red |= 1u << dims[j];
	int is_max = in->op == OP_REDUCE_MAX;
	int64_t n = type_numel(&in->type);

	Loop l;
	LLVMValueRef i = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, n), cg_i64(c, 1), "init");
	cg_store(c, cg_f32(c, is_max ? -INFINITY : 0.0), out, i);
	cg_loop_end(c, &l);

	int64_t st[2][IR_MAX_RANK], so[IR_MAX_RANK];
	cg_strides(at, st[0]);
	cg_strides(&in->type, so);
	int p = 0;
	for (int d = 0; d < at->rank; d++)
		st[1][d] = (red & (1u << d)) ? 0 : so[p++];
	RedCtx r = {a, out, is_max, 0, 0};
	LLVMValueRef z[2] = {cg_i64(c, 0), cg_i64(c, 0)};
	cg_nest(c, at->rank, at->dims, 2, (const int64_t (*)[IR_MAX_RANK])st, z, reduce_body, &r);
	cg_round_result(c, in, out, n);
	return 0;
}

static void softmax_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	RedCtx *r = ctx;
	LLVMBuilderRef b = c->b;
	LLVMValueRef base = offs[0];
	LLVMValueRef mx = cg_alloca(c, c->f32, NULL, 4, "max");
	LLVMValueRef sum = cg_alloca(c, c->f32, NULL, 4, "sum");
	LLVMBuildStore(b, cg_f32(c, -INFINITY), mx);
	LLVMBuildStore(b, cg_f32(c, 0.0), sum);
	Loop l;
	LLVMValueRef j, off;

	j = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, r->len), cg_i64(c, 1), "max");
	off = LLVMBuildNSWAdd(b, base, LLVMBuildNSWMul(b, j, cg_i64(c, r->stride), ""), "");
	LLVMValueRef args[2] = {LLVMBuildLoad2(b, c->f32, mx, ""), cg_load(c, r->in, off)};
	LLVMBuildStore(b, cg_intrinsic(c, "llvm.maxnum", c->f32, args, 2), mx);
	cg_loop_end(c, &l);

	LLVMValueRef m = LLVMBuildLoad2(b, c->f32, mx, "");
	j = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, r->len), cg_i64(c, 1), "exp");
	off = LLVMBuildNSWAdd(b, base, LLVMBuildNSWMul(b, j, cg_i64(c, r->stride), ""), "");
	LLVMValueRef x = LLVMBuildFSub(b, cg_load(c, r->in, off), m, "");
	LLVMValueRef e = cg_libm(c, "expf", &x, 1);
	cg_store(c, e, r->out, off);
	LLVMBuildStore(b, LLVMBuildFAdd(b, LLVMBuildLoad2(b, c->f32, sum, ""), e, ""), sum);
	cg_loop_end(c, &l);

	LLVMValueRef s = LLVMBuildLoad2(b, c->f32, sum, "");
	j = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, r->len), cg_i64(c, 1), "norm");
	off = LLVMBuildNSWAdd(b, base, LLVMBuildNSWMul(b, j, cg_i64(c, r->stride), ""), "");
	cg_store(c, LLVMBuildFDiv(b, cg_load(c, r->out, off), s, ""), r->out, off);
	cg_loop_end(c, &l);
}

int cg_softmax(CG *c, const Inst *in, LLVMValueRef out, LLVMValueRef a)
{
	const Type *t = &in->type;
	int d = (int)ir_attr_int(in, "dim", 0);
	int64_t s[IR_MAX_RANK], ext[IR_MAX_RANK], st[1][IR_MAX_RANK];
	cg_strides(t, s);
	int q = 0;
	for (int i = 0; i < t->rank; i++)
		if (i != d) {
			ext[q] = t->dims[i];
			st[0][q++] = s[i];
		}
	RedCtx r = {a, out, 0, t->dims[d], s[d]};
	LLVMValueRef z = cg_i64(c, 0);
	cg_nest(c, q, ext, 1, (const int64_t (*)[IR_MAX_RANK])st, &z, softmax_body, &r);
	cg_round_result(c, in, out, type_numel(t));
	return 0;
}
