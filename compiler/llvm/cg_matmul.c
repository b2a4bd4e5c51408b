/*
 * dot (XLA dot_general) kernels.
 *
 * When each group of dims (batch, lhs free, contracting, rhs free) flattens
 * to one strided dim in both operands (any layout whose groups are each
 * row-major contiguous, e.g. [M,K]x[K,N], [M,K]x[N,K], [B,H,S,D]x[B,H,T,D]),
 * the dot is a strided batched matmul C[b,m,n] += A[b,m,k] B[b,k,n] and gets
 * the tiled kernel:
 *
 *   C = 0
 *   for b:                                    batch, outermost
 *     for (m0|n0|k0) in the Tiling's order:   tile loops, step = tile
 *       pack B[k0:k1, n0:n1] into NR-wide panels   (once both n0 and k0 are set)
 *       for m in m0..m1 step MR, panel p:     register tile MR x NR
 *         acc[MR][NR/VL] = 0
 *         for k in k0..k1:                    acc += A[m+r,k] * Bp[p,k,:]
 *         C[m.., n..] += acc
 *         if k1 == K: epilogue(C[m.., n..])   a fused elementwise consumer
 *
 * The register tile is explicit LLVM vectors (<VL x float>, VL the host's
 * width), so the inner loop is MR*NR/VL fused multiply-adds of a broadcast A
 * element and a contiguous packed B vector. Edge tiles (M or N not a multiple
 * of MR or NR) run the same K loop, reading clamped A rows and zero-padded B
 * panels, and add only the valid part of the tile into C.
 *
 * The accumulation fadd and its fmul carry the reassoc and contract fast-math
 * flags, and only they: the sum over k is split across K tiles and fused
 * into FMAs, as the MXU reassociates too. In bf16 mode both operands are
 * rounded to bf16 (A when loaded, B when packed) and the sum stays f32.
 *
 * Other layouts get a plain loop nest (result dims, then contracting dims)
 * with the same flags, which LLVM vectorises when the innermost access is
 * contiguous.
 */
#include "cg.h"

#include <stdlib.h>
#include <string.h>

enum { GM, GN, GK };

typedef struct DotPlan {
	int64_t nb, M, N, K;            /* flattened group sizes */
	int64_t sab, sam, sak;          /* A strides (elements) */
	int64_t sbb, sbk, sbn;          /* B strides */
	int64_t tile[3];                /* GM, GN, GK tile extents */
	int order[3];                   /* tile loops, outermost first */
} DotPlan;

typedef struct DotDims {
	int nc, nb, nfa, nfb;
	const int64_t *lc, *rc, *lb, *rb;
	int64_t fa[IR_MAX_RANK], fb[IR_MAX_RANK]; /* free dims, ascending */
} DotDims;

static void dot_dims(const Inst *in, const Type *ta, const Type *tb, DotDims *g)
{
	int n2;
	memset(g, 0, sizeof *g);
	g->lc = ir_attr_ints(in, "lhs_contract", &g->nc);
	g->rc = ir_attr_ints(in, "rhs_contract", &n2);
	g->lb = ir_attr_ints(in, "lhs_batch", &g->nb);
	g->rb = ir_attr_ints(in, "rhs_batch", &n2);
	uint32_t ua = 0, ub = 0;
	for (int j = 0; j < g->nc; j++) {
		ua |= 1u << g->lc[j];
		ub |= 1u << g->rc[j];
	}
	for (int j = 0; j < g->nb; j++) {
		ua |= 1u << g->lb[j];
		ub |= 1u << g->rb[j];
	}
	for (int i = 0; i < ta->rank; i++)
		if (!(ua & (1u << i)))
			g->fa[g->nfa++] = i;
	for (int i = 0; i < tb->rank; i++)
		if (!(ub & (1u << i)))
			g->fb[g->nfb++] = i;
}

/* Whether dims (in group order) of t address like one dim of stride *stride. */
static int flatten(const Type *t, const int64_t *st, const int64_t *dims, int nd,
                   int64_t *size, int64_t *stride)
{
	int64_t sz = 1;
	int last = -1;
	for (int i = 0; i < nd; i++) {
		int64_t n = t->dims[dims[i]];
		sz *= n;
		if (n == 1)
			continue;
		if (last >= 0 && st[last] != st[dims[i]] * n)
			return 0;
		last = (int)dims[i];
	}
	*size = sz;
	*stride = last >= 0 ? st[last] : 0;
	return 1;
}

