/*
 * The tile pass (compiler/tile.c) on the per-chip training steps of
 * tiny-decoder and palm-8b: every instruction's unit, memory space and
 * tiling follow the rules of docs/compiler.md ("tile"), dot tiles are
 * multiples of the MXU array and fit VMEM (the footprint is computed here),
 * the module verifies, the engine runs it without a VMEM spill, and the MXU
 * time is the dots' FLOPs at peak within the padding their shapes imply
 * (bounds derived here from the shapes alone). Hand-built cases: padding of
 * dims below the array size, a large M split into equal chunks, the ICI/DCN
 * choice for collectives, and a chip whose VMEM cannot hold one tile.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testchip.h"
#include "testprog.h"
#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"
#include "ir/ir.h"
#include "sim/cost.h"
#include "sim/engine.h"

static Type ty(DType dt, int rank, const int64_t *dims)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.rank = rank;
	for (int i = 0; i < rank; i++)
		t.dims[i] = dims[i];
	return t;
}

static Module *local_step(const char *model, int64_t batch, int64_t seq)
{
	/* 2D weight sharding inside a slice, data parallel over two slices:
	 * the step has ICI collectives and DCN ones */
	TestProg p = {.model = model, .batch = batch, .seq = seq, .optimizer = OPTIMIZER_ADAFACTOR,
	              .naxes = 3, .axes = {{"fsdp", 4, 1}, {"tensor", 2, 1}, {"data", 1, 2}}};
	return test_local_program(&p);
}

/* The dims of a dot's flattened groups and its tile per group. */
typedef struct DotTile {
	int64_t batch, M, N, K;     /* the dot's sizes */
	int64_t tm, tn, tk;         /* products of the tile extents per group */
	int batch_tiles_one;        /* every batch dim's tile is 1 */
	int lb, rb;                 /* operand dtype bytes */
} DotTile;

static DotTile dot_tile(const Module *m, const Inst *in)
{
	DotTile t;
	memset(&t, 0, sizeof t);
	const Type *lt = &m->insts[in->args[0]].type;
	int nlc, nlb;
	const int64_t *lc = ir_attr_ints(in, "lhs_contract", &nlc);
	ir_attr_ints(in, "lhs_batch", &nlb);
	int r = in->type.rank, nlf = lt->rank - nlc - nlb;
	ck_assert_int_eq(in->tiling.ntile, r + nlc);
	t.batch = t.M = t.N = t.K = 1;
	t.tm = t.tn = t.tk = 1;
	t.batch_tiles_one = 1;
	for (int i = 0; i < r; i++) {
		int64_t e = in->tiling.tile[i];
		if (i < nlb) {
			t.batch *= in->type.dims[i];
			t.batch_tiles_one &= e == 1;
		} else if (i < nlb + nlf) {
			t.M *= in->type.dims[i];
			t.tm *= e;
		} else {
			t.N *= in->type.dims[i];
			t.tn *= e;
		}
	}
	for (int i = 0; i < nlc; i++) {
		t.K *= lt->dims[lc[i]];
		t.tk *= in->tiling.tile[r + i];
	}
	t.lb = dtype_bytes(lt->dtype);
	t.rb = dtype_bytes(m->insts[in->args[1]].type.dtype);
	return t;
}

/* docs/compiler.md: double-buffered lhs and rhs tiles and an f32 result
 * tile. */
static double footprint(const DotTile *t)
{
	return 2.0 * ((double)t->tm * t->tk * t->lb + (double)t->tk * t->tn * t->rb +
	              (double)t->tm * t->tn * 4.0);
}

static int64_t up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

static int is_collective(const Inst *in)
{
	return (ir_ops[in->op].flags & OPF_COLLECTIVE) != 0;
}

static Unit expected_collective_unit(const Module *m, const Inst *in)
{
	const Attr *a = ir_attr(in, "axes");
	ck_assert_ptr_nonnull(a);
	for (int i = 0; i < a->n; i++) {
		int k = mesh_axis_index(&m->mesh, a->names[i], strlen(a->names[i]));
		ck_assert_int_ge(k, 0);
		if (m->mesh.axes[k].dcn > 1)
			return UNIT_DCN;
	}
	return UNIT_ICI;
}

