"""fastconv.nn: layers, losses and optimizers: each against PyTorch or NumPy, a whole-network
finite-difference gradient check in float64, state_dict round trips, seeds."""
import math

import numpy as np
import pytest

from fastconv.nn.layers import (AvgPool2D, Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential,
                             Tanh, init_weight)
from fastconv.nn.losses import accuracy, softmax, softmax_cross_entropy
from fastconv.nn.optim import SGD, Adam, make_optimizer

try:
    import torch
    F = torch.nn.functional
except ImportError:                       # the PyTorch comparisons skip; the rest runs
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_grads(fn, *arrays):
    """fn(*tensors) -> output tensor; returns (output, upstream, grads of every input)."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    upstream = rand(*out.shape, seed=99)
    out.backward(torch.tensor(upstream))
    return out.detach().numpy(), upstream, [t.grad.numpy() for t in tensors]


# -- each layer against PyTorch ------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv2d_layer_matches_torch(activation, stride, padding):
    layer = Conv2D(3, 4, 3, stride=stride, padding=padding, activation=activation, seed=0,
                   dtype=np.float64)
    layer._params["bias"][:] = rand(4, seed=5)
    x = rand(2, 3, 9, 9)
    act = {None: lambda t: t, "relu": torch.relu, "tanh": torch.tanh}[activation]
    expected, upstream, (gx, gw, gb) = torch_grads(
        lambda x, w, b: act(F.conv2d(x, w, b, stride=stride, padding=padding)),
        x, layer.params()["weight"], layer.params()["bias"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(upstream), gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads()["weight"], gw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads()["bias"], gb, rtol=1e-10, atol=1e-12)
    assert layer.output_shape(x.shape) == expected.shape


@needs_torch
def test_linear_layer_matches_torch():
    layer = Linear(7, 5, seed=0, dtype=np.float64)
    layer._params["bias"][:] = rand(5, seed=3)
    x = rand(6, 7)
    expected, upstream, (gx, gw, gb) = torch_grads(F.linear, x, layer.params()["weight"],
                                                   layer.params()["bias"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    np.testing.assert_allclose(layer.backward(upstream), gx, rtol=1e-12)
    np.testing.assert_allclose(layer.grads()["weight"], gw, rtol=1e-12)
    np.testing.assert_allclose(layer.grads()["bias"], gb, rtol=1e-12)


def test_linear_layer_float32_and_noncontiguous_input():
    layer = Linear(4, 3, seed=1)
    x = rand(4, 5, dtype=np.float32).T                    # a transposed (strided) view
    y = layer.forward(x)
    assert y.dtype == np.float32
    w, b = layer.params()["weight"], layer.params()["bias"]
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4\)"):
        layer.forward(np.zeros((2, 5), np.float32))


@needs_torch
@pytest.mark.parametrize("Layer,torch_name", [(MaxPool2D, "max_pool2d"), (AvgPool2D, "avg_pool2d")])
def test_pool_layers_match_torch(Layer, torch_name):
    torch_fn = getattr(F, torch_name)
    layer = Layer(2)
    x = rand(2, 3, 8, 10)
    expected, upstream, (gx,) = torch_grads(lambda t: torch_fn(t, 2), x)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    np.testing.assert_allclose(layer.backward(upstream), gx, rtol=1e-12)
    assert layer.num_params() == 0 and layer.output_shape(x.shape) == expected.shape


@needs_torch
@pytest.mark.parametrize("Layer,torch_fn", [(ReLU, lambda t: t.relu()), (Tanh, lambda t: t.tanh()),
                                            (Flatten, lambda t: t.flatten(1))])
def test_elementwise_and_flatten_layers_match_torch(Layer, torch_fn):
    layer = Layer()
    x = rand(3, 2, 4, 4)
    expected, upstream, (gx,) = torch_grads(torch_fn, x)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    np.testing.assert_allclose(layer.backward(upstream), gx, rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_layer_matches_torch_with_non_finite_values(dtype):
    """The ReLU layer's C kernel: NaN stays NaN forward; backward passes the gradient
    where the output is positive and gives 0 elsewhere, even for an inf or NaN gradient,
    as PyTorch does (where the output is NaN too, which PyTorch passes: as the fused
    conv + ReLU's). A strided input and another gradient dtype work as NumPy's would."""
    x = rand(2, 3, 5, 7, dtype=dtype)
    x[0, 0, 0, :4] = (np.nan, np.inf, -np.inf, 0.0)
    upstream = rand(2, 3, 5, 7, seed=1, dtype=dtype)
    upstream[1, 1, 1, :] = np.nan
    upstream[0, 0, 0, 2] = np.inf                       # where the output is 0
    tx = torch.tensor(x, requires_grad=True)
    ty = tx.relu()
    ty.backward(torch.tensor(upstream))
    layer = ReLU()
    y = layer.forward(x)
    assert y.dtype == dtype and np.array_equal(y, ty.detach().numpy(), equal_nan=True)
    gx = layer.backward(upstream)
    want = tx.grad.numpy().copy()
    want[0, 0, 0, 0] = 0                                # the NaN output
    assert gx.dtype == dtype and np.array_equal(gx, want, equal_nan=True)
    strided = np.asfortranarray(x)[:, :, ::-1]
    assert np.array_equal(layer.forward(strided), np.maximum(strided, 0), equal_nan=True)
    wide = layer.backward(np.ones(x.shape))                # float64: NumPy's promotion
    assert wide.dtype == np.float64


def test_backward_without_training_forward_raises_clear_error():
    layer = Conv2D(1, 2, 3, seed=0)
    with pytest.raises(RuntimeError, match="forward pass in training mode"):
        layer.backward(np.zeros((1, 2, 3, 3), np.float32))
    layer.eval().forward(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match=r"call \.train\(\)"):
        layer.backward(np.zeros((1, 2, 3, 3), np.float32))


def test_train_and_eval_propagate_through_sequential():
    net = Sequential(Conv2D(1, 2, 3, seed=0), ReLU(), Flatten())
    assert net.eval() is net and not any(layer.training for layer in net)
    assert all(layer.training for layer in net.train())


# -- the whole network, by finite differences ------------------------------------------------
def small_network(seed=0):
    """Every layer kind in one float64 network: 1x10x10 -> 10 classes."""
    return Sequential(
        Conv2D(1, 3, 3, padding=1, activation="relu", seed=seed, dtype=np.float64),   # 3x10x10
        MaxPool2D(2),                                                                 # 3x5x5
        Conv2D(3, 4, 2, activation="tanh", seed=seed + 1, dtype=np.float64),          # 4x4x4
        AvgPool2D(2),                                                                 # 4x2x2
        Flatten(),
        Linear(16, 12, init="he", seed=seed + 2, dtype=np.float64),
        ReLU(),
        Linear(12, 8, seed=seed + 3, dtype=np.float64),
        Tanh(),
        Linear(8, 10, seed=seed + 4, dtype=np.float64),
    )


def central_difference(loss_at, array, index, eps=1e-6):
    """d loss / d array[index] as (loss(a + eps) - loss(a - eps)) / 2 eps; array is
    changed in place for the two evaluations and restored."""
    saved = array[index]
    array[index] = saved + eps
    plus = loss_at()
    array[index] = saved - eps
    minus = loss_at()
    array[index] = saved
    return (plus - minus) / (2 * eps)


def test_whole_network_gradients_match_finite_differences():
    net = small_network()
    rng = np.random.default_rng(7)
    for name, p in net.params().items():          # nonzero biases exercise every path
        if name.endswith("bias"):
            p[:] = rng.normal(0, 0.1, p.shape)
    x = rng.standard_normal((3, 1, 10, 10))
    y = np.array([1, 4, 9])

    def loss_at():
        return softmax_cross_entropy(net.forward(x), y)[0]

    _, grad = softmax_cross_entropy(net.forward(x), y)
    grad_x = net.backward(grad)
    analytic = {k: v.copy() for k, v in net.grads().items()}
    checked = 0
    for name, param in net.params().items():
        flat = param.reshape(-1)
        for i in range(flat.size):
            numeric = central_difference(loss_at, flat, i)
            assert abs(numeric - analytic[name].reshape(-1)[i]) < 1e-6 + 1e-5 * abs(numeric), \
                f"{name}[{i}]: numeric {numeric}, backward {analytic[name].reshape(-1)[i]}"
            checked += 1
    assert checked == net.num_params() == 30 + 52 + 204 + 104 + 90
    # and the input gradient, on a sample of pixels
    for index in [(0, 0, 0, 0), (1, 0, 4, 7), (2, 0, 9, 9), (0, 0, 5, 2)]:
        assert abs(central_difference(loss_at, x, index) - grad_x[index]) < 1e-6



def test_backward_without_input_grad_fills_the_same_parameter_gradients():
    """What the trainer does: the images need no gradient, so the first layer skips it."""
    net = small_network()
    x = np.random.default_rng(8).standard_normal((3, 1, 10, 10))
    _, grad = softmax_cross_entropy(net.forward(x), np.array([1, 4, 9]))
    assert net.backward(grad).shape == x.shape
    expected = {k: v.copy() for k, v in net.grads().items()}
    assert net.backward(grad, input_grad=False) is None
    for name, value in net.grads().items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    linear = Linear(4, 3, seed=0, dtype=np.float64)
    linear.forward(np.ones((2, 4)))
    assert linear.backward(np.ones((2, 3)), input_grad=False) is None
    assert linear.grads()["weight"].shape == (3, 4)

# -- loss ------------------------------------------------------------------------------------
@needs_torch
def test_softmax_cross_entropy_matches_torch():
    logits, labels = rand(5, 10), np.array([0, 3, 9, 3, 1])
    t = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(t, torch.tensor(labels))
    expected.backward()
    loss, grad = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1.0)


@needs_torch
def test_softmax_cross_entropy_of_an_empty_batch_is_nan_as_torch():
    t = torch.zeros((0, 3), dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(t, torch.zeros(0, dtype=torch.int64))
    expected.backward()
    loss, grad = softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    assert math.isnan(loss) and math.isnan(expected.item())
    assert grad.shape == tuple(t.grad.shape) == (0, 3)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e38, 1e38, 0.0]], dtype=np.float32)
    loss, grad = softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isfinite(loss) and loss == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.isfinite(grad)) and grad.dtype == np.float32
    loss, _ = softmax_cross_entropy(np.array([[1e4, 0.0]]), np.array([1]))
    assert loss == pytest.approx(1e4)


def test_softmax_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="expected logits"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0]))
    assert accuracy(np.array([[0, 1.0], [2.0, 1]]), np.array([1, 1])) == 0.5


# -- optimizers against torch.optim ------------------------------------------------------------
def run_steps(make, torch_make, steps=5):
    """Run `steps` updates with fastconv and torch on the same parameters and gradients."""
    net = Linear(4, 3, seed=0, dtype=np.float64)
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in net.params().values()]
    opt, topt = make(net), torch_make(tparams)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape) for p in net.params().values()]
        for key, g in zip(net.params(), grads):
            net._grads[key] = g
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(net.params().values(), tparams):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12, atol=1e-14)
    return net, opt


@needs_torch
@pytest.mark.parametrize("momentum,nesterov,weight_decay",
                         [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-2),
                          (0.5, False, 1e-3)])
def test_sgd_matches_torch(momentum, nesterov, weight_decay):
    run_steps(lambda m: SGD(m, lr=0.1, momentum=momentum, nesterov=nesterov,
                            weight_decay=weight_decay),
              lambda p: torch.optim.SGD(p, lr=0.1, momentum=momentum, nesterov=nesterov,
                                        weight_decay=weight_decay))


@needs_torch
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_matches_torch(weight_decay):
    run_steps(lambda m: Adam(m, lr=0.01, betas=(0.8, 0.99), weight_decay=weight_decay),
              lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99),
                                         weight_decay=weight_decay))


@pytest.mark.parametrize("make", [lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda m: Adam(m, lr=0.01)])
def test_optimizer_state_dict_resumes_exactly(make):
    def step(net, opt, seed):
        for key, p in net.params().items():
            net._grads[key] = np.random.default_rng(seed).standard_normal(p.shape)
        opt.step()

    net, opt = Linear(4, 3, seed=0), None
    opt = make(net)
    for s in range(3):
        step(net, opt, s)
    saved_params, saved_opt = net.state_dict(), opt.state_dict()
    for s in range(3, 5):
        step(net, opt, s)

    other = Linear(4, 3, seed=42)
    other.load_state_dict(saved_params)
    other_opt = make(other)
    other_opt.load_state_dict(saved_opt)
    for s in range(3, 5):
        step(other, other_opt, s)
    for key, p in net.params().items():
        np.testing.assert_array_equal(other.params()[key], p)


def test_optimizer_state_dict_mismatch_errors():
    net = Linear(4, 3, seed=0)
    state = SGD(net, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="the state is for SGD"):
        Adam(net).load_state_dict(state)
    adam = Adam(net)
    net._grads = {k: np.ones_like(v) for k, v in net.params().items()}
    adam.step()
    state = adam.state_dict()
    with pytest.raises(ValueError, match=r"m/weight is float32\(3, 4\)"):
        Adam(Linear(5, 3)).load_state_dict(state)
    state["m/nonexistent"] = np.zeros(3)
    with pytest.raises(KeyError, match="nonexistent"):
        Adam(net).load_state_dict(state)


def test_make_optimizer_and_argument_checks():
    net = Linear(2, 2, seed=0)
    assert isinstance(make_optimizer(None, net), Adam) and make_optimizer(None, net).lr == 2e-3
    sgd = make_optimizer("sgd", net, lr=0.2)
    assert isinstance(sgd, SGD) and sgd.lr == 0.2 and sgd.nesterov
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("rmsprop", net)
    with pytest.raises(ValueError, match="lr must be > 0"):
        SGD(net, lr=0)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        SGD(net, nesterov=True)


# -- state_dict, seeds, initialisation --------------------------------------------------------
def test_state_dict_round_trip_restores_outputs():
    net, other = small_network(seed=0), small_network(seed=10)
    x = rand(2, 1, 10, 10)
    assert not np.allclose(net.forward(x), other.forward(x))
    other.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(net.forward(x), other.forward(x))
    state = net.state_dict()
    state["0.weight"][...] = 0                       # a copy: the network is unaffected
    assert np.any(net.params()["0.weight"] != 0)


def test_state_dict_mismatches_raise_clear_errors():
    net = small_network()
    state = net.state_dict()
    bad_shape = dict(state, **{"5.weight": np.zeros((12, 17))})
    with pytest.raises(ValueError, match=r"5\.weight has shape \(12, 17\).*expected \(12, 16\)"):
        net.load_state_dict(bad_shape)
    bad_dtype = dict(state, **{"5.bias": state["5.bias"].astype(np.float32)})
    with pytest.raises(ValueError, match="5.bias has dtype float32.*expected float64"):
        net.load_state_dict(bad_dtype)
    missing = {k: v for k, v in state.items() if k != "0.bias"}
    with pytest.raises(KeyError, match=r"missing \['0\.bias'\]"):
        net.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected \['extra'\]"):
        net.load_state_dict(dict(state, extra=np.zeros(1)))
    # a failed load changes nothing
    np.testing.assert_array_equal(net.params()["5.weight"], state["5.weight"])


def test_seeds_make_initialisation_reproducible():
    a, b, c = small_network(seed=3), small_network(seed=3), small_network(seed=4)
    for key in a.params():
        np.testing.assert_array_equal(a.params()[key], b.params()[key])
    assert not np.array_equal(a.params()["0.weight"], c.params()["0.weight"])


def test_he_and_glorot_initialisation_scales():
    rng = np.random.default_rng(0)
    he = init_weight((400, 500), 500, 400, "he", rng, np.float32)
    assert he.dtype == np.float32 and he.std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    glorot = init_weight((400, 500), 500, 400, "glorot", rng, np.float64)
    limit = np.sqrt(6 / 900)
    assert np.abs(glorot).max() <= limit and glorot.std() == pytest.approx(limit / np.sqrt(3),
                                                                          rel=0.02)
    with pytest.raises(ValueError, match="init must be one of"):
        init_weight((2, 2), 2, 2, "lecun", rng, np.float32)


def test_astype_converts_parameters_and_computation():
    net = Sequential(Conv2D(1, 2, 3, seed=0), Flatten(), Linear(8, 2, seed=0))
    assert net.dtype == np.float32
    net.astype(np.float64)
    assert all(p.dtype == np.float64 for p in net.params().values())
    assert net.forward(np.zeros((1, 1, 4, 4), np.float32)).dtype == np.float64


def test_sequential_names_and_indexing():
    net = Sequential(Linear(2, 3, seed=0, name="fc"), ReLU(), Linear(3, 1, seed=0))
    assert list(net.params()) == ["fc.weight", "fc.bias", "2.weight", "2.bias"]
    assert net["fc"] is net[0] and len(net) == 3
    with pytest.raises(ValueError, match="unique"):
        Sequential(ReLU(name="a"), ReLU(name="a"))
    with pytest.raises(ValueError, match="activation must be one of"):
        Conv2D(1, 1, 3, activation="sigmoid")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 100_003])        # below and above the parallel cut
def test_fused_relu_kernels_match_numpy(dtype, size):
    from fastconv.nn.layers import _activation_backward, _activation_forward
    rng = np.random.default_rng(size)
    y = rng.standard_normal(size).astype(dtype)
    y[::11] = np.nan
    y[5::13] = -np.inf
    y[3::17] = 0.0
    expected = np.maximum(y, 0)
    out = _activation_forward(y.copy(), "relu")
    np.testing.assert_array_equal(out, expected)
    grad = rng.standard_normal(size).astype(dtype)
    grad[1::7] = np.inf
    grad_view = grad[::-1]                                   # negative strides are copied
    before = grad_view.copy()
    got = _activation_backward(grad_view, out, "relu")
    np.testing.assert_array_equal(got, np.where(out > 0, grad_view, 0))
    np.testing.assert_array_equal(grad_view, before)         # input untouched
    with pytest.raises(ValueError, match="expected grad_out of shape"):
        _activation_backward(np.ones(size + 1, dtype), out, "relu")


# ---- an input a layer cannot take: the error names the layer and the input ----

@pytest.mark.parametrize("layer, x, message", [
    (Conv2D(3, 4, 3), np.zeros((2, 1, 8, 8)),
     r"^Conv2D\(in_channels=3, out_channels=4, kernel_size=3\): expected input with 3 "
     r"channels, got 1 \(input shape \(2, 1, 8, 8\)\)$"),
    (Conv2D(1, 4, 3, name="conv1"), np.zeros((1, 8, 8)),
     r"^conv1 \(Conv2D\(in_channels=1, out_channels=4, kernel_size=3\)\): expected a 4-D "
     r"input \(N, 1, H, W\), got shape \(1, 8, 8\)$"),
    (Conv2D(1, 4, 5, padding=1), np.zeros((2, 1, 2, 2)),
     r"^Conv2D\(in_channels=1, out_channels=4, kernel_size=5, padding=1\): the kernel "
     r"\(5x5.*larger than the padded input \(4x4 from input 2x2"),
    (Linear(4, 3), np.zeros((2, 5)),
     r"^Linear\(in_features=4, out_features=3\): expected input of shape \(N, 4\), got "
     r"shape \(2, 5\)$"),
    (Linear(4, 3), np.zeros(4),
     r"^Linear\(in_features=4, out_features=3\): expected input of shape \(N, 4\), got "
     r"shape \(4,\)$"),
    (MaxPool2D(2), np.zeros((2, 3, 1, 1)),
     r"^MaxPool2D\(kernel_size=2\): the window \(2x2.*larger than the padded input "
     r"\(1x1 from input 1x1"),
    (AvgPool2D(3, stride=1), np.zeros((3, 3)),
     r"^AvgPool2D\(kernel_size=3, stride=1\): expected a 4-D input \(N, C, H, W\), got "
     r"shape \(3, 3\)$"),
    (Flatten(), np.zeros(3),
     r"^Flatten\(\): expected an input of shape \(N, \.\.\.\) with at least 2 axes, got "
     r"shape \(3,\)$"),
])
@pytest.mark.parametrize("training", [True, False])
def test_an_input_the_layer_cannot_take_is_named_with_the_layer(layer, x, message, training):
    layer.train(training).reuse_buffers(training)
    with pytest.raises(ValueError, match=message):
        layer.forward(x)
    with pytest.raises(ValueError, match=message):
        layer.output_shape(x.shape)
