"""The layers of networks beyond LeNet-5: Identity, Dropout, GlobalAvgPool2D and the Residual
container, against PyTorch and finite differences, with their errors, names and modes."""
import numpy as np
import pytest

from fastconv.nn import (BatchNorm2D, Conv2D, Dropout, GlobalAvgPool2D, Identity, Linear, ReLU,
                         Residual, Sequential, softmax_cross_entropy)
from fastconv.nn.layers import ZeroPadShortcut

from test_layers import F, central_difference, needs_torch, rand, torch, torch_grads


# -- Identity ------------------------------------------------------------------------------
def test_identity_passes_values_and_gradients_unchanged():
    x = rand(2, 3, 4, 4)
    layer = Identity()
    assert layer.forward(x) is x and layer.backward(x) is x
    assert layer.params() == {} and layer.output_shape((5, 3, 4, 4)) == (5, 3, 4, 4)


# -- Dropout -------------------------------------------------------------------------------
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest_by_one_over_one_minus_p():
    x = np.ones((200, 500))
    y = Dropout(0.3, seed=0).forward(x)
    assert set(np.unique(y)) == {0.0, 1 / 0.7}
    assert np.mean(y == 0) == pytest.approx(0.3, abs=0.005)     # 100,000 draws
    assert x.sum() == x.size                                     # the input is untouched


def test_dropout_backward_uses_the_forward_mask():
    layer = Dropout(0.5, seed=1)
    y = layer.forward(rand(4, 6))
    g = rand(4, 6, seed=2)
    kept = y != 0
    np.testing.assert_array_equal(layer.backward(g), np.where(kept, g * 2.0, 0.0))


def test_dropout_is_the_identity_in_eval_mode_and_refuses_backward_there():
    layer = Dropout(0.9, seed=0).eval()
    x = rand(3, 5)
    np.testing.assert_array_equal(layer.forward(x), x)
    with pytest.raises(RuntimeError, match="training mode"):
        layer.backward(x)


def test_dropout_masks_repeat_with_the_seed_and_share_a_model_generator():
    x = np.ones((8, 8))
    assert np.array_equal(Dropout(0.5, seed=3).forward(x), Dropout(0.5, seed=3).forward(x))
    rng = np.random.default_rng(3)
    first, second = Dropout(0.5, seed=rng), Dropout(0.5, seed=rng)
    assert not np.array_equal(first.forward(x), second.forward(x))   # one stream, two draws


@pytest.mark.parametrize("p, expected", [(0.0, 1.0), (1.0, 0.0)])
def test_dropout_extremes_keep_everything_or_nothing_as_torch(p, expected):
    x = np.ones((3, 4))
    np.testing.assert_array_equal(Dropout(p, seed=0).forward(x), np.full_like(x, expected))
    if torch is not None:
        want = F.dropout(torch.ones(3, 4, dtype=torch.float64), p=p, training=True).numpy()
        np.testing.assert_array_equal(want, np.full_like(x, expected))


@pytest.mark.parametrize("p, error", [(-0.1, ValueError), (1.5, ValueError),
                                      (float("nan"), ValueError), ("0.5", TypeError),
                                      (True, TypeError)])
def test_dropout_refuses_a_p_that_is_not_a_probability(p, error):
    with pytest.raises(error, match="Dropout: p must be"):
        Dropout(p)


# -- GlobalAvgPool2D ------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool_matches_torch_forward_and_backward(dtype):
    x = rand(3, 5, 7, 6, dtype=dtype)
    layer = GlobalAvgPool2D()
    y = layer.forward(x)
    want, upstream, (want_gx,) = torch_grads(
        lambda t: F.adaptive_avg_pool2d(t, 1).flatten(1), x.astype(np.float64))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert y.shape == (3, 5) and y.dtype == dtype
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    gx = layer.backward(upstream.astype(dtype))
    assert gx.shape == x.shape and gx.dtype == dtype
    np.testing.assert_allclose(gx, want_gx, rtol=tol, atol=tol)


def test_global_avg_pool_names_itself_and_the_input_in_shape_errors():
    layer = GlobalAvgPool2D()
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D\(\): expected a 4-D input"):
        layer.forward(rand(3, 4))
    layer.forward(rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 3\)"):
        layer.backward(rand(2, 4))
    assert layer.output_shape((8, 64, 8, 8)) == (8, 64)


# -- Residual ------------------------------------------------------------------------------
def basic_block(seed=0, dtype=np.float64):
    """ResNet's basic block: conv-BN-ReLU-conv-BN plus the identity, then ReLU."""
    body = Sequential(Conv2D(4, 4, 3, padding=1, seed=seed, dtype=dtype), BatchNorm2D(4),
                      ReLU(), Conv2D(4, 4, 3, padding=1, seed=seed + 1, dtype=dtype),
                      BatchNorm2D(4))
    if dtype == np.float64:
        body.astype(np.float64)
    return Sequential(Residual(body), ReLU())


