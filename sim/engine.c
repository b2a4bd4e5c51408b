/*
 * The event engine (see engine.h). One pass over the program in order: each
 * unit is an in-order resource with a "free at" time, each value a "ready at"
 * time, so an op's start is max(its unit is free, its operands are ready)
 * and the whole run costs O(instructions + operands). Asynchronous starts
 * complete in the background; their done ops only wait.
 *
 * On-chip occupancy: a value in VMEM or CMEM that carries a tiling (the
 * tile pass gives one to every kernel value) never exists there whole: its
 * kernel streams it one tile at a time, so it occupies its tile's bytes
 * (the extents over its result dims x dtype size), twice for double
 * buffering. Untiled values occupy their whole size; a reshape is a view
 * and occupies nothing of its own.
 *
 * The DMA path is one shared HBM pipe: a transfer's data moves for
 * bytes / (hbm_bw * hbm_efficiency) after dma_latency, transfers queue on the
 * pipe in issue order, and a new DMA also waits for a free engine (at most
 * dma_engines outstanding).
 */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"


static double collective_bytes(const Module *m, const Inst *in)
{
	double out = sim_bytes(&in->type);
	double arg = in->nargs ? sim_bytes(&m->insts[in->args[0]].type) : 0;
	return out > arg ? out : arg;
}

double engine_default_collective_time(void *ctx, const Inst *in, const Module *m)
{
	const Chip *c = ctx;
	double bytes = collective_bytes(m, in);
	if (in->unit == UNIT_DCN)
		return bytes / c->dcn_bw_per_chip + c->dcn_latency;
	return bytes / (c->ici_link_bw * c->ici_links) + c->ici_hop_latency;
}

void sim_result_free(SimResult *r)
{
	free(r->ops);
	r->ops = NULL;
	r->nops = 0;
}

/* Where a value lives while it is live. */
static MemSpace live_mem(const Module *m, const Inst *in)
{
	if (in->op == OP_DMA_START || in->op == OP_COLL_START)
		return MEM_NONE; /* a handle: its data is counted at the done */
	if (in->op == OP_RESHAPE && in->nargs == 1)
		return MEM_NONE; /* a view: no storage of its own */
	if (in->mem != MEM_NONE)
		return in->mem;
	if (in->op == OP_PARAMETER)
		return MEM_HBM;
	if (in->op == OP_DMA_DONE && in->nargs == 1) {
		const char *to = ir_attr_str(&m->insts[in->args[0]], "to", NULL);
		int ms = to ? mem_from_name(to, strlen(to)) : -1;
		if (ms > 0)
			return (MemSpace)ms;
	}
	return MEM_VMEM;
}

/* Bytes a value occupies in memory space ms while live: on chip, a tiled
 * value holds two of its tiles (double-buffered; a tile padded beyond the
 * dims counts its padding); otherwise the whole value. */
static double live_bytes(const Inst *in, MemSpace ms)
{
	const Tiling *t = &in->tiling;
	if ((ms == MEM_VMEM || ms == MEM_CMEM) && t->ntile >= in->type.rank && in->type.rank > 0) {
		double e = 2.0 * dtype_bytes(in->type.dtype);
		for (int i = 0; i < in->type.rank; i++)
			e *= (double)t->tile[i];
		return e;
	}
	return sim_bytes(&in->type);
}

/* What an op does in the timeline. */
enum {
	K_NONE,      /* takes no time */
	K_DONE,      /* dma_done, coll_done: waits for its start */
	K_DMA_START, /* an asynchronous transfer on the DMA path */
	K_DMA_SYNC,  /* a synchronous copy on the DMA path */
	K_COLL,      /* a collective or coll_start (time from the network) */
	K_COMPUTE,   /* a kernel on its unit */
};

void engine_costs_free(EngineCosts *k)
{
	free(k->op);
	memset(k, 0, sizeof *k);
}

/* Everything about a run that does not depend on when ops run: each op's
 * unit and duration (but collectives'), and the memory accounting, which
 * follows program order. */
