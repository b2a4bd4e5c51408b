#!/usr/bin/env python3
"""Wall time and peak memory of one podsim estimate: PaLM 540B on 2 x 16x16x12
TPU v4 (the README's main job). Target: under 200 ms and 256 MiB on one core.

usage: bench_estimate.py PATH/TO/podsim [RUNS]
"""
import resource
import subprocess
import sys
import time

podsim = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
cmd = [podsim, "estimate", "--model", "palm-540b", "--chip", "tpu-v4", "--slice", "16x16x12",
       "--slices", "2", "--ici", "fsdp=256,tensor=12", "--dcn", "data=2", "--batch", "2048",
       "--seq", "2048", "--remat", "full", "--json"]
walls = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={"OMP_NUM_THREADS": "1"})
    walls.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
walls.sort()
print("podsim estimate, PaLM 540B on 6144 TPU v4 chips, %d runs" % runs)
print("  wall time  best %.0f ms, median %.0f ms   (target < 200 ms)" %
      (walls[0] * 1e3, walls[len(walls) // 2] * 1e3))
print("  peak RSS   %.0f MiB                      (target < 256 MiB)" % rss)
