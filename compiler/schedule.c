/*
 * The schedule pass: order and overlap of the per-chip program.
 *
 * Requires: a tiled module (LEVEL_TILED). Produces a new tiled module in
 * which every collective (all_gather, reduce_scatter, all_reduce, all_to_all,
 * collective_permute) is an asynchronous pair
 *
 *     %s = coll_start(%x) {op="<collective>", <its attributes>}
 *     ...                   compute that does not need the result
 *     %y = coll_done(%s)    the value the users read (keeps the name)
 *
 * Placement follows XLA's latency-hiding scheduler:
 *   - a start goes as early as its operand allows: right after the operand's
 *     definition (after its done when the operand is itself a collective);
 *   - an operand that is a parameter is ready at time zero; such starts
 *     (FSDP weight all-gathers) are held to a prefetch window: no earlier
 *     than the first instruction of the layer prefetch_layers layers before
 *     the layer of the first user, so that gathered weights do not all live
 *     at once (see "layers" below), and behind every start in that window
 *     whose result is needed sooner (see "order" below);
 *   - a done goes as late as possible: right before the first user (at the
 *     end of the program when only an output reads it), but a collective of
 *     a computed value must be done once prefetch_layers segments after its
 *     own have run: a gradient reduce-scatter overlaps that much backward
 *     compute without holding every unreduced gradient to the optimizer.
 * Every other instruction keeps its relative order, except that parameters
 * (the program's arguments, ready at time zero) are hoisted, in their
 * original order, to the head of the program, so a weight's all-gather can
 * be placed anywhere. With overlap = 0 each collective becomes a start
 * immediately followed by its done, where a memory-aware scheduler without
 * async collectives puts it: right after the operand when the collective
 * does not grow its data (reduce-scatter, all-reduce, all-to-all, permute),
 * right before the first user when it does (all-gather).
 *
 * Layers. Instructions carry layer=[i] where the frontends and remat put it;
 * the backward pass (after the loss) mostly does not. The program is cut into
 * segments: a new segment begins at every tagged instruction whose (layer,
 * forward-or-backward) differs from the last tagged one; untagged
 * instructions belong to the segment they follow. Parameters and constants
 * (which autodiff copies freely) are not looked at. A segment is one layer
 * of the forward, or one layer of the backward (its recomputation under
 * remat and the gradient ops that follow it). The forward ends at the loss:
 * the first output, looked through collectives and views.
 *
 * Order: the engine (sim/engine.h) issues each unit's ops in program order,
 * one at a time, so the start positions are the order collectives enter the
 * ICI (or DCN) queue. A weight prefetch placed ahead of a collective that
 * the compute waits for first (a tensor-parallel all-reduce of the current
 * layer) would hold it up; so a prefetch is queued after every start of an
 * earlier deadline (first use) in its window. A done placed late leaves the
 * compute units free to run everything before it.
 *
 * Cost: O(n + operands) to analyse, a Fenwick-tree sweep for the window
 * queries (O(n log n)), a merge sort of the collectives' placement keys
 * merged with the instructions' (already in order), and one pass to emit,
 * which interns the attributes' strings.
 */
#include "compiler/passes.h"

#include <stdlib.h>
#include <string.h>

/* Placement keys: instruction i of the input owns five slots, in order:
 *   5i+0  starts held back by the prefetch window to the start of i's segment
 *   5i+1  dones of collectives whose first user is i
 *   5i+2  starts of collectives whose operand is a collective first used at i
 *   5i+3  instruction i itself
 *   5i+4  starts right after i (their operand) */
enum { SLOT_WINDOW, SLOT_DONE, SLOT_CHAIN, SLOT_INST, SLOT_AFTER, NSLOT };

typedef enum ItemKind { ITEM_INST, ITEM_START, ITEM_DONE } ItemKind;

