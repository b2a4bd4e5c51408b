/*
 * Model files: our JSON format round-trips every field and rejects unknown
 * keys and values at their line and column; each supported Hugging Face
 * model_type (the tiny config.json files in frontends/examples/hf/) loads to
 * the config its keys say, and unknown keys, values and model types are
 * rejected by name and position. Expected values are read off the example
 * files by hand.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontends/model.h"
#include "ir/ir.h"

static char path_buf[4096];

static const char *example(const char *rel)
{
	const char *src = getenv("PODSIM_SRC");
	ck_assert_msg(src, "PODSIM_SRC is not set");
	snprintf(path_buf, sizeof path_buf, "%s/frontends/examples/%s", src, rel);
	return path_buf;
}

static void load_ok(const char *path, ModelConfig *c)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(model_load(path, c, &d) == 0, "%s", d.msg);
	/* and it builds and verifies */
	BuildOptions o;
	build_options_default(&o);
	Module *m = model_build(c, &o, &d);
	ck_assert_msg(m, "%s: %s", path, d.msg);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s: %s", path, d.msg);
	ir_module_free(m);
}

/* Parses text as (our or HF) JSON and expects an error containing want. */
static void parse_err(int hf, const char *text, const char *want)
{
	ModelConfig c;
	Diag d;
	diag_init(&d);
	int r = hf ? model_parse_hf(text, "m.json", &c, &d) : model_parse_json(text, "m.json", &c, &d);
	ck_assert_msg(r != 0, "accepted: %s", text);
	ck_assert_msg(strstr(d.msg, want), "error '%s' lacks '%s'", d.msg, want);
}

START_TEST(test_roundtrip_presets)
{
	for (int i = 0; i < model_preset_count(); i++) {
		ModelConfig a, b;
		ck_assert_int_eq(model_preset(model_preset_name(i), &a), 0);
		char *text = model_config_to_json(&a);
		Diag d;
		diag_init(&d);
		ck_assert_msg(model_parse_json(text, "rt.json", &b, &d) == 0, "%s: %s",
		              model_preset_name(i), d.msg);
		ck_assert_msg(model_config_equal(&a, &b), "%s does not round-trip:\n%s",
		              model_preset_name(i), text);
		free(text);
	}
}
END_TEST

/* Every field changed away from its default survives the round trip. */
START_TEST(test_roundtrip_fields)
{
	ModelConfig a, b;
	model_config_defaults(&a);
	snprintf(a.name, sizeof a.name, "odd");
	a.family = FAMILY_DECODER;
	a.dec_layers = 3;
	a.d_model = 96;
	a.heads = 6;
	a.kv_heads = 3;
	a.head_dim = 20;
	a.d_ff = 200;
	a.vocab = 777;
	a.max_pos = 99;
	a.seq_len = 50;
	a.dec_seq_len = 7;
	a.act = ACT_GEGLU;
	a.block = BLOCK_PARALLEL2;
	a.pos = POS_ROTARY;
	a.rotary_dims = 10;
	a.rotary_base = 12345.5;
	a.rel_buckets = 9;
	a.rel_max_distance = 33;
	a.tied_embed = 0;
	a.bias = 0;
	a.norm = NORM_RMS;
	a.norm_bias = 0;
	a.norm_eps = 3.25e-7;
	a.experts = 5;
	a.moe_every = 3;
	a.top_k = 2;
	a.capacity_factor = 1.75;
	a.expert_capacity = 11;
	a.aux_loss_coef = 0.125;
	a.image_size = 40;
	a.patch = 8;
	a.channels = 4;
	a.classes = 17;
	a.token_mlp = 13;
	char *text = model_config_to_json(&a);
	Diag d;
	diag_init(&d);
	ck_assert_msg(model_parse_json(text, "rt.json", &b, &d) == 0, "%s\n%s", d.msg, text);
	ck_assert_msg(model_config_equal(&a, &b), "round trip lost a field:\n%s", text);
	free(text);
}
END_TEST

