/*
 * Unit tests of the invariants the IR's fast paths rely on: arena memory
 * handed out zeroed even when a block's earlier bytes were handed out
 * unzeroed (blocks come from malloc); attribute keys shared from the static
 * key table, found by content whatever the caller's pointer, and copied
 * (not shared) when unknown, so a copy outlives its source module; the
 * one-block copy of operands, attributes and integer lists; and the op name
 * lookup by length.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static Type f32(int rank, int64_t d)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = DT_F32;
	t.rank = rank;
	for (int i = 0; i < rank; i++)
		t.dims[i] = d;
	return t;
}

START_TEST(arena_zeroes_after_uninit)
{
	Arena a;
	arena_init(&a);
	/* dirty a stretch of the block, then ask for zeroed memory in the
	 * same block and in a new one */
	for (int round = 0; round < 3; round++) {
		unsigned char *dirty = arena_alloc_uninit(&a, 4000);
		memset(dirty, 0xab, 4000);
		unsigned char *z = arena_alloc(&a, 3000);
		for (int i = 0; i < 3000; i++)
			ck_assert_int_eq(z[i], 0);
		ck_assert_int_eq((int)((uintptr_t)z % 16), 0);
	}
	/* a block freed dirty is likely what the next arena gets back */
	Arena b;
	arena_init(&b);
	memset(arena_alloc_uninit(&b, 60000), 0xcd, 60000);
	arena_free(&b);
	arena_init(&b);
	unsigned char *again = arena_alloc(&b, 60000);
	for (int i = 0; i < 60000; i++)
		ck_assert_int_eq(again[i], 0);
	arena_free(&b);
	unsigned char *big = arena_alloc(&a, 200000); /* a block of its own */
	for (int i = 0; i < 200000; i += 997)
		ck_assert_int_eq(big[i], 0);
	/* arena_grow keeps the old bytes and zeroes the new ones */
	unsigned char *old = arena_alloc_uninit(&a, 24);
	memset(old, 7, 24);
	unsigned char *g = arena_grow(&a, old, 24, 100);
	for (int i = 0; i < 24; i++)
		ck_assert_int_eq(g[i], 7);
	for (int i = 24; i < 100; i++)
		ck_assert_int_eq(g[i], 0);
	arena_free(&a);
}
END_TEST

START_TEST(attr_keys_by_content)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId p = ir_param(m, "x", f32(1, 8));
	char key[16];
	strcpy(key, "layer"); /* not the literal a pass would pass */
	int64_t three = 3, four = 4;
	ir_set_ints(m, p, key, 1, &three);
	ck_assert(ir_attr_key_is_static(m->insts[p].attrs[m->insts[p].nattrs - 1].key));
	ck_assert(!ir_attr_key_is_static(key));
	strcpy(key, "xxxxx"); /* the caller's buffer changes: the key must not */
	ck_assert_int_eq(ir_attr_int(&m->insts[p], "layer", -1), 3);
	/* replacing by another pointer to the same text */
	ir_set_ints(m, p, "layer", 1, &four);
	ck_assert_int_eq(ir_attr_int(&m->insts[p], "layer", -1), 4);
	int n = 0;
	for (int i = 0; i < m->insts[p].nattrs; i++)
		n += !strcmp(m->insts[p].attrs[i].key, "layer");
	ck_assert_int_eq(n, 1);
	/* keys that share leading letters stay apart */
	ir_set_ints(m, p, "lhs_batch", 1, &three);
	ir_set_ints(m, p, "limit", 1, &four);
	ck_assert_int_eq(ir_attr_int(&m->insts[p], "lhs_batch", -1), 3);
	ck_assert_int_eq(ir_attr_int(&m->insts[p], "limit", -1), 4);
	ck_assert_int_eq(ir_attr_int(&m->insts[p], "layer", -1), 4);
	ck_assert_ptr_null(ir_attr(&m->insts[p], "lhs_contract"));
	ck_assert_ptr_null(ir_attr(&m->insts[p], "l"));
	ck_assert_ptr_null(ir_attr(&m->insts[p], ""));
	ck_assert(!ir_attr_key_is_static(NULL));
	ir_module_free(m);
}
END_TEST

