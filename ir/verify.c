/*
 * The verifier: everything a well-formed module promises beyond what the
 * parser already enforces, checked the same way for parsed and built modules.
 * Per instruction, in order: level rules (tiled-only ops and annotations),
 * operands (count, defined before use), the value's name, the declared type
 * (rank, dims, sharding axes exist, each axis shards one dim, a sharded dim
 * divides evenly), attributes (present, of the right kind, legal values), and
 * last the op's shape rule (ir_infer_type): the declared dims and dtype must
 * be what the rule computes. Then the module: a valid name and mesh, and at
 * least one returned value.
 *
 * Every error goes to the Diag at the instruction's parsed position (none for
 * built instructions) and names the value; verification goes on to count the
 * rest, but the message is the first one.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
	const Module *m;
	Diag *d;
	int nerrors;
} Verifier;

static void fail(Verifier *vf, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fail(Verifier *vf, int line, int col, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	diag_error(vf->d, vf->m->file, line, col, "%s", msg);
	vf->nerrors++;
}

/* The name an instruction prints under, without the '%'. */
static const char *value_name(const Module *m, ValueId v, char *buf, size_t n)
{
	if (v >= 0 && v < m->ninsts && m->insts[v].name)
		return m->insts[v].name;
	snprintf(buf, n, "%d", (int)v);
	return buf;
}

static int is_ident(const char *s, int allow_dot, int allow_digit_first)
{
	if (!*s)
		return 0;
	for (const char *c = s; *c; c++) {
		int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
		         (*c >= '0' && *c <= '9' && (c > s || allow_digit_first)) ||
		         (*c == '.' && allow_dot);
		if (!ok)
			return 0;
	}
	return 1;
}

/* dtype[d0,d1] without sharding, for messages. */
static const char *type_str(const Type *t, char *buf, size_t n)
{
	size_t k = (size_t)snprintf(buf, n, "%s[", dtype_name(t->dtype));
	for (int i = 0; i < t->rank && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)t->dims[i]);
	if (k < n)
		snprintf(buf + k, n - k, "]");
	return buf;
}

/* ---- Attributes ---------------------------------------------------------*/

typedef struct AttrSpec {
	const char *key;
	AttrKind kind;
	int required;
	int count; /* ATTR_INTS: exact number of values, or -1 */
} AttrSpec;

static const char *kind_name(AttrKind k)
{
	switch (k) {
	case ATTR_INTS: return "a list of integers";
	case ATTR_FLOAT: return "a number";
	case ATTR_STR: return "a string";
	case ATTR_NAMES: return "a list of names";
	}
	return "?";
}

