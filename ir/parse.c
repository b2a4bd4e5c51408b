/*
 * The IR text parser (syntax in docs/ir.md). A hand-written, line-oriented
 * recursive-descent reader over a byte buffer with no separate token stream:
 * each grammar rule scans the characters it expects, so the messages can say
 * exactly what was expected and what was found, at line:column.
 *
 * The parser checks syntax and everything it needs to build the Module (names
 * defined once and before use, known ops, dtypes, units, memory spaces, mesh
 * axes named in a sharding, limits that keep arithmetic on shapes from
 * overflowing). Everything else (operand counts, shapes, attributes, level
 * rules) is the verifier's job, so that built and parsed modules are checked
 * by the same code.
 *
 * Robustness: every read is bounded by len (the text need not be
 * NUL-terminated, NUL bytes are an error), there is no recursion, and the
 * first error stops the parse with a longjmp back to ir_parse, which frees
 * the half-built module and the name table.
 */
#include "ir.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* Limits (docs/ir.md): they keep products of dims and mesh sizes in int64. */
#define MAX_DIM ((int64_t)1 << 40)
#define MAX_NUMEL ((int64_t)1 << 60)
#define MAX_DEVICES ((int64_t)1 << 20)

typedef struct Sym {
	const char *name; /* points into the source text; NULL: empty slot */
	size_t len;
	ValueId v;
	int line; /* where it was defined */
} Sym;

typedef struct Parser {
	const char *src;
	size_t len, pos;
	int line, col; /* of pos, 1-based */
	const char *file;
	Diag *d;
	Module *m;
	Sym *syms; /* open-addressing hash table, nsym_cap slots (a power of 2) */
	size_t nsym, nsym_cap;
	jmp_buf fail;
} Parser;

/* ---- Characters ---------------------------------------------------------*/

static int peek(const Parser *p) { return p->pos < p->len ? (unsigned char)p->src[p->pos] : -1; }

static int peek_at(const Parser *p, size_t k)
{
	return p->pos + k < p->len ? (unsigned char)p->src[p->pos + k] : -1;
}

