#!/usr/bin/env python3
"""PaLM 540B training on 2 x 3072 TPU v4 chips (Chowdhery et al. 2022,
section 4 and appendix B): predicted from the model, the chip and the layout
alone, printed against the published MFU 46.2% and HFU 57.8%. Exits 1 when a
prediction is outside its tolerance (MFU +/- 4 points, HFU +/- 5 points).

usage: palm540b.py PATH/TO/podsim
"""
import json
import subprocess
import sys

cmd = [sys.argv[1], "estimate", "--model", "palm-540b", "--chip", "tpu-v4",
       "--slice", "16x16x12", "--slices", "2", "--ici", "fsdp=256,tensor=12",
       "--dcn", "data=2", "--batch", "2048", "--seq", "2048", "--remat", "full", "--json"]
e = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
print("PaLM 540B on 2 x 16x16x12 TPU v4, fsdp=256 tensor=12, dcn data=2")
print("  %-12s %10s %10s %6s" % ("", "predicted", "published", "tol"))
ok = e["memory"]["fits"]
for name, pred, pub, tol in (("MFU", 100 * e["mfu"], 46.2, 4.0),
                             ("HFU", 100 * e["hfu"], 57.8, 5.0)):
    good = abs(pred - pub) <= tol
    ok = ok and good
    print("  %-12s %9.1f%% %9.1f%% %6.1f  %s" % (name, pred, pub, tol,
                                                 "ok" if good else "outside"))
print("  %-12s %10.0f %10.0f" % ("tokens/s", e["tokens_per_s"], 238.3e3))
print("  memory/chip  %.1f GiB of %.1f GiB, fits: %s" % (
    e["memory"]["per_chip_bytes"] / 2**30, e["memory"]["hbm_bytes"] / 2**30, e["memory"]["fits"]))
# Weak scaling (printed, not held to a tolerance: the paper gives one figure,
# 2 pods at 1.95x one pod): one pod with half the batch.
one = [a for a in cmd]
one[one.index("--slices") + 1] = "1"
one[one.index("--batch") + 1] = "1024"
del one[one.index("--dcn"):one.index("--dcn") + 2]
e1 = json.loads(subprocess.run(one, check=True, capture_output=True, text=True).stdout)
print("  2 pods / 1 pod throughput: %.3fx (published 1.95x)" % (e["tokens_per_s"] / e1["tokens_per_s"]))
sys.exit(0 if ok else 1)
