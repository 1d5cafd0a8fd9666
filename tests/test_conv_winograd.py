"""algorithm="winograd" (src/conv_winograd*): F(4x4, 3x3) forward and input gradient against
the float64 reference loops and PyTorch, on every SIMD path, both dtypes, partial tiles,
every padding, the channel and filter passes, and its errors for unsupported geometry.

Tolerances. Winograd adds and subtracts the transformed values at up to 4x (input) and 8x
(output) scale, so float32 loses more than the direct sum: max |error| / max |y| against
float64 reaches about 5e-6 on these small shapes and 1e-5 on deep layers (C = K = 64 ..
256). The float32 tests allow 5e-5, a few times that; float64 stays below 1e-14 and the
tests allow 1e-12, as for the direct kernels.
"""
import functools
import os
import sys
import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._checks import conv_geometry

from conftest import SIMD_PATHS, rel_err, simd_path

F32_TOL = 5e-5
F64_TOL = 1e-12

# (N, C, H, W, K, padding): what each one exercises
SHAPES = {
    "one_image_odd_sizes": (1, 3, 7, 9, 5, 1),
    "asymmetric_padding_partial_tiles": (2, 13, 11, 6, 17, (0, 2, 1, 0)),
    "valid_one_tile": (1, 5, 6, 6, 3, 0),
    "valid_smaller_than_a_tile": (1, 2, 4, 5, 2, 0),
    "padding_2": (2, 8, 10, 13, 30, 2),
    "padding_3_input_gradient_crops": (1, 4, 3, 3, 2, (3, 1, 0, 3)),
    "filters_not_a_panel_multiple": (3, 7, 9, 8, 13, 1),
    "more_tiles_than_a_block": (4, 6, 30, 27, 7, 1),
    "channel_passes": (1, 300, 6, 5, 4, 1),         # more channels than one GEMM pass
    "filter_passes": (1, 3, 5, 6, 530, 1),          # more filters than one pass
}


def norm_kwargs(x_shape, w_shape, padding):
    g = conv_geometry(x_shape, w_shape, 1, padding, 1, 1, "t")
    return dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)


@functools.lru_cache(maxsize=None)
def case(name):
    """Arrays of a shape and the reference loops' output and input gradient (float64)."""
    N, C, H, W, K, padding = SHAPES[name]
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, 3, 3))
    b = rng.standard_normal(K)
    norm = norm_kwargs(x.shape, w.shape, padding)
    y = reference.conv2d(x, w, b, **norm)
    dy = rng.standard_normal(y.shape)
    dx = reference.conv2d_backward(dy, x, w, **norm)[0]
    return x, w, b, dy, y, dx


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype, tol", [(np.float64, F64_TOL), (np.float32, F32_TOL)])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_winograd_matches_reference(name, dtype, tol, with_bias, simd):
    x, w, b, dy, y_ref, dx_ref = case(name)
    padding = SHAPES[name][5]
    x, w, b, dy = (a.astype(dtype) for a in (x, w, b, dy))
    y = fastconv.conv2d(x, w, b if with_bias else None, padding=padding, algorithm="winograd")
    want = y_ref if with_bias else y_ref - b.astype(np.float64)[:, None, None]
    assert y.dtype == dtype and rel_err(y, want) < tol
    dx = fastconv.conv2d_backward(dy, x, w, padding=padding, algorithm="winograd")[0]
    assert dx.dtype == dtype and rel_err(dx, dx_ref) < tol


@pytest.mark.parametrize("padding", [0, 1, 2, (2, 0, 1, 3)])
def test_winograd_matches_pytorch_float32(padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 19, 15, 12)).astype(np.float32)
    w = rng.standard_normal((23, 19, 3, 3)).astype(np.float32)
    b = rng.standard_normal(23).astype(np.float32)
    pt, pb, pl, pr = norm_kwargs(x.shape, w.shape, padding)["padding"]
    xt = torch.nn.functional.pad(torch.tensor(x, dtype=torch.float64), (pl, pr, pt, pb))
    xt.requires_grad_(True)
    yt = torch.nn.functional.conv2d(xt, torch.tensor(w, dtype=torch.float64),
                                    torch.tensor(b, dtype=torch.float64))
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    H, W = x.shape[2:]
    dx_want = xt.grad.numpy()[:, :, pt:pt + H, pl:pl + W]
    y = fastconv.conv2d(x, w, b, padding=padding, algorithm="winograd")
    assert rel_err(y, yt.detach().numpy()) < F32_TOL
    dx = fastconv.conv2d_backward(dy, x, w, padding=padding, algorithm="winograd")[0]
    assert rel_err(dx, dx_want) < F32_TOL


