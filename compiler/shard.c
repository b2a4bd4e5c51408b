/*
 * shard: global graph -> per-chip SPMD graph with collectives.
 *
 * Requires: a verified graph-level module with global shapes, a mesh in
 * g->mesh, and logical=[...] on the parameters that should be sharded.
 * Produces: a new graph-level module of local shapes, no sharding
 * annotations, with all_gather / reduce_scatter / all_reduce / all_to_all
 * inserted, and per-partition slices (slice ops carrying partition=[axes],
 * which on chip c take c's shard) where a value becomes more sharded.
 * partition=[axes] also marks an iota counting along a split dim and a
 * one_hot whose depth is split (both start at the chip's offset), and a
 * gather from a table split by rows (the chip holds rows from its offset;
 * other rows read as zero, a partial sum). Constant-like values (constants,
 * iotas, one-hots and what is computed from them alone) are made where they
 * are used, in the sharding the user wants.
 *
 * Walks the instructions once in order. Each global value v has a state
 * st[v] (per-dim mesh-axis sets, plus axes over which it is a pending partial
 * sum or max) and a local value loc[v] in the output holding exactly that
 * state. An op states the shardings it needs of its operands; reshard()
 * turns an operand's state into the needed one with the cheapest collective:
 * pending partials become reduce-scatters onto dims the target shards, else
 * all-reduces; an axis moving from one dim to another is an all-to-all; an
 * axis dropped is an all-gather; an axis added is a local slice (free of
 * communication). Before the walk, hints carry the shardings of weights and
 * optimizer state backward through same-shape elementwise chains (the
 * optimizer update), so a weight gradient is reduce-scattered straight into
 * its weight's sharding, as ZeRO/FSDP do.
 */
#include "shard.h"

#include <stdlib.h>
#include <string.h>

typedef struct Shd {
	uint32_t s[IR_MAX_RANK]; /* mesh axes per dim */
	uint32_t partial;        /* pending partial reduction over these axes */
	int pmax;                /* the partial is a max (else a sum) */
	int free;                /* constant-like: any sharding costs nothing */
} Shd;

/* A resharded copy of a value, reusable by users in the same region
 * (region_of: a layer's forward pass or its backward, or a part of a pass
 * outside the layers): a weight is gathered once per layer and pass, as XLA
 * does, not once per use and not once for the whole step. */
typedef struct CacheEntry {
	ValueId gv;
	int64_t region;
	Shd want;
	ValueId local;
	int next;           /* the next older entry of the same gv, -1 */
} CacheEntry;

typedef struct Ctx {
	const Module *g;
	Module *out;
	const Mesh *mesh;
	const ShardRules *rules;
	Shd *st;            /* (g->ninsts) */
	ValueId *loc;       /* (g->ninsts) */
	Shd *hint;          /* (g->ninsts) */
	unsigned char *has_hint;
	/* saved[v]: a forward value the backward reads, resolved where it is
	 * made onto keep[v] if it would stay a pending partial (keep_saved) */
	unsigned char *saved;
	Shd *keep;          /* (g->ninsts) where saved[v] == 2 */
	ShardStats *stats;
	Diag *d;
	/* the instruction being partitioned; collectives inserted for it carry
	 * its layer=[i], and resharded copies are shared within its region */
	ValueId cur;
	int64_t region;     /* cur's region (region_of) */
	int64_t *regions;   /* (g->ninsts) the region each value was made in */
	ValueId loss;       /* the first output: instructions after it are backward */
	CacheEntry *cache;  /* (ncache) resharded copies */
	int ncache, capcache;
	int *head;          /* (g->ninsts) newest cache entry of each value, -1 */
} Ctx;


static int64_t axes_size(const Ctx *c, uint32_t axes) { return mesh_axes_size(c->mesh, axes); }

static uint32_t used_axes(const Shd *s, int rank)
{
	uint32_t u = 0;
	for (int i = 0; i < rank; i++)
		u |= s->s[i];
	return u;
}

static Type local_type(const Ctx *c, const Type *gt, const Shd *s)
{
	Type t = *gt;
	for (int i = 0; i < t.rank; i++) {
		/* an uneven split pads the last shard, as GSPMD does */
		int64_t n = axes_size(c, s->s[i]);
		t.dims[i] = (t.dims[i] + n - 1) / n;
		t.shard[i] = 0;
	}
	return t;
}

static double local_bytes(const Ctx *c, const Type *gt, const Shd *s)
{
	Type t = local_type(c, gt, s);
	return (double)type_bytes(&t);
}

/* ---- Emitting ----------------------------------------------------------- */

/* Checks an emitted instruction against its shape rule; a mismatch is a bug
 * in this pass. An internal invariant, checked in debug (sanitizer) builds
 * only, like an assert: it re-infers every emitted type, a sixth of the
 * pass's time. */
static void check_inst(Module *out, ValueId v)
{
#ifdef PODSIM_DEBUG
	char err[256];
	Type t;
	Inst *in = &out->insts[v];
	if (ir_infer_type(out, in, &t, err, sizeof err) != 0)
		ir_die("shard: emitted %s is invalid: %s", op_name(in->op), err);
	if (!type_same_shape(&t, &in->type))
		ir_die("shard: emitted %s has the wrong local type", op_name(in->op));
#else
	(void)out;
	(void)v;
#endif
}

/* Emits gi with local operands args and local result type lt. */
static ValueId emit(Ctx *c, const Inst *gi, const ValueId *args, const Type *lt)
{
	ValueId v = ir_clone_inst(c->out, c->g, (ValueId)(gi - c->g->insts), args);
	Inst *in = &c->out->insts[v];
	in->type = *lt;
	/* numbered names would collide with the values this pass adds */
	if (in->name && in->name[0] >= '0' && in->name[0] <= '9')
		in->name = NULL;
	return v;
}

static ValueId coll(Ctx *c, Op op, ValueId x, uint32_t axes, int dim, int dim2, int pmax)
{
	ValueId v;
	if (op == OP_ALL_TO_ALL) {
		v = ir_collective(c->out, op, x, axes, dim);
		int64_t s = dim, k = dim2;
		ir_set_ints(c->out, v, "split_dim", 1, &s);
		ir_set_ints(c->out, v, "concat_dim", 1, &k);
		char err[256];
		Type t;
		if (ir_infer_type(c->out, &c->out->insts[v], &t, err, sizeof err))
			ir_die("shard: all_to_all: %s", err);
		c->out->insts[v].type = t;
	} else {
		v = ir_collective(c->out, op, x, axes, dim);
	}
	if (pmax)
		ir_set_str(c->out, v, "reduce", "max");
	const Attr *layer = ir_attr(&c->g->insts[c->cur], "layer");
	if (layer && layer->kind == ATTR_INTS)
		ir_set_ints(c->out, v, "layer", layer->n, layer->ints);
	if (c->stats)
		c->stats->collectives++;
	return v;
}

