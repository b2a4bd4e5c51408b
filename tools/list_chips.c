/* podsim list chips: not built yet (see the open issues). */
#include <stdio.h>

#include "commands.h"

int list_chips(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "podsim list chips: not implemented yet\n");
	return EXIT_USAGE;
}
