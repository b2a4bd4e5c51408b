/*
 * The tile pass: per-chip graph -> tiled level, for one chip description
 * (docs/compiler.md, "tile").
 *
 * Requires: a per-chip graph-level module on which fuse has run (fusion=[k]
 * marks kernel membership; a module without any fusion attribute is treated
 * as one kernel per instruction). Changes: m->level becomes LEVEL_TILED and
 * every instruction gets
 *
 *   unit    MXU for dot; VPU for vector work (elementwise, reduce, softmax,
 *           layout ops, gather, iota, one_hot); ICI for a collective whose
 *           mesh axes all stay inside a slice (dcn == 1), DCN when one of
 *           them spans slices; NONE for parameter, constant and reshape.
 *   mem     HBM for parameters, collective results and kernel values read
 *           outside their kernel (or returned); VMEM for values used only
 *           inside their kernel and for constants (a splat lives in a
 *           register); a reshape is a view and lives where its operand does.
 *   tiling  dot: loop dims = result dims (batch, lhs free, rhs free) then the
 *           contracting dims, as sim/cost.c and the LLVM backend read them,
 *           in that loop order. Batch tiles are 1. The flattened groups get
 *           tm (lhs free), tn (rhs free), tk (contracting): tk a multiple of
 *           mxu_rows and tn of mxu_cols (a group smaller than the array is
 *           padded up to it: the innermost dim's extent exceeds the dim), tm
 *           the whole lhs-free group or a multiple of mxu_rows. They are
 *           chosen so that 2 x (tm tk |lhs| + tk tn |rhs| + tm tn 4) bytes
 *           (double-buffered operand tiles and an f32 accumulator) fit the
 *           kernel's dot budget, tm first and as large as possible (weight
 *           reuse), then tk, then tn; a group that must be split is split
 *           into equal chunks, preferring extents that divide the dims, so
 *           that the tiling adds no padding of its own.
 *           vector ops and constants: one extent per result dim; the last
 *           dim a multiple of vpu_lanes, the one before a multiple of
 *           vpu_sublanes (vreg-aligned blocks, padded when the dims are
 *           smaller), leading dims grown while the block fits the budget.
 *           A constant gets one vreg block.
 *   budget  a kernel gets half of one TensorCore's VMEM (vmem_bytes / 2);
 *           the other half holds the neighbouring kernels' tiles in flight
 *           (the previous kernel's results draining, the next one's operands
 *           arriving). A kernel with a dot gives the dot half of its budget
 *           when it has other members (their tiles share the other half),
 *           all of it otherwise; in a vector kernel of n members each
 *           member's tile, double-buffered, gets budget / (2 n).
 *
 * Returns 0, or -1 with d filled when the chip cannot hold even the
 * smallest MXU tile in VMEM (or its array or vreg sizes are not positive).
 * Cost: O(instructions + operands), plus a divisor search bounded by the
 * tile extents per dot.
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The largest divisor of dim that is a multiple of align, at most e and at
 * least e / 2, or e if there is none: an extent that splits dim evenly
 * when one is close. Cost: min(e / (2 align), sqrt(dim)) steps. */
static int64_t even_extent_uncached(int64_t dim, int64_t e, int64_t align)
{
	int64_t hi = e / align * align, lo = (e + 1) / 2;
	if (hi < align)
		return e;
	int64_t steps = (hi - lo) / align;
	if (steps < 64 || steps * steps < dim) {
		for (int64_t x = hi; x >= lo && x >= align; x -= align)
			if (dim % x == 0)
				return x;
		return e;
	}
	int64_t best = 0;
	for (int64_t x = 1; x * x <= dim; x++) {
		if (dim % x)
			continue;
		int64_t y = dim / x;
		if (x <= e && x % align == 0 && x > best)
			best = x;
		if (y <= e && y % align == 0 && y > best)
			best = y;
	}
	return best >= lo ? best : e;
}

/* even_extent_uncached through a per-thread memo: a program asks for the
 * same few extents over and over (every layer, every layout of a sweep),
 * and each answer can cost thousands of divisions. */
