/*
 * The SPMD executor (spmd.h, docs/run.md).
 *
 * Every chip owns a table of buffers indexed by ValueId (f32 storage for
 * every dtype, as the interpreter and the JIT ABI). The program is cut into
 * segments at its collectives: inside a segment each chip runs alone, chips
 * spread over OpenMP threads; at a collective every chip computes its own
 * result from the group members' operand buffers, which are read-only by
 * then. Each chip's result is therefore a fixed function of the inputs, in a
 * fixed order (group members are summed in coordinate order): the thread
 * count changes nothing.
 *
 * Compute ops run as JIT kernels. The executor handles parameters,
 * collectives and partition-aware ops itself; every other instruction maps
 * to a kernel module holding one representative per distinct kernel (same
 * op, operand and result types, computing attributes and tiling), its
 * operands as parameters. That module is compiled once, unfused (every
 * value its own kernel), and each chip calls the kernels on its own buffers
 * (kernels are stateless). If it does not compile, every op runs in the
 * reference interpreter instead (ir_interp_inst), and the reason is kept in
 * SpmdStats.jit_note.
 *
 * A buffer is freed after its last use (the program's outputs are kept),
 * so a chip holds about what the program's live set needs.
 */
#include "spmd.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "compiler/llvm/codegen.h"

void spmd_default_options(SpmdOptions *o)
{
	memset(o, 0, sizeof *o);
	o->jit = 1;
	o->jit_optimize = 1;
}

/* ---- Coordinates ---------------------------------------------------------- */

static int64_t axis_size(const Mesh *m, int k)
{
	return (int64_t)m->axes[k].ici * m->axes[k].dcn;
}

int64_t spmd_coord(const Mesh *m, int64_t chip, int axis)
{
	int64_t stride = 1;
	for (int k = m->naxes - 1; k > axis; k--)
		stride *= axis_size(m, k);
	return (chip / stride) % axis_size(m, axis);
}

/* An ordered list of mesh axes (a collective's axes=[...], a partition). */
typedef struct AxisList {
	int n;
	int k[IR_MAX_MESH_AXES];
} AxisList;

static int64_t list_index(const Mesh *m, int64_t chip, const AxisList *l)
{
	int64_t idx = 0;
	for (int i = 0; i < l->n; i++)
		idx = idx * axis_size(m, l->k[i]) + spmd_coord(m, chip, l->k[i]);
	return idx;
}

static int64_t list_size(const Mesh *m, const AxisList *l)
{
	int64_t g = 1;
	for (int i = 0; i < l->n; i++)
		g *= axis_size(m, l->k[i]);
	return g;
}

static AxisList list_of_bits(const Mesh *m, uint32_t axes)
{
	AxisList l = {0, {0}};
	for (int k = 0; k < m->naxes; k++)
		if (axes & (1u << k))
			l.k[l.n++] = k;
	return l;
}

int64_t spmd_shard_index(const Mesh *m, int64_t chip, uint32_t axes)
{
	AxisList l = list_of_bits(m, axes);
	return list_index(m, chip, &l);
}

/* The chip whose coordinates equal chip's except over l, where its mixed-
 * radix index is j: group member j of chip's group. */
static int64_t group_member(const Mesh *m, int64_t chip, const AxisList *l, int64_t j)
{
	int64_t coord[IR_MAX_MESH_AXES];
	for (int k = 0; k < m->naxes; k++)
		coord[k] = spmd_coord(m, chip, k);
	for (int i = l->n - 1; i >= 0; i--) {
		int64_t s = axis_size(m, l->k[i]);
		coord[l->k[i]] = j % s;
		j /= s;
	}
	int64_t c = 0;
	for (int k = 0; k < m->naxes; k++)
		c = c * axis_size(m, k) + coord[k];
	return c;
}

/* The axes of a names attribute; -1 if one is not a mesh axis. */
static int names_to_list(const Mesh *m, const Attr *a, AxisList *l)
{
	l->n = 0;
	if (!a || a->kind != ATTR_NAMES)
		return -1;
	for (int i = 0; i < a->n; i++) {
		int k = mesh_axis_index(m, a->names[i], strlen(a->names[i]));
		if (k < 0 || l->n == IR_MAX_MESH_AXES)
			return -1;
		l->k[l->n++] = k;
	}
	return 0;
}

