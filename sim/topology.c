/*
 * The pod's topology: slice shapes checked against the chip, coordinates,
 * neighbours, routes and hop counts, ring groups, and the placement of named
 * mesh axes onto physical axes (docs/network.md).
 *
 * Links are directed: chip c's link along axis a in direction + is
 * c*6 + 2a, in direction - it is c*6 + 2a + 1; DCN egress/ingress of chip c
 * are 6*nchips + 2c and + 1. A wraparound link exists on an axis iff the
 * chip says so for its length (chip_axis_wraps). On a twisted torus, leaving
 * a short axis through its wraparound link also moves half-way round the
 * long axis (twist_long), the TPU v4 twisted-torus wiring.
 */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char axis_letter[] = {'x', 'y', 'z', 'd'};

int pod_parse_shape(const char *s, int shape[3])
{
	int n = 0;
	const char *q = s;
	shape[0] = shape[1] = shape[2] = 1;
	if (!s || !*s)
		return -1;
	for (;;) {
		if (*q < '0' || *q > '9' || n == 3)
			return -1;
		char *end;
		long v = strtol(q, &end, 10);
		if (v < 1 || v > 1 << 16)
			return -1;
		shape[n++] = (int)v;
		q = end;
		if (*q == 0)
			break;
		if (*q != 'x' && *q != 'X')
			return -1;
		q++;
	}
	return n;
}

static void shape_str(const int *shape, int ndims, char *buf, size_t n)
{
	if (ndims == 3)
		snprintf(buf, n, "%dx%dx%d", shape[0], shape[1], shape[2]);
	else
		snprintf(buf, n, "%dx%d", shape[0], shape[1]);
}

static int cmp_int_desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x < y) - (x > y);
}

/* Twisted tori exist for k x k x 2k and k x 2k x 2k 3D slices whose short
 * axes wrap (TPU v4). Sets the twist fields or fills d. */
static int setup_twist(Pod *p, const char *shp, Diag *d)
{
	const Chip *c = &p->chip;
	if (!c->twisted_ok) {
		diag_error(d, "--twisted", 0, 0,
		           "chip '%s' has no twisted tori", c->name);
		return -1;
	}
	int lo = p->shape[0], hi = p->shape[0];
	for (int a = 0; a < 3; a++) {
		lo = p->shape[a] < lo ? p->shape[a] : lo;
		hi = p->shape[a] > hi ? p->shape[a] : hi;
	}
	int ok = p->ndims == 3 && hi == 2 * lo;
	for (int a = 0; ok && a < 3; a++)
		ok = (p->shape[a] == lo || p->shape[a] == hi) && p->wrap[a];
	if (!ok) {
		diag_error(d, "--twisted", 0, 0,
		           "slice %s cannot be twisted on chip '%s': a twisted torus "
		           "is k x k x 2k or k x 2k x 2k with every axis wrapping (axis length >= %d "
		           "and a multiple of %d)",
		           shp, c->name, c->ici_wrap_min, c->ici_wrap_multiple);
		return -1;
	}
	p->twisted = 1;
	p->twist_long = -1;
	for (int a = 0; a < 3; a++) {
		p->twist_short[a] = p->shape[a] == lo;
		if (p->shape[a] == hi && p->twist_long < 0)
			p->twist_long = a;
	}
	return 0;
}

