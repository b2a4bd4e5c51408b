/*
 * estimate_run: compile -> pod -> engine -> report.
 *
 * The representative chip's scheduled program runs through the event engine
 * (sim/engine.c); each collective is priced by the network model on the
 * pod, with the mesh axes placed on physical torus axes and slices
 * (sim/net.h). The time split comes from one sweep over the engine's
 * timeline: at each instant the first busy category in the order MXU, VPU,
 * HBM-bound work, ICI, DCN, else idle. MFU and HFU follow the PaLM paper
 * (appendix B): model FLOPs are 6N + 12LHQT per token, hardware FLOPs are
 * those the program executes, recomputation included.
 */
#include "estimate.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/cost.h"
#include "sim/trace.h"

const char *const breakdown_names[BK_COUNT] = {
	[BK_MXU] = "mxu",
	[BK_VPU] = "vpu",
	[BK_HBM] = "hbm_bound",
	[BK_EXPOSED_ICI] = "exposed_ici",
	[BK_EXPOSED_DCN] = "exposed_dcn",
	[BK_IDLE] = "idle",
};

void estimate_options_default(EstimateOptions *o)
{
	memset(o, 0, sizeof *o);
	compile_options_default(&o->c);
	o->nslices = 1;
}

/* ---- Collectives priced by the network model ---------------------------- */

/* A run's collectives repeat a few shapes (each layer gathers and reduces
 * the same): their times, once priced, are kept for the rest of the run,
 * or in the caller's table for every run on the same pod and placement. */
typedef struct NetCtx {
	Pod *pod;
	MeshPlacement *mp;
	const Mesh *mesh;
	int failed;
	Diag diag;
	double total; /* s, all collectives */
	NetMemo *memo; /* (NET_MEMO) */
} NetCtx;

/* The collective a coll_start starts (its op attribute). */
static Op started_op(const Inst *in)
{
	static const Op colls[] = {OP_ALL_REDUCE, OP_ALL_GATHER, OP_REDUCE_SCATTER, OP_ALL_TO_ALL,
	                           OP_COLLECTIVE_PERMUTE};
	const char *name = ir_attr_str(in, "op", "all_reduce");
	for (size_t i = 0; i < sizeof colls / sizeof colls[0]; i++) {
		const char *c = op_name(colls[i]);
		if (c[0] == name[0] && !strcmp(name, c))
			return colls[i];
	}
	return (Op)op_from_name(name, strlen(name));
}

static double net_time(void *ctx, const Inst *in, const Module *m)
{
	NetCtx *n = ctx;
	Op op = in->op == OP_COLL_START ? started_op(in) : in->op;
	CollKind k;
	double bytes;
	const Type *arg = &m->insts[in->args[0]].type;
	switch (op) {
	case OP_ALL_REDUCE: k = COLL_ALL_REDUCE; bytes = (double)type_bytes(arg); break;
	case OP_ALL_GATHER: k = COLL_ALL_GATHER; bytes = (double)type_bytes(&in->type); break;
	case OP_REDUCE_SCATTER: k = COLL_REDUCE_SCATTER; bytes = (double)type_bytes(arg); break;
	case OP_ALL_TO_ALL: k = COLL_ALL_TO_ALL; bytes = (double)type_bytes(arg); break;
	case OP_COLLECTIVE_PERMUTE: k = COLL_PERMUTE; bytes = (double)type_bytes(arg); break;
	default: return 0;
	}
	uint32_t axes = 0;
	const Attr *a = ir_attr(in, "axes");
	for (int i = 0; a && i < a->n; i++) {
		int idx = mesh_axis_index(n->mesh, a->names[i], strlen(a->names[i]));
		if (idx >= 0)
			axes |= 1u << idx;
	}
	if (mesh_axes_size(n->mesh, axes) <= 1)
		return 0;
	unsigned h = ((unsigned)k * 31u + axes * 7u + (unsigned)(bytes / 64)) % NET_MEMO;
	NetMemo *e = NULL;
	for (int i = 0; i < NET_MEMO; i++) {
		NetMemo *x = &n->memo[(h + (unsigned)i) % NET_MEMO];
		if (!x->used) {
			e = x;
			break;
		}
		if (x->k == k && x->axes == axes && x->bytes == bytes) {
			n->total += x->time_s;
			return x->time_s;
		}
	}
	CollResult r;
	Diag d;
	diag_init(&d);
	if (pod_mesh_collective(n->pod, n->mp, k, axes, bytes, &r, &d)) {
		if (!n->failed)
			n->diag = d;
		n->failed = 1;
		return 0;
	}
	if (e)
		*e = (NetMemo){1, k, axes, bytes, r.time_s};
	n->total += r.time_s;
	return r.time_s;
}

