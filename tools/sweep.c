/*
 * podsim sweep's core (see sweep.h): enumeration, the skip rules and the
 * weight lower bound, evaluation across threads, ranking, CSV and JSON.
 *
 * Enumeration order is fixed (DCN factorisation, ICI factorisation, remat,
 * microbatches, slice shape innermost) and every result is a function of
 * its layout alone, so the ranking is the same whatever the thread count or
 * the order in which layouts finish. Threads take whole groups (a mesh,
 * remat and microbatch count): one compile per model depth the group needs
 * (the small depths of the extrapolation, the full depth), then one
 * simulation per slice shape and depth on the thread's own Pod for that
 * shape. A Pod's memo table holds
 * collective costs keyed by their inputs, so sharing it across meshes
 * changes no result; the brute mode (SweepSpec.brute) checks that.
 *
 * Thread safety of what runs inside the parallel region: compile_model and
 * the engine allocate per call and keep no static mutable state (chip
 * presets are found once, under pthread_once, before the sweep starts: the
 * model and chip are loaded by the caller); each thread has its own Pods.
 */
#include "sweep.h"

#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

const char *const sweep_axis_names[AX_COUNT] = {
	[AX_DATA] = "data",
	[AX_FSDP] = "fsdp",
	[AX_TENSOR] = "tensor",
	[AX_EXPERT] = "expert",
	[AX_SEQUENCE] = "sequence",
};

void sweep_spec_default(SweepSpec *s)
{
	memset(s, 0, sizeof *s);
	estimate_options_default(&s->base);
	s->slices = 1;
	s->max_shapes = 3;
}

void sweep_free(Sweep *s)
{
	free(s->layouts);
	free(s->results);
	free(s->group_start);
	free(s->kept_rows);
	s->layouts = NULL;
	s->results = NULL;
	s->group_start = NULL;
	s->kept_rows = NULL;
	s->kept_len = 0;
}

/* ---- Enumeration -------------------------------------------------------- */

static int total(const SweepLayout *l, int a) { return l->ici[a] * l->dcn[a]; }

static void count_skip(Sweep *s, const char *reason, long n)
{
	s->skipped += n;
	for (int i = 0; i < s->nskips; i++)
		if (!strcmp(s->skips[i].reason, reason)) {
			s->skips[i].n += n;
			return;
		}
	if (s->nskips < (int)(sizeof s->skips / sizeof s->skips[0])) {
		snprintf(s->skips[s->nskips].reason, sizeof s->skips[0].reason, "%s", reason);
		s->skips[s->nskips++].n = n;
	}
}

typedef struct ShapeKey {
	int dims[3];
	double ratio; /* longest / shortest dim: 1 is a cube */
	int nowrap;   /* dims longer than 1 without wraparound */
} ShapeKey;

