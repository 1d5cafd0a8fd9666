"""Pooling: fastconv against the plain-loop reference and PyTorch, gradients, edge cases, errors.

The sweeps pair every small per-axis geometry (size <= 12, window <= 5, stride <= 4,
padding <= window // 2, dilation <= 3 for max pooling, ceil_mode on and off) once with the
height and once with the width, so every case each axis can meet is run; both SIMD paths and
both float types go through them.
"""
import itertools

import numpy as np
import pytest

import fastconv
from fastconv import reference as ref
from fastconv.sizing import output_length

from conftest import simd_path, thread_count


def _cpu_has_avx2():
    try:
        fastconv.set_simd("avx2")
        return True
    except ValueError:
        return False
    finally:
        fastconv.set_simd("auto")


HAVE_AVX2 = _cpu_has_avx2()
DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def torch():
    """PyTorch as the oracle, on one thread: its idle threads wake slowly on a busy machine,
    and tiny oracle calls gain nothing from them."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(params=["generic", "avx2"])
def simd(request):
    """Run a test on the portable micro-kernels and on the AVX2 ones."""
    if request.param == "avx2" and not HAVE_AVX2:
        pytest.skip("this CPU lacks AVX2/FMA")
    with simd_path(request.param):
        yield request.param


# ---- the sweep of small geometries ----

def _axis_geometries(dilations):
    """(n, kernel, stride, padding, dilation) per ceil_mode, for every valid small axis."""
    found = {False: [], True: []}
    for n, k, s, d, ceil in itertools.product(range(1, 13), range(1, 6), range(1, 5),
                                              dilations, (False, True)):
        for p in range(k // 2 + 1):
            if output_length(n, k, s, p, d, ceil) >= 1:
                found[ceil].append((n, k, s, p, d))
    return found


def _sweep(dilations):
    """Cases (H-axis, W-axis, ceil_mode): each axis geometry once as height and once as width,
    partnered by a fixed shuffle."""
    rng = np.random.default_rng(1234)
    cases = []
    for ceil, axes in _axis_geometries(dilations).items():
        partner = rng.permutation(len(axes))
        cases += [(axes[i], axes[partner[i]], ceil) for i in range(len(axes))]
    return cases


MAX_SWEEP = _sweep(dilations=(1, 2, 3))
AVG_SWEEP = _sweep(dilations=(1,))


def _max_args(h, w, ceil):
    (_, kh, sh, ph, dh), (_, kw, sw, pw, dw) = h, w
    return dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                ceil_mode=ceil)


def _reference_args(args):
    return (args["kernel_size"], args["stride"], args["padding"], args["dilation"],
            args["ceil_mode"])


def _input(rng, shape, dtype, ties=False):
    x = rng.standard_normal(shape)
    if ties:
        x = np.round(x)   # many equal values: exercises the first-maximum rule
    return x.astype(dtype)


def _has_empty_window(n, k, s, p, d, ceil):
    """Whether some window along this axis has no tap inside the input (only padding)."""
    out = output_length(n, k, s, p, d, ceil)
    return any(all(not 0 <= o * s - p + t * d < n for t in range(k)) for o in range(out))


def test_sweep_covers_kernels_1_to_5_strides_1_to_4_dilations_1_to_3_both_ceil_modes():
    assert len(MAX_SWEEP) > 2000 and len(AVG_SWEEP) > 700
    seen = {(h[1], h[2], h[4], ceil) for h, _, ceil in MAX_SWEEP}
    assert seen == {(k, s, d, c) for k in range(1, 6) for s in range(1, 5) for d in (1, 2, 3)
                    for c in (False, True)}


# ---- max pooling ----

def test_max_pool_matches_reference_sweep(simd):
    rng = np.random.default_rng(0)
    for case_number, (h, w, ceil) in enumerate(MAX_SWEEP):
        args = _max_args(h, w, ceil)
        x = _input(rng, (1, 2, h[0], w[0]), np.float64, ties=case_number % 3 == 0)
        y_ref, i_ref = ref.max_pool2d(x, *_reference_args(args), return_indices=True)
        dy = rng.standard_normal(y_ref.shape)
        dx_ref = ref.max_pool2d_backward(dy, x, *_reference_args(args))
        for dtype in DTYPES:
            xd, dyd = x.astype(dtype), dy.astype(dtype)
            y, indices, argmax = fastconv.max_pool2d(xd, **args, return_indices=True,
                                                     return_argmax=True)
            assert y.dtype == dtype
            np.testing.assert_array_equal(y, y_ref.astype(dtype), err_msg=str(args))
            np.testing.assert_array_equal(indices, i_ref, err_msg=str(args))
            tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
            for how in (dict(), dict(argmax=argmax)):
                dx = fastconv.max_pool2d_backward(dyd, xd, **args, **how)
                np.testing.assert_allclose(dx, dx_ref, **tol, err_msg=f"{args} {how.keys()}")


def test_max_pool_matches_torch_sweep(simd, torch):
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        for case_number, (h, w, ceil) in enumerate(MAX_SWEEP):
            args = _max_args(h, w, ceil)
            x = _input(rng, (2, 3, h[0], w[0]), dtype, ties=case_number % 3 == 0)
            xt = torch.from_numpy(x)
            yt, it = F.max_pool2d(xt, **args, return_indices=True)
            y, indices = fastconv.max_pool2d(x, **args, return_indices=True)
            np.testing.assert_array_equal(y, yt.numpy(), err_msg=str(args))
            np.testing.assert_array_equal(indices, it.numpy(), err_msg=str(args))
            if _has_empty_window(*h, ceil) or _has_empty_window(*w, ceil):
                continue   # PyTorch's backward writes out of bounds for those windows
            dy = _input(rng, y.shape, dtype)
            dxt = torch.ops.aten.max_pool2d_with_indices_backward(
                torch.from_numpy(dy), xt, list(args["kernel_size"]), list(args["stride"]),
                list(args["padding"]), list(args["dilation"]), ceil, it).numpy()
            for how in (dict(), dict(indices=indices), dict(indices=it.numpy())):
                dx = fastconv.max_pool2d_backward(dy, x, **args, **how)
                np.testing.assert_allclose(dx, dxt, rtol=1e-6, atol=1e-6, err_msg=str(args))


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_fast_paths_match_reference_across_row_lengths(simd, kernel, padding, ceil_mode):
    """2x2 and 3x3 stride-2 windows run on micro-kernels 8 windows at a time with a masked
    tail: rows of 1 to 40 windows, with and without padded borders."""
    if padding > kernel // 2:
        pytest.skip("padding larger than half the window")
    rng = np.random.default_rng(kernel * 10 + padding)
    args = dict(kernel_size=kernel, stride=2, padding=padding, ceil_mode=ceil_mode)
    for W in list(range(kernel, 30)) + [33, 47, 64, 81]:
        H = 5 + W % 4
        x = _input(rng, (2, 2, H, W), np.float64, ties=W % 2 == 0)
        ref_args = ((kernel, kernel), (2, 2), (padding, padding), (1, 1), ceil_mode)
        y_ref, i_ref = ref.max_pool2d(x, *ref_args, return_indices=True)
        dy = rng.standard_normal(y_ref.shape)
        dx_ref = ref.max_pool2d_backward(dy, x, *ref_args)
        avg_args = ref_args[:3] + (ceil_mode,)
        ya_ref = ref.avg_pool2d(x, *avg_args)
        dxa_ref = ref.avg_pool2d_backward(dy, x, *avg_args)
        for dtype in DTYPES:
            tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
            xd, dyd = x.astype(dtype), dy.astype(dtype)
            y, indices, argmax = fastconv.max_pool2d(xd, **args, return_indices=True,
                                                     return_argmax=True)
            np.testing.assert_array_equal(y, y_ref.astype(dtype), err_msg=f"W={W}")
            np.testing.assert_array_equal(indices, i_ref, err_msg=f"W={W}")
            np.testing.assert_array_equal(fastconv.max_pool2d(xd, **args), y)
            for how in (dict(), dict(argmax=argmax), dict(indices=indices)):
                dx = fastconv.max_pool2d_backward(dyd, xd, **args, **how)
                np.testing.assert_allclose(dx, dx_ref, **tol, err_msg=f"W={W} {how.keys()}")
            np.testing.assert_allclose(fastconv.avg_pool2d(xd, **args), ya_ref, **tol)
            np.testing.assert_allclose(fastconv.avg_pool2d_backward(dyd, xd, **args), dxa_ref,
                                       **tol)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N, C", [(8, 16), (3, 5), (7, 1)])
def test_2x2_windows_on_many_small_planes_match_reference(simd, threads, N, C):
    """2x2 stride-2 windows that end at each plane's bottom run on planes stacked on top
    of each other (as many as the plane count's divisors and the threads allow): every
    result and gradient, argmax and indices included, stays the plane-by-plane one."""
    rng = np.random.default_rng(N * 100 + C)
    for (H, W), ceil_mode in itertools.product([(2, 2), (4, 9), (10, 10), (10, 11), (5, 6)],
                                               (False, True)):
        x = _input(rng, (N, C, H, W), np.float64, ties=True)
        ref_args = ((2, 2), (2, 2), (0, 0), (1, 1), ceil_mode)
        y_ref, i_ref = ref.max_pool2d(x, *ref_args, return_indices=True)
        dy = rng.standard_normal(y_ref.shape)
        where = f"{(N, C, H, W)} ceil_mode={ceil_mode}"
        with thread_count(threads):
            y, indices, argmax = fastconv.max_pool2d(x, 2, ceil_mode=ceil_mode,
                                                     return_indices=True, return_argmax=True)
            np.testing.assert_array_equal(y, y_ref, err_msg=where)
            np.testing.assert_array_equal(indices, i_ref, err_msg=where)
            np.testing.assert_array_equal(fastconv.max_pool2d(x, 2, ceil_mode=ceil_mode), y)
            dx_ref = ref.max_pool2d_backward(dy, x, *ref_args)
            for how in (dict(), dict(argmax=argmax), dict(indices=indices)):
                dx = fastconv.max_pool2d_backward(dy, x, 2, ceil_mode=ceil_mode, **how)
                np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, err_msg=f"{where} {how}")
            avg_args = ref_args[:3] + (ceil_mode,)
            np.testing.assert_allclose(fastconv.avg_pool2d(x, 2, ceil_mode=ceil_mode),
                                       ref.avg_pool2d(x, *avg_args), rtol=1e-12, err_msg=where)
            np.testing.assert_allclose(
                fastconv.avg_pool2d_backward(dy, x, 2, ceil_mode=ceil_mode),
                ref.avg_pool2d_backward(dy, x, *avg_args), rtol=1e-12, err_msg=where)


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (3, 1), (2, 1)])
def test_max_pool_propagates_nan(simd, kernel, stride):
    """A NaN anywhere in a window is the window's maximum, and its index is the last NaN of the
    window in row-major order, as PyTorch reports it."""
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        x = _input(rng, (1, 3, 9, 21), dtype)
        nan_at = rng.random(x.shape) < 0.08
        x[nan_at] = np.nan
        x[0, 2, 4, 4:6] = np.nan           # two NaNs in one window
        y, indices = fastconv.max_pool2d(x, kernel, stride, return_indices=True)
        y_ref, i_ref = ref.max_pool2d(x, (kernel,) * 2, (stride,) * 2, return_indices=True)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
        assert np.isnan(y).any()
        np.testing.assert_array_equal(y, y_ref.astype(dtype))     # NaNs compare equal here
        np.testing.assert_array_equal(indices, i_ref)
        assert np.isnan(x.reshape(3, -1)[np.arange(3)[:, None], indices.reshape(3, -1)]
                        [np.isnan(y.reshape(3, -1))]).all()


def test_max_pool_nan_matches_torch(simd, torch):
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    for dtype, (kernel, stride, padding) in itertools.product(DTYPES, [(2, 2, 0), (3, 2, 1),
                                                                        (3, 1, 1)]):
        x = _input(rng, (2, 2, 11, 19), dtype)
        x[rng.random(x.shape) < 0.1] = np.nan
        yt, it = F.max_pool2d(torch.from_numpy(x), kernel, stride, padding, return_indices=True)
        y, indices = fastconv.max_pool2d(x, kernel, stride, padding, return_indices=True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(indices, it.numpy())


def test_max_pool_ties_take_the_first_maximum(simd):
    for dtype in DTYPES:
        x = np.ones((1, 1, 6, 20), dtype=dtype)
        y, indices = fastconv.max_pool2d(x, 2, return_indices=True)
        first = (2 * np.arange(3)[:, None]) * 20 + 2 * np.arange(10)[None, :]
        np.testing.assert_array_equal(indices[0, 0], first)
        dx = fastconv.max_pool2d_backward(np.ones_like(y), x, 2)
        np.testing.assert_array_equal(dx[0, 0, ::2, ::2], 1)
        assert dx.sum() == y.size
        y3, i3 = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
        y3_ref, i3_ref = ref.max_pool2d(x, (3, 3), (2, 2), (1, 1), return_indices=True)
        np.testing.assert_array_equal(i3, i3_ref)


def test_max_pool_all_neg_inf_window_gives_neg_inf_and_a_valid_index(simd):
    for dtype in DTYPES:
        x = np.full((1, 2, 8, 18), -np.inf, dtype=dtype)
        for kernel, stride, padding in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1)]:
            y, indices, argmax = fastconv.max_pool2d(x, kernel, stride, padding,
                                                     return_indices=True, return_argmax=True)
            assert np.all(y == -np.inf)
            assert indices.min() >= 0 and indices.max() < 8 * 18
            _, i_ref = ref.max_pool2d(x, (kernel,) * 2, (stride,) * 2, (padding,) * 2,
                                      return_indices=True)
            np.testing.assert_array_equal(indices, i_ref)   # the window's first pixel
            dy = np.ones_like(y)
            dx = fastconv.max_pool2d_backward(dy, x, kernel, stride, padding)
            np.testing.assert_array_equal(
                dx, fastconv.max_pool2d_backward(dy, x, kernel, stride, padding, argmax=argmax))
            np.testing.assert_array_equal(
                dx, fastconv.max_pool2d_backward(dy, x, kernel, stride, padding, indices=indices))
            assert dx.sum() == y.size


def test_max_pool_window_wholly_in_padding_gives_neg_inf_and_no_gradient(simd):
    # A 1x1 image, window 2 with dilation 2 and padding 1: taps at -1 and 1, both padding.
    x = np.array([[[[3.0]]]])
    y, indices, argmax = fastconv.max_pool2d(x, 2, 1, 1, 2, return_indices=True,
                                             return_argmax=True)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == -np.inf
    assert indices[0, 0, 0, 0] == 2     # what PyTorch reports: outside the 1-pixel plane
    for how in (dict(), dict(indices=indices), dict(argmax=argmax)):
        dx = fastconv.max_pool2d_backward(np.ones_like(y), x, 2, 1, 1, 2, **how)
        np.testing.assert_array_equal(dx, 0)


def test_max_pool_gradient_goes_whole_to_each_maximum(simd):
    rng = np.random.default_rng(7)
    for dtype in DTYPES:
        x = rng.permutation(2 * 3 * 12 * 17).reshape(2, 3, 12, 17).astype(dtype)  # distinct
        y, indices = fastconv.max_pool2d(x, 2, return_indices=True)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = fastconv.max_pool2d_backward(dy, x, 2)
        expected = np.zeros((6, 12 * 17), dtype=dtype)
        np.put_along_axis(expected, indices.reshape(6, -1), dy.reshape(6, -1), axis=1)
        np.testing.assert_array_equal(dx, expected.reshape(x.shape))
        untouched = np.ones(x.shape, bool)
        untouched[:, :, :12, :16] = False
        assert np.all(dx[untouched] == 0)   # the odd last column belongs to no window


def test_max_pool_overlapping_windows_accumulate(simd):
    """3x3 windows with stride 1 around a single peak: every window holding it sends it its
    gradient, and every other window sends its own to its maximum, its top-left pixel (x
    falls along each row and down the rows)."""
    expected = np.zeros((7, 7))
    for p, q in itertools.product(range(5), range(5)):
        holds_peak = p <= 3 <= p + 2 and q <= 3 <= q + 2
        expected[(3, 3) if holds_peak else (p, q)] += 5 * p + q + 1      # dy[p, q]
    for dtype in DTYPES:
        x = np.zeros((1, 1, 7, 7), dtype=dtype) - np.arange(49, dtype=dtype).reshape(7, 7)
        x[0, 0, 3, 3] = 100
        dy = np.arange(1, 26, dtype=dtype).reshape(1, 1, 5, 5)
        for how in ("recompute", "indices", "argmax"):
            y, indices, argmax = fastconv.max_pool2d(x, 3, 1, return_indices=True,
                                                     return_argmax=True)
            extra = {"recompute": {}, "indices": dict(indices=indices),
                     "argmax": dict(argmax=argmax)}[how]
            dx = fastconv.max_pool2d_backward(dy, x, 3, 1, **extra)
            assert dx[0, 0, 3, 3] == dy[0, 0, 1:4, 1:4].sum()   # the 9 windows containing it
            np.testing.assert_array_equal(dx[0, 0], expected)


def test_max_pool_3x3_stride_2_overlaps_like_torch(simd, torch):
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    x = _input(rng, (2, 3, 17, 29), np.float32, ties=True)
    xt = torch.from_numpy(x).requires_grad_()
    yt = F.max_pool2d(xt, 3, 2, 1)
    dy = _input(rng, yt.shape, np.float32)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(dy, x, 3, 2, 1), xt.grad.numpy())


def test_return_indices_round_trip(simd):
    """Our indices and PyTorch's are the same, and backward gives the same gradient from our
    indices, from the compact argmax and from recomputing the maxima."""
    rng = np.random.default_rng(9)
    for dtype in DTYPES:
        x = _input(rng, (3, 4, 14, 23), dtype, ties=True)
        for args in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                     dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True)]:
            y, indices, argmax = fastconv.max_pool2d(x, **args, return_indices=True,
                                                     return_argmax=True)
            assert indices.dtype == np.int64 and argmax.dtype == np.uint8
            y_only = fastconv.max_pool2d(x, **args)
            np.testing.assert_array_equal(y_only, y)
            # the indices point at the maxima
            flat = x.reshape(x.shape[0] * x.shape[1], -1)
            picked = np.take_along_axis(flat, indices.reshape(flat.shape[0], -1), axis=1)
            np.testing.assert_array_equal(picked.reshape(y.shape), y)
            dy = _input(rng, y.shape, dtype)
            recomputed = fastconv.max_pool2d_backward(dy, x, **args)
            np.testing.assert_array_equal(
                fastconv.max_pool2d_backward(dy, x, **args, indices=indices), recomputed)
            np.testing.assert_array_equal(
                fastconv.max_pool2d_backward(dy, x, **args, argmax=argmax), recomputed)


def test_return_indices_round_trip_with_torch(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(10)
    x = _input(rng, (2, 3, 16, 16), np.float32, ties=True)
    yt, it = F.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    y, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(indices, it.numpy())
    # PyTorch's max_unpool2d takes our indices
    unpooled = F.max_unpool2d(torch.from_numpy(y), torch.from_numpy(indices), 2).numpy()
    np.testing.assert_array_equal(unpooled, fastconv.max_pool2d_backward(y, x, 2))


def test_large_windows_return_indices_but_no_argmax():
    rng = np.random.default_rng(11)
    x = _input(rng, (1, 2, 20, 20), np.float64)
    y, indices = fastconv.max_pool2d(x, 17, return_indices=True)
    y_ref, i_ref = ref.max_pool2d(x, (17, 17), (17, 17), return_indices=True)
    np.testing.assert_array_equal(indices, i_ref)
    with pytest.raises(ValueError, match="at most 256 taps"):
        fastconv.max_pool2d(x, 17, return_argmax=True)
    fastconv.max_pool2d(x, 16, return_argmax=True)   # 256 taps still fit a uint8


# ---- average pooling ----

def test_avg_pool_matches_reference_sweep(simd):
    rng = np.random.default_rng(12)
    for case_number, (h, w, ceil) in enumerate(AVG_SWEEP):
        args = _max_args(h, w, ceil)
        del args["dilation"]
        args["count_include_pad"] = case_number % 2 == 0
        args["divisor_override"] = [None, None, 3, -2][case_number % 4]
        ref_args = (args["kernel_size"], args["stride"], args["padding"], ceil,
                    args["count_include_pad"], args["divisor_override"])
        x = rng.standard_normal((1, 2, h[0], w[0]))
        y_ref = ref.avg_pool2d(x, *ref_args)
        dy = rng.standard_normal(y_ref.shape)
        dx_ref = ref.avg_pool2d_backward(dy, x, *ref_args)
        for dtype in DTYPES:
            tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12,
                                                                               atol=1e-14)
            y = fastconv.avg_pool2d(x.astype(dtype), **args)
            assert y.dtype == dtype
            np.testing.assert_allclose(y, y_ref, **tol, err_msg=str(args))
            dx = fastconv.avg_pool2d_backward(dy.astype(dtype), x.astype(dtype), **args)
            np.testing.assert_allclose(dx, dx_ref, **tol, err_msg=str(args))


def test_avg_pool_matches_torch_sweep(simd, torch):
    F = torch.nn.functional
    rng = np.random.default_rng(13)
    for dtype in DTYPES:
        tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
        for case_number, (h, w, ceil) in enumerate(AVG_SWEEP):
            args = _max_args(h, w, ceil)
            del args["dilation"]
            args["count_include_pad"] = case_number % 2 == 1
            args["divisor_override"] = [None, 5, None, None][case_number % 4]
            x = _input(rng, (2, 3, h[0], w[0]), dtype)
            xt = torch.from_numpy(x).requires_grad_()
            yt = F.avg_pool2d(xt, **args)
            dy = _input(rng, yt.shape, dtype)
            yt.backward(torch.from_numpy(dy))
            np.testing.assert_allclose(fastconv.avg_pool2d(x, **args), yt.detach().numpy(),
                                       **tol, err_msg=str(args))
            np.testing.assert_allclose(fastconv.avg_pool2d_backward(dy, x, **args),
                                       xt.grad.numpy(), **tol, err_msg=str(args))


@pytest.mark.parametrize("args", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    dict(kernel_size=(2, 4), stride=(3, 1), padding=(1, 2), ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, divisor_override=4),
])
def test_avg_pool_gradient_is_the_adjoint(simd, args):
    """Average pooling is linear, so its exact gradient satisfies <A x, g> = <x, A^T g>; a
    central difference confirms one coordinate."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 3, 13, 11))
    y = fastconv.avg_pool2d(x, **args)
    g = rng.standard_normal(y.shape)
    dx = fastconv.avg_pool2d_backward(g, x, **args)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, dx), rtol=1e-12)
    e = np.zeros_like(x)
    e[1, 2, 6, 5] = 1e-3
    numeric = (np.vdot(fastconv.avg_pool2d(x + e, **args), g)
               - np.vdot(fastconv.avg_pool2d(x - e, **args), g)) / 2e-3
    np.testing.assert_allclose(numeric, dx[1, 2, 6, 5], rtol=1e-7)


