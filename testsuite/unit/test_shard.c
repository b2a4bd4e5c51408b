/* The shard pass: parameter shardings from logical rules, propagation, and
 * the collectives each strategy implies, on a small MLP and its training
 * step. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"
#include "testprog.h"

/* x [B, D] (batch, embed) -> relu(x W1) W2 -> loss = sum(y * y). */
static Module *mlp(int64_t B, int64_t D, int64_t F, const char *mesh_spec[], const int *sizes,
                   int naxes)
{
	Module *m = ir_module_new("mlp", LEVEL_GRAPH);
	for (int i = 0; i < naxes; i++) {
		m->mesh.axes[i].name = arena_strdup(&m->arena, mesh_spec[i]);
		m->mesh.axes[i].ici = sizes[i];
		m->mesh.axes[i].dcn = 1;
	}
	m->mesh.naxes = naxes;
	Type tx = {.dtype = DT_F32, .rank = 2, .dims = {B, D}};
	Type t1 = {.dtype = DT_F32, .rank = 2, .dims = {D, F}};
	Type t2 = {.dtype = DT_F32, .rank = 2, .dims = {F, D}};
	ValueId x = ir_param(m, "x", tx);
	ir_set_str(m, x, "role", "input");
	ir_set_names(m, x, "logical", 2, (const char *[]){"batch", "embed"});
	ValueId w1 = ir_param(m, "w1", t1);
	ir_set_str(m, w1, "role", "weight");
	ir_set_names(m, w1, "logical", 2, (const char *[]){"embed", "mlp"});
	ValueId w2 = ir_param(m, "w2", t2);
	ir_set_str(m, w2, "role", "weight");
	ir_set_names(m, w2, "logical", 2, (const char *[]){"mlp", "embed"});
	ValueId h = ir_unary(m, OP_RELU, ir_matmul(m, x, w1));
	ValueId y = ir_matmul(m, h, w2);
	ValueId sq = ir_binary(m, OP_MUL, y, y);
	int64_t dims[2] = {0, 1};
	ir_output(m, ir_reduce(m, OP_REDUCE_SUM, sq, 2, dims));
	return m;
}

/* Counts collectives of op over exactly the named axes (NULL: any). */
static int count(const Module *m, Op op, const char *axes)
{
	int n = 0;
	for (int i = 0; i < m->ninsts; i++) {
		const Inst *in = &m->insts[i];
		if (in->op != op)
			continue;
		const Attr *a = ir_attr(in, "axes");
		char buf[128] = "";
		for (int k = 0; a && k < a->n; k++) {
			if (k)
				strcat(buf, ",");
			strcat(buf, a->names[k]);
		}
		if (!axes || !strcmp(buf, axes))
			n++;
	}
	return n;
}

static Module *shard(Module *g, Type **sh)
{
	ShardRules r;
	shard_rules_default(&g->mesh, &r);
	Diag d;
	diag_init(&d);
	Module *p = shard_module(g, &r, sh, NULL, &d);
	ck_assert_msg(p != NULL, "%s", d.msg);
	ck_assert_msg(ir_verify(p, &d) == 0, "%s", d.msg);
	if (getenv("SHARD_DUMP"))
		ir_print(p, stderr);
	return p;
}

START_TEST(test_data_parallel_forward)
{
	Module *g = mlp(8, 16, 32, (const char *[]){"data"}, (int[]){4}, 1);
	Type *sh;
	Module *p = shard(g, &sh);
	/* batch split 4 ways, weights whole: no communication until the loss */
	ck_assert_int_eq((int)p->insts[0].type.dims[0], 2);
	ck_assert_int_eq((int)p->insts[1].type.dims[0], 16);
	ck_assert_int_eq(count(p, OP_ALL_GATHER, NULL), 0);
	/* the loss is a sum over the batch: one all-reduce over data */
	ck_assert_int_eq(count(p, OP_ALL_REDUCE, "data"), 1);
	ck_assert_int_eq(p->noutputs, 1);
	ck_assert_int_eq(p->insts[p->outputs[0]].type.rank, 0);
	free(sh);
	ir_module_free(p);
	ir_module_free(g);
}
END_TEST

