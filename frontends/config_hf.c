/*
 * Hugging Face config.json reader, for model_type llama, mistral, mixtral,
 * gpt2, gpt_neox, t5, switch_transformers and vit. Each model_type has an
 * explicit table of the keys it understands: a key maps to a ModelConfig
 * meaning (HfWhat) or is knowingly ignored (dropout rates, token ids,
 * initializer scales: nothing that changes the graph). Any other key is an
 * error at its line and column, so a config that means something podsim does
 * not model is never silently mis-read. Absent keys take the transformers
 * library's defaults for that model_type.
 */
#include "config_io.h"

#include <stdio.h>
#include <string.h>

typedef enum HfWhat {
	H_IGNORE, H_VOCAB, H_D_MODEL, H_D_FF, H_N_INNER, H_LAYERS, H_DEC_LAYERS, H_HEADS,
	H_KV_HEADS, H_HEAD_DIM, H_MAX_POS, H_ACT, H_FF_PROJ, H_EPS, H_TIE, H_ROPE_THETA,
	H_ROTARY_PCT, H_PAR_RESID, H_ATTN_BIAS, H_MLP_BIAS, H_QKV_BIAS, H_EXPERTS, H_TOP_K,
	H_AUX, H_CAPACITY, H_SPARSE_ENC, H_SPARSE_DEC, H_ENC_STEP, H_DEC_STEP, H_ROUTER_BIAS,
	H_BUCKETS, H_MAX_DIST, H_IS_ENCDEC, H_IMAGE, H_PATCH, H_CHANNELS, H_ID2LABEL,
	H_NUM_LABELS, H_EMPTY,
} HfWhat;

typedef struct HfKey {
	const char *key;
	HfWhat what;
} HfKey;

/* Keys every config.json may carry that do not change the graph. */
static const HfKey common_keys[] = {
	{"_name_or_path", H_IGNORE}, {"architectures", H_IGNORE}, {"model_type", H_IGNORE},
	{"torch_dtype", H_IGNORE}, {"dtype", H_IGNORE}, {"transformers_version", H_IGNORE},
	{"use_cache", H_IGNORE}, {"bos_token_id", H_IGNORE}, {"eos_token_id", H_IGNORE},
	{"pad_token_id", H_IGNORE}, {"sep_token_id", H_IGNORE},
	{"decoder_start_token_id", H_IGNORE}, {"initializer_range", H_IGNORE},
	{"initializer_factor", H_IGNORE}, {"_commit_hash", H_IGNORE},
	{"task_specific_params", H_IGNORE}, {"output_attentions", H_IGNORE},
	{"output_hidden_states", H_IGNORE}, {"return_dict", H_IGNORE},
	{"gradient_checkpointing", H_IGNORE}, {"problem_type", H_IGNORE},
	{"tokenizer_class", H_IGNORE}, {"id2label", H_IGNORE}, {"label2id", H_IGNORE},
	{"num_labels", H_IGNORE}, {"finetuning_task", H_IGNORE}, {"prefix", H_IGNORE},
	{"torchscript", H_IGNORE}, {"use_bfloat16", H_IGNORE}, {"is_decoder", H_IGNORE},
	{"chunk_size_feed_forward", H_IGNORE}, {"pruned_heads", H_EMPTY},
	/* text-generation settings older transformers versions save with the model */
	{"max_length", H_IGNORE}, {"min_length", H_IGNORE}, {"do_sample", H_IGNORE},
	{"early_stopping", H_IGNORE}, {"num_beams", H_IGNORE}, {"num_beam_groups", H_IGNORE},
	{"diversity_penalty", H_IGNORE}, {"temperature", H_IGNORE}, {"top_k", H_IGNORE},
	{"top_p", H_IGNORE}, {"typical_p", H_IGNORE}, {"repetition_penalty", H_IGNORE},
	{"length_penalty", H_IGNORE}, {"no_repeat_ngram_size", H_IGNORE},
	{"encoder_no_repeat_ngram_size", H_IGNORE}, {"bad_words_ids", H_IGNORE},
	{"num_return_sequences", H_IGNORE}, {"output_scores", H_IGNORE},
	{"return_dict_in_generate", H_IGNORE}, {"forced_bos_token_id", H_IGNORE},
	{"forced_eos_token_id", H_IGNORE}, {"remove_invalid_values", H_IGNORE},
	{"exponential_decay_length_penalty", H_IGNORE}, {"suppress_tokens", H_IGNORE},
	{"begin_suppress_tokens", H_IGNORE}, {"tf_legacy_loss", H_IGNORE},
	{NULL, H_IGNORE},
};

