"""The direct convolution's own paths (src/conv_direct*): filter blocks, strips, bands,
the data gradient's scatter and gather forms, the weight gradient by pixels and by
filters, non-finite values, on every SIMD path and with 1 and 2 threads; and the plan
(src/conv_direct_plan.h): the variant it names for a layer is the one that runs."""
import functools

import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._checks import conv_geometry

from conftest import needs_openmp, rel_err

# (N, C, H, W, K, R, S, stride, padding, dilation, groups): what each one exercises
SHAPES = {
    "filters_7_blocks_4_3": (2, 3, 12, 11, 7, 3, 3, 1, 1, 1, 1),
    "filters_13_blocks_6_4_3": (2, 2, 10, 9, 13, 3, 2, 1, 0, 1, 1),
    "output_narrower_than_a_strip": (3, 2, 20, 5, 5, 3, 3, 1, 0, 1, 1),
    "stride_2_dilation_2_padding": (2, 3, 21, 19, 6, 3, 3, 2, 2, 2, 1),
    "stride_3x2_dilation_1x3_asymmetric": (2, 2, 17, 23, 4, 3, 3, (3, 2), (1, 2, 0, 3), (1, 3), 1),
    "groups_strided": (2, 6, 15, 15, 6, 3, 3, 2, 1, 1, 3),
    "batch_1_many_rows_in_bands": (1, 2, 60, 13, 3, 3, 3, 1, 1, 1, 1),
    "filters_16_narrow_rows": (4, 3, 9, 9, 16, 3, 3, 1, 0, 1, 1),
    "filters_20_padded_vector": (2, 3, 8, 8, 20, 3, 3, 1, 0, 1, 1),
    "row_wider_than_a_strip": (1, 1, 6, 300, 2, 3, 3, 1, 1, 1, 1),
    "valid_layer_scatter_gradient": (3, 4, 14, 12, 8, 5, 5, 1, 0, 1, 1),
    # padding only below the image (the forward; the data gradient's own correlation of
    # the second): x was once read in place in bands of fewer rows than the output (cut
    # for 2 threads), and each band after the first read the image's top rows again
    "padding_below_only": (1, 2, 2, 5, 3, 2, 2, 1, (0, 1, 0, 0), 1, 1),
    "gradient_padding_below_only": (3, 8, 3, 3, 24, 3, 3, 1, (2, 0, 2, 2), 1, 1),
    # the forward vectorised over filters (tilek, on the AVX-512 and AVX2/generic float32
    # paths; the cost model picks it for these): one run per row, nk < lanes, N = 1,
    # padding and an odd width, rows cut in runs, groups, stride 2 with 2 vectors of filters
    "by_filters_lenet_conv2": (3, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),
    "by_filters_15_odd_width_padding_batch_1": (1, 2, 11, 13, 15, 5, 5, 1, 2, 1, 1),
    "by_filters_rows_in_runs": (1, 2, 26, 27, 16, 5, 5, 1, 0, 1, 1),
    "by_filters_groups": (2, 4, 12, 12, 32, 5, 5, 1, 0, 1, 2),
    "by_filters_32_stride_2_padding": (2, 3, 45, 44, 32, 5, 5, 2, 1, 1, 1),
    "by_filters_9_tiny_image": (1, 1, 7, 7, 9, 3, 3, 1, 0, 1, 1),
    # one image on 2 threads: the filters cut into parts (an odd number of vectors of
    # filters, the last padded; stride 2 in one band)
    "by_filters_parts_40_filters": (1, 6, 10, 9, 40, 3, 3, 1, 1, 1, 1),
    "by_filters_parts_36_stride_2": (1, 5, 17, 16, 36, 3, 3, 2, 1, 1, 1),
}


def kwargs_of(shape):
    stride, padding, dilation, groups = shape[7:]
    return dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@functools.lru_cache(maxsize=None)
