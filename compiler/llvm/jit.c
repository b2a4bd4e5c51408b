/*
 * The host target, the optimiser and the ORC JIT.
 *
 * Both the optimisation pipeline (LLVMRunPasses "default<O2>") and the JIT's
 * code generator use a target machine for the host CPU and its features
 * (LLVMGetHostCPUName/Features), so the cost models see AVX2/AVX-512 where
 * the machine has them. A Jit owns one LLJIT holding one module (every
 * kernel plus the entry); libm calls (expf, tanhf, ...) resolve against the
 * process. Destroying the Jit releases the code and the LLVM context.
 */
#include "cg.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_once_t native_once = PTHREAD_ONCE_INIT;

static void init_native(void)
{
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
}

LLVMTargetMachineRef cg_host_machine(Diag *d)
{
	pthread_once(&native_once, init_native);
	char *triple = LLVMGetDefaultTargetTriple();
	LLVMTargetRef target;
	char *err = NULL;
	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		diag_error(d, NULL, 0, 0, "no LLVM target for the host (%s): %s", triple,
		           err ? err : "?");
		LLVMDisposeMessage(err);
		LLVMDisposeMessage(triple);
		return NULL;
	}
	char *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
	LLVMTargetMachineRef tm =
		LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelDefault,
		                        LLVMRelocDefault, LLVMCodeModelJITDefault);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(features);
	LLVMDisposeMessage(triple);
	if (!tm)
		diag_error(d, NULL, 0, 0, "cannot create an LLVM target machine for the host");
	return tm;
}

int cg_setup_target(CG *c, LLVMTargetMachineRef tm)
{
	char *triple = LLVMGetTargetMachineTriple(tm);
	LLVMSetTarget(c->mod, triple);
	LLVMDisposeMessage(triple);
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
	char *dl = LLVMCopyStringRepOfTargetData(td);
	LLVMSetDataLayout(c->mod, dl);
	LLVMDisposeMessage(dl);
	LLVMDisposeTargetData(td);
	c->cpu = LLVMGetTargetMachineCPU(tm);
	c->features = LLVMGetTargetMachineFeatureString(tm);

	int host = strstr(c->features, "+avx512f") ? 16 : strstr(c->features, "+avx") ? 8 : 4;
	CodegenOptions *o = &c->opt;
	if (o->vec_width <= 0)
		o->vec_width = host;
	if (o->vec_width > 64 || (o->vec_width & (o->vec_width - 1))) {
		diag_error(c->d, NULL, 0, 0, "vector width %d is not a power of two up to 64",
		           o->vec_width);
		return -1;
	}
	if (o->nr_vecs <= 0)
		o->nr_vecs = 2;
	if (o->mr <= 0)
		o->mr = o->vec_width >= 16 ? 8 : o->vec_width == 8 ? 6 : 4;
	if (o->mr > 32 || o->nr_vecs > 8) {
		diag_error(c->d, NULL, 0, 0, "register tile %dx%d vectors is too large", o->mr,
		           o->nr_vecs);
		return -1;
	}
	c->min_legal_width = o->vec_width * 32;
	return 0;
}

void cg_teardown_target(CG *c)
{
	LLVMDisposeMessage(c->cpu);
	LLVMDisposeMessage(c->features);
	c->cpu = c->features = NULL;
}

int cg_finish(CG *c, LLVMTargetMachineRef tm)
{
	char *msg = NULL;
	if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
		diag_error(c->d, c->m->file, 0, 0, "LLVM verifier rejected the lowered module: %s",
		           msg ? msg : "?");
		LLVMDisposeMessage(msg);
		return -1;
	}
	LLVMDisposeMessage(msg);
	if (!c->opt.optimize)
		return 0;
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
	LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
	LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
	LLVMErrorRef e = LLVMRunPasses(c->mod, "default<O2>", tm, po);
	LLVMDisposePassBuilderOptions(po);
	if (e) {
		char *em = LLVMGetErrorMessage(e);
		diag_error(c->d, c->m->file, 0, 0, "LLVM optimisation failed: %s", em);
		LLVMDisposeErrorMessage(em);
		return -1;
	}
	return 0;
}

/* ---- The JIT --------------------------------------------------------------- */

struct Jit {
	LLVMOrcLLJITRef jit;
	JitEntryFn entry;
	int n;              /* values in the module */
	JitKernelFn *kern;  /* (n) NULL: no kernel */
	ValueId **kin;      /* (n) kernel inputs */
	int *nkin;          /* (n) */
	double ms;          /* jit_compile wall time */
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int llvm_error(Diag *d, LLVMErrorRef e, const char *what)
{
	char *msg = LLVMGetErrorMessage(e);
	diag_error(d, NULL, 0, 0, "%s: %s", what, msg);
	LLVMDisposeErrorMessage(msg);
	return -1;
}

void jit_free(Jit *j)
{
	if (!j)
		return;
	if (j->jit) {
		LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->jit);
		if (e)
			LLVMConsumeError(e);
	}
	if (j->kin)
		for (int v = 0; v < j->n; v++)
			free(j->kin[v]);
	free(j->kin);
	free(j->nkin);
	free(j->kern);
	free(j);
}

