/*
 * compiler/llvm: tiled-level kernels to LLVM IR, optimised and JIT-compiled.
 *
 * Every instruction of a LEVEL_TILED module that computes something becomes
 * one LLVM function, a kernel, that reads its operand buffers and writes its
 * result buffer (f32 storage for every dtype, row-major, as the reference
 * interpreter). A matmul follows the instruction's Tiling; elementwise chains
 * can be fused into one loop or into a matmul's epilogue. A whole-module
 * entry runs the kernels in order over a buffer table indexed by ValueId.
 * docs/codegen.md describes the lowering, the numerics and the ABI.
 *
 * This header does not expose LLVM types: only podsim_compiler sees llvm-c.
 */
#ifndef PODSIM_CODEGEN_H
#define PODSIM_CODEGEN_H

#include "ir/ir.h"

typedef struct CodegenOptions {
	int optimize;  /* 1: run the new pass manager's default<O2> pipeline */
	int bf16;      /* 1: MXU numerics: both dot operands rounded to bf16
	                * (RNE) whatever their dtype, every bf16-typed result
	                * (parameters included) rounded, f32 accumulation; as
	                * ir_interp with InterpOptions.bf16_round */
	int fuse;      /* 1: an elementwise value used once, by an elementwise
	                * op, is computed inside its consumer's loop; a dot used
	                * so runs in its consumer's kernel, the consumer's
	                * expression as its epilogue (a fused value's own
	                * buffer is then not written) */
	int vec_width; /* floats per vector in the matmul micro-kernel; 0: the
	                * host's widest (16 with AVX-512, 8 with AVX, else 4) */
	int mr;        /* rows of the matmul register tile; 0: chosen from the
	                * vector width */
	int nr_vecs;   /* vectors per row of the register tile; 0: 2 */
} CodegenOptions;

/* optimize = 1, bf16 = 0, fuse = 1, automatic micro-kernel shape. */
void codegen_default_options(CodegenOptions *o);

/* The module as LLVM IR text (.ll), optimised or not per opt (NULL: the
 * defaults). Returns a malloc'd string (caller frees), or NULL with d filled
 * (an op that cannot be lowered, a module not at the tiled level, an LLVM
 * verifier failure). */
char *codegen_emit_llvm(const Module *m, const CodegenOptions *opt, Diag *d);

/* ---- JIT -----------------------------------------------------------------
 * Kernel ABI (C): void kernel(float *out, const float *const *in), in[i] the
 * buffer of the kernel's i-th input (jit_kernel says which values). The entry
 * is void entry(float *const *bufs), bufs[v] the buffer of value v, of
 * type_numel(m->insts[v].type) floats (at least 1). The caller fills the
 * parameters' buffers; in bf16 mode the entry rounds bf16 parameters in
 * place. */
typedef struct Jit Jit;
typedef void (*JitKernelFn)(float *out, const float *const *in);
typedef void (*JitEntryFn)(float *const *bufs);

/* Lowers, optimises and JIT-compiles m for the host CPU. NULL with d filled
 * on error. The Jit does not keep m. */
Jit *jit_compile(const Module *m, const CodegenOptions *opt, Diag *d);
void jit_free(Jit *j); /* NULL is fine */

/* Runs the whole module over bufs (see the ABI above). */
void jit_run(const Jit *j, float *const *bufs);
JitEntryFn jit_entry(const Jit *j);

/* The kernel computing value v, or NULL if v has none (a parameter, a value
 * fused into its consumer). *nin and *in receive its inputs' ValueIds (owned
 * by the Jit). */
JitKernelFn jit_kernel(const Jit *j, ValueId v, int *nin, const ValueId **in);

/* Wall time spent in jit_compile: lowering, optimisation, machine code. */
double jit_compile_ms(const Jit *j);

#endif
