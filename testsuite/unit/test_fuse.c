/*
 * The fuse pass (compiler/fuse.c): on a hand-built graph the kernels are
 * exactly the groups written out below (dot epilogues, a reduce ending a
 * kernel, sealing, boundaries); on the per-chip training step of
 * tiny-decoder every computing instruction is in exactly one kernel, the
 * kernels form a DAG and obey the one-dot/epilogue rule, and fewer values
 * cross kernel boundaries (HBM round trips) than without fusion.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testprog.h"
#include "compiler/passes.h"
#include "compiler/shard.h"
#include "compiler/train.h"
#include "frontends/model.h"
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

static int64_t kernel_of(const Module *m, ValueId v)
{
	const Attr *a = ir_attr(&m->insts[v], "fusion");
	if (!a)
		return -1;
	ck_assert_int_eq(a->kind, ATTR_INTS);
	ck_assert_int_eq(a->n, 1);
	ck_assert_int_ge(a->ints[0], 0);
	return a->ints[0];
}

/* Checks that the kernels of m are exactly groups (each terminated by -1;
 * the list ends with an empty group) and that the values in none carry no
 * fusion attribute. */
static void expect_groups(const Module *m, const ValueId *groups, const ValueId *none)
{
	int nk = 0;
	int64_t ids[64];
	const ValueId *g = groups;
	while (*g != -1) {
		int64_t k = kernel_of(m, *g);
		ck_assert_msg(k >= 0, "%%%d is in no kernel", *g);
		int size = 0;
		for (; *g != -1; g++, size++)
			ck_assert_msg(kernel_of(m, *g) == k, "%%%d is in kernel %lld, expected %lld", *g,
			              (long long)kernel_of(m, *g), (long long)k);
		g++;
		for (int i = 0; i < nk; i++)
			ck_assert_msg(ids[i] != k, "two expected groups share kernel %lld", (long long)k);
		ids[nk++] = k;
		int count = 0;
		for (int v = 0; v < m->ninsts; v++)
			count += kernel_of(m, v) == k;
		ck_assert_msg(count == size, "kernel %lld has %d members, expected %d", (long long)k,
		              count, size);
	}
	for (; *none != -1; none++)
		ck_assert_msg(kernel_of(m, *none) < 0, "%%%d should be in no kernel", *none);
	int64_t maxk = -1;
	for (int v = 0; v < m->ninsts; v++)
		if (kernel_of(m, v) > maxk)
			maxk = kernel_of(m, v);
	ck_assert_int_eq(maxk + 1, nk); /* no other kernels, numbered densely */
}

