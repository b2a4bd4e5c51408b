/*
 * Unit tests of the IR core: the arena, the name tables, types and meshes,
 * attributes, and the builder's shape rules (ir_infer_type) on hand-computed
 * shapes, including the rules' rejections; common-subexpression
 * elimination.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "ir/ir.h"

static Type ty(DType dt, int rank, const int64_t *dims)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.rank = rank;
	for (int i = 0; i < rank; i++)
		t.dims[i] = dims[i];
	return t;
}

#define TY(dt, ...) ty(dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                       (int64_t[]){__VA_ARGS__})

static void assert_dims(const Type *t, DType dt, int rank, const int64_t *dims)
{
	ck_assert_int_eq(t->dtype, dt);
	ck_assert_int_eq(t->rank, rank);
	for (int i = 0; i < rank; i++)
		ck_assert_msg(t->dims[i] == dims[i], "dim %d is %lld, expected %lld", i,
		              (long long)t->dims[i], (long long)dims[i]);
}

#define ASSERT_DIMS(t, dt, ...) assert_dims(t, dt, \
	(int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

/* ---- Arena ----------------------------------------------------------------*/

START_TEST(arena_alloc_zeroed_aligned)
{
	Arena a;
	arena_init(&a);
	size_t total = 0;
	for (size_t n = 1; n < 300; n += 7) {
		total += n;
		unsigned char *p = arena_alloc(&a, n);
		ck_assert_int_eq((uintptr_t)p % 16, 0);
		for (size_t i = 0; i < n; i++)
			ck_assert_int_eq(p[i], 0);
		memset(p, 0xab, n); /* the next allocation must not see this */
	}
	ck_assert_uint_ge(a.used_bytes, total);
	arena_free(&a);
	ck_assert_ptr_null(a.head);
	ck_assert_uint_eq(a.used_bytes, 0);
}
END_TEST

START_TEST(arena_big_blocks_keep_head_usable)
{
	Arena a;
	arena_init(&a);
	char *small1 = arena_alloc(&a, 32);
	char *big = arena_alloc(&a, 1 << 20); /* its own block */
	char *small2 = arena_alloc(&a, 32);
	memset(big, 1, 1 << 20);
	/* The small allocations come from the same (head) block, back to back. */
	ck_assert_ptr_eq(small2, small1 + 32);
	ck_assert_int_eq(small1[0], 0);
	ck_assert_int_eq(small2[31], 0);
	arena_free(&a);
}
END_TEST

START_TEST(arena_grow_and_strdup)
{
	Arena a;
	arena_init(&a);
	int *xs = arena_alloc(&a, 4 * sizeof(int));
	for (int i = 0; i < 4; i++)
		xs[i] = i + 1;
	int *ys = arena_grow(&a, xs, 4 * sizeof(int), 8 * sizeof(int));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(ys[i], i + 1);
	for (int i = 4; i < 8; i++)
		ck_assert_int_eq(ys[i], 0);
	const char *s = "hello world";
	char *d = arena_strdup(&a, s);
	ck_assert_str_eq(d, s);
	ck_assert_ptr_ne(d, s);
	char *e = arena_strndup(&a, s, 5);
	ck_assert_str_eq(e, "hello");
	arena_free(&a);
}
END_TEST

/* ---- Name tables ---------------------------------------------------------*/

