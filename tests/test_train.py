"""fastconv.nn.training and the CLI: history, progress, checkpoints (atomic, exact resume,
truncated or foreign files) and ``python -m fastconv train/evaluate`` on tiny runs."""
import csv
import json
import os
import sys

import numpy as np
import pytest

import fastconv
from fastconv.nn import checkpoint as ckpt
from fastconv.cli import main
from fastconv.nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastconv.nn.layers import Dropout, Flatten, Identity, Linear, ReLU, Sequential
from fastconv.nn.models import LeNet5
from fastconv.nn.optim import SGD, Adam, CosineAnnealingLR, StepLR
from fastconv.nn.training import HISTORY_KEYS, confusion_matrix, evaluate, fit
from train_helpers import synthetic_digits, write_synthetic_mnist


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_digits(192, seed=0), synthetic_digits(64, seed=1)


def test_fit_returns_a_history_per_epoch(tiny_data):
    (x, y), validation = tiny_data
    calls = []
    history = fit(LeNet5(seed=0), x, y, epochs=2, batch_size=32, seed=0, progress=False,
                  validation_data=validation, callbacks=[lambda e, h: calls.append(e)])
    assert set(history) == set(HISTORY_KEYS) and history["epoch"] == [1, 2]
    assert all(len(history[k]) == 2 for k in HISTORY_KEYS)
    assert history["loss"][1] < history["loss"][0]
    assert all(0 <= a <= 1 for a in history["accuracy"] + history["val_accuracy"])
    assert all(v > 0 for v in history["images_per_s"]) and calls == [1, 2]
    json.dumps(history)                                   # plain numbers, serialisable


def test_fit_without_validation_and_with_prepared_inputs(tiny_data):
    (x, y), _ = tiny_data
    model = LeNet5(seed=0)
    prepared = model.prepare(x)
    history = fit(model, prepared, y, epochs=1, batch_size=50, progress=False,
                  optimizer=SGD(model, lr=0.01, momentum=0.9))
    assert history["val_accuracy"] == [None]
    with pytest.raises(ValueError, match="192 images but 3 labels"):
        fit(model, x, y[:3], epochs=1)


def test_fit_trains_bitwise_as_a_plain_loop_and_restores_buffer_reuse(tiny_data):
    """fit reuses buffers (layers' and its batch array) while it trains: the same bits as
    the textbook loop with new arrays every step, the last batch smaller (192 = 3 x 50 +
    42), and the model handed back as it came (reuse off, nothing kept)."""
    from fastconv.nn.losses import softmax_cross_entropy
    from fastconv.nn.optim import make_optimizer
    (x, y), _ = tiny_data
    model = LeNet5(seed=0)
    fit(model, x, y, epochs=2, batch_size=50, seed=3, progress=False, optimizer="sgd")
    assert not model.reusing_buffers and model["conv1"]._kept == {}
    ref = LeNet5(seed=0)
    ref.fit_preprocessing(x)
    inputs, labels = ref.prepare(x), np.asarray(y)
    optimizer, rng = make_optimizer("sgd", ref), np.random.default_rng(3)
    for _ in range(2):
        order = rng.permutation(len(inputs))
        for start in range(0, len(inputs), 50):
            batch = order[start:start + 50]
            _, grad = softmax_cross_entropy(ref.forward(inputs[batch]), labels[batch])
            ref.backward(grad, input_grad=False)
            optimizer.step()
    got, want = model.state_dict(), ref.state_dict()
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)


