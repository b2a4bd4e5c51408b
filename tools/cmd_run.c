/*
 * podsim run: compiles a model's training step for a pod, runs the per-chip
 * program on every simulated chip (compiler/spmd.c: JIT kernels, real data
 * moved at the collectives) and, with --check, compares the results with
 * the reference interpreter running the unsharded global step (docs/run.md).
 *
 * Inputs: model_random_inputs on the global step (seeded); optimizer state
 * is made valid (second moments non-negative, the step counter 2) so the
 * update is exercised; each chip gets its shard of every global parameter,
 * as the shard pass placed it (Compiled.shardings). Outputs compare shard
 * by shard: each chip's local output against the matching slice of the
 * global one (padding of uneven shards skipped).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "compiler/pipeline.h"
#include "compiler/spmd.h"
#include "modelargs.h"

static void help(void)
{
	printf("usage: podsim run --model M [--ici AXIS=N,...] [--dcn AXIS=N,...] [--batch SEQS]\n"
	       "                  [--seq LEN] [--dtype f32|bf16] [--seed N] [--check [--tol X]]\n"
	       "                  [--level graph|tiled] [--no-jit|--jit-O0] [--threads N] [--chips N] [-v]\n"
	       "\n"
	       "Runs one training step of the sharded per-chip program on every chip of the\n"
	       "mesh (chips = the mesh size), with real data moved at the collectives.\n"
	       "\n%s"
	       "  --seed N         seed of the random weights and data (default 1)\n"
	       "  --check          also run the unsharded step in the reference interpreter and\n"
	       "                   compare loss, updated weights and optimizer state\n"
	       "  --tol X          relative tolerance of --check (default 1e-4 for f32,\n"
	       "                   1e-1 for bf16); see docs/run.md\n"
	       "  --level L        graph: the per-chip program after sharding (default);\n"
	       "                   tiled: the scheduled tiled program (async collectives, DMA)\n"
	       "  --no-jit         run every op in the reference interpreter\n"
	       "  --jit-O0         JIT kernels without LLVM's default<O2> (compiles faster)\n"
	       "  -v, --verbose    --check: the error of every output (else of those above\n"
	       "                   tolerance)\n"
	       "  --threads N      OpenMP threads across chips (default: all)\n"
	       "  --chips N        check that the mesh has N chips\n"
	       "\nexit status: 0 ok (within tolerance), 1 bad input or above tolerance,\n"
	       "2 bad usage\n",
	       model_args_help);
}

/* Error statistics of one kind of output. */
typedef struct Err {
	int outputs;
	double max_abs, max_rel;
	int64_t compared;
	/* where max_rel is */
	int worst_out;
	int64_t worst_chip;
	int64_t worst_idx[IR_MAX_RANK];
	float got, want;
} Err;

static void err_init(Err *e)
{
	memset(e, 0, sizeof *e);
	e->worst_out = -1;
}

static void err_merge(Err *into, const Err *e)
{
	into->outputs += e->outputs;
	into->compared += e->compared;
	if (e->max_abs > into->max_abs)
		into->max_abs = e->max_abs;
	if (e->worst_out >= 0 && (into->worst_out < 0 || e->max_rel > into->max_rel)) {
		int n = into->outputs;
		int64_t c = into->compared;
		double a = into->max_abs;
		*into = *e;
		into->outputs = n;
		into->compared = c;
		into->max_abs = a;
	}
}

/* The sum of squares of a tensor's elements, and its element count. */
static double sumsq(const Tensor *t, int64_t *n)
{
	*n = type_numel(&t->type);
	double s = 0;
	for (int64_t i = 0; i < *n; i++)
		s += (double)t->data[i] * t->data[i];
	return s;
}

/* Compares every chip's shard of output o with the reference. rel is
 * |got - want| / max(|want|, floor): relative to the element, with a scale
 * floor for elements near zero (see cmd_run). A NaN or infinity on one side
 * only is an infinite error. */
