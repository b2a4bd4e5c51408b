/*
 * podsim collective: the time of one collective on a slice or a multi-slice
 * pod, with algorithm and bus bandwidth in the nccl-tests convention, so it
 * can be held against measured numbers. All the modelling is in sim/net.h;
 * this file parses flags and prints (text or --json).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sim/chip.h"
#include "sim/net.h"

static const char *const usage_text =
	"usage: podsim collective --chip C --slice AxB[xC] [--slices N] [--twisted]\n"
	"                         --op OP --axes x,y[,z][,dcn] --bytes SIZE\n"
	"                         [--algo auto|sequential|split] [--shift K] [--json]\n"
	"       podsim collective ... --ici AXIS=N,... [--dcn AXIS=N,...]\n"
	"                         [--place AXIS=xyz,...] --over AXIS[,AXIS] ...\n"
	"\n"
	"Time one collective over the given physical axes of a slice (and over the\n"
	"slices through DCN with 'dcn' in --axes), or over named mesh axes laid on\n"
	"the slice (--ici/--dcn/--place, the collective over the axes of --over).\n"
	"  --chip C      chip preset (podsim list chips) or a chip JSON file\n"
	"  --slice S     slice shape, e.g. 16x16 or 4x4x8\n"
	"  --slices N    slices joined by DCN (default 1)\n"
	"  --twisted     twisted torus (k x k x 2k or k x 2k x 2k, chips that allow it)\n"
	"  --op OP       all-reduce | all-gather | reduce-scatter | all-to-all |\n"
	"                collective-permute\n"
	"  --axes A      comma-separated: x, y, z, dcn\n"
	"  --ici, --dcn  a mesh: named axes and their sizes inside a slice and\n"
	"                across slices (e.g. --ici fsdp=64,tensor=4 --dcn data=2)\n"
	"  --place P     where mesh axes lie (e.g. tensor=x,fsdp=yz); the rest, or\n"
	"                all without --place, by the default placement\n"
	"  --over A      the mesh axes the collective runs over (e.g. fsdp,data)\n"
	"  --bytes SIZE  bytes, with an optional suffix KiB MiB GiB TiB (1024s) or\n"
	"                KB MB GB TB (1000s); nccl-tests sizes: all-reduce, all-to-all,\n"
	"                permute: the buffer per chip; all-gather: the output;\n"
	"                reduce-scatter: the input\n"
	"  --algo A      several ICI axes: 'sequential' (one axis after another),\n"
	"                'split' (the buffer split across axes, all at once) or\n"
	"                'auto' (the faster; default)\n"
	"  --shift K     collective-permute: ranks to move along the group (default 1)\n"
	"  --json        one JSON object instead of text\n";

/* Parses SIZE into bytes; -1 if malformed. */
static int parse_size(const char *s, double *out)
{
	static const struct {
		const char *suf;
		double mul;
	} sufs[] = {
		{"", 1},         {"B", 1},       {"KiB", 1024.0},          {"MiB", 1048576.0},
		{"GiB", 1073741824.0}, {"TiB", 1099511627776.0}, {"KB", 1e3}, {"MB", 1e6},
		{"GB", 1e9},     {"TB", 1e12},   {"K", 1024.0},            {"M", 1048576.0},
		{"G", 1073741824.0},
	};
	if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -1;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || !isfinite(v) || v < 0)
		return -1;
	for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++)
		if (!strcmp(end, sufs[i].suf)) {
			*out = v * sufs[i].mul;
			return 0;
		}
	return -1;
}

static void human_bytes(double b, char *buf, size_t n)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(buf, n, "%.4g %s", b, u[i]);
}

static void human_time(double t, char *buf, size_t n)
{
	if (t >= 1)
		snprintf(buf, n, "%.4g s", t);
	else if (t >= 1e-3)
		snprintf(buf, n, "%.4g ms", t * 1e3);
	else
		snprintf(buf, n, "%.4g us", t * 1e6);
}