typedef struct Item {
	int64_t key;   /* placement key, see above */
	ValueId v;     /* the input instruction */
	ItemKind kind;
} Item;

static int is_collective(const Inst *in)
{
	return (ir_ops[in->op].flags & OPF_COLLECTIVE) != 0;
}

ValueId program_forward_end(const Module *m)
{
	if (m->noutputs < 1)
		return m->ninsts;
	ValueId v = m->outputs[0];
	for (;;) {
		const Inst *in = &m->insts[v];
		if (in->nargs != 1 || !(is_collective(in) || in->op == OP_COLL_START ||
		                        in->op == OP_COLL_DONE || in->op == OP_RESHAPE ||
		                        in->op == OP_CONVERT))
			return v;
		v = in->args[0];
	}
}

/* seg[i]: the segment of instruction i (nondecreasing); segstart[s]: the
 * first instruction of segment s. Returns the number of segments (passes.h:
 * memplan and the tests use the same notion). */
int schedule_segments(const Module *m, int *seg, int *segstart)
{
	int n = m->ninsts, s = 0;
	ValueId fend = program_forward_end(m);
	int64_t last_layer = -1;
	int last_bwd = 0;
	if (n > 0)
		segstart[0] = 0;
	for (int i = 0; i < n; i++) {
		const Inst *in = &m->insts[i];
		int64_t layer = in->op == OP_PARAMETER || in->op == OP_CONSTANT || !in->nattrs
			? -1 : ir_attr_int(in, "layer", -1);
		int bwd = i > fend;
		if (layer >= 0 && (layer != last_layer || bwd != last_bwd)) {
			/* segment 0 is what precedes the first tagged instruction
			 * (embeddings), unless that is nothing */
			if (i > 0)
				segstart[++s] = i;
			last_layer = layer;
			last_bwd = bwd;
		}
		seg[i] = s;
	}
	return n > 0 ? s + 1 : 0;
}

/* Copies instructions into the output module. A program has few distinct
 * strings in its attributes (keys, mesh axis names, roles), so each is
 * copied into the output's arena once (interned); operands, attributes and
 * their integer and name lists come from blocks sized up front. This keeps
 * the emit pass close to the cost of copying the Inst array. */
typedef struct Copier {
	Module *out;
	int share;        /* 1: the output owns the source's arena; point into it */
	const char **tab; /* (tabn) interned strings, open addressing; NULL: empty */
	size_t tabn, tabused;
	ValueId *args;    /* blocks, consumed front to back */
	Attr *attrs;
	int64_t *ints;
	const char **names;
} Copier;

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static const char *intern(Copier *c, const char *s)
{
	if (ir_attr_key_is_static(s)) /* lives as long as the program */
		return s;
	if (2 * (c->tabused + 1) > c->tabn) {
		size_t n = c->tabn ? 2 * c->tabn : 1024;
		const char **t = calloc(n, sizeof *t);
		if (!t)
			ir_die("out of memory");
		for (size_t i = 0; i < c->tabn; i++) {
			if (!c->tab[i])
				continue;
			size_t j = (size_t)str_hash(c->tab[i]) & (n - 1);
			while (t[j])
				j = (j + 1) & (n - 1);
			t[j] = c->tab[i];
		}
		free(c->tab);
		c->tab = t;
		c->tabn = n;
	}
	size_t j = (size_t)str_hash(s) & (c->tabn - 1);
	for (; c->tab[j]; j = (j + 1) & (c->tabn - 1))
		if (!strcmp(c->tab[j], s))
			return c->tab[j];
	c->tabused++;
	return c->tab[j] = arena_strdup(&c->out->arena, s);
}

/* Sizes the blocks for copying every instruction of m once, plus extra
 * instructions of one operand and extra attributes. */
