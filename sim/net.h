/*
 * The pod's network: topology, links and collectives (docs/network.md).
 *
 * A Pod is one chip type, one slice shape (2D or 3D, wraparound per axis as
 * the chip says, optionally a twisted torus) and a number of identical slices
 * joined by DCN. Chips of a slice are numbered x fastest: id = x + X*(y + Y*z).
 *
 * Collectives run over a NetGroup: a list of ring dimensions, each a set of
 * equally spaced positions along one physical ICI axis (or along the slices
 * for DCN). A full physical axis is {axis, size = length, stride = 1}; a mesh
 * axis laid on part of a physical axis is a sub-ring (size < length, stride
 * 1 for consecutive chips, or > 1 for interleaved ones).
 *
 * The cost of a collective is played over the links: the algorithm is a list
 * of phases (rings per dimension; the multi-axis decomposition, sequential
 * or split across the axes; direct all-to-all and permute), each a number
 * of identical rounds. A round puts bytes on links (one directed link per
 * chip, axis and direction; one DCN egress and one ingress per chip) and
 * lasts max over used links of (bytes on the link / link bandwidth) plus the
 * latency of the longest transfer. Concurrent collectives share every link
 * they both use fairly.
 *
 * Every slice runs the same (SPMD) pattern, so one slice is simulated and DCN
 * patterns are played from its chips. Results of pod_collective(),
 * pod_group_collective() and pod_mesh_collective() are memoised in the Pod
 * (at most 65536 entries): a Pod is for one thread (pod_clone for others).
 */
#ifndef PODSIM_NET_H
#define PODSIM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"
#include "sim/chip.h"

#define NET_DCN 3      /* NetDim.axis of the slices dimension */
#define NET_MAX_DIMS 8 /* ring dimensions in a group */

typedef struct NetCache NetCache;

typedef struct Pod {
	Chip chip;        /* a copy of the chip description */
	int ndims;        /* ICI dimensions of the slice: the chip's (2 or 3) */
	int shape[3];     /* chips along x, y, z (unused dims are 1) */
	int wrap[3];      /* 1 if the axis has wraparound links */
	int twisted;      /* 1: twisted torus (see twist_*) */
	int twist_long;   /* the axis shifted by half its length when a short
	                   * axis wraps around; -1 if not twisted */
	int twist_short[3]; /* 1 for the short (twisted) axes */
	int nslices;      /* slices joined by DCN (>= 1) */
	int nchips;       /* chips per slice */
	int nlinks;       /* directed links simulated: 6 ICI + 2 DCN per chip */
	int *nbr;         /* (nchips*6) chip*6 + 2*axis + (dir<0) -> the chip
	                   * that link leads to, or -1; owned */
	NetCache *cache;  /* memo table and scratch; owned, freed by pod_free */
	int full_play;    /* 1: always play every chip (no one-line shortcut);
	                   * for tests that check the shortcut */
} Pod;

/* Checks the slice against the chip (dims, max_slice, twist rules) and sets
 * up the pod. shape has ndims entries (ndims <= chip's ici_ndims; missing
 * dims are 1). Returns 0, or -1 with d naming the shape and the chip's
 * limits. The chip is copied. pod_free releases what pod_init allocated. */
int pod_init(Pod *p, const Chip *c, const int shape[3], int ndims, int nslices,
             int twisted, Diag *d);
void pod_free(Pod *p);
/* A copy of src with its own, empty memo table: one per thread. */
int pod_clone(Pod *dst, const Pod *src);

/* Parses "AxB" or "AxBxC" into shape; returns the number of dims or -1. */
int pod_parse_shape(const char *s, int shape[3]);

/* Topology. Chip ids are per slice (0 .. nchips-1). */
void pod_coords(const Pod *p, int chip, int xyz[3]);
int pod_chip_id(const Pod *p, const int xyz[3]);
/* The neighbour of chip along axis (0..2) in direction dir (+1/-1), or -1 if
 * there is no link (the end of an axis without wraparound, or a unit axis). */
int pod_neighbor(const Pod *p, int chip, int axis, int dir);
/* Hops of the route podsim uses between two chips of a slice (dimension
 * order, shortest way around each wrapped axis; twisted wraps considered). */
int pod_hops(const Pod *p, int a, int b);
/* Largest pod_hops over all pairs (diameter): the sum over axes of L/2
 * (torus) or L-1 (line); on a twisted torus, measured from chip 0 (every
 * chip sees the same). */
int pod_diameter(const Pod *p);
/* "tpu-v4 4x4x8 twisted, wraparound on x,y,z, 2 slices over DCN" */
void pod_describe(const Pod *p, char *buf, size_t n);

/* ---- Collectives ---------------------------------------------------------*/
typedef enum CollKind {
	COLL_ALL_REDUCE,
	COLL_ALL_GATHER,
	COLL_REDUCE_SCATTER,
	COLL_ALL_TO_ALL,
	COLL_PERMUTE,
	COLL_KIND_COUNT
} CollKind;

const char *coll_kind_name(CollKind k); /* "all-reduce", ... */
/* Accepts "all-reduce" and "all_reduce" spellings; -1 if unknown. */
int coll_kind_from_name(const char *s);

typedef struct NetDim {
	int axis;   /* 0..2: physical ICI axis x, y, z; NET_DCN: the slices */
	int size;   /* members of each ring along this dimension */
	int stride; /* distance between consecutive members, chips (or slices) */
} NetDim;

typedef struct NetGroup {
	int ndims;
	NetDim dim[NET_MAX_DIMS];
} NetGroup;

/* How a reduce-scatter, all-gather or all-reduce over several ICI
 * dimensions runs (docs/network.md): one dimension after another
 * (sequential), or the buffer split in one part per dimension, the parts
 * running at once with their dimension orders rotated so that every axis's
 * links work (split). AUTO (0) takes the faster. */