/* Checks every instruction of a fused, tiled module against the rules. */
static void check_tiled(const Module *m, const Chip *c, int *ndots, int *ndcn)
{
	int n = m->ninsts;
	ck_assert_int_eq(m->level, LEVEL_TILED);
	int64_t *kern = malloc(sizeof *kern * (size_t)n);
	unsigned char *leaves = calloc((size_t)n, 1);
	for (int v = 0; v < n; v++)
		kern[v] = ir_attr_int(&m->insts[v], "fusion", -1);
	for (int v = 0; v < n; v++)
		for (int i = 0; i < m->insts[v].nargs; i++) {
			ValueId a = m->insts[v].args[i];
			if (kern[a] < 0 || kern[a] != kern[v])
				leaves[a] = 1;
		}
	for (int i = 0; i < m->noutputs; i++)
		leaves[m->outputs[i]] = 1;
	for (int v = n - 1; v >= 0; v--) /* a view that leaves takes its operand with it */
		if (m->insts[v].op == OP_RESHAPE && leaves[v])
			leaves[m->insts[v].args[0]] = 1;
	int64_t R = c->mxu_rows, C = c->mxu_cols;
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		const Tiling *t = &in->tiling;
		if (in->op == OP_PARAMETER) {
			ck_assert_int_eq(in->unit, UNIT_NONE);
			ck_assert_int_eq(in->mem, MEM_HBM);
			ck_assert_int_eq(t->ntile, 0);
		} else if (in->op == OP_RESHAPE) {
			ck_assert_int_eq(in->unit, UNIT_NONE);
			ck_assert_int_eq(in->mem, m->insts[in->args[0]].mem);
		} else if (is_collective(in)) {
			Unit u = expected_collective_unit(m, in);
			ck_assert_int_eq(in->unit, u);
			*ndcn += u == UNIT_DCN;
			ck_assert_int_eq(in->mem, MEM_HBM);
			ck_assert_int_eq(t->ntile, 0);
		} else if (in->op == OP_CONSTANT) {
			ck_assert_int_eq(in->unit, UNIT_NONE);
			ck_assert_int_eq(in->mem, MEM_VMEM);
		} else {
			ck_assert_msg(kern[v] >= 0, "%%%d (%s) is in no kernel", v, op_name(in->op));
			ck_assert_msg(in->mem == (leaves[v] ? MEM_HBM : MEM_VMEM),
			              "%%%d (%s): memory space %s", v, op_name(in->op), mem_name(in->mem));
		}
		if (in->op == OP_DOT) {
			(*ndots)++;
			ck_assert_int_eq(in->unit, UNIT_MXU);
			DotTile dt = dot_tile(m, in);
			ck_assert(dt.batch_tiles_one);
			ck_assert_msg(dt.tm == dt.M || (dt.tm % R == 0 && dt.tm < dt.M),
			              "%%%d: tm %lld (M %lld)", v, (long long)dt.tm, (long long)dt.M);
			ck_assert_msg(dt.tk % R == 0 && dt.tn % C == 0, "%%%d: tk %lld tn %lld", v,
			              (long long)dt.tk, (long long)dt.tn);
			/* no more than one array's worth of padding past the dims */
			ck_assert_int_le(dt.tk, up(dt.K, R) + R * 8);
			ck_assert_int_le(dt.tn, up(dt.N, C) + C * 8);
			ck_assert_msg(footprint(&dt) <= c->vmem_bytes / 2,
			              "%%%d: footprint %.0f bytes", v, footprint(&dt));
			for (int i = 0; i < t->ntile; i++)
				ck_assert_int_eq(t->order[i], i);
		} else if (in->op != OP_PARAMETER && in->op != OP_RESHAPE && !is_collective(in)) {
			if (in->op != OP_CONSTANT)
				ck_assert_int_eq(in->unit, UNIT_VPU);
			int r = in->type.rank;
			ck_assert_int_eq(t->ntile, r);
			double bytes = dtype_bytes(in->type.dtype);
			for (int i = 0; i < r; i++) {
				ck_assert_int_ge(t->tile[i], 1);
				bytes *= (double)t->tile[i];
			}
			if (r >= 1)
				ck_assert_int_eq(t->tile[r - 1] % c->vpu_lanes, 0);
			if (r >= 2)
				ck_assert_int_eq(t->tile[r - 2] % c->vpu_sublanes, 0);
			ck_assert_msg(2 * bytes <= c->vmem_bytes / 2, "%%%d: tile of %.0f bytes", v, bytes);
		}
	}
	free(kern);
	free(leaves);
}

