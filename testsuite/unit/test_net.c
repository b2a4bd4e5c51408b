/*
 * The network model (sim/net.h). Topology facts are checked by hand
 * (coordinates, neighbours, hops, twisted wraps, slice errors). Every
 * collective on rings, lines and tori of several sizes is held equal to the
 * closed-form alpha-beta cost of the same algorithm, written here from the
 * textbook formulas (alpha = per-hop latency, beta = 1 / link bandwidth):
 *
 *   bidirectional ring of n (torus axis), buffer B:
 *     reduce-scatter, all-gather: (n-1) (alpha + B / (2 n bw))
 *     all-reduce: twice that
 *   folded ring on a line of n (0->2->4..->3->1->0, at most 2 hops a step):
 *     reduce-scatter, all-gather: (n-1) (h alpha + B / (n bw)), h = 2 (n > 2)
 *   multi-axis: reduce-scatter along each axis on the data left, all-gather back
 *   direct all-to-all on a ring of n (shortest way, halves on ties):
 *     max link load B/n * sum of distances crossing one link: B n / 8 (n even),
 *     B (n^2-1) / (8n) (n odd); on a line B/n * floor(n/2) ceil(n/2)
 *   permute by s: s B / bw + s alpha on a ring; B / bw + (n-1) alpha on a line
 *
 * Chips are built by hand here so that the tests do not depend on the preset
 * files.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/net.h"

static Chip mkchip(int ndims, int wrap_min, double bw, double lat, double dcn_bw,
                   double dcn_lat)
{
	Chip c;
	memset(&c, 0, sizeof c);
	snprintf(c.name, sizeof c.name, "test%dd", ndims);
	c.ici_ndims = ndims;
	c.ici_links = 2 * ndims;
	c.ici_link_bw = bw;
	c.ici_hop_latency = lat;
	c.ici_wrap_multiple = 1;
	c.ici_wrap_min = wrap_min; /* 0: never wraps */
	c.max_slice[0] = c.max_slice[1] = 64;
	c.max_slice[2] = ndims == 3 ? 64 : 1;
	c.chips_per_host = 4;
	c.dcn_bw_per_chip = dcn_bw;
	c.dcn_latency = dcn_lat;
	c.twisted_ok = 1;
	return c;
}

#define BW 50e9
#define LAT 1e-6
#define DBW 5e9
#define DLAT 20e-6

static void pod_or_die(Pod *p, const Chip *c, int x, int y, int z, int nslices, int twisted)
{
	int shape[3] = {x, y, z};
	Diag d;
	diag_init(&d);
	int rc = pod_init(p, c, shape, c->ici_ndims, nslices, twisted, &d);
	ck_assert_msg(rc == 0, "pod_init: %s", d.msg);
}

