/* The memplan pass: exact peaks of small programs worked out by hand,
 * donation of updated weights, categories, remat's effect on activations,
 * and the "does not fit" diagnostic of a model far too big for its mesh. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testchip.h"
#include "testprog.h"
#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"

static Type f32(int64_t n)
{
	Type t = {.dtype = DT_F32, .rank = 1, .dims = {n}};
	return t;
}

static ValueId role_param(Module *m, const char *name, const char *role, Type t)
{
	ValueId v = ir_param(m, name, t);
	ir_set_str(m, v, "role", role);
	return v;
}

static void tile_all(Module *m)
{
	for (int i = 0; i < m->ninsts; i++) {
		if (m->insts[i].unit == UNIT_NONE)
			m->insts[i].unit = ir_ops[m->insts[i].op].unit;
		if (m->insts[i].mem == MEM_NONE)
			m->insts[i].mem = MEM_HBM;
	}
}

static void set_opt(Module *m, ValueId v)
{
	int64_t one = 1;
	ir_set_ints(m, v, "optimizer", 1, &one);
}

/* A scheduled program whose liveness is worked out by hand (bytes: f32[1024]
 * = 4096, f32[512] = 2048, f32[2048] = 8192, f32[] = 4):
 *
 *   %0  w  weight    4096   live throughout
 *   %1  s  opt_state 4096   live throughout
 *   %2  x  input     2048   live throughout          params: 10240
 *   %3  gs = coll_start(w) all_gather -> 8192        live 3..8 (done's user)
 *   %4  a  = mul(x, x)        2048                   live 4..6
 *   %5  b  = exp(a)   in VMEM    0
 *   %6  c  = add(b, a)        2048                   live 6..11 (via the view)
 *   %7  gd = coll_done(gs)       0 (gs's buffer)
 *   %8  y  = slice(gd)        4096                   live 8..9
 *   %9  z  = mul(y, w)        4096                   live 9..14: an activation
 *   %10 r  = reshape(c)          0 (c's buffer)
 *   %11 l1 = reduce_sum(r)       4                   live 11..13
 *   %12 l2 = reduce_sum(z)       4                   live 12..13
 *   %13 loss = add(l1, l2)       4                   output: to the end
 *   %14 g  = mul(z, w)        4096                   the gradient, live 14..18
 *   %15 k  = constant            0 {optimizer}
 *   %16 u  = mul(k, g)        4096 {optimizer}       live 16..17
 *   %17 w' = sub(w, u)           0 {optimizer}, output 1, donated to w
 *   %18 s' = add(s, g)           0 {optimizer}, output 2, donated to s
 *
 * Live non-parameter bytes per instruction: 3: 8192, 4: 10240, 6: 12288,
 * 8: 14336 (gs, c, y; a died at 6), 9: 14336 - ... (gs died at 8: c, y, z
 * = 10240), 14: loss + z + g = 8196, 16: loss + g + u = 8196. The peak is
 * at %8: 10240 + 14336 = 24576, of which temporaries 8192 + 2048 + 4096. */