int pod_init(Pod *p, const Chip *c, const int shape[3], int ndims, int nslices,
             int twisted, Diag *d)
{
	memset(p, 0, sizeof *p);
	p->chip = *c;
	p->twist_long = -1;
	char shp[64];
	shape_str(shape, ndims < 2 ? 2 : ndims, shp, sizeof shp);
	if (c->ici_ndims != 2 && c->ici_ndims != 3) {
		diag_error(d, "--chip", 0, 0,
		           "chip '%s': ici_ndims is %d (expected 2 or 3)", c->name,
		           c->ici_ndims);
		return -1;
	}
	p->ndims = c->ici_ndims;
	char lim[64];
	shape_str(c->max_slice, c->ici_ndims, lim, sizeof lim);
	if (ndims < 1 || ndims > c->ici_ndims) {
		diag_error(d, "--slice", 0, 0,
		           "slice %s: chip '%s' has a %dD interconnect; give at most %d dims "
		           "(largest slice %s)",
		           shp, c->name, c->ici_ndims, c->ici_ndims, lim);
		return -1;
	}
	for (int a = 0; a < 3; a++)
		p->shape[a] = a < ndims ? shape[a] : 1;
	/* Axes may come in any order: compare sorted against the sorted limit. */
	int s[3], m[3];
	for (int a = 0; a < 3; a++) {
		s[a] = p->shape[a];
		m[a] = a < c->ici_ndims ? c->max_slice[a] : 1;
		if (s[a] < 1) {
			diag_error(d, "--slice", 0, 0,
			           "slice %s: axis lengths must be >= 1", shp);
			return -1;
		}
	}
	qsort(s, 3, sizeof s[0], cmp_int_desc);
	qsort(m, 3, sizeof m[0], cmp_int_desc);
	for (int a = 0; a < 3; a++)
		if (s[a] > m[a]) {
			diag_error(d, "--slice", 0, 0,
			           "slice %s is not supported by chip '%s': its largest slice is %s "
			           "(axes in any order)",
			           shp, c->name, lim);
			return -1;
		}
	if (nslices < 1) {
		diag_error(d, "--slices", 0, 0,
		           "slices %d: need at least 1 slice", nslices);
		return -1;
	}
	if (nslices > 1 && !(c->dcn_bw_per_chip > 0)) {
		diag_error(d, "--slices", 0, 0,
		           "slices %d: chip '%s' has no DCN bandwidth", nslices,
		           c->name);
		return -1;
	}
	if (!(c->ici_link_bw > 0) || c->ici_hop_latency < 0) {
		diag_error(d, "--chip", 0, 0,
		           "chip '%s': ici_link_bw must be > 0", c->name);
		return -1;
	}
	p->nslices = nslices;
	p->nchips = p->shape[0] * p->shape[1] * p->shape[2];
	for (int a = 0; a < 3; a++)
		p->wrap[a] = p->shape[a] > 1 && chip_axis_wraps(c, p->shape[a]);
	if (twisted && setup_twist(p, shp, d) < 0)
		return -1;
	p->nlinks = p->nchips * 8;
	p->nbr = malloc(sizeof(int) * 6 * (size_t)p->nchips);
	if (!p->nbr)
		ir_die("out of memory");
	for (int i = 0; i < p->nchips; i++)
		for (int a = 0; a < 3; a++)
			for (int dir = 0; dir < 2; dir++)
				p->nbr[i * 6 + 2 * a + dir] = pod_neighbor(p, i, a, dir ? -1 : 1);
	p->cache = net_cache_new(p->nlinks);
	return 0;
}

int pod_clone(Pod *dst, const Pod *src)
{
	*dst = *src;
	dst->nbr = malloc(sizeof(int) * 6 * (size_t)src->nchips);
	if (!dst->nbr)
		ir_die("out of memory");
	memcpy(dst->nbr, src->nbr, sizeof(int) * 6 * (size_t)src->nchips);
	dst->cache = net_cache_new(src->nlinks);
	return 0;
}

void pod_free(Pod *p)
{
	net_cache_free(p->cache);
	p->cache = NULL;
	free(p->nbr);
	p->nbr = NULL;
}

void pod_coords(const Pod *p, int chip, int xyz[3])
{
	xyz[0] = chip % p->shape[0];
	xyz[1] = chip / p->shape[0] % p->shape[1];
	xyz[2] = chip / (p->shape[0] * p->shape[1]);
}

int pod_chip_id(const Pod *p, const int xyz[3])
{
	return xyz[0] + p->shape[0] * (xyz[1] + p->shape[1] * xyz[2]);
}