/* ---- The time split ----------------------------------------------------- */

static int classify(const Chip *c, const Module *m, const Inst *in, Unit u)
{
	switch (u) {
	case UNIT_MXU:
		return BK_MXU;
	case UNIT_VPU: {
		double compute = cost_vpu_cycles(c, m, in) / c->clock_hz;
		double bytes[MEM_COUNT];
		cost_mem_bytes(m, in, bytes);
		double mem = 0;
		for (int s = 0; s < MEM_COUNT; s++)
			mem = fmax(mem, cost_mem_seconds(c, (MemSpace)s, bytes[s]));
		return mem > compute ? BK_HBM : BK_VPU;
	}
	case UNIT_DMA:
		return BK_HBM;
	case UNIT_ICI:
		return BK_EXPOSED_ICI;
	case UNIT_DCN:
		return BK_EXPOSED_DCN;
	default:
		return -1;
	}
}

/* Ops in flight, as a min-heap on their end times. */
typedef struct Flight {
	double end;
	int cat;
} Flight;

typedef struct Split {
	double t;            /* accounted up to here */
	int active[BK_COUNT];
	double *out;
	Flight *heap;
	int n;
} Split;

static void split_advance(Split *sp, double t)
{
	if (t <= sp->t)
		return;
	int cat = BK_IDLE;
	for (int k = 0; k < BK_IDLE; k++)
		if (sp->active[k] > 0) {
			cat = k;
			break;
		}
	sp->out[cat] += t - sp->t;
	sp->t = t;
}

static void split_pop(Split *sp)
{
	Flight top = sp->heap[0];
	split_advance(sp, top.end);
	sp->active[top.cat]--;
	Flight last = sp->heap[--sp->n];
	int i = 0;
	for (;;) {
		int k = 2 * i + 1;
		if (k >= sp->n)
			break;
		if (k + 1 < sp->n && sp->heap[k + 1].end < sp->heap[k].end)
			k++;
		if (sp->heap[k].end >= last.end)
			break;
		sp->heap[i] = sp->heap[k];
		i = k;
	}
	if (sp->n)
		sp->heap[i] = last;
}