START_TEST(test_our_examples)
{
	ModelConfig c;
	load_ok(example("tiny-gqa.json"), &c);
	ck_assert_str_eq(c.name, "tiny-gqa");
	ck_assert_int_eq(c.family, FAMILY_DECODER);
	ck_assert_int_eq(c.dec_layers, 2);
	ck_assert_int_eq(c.heads, 8);
	ck_assert_int_eq(c.kv_heads, 2);
	ck_assert_int_eq(c.head_dim, 8);      /* 64 / 8 by default */
	ck_assert_int_eq(c.rotary_dims, 8);   /* head_dim by default */
	ck_assert(c.rotary_base == 500000);
	ck_assert_int_eq(c.act, ACT_SWIGLU);
	ck_assert_int_eq(c.norm, NORM_RMS);
	ck_assert_int_eq(c.tied_embed, 0);
	ck_assert_int_eq(c.bias, 0);
	ck_assert_int_eq(c.experts, 4);
	ck_assert_int_eq(c.moe_every, 2);
	ck_assert_int_eq(c.top_k, 2);
	ck_assert(c.capacity_factor == 2.0);

	load_ok(example("tiny-mixer.json"), &c);
	ck_assert_int_eq(c.family, FAMILY_MIXER);
	ck_assert_int_eq(c.enc_layers, 2);
	ck_assert_int_eq(c.classes, 5);
	ck_assert_int_eq(c.token_mlp, 16);
	ck_assert_int_eq(model_tokens_per_image(&c), 16);
}
END_TEST

START_TEST(test_our_errors)
{
	/* unknown key: line 3, column 3 (the key's opening quote) */
	parse_err(0, "{\n  \"family\": \"decoder\",\n  \"d_modle\": 64\n}",
	          "m.json:3:3: error: unknown key 'd_modle'");
	/* unknown key inside "moe" */
	parse_err(0, "{\"layers\": 1, \"d_model\": 8, \"heads\": 2, \"d_ff\": 8, \"vocab\": 4,\n"
	             " \"seq_len\": 4, \"max_positions\": 4,\n \"moe\": {\"experts\": 2,\n"
	             "   \"topk\": 1}}",
	          "m.json:4:4: error: unknown key 'topk' in 'moe'");
	/* unknown value */
	parse_err(0, "{\"activation\": \"tanh\"}", "m.json:1:2: error: unknown value 'tanh' for "
	                                           "'activation'");
	parse_err(0, "{\"family\": \"rnn\"}", "unknown value 'rnn' for 'family'");
	/* wrong type */
	parse_err(0, "{\n\"d_model\": \"big\"}", "m.json:2:1: error: 'd_model' must be an integer");
	parse_err(0, "{\"bias\": 1}", "'bias' must be true or false");
	/* syntax error: jansson's line and column */
	parse_err(0, "{\n  \"d_model\": 64,\n}", "m.json:3:");
	/* duplicate key */
	parse_err(0, "{\"d_model\": 64, \"d_model\": 32}", "duplicate");
	/* consistency */
	parse_err(0, "{\"layers\": 2, \"d_model\": 64, \"heads\": 4, \"kv_heads\": 3, \"d_ff\": 8, "
	             "\"vocab\": 8, \"seq_len\": 8, \"max_positions\": 8}",
	          "kv_heads (3) must divide heads (4)");
	parse_err(0, "[1, 2]", "must hold a JSON object");
}
END_TEST

START_TEST(test_hf_llama_family)
{
	ModelConfig c;
	load_ok(example("hf/llama.json"), &c);
	ck_assert_str_eq(c.name, "llama");
	ck_assert_int_eq(c.family, FAMILY_DECODER);
	ck_assert_int_eq(c.dec_layers, 2);
	ck_assert_int_eq(c.d_model, 64);
	ck_assert_int_eq(c.heads, 4);
	ck_assert_int_eq(c.kv_heads, 2);
	ck_assert_int_eq(c.head_dim, 16);
	ck_assert_int_eq(c.d_ff, 172);
	ck_assert_int_eq(c.vocab, 512);
	ck_assert_int_eq(c.act, ACT_SWIGLU);
	ck_assert_int_eq(c.pos, POS_ROTARY);
	ck_assert_int_eq(c.rotary_dims, 16);
	ck_assert(c.rotary_base == 500000.0);
	ck_assert_int_eq(c.norm, NORM_RMS);
	ck_assert(c.norm_eps == 1e-5);
	ck_assert_int_eq(c.tied_embed, 0);
	ck_assert_int_eq(c.bias, 0);
	ck_assert_int_eq(c.block, BLOCK_SERIAL);
	ck_assert_int_eq(c.experts, 0);

	load_ok(example("hf/mistral.json"), &c);
	ck_assert_int_eq(c.heads, 8);
	ck_assert_int_eq(c.kv_heads, 2);
	ck_assert_int_eq(c.head_dim, 8);
	ck_assert_int_eq(c.d_ff, 224);

	load_ok(example("hf/mixtral.json"), &c);
	ck_assert_int_eq(c.experts, 4);
	ck_assert_int_eq(c.top_k, 2);
	ck_assert_int_eq(c.moe_every, 1);
	ck_assert(c.aux_loss_coef == 0.02);
	ck_assert_int_eq(c.d_ff, 112);
}
END_TEST