START_TEST(test_tensor_parallel_forward)
{
	Module *g = mlp(8, 16, 32, (const char *[]){"tensor"}, (int[]){2}, 1);
	Type *sh;
	Module *p = shard(g, &sh);
	/* Megatron: W1 column-split, W2 row-split, one all-reduce of y */
	ck_assert_int_eq((int)p->insts[1].type.dims[1], 16);
	ck_assert_int_eq((int)p->insts[2].type.dims[0], 16);
	ck_assert_int_eq(count(p, OP_ALL_GATHER, NULL), 0);
	ck_assert_int_eq(count(p, OP_ALL_REDUCE, "tensor"), 1);
	free(sh);
	ir_module_free(p);
	ir_module_free(g);
}
END_TEST

START_TEST(test_fsdp_forward)
{
	Module *g = mlp(8, 16, 32, (const char *[]){"fsdp"}, (int[]){4}, 1);
	Type *sh;
	Module *p = shard(g, &sh);
	/* weights split on embed, gathered whole before each matmul */
	ck_assert_int_eq((int)p->insts[1].type.dims[0], 4);
	ck_assert_int_eq((int)p->insts[2].type.dims[1], 4);
	ck_assert_int_eq(count(p, OP_ALL_GATHER, "fsdp"), 2);
	ck_assert_uint_eq(sh[1].shard[0], 1u);
	free(sh);
	ir_module_free(p);
	ir_module_free(g);
}
END_TEST

