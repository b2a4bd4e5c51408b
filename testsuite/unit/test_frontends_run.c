/*
 * Tiny models on the reference interpreter: random weights give a finite
 * loss near log(classes) (the logits are small, so the prediction is close
 * to uniform), and the decoder's causal mask really hides the future: the
 * per-position losses before a changed token stay bit-identical (decoder-
 * only models and the decoder of an encoder-decoder), while a changed
 * encoder token reaches every decoder position.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/build.h"
#include "frontends/model.h"
#include "ir/ir.h"

static Module *build_seq(const char *name, ModelConfig *c, int64_t batch, int64_t seq)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(model_preset(name, c) == 0, "no preset %s", name);
	BuildOptions o;
	build_options_default(&o);
	o.batch = batch;
	o.dtype = DT_F32;
	o.seq = seq;
	Module *m = model_build(c, &o, &d);
	ck_assert_msg(m, "%s: %s", name, d.msg);
	return m;
}

static Module *build(const char *name, ModelConfig *c) { return build_seq(name, c, 1, 0); }

static float run_loss(const Module *m, const Tensor *in, int nin, Tensor **values)
{
	Diag d;
	diag_init(&d);
	InterpOptions o = {0};
	Tensor out[4];
	ck_assert_int_le(m->noutputs, 4);
	ck_assert_msg(ir_interp(m, in, nin, &o, out, values, &d) == 0, "%s", d.msg);
	float loss = out[0].data[0];
	for (int i = 0; i < m->noutputs; i++)
		free(out[i].data);
	return loss;
}

static void free_values(const Module *m, Tensor *values)
{
	for (int i = 0; i < m->ninsts; i++)
		free(values[i].data);
	free(values);
}

START_TEST(test_tiny_losses)
{
	static const char *const names[] = {
		"tiny-decoder", "tiny-palm", "tiny-llama", "tiny-t5", "tiny-moe", "tiny-switch",
		"tiny-vit", "tiny-mixer",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		ModelConfig c;
		Module *m = build(names[i], &c);
		int n;
		Tensor *in = model_random_inputs(m, &c, 1234 + i, &n);
		float loss = run_loss(m, in, n, NULL);
		int64_t classes = c.family == FAMILY_ENCODER || c.family == FAMILY_MIXER ? c.classes
		                                                                       : c.vocab;
		double want = log((double)classes);
		ck_assert_msg(isfinite(loss), "%s: loss %g", names[i], loss);
		/* logits of standard deviation s cost about s^2 / 2 nats over
		 * uniform; these inits keep s well below 1 */
		ck_assert_msg(fabs(loss - want) < 0.5, "%s: loss %g, log(classes) %g", names[i], loss,
		              want);
		model_free_inputs(in, n);
		ir_module_free(m);
	}
}
END_TEST

/* The [B,S] per-position loss: the loss is mul(reduce_sum(per), 1/n). */
static ValueId per_position(const Module *m)
{
	const Inst *mul = &m->insts[m->outputs[0]];
	ck_assert_int_eq(mul->op, OP_MUL);
	const Inst *sum = &m->insts[mul->args[0]];
	ck_assert_int_eq(sum->op, OP_REDUCE_SUM);
	ck_assert_int_eq(m->insts[sum->args[0]].type.rank, 2);
	return sum->args[0];
}

static int param_index(const Module *m, const char *name)
{
	int k = 0;
	for (int v = 0; v < m->ninsts; v++) {
		if (m->insts[v].op != OP_PARAMETER)
			continue;
		if (!strcmp(ir_attr_str(&m->insts[v], "name", ""), name))
			return k;
		k++;
	}
	ck_abort_msg("no parameter %s", name);
	return -1;
}

