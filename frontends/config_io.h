/*
 * Internal to the config readers (load.c, config_json.c, config_hf.c):
 * locating a key in JSON text, and typed reads of jansson values that report
 * errors at the key's line and column.
 */
#ifndef PODSIM_FRONTENDS_CONFIG_IO_H
#define PODSIM_FRONTENDS_CONFIG_IO_H

#include <jansson.h>

#include "model.h"

/* Where a reader is: the text (for positions), the file name, the path of
 * enclosing object keys, and the diagnostics. */
typedef struct JsonCtx {
	const char *text;
	const char *file;
	const char *path[4];
	int npath;
	Diag *d;
} JsonCtx;

/* 1-based line and column of key inside the object at ctx's path; 0 if found,
 * -1 (line = col = 0) if not. */
int json_key_pos(const JsonCtx *x, const char *key, int *line, int *col);
/* Reports an error at key's position; returns -1. */
int json_key_error(const JsonCtx *x, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Typed reads: 0, or -1 with an error at key naming the expected type. */
int json_get_int(const JsonCtx *x, const char *key, json_t *v, int64_t min, int64_t *out);
int json_get_num(const JsonCtx *x, const char *key, json_t *v, double *out);
int json_get_bool(const JsonCtx *x, const char *key, json_t *v, int *out);
int json_get_str(const JsonCtx *x, const char *key, json_t *v, const char **out);
/* A string value among names[0..n); its index, or -1 with an error naming
 * the value and the choices. */
int json_get_enum(const JsonCtx *x, const char *key, json_t *v, const char *const *names,
                  int n, int *out);
/* Parses text with jansson (duplicate keys rejected); NULL with a
 * file:line:col error on a syntax error. */
json_t *json_parse_text(const char *text, const char *file, Diag *d);

#endif
