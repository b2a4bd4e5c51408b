/*
 * The event engine and the cost models on small tiled programs built with the
 * IR builder: rooflines (a large bf16 matmul at the chip's peak less fill,
 * drain and padding; a memory-bound op at HBM bandwidth; padding paid by
 * dims that are not multiples of the array), parallel units, dependencies,
 * asynchronous DMA and collectives overlapping compute, the DMA engine limit,
 * VMEM spill, the collective hook, and the Chrome trace file.
 *
 * Expected values are derived from the chip file's own parameters (peak,
 * bandwidth, latency) and first principles, never copied from a run.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testchip.h"
#include "ir/ir.h"
#include "sim/chip.h"
#include "sim/cost.h"
#include "sim/engine.h"
#include "sim/trace.h"

static ValueId param(Module *m, const char *name, Type t, MemSpace ms)
{
	ValueId v = ir_param(m, name, t);
	m->insts[v].mem = ms;
	return v;
}

static void place(Module *m, ValueId v, Unit u, MemSpace ms)
{
	m->insts[v].unit = u;
	m->insts[v].mem = ms;
}

/* A dma_start (to a memory space) of x, and its dma_done. */
static ValueId async_done(Module *m, ValueId s)
{
	Inst in = m->insts[s];
	int dma = in.op == OP_DMA_START;
	in.op = dma ? OP_DMA_DONE : OP_COLL_DONE;
	in.nattrs = 0;
	in.attrs = NULL;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = s;
	in.mem = dma ? MEM_VMEM : MEM_HBM;
	return ir_append(m, &in);
}

/* A start alone; its done comes later (async_done), where the stream waits. */
static ValueId async_start(Module *m, Op start_op, ValueId x, const char *to)
{
	Inst in;
	memset(&in, 0, sizeof in);
	in.op = start_op;
	in.type = m->insts[x].type;
	in.nargs = 1;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = x;
	in.unit = start_op == OP_DMA_START ? UNIT_DMA : UNIT_ICI;
	ValueId s = ir_append(m, &in);
	if (start_op == OP_DMA_START)
		ir_set_str(m, s, "to", to);
	else
		ir_set_str(m, s, "op", "all_reduce");
	return s;
}

/* A start immediately followed by its done. */
static ValueId async_pair(Module *m, Op start_op, ValueId x, const char *to, ValueId *start)
{
	ValueId s = async_start(m, start_op, x, to);
	if (start)
		*start = s;
	return async_done(m, s);
}

static SimResult run(const Module *m, const Chip *c, const EngineOptions *o)
{
	SimResult r;
	Diag d;
	diag_init(&d);
	ck_assert_msg(engine_run(m, c, o, &r, &d) == 0, "%s", d.msg);
	return r;
}

/* One bf16 matmul [M,K]x[K,N] with operands and result in memory ms. */
static double matmul_seconds(const Chip *c, int64_t M, int64_t K, int64_t N, MemSpace ms)
{
	Module *m = ir_module_new("mm", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, M, K), ms);
	ValueId b = param(m, "b", test_t2(DT_BF16, K, N), ms);
	ValueId y = ir_matmul(m, a, b);
	place(m, y, UNIT_MXU, ms);
	ir_output(m, y);
	m->level = LEVEL_TILED;
	SimResult r = run(m, c, NULL);
	double s = r.seconds;
	ck_assert(fabs(r.flops - 2.0 * M * K * N) < 1);
	ck_assert(fabs(r.busy[UNIT_MXU] - r.seconds) < 1e-12);
	sim_result_free(&r);
	ir_module_free(m);
	return s;
}

START_TEST(roofline_large_matmul_at_peak)
{
	static const char *chips[] = {"tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"};
	Chip c = test_chip(chips[_i]);
	int64_t n = 8192;
	double ideal = 2.0 * n * n * n / c.peak_flops;
	double s = matmul_seconds(&c, n, n, n, MEM_HBM);
	/* never faster than peak; fill, drain and issue cost well under 1% here */
	ck_assert_msg(s >= ideal, "%s: %g s beats the peak's %g s", c.name, s, ideal);
	ck_assert_msg(s <= ideal * 1.01, "%s: %g s, peak allows %g s", c.name, s, ideal);
}
END_TEST