static int shape_cmp(const void *a, const void *b)
{
	const ShapeKey *x = a, *y = b;
	if (x->ratio != y->ratio)
		return x->ratio < y->ratio ? -1 : 1;
	if (x->nowrap != y->nowrap)
		return x->nowrap - y->nowrap;
	return memcmp(x->dims, y->dims, sizeof x->dims);
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* Slice shapes of n chips, dims ascending (x <= y <= z: permutations
 * place the mesh alike), within the chip's largest slice; the most cubic
 * first, then those with more wraparound axes. */
static int find_shapes(Sweep *s, int n, Diag *d)
{
	const Chip *c = &s->spec.base.c.chip;
	int nd = c->ici_ndims;
	s->shape_ndims = nd;
	if (s->spec.slice_ndims) {
		memcpy(s->shapes[0], s->spec.slice, sizeof s->shapes[0]);
		s->shape_ndims = s->spec.slice_ndims;
		s->nshapes = 1;
		if ((long)s->spec.slice[0] * s->spec.slice[1] * s->spec.slice[2] != n) {
			diag_error(d, NULL, 0, 0, "--slice %dx%dx%d has %d chips, a slice here has %d "
			           "(--chips / --slices)",
			           s->spec.slice[0], s->spec.slice[1], s->spec.slice[2],
			           s->spec.slice[0] * s->spec.slice[1] * s->spec.slice[2], n);
			return -1;
		}
		return 0;
	}
	int maxs[3] = {c->max_slice[0], nd > 1 ? c->max_slice[1] : 1, nd > 2 ? c->max_slice[2] : 1};
	qsort(maxs, (size_t)nd, sizeof(int), int_cmp);
	ShapeKey all[256];
	int m = 0;
	for (int x = 1; x <= maxs[0] && x <= n; x++) {
		if (n % x)
			continue;
		for (int y = nd > 1 ? x : 1; y <= (nd > 1 ? maxs[1] : 1); y++) {
			if ((n / x) % y)
				continue;
			int z = n / x / y;
			if (nd == 2 && z != 1)
				continue;
			if (nd == 3 && (z < y || z > maxs[2]))
				continue;
			if (m == 256)
				break;
			ShapeKey *k = &all[m++];
			k->dims[0] = x;
			k->dims[1] = y;
			k->dims[2] = z;
			k->ratio = (double)(nd == 3 ? z : y) / x;
			k->nowrap = 0;
			for (int i = 0; i < 3; i++)
				k->nowrap += k->dims[i] > 1 && !chip_axis_wraps(c, k->dims[i]);
		}
	}
	if (m == 0) {
		diag_error(d, NULL, 0, 0, "no %s slice has %d chips (within its largest slice %dx%dx%d)",
		           c->name, n, c->max_slice[0], c->max_slice[1], c->max_slice[2]);
		return -1;
	}
	qsort(all, (size_t)m, sizeof all[0], shape_cmp);
	int lim = s->spec.max_shapes > 0 ? s->spec.max_shapes : 1;
	if (lim > SWEEP_MAX_SHAPES)
		lim = SWEEP_MAX_SHAPES;
	s->nshapes = m < lim ? m : lim;
	for (int i = 0; i < s->nshapes; i++)
		memcpy(s->shapes[i], all[i].dims, sizeof s->shapes[i]);
	return 0;
}

/* The weights of the model by the set of sweep axes that the sharding
 * rules may split them over (the union over their dims' logical axes). */
static int weights_by_axes(Sweep *s, Diag *d)
{
	const CompileOptions *co = &s->spec.base.c;
	BuildOptions bo;
	build_options_default(&bo);
	bo.batch = 1;
	bo.seq = co->seq;
	bo.dtype = co->dtype;
	Module *m = model_build(&co->model, &bo, d);
	if (!m)
		return -1;
	model_annotate_logical(m);
	Mesh all;
	memset(&all, 0, sizeof all);
	for (int a = 0; a < AX_COUNT; a++)
		all.axes[all.naxes++] = (MeshAxis){sweep_axis_names[a], 2, 1};
	ShardRules rules;
	shard_rules_default(&all, &rules);
	for (int i = 0; i < m->ninsts; i++) {
		const Inst *in = &m->insts[i];
		if (in->op != OP_PARAMETER || strcmp(ir_attr_str(in, "role", ""), "weight"))
			continue;
		uint32_t mask = 0;
		const Attr *lg = ir_attr(in, "logical");
		for (int k = 0; lg && k < lg->n; k++)
			for (int r = 0; r < rules.n; r++)
				if (!strcmp(rules.logical[r], lg->names[k]))
					mask |= rules.axes[r]; /* mesh axis k is sweep axis k */
		double b = (double)type_bytes(&in->type);
		s->weight_bytes += b;
		s->weight_bytes_by_axes[mask] += b;
	}
	ir_module_free(m);
	return 0;
}

double sweep_weight_bound(const Sweep *s, const SweepLayout *l)
{
	/* a weight split over a set of axes holds at least bytes / (product of
	 * their sizes) on each chip: uneven splits pad, an axis that does not
	 * divide a dim replicates it */
	double b = 0;
	for (int mask = 0; mask < 1 << AX_COUNT; mask++) {
		if (s->weight_bytes_by_axes[mask] == 0)
			continue;
		double ways = 1;
		for (int a = 0; a < AX_COUNT; a++)
			if (mask & (1 << a))
				ways *= total(l, a);
		b += s->weight_bytes_by_axes[mask] / ways;
	}
	return b;
}

double sweep_activation_bound(double saved, int chips, double cmem_bytes)
{
	/* each of those values holds at least bytes / chips on a chip (split
	 * over at most every chip, or replicated), and all of them are live at
	 * the loss, with the weights; a compiler may keep up to CMEM's size of
	 * them outside HBM */
	double b = saved / (chips > 0 ? chips : 1) - cmem_bytes;
	return b > 0 ? b : 0;
}

/* Whether (and at which depths) to extrapolate: every stack of the model
 * has the same layer count L, a multiple of the period p, and 5p < L. The
 * first layers are not alike (a gradient buffer the second layer's
 * backward adds; collectives that overlap differently while the schedule
 * fills): from 1p, 12 of the 942 layouts of PaLM 62B over 1024 chips
 * extend. The small depths start at 2p, and a layout not yet linear there
 * slides to deeper windows; that costs 11% fewer instructions than
 * starting at 3p, with nearly as many layouts extended (686, against 694;
 * the rest run at full depth). */
static void choose_depths(Sweep *s)
{
	const ModelConfig *m = &s->spec.base.c.model;
	s->ndepths = 0;
	int L = m->dec_layers ? m->dec_layers : m->enc_layers;
	if (s->spec.exact || (m->enc_layers && m->dec_layers && m->enc_layers != m->dec_layers))
		return;
	int p = m->experts > 0 && m->moe_every > 1 ? m->moe_every : 1;
	if (L % p || 5 * p >= L)
		return;
	s->ndepths = 3;
	while (s->ndepths < SWEEP_MAX_DEPTHS && 2 * (2 + s->ndepths) * p <= L)
		s->ndepths++;
	for (int k = 0; k < s->ndepths; k++)
		s->depth[k] = (2 + k) * p;
}

/* Ordered factorisations of n over the axes in `axes` (a list), calling
 * back with sizes filled. */
typedef struct Factor {
	int naxes;
	int axes[AX_COUNT];
	int size[AX_COUNT];
	int (*out)[AX_COUNT];
	int nout, cap;
} Factor;

static void factor(Factor *f, int k, int rest)
{
	if (k == f->naxes - 1) {
		f->size[f->axes[k]] = rest;
		if (f->nout == f->cap) {
			f->cap = f->cap ? 2 * f->cap : 64;
			f->out = realloc(f->out, sizeof *f->out * (size_t)f->cap);
		}
		memcpy(f->out[f->nout++], f->size, sizeof f->size);
		return;
	}
	for (int v = 1; v <= rest; v++)
		if (rest % v == 0) {
			f->size[f->axes[k]] = v;
			factor(f, k + 1, rest / v);
		}
}

static void factorise(Factor *f, int n, const int *axes, int naxes)
{
	memset(f, 0, sizeof *f);
	f->naxes = naxes;
	memcpy(f->axes, axes, sizeof(int) * (size_t)naxes);
	for (int a = 0; a < AX_COUNT; a++)
		f->size[a] = 1;
	factor(f, 0, n);
}

static void add_layout(Sweep *s, int *cap, const SweepLayout *l)
{
	if (s->nlayouts == *cap) {
		*cap = *cap ? 2 * *cap : 256;
		s->layouts = realloc(s->layouts, sizeof *s->layouts * (size_t)*cap);
	}
	s->layouts[s->nlayouts++] = *l;
}

/* Why a mesh cannot work for this model and batch, or NULL. */
static const char *mesh_problem(const Sweep *s, const SweepLayout *l, int mb)
{
	const CompileOptions *c = &s->spec.base.c;
	const ModelConfig *m = &c->model;
	int t = total(l, AX_TENSOR), e = total(l, AX_EXPERT), q = total(l, AX_SEQUENCE);
	if (t > 1 && ((m->heads > 0 && m->heads % t) || (m->d_ff > 0 && m->d_ff % t)))
		return "tensor does not divide the heads or d_ff";
	if (e > 1 && m->experts % e)
		return "expert does not divide the experts";
	int64_t seq = c->seq ? c->seq : m->seq_len;
	if (q > 1 && seq % q)
		return "sequence does not divide the sequence length";
	if (c->batch % mb)
		return "microbatches do not divide the batch";
	int64_t b = (int64_t)total(l, AX_DATA) * total(l, AX_FSDP) * e;
	if ((c->batch / mb) % b)
		return "data x fsdp x expert does not divide the batch (per microbatch)";
	return NULL;
}

int sweep_enumerate(Sweep *s, Diag *d)
{
	const SweepSpec *sp = &s->spec;
	if (sp->slices < 1 || sp->chips < 1 || sp->chips % sp->slices) {
		diag_error(d, NULL, 0, 0, "--chips %d is not a multiple of --slices %d", sp->chips,
		           sp->slices);
		return -1;
	}
	int n = sp->chips / sp->slices;
	if (find_shapes(s, n, d) || weights_by_axes(s, d))
		return -1;
	choose_depths(s);
	int ici_axes[AX_COUNT], nici = 0;
	ici_axes[nici++] = AX_DATA;
	ici_axes[nici++] = AX_FSDP;
	ici_axes[nici++] = AX_TENSOR;
	if (sp->base.c.model.experts > 0)
		ici_axes[nici++] = AX_EXPERT;
	if (sp->sequence)
		ici_axes[nici++] = AX_SEQUENCE;
	static const int dcn_axes[2] = {AX_DATA, AX_FSDP};
	Factor fi, fd;
	factorise(&fi, n, ici_axes, nici);
	factorise(&fd, sp->slices, dcn_axes, 2);
	RematPolicy remats[3] = {REMAT_NONE, REMAT_MINIMAL, REMAT_FULL};
	int nremat = 3;
	if (sp->nremat) {
		nremat = sp->nremat;
		memcpy(remats, sp->remat, sizeof(RematPolicy) * (size_t)nremat);
	}
	int cap = 0, gcap = 0;
	for (int di = 0; di < fd.nout; di++) {
		for (int ii = 0; ii < fi.nout; ii++) {
			SweepLayout l;
			memset(&l, 0, sizeof l);
			memcpy(l.ici, fi.out[ii], sizeof l.ici);
			memcpy(l.dcn, fd.out[di], sizeof l.dcn);
			int ok = 1;
			for (int a = 0; a < AX_COUNT; a++) {
				if (sp->fix[a] && total(&l, a) != sp->fix[a])
					ok = 0;
				if (sp->max[a] && total(&l, a) > sp->max[a])
					ok = 0;
			}
			if (!ok)
				continue;
			int micro[SWEEP_MAX_LIST], nmicro = 0;
			if (sp->nmicro) {
				nmicro = sp->nmicro;
				memcpy(micro, sp->micro, sizeof(int) * (size_t)nmicro);
			} else {
				/* 1, 2, 4, ... while a microbatch still gives each
				 * batch-splitting chip a whole sequence */
				int64_t b = (int64_t)total(&l, AX_DATA) * total(&l, AX_FSDP) *
				            total(&l, AX_EXPERT);
				micro[nmicro++] = 1;
				/* at most --microbatches's own limit, 2^20 */
				int64_t kmax = sp->base.c.batch / b < 1 << 20 ? sp->base.c.batch / b : 1 << 20;
				for (int64_t k = 2; nmicro < SWEEP_MAX_LIST && k <= kmax; k *= 2)
					if (sp->base.c.batch % (k * b) == 0)
						micro[nmicro++] = (int)k;
			}
			for (int r = 0; r < nremat; r++)
				for (int k = 0; k < nmicro; k++) {
					l.remat = remats[r];
					l.microbatches = micro[k];
					const char *why = mesh_problem(s, &l, micro[k]);
					if (why) {
						count_skip(s, why, s->nshapes);
						continue;
					}
					if (s->ngroups + 2 > gcap) {
						gcap = gcap ? 2 * gcap : 256;
						s->group_start =
							realloc(s->group_start, sizeof(int) * (size_t)gcap);
					}
					l.group = s->ngroups;
					s->group_start[s->ngroups++] = s->nlayouts;
					for (int sh = 0; sh < s->nshapes; sh++) {
						l.shape = sh;
						add_layout(s, &cap, &l);
					}
				}
		}
	}
	free(fi.out);
	free(fd.out);
	if (!s->group_start)
		s->group_start = malloc(sizeof(int));
	s->group_start[s->ngroups] = s->nlayouts;
	s->results = calloc((size_t)s->nlayouts + 1, sizeof *s->results);
	return 0;
}

/* ---- Evaluation --------------------------------------------------------- */

void sweep_mesh_spec(const SweepLayout *l, int dcn, char *buf, size_t n)
{
	size_t used = 0;
	buf[0] = 0;
	for (int a = 0; a < AX_COUNT; a++) {
		int v = dcn ? l->dcn[a] : l->ici[a];
		if (v <= 1)
			continue;
		int w = snprintf(buf + used, n - used, "%s%s=%d", used ? "," : "", sweep_axis_names[a], v);
		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
	}
	if (!dcn && !used)
		snprintf(buf, n, "data=1");
}

void sweep_shape_string(const Sweep *s, int shape, char *buf, size_t n)
{
	const int *sh = s->shapes[shape];
	if (s->shape_ndims == 2)
		snprintf(buf, n, "%dx%d", sh[0], sh[1]);
	else
		snprintf(buf, n, "%dx%dx%d", sh[0], sh[1], sh[2]);
}

void sweep_layout_options(const Sweep *s, const SweepLayout *l, EstimateOptions *o)
{
	*o = s->spec.base;
	Mesh *m = &o->c.mesh;
	memset(m, 0, sizeof *m);
	/* as --ici then --dcn would give it: the ICI axes in order, then the
	 * axes that only span slices */
	for (int pass = 0; pass < 2; pass++)
		for (int a = 0; a < AX_COUNT; a++) {
			int in_ici = l->ici[a] > 1;
			if ((pass == 0 && in_ici) || (pass == 1 && !in_ici && l->dcn[a] > 1))
				m->axes[m->naxes++] = (MeshAxis){sweep_axis_names[a], l->ici[a], l->dcn[a]};
		}
	if (m->naxes == 0)
		m->axes[m->naxes++] = (MeshAxis){"data", 1, 1};
	memcpy(o->slice, s->shapes[l->shape], sizeof o->slice);
	o->slice_ndims = s->shape_ndims;
	o->nslices = s->spec.slices;
	o->c.train.remat = l->remat;
	o->c.microbatches = l->microbatches;
	o->trace = NULL;
	o->brief = 1; /* a sweep reports neither the time split nor the overflow's items */
}

static void fill_result(SweepResult *r, const Estimate *e)
{
	r->status = SWEEP_OK;
	r->step_time_s = e->step_time_s;
	r->tokens_per_s = e->tokens_per_s;
	r->mfu = e->mfu;
	r->hfu = e->hfu;
	r->mem_bytes = e->mem.peak_bytes;
	r->hbm_bytes = e->mem.hbm_bytes;
	r->fits = e->mem.fits;
}

static void fail_result(SweepResult *r, const Diag *d)
{
	r->status = SWEEP_FAILED;
	const char *m = strstr(d->msg, "error: ");
	const char *src = m ? m + 7 : d->msg;
	size_t n = strlen(src);
	if (n >= sizeof r->error)
		n = sizeof r->error - 1;
	memcpy(r->error, src, n);
	r->error[n] = 0;
}

/* variants 0 .. SWEEP_MAX_DEPTHS - 1: Sweep.depth[v] */
enum { FULL_DEPTH = SWEEP_MAX_DEPTHS, NVARIANTS = SWEEP_MAX_DEPTHS + 1 };

/* The options of a layout at depth variant v. */
static void depth_options(const Sweep *s, const SweepLayout *l, int v, EstimateOptions *o)
{
	sweep_layout_options(s, l, o);
	if (v == FULL_DEPTH)
		return;
	ModelConfig *m = &o->c.model;
	if (m->dec_layers)
		m->dec_layers = s->depth[v];
	if (m->enc_layers)
		m->enc_layers = s->depth[v];
}

/* 1 if x0, x1, x2 (at equally spaced depths) lie on a line (to rounding:
 * a layer adds the same work to the step however deep it is). */
static int linear3(double x0, double x1, double x2)
{
	return fabs((x2 - x1) - (x1 - x0)) <= 1e-6 * fabs(x1);
}

/* The most one more layer's buffers that outlive it can add to the bytes
 * live at a point of phase ph (0 the forward pass, 1 the rest), from the
 * estimates x at depth d and y at depth d + 1: its parameters and saved
 * activations, with the temporaries that live as long (far_temps: values
 * gathered or recomputed well before the layer that reads them, such as
 * T5's encoder output gathered for each decoder layer in the forward pass,
 * or remat minimal's residual stream, recomputed at the start of the
 * backward and read layer by layer); after the forward pass, those until
 * its backward reads them and its weight gradients from then on, so the
 * larger of the two. Of the gradients, only those the update reads count:
 * a gradient a collective reduces is freed within the schedule's window of
 * layers, so at any point as many of them are live whatever the depth.
 * With two stacks (an encoder and a decoder), one more depth adds a layer
 * to each, and during the decoder's backward the new encoder layer still
 * keeps its activations while the new decoder layer already keeps its
 * gradients: both count. (Without the temporaries and the two stacks,
 * this bound was up to 8% below the full-depth peak on T5-large over 32
 * chips.) */
static double lasting_growth(const Estimate *x, const Estimate *y, int ph, int two_stacks,
                             int far_after)
{
	double g[MEMCAT_COUNT];
	for (int c = 0; c < MEMCAT_COUNT; c++)
		g[c] = y->mem.total[c] - x->mem.total[c];
	double keep = g[MEMCAT_ACTIVATIONS] + (y->mem.far_temps[0] - x->mem.far_temps[0]);
	if (ph && far_after) /* born after the forward pass: only live after it */
		keep += y->mem.far_temps[1] - x->mem.far_temps[1];
	double grad = y->mem.to_update[MEMCAT_GRADIENTS] - x->mem.to_update[MEMCAT_GRADIENTS];
	if (ph && two_stacks)
		keep += grad;
	else if (ph && grad > keep)
		keep = grad;
	return g[MEMCAT_WEIGHTS] + g[MEMCAT_OPT_STATE] + g[MEMCAT_INPUTS] + keep;
}

/* The result of a layout from the estimates at the small depths k, k + 1
 * and k + 2: 0, or -1 when they do not grow linearly (deeper ones may),
 * -2 when they do but the memory bounds cannot say whether it fits, and
 * -3 when the bounds do not hold at these depths (the lasting growth
 * differs from one depth to the next: the first layers are not alike yet;
 * deeper ones may). On -2 or -3 the caller may give the full-depth memory
 * plan (full, else NULL), which decides.
 *
 * Step time and FLOPs: each layer adds the same work, so once the small
 * depths lie on a line (linear3) they are extended along it. The FLOPs
 * are then exact; the step time is exact while every layer overlaps its
 * compute and collectives alike. A layout whose collectives outrun its
 * compute can build a backlog that, past some depth, delays one more
 * collective: PaLM 62B over 1024 chips, fsdp=32 tensor=32, runs 50
 * layers on the line and 51 and more 11 ms above it. Such layouts are off
 * by a little: at most 0.1% on that space (194 of its 708 extended
 * layouts), none of 50 on PaLM 8B over 8 chips; --exact evaluates
 * every layout at full depth.
 *
 * Peak memory is the largest, over the program's points, of the bytes
 * live there. One more layer adds to a point of the forward pass (of the
 * rest) at most lasting_growth(.., 0, ..) (lasting_growth(.., 1, ..)):
 * its other temporaries are dead outside it. So each phase's full-depth peak
 * lies between two lines through its peak at depth[2]: the observed slope
 * (a lower bound: the same point, one layer further down) and the lasting
 * slope (an upper bound). When the largest lower bound is the largest
 * upper bound, the peak is known exactly (extrapolated = 1): the peak's
 * point holds everything that grows. Otherwise (PaLM 62B with remat full
 * at small depths: the logits temporaries peak the forward pass, while the
 * backward's gradients overtake from 16 layers on) the layout fits for
 * certain when the largest upper bound fits (extrapolated = 3, mem_bytes
 * that bound), does not fit when a lower bound already exceeds HBM
 * (extrapolated = 2, mem_bytes that bound), and otherwise is compiled at
 * full depth for its memory plan (extrapolated = 1, its peak; the program
 * is not simulated: the step time still extends). The lower bounds need
 * no assumption about which point peaks: the peak of the program (or of a
 * phase) is the largest of functions linear in the depth, hence convex,
 * and lies above its extension from two depths. */
static int extrapolate(const Sweep *s, const EstimateOptions *o, const Estimate *e, int k,
                       const MemPlan *full, SweepResult *r)
{
	e += k; /* the window: depths k, k + 1, k + 2 */
	if (!linear3(e[0].step_time_s, e[1].step_time_s, e[2].step_time_s) ||
	    !linear3(e[0].mem.peak_bytes, e[1].mem.peak_bytes, e[2].mem.peak_bytes))
		return -1;
	const ModelConfig *m = &o->c.model;
	int L = m->dec_layers ? m->dec_layers : m->enc_layers;
	double f = (double)(L - s->depth[k + 2]) / (s->depth[k + 2] - s->depth[k + 1]);
#define EXTEND(field) (e[2].field + f * (e[2].field - e[1].field))
	double peak = EXTEND(mem.peak_bytes), lo = 0, hi = 0;
	int bounded = 1;
	int two = m->enc_layers && m->dec_layers;
	for (int ph = 0; ph < 2; ph++) {
		const double *p0 = e[0].mem.phase_peak, *p1 = e[1].mem.phase_peak,
		             *p2 = e[2].mem.phase_peak;
		double g1 = lasting_growth(&e[0], &e[1], ph, two, 1),
		       g2 = lasting_growth(&e[1], &e[2], ph, two, 1);
		bounded &= linear3(p0[ph], p1[ph], p2[ph]) && fabs(g2 - g1) <= 1e-9 * g2;
		lo = fmax(lo, p2[ph] + f * (p2[ph] - p1[ph]));
		if (ph == 0) {
			hi = fmax(hi, p2[0] + f * g2);
			continue;
		}
		/* after the forward pass, a point where none of the layers' far
		 * temporaries born there is live grows without them (those of no
		 * layer still count): remat minimal's peak, the logits'
		 * temporaries before the residual stream is recomputed, stays
		 * exact */
		double bare = lasting_growth(&e[1], &e[2], 1, two, 0) +
		              fmax(0, fmax(e[2].mem.far_untagged - e[1].mem.far_untagged,
		                           e[1].mem.far_untagged - e[0].mem.far_untagged));
		hi = fmax(hi, e[2].mem.far_split[0] + f * bare);
		hi = fmax(hi, e[2].mem.far_split[1] + f * g2);
	}
	/* a lower bound above the upper one: the growth bound does not hold
	 * for this program, so it bounds nothing */
	bounded &= lo <= hi * (1 + 1e-9);
	double hbm = e[2].mem.hbm_bytes;
	int how;
	if (full) /* the full-depth memory plan, compiled because the bounds could not decide */
		how = 1, peak = full->peak_bytes;
	else if (bounded && hi - lo <= 1e-9 * hi)
		how = 1, peak = hi;
	else if (bounded && hi <= hbm)
		how = 3, peak = hi;
	else if ((peak = bounded ? fmax(lo, peak) : peak) > hbm)
		how = 2;
	else if (!bounded)
		return -3;
	else
		return -2;
	memset(r, 0, sizeof *r);
	r->status = SWEEP_OK;
	r->extrapolated = how;
	r->step_time_s = EXTEND(step_time_s);
	r->tokens_per_s = e[2].tokens_per_step / r->step_time_s;
	double denom = r->step_time_s * e[2].chips * o->c.chip.peak_flops;
	r->mfu = EXTEND(model_flops_per_step) / denom;
	r->hfu = EXTEND(hardware_flops_per_step) / denom;
	r->mem_bytes = peak;
	r->hbm_bytes = hbm;
	r->fits = peak <= hbm;
#undef EXTEND
	return 0;
}

/* The training steps of the small depths, shared by every mesh: one per
 * depth variant, remat policy and microbatch count, built on first use and
 * only read after. The full-depth step is shared too where only its memory
 * plan is wanted (full_memory): a few remat policies and microbatch counts
 * serve every such group. The first thread to want a step builds it
 * holding the step's own lock, so other threads wait only for the steps
 * they need, not for every build. */
typedef struct SharedStep {
	int v, microbatches;
	RematPolicy remat;
	int rc; /* compile_step's */
	CompiledStep step;
	Diag d;
	omp_lock_t built; /* held while the step is built */
} SharedStep;

enum { NREMAT = 3, SAVED_CAP = NREMAT * SWEEP_MAX_LIST };

typedef struct SavedEntry {
	RematPolicy remat;
	int microbatches;
	double bytes;
} SavedEntry;

typedef struct StepCache {
	SharedStep *e; /* (cap) made once, so entries handed out stay put */
	int n, cap;
	SavedEntry *saved; /* (SAVED_CAP) full_saved_bytes's */
	int nsaved;
} StepCache;

static const SharedStep *shared_step(StepCache *sc, int v, const EstimateOptions *o)
{
	SharedStep *found = NULL;
	int build = 0;
#pragma omp critical(sweep_steps)
	{
		for (int i = 0; i < sc->n && !found; i++)
			if (sc->e[i].v == v && sc->e[i].remat == o->c.train.remat &&
			    sc->e[i].microbatches == o->c.microbatches)
				found = &sc->e[i];
		if (!found && sc->n < sc->cap) {
			found = &sc->e[sc->n++];
			memset(found, 0, sizeof *found);
			found->v = v;
			found->remat = o->c.train.remat;
			found->microbatches = o->c.microbatches;
			omp_init_lock(&found->built);
			omp_set_lock(&found->built);
			build = 1;
		}
	}
	if (!found)
		return NULL;
	if (build) {
		diag_init(&found->d);
		found->rc = compile_step(&o->c, &found->step, &found->d);
	} else {
		omp_set_lock(&found->built); /* until its builder is done */
	}
	omp_unset_lock(&found->built);
	return found;
}

/* The bytes of the global step's values that the forward pass of a
 * repeated layer makes and the rest reads (memplan's activations, before
 * sharding): each buffer once, a reshape counted as its operand's buffer.
 * Left out: what the compiler may regenerate in each kernel that reads it
 * instead of keeping it (broadcast, iota, one_hot), and what lies outside
 * the layers (embedding, final norm, logits and loss), whose buffers the
 * fused loss and its gradient need not keep. Measured on PaLM 62B over
 * fsdp=1024: per layer this is exactly memplan's activations under every
 * remat policy. */
static double saved_bytes(const Module *step)
{
	ValueId fe = program_forward_end(step);
	int n = step->ninsts;
	ValueId *last = malloc(sizeof *last * (size_t)(n > 0 ? n : 1));
	char *seen = calloc((size_t)(n > 0 ? n : 1), 1);
	if (!last || !seen)
		ir_die("out of memory");
	for (int v = 0; v < n; v++)
		last[v] = -1;
	for (int v = 0; v < n; v++)
		for (int k = 0; k < step->insts[v].nargs; k++)
			last[step->insts[v].args[k]] = v;
	for (int i = 0; i < step->noutputs; i++)
		last[step->outputs[i]] = n;
	double b = 0;
	for (ValueId v = 0; v < fe && v < n; v++) {
		if (last[v] <= fe)
			continue;
		ValueId r = v;
		while (step->insts[r].op == OP_RESHAPE && step->insts[r].nargs == 1)
			r = step->insts[r].args[0];
		const Inst *in = &step->insts[r];
		if (seen[r] || in->op == OP_PARAMETER || in->op == OP_CONSTANT ||
		    in->op == OP_BROADCAST || in->op == OP_IOTA || in->op == OP_ONE_HOT ||
		    ir_attr_int(in, "layer", -1) < 0)
			continue;
		seen[r] = 1;
		b += (double)type_bytes(&in->type);
	}
	free(last);
	free(seen);
	return b;
}

/* saved_bytes of the full-depth step of o's remat policy and microbatch
 * count: from the small depths' steps (shared with the lowering) when
 * their counts lie on a line (the layers repeat, so that is exact), else
 * from the full-depth step (--exact, shallow models). 0 when the step
 * cannot be built (the lowering then reports why). Made once per policy
 * and count, under a lock. */
static double full_saved_bytes(const Sweep *s, StepCache *sc, const EstimateOptions *o)
{
	double found = -1;
#pragma omp critical(sweep_saved)
	{
		for (int i = 0; i < sc->nsaved && found < 0; i++)
			if (sc->saved[i].remat == o->c.train.remat &&
			    sc->saved[i].microbatches == o->c.microbatches)
				found = sc->saved[i].bytes;
		if (found < 0) {
			double x[3] = {0, 0, 0};
			int ok = s->ndepths > 0;
			for (int v = 0; v < 3 && ok; v++) {
				EstimateOptions ov = *o; /* at depth variant v */
				if (ov.c.model.dec_layers)
					ov.c.model.dec_layers = s->depth[v];
				if (ov.c.model.enc_layers)
					ov.c.model.enc_layers = s->depth[v];
				const SharedStep *st = shared_step(sc, v, &ov);
				ok = st && !st->rc;
				if (ok)
					x[v] = saved_bytes(st->step.step);
			}
			const ModelConfig *m = &o->c.model;
			int L = m->dec_layers ? m->dec_layers : m->enc_layers;
			if (ok && linear3(x[0], x[1], x[2])) {
				found = x[2] + (double)(L - s->depth[2]) / (s->depth[2] - s->depth[1]) *
				                       (x[2] - x[1]);
			} else {
				CompiledStep full;
				memset(&full, 0, sizeof full);
				Diag d;
				diag_init(&d);
				found = compile_step(&o->c, &full, &d) ? 0 : saved_bytes(full.step);
				compiled_step_free(&full);
			}
			if (sc->nsaved < SAVED_CAP)
				sc->saved[sc->nsaved++] = (SavedEntry){o->c.train.remat, o->c.microbatches,
				                                       found};
		}
	}
	return found;
}

/* One thread's pods, one per slice shape, made when first needed. */
typedef struct ThreadPods {
	Pod pod[SWEEP_MAX_SHAPES];
	int state[SWEEP_MAX_SHAPES]; /* 0 not made, 1 made, -1 failed */
	Diag err[SWEEP_MAX_SHAPES];
} ThreadPods;

/* A group's compiles, one per depth variant, each made on first use, with
 * its program's engine costs (made on its first simulation, shared by the
 * slice shapes). */
typedef struct GroupCompiles {
	Compiled c[NVARIANTS];
	int compiled[NVARIANTS]; /* 0 not yet, 1 ok, -1 failed */
	Diag cd[NVARIANTS];
	EngineCosts costs[NVARIANTS];
	int costed[NVARIANTS];   /* 0 not yet, 1 made */
	/* collective times on each slice shape, shared by the variants' runs
	 * (one mesh, so one placement per shape) */
	NetMemoTable net[SWEEP_MAX_SHAPES];
} GroupCompiles;

/* The group's compile of variant v, made on first use (from the shared
 * small-depth step, or at full depth whole, or from the shared full-depth
 * step when share_full). */
static int ensure_compiled(StepCache *sc, const EstimateOptions *o, int v, GroupCompiles *g,
                           int share_full, Diag *d)
{
	Compiled *c = g->c;
	int *compiled = g->compiled;
	Diag *cd = g->cd;
	if (compiled[v] == 0) {
		const SharedStep *st = v == FULL_DEPTH && !share_full ? NULL : shared_step(sc, v, o);
		if (!st)
			compiled[v] = compile_model(&o->c, &c[v], &cd[v]) ? -1 : 1;
		else if (st->rc)
			compiled[v] = -1, cd[v] = st->d;
		else
			compiled[v] = compile_lower(&o->c, &st->step, &c[v], &cd[v]) ? -1 : 1;
	}
	if (compiled[v] < 0) {
		*d = cd[v];
		return -1;
	}
	return 0;
}

/* Evaluates one layout at the depth variants vs[0..nv): estimate_run each
 * time (brute), or the group's compile of that variant (made on first use)
 * on the thread's pod. The checks run in estimate_run's order, so both
 * give the same errors. e is indexed by variant. */
static int eval_layout(const Sweep *s, StepCache *sc, const SweepLayout *l, ThreadPods *tp,
                       GroupCompiles *g, const int *vs, int nv, Estimate *e, Diag *d)
{
	for (int k = 0; k < nv; k++) {
		int v = vs[k];
		EstimateOptions o;
		depth_options(s, l, v, &o);
		if (s->spec.brute) {
			if (estimate_run(&o, &e[v], d))
				return -1;
			continue;
		}
		int sh = l->shape;
		if (tp->state[sh] == 0) {
			diag_init(&tp->err[sh]);
			tp->state[sh] = estimate_pod_init(&o, &tp->pod[sh], &tp->err[sh]) ? -1 : 1;
		}
		if (tp->state[sh] < 0) {
			*d = tp->err[sh];
			return -1;
		}
		MeshPlacement mp;
		if (pod_place_mesh(&tp->pod[sh], &o.c.mesh, o.place, &mp, d))
			return -1;
		if (ensure_compiled(sc, &o, v, g, 0, d))
			return -1;
		if (!g->costed[v]) {
			if (engine_costs(g->c[v].program, &o.c.chip, &g->costs[v], d))
				return -1;
			g->costed[v] = 1;
		}
		if (estimate_simulate(&o, &g->c[v], &g->costs[v], &g->net[sh], &tp->pod[sh], &e[v], d))
			return -1;
	}
	return 0;
}

/* The memory plan of a layout at full depth, without simulating it: the
 * group's full-depth compile, lowered from the shared full-depth step
 * (estimate_run's, brute). */
static int full_memory(const Sweep *s, StepCache *sc, const SweepLayout *l, GroupCompiles *g,
                       MemPlan *mem, Diag *d)
{
	EstimateOptions o;
	depth_options(s, l, FULL_DEPTH, &o);
	if (s->spec.brute) {
		Estimate e;
		if (estimate_run(&o, &e, d))
			return -1;
		*mem = e.mem;
		return 0;
	}
	if (ensure_compiled(sc, &o, FULL_DEPTH, g, 1, d))
		return -1;
	*mem = g->c[FULL_DEPTH].mem;
	return 0;
}

static void eval_group(const Sweep *s, StepCache *sc, int g, ThreadPods *tp, SweepResult *out)
{
	int first = s->group_start[g], last = s->group_start[g + 1];
	GroupCompiles *gc = calloc(1, sizeof *gc);
	if (!gc)
		ir_die("out of memory");
	for (int v = 0; v < NVARIANTS; v++)
		diag_init(&gc->cd[v]);
	static const int small[3] = {0, 1, 2}, full[1] = {FULL_DEPTH};
	for (int i = first; i < last; i++) {
		const SweepLayout *l = &s->layouts[i];
		SweepResult *r = &out[i - first];
		memset(r, 0, sizeof *r);
		if (s->results[i].status != SWEEP_PENDING) {
			*r = s->results[i];
			continue;
		}
		EstimateOptions o;
		sweep_layout_options(s, l, &o);
		double bound = sweep_weight_bound(s, l);
		if (!s->spec.brute && bound <= o.c.chip.hbm_bytes)
			bound += sweep_activation_bound(full_saved_bytes(s, sc, &o), s->spec.chips,
			                                o.c.chip.cmem_bytes);
		if (!s->spec.brute && bound > o.c.chip.hbm_bytes) {
			r->status = SWEEP_PRUNED;
			r->mem_bytes = bound;
			r->hbm_bytes = o.c.chip.hbm_bytes;
			continue;
		}
		Diag d;
		diag_init(&d);
		Estimate e[NVARIANTS];
		if (s->ndepths && !eval_layout(s, sc, l, tp, gc, small, 3, e, &d)) {
			/* slide the window until a depth decides or none is left;
			 * undecided: the first window whose step time extends but
			 * whose memory the bounds leave open */
			int k = 0, how, undecided = -1;
			while ((how = extrapolate(s, &o, e, k, NULL, r)) == -1 || how == -3) {
				if (how == -3 && undecided < 0)
					undecided = k;
				int next = k + 3;
				if (next >= s->ndepths || eval_layout(s, sc, l, tp, gc, &next, 1, e, &d))
					break;
				k++;
			}
			if (r->status == SWEEP_OK)
				continue;
			if (how == -2)
				undecided = k;
			/* the full-depth compile's memory plan decides, and the
			 * full-depth program need not be simulated */
			MemPlan mem;
			if (undecided >= 0 && !full_memory(s, sc, l, gc, &mem, &d) &&
			    !extrapolate(s, &o, e, undecided, &mem, r))
				continue;
		}
		diag_init(&d);
		if (eval_layout(s, sc, l, tp, gc, full, 1, e, &d))
			fail_result(r, &d);
		else
			fill_result(r, &e[FULL_DEPTH]);
	}
	for (int v = 0; v < NVARIANTS; v++) {
		compiled_free(&gc->c[v]);
		engine_costs_free(&gc->costs[v]);
	}
	free(gc);
}

void sweep_evaluate(Sweep *s, SweepDoneFn fn, void *ctx)
{
	int done = 0;
	for (int i = 0; i < s->nlayouts; i++)
		done += s->results[i].status != SWEEP_PENDING;
	StepCache sc = {NULL, 0, NVARIANTS * NREMAT * SWEEP_MAX_LIST, NULL, 0};
	sc.e = calloc((size_t)sc.cap, sizeof *sc.e);
	sc.saved = calloc(SAVED_CAP, sizeof *sc.saved);
	if (!sc.e || !sc.saved)
		ir_die("out of memory");
#pragma omp parallel
	{
		ThreadPods *tp = calloc(1, sizeof *tp);
		SweepResult *out = malloc(sizeof *out * (size_t)(s->nshapes + 1));
#pragma omp for schedule(dynamic, 1)
		for (int g = 0; g < s->ngroups; g++) {
			int first = s->group_start[g], last = s->group_start[g + 1], pending = 0;
			for (int i = first; i < last; i++)
				pending |= s->results[i].status == SWEEP_PENDING;
			if (!pending)
				continue;
			eval_group(s, &sc, g, tp, out);
#pragma omp critical(sweep_done)
			for (int i = first; i < last; i++) {
				if (s->results[i].status != SWEEP_PENDING)
					continue;
				s->results[i] = out[i - first];
				s->full_depth += s->ndepths && s->results[i].status == SWEEP_OK &&
				                 !s->results[i].extrapolated;
				done++;
				if (fn)
					fn(ctx, s, i, done);
			}
		}
		for (int k = 0; k < SWEEP_MAX_SHAPES; k++)
			if (tp->state[k] > 0)
				pod_free(&tp->pod[k]);
		free(tp);
		free(out);
	}
	for (int i = 0; i < sc.n; i++) {
		compiled_step_free(&sc.e[i].step);
		omp_destroy_lock(&sc.e[i].built);
	}
	free(sc.e);
	free(sc.saved);
}

/* ---- Ranking ------------------------------------------------------------ */

typedef struct RankKey {
	int cls;    /* 0 fits, 1 evaluated and does not fit, 2 pruned */
	double key; /* step time (classes 0, 1), memory bound (2) */
	int layout; /* ties: enumeration order */
} RankKey;

static int rank_cmp(const void *a, const void *b)
{
	const RankKey *x = a, *y = b;
	if (x->cls != y->cls)
		return x->cls - y->cls;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->layout > y->layout) - (x->layout < y->layout);
}

