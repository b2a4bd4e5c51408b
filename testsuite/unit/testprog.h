/*
 * For tests: a preset's training step partitioned for a mesh, the per-chip
 * program the passes after shard take. Failures end the test with the
 * diagnostic.
 */
#ifndef PODSIM_TESTPROG_H
#define PODSIM_TESTPROG_H

#include <check.h>

#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"

typedef struct TestProg {
	const char *model;
	int layers;           /* > 0: override the decoder layer count */
	int64_t batch, seq;
	RematPolicy remat;
	OptimizerKind optimizer;
	int naxes;
	MeshAxis axes[IR_MAX_MESH_AXES];
} TestProg;

/* The per-chip graph-level program of p (caller frees). */
static inline Module *test_local_program(const TestProg *p)
{
	ModelConfig cfg;
	Diag d;
	diag_init(&d);
	ck_assert_msg(model_load(p->model, &cfg, &d) == 0, "%s", d.msg);
	if (p->layers > 0)
		cfg.dec_layers = p->layers;
	BuildOptions bo;
	build_options_default(&bo);
	bo.batch = p->batch;
	bo.seq = p->seq;
	Module *fwd = model_build(&cfg, &bo, &d);
	ck_assert_msg(fwd != NULL, "%s", d.msg);
	model_annotate_logical(fwd);
	TrainOptions to;
	train_options_default(&to);
	to.remat = p->remat;
	to.optimizer = p->optimizer;
	Module *step = train_step(fwd, &to, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	step->mesh.naxes = p->naxes;
	for (int i = 0; i < p->naxes; i++)
		step->mesh.axes[i] = p->axes[i];
	ShardRules r;
	shard_rules_default(&step->mesh, &r);
	Module *local = shard_module(step, &r, NULL, NULL, &d);
	ck_assert_msg(local != NULL, "%s", d.msg);
	ir_module_free(step);
	ir_module_free(fwd);
	return local;
}

/* Makes m tiled with every op on its default unit and every value in HBM:
 * for passes that need a tiled module but not fuse/tile's choices. */
static inline void test_plain_tiled(Module *m)
{
	m->level = LEVEL_TILED;
	for (int i = 0; i < m->ninsts; i++) {
		m->insts[i].unit = ir_ops[m->insts[i].op].unit;
		m->insts[i].mem = MEM_HBM;
	}
}

#endif
