/*
 * The training step on the frontends' tiny presets (the forward-model
 * contract end to end): train_step builds under every remat policy, the
 * reference interpreter runs it, the policies give bit-identical updates,
 * and the gradient agrees with a central finite difference along a random
 * direction through every weight at once; on the dense decoder presets the
 * graph's matmul FLOPs equal PaLM's closed form.
 *
 * Directional check: with v uniform in [-1, 1] over every weight element,
 * autodiff gives g.v and the interpreter (L(w + h v) - L(w - h v)) / 2h.
 * Moving every weight at once is a large step, so h is 1e-3 (at 1e-2 the
 * h^2 |L'''_v| / 6 truncation term reaches 10-20% on these models). In f32
 * with |L| ~ 5 the rounding error is about 6e-8 |L| / h ~ 3e-4. We accept
 * |g.v - fd| <= 2e-2 |g.v| + 1e-3, while a wrong rule changes g.v by
 * O(|g.v|). For the MoE presets the loss is only piecewise smooth (top-k
 * routing and capacity drops): the check is valid because no routing
 * decision flips within +-h for these inputs (fixed seeds); if a frontend
 * change makes one flip, the finite difference is what breaks, not autodiff.
 */
#include "gradcheck.h"

#include "frontends/model.h"

static const char *const presets[] = {
	"tiny-decoder", "tiny-palm", "tiny-llama", "tiny-t5",
	"tiny-moe", "tiny-switch", "tiny-vit", "tiny-mixer",
};

static Module *build(const char *name, ModelConfig *c)
{
	ck_assert_int_eq(model_preset(name, c), 0);
	BuildOptions bo;
	build_options_default(&bo);
	bo.dtype = DT_F32;
	bo.batch = 1;
	if (c->family == FAMILY_DECODER || c->family == FAMILY_ENCDEC)
		bo.seq = bo.dec_seq = 8; /* short sequences keep the interpreter quick */
	Diag d;
	diag_init(&d);
	Module *m = model_build(c, &bo, &d);
	ck_assert_msg(m != NULL, "%s: %s", name, d.msg);
	return m;
}

/* Runs step with the forward inputs and zero optimizer state; returns the
 * outputs (caller frees). */
static Tensor *run_step(const Module *step, const Tensor *in, int nin)
{
	int np = 0;
	for (int i = 0; i < step->ninsts; i++)
		np += step->insts[i].op == OP_PARAMETER;
	Tensor *all = calloc((size_t)np, sizeof *all);
	int p = 0;
	for (int i = 0; i < step->ninsts; i++) {
		const Inst *ins = &step->insts[i];
		if (ins->op != OP_PARAMETER)
			continue;
		if (p < nin) {
			all[p] = in[p];
		} else {
			all[p].type = ins->type;
			all[p].data = calloc((size_t)type_numel(&ins->type) + 1, sizeof(float));
		}
		p++;
	}
	Tensor *out = calloc((size_t)step->noutputs, sizeof *out);
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_interp(step, all, np, NULL, out, NULL, &d) == 0, "%s", d.msg);
	for (int k = nin; k < np; k++)
		free(all[k].data);
	free(all);
	return out;
}

START_TEST(presets_train)
{
	const char *name = presets[_i];
	ModelConfig c;
	Module *fwd = build(name, &c);
	int nin;
	Tensor *in = model_random_inputs(fwd, &c, 5, &nin);
	Tensor *ref = NULL;
	int nref = 0;
	FlopCount f[3];
	for (int pol = REMAT_NONE; pol <= REMAT_FULL; pol++) {
		TrainOptions o;
		train_options_default(&o);
		o.optimizer = OPTIMIZER_ADAM;
		o.remat = (RematPolicy)pol;
		Diag d;
		diag_init(&d);
		Module *step = train_step(fwd, &o, &d);
		ck_assert_msg(step != NULL, "%s: %s", name, d.msg);
		flops_count(step, &f[pol]);
		Tensor *out = run_step(step, in, nin);
		ck_assert_msg(isfinite(out[0].data[0]), "%s: loss %g", name, (double)out[0].data[0]);
		if (!ref) {
			ref = out;
			nref = step->noutputs;
		} else {
			for (int k = 0; k < nref; k++)
				ck_assert_msg(memcmp(out[k].data, ref[k].data,
				                     sizeof(float) * (size_t)type_numel(&ref[k].type)) == 0,
				              "%s: remat %s changes output %d", name,
				              remat_policy_name((RematPolicy)pol), k);
			gc_free_out(out, nref);
			free(out);
		}
		ir_module_free(step);
	}
	ck_assert(f[0].model == f[1].model && f[1].model == f[2].model);
	ck_assert_msg(f[0].hardware < f[1].hardware && f[1].hardware < f[2].hardware,
	              "%s: hardware FLOPs %g %g %g", name, f[0].hardware, f[1].hardware,
	              f[2].hardware);
	gc_free_out(ref, nref);
	free(ref);
	model_free_inputs(in, nin);
	ir_module_free(fwd);
}
END_TEST