START_TEST(name_tables_round_trip)
{
	for (int i = 0; i < OP_COUNT; i++) {
		const char *n = op_name((Op)i);
		ck_assert_int_eq(op_from_name(n, strlen(n)), i);
	}
	for (int i = 0; i < DT_COUNT; i++) {
		const char *n = dtype_name((DType)i);
		ck_assert_int_eq(dtype_from_name(n, strlen(n)), i);
	}
	for (int i = 0; i < UNIT_COUNT; i++) {
		const char *n = unit_name((Unit)i);
		ck_assert_int_eq(unit_from_name(n, strlen(n)), i);
	}
	for (int i = 0; i < MEM_COUNT; i++) {
		const char *n = mem_name((MemSpace)i);
		ck_assert_int_eq(mem_from_name(n, strlen(n)), i);
	}
	ck_assert_int_eq(op_from_name("dotx", 4), -1);
	ck_assert_int_eq(op_from_name("dotx", 3), OP_DOT); /* length-bounded */
	ck_assert_int_eq(op_from_name("do", 2), -1);
	ck_assert_int_eq(dtype_from_name("f64", 3), -1);
	ck_assert_int_eq(unit_from_name("gpu", 3), -1);
	ck_assert_int_eq(mem_from_name("smem", 4), -1);
	ck_assert_str_eq(op_name(OP_COLLECTIVE_PERMUTE), "collective_permute");
	ck_assert_str_eq(dtype_name(DT_BF16), "bf16");
}
END_TEST

START_TEST(op_table_flags)
{
	ck_assert_int_eq(ir_ops[OP_PARAMETER].nargs, 0);
	ck_assert(ir_ops[OP_PARAMETER].flags & OPF_LEAF);
	ck_assert_int_eq(ir_ops[OP_SELECT].nargs, 3);
	ck_assert_int_eq(ir_ops[OP_CONCAT].nargs, -1);
	ck_assert_int_eq(ir_ops[OP_DOT].unit, UNIT_MXU);
	ck_assert(ir_ops[OP_DMA_START].flags & OPF_TILED);
	ck_assert(!(ir_ops[OP_ALL_REDUCE].flags & OPF_TILED));
	ck_assert(ir_ops[OP_ALL_REDUCE].flags & OPF_COLLECTIVE);
	ck_assert(ir_ops[OP_EXP].flags & OPF_TRANSC);
	ck_assert_int_eq(dtype_bytes(DT_BF16), 2);
	ck_assert_int_eq(dtype_bytes(DT_F32), 4);
	ck_assert_int_eq(dtype_bytes(DT_S8), 1);
	ck_assert(dtype_is_float(DT_F16));
	ck_assert(!dtype_is_float(DT_S32));
}
END_TEST

/* ---- Types and meshes ---------------------------------------------------*/

START_TEST(type_helpers)
{
	Type a = TY(DT_BF16, 8, 128), b = TY(DT_BF16, 8, 128), s = ty(DT_F32, 0, NULL);
	ck_assert_int_eq(type_numel(&a), 1024);
	ck_assert_int_eq(type_bytes(&a), 2048);
	ck_assert_int_eq(type_numel(&s), 1); /* a scalar */
	ck_assert(type_equal(&a, &b));
	b.shard[0] = 1;
	ck_assert(!type_equal(&a, &b));
	ck_assert(type_same_shape(&a, &b));
	b.dtype = DT_F32;
	ck_assert(!type_same_shape(&a, &b));
	Type z = TY(DT_F32, 0, 7);
	ck_assert_int_eq(type_numel(&z), 0);
}
END_TEST

START_TEST(mesh_helpers)
{
	Mesh m = {3, {{"data", 1, 2}, {"fsdp", 4, 1}, {"tensor", 2, 3}}};
	ck_assert_int_eq(mesh_axis_index(&m, "fsdp", 4), 1);
	ck_assert_int_eq(mesh_axis_index(&m, "tensorX", 6), 2);
	ck_assert_int_eq(mesh_axis_index(&m, "tens", 4), -1);
	ck_assert_int_eq(mesh_size(&m), 2 * 4 * 6);
	ck_assert_int_eq(mesh_axes_size(&m, 0), 1);
	ck_assert_int_eq(mesh_axes_size(&m, 1u << 0 | 1u << 2), 12);
}
END_TEST

/* ---- Attributes ---------------------------------------------------------*/

