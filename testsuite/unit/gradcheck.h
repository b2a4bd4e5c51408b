/*
 * Test helpers shared by test_autodiff.c and test_train.c: build small
 * forward models with random parameters, and check autodiff's gradients
 * against central finite differences on the reference interpreter.
 *
 * Tolerances. The interpreter computes in f32, so a finite difference
 * (L(x+h) - L(x-h)) / 2h carries a truncation error of about h^2/6 |L'''|
 * and a rounding error of about eps_f32 |L| / h. With h = 1e-2, |L| <= 10 and
 * O(1) third derivatives both are below 2e-4; we accept
 * |analytic - fd| <= 3e-3 (1 + |fd|), an order of magnitude above that and
 * far below the O(1) error a wrong rule makes (the gradients here are O(1)).
 */
#ifndef PODSIM_TEST_GRADCHECK_H
#define PODSIM_TEST_GRADCHECK_H

#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/train.h"
#include "ir/ir.h"

#define GC_MAX_IN 32

typedef struct Case {
	Module *m;
	int nin;
	Tensor in[GC_MAX_IN]; /* one per parameter, in instruction order */
	uint64_t rng;
} Case;

static inline Type gc_ty(DType dt, int rank, ...)
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

static inline float gc_uniform(Case *c, float lo, float hi)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return lo + (hi - lo) * (float)((c->rng >> 11) * 0x1.0p-53);
}

static inline void gc_init(Case *c, uint64_t seed)
{
	memset(c, 0, sizeof *c);
	c->m = ir_module_new("case", LEVEL_GRAPH);
	c->rng = seed * 2654435761u + 88172645463325252ull;
}

static inline void gc_free(Case *c)
{
	for (int i = 0; i < c->nin; i++)
		free(c->in[i].data);
	ir_module_free(c->m);
}

/* A parameter with role and data (copied) or uniform random data in [lo, hi). */
static inline ValueId gc_param(Case *c, const char *name, const char *role, Type t,
                               const float *data, float lo, float hi)
{
	ck_assert_int_lt(c->nin, GC_MAX_IN);
	ValueId v = ir_param(c->m, name, t);
	ir_set_str(c->m, v, "role", role);
	int64_t n = type_numel(&t);
	Tensor *x = &c->in[c->nin++];
	x->type = t;
	x->data = malloc(sizeof(float) * (size_t)(n ? n : 1));
	for (int64_t i = 0; i < n; i++)
		x->data[i] = data ? data[i] : gc_uniform(c, lo, hi);
	return v;
}

static inline ValueId gc_weight(Case *c, const char *name, Type t, float lo, float hi)
{
	return gc_param(c, name, "weight", t, NULL, lo, hi);
}

static inline ValueId gc_input(Case *c, const char *name, Type t, const float *data,
                               float lo, float hi)
{
	return gc_param(c, name, "input", t, data, lo, hi);
}

/* loss = sum(y * r) for a random input r of y's shape (f32), as the first
 * output: every element of y gets a different O(1) adjoint. */
static inline ValueId gc_weighted_loss(Case *c, ValueId y)
{
	Type t = c->m->insts[y].type;
	memset(t.shard, 0, sizeof t.shard);
	if (t.dtype != DT_F32) {
		y = ir_convert(c->m, y, DT_F32);
		t.dtype = DT_F32;
	}
	ValueId r = gc_input(c, "r", t, NULL, -1, 1);
	ValueId p = ir_binary(c->m, OP_MUL, y, r);
	int64_t dims[IR_MAX_RANK];
	for (int i = 0; i < t.rank; i++)
		dims[i] = i;
	ValueId loss = ir_reduce(c->m, OP_REDUCE_SUM, p, t.rank, dims);
	ir_output(c->m, loss);
	return loss;
}

/* The input index of parameter value v. */
static inline int gc_input_index(const Module *m, ValueId v)
{
	int k = 0;
	for (ValueId i = 0; i < v; i++)
		k += m->insts[i].op == OP_PARAMETER;
	return k;
}

static inline float gc_loss(Case *c)
{
	Tensor out[1 + 64];
	Diag d;
	diag_init(&d);
	ck_assert_int_le(c->m->noutputs, 1 + 64);
	ck_assert_msg(ir_interp(c->m, c->in, c->nin, NULL, out, NULL, &d) == 0, "%s", d.msg);
	float l = out[0].data[0];
	for (int i = 0; i < c->m->noutputs; i++)
		free(out[i].data);
	return l;
}

/* Appends the backward pass (policy remat) and makes the outputs
 * [loss, grads...]; returns the gradients. */
static inline Grads gc_autodiff(Case *c, RematPolicy remat)
{
	ValueId loss = c->m->outputs[0];
	Grads g;
	Diag d;
	diag_init(&d);
	ck_assert_msg(autodiff(c->m, loss, remat, &g, &d) == 0, "%s", d.msg);
	c->m->noutputs = 0;
	ir_output(c->m, loss);
	for (int k = 0; k < g.n; k++)
		ir_output(c->m, g.grads[k]);
	return g;
}

/* Runs the module; out[i] receives output i (caller frees with gc_free_out). */
static inline void gc_run(Case *c, Tensor *out)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_interp(c->m, c->in, c->nin, NULL, out, NULL, &d) == 0, "%s", d.msg);
}

static inline void gc_free_out(Tensor *out, int n)
{
	for (int i = 0; i < n; i++)
		free(out[i].data);
}

/* The check: autodiff (no remat) against central differences for every
 * element of every weight. Returns the sum of |gradient| (callers assert it
 * is not trivially zero). */
static inline double gc_check(Case *c, const char *what)
{
	Grads g = gc_autodiff(c, REMAT_NONE);
	ck_assert_int_le(g.n, 64);
	Tensor out[1 + 64];
	gc_run(c, out);
	const float h = 1e-2f;
	double total = 0;
	for (int k = 0; k < g.n; k++) {
		Tensor *x = &c->in[gc_input_index(c->m, g.weights[k])];
		const float *an = out[1 + k].data;
		ck_assert_int_eq(type_numel(&out[1 + k].type), type_numel(&x->type));
		for (int64_t j = 0; j < type_numel(&x->type); j++) {
			float x0 = x->data[j];
			x->data[j] = x0 + h;
			float lp = gc_loss(c);
			x->data[j] = x0 - h;
			float lm = gc_loss(c);
			x->data[j] = x0;
			double fd = ((double)lp - (double)lm) / (2.0 * h);
			ck_assert_msg(fabs(an[j] - fd) <= 3e-3 * (1 + fabs(fd)),
			              "%s: d loss / d %s[%lld]: autodiff %.6g, finite difference %.6g", what,
			              ir_attr_str(&c->m->insts[g.weights[k]], "name", "?"), (long long)j,
			              (double)an[j], fd);
			total += fabs(an[j]);
		}
	}
	gc_free_out(out, c->m->noutputs);
	return total;
}

#endif