/* ---- Index helpers -------------------------------------------------------- */

static void unravel(int64_t flat, const Type *t, int64_t *idx)
{
	for (int i = t->rank - 1; i >= 0; i--) {
		idx[i] = t->dims[i] ? flat % t->dims[i] : 0;
		flat = t->dims[i] ? flat / t->dims[i] : 0;
	}
}

static int64_t ravel(const int64_t *idx, const Type *t)
{
	int64_t flat = 0;
	for (int i = 0; i < t->rank; i++)
		flat = flat * t->dims[i] + idx[i];
	return flat;
}

static float *alloc_floats(int64_t n)
{
	float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
	if (!p)
		ir_die("out of memory (%lld floats)", (long long)n);
	return p;
}

int spmd_global_index(const Mesh *m, const Type *global, const uint32_t *shard, int64_t chip,
                      const int64_t *local_idx, int64_t *global_idx)
{
	int inside = 1;
	for (int i = 0; i < global->rank; i++) {
		int64_t ways = mesh_axes_size(m, shard[i]);
		int64_t len = (global->dims[i] + ways - 1) / ways;
		global_idx[i] = spmd_shard_index(m, chip, shard[i]) * len + local_idx[i];
		inside &= global_idx[i] < global->dims[i];
	}
	return inside;
}

void spmd_shard_tensor(const Mesh *m, const Tensor *global, const uint32_t *shard,
                       int64_t chip, Tensor *local)
{
	Type lt = global->type;
	for (int i = 0; i < lt.rank; i++) {
		int64_t ways = mesh_axes_size(m, shard[i]);
		lt.dims[i] = (lt.dims[i] + ways - 1) / ways;
		lt.shard[i] = 0;
	}
	int64_t n = type_numel(&lt);
	local->type = lt;
	local->data = alloc_floats(n);
	for (int64_t f = 0; f < n; f++) {
		int64_t li[IR_MAX_RANK], gi[IR_MAX_RANK];
		unravel(f, &lt, li);
		if (spmd_global_index(m, &global->type, shard, chip, li, gi))
			local->data[f] = global->data[ravel(gi, &global->type)];
	}
}

/* ---- The run ------------------------------------------------------------- */

typedef enum How {
	HOW_PARAM,
	HOW_JIT,
	HOW_INTERP,
	HOW_PARTITION, /* slice/iota/gather/one_hot with partition=[axes] */
	HOW_COLL,      /* a collective, or coll_done (its coll_start's) */
	HOW_NONE,      /* coll_start: computed at its done */
} How;

typedef struct Run {
	const Module *m;
	const Mesh *mesh;
	int64_t nchips;
	const SpmdOptions *opt;
	InterpOptions iopt;
	How *how;            /* (ninsts) */
	int *param_index;    /* (ninsts) k-th parameter, -1 otherwise */
	int *last_use;       /* (ninsts) last instruction reading v; ninsts: an output */
	Jit *jit;
	ValueId *rep;        /* (ninsts) v's kernel in the kernel module, -1 if none */
	int nkernels;        /* distinct kernels compiled */
	const Tensor *inputs;
	int nparams;
	float **buf;         /* (nchips * ninsts) buffer of value v on chip c */
	Diag *chip_diag;     /* (nchips) */
	int *chip_failed;    /* (nchips) */
} Run;

static float **bufs_of(const Run *r, int64_t chip)
{
	return r->buf + chip * r->m->ninsts;
}

static int inst_error(Diag *d, const Module *m, ValueId v, const char *what)
{
	const Inst *in = &m->insts[v];
	diag_error(d, m->file, in->line, in->col, "%%%d = %s: %s", (int)v, op_name(in->op), what);
	return -1;
}

/* The collective an instruction performs (coll_done: its start's op), and
 * the instruction carrying its attributes; -1 if none. */
