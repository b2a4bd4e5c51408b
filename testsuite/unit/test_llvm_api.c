/*
 * The codegen API: emitted LLVM text (before and after optimisation), where
 * the fast-math flags go, bf16 rounding in IR, diagnostics for what cannot be
 * lowered, and the Jit handle's lifecycle. Numerics are in
 * test_llvm_kernels.c.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/llvm/codegen.h"
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

static void to_tiled(Module *m)
{
	m->level = LEVEL_TILED;
	for (int v = 0; v < m->ninsts; v++) {
		m->insts[v].unit = ir_ops[m->insts[v].op].unit;
		m->insts[v].mem = MEM_VMEM;
	}
}

/* x[32,64] . w[64,48] + b, relu, and a row sum. */
static Module *small_mlp(ValueId *dot)
{
	Module *m = ir_module_new("mlp", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 32, 64));
	ValueId w = ir_param(m, "w", ty(DT_F32, 2, 64, 48));
	ValueId b = ir_param(m, "b", ty(DT_F32, 2, 32, 48));
	ValueId h = ir_matmul(m, x, w);
	ValueId y = ir_unary(m, OP_RELU, ir_binary(m, OP_ADD, h, b));
	int64_t d = 1;
	ir_output(m, ir_reduce(m, OP_REDUCE_SUM, y, 1, &d));
	to_tiled(m);
	if (dot)
		*dot = h;
	return m;
}

static char *emit(const Module *m, int optimize, int vw, int bf16)
{
	CodegenOptions o;
	codegen_default_options(&o);
	o.optimize = optimize;
	o.vec_width = vw;
	o.bf16 = bf16;
	Diag d;
	diag_init(&d);
	char *s = codegen_emit_llvm(m, &o, &d);
	ck_assert_msg(s != NULL, "emit: %s", d.msg);
	return s;
}

/* The text of the function named name (up to its closing brace). */
static char *function_text(const char *ll, const char *name)
{
	char pat[128];
	snprintf(pat, sizeof pat, "@%s(", name);
	for (const char *p = strstr(ll, pat); p; p = strstr(p + 1, pat)) {
		const char *line = p;
		while (line > ll && line[-1] != '\n')
			line--;
		if (strncmp(line, "define", 6) != 0)
			continue; /* a call or a declaration */
		const char *e = strstr(p, "\n}\n");
		ck_assert_ptr_nonnull(e);
		return strndup(line, (size_t)(e - line + 2));
	}
	ck_abort_msg("no function %s", name);
	return NULL;
}

static int count(const char *s, const char *sub)
{
	int n = 0;
	for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
		n++;
	return n;
}

START_TEST(emit_structure)
{
	ValueId h;
	Module *m = small_mlp(&h);
	/* fused: the dot runs inside relu's kernel (relu(add(dot, b)) is its
	 * epilogue); the add and the dot have no kernel of their own */
	char *ll = emit(m, 0, 8, 0);
	ck_assert_ptr_nonnull(strstr(ll, "define void @podsim_entry(ptr"));
	ck_assert_ptr_nonnull(strstr(ll, "define void @podsim_k5_relu(ptr"));
	ck_assert_ptr_nonnull(strstr(ll, "define void @podsim_k6_reduce_sum(ptr"));
	ck_assert_ptr_null(strstr(ll, "@podsim_k3_dot"));
	ck_assert_ptr_null(strstr(ll, "@podsim_k4_add"));
	ck_assert_ptr_null(strstr(ll, "@podsim_k0_parameter"));
	/* reassoc appears only on the dot's accumulation */
	char *k = function_text(ll, "podsim_k5_relu.impl");
	int in_dot = count(k, "reassoc contract");
	ck_assert_int_gt(in_dot, 0);
	ck_assert_int_eq(count(ll, "reassoc"), in_dot);
	ck_assert_ptr_nonnull(strstr(k, "fmul reassoc contract <8 x float>"));
	ck_assert_ptr_nonnull(strstr(k, "fadd reassoc contract <8 x float>"));
	free(k);
	free(ll);

	/* unfused: one kernel per value, and relu's kernel has no flags */
	CodegenOptions o;
	codegen_default_options(&o);
	o.optimize = 0;
	o.vec_width = 8;
	o.fuse = 0;
	Diag d;
	diag_init(&d);
	ll = codegen_emit_llvm(m, &o, &d);
	ck_assert_msg(ll != NULL, "%s", d.msg);
	ck_assert_ptr_nonnull(strstr(ll, "define void @podsim_k3_dot(ptr"));
	ck_assert_ptr_nonnull(strstr(ll, "define void @podsim_k4_add(ptr"));
	k = function_text(ll, "podsim_k5_relu.impl");
	ck_assert_ptr_null(strstr(k, "reassoc"));
	free(k);
	free(ll);

	/* optimised: still the same symbols and flags, and a valid module */
	ll = emit(m, 1, 8, 0);
	ck_assert_ptr_nonnull(strstr(ll, "define void @podsim_entry(ptr"));
	ck_assert_ptr_nonnull(strstr(ll, "reassoc contract <8 x float>"));
	k = function_text(ll, "podsim_k6_reduce_sum.impl");
	ck_assert_ptr_null(strstr(k, "reassoc"));
	free(k);
	free(ll);
	ir_module_free(m);
}
END_TEST