static const HfKey llama_keys[] = {
	{"vocab_size", H_VOCAB}, {"hidden_size", H_D_MODEL}, {"intermediate_size", H_D_FF},
	{"num_hidden_layers", H_LAYERS}, {"num_attention_heads", H_HEADS},
	{"num_key_value_heads", H_KV_HEADS}, {"head_dim", H_HEAD_DIM}, {"hidden_act", H_ACT},
	{"max_position_embeddings", H_MAX_POS}, {"rms_norm_eps", H_EPS},
	{"tie_word_embeddings", H_TIE}, {"rope_theta", H_ROPE_THETA},
	{"rope_scaling", H_IGNORE}, {"attention_bias", H_ATTN_BIAS}, {"mlp_bias", H_MLP_BIAS},
	{"attention_dropout", H_IGNORE}, {"pretraining_tp", H_IGNORE},
	/* mistral, mixtral */
	{"sliding_window", H_IGNORE}, {NULL, H_IGNORE},
};
static const HfKey mixtral_keys[] = {
	{"num_local_experts", H_EXPERTS}, {"num_experts_per_tok", H_TOP_K},
	{"router_aux_loss_coef", H_AUX}, {"output_router_logits", H_IGNORE},
	{"router_jitter_noise", H_IGNORE}, {NULL, H_IGNORE},
};
static const HfKey gpt2_keys[] = {
	{"vocab_size", H_VOCAB}, {"n_positions", H_MAX_POS}, {"n_ctx", H_IGNORE},
	{"n_embd", H_D_MODEL}, {"n_layer", H_LAYERS}, {"n_head", H_HEADS},
	{"n_inner", H_N_INNER}, {"activation_function", H_ACT}, {"resid_pdrop", H_IGNORE},
	{"embd_pdrop", H_IGNORE}, {"attn_pdrop", H_IGNORE}, {"layer_norm_epsilon", H_EPS},
	{"summary_type", H_IGNORE}, {"summary_use_proj", H_IGNORE},
	{"summary_activation", H_IGNORE}, {"summary_proj_to_labels", H_IGNORE},
	{"summary_first_dropout", H_IGNORE}, {"scale_attn_weights", H_IGNORE},
	{"scale_attn_by_inverse_layer_idx", H_IGNORE}, {"reorder_and_upcast_attn", H_IGNORE},
	{"tie_word_embeddings", H_TIE}, {NULL, H_IGNORE},
};
static const HfKey neox_keys[] = {
	{"vocab_size", H_VOCAB}, {"hidden_size", H_D_MODEL}, {"intermediate_size", H_D_FF},
	{"num_hidden_layers", H_LAYERS}, {"num_attention_heads", H_HEADS},
	{"hidden_act", H_ACT}, {"rotary_pct", H_ROTARY_PCT}, {"rotary_emb_base", H_ROPE_THETA},
	{"rope_theta", H_ROPE_THETA}, {"rope_scaling", H_IGNORE},
	{"max_position_embeddings", H_MAX_POS}, {"layer_norm_eps", H_EPS},
	{"use_parallel_residual", H_PAR_RESID}, {"tie_word_embeddings", H_TIE},
	{"attention_bias", H_ATTN_BIAS}, {"attention_dropout", H_IGNORE},
	{"hidden_dropout", H_IGNORE}, {"classifier_dropout", H_IGNORE}, {NULL, H_IGNORE},
};
static const HfKey t5_keys[] = {
	{"vocab_size", H_VOCAB}, {"d_model", H_D_MODEL}, {"d_kv", H_HEAD_DIM}, {"d_ff", H_D_FF},
	{"num_layers", H_LAYERS}, {"num_decoder_layers", H_DEC_LAYERS}, {"num_heads", H_HEADS},
	{"relative_attention_num_buckets", H_BUCKETS},
	{"relative_attention_max_distance", H_MAX_DIST}, {"dropout_rate", H_IGNORE},
	{"layer_norm_epsilon", H_EPS}, {"feed_forward_proj", H_FF_PROJ},
	{"is_encoder_decoder", H_IS_ENCDEC}, {"tie_word_embeddings", H_TIE},
	{"n_positions", H_IGNORE}, {"output_past", H_IGNORE}, {"classifier_dropout", H_IGNORE},
	/* derived from feed_forward_proj by transformers and saved alongside it */
	{"dense_act_fn", H_IGNORE}, {"is_gated_act", H_IGNORE}, {NULL, H_IGNORE},
};
static const HfKey switch_keys[] = {
	{"expert_capacity", H_CAPACITY}, {"num_experts", H_EXPERTS},
	{"num_sparse_encoder_layers", H_SPARSE_ENC}, {"num_sparse_decoder_layers", H_SPARSE_DEC},
	{"encoder_sparse_step", H_ENC_STEP}, {"decoder_sparse_step", H_DEC_STEP},
	{"router_bias", H_ROUTER_BIAS}, {"router_jitter_noise", H_IGNORE},
	{"router_dtype", H_IGNORE}, {"router_ignore_padding_tokens", H_IGNORE},
	{"router_z_loss_coef", H_IGNORE}, {"router_aux_loss_coef", H_AUX},
	{"add_router_probs", H_IGNORE}, {NULL, H_IGNORE},
};
static const HfKey vit_keys[] = {
	{"hidden_size", H_D_MODEL}, {"num_hidden_layers", H_LAYERS},
	{"num_attention_heads", H_HEADS}, {"intermediate_size", H_D_FF}, {"hidden_act", H_ACT},
	{"hidden_dropout_prob", H_IGNORE}, {"attention_probs_dropout_prob", H_IGNORE},
	{"layer_norm_eps", H_EPS}, {"image_size", H_IMAGE}, {"patch_size", H_PATCH},
	{"num_channels", H_CHANNELS}, {"qkv_bias", H_QKV_BIAS}, {"encoder_stride", H_IGNORE},
	{"id2label", H_ID2LABEL}, {"label2id", H_IGNORE}, {"num_labels", H_NUM_LABELS},
	{"pooler_output_size", H_IGNORE}, {"pooler_act", H_IGNORE}, {NULL, H_IGNORE},
};

