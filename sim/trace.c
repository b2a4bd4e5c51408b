/*
 * Chrome trace-event JSON (see trace.h). Built with jansson so that every
 * string is escaped correctly, then written to a temporary file beside the
 * target and renamed over it, so a reader never sees half a trace.
 */
#include "trace.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cost.h"

static json_t *meta(const char *what, int tid, const char *name)
{
	json_t *e = json_object();
	json_object_set_new(e, "name", json_string(what));
	json_object_set_new(e, "ph", json_string("M"));
	json_object_set_new(e, "pid", json_integer(0));
	json_object_set_new(e, "tid", json_integer(tid));
	json_t *args = json_object();
	json_object_set_new(args, "name", json_string(name));
	json_object_set_new(e, "args", args);
	return e;
}

static void type_string(const Type *t, char *buf, size_t n)
{
	size_t used = (size_t)snprintf(buf, n, "%s[", dtype_name(t->dtype));
	for (int i = 0; i < t->rank && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "," : "",
		                         (long long)t->dims[i]);
	if (used < n)
		snprintf(buf + used, n - used, "]");
}

char *trace_json(const Module *m, const Chip *c, const SimResult *r)
{
	json_t *root = json_object();
	json_t *ev = json_array();
	json_array_append_new(ev, meta("process_name", 0, c->name));
	for (int u = 1; u < UNIT_COUNT; u++) {
		json_array_append_new(ev, meta("thread_name", u, unit_name((Unit)u)));
		json_t *so = meta("thread_sort_index", u, "");
		json_object_set_new(json_object_get(so, "args"), "sort_index", json_integer(u));
		json_array_append_new(ev, so);
	}
	for (int v = 0; v < r->nops; v++) {
		const SimOp *op = &r->ops[v];
		const Inst *in = &m->insts[v];
		if (op->unit == UNIT_NONE)
			continue;
		char vname[64], ty[128];
		if (in->name)
			snprintf(vname, sizeof vname, "%%%s", in->name);
		else
			snprintf(vname, sizeof vname, "%%%d", v);
		type_string(&in->type, ty, sizeof ty);
		json_t *e = json_object();
		json_object_set_new(e, "name", json_string(op_name(in->op)));
		json_object_set_new(e, "cat", json_string(unit_name(op->unit)));
		json_object_set_new(e, "ph", json_string("X"));
		json_object_set_new(e, "pid", json_integer(0));
		json_object_set_new(e, "tid", json_integer(op->unit));
		json_object_set_new(e, "ts", json_real(op->start * 1e6));
		json_object_set_new(e, "dur", json_real((op->end - op->start) * 1e6));
		json_t *args = json_object();
		json_object_set_new(args, "value", json_string(vname));
		json_object_set_new(args, "type", json_string(ty));
		json_object_set_new(args, "mem", json_string(mem_name(in->mem)));
		json_object_set_new(args, "flops", json_real(cost_flops(m, in)));
		if (in->line > 0)
			json_object_set_new(args, "line", json_integer(in->line));
		json_object_set_new(e, "args", args);
		json_array_append_new(ev, e);
	}
	json_object_set_new(root, "traceEvents", ev);
	json_object_set_new(root, "displayTimeUnit", json_string("ns"));
	json_t *md = json_object();
	json_object_set_new(md, "chip", json_string(c->name));
	json_object_set_new(md, "module", json_string(m->name ? m->name : ""));
	json_object_set_new(md, "seconds", json_real(r->seconds));
	json_object_set_new(md, "cycles", json_real(r->cycles));
	json_object_set_new(root, "otherData", md);
	char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12));
	json_decref(root);
	return s;
}

int trace_write(const char *path, const Module *m, const Chip *c, const SimResult *r,
                Diag *d)
{
	char *s = trace_json(m, c, r);
	if (!s) {
		diag_error(d, path, 0, 0, "out of memory writing the trace");
		return -1;
	}
	size_t n = strlen(path) + 32;
	char *tmp = malloc(n);
	if (!tmp) {
		free(s);
		diag_error(d, path, 0, 0, "out of memory writing the trace");
		return -1;
	}
	snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	int ok = f != NULL;
	int err = errno;
	if (f) {
		size_t len = strlen(s);
		ok = fwrite(s, 1, len, f) == len;
		ok = fputc('\n', f) != EOF && ok;
		ok = fflush(f) == 0 && ok;
		err = errno;
		ok = fclose(f) == 0 && ok;
		if (ok && rename(tmp, path) != 0)
			ok = 0, err = errno;
		if (!ok)
			unlink(tmp);
	}
	free(s);
	free(tmp);
	if (!ok) {
		diag_error(d, path, 0, 0, "cannot write trace: %s", strerror(err));
		return -1;
	}
	return 0;
}