START_TEST(test_2d_training_step)
{
	Module *g = mlp(8, 16, 32, (const char *[]){"data", "fsdp", "tensor"},
	                (int[]){2, 2, 2}, 3);
	TrainOptions o;
	train_options_default(&o);
	o.optimizer = OPTIMIZER_ADAM;
	Diag d;
	diag_init(&d);
	Module *step = train_step(g, &o, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	step->mesh = g->mesh;
	Type *sh;
	Module *p = shard(step, &sh);
	/* forward and backward gather the fsdp-split weights ... */
	ck_assert_int_ge(count(p, OP_ALL_GATHER, "fsdp"), 3);
	/* ... and each weight gradient is reduce-scattered into its shard */
	ck_assert_int_eq(count(p, OP_REDUCE_SCATTER, "fsdp"), 2);
	/* optimizer state is split like its weight */
	for (int i = 0; i < step->ninsts; i++) {
		const Inst *in = &step->insts[i];
		if (in->op == OP_PARAMETER && !strcmp(ir_attr_str(in, "role", ""), "opt_state") &&
		    in->type.rank == 2)
			ck_assert_uint_ne(sh[i].shard[0] | sh[i].shard[1], 0u);
	}
	free(sh);
	ir_module_free(p);
	ir_module_free(step);
	ir_module_free(g);
}
END_TEST

START_TEST(test_indivisible_batch)
{
	Module *g = mlp(6, 16, 32, (const char *[]){"data"}, (int[]){4}, 1);
	ShardRules r;
	shard_rules_default(&g->mesh, &r);
	Diag d;
	diag_init(&d);
	ck_assert_ptr_null(shard_module(g, &r, NULL, NULL, &d));
	ck_assert_msg(strstr(d.msg, "not divisible") != NULL, "%s", d.msg);
	ir_module_free(g);
}
END_TEST


START_TEST(test_uneven_split_pads)
{
	/* a vocabulary of 10 over tensor=4: shards of 3 rows, the last padded */
	Module *g = ir_module_new("emb", LEVEL_GRAPH);
	g->mesh.naxes = 1;
	g->mesh.axes[0] = (MeshAxis){arena_strdup(&g->arena, "tensor"), 4, 1};
	Type tt = {.dtype = DT_F32, .rank = 2, .dims = {10, 8}};
	ValueId t = ir_param(g, "table", tt);
	ir_set_str(g, t, "role", "weight");
	ir_set_names(g, t, "logical", 2, (const char *[]){"vocab", "embed"});
	int64_t dims[1] = {0};
	ir_output(g, ir_reduce(g, OP_REDUCE_SUM, t, 1, dims)); /* needs every row */
	Type *sh;
	Module *p = shard(g, &sh);
	ck_assert_int_eq((int)p->insts[0].type.dims[0], 3);
	/* the reduction over the split rows is a partial sum, all-reduced */
	ck_assert_int_eq(count(p, OP_ALL_REDUCE, "tensor"), 1);
	free(sh);
	ir_module_free(p);
	ir_module_free(g);
}
END_TEST

START_TEST(test_constraint_reduce_scatters)
{
	/* y = x W2 partial over tensor, constrained to [batch, activation_embed]:
	 * resolved by a reduce-scatter, not an all-reduce */
	Module *g = mlp(8, 16, 32, (const char *[]){"tensor"}, (int[]){2}, 1);
	ValueId y = -1;
	for (int i = 0; i < g->ninsts; i++)
		if (g->insts[i].op == OP_DOT)
			y = i; /* the second dot */
	ir_set_names(g, y, "logical", 2, (const char *[]){"batch", "activation_embed"});
	Type *sh;
	Module *p = shard(g, &sh);
	ck_assert_int_eq(count(p, OP_REDUCE_SCATTER, "tensor"), 1);
	ck_assert_uint_eq(sh[y].shard[1], 1u);
	free(sh);
	ir_module_free(p);
	ir_module_free(g);
}
END_TEST

/* Every tiny preset's training step partitions and verifies under each
 * strategy, and the per-chip weights are the global ones split as the
 * strategy says (padding aside). */
START_TEST(test_presets_all_strategies)
{
	static const char *const models[] = {"tiny-decoder", "tiny-palm", "tiny-llama", "tiny-t5",
	                                     "tiny-switch", "tiny-vit", "tiny-mixer"};
	static const struct {
		const char *names[2];
		int sizes[2];
		int naxes;
		int weight_split; /* how many ways a big matrix is split */
	} meshes[] = {
		{{"data", NULL}, {8, 1}, 1, 1},
		{{"fsdp", NULL}, {8, 1}, 1, 8},
		{{"tensor", NULL}, {4, 1}, 1, 4},
		{{"fsdp", "tensor"}, {4, 2}, 2, 8},
	};
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
		ModelConfig cfg;
		Diag d;
		diag_init(&d);
		ck_assert_msg(model_load(models[i], &cfg, &d) == 0, "%s", d.msg);
		BuildOptions bo;
		build_options_default(&bo);
		bo.batch = 8;
		Module *fwd = model_build(&cfg, &bo, &d);
		ck_assert_msg(fwd != NULL, "%s: %s", models[i], d.msg);
		ck_assert_int_eq(model_annotate_logical(fwd), 0);
		TrainOptions to;
		train_options_default(&to);
		Module *step = train_step(fwd, &to, &d);
		ck_assert_msg(step != NULL, "%s: %s", models[i], d.msg);
		double global_w = 0;
		for (int v = 0; v < step->ninsts; v++)
			if (step->insts[v].op == OP_PARAMETER &&
			    !strcmp(ir_attr_str(&step->insts[v], "role", ""), "weight"))
				global_w += (double)type_bytes(&step->insts[v].type);
		for (size_t k = 0; k < sizeof meshes / sizeof meshes[0]; k++) {
			step->mesh.naxes = meshes[k].naxes;
			for (int a = 0; a < meshes[k].naxes; a++)
				step->mesh.axes[a] = (MeshAxis){meshes[k].names[a], meshes[k].sizes[a], 1};
			ShardRules r;
			shard_rules_default(&step->mesh, &r);
			ShardStats st;
			Module *p = shard_module(step, &r, NULL, &st, &d);
			ck_assert_msg(p != NULL, "%s mesh %zu: %s", models[i], k, d.msg);
			ck_assert_msg(ir_verify(p, &d) == 0, "%s mesh %zu: %s", models[i], k, d.msg);
			/* split weights hold about 1/split of the bytes; small ones
			 * (norm scales, biases) stay whole */
			ck_assert_msg(st.weight_bytes <= global_w / meshes[k].weight_split * 1.35 + 4096,
			              "%s mesh %zu: %g of %g weight bytes per chip", models[i], k,
			              st.weight_bytes, global_w);
			if (meshes[k].weight_split > 1)
				ck_assert_int_gt(st.collectives, 0);
			ir_module_free(p);
		}
		ir_module_free(step);
		ir_module_free(fwd);
	}
}
END_TEST

