"""The Winograd F(4x4, 3x3) weight gradient (src/conv_winograd_weight.c) against the reference
loops, the direct kernel, PyTorch and finite differences, on every SIMD path and in both
dtypes; its determinism; and conv2d_backward(auto) running it where the plan says
(tests/test_plan.py tests where that is)."""
import numpy as np
import pytest

import fastconv
from fastconv import _ext, reference
from fastconv._checks import conv_geometry

from conftest import rel_err


def winograd_grad_w(dy, x, w, padding=1):
    """grad_w by the Winograd kernel, whatever auto would choose."""
    geom = conv_geometry(x.shape, w.shape, 1, padding, 1, 1, "t")
    dw = np.empty(w.shape, dtype=x.dtype)
    _ext.conv_backward(dy, x, w, None, dw, None, geom, "direct", "winograd")
    return dw


def case(rng, N, C, H, W, K, padding, dtype=np.float64):
    geom = conv_geometry((N, C, H, W), (K, C, 3, 3), 1, padding, 1, 1, "t")
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
    dy = rng.standard_normal(geom.output_shape).astype(dtype)
    return x, w, dy, geom


# Odd and even sizes, N = 1, channel and filter counts off every tile width (6, 12, 16, 32),
# each kind of padding, an output of one pixel, images wider than a chunk of tiles.
SMALL_SHAPES = [
    (1, 1, 3, 3, 1, 0),
    (2, 3, 7, 5, 4, 1),
    (1, 5, 6, 9, 7, (0, 2, 1, 0)),
    (3, 13, 11, 13, 33, 1),
    (2, 8, 4, 4, 5, 2),
    (1, 2, 9, 8, 3, "same"),
    (2, 17, 5, 12, 6, (1, 1)),
]


@pytest.mark.parametrize("shape", SMALL_SHAPES)
def test_matches_reference_float64(shape, simd):
    N, C, H, W, K, padding = shape
    x, w, dy, geom = case(np.random.default_rng(0), N, C, H, W, K, padding)
    _, want, _ = reference.conv2d_backward(dy, x, w, padding=geom.padding)
    assert rel_err(winograd_grad_w(dy, x, w, padding), want) < 1e-12


LARGER_SHAPES = [
    (2, 64, 20, 20, 70, 1),       # several chunks and M blocks of the GEMM
    (1, 20, 3, 600, 24, 1),       # one tile row wider than a chunk (300 tiles)
    (3, 40, 31, 9, 100, 0),       # odd output, tile rows spanning images within a chunk
    (2, 160, 9, 10, 200, 1),      # sums too large for one per thread: threads share filters
]