typedef enum HfType { T_LLAMA, T_MISTRAL, T_MIXTRAL, T_GPT2, T_NEOX, T_T5, T_SWITCH, T_VIT } HfType;

static const struct {
	const char *name;
	HfType type;
	const HfKey *keys[2];
} hf_types[] = {
	{"llama", T_LLAMA, {llama_keys, NULL}},
	{"mistral", T_MISTRAL, {llama_keys, NULL}},
	{"mixtral", T_MIXTRAL, {llama_keys, mixtral_keys}},
	{"gpt2", T_GPT2, {gpt2_keys, NULL}},
	{"gpt_neox", T_NEOX, {neox_keys, NULL}},
	{"t5", T_T5, {t5_keys, NULL}},
	{"switch_transformers", T_SWITCH, {t5_keys, switch_keys}},
	{"vit", T_VIT, {vit_keys, NULL}},
};
enum { NTYPES = sizeof hf_types / sizeof hf_types[0] };

/* Values read, before they become a ModelConfig. */
typedef struct Hf {
	HfType type;
	int64_t layers, dec_layers, n_inner, kv_heads, head_dim, classes;
	int64_t sparse_enc, sparse_dec, enc_step, dec_step;
	double rotary_pct;
	int attn_bias, mlp_bias, router_bias, encdec;
} Hf;

