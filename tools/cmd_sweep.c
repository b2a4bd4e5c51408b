/*
 * podsim sweep: search the layouts (mesh, slice shape, remat, microbatches)
 * of a model on a number of chips, evaluate each with the estimate engine
 * and rank them by step time (tools/sweep.c, docs/sweep.md).
 *
 * Rows stream to the CSV (one flush per row) as layouts finish, so an
 * interrupted sweep keeps what it had and --resume carries on; when the
 * sweep completes the CSV is rewritten, atomically, in rank order. The
 * progress bar goes to stderr only when stderr is a terminal.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "modelargs.h"
#include "sweep.h"

static void help(void)
{
	printf("usage: podsim sweep --model M [--chip C] --chips N [--slices S] [--batch SEQS]\n"
	       "                    [--seq LEN] [--fix AXIS=N,...] [--max AXIS=N,...]\n"
	       "                    [--remat P,...] [--microbatches K,...] [--top K]\n"
	       "                    [--csv FILE] [--resume FILE] [--json]\n"
	       "\n"
	       "  --model M        a preset (podsim list models) or a model JSON / HF config.json\n"
	       "  --chip C         a preset (podsim list chips) or a chip JSON (default tpu-v4)\n"
	       "  --chips N        chips in all (required)\n"
	       "  --slices S       slices joined by DCN (default 1); each has N/S chips\n"
	       "  --slice AxBxC    only this slice shape (default: up to --shapes canonical ones)\n"
	       "  --shapes K       slice shapes to try, the most cubic first (default 3)\n"
	       "  --batch SEQS     global batch in sequences (default: one per chip)\n"
	       "  --seq LEN        tokens per sequence (default: the model's)\n"
	       "  --fix AXIS=N     an axis's total size (ICI x DCN): data, fsdp, tensor, expert,\n"
	       "                   sequence; comma-separated for several\n"
	       "  --max AXIS=N     an axis's largest total size\n"
	       "  --sequence       let the sequence axis take part\n"
	       "  --remat P,...    remat policies to try (default none,minimal,full)\n"
	       "  --microbatches K,...  microbatch counts (default 1, 2, 4, ... within the batch)\n"
	       "  --optimizer O    adafactor (default) or adam\n"
	       "  --dtype T        bf16 (default) or f32\n"
	       "  --no-overlap     collectives block compute\n"
	       "  --top K          rows of the table (default 10)\n"
	       "  --csv FILE       every evaluated layout, streamed as they finish, then\n"
	       "                   rewritten in rank order\n"
	       "  --resume FILE    skip the layouts already in FILE (a --csv of an earlier run)\n"
	       "                   and append to it (unless --csv names another file)\n"
	       "  --json           the ranking and summary as one JSON object on stdout\n"
	       "  --exact          evaluate every layout at the model's full depth (default:\n"
	       "                   at two small depths, extended linearly; see docs/sweep.md)\n"
	       "\nOMP_NUM_THREADS sets the threads; the output does not depend on it.\n"
	       "exit status: 0 ok, 1 bad input or no layout fits, 2 bad usage\n");
}

static int parse_axes(const char *flag, const char *v, int out[AX_COUNT])
{
	const char *p = v;
	if (!*p)
		return usage_error("sweep", "%s needs AXIS=N[,AXIS=N...]", flag);
	while (*p) {
		const char *eq = strchr(p, '=');
		if (!eq)
			return usage_error("sweep", "%s '%s': expected AXIS=N[,AXIS=N...]", flag, v);
		int a = -1;
		for (int k = 0; k < AX_COUNT; k++)
			if ((size_t)(eq - p) == strlen(sweep_axis_names[k]) &&
			    !strncmp(p, sweep_axis_names[k], (size_t)(eq - p)))
				a = k;
		if (a < 0)
			return usage_error("sweep",
			                   "%s '%s': unknown axis '%.*s' (expected data, fsdp, tensor, "
			                   "expert or sequence)",
			                   flag, v, (int)(eq - p), p);
		char *end;
		long n = strtol(eq + 1, &end, 10);
		if (end == eq + 1 || n < 1 || n > 1 << 24 || (*end && *end != ','))
			return usage_error("sweep", "%s '%s': the size of '%s' must be an integer from 1 "
			                   "to %d", flag, v, sweep_axis_names[a], 1 << 24);
		out[a] = (int)n;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static int parse_list(const char *flag, const char *v, int *out, int max, int *n,
                      int (*item)(const char *, size_t))
{
	*n = 0;
	const char *p = v;
	while (*p) {
		size_t len = strcspn(p, ",");
		int x = item(p, len);
		if (x < 0)
			return usage_error("sweep", "%s '%s': bad item '%.*s'", flag, v, (int)len, p);
		for (int k = 0; k < *n; k++)
			if (out[k] == x)
				return usage_error("sweep", "%s '%s': '%.*s' is listed twice", flag, v,
				                   (int)len, p);
		if (*n == max)
			return usage_error("sweep", "%s '%s': more than %d values", flag, v, max);
		out[(*n)++] = x;
		p += len + (p[len] == ',');
	}
	return *n ? 0 : usage_error("sweep", "%s needs at least one value", flag);
}

static int remat_item(const char *p, size_t n)
{
	char buf[16];
	if (n >= sizeof buf)
		return -1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return remat_policy_from_name(buf);
}

static int count_item(const char *p, size_t n)
{
	long v = 0;
	if (n == 0 || n > 7)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v >= 1 ? (int)v : -1;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);
	size_t k;
	while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (cap - n - 1 == 0)
			b = realloc(b, cap *= 2);
	}
	fclose(f);
	b[n] = 0;
	return b;
}

/* ---- Streaming and progress --------------------------------------------- */

