"""BatchNorm1D and BatchNorm2D: against PyTorch (train and eval, float32 and float64,
running statistics over several steps), against a plain float64 NumPy reference, by finite
differences, and on the edges: one image, one value per channel, empty batches, NaN, bad
input, thread counts, SIMD paths, state_dict and buffer reuse."""
import numpy as np
import pytest

from conftest import simd_path, thread_count
from test_layers import central_difference
from fastconv import _ext
from fastconv.nn.layers import BatchNorm1D, BatchNorm2D, Conv2D, ReLU, Sequential

try:
    import torch
except ImportError:                       # the PyTorch comparisons skip; the rest runs
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")

# (layer, PyTorch's name, input shape): 2-D images with small planes (the kernels' row
# loops) and large ones (plane loops, here with a vector tail), and BatchNorm1D's two layouts.
CASES = [(BatchNorm2D, "BatchNorm2d", (4, 3, 5, 6)),
         (BatchNorm2D, "BatchNorm2d", (2, 3, 8, 9)),
         (BatchNorm1D, "BatchNorm1d", (6, 3)),
         (BatchNorm1D, "BatchNorm1d", (5, 3, 7))]
CASE_IDS = ["2d-rows", "2d-planes", "1d-NC", "1d-NCL"]


@pytest.fixture(scope="module", autouse=True)
def torch_on_one_thread():
    """PyTorch on one thread: its thread pool's hand-offs cost more than these tiny inputs
    (tens of milliseconds a call on a busy machine)."""
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rand(*shape, seed=0, dtype=np.float64, loc=0.0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + loc).astype(dtype)


def reference_forward(x, weight, bias, eps):
    """y, the batch mean and the biased variance, per channel (axis 1), in float64 loops
    over channels."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    y = np.empty_like(x)
    mean, var = np.empty(C), np.empty(C)
    for c in range(C):
        values = x[:, c]
        mean[c] = values.mean()
        var[c] = ((values - mean[c]) ** 2).mean()
        y[:, c] = (values - mean[c]) / np.sqrt(var[c] + eps) * weight[c] + bias[c]
    return y, mean, var


def reference_backward(dy, x, weight, eps):
    """dx, dweight, dbias of reference_forward, from the chain rule written per channel:
    dx = w / std * (dy - mean(dy) - xhat * mean(dy * xhat))."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    dx = np.empty_like(x)
    C = x.shape[1]
    dweight, dbias = np.empty(C), np.empty(C)
    for c in range(C):
        values, g = x[:, c], dy[:, c]
        std = np.sqrt(values.var() + eps)
        xhat = (values - values.mean()) / std
        dweight[c], dbias[c] = (g * xhat).sum(), g.sum()
        dx[:, c] = weight[c] / std * (g - g.mean() - xhat * (g * xhat).mean())
    return dx, dweight, dbias


def torch_layer(torch_name, layer):
    """PyTorch's twin of `layer`, with the same settings, parameters and buffers."""
    twin = getattr(torch.nn, torch_name)(
        layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
        track_running_stats=layer.track_running_stats)
    twin = twin.to(torch.float64 if layer.dtype == np.float64 else torch.float32)
    twin.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    return twin


def tolerances(dtype):
    return dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)


# -- against PyTorch -----------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("Layer,torch_name,shape", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batch_norm_matches_torch_over_training_steps_and_eval(Layer, torch_name, shape, dtype,
                                                               momentum, affine, track):
    layer = Layer(3, momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
    if affine:
        layer.params()["weight"][:] = rand(3, seed=1, dtype=dtype)
        layer.params()["bias"][:] = rand(3, seed=2, dtype=dtype)
    twin = torch_layer(torch_name, layer)
    tol = tolerances(dtype)
    for step in range(3):
        x = rand(*shape, seed=10 + step, dtype=dtype, loc=step - 1.0, scale=1.5)
        dy = rand(*shape, seed=20 + step, dtype=dtype)
        xt = torch.tensor(x, requires_grad=True)
        yt = twin(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), **tol)
        np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), **tol)
        for name, p in twin.named_parameters():
            np.testing.assert_allclose(layer.grads()[name], p.grad.numpy(), **tol)
            p.grad = None
        for name, b in twin.named_buffers():
            np.testing.assert_allclose(layer.buffers()[name], b.numpy(), **tol)
    assert sorted(layer.state_dict()) == sorted(twin.state_dict())
    layer.eval()
    twin.eval()
    x = rand(*shape, seed=30, dtype=dtype)
    with torch.no_grad():
        np.testing.assert_allclose(layer.forward(x), twin(torch.tensor(x)).numpy(), **tol)


