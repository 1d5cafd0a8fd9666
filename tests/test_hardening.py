"""Bad and extreme inputs: thread counts, out= aliasing, non-finite and huge values under
algorithm="auto", empty dimensions, argument checks, RGBA images, huge strides."""
import numpy as np
import pytest

import fastconv
from fastconv import plan, reference
from fastconv._checks import conv_geometry
from fastconv.config import MAX_THREADS

from conftest import OPENMP, rel_err, set_threads, subprocess_env, threads_in_effect


# -- thread counts ----------------------------------------------------------------------

@pytest.mark.parametrize("n", [MAX_THREADS + 1, 50_000, 10**6, 2**40, 2**70])
def test_set_num_threads_refuses_counts_above_the_bound_with_a_value_error_naming_n(n):
    before = fastconv.get_num_threads()
    with pytest.raises(ValueError, match=r"set_num_threads: n must be from 1 to"):
        fastconv.set_num_threads(n)
    assert fastconv.get_num_threads() == before


@pytest.mark.parametrize("n", [True, 2.0, "2", None])
def test_set_num_threads_refuses_bools_and_non_integers_with_a_type_error(n):
    with pytest.raises(TypeError, match=r"set_num_threads: n must be an int"):
        fastconv.set_num_threads(n)


@pytest.mark.parametrize("n", [np.int64(2), np.int32(1), np.uint8(2)])
def test_set_num_threads_accepts_numpy_integers(n):
    before = fastconv.get_num_threads()
    try:
        set_threads(n)
        assert fastconv.get_num_threads() == threads_in_effect(n)
    finally:
        fastconv.set_num_threads(before)


def test_the_largest_accepted_thread_count_runs_a_convolution():
    before = fastconv.get_num_threads()
    try:
        set_threads(MAX_THREADS)
        x = np.ones((1, 1, 5, 5), np.float32)
        assert fastconv.conv2d(x, np.ones((1, 1, 3, 3), np.float32)).sum() == 81
    finally:
        fastconv.set_num_threads(before)


def test_cli_threads_option_refuses_a_count_above_the_bound():
    from fastconv.cli import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--threads", str(MAX_THREADS + 1)])


# -- non-finite and huge values: auto gives direct's NaN / inf / finite pattern ----------

# A deep 3x3 layer auto runs by Winograd in every pass, on two threads (two_threads).
WINOGRAD_X = (4, 64, 16, 16)
WINOGRAD_W = (64, 64, 3, 3)


def _pattern(a):
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def _assert_same_pattern(a, b):
    for got, want in zip(_pattern(a), _pattern(b)):
        np.testing.assert_array_equal(got, want)


def _winograd_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(WINOGRAD_X).astype(np.float32)
    w = rng.standard_normal(WINOGRAD_W).astype(np.float32)
    plan = fastconv.conv_plan(WINOGRAD_X, WINOGRAD_W, padding=1)
    assert (plan.forward, plan.backward_data) == ("winograd", "winograd")
    return x, w


def _poison(a, kind):
    a = a.copy()
    if kind == "nan":
        a[0, 3, 5, 5] = np.nan
    elif kind == "inf":
        a[0, 3, 5, 5] = np.inf
    elif kind == "3e38":
        a[0, 3, 5, 5] = 3e38
        a[0, 7, 0, 8] = -3e38
    elif kind == "1e38":
        a[...] = np.sign(a) * np.float32(1e38)
    return a


POISONS = ["nan", "inf", "3e38", "1e38"]


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("kind", POISONS)
@pytest.mark.parametrize("where", ["x", "weight"])
def test_auto_forward_gives_directs_nan_inf_and_finite_outputs(kind, where):
    x, w = _winograd_problem()
    if where == "x":
        x = _poison(x, kind)
    else:
        w = _poison(w.reshape(1, 64, 64, 9), kind).reshape(WINOGRAD_W)
    direct = fastconv.conv2d(x, w, padding=1, algorithm="direct")
    auto = fastconv.conv2d(x, w, padding=1)
    _assert_same_pattern(auto, direct)


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("kind", POISONS)
def test_auto_input_gradient_gives_directs_nan_inf_and_finite_outputs(kind):
    x, w = _winograd_problem()
    grad_out = _poison(np.random.default_rng(1).standard_normal(WINOGRAD_X).astype(np.float32),
                       kind)
    direct = fastconv.conv2d_backward(grad_out, x, w, padding=1, algorithm="direct")
    auto = fastconv.conv2d_backward(grad_out, x, w, padding=1)
    for got, want in zip(auto, direct):
        _assert_same_pattern(got, want)


