/*
 * podsim list models|chips [--json]: the presets podsim knows. Each kind is
 * listed by its own file (list_models.c, list_chips.c).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

int cmd_list(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: podsim list models|chips [--json]\n");
		return EXIT_OK;
	}
	if (argc < 2)
		return usage_error("list", "expected 'models' or 'chips'");
	if (!strcmp(argv[1], "models"))
		return list_models(argc - 1, argv + 1);
	if (!strcmp(argv[1], "chips"))
		return list_chips(argc - 1, argv + 1);
	return usage_error("list", "unknown list '%s' (expected 'models' or 'chips')", argv[1]);
}
