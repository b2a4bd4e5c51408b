/*
 * Graph-building speed: builds every model preset (shapes only) N times and
 * prints, per preset, the instructions, the parameter count and the time of
 * one build plus parameter count. Usage: bench_frontends [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "frontends/model.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 20;
	if (reps < 1)
		reps = 1;
	printf("%-18s %8s %18s %12s\n", "preset", "insts", "params", "build_ms");
	for (int i = 0; i < model_preset_count(); i++) {
		ModelConfig c;
		model_preset(model_preset_name(i), &c);
		BuildOptions o;
		build_options_default(&o);
		int ninsts = 0;
		ParamCount pc = {0};
		double t0 = now();
		for (int r = 0; r < reps; r++) {
			Diag d;
			diag_init(&d);
			Module *m = model_build(&c, &o, &d);
			if (!m) {
				fprintf(stderr, "%s\n", d.msg);
				return 1;
			}
			model_count_params(m, &pc);
			ninsts = m->ninsts;
			ir_module_free(m);
		}
		double ms = (now() - t0) / reps * 1e3;
		printf("%-18s %8d %18lld %12.3f\n", c.name, ninsts, (long long)pc.total, ms);
	}
	return 0;
}