typedef struct Progress {
	FILE *csv;     /* stream, or NULL */
	int tty;       /* draw the bar */
	int total;     /* layouts to evaluate, resumed ones included */
	int start;     /* done before this run */
	double t0, last; /* s, omp_get_wtime */
} Progress;

static void on_done(void *ctx, const Sweep *s, int layout, int done)
{
	Progress *p = ctx;
	if (p->csv) {
		sweep_csv_row(p->csv, s, layout);
		fflush(p->csv);
	}
	if (!p->tty)
		return;
	double now = omp_get_wtime();
	if (now - p->last < 0.1 && done < p->total)
		return;
	p->last = now;
	double rate = (done - p->start) / fmax(now - p->t0, 1e-9);
	double left = rate > 0 ? (p->total - done) / rate : 0;
	int width = 30, fill = p->total ? (int)((long)width * done / p->total) : width;
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '=' : ' ';
	bar[width] = 0;
	fprintf(stderr, "\r[%s] %d/%d  %.1f layouts/s  %.0f s left   ", bar, done, p->total, rate,
	        left);
	if (done == p->total)
		fputc('\n', stderr);
	fflush(stderr);
}

/* ---- The table ---------------------------------------------------------- */

static double gib(double b) { return b / (1024.0 * 1024.0 * 1024.0); }

static void si(double v, char *buf, size_t n)
{
	static const char *const pre[] = {"", "K", "M", "G", "T"};
	int i = 0;
	while (fabs(v) >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, n, "%.4g %s", v, pre[i]);
}

