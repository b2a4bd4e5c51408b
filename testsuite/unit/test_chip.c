/*
 * Chip descriptions: every preset loads; the derived peak (2 x TensorCores x
 * MXUs x rows x cols x clock) reconciles with the published peak where a clock
 * is published; the loader rejects unknown, missing and mistyped fields and
 * bad units with the line and column of the offending key; wraparound rules.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testchip.h"
#include "sim/chip.h"

START_TEST(all_presets_load)
{
	static const char *want[] = {"tpu-v2", "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p",
	                             "tpu-v6e", "tpu-7x"};
	int n = chip_preset_count();
	ck_assert_int_ge(n, 7);
	for (int w = 0; w < 7; w++) {
		int found = 0;
		for (int i = 0; i < n; i++)
			found |= !strcmp(chip_preset_name(i), want[w]);
		ck_assert_msg(found, "preset %s missing", want[w]);
		Chip c = test_chip(want[w]);
		ck_assert_str_eq(c.name, want[w]);
		ck_assert(c.ici_ndims == 2 || c.ici_ndims == 3);
		ck_assert(c.hbm_bytes > 1e9 && c.hbm_bw > 1e11);
		ck_assert(c.hbm_efficiency > 0 && c.hbm_efficiency <= 1);
	}
}
END_TEST

/* v2..v5p publish a clock: the peak computed from it lands within 1% of the
 * published peak (v3: GC's 123 TFLOP/s). */
START_TEST(derived_peak_reconciles)
{
	static const char *names[] = {"tpu-v2", "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p"};
	for (int i = 0; i < 5; i++) {
		Chip c = test_chip(names[i]);
		ck_assert(!c.clock_from_peak);
		double macs = (double)c.tensorcores * c.mxus_per_core * c.mxu_rows * c.mxu_cols;
		ck_assert(fabs(c.peak_flops - 2 * macs * c.clock_hz) < 1);
		ck_assert_msg(fabs(c.peak_flops / c.peak_flops_published - 1) < 0.01,
		              "%s: derived %g, published %g", names[i], c.peak_flops,
		              c.peak_flops_published);
	}
	/* hand check: v4 = 2 TC x 4 MXU x 128 x 128 x 2 x 1.05 GHz */
	Chip v4 = test_chip("tpu-v4");
	ck_assert(fabs(v4.peak_flops - 2.0 * 2 * 4 * 128 * 128 * 1.05e9) < 1);
}
END_TEST

/* v6e and 7x publish no clock: it is derived from the peak, and flagged. */
START_TEST(clock_from_peak_is_flagged)
{
	Chip c = test_chip("tpu-v6e");
	ck_assert(c.clock_from_peak);
	ck_assert_int_eq(c.mxu_rows, 256);
	ck_assert(fabs(c.peak_flops - c.peak_flops_published) < 1e3);
	ck_assert(c.clock_hz > 3.4e9 && c.clock_hz < 3.6e9); /* 918e12 / (2*2*65536) */
	Chip x = test_chip("tpu-7x");
	ck_assert(x.clock_from_peak);
	ck_assert(x.clock_hz > 4.3e9 && x.clock_hz < 4.5e9);
}
END_TEST

START_TEST(units_are_converted)
{
	Chip c = test_chip("tpu-v4");
	ck_assert(fabs(c.clock_hz - 1.05e9) < 1);
	ck_assert(fabs(c.vmem_bytes - 16.0 * 1024 * 1024) < 1);
	ck_assert(fabs(c.hbm_bytes - 32.0 * 1024 * 1024 * 1024) < 1);
	ck_assert(fabs(c.ici_hop_latency - 1e-6) < 1e-12);
}
END_TEST

START_TEST(wraparound_rules)
{
	Chip v4 = test_chip("tpu-v4");
	ck_assert(chip_axis_wraps(&v4, 4));
	ck_assert(chip_axis_wraps(&v4, 8));
	ck_assert(!chip_axis_wraps(&v4, 2));
	ck_assert(!chip_axis_wraps(&v4, 6));
	Chip e = test_chip("tpu-v5e");
	ck_assert(chip_axis_wraps(&e, 16));
	ck_assert(!chip_axis_wraps(&e, 8));
	ck_assert(!chip_axis_wraps(&e, 4));
}
END_TEST

/* ---- loader errors, on a copy of tpu-v4.json edited in memory ---- */

static char *read_preset(void)
{
	Chip c = test_chip("tpu-v4");
	FILE *f = fopen(c.path, "rb");
	ck_assert(f != NULL);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return strdup(buf);
}

/* Replaces the first occurrence of from with to; returns a new string. */
static char *edit(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	ck_assert_msg(p != NULL, "'%s' not in the preset", from);
	size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);
	memcpy(out, s, (size_t)(p - s));
	strcpy(out + (p - s), to);
	strcat(out, p + strlen(from));
	return out;
}

/* Line and column (1-based) of the first occurrence of what in s. */
static void position(const char *s, const char *what, int *line, int *col)
{
	const char *p = strstr(s, what);
	ck_assert(p != NULL);
	*line = 1, *col = 1;
	for (const char *q = s; q < p; q++) {
		if (*q == '\n')
			(*line)++, *col = 1;
		else
			(*col)++;
	}
}

/* Loads text from a temporary file; expects failure with a message naming
 * the file, the line:col given, and containing needle. */
