/*
 * Unit tests of the IR text format and the verifier: printing built modules
 * (expected text written from docs/ir.md), parse(print(m)) giving back the
 * same module field by field, float and mesh spellings that must survive the
 * round trip, positions, parser robustness on odd buffers, and the verifier
 * diagnostics that text cannot reach (they need a module built or edited in
 * memory; lit tests cover the rest).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#define TY(dt, ...) ty(dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                       (int64_t[]){__VA_ARGS__})

static Module *parse_ok(const char *text)
{
	Diag d;
	diag_init(&d);
	Module *m = ir_parse(text, strlen(text), "t.ir", &d);
	ck_assert_msg(m != NULL, "parse failed: %s", d.msg);
	return m;
}

static void parse_fails(const char *text, const char *msg)
{
	Diag d;
	diag_init(&d);
	Module *m = ir_parse(text, strlen(text), "t.ir", &d);
	ck_assert_msg(m == NULL, "parsed, expected: %s", msg);
	ck_assert_int_eq(d.nerrors, 1);
	ck_assert_msg(strstr(d.msg, msg) != NULL, "message '%s' lacks '%s'", d.msg, msg);
}

static void verify_ok(const Module *m)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) == 0, "verify failed: %s", d.msg);
	ck_assert_int_eq(d.nerrors, 0);
}

static void verify_fails(const Module *m, const char *msg)
{
	Diag d;
	diag_init(&d);
	ck_assert_msg(ir_verify(m, &d) != 0, "verified, expected: %s", msg);
	ck_assert_int_ge(d.nerrors, 1);
	ck_assert_msg(strstr(d.msg, msg) != NULL, "message '%s' lacks '%s'", d.msg, msg);
}

/* A small sharded MLP built with the builder. */
static Module *build_mlp(void)
{
	Module *m = ir_module_new("mlp", LEVEL_GRAPH);
	m->mesh = (Mesh){3, {{"fsdp", 4, 1}, {"tensor", 2, 1}, {"data", 1, 2}}};
	Type tx = TY(DT_BF16, 8, 128);
	tx.shard[0] = 1u << 0 | 1u << 2; /* fsdp + data */
	ValueId x = ir_param(m, "x", tx);
	ir_set_str(m, x, "role", "input");
	Type tw = TY(DT_BF16, 128, 256);
	tw.shard[1] = 1u << 1;
	ValueId w = ir_param(m, "w", tw);
	ValueId y = ir_matmul(m, x, w);
	ValueId r = ir_unary(m, OP_RELU, y);
	int64_t dims[] = {0, 1};
	ValueId s = ir_reduce(m, OP_REDUCE_SUM, r, 2, dims);
	ValueId z = ir_collective(m, OP_ALL_REDUCE, r, 1u << 1, 0);
	ir_set_str(m, z, "reduce", "sum");
	ValueId c = ir_const(m, 0.125, ty(DT_F32, 0, NULL));
	ir_output(m, z);
	ir_output(m, s);
	ir_output(m, c);
	return m;
}

static const char mlp_text[] =
	"module @mlp graph\n"
	"mesh ici(fsdp=4, tensor=2) dcn(data=2)\n"
	"%0 = parameter() {name=\"x\", role=\"input\"} : bf16[8,128]<fsdp+data,_>\n"
	"%1 = parameter() {name=\"w\"} : bf16[128,256]<_,tensor>\n"
	"%2 = dot(%0, %1) {lhs_contract=[1], rhs_contract=[0]} : bf16[8,256]\n"
	"%3 = relu(%2) : bf16[8,256]\n"
	"%4 = reduce_sum(%3) {dims=[0, 1]} : bf16[]\n"
	"%5 = all_reduce(%3) {axes=[tensor], reduce=\"sum\"} : bf16[8,256]\n"
	"%6 = constant() {value=0.125} : f32[]\n"
	"return %5, %4, %6\n";

START_TEST(print_built_module)
{
	Module *m = build_mlp();
	verify_ok(m);
	char *s = ir_print_string(m);
	ck_assert_str_eq(s, mlp_text);
	/* ir_print to a stream writes the same bytes. */
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	ir_print(m, f);
	long n = ftell(f);
	ck_assert_int_eq(n, (long)strlen(mlp_text));
	rewind(f);
	char buf[sizeof mlp_text];
	ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), strlen(mlp_text));
	ck_assert_int_eq(memcmp(buf, mlp_text, strlen(mlp_text)), 0);
	fclose(f);
	free(s);
	ir_module_free(m);
}
END_TEST