int sweep_rank(const Sweep *s, int **order)
{
	RankKey *k = malloc(sizeof *k * (size_t)(s->nlayouts + 1));
	int n = 0;
	for (int i = 0; i < s->nlayouts; i++) {
		const SweepResult *r = &s->results[i];
		if (r->status == SWEEP_OK)
			k[n++] = (RankKey){r->fits ? 0 : 1, r->step_time_s, i};
		else if (r->status == SWEEP_PRUNED)
			k[n++] = (RankKey){2, r->mem_bytes, i};
	}
	qsort(k, (size_t)n, sizeof *k, rank_cmp);
	int *o = malloc(sizeof(int) * (size_t)(n + 1));
	for (int i = 0; i < n; i++)
		o[i] = k[i].layout;
	free(k);
	*order = o;
	return n;
}

/* ---- CSV ---------------------------------------------------------------- */

static const char *const status_names[] = {
	[SWEEP_PENDING] = "pending",
	[SWEEP_OK] = "ok",
	[SWEEP_PRUNED] = "pruned",
	[SWEEP_FAILED] = "failed",
};

/* What the rows of a CSV depend on besides the layout, so that --resume
 * takes no row from another sweep. */
static void sweep_signature(const Sweep *s, char *buf, size_t n)
{
	const SweepSpec *sp = &s->spec;
	const CompileOptions *c = &sp->base.c;
	char how[48] = "exact";
	if (s->ndepths) /* the depths a window may use change the results */
		snprintf(how, sizeof how, "extrapolate=%d-%d", s->depth[0], s->depth[s->ndepths - 1]);
	snprintf(buf, n, "%s/%s/%dx%d/batch=%lld/seq=%lld/%s/%s/%s/%s", c->model.name, c->chip.name,
	         sp->slices, sp->chips / (sp->slices > 0 ? sp->slices : 1), (long long)c->batch,
	         (long long)(c->seq ? c->seq : c->model.seq_len), optimizer_name(c->train.optimizer),
	         dtype_name(c->dtype), c->sched.overlap ? "overlap" : "no-overlap", how);
}