int engine_costs(const Module *m, const Chip *c, EngineCosts *k, Diag *d)
{
	memset(k, 0, sizeof *k);
	if (m->level != LEVEL_TILED) {
		diag_error(d, m->file, 0, 0, "podsim sim needs a tiled-level module (module @%s "
		           "is graph level)", m->name ? m->name : "?");
		return -1;
	}
	int n = m->ninsts;
	k->n = n;
	k->op = malloc((size_t)(n > 0 ? n : 1) * sizeof *k->op);
	int *last_use = malloc((size_t)(n > 0 ? n : 1) * sizeof *last_use);
	/* where each value lives and the bytes it holds there, kept from its
	 * definition for its death */
	unsigned char *vmem = malloc((size_t)(n > 0 ? n : 1));
	double *vbytes = malloc((size_t)(n > 0 ? n : 1) * sizeof *vbytes);
	if (!k->op || !last_use || !vmem || !vbytes) {
		free(last_use);
		free(vmem);
		free(vbytes);
		engine_costs_free(k);
		diag_error(d, m->file, 0, 0, "out of memory simulating %d instructions", n);
		return -1;
	}
	/* liveness: a value dies after its last use; outputs live to the end */
	for (int v = 0; v < n; v++)
		last_use[v] = v;
	for (int v = 0; v < n; v++)
		for (int i = 0; i < m->insts[v].nargs; i++)
			last_use[m->insts[v].args[i]] = v;
	for (int i = 0; i < m->noutputs; i++)
		last_use[m->outputs[i]] = n;
	k->mem_capacity[MEM_HBM] = c->hbm_bytes;
	k->mem_capacity[MEM_VMEM] = c->vmem_bytes * c->tensorcores;
	k->mem_capacity[MEM_CMEM] = c->cmem_bytes;
	double live[MEM_COUNT] = {0}, spilled[MEM_COUNT] = {0};
	double hbm_rate = c->hbm_bw * c->hbm_efficiency;
	int rc = 0;
	for (int v = 0; v < n && rc == 0; v++) {
		const Inst *in = &m->insts[v];
		EngineOp *op = &k->op[v];
		op->sync = (ir_ops[in->op].flags & OPF_COLLECTIVE) || in->op == OP_COLL_DONE ||
		           in->op == OP_DMA_DONE;
		/* memory: this value becomes live; overflow spills to HBM */
		MemSpace ms = live_mem(m, in);
		double spill_s = 0;
		vmem[v] = (unsigned char)ms;
		if (ms != MEM_NONE) {
			vbytes[v] = live_bytes(in, ms);
			live[ms] += vbytes[v];
			k->mem_peak[ms] = sim_max(k->mem_peak[ms], live[ms]);
			if ((ms == MEM_VMEM || ms == MEM_CMEM) &&
			    live[ms] - spilled[ms] > k->mem_capacity[ms]) {
				double over = live[ms] - spilled[ms] - k->mem_capacity[ms];
				spilled[ms] += over;
				k->spill_bytes += over;
				k->hbm_bytes += 2 * over;
				spill_s = 2 * over / hbm_rate; /* written out, read back */
			}
		}
		Unit u = cost_unit(in);
		op->spill_s = spill_s;
		op->bytes = 0;
		switch (in->op) {
		case OP_DMA_DONE:
		case OP_COLL_DONE: {
			Op want = in->op == OP_DMA_DONE ? OP_DMA_START : OP_COLL_START;
			if (in->nargs != 1 || m->insts[in->args[0]].op != want) {
				diag_error(d, m->file, in->line, in->col, "%s's operand must be a %s",
				           op_name(in->op), op_name(want));
				rc = -1;
				break;
			}
			op->kind = K_DONE;
			op->unit = UNIT_NONE;
			break;
		}
		case OP_DMA_START:
			op->kind = K_DMA_START;
			op->unit = UNIT_DMA;
			op->bytes = sim_bytes(in->nargs ? &m->insts[in->args[0]].type : &in->type);
			k->hbm_bytes += op->bytes;
			break;
		default:
			if ((ir_ops[in->op].flags & OPF_COLLECTIVE) || in->op == OP_COLL_START) {
				op->kind = K_COLL;
				op->unit = u != UNIT_DCN ? UNIT_ICI : UNIT_DCN;
			} else if (u == UNIT_NONE) {
				op->kind = K_NONE;
				op->unit = UNIT_NONE;
			} else if (u == UNIT_DMA) {
				op->kind = K_DMA_SYNC;
				op->unit = UNIT_DMA;
				op->bytes = sim_bytes(&in->type);
				k->hbm_bytes += op->bytes;
			} else {
				double b[MEM_COUNT];
				cost_mem_bytes(m, in, b);
				op->kind = K_COMPUTE;
				op->unit = u;
				op->dur = cost_op_seconds_bytes(c, m, in, b) + spill_s;
				k->hbm_bytes += b[MEM_HBM];
			}
			break;
		}
		if (rc)
			break;
		k->flops += cost_flops(m, in);
		/* values whose last use this was die now (and dead definitions) */
		for (int i = 0; i <= in->nargs; i++) {
			ValueId a = i < in->nargs ? in->args[i] : v;
			if (last_use[a] != v)
				continue;
			if (i < in->nargs) {
				int dup = 0; /* the same operand twice: free once */
				for (int j = 0; j < i; j++)
					dup |= in->args[j] == a;
				if (dup)
					continue;
			}
			MemSpace am = (MemSpace)vmem[a];
			if (am == MEM_NONE)
				continue;
			live[am] -= vbytes[a];
			double over = live[am] - k->mem_capacity[am];
			spilled[am] = sim_min(spilled[am], over > 0 ? over : 0);
		}
	}
	free(last_use);
	free(vmem);
	free(vbytes);
	if (rc)
		engine_costs_free(k);
	return rc;
}

