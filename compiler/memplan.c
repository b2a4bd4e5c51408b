/*
 * The memplan pass: a liveness-based HBM plan of one chip's program.
 *
 * Requires: a scheduled tiled module (the program order is the execution
 * order). Changes nothing; fills a MemPlan.
 *
 * Buffers. Each value that needs HBM owns one buffer of its type's size,
 * except:
 *   - values internal to a fused kernel (mem = VMEM) or in CMEM: no HBM;
 *   - constants: splats folded into their consumers, no storage;
 *   - views: a reshape shares its operand's buffer, a coll_done shares its
 *     coll_start's (the collective writes its result there), a dma_start is
 *     a handle; their uses extend the shared buffer's life;
 *   - updated weights and optimizer states that the step returns are donated:
 *     output k (k >= 1) reuses the buffer of the k-th role="weight" then
 *     role="opt_state" parameter (train.h's output order) when the types
 *     match, so the update costs no second copy.
 * Lifetimes: parameters live throughout; every other buffer from the
 * instruction that defines it to its last use (outputs: to the end). An
 * asynchronous collective also keeps its operand until the done, since the
 * transfer reads it in flight. At instruction i the buffers defined at i and
 * those still to be read at i or later are live together.
 *
 * Categories (MemCategory, by buffer): parameters by role (weight, opt_state,
 * anything else counts as an input); gradients: the operands of optimizer
 * instructions (optimizer=[1]) that are neither optimizer instructions,
 * parameters nor constants, and, through a collective that reduces them,
 * that collective's operand (the gradient before the reduce-scatter or
 * all-reduce); activations: values defined in the forward (before the loss:
 * output 0, seen through collectives and views) that are still live after
 * it; temporaries: everything else, gathered weights (collectives of a
 * parameter) included.
 *
 * Cost: O(n + operands): two passes to find roots and last uses, one sweep of
 * births and deaths for the peak, one pass over the buffers live at the peak.
 */
#include "compiler/passes.h"

#include <stdlib.h>
#include <string.h>

const char *memcat_name(MemCategory c)
{
	switch (c) {
	case MEMCAT_WEIGHTS: return "weights";
	case MEMCAT_OPT_STATE: return "optimizer state";
	case MEMCAT_INPUTS: return "inputs";
	case MEMCAT_GRADIENTS: return "gradients";
	case MEMCAT_ACTIVATIONS: return "activations";
	case MEMCAT_TEMPS: return "temporaries";
	case MEMCAT_COUNT: break;
	}
	return "?";
}

static int is_view(const Inst *in)
{
	return in->nargs == 1 && (in->op == OP_RESHAPE || in->op == OP_COLL_DONE);
}


/* HBM bytes of the buffer v owns (v is its own root). */
static double own_bytes(const Module *m, ValueId v)
{
	const Inst *in = &m->insts[v];
	if (in->op == OP_PARAMETER)
		return (double)type_bytes(&in->type);
	if (in->op == OP_CONSTANT || in->op == OP_DMA_START)
		return 0;
	if (in->mem == MEM_VMEM || in->mem == MEM_CMEM)
		return 0;
	if (in->op == OP_DMA_DONE && in->mem == MEM_NONE) {
		const char *to = in->nargs ? ir_attr_str(&m->insts[in->args[0]], "to", "hbm") : "hbm";
		if (strcmp(to, "hbm") != 0)
			return 0;
	}
	return (double)type_bytes(&in->type);
}

static MemCategory param_cat(const Inst *in)
{
	const char *role = ir_attr_str(in, "role", "input");
	if (!strcmp(role, "weight"))
		return MEMCAT_WEIGHTS;
	if (!strcmp(role, "opt_state"))
		return MEMCAT_OPT_STATE;
	return MEMCAT_INPUTS;
}

/* What pass_memplan needs to know of an instruction, read once. */
enum {
	F_PARAM = 1 << 0, /* a parameter */
	F_CONST = 1 << 1, /* a constant */
	F_COLL = 1 << 2,  /* a collective or coll_start (one operand) */
	F_OPT = 1 << 3,   /* optimizer=[1] */
};

static void keep_largest(MemPlan *p, ValueId v, double bytes, MemCategory cat)
{
	int cap = (int)(sizeof p->largest / sizeof p->largest[0]);
	if (p->nlargest == cap && bytes <= p->largest[cap - 1].bytes)
		return;
	int i = p->nlargest < cap ? p->nlargest++ : cap - 1;
	while (i > 0 && p->largest[i - 1].bytes < bytes) {
		p->largest[i] = p->largest[i - 1];
		i--;
	}
	p->largest[i] = (MemItem){v, bytes, cat};
}

