"""Bad input raises ValueError/TypeError naming the argument, never crashes."""
import numpy as np
import pytest

import fastconv

X = np.zeros((2, 4, 8, 8))
W = np.zeros((6, 4, 3, 3))


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(weight=np.zeros((6, 4, 9, 9))), ValueError, ["kernel", "larger", "padded input"]),
    (dict(weight=np.zeros((6, 3, 3, 3))), ValueError, ["weight", "(6, 4, 3, 3)"]),
    (dict(groups=3), ValueError, ["groups=3", "4 channels"]),
    (dict(weight=np.zeros((5, 2, 3, 3)), groups=2), ValueError, ["groups=2", "filters"]),
    (dict(stride=0), ValueError, ["stride", ">= 1"]),
    (dict(stride=(1, -2)), ValueError, ["stride"]),
    (dict(dilation=0), ValueError, ["dilation", ">= 1"]),
    (dict(padding=-1), ValueError, ["padding", ">= 0"]),
    (dict(padding="full"), ValueError, ["padding", "'full'"]),
    (dict(padding=(1, 2, 3)), ValueError, ["padding", "tuple of 2"]),
    (dict(stride=(1, 1, 1)), ValueError, ["stride", "tuple of 2"]),
    (dict(stride=1.5), TypeError, ["stride"]),
    (dict(padding="same", stride=2), ValueError, ["same", "strided"]),
    (dict(algorithm="fft"), ValueError, ["algorithm", "'fft'"]),
    (dict(x=np.zeros((4, 8, 8))), ValueError, ["x", "4-D", "(4, 8, 8)"]),
    (dict(weight=np.zeros((6, 4, 3))), ValueError, ["weight", "4-D"]),
    (dict(bias=np.zeros(5)), ValueError, ["bias", "(6,)", "(5,)"]),
    (dict(bias=np.zeros((6, 1))), ValueError, ["bias", "1-D"]),
    (dict(x=X.astype(complex)), TypeError, ["x", "complex"]),
    (dict(weight=np.array([[[["a"]]]])), TypeError, ["weight", "dtype"]),
    (dict(x=np.zeros((1, 4, 8, 8), dtype=object)), TypeError, ["x", "object"]),
])
def test_conv2d_bad_input(kwargs, exc, words):
    args = dict(x=X, weight=W)
    args.update(kwargs)
    with pytest.raises(exc) as info:
        fastconv.conv2d(**args)
    message = str(info.value)
    assert message.startswith("conv2d")
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("kwargs", [dict(stride=True), dict(stride=1.0), dict(padding=True),
                                    dict(padding=(1.0, 1)), dict(dilation=np.float64(1)),
                                    dict(groups=True)])
def test_values_equal_to_valid_ones_are_refused_after_those_ran(kwargs):
    """conv2d keeps the geometry of arguments it has checked; an argument equal to one of
    them in a dict (True == 1 == 1.0) but refused by the checks is still refused."""
    name, bad = next(iter(kwargs.items()))
    good = {"padding": 1} if name == "padding" else {name: 1}
    fastconv.conv2d(X, W, **good)
    with pytest.raises(TypeError, match=f"conv2d: {name}"):
        fastconv.conv2d(X, W, **{name: bad})


def test_kept_geometries_equal_checked_ones():
    from fastconv import _checks
    args = ((2, 4, 8, 8), (6, 2, 3, 3), [1, 2], (1, 0, 2, 1), 1, 2)
    first = _checks.conv_geometry(*args, "conv2d")
    assert _checks.conv_geometry(*args, "conv2d") is first
    assert first == _checks._checked_geometry(*args, "conv2d")
    assert _checks.conv_geometry(*args[:2], (1, 2), *args[3:], "conv2d") == first


def test_backward_rejects_grad_out_of_wrong_shape():
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 6, 6, 6\).*\(2, 6, 5, 6\)"):
        fastconv.conv2d_backward(np.zeros((2, 6, 5, 6)), X, W)


def test_backward_rejects_bad_dtype():
    with pytest.raises(TypeError, match="grad_out"):
        fastconv.conv2d_backward(np.zeros((2, 6, 6, 6), dtype=complex), X, W)


def test_output_too_large_to_allocate_raises():
    x = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(2**20, 2**10, 8, 8),
                                        strides=(0, 0, 0, 0))
    w = np.zeros((2**20, 2**10, 1, 1))
    with pytest.raises((MemoryError, ValueError)):
        fastconv.conv2d(x, w)


def test_set_num_threads_rejects_non_positive():
    with pytest.raises(ValueError, match="n must be from 1 to"):
        fastconv.set_num_threads(0)
    with pytest.raises(TypeError):
        fastconv.set_num_threads(2.0)


def test_set_simd_rejects_unknown_path():
    with pytest.raises(ValueError, match="set_simd"):
        fastconv.set_simd("sse9")


def test_sizing_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        fastconv.conv_output_size(6, 3, stride=0)
    with pytest.raises(TypeError, match="kernel_size"):
        fastconv.conv_output_size(6, 2.5)