@needs_torch
def test_batch_norm_one_image_with_several_pixels_matches_torch():
    layer = BatchNorm2D(2, dtype=np.float64)
    twin = torch_layer("BatchNorm2d", layer)
    x, dy = rand(1, 2, 3, 1), rand(1, 2, 3, 1, seed=1)
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.tensor(dy))
    layer.forward(x)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.buffers()["running_var"], twin.running_var.numpy())


@needs_torch
def test_batch_norm_empty_batch_as_torch():
    """An empty batch gives an empty output, leaves the running statistics alone but counts
    the batch, and zero parameter gradients (as PyTorch)."""
    layer = BatchNorm2D(3)
    twin = torch_layer("BatchNorm2d", layer)
    x = np.zeros((0, 3, 4, 4), np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    yt.sum().backward()
    y = layer.forward(x)
    assert y.shape == x.shape
    dx = layer.backward(np.zeros_like(x))
    assert dx.shape == x.shape
    for name, b in twin.named_buffers():
        np.testing.assert_array_equal(layer.buffers()[name], b.numpy())
    for name, p in twin.named_parameters():
        np.testing.assert_array_equal(layer.grads()[name], p.grad.numpy())


# -- against the NumPy reference and by finite differences --------------------------------
@pytest.mark.parametrize("shape", [(3, 4, 5, 7), (1, 2, 6, 6), (2, 3, 1, 1), (5, 2, 17, 3)])
def test_batch_norm_matches_numpy_reference(shape):
    layer = BatchNorm2D(shape[1], eps=1e-3, dtype=np.float64)
    w, b = rand(shape[1], seed=1), rand(shape[1], seed=2)
    layer.params()["weight"][:], layer.params()["bias"][:] = w, b
    x, dy = rand(*shape, loc=3.0), rand(*shape, seed=5)
    y_ref, mean, var = reference_forward(x, w, b, 1e-3)
    np.testing.assert_allclose(layer.forward(x), y_ref, rtol=1e-12, atol=1e-12)
    dx_ref, dw_ref, db_ref = reference_backward(dy, x, w, 1e-3)
    np.testing.assert_allclose(layer.backward(dy), dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads()["weight"], dw_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads()["bias"], db_ref, rtol=1e-12, atol=1e-12)
    count = shape[0] * shape[2] * shape[3]
    np.testing.assert_allclose(layer.buffers()["running_mean"], 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers()["running_var"],
                               0.9 + 0.1 * var * count / (count - 1), rtol=1e-12)


def test_batch_norm_float32_statistics_stay_accurate_far_from_zero():
    """A mean 10^4 spreads from zero costs the float32 statistics nothing (float64 sums of
    x minus one of the channel's values): the output matches the float64 reference."""
    x = rand(8, 3, 16, 16, dtype=np.float32, loc=1e4, scale=1.0)
    layer = BatchNorm2D(3)
    y_ref = reference_forward(x, np.ones(3), np.zeros(3), 1e-5)[0]
    # x itself is float32: its rounding (1e4 * 2^-24 ~ 6e-4 of a spread) bounds any method.
    np.testing.assert_allclose(layer.forward(x), y_ref, rtol=0, atol=2e-3)
    dy = rand(8, 3, 16, 16, seed=1, dtype=np.float32)
    dx_ref = reference_backward(dy, x, np.ones(3), 1e-5)[0]
    np.testing.assert_allclose(layer.backward(dy), dx_ref, rtol=0, atol=2e-3)


@pytest.mark.parametrize("Layer,shape", [(BatchNorm2D, (2, 3, 3, 2)),
                                         (BatchNorm2D, (2, 2, 6, 6)),      # plane loops
                                         (BatchNorm1D, (4, 2)), (BatchNorm1D, (2, 2, 3))])
def test_batch_norm_gradients_match_finite_differences(Layer, shape):
    layer = Layer(shape[1], dtype=np.float64)
    layer.params()["weight"][:] = rand(shape[1], seed=1)
    layer.params()["bias"][:] = rand(shape[1], seed=2)
    x, r = rand(*shape, seed=3), rand(*shape, seed=4)

    def loss():
        return float(np.sum(layer.forward(x) * r))

    loss()
    dx = layer.backward(r)
    grads = {"x": dx, **{k: v.copy() for k, v in layer.grads().items()}}
    arrays = {"x": x, **layer.params()}
    for name, a in arrays.items():
        numeric = np.empty_like(a)
        for i in np.ndindex(a.shape):
            numeric[i] = central_difference(loss, a, i)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-7, err_msg=name)


