/*
 * autodiff: every op's VJP rule, and small models, against central finite
 * differences on the reference interpreter (tolerances: gradcheck.h).
 */
#include "gradcheck.h"

#define T2(a, b) gc_ty(DT_F32, 2, a, b)

/* Pushes every element of weight v at least 0.2 away from zero (relu's kink). */
static void away_from_zero(Case *c, ValueId v)
{
	Tensor *x = &c->in[gc_input_index(c->m, v)];
	for (int64_t i = 0; i < type_numel(&x->type); i++)
		x->data[i] = x->data[i] < 0 ? x->data[i] - 0.2f : x->data[i] + 0.2f;
}

START_TEST(unary_rules)
{
	static const Op ops[] = {OP_NEG, OP_EXP, OP_LOG, OP_TANH, OP_SQRT, OP_RSQRT,
	                         OP_RELU, OP_GELU, OP_SIGMOID, OP_SILU};
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		Case c;
		gc_init(&c, 1 + k);
		int positive = ops[k] == OP_LOG || ops[k] == OP_SQRT || ops[k] == OP_RSQRT;
		float lo = positive ? 0.5f : -1.5f, hi = positive ? 2.0f : 1.5f;
		ValueId x = gc_weight(&c, "x", T2(2, 3), lo, hi);
		if (ops[k] == OP_RELU)
			away_from_zero(&c, x);
		gc_weighted_loss(&c, ir_unary(c.m, ops[k], x));
		ck_assert(gc_check(&c, op_name(ops[k])) > 0.1);
		gc_free(&c);
	}
}
END_TEST

START_TEST(convert_rule)
{
	/* f32 -> bf16 -> f32: without bf16 rounding the interpreter keeps the
	 * value, so the gradient passes through. */
	Case c;
	gc_init(&c, 11);
	ValueId x = gc_weight(&c, "x", T2(2, 2), -1, 1);
	ValueId b = ir_convert(c.m, x, DT_BF16);
	gc_weighted_loss(&c, ir_unary(c.m, OP_TANH, ir_convert(c.m, b, DT_F32)));
	ck_assert(gc_check(&c, "convert") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(binary_rules)
{
	static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_POW};
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		Case c;
		gc_init(&c, 20 + k);
		int pos = ops[k] == OP_POW;
		ValueId a = gc_weight(&c, "a", T2(2, 3), pos ? 0.5f : -1.5f, 1.5f);
		ValueId b = gc_weight(&c, "b", T2(2, 3), ops[k] == OP_DIV ? 0.5f : -1.0f, 2.0f);
		if (ops[k] == OP_MAX || ops[k] == OP_MIN) {
			/* keep the operands at least 0.1 apart so +-h never swaps them */
			Tensor *ta = &c.in[0], *tb = &c.in[1];
			for (int i = 0; i < 6; i++)
				if (fabsf(ta->data[i] - tb->data[i]) < 0.1f)
					tb->data[i] = ta->data[i] + (i % 2 ? 0.3f : -0.3f);
		}
		gc_weighted_loss(&c, ir_binary(c.m, ops[k], a, b));
		ck_assert(gc_check(&c, op_name(ops[k])) > 0.1);
		gc_free(&c);
	}
}
END_TEST