static void advance(Parser *p)
{
	if (p->pos >= p->len)
		return;
	if (p->src[p->pos] == '\n') {
		p->line++;
		p->col = 1;
	} else {
		p->col++;
	}
	p->pos++;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_ident_start(int c) { return is_alpha(c) || c == '_'; }
static int is_ident(int c) { return is_ident_start(c) || is_digit(c); }
static int is_name(int c) { return is_ident(c) || c == '.'; } /* value/module names */

/* Skips blanks and a comment, stopping at a newline or the end. */
static void skip_space(Parser *p)
{
	for (;;) {
		int c = peek(p);
		if (c == ' ' || c == '\t' || c == '\r') {
			advance(p);
		} else if (c == '#') {
			while (peek(p) != '\n' && peek(p) != -1)
				advance(p);
		} else {
			return;
		}
	}
}

static void skip_blank_lines(Parser *p)
{
	for (;;) {
		skip_space(p);
		if (peek(p) != '\n')
			return;
		advance(p);
	}
}

/* ---- Errors -------------------------------------------------------------*/

static _Noreturn void error_at(Parser *p, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static _Noreturn void error_at(Parser *p, int line, int col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	diag_error(p->d, p->file, line, col, "%s", msg);
	longjmp(p->fail, 1);
}

#define error_here(p, ...) error_at((p), (p)->line, (p)->col, __VA_ARGS__)

/* What is at the current position, for "expected X, found Y". */
static const char *describe(const Parser *p, char *buf, size_t n)
{
	int c = peek(p);
	if (c == -1)
		return "end of file";
	if (c == '\n')
		return "end of line";
	if (c == '"')
		return "a string";
	if (c == ' ' || c == '\t')
		return c == ' ' ? "a space" : "a tab";
	if (is_name(c) || (c == '-' && is_digit(peek_at(p, 1)))) {
		size_t k = c == '-' ? 1 : 0;
		while (k < 40 && is_name(peek_at(p, k)))
			k++;
		snprintf(buf, n, "'%.*s%s'", (int)k, p->src + p->pos,
		         is_name(peek_at(p, k)) ? "..." : "");
		return buf;
	}
	if (c > ' ' && c < 127)
		snprintf(buf, n, "'%c'", c);
	else
		snprintf(buf, n, "byte 0x%02x", c);
	return buf;
}

static _Noreturn void expected(Parser *p, const char *what)
{
	char buf[64];
	error_here(p, "expected %s, found %s", what, describe(p, buf, sizeof buf));
}

static void expect_char(Parser *p, int c, const char *what)
{
	skip_space(p);
	if (peek(p) != c)
		expected(p, what);
	advance(p);
}

/* Consumes c if it is next (after blanks). */
static int accept_char(Parser *p, int c)
{
	skip_space(p);
	if (peek(p) != c)
		return 0;
	advance(p);
	return 1;
}

/* ---- Words and numbers --------------------------------------------------*/

typedef struct Word {
	const char *s;
	size_t n;
	int line, col;
} Word;

static int word_is(Word w, const char *s) { return strlen(s) == w.n && memcmp(w.s, s, w.n) == 0; }

/* The run of characters accepted by cls at the current position (may be
 * empty); does not skip blanks first. */
static Word scan_run(Parser *p, int (*cls)(int))
{
	Word w = {p->src + p->pos, 0, p->line, p->col};
	while (cls(peek(p))) {
		advance(p);
		w.n++;
	}
	return w;
}

/* An identifier: [A-Za-z_][A-Za-z0-9_]*. */
static Word ident(Parser *p, const char *what)
{
	skip_space(p);
	if (!is_ident_start(peek(p)))
		expected(p, what);
	return scan_run(p, is_ident);
}

/* The next word without consuming it (empty if none). */
static Word peek_word(Parser *p)
{
	skip_space(p);
	size_t k = 0;
	while (is_ident(peek_at(p, k)))
		k++;
	Word w = {p->src + p->pos, k, p->line, p->col};
	return w;
}

static void skip_word(Parser *p, Word w)
{
	for (size_t i = 0; i < w.n; i++)
		advance(p);
}

/* A decimal integer, optionally negative. */
static int64_t integer(Parser *p, const char *what)
{
	skip_space(p);
	int line = p->line, col = p->col;
	int neg = 0;
	if (peek(p) == '-' && is_digit(peek_at(p, 1))) {
		neg = 1;
		advance(p);
	}
	if (!is_digit(peek(p)))
		expected(p, what);
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	while (is_digit(peek(p))) {
		uint64_t digit = (uint64_t)(peek(p) - '0');
		if (v > (limit - digit) / 10)
			error_at(p, line, col, "integer out of range (it must fit in 64 bits)");
		v = v * 10 + digit;
		advance(p);
	}
	if (is_name(peek(p)))
		error_at(p, line, col, "bad number: unexpected '%c' after the digits", peek(p));
	if (neg)
		return v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	return (int64_t)v;
}

/* A float literal: -?digits(.digits*)?([eE][+-]?digits)? or -?inf or nan. */
static double number(Parser *p)
{
	skip_space(p);
	int line = p->line, col = p->col;
	size_t start = p->pos;
	int neg = peek(p) == '-';
	if (neg)
		advance(p);
	if (is_alpha(peek(p))) { /* no blank after the '-' */
		size_t k = 0;
		while (is_name(peek_at(p, k)))
			k++;
		Word w = {p->src + p->pos, k, p->line, p->col};
		if (!word_is(w, "inf") && !word_is(w, "nan"))
			expected(p, "a number");
		skip_word(p, w);
		if (w.s[0] == 'n')
			return NAN;
		return neg ? -INFINITY : INFINITY;
	}
	if (!is_digit(peek(p)))
		expected(p, "a number");
	while (is_digit(peek(p)))
		advance(p);
	if (peek(p) == '.') {
		advance(p);
		while (is_digit(peek(p)))
			advance(p);
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		advance(p);
		if (peek(p) == '+' || peek(p) == '-')
			advance(p);
		if (!is_digit(peek(p)))
			error_at(p, line, col, "bad number: the exponent has no digits");
		while (is_digit(peek(p)))
			advance(p);
	}
	if (is_name(peek(p)))
		error_at(p, line, col, "bad number: unexpected '%c' in the number", peek(p));
	size_t n = p->pos - start;
	char buf[128];
	if (n >= sizeof buf)
		error_at(p, line, col, "bad number: more than %zu characters", sizeof buf - 1);
	memcpy(buf, p->src + start, n);
	buf[n] = 0;
	double f = strtod(buf, NULL);
	if (isinf(f))
		error_at(p, line, col, "number %s out of range for a 64-bit float", buf);
	return f;
}

/* A "..." string with \" \\ \n escapes; returned in the module arena. */
static const char *string(Parser *p)
{
	skip_space(p);
	int line = p->line, col = p->col;
	if (peek(p) != '"')
		expected(p, "a string");
	advance(p);
	size_t start = p->pos, n = 0;
	/* First pass: find the end and the unescaped length. */
	for (;;) {
		int c = peek(p);
		if (c == -1 || c == '\n')
			error_at(p, line, col, "unterminated string");
		if (c == 0)
			error_here(p, "NUL byte in a string");
		if (c == '"')
			break;
		if (c == '\\') {
			advance(p);
			int e = peek(p);
			if (e != '"' && e != '\\' && e != 'n') {
				if (e == -1 || e == '\n')
					error_at(p, line, col, "unterminated string");
				error_at(p, p->line, p->col - 1, "unknown escape '\\%c' in a string "
				         "(only \\\" \\\\ \\n)", e > ' ' && e < 127 ? e : '?');
			}
		}
		advance(p);
		n++;
	}
	size_t end = p->pos;
	advance(p); /* the closing quote */
	char *s = arena_alloc(&p->m->arena, n + 1), *o = s;
	for (size_t i = start; i < end; i++) {
		char c = p->src[i];
		if (c == '\\') {
			c = p->src[++i];
			if (c == 'n')
				c = '\n';
		}
		*o++ = c;
	}
	*o = 0;
	return s;
}

static void end_of_line(Parser *p, const char *after)
{
	skip_space(p);
	if (peek(p) == -1)
		return;
	if (peek(p) != '\n') {
		char buf[64];
		error_here(p, "expected end of line after %s, found %s", after,
		           describe(p, buf, sizeof buf));
	}
	advance(p);
}

/* ---- Names --------------------------------------------------------------*/

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static Sym *sym_slot(Parser *p, const char *s, size_t n)
{
	size_t mask = p->nsym_cap - 1;
	for (size_t i = hash(s, n) & mask;; i = (i + 1) & mask) {
		Sym *e = &p->syms[i];
		if (!e->name || (e->len == n && memcmp(e->name, s, n) == 0))
			return e;
	}
}

static void sym_grow(Parser *p)
{
	Sym *old = p->syms;
	size_t oldcap = p->nsym_cap;
	p->nsym_cap = oldcap ? oldcap * 2 : 256;
	p->syms = calloc(p->nsym_cap, sizeof *p->syms);
	if (!p->syms)
		ir_die("out of memory");
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].name)
			*sym_slot(p, old[i].name, old[i].len) = old[i];
	free(old);
}