@pytest.mark.usefixtures("two_threads")
def test_one_nan_pixel_gives_exactly_the_nan_outputs_direct_gives():
    x, w = _winograd_problem()
    x[0, 3, 5, 5] = np.nan
    y = fastconv.conv2d(x, w, padding=1)
    assert np.isnan(y).sum() == 64 * 9                 # every filter, the 3x3 around it
    assert np.isnan(y[0, :, 4:7, 4:7]).all()


@pytest.mark.usefixtures("two_threads")
def test_an_inf_pixel_gives_inf_where_direct_does():
    x, w = _winograd_problem()
    x[0, 3, 5, 5] = np.inf
    y = fastconv.conv2d(x, w, padding=1)
    assert np.isinf(y).sum() == 64 * 9 and not np.isnan(y).any()


@pytest.mark.usefixtures("two_threads")
def test_explicit_winograd_keeps_its_behaviour_on_a_nan_pixel():
    x, w = _winograd_problem()
    x[0, 3, 5, 5] = np.nan
    y = fastconv.conv2d(x, w, padding=1, algorithm="winograd")
    assert np.isnan(y).sum() > 64 * 9                  # the whole tiles it reads


@pytest.mark.usefixtures("two_threads")
def test_auto_keeps_winograd_for_ordinary_values():
    from fastconv.plan import plan_for_values
    x, w = _winograd_problem()
    plan = fastconv.conv_plan(WINOGRAD_X, WINOGRAD_W, padding=1)
    assert plan_for_values(plan, "auto", x, w) is plan
    kept = plan_for_values(plan, "auto", x, w, grad_out=x)
    assert (kept.backward_data, kept.backward_weight) == (plan.backward_data,
                                                          plan.backward_weight)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_max_abs_scan_reports_the_largest_magnitude_inf_and_nan(simd, nthreads, threads):
    """On every SIMD path, for short arrays and for ones each thread scans a share of."""
    from fastconv import _ext
    threads(nthreads)
    rng = np.random.default_rng(nthreads)
    for dtype in (np.float32, np.float64):
        a = np.array([1.0, -7.5, 3.0], dtype)
        assert _ext.max_abs(a) == 7.5
        assert _ext.max_abs(np.array([], dtype)) == 0.0
        assert _ext.max_abs(np.array([1.0, -np.inf], dtype)) == np.inf
        assert np.isnan(_ext.max_abs(np.array([np.inf, np.nan, 1.0], dtype)))
        big = rng.standard_normal(200_003).astype(dtype)
        big[123_457] = -1e30
        assert _ext.max_abs(big) == np.abs(big).max() == np.float64(dtype(1e30))
        big[199_999] = np.nan
        assert np.isnan(_ext.max_abs(big))


# -- out= aliasing ---------------------------------------------------------------------