def test_winograd_input_gradient_finite_differences_float64():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    kw = dict(padding=(1, 2, 0, 1))
    dy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape)
    dx = fastconv.conv2d_backward(dy, x, w, algorithm="winograd", **kw)[0]
    eps = 1e-6
    for idx in list(np.ndindex(x.shape))[::5]:
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric = np.sum((fastconv.conv2d(up, w, **kw) - fastconv.conv2d(down, w, **kw)) * dy)
        numeric /= 2 * eps
        assert abs(numeric - dx[idx]) < 1e-6 * max(1, abs(numeric)), idx


def test_winograd_weight_and_bias_gradients_match_direct():
    """The weight and bias gradients of algorithm="winograd" run direct or im2col."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 9, 8))
    w = rng.standard_normal((6, 5, 3, 3))
    dy = rng.standard_normal((2, 6, 9, 8))
    got = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="winograd")
    want = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="direct")
    assert rel_err(got[1], want[1]) < 1e-12 and np.array_equal(got[2], want[2])
    assert fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="winograd",
                                    input_grad=False)[0] is None


def test_winograd_with_flip_is_convolution():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 3, 8, 7))
    w = rng.standard_normal((2, 3, 3, 3))
    dy = rng.standard_normal((1, 2, 8, 7))
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    assert rel_err(fastconv.conv2d(x, w, padding=1, algorithm="winograd", flip=True),
                   fastconv.conv2d(x, flipped, padding=1, algorithm="direct")) < 1e-12
    assert rel_err(fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="winograd",
                                            flip=True)[0],
                   fastconv.conv2d_backward(dy, x, flipped, padding=1)[0]) < 1e-12


@pytest.mark.parametrize("kwargs, shown", [
    (dict(w_shape=(4, 3, 5, 5)), "filters 5x5"),
    (dict(w_shape=(4, 3, 3, 1)), "filters 3x1"),
    (dict(stride=2), "stride (2, 2)"),
    (dict(stride=(1, 2)), "stride (1, 2)"),
    (dict(dilation=2), "dilation (2, 2)"),
    (dict(groups=3, w_shape=(6, 1, 3, 3)), "groups 3"),
])
def test_winograd_rejects_unsupported_geometry(kwargs, shown):
    x = np.ones((1, 3, 10, 10), np.float32)
    w = np.ones(kwargs.pop("w_shape", (4, 3, 3, 3)), np.float32)
    with pytest.raises(ValueError, match="3x3 filters, stride 1, dilation 1 and groups 1") as e:
        fastconv.conv2d(x, w, algorithm="winograd", **kwargs)
    assert shown in str(e.value) and "conv2d" in str(e.value)
    dy = fastconv.conv2d(x, w, **kwargs)
    with pytest.raises(ValueError, match="winograd") as e:
        fastconv.conv2d_backward(dy, x, w, algorithm="winograd", **kwargs)
    assert shown in str(e.value) and "conv2d_backward" in str(e.value)


def test_winograd_is_deterministic_and_independent_of_threads(threads):
    """Each tile's sums run in a fixed order whatever block or thread holds the tile."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 24, 21, 19)).astype(np.float32)
    w = rng.standard_normal((20, 24, 3, 3)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    dy = rng.standard_normal((3, 20, 21, 19)).astype(np.float32)
    runs = []
    for nthreads in (2, 2, 1):
        threads(nthreads)
        runs.append((fastconv.conv2d(x, w, b, padding=1, algorithm="winograd"),
                     fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="winograd")[0]))
    for y, dx in runs[1:]:
        assert np.array_equal(y, runs[0][0]) and np.array_equal(dx, runs[0][1])


def test_winograd_non_contiguous_inputs_equal_contiguous():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 6, 20, 18))[::2, ::-2, 3:17:2, ::-1]
    w = np.asfortranarray(rng.standard_normal((10, 6, 3, 7))[:, ::2, :, ::3])
    b = rng.standard_normal(20)[::2]
    y = fastconv.conv2d(x, w, b, padding=1, algorithm="winograd")
    contiguous = [np.ascontiguousarray(a) for a in (x, w, b)]
    assert np.array_equal(y, fastconv.conv2d(*contiguous, padding=1, algorithm="winograd"))
    dy = rng.standard_normal(y.shape + (2,))[..., 0]
    got = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="winograd")[0]
    want = fastconv.conv2d_backward(np.ascontiguousarray(dy), *contiguous[:2], padding=1,
                                    algorithm="winograd")[0]
    assert np.array_equal(got, want)