static void defaults(Hf *h, ModelConfig *c)
{
	HfType type = h->type;
	model_config_defaults(c);
	memset(h, 0, sizeof *h);
	h->type = type;
	h->kv_heads = h->head_dim = h->n_inner = h->dec_layers = -1;
	h->sparse_enc = h->sparse_dec = h->enc_step = h->dec_step = -1;
	h->classes = -1;
	h->rotary_pct = 1.0;
	h->encdec = 1;
	switch (h->type) {
	case T_LLAMA:
	case T_MISTRAL:
	case T_MIXTRAL:
		c->vocab = 32000;
		c->d_model = 4096;
		c->d_ff = h->type == T_LLAMA ? 11008 : 14336;
		h->layers = 32;
		c->heads = 32;
		if (h->type != T_LLAMA)
			h->kv_heads = 8;
		c->max_pos = h->type == T_LLAMA ? 2048 : 4096 * 32;
		c->act = ACT_SWIGLU;
		c->norm = NORM_RMS;
		c->norm_bias = 0;
		c->norm_eps = 1e-6;
		if (h->type == T_MISTRAL || h->type == T_MIXTRAL)
			c->norm_eps = 1e-5;
		c->tied_embed = 0;
		c->pos = POS_ROTARY;
		if (h->type == T_MIXTRAL) {
			c->experts = 8;
			c->top_k = 2;
			c->aux_loss_coef = 0.001;
		}
		break;
	case T_GPT2:
		c->vocab = 50257;
		c->max_pos = 1024;
		c->d_model = 768;
		h->layers = 12;
		c->heads = 12;
		c->act = ACT_GELU;
		c->pos = POS_LEARNED;
		h->attn_bias = h->mlp_bias = 1;
		break;
	case T_NEOX:
		c->vocab = 50432;
		c->d_model = 6144;
		h->layers = 44;
		c->heads = 64;
		c->d_ff = 24576;
		c->act = ACT_GELU;
		h->rotary_pct = 0.25;
		c->max_pos = 2048;
		c->block = BLOCK_PARALLEL2;
		c->tied_embed = 0;
		c->pos = POS_ROTARY;
		h->attn_bias = h->mlp_bias = 1;
		break;
	case T_T5:
	case T_SWITCH:
		c->family = FAMILY_ENCDEC;
		c->vocab = 32128;
		c->d_model = h->type == T_T5 ? 512 : 768;
		h->head_dim = 64;
		c->d_ff = 2048;
		h->layers = h->type == T_T5 ? 6 : 12;
		c->heads = h->type == T_T5 ? 8 : 12;
		c->act = ACT_RELU;
		c->pos = POS_RELATIVE;
		c->norm = NORM_RMS;
		c->norm_bias = 0;
		c->norm_eps = 1e-6;
		c->seq_len = 512;
		c->dec_seq_len = 114;
		if (h->type == T_SWITCH) {
			c->experts = 8;
			c->expert_capacity = 64;
			h->sparse_enc = h->sparse_dec = 3;
		}
		break;
	case T_VIT:
		c->family = FAMILY_ENCODER;
		c->d_model = 768;
		h->layers = 12;
		c->heads = 12;
		c->d_ff = 3072;
		c->act = ACT_GELU;
		c->norm_eps = 1e-12;
		c->image_size = 224;
		c->patch = 16;
		c->channels = 3;
		h->classes = 2;
		h->attn_bias = h->mlp_bias = 1;
		break;
	}
}

static const char *const gelu_names[] = {"gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast",
                                         "gelu_python"};

static int is_gelu(const char *s)
{
	for (size_t i = 0; i < sizeof gelu_names / sizeof gelu_names[0]; i++)
		if (!strcmp(s, gelu_names[i]))
			return 1;
	return 0;
}

static int read_act(const JsonCtx *x, const char *key, json_t *v, Hf *h, ModelConfig *c)
{
	const char *s;
	if (json_get_str(x, key, v, &s))
		return -1;
	int glu = h->type == T_LLAMA || h->type == T_MISTRAL || h->type == T_MIXTRAL;
	if (!strcmp(s, "relu") && !glu)
		c->act = ACT_RELU;
	else if (is_gelu(s))
		c->act = glu ? ACT_GEGLU : ACT_GELU;
	else if ((!strcmp(s, "silu") || !strcmp(s, "swish")) && glu)
		c->act = ACT_SWIGLU;
	else
		return json_key_error(x, key, "unsupported value '%s' for '%s' (expected %s)", s, key,
		                      glu ? "silu or gelu" : "relu or gelu");
	return 0;
}