/* '%' name: the run [A-Za-z0-9_.]+ after the '%'. */
static Word value_name(Parser *p, const char *what)
{
	skip_space(p);
	if (peek(p) != '%')
		expected(p, what);
	Word w = {p->src + p->pos, 0, p->line, p->col};
	advance(p);
	Word n = scan_run(p, is_name);
	if (!n.n)
		expected(p, "a value name after '%'");
	w.s = n.s;
	w.n = n.n;
	return w;
}

static ValueId operand(Parser *p, const char *what)
{
	Word w = value_name(p, what);
	Sym *e = p->nsym_cap ? sym_slot(p, w.s, w.n) : NULL;
	if (!e || !e->name)
		error_at(p, w.line, w.col, "undefined value %%%.*s", (int)(w.n > 64 ? 64 : w.n), w.s);
	return e->v;
}

/* ---- Module pieces ------------------------------------------------------*/

/* Devices in the mesh so far (a size not given yet counts as 1). */
static int64_t mesh_size_given(const Mesh *mesh)
{
	int64_t n = 1;
	for (int k = 0; k < mesh->naxes; k++)
		n *= (int64_t)(mesh->axes[k].ici ? mesh->axes[k].ici : 1) *
		     (mesh->axes[k].dcn ? mesh->axes[k].dcn : 1);
	return n;
}

