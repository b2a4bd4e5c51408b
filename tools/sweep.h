/*
 * podsim sweep's core (tools/sweep.c): enumerate the layouts of a model on
 * a number of chips, evaluate each with the estimate engine, rank them.
 *
 * A layout is a mesh (ICI sizes of data, fsdp, tensor, expert, sequence;
 * DCN sizes of data, fsdp), a slice shape, a remat policy and a microbatch
 * count. Layouts that cannot work (an axis that does not divide what it
 * splits) are skipped with a reason; layouts whose weights and saved
 * activations alone exceed HBM (a lower bound of the memory plan's peak)
 * are pruned: reported as not fitting without being compiled. Evaluation reuses work without changing
 * any result: layouts that differ only in the slice shape share one
 * compile (the compiled program does not depend on the slice), and each
 * thread keeps one Pod per slice shape whose memoised collective costs are
 * shared by every mesh it evaluates. SweepSpec.brute turns both off (and
 * the pruning), for tests that check they change nothing.
 *
 * Deep models whose layers repeat are evaluated at a few small depths and,
 * when those grow linearly, extended to the full depth (see Sweep.depth);
 * the memory plan's per-phase peaks and per-category totals bound the
 * full-depth peak, so whether a layout fits is never guessed.
 * SweepSpec.exact evaluates every layout at full depth instead. Both are
 * tested against each other (testsuite/e2e/sweep_depth.sh).
 */
#ifndef PODSIM_SWEEP_H
#define PODSIM_SWEEP_H

#include "estimate.h"

enum { AX_DATA, AX_FSDP, AX_TENSOR, AX_EXPERT, AX_SEQUENCE, AX_COUNT };
extern const char *const sweep_axis_names[AX_COUNT];

#define SWEEP_MAX_SHAPES 16
#define SWEEP_MAX_LIST 32
#define SWEEP_MAX_DEPTHS 8 /* small depths tried before the full depth */

typedef struct SweepSpec {
	EstimateOptions base; /* model, chip, batch, seq, optimizer, dtype, overlap */
	int chips;            /* chips in all */
	int slices;           /* slices joined by DCN (>= 1) */
	int fix[AX_COUNT];    /* the axis's total size (ICI x DCN); 0: free */
	int max[AX_COUNT];    /* largest total size; 0: no limit */
	int sequence;         /* 1: the sequence axis takes part */
	int nremat;           /* remat policies to try (0: none, minimal, full) */
	RematPolicy remat[3];
	int nmicro;           /* microbatch counts to try (0: 1, 2, 4, ... within the batch) */
	int micro[SWEEP_MAX_LIST];
	int slice_ndims;      /* > 0: only this slice shape */
	int slice[3];
	int max_shapes;       /* slice shapes tried per sweep (the most cubic first) */
	int brute;            /* 1: no pruning, no reuse: estimate_run per layout */
	int exact;            /* 1: every layout at the model's full depth */
} SweepSpec;

void sweep_spec_default(SweepSpec *s);

typedef struct SweepLayout {
	int ici[AX_COUNT]; /* chips along each mesh axis inside a slice */
	int dcn[AX_COUNT]; /* slices along each mesh axis (data and fsdp only) */
	int shape;         /* index into Sweep.shapes */
	RematPolicy remat;
	int microbatches;
	int group;         /* layouts of one group differ only in the slice shape */
} SweepLayout;

typedef enum SweepStatus {
	SWEEP_PENDING, /* not evaluated yet */
	SWEEP_OK,      /* evaluated (fits or not) */
	SWEEP_PRUNED,  /* a lower bound of the peak exceeds HBM (weights, then
	                * the activations saved for the backward): does not fit,
	                * not compiled */
	SWEEP_FAILED,  /* the estimate engine rejected it (see error) */
} SweepStatus;

typedef struct SweepResult {
	SweepStatus status;
	double step_time_s;
	double tokens_per_s;
	double mfu, hfu;
	double mem_bytes;  /* per chip at the peak (SWEEP_PRUNED: the lower bound), bytes */
	double hbm_bytes;  /* the chip's HBM, bytes */
	int fits;
	int extrapolated;  /* from the small depths (see Sweep.depth): 0 no; 1 yes,
	                    * mem_bytes exact; 2 yes, mem_bytes a lower bound (it
	                    * does not fit); 3 yes, mem_bytes an upper bound (it
	                    * fits) */
	char error[200];   /* SWEEP_FAILED: the message */
} SweepResult;

typedef struct SweepCount {
	char reason[96];
	long n; /* layouts */
} SweepCount;