/* prog[i]: how many layers have started up to instruction i, in the
 * forward pass and then in the rest. A layer starts in each at its first
 * matmul there (at its first instruction if it has no matmul there): the
 * work that moves the program on from one layer to the next. Unlike the
 * schedule's segments, this does not advance where a layer's instructions
 * interleave with a neighbour's (the next layer's weights gathered ahead,
 * the previous layer's gradients reduced behind) or where the vector work
 * of every layer runs in one burst (remat minimal's residual stream,
 * recomputed at the start of the backward): a value used within its own
 * layer spans no layer start, one used layers later spans as many. */
static void layer_progress(const Module *m, ValueId fend, int *prog)
{
	int n = m->ninsts;
	int64_t maxl = -1;
	int64_t *layer = malloc(sizeof *layer * (size_t)(n > 0 ? n : 1));
	if (!layer)
		ir_die("out of memory");
	for (int i = 0; i < n; i++) {
		const Inst *in = &m->insts[i];
		layer[i] = in->op == OP_PARAMETER || in->op == OP_CONSTANT || !in->nattrs
			? -1 : ir_attr_int(in, "layer", -1);
		if (layer[i] > maxl)
			maxl = layer[i];
	}
	/* per layer and phase (0 forward, 1 the rest): bit 1 has a matmul,
	 * bit 2 started */
	size_t nl = (size_t)(maxl + 1);
	unsigned char *st = calloc(2 * nl + 1, 1);
	if (!st)
		ir_die("out of memory");
	for (int i = 0; i < n; i++)
		if (layer[i] >= 0 && m->insts[i].op == OP_DOT)
			st[(size_t)(i > fend) * nl + (size_t)layer[i]] |= 1;
	int p = 0;
	for (int i = 0; i < n; i++) {
		if (layer[i] >= 0) {
			unsigned char *s = &st[(size_t)(i > fend) * nl + (size_t)layer[i]];
			if (!(*s & 2) && (m->insts[i].op == OP_DOT || !(*s & 1))) {
				*s |= 2;
				p++;
			}
		}
		prog[i] = p;
	}
	free(st);
	free(layer);
}

