/*
 * Lowering of a tiled module to LLVM IR: the driver, the emission helpers,
 * the elementwise kernels (with fusion of single-use producers, a dot among
 * them as the kernel's main loop and the tree as its epilogue), the layout
 * copies, kernel sharing between identical values, and the whole-module
 * entry. Dots are in cg_matmul.c, reductions and softmax in cg_reduce.c,
 * optimisation and the JIT in jit.c.
 *
 * Each value v with a kernel gets two functions: an internal
 * podsim_k<v>_<op>.impl(ptr noalias out, ptr noalias in0, ...) holding the
 * loops, and the exported podsim_k<v>_<op>(ptr out, ptr ins) that unpacks an
 * array of input pointers (one C signature for every kernel). The entry
 * podsim_entry(ptr bufs) calls the impls in instruction order. Scalar
 * numerics follow ir/interp.c exactly (same libm calls, same evaluation
 * order, no fast-math), except the dot accumulation (cg_matmul.c).
 */
#include "cg.h"

#include <llvm-c/Analysis.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Emission helpers ---------------------------------------------------- */

LLVMValueRef cg_i64(CG *c, int64_t x)
{
	return LLVMConstInt(c->i64, (unsigned long long)x, 1);
}

LLVMValueRef cg_f32(CG *c, double x)
{
	return LLVMConstReal(c->f32, x);
}

LLVMValueRef cg_gep(CG *c, LLVMValueRef p, LLVMValueRef off)
{
	return LLVMBuildInBoundsGEP2(c->b, c->f32, p, &off, 1, "");
}

LLVMValueRef cg_load(CG *c, LLVMValueRef p, LLVMValueRef off)
{
	LLVMValueRef l = LLVMBuildLoad2(c->b, c->f32, cg_gep(c, p, off), "");
	LLVMSetAlignment(l, 4);
	return l;
}

void cg_store(CG *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef off)
{
	LLVMValueRef s = LLVMBuildStore(c->b, v, cg_gep(c, p, off));
	LLVMSetAlignment(s, 4);
}

LLVMValueRef cg_min(CG *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");
}

LLVMValueRef cg_alloca(CG *c, LLVMTypeRef t, LLVMValueRef n, unsigned align,
                       const char *name)
{
	LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
	LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
	if (first)
		LLVMPositionBuilderBefore(eb, first);
	else
		LLVMPositionBuilderAtEnd(eb, c->entry);
	LLVMValueRef a = n ? LLVMBuildArrayAlloca(eb, t, n, name) : LLVMBuildAlloca(eb, t, name);
	LLVMSetAlignment(a, align);
	LLVMDisposeBuilder(eb);
	return a;
}

LLVMValueRef cg_loop_begin(CG *c, Loop *l, LLVMValueRef lo, LLVMValueRef hi,
                           LLVMValueRef step, const char *name)
{
	l->slot = cg_alloca(c, c->i64, NULL, 8, name);
	LLVMBuildStore(c->b, lo, l->slot);
	l->cond = LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
	l->body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
	l->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "exit");
	LLVMBuildBr(c->b, l->cond);
	LLVMPositionBuilderAtEnd(c->b, l->cond);
	l->iv = LLVMBuildLoad2(c->b, c->i64, l->slot, name);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l->iv, hi, ""), l->body, l->exit);
	LLVMPositionBuilderAtEnd(c->b, l->body);
	l->step = step;
	return l->iv;
}

void cg_loop_end(CG *c, Loop *l)
{
	LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->iv, l->step, "");
	LLVMBuildStore(c->b, next, l->slot);
	LLVMBuildBr(c->b, l->cond);
	LLVMPositionBuilderAtEnd(c->b, l->exit);
}

void cg_strides(const Type *t, int64_t *s)
{
	int64_t acc = 1;
	for (int i = t->rank - 1; i >= 0; i--) {
		s[i] = acc;
		acc *= t->dims[i];
	}
}

void cg_nest(CG *c, int rank, const int64_t *ext, int noffs,
             const int64_t (*strides)[IR_MAX_RANK], const LLVMValueRef *offs,
             CgNestBody body, void *ctx)
{
	LLVMValueRef cur[CG_MAX_OFFS];
	for (int k = 0; k < noffs; k++)
		cur[k] = offs[k];
	if (rank == 0) {
		body(c, cur, ctx);
		return;
	}
	Loop l;
	LLVMValueRef iv = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, ext[0]), cg_i64(c, 1), "i");
	for (int k = 0; k < noffs; k++)
		if (strides[k][0])
			cur[k] = LLVMBuildNSWAdd(c->b, offs[k],
			                         LLVMBuildNSWMul(c->b, iv, cg_i64(c, strides[k][0]), ""), "");
	/* Shift the stride rows by one dim for the inner levels. */
	int64_t inner[CG_MAX_OFFS][IR_MAX_RANK];
	for (int k = 0; k < noffs; k++)
		for (int d = 1; d < rank; d++)
			inner[k][d - 1] = strides[k][d];
	cg_nest(c, rank - 1, ext + 1, noffs, (const int64_t (*)[IR_MAX_RANK])inner, cur, body, ctx);
	cg_loop_end(c, &l);
}

static LLVMValueRef splat_i32(CG *c, LLVMTypeRef t, uint32_t x)
{
	LLVMValueRef k = LLVMConstInt(c->i32, x, 0);
	if (LLVMGetTypeKind(t) != LLVMVectorTypeKind)
		return k;
	unsigned n = LLVMGetVectorSize(t);
	LLVMValueRef e[64];
	for (unsigned i = 0; i < n && i < 64; i++)
		e[i] = k;
	return LLVMConstVector(e, n);
}