START_TEST(roofline_padding_is_paid)
{
	/* operands in VMEM (they fit): a skinny matmul from HBM would be
	 * memory-bound and hide the padding */
	Chip c = test_chip("tpu-v4");
	int64_t M = 2048, K = 4096;
	double fit = matmul_seconds(&c, M, K, c.mxu_cols, MEM_VMEM);
	double over = matmul_seconds(&c, M, K, c.mxu_cols + 1, MEM_VMEM);
	/* one column past the array doubles the weight tiles: about 2x the time
	 * for 1/128 more FLOPs */
	ck_assert_msg(over > 1.9 * fit && over < 2.1 * fit, "fit %g, over %g", fit, over);
	double achieved = 2.0 * M * K * (c.mxu_cols + 1) / over;
	ck_assert(achieved < 0.55 * c.peak_flops);
	/* M and K off the array size pay too, less */
	double mk = matmul_seconds(&c, M + 1, K + 1, c.mxu_cols, MEM_VMEM);
	ck_assert(mk > fit);
}
END_TEST

/* A tiling that streams only 8 rows per weight tile: each 128x128 weight
 * tile then holds the array for max(8, 128) cycles while doing 8 rows of
 * work, so the matmul runs at no more than 8/128 of peak. */
START_TEST(small_row_tile_is_weight_load_bound)
{
	Chip c = test_chip("tpu-v4");
	int64_t M = 2048, K = 2048, N = 2048;
	Module *m = ir_module_new("mm", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, M, K), MEM_VMEM);
	ValueId b = param(m, "b", test_t2(DT_BF16, K, N), MEM_VMEM);
	ValueId y = ir_matmul(m, a, b);
	place(m, y, UNIT_MXU, MEM_VMEM);
	ir_output(m, y);
	m->level = LEVEL_TILED;
	SimResult whole = run(m, &c, NULL);
	m->insts[y].tiling.ntile = 3;
	m->insts[y].tiling.tile[0] = 8;
	m->insts[y].tiling.tile[1] = 128;
	m->insts[y].tiling.tile[2] = 128;
	SimResult tiled = run(m, &c, NULL);
	double flops = 2.0 * M * K * N;
	ck_assert(flops / whole.seconds > 0.9 * c.peak_flops);
	ck_assert_msg(flops / tiled.seconds <= c.peak_flops * 8 / 128,
	              "tm=8 reaches %g of peak", flops / tiled.seconds / c.peak_flops);
	ck_assert(flops / tiled.seconds > c.peak_flops * 8 / 128 * 0.9);
	sim_result_free(&whole);
	sim_result_free(&tiled);
	ir_module_free(m);
}
END_TEST

START_TEST(roofline_memory_bound_at_hbm_bw)
{
	Chip c = test_chip("tpu-v4");
	int64_t r = 16384, k = 16384;
	Module *m = ir_module_new("ew", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, r, k), MEM_HBM);
	ValueId b = param(m, "b", test_t2(DT_BF16, r, k), MEM_HBM);
	ValueId y = ir_binary(m, OP_ADD, a, b);
	place(m, y, UNIT_VPU, MEM_HBM);
	ir_output(m, y);
	m->level = LEVEL_TILED;
	SimResult res = run(m, &c, NULL);
	double bytes = 3.0 * r * k * 2;
	double want = bytes / (c.hbm_bw * c.hbm_efficiency);
	ck_assert_msg(fabs(res.seconds - want) <= 0.01 * want, "%g s, HBM roofline %g s",
	              res.seconds, want);
	ck_assert(fabs(res.hbm_bytes - bytes) < 1);
	sim_result_free(&res);
	ir_module_free(m);
}
END_TEST

