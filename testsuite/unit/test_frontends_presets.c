/*
 * Every model preset builds, verifies and follows the frontend contract
 * (roles, loss output, layer attributes), and its parameter count - summed
 * over the built graph's weights - matches the published count or a closed
 * form derived here by hand from the architecture (not from the builder).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frontends/model.h"
#include "ir/ir.h"

static Module *build(const char *name, ModelConfig *c, DType dt)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(model_preset(name, c) == 0, "no preset %s", name);
	BuildOptions o;
	build_options_default(&o);
	o.dtype = dt;
	Module *m = model_build(c, &o, &d);
	ck_assert_msg(m, "%s: %s", name, d.msg);
	return m;
}

static int64_t count(const char *name)
{
	ModelConfig c;
	Module *m = build(name, &c, DT_BF16);
	ParamCount pc;
	model_count_params(m, &pc);
	ir_module_free(m);
	return pc.total;
}

static int64_t count_without_head(const char *name)
{
	ModelConfig c;
	Module *m = build(name, &c, DT_BF16);
	ParamCount pc;
	model_count_params(m, &pc);
	ir_module_free(m);
	return pc.total - pc.head;
}

static void near(const char *what, double got, double want, double rel)
{
	ck_assert_msg(fabs(got - want) <= rel * want, "%s: %.6g, published %.6g (%.2f%% off, limit %.2f%%)",
	              what, got, want, 100 * fabs(got - want) / want, 100 * rel);
}

/* Every preset: verifies, output 0 is the f32 scalar loss, every parameter
 * has a role and name, layer attributes are in range and every layer has
 * instructions and weights. */
START_TEST(test_every_preset_builds)
{
	int n = model_preset_count();
	ck_assert_int_ge(n, 34);
	for (int i = 0; i < n; i++) {
		const char *name = model_preset_name(i);
		for (int f32 = 0; f32 < 2; f32++) {
			ModelConfig c;
			Module *m = build(name, &c, f32 ? DT_F32 : DT_BF16);
			Diag d;
			diag_init(&d);
			ck_assert_msg(ir_verify(m, &d) == 0, "%s: %s", name, d.msg);
			ck_assert_int_ge(m->noutputs, 1);
			const Type *lt = &m->insts[m->outputs[0]].type;
			ck_assert_msg(lt->rank == 0 && lt->dtype == DT_F32, "%s: loss is not an f32 scalar",
			              name);
			int nl = c.enc_layers + c.dec_layers;
			int seen_inst[512] = {0}, seen_weight[512] = {0};
			ck_assert_int_le(nl, 512);
			int weights = 0, inputs = 0;
			for (int v = 0; v < m->ninsts; v++) {
				const Inst *in = &m->insts[v];
				int64_t layer = ir_attr_int(in, "layer", -1);
				ck_assert_msg(layer >= -1 && layer < nl, "%s: layer %lld", name, (long long)layer);
				if (layer >= 0)
					seen_inst[layer] = 1;
				if (in->op != OP_PARAMETER)
					continue;
				const char *role = ir_attr_str(in, "role", NULL);
				ck_assert_msg(role && ir_attr_str(in, "name", NULL), "%s: parameter %d", name, v);
				if (!strcmp(role, "weight")) {
					weights++;
					ck_assert_msg(in->type.dtype == (f32 ? DT_F32 : DT_BF16), "%s weight dtype",
					              name);
					if (layer >= 0)
						seen_weight[layer] = 1;
				} else {
					ck_assert_str_eq(role, "input");
					inputs++;
				}
			}
			ck_assert_int_gt(weights, 0);
			/* the shard pass finds a logical-axis rule for every weight name */
			ck_assert_msg(model_annotate_logical(m) == 0, "%s: weights without logical axes",
			              name);
			ck_assert_int_ge(inputs, 2); /* data and labels */
			for (int l = 0; l < nl; l++)
				ck_assert_msg(seen_inst[l] && seen_weight[l], "%s: layer %d is empty", name, l);
			ir_module_free(m);
		}
	}
}
END_TEST

