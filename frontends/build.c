/*
 * model_build: a ModelConfig to a graph-level Module computing the forward
 * pass and the loss of one batch. One function per family (decoder-only,
 * encoder-decoder, ViT encoder, MLP-Mixer) strings together the blocks of
 * blocks.c; one set of instructions per layer, so even PaLM 540B is a few
 * thousand instructions that carry shapes, not data.
 *
 * Every instruction a layer adds gets layer=[i] (tag_layer); parameters are
 * created where first used, so the parameter order is the order of first use.
 */
#include "build.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void build_options_default(BuildOptions *o)
{
	memset(o, 0, sizeof *o);
	o->batch = 1;
	o->dtype = DT_BF16;
}

static void tag_layer(Builder *b, ValueId first, int64_t layer)
{
	for (ValueId v = first; v < b->m->ninsts; v++)
		ir_set_ints(b->m, v, "layer", 1, &layer);
}

static void enter_layer(Builder *b, int64_t layer)
{
	snprintf(b->prefix, sizeof b->prefix, "layer%lld/", (long long)layer);
}

static void leave_layer(Builder *b) { b->prefix[0] = 0; }

/* MoE layers are the last of every moe_every layers of a stack. */
static int is_moe(const ModelConfig *c, int i)
{
	return c->experts > 0 && (i + 1) % c->moe_every == 0;
}

static ValueId embed_tokens(Builder *b, ValueId table, ValueId ids)
{
	return ir_gather(b->m, table, ids);
}

/* x [B,S,D] + positions[0:S] (learned table, gathered by an iota). */
static ValueId add_learned_positions(Builder *b, ValueId x, ValueId table)
{
	Type t = *vtype(b, x);
	ValueId ids = ir_iota(b->m, TY(DT_S32, t.dims[1]), 0);
	ValueId p = ir_gather(b->m, table, ids);
	return ir_binary(b->m, OP_ADD, x, bcast(b, p, t, DIMS(1, 2)));
}

static ValueId residual(Builder *b, ValueId x, ValueId y) { return ir_binary(b->m, OP_ADD, x, y); }

/* One pre-norm transformer layer over x [B,S,D]. cross: encoder output
 * [B,T,D] for a decoder layer of an encoder-decoder, or -1. */
static ValueId layer(Builder *b, ValueId x, ValueId bias, ValueId cos_t, ValueId sin_t,
                     ValueId cross, int moe)
{
	const ModelConfig *c = b->c;
	if (c->block == BLOCK_SERIAL) {
		ValueId h = norm(b, x, "norm1");
		x = residual(b, x, attention(b, h, h, bias, cos_t, sin_t, "attn"));
		if (cross >= 0) {
			h = norm(b, x, "norm_cross");
			x = residual(b, x, attention(b, h, cross, -1, -1, -1, "cross"));
		}
		return residual(b, x, mlp(b, norm(b, x, "norm2"), moe));
	}
	ValueId h1 = norm(b, x, "norm1");
	ValueId h2 = c->block == BLOCK_PARALLEL ? h1 : norm(b, x, "norm2");
	ValueId a = attention(b, h1, h1, bias, cos_t, sin_t, "attn");
	return residual(b, x, ir_binary(b->m, OP_ADD, a, mlp(b, h2, moe)));
}

/* A stack of layers numbered first.., each tagged. */
static ValueId stack(Builder *b, ValueId x, int n, int first, ValueId bias, ValueId cos_t,
                     ValueId sin_t, ValueId cross)
{
	for (int i = 0; i < n; i++) {
		ValueId start = b->m->ninsts;
		enter_layer(b, first + i);
		x = layer(b, x, bias, cos_t, sin_t, cross, is_moe(b->c, i));
		leave_layer(b);
		tag_layer(b, start, first + i);
	}
	return x;
}

/* logits [B,S,V] of hidden h [B,S,D] -> f32 */
static ValueId lm_logits(Builder *b, ValueId h, ValueId table)
{
	const ModelConfig *c = b->c;
	ValueId lg;
	if (c->tied_embed) {
		if (c->family == FAMILY_ENCDEC) /* T5/Mesh TF: rescale before tied logits */
			h = ir_binary(b->m, OP_MUL, h,
			              ir_const(b->m, 1.0 / sqrt((double)c->d_model), *vtype(b, h)));
		lg = ir_dot(b->m, h, table, 1, (int64_t[]){2}, (int64_t[]){1}, 0, NULL, NULL);
	} else {
		lg = ir_matmul(b->m, h, weight(b, "lm_head/w", TY(b->dt, c->d_model, c->vocab)));
	}
	return b->dt == DT_F32 ? lg : ir_convert(b->m, lg, DT_F32);
}