static void mesh_line(Parser *p)
{
	Mesh *mesh = &p->m->mesh;
	int ngroups = 0;
	for (;;) {
		Word g = peek_word(p);
		int ici = word_is(g, "ici");
		if (!ici && !word_is(g, "dcn")) {
			if (ngroups > 0 && (peek(p) == '\n' || peek(p) == -1))
				break;
			expected(p, ngroups ? "'ici(...)', 'dcn(...)' or end of line"
			                    : "'ici(...)' or 'dcn(...)' after 'mesh'");
		}
		skip_word(p, g);
		ngroups++;
		expect_char(p, '(', "'(' after the group name");
		do {
			Word a = ident(p, "a mesh axis name");
			if (word_is(a, "_"))
				error_at(p, a.line, a.col, "'_' is not a valid axis name (it means replicated)");
			expect_char(p, '=', "'=' after the axis name");
			skip_space(p);
			int line = p->line, col = p->col;
			int64_t size = integer(p, "the axis size");
			if (size < 1 || size > MAX_DEVICES)
				error_at(p, line, col, "axis size %lld out of range (1..%lld)",
				         (long long)size, (long long)MAX_DEVICES);
			int k = mesh_axis_index(mesh, a.s, a.n);
			if (k < 0) {
				if (mesh->naxes == IR_MAX_MESH_AXES)
					error_at(p, a.line, a.col, "mesh has more than %d axes",
					         IR_MAX_MESH_AXES);
				k = mesh->naxes++;
				mesh->axes[k].name = arena_strndup(&p->m->arena, a.s, a.n);
				mesh->axes[k].ici = 0; /* 0: not given yet */
				mesh->axes[k].dcn = 0;
			}
			int *slot = ici ? &mesh->axes[k].ici : &mesh->axes[k].dcn;
			if (*slot)
				error_at(p, a.line, a.col, "mesh axis '%.*s' given twice in %s(...)",
				         (int)a.n, a.s, ici ? "ici" : "dcn");
			*slot = (int)size;
			if (mesh_size_given(mesh) > MAX_DEVICES)
				error_at(p, line, col, "mesh has more than %lld devices",
				         (long long)MAX_DEVICES);
		} while (accept_char(p, ','));
		expect_char(p, ')', "',' or ')' in the axis list");
	}
	for (int k = 0; k < mesh->naxes; k++) {
		if (!mesh->axes[k].ici)
			mesh->axes[k].ici = 1;
		if (!mesh->axes[k].dcn)
			mesh->axes[k].dcn = 1;
	}
}

/* dtype[d0,d1,...] followed by an optional sharding <a+b,_,...>. */
static void type(Parser *p, Type *t)
{
	memset(t, 0, sizeof *t);
	skip_space(p);
	if (!is_ident_start(peek(p)))
		expected(p, "a type such as f32[8,128]");
	Word w = scan_run(p, is_ident);
	int dt = dtype_from_name(w.s, w.n);
	if (dt < 0)
		error_at(p, w.line, w.col, "unknown dtype '%.*s' (expected f32, bf16, f16, s32, "
		         "s8 or pred)", (int)(w.n > 32 ? 32 : w.n), w.s);
	t->dtype = (DType)dt;
	expect_char(p, '[', "'[' and the dims after the dtype");
	int64_t numel = 1;
	if (!accept_char(p, ']')) {
		do {
			skip_space(p);
			int line = p->line, col = p->col;
			if (t->rank == IR_MAX_RANK)
				error_at(p, line, col, "rank exceeds %d", IR_MAX_RANK);
			int64_t d = integer(p, "a dimension");
			if (d < 0 || d > MAX_DIM)
				error_at(p, line, col, "dimension %lld out of range (0..2^40)", (long long)d);
			if (d && numel > MAX_NUMEL / d)
				error_at(p, line, col, "type has more than 2^60 elements");
			numel *= d;
			t->dims[t->rank++] = d;
		} while (accept_char(p, ','));
		expect_char(p, ']', "',' or ']' in the dims");
	}
	skip_space(p);
	if (peek(p) != '<')
		return;
	int line = p->line, col = p->col;
	advance(p);
	int n = 0;
	do {
		Word a = ident(p, "a mesh axis name or '_' in the sharding");
		if (n >= t->rank)
			error_at(p, line, col, "sharding has more entries than the type's rank %d",
			         t->rank);
		if (word_is(a, "_")) {
			n++;
			continue;
		}
		for (;;) {
			int k = mesh_axis_index(&p->m->mesh, a.s, a.n);
			if (k < 0)
				error_at(p, a.line, a.col, "unknown mesh axis '%.*s' in the sharding",
				         (int)(a.n > 32 ? 32 : a.n), a.s);
			if (t->shard[n] & (1u << k))
				error_at(p, a.line, a.col, "mesh axis '%.*s' repeated in the sharding of "
				         "dim %d", (int)a.n, a.s, n);
			t->shard[n] |= 1u << k;
			if (!accept_char(p, '+'))
				break;
			a = ident(p, "a mesh axis name after '+'");
		}
		n++;
	} while (accept_char(p, ','));
	if (n != t->rank)
		error_at(p, line, col, "sharding has %d entr%s, the type has rank %d", n,
		         n == 1 ? "y" : "ies", t->rank);
	expect_char(p, '>', "',' or '>' in the sharding");
}

