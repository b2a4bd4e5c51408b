/*
 * Internal to the graph builder (build.c, blocks.c): a Builder carries the
 * module under construction, the config, the dtype and the current layer, and
 * names every weight it creates "<prefix><name>".
 */
#ifndef PODSIM_FRONTENDS_BUILD_H
#define PODSIM_FRONTENDS_BUILD_H

#include "model.h"

typedef struct Builder {
	Module *m;
	const ModelConfig *c;
	DType dt;          /* weights and activations */
	char prefix[32];   /* weight name prefix, "layer3/" inside layer 3 */
	ValueId aux;       /* f32 scalar: sum of MoE load-balancing losses, or -1 */
} Builder;

Type ty(DType dt, int rank, const int64_t *dims);
#define NDIMS(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TY(dt, ...) ty((dt), NDIMS(__VA_ARGS__), (int64_t[]){__VA_ARGS__})
#define DIMS(...) NDIMS(__VA_ARGS__), (int64_t[]){__VA_ARGS__}

static inline const Type *vtype(const Builder *b, ValueId v) { return &b->m->insts[v].type; }

ValueId weight(Builder *b, const char *name, Type t);
ValueId input(Builder *b, const char *name, Type t);
/* broadcast v to t with operand dim i -> result dim dims[i] */
ValueId bcast(Builder *b, ValueId v, Type t, int n, const int64_t *dims);
/* x [.., K] times a new weight <name>/w [K, out..] (+ <name>/b [out..]). */
ValueId linear(Builder *b, ValueId x, const char *name, int nout, const int64_t *out);
ValueId norm(Builder *b, ValueId x, const char *name);
ValueId activate(Builder *b, ValueId x, Activation act);
/* Self- or cross-attention. xq [B,S,D], xkv [B,T,D]; bias: -1, [S,T], or
 * [KV,S,G,T] added to the logits; rope_cos/rope_sin [S,rd] or -1. */
ValueId attention(Builder *b, ValueId xq, ValueId xkv, ValueId bias, ValueId rope_cos,
                  ValueId rope_sin, const char *name);
/* Dense MLP, or a mixture of experts if moe. x [B,S,D] -> [B,S,D]. */
ValueId mlp(Builder *b, ValueId x, int moe);
/* Softmax cross-entropy: logits f32 [N.., V], labels s32 [N..] -> f32 scalar mean. */
ValueId cross_entropy(Builder *b, ValueId logits, ValueId labels);
/* Additive causal mask [S,S]: 0 on and below the diagonal, -1e9 above. */
ValueId causal_mask(Builder *b, int64_t s);

#endif