/* One step along axis in direction dir, in coordinates; 0 if no link. */
static int step(const Pod *p, int xyz[3], int axis, int dir)
{
	int L = p->shape[axis];
	if (L == 1)
		return 0;
	int v = xyz[axis] + dir;
	if (v >= 0 && v < L) {
		xyz[axis] = v;
		return 1;
	}
	if (!p->wrap[axis])
		return 0;
	xyz[axis] = (v + L) % L;
	if (p->twisted && p->twist_short[axis]) {
		int ll = p->shape[p->twist_long];
		xyz[p->twist_long] = (xyz[p->twist_long] + ll / 2) % ll;
	}
	return 1;
}

int pod_neighbor(const Pod *p, int chip, int axis, int dir)
{
	int xyz[3];
	if (axis < 0 || axis > 2 || (dir != 1 && dir != -1))
		return -1;
	pod_coords(p, chip, xyz);
	if (!step(p, xyz, axis, dir))
		return -1;
	return pod_chip_id(p, xyz);
}

/* Shortest signed steps on a wrapped axis of length L; a tie keeps sign. */
static int shortest(int steps, int L)
{
	int s = ((steps % L) + L) % L; /* 0 .. L-1 */
	if (2 * s > L)
		return s - L;
	if (2 * s == L)
		return steps < 0 ? -s : s;
	return s;
}

int net_walk(const Pod *p, double *load, int chip, int axis, int steps, double bytes, int *end)
{
	if (p->wrap[axis] && !(p->twisted && p->twist_short[axis]))
		steps = shortest(steps, p->shape[axis]);
	int l = 2 * axis + (steps < 0), n = steps < 0 ? -steps : steps;
	int c = chip;
	for (int i = 0; i < n; i++) {
		if (load)
			load[c * 6 + l] += bytes;
		int nx = p->nbr[c * 6 + l];
		if (nx < 0)
			ir_die("net_walk: no link from chip %d along %c", c, axis_letter[axis]);
		c = nx;
	}
	if (end)
		*end = c;
	return n;
}

static int axis_dist(const Pod *p, int axis, int from, int to)
{
	int d = to - from;
	if (p->wrap[axis])
		d = shortest(d, p->shape[axis]);
	return d < 0 ? -d : d;
}

int net_route(const Pod *p, double *load, int src, int dst, double bytes)
{
	int s[3], t[3], hops = 0, c = src;
	pod_coords(p, src, s);
	pod_coords(p, dst, t);
	if (!p->twisted) {
		for (int a = 0; a < 3; a++) {
			int cur[3];
			pod_coords(p, c, cur);
			if (cur[a] != t[a])
				hops += net_walk(p, load, c, a, t[a] - cur[a], bytes, &c);
		}
		return hops;
	}
	/* Twisted: each short axis is crossed directly or through its twisted
	 * wraparound (which moves half-way round the long axis); try every
	 * combination, then walk the long axis last. */
	int lg = p->twist_long, ll = p->shape[lg];
	int best = -1, bestmask = 0;
	for (int mask = 0; mask < 8; mask++) {
		int h = 0, shift = 0, ok = 1;
		for (int a = 0; a < 3 && ok; a++) {
			if (a == lg)
				continue;
			int dd = t[a] - s[a], L = p->shape[a];
			if (mask >> a & 1) {
				if (!p->twist_short[a] || dd == 0)
					ok = 0;
				else {
					h += L - (dd < 0 ? -dd : dd);
					shift += ll / 2;
				}
			} else {
				h += dd < 0 ? -dd : dd;
			}
		}
		if (!ok)
			continue;
		h += axis_dist(p, lg, (s[lg] + shift) % ll, t[lg]);
		if (best < 0 || h < best) {
			best = h;
			bestmask = mask;
		}
	}
	for (int a = 0; a < 3; a++) {
		if (a == lg)
			continue;
		int dd = t[a] - s[a], L = p->shape[a];
		if (bestmask >> a & 1)
			dd = dd > 0 ? dd - L : dd + L;
		if (dd)
			hops += net_walk(p, load, c, a, dd, bytes, &c);
	}
	int cur[3];
	pod_coords(p, c, cur);
	if (cur[lg] != t[lg])
		hops += net_walk(p, load, c, lg, t[lg] - cur[lg], bytes, &c);
	if (c != dst)
		ir_die("net_route: reached chip %d, not %d", c, dst);
	return hops;
}

