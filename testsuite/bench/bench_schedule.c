/*
 * Wall time of the schedule and memplan passes on PaLM 540B's per-chip
 * training step (target: each well under 20 ms on one core). The step is
 * built once as in the validation case (--ici fsdp=256,tensor=12 --dcn data=2
 * --batch 2048 --seq 2048 --remat full, Adafactor), sharded, and marked tiled
 * with every op on its default unit and in HBM (what schedule and memplan
 * read); the timed parts are pass_schedule (overlap on) and pass_memplan,
 * each repeated, best of the repeats reported, next to the time of one
 * plain copy of the module (ir_dce) for scale.
 * Usage: bench_schedule [model] [repeats] [adam]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	const char *model = argc > 1 ? argv[1] : "palm-540b";
	int repeats = argc > 2 ? atoi(argv[2]) : 10;
	int adam = argc > 3 && !strcmp(argv[3], "adam");
	Diag d;
	diag_init(&d);
	ModelConfig cfg;
	Chip chip;
	if (model_load(model, &cfg, &d) || chip_load("tpu-v4", &chip, &d)) {
		fprintf(stderr, "bench_schedule: %s\n", d.msg);
		return 1;
	}
	BuildOptions bo;
	build_options_default(&bo);
	bo.batch = 2048;
	bo.seq = 2048;
	Module *fwd = model_build(&cfg, &bo, &d);
	if (!fwd) {
		fprintf(stderr, "bench_schedule: %s\n", d.msg);
		return 1;
	}
	model_annotate_logical(fwd);
	TrainOptions to;
	train_options_default(&to);
	to.remat = REMAT_FULL;
	if (adam)
		to.optimizer = OPTIMIZER_ADAM;
	Module *step = train_step(fwd, &to, &d);
	if (!step) {
		fprintf(stderr, "bench_schedule: %s\n", d.msg);
		return 1;
	}
	step->mesh.naxes = 3;
	step->mesh.axes[0] = (MeshAxis){"data", 1, 2};
	step->mesh.axes[1] = (MeshAxis){"fsdp", 256, 1};
	step->mesh.axes[2] = (MeshAxis){"tensor", 12, 1};
	ShardRules rules;
	shard_rules_default(&step->mesh, &rules);
	Module *local = shard_module(step, &rules, NULL, NULL, &d);
	if (!local) {
		fprintf(stderr, "bench_schedule: %s\n", d.msg);
		return 1;
	}
	local->level = LEVEL_TILED;
	for (int i = 0; i < local->ninsts; i++) {
		local->insts[i].unit = ir_ops[local->insts[i].op].unit;
		local->insts[i].mem = MEM_HBM;
	}
	ScheduleOptions so = {1, 1};
	double best_s = 1e30, best_m = 1e30, best_c = 1e30;
	int nout = 0;
	MemPlan plan;
	for (int r = 0; r < repeats; r++) {
		double t0 = now();
		Module *p = pass_schedule(local, &so, &d);
		double t1 = now();
		if (!p) {
			fprintf(stderr, "bench_schedule: %s\n", d.msg);
			return 1;
		}
		pass_memplan(p, &chip, &plan, &d);
		double t2 = now();
		nout = p->ninsts;
		ir_module_free(p);
		double t3 = now();
		Module *copy = ir_dce(local); /* for scale: one plain copy */
		double t4 = now();
		ir_module_free(copy);
		if (t4 - t3 < best_c)
			best_c = t4 - t3;
		if (t1 - t0 < best_s)
			best_s = t1 - t0;
		if (t2 - t1 < best_m)
			best_m = t2 - t1;
	}
	printf("%s step (%s, remat full, fsdp=256 tensor=12 data=2): %d instructions per chip, "
	       "%d scheduled\n", model, adam ? "adam" : "adafactor", local->ninsts, nout);
	printf("schedule  %8.2f ms  (best of %d; target < 20 ms)\n", best_s * 1e3, repeats);
	printf("memplan   %8.2f ms  (best of %d; target < 20 ms)\n", best_m * 1e3, repeats);
	printf("(ir_dce, one copy of the module, for scale: %.2f ms)\n", best_c * 1e3);
	printf("peak HBM per chip %.2f GiB of %.2f GiB (%s)\n", plan.peak_bytes / (1 << 30),
	       plan.hbm_bytes / (1 << 30), plan.fits ? "fits" : "does not fit");
	if (!plan.fits) {
		Module *p = pass_schedule(local, &so, &d);
		Diag e;
		diag_init(&e);
		memplan_error(p, &plan, &e);
		printf("%s\n", e.msg);
		ir_module_free(p);
	}
	ir_module_free(local);
	ir_module_free(step);
	ir_module_free(fwd);
	return 0;
}
