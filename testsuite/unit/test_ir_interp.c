/*
 * The reference interpreter against small cases computed by hand: every
 * expected value below was worked out on paper from the op's definition in
 * ir/ir.h, not taken from the interpreter.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static Type ty(DType dt, int rank, ...)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.rank = rank;
	va_list ap;
	va_start(ap, rank);
	for (int i = 0; i < rank; i++)
		t.dims[i] = va_arg(ap, int);
	va_end(ap);
	return t;
}

static Tensor tens(Type t, float *data)
{
	Tensor x = {t, data};
	return x;
}

/* Runs m on the inputs; its single output goes to *out (caller frees). */
static void run1(const Module *m, const Tensor *in, int nin, int bf16, Tensor *out)
{
	Diag d;
	diag_init(&d);
	InterpOptions o = {bf16};
	int rc = ir_interp(m, in, nin, &o, out, NULL, &d);
	ck_assert_msg(rc == 0, "interp failed: %s", d.msg);
}

static void expect(const Tensor *t, const float *want, int64_t n, float tol)
{
	ck_assert_int_eq(type_numel(&t->type), n);
	for (int64_t i = 0; i < n; i++)
		ck_assert_msg(fabsf(t->data[i] - want[i]) <= tol ||
		              (isnan(want[i]) && isnan(t->data[i])),
		              "element %lld: got %.9g, want %.9g", (long long)i,
		              (double)t->data[i], (double)want[i]);
}

START_TEST(matmul_2x3_3x2)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_F32, 2, 2, 3));
	ValueId b = ir_param(m, "b", ty(DT_F32, 2, 3, 2));
	ir_output(m, ir_matmul(m, a, b));
	float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {7, 8, 9, 10, 11, 12};
	Tensor in[2] = {tens(ty(DT_F32, 2, 2, 3), av), tens(ty(DT_F32, 2, 3, 2), bv)};
	Tensor out;
	run1(m, in, 2, 0, &out);
	ck_assert_int_eq(out.type.rank, 2);
	ck_assert_int_eq(out.type.dims[0], 2);
	ck_assert_int_eq(out.type.dims[1], 2);
	float want[] = {58, 64, 139, 154};
	expect(&out, want, 4, 0);
	free(out.data);
	ir_module_free(m);
}
END_TEST

START_TEST(dot_batch_dims)
{
	/* a [2,1,2], b [2,2,1]: batch 0/0, contract a2/b1 -> [2,1,1]. */
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_F32, 3, 2, 1, 2));
	ValueId b = ir_param(m, "b", ty(DT_F32, 3, 2, 2, 1));
	int64_t lc = 2, rc = 1, lb = 0, rb = 0;
	ir_output(m, ir_dot(m, a, b, 1, &lc, &rc, 1, &lb, &rb));
	float av[] = {1, 2, 3, 4}, bv[] = {5, 6, 7, 8};
	Tensor in[2] = {tens(ty(DT_F32, 3, 2, 1, 2), av), tens(ty(DT_F32, 3, 2, 2, 1), bv)};
	Tensor out;
	run1(m, in, 2, 0, &out);
	ck_assert_int_eq(out.type.rank, 3);
	float want[] = {1 * 5 + 2 * 6, 3 * 7 + 4 * 8};
	expect(&out, want, 2, 0);
	free(out.data);
	ir_module_free(m);
}
END_TEST

START_TEST(dot_batch_not_leading)
{
	/* a [3,2] with batch dim 1 and b [2,3] with batch dim 0, contract a0/b1:
	 * out[b] = sum_k a[k,b] * bb[b,k]. */
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_F32, 2, 3, 2));
	ValueId b = ir_param(m, "b", ty(DT_F32, 2, 2, 3));
	int64_t lc = 0, rc = 1, lb = 1, rb = 0;
	ir_output(m, ir_dot(m, a, b, 1, &lc, &rc, 1, &lb, &rb));
	/* a = [[1,2],[3,4],[5,6]], b = [[1,0,2],[0,1,3]] */
	float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {1, 0, 2, 0, 1, 3};
	Tensor in[2] = {tens(ty(DT_F32, 2, 3, 2), av), tens(ty(DT_F32, 2, 2, 3), bv)};
	Tensor out;
	run1(m, in, 2, 0, &out);
	/* b=0: 1*1 + 3*0 + 5*2 = 11; b=1: 2*0 + 4*1 + 6*3 = 22 */
	float want[] = {11, 22};
	expect(&out, want, 2, 0);
	free(out.data);
	ir_module_free(m);
}
END_TEST

