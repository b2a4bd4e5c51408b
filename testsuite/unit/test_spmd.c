/*
 * The SPMD executor (compiler/spmd.c) on hand-made per-chip programs: every
 * collective and partition-aware op against its definition in
 * docs/sharding.md, written out here as an independent formula over the
 * chips' inputs (each input element encodes its chip and position, so a
 * wrong source chip or offset shows); the tiled async pairs against the
 * same formulas; the JIT path against the interpreter path; and results
 * that do not depend on the number of threads.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/spmd.h"
#include "ir/ir.h"

static Module *parse(const char *text)
{
	Diag d;
	diag_init(&d);
	Module *m = ir_parse(text, strlen(text), "test", &d);
	ck_assert_msg(m != NULL, "parse: %s", d.msg);
	return m;
}

/* Inputs for every chip: parameter k of chip c is filled by f(c, k, i). */
typedef float (*FillFn)(int64_t chip, int k, int64_t i);

static Tensor *make_inputs(const Module *m, FillFn f, int *np)
{
	int64_t nc = mesh_size(&m->mesh);
	int n = 0;
	for (int v = 0; v < m->ninsts; v++)
		n += m->insts[v].op == OP_PARAMETER;
	Tensor *t = calloc((size_t)(nc * n), sizeof *t);
	ck_assert_ptr_nonnull(t);
	for (int64_t c = 0; c < nc; c++)
		for (int v = 0, k = 0; v < m->ninsts; v++) {
			if (m->insts[v].op != OP_PARAMETER)
				continue;
			Tensor *x = &t[c * n + k];
			x->type = m->insts[v].type;
			int64_t numel = type_numel(&x->type);
			x->data = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
			ck_assert_ptr_nonnull(x->data);
			for (int64_t i = 0; i < numel; i++)
				x->data[i] = f(c, k, i);
			k++;
		}
	*np = n;
	return t;
}

static void free_tensors(Tensor *t, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		free(t[i].data);
	free(t);
}

static Tensor *run(const Module *m, const Tensor *in, int np, int jit, int threads,
                   SpmdStats *st)
{
	int64_t nc = mesh_size(&m->mesh);
	Tensor *out = calloc((size_t)(nc * m->noutputs), sizeof *out);
	ck_assert_ptr_nonnull(out);
	SpmdOptions o;
	spmd_default_options(&o);
	o.jit = jit;
	o.threads = threads;
	Diag d;
	diag_init(&d);
	int rc = spmd_run(m, in, np, &o, out, st, &d);
	ck_assert_msg(rc == 0, "spmd_run: %s", d.msg);
	return out;
}

/* ---- Coordinates and shards ---------------------------------------------- */

START_TEST(coordinates)
{
	Mesh m;
	memset(&m, 0, sizeof m);
	m.naxes = 2;
	m.axes[0] = (MeshAxis){"data", 1, 2}; /* 2 slices */
	m.axes[1] = (MeshAxis){"tensor", 3, 1};
	/* row-major over (data, tensor): chip = 3 * data + tensor */
	for (int64_t c = 0; c < 6; c++) {
		ck_assert_int_eq(spmd_coord(&m, c, 0), c / 3);
		ck_assert_int_eq(spmd_coord(&m, c, 1), c % 3);
		ck_assert_int_eq(spmd_shard_index(&m, c, 1u << 1), c % 3);
		ck_assert_int_eq(spmd_shard_index(&m, c, 1u << 0), c / 3);
		ck_assert_int_eq(spmd_shard_index(&m, c, 3u), c);
		ck_assert_int_eq(spmd_shard_index(&m, c, 0), 0);
	}
	/* a [5,4] tensor, dim 0 over tensor (3 ways: 2 rows each, the last
	 * shard padded), dim 1 over data (2 ways) */
	float g[20];
	for (int i = 0; i < 20; i++)
		g[i] = (float)(i + 1);
	Tensor gt = {{DT_F32, 2, {5, 4}, {0}}, g};
	uint32_t shard[IR_MAX_RANK] = {1u << 1, 1u << 0};
	for (int64_t c = 0; c < 6; c++) {
		Tensor l;
		spmd_shard_tensor(&m, &gt, shard, c, &l);
		ck_assert_int_eq(l.type.dims[0], 2);
		ck_assert_int_eq(l.type.dims[1], 2);
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++) {
				int64_t gi = 2 * (c % 3) + i, gj = 2 * (c / 3) + j;
				float want = gi < 5 ? g[gi * 4 + gj] : 0.0f;
				ck_assert_float_eq(l.data[i * 2 + j], want);
				int64_t li[2] = {i, j}, got[2];
				ck_assert_int_eq(spmd_global_index(&m, &gt.type, shard, c, li, got), gi < 5);
				ck_assert_int_eq(got[0], gi);
				ck_assert_int_eq(got[1], gj);
			}
		free(l.data);
	}
}
END_TEST

