"""Huge shapes: nothing wraps around.

* Absurd sizes raise MemoryError or ValueError before anything is computed (the inputs here
  are stride-0 broadcasts: they cost no memory).
* im2col never silently allocates more than its documented workspace (src/fastconv.h,
  FC_IM2COL_MAX_ROW_BYTES): above it, algorithm="im2col" raises MemoryError and "auto"
  runs the direct kernels.
* ``pytest -m slow``: tensors past 2**31 elements (8.6 GB of float32 each; skipped with
  less than 12 GB of available memory) compute correctly with both algorithms.
"""
import numpy as np
import pytest

import fastconv
from fastconv import filters

from conftest import rel_err

BIG = 2**31 + 2**22          # elements: past what an int32 index can reach


def broadcast(shape, dtype=np.float32):
    """An array of `shape` that costs one element of memory."""
    return np.broadcast_to(np.ones(1, dtype=dtype), shape)


@pytest.mark.parametrize("call", [
    lambda: fastconv.conv2d(broadcast((1, 1, 4, 4)), broadcast((1, 1, 1, 1)),
                            padding=2**31 - 1),                         # 2**62 outputs
    lambda: fastconv.conv2d(broadcast((2**40, 1, 1, 1)), broadcast((2**20, 1, 1, 1))),
    lambda: fastconv.conv2d_backward(broadcast((2**33, 2, 1, 1)), broadcast((2**33, 2, 1, 1)),
                                     broadcast((2, 2, 1, 1))),
    lambda: fastconv.matmul(broadcast((2**40, 1)), broadcast((1, 2**20))),
    lambda: fastconv.matmul(broadcast((2**31, 2**31)), broadcast((2**31, 2))),
    lambda: filters.sobel(broadcast((2**40, 2**10))),
    lambda: filters.gaussian(broadcast((2**20, 2**20, 2**10)), 1.0),
], ids=["conv2d padding 2**31-1", "conv2d 2**60 outputs", "conv2d_backward 2**34 inputs",
        "matmul 2**60 outputs", "matmul 2**31 x 2**31 input", "sobel 2**50 pixels",
        "gaussian 2**50 pixels"])
def test_absurd_sizes_raise_memory_or_value_error(call):
    with pytest.raises((MemoryError, ValueError)):
        call()


@pytest.mark.parametrize("kwargs", [dict(stride=2**31), dict(padding=(0, 2**40)),
                                    dict(dilation=2**63), dict(groups=2**70)])
def test_hyperparameters_beyond_2_31_raise_value_error(kwargs):
    with pytest.raises(ValueError, match="<= 2147483647"):
        fastconv.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 1, 1)), **kwargs)


def wide_row_problem(K):
    """One output row's im2col columns: 1024*5*5 taps x 700 columns x 4 bytes = 72 MB,
    above the 64 MiB limit; the arrays themselves are small (15 MB)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1024, 5, 704)).astype(np.float32)
    w = rng.standard_normal((K, 1024, 5, 5)).astype(np.float32)
    return x, w


def test_im2col_refuses_a_workspace_above_its_limit_and_auto_runs_direct():
    assert fastconv._ext.IM2COL_MAX_ROW_BYTES == 64 << 20
    x, w = wide_row_problem(K=16)
    with pytest.raises(MemoryError, match="workspace limit of 64 MiB.*algorithm='direct'"):
        fastconv.conv2d(x, w, algorithm="im2col")
    with pytest.raises(MemoryError, match="workspace limit"):
        fastconv.conv2d_backward(np.ones((1, 16, 1, 700), np.float32), x, w, algorithm="im2col")
    auto = fastconv.conv2d(x, w)          # would choose im2col: 25,600 taps, 16 filters
    assert np.array_equal(auto, fastconv.conv2d(x, w, algorithm="direct"))


# -- past 2**31 elements (opt-in: 8.6 GB arrays) ----------------------------------------------
def available_bytes():
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


needs_memory = pytest.mark.skipif(available_bytes() < 12 * 2**30,
                                  reason="needs 12 GB of available memory")


@pytest.mark.slow
@needs_memory
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_input_past_2_31_elements(algorithm):
    """x (1, 1, 65536, 32832): 2**31 + 2**22 elements; a strided 3x3 conv reads the last
    rows, whose offsets need 64-bit index math."""
    H, W = 2**16, BIG // 2**16
    x = np.empty((1, 1, H, W), dtype=np.float32)
    cols = (np.arange(W) % 13).astype(np.float32)
    for h0 in range(0, H, 2048):                # a pattern, filled in 270 MB chunks
        rows = (np.arange(h0, min(h0 + 2048, H)) % 7).astype(np.float32)
        x[0, 0, h0:h0 + 2048] = rows[:, None] * 0.25 + cols[None, :]
    w = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3) / 8
    y = fastconv.conv2d(x, w, stride=64, padding=1, algorithm=algorithm)
    P, Q = y.shape[2:]
    assert (P, Q) == ((H + 2 - 3) // 64 + 1, (W + 2 - 3) // 64 + 1)
    expected = np.zeros((P, Q))
    for r in range(3):
        for s in range(3):
            rows, cols_ = np.arange(P) * 64 + r - 1, np.arange(Q) * 64 + s - 1
            inside = np.outer((rows >= 0) & (rows < H), (cols_ >= 0) & (cols_ < W))
            taps = x[0, 0][np.ix_(np.clip(rows, 0, H - 1), np.clip(cols_, 0, W - 1))]
            expected += np.where(inside, taps.astype(np.float64) * w[0, 0, r, s], 0.0)
    assert rel_err(y[0, 0], expected) < 1e-6
    assert y[0, 0, -1, -1] == pytest.approx(expected[-1, -1], rel=1e-6)


@pytest.mark.slow
@needs_memory
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_output_and_grad_out_past_2_31_elements(algorithm):
    """y and grad_out (1, 129, 4096, 4096): 129 * 2**24 = 2**31 + 2**24 elements."""
    K, H = 129, 4096
    x = (np.arange(H * H, dtype=np.float32) % 17).reshape(1, 1, H, H) * 0.125
    w = (np.arange(K, dtype=np.float32) + 1).reshape(K, 1, 1, 1) / 64
    b = np.arange(K, dtype=np.float32) / 4
    y = fastconv.conv2d(x, w, b, algorithm=algorithm)
    assert y.size > 2**31
    for k in (0, 1, K // 2, K - 2, K - 1):       # the last planes lie past 2**31
        assert np.array_equal(y[0, k], x[0, 0] * w[k, 0, 0, 0] + b[k]), k
    del y
    dy = np.empty((1, K, H, H), dtype=np.float32)
    for k in range(K):
        dy[0, k] = (k % 5) + 1
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm)
    c = (np.arange(K) % 5) + 1.0
    assert rel_err(db, c * H * H) < 1e-5
    assert rel_err(dw.reshape(K), c * x.sum(dtype=np.float64)) < 1e-4
    assert rel_err(dx[0, 0], np.full((H, H), float(np.sum(c * w.reshape(K))))) < 1e-5