START_TEST(dma_time_and_engine_limit)
{
	Chip c = test_chip("tpu-v4");
	/* one big DMA: latency + bytes at the achievable HBM bandwidth */
	Module *m = ir_module_new("dma", LEVEL_GRAPH);
	ValueId x = param(m, "x", test_t2(DT_F32, 1024, 1024), MEM_HBM);
	ir_output(m, async_pair(m, OP_DMA_START, x, "vmem", NULL));
	m->level = LEVEL_TILED;
	SimResult r = run(m, &c, NULL);
	double bytes = 1024.0 * 1024 * 4;
	double want = c.dma_latency + chip_seconds(&c, c.op_issue_cycles) +
	              bytes / (c.hbm_bw * c.hbm_efficiency);
	ck_assert_msg(fabs(r.seconds - want) < 1e-9, "%g vs %g", r.seconds, want);
	sim_result_free(&r);
	ir_module_free(m);

	/* 2 x dma_engines tiny DMAs: latency-bound, so they complete in about two
	 * latencies (one wave per engine set), not one latency each */
	m = ir_module_new("dmas", LEVEL_GRAPH);
	x = param(m, "x", test_t2(DT_F32, 8, 128), MEM_HBM);
	ValueId starts[64];
	for (int i = 0; i < 2 * c.dma_engines; i++) /* all in flight, then waited for */
		starts[i] = async_start(m, OP_DMA_START, x, "vmem");
	for (int i = 0; i < 2 * c.dma_engines; i++)
		ir_output(m, async_done(m, starts[i]));
	m->level = LEVEL_TILED;
	r = run(m, &c, NULL);
	ck_assert_msg(r.seconds > 2 * c.dma_latency && r.seconds < 3 * c.dma_latency,
	              "%g s for %d DMAs, latency %g", r.seconds, 2 * c.dma_engines,
	              c.dma_latency);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

/* dma_start(x); y = dot(a, b) (independent); dma_done; z = add(done, y):
 * the DMA runs under the matmul, so the total is max(dma, dot) + add, and
 * the add starts only when both are done. */
START_TEST(async_dma_overlaps_compute)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("ov", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, 1024, 4096), MEM_VMEM);
	ValueId b = param(m, "b", test_t2(DT_BF16, 4096, 1024), MEM_VMEM);
	ValueId x = param(m, "x", test_t2(DT_F32, 1024, 1024), MEM_HBM);
	ValueId ds = async_start(m, OP_DMA_START, x, "vmem");
	ValueId y = ir_matmul(m, a, b);
	ValueId y32 = ir_convert(m, y, DT_F32);
	ValueId dn = async_done(m, ds);
	ValueId z = ir_binary(m, OP_ADD, dn, y32);
	place(m, y, UNIT_MXU, MEM_VMEM);
	place(m, y32, UNIT_VPU, MEM_VMEM);
	place(m, z, UNIT_VPU, MEM_VMEM);
	ir_output(m, z);
	m->level = LEVEL_TILED;
	SimResult r = run(m, &c, NULL);
	double tdma = r.ops[ds].end - r.ops[ds].start;
	double tdot = r.ops[y].end - r.ops[y].start;
	ck_assert(tdma > 0 && tdot > 0);
	/* they overlap: the dot starts before the DMA ends */
	ck_assert(r.ops[y].start < r.ops[ds].end);
	ck_assert(r.ops[z].start >= r.ops[dn].end && r.ops[z].start >= r.ops[y32].end);
	ck_assert(r.ops[y32].start >= r.ops[y].end);
	ck_assert(r.seconds < tdma + tdot); /* less than running them in sequence */
	/* per-unit busy time is the sum of the ops on that unit */
	double vpu = (r.ops[y32].end - r.ops[y32].start) + (r.ops[z].end - r.ops[z].start);
	ck_assert(fabs(r.busy[UNIT_VPU] - vpu) < 1e-12);
	ck_assert(fabs(r.cycles - r.seconds * c.clock_hz) < 1e-3);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

/* Two independent VPU ops run one after the other on the one VPU; an MXU op
 * issued after them (in order: when the second starts) runs beside it. */
START_TEST(units_in_parallel_ops_in_order)
{
	Chip c = test_chip("tpu-v5e");
	Module *m = ir_module_new("par", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, 2048, 2048), MEM_VMEM);
	ValueId p = ir_unary(m, OP_EXP, a);
	ValueId q = ir_unary(m, OP_TANH, a);
	ValueId y = ir_matmul(m, a, a);
	place(m, p, UNIT_VPU, MEM_VMEM);
	place(m, q, UNIT_VPU, MEM_VMEM);
	place(m, y, UNIT_MXU, MEM_VMEM);
	ir_output(m, p);
	ir_output(m, q);
	ir_output(m, y);
	m->level = LEVEL_TILED;
	SimResult r = run(m, &c, NULL);
	ck_assert(r.ops[q].start >= r.ops[p].end);     /* one VPU: in order */
	ck_assert(r.ops[y].start < r.ops[q].end);      /* MXU alongside */
	ck_assert(r.ops[y].start == r.ops[q].start);   /* issued in order */
	double longest = fmax(r.ops[q].end, r.ops[y].end);
	ck_assert(fabs(r.seconds - longest) < 1e-15);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

static double fixed_collective(void *ctx, const Inst *in, const Module *m);