START_TEST(test_hf_gpt)
{
	ModelConfig c;
	load_ok(example("hf/gpt2.json"), &c);
	ck_assert_int_eq(c.family, FAMILY_DECODER);
	ck_assert_int_eq(c.dec_layers, 2);
	ck_assert_int_eq(c.d_model, 64);
	ck_assert_int_eq(c.d_ff, 256); /* n_inner null: 4 x n_embd */
	ck_assert_int_eq(c.max_pos, 64);
	ck_assert_int_eq(c.seq_len, 64);
	ck_assert_int_eq(c.pos, POS_LEARNED);
	ck_assert_int_eq(c.act, ACT_GELU);
	ck_assert_int_eq(c.tied_embed, 1);
	ck_assert_int_eq(c.bias, 1);
	ck_assert_int_eq(c.norm, NORM_LAYER);

	load_ok(example("hf/gpt_neox.json"), &c);
	ck_assert_int_eq(c.block, BLOCK_PARALLEL2);
	ck_assert_int_eq(c.pos, POS_ROTARY);
	ck_assert_int_eq(c.head_dim, 16);
	ck_assert_int_eq(c.rotary_dims, 4); /* 25% of 16 */
	ck_assert_int_eq(c.tied_embed, 0);
	ck_assert_int_eq(c.bias, 1);
	ck_assert_int_eq(c.d_ff, 256);
}
END_TEST

START_TEST(test_hf_t5)
{
	ModelConfig c;
	load_ok(example("hf/t5.json"), &c);
	ck_assert_int_eq(c.family, FAMILY_ENCDEC);
	ck_assert_int_eq(c.enc_layers, 2);
	ck_assert_int_eq(c.dec_layers, 2); /* num_decoder_layers absent: num_layers */
	ck_assert_int_eq(c.head_dim, 16);
	ck_assert_int_eq(c.heads, 4);
	ck_assert_int_eq(c.act, ACT_RELU); /* feed_forward_proj absent: relu */
	ck_assert_int_eq(c.tied_embed, 1);
	ck_assert_int_eq(c.pos, POS_RELATIVE);
	ck_assert_int_eq(c.rel_buckets, 32);
	ck_assert_int_eq(c.norm, NORM_RMS);

	load_ok(example("hf/flan-t5.json"), &c);
	ck_assert_int_eq(c.act, ACT_GEGLU); /* gated-gelu */
	ck_assert_int_eq(c.dec_layers, 3);
	ck_assert_int_eq(c.d_ff, 128);
	ck_assert_int_eq(c.tied_embed, 0);

	load_ok(example("hf/switch_transformers.json"), &c);
	ck_assert_int_eq(c.family, FAMILY_ENCDEC);
	ck_assert_int_eq(c.enc_layers, 4);
	ck_assert_int_eq(c.experts, 4);
	ck_assert_int_eq(c.moe_every, 2);
	ck_assert_int_eq(c.expert_capacity, 8);
	ck_assert_int_eq(c.top_k, 1);
	ck_assert(c.aux_loss_coef == 0.001);
}
END_TEST

START_TEST(test_hf_vit)
{
	ModelConfig c;
	load_ok(example("hf/vit.json"), &c);
	ck_assert_int_eq(c.family, FAMILY_ENCODER);
	ck_assert_int_eq(c.enc_layers, 2);
	ck_assert_int_eq(c.d_model, 64);
	ck_assert_int_eq(c.classes, 3); /* id2label has three entries */
	ck_assert_int_eq(c.image_size, 32);
	ck_assert_int_eq(c.patch, 8);
	ck_assert_int_eq(c.channels, 3);
	ck_assert(c.norm_eps == 1e-12);
	ck_assert_int_eq(c.bias, 1);
}
END_TEST

