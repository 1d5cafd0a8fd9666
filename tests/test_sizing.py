"""Sizes and parameter costs: every number of the lecture (dense vs conv costs, output
sizes, volumes, LeNet-5), computed by fastconv and compared exactly."""
import io

import numpy as np
import pytest

import fastconv
from fastconv import compare_conv_dense, conv_output_size, conv_params, dense_params
from fastconv.cli.explain import convnet_layers, explain, lenet5_layers
from fastconv.nn.layers import Flatten


@pytest.mark.parametrize("n, f, p, s, expected", [
    (6, 3, 0, 1, 4), (6, 3, 1, 1, 6), (7, 3, 0, 2, 3), (39, 3, 0, 1, 37), (37, 5, 0, 2, 17),
    (17, 5, 0, 2, 7),
])
def test_lecture_output_sizes(n, f, p, s, expected):
    assert conv_output_size(n, f, stride=s, padding=p) == expected


def test_dense_layer_on_a_64x64_rgb_image_needs_12_million_weights():
    assert Flatten().output_shape((1, 3, 64, 64)) == (1, 12_288)
    assert dense_params(12_288, 1000, bias=False) == 12_288_000
    assert dense_params(12_288, 1000) == 12_289_000
    text = io.StringIO()
    explain(["costs"], file=text)
    assert ("64x64x3 image = 12,288 inputs; a dense layer of 1,000 units has 12,288,000 "
            "weights (+1,000 biases)") in text.getvalue()


def test_dense_layer_on_a_megapixel_rgb_image_needs_3_billion_weights():
    assert Flatten().output_shape((1, 3, 1000, 1000)) == (1, 3_000_000)
    assert dense_params(3_000_000, 1000, bias=False) == 3_000_000_000
    text = io.StringIO()
    explain(["costs"], file=text)
    assert ("1000x1000x3 image = 3,000,000 inputs -> 3,000,000,000 weights (3 billion)"
            in text.getvalue())


def test_conv_parameters_do_not_depend_on_the_image_size():
    assert conv_params(3, 3, 10) == 280
    assert conv_params(3, 3, 10, bias=False) == 270
    small = compare_conv_dense((8, 8, 3), 10, 3)
    large = compare_conv_dense((1000, 1000, 3), 10, 3)
    assert small.conv.parameters == large.conv.parameters == 280


def test_conv_vs_dense_for_32x32x3_to_28x28x6():
    c = compare_conv_dense((32, 32, 3), 6, 5)
    assert c.output_shape == (28, 28, 6)
    assert (c.conv.parameters, c.conv.weights, c.conv.biases) == (456, 450, 6)
    assert c.dense.weights == 14_450_688             # 3,072 inputs x 4,704 outputs
    assert c.dense.biases == 4_704
    assert c.dense.parameters == 14_455_392
    assert c.conv.mult_adds == 352_800                # 28x28x6 outputs x 5x5x3 taps
    assert c.dense.mult_adds == 14_450_688
    assert c.conv.weight_bytes == 1_824               # float32: 4 bytes per parameter
    assert c.dense.weight_bytes == 57_821_568
    assert c.parameter_ratio == pytest.approx(14_455_392 / 456)
    assert c.mult_add_ratio == pytest.approx(14_450_688 / 352_800)
    assert c.rows()[0] == ("conv", 456, 450, 6, 352_800, 1_824)


def test_conv_vs_dense_table_text():
    text = str(compare_conv_dense((32, 32, 3), 6, 5))
    for expected in ["32x32x3 -> 28x28x6", "456 = 450 + 6", "14,455,392 = 14,450,688 + 4,704",
                     "352,800", "1.8 KiB", "55.1 MiB", "31,700x"]:
        assert expected in text, expected