/* The attributes op uses (ir.h); returns how many, into specs. */
static int attr_specs(Op op, AttrSpec *s)
{
	int n = 0;
#define SPEC(k, kind, req, cnt) (s[n++] = (AttrSpec){k, kind, req, cnt})
	switch (op) {
	case OP_PARAMETER:
		SPEC("name", ATTR_STR, 1, -1);
		SPEC("role", ATTR_STR, 0, -1);
		SPEC("index", ATTR_INTS, 0, 1);
		break;
	case OP_CONSTANT: SPEC("value", ATTR_FLOAT, 1, -1); break;
	case OP_IOTA: SPEC("dim", ATTR_INTS, 1, 1); break;
	case OP_DOT:
		SPEC("lhs_contract", ATTR_INTS, 1, -1);
		SPEC("rhs_contract", ATTR_INTS, 1, -1);
		SPEC("lhs_batch", ATTR_INTS, 0, -1);
		SPEC("rhs_batch", ATTR_INTS, 0, -1);
		break;
	case OP_REDUCE_SUM:
	case OP_REDUCE_MAX: SPEC("dims", ATTR_INTS, 1, -1); break;
	case OP_SOFTMAX: SPEC("dim", ATTR_INTS, 1, 1); break;
	case OP_BROADCAST: SPEC("dims", ATTR_INTS, 1, -1); break;
	case OP_TRANSPOSE: SPEC("perm", ATTR_INTS, 1, -1); break;
	case OP_SLICE:
		SPEC("start", ATTR_INTS, 1, -1);
		SPEC("limit", ATTR_INTS, 1, -1);
		break;
	case OP_CONCAT: SPEC("dim", ATTR_INTS, 1, 1); break;
	case OP_ALL_REDUCE:
		SPEC("axes", ATTR_NAMES, 1, -1);
		SPEC("reduce", ATTR_STR, 0, -1);
		break;
	case OP_ALL_GATHER:
	case OP_REDUCE_SCATTER:
		SPEC("axes", ATTR_NAMES, 1, -1);
		SPEC("dim", ATTR_INTS, 1, 1);
		break;
	case OP_ALL_TO_ALL:
		SPEC("axes", ATTR_NAMES, 1, -1);
		SPEC("split_dim", ATTR_INTS, 1, 1);
		SPEC("concat_dim", ATTR_INTS, 1, 1);
		break;
	case OP_COLLECTIVE_PERMUTE:
		SPEC("axes", ATTR_NAMES, 1, -1);
		SPEC("shift", ATTR_INTS, 1, 1);
		break;
	case OP_DMA_START: SPEC("to", ATTR_STR, 1, -1); break;
	case OP_COLL_START: SPEC("op", ATTR_STR, 1, -1); break;
	case OP_NEG: case OP_EXP: case OP_LOG: case OP_TANH: case OP_SQRT: case OP_RSQRT:
	case OP_RELU: case OP_GELU: case OP_SIGMOID: case OP_SILU: case OP_CONVERT:
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN:
	case OP_POW: case OP_CMP_GT: case OP_CMP_EQ: case OP_SELECT: case OP_RESHAPE:
	case OP_GATHER: case OP_ONE_HOT: case OP_DMA_DONE: case OP_COLL_DONE:
	case OP_COUNT:
		break;
	}
#undef SPEC
	return n;
}

/* Checks in's attributes against the specs of op (for coll_start also those
 * of the collective it starts). Returns 0 if all good. */
static int check_attrs(Verifier *vf, const Inst *in, Op op, const char *vn)
{
	AttrSpec specs[8];
	int n = attr_specs(op, specs), bad = 0;
	for (int i = 0; i < n; i++) {
		const Attr *a = ir_attr(in, specs[i].key);
		if (!a) {
			if (specs[i].required) {
				fail(vf, in->line, in->col, "%%%s: %s needs attribute %s (%s)", vn,
				     op_name(op), specs[i].key, kind_name(specs[i].kind));
				bad = 1;
			}
			continue;
		}
		if (a->kind != specs[i].kind) {
			fail(vf, in->line, in->col, "%%%s: attribute %s of %s must be %s, is %s", vn,
			     a->key, op_name(op), kind_name(specs[i].kind), kind_name(a->kind));
			bad = 1;
			continue;
		}
		if (a->kind == ATTR_INTS && specs[i].count >= 0 && a->n != specs[i].count) {
			fail(vf, in->line, in->col, "%%%s: attribute %s of %s needs %d value%s, has %d",
			     vn, a->key, op_name(op), specs[i].count, specs[i].count == 1 ? "" : "s",
			     a->n);
			bad = 1;
		}
	}
	if (bad)
		return -1;
	const Mesh *mesh = &vf->m->mesh;
	if (ir_ops[op].flags & OPF_COLLECTIVE) {
		const Attr *ax = ir_attr(in, "axes");
		if (ax->n == 0) {
			fail(vf, in->line, in->col, "%%%s: %s attribute axes names no mesh axis", vn,
			     op_name(op));
			return -1;
		}
		for (int i = 0; i < ax->n; i++) {
			if (mesh_axis_index(mesh, ax->names[i], strlen(ax->names[i])) < 0) {
				fail(vf, in->line, in->col, "%%%s: %s over axis '%s', which the mesh does "
				     "not have", vn, op_name(op), ax->names[i]);
				return -1;
			}
			for (int j = 0; j < i; j++)
				if (!strcmp(ax->names[i], ax->names[j])) {
					fail(vf, in->line, in->col, "%%%s: %s attribute axes repeats '%s'",
					     vn, op_name(op), ax->names[i]);
					return -1;
				}
		}
	}
	const char *r = ir_attr_str(in, "reduce", NULL);
	if (op == OP_ALL_REDUCE && r && strcmp(r, "sum") && strcmp(r, "max")) {
		fail(vf, in->line, in->col, "%%%s: all_reduce reduce=\"%s\" (expected \"sum\" or "
		     "\"max\")", vn, r);
		return -1;
	}
	const char *to = ir_attr_str(in, "to", NULL);
	if (op == OP_DMA_START && mem_from_name(to, strlen(to)) <= MEM_NONE) {
		fail(vf, in->line, in->col, "%%%s: dma_start to=\"%s\" (expected \"hbm\", \"vmem\" "
		     "or \"cmem\")", vn, to);
		return -1;
	}
	if (op == OP_COLL_START) {
		const char *cop = ir_attr_str(in, "op", NULL);
		int k = op_from_name(cop, strlen(cop));
		if (k < 0 || !(ir_ops[k].flags & OPF_COLLECTIVE)) {
			fail(vf, in->line, in->col, "%%%s: coll_start op=\"%s\" is not a collective", vn,
			     cop);
			return -1;
		}
		return check_attrs(vf, in, (Op)k, vn);
	}
	return 0;
}