/* The timeline of m given its costs k. */
static void timeline(const Module *m, const Chip *c, const EngineCosts *k,
                     CollectiveTimeFn coll, void *ctx, double *ready, double *dma_slot,
                     int ndma, SimResult *r)
{
	double unit_free[UNIT_COUNT] = {0};
	double pipe_free = 0, issue = chip_seconds(c, c->op_issue_cycles);
	double hbm_rate = c->hbm_bw * c->hbm_efficiency;
	int dma_next = 0;
	/* The chip issues its instruction stream in order: no op starts before
	 * the one before it started (issue). A done (dma_done, coll_done) waits
	 * in the stream: nothing after it starts before the transfer ends. A
	 * collective not split into start/done is synchronous: the same wait
	 * right after it. */
	double issue_at = 0;
	for (int v = 0; v < k->n; v++) {
		const Inst *in = &m->insts[v];
		const EngineOp *e = &k->op[v];
		double t = issue_at;
		for (int i = 0; i < in->nargs; i++)
			t = sim_max(t, ready[in->args[i]]);
		SimOp *op = &r->ops[v];
		Unit u = (Unit)e->unit;
		switch (e->kind) {
		case K_DONE:
			*op = (SimOp){t, t + e->spill_s, UNIT_NONE};
			break;
		case K_NONE:
			*op = (SimOp){t, t, UNIT_NONE};
			break;
		case K_DMA_START:
		case K_DMA_SYNC: {
			/* a synchronous copy takes the same pipe, waited for */
			double s = sim_max(t, dma_slot[dma_next]);
			if (e->kind == K_DMA_SYNC)
				s = sim_max(s, unit_free[u]);
			double flow = sim_max(s + c->dma_latency + issue, pipe_free);
			double done = flow + e->bytes / hbm_rate;
			if (e->kind == K_DMA_SYNC)
				done += e->spill_s;
			pipe_free = done;
			dma_slot[dma_next] = done;
			dma_next = (dma_next + 1) % ndma;
			r->busy[UNIT_DMA] += done - flow;
			*op = (SimOp){s, done, UNIT_DMA};
			break;
		}
		case K_COLL:
		case K_COMPUTE: {
			double dur = e->kind == K_COLL ? coll(ctx, in, m) + e->spill_s : e->dur;
			double s = sim_max(t, unit_free[u]);
			*op = (SimOp){s, s + dur, u};
			unit_free[u] = s + dur;
			r->busy[u] += dur;
			break;
		}
		}
		ready[v] = op->end;
		if (op->start > issue_at)
			issue_at = op->start;
		if (e->sync && op->end > issue_at)
			issue_at = op->end;
		r->seconds = sim_max(r->seconds, op->end);
	}
}

int engine_run(const Module *m, const Chip *c, const EngineOptions *opt, SimResult *r,
               Diag *d)
{
	memset(r, 0, sizeof *r);
	CollectiveTimeFn coll = engine_default_collective_time;
	void *ctx = (void *)c;
	if (opt && opt->collective_time) {
		coll = opt->collective_time;
		ctx = opt->ctx;
	} else if (opt && opt->ctx)
		ctx = opt->ctx;
	EngineCosts own;
	const EngineCosts *k = opt ? opt->costs : NULL;
	if (!k) {
		if (engine_costs(m, c, &own, d))
			return -1;
		k = &own;
	} else if (k->n != m->ninsts) {
		diag_error(d, m->file, 0, 0, "engine costs of %d instructions given for a program of %d",
		           k->n, m->ninsts);
		return -1;
	}
	int n = m->ninsts;
	r->nops = n;
	r->ops = malloc((size_t)(n > 0 ? n : 1) * sizeof *r->ops); /* each set below */
	double *ready = malloc((size_t)(n > 0 ? n : 1) * sizeof *ready);
	int ndma = c->dma_engines > 0 ? c->dma_engines : 1;
	double *dma_slot = calloc((size_t)ndma, sizeof *dma_slot);
	int rc = 0;
	if (!r->ops || !ready || !dma_slot) {
		sim_result_free(r);
		diag_error(d, m->file, 0, 0, "out of memory simulating %d instructions", n);
		rc = -1;
	} else {
		timeline(m, c, k, coll, ctx, ready, dma_slot, ndma, r);
		memcpy(r->mem_peak, k->mem_peak, sizeof r->mem_peak);
		memcpy(r->mem_capacity, k->mem_capacity, sizeof r->mem_capacity);
		r->spill_bytes = k->spill_bytes;
		r->hbm_bytes = k->hbm_bytes;
		r->flops = k->flops;
		r->cycles = r->seconds * c->clock_hz;
	}
	free(ready);
	free(dma_slot);
	if (k == &own)
		engine_costs_free(&own);
	return rc;
}
