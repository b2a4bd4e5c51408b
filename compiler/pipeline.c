/*
 * The compiler pipeline, one stage after another (see pipeline.h). Nothing
 * here decides anything: each stage is a pass with its own file.
 */
#include "pipeline.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void compile_options_default(CompileOptions *o)
{
	memset(o, 0, sizeof *o);
	o->batch = 1;
	o->microbatches = 1;
	train_options_default(&o->train);
	o->sched.overlap = 1;
	o->sched.prefetch_layers = 1;
	o->dtype = DT_BF16;
}

static int check_mesh(const CompileOptions *o, Diag *d)
{
	static const char *const known[] = {"data", "fsdp", "tensor", "sequence", "expert",
	                                    "pipeline"};
	for (int i = 0; i < o->mesh.naxes; i++) {
		int ok = 0;
		for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
			ok |= !strcmp(o->mesh.axes[i].name, known[k]);
		if (!ok) {
			diag_error(d, NULL, 0, 0,
			           "mesh axis '%s' is unknown (expected data, fsdp, tensor, "
			           "sequence, expert or pipeline)",
			           o->mesh.axes[i].name);
			return -1;
		}
		if (!strcmp(o->mesh.axes[i].name, "pipeline") &&
		    o->mesh.axes[i].ici * o->mesh.axes[i].dcn > 1) {
			diag_error(d, NULL, 0, 0,
			           "mesh axis 'pipeline' (pipeline parallelism) is not supported yet");
			return -1;
		}
	}
	return 0;
}

/* The forward graph and the training step, with their counts: what does
 * not depend on the mesh or the chip. */
static int build_step(const CompileOptions *o, CompiledStep *s, Module **forward, Diag *d)
{
	if (o->microbatches < 1 || o->batch % o->microbatches) {
		diag_error(d, NULL, 0, 0, "--microbatches %d does not divide the batch of %lld",
		           o->microbatches, (long long)o->batch);
		return -1;
	}
	BuildOptions bo;
	build_options_default(&bo);
	bo.batch = o->batch / o->microbatches;
	bo.seq = o->seq;
	bo.dtype = o->dtype;
	s->micro_batch = bo.batch;
	*forward = model_build(&o->model, &bo, d);
	if (!*forward)
		return -1;
	s->seq = o->seq ? o->seq : o->model.seq_len;
	model_count_params(*forward, &s->params);
	if (model_annotate_logical(*forward) != 0)
		ir_die("model %s has weights without logical axes", o->model.name);
	if (o->forward_only) {
		s->step = ir_dce(*forward);
	} else {
		s->step = train_step(*forward, &o->train, d);
		if (!s->step)
			return -1;
		/* recomputation nothing reads (a layer's last matmuls) is dropped,
		 * as XLA drops it: hardware FLOPs count what runs */
		ir_dce_inplace(s->step);
	}
	/* and so are repeated expressions (the optimizer's constants, a
	 * product the backward forms twice), as XLA's CSE drops them */
	ir_cse_inplace(s->step);
	flops_count(s->step, &s->flops);
	return 0;
}

/* shard, fuse, tile, schedule and memplan of step for o's mesh and chip;
 * step is only read (its mesh is taken from o). done, if not NULL, is
 * called on step once shard no longer needs it, so that a caller who owns
 * it can free it before the later passes peak. */
static int lower(const CompileOptions *o, const Module *step, Compiled *c, Diag *d,
                 void (*done)(void *), void *ctx)
{
	Module g = *step; /* a view of step with this mesh */
	g.mesh = o->mesh;
	ShardRules rules;
	shard_rules_default(&o->mesh, &rules);
	Module *local = shard_module(&g, &rules, &c->shardings, &c->shard, d);
	if (done)
		done(ctx);
	if (!local)
		return -1;
	if (o->keep_stages) {
		c->local = local;
		c->tiled = ir_dce(local); /* fuse and tile change it in place */
	} else {
		c->tiled = local;
	}
	pass_fuse(c->tiled);
	if (pass_tile(c->tiled, &o->chip, d))
		return -1;
	/* the tiled module is dropped next unless kept: the program takes over
	 * its memory instead of copying it */
	c->program = o->keep_stages ? pass_schedule(c->tiled, &o->sched, d)
	                            : pass_schedule_take(c->tiled, &o->sched, d);
	if (!c->program)
		return -1;
	if (!o->keep_stages) {
		ir_module_free(c->tiled);
		c->tiled = NULL;
	}
	if (pass_memplan(c->program, &o->chip, &c->mem, d))
		return -1;
	return 0;
}

