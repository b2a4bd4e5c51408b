/*
 * Parameter and model-FLOP counts. Parameters are counted from the built
 * graph (every role="weight" parameter), never from a formula, so a count
 * that misses a published one points at a structural error in the graph.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

/* The weight parameter v reaches through layout and dtype changes, or -1. */
static ValueId weight_source(const Module *m, ValueId v)
{
	for (;;) {
		const Inst *in = &m->insts[v];
		if (in->op == OP_PARAMETER)
			return strcmp(ir_attr_str(in, "role", ""), "weight") == 0 ? v : -1;
		if (in->op != OP_CONVERT && in->op != OP_RESHAPE && in->op != OP_TRANSPOSE)
			return -1;
		v = in->args[0];
	}
}

void model_count_params(const Module *m, ParamCount *pc)
{
	memset(pc, 0, sizeof *pc);
	unsigned char *in_dot = calloc((size_t)m->ninsts + 1, 1);
	if (!in_dot)
		ir_die("out of memory");
	for (int i = 0; i < m->ninsts; i++) {
		if (m->insts[i].op != OP_DOT)
			continue;
		for (int k = 0; k < 2; k++) {
			ValueId w = weight_source(m, m->insts[i].args[k]);
			if (w >= 0)
				in_dot[w] = 1;
		}
	}
	for (int i = 0; i < m->ninsts; i++) {
		const Inst *in = &m->insts[i];
		if (in->op != OP_PARAMETER || strcmp(ir_attr_str(in, "role", ""), "weight") != 0)
			continue;
		int64_t n = type_numel(&in->type);
		const char *name = ir_attr_str(in, "name", "");
		pc->total += n;
		if (!ir_attr(in, "layer"))
			pc->embedding += n;
		if (strncmp(name, "head/", 5) == 0)
			pc->head += n;
		if (strstr(name, "/experts/"))
			pc->expert += n;
		if (in_dot[i])
			pc->matmul += n;
	}
	free(in_dot);
}

int64_t model_active_params(const ModelConfig *c, const ParamCount *pc)
{
	if (!c->experts)
		return pc->total;
	return pc->total - pc->expert + pc->expert / c->experts * c->top_k;
}

int64_t model_active_matmul_params(const ModelConfig *c, const ParamCount *pc)
{
	if (!c->experts)
		return pc->matmul;
	return pc->matmul - pc->expert + pc->expert / c->experts * c->top_k;
}

double model_flops_per_token(const ModelConfig *c, const ParamCount *pc, int64_t seq)
{
	int64_t layers = c->enc_layers + c->dec_layers;
	double n = (double)model_active_matmul_params(c, pc);
	double attn = 12.0 * (double)layers * (double)c->heads * (double)c->head_dim * (double)seq;
	return 6.0 * n + attn;
}
