"""The depthwise convolution (algorithm="depthwise", and auto on depthwise layers): against
the reference loops and PyTorch, forward and backward, on every SIMD path and thread
count, and the plan's rule."""
import numpy as np
import pytest

import fastconv
from fastconv import plan as plan_module
from fastconv import reference
from fastconv._checks import conv_geometry

from conftest import needs_openmp, rel_err, set_threads, thread_count

# (N, C, H, W, multiplier, R, S, stride, padding, dilation): the cases every check runs.
CASES = [
    (2, 3, 9, 8, 1, 3, 3, 1, 1, 1),
    (2, 3, 9, 8, 2, 3, 3, 1, 1, 1),
    (2, 4, 11, 10, 1, 3, 3, 2, 1, 1),
    (1, 3, 12, 13, 2, 5, 5, 1, 2, 1),
    (2, 2, 10, 9, 1, 5, 5, 2, (1, 2, 0, 3), 1),
    (2, 3, 7, 6, 2, 1, 1, 1, 0, 1),
    (1, 5, 8, 8, 1, 1, 1, 2, 0, 1),
    (2, 3, 8, 9, 1, 3, 1, (2, 1), (1, 0), 1),
    (1, 2, 9, 9, 1, 2, 2, 1, "same", 1),
    (1, 3, 9, 10, 2, 3, 3, 1, "same", 1),
    (2, 2, 13, 12, 1, 3, 3, 1, 2, 2),
    (1, 2, 14, 15, 2, 3, 3, (2, 3), 2, (2, 1)),
    (3, 2, 1, 1, 1, 3, 3, 1, 1, 1),
    (1, 2, 2, 3, 2, 5, 5, 1, 2, 1),
    (1, 16, 40, 37, 1, 3, 3, 1, 1, 1),
    (2, 8, 21, 23, 1, 3, 3, 2, 1, 1),
]


def make(case, dtype=np.float64, seed=0):
    N, C, H, W, mult, R, S, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C * mult, 1, R, S)).astype(dtype)
    b = rng.standard_normal(C * mult).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    return x, w, b, kw


def output_shape(x, w, kw):
    return conv_geometry(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"],
                         kw["groups"], "test").output_shape


def reference_kwargs(x, w, kw):
    g = conv_geometry(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"],
                      kw["groups"], "test")
    return dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_reference_forward_and_backward(case, simd):
    x, w, b, kw = make(case)
    dy = np.random.default_rng(1).standard_normal(output_shape(x, w, kw))
    ref_kw = reference_kwargs(x, w, kw)
    y = fastconv.conv2d(x, w, b, algorithm="depthwise", **kw)
    assert rel_err(y, reference.conv2d(x, w, b, **ref_kw)) < 1e-13
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, algorithm="depthwise", **kw)
    rx, rw, rb = reference.conv2d_backward(dy, x, w, **ref_kw)
    assert rel_err(gx, rx) < 1e-13
    assert rel_err(gw, rw) < 1e-13
    assert rel_err(gb, rb) < 1e-13


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_matches_pytorch(case, simd):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, np.float32)
    g = conv_geometry(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"],
                      kw["groups"], "test")
    dy = np.random.default_rng(1).standard_normal(g.output_shape).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    top, bottom, left, right = g.padding
    xp = torch.nn.functional.pad(xt, (left, right, top, bottom))
    yt = torch.nn.functional.conv2d(xp, wt, bt, stride=g.stride, dilation=g.dilation,
                                    groups=g.groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    y = fastconv.conv2d(x, w, b, **kw)
    assert y.dtype == np.float32
    assert rel_err(y, yt.detach().numpy()) < 1e-5
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, **kw)
    assert rel_err(gx, xt.grad.numpy()) < 1e-5
    assert rel_err(gw, wt.grad.numpy()) < 1e-5
    assert rel_err(gb, bt.grad.numpy()) < 1e-5


def test_auto_runs_depthwise_on_the_cases_of_multiplier_one():
    for case in CASES:
        x, w, _, kw = make(case)
        plan = fastconv.conv_plan(x.shape, w.shape, **kw)
        expected = "depthwise" if w.shape[0] == x.shape[1] else "direct"
        assert plan.backward_data == plan.backward_weight == expected