static void assert_same_module(const Module *a, const Module *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_int_eq(a->level, b->level);
	ck_assert_int_eq(a->mesh.naxes, b->mesh.naxes);
	for (int k = 0; k < a->mesh.naxes; k++) {
		ck_assert_str_eq(a->mesh.axes[k].name, b->mesh.axes[k].name);
		ck_assert_int_eq(a->mesh.axes[k].ici, b->mesh.axes[k].ici);
		ck_assert_int_eq(a->mesh.axes[k].dcn, b->mesh.axes[k].dcn);
	}
	ck_assert_int_eq(a->ninsts, b->ninsts);
	for (int v = 0; v < a->ninsts; v++) {
		const Inst *x = &a->insts[v], *y = &b->insts[v];
		ck_assert_int_eq(x->op, y->op);
		ck_assert(type_equal(&x->type, &y->type));
		ck_assert_int_eq(x->nargs, y->nargs);
		for (int i = 0; i < x->nargs; i++)
			ck_assert_int_eq(x->args[i], y->args[i]);
		ck_assert((x->name == NULL) == (y->name == NULL));
		if (x->name)
			ck_assert_str_eq(x->name, y->name);
		ck_assert_int_eq(x->unit, y->unit);
		ck_assert_int_eq(x->mem, y->mem);
		ck_assert_int_eq(x->tiling.ntile, y->tiling.ntile);
		ck_assert_int_eq(x->nattrs, y->nattrs);
		for (int i = 0; i < x->nattrs; i++) {
			const Attr *p = &x->attrs[i], *q = &y->attrs[i];
			ck_assert_str_eq(p->key, q->key);
			ck_assert_int_eq(p->kind, q->kind);
			ck_assert_int_eq(p->n, q->n);
			if (p->kind == ATTR_FLOAT)
				ck_assert(memcmp(&p->f, &q->f, sizeof p->f) == 0 || (isnan(p->f) && isnan(q->f)));
			if (p->kind == ATTR_STR)
				ck_assert_str_eq(p->s, q->s);
			for (int j = 0; j < p->n && p->kind == ATTR_INTS; j++)
				ck_assert_int_eq(p->ints[j], q->ints[j]);
			for (int j = 0; j < p->n && p->kind == ATTR_NAMES; j++)
				ck_assert_str_eq(p->names[j], q->names[j]);
		}
	}
	ck_assert_int_eq(a->noutputs, b->noutputs);
	for (int i = 0; i < a->noutputs; i++)
		ck_assert_int_eq(a->outputs[i], b->outputs[i]);
}

START_TEST(parse_gives_back_built_module)
{
	Module *m = build_mlp();
	char *s = ir_print_string(m);
	Module *p = parse_ok(s);
	verify_ok(p);
	assert_same_module(m, p);
	/* Positions: the header is line 1, the mesh line 2, %0 line 3. */
	ck_assert_int_eq(p->insts[0].line, 3);
	ck_assert_int_eq(p->insts[0].col, 1);
	ck_assert_int_eq(p->insts[6].line, 9);
	ck_assert_int_eq(p->ret_line, 10);
	ck_assert_int_eq(p->ret_col, 1);
	ck_assert_str_eq(p->file, "t.ir");
	free(s);
	ir_module_free(m);
	ir_module_free(p);
}
END_TEST

START_TEST(tiled_module_round_trip)
{
	Module *m = ir_module_new("k", LEVEL_TILED);
	ValueId a = ir_param(m, "a", TY(DT_BF16, 256, 128));
	m->insts[a].mem = MEM_HBM;
	ValueId y = ir_matmul(m, a, ir_param(m, "b", TY(DT_BF16, 128, 64)));
	Inst *in = &m->insts[y];
	in->mem = MEM_VMEM;
	in->tiling = (Tiling){3, {128, 64, 128}, {1, 0, 2}};
	ir_output(m, y);
	verify_ok(m);
	char *s = ir_print_string(m);
	ck_assert_str_eq(s, "module @k tiled\n"
	                    "%0 = parameter() {name=\"a\"} : bf16[256,128] on none in hbm\n"
	                    "%1 = parameter() {name=\"b\"} : bf16[128,64] on none\n"
	                    "%2 = dot(%0, %1) {lhs_contract=[1], rhs_contract=[0]} : "
	                    "bf16[256,64] on mxu in vmem tile [128,64,128] order [1,0,2]\n"
	                    "return %2\n");
	Module *p = parse_ok(s);
	assert_same_module(m, p);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(p->insts[2].tiling.tile[i], in->tiling.tile[i]);
		ck_assert_int_eq(p->insts[2].tiling.order[i], in->tiling.order[i]);
	}
	free(s);
	ir_module_free(m);
	ir_module_free(p);
}
END_TEST

