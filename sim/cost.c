/*
 * Per-op cost models (see cost.h). Each function reads only the chip file's
 * parameters and the instruction; nothing here is tuned to a workload.
 *
 * The dot's work is split over the chip's MXUs (tensorcores x mxus_per_core):
 * whole weight tiles when there are at least as many tiles as MXUs, otherwise
 * the streamed rows are split too, so that a big-M, small-K/N matmul still
 * uses every MXU. Each MXU then runs the fast weight-stationary model.
 */
#include "cost.h"

#include <math.h>
#include <string.h>

#include "mxu.h"

/* type_numel, inlined: it runs per operand (sim_bytes in cost.h is
 * type_bytes). */
static inline double numel_d(const Type *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return (double)n;
}

Unit cost_unit(const Inst *in)
{
	return in->unit != UNIT_NONE ? in->unit : ir_ops[in->op].unit;
}

int cost_dot_dims(const Module *m, const Inst *in, DotDims *dd)
{
	if (in->op != OP_DOT || in->nargs != 2)
		return -1;
	const Type *a = &m->insts[in->args[0]].type, *b = &m->insts[in->args[1]].type;
	int nlc, nrc, nlb, nrb;
	const int64_t *lc = ir_attr_ints(in, "lhs_contract", &nlc);
	const int64_t *rc = ir_attr_ints(in, "rhs_contract", &nrc);
	const int64_t *lb = ir_attr_ints(in, "lhs_batch", &nlb);
	const int64_t *rb = ir_attr_ints(in, "rhs_batch", &nrb);
	(void)rc;
	(void)rb;
	if (nlc != nrc || nlb != nrb)
		return -1;
	unsigned used_a = 0, used_b = 0;
	dd->batch = dd->m = dd->k = dd->n = 1;
	for (int i = 0; i < nlc; i++) {
		if (lc[i] < 0 || lc[i] >= a->rank || rc[i] < 0 || rc[i] >= b->rank)
			return -1;
		dd->k *= a->dims[lc[i]];
		used_a |= 1u << lc[i];
		used_b |= 1u << rc[i];
	}
	for (int i = 0; i < nlb; i++) {
		if (lb[i] < 0 || lb[i] >= a->rank || rb[i] < 0 || rb[i] >= b->rank)
			return -1;
		dd->batch *= a->dims[lb[i]];
		used_a |= 1u << lb[i];
		used_b |= 1u << rb[i];
	}
	for (int i = 0; i < a->rank; i++)
		if (!(used_a & (1u << i)))
			dd->m *= a->dims[i];
	for (int i = 0; i < b->rank; i++)
		if (!(used_b & (1u << i)))
			dd->n *= b->dims[i];
	return 0;
}

