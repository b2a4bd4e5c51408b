/* The schedule pass: collectives become coll_start/coll_done pairs, every
 * dependency holds, the other instructions keep their order, weight
 * all-gathers stay inside the prefetch window, and overlap buys engine time
 * on a program built so that it must. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testchip.h"
#include "testprog.h"
#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"
#include "sim/engine.h"

/* Not in passes.h: the layer segments the prefetch window counts. */

/* A realistic per-chip program: a decoder's training step sharded over
 * fsdp x tensor, marked tiled with every op on its default unit, in HBM. */
static Module *tiled_step(const char *model, int layers, RematPolicy remat, int fsdp,
                          int tensor)
{
	TestProg p = {.model = model, .layers = layers, .batch = 8, .seq = 64, .remat = remat,
	              .optimizer = OPTIMIZER_ADAM, .naxes = 2,
	              .axes = {{"fsdp", fsdp, 1}, {"tensor", tensor, 1}}};
	Module *local = test_local_program(&p);
	test_plain_tiled(local);
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(local, &d) == 0, "%s", d.msg);
	return local;
}

static int is_coll(const Inst *in)
{
	return (ir_ops[in->op].flags & OPF_COLLECTIVE) != 0;
}

static int is_async(const Inst *in)
{
	return in->op == OP_COLL_START || in->op == OP_COLL_DONE;
}

/* first_use[v]: the first instruction reading v (n if none). */
static int *first_uses(const Module *m)
{
	int *fu = malloc(sizeof(int) * (size_t)(m->ninsts + 1));
	for (int v = 0; v < m->ninsts; v++)
		fu[v] = m->ninsts;
	for (int v = m->ninsts - 1; v >= 0; v--)
		for (int k = 0; k < m->insts[v].nargs; k++)
			fu[m->insts[v].args[k]] = v;
	return fu;
}

/* Everything a schedule must keep, checked against the input. */
static void check_schedule(const Module *in, const Module *out, int overlap)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(out, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(out->level, LEVEL_TILED);

	/* Collectives become pairs; nothing else appears or disappears. */
	int ncoll = 0, nstart = 0, ndone = 0;
	for (int v = 0; v < in->ninsts; v++)
		ncoll += is_coll(&in->insts[v]);
	for (int v = 0; v < out->ninsts; v++) {
		const Inst *x = &out->insts[v];
		ck_assert_msg(!is_coll(x), "%%%d: a synchronous %s is left", v, op_name(x->op));
		nstart += x->op == OP_COLL_START;
		ndone += x->op == OP_COLL_DONE;
	}
	ck_assert_int_gt(ncoll, 0);
	ck_assert_int_eq(nstart, ncoll);
	ck_assert_int_eq(ndone, ncoll);
	ck_assert_int_eq(out->ninsts, in->ninsts + ncoll);

	/* The other instructions in the same relative order (parameters first,
	 * in their order, then the rest), same ops and types. */
	int j = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int v = 0; v < in->ninsts; v++) {
			const Inst *x = &in->insts[v];
			if (is_coll(x) || (x->op == OP_PARAMETER) != (pass == 0))
				continue;
			while (j < out->ninsts && is_async(&out->insts[j]))
				j++;
			ck_assert_int_lt(j, out->ninsts);
			ck_assert_msg(out->insts[j].op == x->op && type_same_shape(&out->insts[j].type,
			              &x->type), "input %%%d (%s) does not match output %%%d (%s)", v,
			              op_name(x->op), j, op_name(out->insts[j].op));
			j++;
		}

	/* Each done follows its start, precedes every user; each start names
	 * its collective and keeps its attributes. */
	int *fu = first_uses(out);
	for (int v = 0; v < out->ninsts; v++) {
		const Inst *x = &out->insts[v];
		if (x->op == OP_COLL_START) {
			const char *op = ir_attr_str(x, "op", NULL);
			ck_assert_ptr_nonnull(op);
			int k = op_from_name(op, strlen(op));
			ck_assert(k >= 0 && (ir_ops[k].flags & OPF_COLLECTIVE));
			ck_assert_ptr_nonnull(ir_attr(x, "axes"));
		}
		if (x->op != OP_COLL_DONE)
			continue;
		ValueId s = x->args[0];
		ck_assert_int_lt(s, v);
		ck_assert_int_eq(out->insts[s].op, OP_COLL_START);
		ck_assert_int_eq(fu[s], v); /* only its done reads a start */
		ck_assert_int_gt(fu[v], v);
		if (!overlap)
			ck_assert_msg(s == v - 1, "blocking: done %%%d does not follow start %%%d", v, s);
		else if (fu[v] < out->ninsts) {
			/* as late as allowed: only other starts and dones between the
			 * done and its first user, or a segment boundary */
			int between = 0;
			for (int k = v + 1; k < fu[v]; k++)
				between += !is_async(&out->insts[k]);
			ValueId a = out->insts[s].args[0];
			if (out->insts[a].op == OP_PARAMETER)
				ck_assert_msg(between == 0, "prefetch done %%%d is %d instructions before "
				              "its user", v, between);
		}
	}
	/* Outputs keep their types. */
	ck_assert_int_eq(out->noutputs, in->noutputs);
	for (int i = 0; i < in->noutputs; i++)
		ck_assert(type_same_shape(&out->insts[out->outputs[i]].type,
		                          &in->insts[in->outputs[i]].type));
	free(fu);
}