int pod_hops(const Pod *p, int a, int b)
{
	return net_route(p, NULL, a, b, 0);
}

int pod_diameter(const Pod *p)
{
	if (!p->twisted) {
		int h = 0;
		for (int a = 0; a < 3; a++)
			h += p->wrap[a] ? p->shape[a] / 2 : p->shape[a] - 1;
		return h;
	}
	/* A twisted torus looks the same from every chip. */
	int h = 0;
	for (int c = 0; c < p->nchips; c++) {
		int x = pod_hops(p, 0, c);
		h = x > h ? x : h;
	}
	return h;
}

void pod_describe(const Pod *p, char *buf, size_t n)
{
	char shp[64], wr[16] = "";
	shape_str(p->shape, p->ndims, shp, sizeof shp);
	size_t k = 0;
	for (int a = 0; a < p->ndims; a++)
		if (p->wrap[a]) {
			if (k)
				wr[k++] = ',';
			wr[k++] = axis_letter[a];
		}
	wr[k] = 0;
	snprintf(buf, n, "%s %s%s, wraparound on %s, %d slice%s%s", p->chip.name, shp,
	         p->twisted ? " twisted" : "", k ? wr : "no axis", p->nslices,
	         p->nslices > 1 ? "s" : "", p->nslices > 1 ? " over DCN" : "");
}

/* ---- Groups --------------------------------------------------------------*/

int net_dim_is_ring(const Pod *p, const NetDim *dm)
{
	if (dm->axis == NET_DCN)
		return 1;
	int a = dm->axis;
	return p->wrap[a] && !(p->twisted && p->twist_short[a]) &&
	       dm->size * dm->stride == p->shape[a];
}

static int dim_extent(const Pod *p, int axis)
{
	return axis == NET_DCN ? p->nslices : p->shape[axis];
}

int net_group_normalize(const Pod *p, NetGroup *g, Diag *d)
{
	NetGroup o = {0};
	if (g->ndims < 0 || g->ndims > NET_MAX_DIMS) {
		diag_error(d, "collective", 0, 0,
		           "%d dimensions (at most %d)", g->ndims,
		           NET_MAX_DIMS);
		return -1;
	}
	for (int i = 0; i < g->ndims; i++) {
		NetDim dm = g->dim[i];
		if (dm.axis < 0 || dm.axis > NET_DCN || (dm.axis < 3 && dm.axis >= p->ndims)) {
			diag_error(d, "collective", 0, 0,
			           "axis %d is not in the pod",
			           dm.axis);
			return -1;
		}
		int L = dim_extent(p, dm.axis);
		if (dm.size < 1 || dm.stride < 1 || (long)dm.size * dm.stride > L ||
		    L % (dm.size * dm.stride)) {
			diag_error(d, "collective", 0, 0,
			           "%d members %d apart do not tile axis %c of "
			           "length %d",
			           dm.size, dm.stride, axis_letter[dm.axis], L);
			return -1;
		}
		if (dm.size > 1)
			o.dim[o.ndims++] = dm;
	}
	/* Merge dims that continue each other on one axis. */
	for (int merged = 1; merged;) {
		merged = 0;
		for (int i = 0; i < o.ndims && !merged; i++)
			for (int j = 0; j < o.ndims && !merged; j++) {
				NetDim *a = &o.dim[i], *b = &o.dim[j];
				if (i == j || a->axis != b->axis || a->stride * a->size != b->stride)
					continue;
				a->size *= b->size;
				o.dim[j] = o.dim[--o.ndims];
				merged = 1;
			}
	}
	/* Dims of one axis must not overlap. */
	for (int i = 0; i < o.ndims; i++)
		for (int j = 0; j < o.ndims; j++) {
			const NetDim *a = &o.dim[i], *b = &o.dim[j];
			if (i == j || a->axis != b->axis || a->stride > b->stride)
				continue;
			if (a->stride * a->size > b->stride || (a->stride == b->stride && i < j)) {
				diag_error(d, "collective", 0, 0,
				           "axis %c is used twice in the group",
				           axis_letter[a->axis]);
				return -1;
			}
		}
	*g = o;
	return 0;
}