/* ---- Collectives ------------------------------------------------------------
 * Mesh (data=2, tensor=3): chip c = 3 d + t. x (k = 0) on chip c is
 * 100 c + 10 i + j at [i, j]; y (k = 1) is 1000 c + 10 i + j. */

static float fill_xy(int64_t c, int k, int64_t i)
{
	if (k == 0) /* x: f32[2,3] */
		return (float)(100 * c + 10 * (i / 3) + i % 3);
	return (float)(1000 * c + 10 * (i / 2) + i % 2); /* y: f32[6,2] */
}

static float X(int64_t c, int i, int j) { return (float)(100 * c + 10 * i + j); }
static float Y(int64_t c, int i, int j) { return (float)(1000 * c + 10 * i + j); }

static const char *const coll_graph =
	"module @coll graph\n"
	"mesh ici(data=2, tensor=3)\n"
	"%x = parameter() {name=\"x\"} : f32[2,3]\n"
	"%y = parameter() {name=\"y\"} : f32[6,2]\n"
	"%ag = all_gather(%x) {axes=[tensor], dim=[1]} : f32[2,9]\n"
	"%rs = reduce_scatter(%y) {axes=[tensor], dim=[0]} : f32[2,2]\n"
	"%ar = all_reduce(%x) {axes=[data, tensor]} : f32[2,3]\n"
	"%am = all_reduce(%x) {axes=[data], reduce=\"max\"} : f32[2,3]\n"
	"%a2a = all_to_all(%y) {axes=[tensor], split_dim=[0], concat_dim=[1]} : f32[2,6]\n"
	"%cp = collective_permute(%x) {axes=[tensor], shift=[1]} : f32[2,3]\n"
	"%ag0 = all_gather(%y) {axes=[data], dim=[0]} : f32[12,2]\n"
	"return %ag, %rs, %ar, %am, %a2a, %cp, %ag0\n";

static const char *const coll_tiled =
	"module @coll tiled\n"
	"mesh ici(data=2, tensor=3)\n"
	"%x = parameter() {name=\"x\"} : f32[2,3] on none in hbm\n"
	"%y = parameter() {name=\"y\"} : f32[6,2] on none in hbm\n"
	"%s0 = coll_start(%x) {op=\"all_gather\", axes=[tensor], dim=[1]} : f32[2,9] on ici in hbm\n"
	"%s1 = coll_start(%y) {op=\"reduce_scatter\", axes=[tensor], dim=[0]} : f32[2,2] on ici in hbm\n"
	"%ag = coll_done(%s0) : f32[2,9] on ici in hbm\n"
	"%rs = coll_done(%s1) : f32[2,2] on ici in hbm\n"
	"%s2 = coll_start(%x) {op=\"all_reduce\", axes=[data, tensor]} : f32[2,3] on ici in hbm\n"
	"%ar = coll_done(%s2) : f32[2,3] on ici in hbm\n"
	"%s3 = coll_start(%x) {op=\"all_reduce\", axes=[data], reduce=\"max\"} : f32[2,3] on ici in hbm\n"
	"%am = coll_done(%s3) : f32[2,3] on ici in hbm\n"
	"%s4 = coll_start(%y) {op=\"all_to_all\", axes=[tensor], split_dim=[0], concat_dim=[1]} : f32[2,6] on ici in hbm\n"
	"%a2a = coll_done(%s4) : f32[2,6] on ici in hbm\n"
	"%s5 = coll_start(%x) {op=\"collective_permute\", axes=[tensor], shift=[1]} : f32[2,3] on ici in hbm\n"
	"%cp = coll_done(%s5) : f32[2,3] on ici in hbm\n"
	"%s6 = coll_start(%y) {op=\"all_gather\", axes=[data], dim=[0]} : f32[12,2] on dcn in hbm\n"
	"%ag0 = coll_done(%s6) : f32[12,2] on dcn in hbm\n"
	"return %ag, %rs, %ar, %am, %a2a, %cp, %ag0\n";