@pytest.mark.parametrize("settings, error, words", [
    (dict(augment=5), TypeError,
     "fit: augment must be a callable augment(batch, rng) -> batch, or None, got int 5"),
    (dict(schedule="cosine"), TypeError, "fit: schedule must be a callable "
     "schedule(optimizer) -> schedule (e.g. lambda o: CosineAnnealingLR(o, epochs)), or None, "
     "got str 'cosine'"),
    (dict(schedule=CosineAnnealingLR(SGD(Linear(2, 2), lr=0.1), 4)), TypeError,
     "fit: schedule must be a callable schedule(optimizer) -> schedule"),
    (dict(schedule=lambda optimizer: None), TypeError,
     "fit: schedule(optimizer) must return a learning-rate schedule (StepLR, "
     "CosineAnnealingLR, ...), got NoneType"),
    (dict(schedule=lambda optimizer: StepLR(SGD(Linear(2, 2), lr=0.1), 2)), ValueError,
     "fit: schedule(optimizer) returned a schedule of another optimizer"),
])
def test_fit_refuses_a_bad_augment_or_schedule_before_touching_the_model(tiny_data, settings,
                                                                         error, words):
    (x, y), _ = tiny_data
    model = LeNet5(seed=0)
    before = model.state_dict()
    with pytest.raises(error) as info:
        fit(model, x[:64], y[:64], epochs=1, batch_size=32, progress=False, **settings)
    assert words in str(info.value)
    after = model.state_dict()                 # not even the input statistics were learnt
    assert all(np.array_equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("augment, error, words", [
    (lambda batch, rng: None, TypeError, "fit: augment(batch, rng) must return an array of "
                                         "the batch's shape (32, 1, 32, 32), got NoneType"),
    (lambda batch, rng: batch[:, :, 2:-2, 2:-2], ValueError,
     "fit: augment(batch, rng) must return an array of the batch's shape (32, 1, 32, 32), "
     "got shape (32, 1, 28, 28)"),
])
def test_fit_refuses_an_augmented_batch_of_another_shape_before_the_step(tiny_data, augment,
                                                                         error, words):
    (x, y), _ = tiny_data
    model = LeNet5(seed=0)
    inputs = model.prepare(x[:64])
    before = model.state_dict()
    with pytest.raises(error) as info:
        fit(model, inputs, y[:64], epochs=1, batch_size=32, progress=False, augment=augment)
    assert words in str(info.value)
    after = model.state_dict()
    assert all(np.array_equal(after[k], v) for k, v in before.items())


def test_evaluate_and_confusion_matrix(tiny_data):
    from fastconv.nn.losses import softmax_cross_entropy
    _, (x, y) = tiny_data
    model = LeNet5(seed=0)
    loss, accuracy = evaluate(model, x, y)
    logits = model.forward(model.prepare(x))
    assert loss == pytest.approx(softmax_cross_entropy(logits, np.asarray(y))[0], rel=1e-6)
    predicted = model.predict(x)
    assert accuracy == pytest.approx(np.mean(predicted == y))
    counts = confusion_matrix(y, predicted)
    assert np.trace(counts) / len(y) == pytest.approx(accuracy)
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(y, minlength=10))
    np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(predicted, minlength=10))
    np.testing.assert_array_equal(confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], classes=3),
                                  [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_progress_falls_back_to_a_plain_text_line_without_tqdm(tiny_data, monkeypatch, capsys):
    (x, y), _ = tiny_data
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)     # import tqdm.auto -> ImportError
    fit(LeNet5(seed=0), x[:64], y[:64], epochs=1, batch_size=32, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "64/64" in err and "img/s" in err and "loss" in err


def test_progress_uses_tqdm_when_installed(tiny_data, capsys):
    pytest.importorskip("tqdm")
    (x, y), _ = tiny_data
    fit(LeNet5(seed=0), x[:64], y[:64], epochs=1, batch_size=32, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "img/s" in err and "64/64" in err


# -- checkpoints ---------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path, tiny_data):
    (x, y), _ = tiny_data
    model = LeNet5(seed=0, activation="tanh", pool="avg")
    optimizer = Adam(model)
    rng = np.random.default_rng(3)
    fit(model, x[:64], y[:64], epochs=1, optimizer=optimizer, progress=False)
    rng.permutation(10)
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer, rng, epoch=4,
                           history={"loss": [1.0]}, meta={"dataset": "x"})
    state = load_checkpoint(path)
    assert state["epoch"] == 4 and state["history"] == {"loss": [1.0]}
    assert state["meta"] == {"dataset": "x"} and state["model_config"] == model.config()
    assert state["rng_state"] == rng.bit_generator.state
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state["model"][key], value)
        assert state["model"][key].dtype == value.dtype
    restored = Adam(LeNet5(seed=1, activation="tanh", pool="avg"))
    restored.load_state_dict(state["optimizer"])
    assert restored.steps == optimizer.steps and restored.lr == optimizer.lr
    for key, value in optimizer.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[key], value, err_msg=key)
    # no pickle anywhere: the file loads with allow_pickle=False (load_checkpoint does)
    with np.load(path, allow_pickle=False) as npz:
        assert "format" in npz.files and str(npz["format"]) == ckpt.FORMAT


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = LeNet5(seed=0)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, epoch=1)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full while writing")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["checkpoint.npz"]
    assert load_checkpoint(path)["epoch"] == 1


