"""Shared benchmark setup: the same thread count for every contender, and extra_info
(threads, SIMD path, GFLOP/s and its % of the matrix-multiply ceiling: NumPy's float32
2048^3 matmul on the same threads, timed once per session).

FASTCONV_BENCH_THREADS (default 2) sets the threads of fastconv, PyTorch and OpenCV.
Run:  pytest benchmarks --benchmark-only            (timed)
      pytest benchmarks --benchmark-disable         (smoke: each case once)
"""
import os

import numpy as np
import pytest

import fastconv
from fastconv.cli.bench import matmul_ceiling

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
_ceiling = {}


def ceiling_gflops():
    """NumPy's float32 2048^3 matmul on THREADS threads, timed once per session."""
    if "gflops" not in _ceiling:
        _ceiling["gflops"] = matmul_ceiling(THREADS, budget=1.0)[0]
    return _ceiling["gflops"]


def pytest_configure(config):
    fastconv.set_num_threads(THREADS)
    try:
        import torch
        torch.set_num_threads(THREADS)
    except ImportError:
        pass


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def info(benchmark):
    """Fill extra_info with the common facts; returns a function adding rates."""
    benchmark.extra_info["threads"] = THREADS
    benchmark.extra_info["simd"] = fastconv.get_simd()

    def add(**kv):
        benchmark.extra_info.update(kv)
        if kv.get("gflops") is not None:        # timed runs: % of the matmul ceiling too
            benchmark.extra_info["ceiling_gflops"] = ceiling_gflops()
            benchmark.extra_info["pct_ceiling"] = 100 * kv["gflops"] / ceiling_gflops()
    return add


def gflops(flop, benchmark):
    """GFLOP/s from the median time, or None when timing is disabled (smoke run)."""
    stats = getattr(benchmark, "stats", None)
    if not stats:
        return None
    return flop / stats.stats.median / 1e9


def random(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