static Module *hand_program(void)
{
	Module *m = ir_module_new("hand", LEVEL_TILED);
	m->mesh.naxes = 1;
	m->mesh.axes[0] = (MeshAxis){arena_strdup(&m->arena, "fsdp"), 2, 1};
	ValueId w = role_param(m, "w", "weight", f32(1024));
	ValueId s = role_param(m, "s", "opt_state", f32(1024));
	ValueId x = role_param(m, "x", "input", f32(512));
	ValueId gs = ir_collective(m, OP_ALL_GATHER, w, 1u, 0);
	m->insts[gs].op = OP_COLL_START;
	ir_set_str(m, gs, "op", "all_gather");
	ValueId a = ir_binary(m, OP_MUL, x, x);
	ValueId b = ir_unary(m, OP_EXP, a);
	m->insts[b].mem = MEM_VMEM;
	ValueId c = ir_binary(m, OP_ADD, b, a);
	Inst dn = {.op = OP_COLL_DONE, .type = m->insts[gs].type, .nargs = 1};
	dn.args = arena_alloc(&m->arena, sizeof(ValueId));
	dn.args[0] = gs;
	dn.unit = UNIT_ICI;
	ValueId gd = ir_append(m, &dn);
	ValueId y = ir_slice(m, gd, (int64_t[]){0}, (int64_t[]){1024});
	ValueId z = ir_binary(m, OP_MUL, y, w);
	ValueId r = ir_reshape(m, c, 2, (int64_t[]){2, 256});
	ValueId l1 = ir_reduce(m, OP_REDUCE_SUM, r, 2, (int64_t[]){0, 1});
	ValueId l2 = ir_reduce(m, OP_REDUCE_SUM, z, 1, (int64_t[]){0});
	ValueId loss = ir_binary(m, OP_ADD, l1, l2);
	ValueId g = ir_binary(m, OP_MUL, z, w);
	ValueId k = ir_const(m, 0.1, f32(1024));
	set_opt(m, k);
	ValueId u = ir_binary(m, OP_MUL, k, g);
	set_opt(m, u);
	ValueId nw = ir_binary(m, OP_SUB, w, u);
	set_opt(m, nw);
	ValueId ns = ir_binary(m, OP_ADD, s, g);
	set_opt(m, ns);
	ir_output(m, loss);
	ir_output(m, nw);
	ir_output(m, ns);
	tile_all(m);
	m->insts[r].mem = MEM_NONE; /* a view */
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(ns, 18);
	return m;
}

START_TEST(hand_program_exact_peak)
{
	Chip c = test_chip("tpu-v4");
	Module *m = hand_program();
	MemPlan p;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
	ck_assert_double_eq(p.peak_bytes, 24576);
	ck_assert_int_eq(p.peak_at, 8);
	ck_assert_double_eq(p.at_peak[MEMCAT_WEIGHTS], 4096);
	ck_assert_double_eq(p.at_peak[MEMCAT_OPT_STATE], 4096);
	ck_assert_double_eq(p.at_peak[MEMCAT_INPUTS], 2048);
	ck_assert_double_eq(p.at_peak[MEMCAT_TEMPS], 8192 + 2048 + 4096);
	ck_assert_double_eq(p.at_peak[MEMCAT_ACTIVATIONS], 0);
	ck_assert_double_eq(p.at_peak[MEMCAT_GRADIENTS], 0);
	ck_assert_double_eq(p.hbm_bytes, c.hbm_bytes);
	ck_assert_int_eq(p.fits, 1);
	/* largest first: the gathered weight, then the 4096-byte buffers */
	ck_assert_int_eq(p.nlargest, 6);
	ck_assert_int_eq(p.largest[0].v, 3);
	ck_assert_double_eq(p.largest[0].bytes, 8192);
	ck_assert_int_eq(p.largest[0].cat, MEMCAT_TEMPS);
	double sum = 0;
	for (int i = 0; i < p.nlargest; i++) {
		sum += p.largest[i].bytes;
		if (i)
			ck_assert(p.largest[i].bytes <= p.largest[i - 1].bytes);
	}
	ck_assert_double_eq(sum, p.peak_bytes);
	/* every buffer by category, live at the peak or not: the activation z,
	 * the gradient g, and as temporaries gs, a, c, y, l1, l2, loss and u */
	ck_assert_double_eq(p.total[MEMCAT_WEIGHTS], 4096);
	ck_assert_double_eq(p.total[MEMCAT_OPT_STATE], 4096);
	ck_assert_double_eq(p.total[MEMCAT_INPUTS], 2048);
	ck_assert_double_eq(p.total[MEMCAT_ACTIVATIONS], 4096);
	ck_assert_double_eq(p.total[MEMCAT_GRADIENTS], 4096);
	ck_assert_double_eq(p.total[MEMCAT_TEMPS], 8192 + 2048 + 2048 + 4096 + 3 * 4 + 4096);
	/* the forward pass (to the loss, %13) peaks at %8; the rest at %14
	 * (loss + z + g) and again at %16 (loss + g + u) */
	ck_assert_double_eq(p.phase_peak[0], 24576);
	ck_assert_double_eq(p.phase_peak[1], 10240 + 8196);
	/* live at the update's first op (%16; the constant %15 does not count):
	 * the parameters, the gradient g, u and the loss; z died at %14 */
	ck_assert_double_eq(p.to_update[MEMCAT_WEIGHTS], 4096);
	ck_assert_double_eq(p.to_update[MEMCAT_OPT_STATE], 4096);
	ck_assert_double_eq(p.to_update[MEMCAT_INPUTS], 2048);
	ck_assert_double_eq(p.to_update[MEMCAT_GRADIENTS], 4096);
	ck_assert_double_eq(p.to_update[MEMCAT_ACTIVATIONS], 0);
	ck_assert_double_eq(p.to_update[MEMCAT_TEMPS], 4096 + 4);
	ir_module_free(m);
}
END_TEST

