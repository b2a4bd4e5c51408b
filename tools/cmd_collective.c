/* podsim collective: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_collective(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim collective: not implemented yet\n");
	return EXIT_USAGE;
}
