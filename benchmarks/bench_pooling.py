"""Pooling benchmarks: fastconv beside PyTorch, a NumPy copy of the same array (the bandwidth
yardstick) and the naive loops of fastconv.reference, float32, 2 threads for everyone.

    pytest benchmarks/bench_pooling.py --benchmark-only          # timings, grouped per case
    pytest benchmarks --benchmark-disable                         # smoke run: each once

Shapes: LeNet-5's two pooling layers (64x6x28x28, 64x16x10x10) and a wide layer
(8x64x112x112), 2x2 windows with stride 2; the wide layer also with 3x3 / stride 2 / padding 1.
Each result's extra_info holds the bytes the call must move and the GB/s that makes.

Variants: "fastconv" is the plain call (no index in the forward; the backward finds the
maxima again in x); "fastconv argmax" saves the compact uint8 argmax in the forward and
hands it to the backward (how to train); "torch" is torch.nn.functional and the aten
backward kernels given torch's own saved indices. "numpy copy" is x.copy() (allocation
included, as fastconv's and torch's outputs are); "numpy copyto" copies into a ready array.
The naive loops run on the first 8 channels of the first image only (they are Python), so
compare their GB/s.
"""
import functools

import numpy as np
import pytest

import fastconv
from fastconv import reference

THREADS = 2
SHAPES = [(64, 6, 28, 28), (64, 16, 10, 10), (8, 64, 112, 112)]
WINDOWS = {"2x2": (2, 2, 0), "3x3s2p1": (3, 2, 1)}     # kernel, stride, padding
CASES = [(shape, "2x2") for shape in SHAPES] + [((8, 64, 112, 112), "3x3s2p1")]
CASE_IDS = ["x".join(map(str, shape)) + "-" + window for shape, window in CASES]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(THREADS)
    try:
        import torch
        torch_before = torch.get_num_threads()
        torch.set_num_threads(THREADS)
    except ImportError:
        torch = None
    yield
    fastconv.set_num_threads(before)
    if torch is not None:
        torch.set_num_threads(torch_before)


@functools.lru_cache(maxsize=None)
def _data(shape, window):
    """x, dy, and the saved positions of both libraries, for one case."""
    kernel, stride, padding = WINDOWS[window]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y, argmax = fastconv.max_pool2d(x, kernel, stride, padding, return_argmax=True)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    return x, dy, argmax


def _torch():
    return pytest.importorskip("torch")


NAIVE = (slice(0, 1), slice(0, 8))   # the naive loops' share of x and dy


def _run(benchmark, function, nbytes, op, shape, window, naive=False):
    """Time function, grouped per operation and case, with the bytes it moves and its GB/s.
    The naive loops take seconds: one round is enough to see how far behind they are."""
    benchmark.group = f"{op} {'x'.join(map(str, shape))} {window}"
    benchmark.extra_info["bytes"] = nbytes
    if naive:
        benchmark.extra_info["part"] = "first image, first 8 channels"
        benchmark.pedantic(function, rounds=1, iterations=1)
    else:
        benchmark(function)
    if benchmark.stats is not None:
        benchmark.extra_info["GB/s"] = round(nbytes / benchmark.stats.stats.median / 1e9,
                                             3 if naive else 2)


def _copy(variant, x):
    """The yardstick: (the call, the bytes it moves) of a NumPy copy of x."""
    if variant == "numpy copy":
        return x.copy, 2 * x.nbytes
    out = np.empty_like(x)
    return (lambda: np.copyto(out, x)), 2 * x.nbytes


YARDSTICKS = ["numpy copy", "numpy copyto"]


def _bench(benchmark, op, contender, shape, window, variant):
    """Time one variant of one operation on one case. contender(variant, x, dy, argmax,
    kernel, stride, padding) gives the call and the bytes it must move; the naive loops get
    their share of x and dy (NAIVE) and run once."""
    x, dy, argmax = _data(shape, window)
    naive = variant == "naive loops"
    if variant in YARDSTICKS:
        function, nbytes = _copy(variant, x)
    elif naive:
        function, nbytes = contender(variant, x[NAIVE], dy[NAIVE], None, *WINDOWS[window])
    else:
        function, nbytes = contender(variant, x, dy, argmax, *WINDOWS[window])
    _run(benchmark, function, nbytes, op, shape, window, naive)


def _pairs(*values):
    """Each square window setting as [height, width], the form the reference loops and
    the aten backward kernels take."""
    return [[v, v] for v in values]


# The contenders: (call, bytes it must read and write) of each variant of an operation;
# anything not named is the naive loops.