START_TEST(emit_bf16)
{
	/* bf16 mode: the dot's inputs are rounded in IR (the and with
	 * 0xffff0000 = -65536), f32 mode has no rounding at all */
	Module *m = ir_module_new("b", LEVEL_GRAPH);
	ValueId a = ir_param(m, "a", ty(DT_BF16, 2, 8, 8));
	ValueId b = ir_param(m, "b", ty(DT_BF16, 2, 8, 8));
	ir_output(m, ir_matmul(m, a, b));
	to_tiled(m);
	char *ll = emit(m, 0, 8, 1);
	ck_assert_ptr_nonnull(strstr(ll, "-65536"));
	ck_assert_ptr_nonnull(strstr(ll, "@podsim_k0_parameter")); /* rounds in place */
	free(ll);
	ll = emit(m, 0, 8, 0);
	ck_assert_ptr_null(strstr(ll, "-65536"));
	ck_assert_ptr_null(strstr(ll, "@podsim_k0_parameter"));
	free(ll);
	ir_module_free(m);
}
END_TEST

START_TEST(bf16_rounding_matches_reference)
{
	/* The emitted rounding against bf16_round() on hard cases: ties to even
	 * both ways, carries into the exponent, overflow to inf, NaN, denormals. */
	static const uint32_t bits[] = {
		0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f807fffu, 0x7f7fffffu, 0xff7fffffu,
		0x7f800000u, 0xff800000u, 0x7fc00001u, 0x7f800001u, 0xffa00000u, 0x00000001u,
		0x80018000u, 0x00008000u, 0x00000000u, 0x80000000u, 0x3fffffffu, 0x477fe000u,
	};
	int n = (int)(sizeof bits / sizeof bits[0]);
	Module *m = ir_module_new("r", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 1, n));
	ValueId y = ir_convert(m, x, DT_BF16);
	ir_output(m, y);
	to_tiled(m);
	CodegenOptions o;
	codegen_default_options(&o);
	o.bf16 = 1;
	Diag d;
	diag_init(&d);
	Jit *j = jit_compile(m, &o, &d);
	ck_assert_msg(j != NULL, "%s", d.msg);
	float in[32], out[32];
	memcpy(in, bits, sizeof(uint32_t) * (size_t)n);
	float *bufs[2] = {in, out};
	jit_run(j, bufs);
	for (int i = 0; i < n; i++) {
		float want = bf16_round(in[i]);
		uint32_t g, w;
		memcpy(&g, &out[i], 4);
		memcpy(&w, &want, 4);
		ck_assert_msg(g == w, "input 0x%08x: got 0x%08x, want 0x%08x", bits[i], g, w);
	}
	jit_free(j);
	ir_module_free(m);
}
END_TEST

static void expect_error(Module *m, const char *want)
{
	CodegenOptions o;
	codegen_default_options(&o);
	Diag d;
	diag_init(&d);
	char *s = codegen_emit_llvm(m, &o, &d);
	ck_assert_ptr_null(s);
	ck_assert_int_gt(d.nerrors, 0);
	ck_assert_msg(strstr(d.msg, want) != NULL, "message '%s' lacks '%s'", d.msg, want);
	diag_init(&d);
	Jit *j = jit_compile(m, &o, &d);
	ck_assert_ptr_null(j);
	ck_assert_msg(strstr(d.msg, want) != NULL, "jit message '%s' lacks '%s'", d.msg, want);
}

