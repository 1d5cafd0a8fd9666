"""The lecture's worked examples of convolution, padding, stride and volumes, exactly
(integers in, integers out)."""
import numpy as np
import pytest

import fastconv

from conftest import LECTURE_IMAGE as IMAGE, LECTURE_VERTICAL_EDGES

VERTICAL = np.array([[1, 0, -1]] * 3)
HORIZONTAL = np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]])


def conv_single(image, kernel, **kw):
    return fastconv.conv2d(image[None, None], kernel[None, None], **kw)[0, 0]


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
def test_lecture_6x6_vertical_edge_example(algorithm):
    out = conv_single(IMAGE, VERTICAL, algorithm=algorithm)
    np.testing.assert_array_equal(out, LECTURE_VERTICAL_EDGES)


def test_bright_left_half_gives_positive_edge_in_the_middle():
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    np.testing.assert_array_equal(conv_single(image, VERTICAL), [[0, 30, 30, 0]] * 4)


def test_mirrored_image_gives_dark_edge():
    image = np.array([[0, 0, 0, 10, 10, 10]] * 6)
    np.testing.assert_array_equal(conv_single(image, VERTICAL), [[0, -30, -30, 0]] * 4)


def test_horizontal_filter_on_checker_blocks():
    image = np.zeros((6, 6), dtype=int)
    image[:3, :3] = 10
    image[3:, 3:] = 10
    np.testing.assert_array_equal(conv_single(image, HORIZONTAL), [[0, 0, 0, 0],
                                                                   [30, 10, -10, -30],
                                                                   [30, 10, -10, -30],
                                                                   [0, 0, 0, 0]])


def test_true_convolution_flips_the_filter():
    flipped = conv_single(IMAGE, VERTICAL, flip=True)
    np.testing.assert_array_equal(flipped, -conv_single(IMAGE, VERTICAL))
    np.testing.assert_array_equal(flipped, conv_single(IMAGE, VERTICAL[::-1, ::-1]))


@pytest.mark.parametrize("n, f, p, s, expected", [
    (6, 3, 0, 1, 4), (6, 3, 1, 1, 6), (7, 3, 0, 2, 3),
    (39, 3, 0, 1, 37), (37, 5, 0, 2, 17), (17, 5, 0, 2, 7),
])
def test_output_size_examples(n, f, p, s, expected):
    assert fastconv.conv_output_size(n, f, stride=s, padding=p) == expected
    x = np.zeros((1, 1, n, n))
    w = np.zeros((1, 1, f, f))
    assert fastconv.conv2d(x, w, stride=s, padding=p).shape == (1, 1, expected, expected)


def test_same_padding_keeps_6x6():
    assert conv_single(IMAGE, VERTICAL, padding="same").shape == (6, 6)


@pytest.mark.parametrize("filters", [1, 2])
def test_volume_7x7x3_with_3x3x3_filters(filters):
    x = np.ones((1, 3, 7, 7))
    w = np.ones((filters, 3, 3, 3))
    y = fastconv.conv2d(x, w)
    assert y.shape == (1, filters, 5, 5)   # output depth = number of filters
    np.testing.assert_array_equal(y, 27.0)


def test_small_convnet_shapes():
    x = np.zeros((1, 3, 39, 39), dtype=np.float32)
    layers = [(10, 3, 1), (20, 5, 2), (40, 5, 2)]
    shapes = []
    for filters, f, s in layers:
        w = np.zeros((filters, x.shape[1], f, f), dtype=np.float32)
        x = np.maximum(fastconv.conv2d(x, w, stride=s), 0)
        shapes.append(x.shape[1:])
    assert shapes == [(10, 37, 37), (20, 17, 17), (40, 7, 7)]
    assert x.size == 1960


def test_parameter_counts():
    assert fastconv.conv_params(3, 3, 10) == 280
    assert fastconv.conv_params(5, 3, 6) == 456
    assert fastconv.dense_params(32 * 32 * 3, 28 * 28 * 6) == 14_455_392   # 14,450,688 + 4,704
    assert fastconv.dense_params(64 * 64 * 3, 1000) == 12_289_000
    assert fastconv.dense_params(1000 * 1000 * 3, 1000, bias=False) == 3_000_000_000
    assert fastconv.conv_params(5, 1, 6) == 156
    assert fastconv.conv_params(5, 6, 16) == 2416
