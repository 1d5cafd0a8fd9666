"""Convolution forward and backward: naive loops, direct, im2col, auto, NumPy, PyTorch."""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._checks import conv_geometry
from fastconv.cli.bench import CONV_SHAPES

from conftest import gflops, random

# The report's layers (name: (N, C, H, W, K, R, stride, padding)) and a depthwise one.
DEPTHWISE = {"depthwise 8x64x56x56 @3x3 p1": (8, 64, 56, 56, 64, 3, 1, 1)}
SHAPES = {**CONV_SHAPES, **DEPTHWISE}
CONTENDERS = ["direct", "im2col", "auto", "numpy", "torch", "naive"]


def make_case(name):
    N, C, H, W, K, R, stride, padding = SHAPES[name]
    groups = C if name in DEPTHWISE else 1
    x = random((N, C, H, W), 1)
    w = random((K, C // groups, R, R), 2)
    b = random((K,), 3)
    geom = conv_geometry(x.shape, w.shape, stride, padding, 1, groups, "bench")
    return x, w, b, dict(stride=stride, padding=padding, groups=groups), geom


def auto_plan(x, w, kw):
    """The algorithms auto runs for each pass of the case (fastconv.conv_plan)."""
    return fastconv.conv_plan(x.shape, w.shape, **kw, dtype=x.dtype)


def numpy_conv(x, w, b, stride, padding, groups):
    """conv2d with NumPy only: sliding_window_view + einsum (groups == 1)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))
    win = win[:, :, ::stride, ::stride]
    return np.einsum("nchwrs,kcrs->nkhw", win, w, optimize=True) + b[:, None, None]


NAIVE_BATCH = 1   # the reference loops run on one image; the time is scaled to the batch


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_forward(benchmark, info, name, contender, request):
    x, w, b, kw, geom = make_case(name)
    benchmark.group = f"conv forward {name}"
    scale = 1
    if contender in ("direct", "im2col", "auto"):
        run = lambda: fastconv.conv2d(x, w, b, algorithm=contender, **kw)  # noqa: E731
    elif contender == "numpy":
        if kw["groups"] != 1:
            pytest.skip("the NumPy einsum baseline has no groups")
        run = lambda: numpy_conv(x, w, b, kw["stride"], kw["padding"], 1)  # noqa: E731
    elif contender == "torch":
        torch = request.getfixturevalue("torch")
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        run = lambda: torch.nn.functional.conv2d(xt, wt, bt, **kw)  # noqa: E731
    else:
        norm = dict(stride=geom.stride, padding=geom.padding, dilation=geom.dilation,
                    groups=geom.groups)
        x1 = x[:NAIVE_BATCH]
        if geom.flops() / geom.N > 2e8:
            pytest.skip("naive loops would take minutes on this layer")
        run = lambda: reference.conv2d(x1, w, b, **norm)  # noqa: E731
        scale = geom.N / NAIVE_BATCH
        info(naive_batch=NAIVE_BATCH, note=f"time is for batch {NAIVE_BATCH}; x{scale:g} for the full batch")
    benchmark(run)
    rate = gflops(geom.flops() / scale, benchmark)
    info(gflops=rate, auto_algorithm=auto_plan(x, w, kw).forward)


@pytest.mark.parametrize("contender", ["direct", "im2col", "auto", "torch"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_backward(benchmark, info, name, contender, request):
    """grad_x + grad_weight + grad_bias."""
    x, w, b, kw, geom = make_case(name)
    dy = random(geom.output_shape, 4)
    benchmark.group = f"conv backward {name}"
    if contender == "torch":
        torch = request.getfixturevalue("torch")
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        bt = torch.from_numpy(b).requires_grad_()
        dyt = torch.from_numpy(dy)
        yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)

        def run():
            xt.grad = wt.grad = bt.grad = None
            torch.autograd.backward(yt, dyt, retain_graph=True)
    else:
        run = lambda: fastconv.conv2d_backward(dy, x, w, algorithm=contender, **kw)  # noqa: E731
    benchmark(run)
    plan = auto_plan(x, w, kw)
    info(gflops=gflops(2 * geom.flops(), benchmark), auto_algorithm=plan.backward_data,
         auto_weight_algorithm=plan.backward_weight)


DEEP_3X3 = [name for name, shape in CONV_SHAPES.items() if shape[5] == 3 and shape[1] >= 64]


@pytest.mark.parametrize("contender", ["direct", "im2col", "winograd", "auto", "torch"])
@pytest.mark.parametrize("name", DEEP_3X3)
def test_conv_weight_gradient(benchmark, info, name, contender, request):
    """grad_weight alone (PyTorch: grad_weight + grad_bias, output_mask [False, True, True])."""
    from fastconv import _ext
    x, w, b, kw, geom = make_case(name)
    dy = random(geom.output_shape, 4)
    benchmark.group = f"conv weight gradient {name}"
    plan = auto_plan(x, w, kw)
    if contender == "torch":
        torch = request.getfixturevalue("torch")
        xt, wt, dyt = (torch.from_numpy(a) for a in (x, w, dy))
        s, p = kw["stride"], kw["padding"]
        run = lambda: torch.ops.aten.convolution_backward(  # noqa: E731
            dyt, xt, wt, [w.shape[0]], [s, s], [p, p], [1, 1], False, [0, 0], 1,
            [False, True, True])
    else:
        data = plan.backward_data
        kernel = plan.backward_weight if contender == "auto" else contender
        dw = np.empty(w.shape, w.dtype)
        run = lambda: _ext.conv_backward(dy, x, w, None, dw, None, geom, data, kernel)  # noqa: E731
    benchmark(run)
    info(gflops=gflops(geom.flops(), benchmark),
         auto_weight_algorithm=plan.backward_weight)