/* PaLM (Chowdhery et al. 2022, table 1 and section 2). */
START_TEST(test_palm_counts)
{
	near("palm-8b", (double)count("palm-8b"), 8.63e9, 0.005);
	near("palm-62b", (double)count("palm-62b"), 62.50e9, 0.005);
	near("palm-540b", (double)count("palm-540b"), 540.35e9, 0.005);
}
END_TEST

/* The PaLM structure written out: per layer one layer-norm scale, q and o of
 * heads x head_dim, k and v of one head, three d_model x d_ff matrices; a
 * shared embedding and a final norm. */
START_TEST(test_palm_closed_form)
{
	static const struct { const char *name; int64_t L, D, H, F; } p[] = {
		{"palm-8b", 32, 4096, 16, 16384},
		{"palm-62b", 64, 8192, 32, 32768},
		{"palm-540b", 118, 18432, 48, 73728},
	};
	for (int i = 0; i < 3; i++) {
		int64_t D = p[i].D, hd = 256;
		int64_t layer = D + 2 * D * p[i].H * hd + 2 * D * hd + 3 * D * p[i].F;
		int64_t want = p[i].L * layer + 256000 * D + D;
		ck_assert_int_eq(count(p[i].name), want);
	}
}
END_TEST

/* ViT (Dosovitskiy et al. 2021, table 1) and MLP-Mixer (Tolstikhin et al.
 * 2021, table 1) report backbone sizes: the classification head, whose size
 * depends on the dataset, is not in them. ViT-L/16's "307M" is not reached
 * by any head-free or 1000-class reading of its published dimensions
 * (303.3M without, 304.3M with the head; the closed form test below pins the
 * structure), so it gets a 1.5% bound; the other five 0.5%. */
START_TEST(test_vision_counts)
{
	near("vit-b16", (double)count_without_head("vit-b16"), 86e6, 0.005);
	near("vit-l16", (double)count_without_head("vit-l16"), 307e6, 0.015);
	near("vit-h14", (double)count_without_head("vit-h14"), 632e6, 0.005);
	near("mixer-b16", (double)count_without_head("mixer-b16"), 59e6, 0.005);
	near("mixer-l16", (double)count_without_head("mixer-l16"), 207e6, 0.005);
	near("mixer-h14", (double)count_without_head("mixer-h14"), 431e6, 0.005);
}
END_TEST

START_TEST(test_vit_closed_form)
{
	/* ViT-L/16: patch embedding (16*16*3 -> D, bias), class token, 197
	 * positions; per layer 2 layer norms (scale, offset), q/k/v/o with bias,
	 * MLP D->4D->D with bias; final norm; 1000-class head with bias. */
	int64_t D = 1024, F = 4096, L = 24, N = 196;
	int64_t layer = 4 * D + 4 * (D * D + D) + (D * F + F) + (F * D + D);
	int64_t want = (16 * 16 * 3 * D + D) + D + (N + 1) * D + L * layer + 2 * D + (D * 1000 + 1000);
	ck_assert_int_eq(count("vit-l16"), want);
}
END_TEST

/* Other published totals: GPT-3 (Brown et al. 2020) 175B; Switch
 * Transformers (Fedus et al. 2022, table 9) Switch-XXL 395B, Switch-C 1571B. */
START_TEST(test_other_counts)
{
	near("gpt3-175b", (double)count("gpt3-175b"), 175e9, 0.005);
	near("switch-xxl-128", (double)count("switch-xxl-128"), 395e9, 0.005);
	near("switch-c-2048", (double)count("switch-c-2048"), 1571e9, 0.005);
}
END_TEST

