/*
 * A chip description: data, not code. Each preset is a JSON file in
 * sim/chips/ (schema in docs/hardware.md); every field is an object
 *   "key": {"value": V, "unit": "U", "source": "where it comes from",
 *           "note": "optional remark"}
 * and the loader converts V from unit U to the SI unit of the field below.
 * Unknown keys, missing keys, wrong types and units the field does not accept
 * are errors reported as "file:line:col: error: ..." at the offending key.
 *
 * Derived quantities (peak_flops) are computed by the loader, never typed in.
 * Calibrated quantities (efficiencies, fixed overheads) are fields of the
 * chip file, set once per chip and used for every workload.
 *
 * All sizes are per chip unless the field says "per TensorCore".
 */
#ifndef PODSIM_CHIP_H
#define PODSIM_CHIP_H

#include "ir/ir.h"

typedef struct Chip {
	char name[32];          /* preset name, e.g. "tpu-v4" */
	char description[128];  /* one line for listings */
	char path[512];         /* the file it was loaded from */

	/* ---- compute ---- */
	int tensorcores;        /* TensorCores per chip (megacore: treated as one) */
	int mxus_per_core;      /* MXUs per TensorCore */
	int mxu_rows, mxu_cols; /* systolic array size (PEs) */
	double clock_hz;        /* MXU clock, Hz; see clock_from_peak */
	int clock_from_peak;    /* 1: no clock is published; clock_hz was derived
	                         * as peak_flops_published / (2*tc*mxus*rows*cols) */
	double peak_flops;      /* derived: 2*tensorcores*mxus*rows*cols*clock, FLOP/s (bf16) */
	double peak_flops_published; /* the vendor's bf16 peak, FLOP/s, for comparison */
	int vpu_sublanes;       /* VPU vreg shape: sublanes x lanes (8 x 128) */
	int vpu_lanes;
	int vpu_alus;           /* ALUs per lane-sublane (elementwise ops per cycle each) */
	double vpu_transc_cost; /* VPU issue slots per transcendental element (calibrated) */
	double vpu_xlane_cycles;/* cycles per vreg of a cross-lane op (lane reduction,
	                         * transpose through the XLU) (calibrated) */

	/* ---- memory ---- */
	double hbm_bytes;       /* HBM capacity, bytes */
	double hbm_bw;          /* HBM bandwidth, bytes/s (total, both directions) */
	double hbm_efficiency;  /* achievable fraction of hbm_bw for streaming (calibrated) */
	double vmem_bytes;      /* VMEM capacity, bytes per TensorCore */
	double vmem_bw_ratio;   /* VMEM bandwidth / HBM bandwidth */
	double cmem_bytes;      /* CMEM capacity, bytes per chip (0: none) */
	int dma_engines;        /* concurrent DMA engines sharing hbm_bw */
	double dma_latency;     /* fixed start-up time of one DMA, s */
	double op_issue_cycles; /* fixed per-op issue overhead, cycles (calibrated) */

	/* ---- interconnect ---- */
	int ici_ndims;          /* 2 or 3: torus/mesh dimensions */
	int ici_links;          /* ICI links per chip */
	double ici_link_bw;     /* bytes/s per link per direction */
	double ici_hop_latency; /* s per hop */
	int ici_wrap_multiple;  /* an axis of length n wraps around iff */
	int ici_wrap_min;       /*   n >= ici_wrap_min and n % ici_wrap_multiple == 0;
	                         *   ici_wrap_min == 0 means never */
	int max_slice[3];       /* largest slice shape (unused dims are 1) */
	int chips_per_host;
	double dcn_bw_per_chip; /* bytes/s per chip per direction, between slices */
	double dcn_latency;     /* s */
	int twisted_ok;         /* 1 if twisted tori are possible */
} Chip;

/* Loads a preset by name ("tpu-v4") or a path to a .json file (anything
 * containing '/' or ending in ".json"). Returns 0, or -1 with d filled. */
int chip_load(const char *name_or_path, Chip *c, Diag *d);

/* The presets, sorted by name; names only (load each with chip_load).
 * Presets are the *.json files of the chips directory, found in order at:
 * $PODSIM_CHIPS_DIR, PODSIM_SRC_DIR/sim/chips (compile definition), then
 * sim/chips relative to the running executable's directory and its parents. */
int chip_preset_count(void);
const char *chip_preset_name(int i);
/* The directory presets are read from, or NULL if none was found. */
const char *chip_presets_dir(void);

/* 1 if an ICI axis of n chips has wraparound links on this chip. */
int chip_axis_wraps(const Chip *c, int n);

/* Seconds of n cycles of the chip clock. */
static inline double chip_seconds(const Chip *c, double cycles)
{
	return cycles / c->clock_hz;
}

/* Every field of the chip as a JSON object (jansson json_t *, new
 * reference): the file's fields in SI units, plus "peak_flops" (derived),
 * "clock_from_peak" and "path". */
struct json_t *chip_to_json(const Chip *c);

/* The schema, for documentation and listings: field i's JSON key, its SI
 * unit, and a one-line meaning. */
int chip_field_count(void);
const char *chip_field_key(int i);
const char *chip_field_unit(int i);
const char *chip_field_doc(int i);

#endif