/* 1: the fast path applies (plan filled); 0: use the loop nest; -1: a bad
 * tiling (diagnosed). */
static int make_plan(CG *c, const Inst *in, const DotDims *g, const Type *ta,
                     const Type *tb, DotPlan *p)
{
	int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], x;
	cg_strides(ta, sa);
	cg_strides(tb, sb);
	memset(p, 0, sizeof *p);
	if (!flatten(ta, sa, g->lb, g->nb, &p->nb, &p->sab) ||
	    !flatten(tb, sb, g->rb, g->nb, &x, &p->sbb) ||
	    !flatten(ta, sa, g->fa, g->nfa, &p->M, &p->sam) ||
	    !flatten(ta, sa, g->lc, g->nc, &p->K, &p->sak) ||
	    !flatten(tb, sb, g->rc, g->nc, &x, &p->sbk) ||
	    !flatten(tb, sb, g->fb, g->nfb, &p->N, &p->sbn))
		return 0;

	const Tiling *t = &in->tiling;
	int rank = in->type.rank, nloop = rank + g->nc;
	if (t->ntile == 0) {
		/* No tiling chosen: B panels of 256x256 stay in L2, M innermost
		 * reuses each packed panel across every row block. */
		p->tile[GM] = 128;
		p->tile[GN] = 256;
		p->tile[GK] = 256;
		p->order[0] = GN;
		p->order[1] = GK;
		p->order[2] = GM;
	} else {
		if (t->ntile != nloop) {
			diag_error(c->d, c->m->file, in->line, in->col,
			           "dot tiling has %d loop dims, expected %d (the result dims, then "
			           "the contracting dims)",
			           t->ntile, nloop);
			return -1;
		}
		int seen = 0, npos = 0;
		for (int k = 0; k < 3; k++)
			p->tile[k] = 1;
		for (int L = 0; L < nloop; L++) {
			int64_t size = L < rank ? in->type.dims[L] : ta->dims[g->lc[L - rank]];
			int64_t tl = t->tile[L] < 1 ? 1 : t->tile[L] > size ? size : t->tile[L];
			int grp = L < g->nb ? -1 : L < g->nb + g->nfa ? GM : L < rank ? GN : GK;
			if (grp >= 0)
				p->tile[grp] *= tl;
		}
		for (int q = 0; q < nloop; q++) {
			int L = t->order[q];
			if (L < 0 || L >= nloop || (seen & (1 << L))) {
				diag_error(c->d, c->m->file, in->line, in->col,
				           "dot tiling order is not a permutation of its %d loop dims",
				           nloop);
				return -1;
			}
			seen |= 1 << L;
			int grp = L < g->nb ? -1 : L < g->nb + g->nfa ? GM : L < rank ? GN : GK;
			int dup = grp < 0;
			for (int k = 0; k < npos; k++)
				dup |= p->order[k] == grp;
			if (!dup)
				p->order[npos++] = grp;
		}
		/* A group with no loop dims (e.g. no free lhs dims) goes innermost. */
		for (int grp = 0; grp < 3; grp++) {
			int dup = 0;
			for (int k = 0; k < npos; k++)
				dup |= p->order[k] == grp;
			if (!dup)
				p->order[npos++] = grp;
		}
	}
	p->tile[GM] = p->tile[GM] < 1 ? 1 : p->tile[GM];
	p->tile[GN] = p->tile[GN] < 1 ? 1 : p->tile[GN];
	p->tile[GK] = p->tile[GK] < 1 ? 1 : p->tile[GK];
	return 1;
}

/* ---- The tiled kernel ------------------------------------------------------ */

typedef struct MM {
	DotPlan p;
	int vl, mr, nv, nr;      /* vector width, register tile rows, vectors, cols */
	int round;               /* bf16 mode */
	LLVMTypeRef vt;          /* <vl x float> */
	LLVMValueRef A, B, C, Bp;
	LLVMValueRef aoff, boff, coff;      /* batch offsets */
	LLVMValueRef lo[3], hi[3];          /* current tile bounds per group */
	LLVMValueRef acc[32 * 8];           /* allocas, [r * nv + v] */
	LLVMValueRef tmp;                   /* edge tile, mr * nr floats */
	const Inst *in;                     /* the dot */
	const CgEpilogue *epi;              /* or NULL */
} MM;