START_TEST(hand_built_groups)
{
	Module *m = ir_module_new("g", LEVEL_GRAPH);
	m->mesh.naxes = 1;
	m->mesh.axes[0] = (MeshAxis){"data", 4, 1};
	const int64_t mk[] = {128, 256}, kn[] = {256, 512}, n1[] = {512}, mn[] = {128, 512},
	              m1[] = {128}, kn3[] = {2, 128, 512};
	ValueId x = ir_param(m, "x", ty(DT_BF16, 2, mk));
	ValueId w = ir_param(m, "w", ty(DT_BF16, 2, kn));
	ValueId b = ir_param(m, "b", ty(DT_BF16, 1, n1));
	/* dot + bias + gelu: one epilogue kernel */
	ValueId d = ir_matmul(m, x, w);
	int64_t bd[] = {1};
	ValueId bb = ir_broadcast(m, b, ty(DT_BF16, 2, mn), 1, bd);
	ValueId a = ir_binary(m, OP_ADD, d, bb);
	ValueId ge = ir_unary(m, OP_GELU, a);
	/* a reduce is not an epilogue op: a new kernel, which takes the
	 * scaling of the reduced value but not its broadcast back */
	int64_t rd[] = {1};
	ValueId r = ir_reduce(m, OP_REDUCE_SUM, ge, 1, rd);
	ValueId c = ir_const(m, 1.0 / 512, ty(DT_BF16, 1, m1));
	ValueId s = ir_binary(m, OP_MUL, r, c);
	int64_t sd[] = {0};
	ValueId sb = ir_broadcast(m, s, ty(DT_BF16, 2, mn), 1, sd);
	ValueId e = ir_binary(m, OP_SUB, ge, sb); /* ge's kernel is sealed: e joins sb */
	ValueId y = ir_unary(m, OP_EXP, e);
	/* a collective is a boundary; it reads y, which seals y's kernel, so
	 * t (which reads both) cannot join it: that kernel would feed the
	 * collective and consume its result */
	ValueId z = ir_collective(m, OP_ALL_REDUCE, y, 1u, 0);
	ValueId t = ir_binary(m, OP_MUL, z, y);
	ValueId p = ir_softmax(m, t, 1);
	/* a dot with two users keeps its result: no epilogue */
	ValueId w2 = ir_param(m, "w2", ty(DT_BF16, 2, kn));
	ValueId d2 = ir_matmul(m, x, w2);
	ValueId u1 = ir_unary(m, OP_RELU, d2);
	ValueId u2 = ir_unary(m, OP_NEG, d2);
	/* SwiGLU: two single-use dots meet in one mul; a kernel holds one dot,
	 * and the product joins the dot that ran last (h2: the kernel of h1 and
	 * silu is no longer contiguous with it) */
	ValueId wg = ir_param(m, "wg", ty(DT_BF16, 2, kn));
	ValueId wi = ir_param(m, "wi", ty(DT_BF16, 2, kn));
	ValueId h1 = ir_matmul(m, x, wg);
	ValueId sl = ir_unary(m, OP_SILU, h1);
	ValueId h2 = ir_matmul(m, x, wi);
	ValueId mm = ir_binary(m, OP_MUL, sl, h2);
	/* a reshape of a parameter stays outside any kernel; gather is alone */
	ValueId w3 = ir_param(m, "w3", ty(DT_BF16, 3, kn3));
	const int64_t rs[] = {256, 512};
	ValueId wr = ir_reshape(m, w3, 2, rs);
	ValueId d3 = ir_matmul(m, x, wr);
	ValueId idx = ir_param(m, "idx", ty(DT_S32, 1, m1));
	ValueId gt = ir_gather(m, w, idx);
	ValueId gn = ir_unary(m, OP_NEG, gt);
	ir_output(m, p);
	ir_output(m, u1);
	ir_output(m, u2);
	ir_output(m, mm);
	ir_output(m, d3);
	ir_output(m, gn);
	pass_fuse(m);
	const ValueId groups[] = {
		d, bb, a, ge, -1,
		r, s, -1,
		sb, e, y, -1,
		t, p, -1,
		d2, -1,
		u1, -1,
		u2, -1,
		h1, sl, -1,
		h2, mm, -1,
		d3, -1,
		gt, -1,
		gn, -1,
		-1,
	};
	const ValueId none[] = {x, w, b, c, z, w2, wg, wi, w3, wr, idx, -1};
	expect_groups(m, groups, none);
	Diag dg;
	diag_init(&dg);
	ck_assert_msg(ir_verify(m, &dg) == 0, "%s", dg.msg);
	/* running again gives the same kernels */
	pass_fuse(m);
	expect_groups(m, groups, none);
	ir_module_free(m);
}
END_TEST

/* A reduce fuses with the elementwise producers of its operand (input
 * fusion), and the reduced value's epilogue follows; a reduce of the
 * reduced value joins too (it only needs the reduced value). */
START_TEST(reduce_input_fusion)
{
	Module *m = ir_module_new("r", LEVEL_GRAPH);
	const int64_t ab[] = {64, 256}, a1[] = {64}, s0[] = {0};
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, ab));
	ValueId sq = ir_binary(m, OP_MUL, x, x);
	int64_t rd[] = {1};
	ValueId r = ir_reduce(m, OP_REDUCE_SUM, sq, 1, rd);
	ValueId q = ir_unary(m, OP_SQRT, r);
	int64_t r0[] = {0};
	ValueId tot = ir_reduce(m, OP_REDUCE_MAX, q, 1, r0);
	/* the full-size consumer of x is not in the reduce's kernel */
	ValueId eps = ir_const(m, 1e-6, ty(DT_F32, 1, a1));
	ValueId qe = ir_binary(m, OP_ADD, q, eps);
	ValueId bq = ir_broadcast(m, qe, ty(DT_F32, 2, ab), 1, s0);
	ValueId nx = ir_binary(m, OP_DIV, x, bq);
	ir_output(m, tot);
	ir_output(m, nx);
	pass_fuse(m);
	const ValueId groups[] = {sq, r, q, tot, qe, -1, bq, nx, -1, -1};
	const ValueId none[] = {x, eps, -1};
	expect_groups(m, groups, none);
	ir_module_free(m);
}
END_TEST

/* ---- tiny-decoder's training step, per chip -------------------------- */

static Module *local_step(const char *model, int64_t batch, int64_t seq)
{
	TestProg p = {.model = model, .batch = batch, .seq = seq, .optimizer = OPTIMIZER_ADAFACTOR,
	              .naxes = 2, .axes = {{"fsdp", 4, 1}, {"tensor", 2, 1}}};
	return test_local_program(&p);
}

static int computes(const Inst *in)
{
	unsigned fl = ir_ops[in->op].flags;
	return !(fl & (OPF_COLLECTIVE | OPF_TILED)) && in->op != OP_PARAMETER &&
	       in->op != OP_CONSTANT && in->op != OP_RESHAPE;
}