LLVMValueRef cg_bf16_round(CG *c, LLVMValueRef x)
{
	LLVMTypeRef ft = LLVMTypeOf(x);
	LLVMTypeRef it = LLVMGetTypeKind(ft) == LLVMVectorTypeKind
	                         ? LLVMVectorType(c->i32, LLVMGetVectorSize(ft))
	                         : c->i32;
	LLVMBuilderRef b = c->b;
	LLVMValueRef u = LLVMBuildBitCast(b, x, it, "");
	LLVMValueRef expo = LLVMBuildAnd(b, u, splat_i32(c, it, 0x7f800000u), "");
	LLVMValueRef mant = LLVMBuildAnd(b, u, splat_i32(c, it, 0x007fffffu), "");
	LLVMValueRef isnan = LLVMBuildAnd(
		b, LLVMBuildICmp(b, LLVMIntEQ, expo, splat_i32(c, it, 0x7f800000u), ""),
		LLVMBuildICmp(b, LLVMIntNE, mant, splat_i32(c, it, 0), ""), "");
	LLVMValueRef hi = LLVMBuildAnd(b, u, splat_i32(c, it, 0xffff0000u), "");
	LLVMValueRef qnan = LLVMBuildOr(b, hi, splat_i32(c, it, 0x00400000u), "");
	LLVMValueRef lsb = LLVMBuildAnd(b, LLVMBuildLShr(b, u, splat_i32(c, it, 16), ""),
	                                splat_i32(c, it, 1), "");
	LLVMValueRef r = LLVMBuildAdd(b, u, LLVMBuildAdd(b, lsb, splat_i32(c, it, 0x7fff), ""), "");
	r = LLVMBuildAnd(b, r, splat_i32(c, it, 0xffff0000u), "");
	r = LLVMBuildSelect(b, isnan, qnan, r, "");
	return LLVMBuildBitCast(b, r, ft, "bf16");
}

LLVMValueRef cg_intrinsic(CG *c, const char *name, LLVMTypeRef t, LLVMValueRef *args,
                          unsigned nargs)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	if (!id)
		ir_die("no LLVM intrinsic %s", name);
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
	LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &t, 1);
	return LLVMBuildCall2(c->b, ft, f, args, nargs, "");
}

LLVMValueRef cg_libm(CG *c, const char *name, LLVMValueRef *args, unsigned nargs)
{
	LLVMTypeRef ps[2] = {c->f32, c->f32};
	LLVMTypeRef ft = LLVMFunctionType(c->f32, ps, nargs, 0);
	LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
	if (!f)
		f = LLVMAddFunction(c->mod, name, ft);
	return LLVMBuildCall2(c->b, ft, f, args, nargs, "");
}

void cg_reassoc(LLVMValueRef inst)
{
	LLVMSetFastMathFlags(inst, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
}

static int rounds(const CG *c, const Inst *in)
{
	return c->opt.bf16 && in->type.dtype == DT_BF16;
}

static void round_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	LLVMValueRef out = ctx;
	cg_store(c, cg_bf16_round(c, cg_load(c, out, offs[0])), out, offs[0]);
}

void cg_round_result(CG *c, const Inst *in, LLVMValueRef out, int64_t n)
{
	if (!rounds(c, in))
		return;
	int64_t s[1][IR_MAX_RANK] = {{1}};
	LLVMValueRef z = cg_i64(c, 0);
	cg_nest(c, 1, &n, 1, (const int64_t (*)[IR_MAX_RANK])s, &z, round_body, out);
}

void cg_kernel_name(char *buf, size_t n, const Module *m, ValueId v)
{
	snprintf(buf, n, "podsim_k%d_%s", (int)v, op_name(m->insts[v].op));
}

static int64_t numel1(const Type *t)
{
	int64_t n = type_numel(t);
	return n > 0 ? n : 0;
}

static int lower_error(CG *c, const Inst *in, ValueId v, const char *what)
{
	diag_error(c->d, c->m->file, in->line, in->col, "%%%d = %s: %s", (int)v,
	           op_name(in->op), what);
	return -1;
}

/* ---- Elementwise --------------------------------------------------------- */

static int is_elemwise(Op op)
{
	return (ir_ops[op].flags & OPF_ELEMWISE) != 0;
}

static LLVMValueRef b01(CG *c, LLVMValueRef cond)
{
	return LLVMBuildSelect(c->b, cond, cg_f32(c, 1.0), cg_f32(c, 0.0), "");
}

static LLVMValueRef sigmoid(CG *c, LLVMValueRef x)
{
	LLVMValueRef nx = LLVMBuildFNeg(c->b, x, "");
	LLVMValueRef e = cg_libm(c, "expf", &nx, 1);
	return LLVMBuildFDiv(c->b, cg_f32(c, 1.0), LLVMBuildFAdd(c->b, cg_f32(c, 1.0), e, ""), "");
}

/* max/min as ir/interp.c: NaN if either operand is NaN. */
static LLVMValueRef max_min(CG *c, LLVMValueRef a, LLVMValueRef b, int is_max)
{
	LLVMValueRef uno = LLVMBuildFCmp(c->b, LLVMRealUNO, a, b, "");
	LLVMValueRef pick = LLVMBuildFCmp(c->b, is_max ? LLVMRealOGT : LLVMRealOLT, a, b, "");
	LLVMValueRef r = LLVMBuildSelect(c->b, pick, a, b, "");
	return LLVMBuildSelect(c->b, uno, cg_f32(c, NAN), r, "");
}