START_TEST(test_hf_errors)
{
	parse_err(1, "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 64,\n  \"flash\": true\n}",
	          "m.json:4:3: error: unknown key 'flash' for model_type 'llama'");
	/* a mixtral key is not a llama key */
	parse_err(1, "{\"model_type\": \"llama\", \"num_local_experts\": 8}",
	          "m.json:1:25: error: unknown key 'num_local_experts'");
	parse_err(1, "{\n\"model_type\": \"bert\"}", "m.json:2:1: error: unsupported model_type 'bert'");
	parse_err(1, "{\"model_type\": \"llama\",\n \"hidden_act\": \"tanh\"}",
	          "m.json:2:2: error: unsupported value 'tanh' for 'hidden_act'");
	parse_err(1, "{\"model_type\": \"t5\", \"feed_forward_proj\": \"gated-tanh\"}",
	          "unsupported value 'gated-tanh' for 'feed_forward_proj'");
	parse_err(1, "{\"model_type\": \"gpt2\", \"n_embd\": 64.5}", "'n_embd' must be an integer");
	parse_err(1, "{\"model_type\": \"switch_transformers\", \"router_bias\": true}",
	          "'router_bias'");
	parse_err(1, "{\"model_type\": \"switch_transformers\", \"num_sparse_encoder_layers\": 6, "
	             "\"num_sparse_decoder_layers\": 4}", "differs from decoder step");
	parse_err(1, "{\"model_type\": \"llama\", \"attention_bias\": true}", "mlp_bias");
	parse_err(1, "{\"model_type\": \"vit\", \"qkv_bias\": false}", "'qkv_bias'");
	parse_err(1, "{\"model_type\": \"llama\", \"num_attention_heads\": 32, "
	             "\"num_key_value_heads\": 5}", "must divide heads");
}
END_TEST

START_TEST(test_load_errors)
{
	ModelConfig c;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(model_load("palm-8b", &c, &d), 0);
	ck_assert_int_eq(c.dec_layers, 32);
	diag_init(&d);
	ck_assert_int_ne(model_load("palm-9b", &c, &d), 0);
	ck_assert_msg(strstr(d.msg, "unknown model 'palm-9b'"), "%s", d.msg);
	/* a checkpoint directory: its config.json, named after the directory */
	char dir[] = "/tmp/podsim-fe-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char sub[64], cfg[96];
	snprintf(sub, sizeof sub, "%s/ckpt-7", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	snprintf(cfg, sizeof cfg, "%s/config.json", sub);
	FILE *f = fopen(cfg, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"model_type\": \"gpt2\", \"n_layer\": 3, \"n_embd\": 32, \"n_head\": 2}", f);
	fclose(f);
	diag_init(&d);
	ck_assert_msg(model_load(sub, &c, &d) == 0, "%s", d.msg);
	ck_assert_str_eq(c.name, "ckpt-7");
	ck_assert_int_eq(c.dec_layers, 3);
	ck_assert_int_eq(c.d_model, 32);
	ck_assert_int_eq(c.vocab, 50257); /* transformers' default */
	unlink(cfg);
	rmdir(sub);
	rmdir(dir);
	diag_init(&d);
	ck_assert_int_ne(model_load("/nonexistent/model.json", &c, &d), 0);
	ck_assert_msg(strstr(d.msg, "/nonexistent/model.json: error: cannot open"), "%s", d.msg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("frontends_config");
	TCase *tc = tcase_create("config");
	tcase_add_test(tc, test_roundtrip_presets);
	tcase_add_test(tc, test_roundtrip_fields);
	tcase_add_test(tc, test_our_examples);
	tcase_add_test(tc, test_our_errors);
	tcase_add_test(tc, test_hf_llama_family);
	tcase_add_test(tc, test_hf_gpt);
	tcase_add_test(tc, test_hf_t5);
	tcase_add_test(tc, test_hf_vit);
	tcase_add_test(tc, test_hf_errors);
	tcase_add_test(tc, test_load_errors);
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