void sweep_csv_header(FILE *f)
{
	for (int a = 0; a < AX_COUNT; a++)
		fprintf(f, "ici_%s,", sweep_axis_names[a]);
	fprintf(f, "dcn_data,dcn_fsdp,slice,remat,microbatches,status,step_time_s,tokens_per_s,"
	           "mfu,hfu,memory_per_chip_bytes,hbm_bytes,fits,overflow_bytes,extrapolated,error,sweep\n");
}

void sweep_csv_row(FILE *f, const Sweep *s, int i)
{
	const SweepLayout *l = &s->layouts[i];
	const SweepResult *r = &s->results[i];
	char shape[64];
	sweep_shape_string(s, l->shape, shape, sizeof shape);
	for (int a = 0; a < AX_COUNT; a++)
		fprintf(f, "%d,", l->ici[a]);
	fprintf(f, "%d,%d,%s,%s,%d,%s,", l->dcn[AX_DATA], l->dcn[AX_FSDP], shape,
	        remat_policy_name(l->remat), l->microbatches, status_names[r->status]);
	if (r->status == SWEEP_OK)
		fprintf(f, "%.17g,%.17g,%.17g,%.17g,", r->step_time_s, r->tokens_per_s, r->mfu, r->hfu);
	else
		fprintf(f, ",,,,");
	if (r->status == SWEEP_FAILED)
		fprintf(f, ",,,,,\"");
	else
		fprintf(f, "%.17g,%.17g,%d,%.17g,%d,\"", r->mem_bytes, r->hbm_bytes, r->fits,
		        r->fits ? 0.0 : r->mem_bytes - r->hbm_bytes, r->extrapolated);
	for (const char *p = r->error; *p; p++) {
		if (*p == '"')
			fputc('"', f);
		if (*p != '\n')
			fputc(*p, f);
	}
	char sig[512];
	sweep_signature(s, sig, sizeof sig);
	fprintf(f, "\",%s\n", sig);
}

