/*
 * podsim IR: one IR at two levels.
 *
 * A Module is one straight-line SSA function: a list of instructions, each
 * producing exactly one tensor value, referred to by its index in the list
 * (ValueId). Operands always refer to earlier instructions (use before def is
 * a verifier error). The graph level describes the whole (global) model
 * computation; shapes are logical, and a type may carry a sharding over the
 * module's mesh axes. The tiled level is a per-chip SPMD program: shapes are
 * the local shard a chip holds, and each instruction also says which unit runs
 * it, in which memory space its result lives, and how it is tiled.
 *
 * Memory: everything a Module points to lives in its arena and is freed by
 * ir_module_free(). No per-node free.
 *
 * Op attributes are a small list of key = value pairs, generic so that the
 * text format can print and parse every op the same way. The attributes each
 * op uses (and the verifier checks) are:
 *
 *   parameter      name="x" (STR), role="input"|"weight"|"opt_state"|... (STR,
 *                  optional), index=[i] (optional)
 *   constant       value=1.5 (FLOAT): the value of every element
 *   iota           dim=[d]: element = its index along dim d
 *   convert        (none): the result type says the dtype
 *   dot            lhs_contract=[..] rhs_contract=[..] (INTS, equal lengths),
 *                  lhs_batch=[..] rhs_batch=[..] (optional, equal lengths).
 *                  Result dims: batch dims, then lhs free dims in order, then
 *                  rhs free dims in order (XLA dot_general).
 *   reduce_sum/max dims=[..]: the reduced dims, removed from the result
 *   softmax        dim=[d]
 *   broadcast      dims=[..]: operand dim i becomes result dim dims[i]
 *                  (XLA broadcast_in_dim); the result type gives the shape
 *   reshape        (none): same element count
 *   transpose      perm=[..]: result dim i is operand dim perm[i]
 *   slice          start=[..] limit=[..]: half-open, stride 1
 *   concat         dim=[d]
 *   gather         gather(table, indices): table [V, D1..], integer indices
 *                  [B1..] -> [B1.., D1..] (rows of the table, embedding lookup)
 *   one_hot        one_hot(indices): integer [B..] -> [B.., depth], depth from
 *                  the result type
 *   select         select(pred, on_true, on_false)
 *   cmp_gt/cmp_eq  result dtype pred
 *   all_reduce     axes=[a,b] (NAMES of mesh axes), reduce="sum"|"max" (opt.)
 *   all_gather     axes=[..], dim=[d]: concatenates shards along dim d
 *   reduce_scatter axes=[..], dim=[d]: sums, then splits along dim d
 *   all_to_all     axes=[..], split_dim=[d], concat_dim=[d]
 *   collective_permute axes=[..], shift=[k]: value moves k steps along axes
 *   dma_start      to="vmem"|"hbm"|"cmem" (STR); dma_done(start)
 *   coll_start     op="all_reduce"|... (STR) plus that collective's
 *                  attributes; coll_done(start)
 */
#ifndef PODSIM_IR_H
#define PODSIM_IR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IR_MAX_RANK 8
#define IR_MAX_MESH_AXES 8

/* ---- Diagnostics --------------------------------------------------------
 * Library code never exits: it returns a status and fills a Diag. The tools
 * print d->msg, which is already "file:line:col: error: ...". */
typedef struct Diag {
	int nerrors;
	char msg[1024]; /* first error, formatted; later ones are counted */
} Diag;

void diag_init(Diag *d);
/* file may be NULL ("<input>"), line/col 0 means unknown (omitted). */
void diag_error(Diag *d, const char *file, int line, int col,
                const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* An internal invariant is broken: report file:line and abort. */
#define ir_die(...) ir_die_at(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void ir_die_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- Arena ---------------------------------------------------------------*/
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
	ArenaBlock *head;
	size_t used_bytes; /* bytes handed out, for statistics */
} Arena;

void arena_init(Arena *a);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n);          /* zeroed, 16-byte aligned */
void *arena_alloc_uninit(Arena *a, size_t n);   /* the same, not zeroed */
void *arena_grow(Arena *a, void *old, size_t oldn, size_t newn); /* copy */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
/* Moves src's memory into dst: what src handed out lives until dst is
 * freed; src is left empty. */
void arena_adopt(Arena *dst, Arena *src);