START_TEST(test_causal)
{
	static const char *const names[] = {"tiny-decoder", "tiny-palm", "tiny-llama", "tiny-t5"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		ModelConfig c;
		Module *m = build_seq(names[i], &c, 2, 16);
		int n;
		Tensor *in = model_random_inputs(m, &c, 99, &n);
		ValueId per = per_position(m);
		int64_t S = m->insts[per].type.dims[1];
		Tensor *v1, *v2;
		run_loss(m, in, n, &v1);
		int64_t t = S / 2;
		Tensor *tok = &in[param_index(m, c.family == FAMILY_ENCDEC ? "dec_tokens" : "tokens")];
		tok->data[t] = (float)(((int)tok->data[t] + 1) % c.vocab); /* batch 0, position t */
		run_loss(m, in, n, &v2);
		const float *a = v1[per].data, *b = v2[per].data;
		for (int64_t s = 0; s < t; s++)
			ck_assert_msg(a[s] == b[s], "%s: position %lld saw the future", names[i],
			              (long long)s);
		ck_assert_msg(a[t] != b[t], "%s: position %lld ignored its own token", names[i],
		              (long long)t);
		for (int64_t s = 0; s < S; s++) /* batch 1 untouched */
			ck_assert(a[S + s] == b[S + s]);
		free_values(m, v1);
		free_values(m, v2);
		model_free_inputs(in, n);
		ir_module_free(m);
	}
}
END_TEST

/* The T5 bucket function at hand-computed points (num_buckets 32, max
 * distance 128, as T5): bidirectional buckets 0-15 look back, 16-31 ahead;
 * distances below 8 are exact, 8..127 logarithmic, beyond clamp to 15. */
START_TEST(test_rel_buckets)
{
	ModelConfig c;
	ck_assert_int_eq(model_preset("t5-small", &c), 0);
	float b[1 * 200];
	model_rel_buckets(&c, 1, 1, 200, b); /* query 0, keys 0..199: rel = j */
	ck_assert_float_eq(b[0], 0);
	ck_assert_float_eq(b[1], 17);   /* 16 + 1 */
	ck_assert_float_eq(b[7], 23);   /* 16 + 7 */
	/* 8: 8 + floor(log(8/8)/log(128/8) * 8) = 8 -> 24 */
	ck_assert_float_eq(b[8], 24);
	/* 16: 8 + floor(log 2 / log 16 * 8) = 8 + 2 = 10 -> 26 */
	ck_assert_float_eq(b[16], 26);
	ck_assert_float_eq(b[199], 31); /* clamped */
	float u[40 * 1];
	model_rel_buckets(&c, 0, 40, 1, u); /* causal: key 0, queries 0..39: rel = -i */
	ck_assert_float_eq(u[0], 0);
	ck_assert_float_eq(u[15], 15);  /* exact below 16 */
	/* 32: 16 + floor(log 2 / log 8 * 16) = 16 + 5 = 21 */
	ck_assert_float_eq(u[32], 21);
	float f[2];
	model_rel_buckets(&c, 0, 1, 2, f); /* a future key in a causal stack: 0 */
	ck_assert_float_eq(f[1], 0);
}
END_TEST

/* Rotary tables: position p, pair i rotates by p * base^(-2i/rd). */
START_TEST(test_rope_tables)
{
	ModelConfig c;
	ck_assert_int_eq(model_preset("tiny-palm", &c), 0);
	int64_t rd = c.rotary_dims, S = 3;
	float *cs = malloc(sizeof(float) * (size_t)(S * rd)), *sn = malloc(sizeof(float) * (size_t)(S * rd));
	model_rope_tables(&c, S, cs, sn);
	ck_assert_float_eq(cs[0], 1);
	ck_assert_float_eq(sn[0], 0);
	ck_assert(fabs(cs[rd] - cos(1.0)) < 1e-6);            /* p = 1, i = 0 */
	ck_assert(fabs(sn[rd + rd / 2] - sin(1.0)) < 1e-6);   /* second half repeats */
	ck_assert(fabs(sn[2 * rd + 1] - sin(2.0 * pow(10000.0, -2.0 / (double)rd))) < 1e-6);
	free(cs);
	free(sn);
}
END_TEST