/* Splits one CSV line into fields (quotes as RFC 4180, no newlines inside
 * fields); fields point into line, which is modified. */
static int csv_split(char *line, char **fields, int max)
{
	int n = 0;
	char *p = line;
	for (;;) {
		if (n == max)
			return -1;
		if (*p == '"') {
			char *w = ++p;
			fields[n++] = w;
			for (;;) {
				if (!*p)
					return -1;
				if (*p == '"' && p[1] == '"') {
					*w++ = '"';
					p += 2;
				} else if (*p == '"') {
					p++;
					break;
				} else {
					*w++ = *p++;
				}
			}
			*w = 0;
		} else {
			fields[n++] = p;
			while (*p && *p != ',')
				p++;
		}
		if (*p == ',') {
			*p++ = 0;
			continue;
		}
		if (*p)
			return -1;
		return n;
	}
}

static int parse_int_field(const char *f, int *out)
{
	char *end;
	long v = strtol(f, &end, 10);
	if (end == f || *end || v < 0 || v > 1 << 24)
		return -1;
	*out = (int)v;
	return 0;
}

/* A finite number, not negative (every metric of a row is). */
static int parse_num_field(const char *f, double *out)
{
	char *end;
	*out = strtod(f, &end);
	return end == f || *end || !isfinite(*out) || *out < 0 ? -1 : 0;
}