/* A constant with value f printed and parsed back has the same bits. */
static void float_round_trip(double f)
{
	Module *m = ir_module_new("f", LEVEL_GRAPH);
	ValueId c = ir_const(m, f, TY(DT_F32, 1));
	ir_output(m, c);
	char *s = ir_print_string(m);
	const char *v = strstr(s, "value=");
	ck_assert_ptr_nonnull(v);
	v += 6;
	size_t n = strcspn(v, "}");
	ck_assert_msg(memchr(v, '.', n) || memchr(v, 'e', n) || memchr(v, 'n', n),
	              "'%.*s' does not read as a float", (int)n, v);
	Module *p = parse_ok(s);
	double g = p->insts[0].attrs[0].f;
	ck_assert_int_eq(p->insts[0].attrs[0].kind, ATTR_FLOAT);
	if (isnan(f))
		ck_assert(isnan(g));
	else
		ck_assert_msg(memcmp(&f, &g, sizeof f) == 0, "%.17g printed as '%.*s' reads %.17g",
		              f, (int)n, v, g);
	char *s2 = ir_print_string(p);
	ck_assert_str_eq(s, s2);
	free(s);
	free(s2);
	ir_module_free(m);
	ir_module_free(p);
}

START_TEST(floats_round_trip)
{
	const double special[] = {0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3, 100.0, 1e15, 1e16, 1e-4,
	                          1e-5, 123456789.0, 9.999999999999999e22, 5e-324, 1.7976931348623157e308,
	                          2.2250738585072014e-308, INFINITY, -INFINITY, NAN, 0.5,
	                          -2.5e-7, 4503599627370497.0};
	for (size_t i = 0; i < sizeof special / sizeof *special; i++)
		float_round_trip(special[i]);
	/* Random bit patterns (xorshift64, fixed seed) cover every exponent. */
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 3000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double f;
		memcpy(&f, &x, sizeof f);
		if (isnan(f) || isinf(f))
			continue;
		float_round_trip(f);
	}
}
END_TEST