START_TEST(dot_two_contracting_and_free_order)
{
	/* Full contraction of two [2,2] -> scalar; and an outer product ordering
	 * check: a [2] x b [3] with no contraction -> [2,3] (lhs free first). */
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_F32, 2, 2, 2));
	ValueId b = ir_param(m, "b", ty(DT_F32, 2, 2, 2));
	int64_t lc[] = {0, 1}, rc[] = {0, 1};
	ir_output(m, ir_dot(m, a, b, 2, lc, rc, 0, NULL, NULL));
	ValueId u = ir_param(m, "u", ty(DT_F32, 1, 2));
	ValueId v = ir_param(m, "v", ty(DT_F32, 1, 3));
	ir_output(m, ir_dot(m, u, v, 0, NULL, NULL, 0, NULL, NULL));
	float av[] = {1, 2, 3, 4}, bv[] = {2, 3, 4, 5}, uv[] = {1, 2}, vv[] = {3, 4, 5};
	Tensor in[4] = {tens(ty(DT_F32, 2, 2, 2), av), tens(ty(DT_F32, 2, 2, 2), bv),
	                tens(ty(DT_F32, 1, 2), uv), tens(ty(DT_F32, 1, 3), vv)};
	Tensor out[2];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, in, 4, NULL, out, NULL, &d), 0);
	float w0[] = {2 + 6 + 12 + 20};
	expect(&out[0], w0, 1, 0);
	float w1[] = {3, 4, 5, 6, 8, 10};
	expect(&out[1], w1, 6, 0);
	free(out[0].data);
	free(out[1].data);
	ir_module_free(m);
}
END_TEST

START_TEST(softmax_rows)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 2, 3));
	ir_output(m, ir_softmax(m, x, 1));
	ir_output(m, ir_softmax(m, x, 0));
	/* row 0: exp = 1, 2, 5 -> 1/8, 2/8, 5/8; row 1: all equal -> 1/3. */
	float xv[] = {0, logf(2), logf(5), 7, 7, 7};
	Tensor in = tens(ty(DT_F32, 2, 2, 3), xv);
	Tensor out[2];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, &in, 1, NULL, out, NULL, &d), 0);
	float w0[] = {0.125f, 0.25f, 0.625f, 1.0f / 3, 1.0f / 3, 1.0f / 3};
	expect(&out[0], w0, 6, 1e-6f);
	/* along dim 0: columns (0,7), (ln2,7), (ln5,7): 1/(1+e^7) etc. */
	float w1[6];
	float col0[3] = {0, logf(2), logf(5)};
	for (int j = 0; j < 3; j++) {
		w1[j] = expf(col0[j]) / (expf(col0[j]) + expf(7));
		w1[3 + j] = expf(7) / (expf(col0[j]) + expf(7));
	}
	expect(&out[1], w1, 6, 1e-6f);
	free(out[0].data);
	free(out[1].data);
	ir_module_free(m);
}
END_TEST

START_TEST(softmax_large_values)
{
	/* exp(1000) overflows f32: the max is subtracted first. */
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 1, 2));
	ir_output(m, ir_softmax(m, x, 0));
	float xv[] = {1000, 1000};
	Tensor in = tens(ty(DT_F32, 1, 2), xv), out;
	run1(m, &in, 1, 0, &out);
	float want[] = {0.5f, 0.5f};
	expect(&out, want, 2, 0);
	free(out.data);
	ir_module_free(m);
}
END_TEST

START_TEST(gather_rows)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId t = ir_param(m, "table", ty(DT_F32, 2, 3, 2));
	ValueId i = ir_param(m, "idx", ty(DT_S32, 2, 2, 2));
	ir_output(m, ir_gather(m, t, i));
	float tv[] = {1, 2, 3, 4, 5, 6}, iv[] = {2, 0, 1, 1};
	Tensor in[2] = {tens(ty(DT_F32, 2, 3, 2), tv), tens(ty(DT_S32, 2, 2, 2), iv)};
	Tensor out;
	run1(m, in, 2, 0, &out);
	ck_assert_int_eq(out.type.rank, 3);
	float want[] = {5, 6, 1, 2, 3, 4, 3, 4};
	expect(&out, want, 8, 0);
	free(out.data);

	/* An index outside [0, 3) is an error, not a clamp. */
	float bad[] = {0, 3, 1, 1};
	in[1].data = bad;
	Diag d;
	diag_init(&d);
	ck_assert_int_ne(ir_interp(m, in, 2, NULL, &out, NULL, &d), 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "gather index 3 out of range"));
	ir_module_free(m);
}
END_TEST

