/*
 * The fuse pass: which instructions of a per-chip program run together as
 * one kernel, so that the values passed between them stay in VMEM, as XLA's
 * TPU fusion forms its kernels (docs/compiler.md, "fuse").
 *
 * Requires: a per-chip graph-level module (local shapes). Changes: sets
 * fusion=[k] on every member of kernel k (k = 0, 1, ... in order of each
 * kernel's first member); removes a stale fusion attribute from
 * instructions that end up in no kernel. Nothing else changes.
 *
 * Kernels are grown in one pass over the program (a union-find over the
 * instructions, so the pass costs O(n alpha(n)) for n instructions plus
 * operands). Each instruction that computes starts as a kernel of its own;
 * a consumer then joins the kernel of an operand when all these hold:
 *
 *   - both are fusible: elementwise ops (convert and select included),
 *     broadcast, reduce_sum/max, softmax, transpose, slice, concat, reshape,
 *     iota, one_hot; or the operand is a dot (epilogue fusion, below).
 *     Parameters, constants, gathers, collectives and dots are boundaries;
 *     a constant is folded into each consumer and belongs to no kernel.
 *   - the operand's kernel is still open: no instruction outside it has
 *     read one of its values yet. A kernel whose value was read outside is
 *     sealed; this keeps the kernels a DAG (no kernel can both feed and
 *     consume another) without any reachability test.
 *   - contiguity: every computing instruction between the kernel's last
 *     member and the consumer (or the kernels it already joined; the most
 *     recent kernel is tried first) belongs to it, so a kernel is a
 *     contiguous stretch of compute in program order and its internal
 *     values are in VMEM only while it runs. Prefix counts of computing
 *     instructions make the test O(1).
 *   - reduce: a kernel that contains a reduce (input fusion: the reduce and
 *     the elementwise producers of its operand) accepts a consumer of the
 *     reduced value only if the consumer is no larger than that value
 *     (scaling a mean, adding epsilon, rsqrt); the first op that needs the
 *     reduced value at full size again (broadcast back, or combining it with
 *     a full-size operand) starts a new kernel.
 *   - dot epilogue: a dot whose result has exactly one user (and is not a
 *     module output) joins that user's kernel when the user is elementwise;
 *     a kernel holds at most one dot, and a kernel with a dot holds only
 *     elementwise ops and broadcasts besides it (bias add, activation,
 *     scaling, convert; a dot never absorbs its own producers).
 *
 * Kernels made only of reshapes (views) are dropped: a reshape of a
 * parameter, say, stays outside any kernel.
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

enum {
	KIND_NONE,  /* boundary: belongs to no kernel (parameter, constant, collective) */
	KIND_VPU,   /* fusible vector work */
	KIND_DOT,   /* MXU: a kernel of its own, or an epilogue host */
	KIND_ALONE, /* computes, but is always a kernel of its own (gather) */
};

static int op_kind(Op op)
{
	unsigned fl = ir_ops[op].flags;
	if (op == OP_DOT)
		return KIND_DOT;
	if (op == OP_GATHER)
		return KIND_ALONE;
	if (op == OP_PARAMETER || op == OP_CONSTANT || (fl & (OPF_COLLECTIVE | OPF_TILED)))
		return KIND_NONE;
	return KIND_VPU; /* elementwise, reduce, softmax, layout ops, iota, one_hot */
}

/* Ops allowed next to a dot in its epilogue kernel. */
static int epilogue_ok(Op op)
{
	return (ir_ops[op].flags & OPF_ELEMWISE) || op == OP_BROADCAST;
}

typedef struct Group {
	int parent;        /* union-find; root: itself */
	int rank;
	/* valid at the root: */
	int ndots;         /* dots in the kernel (at most 1) */
	int all_epi;       /* every non-dot member is epilogue_ok */
	int closed;        /* contains a reduce */
	int sealed;        /* a value of it was read outside it */
	int only_views;    /* every member is a reshape */
	int last;          /* its last member (program index) */
	int tail;          /* every computing instruction in [tail, last] is a member */
} Group;