/* Parses "--ici a=N,b=M" / "--dcn ..." into m (names copied into names[]).
 * Returns 0, or a usage error's status. */
static int parse_mesh_sizes(const char *flag, const char *spec, int is_dcn, Mesh *m,
                            char names[][32])
{
	for (const char *q = spec; *q;) {
		size_t n = strcspn(q, ",");
		const char *eq = memchr(q, '=', n);
		char *end;
		long v = eq ? strtol(eq + 1, &end, 10) : 0;
		if (!eq || eq == q || (size_t)(eq - q) >= 32 || end != q + n || v < 1 || v > 1 << 20)
			return usage_error("collective", "%s: '%.*s' is not AXIS=N with N >= 1", flag,
			                   (int)n, q);
		int k = mesh_axis_index(m, q, (size_t)(eq - q));
		if (k < 0) {
			if (m->naxes == IR_MAX_MESH_AXES)
				return usage_error("collective", "%s: more than %d mesh axes", flag,
				                   IR_MAX_MESH_AXES);
			k = m->naxes++;
			memcpy(names[k], q, (size_t)(eq - q));
			names[k][eq - q] = 0;
			m->axes[k] = (MeshAxis){names[k], 1, 1};
		}
		if (is_dcn)
			m->axes[k].dcn = (int)v;
		else
			m->axes[k].ici = (int)v;
		q += n;
		if (*q == ',')
			q++;
	}
	return 0;
}