/* Structure checks a count alone would not catch. */
START_TEST(test_structure)
{
	ModelConfig c;
	/* PaLM: multi-query (k is d_model x 1 x 256), no biases, tied logits */
	Module *m = build("palm-540b", &c, DT_BF16);
	int found_k = 0, bias = 0, lm_head = 0;
	for (int v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		if (in->op != OP_PARAMETER)
			continue;
		const char *nm = ir_attr_str(in, "name", "");
		if (!strcmp(nm, "layer0/attn/k/w")) {
			found_k = 1;
			ck_assert_int_eq(in->type.rank, 3);
			ck_assert_int_eq(in->type.dims[1], 1);
			ck_assert_int_eq(in->type.dims[2], 256);
		}
		size_t n = strlen(nm);
		bias += n > 2 && !strcmp(nm + n - 2, "/b");
		lm_head += strstr(nm, "lm_head") != NULL;
	}
	ck_assert(found_k);
	ck_assert_int_eq(bias, 0);
	ck_assert_int_eq(lm_head, 0);
	/* one set of instructions per layer: the graph grows linearly */
	ck_assert_int_lt(m->ninsts, 118 * 100 + 200);
	ir_module_free(m);

	/* Switch-base-8: MoE every other layer; experts hold 8 copies of the MLP */
	m = build("switch-base-8", &c, DT_BF16);
	ParamCount pc;
	model_count_params(m, &pc);
	/* 12 MoE layers (6 encoder, 6 decoder), each 8 x (wi + wo) of 768 x 3072 */
	ck_assert_int_eq(pc.expert, 12LL * 8 * 2 * 768 * 3072);
	ck_assert_int_eq(model_active_params(&c, &pc), pc.total - pc.expert + pc.expert / 8);
	ir_module_free(m);
}
END_TEST

/* A dense decoder's PaLM FLOPs: 6N + 12 L H Q T. */
START_TEST(test_flops_per_token)
{
	ModelConfig c;
	Module *m = build("palm-540b", &c, DT_BF16);
	ParamCount pc;
	model_count_params(m, &pc);
	/* every PaLM weight is a matmul operand except the 118 + 1 norm scales */
	ck_assert_int_eq(pc.matmul, pc.total - 119LL * 18432);
	double want = 6.0 * (double)pc.matmul + 12.0 * 118 * 48 * 256 * 2048;
	ck_assert(fabs(model_flops_per_token(&c, &pc, 2048) - want) <= 1e-9 * want);
	ir_module_free(m);

	/* GPT-2 style (tiny-decoder): the gathered position table, biases and
	 * norms take part in no matmul; the tied token table does (logits). */
	m = build("tiny-decoder", &c, DT_F32);
	model_count_params(m, &pc);
	int64_t D = 256, F = 1024, L = 2;
	int64_t matmul = 1024 * D + L * (4 * D * D + 2 * D * F);
	ck_assert_int_eq(pc.matmul, matmul);
	ir_module_free(m);

	/* MoE: a token meets top_k of the experts */
	m = build("tiny-moe", &c, DT_F32);
	model_count_params(m, &pc);
	ck_assert_int_eq(model_active_matmul_params(&c, &pc), pc.matmul - pc.expert / 2);
	ir_module_free(m);
}
END_TEST

START_TEST(test_bad_build_options)
{
	ModelConfig c;
	ck_assert_int_eq(model_preset("gpt3-175b", &c), 0);
	BuildOptions o;
	build_options_default(&o);
	o.seq = 4096; /* more than the 2048 learned positions */
	Diag d;
	diag_init(&d);
	ck_assert_ptr_null(model_build(&c, &o, &d));
	ck_assert_msg(strstr(d.msg, "max_positions"), "%s", d.msg);
	ck_assert_int_eq(model_preset("no-such-model", &c), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("frontends_presets");
	TCase *tc = tcase_create("presets");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_every_preset_builds);
	tcase_add_test(tc, test_palm_counts);
	tcase_add_test(tc, test_palm_closed_form);
	tcase_add_test(tc, test_vision_counts);
	tcase_add_test(tc, test_vit_closed_form);
	tcase_add_test(tc, test_other_counts);
	tcase_add_test(tc, test_structure);
	tcase_add_test(tc, test_flops_per_token);
	tcase_add_test(tc, test_bad_build_options);
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
