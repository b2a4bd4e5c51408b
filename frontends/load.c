/*
 * model_load: a preset name, or a JSON file that is either ours or a Hugging
 * Face config.json (it has a "model_type" key). A directory stands for the
 * config.json inside it, as in a Hugging Face checkpoint.
 */
#include "config_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *read_file(const char *path, Diag *d)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		diag_error(d, path, 0, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			ir_die("out of memory");
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
	}
	int err = ferror(f);
	fclose(f);
	buf[n] = 0;
	if (err) {
		diag_error(d, path, 0, 0, "read error");
		free(buf);
		return NULL;
	}
	if (strlen(buf) != n) {
		diag_error(d, path, 0, 0, "file contains a NUL byte; not a JSON model file");
		free(buf);
		return NULL;
	}
	return buf;
}

int model_load(const char *name_or_path, ModelConfig *c, Diag *d)
{
	if (model_preset(name_or_path, c) == 0)
		return 0;
	FILE *probe = fopen(name_or_path, "rb");
	if (!probe) {
		if (!strchr(name_or_path, '/') && !strstr(name_or_path, ".json")) {
			diag_error(d, NULL, 0, 0,
			           "unknown model '%s': not a preset (see 'podsim list models') "
			           "and not a file", name_or_path);
			return -1;
		}
	} else {
		fclose(probe);
	}
	struct stat st;
	char *path = NULL;
	const char *file = name_or_path;
	if (stat(name_or_path, &st) == 0 && S_ISDIR(st.st_mode)) {
		size_t n = strlen(name_or_path) + sizeof "/config.json";
		path = malloc(n);
		if (!path)
			ir_die("out of memory");
		snprintf(path, n, "%s/config.json", name_or_path);
		file = path;
	}
	char *text = read_file(file, d);
	int r = -1;
	if (text) {
		json_t *root = json_parse_text(text, file, d);
		if (root) {
			int hf = json_object_get(root, "model_type") != NULL;
			json_decref(root);
			r = hf ? model_parse_hf(text, file, c, d) : model_parse_json(text, file, c, d);
		}
	}
	free(text);
	free(path);
	return r;
}
