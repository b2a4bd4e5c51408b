/*
 * Collectives played over the links (docs/network.md).
 *
 * A collective becomes a Plan: a list of phases, each a number of identical
 * rounds. The algorithms:
 *   - a ring dimension that closes through wraparound links (a torus axis):
 *     bidirectional ring, half of each chunk each way, n-1 rounds;
 *   - a ring dimension without wraparound (a line, or part of an axis): the
 *     folded ring 0 -> 2 -> 4 ... -> 5 -> 3 -> 1 -> 0, which uses every link
 *     once in each direction per round (the whole chunk, at most 2 hops);
 *   - DCN: a ring over the slices, every chip talking to its counterpart;
 *   - several dimensions: reduce-scatter along each (fastest first), then
 *     all-gather back in reverse (all-gather alone: slowest first, as its
 *     data grows); all-reduce across slices is therefore the hierarchical
 *     ICI reduce-scatter, DCN all-reduce of the shard, ICI all-gather.
 *     Sequential runs one dimension after another; split cuts the buffer in
 *     one part per ICI dimension, part j starting on the j-th, all parts
 *     played together (so every axis's links work); auto takes the faster;
 *   - all-to-all: one round of direct transfers, every chip to every other
 *     chip of its group along each dimension, routed the shortest way;
 *   - collective-permute: one round, each chip sends to the chip `shift`
 *     ranks on in the group, routed dimension by dimension.
 * A phase's round puts bytes on directed links; it lasts max over the links it
 * uses of (bytes x collectives sharing that link) / bandwidth, plus the
 * latency of its longest transfer (hops x per-hop latency, or the DCN
 * latency). Concurrent collectives advance phase by phase in a fluid model:
 * between two phase boundaries the sharing is constant.
 */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[COLL_KIND_COUNT] = {
	"all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
};

const char *coll_kind_name(CollKind k)
{
	return (unsigned)k < COLL_KIND_COUNT ? kind_names[k] : "?";
}

int coll_kind_from_name(const char *s)
{
	for (int k = 0; k < COLL_KIND_COUNT; k++) {
		const char *n = kind_names[k];
		size_t i = 0;
		for (; n[i] && s[i]; i++)
			if (n[i] != s[i] && !(n[i] == '-' && s[i] == '_'))
				break;
		if (!n[i] && !s[i])
			return k;
	}
	if (!strcmp(s, "permute"))
		return COLL_PERMUTE;
	return -1;
}

/* ---- Plans ---------------------------------------------------------------*/

typedef enum PhaseKind { PH_RING, PH_A2A, PH_PERMUTE } PhaseKind;

typedef struct Phase {
	PhaseKind kind;
	NetDim dim;     /* PH_RING: the ring dimension */
	NetGroup group; /* PH_A2A, PH_PERMUTE: the whole group */
	double bytes;   /* PH_RING: chunk per chip per round; else the buffer */
	double rounds;
	int shift;      /* PH_PERMUTE */
	int dcn;        /* 1 if the phase uses DCN links */
} Phase;

#define MAX_PHASES (2 * NET_MAX_DIMS + 2)

typedef struct Plan {
	int n;
	Phase ph[MAX_PHASES];
	char algo[256];
} Plan;

/* Rough bandwidth of one ring dimension, to order dimensions only. */
static double dim_speed(const Pod *p, const NetDim *dm)
{
	if (dm->axis == NET_DCN)
		return p->chip.dcn_bw_per_chip;
	return (net_dim_is_ring(p, dm) ? 2.0 : 1.0) * p->chip.ici_link_bw / dm->stride;
}

static const char *dim_algo(const Pod *p, const NetDim *dm)
{
	if (dm->axis == NET_DCN)
		return "ring over DCN";
	return net_dim_is_ring(p, dm) ? "bidirectional ring" : "folded ring (line)";
}

static void add_ring(Plan *pl, const NetDim *dm, double chunk, int dcn)
{
	Phase *ph = &pl->ph[pl->n++];
	memset(ph, 0, sizeof *ph);
	ph->kind = PH_RING;
	ph->dim = *dm;
	ph->bytes = chunk;
	ph->rounds = dm->size - 1;
	ph->dcn = dcn;
}

/* Appends s to the string in buf[0..n), truncating as snprintf would. */
static void cat(char *buf, size_t n, const char *s)
{
	size_t k = strlen(buf);
	if (k >= n)
		return;
	size_t len = strlen(s);
	if (len > n - k - 1)
		len = n - k - 1;
	memcpy(buf + k, s, len);
	buf[k + len] = 0;
}

/* The ICI dimensions of a group (those a split can spread over). */
static int ici_dims(const NetGroup *g)
{
	int k = 0;
	for (int i = 0; i < g->ndims; i++)
		k += g->dim[i].axis != NET_DCN;
	return k;
}

/* The plan of s, or of part `rot` of `parts` of a split collective: that
 * part carries bytes/parts and starts its reduce-scatter on the ICI
 * dimension rot places after the fastest (the others following in turn);
 * DCN dimensions stay last. */