static void set_partition(Ctx *c, ValueId v, uint32_t axes)
{
	const char *names[IR_MAX_MESH_AXES];
	int n = 0;
	for (int i = 0; i < c->mesh->naxes; i++)
		if (axes & (1u << i))
			names[n++] = c->mesh->axes[i].name;
	ir_set_names(c->out, v, "partition", n, names);
}

/* This chip's shard of x along dim over axes: a slice the chip takes at its
 * own coordinate (partition=[axes]); start/limit describe chip 0's. */
static ValueId local_slice(Ctx *c, ValueId x, int dim, uint32_t axes)
{
	const Type *t = &c->out->insts[x].type;
	int64_t start[IR_MAX_RANK] = {0}, limit[IR_MAX_RANK];
	for (int i = 0; i < t->rank; i++)
		limit[i] = t->dims[i];
	int64_t k = axes_size(c, axes);
	limit[dim] = (limit[dim] + k - 1) / k; /* padded when uneven */
	ValueId v = ir_slice(c->out, x, start, limit);
	set_partition(c, v, axes);
	return v;
}

/* ---- Resharding ---------------------------------------------------------- */

/* After gathering an unevenly split dim, drops the padding. */
static ValueId trim_padding(Ctx *c, ValueId x, const Type *gt, const Shd *cur, int d)
{
	Type want = local_type(c, gt, cur);
	const Type *have = &c->out->insts[x].type;
	if (have->dims[d] == want.dims[d])
		return x;
	int64_t start[IR_MAX_RANK] = {0}, limit[IR_MAX_RANK];
	for (int i = 0; i < have->rank; i++)
		limit[i] = have->dims[i];
	limit[d] = want.dims[d];
	return ir_slice(c->out, x, start, limit);
}


/* Re-emits a constant-like value (constant, iota, broadcast of one) directly
 * in sharding want. */
static ValueId reshard(Ctx *c, ValueId gv, const Shd *want);

static ValueId remake_free(Ctx *c, ValueId gv, const Shd *want)
{
	const Inst *gi = &c->g->insts[gv];
	Type lt = local_type(c, &gi->type, want);
	if (gi->op == OP_BROADCAST) {
		int n;
		const int64_t *dims = ir_attr_ints(gi, "dims", &n);
		Shd os;
		memset(&os, 0, sizeof os);
		os.free = 1;
		for (int i = 0; i < n; i++)
			os.s[i] = want->s[dims[i]];
		ValueId a = remake_free(c, gi->args[0], &os);
		ValueId v = emit(c, gi, &a, &lt);
		check_inst(c->out, v);
		return v;
	}
	if (gi->op == OP_ONE_HOT) {
		/* the indices resharded, the depth counted from the chip's offset */
		Shd os;
		memset(&os, 0, sizeof os);
		for (int d = 0; d + 1 < gi->type.rank; d++)
			os.s[d] = want->s[d];
		ValueId a = reshard(c, gi->args[0], &os);
		ValueId v = emit(c, gi, &a, &lt);
		if (want->s[gi->type.rank - 1])
			set_partition(c, v, want->s[gi->type.rank - 1]);
		check_inst(c->out, v);
		return v;
	}
	if (ir_ops[gi->op].flags & OPF_ELEMWISE) {
		ValueId args[3];
		for (int k = 0; k < gi->nargs; k++) {
			Shd os = *want;
			os.free = 1;
			args[k] = remake_free(c, gi->args[k], &os);
		}
		ValueId v = emit(c, gi, args, &lt);
		check_inst(c->out, v);
		return v;
	}
	ValueId v = emit(c, gi, NULL, &lt);
	if (gi->op == OP_IOTA) {
		/* counting along a split dim starts at this chip's offset */
		uint32_t axes = want->s[ir_attr_int(gi, "dim", 0)];
		if (axes)
			set_partition(c, v, axes);
	}
	return v;
}

/* The local shard of a dim split over several axes is in mesh order (the
 * first axis major). A collective or slice that adds axes to a dim
 * subdivides the chip's part, so the added axes become the minor ones; one
 * that removes axes concatenates neighbouring parts, so the removed axes
 * must be the minor ones. Both keep mesh order only if every axis of
 * minor comes after every axis of major. */
static int minor_after(uint32_t major, uint32_t minor)
{
	if (!major || !minor)
		return 1;
	return (minor & -minor) > (1u << (31 - __builtin_clz(major)));
}

/* Resolves x's pending partial, reduce-scattering onto the dims want shards. */
static ValueId materialize(Ctx *c, const Type *gt, ValueId x, Shd *cur, const Shd *want)
{
	uint32_t p = cur->partial;
	if (!p)
		return x;
	for (int d = 0; d < gt->rank && p && !cur->pmax; d++) {
		uint32_t a = want->s[d] & p & ~cur->s[d];
		if (!a || !minor_after(cur->s[d], a))
			continue;
		int64_t ldim = c->out->insts[x].type.dims[d];
		if (ldim % axes_size(c, a))
			continue;
		x = coll(c, OP_REDUCE_SCATTER, x, a, d, 0, 0);
		cur->s[d] |= a;
		p &= ~a;
	}
	if (p)
		x = coll(c, OP_ALL_REDUCE, x, p, 0, 0, cur->pmax);
	cur->partial = 0;
	cur->pmax = 0;
	return x;
}

/* The local value of global gv in sharding want (want.partial must be 0 or
 * equal to the value's). */
static ValueId reshard_uncached(Ctx *c, ValueId gv, const Shd *want);

static int shd_equal(const Shd *a, const Shd *b, int rank)
{
	for (int d = 0; d < rank; d++)
		if (a->s[d] != b->s[d])
			return 0;
	return a->partial == b->partial && a->pmax == b->pmax;
}

static ValueId reshard(Ctx *c, ValueId gv, const Shd *want)
{
	int rank = c->g->insts[gv].type.rank;
	/* a broadcast read in another region (the backward, another layer) is
	 * made again there from its smaller operand, as XLA duplicates a
	 * broadcast into each fusion that reads it: the broadcast buffer is
	 * never kept from one region to the next */
	if (shd_equal(&c->st[gv], want, rank) && !c->st[gv].free &&
	    (c->g->insts[gv].op != OP_BROADCAST || c->regions[gv] == c->region))
		return c->loc[gv];
	/* gv's own copies, most recent first; those of an earlier region
	 * serve no more */
	for (int i = c->head[gv]; i >= 0; i = c->cache[i].next) {
		const CacheEntry *e = &c->cache[i];
		if (e->region == c->region && shd_equal(&e->want, want, rank))
			return e->local;
	}
	ValueId x = reshard_uncached(c, gv, want);
	if (c->ncache == c->capcache) {
		c->capcache = c->capcache ? 2 * c->capcache : 256;
		c->cache = realloc(c->cache, sizeof(CacheEntry) * (size_t)c->capcache);
		if (!c->cache)
			ir_die("out of memory");
	}
	c->cache[c->ncache] = (CacheEntry){gv, c->region, *want, x, c->head[gv]};
	c->head[gv] = c->ncache++;
	return x;
}

