/* podsim list models: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int list_models(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim list models: not implemented yet\n");
	return EXIT_USAGE;
}