def test_truncated_checkpoint_raises_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, LeNet5(seed=0), epoch=1)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or not a .npz archive"):
            load_checkpoint(path)


def test_foreign_files_raise_a_clear_error(tmp_path):
    foreign = tmp_path / "weights.npz"
    np.savez(foreign, weight=np.zeros(3))
    with pytest.raises(CheckpointError, match="is not a fastconv checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")
    assert issubclass(CheckpointError, ValueError)


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, tiny_data):
    (x, y), validation = tiny_data
    settings = dict(batch_size=32, seed=7, progress=False, validation_data=validation)

    straight = LeNet5(seed=3)
    full = fit(straight, x, y, epochs=3, checkpoint=tmp_path / "straight.npz", **settings)

    interrupted = LeNet5(seed=3)
    fit(interrupted, x, y, epochs=2, checkpoint=tmp_path / "part.npz", **settings)
    resumed = LeNet5(seed=99)                          # a fresh process: different init
    history = fit(resumed, x, y, epochs=3, resume=tmp_path / "part.npz",
                  checkpoint=tmp_path / "part.npz", **settings)

    for key, value in straight.state_dict().items():
        assert np.array_equal(resumed.state_dict()[key], value), key
    for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy"):
        assert history[key] == full[key], key
    a, b = load_checkpoint(tmp_path / "straight.npz"), load_checkpoint(tmp_path / "part.npz")
    assert a["rng_state"] == b["rng_state"] and a["epoch"] == b["epoch"] == 3
    for key, value in a["optimizer"].items():
        assert np.array_equal(b["optimizer"][key], value), key


def dropout_net(seed):
    """A small dense network whose two Dropout layers share its seeded generator."""
    rng = np.random.default_rng(seed)
    return Sequential(Flatten(), Linear(28 * 28, 32, init="he", seed=rng), ReLU(),
                      Dropout(0.5, seed=rng), Linear(32, 16, init="he", seed=rng), ReLU(),
                      Dropout(0.25, seed=rng), Linear(16, 10, seed=rng))


def test_resume_with_dropout_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, tiny_data):
    (x, y), _ = tiny_data
    images = (x / 255).astype(np.float32)
    settings = dict(batch_size=32, seed=7, progress=False)
    straight = dropout_net(seed=3)
    fit(straight, images, y, epochs=2, **settings)
    interrupted = dropout_net(seed=3)
    fit(interrupted, images, y, epochs=1, checkpoint=tmp_path / "c.npz", **settings)
    resumed = dropout_net(seed=99)        # a fresh process: other weights, other masks
    fit(resumed, images, y, epochs=2, resume=tmp_path / "c.npz", **settings)
    assert sorted(load_checkpoint(tmp_path / "c.npz")["model_rng_state"]) == ["3.rng", "6.rng"]
    for key, value in straight.state_dict().items():
        assert np.array_equal(resumed.state_dict()[key], value), key
    assert straight[3].generators()["rng"].random() == resumed[3].generators()["rng"].random()


def test_checkpoint_keeps_any_bit_generator_and_resume_checks_the_names(tmp_path, tiny_data):
    (x, y), _ = tiny_data
    generator = np.random.Generator(np.random.MT19937(5))     # its state holds an array
    generator.random(3)
    model = Sequential(Flatten(), Dropout(0.5, seed=generator), Linear(28 * 28, 10, seed=0))
    save_checkpoint(tmp_path / "c.npz", model, epoch=1)
    restored = np.random.Generator(np.random.MT19937(0))
    restored.bit_generator.state = load_checkpoint(tmp_path / "c.npz")["model_rng_state"]["1.rng"]
    assert restored.random() == generator.random()
    without = Sequential(Flatten(), Identity(), Linear(28 * 28, 10, seed=0))
    with pytest.raises(ValueError, match=r"generator states for \['1.rng'\], the model draws "
                                         r"from \[\]"):
        fit(without, x[:32], y[:32], epochs=2, resume=tmp_path / "c.npz", progress=False)


