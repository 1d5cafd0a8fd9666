"""conv2d and conv2d_backward against the reference loops and PyTorch, both algorithms."""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._checks import conv_geometry

from conftest import rel_err, threads_in_effect

ALGORITHMS = ["direct", "im2col"]


def random_case(rng):
    """A random, valid conv2d configuration (kwargs for conv2d) and its arrays."""
    kind = rng.integers(6)
    groups = 1
    if kind == 1:
        groups = int(rng.integers(2, 4))
    N = int(rng.integers(1, 4))
    C = groups * int(rng.integers(1, 4))
    K = groups * int(rng.integers(1, 4))
    if kind == 2:                       # depthwise
        C = int(rng.integers(1, 5))
        groups = C
        K = C * int(rng.integers(1, 3))
    R, S = (int(v) for v in rng.integers(1, 5, 2))
    if kind == 3:
        R = S = 1
    H = int(rng.integers(R, R + 8))
    W = int(rng.integers(S, S + 8))
    if kind == 4:                       # kernel as large as the input
        H, W = R, S
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    choice = rng.integers(4)
    if choice == 0:
        padding = int(rng.integers(0, 3))
    elif choice == 1:
        padding = tuple(int(v) for v in rng.integers(0, 3, 4))      # asymmetric
    elif choice == 2:
        padding, stride = "same", (1, 1)
    else:
        padding = tuple(int(v) for v in rng.integers(0, 3, 2))
    if kind == 4:
        dilation = (1, 1)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    try:
        conv_geometry((N, C, H, W), (K, C // groups, R, S), stride, padding, dilation, groups, "t")
    except ValueError:
        return random_case(rng)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // groups, R, S))
    b = rng.standard_normal(K)
    return x, w, b, kwargs


def normalized(x, w, kwargs):
    g = conv_geometry(x.shape, w.shape, kwargs["stride"], kwargs["padding"],
                      kwargs["dilation"], kwargs["groups"], "t")
    return dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)


CASES = [random_case(np.random.default_rng(seed)) for seed in range(220)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_reference_float64(case, simd):
    x, w, b, kwargs = CASES[case]
    norm = normalized(x, w, kwargs)
    y_ref = reference.conv2d(x, w, b, **norm)
    dy = np.random.default_rng(case).standard_normal(y_ref.shape)
    dx_ref, dw_ref, db_ref = reference.conv2d_backward(dy, x, w, **norm)
    for algorithm in ALGORITHMS:
        y = fastconv.conv2d(x, w, b, algorithm=algorithm, **kwargs)
        assert y.dtype == np.float64
        assert rel_err(y, y_ref) < 1e-12, algorithm
        dx, dw, db = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm, **kwargs)
        assert rel_err(dx, dx_ref) < 1e-12, algorithm
        assert rel_err(dw, dw_ref) < 1e-12, algorithm
        assert rel_err(db, db_ref) < 1e-12, algorithm


def torch_conv(x, w, b, dy, kwargs):
    """PyTorch's forward and three gradients; explicit padding applied with F.pad so that
    asymmetric padding is covered too."""
    import torch
    F = torch.nn.functional
    norm = normalized(x, w, kwargs)
    top, bottom, left, right = norm["padding"]
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    y = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, norm["stride"], 0,
                 norm["dilation"], norm["groups"])
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-10)])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_matches_pytorch(dtype, tol, algorithm):
    pytest.importorskip("torch")
    for x, w, b, kwargs in CASES:
        x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
        y = fastconv.conv2d(x, w, b, algorithm=algorithm, **kwargs)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        dx, dw, db = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm, **kwargs)
        expected = torch_conv(x, w, b, dy, kwargs)
        for got, want in zip((y, dx, dw, db), expected):
            assert got.dtype == dtype
            assert rel_err(got, want) < tol, kwargs