/* ir_set_int_many gives each instruction what ir_set_ints would: a new key
 * appended, an existing one replaced in place (whatever its kind). */
START_TEST(attributes_set_int_many)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", TY(DT_F32, 4));
	ValueId b = ir_param(m, "b", TY(DT_F32, 4));
	ValueId c = ir_unary(m, OP_NEG, a);
	ir_set_str(m, b, "fusion", "old");
	ir_set_float(m, b, "f", 1.5);
	ValueId vs[] = {a, b, c};
	int64_t xs[] = {7, 8, 9};
	ir_set_int_many(m, "fusion", 3, vs, xs);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ir_attr_int(&m->insts[vs[i]], "fusion", -1), xs[i]);
	ck_assert_int_eq(m->insts[a].nattrs, 2); /* name, fusion */
	ck_assert_str_eq(m->insts[a].attrs[1].key, "fusion");
	ck_assert_int_eq(m->insts[b].nattrs, 3); /* name, fusion (in place), f */
	ck_assert_str_eq(m->insts[b].attrs[1].key, "fusion");
	ck_assert(ir_attr_float(&m->insts[b], "f", 0) == 1.5);
	ck_assert_int_eq(m->insts[c].nattrs, 1);
	ck_assert_str_eq(ir_attr_str(&m->insts[a], "name", NULL), "a");
	ir_module_free(m);
}
END_TEST

START_TEST(attributes_set_get_replace)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId p = ir_param(m, "x", TY(DT_F32, 4));
	int64_t xs[] = {3, 1};
	ir_set_ints(m, p, "k", 2, xs);
	ir_set_float(m, p, "f", 2.5);
	const char *names[] = {"a", "b"};
	ir_set_names(m, p, "n", 2, names);
	const Inst *in = &m->insts[p];
	ck_assert_int_eq(in->nattrs, 4); /* name, k, f, n in that order */
	ck_assert_str_eq(in->attrs[0].key, "name");
	ck_assert_str_eq(in->attrs[3].key, "n");
	int n;
	const int64_t *v = ir_attr_ints(in, "k", &n);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(v[0], 3);
	ck_assert_int_eq(v[1], 1);
	ck_assert_ptr_null(ir_attr_ints(in, "f", &n)); /* wrong kind */
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(ir_attr_int(in, "k", -7), -7); /* not one value */
	ck_assert(ir_attr_float(in, "f", 0) == 2.5);
	ck_assert(ir_attr_float(in, "k", 9.5) == 9.5);
	ck_assert_str_eq(ir_attr_str(in, "name", NULL), "x");
	ck_assert_ptr_null(ir_attr_str(in, "nope", NULL));
	ck_assert_str_eq(ir_attr(in, "n")->names[1], "b");
	/* Setting an existing key replaces it in place. */
	ir_set_str(m, p, "k", "s");
	in = &m->insts[p];
	ck_assert_int_eq(in->nattrs, 4);
	ck_assert_int_eq(in->attrs[1].kind, ATTR_STR);
	ck_assert_str_eq(ir_attr_str(in, "k", NULL), "s");
	ir_module_free(m);
}
END_TEST

/* ---- Builder and shape rules --------------------------------------------*/