def case(name):
    """Arrays of a shape and the reference loops' forward and gradients (float64)."""
    N, C, H, W, K, R, S = SHAPES[name][:7]
    kw = kwargs_of(SHAPES[name])
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // kw["groups"], R, S))
    b = rng.standard_normal(K)
    g = conv_geometry(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"],
                      kw["groups"], "t")
    norm = dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)
    y = reference.conv2d(x, w, b, **norm)
    dy = rng.standard_normal(y.shape)
    return x, w, b, dy, y, reference.conv2d_backward(dy, x, w, **norm)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_direct_matches_reference_float64(name, nthreads, simd, threads):
    threads(nthreads)
    x, w, b, dy, y_ref, grads_ref = case(name)
    kw = kwargs_of(SHAPES[name])
    y = fastconv.conv2d(x, w, b, algorithm="direct", **kw)
    assert rel_err(y, y_ref) < 1e-12
    grads = fastconv.conv2d_backward(dy, x, w, algorithm="direct", **kw)
    for got, want in zip(grads, grads_ref):
        assert rel_err(got, want) < 1e-12


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_direct_matches_reference_float32(name, simd):
    x, w, b, dy, y_ref, grads_ref = case(name)
    kw = kwargs_of(SHAPES[name])
    f = np.float32
    y = fastconv.conv2d(x.astype(f), w.astype(f), b.astype(f), algorithm="direct", **kw)
    assert y.dtype == f and rel_err(y, y_ref) < 1e-5
    grads = fastconv.conv2d_backward(dy.astype(f), x.astype(f), w.astype(f),
                                     algorithm="direct", **kw)
    for got, want in zip(grads, grads_ref):
        assert got.dtype == f and rel_err(got, want) < 1e-5


@pytest.mark.parametrize("name", [n for n in sorted(SHAPES) if n.startswith("by_filters")])
def test_by_filters_shapes_match_pytorch_float32(name, simd):
    torch = pytest.importorskip("torch")
    x, w, b, dy, _, _ = case(name)
    kw = kwargs_of(SHAPES[name])
    x, w, b, dy = (a.astype(np.float32) for a in (x, w, b, dy))
    pad = kw["padding"]
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                      kw["stride"], pad, kw["dilation"], kw["groups"])
    got = fastconv.conv2d(x, w, b, algorithm="direct", **kw)
    assert rel_err(got, want.numpy()) < 1e-5


def test_direct_simd_paths_agree():
    """generic, AVX2 and AVX-512 kernels give the same results up to rounding."""
    rng = np.random.default_rng(20)
    x = rng.standard_normal((4, 6, 16, 15)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((4, 16, 12, 11)).astype(np.float32)
    from conftest import SIMD_PATHS
    before = fastconv.get_simd()
    results = []
    try:
        for path in SIMD_PATHS:
            fastconv.set_simd(path)
            results.append((fastconv.conv2d(x, w, algorithm="direct"),)
                           + fastconv.conv2d_backward(dy, x, w, algorithm="direct"))
    finally:
        fastconv.set_simd({"avx2+fma": "avx2"}.get(before, before))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert rel_err(a, b) < 1e-5


def shifted_sum(a, w, P, Q):
    """sum over (r, s) of w[r, s] * a[r:r+P, s:s+Q]: a 2-D correlation in NumPy."""
    R, S = w.shape
    return sum(w[r, s] * a[r:r + P, s:s + Q] for r in range(R) for s in range(S))


@pytest.mark.parametrize("nthreads", [1, 2])
def test_single_channel_1024x1024_edge_filter(nthreads, simd, threads):
    """One image, one channel, one 3x3 filter: bands of rows split over the threads."""
    threads(nthreads)
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, 1, 1024, 1024))
    w = np.array([[[[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]]])
    xp = np.pad(x[0, 0], 1)
    y = fastconv.conv2d(x, w, padding=1, algorithm="direct")
    assert rel_err(y[0, 0], shifted_sum(xp, w[0, 0], 1024, 1024)) < 1e-12
    dy = rng.standard_normal(y.shape)
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm="direct")
    # dx: dy correlated with the flipped filter, over dy padded by 1
    dx_want = shifted_sum(np.pad(dy[0, 0], 1), w[0, 0, ::-1, ::-1], 1024, 1024)
    dw_want = np.array([[np.sum(dy[0, 0] * xp[r:r + 1024, s:s + 1024]) for s in range(3)]
                        for r in range(3)])
    assert rel_err(dx[0, 0], dx_want) < 1e-12
    assert rel_err(dw[0, 0], dw_want) < 1e-12
    assert rel_err(db, [dy.sum()]) < 1e-12