/* ---- Types and annotations ----------------------------------------------*/

static int check_type(Verifier *vf, const Inst *in, const char *vn)
{
	const Type *t = &in->type;
	const Mesh *mesh = &vf->m->mesh;
	if (t->dtype < 0 || t->dtype >= DT_COUNT || t->rank < 0 || t->rank > IR_MAX_RANK) {
		fail(vf, in->line, in->col, "%%%s: type has dtype %d and rank %d", vn, (int)t->dtype,
		     t->rank);
		return -1;
	}
	uint32_t used = 0, all = mesh->naxes >= 32 ? ~0u : (1u << mesh->naxes) - 1;
	for (int i = 0; i < t->rank; i++) {
		if (t->dims[i] < 0) {
			fail(vf, in->line, in->col, "%%%s: dim %d is %lld", vn, i, (long long)t->dims[i]);
			return -1;
		}
		uint32_t s = t->shard[i];
		if (s & ~all) {
			fail(vf, in->line, in->col, "%%%s: dim %d is sharded over a mesh axis the "
			     "mesh does not have (it has %d)", vn, i, mesh->naxes);
			return -1;
		}
		if (s & used) {
			for (int k = 0; k < mesh->naxes; k++)
				if (s & used & (1u << k))
					fail(vf, in->line, in->col, "%%%s: mesh axis '%s' shards more than "
					     "one dim", vn, mesh->axes[k].name);
			return -1;
		}
		used |= s;
		int64_t parts = mesh_axes_size(mesh, s);
		if (s && t->dims[i] % parts) {
			fail(vf, in->line, in->col, "%%%s: dim %d of size %lld is not divisible by %lld, "
			     "the size of the mesh axes it is sharded over", vn, i,
			     (long long)t->dims[i], (long long)parts);
			return -1;
		}
	}
	return 0;
}