static int64_t even_extent(int64_t dim, int64_t e, int64_t align)
{
	enum { MEMO = 1024 };
	static _Thread_local struct {
		int64_t dim, e, align, x;
	} memo[MEMO];
	uint64_t h = ((uint64_t)dim * 0x9e3779b97f4a7c15u) ^ ((uint64_t)e * 0xc2b2ae3d27d4eb4fu) ^
	             (uint64_t)align;
	h = (h ^ (h >> 29)) & (MEMO - 1);
	if (memo[h].dim != dim || memo[h].e != e || memo[h].align != align) {
		memo[h].dim = dim;
		memo[h].e = e;
		memo[h].align = align;
		memo[h].x = even_extent_uncached(dim, e, align);
	}
	return memo[h].x;
}

/* Tiles of one flattened group of loop dims (dims[0..nd), outermost first)
 * with a total extent of `target` elements (a multiple of align, or the
 * whole group). Whole group: the dims themselves, the innermost padded up
 * so that the product is a multiple of align when pad is set. Split: inner
 * dims whole while they fit, the split dim gets a multiple of the step that
 * keeps the product a multiple of align (preferring one that divides the
 * dim, within a factor of two), outer dims 1. */
static void tile_group(const int64_t *dims, int nd, int64_t target, int64_t align, int pad,
                       int64_t *out)
{
	if (nd == 0)
		return;
	int64_t total = 1;
	for (int i = 0; i < nd; i++)
		total *= dims[i];
	if (target >= total) {
		for (int i = 0; i < nd; i++)
			out[i] = dims[i];
		if (pad) {
			int64_t outer = total / dims[nd - 1];
			int64_t step = align / gcd64(align, outer);
			out[nd - 1] = round_up(dims[nd - 1], step);
		}
		return;
	}
	int64_t inner = 1;
	int i = nd - 1;
	for (; i >= 0 && inner * dims[i] <= target; i--) {
		out[i] = dims[i];
		inner *= dims[i];
	}
	/* i >= 0 here: the whole group does not fit */
	int64_t step = align / gcd64(align, inner);
	int64_t rem = target / inner;
	int64_t e = rem / step * step;
	if (e < step)
		e = step;
	out[i] = even_extent(dims[i], e, step);
	for (i--; i >= 0; i--)
		out[i] = 1;
}

/* The largest tile extent (a multiple of align, at least align) no larger
 * than max_fit, split evenly over `total` (padded to align): equal chunks. */
static int64_t balanced(int64_t total, int64_t max_fit, int64_t align)
{
	int64_t padded = round_up(total, align);
	if (max_fit >= padded)
		return padded;
	int64_t cap = max_fit / align * align;
	if (cap < align)
		cap = align;
	int64_t chunks = cdiv(padded, cap);
	return round_up(cdiv(padded, chunks), align);
}

/* Footprint of a dot tile, double-buffered: lhs, rhs and f32 accumulator. */
static double dot_footprint(int64_t tm, int64_t tn, int64_t tk, int lb, int rb)
{
	return 2.0 * ((double)tm * (double)tk * lb + (double)tk * (double)tn * rb +
	              (double)tm * (double)tn * 4.0);
}