START_TEST(fan_out_accumulates)
{
	/* y = x * x + exp(x): three uses of x; dy/dx = 2x + exp(x). */
	Case c;
	gc_init(&c, 30);
	ValueId x = gc_weight(&c, "x", T2(2, 2), -1, 1);
	ValueId y = ir_binary(c.m, OP_ADD, ir_binary(c.m, OP_MUL, x, x), ir_unary(c.m, OP_EXP, x));
	ValueId loss = gc_weighted_loss(&c, y);
	(void)loss;
	ck_assert(gc_check(&c, "fan-out") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(select_rule)
{
	Case c;
	gc_init(&c, 31);
	ValueId p = gc_input(&c, "p", T2(2, 3), NULL, -1, 1);
	ValueId a = gc_weight(&c, "a", T2(2, 3), -1, 1);
	ValueId b = gc_weight(&c, "b", T2(2, 3), -1, 1);
	ValueId zero = ir_const(c.m, 0, T2(2, 3));
	ValueId pred = ir_binary(c.m, OP_CMP_GT, p, zero);
	gc_weighted_loss(&c, ir_select(c.m, pred, ir_unary(c.m, OP_EXP, a), b));
	ck_assert(gc_check(&c, "select") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(dot_rules)
{
	{ /* plain matmul */
		Case c;
		gc_init(&c, 40);
		ValueId a = gc_weight(&c, "a", T2(2, 3), -1, 1);
		ValueId b = gc_weight(&c, "b", T2(3, 4), -1, 1);
		gc_weighted_loss(&c, ir_matmul(c.m, a, b));
		ck_assert(gc_check(&c, "matmul") > 0.1);
		gc_free(&c);
	}
	{ /* batch dims: [2,3,4] x [2,4,2], batch 0/0, contract 2/1 */
		Case c;
		gc_init(&c, 41);
		ValueId a = gc_weight(&c, "a", gc_ty(DT_F32, 3, 2, 3, 4), -1, 1);
		ValueId b = gc_weight(&c, "b", gc_ty(DT_F32, 3, 2, 4, 2), -1, 1);
		int64_t lc = 2, rc = 1, lb = 0, rb = 0;
		gc_weighted_loss(&c, ir_dot(c.m, a, b, 1, &lc, &rc, 1, &lb, &rb));
		ck_assert(gc_check(&c, "batched dot") > 0.1);
		gc_free(&c);
	}
	{ /* batch not leading, two contracting dims paired out of order:
	   * lhs [3,2,2,2] contract {0,2}, batch 1, free 3;
	   * rhs [2,2,3,2] contract {2,0}, batch 1, free 3 -> [2,2,2] */
		Case c;
		gc_init(&c, 42);
		ValueId a = gc_weight(&c, "a", gc_ty(DT_F32, 4, 3, 2, 2, 2), -1, 1);
		ValueId b = gc_weight(&c, "b", gc_ty(DT_F32, 4, 2, 2, 3, 2), -1, 1);
		int64_t lc[] = {0, 2}, rc[] = {2, 0}, lb = 1, rb = 1;
		gc_weighted_loss(&c, ir_dot(c.m, a, b, 2, lc, rc, 1, &lb, &rb));
		ck_assert(gc_check(&c, "general dot") > 0.1);
		gc_free(&c);
	}
	{ /* an outer product (no contraction) with the rhs first in a chain */
		Case c;
		gc_init(&c, 43);
		ValueId a = gc_weight(&c, "a", gc_ty(DT_F32, 1, 3), -1, 1);
		ValueId b = gc_weight(&c, "b", gc_ty(DT_F32, 1, 2), -1, 1);
		gc_weighted_loss(&c, ir_dot(c.m, b, a, 0, NULL, NULL, 0, NULL, NULL));
		ck_assert(gc_check(&c, "outer product") > 0.1);
		gc_free(&c);
	}
}
END_TEST

START_TEST(reduce_rules)
{
	Case c;
	gc_init(&c, 50);
	ValueId x = gc_weight(&c, "x", gc_ty(DT_F32, 3, 2, 3, 2), -1, 1);
	/* distinct values 1/6 apart, so reduce_max's argmax is stable under +-h */
	for (int i = 0; i < 12; i++)
		c.in[0].data[i] = (float)((i * 7) % 12) / 6.0f - 1.0f;
	int64_t d1 = 1, d02[] = {0, 2};
	ValueId s1 = ir_reduce(c.m, OP_REDUCE_SUM, x, 1, &d1);       /* [2,2] */
	ValueId s2 = ir_reduce(c.m, OP_REDUCE_SUM, ir_unary(c.m, OP_TANH, x), 2, d02); /* [3] */
	ValueId mx = ir_reduce(c.m, OP_REDUCE_MAX, x, 1, &d1);       /* [2,2] */
	int64_t d0 = 0;
	ValueId s2b = ir_broadcast(c.m, s2, gc_ty(DT_F32, 2, 2, 3), 1, &d1);
	ValueId t = ir_reduce(c.m, OP_REDUCE_SUM, s2b, 1, &d1);      /* [2] */
	ValueId tb = ir_broadcast(c.m, t, T2(2, 2), 1, &d0);
	gc_weighted_loss(&c, ir_binary(c.m, OP_ADD, ir_binary(c.m, OP_MUL, s1, mx), tb));
	ck_assert(gc_check(&c, "reduce") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(softmax_rule)
{
	for (int dim = 0; dim < 2; dim++) {
		Case c;
		gc_init(&c, 60 + dim);
		ValueId x = gc_weight(&c, "x", T2(3, 4), -2, 2);
		gc_weighted_loss(&c, ir_softmax(c.m, x, dim));
		ck_assert(gc_check(&c, "softmax") > 0.1);
		gc_free(&c);
	}
}
END_TEST

START_TEST(layout_rules)
{
	Case c;
	gc_init(&c, 70);
	ValueId v = gc_weight(&c, "v", gc_ty(DT_F32, 1, 3), -1, 1);
	ValueId col = gc_weight(&c, "col", T2(2, 1), -1, 1);
	ValueId s = gc_weight(&c, "s", gc_ty(DT_F32, 0), -1, 1);
	ValueId x = gc_weight(&c, "x", gc_ty(DT_F32, 3, 2, 3, 4), -1, 1);
	int64_t d1 = 1, d01[] = {0, 1};
	ValueId bv = ir_broadcast(c.m, v, T2(2, 3), 1, &d1);
	ValueId bc = ir_broadcast(c.m, col, T2(2, 3), 2, d01);      /* size-1 expand */
	ValueId bs = ir_broadcast(c.m, s, T2(2, 3), 0, NULL);
	int64_t perm[] = {2, 0, 1};
	ValueId xt = ir_transpose(c.m, x, perm);                    /* [4,2,3] */
	int64_t st[] = {1, 0, 0}, lim[] = {3, 2, 3};
	ValueId xs = ir_slice(c.m, xt, st, lim);                    /* [2,2,3] */
	int64_t rs[] = {4, 3};
	ValueId xr = ir_reshape(c.m, xs, 2, rs);                    /* [4,3] */
	ValueId sum = ir_binary(c.m, OP_ADD, ir_binary(c.m, OP_MUL, bv, bc), bs);
	ValueId parts[] = {sum, sum, bv};
	ValueId cat = ir_concat(c.m, 3, parts, 0);                  /* [6,3] */
	int64_t rs2[] = {2, 3, 3};
	ValueId cat3 = ir_reshape(c.m, cat, 3, rs2);
	int64_t d0 = 0;
	ValueId red = ir_reduce(c.m, OP_REDUCE_SUM, cat3, 1, &d0);  /* [3,3] */
	int64_t st3[] = {0, 0}, lim3[] = {3, 3};
	ValueId parts2[] = {ir_slice(c.m, xr, st3, lim3), red};
	gc_weighted_loss(&c, ir_unary(c.m, OP_TANH, ir_concat(c.m, 2, parts2, 1)));
	ck_assert(gc_check(&c, "layout") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(gather_rule)
{
	/* Repeated indices: rows 1 and 3 are used twice and must accumulate. */
	Case c;
	gc_init(&c, 80);
	ValueId tab = gc_weight(&c, "table", T2(5, 3), -1, 1);
	float iv[] = {1, 3, 1, 4, 3, 0};
	ValueId idx = gc_input(&c, "idx", gc_ty(DT_S32, 2, 2, 3), iv, 0, 0);
	gc_weighted_loss(&c, ir_unary(c.m, OP_TANH, ir_gather(c.m, tab, idx)));
	ck_assert(gc_check(&c, "gather") > 0.1);
	/* row 2 is never gathered: its gradient is exactly zero */
	Tensor out[2];
	gc_run(&c, out);
	for (int j = 0; j < 3; j++)
		ck_assert_float_eq(out[1].data[2 * 3 + j], 0.0f);
	gc_free_out(out, 2);
	gc_free(&c);
}
END_TEST

static int count_op(const Module *m, int from, Op op)
{
	int n = 0;
	for (int i = from; i < m->ninsts; i++)
		n += m->insts[i].op == op;
	return n;
}

START_TEST(collective_rules)
{
	/* On one chip every collective below is the identity (the "one" axis has
	 * size 1), so finite differences apply; the structure of the backward
	 * pass shows each collective's transpose. */
	Case c;
	gc_init(&c, 90);
	c.m->mesh.naxes = 2;
	c.m->mesh.axes[0] = (MeshAxis){"data", 4, 1};
	c.m->mesh.axes[1] = (MeshAxis){"one", 1, 1};
	ValueId x = gc_weight(&c, "x", T2(4, 2), -1, 1);
	ValueId y = ir_collective(c.m, OP_ALL_REDUCE, x, 1u, 0);
	y = ir_collective(c.m, OP_COLLECTIVE_PERMUTE, ir_unary(c.m, OP_TANH, y), 1u, 0);
	y = ir_collective(c.m, OP_ALL_GATHER, y, 2u, 1);
	y = ir_collective(c.m, OP_REDUCE_SCATTER, ir_unary(c.m, OP_EXP, y), 2u, 0);
	ValueId a2a = ir_collective(c.m, OP_ALL_TO_ALL, y, 2u, 0);
	int64_t one = 1;
	ir_set_ints(c.m, a2a, "concat_dim", 1, &one);
	gc_weighted_loss(&c, a2a);
	int nfwd = c.m->ninsts;
	ck_assert(gc_check(&c, "collectives") > 0.1);
	ck_assert_int_eq(count_op(c.m, nfwd, OP_ALL_REDUCE), 1);
	ck_assert_int_eq(count_op(c.m, nfwd, OP_COLLECTIVE_PERMUTE), 1);
	ck_assert_int_eq(count_op(c.m, nfwd, OP_REDUCE_SCATTER), 1); /* from all_gather */
	ck_assert_int_eq(count_op(c.m, nfwd, OP_ALL_GATHER), 1);     /* from reduce_scatter */
	for (int i = nfwd; i < c.m->ninsts; i++) {
		const Inst *in = &c.m->insts[i];
		if (in->op == OP_ALL_TO_ALL) { /* split and concat swapped */
			ck_assert_int_eq(ir_attr_int(in, "split_dim", -1), 1);
			ck_assert_int_eq(ir_attr_int(in, "concat_dim", -1), 0);
		}
		if (in->op == OP_COLLECTIVE_PERMUTE)
			ck_assert_int_eq(ir_attr_int(in, "shift", 0), -1);
		if (in->op == OP_REDUCE_SCATTER)
			ck_assert_int_eq(ir_attr_int(in, "dim", -1), 1);
	}
	gc_free(&c);
}
END_TEST

START_TEST(unused_weight_and_errors)
{
	Case c;
	gc_init(&c, 95);
	ValueId x = gc_weight(&c, "x", T2(2, 2), -1, 1);
	gc_weight(&c, "unused", T2(2, 2), -1, 1);
	gc_weighted_loss(&c, ir_unary(c.m, OP_EXP, x));
	Grads g = gc_autodiff(&c, REMAT_NONE);
	ck_assert_int_eq(g.n, 2);
	Tensor out[3];
	gc_run(&c, out);
	for (int j = 0; j < 4; j++)
		ck_assert_float_eq(out[2].data[j], 0.0f);
	gc_free_out(out, 3);
	/* a non-scalar loss is refused */
	Diag d;
	diag_init(&d);
	ck_assert_int_ne(autodiff(c.m, x, REMAT_NONE, &g, &d), 0);
	ck_assert_ptr_nonnull(strstr(d.msg, "scalar"));
	gc_free(&c);
}
END_TEST

/* ---- Models ---------------------------------------------------------------*/

/* -mean over rows of log softmax(logits)[label]: logits [N, V] f32. */
static ValueId cross_entropy(Module *m, ValueId logits, ValueId labels)
{
	Type t = m->insts[logits].type;
	int64_t last = t.rank - 1;
	ValueId oh = ir_one_hot(m, labels, t.dims[last], DT_F32);
	ValueId logp = ir_unary(m, OP_LOG, ir_softmax(m, logits, (int)last));
	int64_t dims[IR_MAX_RANK];
	for (int i = 0; i < t.rank; i++)
		dims[i] = i;
	ValueId s = ir_reduce(m, OP_REDUCE_SUM, ir_binary(m, OP_MUL, oh, logp), t.rank, dims);
	Type sc = {0};
	sc.dtype = DT_F32;
	double n = (double)type_numel(&t) / (double)t.dims[last];
	return ir_binary(m, OP_DIV, ir_unary(m, OP_NEG, s), ir_const(m, n, sc));
}

START_TEST(mlp_softmax_cross_entropy)
{
	Case c;
	gc_init(&c, 100);
	ValueId x = gc_input(&c, "x", T2(4, 3), NULL, -1, 1);
	float lab[] = {0, 2, 1, 2};
	ValueId labels = gc_input(&c, "labels", gc_ty(DT_S32, 1, 4), lab, 0, 0);
	ValueId w1 = gc_weight(&c, "w1", T2(3, 5), -1, 1);
	ValueId b1 = gc_weight(&c, "b1", gc_ty(DT_F32, 1, 5), -0.5f, 0.5f);
	ValueId w2 = gc_weight(&c, "w2", T2(5, 3), -1, 1);
	int64_t d1 = 1;
	ValueId h = ir_binary(c.m, OP_ADD, ir_matmul(c.m, x, w1),
	                      ir_broadcast(c.m, b1, T2(4, 5), 1, &d1));
	ValueId logits = ir_matmul(c.m, ir_unary(c.m, OP_GELU, h), w2);
	ir_output(c.m, cross_entropy(c.m, logits, labels));
	ck_assert(gc_check(&c, "mlp") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(attention_block)
{
	/* x [B=2,T=3,D=4]; q,k,v = x Wq,k,v with W [D, H=2, Q=2]; scores per
	 * head over the sequence (dot with batch dims), softmax, weighted sum of
	 * values, output projection Wo [H,Q,D], residual. */
	Case c;
	gc_init(&c, 110);
	ValueId x = gc_input(&c, "x", gc_ty(DT_F32, 3, 2, 3, 4), NULL, -1, 1);
	Type wt = gc_ty(DT_F32, 3, 4, 2, 2);
	ValueId wq = gc_weight(&c, "wq", wt, -1, 1);
	ValueId wk = gc_weight(&c, "wk", wt, -1, 1);
	ValueId wv = gc_weight(&c, "wv", wt, -1, 1);
	ValueId wo = gc_weight(&c, "wo", gc_ty(DT_F32, 3, 2, 2, 4), -1, 1);
	int64_t c2 = 2, c0 = 0;
	ValueId q = ir_dot(c.m, x, wq, 1, &c2, &c0, 0, NULL, NULL); /* [B,T,H,Q] */
	ValueId k = ir_dot(c.m, x, wk, 1, &c2, &c0, 0, NULL, NULL);
	ValueId v = ir_dot(c.m, x, wv, 1, &c2, &c0, 0, NULL, NULL);
	int64_t b02[] = {0, 2}, c3 = 3;
	ValueId s = ir_dot(c.m, q, k, 1, &c3, &c3, 2, b02, b02);    /* [B,H,T,S] */
	s = ir_binary(c.m, OP_MUL, s, ir_const(c.m, 1 / sqrt(2.0), gc_ty(DT_F32, 4, 2, 2, 3, 3)));
	ValueId p = ir_softmax(c.m, s, 3);
	int64_t lb[] = {0, 1}, rb[] = {0, 2}, c1 = 1;
	ValueId o = ir_dot(c.m, p, v, 1, &c3, &c1, 2, lb, rb);      /* [B,H,T,Q] */
	int64_t oc[] = {1, 3}, wc[] = {0, 1};
	ValueId out = ir_dot(c.m, o, wo, 2, oc, wc, 0, NULL, NULL); /* [B,T,D] */
	gc_weighted_loss(&c, ir_binary(c.m, OP_ADD, x, out));
	ck_assert(gc_check(&c, "attention") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(moe_gather_one_hot)
{
	/* Tokens pick an expert (given top-1 choices); the router's probability
	 * for the choice gates the expert's output. The expert matrices are
	 * gathered per token (gather of a rank-3 table), the gate through
	 * one_hot. */
	Case c;
	gc_init(&c, 120);
	ValueId x = gc_input(&c, "x", T2(4, 3), NULL, -1, 1);
	float ch[] = {1, 0, 1, 1};
	ValueId choice = gc_input(&c, "choice", gc_ty(DT_S32, 1, 4), ch, 0, 0);
	ValueId wr = gc_weight(&c, "router", T2(3, 2), -1, 1);
	ValueId ex = gc_weight(&c, "experts", gc_ty(DT_F32, 3, 2, 3, 3), -1, 1);
	ValueId probs = ir_softmax(c.m, ir_matmul(c.m, x, wr), 1);           /* [4,2] */
	ValueId oh = ir_one_hot(c.m, choice, 2, DT_F32);
	int64_t d1 = 1, d0 = 0;
	ValueId gate = ir_reduce(c.m, OP_REDUCE_SUM, ir_binary(c.m, OP_MUL, probs, oh), 1, &d1);
	ValueId w = ir_gather(c.m, ex, choice);                              /* [4,3,3] */
	ValueId y = ir_dot(c.m, x, w, 1, &d1, &d1, 1, &d0, &d0);             /* [4,3] */
	y = ir_binary(c.m, OP_MUL, y, ir_broadcast(c.m, gate, T2(4, 3), 1, &d0));
	gc_weighted_loss(&c, y);
	ck_assert(gc_check(&c, "moe") > 0.1);
	gc_free(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("autodiff");
	TCase *tc = tcase_create("rules");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, unary_rules);
	tcase_add_test(tc, convert_rule);
	tcase_add_test(tc, binary_rules);
	tcase_add_test(tc, fan_out_accumulates);
	tcase_add_test(tc, select_rule);
	tcase_add_test(tc, dot_rules);
	tcase_add_test(tc, reduce_rules);
	tcase_add_test(tc, softmax_rule);
	tcase_add_test(tc, layout_rules);
	tcase_add_test(tc, gather_rule);
	tcase_add_test(tc, collective_rules);
	tcase_add_test(tc, unused_weight_and_errors);
	suite_add_tcase(s, tc);
	TCase *tm = tcase_create("models");
	tcase_set_timeout(tm, 120);
	tcase_add_test(tm, mlp_softmax_cross_entropy);
	tcase_add_test(tm, attention_block);
	tcase_add_test(tm, moe_gather_one_hot);
	suite_add_tcase(s, tm);
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