static void check_level(Verifier *vf, const Inst *in, const char *vn)
{
	const OpInfo *oi = &ir_ops[in->op];
	if (vf->m->level == LEVEL_GRAPH) {
		if (oi->flags & OPF_TILED)
			fail(vf, in->line, in->col, "%%%s: %s is only legal in a tiled module", vn,
			     oi->name);
		/* The unit is not printed at the graph level, so it is not checked. */
		if (in->mem != MEM_NONE || in->tiling.ntile)
			fail(vf, in->line, in->col, "%%%s: a graph-level instruction carries a "
			     "memory space or tiling", vn);
		return;
	}
	if ((unsigned)in->unit >= UNIT_COUNT || (unsigned)in->mem >= MEM_COUNT) {
		fail(vf, in->line, in->col, "%%%s: unit %d or memory space %d out of range", vn,
		     (int)in->unit, (int)in->mem);
		return;
	}
	const Tiling *t = &in->tiling;
	if (t->ntile < 0 || t->ntile > IR_MAX_RANK) {
		fail(vf, in->line, in->col, "%%%s: tiling has %d dims", vn, t->ntile);
		return;
	}
	uint32_t seen = 0;
	for (int i = 0; i < t->ntile; i++) {
		if (t->tile[i] < 1) {
			fail(vf, in->line, in->col, "%%%s: tile extent %d is %lld", vn, i,
			     (long long)t->tile[i]);
			return;
		}
		int o = t->order[i];
		if (o < 0 || o >= t->ntile || (seen & (1u << o))) {
			fail(vf, in->line, in->col, "%%%s: tile order is not a permutation of 0..%d", vn,
			     t->ntile - 1);
			return;
		}
		seen |= 1u << o;
	}
}

/* ---- Names --------------------------------------------------------------*/

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Every value prints under a distinct, parseable name. */
static void check_names(Verifier *vf)
{
	const Module *m = vf->m;
	size_t cap = 16;
	while (cap < (size_t)m->ninsts * 2)
		cap *= 2;
	ValueId *slots = malloc(cap * sizeof *slots);
	if (!slots)
		ir_die("out of memory");
	for (size_t i = 0; i < cap; i++)
		slots[i] = -1;
	for (ValueId v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		char buf[16], buf2[16];
		const char *vn = value_name(m, v, buf, sizeof buf);
		if (in->name && !is_ident(in->name, 1, 1)) {
			fail(vf, in->line, in->col, "value name '%s' is not of the form [A-Za-z0-9_.]+",
			     in->name);
			continue;
		}
		for (size_t i = hash(vn) & (cap - 1);; i = (i + 1) & (cap - 1)) {
			if (slots[i] < 0) {
				slots[i] = v;
				break;
			}
			if (!strcmp(value_name(m, slots[i], buf2, sizeof buf2), vn)) {
				fail(vf, in->line, in->col, "%%%s is defined twice (values %d and %d)", vn,
				     (int)slots[i], (int)v);
				break;
			}
		}
	}
	free(slots);
}

static void check_module(Verifier *vf)
{
	const Module *m = vf->m;
	if (!m->name || !is_ident(m->name, 1, 1))
		fail(vf, 0, 0, "module name '%s' is not of the form [A-Za-z0-9_.]+",
		     m->name ? m->name : "(null)");
	if (m->mesh.naxes < 0 || m->mesh.naxes > IR_MAX_MESH_AXES) {
		fail(vf, 0, 0, "mesh has %d axes", m->mesh.naxes);
		return;
	}
	for (int k = 0; k < m->mesh.naxes; k++) {
		const MeshAxis *a = &m->mesh.axes[k];
		if (!a->name || !is_ident(a->name, 0, 0) || !strcmp(a->name, "_"))
			fail(vf, 0, 0, "mesh axis %d has no valid name", k);
		else if (a->ici < 1 || a->dcn < 1)
			fail(vf, 0, 0, "mesh axis '%s' has size ici=%d dcn=%d", a->name, a->ici, a->dcn);
		else
			for (int j = 0; j < k; j++)
				if (m->mesh.axes[j].name && !strcmp(m->mesh.axes[j].name, a->name))
					fail(vf, 0, 0, "mesh axis '%s' appears twice", a->name);
	}
}

/* ---- Entry --------------------------------------------------------------*/