@pytest.mark.parametrize("shape", LARGER_SHAPES)
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_larger_shapes_match_direct_float64(shape, dtype, tol, simd):
    N, C, H, W, K, padding = shape
    x, w, dy, geom = case(np.random.default_rng(1), N, C, H, W, K, padding, dtype)
    want = np.empty(w.shape)
    _ext.conv_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                       None, want, None, geom, "direct", "direct")
    got = winograd_grad_w(dy, x, w, padding)
    assert got.dtype == dtype
    assert rel_err(got, want) < tol


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-10)])
def test_matches_pytorch(dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for N, C, H, W, K, padding in [(4, 64, 14, 15, 64, 1), (2, 7, 9, 6, 5, 0)]:
        x, w, dy, geom = case(rng, N, C, H, W, K, padding, dtype)
        top, bottom, left, right = geom.padding
        xt = torch.nn.functional.pad(torch.tensor(x), (left, right, top, bottom))
        want = torch.ops.aten.convolution_backward(
            torch.tensor(dy), xt, torch.tensor(w), None, [1, 1], [0, 0], [1, 1], False,
            [0, 0], 1, [False, True, False])[1].numpy()
        assert rel_err(winograd_grad_w(dy, x, w, padding), want) < tol


def test_finite_difference_gradient_float64():
    rng = np.random.default_rng(3)
    x, w, dy, geom = case(rng, 2, 3, 7, 6, 4, (1, 0, 2, 1))
    dw = winograd_grad_w(dy, x, w, (1, 0, 2, 1))

    def loss(w_):
        return np.sum(fastconv.conv2d(x, w_, padding=(1, 0, 2, 1)) * dy)

    eps = 1e-6
    for idx in list(np.ndindex(w.shape))[::2]:
        up, down = w.copy(), w.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric = (loss(up) - loss(down)) / (2 * eps)
        assert abs(numeric - dw[idx]) < 1e-6 * max(1, abs(numeric)), idx


def test_repeated_runs_are_bitwise_identical():
    x, w, dy, _ = case(np.random.default_rng(4), 6, 24, 14, 14, 20, 1, np.float32)
    first = winograd_grad_w(dy, x, w)
    for _ in range(5):
        assert np.array_equal(winograd_grad_w(dy, x, w), first)


@pytest.mark.parametrize("shape", [(5, 6, 13, 13, 9), (2, 160, 9, 10, 200)],
                         ids=["threads share tiles", "threads share filters"])
def test_thread_counts_agree(threads, shape):
    x, w, dy, _ = case(np.random.default_rng(5), *shape, 1)
    results = []
    for n in (1, 2, 3, 4):
        threads(n)
        results.append(winograd_grad_w(dy, x, w))
        assert np.array_equal(winograd_grad_w(dy, x, w), results[-1])   # per count, bitwise
    for other in results[1:]:
        assert rel_err(other, results[0]) < 1e-12


def test_inputs_are_not_modified():
    x, w, dy, _ = case(np.random.default_rng(6), 2, 5, 8, 8, 4, 1)
    copies = [a.copy() for a in (x, w, dy)]
    winograd_grad_w(dy, x, w)
    for a, b in zip((x, w, dy), copies):
        assert np.array_equal(a, b)


def test_nan_propagates():
    x, w, dy, _ = case(np.random.default_rng(7), 1, 2, 6, 6, 3, 1)
    x[0, 1, 2, 3] = np.nan
    dw = winograd_grad_w(dy, x, w)
    assert np.all(np.isnan(dw[:, 1])) and np.all(np.isfinite(dw[:, 0]))


@pytest.mark.parametrize("kwargs", [dict(stride=2), dict(dilation=2), dict(groups=2)])
def test_unsupported_geometry_is_refused(kwargs):
    x = np.zeros((1, 4, 8, 8))
    w = np.zeros((4, 4 // kwargs.get("groups", 1), 3, 3))
    geom = conv_geometry(x.shape, w.shape, kwargs.get("stride", 1), 1,
                         kwargs.get("dilation", 1), kwargs.get("groups", 1), "t")
    dy = np.zeros(geom.output_shape)
    with pytest.raises(ValueError, match="3x3 filters, stride 1"):
        _ext.conv_backward(dy, x, w, None, np.empty(w.shape), None, geom, "direct", "winograd")
    w5 = np.zeros((4, 4, 5, 5))
    geom5 = conv_geometry(x.shape, w5.shape, 1, 2, 1, 1, "t")
    with pytest.raises(ValueError, match="3x3 filters"):
        _ext.conv_backward(np.zeros(geom5.output_shape), x, w5, None, np.empty(w5.shape), None,
                           geom5, "direct", "winograd")


def test_sums_above_the_workspace_limit_are_refused():
    C = K = 1024      # 16 x 1024 x 1024 float64 sums: 128 MiB > 64 MiB
    assert 16 * C * K * 8 > _ext.WINOGRAD_MAX_SUMS_BYTES
    x = np.zeros((1, C, 2, 2))
    w = np.zeros((K, C, 3, 3))
    geom = conv_geometry(x.shape, w.shape, 1, 1, 1, 1, "t")
    with pytest.raises(MemoryError, match="winograd"):
        _ext.conv_backward(np.zeros(geom.output_shape), x, w, None, np.empty(w.shape), None,
                           geom, "direct", "winograd")
    assert fastconv.conv_plan(x.shape, w.shape, padding=1).backward_weight != "winograd"


def test_auto_backward_uses_winograd_for_grad_w_only():
    """conv2d_backward(auto) on a deep layer: grad_w bitwise equal to the Winograd kernel's,
    grad_x and grad_b to the backward algorithm's; an explicit algorithm is obeyed."""
    x, w, dy, geom = case(np.random.default_rng(8), 4, 128, 16, 16, 128, 1, np.float32)
    plan = fastconv.conv_plan(x.shape, w.shape, padding=1)
    assert plan.backward_weight == "winograd"
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, padding=1)
    assert np.array_equal(gw, winograd_grad_w(dy, x, w))
    algorithm = plan.backward_data
    gx2, gw2, gb2 = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm=algorithm)
    assert np.array_equal(gx, gx2) and np.array_equal(gb, gb2)
    assert rel_err(gw2, gw) < 1e-5
    _, gw_direct, _ = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="direct")
    dw = np.empty(w.shape, np.float32)
    _ext.conv_backward(dy, x, w, None, dw, None, geom, "direct", "direct")
    assert np.array_equal(gw_direct, dw)
    # flip: the gradient of the flipped filters, flipped back
    _, gw_flip, _ = fastconv.conv2d_backward(dy, x, w[:, :, ::-1, ::-1], padding=1, flip=True)
    assert np.array_equal(gw_flip, gw[:, :, ::-1, ::-1])
