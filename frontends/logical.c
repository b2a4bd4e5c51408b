/*
 * Logical axes of every parameter, MaxText style: each dim of a weight or
 * input gets a name saying what it is (embed, heads, kv, mlp, vocab, exp,
 * batch, length, norm, or none), from the parameter names this frontend
 * gives (build.c, blocks.c). The shard pass maps logical names to mesh axes
 * with rules (compiler/shard.h), so a strategy is a rule set, not code.
 */
#include <string.h>

#include "model.h"

typedef struct LogicalRule {
	const char *suffix;      /* the parameter name ends with this */
	int rank;
	const char *names[4];
} LogicalRule;

/* First match wins: specific suffixes before general ones. */
static const LogicalRule rules[] = {
	{"/q/w", 3, {"embed", "heads", "kv"}},
	{"/k/w", 3, {"embed", "kv_heads", "kv"}},
	{"/v/w", 3, {"embed", "kv_heads", "kv"}},
	{"/q/b", 2, {"heads", "kv"}},
	{"/k/b", 2, {"kv_heads", "kv"}},
	{"/v/b", 2, {"kv_heads", "kv"}},
	{"/o/w", 3, {"heads", "kv", "embed"}},
	{"/o/b", 1, {"embed"}},
	{"token_mlp/wi/w", 2, {"none", "mlp"}},
	{"token_mlp/wi/b", 1, {"mlp"}},
	{"token_mlp/wo/w", 2, {"mlp", "none"}},
	{"token_mlp/wo/b", 1, {"none"}},
	{"mlp/experts/wi/w", 3, {"exp", "embed", "mlp"}},
	{"mlp/experts/wg/w", 3, {"exp", "embed", "mlp"}},
	{"mlp/experts/wo/w", 3, {"exp", "mlp", "embed"}},
	{"mlp/experts/wi/b", 2, {"exp", "mlp"}},
	{"mlp/experts/wg/b", 2, {"exp", "mlp"}},
	{"mlp/experts/wo/b", 2, {"exp", "embed"}},
	{"mlp/router/w", 2, {"embed", "none"}},
	{"mlp/wi/w", 2, {"embed", "mlp"}},
	{"mlp/wg/w", 2, {"embed", "mlp"}},
	{"mlp/wo/w", 2, {"mlp", "embed"}},
	{"mlp/wi/b", 1, {"mlp"}},
	{"mlp/wg/b", 1, {"mlp"}},
	{"mlp/wo/b", 1, {"embed"}},
	{"lm_head/w", 2, {"embed", "vocab"}},
	{"lm_head/b", 1, {"vocab"}},
	{"embed/tokens", 2, {"vocab", "embed"}},
	{"embed/positions", 2, {"none", "embed"}},
	{"embed/cls", 1, {"embed"}},
	{"embed/patch/w", 2, {"none", "embed"}},
	{"embed/patch/b", 1, {"embed"}},
	{"head/w", 2, {"embed", "none"}},
	{"head/b", 1, {"none"}},
	{"/rel_bias", 2, {"none", "heads"}},
	{"/scale", 1, {"norm"}},
	{"/offset", 1, {"norm"}},
	/* inputs */
	{"tokens", 2, {"batch", "length"}},
	{"labels", 2, {"batch", "length"}},
	{"labels", 1, {"batch"}},
	{"images", 4, {"batch", "none", "none", "none"}},
};

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* The residual stream entering each layer (a computed [B, S, D] value that
 * layer i reads but does not define) gets the constraint
 * [batch, length, activation_embed]: between layers it is kept split over
 * the tensor axis on d_model, so each layer's saved input is one sharded
 * activation (as PaLM and MaxText keep it). */
static void annotate_layer_inputs(Module *m)
{
	for (ValueId v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		int64_t layer = ir_attr_int(in, "layer", -1);
		if (layer < 0)
			continue;
		for (int k = 0; k < in->nargs; k++) {
			const Inst *a = &m->insts[in->args[k]];
			if (a->type.rank != 3 || !dtype_is_float(a->type.dtype) ||
			    ir_attr_int(a, "layer", -1) == layer || a->op == OP_PARAMETER ||
			    a->op == OP_CONSTANT || a->op == OP_BROADCAST || ir_attr(a, "logical"))
				continue;
			static const char *const names[3] = {"batch", "length", "activation_embed"};
			ir_set_names(m, in->args[k], "logical", 3, names);
		}
	}
}

int model_annotate_logical(Module *m)
{
	annotate_layer_inputs(m);
	int missing = 0;
	for (ValueId v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		if (in->op != OP_PARAMETER)
			continue;
		const char *name = ir_attr_str(in, "name", "");
		const char *role = ir_attr_str(in, "role", "");
		const LogicalRule *r = NULL;
		for (size_t i = 0; i < sizeof rules / sizeof rules[0] && !r; i++)
			if (rules[i].rank == in->type.rank && ends_with(name, rules[i].suffix))
				r = &rules[i];
		if (r)
			ir_set_names(m, v, "logical", r->rank, r->names);
		else if (!strcmp(role, "weight"))
			missing++;
	}
	return missing;
}