double cost_flops(const Module *m, const Inst *in)
{
	const OpInfo *oi = &ir_ops[in->op];
	if (in->op == OP_DOT) {
		DotDims dd;
		if (cost_dot_dims(m, in, &dd) != 0)
			return 0;
		return 2.0 * (double)dd.batch * (double)dd.m * (double)dd.k * (double)dd.n;
	}
	if (oi->flags & (OPF_LAYOUT | OPF_LEAF | OPF_COLLECTIVE | OPF_TILED))
		return 0;
	if (oi->flags & OPF_REDUCE)
		return in->nargs ? numel_d(&m->insts[in->args[0]].type) : 0;
	return numel_d(&in->type);
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

double cost_mxu_cycles(const Chip *c, const Module *m, const Inst *in)
{
	DotDims dd;
	if (cost_dot_dims(m, in, &dd) != 0)
		return 0;
	int R = c->mxu_rows, C = c->mxu_cols;
	int64_t nmxu = (int64_t)c->tensorcores * c->mxus_per_core;
	/* rows streamed per weight tile: the tiling's M extent, else all of M.
	 * The dot's loop dims are its result dims (batch, lhs free, rhs free)
	 * then its contracting dims (docs/codegen.md); M is the lhs free group. */
	int64_t tm = dd.m;
	int nlc = 0, nlb = 0;
	ir_attr_ints(in, "lhs_contract", &nlc);
	ir_attr_ints(in, "lhs_batch", &nlb);
	int nlf = m->insts[in->args[0]].type.rank - nlc - nlb;
	if (in->tiling.ntile == in->type.rank + nlc && nlf > 0) {
		int64_t t = 1;
		for (int i = nlb; i < nlb + nlf; i++) {
			int64_t e = in->tiling.tile[i], dim = in->type.dims[i];
			t *= e > 0 && e < dim ? e : dim;
		}
		tm = t;
	}
	int64_t mchunks = cdiv(dd.m, tm);
	int64_t nk = cdiv(dd.k, R), nn = cdiv(dd.n, C);
	int64_t tiles = dd.batch * mchunks * nk * nn; /* weight tiles to load and stream */
	int64_t n_last = dd.n - (nn - 1) * C;
	int64_t P = tm > R ? tm : R;
	if (C > P)
		P = C;
	if (tiles >= nmxu) {
		/* whole tiles per MXU; the busiest MXU sets the time */
		int64_t per = cdiv(tiles, nmxu);
		return (double)((per - 1) * P + tm + R + n_last - 1);
	}
	/* fewer tiles than MXUs: split the streamed rows too */
	int64_t groups = nmxu / tiles;
	int64_t mrows = cdiv(tm, groups);
	return (double)mxu_cycles(MXU_WS, R, C, mrows, dd.k < R ? dd.k : R,
	                          dd.n < C ? dd.n : C);
}

double cost_vpu_cycles(const Chip *c, const Module *m, const Inst *in)
{
	double width = (double)c->vpu_sublanes * c->vpu_lanes; /* elements per vreg */
	double lanes = width * c->vpu_alus * c->tensorcores;   /* element-ops per cycle */
	double vregs_per_cycle = (double)c->tensorcores;       /* one cross-lane unit per core */
	double out = numel_d(&in->type);
	double inn = in->nargs ? numel_d(&m->insts[in->args[0]].type) : out;
	const OpInfo *oi = &ir_ops[in->op];
	double per = (oi->flags & OPF_TRANSC) ? c->vpu_transc_cost : 1.0;
	switch (in->op) {
	case OP_REDUCE_SUM:
	case OP_REDUCE_MAX:
		/* elementwise accumulate across vregs, then cross-lane on the rest */
		return inn / lanes + ceil(out / width) * c->vpu_xlane_cycles / vregs_per_cycle;
	case OP_SOFTMAX:
		/* max, subtract, exp, sum, divide: 4 passes + one transcendental,
		 * and two cross-lane reductions over the rows */
		return inn * (4.0 + c->vpu_transc_cost) / lanes +
		       2.0 * ceil(inn / width) * c->vpu_xlane_cycles / vregs_per_cycle / 8.0;
	case OP_TRANSPOSE:
		return ceil(out / width) * c->vpu_xlane_cycles / vregs_per_cycle;
	case OP_BROADCAST:
	case OP_SLICE:
	case OP_CONCAT:
	case OP_GATHER:
	case OP_ONE_HOT:
	case OP_IOTA:
		return out / lanes; /* one store per element */
	default:
		break;
	}
	if (oi->flags & OPF_ELEMWISE)
		return out * per / lanes;
	return out / lanes;
}

static MemSpace value_mem(const Module *m, ValueId v)
{
	const Inst *in = &m->insts[v];
	if (in->mem != MEM_NONE)
		return in->mem;
	return in->op == OP_PARAMETER ? MEM_HBM : MEM_VMEM;
}

void cost_mem_bytes(const Module *m, const Inst *in, double bytes[MEM_COUNT])
{
	for (int i = 0; i < MEM_COUNT; i++)
		bytes[i] = 0;
	for (int i = 0; i < in->nargs; i++)
		bytes[value_mem(m, in->args[i])] += sim_bytes(&m->insts[in->args[i]].type);
	MemSpace out = in->mem != MEM_NONE ? in->mem : MEM_VMEM;
	bytes[out] += sim_bytes(&in->type);
}

double cost_mem_seconds(const Chip *c, MemSpace ms, double bytes)
{
	double hbm = c->hbm_bw * c->hbm_efficiency;
	switch (ms) {
	case MEM_HBM:
	case MEM_NONE:
		return bytes / hbm;
	case MEM_VMEM:
	case MEM_CMEM: /* CMEM: no public bandwidth; treated as on-chip like VMEM */
		return bytes / (hbm * c->vmem_bw_ratio);
	case MEM_COUNT:
		break;
	}
	return 0;
}

double cost_dma_transfer_seconds(const Chip *c, double bytes)
{
	return bytes / (c->hbm_bw * c->hbm_efficiency);
}

double cost_dma_seconds(const Chip *c, double bytes)
{
	return c->dma_latency + cost_dma_transfer_seconds(c, bytes);
}

double cost_op_seconds_bytes(const Chip *c, const Module *m, const Inst *in,
                             const double b[MEM_COUNT])
{
	Unit u = cost_unit(in);
	double issue = chip_seconds(c, c->op_issue_cycles);
	switch (u) {
	case UNIT_NONE:
		return 0;
	case UNIT_MXU: {
		double mxu = chip_seconds(c, cost_mxu_cycles(c, m, in));
		double mem = 0;
		for (int i = 0; i < MEM_COUNT; i++)
			mem = sim_max(mem, cost_mem_seconds(c, (MemSpace)i, b[i]));
		return sim_max(mxu, mem) + issue;
	}
	case UNIT_VPU: {
		double comp = chip_seconds(c, cost_vpu_cycles(c, m, in));
		double mem = 0;
		for (int i = 0; i < MEM_COUNT; i++)
			mem = sim_max(mem, cost_mem_seconds(c, (MemSpace)i, b[i]));
		return sim_max(comp, mem) + issue;
	}
	case UNIT_DMA:
		return cost_dma_seconds(c, in->nargs ? sim_bytes(&in->type) : 0) + issue;
	case UNIT_ICI:
	case UNIT_DCN:
	case UNIT_COUNT:
		break;
	}
	return issue;
}

double cost_op_seconds(const Chip *c, const Module *m, const Inst *in)
{
	double b[MEM_COUNT] = {0};
	Unit u = cost_unit(in);
	if (u == UNIT_MXU || u == UNIT_VPU)
		cost_mem_bytes(m, in, b);
	return cost_op_seconds_bytes(c, m, in, b);
}