/* In an encoder-decoder every decoder position sees the whole encoder. */
START_TEST(test_encoder_visible)
{
	ModelConfig c;
	Module *m = build_seq("tiny-t5", &c, 1, 16);
	int n;
	Tensor *in = model_random_inputs(m, &c, 5, &n);
	ValueId per = per_position(m);
	int64_t SD = m->insts[per].type.dims[1];
	Tensor *v1, *v2;
	run_loss(m, in, n, &v1);
	Tensor *tok = &in[param_index(m, "tokens")];
	tok->data[15] = (float)(((int)tok->data[15] + 1) % c.vocab); /* the last encoder token */
	run_loss(m, in, n, &v2);
	for (int64_t s = 0; s < SD; s++)
		ck_assert_msg(v1[per].data[s] != v2[per].data[s], "decoder position %lld", (long long)s);
	free_values(m, v1);
	free_values(m, v2);
	model_free_inputs(in, n);
	ir_module_free(m);
}
END_TEST

/* bf16 weights and activations (the default build) run too; the loss stays
 * finite and close to its f32 value. */
START_TEST(test_bf16)
{
	ModelConfig c;
	ck_assert_int_eq(model_preset("tiny-palm", &c), 0);
	BuildOptions o;
	build_options_default(&o);
	Diag d;
	diag_init(&d);
	Module *mb = model_build(&c, &o, &d);
	o.dtype = DT_F32;
	Module *mf = model_build(&c, &o, &d);
	ck_assert(mb && mf);
	int n;
	Tensor *in = model_random_inputs(mb, &c, 3, &n);
	Tensor out;
	InterpOptions io = {1};
	ck_assert_msg(ir_interp(mb, in, n, &io, &out, NULL, &d) == 0, "%s", d.msg);
	float lb = out.data[0];
	free(out.data);
	float lf = run_loss(mf, in, n, NULL);
	ck_assert_msg(isfinite(lb) && fabs(lb - lf) < 0.05, "bf16 %g, f32 %g", lb, lf);
	model_free_inputs(in, n);
	ir_module_free(mb);
	ir_module_free(mf);
}
END_TEST

/*
 * The MoE block against a direct loop implementation of Switch/GShard
 * routing: per group (sequence), softmax router, top-k experts per token
 * (gates renormalised over the k when k > 1), tokens take expert slots in
 * sequence order and a token whose slot is >= capacity is dropped for that
 * expert; output = sum over kept choices of gate * expert MLP (ReLU).
 */
static void moe_reference(const ModelConfig *c, int64_t G, int64_t S, int64_t C, const float *x,
                          const float *wr, const float *wi, const float *wo, double *y)
{
	int64_t D = c->d_model, E = c->experts, F = c->d_ff;
	for (int64_t g = 0; g < G; g++) {
		int64_t fill[16] = {0};
		for (int64_t s = 0; s < S; s++) {
			const float *xt = x + (g * S + s) * D;
			double p[16], mx = -1e300, z = 0;
			for (int64_t e = 0; e < E; e++) {
				p[e] = 0;
				for (int64_t d = 0; d < D; d++)
					p[e] += (double)xt[d] * wr[d * E + e];
				mx = p[e] > mx ? p[e] : mx;
			}
			for (int64_t e = 0; e < E; e++)
				z += (p[e] = exp(p[e] - mx));
			int chosen[16] = {0};
			double gsum = 0;
			for (int k = 0; k < c->top_k; k++) {
				int best = -1;
				for (int64_t e = 0; e < E; e++)
					if (!chosen[e] && (best < 0 || p[e] > p[best]))
						best = (int)e;
				chosen[best] = 1;
				gsum += p[best] / z;
			}
			double *yt = y + (g * S + s) * D;
			for (int64_t d = 0; d < D; d++)
				yt[d] = 0;
			for (int64_t e = 0; e < E; e++) {
				if (!chosen[e])
					continue;
				if (fill[e]++ >= C)
					continue; /* over capacity: dropped */
				double gate = p[e] / z / (c->top_k > 1 ? gsum : 1.0);
				for (int64_t f = 0; f < F; f++) {
					double h = 0;
					for (int64_t d = 0; d < D; d++)
						h += (double)xt[d] * wi[(e * D + d) * F + f];
					if (h <= 0)
						continue;
					for (int64_t d = 0; d < D; d++)
						yt[d] += gate * h * wo[(e * F + f) * D + d];
				}
			}
		}
	}
}