def test_max_pool_gradient_matches_finite_differences(simd):
    rng = np.random.default_rng(15)
    x = rng.permutation(2 * 9 * 10).reshape(1, 2, 9, 10) / 7.0   # distinct: differentiable
    args = dict(kernel_size=3, stride=2, padding=1)
    y = fastconv.max_pool2d(x, **args)
    g = rng.standard_normal(y.shape)
    dx = fastconv.max_pool2d_backward(g, x, **args)
    for index in [(0, 0, 4, 4), (0, 1, 8, 9), (0, 1, 0, 0), (0, 0, 3, 6)]:
        e = np.zeros_like(x)
        e[index] = 1e-4
        numeric = (np.vdot(fastconv.max_pool2d(x + e, **args), g)
                   - np.vdot(fastconv.max_pool2d(x - e, **args), g)) / 2e-4
        np.testing.assert_allclose(numeric, dx[index], rtol=1e-6, atol=1e-9)


def test_avg_pool_ceil_mode_divisor_ignores_the_overhang():
    # 5x5 input, window 2, stride 2, padding 1, ceil_mode: the last windows overhang the
    # padding; count_include_pad counts the padding they cover but not the overhang.
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    y = fastconv.avg_pool2d(x, 2, 2, 1, ceil_mode=True)
    np.testing.assert_allclose(y[0, 0], [[0.0, 0.75, 1.75],
                                         [3.75, 9.0, 11.0],
                                         [8.75, 19.0, 21.0]])
    y = fastconv.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y[0, 0], [[0.0, 1.5, 3.5], [7.5, 9.0, 11.0], [17.5, 19.0, 21.0]])


