/*
 * The podsim subcommands, one file each (tools/cmd_<name>.c). Each takes the
 * arguments after its name (argv[0] is the subcommand) and returns the exit
 * status: 0 success, 1 bad input, 2 bad usage.
 *
 * CMD(name, summary)
 */
#ifndef PODSIM_COMMANDS_H
#define PODSIM_COMMANDS_H

#define PODSIM_COMMANDS(CMD)                                                    \
	CMD(estimate, "step time, tokens/s, MFU/HFU and memory of a training step") \
	CMD(sweep, "search shardings of a model over a pod, ranked by step time")   \
	CMD(compile, "compile a model or IR file and print a stage's IR")           \
	CMD(sim, "simulate a tiled per-chip program on one chip")                   \
	CMD(collective, "time one collective on a slice or pod")                     \
	CMD(run, "run a compiled model on simulated chips and check numerics")      \
	CMD(list, "list model or chip presets")

#define CMD(name, summary) int cmd_##name(int argc, char **argv);
PODSIM_COMMANDS(CMD)
#undef CMD

/* podsim list's two halves (tools/list_models.c, tools/list_chips.c);
 * argv[0] is "models" or "chips". */
int list_models(int argc, char **argv);
int list_chips(int argc, char **argv);

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2 };

/* Shared helpers for subcommands (tools/cli.c). */
/* Print "podsim <cmd>: message" to stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Writes data to path atomically (temporary name, then rename). 0 on
 * success, -1 with errno set. */
int write_file_atomic(const char *path, const char *data, size_t len);

#endif
