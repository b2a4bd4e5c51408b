/*
 * Chip descriptions: the JSON loader and the preset directory.
 *
 * One table (fields[]) says every key of a chip file: its kind, where it
 * goes in struct Chip, the dimension of its unit, and what it means. The
 * loader walks the JSON object against that table: every key must be in the
 * table, every table key must be present, each field is an object
 * {"value", "unit", "source", optional "note"}, and the unit must be one the
 * dimension accepts (converted to SI here). jansson gives positions for parse
 * errors only, so for schema errors the loader finds the offending key in the
 * text itself (find_key) and reports its line:column.
 */
#include "chip.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Units ---------------------------------------------------------------*/

typedef enum Dim {
	DIM_TEXT,     /* a string, no unit */
	DIM_COUNT,    /* a pure number */
	DIM_BYTES,
	DIM_BW,       /* bytes per second */
	DIM_HZ,
	DIM_FLOPS,
	DIM_TIME,
	DIM_CYCLES,
	DIM_FRACTION, /* 0..1 */
	DIM_RATIO,
} Dim;

static const struct {
	Dim dim;
	const char *unit;
	double scale; /* to the SI unit (the first listed for each dim) */
} units[] = {
	{DIM_TEXT, "-", 1},
	{DIM_COUNT, "count", 1},
	{DIM_BYTES, "B", 1},
	{DIM_BYTES, "KiB", 1024.0},
	{DIM_BYTES, "MiB", 1024.0 * 1024},
	{DIM_BYTES, "GiB", 1024.0 * 1024 * 1024},
	{DIM_BYTES, "kB", 1e3},
	{DIM_BYTES, "MB", 1e6},
	{DIM_BYTES, "GB", 1e9},
	{DIM_BW, "B/s", 1},
	{DIM_BW, "MB/s", 1e6},
	{DIM_BW, "GB/s", 1e9},
	{DIM_HZ, "Hz", 1},
	{DIM_HZ, "MHz", 1e6},
	{DIM_HZ, "GHz", 1e9},
	{DIM_FLOPS, "FLOP/s", 1},
	{DIM_FLOPS, "TFLOP/s", 1e12},
	{DIM_TIME, "s", 1},
	{DIM_TIME, "ms", 1e-3},
	{DIM_TIME, "us", 1e-6},
	{DIM_TIME, "ns", 1e-9},
	{DIM_CYCLES, "cycles", 1},
	{DIM_FRACTION, "fraction", 1},
	{DIM_RATIO, "ratio", 1},
};

static int unit_scale(Dim dim, const char *u, double *scale)
{
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (units[i].dim == dim && !strcmp(units[i].unit, u)) {
			*scale = units[i].scale;
			return 0;
		}
	return -1;
}

static const char *dim_si(Dim dim)
{
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (units[i].dim == dim)
			return units[i].unit;
	return "?";
}

static void dim_accepts(Dim dim, char *buf, size_t n)
{
	buf[0] = 0;
	size_t used = 0;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (units[i].dim == dim) {
			int k = snprintf(buf + used, n - used, "%s\"%s\"", used ? ", " : "",
			                 units[i].unit);
			if (k < 0 || (size_t)k >= n - used)
				return;
			used += (size_t)k;
		}
}

/* ---- The schema ----------------------------------------------------------*/

typedef enum Kind { K_STR, K_INT, K_REAL, K_INT3, K_CLOCK } Kind;

typedef struct Field {
	const char *key;
	Kind kind;
	Dim dim;
	size_t off;   /* in Chip */
	size_t size;  /* K_STR: buffer size */
	double lo;    /* inclusive lower bound (numbers) */
	const char *doc;
} Field;

