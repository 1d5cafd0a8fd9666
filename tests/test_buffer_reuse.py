"""Buffer reuse on the training path: the out= arguments of conv2d, conv2d_backward and the
pooling functions (checked like NumPy's, results identical to the allocating path), and
layers' reuse_buffers() (bitwise-identical training, no surprise aliasing, bounded memory)."""
import tracemalloc

import numpy as np
import pytest

import fastconv
from fastconv.nn.layers import (AvgPool2D, BatchNorm2D, Conv2D, GlobalAvgPool2D, Linear,
                                MaxPool2D, ReLU, Residual, Sequential, Tanh)
from fastconv.nn.losses import softmax_cross_entropy
from fastconv.nn.models import LeNet5
from fastconv.nn import optim
from fastconv.nn.optim import SGD, Adam
from fastconv.pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# -- out= gives the allocating path's result, in the caller's array -------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
@pytest.mark.parametrize("flip", [False, True])
def test_conv2d_out_matches_allocating_path(dtype, algorithm, flip):
    x, w, b = rand(3, 4, 11, 10, dtype=dtype), rand(6, 4, 3, 3, seed=1, dtype=dtype), \
        rand(6, seed=2, dtype=dtype)
    kw = dict(stride=2, padding=1, algorithm=algorithm, flip=flip)
    y = fastconv.conv2d(x, w, b, **kw)
    out = np.full_like(y, np.nan)                 # stale contents must not leak through
    assert fastconv.conv2d(x, w, b, **kw, out=out) is out
    assert same_bits(out, y)
    g = rand(*y.shape, seed=3, dtype=dtype)
    expected = fastconv.conv2d_backward(g, x, w, **kw)
    outs = tuple(np.full_like(a, np.nan) for a in expected)
    got = fastconv.conv2d_backward(g, x, w, **kw, out=outs)
    for o, r, e in zip(outs, got, expected):
        assert r is o and same_bits(o, e)
    # None entries are allocated; without the input gradient grad_x stays None
    gx, gw, gb = fastconv.conv2d_backward(g, x, w, **kw, input_grad=False,
                                          out=(None, outs[1], None))
    assert gx is None and gw is outs[1] and same_bits(gb, expected[2])


def test_pooling_out_matches_allocating_path():
    x = rand(2, 3, 9, 8)
    y, indices, argmax = max_pool2d(x, 3, 2, 1, return_indices=True, return_argmax=True)
    outs = (np.empty_like(y), np.empty_like(indices), np.empty_like(argmax))
    got = max_pool2d(x, 3, 2, 1, return_indices=True, return_argmax=True, out=outs)
    assert all(r is o and same_bits(o, e) for r, o, e in zip(got, outs, (y, indices, argmax)))
    out = np.empty_like(y)
    assert max_pool2d(x, 3, 2, 1, out=out) is out and same_bits(out, y)
    assert max_pool2d(x, 3, 2, 1, out=(out,)) is out
    g = rand(*y.shape, seed=1)
    for kw in ({}, {"argmax": argmax}, {"indices": indices}):
        out = np.full_like(x, np.nan)
        assert max_pool2d_backward(g, x, 3, 2, 1, **kw, out=out) is out
        assert same_bits(out, max_pool2d_backward(g, x, 3, 2, 1, **kw))
    ya = avg_pool2d(x, 3, 2, 1)
    out = np.full_like(ya, np.nan)
    assert avg_pool2d(x, 3, 2, 1, out=out) is out and same_bits(out, ya)
    out = np.full_like(x, np.nan)
    assert avg_pool2d_backward(g, x, 3, 2, 1, out=out) is out
    assert same_bits(out, avg_pool2d_backward(g, x, 3, 2, 1))


# -- out= validation --------------------------------------------------------------------------
X, W = rand(2, 3, 8, 8), rand(4, 3, 3, 3, seed=1)
Y_SHAPE = (2, 4, 6, 6)