/* The stream waits at a done: an independent matmul after coll_done starts
 * only when the collective ends; before the done it runs under it. A plain
 * (synchronous) collective holds the stream the same way. */
START_TEST(done_holds_the_stream)
{
	Chip c = test_chip("tpu-v4");
	double fixed = 1e-3;
	EngineOptions o = {.collective_time = fixed_collective, .ctx = &fixed};
	for (int sync = 0; sync < 2; sync++) {
		Module *m = ir_module_new("wait", LEVEL_GRAPH);
		m->mesh.naxes = 1;
		m->mesh.axes[0] = (MeshAxis){"data", 4, 1};
		ValueId g = param(m, "g", test_t2(DT_F32, 1024, 1024), MEM_HBM);
		ValueId a = param(m, "a", test_t2(DT_BF16, 2048, 2048), MEM_VMEM);
		ValueId cd;
		if (sync) {
			cd = ir_collective(m, OP_ALL_REDUCE, g, 1u, 0);
			m->insts[cd].unit = UNIT_ICI;
		} else {
			cd = async_done(m, async_start(m, OP_COLL_START, g, NULL));
		}
		ValueId y = ir_matmul(m, a, a);
		place(m, y, UNIT_MXU, MEM_VMEM);
		ir_output(m, cd);
		ir_output(m, y);
		m->level = LEVEL_TILED;
		SimResult r = run(m, &c, &o);
		ck_assert_msg(r.ops[y].start >= fixed - 1e-15, "sync=%d: matmul starts at %g", sync,
		              r.ops[y].start);
		ck_assert(fabs(r.seconds - (fixed + (r.ops[y].end - r.ops[y].start))) < 1e-12);
		sim_result_free(&r);
		ir_module_free(m);
	}
}
END_TEST

static double fixed_collective(void *ctx, const Inst *in, const Module *m)
{
	(void)in;
	(void)m;
	return *(const double *)ctx;
}

START_TEST(collective_hook_and_async_overlap)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("coll", LEVEL_GRAPH);
	ValueId g = param(m, "g", test_t2(DT_F32, 1024, 1024), MEM_HBM);
	ValueId a = param(m, "a", test_t2(DT_BF16, 2048, 2048), MEM_VMEM);
	ValueId cs = async_start(m, OP_COLL_START, g, NULL);
	ValueId y = ir_matmul(m, a, a);
	ValueId cd = async_done(m, cs);
	place(m, y, UNIT_MXU, MEM_VMEM);
	ir_output(m, cd);
	ir_output(m, y);
	m->level = LEVEL_TILED;
	/* default: bytes over all links + one hop */
	SimResult r = run(m, &c, NULL);
	double want = 1024.0 * 1024 * 4 / (c.ici_link_bw * c.ici_links) + c.ici_hop_latency;
	ck_assert(fabs((r.ops[cs].end - r.ops[cs].start) - want) < 1e-12);
	ck_assert(r.ops[y].start < r.ops[cs].end); /* compute under the collective */
	sim_result_free(&r);
	/* the hook replaces it */
	double fixed = 3e-3;
	EngineOptions o = {.collective_time = fixed_collective, .ctx = &fixed};
	r = run(m, &c, &o);
	ck_assert(fabs((r.ops[cs].end - r.ops[cs].start) - fixed) < 1e-15);
	ck_assert(fabs(r.ops[cd].end - fixed) < 1e-15);
	ck_assert(fabs(r.busy[UNIT_ICI] - fixed) < 1e-15);
	/* costs made once serve a run with other collective times exactly as
	 * a run that makes its own */
	EngineCosts k;
	Diag d;
	diag_init(&d);
	ck_assert_msg(engine_costs(m, &c, &k, &d) == 0, "%s", d.msg);
	fixed = 5e-3;
	EngineOptions ok = {.collective_time = fixed_collective, .ctx = &fixed, .costs = &k};
	SimResult fresh = run(m, &c, &o), b = run(m, &c, &ok);
	ck_assert(fabs((b.ops[cs].end - b.ops[cs].start) - fixed) < 1e-15);
	ck_assert_int_eq(fresh.nops, b.nops);
	for (int i = 0; i < fresh.nops; i++) {
		ck_assert(fresh.ops[i].start == b.ops[i].start && fresh.ops[i].end == b.ops[i].end);
		ck_assert_int_eq(fresh.ops[i].unit, b.ops[i].unit);
	}
	ck_assert(fresh.seconds == b.seconds && fresh.flops == b.flops && fresh.hbm_bytes == b.hbm_bytes);
	for (int s = 0; s < MEM_COUNT; s++)
		ck_assert(fresh.mem_peak[s] == b.mem_peak[s]);
	for (int u = 0; u < UNIT_COUNT; u++)
		ck_assert(fresh.busy[u] == b.busy[u]);
	sim_result_free(&fresh);
	sim_result_free(&b);
	/* costs of another program are refused */
	EngineCosts other = k;
	other.n = k.n + 1;
	EngineOptions oo = {.costs = &other};
	SimResult bad;
	ck_assert(engine_run(m, &c, &oo, &bad, &d) != 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "engine costs"));
	engine_costs_free(&k);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