/* Appends a row (without its newline) to s->kept_rows. */
static void keep_row(Sweep *s, const char *row)
{
	size_t n = strlen(row);
	char *k = realloc(s->kept_rows, s->kept_len + n + 2);
	if (!k)
		ir_die("out of memory");
	memcpy(k + s->kept_len, row, n);
	k[s->kept_len + n] = '\n';
	k[s->kept_len + n + 1] = 0;
	s->kept_rows = k;
	s->kept_len += n + 1;
}

int sweep_csv_resume(Sweep *s, const char *text, const char *path, Diag *d)
{
	enum { NCOL = AX_COUNT + 17 };
	char sig[512];
	sweep_signature(s, sig, sizeof sig);
	char *buf = strdup(text);
	int matched = 0, lineno = 0, rc = -1;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		size_t len = strlen(line);
		if (len && line[len - 1] == '\r')
			line[len - 1] = 0;
		if (lineno == 1) {
			if (strncmp(line, "ici_data,", 9)) {
				diag_error(d, path, 1, 1, "not a podsim sweep CSV (no header line)");
				goto out;
			}
			continue;
		}
		char *row = strdup(line); /* csv_split cuts line up */
		if (!row)
			ir_die("out of memory");
		char *f[NCOL + 1];
		int nf = csv_split(line, f, NCOL + 1);
		SweepLayout l;
		memset(&l, 0, sizeof l);
		int bad = nf != NCOL;
		for (int a = 0; !bad && a < AX_COUNT; a++)
			bad |= parse_int_field(f[a], &l.ici[a]);
		for (int a = 0; a < AX_COUNT; a++)
			l.dcn[a] = 1;
		int remat = -1, st = -1;
		if (!bad) {
			bad |= parse_int_field(f[AX_COUNT], &l.dcn[AX_DATA]);
			bad |= parse_int_field(f[AX_COUNT + 1], &l.dcn[AX_FSDP]);
			bad |= parse_int_field(f[AX_COUNT + 4], &l.microbatches);
			remat = remat_policy_from_name(f[AX_COUNT + 3]);
			for (int k = SWEEP_OK; k <= SWEEP_FAILED; k++)
				if (!strcmp(f[AX_COUNT + 5], status_names[k]))
					st = k;
			bad |= remat < 0 || st < 0;
		}
		if (bad) {
			diag_error(d, path, lineno, 1, "malformed sweep row");
			free(row);
			goto out;
		}
		SweepResult r;
		memset(&r, 0, sizeof r);
		r.status = (SweepStatus)st;
		char **m = f + AX_COUNT + 6;
		if (st == SWEEP_OK)
			bad |= parse_num_field(m[0], &r.step_time_s) | parse_num_field(m[1], &r.tokens_per_s) |
			       parse_num_field(m[2], &r.mfu) | parse_num_field(m[3], &r.hfu);
		if (st != SWEEP_FAILED)
			bad |= parse_num_field(m[4], &r.mem_bytes) | parse_num_field(m[5], &r.hbm_bytes) |
			       parse_int_field(m[6], &r.fits) | parse_int_field(m[8], &r.extrapolated);
		snprintf(r.error, sizeof r.error, "%s", m[9]);
		bad |= r.fits > 1 || r.extrapolated > 3;
		if (bad) {
			diag_error(d, path, lineno, 1, "malformed sweep row");
			free(row);
			goto out;
		}
		if (strcmp(m[10], sig)) {
			diag_error(d, path, lineno, 1, "a row of another sweep (%s); this one is %s", m[10],
			           sig);
			free(row);
			goto out;
		}
		int found = 0;
		for (int i = 0; i < s->nlayouts && !found; i++) {
			const SweepLayout *x = &s->layouts[i];
			char shape[64];
			sweep_shape_string(s, x->shape, shape, sizeof shape);
			if (!memcmp(x->ici, l.ici, sizeof l.ici) && !memcmp(x->dcn, l.dcn, sizeof l.dcn) &&
			    x->remat == (RematPolicy)remat && x->microbatches == l.microbatches &&
			    !strcmp(shape, f[AX_COUNT + 2])) {
				if (s->results[i].status == SWEEP_PENDING)
					matched++;
				s->results[i] = r;
				found = 1;
			}
		}
		if (!found)
			keep_row(s, row);
		free(row);
	}
	rc = matched;
