/*
 * Transformer model descriptions and the graph-IR frontends.
 *
 * A ModelConfig is a plain struct: every architecture podsim builds (decoder-
 * only LMs, T5-style encoder-decoders, ViT encoders, MLP-Mixers, with dense or
 * mixture-of-experts MLPs) is one point in it. It comes from a preset
 * (presets.c), our JSON format (config_json.c) or a Hugging Face config.json
 * (config_hf.c); model_load() picks among them. model_build() (build.c,
 * blocks.c) turns it into a graph-level Module: the forward pass and the loss.
 *
 * The contract with the compiler (docs/models.md has the full version):
 *   - weights are parameters with role="weight", data inputs role="input";
 *   - output 0 is the scalar f32 loss;
 *   - every instruction of transformer layer i carries layer=[i] (encoder
 *     layers first, then decoder layers); embeddings, heads and the loss none.
 */
#ifndef PODSIM_FRONTENDS_MODEL_H
#define PODSIM_FRONTENDS_MODEL_H

#include <stdint.h>

#include "ir/ir.h"

typedef enum ModelFamily {
	FAMILY_DECODER,     /* decoder-only language model (PaLM, GPT, Llama) */
	FAMILY_ENCDEC,      /* encoder-decoder language model (T5, Switch) */
	FAMILY_ENCODER,     /* encoder-only image classifier (ViT) */
	FAMILY_MIXER,       /* MLP-Mixer image classifier */
	FAMILY_COUNT
} ModelFamily;

typedef enum Activation {
	ACT_RELU,           /* relu(x Wi) Wo */
	ACT_GELU,           /* gelu(x Wi) Wo */
	ACT_SWIGLU,         /* (silu(x Wg) * x Wi) Wo: three matrices */
	ACT_GEGLU,          /* (gelu(x Wg) * x Wi) Wo: T5.1.1 "gated-gelu" */
	ACT_COUNT
} Activation;

typedef enum PosKind {
	POS_NONE,           /* no position information (Mixer) */
	POS_LEARNED,        /* a learned table added to the embeddings */
	POS_RELATIVE,       /* T5 relative position bias on the attention logits */
	POS_ROTARY,         /* rotary embedding of q and k */
	POS_COUNT
} PosKind;

typedef enum BlockKind {
	BLOCK_SERIAL,       /* x += attn(norm1(x)); x += mlp(norm2(x)) */
	BLOCK_PARALLEL,     /* x += attn(norm(x)) + mlp(norm(x)), one norm (PaLM) */
	BLOCK_PARALLEL2,    /* x += attn(norm1(x)) + mlp(norm2(x)) (GPT-NeoX) */
	BLOCK_COUNT
} BlockKind;

typedef enum NormKind {
	NORM_LAYER,         /* (x - mean) / std * scale (+ offset if norm_bias) */
	NORM_RMS,           /* x / rms(x) * scale (T5, Llama) */
	NORM_COUNT
} NormKind;

typedef struct ModelConfig {
	char name[64];
	ModelFamily family;
	int enc_layers;         /* encoder layers (enc-dec, ViT, Mixer); 0 otherwise */
	int dec_layers;         /* decoder layers (decoder-only, enc-dec); 0 otherwise */
	int64_t d_model;        /* residual stream width */
	int64_t heads;          /* query heads */
	int64_t kv_heads;       /* key/value heads: heads (MHA), 1 (MQA), else GQA */
	int64_t head_dim;       /* per head; heads * head_dim need not be d_model */
	int64_t d_ff;           /* MLP hidden width (per expert; Mixer: channel MLP) */
	int64_t vocab;          /* token vocabulary (language models) */
	int64_t max_pos;        /* learned position table rows; 0 if none */
	int64_t seq_len;        /* default (encoder) sequence length, tokens */
	int64_t dec_seq_len;    /* default decoder sequence length (enc-dec), tokens */
	Activation act;
	BlockKind block;
	PosKind pos;
	int64_t rotary_dims;    /* rotated dims of each head (<= head_dim) */
	double rotary_base;     /* rotary wavelength base (10000) */
	int rel_buckets;        /* relative-bias buckets (T5: 32) */
	int rel_max_distance;   /* relative-bias max distance (T5: 128) */
	int tied_embed;         /* output logits use the input embedding table */
	int bias;               /* linear layers have a bias vector */
	NormKind norm;
	int norm_bias;          /* layer norm has an offset vector */
	double norm_eps;
	/* Mixture of experts (experts == 0: dense) */
	int experts;            /* experts per MoE layer */
	int moe_every;          /* layer i is MoE iff (i + 1) % moe_every == 0 (per stack) */
	int top_k;              /* experts per token */
	double capacity_factor; /* expert buffer = ceil(cf * tokens * top_k / experts) */
	int64_t expert_capacity;/* if > 0, tokens per expert per group (overrides cf) */
	double aux_loss_coef;   /* Switch load-balancing loss weight; 0: none */
	/* Images (ViT, Mixer) */
	int64_t image_size;     /* pixels per side (square images) */
	int64_t patch;          /* pixels per patch side */
	int64_t channels;       /* image channels */
	int64_t classes;        /* classification head outputs */
	/* Mixer */
	int64_t token_mlp;      /* token-mixing MLP hidden width */
} ModelConfig;