/* The relative position bias of one stack, [KV,S,G,T] (plus mask if any). */
static ValueId rel_bias(Builder *b, const char *stack_name, int64_t s, ValueId mask)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	int64_t H = c->heads, KV = c->kv_heads, G = H / KV;
	char nm[64];
	snprintf(nm, sizeof nm, "rel_buckets_%s", stack_name);
	ValueId buckets = input(b, nm, TY(DT_S32, s, s));
	snprintf(nm, sizeof nm, "%s/rel_bias", stack_name);
	ValueId table = weight(b, nm, TY(b->dt, c->rel_buckets, H));
	ValueId bias = ir_gather(m, table, buckets);                  /* [S,T,H] */
	bias = ir_transpose(m, bias, (int64_t[]){2, 0, 1});           /* [H,S,T] */
	if (mask >= 0)
		bias = ir_binary(m, OP_ADD, bias, bcast(b, mask, *vtype(b, bias), DIMS(1, 2)));
	bias = ir_reshape(m, bias, DIMS(KV, G, s, s));
	return ir_transpose(m, bias, (int64_t[]){0, 2, 1, 3});       /* [KV,S,G,T] */
}

static ValueId add_aux(Builder *b, ValueId loss)
{
	return b->aux >= 0 ? ir_binary(b->m, OP_ADD, loss, b->aux) : loss;
}

static void build_decoder(Builder *b, int64_t B, int64_t S)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	ValueId tokens = input(b, "tokens", TY(DT_S32, B, S));
	ValueId labels = input(b, "labels", TY(DT_S32, B, S));
	ValueId cos_t = -1, sin_t = -1;
	if (c->pos == POS_ROTARY) {
		cos_t = input(b, "rope_cos", TY(b->dt, S, c->rotary_dims));
		sin_t = input(b, "rope_sin", TY(b->dt, S, c->rotary_dims));
	}
	ValueId table = weight(b, "embed/tokens", TY(b->dt, c->vocab, c->d_model));
	ValueId x = embed_tokens(b, table, tokens);
	if (c->pos == POS_LEARNED)
		x = add_learned_positions(b, x, weight(b, "embed/positions",
		                                       TY(b->dt, c->max_pos, c->d_model)));
	ValueId bias = causal_mask(b, S);
	if (c->pos == POS_RELATIVE)
		bias = rel_bias(b, "dec", S, bias);
	x = stack(b, x, c->dec_layers, 0, bias, cos_t, sin_t, -1);
	x = norm(b, x, "final_norm");
	ir_output(m, add_aux(b, cross_entropy(b, lm_logits(b, x, table), labels)));
}

static void build_encdec(Builder *b, int64_t B, int64_t S, int64_t SD)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	ValueId tokens = input(b, "tokens", TY(DT_S32, B, S));
	ValueId dtokens = input(b, "dec_tokens", TY(DT_S32, B, SD));
	ValueId labels = input(b, "labels", TY(DT_S32, B, SD));
	ValueId table = weight(b, "embed/tokens", TY(b->dt, c->vocab, c->d_model));
	ValueId pos = -1;
	if (c->pos == POS_LEARNED)
		pos = weight(b, "embed/positions", TY(b->dt, c->max_pos, c->d_model));

	ValueId x = embed_tokens(b, table, tokens);
	if (pos >= 0)
		x = add_learned_positions(b, x, pos);
	ValueId ebias = c->pos == POS_RELATIVE ? rel_bias(b, "enc", S, -1) : -1;
	x = stack(b, x, c->enc_layers, 0, ebias, -1, -1, -1);
	ValueId enc = norm(b, x, "enc/final_norm");

	ValueId y = embed_tokens(b, table, dtokens);
	if (pos >= 0)
		y = add_learned_positions(b, y, pos);
	ValueId dbias = causal_mask(b, SD);
	if (c->pos == POS_RELATIVE)
		dbias = rel_bias(b, "dec", SD, dbias);
	y = stack(b, y, c->dec_layers, c->enc_layers, dbias, -1, -1, enc);
	y = norm(b, y, "dec/final_norm");
	ir_output(m, add_aux(b, cross_entropy(b, lm_logits(b, y, table), labels)));
}

/* images [B,H,W,C] -> patches [B,N,p*p*C] -> [B,N,D] */
static ValueId patch_embed(Builder *b, ValueId img)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	int64_t B = vtype(b, img)->dims[0], p = c->patch, n = c->image_size / p, C = c->channels;
	ValueId x = ir_reshape(m, img, DIMS(B, n, p, n, p, C));
	x = ir_transpose(m, x, (int64_t[]){0, 1, 3, 2, 4, 5});
	x = ir_reshape(m, x, DIMS(B, n * n, p * p * C));
	return linear(b, x, "embed/patch", 1, &c->d_model);
}

static ValueId class_head(Builder *b, ValueId pooled)
{
	ValueId lg = linear(b, pooled, "head", 1, &b->c->classes);
	return b->dt == DT_F32 ? lg : ir_convert(b->m, lg, DT_F32);
}