START_TEST(float_spellings)
{
	/* The canonical spellings docs/ir.md gives as examples. */
	const struct { double f; const char *text; } cases[] = {
		{1.0, "value=1.0}"}, {100.0, "value=100.0}"}, {0.25, "value=0.25}"},
		{-0.0, "value=-0.0}"}, {1e20, "value=1e+20}"}, {1e-5, "value=1e-05}"},
		{0.0001, "value=0.0001}"}, {-INFINITY, "value=-inf}"}, {NAN, "value=nan}"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		Module *m = ir_module_new("f", LEVEL_GRAPH);
		ir_output(m, ir_const(m, cases[i].f, TY(DT_F32, 1)));
		char *s = ir_print_string(m);
		ck_assert_msg(strstr(s, cases[i].text) != NULL, "%s lacks %s", s, cases[i].text);
		free(s);
		ir_module_free(m);
	}
}
END_TEST

/* Every mesh order prints in a form that parses back to the same order: all
 * 3^4 assignments of 4 axes to ICI only, DCN only or both. */
START_TEST(mesh_forms_round_trip)
{
	static const char *const names[] = {"a", "b", "c", "d"};
	for (int code = 0; code < 81; code++) {
		Module *m = ir_module_new("mesh", LEVEL_GRAPH);
		m->mesh.naxes = 4;
		for (int k = 0, c = code; k < 4; k++, c /= 3) {
			MeshAxis *ax = &m->mesh.axes[k];
			ax->name = names[k];
			ax->ici = c % 3 == 1 ? 1 : 2 + k;
			ax->dcn = c % 3 == 0 ? 1 : 3 + k;
		}
		ir_output(m, ir_const(m, 1.0, TY(DT_F32, 1)));
		verify_ok(m);
		char *s = ir_print_string(m);
		Module *p = parse_ok(s);
		assert_same_module(m, p);
		char *s2 = ir_print_string(p);
		ck_assert_str_eq(s, s2);
		free(s);
		free(s2);
		ir_module_free(m);
		ir_module_free(p);
	}
}
END_TEST

START_TEST(mesh_order_of_first_appearance)
{
	Module *m = parse_ok("module @m graph\nmesh dcn(x=2) ici(y=4, x=8)\n"
	                     "%0 = parameter() {name=\"p\"} : f32[16]<x>\nreturn %0\n");
	ck_assert_int_eq(m->mesh.naxes, 2);
	ck_assert_str_eq(m->mesh.axes[0].name, "x");
	ck_assert_int_eq(m->mesh.axes[0].ici, 8);
	ck_assert_int_eq(m->mesh.axes[0].dcn, 2);
	ck_assert_str_eq(m->mesh.axes[1].name, "y");
	ck_assert_int_eq(m->mesh.axes[1].dcn, 1);
	ck_assert_uint_eq(m->insts[0].type.shard[0], 1u << 0);
	verify_ok(m); /* 16 is divisible by x's 8 x 2 */
	ir_module_free(m);
}
END_TEST

START_TEST(strings_round_trip)
{
	const char *raw = "quote\" backslash\\ newline\n tab\t high\xc3\xa9 end";
	Module *m = ir_module_new("s", LEVEL_GRAPH);
	ValueId p = ir_param(m, raw, TY(DT_F32, 2));
	ir_output(m, p);
	char *s = ir_print_string(m);
	ck_assert_ptr_nonnull(strstr(s, "{name=\"quote\\\" backslash\\\\ newline\\n tab\t high"));
	Module *q = parse_ok(s);
	ck_assert_str_eq(ir_attr_str(&q->insts[0], "name", NULL), raw);
	free(s);
	ir_module_free(m);
	ir_module_free(q);
}
END_TEST

START_TEST(value_names)
{
	Module *m = parse_ok("module @m graph\n%0 = constant() {value=1.0} : f32[]\n"
	                     "%007 = neg(%0) : f32[]\n%2 = neg(%007) : f32[]\n"
	                     "%x.y = neg(%2) : f32[]\n%3 = neg(%x.y) : f32[]\nreturn %3\n");
	/* A name equal to its own index is dropped (it prints the same). */
	ck_assert_ptr_null(m->insts[0].name);
	ck_assert_str_eq(m->insts[1].name, "007");
	ck_assert_ptr_null(m->insts[2].name);
	ck_assert_str_eq(m->insts[3].name, "x.y");
	ck_assert_str_eq(m->insts[4].name, "3"); /* index 4 */
	ck_assert_int_eq(m->insts[4].args[0], 3);
	verify_ok(m);
	ir_module_free(m);
}
END_TEST

/* ---- Parser robustness --------------------------------------------------*/

START_TEST(parse_bounded_by_len)
{
	/* The text after len is not read, and need not be NUL-terminated. */
	const char full[] = "module @a graph\n%x = constant() {value=1.0} : f32[]\nreturn %x\nGARBAGE";
	char *buf = malloc(sizeof full - 1);
	memcpy(buf, full, sizeof full - 1); /* no NUL */
	size_t len = strlen(full) - strlen("GARBAGE");
	Diag d;
	diag_init(&d);
	Module *m = ir_parse(buf, len, "t.ir", &d);
	ck_assert_msg(m != NULL, "%s", d.msg);
	ir_module_free(m);
	/* Cut inside the return: the value name ends at len. */
	m = ir_parse(buf, len - 1, "t.ir", &d);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->noutputs, 1);
	ir_module_free(m);
	/* Cut before the return: missing return, at the end. */
	diag_init(&d);
	m = ir_parse(buf, 52, NULL, &d);
	ck_assert_ptr_null(m);
	ck_assert_str_eq(d.msg, "<input>:3:1: error: missing 'return' at the end of the module");
	free(buf);
}
END_TEST