static void make_plan(const Pod *p, const CollSpec *s, int rot, int parts, Plan *pl)
{
	const NetGroup *g = &s->group;
	memset(pl, 0, sizeof *pl);
	NetDim d[NET_MAX_DIMS];
	int nd = g->ndims;
	memcpy(d, g->dim, sizeof(NetDim) * (size_t)nd);
	/* Fastest first (stable): a reduce-scatter leaves less data for the
	 * dimensions after it, so the slow ones should see the least. */
	for (int i = 1; i < nd; i++)
		for (int j = i; j > 0 && dim_speed(p, &d[j]) > dim_speed(p, &d[j - 1]); j--) {
			NetDim t = d[j];
			d[j] = d[j - 1];
			d[j - 1] = t;
		}
	int idx[NET_MAX_DIMS], ni = 0;
	for (int i = 0; i < nd; i++)
		if (d[i].axis != NET_DCN)
			idx[ni++] = i;
	if (ni && rot % ni) {
		NetDim t[NET_MAX_DIMS];
		memcpy(t, d, sizeof(NetDim) * (size_t)nd);
		for (int i = 0; i < ni; i++)
			d[idx[i]] = t[idx[(i + rot) % ni]];
	}
	double B = s->bytes / parts;
	long N = 1;
	for (int i = 0; i < nd; i++)
		N *= d[i].size;
	/* Described in the order the dimensions run (all-gather: reversed). */
	char gd[200];
	NetGroup order = {.ndims = nd};
	for (int i = 0; i < nd; i++)
		order.dim[i] = d[s->kind == COLL_ALL_GATHER ? nd - 1 - i : i];
	net_group_describe(p, &order, gd, sizeof gd);
	if (nd == 0) {
		cat(pl->algo, sizeof pl->algo, "none (a group of one chip)");
		return;
	}
	switch (s->kind) {
	case COLL_ALL_REDUCE:
	case COLL_REDUCE_SCATTER: {
		double b = B;
		for (int i = 0; i < nd; i++) {
			add_ring(pl, &d[i], b / d[i].size, d[i].axis == NET_DCN);
			b /= d[i].size;
		}
		if (s->kind == COLL_ALL_REDUCE)
			for (int i = nd - 1; i >= 0; i--) {
				add_ring(pl, &d[i], b, d[i].axis == NET_DCN);
				b *= d[i].size;
			}
		cat(pl->algo, sizeof pl->algo,
		    s->kind == COLL_ALL_REDUCE ? "reduce-scatter then all-gather" : "reduce-scatter");
		break;
	}
	case COLL_ALL_GATHER: {
		double b = B / (double)N;
		for (int i = nd - 1; i >= 0; i--) {
			add_ring(pl, &d[i], b, d[i].axis == NET_DCN);
			b *= d[i].size;
		}
		cat(pl->algo, sizeof pl->algo, "all-gather");
		break;
	}
	case COLL_ALL_TO_ALL:
	case COLL_PERMUTE: {
		Phase *ph = &pl->ph[pl->n++];
		memset(ph, 0, sizeof *ph);
		ph->kind = s->kind == COLL_ALL_TO_ALL ? PH_A2A : PH_PERMUTE;
		ph->group = *g;
		ph->bytes = B;
		ph->rounds = 1;
		ph->shift = s->shift ? s->shift : 1;
		for (int i = 0; i < nd; i++)
			ph->dcn |= d[i].axis == NET_DCN;
		cat(pl->algo, sizeof pl->algo,
		    ph->kind == PH_A2A ? "direct all-to-all, shortest routes"
		                       : "direct sends, dimension-order routes");
		cat(pl->algo, sizeof pl->algo, " over ");
		cat(pl->algo, sizeof pl->algo, gd);
		return;
	}
	case COLL_KIND_COUNT:
		ir_die("bad collective kind");
	}
	cat(pl->algo, sizeof pl->algo, " over ");
	cat(pl->algo, sizeof pl->algo, gd);
	for (int i = 0; i < nd; i++) {
		cat(pl->algo, sizeof pl->algo, i ? ", " : "; ");
		cat(pl->algo, sizeof pl->algo, dim_algo(p, &order.dim[i]));
	}
}

/* ---- Playing a phase's round over the links -----------------------------*/

static int rank_on(const Pod *p, const NetDim *dm, const int xyz[3])
{
	(void)p;
	if (dm->axis == NET_DCN)
		return 0; /* the simulated slice is slice 0 */
	return xyz[dm->axis] / dm->stride % dm->size;
}

/* Successor in the folded ring 0 -> 2 -> 4 ... -> 5 -> 3 -> 1 -> 0. */
static int folded_next(int k, int n)
{
	if (k % 2 == 0)
		return k + 2 < n ? k + 2 : (n % 2 ? n - 2 : n - 1);
	return k >= 3 ? k - 2 : 0;
}

/* Chip q of the iteration over one axis: all chips of the slice, or in
 * line mode only the line through chip 0 along that axis (DCN: chip 0). */