static LLVMValueRef vload(CG *c, MM *k, LLVMValueRef p, LLVMValueRef off)
{
	LLVMValueRef l = LLVMBuildLoad2(c->b, k->vt, cg_gep(c, p, off), "");
	LLVMSetAlignment(l, 4);
	return l;
}

static void vstore(CG *c, LLVMValueRef v, LLVMValueRef p, LLVMValueRef off)
{
	LLVMValueRef s = LLVMBuildStore(c->b, v, cg_gep(c, p, off));
	LLVMSetAlignment(s, 4);
}

static LLVMValueRef mul(CG *c, LLVMValueRef a, int64_t k)
{
	return LLVMBuildNSWMul(c->b, a, cg_i64(c, k), "");
}

static LLVMValueRef add(CG *c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildNSWAdd(c->b, a, b, "");
}

/* Packs B[k0:k1, n0:n1] as panels [p][k][nr], zero past n1, rounded in bf16
 * mode. */
static void emit_pack(CG *c, MM *k)
{
	LLVMBuilderRef b = c->b;
	LLVMValueRef kc = LLVMBuildNSWSub(b, k->hi[GK], k->lo[GK], "kc");
	LLVMValueRef nc = LLVMBuildNSWSub(b, k->hi[GN], k->lo[GN], "nc");
	LLVMValueRef npan = LLVMBuildSDiv(b, add(c, nc, cg_i64(c, k->nr - 1)), cg_i64(c, k->nr), "");
	Loop lp, lk, lj;
	LLVMValueRef p = cg_loop_begin(c, &lp, cg_i64(c, 0), npan, cg_i64(c, 1), "pack.p");
	LLVMValueRef col0 = add(c, k->lo[GN], mul(c, p, k->nr));
	LLVMValueRef pbase = LLVMBuildNSWMul(b, p, kc, "");
	LLVMValueRef kk = cg_loop_begin(c, &lk, cg_i64(c, 0), kc, cg_i64(c, 1), "pack.k");
	LLVMValueRef dst = mul(c, add(c, pbase, kk), k->nr);
	LLVMValueRef src = add(c, k->boff, mul(c, add(c, k->lo[GK], kk), k->p.sbk));
	LLVMValueRef jj = cg_loop_begin(c, &lj, cg_i64(c, 0), cg_i64(c, k->nr), cg_i64(c, 1), "pack.j");
	LLVMValueRef col = add(c, col0, jj);
	LLVMValueRef colc = cg_min(c, col, cg_i64(c, k->p.N - 1));
	LLVMValueRef x = cg_load(c, k->B, add(c, src, mul(c, colc, k->p.sbn)));
	if (k->round)
		x = cg_bf16_round(c, x);
	x = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, col, k->hi[GN], ""), x,
	                    cg_f32(c, 0.0), "");
	cg_store(c, x, k->Bp, add(c, dst, jj));
	cg_loop_end(c, &lj);
	cg_loop_end(c, &lk);
	cg_loop_end(c, &lp);
}

/* A complete element of C: round it (bf16 mode, bf16 result), then run the
 * fused epilogue on it. */
static void finish_element(CG *c, MM *k, LLVMValueRef idx)
{
	if (c->opt.bf16 && k->in->type.dtype == DT_BF16)
		cg_store(c, cg_bf16_round(c, cg_load(c, k->C, idx)), k->C, idx);
	k->epi->fn(c, idx, k->epi->ctx);
}

/* After the last K tile of a register tile: the epilogue over its valid
 * rows and columns, while they are in L1. */
