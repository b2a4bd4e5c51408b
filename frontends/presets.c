/*
 * Model presets: the published dimensions (../shared/hardware/tpu.md and the
 * papers it cites) and a few tiny models for numeric checks. Each preset is a
 * function of a few dimensions applied to a family template (palm, t5, t5.1.1,
 * switch, vit, mixer, gpt3), so a preset says only what differs.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

/* PaLM: SwiGLU, multi-query attention, parallel block, RoPE, no biases,
 * shared input/output embedding, layer norm without offset. */
static void palm(ModelConfig *c, int layers, int64_t d, int64_t heads, int64_t ff)
{
	c->family = FAMILY_DECODER;
	c->dec_layers = layers;
	c->d_model = d;
	c->heads = heads;
	c->kv_heads = 1;
	c->head_dim = 256;
	c->d_ff = ff;
	c->vocab = 256000;
	c->seq_len = 2048;
	c->act = ACT_SWIGLU;
	c->block = BLOCK_PARALLEL;
	c->pos = POS_ROTARY;
	c->rotary_dims = c->head_dim;
	c->tied_embed = 1;
	c->bias = 0;
	c->norm = NORM_LAYER;
	c->norm_bias = 0;
	c->norm_eps = 1e-6;
}

/* T5 (v1.0 and v1.1) and Switch: RMS norm, no biases, relative position
 * bias, inputs 512 and targets 114 tokens (T5 pretraining). */
static void t5(ModelConfig *c, int layers, int64_t d, int64_t heads, int64_t hd,
               int64_t ff, Activation act, int tied)
{
	c->family = FAMILY_ENCDEC;
	c->enc_layers = layers;
	c->dec_layers = layers;
	c->d_model = d;
	c->heads = heads;
	c->kv_heads = heads;
	c->head_dim = hd;
	c->d_ff = ff;
	c->vocab = 32128;
	c->seq_len = 512;
	c->dec_seq_len = 114;
	c->act = act;
	c->pos = POS_RELATIVE;
	c->tied_embed = tied;
	c->bias = 0;
	c->norm = NORM_RMS;
	c->norm_bias = 0;
	c->norm_eps = 1e-6;
}

static void moe(ModelConfig *c, int experts, int every, int top_k, double cf)
{
	c->experts = experts;
	c->moe_every = every;
	c->top_k = top_k;
	c->capacity_factor = cf;
	c->aux_loss_coef = 0.01;
}

/* ViT: pre-norm encoder, class token, learned positions, GELU, biases. */
static void vit(ModelConfig *c, int layers, int64_t d, int64_t heads, int64_t ff,
                int64_t patch)
{
	c->family = FAMILY_ENCODER;
	c->enc_layers = layers;
	c->d_model = d;
	c->heads = heads;
	c->kv_heads = heads;
	c->head_dim = d / heads;
	c->d_ff = ff;
	c->image_size = 224;
	c->patch = patch;
	c->channels = 3;
	c->classes = 1000;
	c->act = ACT_GELU;
	c->pos = POS_LEARNED;
	c->bias = 1;
	c->norm = NORM_LAYER;
	c->norm_bias = 1;
	c->norm_eps = 1e-6;
}

static void mixer(ModelConfig *c, int layers, int64_t d, int64_t token_mlp, int64_t ff,
                  int64_t patch)
{
	vit(c, layers, d, 1, ff, patch);
	c->family = FAMILY_MIXER;
	c->heads = c->kv_heads = c->head_dim = 0;
	c->token_mlp = token_mlp;
	c->pos = POS_NONE;
}

typedef struct Preset {
	const char *name;
	void (*fill)(ModelConfig *c);
} Preset;

