/*
 * Copying modules, and dead-code elimination. Passes that build a new
 * module from an old one (train_step, shard, dce) copy instructions through
 * ir_clone_inst (ir/core.c, next to the attribute key table it consults) so
 * attributes and names are deep-copied into the destination's arena.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

Module *ir_module_empty_like(const Module *src)
{
	Module *m = ir_module_new(src->name, src->level);
	if (src->file)
		m->file = arena_strdup(&m->arena, src->file);
	m->mesh = src->mesh;
	for (int i = 0; i < src->mesh.naxes; i++)
		m->mesh.axes[i].name = arena_strdup(&m->arena, src->mesh.axes[i].name);
	return m;
}

Module *ir_dce(const Module *m)
{
	size_t n = (size_t)(m->ninsts ? m->ninsts : 1);
	int maxargs = 1;
	for (int i = 0; i < m->ninsts; i++)
		if (m->insts[i].nargs > maxargs)
			maxargs = m->insts[i].nargs;
	unsigned char *live = calloc(n, 1);
	ValueId *map = malloc(sizeof(ValueId) * n);
	ValueId *args = malloc(sizeof(ValueId) * (size_t)maxargs);
	if (!live || !map || !args)
		ir_die("out of memory");
	for (int i = 0; i < m->noutputs; i++)
		live[m->outputs[i]] = 1;
	for (int i = m->ninsts - 1; i >= 0; i--) {
		if (m->insts[i].op == OP_PARAMETER)
			live[i] = 1; /* the program's interface stays whole */
		if (!live[i])
			continue;
		for (int k = 0; k < m->insts[i].nargs; k++)
			live[m->insts[i].args[k]] = 1;
	}
	Module *out = ir_module_empty_like(m);
	int nlive = 0;
	for (int i = 0; i < m->ninsts; i++)
		nlive += live[i];
	ir_reserve(out, nlive); /* exactly: big modules are copied whole */
	for (int i = 0; i < m->ninsts; i++) {
		if (!live[i])
			continue;
		const Inst *in = &m->insts[i];
		for (int k = 0; k < in->nargs; k++)
			args[k] = map[in->args[k]];
		map[i] = ir_clone_inst(out, m, i, args);
	}
	for (int i = 0; i < m->noutputs; i++)
		ir_output(out, map[m->outputs[i]]);
	out->ret_line = m->ret_line;
	out->ret_col = m->ret_col;
	free(live);
	free(map);
	free(args);
	return out;
}

void ir_dce_inplace(Module *m)
{
	size_t n = (size_t)(m->ninsts ? m->ninsts : 1);
	unsigned char *live = calloc(n, 1);
	ValueId *map = malloc(sizeof(ValueId) * n);
	if (!live || !map)
		ir_die("out of memory");
	for (int i = 0; i < m->noutputs; i++)
		live[m->outputs[i]] = 1;
	for (int i = m->ninsts - 1; i >= 0; i--) {
		if (m->insts[i].op == OP_PARAMETER)
			live[i] = 1;
		if (!live[i])
			continue;
		for (int k = 0; k < m->insts[i].nargs; k++)
			live[m->insts[i].args[k]] = 1;
	}
	/* operands precede their users, so moving down never overwrites an
	 * instruction not yet moved */
	int j = 0;
	for (int i = 0; i < m->ninsts; i++) {
		if (!live[i])
			continue;
		Inst *in = &m->insts[i];
		for (int k = 0; k < in->nargs; k++)
			in->args[k] = map[in->args[k]];
		map[i] = j;
		if (j != i)
			m->insts[j] = *in;
		j++;
	}
	m->ninsts = j;
	for (int i = 0; i < m->noutputs; i++)
		m->outputs[i] = map[m->outputs[i]];
	free(live);
	free(map);
}