static ValueId reshard_uncached(Ctx *c, ValueId gv, const Shd *want)
{
	const Type *gt = &c->g->insts[gv].type;
	Shd cur = c->st[gv];
	ValueId x = c->loc[gv];
	if (cur.free) /* made where used, in the sharding wanted */
		return remake_free(c, gv, want);
	const Inst *gi = &c->g->insts[gv];
	if (gi->op == OP_BROADCAST && !cur.partial && !want->partial) {
		/* reshard the (smaller) operand and broadcast again */
		int n;
		const int64_t *dims = ir_attr_ints(gi, "dims", &n);
		Shd os;
		memset(&os, 0, sizeof os);
		for (int i = 0; i < n; i++)
			os.s[i] = want->s[dims[i]];
		const Type *ot = &c->g->insts[gi->args[0]].type;
		int ok = 1;
		for (int i = 0; i < n; i++)
			ok &= ot->dims[i] % axes_size(c, os.s[i]) == 0;
		if (ok) {
			ValueId a = reshard(c, gi->args[0], &os);
			Type lt = local_type(c, gt, want);
			ValueId v = emit(c, gi, &a, &lt);
			check_inst(c->out, v);
			return v;
		}
	}
	if (cur.partial && !(want->partial == cur.partial && want->pmax == cur.pmax)) {
		/* resolved once: later users read the resolved value */
		x = materialize(c, gt, x, &cur, c->has_hint[gv] ? &c->hint[gv] : want);
		c->st[gv] = cur;
		c->loc[gv] = x;
	}
	/* an axis moving between dims: all-to-all */
	for (int a = 0; a < c->mesh->naxes; a++) {
		uint32_t bit = 1u << a;
		int from = -1, to = -1;
		for (int d = 0; d < gt->rank; d++) {
			if ((cur.s[d] & bit) && !(want->s[d] & bit))
				from = d;
			if ((want->s[d] & bit) && !(cur.s[d] & bit))
				to = d;
		}
		if (from < 0 || to < 0 || from == to)
			continue;
		if (!minor_after(cur.s[from] & ~bit, bit) || !minor_after(cur.s[to], bit))
			continue;
		const Type *lt = &c->out->insts[x].type;
		if (lt->dims[to] % axes_size(c, bit) || gt->dims[from] % axes_size(c, cur.s[from]))
			continue;
		x = coll(c, OP_ALL_TO_ALL, x, bit, to, from, 0);
		cur.s[from] &= ~bit;
		cur.s[to] |= bit;
	}
	for (int d = 0; d < gt->rank; d++) {
		uint32_t g = cur.s[d] & ~want->s[d];
		/* a kept axis after a gathered one, or one a new axis must come
		 * before: gather the whole dim and slice it again */
		if ((g && !minor_after(cur.s[d] & ~g, g)) ||
		    !minor_after(cur.s[d] & want->s[d], want->s[d] & ~cur.s[d]))
			g = cur.s[d];
		if (g) {
			x = coll(c, OP_ALL_GATHER, x, g, d, 0, 0);
			cur.s[d] &= ~g;
			x = trim_padding(c, x, gt, &cur, d);
		}
	}
	for (int d = 0; d < gt->rank; d++) {
		uint32_t n = want->s[d] & ~cur.s[d];
		if (n) {
			x = local_slice(c, x, d, n);
			cur.s[d] |= n;
		}
	}
	return x;
}

/* ---- Parameter shardings ------------------------------------------------- */

static uint32_t rule_axes(const Ctx *c, const char *logical)
{
	for (int i = 0; i < c->rules->n; i++)
		if (!strcmp(c->rules->logical[i], logical))
			return c->rules->axes[i];
	return 0;
}

/* Keeps the axes of s.s[d] that divide the dims, in mesh order, and never
 * one axis twice. */
static void fit(const Ctx *c, const Type *t, Shd *s)
{
	uint32_t used = 0;
	for (int d = 0; d < t->rank; d++) {
		uint32_t keep = 0;
		int64_t n = 1;
		for (int a = 0; a < c->mesh->naxes; a++) {
			uint32_t bit = 1u << a;
			if (!(s->s[d] & bit) || (used & bit))
				continue;
			/* uneven splits are padded; a shard must hold at least one row */
			int64_t k = axes_size(c, bit);
			if (k > 1 && t->dims[d] >= n * k) {
				keep |= bit;
				n *= k;
			}
		}
		s->s[d] = keep;
		used |= keep;
	}
}

static int find_weight(const Module *g, const char *name, size_t n)
{
	for (int i = 0; i < g->ninsts; i++) {
		const Inst *in = &g->insts[i];
		if (in->op != OP_PARAMETER)
			continue;
		const char *w = ir_attr_str(in, "name", NULL);
		const char *role = ir_attr_str(in, "role", "");
		if (w && !strcmp(role, "weight") && strlen(w) == n && !memcmp(w, name, n))
			return i;
	}
	return -1;
}

static int param_sharding(Ctx *c, ValueId v, Shd *s)
{
	const Inst *in = &c->g->insts[v];
	memset(s, 0, sizeof *s);
	const Attr *lg = ir_attr(in, "logical");
	const char *role = ir_attr_str(in, "role", "");
	if (lg && lg->kind == ATTR_NAMES) {
		if (lg->n != in->type.rank) {
			diag_error(c->d, c->g->file, in->line, in->col,
			           "parameter %s: logical has %d names for rank %d",
			           ir_attr_str(in, "name", "?"), lg->n, in->type.rank);
			return -1;
		}
		for (int d = 0; d < lg->n; d++)
			s->s[d] = rule_axes(c, lg->names[d]);
		if (!strcmp(role, "input")) {
			/* Data must divide evenly: say so rather than replicate. */
			for (int d = 0; d < lg->n; d++) {
				int64_t k = axes_size(c, s->s[d]);
				if (in->type.dims[d] % k) {
					char axes[96] = "";
					size_t used = 0;
					for (int a = 0; a < c->mesh->naxes && used < sizeof axes; a++)
						if (s->s[d] >> a & 1)
							used += (size_t)snprintf(axes + used, sizeof axes - used, "%s%s=%d",
							                         used ? "," : "", c->mesh->axes[a].name,
							                         c->mesh->axes[a].ici * c->mesh->axes[a].dcn);
					diag_error(c->d, c->g->file, in->line, in->col,
					           "input %s: %s dim of size %lld is not divisible by the "
					           "%lld chips of its mesh axes (%s)",
					           ir_attr_str(in, "name", "?"), lg->names[d],
					           (long long)in->type.dims[d], (long long)k, axes);
					return -1;
				}
			}
		}
		fit(c, &in->type, s);
		return 0;
	}
	if (!strcmp(role, "opt_state")) {
		/* "<weight>.<suffix>": the weight's sharding on the dims they share
		 * (Adafactor's factored moments drop one dim). */
		const char *name = ir_attr_str(in, "name", "");
		const char *dot = strrchr(name, '.');
		int w = dot ? find_weight(c->g, name, (size_t)(dot - name)) : -1;
		if (w < 0)
			return 0;
		Shd ws;
		if (param_sharding(c, w, &ws))
			return -1;
		const Type *wt = &c->g->insts[w].type;
		int j = 0;
		for (int d = 0; d < in->type.rank; d++) {
			while (j < wt->rank && wt->dims[j] != in->type.dims[d])
				j++;
			if (j == wt->rank)
				break;
			s->s[d] = ws.s[j++];
		}
		fit(c, &in->type, s);
	}
	return 0;
}

