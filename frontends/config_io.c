/*
 * JSON helpers for the config readers. jansson reports line and column for
 * syntax errors but keeps no positions for parsed keys, so json_key_pos
 * re-scans the (already valid) text to find a key: a small recursive walk
 * that skips values and descends only along the wanted path.
 */
#include "config_io.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct Scan {
	const char *s;
	size_t i;
} Scan;

static void ws(Scan *sc)
{
	while (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' || sc->s[sc->i] == '\n' ||
	       sc->s[sc->i] == '\r')
		sc->i++;
}

/* At '"': advances past the string; *start, *len: the raw contents. */
static void str(Scan *sc, const char **start, size_t *len)
{
	sc->i++;
	*start = sc->s + sc->i;
	while (sc->s[sc->i] && sc->s[sc->i] != '"') {
		if (sc->s[sc->i] == '\\' && sc->s[sc->i + 1])
			sc->i++;
		sc->i++;
	}
	*len = (size_t)(sc->s + sc->i - *start);
	if (sc->s[sc->i])
		sc->i++;
}

static void skip(Scan *sc)
{
	ws(sc);
	char ch = sc->s[sc->i];
	if (ch == '"') {
		const char *p;
		size_t n;
		str(sc, &p, &n);
	} else if (ch == '{' || ch == '[') {
		char close = ch == '{' ? '}' : ']';
		sc->i++;
		for (;;) {
			ws(sc);
			if (!sc->s[sc->i])
				return;
			if (sc->s[sc->i] == close) {
				sc->i++;
				return;
			}
			if (sc->s[sc->i] == ',' || sc->s[sc->i] == ':') {
				sc->i++;
				continue;
			}
			skip(sc);
		}
	} else {
		while (sc->s[sc->i] && !strchr(",:]} \t\r\n", sc->s[sc->i]))
			sc->i++;
	}
}

/* At a value: finds path[0..n) below it; *pos = offset of the last key. */
static int find(Scan *sc, const char *const *path, int n, size_t *pos)
{
	ws(sc);
	if (sc->s[sc->i] != '{')
		return -1;
	sc->i++;
	for (;;) {
		ws(sc);
		char ch = sc->s[sc->i];
		if (!ch || ch == '}')
			return -1;
		if (ch == ',') {
			sc->i++;
			continue;
		}
		if (ch != '"')
			return -1;
		size_t at = sc->i, len;
		const char *k;
		str(sc, &k, &len);
		ws(sc);
		if (sc->s[sc->i] == ':')
			sc->i++;
		if (len == strlen(path[0]) && memcmp(k, path[0], len) == 0) {
			if (n == 1) {
				*pos = at;
				return 0;
			}
			return find(sc, path + 1, n - 1, pos);
		}
		skip(sc);
	}
}

int json_key_pos(const JsonCtx *x, const char *key, int *line, int *col)
{
	const char *path[8];
	int n = 0;
	for (int i = 0; i < x->npath; i++)
		path[n++] = x->path[i];
	path[n++] = key;
	Scan sc = {x->text, 0};
	size_t pos;
	*line = *col = 0;
	if (find(&sc, path, n, &pos))
		return -1;
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < pos; i++) {
		if (x->text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
	return 0;
}

int json_key_error(const JsonCtx *x, const char *key, const char *fmt, ...)
{
	int line, col;
	json_key_pos(x, key, &line, &col);
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	diag_error(x->d, x->file, line, col, "%s", msg);
	return -1;
}

/* "moe.experts" for error messages */
static const char *qual(const JsonCtx *x, const char *key, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; i < x->npath && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s.", x->path[i]);
	if (k < n)
		snprintf(buf + k, n - k, "%s", key);
	return buf;
}

int json_get_int(const JsonCtx *x, const char *key, json_t *v, int64_t min, int64_t *out)
{
	char q[128];
	if (!json_is_integer(v))
		return json_key_error(x, key, "'%s' must be an integer", qual(x, key, q, sizeof q));
	int64_t n = (int64_t)json_integer_value(v);
	if (n < min)
		return json_key_error(x, key, "'%s' must be >= %lld, is %lld", qual(x, key, q, sizeof q),
		                      (long long)min, (long long)n);
	*out = n;
	return 0;
}

int json_get_num(const JsonCtx *x, const char *key, json_t *v, double *out)
{
	char q[128];
	if (!json_is_number(v))
		return json_key_error(x, key, "'%s' must be a number", qual(x, key, q, sizeof q));
	*out = json_number_value(v);
	return 0;
}

int json_get_bool(const JsonCtx *x, const char *key, json_t *v, int *out)
{
	char q[128];
	if (!json_is_boolean(v))
		return json_key_error(x, key, "'%s' must be true or false", qual(x, key, q, sizeof q));
	*out = json_is_true(v);
	return 0;
}

int json_get_str(const JsonCtx *x, const char *key, json_t *v, const char **out)
{
	char q[128];
	if (!json_is_string(v))
		return json_key_error(x, key, "'%s' must be a string", qual(x, key, q, sizeof q));
	*out = json_string_value(v);
	return 0;
}

int json_get_enum(const JsonCtx *x, const char *key, json_t *v, const char *const *names,
                  int n, int *out)
{
	const char *s = NULL;
	if (json_get_str(x, key, v, &s))
		return -1;
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	char choices[256], q[128];
	size_t k = 0;
	choices[0] = 0;
	for (int i = 0; i < n && k < sizeof choices; i++)
		if (names[i])
			k += (size_t)snprintf(choices + k, sizeof choices - k, "%s%s", k ? ", " : "",
			                      names[i]);
	return json_key_error(x, key, "unknown value '%s' for '%s' (expected one of: %s)", s,
	                      qual(x, key, q, sizeof q), choices);
}

json_t *json_parse_text(const char *text, const char *file, Diag *d)
{
	json_error_t e;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &e);
	if (!root) {
		diag_error(d, file, e.line > 0 ? e.line : 1, e.column > 0 ? e.column : 1, "%s", e.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		diag_error(d, file, 1, 1, "a model file must hold a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}