static int coll_op(const Module *m, ValueId v, const Inst **attrs)
{
	const Inst *in = &m->insts[v];
	if (ir_ops[in->op].flags & OPF_COLLECTIVE) {
		*attrs = in;
		return (int)in->op;
	}
	if (in->op == OP_COLL_DONE) {
		const Inst *s = &m->insts[in->args[0]];
		if (s->op != OP_COLL_START)
			return -1;
		const char *name = ir_attr_str(s, "op", "");
		int k = op_from_name(name, strlen(name));
		if (k < 0 || !(ir_ops[k].flags & OPF_COLLECTIVE))
			return -1;
		*attrs = s;
		return k;
	}
	return -1;
}

/* Classifies every instruction and checks what the executor relies on. */
static int plan(Run *r, Diag *d)
{
	const Module *m = r->m;
	int np = 0;
	for (int v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		r->param_index[v] = -1;
		for (int k = 0; k < in->nargs; k++) {
			if (in->args[k] < 0 || in->args[k] >= v)
				return inst_error(d, m, v, "an operand is not an earlier value");
			r->last_use[in->args[k]] = v;
			if (m->insts[in->args[k]].op == OP_COLL_START && in->op != OP_COLL_DONE)
				return inst_error(d, m, v, "reads a coll_start (only its coll_done may)");
		}
		/* a coll_done reads its start's operand (the start holds no data) */
		if (in->op == OP_COLL_DONE && in->nargs == 1 &&
		    m->insts[in->args[0]].op == OP_COLL_START)
			r->last_use[m->insts[in->args[0]].args[0]] = v;
		if (in->op != OP_PARAMETER) {
			char err[256];
			Type t;
			if (ir_infer_type(m, in, &t, err, sizeof err) != 0)
				return inst_error(d, m, v, err);
			if (!type_same_shape(&t, &in->type))
				return inst_error(d, m, v, "result type differs from its shape rule");
		}
		const Inst *ai;
		if (in->op == OP_PARAMETER) {
			r->how[v] = HOW_PARAM;
			r->param_index[v] = np++;
		} else if (in->op == OP_COLL_START) {
			r->how[v] = HOW_NONE;
		} else if (in->op == OP_COLL_DONE || (ir_ops[in->op].flags & OPF_COLLECTIVE)) {
			AxisList l;
			if (coll_op(m, v, &ai) < 0)
				return inst_error(d, m, v, "coll_done of no collective coll_start");
			if (names_to_list(r->mesh, ir_attr(ai, "axes"), &l) != 0)
				return inst_error(d, m, v, "axes=[...] names no mesh axis");
			r->how[v] = HOW_COLL;
		} else if (ir_attr(in, "partition")) {
			AxisList l;
			if (in->op != OP_SLICE && in->op != OP_IOTA && in->op != OP_GATHER &&
			    in->op != OP_ONE_HOT)
				return inst_error(d, m, v, "partition=[...] on an op that has no "
				                           "partitioned form");
			if (names_to_list(r->mesh, ir_attr(in, "partition"), &l) != 0)
				return inst_error(d, m, v, "partition=[...] names no mesh axis");
			r->how[v] = HOW_PARTITION;
		} else {
			r->how[v] = r->opt->jit ? HOW_JIT : HOW_INTERP;
		}
	}
	for (int o = 0; o < m->noutputs; o++) {
		if (m->outputs[o] < 0 || m->outputs[o] >= m->ninsts)
			return inst_error(d, m, 0, "an output is not a value");
		if (m->insts[m->outputs[o]].op == OP_COLL_START)
			return inst_error(d, m, m->outputs[o], "a coll_start is an output");
		r->last_use[m->outputs[o]] = m->ninsts;
	}
	if (np != r->nparams) {
		diag_error(d, m->file, 0, 0, "module '%s' has %d parameters, given %d inputs per chip",
		           m->name ? m->name : "?", np, r->nparams);
		return -1;
	}
	return 0;
}

/* ---- The kernel module ---------------------------------------------------
 * A kernel is a pure function of its operand buffers, so instructions that
 * agree in op, operand and result types, computing attributes and tiling
 * share one: the kernel module holds one representative of each, with a
 * parameter per operand position. A transformer's repeated layers and the
 * optimizer's per-weight updates then compile once. Attributes that only
 * tag an instruction for the passes and reports are not part of the key. */

static int tag_attr(const char *k)
{
	static const char *const tags[] = {"layer", "logical", "optimizer", "remat", "name",
	                                   "role", "scatter_add", "index"};
	for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
		if (!strcmp(k, tags[i]))
			return 1;
	return 0;
}