@pytest.mark.parametrize("which", ["a", "b", "view of a"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_refuses_an_out_that_overlaps_an_input(which, accumulate):
    a = np.ones((50, 50))
    b = np.ones((50, 50))
    out = {"a": a, "b": b, "view of a": a[:, :]}[which]
    with pytest.raises(ValueError, match=r"matmul: out overlaps (a|b) in memory"):
        fastconv.matmul(a, b, out=out, accumulate=accumulate)
    assert (a == 1).all() and (b == 1).all()


def _square_layers():
    from fastconv.nn import Conv2D, Linear, MaxPool2D, AvgPool2D
    return [(Linear(64, 64, seed=0), (64, 64)),      # large enough for the GEMM to pack
            (Conv2D(3, 3, 3, padding=1, seed=0), (2, 3, 6, 6)),
            (Conv2D(3, 3, 3, padding=1, activation="relu", seed=0), (2, 3, 6, 6)),
            (MaxPool2D(1), (2, 3, 4, 4)), (AvgPool2D(1), (2, 3, 4, 4))]


@pytest.mark.parametrize("index", range(5))
def test_a_layer_reusing_buffers_computes_correctly_when_given_its_own_last_result(index):
    layer, shape = _square_layers()[index]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want_y = layer.forward(x).copy()
    want_y2 = layer.forward(want_y).copy()
    want_gx = layer.backward(want_y2).copy()
    layer.reuse_buffers()
    y = layer.forward(x)
    y2 = layer.forward(y)                  # its own kept output as input
    np.testing.assert_array_equal(y2, want_y2)
    gx = layer.backward(y2)                # its own kept output as grad_out
    np.testing.assert_array_equal(gx, want_gx)


# -- empty dimensions --------------------------------------------------------------------

# (x shape, weight shape, padding): each with one dimension empty.
EMPTY_CONV = {
    "N=0": ((0, 2, 4, 4), (3, 2, 3, 3), 1),
    "C=0": ((2, 0, 4, 4), (3, 0, 3, 3), 1),
    "K=0": ((2, 2, 4, 4), (0, 2, 3, 3), 1),
    "H=0": ((2, 2, 0, 4), (3, 2, 1, 1), 1),
    "W=0": ((2, 2, 4, 0), (3, 2, 1, 1), 1),
}


@pytest.mark.parametrize("empty", EMPTY_CONV)
@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col"])
def test_conv2d_and_its_gradients_with_an_empty_dimension_match_the_mathematics(empty,
                                                                               algorithm):
    from fastconv import reference
    x_shape, w_shape, padding = EMPTY_CONV[empty]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = fastconv.conv2d(x, w, b, padding=padding, algorithm=algorithm)
    np.testing.assert_allclose(y, reference.conv2d(x, w, b, padding=padding))
    grad_out = rng.standard_normal(y.shape)
    grads = fastconv.conv2d_backward(grad_out, x, w, padding=padding, algorithm=algorithm)
    want = (np.zeros(x_shape), np.zeros(w_shape), grad_out.sum(axis=(0, 2, 3)))
    for got, expected in zip(grads, want):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-12)


# -- argument checks of the layer and model API -----------------------------------------

def _lenet():
    from fastconv.nn import LeNet5
    return LeNet5(seed=0)


@pytest.mark.parametrize("batch_size, error", [(-1, ValueError), (0, ValueError),
                                               (1.5, TypeError), (True, TypeError)])
def test_lenet5_predict_refuses_a_bad_batch_size_naming_it(batch_size, error):
    with pytest.raises(error, match=r"LeNet5.predict: batch_size must be"):
        _lenet().predict(np.zeros((3, 28, 28), np.uint8), batch_size=batch_size)


def test_lenet5_predict_accepts_a_numpy_integer_batch_size():
    assert _lenet().predict(np.zeros((3, 28, 28), np.uint8), batch_size=np.int64(2)).shape == (3,)


@pytest.mark.parametrize("make, shape", [
    (lambda: __import__("fastconv.nn", fromlist=["Conv2D"]).Conv2D(1, 2, 3), (1, 1, 5, 5)),
    (lambda: __import__("fastconv.nn", fromlist=["Linear"]).Linear(2, 2), (1, 2)),
    (_lenet, (1, 1, 32, 32))])
def test_layers_refuse_complex_input_with_a_type_error(make, shape):
    with pytest.raises(TypeError, match=r"x must be a real .* got dtype complex128"):
        make().forward(np.ones(shape, complex))


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0]), np.array([True, False]),
                                    np.array(["a", "b"])])
def test_softmax_cross_entropy_refuses_non_integer_labels_with_a_type_error(labels):
    from fastconv.nn import softmax_cross_entropy
    with pytest.raises(TypeError, match=r"softmax_cross_entropy: labels must be an integer"):
        softmax_cross_entropy(np.zeros((2, 3)), labels)


@pytest.mark.parametrize("call", [
    lambda flip: fastconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), flip=flip),
    lambda flip: fastconv.conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)),
                                          np.ones((1, 1, 2, 2)), flip=flip),
    lambda flip: fastconv.filters.filter2d(np.ones((3, 3)), np.ones((2, 2)), flip=flip),
    lambda flip: fastconv.filters.edge_kernel(normalize=flip)])
def test_flags_refuse_a_string_with_a_type_error(call):
    with pytest.raises(TypeError, match=r"(flip|normalize) must be a bool, got str 'no'"):
        call("no")


def test_avg_pool2d_refuses_a_huge_divisor_override_with_a_value_error():
    with pytest.raises(ValueError, match=r"avg_pool2d: divisor_override must be within"):
        fastconv.avg_pool2d(np.ones((1, 1, 4, 4)), 2, divisor_override=2**70)


def test_gaussian_refuses_a_huge_sigma_naming_it():
    with pytest.raises(ValueError, match=r"gaussian: sigma=1000000000000.0 with truncate"):
        fastconv.filters.gaussian(np.ones((4, 4)), sigma=1e12)


# -- RGBA images and float16 -----------------------------------------------------------

@pytest.mark.parametrize("func", ["sobel", "gaussian", "canny"])
def test_an_rgba_image_is_filtered_as_its_rgb_image_with_alpha_dropped(func):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    f = getattr(fastconv.filters, func)
    got = f(rgba)
    assert got.shape == (9, 7)
    np.testing.assert_array_equal(got, f(rgba[..., :3]))
    np.testing.assert_array_equal(f(rgba[None]), got[None])


def test_rgb_to_gray_drops_alpha():
    rgba = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(fastconv.filters.rgb_to_gray(rgba),
                                  fastconv.filters.rgb_to_gray(rgba[..., :3]))