static int compare_output(const Mesh *mesh, const Tensor *ref, const uint32_t *shard,
                          const Tensor *outs, int64_t nchips, int nout, int o, double floor,
                          Err *e)
{
	e->outputs = 1;
	for (int64_t c = 0; c < nchips; c++) {
		const Tensor *t = &outs[c * nout + o];
		Type lt = ref->type;
		for (int i = 0; i < lt.rank; i++) {
			int64_t ways = mesh_axes_size(mesh, shard[i]);
			lt.dims[i] = (lt.dims[i] + ways - 1) / ways;
		}
		if (t->type.rank != lt.rank)
			return -1;
		for (int i = 0; i < lt.rank; i++)
			if (t->type.dims[i] != lt.dims[i])
				return -1;
		int64_t n = type_numel(&lt);
		for (int64_t f = 0; f < n; f++) {
			int64_t li[IR_MAX_RANK], gi[IR_MAX_RANK];
			int64_t rest = f;
			for (int i = lt.rank - 1; i >= 0; i--) {
				li[i] = rest % lt.dims[i];
				rest /= lt.dims[i];
			}
			if (!spmd_global_index(mesh, &ref->type, shard, c, li, gi))
				continue;
			int64_t g = 0;
			for (int i = 0; i < lt.rank; i++)
				g = g * ref->type.dims[i] + gi[i];
			double want = ref->data[g], got = t->data[f];
			double ab = fabs(got - want);
			double den = fabs(want) > floor ? fabs(want) : floor;
			double rel = ab / den;
			if (isnan(got) != isnan(want) || isinf(got) != isinf(want))
				ab = rel = INFINITY;
			else if (isnan(got) || (isinf(got) && got == want))
				ab = rel = 0;
			e->compared++;
			if (ab > e->max_abs)
				e->max_abs = ab;
			if (e->worst_out < 0 || rel > e->max_rel) {
				e->max_rel = rel;
				e->worst_out = o;
				e->worst_chip = c;
				memcpy(e->worst_idx, gi, sizeof gi);
				e->got = (float)got;
				e->want = (float)want;
			}
		}
	}
	return 0;
}

static const char *param_name(const Module *m, int k)
{
	for (int v = 0; v < m->ninsts; v++)
		if (m->insts[v].op == OP_PARAMETER && k-- == 0)
			return ir_attr_str(&m->insts[v], "name", "?");
	return "?";
}

/* The name of output o of the step: loss, then the weights, then the
 * optimizer states, each named after its parameter. */
static const char *output_name(const Module *step, int o, int nweights, int *kind)
{
	if (o == 0) {
		*kind = 0;
		return "loss";
	}
	int want = o <= nweights ? o - 1 : o - 1 - nweights;
	const char *role = o <= nweights ? "weight" : "opt_state";
	*kind = o <= nweights ? 1 : 2;
	for (int v = 0; v < step->ninsts; v++) {
		const Inst *in = &step->insts[v];
		if (in->op == OP_PARAMETER && !strcmp(ir_attr_str(in, "role", ""), role) &&
		    want-- == 0)
			return ir_attr_str(in, "name", "?");
	}
	return "?";
}

static void print_err(const char *kind, const Err *e)
{
	printf("  %-10s %7d %12lld %12.3e %12.3e\n", kind, e->outputs, (long long)e->compared,
	       e->max_abs, e->max_rel);
}

