/*
 * The IR's small shared pieces: diagnostics, the arena, the op/dtype/unit
 * name tables, types, meshes, attributes and copying an instruction between
 * modules (ir_clone_inst, which shares the attribute key table). Everything
 * else in ir/ builds on these.
 */
#include "ir.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- Diagnostics ------------------------------------------------------- */

void diag_init(Diag *d)
{
	d->nerrors = 0;
	d->msg[0] = 0;
}

void diag_error(Diag *d, const char *file, int line, int col, const char *fmt, ...)
{
	if (d->nerrors++ > 0)
		return;
	int n;
	if (line > 0)
		n = snprintf(d->msg, sizeof d->msg, "%s:%d:%d: error: ",
		             file ? file : "<input>", line, col);
	else if (file)
		n = snprintf(d->msg, sizeof d->msg, "%s: error: ", file);
	else /* not about a file: a flag or a setting; the caller names it */
		n = snprintf(d->msg, sizeof d->msg, "error: ");
	if (n < 0 || (size_t)n >= sizeof d->msg)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->msg + n, sizeof d->msg - (size_t)n, fmt, ap);
	va_end(ap);
}

_Noreturn void ir_die_at(const char *file, int line, const char *fmt, ...)
{
	fprintf(stderr, "%s:%d: internal error: ", file, line);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* ---- Arena --------------------------------------------------------------
 * A list of blocks; big requests get a block of their own. Blocks come from
 * malloc unzeroed: arena_alloc zeroes only the bytes it hands out, so a
 * module that uses a few hundred bytes of its first block does not pay for
 * (or touch the pages of) the rest. arena_alloc_uninit skips even that, for
 * callers that overwrite everything at once (copies, strings). */

struct ArenaBlock {
	ArenaBlock *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 64 * 1024 };

void arena_init(Arena *a)
{
	a->head = NULL;
	a->used_bytes = 0;
}

void arena_free(Arena *a)
{
	ArenaBlock *b = a->head;
	while (b) {
		ArenaBlock *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->used_bytes = 0;
}

static void *arena_new_block(Arena *a, size_t n)
{
	size_t size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
	ArenaBlock *b = malloc(sizeof *b + size);
	if (!b)
		ir_die("out of memory (%zu bytes)", size);
	b->size = size;
	b->used = n;
	a->used_bytes += n;
	if (a->head && size == n) {
		/* A big block goes behind the head so the head's free space
		 * stays usable. */
		b->next = a->head->next;
		a->head->next = b;
	} else {
		b->next = a->head;
		a->head = b;
	}
	return b->data;
}

void *arena_alloc_uninit(Arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	ArenaBlock *b = a->head;
	if (!b || b->size - b->used < n)
		return arena_new_block(a, n);
	void *p = b->data + b->used;
	b->used += n;
	a->used_bytes += n;
	return p;
}

void *arena_alloc(Arena *a, size_t n)
{
	void *p = arena_alloc_uninit(a, n);
	memset(p, 0, n);
	return p;
}

void *arena_grow(Arena *a, void *old, size_t oldn, size_t newn)
{
	void *p = arena_alloc_uninit(a, newn);
	size_t keep = old && oldn ? (oldn < newn ? oldn : newn) : 0;
	if (keep)
		memcpy(p, old, keep);
	memset((char *)p + keep, 0, newn - keep);
	return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
	char *p = arena_alloc_uninit(a, n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *arena_strdup(Arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void arena_adopt(Arena *dst, Arena *src)
{
	ArenaBlock *first = src->head;
	if (!first)
		return;
	if (!dst->head) {
		dst->head = first;
	} else { /* behind dst's head, which keeps its free space */
		ArenaBlock *last = first;
		while (last->next)
			last = last->next;
		last->next = dst->head->next;
		dst->head->next = first;
	}
	dst->used_bytes += src->used_bytes;
	arena_init(src);
}

/* ---- Name tables --------------------------------------------------------*/

const OpInfo ir_ops[OP_COUNT] = {
#define OP(e, text, nargs, flags, vjp, unit) [OP_##e] = {text, nargs, flags, UNIT_##unit},
#include "ops.def"
#undef OP
};

static const char *const unit_names[UNIT_COUNT] = {
	[UNIT_NONE] = "none", [UNIT_MXU] = "mxu", [UNIT_VPU] = "vpu",
	[UNIT_DMA] = "dma",   [UNIT_ICI] = "ici", [UNIT_DCN] = "dcn",
};
static const char *const dtype_names[DT_COUNT] = {
	[DT_F32] = "f32", [DT_BF16] = "bf16", [DT_F16] = "f16",
	[DT_S32] = "s32", [DT_S8] = "s8",     [DT_PRED] = "pred",
};
static const int dtype_size[DT_COUNT] = {
	[DT_F32] = 4, [DT_BF16] = 2, [DT_F16] = 2, [DT_S32] = 4, [DT_S8] = 1, [DT_PRED] = 1,
};
static const char *const mem_names[MEM_COUNT] = {
	[MEM_NONE] = "none", [MEM_HBM] = "hbm", [MEM_VMEM] = "vmem", [MEM_CMEM] = "cmem",
};

static int lookup(const char *const *names, int count, const char *s, size_t n)
{
	for (int i = 0; i < count; i++)
		if (names[i] && strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
			return i;
	return -1;
}

const char *op_name(Op op)
{
	assert(op >= 0 && op < OP_COUNT);
	return ir_ops[op].name;
}

/* The length of each op's name, known at compile time. */
static const unsigned char op_name_len[OP_COUNT] = {
#define OP(e, text, nargs, flags, vjp, unit) [OP_##e] = sizeof(text) - 1,
#include "ops.def"
#undef OP
};

int op_from_name(const char *s, size_t n)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (op_name_len[i] == n && memcmp(ir_ops[i].name, s, n) == 0)
			return i;
	return -1;
}

const char *unit_name(Unit u) { return unit_names[u]; }
int unit_from_name(const char *s, size_t n) { return lookup(unit_names, UNIT_COUNT, s, n); }
const char *dtype_name(DType t) { return dtype_names[t]; }
int dtype_from_name(const char *s, size_t n) { return lookup(dtype_names, DT_COUNT, s, n); }
int dtype_bytes(DType t) { return dtype_size[t]; }
int dtype_is_float(DType t) { return t == DT_F32 || t == DT_BF16 || t == DT_F16; }
const char *mem_name(MemSpace m) { return mem_names[m]; }
int mem_from_name(const char *s, size_t n) { return lookup(mem_names, MEM_COUNT, s, n); }

/* ---- Types and meshes ---------------------------------------------------*/

int64_t type_numel(const Type *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return n;
}

int64_t type_bytes(const Type *t)
{
	return type_numel(t) * dtype_bytes(t->dtype);
}

int type_same_shape(const Type *a, const Type *b)
{
	if (a->dtype != b->dtype || a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->dims[i] != b->dims[i])
			return 0;
	return 1;
}

int type_equal(const Type *a, const Type *b)
{
	if (!type_same_shape(a, b))
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->shard[i] != b->shard[i])
			return 0;
	return 1;
}

int mesh_axis_index(const Mesh *m, const char *name, size_t n)
{
	for (int i = 0; i < m->naxes; i++) {
		const char *a = m->axes[i].name; /* first letters differ mostly */
		if (n && a[0] == name[0] && strncmp(a, name, n) == 0 && a[n] == 0)
			return i;
		if (!n && !a[0])
			return i;
	}
	return -1;
}

int64_t mesh_size(const Mesh *m)
{
	int64_t n = 1;
	for (int i = 0; i < m->naxes; i++)
		n *= (int64_t)m->axes[i].ici * m->axes[i].dcn;
	return n;
}

int64_t mesh_axes_size(const Mesh *m, uint32_t axes)
{
	int64_t n = 1;
	for (int i = 0; i < m->naxes; i++)
		if (axes & (1u << i))
			n *= (int64_t)m->axes[i].ici * m->axes[i].dcn;
	return n;
}

/* ---- Attributes ---------------------------------------------------------
 * Keys the passes use are stored as pointers into one static table rather
 * than copied into each module's arena: a copied instruction keeps the
 * pointer, and a lookup whose key is the same literal (the linker merges
 * equal string constants) matches without comparing characters. Any other
 * key is copied as before, and lookups always fall back to comparing. */

/* Slot of a key: no two keys of the table share one. Reads at most the
 * first five characters, none past the terminator. */
static unsigned key_hash(const char *k)
{
	unsigned c3 = 0, c4 = 0;
	if (k[0] && k[1] && k[2]) {
		c3 = (unsigned char)k[3];
		if (c3)
			c4 = (unsigned char)k[4];
	}
	return ((unsigned char)k[0] + 6u * c3 + 13u * c4) % 64u;
}

static const char *const attr_keys[64] = {
	[3] = "start",
	[6] = "limit",
	[12] = "name",
	[13] = "split_dim",
	[15] = "scatter_add",
	[16] = "role",
	[19] = "axes",
	[20] = "layer",
	[21] = "value",
	[22] = "dims",
	[28] = "remat",
	[31] = "index",
	[32] = "lhs_batch",
	[34] = "concat_dim",
	[36] = "dim",
	[38] = "rhs_batch",
	[41] = "logical",
	[45] = "lhs_contract",
	[46] = "optimizer",
	[47] = "op",
	[51] = "rhs_contract",
	[52] = "to",
	[55] = "reduce",
	[59] = "shift",
	[61] = "partition",
	[62] = "perm",
	[63] = "fusion",
};

/* The table's copy of key, or NULL. */
static const char *static_key(const char *key)
{
	const char *k = attr_keys[key_hash(key)];
	return k && (k == key || strcmp(k, key) == 0) ? k : NULL;
}

static inline int is_static_key(const char *key)
{
	return attr_keys[key_hash(key)] == key;
}

int ir_attr_key_is_static(const char *key)
{
	return key && is_static_key(key);
}

/* Keys sharing a first letter (layer, lhs_contract, limit) mostly differ
 * in the second: both are checked before calling strcmp. */
static inline int key_eq(const char *a, const char *b)
{
	return a == b || (a[0] == b[0] && (a[0] == 0 || (a[1] == b[1] && strcmp(a, b) == 0)));
}

const Attr *ir_attr(const Inst *in, const char *key)
{
	for (int i = 0; i < in->nattrs; i++) /* first letters differ mostly */
		if (key_eq(in->attrs[i].key, key))
			return &in->attrs[i];
	return NULL;
}

const int64_t *ir_attr_ints(const Inst *in, const char *key, int *n)
{
	const Attr *a = ir_attr(in, key);
	if (!a || a->kind != ATTR_INTS) {
		*n = 0;
		return NULL;
	}
	*n = a->n;
	return a->ints;
}

int64_t ir_attr_int(const Inst *in, const char *key, int64_t dflt)
{
	const Attr *a = ir_attr(in, key);
	return a && a->kind == ATTR_INTS && a->n == 1 ? a->ints[0] : dflt;
}

double ir_attr_float(const Inst *in, const char *key, double dflt)
{
	const Attr *a = ir_attr(in, key);
	return a && a->kind == ATTR_FLOAT ? a->f : dflt;
}

const char *ir_attr_str(const Inst *in, const char *key, const char *dflt)
{
	const Attr *a = ir_attr(in, key);
	return a && a->kind == ATTR_STR ? a->s : dflt;
}

/* Adds or replaces key on m->insts[v] and returns the slot; extra bytes
 * (16-byte aligned) follow a new attribute array, for the value's payload
 * (*extra_p, NULL if the key existed). */
static Attr *attr_slot_extra(Module *m, ValueId v, const char *key, size_t extra,
                             void **extra_p)
{
	Inst *in = &m->insts[v];
	*extra_p = NULL;
	for (int i = 0; i < in->nattrs; i++)
		if (key_eq(in->attrs[i].key, key))
			return &in->attrs[i];
	int k = in->nattrs;
	size_t head = (sizeof(Attr) * (size_t)(k + 1) + 15) & ~(size_t)15;
	Attr *na = arena_alloc_uninit(&m->arena, head + extra);
	for (int i = 0; i < k; i++) /* a few: struct copies beat a memcpy call */
		na[i] = in->attrs[i];
	Attr *a = &na[k];
	*a = (Attr){0};
	const char *sk = static_key(key);
	a->key = sk ? sk : arena_strdup(&m->arena, key);
	in->attrs = na;
	in->nattrs = k + 1;
	if (extra)
		*extra_p = (char *)na + head;
	return a;
}

static Attr *attr_slot(Module *m, ValueId v, const char *key)
{
	void *unused;
	return attr_slot_extra(m, v, key, 0, &unused);
}

void ir_set_ints(Module *m, ValueId v, const char *key, int n, const int64_t *xs)
{
	size_t nb = sizeof(int64_t) * (size_t)(n ? n : 1);
	void *room;
	Attr *a = attr_slot_extra(m, v, key, nb, &room);
	a->kind = ATTR_INTS;
	a->n = n;
	a->ints = room ? room : arena_alloc_uninit(&m->arena, nb);
	for (int i = 0; i < n; i++)
		a->ints[i] = xs[i];
	if (!n)
		a->ints[0] = 0;
}

void ir_set_int_many(Module *m, const char *key, int n, const ValueId *vs, const int64_t *xs)
{
	const char *sk = static_key(key);
	size_t nattr = 0;
	for (int i = 0; i < n; i++) {
		const Inst *in = &m->insts[vs[i]];
		int found = 0;
		for (int k = 0; k < in->nattrs && !found; k++)
			found = key_eq(in->attrs[k].key, key);
		if (!found)
			nattr += (size_t)in->nattrs + 1;
	}
	/* one block: the new attribute arrays, then every value's integer */
	unsigned char *blk = n ? arena_alloc_uninit(&m->arena, sizeof(Attr) * nattr +
	                                                       sizeof(int64_t) * (size_t)n)
	                       : NULL;
	Attr *na = (Attr *)blk;
	int64_t *ints = (int64_t *)(blk + sizeof(Attr) * nattr);
	for (int i = 0; i < n; i++) {
		Inst *in = &m->insts[vs[i]];
		Attr *a = NULL;
		for (int k = 0; k < in->nattrs && !a; k++)
			if (key_eq(in->attrs[k].key, key))
				a = &in->attrs[k];
		if (!a) {
			int k = in->nattrs;
			for (int j = 0; j < k; j++)
				na[j] = in->attrs[j];
			a = &na[k];
			*a = (Attr){0};
			a->key = sk ? sk : arena_strdup(&m->arena, key);
			in->attrs = na;
			in->nattrs = k + 1;
			na += k + 1;
		}
		a->kind = ATTR_INTS;
		a->n = 1;
		a->ints = &ints[i];
		ints[i] = xs[i];
	}
}

void ir_set_float(Module *m, ValueId v, const char *key, double f)
{
	Attr *a = attr_slot(m, v, key);
	a->kind = ATTR_FLOAT;
	a->f = f;
}

void ir_set_str(Module *m, ValueId v, const char *key, const char *s)
{
	Attr *a = attr_slot(m, v, key);
	a->kind = ATTR_STR;
	a->s = arena_strdup(&m->arena, s);
}

void ir_set_names(Module *m, ValueId v, const char *key, int n, const char *const *names)
{
	Attr *a = attr_slot(m, v, key);
	a->kind = ATTR_NAMES;
	a->n = n;
	a->names = arena_alloc(&m->arena, sizeof(char *) * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++) {
		/* a name of the module's mesh (collectives name their axes) is
		 * shared: it lives in the same arena */
		const char *own = NULL;
		for (int k = 0; k < m->mesh.naxes && !own; k++)
			if (names[i] == m->mesh.axes[k].name)
				own = names[i];
		a->names[i] = own ? own : arena_strdup(&m->arena, names[i]);
	}
}

/* ---- Copying instructions -----------------------------------------------*/

/* One block holds a copy's attribute array, then its integer lists, then
 * its operands: one allocation per instruction instead of one per part. */
ValueId ir_clone_inst(Module *dst, const Module *src, ValueId v, const ValueId *args)
{
	if (dst->ninsts == dst->cap)
		ir_reserve(dst, dst->cap ? dst->cap * 2 : 64); /* before taking pointers */
	const Inst *si = &src->insts[v];
	Inst *ni = &dst->insts[dst->ninsts];
	*ni = *si;
	size_t nints = 0;
	for (int i = 0; i < si->nattrs; i++)
		if (si->attrs[i].kind == ATTR_INTS)
			nints += (size_t)(si->attrs[i].n ? si->attrs[i].n : 1);
	size_t bytes = sizeof(Attr) * (size_t)si->nattrs + sizeof(int64_t) * nints +
	               sizeof(ValueId) * (size_t)si->nargs;
	unsigned char *blk = bytes ? arena_alloc_uninit(&dst->arena, bytes) : NULL;
	Attr *attrs = (Attr *)blk;
	int64_t *ints = (int64_t *)(blk + sizeof(Attr) * (size_t)si->nattrs);
	if (si->nattrs) {
		ni->attrs = attrs;
		for (int i = 0; i < si->nattrs; i++) {
			const Attr *a = &si->attrs[i];
			Attr *b = &attrs[i];
			*b = *a;
			/* a static key is shared, and so is one of the same arena */
			if (dst != src && !is_static_key(a->key))
				b->key = arena_strdup(&dst->arena, a->key);
			switch (a->kind) {
			case ATTR_INTS:
				b->ints = ints;
				for (int k = 0; k < a->n; k++)
					ints[k] = a->ints[k];
				if (!a->n)
					ints[0] = 0;
				ints += a->n ? a->n : 1;
				break;
			case ATTR_STR:
				b->s = arena_strdup(&dst->arena, a->s);
				break;
			case ATTR_NAMES:
				b->names = arena_alloc(&dst->arena, sizeof(char *) * (size_t)(a->n ? a->n : 1));
				for (int k = 0; k < a->n; k++)
					b->names[k] = arena_strdup(&dst->arena, a->names[k]);
				break;
			case ATTR_FLOAT:
				break;
			}
		}
	}
	if (si->nargs) {
		ni->args = (ValueId *)ints;
		for (int k = 0; k < si->nargs; k++)
			ni->args[k] = args[k];
	}
	/* A copy inside one module must not repeat a value name. */
	ni->name = dst == src || !si->name ? NULL : arena_strdup(&dst->arena, si->name);
	return dst->ninsts++;
}

/* ---- Modules ------------------------------------------------------------*/

Module *ir_module_new(const char *name, Level level)
{
	Module *m = calloc(1, sizeof *m);
	if (!m)
		ir_die("out of memory");
	arena_init(&m->arena);
	m->name = arena_strdup(&m->arena, name ? name : "main");
	m->level = level;
	return m;
}

void ir_module_free(Module *m)
{
	if (!m)
		return;
	free(m->insts);
	arena_free(&m->arena);
	free(m);
}

/* The instruction array is the one thing outside the arena: it grows by
 * realloc, so a big module does not leave every smaller copy behind. */
void ir_reserve(Module *m, int n)
{
	if (n <= m->cap)
		return;
	Inst *p = realloc(m->insts, sizeof(Inst) * (size_t)n);
	if (!p)
		ir_die("out of memory (%d instructions)", n);
	m->insts = p;
	m->cap = n;
}

ValueId ir_append(Module *m, const Inst *in)
{
	if (m->ninsts == m->cap)
		ir_reserve(m, m->cap ? m->cap * 2 : 64);
	m->insts[m->ninsts] = *in;
	return m->ninsts++;
}

void ir_output(Module *m, ValueId v)
{
	assert(v >= 0 && v < m->ninsts);
	if (m->noutputs == m->outcap) {
		int cap = m->outcap ? m->outcap * 2 : 8;
		m->outputs = arena_grow(&m->arena, m->outputs, sizeof(ValueId) * (size_t)m->outcap,
		                        sizeof(ValueId) * (size_t)cap);
		m->outcap = cap;
	}
	m->outputs[m->noutputs++] = v;
}