static int iter_count(const Pod *p, int line, int axis)
{
	if (!line)
		return p->nchips;
	return axis == NET_DCN ? 1 : p->shape[axis];
}

static int iter_chip(const Pod *p, int line, int axis, int q)
{
	if (!line || axis == NET_DCN)
		return q;
	return axis == 0 ? q : axis == 1 ? q * p->shape[0] : q * p->shape[0] * p->shape[1];
}

/* Line mode is exact when every line along an axis carries the same
 * pattern: no twist, and a pattern that moves along one axis at a time
 * (rings, all-to-all) or a permute along one ICI dimension. */
static int line_mode_ok(const Pod *p, const Phase *ph)
{
	if (p->twisted || p->full_play)
		return 0;
	if (ph->kind == PH_PERMUTE)
		return ph->group.ndims == 1 && ph->group.dim[0].axis != NET_DCN;
	return 1;
}

/* All-to-all on a twisted torus: every pair of the ICI part of the group
 * exchanges directly over the routes that use the twisted wraparounds (the
 * point of twisting). Each pair carries the flows of every slice: buffer /
 * ICI group size. Returns the latency of the longest route. */
static double a2a_direct_ici(const Pod *p, const Phase *ph, double *load)
{
	const NetGroup *g = &ph->group;
	int dims[NET_MAX_DIMS], nd = 0;
	long n = 1;
	for (int j = 0; j < g->ndims; j++)
		if (g->dim[j].axis != NET_DCN) {
			dims[nd++] = j;
			n *= g->dim[j].size;
		}
	if (n < 2)
		return 0;
	double piece = ph->bytes / (double)n;
	int maxhops = 0;
	for (int i = 0; i < p->nchips; i++) {
		int xyz[3], k[NET_MAX_DIMS];
		pod_coords(p, i, xyz);
		for (int j = 0; j < nd; j++)
			k[j] = rank_on(p, &g->dim[dims[j]], xyz);
		for (long r = 0; r < n; r++) {
			int t[3] = {xyz[0], xyz[1], xyz[2]};
			long rr = r;
			for (int j = 0; j < nd; j++) {
				const NetDim *dm = &g->dim[dims[j]];
				t[dm->axis] += ((int)(rr % dm->size) - k[j]) * dm->stride;
				rr /= dm->size;
			}
			int dst = pod_chip_id(p, t);
			if (dst == i)
				continue;
			int h = net_route(p, load, i, dst, piece);
			maxhops = h > maxhops ? h : maxhops;
		}
	}
	return maxhops * p->chip.ici_hop_latency;
}

/* Adds one round of the phase to load[] (chip*6 + 2*axis + dir for ICI,
 * 6*nchips + 2*chip (+1) for DCN egress (ingress)). Returns its latency, s.
 * line: play only the lines through chip 0 (see line_mode_ok). */