typedef struct Fuser {
	const Module *m;
	Group *g;          /* (ninsts); parent -1: in no kernel */
	unsigned char *post; /* (ninsts) 1: a reduce, or derived from one inside its kernel at reduced size */
	int *uses;         /* (ninsts) users (an output counts as one) */
	int *before;       /* (ninsts + 1) computing instructions before index i */
} Fuser;

/* Instructions that occupy a unit inside a kernel (views do not). */
static int counted(const Inst *in)
{
	return op_kind(in->op) != KIND_NONE && in->op != OP_RESHAPE;
}

/* Computing instructions strictly between program indices a < b. */
static int between(const Fuser *f, int a, int b)
{
	return f->before[b] - f->before[a + 1];
}

static int find(Fuser *f, int v)
{
	while (f->g[v].parent != v) {
		f->g[v].parent = f->g[f->g[v].parent].parent;
		v = f->g[v].parent;
	}
	return v;
}

static int unite(Fuser *f, int a, int b)
{
	a = find(f, a);
	b = find(f, b);
	if (a == b)
		return a;
	if (f->g[a].rank < f->g[b].rank) {
		int t = a;
		a = b;
		b = t;
	}
	if (f->g[a].rank == f->g[b].rank)
		f->g[a].rank++;
	Group *ga = &f->g[a], *gb = &f->g[b];
	gb->parent = a;
	ga->ndots += gb->ndots;
	ga->all_epi &= gb->all_epi;
	ga->closed |= gb->closed;
	ga->sealed |= gb->sealed;
	ga->only_views &= gb->only_views;
	if (gb->last > ga->last)
		ga->last = gb->last;
	return a;
}

/* May consumer v (whose kernel root is rv) join the kernel of operand a? */
static int can_join(Fuser *f, int v, int rv, ValueId a)
{
	const Module *m = f->m;
	const Inst *in = &m->insts[v], *ai = &m->insts[a];
	if (f->g[a].parent < 0)
		return 0;
	int ra = find(f, a);
	if (ra == rv)
		return 1;
	Group *ga = &f->g[ra], *gv = &f->g[rv];
	if (ga->sealed)
		return 0;
	if (ai->op == OP_DOT) {
		/* epilogue: a single-use dot into an elementwise user */
		if (f->uses[a] != 1 || !(ir_ops[in->op].flags & OPF_ELEMWISE))
			return 0;
	} else if (op_kind(ai->op) != KIND_VPU) {
		return 0;
	}
	if (ga->ndots + gv->ndots > 1)
		return 0;
	if ((ga->ndots || gv->ndots) && !(ga->all_epi && gv->all_epi))
		return 0;
	if (ga->closed) {
		/* only the reduced value, at no larger size */
		if (!f->post[a] || type_numel(&in->type) > type_numel(&ai->type))
			return 0;
	}
	return 1;
}