#define F(key, kind, dim, lo, doc) \
	{#key, kind, dim, offsetof(Chip, key), sizeof(((Chip *)0)->key), lo, doc}

static const Field fields[] = {
	F(description, K_STR, DIM_TEXT, 0, "one-line description"),
	F(tensorcores, K_INT, DIM_COUNT, 1, "TensorCores per chip"),
	F(mxus_per_core, K_INT, DIM_COUNT, 1, "MXUs per TensorCore"),
	F(mxu_rows, K_INT, DIM_COUNT, 1, "systolic array rows (PEs)"),
	F(mxu_cols, K_INT, DIM_COUNT, 1, "systolic array columns (PEs)"),
	F(clock_hz, K_CLOCK, DIM_HZ, 1,
	  "MXU clock; the string \"from_peak\" when no clock is published"),
	F(peak_flops_published, K_REAL, DIM_FLOPS, 1,
	  "published bf16 peak, for comparison only (peak_flops is derived)"),
	F(vpu_sublanes, K_INT, DIM_COUNT, 1, "VPU sublanes per vreg"),
	F(vpu_lanes, K_INT, DIM_COUNT, 1, "VPU lanes per vreg"),
	F(vpu_alus, K_INT, DIM_COUNT, 1, "VPU ALUs per lane-sublane"),
	F(vpu_transc_cost, K_REAL, DIM_RATIO, 1,
	  "VPU issue slots per transcendental element (calibrated)"),
	F(vpu_xlane_cycles, K_REAL, DIM_CYCLES, 0,
	  "cycles per vreg of a cross-lane reduction or transpose (calibrated)"),
	F(hbm_bytes, K_REAL, DIM_BYTES, 1, "HBM capacity"),
	F(hbm_bw, K_REAL, DIM_BW, 1, "HBM bandwidth"),
	F(hbm_efficiency, K_REAL, DIM_FRACTION, 0.01,
	  "achievable fraction of hbm_bw when streaming (calibrated)"),
	F(vmem_bytes, K_REAL, DIM_BYTES, 1, "VMEM capacity per TensorCore"),
	F(vmem_bw_ratio, K_REAL, DIM_RATIO, 1, "VMEM bandwidth over HBM bandwidth"),
	F(cmem_bytes, K_REAL, DIM_BYTES, 0, "CMEM capacity (0: none)"),
	F(dma_engines, K_INT, DIM_COUNT, 1, "concurrent DMA engines sharing HBM bandwidth"),
	F(dma_latency, K_REAL, DIM_TIME, 0, "fixed start-up time of one DMA"),
	F(op_issue_cycles, K_REAL, DIM_CYCLES, 0, "fixed issue overhead per op (calibrated)"),
	F(ici_ndims, K_INT, DIM_COUNT, 2, "ICI torus/mesh dimensions (2 or 3)"),
	F(ici_links, K_INT, DIM_COUNT, 1, "ICI links per chip"),
	F(ici_link_bw, K_REAL, DIM_BW, 1, "ICI bandwidth per link per direction"),
	F(ici_hop_latency, K_REAL, DIM_TIME, 0, "ICI latency per hop"),
	F(ici_wrap_multiple, K_INT, DIM_COUNT, 0,
	  "an axis wraps iff its length is a multiple of this ..."),
	F(ici_wrap_min, K_INT, DIM_COUNT, 0, "... and at least this (0: never wraps)"),
	F(max_slice, K_INT3, DIM_COUNT, 1, "largest slice shape [x, y, z] (z = 1 in 2D)"),
	F(chips_per_host, K_INT, DIM_COUNT, 1, "chips per host"),
	F(dcn_bw_per_chip, K_REAL, DIM_BW, 0, "DCN bandwidth per chip per direction"),
	F(dcn_latency, K_REAL, DIM_TIME, 0, "DCN latency"),
	F(twisted_ok, K_INT, DIM_COUNT, 0, "1 if twisted tori are possible"),
};
#undef F
enum { NFIELDS = sizeof fields / sizeof fields[0] };

int chip_field_count(void) { return NFIELDS + 1; }

const char *chip_field_key(int i)
{
	return i == 0 ? "name" : fields[i - 1].key;
}

const char *chip_field_unit(int i)
{
	return i == 0 ? "-" : dim_si(fields[i - 1].dim);
}

const char *chip_field_doc(int i)
{
	return i == 0 ? "preset name (a plain string)" : fields[i - 1].doc;
}

json_t *chip_to_json(const Chip *c)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(c->name));
	for (int i = 0; i < NFIELDS; i++) {
		const Field *f = &fields[i];
		const char *base = (const char *)c + f->off;
		switch (f->kind) {
		case K_STR:
			json_object_set_new(o, f->key, json_string(base));
			break;
		case K_INT:
			json_object_set_new(o, f->key, json_integer(*(const int *)base));
			break;
		case K_INT3: {
			json_t *a = json_array();
			for (int k = 0; k < c->ici_ndims && k < 3; k++)
				json_array_append_new(a, json_integer(((const int *)base)[k]));
			json_object_set_new(o, f->key, a);
			break;
		}
		case K_REAL:
		case K_CLOCK:
			json_object_set_new(o, f->key, json_real(*(const double *)base));
			break;
		}
	}
	json_object_set_new(o, "peak_flops", json_real(c->peak_flops));
	json_object_set_new(o, "clock_from_peak", json_boolean(c->clock_from_peak));
	json_object_set_new(o, "path", json_string(c->path));
	return o;
}

