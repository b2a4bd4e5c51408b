/*
 * The MXU's two models (see mxu.h).
 *
 * The reference keeps, per PE, the registers the hardware has: the operand
 * passed to the right, the partial sum passed down, and (weight-stationary)
 * an active and a shadow weight, or (output-stationary) an accumulator and an
 * output register. Every value carries a tag (tile, row) so that the
 * reference checks the invariants the fast model relies on: a PE never uses
 * a weight of the wrong tile, partial sums meet their operands, an output
 * register is read before it is overwritten. A broken invariant is a bug in
 * the model and aborts.
 *
 * Each cycle of the weight-stationary reference, in order:
 *   1. the streamer decides whether row m of a tile enters array row 0 this
 *      cycle (the first row of a tile only if PE(0,0)'s shadow register holds
 *      that tile); array row i receives the same input row i cycles later
 *      (the skew buffers);
 *   2. every PE computes from its neighbours' registers of the previous
 *      cycle; the first row of a tile swaps shadow into active as it passes;
 *      the bottom row's partial sums are results;
 *   3. the weight loader writes one array row of the next tile's weights into
 *      the shadow registers, if every shadow register in that row is free.
 * The fast model is the closed form of that schedule (docs/hardware.md):
 *   cycles = (T - 1) * max(M, rows, cols) + M + rows + n_last - 1
 * for T = ceil(K/rows) * ceil(N/cols) tiles, n_last the used columns of the
 * last tile.
 */
#include "mxu.h"

#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