static int tile_dot(Module *m, ValueId v, const Chip *c, double budget, Diag *d)
{
	Inst *in = &m->insts[v];
	const Type *lt = &m->insts[in->args[0]].type, *rt = &m->insts[in->args[1]].type;
	int nlc, nlb;
	const int64_t *lc = ir_attr_ints(in, "lhs_contract", &nlc);
	ir_attr_ints(in, "lhs_batch", &nlb);
	int r = in->type.rank, nlf = lt->rank - nlc - nlb;
	int nrf = r - nlb - nlf;
	if (r + nlc > IR_MAX_RANK || nlf < 0 || nrf < 0)
		return 0; /* no room for the loop dims: untiled, all of M streams */
	int64_t R = c->mxu_rows, C = c->mxu_cols;
	int lb = dtype_bytes(lt->dtype), rb = dtype_bytes(rt->dtype);
	int64_t kd[IR_MAX_RANK];
	int64_t M = 1, N = 1, K = 1;
	for (int i = nlb; i < nlb + nlf; i++)
		M *= in->type.dims[i];
	for (int i = nlb + nlf; i < r; i++)
		N *= in->type.dims[i];
	for (int i = 0; i < nlc; i++) {
		kd[i] = lt->dims[lc[i]];
		K *= kd[i];
	}
	int64_t tm0 = M < R ? M : R;
	if (dot_footprint(tm0, C, R, lb, rb) > budget) {
		diag_error(d, m->file, in->line, in->col,
		           "chip %s: VMEM (%.0f bytes per TensorCore) cannot hold one %lldx%lld MXU "
		           "tile of a dot, double-buffered (%.0f bytes)",
		           c->name, c->vmem_bytes, (long long)R, (long long)C,
		           dot_footprint(tm0, C, R, lb, rb));
		return -1;
	}
	/* tm: as large as fits with the smallest weight tile */
	int64_t tm;
	if (dot_footprint(M, C, R, lb, rb) <= budget) {
		tm = M;
	} else {
		double per_row = 2.0 * ((double)R * lb + (double)C * 4.0);
		double fixed = 2.0 * (double)R * (double)C * rb;
		int64_t fit = (int64_t)((budget - fixed) / per_row);
		tm = balanced(M, fit, R);
	}
	/* tk, then tn, with what is left */
	int64_t tk, tn;
	{
		double per = 2.0 * ((double)tm * lb + (double)C * rb);
		double fixed = 2.0 * (double)tm * (double)C * 4.0;
		tk = balanced(K, (int64_t)((budget - fixed) / per), R);
	}
	{
		double per = 2.0 * ((double)tk * rb + (double)tm * 4.0);
		double fixed = 2.0 * (double)tm * (double)tk * lb;
		tn = balanced(N, (int64_t)((budget - fixed) / per), C);
	}
	Tiling *t = &in->tiling;
	memset(t, 0, sizeof *t);
	t->ntile = r + nlc;
	for (int i = 0; i < nlb; i++)
		t->tile[i] = 1;
	tile_group(in->type.dims + nlb, nlf, tm, R, 0, t->tile + nlb);
	tile_group(in->type.dims + nlb + nlf, nrf, tn, C, 1, t->tile + nlb + nlf);
	tile_group(kd, nlc, tk, R, 1, t->tile + r);
	for (int i = 0; i < t->ntile; i++)
		t->order[i] = (int8_t)i;
	return 0;
}

/* Vreg-aligned blocks over the trailing dims: the smallest block is one
 * vreg (sublanes x lanes, padded when the dims are smaller); then the last
 * dim grows (in lanes), then the one before (in sublanes), then the leading
 * dims, each while the block stays within `budget` bytes; once a dim is not
 * whole, the dims outside it stay at their smallest. min_only: one vreg. */
static void tile_vector(Inst *in, const Chip *c, double budget, int min_only)
{
	Tiling *t = &in->tiling;
	memset(t, 0, sizeof *t);
	int r = in->type.rank;
	if (r == 0)
		return;
	t->ntile = r;
	int64_t align[IR_MAX_RANK], full[IR_MAX_RANK];
	for (int i = 0; i < r; i++) {
		align[i] = i == r - 1 ? c->vpu_lanes : i == r - 2 ? c->vpu_sublanes : 1;
		full[i] = round_up(in->type.dims[i], align[i]);
		t->tile[i] = align[i] < full[i] ? align[i] : full[i];
		t->order[i] = (int8_t)i;
	}
	if (min_only)
		return;
	double elems = budget / dtype_bytes(in->type.dtype);
	for (int i = r - 1; i >= 0; i--) {
		double others = 1;
		for (int k = 0; k < r; k++)
			if (k != i)
				others *= (double)t->tile[k];
		int64_t e = (int64_t)(elems / others) / align[i] * align[i];
		if (e > full[i])
			e = full[i];
		if (e < full[i])
			e = even_extent(in->type.dims[i], e, align[i]);
		if (e > t->tile[i])
			t->tile[i] = e;
		if (t->tile[i] < full[i])
			break;
	}
}

static Unit collective_unit(const Module *m, const Inst *in)
{
	const Attr *a = ir_attr(in, "axes");
	if (a && a->kind == ATTR_NAMES)
		for (int i = 0; i < a->n; i++) {
			int k = mesh_axis_index(&m->mesh, a->names[i], strlen(a->names[i]));
			if (k >= 0 && m->mesh.axes[k].dcn > 1)
				return UNIT_DCN;
		}
	return UNIT_ICI;
}