/* Values read by an instruction in another kernel (or in none), plus the
 * outputs: each is written to HBM and read back. kern[v] = -1: v is a
 * kernel of its own (no fusion), unless it computes nothing. */
static int round_trips(const Module *m, int fused)
{
	int n = m->ninsts, count = 0;
	int64_t *kern = malloc(sizeof *kern * (size_t)n);
	unsigned char *out = calloc((size_t)n, 1);
	for (int v = 0; v < n; v++)
		kern[v] = fused ? kernel_of(m, v) : -1;
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		for (int i = 0; i < in->nargs; i++) {
			ValueId a = in->args[i];
			if (kern[a] < 0 || kern[a] != kern[v])
				out[a] = 1;
		}
	}
	for (int i = 0; i < m->noutputs; i++)
		out[m->outputs[i]] = 1;
	for (int v = 0; v < n; v++)
		count += out[v] && computes(&m->insts[v]);
	free(kern);
	free(out);
	return count;
}

START_TEST(tiny_decoder_step)
{
	Module *m = local_step("tiny-decoder", 8, 64);
	int before = round_trips(m, 0);
	pass_fuse(m);
	int after = round_trips(m, 1);
	ck_assert_msg(after < before, "round trips %d with fusion, %d without", after, before);
	int n = m->ninsts;
	int64_t nk = 0;
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		int64_t k = kernel_of(m, v);
		if (computes(in))
			ck_assert_msg(k >= 0, "%%%d (%s) is in no kernel", v, op_name(in->op));
		if (in->op == OP_PARAMETER || in->op == OP_CONSTANT ||
		    (ir_ops[in->op].flags & OPF_COLLECTIVE))
			ck_assert_msg(k < 0, "%%%d (%s) is in a kernel", v, op_name(in->op));
		if (k >= nk)
			nk = k + 1;
	}
	ck_assert_int_gt(nk, 0);
	ck_assert_int_lt(nk, n);
	/* one dot per kernel, and only elementwise ops and broadcasts beside it */
	int *dots = calloc((size_t)nk, sizeof *dots);
	unsigned char *other = calloc((size_t)nk, 1);
	for (int v = 0; v < n; v++) {
		const Inst *in = &m->insts[v];
		int64_t k = kernel_of(m, v);
		if (k < 0)
			continue;
		if (in->op == OP_DOT)
			dots[k]++;
		else if (!(ir_ops[in->op].flags & OPF_ELEMWISE) && in->op != OP_BROADCAST)
			other[k] = 1;
	}
	for (int64_t k = 0; k < nk; k++) {
		ck_assert_int_le(dots[k], 1);
		ck_assert_msg(!(dots[k] && other[k]), "kernel %lld mixes a dot with non-epilogue ops",
		              (long long)k);
	}
	/* The kernels form a DAG: Kahn's algorithm over kernels and unfused
	 * instructions (node of v: its kernel, else nk + v). */
	int nn = (int)nk + n;
	int *node = malloc(sizeof *node * (size_t)n), *indeg = calloc((size_t)nn, sizeof(int));
	int *head = malloc(sizeof(int) * (size_t)nn), *next = NULL, *to = NULL, ne = 0, cap = 0;
	for (int i = 0; i < nn; i++)
		head[i] = -1;
	for (int v = 0; v < n; v++) {
		int64_t k = kernel_of(m, v);
		node[v] = k >= 0 ? (int)k : (int)nk + v;
	}
	for (int v = 0; v < n; v++)
		for (int i = 0; i < m->insts[v].nargs; i++) {
			int a = node[m->insts[v].args[i]], b = node[v];
			if (a == b)
				continue;
			if (ne == cap) {
				cap = cap ? 2 * cap : 1024;
				next = realloc(next, sizeof(int) * (size_t)cap);
				to = realloc(to, sizeof(int) * (size_t)cap);
			}
			to[ne] = b;
			next[ne] = head[a];
			head[a] = ne++;
			indeg[b]++;
		}
	int *queue = malloc(sizeof(int) * (size_t)nn), qh = 0, qt = 0;
	for (int i = 0; i < nn; i++)
		if (indeg[i] == 0)
			queue[qt++] = i;
	while (qh < qt) {
		int a = queue[qh++];
		for (int e = head[a]; e >= 0; e = next[e])
			if (--indeg[to[e]] == 0)
				queue[qt++] = to[e];
	}
	ck_assert_msg(qt == nn, "the kernel graph has a cycle (%d of %d nodes ordered)", qt, nn);
	free(queue);
	free(node);
	free(indeg);
	free(head);
	free(next);
	free(to);
	free(dots);
	free(other);
	ir_module_free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fuse");
	TCase *tc = tcase_create("fuse");
	tcase_add_test(tc, hand_built_groups);
	tcase_add_test(tc, reduce_input_fusion);
	tcase_add_test(tc, tiny_decoder_step);
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
