"""Batch normalisation, one training step of the layer (forward, then backward with the input
gradient): fastconv's BatchNorm2D beside torch.nn.BatchNorm2d, float32, the same threads
(benchmarks/conftest.py, 2 by default), and a NumPy copy of x as the bandwidth yardstick.

    pytest benchmarks/bench_batchnorm.py --benchmark-only      # timings, grouped per shape
    python benchmarks/bench_batchnorm.py [--rounds 15]         # alternating runs, medians

Shapes: a ResNet-like early layer (8x64x56x56) and a small-channel, large-batch one
(128x16x32x32), where splitting the channels gives each of 2 threads 8.

Variants: "fastconv" returns new arrays each call, as PyTorch does; "fastconv reuse" is the
layer under reuse_buffers() (how fastconv.nn.fit trains); "torch" is the module's forward and
autograd's backward given dy. Each result's extra_info holds the bytes a step must move at
the least (read x, write y; read x and dy, write dx) and the GB/s that makes.
"""
import argparse
import functools
import statistics
import time

import numpy as np
import pytest

import fastconv
from fastconv.nn import BatchNorm2D

SHAPES = [(8, 64, 56, 56), (128, 16, 32, 32)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]
VARIANTS = ["fastconv", "fastconv reuse", "torch", "numpy copy"]


@functools.lru_cache(maxsize=None)
def _data(shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    return x, dy


def step_function(variant, shape):
    """The call that runs one step of `variant` on `shape`."""
    x, dy = _data(shape)
    if variant.startswith("fastconv"):
        layer = BatchNorm2D(shape[1])
        if variant == "fastconv reuse":
            layer.reuse_buffers()

        def step():
            layer.forward(x)
            return layer.backward(dy)
        return step
    if variant == "torch":
        import torch
        module = torch.nn.BatchNorm2d(shape[1])
        xt = torch.from_numpy(x).requires_grad_()
        dyt = torch.from_numpy(dy)

        def step():
            xt.grad = None
            module(xt).backward(dyt)
            return xt.grad
        return step
    return x.copy


def step_bytes(shape):
    """Bytes one step must move at the least: x in and y out, then x and dy in, dx out."""
    return 5 * int(np.prod(shape)) * 4


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_batch_norm_step(benchmark, info, shape, variant):
    if variant == "torch":
        pytest.importorskip("torch")
    function = step_function(variant, shape)
    benchmark.group = f"BatchNorm2D forward+backward {'x'.join(map(str, shape))}"
    info(bytes=step_bytes(shape) if variant != "numpy copy" else 2 * int(np.prod(shape)) * 4)
    benchmark(function)
    if benchmark.stats is not None:
        benchmark.extra_info["GB/s"] = round(
            benchmark.extra_info["bytes"] / benchmark.stats.stats.median / 1e9, 2)


def alternating_medians(shape, variants, rounds, repeats=10):
    """Median ms of each variant, timed in turns (rounds x repeats calls each), so that a
    busy machine slows every contender alike."""
    functions = {v: step_function(v, shape) for v in variants}
    times = {v: [] for v in variants}
    for function in functions.values():
        function()                                    # warm up: first-touch, thread pools
    for _ in range(rounds):
        for variant, function in functions.items():
            for _ in range(repeats):
                start = time.perf_counter()
                function()
                times[variant].append(time.perf_counter() - start)
    return {v: 1e3 * statistics.median(t) for v, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    import torch
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    variants = ["fastconv", "fastconv reuse", "torch"]
    print(f"threads {args.threads}, SIMD {fastconv.get_simd()}, float32, median ms of "
          f"{args.rounds} alternating rounds")
    for shape in SHAPES:
        ms = alternating_medians(shape, variants, args.rounds)
        cells = ", ".join(f"{v} {ms[v]:.3f}" for v in variants)
        print(f"{'x'.join(map(str, shape))}: {cells}; torch / fastconv "
              f"{ms['torch'] / ms['fastconv']:.2f}x, torch / fastconv reuse "
              f"{ms['torch'] / ms['fastconv reuse']:.2f}x")


if __name__ == "__main__":
    main()