static double play_round(const Pod *p, const Phase *ph, double *load, int line)
{
	const Chip *c = &p->chip;
	double *eg = load + 6 * p->nchips; /* egress at 2c, ingress at 2c+1 */
	int maxhops = 0;
	double lat = 0;
	switch (ph->kind) {
	case PH_RING: {
		const NetDim *dm = &ph->dim;
		int cnt = iter_count(p, line, dm->axis);
		if (dm->axis == NET_DCN) {
			for (int i = 0; i < cnt; i++) {
				eg[2 * i] += ph->bytes;
				eg[2 * i + 1] += ph->bytes;
			}
			return c->dcn_latency;
		}
		int ring = net_dim_is_ring(p, dm);
		for (int q = 0; q < cnt; q++) {
			int i = iter_chip(p, line, dm->axis, q), h;
			if (ring) {
				h = net_walk(p, load, i, dm->axis, dm->stride, ph->bytes / 2, NULL);
				net_walk(p, load, i, dm->axis, -dm->stride, ph->bytes / 2, NULL);
			} else {
				int xyz[3];
				pod_coords(p, i, xyz);
				int k = rank_on(p, dm, xyz);
				int nx = folded_next(k, dm->size);
				h = net_walk(p, load, i, dm->axis, (nx - k) * dm->stride, ph->bytes, NULL);
			}
			maxhops = h > maxhops ? h : maxhops;
		}
		return maxhops * c->ici_hop_latency;
	}
	case PH_A2A:
		if (p->twisted)
			lat = a2a_direct_ici(p, ph, load);
		for (int j = 0; j < ph->group.ndims; j++) {
			const NetDim *dm = &ph->group.dim[j];
			int n = dm->size, cnt = iter_count(p, line, dm->axis);
			double piece = ph->bytes / n;
			if (p->twisted && dm->axis != NET_DCN)
				continue;
			if (dm->axis == NET_DCN) {
				for (int i = 0; i < cnt; i++) {
					eg[2 * i] += piece * (n - 1);
					eg[2 * i + 1] += piece * (n - 1);
				}
				lat += c->dcn_latency;
				continue;
			}
			int a = dm->axis, L = p->shape[a];
			int wraps = p->wrap[a] && !(p->twisted && p->twist_short[a]);
			maxhops = 0;
			for (int q = 0; q < cnt; q++) {
				int i = iter_chip(p, line, a, q), xyz[3];
				pod_coords(p, i, xyz);
				int k = rank_on(p, dm, xyz);
				for (int r = 0; r < n; r++) {
					if (r == k)
						continue;
					int st = (r - k) * dm->stride, h;
					int s = ((st % L) + L) % L;
					if (wraps && 2 * s == L) { /* equidistant: half each way */
						h = net_walk(p, load, i, a, s, piece / 2, NULL);
						net_walk(p, load, i, a, -s, piece / 2, NULL);
					} else {
						h = net_walk(p, load, i, a, st, piece, NULL);
					}
					maxhops = h > maxhops ? h : maxhops;
				}
			}
			lat += maxhops * c->ici_hop_latency;
		}
		return lat;
	case PH_PERMUTE: {
		const NetGroup *g = &ph->group;
		long N = 1;
		for (int j = 0; j < g->ndims; j++)
			N *= g->dim[j].size;
		int dcnlat = 0;
		int cnt = iter_count(p, line, g->ndims ? g->dim[0].axis : 0);
		for (int q = 0; q < cnt; q++) {
			int i = iter_chip(p, line, g->ndims ? g->dim[0].axis : 0, q);
			int xyz[3], k[NET_MAX_DIMS];
			pod_coords(p, i, xyz);
			long r = 0, w = 1;
			for (int j = 0; j < g->ndims; j++) {
				k[j] = rank_on(p, &g->dim[j], xyz);
				r += k[j] * w;
				w *= g->dim[j].size;
			}
			long r2 = ((r + ph->shift) % N + N) % N;
			int t[3] = {xyz[0], xyz[1], xyz[2]}, cross = 0;
			for (int j = 0; j < g->ndims; j++) {
				int k2 = (int)(r2 % g->dim[j].size);
				r2 /= g->dim[j].size;
				if (g->dim[j].axis == NET_DCN)
					cross |= k2 != k[j];
				else
					t[g->dim[j].axis] += (k2 - k[j]) * g->dim[j].stride;
			}
			int dst = pod_chip_id(p, t);
			if (cross) {
				eg[2 * i] += ph->bytes;
				eg[2 * dst + 1] += ph->bytes;
				dcnlat = 1;
			} else if (dst != i) {
				int h = net_route(p, load, i, dst, ph->bytes);
				maxhops = h > maxhops ? h : maxhops;
			}
		}
		lat = maxhops * c->ici_hop_latency;
		if (dcnlat && c->dcn_latency > lat)
			lat = c->dcn_latency;
		return lat;
	}
	}
	return 0;
}

/* The axes a phase's lines run along, as a bit set (bit 3: DCN). */
static unsigned phase_axes(const Phase *ph)
{
	if (ph->kind == PH_RING)
		return 1u << ph->dim.axis;
	unsigned m = 0;
	for (int j = 0; j < ph->group.ndims; j++)
		m |= 1u << ph->group.dim[j].axis;
	return m;
}

/* ---- Memo table ----------------------------------------------------------*/

typedef struct MemoKey {
	int kind, shift, algo, pad;
	double bytes;
	NetGroup group;
} MemoKey;

typedef struct MemoEntry {
	int used;
	MemoKey key;
	CollResult res;
} MemoEntry;

struct NetCache {
	MemoEntry *tab; /* (cap) open addressing, linear probing */
	long cap, n, hits;
	double *load;   /* (nlinks) scratch of one collective */
	double *multi;  /* (NET_MAX_DIMS * nlinks) scratch of a split one, or NULL */
	int *share;     /* (nlinks) scratch, or NULL */
	int nlinks;
};

NetCache *net_cache_new(int nlinks)
{
	NetCache *c = calloc(1, sizeof *c);
	if (!c)
		ir_die("out of memory");
	c->nlinks = nlinks;
	c->load = calloc((size_t)nlinks, sizeof(double));
	if (!c->load)
		ir_die("out of memory");
	return c;
}

void net_cache_free(NetCache *c)
{
	if (!c)
		return;
	free(c->tab);
	free(c->load);
	free(c->multi);
	free(c->share);
	free(c);
}

void pod_cache_stats(const Pod *p, long *hits, long *entries)
{
	*hits = p->cache->hits;
	*entries = p->cache->n;
}

void pod_cache_clear(const Pod *p)
{
	NetCache *c = p->cache;
	if (c->tab)
		memset(c->tab, 0, sizeof(MemoEntry) * (size_t)c->cap);
	c->n = c->hits = 0;
}

/* A word at a time, each step mixing the high bits back into the low ones
 * the table index takes. */
