"""Conv layer vs dense layer for the lecture's 32x32x3 -> 28x28x6 mapping: parameters,
weight memory and forward time of each, as extra_info.

The conv layer is fastconv.conv2d with six 5x5 filters; the dense layer maps the same 3,072
inputs to the same 4,704 outputs as one matrix product (NumPy's BLAS), on a batch of 64.

    pytest benchmarks/bench_conv_vs_dense.py
"""
import numpy as np
import pytest

import fastconv

BATCH = 64
COSTS = fastconv.compare_conv_dense((32, 32, 3), 6, 5)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n_in, n_out = 32 * 32 * 3, 28 * 28 * 6
    return {
        "x": rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32),
        "conv_w": rng.standard_normal((6, 3, 5, 5), dtype=np.float32),
        "conv_b": rng.standard_normal(6, dtype=np.float32),
        "dense_w": rng.standard_normal((n_in, n_out), dtype=np.float32) * 0.02,
        "dense_b": rng.standard_normal(n_out, dtype=np.float32),
    }


def record(benchmark, layer):
    cost = getattr(COSTS, layer)
    benchmark.extra_info.update(layer=layer, batch=BATCH, parameters=cost.parameters,
                                weight_bytes=cost.weight_bytes, mult_adds=cost.mult_adds)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["GFLOP/s"] = round(2 * cost.mult_adds * BATCH / seconds / 1e9, 1)
        benchmark.extra_info["us per image"] = round(seconds / BATCH * 1e6, 2)


@pytest.mark.benchmark(group="conv vs dense 32x32x3 -> 28x28x6")
def test_conv_layer(benchmark, data):
    y = benchmark(fastconv.conv2d, data["x"], data["conv_w"], data["conv_b"])
    assert y.shape == (BATCH, 6, 28, 28)
    record(benchmark, "conv")


@pytest.mark.benchmark(group="conv vs dense 32x32x3 -> 28x28x6")
def test_dense_layer(benchmark, data):
    flat = data["x"].reshape(BATCH, -1)

    def dense():
        return flat @ data["dense_w"] + data["dense_b"]

    y = benchmark(dense)
    assert y.shape == (BATCH, 28 * 28 * 6)
    record(benchmark, "dense")


def test_the_dense_layer_has_31_700_times_the_parameters():
    assert COSTS.conv.parameters == 456
    assert COSTS.dense.parameters == 14_455_392        # 14,450,688 weights + 4,704 biases
    assert round(COSTS.parameter_ratio) == 31_700
