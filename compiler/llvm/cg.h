/*
 * Internal to compiler/llvm: the lowering context shared by the kernel
 * emitters (codegen.c: driver, elementwise, layout; cg_matmul.c: dot;
 * cg_reduce.c: reductions, softmax) and the JIT (jit.c). Loops are emitted
 * with their induction variable in an entry-block alloca; mem2reg/SROA turn
 * them into phis, so the emitters stay simple straight-line C.
 */
#ifndef PODSIM_CG_H
#define PODSIM_CG_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "codegen.h"

typedef struct CG {
	LLVMContextRef ctx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	const Module *m;
	CodegenOptions opt;
	Diag *d;
	LLVMTypeRef f32, i1, i32, i64, ptr, voidt;
	LLVMValueRef fn;        /* the function being emitted */
	LLVMBasicBlockRef entry; /* its entry block, home of the allocas */
	/* fusion: fused[v] = 1 if v is computed inside its consumer's kernel;
	 * epi_dot[r] = the dot whose epilogue is r's expression tree, or -1 */
	unsigned char *fused;
	ValueId *epi_dot;
	/* the kernel being emitted: leaf value -> its buffer pointer */
	LLVMValueRef *leaf;     /* (m->ninsts) */
	/* per value: the inputs of its kernel (leaves when fused) */
	ValueId **kin;          /* (m->ninsts) */
	int *nkin;              /* (m->ninsts) */
	ValueId cur;            /* the value whose kernel is being keyed */
	int has_kernel_attrs;
	char *cpu, *features;   /* host, for function attributes (LLVM strings) */
	int min_legal_width;    /* bits: "min-legal-vector-width" for wide kernels */
} CG;

/* A counted loop for (iv = lo; iv < hi; iv += step), i64. */
typedef struct Loop {
	LLVMValueRef slot, iv, step;
	LLVMBasicBlockRef cond, body, exit;
} Loop;

LLVMValueRef cg_loop_begin(CG *c, Loop *l, LLVMValueRef lo, LLVMValueRef hi,
                           LLVMValueRef step, const char *name);
void cg_loop_end(CG *c, Loop *l);
LLVMValueRef cg_alloca(CG *c, LLVMTypeRef t, LLVMValueRef n, unsigned align,
                       const char *name);

LLVMValueRef cg_i64(CG *c, int64_t x);
LLVMValueRef cg_f32(CG *c, double x);
/* p + off floats */
LLVMValueRef cg_gep(CG *c, LLVMValueRef p, LLVMValueRef off);
LLVMValueRef cg_load(CG *c, LLVMValueRef p, LLVMValueRef off);
void cg_store(CG *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef off);
LLVMValueRef cg_min(CG *c, LLVMValueRef a, LLVMValueRef b); /* signed i64 */
/* Round an f32 (scalar or vector) to bf16, ties to even, as bf16_round(). */
LLVMValueRef cg_bf16_round(CG *c, LLVMValueRef x);
/* A call of an intrinsic overloaded on type t. */
LLVMValueRef cg_intrinsic(CG *c, const char *name, LLVMTypeRef t, LLVMValueRef *args,
                          unsigned nargs);
/* A call of a libm function float f(float...). */
LLVMValueRef cg_libm(CG *c, const char *name, LLVMValueRef *args, unsigned nargs);
/* Sets the fast-math flags allowed on the matmul accumulation. */
void cg_reassoc(LLVMValueRef inst);
/* Rounds out[0..n) in place to bf16 when bf16 mode and dtype is bf16. */
void cg_round_result(CG *c, const Inst *in, LLVMValueRef out, int64_t n);
/* Row-major strides of t, in elements. */
void cg_strides(const Type *t, int64_t *s);
/* Nested loops over ext[0..rank) (row-major, innermost last) carrying noffs
 * offsets: offs[k] + sum_d i_d * strides[k][d]; body runs innermost. */
#define CG_MAX_OFFS 4
typedef void (*CgNestBody)(CG *c, LLVMValueRef *offs, void *ctx);
void cg_nest(CG *c, int rank, const int64_t *ext, int noffs,
             const int64_t (*strides)[IR_MAX_RANK], const LLVMValueRef *offs,
             CgNestBody body, void *ctx);

/* An epilogue fused into a dot: called once per result element, when its sum
 * is complete (and rounded in bf16 mode), with the element's flat index; it
 * overwrites out[idx] with the consumer's value. */
typedef struct CgEpilogue {
	void (*fn)(CG *c, LLVMValueRef idx, void *ctx);
	void *ctx;
} CgEpilogue;

/* Kernel bodies: out and in[] are the kernel's buffer pointers. Return 0 or
 * -1 with c->d filled. epi may be NULL. */
int cg_dot(CG *c, const Inst *in, LLVMValueRef out, LLVMValueRef a, LLVMValueRef b,
           const CgEpilogue *epi);
int cg_reduce(CG *c, const Inst *in, LLVMValueRef out, LLVMValueRef a);
int cg_softmax(CG *c, const Inst *in, LLVMValueRef out, LLVMValueRef a);

/* Lowers m into c->mod (c->ctx, c->opt, c->d set by the caller); fills the
 * fusion and kernel-input tables. 0 or -1. */
int cg_lower(CG *c, const Module *m);
void cg_release(CG *c); /* frees what cg_lower allocated (not ctx/mod) */
/* Host target machine for the optimiser; NULL with d filled. */
LLVMTargetMachineRef cg_host_machine(Diag *d);
/* Sets c->mod's triple and data layout from tm, and the micro-kernel
 * shape in c->opt from the host's vector width. 0 or -1. */
int cg_setup_target(CG *c, LLVMTargetMachineRef tm);
void cg_teardown_target(CG *c);
/* Verifies and (if c->opt.optimize) optimises c->mod. 0 or -1. */
int cg_finish(CG *c, LLVMTargetMachineRef tm);

/* Symbol names. */
void cg_kernel_name(char *buf, size_t n, const Module *m, ValueId v);
#define CG_ENTRY_NAME "podsim_entry"

#endif