static void check_collectives(const Module *m)
{
	int np;
	Tensor *in = make_inputs(m, fill_xy, &np);
	SpmdStats st;
	Tensor *out = run(m, in, np, 1, 0, &st);
	ck_assert_int_eq(st.chips, 6);
	ck_assert_int_eq(st.collective_ops, 7);
	for (int64_t c = 0; c < 6; c++) {
		int64_t d = c / 3, t = c % 3;
		const Tensor *o = &out[c * 7];
		for (int i = 0; i < 2; i++)
			for (int k = 0; k < 9; k++) /* column block k/3 from tensor member k/3 */
				ck_assert_float_eq(o[0].data[i * 9 + k], X(3 * d + k / 3, i, k % 3));
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++) { /* rows 2t.. summed over tensor */
				float s = 0;
				for (int u = 0; u < 3; u++)
					s += Y(3 * d + u, 2 * (int)t + i, j);
				ck_assert_float_eq(o[1].data[i * 2 + j], s);
			}
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 3; j++) {
				float s = 0;
				for (int64_t e = 0; e < 6; e++)
					s += X(e, i, j);
				ck_assert_float_eq(o[2].data[i * 3 + j], s);
				/* max over data: the data=1 member's values are larger */
				ck_assert_float_eq(o[3].data[i * 3 + j], X(3 + t, i, j));
				/* permute by +1: chip t holds what t-1 had */
				ck_assert_float_eq(o[5].data[i * 3 + j], X(3 * d + (t + 2) % 3, i, j));
			}
		for (int i = 0; i < 2; i++)
			for (int k = 0; k < 6; k++) /* part t of member k/2's rows, along dim 1 */
				ck_assert_float_eq(o[4].data[i * 6 + k], Y(3 * d + k / 2, 2 * (int)t + i, k % 2));
		for (int i = 0; i < 12; i++)
			for (int j = 0; j < 2; j++) /* rows of data member i/6 */
				ck_assert_float_eq(o[6].data[i * 2 + j], Y(3 * (i / 6) + t, i % 6, j));
	}
	free_tensors(out, 6 * 7);
	free_tensors(in, 6 * np);
}

START_TEST(collectives_graph)
{
	Module *m = parse(coll_graph);
	check_collectives(m);
	ir_module_free(m);
}
END_TEST

START_TEST(collectives_tiled)
{
	Module *m = parse(coll_tiled);
	check_collectives(m);
	ir_module_free(m);
}
END_TEST

/* ---- Partition-aware ops ------------------------------------------------- */

static float fill_part(int64_t c, int k, int64_t i)
{
	if (k == 0) /* table: this chip's 2 rows of a 6-row global table */
		return (float)(100 * c + i);
	if (k == 1) /* indices, the same on every chip: 0, 3, 5, 7 (7: no chip) */
		return (float)(i == 0 ? 0 : i == 1 ? 3 : i == 2 ? 5 : 7);
	return (float)(10 * (i / 7) + i % 7); /* z: f32[4,7] */
}

START_TEST(partition_ops)
{
	Module *m = parse("module @part graph\n"
	                  "mesh ici(tensor=3)\n"
	                  "%t = parameter() {name=\"t\"} : f32[2,2]\n"
	                  "%ix = parameter() {name=\"ix\"} : s32[4]\n"
	                  "%z = parameter() {name=\"z\"} : f32[4,7]\n"
	                  "%g = gather(%t, %ix) {partition=[tensor]} : f32[4,2]\n"
	                  "%io = iota() {dim=[1], partition=[tensor]} : s32[2,3]\n"
	                  "%oh = one_hot(%ix) {partition=[tensor]} : f32[4,2]\n"
	                  "%s = slice(%z) {start=[0, 0], limit=[4, 3], partition=[tensor]} : f32[4,3]\n"
	                  "return %g, %io, %oh, %s\n");
	int np;
	Tensor *in = make_inputs(m, fill_part, &np);
	SpmdStats st;
	Tensor *out = run(m, in, np, 1, 0, &st);
	ck_assert_int_eq(st.partition_ops, 4);
	const float ix[4] = {0, 3, 5, 7};
	for (int64_t t = 0; t < 3; t++) {
		const Tensor *o = &out[t * 4];
		for (int k = 0; k < 4; k++)
			for (int j = 0; j < 2; j++) {
				int64_t row = (int64_t)ix[k] - 2 * t; /* rows 2t, 2t+1 are here */
				float want = row >= 0 && row < 2 ? (float)(100 * t + 2 * row + j) : 0.0f;
				ck_assert_float_eq(o[0].data[k * 2 + j], want);
				ck_assert_float_eq(o[2].data[k * 2 + j], ix[k] == (float)(2 * t + j));
			}
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 3; j++)
				ck_assert_float_eq(o[1].data[i * 3 + j], (float)(3 * t + j));
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 3; j++) { /* columns 3t..3t+2 of 7: padded with 0 */
				int64_t col = 3 * t + j;
				float want = col < 7 ? (float)(10 * i + col) : 0.0f;
				ck_assert_float_eq(o[3].data[i * 3 + j], want);
			}
	}
	free_tensors(out, 3 * 4);
	free_tensors(in, 3 * np);
	ir_module_free(m);
}
END_TEST

/* ---- JIT against the interpreter; threads --------------------------------- */