/* Hints: weight and state shardings carried through same-shape elementwise
 * chains, forward then backward. */
static int hint_ok(const Ctx *c, ValueId a, ValueId b)
{
	return type_same_shape(&c->g->insts[a].type, &c->g->insts[b].type) ||
	       (c->g->insts[a].type.rank == c->g->insts[b].type.rank &&
	        !memcmp(c->g->insts[a].type.dims, c->g->insts[b].type.dims,
	                sizeof(int64_t) * (size_t)c->g->insts[a].type.rank));
}

static void compute_hints(Ctx *c)
{
	const Module *g = c->g;
	for (int i = 0; i < g->ninsts; i++) {
		const Inst *in = &g->insts[i];
		if (in->op == OP_PARAMETER) {
			const char *role = ir_attr_str(in, "role", "");
			if (!strcmp(role, "weight") || !strcmp(role, "opt_state")) {
				c->hint[i] = c->st[i];
				c->has_hint[i] = 1;
			}
			continue;
		}
		if (!(ir_ops[in->op].flags & OPF_ELEMWISE))
			continue;
		for (int k = 0; k < in->nargs; k++)
			if (c->has_hint[in->args[k]] && hint_ok(c, i, in->args[k])) {
				c->hint[i] = c->hint[in->args[k]];
				c->has_hint[i] = 1;
				break;
			}
	}
	for (int i = g->ninsts - 1; i >= 0; i--) {
		const Inst *in = &g->insts[i];
		if (!c->has_hint[i] || !(ir_ops[in->op].flags & OPF_ELEMWISE))
			continue;
		for (int k = 0; k < in->nargs; k++) {
			ValueId a = in->args[k];
			if (!c->has_hint[a] && hint_ok(c, i, a)) {
				c->hint[a] = c->hint[i];
				c->has_hint[a] = 1;
			}
		}
	}
}

/* The sharding a computed value's logical=[...] constraint asks for (as
 * jax.lax.with_sharding_constraint), in *want; 0 if it carries none. */
static int constraint(const Ctx *c, const Inst *in, Shd *want)
{
	const Attr *lg = ir_attr(in, "logical");
	if (in->op == OP_PARAMETER || !lg || lg->kind != ATTR_NAMES || lg->n != in->type.rank)
		return 0;
	memset(want, 0, sizeof *want);
	for (int d = 0; d < lg->n; d++)
		want->s[d] = rule_axes(c, lg->names[d]);
	fit(c, &in->type, want);
	return 1;
}

/* The forward values the backward reads (saved for it: a layer's input
 * with remat full, every matmul output with remat minimal). A saved value
 * left as a pending partial sum would keep every chip's whole partial
 * buffer alive until the backward, and the backward would reduce it again
 * where it reads it. XLA does not do that: its partitioner reduces a dot's
 * result where it is made, so what is saved is the reduced value. So a
 * saved value gets, in keep[v], the sharding its forward users pin it to:
 * a sharding constraint (logical=[...], such as the residual stream's
 * [batch, length, activation_embed]) carried back through the adds,
 * subtractions, negations and conversions that would pass its partial on
 * (saved[v] = 2); keep_saved then reduce-scatters it onto that sharding as
 * soon as it is made. */
static void compute_saved(Ctx *c)
{
	const Module *g = c->g;
	for (int i = c->loss + 1; i < g->ninsts; i++)
		for (int k = 0; k < g->insts[i].nargs; k++)
			if (g->insts[i].args[k] < c->loss)
				c->saved[g->insts[i].args[k]] = 1;
	unsigned char *has = calloc((size_t)(g->ninsts ? g->ninsts : 1), 1);
	if (!has)
		ir_die("out of memory");
	for (int i = c->loss - 1; i >= 0; i--) {
		const Inst *in = &g->insts[i];
		if (constraint(c, in, &c->keep[i]))
			has[i] = 1;
		if (c->saved[i] && has[i])
			c->saved[i] = 2;
		Op op = in->op;
		if (!has[i] || !(op == OP_ADD || op == OP_SUB || op == OP_NEG || op == OP_CONVERT))
			continue;
		for (int k = 0; k < in->nargs; k++) {
			ValueId a = in->args[k];
			if (!has[a] && hint_ok(c, i, a)) {
				c->keep[a] = c->keep[i];
				has[a] = 1;
			}
		}
	}
	free(has);
}

/* Resolves v's pending partial sum where v is made when the backward
 * reads v (compute_saved): the saved buffer is the reduced one. */
static void keep_saved(Ctx *c, ValueId v)
{
	Shd cur = c->st[v];
	if (c->saved[v] != 2 || !cur.partial || cur.pmax || cur.free || c->loc[v] < 0)
		return;
	c->loc[v] = materialize(c, &c->g->insts[v].type, c->loc[v], &cur, &c->keep[v]);
	c->st[v] = cur;
}

/* ---- Op rules ------------------------------------------------------------ */

static double shard_count(const Ctx *c, const Shd *s, int rank)
{
	return (double)axes_size(c, used_axes(s, rank));
}

static int is_linear_unary(Op op) { return op == OP_NEG || op == OP_CONVERT; }

