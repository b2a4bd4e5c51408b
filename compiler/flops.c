/*
 * FLOP counting from the graph.
 *
 * Conventions (docs/training.md), per instruction:
 *   dot             2 x numel(result) x product of the contracted dims (one
 *                   multiply and one add per term). A dot tagged
 *                   scatter_add=[1] (gather's gradient) stands for a scatter
 *                   and counts 1 per element of its update (the adjoint g),
 *                   not as a matmul.
 *   elementwise     1 per result element, transcendentals included; convert,
 *                   select and compares too.
 *   reduce_sum/max  1 per operand element.
 *   softmax         5 per element (max, subtract, exp, sum, divide).
 *   everything else 0: leaves, data movement (broadcast, reshape, transpose,
 *                   slice, concat, gather, one_hot) and collectives.
 * Model FLOPs: every instruction except recomputed ones (remat=[1]) and the
 * optimizer update (optimizer=[1]); hardware FLOPs add the recomputed ones
 * (PaLM appendix B's MFU and HFU numerators).
 */
#include "train.h"

double flops_inst(const Module *m, ValueId v)
{
	const Inst *in = &m->insts[v];
	double n = (double)type_numel(&in->type);
	unsigned fl = ir_ops[in->op].flags;
	if (in->op == OP_DOT) {
		const Type *a = &m->insts[in->args[0]].type;
		if (ir_attr_int(in, "scatter_add", 0))
			return (double)type_numel(&m->insts[in->args[1]].type);
		int nc;
		const int64_t *lc = ir_attr_ints(in, "lhs_contract", &nc);
		double k = 1;
		for (int i = 0; i < nc; i++)
			k *= (double)a->dims[lc[i]];
		return 2.0 * n * k;
	}
	if (fl & OPF_ELEMWISE)
		return n;
	if (fl & OPF_REDUCE)
		return (double)type_numel(&m->insts[in->args[0]].type);
	if (in->op == OP_SOFTMAX)
		return 5.0 * n;
	return 0;
}

void flops_count(const Module *m, FlopCount *out)
{
	FlopCount c = {0};
	for (ValueId v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		double f = flops_inst(m, v);
		int mm = in->op == OP_DOT && !ir_attr_int(in, "scatter_add", 0);
		if (ir_attr_int(in, "optimizer", 0)) {
			c.optimizer += f;
			continue;
		}
		c.hardware += f;
		if (mm)
			c.hardware_matmul += f;
		if (ir_attr_int(in, "remat", 0))
			continue;
		c.model += f;
		if (mm)
			c.model_matmul += f;
	}
	*out = c;
}

/* PaLM (Chowdhery et al. 2022), appendix B: per token, the forward pass's
 * matmuls with the weights cost 2N and the attention's two T-long
 * contractions (scores and the weighted sum of values) 2 x 2 H Q T per
 * layer; the backward pass costs twice the forward. Hence 3 x (2N + 4LHQT).
 * N counts each parameter that multiplies an activation once per token: in
 * PaLM the input and output embeddings are shared and count once (as the
 * logits matmul; the input lookup is not a matmul); an untied input
 * embedding table, and parameters used only elementwise (norm scales,
 * biases), are not matmul parameters. Attention is counted over the whole
 * sequence, not halved for the causal mask. */
double flops_palm_per_token(double n_params, int64_t layers, int64_t heads,
                            int64_t head_dim, int64_t seq)
{
	return 6.0 * n_params + 12.0 * (double)layers * (double)heads * (double)head_dim * (double)seq;
}