static uint64_t key_hash(const MemoKey *k)
{
	const unsigned char *b = (const unsigned char *)k;
	uint64_t h = 1469598103934665603ull;
	size_t i = 0;
	for (; i + 8 <= sizeof *k; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 32;
	}
	for (; i < sizeof *k; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

static void make_key(const CollSpec *s, MemoKey *k)
{
	memset(k, 0, sizeof *k); /* padding too: keys are hashed and compared as bytes */
	k->kind = (int)s->kind;
	k->algo = (int)s->algo;
	k->shift = s->kind == COLL_PERMUTE ? (s->shift ? s->shift : 1) : 0;
	k->bytes = s->bytes;
	k->group.ndims = s->group.ndims;
	for (int i = 0; i < s->group.ndims; i++)
		k->group.dim[i] = s->group.dim[i];
}

/* Entries kept at most; a full table is emptied and refilled (a sweep over
 * millions of distinct sizes must not grow without bound). */
#define MEMO_MAX (1L << 16)

static MemoEntry *memo_find(NetCache *c, const MemoKey *k, int insert)
{
	if (insert && c->n >= MEMO_MAX) {
		memset(c->tab, 0, sizeof(MemoEntry) * (size_t)c->cap);
		c->n = 0;
	}
	if (insert && 2 * (c->n + 1) > c->cap) {
		long ncap = c->cap ? 2 * c->cap : 64;
		MemoEntry *nt = calloc((size_t)ncap, sizeof *nt);
		if (!nt)
			ir_die("out of memory");
		for (long i = 0; i < c->cap; i++) {
			if (!c->tab[i].used)
				continue;
			long j = (long)(key_hash(&c->tab[i].key) & (uint64_t)(ncap - 1));
			while (nt[j].used)
				j = (j + 1) & (ncap - 1);
			nt[j] = c->tab[i];
		}
		free(c->tab);
		c->tab = nt;
		c->cap = ncap;
	}
	if (!c->cap)
		return NULL;
	long j = (long)(key_hash(k) & (uint64_t)(c->cap - 1));
	while (c->tab[j].used) {
		if (!memcmp(&c->tab[j].key, k, sizeof *k))
			return &c->tab[j];
		j = (j + 1) & (c->cap - 1);
	}
	if (!insert)
		return NULL;
	c->tab[j].used = 1;
	c->tab[j].key = *k;
	c->n++;
	return &c->tab[j];
}

/* ---- The engine ----------------------------------------------------------*/

static void finish(const Pod *p, const CollSpec *s, CollResult *r)
{
	(void)p;
	long n = 1;
	for (int i = 0; i < s->group.ndims; i++)
		n *= s->group.dim[i].size;
	r->group_size = (int)n;
	r->algbw = r->time_s > 0 ? s->bytes / r->time_s : 0;
	double f = 1;
	switch (s->kind) {
	case COLL_ALL_REDUCE:
		f = 2.0 * (double)(n - 1) / (double)n;
		break;
	case COLL_ALL_GATHER:
	case COLL_REDUCE_SCATTER:
	case COLL_ALL_TO_ALL:
		f = (double)(n - 1) / (double)n;
		break;
	case COLL_PERMUTE:
	case COLL_KIND_COUNT:
		f = 1;
		break;
	}
	r->busbw = r->algbw * f;
}

/* normalized: s->group is already net_group_normalize's result (which a
 * second pass would return unchanged). */
static int check_spec_as(const Pod *p, const CollSpec *s, CollSpec *out, int normalized,
                         Diag *d)
{
	*out = *s;
	if ((unsigned)s->kind >= COLL_KIND_COUNT) {
		diag_error(d, "collective", 0, 0, "unknown kind %d", (int)s->kind);
		return -1;
	}
	if (!(s->bytes >= 0) || !isfinite(s->bytes)) {
		diag_error(d, "--bytes", 0, 0,
		           "%g is not a size in bytes", s->bytes);
		return -1;
	}
	if (!normalized && net_group_normalize(p, &out->group, d) < 0)
		return -1;
	for (int i = 0; i < out->group.ndims; i++)
		if (out->group.dim[i].axis == NET_DCN && !(p->chip.dcn_bw_per_chip > 0)) {
			diag_error(d, "--chip", 0, 0,
			           "chip '%s' has no DCN bandwidth", p->chip.name);
			return -1;
		}
	return 0;
}

static int check_spec(const Pod *p, const CollSpec *s, CollSpec *out, Diag *d)
{
	return check_spec_as(p, s, out, 0, d);
}

static int same_pattern(const Phase *a, const Phase *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == PH_RING)
		return !memcmp(&a->dim, &b->dim, sizeof a->dim);
	return a->shift == b->shift && !memcmp(&a->group, &b->group, sizeof a->group);
}

static double max_over(const double *x, int n, double m)
{
	for (int i = 0; i < n; i++)
		m = x[i] > m ? x[i] : m;
	return m;
}

/* Largest bytes/bandwidth over the links of load[] (s per byte of chunk
 * when the round was played with 1-byte chunks); leaves load[] zero. In
 * line mode only the links of the lines through chip 0 along axes were
 * touched. */
static double busiest(const Pod *p, double *load, int line, unsigned axes)
{
	double mi = 0, md = 0;
	int ni = 6 * p->nchips;
	if (!line) {
		mi = max_over(load, ni, 0);
		md = max_over(load + ni, p->nlinks - ni, 0);
		memset(load, 0, sizeof(double) * (size_t)p->nlinks);
	} else {
		for (int a = 0; a < 4; a++) {
			if (!(axes >> a & 1))
				continue;
			for (int q = 0, cnt = iter_count(p, 1, a); q < cnt; q++) {
				int i = iter_chip(p, 1, a, q);
				mi = max_over(load + 6 * i, 6, mi);
				md = max_over(load + ni + 2 * i, 2, md);
				memset(load + 6 * i, 0, 6 * sizeof(double));
				memset(load + ni + 2 * i, 0, 2 * sizeof(double));
			}
		}
	}
	mi /= p->chip.ici_link_bw;
	if (md > 0)
		md /= p->chip.dcn_bw_per_chip;
	return mi > md ? mi : md;
}

/* One collective alone: a round's time is linear in its chunk, so each
 * distinct pattern is played once with 1-byte chunks and scaled; and when
 * every line along an axis carries the same pattern, one line is played.
 * load[] is all zero on entry and on return. */
static void play_one(const Pod *p, const Plan *pl, CollResult *out, double *load)
{
	struct {
		const Phase *ph;
		double per_byte, lat; /* s per chunk byte, s */
	} seen[MAX_PHASES];
	int ns = 0;
	memset(out, 0, sizeof *out);
	out->algo[0] = 0;
	cat(out->algo, sizeof out->algo, pl->algo);
	out->nphases = pl->n;
	for (int i = 0; i < pl->n; i++) {
		const Phase *ph = &pl->ph[i];
		if (ph->rounds <= 0)
			continue;
		int j = 0;
		while (j < ns && !same_pattern(seen[j].ph, ph))
			j++;
		if (j == ns) {
			Phase unit = *ph;
			unit.bytes = 1;
			int line = line_mode_ok(p, ph);
			seen[ns].ph = ph;
			seen[ns].lat = play_round(p, &unit, load, line);
			seen[ns].per_byte = busiest(p, load, line, phase_axes(ph));
			ns++;
		}
		double t = ph->rounds * (ph->bytes * seen[j].per_byte + seen[j].lat);
		out->time_s += t;
		if (ph->dcn)
			out->dcn_time_s += t;
		else
			out->ici_time_s += t;
	}
}

/* The chips whose links a phase touches in line mode: the lines through
 * chip 0 along the axes in mask (bit 3, DCN: chip 0). Returns the count;
 * out must hold shape[0] + shape[1] + shape[2] + 1 ids. */
static int line_chips(const Pod *p, unsigned mask, int *out)
{
	int n = 0;
	for (int a = 0; a < 4; a++)
		if (mask >> a & 1)
			for (int q = 0, cnt = iter_count(p, 1, a); q < cnt; q++)
				out[n++] = iter_chip(p, 1, a, q);
	return n;
}

/* Plays n plans together: plan i belongs to collective owner[i] (a split
 * collective has several plans). Every phase is played once with 1-byte
 * chunks (loads are linear in the chunk); a link used by k plans at once
 * gives each 1/k of its bandwidth. loads: n buffers of nlinks, all zero on
 * entry and on return. out[i]: plan i's finish and its ICI/DCN times. */
static void play(const Pod *p, int n, const Plan *pl, CollResult *out, double *loads,
                 int *share)
{
	int nl = p->nlinks, ni = 6 * p->nchips;
	int line = 1;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < pl[i].n; j++)
			line &= line_mode_ok(p, &pl[i].ph[j]);
	int *cur = calloc((size_t)n, sizeof(int));
	double *left = calloc((size_t)n, sizeof(double));
	double *lat = calloc((size_t)n, sizeof(double));
	double *rt = calloc((size_t)n, sizeof(double));
	int *fresh = calloc((size_t)n, sizeof(int));
	unsigned *mask = calloc((size_t)n, sizeof(unsigned));
	int *chips = calloc((size_t)(line ? p->shape[0] + p->shape[1] + p->shape[2] + 1
	                                  : p->nchips),
	                    sizeof(int));
	if (!cur || !left || !lat || !rt || !fresh || !mask || !chips)
		ir_die("out of memory");
	double now = 0;
	for (int i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		out[i].algo[0] = 0;
		cat(out[i].algo, sizeof out[i].algo, pl[i].algo);
		out[i].nphases = pl[i].n;
		fresh[i] = 1;
		while (cur[i] < pl[i].n && pl[i].ph[cur[i]].rounds <= 0)
			cur[i]++;
	}
	for (;;) {
		int active = 0;
		unsigned all = 0;
		for (int i = 0; i < n; i++) {
			double *ld = loads + (size_t)i * (size_t)nl;
			if (fresh[i] && mask[i]) { /* clear the previous phase's loads */
				if (line) {
					int nc = line_chips(p, mask[i], chips);
					for (int q = 0; q < nc; q++) {
						memset(ld + 6 * chips[q], 0, 6 * sizeof(double));
						memset(ld + ni + 2 * chips[q], 0, 2 * sizeof(double));
					}
				} else {
					memset(ld, 0, sizeof(double) * (size_t)nl);
				}
				mask[i] = 0;
			}
			if (cur[i] >= pl[i].n)
				continue;
			active++;
			if (fresh[i]) {
				Phase unit = pl[i].ph[cur[i]];
				unit.bytes = 1;
				lat[i] = play_round(p, &unit, ld, line);
				left[i] = unit.rounds;
				mask[i] = phase_axes(&unit);
				fresh[i] = 0;
			}
			all |= mask[i];
		}
		if (!active)
			break;
		/* The links in play, and how many plans share each. */
		int nc;
		if (line) {
			nc = line_chips(p, all, chips);
		} else {
			nc = p->nchips;
			for (int q = 0; q < nc; q++)
				chips[q] = q;
		}
		for (int q = 0; q < nc; q++) {
			int c = chips[q];
			for (int k = 0; k < 8; k++) {
				int l = k < 6 ? 6 * c + k : ni + 2 * c + (k - 6);
				int sh = 0;
				for (int i = 0; i < n; i++)
					sh += cur[i] < pl[i].n && loads[(size_t)i * (size_t)nl + (size_t)l] > 0;
				share[l] = sh;
			}
		}
		double dt = INFINITY;
		for (int i = 0; i < n; i++) {
			if (cur[i] >= pl[i].n)
				continue;
			const double *ld = loads + (size_t)i * (size_t)nl;
			double mi = 0, md = 0;
			for (int q = 0; q < nc; q++) {
				int c = chips[q];
				for (int k = 0; k < 6; k++) {
					double v = ld[6 * c + k] * share[6 * c + k];
					mi = v > mi ? v : mi;
				}
				for (int k = 0; k < 2; k++) {
					double v = ld[ni + 2 * c + k] * share[ni + 2 * c + k];
					md = v > md ? v : md;
				}
			}
			mi /= p->chip.ici_link_bw;
			md = md > 0 ? md / p->chip.dcn_bw_per_chip : 0;
			rt[i] = pl[i].ph[cur[i]].bytes * (mi > md ? mi : md) + lat[i];
			double fin = left[i] * rt[i];
			dt = fin < dt ? fin : dt;
		}
		now += dt;
		for (int i = 0; i < n; i++) {
			if (cur[i] >= pl[i].n)
				continue;
			const Phase *ph = &pl[i].ph[cur[i]];
			if (ph->dcn)
				out[i].dcn_time_s += dt;
			else
				out[i].ici_time_s += dt;
			double done = rt[i] > 0 ? dt / rt[i] : left[i];
			left[i] -= done;
			if (left[i] <= 1e-9 * ph->rounds || rt[i] * left[i] <= 0) {
				do
					cur[i]++;
				while (cur[i] < pl[i].n && pl[i].ph[cur[i]].rounds <= 0);
				fresh[i] = 1;
				if (cur[i] >= pl[i].n)
					out[i].time_s = now;
			}
		}
	}
	free(cur);
	free(left);
	free(lat);
	free(rt);
	free(fresh);
	free(mask);
	free(chips);
}