/* MXU busy time with memory and issue costs taken out, bounded from the
 * shapes: at least the padded work (K and N rounded up to the array, every
 * weight tile streaming M rows, spread over all MXUs), at most that with M
 * rounded up to the array size plus one tile's fill and drain per dot. */
static void check_mxu_time(const Module *m, const Chip *c0)
{
	Chip c = *c0;
	c.hbm_bw = 1e30;
	c.op_issue_cycles = 0;
	SimResult res;
	Diag d;
	diag_init(&d);
	ck_assert_msg(engine_run(m, &c, NULL, &res, &d) == 0, "%s", d.msg);
	double R = c.mxu_rows, C = c.mxu_cols, nmxu = (double)c.tensorcores * c.mxus_per_core;
	double lo = 0, hi = 0, flops = 0;
	for (int v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		if (in->op != OP_DOT)
			continue;
		DotTile t = dot_tile(m, in);
		double nk = ceil((double)t.K / R), nn = ceil((double)t.N / C);
		double big = fmax((double)t.M, fmax(R, C));
		lo += (double)t.batch * nk * nn * (double)t.M / nmxu;
		hi += (double)t.batch * nk * nn * big / nmxu + big + R + C;
		flops += 2.0 * (double)t.batch * (double)t.M * (double)t.K * (double)t.N;
	}
	double busy = res.busy[UNIT_MXU] * c.clock_hz;
	ck_assert_msg(busy >= flops / (c.peak_flops / c.clock_hz) * (1 - 1e-9),
	              "MXU %.0f cycles, FLOPs at peak %.0f", busy, flops / (c.peak_flops / c.clock_hz));
	ck_assert_msg(busy >= lo * (1 - 1e-9) && busy <= hi * (1 + 1e-9),
	              "MXU %.0f cycles, bounds [%.0f, %.0f]", busy, lo, hi);
	sim_result_free(&res);
}

static void run_model(const char *model)
{
	Chip c = test_chip("tpu-v4");
	Module *m = local_step(model, 8, 64);
	pass_fuse(m);
	Diag d;
	diag_init(&d);
	ck_assert_msg(pass_tile(m, &c, &d) == 0, "%s", d.msg);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	int ndots = 0, ndcn = 0;
	check_tiled(m, &c, &ndots, &ndcn);
	ck_assert_int_gt(ndots, 0);
	ck_assert_int_gt(ndcn, 0); /* the gradient all-reduces over data span slices */
	int nici = 0;
	for (int v = 0; v < m->ninsts; v++)
		nici += m->insts[v].unit == UNIT_ICI;
	ck_assert_int_gt(nici, 0); /* fsdp gathers, tensor all-reduces */
	SimResult res;
	ck_assert_msg(engine_run(m, &c, NULL, &res, &d) == 0, "%s", d.msg);
	ck_assert_msg(res.spill_bytes == 0, "%s: %.0f bytes spilled from VMEM (peak %.0f)", model,
	              res.spill_bytes, res.mem_peak[MEM_VMEM]);
	ck_assert(res.seconds > 0);
	sim_result_free(&res);
	check_mxu_time(m, &c);
	/* the text form round-trips with the tiling */
	char *text = ir_print_string(m);
	Module *p = ir_parse(text, strlen(text), "tiled.tir", &d);
	ck_assert_msg(p != NULL, "%s", d.msg);
	ck_assert_int_eq(p->ninsts, m->ninsts);
	for (int v = 0; v < m->ninsts; v++) {
		ck_assert_int_eq(p->insts[v].unit, m->insts[v].unit);
		ck_assert_int_eq(p->insts[v].mem, m->insts[v].mem);
		ck_assert_int_eq(p->insts[v].tiling.ntile, m->insts[v].tiling.ntile);
	}
	ir_module_free(p);
	free(text);
	ir_module_free(m);
}