Jit *jit_compile(const Module *m, const CodegenOptions *opt, Diag *d)
{
	double t0 = now_ms();
	Jit *j = calloc(1, sizeof *j);
	if (!j)
		ir_die("out of memory");
	j->n = m->ninsts;
	CG c;
	memset(&c, 0, sizeof c);
	if (opt)
		c.opt = *opt;
	else
		codegen_default_options(&c.opt);
	c.d = d;
	LLVMTargetMachineRef tm = cg_host_machine(d);
	if (!tm) {
		jit_free(j);
		return NULL;
	}
	LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
	c.ctx = LLVMOrcThreadSafeContextGetContext(tsc);
	c.mod = LLVMModuleCreateWithNameInContext(m->name ? m->name : "podsim", c.ctx);
	int rc = cg_setup_target(&c, tm);
	if (rc == 0)
		rc = cg_lower(&c, m);
	if (rc == 0)
		rc = cg_finish(&c, tm);
	/* Keep the kernel table before the lowering context goes. */
	if (rc == 0) {
		size_t n = (size_t)m->ninsts + 1;
		j->kern = calloc(n, sizeof *j->kern);
		j->kin = c.kin;
		j->nkin = c.nkin;
		c.kin = NULL;
		c.nkin = NULL;
		if (!j->kern)
			ir_die("out of memory");
	}
	/* has_kernel(), as the lowering decided it */
	unsigned char *made = NULL;
	if (rc == 0) {
		made = calloc((size_t)m->ninsts + 1, 1);
		if (!made)
			ir_die("out of memory");
		for (int v = 0; v < m->ninsts; v++) {
			char name[96];
			cg_kernel_name(name, sizeof name, m, v);
			made[v] = LLVMGetNamedFunction(c.mod, name) != NULL;
		}
	}
	cg_release(&c);
	cg_teardown_target(&c);
	LLVMDisposeTargetMachine(tm);
	if (rc != 0) {
		LLVMDisposeModule(c.mod);
		LLVMOrcDisposeThreadSafeContext(tsc);
		jit_free(j);
		return NULL;
	}

	LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(c.mod, tsc);
	LLVMOrcDisposeThreadSafeContext(tsc);
	LLVMErrorRef e = NULL;
	LLVMTargetMachineRef jtm = cg_host_machine(d);
	if (!jtm)
		goto fail_tsm;
	LLVMOrcJITTargetMachineBuilderRef jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jtm);
	LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
	LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
	if ((e = LLVMOrcCreateLLJIT(&j->jit, jb))) {
		llvm_error(d, e, "cannot create the JIT");
		goto fail_tsm;
	}
	LLVMOrcDefinitionGeneratorRef gen;
	if ((e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
		     &gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL))) {
		llvm_error(d, e, "cannot make the process's symbols visible to the JIT");
		goto fail_tsm;
	}
	LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->jit);
	LLVMOrcJITDylibAddGenerator(jd, gen);
	if ((e = LLVMOrcLLJITAddLLVMIRModule(j->jit, jd, tsm))) {
		llvm_error(d, e, "cannot add the module to the JIT");
		goto fail;
	}
	LLVMOrcExecutorAddress addr;
	if ((e = LLVMOrcLLJITLookup(j->jit, &addr, CG_ENTRY_NAME))) {
		llvm_error(d, e, "JIT compilation failed");
		goto fail;
	}
	j->entry = (JitEntryFn)(uintptr_t)addr;
	for (int v = 0; v < m->ninsts; v++) {
		if (!made[v])
			continue;
		char name[96];
		cg_kernel_name(name, sizeof name, m, v);
		if ((e = LLVMOrcLLJITLookup(j->jit, &addr, name))) {
			llvm_error(d, e, "JIT lookup failed");
			goto fail;
		}
		j->kern[v] = (JitKernelFn)(uintptr_t)addr;
	}
	free(made);
	j->ms = now_ms() - t0;
	return j;

fail_tsm:
	LLVMOrcDisposeThreadSafeModule(tsm);
fail:
	free(made);
	jit_free(j);
	return NULL;
}

void jit_run(const Jit *j, float *const *bufs)
{
	j->entry(bufs);
}

JitEntryFn jit_entry(const Jit *j)
{
	return j->entry;
}

JitKernelFn jit_kernel(const Jit *j, ValueId v, int *nin, const ValueId **in)
{
	if (v < 0 || v >= j->n || !j->kern[v]) {
		if (nin)
			*nin = 0;
		if (in)
			*in = NULL;
		return NULL;
	}
	if (nin)
		*nin = j->nkin[v];
	if (in)
		*in = j->kin[v];
	return j->kern[v];
}

double jit_compile_ms(const Jit *j)
{
	return j->ms;
}