typedef struct Str {
	char *s;
	size_t n, cap;
} Str;

static void put(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Str *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		b->cap = b->cap * 2 + (size_t)(k > 0 ? k : 0);
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			ir_die("out of memory");
	}
}

static void put_type(Str *b, const Type *t)
{
	put(b, "%s[", dtype_name(t->dtype));
	for (int i = 0; i < t->rank; i++)
		put(b, "%lld,", (long long)t->dims[i]);
	put(b, "]");
}

static char *kernel_key(const Module *m, ValueId v)
{
	const Inst *in = &m->insts[v];
	Str b = {malloc(128), 0, 128};
	if (!b.s)
		ir_die("out of memory");
	put(&b, "%s ", op_name(in->op));
	put_type(&b, &in->type);
	for (int i = 0; i < in->nargs; i++)
		put_type(&b, &m->insts[in->args[i]].type);
	for (int i = 0; i < in->nattrs; i++) {
		const Attr *a = &in->attrs[i];
		if (tag_attr(a->key))
			continue;
		put(&b, " %s=", a->key);
		switch (a->kind) {
		case ATTR_INTS:
			for (int k = 0; k < a->n; k++)
				put(&b, "%lld,", (long long)a->ints[k]);
			break;
		case ATTR_FLOAT:
			put(&b, "%.17g", a->f);
			break;
		case ATTR_STR:
			put(&b, "\"%s\"", a->s);
			break;
		case ATTR_NAMES:
			for (int k = 0; k < a->n; k++)
				put(&b, "%s,", a->names[k]);
			break;
		}
	}
	put(&b, " tile");
	for (int i = 0; i < in->tiling.ntile; i++)
		put(&b, "%lld/%d,", (long long)in->tiling.tile[i], (int)in->tiling.order[i]);
	return b.s;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Builds the kernel module: rep[v] is v's representative's ValueId there
 * (-1 for instructions that are not JIT ops). Returns the number of
 * distinct kernels in *nkernels. */
static Module *kernel_module(const Run *r, ValueId *rep, int *nkernels)
{
	const Module *m = r->m;
	Module *k = ir_module_empty_like(m);
	k->level = LEVEL_TILED;
	int n = m->ninsts, nk = 0;
	size_t cap = 1;
	while (cap < 2 * (size_t)(n > 0 ? n : 1))
		cap *= 2;
	/* open addressing: slot -> representative in m, or -1 */
	ValueId *slot = malloc(cap * sizeof *slot);
	uint64_t *hashes = malloc(cap * sizeof *hashes);
	char **keys = calloc(cap, sizeof *keys);
	if (!slot || !hashes || !keys)
		ir_die("out of memory");
	for (size_t i = 0; i < cap; i++)
		slot[i] = -1;
	for (int v = 0; v < n; v++) {
		rep[v] = -1;
		if (r->how[v] != HOW_JIT)
			continue;
		char *key = kernel_key(m, v);
		uint64_t h = hash_str(key);
		size_t i = (size_t)h & (cap - 1);
		while (slot[i] >= 0 && (hashes[i] != h || strcmp(keys[i], key)))
			i = (i + 1) & (cap - 1);
		if (slot[i] >= 0) {
			rep[v] = rep[slot[i]];
			free(key);
			continue;
		}
		const Inst *in = &m->insts[v];
		ValueId args[IR_MAX_RANK + 8];
		ValueId *argp = in->nargs <= (int)(sizeof args / sizeof *args)
		                        ? args
		                        : malloc(sizeof *argp * (size_t)in->nargs);
		if (!argp)
			ir_die("out of memory");
		for (int a = 0; a < in->nargs; a++) {
			Type t = m->insts[in->args[a]].type;
			memset(t.shard, 0, sizeof t.shard);
			argp[a] = ir_param(k, "x", t);
		}
		rep[v] = ir_clone_inst(k, m, v, argp);
		ir_output(k, rep[v]);
		if (argp != args)
			free(argp);
		slot[i] = v;
		hashes[i] = h;
		keys[i] = key;
		nk++;
	}
	for (size_t i = 0; i < cap; i++)
		free(keys[i]);
	free(keys);
	free(hashes);
	free(slot);
	*nkernels = nk;
	return k;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void round_bf16(const Run *r, const Inst *in, float *out)
{
	if (!r->opt->bf16 || in->type.dtype != DT_BF16)
		return;
	int64_t n = type_numel(&in->type);
	for (int64_t i = 0; i < n; i++)
		out[i] = bf16_round(out[i]);
}

/* slice/iota/gather/one_hot with partition=[axes] on chip (docs/sharding.md;
 * a one_hot's depth positions start at the chip's offset, as an iota's). */
static int run_partition(const Run *r, int64_t chip, ValueId v, float *out, Diag *d)
{
	const Module *m = r->m;
	const Inst *in = &m->insts[v];
	float **b = bufs_of(r, chip);
	AxisList l;
	names_to_list(r->mesh, ir_attr(in, "partition"), &l);
	int64_t idx = list_index(r->mesh, chip, &l);
	const Type *rt = &in->type;
	int64_t n = type_numel(rt);
	if (in->op == OP_IOTA) {
		int dim = (int)ir_attr_int(in, "dim", 0);
		for (int64_t f = 0; f < n; f++) {
			int64_t ri[IR_MAX_RANK];
			unravel(f, rt, ri);
			out[f] = (float)(idx * rt->dims[dim] + ri[dim]);
		}
		return 0;
	}
	if (in->op == OP_ONE_HOT) {
		/* the chip's depth positions start at idx * local depth */
		const float *ix = b[in->args[0]];
		int64_t depth = rt->dims[rt->rank - 1], first = idx * depth;
		for (int64_t f = 0; f < n; f++)
			out[f] = ix[f / depth] == (float)(first + f % depth) ? 1.0f : 0.0f;
		return 0;
	}
	if (in->op == OP_SLICE) {
		const Type *at = &m->insts[in->args[0]].type;
		int ns;
		const int64_t *start = ir_attr_ints(in, "start", &ns);
		int64_t off[IR_MAX_RANK];
		int cut = 0;
		for (int i = 0; i < rt->rank; i++) {
			off[i] = i < ns ? start[i] : 0;
			if (rt->dims[i] != at->dims[i]) {
				off[i] += idx * rt->dims[i];
				cut++;
			}
		}
		if (cut > 1)
			return inst_error(d, m, v, "a partitioned slice cuts more than one dim");
		const float *a = b[in->args[0]];
		for (int64_t f = 0; f < n; f++) {
			int64_t ri[IR_MAX_RANK];
			unravel(f, rt, ri);
			int inside = 1;
			for (int i = 0; i < rt->rank; i++) {
				ri[i] += off[i];
				inside &= ri[i] < at->dims[i];
			}
			/* the padding of an uneven last shard reads as zero */
			out[f] = inside ? a[ravel(ri, at)] : 0.0f;
		}
		return 0;
	}
	/* gather: this chip's table rows start at idx * rows; others read 0 */
	const Type *tt = &m->insts[in->args[0]].type;
	const Type *xt = &m->insts[in->args[1]].type;
	int64_t rows = tt->dims[0], row = rows ? type_numel(tt) / rows : 0;
	int64_t first = idx * rows, nb = type_numel(xt);
	const float *tab = b[in->args[0]], *ix = b[in->args[1]];
	for (int64_t k = 0; k < nb; k++) {
		float x = ix[k];
		if (x >= (float)first && x < (float)(first + rows)) {
			int64_t rr = (int64_t)x - first;
			memcpy(out + k * row, tab + rr * row, sizeof(float) * (size_t)row);
		} else {
			memset(out + k * row, 0, sizeof(float) * (size_t)row);
		}
	}
	return 0;
}

/* One instruction of a segment on one chip. */
static int run_local(Run *r, int64_t chip, ValueId v, Diag *d)
{
	const Module *m = r->m;
	const Inst *in = &m->insts[v];
	float **b = bufs_of(r, chip);
	if (r->how[v] == HOW_NONE)
		return 0;
	int64_t n = type_numel(&in->type);
	float *out = alloc_floats(n);
	b[v] = out;
	switch (r->how[v]) {
	case HOW_PARAM: {
		const Tensor *t = &r->inputs[chip * r->nparams + r->param_index[v]];
		if (!t->data || !type_same_shape(&t->type, &in->type)) {
			char what[160];
			snprintf(what, sizeof what, "chip %lld: input '%s' has the wrong shape",
			         (long long)chip, ir_attr_str(in, "name", "?"));
			return inst_error(d, m, v, what);
		}
		memcpy(out, t->data, sizeof(float) * (size_t)n);
		break;
	}
	case HOW_JIT: {
		int nin;
		const ValueId *ins;
		JitKernelFn k = jit_kernel(r->jit, r->rep[v], &nin, &ins);
		if (!k)
			ir_die("spmd: value %d has no kernel", (int)v);
		const float *args[8];
		const float **argp = nin <= 8 ? args : malloc(sizeof *argp * (size_t)nin);
		if (!argp)
			ir_die("out of memory");
		/* the representative's operands are the parameters just before it */
		ValueId base = r->rep[v] - in->nargs;
		for (int i = 0; i < nin; i++) {
			if (ins[i] < base || ins[i] >= r->rep[v])
				ir_die("spmd: kernel of %%%d reads a value that is not its operand", (int)v);
			argp[i] = b[in->args[ins[i] - base]];
		}
		k(out, (const float *const *)argp);
		if (argp != args)
			free(argp);
		return 0; /* the kernel rounds a bf16 result itself */
	}
	case HOW_INTERP: {
		Tensor args[8];
		Tensor *argp = in->nargs <= 8 ? args : malloc(sizeof *argp * (size_t)in->nargs);
		if (!argp)
			ir_die("out of memory");
		for (int i = 0; i < in->nargs; i++) {
			argp[i].type = m->insts[in->args[i]].type;
			argp[i].data = b[in->args[i]];
		}
		int rc = ir_interp_inst(m, v, argp, out, &r->iopt, d);
		if (argp != args)
			free(argp);
		return rc;
	}
	case HOW_PARTITION:
		if (run_partition(r, chip, v, out, d))
			return -1;
		break;
	case HOW_COLL:
	case HOW_NONE:
		ir_die("spmd: run_local of a collective");
	}
	round_bf16(r, in, out);
	return 0;
}

/* Chip chip's result of collective v, from its group's operand buffers. */
static double run_coll(Run *r, int64_t chip, ValueId v)
{
	const Module *m = r->m;
	const Inst *in = &m->insts[v], *ai;
	Op op = (Op)coll_op(m, v, &ai);
	ValueId src = ai->args[0]; /* coll_done: its start's operand */
	const Type *at = &m->insts[src].type, *rt = &in->type;
	AxisList l;
	names_to_list(r->mesh, ir_attr(ai, "axes"), &l);
	int64_t g = list_size(r->mesh, &l), self = list_index(r->mesh, chip, &l);
	int64_t n = type_numel(rt), na = type_numel(at);
	float *out = alloc_floats(n);
	bufs_of(r, chip)[v] = out;
#define MEMBER(j) ((const float *)bufs_of(r, group_member(r->mesh, chip, &l, (j)))[src])
	double moved = 0;
	switch (op) {
	case OP_ALL_REDUCE: {
		int is_max = !strcmp(ir_attr_str(ai, "reduce", "sum"), "max");
		for (int64_t j = 0; j < g; j++) {
			const float *x = MEMBER(j);
			for (int64_t f = 0; f < n; f++) {
				if (j == 0)
					out[f] = x[f];
				else if (!is_max)
					out[f] += x[f];
				else if (isnan(x[f]) || isnan(out[f]))
					out[f] = NAN;
				else if (x[f] > out[f])
					out[f] = x[f];
			}
		}
		moved = (double)(g - 1) * (double)n;
		break;
	}
	case OP_ALL_GATHER: {
		int d = (int)ir_attr_int(ai, "dim", 0);
		int64_t outer = 1, inner = 1;
		for (int i = 0; i < d; i++)
			outer *= at->dims[i];
		for (int i = d; i < at->rank; i++)
			inner *= at->dims[i];
		for (int64_t j = 0; j < g; j++) {
			const float *x = MEMBER(j);
			for (int64_t o = 0; o < outer; o++)
				memcpy(out + (o * g + j) * inner, x + o * inner, sizeof(float) * (size_t)inner);
		}
		moved = (double)(g - 1) * (double)na;
		break;
	}
	case OP_REDUCE_SCATTER: {
		int d = (int)ir_attr_int(ai, "dim", 0);
		int64_t outer = 1, inner = 1;
		for (int i = 0; i < d; i++)
			outer *= at->dims[i];
		for (int i = d; i < rt->rank; i++)
			inner *= rt->dims[i]; /* this chip's part: dims[d] / g rows */
		for (int64_t j = 0; j < g; j++) {
			const float *x = MEMBER(j);
			for (int64_t o = 0; o < outer; o++) {
				const float *p = x + (o * g + self) * inner;
				float *q = out + o * inner;
				for (int64_t e = 0; e < inner; e++)
					q[e] = j == 0 ? p[e] : q[e] + p[e];
			}
		}
		moved = (double)(g - 1) * (double)n;
		break;
	}
	case OP_ALL_TO_ALL: {
		int s = (int)ir_attr_int(ai, "split_dim", 0);
		int c = (int)ir_attr_int(ai, "concat_dim", 0);
		int64_t part = at->dims[s] / g; /* rows of split_dim each chip receives */
		for (int64_t f = 0; f < n; f++) {
			int64_t ri[IR_MAX_RANK];
			unravel(f, rt, ri);
			int64_t j;
			if (s == c) {
				j = ri[c] / part;
				ri[c] = self * part + ri[c] % part;
			} else {
				j = ri[c] / at->dims[c];
				ri[c] %= at->dims[c];
				ri[s] += self * part;
			}
			out[f] = MEMBER(j)[ravel(ri, at)];
		}
		moved = (double)(g - 1) * (double)n / (double)g;
		break;
	}
	case OP_COLLECTIVE_PERMUTE: {
		int64_t k = ir_attr_int(ai, "shift", 1) % g;
		int64_t from = ((self - k) % g + g) % g;
		memcpy(out, MEMBER(from), sizeof(float) * (size_t)n);
		moved = from == self ? 0 : (double)n;
		break;
	}
	default:
		ir_die("spmd: %s is not a collective", op_name(op));
	}
#undef MEMBER
	round_bf16(r, in, out);
	return moved * sizeof(float);
}

/* Frees the buffers whose last use is instruction v, on chip chip. */
static void release(Run *r, int64_t chip, ValueId v)
{
	const Inst *in = &r->m->insts[v];
	float **b = bufs_of(r, chip);
	for (int k = 0; k < in->nargs; k++) {
		ValueId a = in->args[k];
		if (r->last_use[a] == v && b[a]) {
			free(b[a]);
			b[a] = NULL;
		}
		/* a coll_done also read its start's operand */
		if (in->op == OP_COLL_DONE && r->m->insts[a].op == OP_COLL_START) {
			ValueId s = r->m->insts[a].args[0];
			if (r->last_use[s] == v && b[s]) {
				free(b[s]);
				b[s] = NULL;
			}
		}
	}
	if (r->last_use[v] < 0 && b[v]) { /* never read */
		free(b[v]);
		b[v] = NULL;
	}
}

/* The first failure by chip order, so the message does not depend on
 * thread timing. */
static int first_failure(const Run *r, Diag *d)
{
	for (int64_t c = 0; c < r->nchips; c++)
		if (r->chip_failed[c]) {
			*d = r->chip_diag[c];
			return -1;
		}
	return 0;
}

int spmd_run(const Module *prog, const Tensor *inputs, int nparams, const SpmdOptions *o,
             Tensor *outputs, SpmdStats *st, Diag *d)
{
	memset(st, 0, sizeof *st);
	Run r;
	memset(&r, 0, sizeof r);
	r.m = prog;
	r.mesh = &prog->mesh;
	r.nchips = mesh_size(&prog->mesh);
	r.opt = o;
	r.iopt.bf16_round = o->bf16;
	r.inputs = inputs;
	r.nparams = nparams;
	st->chips = r.nchips;
	int ni = prog->ninsts;
	size_t nn = (size_t)(ni > 0 ? ni : 1);
	r.how = calloc(nn, sizeof *r.how);
	r.param_index = calloc(nn, sizeof *r.param_index);
	r.last_use = malloc(nn * sizeof *r.last_use);
	r.buf = calloc((size_t)r.nchips * nn, sizeof *r.buf);
	r.chip_diag = calloc((size_t)r.nchips, sizeof *r.chip_diag);
	r.chip_failed = calloc((size_t)r.nchips, sizeof *r.chip_failed);
	if (!r.how || !r.param_index || !r.last_use || !r.buf || !r.chip_diag || !r.chip_failed)
		ir_die("out of memory");
	for (int v = 0; v < ni; v++)
		r.last_use[v] = -1;
	for (int64_t c = 0; c < r.nchips; c++)
		diag_init(&r.chip_diag[c]);
	int rc = plan(&r, d);
	if (rc == 0 && o->jit) {
		r.rep = malloc(nn * sizeof *r.rep);
		if (!r.rep)
			ir_die("out of memory");
		Module *km = kernel_module(&r, r.rep, &r.nkernels);
		st->jit_kernels = r.nkernels;
		CodegenOptions co;
		codegen_default_options(&co);
		co.optimize = o->jit_optimize;
		co.bf16 = o->bf16;
		co.fuse = 0;
		Diag jd;
		diag_init(&jd);
		double t0 = now_ms();
		r.jit = jit_compile(km, &co, &jd);
		st->jit_compile_ms = now_ms() - t0;
		ir_module_free(km);
		if (!r.jit) {
			snprintf(st->jit_note, sizeof st->jit_note, "%s", jd.msg);
			for (int v = 0; v < ni; v++)
				if (r.how[v] == HOW_JIT)
					r.how[v] = HOW_INTERP;
		}
	} else if (rc == 0) {
		snprintf(st->jit_note, sizeof st->jit_note, "JIT disabled");
	}
	for (int v = 0; rc == 0 && v < ni; v++) {
		switch (r.how[v]) {
		case HOW_PARAM: st->params++; break;
		case HOW_JIT: st->jit_ops++; break;
		case HOW_INTERP: st->interp_ops++; break;
		case HOW_PARTITION: st->partition_ops++; break;
		case HOW_COLL: st->collective_ops++; break;
		case HOW_NONE: st->other_ops++; break;
		}
	}
#ifdef _OPENMP
	int nthreads = o->threads > 0 ? o->threads : omp_get_max_threads();
#endif
	double t0 = now_ms();
	int v = 0;
	while (rc == 0 && v < ni) {
		int end = v;
		while (end < ni && r.how[end] != HOW_COLL)
			end++;
		if (end > v) {
			int64_t nc = r.nchips;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
			for (int64_t c = 0; c < nc; c++) {
				for (int k = v; k < end && !r.chip_failed[c]; k++) {
					if (run_local(&r, c, k, &r.chip_diag[c]))
						r.chip_failed[c] = 1;
					else
						release(&r, c, k);
				}
			}
			rc = first_failure(&r, d);
			v = end;
			continue;
		}
		/* a collective: every chip's result from the others' operands */
		double moved = 0;
		int64_t nc = r.nchips;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(+ : moved)
#endif
		for (int64_t c = 0; c < nc; c++)
			moved += run_coll(&r, c, v);
		st->bytes_moved += moved;
		for (int64_t c = 0; c < nc; c++)
			release(&r, c, v);
		v++;
	}
	st->run_ms = now_ms() - t0;
	if (rc == 0)
		for (int64_t c = 0; c < r.nchips; c++)
			for (int k = 0; k < prog->noutputs; k++) {
				ValueId ov = prog->outputs[k];
				const float *src = bufs_of(&r, c)[ov];
				Tensor *t = &outputs[c * prog->noutputs + k];
				int64_t n = type_numel(&prog->insts[ov].type);
				t->type = prog->insts[ov].type;
				t->data = alloc_floats(n);
				if (!src)
					ir_die("spmd: output %d was freed", k);
				memcpy(t->data, src, sizeof(float) * (size_t)n);
			}
	for (size_t i = 0; i < (size_t)r.nchips * nn; i++)
		free(r.buf[i]);
	jit_free(r.jit);
	free(r.rep);
	free(r.how);
	free(r.param_index);
	free(r.last_use);
	free(r.buf);
	free(r.chip_diag);
	free(r.chip_failed);
	return rc;
}