START_TEST(parse_nul_and_binary)
{
	const char text[] = "module @a graph\n%x = constant() {value=1.0} : f32[]\x00\nreturn %x\n";
	Diag d;
	diag_init(&d);
	Module *m = ir_parse(text, sizeof text - 1, "t.ir", &d);
	ck_assert_ptr_null(m);
	ck_assert_str_eq(d.msg, "t.ir:2:36: error: expected end of line after the instruction, "
	                        "found byte 0x00");
	const char str[] = "module @a graph\n%x = parameter() {name=\"a\x00\"} : f32[]\nreturn %x\n";
	diag_init(&d);
	ck_assert_ptr_null(ir_parse(str, sizeof str - 1, "t.ir", &d));
	ck_assert_str_eq(d.msg, "t.ir:2:26: error: NUL byte in a string");
	parse_fails("module @a graph\n%\xff = constant() : f32[]\nreturn\n",
	            "2:2: error: expected a value name after '%', found byte 0xff");
}
END_TEST

START_TEST(parse_crlf_and_comments)
{
	Module *m = parse_ok("# leading\r\nmodule @a tiled # header\r\n\r\n"
	                     "%x = constant() {value=2.0} : f32[4]\r\n"
	                     "return %x\r\n# trailing");
	ck_assert_int_eq(m->level, LEVEL_TILED);
	ck_assert_int_eq(m->insts[0].line, 4);
	/* No 'on': the op's default unit. */
	ck_assert_int_eq(m->insts[0].unit, ir_ops[OP_CONSTANT].unit);
	ir_module_free(m);
}
END_TEST

