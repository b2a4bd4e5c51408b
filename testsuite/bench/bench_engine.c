/*
 * Tiled ops per second through the event engine (target: at least 1 million
 * on one core). The program is a long straight line of the kinds of ops a
 * compiled step has: per layer a DMA pair, two matmuls and three VPU ops, each
 * depending on the previous layer, built once; the timed part is engine_run
 * alone, repeated. Usage: bench_engine [layers] [repeats]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir/ir.h"
#include "sim/chip.h"
#include "sim/engine.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static Type t2(DType dt, int64_t a, int64_t b)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.rank = 2;
	t.dims[0] = a;
	t.dims[1] = b;
	return t;
}

static ValueId append1(Module *m, Op op, ValueId x, Unit u, MemSpace ms)
{
	Inst in;
	memset(&in, 0, sizeof in);
	in.op = op;
	in.type = m->insts[x].type;
	in.nargs = 1;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = x;
	in.unit = u;
	in.mem = ms;
	return ir_append(m, &in);
}

int main(int argc, char **argv)
{
	int layers = argc > 1 ? atoi(argv[1]) : 200000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	Chip c;
	Diag d;
	diag_init(&d);
	if (chip_load("tpu-v4", &c, &d) != 0) {
		fprintf(stderr, "%s\n", d.msg);
		return 1;
	}
	Module *m = ir_module_new("bench", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", t2(DT_BF16, 512, 1024));
	ValueId w = ir_param(m, "w", t2(DT_BF16, 1024, 1024));
	m->insts[x].mem = m->insts[w].mem = MEM_HBM;
	for (int l = 0; l < layers; l++) {
		ValueId ds = append1(m, OP_DMA_START, w, UNIT_DMA, MEM_NONE);
		ir_set_str(m, ds, "to", "vmem");
		ValueId wd = append1(m, OP_DMA_DONE, ds, UNIT_DMA, MEM_VMEM);
		ValueId h = ir_matmul(m, x, wd);
		m->insts[h].unit = UNIT_MXU, m->insts[h].mem = MEM_VMEM;
		ValueId g = ir_unary(m, OP_GELU, h);
		m->insts[g].unit = UNIT_VPU, m->insts[g].mem = MEM_VMEM;
		ValueId y = ir_matmul(m, g, wd);
		m->insts[y].unit = UNIT_MXU, m->insts[y].mem = MEM_VMEM;
		ValueId s = ir_binary(m, OP_ADD, x, y);
		m->insts[s].unit = UNIT_VPU, m->insts[s].mem = MEM_VMEM;
		x = ir_unary(m, OP_TANH, s);
		m->insts[x].unit = UNIT_VPU, m->insts[x].mem = MEM_VMEM;
	}
	ir_output(m, x);
	m->level = LEVEL_TILED;
	double best = 1e30, simulated = 0;
	for (int r = 0; r < reps; r++) {
		SimResult res;
		double t0 = now();
		if (engine_run(m, &c, NULL, &res, &d) != 0) {
			fprintf(stderr, "%s\n", d.msg);
			return 1;
		}
		double t = now() - t0;
		if (t < best)
			best = t;
		simulated = res.seconds;
		sim_result_free(&res);
	}
	printf("bench_engine: %d tiled ops, best of %d runs: %.4f s = %.3g ops/s "
	       "(simulated step %.4g s on %s)\n",
	       m->ninsts, reps, best, m->ninsts / best, simulated, c.name);
	ir_module_free(m);
	return 0;
}