int pass_tile(Module *m, const Chip *c, Diag *d)
{
	if (c->mxu_rows < 1 || c->mxu_cols < 1 || c->vpu_lanes < 1 || c->vpu_sublanes < 1 ||
	    !(c->vmem_bytes > 0)) {
		diag_error(d, NULL, 0, 0, "chip %s: tiling needs positive mxu_rows, mxu_cols, "
		           "vpu_sublanes, vpu_lanes and vmem_bytes", c->name);
		return -1;
	}
	int n = m->ninsts;
	size_t cnt = (size_t)(n > 0 ? n : 1);
	int64_t *kern = malloc(cnt * sizeof *kern);
	unsigned char *leaves = calloc(cnt, 1);
	if (!kern || !leaves)
		ir_die("out of memory tiling %d instructions", n);
	/* kernel ids; without any fusion attribute each instruction is alone */
	int64_t nk = 0;
	for (int v = 0; v < n; v++) {
		kern[v] = ir_attr_int(&m->insts[v], "fusion", -1);
		if (kern[v] >= nk)
			nk = kern[v] + 1;
	}
	int *members = calloc((size_t)(nk > 0 ? nk : 1), sizeof *members);
	unsigned char *has_dot = calloc((size_t)(nk > 0 ? nk : 1), 1);
	if (!members || !has_dot)
		ir_die("out of memory tiling %d instructions", n);
	for (int v = 0; v < n; v++)
		if (kern[v] >= 0) {
			members[kern[v]]++;
			has_dot[kern[v]] |= m->insts[v].op == OP_DOT;
		}
	/* which values are read outside their kernel (views pass it on) */
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		for (int i = 0; i < in->nargs; i++) {
			ValueId a = in->args[i];
			if (kern[a] < 0 || kern[a] != kern[v])
				leaves[a] = 1;
		}
	}
	for (int i = 0; i < m->noutputs; i++)
		leaves[m->outputs[i]] = 1;
	for (int v = n - 1; v >= 0; v--)
		if (m->insts[v].op == OP_RESHAPE && leaves[v] && m->insts[v].nargs == 1)
			leaves[m->insts[v].args[0]] = 1;

	int rc = 0;
	double vmem = c->vmem_bytes / 2; /* a kernel's budget */
	for (int v = 0; v < n && rc == 0; v++) {
		Inst *in = &m->insts[v];
		unsigned fl = ir_ops[in->op].flags;
		memset(&in->tiling, 0, sizeof in->tiling);
		int64_t k = kern[v];
		int others = k >= 0 ? members[k] - (has_dot[k] ? 1 : 0) : 0;
		if (in->op == OP_PARAMETER) {
			in->unit = UNIT_NONE;
			in->mem = MEM_HBM;
		} else if (in->op == OP_CONSTANT) {
			in->unit = UNIT_NONE;
			in->mem = MEM_VMEM;
			tile_vector(in, c, 0, 1);
		} else if (in->op == OP_RESHAPE) {
			in->unit = UNIT_NONE;
			in->mem = in->nargs == 1 ? m->insts[in->args[0]].mem : MEM_HBM;
			if (in->mem == MEM_NONE)
				in->mem = MEM_HBM;
		} else if (fl & OPF_COLLECTIVE) {
			in->unit = collective_unit(m, in);
			in->mem = MEM_HBM;
		} else if (fl & OPF_TILED) {
			/* already tiled-level (dma, async collectives): keep as is */
			if (in->unit == UNIT_NONE)
				in->unit = ir_ops[in->op].unit;
			if (in->op == OP_COLL_START || in->op == OP_COLL_DONE)
				in->unit = collective_unit(m, in->op == OP_COLL_DONE && in->nargs == 1
				                                  ? &m->insts[in->args[0]] : in);
		} else if (in->op == OP_DOT) {
			in->unit = UNIT_MXU;
			in->mem = k >= 0 && !leaves[v] ? MEM_VMEM : MEM_HBM;
			rc = tile_dot(m, v, c, others > 0 ? vmem / 2 : vmem, d);
		} else {
			in->unit = ir_ops[in->op].unit == UNIT_NONE ? UNIT_VPU : ir_ops[in->op].unit;
			in->mem = k >= 0 && !leaves[v] ? MEM_VMEM : MEM_HBM;
			double share = k >= 0 && has_dot[k] ? vmem / 2 : vmem;
			tile_vector(in, c, share / (2.0 * (others > 0 ? others : 1)), 0);
		}
	}
	free(kern);
	free(leaves);
	free(members);
	free(has_dot);
	if (rc)
		return -1;
	m->level = LEVEL_TILED;
	return 0;
}
