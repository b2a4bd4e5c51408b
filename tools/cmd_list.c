/* podsim list: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int cmd_list(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim list: not implemented yet\n");
	return EXIT_USAGE;
}