static void rule_elemwise(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	int rank = gi->type.rank;
	ValueId args[3];
	/* Partial sums flow through linear ops unresolved. */
	const Shd *a0 = &c->st[gi->args[0]];
	if (a0->partial && !a0->pmax) {
		int linear = 0;
		if (is_linear_unary(gi->op))
			linear = 1;
		else if ((gi->op == OP_MUL || gi->op == OP_DIV) && !c->st[gi->args[1]].partial &&
		         !(used_axes(&c->st[gi->args[1]], rank) & a0->partial))
			linear = 1;
		else if ((gi->op == OP_ADD || gi->op == OP_SUB) &&
		         c->st[gi->args[1]].partial == a0->partial && !c->st[gi->args[1]].pmax)
			linear = 1;
		if (linear) {
			Shd t = *a0;
			for (int k = 0; k < gi->nargs; k++) {
				Shd want = t;
				if (!c->st[gi->args[k]].partial)
					want.partial = 0;
				args[k] = reshard(c, gi->args[k], &want);
			}
			Type lt = local_type(c, &gi->type, &t);
			c->loc[v] = emit(c, gi, args, &lt);
			check_inst(c->out, c->loc[v]);
			c->st[v] = t;
			return;
		}
	}
	int all_free = 1;
	for (int k = 0; k < gi->nargs; k++)
		all_free &= c->st[gi->args[k]].free;
	if (all_free) {
		/* made where used, in the sharding its user wants (remake_free) */
		Shd t;
		memset(&t, 0, sizeof t);
		t.free = 1;
		c->loc[v] = -1;
		c->st[v] = t;
		return;
	}
	Shd t;
	memset(&t, 0, sizeof t);
	if (c->has_hint[v]) {
		t = c->hint[v];
	} else {
		double best = -1;
		for (int k = 0; k < gi->nargs; k++) {
			/* a partial operand will be resolved onto its hint */
			ValueId a = gi->args[k];
			Shd s = c->st[a].partial && c->has_hint[a] ? c->hint[a] : c->st[a];
			/* ties go to values that are not broadcasts: re-splitting a
			 * broadcast moves less than re-splitting its user */
			double n = shard_count(c, &s, rank) + (s.free ? 0 : 0.5) +
			           (c->g->insts[gi->args[k]].op == OP_BROADCAST ? 0 : 0.1);
			if (s.partial) /* resolving it may shard further: count as is */
				n += 0.25;
			if (n > best) {
				best = n;
				t = s;
			}
		}
	}
	t.partial = 0;
	t.pmax = 0;
	t.free = 0;
	for (int k = 0; k < gi->nargs; k++)
		args[k] = reshard(c, gi->args[k], &t);
	Type lt = local_type(c, &gi->type, &t);
	c->loc[v] = emit(c, gi, args, &lt);
	check_inst(c->out, c->loc[v]);
	c->st[v] = t;
}

static void rule_dot(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	ValueId ga = gi->args[0], gb = gi->args[1];
	const Type *ta = &c->g->insts[ga].type, *tb = &c->g->insts[gb].type;
	int nlc, nrc, nlb, nrb;
	const int64_t *lc = ir_attr_ints(gi, "lhs_contract", &nlc);
	const int64_t *rc = ir_attr_ints(gi, "rhs_contract", &nrc);
	const int64_t *lb = ir_attr_ints(gi, "lhs_batch", &nlb);
	const int64_t *rb = ir_attr_ints(gi, "rhs_batch", &nrb);
	Shd L = c->st[ga], R = c->st[gb];
	L.partial = R.partial = 0;
	L.pmax = R.pmax = 0;
	L.free = R.free = 0;
	uint32_t lrole[IR_MAX_RANK] = {0}, rrole[IR_MAX_RANK] = {0}; /* 1 batch, 2 contract */
	for (int i = 0; i < nlb; i++) {
		lrole[lb[i]] = 1;
		rrole[rb[i]] = 1;
		uint32_t x = L.s[lb[i]], y = R.s[rb[i]];
		uint32_t pick = axes_size(c, y) > axes_size(c, x) ? y : x;
		L.s[lb[i]] = R.s[rb[i]] = pick;
	}
	for (int i = 0; i < nlc; i++) {
		lrole[lc[i]] = 2;
		rrole[rc[i]] = 2;
	}
	/* An axis may appear once per operand: drop it from non-batch dims
	 * where a batch dim now uses it. */
	uint32_t batch_axes = 0;
	for (int i = 0; i < nlb; i++)
		batch_axes |= L.s[lb[i]];
	for (int d = 0; d < ta->rank; d++)
		if (lrole[d] != 1)
			L.s[d] &= ~batch_axes;
	for (int d = 0; d < tb->rank; d++)
		if (rrole[d] != 1)
			R.s[d] &= ~batch_axes;
	/* A result headed for a sharded weight's update (a hint) keeps on each
	 * free dim only axes the hint puts there: the operand is gathered
	 * otherwise, so the gradient reduce-scatters straight onto the weight's
	 * shard (dW = x^T dy with x split on embed by tensor). */
	if (c->has_hint[v]) {
		const Shd *h = &c->hint[v];
		int r = nlb;
		for (int side = 0; side < 2; side++) {
			Shd *S = side ? &R : &L;
			const Type *tt = side ? tb : ta;
			const uint32_t *role = side ? rrole : lrole;
			for (int d = 0; d < tt->rank; d++)
				if (!role[d])
					S->s[d] &= h->s[r++];
		}
	}
	/* Free dims: an axis both operands split a free dim on stays with the
	 * larger operand and the smaller is gathered, the cheaper of the two
	 * as XLA's partitioner picks (dW = x^T dy of tied logits: x split on
	 * d_model, dy on the vocabulary, both over tensor; gathering dy would
	 * move vocab / d_model times the bytes); on a tie the rhs gives up. */
	uint32_t lfree = 0, rfree = 0;
	for (int d = 0; d < ta->rank; d++)
		if (!lrole[d])
			lfree |= L.s[d];
	for (int d = 0; d < tb->rank; d++)
		if (!rrole[d])
			rfree |= R.s[d];
	if ((lfree & rfree) && local_bytes(c, ta, &L) < local_bytes(c, tb, &R))
		for (int d = 0; d < ta->rank; d++)
			if (!lrole[d])
				L.s[d] &= ~rfree;
	uint32_t res_axes = batch_axes;
	for (int d = 0; d < ta->rank; d++)
		if (!lrole[d])
			res_axes |= L.s[d];
	for (int d = 0; d < tb->rank; d++)
		if (!rrole[d]) {
			R.s[d] &= ~res_axes;
			res_axes |= R.s[d];
		}
	/* Contracting dims: common axes give a partial sum; an axis on one
	 * side only is either gathered there or sliced on the other side
	 * (partial too), whichever moves fewer bytes. */
	uint32_t partial = 0;
	for (int i = 0; i < nlc; i++) {
		uint32_t x = L.s[lc[i]] & ~res_axes, y = R.s[rc[i]] & ~res_axes;
		uint32_t common = x & y, only_l = x & ~y, only_r = y & ~x;
		/* the other operand may use the axis elsewhere: then gather */
		only_l &= ~used_axes(&R, tb->rank);
		only_r &= ~used_axes(&L, ta->rank);
		/* both sides of a contracted pair split alike: the unsplit side
		 * takes its local slice */
		L.s[lc[i]] = R.s[rc[i]] = common | only_l | only_r;
		partial |= common | only_l | only_r;
	}
	/* A result that feeds an update of a sharded weight (a hint) is made
	 * split that way where an axis is free: e.g. the embedding gradient's
	 * one-hot is sliced by vocabulary rather than the result reduced whole. */
	if (c->has_hint[v]) {
		const Shd *h = &c->hint[v];
		uint32_t taken = res_axes | partial | used_axes(&L, ta->rank) | used_axes(&R, tb->rank);
		int rd = nlb;
		for (int side = 0; side < 2; side++) {
			Shd *S = side ? &R : &L;
			const Type *tt = side ? tb : ta;
			const uint32_t *role = side ? rrole : lrole;
			for (int d = 0; d < tt->rank; d++) {
				if (role[d])
					continue;
				uint32_t add = h->s[rd++] & ~taken;
				if (add && tt->dims[d] >= axes_size(c, S->s[d] | add)) {
					S->s[d] |= add;
					taken |= add;
				}
			}
		}
	}
	/* Compare with gathering the one-sided axes: a partial costs an
	 * all-reduce of the result, about twice its bytes. */
	Shd res;
	memset(&res, 0, sizeof res);
	int r = 0;
	for (int i = 0; i < nlb; i++)
		res.s[r++] = L.s[lb[i]];
	for (int d = 0; d < ta->rank; d++)
		if (!lrole[d])
			res.s[r++] = L.s[d];
	for (int d = 0; d < tb->rank; d++)
		if (!rrole[d])
			res.s[r++] = R.s[d];
	double res_bytes = local_bytes(c, &gi->type, &res);
	for (int i = 0; i < nlc; i++) {
		uint32_t common = c->st[ga].s[lc[i]] & c->st[gb].s[rc[i]];
		uint32_t one_l = L.s[lc[i]] & ~common & ~c->st[gb].s[rc[i]];
		uint32_t one_r = R.s[rc[i]] & ~common & ~c->st[ga].s[lc[i]];
		if (one_l && local_bytes(c, ta, &L) * (double)(axes_size(c, one_l) - 1) <
		                 2.0 * res_bytes) {
			L.s[lc[i]] &= ~one_l;
			R.s[rc[i]] &= ~one_l;
			partial &= ~one_l;
		}
		if (one_r && local_bytes(c, tb, &R) * (double)(axes_size(c, one_r) - 1) <
		                 2.0 * res_bytes) {
			L.s[lc[i]] &= ~one_r;
			R.s[rc[i]] &= ~one_r;
			partial &= ~one_r;
		}
	}
	ValueId args[2] = {reshard(c, ga, &L), reshard(c, gb, &R)};
	Type lt = local_type(c, &gi->type, &res);
	c->loc[v] = emit(c, gi, args, &lt);
	check_inst(c->out, c->loc[v]);
	res.partial = partial;
	c->st[v] = res;
}