# ---- adaptive and global average pooling ----

@pytest.mark.parametrize("H, W", [(7, 5), (12, 12), (10, 33), (1, 1)])
def test_adaptive_avg_pool_matches_reference(simd, H, W):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 3, H, W))
    for size in [(1, 1), (2, 3), (3, 5), (4, 4), (5, 7), (H, W), (2 * H, W + 3)]:
        y = fastconv.adaptive_avg_pool2d(x, size)
        np.testing.assert_allclose(y, ref.adaptive_avg_pool2d(x, size), rtol=1e-12)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_allclose(fastconv.adaptive_avg_pool2d_backward(dy, x, size),
                                   ref.adaptive_avg_pool2d_backward(dy, x, size), rtol=1e-12)
        y32 = fastconv.adaptive_avg_pool2d(x.astype(np.float32), size)
        assert y32.dtype == np.float32
        np.testing.assert_allclose(y32, y, rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_matches_torch(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(17)
    for dtype in DTYPES:
        x = _input(rng, (2, 3, 11, 17), dtype)
        for size in [1, (3, 4), (None, 5), (11, None), (6, 8), (4, 17)]:
            xt = torch.from_numpy(x).requires_grad_()
            yt = F.adaptive_avg_pool2d(xt, size)
            dy = _input(rng, yt.shape, dtype)
            yt.backward(torch.from_numpy(dy))
            tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
            np.testing.assert_allclose(fastconv.adaptive_avg_pool2d(x, size),
                                       yt.detach().numpy(), **tol)
            np.testing.assert_allclose(fastconv.adaptive_avg_pool2d_backward(dy, x, size),
                                       xt.grad.numpy(), **tol)


def test_global_avg_pool_is_the_mean_of_each_plane(simd):
    rng = np.random.default_rng(18)
    x = rng.standard_normal((3, 5, 9, 14))
    y = fastconv.global_avg_pool2d(x)
    assert y.shape == (3, 5, 1, 1)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = fastconv.global_avg_pool2d_backward(dy, x)
    np.testing.assert_allclose(dx, np.broadcast_to(dy / (9 * 14), x.shape), rtol=1e-12)


# ---- dtypes, layouts, threads ----

def test_dtypes_are_kept_and_integers_compute_in_float64():
    x32 = np.ones((1, 1, 4, 4), np.float32)
    assert fastconv.max_pool2d(x32, 2).dtype == np.float32
    assert fastconv.avg_pool2d(x32.astype(np.float64), 2).dtype == np.float64
    assert fastconv.max_pool2d(np.ones((1, 1, 4, 4), np.int32), 2).dtype == np.float64
    assert fastconv.avg_pool2d(np.ones((1, 1, 4, 4), bool), 2).dtype == np.float64
    assert fastconv.max_pool2d(x32.astype(np.float16), 2).dtype == np.float32
    assert fastconv.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float64), x32, 2).dtype \
        == np.float64


