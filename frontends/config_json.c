/*
 * Our model file format (docs/models.md): one JSON object whose keys are the
 * ModelConfig fields, with three nested objects ("moe", "image", "mixer").
 * The reader is table-driven: each key names a field, its kind and its
 * offset, so the reader, the writer and the docs list the same keys. Unknown
 * keys and values are errors at their line and column. Omitted keys take
 * model_config_defaults(); kv_heads, head_dim and rotary_dims default to
 * heads, d_model / heads and head_dim.
 */
#include "config_io.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum FieldKind { F_INT, F_I64, F_NUM, F_BOOL, F_ENUM, F_NAME, F_LAYERS } FieldKind;

typedef struct Field {
	const char *key;
	FieldKind kind;
	size_t off;
	const char *const *names; /* F_ENUM */
	int nnames;
	int64_t min;              /* F_INT, F_I64 */
} Field;

static const char *const fam_names[] = {"decoder", "encoder_decoder", "encoder", "mixer"};
static const char *const act_names[] = {"relu", "gelu", "swiglu", "geglu"};
static const char *const blk_names[] = {"serial", "parallel", "parallel_two_norms"};
static const char *const pos_names[] = {"none", "learned", "relative", "rotary"};
static const char *const nrm_names[] = {"layer", "rms"};

#define OFF(f) offsetof(ModelConfig, f)
#define ENUM(f, t) F_ENUM, OFF(f), t, (int)(sizeof t / sizeof t[0]), 0

static const Field top_fields[] = {
	{"name", F_NAME, OFF(name), NULL, 0, 0},
	{"family", ENUM(family, fam_names)},
	{"layers", F_LAYERS, 0, NULL, 0, 1},
	{"encoder_layers", F_INT, OFF(enc_layers), NULL, 0, 0},
	{"decoder_layers", F_INT, OFF(dec_layers), NULL, 0, 0},
	{"d_model", F_I64, OFF(d_model), NULL, 0, 1},
	{"heads", F_I64, OFF(heads), NULL, 0, 0},
	{"kv_heads", F_I64, OFF(kv_heads), NULL, 0, 0},
	{"head_dim", F_I64, OFF(head_dim), NULL, 0, 0},
	{"d_ff", F_I64, OFF(d_ff), NULL, 0, 1},
	{"vocab", F_I64, OFF(vocab), NULL, 0, 0},
	{"max_positions", F_I64, OFF(max_pos), NULL, 0, 0},
	{"seq_len", F_I64, OFF(seq_len), NULL, 0, 0},
	{"decoder_seq_len", F_I64, OFF(dec_seq_len), NULL, 0, 0},
	{"activation", ENUM(act, act_names)},
	{"block", ENUM(block, blk_names)},
	{"positions", ENUM(pos, pos_names)},
	{"rotary_dims", F_I64, OFF(rotary_dims), NULL, 0, 0},
	{"rotary_base", F_NUM, OFF(rotary_base), NULL, 0, 0},
	{"relative_buckets", F_INT, OFF(rel_buckets), NULL, 0, 2},
	{"relative_max_distance", F_INT, OFF(rel_max_distance), NULL, 0, 2},
	{"tied_embeddings", F_BOOL, OFF(tied_embed), NULL, 0, 0},
	{"bias", F_BOOL, OFF(bias), NULL, 0, 0},
	{"norm", ENUM(norm, nrm_names)},
	{"norm_bias", F_BOOL, OFF(norm_bias), NULL, 0, 0},
	{"norm_eps", F_NUM, OFF(norm_eps), NULL, 0, 0},
};
static const Field moe_fields[] = {
	{"experts", F_INT, OFF(experts), NULL, 0, 0},
	{"every", F_INT, OFF(moe_every), NULL, 0, 1},
	{"top_k", F_INT, OFF(top_k), NULL, 0, 1},
	{"capacity_factor", F_NUM, OFF(capacity_factor), NULL, 0, 0},
	{"expert_capacity", F_I64, OFF(expert_capacity), NULL, 0, 0},
	{"aux_loss_coef", F_NUM, OFF(aux_loss_coef), NULL, 0, 0},
};
static const Field image_fields[] = {
	{"size", F_I64, OFF(image_size), NULL, 0, 0},
	{"patch", F_I64, OFF(patch), NULL, 0, 0},
	{"channels", F_I64, OFF(channels), NULL, 0, 1},
	{"classes", F_I64, OFF(classes), NULL, 0, 1},
};
static const Field mixer_fields[] = {
	{"token_mlp", F_I64, OFF(token_mlp), NULL, 0, 0},
};

typedef struct Group {
	const char *key; /* NULL: the top level */
	const Field *fields;
	int n;
} Group;

#define GROUP(k, f) {k, f, (int)(sizeof f / sizeof f[0])}
static const Group groups[] = {
	GROUP(NULL, top_fields), GROUP("moe", moe_fields), GROUP("image", image_fields),
	GROUP("mixer", mixer_fields),
};
enum { NGROUPS = sizeof groups / sizeof groups[0] };