START_TEST(keeps_dependencies_and_order)
{
	Module *m = tiled_step("tiny-decoder", 0, REMAT_FULL, 4, 1);
	Diag d;
	diag_init(&d);
	for (int overlap = 0; overlap < 2; overlap++) {
		ScheduleOptions o = {overlap, 1};
		Module *p = pass_schedule(m, &o, &d);
		ck_assert_msg(p != NULL, "%s", d.msg);
		check_schedule(m, p, overlap);
		/* a scheduled program schedules again: the pairs are kept as they
		 * are, and nothing else changes */
		Module *q = pass_schedule(p, &o, &d);
		ck_assert_msg(q != NULL, "%s", d.msg);
		ck_assert_msg(ir_verify(q, &d) == 0, "%s", d.msg);
		ck_assert_int_eq(q->ninsts, p->ninsts);
		for (int v = 0; v < p->ninsts; v++)
			ck_assert_int_eq(q->insts[v].op, p->insts[v].op);
		ir_module_free(q);
		ir_module_free(p);
	}
	ir_module_free(m);
}
END_TEST

/* pass_schedule_take gives the program pass_schedule gives, printed
 * alike, and it outlives the module whose memory it took; the attributes
 * it extends (a start's op) are its own. */
START_TEST(take_gives_the_same_program)
{
	Module *m = tiled_step("tiny-decoder", 0, REMAT_FULL, 4, 2);
	Diag d;
	diag_init(&d);
	ScheduleOptions o = {1, 1};
	Module *p = pass_schedule(m, &o, &d);
	ck_assert_msg(p != NULL, "%s", d.msg);
	char *want = ir_print_string(p);
	int ncoll = 0;
	for (int v = 0; v < p->ninsts; v++)
		ncoll += p->insts[v].op == OP_COLL_START;
	ck_assert_int_gt(ncoll, 0);
	Module *q = pass_schedule_take(m, &o, &d);
	ck_assert_msg(q != NULL, "%s", d.msg);
	ir_module_free(m); /* q must not need it */
	ck_assert_msg(ir_verify(q, &d) == 0, "%s", d.msg);
	char *got = ir_print_string(q);
	ck_assert_str_eq(got, want);
	/* a later pass's attribute lands in q's own memory */
	for (int v = 0; v < q->ninsts; v++) {
		int64_t x = v;
		ir_set_ints(q, v, "probe", 1, &x);
	}
	ck_assert_int_eq(ir_attr_int(&q->insts[q->ninsts - 1], "probe", -1), q->ninsts - 1);
	free(got);
	free(want);
	ir_module_free(q);
	ir_module_free(p);
}
END_TEST

/* A collective of a collective: the second starts right after the first's
 * done, before the compute between them and the user; blocking, the
 * shrinking one goes right after its operand and the growing one right
 * before its user. */