/* Shrink the gathered weight away (a 2-chip gather of a 1-element shard is
 * not what peaks any more) and the peak moves into the backward, where the
 * activation z, the gradient g and the loss are live together:
 * params 10240 + z 4096 + g 4096 + loss 4 = 18436 at %14. */
START_TEST(hand_program_categories_in_backward)
{
	Chip c = test_chip("tpu-v4");
	Module *m = hand_program();
	m->insts[3].mem = MEM_VMEM; /* the gathered weight stays on chip */
	m->insts[8].mem = MEM_VMEM; /* and so does its slice */
	MemPlan p;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
	/* %6..%13: c 2048 + z 4096 + l1/l2/loss: at most 12288+... < 18436 */
	ck_assert_double_eq(p.peak_bytes, 18436);
	ck_assert_int_eq(p.peak_at, 14);
	ck_assert_double_eq(p.at_peak[MEMCAT_ACTIVATIONS], 4096);
	ck_assert_double_eq(p.at_peak[MEMCAT_GRADIENTS], 4096);
	ck_assert_double_eq(p.at_peak[MEMCAT_TEMPS], 4);
	ck_assert_double_eq(p.phase_peak[1], p.peak_bytes);
	ck_assert(p.phase_peak[0] < p.peak_bytes);
	ir_module_free(m);
}
END_TEST

/* Donation: w' = w - u is returned in w's buffer. Params w and g (input)
 * 2 x 4N plus u 4N: 12N. Counting w' as a buffer of its own would make it
 * 16N at %3. */
START_TEST(donated_weights_count_once)
{
	Chip c = test_chip("tpu-v4");
	const int64_t N = 1 << 20;
	Module *m = ir_module_new("donate", LEVEL_TILED);
	ValueId w = role_param(m, "w", "weight", f32(N));
	ValueId g = role_param(m, "g", "input", f32(N));
	ValueId loss = ir_reduce(m, OP_REDUCE_SUM, g, 1, (int64_t[]){0});
	ValueId u = ir_binary(m, OP_MUL, g, g);
	set_opt(m, u);
	ValueId nw = ir_binary(m, OP_SUB, w, u);
	set_opt(m, nw);
	ir_output(m, loss);
	ir_output(m, nw);
	tile_all(m);
	MemPlan p;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
	ck_assert_double_eq(p.peak_bytes, 12.0 * N + 4);
	ck_assert_double_eq(p.at_peak[MEMCAT_WEIGHTS], 4.0 * N);
	/* a returned value that is not an update (wrong shape) is not donated */
	ir_module_free(m);
	m = ir_module_new("nodonate", LEVEL_TILED);
	w = role_param(m, "w", "weight", f32(N));
	g = role_param(m, "g", "input", f32(2 * N));
	loss = ir_reduce(m, OP_REDUCE_SUM, g, 1, (int64_t[]){0});
	u = ir_binary(m, OP_MUL, g, g);
	ir_output(m, loss);
	ir_output(m, u);
	tile_all(m);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
	ck_assert_double_eq(p.peak_bytes, 4.0 * N + 8.0 * N + 8.0 * N + 4);
	ir_module_free(m);
}
END_TEST