@pytest.mark.parametrize("K", [2, 16])
def test_weight_gradient_ignores_inf_that_a_tap_never_reads(K, simd, threads):
    """x's last column is read only by the filters' last column (a 'valid' 3-wide filter):
    dw's other columns stay finite and exact, whatever the path sums over."""
    threads(1)
    rng = np.random.default_rng(22)
    x = rng.standard_normal((2, 2, 12, 9))
    x[:, :, 5, -1] = np.inf
    w = rng.standard_normal((K, 2, 2, 3))
    dy = rng.standard_normal((2, K, 11, 7))
    _, dw, _ = fastconv.conv2d_backward(dy, x, w, algorithm="direct")
    with np.errstate(invalid="ignore"):    # +inf and -inf products meet: NaN, as in dw
        _, dw_ref, _ = reference.conv2d_backward(dy, x, w)
    assert np.all(np.isfinite(dw[..., :2]))
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_data_gradient_with_inf_weight_matches_reference(stride, simd):
    """An inf weight makes inf exactly where the definition's products put it, never NaN
    from the zero padding."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, 3, 9, 9))
    w = np.abs(rng.standard_normal((4, 3, 3, 3)))
    w[1, 2, 1, 1] = np.inf
    y = fastconv.conv2d(x, np.nan_to_num(w), stride=stride)
    dy = np.abs(rng.standard_normal(y.shape))
    dx, _, _ = fastconv.conv2d_backward(dy, x, w, stride=stride, algorithm="direct")
    dx_ref, _, _ = reference.conv2d_backward(dy, x, w, stride=(stride, stride))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["filters_16_narrow_rows", "valid_layer_scatter_gradient",
                                  "by_filters_lenet_conv2",
                                  "batch_1_many_rows_in_bands"])
def test_direct_gradients_bitwise_reproducible_with_2_threads(name, threads):
    threads(2)
    x, w, b, dy, _, _ = case(name)
    kw = kwargs_of(SHAPES[name])
    args = [a.astype(np.float32) for a in (dy, x, w)]
    first = fastconv.conv2d_backward(*args, algorithm="direct", **kw)
    for _ in range(3):
        for a, b_ in zip(first, fastconv.conv2d_backward(*args, algorithm="direct", **kw)):
            assert np.array_equal(a, b_)


# -- the plan (src/conv_direct_plan.h) and the variant that really runs ---------------------
# (N, C, H, W, K, R, S, stride): the layers each variant is planned for, on one thread, on
# every SIMD path
LENET5_CONV1 = (2, 1, 32, 32, 6, 5, 5, 1)
LENET5_CONV2 = (2, 6, 14, 14, 16, 5, 5, 1)
LECTURE_LAYER1 = (2, 3, 39, 39, 10, 3, 3, 1)
LECTURE_LAYER2 = (2, 10, 37, 37, 20, 5, 5, 2)


BOTH_DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32])


@pytest.fixture
def one_thread(threads):
    """The variants above are the plan's on one thread (two threads cut more bands)."""
    threads(1)


def plan_of(layer, dtype):
    N, C, H, W, K, R, S, stride = layer
    geom = conv_geometry((N, C, H, W), (K, C, R, S), stride, 0, 1, 1, "t")
    return fastconv._ext.conv_direct_plan(geom, np.dtype(dtype).name,
                                          fastconv.get_num_threads())


def layer_arrays(layer, dtype):
    N, C, H, W, K, R, S, stride = layer
    rng = np.random.default_rng(sum(layer))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, R, S))
    b = rng.standard_normal(K)
    P, Q = (H - R) // stride + 1, (W - S) // stride + 1
    dy = rng.standard_normal((N, K, P, Q))
    return x, w, b, dy


