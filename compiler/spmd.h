/*
 * The SPMD executor: runs a per-chip program on every chip of a mesh, each
 * chip with its own buffers, moving real data between the chips' buffers at
 * the collectives (docs/run.md).
 *
 * It lives in compiler/ rather than sim/ because it runs the compute ops
 * with the LLVM JIT of compiler/llvm (sim/ may not depend on compiler/);
 * the interpreter (ir/) runs what the JIT does not.
 *
 * The program is a graph-level per-chip module (shard_module's output, local
 * shapes, collectives inserted) or the scheduled tiled program (the same
 * plus dma_start/dma_done and coll_start/coll_done pairs). Chip numbering,
 * shard placement and the meaning of partition=[axes] follow the per-chip
 * program's conventions in docs/sharding.md.
 */
#ifndef PODSIM_SPMD_H
#define PODSIM_SPMD_H

#include "ir/ir.h"

typedef struct SpmdOptions {
	int bf16;         /* MXU numerics: InterpOptions.bf16_round for the
	                   * interpreter, CodegenOptions.bf16 for the JIT */
	int jit;          /* 1: JIT kernels for the ops compiler/llvm lowers;
	                   * 0: the interpreter for every instruction */
	int jit_optimize; /* 1: default<O2> on the kernels (CodegenOptions) */
	int threads;      /* OpenMP threads across chips; 0: the runtime's */
} SpmdOptions;

/* jit = 1, jit_optimize = 1, bf16 = 0, threads = 0. */
void spmd_default_options(SpmdOptions *o);

typedef struct SpmdStats {
	int64_t chips;            /* mesh size: programs run */
	/* instructions of the program (one chip's count; every chip runs the
	 * same instructions) by how they ran: */
	int jit_ops;              /* a JIT kernel */
	int interp_ops;           /* the reference interpreter (ir_interp_inst) */
	int partition_ops;        /* slice/iota/gather/one_hot with partition=[axes]:
	                           * the executor, per chip coordinate */
	int collective_ops;       /* collectives (coll_start/coll_done pairs
	                           * count once), data moved between chips */
	int params;               /* parameters, filled from the inputs */
	int other_ops;            /* no computation: coll_start */
	int jit_kernels;          /* distinct kernels compiled (instructions that
	                           * agree in op, types, attributes and tiling
	                           * share one) */
	double jit_compile_ms;    /* wall time of jit_compile, ms */
	double run_ms;            /* wall time of the run on all chips, ms */
	double bytes_moved;       /* bytes received by all chips at collectives
	                           * (f32 storage), from other chips */
	char jit_note[1100];       /* why the JIT was not used, "" if it was */
} SpmdStats;

/* Runs prog on mesh_size(&prog->mesh) chips. inputs holds, for chip c and
 * parameter k (instruction order), inputs[c * nparams + k] (local shapes).
 * On success fills outputs[c * prog->noutputs + o] (data malloc'd, caller
 * frees each) and returns 0; -1 with d filled otherwise (a malformed
 * program, an input of the wrong shape, an interpreter error). The results
 * do not depend on the number of threads. */
int spmd_run(const Module *prog, const Tensor *inputs, int nparams, const SpmdOptions *o,
             Tensor *outputs, SpmdStats *st, Diag *d);

/* ---- Chip coordinates (docs/sharding.md) --------------------------------
 * Chips are numbered row-major over the mesh axes in mesh order (axis 0 the
 * most significant), each axis of size ici * dcn. */
int64_t spmd_coord(const Mesh *m, int64_t chip, int axis);
/* The chip's shard index over an axis set (bit k = mesh axis k): its
 * mixed-radix coordinate over those axes, in mesh order. */
int64_t spmd_shard_index(const Mesh *m, int64_t chip, uint32_t axes);

/* The chip's shard of a global tensor whose dim i is split over the axis
 * set shard[i]: local size ceil(dim / ways), the last shard zero-padded.
 * local->data is malloc'd (caller frees). */
void spmd_shard_tensor(const Mesh *m, const Tensor *global, const uint32_t *shard,
                       int64_t chip, Tensor *local);

/* Where element e of the chip's local shard sits in the global tensor:
 * writes the global multi-index; returns 0 for padding (outside it). */
int spmd_global_index(const Mesh *m, const Type *global, const uint32_t *shard, int64_t chip,
                      const int64_t *local_idx, int64_t *global_idx);

#endif