START_TEST(tiny_decoder_tiled)
{
	run_model("tiny-decoder");
}
END_TEST

START_TEST(palm_8b_tiled)
{
	run_model("palm-8b");
}
END_TEST

/* One bf16 matmul [M,K] x [K,N], fused and tiled for c; *y is the dot. */
static Module *tiled_matmul(const Chip *c, int64_t M, int64_t K, int64_t N, ValueId *y)
{
	Module *m = ir_module_new("mm", LEVEL_GRAPH);
	const int64_t mk[] = {M, K}, kn[] = {K, N};
	ValueId x = ir_param(m, "x", ty(DT_BF16, 2, mk));
	ValueId w = ir_param(m, "w", ty(DT_BF16, 2, kn));
	*y = ir_matmul(m, x, w);
	ir_output(m, *y);
	pass_fuse(m);
	Diag d;
	diag_init(&d);
	ck_assert_msg(pass_tile(m, c, &d) == 0, "%s", d.msg);
	return m;
}

/* K = 100 and N = 200 are not multiples of 128: the tiles are padded to
 * the array (tk 128, tn 256) and M = 512 fits whole. */
START_TEST(padding_below_array)
{
	Chip c = test_chip("tpu-v4");
	ValueId y;
	Module *m = tiled_matmul(&c, 512, 100, 200, &y);
	Diag d;
	diag_init(&d);
	const Tiling *t = &m->insts[y].tiling;
	ck_assert_int_eq(t->ntile, 3);
	ck_assert_int_eq(t->tile[0], 512);
	ck_assert_int_eq(t->tile[1], 256);
	ck_assert_int_eq(t->tile[2], 128);
	/* the MXU pays for two 128-column passes: at least 2 x 512 rows over
	 * the chip's MXUs, not 200/128 of them */
	Chip fast = c;
	fast.hbm_bw = 1e30;
	fast.op_issue_cycles = 0;
	SimResult res;
	ck_assert_msg(engine_run(m, &fast, NULL, &res, &d) == 0, "%s", d.msg);
	double nmxu = (double)c.tensorcores * c.mxus_per_core;
	ck_assert(res.busy[UNIT_MXU] * c.clock_hz >= 2 * 512 / nmxu);
	sim_result_free(&res);
	ir_module_free(m);
}
END_TEST

/* A large M cannot stream whole: it is split into equal chunks that are
 * multiples of the array, as large as VMEM allows (twice the chunk no
 * longer fits with the smallest weight tile). */
START_TEST(large_m_split)
{
	Chip c = test_chip("tpu-v4");
	ValueId y;
	Module *m = tiled_matmul(&c, 65536, 4096, 4096, &y);
	DotTile t = dot_tile(m, &m->insts[y]);
	ck_assert_int_lt(t.tm, 65536);
	ck_assert_int_eq(t.tm % c.mxu_rows, 0);
	ck_assert_int_eq(65536 % t.tm, 0);
	ck_assert(footprint(&t) <= c.vmem_bytes / 2);
	DotTile twice = t;
	twice.tm = 2 * t.tm;
	twice.tk = c.mxu_rows;
	twice.tn = c.mxu_cols;
	ck_assert(footprint(&twice) > c.vmem_bytes / 2);
	ir_module_free(m);
}
END_TEST

