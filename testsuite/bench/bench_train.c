/*
 * Training-step construction and reference-interpreter speed.
 *
 * Part 1: for every model preset (default batch and length, bf16), the time
 * of train_step (autodiff, remat, Adafactor) per remat policy, the
 * instructions before and after, and hardware / model FLOPs. train_step runs
 * once per estimate and once per sweep point, so it should stay well under
 * the time of the simulation that follows (target: < 100 ms for the largest
 * preset).
 * Part 2: the reference interpreter on a 256 x 256 x 256 matmul (GFLOP/s)
 * and on one full training step of tiny-palm (ms).
 *
 * Times are CPU seconds of this process (single-threaded code).
 * Usage: bench_train [reps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "compiler/train.h"
#include "frontends/model.h"

/* CPU time of this process: on a shared machine wall time measures the
 * neighbours too. */
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static Tensor *zero_inputs(const Module *m, int *n)
{
	*n = 0;
	for (int i = 0; i < m->ninsts; i++)
		*n += m->insts[i].op == OP_PARAMETER;
	Tensor *t = calloc((size_t)*n, sizeof *t);
	int k = 0;
	for (int i = 0; i < m->ninsts; i++)
		if (m->insts[i].op == OP_PARAMETER) {
			t[k].type = m->insts[i].type;
			t[k].data = calloc((size_t)type_numel(&t[k].type) + 1, sizeof(float));
			k++;
		}
	return t;
}

static void free_tensors(Tensor *t, int n)
{
	for (int i = 0; i < n; i++)
		free(t[i].data);
	free(t);
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 3;
	if (reps < 1)
		reps = 1;
	printf("%-18s %7s | %8s %8s %8s | %6s %6s %6s | %9s %9s %9s\n", "preset", "fwd",
	       "none", "minimal", "full", "hw/mf", "hw/mf", "hw/mf", "ms", "ms", "ms");
	for (int i = 0; i < model_preset_count(); i++) {
		ModelConfig c;
		model_preset(model_preset_name(i), &c);
		BuildOptions bo;
		build_options_default(&bo);
		Diag d;
		diag_init(&d);
		Module *fwd = model_build(&c, &bo, &d);
		if (!fwd) {
			fprintf(stderr, "%s: %s\n", c.name, d.msg);
			return 1;
		}
		int ninsts[3];
		double ratio[3], ms[3];
		for (int p = REMAT_NONE; p <= REMAT_FULL; p++) {
			TrainOptions o;
			train_options_default(&o);
			o.remat = (RematPolicy)p;
			double t0 = now();
			for (int r = 0; r < reps; r++) {
				Module *s = train_step(fwd, &o, &d);
				if (!s) {
					fprintf(stderr, "%s: %s\n", c.name, d.msg);
					return 1;
				}
				FlopCount f;
				flops_count(s, &f);
				ninsts[p] = s->ninsts;
				ratio[p] = f.hardware / f.model;
				ir_module_free(s);
			}
			ms[p] = (now() - t0) / reps * 1e3;
		}
		printf("%-18s %7d | %8d %8d %8d | %6.3f %6.3f %6.3f | %9.2f %9.2f %9.2f\n", c.name,
		       fwd->ninsts, ninsts[0], ninsts[1], ninsts[2], ratio[0], ratio[1], ratio[2],
		       ms[0], ms[1], ms[2]);
		ir_module_free(fwd);
	}

	/* Interpreter: one matmul. */
	{
		Module *m = ir_module_new("mm", LEVEL_GRAPH);
		Type t = {0};
		t.dtype = DT_F32;
		t.rank = 2;
		t.dims[0] = t.dims[1] = 256;
		ValueId a = ir_param(m, "a", t), b = ir_param(m, "b", t);
		ir_output(m, ir_matmul(m, a, b));
		int n;
		Tensor *in = zero_inputs(m, &n), out;
		Diag d;
		diag_init(&d);
		double t0 = now();
		for (int r = 0; r < reps; r++) {
			if (ir_interp(m, in, n, NULL, &out, NULL, &d)) {
				fprintf(stderr, "%s\n", d.msg);
				return 1;
			}
			free(out.data);
		}
		double s = (now() - t0) / reps;
		printf("\ninterp matmul 256x256x256: %.3f s, %.3f GFLOP/s\n", s,
		       2.0 * 256 * 256 * 256 / s / 1e9);
		free_tensors(in, n);
		ir_module_free(m);
	}
	/* Interpreter: a whole training step of tiny-palm (f32, batch 1). */
	{
		ModelConfig c;
		model_preset("tiny-palm", &c);
		BuildOptions bo;
		build_options_default(&bo);
		bo.dtype = DT_F32;
		Diag d;
		diag_init(&d);
		Module *fwd = model_build(&c, &bo, &d);
		TrainOptions o;
		train_options_default(&o);
		Module *s = train_step(fwd, &o, &d);
		int n;
		Tensor *in = zero_inputs(s, &n);
		Tensor *out = calloc((size_t)s->noutputs, sizeof *out);
		FlopCount f;
		flops_count(s, &f);
		double t0 = now();
		for (int r = 0; r < reps; r++) {
			if (ir_interp(s, in, n, NULL, out, NULL, &d)) {
				fprintf(stderr, "%s\n", d.msg);
				return 1;
			}
			for (int k = 0; k < s->noutputs; k++)
				free(out[k].data);
		}
		double sec = (now() - t0) / reps;
		double fl = f.hardware + f.optimizer;
		printf("interp tiny-palm train step (%d insts, %.3g FLOPs): %.1f ms, %.3f GFLOP/s\n",
		       s->ninsts, fl, sec * 1e3, fl / sec / 1e9);
		free(out);
		free_tensors(in, n);
		ir_module_free(s);
		ir_module_free(fwd);
	}
	return 0;
}