/* The value of v at flat index idx, computing fused producers inline. */
static LLVMValueRef elem_value(CG *c, ValueId v, LLVMValueRef idx, int root)
{
	const Inst *in = &c->m->insts[v];
	if (!root && (!c->fused[v] || in->op == OP_DOT))
		return cg_load(c, c->leaf[v], idx); /* a fused dot: its result, in place */
	LLVMBuilderRef b = c->b;
	LLVMValueRef x[3] = {0};
	for (int i = 0; i < in->nargs && i < 3; i++)
		x[i] = elem_value(c, in->args[i], idx, 0);
	LLVMValueRef r;
	switch (in->op) {
	case OP_CONSTANT: r = cg_f32(c, (float)ir_attr_float(in, "value", 0.0)); break;
	case OP_NEG: r = LLVMBuildFNeg(b, x[0], ""); break;
	case OP_EXP: r = cg_libm(c, "expf", x, 1); break;
	case OP_LOG: r = cg_libm(c, "logf", x, 1); break;
	case OP_TANH: r = cg_libm(c, "tanhf", x, 1); break;
	case OP_SQRT: r = cg_intrinsic(c, "llvm.sqrt", c->f32, x, 1); break;
	case OP_RSQRT:
		r = LLVMBuildFDiv(b, cg_f32(c, 1.0), cg_intrinsic(c, "llvm.sqrt", c->f32, x, 1), "");
		break;
	case OP_RELU:
		r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x[0], cg_f32(c, 0.0), ""),
		                    x[0], cg_f32(c, 0.0), "");
		break;
	case OP_GELU: {
		/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in interp.c's order */
		LLVMValueRef t = LLVMBuildFMul(b, cg_f32(c, 0.044715f), x[0], "");
		t = LLVMBuildFMul(b, LLVMBuildFMul(b, t, x[0], ""), x[0], "");
		t = LLVMBuildFMul(b, cg_f32(c, 0.7978845608028654f), LLVMBuildFAdd(b, x[0], t, ""), "");
		t = cg_libm(c, "tanhf", &t, 1);
		t = LLVMBuildFAdd(b, cg_f32(c, 1.0), t, "");
		r = LLVMBuildFMul(b, LLVMBuildFMul(b, cg_f32(c, 0.5), x[0], ""), t, "");
		break;
	}
	case OP_SIGMOID: r = sigmoid(c, x[0]); break;
	case OP_SILU: r = LLVMBuildFMul(b, x[0], sigmoid(c, x[0]), ""); break;
	case OP_CONVERT:
		switch (in->type.dtype) {
		case DT_S32:
		case DT_S8: {
			LLVMValueRef t = cg_intrinsic(c, "llvm.trunc", c->f32, x, 1);
			r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x[0], x[0], ""),
			                    cg_f32(c, 0.0), t, "");
			break;
		}
		case DT_PRED: r = b01(c, LLVMBuildFCmp(b, LLVMRealUNE, x[0], cg_f32(c, 0.0), "")); break;
		default: r = x[0]; break;
		}
		break;
	case OP_ADD: r = LLVMBuildFAdd(b, x[0], x[1], ""); break;
	case OP_SUB: r = LLVMBuildFSub(b, x[0], x[1], ""); break;
	case OP_MUL: r = LLVMBuildFMul(b, x[0], x[1], ""); break;
	case OP_DIV: r = LLVMBuildFDiv(b, x[0], x[1], ""); break;
	case OP_MAX: r = max_min(c, x[0], x[1], 1); break;
	case OP_MIN: r = max_min(c, x[0], x[1], 0); break;
	case OP_POW: r = cg_libm(c, "powf", x, 2); break;
	case OP_CMP_GT: r = b01(c, LLVMBuildFCmp(b, LLVMRealOGT, x[0], x[1], "")); break;
	case OP_CMP_EQ: r = b01(c, LLVMBuildFCmp(b, LLVMRealOEQ, x[0], x[1], "")); break;
	case OP_SELECT:
		r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNE, x[0], cg_f32(c, 0.0), ""), x[1],
		                    x[2], "");
		break;
	default:
		ir_die("elem_value: %s", op_name(in->op));
	}
	if (rounds(c, in))
		r = cg_bf16_round(c, r);
	return r;
}

typedef struct ElemCtx {
	ValueId v;
	LLVMValueRef out;
} ElemCtx;

static void elem_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	ElemCtx *e = ctx;
	cg_store(c, elem_value(c, e->v, offs[0], 1), e->out, offs[0]);
}

static void epi_body(CG *c, LLVMValueRef idx, void *ctx)
{
	ElemCtx *e = ctx;
	cg_store(c, elem_value(c, e->v, idx, 1), e->out, idx);
}

static void fill_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	ElemCtx *e = ctx;
	const Inst *in = &c->m->insts[e->v];
	LLVMValueRef x = cg_f32(c, (float)ir_attr_float(in, "value", 0.0));
	if (rounds(c, in))
		x = cg_bf16_round(c, x);
	cg_store(c, x, e->out, offs[0]);
}

/* One flat loop over the result: elementwise ops are contiguous in every
 * operand, which is the layout the loop vectoriser wants. */
static void emit_flat(CG *c, int64_t n, CgNestBody body, void *ctx)
{
	int64_t s[1][IR_MAX_RANK] = {{1}};
	LLVMValueRef z = cg_i64(c, 0);
	cg_nest(c, 1, &n, 1, (const int64_t (*)[IR_MAX_RANK])s, &z, body, ctx);
}

/* ---- Layout copies ------------------------------------------------------- */

typedef struct CopyCtx {
	LLVMValueRef dst, src;
} CopyCtx;

static void copy_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	CopyCtx *k = ctx;
	cg_store(c, cg_load(c, k->src, offs[1]), k->dst, offs[0]);
}

/* dst[doff + sum i_d dstr_d] = src[soff + sum i_d sstr_d] over ext. */
static void emit_copy(CG *c, int rank, const int64_t *ext, LLVMValueRef dst, int64_t doff,
                      const int64_t *dstr, LLVMValueRef src, int64_t soff, const int64_t *sstr)
{
	int64_t st[2][IR_MAX_RANK];
	for (int d = 0; d < rank; d++) {
		st[0][d] = dstr[d];
		st[1][d] = sstr[d];
	}
	LLVMValueRef offs[2] = {cg_i64(c, doff), cg_i64(c, soff)};
	CopyCtx k = {dst, src};
	cg_nest(c, rank, ext, 2, (const int64_t (*)[IR_MAX_RANK])st, offs, copy_body, &k);
}

