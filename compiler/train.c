/*
 * The training step, built in one straight line:
 *
 *   copy the forward  ->  autodiff (remat policy)  ->  optimizer update
 *
 * Requires: a graph-level forward model that follows the contract in
 * train.h (role="weight"/"input" parameters, first output the scalar loss).
 * Produces: a new module whose parameters are the forward's followed by the
 * optimizer state, and whose outputs are the loss, the updated weights and
 * the updated states. The forward region keeps its instruction indices.
 */
#include "train.h"

#include <string.h>

void train_options_default(TrainOptions *o)
{
	memset(o, 0, sizeof *o);
	o->optimizer = OPTIMIZER_ADAFACTOR;
	o->remat = REMAT_NONE;
	o->lr = 1e-2;
	o->adam_beta1 = 0.9;
	o->adam_beta2 = 0.999;
	o->adam_eps = 1e-8;
	o->weight_decay = 0;
	o->adafactor_factored = 1;
	o->adafactor_beta1 = 0;
	o->adafactor_decay = 0.8;
	o->adafactor_eps1 = 1e-30;
	o->adafactor_clip = 1.0;
	o->adafactor_param_scale = 1;
	o->adafactor_eps2 = 1e-3;
}

static const char *const remat_names[] = {"none", "minimal", "full"};
static const char *const optimizer_names[] = {"adam", "adafactor"};

const char *remat_policy_name(RematPolicy p)
{
	return remat_names[p];
}

int remat_policy_from_name(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, remat_names[i]))
			return i;
	return -1;
}

const char *optimizer_name(OptimizerKind k)
{
	return optimizer_names[k];
}

int optimizer_from_name(const char *s)
{
	for (int i = 0; i < 2; i++)
		if (!strcmp(s, optimizer_names[i]))
			return i;
	return -1;
}

static Module *copy_module(const Module *src)
{
	Module *m = ir_module_empty_like(src);
	/* the backward and the update make the step several times the
	 * forward's length: room up front instead of regrowing the array */
	ir_reserve(m, 8 * src->ninsts + 64);
	for (ValueId v = 0; v < src->ninsts; v++)
		ir_clone_inst(m, src, v, src->insts[v].args);
	return m;
}

Module *train_step(const Module *forward, const TrainOptions *opt, Diag *d)
{
	if (forward->level != LEVEL_GRAPH) {
		diag_error(d, forward->file, 0, 0, "train_step: '%s' is not a graph-level module",
		           forward->name);
		return NULL;
	}
	if (forward->noutputs < 1) {
		diag_error(d, forward->file, forward->ret_line, forward->ret_col,
		           "train_step: the forward model has no outputs (the first must be the loss)");
		return NULL;
	}
	const Inst *li = &forward->insts[forward->outputs[0]];
	if (li->type.rank != 0 || li->type.dtype != DT_F32) {
		diag_error(d, forward->file, forward->ret_line, forward->ret_col,
		           "train_step: the first output must be the scalar f32 loss");
		return NULL;
	}
	Module *m = copy_module(forward);
	ValueId loss = forward->outputs[0];
	Grads g;
	if (autodiff(m, loss, opt->remat, &g, d) != 0)
		goto fail;
	if (g.n == 0) {
		diag_error(d, forward->file, 0, 0,
		           "train_step: the forward model has no role=\"weight\" parameter");
		goto fail;
	}
	ValueId *neww = arena_alloc(&m->arena, sizeof(ValueId) * (size_t)g.n);
	ValueId *states, *news;
	int ns;
	if (optimizer_update(m, &g, opt, neww, &states, &news, &ns, d) != 0)
		goto fail;
	ir_output(m, loss);
	for (int k = 0; k < g.n; k++)
		ir_output(m, neww[k]);
	for (int k = 0; k < ns; k++)
		ir_output(m, news[k]);
	return m;
fail:
	ir_module_free(m);
	return NULL;
}
