/*
 * bench_collective: the time to cost one all-reduce over a 16x16x16 slice
 * (the whole slice, all three axes), cold (memo table cleared before every
 * call: the link-level play of every phase, for both the sequential and the
 * split algorithm, as the default 'auto' does) and cached (the same call
 * again). Target: cold under 1 ms on one core. Also prints the same
 * all-reduce played over every chip and link (the engine concurrent
 * collectives use), and the cold cost of the other collectives and of a
 * 2-slice all-reduce, for reference.
 * Uses a hand-built v4-like chip so it does not depend on the presets.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sim/net.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static Chip v4_like(void)
{
	Chip c;
	memset(&c, 0, sizeof c);
	snprintf(c.name, sizeof c.name, "v4-like");
	c.ici_ndims = 3;
	c.ici_links = 6;
	c.ici_link_bw = 45e9;
	c.ici_hop_latency = 1e-6;
	c.ici_wrap_multiple = 4;
	c.ici_wrap_min = 4;
	c.max_slice[0] = c.max_slice[1] = c.max_slice[2] = 16;
	c.chips_per_host = 4;
	c.dcn_bw_per_chip = 6.25e9;
	c.dcn_latency = 10e-6;
	c.twisted_ok = 1;
	return c;
}

/* Seconds per call of kind over axes, cold or cached. */
static double per_call(Pod *p, CollKind k, unsigned axes, int dcn, int cold, int iters,
                       double *t_model)
{
	Diag d;
	diag_init(&d);
	CollResult r;
	if (!cold)
		pod_collective(p, k, axes, dcn, 1 << 30, &r, &d);
	double t0 = now();
	for (int i = 0; i < iters; i++) {
		if (cold)
			pod_cache_clear(p);
		if (pod_collective(p, k, axes, dcn, 1 << 30, &r, &d) < 0) {
			fprintf(stderr, "bench_collective: %s\n", d.msg);
			return -1;
		}
	}
	*t_model = r.time_s;
	return (now() - t0) / iters;
}

int main(void)
{
	Chip c = v4_like();
	int shape[3] = {16, 16, 16};
	Diag d;
	diag_init(&d);
	Pod p, p2;
	if (pod_init(&p, &c, shape, 3, 1, 0, &d) < 0 || pod_init(&p2, &c, shape, 3, 2, 0, &d) < 0) {
		fprintf(stderr, "bench_collective: %s\n", d.msg);
		return 1;
	}
	double tm;
	double cold = per_call(&p, COLL_ALL_REDUCE, 7, 0, 1, 200, &tm);
	double hot = per_call(&p, COLL_ALL_REDUCE, 7, 0, 0, 2000000, &tm);
	printf("all-reduce 1 GiB over x,y,z of a 16x16x16 slice (4096 chips): modelled %.3f ms\n",
	       tm * 1e3);
	printf("  cold (memo cleared): %9.1f us per call   target < 1000 us: %s\n", cold * 1e6,
	       cold < 1e-3 ? "met" : "MISSED");
	printf("  cached:              %9.3f us per call\n", hot * 1e6);
	/* The same all-reduce played over every chip and link at full size (the
	 * engine used for concurrent collectives; no symmetry shortcut). */
	CollSpec sp = {.kind = COLL_ALL_REDUCE, .bytes = 1 << 30};
	pod_full_group(&p, 7, 0, &sp.group, &d);
	CollResult full;
	p.full_play = 1;
	double t0 = now();
	for (int i = 0; i < 20; i++)
		pod_collectives_concurrent(&p, 1, &sp, &full, &d);
	p.full_play = 0;
	printf("  full play, every chip (no memo, no line shortcut): %9.1f us per call "
	       "(modelled %.3f ms)\n",
	       (now() - t0) / 20 * 1e6, full.time_s * 1e3);
	static const char *const names[] = {"all-gather", "reduce-scatter", "all-to-all",
	                                    "collective-permute"};
	for (int k = COLL_ALL_GATHER; k <= COLL_PERMUTE; k++) {
		double t = per_call(&p, (CollKind)k, 7, 0, 1, k == COLL_ALL_TO_ALL ? 5 : 50, &tm);
		printf("  cold %-19s %9.1f us per call (modelled %.3f ms)\n", names[k - 1], t * 1e6,
		       tm * 1e3);
	}
	double t = per_call(&p2, COLL_ALL_REDUCE, 7, 1, 1, 100, &tm);
	printf("  cold all-reduce over x,y,z,dcn of 2 slices: %9.1f us per call (modelled %.3f ms)\n",
	       t * 1e6, tm * 1e3);
	pod_free(&p);
	pod_free(&p2);
	return 0;
}