static int set_field(const JsonCtx *x, const Field *f, json_t *v, ModelConfig *c,
                     int64_t *layers)
{
	char *base = (char *)c;
	int64_t n;
	int k;
	switch (f->kind) {
	case F_INT:
		if (json_get_int(x, f->key, v, f->min, &n))
			return -1;
		if (n > 1000000000)
			return json_key_error(x, f->key, "'%s' is too large", f->key);
		*(int *)(base + f->off) = (int)n;
		return 0;
	case F_I64:
		return json_get_int(x, f->key, v, f->min, (int64_t *)(base + f->off));
	case F_NUM:
		return json_get_num(x, f->key, v, (double *)(base + f->off));
	case F_BOOL:
		return json_get_bool(x, f->key, v, (int *)(base + f->off));
	case F_ENUM:
		if (json_get_enum(x, f->key, v, f->names, f->nnames, &k))
			return -1;
		*(int *)(base + f->off) = k;
		return 0;
	case F_NAME: {
		const char *s;
		if (json_get_str(x, f->key, v, &s))
			return -1;
		if (strlen(s) == 0 || strlen(s) >= sizeof c->name)
			return json_key_error(x, f->key, "'name' must have 1 to %zu characters",
			                      sizeof c->name - 1);
		strcpy(c->name, s);
		return 0;
	}
	case F_LAYERS:
		return json_get_int(x, f->key, v, 1, layers);
	}
	return -1;
}

static int read_group(JsonCtx *x, const Group *g, json_t *obj, ModelConfig *c, int64_t *layers)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		const Field *f = NULL;
		for (int i = 0; i < g->n; i++)
			if (!strcmp(g->fields[i].key, key))
				f = &g->fields[i];
		if (f) {
			if (set_field(x, f, v, c, layers))
				return -1;
			continue;
		}
		const Group *sub = NULL;
		for (int i = 1; i < NGROUPS && !g->key; i++)
			if (!strcmp(groups[i].key, key))
				sub = &groups[i];
		if (!sub) {
			if (g->key)
				return json_key_error(x, key, "unknown key '%s' in '%s'", key, g->key);
			return json_key_error(x, key, "unknown key '%s'", key);
		}
		if (!json_is_object(v))
			return json_key_error(x, key, "'%s' must be an object", key);
		x->path[x->npath++] = key;
		int r = read_group(x, sub, v, c, layers);
		x->npath--;
		if (r)
			return -1;
	}
	return 0;
}

int model_parse_json(const char *text, const char *file, ModelConfig *c, Diag *d)
{
	json_t *root = json_parse_text(text, file, d);
	if (!root)
		return -1;
	JsonCtx x = {.text = text, .file = file, .d = d};
	model_config_defaults(c);
	int64_t layers = 0;
	int r = read_group(&x, &groups[0], root, c, &layers);
	if (r == 0 && layers) {
		if (c->enc_layers || c->dec_layers)
			r = json_key_error(&x, "layers",
			                   "give either 'layers' or 'encoder_layers'/'decoder_layers'");
		else if (c->family == FAMILY_ENCDEC)
			r = json_key_error(&x, "layers", "an encoder_decoder needs 'encoder_layers' and "
			                                 "'decoder_layers', not 'layers'");
		else if (layers > 100000)
			r = json_key_error(&x, "layers", "'layers' is too large");
		else if (c->family == FAMILY_DECODER)
			c->dec_layers = (int)layers;
		else
			c->enc_layers = (int)layers;
	}
	if (r == 0) {
		if (!c->kv_heads)
			c->kv_heads = c->heads;
		if (!c->head_dim && c->heads)
			c->head_dim = c->d_model / c->heads;
		if (!c->rotary_dims && c->pos == POS_ROTARY)
			c->rotary_dims = c->head_dim;
		r = model_config_check(c, file, d);
	}
	json_decref(root);
	return r;
}

static json_t *field_json(const ModelConfig *c, const Field *f)
{
	const char *base = (const char *)c;
	switch (f->kind) {
	case F_INT:
	case F_ENUM:
		if (f->kind == F_ENUM)
			return json_string(f->names[*(const int *)(base + f->off)]);
		return json_integer(*(const int *)(base + f->off));
	case F_I64:
		return json_integer((json_int_t) * (const int64_t *)(base + f->off));
	case F_NUM:
		return json_real(*(const double *)(base + f->off));
	case F_BOOL:
		return json_boolean(*(const int *)(base + f->off));
	case F_NAME:
		return json_string(c->name);
	case F_LAYERS:
		break;
	}
	return NULL;
}

char *model_config_to_json(const ModelConfig *c)
{
	json_t *root = json_object();
	for (int g = 0; g < NGROUPS; g++) {
		json_t *obj = g == 0 ? root : json_object();
		for (int i = 0; i < groups[g].n; i++) {
			json_t *v = field_json(c, &groups[g].fields[i]);
			if (v)
				json_object_set_new(obj, groups[g].fields[i].key, v);
		}
		if (g)
			json_object_set_new(root, groups[g].key, obj);
	}
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(root);
	if (!s)
		ir_die("out of memory");
	size_t n = strlen(s);
	char *out = malloc(n + 2);
	if (!out)
		ir_die("out of memory");
	memcpy(out, s, n);
	out[n] = '\n';
	out[n + 1] = 0;
	free(s);
	return out;
}