/* ---- Ops -----------------------------------------------------------------*/
enum {
	OPF_LEAF = 1 << 0,       /* no operands */
	OPF_ELEMWISE = 1 << 1,   /* operands and result share a shape */
	OPF_TRANSC = 1 << 2,     /* transcendental: costs more on the VPU */
	OPF_REDUCE = 1 << 3,
	OPF_LAYOUT = 1 << 4,     /* moves data, computes nothing */
	OPF_COLLECTIVE = 1 << 5, /* communicates over mesh axes */
	OPF_TILED = 1 << 6,      /* only legal at the tiled level */
	OPF_ASYNC_START = 1 << 7,
	OPF_ASYNC_DONE = 1 << 8,
};

typedef enum Unit {
	UNIT_NONE, /* no cost of its own (a reshape is a view) */
	UNIT_MXU,
	UNIT_VPU,
	UNIT_DMA,
	UNIT_ICI,
	UNIT_DCN,
	UNIT_COUNT
} Unit;

typedef enum Op {
#define OP(e, text, nargs, flags, vjp, unit) OP_##e,
#include "ops.def"
#undef OP
	OP_COUNT
} Op;

typedef struct OpInfo {
	const char *name; /* text form */
	int nargs;        /* -1: variadic */
	unsigned flags;
	Unit unit;        /* default unit */
} OpInfo;

extern const OpInfo ir_ops[OP_COUNT];
const char *op_name(Op op);
int op_from_name(const char *s, size_t n); /* -1 if unknown */
const char *unit_name(Unit u);
int unit_from_name(const char *s, size_t n);

/* ---- Types ---------------------------------------------------------------*/
typedef enum DType {
	DT_F32,
	DT_BF16,
	DT_F16,
	DT_S32,
	DT_S8,
	DT_PRED,
	DT_COUNT
} DType;

const char *dtype_name(DType t);
int dtype_from_name(const char *s, size_t n); /* -1 if unknown */
int dtype_bytes(DType t);
int dtype_is_float(DType t);

/* A tensor type. shard[i] is a bit set over mesh axes (bit k = the module's
 * mesh axis k) that dim i is split across, in mesh order; 0 = replicated.
 * rank 0 is a scalar. */
typedef struct Type {
	DType dtype;
	int rank;
	int64_t dims[IR_MAX_RANK];
	uint32_t shard[IR_MAX_RANK];
} Type;

int64_t type_numel(const Type *t);
int64_t type_bytes(const Type *t);
int type_equal(const Type *a, const Type *b);       /* incl. sharding */
int type_same_shape(const Type *a, const Type *b);  /* dtype and dims */

/* ---- Mesh ----------------------------------------------------------------
 * Named logical axes, MaxText style. An axis may span ICI (inside a slice),
 * DCN (between slices) or both: --ici data=4 --dcn data=2 is one axis "data"
 * of size 8 with ici=4, dcn=2. */
typedef struct MeshAxis {
	const char *name;
	int ici; /* >= 1 */
	int dcn; /* >= 1 */
} MeshAxis;

typedef struct Mesh {
	int naxes;
	MeshAxis axes[IR_MAX_MESH_AXES];
} Mesh;

int mesh_axis_index(const Mesh *m, const char *name, size_t n); /* -1 */
int64_t mesh_size(const Mesh *m);            /* product of ici*dcn */
int64_t mesh_axes_size(const Mesh *m, uint32_t axes); /* product over bits */

/* ---- Attributes ----------------------------------------------------------*/
typedef enum AttrKind { ATTR_INTS, ATTR_FLOAT, ATTR_STR, ATTR_NAMES } AttrKind;

typedef struct Attr {
	const char *key;
	AttrKind kind;
	int n;               /* ints: count; names: count */
	int64_t *ints;       /* ATTR_INTS */
	double f;            /* ATTR_FLOAT */
	const char *s;       /* ATTR_STR */
	const char **names;  /* ATTR_NAMES */
} Attr;

/* ---- Tiled-level annotations -------------------------------------------*/
typedef enum MemSpace { MEM_NONE, MEM_HBM, MEM_VMEM, MEM_CMEM, MEM_COUNT } MemSpace;
const char *mem_name(MemSpace m);
int mem_from_name(const char *s, size_t n);