# -- edges ----------------------------------------------------------------------------------
@pytest.mark.parametrize("Layer,shape", [(BatchNorm2D, (1, 3, 1, 1)), (BatchNorm1D, (1, 3)),
                                         (BatchNorm1D, (1, 3, 1))])
def test_batch_norm_one_value_per_channel_in_training_raises_as_torch(Layer, shape):
    layer = Layer(3)
    with pytest.raises(ValueError, match="(?i)expected more than 1 value per channel when "
                                         "training"):
        layer.forward(np.ones(shape, np.float32))
    assert int(layer.buffers()["num_batches_tracked"]) == 0   # nothing changed
    layer.eval().forward(np.ones(shape, np.float32))           # running statistics: fine
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        Layer(3, track_running_stats=False).eval().forward(np.ones(shape, np.float32))


def test_batch_norm_nan_propagates_to_its_channel_only():
    x = rand(2, 3, 4, 4, dtype=np.float32)
    x[1, 1, 2, 3] = np.nan
    layer = BatchNorm2D(3)
    y = layer.forward(x)
    assert np.all(np.isnan(y[:, 1])) and np.all(np.isfinite(y[:, [0, 2]]))
    assert np.isnan(layer.buffers()["running_mean"][1])
    dx = layer.backward(np.ones_like(x))
    assert np.all(np.isnan(dx[:, 1])) and np.all(np.isfinite(dx[:, [0, 2]]))


def test_batch_norm_noncontiguous_input_and_inputs_never_modified():
    base = rand(3, 4, 10, 8, dtype=np.float32)
    x = base[:, :, ::2, :]                                   # a strided view
    dy = rand(3, 4, 5, 8, seed=1, dtype=np.float32).transpose(0, 1, 3, 2).copy().transpose(
        0, 1, 3, 2)                                          # a non-contiguous gradient
    x_before, dy_before = x.copy(), dy.copy()
    a, b = BatchNorm2D(4), BatchNorm2D(4)
    np.testing.assert_array_equal(a.forward(x), b.forward(np.ascontiguousarray(x)))
    np.testing.assert_array_equal(a.backward(dy), b.backward(np.ascontiguousarray(dy)))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)


def test_batch_norm_integer_input_computes_in_the_layer_dtype():
    y = BatchNorm2D(2).forward(np.arange(16).reshape(1, 2, 2, 4))
    assert y.dtype == np.float32