static void rule_reduce(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	ValueId ga = gi->args[0];
	const Type *ta = &c->g->insts[ga].type;
	int n;
	const int64_t *dims = ir_attr_ints(gi, "dims", &n);
	int pmax = gi->op == OP_REDUCE_MAX;
	Shd a = c->st[ga];
	a.free = 0;
	if (a.partial && (pmax || a.pmax)) {
		a.partial = 0;
		a.pmax = 0;
	}
	uint32_t red = 0, axes = 0;
	for (int i = 0; i < n; i++) {
		red |= 1u << dims[i];
		axes |= a.s[dims[i]];
	}
	ValueId x = reshard(c, ga, &a);
	Shd res;
	memset(&res, 0, sizeof res);
	int r = 0;
	for (int d = 0; d < ta->rank; d++)
		if (!(red & (1u << d)))
			res.s[r++] = a.s[d];
	Type lt = local_type(c, &gi->type, &res);
	c->loc[v] = emit(c, gi, &x, &lt);
	check_inst(c->out, c->loc[v]);
	res.partial = axes | a.partial;
	res.pmax = pmax;
	c->st[v] = res;
}

/* Reshape: dims group into runs of equal element count. Within a run, one
 * dim (the first of size > 1) may carry the sharding. */
static void rule_reshape(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	ValueId ga = gi->args[0];
	const Type *ti = &c->g->insts[ga].type, *to = &gi->type;
	Shd a = c->st[ga], res;
	memset(&res, 0, sizeof res);
	res.partial = a.partial;
	res.pmax = a.pmax;
	a.free = 0;
	int i = 0, j = 0;
	while (i < ti->rank || j < to->rank) {
		int i0 = i, j0 = j;
		int64_t pi = i < ti->rank ? ti->dims[i++] : 1;
		int64_t pj = j < to->rank ? to->dims[j++] : 1;
		while (pi != pj) {
			if (pi < pj && i < ti->rank)
				pi *= ti->dims[i++];
			else if (j < to->rank)
				pj *= to->dims[j++];
			else
				break;
		}
		/* absorb trailing size-1 dims into this group */
		while (i < ti->rank && ti->dims[i] == 1 && !(j < to->rank && to->dims[j] == 1))
			i++;
		while (j < to->rank && to->dims[j] == 1 && !(i < ti->rank && ti->dims[i] == 1))
			j++;
		int major_in = -1, major_out = -1;
		for (int k = i0; k < i; k++)
			if (ti->dims[k] > 1) {
				major_in = k;
				break;
			}
		for (int k = j0; k < j; k++)
			if (to->dims[k] > 1) {
				major_out = k;
				break;
			}
		for (int k = i0; k < i; k++)
			if (k != major_in)
				a.s[k] = 0;
		if (major_in >= 0 && major_out >= 0) {
			uint32_t s = a.s[major_in];
			if (to->dims[major_out] % axes_size(c, s) == 0 &&
			    ti->dims[major_in] % axes_size(c, s) == 0)
				res.s[major_out] = s;
			else
				a.s[major_in] = 0;
		}
	}
	ValueId x = reshard(c, ga, &a);
	Type lt = local_type(c, to, &res);
	c->loc[v] = emit(c, gi, &x, &lt);
	check_inst(c->out, c->loc[v]);
	c->st[v] = res;
}