out:
	free(buf);
	return rc;
}

/* ---- JSON --------------------------------------------------------------- */

static json_t *layout_json(const Sweep *s, int i, int rank)
{
	const SweepLayout *l = &s->layouts[i];
	const SweepResult *r = &s->results[i];
	json_t *j = json_object();
	if (rank > 0)
		json_object_set_new(j, "rank", json_integer(rank));
	json_t *mesh = json_object();
	for (int a = 0; a < AX_COUNT; a++) {
		if (l->ici[a] * l->dcn[a] <= 1)
			continue;
		json_t *ax = json_object();
		json_object_set_new(ax, "ici", json_integer(l->ici[a]));
		json_object_set_new(ax, "dcn", json_integer(l->dcn[a]));
		json_object_set_new(mesh, sweep_axis_names[a], ax);
	}
	json_object_set_new(j, "mesh", mesh);
	char buf[128];
	sweep_mesh_spec(l, 0, buf, sizeof buf);
	json_object_set_new(j, "ici", json_string(buf));
	sweep_mesh_spec(l, 1, buf, sizeof buf);
	json_object_set_new(j, "dcn", json_string(buf));
	sweep_shape_string(s, l->shape, buf, sizeof buf);
	json_object_set_new(j, "slice", json_string(buf));
	json_object_set_new(j, "remat", json_string(remat_policy_name(l->remat)));
	json_object_set_new(j, "microbatches", json_integer(l->microbatches));
	json_object_set_new(j, "status", json_string(status_names[r->status]));
	if (r->status == SWEEP_OK) {
		json_object_set_new(j, "extrapolated", json_boolean(r->extrapolated != 0));
		json_object_set_new(j, "step_time_s", json_real(r->step_time_s));
		json_object_set_new(j, "tokens_per_s", json_real(r->tokens_per_s));
		json_object_set_new(j, "mfu", json_real(r->mfu));
		json_object_set_new(j, "hfu", json_real(r->hfu));
	}
	if (r->status != SWEEP_FAILED) {
		json_t *mem = json_object();
		json_object_set_new(mem, "per_chip_bytes", json_real(r->mem_bytes));
		json_object_set_new(mem, "hbm_bytes", json_real(r->hbm_bytes));
		json_object_set_new(mem, "fits", json_boolean(r->fits));
		json_object_set_new(mem, "overflow_bytes",
		                    json_real(r->fits ? 0 : r->mem_bytes - r->hbm_bytes));
		json_object_set_new(mem, "lower_bound",
		                    json_boolean(r->status == SWEEP_PRUNED || r->extrapolated == 2));
		json_object_set_new(mem, "upper_bound", json_boolean(r->extrapolated == 3));
		json_object_set_new(j, "memory", mem);
	} else {
		json_object_set_new(j, "error", json_string(r->error));
	}
	return j;
}

