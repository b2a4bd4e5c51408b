/*
 * ModelConfig basics: defaults, consistency checks, equality and the name
 * tables shared by the JSON readers, the builder and the CLI.
 */
#include "model.h"

#include <string.h>

static const char *const family_names[FAMILY_COUNT] = {
	[FAMILY_DECODER] = "decoder", [FAMILY_ENCDEC] = "encoder_decoder",
	[FAMILY_ENCODER] = "encoder", [FAMILY_MIXER] = "mixer",
};
static const char *const act_names[ACT_COUNT] = {
	[ACT_RELU] = "relu", [ACT_GELU] = "gelu", [ACT_SWIGLU] = "swiglu", [ACT_GEGLU] = "geglu",
};
static const char *const pos_names[POS_COUNT] = {
	[POS_NONE] = "none", [POS_LEARNED] = "learned", [POS_RELATIVE] = "relative",
	[POS_ROTARY] = "rotary",
};
static const char *const block_names[BLOCK_COUNT] = {
	[BLOCK_SERIAL] = "serial", [BLOCK_PARALLEL] = "parallel",
	[BLOCK_PARALLEL2] = "parallel_two_norms",
};
static const char *const norm_names[NORM_COUNT] = {
	[NORM_LAYER] = "layer", [NORM_RMS] = "rms",
};

const char *family_name(ModelFamily f) { return family_names[f]; }
const char *activation_name(Activation a) { return act_names[a]; }
const char *pos_name(PosKind p) { return pos_names[p]; }
const char *block_name(BlockKind b) { return block_names[b]; }
const char *norm_name(NormKind n) { return norm_names[n]; }

void model_config_defaults(ModelConfig *c)
{
	memset(c, 0, sizeof *c);
	strcpy(c->name, "model");
	c->family = FAMILY_DECODER;
	c->act = ACT_GELU;
	c->block = BLOCK_SERIAL;
	c->pos = POS_LEARNED;
	c->rotary_base = 10000.0;
	c->rel_buckets = 32;
	c->rel_max_distance = 128;
	c->tied_embed = 1;
	c->norm = NORM_LAYER;
	c->norm_bias = 1;
	c->bias = 1;
	c->norm_eps = 1e-5;
	c->moe_every = 1;
	c->top_k = 1;
	c->capacity_factor = 1.25;
	c->aux_loss_coef = 0.01;
	c->channels = 3;
	c->classes = 1000;
}

int64_t model_tokens_per_image(const ModelConfig *c)
{
	if (c->patch <= 0)
		return 0;
	int64_t n = c->image_size / c->patch;
	return n * n;
}

#define BAD(...) do { diag_error(d, file, 0, 0, __VA_ARGS__); return -1; } while (0)