/* Remat minimal keeps every matmul output for the backward. In a PaLM
 * block the attention and MLP output projections contract a dim split over
 * tensor, so each chip holds a partial sum, and the block adds the two.
 * What is saved must be the reduced value, split over tensor like the
 * residual stream, as XLA saves a dot's result; kept as partial sums, each
 * holds the whole [batch, length, d_model] buffer on every chip. The bytes
 * of the layers' forward values that the backward reads, per chip: */
static double saved_layer_bytes(const char *model, int tensor)
{
	TestProg tp = {.model = model, .layers = 2, .batch = 8, .seq = 64, .remat = REMAT_MINIMAL,
	               .optimizer = OPTIMIZER_ADAM, .naxes = 1, .axes = {{"tensor", tensor, 1}}};
	Module *m = test_local_program(&tp);
	ValueId loss = program_forward_end(m);
	char *read = calloc((size_t)m->ninsts, 1);
	ck_assert_ptr_nonnull(read);
	for (int i = loss + 1; i < m->ninsts; i++)
		for (int k = 0; k < m->insts[i].nargs; k++)
			read[m->insts[i].args[k]] = 1;
	double b = 0;
	for (int v = 0; v < loss; v++)
		if (read[v] && m->insts[v].op != OP_PARAMETER &&
		    ir_attr_int(&m->insts[v], "layer", -1) >= 0)
			b += (double)type_bytes(&m->insts[v].type);
	free(read);
	ir_module_free(m);
	return b;
}

/* Over tensor=4 they are a quarter of those over tensor=1, plus the key
 * and value projections that multi-query attention does not split: 0.26
 * of them on PaLM 8B and 0.27 on tiny-palm; with the partial sums saved,
 * 0.32 on both. */
START_TEST(saved_partial_sums_are_reduced)
{
	static const char *const models[] = {"tiny-palm", "palm-8b"};
	for (int i = 0; i < 2; i++) {
		double one = saved_layer_bytes(models[i], 1), four = saved_layer_bytes(models[i], 4);
		ck_assert_msg(four < 0.3 * one, "%s, remat minimal: %g bytes saved per chip over "
		              "tensor=4, %g over tensor=1", models[i], four, one);
	}
}
END_TEST

/* A broadcast the backward needs (a norm's rsqrt spread over d_model, which
 * the norm's gradient multiplies by) is made again in the backward from its
 * smaller operand, as XLA duplicates a broadcast into each fusion that reads
 * it: no forward broadcast is read after the loss, in a decoder or an
 * encoder-decoder, without remat (every forward value kept). */
START_TEST(broadcasts_are_not_kept_for_the_backward)
{
	static const char *const models[] = {"tiny-decoder", "tiny-t5"};
	for (int i = 0; i < 2; i++) {
		TestProg tp = {.model = models[i], .batch = 8, .seq = 16, .remat = REMAT_NONE,
		               .optimizer = OPTIMIZER_ADAM, .naxes = 2,
		               .axes = {{"data", 2, 1}, {"tensor", 2, 1}}};
		Module *m = test_local_program(&tp);
		ValueId loss = program_forward_end(m);
		int kept = 0, made_again = 0;
		for (int v = loss + 1; v < m->ninsts; v++) {
			const Inst *in = &m->insts[v];
			made_again += in->op == OP_BROADCAST && m->insts[in->args[0]].op != OP_CONSTANT;
			for (int k = 0; k < in->nargs; k++)
				kept += in->args[k] < loss && m->insts[in->args[k]].op == OP_BROADCAST;
		}
		ck_assert_msg(kept == 0, "%s: %d forward broadcasts read after the loss", models[i],
		              kept);
		ck_assert_int_gt(made_again, 0);
		ir_module_free(m);
	}
}
END_TEST

/* The tied embedding table, split over fsdp, is gathered for the lookup
 * and again for the logits (the two lie outside the layers, before and
 * after them), at every depth: gathered copies are shared within a region,
 * and how far apart the two users are does not decide. Before, the copy
 * was shared while few enough reshards came between, so one layer had one
 * gather fewer than two, and the sweep's small depths did not lie on a
 * line. */