static float fill_rand(int64_t c, int k, int64_t i)
{
	uint64_t z = (uint64_t)(c * 1000003 + k * 7919 + i) * 0x9e3779b97f4a7c15ull;
	z ^= z >> 29;
	return (float)((double)(z % 20001) / 10000.0 - 1.0);
}

static const char *const mlp =
	"module @mlp graph\n"
	"mesh ici(data=2, tensor=2)\n"
	"%x = parameter() {name=\"x\"} : f32[8,16]\n"
	"%w = parameter() {name=\"w\"} : f32[16,12]\n"
	"%v = parameter() {name=\"v\"} : f32[12,16]\n"
	"%h = dot(%x, %w) {lhs_contract=[1], rhs_contract=[0]} : f32[8,12]\n"
	"%a = gelu(%h) : f32[8,12]\n"
	"%o = dot(%a, %v) {lhs_contract=[1], rhs_contract=[0]} : f32[8,16]\n"
	"%r = all_reduce(%o) {axes=[tensor]} : f32[8,16]\n"
	"%e = exp(%r) : f32[8,16]\n"
	"%s = reduce_sum(%e) {dims=[1]} : f32[8]\n"
	"%g = all_gather(%s) {axes=[data], dim=[0]} : f32[16]\n"
	"%sm = softmax(%r) {dim=[1]} : f32[8,16]\n"
	"return %g, %sm, %a\n";

START_TEST(jit_matches_interpreter)
{
	Module *m = parse(mlp);
	int np;
	Tensor *in = make_inputs(m, fill_rand, &np);
	SpmdStats sj, si;
	Tensor *oj = run(m, in, np, 1, 0, &sj);
	Tensor *oi = run(m, in, np, 0, 0, &si);
	ck_assert_msg(sj.jit_note[0] == 0, "JIT not used: %s", sj.jit_note);
	ck_assert_int_eq(sj.jit_ops, 6);
	ck_assert_int_eq(sj.interp_ops, 0);
	ck_assert_int_eq(si.jit_ops, 0);
	ck_assert_int_eq(si.interp_ops, 6);
	ck_assert_int_eq(sj.collective_ops, 2);
	for (int64_t i = 0; i < 4 * 3; i++) {
		int64_t n = type_numel(&oj[i].type);
		for (int64_t e = 0; e < n; e++) {
			/* the dots sum in another order: a few ulps of the sums */
			float a = oj[i].data[e], b = oi[i].data[e];
			ck_assert_msg(fabsf(a - b) <= 1e-5f * (1.0f + fabsf(b)),
			              "output %lld [%lld]: JIT %g, interpreter %g", (long long)i,
			              (long long)e, (double)a, (double)b);
		}
	}
	free_tensors(oj, 4 * 3);
	free_tensors(oi, 4 * 3);
	free_tensors(in, 4 * np);
	ir_module_free(m);
}
END_TEST

START_TEST(threads_do_not_matter)
{
	Module *m = parse(mlp);
	int np;
	Tensor *in = make_inputs(m, fill_rand, &np);
	SpmdStats s1, s3;
	Tensor *o1 = run(m, in, np, 1, 1, &s1);
	Tensor *o3 = run(m, in, np, 1, 3, &s3);
	for (int64_t i = 0; i < 4 * 3; i++) {
		int64_t n = type_numel(&o1[i].type);
		ck_assert_int_eq(memcmp(o1[i].data, o3[i].data, sizeof(float) * (size_t)n), 0);
	}
	ck_assert_double_eq(s1.bytes_moved, s3.bytes_moved);
	free_tensors(o1, 4 * 3);
	free_tensors(o3, 4 * 3);
	free_tensors(in, 4 * np);
	ir_module_free(m);
}
END_TEST

START_TEST(bad_input_shape)
{
	Module *m = parse(mlp);
	int np;
	Tensor *in = make_inputs(m, fill_rand, &np);
	in[2 * np + 1].type.dims[0] = 15; /* chip 2's w */
	Tensor out[12];
	SpmdOptions o;
	spmd_default_options(&o);
	o.jit = 0;
	SpmdStats st;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(spmd_run(m, in, np, &o, out, &st, &d), -1);
	ck_assert_msg(strstr(d.msg, "chip 2") && strstr(d.msg, "wrong shape"), "%s", d.msg);
	ck_assert_int_eq(spmd_run(m, in, np - 1, &o, out, &st, &d), -1);
	free_tensors(in, 4 * np);
	ir_module_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("spmd");
	TCase *tc = tcase_create("spmd");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, coordinates);
	tcase_add_test(tc, collectives_graph);
	tcase_add_test(tc, collectives_tiled);
	tcase_add_test(tc, partition_ops);
	tcase_add_test(tc, jit_matches_interpreter);
	tcase_add_test(tc, threads_do_not_matter);
	tcase_add_test(tc, bad_input_shape);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
