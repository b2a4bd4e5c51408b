/*
 * The MXU models: the PE-level reference computes the right product (against
 * a plain triple loop), and the fast tile model agrees with it cycle for cycle
 * on random shapes and arrays up to 32x32, for every dataflow. A few cycle
 * counts are also worked out by hand from the array's geometry.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "sim/mxu.h"

/* Small deterministic generator (tests must be reproducible). */
static uint64_t rng_state;
static uint32_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

/* Small integers: every partial sum is exact in f32, whatever the order. */
static float *rand_mat(int n)
{
	float *p = malloc((size_t)n * sizeof *p);
	for (int i = 0; i < n; i++)
		p[i] = (float)rnd_in(-4, 4);
	return p;
}

static void plain_matmul(int M, int K, int N, const float *A, const float *B, float *C)
{
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++) {
			float s = 0;
			for (int k = 0; k < K; k++)
				s += A[m * K + k] * B[k * N + n];
			C[m * N + n] = s;
		}
}

static void check_case(MxuDataflow df, int R, int C, int M, int K, int N)
{
	float *A = rand_mat(M * K), *B = rand_mat(K * N);
	float *want = malloc((size_t)M * N * sizeof(float));
	float *got = malloc((size_t)M * N * sizeof(float));
	plain_matmul(M, K, N, A, B, want);
	int64_t upd = 0;
	int64_t cyc = mxu_ref_matmul(df, R, C, M, K, N, A, B, got, &upd);
	ck_assert_int_gt(cyc, 0);
	ck_assert_int_ge(upd, cyc * R * C);
	for (int i = 0; i < M * N; i++)
		ck_assert_msg(got[i] == want[i], "%s %dx%d array, M=%d K=%d N=%d: C[%d] = %g, "
		              "want %g", mxu_dataflow_name(df), R, C, M, K, N, i,
		              (double)got[i], (double)want[i]);
	int64_t fast = mxu_cycles(df, R, C, M, K, N);
	ck_assert_msg(fast == cyc, "%s %dx%d array, M=%d K=%d N=%d: fast %lld, reference %lld",
	              mxu_dataflow_name(df), R, C, M, K, N, (long long)fast, (long long)cyc);
	free(A);
	free(B);
	free(want);
	free(got);
}

START_TEST(ref_product_and_cycles_random)
{
	MxuDataflow df = (MxuDataflow)_i;
	rng_state = 12345 + (uint64_t)_i;
	for (int trial = 0; trial < 150; trial++) {
		int R = rnd_in(1, 32), C = rnd_in(1, 32);
		if (trial % 5 == 0)
			C = R; /* square arrays too */
		/* shapes around and across the array size: one tile, several folds,
		 * streams shorter and longer than the array */
		int M = rnd_in(1, 3 * R + 5), K = rnd_in(1, 3 * R + 3), N = rnd_in(1, 3 * C + 3);
		check_case(df, R, C, M, K, N);
	}
}
END_TEST

START_TEST(ref_edge_shapes)
{
	MxuDataflow df = (MxuDataflow)_i;
	rng_state = 99;
	int sizes[] = {1, 2, 7, 8, 32};
	for (int a = 0; a < 5; a++)
		for (int b = 0; b < 5; b++) {
			int R = sizes[a], C = sizes[b];
			check_case(df, R, C, 1, 1, 1);
			check_case(df, R, C, R, R, C);         /* exactly one tile */
			check_case(df, R, C, 2 * R + 1, R + 1, C + 1); /* one past the array */
			check_case(df, R, C, 1, 2 * R, 2 * C); /* a one-row stream */
		}
}
END_TEST

/* Worked out by hand for weight-stationary on an R x C array holding one full
 * tile: the weight loader writes array row 0 in cycle 0; input row 0 enters
 * array row 0 in cycle 1; the last input row (M-1) enters in cycle M, reaches
 * the bottom row R-1 cycles later and the last column C-1 cycles after that.
 * Cycles = M + (R-1) + (C-1) + 1. */
START_TEST(ws_single_tile_by_hand)
{
	ck_assert_int_eq(mxu_cycles(MXU_WS, 4, 4, 4, 4, 4), 4 + 3 + 3 + 1);
	ck_assert_int_eq(mxu_cycles(MXU_WS, 128, 128, 8, 128, 128), 8 + 127 + 127 + 1);
	float A[2 * 3], B[3 * 2], Cm[4];
	for (int i = 0; i < 6; i++)
		A[i] = (float)(i + 1), B[i] = (float)(i % 3);
	ck_assert_int_eq(mxu_ref_matmul(MXU_WS, 3, 2, 2, 3, 2, A, B, Cm, NULL), 2 + 2 + 1 + 1);
}
END_TEST

/* Output-stationary, one tile: operands for PE(i,j)'s step k arrive in cycle
 * k+i+j; the last PE (R-1,C-1) finishes in cycle K-1+R-1+C-1 and its column
 * bus reads it in the next cycle. Cycles = K + R + C - 1. */
START_TEST(os_single_tile_by_hand)
{
	ck_assert_int_eq(mxu_cycles(MXU_OS, 4, 4, 4, 10, 4), 10 + 4 + 4 - 1);
	float A[4 * 10], B[10 * 4], Cm[16];
	for (int i = 0; i < 40; i++)
		A[i] = 1, B[i] = 2;
	ck_assert_int_eq(mxu_ref_matmul(MXU_OS, 4, 4, 4, 10, 4, A, B, Cm, NULL), 10 + 4 + 4 - 1);
	ck_assert(Cm[5] == 20.0f);
}
END_TEST

/* Long streams hide weight loading, fill and drain: utilisation tends to 1.
 * With a stream shorter than the array, a tile cannot start before the
 * previous one's weights have been swapped out of the whole row, so the
 * array is busy at most M of every max(M, R, C) cycles. */
START_TEST(ws_overlap_and_padding)
{
	double u = mxu_utilization(MXU_WS, 128, 128, 100000, 1024, 1024);
	ck_assert_msg(u > 0.99 && u <= 1.0, "long stream utilisation %g", u);
	double short_u = mxu_utilization(MXU_WS, 128, 128, 8, 4096, 4096);
	ck_assert_msg(short_u < 8.0 / 128 + 1e-3, "8-row stream utilisation %g", short_u);
	/* one column past the array: twice the folds, about twice the time */
	int64_t fit = mxu_cycles(MXU_WS, 128, 128, 4096, 1024, 1024);
	int64_t over = mxu_cycles(MXU_WS, 128, 128, 4096, 1024, 1025);
	ck_assert_int_gt(over, fit + fit / 10);
	ck_assert_int_eq(mxu_folds(MXU_WS, 128, 128, 4096, 1024, 1025), 8 * 9);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mxu");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, ref_product_and_cycles_random, 0, MXU_DATAFLOW_COUNT);
	tcase_add_loop_test(tc, ref_edge_shapes, 0, MXU_DATAFLOW_COUNT);
	tcase_add_test(tc, ws_single_tile_by_hand);
	tcase_add_test(tc, os_single_tile_by_hand);
	tcase_add_test(tc, ws_overlap_and_padding);
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