START_TEST(chained_collectives)
{
	Module *m = ir_module_new("chain", LEVEL_TILED);
	m->mesh.naxes = 1;
	m->mesh.axes[0] = (MeshAxis){arena_strdup(&m->arena, "fsdp"), 4, 1};
	Type t = {.dtype = DT_F32, .rank = 2, .dims = {64, 128}};
	ValueId x = ir_param(m, "x", t);
	ValueId h = ir_unary(m, OP_EXP, x);
	ValueId rs = ir_collective(m, OP_REDUCE_SCATTER, h, 1u, 0);
	ValueId ag = ir_collective(m, OP_ALL_GATHER, rs, 1u, 0);
	ValueId k = ir_unary(m, OP_TANH, h); /* independent compute */
	ValueId y = ir_binary(m, OP_ADD, ag, k);
	ir_output(m, y);
	for (int i = 0; i < m->ninsts; i++)
		m->insts[i].unit = ir_ops[m->insts[i].op].unit;
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	const Op want[2][8] = {
		/* blocking: rs after h; ag before y, after tanh */
		{OP_PARAMETER, OP_EXP, OP_COLL_START, OP_COLL_DONE, OP_TANH, OP_COLL_START,
		 OP_COLL_DONE, OP_ADD},
		/* overlap: rs after h, ag right after rs's done, tanh between */
		{OP_PARAMETER, OP_EXP, OP_COLL_START, OP_COLL_DONE, OP_COLL_START, OP_TANH,
		 OP_COLL_DONE, OP_ADD},
	};
	for (int overlap = 0; overlap < 2; overlap++) {
		ScheduleOptions o = {overlap, 1};
		Module *p = pass_schedule(m, &o, &d);
		ck_assert_msg(p != NULL, "%s", d.msg);
		check_schedule(m, p, overlap);
		ck_assert_int_eq(p->ninsts, 8);
		for (int v = 0; v < 8; v++)
			ck_assert_msg(p->insts[v].op == want[overlap][v], "overlap=%d: %%%d is %s, not %s",
			              overlap, v, op_name(p->insts[v].op), op_name(want[overlap][v]));
		ck_assert_str_eq(ir_attr_str(&p->insts[2], "op", ""), "reduce_scatter");
		ir_module_free(p);
	}
	ir_module_free(m);
}
END_TEST

/* With overlap, a start goes right after its operand (only other starts
 * and dones between), and at least one collective overlaps compute. */
START_TEST(starts_as_early_as_the_operand_allows)
{
	Module *m = tiled_step("tiny-decoder", 0, REMAT_NONE, 4, 1);
	Diag d;
	diag_init(&d);
	ScheduleOptions o = {1, 1};
	Module *p = pass_schedule(m, &o, &d);
	ck_assert_msg(p != NULL, "%s", d.msg);
	check_schedule(m, p, 1);
	int overlapped = 0, early = 0;
	for (int v = 0; v < p->ninsts; v++) {
		const Inst *x = &p->insts[v];
		if (x->op != OP_COLL_DONE)
			continue;
		ValueId s = x->args[0], a = p->insts[s].args[0];
		int compute = 0;
		for (int k = s + 1; k < v; k++)
			compute += !is_async(&p->insts[k]);
		overlapped += compute > 0;
		if (p->insts[a].op == OP_PARAMETER)
			continue;
		for (int k = a + 1; k < s; k++)
			ck_assert_msg(is_async(&p->insts[k]), "start %%%d is not right after its "
			              "operand %%%d: %%%d (%s) between", s, a, k,
			              op_name(p->insts[k].op));
		early++;
	}
	ck_assert_int_gt(early, 0);
	ck_assert_int_gt(overlapped, 0);
	ir_module_free(p);
	ir_module_free(m);
}
END_TEST

/* The loss: output 0 through collectives and views. */
static ValueId loss_of(const Module *m)
{
	ValueId v = m->outputs[0];
	while (m->insts[v].nargs == 1 && (is_coll(&m->insts[v]) || is_async(&m->insts[v])))
		v = m->insts[v].args[0];
	return v;
}

/* No weight all-gather starts more than prefetch_layers layers before its
 * user: between the start and the user, every layer-tagged instruction of
 * the forward is at most p layers before the user's layer (and in the
 * backward, which runs the layers in reverse, at most p layers after).
 * With p >= 1 some gather does start in an earlier layer. */
