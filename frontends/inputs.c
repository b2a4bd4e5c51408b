/*
 * Values for the parameters of a built model, so the reference interpreter
 * (and tests) can run it: the rotary and relative-position tables that
 * model_build takes as role="input" parameters, and seeded random weights and
 * data. Parameters are recognised by their name attribute (docs/models.md).
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void model_rope_tables(const ModelConfig *c, int64_t seq, float *cos_t, float *sin_t)
{
	int64_t rd = c->rotary_dims, half = rd / 2;
	for (int64_t p = 0; p < seq; p++)
		for (int64_t i = 0; i < half; i++) {
			double freq = pow(c->rotary_base, -2.0 * (double)i / (double)rd);
			double a = (double)p * freq;
			cos_t[p * rd + i] = cos_t[p * rd + half + i] = (float)cos(a);
			sin_t[p * rd + i] = sin_t[p * rd + half + i] = (float)sin(a);
		}
}

/* T5's bucketing of a relative position (key - query): exact buckets for
 * small distances, logarithmic ones up to max_distance; bidirectional
 * buckets give the upper half to keys after the query. */
static int rel_bucket(int64_t rel, int bidirectional, int nb, int max_dist)
{
	int ret = 0;
	int64_t n;
	if (bidirectional) {
		nb /= 2;
		if (rel > 0)
			ret += nb;
		n = rel < 0 ? -rel : rel;
	} else {
		n = rel < 0 ? -rel : 0;
	}
	int max_exact = nb / 2;
	if (n < max_exact)
		return ret + (int)n;
	int large = max_exact + (int)(log((double)n / max_exact) /
	                              log((double)max_dist / max_exact) * (nb - max_exact));
	if (large > nb - 1)
		large = nb - 1;
	return ret + large;
}

void model_rel_buckets(const ModelConfig *c, int bidirectional, int64_t q_len,
                       int64_t k_len, float *out)
{
	for (int64_t i = 0; i < q_len; i++)
		for (int64_t j = 0; j < k_len; j++)
			out[i * k_len + j] =
				(float)rel_bucket(j - i, bidirectional, c->rel_buckets, c->rel_max_distance);
}

/* splitmix64: small, seedable, good enough for test data */
static uint64_t next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double uniform(uint64_t *s) /* [0, 1) */
{
	return (double)(next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void fill(Tensor *t, const Inst *in, const ModelConfig *c, uint64_t *rng)
{
	const char *name = ir_attr_str(in, "name", "");
	int64_t n = type_numel(&t->type);
	float *x = t->data;
	if (!strcmp(name, "tokens") || !strcmp(name, "dec_tokens") || !strcmp(name, "labels")) {
		int64_t range = c->family == FAMILY_ENCODER || c->family == FAMILY_MIXER ? c->classes
		                                                                       : c->vocab;
		for (int64_t i = 0; i < n; i++)
			x[i] = (float)(int64_t)(uniform(rng) * (double)range);
	} else if (!strcmp(name, "images")) {
		for (int64_t i = 0; i < n; i++)
			x[i] = (float)(2 * uniform(rng) - 1);
	} else if (!strcmp(name, "rope_cos") || !strcmp(name, "rope_sin")) {
		int64_t seq = t->type.dims[0];
		float *other = malloc(sizeof(float) * (size_t)n);
		if (!other)
			ir_die("out of memory");
		if (!strcmp(name, "rope_cos"))
			model_rope_tables(c, seq, x, other);
		else
			model_rope_tables(c, seq, other, x);
		free(other);
	} else if (!strncmp(name, "rel_buckets_", 12)) {
		model_rel_buckets(c, !strcmp(name + 12, "enc"), t->type.dims[0], t->type.dims[1], x);
	} else if (ends_with(name, "/scale")) {
		for (int64_t i = 0; i < n; i++)
			x[i] = 1;
	} else if (ends_with(name, "/offset") || ends_with(name, "/b")) {
		memset(x, 0, sizeof(float) * (size_t)n);
	} else {
		/* tables (embeddings, positions, class token, relative bias) and
		 * the output heads (untied LM head, image classifier, which ViT
		 * initialises to zero): std 0.02, so initial logits are small;
		 * other matrices: variance 1 / fan_in (the contracted dims) */
		double std = 0.02;
		if (ends_with(name, "/w") && strcmp(name, "lm_head/w") != 0 &&
		    strcmp(name, "head/w") != 0) {
			int64_t fan_in = t->type.dims[0];
			if (strstr(name, "/experts/"))
				fan_in = t->type.dims[1];
			else if (ends_with(name, "/o/w"))
				fan_in = t->type.dims[0] * t->type.dims[1];
			std = 1.0 / sqrt((double)fan_in);
		}
		double a = std * sqrt(3.0);
		for (int64_t i = 0; i < n; i++)
			x[i] = (float)((2 * uniform(rng) - 1) * a);
	}
}

Tensor *model_random_inputs(const Module *m, const ModelConfig *c, uint64_t seed, int *n)
{
	int np = 0;
	for (int i = 0; i < m->ninsts; i++)
		np += m->insts[i].op == OP_PARAMETER;
	Tensor *ts = calloc((size_t)(np ? np : 1), sizeof *ts);
	if (!ts)
		ir_die("out of memory");
	uint64_t rng = seed;
	int k = 0;
	for (int i = 0; i < m->ninsts; i++) {
		const Inst *in = &m->insts[i];
		if (in->op != OP_PARAMETER)
			continue;
		Tensor *t = &ts[k++];
		t->type = in->type;
		int64_t numel = type_numel(&in->type);
		t->data = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
		if (!t->data)
			ir_die("out of memory (%lld floats)", (long long)numel);
		fill(t, in, c, &rng);
	}
	*n = np;
	return ts;
}

void model_free_inputs(Tensor *t, int n)
{
	if (!t)
		return;
	for (int i = 0; i < n; i++)
		free(t[i].data);
	free(t);
}
