/*
 * The compiler pipeline in one straight line (compiler/pipeline.c):
 *
 *   model_build -> model_annotate_logical -> train_step (autodiff, remat,
 *   optimizer) -> shard -> fuse -> tile -> schedule -> memplan
 *
 * Each stage's output is kept in the Compiled result so that any of them
 * can be printed (podsim compile --emit) and the report can read them.
 */
#ifndef PODSIM_PIPELINE_H
#define PODSIM_PIPELINE_H

#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"

typedef struct CompileOptions {
	ModelConfig model;
	Chip chip;
	Mesh mesh;             /* named axes with ICI and DCN sizes */
	int64_t batch;         /* global batch, sequences (images) per step */
	int64_t seq;           /* tokens per sequence; 0: the model's default */
	int microbatches;      /* gradient accumulation steps (>= 1) */
	TrainOptions train;    /* optimizer, remat */
	ScheduleOptions sched; /* overlap, prefetch */
	DType dtype;           /* weights and activations */
	int forward_only;      /* 1: inference (no backward, no update) */
	int keep_stages;       /* 1: keep every stage's module in Compiled (podsim
	                        * compile); 0: free each once the next is built */
} CompileOptions;

void compile_options_default(CompileOptions *o);

typedef struct Compiled {
	Module *forward;   /* global forward graph, one microbatch (keep_stages) */
	Module *step;      /* global training step, or the forward (keep_stages) */
	Module *local;     /* per-chip graph after shard (keep_stages) */
	Module *tiled;     /* per-chip tiled program after fuse and tile (keep_stages) */
	Module *program;   /* the scheduled per-chip program */
	Type *shardings;   /* (step->ninsts) each global value's sharding */
	ShardStats shard;
	ParamCount params;
	FlopCount flops;   /* of the global step (one microbatch) */
	MemPlan mem;
	int64_t micro_batch; /* sequences per microbatch */
	int64_t seq;         /* tokens per sequence */
} Compiled;

/* Runs the pipeline. Returns 0, or -1 with d filled (bad mesh, indivisible
 * batch, ...). A program that does not fit in HBM still compiles: see
 * c->mem.fits. Free with compiled_free (also after a failure). */
int compile_model(const CompileOptions *o, Compiled *c, Diag *d);
void compiled_free(Compiled *c);

/* The pipeline in two parts, for callers that lower one training step
 * for many meshes (podsim sweep): compile_step builds the global step and
 * its counts, which depend on the model, batch, sequence, microbatches,
 * training options and dtype but not on the mesh or the chip;
 * compile_lower runs shard to memplan on it for o's mesh and chip, reading
 * s only (several threads may lower one step at once). compile_lower with
 * a step made from the same options gives what compile_model gives
 * (keep_stages aside: c->forward and c->step stay NULL). */
typedef struct CompiledStep {
	Module *step;        /* the global training step (or forward graph) */
	ParamCount params;
	FlopCount flops;
	int64_t micro_batch; /* sequences per microbatch */
	int64_t seq;         /* tokens per sequence */
} CompiledStep;

int compile_step(const CompileOptions *o, CompiledStep *s, Diag *d);
void compiled_step_free(CompiledStep *s);
int compile_lower(const CompileOptions *o, const CompiledStep *s, Compiled *c, Diag *d);

/* Parses "fsdp=256,tensor=12" into axes of m with the given kind (ICI or
 * DCN size); an axis named again multiplies into the same axis. flag names
 * the option in messages ("--ici"). Returns 0 or -1 with d filled. */
int mesh_parse(Mesh *m, Arena *names, const char *spec, int dcn, const char *flag, Diag *d);

#endif