static int read_ff_proj(const JsonCtx *x, const char *key, json_t *v, ModelConfig *c)
{
	const char *s;
	if (json_get_str(x, key, v, &s))
		return -1;
	int gated = !strncmp(s, "gated-", 6);
	const char *act = gated ? s + 6 : s;
	if (!strcmp(act, "relu") && !gated)
		c->act = ACT_RELU;
	else if (is_gelu(act))
		c->act = gated ? ACT_GEGLU : ACT_GELU;
	else if (!strcmp(act, "silu") && gated)
		c->act = ACT_SWIGLU;
	else
		return json_key_error(x, key,
		                      "unsupported value '%s' for '%s' (expected relu, gelu, "
		                      "gated-gelu or gated-silu)", s, key);
	return 0;
}

static int get_i(const JsonCtx *x, const char *key, json_t *v, int64_t min, int64_t *out)
{
	return json_get_int(x, key, v, min, out);
}

static int get_int32(const JsonCtx *x, const char *key, json_t *v, int64_t min, int *out)
{
	int64_t n;
	if (json_get_int(x, key, v, min, &n))
		return -1;
	if (n > 1000000000)
		return json_key_error(x, key, "'%s' is too large", key);
	*out = (int)n;
	return 0;
}

static int apply(const JsonCtx *x, const char *key, HfWhat what, json_t *v, Hf *h,
                 ModelConfig *c)
{
	int b;
	double f;
	/* keys that transformers writes as null when unset */
	if (json_is_null(v) && (what == H_N_INNER || what == H_KV_HEADS || what == H_HEAD_DIM))
		return 0;
	switch (what) {
	case H_IGNORE:
		return 0;
	case H_VOCAB:
		return get_i(x, key, v, 1, &c->vocab);
	case H_D_MODEL:
		return get_i(x, key, v, 1, &c->d_model);
	case H_D_FF:
		return get_i(x, key, v, 1, &c->d_ff);
	case H_N_INNER:
		return get_i(x, key, v, 1, &h->n_inner);
	case H_LAYERS:
		return get_i(x, key, v, 1, &h->layers);
	case H_DEC_LAYERS:
		return get_i(x, key, v, 1, &h->dec_layers);
	case H_HEADS:
		return get_i(x, key, v, 1, &c->heads);
	case H_KV_HEADS:
		return get_i(x, key, v, 1, &h->kv_heads);
	case H_HEAD_DIM:
		return get_i(x, key, v, 1, &h->head_dim);
	case H_MAX_POS:
		return get_i(x, key, v, 1, &c->max_pos);
	case H_ACT:
		return read_act(x, key, v, h, c);
	case H_FF_PROJ:
		return read_ff_proj(x, key, v, c);
	case H_EPS:
		if (json_get_num(x, key, v, &c->norm_eps))
			return -1;
		return c->norm_eps > 0 ? 0 : json_key_error(x, key, "'%s' must be positive", key);
	case H_TIE:
		return json_get_bool(x, key, v, &c->tied_embed);
	case H_ROPE_THETA:
		if (json_get_num(x, key, v, &c->rotary_base))
			return -1;
		return c->rotary_base > 0 ? 0 : json_key_error(x, key, "'%s' must be positive", key);
	case H_ROTARY_PCT:
		if (json_get_num(x, key, v, &h->rotary_pct))
			return -1;
		if (!(h->rotary_pct > 0 && h->rotary_pct <= 1))
			return json_key_error(x, key, "'%s' must be in (0, 1]", key);
		return 0;
	case H_PAR_RESID:
		if (json_get_bool(x, key, v, &b))
			return -1;
		c->block = b ? BLOCK_PARALLEL2 : BLOCK_SERIAL;
		return 0;
	case H_ATTN_BIAS:
		return json_get_bool(x, key, v, &h->attn_bias);
	case H_MLP_BIAS:
		return json_get_bool(x, key, v, &h->mlp_bias);
	case H_QKV_BIAS:
		if (json_get_bool(x, key, v, &b))
			return -1;
		return b ? 0 : json_key_error(x, key, "unsupported value false for '%s': podsim "
		                                      "builds ViT with biases on every projection", key);
	case H_EXPERTS:
		return get_int32(x, key, v, 1, &c->experts);
	case H_TOP_K:
		return get_int32(x, key, v, 1, &c->top_k);
	case H_AUX:
		if (json_get_num(x, key, v, &f))
			return -1;
		if (f < 0)
			return json_key_error(x, key, "'%s' must be >= 0", key);
		c->aux_loss_coef = f;
		return 0;
	case H_CAPACITY:
		return get_i(x, key, v, 1, &c->expert_capacity);
	case H_SPARSE_ENC:
		return get_i(x, key, v, 0, &h->sparse_enc);
	case H_SPARSE_DEC:
		return get_i(x, key, v, 0, &h->sparse_dec);
	case H_ENC_STEP:
		return get_i(x, key, v, 1, &h->enc_step);
	case H_DEC_STEP:
		return get_i(x, key, v, 1, &h->dec_step);
	case H_ROUTER_BIAS:
		if (json_get_bool(x, key, v, &h->router_bias))
			return -1;
		return h->router_bias ? json_key_error(x, key, "unsupported value true for '%s': "
		                                               "podsim's router has no bias", key)
		                      : 0;
	case H_BUCKETS:
		return get_int32(x, key, v, 2, &c->rel_buckets);
	case H_MAX_DIST:
		return get_int32(x, key, v, 2, &c->rel_max_distance);
	case H_IS_ENCDEC:
		if (json_get_bool(x, key, v, &h->encdec))
			return -1;
		return h->encdec ? 0 : json_key_error(x, key, "unsupported value false for '%s': "
		                                              "podsim builds T5 as encoder-decoder", key);
	case H_IMAGE:
		return get_i(x, key, v, 1, &c->image_size);
	case H_PATCH:
		return get_i(x, key, v, 1, &c->patch);
	case H_CHANNELS:
		return get_i(x, key, v, 1, &c->channels);
	case H_ID2LABEL:
		if (!json_is_object(v) || json_object_size(v) == 0)
			return json_key_error(x, key, "'%s' must be a non-empty object", key);
		h->classes = (int64_t)json_object_size(v);
		return 0;
	case H_NUM_LABELS:
		return get_i(x, key, v, 1, &h->classes);
	case H_EMPTY: /* pruned heads would change the graph */
		if ((json_is_object(v) && json_object_size(v) == 0) || json_is_null(v))
			return 0;
		return json_key_error(x, key, "'%s' must be empty: podsim does not model pruned heads",
		                      key);
	}
	return -1;
}