def test_non_contiguous_input_works_and_inputs_are_never_modified(simd):
    rng = np.random.default_rng(19)
    base = rng.standard_normal((4, 6, 30, 40)).astype(np.float32)
    x = base[::2, 1::2, 3::1, ::2].transpose(0, 1, 3, 2)   # strided and transposed
    assert not x.flags.c_contiguous
    kept = base.copy()
    xc = np.ascontiguousarray(x)
    y, indices, argmax = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True,
                                             return_argmax=True)
    np.testing.assert_array_equal(y, fastconv.max_pool2d(xc, 3, 2, 1))
    dy = rng.standard_normal(y.shape).astype(np.float32)[..., ::-1]
    dyc = np.ascontiguousarray(dy)
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(dy, x, 3, 2, 1),
                                  fastconv.max_pool2d_backward(dyc, xc, 3, 2, 1))
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, 2), fastconv.avg_pool2d(xc, 2))
    dy2 = np.ones((2, 3, 10, 13), np.float32)[:, :, ::-1]
    np.testing.assert_array_equal(fastconv.avg_pool2d_backward(dy2, x, 2),
                                  fastconv.avg_pool2d_backward(np.ascontiguousarray(dy2), xc, 2))
    ind_copy, am_copy = indices.copy(), argmax.copy()
    fastconv.max_pool2d_backward(dy, x, 3, 2, 1, indices=indices)
    fastconv.max_pool2d_backward(dy, x, 3, 2, 1, argmax=argmax)
    np.testing.assert_array_equal(base, kept)
    np.testing.assert_array_equal(indices, ind_copy)
    np.testing.assert_array_equal(argmax, am_copy)