#define CLOSE(got, want)                                                              \
	ck_assert_msg(fabs((got) - (want)) <= 1e-9 * fabs(want) + 1e-15,                  \
	              "%s = %.12g, want %s = %.12g", #got, (double)(got), #want, (double)(want))

static double coll(const Pod *p, CollKind k, unsigned axes, int dcn, double B)
{
	CollResult r;
	Diag d;
	diag_init(&d);
	int rc = pod_collective(p, k, axes, dcn, B, &r, &d);
	ck_assert_msg(rc == 0, "pod_collective: %s", d.msg);
	return r.time_s;
}

static double coll_algo(const Pod *p, CollKind k, unsigned axes, int dcn, double B,
                        CollAlgo a)
{
	CollSpec s = {.kind = k, .algo = a, .bytes = B, .shift = 1};
	CollResult r;
	Diag d;
	diag_init(&d);
	ck_assert_msg(pod_full_group(p, axes, dcn, &s.group, &d) == 0, "%s", d.msg);
	ck_assert_msg(pod_group_collective(p, &s, &r, &d) == 0, "%s", d.msg);
	return r.time_s;
}

static double group_coll(const Pod *p, CollKind k, NetGroup g, double B, int shift)
{
	CollSpec s = {.kind = k, .group = g, .bytes = B, .shift = shift};
	CollResult r;
	Diag d;
	diag_init(&d);
	int rc = pod_group_collective(p, &s, &r, &d);
	ck_assert_msg(rc == 0, "pod_group_collective: %s", d.msg);
	return r.time_s;
}

/* ---- Topology ------------------------------------------------------------*/

START_TEST(coords_neighbours_hops)
{
	Chip c = mkchip(3, 4, BW, LAT, DBW, DLAT); /* axes of length >= 4 wrap */
	Pod p;
	pod_or_die(&p, &c, 4, 3, 5, 1, 0);
	ck_assert_int_eq(p.nchips, 60);
	ck_assert(p.wrap[0] && !p.wrap[1] && p.wrap[2]);
	for (int i = 0; i < p.nchips; i++) {
		int xyz[3];
		pod_coords(&p, i, xyz);
		ck_assert_int_eq(pod_chip_id(&p, xyz), i);
	}
	int a[3] = {3, 2, 4}, b[3] = {0, 2, 4}, e[3] = {3, 2, 0};
	int ia = pod_chip_id(&p, a);
	ck_assert_int_eq(pod_neighbor(&p, ia, 0, +1), pod_chip_id(&p, b)); /* x wraps */
	ck_assert_int_eq(pod_neighbor(&p, ia, 1, +1), -1);                 /* y: end of line */
	ck_assert_int_eq(pod_neighbor(&p, ia, 2, +1), pod_chip_id(&p, e)); /* z wraps */
	int f[3] = {3, 1, 4};
	ck_assert_int_eq(pod_neighbor(&p, ia, 1, -1), pod_chip_id(&p, f));
	/* hops: shortest way round the tori, straight along the line */
	for (int i = 0; i < p.nchips; i++)
		for (int j = 0; j < p.nchips; j += 7) {
			int u[3], v[3];
			pod_coords(&p, i, u);
			pod_coords(&p, j, v);
			int dx = abs(u[0] - v[0]), dy = abs(u[1] - v[1]), dz = abs(u[2] - v[2]);
			int want = (dx < 4 - dx ? dx : 4 - dx) + dy + (dz < 5 - dz ? dz : 5 - dz);
			ck_assert_int_eq(pod_hops(&p, i, j), want);
		}
	ck_assert_int_eq(pod_diameter(&p), 2 + 2 + 2);
	pod_free(&p);
}
END_TEST

START_TEST(twisted_torus)
{
	Chip c = mkchip(3, 4, BW, LAT, DBW, DLAT);
	Pod t, u;
	pod_or_die(&t, &c, 4, 4, 8, 1, 1);
	pod_or_die(&u, &c, 4, 4, 8, 1, 0);
	/* leaving x through its wraparound moves half-way round z */
	int a[3] = {3, 1, 2}, b[3] = {0, 1, 6};
	ck_assert_int_eq(pod_neighbor(&t, pod_chip_id(&t, a), 0, +1), pod_chip_id(&t, b));
	int o[3] = {0, 0, 0}, q[3] = {2, 0, 4};
	/* (0,0,0) -> (2,0,4): 2 + 4 hops on the plain torus, 2 through the twist */
	ck_assert_int_eq(pod_hops(&u, pod_chip_id(&u, o), pod_chip_id(&u, q)), 6);
	ck_assert_int_eq(pod_hops(&t, pod_chip_id(&t, o), pod_chip_id(&t, q)), 2);
	ck_assert_int_eq(pod_diameter(&u), 2 + 2 + 4);
	ck_assert_int_lt(pod_diameter(&t), pod_diameter(&u));
	pod_free(&t);
	pod_free(&u);
}
END_TEST

START_TEST(slice_errors)
{
	Chip c = mkchip(2, 16, BW, LAT, DBW, DLAT);
	c.max_slice[0] = c.max_slice[1] = 16;
	snprintf(c.name, sizeof c.name, "chipq");
	Pod p;
	Diag d;
	int s1[3] = {32, 4, 1};
	diag_init(&d);
	ck_assert_int_eq(pod_init(&p, &c, s1, 2, 1, 0, &d), -1);
	ck_assert_msg(strstr(d.msg, "32x4") && strstr(d.msg, "16x16") && strstr(d.msg, "chipq"),
	              "message: %s", d.msg);
	pod_free(&p);
	int s2[3] = {4, 4, 4};
	diag_init(&d);
	ck_assert_int_eq(pod_init(&p, &c, s2, 3, 1, 0, &d), -1);
	ck_assert_msg(strstr(d.msg, "4x4x4") && strstr(d.msg, "2D"), "message: %s", d.msg);
	pod_free(&p);
	c.twisted_ok = 0;
	int s3[3] = {8, 16, 1};
	diag_init(&d);
	ck_assert_int_eq(pod_init(&p, &c, s3, 2, 1, 1, &d), -1);
	ck_assert_msg(strstr(d.msg, "twisted"), "message: %s", d.msg);
	pod_free(&p);
	/* axes in any order are fine; wraparound only where the chip says */
	int s4[3] = {16, 8, 1};
	diag_init(&d);
	ck_assert_int_eq(pod_init(&p, &c, s4, 2, 1, 0, &d), 0);
	ck_assert(p.wrap[0] && !p.wrap[1]);
	pod_free(&p);
}
END_TEST

START_TEST(parse_shapes)
{
	int s[3];
	ck_assert_int_eq(pod_parse_shape("16x16", s), 2);
	ck_assert(s[0] == 16 && s[1] == 16 && s[2] == 1);
	ck_assert_int_eq(pod_parse_shape("4x4x8", s), 3);
	ck_assert(s[0] == 4 && s[1] == 4 && s[2] == 8);
	const char *bad[] = {"", "4x", "x4", "0x4", "4x4x4x4", "4*4", "-4x4", "4x4 "};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(pod_parse_shape(bad[i], s) < 0, "'%s' parsed", bad[i]);
}
END_TEST

/* ---- Closed forms on one axis -------------------------------------------*/

static const int sizes[] = {2, 3, 4, 5, 8, 12, 16};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

START_TEST(ring_closed_forms)
{
	int n = sizes[_i];
	if (n < 3)
		return; /* a torus ring needs wraparound: axes of 3 and more here */
	Chip c = mkchip(2, 3, BW, LAT, DBW, DLAT);
	Pod p;
	pod_or_die(&p, &c, n, 1, 1, 1, 0);
	ck_assert(p.wrap[0]);
	const double Bs[] = {0, 4096, 1e6, 3.5e9};
	for (int i = 0; i < 4; i++) {
		double B = Bs[i];
		double rs = (n - 1) * (LAT + B / (2.0 * n * BW));
		CLOSE(coll(&p, COLL_REDUCE_SCATTER, 1, 0, B), rs);
		CLOSE(coll(&p, COLL_ALL_GATHER, 1, 0, B), rs);
		CLOSE(coll(&p, COLL_ALL_REDUCE, 1, 0, B), 2 * rs);
		double load = n % 2 == 0 ? B * n / 8.0 : B * (n * n - 1.0) / (8.0 * n);
		CLOSE(coll(&p, COLL_ALL_TO_ALL, 1, 0, B), load / BW + (n / 2) * LAT);
		CLOSE(coll(&p, COLL_PERMUTE, 1, 0, B), B / BW + LAT);
		NetGroup g = {1, {{0, n, 1}}};
		int s = n / 2;
		CLOSE(group_coll(&p, COLL_PERMUTE, g, B, s), s * B / BW + s * LAT);
	}
	pod_free(&p);
}
END_TEST

START_TEST(line_closed_forms)
{
	int n = sizes[_i];
	Chip c = mkchip(2, 0, BW, LAT, DBW, DLAT); /* never wraps */
	Pod p;
	pod_or_die(&p, &c, n, 2, 1, 1, 0);
	ck_assert(!p.wrap[0]);
	const double Bs[] = {0, 4096, 1e6, 3.5e9};
	int h = n > 2 ? 2 : 1;
	for (int i = 0; i < 4; i++) {
		double B = Bs[i];
		double rs = (n - 1) * (h * LAT + B / ((double)n * BW));
		CLOSE(coll(&p, COLL_REDUCE_SCATTER, 1, 0, B), rs);
		CLOSE(coll(&p, COLL_ALL_GATHER, 1, 0, B), rs);
		CLOSE(coll(&p, COLL_ALL_REDUCE, 1, 0, B), 2 * rs);
		double load = B / n * (n / 2) * ((n + 1) / 2);
		CLOSE(coll(&p, COLL_ALL_TO_ALL, 1, 0, B), load / BW + (n - 1) * LAT);
		CLOSE(coll(&p, COLL_PERMUTE, 1, 0, B), B / BW + (n - 1) * LAT);
	}
	pod_free(&p);
}
END_TEST

START_TEST(mesh_vs_torus_axis)
{
	/* The same axis with and without wraparound: the line's ring moves the
	 * whole chunk each way, the torus half: twice the bandwidth term. */
	for (int i = 0; i < NSIZES; i++) {
		int n = sizes[i];
		if (n < 3)
			continue;
		Chip ct = mkchip(2, 3, BW, 0, DBW, DLAT), cl = mkchip(2, 0, BW, 0, DBW, DLAT);
		Pod t, l;
		pod_or_die(&t, &ct, n, 4, 1, 1, 0);
		pod_or_die(&l, &cl, n, 4, 1, 1, 0);
		double B = 1 << 28;
		CLOSE(coll(&l, COLL_ALL_REDUCE, 1, 0, B), 2 * coll(&t, COLL_ALL_REDUCE, 1, 0, B));
		CLOSE(coll(&l, COLL_ALL_GATHER, 1, 0, B), 2 * coll(&t, COLL_ALL_GATHER, 1, 0, B));
		pod_free(&t);
		pod_free(&l);
	}
	/* with latency, the line is still slower */
	Chip ct = mkchip(2, 3, BW, LAT, DBW, DLAT), cl = mkchip(2, 0, BW, LAT, DBW, DLAT);
	Pod t, l;
	pod_or_die(&t, &ct, 8, 8, 1, 1, 0);
	pod_or_die(&l, &cl, 8, 8, 1, 1, 0);
	ck_assert(coll(&l, COLL_ALL_REDUCE, 3, 0, 1e3) > coll(&t, COLL_ALL_REDUCE, 3, 0, 1e3));
	ck_assert(coll(&l, COLL_ALL_TO_ALL, 3, 0, 1e8) > coll(&t, COLL_ALL_TO_ALL, 3, 0, 1e8));
	pod_free(&t);
	pod_free(&l);
}
END_TEST

/* ---- Several axes ----------------------------------------------------------*/

START_TEST(torus_2d_3d_closed_forms)
{
	Chip c2 = mkchip(2, 3, BW, LAT, DBW, DLAT);
	Chip c3 = mkchip(3, 3, BW, LAT, DBW, DLAT);
	const int shapes[][3] = {{4, 4, 1}, {8, 4, 1}, {16, 16, 1}, {4, 4, 4}, {8, 4, 6}, {6, 6, 6}};
	for (int s = 0; s < 6; s++) {
		int n1 = shapes[s][0], n2 = shapes[s][1], n3 = shapes[s][2];
		Pod p;
		pod_or_die(&p, n3 > 1 ? &c3 : &c2, n1, n2, n3, 1, 0);
		double B = 1.25e9;
		unsigned axes = n3 > 1 ? 7 : 3;
		/* sequential: reduce-scatter x on B, y on B/n1, z on B/(n1 n2) */
		double rs = (n1 - 1) * (LAT + B / (2.0 * n1 * BW)) +
		            (n2 - 1) * (LAT + B / n1 / (2.0 * n2 * BW));
		if (n3 > 1)
			rs += (n3 - 1) * (LAT + B / n1 / n2 / (2.0 * n3 * BW));
		CollAlgo sq = COLL_ALGO_SEQUENTIAL;
		CLOSE(coll_algo(&p, COLL_REDUCE_SCATTER, axes, 0, B, sq), rs);
		CLOSE(coll_algo(&p, COLL_ALL_GATHER, axes, 0, B, sq), rs);
		CLOSE(coll_algo(&p, COLL_ALL_REDUCE, axes, 0, B, sq), 2 * rs);
		/* split on equal axes: k parts of B/k, part j starting on axis j;
		 * at every stage the parts are on different axes, so each stage
		 * costs one axis's ring on B/k shrunk by the stages before */
		int k = n3 > 1 ? 3 : 2, n = n1;
		double split = -1, auto_t = coll(&p, COLL_ALL_REDUCE, axes, 0, B);
		if (n1 == n2 && (n3 == 1 || n3 == n1)) {
			split = 0;
			double shard = B / k;
			for (int st = 0; st < k; st++) {
				split += (n - 1) * (LAT + shard / (2.0 * n * BW));
				shard /= n;
			}
			CLOSE(coll_algo(&p, COLL_REDUCE_SCATTER, axes, 0, B, COLL_ALGO_SPLIT), split);
			CLOSE(coll_algo(&p, COLL_ALL_GATHER, axes, 0, B, COLL_ALGO_SPLIT), split);
			CLOSE(coll_algo(&p, COLL_ALL_REDUCE, axes, 0, B, COLL_ALGO_SPLIT), 2 * split);
			CLOSE(auto_t, 2 * split); /* faster than sequential, so chosen */
		}
		/* automatic: the faster of the two */
		double spl = coll_algo(&p, COLL_ALL_REDUCE, axes, 0, B, COLL_ALGO_SPLIT);
		CLOSE(auto_t, spl < 2 * rs ? spl : 2 * rs);
		pod_free(&p);
	}
	/* torus x (faster) first, then the line y */
	Chip cm = mkchip(2, 8, BW, LAT, DBW, DLAT);
	Pod p;
	pod_or_die(&p, &cm, 4, 8, 1, 1, 0); /* y: 8 wraps, x: 4 does not */
	double B = 1e9;
	double rs = (8 - 1) * (LAT + B / (2.0 * 8 * BW)) + (4 - 1) * (2 * LAT + B / 8 / (4.0 * BW));
	CLOSE(coll_algo(&p, COLL_ALL_REDUCE, 3, 0, B, COLL_ALGO_SEQUENTIAL), 2 * rs);
	pod_free(&p);
}
END_TEST

START_TEST(sub_rings)
{
	/* 16-chip torus axis: 4 consecutive chips form a line (folded ring); 4
	 * chips 4 apart close through the wraparound, but each step is 4 hops and
	 * the 4 interleaved rings share every link. */
	Chip c = mkchip(2, 16, BW, LAT, DBW, DLAT);
	Pod p;
	pod_or_die(&p, &c, 16, 2, 1, 1, 0);
	double B = 1e8;
	NetGroup cons = {1, {{0, 4, 1}}}, strd = {1, {{0, 4, 4}}};
	CLOSE(group_coll(&p, COLL_ALL_REDUCE, cons, B, 0), 2 * 3 * (2 * LAT + B / (4 * BW)));
	CLOSE(group_coll(&p, COLL_ALL_REDUCE, strd, B, 0), 2 * 3 * (4 * LAT + 4 * B / (8 * BW)));
	/* together they are the whole axis */
	NetGroup both = {2, {{0, 4, 1}, {0, 4, 4}}};
	CLOSE(group_coll(&p, COLL_ALL_REDUCE, both, B, 0), coll(&p, COLL_ALL_REDUCE, 1, 0, B));
	pod_free(&p);
}
END_TEST

/* ---- DCN -------------------------------------------------------------------*/

START_TEST(multislice_bounded_by_dcn)
{
	Chip c = mkchip(2, 4, BW, LAT, DBW, DLAT);
	for (int N = 2; N <= 8; N *= 2) {
		Pod p;
		pod_or_die(&p, &c, 4, 4, 1, N, 0);
		double B = 1 << 30;
		int n = 16;
		CollResult r;
		Diag d;
		diag_init(&d);
		CollSpec sp = {.kind = COLL_ALL_REDUCE, .algo = COLL_ALGO_SEQUENTIAL, .bytes = B};
		ck_assert_int_eq(pod_full_group(&p, 3, 1, &sp.group, &d), 0);
		ck_assert_int_eq(pod_group_collective(&p, &sp, &r, &d), 0);
		/* hierarchical: reduce-scatter in the slice, all-reduce the shard over
		 * DCN (a ring of N slices), all-gather in the slice */
		double ici = 2 * ((4 - 1) * (LAT + B / (8.0 * BW)) + (4 - 1) * (LAT + B / 4 / (8.0 * BW)));
		double dcn = 2 * (N - 1) * (DLAT + B / n / N / DBW);
		CLOSE(r.time_s, ici + dcn);
		CLOSE(r.dcn_time_s, dcn);
		/* bounded by DCN: no faster than moving 2(N-1)/N of the shard over it */
		ck_assert(r.time_s >= 2.0 * (N - 1) / N * (B / n) / DBW);
		ck_assert(r.time_s > coll(&p, COLL_ALL_REDUCE, 3, 0, B));
		ck_assert_int_eq(r.group_size, n * N);
		CLOSE(r.busbw, B / r.time_s * 2.0 * (n * N - 1) / (n * N));
		/* the automatic choice (split in the slice) is no slower, and still
		 * bounded by DCN */
		double t_auto = coll(&p, COLL_ALL_REDUCE, 3, 1, B);
		ck_assert(t_auto <= r.time_s);
		ck_assert(t_auto >= 2.0 * (N - 1) / N * (B / n) / DBW);
		/* over DCN alone: a ring of N slices, every chip with its counterparts */
		CLOSE(coll(&p, COLL_ALL_REDUCE, 0, 1, B), 2 * (N - 1) * (DLAT + B / N / DBW));
		CLOSE(coll(&p, COLL_ALL_GATHER, 0, 1, B), (N - 1) * (DLAT + B / N / DBW));
		pod_free(&p);
	}
}
END_TEST

/* ---- Concurrency -----------------------------------------------------------*/

START_TEST(shared_links_slow_down)
{
	Chip c = mkchip(2, 4, BW, 0, DBW, DLAT);
	Pod p;
	pod_or_die(&p, &c, 8, 8, 1, 1, 0);
	double B = 1e9;
	CollSpec s[2];
	memset(s, 0, sizeof s);
	s[0].kind = s[1].kind = COLL_ALL_REDUCE;
	s[0].bytes = s[1].bytes = B;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(pod_full_group(&p, 1, 0, &s[0].group, &d), 0);
	ck_assert_int_eq(pod_full_group(&p, 1, 0, &s[1].group, &d), 0);
	CollResult r[2];
	double alone = coll(&p, COLL_ALL_REDUCE, 1, 0, B);
	ck_assert_int_eq(pod_collectives_concurrent(&p, 2, s, r, &d), 0);
	/* the same links: each gets half of every link, so twice the time */
	CLOSE(r[0].time_s, 2 * alone);
	CLOSE(r[1].time_s, 2 * alone);
	/* disjoint links (x and y): no slow-down */
	ck_assert_int_eq(pod_full_group(&p, 2, 0, &s[1].group, &d), 0);
	ck_assert_int_eq(pod_collectives_concurrent(&p, 2, s, r, &d), 0);
	CLOSE(r[0].time_s, alone);
	CLOSE(r[1].time_s, coll(&p, COLL_ALL_REDUCE, 2, 0, B));
	/* ICI and DCN use different links: no slow-down either */
	Pod q;
	pod_or_die(&q, &c, 8, 8, 1, 4, 0);
	ck_assert_int_eq(pod_full_group(&q, 3, 0, &s[0].group, &d), 0);
	ck_assert_int_eq(pod_full_group(&q, 0, 1, &s[1].group, &d), 0);
	ck_assert_int_eq(pod_collectives_concurrent(&q, 2, s, r, &d), 0);
	CLOSE(r[0].time_s, coll(&q, COLL_ALL_REDUCE, 3, 0, B));
	CLOSE(r[1].time_s, coll(&q, COLL_ALL_REDUCE, 0, 1, B));
	pod_free(&q);
	/* partly shared (x vs x,y): both longer than alone */
	ck_assert_int_eq(pod_full_group(&p, 1, 0, &s[0].group, &d), 0);
	ck_assert_int_eq(pod_full_group(&p, 3, 0, &s[1].group, &d), 0);
	s[1].kind = COLL_ALL_GATHER;
	ck_assert_int_eq(pod_collectives_concurrent(&p, 2, s, r, &d), 0);
	ck_assert(r[0].time_s > alone);
	ck_assert(r[1].time_s > coll(&p, COLL_ALL_GATHER, 3, 0, B));
	pod_free(&p);
}
END_TEST

/* ---- The fast path agrees with the full play --------------------------------
 * A collective alone is costed from one line per axis (when every line
 * carries the same pattern); with full_play set, every chip and link is
 * played. They must agree on every kind, sub-ring, twist and DCN group, for
 * both multi-axis algorithms. */
START_TEST(fast_path_equals_full_play)
{
	Chip c3 = mkchip(3, 4, BW, LAT, DBW, DLAT);
	struct {
		int x, y, z, slices, twisted;
	} pods[] = {{8, 4, 6, 2, 0}, {4, 4, 8, 1, 1}, {4, 8, 8, 3, 1}, {16, 2, 3, 1, 0}};
	NetGroup groups[] = {
		{1, {{0, 4, 1}}},
		{2, {{0, 2, 1}, {1, 4, 1}}},
		{3, {{0, 4, 1}, {1, 2, 2}, {2, 2, 1}}},
		{2, {{0, 2, 2}, {NET_DCN, 1, 1}}},
		{3, {{0, 4, 1}, {1, 4, 1}, {NET_DCN, 1, 1}}},
		{1, {{2, 3, 1}}},
	};
	for (size_t pi = 0; pi < sizeof pods / sizeof pods[0]; pi++) {
		Pod p;
		pod_or_die(&p, &c3, pods[pi].x, pods[pi].y, pods[pi].z, pods[pi].slices,
		           pods[pi].twisted);
		for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
			NetGroup g = groups[gi];
			int ok = 1;
			for (int j = 0; j < g.ndims; j++) {
				NetDim *dm = &g.dim[j];
				if (dm->axis == NET_DCN)
					dm->size = p.nslices;
				else if (p.shape[dm->axis] % (dm->size * dm->stride))
					ok = 0;
			}
			if (!ok)
				continue;
			for (int k = 0; k < 2 * COLL_KIND_COUNT; k++) {
				CollSpec s = {.kind = (CollKind)(k % COLL_KIND_COUNT),
				              .algo = k < COLL_KIND_COUNT ? COLL_ALGO_SEQUENTIAL
				                                          : COLL_ALGO_SPLIT,
				              .group = g,
				              .bytes = 3e8,
				              .shift = gi == 1 ? 3 : 1};
				CollResult fast, full;
				Diag d;
				diag_init(&d);
				ck_assert_msg(pod_group_collective(&p, &s, &fast, &d) == 0, "%s", d.msg);
				p.full_play = 1;
				ck_assert_msg(pod_collectives_concurrent(&p, 1, &s, &full, &d) == 0, "%s",
				              d.msg);
				p.full_play = 0;
				ck_assert_msg(fabs(fast.time_s - full.time_s) <= 1e-9 * full.time_s,
				              "pod %zu group %zu %s: fast %.12g, full %.12g", pi, gi,
				              coll_kind_name(s.kind), fast.time_s, full.time_s);
				ck_assert(fast.time_s > 0);
			}
		}
		pod_free(&p);
	}
}
END_TEST

