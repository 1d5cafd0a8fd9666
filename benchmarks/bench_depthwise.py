"""Depthwise 3x3 layers (MobileNet's) and pointwise 1x1 layers: fastconv vs PyTorch, forward
and backward (grad_x + grad_weight + grad_bias), on the same threads (conftest.py).

The table of medians and ratios from alternating runs:
    python benchmarks/bench_depthwise.py [repetitions]
"""
import datetime
import os
import statistics
import sys
import time

import numpy as np
import pytest

import fastconv

sys.path.insert(0, os.path.dirname(__file__))
from conftest import THREADS, random  # noqa: E402

# name: (N, C, H, W, K, R, stride, padding, groups)
DEPTHWISE = {
    f"dw {N}x{C}x{H}x{W} s{s}": (N, C, H, W, C, 3, s, 1, C)
    for N, C, H, W, s in [(8, 32, 112, 112, 1), (8, 144, 56, 56, 1), (8, 144, 56, 56, 2),
                          (32, 96, 32, 32, 1), (8, 960, 7, 7, 1), (64, 960, 4, 4, 1),
                          (64, 576, 8, 8, 1), (64, 384, 8, 8, 1)]
}
POINTWISE = {
    f"pw {N}x{C}x{H}x{W}->{K}": (N, C, H, W, K, 1, 1, 0, 1)
    for N, C, H, W, K in [(64, 16, 32, 32, 96), (64, 96, 32, 32, 16), (64, 96, 16, 16, 24),
                          (64, 144, 16, 16, 24), (64, 144, 8, 8, 32), (64, 32, 8, 8, 192),
                          (64, 192, 8, 8, 32)]
}
SHAPES = {**DEPTHWISE, **POINTWISE}


def make_case(name):
    N, C, H, W, K, R, stride, padding, groups = SHAPES[name]
    x = random((N, C, H, W), 1)
    w = random((K, C // groups, R, R), 2)
    b = random((K,), 3)
    kw = dict(stride=stride, padding=padding, groups=groups)
    dy = random(fastconv.conv2d(x, w, b, **kw).shape, 4)
    return x, w, b, dy, kw


def contenders(name, torch):
    """{"fastconv": (forward, backward), "torch": (forward, backward)} for the case."""
    x, w, b, dy, kw = make_case(name)
    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
    xr, wr, br = (a.clone().requires_grad_() for a in (xt, wt, bt))

    def torch_backward():
        xr.grad = wr.grad = br.grad = None
        torch.nn.functional.conv2d(xr, wr, br, **kw).backward(dyt)
    return {
        "fastconv": (lambda: fastconv.conv2d(x, w, b, **kw),
                     lambda: fastconv.conv2d_backward(dy, x, w, **kw)),
        "torch": (lambda: torch.nn.functional.conv2d(xt, wt, bt, **kw), torch_backward),
    }


@pytest.mark.parametrize("contender", ["fastconv", "torch"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_depthwise_and_pointwise(benchmark, info, name, direction, contender, torch):
    x, w, _, _, kw = make_case(name)
    benchmark.group = f"{direction} {name}"
    run = contenders(name, torch)[contender][direction == "backward"]
    benchmark(run)
    plan = fastconv.conv_plan(x.shape, w.shape, **kw)
    info(auto_plan=repr(plan))


def _seconds(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def table(repetitions=7):
    """Median time of each contender and the median of the per-repetition ratios, the
    contenders alternating within each repetition."""
    import torch
    fastconv.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown CPU")
    print(f"# {cpu}, {THREADS} threads, float32, {datetime.date.today()}, "
          f"SIMD {fastconv.get_simd()}, {repetitions} alternating repetitions")
    print(f"{'layer':26s} {'pass':8s} {'fastconv ms':>11s} {'torch ms':>9s} "
          f"{'torch/fastconv':>14s}  range        fastconv plan")
    for name in SHAPES:
        runs = contenders(name, torch)
        x, w, _, _, kw = make_case(name)
        plan = fastconv.conv_plan(x.shape, w.shape, **kw)
        for i, direction in enumerate(("forward", "backward")):
            ours, theirs = runs["fastconv"][i], runs["torch"][i]
            ours(), theirs()
            calls = max(1, int(0.05 / max(_seconds(ours, 1), 1e-6)))
            a, b = [], []
            for _ in range(repetitions):
                a.append(_seconds(ours, calls))
                b.append(_seconds(theirs, calls))
            ratios = [t / f for f, t in zip(a, b)]
            algo = plan.forward if i == 0 else f"{plan.backward_data}/{plan.backward_weight}"
            print(f"{name:26s} {direction:8s} {statistics.median(a) * 1e3:11.3f} "
                  f"{statistics.median(b) * 1e3:9.3f} {statistics.median(ratios):14.2f}  "
                  f"[{min(ratios):.2f}-{max(ratios):.2f}]  {algo}", flush=True)


if __name__ == "__main__":
    table(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