START_TEST(vmem_spill_costs_time)
{
	Chip c = test_chip("tpu-v4");
	double cap = c.vmem_bytes * c.tensorcores;
	int64_t rows = (int64_t)(cap / (1024 * 4)) / 2; /* half of VMEM per value */
	Module *m = ir_module_new("spill", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_F32, rows, 1024), MEM_VMEM);
	ValueId b = ir_unary(m, OP_NEG, a);
	ValueId e = ir_unary(m, OP_RELU, a);
	ValueId s = ir_binary(m, OP_ADD, b, e);
	place(m, b, UNIT_VPU, MEM_VMEM);
	place(m, e, UNIT_VPU, MEM_VMEM);
	place(m, s, UNIT_VPU, MEM_VMEM);
	ir_output(m, s);
	m->level = LEVEL_TILED;
	SimResult r = run(m, &c, NULL);
	/* a, b, e live together: 1.5x VMEM, so e spills half a VMEM */
	ck_assert(r.mem_peak[MEM_VMEM] >= 1.5 * cap - 1);
	ck_assert_msg(r.spill_bytes >= 0.5 * cap - 1, "spill %g", r.spill_bytes);
	double no_spill = cost_op_seconds(&c, m, &m->insts[e]);
	ck_assert(r.ops[e].end - r.ops[e].start > no_spill);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

START_TEST(trace_file_is_chrome_json)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("tr", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, 256, 256), MEM_HBM);
	ValueId dn = async_pair(m, OP_DMA_START, a, "vmem", NULL);
	ValueId y = ir_matmul(m, dn, dn);
	ValueId z = ir_unary(m, OP_TANH, y);
	place(m, y, UNIT_MXU, MEM_VMEM);
	place(m, z, UNIT_VPU, MEM_VMEM);
	ir_output(m, z);
	m->level = LEVEL_TILED;
	SimResult r = run(m, &c, NULL);
	char path[] = "/tmp/podsim_trace_XXXXXX";
	int fd = mkstemp(path);
	ck_assert(fd >= 0);
	close(fd);
	Diag d;
	diag_init(&d);
	ck_assert_msg(trace_write(path, m, &c, &r, &d) == 0, "%s", d.msg);
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	ck_assert_msg(root != NULL, "%s:%d: %s", path, je.line, je.text);
	json_t *ev = json_object_get(root, "traceEvents");
	ck_assert(json_is_array(ev));
	int complete = 0, threads = 0;
	size_t i;
	json_t *e;
	json_array_foreach(ev, i, e) {
		const char *ph = json_string_value(json_object_get(e, "ph"));
		const char *name = json_string_value(json_object_get(e, "name"));
		ck_assert(ph && name);
		if (!strcmp(ph, "X")) {
			complete++;
			ck_assert(json_number_value(json_object_get(e, "dur")) >= 0);
			ck_assert(json_is_integer(json_object_get(e, "tid")));
		}
		if (!strcmp(ph, "M") && !strcmp(name, "thread_name"))
			threads++;
	}
	ck_assert_int_eq(complete, 3); /* dma_start, dot, tanh */
	ck_assert_int_eq(threads, UNIT_COUNT - 1);
	json_decref(root);
	unlink(path);
	/* an unwritable path is an error with the path in it */
	diag_init(&d);
	ck_assert(trace_write("/nonexistent-dir/t.json", m, &c, &r, &d) != 0);
	ck_assert(strstr(d.msg, "/nonexistent-dir/t.json") != NULL);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

/* Cost models by hand. v4: 2 TensorCores x 8x128 lanes x 2 ALUs = 4096
 * element-ops per cycle, so adding two f32[1024,1024] takes 1M/4096 = 256
 * cycles of compute; tanh costs vpu_transc_cost times that. */