static void emit_flat_copy(CG *c, int64_t n, LLVMValueRef dst, LLVMValueRef src)
{
	int64_t one = 1;
	emit_copy(c, 1, &n, dst, 0, &one, src, 0, &one);
}

static int emit_layout(CG *c, ValueId v, LLVMValueRef out, LLVMValueRef *args)
{
	const Inst *in = &c->m->insts[v];
	const Type *rt = &in->type;
	int64_t os[IR_MAX_RANK], is[IR_MAX_RANK], ss[IR_MAX_RANK] = {0};
	cg_strides(rt, os);
	const Type *at = &c->m->insts[in->args[0]].type;
	cg_strides(at, is);
	switch (in->op) {
	case OP_TRANSPOSE: {
		int np;
		const int64_t *perm = ir_attr_ints(in, "perm", &np);
		if (np != rt->rank)
			return lower_error(c, in, v, "perm does not match the rank");
		for (int i = 0; i < np; i++)
			ss[i] = is[perm[i]];
		emit_copy(c, rt->rank, rt->dims, out, 0, os, args[0], 0, ss);
		return 0;
	}
	case OP_BROADCAST: {
		int nd;
		const int64_t *dims = ir_attr_ints(in, "dims", &nd);
		if (nd != at->rank)
			return lower_error(c, in, v, "dims does not match the operand rank");
		for (int i = 0; i < nd; i++)
			ss[dims[i]] = at->dims[i] == 1 ? 0 : is[i];
		emit_copy(c, rt->rank, rt->dims, out, 0, os, args[0], 0, ss);
		return 0;
	}
	case OP_SLICE: {
		int ns;
		const int64_t *start = ir_attr_ints(in, "start", &ns);
		if (ns != at->rank)
			return lower_error(c, in, v, "start does not match the operand rank");
		int64_t soff = 0;
		for (int i = 0; i < ns; i++)
			soff += start[i] * is[i];
		emit_copy(c, rt->rank, rt->dims, out, 0, os, args[0], soff, is);
		return 0;
	}
	case OP_CONCAT: {
		int d = (int)ir_attr_int(in, "dim", 0);
		int64_t at_d = 0;
		for (int k = 0; k < in->nargs; k++) {
			const Type *kt = &c->m->insts[in->args[k]].type;
			int64_t ks[IR_MAX_RANK];
			cg_strides(kt, ks);
			emit_copy(c, kt->rank, kt->dims, out, at_d * os[d], os, args[k], 0, ks);
			at_d += kt->dims[d];
		}
		return 0;
	}
	default:
		/* reshape, DMA and the single-chip collectives: a flat copy */
		emit_flat_copy(c, numel1(rt), out, args[0]);
		return 0;
	}
}

typedef struct GatherCtx {
	LLVMValueRef out, tab, ix;
	int64_t rows, row, depth;
} GatherCtx;

static void gather_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	GatherCtx *g = ctx;
	LLVMBuilderRef b = c->b;
	/* Clamp into [0, rows) in float first, so that NaN and out-of-range
	 * indices never address outside the table (XLA clamps too). */
	LLVMValueRef x = cg_load(c, g->ix, offs[0]);
	x = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGE, x, cg_f32(c, 0.0), ""), x,
	                    cg_f32(c, 0.0), "");
	x = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, cg_f32(c, (double)g->rows), ""),
	                    x, cg_f32(c, (double)(g->rows - 1)), "");
	LLVMValueRef r = LLVMBuildFPToSI(b, x, c->i64, "");
	LLVMValueRef src = LLVMBuildNSWMul(b, r, cg_i64(c, g->row), "");
	LLVMValueRef dst = LLVMBuildNSWMul(b, offs[0], cg_i64(c, g->row), "");
	Loop l;
	LLVMValueRef j = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, g->row), cg_i64(c, 1), "j");
	cg_store(c, cg_load(c, g->tab, LLVMBuildNSWAdd(b, src, j, "")), g->out,
	         LLVMBuildNSWAdd(b, dst, j, ""));
	cg_loop_end(c, &l);
}

static void one_hot_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	GatherCtx *g = ctx;
	LLVMBuilderRef b = c->b;
	LLVMValueRef x = cg_load(c, g->ix, offs[0]);
	LLVMValueRef dst = LLVMBuildNSWMul(b, offs[0], cg_i64(c, g->depth), "");
	Loop l;
	LLVMValueRef k = cg_loop_begin(c, &l, cg_i64(c, 0), cg_i64(c, g->depth), cg_i64(c, 1), "k");
	LLVMValueRef kf = LLVMBuildSIToFP(b, k, c->f32, "");
	cg_store(c, b01(c, LLVMBuildFCmp(b, LLVMRealOEQ, x, kf, "")), g->out,
	         LLVMBuildNSWAdd(b, dst, k, ""));
	cg_loop_end(c, &l);
}

static void emit_iota(CG *c, const Inst *in, LLVMValueRef out)
{
	const Type *t = &in->type;
	int d = (int)ir_attr_int(in, "dim", 0);
	int64_t outer = 1, inner = 1;
	for (int i = 0; i < d; i++)
		outer *= t->dims[i];
	for (int i = d + 1; i < t->rank; i++)
		inner *= t->dims[i];
	int64_t len = t->rank ? t->dims[d] : 1;
	Loop lo, lj, li;
	LLVMBuilderRef b = c->b;
	LLVMValueRef o = cg_loop_begin(c, &lo, cg_i64(c, 0), cg_i64(c, outer), cg_i64(c, 1), "o");
	LLVMValueRef j = cg_loop_begin(c, &lj, cg_i64(c, 0), cg_i64(c, len), cg_i64(c, 1), "j");
	LLVMValueRef jf = LLVMBuildSIToFP(b, j, c->f32, "");
	LLVMValueRef base = LLVMBuildNSWMul(
		b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, o, cg_i64(c, len), ""), j, ""),
		cg_i64(c, inner), "");
	LLVMValueRef i = cg_loop_begin(c, &li, cg_i64(c, 0), cg_i64(c, inner), cg_i64(c, 1), "i");
	cg_store(c, jf, out, LLVMBuildNSWAdd(b, base, i, ""));
	cg_loop_end(c, &li);
	cg_loop_end(c, &lj);
	cg_loop_end(c, &lo);
}

