"""Peak extra memory of a forward call: the kernels' own workspace is bounded per thread and
does not grow with the batch (no whole-batch im2col matrix).

tracemalloc cannot see C allocations, so a child process resets its peak resident set size
to the current one (Linux: /proc/self/clear_refs), makes one conv2d call and reports how
far the peak (VmHWM) rose above that, minus the output.
The bound checked is the documented one (src/fastconv.h): 10% of the output plus a fixed
workspace per thread (im2col: a band of columns of at most 4 MiB and the GEMM's packing
buffers of at most 6.4 MiB; direct: band buffers of ~256 KiB; Winograd: one block of
transformed tiles, ~1 MiB and at most 4 MiB), plus, for Winograd, its transformed filter
bank: 36/9 of the weights, filters rounded up to the micro-kernel's 6 or 12 rows.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import subprocess_env

THREADS = 2
WORKSPACE_PER_THREAD = 11 * 2**20

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastconv

    def peak_rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

    N, C, H, W, K, R, padding, algorithm = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C, R, R), dtype=np.float32)
    fastconv.conv2d(x[:1, :, :R, :R], w)        # start the thread pool, load everything
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                            # peak RSS := current RSS
    before = peak_rss()
    y = fastconv.conv2d(x, w, padding=padding, algorithm=algorithm)
    print(json.dumps({"extra": peak_rss() - before - y.nbytes, "output": y.nbytes}))
""")


def can_reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.parametrize("case", [
    (64, 64, 56, 56, 64, 3, 1, "auto"),        # im2col; a 49 MiB output
    (8, 128, 28, 28, 128, 3, 1, "auto"),       # im2col; deep: one band of columns per call
    (8, 64, 56, 56, 64, 3, 1, "direct"),
    (256, 1, 32, 32, 6, 5, 0, "auto"),         # LeNet-5 conv1, direct
    (1, 1, 2048, 2048, 8, 3, 1, "auto"),       # a 128 MiB output from one image
    (64, 64, 56, 56, 64, 3, 1, "winograd"),
    (8, 256, 14, 14, 256, 3, 1, "winograd"),   # a 9.7 MiB filter bank, a 1.6 MiB output
], ids=lambda c: "x".join(map(str, c[:4])) + f"-{c[4]}@{c[5]}-{c[7]}")
@pytest.mark.skipif(not can_reset_peak_rss(), reason="needs Linux /proc/self/clear_refs")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's shadow memory and quarantine inflate the RSS")
def test_forward_workspace_is_bounded_and_does_not_grow_with_the_batch(case):
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], capture_output=True,
                          text=True, timeout=300, cwd="/",
                          env=subprocess_env(OMP_NUM_THREADS=str(THREADS)))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    bound = 0.10 * got["output"] + THREADS * WORKSPACE_PER_THREAD
    N, C, H, W, K, R, padding, algorithm = case
    if algorithm == "winograd":
        bound += 36 / 9 * (-(-K // 12) * 12) * C * R * R * 4   # the transformed filters
    assert got["extra"] <= bound, (
        f"forward {case}: {got['extra'] / 2**20:.1f} MiB beyond its "
        f"{got['output'] / 2**20:.1f} MiB output; bound {bound / 2**20:.1f} MiB")