#define PRESET(id, body) static void id(ModelConfig *c) { body; }
PRESET(p_palm_8b, palm(c, 32, 4096, 16, 16384))
PRESET(p_palm_62b, palm(c, 64, 8192, 32, 32768))
PRESET(p_palm_540b, palm(c, 118, 18432, 48, 73728))
PRESET(p_t5_small, t5(c, 6, 512, 8, 64, 2048, ACT_RELU, 1))
PRESET(p_t5_base, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1))
PRESET(p_t5_large, t5(c, 24, 1024, 16, 64, 4096, ACT_RELU, 1))
PRESET(p_t5_3b, t5(c, 24, 1024, 32, 128, 16384, ACT_RELU, 1))
PRESET(p_t5_11b, t5(c, 24, 1024, 128, 128, 65536, ACT_RELU, 1))
PRESET(p_t511_small, t5(c, 8, 512, 6, 64, 1024, ACT_GEGLU, 0))
PRESET(p_t511_base, t5(c, 12, 768, 12, 64, 2048, ACT_GEGLU, 0))
PRESET(p_t511_large, t5(c, 24, 1024, 16, 64, 2816, ACT_GEGLU, 0))
PRESET(p_t511_xl, t5(c, 24, 2048, 32, 64, 5120, ACT_GEGLU, 0))
PRESET(p_t511_xxl, t5(c, 24, 4096, 64, 64, 10240, ACT_GEGLU, 0))
PRESET(p_switch_base_8, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1); moe(c, 8, 2, 1, 1.25))
PRESET(p_switch_base_16, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1); moe(c, 16, 2, 1, 1.25))
PRESET(p_switch_base_32, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1); moe(c, 32, 2, 1, 1.25))
PRESET(p_switch_base_64, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1); moe(c, 64, 2, 1, 1.25))
PRESET(p_switch_base_128, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1); moe(c, 128, 2, 1, 1.25))
PRESET(p_switch_base_256, t5(c, 12, 768, 12, 64, 3072, ACT_RELU, 1); moe(c, 256, 2, 1, 1.25))
PRESET(p_switch_large_128, t5(c, 24, 1024, 16, 64, 4096, ACT_RELU, 1); moe(c, 128, 2, 1, 1.25))
PRESET(p_switch_xxl_128, t5(c, 24, 4096, 64, 64, 10240, ACT_GEGLU, 1); moe(c, 128, 2, 1, 1.25))
PRESET(p_switch_c_2048, t5(c, 15, 2080, 30, 64, 6144, ACT_RELU, 1); moe(c, 2048, 1, 1, 1.0))
PRESET(p_vit_b16, vit(c, 12, 768, 12, 3072, 16))
PRESET(p_vit_l16, vit(c, 24, 1024, 16, 4096, 16))
PRESET(p_vit_h14, vit(c, 32, 1280, 16, 5120, 14))
PRESET(p_mixer_b16, mixer(c, 12, 768, 384, 3072, 16))
PRESET(p_mixer_l16, mixer(c, 24, 1024, 512, 4096, 16))
PRESET(p_mixer_h14, mixer(c, 32, 1280, 640, 5120, 14))

/* GPT-3 175B: GELU, learned positions, biases, layer norm, tied embedding. */
static void p_gpt3_175b(ModelConfig *c)
{
	c->family = FAMILY_DECODER;
	c->dec_layers = 96;
	c->d_model = 12288;
	c->heads = c->kv_heads = 96;
	c->head_dim = 128;
	c->d_ff = 49152;
	c->vocab = 50257;
	c->max_pos = 2048;
	c->seq_len = 2048;
	c->act = ACT_GELU;
	c->pos = POS_LEARNED;
}

/* Tiny models, small enough for the reference interpreter. */
static void p_tiny_decoder(ModelConfig *c)
{
	c->family = FAMILY_DECODER;
	c->dec_layers = 2;
	c->d_model = 256;
	c->heads = c->kv_heads = 4;
	c->head_dim = 64;
	c->d_ff = 1024;
	c->vocab = 1024;
	c->max_pos = 64;
	c->seq_len = 64;
	c->act = ACT_GELU;
	c->pos = POS_LEARNED;
}

/* PaLM's blocks (parallel, SwiGLU, multi-query, rotary) at tiny size. */
static void p_tiny_palm(ModelConfig *c)
{
	palm(c, 2, 64, 4, 256);
	c->head_dim = 16;
	c->rotary_dims = 16;
	c->vocab = 256;
	c->seq_len = 16;
}