@pytest.mark.parametrize("shape", [(3, 5, 33, 31), (64, 3, 2, 2), (40, 700)])
def test_batch_norm_same_bits_on_one_and_two_threads(shape, threads):
    Layer = BatchNorm2D if len(shape) == 4 else BatchNorm1D
    x, dy = rand(*shape, dtype=np.float32, loc=2.0), rand(*shape, seed=1, dtype=np.float32)
    results = []
    for n in (1, 2):
        threads(n)
        layer = Layer(shape[1])
        results.append((layer.forward(x), layer.backward(dy), *layer.grads().values(),
                        *layer.buffers().values()))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("shape", [(3, 4, 13, 29), (7, 5, 3)])   # planes (tail 9), rows
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_same_bits_on_every_simd_path(dtype, shape, simd):
    """The sums' float64 lanes do the same operations on every instruction set, and the
    elementwise loops too: each path gives the portable one's bits."""
    Layer = BatchNorm2D if len(shape) == 4 else BatchNorm1D
    x, dy = rand(*shape, dtype=dtype, loc=-1.0), rand(*shape, seed=1, dtype=dtype)
    layer = Layer(shape[1], dtype=dtype)
    got = (layer.forward(x), layer.backward(dy), *layer.grads().values(),
           *layer.buffers().values())
    with simd_path("generic"):
        layer = Layer(shape[1], dtype=dtype)
        want = (layer.forward(x), layer.backward(dy), *layer.grads().values(),
                *layer.buffers().values())
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# -- bad input ----------------------------------------------------------------------------
def test_batch_norm_wrong_channels_names_the_layer_and_the_input():
    with pytest.raises(ValueError, match=r"BatchNorm2D\(num_features=3\): expected input "
                                         r"with 3 channels, got 1"):
        BatchNorm2D(3).forward(np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(num_features=3\): expected input "
                                         r"with 3 channels, got 4"):
        BatchNorm1D(3).forward(np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("Layer,shape", [(BatchNorm2D, (2, 3, 4)), (BatchNorm2D, (3,)),
                                         (BatchNorm1D, (2, 3, 4, 4)), (BatchNorm1D, (3,))])
def test_batch_norm_wrong_ndim_raises(Layer, shape):
    with pytest.raises(ValueError, match=r"num_features=3\): expected a .*-D input.*got "
                                         r"shape"):
        Layer(3).forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("value", [np.zeros((2, 3), complex), np.array([["a"] * 3] * 2)])
def test_batch_norm_non_real_input_raises_type_error(value):
    with pytest.raises(TypeError, match="x must be a real"):
        BatchNorm1D(3).forward(value)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(num_features=0), ValueError, "num_features must be from 1"),
    (dict(num_features=2.5), TypeError, "num_features must be an int"),
    (dict(num_features=True), TypeError, "num_features must be an int"),
    (dict(num_features=3, eps=0), ValueError, "eps must be finite and > 0"),
    (dict(num_features=3, eps=float("nan")), ValueError, "eps must be finite"),
    (dict(num_features=3, eps="1e-5"), TypeError, "eps must be a real number"),
    (dict(num_features=3, momentum=1.5), ValueError, "momentum must be finite and >= 0 and "
                                                     "<= 1, got 1.5"),
    (dict(num_features=3, affine="yes"), TypeError, "affine must be a bool"),
    (dict(num_features=3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
])
def test_batch_norm_bad_arguments_name_themselves(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNorm2D(**kwargs)


def test_batch_norm_backward_needs_a_training_forward_and_a_matching_gradient():
    layer = BatchNorm2D(2)
    with pytest.raises(RuntimeError, match="forward pass in training mode"):
        layer.backward(np.zeros((2, 2, 3, 3), np.float32))
    layer.eval().forward(np.zeros((2, 2, 3, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"call \.train\(\)"):
        layer.backward(np.zeros((2, 2, 3, 3), np.float32))
    layer.train().forward(np.zeros((2, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 2, 3, 3\)"):
        layer.backward(np.zeros((2, 2, 3, 4), np.float32))


def test_batch_norm_glue_refuses_mismatched_arrays():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="per-channel arrays must hold 3 values"):
        _ext.batch_norm_forward_train(x, np.empty_like(x), np.empty(3), np.empty(3), None, None,
                                      np.ones(2, np.float32), None, 1e-5, 0.1)
    with pytest.raises(ValueError, match="y must have the shape of x"):
        _ext.batch_norm_forward_eval(x, np.empty((2, 3, 5), np.float32),
                                     np.zeros(3, np.float32), np.ones(3, np.float32),
                                     None, None, 1e-5)


# -- the layer contract ---------------------------------------------------------------------
def test_batch_norm_params_buffers_and_state_dict_round_trip():
    layer = BatchNorm2D(3, momentum=None)
    assert sorted(layer.params()) == ["bias", "weight"]
    assert sorted(layer.buffers()) == ["num_batches_tracked", "running_mean", "running_var"]
    for step in range(3):
        layer.forward(rand(4, 3, 5, 5, seed=step, dtype=np.float32, loc=step))
        layer.backward(rand(4, 3, 5, 5, seed=9, dtype=np.float32))
    layer.params()["weight"][:] = [1.0, 2.0, 3.0]
    state = layer.state_dict()
    tracked = state["num_batches_tracked"]
    assert tracked.dtype == np.int64 and tracked.shape == () and int(tracked) == 3
    copy = BatchNorm2D(3, momentum=None)
    copy.load_state_dict(state)
    x = rand(2, 3, 5, 5, seed=7, dtype=np.float32)
    np.testing.assert_array_equal(copy.eval().forward(x), layer.eval().forward(x))
    with pytest.raises(ValueError, match="has dtype float32 in the state_dict, expected "
                                         "float64"):
        BatchNorm2D(3, dtype=np.float64).load_state_dict(state)
    assert BatchNorm2D(3, affine=False).params() == {}
    assert BatchNorm2D(3, track_running_stats=False).state_dict().keys() == {"weight", "bias"}


def test_batch_norm_astype_converts_parameters_and_running_statistics():
    layer = BatchNorm1D(3).astype(np.float64)
    assert {a.dtype for a in (*layer.params().values(), layer.buffers()["running_mean"],
                              layer.buffers()["running_var"])} == {np.dtype(np.float64)}
    assert layer.buffers()["num_batches_tracked"].dtype == np.int64
    assert layer.forward(np.ones((2, 3))).dtype == np.float64


def test_batch_norm_reuse_buffers_gives_the_same_bits_in_kept_arrays():
    x, dy = rand(4, 3, 6, 6, dtype=np.float32), rand(4, 3, 6, 6, seed=1, dtype=np.float32)
    plain, reusing = BatchNorm2D(3), BatchNorm2D(3).reuse_buffers()
    y1 = reusing.forward(x)
    dx1 = reusing.backward(dy)
    grad_w = reusing.grads()["weight"]
    y2 = reusing.forward(x)
    dx2 = reusing.backward(dy)
    assert y1 is y2 and dx1 is dx2 and reusing.grads()["weight"] is grad_w
    plain.forward(x)
    np.testing.assert_array_equal(y2, plain.forward(x))
    np.testing.assert_array_equal(dx2, plain.backward(dy))
    np.testing.assert_array_equal(grad_w, plain.grads()["weight"])


def test_batch_norm_in_a_sequential_model():
    net = Sequential(Conv2D(1, 2, 3, seed=0), BatchNorm2D(2), ReLU())
    x = rand(3, 1, 6, 6, dtype=np.float32)
    y = net.forward(x)
    assert y.shape == (3, 2, 4, 4)
    net.backward(np.ones_like(y))
    assert "1.running_var" in net.state_dict() and "1.weight" in net.grads()
    with thread_count(1):
        assert net.eval().forward(x).shape == y.shape


# -- a ReLU after the batch norm, inside its passes ----------------------------------------
def _apart(layers, x, dy):
    """The layers' forward and backward one by one (no fusion), and the parameter
    gradients and running statistics after."""
    y = x
    for layer in layers:
        y = layer.forward(y)
    g = dy
    for layer in reversed(layers):
        g = layer.backward(g)
    return (y, g, *layers[0].grads().values(), *layers[0].buffers().values())


def _together(net, x, dy):
    y = net.forward(x).copy()
    g = net.backward(dy)
    return (y, g, *net.layers[0].grads().values(), *net.layers[0].buffers().values())


@pytest.mark.parametrize("Layer, shape", [(BatchNorm2D, (3, 4, 13, 29)),   # planes, tail 9
                                          (BatchNorm2D, (5, 3, 4, 5)),     # rows
                                          (BatchNorm1D, (7, 5))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_inside_batch_norm_gives_the_bits_of_the_two_layers(Layer, shape, dtype, simd):
    """Sequential(batch norm, ReLU) runs the ReLU inside the batch norm's passes, forward
    and backward: the output, input gradient, parameter gradients and running statistics
    have the bits of the two layers run one after the other, on every SIMD path, with
    NaN, inf and -0.0 in the input and the gradient; the ReLU layer's own backward is
    skipped."""
    x, dy = rand(*shape, dtype=dtype, loc=0.1), rand(*shape, seed=1, dtype=dtype)
    x.flat[[0, 7]] = np.nan, -0.0                  # a NaN channel, and a value of -0.0
    dy.flat[[3, 11, 12]] = np.inf, np.nan, -np.inf
    net = Sequential(Layer(shape[1], dtype=dtype), ReLU())
    together = _together(net, x, dy)
    apart = _apart([Layer(shape[1], dtype=dtype), ReLU()], x, dy)
    for a, b in zip(together, apart):
        np.testing.assert_array_equal(a, b)
    assert net.layers[1]._y is None
    with pytest.raises(RuntimeError):
        net.layers[1].backward(dy)                 # its gradient went through the batch norm


def test_relu_inside_batch_norm_in_eval_mode_and_with_buffer_reuse():
    x, dy = rand(4, 3, 6, 6, dtype=np.float32), rand(4, 3, 6, 6, seed=1, dtype=np.float32)
    net = Sequential(BatchNorm2D(3), ReLU(), Conv2D(3, 2, 3, seed=0)).reuse_buffers()
    plain = [BatchNorm2D(3), ReLU(), Conv2D(3, 2, 3, seed=0)]
    g = rand(4, 2, 4, 4, seed=2, dtype=np.float32)
    for _ in range(2):                             # the second step reuses the buffers
        got = _together(net, x, g)
    for _ in range(2):
        want = _apart(plain, x, g)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    y_eval = net.eval().forward(list(x))           # not an ndarray: the layer-by-layer way
    with thread_count(1):
        np.testing.assert_array_equal(y_eval, net.forward(x))   # the eval program
    np.testing.assert_array_equal(
        y_eval, plain[2].eval().forward(plain[1].forward(plain[0].eval().forward(x))))


def test_batch_norm_glue_refuses_a_relu_output_of_another_shape():
    x = rand(2, 3, 4, dtype=np.float32)
    mean, invstd = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="relu_y must have the shape of x"):
        _ext.batch_norm_backward(x, x, mean, invstd, None, None, None, None,
                                 np.zeros((2, 3, 5), np.float32))
