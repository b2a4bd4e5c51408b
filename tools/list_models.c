/*
 * podsim list models [--json] [MODEL...]: every model preset (or the models
 * named: presets or model files) with its family, layers, d_model, heads and
 * parameter count. Counts come from building each model's graph (shapes
 * only, no data) and summing its weights, so they show what podsim
 * simulates, not a formula.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "frontends/model.h"

typedef struct Row {
	ModelConfig c;
	ParamCount pc;
} Row;

static int row(const char *name, Row *r)
{
	Diag d;
	diag_init(&d);
	if (model_load(name, &r->c, &d)) {
		fprintf(stderr, "podsim list models: %s\n", d.msg);
		return -1;
	}
	BuildOptions o;
	build_options_default(&o);
	Module *m = model_build(&r->c, &o, &d);
	if (!m) {
		fprintf(stderr, "podsim list models: %s\n", d.msg);
		return -1;
	}
	model_count_params(m, &r->pc);
	ir_module_free(m);
	return 0;
}

static void layers_text(const ModelConfig *c, char *buf, size_t n)
{
	if (c->family == FAMILY_ENCDEC)
		snprintf(buf, n, "%d+%d", c->enc_layers, c->dec_layers);
	else
		snprintf(buf, n, "%d", c->enc_layers + c->dec_layers);
}

/* 540350000000 -> "540.35B" */
static void human(int64_t n, char *buf, size_t len)
{
	if (n >= 1000000000)
		snprintf(buf, len, "%.2fB", (double)n / 1e9);
	else
		snprintf(buf, len, "%.2fM", (double)n / 1e6);
}

int list_models(int argc, char **argv)
{
	int json = 0, nnamed = 0;
	char **named = argv + 1;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-')
			named[nnamed++] = argv[i];
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: podsim list models [--json] [MODEL...]\n"
			       "Lists the model presets, or the models named (preset names or model\n"
			       "files: ours or a Hugging Face config.json). Parameter counts are\n"
			       "counted from each model's built graph.\n");
			return EXIT_OK;
		} else
			return usage_error("list models", "unknown option '%s'", argv[i]);
	}
	int n = nnamed ? nnamed : model_preset_count();
	if (json)
		printf("[\n");
	else
		printf("%-24s %-16s %7s %7s %5s %16s %10s %8s\n", "name", "family", "layers",
		       "d_model", "heads", "params", "", "experts");
	for (int i = 0; i < n; i++) {
		Row r;
		if (row(nnamed ? named[i] : model_preset_name(i), &r))
			return EXIT_INPUT;
		const ModelConfig *c = &r.c;
		char layers[32], hp[32];
		layers_text(c, layers, sizeof layers);
		human(r.pc.total, hp, sizeof hp);
		if (json) {
			printf("  {\"name\": \"%s\", \"family\": \"%s\", \"encoder_layers\": %d, "
			       "\"decoder_layers\": %d, \"d_model\": %" PRId64 ", \"heads\": %" PRId64
			       ", \"kv_heads\": %" PRId64 ", \"d_ff\": %" PRId64 ", \"experts\": %d, "
			       "\"params\": %" PRId64 ", \"params_without_head\": %" PRId64
			       ", \"active_params\": %" PRId64 "}%s\n",
			       c->name, family_name(c->family), c->enc_layers, c->dec_layers, c->d_model,
			       c->heads, c->kv_heads, c->d_ff, c->experts, r.pc.total,
			       r.pc.total - r.pc.head, model_active_params(c, &r.pc), i + 1 < n ? "," : "");
		} else {
			char heads[24] = "-"; /* a mixer has no attention */
			if (c->heads)
				snprintf(heads, sizeof heads, "%" PRId64, c->heads);
			printf("%-24s %-16s %7s %7" PRId64 " %5s %16" PRId64 " %10s %8d\n", c->name,
			       family_name(c->family), layers, c->d_model, heads, r.pc.total, hp,
			       c->experts);
		}
	}
	if (json)
		printf("]\n");
	return EXIT_OK;
}
