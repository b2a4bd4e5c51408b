/*
 * Chrome trace-event JSON of an engine run: the format Perfetto
 * (ui.perfetto.dev) and TensorBoard's trace viewer open. One process (the
 * chip), one thread (track) per unit, one complete event ("ph": "X") per op
 * with timestamps in microseconds; args carry the op's value, type, memory
 * space and FLOPs. docs/hardware.md describes the fields.
 */
#ifndef PODSIM_TRACE_H
#define PODSIM_TRACE_H

#include "engine.h"

/* The trace as a malloc'd NUL-terminated string (caller frees), or NULL if
 * out of memory. */
char *trace_json(const Module *m, const Chip *c, const SimResult *r);

/* Writes trace_json to path atomically (a temporary file in the same
 * directory, then rename). Returns 0, or -1 with d filled. */
int trace_write(const char *path, const Module *m, const Chip *c, const SimResult *r,
                Diag *d);

#endif