static void check_moe(int top_k, double cf, int64_t want_capacity)
{
	ModelConfig c;
	model_config_defaults(&c);
	c.d_model = 8;
	c.d_ff = 6;
	c.experts = 4;
	c.top_k = top_k;
	c.capacity_factor = cf;
	c.aux_loss_coef = 0;
	c.act = ACT_RELU;
	c.bias = 0;
	int64_t G = 2, S = 8, D = c.d_model;
	Builder b = {.m = ir_module_new("moe", LEVEL_GRAPH), .c = &c, .dt = DT_F32, .aux = -1};
	ValueId x = ir_param(b.m, "x", ty(DT_F32, 3, (int64_t[]){G, S, D}));
	ir_output(b.m, mlp(&b, x, 1));
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(b.m, &d) == 0, "%s", d.msg);
	/* the expert buffer is [E, G*C, D] */
	int found = 0;
	for (int v = 0; v < b.m->ninsts; v++) {
		const Type *t = &b.m->insts[v].type;
		if (b.m->insts[v].op == OP_RESHAPE && t->rank == 3 && t->dims[0] == 4 &&
		    t->dims[2] == D) {
			ck_assert_int_eq(t->dims[1], G * want_capacity);
			found = 1;
		}
	}
	ck_assert(found);
	int n;
	Tensor *in = model_random_inputs(b.m, &c, 7 + (uint64_t)top_k, &n);
	ck_assert_int_eq(n, 4); /* x, router, wi, wo */
	for (int64_t i = 0; i < type_numel(&in[0].type); i++) /* x: uniform in [-1, 1] */
		in[0].data[i] = (float)sin(1.7 * (double)i + 0.3);
	Tensor out;
	InterpOptions o = {0};
	ck_assert_msg(ir_interp(b.m, in, n, &o, &out, NULL, &d) == 0, "%s", d.msg);
	double *want = malloc(sizeof(double) * (size_t)(G * S * D));
	moe_reference(&c, G, S, want_capacity, in[0].data, in[1].data, in[2].data, in[3].data, want);
	int zero_rows = 0;
	for (int64_t t = 0; t < G * S; t++) {
		double norm = 0;
		for (int64_t k = 0; k < D; k++) {
			double w = want[t * D + k], got = out.data[t * D + k];
			ck_assert_msg(fabs(got - w) <= 1e-4 * (1 + fabs(w)), "token %lld dim %lld: %g, want %g",
			              (long long)t, (long long)k, got, w);
			norm += fabs(w);
		}
		zero_rows += norm == 0;
	}
	/* with a small capacity some tokens are dropped by every expert */
	if (want_capacity < S / 2)
		ck_assert_int_gt(zero_rows, 0);
	free(want);
	free(out.data);
	model_free_inputs(in, n);
	ir_module_free(b.m);
}

START_TEST(test_moe_dispatch)
{
	check_moe(1, 4.0, 8);   /* capacity ceil(4 * 8 / 4) = 8 = S: nothing dropped */
	check_moe(2, 2.0, 8);   /* ceil(2 * 16 / 4) = 8 */
	check_moe(1, 0.5, 1);   /* ceil(0.5 * 8 / 4) = 1: most tokens dropped */
	check_moe(2, 0.75, 3);  /* ceil(0.75 * 16 / 4) = 3 */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("frontends_run");
	TCase *tc = tcase_create("run");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_tiny_losses);
	tcase_add_test(tc, test_causal);
	tcase_add_test(tc, test_encoder_visible);
	tcase_add_test(tc, test_bf16);
	tcase_add_test(tc, test_moe_dispatch);
	tcase_add_test(tc, test_rel_buckets);
	tcase_add_test(tc, test_rope_tables);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