static void copier_init(Copier *c, Module *out, const Module *m, int extra, int share)
{
	memset(c, 0, sizeof *c);
	c->out = out;
	c->share = share;
	size_t nargs = (size_t)extra, nattrs = (size_t)extra, nints = 1, nnames = 1, most = 0;
	for (int v = 0; v < m->ninsts; v++) {
		const Inst *in = &m->insts[v];
		nargs += (size_t)in->nargs;
		if (share) { /* only the lists that get an extra attribute are copied */
			most = (size_t)in->nattrs > most ? (size_t)in->nattrs : most;
			continue;
		}
		nattrs += (size_t)in->nattrs;
		for (int k = 0; k < in->nattrs; k++) {
			const Attr *a = &in->attrs[k];
			if (a->kind == ATTR_INTS)
				nints += (size_t)(a->n ? a->n : 1);
			else if (a->kind == ATTR_NAMES)
				nnames += (size_t)(a->n ? a->n : 1);
		}
	}
	if (share)
		nattrs = (size_t)extra * (most + 1);
	/* every slot handed out is written before it is read */
	c->args = arena_alloc_uninit(&out->arena, sizeof(ValueId) * (nargs ? nargs : 1));
	c->attrs = arena_alloc_uninit(&out->arena, sizeof(Attr) * (nattrs ? nattrs : 1));
	c->ints = arena_alloc_uninit(&out->arena, sizeof(int64_t) * nints);
	c->names = arena_alloc_uninit(&out->arena, sizeof(char *) * nnames);
}

/* Appends a copy of src with operands args and, if extra is non-NULL, one
 * more attribute. */
static ValueId copier_add(Copier *c, const Inst *src, const ValueId *args, const Attr *extra)
{
	Module *out = c->out;
	if (out->ninsts == out->cap) /* not when sized up front */
		ir_reserve(out, out->cap ? out->cap * 2 : 64);
	Inst *ni = &out->insts[out->ninsts]; /* built in place */
	*ni = *src;
	if (ni->nargs) {
		ni->args = c->args;
		c->args += ni->nargs;
		for (int k = 0; k < ni->nargs; k++)
			ni->args[k] = args[k];
	}
	int na = src->nattrs + (extra != NULL);
	if (c->share && !extra) /* the attribute list lives in the adopted arena */
		return out->ninsts++;
	ni->attrs = na ? c->attrs : NULL;
	c->attrs += na;
	for (int k = 0; k < src->nattrs && c->share; k++)
		ni->attrs[k] = src->attrs[k]; /* what they point to is adopted too */
	for (int k = 0; k < src->nattrs && !c->share; k++) {
		const Attr *a = &src->attrs[k];
		Attr b = *a;
		b.key = intern(c, a->key);
		switch (a->kind) {
		case ATTR_INTS:
			b.ints = c->ints;
			c->ints += a->n ? a->n : 1;
			for (int i = 0; i < a->n; i++)
				b.ints[i] = a->ints[i];
			if (!a->n)
				b.ints[0] = 0;
			break;
		case ATTR_STR:
			b.s = intern(c, a->s);
			break;
		case ATTR_NAMES:
			b.names = c->names;
			c->names += a->n ? a->n : 1;
			b.names[0] = NULL;
			for (int i = 0; i < a->n; i++)
				b.names[i] = intern(c, a->names[i]);
			break;
		case ATTR_FLOAT:
			break;
		}
		ni->attrs[k] = b;
	}
	if (extra) {
		Attr b = *extra;
		b.key = intern(c, extra->key);
		if (b.kind == ATTR_STR)
			b.s = intern(c, extra->s);
		ni->attrs[src->nattrs] = b;
	}
	ni->nattrs = na;
	if (!c->share)
		ni->name = src->name ? arena_strdup(&c->out->arena, src->name) : NULL;
	return out->ninsts++;
}

static Module *schedule(const Module *m, Arena *take, const ScheduleOptions *o, Diag *d);

Module *pass_schedule(const Module *m, const ScheduleOptions *o, Diag *d)
{
	return schedule(m, NULL, o, d);
}