START_TEST(broadcast_in_dim)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId r = ir_param(m, "row", ty(DT_F32, 1, 3));
	ValueId c = ir_param(m, "col", ty(DT_F32, 1, 2));
	ValueId o = ir_param(m, "one", ty(DT_F32, 2, 1, 3));
	ValueId s = ir_param(m, "s", ty(DT_F32, 0));
	int64_t d1 = 1, d0 = 0, d01[] = {0, 1};
	ir_output(m, ir_broadcast(m, r, ty(DT_F32, 2, 2, 3), 1, &d1));
	ir_output(m, ir_broadcast(m, c, ty(DT_F32, 2, 2, 3), 1, &d0));
	ir_output(m, ir_broadcast(m, o, ty(DT_F32, 2, 2, 3), 2, d01));
	ir_output(m, ir_broadcast(m, s, ty(DT_F32, 1, 2), 0, NULL));
	float rv[] = {1, 2, 3}, cv[] = {10, 20}, ov[] = {4, 5, 6}, sv[] = {9};
	Tensor in[4] = {tens(ty(DT_F32, 1, 3), rv), tens(ty(DT_F32, 1, 2), cv),
	                tens(ty(DT_F32, 2, 1, 3), ov), tens(ty(DT_F32, 0), sv)};
	Tensor out[4];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, in, 4, NULL, out, NULL, &d), 0);
	float w0[] = {1, 2, 3, 1, 2, 3}, w1[] = {10, 10, 10, 20, 20, 20};
	float w2[] = {4, 5, 6, 4, 5, 6}, w3[] = {9, 9};
	expect(&out[0], w0, 6, 0);
	expect(&out[1], w1, 6, 0);
	expect(&out[2], w2, 6, 0);
	expect(&out[3], w3, 2, 0);
	for (int k = 0; k < 4; k++)
		free(out[k].data);
	ir_module_free(m);
}
END_TEST

START_TEST(transpose_reshape)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 2, 3));
	int64_t p10[] = {1, 0};
	ir_output(m, ir_transpose(m, x, p10));
	ValueId y = ir_param(m, "y", ty(DT_F32, 3, 2, 1, 3));
	int64_t p201[] = {2, 0, 1}; /* result [3, 2, 1] */
	ir_output(m, ir_transpose(m, y, p201));
	int64_t rs[] = {3, 2};
	ir_output(m, ir_reshape(m, x, 2, rs));
	float xv[] = {1, 2, 3, 4, 5, 6}, yv[] = {1, 2, 3, 4, 5, 6};
	Tensor in[2] = {tens(ty(DT_F32, 2, 2, 3), xv), tens(ty(DT_F32, 3, 2, 1, 3), yv)};
	Tensor out[3];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, in, 2, NULL, out, NULL, &d), 0);
	float w0[] = {1, 4, 2, 5, 3, 6};
	expect(&out[0], w0, 6, 0);
	/* out[k,i,j] = y[i,j,k] */
	ck_assert_int_eq(out[1].type.dims[0], 3);
	ck_assert_int_eq(out[1].type.dims[1], 2);
	float w1[] = {1, 4, 2, 5, 3, 6};
	expect(&out[1], w1, 6, 0);
	float w2[] = {1, 2, 3, 4, 5, 6};
	expect(&out[2], w2, 6, 0);
	ck_assert_int_eq(out[2].type.dims[0], 3);
	for (int k = 0; k < 3; k++)
		free(out[k].data);
	ir_module_free(m);
}
END_TEST

