/* podsim compile: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_compile(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim compile: not implemented yet\n");
	return EXIT_USAGE;
}
