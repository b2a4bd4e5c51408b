/*
 * On-chip occupancy of tiled values in the event engine (sim/engine.c): a
 * value in VMEM that carries a tiling occupies two of its tiles (double
 * buffering), not its whole size, so the intermediates of a fused kernel
 * never spill however large the tensors are; an untiled VMEM value still
 * occupies its whole size, and a reshape (a view) occupies nothing.
 * Expected peaks are computed from the shapes and tiles written here.
 */
#include <check.h>
#include <string.h>

#include "testchip.h"
#include "ir/ir.h"
#include "sim/chip.h"
#include "sim/engine.h"

static void tile2(Module *m, ValueId v, int64_t a, int64_t b)
{
	Tiling *t = &m->insts[v].tiling;
	memset(t, 0, sizeof *t);
	t->ntile = 2;
	t->tile[0] = a;
	t->tile[1] = b;
	t->order[0] = 0;
	t->order[1] = 1;
}

/* x (HBM) -> exp (VMEM) -> neg (VMEM) -> add (HBM): a fused kernel whose
 * two intermediates are each rows x cols f32. */
static Module *chain(int64_t rows, int64_t cols, int tiled, ValueId *e, ValueId *n)
{
	Module *m = ir_module_new("chain", LEVEL_TILED);
	ValueId x = ir_param(m, "x", test_t2(DT_F32, rows, cols));
	m->insts[x].mem = MEM_HBM;
	*e = ir_unary(m, OP_EXP, x);
	*n = ir_unary(m, OP_NEG, *e);
	ValueId y = ir_binary(m, OP_ADD, *n, x);
	ValueId vs[] = {*e, *n, y};
	for (int i = 0; i < 3; i++) {
		m->insts[vs[i]].unit = UNIT_VPU;
		m->insts[vs[i]].mem = i < 2 ? MEM_VMEM : MEM_HBM;
		if (tiled)
			tile2(m, vs[i], 8, 512);
	}
	ir_output(m, y);
	return m;
}

START_TEST(tiled_value_occupies_its_tiles)
{
	Chip c = test_chip("tpu-v4");
	ValueId e, n;
	Module *m = chain(4096, 4096, 1, &e, &n);
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	SimResult r;
	ck_assert_msg(engine_run(m, &c, NULL, &r, &d) == 0, "%s", d.msg);
	/* exp and neg live together at the neg: two values of 2 tiles each */
	double tile = 8.0 * 512 * 4;
	ck_assert_double_eq_tol(r.mem_peak[MEM_VMEM], 2 * 2 * tile, 1e-6);
	ck_assert_double_eq_tol(r.spill_bytes, 0, 1e-9);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

START_TEST(untiled_value_occupies_whole)
{
	Chip c = test_chip("tpu-v4");
	ValueId e, n;
	/* 64 MiB per intermediate: more than the chip's VMEM */
	Module *m = chain(4096, 4096, 0, &e, &n);
	Diag d;
	diag_init(&d);
	SimResult r;
	ck_assert_msg(engine_run(m, &c, NULL, &r, &d) == 0, "%s", d.msg);
	double whole = 4096.0 * 4096 * 4;
	ck_assert_double_eq_tol(r.mem_peak[MEM_VMEM], 2 * whole, 1e-6);
	ck_assert(r.spill_bytes > 0);
	sim_result_free(&r);
	ir_module_free(m);
	/* the same program tiled: no spill */
	m = chain(4096, 4096, 1, &e, &n);
	ck_assert_msg(engine_run(m, &c, NULL, &r, &d) == 0, "%s", d.msg);
	ck_assert_double_eq_tol(r.spill_bytes, 0, 1e-9);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

/* Padded tiles count their padding: an [8, 64] value with a [8, 128] tile
 * holds 2 x 8 x 128 elements. A reshape of it adds nothing, even when it
 * carries the memory space of its operand. */
START_TEST(padding_and_views)
{
	Chip c = test_chip("tpu-v4");
	Module *m = ir_module_new("pad", LEVEL_TILED);
	ValueId x = ir_param(m, "x", test_t2(DT_BF16, 8, 64));
	m->insts[x].mem = MEM_HBM;
	ValueId e = ir_unary(m, OP_EXP, x);
	m->insts[e].unit = UNIT_VPU;
	m->insts[e].mem = MEM_VMEM;
	tile2(m, e, 8, 128);
	int64_t dims[] = {512};
	ValueId v = ir_reshape(m, e, 1, dims);
	m->insts[v].mem = MEM_VMEM;
	ValueId y = ir_unary(m, OP_NEG, v);
	m->insts[y].unit = UNIT_VPU;
	m->insts[y].mem = MEM_HBM;
	ir_output(m, y);
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) == 0, "%s", d.msg);
	SimResult r;
	ck_assert_msg(engine_run(m, &c, NULL, &r, &d) == 0, "%s", d.msg);
	ck_assert_double_eq_tol(r.mem_peak[MEM_VMEM], 2.0 * 8 * 128 * 2, 1e-9);
	sim_result_free(&r);
	ir_module_free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("engine_tiles");
	TCase *tc = tcase_create("engine_tiles");
	tcase_add_test(tc, tiled_value_occupies_its_tiles);
	tcase_add_test(tc, untiled_value_occupies_whole);
	tcase_add_test(tc, padding_and_views);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
