/*
 * podsim: the command line. main() only dispatches; every subcommand lives in
 * its own file (tools/cmd_<name>.c) and returns the exit status.
 */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "commands.h"

#ifndef PODSIM_VERSION
#define PODSIM_VERSION "0.0.0"
#endif

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
#define CMD(name, summary) {#name, cmd_##name, summary},
	PODSIM_COMMANDS(CMD)
#undef CMD
};

static void help(FILE *out)
{
	fprintf(out,
	        "usage: podsim <command> [options]\n"
	        "       podsim --help | --version\n\n"
	        "A TPU-style accelerator simulator and compiler.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'podsim <command> --help' describes a command's options.\n");
}

/* Asks for transparent huge pages on the first n bytes the heap will
 * hand out: the heap is grown by n at once and kept (the trim threshold is
 * above it), and its 2 MiB-aligned interior is madvised. A compile touches
 * each page it gets once; with 2 MiB pages that is a few hundred faults
 * instead of tens of thousands. Pages never touched are never backed. */
static void heap_huge_pages(size_t n)
{
#ifdef MADV_HUGEPAGE
	const uintptr_t huge = (uintptr_t)2 << 20;
	char *p = malloc(n);
	if (!p)
		return;
	uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t e = ((uintptr_t)p + n) & ~(huge - 1);
	if (e > a)
		madvise((void *)a, e - a, MADV_HUGEPAGE);
	free(p);
#else
	(void)n;
#endif
}

int main(int argc, char **argv)
{
	/* The compiler passes build and drop whole modules of tens of MiB; kept
	 * in the heap instead of mapped and unmapped each time, freed memory is
	 * reused without a page fault per page (a third of an estimate's time). */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	heap_huge_pages((size_t)192 << 20);
	if (argc < 2) {
		help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		help(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("podsim %s\n", PODSIM_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "podsim: unknown command '%s' (see podsim --help)\n", argv[1]);
	return EXIT_USAGE;
}