def test_results_do_not_depend_on_the_number_of_threads(simd):
    rng = np.random.default_rng(20)
    x = _input(rng, (4, 8, 33, 30), np.float32, ties=True)
    dy = np.ones((4, 8, 17, 15), np.float32)
    results = []
    for threads in (1, 2, 3):
        with thread_count(threads):
            results.append([fastconv.max_pool2d(x, 3, 2, 1), fastconv.avg_pool2d(x, 3, 2, 1),
                            fastconv.max_pool2d_backward(dy, x, 3, 2, 1),
                            fastconv.avg_pool2d_backward(dy, x, 3, 2, 1)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_empty_batch_or_channels_give_empty_results():
    x = np.ones((0, 3, 8, 8), np.float32)
    assert fastconv.max_pool2d(x, 2).shape == (0, 3, 4, 4)
    y, indices = fastconv.max_pool2d(np.ones((2, 0, 8, 8)), 2, return_indices=True)
    assert y.shape == indices.shape == (2, 0, 4, 4)
    assert fastconv.avg_pool2d_backward(np.ones((0, 3, 4, 4)), x, 2).shape == x.shape
    assert fastconv.max_pool2d_backward(np.ones((0, 3, 4, 4)), x, 2).shape == x.shape


@pytest.mark.parametrize("H, W, args", [
    (10, 10, dict(kernel_size=2)),
    (9, 11, dict(kernel_size=2, padding=1, ceil_mode=True)),
    (8, 13, dict(kernel_size=3, stride=2)),          # the last row and column: no window
    (9, 9, dict(kernel_size=3, stride=2, padding=1)),
    (12, 7, dict(kernel_size=(2, 3), stride=(3, 1), dilation=(2, 1))),
    (5, 30, dict(kernel_size=2, stride=1)),
])
def test_kernels_overwrite_every_output_element(simd, H, W, args):
    """The C kernels write every element of what they produce: outputs that start as NaN
    garbage come out equal to the public API's (whose fresh buffers are often zero)."""
    from fastconv import _ext
    from fastconv.pooling import pool_geometry
    rng = np.random.default_rng(21)
    for dtype in DTYPES:
        x = _input(rng, (2, 3, H, W), dtype)
        y_api, i_api, a_api = fastconv.max_pool2d(x, **args, return_indices=True,
                                                  return_argmax=True)
        dy = _input(rng, y_api.shape, dtype)
        geom = pool_geometry("test", x.shape, args["kernel_size"], args.get("stride"),
                             args.get("padding", 0), args.get("dilation", 1),
                             args.get("ceil_mode", False))
        y = np.full_like(y_api, np.nan)
        indices = np.full(y_api.shape, -7, np.int64)
        argmax = np.full(y_api.shape, 77, np.uint8)
        _ext.max_pool_forward(y, argmax, indices, x, geom)
        np.testing.assert_array_equal(y, y_api)
        np.testing.assert_array_equal(indices, i_api)
        np.testing.assert_array_equal(argmax, a_api)
        for saved in [(None, None), (a_api, None), (None, i_api)]:
            dx = np.full_like(x, np.nan)
            _ext.max_pool_backward(dx, dy, x, saved[0], saved[1], geom)
            np.testing.assert_array_equal(dx, fastconv.max_pool2d_backward(dy, x, **args))
        if "dilation" not in args:
            avg_geom = geom._replace(dilation=(1, 1))
            dx = np.full_like(x, np.nan)
            _ext.avg_pool_backward(dx, dy, avg_geom)
            np.testing.assert_array_equal(dx, fastconv.avg_pool2d_backward(dy, x, **args))
            y = np.full_like(y_api, np.nan)
            _ext.avg_pool_forward(y, x, avg_geom)
            np.testing.assert_array_equal(y, fastconv.avg_pool2d(x, **args))


# ---- the lecture's pooling example ----

def test_concepts_pooling_example():
    """The lecture's pooling example: a 2x2 / stride-2 window keeps the strongest response
    (max) or the mean (average), with the convolution's output-size formula, so LeNet-5
    pools 28x28x6 to 14x14x6 and 10x10x16 to 5x5x16 = 400 features."""
    x = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]])[None, None]
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 2)[0, 0], [[9, 2], [6, 3]])
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, 2)[0, 0], [[3.75, 1.25], [3.75, 2]])
    assert fastconv.conv_output_size(28, 2, 2) == 14
    assert fastconv.max_pool2d(np.zeros((1, 6, 28, 28)), 2).shape == (1, 6, 14, 14)
    pooled = fastconv.max_pool2d(np.zeros((1, 16, 10, 10)), 2)
    assert pooled.shape == (1, 16, 5, 5) and pooled[0].size == 400
    # the same formula for pooling windows as for filters (n=7, f=3, s=2 -> 3)
    assert fastconv.avg_pool2d(np.zeros((1, 1, 7, 7)), 3, 2).shape[2:] == (3, 3)