int model_config_check(const ModelConfig *c, const char *file, Diag *d)
{
	int lm = c->family == FAMILY_DECODER || c->family == FAMILY_ENCDEC;
	int image = c->family == FAMILY_ENCODER || c->family == FAMILY_MIXER;
	if (c->d_model <= 0)
		BAD("model '%s': d_model must be positive", c->name);
	if (c->d_ff <= 0)
		BAD("model '%s': d_ff must be positive", c->name);
	if (c->family == FAMILY_DECODER && (c->dec_layers <= 0 || c->enc_layers != 0))
		BAD("model '%s': a decoder needs layers > 0", c->name);
	if (c->family == FAMILY_ENCDEC && (c->enc_layers <= 0 || c->dec_layers <= 0))
		BAD("model '%s': an encoder-decoder needs encoder_layers and decoder_layers > 0",
		    c->name);
	if (image && (c->enc_layers <= 0 || c->dec_layers != 0))
		BAD("model '%s': an image model needs layers > 0", c->name);
	if (c->family != FAMILY_MIXER) {
		if (c->heads <= 0 || c->head_dim <= 0)
			BAD("model '%s': heads and head_dim must be positive", c->name);
		if (c->kv_heads <= 0 || c->heads % c->kv_heads)
			BAD("model '%s': kv_heads (%lld) must divide heads (%lld)", c->name,
			    (long long)c->kv_heads, (long long)c->heads);
	}
	if (lm && c->vocab <= 0)
		BAD("model '%s': vocab must be positive", c->name);
	if (lm && c->seq_len <= 0)
		BAD("model '%s': seq_len must be positive", c->name);
	if (c->family == FAMILY_ENCDEC && c->dec_seq_len <= 0)
		BAD("model '%s': decoder_seq_len must be positive", c->name);
	if (c->pos == POS_LEARNED && lm && c->max_pos <= 0)
		BAD("model '%s': learned positions need max_positions > 0", c->name);
	if (c->pos == POS_ROTARY &&
	    (c->rotary_dims <= 0 || c->rotary_dims > c->head_dim || c->rotary_dims % 2))
		BAD("model '%s': rotary_dims must be even and in 1..head_dim", c->name);
	if (c->pos == POS_ROTARY && !(c->rotary_base > 0))
		BAD("model '%s': rotary_base must be positive", c->name);
	if (c->pos == POS_RELATIVE && (c->rel_buckets < 2 || c->rel_max_distance < 2))
		BAD("model '%s': relative_buckets and relative_max_distance must be >= 2", c->name);
	if (c->pos == POS_RELATIVE && !lm)
		BAD("model '%s': relative positions need a language model", c->name);
	if (c->family == FAMILY_ENCDEC && (c->pos == POS_ROTARY || c->block != BLOCK_SERIAL))
		BAD("model '%s': encoder-decoders here have serial blocks and no rotary positions",
		    c->name);
	if (c->pos == POS_ROTARY && !lm)
		BAD("model '%s': rotary positions need a language model", c->name);
	if (image) {
		if (c->image_size <= 0 || c->patch <= 0 || c->image_size % c->patch)
			BAD("model '%s': image size must be a positive multiple of patch", c->name);
		if (c->channels <= 0 || c->classes <= 0)
			BAD("model '%s': channels and classes must be positive", c->name);
		if (c->experts)
			BAD("model '%s': image models have no MoE layers here", c->name);
	}
	if (c->family == FAMILY_MIXER && c->token_mlp <= 0)
		BAD("model '%s': a mixer needs token_mlp > 0", c->name);
	if (c->family == FAMILY_MIXER && c->pos != POS_NONE)
		BAD("model '%s': a mixer has no position embedding (positions must be none)",
		    c->name);
	if (c->family == FAMILY_MIXER && c->block != BLOCK_SERIAL)
		BAD("model '%s': a mixer has serial blocks", c->name);
	if (c->experts < 0 || c->experts == 1)
		BAD("model '%s': experts must be 0 (dense) or >= 2", c->name);
	if (c->experts) {
		if (c->moe_every < 1)
			BAD("model '%s': moe every must be >= 1", c->name);
		if (c->top_k < 1 || c->top_k > c->experts)
			BAD("model '%s': top_k must be in 1..experts", c->name);
		if (!(c->capacity_factor > 0) && c->expert_capacity <= 0)
			BAD("model '%s': capacity_factor must be positive", c->name);
		if (c->aux_loss_coef < 0)
			BAD("model '%s': aux_loss_coef must be >= 0", c->name);
	}
	if (!(c->norm_eps > 0))
		BAD("model '%s': norm_eps must be positive", c->name);
	return 0;
}

int model_config_equal(const ModelConfig *a, const ModelConfig *b)
{
#define EQ(f) if (a->f != b->f) return 0;
	EQ(family) EQ(enc_layers) EQ(dec_layers) EQ(d_model) EQ(heads) EQ(kv_heads)
	EQ(head_dim) EQ(d_ff) EQ(vocab) EQ(max_pos) EQ(seq_len) EQ(dec_seq_len) EQ(act)
	EQ(block) EQ(pos) EQ(rotary_dims) EQ(rotary_base) EQ(rel_buckets)
	EQ(rel_max_distance) EQ(tied_embed) EQ(bias) EQ(norm) EQ(norm_bias) EQ(norm_eps)
	EQ(experts) EQ(moe_every) EQ(top_k) EQ(capacity_factor) EQ(expert_capacity)
	EQ(aux_loss_coef) EQ(image_size) EQ(patch) EQ(channels) EQ(classes) EQ(token_mlp)
#undef EQ
	return strcmp(a->name, b->name) == 0;
}