static void add_attr(Parser *p, Inst *in, int *cap, Word key, AttrKind kind)
{
	for (int i = 0; i < in->nattrs; i++)
		if (word_is(key, in->attrs[i].key))
			error_at(p, key.line, key.col, "duplicate attribute '%s'", in->attrs[i].key);
	if (in->nattrs == *cap) {
		int c = *cap ? *cap * 2 : 4;
		in->attrs = arena_grow(&p->m->arena, in->attrs, sizeof(Attr) * (size_t)*cap,
		                       sizeof(Attr) * (size_t)c);
		*cap = c;
	}
	Attr *a = &in->attrs[in->nattrs++];
	a->key = arena_strndup(&p->m->arena, key.s, key.n);
	a->kind = kind;
}

/* [ints], [names] or [] after the '['. */
static void list_value(Parser *p, Attr *a)
{
	Arena *ar = &p->m->arena;
	int cap = 0;
	skip_space(p);
	if (accept_char(p, ']')) {
		a->kind = ATTR_INTS;
		a->ints = arena_alloc(ar, sizeof(int64_t));
		return;
	}
	int c = peek(p);
	if (c == '-' || is_digit(c)) {
		a->kind = ATTR_INTS;
		do {
			if (a->n == cap) {
				int nc = cap ? cap * 2 : 4;
				a->ints = arena_grow(ar, a->ints, sizeof(int64_t) * (size_t)cap,
				                     sizeof(int64_t) * (size_t)nc);
				cap = nc;
			}
			a->ints[a->n++] = integer(p, "an integer in the list");
		} while (accept_char(p, ','));
		expect_char(p, ']', "',' or ']' in the integer list");
	} else if (is_ident_start(c)) {
		a->kind = ATTR_NAMES;
		do {
			Word w = ident(p, "a name in the list");
			if (a->n == cap) {
				int nc = cap ? cap * 2 : 4;
				a->names = arena_grow(ar, a->names, sizeof(char *) * (size_t)cap,
				                      sizeof(char *) * (size_t)nc);
				cap = nc;
			}
			a->names[a->n++] = arena_strndup(ar, w.s, w.n);
		} while (accept_char(p, ','));
		expect_char(p, ']', "',' or ']' in the name list");
	} else {
		expected(p, "an integer, a name or ']' in the list");
	}
}

/* {key=value, ...} after the '{'. */
static void attrs(Parser *p, Inst *in)
{
	int cap = 0;
	if (accept_char(p, '}'))
		return;
	do {
		Word key = ident(p, "an attribute name");
		expect_char(p, '=', "'=' after the attribute name");
		skip_space(p);
		int c = peek(p);
		Word w = peek_word(p);
		if (c == '[') {
			advance(p);
			add_attr(p, in, &cap, key, ATTR_INTS);
			list_value(p, &in->attrs[in->nattrs - 1]);
		} else if (c == '"') {
			add_attr(p, in, &cap, key, ATTR_STR);
			in->attrs[in->nattrs - 1].s = string(p);
		} else if (c == '-' || is_digit(c) || word_is(w, "inf") || word_is(w, "nan")) {
			add_attr(p, in, &cap, key, ATTR_FLOAT);
			in->attrs[in->nattrs - 1].f = number(p);
		} else {
			expected(p, "an attribute value ([ints], [names], a number or a \"string\")");
		}
	} while (accept_char(p, ','));
	expect_char(p, '}', "',' or '}' in the attributes");
}