@pytest.mark.parametrize("out,exc,words", [
    (np.empty(Y_SHAPE), TypeError, "out must have dtype float32"),
    (np.empty((2, 4, 6, 5), np.float32), ValueError, "expected out of shape (2, 4, 6, 6)"),
    (np.empty((2, 4, 6, 12), np.float32)[..., ::2], ValueError, "C-contiguous"),
    ([[0.0]], TypeError, "out must be a NumPy array"),
    ((np.empty(Y_SHAPE, np.float32),) * 2, ValueError, "tuple of 1"),
])
def test_conv2d_rejects_bad_out(out, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        fastconv.conv2d(X, W, out=out)


def test_out_must_be_writeable_and_separate_from_inputs():
    out = np.empty(Y_SHAPE, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fastconv.conv2d(X, W, out=out)
    x = np.zeros((2, 4, 8, 8), np.float32)
    w = rand(4, 4, 1, 1)
    with pytest.raises(ValueError, match="out overlaps x"):
        fastconv.conv2d(x, w, out=x)              # same shape: only the overlap is wrong
    with pytest.raises(ValueError, match="out overlaps x"):
        max_pool2d(x, 1, out=x)
    g = rand(*Y_SHAPE, seed=2)
    gw = np.empty_like(W)
    with pytest.raises(ValueError, match=r"out\[2\] \(grad_bias\) overlaps out\[1\]"):
        fastconv.conv2d_backward(g, X, W, out=(None, gw, gw.reshape(-1)[:4]))
    storage = np.zeros(1000, np.float32)          # grad_x's memory runs into grad_out's
    g_shared = storage[:g.size].reshape(g.shape)
    with pytest.raises(ValueError, match=r"out\[0\] \(grad_x\) overlaps grad_out"):
        fastconv.conv2d_backward(g_shared, X, W,
                                 out=(storage[100:100 + X.size].reshape(X.shape), None, None))
    with pytest.raises(ValueError, match="must be None when input_grad is False"):
        fastconv.conv2d_backward(g, X, W, input_grad=False,
                                 out=(np.empty_like(X), None, None))
    with pytest.raises(TypeError, match=r"tuple of 3"):
        fastconv.conv2d_backward(g, X, W, out=np.empty_like(X))
    with pytest.raises(TypeError, match=r"out\[1\] \(argmax\) must have dtype uint8"):
        max_pool2d(X, 2, return_argmax=True, out=(None, np.empty((2, 3, 4, 4), np.int64)))
    with pytest.raises(ValueError, match="expected out of shape"):
        avg_pool2d_backward(rand(2, 3, 4, 4), X, 2, out=np.empty((2, 3, 4, 4), np.float32))


def test_failed_out_check_leaves_inputs_and_out_untouched():
    x, w = X.copy(), W.copy()
    out = np.full(Y_SHAPE, 7, np.float64)
    with pytest.raises(TypeError):
        fastconv.conv2d(x, w, out=out)
    assert same_bits(x, X) and same_bits(w, W) and np.all(out == 7)


# -- layers: reuse_buffers ----------------------------------------------------------------------
def train(model, optimizer, steps, seed=0, batch=16):
    """Losses, logits and parameters after `steps` steps on fixed random batches."""
    rng = np.random.default_rng(seed)
    losses, logits_seen = [], []
    for _ in range(steps):
        x = rng.standard_normal((batch, 1, 32, 32)).astype(model.dtype)
        y = rng.integers(0, 10, batch)
        logits = model.forward(x)
        loss, grad = softmax_cross_entropy(logits, y)
        model.backward(grad, input_grad=False)
        optimizer.step()
        losses.append(loss)
        logits_seen.append(logits)
    return losses, logits_seen, model.state_dict()


@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("tanh", "avg")])
@pytest.mark.parametrize("make_opt", [lambda m: SGD(m, lr=0.05, momentum=0.9, nesterov=True),
                                      lambda m: Adam(m, lr=2e-3)])
def test_reuse_buffers_gives_bitwise_identical_training(activation, pool, make_opt):
    runs = []
    for reuse in (False, True):
        model = LeNet5(seed=3, activation=activation, pool=pool).reuse_buffers(reuse)
        runs.append(train(model, make_opt(model), steps=6))
    (loss_a, logits_a, state_a), (loss_b, logits_b, state_b) = runs
    assert loss_a == loss_b
    assert all(same_bits(a, b) for a, b in zip(logits_a, logits_b))
    assert state_a.keys() == state_b.keys()
    assert all(same_bits(state_a[k], state_b[k]) for k in state_a)


def test_reuse_buffers_input_gradient_and_eval_match():
    net_a = Sequential(Conv2D(2, 3, 3, activation="relu", seed=0), MaxPool2D(2), ReLU(),
                       Conv2D(3, 4, 3, padding=1, seed=1), AvgPool2D(2), Tanh())
    net_b = Sequential(Conv2D(2, 3, 3, activation="relu", seed=0), MaxPool2D(2), ReLU(),
                       Conv2D(3, 4, 3, padding=1, seed=1), AvgPool2D(2), Tanh()).reuse_buffers()
    for seed in range(3):
        x = rand(2, 2, 10, 10, seed=seed)
        ya, yb = net_a.forward(x), net_b.forward(x)
        g = rand(*ya.shape, seed=10 + seed)
        assert same_bits(ya, yb)
        assert same_bits(net_a.backward(g), net_b.backward(g))
        assert all(same_bits(a, b) for a, b in zip(net_a.grads().values(),
                                                   net_b.grads().values()))
    net_a.eval(), net_b.eval()
    x = rand(5, 2, 10, 10, seed=9)
    assert same_bits(net_a.forward(x), net_b.forward(x))