def test_float16_computes_in_float32_alone_and_mixed_with_float32():
    x16 = np.ones((1, 1, 4, 4), np.float16)
    w32 = np.ones((1, 1, 3, 3), np.float32)
    assert fastconv.conv2d(x16, w32.astype(np.float16)).dtype == np.float32
    assert fastconv.conv2d(x16, w32).dtype == np.float32
    assert fastconv.conv2d(x16, w32.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("method", ["train", "reuse_buffers"])
def test_layer_mode_flags_refuse_a_string_with_a_type_error(method):
    from fastconv.nn import Linear
    with pytest.raises(TypeError, match=rf"Linear.{method}: mode must be a bool, got str"):
        getattr(Linear(2, 2), method)("no")


def test_an_initial_omp_num_threads_above_the_bound_is_capped_with_a_warning(tmp_path):
    """A serial build ignores OMP_NUM_THREADS: one thread, no warning."""
    import subprocess
    import sys
    expected, warned = ("MAX_THREADS", "any") if OPENMP else ("1", "not any")
    code = ("import warnings, numpy as np\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastconv\n"
            "from fastconv.config import MAX_THREADS\n"
            f"assert fastconv.get_num_threads() == {expected}, fastconv.get_num_threads()\n"
            f"assert {warned}('OMP_NUM_THREADS asks for 1000000' in str(x.message) for x in w)\n"
            "assert fastconv.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))).sum() == 36\n")
    # outside the checkout, so that the child imports the fastconv this process tests
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          env=subprocess_env(OMP_NUM_THREADS="1000000"), text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


# ---- huge strides: work and memory follow the output, never the stride -------------------

@pytest.mark.parametrize("stride", [10**4, 10**5, 2**31 - 1])
@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
def test_huge_stride_runs_like_its_one_output_pixel(stride, algorithm):
    """A 3x3 image, a 1x1 filter and a stride past the image: one output pixel, computed
    from the one pixel it reads, forward and backward, without a workspace per stride
    phase (which asked for gigabytes, or ran for minutes)."""
    x = np.arange(1.0, 19.0).reshape(1, 2, 3, 3)
    w = np.array([[[[2.0]], [[3.0]]]])
    y = fastconv.conv2d(x, w, stride=stride, algorithm=algorithm)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 2 * 1 + 3 * 10
    gx, gw, gb = fastconv.conv2d_backward(np.full_like(y, 5.0), x, w, stride=stride,
                                          algorithm=algorithm)
    want_gx = np.zeros_like(x)
    want_gx[0, :, 0, 0] = [10.0, 15.0]
    assert np.array_equal(gx, want_gx)
    assert np.array_equal(gw.ravel(), [5.0, 50.0]) and np.array_equal(gb, [5.0])


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 3, 9, 11), (4, 3, 1, 1), dict(stride=2)),
    ((2, 3, 9, 11), (4, 3, 2, 2), dict(stride=(3, 4), padding=1)),
    ((2, 3, 17, 11), (4, 3, 2, 3), dict(stride=(5, 7), padding=(1, 2, 0, 3), dilation=(2, 1))),
    ((1, 4, 9, 9), (2, 2, 1, 2), dict(stride=(3, 1), groups=2)),
    ((1, 1, 5, 40), (1, 1, 3, 3), dict(stride=(1, 9), padding=(0, 0, 4, 0))),
])
@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
def test_strides_that_leave_gaps_match_the_reference(x_shape, w_shape, kwargs, algorithm):
    """Where the stride exceeds the dilated filter, the kernels run on the rows and columns
    the windows read (fastconv.plan.windows_geometry): results and every gradient are the
    definition's, padding taps included, and rows no window reads get a zero gradient."""
    rng = np.random.default_rng(len(x_shape) + sum(w_shape))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = fastconv.conv2d(x, w, b, algorithm=algorithm, **kwargs)
    assert rel_err(y, reference.conv2d(x, w, b, **kwargs)) < 1e-12
    dy = rng.standard_normal(y.shape)
    got = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm, **kwargs)
    for g, want in zip(got, reference.conv2d_backward(dy, x, w, **kwargs)):
        assert rel_err(g, want) < 1e-12


def test_conv_plan_plans_the_rows_a_gapped_stride_reads():
    """A 1x1 filter at stride 2 runs on the gathered pixels: stride 1, a quarter the image."""
    geom = conv_geometry((2, 8, 16, 16), (4, 8, 1, 1), 2, 0, 1, 1, "t")
    run, rows, cols = plan.windows_geometry(geom, "t")
    assert run.input_shape == (2, 8, 8, 8) and run.stride == (1, 1)
    assert run.output_shape == geom.output_shape
    assert list(rows) == list(range(0, 16, 2)) and list(cols) == list(range(0, 16, 2))
