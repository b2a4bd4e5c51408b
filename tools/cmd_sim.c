/* podsim sim: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_sim(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim sim: not implemented yet\n");
	return EXIT_USAGE;
}
