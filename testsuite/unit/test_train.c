/*
 * The training step: optimizer updates against hand-computed Adam and
 * Adafactor steps, remat policies (same gradients, more hardware FLOPs, same
 * model FLOPs), FLOP conventions, and the PaLM closed form on a hand-built
 * dense decoder.
 */
#include "gradcheck.h"

static Type scalar(void)
{
	return gc_ty(DT_F32, 0);
}

/* loss = sum(w * x): the gradient is x. */
static Case linear_case(Type t, const float *w, const float *x)
{
	Case c;
	gc_init(&c, 1);
	ValueId wv = gc_param(&c, "w", "weight", t, w, 0, 0);
	ValueId xv = gc_input(&c, "x", t, x, 0, 0);
	int64_t dims[IR_MAX_RANK];
	for (int i = 0; i < t.rank; i++)
		dims[i] = i;
	ir_output(c.m, ir_reduce(c.m, OP_REDUCE_SUM, ir_binary(c.m, OP_MUL, wv, xv), t.rank, dims));
	return c;
}

/* Runs step on the forward's inputs followed by the given state tensors. */
static void run_step(const Module *step, Case *c, const Tensor *state, int nstate, Tensor *out)
{
	Tensor in[GC_MAX_IN];
	memcpy(in, c->in, sizeof(Tensor) * (size_t)c->nin);
	memcpy(in + c->nin, state, sizeof(Tensor) * (size_t)nstate);
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_interp(step, in, c->nin + nstate, NULL, out, NULL, &d) == 0, "%s", d.msg);
}

/* rel: the optimizer runs in f32 with constants such as 0.9 that f32 does
 * not represent exactly, so results carry relative errors of a few 1e-7. */
static void expect_near(const float *got, const float *want, int n, double rel, const char *what)
{
	for (int i = 0; i < n; i++)
		ck_assert_msg(fabs(got[i] - want[i]) <= rel * (1e-6 + fabs(want[i])),
		              "%s[%d]: got %.9g, want %.9g", what, i, (double)got[i], (double)want[i]);
}

