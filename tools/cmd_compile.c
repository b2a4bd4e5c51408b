/*
 * podsim compile: read a program, run it through the compiler up to a stage,
 * and print that stage's IR.
 *
 * Three steps, each its own function:
 *   parse_args  command line -> options (usage errors: exit 2)
 *   load        an IR file, or a --model compiled for a pod (compiler/
 *               pipeline.h) -> the verified module of the --emit stage
 *   emit        that module as text (IR, or LLVM IR), to stdout or -o FILE
 * An IR file prints as read (graph) or lowered to LLVM IR (llvm, tiled
 * modules only). A model prints any stage of the pipeline: forward (the
 * global forward graph), graph (the global training step), local (the
 * per-chip program after sharding), tiled (the scheduled per-chip program),
 * llvm.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "compiler/llvm/codegen.h"
#include "ir/ir.h"
#include "modelargs.h"

typedef enum Emit { EMIT_FORWARD, EMIT_GRAPH, EMIT_LOCAL, EMIT_TILED, EMIT_LLVM } Emit;

static const char *const emit_names[] = {
	[EMIT_FORWARD] = "forward", [EMIT_GRAPH] = "graph", [EMIT_LOCAL] = "local",
	[EMIT_TILED] = "tiled",     [EMIT_LLVM] = "llvm",
};

typedef struct CompileArgs {
	const char *input;  /* IR file, "-" for stdin, or NULL */
	ModelArgs model;    /* --model and the pod options */
	Emit emit;
	const char *output; /* -o FILE, or NULL for stdout */
} CompileArgs;

static void help(FILE *out)
{
	fprintf(out,
	        "usage: podsim compile FILE.ir [--emit graph|llvm] [-o FILE]\n"
	        "       podsim compile --model M [pod options] [--emit STAGE] [-o FILE]\n"
	        "\n"
	        "Reads an IR file (docs/ir.md; '-' reads stdin), verifies it and prints it\n"
	        "in canonical form (a tiled module prints as tiled), or lowers a tiled module\n"
	        "to LLVM IR. With --model, compiles the model for the pod and prints a stage.\n"
	        "\n"
	        "options:\n"
	        "  --emit STAGE  forward: the model's forward graph (global shapes)\n"
	        "                graph: the training step (global; the default)\n"
	        "                local: the per-chip program after sharding\n"
	        "                tiled: the scheduled per-chip tiled program\n"
	        "                llvm: LLVM IR of a tiled program's kernels\n"
	        "  -o FILE       write to FILE (atomically) instead of stdout\n"
	        "  -h, --help    this text\n"
	        "\npod options (as podsim estimate):\n%s"
	        "\n"
	        "exit status: 0 ok, 1 bad input (the message names file:line:col), 2 bad usage\n",
	        model_args_help);
}

/* "--flag VALUE" or "--flag=VALUE": the value, advancing *i, or NULL if
 * argv[*i] is not flag. Sets *missing if the value is absent. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag, int *missing)
{
	size_t n = strlen(flag);
	if (strncmp(argv[*i], flag, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != 0)
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int parse_args(int argc, char **argv, CompileArgs *o)
{
	o->emit = EMIT_GRAPH;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int missing = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			help(stdout);
			return -1;
		} else if ((v = flag_value(argc, argv, &i, "--emit", &missing))) {
			int k = -1;
			for (int e = 0; e < (int)(sizeof emit_names / sizeof *emit_names); e++)
				if (!strcmp(v, emit_names[e]))
					k = e;
			if (k < 0)
				return usage_error("compile", "unknown --emit '%s' (expected graph, tiled "
				                   "or llvm)", v);
			o->emit = (Emit)k;
		} else if ((v = flag_value(argc, argv, &i, "-o", &missing))) {
			o->output = v;
		} else if (missing) {
			return usage_error("compile", "%s needs a value", a);
		} else if (!strncmp(a, "--", 2) && (missing = model_args_parse("compile", argc, argv,
		                                                                &i, &o->model))) {
			if (missing < 0)
				return EXIT_USAGE;
			missing = 0;
		} else if (a[0] == '-' && a[1] != 0) {
			return usage_error("compile", "unknown option '%s' (see podsim compile --help)",
			                   a);
		} else if (o->input) {
			return usage_error("compile", "more than one input file ('%s' and '%s')",
			                   o->input, a);
		} else {
			o->input = a;
		}
	}
	if (o->model.model && o->input)
		return usage_error("compile", "give an IR file or --model, not both");
	if (!o->input && !o->model.model)
		return usage_error("compile", "no input file (usage: podsim compile FILE.ir "
		                   "[--emit graph] [-o FILE], or --model M)");
	if (o->input && o->emit != EMIT_GRAPH && o->emit != EMIT_LLVM)
		return usage_error("compile", "--emit %s needs --model (an IR file prints as graph "
		                   "or llvm)", emit_names[o->emit]);
	return 0;
}

static Module *read_stdin(Diag *d)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	size_t got;
	while ((got = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += got;
		if (len == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	Module *m = NULL;
	if (ferror(stdin))
		diag_error(d, "<stdin>", 0, 0, "cannot read: %s", strerror(errno));
	else
		m = ir_parse(buf, len, "<stdin>", d);
	free(buf);
	return m;
}

/* The input as a verified module, or NULL with d filled. */
static Module *load(const CompileArgs *o, Diag *d)
{
	Module *m = strcmp(o->input, "-") ? ir_parse_file(o->input, d) : read_stdin(d);
	if (m && ir_verify(m, d) != 0) {
		ir_module_free(m);
		m = NULL;
	}
	return m;
}