START_TEST(builder_shapes)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", TY(DT_BF16, 8, 128));
	ValueId w = ir_param(m, "w", TY(DT_BF16, 128, 256));
	ValueId y = ir_matmul(m, x, w);
	ASSERT_DIMS(&m->insts[y].type, DT_BF16, 8, 256);
	ck_assert_int_eq(m->insts[y].unit, UNIT_MXU);
	ck_assert_ptr_null(m->insts[y].name);

	/* Batched dot: [4,8,16] x [4,16,32] -> [4,8,32]. */
	ValueId a = ir_param(m, "a", TY(DT_F32, 4, 8, 16));
	ValueId b = ir_param(m, "b", TY(DT_F32, 4, 16, 32));
	int64_t lc = 2, rc = 1, lb = 0, rb = 0;
	ValueId bd = ir_dot(m, a, b, 1, &lc, &rc, 1, &lb, &rb);
	ASSERT_DIMS(&m->insts[bd].type, DT_F32, 4, 8, 32);

	/* Free dims keep operand order: contract a's dim 0 with b's dim 2. */
	lc = 0, rc = 2;
	ValueId a2 = ir_param(m, "a2", TY(DT_F32, 5, 6, 7));
	ValueId b2 = ir_param(m, "b2", TY(DT_F32, 9, 3, 5));
	ASSERT_DIMS(&m->insts[ir_dot(m, a2, b2, 1, &lc, &rc, 0, NULL, NULL)].type, DT_F32,
	            6, 7, 9, 3);

	int64_t d1[] = {1};
	ValueId r = ir_reduce(m, OP_REDUCE_SUM, bd, 1, d1);
	ASSERT_DIMS(&m->insts[r].type, DT_F32, 4, 32);
	int64_t all[] = {0, 1, 2};
	ValueId s = ir_reduce(m, OP_REDUCE_MAX, bd, 3, all);
	ck_assert_int_eq(m->insts[s].type.rank, 0);

	int64_t perm[] = {2, 0, 1};
	ASSERT_DIMS(&m->insts[ir_transpose(m, bd, perm)].type, DT_F32, 32, 4, 8);
	int64_t st[] = {1, 0, 8}, li[] = {3, 8, 32};
	ASSERT_DIMS(&m->insts[ir_slice(m, bd, st, li)].type, DT_F32, 2, 8, 24);
	ValueId cs[] = {bd, bd, bd};
	ASSERT_DIMS(&m->insts[ir_concat(m, 3, cs, 1)].type, DT_F32, 4, 24, 32);
	int64_t nd[] = {32, 32};
	ASSERT_DIMS(&m->insts[ir_reshape(m, bd, 2, nd)].type, DT_F32, 32, 32);
	int64_t bdims[] = {1};
	ValueId v8 = ir_param(m, "v8", TY(DT_F32, 8));
	ASSERT_DIMS(&m->insts[ir_broadcast(m, v8, TY(DT_F32, 3, 8), 1, bdims)].type, DT_F32, 3, 8);

	ValueId emb = ir_param(m, "emb", TY(DT_BF16, 1000, 64));
	ValueId ids = ir_param(m, "ids", TY(DT_S32, 2, 16));
	ValueId g = ir_gather(m, emb, ids);
	ASSERT_DIMS(&m->insts[g].type, DT_BF16, 2, 16, 64);
	ValueId oh = ir_one_hot(m, ids, 1000, DT_F32);
	ASSERT_DIMS(&m->insts[oh].type, DT_F32, 2, 16, 1000);
	ValueId io = ir_iota(m, TY(DT_S32, 2, 16), 1);
	ValueId eq = ir_binary(m, OP_CMP_EQ, io, ids);
	ASSERT_DIMS(&m->insts[eq].type, DT_PRED, 2, 16);
	ValueId sel = ir_select(m, eq, io, ids);
	ASSERT_DIMS(&m->insts[sel].type, DT_S32, 2, 16);
	ValueId cv = ir_convert(m, g, DT_F32);
	ASSERT_DIMS(&m->insts[cv].type, DT_F32, 2, 16, 64);
	ValueId sm = ir_softmax(m, cv, 2);
	ASSERT_DIMS(&m->insts[sm].type, DT_F32, 2, 16, 64);
	ValueId ex = ir_unary(m, OP_EXP, sm);
	ASSERT_DIMS(&m->insts[ex].type, DT_F32, 2, 16, 64);
	ck_assert_int_eq(m->ninsts, ex + 1);
	ir_output(m, ex);
	ir_output(m, s);
	ck_assert_int_eq(m->noutputs, 2);
	ck_assert_int_eq(m->outputs[1], s);
	ir_module_free(m);
}
END_TEST

