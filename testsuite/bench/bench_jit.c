/*
 * JIT benchmark: compile time per kernel kind, and single-threaded GFLOP/s of
 * the JIT matmul against a naive C triple loop and OpenBLAS sgemm, measured
 * in the same run on the same inputs.
 *
 *   OPENBLAS_NUM_THREADS=1 bench_jit [--quick]
 *
 * On a CPU that OpenBLAS's DYNAMIC_ARCH build does not recognise, it runs its
 * generic SSE3 (Prescott) kernels; set OPENBLAS_CORETYPE to the CPU's family
 * (SkylakeX for AVX-512, Haswell for AVX2) to compare with its real kernels.
 * The kernel set in use is printed.
 *
 * Each timing is the best of several repetitions (at least 3, and at least
 * 0.3 s in total; the naive loop once above 512^3). OpenBLAS is held to one
 * thread. The JIT result is compared with OpenBLAS's (max |difference| over
 * max |value|) so a fast wrong kernel shows. --quick: 512^3 only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler/llvm/codegen.h"
#include "ir/ir.h"

#ifdef PODSIM_HAVE_CBLAS
#include <cblas.h>
#endif

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static Type ty2(int a, int b)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = DT_F32;
	t.rank = 2;
	t.dims[0] = a;
	t.dims[1] = b;
	return t;
}

static void tiled(Module *m)
{
	m->level = LEVEL_TILED;
	for (int v = 0; v < m->ninsts; v++) {
		m->insts[v].unit = ir_ops[m->insts[v].op].unit;
		m->insts[v].mem = MEM_VMEM;
	}
}

static void naive(int M, int N, int K, const float *A, const float *B, float *C)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			float s = 0.0f;
			for (int k = 0; k < K; k++)
				s += A[(size_t)i * K + k] * B[(size_t)k * N + j];
			C[(size_t)i * N + j] = s;
		}
}

/* Best time of fn over reps until 0.3 s and 3 reps have passed. */
#define TIME_BEST(out, stmt)                                              \
	do {                                                              \
		double t_start = now_s(), best_ = 1e30;                   \
		for (int rep = 0; rep < 3 || now_s() - t_start < 0.3; rep++) { \
			double t0_ = now_s();                             \
			stmt;                                             \
			double dt_ = now_s() - t0_;                       \
			best_ = dt_ < best_ ? dt_ : best_;                \
			if (rep >= 50)                                    \
				break;                                    \
		}                                                         \
		(out) = best_;                                            \
	} while (0)

static Jit *matmul_jit(int M, int N, int K, const int64_t *tile, const CodegenOptions *co,
                       Module **mout)
{
	Module *m = ir_module_new("mm", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty2(M, K));
	ValueId b = ir_param(m, "b", ty2(K, N));
	ValueId c = ir_matmul(m, a, b);
	ir_output(m, c);
	tiled(m);
	if (tile) {
		Tiling *t = &m->insts[c].tiling;
		t->ntile = 3;
		for (int i = 0; i < 3; i++)
			t->tile[i] = tile[i];
		t->order[0] = 1; /* n, k, m: a packed B panel is reused by every row block */
		t->order[1] = 2;
		t->order[2] = 0;
	}
	Diag d;
	diag_init(&d);
	Jit *j = jit_compile(m, co, &d);
	if (!j) {
		fprintf(stderr, "bench_jit: %s\n", d.msg);
		exit(1);
	}
	*mout = m;
	return j;
}

static void bench_matmul(int M, int N, int K, int quick)
{
	float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
	float *C = malloc(sizeof(float) * (size_t)M * N), *R = malloc(sizeof(float) * (size_t)M * N);
	srand(1);
	for (size_t i = 0; i < (size_t)M * K; i++)
		A[i] = (float)rand() / (float)RAND_MAX - 0.5f;
	for (size_t i = 0; i < (size_t)K * N; i++)
		B[i] = (float)rand() / (float)RAND_MAX - 0.5f;
	double flop = 2.0 * M * N * K;
	printf("\nmatmul %dx%dx%d (M x N x K), f32, 1 thread\n", M, N, K);

	double t_blas = 0;
#ifdef PODSIM_HAVE_CBLAS
	TIME_BEST(t_blas, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A,
	                              K, B, N, 0.0f, R, N));
	printf("  %-34s %8.2f GFLOP/s  %9.3f ms\n", "OpenBLAS cblas_sgemm", flop / t_blas * 1e-9,
	       t_blas * 1e3);
#else
	naive(M, N, K, A, B, R);
	printf("  (no OpenBLAS in this build)\n");
