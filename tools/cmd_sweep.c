/* podsim sweep: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_sweep(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim sweep: not implemented yet\n");
	return EXIT_USAGE;
}