START_TEST(builder_collectives)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	m->mesh = (Mesh){2, {{"data", 2, 2}, {"tensor", 4, 1}}};
	ValueId x = ir_param(m, "x", TY(DT_F32, 16, 8));
	uint32_t data = 1u << 0, tensor = 1u << 1;
	ASSERT_DIMS(&m->insts[ir_collective(m, OP_ALL_REDUCE, x, data | tensor, 0)].type,
	            DT_F32, 16, 8);
	ValueId ag = ir_collective(m, OP_ALL_GATHER, x, tensor, 1);
	ASSERT_DIMS(&m->insts[ag].type, DT_F32, 16, 32);
	/* The axes attribute lists the axes in mesh order. */
	const Attr *ax = ir_attr(&m->insts[ag], "axes");
	ck_assert_int_eq(ax->kind, ATTR_NAMES);
	ck_assert_int_eq(ax->n, 1);
	ck_assert_str_eq(ax->names[0], "tensor");
	/* data spans ici 2 x dcn 2 = 4 devices. */
	ASSERT_DIMS(&m->insts[ir_collective(m, OP_REDUCE_SCATTER, x, data, 0)].type,
	            DT_F32, 4, 8);
	ASSERT_DIMS(&m->insts[ir_collective(m, OP_ALL_TO_ALL, x, tensor, 0)].type,
	            DT_F32, 16, 8);
	ValueId cp = ir_collective(m, OP_COLLECTIVE_PERMUTE, x, data, 0);
	ck_assert_int_eq(ir_attr_int(&m->insts[cp], "shift", 0), 1);
	ir_module_free(m);
}
END_TEST

/* Runs the shape rule on an instruction built by hand; returns its status. */
static int infer(Module *m, Op op, int nargs, ValueId *args, Type t, char *err)
{
	Inst in;
	memset(&in, 0, sizeof in);
	in.op = op;
	in.nargs = nargs;
	in.args = args;
	in.type = t;
	Type out;
	return ir_infer_type(m, &in, &out, err, 256);
}

START_TEST(shape_rules_reject)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	char err[256];
	ValueId a = ir_param(m, "a", TY(DT_F32, 4, 8));
	ValueId b = ir_param(m, "b", TY(DT_F32, 4, 9));
	ValueId i = ir_param(m, "i", TY(DT_S32, 4, 8));
	ValueId ab[] = {a, b}, aa[] = {a, a}, ia[] = {i, a};
	ck_assert_int_eq(infer(m, OP_ADD, 2, ab, TY(DT_F32, 4, 8), err), -1);
	ck_assert_str_eq(err, "add operands differ in shape");
	ck_assert_int_eq(infer(m, OP_ADD, 1, aa, TY(DT_F32, 4, 8), err), -1);
	ck_assert_str_eq(err, "add takes 2 operands, has 1");
	ck_assert_int_eq(infer(m, OP_ADD, 2, ia, TY(DT_F32, 4, 8), err), -1);
	ck_assert_ptr_nonnull(strstr(err, "differ in dtype"));
	ck_assert_int_eq(infer(m, OP_EXP, 1, &i, TY(DT_S32, 4, 8), err), -1);
	ck_assert_int_eq(infer(m, OP_NEG, 1, &i, TY(DT_S32, 4, 8), err), 0);
	ck_assert_int_eq(infer(m, OP_CONCAT, 0, NULL, TY(DT_F32, 4, 8), err), -1);
	ck_assert_int_eq(infer(m, OP_SELECT, 3, (ValueId[]){a, a, a}, TY(DT_F32, 4, 8), err), -1);
	ck_assert_ptr_nonnull(strstr(err, "predicate must be pred"));
	/* A missing attribute is an error, not a crash. */
	ck_assert_int_eq(infer(m, OP_REDUCE_SUM, 1, &a, TY(DT_F32, 4), err), -1);
	ck_assert_str_eq(err, "reduce_sum needs attribute dims");
	ck_assert_int_eq(infer(m, OP_TRANSPOSE, 1, &a, TY(DT_F32, 8, 4), err), -1);
	ck_assert_int_eq(infer(m, OP_GATHER, 2, aa, TY(DT_F32, 4, 8, 8), err), -1);
	ck_assert_ptr_nonnull(strstr(err, "indices must be integers"));
	ck_assert_int_eq(infer(m, OP_RESHAPE, 1, &a, TY(DT_F32, 33), err), -1);
	ck_assert_int_eq(infer(m, OP_RESHAPE, 1, &a, TY(DT_F32, 2, 16), err), 0);
	ck_assert_int_eq(infer(m, OP_ONE_HOT, 1, &i, TY(DT_F32, 4, 9, 3), err), -1);
	ck_assert_int_eq(infer(m, OP_ALL_REDUCE, 1, &a, TY(DT_F32, 4, 8), err), -1);
	ck_assert_ptr_nonnull(strstr(err, "axes"));
	ir_module_free(m);
}
END_TEST