def test_residual_adds_the_body_and_the_shortcut():
    x = rand(2, 3, 5, 5)
    body = Conv2D(3, 3, 3, padding=1, seed=0, dtype=np.float64)
    shortcut = Conv2D(3, 3, 1, seed=1, dtype=np.float64)
    y = Residual(body, shortcut).forward(x)
    np.testing.assert_array_equal(y, body.forward(x) + shortcut.forward(x))
    np.testing.assert_array_equal(Residual(Identity()).forward(x), 2 * x)


@needs_torch
def test_residual_block_matches_torch_forward_and_backward():
    block = basic_block()
    x = rand(2, 4, 6, 6, seed=5)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in block.params().items()}
    tx = torch.tensor(x, requires_grad=True)

    def torch_block(t):
        h = F.conv2d(t, p["0.body.0.weight"], p["0.body.0.bias"], padding=1)
        h = F.batch_norm(h, None, None, p["0.body.1.weight"], p["0.body.1.bias"], training=True)
        h = F.conv2d(torch.relu(h), p["0.body.3.weight"], p["0.body.3.bias"], padding=1)
        h = F.batch_norm(h, None, None, p["0.body.4.weight"], p["0.body.4.bias"], training=True)
        return torch.relu(h + t)

    want = torch_block(tx)
    upstream = rand(*want.shape, seed=6)
    want.backward(torch.tensor(upstream))
    np.testing.assert_allclose(block.forward(x), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(block.backward(upstream), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, grad in block.grads().items():
        np.testing.assert_allclose(grad, p[name].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_residual_gradients_match_finite_differences():
    """Both branches carry gradient: the shortcut is a 1x1 convolution with parameters."""
    body = Sequential(Conv2D(2, 3, 3, padding=1, activation="tanh", seed=0, dtype=np.float64),
                      Conv2D(3, 3, 3, padding=1, seed=1, dtype=np.float64))
    net = Sequential(Residual(body, Conv2D(2, 3, 1, seed=2, dtype=np.float64)), ReLU(),
                     GlobalAvgPool2D(), Linear(3, 4, seed=3, dtype=np.float64))
    rng = np.random.default_rng(8)
    x, labels = rng.standard_normal((2, 2, 5, 5)), np.array([1, 3])

    def loss_at():
        return softmax_cross_entropy(net.forward(x), labels)[0]

    grad_x = net.backward(softmax_cross_entropy(net.forward(x), labels)[1])
    analytic = {k: v.copy() for k, v in net.grads().items()}
    assert {k.split(".")[1] for k in analytic if k.startswith("0.")} == {"body", "shortcut"}
    for name, param in net.params().items():
        flat = param.reshape(-1)
        for i in range(0, flat.size, 3):
            numeric = central_difference(loss_at, flat, i)
            assert abs(numeric - analytic[name].reshape(-1)[i]) < 1e-8 + 1e-6 * abs(numeric), name
    for index in [(0, 0, 0, 0), (1, 1, 2, 3), (0, 1, 4, 4)]:
        assert grad_x[index] == pytest.approx(central_difference(loss_at, x, index), abs=1e-8)


def test_residual_refuses_branches_whose_shapes_differ_naming_both():
    block = Residual(Conv2D(3, 4, 3, padding=1, seed=0))
    with pytest.raises(ValueError, match=r"body gives shape \(1, 4, 5, 5\) and the shortcut "
                                         r"\(1, 3, 5, 5\)"):
        block.forward(rand(1, 3, 5, 5, dtype=np.float32))
    with pytest.raises(ValueError, match="must match to be added"):
        block.output_shape((1, 3, 5, 5))
    with pytest.raises(TypeError, match="Residual: body must be a Layer, got function"):
        Residual(lambda x: x)


def test_residual_state_dict_round_trip_and_modes_reach_both_branches():
    block, other = basic_block(seed=0), basic_block(seed=10)
    x = rand(2, 4, 6, 6, seed=3)
    for _ in range(2):
        block.forward(x)                    # running statistics move
    other.load_state_dict(block.state_dict())
    assert sorted(block.state_dict()) == sorted(other.state_dict())
    assert any(k.endswith("running_mean") for k in block.state_dict())
    block.eval()
    other.eval()
    assert not block[0].body[1].training
    np.testing.assert_array_equal(block.forward(x), other.forward(x))


def test_residual_reusing_buffers_gives_the_same_bits():
    plain, reusing = basic_block(seed=4), basic_block(seed=4).reuse_buffers()
    x, g = rand(2, 4, 6, 6, seed=1), rand(2, 4, 6, 6, seed=2)
    for _ in range(2):
        np.testing.assert_array_equal(plain.forward(x), reusing.forward(x))
        np.testing.assert_array_equal(plain.backward(g), reusing.backward(g))
        for name, grad in plain.grads().items():
            np.testing.assert_array_equal(grad, reusing.grads()[name])


def test_residual_alone_with_reuse_rewrites_what_it_returned_as_every_layer_does():
    """Under reuse_buffers a Residual is a layer like Conv2D: its next forward rewrites the
    output it returned, its next backward the input gradient; a Sequential around it
    returns new arrays."""
    x1, x2, g = rand(2, 4, 6, 6, seed=1), rand(2, 4, 6, 6, seed=2), rand(2, 4, 6, 6, seed=3)
    plain = Residual(basic_block(seed=4)[0].body, activation="relu")
    block = Residual(basic_block(seed=4)[0].body, activation="relu").reuse_buffers()
    y1, gx1 = block.forward(x1), block.backward(g)
    y2, gx2 = block.forward(x2), block.backward(g)
    assert y2 is y1 and gx2 is gx1
    plain.forward(x1), plain.backward(g)
    np.testing.assert_array_equal(y2, plain.forward(x2))
    np.testing.assert_array_equal(gx2, plain.backward(g))
    model = Sequential(Residual(basic_block(seed=4)[0].body, activation="relu")).reuse_buffers()
    out1 = model.forward(x1)
    kept = out1.copy()
    out2 = model.forward(x2)
    assert out2 is not out1
    np.testing.assert_array_equal(out1, kept)


@pytest.mark.parametrize("activation", [None, "relu"])
def test_residual_with_reuse_takes_back_the_arrays_it_returned(activation):
    """A caller may hand a layer what it returned last time. The body keeps that input for
    its backward, so the new sum must go to another array: gradients as without reuse."""
    x, g = rand(2, 3, 5, 5, seed=1), rand(2, 3, 5, 5, seed=2)
    results = []
    for reuse in (False, True):
        body = Conv2D(3, 3, 3, padding=1, seed=0, dtype=np.float64)
        block = Residual(body, activation=activation).reuse_buffers(reuse)
        y = block.forward(block.forward(x))
        gx = block.backward(block.backward(g))
        results.append([y.copy(), gx.copy(), body.grads()["weight"].copy()])
    for without, with_reuse in zip(*results):
        np.testing.assert_array_equal(with_reuse, without)


# -- Conv2D's groups, dilation and bias ------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("groups, out_channels, dilation, bias", [
    pytest.param(4, 8, 1, False, id="depthwise_multiplier_2_no_bias"),
    pytest.param(2, 6, 2, True, id="two_groups_dilated"),
    pytest.param(1, 5, 1, False, id="dense_no_bias"),
])
def test_conv2d_layer_groups_dilation_and_bias_match_torch(groups, out_channels, dilation, bias):
    layer = Conv2D(4, out_channels, 3, stride=2, padding=1, dilation=dilation, groups=groups,
                   bias=bias, seed=0, dtype=np.float64)
    x = rand(2, 4, 9, 9, seed=1)
    assert layer.params()["weight"].shape == (out_channels, 4 // groups, 3, 3)
    assert ("bias" in layer.params()) == bias and layer.num_params() == (
        out_channels * 4 // groups * 9 + (out_channels if bias else 0))
    arrays = [x, layer.params()["weight"]] + ([layer.params()["bias"]] if bias else [])
    want, upstream, want_grads = torch_grads(
        lambda t, w, *b: F.conv2d(t, w, b[0] if b else None, stride=2, padding=1,
                                  dilation=dilation, groups=groups), *arrays)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(upstream), want_grads[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads()["weight"], want_grads[1], rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads()["bias"], want_grads[2], rtol=1e-12, atol=1e-12)
    assert layer.output_shape(x.shape) == want.shape


def test_conv2d_layer_refuses_channels_that_groups_do_not_divide():
    with pytest.raises(ValueError, match=r"Conv2D: out_channels must be a multiple of groups "
                                         r"\(4\), got 6"):
        Conv2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match=r"Conv2D: in_channels must be a multiple of groups "
                                         r"\(2\), got 3"):
        Conv2D(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2D: groups must be from 1"):
        Conv2D(3, 3, 3, groups=0)
    assert repr(Conv2D(4, 8, 3, groups=4, bias=False, dilation=2)) == (
        "Conv2D(in_channels=4, out_channels=8, kernel_size=3, dilation=2, groups=4, bias=False)")


@pytest.mark.parametrize("dilation, error, words", [
    (0, ValueError, "Conv2D: dilation must be >= 1, got 0"),
    ((2, -1), ValueError, "Conv2D: dilation must be >= 1, got (2, -1)"),
    (2.0, TypeError, "Conv2D: dilation must be an int or a tuple of 2 ints, got 2.0"),
    ("2", TypeError, "Conv2D: dilation must be an int or a tuple of 2 ints, got '2'"),
    (True, TypeError, "got True"),
    ((1, 2, 3), ValueError, "Conv2D: dilation must be an int or a tuple of 2 ints, got (1, 2, 3)"),
])
def test_conv2d_layer_refuses_a_dilation_that_is_not_positive_ints_when_built(dilation, error,
                                                                              words):
    with pytest.raises(error) as info:
        Conv2D(1, 1, 3, dilation=dilation)
    assert words in str(info.value)
    layer = Conv2D(1, 1, 3, dilation=(2, 1), seed=0)
    assert layer.forward(rand(1, 1, 7, 7)).shape == (1, 1, 3, 5)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(kernel_size=0), ValueError, "Conv2D: kernel_size must be >= 1, got 0"),
    (dict(kernel_size="3"), TypeError, "Conv2D: kernel_size must be an int or a tuple of 2"),
    (dict(stride=0), ValueError, "Conv2D: stride must be >= 1, got 0"),
    (dict(stride=1.5), TypeError, "Conv2D: stride must be an int or a tuple of 2 ints"),
    (dict(padding=-1), ValueError, "Conv2D: padding must be >= 0, got -1"),
    (dict(padding="full"), ValueError, "Conv2D: padding must be an int, a tuple, 'valid' or"),
    (dict(padding="same", stride=2), ValueError, "Conv2D: padding='same' is not supported "
                                                 "for strided convolutions"),
])
def test_conv2d_layer_refuses_bad_kernel_size_stride_or_padding_when_built(kwargs, error,
                                                                          words):
    arguments = dict(kernel_size=3) | kwargs
    with pytest.raises(error) as info:
        Conv2D(1, 1, **arguments)
    assert words in str(info.value)


