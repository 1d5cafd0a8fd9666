"""Eval mode's quick way through a network (Layer._infer): a Sequential given an ndarray
in eval mode runs an eval-mode program (fastconv.nn.program: the whole network in one C
call) where its layers have steps, else lets each layer check an input shape once and then
call its kernel directly. Both must give forward's results bitwise (a large batch run in
chunks: within float rounding), forward's errors, and follow the layers' parameters,
dtype, structure, set_autotune, the thread count and copies of the model."""
import copy
import pickle
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _ext
from fastconv.nn import (AvgPool2D, BatchNorm2D, Conv2D, Dropout, Flatten, GlobalAvgPool2D, Identity,
                         LeNet5, Linear, MaxPool2D, MobileNetV2, ReLU, ResNet, Residual,
                         Sequential, Tanh)
from fastconv.nn import program as program_module
from fastconv.nn.layers import ZeroPadShortcut
from fastconv.nn.program import InferenceProgram

from conftest import threads_in_effect

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


def test_a_program_runs_the_direct_variant_autotuning_chose(monkeypatch, tmp_path):
    """Autotuning choosing the direct forward by filters for every convolution: the
    program's steps run it (the C counter), with the layer-by-layer values."""
    from fastconv import autotune
    monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", str(tmp_path / "autotune.json"))
    monkeypatch.setattr(autotune, "fastest", lambda candidates, run: candidates[1])
    model = LeNet5(seed=0).eval()
    x = lenet_batch(2)
    want = checked_forward(model, x)
    convs = sum(isinstance(layer, Conv2D) for layer in model.layers)
    autotune.clear_autotune()
    fastconv.set_autotune(True)
    try:
        model.forward(x)                             # tunes, then builds the program
        before = _ext.conv_direct_variant_counts()["forward"]["by_filters"]
        got = model.forward(x)
        after = _ext.conv_direct_variant_counts()["forward"]["by_filters"]
    finally:
        fastconv.set_autotune(False)
        autotune.clear_autotune()
    assert after - before == convs == 2
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


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


def program_of(model, x):
    """The eval-mode program the model keeps for inputs like x (None: none)."""
    key = (x.shape, x.dtype, program_module.program_settings())
    return model.__dict__.get("_input_plans", {}).get(key)


def small_residual_net(dtype=np.float32):
    """Every layer kind a program holds, with convolutions auto runs directly."""
    body = Sequential(Conv2D(4, 8, 3, stride=2, padding=1, activation="relu", seed=1),
                      Conv2D(8, 8, 3, padding=1, seed=2))
    norm = BatchNorm2D(4)
    for name in ("running_mean", "running_var"):
        norm.buffers()[name][...] = RNG.uniform(0.5, 1.5, 4)
    return Sequential(
        Conv2D(3, 4, 3, padding=1, activation="relu", seed=0), norm, MaxPool2D(2),
        Residual(body, ZeroPadShortcut(4, 8, 2), activation="relu"),
        Residual(Sequential(Conv2D(8, 8, 3, padding=1, seed=3), ReLU()), Identity()),
        Dropout(0.5, seed=4), AvgPool2D(2), GlobalAvgPool2D(), Linear(8, 6, seed=5), ReLU(),
        Flatten(), Linear(6, 3, seed=6), name="net").astype(dtype).eval()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, shape", [
    (lambda: LeNet5(seed=1), (1, 1, 32, 32)),
    (lambda: LeNet5(seed=1), (5, 1, 32, 32)),
    (small_residual_net, (2, 3, 16, 16)),
], ids=["lenet5-batch1", "lenet5-batch5", "residual"])
def test_a_program_runs_the_network_with_forwards_bits(make, shape, dtype):
    model = make().astype(dtype).eval()
    x = RNG.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :3] = (np.nan, np.inf, -np.inf)     # propagate as the kernels do
    want = checked_forward(model, x)
    for _ in range(2):
        got = model.forward(x)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    assert isinstance(program_of(model, x), InferenceProgram)


