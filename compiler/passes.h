/*
 * The compiler's passes after sharding, in pipeline order (compiler/pipeline.c
 * calls them in a straight line; docs/compiler.md describes each):
 *
 *   shard    (shard.h) global graph -> per-chip graph with collectives
 *   fuse     marks kernels: which ops run together so their intermediates
 *            never leave on-chip memory
 *   tile     per-chip graph -> tiled level: unit, memory space and tiling of
 *            every instruction, for one chip description
 *   schedule order and overlap: collectives become async start/done pairs
 *            placed where XLA would overlap them
 *   memplan  liveness-based HBM plan per chip
 *
 * Each pass opens its file with what it requires and what it changes.
 */
#ifndef PODSIM_PASSES_H
#define PODSIM_PASSES_H

#include "ir/ir.h"
#include "sim/chip.h"

/* ---- fuse (compiler/fuse.c) ---------------------------------------------
 * Requires: a per-chip graph-level module (local shapes). Changes: sets
 * attribute fusion=[k] on the members of kernel k, k = 0, 1, ... in order of
 * first member (every instruction that computes belongs to exactly one
 * kernel; parameters, constants folded into their consumer, collectives and
 * reshapes that join no computing kernel stay outside). Elementwise
 * consumers of a single-use dot join its epilogue; connected elementwise,
 * broadcast, reduce, convert, select, softmax and layout ops join one VPU
 * kernel, a reduce ending it for all but consumers of the reduced value;
 * gathers, collectives and dots are boundaries. A kernel is contiguous in
 * program order and the kernels form a DAG (docs/compiler.md, "fuse"). */
void pass_fuse(Module *m);

/* ---- tile (compiler/tile.c) ---------------------------------------------
 * Requires: fuse has run. Changes: m->level becomes LEVEL_TILED; every
 * instruction gets its unit (MXU dot, VPU vector work, ICI or DCN
 * collectives, NONE for parameters, constants and views), its memory space
 * (VMEM for values internal to a kernel and for constants, HBM for values
 * that leave one, parameters and collective results; a reshape lives where
 * its operand does) and a tiling within the chip's VMEM budget (dots: loop
 * dims = result dims then contracting dims, as sim/cost.c reads them);
 * dims that are not multiples of the MXU size are padded. Returns 0, or -1
 * with d filled when the chip's VMEM cannot hold one MXU tile
 * (docs/compiler.md, "tile"). */
int pass_tile(Module *m, const Chip *c, Diag *d);

/* ---- schedule (compiler/schedule.c) -------------------------------------*/
typedef struct ScheduleOptions {
	int overlap;       /* 1: async collectives overlap compute (XLA's default);
	                    * 0: every collective waits for and blocks compute */
	int prefetch_layers; /* how many layers ahead weight all-gathers may start */
} ScheduleOptions;

/* Requires: a tiled module. Returns a new tiled module in which each
 * collective is a coll_start/coll_done pair placed for overlap (or back to
 * back when overlap is 0), in an order the engine issues per unit. */
Module *pass_schedule(const Module *m, const ScheduleOptions *o, Diag *d);
/* The same, taking m's arena over instead of copying what lives in it (its
 * attributes, names and strings): m must then only be freed. */
Module *pass_schedule_take(Module *m, const ScheduleOptions *o, Diag *d);

/* The value that stands for the end of the forward pass in a per-chip
 * program: the loss (output 0), seen through the collectives, async pairs
 * and views that shard or schedule put after it; m->ninsts if no output.
 * (compiler/schedule.c) */
ValueId program_forward_end(const Module *m);

/* ---- memplan (compiler/memplan.c) ---------------------------------------*/
typedef enum MemCategory {
	MEMCAT_WEIGHTS,     /* role="weight" parameters */
	MEMCAT_OPT_STATE,   /* role="opt_state" parameters */
	MEMCAT_INPUTS,      /* role="input" parameters */
	MEMCAT_GRADIENTS,   /* weight gradients until the update reads them */
	MEMCAT_ACTIVATIONS, /* forward values the backward pass reads */
	MEMCAT_TEMPS,       /* everything else: temporaries, gathered weights */
	MEMCAT_COUNT
} MemCategory;

const char *memcat_name(MemCategory c);

typedef struct MemItem {
	ValueId v;          /* the value */
	double bytes;
	MemCategory cat;
} MemItem;

typedef struct MemPlan {
	double peak_bytes;              /* HBM bytes live at the peak */
	ValueId peak_at;                /* the instruction at which it occurs */
	double at_peak[MEMCAT_COUNT];   /* split of peak_bytes by category */
	double total[MEMCAT_COUNT];     /* every buffer of each category, live or not,
	                                 * bytes (what one more layer adds to the
	                                 * categories that outlive a layer bounds how
	                                 * fast any point's live bytes grow with depth) */
	double phase_peak[2];           /* the peak over the forward pass's points (up
	                                 * to program_forward_end) and over the rest */
	double to_update[MEMCAT_COUNT]; /* of total, the buffers still live at the
	                                 * first optimizer instruction (a gradient
	                                 * the update reads, not one a collective
	                                 * reduces and frees) */
	double far_temps[2];            /* of total[MEMCAT_TEMPS], the buffers whose
	                                 * life spans more than two layer starts (a
	                                 * layer's first matmul in the forward pass
	                                 * and in the rest; more than one for a
	                                 * buffer of no layer), by where
	                                 * they are born: in the forward pass (T5's
	                                 * encoder output gathered for every decoder
	                                 * layer) or after it (remat minimal's
	                                 * residual stream, recomputed at the start
	                                 * of the backward) */
	double far_split[2];            /* the peak over the points after the
	                                 * forward pass where none ([0]) or some
	                                 * ([1]) of the far temporaries born there
	                                 * that belong to a layer (layer=[i]) are
	                                 * live (0 if no such point) */
	double far_untagged;            /* of far_temps[1], those of no layer */
	double hbm_bytes;               /* the chip's HBM capacity */
	int fits;                       /* peak_bytes <= hbm_bytes */
	int nlargest;
	MemItem largest[8];             /* largest items live at the peak */
} MemPlan;

/* Requires: a scheduled tiled module. Plans HBM: parameters live throughout
 * (updated weights and states reuse their buffers, as with donated
 * arguments), other values from definition to last use. Fills plan; returns
 * 0 (also when it does not fit: see plan->fits). memplan_error() writes the
 * "does not fit" diagnostic naming the largest items and the overflow. */
int pass_memplan(const Module *m, const Chip *c, MemPlan *plan, Diag *d);

/* The layer segments of a program, as the schedule pass cuts it
 * (compiler/schedule.c): seg[i] the segment of instruction i
 * (nondecreasing), segstart[s] the first instruction of segment s; returns
 * the number of segments. */
int schedule_segments(const Module *m, int *seg, int *segstart);
void memplan_error(const Module *m, const MemPlan *plan, Diag *d);

#endif