def _max_pool_forward(variant, x, dy, argmax, kernel, stride, padding):
    if variant == "fastconv":
        return (lambda: fastconv.max_pool2d(x, kernel, stride, padding)), x.nbytes + dy.nbytes
    if variant == "fastconv argmax":
        return ((lambda: fastconv.max_pool2d(x, kernel, stride, padding, return_argmax=True)),
                x.nbytes + dy.nbytes + argmax.nbytes)
    if variant.startswith("torch"):
        torch = _torch()
        xt, indices = torch.from_numpy(x), variant == "torch indices"
        return ((lambda: torch.nn.functional.max_pool2d(xt, kernel, stride, padding,
                                                        return_indices=indices)),
                x.nbytes + dy.nbytes * (3 if indices else 1))
    return ((lambda: reference.max_pool2d(x, *_pairs(kernel, stride, padding))),
            x.nbytes + dy.nbytes)


def _max_pool_backward(variant, x, dy, argmax, kernel, stride, padding):
    if variant == "fastconv":
        return ((lambda: fastconv.max_pool2d_backward(dy, x, kernel, stride, padding)),
                2 * x.nbytes + dy.nbytes)
    if variant == "fastconv argmax":
        return ((lambda: fastconv.max_pool2d_backward(dy, x, kernel, stride, padding,
                                                      argmax=argmax)),
                x.nbytes + dy.nbytes + argmax.nbytes)
    if variant == "torch":
        torch = _torch()
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        _, indices = torch.nn.functional.max_pool2d(xt, kernel, stride, padding,
                                                    return_indices=True)
        k, s, p = _pairs(kernel, stride, padding)
        return ((lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            dyt, xt, k, s, p, [1, 1], False, indices)),
            x.nbytes + 3 * dy.nbytes)
    return ((lambda: reference.max_pool2d_backward(dy, x, *_pairs(kernel, stride, padding))),
            2 * x.nbytes + dy.nbytes)


def _avg_pool_forward(variant, x, dy, argmax, kernel, stride, padding):
    if variant == "fastconv":
        return (lambda: fastconv.avg_pool2d(x, kernel, stride, padding)), x.nbytes + dy.nbytes
    if variant == "torch":
        torch = _torch()
        xt = torch.from_numpy(x)
        return ((lambda: torch.nn.functional.avg_pool2d(xt, kernel, stride, padding)),
                x.nbytes + dy.nbytes)
    return ((lambda: reference.avg_pool2d(x, *_pairs(kernel, stride, padding))),
            x.nbytes + dy.nbytes)


def _avg_pool_backward(variant, x, dy, argmax, kernel, stride, padding):
    if variant == "fastconv":
        return ((lambda: fastconv.avg_pool2d_backward(dy, x, kernel, stride, padding)),
                x.nbytes + dy.nbytes)
    if variant == "torch":
        torch = _torch()
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        k, s, p = _pairs(kernel, stride, padding)
        return ((lambda: torch.ops.aten.avg_pool2d_backward(
            dyt, xt, k, s, p, False, True, None)), x.nbytes + dy.nbytes)
    return ((lambda: reference.avg_pool2d_backward(dy, x, *_pairs(kernel, stride, padding))),
            x.nbytes + dy.nbytes)


@pytest.mark.parametrize("shape, window", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("variant", ["fastconv", "fastconv argmax", "torch", "torch indices",
                                     *YARDSTICKS, "naive loops"])
def test_max_pool_forward(benchmark, shape, window, variant):
    _bench(benchmark, "max_pool2d forward", _max_pool_forward, shape, window, variant)


@pytest.mark.parametrize("shape, window", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("variant", ["fastconv", "fastconv argmax", "torch", *YARDSTICKS,
                                     "naive loops"])
def test_max_pool_backward(benchmark, shape, window, variant):
    _bench(benchmark, "max_pool2d backward", _max_pool_backward, shape, window, variant)


@pytest.mark.parametrize("shape, window", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("variant", ["fastconv", "torch", *YARDSTICKS, "naive loops"])
def test_avg_pool_forward(benchmark, shape, window, variant):
    _bench(benchmark, "avg_pool2d forward", _avg_pool_forward, shape, window, variant)


@pytest.mark.parametrize("shape, window", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("variant", ["fastconv", "torch", *YARDSTICKS, "naive loops"])
def test_avg_pool_backward(benchmark, shape, window, variant):
    _bench(benchmark, "avg_pool2d backward", _avg_pool_backward, shape, window, variant)
