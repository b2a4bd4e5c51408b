/*
 * Rematerialization: which forward values the backward pass keeps, and the
 * recomputation of the others.
 *
 * Requires: a module whose forward region is [0, nfwd) (autodiff calls this
 * while it appends the backward). Changes: remat_use() appends, at the
 * current end of the module, a copy of a forward instruction (and,
 * recursively, of the unkept operands it needs; under "full", of its whole
 * layer), once per value. Copies keep their attributes (layer=[i] included)
 * and carry remat=[1]; FLOP counting counts them as hardware FLOPs only, so
 * hardware exceeds model FLOPs by exactly the recomputation of the policy.
 *
 * Layers: the instructions with the same layer=[i]. If some instructions
 * carry the attribute, the policy applies to those only and every value
 * outside the layers (embedding lookup, final norm, logits, loss) is kept,
 * as MaxText applies its policy to the decoder layers; if none does, the
 * whole model is one layer.
 *
 * Policies (which forward values are kept; leaves are always kept):
 *   none     every value.
 *   minimal  dot, gather and collective results (JAX's dots_saveable, plus
 *            no recomputed communication); elementwise ops, reductions,
 *            softmax and layout ops are recomputed, each when first needed.
 *   full     each layer's inputs: the values used by an instruction of a
 *            different layer (or outside any). The first time the backward
 *            needs a value of a layer, the whole layer is recomputed (every
 *            unkept instruction of it, in order): one more forward pass per
 *            layer, as PaLM's hardware FLOPs count it. Without layer
 *            attributes only the parameters are kept.
 */
#include "train.h"

#include <string.h>

static int64_t layer_of(const Inst *in)
{
	return ir_attr_int(in, "layer", -1);
}

void remat_init(Remat *r, Module *m, int nfwd, RematPolicy policy)
{
	size_t nz = (size_t)(nfwd > 0 ? nfwd : 1);
	r->m = m;
	r->nfwd = nfwd;
	r->policy = policy;
	r->keep = arena_alloc(&m->arena, nz);
	r->copy = arena_alloc(&m->arena, sizeof(ValueId) * nz);
	r->layer = arena_alloc(&m->arena, sizeof(int64_t) * nz);
	int has_layers = 0;
	for (int i = 0; i < nfwd; i++) {
		const Inst *in = &m->insts[i];
		unsigned fl = ir_ops[in->op].flags;
		r->copy[i] = -1;
		r->layer[i] = layer_of(in);
		has_layers |= r->layer[i] >= 0;
		switch (policy) {
		case REMAT_NONE:
			r->keep[i] = 1;
			break;
		case REMAT_MINIMAL:
			r->keep[i] = (fl & (OPF_LEAF | OPF_COLLECTIVE)) || in->op == OP_DOT ||
			             in->op == OP_GATHER;
			break;
		case REMAT_FULL:
			r->keep[i] = (fl & OPF_LEAF) != 0;
			break;
		}
	}
	/* With layers marked, values outside them are kept. */
	for (int i = 0; has_layers && i < nfwd; i++)
		if (r->layer[i] < 0)
			r->keep[i] = 1;
	if (policy == REMAT_FULL)
		for (int i = 0; i < nfwd; i++) {
			const Inst *in = &m->insts[i];
			for (int k = 0; k < in->nargs; k++)
				if (r->layer[in->args[k]] != r->layer[i])
					r->keep[in->args[k]] = 1;
		}
	/* by_layer, under full: a counting sort (stable) when the layer
	 * numbers are dense, as the frontends make them; else NULL, and a
	 * layer's members are found by scanning */
	r->by_layer = NULL;
	int64_t lmin = 0, lmax = -1;
	for (int i = 0; i < nfwd; i++) {
		if (i == 0 || r->layer[i] < lmin)
			lmin = r->layer[i];
		if (i == 0 || r->layer[i] > lmax)
			lmax = r->layer[i];
	}
	if (policy == REMAT_FULL && nfwd > 0 && (uint64_t)lmax - (uint64_t)lmin < (uint64_t)nfwd) {
		size_t nl = (size_t)(lmax - lmin) + 2;
		int *start = arena_alloc(&m->arena, sizeof(int) * nl);
		for (int i = 0; i < nfwd; i++)
			start[r->layer[i] - lmin + 1]++;
		for (size_t k = 1; k < nl; k++)
			start[k] += start[k - 1];
		r->by_layer = arena_alloc(&m->arena, sizeof(ValueId) * nz);
		for (int i = 0; i < nfwd; i++)
			r->by_layer[start[r->layer[i] - lmin]++] = i;
	}
}

/* Appends a copy of forward instruction v with its operands as the backward
 * should read them. */
static ValueId recompute(Remat *r, ValueId v)
{
	Module *m = r->m;
	int nargs = m->insts[v].nargs;
	ValueId args[64];
	ValueId *ap = nargs <= 64 ? args : arena_alloc(&m->arena, sizeof(ValueId) * (size_t)nargs);
	for (int k = 0; k < nargs; k++)
		ap[k] = remat_use(r, m->insts[v].args[k]);
	ValueId c = ir_clone_inst(m, m, v, ap);
	int64_t one = 1;
	ir_set_ints(m, c, "remat", 1, &one);
	return c;
}

ValueId remat_use(Remat *r, ValueId v)
{
	if (v >= r->nfwd || r->keep[v])
		return v;
	if (r->copy[v] >= 0)
		return r->copy[v];
	if (r->policy == REMAT_FULL) {
		/* The whole layer, in order, the first time any of it is needed:
		 * one more forward pass per layer, as PaLM's HFU counts it. Operands
		 * from other layers are that layer's inputs, hence kept. */
		int64_t layer = r->layer[v];
		if (!r->by_layer) {
			for (ValueId u = 0; u < r->nfwd; u++)
				if (!r->keep[u] && r->copy[u] < 0 && r->layer[u] == layer)
					r->copy[u] = recompute(r, u);
			return r->copy[v];
		}
		int lo = 0, hi = r->nfwd; /* the first of the layer in by_layer */
		while (lo < hi) {
			int mid = lo + (hi - lo) / 2;
			if (r->layer[r->by_layer[mid]] < layer)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (int i = lo; i < r->nfwd && r->layer[r->by_layer[i]] == layer; i++) {
			ValueId u = r->by_layer[i];
			if (!r->keep[u] && r->copy[u] < 0)
				r->copy[u] = recompute(r, u);
		}
		return r->copy[v];
	}
	r->copy[v] = recompute(r, v);
	return r->copy[v];
}
