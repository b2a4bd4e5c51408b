/*
 * The options that say what to compile and for which pod, shared by
 * podsim estimate and podsim compile --model (tools/modelargs.c).
 */
#ifndef PODSIM_MODELARGS_H
#define PODSIM_MODELARGS_H

#include "estimate.h"

typedef struct ModelArgs {
	const char *model, *chip, *slice, *ici, *dcn;
	long batch, seq, microbatches, slices;
	EstimateOptions o; /* flags that need no resolving are set directly */
	Arena names;       /* mesh axis names */
} ModelArgs;

void model_args_init(ModelArgs *a);
void model_args_free(ModelArgs *a);

/* The usage lines of these options, for --help texts. */
extern const char *const model_args_help;

/* If argv[*i] is one of these options, consumes it (and its value) and
 * returns 1; returns 0 if it is not; -1 after printing a usage error. */
int model_args_parse(const char *cmd, int argc, char **argv, int *i, ModelArgs *a);

/* Loads the model and chip, builds the mesh and fills a->o. Returns 0, or
 * the exit status after printing the error (1 bad input, 2 bad usage). */
int model_args_resolve(const char *cmd, ModelArgs *a);
/* A usage error (and its exit code) when a step of model m for batch
 * sequences of seq tokens (0: the model's) is too large for 64-bit shapes
 * and counts; else 0. */
int model_args_check_size(const char *cmd, const ModelConfig *m, int64_t batch, int64_t seq);

#endif
