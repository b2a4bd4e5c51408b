#!/usr/bin/env python3
"""Layouts evaluated per second by podsim sweep: PaLM 62B on 1024 TPU v4 chips
(one slice), batch 1024 x 2048 tokens, the default space (every mesh over data,
fsdp, tensor; 2 slice shapes; remat none/minimal/full; microbatches 1, 2, 4, ...).
Target: 2000 layouts/s on 2 cores.

Runs the sweep with 1 and 2 threads, and with --exact (every layout at full
depth) for comparison. A layout counts when it has a result: evaluated (fits
or not) or pruned; the skipped ones (an axis that does not divide what it
splits) cost nothing and are not counted.

usage: bench_sweep.py PATH/TO/podsim [RUNS]
"""
import json
import os
import subprocess
import sys
import time

podsim = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
base = [podsim, "sweep", "--model", "palm-62b", "--chip", "tpu-v4", "--chips", "1024",
        "--batch", "1024", "--seq", "2048", "--json"]


def measure(extra, threads):
    best = None
    for _ in range(runs):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        t = time.perf_counter()
        out = subprocess.run(base + extra, check=False, capture_output=True, env=env, text=True)
        wall = time.perf_counter() - t
        if out.returncode not in (0, 1):
            sys.exit("podsim sweep failed: " + out.stderr)
        s = json.loads(out.stdout)["summary"]
        if best is None or wall < best[0]:
            best = (wall, s)
    return best


print("podsim sweep, PaLM 62B on 1024 TPU v4 chips, batch 1024 x 2048 (best of %d)" % runs)
print("%-28s %8s %9s %8s %12s %8s" % ("mode", "threads", "layouts", "wall s", "layouts/s",
                                      "extrap."))
for name, extra in (("default", []), ("--exact (full depth)", ["--exact"])):
    for threads in (1, 2):
        wall, s = measure(extra, threads)
        n = s["evaluated"] + s["pruned"]
        print("%-28s %8d %9d %8.2f %12.1f %8d" % (name, threads, n, wall, n / wall,
                                                 s.get("extrapolated", 0)))
print("target: 2000 layouts/s on 2 threads")