/* [on UNIT] [in MEM] [tile [..] order [..]] */
static void annotations(Parser *p, Inst *in)
{
	Word w = peek_word(p);
	int tiled = p->m->level == LEVEL_TILED;
	if (!word_is(w, "on") && !word_is(w, "in") && !word_is(w, "tile"))
		return;
	if (!tiled)
		error_at(p, w.line, w.col, "'%.*s' annotation in a graph-level module (units, "
		         "memory spaces and tilings belong to tiled modules)", (int)w.n, w.s);
	if (word_is(w, "on")) {
		skip_word(p, w);
		Word u = ident(p, "a unit name after 'on'");
		int k = unit_from_name(u.s, u.n);
		if (k < 0)
			error_at(p, u.line, u.col, "unknown unit '%.*s' (expected mxu, vpu, dma, ici, "
			         "dcn or none)", (int)(u.n > 32 ? 32 : u.n), u.s);
		in->unit = (Unit)k;
		w = peek_word(p);
	}
	if (word_is(w, "in")) {
		skip_word(p, w);
		Word u = ident(p, "a memory space after 'in'");
		int k = mem_from_name(u.s, u.n);
		if (k < 0)
			error_at(p, u.line, u.col, "unknown memory space '%.*s' (expected hbm, vmem "
			         "or cmem)", (int)(u.n > 32 ? 32 : u.n), u.s);
		in->mem = (MemSpace)k;
		w = peek_word(p);
	}
	if (word_is(w, "tile")) {
		skip_word(p, w);
		Tiling *t = &in->tiling;
		expect_char(p, '[', "'[' and the tile shape after 'tile'");
		do {
			skip_space(p);
			int line = p->line, col = p->col;
			if (t->ntile == IR_MAX_RANK)
				error_at(p, line, col, "tile has more than %d dims", IR_MAX_RANK);
			int64_t x = integer(p, "a tile extent");
			if (x < 1 || x > MAX_DIM)
				error_at(p, line, col, "tile extent %lld out of range (1..2^40)",
				         (long long)x);
			t->tile[t->ntile++] = x;
		} while (accept_char(p, ','));
		expect_char(p, ']', "',' or ']' in the tile shape");
		Word o = peek_word(p);
		if (!word_is(o, "order"))
			expected(p, "'order [...]' after the tile shape");
		skip_word(p, o);
		expect_char(p, '[', "'[' and the loop order after 'order'");
		int n = 0;
		do {
			skip_space(p);
			int line = p->line, col = p->col;
			int64_t x = integer(p, "a loop index");
			if (n == t->ntile)
				error_at(p, line, col, "order has more entries than the tile's %d dims",
				         t->ntile);
			if (x < 0 || x >= t->ntile)
				error_at(p, line, col, "order entry %lld out of range for %d tile dims",
				         (long long)x, t->ntile);
			t->order[n++] = (int8_t)x;
		} while (accept_char(p, ','));
		if (n != t->ntile)
			expected(p, "one order entry per tile dim");
		expect_char(p, ']', "']' after the loop order");
	}
}

/* Is w the decimal spelling of v (then the value keeps no name, like a built
 * one, and prints the same)? */
static int is_index_name(Word w, ValueId v)
{
	char buf[16];
	int n = snprintf(buf, sizeof buf, "%d", (int)v);
	return (size_t)n == w.n && memcmp(buf, w.s, w.n) == 0;
}

static void instruction(Parser *p)
{
	Module *m = p->m;
	Inst in;
	memset(&in, 0, sizeof in);
	Word name = value_name(p, "'%name'");
	in.line = name.line;
	in.col = name.col;
	if (p->nsym * 2 >= p->nsym_cap)
		sym_grow(p);
	Sym *e = sym_slot(p, name.s, name.n);
	if (e->name)
		error_at(p, name.line, name.col, "redefinition of %%%.*s (first defined on line %d)",
		         (int)(name.n > 64 ? 64 : name.n), name.s, e->line);
	expect_char(p, '=', "'=' after the value name");
	Word op = ident(p, "an op name");
	int k = op_from_name(op.s, op.n);
	if (k < 0)
		error_at(p, op.line, op.col, "unknown op '%.*s'", (int)(op.n > 32 ? 32 : op.n), op.s);
	in.op = (Op)k;
	in.unit = ir_ops[k].unit;
	expect_char(p, '(', "'(' after the op name");
	if (!accept_char(p, ')')) {
		int cap = 0;
		do {
			ValueId v = operand(p, "an operand '%name'");
			if (in.nargs == cap) {
				int c = cap ? cap * 2 : 4;
				in.args = arena_grow(&m->arena, in.args, sizeof(ValueId) * (size_t)cap,
				                     sizeof(ValueId) * (size_t)c);
				cap = c;
			}
			in.args[in.nargs++] = v;
		} while (accept_char(p, ','));
		expect_char(p, ')', "',' or ')' after the operand");
	}
	if (accept_char(p, '{'))
		attrs(p, &in);
	expect_char(p, ':', "':' and the result type");
	type(p, &in.type);
	annotations(p, &in);
	end_of_line(p, "the instruction");
	ValueId v = m->ninsts;
	if (!is_index_name(name, v))
		in.name = arena_strndup(&m->arena, name.s, name.n);
	ir_append(m, &in);
	e->name = name.s;
	e->len = name.n;
	e->v = v;
	e->line = name.line;
	p->nsym++;
}