/* The plans of one collective under algorithm a: one plan (sequential), or
 * one per ICI dimension (split). Returns the number of plans written. */
static int plans_for(const Pod *p, const CollSpec *s, CollAlgo a, Plan *pl)
{
	int k = ici_dims(&s->group);
	int splittable = (s->kind == COLL_ALL_REDUCE || s->kind == COLL_ALL_GATHER ||
	                  s->kind == COLL_REDUCE_SCATTER) && k >= 2;
	if (a != COLL_ALGO_SPLIT || !splittable) {
		make_plan(p, s, 0, 1, &pl[0]);
		return 1;
	}
	for (int j = 0; j < k; j++)
		make_plan(p, s, j, k, &pl[j]);
	return k;
}

/* Folds the results of a collective's plans into one: it ends when its last
 * part ends. */
static void merge_parts(int n, const CollResult *parts, CollResult *r, int split)
{
	int last = 0;
	for (int j = 1; j < n; j++)
		if (parts[j].time_s > parts[last].time_s)
			last = j;
	*r = parts[last];
	if (split) {
		char a[sizeof r->algo];
		int w = snprintf(a, sizeof a, "%d-way split, all axes at once (part j starts on "
		                 "the j-th axis): ", n);
		size_t at = w > 0 ? (size_t)w : 0, len = strlen(parts[0].algo);
		if (at + len >= sizeof a)
			len = sizeof a - 1 - at;
		memcpy(a + at, parts[0].algo, len);
		a[at + len] = 0;
		memcpy(r->algo, a, sizeof a);
	}
}