/* ---- Key positions ---------------------------------------------------------
 * Finds "key" used as an object key at nesting depth npath whose enclosing
 * keys are path[0..npath-2] (depth 1 = the top-level object). Returns 0 and
 * the 1-based line and column of its opening quote, or -1. */
static int find_key(const char *text, const char *const *path, int npath,
                    int *line, int *col)
{
	enum { MAXD = 16 };
	const char *cur[MAXD] = {0};
	size_t curlen[MAXD] = {0};
	int depth = 0, ln = 1, cl = 1;
	for (const char *p = text; *p;) {
		char ch = *p;
		if (ch == '"') {
			const char *s = p + 1;
			int sl = ln, sc = cl;
			p++, cl++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++, cl++;
				if (*p == '\n')
					ln++, cl = 0;
				p++, cl++;
			}
			size_t n = (size_t)(p - s);
			if (*p)
				p++, cl++;
			const char *q = p;
			while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
				q++;
			if (*q == ':' && depth >= 1 && depth < MAXD) {
				cur[depth] = s;
				curlen[depth] = n;
				if (depth == npath) {
					int ok = 1;
					for (int k = 0; k < npath && ok; k++)
						ok = curlen[k + 1] == strlen(path[k]) &&
						     !memcmp(cur[k + 1], path[k], curlen[k + 1]);
					if (ok) {
						*line = sl, *col = sc;
						return 0;
					}
				}
			}
			continue;
		}
		if (ch == '{' || ch == '[')
			depth++;
		else if (ch == '}' || ch == ']')
			depth--;
		if (ch == '\n')
			ln++, cl = 1;
		else
			cl++;
		p++;
	}
	return -1;
}

/* ---- Loader ----------------------------------------------------------------*/

typedef struct Loader {
	const char *file;
	const char *text;
	Diag *d;
} Loader;

