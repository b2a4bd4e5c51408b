/*
 * Parsing and resolving the model/pod options (see modelargs.h). Every
 * message names the flag; a file that does not load names its line and
 * column.
 */
#include "modelargs.h"

#include <stdlib.h>
#include <string.h>

#include "commands.h"

const char *const model_args_help =
	"  --model M        a preset (podsim list models) or a model JSON / HF config.json\n"
	"  --chip C         a preset (podsim list chips) or a chip JSON (default tpu-v4)\n"
	"  --slice AxBxC    chips per slice along each torus axis (default: derived from --ici)\n"
	"  --slices N       slices joined by DCN (default 1)\n"
	"  --twisted        a twisted torus\n"
	"  --ici, --dcn     mesh axes (data, fsdp, tensor, sequence, expert) and their sizes\n"
	"                   inside a slice and across slices (default: --ici data=<chips>)\n"
	"  --place SPEC     which physical axes each mesh axis uses, e.g. tensor=x,fsdp=yz\n"
	"  --batch SEQS     global batch in sequences (images) per step (default 1 per chip)\n"
	"  --seq LEN        tokens per sequence (default: the model's)\n"
	"  --microbatches K gradient accumulation: K forward/backward passes per update\n"
	"  --remat P        rematerialisation: none (default), minimal (keep matmul outputs)\n"
	"                   or full (keep each layer's input)\n"
	"  --optimizer O    adafactor (default) or adam\n"
	"  --dtype T        bf16 (default) or f32 weights and activations\n"
	"  --inference      the forward pass only\n"
	"  --no-overlap     collectives block compute (shows what overlap buys)\n";

void model_args_init(ModelArgs *a)
{
	memset(a, 0, sizeof *a);
	estimate_options_default(&a->o);
	a->chip = "tpu-v4";
	a->microbatches = 1;
	a->slices = 1;
	arena_init(&a->names);
}

void model_args_free(ModelArgs *a) { arena_free(&a->names); }

static int parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi, long *out)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (end == v || *end || x < lo || x > hi) {
		usage_error(cmd, "%s '%s': expected an integer in [%ld, %ld]", flag, v, lo, hi);
		return -1;
	}
	*out = x;
	return 1;
}

int model_args_parse(const char *cmd, int argc, char **argv, int *i, ModelArgs *a)
{
	const char *f = argv[*i];
	if (!strcmp(f, "--twisted"))
		return a->o.twisted = 1;
	if (!strcmp(f, "--inference"))
		return a->o.c.forward_only = 1;
	if (!strcmp(f, "--no-overlap")) {
		a->o.c.sched.overlap = 0;
		return 1;
	}
	static const char *const valued[] = {
		"--model", "--chip", "--slice", "--slices", "--ici", "--dcn", "--place", "--batch",
		"--seq", "--microbatches", "--remat", "--optimizer", "--dtype",
	};
	int known = 0;
	for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
		known |= !strcmp(f, valued[k]);
	if (!known)
		return 0;
	if (*i + 1 >= argc) {
		usage_error(cmd, "%s needs a value", f);
		return -1;
	}
	const char *v = argv[++*i];
	if (!strcmp(f, "--model"))
		a->model = v;
	else if (!strcmp(f, "--chip"))
		a->chip = v;
	else if (!strcmp(f, "--slice"))
		a->slice = v;
	else if (!strcmp(f, "--ici"))
		a->ici = v;
	else if (!strcmp(f, "--dcn"))
		a->dcn = v;
	else if (!strcmp(f, "--place"))
		a->o.place = v;
	else if (!strcmp(f, "--slices"))
		return parse_long(cmd, f, v, 1, 1 << 16, &a->slices);
	else if (!strcmp(f, "--batch"))
		return parse_long(cmd, f, v, 1, 1L << 40, &a->batch);
	else if (!strcmp(f, "--seq"))
		return parse_long(cmd, f, v, 1, 1L << 24, &a->seq);
	else if (!strcmp(f, "--microbatches"))
		return parse_long(cmd, f, v, 1, 1 << 20, &a->microbatches);
	else if (!strcmp(f, "--remat")) {
		int p = remat_policy_from_name(v);
		if (p < 0) {
			usage_error(cmd, "--remat '%s': expected none, minimal or full", v);
			return -1;
		}
		a->o.c.train.remat = (RematPolicy)p;
	} else if (!strcmp(f, "--optimizer")) {
		int p = optimizer_from_name(v);
		if (p < 0) {
			usage_error(cmd, "--optimizer '%s': expected adafactor or adam", v);
			return -1;
		}
		a->o.c.train.optimizer = (OptimizerKind)p;
	} else if (!strcmp(f, "--dtype")) {
		if (!strcmp(v, "bf16"))
			a->o.c.dtype = DT_BF16;
		else if (!strcmp(v, "f32"))
			a->o.c.dtype = DT_F32;
		else {
			usage_error(cmd, "--dtype '%s': expected bf16 or f32", v);
			return -1;
		}
	}
	return 1;
}

