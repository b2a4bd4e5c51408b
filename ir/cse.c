/*
 * Common-subexpression elimination of a graph-level module, in place. Two
 * instructions are the same expression when they have the same op, result
 * type (sharding included), operands (after earlier merges), attributes in
 * the same order, and value name. The later one's uses are redirected to
 * the first, and ir_dce_inplace drops it.
 *
 * Attributes take part whole: a recomputed value (remat=[1]) never merges
 * with the value it recomputes, nor an optimizer constant with a forward
 * one, so rematerialisation and the optimizer's bounds stay as built.
 * Parameters are the interface and never merge; nor do collectives and
 * asynchronous ops, which have effects beyond their result. Every other op
 * is a pure function of its operands and attributes. A returned value is
 * never replaced (it may be the one others merge into), so the outputs
 * stay distinct values.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t h, uint64_t x)
{
	h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	if (!s)
		return mix(h, 1);
	uint64_t x = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ull;
	return mix(h, x);
}

static uint64_t mix_double(uint64_t h, double f)
{
	uint64_t x;
	if (f == 0)
		f = 0; /* -0 and 0 hash alike; attr_equal compares by value */
	memcpy(&x, &f, sizeof x);
	return mix(h, x);
}

static uint64_t inst_hash(const Inst *in)
{
	uint64_t h = mix(0, (uint64_t)in->op);
	h = mix(h, (uint64_t)in->type.dtype);
	h = mix(h, (uint64_t)in->type.rank);
	for (int i = 0; i < in->type.rank; i++)
		h = mix(mix(h, (uint64_t)in->type.dims[i]), in->type.shard[i]);
	for (int i = 0; i < in->nargs; i++)
		h = mix(h, (uint64_t)in->args[i]);
	for (int i = 0; i < in->nattrs; i++) {
		const Attr *a = &in->attrs[i];
		h = mix(h, (uint64_t)a->kind); /* keys: compared, not hashed */
		switch (a->kind) {
		case ATTR_INTS:
			for (int k = 0; k < a->n; k++)
				h = mix(h, (uint64_t)a->ints[k]);
			break;
		case ATTR_FLOAT:
			h = mix_double(h, a->f);
			break;
		case ATTR_STR:
			h = mix_str(h, a->s);
			break;
		case ATTR_NAMES:
			for (int k = 0; k < a->n; k++)
				h = mix_str(h, a->names[k]);
			break;
		}
	}
	return mix_str(h, in->name);
}

static int str_equal(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static int attr_equal(const Attr *a, const Attr *b)
{
	if (!str_equal(a->key, b->key) || a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case ATTR_INTS:
		return a->n == b->n && !memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->n);
	case ATTR_FLOAT:
		return a->f == b->f; /* NaN never equals: it does not merge */
	case ATTR_STR:
		return str_equal(a->s, b->s);
	case ATTR_NAMES:
		if (a->n != b->n)
			return 0;
		for (int k = 0; k < a->n; k++)
			if (!str_equal(a->names[k], b->names[k]))
				return 0;
		return 1;
	}
	return 0;
}

static int inst_equal(const Inst *a, const Inst *b)
{
	if (a->op != b->op || a->nargs != b->nargs || a->nattrs != b->nattrs ||
	    !type_equal(&a->type, &b->type) || !str_equal(a->name, b->name))
		return 0;
	for (int i = 0; i < a->nargs; i++)
		if (a->args[i] != b->args[i])
			return 0;
	for (int i = 0; i < a->nattrs; i++)
		if (!attr_equal(&a->attrs[i], &b->attrs[i]))
			return 0;
	return 1;
}

static int mergeable(const Inst *in)
{
	unsigned f = ir_ops[in->op].flags;
	return in->op != OP_PARAMETER &&
	       !(f & (OPF_COLLECTIVE | OPF_ASYNC_START | OPF_ASYNC_DONE | OPF_TILED));
}

int ir_cse_inplace(Module *m)
{
	int n = m->ninsts;
	if (m->level != LEVEL_GRAPH || n == 0)
		return 0;
	size_t cap = 16;
	while (cap < 2 * (size_t)n)
		cap *= 2;
	ValueId *table = malloc(sizeof *table * cap);
	ValueId *map = malloc(sizeof *map * (size_t)n);
	unsigned char *output = calloc((size_t)n, 1);
	if (!table || !map || !output)
		ir_die("out of memory");
	for (size_t i = 0; i < cap; i++)
		table[i] = -1;
	for (int i = 0; i < m->noutputs; i++)
		output[m->outputs[i]] = 1;
	int merged = 0;
	for (ValueId v = 0; v < n; v++) {
		Inst *in = &m->insts[v];
		for (int k = 0; k < in->nargs; k++)
			in->args[k] = map[in->args[k]];
		map[v] = v;
		if (!mergeable(in))
			continue;
		size_t slot = (size_t)inst_hash(in) & (cap - 1);
		while (table[slot] >= 0 && !inst_equal(&m->insts[table[slot]], in))
			slot = (slot + 1) & (cap - 1);
		if (table[slot] >= 0 && !output[v]) {
			map[v] = table[slot];
			merged++;
		} else if (table[slot] < 0) {
			table[slot] = v;
		}
	}
	free(table);
	free(map);
	free(output);
	if (merged)
		ir_dce_inplace(m);
	return merged;
}