static void check_inst(Verifier *vf, ValueId v)
{
	const Module *m = vf->m;
	const Inst *in = &m->insts[v];
	char buf[16];
	const char *vn = value_name(m, v, buf, sizeof buf);
	if ((unsigned)in->op >= OP_COUNT) {
		fail(vf, in->line, in->col, "%%%s: op %d out of range", vn, (int)in->op);
		return;
	}
	const OpInfo *oi = &ir_ops[in->op];
	check_level(vf, in, vn);
	int bad = 0;
	if (oi->nargs >= 0 && in->nargs != oi->nargs) {
		fail(vf, in->line, in->col, "%%%s: %s takes %d operand%s, has %d", vn, oi->name,
		     oi->nargs, oi->nargs == 1 ? "" : "s", in->nargs);
		bad = 1;
	} else if (oi->nargs < 0 && in->nargs < 1) {
		fail(vf, in->line, in->col, "%%%s: %s takes at least one operand", vn, oi->name);
		bad = 1;
	}
	for (int i = 0; i < in->nargs; i++) {
		ValueId a = in->args[i];
		if (a < 0 || a >= m->ninsts) {
			fail(vf, in->line, in->col, "%%%s: operand %d is value %d, which does not exist",
			     vn, i, (int)a);
			bad = 1;
		} else if (a >= v) {
			char abuf[16];
			fail(vf, in->line, in->col, "%%%s: operand %d, %%%s, is used before its "
			     "definition", vn, i, value_name(m, a, abuf, sizeof abuf));
			bad = 1;
		}
	}
	if (check_type(vf, in, vn))
		bad = 1;
	if (check_attrs(vf, in, in->op, vn))
		bad = 1;
	if (bad)
		return;
	/* Operand types must be sane before a shape rule reads them. */
	for (int i = 0; i < in->nargs; i++) {
		const Type *t = &m->insts[in->args[i]].type;
		if (t->dtype < 0 || t->dtype >= DT_COUNT || t->rank < 0 || t->rank > IR_MAX_RANK)
			return; /* reported at its own instruction */
	}
	if (in->op == OP_DMA_DONE || in->op == OP_COLL_DONE) {
		Op want = in->op == OP_DMA_DONE ? OP_DMA_START : OP_COLL_START;
		if (m->insts[in->args[0]].op != want) {
			char abuf[16];
			fail(vf, in->line, in->col, "%%%s: the operand of %s must be a %s, %%%s is a %s",
			     vn, oi->name, op_name(want), value_name(m, in->args[0], abuf, sizeof abuf),
			     op_name(m->insts[in->args[0]].op));
			return;
		}
	}
	char err[512];
	Type t;
	if (ir_infer_type(m, in, &t, err, sizeof err)) {
		fail(vf, in->line, in->col, "%%%s: %s", vn, err);
		return;
	}
	if (!type_same_shape(&t, &in->type)) {
		char b1[160], b2[160];
		fail(vf, in->line, in->col, "%%%s: declared type %s, but %s computes %s", vn,
		     type_str(&in->type, b1, sizeof b1), oi->name, type_str(&t, b2, sizeof b2));
	}
}

int ir_verify(const Module *m, Diag *d)
{
	Verifier vf = {m, d, 0};
	check_module(&vf);
	if (vf.nerrors)
		return -1; /* the types below name mesh axes */
	for (ValueId v = 0; v < m->ninsts; v++)
		check_inst(&vf, v);
	check_names(&vf);
	if (m->noutputs < 1)
		fail(&vf, m->ret_line, m->ret_col, "the module returns no values");
	for (int i = 0; i < m->noutputs; i++)
		if (m->outputs[i] < 0 || m->outputs[i] >= m->ninsts)
			fail(&vf, m->ret_line, m->ret_col, "returned value %d does not exist",
			     (int)m->outputs[i]);
	return vf.nerrors ? -1 : 0;
}
