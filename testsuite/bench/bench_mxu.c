/*
 * PE-updates per second of the PE-level MXU reference (each cycle steps every
 * PE of the array once), per dataflow, on a 32x32 array and a 128x128 array.
 * Usage: bench_mxu [n]  (matmul n x n x n, default 256)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sim/mxu.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 256;
	float *A = malloc((size_t)n * n * sizeof *A), *B = malloc((size_t)n * n * sizeof *B);
	float *C = malloc((size_t)n * n * sizeof *C);
	if (!A || !B || !C)
		return 1;
	for (int i = 0; i < n * n; i++)
		A[i] = (float)(i % 7) - 3, B[i] = (float)(i % 5) - 2;
	int sizes[] = {32, 128};
	for (int s = 0; s < 2; s++)
		for (int df = 0; df < MXU_DATAFLOW_COUNT; df++) {
			int64_t upd = 0;
			double t0 = now();
			int64_t cyc = mxu_ref_matmul((MxuDataflow)df, sizes[s], sizes[s], n, n, n, A, B,
			                             C, &upd);
			double t = now() - t0;
			printf("bench_mxu: %s %dx%d, %dx%dx%d: %lld cycles, %.3g PE-updates in %.3f s "
			       "= %.3g PE-updates/s\n",
			       mxu_dataflow_name((MxuDataflow)df), sizes[s], sizes[s], n, n, n,
			       (long long)cyc, (double)upd, t, (double)upd / t);
		}
	free(A);
	free(B);
	free(C);
	return 0;
}