static float loss_of(const Module *m, const Tensor *in, int nin)
{
	Tensor *out = calloc((size_t)m->noutputs, sizeof *out);
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_interp(m, in, nin, NULL, out, NULL, &d) == 0, "%s", d.msg);
	float l = out[0].data[0];
	gc_free_out(out, m->noutputs);
	free(out);
	return l;
}

START_TEST(presets_directional_gradient)
{
	const char *name = presets[_i];
	ModelConfig c;
	Module *m = build(name, &c);
	int nin;
	Tensor *in = model_random_inputs(m, &c, 7, &nin);
	Grads g;
	Diag d;
	diag_init(&d);
	ValueId loss = m->outputs[0];
	ck_assert_msg(autodiff(m, loss, REMAT_NONE, &g, &d) == 0, "%s", d.msg);
	m->noutputs = 0;
	ir_output(m, loss);
	for (int k = 0; k < g.n; k++)
		ir_output(m, g.grads[k]);
	Tensor *out = calloc((size_t)m->noutputs, sizeof *out);
	ck_assert_msg(ir_interp(m, in, nin, NULL, out, NULL, &d) == 0, "%s", d.msg);

	Case rng;
	memset(&rng, 0, sizeof rng);
	rng.rng = 12345;
	float **dir = calloc((size_t)g.n, sizeof *dir);
	double gv = 0;
	for (int k = 0; k < g.n; k++) {
		int64_t n = type_numel(&out[1 + k].type);
		dir[k] = malloc(sizeof(float) * (size_t)(n ? n : 1));
		for (int64_t j = 0; j < n; j++) {
			dir[k][j] = gc_uniform(&rng, -1, 1);
			gv += (double)dir[k][j] * out[1 + k].data[j];
		}
	}
	const float h = 1e-3f;
	float l[2];
	for (int s = 0; s < 2; s++) {
		for (int k = 0; k < g.n; k++) {
			Tensor *w = &in[gc_input_index(m, g.weights[k])];
			for (int64_t j = 0; j < type_numel(&w->type); j++)
				w->data[j] += (s ? -2 : 1) * h * dir[k][j];
		}
		l[s] = loss_of(m, in, nin);
	}
	double fd = ((double)l[0] - (double)l[1]) / (2.0 * h);
	ck_assert_msg(fabs(gv - fd) <= 2e-2 * fabs(gv) + 1e-3,
	              "%s: directional derivative: autodiff %.6g, finite difference %.6g", name, gv, fd);
	ck_assert_msg(fabs(gv) > 1e-2, "%s: gradient suspiciously small (%g)", name, gv);
	for (int k = 0; k < g.n; k++)
		free(dir[k]);
	free(dir);
	gc_free_out(out, m->noutputs);
	free(out);
	model_free_inputs(in, nin);
	ir_module_free(m);
}
END_TEST

START_TEST(dense_decoder_closed_form)
{
	/* The dense decoder presets: matmul FLOPs counted from the step's dots
	 * equal tokens x (6N + 12LHQT), N the weights that are dot operands. */
	static const char *const dense[] = {"tiny-decoder", "tiny-palm", "tiny-llama"};
	for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++) {
		ModelConfig c;
		Module *fwd = build(dense[i], &c);
		ck_assert_int_eq(c.experts, 0);
		ck_assert_int_eq(c.family, FAMILY_DECODER);
		ParamCount pc;
		model_count_params(fwd, &pc);
		TrainOptions o;
		train_options_default(&o);
		o.remat = REMAT_FULL;
		Diag d;
		diag_init(&d);
		Module *step = train_step(fwd, &o, &d);
		ck_assert_msg(step != NULL, "%s", d.msg);
		FlopCount f;
		flops_count(step, &f);
		double tokens = 8; /* batch 1, seq 8 (build()) */
		double want = tokens * flops_palm_per_token((double)pc.matmul, c.dec_layers, c.heads,
		                                            c.head_dim, 8);
		ck_assert_msg(f.model_matmul == want, "%s: graph %.17g, closed form %.17g", dense[i],
		              f.model_matmul, want);
		ck_assert(f.hardware_matmul > f.model_matmul);
		ir_module_free(step);
		ir_module_free(fwd);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("train_frontends");
	TCase *tc = tcase_create("presets");
	tcase_set_timeout(tc, 300);
	int n = (int)(sizeof presets / sizeof presets[0]);
	tcase_add_loop_test(tc, presets_train, 0, n);
	tcase_add_loop_test(tc, presets_directional_gradient, 0, n);
	tcase_add_test(tc, dense_decoder_closed_form);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