static void expect_error(const char *text, int line, int col, const char *needle)
{
	char path[] = "/tmp/podsim_chip_XXXXXX";
	int fd = mkstemp(path);
	ck_assert(fd >= 0);
	ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	Chip c;
	Diag d;
	diag_init(&d);
	int rc = chip_load(path, &c, &d);
	unlink(path);
	ck_assert_msg(rc != 0, "loaded a bad file");
	char want[600];
	if (col > 0)
		snprintf(want, sizeof want, "%s:%d:%d: error: ", path, line, col);
	else /* column not checked */
		snprintf(want, sizeof want, "%s:%d:", path, line);
	ck_assert_msg(!strncmp(d.msg, want, strlen(want)), "got '%s', want prefix '%s'", d.msg,
	              want);
	ck_assert_msg(strstr(d.msg, needle) != NULL, "'%s' lacks '%s'", d.msg, needle);
}

START_TEST(unknown_field)
{
	char *s = read_preset();
	char *bad = edit(s, "\"mxu_rows\":", "\"mxu_rowz\":");
	int line, col;
	position(bad, "\"mxu_rowz\"", &line, &col);
	expect_error(bad, line, col, "unknown field 'mxu_rowz'");
	free(bad);
	/* an unknown key inside a field object */
	bad = edit(s, "\"clock_hz\": {\"value\"", "\"clock_hz\": {\"valeu\"");
	position(bad, "\"valeu\"", &line, &col);
	expect_error(bad, line, col, "unknown key 'valeu'");
	free(bad);
	free(s);
}
END_TEST

/* Strings that look like JSON structure or like keys do not confuse the
 * position search: only a key (a string followed by ':') at the right depth
 * matches. */
START_TEST(position_ignores_strings)
{
	char *s = read_preset();
	char *a = edit(s, "\"source\": \"SB\"}",
	               "\"source\": \"{[ \\\"mxu_rowz\\\": ]} mxu_rowz\"}");
	char *bad = edit(a, "\"vpu_alus\":", "\"mxu_rowz\":");
	int line, col;
	position(bad, "\t\"mxu_rowz\":", &line, &col);
	expect_error(bad, line, col + 1, "unknown field 'mxu_rowz'");
	free(bad);
	free(a);
	free(s);
}
END_TEST

START_TEST(missing_field)
{
	char *s = read_preset();
	/* drop the ici_links line */
	char *p = strstr(s, "\t\"ici_links\"");
	ck_assert(p != NULL);
	char *eol = strchr(p, '\n');
	memmove(p, eol + 1, strlen(eol + 1) + 1);
	expect_error(s, 1, 1, "missing field 'ici_links'");
	free(s);
}
END_TEST

/* Every field sits on one line of the preset, so a key inside it is on the
 * field's line, at the field's column plus its offset in the field text. */
static void inner_position(const char *text, const char *field, const char *key, int *line,
                           int *col)
{
	int fl, fc, kl, kc;
	position(text, field, &fl, &fc);
	position(strstr(text, field), key, &kl, &kc);
	ck_assert_int_eq(kl, 1);
	*line = fl;
	*col = fc + kc - 1;
}

START_TEST(wrong_type)
{
	char *s = read_preset();
	int line, col;
	char *bad = edit(s, "\"tensorcores\": {\"value\": 2", "\"tensorcores\": {\"value\": \"2\"");
	inner_position(bad, "\"tensorcores\"", "\"value\"", &line, &col);
	expect_error(bad, line, col, "'tensorcores' must be an integer, not a string");
	free(bad);
	/* a real where an integer is needed */
	bad = edit(s, "\"tensorcores\": {\"value\": 2", "\"tensorcores\": {\"value\": 2.5");
	inner_position(bad, "\"tensorcores\"", "\"value\"", &line, &col);
	expect_error(bad, line, col, "must be an integer, not a real number");
	free(bad);
	/* a field that is not an object */
	bad = edit(s, "\"mxu_cols\": {\"value\": 128, \"unit\": \"count\", \"source\": \"SB\"}",
	           "\"mxu_cols\": 128");
	position(bad, "\"mxu_cols\"", &line, &col);
	expect_error(bad, line, col, "field 'mxu_cols' must be an object");
	free(bad);
	free(s);
}
END_TEST

START_TEST(bad_unit)
{
	char *s = read_preset();
	char *bad = edit(s, "\"unit\": \"MHz\"", "\"unit\": \"GB/s\"");
	int line, col;
	inner_position(bad, "\"clock_hz\"", "\"unit\"", &line, &col);
	expect_error(bad, line, col, "unit \"GB/s\" is not valid for 'clock_hz'");
	free(bad);
	free(s);
}
END_TEST

START_TEST(parse_error_position)
{
	/* a missing comma at the end of line 2: the parser stops on line 3 */
	expect_error("{\n\t\"name\": \"x\"\n\t\"description\": 1\n}\n", 3, 0, "");
}
END_TEST

START_TEST(unknown_preset)
{
	Chip c;
	Diag d;
	diag_init(&d);
	ck_assert(chip_load("tpu-v99", &c, &d) != 0);
	ck_assert(strstr(d.msg, "unknown chip 'tpu-v99'") != NULL);
	ck_assert(strstr(d.msg, "tpu-v4") != NULL); /* lists the presets */
	diag_init(&d);
	ck_assert(chip_load("/nonexistent/chip.json", &c, &d) != 0);
	ck_assert(strstr(d.msg, "/nonexistent/chip.json") != NULL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("chip");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, all_presets_load);
	tcase_add_test(tc, derived_peak_reconciles);
	tcase_add_test(tc, clock_from_peak_is_flagged);
	tcase_add_test(tc, units_are_converted);
	tcase_add_test(tc, wraparound_rules);
	tcase_add_test(tc, unknown_field);
	tcase_add_test(tc, missing_field);
	tcase_add_test(tc, position_ignores_strings);
	tcase_add_test(tc, wrong_type);
	tcase_add_test(tc, bad_unit);
	tcase_add_test(tc, parse_error_position);
	tcase_add_test(tc, unknown_preset);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
