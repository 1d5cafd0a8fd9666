"""fastconv.reference has the fast API's names and argument forms: the same call works on
both (and fails on both, with the same words), and their results agree."""
import numpy as np
import pytest

import fastconv
from fastconv import reference


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


CONV_CALLS = [
    dict(),
    dict(padding=1),
    dict(padding=(1, 2)),
    dict(padding=(0, 1, 2, 0)),
    dict(padding="same"),
    dict(padding="valid"),
    dict(stride=2, padding=1),
    dict(stride=(1, 2)),
    dict(dilation=2, padding="same"),
    dict(groups=2),
]


@pytest.mark.parametrize("kwargs", CONV_CALLS, ids=str)
def test_conv2d_and_its_backward_take_the_fast_api_arguments(kwargs):
    x, w, b = rand(2, 4, 7, 6), rand(6, 4 // kwargs.get("groups", 1), 3, 3, seed=1), rand(6)
    copies = [a.copy() for a in (x, w, b)]
    y = reference.conv2d(x, w, b, **kwargs)
    np.testing.assert_allclose(y, fastconv.conv2d(x, w, b, **kwargs), rtol=1e-9, atol=1e-12)
    dy = rand(*y.shape, seed=2)
    for got, want in zip(reference.conv2d_backward(dy, x, w, **kwargs),
                         fastconv.conv2d_backward(dy, x, w, **kwargs)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for a, copy in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, copy)


def test_conv2d_keyword_names_are_the_fast_ones():
    x, w = rand(1, 1, 5, 5), rand(2, 1, 3, 3)
    np.testing.assert_allclose(
        reference.conv2d(x=x, weight=w, bias=None, stride=1, padding=1, dilation=1, groups=1),
        fastconv.conv2d(x=x, weight=w, padding=1), rtol=1e-9)
    reference.conv2d_backward(grad_out=np.ones((1, 2, 5, 5)), x=x, weight=w, padding=1)


POOL_CALLS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
]


@pytest.mark.parametrize("kwargs", POOL_CALLS, ids=str)
def test_max_pooling_takes_the_fast_api_arguments(kwargs):
    x = rand(2, 3, 7, 6)
    y, indices = reference.max_pool2d(x, return_indices=True, **kwargs)
    fast_y, fast_indices = fastconv.max_pool2d(x, return_indices=True, **kwargs)
    np.testing.assert_array_equal(y, fast_y)
    np.testing.assert_array_equal(indices, fast_indices)
    np.testing.assert_array_equal(reference.max_pool2d(x, **kwargs), fast_y)
    dy = rand(*y.shape, seed=1)
    np.testing.assert_allclose(reference.max_pool2d_backward(dy, x, **kwargs),
                               fastconv.max_pool2d_backward(dy, x, **kwargs), rtol=1e-12)


@pytest.mark.parametrize("kwargs", POOL_CALLS + [dict(kernel_size=3, padding=1,
                                                      count_include_pad=False),
                                                 dict(kernel_size=2, divisor_override=3)],
                         ids=str)
def test_average_pooling_takes_the_fast_api_arguments(kwargs):
    x = rand(2, 3, 7, 6)
    y = reference.avg_pool2d(x, **kwargs)
    np.testing.assert_allclose(y, fastconv.avg_pool2d(x, **kwargs), rtol=1e-12)
    dy = rand(*y.shape, seed=1)
    np.testing.assert_allclose(reference.avg_pool2d_backward(dy, x, **kwargs),
                               fastconv.avg_pool2d_backward(dy, x, **kwargs), rtol=1e-12)


def test_adaptive_pooling_takes_the_fast_api_arguments():
    x = rand(1, 2, 7, 5)
    y = reference.adaptive_avg_pool2d(x, (3, None))
    np.testing.assert_allclose(y, fastconv.adaptive_avg_pool2d(x, (3, None)), rtol=1e-12)
    dy = rand(*y.shape, seed=1)
    np.testing.assert_allclose(reference.adaptive_avg_pool2d_backward(dy, x, (3, None)),
                               fastconv.adaptive_avg_pool2d_backward(dy, x, (3, None)),
                               rtol=1e-12)


@pytest.mark.parametrize("call, error, words", [
    (lambda f: f.conv2d(rand(1, 1, 5, 5), rand(1, 1, 3, 3), padding="full"), ValueError,
     "padding must be an int, a tuple, 'valid' or 'same', got 'full'"),
    (lambda f: f.conv2d(rand(1, 1, 5, 5), rand(1, 1, 3, 3), stride=0), ValueError,
     "stride must be >= 1"),
    (lambda f: f.conv2d(rand(1, 2, 5, 5), rand(1, 1, 3, 3)), ValueError,
     "expected weight of shape"),
    (lambda f: f.conv2d(rand(1, 5, 5), rand(1, 1, 3, 3)), ValueError,
     "expected x to be a 4-D array"),
    (lambda f: f.max_pool2d(rand(1, 1, 5, 5), 2, padding=2), ValueError,
     "padding must be at most half the kernel size"),
    (lambda f: f.avg_pool2d(rand(1, 1, 1, 1), 3), ValueError,
     "is larger than the padded input"),
])
def test_a_bad_call_fails_in_the_reference_as_in_the_fast_api(call, error, words):
    with pytest.raises(error, match=words) as fast:
        call(fastconv)
    with pytest.raises(error, match=words) as slow:
        call(reference)
    assert str(slow.value) == "reference." + str(fast.value)


def test_one_name_per_operation():
    for name in ("conv2d_forward", "max_pool2d_forward", "avg_pool2d_forward",
                 "adaptive_avg_pool2d_forward"):
        assert not hasattr(reference, name)
    for name in reference.__all__:
        assert name in ("pad_image",) or hasattr(fastconv, name) or hasattr(fastconv.filters,
                                                                             name), name