static const char *dim_kind(const Pod *p, const NetDim *dm)
{
	if (net_dim_is_ring(p, dm))
		return dm->size * dm->stride == p->shape[dm->axis] && dm->stride == 1
		               ? "torus"
		               : "ring via wraparound";
	if (p->twisted && p->twist_short[dm->axis])
		return "twisted wraparound: line for rings";
	return "line";
}

/* Appending at *k in buf[0..n) as one snprintf(buf + k0, n - k0, ...) call
 * would (collectives are described on every cost-model miss, so without
 * printf): what fits before the last byte is written, *k counts all. */
static void put_c(char *buf, size_t n, size_t *k, char c)
{
	if (*k + 1 < n)
		buf[*k] = c;
	++*k;
}

static void put_s(char *buf, size_t n, size_t *k, const char *s)
{
	for (; *s; s++)
		put_c(buf, n, k, *s);
}

static void put_d(char *buf, size_t n, size_t *k, int v)
{
	char t[12];
	int i = 0;
	unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
	do
		t[i++] = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		put_c(buf, n, k, '-');
	while (i > 0)
		put_c(buf, n, k, t[--i]);
}

void net_group_describe(const Pod *p, const NetGroup *g, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	if (g->ndims == 0)
		snprintf(buf, n, "(one chip)");
	for (int i = 0; i < g->ndims && k < n; i++) {
		const NetDim *dm = &g->dim[i];
		if (i)
			put_c(buf, n, &k, ' ');
		if (dm->axis == NET_DCN) {
			put_s(buf, n, &k, "dcn(");
			put_d(buf, n, &k, dm->size);
			if (dm->size != p->nslices) {
				put_s(buf, n, &k, " of ");
				put_d(buf, n, &k, p->nslices);
				put_s(buf, n, &k, " slices, stride ");
				put_d(buf, n, &k, dm->stride);
				put_c(buf, n, &k, ')');
			} else {
				put_s(buf, n, &k, " slices)");
			}
		} else {
			put_c(buf, n, &k, axis_letter[dm->axis]);
			put_c(buf, n, &k, '(');
			put_d(buf, n, &k, dm->size);
			if (dm->size != p->shape[dm->axis]) {
				put_s(buf, n, &k, " of ");
				put_d(buf, n, &k, p->shape[dm->axis]);
				put_s(buf, n, &k, ", stride ");
				put_d(buf, n, &k, dm->stride);
			}
			put_s(buf, n, &k, ", ");
			put_s(buf, n, &k, dim_kind(p, dm));
			put_c(buf, n, &k, ')');
		}
		buf[k < n ? k : n - 1] = 0; /* where that snprintf would end */
	}
}

int pod_full_group(const Pod *p, unsigned phys_axes, int over_dcn, NetGroup *g, Diag *d)
{
	memset(g, 0, sizeof *g);
	for (int a = 0; a < 3; a++) {
		if (!(phys_axes >> a & 1))
			continue;
		if (a >= p->ndims) {
			diag_error(d, "--axes", 0, 0,
			           "axis %c is not in a %dD slice", axis_letter[a],
			           p->ndims);
			return -1;
		}
		g->dim[g->ndims++] = (NetDim){a, p->shape[a], 1};
	}
	if (phys_axes & ~7u) {
		diag_error(d, "--axes", 0, 0,
		           "unknown axis bits 0x%x", phys_axes);
		return -1;
	}
	if (over_dcn)
		g->dim[g->ndims++] = (NetDim){NET_DCN, p->nslices, 1};
	return net_group_normalize(p, g, d);
}

/* ---- Device assignment ---------------------------------------------------*/

typedef struct PlaceState {
	int rem[3];  /* chips of the axis not yet given to a mesh axis (as a factor) */
	int used[3]; /* product of the factors already placed: the next stride */
} PlaceState;

