/* podsim run: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim run: not implemented yet\n");
	return EXIT_USAGE;
}
