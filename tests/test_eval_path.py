"""Eval mode's quick way through a network (Layer._infer): a Sequential given an ndarray
in eval mode lets each layer check an input shape once and then call its kernel directly.
It must give forward's results bitwise, forward's errors, and follow the layer's dtype,
set_autotune and copies of the model."""
import copy
import pickle
import threading

import numpy as np
import pytest

import fastconv
from fastconv.nn import (Conv2D, LeNet5, Linear, MaxPool2D, MobileNetV2, ResNet, Residual,
                         Sequential)

RNG = np.random.default_rng(0)


def checked_forward(layer, x):
    """forward through every layer, checking its arguments on every call (no _infer)."""
    if isinstance(layer, Sequential):
        for child in layer.layers:
            x = checked_forward(child, x)
        return x
    if isinstance(layer, Residual):
        return layer._add(x, checked_forward(layer.body, x), checked_forward(layer.shortcut, x))
    return layer.forward(x)


def lenet_batch(n=3, dtype=np.float32):
    return RNG.standard_normal((n, 1, 32, 32)).astype(dtype)


@pytest.mark.parametrize("make, batch", [
    (lambda: LeNet5(seed=1), lenet_batch(3)),
    (lambda: LeNet5(seed=1, activation="tanh", pool="avg"), lenet_batch(1)),
    (lambda: ResNet(depth=20, seed=2), RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)),
    (lambda: MobileNetV2(seed=3, width=0.5),
     RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)),
], ids=["lenet5", "lenet5_tanh_avg", "resnet20", "mobilenetv2"])
@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_quick_way_equals_checked_forward_bitwise(make, batch, fused):
    model = make().eval()
    model = model.fuse() if fused else model
    before = batch.copy()
    want = checked_forward(model, batch)
    for _ in range(2):                         # the plans made, then the plans kept
        got = model.forward(batch)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(batch, before)       # the input is never modified


def test_each_call_returns_a_new_array():
    model = LeNet5(seed=0).eval()
    x = lenet_batch(1)
    first = model.forward(x)
    kept = first.copy()
    second = model.forward(x)
    assert second is not first and np.array_equal(first, kept)


def test_wrong_shapes_raise_forwards_errors_naming_the_layer():
    model = LeNet5(seed=0).eval()
    with pytest.raises(ValueError, match=r"Conv2D.*expected input with 1 channels, got 3"):
        model.forward(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"fc1.*expected input of shape \(N, 400\), got "
                                         r"shape \(2, 256\)"):
        model.forward(np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="window"):          # too small for the pools
        model.forward(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(TypeError, match="complex"):
        model.forward(np.zeros((1, 1, 32, 32), np.complex64))
    # the same shapes again: refused again, not remembered as fine
    with pytest.raises(ValueError, match="fc1"):
        model.forward(np.zeros((2, 1, 28, 28), np.float32))


def test_other_dtypes_and_empty_batches_take_forward():
    model = LeNet5(seed=0).eval()
    x = lenet_batch(2)
    want = model.forward(x)
    assert np.array_equal(model.forward(x.astype(np.float64)),
                          checked_forward(model, x.astype(np.float64)))
    assert np.array_equal(model.forward(np.asfortranarray(x)), want)
    assert np.array_equal(model.forward(x[:, :, ::-1][:, :, ::-1]), want)
    empty = model.forward(np.zeros((0, 1, 32, 32), np.float32))
    assert empty.shape == (0, 10)


def test_astype_after_a_call_computes_in_the_new_dtype():
    model = LeNet5(seed=0).eval()
    x = lenet_batch(2)
    model.forward(x)
    model.astype(np.float64)
    got = model.forward(x.astype(np.float64))
    assert got.dtype == np.float64
    assert np.array_equal(got, checked_forward(model, x.astype(np.float64)))


def test_weights_changed_in_place_or_replaced_are_read_on_each_call():
    model = LeNet5(seed=0).eval()
    x = lenet_batch(2)
    model.forward(x)
    model.params()["conv1.weight"][...] *= 2           # as an optimizer step does
    model.load_state_dict(LeNet5(seed=5).state_dict())  # new arrays
    assert np.array_equal(model.forward(x), LeNet5(seed=5).eval().forward(x))


def test_autotune_turned_on_and_off_between_calls():
    model = ResNet(depth=20, seed=0).eval().fuse()
    x = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = checked_forward(model, x)
    fastconv.set_autotune(True)
    try:
        tuned = model.forward(x)
    finally:
        fastconv.set_autotune(False)
    scale = np.abs(want).max()
    assert np.abs(tuned - want).max() <= 1e-4 * scale
    assert np.array_equal(model.forward(x), want)


def test_copies_and_pickles_after_calls_run_their_own_weights():
    model = LeNet5(seed=0).eval()
    x = lenet_batch(2)
    model.forward(x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        clone.params()["fc3.bias"][...] += 1
        assert np.allclose(clone.forward(x), model.forward(x) + 1, atol=1e-5)


def test_a_layer_left_in_training_mode_keeps_training_behaviour():
    model = Sequential(Conv2D(1, 2, 3, seed=0), MaxPool2D(2), name="net").eval()
    model.layers[0].train()
    x = RNG.standard_normal((1, 1, 8, 8)).astype(np.float32)
    model.forward(x)
    assert model.layers[0]._x is x                     # kept for backward, as forward does


def test_threads_share_one_model():
    model = Sequential(Conv2D(1, 4, 3, seed=0, activation="relu"), MaxPool2D(2),
                       Conv2D(4, 4, 3, seed=1), name="net").eval()
    inputs = [RNG.standard_normal((n, 1, 20, 20)).astype(np.float32) for n in (1, 2, 3, 4)]
    want = [checked_forward(model, x) for x in inputs]
    failures = []

    def work(i):
        for _ in range(50):
            if not np.array_equal(model.forward(inputs[i]), want[i]):
                failures.append(i)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures


def test_linear_alone_and_batch_one():
    layer = Linear(400, 120, seed=0).eval()
    x = RNG.standard_normal((1, 400)).astype(np.float32)
    want = x.astype(np.float64) @ layer.params()["weight"].T.astype(np.float64)
    assert np.abs(layer._infer(x) - want).max() <= 1e-5 * np.abs(want).max()
