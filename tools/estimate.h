/*
 * One estimate: compile a model for a pod, run the representative chip's
 * program through the chip model with the network model pricing its
 * collectives, and report (tools/estimate.c). podsim estimate prints one;
 * podsim sweep runs many.
 */
#ifndef PODSIM_ESTIMATE_H
#define PODSIM_ESTIMATE_H

#include "compiler/pipeline.h"
#include "sim/engine.h"
#include "sim/net.h"

typedef struct EstimateOptions {
	CompileOptions c;
	int slice[3];        /* chips along x, y, z */
	int slice_ndims;     /* 0: derive the slice from the mesh's ICI size */
	int nslices;         /* slices joined by DCN */
	int twisted;
	const char *place;   /* mesh placement ("tensor=x,fsdp=yz"), NULL: default */
	const char *trace;   /* Chrome trace path, NULL: none */
	int brief;           /* 1: no time split (breakdown_s, collective_s) and no
	                      * nofit text, for searches that read neither */
} EstimateOptions;

enum {
	BK_MXU,         /* the MXU computes */
	BK_VPU,         /* the VPU computes (MXU idle) */
	BK_HBM,         /* memory-bound vector work or DMA (MXU idle) */
	BK_EXPOSED_ICI, /* only ICI collectives in flight */
	BK_EXPOSED_DCN, /* only DCN collectives in flight */
	BK_IDLE,        /* nothing: issue overheads, latencies */
	BK_COUNT
};
extern const char *const breakdown_names[BK_COUNT];

typedef struct Estimate {
	double step_time_s;
	double tokens_per_step;
	double tokens_per_s;
	double model_flops_per_step;    /* PaLM appendix B: (6N + 12LHQT) x tokens */
	double hardware_flops_per_step; /* counted from the graph, with recompute */
	double mfu, hfu;
	double peak_flops;              /* per chip */
	int64_t params;
	int chips;
	double breakdown_s[BK_COUNT];
	double chip_flops;              /* FLOPs the representative chip executes */
	double collective_s;            /* sum of collective durations (overlapped or not) */
	MemPlan mem;
	char nofit[1024];               /* when !mem.fits: what does not fit, and why */
	int nsim_ops;
	char pod[256];                  /* the pod, described */
	char placement[1024];           /* where each mesh axis lies */
} Estimate;

void estimate_options_default(EstimateOptions *o);

/* Runs one estimate. Returns 0 (also when the program does not fit: see
 * e->mem.fits), or -1 with d filled. */
int estimate_run(const EstimateOptions *o, Estimate *e, Diag *d);

/* estimate_run in two parts, for reuse across layouts (podsim sweep): the
 * compiled program does not depend on the slice, and a pod's memoised
 * collective costs do not depend on the mesh.
 * estimate_pod_init: the slice (o->slice, or derived from the mesh) checked
 * against the mesh sizes, and pod_init; 0, or -1 with d (no pod to free).
 * estimate_simulate: places o's mesh on pod, runs c->program (compiled
 * from o->c) and fills e; 0, or -1 with d. pod is used by one thread.
 * costs: engine_costs of c->program on o's chip, made once for several
 * pods, or NULL (made for this run). */
int estimate_pod_init(const EstimateOptions *o, Pod *pod, Diag *d);
/* memo: the collective times already priced on pod with o's mesh placed
 * as o says, kept for later runs there (zeroed before the first; a table
 * serves one pod and placement), or NULL (kept for this run only). */
enum { NET_MEMO = 128 };
typedef struct NetMemo {
	int used;
	CollKind k;
	uint32_t axes;
	double bytes, time_s;
} NetMemo;
typedef struct NetMemoTable {
	NetMemo e[NET_MEMO];
} NetMemoTable;
int estimate_simulate(const EstimateOptions *o, const Compiled *c, const EngineCosts *costs,
                      NetMemoTable *memo, Pod *pod, Estimate *e, Diag *d);

/* Prints e as a human report, or as one JSON object. */
void estimate_print(FILE *out, const EstimateOptions *o, const Estimate *e);
char *estimate_json(const EstimateOptions *o, const Estimate *e); /* malloc'd */

#endif