static Module *tiled_step(const char *model, int layers, int64_t batch, int64_t seq,
                          RematPolicy remat, int fsdp, int tensor)
{
	TestProg tp = {.model = model, .layers = layers, .batch = batch, .seq = seq, .remat = remat,
	               .optimizer = OPTIMIZER_ADAM, .naxes = 2,
	               .axes = {{"fsdp", fsdp, 1}, {"tensor", tensor, 1}}};
	Module *local = test_local_program(&tp);
	test_plain_tiled(local);
	Diag d;
	diag_init(&d);
	ScheduleOptions so = {1, 1};
	Module *p = pass_schedule(local, &so, &d);
	ck_assert_msg(p != NULL, "%s", d.msg);
	ir_module_free(local);
	return p;
}

static double param_bytes(const Module *m, const char *role)
{
	double b = 0;
	for (int v = 0; v < m->ninsts; v++)
		if (m->insts[v].op == OP_PARAMETER &&
		    !strcmp(ir_attr_str(&m->insts[v], "role", "input"), role))
			b += (double)type_bytes(&m->insts[v].type);
	return b;
}

/* On a real step: parameters are counted once each (the updated weights
 * and states the step returns do not add a copy), the split adds up to the
 * peak, and full remat keeps fewer activations than none. */
START_TEST(tiny_decoder_remat_and_donation)
{
	Chip c = test_chip("tpu-v4");
	double act[2];
	RematPolicy pol[2] = {REMAT_NONE, REMAT_FULL};
	for (int i = 0; i < 2; i++) {
		Module *m = tiled_step("tiny-decoder", 0, 8, 64, pol[i], 4, 1);
		MemPlan p;
		Diag d;
		diag_init(&d);
		ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
		ck_assert_double_eq(p.at_peak[MEMCAT_WEIGHTS], param_bytes(m, "weight"));
		ck_assert_double_eq(p.at_peak[MEMCAT_OPT_STATE], param_bytes(m, "opt_state"));
		ck_assert_double_eq(p.at_peak[MEMCAT_INPUTS], param_bytes(m, "input"));
		double sum = 0;
		for (int k = 0; k < MEMCAT_COUNT; k++)
			sum += p.at_peak[k];
		ck_assert_double_eq_tol(sum, p.peak_bytes, 1e-6 * p.peak_bytes);
		ck_assert_int_eq(p.fits, 1);
		ck_assert_int_ge(p.peak_at, 0);
		ck_assert_int_lt(p.peak_at, m->ninsts);
		act[i] = p.at_peak[MEMCAT_ACTIVATIONS];
		ir_module_free(m);
	}
	ck_assert_msg(act[1] < act[0], "activations at the peak: remat full %g, none %g", act[1],
	              act[0]);
}
END_TEST

/* Temporaries that outlive their layer (far_temps) grow with the depth
 * only where a layer's values are read layers later. Decoders of 4 and 8
 * layers over fsdp=4: with remat full, each layer's gathered weights and
 * recomputed values are used within the layer, however the schedule
 * interleaves the next layer's gathers and the previous layer's gradient
 * reductions with it, so the far temporaries (the embedding table, used
 * at both ends) are the same at both depths; with remat minimal, the
 * residual stream recomputed at the start of the backward for every layer
 * is read layers later, so those born after the forward pass grow. */
static MemPlan far_plan(RematPolicy remat, int layers)
{
	Chip c = test_chip("tpu-v4");
	Module *m = tiled_step("tiny-decoder", layers, 8, 64, remat, 4, 1);
	MemPlan p;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
	ir_module_free(m);
	return p;
}