@needs_openmp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[14], (9, 2, 12, 11, 3, 3, 3, 1, 1, 1)],
                         ids=str)
def test_thread_counts_agree(case, dtype, threads):
    x, w, b, kw = make(case, dtype)
    dy = np.random.default_rng(1).standard_normal(output_shape(x, w, kw)).astype(dtype)
    results = []
    for n in (1, 2, 3):
        set_threads(n)
        results.append((fastconv.conv2d(x, w, b, **kw),)
                       + fastconv.conv2d_backward(dy, x, w, **kw))
    for other in results[1:]:
        # Each thread owns whole planes of y and grad_x, and whole filters of grad_bias.
        for i in (0, 1, 3):
            np.testing.assert_array_equal(other[i], results[0][i])
        # grad_weight sums per-thread partials where the channels are few.
        assert rel_err(other[2], results[0][2]) < (1e-12 if dtype == np.float64 else 1e-5)
    # The weight gradient is bitwise the same from call to call at one thread count.
    set_threads(2)
    again = fastconv.conv2d_backward(dy, x, w, **kw)[1]
    np.testing.assert_array_equal(again, results[1][2])


def test_finite_differences_float64():
    x, w, b, kw = make((1, 2, 6, 5, 2, 3, 3, 2, 1, 1))
    dy = np.random.default_rng(3).standard_normal(output_shape(x, w, kw))
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, **kw)

    def loss(x_, w_, b_):
        return float(np.sum(fastconv.conv2d(x_, w_, b_, **kw) * dy))
    eps = 1e-6
    for array, grad in ((x, gx), (w, gw), (b, gb)):
        for index in [(0,) * array.ndim, tuple(s - 1 for s in array.shape),
                      tuple(s // 2 for s in array.shape)]:
            plus, minus = array.copy(), array.copy()
            plus[index] += eps
            minus[index] -= eps
            args = [x, w, b]
            which = [x is array, w is array, b is array].index(True)
            args[which] = plus
            up = loss(*args)
            args[which] = minus
            down = loss(*args)
            assert abs((up - down) / (2 * eps) - grad[index]) < 1e-6


def test_noncontiguous_inputs_are_not_modified():
    x, w, b, kw = make(CASES[2])
    xs = np.asfortranarray(np.repeat(x, 2, axis=3)[..., ::2])
    ws = np.asfortranarray(w)
    copies = (xs.copy(), ws.copy(), b.copy())
    y = fastconv.conv2d(xs, ws, b, **kw)
    np.testing.assert_array_equal(y, fastconv.conv2d(x, w, b, **kw))
    dy = np.ascontiguousarray(y)[:, :, ::1, ::1] * 1.0
    dyf = np.asfortranarray(dy)
    got = fastconv.conv2d_backward(dyf, xs, ws, **kw)
    want = fastconv.conv2d_backward(dy, x, w, **kw)
    for a, b_ in zip(got, want):
        np.testing.assert_array_equal(a, b_)
    for before, after in zip(copies, (xs, ws, b)):
        np.testing.assert_array_equal(before, after)


def test_out_arrays_are_written_and_returned():
    x, w, b, kw = make(CASES[1])
    y = np.full(output_shape(x, w, kw), np.nan)
    assert fastconv.conv2d(x, w, b, out=y, **kw) is y
    np.testing.assert_array_equal(y, fastconv.conv2d(x, w, b, **kw))
    dy = np.ones_like(y)
    outs = (np.full(x.shape, np.nan), np.full(w.shape, np.nan), np.full(b.shape, np.nan))
    got = fastconv.conv2d_backward(dy, x, w, out=outs, **kw)
    assert all(a is o for a, o in zip(got, outs))
    for a, b_ in zip(got, fastconv.conv2d_backward(dy, x, w, **kw)):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("shape, weight, padding", [
    ((0, 3, 8, 8), (6, 1, 3, 3), 1),
    ((2, 3, 0, 8), (3, 1, 1, 1), 1),
])
def test_empty_dimensions(shape, weight, padding):
    x = np.zeros(shape)
    w = np.ones(weight)
    groups = max(shape[1], 1)
    bias = np.arange(weight[0], dtype=float)
    y = fastconv.conv2d(x, w, bias, groups=groups, padding=padding)
    np.testing.assert_array_equal(y, np.broadcast_to(bias[:, None, None], y.shape[1:])[None]
                                  * np.ones(y.shape))
    gx, gw, gb = fastconv.conv2d_backward(y, x, w, groups=groups, padding=padding)
    assert gx.shape == x.shape and gw.shape == w.shape and np.all(gw == 0)
    np.testing.assert_array_equal(gb, y.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate_as_pytorch(dtype, simd):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make((2, 3, 9, 8, 2, 3, 3, 1, 1, 1), dtype)
    x[0, 0, 0, 0] = np.nan
    x[1, 1, 4, 4] = np.inf
    x[1, 2, 8, 7] = -np.inf
    w[1, 0, 0, 0] = np.inf          # channel 0's second filter
    w[4, 0, 2, 2] = np.nan          # channel 2's first filter
    dy = np.random.default_rng(1).standard_normal(output_shape(x, w, kw)).astype(dtype)
    dy[0, 3, 2, 2] = np.inf
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(b), padding=1, groups=3)
    yt.backward(torch.tensor(dy))
    y = fastconv.conv2d(x, w, b, algorithm="depthwise", **kw)
    gx, gw, _ = fastconv.conv2d_backward(dy, x, w, algorithm="depthwise", **kw)
    for got, want in ((y, yt.detach().numpy()), (gx, xt.grad.numpy()), (gw, wt.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        assert rel_err(got[finite], want[finite]) < 1e-4


def test_explicit_depthwise_is_refused_where_it_does_not_apply():
    x = np.zeros((1, 4, 8, 8))
    with pytest.raises(ValueError, match="algorithm='depthwise' needs groups equal to the "
                                         "input channels.*got 4 channels, groups 2, 4 filters"):
        fastconv.conv2d(x, np.zeros((4, 2, 3, 3)), groups=2, algorithm="depthwise")
    with pytest.raises(ValueError, match="algorithm='depthwise'.*groups 1"):
        fastconv.conv2d_backward(np.zeros((1, 4, 6, 6)), x, np.zeros((4, 4, 3, 3)),
                                 algorithm="depthwise")
    with pytest.raises(ValueError, match="algorithm='depthwise'"):
        fastconv.conv_plan((1, 4, 8, 8), (8, 4, 3, 3), algorithm="depthwise")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        fastconv.conv2d(x, np.zeros((4, 1, 3, 3)), groups=4, algorithm="Depthwise")


# -- the plan's rule ------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, groups, stride, expected", [
    ((8, 32, 16, 16), (32, 1, 3, 3), 32, 1, ("depthwise",) * 3),
    ((8, 2, 16, 16), (2, 1, 3, 3), 2, 1, ("depthwise",) * 3),        # DEPTHWISE_MIN_GROUPS
    ((8, 1, 16, 16), (6, 1, 5, 5), 1, 1, None),                      # one group
    ((8, 32, 16, 16), (64, 1, 3, 3), 32, 1, None),                   # multiplier 2
    ((8, 32, 16, 16), (32, 2, 3, 3), 16, 1, None),                   # grouped, not depthwise
    ((8, 32, 16, 16), (32, 32, 1, 1), 1, 1, None),                   # pointwise
    ((8, 96, 32, 32), (96, 1, 3, 3), 96, 2, ("depthwise",) * 3),     # 1024 input pixels
    ((8, 96, 32, 33), (96, 1, 3, 3), 96, 2, ("direct", "depthwise", "depthwise")),
    ((8, 96, 56, 56), (96, 1, 3, 3), 96, 1, ("depthwise",) * 3),     # stride 1: any size
])
def test_auto_picks_depthwise_exactly_where_the_rule_says(x_shape, w_shape, groups, stride,
                                                          expected):
    plan = fastconv.conv_plan(x_shape, w_shape, groups=groups, padding=1, stride=stride)
    passes = (plan.forward, plan.backward_data, plan.backward_weight)
    if expected:
        assert passes == expected
    else:
        assert "depthwise" not in passes


def test_thresholds():
    assert plan_module.DEPTHWISE_MIN_GROUPS == 2
    assert plan_module.DEPTHWISE_MAX_MULTIPLIER == 1
    assert plan_module.DEPTHWISE_STRIDED_MAX_INPUT_PIXELS == 32 * 32
    below = fastconv.conv_plan((2, 1, 8, 8), (1, 1, 3, 3), groups=1)
    at = fastconv.conv_plan((2, 2, 8, 8), (2, 1, 3, 3), groups=2)
    assert below.forward != "depthwise" and at.forward == "depthwise"


def test_workspace_threshold(monkeypatch):
    geom = conv_geometry((1, 2, 64, 64), (2, 1, 3, 3), 1, 1, 1, 2, "test")
    need = fastconv._ext.depthwise_workspace_bytes(geom, 4)
    assert 0 < need <= fastconv._ext.DEPTHWISE_MAX_WORKSPACE_BYTES
    plan_module._plan.cache_clear()
    monkeypatch.setattr(fastconv._ext, "DEPTHWISE_MAX_WORKSPACE_BYTES", need)
    assert plan_module.depthwise_pays(geom, np.float32)
    monkeypatch.setattr(fastconv._ext, "DEPTHWISE_MAX_WORKSPACE_BYTES", need - 1)
    assert not plan_module.depthwise_pays(geom, np.float32)
    plan_module._plan.cache_clear()


def test_huge_plane_is_refused_by_the_kernel_and_auto_runs_another_algorithm():
    geom = conv_geometry((1, 2, 4000, 4000), (2, 1, 3, 3), 1, 1, 1, 2, "test")
    assert (fastconv._ext.depthwise_workspace_bytes(geom, 8)
            > fastconv._ext.DEPTHWISE_MAX_WORKSPACE_BYTES)
    plan = fastconv.conv_plan((1, 2, 4000, 4000), (2, 1, 3, 3), groups=2, padding=1,
                              dtype="float64")
    assert plan.forward == "direct"
    x = np.zeros((1, 2, 4000, 4000))
    with pytest.raises(MemoryError, match="depthwise workspace"):
        fastconv.conv2d(x, np.zeros((2, 1, 3, 3)), groups=2, padding=1, algorithm="depthwise")


def test_layer_uses_depthwise_and_matches_direct():
    x, w, b, kw = make((4, 6, 14, 14, 2, 3, 3, 2, 1, 1), np.float32)
    y = fastconv.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(y, fastconv.conv2d(x, w, b, algorithm="direct", **kw),
                               rtol=1e-5, atol=1e-5)
    with thread_count(1):
        y1 = fastconv.conv2d(x, w, b, **kw)
    np.testing.assert_array_equal(y, y1)


# -- the channels-last path: multiplier 1 on planes of at most -----------------------------
# -- DEPTHWISE_CHANNELS_LAST_MAX_PIXELS pixels ----------------------------------------------

# (N, C, H, W, multiplier, R, S, stride, padding, dilation): channel counts that are not a
# multiple of the block (16 float32, 8 float64 lanes), 1x1 to 20x20 planes, strides,
# dilations, padding from 0 to beyond the filter's reach (the data gradient's gather then
# sums the definition's products alone), and filters of more taps than the weight gradient
# holds in registers at once.
SMALL_CASES = [
    (1, 19, 7, 7, 1, 3, 3, 1, 1, 1),
    (3, 33, 7, 7, 1, 3, 3, 1, 1, 1),
    (3, 33, 4, 4, 1, 3, 3, 1, 1, 1),
    (1, 19, 1, 1, 1, 3, 3, 1, 1, 1),
    (3, 17, 1, 1, 1, 1, 1, 1, 0, 1),
    (1, 33, 5, 7, 1, 3, 3, 2, 1, 1),
    (3, 19, 8, 8, 1, 3, 3, 2, 0, 1),
    (1, 19, 7, 7, 1, 3, 3, 1, 2, 2),
    (3, 19, 9, 11, 1, 3, 3, (2, 1), (1, 2), (1, 2)),
    (1, 33, 6, 5, 1, 3, 3, 1, 0, 1),
    (1, 19, 4, 4, 1, 3, 3, 1, 2, 1),
    (3, 19, 4, 3, 1, 3, 3, 1, 3, 1),
    (1, 16, 7, 7, 1, 2, 2, 1, (1, 0, 1, 0), 1),
    (1, 20, 16, 16, 1, 7, 7, 1, 3, 1),
    (3, 24, 3, 17, 1, 5, 5, 1, 2, 1),
    (2, 19, 20, 20, 1, 3, 3, 1, 1, 1),
]


def test_small_cases_take_the_channels_last_path_and_the_others_do_not():
    limit = fastconv._ext.DEPTHWISE_CHANNELS_LAST_MAX_PIXELS
    assert limit == 400
    assert all(H * W <= limit and mult == 1 for _, _, H, W, mult, *_ in SMALL_CASES)
    # CASES keeps the plane-by-plane path in use: larger planes, and multiplier 2
    assert any(H * W > limit and mult == 1 for _, _, H, W, mult, *_ in CASES)
    assert any(mult > 1 for _, _, H, W, mult, *_ in CASES)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SMALL_CASES, ids=str)
def test_channels_last_matches_reference(case, dtype, simd):
    x, w, b, kw = make(case, dtype)
    dy = np.random.default_rng(1).standard_normal(output_shape(x, w, kw)).astype(dtype)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    ref_kw = reference_kwargs(x, w, kw)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    y = fastconv.conv2d(x, w, b, algorithm="depthwise", **kw)
    assert y.dtype == dtype
    assert rel_err(y, reference.conv2d(x64, w64, b64, **ref_kw)) < tol
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, algorithm="depthwise", **kw)
    rx, rw, rb = reference.conv2d_backward(dy64, x64, w64, **ref_kw)
    assert rel_err(gx, rx) < tol
    assert rel_err(gw, rw) < tol
    assert rel_err(gb, rb) < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [(2, 19, 7, 7, 1, 3, 3, 1, 1, 1),
                                  (2, 19, 7, 7, 1, 3, 3, 2, 1, 1),
                                  (2, 19, 7, 7, 1, 3, 3, 1, 2, 2)], ids=str)