START_TEST(prefetch_window)
{
	int p = _i;
	Module *m = tiled_step("tiny-decoder", 4, REMAT_FULL, 4, 1);
	Diag d;
	diag_init(&d);
	ScheduleOptions o = {1, p};
	Module *s = pass_schedule(m, &o, &d);
	ck_assert_msg(s != NULL, "%s", d.msg);
	check_schedule(m, s, 1);
	ValueId loss = loss_of(s);
	int *fu = first_uses(s);
	int checked = 0, ahead = 0;
	for (int v = 0; v < s->ninsts; v++) {
		const Inst *x = &s->insts[v];
		if (x->op != OP_COLL_START || s->insts[x->args[0]].op != OP_PARAMETER)
			continue;
		ValueId done = fu[v], user = fu[done];
		if (user >= s->ninsts)
			continue;
		int64_t L = ir_attr_int(&s->insts[user], "layer", -1);
		if (L < 0)
			continue;
		int bwd = user > loss;
		int64_t furthest = L;
		for (int k = v + 1; k < user; k++) {
			const Inst *y = &s->insts[k];
			if (y->op == OP_CONSTANT)
				continue; /* autodiff copies constants with their tags */
			int64_t l = ir_attr_int(y, "layer", -1);
			if (l < 0 || (k > loss) != bwd)
				continue;
			if (!bwd && l < furthest)
				furthest = l;
			if (bwd && l > furthest)
				furthest = l;
		}
		int64_t dist = bwd ? furthest - L : L - furthest;
		ck_assert_msg(dist <= p, "gather %%%d for layer %lld starts %lld layers ahead (p=%d)", v,
		              (long long)L, (long long)dist, p);
		ahead += dist > 0;
		checked++;
	}
	ck_assert_int_gt(checked, 4);
	if (p > 0)
		ck_assert_int_gt(ahead, 0);
	else
		ck_assert_int_eq(ahead, 0);
	free(fu);
	ir_module_free(s);
	ir_module_free(m);
}
END_TEST

/* The segments the window counts: nondecreasing, starting where they say,
 * one per layer of the forward and (with remat full, which tags the
 * recomputation) one per layer of the backward, plus the untagged
 * embeddings at the start. */
START_TEST(segments_follow_layers)
{
	Module *m = tiled_step("tiny-decoder", 3, REMAT_FULL, 4, 1);
	int *seg = malloc(sizeof(int) * (size_t)m->ninsts);
	int *start = malloc(sizeof(int) * (size_t)m->ninsts);
	int n = schedule_segments(m, seg, start);
	ck_assert_int_eq(n, 1 + 3 + 3);
	for (int v = 1; v < m->ninsts; v++)
		ck_assert_int_le(seg[v - 1], seg[v]);
	for (int s = 0; s < n; s++)
		ck_assert_int_eq(seg[start[s]], s);
	free(seg);
	free(start);
	ir_module_free(m);
}
END_TEST

/* x -> a chain of K dots (MXU) -> all_reduce(h) -> dot(., all_gather(w)).
 * Blocking, the all-gather sits on the ICI queue behind the all-reduce,
 * which waits for the chain; overlapped, it starts at time zero (w is a
 * parameter) and is hidden by the chain. So the overlapped step is shorter
 * by the all-gather's whole time, as long as the chain outlasts it. */
START_TEST(overlap_hides_the_all_gather)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("overlap", LEVEL_TILED);
	m->mesh.naxes = 1;
	m->mesh.axes[0] = (MeshAxis){arena_strdup(&m->arena, "fsdp"), 4, 1};
	Type tx = {.dtype = DT_BF16, .rank = 2, .dims = {1024, 1024}};
	Type tw = {.dtype = DT_BF16, .rank = 2, .dims = {256, 1024}};
	ValueId x = ir_param(m, "x", tx);
	ir_set_str(m, x, "role", "input");
	ValueId w = ir_param(m, "w", tw);
	ir_set_str(m, w, "role", "weight");
	ValueId h = x;
	for (int k = 0; k < 8; k++)
		h = ir_matmul(m, h, x);
	ValueId r = ir_collective(m, OP_ALL_REDUCE, h, 1u, 0);
	ValueId g = ir_collective(m, OP_ALL_GATHER, w, 1u, 0);
	ValueId y = ir_matmul(m, r, g);
	ir_output(m, y);
	for (int i = 0; i < m->ninsts; i++) {
		m->insts[i].unit = ir_ops[m->insts[i].op].unit;
		m->insts[i].mem = MEM_HBM;
	}
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	double t_gather = engine_default_collective_time(&c, &m->insts[g], m);

	double t[2];
	double chain_end = 0;
	for (int overlap = 0; overlap < 2; overlap++) {
		ScheduleOptions o = {overlap, 1};
		Module *p = pass_schedule(m, &o, &d);
		ck_assert_msg(p != NULL, "%s", d.msg);
		check_schedule(m, p, overlap);
		SimResult sr;
		ck_assert_msg(engine_run(p, &c, NULL, &sr, &d) == 0, "%s", d.msg);
		t[overlap] = sr.seconds;
		if (overlap) {
			/* the chain: the MXU ops before the all-reduce's start */
			for (int v = 0; v < p->ninsts; v++)
				if (p->insts[v].op == OP_DOT && sr.ops[v].end > chain_end &&
				    v < p->ninsts - 1)
					chain_end = sr.ops[v].end;
		}
		sim_result_free(&sr);
		ir_module_free(p);
	}
	ck_assert_msg(t_gather > 0 && t_gather < chain_end,
	              "the structure needs the gather (%g s) shorter than the chain (%g s)",
	              t_gather, chain_end);
	ck_assert_msg(t[1] < t[0], "overlap %g s, blocking %g s", t[1], t[0]);
	ck_assert_msg(t[0] - t[1] >= t_gather * (1 - 1e-9), "overlap saves %g s, the gather takes "
	              "%g s", t[0] - t[1], t_gather);
	ir_module_free(m);
}
END_TEST

