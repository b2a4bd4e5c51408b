/*
 * The event engine: runs a tiled-level per-chip program (ir.h, LEVEL_TILED)
 * on one chip model.
 *
 * Every unit (MXU, VPU, DMA, ICI, DCN) issues its ops in program order and
 * runs one at a time; units run in parallel with each other. An op starts
 * when its unit is free and its operands are ready. Asynchronous pairs:
 * dma_start occupies the DMA path (at most dma_engines transfers in flight,
 * sharing the HBM bandwidth) and dma_done(start) is ready when the transfer
 * completes; coll_start/coll_done likewise on ICI (or DCN when the
 * instruction's unit says so). The stream is issued in order: no op starts
 * before the op before it started, and a done (or a collective not split
 * into start/done, which is synchronous) holds every later op until the
 * transfer ends, as the core waits at it. Ops with no unit (parameter, constant,
 * reshape) take no time. Values in VMEM/CMEM are live from definition to
 * last use; what exceeds the capacity spills to HBM and its producer pays the
 * round trip.
 *
 * Collective times come from a pluggable function so that the network model
 * can replace the default (bytes / (ici_link_bw * ici_links) + hop latency
 * on ICI; bytes / dcn_bw_per_chip + dcn_latency on DCN).
 */
#ifndef PODSIM_ENGINE_H
#define PODSIM_ENGINE_H

#include "chip.h"
#include "ir/ir.h"

/* Seconds a collective (a collective op or a coll_start) takes. */
typedef double (*CollectiveTimeFn)(void *ctx, const Inst *in, const Module *m);

/* One op of a program as the engine sees it before the run (engine_costs). */
typedef struct EngineOp {
	unsigned char kind;  /* what it does in the timeline (engine.c) */
	unsigned char unit;  /* Unit it runs on */
	unsigned char sync;  /* later ops wait for its end */
	double dur;          /* s on its unit (kernels, spill included) */
	double bytes;        /* bytes a DMA moves */
	double spill_s;      /* s its spill's round trip adds */
} EngineOp;

/* What a run of one program on one chip does not owe to the timeline: each
 * op's unit and duration but collectives', and the memory accounting (it
 * follows program order). Made once, it serves every run of the program on
 * that chip, whatever the network (podsim sweep runs one program on
 * several slice shapes). */
typedef struct EngineCosts {
	int n;
	EngineOp *op;                 /* (n) */
	double flops, hbm_bytes, spill_bytes;
	double mem_peak[MEM_COUNT], mem_capacity[MEM_COUNT];
} EngineCosts;

int engine_costs(const Module *m, const Chip *c, EngineCosts *k, Diag *d);
void engine_costs_free(EngineCosts *k);

typedef struct EngineOptions {
	CollectiveTimeFn collective_time; /* NULL: engine_default_collective_time */
	void *ctx;                        /* passed to collective_time; the default
	                                   * expects the Chip (NULL: the engine's chip) */
	const EngineCosts *costs;         /* engine_costs of the same program and chip,
	                                   * or NULL: made for this run */
} EngineOptions;

typedef struct SimOp {
	double start, end; /* s; equal for ops that take no time */
	Unit unit;         /* the unit it ran on (UNIT_NONE: none) */
} SimOp;

typedef struct SimResult {
	double seconds;               /* end of the last op */
	double cycles;                /* seconds x clock */
	double busy[UNIT_COUNT];      /* s each unit was busy */
	double flops;                 /* FLOPs of all ops */
	double hbm_bytes;             /* bytes moved by DMAs and HBM operands */
	double mem_peak[MEM_COUNT];   /* peak live bytes per memory space */
	double mem_capacity[MEM_COUNT];
	double spill_bytes;           /* bytes spilled from VMEM/CMEM to HBM */
	int nops;                     /* = module's ninsts */
	SimOp *ops;                   /* (nops) malloc'd; sim_result_free */
} SimResult;

/* The default collective time; ctx is a const Chip *. */
double engine_default_collective_time(void *ctx, const Inst *in, const Module *m);

/* Runs m (which must be LEVEL_TILED and verified). Returns 0, or -1 with d
 * filled (e.g. a dma_done whose operand is not a dma_start). opt may be NULL. */
int engine_run(const Module *m, const Chip *c, const EngineOptions *opt, SimResult *r,
               Diag *d);
void sim_result_free(SimResult *r);

#endif