def test_conv_vs_dense_stride_padding_and_dtype():
    c = compare_conv_dense((39, 39, 3), 10, 3)
    assert c.output_shape == (37, 37, 10)
    c = compare_conv_dense((37, 37, 10), 20, 5, stride=2)
    assert c.output_shape == (17, 17, 20)
    same = compare_conv_dense((32, 32, 3), 8, (3, 5), padding=(1, 2), dtype=np.float64)
    assert same.output_shape == (32, 32, 8)
    assert same.conv.parameters == conv_params((3, 5), 3, 8) == 368
    assert same.conv.weight_bytes == 2_944            # float64: 8 bytes per parameter


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(input_shape=(32, 32), out_channels=6, kernel_size=5), ValueError, "input_shape"),
    (dict(input_shape=32, out_channels=6, kernel_size=5), TypeError, "input_shape"),
    (dict(input_shape=(32, 32, 3.0), out_channels=6, kernel_size=5), TypeError, "input_shape"),
    (dict(input_shape=(32, 32, 3), out_channels=0, kernel_size=5), ValueError, "out_channels"),
    (dict(input_shape=(32, 32, 3), out_channels=6, kernel_size=True), TypeError, "kernel_size"),
    (dict(input_shape=(4, 4, 3), out_channels=6, kernel_size=5), ValueError, "does not fit"),
    (dict(input_shape=(32, 32, 3), out_channels=6, kernel_size=5, stride=0), ValueError,
     "stride"),
    (dict(input_shape=(32, 32, 3), out_channels=6, kernel_size=5, dtype="bogus"), TypeError,
     "dtype"),
])
def test_compare_conv_dense_rejects_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        compare_conv_dense(**kwargs)


def test_small_convnet_shapes_and_parameters():
    layers = convnet_layers()
    assert [lay.shape for lay in layers] == [(39, 39, 3), (37, 37, 10), (17, 17, 20),
                                             (7, 7, 40), (1_960,)]
    assert [lay.parameters for lay in layers] == [0, 280, 5_020, 20_040, 0]


def test_volumes_one_and_two_filters():
    x = np.zeros((1, 3, 7, 7))
    assert fastconv.conv2d(x, np.zeros((1, 3, 3, 3))).shape == (1, 1, 5, 5)
    assert fastconv.conv2d(x, np.zeros((2, 3, 3, 3))).shape == (1, 2, 5, 5)


def test_lenet5_shapes_and_parameters():
    layers = {lay.name: lay for lay in lenet5_layers()}
    assert [lay.shape for lay in lenet5_layers()] == [
        (32, 32, 1), (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,), (120,), (84,),
        (10,)]
    assert layers["conv1"].parameters == 156
    assert layers["conv2"].parameters == 2_416
    assert (layers["fc1"].parameters, layers["fc2"].parameters,
            layers["fc3"].parameters) == (48_120, 10_164, 850)
    assert sum(lay.parameters for lay in lenet5_layers()) == 61_706
    assert conv_output_size(28, 5, padding=2) == 28        # MNIST padded by 2 -> 32 -> 28


@pytest.mark.parametrize("args, kwargs, words", [
    ((3, 5), {}, ["kernel_size=5", "n=3", "padding=0"]),
    ((4, 3), dict(dilation=2), ["kernel_size=3", "dilation=2", "5 pixels", "n=4"]),
    ((2, 6), dict(padding=(1, 1)), ["kernel_size=6", "n=2", "padding=(1, 1)", "4 pixels"]),
])
def test_conv_output_size_raises_when_the_kernel_does_not_fit(args, kwargs, words):
    with pytest.raises(ValueError, match="conv_output_size: the kernel") as exc:
        conv_output_size(*args, **kwargs)
    assert all(word in str(exc.value) for word in words)


def test_conv_output_size_where_the_kernel_just_fits_and_with_ceil_mode():
    assert conv_output_size(5, 5) == 1
    assert conv_output_size(3, 5, padding=1) == 1
    assert conv_output_size(1, 3, stride=3, ceil_mode=True) == 1     # as PyTorch pools