START_TEST(slice_concat)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 3, 4));
	int64_t st[] = {1, 1}, lim[] = {3, 3};
	ir_output(m, ir_slice(m, x, st, lim));
	ValueId a = ir_param(m, "a", ty(DT_F32, 2, 2, 1));
	ValueId b = ir_param(m, "b", ty(DT_F32, 2, 2, 2));
	ValueId ab[] = {a, b, a};
	ir_output(m, ir_concat(m, 3, ab, 1));
	ValueId ba[] = {b, b};
	ir_output(m, ir_concat(m, 2, ba, 0));
	float xv[12], av[] = {1, 2}, bv[] = {3, 4, 5, 6};
	for (int i = 0; i < 12; i++)
		xv[i] = (float)i;
	Tensor in[3] = {tens(ty(DT_F32, 2, 3, 4), xv), tens(ty(DT_F32, 2, 2, 1), av),
	                tens(ty(DT_F32, 2, 2, 2), bv)};
	Tensor out[3];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, in, 3, NULL, out, NULL, &d), 0);
	float w0[] = {5, 6, 9, 10};
	expect(&out[0], w0, 4, 0);
	float w1[] = {1, 3, 4, 1, 2, 5, 6, 2};
	expect(&out[1], w1, 8, 0);
	float w2[] = {3, 4, 5, 6, 3, 4, 5, 6};
	expect(&out[2], w2, 8, 0);
	for (int k = 0; k < 3; k++)
		free(out[k].data);
	ir_module_free(m);
}
END_TEST

START_TEST(one_hot_iota_constant)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId i = ir_param(m, "i", ty(DT_S32, 1, 3));
	ir_output(m, ir_one_hot(m, i, 3, DT_F32));
	ir_output(m, ir_iota(m, ty(DT_S32, 2, 2, 3), 1));
	ir_output(m, ir_iota(m, ty(DT_F32, 2, 2, 3), 0));
	ir_output(m, ir_const(m, 2.5, ty(DT_F32, 1, 2)));
	float iv[] = {0, 2, 5};
	Tensor in = tens(ty(DT_S32, 1, 3), iv);
	Tensor out[4];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, &in, 1, NULL, out, NULL, &d), 0);
	float w0[] = {1, 0, 0, 0, 0, 1, 0, 0, 0}; /* 5 is out of range: zeros */
	expect(&out[0], w0, 9, 0);
	float w1[] = {0, 1, 2, 0, 1, 2}, w2[] = {0, 0, 0, 1, 1, 1}, w3[] = {2.5f, 2.5f};
	expect(&out[1], w1, 6, 0);
	expect(&out[2], w2, 6, 0);
	expect(&out[3], w3, 2, 0);
	for (int k = 0; k < 4; k++)
		free(out[k].data);
	ir_module_free(m);
}
END_TEST

START_TEST(reductions)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 2, 3));
	int64_t d0 = 0, d1 = 1, d01[] = {0, 1};
	ir_output(m, ir_reduce(m, OP_REDUCE_SUM, x, 1, &d0));
	ir_output(m, ir_reduce(m, OP_REDUCE_SUM, x, 1, &d1));
	ir_output(m, ir_reduce(m, OP_REDUCE_SUM, x, 2, d01));
	ir_output(m, ir_reduce(m, OP_REDUCE_MAX, x, 1, &d1));
	ir_output(m, ir_reduce(m, OP_REDUCE_MAX, x, 1, &d0));
	float xv[] = {1, -2, 3, -4, 5, -6};
	Tensor in = tens(ty(DT_F32, 2, 2, 3), xv);
	Tensor out[5];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, &in, 1, NULL, out, NULL, &d), 0);
	float w0[] = {-3, 3, -3}, w1[] = {2, -5}, w2[] = {-3}, w3[] = {3, 5}, w4[] = {1, 5, 3};
	expect(&out[0], w0, 3, 0);
	expect(&out[1], w1, 2, 0);
	expect(&out[2], w2, 1, 0);
	ck_assert_int_eq(out[2].type.rank, 0);
	expect(&out[3], w3, 2, 0);
	expect(&out[4], w4, 3, 0);
	for (int k = 0; k < 5; k++)
		free(out[k].data);
	ir_module_free(m);
}
END_TEST