static void emit_tile_epilogue(CG *c, MM *k, LLVMValueRef i, LLVMValueRef j)
{
	LLVMBuilderRef b = c->b;
	LLVMBasicBlockRef be = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "epi");
	LLVMBasicBlockRef bj = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "epi.done");
	LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGE, k->hi[GK], cg_i64(c, k->p.K), ""), be, bj);
	LLVMPositionBuilderAtEnd(b, be);
	LLVMValueRef nrows = cg_min(c, cg_i64(c, k->mr), LLVMBuildNSWSub(b, k->hi[GM], i, ""));
	LLVMValueRef ncols = cg_min(c, cg_i64(c, k->nr), LLVMBuildNSWSub(b, k->hi[GN], j, ""));
	Loop lr, lc;
	LLVMValueRef r = cg_loop_begin(c, &lr, cg_i64(c, 0), nrows, cg_i64(c, 1), "epi.r");
	LLVMValueRef crow = add(c, k->coff, add(c, mul(c, add(c, i, r), k->p.N), j));
	LLVMValueRef q = cg_loop_begin(c, &lc, cg_i64(c, 0), ncols, cg_i64(c, 1), "epi.c");
	finish_element(c, k, add(c, crow, q));
	cg_loop_end(c, &lc);
	cg_loop_end(c, &lr);
	LLVMBuildBr(b, bj);
	LLVMPositionBuilderAtEnd(b, bj);
}

/* One register tile at rows i.., panel p (columns j..): the K loop once,
 * then either a vector update of C (the tile lies inside C) or, at an edge,
 * a scalar update of its valid rows and columns only. Rows past the end read
 * the last valid row of A (clamped), so the K loop never reads out of
 * bounds and is the same code for both. */
static void emit_micro(CG *c, MM *k, LLVMValueRef i, LLVMValueRef p, LLVMValueRef j)
{
	LLVMBuilderRef b = c->b;
	LLVMValueRef arow[32];
	LLVMValueRef last = LLVMBuildNSWSub(b, k->hi[GM], cg_i64(c, 1), "");
	for (int r = 0; r < k->mr; r++) {
		LLVMValueRef row = cg_min(c, add(c, i, cg_i64(c, r)), last);
		arow[r] = add(c, k->aoff, mul(c, row, k->p.sam));
	}
	LLVMValueRef zero = LLVMConstNull(k->vt);
	for (int q = 0; q < k->mr * k->nv; q++)
		LLVMBuildStore(b, zero, k->acc[q]);
	LLVMValueRef kc = LLVMBuildNSWSub(b, k->hi[GK], k->lo[GK], "");
	LLVMValueRef pbase = mul(c, LLVMBuildNSWMul(b, p, kc, ""), k->nr);
	LLVMTypeRef mt = LLVMVectorType(c->i32, (unsigned)k->vl);

	Loop lk;
	LLVMValueRef kk = cg_loop_begin(c, &lk, cg_i64(c, 0), kc, cg_i64(c, 1), "k");
	LLVMValueRef boff = add(c, pbase, mul(c, kk, k->nr));
	LLVMValueRef koff = mul(c, add(c, k->lo[GK], kk), k->p.sak);
	LLVMValueRef bv[8];
	for (int v = 0; v < k->nv; v++)
		bv[v] = vload(c, k, k->Bp, add(c, boff, cg_i64(c, (int64_t)v * k->vl)));
	for (int r = 0; r < k->mr; r++) {
		LLVMValueRef a = cg_load(c, k->A, add(c, arow[r], koff));
		if (k->round)
			a = cg_bf16_round(c, a);
		LLVMValueRef s = LLVMBuildInsertElement(b, LLVMGetPoison(k->vt), a,
		                                        LLVMConstInt(c->i32, 0, 0), "");
		s = LLVMBuildShuffleVector(b, s, LLVMGetPoison(k->vt), LLVMConstNull(mt), "a");
		for (int v = 0; v < k->nv; v++) {
			LLVMValueRef slot = k->acc[r * k->nv + v];
			LLVMValueRef prod = LLVMBuildFMul(b, s, bv[v], "");
			cg_reassoc(prod);
			LLVMValueRef sum = LLVMBuildFAdd(b, LLVMBuildLoad2(b, k->vt, slot, ""), prod, "acc");
			cg_reassoc(sum);
			LLVMBuildStore(b, sum, slot);
		}
	}
	cg_loop_end(c, &lk);

	LLVMValueRef full = LLVMBuildAnd(
		b,
		LLVMBuildICmp(b, LLVMIntSLE, add(c, i, cg_i64(c, k->mr)), k->hi[GM], ""),
		LLVMBuildICmp(b, LLVMIntSLE, add(c, j, cg_i64(c, k->nr)), k->hi[GN], ""), "full");
	LLVMBasicBlockRef bf = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.full");
	LLVMBasicBlockRef be = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.edge");
	LLVMBasicBlockRef bj = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.join");
	LLVMBuildCondBr(b, full, bf, be);

	LLVMPositionBuilderAtEnd(b, bf);
	for (int r = 0; r < k->mr; r++) {
		LLVMValueRef crow = add(c, k->coff, mul(c, add(c, i, cg_i64(c, r)), k->p.N));
		for (int v = 0; v < k->nv; v++) {
			LLVMValueRef off = add(c, crow, add(c, j, cg_i64(c, (int64_t)v * k->vl)));
			LLVMValueRef s = LLVMBuildFAdd(
				b, vload(c, k, k->C, off),
				LLVMBuildLoad2(b, k->vt, k->acc[r * k->nv + v], ""), "");
			cg_reassoc(s);
			vstore(c, s, k->C, off);
		}
	}
	LLVMBuildBr(b, bj);

	LLVMPositionBuilderAtEnd(b, be);
	for (int r = 0; r < k->mr; r++)
		for (int v = 0; v < k->nv; v++)
			vstore(c, LLVMBuildLoad2(b, k->vt, k->acc[r * k->nv + v], ""), k->tmp,
			       cg_i64(c, (int64_t)r * k->nr + (int64_t)v * k->vl));
	LLVMValueRef nrows = cg_min(c, cg_i64(c, k->mr), LLVMBuildNSWSub(b, k->hi[GM], i, ""));
	LLVMValueRef ncols = cg_min(c, cg_i64(c, k->nr), LLVMBuildNSWSub(b, k->hi[GN], j, ""));
	Loop lr, lc;
	LLVMValueRef r = cg_loop_begin(c, &lr, cg_i64(c, 0), nrows, cg_i64(c, 1), "er");
	LLVMValueRef crow = add(c, k->coff, add(c, mul(c, add(c, i, r), k->p.N), j));
	LLVMValueRef trow = mul(c, r, k->nr);
	LLVMValueRef q = cg_loop_begin(c, &lc, cg_i64(c, 0), ncols, cg_i64(c, 1), "ec");
	LLVMValueRef off = add(c, crow, q);
	LLVMValueRef s = LLVMBuildFAdd(b, cg_load(c, k->C, off), cg_load(c, k->tmp, add(c, trow, q)), "");
	cg_reassoc(s);
	cg_store(c, s, k->C, off);
	cg_loop_end(c, &lc);
	cg_loop_end(c, &lr);
	LLVMBuildBr(b, bj);
	LLVMPositionBuilderAtEnd(b, bj);
}