typedef struct Tiling {
	int ntile;                  /* 0: not tiled */
	int64_t tile[IR_MAX_RANK];  /* tile extent per loop dim */
	int8_t order[IR_MAX_RANK];  /* loop order, outermost first */
} Tiling;

/* ---- Instructions and modules -------------------------------------------*/
typedef int32_t ValueId;

typedef struct Inst {
	Op op;
	Type type;          /* the result */
	int nargs;
	ValueId *args;
	int nattrs;
	Attr *attrs;
	const char *name;   /* value name without '%'; NULL: printed as %<index> */
	/* tiled level */
	Unit unit;
	MemSpace mem;
	Tiling tiling;
	/* where it was parsed from, 0 if built */
	int line, col;
} Inst;

typedef enum Level { LEVEL_GRAPH, LEVEL_TILED } Level;

typedef struct Module {
	Arena arena;
	const char *name;
	const char *file;   /* source file for diagnostics, or NULL */
	Level level;
	Mesh mesh;
	Inst *insts;        /* (ninsts) malloc'd, grown by ir_reserve */
	int ninsts, cap;
	ValueId *outputs;   /* (noutputs) the returned values */
	int noutputs, outcap;
	int ret_line, ret_col;
} Module;

Module *ir_module_new(const char *name, Level level);
void ir_module_free(Module *m);

/* ---- Builder -------------------------------------------------------------
 * Appends an instruction and returns its value. Types are inferred with the
 * op's shape rule (ir_infer_type); ops whose result cannot be inferred from
 * operands and attributes (parameter, constant, iota, convert, broadcast,
 * reshape, one_hot) take the result type. A builder misuse (bad shapes) is a
 * programming error and aborts with the rule's message. */
ValueId ir_param(Module *m, const char *name, Type t);
ValueId ir_const(Module *m, double value, Type t);
ValueId ir_unary(Module *m, Op op, ValueId a);
ValueId ir_binary(Module *m, Op op, ValueId a, ValueId b);
ValueId ir_select(Module *m, ValueId p, ValueId a, ValueId b);
ValueId ir_convert(Module *m, ValueId a, DType to);
ValueId ir_dot(Module *m, ValueId a, ValueId b, int nc, const int64_t *lc,
               const int64_t *rc, int nb, const int64_t *lb, const int64_t *rb);
ValueId ir_matmul(Module *m, ValueId a, ValueId b); /* contract last of a, first of b */
ValueId ir_reduce(Module *m, Op op, ValueId a, int ndims, const int64_t *dims);
ValueId ir_softmax(Module *m, ValueId a, int dim);
ValueId ir_broadcast(Module *m, ValueId a, Type t, int ndims, const int64_t *dims);
ValueId ir_reshape(Module *m, ValueId a, int rank, const int64_t *dims);
ValueId ir_transpose(Module *m, ValueId a, const int64_t *perm);
ValueId ir_slice(Module *m, ValueId a, const int64_t *start, const int64_t *limit);
ValueId ir_concat(Module *m, int n, const ValueId *xs, int dim);
ValueId ir_gather(Module *m, ValueId table, ValueId idx);
ValueId ir_one_hot(Module *m, ValueId idx, int64_t depth, DType dt);
ValueId ir_iota(Module *m, Type t, int dim);
ValueId ir_collective(Module *m, Op op, ValueId a, uint32_t axes, int dim);
void ir_output(Module *m, ValueId v);

/* Generic append: the caller fills everything; used by the parser. The
 * instruction is copied; args and attrs must already live in m's arena. */
ValueId ir_append(Module *m, const Inst *in);
/* Makes room for n instructions (m->insts may move). */
void ir_reserve(Module *m, int n);

/* Copies instruction v of src to the end of dst with operands args (values
 * of dst); attributes and the value name are deep-copied (the name is
 * dropped when dst == src). ir/core.c. */
ValueId ir_clone_inst(Module *dst, const Module *src, ValueId v, const ValueId *args);
/* A new empty module with src's name, file, level and mesh. */
Module *ir_module_empty_like(const Module *src);
/* A copy of m without instructions no output depends on (parameters are
 * always kept). */
Module *ir_dce(const Module *m);
/* The same in place: dead instructions are dropped and values renumbered
 * (each instruction's operand array must be its own, as the builder and
 * ir_clone_inst make them). */