typedef enum CollAlgo { COLL_ALGO_AUTO, COLL_ALGO_SEQUENTIAL, COLL_ALGO_SPLIT } CollAlgo;

typedef struct CollSpec {
	CollKind kind;
	CollAlgo algo;  /* 0: AUTO */
	NetGroup group;
	double bytes; /* nccl-tests convention: all-reduce, all-to-all, permute:
	               * the buffer per chip; all-gather: the gathered output;
	               * reduce-scatter: the input, before scattering */
	int shift;    /* collective-permute: ranks to move along the group (0: 1) */
} CollSpec;

typedef struct CollResult {
	double time_s;     /* s, start to finish */
	double algbw;      /* bytes / time_s, bytes/s */
	double busbw;      /* algbw x the nccl-tests factor, bytes/s */
	int group_size;    /* chips in one group (product of dim sizes) */
	double ici_time_s; /* s of time_s in ICI phases */
	double dcn_time_s; /* s of time_s in phases that use DCN (an all-to-all
	                    * or permute over ICI and DCN counts here) */
	int nphases;       /* phases of the algorithm */
	char algo[256];    /* the algorithm, e.g. "reduce-scatter then all-gather
	                    * over x(16, torus); bidirectional ring" */
} CollResult;

/* The group of whole physical axes: phys_axes is a bit set over x=1, y=2,
 * z=4; over_dcn adds the slices. Returns 0 or -1 (d: an axis not in the
 * slice, or an empty group). */
int pod_full_group(const Pod *p, unsigned phys_axes, int over_dcn, NetGroup *g, Diag *d);

/* One collective over whole physical axes (and the slices if over_dcn). */
int pod_collective(const Pod *p, CollKind k, unsigned phys_axes, int over_dcn,
                   double bytes, CollResult *r, Diag *d);
/* One collective over any group (merged and checked against the pod). */
int pod_group_collective(const Pod *p, const CollSpec *s, CollResult *r, Diag *d);
/* n collectives started together, sharing the links they both use; out[i]
 * is collective i's result (its finish time). A spec with algo AUTO runs
 * the algorithm it would pick alone. Not memoised. */
int pod_collectives_concurrent(const Pod *p, int n, const CollSpec *specs,
                               CollResult *out, Diag *d);
/* Memo statistics: lookups answered from the table, and entries. */
void pod_cache_stats(const Pod *p, long *hits, long *entries);
void pod_cache_clear(const Pod *p);

/* "x(16, torus) y(8 of 16 stride 2, line) dcn(2)" */
void net_group_describe(const Pod *p, const NetGroup *g, char *buf, size_t n);

/* ---- Device assignment ---------------------------------------------------
 * Where each named mesh axis lies: its ICI size as a list of ring dimensions
 * on physical axes, its DCN size as a dimension over the slices. */
typedef struct MeshPlacement {
	int naxes;
	char name[IR_MAX_MESH_AXES][32];
	int ici[IR_MAX_MESH_AXES];
	int dcn[IR_MAX_MESH_AXES];
	NetGroup group[IR_MAX_MESH_AXES]; /* the axis's dims, innermost first */
	int is_default;                   /* 1: the default placement was used */
} MeshPlacement;

/* Places m on the pod. spec NULL or "": the default (tensor first on stride
 * 1 chips of the longest axis, then the other axes largest first, each on a
 * whole free axis if one fits, else on part of one, else across several;
 * DCN sizes in mesh order over the slices). spec "tensor=x,fsdp=yz": those
 * axes on those physical axes, in the order written, the rest by default.
 * Errors (d names the axis): ICI sizes whose product is not the slice's chip
 * count, DCN sizes not the slice count, a size that does not factor onto the
 * axes given. */
int pod_place_mesh(const Pod *p, const Mesh *m, const char *spec,
                   MeshPlacement *mp, Diag *d);
/* The group of a set of mesh axes (bit k = mesh axis k). */
int mesh_placement_group(const Pod *p, const MeshPlacement *mp, uint32_t mesh_axes,
                         NetGroup *g, Diag *d);
/* One line per mesh axis: "tensor  ici=4 -> x(4 of 16 stride 1, line)". */
void mesh_placement_describe(const Pod *p, const MeshPlacement *mp, char *buf, size_t n);
int pod_mesh_collective(const Pod *p, const MeshPlacement *mp, CollKind k,
                        uint32_t mesh_axes, double bytes, CollResult *r, Diag *d);

/* ---- Internals shared by sim/topology.c and sim/collective.c ------------*/
/* Merges dims of one axis that continue each other, drops unit dims, checks
 * sizes against the pod. 0 or -1 with d. */
int net_group_normalize(const Pod *p, NetGroup *g, Diag *d);
/* 1 if ring dimension dm closes through a wraparound link (a torus ring). */
int net_dim_is_ring(const Pod *p, const NetDim *dm);
/* Walks bytes along one axis from chip (signed steps; wrapped axes that are
 * not twisted take the shorter way, ties keep the sign), adding them to
 * load[] (indexed chip*6 + axis*2 + (dir<0)). Returns the hops; *end gets
 * the last chip. load may be NULL. */
int net_walk(const Pod *p, double *load, int chip, int axis, int steps, double bytes, int *end);
/* Routes src -> dst in the slice (dimension order; twisted wraps
 * considered), adding bytes to load; returns the hops. */
int net_route(const Pod *p, double *load, int src, int dst, double bytes);
/* The memo table and scratch of a pod (sim/collective.c). */
NetCache *net_cache_new(int nlinks);
void net_cache_free(NetCache *c);

#endif