def test_sequential_with_reuse_returns_fresh_arrays():
    """What a model returns stays the caller's: the next step does not overwrite it."""
    model = LeNet5(seed=0).reuse_buffers()
    x1, x2 = rand(4, 1, 32, 32, seed=1), rand(4, 1, 32, 32, seed=2)
    logits1 = model.forward(x1)
    kept = logits1.copy()
    gx1 = model.backward(np.ones_like(logits1))
    kept_gx = gx1.copy()
    logits2 = model.forward(x2)
    model.backward(np.ones_like(logits2))
    assert logits2 is not logits1 and same_bits(logits1, kept)
    assert same_bits(gx1, kept_gx)
    assert model.reusing_buffers and model["conv1"].reusing_buffers


def test_nested_sequential_with_reuse_hands_its_arrays_to_its_container():
    """Inside a container a Sequential returns its layers' kept arrays (the container uses
    them at once); the outermost still copies. Training stays bitwise the same."""
    def block(seed):
        body = Sequential(Conv2D(3, 3, 3, padding=1, seed=seed), BatchNorm2D(3), ReLU(),
                          Conv2D(3, 3, 3, padding=1, seed=seed + 1), BatchNorm2D(3))
        return Sequential(Residual(body, activation="relu"), Residual(
            Sequential(Conv2D(3, 3, 3, padding=1, seed=seed + 2), BatchNorm2D(3)),
            activation="relu"), GlobalAvgPool2D(), Linear(3, 10, seed=seed + 3))

    plain, reused = block(0), block(0).reuse_buffers()
    for step in range(3):
        x = rand(4, 3, 8, 8, seed=step)
        ya, yb = plain.forward(x), reused.forward(x)
        assert same_bits(ya, yb)
        g = rand(*ya.shape, seed=20 + step)
        assert same_bits(plain.backward(g), reused.backward(g))
        assert all(same_bits(a, b) for a, b in zip(plain.grads().values(),
                                                   reused.grads().values()))
    body = reused.layers[0].body
    first = body.forward(rand(4, 3, 8, 8, seed=7))
    assert body.forward(rand(4, 3, 8, 8, seed=8)) is first    # its last layer's array
    first = reused.forward(rand(4, 3, 8, 8, seed=7))
    assert reused.forward(rand(4, 3, 8, 8, seed=8)) is not first     # a copy


def test_layer_with_reuse_overwrites_its_previous_output_as_documented():
    layer = Conv2D(1, 2, 3, seed=0).reuse_buffers()
    y1 = layer.forward(rand(1, 1, 5, 5, seed=1))
    y2 = layer.forward(rand(1, 1, 5, 5, seed=2))
    assert y2 is y1                                # the kept array, rewritten
    grads_before = layer.grads()
    layer.backward(np.ones_like(y2))
    assert layer.grads()["weight"] is grads_before["weight"]   # updated in place
    # without reuse (the default) every call returns new arrays
    plain = Conv2D(1, 2, 3, seed=0)
    assert plain.forward(rand(1, 1, 5, 5)) is not plain.forward(rand(1, 1, 5, 5))
    # eval mode never hands out kept arrays; a new shape gets a new array
    layer.eval()
    assert layer.forward(rand(1, 1, 5, 5)) is not y1
    layer.train()
    assert layer.forward(rand(2, 1, 5, 5)).shape == (2, 2, 3, 3)
    assert layer.reuse_buffers(False)._kept == {}


def test_linear_and_elementwise_layers_with_reuse_match():
    for Layer in (lambda: Linear(6, 5, seed=0), ReLU, Tanh):
        a, b = Layer(), Layer().reuse_buffers()
        for seed in range(2):
            x = rand(4, 6, seed=seed)
            assert same_bits(a.forward(x), b.forward(x))
            g = rand(4, 5 if isinstance(a, Linear) else 6, seed=5 + seed)
            assert same_bits(a.backward(g), b.backward(g))
            assert all(same_bits(a.grads()[k], b.grads()[k]) for k in a.grads())
    # an input NumPy would promote (float64 into a float32 ReLU) is not forced into a kept array
    relu = ReLU().reuse_buffers()
    relu.forward(rand(3, dtype=np.float32))
    assert relu.backward(rand(3, dtype=np.float64)).dtype == np.float64