def test_a_program_follows_what_it_was_made_from():
    model = small_residual_net()
    x = RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)
    model.forward(x)
    first = program_of(model, x)

    def check():
        assert np.array_equal(model.forward(x), checked_forward(model, x))

    model.layers[0].params()["weight"][...] *= -1        # in place: the same program
    check()
    assert program_of(model, x) is first
    model.load_state_dict(small_residual_net().state_dict())
    check()
    model.layers[0].activation = None                    # a layer's own settings
    check()
    model.layers[3].activation = None
    check()
    model.layers[1].buffers()["running_var"][...] *= 2   # in place
    check()
    model.layers[4].body.layers.pop()                    # the structure
    check()
    model.layers.append(ReLU())
    check()
    old = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)                      # a setting the plans read
        check()
    finally:
        fastconv.set_num_threads(old)
    check()
    assert program_of(model, x) is not first


def test_layers_without_steps_run_layer_by_layer():
    model = Sequential(Conv2D(1, 2, 3, seed=0), Tanh(), MaxPool2D(2), name="net").eval()
    x = RNG.standard_normal((1, 1, 8, 8)).astype(np.float32)
    assert np.array_equal(model.forward(x), checked_forward(model, x))
    assert program_of(model, x) is None
    only_views = Sequential(Flatten(), Identity(), name="views").eval()
    assert np.array_equal(only_views.forward(x), x.reshape(1, -1))


def test_a_large_workspace_runs_layer_by_layer(monkeypatch):
    monkeypatch.setattr(program_module, "PROGRAM_MAX_WORKSPACE_BYTES", 1024)
    model = LeNet5(seed=0).eval()
    x = lenet_batch(2)
    assert np.array_equal(model.forward(x), checked_forward(model, x))
    assert program_of(model, x) is None


def test_workspace_values_alive_together_never_overlap():
    builder = program_module.ProgramBuilder((2, 3, 16, 16), np.float32)
    model = small_residual_net()
    out = builder.emit(model, builder.input)
    places = builder._place(out.root)
    for a in range(1, len(builder.root_sizes)):
        for b in range(a + 1, len(builder.root_sizes)):
            if places[a][0] != "workspace" or places[b][0] != "workspace":
                continue
            alive_together = (builder.root_defined[b] <= builder.root_last_use[a]
                              and builder.root_defined[a] <= builder.root_last_use[b])
            (_, start_a), (_, start_b) = places[a], places[b]
            apart = (start_a + builder.root_sizes[a] <= start_b
                     or start_b + builder.root_sizes[b] <= start_a)
            assert apart or not alive_together, (a, b)


def test_the_kernel_program_refuses_wrong_buffers():
    model = Sequential(Linear(4, 3, seed=0), name="net").eval()
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    model.forward(x)
    kernel = program_of(model, x)._kernel.program
    y, workspace = np.empty((2, 3), np.float32), np.empty(0, np.float32)
    kernel.run(x, y, workspace)
    assert np.array_equal(y, checked_forward(model, x))
    for bad in ((x.astype(np.float64), y, workspace), (x[:1], y, workspace),
                (x, np.empty((2, 2), np.float32), workspace)):
        with pytest.raises(ValueError, match="program: .* must hold"):
            kernel.run(*bad)
    with pytest.raises(ValueError, match="not C-contiguous"):
        kernel.run(np.ones((2, 8), np.float32)[:, ::2], y, workspace)   # not contiguous
    with pytest.raises(ValueError, match="x must hold 16 values"):
        kernel.run(x, y, workspace, chunks=2)                # chunks: x holds one input
    with pytest.raises(ValueError, match="chunks and threads must be at least 1"):
        kernel.run(x, y, workspace, chunks=0)
    with pytest.raises(ValueError, match="must hold 12 values"):
        _ext.Program([dict(kind="linear", input=("input", 0), output=("output", 0),
                           sizes=(2, 4, 3), weight=np.zeros(11, np.float32))],
                     "float32", 8, 6, 0)