/* The text of the --emit stage (malloc'd), or NULL with d filled. A new
 * stage is one more case here (and no longer refused in parse_args). */
static char *stage_text(const CompileArgs *o, const Module *m, Diag *d)
{
	if (o->emit == EMIT_LLVM)
		return codegen_emit_llvm(m, NULL, d);
	return ir_print_string(m);
}

static int emit(const CompileArgs *o, const Module *m)
{
	Diag d;
	diag_init(&d);
	char *text = stage_text(o, m, &d);
	if (!text) {
		fprintf(stderr, "%s\n", d.msg);
		return EXIT_INPUT;
	}
	size_t len = strlen(text);
	int rc = EXIT_OK;
	if (o->output) {
		if (write_file_atomic(o->output, text, len) != 0) {
			fprintf(stderr, "podsim compile: cannot write %s: %s\n", o->output,
			        strerror(errno));
			rc = EXIT_INPUT;
		}
	} else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "podsim compile: cannot write to stdout: %s\n", strerror(errno));
		rc = EXIT_INPUT;
	}
	free(text);
	return rc;
}

/* --model: compile for the pod and print the --emit stage. */
static int compile_model_stage(CompileArgs *o)
{
	int rc = model_args_resolve("compile", &o->model);
	if (rc)
		return rc;
	Diag d;
	diag_init(&d);
	Compiled c;
	o->model.o.c.keep_stages = 1;
	if (compile_model(&o->model.o.c, &c, &d)) {
		fprintf(stderr, "podsim compile: %s\n", d.msg);
		compiled_free(&c);
		return EXIT_INPUT;
	}
	const Module *m = o->emit == EMIT_FORWARD ? c.forward
	                  : o->emit == EMIT_GRAPH ? c.step
	                  : o->emit == EMIT_LOCAL ? c.local
	                                          : c.program;
	rc = emit(o, m);
	compiled_free(&c);
	return rc;
}

int cmd_compile(int argc, char **argv)
{
	CompileArgs o;
	memset(&o, 0, sizeof o);
	model_args_init(&o.model);
	int rc = parse_args(argc, argv, &o);
	if (rc) {
		model_args_free(&o.model);
		return rc < 0 ? EXIT_OK : rc; /* < 0: --help */
	}
	if (o.model.model) {
		rc = compile_model_stage(&o);
		model_args_free(&o.model);
		return rc;
	}
	model_args_free(&o.model);
	Diag d;
	diag_init(&d);
	Module *m = load(&o, &d);
	if (!m) {
		fprintf(stderr, "%s\n", d.msg);
		if (d.nerrors > 1)
			fprintf(stderr, "podsim compile: %d more error%s not shown\n", d.nerrors - 1,
			        d.nerrors == 2 ? "" : "s");
		return EXIT_INPUT;
	}
	rc = emit(&o, m);
	ir_module_free(m);
	return rc;
}