static void split_push(Split *sp, double end, int cat)
{
	int i = sp->n++;
	while (i > 0 && sp->heap[(i - 1) / 2].end > end) {
		sp->heap[i] = sp->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	sp->heap[i] = (Flight){end, cat};
	sp->active[cat]++;
}

/* One pass over the timeline. The chip issues in order, so ops start in
 * program order; a heap of the ops in flight gives the ends in order. */
static void time_split(const Chip *c, const Module *m, const SimResult *r, double out[BK_COUNT])
{
	memset(out, 0, sizeof(double) * BK_COUNT);
	Split sp = {.out = out, .heap = malloc(sizeof(Flight) * (size_t)(r->nops + 1))};
	if (!sp.heap)
		ir_die("out of memory");
	for (int i = 0; i < r->nops; i++) {
		const SimOp *op = &r->ops[i];
		if (op->end <= op->start)
			continue;
		int cat = classify(c, m, &m->insts[i], op->unit);
		if (cat < 0)
			continue;
		assert(op->start >= sp.t); /* in-order issue */
		while (sp.n && sp.heap[0].end <= op->start)
			split_pop(&sp);
		split_advance(&sp, op->start);
		split_push(&sp, op->end, cat);
	}
	while (sp.n)
		split_pop(&sp);
	split_advance(&sp, r->seconds);
	free(sp.heap);
}

/* The part of the run spent on the optimizer update: from the end of the
 * last instruction that is not part of it to the end. */
static double optimizer_seconds(const Module *m, const SimResult *r)
{
	double last = 0;
	for (int i = 0; i < r->nops; i++)
		if (!ir_attr(&m->insts[i], "optimizer") && r->ops[i].end > last)
			last = r->ops[i].end;
	return r->seconds > last ? r->seconds - last : 0;
}

/* The most cubic slice of n chips the chip offers (each dim within its
 * maximum), for when --slice is not given. */
static int default_slice(const Chip *c, int64_t n, int shape[3])
{
	int nd = c->ici_ndims, best = -1;
	double best_score = 1e300;
	for (int x = 1; x <= c->max_slice[0]; x++) {
		if (n % x)
			continue;
		for (int y = x; y <= (nd > 1 ? c->max_slice[1] : 1); y++) {
			if ((n / x) % y)
				continue;
			int64_t z = n / x / y;
			if (z < y && nd == 3)
				continue;
			if ((nd == 2 && z != 1) || z > (nd == 3 ? c->max_slice[2] : 1))
				continue;
			double score = (double)(nd == 3 ? z : y) / x;
			if (score < best_score) {
				best_score = score;
				shape[0] = x;
				shape[1] = y;
				shape[2] = (int)z;
				best = nd;
			}
		}
	}
	return best;
}

int estimate_pod_init(const EstimateOptions *o, Pod *pod, Diag *d)
{
	const Chip *chip = &o->c.chip;
	int64_t ici = 1, dcn = 1;
	for (int i = 0; i < o->c.mesh.naxes; i++) {
		ici *= o->c.mesh.axes[i].ici;
		dcn *= o->c.mesh.axes[i].dcn;
	}
	int shape[3] = {1, 1, 1}, nd = o->slice_ndims;
	if (nd) {
		memcpy(shape, o->slice, sizeof shape);
	} else if ((nd = default_slice(chip, ici, shape)) < 0) {
		diag_error(d, NULL, 0, 0, "no %s slice has %lld chips (the --ici sizes' product)",
		           chip->name, (long long)ici);
		return -1;
	}
	int64_t slice_chips = (int64_t)shape[0] * shape[1] * shape[2];
	if (ici != slice_chips) {
		diag_error(d, NULL, 0, 0,
		           "--ici sizes multiply to %lld chips, the %dx%dx%d slice has %lld",
		           (long long)ici, shape[0], shape[1], shape[2], (long long)slice_chips);
		return -1;
	}
	if (dcn != o->nslices) {
		diag_error(d, NULL, 0, 0, "--dcn sizes multiply to %lld, but --slices is %d",
		           (long long)dcn, o->nslices);
		return -1;
	}
	return pod_init(pod, chip, shape, nd, o->nslices, o->twisted, d);
}

int estimate_simulate(const EstimateOptions *o, const Compiled *c, const EngineCosts *costs,
                      NetMemoTable *memo, Pod *pod, Estimate *e, Diag *d)
{
	memset(e, 0, sizeof *e);
	const Chip *chip = &o->c.chip;
	int64_t ici = 1, dcn = 1;
	for (int i = 0; i < o->c.mesh.naxes; i++) {
		ici *= o->c.mesh.axes[i].ici;
		dcn *= o->c.mesh.axes[i].dcn;
	}
	MeshPlacement mp;
	SimResult r;
	memset(&r, 0, sizeof r);
	int rc = -1;
	if (pod_place_mesh(pod, &o->c.mesh, o->place, &mp, d))
		goto out;
	pod_describe(pod, e->pod, sizeof e->pod);
	mesh_placement_describe(pod, &mp, e->placement, sizeof e->placement);
	NetMemoTable own;
	if (!memo) {
		memset(&own, 0, sizeof own);
		memo = &own;
	}
	NetCtx net = {.pod = pod, .mp = &mp, .mesh = &o->c.mesh, .memo = memo->e};
	EngineOptions eo = {.collective_time = net_time, .ctx = &net, .costs = costs};
	if (engine_run(c->program, chip, &eo, &r, d))
		goto out;
	if (net.failed) {
		*d = net.diag;
		goto out;
	}
	int k = o->c.microbatches;
	/* with one microbatch the whole run is the step */
	double t_opt = k > 1 ? optimizer_seconds(c->program, &r) : 0;
	e->step_time_s = k * (r.seconds - t_opt) + t_opt;
	e->chips = (int)(ici * dcn);
	e->tokens_per_step = (double)o->c.batch * (double)c->seq;
	if (o->c.model.family == FAMILY_ENCODER || o->c.model.family == FAMILY_MIXER)
		e->tokens_per_step = (double)o->c.batch * (double)model_tokens_per_image(&o->c.model);
	e->tokens_per_s = e->tokens_per_step / e->step_time_s;
	e->params = c->params.total;
	/* Model FLOPs: the matmuls of forward and backward as the graph has them,
	 * recomputation excluded; for a dense decoder that is exactly PaLM's
	 * 6N + 12LHQT per token (tested in test_train), and it stays right for
	 * encoder-decoders (each stack sees its own tokens), MoE (the experts a
	 * token is routed to, with their capacity) and inference. Hardware FLOPs
	 * add the recomputation. */
	e->model_flops_per_step = c->flops.model_matmul * k;
	e->hardware_flops_per_step = c->flops.hardware_matmul * k;
	e->peak_flops = chip->peak_flops;
	e->mfu = e->model_flops_per_step / (e->step_time_s * e->chips * chip->peak_flops);
	e->hfu = e->hardware_flops_per_step / (e->step_time_s * e->chips * chip->peak_flops);
	if (!o->brief) {
		time_split(chip, c->program, &r, e->breakdown_s);
		for (int b = 0; b < BK_COUNT; b++) /* microbatches repeat all but the update */
			e->breakdown_s[b] *= e->step_time_s / r.seconds;
		e->collective_s = net.total;
	}
	e->chip_flops = r.flops * (e->step_time_s / r.seconds > 0 ? k : 1);
	e->mem = c->mem;
	if (!c->mem.fits && !o->brief) {
		Diag md;
		diag_init(&md);
		memplan_error(c->program, &c->mem, &md);
		const char *msg = strstr(md.msg, "error: ");
		snprintf(e->nofit, sizeof e->nofit, "%s", msg ? msg + 7 : md.msg);
	}
	e->nsim_ops = r.nops;
	if (o->trace && trace_write(o->trace, c->program, chip, &r, d))
		goto out;
	rc = 0;
out:
	sim_result_free(&r);
	return rc;
}

int estimate_run(const EstimateOptions *o, Estimate *e, Diag *d)
{
	memset(e, 0, sizeof *e);
	Pod pod;
	if (estimate_pod_init(o, &pod, d))
		return -1;
	MeshPlacement mp;
	Compiled c;
	memset(&c, 0, sizeof c);
	int rc = -1;
	/* the mesh's placement is checked before the (slower) compile */
	if (pod_place_mesh(&pod, &o->c.mesh, o->place, &mp, d))
		goto out;
	if (compile_model(&o->c, &c, d))
		goto out;
	rc = estimate_simulate(o, &c, NULL, NULL, &pod, e, d);
out:
	compiled_free(&c);
	pod_free(&pod);
	return rc;
}

/* ---- Output ------------------------------------------------------------- */

static void si(double v, const char *unit, char *buf, size_t n)
{
	static const char *const pre[] = {"", "K", "M", "G", "T", "P", "E"};
	int i = 0;
	while (fabs(v) >= 1000 && i < 6) {
		v /= 1000;
		i++;
	}
	snprintf(buf, n, "%.4g %s%s", v, pre[i], unit);
}

static double gib(double b) { return b / (1024.0 * 1024.0 * 1024.0); }

static void mesh_string(const Mesh *m, char *buf, size_t n)
{
	size_t used = 0;
	buf[0] = 0;
	for (int i = 0; i < m->naxes && used < n; i++) {
		const MeshAxis *a = &m->axes[i];
		int w;
		if (a->dcn > 1 && a->ici > 1)
			w = snprintf(buf + used, n - used, "%s%s=%d (ici %d x dcn %d)", i ? ", " : "",
			             a->name, a->ici * a->dcn, a->ici, a->dcn);
		else
			w = snprintf(buf + used, n - used, "%s%s=%d%s", i ? ", " : "", a->name,
			             a->ici * a->dcn, a->dcn > 1 ? " (dcn)" : "");
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

void estimate_print(FILE *out, const EstimateOptions *o, const Estimate *e)
{
	char a[64], b[64], mesh[256];
	mesh_string(&o->c.mesh, mesh, sizeof mesh);
	fprintf(out, "podsim estimate: %s on %s (%d chips)\n", o->c.model.name, e->pod, e->chips);
	fprintf(out, "  mesh          %s\n", mesh);
	fprintf(out, "  placement\n");
	for (const char *p = e->placement; *p;) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);
		if (len)
			fprintf(out, "    %.*s\n", len, p);
		p += len + (nl ? 1 : 0);
	}
	fprintf(out, "  batch         %lld x %.0f tokens, %d microbatch%s, remat %s, %s\n",
	        (long long)o->c.batch, e->tokens_per_step / (double)o->c.batch, o->c.microbatches,
	        o->c.microbatches == 1 ? "" : "es", remat_policy_name(o->c.train.remat),
	        optimizer_name(o->c.train.optimizer));
	si(e->step_time_s, "s", a, sizeof a);
	fprintf(out, "\nstep time       %s\n", a);
	si(e->tokens_per_s, "tokens/s", a, sizeof a);
	fprintf(out, "throughput      %s\n", a);
	fprintf(out, "MFU             %.1f%%\n", 100 * e->mfu);
	fprintf(out, "HFU             %.1f%%\n", 100 * e->hfu);
	si(e->model_flops_per_step, "FLOP", a, sizeof a);
	si(e->hardware_flops_per_step, "FLOP", b, sizeof b);
	fprintf(out, "FLOPs/step      %s model, %s hardware\n", a, b);
	si((double)e->params, "", a, sizeof a);
	fprintf(out, "parameters      %s\n", a);
	fprintf(out, "memory/chip     %.2f GiB of %.2f GiB HBM (%s)\n", gib(e->mem.peak_bytes),
	        gib(e->mem.hbm_bytes), e->mem.fits ? "fits" : "DOES NOT FIT");
	for (int k = 0; k < MEMCAT_COUNT; k++)
		if (e->mem.at_peak[k] > 0)
			fprintf(out, "  %-13s %.2f GiB\n", memcat_name((MemCategory)k),
			        gib(e->mem.at_peak[k]));
	fprintf(out, "time split\n");
	for (int k = 0; k < BK_COUNT; k++)
		fprintf(out, "  %-13s %8.4g s  %5.1f%%\n", breakdown_names[k], e->breakdown_s[k],
		        100 * e->breakdown_s[k] / e->step_time_s);
}

char *estimate_json(const EstimateOptions *o, const Estimate *e)
{
	json_t *j = json_object();
	json_object_set_new(j, "model", json_string(o->c.model.name));
	json_object_set_new(j, "chip", json_string(o->c.chip.name));
	json_object_set_new(j, "pod", json_string(e->pod));
	json_object_set_new(j, "chips", json_integer(e->chips));
	json_t *mesh = json_object();
	for (int i = 0; i < o->c.mesh.naxes; i++) {
		json_t *ax = json_object();
		json_object_set_new(ax, "ici", json_integer(o->c.mesh.axes[i].ici));
		json_object_set_new(ax, "dcn", json_integer(o->c.mesh.axes[i].dcn));
		json_object_set_new(mesh, o->c.mesh.axes[i].name, ax);
	}
	json_object_set_new(j, "mesh", mesh);
	json_object_set_new(j, "placement", json_string(e->placement));
	json_object_set_new(j, "batch", json_integer(o->c.batch));
	json_object_set_new(j, "microbatches", json_integer(o->c.microbatches));
	json_object_set_new(j, "remat", json_string(remat_policy_name(o->c.train.remat)));
	json_object_set_new(j, "optimizer", json_string(optimizer_name(o->c.train.optimizer)));
	json_object_set_new(j, "tokens_per_step", json_real(e->tokens_per_step));
	json_object_set_new(j, "step_time_s", json_real(e->step_time_s));
	json_object_set_new(j, "tokens_per_s", json_real(e->tokens_per_s));
	json_object_set_new(j, "mfu", json_real(e->mfu));
	json_object_set_new(j, "hfu", json_real(e->hfu));
	json_object_set_new(j, "model_flops_per_step", json_real(e->model_flops_per_step));
	json_object_set_new(j, "hardware_flops_per_step", json_real(e->hardware_flops_per_step));
	json_object_set_new(j, "peak_flops_per_chip", json_real(e->peak_flops));
	json_object_set_new(j, "params", json_integer(e->params));
	json_t *mem = json_object();
	json_object_set_new(mem, "per_chip_bytes", json_real(e->mem.peak_bytes));
	json_object_set_new(mem, "hbm_bytes", json_real(e->mem.hbm_bytes));
	json_object_set_new(mem, "fits", json_boolean(e->mem.fits));
	json_t *cats = json_object();
	for (int k = 0; k < MEMCAT_COUNT; k++)
		json_object_set_new(cats, memcat_name((MemCategory)k), json_real(e->mem.at_peak[k]));
	json_object_set_new(mem, "at_peak_bytes", cats);
	json_object_set_new(j, "memory", mem);
	json_t *bk = json_object();
	double compute = e->breakdown_s[BK_MXU] + e->breakdown_s[BK_VPU] + e->breakdown_s[BK_HBM];
	json_object_set_new(bk, "compute", json_real(compute));
	json_object_set_new(bk, "exposed_comm",
	                    json_real(e->breakdown_s[BK_EXPOSED_ICI] + e->breakdown_s[BK_EXPOSED_DCN]));
	for (int k = 0; k < BK_COUNT; k++)
		json_object_set_new(bk, breakdown_names[k], json_real(e->breakdown_s[k]));
	json_object_set_new(j, "breakdown_s", bk);
	json_object_set_new(j, "collective_s", json_real(e->collective_s));
	json_object_set_new(j, "chip_flops_per_step", json_real(e->chip_flops));
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	json_decref(j);
	return s;
}