START_TEST(parse_file_errors)
{
	Diag d;
	diag_init(&d);
	ck_assert_ptr_null(ir_parse_file("/nonexistent/dir/x.ir", &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent/dir/x.ir: error: cannot open"));
	diag_init(&d);
	ck_assert_ptr_null(ir_parse_file("/", &d));
	ck_assert_ptr_nonnull(strstr(d.msg, "/: error: cannot"));
}
END_TEST

START_TEST(parse_file_reads_whole_file)
{
	const char *src = getenv("PODSIM_SRC");
	ck_assert_msg(src != NULL, "PODSIM_SRC is not set");
	char path[4096];
	snprintf(path, sizeof path, "%s/testsuite/lit/ir/Inputs/graph_all_ops.ir", src);
	Diag d;
	diag_init(&d);
	Module *m = ir_parse_file(path, &d);
	ck_assert_msg(m != NULL, "%s", d.msg);
	verify_ok(m);
	/* Every graph-level op occurs in it at least once. */
	int seen[OP_COUNT] = {0};
	for (int v = 0; v < m->ninsts; v++)
		seen[m->insts[v].op] = 1;
	for (int op = 0; op < OP_COUNT; op++)
		if (!(ir_ops[op].flags & OPF_TILED))
			ck_assert_msg(seen[op], "graph_all_ops.ir lacks %s", op_name((Op)op));
	ir_module_free(m);
}
END_TEST

/* ---- Verifier diagnostics that text cannot produce ----------------------*/

static Module *small(void)
{
	Module *m = ir_module_new("v", LEVEL_GRAPH);
	m->mesh = (Mesh){1, {{"a", 2, 1}}};
	ValueId x = ir_param(m, "x", TY(DT_F32, 4, 8));
	ValueId y = ir_unary(m, OP_NEG, x);
	ir_output(m, y);
	return m;
}

START_TEST(verify_use_before_def)
{
	Module *m = small();
	verify_ok(m);
	m->insts[1].args[0] = 1; /* itself */
	verify_fails(m, "%1: operand 0, %1, is used before its definition");
	m->insts[1].args[0] = 7;
	verify_fails(m, "%1: operand 0 is value 7, which does not exist");
	m->insts[1].args[0] = -1;
	verify_fails(m, "which does not exist");
	ir_module_free(m);
}
END_TEST

START_TEST(verify_outputs)
{
	Module *m = small();
	m->outputs[0] = 2;
	verify_fails(m, "returned value 2 does not exist");
	m->noutputs = 0;
	verify_fails(m, "the module returns no values");
	ir_module_free(m);
}
END_TEST

START_TEST(verify_types)
{
	Module *m = small();
	m->insts[0].type.shard[0] = 1u << 3;
	verify_fails(m, "%0: dim 0 is sharded over a mesh axis the mesh does not have (it has 1)");
	m->insts[0].type.shard[0] = 0;
	m->insts[1].type.dims[1] = -8;
	verify_fails(m, "%1: dim 1 is -8");
	m->insts[1].type.dims[1] = 8;
	m->insts[1].type.rank = 9;
	verify_fails(m, "%1: type has dtype 0 and rank 9");
	m->insts[1].type.rank = 2;
	verify_ok(m);
	ir_module_free(m);
}
END_TEST

START_TEST(verify_level_annotations)
{
	Module *m = small();
	m->insts[1].mem = MEM_VMEM;
	verify_fails(m, "%1: a graph-level instruction carries a memory space or tiling");
	m->insts[1].mem = MEM_NONE;
	m->insts[1].tiling.ntile = 1;
	m->insts[1].tiling.tile[0] = 4;
	verify_fails(m, "carries a memory space or tiling");
	m->level = LEVEL_TILED;
	verify_ok(m);
	m->insts[1].tiling.tile[0] = 0;
	verify_fails(m, "%1: tile extent 0 is 0");
	m->insts[1].tiling.tile[0] = 4;
	m->insts[1].unit = UNIT_COUNT;
	verify_fails(m, "out of range");
	ir_module_free(m);
}
END_TEST

START_TEST(verify_names)
{
	Module *m = small();
	m->insts[0].name = "1"; /* clashes with unnamed value 1 */
	verify_fails(m, "%1 is defined twice (values 0 and 1)");
	m->insts[0].name = "a-b";
	verify_fails(m, "value name 'a-b' is not of the form [A-Za-z0-9_.]+");
	m->insts[0].name = "x";
	verify_ok(m);
	m->name = "my model";
	verify_fails(m, "module name 'my model' is not of the form");
	m->name = "v";
	m->mesh.axes[0].name = "_";
	verify_fails(m, "mesh axis 0 has no valid name");
	m->mesh.axes[0].name = "a";
	m->mesh.axes[0].dcn = 0;
	verify_fails(m, "mesh axis 'a' has size ici=2 dcn=0");
	ir_module_free(m);
}
END_TEST

START_TEST(verify_empty_axes)
{
	Module *m = small();
	ir_output(m, ir_collective(m, OP_ALL_REDUCE, 1, 1u << 0, 0));
	verify_ok(m);
	ir_set_names(m, 2, "axes", 0, NULL);
	verify_fails(m, "%2: all_reduce attribute axes names no mesh axis");
	ir_module_free(m);
}
END_TEST

START_TEST(verify_counts_errors)
{
	Module *m = small();
	m->insts[0].type.dims[0] = -1;
	m->insts[1].type.dims[0] = -1;
	Diag d;
	diag_init(&d);
	ck_assert_int_ne(ir_verify(m, &d), 0);
	ck_assert_int_eq(d.nerrors, 2);
	ck_assert_str_eq(d.msg, "error: %0: dim 0 is -1"); /* the first one */
	ir_module_free(m);
}
END_TEST

START_TEST(verify_positions)
{
	Module *m = parse_ok("module @p graph\n\n  %x = parameter() {name=\"x\"} : f32[4]\n"
	                     "%y = neg(%x) : f32[5]\nreturn %y\n");
	verify_fails(m, "t.ir:4:1: error: %y: declared type f32[5], but neg computes f32[4]");
	ck_assert_int_eq(m->insts[0].line, 3);
	ck_assert_int_eq(m->insts[0].col, 3);
	ir_module_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ir_text");
	TCase *tc = tcase_create("text");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, print_built_module);
	tcase_add_test(tc, parse_gives_back_built_module);
	tcase_add_test(tc, tiled_module_round_trip);
	tcase_add_test(tc, floats_round_trip);
	tcase_add_test(tc, float_spellings);
	tcase_add_test(tc, mesh_forms_round_trip);
	tcase_add_test(tc, mesh_order_of_first_appearance);
	tcase_add_test(tc, strings_round_trip);
	tcase_add_test(tc, value_names);
	tcase_add_test(tc, parse_bounded_by_len);
	tcase_add_test(tc, parse_nul_and_binary);
	tcase_add_test(tc, parse_crlf_and_comments);
	tcase_add_test(tc, parse_file_errors);
	tcase_add_test(tc, parse_file_reads_whole_file);
	TCase *tv = tcase_create("verify");
	tcase_add_test(tv, verify_use_before_def);
	tcase_add_test(tv, verify_outputs);
	tcase_add_test(tv, verify_types);
	tcase_add_test(tv, verify_level_annotations);
	tcase_add_test(tv, verify_names);
	tcase_add_test(tv, verify_empty_axes);
	tcase_add_test(tv, verify_counts_errors);
	tcase_add_test(tv, verify_positions);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tv);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
