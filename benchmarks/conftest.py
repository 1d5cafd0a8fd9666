"""Shared benchmark setup: the same thread count for every contender, and extra_info.

FASTCONV_BENCH_THREADS (default 2) sets the threads of fastconv, PyTorch and OpenCV.
Run:  pytest benchmarks --benchmark-only            (timed)
      pytest benchmarks --benchmark-disable         (smoke: each case once)
"""
import os

import numpy as np
import pytest

import fastconv

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))


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
    return add


def gflops(flop, benchmark):
    """GFLOP/s from the median time, or None when timing is disabled (smoke run)."""
    stats = getattr(benchmark, "stats", None)
    if not stats:
        return None
    return flop / stats.stats.median / 1e9


def random(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
