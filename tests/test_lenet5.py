"""LeNet-5: the lecture's architecture, its summary, predict on raw and
prepared images, and real training runs (MNIST subset from ../shared; sklearn digits)."""
import numpy as np
import pytest

from fastconv import conv_params, dense_params
from fastconv.data.datasets import load_mnist
from fastconv.nn.models import LeNet5, from_config
from fastconv.data.preprocessing import scale_and_pad
from fastconv.nn.training import evaluate, fit
from train_helpers import require_shared_mnist, synthetic_digits


def test_lenet5_has_61706_parameters_layer_by_layer():
    model = LeNet5(seed=0)
    assert model.num_params() == 61_706
    counts = {name: layer.num_params() for name, layer in model.named_layers()}
    assert counts["conv1"] == conv_params(5, 1, 6) == 156
    assert counts["conv2"] == conv_params(5, 6, 16) == 2_416
    assert counts["fc1"] == dense_params(400, 120) == 48_120
    assert counts["fc2"] == dense_params(120, 84) == 10_164
    assert counts["fc3"] == dense_params(84, 10) == 850
    assert model.params()["conv1.weight"].shape == (6, 1, 5, 5)


def test_lenet5_shapes_follow_the_lecture():
    model = LeNet5(seed=0)
    shapes = [s[1] for s in model.summary_table((1, 1, 32, 32))]
    assert shapes[:5] == [("None", 6, 28, 28), ("None", 6, 14, 14), ("None", 16, 10, 10),
                          ("None", 16, 5, 5), ("None", 400)]
    assert shapes[5] == ("None", 120) and shapes[7] == ("None", 84) and shapes[-1] == ("None", 10)
    out = model.forward(np.zeros((3, 1, 32, 32), np.float32))
    assert out.shape == (3, 10) and out.dtype == np.float32


def test_summary_prints_a_keras_style_table(capsys):
    LeNet5(seed=0).summary()
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "Model: LeNet5"
    assert "Layer (type)" in text and "Output shape" in text and "Param #" in text
    assert "Mult-adds" in text
    row = next(line for line in lines if line.startswith("conv1"))
    assert "(Conv2D+relu)" in row and "(None, 6, 28, 28)" in row and row.split()[-2:] == ["156", "117,600"]
    row = next(line for line in lines if line.startswith("fc1"))
    assert "(None, 120)" in row and row.split()[-2:] == ["48,120", "48,000"]
    assert next(line for line in lines if line.startswith("pool2")).split()[-2:] == ["0", "0"]
    assert "Total params: 61,706" in text and "Multiply-adds per image: 416,520" in text


def test_seed_makes_lenet5_reproducible():
    a, b, c = LeNet5(seed=5), LeNet5(seed=5), LeNet5(seed=6)
    for key, value in a.params().items():
        np.testing.assert_array_equal(value, b.params()[key])
    assert not np.array_equal(a.params()["fc1.weight"], c.params()["fc1.weight"])


@pytest.mark.parametrize("activation,pool", [("tanh", "avg"), ("relu", "avg"), ("tanh", "max")])
def test_lenet5_variants(activation, pool):
    model = LeNet5(seed=0, activation=activation, pool=pool)
    assert model.num_params() == 61_706
    assert model.config() == {"class": "LeNet5", "activation": activation, "pool": pool,
                              "dtype": "float32"}
    rebuilt = from_config(model.config())
    assert [l.kind() for l in rebuilt] == [l.kind() for l in model]
    assert model.forward(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 10)


def test_lenet5_rejects_unknown_options():
    with pytest.raises(ValueError, match="activation must be 'relu' or 'tanh'"):
        LeNet5(activation="gelu")
    with pytest.raises(ValueError, match="pool must be 'max' or 'avg'"):
        LeNet5(pool="min")


def test_predict_accepts_raw_uint8_and_prepared_images():
    model = LeNet5(seed=1)
    images, _ = synthetic_digits(20)
    model.fit_preprocessing(images)
    mean, std = float(model.buffers()["input_mean"]), float(model.buffers()["input_std"])
    prepared = (scale_and_pad(images) - mean) / std                     # (20, 1, 32, 32)
    assert prepared.shape == (20, 1, 32, 32)
    labels = model.predict(images)
    assert labels.shape == (20,) and labels.dtype.kind == "i"
    assert set(labels) <= set(range(10))
    np.testing.assert_array_equal(labels, model.predict(prepared.astype(np.float32)))
    np.testing.assert_array_equal(labels, model.predict(images[:, None]))   # (N, 1, 28, 28)
    # the MNIST border: a 28x28 digit sits in the middle of the 32x32 input
    padded = scale_and_pad(np.full((1, 28, 28), 255, np.uint8))
    assert padded[0, 0, 2:30, 2:30].min() == 1.0 and padded[0, 0, :2].max() == 0.0


def test_predict_uses_the_preprocessing_stored_in_the_state_dict():
    model = LeNet5(seed=1)
    images, _ = synthetic_digits(10)
    model.fit_preprocessing(images)
    other = LeNet5(seed=2)
    other.load_state_dict(model.state_dict())
    assert float(other.buffers()["input_std"]) == float(model.buffers()["input_std"])
    np.testing.assert_array_equal(other.predict(images), model.predict(images))


def test_predict_rejects_images_larger_than_the_input():
    with pytest.raises(ValueError, match="do not fit the 32x32 input"):
        LeNet5(seed=0).predict(np.zeros((1, 40, 40), np.uint8))


def test_fit_learns_synthetic_digits_quickly():
    images, labels = synthetic_digits(600, seed=0)
    val_images, val_labels = synthetic_digits(200, seed=1)
    model = LeNet5(seed=0)
    history = fit(model, images, labels, epochs=3, seed=0, progress=False,
                  validation_data=(val_images, val_labels))
    assert history["val_accuracy"][-1] >= 0.9
    assert np.mean(model.predict(val_images) == val_labels) == history["val_accuracy"][-1]


@pytest.fixture(scope="module")
def mnist_test_set():
    return load_mnist(require_shared_mnist(), train=False, download=False)


def test_lenet5_reaches_95_percent_on_real_mnist(mnist_test_set):
    """8,000 real MNIST images for 2 epochs with fit's defaults reach 95% on the other
    2,000, and predict on the raw images agrees with the trainer's validation."""
    images, labels = mnist_test_set
    model = LeNet5(seed=0)
    history = fit(model, images[:8000], labels[:8000], epochs=2, seed=0, progress=False,
                  validation_data=(images[8000:], labels[8000:]))
    assert history["val_accuracy"][-1] >= 0.95, history
    # predict on the raw uint8 images agrees with the trainer's own validation
    predicted = model.predict(images[8000:])
    assert np.mean(predicted == labels[8000:]) == pytest.approx(history["val_accuracy"][-1])


def test_lenet5_learns_sklearn_digits():
    pytest.importorskip("sklearn")
    from fastconv.data.datasets import load_digits
    images, labels = load_digits(train=True)
    val_images, val_labels = load_digits(train=False)
    model = LeNet5(seed=0)
    fit(model, images, labels, epochs=4, seed=0, progress=False)
    _, accuracy = evaluate(model, val_images, val_labels)
    assert accuracy >= 0.93