START_TEST(errors)
{
	/* a graph-level module */
	Module *m = ir_module_new("g", LEVEL_GRAPH);
	ir_output(m, ir_param(m, "x", ty(DT_F32, 1, 4)));
	expect_error(m, "not at the tiled level");
	ir_module_free(m);

	/* a dot tiling with the wrong number of loop dims, and a bad order;
	 * the message carries the instruction's position */
	ValueId h;
	m = small_mlp(&h);
	m->file = "mlp.tir";
	m->insts[h].line = 7;
	m->insts[h].col = 3;
	m->insts[h].tiling.ntile = 2;
	m->insts[h].tiling.tile[0] = m->insts[h].tiling.tile[1] = 8;
	m->insts[h].tiling.order[1] = 1;
	expect_error(m, "mlp.tir:7:3: error: dot tiling has 2 loop dims, expected 3");
	m->insts[h].tiling.ntile = 3;
	m->insts[h].tiling.tile[2] = 8;
	m->insts[h].tiling.order[0] = 0;
	m->insts[h].tiling.order[1] = 0;
	m->insts[h].tiling.order[2] = 2;
	expect_error(m, "not a permutation");
	ir_module_free(m);

	/* a collective over 4 chips */
	m = ir_module_new("c", LEVEL_GRAPH);
	m->mesh.naxes = 1;
	m->mesh.axes[0].name = "data";
	m->mesh.axes[0].ici = 4;
	m->mesh.axes[0].dcn = 1;
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 8, 16));
	ir_output(m, ir_collective(m, OP_ALL_GATHER, x, 1u, 0));
	to_tiled(m);
	expect_error(m, "all_gather: a collective over more than one chip is not a kernel");
	ir_module_free(m);

	/* an operand that is not an earlier value (unverified input) */
	m = small_mlp(&h);
	m->insts[h].args[1] = h;
	expect_error(m, "not an earlier value");
	ir_module_free(m);

	/* a bad micro-kernel option */
	m = small_mlp(NULL);
	CodegenOptions o;
	codegen_default_options(&o);
	o.vec_width = 12;
	Diag d;
	diag_init(&d);
	ck_assert_ptr_null(codegen_emit_llvm(m, &o, &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "vector width 12"));
	ir_module_free(m);
}
END_TEST