void ir_dce_inplace(Module *m);
/* Common-subexpression elimination of a graph-level module in place
 * (ir/cse.c): an instruction the same as an earlier one (op, type,
 * operands, attributes, name) is replaced by it and dropped; parameters,
 * outputs, collectives and asynchronous ops are kept. Returns how many
 * were dropped. */
int ir_cse_inplace(Module *m);

/* Attribute helpers (attrs live in the module arena; ir_set_names shares,
 * rather than copies, a name that is one of m's mesh axis names, which
 * live as long as m). */
void ir_set_ints(Module *m, ValueId v, const char *key, int n, const int64_t *xs);
/* key=[xs[i]] on each instruction vs[i] (as ir_set_ints with one integer,
 * for many instructions at once: one allocation). */
void ir_set_int_many(Module *m, const char *key, int n, const ValueId *vs, const int64_t *xs);
void ir_set_float(Module *m, ValueId v, const char *key, double f);
void ir_set_str(Module *m, ValueId v, const char *key, const char *s);
void ir_set_names(Module *m, ValueId v, const char *key, int n, const char *const *names);
const Attr *ir_attr(const Inst *in, const char *key);   /* NULL if absent */
/* The ints of key, or NULL and *n = 0 if absent or not ints. */
const int64_t *ir_attr_ints(const Inst *in, const char *key, int *n);
/* A one-element ints attribute, or dflt. */
int64_t ir_attr_int(const Inst *in, const char *key, int64_t dflt);
double ir_attr_float(const Inst *in, const char *key, double dflt);
const char *ir_attr_str(const Inst *in, const char *key, const char *dflt);
/* key points into the IR's static table of common attribute keys (which
 * ir_set_* store instead of a copy), not into a module's arena. */
int ir_attr_key_is_static(const char *key);

/* The shape rule of the op table: given in's op, operands (types from m) and
 * attributes, compute the result type (sharding cleared). Returns 0 on
 * success, -1 with a message in err (no file position) otherwise. For the ops
 * that take the result type (see builder), checks in->type instead. */
int ir_infer_type(const Module *m, const Inst *in, Type *out, char *err, size_t errn);

/* ---- Text format (docs/ir.md) -------------------------------------------*/
/* Parses text (NUL-terminated) read from file (for diagnostics). Returns a new
 * module, or NULL with d filled ("file:line:col: error: ..."). */
Module *ir_parse(const char *text, size_t len, const char *file, Diag *d);
Module *ir_parse_file(const char *path, Diag *d);
void ir_print(const Module *m, FILE *out);
/* Prints into a malloc'd string (caller frees). */
char *ir_print_string(const Module *m);
void ir_print_type(const Module *m, const Type *t, FILE *out);

/* ---- Verifier ------------------------------------------------------------
 * Checks SSA order, operand counts, types against the shape rules, dtypes,
 * attributes, sharding axes that exist in the mesh, and level rules. Errors
 * use the instructions' parsed positions. Returns 0 if valid. */
int ir_verify(const Module *m, Diag *d);

/* ---- Reference interpreter ----------------------------------------------
 * Runs a graph-level module in f32 on one host thread: the semantics every
 * other path is checked against. Collectives act as on a single chip (mesh of
 * size 1: identity). */
typedef struct Tensor {
	Type type;
	float *data; /* (numel) row-major; integers and preds stored as floats */
} Tensor;

typedef struct InterpOptions {
	int bf16_round; /* round bf16-typed results (and dot inputs) to bf16 */
} InterpOptions;

/* inputs: one per parameter, in instruction order. values: if non-NULL,
 * receives all m->ninsts results (caller frees each data with free() and the
 * array); outputs: m->noutputs tensors, data malloc'd (caller frees). */
int ir_interp(const Module *m, const Tensor *inputs, int ninputs,
              const InterpOptions *opt, Tensor *outputs, Tensor **values,
              Diag *d);
float bf16_round(float x); /* round to nearest even, as the MXU input path */
/* Computes instruction v of m alone, as ir_interp would: args holds its
 * in->nargs operands (types as m says), out receives numel(result) floats
 * (bf16-rounded per opt). Attributes ir_interp ignores (partition=[...])
 * are ignored here too. A parameter is an error. Returns 0, or -1 with d
 * filled. For executors that keep their own buffers (compiler/spmd.c). */
int ir_interp_inst(const Module *m, ValueId v, const Tensor *args, float *out,
                   const InterpOptions *opt, Diag *d);

#endif