# ---- bad inputs ----

X = np.zeros((1, 2, 6, 6), np.float32)
DY = np.zeros((1, 2, 3, 3), np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda: fastconv.max_pool2d(np.zeros((2, 6, 6)), 2), ValueError,
     r"max_pool2d: expected x to be a 4-D array, got 3-D"),
    (lambda: fastconv.max_pool2d(X, 0), ValueError, r"kernel_size must be >= 1, got 0"),
    (lambda: fastconv.max_pool2d(X, (2, 2, 2)), ValueError, r"kernel_size must be an int or a "
     r"tuple of 2 ints"),
    (lambda: fastconv.max_pool2d(X, 2.0), TypeError, r"kernel_size must be an int"),
    (lambda: fastconv.max_pool2d(X, 2, stride=0), ValueError, r"stride must be >= 1, got 0"),
    (lambda: fastconv.max_pool2d(X, 2, padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: fastconv.max_pool2d(X, 2, padding=2), ValueError,
     r"padding must be at most half the kernel size, got padding=\(2, 2\) for "
     r"kernel_size=\(2, 2\) \(at most \(1, 1\)\)"),
    (lambda: fastconv.avg_pool2d(X, (3, 2), padding=(2, 1)), ValueError,
     r"avg_pool2d: padding must be at most half"),
    (lambda: fastconv.max_pool2d(X, 2, dilation=0), ValueError, r"dilation must be >= 1"),
    (lambda: fastconv.max_pool2d(X, 7), ValueError, r"the window \(7x7, dilation \(1, 1\)\) "
     r"is larger than the padded input \(6x6"),
    (lambda: fastconv.max_pool2d(X, 3, padding=1, dilation=4), ValueError, r"larger than"),
    (lambda: fastconv.max_pool2d(X, 2, ceil_mode="yes"), TypeError, r"ceil_mode must be a bool"),
    (lambda: fastconv.max_pool2d(X.astype(complex), 2), TypeError,
     r"x must be a real \(float, integer or bool\) array, got dtype complex128"),
    (lambda: fastconv.max_pool2d(np.zeros((1, 1, 0, 4)), 1), ValueError,
     r"expected x with non-empty height and width"),
    (lambda: fastconv.max_pool2d([[1, 2], [3]], 1), TypeError, r"x must be an array-like"),
    (lambda: fastconv.avg_pool2d(X, 2, divisor_override=0), ValueError,
     r"divisor_override must be nonzero"),
    (lambda: fastconv.avg_pool2d(X, 2, divisor_override=1.5), TypeError,
     r"divisor_override must be None or an int"),
    (lambda: fastconv.max_pool2d_backward(np.zeros((1, 2, 2, 3)), X, 2), ValueError,
     r"expected grad_out of shape \(1, 2, 3, 3\) \(the output of max_pool2d for x of shape "
     r"\(1, 2, 6, 6\)\), got shape \(1, 2, 2, 3\)"),
    (lambda: fastconv.avg_pool2d_backward(DY[0], X, 2), ValueError,
     r"expected grad_out to be a 4-D array"),
    (lambda: fastconv.max_pool2d_backward(DY, X, 2, indices=DY), TypeError,
     r"indices must be an integer array"),
    (lambda: fastconv.max_pool2d_backward(DY, X, 2, indices=np.zeros((1, 2, 3), int)),
     ValueError, r"expected indices to be a 4-D array"),
    (lambda: fastconv.max_pool2d_backward(DY, X, 2, indices=np.zeros((1, 2, 3, 4), int)),
     ValueError, r"expected indices of shape \(1, 2, 3, 3\)"),
    (lambda: fastconv.max_pool2d_backward(DY, X, 2, argmax=np.zeros((1, 2, 3, 3), np.int64)),
     TypeError, r"argmax must be a uint8 array"),
    (lambda: fastconv.max_pool2d_backward(DY, X, 2, argmax=np.zeros((1, 2, 3, 3), np.uint8),
                                          indices=np.zeros((1, 2, 3, 3), int)),
     ValueError, r"give indices or argmax, not both"),
    (lambda: fastconv.adaptive_avg_pool2d(X, 0), ValueError, r"output_size must be >= 1"),
    (lambda: fastconv.adaptive_avg_pool2d(X, (1, 2, 3)), ValueError,
     r"output_size must be an int or a tuple of 2 ints"),
    (lambda: fastconv.adaptive_avg_pool2d_backward(DY, X, 2), ValueError,
     r"expected grad_out of shape \(1, 2, 2, 2\)"),
    (lambda: fastconv.global_avg_pool2d_backward(DY, X), ValueError,
     r"expected grad_out of shape \(1, 2, 1, 1\)"),
])
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_indices_never_write_outside_the_gradient():
    dy = np.ones((1, 2, 3, 3))
    wild = np.full((1, 2, 3, 3), 10 ** 9, dtype=np.int64)
    wild[0, 0, 0, 0] = -5
    dx = fastconv.max_pool2d_backward(dy, X, 2, indices=wild)
    np.testing.assert_array_equal(dx, 0)
    dx = fastconv.max_pool2d_backward(dy, X, 2, argmax=np.full((1, 2, 3, 3), 200, np.uint8))
    np.testing.assert_array_equal(dx, 0)