def test_resume_rejects_a_checkpoint_of_another_architecture(tmp_path, tiny_data):
    (x, y), _ = tiny_data
    model = LeNet5(seed=0)
    save_checkpoint(tmp_path / "c.npz", model, Adam(model), epoch=1)
    other = LeNet5(seed=0).astype(np.float64)
    with pytest.raises(ValueError, match="dtype float32 in the state_dict, expected float64"):
        fit(other, x[:32], y[:32], epochs=2, resume=tmp_path / "c.npz", progress=False)
    dense = Sequential(Flatten(), Linear(28 * 28, 10, seed=0))
    with pytest.raises(KeyError, match="state_dict does not match: missing"):
        fit(dense, x[:32], y[:32], epochs=2, resume=tmp_path / "c.npz", progress=False)


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    return write_synthetic_mnist(tmp_path_factory.mktemp("mnist"), n_train=160, n_test=64)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def keep_thread_count():
    """--threads changes the process-wide setting: restore it for the other tests."""
    threads = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(threads)


def test_cli_train_resume_and_evaluate(tmp_path, mnist_folder, capsys, monkeypatch,
                                       keep_thread_count):
    monkeypatch.setattr("fastconv.cli.plots.have_matplotlib", lambda: False)
    out = tmp_path / "run"
    args = ["train", "--dataset", "mnist", "--data-dir", str(mnist_folder), "--batch-size",
            "32", "--seed", "1", "--threads", "1", "--out", str(out), "--no-progress"]
    assert main(args + ["--epochs", "2"]) == 0
    text = capsys.readouterr().out
    assert "mnist: 160 training and 64 validation images" in text
    assert "Total params: 61,706" in text and "validation accuracy" in text
    assert "epoch 2/2  loss" in text and "val_acc" in text
    assert "matplotlib is not installed; skipping plots" in text
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "metrics.csv", "metrics.json"]
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and set(rows[0]) == set(HISTORY_KEYS)
    assert json.loads((out / "metrics.json").read_text())[1]["epoch"] == 2

    # --resume continues to 3 epochs with the stored settings (data dir, seed, ...)
    assert main(["train", "--out", str(out), "--epochs", "3", "--resume", "--no-progress"]) == 0
    assert fastconv.get_num_threads() == 1
    assert "resuming from" in capsys.readouterr().out
    assert [r["epoch"] for r in read_csv(out / "metrics.csv")] == ["1", "2", "3"]

    # ... and matches an uninterrupted 3-epoch run exactly
    straight = tmp_path / "straight"
    main(args[:-3] + ["--out", str(straight), "--no-progress", "--epochs", "3"])
    a = load_checkpoint(out / "checkpoint.npz")["model"]
    b = load_checkpoint(straight / "checkpoint.npz")["model"]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    capsys.readouterr()

    assert main(["evaluate", str(out / "checkpoint.npz")]) == 0
    text = capsys.readouterr().out
    assert "(epoch 3) on mnist test images (64)" in text and "accuracy" in text
    assert "confusion matrix" in text


def test_cli_writes_plots_with_matplotlib(tmp_path, mnist_folder, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    main(["train", "--data-dir", str(mnist_folder), "--epochs", "1", "--limit", "64",
          "--out", str(out), "--no-progress"])
    assert "mnist: 64 training" in capsys.readouterr().out
    for name in ("curves.png", "conv1_filters.png", "confusion_matrix.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x05\x06" + bytes(18))          # an empty zip archive
    for argv, message in [(["evaluate", str(bad)], "is not a fastconv checkpoint"),
                          (["train", "--out", str(tmp_path / "nothing"), "--resume"],
                           "--resume: there is no checkpoint"),
                          (["train", "--dataset", "cifar"], "invalid choice: 'cifar'")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