def test_channels_last_nan_and_inf_propagate_as_pytorch(case, dtype, simd):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, dtype)
    x[0, 0, 0, 0] = np.nan
    x[1, 1, 4, 4] = np.inf
    x[1, 17, 6, 6] = -np.inf
    w[2, 0, 0, 0] = np.inf          # a filter of the first block
    w[18, 0, 2, 2] = np.nan         # one of the last block, beside finite ones
    dy = np.random.default_rng(1).standard_normal(output_shape(x, w, kw)).astype(dtype)
    dy[0, 3, 0, 0] = np.inf         # at the border: times the padding in grad_w
    dy[1, 5, 2, 2] = -np.inf
    # PyTorch in float64 follows the definition (its float32 3x3 depthwise kernel leaves
    # out the padding's products, 0 x inf among them).
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    g = conv_geometry(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"],
                      kw["groups"], "test")
    yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(b, dtype=torch.float64),
                                    stride=g.stride, padding=g.padding[::2],
                                    dilation=g.dilation, groups=g.groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    y = fastconv.conv2d(x, w, b, algorithm="depthwise", **kw)
    gx, gw, _ = fastconv.conv2d_backward(dy, x, w, algorithm="depthwise", **kw)
    for got, want in ((y, yt.detach().numpy()), (gx, xt.grad.numpy()), (gw, wt.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        assert rel_err(got[finite], want[finite]) < 1e-4


@needs_openmp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [SMALL_CASES[1], SMALL_CASES[6], (9, 40, 4, 4, 1, 3, 3, 1, 1, 1)],
                         ids=str)
def test_channels_last_is_bitwise_repeatable_at_any_thread_count(case, dtype, threads):
    x, w, b, kw = make(case, dtype)
    dy = np.random.default_rng(1).standard_normal(output_shape(x, w, kw)).astype(dtype)
    results = []
    for n in (1, 2, 3, 2):
        set_threads(n)
        results.append((fastconv.conv2d(x, w, b, **kw),)
                       + fastconv.conv2d_backward(dy, x, w, **kw))
    # Each thread owns whole (image, channel block) pairs of y and grad_x and whole channel
    # blocks of grad_weight.
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)