START_TEST(elementwise_unary)
{
	static const Op ops[] = {OP_NEG, OP_EXP, OP_LOG, OP_TANH, OP_SQRT, OP_RSQRT,
	                         OP_RELU, OP_GELU, OP_SIGMOID, OP_SILU};
	/* Inputs 1, 4, -1 (log/sqrt/rsqrt of -1 are NaN). */
	const float e = 2.718281828f, s1 = 0.7310585786f, sm1 = 0.2689414214f;
	/* gelu(x) = 0.5x(1+tanh(0.7978845608(x+0.044715x^3))), worked in double:
	 * x=1: 0.8411920, x=4: 3.9999298, x=-1: -0.1588080 */
	const float want[][3] = {
		{-1, -4, 1},
		{e, 54.59815003f, 1 / e},
		{0, 1.386294361f, NAN},
		{0.7615941560f, 0.9993292997f, -0.7615941560f},
		{1, 2, NAN},
		{1, 0.5f, NAN},
		{1, 4, 0},
		{0.8411920f, 3.9999298f, -0.1588080f},
		{s1, 0.9820137900f, sm1},
		{s1, 4 * 0.9820137900f, -sm1},
	};
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		Module *m = ir_module_new("t", LEVEL_GRAPH);
		ValueId x = ir_param(m, "x", ty(DT_F32, 1, 3));
		ir_output(m, ir_unary(m, ops[k], x));
		float xv[] = {1, 4, -1};
		Tensor in = tens(ty(DT_F32, 1, 3), xv), out;
		run1(m, &in, 1, 0, &out);
		for (int i = 0; i < 3; i++)
			ck_assert_msg(fabsf(out.data[i] - want[k][i]) <= 2e-6f * (1 + fabsf(want[k][i])) ||
			              (isnan(want[k][i]) && isnan(out.data[i])),
			              "%s(%g) = %.9g, want %.9g", op_name(ops[k]), (double)xv[i],
			              (double)out.data[i], (double)want[k][i]);
		free(out.data);
		ir_module_free(m);
	}
}
END_TEST

START_TEST(elementwise_binary_select_convert)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_F32, 1, 3));
	ValueId b = ir_param(m, "b", ty(DT_F32, 1, 3));
	static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_POW,
	                         OP_CMP_GT, OP_CMP_EQ};
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
		ir_output(m, ir_binary(m, ops[k], a, b));
	ValueId gt = ir_binary(m, OP_CMP_GT, a, b);
	ir_output(m, ir_select(m, gt, a, b));
	ir_output(m, ir_convert(m, a, DT_S32));
	ir_output(m, ir_convert(m, a, DT_PRED));
	float av[] = {2, -2.75f, 0}, bv[] = {1, 2, 0};
	Tensor in[2] = {tens(ty(DT_F32, 1, 3), av), tens(ty(DT_F32, 1, 3), bv)};
	Tensor out[12];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, in, 2, NULL, out, NULL, &d), 0);
	const float want[12][3] = {
		{3, -0.75f, 0}, {1, -4.75f, 0},  {2, -5.5f, 0},
		{2, -1.375f, NAN}, {2, 2, 0},    {1, -2.75f, 0},
		{2, 7.5625f, 1}, {1, 0, 0},      {0, 0, 1},
		{2, 2, 0},       {2, -2, 0},     {1, 1, 0},
	};
	for (int k = 0; k < 12; k++)
		expect(&out[k], want[k], 3, 1e-6f);
	for (int k = 0; k < 12; k++)
		free(out[k].data);
	ir_module_free(m);
}
END_TEST

START_TEST(collectives_single_chip)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	m->mesh.naxes = 2;
	m->mesh.axes[0] = (MeshAxis){"data", 4, 1};
	m->mesh.axes[1] = (MeshAxis){"one", 1, 1};
	ValueId x = ir_param(m, "x", ty(DT_F32, 1, 4));
	ir_output(m, ir_collective(m, OP_ALL_REDUCE, x, 1u, 0));
	ir_output(m, ir_collective(m, OP_COLLECTIVE_PERMUTE, x, 1u, 0));
	ir_output(m, ir_collective(m, OP_ALL_GATHER, x, 2u, 0));
	ir_output(m, ir_collective(m, OP_ALL_TO_ALL, x, 2u, 0));
	float xv[] = {1, 2, 3, 4};
	Tensor in = tens(ty(DT_F32, 1, 4), xv), out[4];
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, &in, 1, NULL, out, NULL, &d), 0);
	for (int k = 0; k < 4; k++) {
		expect(&out[k], xv, 4, 0);
		free(out[k].data);
	}
	/* all_gather over the 4-chip axis cannot run on one chip. */
	ir_output(m, ir_collective(m, OP_ALL_GATHER, x, 1u, 0));
	Tensor out5[5];
	diag_init(&d);
	ck_assert_int_ne(ir_interp(m, &in, 1, NULL, out5, NULL, &d), 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "all_gather"));
	ir_module_free(m);
}
END_TEST

