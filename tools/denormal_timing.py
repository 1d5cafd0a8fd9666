"""How much slower conv2d runs when its input is denormal (subnormal), per algorithm,
dtype and SIMD path, on one thread. fastconv computes denormals exactly (it does not flush
them to zero, which would change results), and x86 CPUs take a slow microcode path for
them. The README's Reliability section quotes this table.

    python tools/denormal_timing.py
"""
import sys
import time
from pathlib import Path

import numpy as np

try:
    import fastconv
except ImportError:             # not installed: the source tree, built in place
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fastconv


def best_of(f, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    fastconv.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("x (8, 16, 32, 32), w (16, 16, 3, 3), 1 thread; best of 5")
    print(f"{'dtype':8} {'algorithm':9} {'simd':9} {'normal ms':>10} {'denormal ms':>12} "
          f"{'10% denormal':>13}")
    for dtype, scale in ((np.float32, 1e-40), (np.float64, 1e-310)):
        x = rng.standard_normal((8, 16, 32, 32)).astype(dtype)
        w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
        denormal = (x * scale).astype(dtype)
        some = np.where(rng.random(x.shape) < 0.1, denormal, x).astype(dtype)
        for algorithm in ("direct", "im2col"):
            for simd in ["generic"] + (["avx2"] if fastconv._ext.cpu_has_avx2_fma() else []):
                fastconv.set_simd(simd)
                times = [best_of(lambda a=a: fastconv.conv2d(a, w, algorithm=algorithm))
                         for a in (x, denormal, some)]
                print(f"{np.dtype(dtype).name:8} {algorithm:9} {simd:9} {times[0] * 1e3:10.1f} "
                      f"{times[1] * 1e3:7.1f} ({times[1] / times[0]:3.0f}x) "
                      f"{times[2] * 1e3:7.1f} ({times[2] / times[0]:3.0f}x)")
    fastconv.set_simd("auto")


if __name__ == "__main__":
    main()