static const char *after_error(const Diag *d)
{
	const char *m = strstr(d->msg, "error: ");
	return m ? m + 7 : d->msg;
}

/* A bound on the elements of the largest tensor a step of model m makes
 * for batch sequences of seq tokens (0: the model's), and on the work of
 * the largest matmul (those elements times the widest contraction). */
static void step_size(const ModelConfig *m, int64_t batch, int64_t seq, double *elems,
                      double *work)
{
	double s = (double)(seq ? seq : m->seq_len);
	if (m->family == FAMILY_ENCODER || m->family == FAMILY_MIXER)
		s = (double)model_tokens_per_image(m);
	if ((double)m->dec_seq_len > s)
		s = (double)m->dec_seq_len;
	double b = (double)batch, w = (double)m->d_model;
	if ((double)m->d_ff > w)
		w = (double)m->d_ff;
	if ((double)m->vocab > w)
		w = (double)m->vocab;
	double e = b * s * w, attn = b * (double)m->heads * s * s;
	*elems = e > attn ? e : attn;
	*work = *elems * (w > s ? w : s);
}

int model_args_check_size(const char *cmd, const ModelConfig *m, int64_t batch, int64_t seq)
{
	/* shapes, byte counts and MXU tile counts are 64-bit integers: a step
	 * too large for them is refused here, not wrapped around later */
	double elems, work;
	step_size(m, batch, seq, &elems, &work);
	if (elems > 0x1p52 || work > 0x1p62)
		return usage_error(cmd, "--batch %lld with --seq %lld: %s's step would make tensors of "
		                   "%.3g elements, more than podsim can represent (2^52)",
		                   (long long)batch, (long long)(seq ? seq : m->seq_len), m->name, elems);
	return 0;
}

int model_args_resolve(const char *cmd, ModelArgs *a)
{
	EstimateOptions *o = &a->o;
	Diag d;
	diag_init(&d);
	if (!a->model)
		return usage_error(cmd, "--model is required (see podsim %s --help)", cmd);
	if (model_load(a->model, &o->c.model, &d) || chip_load(a->chip, &o->c.chip, &d)) {
		fprintf(stderr, "podsim %s: %s\n", cmd, d.msg);
		return EXIT_INPUT;
	}
	if (a->slice) {
		int n = pod_parse_shape(a->slice, o->slice);
		if (n < 0)
			return usage_error(cmd, "--slice '%s': expected AxB or AxBxC", a->slice);
		o->slice_ndims = n;
	}
	o->nslices = (int)a->slices;
	if ((a->ici && mesh_parse(&o->c.mesh, &a->names, a->ici, 0, "--ici", &d)) ||
	    (a->dcn && mesh_parse(&o->c.mesh, &a->names, a->dcn, 1, "--dcn", &d)))
		return usage_error(cmd, "%s", after_error(&d));
	if (!a->ici) {
		/* data parallelism over the slice */
		if (!a->slice)
			return usage_error(cmd, "give --ici (mesh axes) or --slice");
		char spec[64];
		snprintf(spec, sizeof spec, "data=%d", o->slice[0] * o->slice[1] * o->slice[2]);
		mesh_parse(&o->c.mesh, &a->names, spec, 0, "--ici", &d);
	}
	o->c.batch = a->batch ? a->batch : mesh_size(&o->c.mesh);
	int rc = model_args_check_size(cmd, &o->c.model, o->c.batch, a->seq);
	if (rc)
		return rc;
	o->c.seq = a->seq;
	o->c.microbatches = (int)a->microbatches;
	return 0;
}