#endif
	if (!quick || flop <= 2.0 * 512 * 512 * 512) {
		/* one repetition when it takes seconds */
		double t;
		if (flop > 2.0 * 512 * 512 * 512) {
			double t0 = now_s();
			naive(M, N, K, A, B, C);
			t = now_s() - t0;
		} else {
			TIME_BEST(t, naive(M, N, K, A, B, C));
		}
		printf("  %-34s %8.2f GFLOP/s  %9.3f ms\n", "naive C triple loop (i,j,k)",
		       flop / t * 1e-9, t * 1e3);
	}

	struct {
		const char *name;
		int64_t tile[3];
		int use_tile, vw, mr, nv;
	} cfg[] = {
		{"JIT, default tiling", {0, 0, 0}, 0, 0, 0, 0},
		{"JIT, tile 64x256x256", {64, 256, 256}, 1, 0, 0, 0},
		{"JIT, tile 128x128x512", {128, 128, 512}, 1, 0, 0, 0},
		{"JIT, default tiling, VL=8 6x16", {0, 0, 0}, 0, 8, 6, 2},
		{"JIT, default tiling, VL=16 12x32", {0, 0, 0}, 0, 16, 12, 2},
	};
	for (size_t q = 0; q < sizeof cfg / sizeof cfg[0]; q++) {
		CodegenOptions co;
		codegen_default_options(&co);
		co.vec_width = cfg[q].vw;
		co.mr = cfg[q].mr;
		co.nr_vecs = cfg[q].nv;
		Module *m;
		Jit *j = matmul_jit(M, N, K, cfg[q].use_tile ? cfg[q].tile : NULL, &co, &m);
		float *bufs[3] = {A, B, C};
		double t;
		TIME_BEST(t, jit_run(j, bufs));
		double err = 0, rmax = 0;
		for (size_t i = 0; i < (size_t)M * N; i++) {
			double e = fabs((double)C[i] - R[i]);
			err = e > err ? e : err;
			rmax = fabs((double)R[i]) > rmax ? fabs((double)R[i]) : rmax;
		}
		err = rmax > 0 ? err / rmax : err;
		char pct[32] = "";
		if (t_blas > 0)
			snprintf(pct, sizeof pct, "%5.1f%% of BLAS", 100.0 * t_blas / t);
		printf("  %-34s %8.2f GFLOP/s  %9.3f ms  %s  (compile %.1f ms, max|err|/max|ref| %.1e)\n",
		       cfg[q].name, flop / t * 1e-9, t * 1e3, pct, jit_compile_ms(j), err);
		jit_free(j);
		ir_module_free(m);
	}
	free(A);
	free(B);
	free(C);
	free(R);
}

/* Compile time of a one-kernel module of each kind. */
static void bench_compile(void)
{
	printf("JIT compile time per kernel (lowering + default<O2> + machine code), ms\n");
	for (int kind = 0; kind < 6; kind++) {
		Module *m = ir_module_new("k", LEVEL_GRAPH);
		ValueId x = ir_param(m, "x", ty2(256, 256));
		ValueId y = ir_param(m, "y", ty2(256, 256));
		const char *name = "";
		int64_t d1 = 1, perm[2] = {1, 0};
		switch (kind) {
		case 0: name = "matmul"; ir_output(m, ir_matmul(m, x, y)); break;
		case 1:
			name = "fused elementwise (add, gelu, mul)";
			ir_output(m, ir_binary(m, OP_MUL, ir_unary(m, OP_GELU, ir_binary(m, OP_ADD, x, y)), x));
			break;
		case 2: name = "reduce_sum"; ir_output(m, ir_reduce(m, OP_REDUCE_SUM, x, 1, &d1)); break;
		case 3: name = "softmax"; ir_output(m, ir_softmax(m, x, 1)); break;
		case 4: name = "transpose"; ir_output(m, ir_transpose(m, x, perm)); break;
		case 5: name = "concat"; ir_output(m, ir_concat(m, 2, (ValueId[]){x, y}, 0)); break;
		}
		tiled(m);
		CodegenOptions co;
		codegen_default_options(&co);
		double best = 1e30;
		for (int r = 0; r < 5; r++) {
			Diag d;
			diag_init(&d);
			Jit *j = jit_compile(m, &co, &d);
			if (!j) {
				fprintf(stderr, "bench_jit: %s\n", d.msg);
				exit(1);
			}
			best = jit_compile_ms(j) < best ? jit_compile_ms(j) : best;
			jit_free(j);
		}
		printf("  %-36s %7.2f ms\n", name, best);
		ir_module_free(m);
	}
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
#ifdef PODSIM_HAVE_CBLAS
	openblas_set_num_threads(1);
	/* OpenBLAS picks its kernels from the CPU it detects; a CPU it does not
	 * know falls back to old SSE kernels. Say which, so the comparison is
	 * read right (OPENBLAS_CORETYPE=SkylakeX or Haswell overrides it). */
	printf("OpenBLAS kernels: %s (OPENBLAS_CORETYPE=%s)\n\n", openblas_get_corename(),
	       getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
#endif
	bench_compile();
	bench_matmul(512, 512, 512, quick);
	if (!quick) {
		bench_matmul(256, 256, 256, quick);
		bench_matmul(1024, 1024, 1024, quick);
		bench_matmul(500, 700, 300, quick);
	}
	return 0;
}