static void emit_tile_body(CG *c, MM *k)
{
	LLVMBuilderRef b = c->b;
	LLVMValueRef nc = LLVMBuildNSWSub(b, k->hi[GN], k->lo[GN], "");
	LLVMValueRef npan = LLVMBuildSDiv(b, add(c, nc, cg_i64(c, k->nr - 1)), cg_i64(c, k->nr), "");
	Loop li, lp;
	LLVMValueRef i = cg_loop_begin(c, &li, k->lo[GM], k->hi[GM], cg_i64(c, k->mr), "m");
	LLVMValueRef p = cg_loop_begin(c, &lp, cg_i64(c, 0), npan, cg_i64(c, 1), "panel");
	LLVMValueRef j = add(c, k->lo[GN], mul(c, p, k->nr));
	emit_micro(c, k, i, p, j);
	if (k->epi)
		emit_tile_epilogue(c, k, i, j);
	cg_loop_end(c, &lp);
	cg_loop_end(c, &li);
}

static LLVMValueRef declare(CG *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *ps,
                            unsigned n, LLVMTypeRef *ft)
{
	*ft = LLVMFunctionType(ret, ps, n, 0);
	LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
	return f ? f : LLVMAddFunction(c->mod, name, *ft);
}

static void emit_tiled(CG *c, const Inst *in, const DotPlan *p, LLVMValueRef out,
                       LLVMValueRef A, LLVMValueRef B, const CgEpilogue *epi)
{
	LLVMBuilderRef b = c->b;
	MM k;
	memset(&k, 0, sizeof k);
	k.p = *p;
	k.vl = c->opt.vec_width;
	k.mr = c->opt.mr;
	k.nv = c->opt.nr_vecs;
	k.nr = k.vl * k.nv;
	k.round = c->opt.bf16;
	k.vt = LLVMVectorType(c->f32, (unsigned)k.vl);
	k.A = A;
	k.B = B;
	k.C = out;
	k.in = in;
	k.epi = epi;
	for (int q = 0; q < k.mr * k.nv; q++)
		k.acc[q] = cg_alloca(c, k.vt, NULL, 64, "acc");
	k.tmp = cg_alloca(c, c->f32, cg_i64(c, (int64_t)k.mr * k.nr), 64, "edge");

	/* C = 0: the K tiles accumulate into it */
	int64_t total = p->nb * p->M * p->N;
	Loop lz;
	LLVMValueRef iz = cg_loop_begin(c, &lz, cg_i64(c, 0), cg_i64(c, total), cg_i64(c, 1), "zero");
	cg_store(c, cg_f32(c, 0.0), out, iz);
	cg_loop_end(c, &lz);
	if (p->M == 0 || p->N == 0 || p->K == 0) {
		/* no tile loop runs: the epilogue sees the zeros */
		if (epi) {
			Loop le;
			LLVMValueRef ie = cg_loop_begin(c, &le, cg_i64(c, 0), cg_i64(c, total), cg_i64(c, 1), "epi");
			finish_element(c, &k, ie);
			cg_loop_end(c, &le);
		}
		return;
	}

	/* The packing buffer: ceil(tn/nr) panels of tk x nr floats, on the heap
	 * (a tile's panel can be larger than a thread's stack). */
	int64_t tn = p->tile[GN] < p->N ? p->tile[GN] : p->N;
	int64_t tk = p->tile[GK] < p->K ? p->tile[GK] : p->K;
	int64_t bytes = ((tn + k.nr - 1) / k.nr) * k.nr * tk * (int64_t)sizeof(float);
	LLVMTypeRef ft;
	LLVMValueRef fmalloc = declare(c, "malloc", c->ptr, &c->i64, 1, &ft);
	LLVMValueRef nbytes = cg_i64(c, bytes);
	k.Bp = LLVMBuildCall2(b, ft, fmalloc, &nbytes, 1, "bpack");
	{
		LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "alloc.ok");
		LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "alloc.fail");
		LLVMBuildCondBr(b, LLVMBuildIsNull(b, k.Bp, ""), bad, ok);
		LLVMPositionBuilderAtEnd(b, bad);
		LLVMTypeRef at;
		LLVMValueRef fabort = declare(c, "abort", c->voidt, NULL, 0, &at);
		LLVMBuildCall2(b, at, fabort, NULL, 0, "");
		LLVMBuildUnreachable(b);
		LLVMPositionBuilderAtEnd(b, ok);
	}

	Loop lb;
	LLVMValueRef bi = cg_loop_begin(c, &lb, cg_i64(c, 0), cg_i64(c, p->nb), cg_i64(c, 1), "batch");
	k.aoff = mul(c, bi, p->sab);
	k.boff = mul(c, bi, p->sbb);
	k.coff = mul(c, bi, p->M * p->N);
	int64_t ext[3];
	ext[GM] = p->M;
	ext[GN] = p->N;
	ext[GK] = p->K;
	static const char *const lname[3] = {"tile.m", "tile.n", "tile.k"};
	Loop lt[3];
	int open_n = 0, open_k = 0, packed = 0;
	for (int q = 0; q < 3; q++) {
		int grp = p->order[q];
		LLVMValueRef iv = cg_loop_begin(c, &lt[q], cg_i64(c, 0), cg_i64(c, ext[grp]),
		                                cg_i64(c, p->tile[grp]), lname[grp]);
		k.lo[grp] = iv;
		k.hi[grp] = cg_min(c, add(c, iv, cg_i64(c, p->tile[grp])), cg_i64(c, ext[grp]));
		open_n |= grp == GN;
		open_k |= grp == GK;
		if (open_n && open_k && !packed) {
			emit_pack(c, &k);
			packed = 1;
		}
	}
	emit_tile_body(c, &k);
	for (int q = 2; q >= 0; q--)
		cg_loop_end(c, &lt[q]);
	cg_loop_end(c, &lb);

	LLVMTypeRef fft;
	LLVMValueRef ffree = declare(c, "free", c->voidt, &c->ptr, 1, &fft);
	LLVMBuildCall2(b, fft, ffree, &k.Bp, 1, "");
	if (!epi)
		cg_round_result(c, in, out, total);
}