int pass_memplan(const Module *m, const Chip *c, MemPlan *plan, Diag *d)
{
	memset(plan, 0, sizeof *plan);
	plan->hbm_bytes = c->hbm_bytes;
	plan->peak_at = -1;
	if (m->level != LEVEL_TILED) {
		diag_error(d, m->file, 0, 0, "memplan needs a tiled-level module (module @%s is "
		           "graph level)", m->name ? m->name : "?");
		return -1;
	}
	int n = m->ninsts;
	size_t nz = (size_t)(n > 0 ? n : 1);
	ValueId *root = malloc(nz * sizeof *root);
	int *last = malloc(nz * sizeof *last);
	double *bytes = malloc(nz * sizeof *bytes);
	unsigned char *cat = malloc(nz);
	double *grow = calloc(nz + 1, sizeof *grow);   /* bytes born at i */
	double *shrink = calloc(nz + 1, sizeof *shrink); /* bytes dead after i */
	ValueId *pw = malloc(nz * sizeof *pw);
	unsigned char *flags = malloc(nz);
	if (!root || !last || !bytes || !cat || !grow || !shrink || !pw || !flags)
		ir_die("out of memory");

	/* One pass over the instructions: roots (buffer owners), sizes, last
	 * uses, and what the later passes need to know of each instruction. */
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		root[v] = is_view(in) ? root[in->args[0]] : v;
		bytes[v] = root[v] == v ? own_bytes(m, v) : 0;
		last[v] = v;
		unsigned char f = 0;
		if (in->op == OP_PARAMETER) {
			f |= F_PARAM;
			cat[v] = (unsigned char)param_cat(in);
		} else {
			cat[v] = MEMCAT_TEMPS;
		}
		if (in->op == OP_CONSTANT)
			f |= F_CONST;
		if (in->nargs == 1 && (in->op == OP_COLL_START || (ir_ops[in->op].flags & OPF_COLLECTIVE)))
			f |= F_COLL;
		if (in->nattrs && ir_attr_int(in, "optimizer", 0))
			f |= F_OPT;
		flags[v] = f;
		for (int k = 0; k < in->nargs; k++) {
			ValueId r = root[in->args[k]];
			if (last[r] < v)
				last[r] = v;
		}
		/* the done of an async collective: its operand was read until now */
		if (in->op == OP_COLL_DONE && in->nargs == 1) {
			const Inst *s = &m->insts[in->args[0]];
			if (s->op == OP_COLL_START && s->nargs == 1 && last[root[s->args[0]]] < v)
				last[root[s->args[0]]] = v;
		}
	}
	for (int i = 0; i < m->noutputs; i++)
		last[root[m->outputs[i]]] = n;

	/* Donation: outputs 1.. onto the weight, then opt_state parameters. */
	int npw = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int v = 0; v < n; v++)
			if ((flags[v] & F_PARAM) && cat[v] == (pass ? MEMCAT_OPT_STATE : MEMCAT_WEIGHTS))
				pw[npw++] = v;
	for (int i = 1; i < m->noutputs && i - 1 < npw; i++) {
		ValueId r = root[m->outputs[i]];
		const Inst *p = &m->insts[pw[i - 1]];
		if (!(flags[r] & F_PARAM) && type_same_shape(&m->insts[r].type, &p->type))
			bytes[r] = 0;
	}

	/* Categories: activations, then gradients over them. */
	ValueId fend = program_forward_end(m);
	for (int v = 0; v < n && v < fend; v++) {
		if (flags[v] & F_PARAM || last[v] <= fend || bytes[v] == 0)
			continue;
		int gathered = (flags[v] & F_COLL) && (flags[root[m->insts[v].args[0]]] & F_PARAM);
		if (!gathered)
			cat[v] = MEMCAT_ACTIVATIONS;
	}
	for (int v = 0; v < n; v++) {
		if (!(flags[v] & F_OPT))
			continue;
		const Inst *in = &m->insts[v];
		for (int k = 0; k < in->nargs; k++) {
			ValueId r = root[in->args[k]];
			while (!(flags[r] & (F_PARAM | F_CONST | F_OPT))) {
				cat[r] = MEMCAT_GRADIENTS;
				if (!(flags[r] & F_COLL))
					break;
				r = root[m->insts[r].args[0]]; /* the gradient before reduction */
			}
		}
	}

	/* Temporaries that span more than two layer starts (layer_progress):
	 * any other buffer live at a point was made since the start of the
	 * point's layer or of one of the two before it, so layers alike keep as
	 * many of them live whatever the depth. Those born after the forward
	 * pass that belong to a layer are tracked through the sweep below
	 * (far_split). */
	int *prog = malloc(nz * sizeof *prog);
	double *far_grow = calloc(nz + 1, sizeof *far_grow);
	double *far_shrink = calloc(nz + 1, sizeof *far_shrink);
	if (!prog || !far_grow || !far_shrink)
		ir_die("out of memory");
	layer_progress(m, fend, prog);
	for (int v = 0; v < n; v++) {
		if (root[v] != v || bytes[v] == 0 || cat[v] != MEMCAT_TEMPS)
			continue;
		int tagged = m->insts[v].nattrs && ir_attr_int(&m->insts[v], "layer", -1) >= 0;
		if (prog[last[v] < n ? last[v] : n - 1] - prog[v] <= (tagged ? 2 : 1))
			continue;
		plan->far_temps[v > fend] += bytes[v];
		if (v > fend && tagged) {
			far_grow[v] += bytes[v]; /* a layer's: one more layer, one more */
			far_shrink[last[v] < n ? last[v] : n] += bytes[v];
		} else if (v > fend) {
			plan->far_untagged += bytes[v];
		}
	}
	free(prog);

	/* Sweep: live bytes at instruction i = parameters + buffers born at or
	 * before i and dying at or after i. */
	double live = 0, far = 0;
	for (int v = 0; v < n; v++) {
		if (root[v] != v || bytes[v] == 0)
			continue;
		if (flags[v] & F_PARAM) {
			live += bytes[v];
			continue;
		}
		grow[v] += bytes[v];
		shrink[last[v] < n ? last[v] : n] += bytes[v];
	}
	plan->peak_bytes = live;
	plan->peak_at = n > 0 ? 0 : -1;
	plan->phase_peak[0] = plan->phase_peak[1] = live;
	for (int i = 0; i < n; i++) {
		live += grow[i];
		far += far_grow[i];
		double *ph = &plan->phase_peak[i > fend];
		if (live > *ph)
			*ph = live;
		if (live > plan->peak_bytes) {
			plan->peak_bytes = live;
			plan->peak_at = i;
		}
		if (i > fend) { /* with and without a layer's far temporaries live */
			double *fp = &plan->far_split[far > 0];
			if (live > *fp)
				*fp = live;
		}
		live -= shrink[i];
		far -= far_shrink[i];
	}
	free(far_grow);
	free(far_shrink);

	/* What is live at the peak. */
	int at = plan->peak_at, first_opt = n;
	for (int v = 0; v < n && first_opt == n; v++)
		if ((flags[v] & F_OPT) && m->insts[v].nargs > 0)
			first_opt = v; /* the update's first op (not a constant of it) */
	for (int v = 0; v < n; v++) {
		if (root[v] != v || bytes[v] == 0)
			continue;
		plan->total[cat[v]] += bytes[v];
		if ((flags[v] & F_PARAM) || last[v] >= first_opt)
			plan->to_update[cat[v]] += bytes[v];
		if (!(flags[v] & F_PARAM) && !(v <= at && last[v] >= at))
			continue;
		plan->at_peak[cat[v]] += bytes[v];
		keep_largest(plan, v, bytes[v], (MemCategory)cat[v]);
	}
	plan->fits = plan->peak_bytes <= plan->hbm_bytes;

	free(root);
	free(last);
	free(bytes);
	free(cat);
	free(grow);
	free(shrink);
	free(pw);
	free(flags);
	return 0;
}