@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_a_program_tests_the_values_as_auto_does(algorithm, monkeypatch):
    """A step whose plan sums in another order than direct runs direct for the values that
    need it (plan_for_values): an inf weight, where the padding's zeros would make NaN, and
    sums near the overflow threshold."""
    monkeypatch.setattr(fastconv.plan, "auto_algorithm", lambda *args, **kw: algorithm)
    fastconv.plan._plan.cache_clear()
    try:
        model = Sequential(Conv2D(8, 8, 3, padding=1, seed=0), ReLU(), name="net").eval()
        x = RNG.standard_normal((1, 8, 6, 6)).astype(np.float32)
        assert fastconv.conv_plan(x.shape, (8, 8, 3, 3), padding=1).forward == algorithm
        weight = model.layers[0].params()["weight"]
        for weight_value in (np.inf, 1.0, np.inf):
            weight[0, 0, 0, 0] = weight_value              # in place: the same program
            for scale in (1.0, 1e37):
                xs = (x * scale).astype(np.float32)
                assert np.array_equal(model.forward(xs), checked_forward(model, xs),
                                      equal_nan=True)
        assert isinstance(program_of(model, x), InferenceProgram)
    finally:
        fastconv.plan._plan.cache_clear()


def test_alternating_settings_keep_a_program_for_each(monkeypatch):
    built = []

    def counting(*args):
        built.append(args)
        return program_module.build_program(*args)
    monkeypatch.setattr(fastconv.nn.layers, "build_program", counting)
    model = LeNet5(seed=0).eval()
    x = lenet_batch(1)
    want = checked_forward(model, x)
    try:
        for turn in range(6):
            fastconv.set_autotune(turn % 2 == 1)
            assert np.abs(model.forward(x) - want).max() <= 1e-5 * np.abs(want).max()
    finally:
        fastconv.set_autotune(False)
    assert len(built) == 2


def test_option_b_shortcuts_run_in_the_program():
    """A 1x1 convolution at stride 2 reads every other row and column: the program
    subsamples, then convolves at stride 1, with forward's bits."""
    model = ResNet(depth=20, shortcut="B", seed=4).eval()
    x = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    for net in (model, model.fuse()):
        assert np.array_equal(net.forward(x), checked_forward(net, x))
        assert isinstance(program_of(net, x), InferenceProgram)
    odd = Sequential(Conv2D(3, 4, 1, stride=3, seed=0), name="net").eval()
    x = RNG.standard_normal((1, 3, 10, 11)).astype(np.float32)
    assert np.array_equal(odd.forward(x), checked_forward(odd, x))
    assert isinstance(program_of(odd, x), InferenceProgram)
    padded = Sequential(Conv2D(3, 4, 1, stride=3, padding=1, seed=0), name="net").eval()
    assert np.array_equal(padded.forward(x), checked_forward(padded, x))
    assert program_of(padded, x) is None               # layer by layer


def chunked_program(model, x):
    """model's program for x, checked to run in chunks, and its output."""
    y = model.forward(x)
    program = program_of(model, x)
    assert isinstance(program, InferenceProgram)
    kernel = program._kernel
    assert kernel.chunks > 1 and len(x) <= kernel.images < len(x) + kernel.chunks
    return program, y


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, batch", [
    (lambda: LeNet5(seed=1), 9), (small_residual_net, 7),
    (lambda: ResNet(depth=20, seed=2).eval().fuse(), 5)], ids=["lenet5", "residual", "resnet20"])
def test_a_large_batch_runs_in_chunks_within_rounding(make, batch, dtype, count, threads,
                                                      monkeypatch):
    """Each chunk's kernels run at the chunk's batch size on one thread, with choices of
    their own: the output equals the whole batch's layer-by-layer pass within rounding, and
    a NaN stays in its own image. The caller's thread count holds after the run."""
    monkeypatch.setattr(program_module, "PROGRAM_CHUNK_BYTES", 1 << 14)
    model = make().astype(dtype).eval()
    shape = (batch,) + ((1, 32, 32) if isinstance(model, LeNet5) else
                        (3, 16, 16) if model.name == "net" else (3, 32, 32))
    x = RNG.standard_normal(shape).astype(dtype)
    x[1, 0, 2, 2] = np.nan
    before = x.copy()
    threads(count)
    want = checked_forward(model, x)
    program, got = chunked_program(model, x)
    in_effect = threads_in_effect(count)
    assert program._kernel.threads == min(in_effect, program._kernel.chunks)
    assert fastconv.get_num_threads() == in_effect
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(got[1]).all()
    finite = ~np.isnan(want)
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    assert np.abs(got - want)[finite].max() <= tolerance * np.abs(want[finite]).max()
    assert np.array_equal(x, before, equal_nan=True)


