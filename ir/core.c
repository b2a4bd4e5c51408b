/*
 * The IR's small shared pieces: diagnostics, the arena, the op/dtype/unit
 * name tables, types, meshes and attributes. Everything else in ir/ builds on
 * these.
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
 * A list of blocks; big requests get a block of their own. */

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

void *arena_alloc(Arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	ArenaBlock *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
		/* zeroed once here: arena memory is never handed out twice */
		b = calloc(1, sizeof *b + size);
		if (!b)
			ir_die("out of memory (%zu bytes)", size);
		b->size = size;
		b->used = 0;
		if (a->head && size == n) {
			/* A big block goes behind the head so the head's free space
			 * stays usable. */
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = b->data + b->used;
	b->used += n;
	a->used_bytes += n;
	return p;
}

void *arena_grow(Arena *a, void *old, size_t oldn, size_t newn)
{
	void *p = arena_alloc(a, newn);
	if (old && oldn)
		memcpy(p, old, oldn < newn ? oldn : newn);
	return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *arena_strdup(Arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
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

int op_from_name(const char *s, size_t n)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (strlen(ir_ops[i].name) == n && memcmp(ir_ops[i].name, s, n) == 0)
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
	for (int i = 0; i < m->naxes; i++)
		if (strlen(m->axes[i].name) == n && memcmp(m->axes[i].name, name, n) == 0)
			return i;
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

/* ---- Attributes ---------------------------------------------------------*/

const Attr *ir_attr(const Inst *in, const char *key)
{
	for (int i = 0; i < in->nattrs; i++) /* first letters differ mostly */
		if (in->attrs[i].key[0] == key[0] && strcmp(in->attrs[i].key, key) == 0)
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
	int n;
	const int64_t *v = ir_attr_ints(in, key, &n);
	return v && n == 1 ? v[0] : dflt;
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

/* Adds or replaces key on m->insts[v] and returns the slot. */
static Attr *attr_slot(Module *m, ValueId v, const char *key)
{
	Inst *in = &m->insts[v];
	for (int i = 0; i < in->nattrs; i++)
		if (strcmp(in->attrs[i].key, key) == 0)
			return &in->attrs[i];
	in->attrs = arena_grow(&m->arena, in->attrs, sizeof(Attr) * (size_t)in->nattrs,
	                       sizeof(Attr) * (size_t)(in->nattrs + 1));
	Attr *a = &in->attrs[in->nattrs++];
	a->key = arena_strdup(&m->arena, key);
	return a;
}

void ir_set_ints(Module *m, ValueId v, const char *key, int n, const int64_t *xs)
{
	Attr *a = attr_slot(m, v, key);
	a->kind = ATTR_INTS;
	a->n = n;
	a->ints = arena_alloc(&m->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
	if (n)
		memcpy(a->ints, xs, sizeof(int64_t) * (size_t)n);
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
	for (int i = 0; i < n; i++)
		a->names[i] = arena_strdup(&m->arena, names[i]);
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