/* ---- Which ops lower, and how --------------------------------------------- */

/* The product of the named mesh axes' sizes of a collective. */
static int64_t coll_group(const Module *m, const Inst *in)
{
	const Attr *ax = ir_attr(in, "axes");
	int64_t g = 1;
	for (int i = 0; ax && ax->kind == ATTR_NAMES && i < ax->n; i++) {
		int k = mesh_axis_index(&m->mesh, ax->names[i], strlen(ax->names[i]));
		if (k >= 0)
			g *= (int64_t)m->mesh.axes[k].ici * m->mesh.axes[k].dcn;
	}
	return g;
}

/* 0 if v can be lowered; -1 with a diagnostic otherwise. */
static int check_lowerable(CG *c, ValueId v)
{
	const Module *m = c->m;
	const Inst *in = &m->insts[v];
	for (int i = 0; i < in->nargs; i++)
		if (in->args[i] < 0 || in->args[i] >= v)
			return lower_error(c, in, v, "an operand is not an earlier value");
	if (in->type.rank < 0 || in->type.rank > IR_MAX_RANK)
		return lower_error(c, in, v, "bad rank");
	if (in->op != OP_PARAMETER) {
		char err[256];
		Type t;
		if (ir_infer_type(m, in, &t, err, sizeof err) != 0)
			return lower_error(c, in, v, err);
		if (!type_same_shape(&t, &in->type))
			return lower_error(c, in, v, "result type differs from its shape rule");
	}
	Op op = in->op;
	if (op == OP_COLL_START) {
		const char *name = ir_attr_str(in, "op", "");
		int k = op_from_name(name, strlen(name));
		if (k < 0 || !(ir_ops[k].flags & OPF_COLLECTIVE))
			return lower_error(c, in, v, "coll_start names no collective");
		op = (Op)k;
	}
	if ((op == OP_ALL_GATHER || op == OP_REDUCE_SCATTER || op == OP_ALL_TO_ALL) &&
	    coll_group(m, in) > 1)
		return lower_error(c, in, v,
		                   "a collective over more than one chip is not a kernel: the "
		                   "runtime moves its data between chips");
	if (op == OP_SOFTMAX) {
		int64_t d = ir_attr_int(in, "dim", -1);
		if (d < 0 || d >= in->type.rank)
			return lower_error(c, in, v, "softmax dim out of range");
	}
	if (op == OP_IOTA) {
		int64_t d = ir_attr_int(in, "dim", -1);
		if (in->type.rank > 0 && (d < 0 || d >= in->type.rank))
			return lower_error(c, in, v, "iota dim out of range");
	}
	if (op == OP_ONE_HOT && in->type.rank < 1)
		return lower_error(c, in, v, "one_hot result has rank 0");
	if (op == OP_GATHER && m->insts[in->args[0]].type.rank < 1)
		return lower_error(c, in, v, "gather table has rank 0");
	return 0;
}

/* ---- Kernels and the entry ------------------------------------------------ */

static void add_fn_attr(CG *c, LLVMValueRef f, const char *k, const char *v)
{
	LLVMAttributeRef a = LLVMCreateStringAttribute(c->ctx, k, (unsigned)strlen(k), v,
	                                               (unsigned)strlen(v));
	LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, a);
}

