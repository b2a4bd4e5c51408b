/*
 * podsim estimate: step time, tokens/s, MFU/HFU, memory per chip and the
 * time split of one training step of a model on a pod (tools/estimate.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "modelargs.h"

static void help(void)
{
	printf("usage: podsim estimate --model M [--chip C] [--slice AxB[xC]] [--slices N]\n"
	       "                       [--ici AXIS=N,...] [--dcn AXIS=N,...] [--batch SEQS]\n"
	       "                       [--seq LEN] [--remat none|minimal|full] [--json] [--trace FILE]\n"
	       "\n%s"
	       "  --json           one JSON object on stdout\n"
	       "  --trace FILE     Chrome trace of the step on one chip (Perfetto, TensorBoard)\n"
	       "\nexit status: 0 ok, 1 bad input or the model does not fit, 2 bad usage\n",
	       model_args_help);
}

int cmd_estimate(int argc, char **argv)
{
	ModelArgs a;
	model_args_init(&a);
	int json = 0, rc = EXIT_USAGE;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help();
			rc = EXIT_OK;
			goto out;
		}
		if (!strcmp(argv[i], "--json")) {
			json = 1;
			continue;
		}
		if (!strcmp(argv[i], "--trace")) {
			if (i + 1 >= argc) {
				usage_error("estimate", "--trace needs a value");
				goto out;
			}
			a.o.trace = argv[++i];
			continue;
		}
		int k = model_args_parse("estimate", argc, argv, &i, &a);
		if (k < 0)
			goto out;
		if (k == 0) {
			usage_error("estimate", "unknown option '%s' (see podsim estimate --help)", argv[i]);
			goto out;
		}
	}
	if ((rc = model_args_resolve("estimate", &a)))
		goto out;
	Diag d;
	diag_init(&d);
	Estimate e;
	if (estimate_run(&a.o, &e, &d)) {
		fprintf(stderr, "podsim estimate: %s\n", d.msg);
		rc = EXIT_INPUT;
		goto out;
	}
	if (json) {
		char *s = estimate_json(&a.o, &e);
		puts(s);
		free(s);
	} else {
		estimate_print(stdout, &a.o, &e);
	}
	rc = EXIT_OK;
	if (!e.mem.fits) {
		fprintf(stderr, "podsim estimate: %s on %s: %s\n", a.o.c.model.name, a.o.c.chip.name,
		        e.nofit);
		rc = EXIT_INPUT;
	}
out:
	model_args_free(&a);
	return rc;
}