def runs_during(call):
    """call's result, and how many times each variant ran during it, per pass."""
    before = fastconv._ext.conv_direct_variant_counts()
    result = call()
    after = fastconv._ext.conv_direct_variant_counts()
    return result, {p: {v: after[p][v] - before[p][v] for v in after[p]} for p in after}


def only(pass_, variant, counts):
    """counts with one run of `variant` in `pass_` and none of its other variants."""
    return {v: int(v == variant) for v in counts[pass_]}


def tolerance(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def check_forward_runs(layer, variant, dtype):
    assert plan_of(layer, dtype)["forward"] == variant
    x, w, b, _ = layer_arrays(layer, dtype)
    stride = layer[7]
    y, runs = runs_during(lambda: fastconv.conv2d(x.astype(dtype), w.astype(dtype),
                                                  b.astype(dtype), stride=stride,
                                                  algorithm="direct"))
    assert runs["forward"] == only("forward", variant, runs)
    assert sum(runs["backward_data"].values()) == sum(runs["backward_weight"].values()) == 0
    assert rel_err(y, reference.conv2d(x, w, b, stride=(stride, stride))) \
        < tolerance(dtype)


def check_backward_runs(layer, pass_, variant, dtype, w_edit=None):
    x, w, _, dy = layer_arrays(layer, dtype)
    if w_edit is not None:
        w_edit(w)
    else:
        assert plan_of(layer, dtype)[pass_] == variant
    stride = layer[7]
    grads, runs = runs_during(lambda: fastconv.conv2d_backward(
        dy.astype(dtype), x.astype(dtype), w.astype(dtype), stride=stride,
        algorithm="direct"))
    assert runs[pass_] == only(pass_, variant, runs)
    other = {"backward_data": "backward_weight", "backward_weight": "backward_data"}[pass_]
    assert sum(runs[other].values()) == 1 and sum(runs["forward"].values()) == 0
    want = reference.conv2d_backward(dy, x, w, stride=(stride, stride))
    if w_edit is not None:       # dx holds inf exactly where the definition puts it
        finite = np.isfinite(want[0])
        assert np.array_equal(np.isfinite(grads[0]), finite) and np.any(~finite)
        assert np.array_equal(grads[0][~finite], want[0][~finite])
        assert rel_err(grads[0][finite], want[0][finite]) < tolerance(dtype)
        return
    for got, ref in zip(grads, want):
        assert rel_err(got, ref) < tolerance(dtype)


@BOTH_DTYPES
def test_lenet5_conv1_forward_runs_by_pixels(dtype, simd, one_thread):
    check_forward_runs(LENET5_CONV1, "by_pixels", dtype)


def test_lenet5_conv2_forward_runs_by_filters(simd, one_thread):
    """float32 on every path; float64 (half the filters per vector) only with AVX-512."""
    check_forward_runs(LENET5_CONV2, "by_filters", np.float32)
    if simd == "avx512":
        check_forward_runs(LENET5_CONV2, "by_filters", np.float64)


def test_lenet5_conv2_forward_reads_input_in_place(simd, one_thread):
    """A 'valid' layer of one band per image: the forward by filters reads x itself."""
    plan = plan_of(LENET5_CONV2, np.float32)
    assert plan["reads_input_in_place"] and plan["bands"] == 1
    assert plan["band_rows"] == 10 and plan["gather_phases"] == 1


@needs_openmp
def test_two_threads_cut_four_lenet5_conv1_images_into_two_bands_each(threads):
    """4 work items per thread: 4 images x 2 bands of 14 of the 28 output rows."""
    threads(2)
    plan = plan_of((4,) + LENET5_CONV1[1:], np.float64)
    assert plan["threads"] == 2 and plan["bands"] == 2 and plan["band_rows"] == 14


@needs_openmp
@pytest.mark.parametrize("size, band_rows", [(8, 6), (10, 4), (16, 4), (32, 4)])
def test_one_image_is_cut_into_equal_bands_of_at_least_64_pixels(size, band_rows, threads):
    """Two threads want 8 items; one image is cut into bands for them, but not into bands
    of fewer than 64 pixels (rows x (output width + 2)), and the bands come out equal:
    8 x 8 in gives 6 rows of 8 (one band), 10 x 10 gives 8 rows of 10 (two of 4)."""
    threads(2)
    plan = plan_of((1, 64, size, size, 64, 3, 3, 1), np.float32)
    rows = size - 2
    assert plan["band_rows"] == band_rows
    assert plan["bands"] * band_rows >= rows > (plan["bands"] - 1) * band_rows


@needs_openmp
@pytest.mark.parametrize("images, parts", [(1, 2), (2, 2), (5, 2), (6, 1)])
def test_two_threads_share_the_filters_of_few_images_in_parts(images, parts, threads):
    """With more weights (36,864) than input values (6,400 per image), the forward by
    filters gives each thread a part of the filters (which it packs and reads alone)
    rather than a share of the images or rows."""
    threads(2)
    plan = plan_of((images, 64, 10, 10, 64, 3, 3, 1), np.float32)
    assert plan["forward"] == "by_filters" and plan["filter_parts"] == parts


@needs_openmp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width, K, stride", [(7, 48, 1), (10, 48, 2), (7, 40, 1)])
def test_filter_parts_give_the_bits_of_one_thread(width, K, stride, dtype, simd, threads):
    """The parts' sums are the same sums in the same order: one image on 2 threads, its
    filters in parts (each thread packing its part on its first item; 40 filters are 3
    vectors of 16 floats, the last padded), with and without bias and with the fused ReLU,
    equals 1 thread bit for bit, NaN and inf included."""
    rng = np.random.default_rng(K)
    x = rng.standard_normal((1, 16, 9 if stride == 1 else 15, width)).astype(dtype)
    x[0, 3, 4, 5], x[0, 7, 0, 0] = np.nan, np.inf
    w = rng.standard_normal((K, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    geom = conv_geometry(x.shape, w.shape, stride, 1, 1, 1, "t")
    results = []
    for n in (1, 2):
        threads(n)
        results.append([fastconv.conv2d(x, w, bias, stride, 1, algorithm="direct")
                         for bias in (b, None)])
        fused = np.empty(geom.output_shape, dtype)
        fastconv._ext.conv_forward(fused, x, w, b, geom, "direct", True)
        results[-1].append(fused)
    plan = fastconv._ext.conv_direct_plan(geom, np.dtype(dtype).name, 2)
    assert plan["threads"] == 2 and plan["filter_parts"] == 2
    for other in results[1:]:
        for one, two in zip(results[0], other):
            np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(results[0][2], np.where(results[0][0] < 0, 0, results[0][0]))


@needs_openmp
@pytest.mark.parametrize("nthreads", [2, 3])
def test_filter_parts_of_groups_and_images_give_the_bits_of_one_thread(nthreads, simd,
                                                                       threads):
    """2 images x 3 groups of 32 filters, more weights than input values: the parts of
    each group, each thread packing every (group, part) it meets, equal 1 thread."""
    rng = np.random.default_rng(30)
    x = rng.standard_normal((2, 24, 9, 7)).astype(np.float32)
    w = rng.standard_normal((96, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    geom = conv_geometry(x.shape, w.shape, 1, 1, 1, 3, "t")
    assert fastconv._ext.conv_direct_plan(geom, "float32", nthreads)["filter_parts"] > 1
    results = []
    for n in (1, nthreads):
        threads(n)
        results.append(fastconv.conv2d(x, w, b, 1, 1, groups=3, algorithm="direct"))
    np.testing.assert_array_equal(results[0], results[1])
    assert rel_err(results[0], reference.conv2d(x.astype(np.float64), w.astype(np.float64),
                                                b.astype(np.float64), padding=1,
                                                groups=3)) < 1e-5


@pytest.mark.parametrize("shape", [(1, 0, 4, 4, 8), (1, 8, 4, 4, 0), (0, 8, 4, 4, 8)])
def test_the_kernels_refuse_empty_problems_clearly(shape):
    """The Python layer computes empty problems itself; the C entry points refuse them
    (they once divided by zero planning them)."""
    N, C, H, W, K = shape
    x, w = np.zeros((N, C, H, W), np.float32), np.zeros((K, C, 3, 3), np.float32)
    geom = conv_geometry(x.shape, w.shape, 1, 1, 1, 1, "t")
    y = np.zeros(geom.output_shape, np.float32)
    for algorithm in ("direct", "im2col"):
        with pytest.raises(RuntimeError, match="rejected its problem"):
            fastconv._ext.conv_forward(y, x, w, None, geom, algorithm)
        with pytest.raises(RuntimeError, match="rejected its problem"):
            fastconv._ext.conv_backward(y, x, w, np.zeros_like(x), np.zeros_like(w), None,
                                        geom, algorithm, algorithm)
    with pytest.raises(RuntimeError, match="rejected its problem"):
        fastconv._ext.conv_direct_plan(geom, "float32", 2)


@needs_openmp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_thread_whose_items_span_two_filter_parts_packs_each(dtype, simd, threads):
    """3 threads, 2 parts of one vector of filters, 3 bands: the 6 items go 2 per thread,
    so the middle thread runs part 0's last band, then part 1's first, and repacks."""
    lanes = (64 if simd == "avx512" else 32) // np.dtype(dtype).itemsize
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 48, 30, 3)).astype(dtype)
    w = rng.standard_normal((2 * lanes, 48, 5, 5)).astype(dtype)
    b = rng.standard_normal(2 * lanes).astype(dtype)
    plan = fastconv._ext.conv_direct_plan(conv_geometry(x.shape, w.shape, 1, 2, 1, 1, "t"),
                                          np.dtype(dtype).name, 3)
    assert (plan["forward"], plan["filter_parts"], plan["bands"]) == ("by_filters", 2, 3)
    results = []
    for n in (1, 3):
        threads(n)
        results.append(fastconv.conv2d(x, w, b, 1, 2, algorithm="direct"))
    np.testing.assert_array_equal(results[0], results[1])


@needs_openmp
@pytest.mark.parametrize("images, team", [(1, 1), (2, 1), (3, 2)])
def test_lenet5_conv1_shares_threads_only_past_131072_multiply_adds_each(images, team,
                                                                        threads):
    """Waking a thread costs more than it saves on a small problem: an image of LeNet-5's
    conv1 is 117,600 multiply-adds, so 1 and 2 images run on one of the 2 threads."""
    threads(2)
    plan = plan_of((images,) + LENET5_CONV1[1:], np.float32)
    assert plan["threads"] == team


@BOTH_DTYPES
@pytest.mark.parametrize("layer, pass_, variant", [
    pytest.param(LENET5_CONV1, "backward_data", "scatter",
                 id="lenet5_conv1_data_gradient_runs_scatter"),
    pytest.param(LECTURE_LAYER1, "backward_data", "gather",
                 id="lecture_layer1_data_gradient_runs_gather"),
    pytest.param(LENET5_CONV1, "backward_weight", "by_pixels",
                 id="lenet5_conv1_weight_gradient_runs_by_pixels"),
    pytest.param(LECTURE_LAYER2, "backward_weight", "by_filters",
                 id="lecture_layer2_weight_gradient_runs_by_filters"),
])
def test_gradient_runs_the_planned_variant(layer, pass_, variant, dtype, simd, one_thread):
    check_backward_runs(layer, pass_, variant, dtype)


@BOTH_DTYPES
def test_inf_weight_data_gradient_runs_loops(dtype, simd, one_thread):
    """Weights holding an inf run the loops whatever the plan names for finite weights."""
    assert plan_of(LENET5_CONV1, dtype)["backward_data_nonfinite_weights"] == "loops"

    def put_inf(w):
        w[...] = np.abs(w)
        w[2, 0, 1, 3] = np.inf
    check_backward_runs(LENET5_CONV1, "backward_data", "loops", dtype, w_edit=put_inf)


def test_conv_direct_plan_refuses_an_unknown_dtype_and_zero_threads():
    geom = conv_geometry((1, 1, 8, 8), (1, 1, 3, 3), 1, 0, 1, 1, "t")
    with pytest.raises(ValueError):
        fastconv._ext.conv_direct_plan(geom, "int8", 1)
    with pytest.raises(RuntimeError):
        fastconv._ext.conv_direct_plan(geom, "float32", 0)


# -- variants named by the caller (what autotuning times and keeps) --------------------------
FORCED = [("forward", "by_pixels"), ("forward", "by_filters"), ("backward_data", "gather"),
          ("backward_data", "scatter"), ("backward_weight", "by_pixels"),
          ("backward_weight", "by_filters")]


@pytest.mark.parametrize("pass_, variant", FORCED)
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_named_variant_runs_and_matches_the_reference(name, pass_, variant, threads):
    """"direct:VARIANT" runs that variant for its pass (the C counters) on every shape,
    whatever the rules would choose, on 2 threads, with the reference's values; the
    scatter form where it cannot run falls back to the gather form."""
    threads(2)
    x, w, b, dy, y_ref, grads_ref = case(name)
    g = conv_geometry(x.shape, w.shape, *SHAPES[name][7:], "t")
    ext, algorithm = fastconv._ext, f"direct:{variant}"
    if variant == "scatter" and not ext.conv_direct_plan(g, "float64", 2)["scatter_fits"]:
        variant = "gather"
    if pass_ == "forward":
        y = np.empty(g.output_shape)
        _, runs = runs_during(lambda: ext.conv_forward(y, x, w, b, g, algorithm))
        got, want = [y], [y_ref]
    elif pass_ == "backward_data":
        dx = np.empty(x.shape)
        _, runs = runs_during(lambda: ext.conv_backward(dy, x, w, dx, None, None, g,
                                                        algorithm, "direct"))
        got, want = [dx], grads_ref[:1]
    else:
        dw = np.empty(w.shape)
        _, runs = runs_during(lambda: ext.conv_backward(dy, x, w, None, dw, None, g,
                                                        "direct", algorithm))
        got, want = [dw], grads_ref[1:2]
    assert runs[pass_] == only(pass_, variant, runs)
    assert all(rel_err(a, e) < 1e-12 for a, e in zip(got, want))


def test_the_scatter_form_falls_back_where_its_image_buffers_do_not_fit(threads):
    threads(1)
    g = conv_geometry((1, 64, 400, 400), (8, 64, 3, 3), 1, 1, 1, 1, "t")
    assert not fastconv._ext.conv_direct_plan(g, "float32", 1)["scatter_fits"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(g.input_shape).astype(np.float32)
    w = rng.standard_normal(g.weight_shape).astype(np.float32)
    dy = rng.standard_normal(g.output_shape).astype(np.float32)
    dx = np.empty_like(x)
    _, runs = runs_during(lambda: fastconv._ext.conv_backward(
        dy, x, w, dx, None, None, g, "direct:scatter", "direct"))
    assert runs["backward_data"] == only("backward_data", "gather", runs)


@pytest.mark.parametrize("pass_, algorithm", [
    ("forward", "direct:scatter"), ("forward", "im2col:by_pixels"),
    ("backward_data", "direct:by_filters"), ("backward_weight", "direct:loops")])
def test_an_unknown_variant_is_refused(pass_, algorithm):
    x, w, b, dy, *_ = case("filters_7_blocks_4_3")
    g = conv_geometry(x.shape, w.shape, 1, 1, 1, 1, "t")
    with pytest.raises(ValueError, match=f"{pass_}: unknown direct variant"):
        if pass_ == "forward":
            fastconv._ext.conv_forward(np.empty(g.output_shape), x, w, b, g, algorithm)
        elif pass_ == "backward_data":
            fastconv._ext.conv_backward(dy, x, w, np.empty(x.shape), None, None, g,
                                        algorithm, "direct")
        else:
            fastconv._ext.conv_backward(dy, x, w, None, np.empty(w.shape), None, g,
                                        "direct", algorithm)