START_TEST(far_temporaries_by_layer_starts)
{
	MemPlan f4 = far_plan(REMAT_FULL, 4), f8 = far_plan(REMAT_FULL, 8);
	ck_assert_double_eq(f8.far_temps[0], f4.far_temps[0]);
	ck_assert_double_eq(f8.far_temps[1], f4.far_temps[1]);
	MemPlan m4 = far_plan(REMAT_MINIMAL, 4), m8 = far_plan(REMAT_MINIMAL, 8);
	ck_assert_msg(m8.far_temps[1] > m4.far_temps[1], "remat minimal: far temporaries %g at 8 "
	              "layers, %g at 4", m8.far_temps[1], m4.far_temps[1]);
}
END_TEST

/* PaLM 540B on 8 chips cannot fit: the plan says so and the message names
 * the overflow and the largest items by name. */
START_TEST(palm_540b_does_not_fit)
{
	Chip c = test_chip("tpu-v4");
	Module *m = tiled_step("palm-540b", 0, 8, 128, REMAT_FULL, 8, 1);
	MemPlan p;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), 0);
	ck_assert_int_eq(d.nerrors, 0);
	ck_assert_int_eq(p.fits, 0);
	/* the weights alone: 540B parameters over 8 chips */
	ck_assert(p.at_peak[MEMCAT_WEIGHTS] > c.hbm_bytes);
	ck_assert(p.peak_bytes > p.hbm_bytes);
	ck_assert_int_gt(p.nlargest, 0);
	memplan_error(m, &p, &d);
	ck_assert_int_eq(d.nerrors, 1);
	ck_assert_ptr_nonnull(strstr(d.msg, "does not fit in HBM"));
	ck_assert_ptr_nonnull(strstr(d.msg, "over by"));
	ck_assert_ptr_nonnull(strstr(d.msg, "largest:"));
	char gib[64];
	snprintf(gib, sizeof gib, "needs %.2f GiB", p.peak_bytes / (1024.0 * 1024 * 1024));
	ck_assert_msg(strstr(d.msg, gib) != NULL, "%s", d.msg);
	/* every parameter among the six largest the message lists, and every
	 * gathered copy of one, is named by its name attribute */
	int named = 0;
	for (int i = 0; i < p.nlargest && i < 6; i++) {
		const Inst *in = &m->insts[p.largest[i].v];
		while (in->nargs == 1 && (in->op == OP_COLL_DONE || in->op == OP_COLL_START ||
		                          (ir_ops[in->op].flags & OPF_COLLECTIVE)))
			in = &m->insts[in->args[0]];
		if (in->op != OP_PARAMETER)
			continue;
		const char *name = ir_attr_str(in, "name", NULL);
		ck_assert_ptr_nonnull(name);
		ck_assert_msg(strstr(d.msg, name) != NULL, "%s not in: %s", name, d.msg);
		named++;
	}
	ck_assert_msg(named > 0, "no weight among the largest: %s", d.msg);
	ir_module_free(m);
}
END_TEST

START_TEST(rejects_graph_level)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("g", LEVEL_GRAPH);
	ir_output(m, ir_param(m, "x", f32(4)));
	MemPlan p;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pass_memplan(m, &c, &p, &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "tiled"));
	ck_assert_str_eq(memcat_name(MEMCAT_GRADIENTS), "gradients");
	ir_module_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("memplan");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, hand_program_exact_peak);
	tcase_add_test(tc, hand_program_categories_in_backward);
	tcase_add_test(tc, donated_weights_count_once);
	tcase_add_test(tc, tiny_decoder_remat_and_donation);
	tcase_add_test(tc, far_temporaries_by_layer_starts);
	tcase_add_test(tc, palm_540b_does_not_fit);
	tcase_add_test(tc, rejects_graph_level);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