def test_chunks_of_equal_size_the_last_padded_with_zero_images(monkeypatch):
    monkeypatch.setattr(program_module, "PROGRAM_CHUNK_BYTES", 1 << 14)
    model = small_residual_net()
    x = RNG.standard_normal((7, 3, 16, 16)).astype(np.float32)
    program, got = chunked_program(model, x)
    kernel = program._kernel
    assert kernel.images % kernel.chunks == 0 and kernel.images > len(x)   # padded
    assert kernel.workspace.nbytes <= kernel.threads * (1 << 14)
    assert got.shape == (7, 3) and np.isfinite(got).all()
    for i in range(len(x)):                                 # image by image, unchunked
        alone = checked_forward(model, x[i:i + 1])
        assert np.allclose(got[i:i + 1], alone, rtol=1e-5, atol=1e-6)


def test_a_chunk_over_the_workspace_limit_runs_layer_by_layer(monkeypatch):
    """One image's values over PROGRAM_MAX_WORKSPACE_BYTES: no chunk fits, the layers run
    one by one (bitwise as forward)."""
    monkeypatch.setattr(program_module, "PROGRAM_CHUNK_BYTES", 1 << 14)
    monkeypatch.setattr(program_module, "PROGRAM_MAX_WORKSPACE_BYTES", 1024)
    model = LeNet5(seed=5).eval()
    x = lenet_batch(9)
    assert np.array_equal(model.forward(x), checked_forward(model, x))
    assert program_of(model, x) is None


def test_chunks_hold_enough_images_for_wide_pointwise_products(monkeypatch):
    """A pointwise convolution on 4x4 planes multiplies PROGRAM_MIN_POINTWISE_COLUMNS (128)
    columns at once: chunks of at least 8 images, where PROGRAM_CHUNK_BYTES alone would
    hold fewer, and as many as fit PROGRAM_MAX_WORKSPACE_BYTES where 8 do not."""
    monkeypatch.setattr(program_module, "PROGRAM_CHUNK_BYTES", 1 << 14)
    model = Sequential(Conv2D(3, 16, 3, stride=2, padding=1, activation="relu", seed=1),
                       Conv2D(16, 32, 1, activation="relu", seed=2), GlobalAvgPool2D(),
                       Linear(32, 5, seed=3)).eval()
    x = RNG.standard_normal((48, 3, 8, 8)).astype(np.float32)
    program, got = chunked_program(model, x)
    assert (program._kernel.images, program._kernel.chunks) == (48, 6)
    assert np.abs(got - checked_forward(model, x)).max() <= 1e-5 * np.abs(got).max()
    image_bytes = 4 * (16 * 16 + 32 * 16 + 32)    # the values of one image in the workspace
    assert 1 << 14 < 6 * image_bytes
    monkeypatch.setattr(program_module, "PROGRAM_MAX_WORKSPACE_BYTES", 6 * image_bytes)
    model = copy.deepcopy(model)                  # no program kept from before
    program, _ = chunked_program(model, x)
    assert (program._kernel.images, program._kernel.chunks) == (48, 8)


def test_threads_share_one_chunked_program(monkeypatch):
    monkeypatch.setattr(program_module, "PROGRAM_CHUNK_BYTES", 1 << 14)
    model = LeNet5(seed=4).eval()
    x = lenet_batch(12)
    _, want = chunked_program(model, x)
    results, errors = [], []

    def call():
        try:
            for _ in range(20):
                results.append(model.forward(x))
        except Exception as error:          # noqa: BLE001 (reported below)
            errors.append(error)
    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 60
    assert all(np.array_equal(result, want) for result in results)