static int table_gathers(int layers)
{
	TestProg tp = {.model = "tiny-palm", .layers = layers, .batch = 8, .seq = 16,
	               .remat = REMAT_NONE, .optimizer = OPTIMIZER_ADAM, .naxes = 2,
	               .axes = {{"fsdp", 2, 1}, {"tensor", 2, 1}}};
	Module *m = test_local_program(&tp);
	ValueId fend = program_forward_end(m);
	int n = 0;
	for (int v = 0; v < fend; v++) {
		const Inst *in = &m->insts[v];
		const Inst *a = in->nargs ? &m->insts[in->args[0]] : NULL;
		n += in->op == OP_ALL_GATHER && a && a->op == OP_PARAMETER &&
		     !strcmp(ir_attr_str(a, "name", ""), "embed/tokens");
	}
	ir_module_free(m);
	return n;
}

START_TEST(embedding_gathered_alike_at_every_depth)
{
	int one = table_gathers(1);
	ck_assert_int_eq(one, 2);
	ck_assert_int_eq(table_gathers(2), one);
	ck_assert_int_eq(table_gathers(3), one);
}
END_TEST

/* dW = x^T dy where x is split over tensor on d_model and dy on the
 * vocabulary (the tied logits' gradient): tensor can split only one of the
 * result's dims, so one operand is gathered, and it is the smaller one
 * whichever side it is on (gathering dy moved vocab / d_model times the
 * bytes, and held the whole [tokens, vocab] on every chip). */
static int64_t gathered_width(int x_first)
{
	Module *g = ir_module_new("dw", LEVEL_GRAPH);
	g->mesh.axes[0] = (MeshAxis){arena_strdup(&g->arena, "tensor"), 4, 1};
	g->mesh.naxes = 1;
	Type tx = {.dtype = DT_F32, .rank = 2, .dims = {64, 16}};
	Type ty = {.dtype = DT_F32, .rank = 2, .dims = {64, 256}};
	ValueId x = ir_param(g, "x", tx), y = ir_param(g, "dy", ty);
	ir_set_str(g, x, "role", "input");
	ir_set_str(g, y, "role", "input");
	ir_set_names(g, x, "logical", 2, (const char *[]){"batch", "activation_embed"});
	ir_set_names(g, y, "logical", 2, (const char *[]){"batch", "vocab"});
	ValueId a = x_first ? x : y, b = x_first ? y : x;
	ir_output(g, ir_dot(g, a, b, 1, (int64_t[]){0}, (int64_t[]){0}, 0, NULL, NULL));
	Module *p = shard(g, NULL);
	ck_assert_int_eq(count(p, OP_ALL_GATHER, "tensor"), 1);
	int64_t w = -1;
	for (int i = 0; i < p->ninsts; i++)
		if (p->insts[i].op == OP_ALL_GATHER)
			w = p->insts[p->insts[i].args[0]].type.dims[1];
	ir_module_free(p);
	ir_module_free(g);
	return w;
}

START_TEST(conflicting_free_dims_gather_the_smaller)
{
	/* x's shard [64, 16/4] is gathered, not dy's [64, 256/4] */
	ck_assert_int_eq(gathered_width(1), 4);
	ck_assert_int_eq(gathered_width(0), 4);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shard");
	TCase *tc = tcase_create("shard");
	tcase_add_test(tc, test_data_parallel_forward);
	tcase_add_test(tc, test_tensor_parallel_forward);
	tcase_add_test(tc, test_fsdp_forward);
	tcase_add_test(tc, test_2d_training_step);
	tcase_add_test(tc, test_indivisible_batch);
	tcase_add_test(tc, test_uneven_split_pads);
	tcase_add_test(tc, test_constraint_reduce_scatters);
	tcase_add_test(tc, test_presets_all_strategies);
	tcase_add_test(tc, saved_partial_sums_are_reduced);
	tcase_add_test(tc, broadcasts_are_not_kept_for_the_backward);
	tcase_add_test(tc, embedding_gathered_alike_at_every_depth);
	tcase_add_test(tc, conflicting_free_dims_gather_the_smaller);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