static void rule_layout(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	ValueId ga = gi->args[0];
	const Type *ta = &c->g->insts[ga].type;
	Shd a = c->st[ga], res;
	memset(&res, 0, sizeof res);
	int n;
	const int64_t *x;
	switch (gi->op) {
	case OP_TRANSPOSE:
		a.free = 0;
		x = ir_attr_ints(gi, "perm", &n);
		for (int i = 0; i < n; i++)
			res.s[i] = a.s[x[i]];
		res.partial = a.partial;
		res.pmax = a.pmax;
		break;
	case OP_BROADCAST:
		if (a.free) { /* made where used */
			memset(&res, 0, sizeof res);
			res.free = 1;
			c->loc[v] = -1;
			c->st[v] = res;
			return;
		}
		/* resolve a partial on the small side, not the broadcast one */
		if (type_numel(ta) < type_numel(&gi->type)) {
			a.partial = 0;
			a.pmax = 0;
		}
		x = ir_attr_ints(gi, "dims", &n);
		for (int i = 0; i < n; i++) {
			if (ta->dims[i] != gi->type.dims[x[i]])
				a.s[i] = 0; /* a stretched size-1 dim */
			res.s[x[i]] = a.s[i];
		}
		res.partial = a.partial;
		res.pmax = a.pmax;
		res.free = a.free;
		break;
	case OP_SOFTMAX:
		a.free = 0;
		a.partial = 0;
		a.pmax = 0;
		a.s[ir_attr_int(gi, "dim", 0)] = 0;
		res = a;
		break;
	case OP_SLICE: {
		a.free = 0;
		int ns, nl;
		const int64_t *s = ir_attr_ints(gi, "start", &ns);
		const int64_t *l = ir_attr_ints(gi, "limit", &nl);
		for (int d = 0; d < ta->rank; d++)
			if (s[d] != 0 || l[d] != ta->dims[d])
				a.s[d] = 0;
		res = a;
		break;
	}
	case OP_ONE_HOT:
		a.free = 0;
		a.partial = 0;
		a.pmax = 0;
		res = a;
		res.s[ta->rank] = 0;
		break;
	default:
		ir_die("shard: no layout rule for %s", op_name(gi->op));
	}
	ValueId lx = reshard(c, ga, &a);
	Type lt = local_type(c, &gi->type, &res);
	ValueId lv = emit(c, gi, &lx, &lt);
	if (gi->op == OP_SLICE) {
		int ns;
		const int64_t *s = ir_attr_ints(gi, "start", &ns);
		int64_t st[IR_MAX_RANK], li[IR_MAX_RANK];
		for (int d = 0; d < ns; d++) {
			int64_t k = axes_size(c, res.s[d]);
			st[d] = s[d] / k;
			li[d] = st[d] + lt.dims[d];
		}
		ir_set_ints(c->out, lv, "start", ns, st);
		ir_set_ints(c->out, lv, "limit", ns, li);
	}
	check_inst(c->out, lv);
	c->loc[v] = lv;
	c->st[v] = res;
}

static void rule_concat(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	int dim = (int)ir_attr_int(gi, "dim", 0);
	/* the most-split operand that is not constant-like sets the sharding */
	Shd t = c->st[gi->args[0]];
	double best = -1;
	for (int k = 0; k < gi->nargs; k++) {
		const Shd *s = &c->st[gi->args[k]];
		double n = shard_count(c, s, gi->type.rank) + (s->free ? 0 : 0.5);
		if (n > best) {
			best = n;
			t = *s;
		}
	}
	t.partial = 0;
	t.pmax = 0;
	t.free = 0;
	t.s[dim] = 0;
	ValueId *args = malloc(sizeof(ValueId) * (size_t)gi->nargs);
	for (int k = 0; k < gi->nargs; k++)
		args[k] = reshard(c, gi->args[k], &t);
	Type lt = local_type(c, &gi->type, &t);
	c->loc[v] = emit(c, gi, args, &lt);
	free(args);
	check_inst(c->out, c->loc[v]);
	c->st[v] = t;
}

static void rule_gather(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	ValueId gt = gi->args[0], gx = gi->args[1];
	const Type *tt = &c->g->insts[gt].type, *tx = &c->g->insts[gx].type;
	Shd T = c->st[gt], X = c->st[gx];
	T.partial = X.partial = 0;
	T.pmax = X.pmax = 0;
	T.free = X.free = 0;
	uint32_t xa = used_axes(&X, tx->rank);
	for (int d = 1; d < tt->rank; d++)
		T.s[d] &= ~xa;
	uint32_t other = xa;
	for (int d = 1; d < tt->rank; d++)
		other |= T.s[d];
	/* rows sharded: each chip looks up its rows, the rest read as zero,
	 * and the result is a partial sum */
	T.s[0] &= ~other;
	ValueId args[2] = {reshard(c, gt, &T), reshard(c, gx, &X)};
	Shd res;
	memset(&res, 0, sizeof res);
	int r = 0;
	for (int d = 0; d < tx->rank; d++)
		res.s[r++] = X.s[d];
	for (int d = 1; d < tt->rank; d++)
		res.s[r++] = T.s[d];
	Type lt = local_type(c, &gi->type, &res);
	c->loc[v] = emit(c, gi, args, &lt);
	if (T.s[0]) /* this chip's rows start at its offset; others read as zero */
		set_partition(c, c->loc[v], T.s[0]);
	check_inst(c->out, c->loc[v]);
	res.partial = T.s[0];
	c->st[v] = res;
}

static int shard_inst_rule(Ctx *c, ValueId v);

/* A computed value carrying logical=[...] is a sharding constraint (as
 * jax.lax.with_sharding_constraint): it is resharded to what the rules say,
 * e.g. the residual stream between layers split over tensor on embed. */
static int shard_inst(Ctx *c, ValueId v)
{
	if (shard_inst_rule(c, v))
		return -1;
	Shd want;
	if (!constraint(c, &c->g->insts[v], &want))
		return 0;
	c->loc[v] = reshard(c, v, &want);
	c->st[v] = want;
	return 0;
}

static int shard_inst_rule(Ctx *c, ValueId v)
{
	const Inst *gi = &c->g->insts[v];
	const OpInfo *oi = &ir_ops[gi->op];
	if (oi->flags & (OPF_COLLECTIVE | OPF_TILED)) {
		diag_error(c->d, c->g->file, gi->line, gi->col,
		           "%s: the module is already partitioned (shard takes a global graph)",
		           oi->name);
		return -1;
	}
	if (oi->flags & OPF_ELEMWISE) {
		rule_elemwise(c, v);
		return 0;
	}
	switch (gi->op) {
	case OP_PARAMETER: {
		Shd s;
		if (param_sharding(c, v, &s))
			return -1;
		c->st[v] = s;
		Type lt = local_type(c, &gi->type, &s);
		c->loc[v] = emit(c, gi, NULL, &lt);
		if (c->stats) {
			const char *role = ir_attr_str(gi, "role", "");
			double b = (double)type_bytes(&lt);
			if (!strcmp(role, "weight"))
				c->stats->weight_bytes += b;
			else if (!strcmp(role, "opt_state"))
				c->stats->state_bytes += b;
			else
				c->stats->input_bytes += b;
		}
		return 0;
	}
	case OP_CONSTANT:
	case OP_IOTA: {
		Shd s;
		memset(&s, 0, sizeof s);
		s.free = 1;
		c->st[v] = s;
		c->loc[v] = -1; /* made where used (remake_free) */
		return 0;
	}
	case OP_DOT:
		rule_dot(c, v);
		return 0;
	case OP_REDUCE_SUM:
	case OP_REDUCE_MAX:
		rule_reduce(c, v);
		return 0;
	case OP_RESHAPE:
		rule_reshape(c, v);
		return 0;
	case OP_CONCAT:
		rule_concat(c, v);
		return 0;
	case OP_GATHER:
		rule_gather(c, v);
		return 0;
	case OP_ONE_HOT:
		if (!c->st[gi->args[0]].partial) { /* made where used (remake_free) */
			memset(&c->st[v], 0, sizeof c->st[v]);
			c->st[v].free = 1;
			c->loc[v] = -1;
			return 0;
		}
		rule_layout(c, v);
		return 0;
	case OP_TRANSPOSE:
	case OP_BROADCAST:
	case OP_SOFTMAX:
	case OP_SLICE:
		rule_layout(c, v);
		return 0;
	default:
		break;
	}
	diag_error(c->d, c->g->file, gi->line, gi->col, "shard: no rule for %s", oi->name);
	return -1;
}