/* Llama's blocks: grouped-query attention, RMS norm, untied. */
static void p_tiny_llama(ModelConfig *c)
{
	p_tiny_palm(c);
	c->kv_heads = 2;
	c->block = BLOCK_SERIAL;
	c->norm = NORM_RMS;
	c->tied_embed = 0;
}

static void p_tiny_t5(ModelConfig *c)
{
	t5(c, 2, 64, 4, 16, 128, ACT_GEGLU, 0);
	c->vocab = 256;
	c->seq_len = 16;
	c->dec_seq_len = 8;
	c->rel_buckets = 8;
	c->rel_max_distance = 16;
}

/* A decoder whose second layer is a 4-expert top-2 MoE layer. */
static void p_tiny_moe(ModelConfig *c)
{
	p_tiny_decoder(c);
	c->d_model = 64;
	c->head_dim = 16;
	c->d_ff = 128;
	c->vocab = 256;
	c->max_pos = c->seq_len = 16;
	moe(c, 4, 2, 2, 1.5);
}

static void p_tiny_switch(ModelConfig *c)
{
	p_tiny_t5(c);
	c->act = ACT_RELU;
	c->tied_embed = 1;
	moe(c, 4, 2, 1, 1.25);
}

static void p_tiny_vit(ModelConfig *c)
{
	vit(c, 2, 64, 4, 128, 4);
	c->image_size = 16;
	c->classes = 10;
}

static void p_tiny_mixer(ModelConfig *c)
{
	mixer(c, 2, 64, 32, 128, 4);
	c->image_size = 16;
	c->classes = 10;
}

static const Preset presets[] = {
	{"palm-8b", p_palm_8b},
	{"palm-62b", p_palm_62b},
	{"palm-540b", p_palm_540b},
	{"t5-small", p_t5_small},
	{"t5-base", p_t5_base},
	{"t5-large", p_t5_large},
	{"t5-3b", p_t5_3b},
	{"t5-11b", p_t5_11b},
	{"t5.1.1-small", p_t511_small},
	{"t5.1.1-base", p_t511_base},
	{"t5.1.1-large", p_t511_large},
	{"t5.1.1-xl", p_t511_xl},
	{"t5.1.1-xxl", p_t511_xxl},
	{"flan-t5-small", p_t511_small},
	{"flan-t5-base", p_t511_base},
	{"flan-t5-large", p_t511_large},
	{"flan-t5-xl", p_t511_xl},
	{"flan-t5-xxl", p_t511_xxl},
	{"switch-base-8", p_switch_base_8},
	{"switch-base-16", p_switch_base_16},
	{"switch-base-32", p_switch_base_32},
	{"switch-base-64", p_switch_base_64},
	{"switch-base-128", p_switch_base_128},
	{"switch-base-256", p_switch_base_256},
	{"switch-large-128", p_switch_large_128},
	{"switch-xxl-128", p_switch_xxl_128},
	{"switch-c-2048", p_switch_c_2048},
	{"vit-b16", p_vit_b16},
	{"vit-l16", p_vit_l16},
	{"vit-h14", p_vit_h14},
	{"mixer-b16", p_mixer_b16},
	{"mixer-l16", p_mixer_l16},
	{"mixer-h14", p_mixer_h14},
	{"gpt3-175b", p_gpt3_175b},
	{"tiny-decoder", p_tiny_decoder},
	{"tiny-palm", p_tiny_palm},
	{"tiny-llama", p_tiny_llama},
	{"tiny-t5", p_tiny_t5},
	{"tiny-moe", p_tiny_moe},
	{"tiny-switch", p_tiny_switch},
	{"tiny-vit", p_tiny_vit},
	{"tiny-mixer", p_tiny_mixer},
};

enum { NPRESETS = sizeof presets / sizeof presets[0] };

int model_preset_count(void) { return NPRESETS; }

const char *model_preset_name(int i)
{
	return i >= 0 && i < NPRESETS ? presets[i].name : NULL;
}

int model_preset(const char *name, ModelConfig *c)
{
	for (int i = 0; i < NPRESETS; i++) {
		if (strcmp(presets[i].name, name) != 0)
			continue;
		model_config_defaults(c);
		presets[i].fill(c);
		snprintf(c->name, sizeof c->name, "%s", name);
		return 0;
	}
	return -1;
}
