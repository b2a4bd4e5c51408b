/*
 * The IR text printer: the canonical form of docs/ir.md. Whatever the parser
 * accepts, this prints back in one fixed spelling (spaces, attribute order as
 * stored, shardings in mesh-axis order, floats in the shortest form that reads
 * back to the same double), so print(parse(print(m))) == print(m).
 *
 * The printer never fails and never judges: it prints what the module holds,
 * valid or not, so a broken module can be looked at. Only what a valid module
 * may hold is guaranteed to parse back (see ir_verify).
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void print_value(const Module *m, ValueId v, FILE *out)
{
	if (v >= 0 && v < m->ninsts && m->insts[v].name)
		fprintf(out, "%%%s", m->insts[v].name);
	else
		fprintf(out, "%%%d", (int)v);
}

/* The shortest decimal that strtod reads back to exactly f (p significant
 * digits), spelled positionally when its decimal exponent e is in [-4, 15]
 * ("100.0", "0.25") and in %g exponent form otherwise ("1e+20", "5e-324"),
 * always with a '.' or an exponent so that it re-parses as ATTR_FLOAT. */
static void print_float(double f, FILE *out)
{
	if (isnan(f)) {
		fputs("nan", out);
		return;
	}
	if (isinf(f)) {
		fputs(f < 0 ? "-inf" : "inf", out);
		return;
	}
	char buf[400];
	int prec = 1;
	for (; prec < 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
	int e = atoi(strchr(buf, 'e') + 1);
	if (e >= -4 && e <= 15)
		snprintf(buf, sizeof buf, "%.*f", prec - 1 - e > 1 ? prec - 1 - e : 1, f);
	else
		snprintf(buf, sizeof buf, "%.*g", prec, f);
	fputs(buf, out);
	if (!strpbrk(buf, ".e"))
		fputs(".0", out);
}

static void print_string(const char *s, FILE *out)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static void print_attr(const Attr *a, FILE *out)
{
	fprintf(out, "%s=", a->key);
	switch (a->kind) {
	case ATTR_INTS:
		fputc('[', out);
		for (int i = 0; i < a->n; i++)
			fprintf(out, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
		fputc(']', out);
		break;
	case ATTR_NAMES:
		fputc('[', out);
		for (int i = 0; i < a->n; i++)
			fprintf(out, "%s%s", i ? ", " : "", a->names[i]);
		fputc(']', out);
		break;
	case ATTR_FLOAT:
		print_float(a->f, out);
		break;
	case ATTR_STR:
		print_string(a->s, out);
		break;
	}
}

void ir_print_type(const Module *m, const Type *t, FILE *out)
{
	fprintf(out, "%s[", t->dtype >= 0 && t->dtype < DT_COUNT ? dtype_name(t->dtype) : "?");
	for (int i = 0; i < t->rank && i < IR_MAX_RANK; i++)
		fprintf(out, "%s%lld", i ? "," : "", (long long)t->dims[i]);
	fputc(']', out);
	int sharded = 0;
	for (int i = 0; i < t->rank && i < IR_MAX_RANK; i++)
		sharded |= t->shard[i] != 0;
	if (!sharded)
		return;
	fputc('<', out);
	for (int i = 0; i < t->rank && i < IR_MAX_RANK; i++) {
		if (i)
			fputc(',', out);
		if (!t->shard[i]) {
			fputc('_', out);
			continue;
		}
		int first = 1;
		for (int k = 0; k < 32; k++) {
			if (!(t->shard[i] & (1u << k)))
				continue;
			if (!first)
				fputc('+', out);
			first = 0;
			if (m && k < m->mesh.naxes)
				fputs(m->mesh.axes[k].name, out);
			else
				fprintf(out, "?%d", k); /* not in the mesh: invalid */
		}
	}
	fputc('>', out);
}

/* ---- Mesh ----------------------------------------------------------------
 * An axis is listed under ici(...) when its ICI size is above 1 or it has no
 * DCN part, under dcn(...) when its DCN size is above 1. The parser orders
 * axes by first appearance, so the printer picks the first of these that
 * reproduces the mesh order: ici(...) dcn(...); dcn(...) ici(...); or runs of
 * consecutive axes by the group they first appear in, followed by one dcn(...)
 * group for the DCN sizes of the axes that have both. */

static int needs_ici(const MeshAxis *a) { return a->ici > 1 || a->dcn == 1; }
static int needs_dcn(const MeshAxis *a) { return a->dcn > 1; }

/* Do the axes listed by the first group (ici_first: the ICI ones) all come
 * before the axes only the second group lists? */
static int two_groups_keep_order(const Mesh *mesh, int ici_first)
{
	int seen_second_only = 0;
	for (int i = 0; i < mesh->naxes; i++) {
		const MeshAxis *a = &mesh->axes[i];
		int in_first = ici_first ? needs_ici(a) : needs_dcn(a);
		if (!in_first)
			seen_second_only = 1;
		else if (seen_second_only)
			return 0;
	}
	return 1;
}

/* Prints one group of kind ici (1) or dcn (0) with the axes in [lo, hi) that
 * pass filter; nothing if none does. */
static void print_group(const Mesh *mesh, int ici, int lo, int hi,
                        int (*filter)(const MeshAxis *), FILE *out)
{
	int n = 0;
	for (int i = lo; i < hi; i++) {
		const MeshAxis *a = &mesh->axes[i];
		if (!filter(a))
			continue;
		fprintf(out, "%s%s=%d", n ? ", " : ici ? " ici(" : " dcn(", a->name,
		        ici ? a->ici : a->dcn);
		n++;
	}
	if (n)
		fputc(')', out);
}

static int both(const MeshAxis *a) { return needs_ici(a) && needs_dcn(a); }
static int first_ici(const MeshAxis *a) { return needs_ici(a); }
static int first_dcn(const MeshAxis *a) { return !needs_ici(a); }

static void print_mesh(const Mesh *mesh, FILE *out)
{
	if (mesh->naxes == 0)
		return;
	fputs("mesh", out);
	if (two_groups_keep_order(mesh, 1)) {
		print_group(mesh, 1, 0, mesh->naxes, needs_ici, out);
		print_group(mesh, 0, 0, mesh->naxes, needs_dcn, out);
	} else if (two_groups_keep_order(mesh, 0)) {
		print_group(mesh, 0, 0, mesh->naxes, needs_dcn, out);
		print_group(mesh, 1, 0, mesh->naxes, needs_ici, out);
	} else {
		for (int lo = 0; lo < mesh->naxes;) {
			int ici = needs_ici(&mesh->axes[lo]);
			int hi = lo + 1;
			while (hi < mesh->naxes && needs_ici(&mesh->axes[hi]) == ici)
				hi++;
			print_group(mesh, ici, lo, hi, ici ? first_ici : first_dcn, out);
			lo = hi;
		}
		print_group(mesh, 0, 0, mesh->naxes, both, out);
	}
	fputc('\n', out);
}

static void print_inst(const Module *m, ValueId v, FILE *out)
{
	const Inst *in = &m->insts[v];
	print_value(m, v, out);
	fprintf(out, " = %s(", in->op >= 0 && in->op < OP_COUNT ? op_name(in->op) : "?");
	for (int i = 0; i < in->nargs; i++) {
		if (i)
			fputs(", ", out);
		print_value(m, in->args[i], out);
	}
	fputc(')', out);
	if (in->nattrs) {
		fputs(" {", out);
		for (int i = 0; i < in->nattrs; i++) {
			if (i)
				fputs(", ", out);
			print_attr(&in->attrs[i], out);
		}
		fputc('}', out);
	}
	fputs(" : ", out);
	ir_print_type(m, &in->type, out);
	if (m->level == LEVEL_TILED)
		fprintf(out, " on %s", in->unit < UNIT_COUNT ? unit_name(in->unit) : "?");
	if (in->mem != MEM_NONE)
		fprintf(out, " in %s", in->mem < MEM_COUNT ? mem_name(in->mem) : "?");
	if (in->tiling.ntile > 0) {
		const Tiling *t = &in->tiling;
		int n = t->ntile < IR_MAX_RANK ? t->ntile : IR_MAX_RANK;
		fputs(" tile [", out);
		for (int i = 0; i < n; i++)
			fprintf(out, "%s%lld", i ? "," : "", (long long)t->tile[i]);
		fputs("] order [", out);
		for (int i = 0; i < n; i++)
			fprintf(out, "%s%d", i ? "," : "", t->order[i]);
		fputc(']', out);
	}
	fputc('\n', out);
}

void ir_print(const Module *m, FILE *out)
{
	fprintf(out, "module @%s %s\n", m->name, m->level == LEVEL_TILED ? "tiled" : "graph");
	print_mesh(&m->mesh, out);
	for (ValueId v = 0; v < m->ninsts; v++)
		print_inst(m, v, out);
	fputs("return", out);
	for (int i = 0; i < m->noutputs; i++) {
		fputs(i ? ", " : " ", out);
		print_value(m, m->outputs[i], out);
	}
	fputc('\n', out);
}

char *ir_print_string(const Module *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		ir_die("open_memstream failed");
	ir_print(m, f);
	if (fclose(f) != 0)
		ir_die("printing the module failed");
	return buf;
}