def test_memory_does_not_grow_over_many_steps_with_reuse():
    model = LeNet5(seed=0).reuse_buffers()
    optimizer = SGD(model, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 32)

    def step():
        logits = model.forward(x)
        _, grad = softmax_cross_entropy(logits, y)
        model.backward(grad, input_grad=False)
        optimizer.step()
    for _ in range(3):
        step()
    tracemalloc.start()
    try:
        step()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(50):
            step()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 64 * 1024          # nothing accumulates step after step
    assert peak - start < 256 * 1024        # and a step allocates little (no activations)


# -- optimizers: in-place updates into scratch arrays, the same bits as the plain formulas --
def plain_sgd(params, grads, velocity, lr, momentum, nesterov, weight_decay):
    for name, p in params.items():
        g = grads[name]
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            if name not in velocity:
                velocity[name] = g.copy()
            else:
                velocity[name] = velocity[name] * momentum + g
            g = g + momentum * velocity[name] if nesterov else velocity[name]
        params[name] = p - lr * g


def plain_adam(params, grads, m, v, t, lr, b1, b2, eps, weight_decay):
    for name, p in params.items():
        g = grads[name]
        if weight_decay:
            g = g + weight_decay * p
        m[name] = m.get(name, np.zeros_like(p)) * b1 + (1 - b1) * g
        v[name] = v.get(name, np.zeros_like(p)) * b2 + (1 - b2) * g * g
        m_hat, v_hat = m[name] / (1 - b1 ** t), v[name] / (1 - b2 ** t)
        params[name] = p - lr * m_hat / (np.sqrt(v_hat) + eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,settings", [
    ("sgd", dict(momentum=0.0, nesterov=False, weight_decay=0.0)),
    ("sgd", dict(momentum=0.9, nesterov=False, weight_decay=0.0)),
    ("sgd", dict(momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("adam", dict(weight_decay=0.0)),
    ("adam", dict(weight_decay=1e-3)),
])
def test_optimizer_updates_bitwise_equal_plain_formulas(dtype, kind, settings):
    model = LeNet5(seed=0, dtype=dtype)
    expected = {k: p.copy() for k, p in model.params().items()}
    rng = np.random.default_rng(1)
    if kind == "sgd":
        opt, velocity = SGD(model, lr=0.1, **settings), {}
    else:
        opt, m, v = Adam(model, lr=2e-3, **settings), {}, {}
    for t in range(1, 4):
        for g in model.grads().values():
            g[...] = rng.standard_normal(g.shape)
        grads = {k: g.copy() for k, g in model.grads().items()}
        opt.step()
        if kind == "sgd":
            plain_sgd(expected, grads, velocity, 0.1, **settings)
        else:
            plain_adam(expected, grads, m, v, t, 2e-3, 0.9, 0.999, 1e-8, **settings)
    assert all(same_bits(p, expected[k]) for k, p in model.params().items())


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_non_contiguous_parameters_take_the_numpy_path_with_the_same_bits(kind, monkeypatch):
    class NoCUpdates:                              # the one-pass C updates must not run
        def __getattr__(self, name):
            raise AssertionError(f"the C update {name} ran on non-contiguous parameters")
    monkeypatch.setattr(optim, "_ext", NoCUpdates())

    class Model:                                   # anything with params() and grads()
        def __init__(self):
            self.p = {"w": rand(6, 5).T, "b": rand(7, seed=1, dtype=np.float64)[::2]}
            self.g = {"w": np.zeros((5, 6), np.float32), "b": np.zeros(4)}

        def params(self):
            return self.p

        def grads(self):
            return self.g
    model = Model()
    expected, m, v = {k: p.copy() for k, p in model.p.items()}, {}, {}
    if kind == "adam":
        opt = Adam(model, lr=1e-2, weight_decay=1e-2)
    else:
        opt = SGD(model, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-2)
    for t in range(1, 4):
        for k, g in model.g.items():
            g[...] = rand(*g.shape, seed=10 + t, dtype=g.dtype)
        opt.step()
        grads = {k: g.copy() for k, g in model.g.items()}
        if kind == "adam":
            plain_adam(expected, grads, m, v, t, 1e-2, 0.9, 0.999, 1e-8, 1e-2)
        else:
            plain_sgd(expected, grads, m, 1e-2, 0.9, True, 1e-2)
    assert all(same_bits(np.ascontiguousarray(model.p[k]), expected[k]) for k in expected)