static void add_enum_attr(CG *c, LLVMValueRef f, unsigned idx, const char *name)
{
	unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
	LLVMAddAttributeAtIndex(f, idx, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

static void begin_fn(CG *c, LLVMValueRef f)
{
	c->fn = f;
	c->entry = LLVMAppendBasicBlockInContext(c->ctx, f, "entry");
	LLVMPositionBuilderAtEnd(c->b, c->entry);
}

/* The kernel body for v into the current function. */
static int emit_kernel_body(CG *c, ValueId v, LLVMValueRef out, LLVMValueRef *ins)
{
	const Inst *in = &c->m->insts[v];
	int64_t n = numel1(&in->type);
	ElemCtx e = {v, out};
	switch (in->op) {
	case OP_PARAMETER:
		cg_round_result(c, in, out, n);
		return 0;
	case OP_CONSTANT:
		emit_flat(c, n, fill_body, &e);
		return 0;
	case OP_IOTA:
		emit_iota(c, in, out);
		cg_round_result(c, in, out, n);
		return 0;
	case OP_NEG: case OP_EXP: case OP_LOG: case OP_TANH: case OP_SQRT: case OP_RSQRT:
	case OP_RELU: case OP_GELU: case OP_SIGMOID: case OP_SILU: case OP_CONVERT:
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN:
	case OP_POW: case OP_CMP_GT: case OP_CMP_EQ: case OP_SELECT:
		for (int i = 0; i < c->nkin[v]; i++)
			c->leaf[c->kin[v][i]] = ins[i];
		if (c->epi_dot[v] >= 0) {
			/* the dot's operands are this kernel's first two inputs; its
			 * result lives in out until the epilogue overwrites it */
			ValueId dv = c->epi_dot[v];
			c->leaf[dv] = out;
			CgEpilogue epi = {epi_body, &e};
			return cg_dot(c, &c->m->insts[dv], out, ins[0], ins[1], &epi);
		}
		emit_flat(c, n, elem_body, &e);
		return 0;
	case OP_DOT:
		return cg_dot(c, in, out, ins[0], ins[1], NULL);
	case OP_REDUCE_SUM:
	case OP_REDUCE_MAX:
		return cg_reduce(c, in, out, ins[0]);
	case OP_SOFTMAX:
		return cg_softmax(c, in, out, ins[0]);
	case OP_GATHER: {
		const Type *tt = &c->m->insts[in->args[0]].type;
		GatherCtx g = {out, ins[0], ins[1], tt->dims[0], 0, 0};
		g.row = tt->dims[0] ? numel1(tt) / tt->dims[0] : 0;
		emit_flat(c, numel1(&c->m->insts[in->args[1]].type), gather_body, &g);
		cg_round_result(c, in, out, n);
		return 0;
	}
	case OP_ONE_HOT: {
		GatherCtx g = {out, NULL, ins[0], 0, 0, in->type.dims[in->type.rank - 1]};
		emit_flat(c, numel1(&c->m->insts[in->args[0]].type), one_hot_body, &g);
		cg_round_result(c, in, out, n);
		return 0;
	}
	case OP_BROADCAST: case OP_RESHAPE: case OP_TRANSPOSE: case OP_SLICE: case OP_CONCAT:
	case OP_DMA_START: case OP_DMA_DONE: case OP_COLL_START: case OP_COLL_DONE:
	case OP_ALL_REDUCE: case OP_ALL_GATHER: case OP_REDUCE_SCATTER: case OP_ALL_TO_ALL:
	case OP_COLLECTIVE_PERMUTE:
		if (emit_layout(c, v, out, ins) != 0)
			return -1;
		cg_round_result(c, in, out, n);
		return 0;
	case OP_COUNT:
		break;
	}
	return lower_error(c, in, v, "no lowering for this op");
}

/* Collects the non-fused leaves of v's expression tree, once each: seen[u]
 * == stamp marks the ones already taken. */
static void collect_leaves(CG *c, ValueId v, int root, ValueId *out, int *n, int *seen,
                           int stamp)
{
	const Inst *in = &c->m->insts[v];
	if (!root && !c->fused[v]) {
		if (seen[v] != stamp) {
			seen[v] = stamp;
			out[(*n)++] = v;
		}
		return;
	}
	if (!root && in->op == OP_DOT)
		return; /* its operands were taken first (plan) */
	for (int i = 0; i < in->nargs; i++)
		collect_leaves(c, in->args[i], 0, out, n, seen, stamp);
}

/* Decides fusion and each kernel's inputs. */
static void plan(CG *c)
{
	const Module *m = c->m;
	int n = m->ninsts;
	int *uses = calloc((size_t)n + 1, sizeof *uses);
	ValueId *user = calloc((size_t)n + 1, sizeof *user);
	if (!uses || !user)
		ir_die("out of memory");
	for (int v = 0; v < n; v++)
		for (int i = 0; i < m->insts[v].nargs; i++) {
			uses[m->insts[v].args[i]]++;
			user[m->insts[v].args[i]] = v;
		}
	for (int o = 0; o < m->noutputs; o++)
		if (m->outputs[o] >= 0 && m->outputs[o] < n)
			uses[m->outputs[o]] += 2; /* an output is always materialised */
	for (int v = 0; v < n; v++) {
		Op op = m->insts[v].op;
		c->fused[v] = c->opt.fuse && uses[v] == 1 &&
		              (is_elemwise(op) || op == OP_CONSTANT) &&
		              is_elemwise(m->insts[user[v]].op);
		c->epi_dot[v] = -1;
	}
	/* A dot used once, by an elementwise op, runs inside the kernel of that
	 * op's expression tree, which becomes its epilogue; one dot per tree. */
	for (int v = 0; v < n; v++) {
		if (!c->opt.fuse || m->insts[v].op != OP_DOT || uses[v] != 1 ||
		    !is_elemwise(m->insts[user[v]].op))
			continue;
		ValueId r = user[v];
		while (c->fused[r])
			r = user[r];
		if (c->epi_dot[r] >= 0 || !type_same_shape(&m->insts[r].type, &m->insts[v].type))
			continue;
		c->epi_dot[r] = v;
		c->fused[v] = 1;
	}
	int maxk = n; /* leaves are distinct values; operands may repeat */
	for (int v = 0; v < n; v++)
		maxk = m->insts[v].nargs > maxk ? m->insts[v].nargs : maxk;
	int *seen = calloc((size_t)n + 1, sizeof *seen);
	ValueId *tmp = calloc((size_t)maxk + 1, sizeof *tmp);
	if (!seen || !tmp)
		ir_die("out of memory");
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		int k = 0;
		if (is_elemwise(in->op)) {
			if (c->epi_dot[v] >= 0) {
				const Inst *dot = &m->insts[c->epi_dot[v]];
				tmp[k++] = dot->args[0];
				tmp[k++] = dot->args[1];
				seen[dot->args[0]] = seen[dot->args[1]] = v + 1;
			}
			collect_leaves(c, v, 1, tmp, &k, seen, v + 1);
		} else {
			for (int i = 0; i < in->nargs; i++)
				tmp[k++] = in->args[i];
		}
		c->kin[v] = malloc(sizeof(ValueId) * (size_t)(k + 1));
		if (!c->kin[v])
			ir_die("out of memory");
		memcpy(c->kin[v], tmp, sizeof(ValueId) * (size_t)k);
		c->nkin[v] = k;
	}
	free(tmp);
	free(seen);
	free(uses);
	free(user);
}

static int has_kernel(const CG *c, ValueId v)
{
	const Inst *in = &c->m->insts[v];
	if (in->op == OP_PARAMETER)
		return c->opt.bf16 && in->type.dtype == DT_BF16;
	return !c->fused[v];
}

/* ---- Kernel identity ------------------------------------------------------ */

typedef struct Str {
	char *s;
	size_t n, cap;
} Str;

static void sput(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sput(Str *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k < 0)
			ir_die("vsnprintf failed");
		if ((size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		b->cap = b->cap * 2 + (size_t)k + 64;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			ir_die("out of memory");
	}
}

static void put_type(Str *b, const Type *t)
{
	sput(b, "%s[", dtype_name(t->dtype));
	for (int i = 0; i < t->rank; i++)
		sput(b, "%lld,", (long long)t->dims[i]);
	sput(b, "]");
}

/* Op, operand and result types, attributes (but a parameter's name) and
 * tiling of a non-elementwise value. */
static void put_op(Str *b, CG *c, ValueId v)
{
	const Inst *in = &c->m->insts[v];
	put_type(b, &in->type);
	sput(b, "%s(", op_name(in->op));
	for (int i = 0; i < in->nargs; i++)
		put_type(b, &c->m->insts[in->args[i]].type);
	sput(b, ")");
	for (int i = 0; i < in->nattrs; i++) {
		const Attr *a = &in->attrs[i];
		if (in->op == OP_PARAMETER && strcmp(a->key, "name") == 0)
			continue;
		sput(b, "%s=", a->key);
		switch (a->kind) {
		case ATTR_INTS:
			for (int k = 0; k < a->n; k++)
				sput(b, "%lld,", (long long)a->ints[k]);
			break;
		case ATTR_FLOAT: sput(b, "%a", a->f); break;
		case ATTR_STR: sput(b, "\"%s\"", a->s ? a->s : ""); break;
		case ATTR_NAMES:
			for (int k = 0; k < a->n; k++)
				sput(b, "%s,", a->names[k] ? a->names[k] : "");
			break;
		}
		sput(b, ";");
	}
	const Tiling *t = &in->tiling;
	sput(b, "tile%d:", t->ntile);
	for (int i = 0; i < t->ntile && i < IR_MAX_RANK; i++)
		sput(b, "%lld/%d,", (long long)t->tile[i], t->order[i]);
}

/* The expression tree of a (fused) elementwise kernel, leaves by position;
 * a fused dot (its operands are always inputs 0 and 1) by put_op. */
static void put_tree(Str *b, CG *c, ValueId v, int root)
{
	const Inst *in = &c->m->insts[v];
	if (!root && !c->fused[v]) {
		for (int i = 0; i < c->nkin[c->cur]; i++)
			if (c->kin[c->cur][i] == v)
				sput(b, "L%d", i);
		return;
	}
	if (!root && in->op == OP_DOT) {
		sput(b, "{");
		put_op(b, c, v);
		sput(b, "}");
		return;
	}
	sput(b, "%s:%s", op_name(in->op), dtype_name(in->type.dtype));
	if (in->op == OP_CONSTANT)
		sput(b, "=%a", ir_attr_float(in, "value", 0.0));
	sput(b, "(");
	for (int i = 0; i < in->nargs; i++) {
		put_tree(b, c, in->args[i], 0);
		sput(b, ",");
	}
	sput(b, ")");
}

/* A string that is equal for two values exactly when their kernels are the
 * same code. */
static char *kernel_key(CG *c, ValueId v)
{
	const Inst *in = &c->m->insts[v];
	Str b = {malloc(256), 0, 256};
	if (!b.s)
		ir_die("out of memory");
	if (is_elemwise(in->op)) {
		put_type(&b, &in->type);
		c->cur = v;
		put_tree(&b, c, v, 1);
	} else {
		put_op(&b, c, v);
	}
	return b.s;
}

/* Emits v's kernel body as an internal function named iname. */
static LLVMValueRef emit_impl(CG *c, ValueId v, const char *iname, int *rc)
{
	int nin = c->nkin[v];
	LLVMTypeRef *pts = malloc(sizeof(LLVMTypeRef) * (size_t)(nin + 1));
	if (!pts)
		ir_die("out of memory");
	for (int i = 0; i <= nin; i++)
		pts[i] = c->ptr;
	LLVMValueRef impl = LLVMAddFunction(c->mod, iname,
	                                    LLVMFunctionType(c->voidt, pts, (unsigned)nin + 1, 0));
	free(pts);
	LLVMSetLinkage(impl, LLVMInternalLinkage);
	add_enum_attr(c, impl, LLVMAttributeFunctionIndex, "nounwind");
	/* One copy of each body: not inlined into the wrapper and the entry
	 * (which would compile it twice more); the call costs nothing next to
	 * a kernel's loops. */
	add_enum_attr(c, impl, LLVMAttributeFunctionIndex, "noinline");
	for (int i = 0; i <= nin; i++)
		add_enum_attr(c, impl, (unsigned)i + 1, "noalias");
	if (c->m->insts[v].op == OP_DOT && c->min_legal_width > 256) {
		char w[16];
		snprintf(w, sizeof w, "%d", c->min_legal_width);
		add_fn_attr(c, impl, "min-legal-vector-width", w);
	}
	begin_fn(c, impl);
	LLVMValueRef *ins = malloc(sizeof(LLVMValueRef) * (size_t)(nin + 1));
	if (!ins)
		ir_die("out of memory");
	for (int i = 0; i < nin; i++)
		ins[i] = LLVMGetParam(impl, (unsigned)i + 1);
	*rc = emit_kernel_body(c, v, LLVMGetParam(impl, 0), ins);
	LLVMBuildRetVoid(c->b);
	free(ins);
	return impl;
}

int cg_lower(CG *c, const Module *m)
{
	c->m = m;
	if (m->level != LEVEL_TILED) {
		diag_error(c->d, m->file, 0, 0, "module '%s' is not at the tiled level",
		           m->name ? m->name : "?");
		return -1;
	}
	size_t n = (size_t)m->ninsts + 1;
	c->fused = calloc(n, 1);
	c->epi_dot = calloc(n, sizeof *c->epi_dot);
	c->leaf = calloc(n, sizeof *c->leaf);
	c->kin = calloc(n, sizeof *c->kin);
	c->nkin = calloc(n, sizeof *c->nkin);
	if (!c->fused || !c->epi_dot || !c->leaf || !c->kin || !c->nkin)
		ir_die("out of memory");
	for (int v = 0; v < m->ninsts; v++)
		if (check_lowerable(c, v) != 0)
			return -1;
	for (int o = 0; o < m->noutputs; o++)
		if (m->outputs[o] < 0 || m->outputs[o] >= m->ninsts) {
			diag_error(c->d, m->file, m->ret_line, m->ret_col, "output %d is not a value", o);
			return -1;
		}
	plan(c);

	c->b = LLVMCreateBuilderInContext(c->ctx);
	c->f32 = LLVMFloatTypeInContext(c->ctx);
	c->i1 = LLVMInt1TypeInContext(c->ctx);
	c->i32 = LLVMInt32TypeInContext(c->ctx);
	c->i64 = LLVMInt64TypeInContext(c->ctx);
	c->ptr = LLVMPointerTypeInContext(c->ctx, 0);
	c->voidt = LLVMVoidTypeInContext(c->ctx);

	LLVMTypeRef et = LLVMFunctionType(c->voidt, &c->ptr, 1, 0);
	LLVMValueRef entry = LLVMAddFunction(c->mod, CG_ENTRY_NAME, et);
	add_enum_attr(c, entry, LLVMAttributeFunctionIndex, "nounwind");
	LLVMBasicBlockRef ebb = LLVMAppendBasicBlockInContext(c->ctx, entry, "entry");
	LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
	LLVMPositionBuilderAtEnd(eb, ebb);
	LLVMValueRef bufs = LLVMGetParam(entry, 0);

	int rc = 0, nkeys = 0;
	char **keys = calloc(n, sizeof *keys);
	LLVMValueRef *impls = calloc(n, sizeof *impls);
	if (!keys || !impls)
		ir_die("out of memory");
	for (int v = 0; v < m->ninsts && rc == 0; v++) {
		if (!has_kernel(c, v))
			continue;
		int nin = c->nkin[v];
		char name[96], iname[112];
		cg_kernel_name(name, sizeof name, m, v);
		snprintf(iname, sizeof iname, "%s.impl", name);
		/* Identical kernels (same op, shapes, attributes, tiling; a
		 * transformer's layers repeat) share one body. */
		char *key = kernel_key(c, v);
		LLVMValueRef impl = NULL;
		for (int q = 0; q < nkeys && !impl; q++)
			if (strcmp(keys[q], key) == 0)
				impl = impls[q];
		if (impl) {
			free(key);
		} else {
			impl = emit_impl(c, v, iname, &rc);
			keys[nkeys] = key;
			impls[nkeys++] = impl;
		}

		/* The exported wrapper: void k(float *out, const float *const *in). */
		LLVMTypeRef wps[2] = {c->ptr, c->ptr};
		LLVMValueRef w = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->voidt, wps, 2, 0));
		add_enum_attr(c, w, LLVMAttributeFunctionIndex, "nounwind");
		begin_fn(c, w);
		LLVMValueRef *cargs = malloc(sizeof(LLVMValueRef) * (size_t)(nin + 1));
		if (!cargs)
			ir_die("out of memory");
		cargs[0] = LLVMGetParam(w, 0);
		for (int i = 0; i < nin; i++) {
			LLVMValueRef idx = cg_i64(c, i);
			LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->ptr, LLVMGetParam(w, 1), &idx, 1, "");
			cargs[i + 1] = LLVMBuildLoad2(c->b, c->ptr, p, "");
		}
		LLVMTypeRef it = LLVMGlobalGetValueType(impl);
		LLVMBuildCall2(c->b, it, impl, cargs, (unsigned)nin + 1, "");
		LLVMBuildRetVoid(c->b);

		/* The entry's call. */
		for (int i = 0; i <= nin; i++) {
			ValueId src = i == 0 ? v : c->kin[v][i - 1];
			LLVMValueRef idx = cg_i64(c, src);
			LLVMValueRef p = LLVMBuildInBoundsGEP2(eb, c->ptr, bufs, &idx, 1, "");
			cargs[i] = LLVMBuildLoad2(eb, c->ptr, p, "");
		}
		LLVMBuildCall2(eb, it, impl, cargs, (unsigned)nin + 1, "");
		free(cargs);
	}
	LLVMBuildRetVoid(eb);
	LLVMDisposeBuilder(eb);
	for (int q = 0; q < nkeys; q++)
		free(keys[q]);
	free(keys);
	free(impls);
	return rc;
}

