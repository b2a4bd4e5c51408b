/*
 * Per-op cost models of one chip: how long a tiled-level instruction keeps
 * its unit busy, in seconds, from the chip file's parameters only (no
 * per-workload constants). The event engine (engine.h) decides when each op
 * runs; these functions say for how long.
 *
 *   MXU   dot: the fast systolic tile model (mxu.h), the work split over all
 *         MXUs of the chip, bf16 rate for every float dtype.
 *   VPU   elementwise, reductions, transposes, softmax: vregs of
 *         sublanes x lanes elements, vpu_alus ops per lane-sublane per cycle,
 *         transcendentals vpu_transc_cost times an add, cross-lane work
 *         vpu_xlane_cycles per vreg; bounded below by the memory traffic of
 *         its operands (HBM or VMEM bandwidth).
 *   DMA   latency + bytes / (hbm_bw * hbm_efficiency), at most dma_engines
 *         in flight (the engine enforces the limit).
 *   ICI/DCN  collectives: see engine.h (a pluggable function).
 * Every op on a unit also pays op_issue_cycles.
 */
#ifndef PODSIM_COST_H
#define PODSIM_COST_H

#include "chip.h"
#include "ir/ir.h"

/* The matmul a dot performs: batch x (M x K) . (K x N). */
typedef struct DotDims {
	int64_t batch, m, k, n;
} DotDims;

/* Fails (returns -1) only if the dot's attributes do not describe it. */
int cost_dot_dims(const Module *m, const Inst *in, DotDims *dd);

/* FLOPs an op performs (2*B*M*K*N for a dot, one per element otherwise,
 * 0 for layout ops and data movement). */
double cost_flops(const Module *m, const Inst *in);

/* MXU cycles of a dot on the whole chip (all MXUs). The dot's tiling (loop
 * dims: result dims, then contracting dims; [tm, tn, tk] for a 2D matmul)
 * sets the rows streamed per weight tile: tm (the lhs free dims' tiles).
 * Without a tiling all M rows stream through each weight tile. */
double cost_mxu_cycles(const Chip *c, const Module *m, const Inst *in);

/* VPU cycles of an op (compute only). */
double cost_vpu_cycles(const Chip *c, const Module *m, const Inst *in);

/* Bytes an op reads from and writes to each memory space (operands by their
 * own mem; MEM_NONE counts as HBM for parameters, VMEM otherwise). */
void cost_mem_bytes(const Module *m, const Inst *in, double bytes[MEM_COUNT]);

/* Seconds to move `bytes` through a memory space at the chip's rates. */
double cost_mem_seconds(const Chip *c, MemSpace ms, double bytes);

/* Seconds of one DMA of `bytes` (latency + transfer), and of the transfer
 * alone (the part that occupies the shared HBM path). */
double cost_dma_seconds(const Chip *c, double bytes);
double cost_dma_transfer_seconds(const Chip *c, double bytes);

/* The unit an instruction runs on: its own (tiled level) or its op's default. */
Unit cost_unit(const Inst *in);

/* Seconds an op keeps its unit busy, including op_issue_cycles; for DMA and
 * collectives see the engine. */
double cost_op_seconds(const Chip *c, const Module *m, const Inst *in);
/* The same, given cost_mem_bytes(m, in) (callers that need both). */
double cost_op_seconds_bytes(const Chip *c, const Module *m, const Inst *in,
                             const double bytes[MEM_COUNT]);

/* ---- Inlined helpers for the per-instruction paths of cost.c and
 * engine.c (they run once per value or per op). */

/* dtype_bytes without the call: the sizes are the dtypes' own (any other
 * value asks ir/core.c). */
static inline int sim_elem_bytes(DType t)
{
	switch (t) {
	case DT_F32:
	case DT_S32:
		return 4;
	case DT_BF16:
	case DT_F16:
		return 2;
	case DT_S8:
	case DT_PRED:
		return 1;
	default:
		return dtype_bytes(t);
	}
}

/* type_bytes, as a double. */
static inline double sim_bytes(const Type *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return (double)(n * sim_elem_bytes(t->dtype));
}

/* fmax/fmin as glibc computes them (a NaN operand yields the other; of
 * equal operands, the second). */
static inline double sim_max(double x, double y)
{
	if (x != x)
		return y;
	if (y != y)
		return x;
	return x > y ? x : y;
}

static inline double sim_min(double x, double y)
{
	if (x != x)
		return y;
	if (y != y)
		return x;
	return x < y ? x : y;
}

#endif