static void errat(Loader *L, const char *k1, const char *k2, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void errat(Loader *L, const char *k1, const char *k2, const char *fmt, ...)
{
	const char *path[2] = {k1, k2};
	int line = 0, col = 0;
	if (k1 && find_key(L->text, path, k2 ? 2 : 1, &line, &col) != 0)
		line = col = 0;
	if (!k1)
		line = col = 1;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	diag_error(L->d, L->file, line, col, "%s", msg);
}

static const char *json_kind_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static int load_field(Loader *L, const Field *f, json_t *obj, Chip *c)
{
	if (!json_is_object(obj)) {
		errat(L, f->key, NULL,
		      "field '%s' must be an object {\"value\", \"unit\", \"source\"}, not %s",
		      f->key, json_kind_name(obj));
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (strcmp(k, "value") && strcmp(k, "unit") && strcmp(k, "source") &&
		    strcmp(k, "note")) {
			errat(L, f->key, k, "unknown key '%s' in field '%s' (expected value, "
			      "unit, source, note)", k, f->key);
			return -1;
		}
		if (strcmp(k, "value") && !json_is_string(v)) {
			errat(L, f->key, k, "'%s' of field '%s' must be a string, not %s",
			      k, f->key, json_kind_name(v));
			return -1;
		}
	}
	static const char *const req[] = {"value", "unit", "source"};
	for (int i = 0; i < 3; i++)
		if (!json_object_get(obj, req[i])) {
			errat(L, f->key, NULL, "field '%s' has no \"%s\"", f->key, req[i]);
			return -1;
		}
	const char *unit = json_string_value(json_object_get(obj, "unit"));
	double scale = 1;
	if (unit_scale(f->dim, unit, &scale) != 0) {
		char acc[256];
		dim_accepts(f->dim, acc, sizeof acc);
		errat(L, f->key, "unit", "unit \"%s\" is not valid for '%s' (expected %s)",
		      unit, f->key, acc);
		return -1;
	}
	json_t *val = json_object_get(obj, "value");
	char *base = (char *)c + f->off;
	switch (f->kind) {
	case K_STR: {
		if (!json_is_string(val)) {
			errat(L, f->key, "value", "'%s' must be a string, not %s", f->key,
			      json_kind_name(val));
			return -1;
		}
		const char *s = json_string_value(val);
		if (strlen(s) >= f->size) {
			errat(L, f->key, "value", "'%s' is longer than %zu characters", f->key,
			      f->size - 1);
			return -1;
		}
		memcpy(base, s, strlen(s) + 1);
		return 0;
	}
	case K_INT: {
		if (!json_is_integer(val)) {
			errat(L, f->key, "value", "'%s' must be an integer, not %s", f->key,
			      json_kind_name(val));
			return -1;
		}
		json_int_t x = json_integer_value(val);
		if (x < (json_int_t)f->lo || x > INT_MAX) {
			errat(L, f->key, "value", "'%s' = %lld is out of range (at least %g)",
			      f->key, (long long)x, f->lo);
			return -1;
		}
		*(int *)base = (int)x;
		return 0;
	}
	case K_INT3: {
		size_t n = json_is_array(val) ? json_array_size(val) : 0;
		if (!json_is_array(val) || n < 2 || n > 3) {
			errat(L, f->key, "value", "'%s' must be an array of 2 or 3 integers",
			      f->key);
			return -1;
		}
		int *xs = (int *)base;
		xs[0] = xs[1] = xs[2] = 1;
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(val, i);
			if (!json_is_integer(e) || json_integer_value(e) < 1 ||
			    json_integer_value(e) > INT_MAX) {
				errat(L, f->key, "value", "'%s' must be an array of positive "
				      "integers", f->key);
				return -1;
			}
			xs[i] = (int)json_integer_value(e);
		}
		return 0;
	}
	case K_CLOCK:
		if (json_is_string(val) && !strcmp(json_string_value(val), "from_peak")) {
			c->clock_from_peak = 1;
			c->clock_hz = 0;
			return 0;
		}
		/* fall through */
	case K_REAL: {
		if (!json_is_number(val)) {
			errat(L, f->key, "value", "'%s' must be a number%s, not %s", f->key,
			      f->kind == K_CLOCK ? " or \"from_peak\"" : "",
			      json_kind_name(val));
			return -1;
		}
		double x = json_number_value(val) * scale;
		if (!isfinite(x) || x < f->lo) {
			errat(L, f->key, "value", "'%s' = %g %s is out of range (at least %g %s)",
			      f->key, json_number_value(val), unit, f->lo, dim_si(f->dim));
			return -1;
		}
		if (f->dim == DIM_FRACTION && x > 1) {
			errat(L, f->key, "value", "'%s' is a fraction and must be at most 1",
			      f->key);
			return -1;
		}
		*(double *)base = x;
		return 0;
	}
	}
	return -1;
}