void shard_rules_default(const Mesh *mesh, ShardRules *r)
{
	static const struct {
		const char *logical;
		const char *axes[3];
	} defaults[] = {
		{"batch", {"data", "fsdp", "expert"}},
		{"length", {"sequence", NULL, NULL}},
		{"embed", {"fsdp", NULL, NULL}},
		{"heads", {"tensor", NULL, NULL}},
		{"kv_heads", {"tensor", NULL, NULL}},
		{"mlp", {"tensor", NULL, NULL}},
		{"vocab", {"tensor", NULL, NULL}},
		{"exp", {"expert", NULL, NULL}},
		{"activation_embed", {"tensor", NULL, NULL}},
	};
	memset(r, 0, sizeof *r);
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
		uint32_t axes = 0;
		for (int k = 0; k < 3 && defaults[i].axes[k]; k++) {
			int a = mesh_axis_index(mesh, defaults[i].axes[k], strlen(defaults[i].axes[k]));
			if (a >= 0)
				axes |= 1u << a;
		}
		r->logical[r->n] = defaults[i].logical;
		r->axes[r->n++] = axes;
	}
}

/* The region of instruction i: resharded copies (a gathered weight, say)
 * are shared by the users in one region, and a broadcast is made again in
 * each region that reads it. A region is a layer's forward pass or its
 * backward (layer=[k] and the phase), or the instructions outside the
 * layers in a phase before its first layer (the embedding lookup; the
 * loss's gradient) or after it (the final norm and logits; the embedding's
 * gradient): a table gathered for the lookup is gathered again for the
 * logits, whatever the depth. seen[phase] records that a layer's
 * instruction came. */
static int64_t region_of(const Ctx *c, ValueId i, int seen[2])
{
	int bwd = i > c->loss;
	int64_t layer = ir_attr_int(&c->g->insts[i], "layer", -1);
	if (layer >= 0) {
		seen[bwd] |= c->g->insts[i].op != OP_PARAMETER; /* weights come first */
		return layer * 2 + bwd;
	}
	return (seen[bwd] ? -4 : -2) + bwd;
}

Module *shard_module(const Module *g, const ShardRules *rules, Type **shardings,
                     ShardStats *stats, Diag *d)
{
	Ctx c;
	memset(&c, 0, sizeof c);
	c.g = g;
	c.mesh = &g->mesh;
	c.rules = rules;
	c.d = d;
	c.stats = stats;
	if (stats)
		memset(stats, 0, sizeof *stats);
	size_t n = (size_t)(g->ninsts ? g->ninsts : 1);
	/* st and loc are written for each value before it is read, hint only
	 * where has_hint says */
	c.st = malloc(n * sizeof *c.st);
	c.loc = malloc(n * sizeof *c.loc);
	c.hint = malloc(n * sizeof *c.hint);
	c.has_hint = calloc(n, 1);
	c.saved = calloc(n, 1);
	c.keep = malloc(n * sizeof *c.keep);
	c.regions = malloc(n * sizeof *c.regions);
	c.head = malloc(n * sizeof *c.head);
	if (!c.st || !c.loc || !c.hint || !c.has_hint || !c.saved || !c.keep || !c.regions ||
	    !c.head)
		ir_die("out of memory");
	for (size_t i = 0; i < n; i++)
		c.head[i] = -1;
	c.out = ir_module_new(g->name, LEVEL_GRAPH);
	/* the local program is about as long as the global one, plus its
	 * collectives: room up front instead of regrowing the array */
	ir_reserve(c.out, g->ninsts + g->ninsts / 2 + 64);
	c.out->mesh = g->mesh;
	for (int a = 0; a < g->mesh.naxes; a++)
		c.out->mesh.axes[a].name = arena_strdup(&c.out->arena, g->mesh.axes[a].name);
	c.mesh = &c.out->mesh;
	int rc = 0;
	/* parameter shardings first: hints need them */
	for (int i = 0; i < g->ninsts && !rc; i++)
		if (g->insts[i].op == OP_PARAMETER)
			rc = param_sharding(&c, i, &c.st[i]);
	if (!rc)
		compute_hints(&c);
	c.loss = g->noutputs ? g->outputs[0] : g->ninsts;
	compute_saved(&c);
	int seen[2] = {0, 0}; /* a layer's instruction seen in each phase */
	for (int i = 0; i < g->ninsts && !rc; i++) {
		c.cur = i;
		c.region = c.regions[i] = region_of(&c, i, seen);
		rc = shard_inst(&c, i);
		if (!rc)
			keep_saved(&c, i);
	}
	if (!rc) {
		for (int k = 0; k < g->noutputs; k++) {
			ValueId o = g->outputs[k];
			Shd want = c.st[o];
			want.partial = 0;
			want.pmax = 0;
			ir_output(c.out, reshard(&c, o, &want));
		}
	}
	if (!rc)
		ir_dce_inplace(c.out);
	if (!rc && shardings) {
		*shardings = malloc(n * sizeof(Type)); /* every entry set below */
		if (!*shardings)
			ir_die("out of memory");
		for (int i = 0; i < g->ninsts; i++) {
			(*shardings)[i] = g->insts[i].type;
			for (int k = 0; k < g->insts[i].type.rank; k++)
				(*shardings)[i].shard[k] = c.st[i].s[k];
		}
	}
	free(c.st);
	free(c.loc);
	free(c.hint);
	free(c.has_hint);
	free(c.saved);
	free(c.keep);
	free(c.regions);
	free(c.head);
	free(c.cache);
	if (rc) {
		ir_module_free(c.out);
		return NULL;
	}
	return c.out;
}