static void print_table(const Sweep *s, const int *order, int nranked, int top)
{
	const SweepSpec *sp = &s->spec;
	long counts[4] = {0}, fit = 0;
	for (int i = 0; i < s->nlayouts; i++) {
		counts[s->results[i].status]++;
		fit += s->results[i].status == SWEEP_OK && s->results[i].fits;
	}
	int64_t seq = sp->base.c.seq ? sp->base.c.seq : sp->base.c.model.seq_len;
	printf("podsim sweep: %s on %d %s chips (%d slice%s), batch %lld x %lld, %s\n",
	       sp->base.c.model.name, sp->chips, sp->base.c.chip.name, sp->slices,
	       sp->slices == 1 ? "" : "s", (long long)sp->base.c.batch, (long long)seq,
	       optimizer_name(sp->base.c.train.optimizer));
	printf("  %ld layouts: %ld evaluated (%ld fit), %ld pruned (a lower bound exceeds HBM), "
	       "%ld failed, %ld skipped\n",
	       s->nlayouts + s->skipped, counts[SWEEP_OK], fit, counts[SWEEP_PRUNED],
	       counts[SWEEP_FAILED], s->skipped);
	for (int k = 0; k < s->nskips; k++)
		printf("    skipped %6ld  %s\n", s->skips[k].n, s->skips[k].reason);
	long extra = 0;
	for (int i = 0; i < s->nlayouts; i++)
		extra += s->results[i].status == SWEEP_OK && s->results[i].extrapolated;
	if (s->ndepths && counts[SWEEP_OK])
		printf("  %ld layouts were extended from three consecutive depths in %d..%d layers "
		       "(step time\n  marked ~; memory marked <= an upper bound, >= a lower bound); "
		       "the rest ran at full\n  depth (--exact: all)\n",
		       extra, s->depth[0], s->depth[s->ndepths - 1]);
	printf("\n%4s  %-36s %-9s %-7s %3s %11s %10s %6s %6s %11s  %s\n", "rank", "mesh (ici | dcn)",
	       "slice", "remat", "mb", "step time", "tokens/s", "MFU", "HFU", "mem/chip", "fits");
	for (int k = 0; k < nranked && k < top; k++) {
		int i = order[k];
		const SweepLayout *l = &s->layouts[i];
		const SweepResult *r = &s->results[i];
		char ici[96], dcn[64], mesh[170], shape[32], fits[48], tps[32];
		sweep_mesh_spec(l, 0, ici, sizeof ici);
		sweep_mesh_spec(l, 1, dcn, sizeof dcn);
		snprintf(mesh, sizeof mesh, "%s%s%s", ici, dcn[0] ? " | " : "", dcn);
		sweep_shape_string(s, l->shape, shape, sizeof shape);
		if (r->fits)
			snprintf(fits, sizeof fits, "yes");
		else
			snprintf(fits, sizeof fits, "no (over by %s%.2f GiB)",
			         r->status == SWEEP_PRUNED || r->extrapolated == 2 ? ">= " : "",
			         gib(r->mem_bytes - r->hbm_bytes));
		si(r->tokens_per_s, tps, sizeof tps);
		const char *bound = r->extrapolated == 3                                ? "<="
		                    : r->status == SWEEP_PRUNED || r->extrapolated == 2 ? ">="
		                                                                        : "  ";
		if (r->status == SWEEP_OK)
			printf("%4d  %-36s %-9s %-7s %3d %s%9.4gs %10s %5.1f%% %5.1f%% %s%5.2f GiB  %s\n",
			       k + 1, mesh, shape, remat_policy_name(l->remat), l->microbatches,
			       r->extrapolated ? "~" : " ", r->step_time_s, tps, 100 * r->mfu,
			       100 * r->hfu, bound, gib(r->mem_bytes), fits);
		else
			printf("%4d  %-36s %-9s %-7s %3d %11s %10s %6s %6s %s%5.2f GiB  %s\n", k + 1,
			       mesh, shape, remat_policy_name(l->remat), l->microbatches, "-", "-", "-",
			       "-", bound, gib(r->mem_bytes), fits);
	}
	if (counts[SWEEP_FAILED]) {
		printf("\nfailed:\n");
		int shown = 0;
		for (int i = 0; i < s->nlayouts && shown < 5; i++)
			if (s->results[i].status == SWEEP_FAILED) {
				char ici[96], dcn[64];
				sweep_mesh_spec(&s->layouts[i], 0, ici, sizeof ici);
				sweep_mesh_spec(&s->layouts[i], 1, dcn, sizeof dcn);
				printf("  %s%s%s: %s\n", ici, dcn[0] ? " | " : "", dcn, s->results[i].error);
				shown++;
			}
	}
}

/* The final CSV: ranked rows, then the failed ones, written atomically. */
static int rewrite_csv(const char *path, const Sweep *s, const int *order, int nranked)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -1;
	sweep_csv_header(f);
	for (int k = 0; k < nranked; k++)
		sweep_csv_row(f, s, order[k]);
	for (int i = 0; i < s->nlayouts; i++)
		if (s->results[i].status == SWEEP_FAILED)
			sweep_csv_row(f, s, i);
	if (s->kept_len) /* resumed rows of layouts outside this space */
		fwrite(s->kept_rows, 1, s->kept_len, f);
	fclose(f);
	int rc = write_file_atomic(path, buf, len);
	free(buf);
	return rc;
}

/* Whether paths a and b name the same file (spelt alike, or the same
 * inode: a CSV resumed through another path must not be truncated). */