/* Defaults for every field a JSON file may omit; family-independent. */
void model_config_defaults(ModelConfig *c);
/* Checks the dimensions are consistent. 0 or -1 with d filled (file may be
 * NULL; the message names the field). */
int model_config_check(const ModelConfig *c, const char *file, Diag *d);
int model_config_equal(const ModelConfig *a, const ModelConfig *b);
/* Image patches per image ((image_size / patch)^2). */
int64_t model_tokens_per_image(const ModelConfig *c);

const char *family_name(ModelFamily f);
const char *activation_name(Activation a);
const char *pos_name(PosKind p);
const char *block_name(BlockKind b);
const char *norm_name(NormKind n);

/* ---- Presets (presets.c) --------------------------------------------- */
int model_preset_count(void);
const char *model_preset_name(int i);
/* 0 and *c filled, or -1 if no preset has that name. */
int model_preset(const char *name, ModelConfig *c);

/* ---- Loading (load.c, config_json.c, config_hf.c) ---------------------
 * name_or_path: a preset name, or a JSON file: ours, or a Hugging Face
 * config.json (recognised by its "model_type" key). Errors name the file,
 * line and column of the offending key. */
int model_load(const char *name_or_path, ModelConfig *c, Diag *d);
int model_parse_json(const char *text, const char *file, ModelConfig *c, Diag *d);
int model_parse_hf(const char *text, const char *file, ModelConfig *c, Diag *d);
/* Our JSON format, every field written; malloc'd, caller frees. */
char *model_config_to_json(const ModelConfig *c);

/* ---- Building (build.c, blocks.c) ------------------------------------ */
typedef struct BuildOptions {
	int64_t batch;    /* sequences (images) per step; 0: 1 */
	int64_t seq;      /* (encoder) tokens per sequence; 0: cfg seq_len */
	int64_t dec_seq;  /* decoder tokens per sequence (enc-dec); 0: cfg dec_seq_len */
	DType dtype;      /* weights and activations; the loss is always f32 */
} BuildOptions;

/* batch 1, default lengths, bf16. */
void build_options_default(BuildOptions *o);
/* The forward pass and loss as a graph-level module (caller frees with
 * ir_module_free), or NULL with d filled. */
Module *model_build(const ModelConfig *c, const BuildOptions *o, Diag *d);

/* ---- Logical axes (logical.c) -----------------------------------------
 * Sets logical=[...] (one name per dim: embed, heads, kv_heads, kv, mlp,
 * vocab, exp, batch, length, norm, none) on the parameters of a built model,
 * for the shard pass. Returns the number of weights it found no rule for
 * (0 for every model model_build makes). */
int model_annotate_logical(Module *m);

/* ---- Counting (params.c) ---------------------------------------------- */
typedef struct ParamCount {
	int64_t total;       /* numel of every role="weight" parameter */
	int64_t embedding;   /* weights outside the layers: embeddings, positions,
	                        final norms, output heads */
	int64_t head;        /* image classification head ("head/..." weights), which
	                        published ViT/Mixer counts leave out */
	int64_t expert;      /* MoE expert weights (all experts) */
	int64_t matmul;      /* weights that are an operand of a dot (through
	                        convert/reshape/transpose): not norms, biases,
	                        gathered tables unless tied to the output */
} ParamCount;

void model_count_params(const Module *m, ParamCount *pc);

/* Model FLOPs per token of one training step, PaLM appendix B:
 * 6 N + 12 L H Q T, with N the matmul weights a token meets (pc->matmul,
 * MoE: top_k experts per MoE layer instead of all), L layers, H heads,
 * Q head_dim, T the (encoder) sequence length. */
double model_flops_per_token(const ModelConfig *c, const ParamCount *pc, int64_t seq);
/* The weights a token meets: total minus the experts it does not use. */
int64_t model_active_params(const ModelConfig *c, const ParamCount *pc);
/* The same for pc->matmul. */
int64_t model_active_matmul_params(const ModelConfig *c, const ParamCount *pc);

/* ---- Inputs for running a built model (inputs.c) ----------------------
 * Tables that model_build takes as role="input" parameters: */
/* rope_cos/rope_sin: (seq, rotary_dims) row-major, both halves equal. */
void model_rope_tables(const ModelConfig *c, int64_t seq, float *cos_t, float *sin_t);
/* rel_buckets: (q_len, k_len) T5 bucket of key j - query i. */
void model_rel_buckets(const ModelConfig *c, int bidirectional, int64_t q_len,
                       int64_t k_len, float *out);
/* One tensor per parameter of m (ir_interp's order), filled: weights with
 * N(0, 1/fan_in)-like uniform values (norm scales 1, biases 0), tokens and
 * labels uniform in the vocabulary, images uniform, the tables above exact.
 * Returns a malloc'd array of m's parameter count (*n); free with
 * model_free_inputs. Deterministic in seed. */
Tensor *model_random_inputs(const Module *m, const ModelConfig *c, uint64_t seed, int *n);
void model_free_inputs(Tensor *t, int n);

#endif