static int lookup(const HfKey *keys, const char *key, HfWhat *what)
{
	for (int i = 0; keys && keys[i].key; i++)
		if (!strcmp(keys[i].key, key)) {
			*what = keys[i].what;
			return 1;
		}
	return 0;
}

/* num_sparse_*_layers -> the step transformers derives from it */
static int64_t sparse_step(int64_t layers, int64_t sparse, int64_t step)
{
	if (step > 0)
		return step;
	if (sparse <= 0)
		return 0;
	return layers / sparse;
}

static int finish(const JsonCtx *x, Hf *h, ModelConfig *c)
{
	if (h->kv_heads > 0)
		c->kv_heads = h->kv_heads;
	else
		c->kv_heads = c->heads;
	c->head_dim = h->head_dim > 0 ? h->head_dim : c->d_model / c->heads;
	switch (h->type) {
	case T_LLAMA:
	case T_MISTRAL:
	case T_MIXTRAL:
	case T_GPT2:
	case T_NEOX:
		c->family = FAMILY_DECODER;
		c->dec_layers = (int)h->layers;
		c->seq_len = c->max_pos < 2048 ? c->max_pos : 2048;
		if (h->type == T_GPT2)
			c->d_ff = h->n_inner > 0 ? h->n_inner : 4 * c->d_model;
		if (h->type == T_NEOX)
			h->mlp_bias = 1; /* GPT-NeoX's MLP always has biases */
		if (h->attn_bias != h->mlp_bias)
			return json_key_error(x, "attention_bias",
			                      "attention_bias=%s with mlp_bias=%s is not supported: "
			                      "podsim has one bias flag for every projection",
			                      h->attn_bias ? "true" : "false",
			                      h->mlp_bias ? "true" : "false");
		c->bias = h->attn_bias;
		if (c->pos == POS_ROTARY) {
			c->rotary_dims = (int64_t)(c->head_dim * h->rotary_pct);
			c->rotary_dims -= c->rotary_dims % 2;
		}
		break;
	case T_T5:
	case T_SWITCH: {
		c->enc_layers = (int)h->layers;
		c->dec_layers = (int)(h->dec_layers > 0 ? h->dec_layers : h->layers);
		if (h->type == T_SWITCH) {
			int64_t es = sparse_step(c->enc_layers, h->sparse_enc, h->enc_step);
			int64_t ds = sparse_step(c->dec_layers, h->sparse_dec, h->dec_step);
			if (es != ds) {
				const char *k = h->enc_step > 0 ? "encoder_sparse_step" : "num_sparse_encoder_layers";
				return json_key_error(x, k, "encoder MoE step %lld differs from decoder step "
				                            "%lld: podsim uses one step for both stacks",
				                      (long long)es, (long long)ds);
			}
			if (es == 0)
				c->experts = 0;
			else
				c->moe_every = (int)es;
		}
		break;
	}
	case T_VIT:
		c->enc_layers = (int)h->layers;
		c->classes = h->classes;
		c->bias = 1;
		break;
	}
	return 0;
}