# PyTorch notes that it pads a copy of the input for an even kernel: its concern, not ours
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_matches_pytorch_same_padding_even_kernel():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 4, 2))
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same",
                                      dilation=(1, 2)).numpy()
    for algorithm in ALGORITHMS:
        got = fastconv.conv2d(x, w, padding="same", dilation=(1, 2), algorithm=algorithm)
        assert rel_err(got, want) < 1e-12


def test_larger_layers_match_pytorch_float32():
    """Shapes large enough to exercise the GEMM's blocking and both thread splits."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for (N, C, H, K, R, pad) in [(2, 64, 20, 70, 3, 1), (1, 40, 17, 33, 5, 2), (8, 6, 14, 16, 5, 0)]:
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = rng.standard_normal((K, C, R, R)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        dy = rng.standard_normal((N, K, H + 2 * pad - R + 1, H + 2 * pad - R + 1)).astype(np.float32)
        expected = torch_conv(x, w, b, dy, dict(stride=1, padding=pad, dilation=1, groups=1))
        for algorithm in ALGORITHMS:
            y = fastconv.conv2d(x, w, b, padding=pad, algorithm=algorithm)
            grads = fastconv.conv2d_backward(dy, x, w, padding=pad, algorithm=algorithm)
            for got, want in zip((y,) + grads, expected):
                assert rel_err(got, want) < 1e-4


def test_finite_difference_gradients_float64():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2)
    dy = rng.standard_normal(fastconv.conv2d(x, w, b, **kw).shape)

    def loss(x_, w_, b_):
        return np.sum(fastconv.conv2d(x_, w_, b_, **kw) * dy)

    for algorithm in ALGORITHMS:
        dx, dw, db = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm, **kw)
        eps = 1e-6
        for arr, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
            for idx in list(np.ndindex(arr.shape))[::3]:
                args = [x.copy(), w.copy(), b.copy()]
                args[which][idx] += eps
                up = loss(*args)
                args[which][idx] -= 2 * eps
                down = loss(*args)
                numeric = (up - down) / (2 * eps)
                assert abs(numeric - grad[idx]) < 1e-6 * max(1, abs(numeric)), (which, idx)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_adjoint_identity(algorithm):
    """<conv(x, w), g> = <x, grad_x(g)> = <w, grad_w(g)>: backward is the exact transpose."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 6, 11, 9))
    w = rng.standard_normal((8, 3, 3, 4))
    kw = dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2)
    y = fastconv.conv2d(x, w, algorithm=algorithm, **kw)
    g = rng.standard_normal(y.shape)
    dx, dw, _ = fastconv.conv2d_backward(g, x, w, algorithm=algorithm, **kw)
    lhs = np.sum(y * g)
    assert abs(lhs - np.sum(x * dx)) < 1e-10 * abs(lhs)
    assert abs(lhs - np.sum(w * dw)) < 1e-10 * abs(lhs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_and_im2col_agree(dtype, simd):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 16, 15, 13)).astype(dtype)
    w = rng.standard_normal((24, 8, 3, 3)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    kw = dict(stride=1, padding=1, groups=2)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    y1 = fastconv.conv2d(x, w, b, algorithm="direct", **kw)
    y2 = fastconv.conv2d(x, w, b, algorithm="im2col", **kw)
    assert rel_err(y1, y2) < tol
    for g1, g2 in zip(fastconv.conv2d_backward(y1, x, w, algorithm="direct", **kw),
                      fastconv.conv2d_backward(y1, x, w, algorithm="im2col", **kw)):
        assert rel_err(g1, g2) < tol


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("plane, batch", [((4, 4), 37), ((8, 8), 5), ((11, 11), 3)])
def test_pointwise_im2col_on_small_planes_equals_one_image_at_a_time(dtype, tol, plane, batch,
                                                                     simd, threads):
    """On small planes a pointwise filter's passes multiply several images' columns at
    once (the last block ragged). Each image's output and input gradient have the bits of
    that image alone, with and without a bias, on one and two threads; the weight
    gradient, summed over the blocks, equals the sum of the images' alone within rounding;
    all three equal the float64 reference."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((batch, 24, *plane)).astype(dtype)
    w = rng.standard_normal((40, 24, 1, 1)).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    dy = rng.standard_normal((batch, 40, *plane)).astype(dtype)
    wide = [a.astype(np.float64) for a in (x, w, b, dy)]
    want = (reference.conv2d(*wide[:3]),) + reference.conv2d_backward(wide[3], *wide[:2])
    for n in (1, 2):
        threads(n)
        for bias in (b, None):
            y = fastconv.conv2d(x, w, bias, algorithm="im2col")
            alone = [fastconv.conv2d(x[i:i + 1], w, bias, algorithm="im2col")
                     for i in range(batch)]
            assert np.array_equal(y, np.concatenate(alone))
        dx, dw, _ = fastconv.conv2d_backward(dy, x, w, algorithm="im2col")
        alone = [fastconv.conv2d_backward(dy[i:i + 1], x[i:i + 1], w, algorithm="im2col")
                 for i in range(batch)]
        assert np.array_equal(dx, np.concatenate([grads[0] for grads in alone]))
        assert rel_err(dw, sum(grads[1].astype(np.float64) for grads in alone)) < tol
        got = (fastconv.conv2d(x, w, b, algorithm="im2col"), dx, dw)
        for value, expected in zip(got, want):
            assert rel_err(value, expected) < tol


def test_generic_and_avx2_paths_agree():
    if not fastconv._ext.cpu_has_avx2_fma():
        pytest.skip("this CPU has no AVX2/FMA")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 20, 12, 12)).astype(np.float32)
    w = rng.standard_normal((30, 20, 3, 3)).astype(np.float32)
    results = {}
    try:
        for path in ("generic", "avx2"):
            fastconv.set_simd(path)
            assert fastconv.get_simd() == ("generic" if path == "generic" else "avx2+fma")
            y = fastconv.conv2d(x, w, padding=1, algorithm="im2col")
            results[path] = (y,) + fastconv.conv2d_backward(y, x, w, padding=1, algorithm="im2col")
    finally:
        fastconv.set_simd("auto")
    for a, b in zip(results["generic"], results["avx2"]):
        assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_repeated_runs_are_bitwise_identical(algorithm):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 8, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 16, 12, 12)).astype(np.float32)
    first = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm)
    for _ in range(5):
        again = fastconv.conv2d_backward(dy, x, w, algorithm=algorithm)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)


def test_thread_counts_agree(threads):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 6, 13, 13))
    w = rng.standard_normal((9, 6, 3, 3))
    dy = rng.standard_normal((5, 9, 11, 11))
    results = []
    for n in (1, 2, 3, 4):
        threads(n)
        assert fastconv.get_num_threads() == threads_in_effect(n)
        for algorithm in ALGORITHMS:
            results.append((fastconv.conv2d(x, w, algorithm=algorithm),)
                           + fastconv.conv2d_backward(dy, x, w, algorithm=algorithm))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert rel_err(a, b) < 1e-12


def test_threadpoolctl_limits_fastconv():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastconv._ext.have_openmp():
        pytest.skip("built without OpenMP")
    before = fastconv.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
    assert fastconv.get_num_threads() == before


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_non_contiguous_inputs_equal_contiguous(algorithm):
    rng = np.random.default_rng(11)
    x_big = rng.standard_normal((4, 6, 20, 18))
    w_big = rng.standard_normal((10, 6, 3, 7))
    x = x_big[::2, ::-2, 3:17:2, ::-1]             # negative and non-unit strides
    w = np.asfortranarray(w_big[:, ::2, :, ::2])
    b = rng.standard_normal(20)[::2]
    y = fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm)
    want = fastconv.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w),
                           np.ascontiguousarray(b), padding=1, algorithm=algorithm)
    assert np.array_equal(y, want)
    dy = rng.standard_normal(y.shape + (2,))[..., 0]
    got = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm=algorithm)
    want = fastconv.conv2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(x),
                                    np.ascontiguousarray(w), padding=1, algorithm=algorithm)
    for a, b_ in zip(got, want):
        assert np.array_equal(a, b_)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_inputs_are_not_modified(algorithm):
    rng = np.random.default_rng(12)
    arrays = [rng.standard_normal((2, 4, 9, 9)).astype(np.float32),
              rng.standard_normal((5, 4, 3, 3)).astype(np.float32),
              rng.standard_normal(5).astype(np.float32)]
    copies = [a.copy() for a in arrays]
    y = fastconv.conv2d(*arrays, padding=1, algorithm=algorithm, flip=True)
    dy = np.ones_like(y)
    dy_copy = dy.copy()
    fastconv.conv2d_backward(dy, arrays[0], arrays[1], padding=1, algorithm=algorithm, flip=True)
    for a, c in zip(arrays + [dy], copies + [dy_copy]):
        assert np.array_equal(a, c)


def test_flip_backward_matches_convolution_with_flipped_weight():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 2))
    dy = rng.standard_normal((2, 4, 6, 7))
    got = fastconv.conv2d_backward(dy, x, w, flip=True)
    dx, dw, db = fastconv.conv2d_backward(dy, x, w[:, :, ::-1, ::-1])
    assert rel_err(got[0], dx) < 1e-14
    assert rel_err(got[1], dw[:, :, ::-1, ::-1]) < 1e-14


@pytest.mark.parametrize("x_dtype, w_dtype, expected", [
    (np.float32, np.float32, np.float32),
    (np.float64, np.float64, np.float64),
    (np.float32, np.float64, np.float64),
    (np.int32, np.int64, np.float64),
    (np.uint8, np.float32, np.float64),
    (np.bool_, np.float32, np.float64),
])
def test_result_dtype(x_dtype, w_dtype, expected):
    x = np.ones((1, 2, 5, 5), dtype=x_dtype)
    w = np.ones((3, 2, 3, 3), dtype=w_dtype)
    y = fastconv.conv2d(x, w)
    assert y.dtype == expected
    np.testing.assert_array_equal(y, 18)
    assert all(g.dtype == expected for g in fastconv.conv2d_backward(y, x, w))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_and_inf_propagate(algorithm):
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 4, 4] = np.inf
    y = fastconv.conv2d(x, np.ones((1, 1, 3, 3)), algorithm=algorithm)[0, 0]
    assert np.isnan(y[0, 0]) and np.isinf(y[2, 2])
    assert np.isfinite(y[0, 2]) and np.isfinite(y[2, 0])


def test_empty_batch_returns_empty_result():
    y = fastconv.conv2d(np.zeros((0, 3, 8, 8)), np.zeros((4, 3, 3, 3)), np.ones(4))
    assert y.shape == (0, 4, 6, 6)
    gx, gw, gb = fastconv.conv2d_backward(y, np.zeros((0, 3, 8, 8)), np.zeros((4, 3, 3, 3)))
    assert gx.shape == (0, 3, 8, 8) and np.all(gw == 0) and np.all(gb == 0)


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_backward_without_input_grad_gives_the_same_weight_and_bias_gradients(algorithm):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 9, 8))
    w = rng.standard_normal((6, 4, 3, 3))
    dy = rng.standard_normal((3, 6, 5, 4))             # (9 + 2 - 3) // 2 + 1 = 5 rows
    full = fastconv.conv2d_backward(dy, x, w, stride=2, padding=1, algorithm=algorithm)
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, stride=2, padding=1, algorithm=algorithm,
                                          input_grad=False)
    assert gx is None
    np.testing.assert_array_equal(gw, full[1])
    np.testing.assert_array_equal(gb, full[2])
    gx, gw, _ = fastconv.conv2d_backward(dy[:0], x[:0], w, stride=2, padding=1,
                                         input_grad=False)
    assert gx is None and np.all(gw == 0)
    with pytest.raises(TypeError, match="input_grad must be a bool"):
        fastconv.conv2d_backward(dy, x, w, stride=2, padding=1, input_grad="no")


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "winograd"])
def test_backward_without_bias_grad_gives_the_same_input_and_weight_gradients(algorithm):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 4, 3, 3))
    dy = rng.standard_normal((2, 6, 9, 8))
    full = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm=algorithm)
    gx, gw, gb = fastconv.conv2d_backward(dy, x, w, padding=1, algorithm=algorithm,
                                          bias_grad=False)
    assert gb is None
    np.testing.assert_array_equal(gx, full[0])
    np.testing.assert_array_equal(gw, full[1])
    assert fastconv.conv2d_backward(dy[:0], x[:0], w, padding=1, bias_grad=False)[2] is None
    with pytest.raises(ValueError, match=r"out\[2\] \(grad_bias\) must be None when "
                                         r"bias_grad is False"):
        fastconv.conv2d_backward(dy, x, w, padding=1, bias_grad=False,
                                 out=(None, None, np.empty(6)))
    with pytest.raises(TypeError, match="bias_grad must be a bool"):
        fastconv.conv2d_backward(dy, x, w, padding=1, bias_grad="no")


# One problem per kernel path the fused ReLU touches: (x shape, weight shape, stride,
# padding, groups, algorithms). Direct by pixels and by filters, im2col banded, pointwise
# one image and pointwise blocks of images, Winograd (shuffled float stores, scalar double
# ones), depthwise channels-last and plane by plane (stride 2, a channel multiplier).
FUSED_RELU_CASES = [
    ((2, 3, 13, 11), (5, 3, 3, 3), 1, 1, 1, ("direct", "im2col")),
    ((2, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1, ("direct", "im2col", "winograd")),
    ((2, 16, 14, 13), (24, 16, 3, 3), 1, 1, 1, ("winograd",)),
    ((1, 24, 9, 9), (40, 24, 1, 1), 1, 0, 1, ("im2col", "direct")),
    ((7, 24, 4, 4), (40, 24, 1, 1), 1, 0, 1, ("im2col", "direct")),
    ((3, 8, 9, 9), (16, 4, 3, 3), 2, 1, 2, ("direct", "im2col")),
    ((3, 40, 9, 9), (40, 1, 3, 3), 1, 1, 40, ("depthwise",)),
    ((3, 6, 10, 10), (12, 1, 3, 3), 2, 1, 6, ("depthwise",)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", FUSED_RELU_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_fused_relu_equals_the_convolution_then_relu_bitwise(case, dtype, simd):
    """conv_forward(relu=True): the kernel's outputs through fc_relu as it writes them, the
    same bits as the convolution followed by the ReLU pass, NaN and inf included."""
    xs, ws, stride, padding, groups, algorithms = case
    rng = np.random.default_rng(12)
    x = rng.standard_normal(xs).astype(dtype)
    x[0, 0, 1, 1], x[-1, -1, 2, 3] = np.nan, np.inf     # NaN and inf outputs around them
    w = rng.standard_normal(ws).astype(dtype)
    geom = conv_geometry(xs, ws, stride, padding, 1, groups, "t")
    for algorithm in algorithms:
        for bias in (rng.standard_normal(ws[0]).astype(dtype), None):
            plain = np.empty(geom.output_shape, dtype)
            fastconv._ext.conv_forward(plain, x, w, bias, geom, algorithm)
            expected = np.where(plain < 0, dtype(0), plain)
            fused = np.full(geom.output_shape, 7, dtype)
            fastconv._ext.conv_forward(fused, x, w, bias, geom, algorithm, True)
            assert np.isnan(expected).any() and (expected == 0).any() and (expected > 0).any()
            np.testing.assert_array_equal(fused, expected, err_msg=algorithm)