static void build_vit(Builder *b, int64_t B)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	int64_t D = c->d_model, N = model_tokens_per_image(c);
	ValueId img = input(b, "images", TY(b->dt, B, c->image_size, c->image_size, c->channels));
	ValueId labels = input(b, "labels", TY(DT_S32, B));
	ValueId x = patch_embed(b, img);
	ValueId cls = weight(b, "embed/cls", TY(b->dt, D));
	ValueId parts[2] = {bcast(b, cls, TY(b->dt, B, 1, D), DIMS(2)), x};
	x = ir_concat(m, 2, parts, 1);
	if (c->pos == POS_LEARNED) {
		ValueId pos = weight(b, "embed/positions", TY(b->dt, N + 1, D));
		x = ir_binary(m, OP_ADD, x, bcast(b, pos, *vtype(b, x), DIMS(1, 2)));
	}
	x = stack(b, x, c->enc_layers, 0, -1, -1, -1, -1);
	x = norm(b, x, "final_norm");
	x = ir_slice(m, x, (int64_t[]){0, 0, 0}, (int64_t[]){B, 1, D});
	x = ir_reshape(m, x, DIMS(B, D));
	ir_output(m, cross_entropy(b, class_head(b, x), labels));
}

static void build_mixer(Builder *b, int64_t B)
{
	const ModelConfig *c = b->c;
	Module *m = b->m;
	int64_t D = c->d_model, N = model_tokens_per_image(c);
	ValueId img = input(b, "images", TY(b->dt, B, c->image_size, c->image_size, c->channels));
	ValueId labels = input(b, "labels", TY(DT_S32, B));
	ValueId x = patch_embed(b, img);
	for (int i = 0; i < c->enc_layers; i++) {
		ValueId start = m->ninsts;
		enter_layer(b, i);
		/* token mixing: an MLP over the N patches of each channel */
		ValueId h = ir_transpose(m, norm(b, x, "norm1"), (int64_t[]){0, 2, 1}); /* [B,D,N] */
		h = activate(b, linear(b, h, "token_mlp/wi", 1, &c->token_mlp), ACT_GELU);
		h = linear(b, h, "token_mlp/wo", 1, &N);
		x = residual(b, x, ir_transpose(m, h, (int64_t[]){0, 2, 1}));
		/* channel mixing */
		x = residual(b, x, mlp(b, norm(b, x, "norm2"), 0));
		leave_layer(b);
		tag_layer(b, start, i);
	}
	x = norm(b, x, "final_norm");
	ValueId pooled = ir_binary(m, OP_MUL, ir_reduce(m, OP_REDUCE_SUM, x, DIMS(1)),
	                           ir_const(m, 1.0 / (double)N, TY(b->dt, B, D)));
	ir_output(m, cross_entropy(b, class_head(b, pooled), labels));
}

Module *model_build(const ModelConfig *c, const BuildOptions *o, Diag *d)
{
	if (model_config_check(c, NULL, d))
		return NULL;
	BuildOptions opt;
	build_options_default(&opt);
	if (o)
		opt = *o;
	int64_t B = opt.batch ? opt.batch : 1;
	int64_t S = opt.seq ? opt.seq : c->seq_len;
	int64_t SD = opt.dec_seq ? opt.dec_seq : c->dec_seq_len;
	if (B < 0 || S < 0 || SD < 0) {
		diag_error(d, NULL, 0, 0, "batch and sequence lengths must be positive");
		return NULL;
	}
	if (opt.dtype != DT_F32 && opt.dtype != DT_BF16 && opt.dtype != DT_F16) {
		diag_error(d, NULL, 0, 0, "model dtype must be f32, bf16 or f16, not %s",
		           dtype_name(opt.dtype));
		return NULL;
	}
	if (c->pos == POS_LEARNED && (c->family == FAMILY_DECODER || c->family == FAMILY_ENCDEC) &&
	    (S > c->max_pos || (c->family == FAMILY_ENCDEC && SD > c->max_pos))) {
		diag_error(d, NULL, 0, 0,
		           "model '%s': sequence length %lld exceeds max_positions %lld", c->name,
		           (long long)(S > SD ? S : SD), (long long)c->max_pos);
		return NULL;
	}
	Builder b;
	memset(&b, 0, sizeof b);
	/* module names are [A-Za-z0-9_.]+ (docs/ir.md) */
	char mname[sizeof c->name];
	snprintf(mname, sizeof mname, "%s", c->name);
	for (char *p = mname; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.')
			*p = '_';
	b.m = ir_module_new(mname, LEVEL_GRAPH);
	b.c = c;
	b.dt = opt.dtype;
	b.aux = -1;
	switch (c->family) {
	case FAMILY_DECODER:
		build_decoder(&b, B, S);
		break;
	case FAMILY_ENCDEC:
		build_encdec(&b, B, S, SD);
		break;
	case FAMILY_ENCODER:
		build_vit(&b, B);
		break;
	case FAMILY_MIXER:
		build_mixer(&b, B);
		break;
	case FAMILY_COUNT:
		ir_die("bad family");
	}
	return b.m;
}
