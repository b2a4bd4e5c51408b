# lit configuration: IR text in, FileCheck over what podsim prints.
import os
import lit.formats

config.name = "podsim"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".ir", ".tir", ".test", ".ll"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py.in"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.podsim_obj_root, "testsuite", "lit")

config.substitutions.append(("%podsim", os.path.join(config.podsim_tools_dir, "podsim")))
config.substitutions.append(("%srcroot", config.podsim_src_root))
config.environment["PATH"] = os.pathsep.join(
    [config.podsim_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