static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (!strcmp(a, b))
		return 1;
	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cmd_sweep(int argc, char **argv)
{
	ModelArgs a;
	model_args_init(&a);
	Sweep s;
	memset(&s, 0, sizeof s);
	sweep_spec_default(&s.spec);
	SweepSpec *sp = &s.spec;
	int json = 0, top = 10, rc = EXIT_USAGE;
	long chips = 0;
	const char *csv = NULL, *resume = NULL;
	int *order = NULL;
	FILE *stream = NULL;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
			help();
			rc = EXIT_OK;
			goto out;
		}
		if (!strcmp(f, "--json")) {
			json = 1;
			continue;
		}
		if (!strcmp(f, "--sequence")) {
			sp->sequence = 1;
			continue;
		}
		if (!strcmp(f, "--no-prune")) { /* brute force, for tests */
			sp->brute = 1;
			continue;
		}
		if (!strcmp(f, "--exact")) {
			sp->exact = 1;
			continue;
		}
		if (!strcmp(f, "--inference")) {
			usage_error("sweep", "--inference: sweep searches training layouts (podsim "
			            "estimate --inference prices one inference layout)");
			goto out;
		}
		if (!strcmp(f, "--ici") || !strcmp(f, "--dcn") || !strcmp(f, "--place") ||
		    !strcmp(f, "--twisted")) {
			usage_error("sweep", "%s: sweep chooses the mesh (use --fix and --max; "
			            "podsim estimate runs one layout)", f);
			goto out;
		}
		static const char *const valued[] = {"--chips", "--fix", "--max", "--remat",
		                                     "--microbatches", "--top", "--csv",
		                                     "--resume", "--shapes"};
		int mine = 0;
		for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
			mine |= !strcmp(f, valued[k]);
		if (mine) {
			if (i + 1 >= argc) {
				usage_error("sweep", "%s needs a value", f);
				goto out;
			}
			const char *v = argv[++i];
			char *end;
			long n = strtol(v, &end, 10);
			int bad_int = end == v || *end || n < 1 || n > 1 << 24;
			if (!strcmp(f, "--chips") || !strcmp(f, "--top") || !strcmp(f, "--shapes")) {
				if (bad_int) {
					usage_error("sweep", "%s '%s': expected a positive integer", f, v);
					goto out;
				}
				if (!strcmp(f, "--chips"))
					chips = n;
				else if (!strcmp(f, "--top"))
					top = (int)n;
				else
					sp->max_shapes = (int)n;
			} else if (!strcmp(f, "--fix")) {
				if (parse_axes(f, v, sp->fix))
					goto out;
			} else if (!strcmp(f, "--max")) {
				if (parse_axes(f, v, sp->max))
					goto out;
			} else if (!strcmp(f, "--remat")) {
				int r[8], nr;
				if (parse_list(f, v, r, 3, &nr, remat_item))
					goto out;
				sp->nremat = nr;
				for (int k = 0; k < nr; k++)
					sp->remat[k] = (RematPolicy)r[k];
			} else if (!strcmp(f, "--microbatches")) {
				if (parse_list(f, v, sp->micro, SWEEP_MAX_LIST, &sp->nmicro, count_item))
					goto out;
			} else if (!strcmp(f, "--csv")) {
				csv = v;
			} else {
				resume = v;
			}
			continue;
		}
		int k = model_args_parse("sweep", argc, argv, &i, &a);
		if (k < 0)
			goto out;
		if (k == 0) {
			usage_error("sweep", "unknown option '%s' (see podsim sweep --help)", argv[i]);
			goto out;
		}
	}
	if (!a.model) {
		usage_error("sweep", "--model is required (see podsim sweep --help)");
		goto out;
	}
	if (!chips) {
		usage_error("sweep", "--chips is required (see podsim sweep --help)");
		goto out;
	}
	Diag d;
	diag_init(&d);
	EstimateOptions *o = &sp->base;
	*o = a.o; /* optimizer, dtype, overlap */
	if (model_load(a.model, &o->c.model, &d) || chip_load(a.chip, &o->c.chip, &d)) {
		fprintf(stderr, "podsim sweep: %s\n", d.msg);
		rc = EXIT_INPUT;
		goto out;
	}
	if (a.slice) {
		int nd = pod_parse_shape(a.slice, sp->slice);
		if (nd < 0) {
			usage_error("sweep", "--slice '%s': expected AxB or AxBxC", a.slice);
			goto out;
		}
		sp->slice_ndims = nd;
		int want = o->c.chip.ici_ndims;
		if (nd > want) {
			usage_error("sweep", "--slice '%s' has %d dims, but %s's interconnect has %d",
			            a.slice, nd, o->c.chip.name, want);
			goto out;
		}
	}
	sp->chips = (int)chips;
	sp->slices = (int)a.slices;
	o->c.batch = a.batch ? a.batch : chips;
	o->c.seq = a.seq;
	int big = model_args_check_size("sweep", &o->c.model, o->c.batch, o->c.seq);
	if (big) {
		rc = big;
		goto out;
	}
	if (sweep_enumerate(&s, &d)) {
		fprintf(stderr, "podsim sweep: %s\n", strstr(d.msg, "error: ") ? strstr(d.msg, "error: ") + 7
		                                                              : d.msg);
		rc = EXIT_USAGE;
		goto out;
	}
	int resumed = 0, resume_rows = 0;
	if (resume) {
		struct stat st;
		if (!stat(resume, &st) && !S_ISREG(st.st_mode)) {
			fprintf(stderr, "podsim sweep: --resume %s: not a regular file\n", resume);
			rc = EXIT_INPUT;
			goto out;
		}
		char *text = read_all(resume);
		if (!text) {
			fprintf(stderr, "podsim sweep: --resume %s: cannot read it\n", resume);
			rc = EXIT_INPUT;
			goto out;
		}
		/* a row cut short by an interruption is dropped, and cut from the
		 * file before rows are appended to it */
		char *nl = strrchr(text, '\n');
		size_t keep = nl ? (size_t)(nl - text) + 1 : 0;
		int cut = text[keep] != 0;
		text[keep] = 0;
		resume_rows = keep > 0; /* a header at least: rows are appended */
		resumed = sweep_csv_resume(&s, text, resume, &d);
		free(text);
		if (cut && resumed >= 0 && (!csv || same_file(csv, resume)) &&
		    truncate(resume, (off_t)keep)) {
			fprintf(stderr, "podsim sweep: --resume %s: cannot cut its last, partial row\n",
			        resume);
			rc = EXIT_INPUT;
			goto out;
		}
		if (resumed < 0) {
			fprintf(stderr, "podsim sweep: %s\n", d.msg);
			rc = EXIT_INPUT;
			goto out;
		}
		if (!csv)
			csv = resume;
	}
	if (csv) {
		int append = resume && resume_rows && same_file(csv, resume);
		stream = fopen(csv, append ? "a" : "w");
		if (!stream) {
			fprintf(stderr, "podsim sweep: --csv %s: cannot write it\n", csv);
			rc = EXIT_INPUT;
			goto out;
		}
		if (!append) {
			sweep_csv_header(stream);
			fflush(stream);
		}
	}
	Progress p = {.csv = stream, .tty = isatty(2), .total = s.nlayouts, .start = resumed,
	              .t0 = omp_get_wtime()};
	sweep_evaluate(&s, on_done, &p);
	if (stream) {
		fclose(stream);
		stream = NULL;
	}
	int nranked = sweep_rank(&s, &order);
	if (csv && rewrite_csv(csv, &s, order, nranked)) {
		fprintf(stderr, "podsim sweep: --csv %s: cannot write it\n", csv);
		rc = EXIT_INPUT;
		goto out;
	}
	if (json) {
		char *j = sweep_json(&s, order, nranked);
		puts(j);
		free(j);
	} else {
		print_table(&s, order, nranked, top);
	}
	rc = EXIT_OK;
	long nfailed = 0;
	for (int i = 0; i < s.nlayouts; i++)
		nfailed += s.results[i].status == SWEEP_FAILED;
	if (s.nlayouts == 0) {
		if (s.skipped)
			fprintf(stderr, "podsim sweep: no layout of %s on %d %s chips to evaluate: all %ld "
			        "were skipped (the reasons are in the summary)\n", o->c.model.name,
			        sp->chips, o->c.chip.name, s.skipped);
		else
			fprintf(stderr, "podsim sweep: no layout of %s on %d %s chips to evaluate: --fix "
			        "and --max leave none\n", o->c.model.name, sp->chips, o->c.chip.name);
		rc = EXIT_INPUT;
	} else if (nranked == 0) {
		fprintf(stderr, "podsim sweep: all %ld layouts of %s on %d %s chips failed (the "
		        "errors are in the output)\n", nfailed, o->c.model.name, sp->chips,
		        o->c.chip.name);
		rc = EXIT_INPUT;
	} else if (!s.results[order[0]].fits) {
		fprintf(stderr, "podsim sweep: no layout of %s on %d %s chips fits in HBM\n",
		        o->c.model.name, sp->chips, o->c.chip.name);
		rc = EXIT_INPUT;
	}
out:
	if (stream)
		fclose(stream);
	free(order);
	sweep_free(&s);
	model_args_free(&a);
	return rc;
}