char *sweep_json(const Sweep *s, const int *order, int nranked)
{
	const SweepSpec *sp = &s->spec;
	json_t *j = json_object();
	json_object_set_new(j, "model", json_string(sp->base.c.model.name));
	json_object_set_new(j, "chip", json_string(sp->base.c.chip.name));
	json_object_set_new(j, "chips", json_integer(sp->chips));
	json_object_set_new(j, "slices", json_integer(sp->slices));
	json_object_set_new(j, "batch", json_integer(sp->base.c.batch));
	json_object_set_new(j, "seq", json_integer(sp->base.c.seq ? sp->base.c.seq
	                                                            : sp->base.c.model.seq_len));
	json_object_set_new(j, "optimizer", json_string(optimizer_name(sp->base.c.train.optimizer)));
	long counts[4] = {0}, fit = 0;
	for (int i = 0; i < s->nlayouts; i++) {
		counts[s->results[i].status]++;
		fit += s->results[i].status == SWEEP_OK && s->results[i].fits;
	}
	json_t *sum = json_object();
	json_object_set_new(sum, "layouts", json_integer(s->nlayouts + s->skipped));
	json_object_set_new(sum, "evaluated", json_integer(counts[SWEEP_OK]));
	json_object_set_new(sum, "fit", json_integer(fit));
	json_object_set_new(sum, "pruned", json_integer(counts[SWEEP_PRUNED]));
	json_object_set_new(sum, "failed", json_integer(counts[SWEEP_FAILED]));
	json_object_set_new(sum, "skipped", json_integer(s->skipped));
	json_t *why = json_object();
	for (int k = 0; k < s->nskips; k++)
		json_object_set_new(why, s->skips[k].reason, json_integer(s->skips[k].n));
	json_object_set_new(sum, "skipped_by_reason", why);
	long extra = 0;
	for (int i = 0; i < s->nlayouts; i++)
		extra += s->results[i].status == SWEEP_OK && s->results[i].extrapolated;
	json_object_set_new(sum, "extrapolated", json_integer(extra));
	json_t *depths = json_array();
	for (int k = 0; k < s->ndepths; k++)
		json_array_append_new(depths, json_integer(s->depth[k]));
	json_object_set_new(sum, "small_depths", depths);
	json_object_set_new(j, "summary", sum);
	json_t *arr = json_array();
	for (int k = 0; k < nranked; k++)
		json_array_append_new(arr, layout_json(s, order[k], k + 1));
	json_object_set_new(j, "layouts", arr);
	json_t *failed = json_array();
	for (int i = 0; i < s->nlayouts; i++)
		if (s->results[i].status == SWEEP_FAILED)
			json_array_append_new(failed, layout_json(s, i, 0));
	json_object_set_new(j, "failed", failed);
	char *out = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	json_decref(j);
	return out;
}