def test_residual_activation_is_applied_after_the_sum_and_masks_the_gradient():
    x, g = rand(2, 3, 5, 5), rand(2, 3, 5, 5, seed=1)
    body = Conv2D(3, 3, 3, padding=1, seed=0, dtype=np.float64)
    fused = Residual(body, activation="relu")
    y = fused.forward(x)
    np.testing.assert_array_equal(y, np.maximum(body.forward(x) + x, 0))
    body.forward(x)
    grad_sum = g * (y > 0)
    np.testing.assert_allclose(fused.backward(g), body.backward(grad_sum) + grad_sum,
                               rtol=1e-14, atol=1e-15)
    assert fused.kind() == "Residual+relu"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_residual_sum_equals_numpys_add_and_relu_bitwise(threads, dtype):
    """The one-pass C sum (and ReLU) of a block: NumPy's bits on 1 and 2 threads, NaN and
    inf kept where NumPy keeps them; branches of another dtype take NumPy's promotion."""
    rng = np.random.default_rng(4)
    main = rng.standard_normal((3, 4, 33, 35)).astype(dtype)
    side = rng.standard_normal((3, 4, 33, 35)).astype(dtype)
    main.flat[::97] = np.nan
    side.flat[5::89] = np.inf
    side.flat[7::89] = -np.inf
    block = Residual(Identity(), activation="relu")
    for n in (1, 2):
        threads(n)
        for activation, want in ((None, main + side), ("relu", np.maximum(main + side, 0))):
            block.activation = activation
            got = block._add(main, main, side)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
    block.activation = None
    mixed = block._add(main, main, side.astype(np.float16))
    assert mixed.dtype == dtype
    np.testing.assert_array_equal(mixed, main + side.astype(np.float16))


# -- ZeroPadShortcut (ResNet's option A) ----------------------------------------------------
@needs_torch
def test_zero_pad_shortcut_subsamples_and_pads_channels_as_torch():
    x = rand(2, 16, 9, 9)
    layer = ZeroPadShortcut(16, 32, stride=2)
    want, upstream, (want_gx,) = torch_grads(
        lambda t: F.pad(t[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8)), x)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, want)
    assert layer.output_shape(x.shape) == y.shape == (2, 32, 5, 5)
    np.testing.assert_array_equal(layer.backward(upstream), want_gx)


def test_zero_pad_shortcut_refuses_an_odd_or_negative_channel_change():
    with pytest.raises(ValueError, match="in_channels plus an even number, got 16 -> 33"):
        ZeroPadShortcut(16, 33)
    with pytest.raises(ValueError, match="got 16 -> 8"):
        ZeroPadShortcut(16, 8)
    with pytest.raises(ValueError, match="expected input with 16 channels, got 3"):
        ZeroPadShortcut(16, 32).forward(rand(1, 3, 4, 4))
    layer = ZeroPadShortcut(16, 32)
    layer.forward(rand(2, 16, 8, 8))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 32, 4, 4\)"):
        layer.backward(rand(2, 32, 1, 4))