static int gcd(int a, int b)
{
	while (b) {
		int t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static void put(PlaceState *st, NetGroup *g, int a, int f)
{
	g->dim[g->ndims++] = (NetDim){a, f, st->used[a]};
	st->used[a] *= f;
	st->rem[a] /= f;
}

static int place_default(const Pod *p, PlaceState *st, NetGroup *g, int size)
{
	if (size == 1)
		return 0;
	/* A whole free axis of exactly this size, then the rest of one. */
	for (int pass = 0; pass < 2; pass++)
		for (int a = 0; a < p->ndims; a++)
			if (st->rem[a] == size && (pass || st->used[a] == 1)) {
				put(st, g, a, size);
				return 0;
			}
	/* Part of one axis: the one with most chips left (consecutive chips). */
	int best = -1;
	for (int a = 0; a < p->ndims; a++)
		if (st->rem[a] % size == 0 && (best < 0 || st->rem[a] > st->rem[best]))
			best = a;
	if (best >= 0) {
		put(st, g, best, size);
		return 0;
	}
	/* Across several axes, most chips left first. */
	while (size > 1) {
		int a0 = -1;
		for (int a = 0; a < p->ndims; a++)
			if (gcd(size, st->rem[a]) > 1 &&
			    (a0 < 0 || st->rem[a] > st->rem[a0]))
				a0 = a;
		if (a0 < 0)
			return -1;
		int f = gcd(size, st->rem[a0]);
		put(st, g, a0, f);
		size /= f;
	}
	return 0;
}

int pod_place_mesh(const Pod *p, const Mesh *m, const char *spec, MeshPlacement *mp,
                   Diag *d)
{
	memset(mp, 0, sizeof *mp);
	mp->naxes = m->naxes;
	long ici = 1, dcn = 1;
	for (int i = 0; i < m->naxes; i++) {
		snprintf(mp->name[i], sizeof mp->name[i], "%s", m->axes[i].name);
		mp->ici[i] = m->axes[i].ici;
		mp->dcn[i] = m->axes[i].dcn;
		if (mp->ici[i] < 1 || mp->dcn[i] < 1) {
			diag_error(d, "--ici", 0, 0, "mesh axis '%s': sizes must be >= 1", mp->name[i]);
			return -1;
		}
		ici *= mp->ici[i];
		dcn *= mp->dcn[i];
	}
	char shp[64];
	shape_str(p->shape, p->ndims, shp, sizeof shp);
	if (ici != p->nchips) {
		diag_error(d, "--ici", 0, 0,
		           "the mesh's ICI sizes multiply to %ld, but slice %s has %d chips",
		           ici, shp, p->nchips);
		return -1;
	}
	if (dcn != p->nslices) {
		diag_error(d, "--dcn", 0, 0,
		           "the mesh's DCN sizes multiply to %ld, but the pod has %d slice%s",
		           dcn, p->nslices, p->nslices > 1 ? "s" : "");
		return -1;
	}
	PlaceState st;
	for (int a = 0; a < 3; a++) {
		st.rem[a] = a < p->ndims ? p->shape[a] : 1;
		st.used[a] = 1;
	}
	int placed[IR_MAX_MESH_AXES] = {0};
	mp->is_default = !spec || !*spec;
	/* Explicit entries, in the order written. */
	for (const char *q = spec; q && *q;) {
		const char *eq = strchr(q, '='), *end = strchr(q, ',');
		if (!end)
			end = q + strlen(q);
		if (!eq || eq > end) {
			diag_error(d, "--place", 0, 0,
			           "expected AXIS=PHYS (like tensor=x,fsdp=yz), got '%.*s'",
			           (int)(end - q), q);
			return -1;
		}
		int k = mesh_axis_index(m, q, (size_t)(eq - q));
		if (k < 0) {
			diag_error(d, "--place", 0, 0,
			           "'%.*s' is not a mesh axis", (int)(eq - q),
			           q);
			return -1;
		}
		if (placed[k]) {
			diag_error(d, "--place", 0, 0,
			           "mesh axis '%s' is placed twice",
			           mp->name[k]);
			return -1;
		}
		placed[k] = 1;
		int left = mp->ici[k];
		const char *v = eq + 1;
		if ((size_t)(end - v) == 3 && !strncmp(v, "dcn", 3)) {
			if (left != 1) {
				diag_error(d, "--place", 0, 0,
				           "mesh axis '%s' has ici=%d chips, it cannot be on "
				           "dcn alone",
				           mp->name[k], left);
				return -1;
			}
			v = end;
		}
		for (; v < end; v++) {
			int a = *v == 'x' ? 0 : *v == 'y' ? 1 : *v == 'z' ? 2 : -1;
			if (a < 0 || a >= p->ndims) {
				diag_error(d, "--place", 0, 0,
				           "'%c' in '%s=%.*s' is not an axis of slice %s "
				           "(x, y%s)",
				           *v, mp->name[k], (int)(end - eq - 1), eq + 1, shp,
				           p->ndims == 3 ? ", z" : "");
				return -1;
			}
			int f = gcd(left, st.rem[a]);
			if (f > 1) {
				put(&st, &mp->group[k], a, f);
				left /= f;
			}
		}
		if (left != 1) {
			diag_error(d, "--place", 0, 0,
			           "mesh axis '%s' (ici=%d) does not factor onto '%.*s' of "
			           "slice %s (%d chips of it cannot be placed)",
			           mp->name[k], mp->ici[k], (int)(end - eq - 1), eq + 1, shp, left);
			return -1;
		}
		q = *end ? end + 1 : end;
	}
	/* The rest: tensor first (innermost, consecutive chips), then the others
	 * largest first (stable). */
	int order[IR_MAX_MESH_AXES], n = 0;
	for (int i = 0; i < m->naxes; i++)
		if (!placed[i] && !strcmp(mp->name[i], "tensor"))
			order[n++] = i;
	int t0 = n;
	for (int i = 0; i < m->naxes; i++) {
		if (placed[i] || !strcmp(mp->name[i], "tensor"))
			continue;
		int j = n++;
		for (; j > t0 && mp->ici[order[j - 1]] < mp->ici[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (int i = 0; i < n; i++) {
		int k = order[i];
		if (place_default(p, &st, &mp->group[k], mp->ici[k]) < 0) {
			diag_error(d, "--ici", 0, 0,
			           "mesh axis '%s' (ici=%d) does not factor onto what is left of "
			           "slice %s (x:%d y:%d z:%d chips); place it with --place",
			           mp->name[k], mp->ici[k], shp, st.rem[0], st.rem[1], st.rem[2]);
			return -1;
		}
	}
	/* DCN: mesh order, the first axis innermost. */
	int dstride = 1;
	for (int i = 0; i < m->naxes; i++)
		if (mp->dcn[i] > 1) {
			NetGroup *g = &mp->group[i];
			g->dim[g->ndims++] = (NetDim){NET_DCN, mp->dcn[i], dstride};
			dstride *= mp->dcn[i];
		}
	return 0;
}

int mesh_placement_group(const Pod *p, const MeshPlacement *mp, uint32_t mesh_axes,
                         NetGroup *g, Diag *d)
{
	memset(g, 0, sizeof *g);
	for (int i = 0; i < mp->naxes; i++) {
		if (!(mesh_axes >> i & 1))
			continue;
		for (int j = 0; j < mp->group[i].ndims; j++) {
			if (g->ndims == NET_MAX_DIMS) {
				diag_error(d, "collective", 0, 0, "over too many ring dimensions");
				return -1;
			}
			g->dim[g->ndims++] = mp->group[i].dim[j];
		}
	}
	return net_group_normalize(p, g, d);
}

void mesh_placement_describe(const Pod *p, const MeshPlacement *mp, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; i < mp->naxes && k < n; i++) {
		char gd[256];
		if (mp->group[i].ndims)
			net_group_describe(p, &mp->group[i], gd, sizeof gd);
		else
			snprintf(gd, sizeof gd, "(not split)");
		int w = snprintf(buf + k, n - k, "%-10s ici=%-4d dcn=%-3d -> %s\n", mp->name[i],
		                 mp->ici[i], mp->dcn[i], gd);
		if (w < 0)
			break;
		k += (size_t)w;
	}
	if (k < n)
		snprintf(buf + k, n - k, "(placement: %s)\n", mp->is_default ? "default" : "--place");
}