void cg_release(CG *c)
{
	if (c->kin && c->m)
		for (int v = 0; v < c->m->ninsts; v++)
			free(c->kin[v]);
	free(c->kin);
	free(c->nkin);
	free(c->fused);
	free(c->epi_dot);
	free(c->leaf);
	if (c->b)
		LLVMDisposeBuilder(c->b);
	c->kin = NULL;
	c->nkin = NULL;
	c->fused = NULL;
	c->epi_dot = NULL;
	c->leaf = NULL;
	c->b = NULL;
}

/* ---- Text ------------------------------------------------------------------ */

void codegen_default_options(CodegenOptions *o)
{
	memset(o, 0, sizeof *o);
	o->optimize = 1;
	o->fuse = 1;
}

char *codegen_emit_llvm(const Module *m, const CodegenOptions *opt, Diag *d)
{
	CG c;
	memset(&c, 0, sizeof c);
	if (opt)
		c.opt = *opt;
	else
		codegen_default_options(&c.opt);
	c.d = d;
	LLVMTargetMachineRef tm = cg_host_machine(d);
	if (!tm)
		return NULL;
	c.ctx = LLVMContextCreate();
	c.mod = LLVMModuleCreateWithNameInContext(m->name ? m->name : "podsim", c.ctx);
	char *text = NULL;
	if (cg_setup_target(&c, tm) == 0 && cg_lower(&c, m) == 0 && cg_finish(&c, tm) == 0) {
		char *s = LLVMPrintModuleToString(c.mod);
		text = strdup(s);
		LLVMDisposeMessage(s);
		if (!text)
			ir_die("out of memory");
	}
	cg_release(&c);
	cg_teardown_target(&c);
	LLVMDisposeModule(c.mod);
	LLVMContextDispose(c.ctx);
	LLVMDisposeTargetMachine(tm);
	return text;
}