/* Costs s alone (not memoised) under algorithm a; AUTO takes the faster of
 * sequential and split. */
static void cost_one(const Pod *p, const CollSpec *s, CollAlgo a, CollResult *r)
{
	Plan pl[NET_MAX_DIMS];
	CollResult parts[NET_MAX_DIMS];
	if (a == COLL_ALGO_AUTO) {
		CollResult seq, spl;
		cost_one(p, s, COLL_ALGO_SEQUENTIAL, &seq);
		int np = plans_for(p, s, COLL_ALGO_SPLIT, pl);
		if (np < 2) {
			*r = seq;
			return;
		}
		cost_one(p, s, COLL_ALGO_SPLIT, &spl);
		*r = spl.time_s < seq.time_s ? spl : seq;
		return;
	}
	int np = plans_for(p, s, a, pl);
	if (np == 1) {
		play_one(p, &pl[0], r, p->cache->load);
	} else {
		NetCache *c = p->cache; /* buffers kept zero between uses */
		if (!c->multi) {
			c->multi = calloc((size_t)NET_MAX_DIMS * (size_t)p->nlinks, sizeof(double));
			c->share = calloc((size_t)p->nlinks, sizeof(int));
			if (!c->multi || !c->share)
				ir_die("out of memory");
		}
		play(p, np, pl, parts, c->multi, c->share);
		merge_parts(np, parts, r, 1);
	}
	finish(p, s, r);
}