START_TEST(tiled_dma_and_async_collective)
{
	/* At the tiled level a DMA and an async all_reduce pair pass the value
	 * through unchanged. */
	Module *m = ir_module_new("t", LEVEL_TILED);
	m->mesh.naxes = 1;
	m->mesh.axes[0] = (MeshAxis){"data", 2, 1};
	ValueId x = ir_param(m, "x", ty(DT_F32, 1, 3));
	Inst in;
	memset(&in, 0, sizeof in);
	in.op = OP_DMA_START;
	in.nargs = 1;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = x;
	in.type = ty(DT_F32, 1, 3);
	ValueId s = ir_append(m, &in);
	ir_set_str(m, s, "to", "vmem");
	in.op = OP_DMA_DONE;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = s;
	ValueId dn = ir_append(m, &in);
	in.op = OP_COLL_START;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = dn;
	ValueId cs = ir_append(m, &in);
	const char *axes[] = {"data"};
	ir_set_names(m, cs, "axes", 1, axes);
	ir_set_str(m, cs, "op", "all_reduce");
	in.op = OP_COLL_DONE;
	in.args = arena_alloc(&m->arena, sizeof(ValueId));
	in.args[0] = cs;
	ir_output(m, ir_append(m, &in));
	float xv[] = {1, -2, 3};
	Tensor t = tens(ty(DT_F32, 1, 3), xv), out;
	run1(m, &t, 1, 0, &out);
	expect(&out, xv, 3, 0);
	free(out.data);
	/* the same pair around an all_gather over 2 chips cannot run */
	ir_set_str(m, cs, "op", "all_gather");
	int64_t d0 = 0;
	ir_set_ints(m, cs, "dim", 1, &d0);
	m->insts[cs].type.dims[0] = 6;
	m->insts[cs + 1].type.dims[0] = 6;
	Diag d;
	diag_init(&d);
	ck_assert_int_ne(ir_interp(m, &t, 1, NULL, &out, NULL, &d), 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "all_gather"));
	ir_module_free(m);
}
END_TEST

START_TEST(input_errors)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 1, 4));
	ir_output(m, ir_unary(m, OP_NEG, x));
	float xv[] = {1, 2, 3, 4};
	Tensor in[3] = {tens(ty(DT_F32, 1, 3), xv), tens(ty(DT_F32, 1, 4), xv),
	                tens(ty(DT_F32, 1, 4), xv)};
	Tensor out;
	Diag d;
	diag_init(&d);
	ck_assert_int_ne(ir_interp(m, in, 1, NULL, &out, NULL, &d), 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "wrong shape"));
	diag_init(&d);
	ck_assert_int_ne(ir_interp(m, in + 1, 2, NULL, &out, NULL, &d), 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "1 parameters, given 2 inputs"));
	ir_module_free(m);
}
END_TEST

START_TEST(values_returned)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 1, 2));
	ValueId y = ir_unary(m, OP_NEG, x);
	ir_output(m, ir_binary(m, OP_MUL, y, y));
	float xv[] = {3, -1};
	Tensor in = tens(ty(DT_F32, 1, 2), xv), out, *vals;
	Diag d;
	diag_init(&d);
	ck_assert_int_eq(ir_interp(m, &in, 1, NULL, &out, &vals, &d), 0);
	float wy[] = {-3, 1}, wo[] = {9, 1};
	expect(&vals[y], wy, 2, 0);
	expect(&out, wo, 2, 0);
	for (int i = 0; i < m->ninsts; i++)
		free(vals[i].data);
	free(vals);
	free(out.data);
	ir_module_free(m);
}
END_TEST

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