START_TEST(adam_first_and_second_step)
{
	float w[] = {1, -2, 0.5f}, x[] = {0.5f, -1, 2};
	Case c = linear_case(gc_ty(DT_F32, 1, 3), w, x);
	TrainOptions o;
	train_options_default(&o);
	o.optimizer = OPTIMIZER_ADAM;
	o.lr = 0.1;
	Diag d;
	diag_init(&d);
	Module *step = train_step(c.m, &o, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	/* outputs: loss, w', step', m', v' */
	ck_assert_int_eq(step->noutputs, 5);
	float zero3[3] = {0, 0, 0}, s0[1] = {0};
	Tensor st[3] = {{scalar(), s0}, {gc_ty(DT_F32, 1, 3), zero3}, {gc_ty(DT_F32, 1, 3), zero3}};
	Tensor out[5];
	run_step(step, &c, st, 3, out);
	/* loss = 0.5 + 2 + 1 */
	ck_assert_float_eq_tol(out[0].data[0], 3.5f, 1e-6f);
	/* t = 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2, so
	 * w' = w - lr g / (|g| + eps) = w - 0.1 sign(g). */
	float w1[] = {0.9f, -1.9f, 0.4f}, m1[] = {0.05f, -0.1f, 0.2f}, v1[] = {0.00025f, 0.001f, 0.004f};
	expect_near(out[1].data, w1, 3, 1e-5, "w after step 1");
	ck_assert_float_eq(out[2].data[0], 1.0f);
	expect_near(out[3].data, m1, 3, 1e-5, "m after step 1");
	expect_near(out[4].data, v1, 3, 1e-5, "v after step 1");
	/* t = 2 with the same gradient: m = 0.19 g, v = 0.001999 g^2; the bias
	 * corrections 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999 undo them, so
	 * the step is again 0.1 sign(g). */
	Tensor st2[3] = {{scalar(), out[2].data}, {gc_ty(DT_F32, 1, 3), out[3].data},
	                 {gc_ty(DT_F32, 1, 3), out[4].data}};
	Tensor out2[5];
	run_step(step, &c, st2, 3, out2);
	float w2[] = {0.9f, -1.9f, 0.4f}, m2[] = {0.095f, -0.19f, 0.38f};
	float v2[] = {0.00049975f, 0.001999f, 0.007996f};
	expect_near(out2[1].data, w2, 3, 1e-5, "w after step 2 (from w)");
	ck_assert_float_eq(out2[2].data[0], 2.0f);
	expect_near(out2[3].data, m2, 3, 1e-5, "m after step 2");
	expect_near(out2[4].data, v2, 3, 1e-5, "v after step 2");
	gc_free_out(out, 5);
	gc_free_out(out2, 5);
	ir_module_free(step);

	/* decoupled weight decay 0.1: w' = w - 0.1 (sign(g) + 0.1 w) */
	o.weight_decay = 0.1;
	step = train_step(c.m, &o, &d);
	run_step(step, &c, st, 3, out);
	float wd[] = {0.89f, -1.88f, 0.395f};
	expect_near(out[1].data, wd, 3, 1e-5, "w with weight decay");
	gc_free_out(out, 5);
	ir_module_free(step);
	gc_free(&c);
}
END_TEST

START_TEST(adafactor_factored_step)
{
	/* g = x is the outer product [1,2] x [1,-1,3], for which the factored
	 * second moment is exact: vr = row means of g^2 = [11/3, 44/3],
	 * vc = column means = [2.5, 2.5, 22.5], V = vr vc / mean(vr) = g^2, so
	 * u = sign(g), RMS(u) = 1 (no clipping) and w' = w - lr sign(g). At
	 * t = 1, beta2 = 1 - 1^-0.8 = 0: the old state does not matter. */
	float w[] = {1, 2, 3, -1, -2, -3}, x[] = {1, -1, 3, 2, -2, 6};
	Case c = linear_case(gc_ty(DT_F32, 2, 2, 3), w, x);
	TrainOptions o;
	train_options_default(&o);
	o.lr = 0.1;
	o.adafactor_param_scale = 0;
	Diag d;
	diag_init(&d);
	Module *step = train_step(c.m, &o, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	ck_assert_int_eq(step->noutputs, 5); /* loss, w', step', vr', vc' */
	float s0[] = {0}, vr0[] = {7, 7}, vc0[] = {5, 5, 5};
	Tensor st[3] = {{scalar(), s0}, {gc_ty(DT_F32, 1, 2), vr0}, {gc_ty(DT_F32, 1, 3), vc0}};
	Tensor out[5];
	run_step(step, &c, st, 3, out);
	float w1[] = {0.9f, 2.1f, 2.9f, -1.1f, -1.9f, -3.1f};
	expect_near(out[1].data, w1, 6, 1e-6, "w");
	float vr[] = {11.0f / 3, 44.0f / 3}, vc[] = {2.5f, 2.5f, 22.5f};
	expect_near(out[3].data, vr, 2, 1e-6, "vr");
	expect_near(out[4].data, vc, 3, 1e-6, "vc");
	gc_free_out(out, 5);
	ir_module_free(step);
	gc_free(&c);
}
END_TEST

START_TEST(adafactor_unfactored_clip_and_scale)
{
	/* Rank 1: v is not factored. t = 2: beta2 = 1 - 2^-0.8 = 0.4256508225;
	 * with v = [0.01, 0.01] and g = [1, 2]:
	 * V = [0.5786056857, 2.3016532182], u = g / sqrt(V) = [1.3146454768,
	 * 1.3182872457], RMS(u) = 1.3164676205 > 1, so u is divided by it:
	 * [0.9986158841, 1.0013822027]; w' = w - 0.1 u. */
	float w[] = {0.5f, -1}, x[] = {1, 2};
	Case c = linear_case(gc_ty(DT_F32, 1, 2), w, x);
	TrainOptions o;
	train_options_default(&o);
	o.lr = 0.1;
	o.adafactor_param_scale = 0;
	Diag d;
	diag_init(&d);
	Module *step = train_step(c.m, &o, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	ck_assert_int_eq(step->noutputs, 4); /* loss, w', step', v' */
	float s1[] = {1}, v0[] = {0.01f, 0.01f};
	Tensor st[2] = {{scalar(), s1}, {gc_ty(DT_F32, 1, 2), v0}};
	Tensor out[4];
	run_step(step, &c, st, 2, out);
	float w1[] = {0.40013841159f, -1.10013822027f}, v1[] = {0.5786056857f, 2.3016532182f};
	expect_near(out[1].data, w1, 2, 2e-6, "w");
	expect_near(out[3].data, v1, 2, 1e-6, "v");
	gc_free_out(out, 4);
	ir_module_free(step);
	/* parameter scaling: the step is lr max(1e-3, RMS(w)), RMS(w) =
	 * sqrt((0.25 + 1) / 2) = 0.7905694150 */
	o.adafactor_param_scale = 1;
	step = train_step(c.m, &o, &d);
	run_step(step, &c, st, 2, out);
	float w2[] = {0.42105248246f, -1.07916621423f};
	expect_near(out[1].data, w2, 2, 2e-6, "w with parameter scaling");
	gc_free_out(out, 4);
	ir_module_free(step);
	gc_free(&c);
}
END_TEST

START_TEST(adafactor_momentum)
{
	/* beta1 = 0.9 at t = 1: u = sign(g) (V = g^2), m' = 0.9 m + 0.1 u. */
	float w[] = {1, 1}, x[] = {-3, 0.5f};
	Case c = linear_case(gc_ty(DT_F32, 1, 2), w, x);
	TrainOptions o;
	train_options_default(&o);
	o.lr = 0.5;
	o.adafactor_param_scale = 0;
	o.adafactor_beta1 = 0.9;
	Diag d;
	diag_init(&d);
	Module *step = train_step(c.m, &o, &d);
	ck_assert_int_eq(step->noutputs, 5); /* loss, w', step', v', m' */
	float s0[] = {0}, v0[] = {0, 0}, m0[] = {1, 1};
	Tensor st[3] = {{scalar(), s0}, {gc_ty(DT_F32, 1, 2), v0}, {gc_ty(DT_F32, 1, 2), m0}};
	Tensor out[5];
	run_step(step, &c, st, 3, out);
	float m1[] = {0.8f, 1.0f}, w1[] = {0.6f, 0.5f};
	expect_near(out[4].data, m1, 2, 1e-6, "m");
	expect_near(out[1].data, w1, 2, 1e-6, "w");
	gc_free_out(out, 5);
	ir_module_free(step);
	gc_free(&c);
}
END_TEST

/* The logical=[...] names of state parameter "<w>.<suffix>" of step, joined
 * with ',' into buf. */
static const char *state_logical(const Module *step, const char *name, char *buf, size_t n)
{
	buf[0] = 0;
	for (int i = 0; i < step->ninsts; i++) {
		const Inst *in = &step->insts[i];
		if (in->op != OP_PARAMETER || strcmp(ir_attr_str(in, "name", ""), name))
			continue;
		ck_assert_str_eq(ir_attr_str(in, "role", ""), "opt_state");
		const Attr *a = ir_attr(in, "logical");
		for (int k = 0; a && k < a->n; k++) {
			strncat(buf, a->names[k], n - strlen(buf) - 1);
			if (k + 1 < a->n)
				strncat(buf, ",", n - strlen(buf) - 1);
		}
		return buf;
	}
	ck_abort_msg("no state %s", name);
	return buf;
}

START_TEST(state_follows_weight_layout)
{
	/* A weight's logical axis names carry over to its states, minus the dim
	 * a factored Adafactor moment drops. */
	float w[6] = {1, 2, 3, 4, 5, 6}, x[6] = {1, 1, 1, 1, 1, 1};
	Case c = linear_case(gc_ty(DT_F32, 2, 2, 3), w, x);
	const char *names[] = {"embed", "mlp"};
	ir_set_names(c.m, 0, "logical", 2, names);
	TrainOptions o;
	train_options_default(&o);
	Diag d;
	diag_init(&d);
	char buf[64];
	Module *step = train_step(c.m, &o, &d);
	ck_assert_str_eq(state_logical(step, "w.adafactor_vr", buf, sizeof buf), "embed");
	ck_assert_str_eq(state_logical(step, "w.adafactor_vc", buf, sizeof buf), "mlp");
	ck_assert_str_eq(state_logical(step, "step", buf, sizeof buf), "");
	ir_module_free(step);
	o.optimizer = OPTIMIZER_ADAM;
	step = train_step(c.m, &o, &d);
	ck_assert_str_eq(state_logical(step, "w.adam_m", buf, sizeof buf), "embed,mlp");
	ck_assert_str_eq(state_logical(step, "w.adam_v", buf, sizeof buf), "embed,mlp");
	ir_module_free(step);
	gc_free(&c);
}
END_TEST

START_TEST(train_step_contract_errors)
{
	Diag d;
	TrainOptions o;
	train_options_default(&o);
	Case c;
	gc_init(&c, 3);
	ValueId x = gc_input(&c, "x", gc_ty(DT_F32, 1, 2), NULL, -1, 1);
	diag_init(&d);
	ck_assert_ptr_null(train_step(c.m, &o, &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "no outputs"));
	ir_output(c.m, x);
	diag_init(&d);
	ck_assert_ptr_null(train_step(c.m, &o, &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "scalar f32 loss"));
	c.m->noutputs = 0;
	int64_t d0 = 0;
	ir_output(c.m, ir_reduce(c.m, OP_REDUCE_SUM, x, 1, &d0));
	diag_init(&d);
	ck_assert_ptr_null(train_step(c.m, &o, &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "no role=\"weight\""));
	gc_free(&c);
}
END_TEST

/* ---- A dense decoder, built by hand --------------------------------------*/

typedef struct Dec {
	int B, T, D, H, Q, F, V, L;
} Dec;

static void tag_layer(Module *m, int from, int64_t layer)
{
	for (int i = from; i < m->ninsts; i++)
		ir_set_ints(m, i, "layer", 1, &layer);
}

/* x * rsqrt(mean(x^2, last) + 1e-6): RMS norm without a scale. */
static ValueId rms_norm(Module *m, ValueId x)
{
	Type t = m->insts[x].type;
	int64_t last = t.rank - 1, keep[] = {0, 1};
	ValueId ms = ir_reduce(m, OP_REDUCE_SUM, ir_binary(m, OP_MUL, x, x), 1, &last);
	Type tr = m->insts[ms].type;
	ms = ir_binary(m, OP_ADD, ir_binary(m, OP_DIV, ms, ir_const(m, (double)t.dims[last], tr)),
	               ir_const(m, 1e-6, tr));
	return ir_binary(m, OP_MUL, x, ir_broadcast(m, ir_unary(m, OP_RSQRT, ms), t, 2, keep));
}

/* PaLM-style decoder: tied embedding E [V, D] (lookup in, logits out),
 * per layer causal multi-head attention (Wq, Wk, Wv [D,H,Q], Wo [H,Q,D]) and
 * a GELU MLP (W1 [D,F], W2 [F,D]), pre-norm without parameters, residuals;
 * softmax cross-entropy. */
static void build_decoder(Case *c, const Dec *p, int tag)
{
	Module *m = c->m;
	float tok[64], lab[64];
	for (int i = 0; i < p->B * p->T; i++) {
		tok[i] = (float)((i * 5 + 3) % p->V);
		lab[i] = (float)((i * 3 + 1) % p->V);
	}
	ValueId tokens = gc_input(c, "tokens", gc_ty(DT_S32, 2, p->B, p->T), tok, 0, 0);
	ValueId labels = gc_input(c, "labels", gc_ty(DT_S32, 2, p->B, p->T), lab, 0, 0);
	ValueId E = gc_weight(c, "embed", gc_ty(DT_F32, 2, p->V, p->D), -1, 1);
	ValueId x = ir_gather(m, E, tokens); /* [B,T,D] */
	Type st = gc_ty(DT_F32, 4, p->B, p->H, p->T, p->T);
	for (int l = 0; l < p->L; l++) {
		char nm[32];
		snprintf(nm, sizeof nm, "l%d.wq", l);
		ValueId wq = gc_weight(c, nm, gc_ty(DT_F32, 3, p->D, p->H, p->Q), -0.5f, 0.5f);
		snprintf(nm, sizeof nm, "l%d.wk", l);
		ValueId wk = gc_weight(c, nm, gc_ty(DT_F32, 3, p->D, p->H, p->Q), -0.5f, 0.5f);
		snprintf(nm, sizeof nm, "l%d.wv", l);
		ValueId wv = gc_weight(c, nm, gc_ty(DT_F32, 3, p->D, p->H, p->Q), -0.5f, 0.5f);
		snprintf(nm, sizeof nm, "l%d.wo", l);
		ValueId wo = gc_weight(c, nm, gc_ty(DT_F32, 3, p->H, p->Q, p->D), -0.5f, 0.5f);
		snprintf(nm, sizeof nm, "l%d.w1", l);
		ValueId w1 = gc_weight(c, nm, gc_ty(DT_F32, 2, p->D, p->F), -0.5f, 0.5f);
		snprintf(nm, sizeof nm, "l%d.w2", l);
		ValueId w2 = gc_weight(c, nm, gc_ty(DT_F32, 2, p->F, p->D), -0.5f, 0.5f);
		int from = m->ninsts;
		ValueId n = rms_norm(m, x);
		int64_t c2 = 2, c0 = 0, c3 = 3, c1 = 1, b02[] = {0, 2}, b01[] = {0, 1};
		ValueId q = ir_dot(m, n, wq, 1, &c2, &c0, 0, NULL, NULL);
		ValueId k = ir_dot(m, n, wk, 1, &c2, &c0, 0, NULL, NULL);
		ValueId v = ir_dot(m, n, wv, 1, &c2, &c0, 0, NULL, NULL);
		ValueId s = ir_dot(m, q, k, 1, &c3, &c3, 2, b02, b02); /* [B,H,T,S] */
		s = ir_binary(m, OP_MUL, s, ir_const(m, 1 / sqrt((double)p->Q), st));
		Type it = gc_ty(DT_S32, 4, p->B, p->H, p->T, p->T);
		ValueId causal = ir_binary(m, OP_CMP_GT, ir_iota(m, it, 3), ir_iota(m, it, 2));
		s = ir_select(m, causal, ir_const(m, -1e9, st), s);
		ValueId pr = ir_softmax(m, s, 3);
		ValueId o = ir_dot(m, pr, v, 1, &c3, &c1, 2, b01, b02); /* [B,H,T,Q] */
		int64_t oc[] = {1, 3}, wc[] = {0, 1};
		x = ir_binary(m, OP_ADD, x, ir_dot(m, o, wo, 2, oc, wc, 0, NULL, NULL));
		ValueId h = ir_dot(m, rms_norm(m, x), w1, 1, &c2, &c0, 0, NULL, NULL);
		h = ir_unary(m, OP_GELU, h);
		x = ir_binary(m, OP_ADD, x, ir_dot(m, h, w2, 1, &c2, &c0, 0, NULL, NULL));
		if (tag)
			tag_layer(m, from, l);
	}
	int64_t c2 = 2, c1 = 1;
	ValueId logits = ir_dot(m, rms_norm(m, x), E, 1, &c2, &c1, 0, NULL, NULL); /* [B,T,V] */
	ValueId oh = ir_one_hot(m, labels, p->V, DT_F32);
	ValueId logp = ir_unary(m, OP_LOG, ir_softmax(m, logits, 2));
	int64_t all[] = {0, 1, 2};
	ValueId sum = ir_reduce(m, OP_REDUCE_SUM, ir_binary(m, OP_MUL, oh, logp), 3, all);
	ir_output(m, ir_binary(m, OP_DIV, ir_unary(m, OP_NEG, sum),
	                       ir_const(m, (double)(p->B * p->T), scalar())));
}

static const Dec small = {2, 3, 4, 2, 2, 6, 5, 2};

START_TEST(decoder_gradients)
{
	Case c;
	gc_init(&c, 7);
	Dec p = small;
	p.L = 1;
	build_decoder(&c, &p, 1);
	ck_assert(gc_check(&c, "decoder") > 0.1);
	gc_free(&c);
}
END_TEST

START_TEST(backward_carries_layers)
{
	/* With remat none, the backward instructions of layer l carry layer=[l]
	 * (none are copies); the loss's backward outside the layers carries
	 * none. */
	Case c;
	gc_init(&c, 9);
	build_decoder(&c, &small, 1);
	int nfwd = c.m->ninsts;
	gc_autodiff(&c, REMAT_NONE);
	int per_layer[2] = {0, 0}, untagged = 0;
	for (int i = nfwd; i < c.m->ninsts; i++) {
		int64_t l = ir_attr_int(&c.m->insts[i], "layer", -1);
		if (l < 0)
			untagged++;
		else
			per_layer[l]++;
	}
	ck_assert_int_gt(per_layer[0], 0);
	ck_assert_int_eq(per_layer[0], per_layer[1]); /* the two layers are alike */
	ck_assert_int_gt(untagged, 0);
	gc_free(&c);
}
END_TEST

static int count_remat(const Module *m)
{
	int n = 0;
	for (int i = 0; i < m->ninsts; i++)
		n += ir_attr_int(&m->insts[i], "remat", 0) == 1;
	return n;
}

START_TEST(remat_same_gradients)
{
	Tensor ref[1 + 64];
	int nref = 0;
	for (int pol = REMAT_NONE; pol <= REMAT_FULL; pol++)
		for (int tag = 0; tag < 2; tag++) {
			Case c;
			gc_init(&c, 9);
			build_decoder(&c, &small, tag);
			Grads g = gc_autodiff(&c, (RematPolicy)pol);
			ck_assert_int_eq(g.n, 1 + 6 * small.L);
			if (pol == REMAT_NONE)
				ck_assert_int_eq(count_remat(c.m), 0);
			else
				ck_assert_int_gt(count_remat(c.m), 0);
			Tensor out[1 + 64];
			gc_run(&c, out);
			if (!nref) {
				memcpy(ref, out, sizeof(Tensor) * (size_t)c.m->noutputs);
				nref = c.m->noutputs;
			} else {
				ck_assert_int_eq(c.m->noutputs, nref);
				/* the same f32 operations in the same order: bit-identical */
				for (int k = 0; k < nref; k++)
					ck_assert_msg(memcmp(out[k].data, ref[k].data,
					                     sizeof(float) * (size_t)type_numel(&ref[k].type)) == 0,
					              "remat %s (layers %s): output %d differs",
					              remat_policy_name((RematPolicy)pol), tag ? "tagged" : "untagged", k);
				gc_free_out(out, c.m->noutputs);
			}
			gc_free(&c);
		}
	gc_free_out(ref, nref);
}
END_TEST

static FlopCount step_flops(const Dec *p, RematPolicy pol, int tag)
{
	Case c;
	gc_init(&c, 9);
	build_decoder(&c, p, tag);
	TrainOptions o;
	train_options_default(&o);
	o.remat = pol;
	Diag d;
	diag_init(&d);
	Module *step = train_step(c.m, &o, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	FlopCount f;
	flops_count(step, &f);
	ir_module_free(step);
	gc_free(&c);
	return f;
}

START_TEST(remat_flops_order)
{
	for (int tag = 0; tag < 2; tag++) {
		FlopCount none = step_flops(&small, REMAT_NONE, tag);
		FlopCount mini = step_flops(&small, REMAT_MINIMAL, tag);
		FlopCount full = step_flops(&small, REMAT_FULL, tag);
		ck_assert(none.model == mini.model && mini.model == full.model);
		ck_assert(none.hardware == none.model);
		ck_assert(none.hardware < mini.hardware);
		ck_assert(mini.hardware < full.hardware);
		/* minimal keeps every dot; full recomputes the layers' dots */
		ck_assert(mini.hardware_matmul == mini.model_matmul);
		ck_assert(full.hardware_matmul > full.model_matmul);
		ck_assert(none.optimizer > 0 && none.optimizer == full.optimizer);
	}
	/* With layers tagged, full keeps each layer's input and recomputes each
	 * layer's forward dots once: hardware matmul FLOPs = model + forward
	 * layer dots. Untagged, the whole model (the logits dot too) is one
	 * layer and is recomputed. */
	FlopCount t = step_flops(&small, REMAT_FULL, 1), u = step_flops(&small, REMAT_FULL, 0);
	ck_assert(u.hardware_matmul > t.hardware_matmul);
	const Dec *p = &small;
	double tokens = p->B * p->T;
	double layer_fwd = tokens * p->L * (2.0 * (4 * p->D * p->H * p->Q + 2 * p->D * p->F) +
	                                    4.0 * p->H * p->Q * p->T);
	ck_assert_double_eq_tol(t.hardware_matmul - t.model_matmul, layer_fwd, 1e-6);
}
END_TEST

START_TEST(decoder_flops_closed_form)
{
	/* PaLM appendix B: 6N + 12LHQT matmul FLOPs per token. N counts the
	 * matmul parameters: the tied embedding (as the logits layer) and each
	 * layer's 4DHQ + 2DF. */
	const Dec shapes[] = {{2, 3, 4, 2, 2, 6, 5, 2}, {1, 8, 16, 4, 4, 64, 32, 3}};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const Dec *p = &shapes[i];
		FlopCount f = step_flops(p, REMAT_NONE, 1);
		double n = (double)p->V * p->D +
		           (double)p->L * (4.0 * p->D * p->H * p->Q + 2.0 * p->D * p->F);
		double want = p->B * p->T * flops_palm_per_token(n, p->L, p->H, p->Q, p->T);
		ck_assert_msg(f.model_matmul == want, "decoder %zu: graph %.17g, closed form %.17g", i,
		              f.model_matmul, want);
	}
}
END_TEST

START_TEST(flop_conventions)
{
	Module *m = ir_module_new("f", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", gc_ty(DT_F32, 2, 2, 3));
	ValueId b = ir_param(m, "b", gc_ty(DT_F32, 2, 3, 4));
	ValueId mm = ir_matmul(m, a, b);
	ValueId e = ir_unary(m, OP_EXP, a);
	int64_t d1 = 1, perm[] = {1, 0};
	ValueId r = ir_reduce(m, OP_REDUCE_SUM, a, 1, &d1);
	ValueId s = ir_softmax(m, a, 1);
	ValueId t = ir_transpose(m, a, perm);
	ck_assert_double_eq(flops_inst(m, mm), 2.0 * 2 * 4 * 3);
	ck_assert_double_eq(flops_inst(m, e), 6);
	ck_assert_double_eq(flops_inst(m, r), 6);
	ck_assert_double_eq(flops_inst(m, s), 30);
	ck_assert_double_eq(flops_inst(m, t), 0);
	ck_assert_double_eq(flops_inst(m, a), 0);
	ck_assert_double_eq(flops_palm_per_token(100, 2, 3, 4, 5), 600 + 12 * 2 * 3 * 4 * 5);
	ir_module_free(m);
}
END_TEST

START_TEST(train_step_end_to_end)
{
	/* Adam step 1 on the decoder: every weight moves by lr g / (|g| + eps),
	 * with g from autodiff (itself checked against finite differences). */
	Case c;
	gc_init(&c, 11);
	Dec p = small;
	p.L = 1;
	build_decoder(&c, &p, 1);
	TrainOptions o;
	train_options_default(&o);
	o.optimizer = OPTIMIZER_ADAM;
	o.remat = REMAT_FULL;
	o.lr = 1e-3;
	Diag d;
	diag_init(&d);
	Module *step = train_step(c.m, &o, &d);
	ck_assert_msg(step != NULL, "%s", d.msg);
	int nw = 1 + 6 * p.L;
	ck_assert_int_eq(step->noutputs, 1 + nw + 1 + 2 * nw);
	/* state parameters: role opt_state, after the forward's */
	Tensor st[1 + 2 * 7];
	int ns = 0;
	int np = 0;
	for (int i = 0; i < step->ninsts; i++) {
		const Inst *in = &step->insts[i];
		if (in->op != OP_PARAMETER)
			continue;
		if (np++ < c.nin)
			continue;
		ck_assert_str_eq(ir_attr_str(in, "role", ""), "opt_state");
		st[ns].type = in->type;
		st[ns].data = calloc((size_t)type_numel(&in->type) + 1, sizeof(float));
		ns++;
	}
	ck_assert_int_eq(ns, 1 + 2 * nw);
	Tensor out[64];
	run_step(step, &c, st, ns, out);
	Grads g = gc_autodiff(&c, REMAT_NONE);
	Tensor ref[64];
	gc_run(&c, ref);
	ck_assert_float_eq(out[0].data[0], ref[0].data[0]);
	for (int k = 0; k < g.n; k++) {
		const Tensor *w = &c.in[gc_input_index(c.m, g.weights[k])];
		for (int64_t j = 0; j < type_numel(&w->type); j++) {
			double gr = ref[1 + k].data[j];
			double want = w->data[j] - 1e-3 * gr / (fabs(gr) + 1e-8);
			ck_assert_msg(fabs(out[1 + k].data[j] - want) <= 1e-6 * (1 + fabs(want)),
			              "weight %d[%lld]: %.9g, want %.9g", k, (long long)j,
			              (double)out[1 + k].data[j], want);
		}
	}
	gc_free_out(out, step->noutputs);
	gc_free_out(ref, c.m->noutputs);
	gc_free_out(st, ns);
	ir_module_free(step);
	gc_free(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("train");
	TCase *tc = tcase_create("train");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, adam_first_and_second_step);
	tcase_add_test(tc, adafactor_factored_step);
	tcase_add_test(tc, adafactor_unfactored_clip_and_scale);
	tcase_add_test(tc, adafactor_momentum);
	tcase_add_test(tc, train_step_contract_errors);
	tcase_add_test(tc, state_follows_weight_layout);
	tcase_add_test(tc, decoder_gradients);
	tcase_add_test(tc, backward_carries_layers);
	tcase_add_test(tc, remat_same_gradients);
	tcase_add_test(tc, remat_flops_order);
	tcase_add_test(tc, decoder_flops_closed_form);
	tcase_add_test(tc, flop_conventions);
	tcase_add_test(tc, train_step_end_to_end);
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