typedef struct StepModules {
	Module *forward, *step;
} StepModules;

static void free_step_modules(void *p)
{
	StepModules *m = p;
	ir_module_free(m->forward);
	ir_module_free(m->step);
	m->forward = m->step = NULL;
}

static void take_counts(Compiled *c, const CompiledStep *s)
{
	c->params = s->params;
	c->flops = s->flops;
	c->micro_batch = s->micro_batch;
	c->seq = s->seq;
}

int compile_model(const CompileOptions *o, Compiled *c, Diag *d)
{
	memset(c, 0, sizeof *c);
	if (check_mesh(o, d))
		return -1;
	CompiledStep s;
	memset(&s, 0, sizeof s);
	StepModules own = {NULL, NULL};
	int rc = build_step(o, &s, &own.forward, d);
	own.step = s.step;
	take_counts(c, &s);
	if (o->keep_stages) {
		c->forward = own.forward;
		c->step = own.step;
		if (c->step)
			c->step->mesh = o->mesh;
		return rc ? rc : lower(o, s.step, c, d, NULL, NULL);
	}
	if (rc == 0)
		rc = lower(o, s.step, c, d, free_step_modules, &own);
	free_step_modules(&own);
	return rc;
}

int compile_step(const CompileOptions *o, CompiledStep *s, Diag *d)
{
	memset(s, 0, sizeof *s);
	Module *forward = NULL;
	int rc = build_step(o, s, &forward, d);
	ir_module_free(forward);
	return rc;
}

void compiled_step_free(CompiledStep *s)
{
	ir_module_free(s->step);
	memset(s, 0, sizeof *s);
}

int compile_lower(const CompileOptions *o, const CompiledStep *s, Compiled *c, Diag *d)
{
	memset(c, 0, sizeof *c);
	if (check_mesh(o, d))
		return -1;
	take_counts(c, s);
	return lower(o, s->step, c, d, NULL, NULL);
}

void compiled_free(Compiled *c)
{
	ir_module_free(c->forward);
	ir_module_free(c->step);
	ir_module_free(c->local);
	ir_module_free(c->tiled);
	ir_module_free(c->program);
	free(c->shardings);
	memset(c, 0, sizeof *c);
}

int mesh_parse(Mesh *m, Arena *names, const char *spec, int dcn, const char *flag, Diag *d)
{
	const char *p = spec;
	unsigned seen = 0; /* axes this spec has named */
	if (!*p) {
		diag_error(d, NULL, 0, 0, "%s '': expected AXIS=N[,AXIS=N...]", flag);
		return -1;
	}
	while (*p) {
		const char *name = p;
		while (*p && (isalnum((unsigned char)*p) || *p == '_'))
			p++;
		size_t n = (size_t)(p - name);
		if (n == 0 || *p != '=') {
			diag_error(d, NULL, 0, 0, "%s '%s': expected AXIS=N[,AXIS=N...]", flag, spec);
			return -1;
		}
		p++;
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > 1 << 20) {
			diag_error(d, NULL, 0, 0, "%s '%s': the size of '%.*s' must be an integer from 1 "
			           "to %d", flag, spec, (int)n, name, 1 << 20);
			return -1;
		}
		p = end;
		if (*p == ',')
			p++;
		else if (*p) {
			diag_error(d, NULL, 0, 0, "%s '%s': unexpected '%c'", flag, spec, *p);
			return -1;
		}
		int k = mesh_axis_index(m, name, n);
		if (k >= 0 && (seen >> k & 1)) {
			diag_error(d, NULL, 0, 0, "%s '%s': axis '%.*s' is given twice", flag, spec, (int)n,
			           name);
			return -1;
		}
		if (k < 0) {
			if (m->naxes == IR_MAX_MESH_AXES) {
				diag_error(d, NULL, 0, 0, "%s: too many mesh axes", flag);
				return -1;
			}
			k = m->naxes++;
			m->axes[k].name = arena_strndup(names, name, n);
			m->axes[k].ici = 1;
			m->axes[k].dcn = 1;
		}
		seen |= 1u << k;
		if (dcn)
			m->axes[k].dcn *= (int)v;
		else
			m->axes[k].ici *= (int)v;
	}
	return 0;
}