START_TEST(bf16_rounding)
{
	/* bf16 keeps 7 mantissa bits: near 1 the spacing is 2^-7. */
	ck_assert_float_eq(bf16_round(1.0f), 1.0f);
	ck_assert_float_eq(bf16_round(1.0f + 0x1p-8f), 1.0f);                 /* tie -> even 1 */
	ck_assert_float_eq(bf16_round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);   /* tie -> even */
	ck_assert_float_eq(bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f); /* above */
	ck_assert_float_eq(bf16_round(1.0f + 0x1p-8f - 0x1p-20f), 1.0f);     /* below */
	ck_assert_float_eq(bf16_round(-1.0f - 3 * 0x1p-8f), -1.0f - 0x1p-6f);
	/* The largest bf16 is 0x7f7f0000; FLT_MAX is past the halfway point to
	 * 2^128 and rounds to infinity, as does anything from 0x7f7f8000 up. */
	ck_assert_uint_eq(bits(bf16_round(FLT_MAX)), 0x7f800000u);
	ck_assert_uint_eq(bits(bf16_round(from_bits(0x7f7f8000u))), 0x7f800000u);
	ck_assert_uint_eq(bits(bf16_round(from_bits(0x7f7f7fffu))), 0x7f7f0000u);
	ck_assert_uint_eq(bits(bf16_round(-FLT_MAX)), 0xff800000u);
	ck_assert(isinf(bf16_round(INFINITY)));
	/* NaN stays NaN, even one whose payload lives only in the low bits. */
	ck_assert(isnan(bf16_round(NAN)));
	ck_assert(isnan(bf16_round(from_bits(0x7f800001u))));
	ck_assert(isnan(bf16_round(from_bits(0xff800001u))));
	/* Signed zero and subnormals. */
	ck_assert_uint_eq(bits(bf16_round(-0.0f)), 0x80000000u);
	ck_assert_uint_eq(bits(bf16_round(from_bits(0x00018000u))), 0x00020000u);
}
END_TEST

START_TEST(bf16_interp_option)
{
	Module *m = ir_module_new("t", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_F32, 2, 1, 1));
	ValueId b = ir_param(m, "b", ty(DT_F32, 2, 1, 1));
	ir_output(m, ir_matmul(m, a, b));      /* f32 dot: inputs still rounded */
	ValueId ab = ir_convert(m, a, DT_BF16);
	ir_output(m, ir_unary(m, OP_NEG, ab)); /* bf16 result rounded */
	float av[] = {1.0f + 0x1p-8f + 0x1p-20f}, bv[] = {1.0f + 0x1p-8f};
	Tensor in[2] = {tens(ty(DT_F32, 2, 1, 1), av), tens(ty(DT_F32, 2, 1, 1), bv)};
	Tensor out[2];
	Diag d;
	diag_init(&d);
	InterpOptions o = {1};
	ck_assert_int_eq(ir_interp(m, in, 2, &o, out, NULL, &d), 0);
	ck_assert_float_eq(out[0].data[0], (1.0f + 0x1p-7f) * 1.0f);
	ck_assert_float_eq(out[1].data[0], -(1.0f + 0x1p-7f));
	free(out[0].data);
	free(out[1].data);
	o.bf16_round = 0;
	ck_assert_int_eq(ir_interp(m, in, 2, &o, out, NULL, &d), 0);
	ck_assert_float_eq(out[0].data[0], av[0] * bv[0]);
	ck_assert_float_eq(out[1].data[0], -av[0]);
	free(out[0].data);
	free(out[1].data);
	ir_module_free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ir_interp");
	TCase *tc = tcase_create("ops");
	tcase_add_test(tc, matmul_2x3_3x2);
	tcase_add_test(tc, dot_batch_dims);
	tcase_add_test(tc, dot_batch_not_leading);
	tcase_add_test(tc, dot_two_contracting_and_free_order);
	tcase_add_test(tc, softmax_rows);
	tcase_add_test(tc, softmax_large_values);
	tcase_add_test(tc, gather_rows);
	tcase_add_test(tc, broadcast_in_dim);
	tcase_add_test(tc, transpose_reshape);
	tcase_add_test(tc, slice_concat);
	tcase_add_test(tc, one_hot_iota_constant);
	tcase_add_test(tc, reductions);
	tcase_add_test(tc, elementwise_unary);
	tcase_add_test(tc, elementwise_binary_select_convert);
	tcase_add_test(tc, collectives_single_chip);
	tcase_add_test(tc, tiled_dma_and_async_collective);
	tcase_add_test(tc, input_errors);
	tcase_add_test(tc, values_returned);
	tcase_add_test(tc, bf16_rounding);
	tcase_add_test(tc, bf16_interp_option);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
