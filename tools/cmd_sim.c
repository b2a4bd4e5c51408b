/*
 * podsim sim FILE.tir [--chip C] [--json] [--trace out.json]: parse and verify
 * a tiled per-chip program, run it through the event engine on one chip, and
 * print the step time, per-unit busy time, FLOP rate and memory use (text or
 * one JSON object); optionally write a Chrome trace (Perfetto, TensorBoard).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sim/chip.h"
#include "sim/engine.h"
#include "sim/trace.h"

static const char usage[] =
	"usage: podsim sim FILE.tir [--chip C] [--json] [--trace out.json]\n"
	"  Simulates a tiled-level per-chip program (docs/ir.md) on one chip.\n"
	"  --chip C        chip preset name or chip JSON file (default tpu-v4;\n"
	"                  see podsim list chips)\n"
	"  --json          print one JSON object instead of text\n"
	"  --trace FILE    write a Chrome trace-event JSON file (one track per unit)\n";

static void value_name(const Module *m, int v, char *buf, size_t n)
{
	if (m->insts[v].name)
		snprintf(buf, n, "%%%s", m->insts[v].name);
	else
		snprintf(buf, n, "%%%d", v);
}

static void print_json(const Module *m, const Chip *c, const SimResult *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "module", json_string(m->name ? m->name : ""));
	json_object_set_new(o, "chip", json_string(c->name));
	json_object_set_new(o, "seconds", json_real(r->seconds));
	json_object_set_new(o, "cycles", json_real(r->cycles));
	json_object_set_new(o, "clock_hz", json_real(c->clock_hz));
	json_object_set_new(o, "flops", json_real(r->flops));
	json_object_set_new(o, "flops_per_s", json_real(r->seconds > 0 ? r->flops / r->seconds : 0));
	json_object_set_new(o, "peak_flops", json_real(c->peak_flops));
	json_object_set_new(o, "flops_utilization",
	                    json_real(r->seconds > 0 ? r->flops / r->seconds / c->peak_flops : 0));
	json_object_set_new(o, "hbm_bytes", json_real(r->hbm_bytes));
	json_t *busy = json_object();
	for (int u = 1; u < UNIT_COUNT; u++)
		json_object_set_new(busy, unit_name((Unit)u), json_real(r->busy[u]));
	json_object_set_new(o, "busy_s", busy);
	json_t *mem = json_object();
	for (int s = 1; s < MEM_COUNT; s++) {
		json_t *e = json_object();
		json_object_set_new(e, "peak_bytes", json_real(r->mem_peak[s]));
		json_object_set_new(e, "capacity_bytes", json_real(r->mem_capacity[s]));
		json_object_set_new(mem, mem_name((MemSpace)s), e);
	}
	json_object_set_new(o, "memory", mem);
	json_object_set_new(o, "spill_bytes", json_real(r->spill_bytes));
	json_object_set_new(o, "fits", json_boolean(r->mem_peak[MEM_HBM] <= r->mem_capacity[MEM_HBM]));
	json_t *ops = json_array();
	for (int v = 0; v < r->nops; v++) {
		json_t *e = json_object();
		char name[64];
		value_name(m, v, name, sizeof name);
		json_object_set_new(e, "value", json_string(name));
		json_object_set_new(e, "op", json_string(op_name(m->insts[v].op)));
		json_object_set_new(e, "unit", json_string(unit_name(r->ops[v].unit)));
		json_object_set_new(e, "start_s", json_real(r->ops[v].start));
		json_object_set_new(e, "end_s", json_real(r->ops[v].end));
		json_array_append_new(ops, e);
	}
	json_object_set_new(o, "ops", ops);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

static void print_text(const Module *m, const Chip *c, const SimResult *r)
{
	printf("module @%s on %s\n", m->name ? m->name : "", c->name);
	printf("time      %.6g us (%.0f cycles at %.0f MHz%s)\n", r->seconds * 1e6, r->cycles,
	       c->clock_hz / 1e6, c->clock_from_peak ? ", derived from the peak" : "");
	double rate = r->seconds > 0 ? r->flops / r->seconds : 0;
	printf("flops     %.6g (%.4g TFLOP/s, %.1f%% of the %.4g TFLOP/s peak)\n", r->flops,
	       rate / 1e12, 100 * rate / c->peak_flops, c->peak_flops / 1e12);
	printf("traffic   %.6g bytes to and from HBM\n", r->hbm_bytes);
	printf("busy      ");
	for (int u = 1; u < UNIT_COUNT; u++)
		printf("%s %.4g us (%.1f%%)%s", unit_name((Unit)u), r->busy[u] * 1e6,
		       r->seconds > 0 ? 100 * r->busy[u] / r->seconds : 0,
		       u + 1 < UNIT_COUNT ? ", " : "\n");
	for (int s = 1; s < MEM_COUNT; s++)
		if (r->mem_capacity[s] > 0 || r->mem_peak[s] > 0)
			printf("%-9s peak %.6g of %.6g bytes\n", mem_name((MemSpace)s), r->mem_peak[s],
			       r->mem_capacity[s]);
	if (r->spill_bytes > 0)
		printf("spill     %.6g bytes from on-chip memory to HBM\n", r->spill_bytes);
}

int cmd_sim(int argc, char **argv)
{
	const char *file = NULL, *chipname = "tpu-v4", *trace = NULL;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			as_json = 1;
		} else if (!strcmp(argv[i], "--chip") || !strcmp(argv[i], "--trace")) {
			if (i + 1 >= argc)
				return usage_error("sim", "%s needs a value", argv[i]);
			if (!strcmp(argv[i], "--chip"))
				chipname = argv[++i];
			else
				trace = argv[++i];
		} else if (!strncmp(argv[i], "--chip=", 7)) {
			chipname = argv[i] + 7;
		} else if (!strncmp(argv[i], "--trace=", 8)) {
			trace = argv[i] + 8;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return usage_error("sim", "unknown option '%s' (see podsim sim --help)", argv[i]);
		} else if (file) {
			return usage_error("sim", "more than one input file ('%s', '%s')", file, argv[i]);
		} else {
			file = argv[i];
		}
	}
	if (!file)
		return usage_error("sim", "expected a tiled IR file (see podsim sim --help)");
	Diag d;
	diag_init(&d);
	Chip c;
	if (chip_load(chipname, &c, &d) != 0) {
		fprintf(stderr, "%s\n", d.msg);
		return EXIT_INPUT;
	}
	Module *m = ir_parse_file(file, &d);
	if (!m) {
		fprintf(stderr, "%s\n", d.msg);
		return EXIT_INPUT;
	}
	if (ir_verify(m, &d) != 0) {
		fprintf(stderr, "%s\n", d.msg);
		ir_module_free(m);
		return EXIT_INPUT;
	}
	SimResult r;
	if (engine_run(m, &c, NULL, &r, &d) != 0) {
		fprintf(stderr, "%s\n", d.msg);
		ir_module_free(m);
		return EXIT_INPUT;
	}
	int rc = EXIT_OK;
	if (trace && trace_write(trace, m, &c, &r, &d) != 0) {
		fprintf(stderr, "%s\n", d.msg);
		rc = EXIT_INPUT;
	}
	if (rc == EXIT_OK) {
		if (as_json)
			print_json(m, &c, &r);
		else
			print_text(m, &c, &r);
	}
	sim_result_free(&r);
	ir_module_free(m);
	return rc;
}