int cmd_run(int argc, char **argv)
{
	ModelArgs a;
	model_args_init(&a);
	int check = 0, nojit = 0, noopt = 0, tiled = 0, verbose = 0, rc = EXIT_USAGE;
	long seed = 1, threads = 0, chips = 0;
	double tol = -1;
	Compiled c;
	memset(&c, 0, sizeof c);
	Tensor *gin = NULL, *lin = NULL, *outs = NULL, *ref = NULL;
	int ngin = 0;
	int64_t nchips = 0;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
			help();
			rc = EXIT_OK;
			goto out;
		}
		if (!strcmp(f, "--check")) {
			check = 1;
			continue;
		}
		if (!strcmp(f, "--verbose") || !strcmp(f, "-v")) {
			verbose = 1;
			continue;
		}
		if (!strcmp(f, "--jit-O0")) {
			noopt = 1;
			continue;
		}
		if (!strcmp(f, "--no-jit")) {
			nojit = 1;
			continue;
		}
		if (!strcmp(f, "--seed") || !strcmp(f, "--tol") || !strcmp(f, "--level") ||
		    !strcmp(f, "--threads") || !strcmp(f, "--chips")) {
			if (i + 1 >= argc) {
				usage_error("run", "%s needs a value", f);
				goto out;
			}
			const char *v = argv[++i];
			char *end;
			if (!strcmp(f, "--level")) {
				if (strcmp(v, "graph") && strcmp(v, "tiled")) {
					usage_error("run", "--level '%s': expected graph or tiled", v);
					goto out;
				}
				tiled = !strcmp(v, "tiled");
			} else if (!strcmp(f, "--tol")) {
				tol = strtod(v, &end);
				if (end == v || *end || !(tol > 0)) {
					usage_error("run", "--tol '%s': expected a positive number", v);
					goto out;
				}
			} else {
				long x = strtol(v, &end, 10);
				long lo = !strcmp(f, "--seed") ? 0 : 1;
				if (end == v || *end || x < lo || x > (1L << 30)) {
					usage_error("run", "%s '%s': expected an integer >= %ld", f, v, lo);
					goto out;
				}
				if (!strcmp(f, "--seed"))
					seed = x;
				else if (!strcmp(f, "--threads"))
					threads = x;
				else
					chips = x;
			}
			continue;
		}
		int k = model_args_parse("run", argc, argv, &i, &a);
		if (k < 0)
			goto out;
		if (k == 0) {
			usage_error("run", "unknown option '%s' (see podsim run --help)", f);
			goto out;
		}
	}
	if ((rc = model_args_resolve("run", &a)))
		goto out;
	rc = EXIT_INPUT;
	CompileOptions co = a.o.c;
	co.keep_stages = 1;
	nchips = mesh_size(&co.mesh);
	if (chips && chips != nchips) {
		rc = usage_error("run", "--chips %ld: the mesh has %lld chips", chips,
		                 (long long)nchips);
		goto out;
	}
	if (co.microbatches > 1) {
		rc = usage_error("run", "--microbatches is not supported by run");
		goto out;
	}
	if (tol < 0)
		tol = co.dtype == DT_BF16 ? 1e-1 : 1e-4;
	Diag d;
	diag_init(&d);
	if (compile_model(&co, &c, &d)) {
		fprintf(stderr, "podsim run: %s\n", d.msg);
		goto out;
	}
	const Module *step = c.step, *prog = tiled ? c.program : c.local;

	/* global inputs, then each chip's shard of them */
	gin = model_random_inputs(step, &co.model, (uint64_t)seed, &ngin);
	int nweights = 0;
	for (int v = 0, k = 0; v < step->ninsts; v++) {
		const Inst *in = &step->insts[v];
		if (in->op != OP_PARAMETER)
			continue;
		const char *role = ir_attr_str(in, "role", "");
		Tensor *t = &gin[k++];
		nweights += !strcmp(role, "weight");
		if (strcmp(role, "opt_state"))
			continue;
		int64_t n = type_numel(&t->type);
		if (!strcmp(ir_attr_str(in, "name", ""), "step")) {
			for (int64_t e = 0; e < n; e++)
				t->data[e] = 2; /* two updates done: bias correction is not 0 */
		} else {
			for (int64_t e = 0; e < n; e++)
				t->data[e] = fabsf(t->data[e]); /* second moments are >= 0 */
		}
	}
	int nlocal = 0;
	for (int v = 0; v < prog->ninsts; v++)
		nlocal += prog->insts[v].op == OP_PARAMETER;
	if (nlocal != ngin || prog->noutputs != step->noutputs) {
		fprintf(stderr, "podsim run: the per-chip program has %d parameters and %d outputs, "
		        "the global step %d and %d\n", nlocal, prog->noutputs, ngin, step->noutputs);
		goto out;
	}
	/* step parameter k <-> k-th per-chip parameter: shard keeps their order */
	for (int k = 0; k < ngin; k++)
		if (strcmp(param_name(step, k), param_name(prog, k))) {
			fprintf(stderr, "podsim run: parameter %d is '%s' in the step but '%s' in the "
			        "per-chip program\n", k, param_name(step, k), param_name(prog, k));
			goto out;
		}
	lin = calloc((size_t)(nchips * ngin), sizeof *lin);
	outs = calloc((size_t)(nchips * prog->noutputs) + 1, sizeof *outs);
	if (!lin || !outs) {
		fprintf(stderr, "podsim run: out of memory\n");
		goto out;
	}
	for (int v = 0, k = 0; v < step->ninsts; v++) {
		if (step->insts[v].op != OP_PARAMETER)
			continue;
		for (int64_t ch = 0; ch < nchips; ch++)
			spmd_shard_tensor(&co.mesh, &gin[k], c.shardings[v].shard, ch,
			                  &lin[ch * ngin + k]);
		k++;
	}

	SpmdOptions so;
	spmd_default_options(&so);
	so.bf16 = co.dtype == DT_BF16;
	so.jit = !nojit;
	so.jit_optimize = !noopt;
	so.threads = (int)threads;
	SpmdStats st;
	if (spmd_run(prog, lin, ngin, &so, outs, &st, &d)) {
		fprintf(stderr, "podsim run: %s\n", d.msg);
		goto out;
	}
	char mesh[256] = "";
	for (int k = 0; k < co.mesh.naxes; k++) {
		const MeshAxis *ax = &co.mesh.axes[k];
		size_t l = strlen(mesh);
		snprintf(mesh + l, sizeof mesh - l, "%s%s=%d", k ? "," : "", ax->name,
		         ax->ici * ax->dcn);
	}
	printf("podsim run: %s, %lld chips (mesh %s), batch %lld, seq %lld, %s, %s program\n",
	       co.model.name, (long long)nchips, mesh, (long long)co.batch, (long long)c.seq,
	       dtype_name(co.dtype), tiled ? "tiled" : "graph-level");
	printf("  instructions per chip: %d JIT, %d interpreted, %d partition-aware, "
	       "%d collectives, %d parameters\n",
	       st.jit_ops, st.interp_ops, st.partition_ops, st.collective_ops, st.params);
	if (st.jit_note[0])
		printf("  interpreter only: %s\n", st.jit_note);
	else
		printf("  JIT: %d distinct kernels compiled in %.0f ms%s\n", st.jit_kernels,
		       st.jit_compile_ms, noopt ? " (no optimisation)" : "");
	printf("  run: %.0f ms, collectives moved %.3f MB between chips\n", st.run_ms,
	       st.bytes_moved / 1e6);
	printf("  loss: %.6g\n", (double)outs[0].data[0]);
	if (!check) {
		rc = EXIT_OK;
		goto out;
	}

	/* the reference: the unsharded step in the interpreter */
	ref = calloc((size_t)step->noutputs + 1, sizeof *ref);
	if (!ref) {
		fprintf(stderr, "podsim run: out of memory\n");
		goto out;
	}
	InterpOptions io = {co.dtype == DT_BF16};
	if (ir_interp(step, gin, ngin, &io, ref, NULL, &d)) {
		fprintf(stderr, "podsim run: reference: %s\n", d.msg);
		goto out;
	}
	/* The floor of an element's relative error: the RMS of its tensor, so
	 * that an element near zero in a tensor of scale s is held to tol * s;
	 * and at least 1e-3 of the RMS of all the outputs of its kind (loss,
	 * weights, optimizer state), for a tensor whose true value is itself
	 * cancellation noise (a key bias gets an exactly zero gradient, as
	 * softmax ignores a constant shift: its update is rounding noise of
	 * the size u * the terms that cancelled, not of its own RMS). */
	double kind_ss[3] = {0, 0, 0};
	int64_t kind_n[3] = {0, 0, 0};
	for (int o = 0; o < step->noutputs; o++) {
		int kind;
		int64_t n;
		output_name(step, o, nweights, &kind);
		kind_ss[kind] += sumsq(&ref[o], &n);
		kind_n[kind] += n;
	}
	Err kinds[3], all;
	for (int k = 0; k < 3; k++)
		err_init(&kinds[k]);
	err_init(&all);
	for (int o = 0; o < step->noutputs; o++) {
		int kind;
		int64_t n;
		const char *name = output_name(step, o, nweights, &kind);
		double floor = sqrt(sumsq(&ref[o], &n) / (double)(n ? n : 1));
		double kfloor = 1e-3 * sqrt(kind_ss[kind] / (double)(kind_n[kind] ? kind_n[kind] : 1));
		if (floor < kfloor)
			floor = kfloor;
		if (!(floor > 1e-30))
			floor = 1e-30;
		Err e;
		err_init(&e);
		if (compare_output(&co.mesh, &ref[o], c.shardings[step->outputs[o]].shard, outs,
		                   nchips, prog->noutputs, o, floor, &e)) {
			fprintf(stderr, "podsim run: output %d (%s): the per-chip shape does not match "
			        "the global output's sharding\n", o, name);
			goto out;
		}
		if (verbose || e.max_rel > tol)
			printf("  %s %s: max_abs %.3e max_rel %.3e%s\n",
			       kind == 0 ? "loss" : kind == 1 ? "weight" : "opt_state", name,
			       e.max_abs, e.max_rel, e.max_rel > tol ? "  above tolerance" : "");
		err_merge(&kinds[kind], &e);
	}
	for (int k = 0; k < 3; k++)
		err_merge(&all, &kinds[k]);
	printf("check against the reference interpreter (unsharded step, %s):\n",
	       co.dtype == DT_BF16 ? "bf16 rounding" : "f32");
	printf("  %-10s %7s %12s %12s %12s\n", "output", "tensors", "elements", "max_abs",
	       "max_rel");
	print_err("loss", &kinds[0]);
	print_err("weights", &kinds[1]);
	print_err("opt_state", &kinds[2]);
	print_err("all", &all);
	if (all.worst_out >= 0) {
		int kind;
		const Tensor *r0 = &ref[all.worst_out];
		printf("  worst: %s [", output_name(step, all.worst_out, nweights, &kind));
		for (int i = 0; i < r0->type.rank; i++)
			printf("%s%lld", i ? "," : "", (long long)all.worst_idx[i]);
		printf("] on chip %lld: %.9g, reference %.9g\n", (long long)all.worst_chip,
		       (double)all.got, (double)all.want);
	}
	if (all.max_rel <= tol) {
		printf("PASS: max_rel %.3e <= tolerance %.3e\n", all.max_rel, tol);
		rc = EXIT_OK;
	} else {
		printf("FAIL: max_rel %.3e > tolerance %.3e\n", all.max_rel, tol);
		rc = EXIT_INPUT;
	}
out:
	if (ref)
		for (int o = 0; c.step && o < c.step->noutputs; o++)
			free(ref[o].data);
	free(ref);
	if (outs && c.step)
		for (int64_t i = 0; i < nchips * c.step->noutputs; i++)
			free(outs[i].data);
	free(outs);
	if (lin)
		for (int64_t i = 0; i < nchips * ngin; i++)
			free(lin[i].data);
	free(lin);
	model_free_inputs(gin, ngin);
	compiled_free(&c);
	model_args_free(&a);
	return rc;
}