/* ---- Memo table --------------------------------------------------------------*/

START_TEST(memo_returns_same)
{
	Chip c = mkchip(3, 4, BW, LAT, DBW, DLAT);
	Pod p;
	pod_or_die(&p, &c, 8, 8, 8, 2, 0);
	long h0, e0, h1, e1;
	pod_cache_stats(&p, &h0, &e0);
	double t1 = coll(&p, COLL_ALL_REDUCE, 7, 1, 1e9);
	double t2 = coll(&p, COLL_ALL_REDUCE, 7, 1, 1e9);
	double t3 = coll(&p, COLL_ALL_REDUCE, 7, 1, 2e9);
	pod_cache_stats(&p, &h1, &e1);
	ck_assert(t1 == t2);
	ck_assert(t3 > t1);
	ck_assert_int_eq(h1 - h0, 1);
	ck_assert_int_eq(e1 - e0, 2);
	/* a clone starts with an empty table of its own and agrees */
	Pod q;
	pod_clone(&q, &p);
	pod_cache_stats(&q, &h0, &e0);
	ck_assert_int_eq(e0, 0);
	ck_assert(coll(&q, COLL_ALL_REDUCE, 7, 1, 1e9) == t1);
	pod_cache_stats(&q, &h0, &e0);
	ck_assert_int_eq(h0, 0);
	ck_assert_int_eq(e0, 1);
	pod_free(&q);
	/* a second pass over the same calls is answered from the table */
	for (int pass = 0; pass < 2; pass++) {
		pod_cache_stats(&p, &h0, &e0);
		for (int i = 0; i < 3000; i++)
			coll(&p, (CollKind)(i % COLL_KIND_COUNT), 1 + i % 7, i % 2, 1000.0 * (i % 300));
		pod_cache_stats(&p, &h1, &e1);
		if (pass == 1) {
			ck_assert_int_eq(h1 - h0, 3000);
			ck_assert_int_eq(e1, e0);
		}
	}
	pod_free(&p);
}
END_TEST