static void return_line(Parser *p, Word kw)
{
	Module *m = p->m;
	skip_word(p, kw);
	m->ret_line = kw.line;
	m->ret_col = kw.col;
	skip_space(p);
	if (peek(p) == '\n' || peek(p) == -1) {
		end_of_line(p, "'return'");
		return;
	}
	do
		ir_output(m, operand(p, "a returned value '%name'"));
	while (accept_char(p, ','));
	end_of_line(p, "the returned values");
}

static void module(Parser *p)
{
	skip_blank_lines(p);
	Word w = peek_word(p);
	if (!word_is(w, "module"))
		expected(p, "the header 'module @name graph|tiled'");
	skip_word(p, w);
	expect_char(p, '@', "'@' and the module name");
	Word name = scan_run(p, is_name);
	if (!name.n)
		expected(p, "the module name after '@'");
	Word lv = peek_word(p);
	Level level;
	if (word_is(lv, "graph"))
		level = LEVEL_GRAPH;
	else if (word_is(lv, "tiled"))
		level = LEVEL_TILED;
	else
		expected(p, "'graph' or 'tiled' after the module name");
	skip_word(p, lv);
	p->m->name = arena_strndup(&p->m->arena, name.s, name.n);
	p->m->level = level;
	end_of_line(p, "the module header");

	skip_blank_lines(p);
	w = peek_word(p);
	if (word_is(w, "mesh")) {
		skip_word(p, w);
		mesh_line(p);
		end_of_line(p, "the mesh");
	}
	for (;;) {
		skip_blank_lines(p);
		if (peek(p) == -1)
			error_here(p, "missing 'return' at the end of the module");
		if (peek(p) == '%') {
			instruction(p);
			continue;
		}
		w = peek_word(p);
		if (word_is(w, "return")) {
			return_line(p, w);
			break;
		}
		expected(p, "an instruction '%name = op(...) : type' or 'return'");
	}
	skip_blank_lines(p);
	if (peek(p) != -1)
		expected(p, "end of file after 'return'");
}

Module *ir_parse(const char *text, size_t len, const char *file, Diag *d)
{
	/* On the heap, so that what the parse changes is still defined after the
	 * longjmp (automatic variables changed after setjmp would not be). */
	Parser *const p = calloc(1, sizeof *p);
	if (!p)
		ir_die("out of memory");
	p->src = text ? text : "";
	p->len = text ? len : 0;
	p->line = 1;
	p->col = 1;
	p->d = d;
	p->m = ir_module_new("main", LEVEL_GRAPH);
	if (file)
		p->m->file = arena_strdup(&p->m->arena, file);
	p->file = p->m->file;
	Module *m = NULL;
	if (setjmp(p->fail) == 0) {
		module(p);
		m = p->m;
	} else {
		ir_module_free(p->m);
	}
	free(p->syms);
	free(p);
	return m;
}

Module *ir_parse_file(const char *path, Diag *d)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		diag_error(d, path, 0, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	if (!buf)
		ir_die("out of memory");
	for (;;) {
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				ir_die("out of memory");
		}
	}
	int err = ferror(f) ? errno : 0;
	fclose(f);
	if (err) {
		diag_error(d, path, 0, 0, "cannot read: %s", strerror(err));
		free(buf);
		return NULL;
	}
	Module *m = ir_parse(buf, len, path, d);
	free(buf);
	return m;
}