static int group_collective(const Pod *p, const CollSpec *s, int normalized, CollResult *r,
                            Diag *d)
{
	CollSpec cs;
	if (check_spec_as(p, s, &cs, normalized, d) < 0)
		return -1;
	MemoKey k;
	make_key(&cs, &k);
	MemoEntry *e = memo_find(p->cache, &k, 0);
	if (e) {
		p->cache->hits++;
		*r = e->res;
		return 0;
	}
	cost_one(p, &cs, cs.algo, r);
	e = memo_find(p->cache, &k, 1);
	e->res = *r;
	return 0;
}

int pod_group_collective(const Pod *p, const CollSpec *s, CollResult *r, Diag *d)
{
	return group_collective(p, s, 0, r, d);
}

int pod_collective(const Pod *p, CollKind k, unsigned phys_axes, int over_dcn, double bytes,
                   CollResult *r, Diag *d)
{
	CollSpec s = {.kind = k, .bytes = bytes, .shift = 1};
	if (pod_full_group(p, phys_axes, over_dcn, &s.group, d) < 0)
		return -1;
	return pod_group_collective(p, &s, r, d);
}

int pod_collectives_concurrent(const Pod *p, int n, const CollSpec *specs, CollResult *out,
                               Diag *d)
{
	if (n < 1)
		return 0;
	Plan *pl = calloc((size_t)n * NET_MAX_DIMS, sizeof *pl);
	CollResult *parts = calloc((size_t)n * NET_MAX_DIMS, sizeof *parts);
	int *first = calloc((size_t)n + 1, sizeof(int));
	int *split = calloc((size_t)n, sizeof(int));
	CollSpec *cs = calloc((size_t)n, sizeof *cs);
	if (!pl || !parts || !first || !split || !cs)
		ir_die("out of memory");
	int rc = 0, np = 0;
	for (int i = 0; i < n && !rc; i++) {
		if (check_spec(p, &specs[i], &cs[i], d) < 0) {
			rc = -1;
			break;
		}
		CollAlgo a = cs[i].algo;
		if (a == COLL_ALGO_AUTO) { /* the algorithm it would use alone */
			CollResult alone;
			cost_one(p, &cs[i], COLL_ALGO_AUTO, &alone);
			a = strstr(alone.algo, "split") ? COLL_ALGO_SPLIT : COLL_ALGO_SEQUENTIAL;
		}
		first[i] = np;
		int k = plans_for(p, &cs[i], a, pl + np);
		split[i] = k > 1;
		np += k;
	}
	first[n] = np;
	if (!rc) {
		double *loads = calloc((size_t)np * (size_t)p->nlinks, sizeof(double));
		int *share = calloc((size_t)p->nlinks, sizeof(int));
		if (!loads || !share)
			ir_die("out of memory");
		play(p, np, pl, parts, loads, share);
		free(loads);
		free(share);
		for (int i = 0; i < n; i++) {
			merge_parts(first[i + 1] - first[i], parts + first[i], &out[i], split[i]);
			finish(p, &cs[i], &out[i]);
		}
	}
	free(pl);
	free(parts);
	free(first);
	free(split);
	free(cs);
	return rc;
}

int pod_mesh_collective(const Pod *p, const MeshPlacement *mp, CollKind k, uint32_t mesh_axes,
                        double bytes, CollResult *r, Diag *d)
{
	CollSpec s = {.kind = k, .bytes = bytes, .shift = 1};
	if (mesh_placement_group(p, mp, mesh_axes, &s.group, d) < 0)
		return -1;
	return group_collective(p, &s, 1, r, d); /* the group comes normalized */
}