/* ---- The loop nest for other layouts ---------------------------------------- */

typedef struct NestCtx {
	LLVMValueRef A, B, C, acc;
	int nc, round;
	int64_t ext[IR_MAX_RANK], st[2][IR_MAX_RANK];
} NestCtx;

static void nest_inner(CG *c, LLVMValueRef *offs, void *ctx)
{
	NestCtx *n = ctx;
	LLVMValueRef a = cg_load(c, n->A, offs[0]), b = cg_load(c, n->B, offs[1]);
	if (n->round) {
		a = cg_bf16_round(c, a);
		b = cg_bf16_round(c, b);
	}
	LLVMValueRef prod = LLVMBuildFMul(c->b, a, b, "");
	cg_reassoc(prod);
	LLVMValueRef s = LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, c->f32, n->acc, ""), prod, "acc");
	cg_reassoc(s);
	LLVMBuildStore(c->b, s, n->acc);
}

static void nest_outer(CG *c, LLVMValueRef *offs, void *ctx)
{
	NestCtx *n = ctx;
	LLVMBuildStore(c->b, cg_f32(c, 0.0), n->acc);
	LLVMValueRef io[2] = {offs[1], offs[2]};
	cg_nest(c, n->nc, n->ext, 2, (const int64_t (*)[IR_MAX_RANK])n->st, io, nest_inner, n);
	cg_store(c, LLVMBuildLoad2(c->b, c->f32, n->acc, ""), n->C, offs[0]);
}

