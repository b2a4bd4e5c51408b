/*
 * The shard pass: from a global graph-level module and a mesh to the per-chip
 * SPMD program (docs/sharding.md).
 *
 * Parameters get shardings from logical-axis rules, MaxText style: a weight
 * or input whose parameter carries logical=[embed, mlp] has dim 0 sharded
 * over the mesh axes the rule for "embed" names and dim 1 over those of
 * "mlp". The named strategies follow from which mesh axes exist:
 *   data    batch over data: weights replicated, gradients all-reduced
 *   fsdp    batch and weights' embed dim over fsdp: weights all-gathered
 *           before use (forward and backward), gradients reduce-scattered
 *   tensor  Megatron: heads, mlp and vocab dims over tensor, partial sums
 *           all-reduced (or reduce-scattered into the consumer's sharding)
 *   2D      fsdp and tensor together (PaLM, GSPMD 2D weight sharding)
 *   expert  the expert dim of MoE weights and dispatched tokens over expert;
 *           the token <-> expert exchange becomes an all-to-all
 *   sequence the activations' length dim over sequence
 * Propagation then assigns every value a sharding, op by op, GSPMD style, and
 * inserts the collectives where operand shardings disagree with what the op
 * needs. Partial sums (a dot or reduction over a sharded dim) stay pending
 * through linear ops and are resolved where they are consumed: as a
 * reduce-scatter when the consumer wants the value sharded over those axes,
 * as an all-reduce otherwise.
 */
#ifndef PODSIM_SHARD_H
#define PODSIM_SHARD_H

#include "ir/ir.h"

/* Logical axis names the frontends use on parameters (logical=[...]). */
#define SHARD_MAX_RULES 16
typedef struct ShardRules {
	int n;
	const char *logical[SHARD_MAX_RULES];  /* e.g. "embed" */
	uint32_t axes[SHARD_MAX_RULES];        /* mesh-axis bit set */
} ShardRules;

/* The default rules over the axes of mesh:
 *   batch -> data, fsdp, expert     length -> sequence
 *   embed -> fsdp                   heads, kv_heads, mlp, vocab -> tensor
 *   exp -> expert                   anything else -> replicated */
void shard_rules_default(const Mesh *mesh, ShardRules *r);

/* Per-chip program statistics, for reports. */
typedef struct ShardStats {
	int collectives;      /* collectives inserted */
	double weight_bytes;  /* per-chip bytes of role="weight" parameters */
	double state_bytes;   /* per-chip bytes of role="opt_state" parameters */
	double input_bytes;   /* per-chip bytes of role="input" parameters */
} ShardStats;

/* Partitions g (graph level, global shapes, mesh in g->mesh) into a new
 * graph-level module of local (per-chip) shapes with the collectives
 * inserted, no sharding annotations. The new module's values keep their
 * names and attributes; the shardings chosen for g's values are returned in
 * shardings (g->ninsts entries, malloc'd, caller frees) when non-NULL.
 * Errors: a batch (input) dim the data axes do not divide, an unknown mesh
 * axis in rules. */
Module *shard_module(const Module *g, const ShardRules *rules, Type **shardings,
                     ShardStats *stats, Diag *d);

#endif