START_TEST(jit_lifecycle)
{
	jit_free(NULL);
	ValueId h;
	Module *m = small_mlp(&h);
	ValueId relu = h + 2;
	CodegenOptions o;
	codegen_default_options(&o);
	Diag d;
	diag_init(&d);
	/* two live Jits of the same module (fused and not), freed in either
	 * order */
	Jit *a = jit_compile(m, &o, &d);
	ck_assert_msg(a != NULL, "%s", d.msg);
	o.fuse = 0;
	Jit *b = jit_compile(m, &o, &d);
	ck_assert_msg(b != NULL, "%s", d.msg);
	ck_assert(jit_entry(a) != NULL);
	ck_assert(jit_compile_ms(a) > 0.0);
	int nin = -1;
	const ValueId *kin = NULL;
	ck_assert(jit_kernel(a, 0, &nin, &kin) == NULL); /* a parameter */
	ck_assert_int_eq(nin, 0);
	ck_assert(jit_kernel(a, 99, &nin, &kin) == NULL);
	ck_assert(jit_kernel(a, h, &nin, &kin) == NULL); /* fused into relu */
	ck_assert(jit_kernel(b, h, &nin, &kin) != NULL);
	ck_assert_int_eq(nin, 2);
	ck_assert(jit_kernel(a, relu, &nin, &kin) != NULL);
	ck_assert_int_eq(nin, 3); /* the dot's operands first, then the bias */
	ck_assert_int_eq(kin[0], 0);
	ck_assert_int_eq(kin[1], 1);
	ck_assert_int_eq(kin[2], 2);
	/* the fused module gives the unfused one's results bit for bit, and a
	 * kernel called through its C signature agrees with the entry */
	static float x[32 * 64], w[64 * 48], bias[32 * 48], out1[32], out2[32], k1[32 * 48];
	static float v1[3][32 * 48], v2[3][32 * 48];
	for (int i = 0; i < 32 * 64; i++)
		x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	for (int i = 0; i < 64 * 48; i++)
		w[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
	for (int i = 0; i < 32 * 48; i++)
		bias[i] = (float)(i % 7) / 7.0f - 0.5f;
	float *bufs1[7] = {x, w, bias, v1[0], v1[1], v1[2], out1};
	float *bufs2[7] = {x, w, bias, v2[0], v2[1], v2[2], out2};
	jit_run(a, bufs1);
	jit_run(b, bufs2);
	ck_assert_int_eq(memcmp(out1, out2, sizeof out1), 0);
	ck_assert_int_eq(memcmp(v1[2], v2[2], sizeof v1[2]), 0);
	const float *kins[3] = {x, w, bias};
	jit_kernel(a, relu, NULL, NULL)(k1, kins);
	ck_assert_int_eq(memcmp(k1, v1[2], sizeof k1), 0);
	jit_free(a);
	jit_free(b);
	ir_module_free(m);
}
END_TEST

START_TEST(shared_kernels)
{
	/* Two layers of the same shapes share their kernel bodies; a dot of
	 * another shape, or another tiling, gets its own. Each value still has
	 * its exported kernel, and each computes its own operands. */
	Module *m = ir_module_new("two", LEVEL_GRAPH);
	ValueId x = ir_param(m, "x", ty(DT_F32, 2, 16, 32));
	ValueId w1 = ir_param(m, "w1", ty(DT_F32, 2, 32, 32));
	ValueId w2 = ir_param(m, "w2", ty(DT_F32, 2, 32, 32));
	ValueId h1 = ir_unary(m, OP_TANH, ir_matmul(m, x, w1));
	ValueId h2 = ir_unary(m, OP_TANH, ir_matmul(m, h1, w2));
	ValueId h3 = ir_matmul(m, h2, w2);
	ir_output(m, h1);
	ir_output(m, h2);
	ir_output(m, h3);
	to_tiled(m);
	m->insts[h3].tiling.ntile = 3;
	m->insts[h3].tiling.tile[0] = 8;
	m->insts[h3].tiling.tile[1] = 16;
	m->insts[h3].tiling.tile[2] = 8;
	m->insts[h3].tiling.order[0] = 0;
	m->insts[h3].tiling.order[1] = 1;
	m->insts[h3].tiling.order[2] = 2;
	/* each tanh(dot) pair is one kernel (the dot with tanh as epilogue) */
	char *ll = emit(m, 0, 8, 0);
	ck_assert_int_eq(count(ll, "define internal void @podsim_k4_tanh.impl("), 1);
	ck_assert_int_eq(count(ll, "define internal void @podsim_k6_tanh.impl("), 0);
	ck_assert_int_eq(count(ll, "define internal void @podsim_k7_dot.impl("), 1);
	ck_assert_int_eq(count(ll, "define void @podsim_k6_tanh("), 1);
	ck_assert_int_eq(count(ll, "call void @podsim_k4_tanh.impl("), 4); /* 2 wrappers, entry x2 */
	free(ll);
	ir_module_free(m);
}
END_TEST

/* ---- threads: one program per simulated chip, one thread per chip ---- */

typedef struct ThreadJob {
	const Module *m;
	const Jit *shared;  /* NULL: compile a Jit of its own */
	float *bufs[7];     /* small_mlp's values */
	int ok;
} ThreadJob;

static void job_init(ThreadJob *t, const Module *m, const Jit *shared)
{
	memset(t, 0, sizeof *t);
	t->m = m;
	t->shared = shared;
	for (int v = 0; v < m->ninsts; v++) {
		int64_t n = type_numel(&m->insts[v].type);
		t->bufs[v] = calloc((size_t)n, sizeof(float));
		ck_assert_ptr_nonnull(t->bufs[v]);
		if (m->insts[v].op == OP_PARAMETER)
			for (int64_t i = 0; i < n; i++)
				t->bufs[v][i] = (float)((i * (37 + 16 * v)) % 101) / 50.0f - 1.0f;
	}
}

static void job_free(ThreadJob *t)
{
	for (int v = 0; v < t->m->ninsts; v++)
		free(t->bufs[v]);
}

static void *thread_main(void *arg)
{
	ThreadJob *t = arg;
	Jit *own = NULL;
	if (!t->shared) {
		CodegenOptions o;
		codegen_default_options(&o);
		Diag d;
		diag_init(&d);
		own = jit_compile(t->m, &o, &d);
		if (!own)
			return NULL;
	}
	for (int rep = 0; rep < 20; rep++)
		jit_run(own ? own : t->shared, t->bufs);
	jit_free(own);
	t->ok = 1;
	return NULL;
}

START_TEST(threads)
{
	/* Four threads compiling at once, then four threads running one shared
	 * Jit at once: every result equals the single-threaded one bit for bit
	 * (same code, same order). */
	Module *m = small_mlp(NULL);
	CodegenOptions o;
	codegen_default_options(&o);
	Diag d;
	diag_init(&d);
	Jit *j = jit_compile(m, &o, &d);
	ck_assert_msg(j != NULL, "%s", d.msg);
	ThreadJob ref;
	job_init(&ref, m, j);
	jit_run(j, ref.bufs);
	ValueId out = m->outputs[0];
	size_t bytes = sizeof(float) * (size_t)type_numel(&m->insts[out].type);
	for (int shared = 0; shared < 2; shared++) {
		ThreadJob jobs[4];
		pthread_t th[4];
		for (int i = 0; i < 4; i++) {
			job_init(&jobs[i], m, shared ? j : NULL);
			ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			ck_assert_int_eq(pthread_join(th[i], NULL), 0);
			ck_assert_msg(jobs[i].ok, "thread %d failed", i);
			ck_assert_msg(memcmp(jobs[i].bufs[out], ref.bufs[out], bytes) == 0,
			              "thread %d (shared %d) differs", i, shared);
			job_free(&jobs[i]);
		}
	}
	job_free(&ref);
	jit_free(j);
	ir_module_free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("llvm_api");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, emit_structure);
	tcase_add_test(tc, emit_bf16);
	tcase_add_test(tc, bf16_rounding_matches_reference);
	tcase_add_test(tc, errors);
	tcase_add_test(tc, jit_lifecycle);
	tcase_add_test(tc, shared_kernels);
	tcase_add_test(tc, threads);
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