const char *mxu_dataflow_name(MxuDataflow df)
{
	switch (df) {
	case MXU_WS: return "weight-stationary";
	case MXU_OS: return "output-stationary";
	case MXU_IS: return "input-stationary";
	case MXU_DATAFLOW_COUNT: break;
	}
	return "?";
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t max3(int64_t a, int64_t b, int64_t c)
{
	int64_t m = a > b ? a : b;
	return m > c ? m : c;
}

static int64_t os_fast(int R, int C, int64_t M, int64_t K, int64_t N);

/* Weight-stationary: the stationary operand is K x N (folded rows x cols),
 * M rows stream. */
static int64_t ws_cycles(int rows, int cols, int64_t M, int64_t K, int64_t N)
{
	int64_t nn = cdiv(N, cols);
	int64_t T = cdiv(K, rows) * nn;
	int64_t n_last = N - (nn - 1) * cols;
	return (T - 1) * max3(M, rows, cols) + M + rows + n_last - 1;
}

int64_t mxu_cycles(MxuDataflow df, int rows, int cols, int64_t M, int64_t K, int64_t N)
{
	if (rows <= 0 || cols <= 0 || M <= 0 || K <= 0 || N <= 0)
		return 0;
	switch (df) {
	case MXU_WS:
		return ws_cycles(rows, cols, M, K, N);
	case MXU_IS:
		return ws_cycles(rows, cols, N, K, M);
	case MXU_OS:
		return os_fast(rows, cols, M, K, N);
	case MXU_DATAFLOW_COUNT: break;
	}
	ir_die("bad dataflow %d", (int)df);
}

int64_t mxu_folds(MxuDataflow df, int rows, int cols, int64_t M, int64_t K, int64_t N)
{
	switch (df) {
	case MXU_WS: return cdiv(K, rows) * cdiv(N, cols);
	case MXU_IS: return cdiv(K, rows) * cdiv(M, cols);
	case MXU_OS: return cdiv(M, rows) * cdiv(N, cols);
	case MXU_DATAFLOW_COUNT: break;
	}
	ir_die("bad dataflow %d", (int)df);
}

double mxu_utilization(MxuDataflow df, int rows, int cols, int64_t M, int64_t K, int64_t N)
{
	int64_t c = mxu_cycles(df, rows, cols, M, K, N);
	if (c <= 0)
		return 0;
	return (double)M * (double)K * (double)N / ((double)rows * cols * (double)c);
}

/* ---- Weight-stationary reference -----------------------------------------*/

typedef struct Tag {
	int valid;
	int tile, m;
} Tag;

typedef struct WsPe {
	float a;          /* operand register, read by the PE to the right */
	Tag at;
	float p;          /* partial sum register, read by the PE below */
	Tag pt;
	float w, wsh;     /* active and shadow weight */
	int act_tile;     /* tile of w, -1 none */
	int sh_full, sh_tile;
} WsPe;

/* Y[Mr, Nc] = X[Mr, K] x S[K, Nc]; X and S are read through strides so that
 * the input-stationary dataflow can pass transposes without copying. */
typedef struct Mat {
	const float *p;
	int64_t rs, cs; /* row and column strides, elements */
} Mat;

static float at(Mat a, int64_t r, int64_t c) { return a.p[r * a.rs + c * a.cs]; }

static int64_t ws_ref(int R, int C, int Mr, int K, int Nc, Mat X, Mat S, float *Y,
                      int64_t yrs, int64_t ycs, int64_t *pe_updates)
{
	int nk = (int)cdiv(K, R), nn = (int)cdiv(Nc, C), T = nk * nn;
	WsPe *pe = calloc((size_t)R * C, sizeof *pe);
	Tag *ring = calloc((size_t)R, sizeof *ring); /* row-0 injections, by cycle % R */
	if (!pe || !ring) {
		free(pe);
		free(ring);
		return -1;
	}
	for (int i = 0; i < R * C; i++)
		pe[i].act_tile = pe[i].sh_tile = -1;
	for (int m = 0; m < Mr; m++)
		for (int n = 0; n < Nc; n++)
			Y[m * yrs + n * ycs] = 0;
	/* tile t: n fold t / nk (outer), k fold t % nk (inner) */
#define K0(t) (((t) % nk) * R)
#define N0(t) (((t) / nk) * C)
#define KUSED(t) (K - K0(t) < R ? K - K0(t) : R)
#define NUSED(t) (Nc - N0(t) < C ? Nc - N0(t) : C)
	int64_t expect = 0, got = 0, last = -1;
	for (int t = 0; t < T; t++)
		expect += (int64_t)Mr * NUSED(t);
	int next_t = 0, next_m = 0; /* streamer */
	int load_t = 0, load_row = 0; /* loader */
	int64_t c = 0;
	for (; got < expect; c++) {
		/* 1. streamer */
		Tag in = {0, 0, 0};
		if (next_t < T) {
			const WsPe *p00 = &pe[0];
			if (next_m > 0 || (p00->sh_full && p00->sh_tile == next_t)) {
				in = (Tag){1, next_t, next_m};
				if (++next_m == Mr)
					next_m = 0, next_t++;
			}
		}
		ring[c % R] = in;
		/* 2. PEs, bottom-right first so neighbours still hold last cycle's values */
		for (int i = R - 1; i >= 0; i--) {
			for (int j = C - 1; j >= 0; j--) {
				WsPe *q = &pe[i * C + j];
				Tag dt;
				float dv;
				if (j == 0) {
					dt = c - i >= 0 ? ring[(c - i) % R] : (Tag){0, 0, 0};
					dv = dt.valid && i < KUSED(dt.tile)
					             ? at(X, dt.m, K0(dt.tile) + i) : 0.0f;
				} else {
					dt = q[-1].at;
					dv = q[-1].a;
				}
				Tag pt = i > 0 ? q[-C].pt : (Tag){0, 0, 0};
				float pin = i > 0 ? q[-C].p : 0.0f;
				if (!dt.valid) {
					if (pt.valid)
						ir_die("ws ref: partial sum without operand at PE(%d,%d)", i, j);
					q->at.valid = q->pt.valid = 0;
					continue;
				}
				if (i > 0 && (!pt.valid || pt.tile != dt.tile || pt.m != dt.m))
					ir_die("ws ref: partial sum misaligned at PE(%d,%d)", i, j);
				if (dt.m == 0) {
					if (!q->sh_full || q->sh_tile != dt.tile)
						ir_die("ws ref: tile %d reached PE(%d,%d) before its weight",
						       dt.tile, i, j);
					q->w = q->wsh;
					q->act_tile = dt.tile;
					q->sh_full = 0;
				}
				if (q->act_tile != dt.tile)
					ir_die("ws ref: wrong weight at PE(%d,%d)", i, j);
				q->p = pin + dv * q->w;
				q->pt = dt;
				q->a = dv;
				q->at = dt;
				if (i == R - 1 && j < NUSED(dt.tile)) {
					Y[(int64_t)dt.m * yrs + (int64_t)(N0(dt.tile) + j) * ycs] += q->p;
					got++;
					last = c;
				}
			}
		}
		/* 3. weight loader */
		if (load_t < T) {
			WsPe *row = &pe[load_row * C];
			int free_row = 1;
			for (int j = 0; j < C && free_row; j++)
				free_row = !row[j].sh_full;
			if (free_row) {
				int k = K0(load_t) + load_row;
				for (int j = 0; j < C; j++) {
					int n = N0(load_t) + j;
					row[j].wsh = load_row < KUSED(load_t) && j < NUSED(load_t)
					                     ? at(S, k, n) : 0.0f;
					row[j].sh_full = 1;
					row[j].sh_tile = load_t;
				}
				if (++load_row == R)
					load_row = 0, load_t++;
			}
		}
		if (c > (int64_t)(T + 4) * (Mr + R + C + 4) * 4)
			ir_die("ws ref: no progress");
	}
#undef K0
#undef N0
#undef KUSED
#undef NUSED
	if (pe_updates)
		*pe_updates = c * R * C;
	free(pe);
	free(ring);
	return last + 1;
}

/* ---- Output-stationary reference ------------------------------------------
 * Each column has one output bus that reads one finished result per cycle,
 * rows in order. A fold makes m_used results per column in K cycles, so when
 * m_used > K the bus, not the array, sets the pace: the feed of fold t waits
 * until every column has drained fold t-2 (the output registers then hold at
 * most one fold waiting to drain, and are never overwritten unread). */

typedef struct OsPe {
	float a, b;       /* operands, read by the PE to the right / below */
	Tag at, bt;       /* tag .m holds the k step */
	float acc, out;
	int out_full, out_tile;
} OsPe;

typedef struct OsFold {
	int64_t nm, nn, M, N;
	int R, C;
} OsFold;

/* fold t: m fold t / nn (outer), n fold t % nn (inner) */
static int64_t os_m0(const OsFold *f, int64_t t) { return (t / f->nn) * f->R; }
static int64_t os_n0(const OsFold *f, int64_t t) { return (t % f->nn) * f->C; }
static int os_mused(const OsFold *f, int64_t t)
{
	return f->M - os_m0(f, t) < f->R ? (int)(f->M - os_m0(f, t)) : f->R;
}
static int os_nused(const OsFold *f, int64_t t)
{
	return f->N - os_n0(f, t) < f->C ? (int)(f->N - os_n0(f, t)) : f->C;
}

static int64_t os_fast(int R, int C, int64_t M, int64_t K, int64_t N)
{
	OsFold f = {cdiv(M, R), cdiv(N, C), M, N, R, C};
	int64_t T = f.nm * f.nn;
	int64_t *e1 = malloc((size_t)C * sizeof *e1); /* last read of fold t-1, per column */
	int64_t *e2 = malloc((size_t)C * sizeof *e2); /* ... of fold t-2 */
	if (!e1 || !e2)
		ir_die("out of memory");
	for (int j = 0; j < C; j++)
		e1[j] = e2[j] = -1;
	int64_t s = -K;
	for (int64_t t = 0; t < T; t++) {
		int64_t start = s + K;
		for (int j = 0; j < C; j++)
			if (e2[j] > start)
				start = e2[j];
		s = start;
		int mu = os_mused(&f, t), nu = os_nused(&f, t);
		for (int j = 0; j < C; j++) {
			int64_t e = e1[j];
			if (j < nu) {
				int64_t first = s + K + j > e1[j] + 1 ? s + K + j : e1[j] + 1;
				e = first + mu - 1;
			}
			e2[j] = e1[j];
			e1[j] = e;
		}
	}
	int64_t last = 0;
	for (int j = 0; j < C; j++)
		if (e1[j] > last)
			last = e1[j];
	free(e1);
	free(e2);
	return last + 1;
}

static int64_t os_ref(int R, int C, int M, int K, int N, const float *A, const float *B,
                      float *Cm, int64_t *pe_updates)
{
	OsFold f = {cdiv(M, R), cdiv(N, C), M, N, R, C};
	int T = (int)(f.nm * f.nn), nring = R > C ? R : C;
	OsPe *pe = calloc((size_t)R * C, sizeof *pe);
	int *rd = calloc((size_t)C, sizeof *rd);   /* per column: next row the bus reads */
	int *rdt = calloc((size_t)C, sizeof *rdt); /* ... of this fold */
	Tag *ring = calloc((size_t)nring, sizeof *ring); /* corner injections, by cycle */
	if (!pe || !rd || !rdt || !ring) {
		free(pe);
		free(rd);
		free(rdt);
		free(ring);
		return -1;
	}
	int64_t expect = (int64_t)M * N, got = 0, last = -1, c = 0;
	int next_t = 0, next_k = 0;
	for (; got < expect; c++) {
		/* 1. the output bus of each column reads one finished result */
		for (int j = 0; j < C; j++) {
			while (rdt[j] < T && (j >= os_nused(&f, rdt[j]) || rd[j] >= os_mused(&f, rdt[j])))
				rd[j] = 0, rdt[j]++; /* fold drained, or column unused in it */
			if (rdt[j] >= T)
				continue;
			OsPe *q = &pe[rd[j] * C + j];
			if (!q->out_full)
				continue;
			if (q->out_tile != rdt[j])
				ir_die("os ref: PE(%d,%d) holds fold %d, bus expects %d", rd[j], j,
				       q->out_tile, rdt[j]);
			Cm[(int64_t)(os_m0(&f, rdt[j]) + rd[j]) * N + os_n0(&f, rdt[j]) + j] = q->out;
			q->out_full = 0;
			got++;
			last = c;
			rd[j]++;
		}
		/* 2. the feed: a fold starts once every column has drained fold t-2 */
		Tag in = {0, 0, 0};
		if (next_t < T) {
			int ok = 1;
			for (int j = 0; j < C && ok && next_k == 0 && next_t >= 2; j++) {
				int done = rdt[j] > next_t - 2 || j >= os_nused(&f, next_t - 2) ||
				           (rdt[j] == next_t - 2 && rd[j] >= os_mused(&f, next_t - 2));
				ok = done;
			}
			if (ok) {
				in = (Tag){1, next_t, next_k};
				if (++next_k == K)
					next_k = 0, next_t++;
			}
		}
		ring[c % nring] = in;
		/* 3. PEs, bottom-right first so neighbours still hold last cycle's values */
		for (int i = R - 1; i >= 0; i--) {
			for (int j = C - 1; j >= 0; j--) {
				OsPe *q = &pe[i * C + j];
				Tag at_, bt_;
				float av, bv;
				if (j == 0) {
					at_ = c - i >= 0 ? ring[(c - i) % nring] : (Tag){0, 0, 0};
					av = at_.valid && i < os_mused(&f, at_.tile)
					             ? A[(int64_t)(os_m0(&f, at_.tile) + i) * K + at_.m] : 0.0f;
				} else {
					at_ = q[-1].at;
					av = q[-1].a;
				}
				if (i == 0) {
					bt_ = c - j >= 0 ? ring[(c - j) % nring] : (Tag){0, 0, 0};
					bv = bt_.valid && j < os_nused(&f, bt_.tile)
					             ? B[(int64_t)bt_.m * N + os_n0(&f, bt_.tile) + j] : 0.0f;
				} else {
					bt_ = q[-C].bt;
					bv = q[-C].b;
				}
				if (at_.valid != bt_.valid ||
				    (at_.valid && (at_.tile != bt_.tile || at_.m != bt_.m)))
					ir_die("os ref: operands misaligned at PE(%d,%d)", i, j);
				q->at = at_, q->a = av;
				q->bt = bt_, q->b = bv;
				if (!at_.valid)
					continue;
				q->acc += av * bv;
				if (at_.m < K - 1)
					continue;
				if (i >= os_mused(&f, at_.tile) || j >= os_nused(&f, at_.tile)) {
					q->acc = 0; /* a padding PE: its result is not read */
					continue;
				}
				if (q->out_full)
					ir_die("os ref: output register of PE(%d,%d) not drained", i, j);
				q->out = q->acc;
				q->out_full = 1;
				q->out_tile = at_.tile;
				q->acc = 0;
			}
		}
		if (c > (int64_t)(T + 4) * (K + R + C + 4) * 4)
			ir_die("os ref: no progress");
	}
	if (pe_updates)
		*pe_updates = c * R * C;
	free(pe);
	free(rd);
	free(rdt);
	free(ring);
	return last + 1;
}

int64_t mxu_ref_matmul(MxuDataflow df, int rows, int cols, int M, int K, int N,
                       const float *A, const float *B, float *C, int64_t *pe_updates)
{
	if (rows <= 0 || cols <= 0 || M <= 0 || K <= 0 || N <= 0)
		return -1;
	switch (df) {
	case MXU_WS: {
		Mat X = {A, K, 1}, S = {B, N, 1};
		return ws_ref(rows, cols, M, K, N, X, S, C, N, 1, pe_updates);
	}
	case MXU_IS: {
		/* C^T[N,M] = B^T[N,K] x A^T[K,M]: A^T is stationary, B's columns stream. */
		Mat X = {B, 1, N}, S = {A, 1, K};
		return ws_ref(rows, cols, N, K, M, X, S, C, 1, N, pe_updates);
	}
	case MXU_OS:
		return os_ref(rows, cols, M, K, N, A, B, C, pe_updates);
	case MXU_DATAFLOW_COUNT: break;
	}
	return -1;
}
