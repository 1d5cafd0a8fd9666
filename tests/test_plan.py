"""fastconv.plan: each rule of the algorithm choice on both sides of its threshold, explicit
algorithms, the im2col workspace fallback, conv_plan's argument checks, and that conv2d and
conv2d_backward run what conv_plan states."""
import dataclasses
import math

import numpy as np
import pytest

import fastconv
from fastconv import _ext, plan
from fastconv._checks import conv_geometry

from conftest import thread_count, threads_in_effect


# Some rules count the work per thread: every test runs on two (conftest.two_threads).
pytestmark = pytest.mark.usefixtures("two_threads")


def conv_plan(N, C, H, W, K, R=3, S=None, stride=1, padding=1, groups=1, **kwargs):
    return fastconv.conv_plan((N, C, H, W), (K, C // groups, R, R if S is None else S),
                              stride, padding, 1, groups, **kwargs)


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def passes(p):
    return (p.forward, p.backward_data, p.backward_weight)


# -- Winograd F(4x4, 3x3): forward pass and input gradient -----------------------------------
def test_winograd_needs_min_channels_and_filters():
    m = plan.WINOGRAD_MIN_CHANNELS
    wide = 4 * m
    assert conv_plan(8, m, 28, 28, wide).forward == "winograd"
    assert conv_plan(8, m - 1, 28, 28, wide).forward != "winograd"
    assert conv_plan(8, wide, 28, 28, m).forward == "winograd"
    assert conv_plan(8, wide, 28, 28, m - 1).forward != "winograd"


def test_winograd_needs_min_output_tiles():
    t = plan.WINOGRAD_TILE
    assert plan.WINOGRAD_MIN_TILES == 8 * 8
    # 8 x 8 tiles of 4x4 (the last row and column of tiles partly filled) vs 9 x 7
    assert conv_plan(1, 64, 8 * t - 1, 8 * t - 3, 64).forward == "winograd"
    assert conv_plan(1, 64, 9 * t, 7 * t, 64).forward != "winograd"


@pytest.mark.parametrize("count", [1, 2, 3])
def test_winograd_needs_tiles_times_channels_per_thread(count):
    """C = K = 16 on 32x32 outputs (64 tiles per image): the fewest images that reach the
    bound on `count` threads (those in effect) run Winograd, one image fewer does not."""
    per_image = 8 * 8 * 16
    with thread_count(count):
        bound = plan.WINOGRAD_MIN_TILE_CHANNELS_PER_THREAD * threads_in_effect(count)
        images = -(-bound // per_image)
        assert conv_plan(images, 16, 32, 32, 16).forward == "winograd"
        assert conv_plan(images - 1, 16, 32, 32, 16).forward != "winograd"


def test_winograd_input_gradient_counts_the_input_tiles():
    """Unpadded 29x29 images: the output (27x27) has 7 x 7 tiles, the input 8 x 8."""
    p = conv_plan(1, 64, 29, 29, 64, padding=0)
    assert (p.forward, p.backward_data) == ("direct", "winograd")


def test_winograd_needs_its_filter_bank_under_the_bound():
    per_pair = plan.WINOGRAD_FILTER_BANK_VALUES * plan.WINOGRAD_FILTER_BANK_ITEM_BYTES
    largest = math.isqrt(plan.WINOGRAD_MAX_FILTER_BANK_BYTES // per_pair)    # C = K
    assert conv_plan(1, largest, 32, 32, largest).forward == "winograd"
    assert conv_plan(1, largest + 1, 32, 32, largest + 1).forward != "winograd"
    assert conv_plan(1, largest + 1, 32, 32, largest + 1, dtype="float64").forward != "winograd"


@pytest.mark.parametrize("kwargs", [dict(R=5, padding=2), dict(R=3, S=1), dict(stride=2),
                                    dict(groups=2)])
def test_winograd_only_for_3x3_stride_1_ungrouped_layers(kwargs):
    assert "winograd" not in passes(conv_plan(8, 128, 28, 28, 128, **kwargs))
    with pytest.raises(ValueError, match="conv_plan: algorithm='winograd' needs 3x3 filters"):
        conv_plan(8, 128, 28, 28, 128, algorithm="winograd", **kwargs)


def test_winograd_only_undilated():
    shapes = ((8, 128, 28, 28), (128, 128, 3, 3))
    assert "winograd" not in passes(fastconv.conv_plan(*shapes, padding=2, dilation=2))
    with pytest.raises(ValueError, match="dilation 1"):
        fastconv.conv_plan(*shapes, padding=2, dilation=2, algorithm="winograd")


# -- direct or im2col ------------------------------------------------------------------------
def test_im2col_needs_min_taps():
    """1x1 filters run im2col from IM2COL_MIN_TAPS channels (per group)."""
    m, f = plan.IM2COL_MIN_TAPS, plan.IM2COL_MIN_FILTERS
    assert passes(conv_plan(2, m, 16, 16, f, R=1, padding=0)) == ("im2col",) * 3
    assert passes(conv_plan(2, m - 1, 16, 16, f, R=1, padding=0)) == ("direct",) * 3
    grouped = dict(R=1, padding=0, groups=2)
    assert passes(conv_plan(2, 2 * m, 16, 16, 2 * f, **grouped)) == ("im2col",) * 3
    assert passes(conv_plan(2, 2 * m - 2, 16, 16, 2 * f, **grouped)) == ("direct",) * 3


def test_im2col_needs_min_filters():
    m, f = plan.IM2COL_MIN_TAPS, plan.IM2COL_MIN_FILTERS
    assert passes(conv_plan(2, m, 16, 16, f, R=1, padding=0)) == ("im2col",) * 3
    assert passes(conv_plan(2, m, 16, 16, f - 1, R=2, padding=0)) == ("direct",) * 3


def test_pointwise_forward_runs_im2col_from_fewer_filters_with_many_taps_or_one_image():
    """A pointwise forward pass copies nothing: im2col from IM2COL_POINTWISE_MIN_FILTERS
    filters when there are IM2COL_MIN_TAPS channels or one image; the backward passes keep
    the general rule."""
    m, f = plan.IM2COL_MIN_TAPS, plan.IM2COL_POINTWISE_MIN_FILTERS
    assert f < plan.IM2COL_MIN_FILTERS
    assert passes(conv_plan(2, m, 16, 16, f, R=1, padding=0)) == ("im2col", "direct", "direct")
    assert passes(conv_plan(1, m // 4, 16, 16, f, R=1, padding=0)) == (
        "im2col", "direct", "direct")
    assert conv_plan(2, m // 4, 16, 16, f, R=1, padding=0).forward == "direct"
    assert conv_plan(1, m, 16, 16, f - 1, R=1, padding=0).forward == "direct"


def test_im2col_for_pointwise_filters_only_among_shapes():
    """1x1 filters run im2col where 1x2 filters of the same taps run direct."""
    assert plan.IM2COL_POINTWISE_TAPS == 1
    assert conv_plan(2, 64, 16, 16, 32, R=1, padding=0).forward == "im2col"
    assert conv_plan(2, 32, 16, 16, 32, R=1, S=2, padding=0).forward == "direct"


def test_im2col_for_the_backward_passes_of_small_outputs():
    """The forward runs direct there (its threads share out the filters)."""
    m = plan.IM2COL_MAX_OUTPUT_PIXELS
    assert m == 8 * 8
    # 5x5 filters, 16 channels: 400 taps; output 8x8 vs 13x5 pixels
    assert passes(conv_plan(4, 16, 12, 12, 32, R=5, padding=0)) == ("direct",) + ("im2col",) * 2
    assert passes(conv_plan(4, 16, 17, 9, 32, R=5, padding=0)) == ("direct",) * 3


def test_im2col_backward_from_min_taps():
    taps = plan.IM2COL_BACKWARD_MIN_TAPS
    C = taps // 16                      # 4x4 filters: no Winograd, below 7x7
    assert passes(conv_plan(2, C, 20, 20, 32, R=4, padding=0)) == ("direct", "im2col", "im2col")
    assert passes(conv_plan(2, C - 1, 20, 20, 32, R=4, padding=0)) == ("direct",) * 3


def test_im2col_backward_for_large_filters():
    assert plan.IM2COL_BACKWARD_MIN_FILTER_TAPS == 7 * 7
    assert passes(conv_plan(2, 2, 30, 30, 32, R=7, padding=0)) == ("direct", "im2col", "im2col")
    assert passes(conv_plan(2, 2, 30, 30, 32, R=6, S=8, padding=0)) == ("direct",) * 3


def test_im2col_above_its_workspace_bound_runs_direct():
    """1x1 filters with one output row of 1024 x Q columns: float32 fits the bound at
    Q = 16384 (exactly 64 MiB), not at 16385 or in float64."""
    C = 1024
    Q = _ext.IM2COL_MAX_ROW_BYTES // (C * 4)
    assert plan.im2col_row_bytes(conv_geometry((1, C, 1, Q), (32, C, 1, 1), 1, 0, 1, 1, "t"),
                                 np.float32) == _ext.IM2COL_MAX_ROW_BYTES
    assert passes(conv_plan(1, C, 1, Q, 32, R=1, padding=0)) == ("im2col",) * 3
    assert passes(conv_plan(1, C, 1, Q + 1, 32, R=1, padding=0)) == ("direct",) * 3
    assert passes(conv_plan(1, C, 1, Q, 32, R=1, padding=0, dtype="float64")) == ("direct",) * 3
    # an explicit "im2col" is obeyed (the kernel then refuses: tests/test_huge_shapes.py)
    explicit = conv_plan(1, C, 1, Q + 1, 32, R=1, padding=0, algorithm="im2col")
    assert passes(explicit) == ("im2col",) * 3


# -- Winograd F(4x4, 3x3): weight gradient ---------------------------------------------------
def test_weight_winograd_needs_min_channels_and_filters():
    m = plan.WINOGRAD_WEIGHT_MIN_CHANNELS
    assert conv_plan(8, m, 28, 28, m).backward_weight == "winograd"
    assert conv_plan(8, m - 1, 28, 28, 2 * m).backward_weight != "winograd"
    assert conv_plan(8, 2 * m, 28, 28, m - 1).backward_weight != "winograd"


def test_weight_winograd_needs_min_output_tiles():
    """Tiles of 4x4: a 124x4 output has 31 x 1 of them, a 125x4 one 32 x 1."""
    assert plan.WINOGRAD_WEIGHT_MIN_TILES == 32
    assert conv_plan(1, 128, 124, 4, 128).backward_weight != "winograd"
    assert conv_plan(1, 128, 125, 4, 128).backward_weight == "winograd"
    assert conv_plan(2, 128, 124, 4, 128).backward_weight == "winograd"


def test_weight_winograd_needs_its_sums_under_the_kernel_bound():
    per_pair = plan.WINOGRAD_WEIGHT_SUMS_PER_PAIR * plan.WINOGRAD_WEIGHT_SUM_ITEM_BYTES
    pairs = _ext.WINOGRAD_MAX_SUMS_BYTES // per_pair
    C = 512
    K = pairs // C
    assert C * K <= pairs < (C + 1) * K
    for dtype in ("float32", "float64"):
        assert conv_plan(1, C, 32, 32, K, dtype=dtype).backward_weight == "winograd"
        assert conv_plan(1, C + 1, 32, 32, K, dtype=dtype).backward_weight != "winograd"


@pytest.mark.parametrize("kwargs", [dict(R=5, padding=2), dict(stride=2), dict(groups=2)])
def test_weight_winograd_only_for_3x3_stride_1_ungrouped_layers(kwargs):
    assert conv_plan(8, 128, 56, 56, 128, **kwargs).backward_weight != "winograd"


def test_weight_gradient_otherwise_runs_the_backward_algorithm():
    """Where the Winograd weight gradient does not pay, grad_w runs grad_x's algorithm, or
    direct/im2col where grad_x runs Winograd but grad_w cannot (its sums too large)."""
    # 512 channels: 4,608 taps, so the backward passes' general choice is im2col
    assert not plan.winograd_weight_sums_fit(plan.conv_geometry(
        (4, 512, 14, 14), (512, 512, 3, 3), 1, 1, 1, 1, "t"))
    assert passes(conv_plan(4, 512, 14, 14, 512)) == ("winograd", "winograd", "im2col")
    assert passes(conv_plan(2, 128, 7, 7, 128)) == ("direct", "im2col", "im2col")


# -- explicit algorithms ---------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_explicit_algorithm_runs_every_pass(algorithm):
    for shape in ((8, 128, 28, 28, 128), (2, 1, 16, 16, 6), (2, 64, 8, 8, 32)):
        assert passes(conv_plan(*shape, algorithm=algorithm)) == (algorithm,) * 3


def test_explicit_winograd_takes_the_weight_gradient_from_direct_or_im2col():
    """Even where auto's weight gradient would be Winograd F(4x4, 3x3)."""
    assert conv_plan(8, 128, 28, 28, 128).backward_weight == "winograd"
    explicit = conv_plan(8, 128, 28, 28, 128, algorithm="winograd")
    assert passes(explicit) == ("winograd", "winograd", "direct")
    assert passes(conv_plan(4, 256, 16, 16, 256, algorithm="winograd")) == (
        "winograd", "winograd", "im2col")
    # 8 filters: the backward passes' general choice is direct
    assert passes(conv_plan(1, 8, 3, 3, 8, algorithm="winograd")) == ("winograd", "winograd",
                                                                     "direct")


# -- conv_plan's arguments and result ---------------------------------------------------------
def test_conv_plan_matches_the_plan_of_conv_geometry():
    p = fastconv.conv_plan((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert p.geometry == conv_geometry((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1, "t")
    assert p.dtype == "float32"
    assert fastconv.conv_plan([8, 64, 56, 56], [64, 64, 3, 3], 1, "same") == p


def test_conv_plan_is_frozen_and_readable():
    p = fastconv.conv_plan((8, 64, 56, 56), (8, 64, 3, 3), padding=1, dtype=np.float64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.forward = "direct"
    assert repr(p) == ("ConvPlan(" + ", ".join(f"{name}='direct ({p.variant(name)})'"
                                               for name in plan.PASSES) + ")")
    text = str(p)
    assert "x (8, 64, 56, 56), weight (8, 64, 3, 3)" in text and "float64" in text
    for name in plan.PASSES:
        assert f"{name} " in text and getattr(p, name) in text


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(algorithm="fast"), ValueError, "conv_plan: algorithm must be one of"),
    (dict(x_shape=5), TypeError, "conv_plan: x_shape must be a tuple of 4 ints"),
    (dict(x_shape=(1, 3, 8)), ValueError, "conv_plan: x_shape must be .* 4 ints"),
    (dict(weight_shape=(4, 3, -1, 3)), ValueError, "conv_plan: weight_shape must be >= 0"),
    (dict(x_shape=(1, 3, 8.5, 8)), TypeError, "conv_plan: x_shape"),
    (dict(dtype="int32"), ValueError, "conv_plan: dtype must be float32 or float64"),
    (dict(dtype="no such type"), TypeError, "conv_plan: dtype must be float32 or float64"),
    (dict(stride=0), ValueError, "conv_plan: stride must be >= 1"),
    (dict(groups=2), ValueError, "conv_plan: groups=2 must divide the input channels"),
    (dict(x_shape=(1, 4, 8, 8)), ValueError, "conv_plan: expected weight of shape"),
    (dict(x_shape=(1, 3, 2, 2)), ValueError, "conv_plan: the kernel .* is larger"),
])
def test_conv_plan_checks_its_arguments(kwargs, error, match):
    args = dict(x_shape=(1, 3, 8, 8), weight_shape=(4, 3, 3, 3))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fastconv.conv_plan(**args)


# -- conv2d and conv2d_backward run the plan --------------------------------------------------
# (N, C, H, W, K, R, padding): each algorithm of each pass, auto's Winograd weight gradient
# and Winograd's grad_x with a direct or im2col grad_w.
RUN_CASES = {
    "direct": (4, 1, 16, 16, 6, 5, 0),
    "im2col": (2, 64, 8, 8, 32, 1, 0),
    "winograd, grad_w direct": (4, 64, 16, 16, 64, 3, 1),
    "winograd, grad_w im2col": (4, 256, 16, 16, 32, 3, 1),
    "winograd everywhere": (4, 128, 16, 16, 128, 3, 1),
}


def run_case(name, dtype):
    """x, weight, padding, geometry and plan of RUN_CASES[name] in dtype."""
    N, C, H, W, K, R, padding = RUN_CASES[name]
    x = random((N, C, H, W), 1).astype(dtype)
    w = random((K, C, R, R), 2).astype(dtype)
    geom = conv_geometry(x.shape, w.shape, 1, padding, 1, 1, "t")
    return x, w, padding, geom, fastconv.conv_plan(x.shape, w.shape, padding=padding, dtype=dtype)


@pytest.mark.parametrize("name", list(RUN_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_runs_the_plan(name, dtype):
    x, w, padding, _, p = run_case(name, dtype)
    y = fastconv.conv2d(x, w, padding=padding)
    assert np.array_equal(y, fastconv.conv2d(x, w, padding=padding, algorithm=p.forward))


@pytest.mark.parametrize("name", list(RUN_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_backward_runs_the_plan(name, dtype):
    x, w, padding, geom, p = run_case(name, dtype)
    dy = random(geom.output_shape, 3).astype(dtype)
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, padding=padding)
    want_x, _, want_b = fastconv.conv2d_backward(dy, x, w, padding=padding,
                                                 algorithm=p.backward_data)
    assert np.array_equal(gx, want_x) and np.array_equal(gb, want_b)
    if p.backward_weight == "winograd":   # auto's alone, so the kernel itself
        want_w = np.empty_like(w)
        _ext.conv_backward(dy, x, w, None, want_w, None, geom, "direct", "winograd")
    else:
        _, want_w, _ = fastconv.conv2d_backward(dy, x, w, padding=padding,
                                                algorithm=p.backward_weight)
    assert np.array_equal(gw, want_w)


def test_run_cases_cover_every_algorithm_of_every_pass():
    seen = set()
    for case in RUN_CASES:
        p = run_case(case, np.float32)[-1]
        seen |= {(name, getattr(p, name)) for name in plan.PASSES}
    assert seen == {(name, a) for name in plan.PASSES for a in ("direct", "im2col", "winograd")}


def test_an_unknown_algorithm_name_is_refused_by_the_c_dispatcher():
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    geom = conv_geometry(x.shape, w.shape, 1, 0, 1, 1, "t")
    with pytest.raises(RuntimeError, match="rejected"):
        _ext.conv_forward(np.empty(geom.output_shape), x, w, None, geom, "fft")


def direct_runs_during(call):
    """How many times each direct variant ran during call(), per pass."""
    before = fastconv._ext.conv_direct_variant_counts()
    call()
    after = fastconv._ext.conv_direct_variant_counts()
    return {p: {v: after[p][v] - before[p][v] for v in after[p]} for p in after}


@pytest.mark.parametrize("x_shape, w_shape, stride", [
    pytest.param((64, 1, 32, 32), (6, 1, 5, 5), 1, id="lenet5_conv1"),
    pytest.param((64, 6, 14, 14), (16, 6, 5, 5), 1, id="lenet5_conv2"),
    pytest.param((32, 3, 39, 39), (10, 3, 3, 3), 1, id="lecture_layer1"),
    pytest.param((32, 10, 37, 37), (20, 10, 5, 5), 2, id="lecture_layer2"),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_plan_names_the_direct_variant_each_pass_runs(x_shape, w_shape, stride, dtype):
    p = fastconv.conv_plan(x_shape, w_shape, stride=stride, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = fastconv.conv2d(x, w, stride=stride)
    runs = direct_runs_during(lambda: fastconv.conv2d(x, w, stride=stride))
    runs_back = direct_runs_during(lambda: fastconv.conv2d_backward(np.ones_like(y), x, w,
                                                                    stride=stride))
    runs.update(backward_data=runs_back["backward_data"],
                backward_weight=runs_back["backward_weight"])
    for name in plan.PASSES:
        assert getattr(p, name) == "direct"      # small layers: every pass runs direct
        assert runs[name] == {v: int(v == p.variant(name)) for v in runs[name]}, name


def test_conv_plan_names_no_variant_for_passes_that_do_not_run_direct():
    p = fastconv.conv_plan((4, 512, 14, 14), (512, 512, 3, 3), padding=1)
    assert passes(p) == ("winograd", "winograd", "im2col")
    assert all(p.variant(name) is None for name in plan.PASSES)
    p = fastconv.conv_plan((8, 64, 56, 56), (24, 64, 3, 3), padding=1)
    assert p.backward_weight == "direct"
    assert p.variant("backward_weight") in ("by_pixels", "by_filters")


@pytest.mark.parametrize("x_shape, w_shape", [((0, 8, 4, 4), (8, 8, 3, 3)),
                                              ((1, 0, 4, 4), (8, 0, 3, 3)),
                                              ((1, 8, 4, 4), (0, 8, 3, 3))])
def test_a_problem_with_an_empty_axis_has_a_plan_without_variants(x_shape, w_shape):
    """conv2d of such a problem runs no kernel (its outputs are zeros or empty)."""
    p = fastconv.conv_plan(x_shape, w_shape, padding=1)
    assert p.variants == (None, None, None) and p.geometry.input_shape == x_shape