int cmd_collective(int argc, char **argv)
{
	const char *chip = NULL, *slice = NULL, *op = NULL, *axes = NULL, *bytes_s = NULL;
	const char *algo_s = "auto", *ici_s = NULL, *dcn_s = NULL, *place_s = NULL, *over_s = NULL;
	int nslices = 1, twisted = 0, json = 0, shift = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		}
		if (!strcmp(a, "--json")) {
			json = 1;
			continue;
		}
		if (!strcmp(a, "--twisted")) {
			twisted = 1;
			continue;
		}
		const char **slot = !strcmp(a, "--chip")    ? &chip
		                    : !strcmp(a, "--slice") ? &slice
		                    : !strcmp(a, "--op")    ? &op
		                    : !strcmp(a, "--axes")  ? &axes
		                    : !strcmp(a, "--bytes") ? &bytes_s
		                    : !strcmp(a, "--algo")  ? &algo_s
		                    : !strcmp(a, "--ici")   ? &ici_s
		                    : !strcmp(a, "--dcn")   ? &dcn_s
		                    : !strcmp(a, "--place") ? &place_s
		                    : !strcmp(a, "--over")  ? &over_s
		                                            : NULL;
		int is_n = !strcmp(a, "--slices") || !strcmp(a, "--shift");
		if (!slot && !is_n)
			return usage_error("collective", "unknown option '%s' (see --help)", a);
		if (i + 1 >= argc)
			return usage_error("collective", "%s needs a value", a);
		const char *v = argv[++i];
		if (slot) {
			*slot = v;
			continue;
		}
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		int bad = errno || *end || end == v;
		if (!strcmp(a, "--slices")) {
			if (bad || n < 1 || n > 1 << 20)
				return usage_error("collective", "--slices: '%s' is not a count >= 1", v);
			nslices = (int)n;
		} else {
			if (bad || n < -(1 << 30) || n > 1 << 30)
				return usage_error("collective", "--shift: '%s' is not an integer", v);
			shift = (int)n;
		}
	}
	if (!chip)
		return usage_error("collective", "--chip is required (see podsim list chips)");
	if (!slice)
		return usage_error("collective", "--slice is required (e.g. --slice 4x4x4)");
	if (!op)
		return usage_error("collective", "--op is required (all-reduce, all-gather, "
		                                 "reduce-scatter, all-to-all, collective-permute)");
	int mesh_mode = ici_s || dcn_s || place_s || over_s;
	if (mesh_mode && axes)
		return usage_error("collective", "--axes: give either --axes or a mesh "
		                                 "(--ici/--dcn/--over), not both");
	if (!axes && !mesh_mode)
		return usage_error("collective", "--axes is required (e.g. --axes x,y or x,dcn)");
	if (mesh_mode && (!ici_s || !over_s))
		return usage_error("collective", "%s is required with a mesh (e.g. --ici "
		                                 "fsdp=64,tensor=4 --over fsdp)",
		                   ici_s ? "--over" : "--ici");
	if (!bytes_s)
		return usage_error("collective", "--bytes is required (e.g. --bytes 1GiB)");
	int kind = coll_kind_from_name(op);
	if (kind < 0)
		return usage_error("collective",
		                   "--op: unknown collective '%s' (all-reduce, all-gather, "
		                   "reduce-scatter, all-to-all, collective-permute)",
		                   op);
	CollAlgo algo;
	if (!strcmp(algo_s, "auto"))
		algo = COLL_ALGO_AUTO;
	else if (!strcmp(algo_s, "sequential"))
		algo = COLL_ALGO_SEQUENTIAL;
	else if (!strcmp(algo_s, "split"))
		algo = COLL_ALGO_SPLIT;
	else
		return usage_error("collective", "--algo: '%s' is not auto, sequential or split",
		                   algo_s);
	int shape[3];
	int ndims = pod_parse_shape(slice, shape);
	if (ndims < 0)
		return usage_error("collective", "--slice: '%s' is not a shape like 16x16 or 4x4x8",
		                   slice);
	double bytes;
	if (parse_size(bytes_s, &bytes) < 0)
		return usage_error("collective",
		                   "--bytes: '%s' is not a size (a number with an optional suffix "
		                   "KiB, MiB, GiB, KB, MB, GB)",
		                   bytes_s);
	Mesh mesh = {0};
	char names[IR_MAX_MESH_AXES][32];
	uint32_t over = 0;
	if (mesh_mode) {
		int st = parse_mesh_sizes("--ici", ici_s, 0, &mesh, names);
		if (!st && dcn_s)
			st = parse_mesh_sizes("--dcn", dcn_s, 1, &mesh, names);
		if (st)
			return st;
		for (const char *q = over_s; *q;) {
			size_t n = strcspn(q, ",");
			int k = mesh_axis_index(&mesh, q, n);
			if (k < 0)
				return usage_error("collective", "--over: '%.*s' is not a mesh axis of "
				                                 "--ici/--dcn", (int)n, q);
			over |= 1u << k;
			q += n;
			if (*q == ',')
				q++;
		}
		if (!over)
			return usage_error("collective", "--over: no mesh axis given");
	}
	unsigned phys = 0;
	int over_dcn = 0;
	for (const char *q = axes ? axes : ""; *q;) {
		size_t n = strcspn(q, ",");
		if (n == 1 && *q >= 'x' && *q <= 'z')
			phys |= 1u << (*q - 'x');
		else if (n == 3 && !strncmp(q, "dcn", 3))
			over_dcn = 1;
		else
			return usage_error("collective",
			                   "--axes: '%.*s' is not an axis (x, y, z or dcn)", (int)n, q);
		q += n;
		if (*q == ',')
			q++;
	}
	if (!mesh_mode && !phys && !over_dcn)
		return usage_error("collective", "--axes: no axis given");

	Diag d;
	diag_init(&d);
	Chip c;
	if (chip_load(chip, &c, &d) < 0) {
		fprintf(stderr, "podsim collective: %s\n", d.msg);
		return EXIT_INPUT;
	}
	Pod p;
	if (pod_init(&p, &c, shape, ndims, nslices, twisted, &d) < 0) {
		fprintf(stderr, "podsim collective: %s\n", d.msg);
		pod_free(&p);
		return EXIT_INPUT;
	}
	if (over_dcn && nslices < 2) {
		pod_free(&p);
		return usage_error("collective", "--axes: 'dcn' needs --slices 2 or more");
	}
	CollSpec s = {.kind = (CollKind)kind, .algo = algo, .bytes = bytes, .shift = shift};
	CollResult r;
	MeshPlacement mp;
	int rc;
	if (mesh_mode) {
		rc = pod_place_mesh(&p, &mesh, place_s, &mp, &d);
		if (rc == 0)
			rc = mesh_placement_group(&p, &mp, over, &s.group, &d);
	} else {
		rc = pod_full_group(&p, phys, over_dcn, &s.group, &d);
	}
	if (rc == 0)
		rc = pod_group_collective(&p, &s, &r, &d);
	if (rc < 0) {
		fprintf(stderr, "podsim collective: %s\n", d.msg);
		pod_free(&p);
		return EXIT_INPUT;
	}
	char pd[256], gd[256];
	pod_describe(&p, pd, sizeof pd);
	net_group_describe(&p, &s.group, gd, sizeof gd);
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "op", json_string(coll_kind_name(s.kind)));
		json_object_set_new(o, "chip", json_string(c.name));
		json_object_set_new(o, "slice", json_string(slice));
		json_object_set_new(o, "slices", json_integer(nslices));
		json_object_set_new(o, "twisted", json_boolean(twisted));
		if (mesh_mode) {
			json_object_set_new(o, "over", json_string(over_s));
			json_t *pl = json_array();
			for (int i = 0; i < mp.naxes; i++) {
				char ad[256] = "";
				if (mp.group[i].ndims)
					net_group_describe(&p, &mp.group[i], ad, sizeof ad);
				json_t *e = json_object();
				json_object_set_new(e, "axis", json_string(mp.name[i]));
				json_object_set_new(e, "ici", json_integer(mp.ici[i]));
				json_object_set_new(e, "dcn", json_integer(mp.dcn[i]));
				json_object_set_new(e, "on", json_string(ad));
				json_array_append_new(pl, e);
			}
			json_object_set_new(o, "placement", pl);
			json_object_set_new(o, "placement_default", json_boolean(mp.is_default));
		} else {
			json_object_set_new(o, "axes", json_string(axes));
		}
		json_object_set_new(o, "group", json_string(gd));
		json_object_set_new(o, "group_size", json_integer(r.group_size));
		json_object_set_new(o, "bytes", json_real(bytes));
		json_object_set_new(o, "time_s", json_real(r.time_s));
		json_object_set_new(o, "algbw_bytes_per_s", json_real(r.algbw));
		json_object_set_new(o, "busbw_bytes_per_s", json_real(r.busbw));
		json_object_set_new(o, "ici_time_s", json_real(r.ici_time_s));
		json_object_set_new(o, "dcn_time_s", json_real(r.dcn_time_s));
		json_object_set_new(o, "algorithm", json_string(r.algo));
		char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
		if (txt)
			printf("%s\n", txt);
		free(txt);
		json_decref(o);
	} else {
		char hb[64], ht[64], hi[64], hd[64];
		human_bytes(bytes, hb, sizeof hb);
		human_time(r.time_s, ht, sizeof ht);
		human_time(r.ici_time_s, hi, sizeof hi);
		human_time(r.dcn_time_s, hd, sizeof hd);
		printf("pod        %s\n", pd);
		if (mesh_mode) {
			char buf[2048];
			mesh_placement_describe(&p, &mp, buf, sizeof buf);
			printf("placement\n");
			for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
				printf("  %s\n", line);
		}
		printf("op         %s over %s (%d chips per group)\n", coll_kind_name(s.kind), gd,
		       r.group_size);
		printf("algorithm  %s\n", r.algo);
		printf("bytes      %.0f (%s)\n", bytes, hb);
		printf("time       %s (ICI %s, DCN %s)\n", ht, hi, hd);
		printf("algbw      %.3f GB/s\n", r.algbw / 1e9);
		printf("busbw      %.3f GB/s\n", r.busbw / 1e9);
	}
	pod_free(&p);
	return EXIT_OK;
}