START_TEST(vpu_cost_by_hand)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("v", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_F32, 1024, 1024), MEM_VMEM);
	ValueId s = ir_binary(m, OP_ADD, a, a);
	ValueId t = ir_unary(m, OP_TANH, a);
	place(m, s, UNIT_VPU, MEM_VMEM);
	place(m, t, UNIT_VPU, MEM_VMEM);
	ck_assert(fabs(cost_vpu_cycles(&c, m, &m->insts[s]) - 256) < 1e-9);
	ck_assert(fabs(cost_vpu_cycles(&c, m, &m->insts[t]) - 256 * c.vpu_transc_cost) < 1e-9);
	ck_assert(fabs(cost_flops(m, &m->insts[s]) - 1024 * 1024) < 1e-9);
	ir_module_free(m);
}
END_TEST

/* One weight tile (K = N = 128) and M = 4096 rows on v4's 8 MXUs (2
 * TensorCores x 4): the rows are split 8 ways, 512 each, and one MXU takes
 * 512 + 128 + 128 - 1 cycles (stream, down the rows, across the columns). */
START_TEST(mxu_split_by_hand)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("x", LEVEL_GRAPH);
	ValueId a = param(m, "a", test_t2(DT_BF16, 4096, 128), MEM_VMEM);
	ValueId b = param(m, "b", test_t2(DT_BF16, 128, 128), MEM_VMEM);
	ValueId y = ir_matmul(m, a, b);
	place(m, y, UNIT_MXU, MEM_VMEM);
	ck_assert(fabs(cost_mxu_cycles(&c, m, &m->insts[y]) - (512 + 128 + 128 - 1)) < 1e-9);
	DotDims dd;
	ck_assert_int_eq(cost_dot_dims(m, &m->insts[y], &dd), 0);
	ck_assert(dd.batch == 1 && dd.m == 4096 && dd.k == 128 && dd.n == 128);
	ir_module_free(m);
}
END_TEST

/* A collective placed on DCN uses the DCN default: bytes / dcn_bw_per_chip +
 * dcn_latency, on the DCN track. */
START_TEST(dcn_collective_default)
{
	Chip c = test_chip("tpu-v5p");
	Module *m = ir_module_new("d", LEVEL_GRAPH);
	ValueId g = param(m, "g", test_t2(DT_F32, 256, 1024), MEM_HBM);
	ValueId cs;
	ValueId cd = async_pair(m, OP_COLL_START, g, NULL, &cs);
	m->insts[cs].unit = UNIT_DCN;
	ir_output(m, cd);
	m->level = LEVEL_TILED;
	SimResult r = run(m, &c, NULL);
	double want = 256.0 * 1024 * 4 / c.dcn_bw_per_chip + c.dcn_latency;
	ck_assert(r.ops[cs].unit == UNIT_DCN);
	ck_assert(fabs(r.seconds - want) < 1e-12);
	ck_assert(fabs(r.busy[UNIT_DCN] - want) < 1e-12 && r.busy[UNIT_ICI] == 0);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

START_TEST(graph_level_is_rejected)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("g", LEVEL_GRAPH);
	ir_output(m, param(m, "a", test_t2(DT_F32, 2, 2), MEM_HBM));
	SimResult r;
	Diag d;
	diag_init(&d);
	ck_assert(engine_run(m, &c, NULL, &r, &d) != 0);
	ck_assert(strstr(d.msg, "tiled") != NULL);
	ir_module_free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, roofline_large_matmul_at_peak, 0, 4);
	tcase_add_test(tc, roofline_padding_is_paid);
	tcase_add_test(tc, roofline_memory_bound_at_hbm_bw);
	tcase_add_test(tc, small_row_tile_is_weight_load_bound);
	tcase_add_test(tc, dma_time_and_engine_limit);
	tcase_add_test(tc, async_dma_overlaps_compute);
	tcase_add_test(tc, units_in_parallel_ops_in_order);
	tcase_add_test(tc, collective_hook_and_async_overlap);
	tcase_add_test(tc, done_holds_the_stream);
	tcase_add_test(tc, vmem_spill_costs_time);
	tcase_add_test(tc, trace_file_is_chrome_json);
	tcase_add_test(tc, graph_level_is_rejected);
	tcase_add_test(tc, vpu_cost_by_hand);
	tcase_add_test(tc, mxu_split_by_hand);
	tcase_add_test(tc, dcn_collective_default);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
