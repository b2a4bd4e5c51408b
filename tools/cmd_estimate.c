/* podsim estimate: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_estimate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim estimate: not implemented yet\n");
	return EXIT_USAGE;
}