def test_winograd_inputs_are_not_modified():
    rng = np.random.default_rng(12)
    arrays = [rng.standard_normal((2, 4, 9, 9)).astype(np.float32),
              rng.standard_normal((5, 4, 3, 3)).astype(np.float32),
              rng.standard_normal(5).astype(np.float32)]
    copies = [a.copy() for a in arrays]
    y = fastconv.conv2d(*arrays, padding=1, algorithm="winograd")
    dy = np.ones_like(y)
    fastconv.conv2d_backward(dy, arrays[0], arrays[1], padding=1, algorithm="winograd")
    for a, c in zip(arrays, copies):
        assert np.array_equal(a, c)
    assert np.all(dy == 1)


def test_winograd_simd_paths_agree():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 40, 17, 18)).astype(np.float32)
    w = rng.standard_normal((50, 40, 3, 3)).astype(np.float32)
    ys = []
    for path in SIMD_PATHS:
        with simd_path(path):
            ys.append(fastconv.conv2d(x, w, padding=1, algorithm="winograd"))
    for y in ys[1:]:
        assert rel_err(y, ys[0]) < F32_TOL


def test_winograd_kept_buffers_give_the_same_results_when_they_grow_and_shrink():
    """Each thread keeps its filter bank and block workspace between calls (conv_winograd.c):
    a call after a larger or a smaller one gives the bits of a first call."""
    rng = np.random.default_rng(7)
    shapes = [(2, 40, 12, 12, 48), (1, 3, 6, 7, 5), (3, 64, 9, 10, 70), (1, 3, 6, 7, 5)]
    cases = [(rng.standard_normal((n, c, h, w)), rng.standard_normal((k, c, 3, 3)))
             for n, c, h, w, k in shapes]
    first = [fastconv.conv2d(x, w, padding=1, algorithm="winograd") for x, w in cases]
    for (x, w), want in zip(cases[::-1], first[::-1]):
        np.testing.assert_array_equal(fastconv.conv2d(x, w, padding=1, algorithm="winograd"),
                                      want)


def live_thread_count():
    """The threads this process has now (Linux), or None where /proc is missing."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def openmp_keeps_idle_workers():
    """True under LLVM's OpenMP runtime (libomp, clang's), which keeps the worker threads of
    an ended thread in a pool for later threads; GNU's (libgomp) lets them exit with it."""
    try:
        with open("/proc/self/maps") as maps:
            return "libomp" in maps.read()
    except OSError:                      # no /proc (macOS): clang there links libomp
        return sys.platform == "darwin"


def test_winograd_kept_buffers_are_freed_when_threads_exit():
    """Each thread that ran a Winograd call keeps its buffers (the calling thread its filter
    bank, each OpenMP thread its workspace) until it exits: 30 short-lived threads leave
    nothing kept behind, and every result is right. Where the OpenMP runtime keeps idle
    workers alive for reuse, their workspaces stay with them (and grow to the largest
    problem each has run): then what the 30 threads leave kept is no more than one
    thread's share per thread that is not a Python thread, whatever the number of calls."""
    from fastconv import _ext

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 96, 14, 14)).astype(np.float32)
    w = rng.standard_normal((96, 96, 3, 3)).astype(np.float32)
    want = fastconv.conv2d(x, w, padding=1, algorithm="winograd")
    before = _ext.winograd_kept_bytes()
    results, kept_while_alive = [], []

    def one_call():
        results.append(fastconv.conv2d(x, w, padding=1, algorithm="winograd"))
        kept_while_alive.append(_ext.winograd_kept_bytes())

    for _ in range(30):
        t = threading.Thread(target=one_call)
        t.start()
        t.join()
    for got in results:
        np.testing.assert_array_equal(got, want)
    # 36 positions x 96 filters x 96 channels x 4 bytes: the calling thread's filter bank
    assert min(kept_while_alive) >= before + 36 * 96 * 96 * 4
    # OpenMP's worker threads of an ended thread exit a moment after it
    deadline = time.monotonic() + 5
    while _ext.winograd_kept_bytes() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    kept_after = _ext.winograd_kept_bytes()
    if openmp_keeps_idle_workers() and live_thread_count() is not None:
        pooled_workers = live_thread_count() - threading.active_count()
        one_thread_share = max(kept_while_alive) - before
        assert kept_after - before <= pooled_workers * one_thread_share
    else:
        assert kept_after <= before