/* On the tiled program fuse and tile make (values in VMEM, views, kernels):
 * the same invariants, and the engine runs both schedules. */
START_TEST(after_fuse_and_tile)
{
	Chip c = test_chip("tpu-v4");
	ModelConfig cfg;
	Diag d;
	diag_init(&d);
	ck_assert_msg(model_load("tiny-decoder", &cfg, &d) == 0, "%s", d.msg);
	BuildOptions bo;
	build_options_default(&bo);
	bo.batch = 8;
	bo.seq = 64;
	Module *fwd = model_build(&cfg, &bo, &d);
	ck_assert_msg(fwd != NULL, "%s", d.msg);
	model_annotate_logical(fwd);
	TrainOptions to;
	train_options_default(&to);
	to.remat = REMAT_FULL;
	to.optimizer = OPTIMIZER_ADAM;
	Module *step = train_step(fwd, &to, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	step->mesh.naxes = 1;
	step->mesh.axes[0] = (MeshAxis){"fsdp", 4, 1};
	ShardRules r;
	shard_rules_default(&step->mesh, &r);
	Module *local = shard_module(step, &r, NULL, NULL, &d);
	ck_assert_msg(local != NULL, "%s", d.msg);
	pass_fuse(local);
	ck_assert_msg(pass_tile(local, &c, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(local->level, LEVEL_TILED);
	for (int overlap = 0; overlap < 2; overlap++) {
		ScheduleOptions o = {overlap, 1};
		Module *p = pass_schedule(local, &o, &d);
		ck_assert_msg(p != NULL, "%s", d.msg);
		check_schedule(local, p, overlap);
		SimResult sr;
		ck_assert_msg(engine_run(p, &c, NULL, &sr, &d) == 0, "%s", d.msg);
		ck_assert(sr.seconds > 0);
		sim_result_free(&sr);
		ir_module_free(p);
	}
	ir_module_free(local);
	ir_module_free(step);
	ir_module_free(fwd);
}
END_TEST

START_TEST(rejects_graph_level_and_bad_options)
{
	Module *m = ir_module_new("g", LEVEL_GRAPH);
	Type t = {.dtype = DT_F32, .rank = 1, .dims = {4}};
	ir_output(m, ir_param(m, "x", t));
	Diag d;
	diag_init(&d);
	ScheduleOptions o = {1, 1};
	ck_assert_ptr_null(pass_schedule(m, &o, &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "tiled"));
	m->level = LEVEL_TILED;
	diag_init(&d);
	o.prefetch_layers = -1;
	ck_assert_ptr_null(pass_schedule(m, &o, &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "prefetch"));
	/* no collectives: the same program; NULL options mean the defaults */
	diag_init(&d);
	Module *p = pass_schedule(m, NULL, &d);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->ninsts, 1);
	ir_module_free(p);
	ir_module_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, keeps_dependencies_and_order);
	tcase_add_test(tc, take_gives_the_same_program);
	tcase_add_test(tc, starts_as_early_as_the_operand_allows);
	tcase_add_test(tc, chained_collectives);
	tcase_add_loop_test(tc, prefetch_window, 0, 3);
	tcase_add_test(tc, segments_follow_layers);
	tcase_add_test(tc, overlap_hides_the_all_gather);
	tcase_add_test(tc, after_fuse_and_tile);
	tcase_add_test(tc, rejects_graph_level_and_bad_options);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