int model_parse_hf(const char *text, const char *file, ModelConfig *c, Diag *d)
{
	json_t *root = json_parse_text(text, file, d);
	if (!root)
		return -1;
	JsonCtx x = {.text = text, .file = file, .d = d};
	int r = -1;
	json_t *mt = json_object_get(root, "model_type");
	const char *type;
	if (!mt || json_get_str(&x, "model_type", mt, &type))
		goto out;
	int t = -1;
	for (int i = 0; i < NTYPES; i++)
		if (!strcmp(hf_types[i].name, type))
			t = i;
	if (t < 0) {
		json_key_error(&x, "model_type",
		               "unsupported model_type '%s' (supported: llama, mistral, mixtral, gpt2, "
		               "gpt_neox, t5, switch_transformers, vit)", type);
		goto out;
	}
	Hf h;
	h.type = hf_types[t].type;
	defaults(&h, c);
	json_t *nm = json_object_get(root, "_name_or_path");
	if (json_is_string(nm) && json_string_length(nm) > 0)
		snprintf(c->name, sizeof c->name, "%s", json_string_value(nm));
	else {
		/* the file's name without directory and ".json"; for
		 * ".../NAME/config.json", NAME */
		const char *f = file ? file : type;
		const char *slash = strrchr(f, '/');
		const char *base = slash ? slash + 1 : f;
		size_t n = strlen(base);
		if (!strcmp(base, "config.json") && slash && slash > f) {
			const char *dir = slash;
			while (dir > f && dir[-1] != '/')
				dir--;
			base = dir;
			n = (size_t)(slash - dir);
		} else if (n > 5 && !strcmp(base + n - 5, ".json")) {
			n -= 5;
		}
		if (n >= sizeof c->name)
			n = sizeof c->name - 1;
		memcpy(c->name, base, n);
		c->name[n] = 0;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		HfWhat what;
		if (!lookup(hf_types[t].keys[0], key, &what) && !lookup(hf_types[t].keys[1], key, &what) &&
		    !lookup(common_keys, key, &what)) {
			json_key_error(&x, key, "unknown key '%s' for model_type '%s'", key, type);
			goto out;
		}
		if (apply(&x, key, what, v, &h, c))
			goto out;
	}
	if (finish(&x, &h, c))
		goto out;
	r = model_config_check(c, file, d);
out:
	json_decref(root);
	return r;
}