typedef struct Sweep {
	SweepSpec spec;
	int nshapes;
	int shapes[SWEEP_MAX_SHAPES][3];
	int shape_ndims;
	int nlayouts;
	SweepLayout *layouts; /* (nlayouts) enumeration order; groups contiguous */
	SweepResult *results; /* (nlayouts) */
	int ngroups;
	int *group_start;     /* (ngroups + 1) first layout of each group */
	int nskips;
	SweepCount skips[32]; /* layouts skipped before evaluation, by reason */
	long skipped;         /* their total */
	/* Depth extrapolation: a model whose layers repeat with period p
	 * (p = moe_every for MoE, else 1) is evaluated at depth[k] = (2 + k) p
	 * layers per stack, k = 0, 1, 2. When step time and peak memory grow
	 * by the same amount from each depth to the next (to 1e-6 relative),
	 * step time and FLOPs are extended linearly to the full depth L:
	 * x = x2 + (L - 4p) / p (x2 - x1), and peak memory is bounded (see
	 * extrapolate() in sweep.c). When they do not, or the bounds cannot
	 * say whether it fits, the window slides one depth further (depths
	 * k - 2, k - 1, k for k = 3 .. ndepths - 1), and a layout no window
	 * decides is evaluated at full depth. The depths past the first three
	 * go up to L / 2, so that trying them costs less than the full depth.
	 * ndepths is 0 (always full depth) when the model does not qualify
	 * (L <= 5p, stacks of different depths) or spec.exact is set. */
	int ndepths;
	int depth[SWEEP_MAX_DEPTHS];
	long full_depth;      /* layouts evaluated at full depth after the check failed */
	double weight_bytes;  /* all weights, unsharded, bytes */
	/* weights by the set of sweep axes that may split them (bit per AX_) */
	double weight_bytes_by_axes[1 << AX_COUNT];
	/* rows of a resumed CSV whose layouts are not in this space (narrower
	 * --fix, --max, --remat or --microbatches), kept verbatim, each ending
	 * in a newline, so that rewriting the CSV loses none */
	char *kept_rows;
	size_t kept_len;
} Sweep;

/* Enumerates the layouts of s->spec (set spec first; base.c.model/chip
 * loaded). 0, or -1 with d (chips not divisible by slices, no slice shape). */
int sweep_enumerate(Sweep *s, Diag *d);
void sweep_free(Sweep *s);

/* Called after each layout is evaluated (serialised: one call at a time),
 * with the count done so far (resumed layouts included). */
typedef void (*SweepDoneFn)(void *ctx, const Sweep *s, int layout, int done);

/* Evaluates every layout still SWEEP_PENDING, with OpenMP across groups.
 * Results do not depend on the thread count. */
void sweep_evaluate(Sweep *s, SweepDoneFn fn, void *ctx);

/* The per-chip weight bytes lower bound of a layout. */
double sweep_weight_bound(const Sweep *s, const SweepLayout *l);
/* What the activations the forward pass saves for the backward (saved
 * bytes, global, one microbatch) add to it on each of chips chips, less
 * what CMEM could hold: a lower bound, as the weights, of the memory
 * plan's bytes live at the loss. */
double sweep_activation_bound(double saved, int chips, double cmem_bytes);

/* The layouts with a result, best first: fitting ones by step time, then
 * the evaluated ones that do not fit by step time, then pruned ones by
 * their memory bound; ties in enumeration order. Failed ones are left out.
 * Returns the count; order is malloc'd (free it). */
int sweep_rank(const Sweep *s, int **order);

/* "fsdp=256,tensor=12" (ICI) and "data=2" (DCN; "" if none). */
void sweep_mesh_spec(const SweepLayout *l, int dcn, char *buf, size_t n);
/* "12x16x16" */
void sweep_shape_string(const Sweep *s, int shape, char *buf, size_t n);
/* The EstimateOptions of a layout (s->spec.base with its mesh, slice,
 * remat, microbatches). The mesh's axis names are static strings. */
void sweep_layout_options(const Sweep *s, const SweepLayout *l, EstimateOptions *o);

/* CSV: the header line, one row, and reading rows back (--resume). */
void sweep_csv_header(FILE *f);
void sweep_csv_row(FILE *f, const Sweep *s, int layout);
/* Marks the layouts found in the CSV text as done with their results.
 * Returns the number of rows matched, or -1 with d (line named) on a
 * malformed file (a field out of its range included); rows of layouts not
 * in this space go to s->kept_rows. */
int sweep_csv_resume(Sweep *s, const char *text, const char *path, Diag *d);

/* Every ranked layout and the summary, as one JSON document (malloc'd). */
char *sweep_json(const Sweep *s, const int *order, int nranked);

#endif