/* A dot whose result would exceed IR_MAX_RANK is refused before any dim is
 * written (rank 6 x rank 6 contracting one dim: 10 result dims). */
START_TEST(shape_rule_dot_rank_limit)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", TY(DT_F32, 1, 1, 1, 1, 1, 1));
	ValueId args[] = {a, a};
	Inst in;
	memset(&in, 0, sizeof in);
	in.op = OP_DOT;
	in.nargs = 2;
	in.args = args;
	in.type = TY(DT_F32, 1);
	ValueId v = ir_append(m, &in);
	int64_t z = 0;
	ir_set_ints(m, v, "lhs_contract", 1, &z);
	ir_set_ints(m, v, "rhs_contract", 1, &z);
	Type out;
	char err[256];
	ck_assert_int_eq(ir_infer_type(m, &m->insts[v], &out, err, sizeof err), -1);
	ck_assert_str_eq(err, "dot result rank 10 exceeds 8");
	ir_module_free(m);
}
END_TEST

/* arena_adopt keeps what both arenas handed out and leaves the source
 * empty; either may be empty. */
START_TEST(arena_adopt_moves_blocks)
{
	Arena a, b, e;
	arena_init(&a);
	arena_init(&b);
	arena_init(&e);
	char *x = arena_strdup(&a, "kept in a");
	char *big = arena_alloc(&b, 100000); /* its own block */
	char *y = arena_strdup(&b, "moved from b");
	big[99999] = 7;
	arena_adopt(&a, &e); /* nothing to move */
	arena_adopt(&a, &b);
	ck_assert_ptr_null(b.head);
	ck_assert_uint_eq(b.used_bytes, 0);
	char *z = arena_strdup(&a, "after");
	ck_assert_str_eq(x, "kept in a");
	ck_assert_str_eq(y, "moved from b");
	ck_assert_str_eq(z, "after");
	ck_assert_int_eq(big[99999], 7);
	arena_adopt(&e, &a); /* into an empty one */
	ck_assert_ptr_null(a.head);
	ck_assert_str_eq(y, "moved from b");
	arena_free(&e);
	arena_free(&b);
}
END_TEST

/* ---- Common-subexpression elimination ------------------------------------*/