Module *pass_schedule_take(Module *m, const ScheduleOptions *o, Diag *d)
{
	return schedule(m, &m->arena, o, d);
}

/* take: m's arena, for the output to adopt; NULL: copy what lives there */
static Module *schedule(const Module *m, Arena *take, const ScheduleOptions *o, Diag *d)
{
	ScheduleOptions dflt = {1, 1};
	if (!o)
		o = &dflt;
	if (m->level != LEVEL_TILED) {
		diag_error(d, m->file, 0, 0, "schedule needs a tiled-level module (module @%s is "
		           "graph level)", m->name ? m->name : "?");
		return NULL;
	}
	if (o->prefetch_layers < 0) {
		diag_error(d, m->file, 0, 0, "prefetch layers must be >= 0, not %d",
		           o->prefetch_layers);
		return NULL;
	}
	int n = m->ninsts;
	size_t nz = (size_t)(n > 0 ? n : 1);
	ValueId *first_use = malloc(nz * sizeof *first_use);
	int *seg = malloc(nz * sizeof *seg);
	int *segstart = malloc(nz * sizeof *segstart);
	Item *items = malloc(2 * nz * sizeof *items);
	Item *sorted = malloc(2 * nz * sizeof *sorted);
	ValueId *map = malloc(nz * sizeof *map);
	if (!first_use || !seg || !segstart || !items || !sorted || !map)
		ir_die("out of memory");

	int maxargs = 1, nparams = 0;
	for (int v = 0; v < n; v++)
		first_use[v] = n;
	for (int v = n - 1; v >= 0; v--) {
		const Inst *in = &m->insts[v];
		for (int k = 0; k < in->nargs; k++)
			first_use[in->args[k]] = v;
		if (in->nargs > maxargs)
			maxargs = in->nargs;
		nparams += in->op == OP_PARAMETER;
	}
	int nseg = schedule_segments(m, seg, segstart);

	/* Keys, doubled: 2k for slot k, 2k+1 for a window start that must
	 * follow everything at slot k. Parameters are emitted first, outside
	 * the sort. */
	int nitems = 0;
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		if (in->op == OP_PARAMETER)
			continue;
		if (!is_collective(in) || in->nargs != 1) {
			items[nitems++] = (Item){2 * ((int64_t)NSLOT * v + SLOT_INST), v, ITEM_INST};
			continue;
		}
		int64_t start, done;
		ValueId a = in->args[0], u = first_use[v];
		const Inst *ai = &m->insts[a];
		/* pos: where the operand is available (after its done when it is
		 * itself a collective); start there is "as early as possible" */
		ValueId pos = is_collective(ai) && ai->nargs == 1 ? first_use[a] : a;
		int64_t early = (int64_t)NSLOT * pos + (pos == a ? SLOT_AFTER : SLOT_CHAIN);
		if (u == n && (ai->op == OP_PARAMETER || !o->overlap)) {
			/* only an output reads it: in place */
			start = done = (int64_t)NSLOT * v + SLOT_INST;
		} else if (!o->overlap) {
			/* blocking, where a memory-aware scheduler puts it: a collective
			 * that does not grow its data (reduce-scatter, all-reduce)
			 * right after its operand, one that grows it (all-gather) right
			 * before its first user */
			if (type_bytes(&in->type) <= type_bytes(&ai->type) && ai->op != OP_PARAMETER)
				start = done = early;
			else
				start = done = (int64_t)NSLOT * u + SLOT_DONE;
		} else if (ai->op == OP_PARAMETER) {
			start = -1; /* a window start: placed below */
			done = (int64_t)NSLOT * u + SLOT_DONE;
		} else {
			start = early;
			/* done before the first user, and at the latest once the
			 * prefetch_layers segments after its own have run: a gradient
			 * reduce-scatter then overlaps that much of the backward without
			 * keeping every unreduced gradient alive to the optimizer */
			ValueId due = u;
			int64_t sb = (int64_t)seg[pos] + 1 + o->prefetch_layers;
			if (sb < nseg && segstart[sb] < due)
				due = segstart[sb];
			done = (int64_t)NSLOT * due + SLOT_DONE;
		}
		items[nitems++] = (Item){start < 0 ? -1 : 2 * start, v, ITEM_START};
		items[nitems++] = (Item){2 * done, v, ITEM_DONE};
	}
	/* Window starts: from the first instruction of the segment
	 * prefetch_layers before the user's, but behind every start already
	 * placed between there and the user whose result is needed sooner, so
	 * that a prefetch never holds up, on the in-order ICI queue, a collective
	 * the compute waits for first. Offline, by increasing deadline (first
	 * use): a Fenwick tree over keys holds the starts of earlier deadline;
	 * the query is the last of them before the user. */
	int64_t nfen = (int64_t)NSLOT * (n + 1);
	int *head_s = malloc((nz + 1) * sizeof *head_s), *head_w = malloc((nz + 1) * sizeof *head_w);
	int *next = malloc(2 * nz * sizeof *next);
	if (!head_s || !head_w || !next)
		ir_die("out of memory");
	for (int u = 0; u <= n; u++)
		head_s[u] = head_w[u] = -1;
	int nwindow = 0;
	for (int i = 0; i < nitems; i++) {
		if (items[i].kind != ITEM_START)
			continue;
		ValueId u = first_use[items[i].v];
		int *head = items[i].key < 0 ? head_w : head_s;
		nwindow += items[i].key < 0;
		next[i] = head[u];
		head[u] = i;
	}
	/* without window starts nothing queries the tree: no sweep at all */
	int *fen = nwindow ? calloc((size_t)nfen + 1, sizeof *fen) : NULL;
	if (nwindow && !fen)
		ir_die("out of memory");
	int fen_log = 1;
	while (((int64_t)1 << fen_log) <= nfen)
		fen_log++;
	for (int u = 0; u <= n && nwindow; u++) {
		for (int i = head_w[u]; i >= 0; i = next[i]) {
			int s = seg[u] - o->prefetch_layers;
			int64_t w = s < 0 ? SLOT_WINDOW : (int64_t)NSLOT * segstart[s] + SLOT_WINDOW;
			/* how many earlier-deadline starts have keys < NSLOT*u */
			int64_t lim = (int64_t)NSLOT * u, cnt = 0;
			for (int64_t p = lim; p > 0; p -= p & -p)
				cnt += fen[p];
			int64_t last = -1;
			if (cnt > 0) { /* the cnt-th present key (Fenwick positions are key+1) */
				int64_t pos = 0, rem = cnt;
				for (int b = fen_log; b >= 0; b--) {
					int64_t np = pos + ((int64_t)1 << b);
					if (np <= nfen && fen[np] < rem) {
						pos = np;
						rem -= fen[np];
					}
				}
				last = pos; /* position pos+1, key pos */
			}
			items[i].key = last >= w ? 2 * last + 1 : 2 * w;
		}
		for (int i = head_s[u]; i >= 0; i = next[i])
			for (int64_t p = items[i].key / 2 + 1; p <= nfen; p += p & -p)
				fen[p]++;
	}
	free(fen);
	free(head_s);
	free(head_w);
	free(next);
	/* Stable sort by key: equal keys keep input order (a start before its
	 * own done; starts and dones in collective order). The instruction
	 * items are in key order already, so only the starts and dones are
	 * sorted (a bottom-up merge sort of (key, input position)), then the
	 * two runs are merged. */
	{
		typedef struct { Item it; int pos; } PosItem;
		int nc = 0;
		PosItem *cs = malloc(nz * 2 * sizeof *cs), *tmp = malloc(nz * 2 * sizeof *tmp);
		if (!cs || !tmp)
			ir_die("out of memory");
		for (int i = 0; i < nitems; i++)
			if (items[i].kind != ITEM_INST)
				cs[nc++] = (PosItem){items[i], i};
		for (int w = 1; w < nc; w *= 2) {
			for (int lo = 0; lo < nc; lo += 2 * w) {
				int mid = lo + w < nc ? lo + w : nc, hi = lo + 2 * w < nc ? lo + 2 * w : nc;
				int a = lo, b = mid, k = lo;
				while (a < mid && b < hi)
					tmp[k++] = cs[b].it.key < cs[a].it.key ? cs[b++] : cs[a++];
				while (a < mid)
					tmp[k++] = cs[a++];
				while (b < hi)
					tmp[k++] = cs[b++];
			}
			PosItem *t = cs;
			cs = tmp;
			tmp = t;
		}
		int a = 0, b = 0, k = 0;
		for (;;) {
			while (a < nitems && items[a].kind != ITEM_INST)
				a++;
			if (a >= nitems || b >= nc)
				break;
			if (cs[b].it.key < items[a].key ||
			    (cs[b].it.key == items[a].key && cs[b].pos < a))
				sorted[k++] = cs[b++].it;
			else
				sorted[k++] = items[a++];
		}
		for (; a < nitems; a++)
			if (items[a].kind == ITEM_INST)
				sorted[k++] = items[a];
		while (b < nc)
			sorted[k++] = cs[b++].it;
		free(cs);
		free(tmp);
	}

	Module *out = ir_module_empty_like(m);
	if (take)
		arena_adopt(&out->arena, take);
	/* room for every instruction at once: no regrowth while emitting */
	ir_reserve(out, nparams + nitems + 1);
	ValueId *args = malloc(sizeof(ValueId) * (size_t)maxargs);
	if (!args)
		ir_die("out of memory");
	int ncoll = nitems - (n - nparams); /* nitems = n - nparams - ncoll + 2 ncoll */
	Copier cp;
	copier_init(&cp, out, m, ncoll, take != NULL);
	for (int v = 0; v < n; v++)
		if (m->insts[v].op == OP_PARAMETER)
			map[v] = copier_add(&cp, &m->insts[v], NULL, NULL);
	ValueId *start_of = first_use; /* reused: first_use is no longer needed */
	for (int i = 0; i < nitems; i++) {
		const Item *it = &sorted[i];
		const Inst *in = &m->insts[it->v];
		if (it->kind == ITEM_INST) {
			for (int k = 0; k < in->nargs; k++)
				args[k] = map[in->args[k]];
			map[it->v] = copier_add(&cp, in, args, NULL);
		} else if (it->kind == ITEM_START) {
			/* op="<collective>" after the collective's own attributes */
			Attr opattr = {.key = "op", .kind = ATTR_STR, .s = op_name(in->op)};
			Inst si = *in;
			si.op = OP_COLL_START;
			si.name = NULL; /* the done carries the value's name */
			args[0] = map[in->args[0]];
			start_of[it->v] = copier_add(&cp, &si, args, &opattr);
		} else {
			ValueId s = start_of[it->v];
			Inst dn = {0};
			dn.op = OP_COLL_DONE;
			dn.type = out->insts[s].type;
			dn.nargs = 1;
			dn.unit = out->insts[s].unit;
			dn.mem = out->insts[s].mem;
			dn.name = in->name;
			dn.line = in->line;
			dn.col = in->col;
			map[it->v] = copier_add(&cp, &dn, &s, NULL);
		}
	}
	free(cp.tab);
	for (int i = 0; i < m->noutputs; i++)
		ir_output(out, map[m->outputs[i]]);
	out->ret_line = m->ret_line;
	out->ret_col = m->ret_col;

	free(args);
	free(first_use);
	free(seg);
	free(segstart);
	free(items);
	free(sorted);
	free(map);
	return out;
}