/* Cross-field checks and derived values. */
static int finish(Loader *L, Chip *c)
{
	if (c->ici_ndims != 2 && c->ici_ndims != 3) {
		errat(L, "ici_ndims", "value", "'ici_ndims' must be 2 or 3");
		return -1;
	}
	if (c->ici_ndims == 2 && c->max_slice[2] != 1) {
		errat(L, "max_slice", "value", "a 2D chip's 'max_slice' has z = 1");
		return -1;
	}
	if ((c->ici_wrap_min == 0) != (c->ici_wrap_multiple == 0)) {
		errat(L, "ici_wrap_min", "value",
		      "'ici_wrap_min' and 'ici_wrap_multiple' are both 0 (never wraps) or "
		      "both positive");
		return -1;
	}
	if (c->twisted_ok > 1) {
		errat(L, "twisted_ok", "value", "'twisted_ok' is 0 or 1");
		return -1;
	}
	double macs = (double)c->tensorcores * c->mxus_per_core * c->mxu_rows * c->mxu_cols;
	if (c->clock_from_peak)
		c->clock_hz = c->peak_flops_published / (2 * macs);
	c->peak_flops = 2 * macs * c->clock_hz;
	return 0;
}

static int load_json(Loader *L, json_t *root, Chip *c)
{
	if (!json_is_object(root)) {
		diag_error(L->d, L->file, 1, 1, "a chip file is a JSON object, not %s",
		           json_kind_name(root));
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach(root, k, v) {
		if (!strcmp(k, "name"))
			continue;
		int found = 0;
		for (int i = 0; i < NFIELDS; i++)
			found |= !strcmp(fields[i].key, k);
		if (!found) {
			errat(L, k, NULL, "unknown field '%s'", k);
			return -1;
		}
	}
	json_t *name = json_object_get(root, "name");
	if (!name) {
		errat(L, NULL, NULL, "missing field 'name'");
		return -1;
	}
	if (!json_is_string(name) || json_string_length(name) == 0 ||
	    json_string_length(name) >= sizeof c->name) {
		errat(L, "name", NULL, "'name' must be a non-empty string of at most %zu "
		      "characters", sizeof c->name - 1);
		return -1;
	}
	snprintf(c->name, sizeof c->name, "%s", json_string_value(name));
	for (int i = 0; i < NFIELDS; i++) {
		json_t *f = json_object_get(root, fields[i].key);
		if (!f) {
			errat(L, NULL, NULL, "missing field '%s'", fields[i].key);
			return -1;
		}
		if (load_field(L, &fields[i], f, c) != 0)
			return -1;
	}
	return finish(L, c);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 14, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (n + 1 < cap)
			break;
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb, cap *= 2;
	}
	fclose(f);
	if (buf)
		buf[n] = 0;
	return buf;
}

static int load_path(const char *path, Chip *c, Diag *d)
{
	memset(c, 0, sizeof *c);
	char *text = slurp(path);
	if (!text) {
		diag_error(d, path, 0, 0, "cannot read chip file: %s", strerror(errno));
		return -1;
	}
	json_error_t je;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		diag_error(d, path, je.line > 0 ? je.line : 1, je.column > 0 ? je.column : 1,
		           "%s", je.text);
		free(text);
		return -1;
	}
	Loader L = {path, text, d};
	int rc = load_json(&L, root, c);
	json_decref(root);
	free(text);
	if (rc == 0)
		snprintf(c->path, sizeof c->path, "%s", path);
	return rc;
}

/* ---- Presets -----------------------------------------------------------------*/

static int is_dir(const char *p)
{
	DIR *dd = opendir(p);
	if (!dd)
		return 0;
	closedir(dd);
	return 1;
}

static char presets_dir[PATH_MAX];
static int presets_found = -1; /* -1: not searched yet */
static char preset_names[64][32];
static int npresets;