static void epi_body(CG *c, LLVMValueRef *offs, void *ctx)
{
	const CgEpilogue *epi = ctx;
	epi->fn(c, offs[0], epi->ctx);
}

static void emit_nest(CG *c, const Inst *in, const DotDims *g, const Type *ta,
                      const Type *tb, LLVMValueRef out, LLVMValueRef A, LLVMValueRef B,
                      const CgEpilogue *epi)
{
	int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], so[IR_MAX_RANK];
	cg_strides(ta, sa);
	cg_strides(tb, sb);
	cg_strides(&in->type, so);
	NestCtx n;
	memset(&n, 0, sizeof n);
	n.A = A;
	n.B = B;
	n.C = out;
	n.round = c->opt.bf16;
	n.acc = cg_alloca(c, c->f32, NULL, 4, "acc");
	n.nc = g->nc;
	for (int j = 0; j < g->nc; j++) {
		n.ext[j] = ta->dims[g->lc[j]];
		n.st[0][j] = sa[g->lc[j]];
		n.st[1][j] = sb[g->rc[j]];
	}
	int64_t st[3][IR_MAX_RANK];
	memset(st, 0, sizeof st);
	int q = 0;
	for (int j = 0; j < g->nb; j++, q++) {
		st[1][q] = sa[g->lb[j]];
		st[2][q] = sb[g->rb[j]];
	}
	for (int j = 0; j < g->nfa; j++, q++)
		st[1][q] = sa[g->fa[j]];
	for (int j = 0; j < g->nfb; j++, q++)
		st[2][q] = sb[g->fb[j]];
	for (int d = 0; d < in->type.rank; d++)
		st[0][d] = so[d];
	LLVMValueRef z[3] = {cg_i64(c, 0), cg_i64(c, 0), cg_i64(c, 0)};
	cg_nest(c, in->type.rank, in->type.dims, 3, (const int64_t (*)[IR_MAX_RANK])st, z,
	        nest_outer, &n);
	int64_t total = type_numel(&in->type);
	cg_round_result(c, in, out, total);
	if (epi) {
		int64_t s1[1][IR_MAX_RANK] = {{1}};
		cg_nest(c, 1, &total, 1, (const int64_t (*)[IR_MAX_RANK])s1, z, epi_body,
		        (void *)epi);
	}
}

int cg_dot(CG *c, const Inst *in, LLVMValueRef out, LLVMValueRef a, LLVMValueRef b,
           const CgEpilogue *epi)
{
	const Type *ta = &c->m->insts[in->args[0]].type, *tb = &c->m->insts[in->args[1]].type;
	DotDims g;
	dot_dims(in, ta, tb, &g);
	DotPlan p;
	int fast = make_plan(c, in, &g, ta, tb, &p);
	if (fast < 0)
		return -1;
	if (fast)
		emit_tiled(c, in, &p, out, a, b, epi);
	else
		emit_nest(c, in, &g, ta, tb, out, a, b, epi);
	return 0;
}