void pass_fuse(Module *m)
{
	int n = m->ninsts;
	Fuser f = {m, NULL, NULL, NULL, NULL};
	/* g and post are set for each instruction before they are read; uses
	 * counts from zero */
	f.g = malloc((size_t)(n > 0 ? n : 1) * sizeof *f.g);
	f.post = malloc((size_t)(n > 0 ? n : 1));
	f.uses = calloc((size_t)(n > 0 ? n : 1), sizeof *f.uses);
	f.before = malloc(((size_t)n + 1) * sizeof *f.before);
	int maxargs = 1;
	for (int v = 0; v < n; v++)
		if (m->insts[v].nargs > maxargs)
			maxargs = m->insts[v].nargs;
	ValueId *cand = malloc(sizeof *cand * (size_t)maxargs);
	if (!f.g || !f.post || !f.uses || !f.before || !cand)
		ir_die("out of memory fusing %d instructions", n);
	f.before[0] = 0;
	for (int v = 0; v < n; v++)
		f.before[v + 1] = f.before[v] + counted(&m->insts[v]);
	for (int v = 0; v < n; v++)
		for (int i = 0; i < m->insts[v].nargs; i++)
			f.uses[m->insts[v].args[i]]++;
	for (int i = 0; i < m->noutputs; i++)
		f.uses[m->outputs[i]]++;

	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		int kind = op_kind(in->op);
		Group *g = &f.g[v];
		*g = (Group){0};
		if (kind == KIND_NONE) {
			g->parent = -1;
			f.post[v] = 0;
		} else {
			g->parent = v;
			g->ndots = kind == KIND_DOT;
			g->all_epi = kind == KIND_DOT || epilogue_ok(in->op);
			g->closed = (ir_ops[in->op].flags & OPF_REDUCE) != 0;
			g->only_views = in->op == OP_RESHAPE;
			g->last = g->tail = v;
			f.post[v] = g->closed;
		}
		/* A consumer decides which operand kernels it joins: the most
		 * recent kernel first, each only if the computing instructions
		 * between it and the kernel grown so far all belong to it
		 * (contiguity); joining one may make another inadmissible. */
		if (kind == KIND_VPU) {
			int rv = v, joined_post = 0, edge = v, nc = 0;
			for (int i = 0; i < in->nargs; i++) {
				ValueId a = in->args[i];
				if (f.g[a].parent < 0)
					continue;
				/* insertion sort by the kernel's last member, latest first */
				int la = f.g[find(&f, a)].last, k = nc++;
				for (; k > 0 && f.g[find(&f, cand[k - 1])].last < la; k--)
					cand[k] = cand[k - 1];
				cand[k] = a;
			}
			for (int i = 0; i < nc; i++) {
				ValueId a = cand[i];
				if (!can_join(&f, v, rv, a))
					continue;
				int ra = find(&f, a);
				if (ra == rv || between(&f, f.g[ra].last, edge) != 0)
					continue;
				if (f.g[ra].closed)
					joined_post = 1;
				int tail = f.g[ra].tail;
				rv = unite(&f, rv, ra);
				if (tail < edge)
					edge = tail;
			}
			f.g[rv].last = v;
			f.g[rv].tail = edge;
			/* A reduce joining an open kernel closes it, and is post. A
			 * non-reduce is post when it entered through a reduced value. */
			if (ir_ops[in->op].flags & OPF_REDUCE) {
				f.g[find(&f, v)].closed = 1;
				f.post[v] = 1;
			} else {
				f.post[v] = (unsigned char)joined_post;
			}
		}
		/* Every operand kernel that v did not join is now read outside. */
		int rv = f.g[v].parent >= 0 ? find(&f, v) : -1;
		for (int i = 0; i < in->nargs; i++) {
			ValueId a = in->args[i];
			if (f.g[a].parent < 0)
				continue;
			int ra = find(&f, a);
			if (ra != rv)
				f.g[ra].sealed = 1;
		}
	}
	/* Outputs leave their kernels too (they do not seal: nothing later in
	 * the program reads them through an outside path). Number the kernels
	 * in order of first member. */
	int *id = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
	ValueId *members = malloc(sizeof(ValueId) * (size_t)(n > 0 ? n : 1));
	int64_t *kernel = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
	if (!id || !members || !kernel)
		ir_die("out of memory fusing %d instructions", n);
	for (int v = 0; v < n; v++)
		id[v] = -1;
	int64_t next = 0;
	int nmembers = 0;
	for (int v = 0; v < n; v++) {
		Inst *in = &m->insts[v];
		int root = f.g[v].parent >= 0 ? find(&f, v) : -1;
		if (root < 0 || f.g[root].only_views) {
			/* a stale fusion attribute from an earlier run goes away */
			for (int i = 0; i < in->nattrs; i++)
				if (!strcmp(in->attrs[i].key, "fusion")) {
					in->attrs[i] = in->attrs[in->nattrs - 1];
					in->nattrs--;
					break;
				}
			continue;
		}
		if (id[root] < 0)
			id[root] = (int)next++;
		members[nmembers] = v;
		kernel[nmembers++] = id[root];
	}
	ir_set_int_many(m, "fusion", nmembers, members, kernel);
	free(id);
	free(members);
	free(kernel);
	free(cand);
	free(f.before);
	free(f.g);
	free(f.post);
	free(f.uses);
}