static int cmp_names(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* Runs once per process (pthread_once: chip_load may be called from
 * parallel sweeps). */
static void scan_presets_once(void)
{
	presets_found = 0;
	const char *env = getenv("PODSIM_CHIPS_DIR");
	char buf[PATH_MAX];
	if (env && *env && is_dir(env)) {
		snprintf(presets_dir, sizeof presets_dir, "%s", env);
		presets_found = 1;
	}
#ifdef PODSIM_SRC_DIR
	if (!presets_found) {
		snprintf(buf, sizeof buf, "%s/sim/chips", PODSIM_SRC_DIR);
		if (is_dir(buf)) {
			snprintf(presets_dir, sizeof presets_dir, "%s", buf);
			presets_found = 1;
		}
	}
#endif
	if (!presets_found) {
		/* Also honour PODSIM_SRC (set by ctest for every test). */
		const char *src = getenv("PODSIM_SRC");
		if (src && *src) {
			snprintf(buf, sizeof buf, "%s/sim/chips", src);
			if (is_dir(buf)) {
				snprintf(presets_dir, sizeof presets_dir, "%s", buf);
				presets_found = 1;
			}
		}
	}
	if (!presets_found) {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		if (n > 0) {
			exe[n] = 0;
			/* Walk up from the executable's directory: build dirs live in or
			 * beside the source tree (build/, build-x/testsuite/...). */
			for (int up = 0; up < 4 && !presets_found; up++) {
				char *slash = strrchr(exe, '/');
				if (!slash || slash == exe)
					break;
				*slash = 0;
				const char *rel[] = {"/sim/chips", "/../sim/chips"};
				for (int r = 0; r < 2 && !presets_found; r++) {
					int k = snprintf(buf, sizeof buf, "%s%s", exe, rel[r]);
					if (k > 0 && (size_t)k < sizeof buf && is_dir(buf)) {
						snprintf(presets_dir, sizeof presets_dir, "%s", buf);
						presets_found = 1;
					}
				}
			}
		}
	}
	if (!presets_found)
		return;
	DIR *dd = opendir(presets_dir);
	if (!dd)
		return;
	struct dirent *e;
	while ((e = readdir(dd)) && npresets < 64) {
		size_t n = strlen(e->d_name);
		if (n <= 5 || n - 5 >= sizeof preset_names[0] ||
		    strcmp(e->d_name + n - 5, ".json"))
			continue;
		memcpy(preset_names[npresets], e->d_name, n - 5);
		preset_names[npresets][n - 5] = 0;
		npresets++;
	}
	closedir(dd);
	qsort(preset_names, (size_t)npresets, sizeof preset_names[0], cmp_names);
}

static void scan_presets(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, scan_presets_once);
}

int chip_preset_count(void)
{
	scan_presets();
	return npresets;
}

const char *chip_preset_name(int i)
{
	scan_presets();
	return i >= 0 && i < npresets ? preset_names[i] : NULL;
}

const char *chip_presets_dir(void)
{
	scan_presets();
	return presets_found ? presets_dir : NULL;
}

int chip_load(const char *name_or_path, Chip *c, Diag *d)
{
	size_t n = strlen(name_or_path);
	if (strchr(name_or_path, '/') || (n > 5 && !strcmp(name_or_path + n - 5, ".json")))
		return load_path(name_or_path, c, d);
	scan_presets();
	for (int i = 0; i < npresets; i++)
		if (!strcmp(preset_names[i], name_or_path)) {
			char path[PATH_MAX + 64];
			snprintf(path, sizeof path, "%s/%s.json", presets_dir, name_or_path);
			return load_path(path, c, d);
		}
	char list[512] = "";
	size_t used = 0;
	for (int i = 0; i < npresets; i++) {
		int k = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
		                 preset_names[i]);
		if (k < 0 || (size_t)k >= sizeof list - used)
			break;
		used += (size_t)k;
	}
	if (!presets_found)
		diag_error(d, "--chip", 0, 0, "unknown chip '%s': no chip presets directory "
		           "found (set PODSIM_CHIPS_DIR)", name_or_path);
	else
		diag_error(d, "--chip", 0, 0, "unknown chip '%s' (presets: %s)", name_or_path,
		           list);
	return -1;
}

int chip_axis_wraps(const Chip *c, int n)
{
	return c->ici_wrap_min > 0 && n >= c->ici_wrap_min && c->ici_wrap_multiple > 0 &&
	       n % c->ici_wrap_multiple == 0;
}
