/*
 * libFuzzer target for the IR text parser (testsuite/fuzz/run.sh builds and
 * runs it). On any input the parser must not crash, leak or hit undefined
 * behaviour (ASan, UBSan), and must either fail with a positioned diagnostic
 * or return a module. For every module it returns:
 *   - printing it must work, and the printed text must parse again (valid or
 *     not, the printer shows what the module holds, in parseable form);
 *   - printing is a fixpoint: print(parse(print(m))) == print(m), byte for byte;
 *   - parse(print(m)) is m again, field by field (floats to the bit), so text
 *     that is stable but wrong (a float printed too short) is caught too;
 *   - the verifier's verdict is the same for the module and its reprint.
 * A violation aborts, so libFuzzer records the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Noreturn void fail(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_ir_parse: %s\n--- first\n%s\n--- second\n%s\n", what, a ? a : "",
	        b ? b : "");
	abort();
}

/* Field-by-field equality of two modules; NULL if equal, else what differs. */
static const char *module_diff(const Module *a, const Module *b)
{
	if (strcmp(a->name, b->name) || a->level != b->level)
		return "header";
	if (a->mesh.naxes != b->mesh.naxes)
		return "mesh size";
	for (int k = 0; k < a->mesh.naxes; k++)
		if (strcmp(a->mesh.axes[k].name, b->mesh.axes[k].name) ||
		    a->mesh.axes[k].ici != b->mesh.axes[k].ici || a->mesh.axes[k].dcn != b->mesh.axes[k].dcn)
			return "mesh axis";
	if (a->ninsts != b->ninsts || a->noutputs != b->noutputs)
		return "instruction or output count";
	for (int i = 0; i < a->noutputs; i++)
		if (a->outputs[i] != b->outputs[i])
			return "outputs";
	for (int v = 0; v < a->ninsts; v++) {
		const Inst *x = &a->insts[v], *y = &b->insts[v];
		if (x->op != y->op || !type_equal(&x->type, &y->type) || x->nargs != y->nargs ||
		    x->nattrs != y->nattrs || x->unit != y->unit || x->mem != y->mem ||
		    x->tiling.ntile != y->tiling.ntile)
			return "instruction";
		if ((x->name == NULL) != (y->name == NULL) || (x->name && strcmp(x->name, y->name)))
			return "value name";
		for (int i = 0; i < x->nargs; i++)
			if (x->args[i] != y->args[i])
				return "operands";
		for (int i = 0; i < x->tiling.ntile; i++)
			if (x->tiling.tile[i] != y->tiling.tile[i] || x->tiling.order[i] != y->tiling.order[i])
				return "tiling";
		for (int i = 0; i < x->nattrs; i++) {
			const Attr *p = &x->attrs[i], *q = &y->attrs[i];
			if (strcmp(p->key, q->key) || p->kind != q->kind || p->n != q->n)
				return "attribute";
			switch (p->kind) {
			case ATTR_INTS:
				for (int j = 0; j < p->n; j++)
					if (p->ints[j] != q->ints[j])
						return "integer attribute";
				break;
			case ATTR_NAMES:
				for (int j = 0; j < p->n; j++)
					if (strcmp(p->names[j], q->names[j]))
						return "name attribute";
				break;
			case ATTR_STR:
				if (strcmp(p->s, q->s))
					return "string attribute";
				break;
			case ATTR_FLOAT:
				if (memcmp(&p->f, &q->f, sizeof p->f) && !(p->f != p->f && q->f != q->f))
					return "float attribute";
				break;
			}
		}
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Diag d;
	diag_init(&d);
	Module *m = ir_parse((const char *)data, size, "fuzz.ir", &d);
	if (!m) {
		if (d.nerrors != 1 || strncmp(d.msg, "fuzz.ir:", 8) != 0 || !strstr(d.msg, ": error: "))
			fail("a failed parse must leave one positioned error", d.msg, NULL);
		return 0;
	}
	Diag vd;
	diag_init(&vd);
	int valid = ir_verify(m, &vd) == 0;
	if (!valid && (vd.nerrors < 1 || strncmp(vd.msg, "fuzz.ir", 7) != 0))
		fail("a failed verification must leave an error naming the file", vd.msg, NULL);
	char *t1 = ir_print_string(m);
	Diag d2;
	diag_init(&d2);
	Module *m2 = ir_parse(t1, strlen(t1), "printed.ir", &d2);
	if (!m2)
		fail("the printed module does not parse", t1, d2.msg);
	const char *what = module_diff(m, m2);
	if (what)
		fail(what, t1, "(parse(print(m)) differs from m)");
	char *t2 = ir_print_string(m2);
	if (strcmp(t1, t2) != 0)
		fail("print(parse(print(m))) != print(m)", t1, t2);
	Diag vd2;
	diag_init(&vd2);
	if ((ir_verify(m2, &vd2) == 0) != valid)
		fail("the verifier's verdict changed after printing", vd.msg, vd2.msg);
	free(t1);
	free(t2);
	ir_module_free(m);
	ir_module_free(m2);
	return 0;
}