START_TEST(cse_merges_pure_repeats_only)
{
	Module *m = ir_module_new("cse", LEVEL_GRAPH);
	m->mesh = (Mesh){1, {{"data", 2, 1}}};
	Type v = TY(DT_F32, 4, 8);
	ValueId x = ir_param(m, "x", v);
	ValueId y = ir_param(m, "y", v); /* same type as x: parameters never merge */
	ValueId c1 = ir_const(m, 2.0, v);
	ValueId c2 = ir_const(m, 2.0, v); /* = c1 */
	ValueId c3 = ir_const(m, 3.0, v); /* another value */
	ValueId a1 = ir_binary(m, OP_MUL, x, c1);
	ValueId a2 = ir_binary(m, OP_MUL, x, c2); /* = a1 once c2 is c1 */
	ValueId a3 = ir_binary(m, OP_MUL, x, c3);
	ValueId a4 = ir_binary(m, OP_MUL, y, c1);
	ValueId r = ir_binary(m, OP_MUL, x, c1); /* = a1, but tagged as recomputed */
	int64_t one = 1;
	ir_set_ints(m, r, "remat", 1, &one);
	ValueId s1 = ir_binary(m, OP_ADD, a1, a2); /* becomes add(a1, a1) */
	ValueId s2 = ir_binary(m, OP_ADD, a1, a1); /* = s1 */
	ValueId g1 = ir_collective(m, OP_ALL_REDUCE, s1, 1, -1);
	ValueId g2 = ir_collective(m, OP_ALL_REDUCE, s1, 1, -1); /* effects: kept */
	ValueId o1 = ir_binary(m, OP_SUB, s2, a3);
	ValueId o2 = ir_binary(m, OP_SUB, s2, a3); /* = o1, but an output: kept */
	ValueId t = ir_binary(m, OP_ADD, a4, r);
	ir_output(m, o1);
	ir_output(m, o2);
	ir_output(m, t);
	ir_output(m, ir_binary(m, OP_ADD, g1, g2));
	int before = m->ninsts;
	ck_assert_int_eq(ir_cse_inplace(m), 3); /* c2, a2, s2 */
	ck_assert_int_eq(m->ninsts, before - 3);
	ck_assert_int_eq(m->noutputs, 4);
	for (int i = 0; i < m->noutputs; i++)
		for (int k = 0; k < i; k++)
			ck_assert_int_ne(m->outputs[i], m->outputs[k]);
	int nconst = 0, nremat = 0, nparam = 0, ncoll = 0;
	for (int i = 0; i < m->ninsts; i++) {
		nconst += m->insts[i].op == OP_CONSTANT;
		ncoll += m->insts[i].op == OP_ALL_REDUCE;
		nremat += ir_attr_int(&m->insts[i], "remat", 0) == 1;
		nparam += m->insts[i].op == OP_PARAMETER;
	}
	ck_assert_int_eq(nconst, 2);
	ck_assert_int_eq(nremat, 1);
	ck_assert_int_eq(nparam, 2);
	ck_assert_int_eq(ncoll, 2);
	/* the sum reads one product twice */
	const Inst *o = &m->insts[m->outputs[0]];
	const Inst *sum = &m->insts[o->args[0]];
	ck_assert_int_eq(sum->op, OP_ADD);
	ck_assert_int_eq(sum->args[0], sum->args[1]);
	/* nothing left to merge */
	ck_assert_int_eq(ir_cse_inplace(m), 0);
	ir_module_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ir_core");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, arena_alloc_zeroed_aligned);
	tcase_add_test(tc, arena_big_blocks_keep_head_usable);
	tcase_add_test(tc, arena_grow_and_strdup);
	tcase_add_test(tc, arena_adopt_moves_blocks);
	tcase_add_test(tc, name_tables_round_trip);
	tcase_add_test(tc, op_table_flags);
	tcase_add_test(tc, type_helpers);
	tcase_add_test(tc, mesh_helpers);
	tcase_add_test(tc, attributes_set_get_replace);
	tcase_add_test(tc, attributes_set_int_many);
	tcase_add_test(tc, builder_shapes);
	tcase_add_test(tc, builder_collectives);
	tcase_add_test(tc, shape_rules_reject);
	tcase_add_test(tc, shape_rule_dot_rank_limit);
	tcase_add_test(tc, cse_merges_pure_repeats_only);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