/* ---- Device assignment -------------------------------------------------------*/

START_TEST(placement)
{
	Chip c = mkchip(2, 16, BW, LAT, DBW, DLAT);
	Pod p;
	pod_or_die(&p, &c, 16, 16, 1, 2, 0);
	Mesh m = {3, {{"data", 1, 2}, {"fsdp", 64, 1}, {"tensor", 4, 1}}};
	MeshPlacement mp;
	Diag d;
	diag_init(&d);
	ck_assert_msg(pod_place_mesh(&p, &m, NULL, &mp, &d) == 0, "%s", d.msg);
	ck_assert(mp.is_default);
	/* tensor: 4 consecutive chips of x */
	ck_assert_int_eq(mp.group[2].ndims, 1);
	ck_assert_int_eq(mp.group[2].dim[0].axis, 0);
	ck_assert_int_eq(mp.group[2].dim[0].size, 4);
	ck_assert_int_eq(mp.group[2].dim[0].stride, 1);
	/* fsdp: the whole of y and the rest of x; data over DCN */
	long chips = 1;
	for (int i = 0; i < mp.group[1].ndims; i++) {
		ck_assert(mp.group[1].dim[i].axis < 2);
		chips *= mp.group[1].dim[i].size;
	}
	ck_assert_int_eq(chips, 64);
	ck_assert_int_eq(mp.group[0].ndims, 1);
	ck_assert_int_eq(mp.group[0].dim[0].axis, NET_DCN);
	char buf[1024];
	mesh_placement_describe(&p, &mp, buf, sizeof buf);
	ck_assert_msg(strstr(buf, "tensor") && strstr(buf, "x(4 of 16") && strstr(buf, "dcn(2"),
	              "%s", buf);
	/* the tensor all-reduce is the 4-chip line's */
	CollResult r;
	ck_assert_int_eq(pod_mesh_collective(&p, &mp, COLL_ALL_REDUCE, 1u << 2, 1e8, &r, &d), 0);
	NetGroup g = {1, {{0, 4, 1}}};
	CLOSE(r.time_s, group_coll(&p, COLL_ALL_REDUCE, g, 1e8, 0));
	/* tensor and fsdp together: the whole slice */
	ck_assert_int_eq(pod_mesh_collective(&p, &mp, COLL_ALL_REDUCE, 6u, 1e8, &r, &d), 0);
	ck_assert_int_eq(r.group_size, 256);
	CLOSE(r.time_s, coll(&p, COLL_ALL_REDUCE, 3, 0, 1e8));

	/* explicit */
	diag_init(&d);
	ck_assert_msg(pod_place_mesh(&p, &m, "tensor=y,fsdp=xy", &mp, &d) == 0, "%s", d.msg);
	ck_assert(!mp.is_default);
	ck_assert_int_eq(mp.group[2].dim[0].axis, 1);
	ck_assert_int_eq(mp.group[1].ndims, 2);
	ck_assert_int_eq(mp.group[1].dim[0].axis, 0);
	ck_assert_int_eq(mp.group[1].dim[0].size, 16);
	ck_assert_int_eq(mp.group[1].dim[1].axis, 1);
	ck_assert_int_eq(mp.group[1].dim[1].stride, 4);

	/* errors name the axis */
	diag_init(&d);
	ck_assert_int_eq(pod_place_mesh(&p, &m, "fsdp=x", &mp, &d), -1);
	ck_assert_msg(strstr(d.msg, "fsdp") && strstr(d.msg, "--place"), "%s", d.msg);
	diag_init(&d);
	ck_assert_int_eq(pod_place_mesh(&p, &m, "tensor=q", &mp, &d), -1);
	ck_assert_msg(strstr(d.msg, "'q'"), "%s", d.msg);
	Mesh bad = {2, {{"data", 3, 2}, {"tensor", 64, 1}}};
	diag_init(&d);
	ck_assert_int_eq(pod_place_mesh(&p, &bad, NULL, &mp, &d), -1);
	ck_assert_msg(strstr(d.msg, "192") && strstr(d.msg, "256"), "%s", d.msg);
	Mesh baddcn = {2, {{"data", 1, 4}, {"tensor", 256, 1}}};
	diag_init(&d);
	ck_assert_int_eq(pod_place_mesh(&p, &baddcn, NULL, &mp, &d), -1);
	ck_assert_msg(strstr(d.msg, "--dcn"), "%s", d.msg);
	pod_free(&p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, coords_neighbours_hops);
	tcase_add_test(tc, twisted_torus);
	tcase_add_test(tc, slice_errors);
	tcase_add_test(tc, parse_shapes);
	tcase_add_loop_test(tc, ring_closed_forms, 0, NSIZES);
	tcase_add_loop_test(tc, line_closed_forms, 0, NSIZES);
	tcase_add_test(tc, mesh_vs_torus_axis);
	tcase_add_test(tc, torus_2d_3d_closed_forms);
	tcase_add_test(tc, sub_rings);
	tcase_add_test(tc, multislice_bounded_by_dcn);
	tcase_add_test(tc, shared_links_slow_down);
	tcase_add_test(tc, fast_path_equals_full_play);
	tcase_add_test(tc, memo_returns_same);
	tcase_add_test(tc, placement);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
