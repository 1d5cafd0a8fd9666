"""fastconv.filters: the lecture's edge examples exactly, the filter kernel against the
reference loops, Sobel/Scharr/Prewitt/Canny against scikit-image and OpenCV (when
installed), input handling, errors, and the `edges` and `explain` commands."""
import io
import itertools
import math
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import filters, reference
from fastconv.cli import main

from conftest import (LECTURE_IMAGE as IMAGE, LECTURE_VERTICAL_EDGES, SIMD_PATHS, simd_path,
                      subprocess_env, thread_count)


SCIPY_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "nearest",
               "mirror": "mirror", "wrap": "wrap"}


def valid(a):
    """The 'valid' part of a same-size 3x3 filter output: drop the one-pixel border."""
    return a[1:-1, 1:-1]


def noisy_scene(size=96, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    return filters.synthetic_image(size) + noise * rng.standard_normal((size, size))


# ---- the lecture's edge-detection examples, integers in, integers out ---------------------

@pytest.mark.parametrize("how", ["filter2d", "conv2d"])
def test_lecture_6x6_vertical_edge_example(how):
    if how == "filter2d":
        out = valid(filters.filter2d(IMAGE, filters.VERTICAL_EDGE))
    else:
        out = fastconv.conv2d(IMAGE[None, None], filters.VERTICAL_EDGE[None, None])[0, 0]
    np.testing.assert_array_equal(out, LECTURE_VERTICAL_EDGES)


def test_bright_left_half_gives_bright_edge_in_the_middle():
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    np.testing.assert_array_equal(valid(filters.filter2d(image, filters.VERTICAL_EDGE)),
                                  [[0, 30, 30, 0]] * 4)


def test_mirrored_image_gives_dark_edge():
    image = np.array([[0, 0, 0, 10, 10, 10]] * 6)
    np.testing.assert_array_equal(valid(filters.filter2d(image, filters.VERTICAL_EDGE)),
                                  [[0, -30, -30, 0]] * 4)


def test_horizontal_filter_on_diagonal_blocks():
    image = np.zeros((6, 6), dtype=np.uint8)
    image[:3, :3] = 10
    image[3:, 3:] = 10
    np.testing.assert_array_equal(valid(filters.filter2d(image, filters.HORIZONTAL_EDGE)),
                                  [[0, 0, 0, 0], [30, 10, -10, -30], [30, 10, -10, -30],
                                   [0, 0, 0, 0]])


def test_lecture_kernels_have_the_lecture_values():
    np.testing.assert_array_equal(filters.SOBEL_VERTICAL, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(filters.SCHARR_VERTICAL,
                                  [[3, 0, -3], [10, 0, -10], [3, 0, -3]])
    np.testing.assert_array_equal(filters.VERTICAL_EDGE, [[1, 0, -1]] * 3)
    np.testing.assert_array_equal(filters.HORIZONTAL_EDGE, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
    np.testing.assert_array_equal(filters.SOBEL_HORIZONTAL, filters.SOBEL_VERTICAL.T)
    np.testing.assert_array_equal(filters.PREWITT_VERTICAL, filters.VERTICAL_EDGE)
    with pytest.raises(ValueError):
        filters.SOBEL_VERTICAL[0, 0] = 5


def test_true_convolution_flips_the_kernel():
    flipped = valid(filters.filter2d(IMAGE, filters.VERTICAL_EDGE, flip=True))
    np.testing.assert_array_equal(flipped, -np.array(LECTURE_VERTICAL_EDGES))


def test_derivatives_are_the_negated_lecture_filters():
    """sobel(axis=1) is right minus left: the lecture's filter with the opposite sign."""
    for op, vertical in [("sobel", filters.SOBEL_VERTICAL), ("scharr", filters.SCHARR_VERTICAL),
                         ("prewitt", filters.PREWITT_VERTICAL)]:
        func = getattr(filters, op)
        np.testing.assert_array_equal(func(IMAGE, axis=1), filters.filter2d(IMAGE, -vertical))
        np.testing.assert_array_equal(func(IMAGE, axis=0), filters.filter2d(IMAGE, -vertical.T))
        np.testing.assert_array_equal(filters.edge_kernel(op, 1), -vertical)


def test_sobel_of_a_ramp_points_uphill():
    ramp = np.tile(np.arange(8.0), (5, 1))             # brighter to the right
    np.testing.assert_array_equal(filters.sobel(ramp, axis=1, mode="replicate")[:, 1:-1], 8)
    np.testing.assert_array_equal(filters.sobel(ramp, axis=1, normalize=True)[:, 1:-1], 2)
    np.testing.assert_array_equal(filters.sobel(ramp, axis=0), 0)
    mag, direction = filters.gradient(ramp)
    np.testing.assert_array_equal(direction[:, 1:-1], 0)
    mag, direction = filters.gradient(ramp.T.copy())   # brighter downwards
    np.testing.assert_allclose(direction[1:-1], np.pi / 2)


def test_edge_kernel_normalisation_matches_scikit_image_weights():
    np.testing.assert_array_equal(filters.edge_kernel("sobel", 0, normalize=True),
                                  np.outer([-1, 0, 1], [1, 2, 1]) / 4)
    np.testing.assert_array_equal(filters.edge_kernel("scharr", 1, normalize=True),
                                  np.outer([3, 10, 3], [-1, 0, 1]) / 16)
    np.testing.assert_allclose(filters.edge_kernel("prewitt", 1, normalize=True),
                               np.outer([1, 1, 1], [-1, 0, 1]) / 3)


# ---- the filter kernel against the reference loops ----------------------------------------

@pytest.mark.parametrize("mode", filters.BORDER_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filter2d_matches_reference(simd, mode, dtype):
    rng = np.random.default_rng(7)
    shapes = [(1, 1, 1, 1), (1, 1, 3, 3), (2, 3, 3, 3), (5, 1, 3, 2), (7, 19, 3, 3),
              (9, 33, 5, 4), (4, 6, 7, 9), (20, 41, 1, 5), (3, 40, 2, 2)]
    for H, W, R, S in shapes:
        x = rng.standard_normal((H, W)).astype(dtype)
        k = rng.standard_normal((R, S)).astype(dtype)
        got = filters.filter2d(x, k, mode=mode)
        assert got.dtype == dtype
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, reference.filter2d(x, k, mode), rtol=tol, atol=tol,
                                   err_msg=f"{(H, W, R, S)} mode={mode}")


@pytest.mark.parametrize("mode", filters.BORDER_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_magnitude_in_one_pass_is_the_two_derivatives_combined_bitwise(simd, mode, dtype):
    """The one-pass magnitude sums each kernel's taps as the one-axis filter does and rounds
    the squares apart, in every column (blocks of vectors, single vectors, the last pixels,
    the border): it equals sqrt(d0 * d0 + d1 * d1) of the two derivatives bitwise."""
    rng = np.random.default_rng(5)
    for W in (1, 7, 8, 9, 29, 33, 64, 71):
        x = rng.standard_normal((2, 5, W)).astype(dtype)
        for op in ("sobel", "scharr", "prewitt"):
            func = getattr(filters, op)
            d0, d1 = func(x, 0, mode=mode), func(x, 1, mode=mode)
            got = func(x, mode=mode)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, np.sqrt(d0 * d0 + d1 * d1), err_msg=f"{op} W={W}")


def test_simds_agree_and_threads_do_not_change_results():
    x = np.random.default_rng(1).random((3, 130, 517)).astype(np.float32)
    results = {}
    for path, n in itertools.product(SIMD_PATHS, (1, 2)):
        with simd_path(path), thread_count(n):
            results[path, n] = np.stack([filters.sobel(x, axis=1), filters.sobel(x)])
    for path in SIMD_PATHS:
        np.testing.assert_array_equal(results[path, 1], results[path, 2])
        np.testing.assert_allclose(results[path, 1], results["generic", 1], atol=1e-5)


@pytest.mark.parametrize("mode", filters.BORDER_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uint8_and_bool_images_read_as_they_are_equal_their_float_copies(simd, mode, dtype):
    """A uint8 or bool image's rows are converted as each band of output rows reads them:
    the result equals that of the image converted first, bitwise, for every band split
    (planes of 1 to 20 rows against bands of 8), kernels taller than the plane (converted
    first) and 1 or 2 threads."""
    rng = np.random.default_rng(3)
    calls = [lambda x, **kw: filters.sobel(x, mode=mode, **kw),
             lambda x, **kw: filters.sobel(x, 0, mode=mode, **kw),
             lambda x, **kw: filters.prewitt(x, 1, mode=mode, **kw),
             lambda x, **kw: filters.filter2d(x, np.arange(15.0).reshape(5, 3) - 7, mode=mode,
                                              **kw),
             lambda x, **kw: filters.gaussian(x, 3.0, mode=mode, **kw),     # 25 rows
             lambda x, **kw: filters.gradient(x, "scharr", mode=mode, **kw)[1]]
    for shape in [(1, 1), (3, 5), (8, 17), (9, 40), (2, 20, 33), (3, 7, 70)]:
        images = [rng.integers(0, 256, shape, dtype=np.uint8), rng.random(shape) > 0.5]
        for image, call, threads in itertools.product(images, calls, (1, 2)):
            with thread_count(threads):
                got = call(image, dtype=dtype)
                want = call(image.astype(dtype), dtype=dtype)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {image.dtype}")


@pytest.mark.parametrize("mode", filters.BORDER_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_tiles_read_in_place_and_windows_equal_the_whole_image_cut_bitwise(simd, mode, dtype):
    """fastconv.dask's form of the filters: the planes given as a grid of tiles (read where
    they lie; rows of uint8 converted as they are read) and only a window of the result
    computed. It equals the filter of the whole image cut to the window, bitwise, for grids
    of one to four tiles a side (tiles one pixel wide among them), windows at the image
    border and inside it, kernels wider than a tile, and the derivative, the one-pass
    magnitude and a 5x4 kernel."""
    rng = np.random.default_rng(11)
    compute = np.float64 if dtype == np.float64 else np.float32
    kernel = rng.standard_normal((5, 4))
    calls = [lambda p, w: filters._edge_planes(p, "sobel", 1, border, False, compute, w),
             lambda p, w: filters._edge_planes(p, "scharr", None, border, False, compute, w),
             lambda p, w: filters._correlate(p, kernel, border, compute, w)]
    border = filters.BORDER_MODES.index(mode)
    for N, H, W in [(1, 9, 12), (2, 20, 33), (1, 3, 40)]:
        image = (rng.integers(0, 256, (N, H, W), dtype=np.uint8) if dtype == np.uint8
                 else rng.standard_normal((N, H, W)).astype(dtype))
        for trial in range(4):
            row_cuts = sorted(set(rng.integers(1, H, trial).tolist()))
            col_cuts = sorted(set(rng.integers(1, W, trial).tolist() + [1] * (trial == 3)))
            grid = [[image[:, r0:r1, c0:c1].copy() for c0, c1 in
                     zip([0] + col_cuts, col_cuts + [W])] for r0, r1 in
                    zip([0] + row_cuts, row_cuts + [H])]
            top, left = int(rng.integers(0, H)), int(rng.integers(0, W))
            window = ((top, int(rng.integers(top + 1, H + 1))),
                      (left, int(rng.integers(left + 1, W + 1))))
            for call in calls:
                whole = call(image, None)
                got = call(grid, window)
                np.testing.assert_array_equal(
                    got, whole[:, slice(*window[0]), slice(*window[1])],
                    err_msg=f"{(N, H, W)} cuts {row_cuts} {col_cuts} window {window}")


def test_dtype_chooses_the_type_a_filter_computes_and_returns():
    x = noisy_scene(40)
    for func in (filters.sobel, filters.scharr, filters.prewitt, filters.gaussian,
                 lambda a, **kw: filters.filter2d(a, np.ones((3, 3)), **kw),
                 lambda a, **kw: filters.gradient(a, **kw)[0]):
        got = func(x, dtype=np.float32)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, func(x.astype(np.float32), dtype=np.float32))
        assert func(x.astype(np.float32), dtype="float64").dtype == np.float64
        assert func(x.astype(np.uint8)).dtype == np.float64


def test_gaussian_sums_to_one_and_keeps_a_constant_image():
    flat = np.full((20, 30), 3.0)
    for mode in ("reflect", "replicate", "mirror", "wrap"):
        np.testing.assert_allclose(filters.gaussian(flat, 2.0, mode=mode), 3.0)
    np.testing.assert_array_equal(filters.gaussian(flat, 0), flat)


# ---- scipy, scikit-image and OpenCV as oracles --------------------------------------------

@pytest.mark.parametrize("mode", filters.BORDER_MODES)
def test_border_modes_match_scipy_names(mode):
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal((13, 11)), rng.standard_normal((5, 4))
    np.testing.assert_allclose(filters.filter2d(x, k, mode=mode),
                               ndi.correlate(x, k, mode=SCIPY_MODES[mode]), atol=1e-12)
    np.testing.assert_allclose(filters.gaussian(x, 1.5, mode=mode),
                               ndi.gaussian_filter(x, 1.5, mode=SCIPY_MODES[mode]), atol=1e-12)


def test_sobel_matches_scikit_image():
    skf = pytest.importorskip("skimage.filters")
    x = noisy_scene(64)
    np.testing.assert_allclose(filters.sobel(x, axis=0, normalize=True), skf.sobel_h(x),
                               atol=1e-12)
    np.testing.assert_allclose(filters.sobel(x, axis=1, normalize=True), skf.sobel_v(x),
                               atol=1e-12)
    for op in ("sobel", "scharr", "prewitt"):
        ours = getattr(filters, op)
        theirs = getattr(skf, op)
        np.testing.assert_allclose(ours(x, normalize=True) / math.sqrt(2), theirs(x),
                                   atol=1e-12, err_msg=op)
        np.testing.assert_allclose(ours(x, 1, normalize=True, mode="mirror"),
                                   theirs(x, axis=1, mode="mirror"), atol=1e-12, err_msg=op)
        np.testing.assert_allclose(ours(x, 0, normalize=True, mode="constant"),
                                   theirs(x, axis=0, mode="constant"), atol=1e-12, err_msg=op)


def test_uint8_is_not_rescaled_where_scikit_image_divides_by_255():
    skf = pytest.importorskip("skimage.filters")
    u8 = (filters.synthetic_image(48) * 255).astype(np.uint8)
    np.testing.assert_allclose(filters.sobel(u8, normalize=True) / math.sqrt(2),
                               skf.sobel(u8) * 255, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sobel_and_scharr_match_opencv(dtype):
    cv2 = pytest.importorskip("cv2")
    depth = cv2.CV_32F if dtype == np.float32 else cv2.CV_64F
    x = noisy_scene(80).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    borders = {"mirror": cv2.BORDER_DEFAULT, "reflect": cv2.BORDER_REFLECT,
               "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
    for mode, border in borders.items():
        for dx, dy, axis in ((1, 0, 1), (0, 1, 0)):
            np.testing.assert_allclose(filters.sobel(x, axis, mode=mode),
                                       cv2.Sobel(x, depth, dx, dy, ksize=3, borderType=border),
                                       atol=tol, err_msg=f"sobel {mode} axis {axis}")
            np.testing.assert_allclose(filters.scharr(x, axis, mode=mode),
                                       cv2.Scharr(x, depth, dx, dy, borderType=border),
                                       atol=tol * 10, err_msg=f"scharr {mode} axis {axis}")


def test_uint8_sobel_is_exact_like_opencv_integer_kernels():
    cv2 = pytest.importorskip("cv2")
    u8 = (noisy_scene(40).clip(0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(filters.sobel(u8, 1, mode="mirror"),
                                  cv2.Sobel(u8, cv2.CV_64F, 1, 0, ksize=3))


def test_rgb_luminance_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rgb = np.random.default_rng(2).random((10, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(filters.rgb_to_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
                               atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_canny_matches_scikit_image(sigma):
    feature = pytest.importorskip("skimage.feature")
    x = noisy_scene(128, seed=4)
    ours = filters.canny(x, sigma)
    theirs = feature.canny(x, sigma, mode="reflect")
    assert theirs.sum() > 300
    # Ties in non-maximum suppression may break differently by a rounding error.
    assert (ours != theirs).sum() <= 0.01 * theirs.sum()


def test_canny_uint8_default_thresholds_scale_with_the_dtype():
    feature = pytest.importorskip("skimage.feature")
    u8 = (noisy_scene(128, seed=5, noise=0.03).clip(0, 1) * 255).astype(np.uint8)
    ours, theirs = filters.canny(u8), feature.canny(u8, mode="reflect")
    assert theirs.sum() > 300
    assert (ours != theirs).sum() <= 0.02 * theirs.sum()


# ---- Canny on its own ---------------------------------------------------------------------

def test_canny_finds_a_thin_step_edge():
    image = np.zeros((20, 30))
    image[:, 15:] = 1.0
    edges = filters.canny(image, sigma=1.0)
    assert edges.dtype == np.bool_
    cols = np.unique(np.nonzero(edges)[1])
    assert set(cols) <= {14, 15} and edges[1:-1, 14:16].any(axis=1).all()
    assert not edges[0].any() and not edges[-1].any()       # the outer ring never is


def test_canny_of_a_flat_image_has_no_edges():
    assert not filters.canny(np.full((16, 16), 0.5)).any()


def test_canny_hysteresis_keeps_weak_pixels_connected_to_strong_ones():
    # A vertical edge fading from a step of 1 (top) to 0.3 (bottom): its smoothed Sobel
    # magnitude falls from about 2.6 to 0.8 along the edge.
    image = np.zeros((20, 40))
    image[:, 20:] = np.linspace(1.0, 0.3, 20)[:, None]
    strong_only = filters.canny(image, 1.0, low_threshold=1.5, high_threshold=1.5)
    linked = filters.canny(image, 1.0, low_threshold=0.4, high_threshold=1.5)
    assert strong_only[1:5].any(axis=1).all() and not strong_only[12:].any()
    assert linked[1:-1].any(axis=1).all()
    assert not filters.canny(image[10:], 1.0, low_threshold=0.4, high_threshold=2.5).any()


def test_canny_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="low_threshold"):
        filters.canny(np.zeros((8, 8)), low_threshold=0.5, high_threshold=0.1)


# ---- inputs: RGB, batches, dtypes, no modification ----------------------------------------

def test_rgb_is_converted_to_luminance():
    rgb = (np.random.default_rng(0).random((16, 18, 3)) * 255).astype(np.uint8)
    gray = filters.rgb_to_gray(rgb)
    np.testing.assert_allclose(gray, rgb @ np.array([0.299, 0.587, 0.114]))
    np.testing.assert_allclose(filters.sobel(rgb), filters.sobel(gray))
    np.testing.assert_array_equal(filters.canny(rgb), filters.canny(gray, low_threshold=25.5,
                                                                    high_threshold=51.0))


@pytest.mark.parametrize("func", [filters.sobel, filters.scharr, filters.prewitt,
                                  filters.canny, filters.gaussian])
def test_batch_equals_one_image_at_a_time(func):
    batch = np.stack([noisy_scene(40, seed=s) for s in range(3)])
    out = func(batch)
    assert out.shape == batch.shape
    for n in range(3):
        np.testing.assert_array_equal(out[n], func(batch[n]))
    rgb_batch = np.repeat(batch[..., None], 3, axis=-1)
    np.testing.assert_allclose(func(rgb_batch), out, atol=1e-12)


def test_gradient_of_a_batch():
    batch = np.stack([noisy_scene(24, seed=s) for s in range(2)])
    mag, direction = filters.gradient(batch, "scharr")
    gx, gy = filters.scharr(batch, 1), filters.scharr(batch, 0)
    np.testing.assert_allclose(mag, np.hypot(gx, gy))
    np.testing.assert_allclose(direction, np.arctan2(gy, gx))


@pytest.mark.parametrize("dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                                             (np.uint8, np.float64), (np.int32, np.float64),
                                             (np.bool_, np.float64), (np.float16, np.float32)])
def test_output_dtype(dtype, expected):
    x = (filters.synthetic_image(16) > 0.5).astype(dtype)
    assert filters.sobel(x).dtype == expected
    assert filters.sobel(x, axis=0).dtype == expected
    assert filters.filter2d(x, np.ones((3, 3), np.float32)).dtype == expected


def test_inputs_are_not_modified_and_views_work():
    big = noisy_scene(50)
    view = big[::2, 1::2]                       # non-contiguous
    before = view.copy()
    kernel = np.ones((3, 3))
    kernel.setflags(write=False)
    for out in (filters.sobel(view), filters.canny(view), filters.gradient(view)[0],
                filters.filter2d(view, kernel), filters.gaussian(view)):
        assert out.shape == view.shape
    np.testing.assert_array_equal(view, before)
    np.testing.assert_array_equal(filters.sobel(view), filters.sobel(before))


def test_lists_and_empty_images():
    np.testing.assert_array_equal(filters.sobel(IMAGE.tolist(), 1), filters.sobel(IMAGE, 1))
    assert filters.sobel(np.zeros((0, 5))).shape == (0, 5)
    assert filters.canny(np.zeros((2, 0, 5))).shape == (2, 0, 5)


# ---- bad arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, word", [
    (lambda: filters.sobel(np.zeros(5)), ValueError, "image"),
    (lambda: filters.sobel(np.zeros((2, 3, 4, 5))), ValueError, "image"),
    (lambda: filters.sobel(np.zeros((4, 4), complex)), TypeError, "image"),
    (lambda: filters.sobel(np.array([["a", "b"]])), TypeError, "image"),
    (lambda: filters.sobel(np.zeros((4, 4)), axis=2), ValueError, "axis"),
    (lambda: filters.sobel(np.zeros((4, 4)), axis=1.0), TypeError, "axis"),
    (lambda: filters.sobel(np.zeros((4, 4)), mode="bogus"), ValueError, "mode"),
    (lambda: filters.scharr(np.zeros((4, 4)), mode=0), TypeError, "mode"),
    (lambda: filters.gradient(np.zeros((4, 4)), operator="roberts"), ValueError, "operator"),
    (lambda: filters.edge_kernel("sobel", None), ValueError, "axis"),
    (lambda: filters.canny(np.zeros((4, 4)), sigma=-1), ValueError, "sigma"),
    (lambda: filters.canny(np.zeros((4, 4)), sigma="1"), TypeError, "sigma"),
    (lambda: filters.canny(np.zeros((4, 4)), high_threshold=-1), ValueError, "high_threshold"),
    (lambda: filters.filter2d(np.zeros((4, 4)), np.ones(3)), ValueError, "kernel"),
    (lambda: filters.filter2d(np.zeros((4, 4)), np.ones((0, 3))), ValueError, "kernel"),
    (lambda: filters.gaussian(np.zeros((4, 4)), truncate=float("nan")), ValueError, "truncate"),
    (lambda: filters.rgb_to_gray(np.zeros((4, 5))), ValueError, "image"),
    (lambda: filters.sobel(np.zeros((4, 4)), dtype=np.int32), ValueError, "dtype"),
    (lambda: filters.gaussian(np.zeros((4, 4)), dtype="bogus"), TypeError, "dtype"),
    (lambda: filters.filter2d(np.zeros((4, 4)), np.ones((3, 3)), dtype=np.float16),
     ValueError, "dtype"),
    (lambda: filters.synthetic_image(4), ValueError, "size"),
])
def test_bad_arguments_raise_naming_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()


# ---- the command line ---------------------------------------------------------------------

def run_main(argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        status = main(argv)
    return status, buf.getvalue()


def test_explain_prints_the_lecture_numbers():
    status, text = run_main(["explain"])
    assert status == 0
    for expected in ["-10  -2   2   3", "-3  -2  -3 -16", "[0, 30, 30, 0]", "[0, -30, -30, 0]",
                     "30  10 -10 -30", "n=37  f=5 p=0 s=2 -> 17", "37x37x10", "17x17x20",
                     "7x7x40", "1,960", "61,706", "2,416", "48,120", "12,288,000",
                     "3,000,000,000", "= 280", "456 = 450 + 6", "14,450,688 + 4,704", "5x5x2"]:
        assert expected in text, expected


def test_explain_one_section():
    status, text = run_main(["explain", "--section", "lenet5"])
    assert status == 0 and "61,706" in text and "Edge detection" not in text


def test_module_runs_as_a_program(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastconv", "explain", "--section", "sizes"],
                          cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "n=6   f=3 p=1 s=1 -> 6" in done.stdout


def read_pgm(path):
    data = Path(path).read_bytes()
    magic, size, maxval, pixels = data.split(b"\n", 3)
    w, h = map(int, size.split())
    assert magic == b"P5" and maxval == b"255"
    return np.frombuffer(pixels, np.uint8).reshape(h, w)


@pytest.mark.parametrize("method", ["sobel", "scharr", "prewitt", "canny"])
def test_edges_without_an_image_uses_the_synthetic_one(tmp_path, method):
    out = tmp_path / "e.pgm"
    status, text = run_main(["edges", "--method", method, "--size", "64", "-o", str(out)])
    assert status == 0 and "synthetic" in text
    img = read_pgm(out)
    assert img.shape == (64, 64) and img.max() == 255
    if method == "canny":
        assert set(np.unique(img)) == {0, 255}


def test_edges_of_an_npy_image(tmp_path):
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, noisy_scene(32))
    status, _ = run_main(["edges", str(src), "-o", str(out)])
    assert status == 0
    np.testing.assert_allclose(np.load(out), filters.sobel(noisy_scene(32)))


def test_edges_of_a_png_image(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    rgb = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(src)
    status, text = run_main(["edges", str(src), "--method", "canny", "-o", str(out)])
    assert status == 0 and "40x30" in text
    written = np.asarray(Image.open(out))
    np.testing.assert_array_equal(written, filters.canny(rgb).astype(np.uint8) * 255)


def test_edges_reports_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["edges", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.pgm")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fastconv edges: error") and str(tmp_path / "nope.png") in err


def test_unknown_command_exits_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fastconv: error:") and "invalid choice: 'frobnicate'" in err
    assert err.count("\n") == 1