static void fmt_bytes(char *buf, size_t n, double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
	else if (b >= 1024.0 * 1024)
		snprintf(buf, n, "%.2f MiB", b / (1024.0 * 1024));
	else if (b >= 1024.0)
		snprintf(buf, n, "%.2f KiB", b / 1024.0);
	else
		snprintf(buf, n, "%.0f B", b);
}

/* A name a user can find: the parameter's name, the value's name, or the
 * producing op (of which parameter) and its layer. */
static void describe(const Module *m, ValueId v, char *buf, size_t n)
{
	const Inst *in = &m->insts[v];
	const char *pname = in->op == OP_PARAMETER ? ir_attr_str(in, "name", in->name) : NULL;
	if (pname) {
		snprintf(buf, n, "%s", pname);
		return;
	}
	const char *op = in->op == OP_COLL_START ? ir_attr_str(in, "op", "coll_start")
	                                         : op_name(in->op);
	int64_t layer = ir_attr_int(in, "layer", -1);
	const char *of = NULL;
	if (in->nargs == 1 && ((ir_ops[in->op].flags & OPF_COLLECTIVE) || in->op == OP_COLL_START)) {
		ValueId a = in->args[0];
		while (m->insts[a].nargs == 1 && is_view(&m->insts[a]))
			a = m->insts[a].args[0];
		if (m->insts[a].op == OP_PARAMETER)
			of = ir_attr_str(&m->insts[a], "name", m->insts[a].name);
	}
	int k;
	if (in->name)
		k = snprintf(buf, n, "%%%s (%s", in->name, op);
	else
		k = snprintf(buf, n, "%%%d (%s", (int)v, op);
	if (k < 0 || (size_t)k >= n)
		return;
	if (of)
		k += snprintf(buf + k, n - (size_t)k, " of %s", of);
	if (k >= 0 && (size_t)k < n && layer >= 0)
		k += snprintf(buf + k, n - (size_t)k, " in layer %lld", (long long)layer);
	if (k >= 0 && (size_t)k < n)
		snprintf(buf + k, n - (size_t)k, ")");
}

void memplan_error(const Module *m, const MemPlan *plan, Diag *d)
{
	const double gib = 1024.0 * 1024 * 1024;
	char list[640] = "", split[256] = "";
	size_t len = 0;
	/* six items keep the whole message within a Diag */
	for (int i = 0; i < plan->nlargest && i < 6 && len < sizeof list; i++) {
		char name[160], size[32];
		describe(m, plan->largest[i].v, name, sizeof name);
		fmt_bytes(size, sizeof size, plan->largest[i].bytes);
		int k = snprintf(list + len, sizeof list - len, "%s%s (%s, %s)", i ? ", " : "", name,
		                 memcat_name(plan->largest[i].cat), size);
		if (k < 0)
			break;
		len += (size_t)k;
	}
	len = 0;
	for (int c = 0; c < MEMCAT_COUNT && len < sizeof split; c++) {
		if (plan->at_peak[c] <= 0)
			continue;
		char size[32];
		fmt_bytes(size, sizeof size, plan->at_peak[c]);
		int k = snprintf(split + len, sizeof split - len, "%s%s %s", len ? ", " : "",
		                 memcat_name((MemCategory)c), size);
		if (k < 0)
			break;
		len += (size_t)k;
	}
	diag_error(d, m->file, 0, 0, "does not fit in HBM: needs %.2f GiB per chip, the chip has "
	           "%.2f GiB (over by %.2f GiB); largest: %s; at the peak: %s",
	           plan->peak_bytes / gib, plan->hbm_bytes / gib,
	           (plan->peak_bytes - plan->hbm_bytes) / gib, plan->nlargest ? list : "nothing",
	           len ? split : "nothing");
}