START_TEST(collective_units)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("coll", LEVEL_GRAPH);
	m->mesh.naxes = 2;
	m->mesh.axes[0] = (MeshAxis){"fsdp", 4, 1};
	m->mesh.axes[1] = (MeshAxis){"data", 2, 2};
	const int64_t dims[] = {256, 256};
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, dims));
	ValueId a = ir_collective(m, OP_ALL_REDUCE, x, 1u, 0);
	ValueId b = ir_collective(m, OP_ALL_REDUCE, a, 2u, 0);
	ValueId e = ir_collective(m, OP_ALL_REDUCE, b, 3u, 0);
	ir_output(m, e);
	pass_fuse(m);
	Diag d;
	diag_init(&d);
	ck_assert_msg(pass_tile(m, &c, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(m->insts[a].unit, UNIT_ICI);
	ck_assert_int_eq(m->insts[b].unit, UNIT_DCN);
	ck_assert_int_eq(m->insts[e].unit, UNIT_DCN);
	for (ValueId v = a; v <= e; v++)
		ck_assert_int_eq(m->insts[v].mem, MEM_HBM);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	ir_module_free(m);
}
END_TEST

START_TEST(vmem_too_small)
{
	Chip c = test_chip("tpu-v4");
	c.vmem_bytes = 4096;
	Module *m = ir_module_new("small", LEVEL_GRAPH);
	const int64_t mk[] = {256, 256};
	ValueId x = ir_param(m, "x", ty(DT_BF16, 2, mk));
	ValueId y = ir_matmul(m, x, x);
	ir_output(m, y);
	pass_fuse(m);
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_tile(m, &c, &d), -1);
	ck_assert_msg(strstr(d.msg, "cannot hold one 128x128 MXU tile") != NULL, "%s", d.msg);
	ir_module_free(m);
}
END_TEST

/* A vector kernel of one member gets budget / 2 = vmem_bytes / 4 bytes per
 * tile (4 MiB on v4: 1 Mi f32 elements): the last dim whole (65536), then
 * 16 rows (a multiple of 8 sublanes), leading dim 1. */
START_TEST(vector_tile_split)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("vec", LEVEL_GRAPH);
	const int64_t dims[] = {16, 4096, 65536};
	ValueId x = ir_param(m, "x", ty(DT_F32, 3, dims));
	ValueId y = ir_unary(m, OP_EXP, x);
	ir_output(m, y);
	pass_fuse(m);
	Diag d;
	diag_init(&d);
	ck_assert_msg(pass_tile(m, &c, &d) == 0, "%s", d.msg);
	int64_t elems = (int64_t)(c.vmem_bytes / 4 / 4);
	const Tiling *t = &m->insts[y].tiling;
	ck_assert_int_eq(t->ntile, 3);
	ck_assert_int_eq(t->tile[2], 65536);
	ck_assert_int_eq(t->tile[1], elems / 65536 / c.vpu_sublanes * c.vpu_sublanes);
	ck_assert_int_eq(t->tile[0], 1);
	ck_assert_int_eq(m->insts[y].mem, MEM_HBM); /* returned */
	ir_module_free(m);
}
END_TEST

/* Without fusion attributes every instruction is a kernel of its own, so
 * every value goes to HBM. */
START_TEST(unfused_module_all_hbm)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("nofuse", LEVEL_GRAPH);
	const int64_t dims[] = {64, 256};
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, dims));
	ValueId y = ir_unary(m, OP_EXP, x);
	ValueId z = ir_unary(m, OP_NEG, y);
	ir_output(m, z);
	Diag d;
	diag_init(&d);
	ck_assert_msg(pass_tile(m, &c, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(m->insts[y].mem, MEM_HBM);
	ck_assert_int_eq(m->insts[z].mem, MEM_HBM);
	/* fused, the intermediate stays in VMEM */
	m->level = LEVEL_GRAPH;
	for (int v = 0; v < m->ninsts; v++) {
		m->insts[v].mem = MEM_NONE;
		memset(&m->insts[v].tiling, 0, sizeof m->insts[v].tiling);
	}
	pass_fuse(m);
	ck_assert_msg(pass_tile(m, &c, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(m->insts[y].mem, MEM_VMEM);
	ck_assert_int_eq(m->insts[z].mem, MEM_HBM);
	ir_module_free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("tile");
	TCase *tc = tcase_create("tile");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, tiny_decoder_tiled);
	tcase_add_test(tc, palm_8b_tiled);
	tcase_add_test(tc, padding_below_array);
	tcase_add_test(tc, large_m_split);
	tcase_add_test(tc, collective_units);
	tcase_add_test(tc, vmem_too_small);
	tcase_add_test(tc, vector_tile_split);
	tcase_add_test(tc, unfused_module_all_hbm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