START_TEST(clone_outlives_source)
{
	Module *src = ir_module_new("s", LEVEL_GRAPH);
	ValueId a = ir_param(src, "a", f32(2, 4));
	ValueId b = ir_param(src, "b", f32(2, 4));
	ValueId c = ir_binary(src, OP_ADD, a, b);
	char key[32];
	strcpy(key, "my_own_key"); /* unknown: copied into the arena */
	int64_t xs[3] = {5, 6, 7};
	ir_set_ints(src, c, key, 3, xs);
	ir_set_ints(src, c, "empty", 0, NULL);
	ir_set_ints(src, c, "layer", 1, xs);
	ir_set_str(src, c, "role", "weight");
	const char *names[2] = {"data", "tensor"};
	ir_set_names(src, c, "axes", 2, names);
	ir_set_float(src, c, "value", 2.5);

	Module *dst = ir_module_new("d", LEVEL_GRAPH);
	ValueId da = ir_clone_inst(dst, src, a, NULL);
	ValueId db = ir_clone_inst(dst, src, b, NULL);
	ValueId args[2] = {db, da};
	ValueId dc = ir_clone_inst(dst, src, c, args);
	/* a copy inside one module reads its own operands */
	ValueId dc2 = ir_clone_inst(dst, dst, dc, args);
	memset(key, 0, sizeof key);
	ir_module_free(src); /* everything below must live in dst */

	for (int k = 0; k < 2; k++) {
		const Inst *in = &dst->insts[k ? dc2 : dc];
		ck_assert_int_eq(in->nargs, 2);
		ck_assert_int_eq(in->args[0], db);
		ck_assert_int_eq(in->args[1], da);
		int n;
		const int64_t *v = ir_attr_ints(in, "my_own_key", &n);
		ck_assert_int_eq(n, 3);
		ck_assert(v[0] == 5 && v[1] == 6 && v[2] == 7);
		ck_assert_ptr_nonnull(ir_attr(in, "empty"));
		ck_assert_int_eq(ir_attr(in, "empty")->n, 0);
		ck_assert_int_eq(ir_attr_int(in, "layer", -1), 5);
		ck_assert_str_eq(ir_attr_str(in, "role", ""), "weight");
		const Attr *ax = ir_attr(in, "axes");
		ck_assert_int_eq(ax->n, 2);
		ck_assert_str_eq(ax->names[0], "data");
		ck_assert_str_eq(ax->names[1], "tensor");
		ck_assert(ir_attr_float(in, "value", 0) == 2.5);
	}
	/* the operand arrays are the copies' own */
	ck_assert_ptr_ne(dst->insts[dc].args, dst->insts[dc2].args);
	ck_assert_str_eq(ir_attr_str(&dst->insts[da], "name", ""), "a");
	ir_module_free(dst);
}
END_TEST

START_TEST(op_names_round_trip)
{
	for (int i = 0; i < OP_COUNT; i++) {
		const char *s = op_name((Op)i);
		ck_assert_int_eq(op_from_name(s, strlen(s)), i);
		/* a prefix or an extension is not the op */
		char buf[64];
		snprintf(buf, sizeof buf, "%sx", s);
		ck_assert_int_ne(op_from_name(buf, strlen(buf)), i);
		if (strlen(s) > 1)
			ck_assert_int_ne(op_from_name(s, strlen(s) - 1), i);
	}
	ck_assert_int_eq(op_from_name("", 0), -1);
	ck_assert_int_eq(op_from_name("no_such_op", 10), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("perf_invariants");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, arena_zeroes_after_uninit);
	tcase_add_test(tc, attr_keys_by_content);
	tcase_add_test(tc, clone_outlives_source);
	tcase_add_test(tc, op_names_round_trip);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
