"""Models built from :mod:`fastconv.nn.layers`: LeNet-5."""
import numpy as np

from .layers import (AvgPool2D, Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential, Tanh,
                     as_rng)
from .inference import predict_logits
from .._checks import as_array, result_dtype
from ..data.preprocessing import image_statistics, is_prepared, standardize

__all__ = ["LeNet5", "from_config"]

# MNIST's pixel statistics after scaling to [0, 1] and padding to 32x32; fit() replaces
# them by those of the training images it is given.
MNIST_MEAN, MNIST_STD = 0.1000, 0.2752


class LeNet5(Sequential):
    """LeNet-5 for 32x32 grayscale digits, 10 classes (61,706 parameters).

    ::

        32x32x1 -> conv 5x5, 6 filters -> 28x28x6 -> pool 2x2 s2 -> 14x14x6
                -> conv 5x5, 16 filters -> 10x10x16 -> pool 2x2 s2 -> 5x5x16 = 400
                -> FC 120 -> FC 84 -> FC 10 (softmax in the loss)

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        Seeds the weight initialisation (He for ReLU, Glorot for tanh and the output).
    activation : {"relu", "tanh"}
        Nonlinearity after each conv (fused into the conv layer) and hidden FC layer.
    pool : {"max", "avg"}
        Max or average pooling.
    dtype : float32 or float64

    Notes
    -----
    The model stores the input standardisation (``input_mean``, ``input_std`` buffers,
    saved in its state_dict) so :meth:`predict` applies to raw images exactly what the
    trainer applied.
    """

    #: the shape of one input image (channels, height, width)
    input_shape = (1, 32, 32)

    def __init__(self, seed=None, activation="relu", pool="max", dtype=np.float32):
        if activation not in ("relu", "tanh"):
            raise ValueError(f"LeNet5: activation must be 'relu' or 'tanh', got {activation!r}")
        if pool not in ("max", "avg"):
            raise ValueError(f"LeNet5: pool must be 'max' or 'avg', got {pool!r}")
        self.activation, self.pool = activation, pool
        rng = as_rng(seed)
        Pool = MaxPool2D if pool == "max" else AvgPool2D
        Act = ReLU if activation == "relu" else Tanh
        hidden_init = "he" if activation == "relu" else "glorot"
        super().__init__(
            Conv2D(1, 6, 5, activation=activation, seed=rng, dtype=dtype, name="conv1"),
            Pool(2, name="pool1"),
            Conv2D(6, 16, 5, activation=activation, seed=rng, dtype=dtype, name="conv2"),
            Pool(2, name="pool2"),
            Flatten(name="flatten"),
            Linear(400, 120, init=hidden_init, seed=rng, dtype=dtype, name="fc1"),
            Act(name=f"{activation}3"),
            Linear(120, 84, init=hidden_init, seed=rng, dtype=dtype, name="fc2"),
            Act(name=f"{activation}4"),
            Linear(84, 10, init="glorot", seed=rng, dtype=dtype, name="fc3"),
            name="LeNet5",
        )
        self._buffers = {"input_mean": np.array(MNIST_MEAN), "input_std": np.array(MNIST_STD)}

    def config(self):
        """What :func:`from_config` needs to rebuild this architecture."""
        return {"class": "LeNet5", "activation": self.activation, "pool": self.pool,
                "dtype": str(self.dtype)}

    def summary(self, file=None):
        """Print a table of layers, output shapes and parameter counts (like Keras)."""
        super().summary((1,) + self.input_shape, file=file)

    # -- input ----------------------------------------------------------------------------
    def fit_preprocessing(self, images):
        """Set the input standardisation from raw training images' pixel statistics."""
        mean, std = image_statistics(images)
        self._buffers["input_mean"][...] = mean
        self._buffers["input_std"][...] = std

    def prepare(self, images):
        """The network input for `images`: prepared (N, 1, 32, 32) float arrays pass
        through; raw images ((N, 28, 28) uint8 0..255, ...) get the stored preprocessing:
        scale to [0, 1], pad to 32x32, standardise."""
        images = as_array(images, "images", "LeNet5.prepare")
        result_dtype("LeNet5.prepare", images=images)       # real values only
        if is_prepared(images):
            return np.asarray(images, dtype=self.dtype)
        x = standardize(images, self._buffers["input_mean"], self._buffers["input_std"])
        return x.astype(self.dtype, copy=False)

    # -- inference ------------------------------------------------------------------------
    def logits(self, images, batch_size=500):
        """Class scores (N, 10) for raw or prepared images, in eval mode, in batches."""
        return self._logits(images, batch_size, "LeNet5.logits")

    def predict(self, images, batch_size=500):
        """Predicted labels (N,) int64 for raw ((N, 28, 28) uint8) or prepared
        ((N, 1, 32, 32) float) images."""
        return np.argmax(self._logits(images, batch_size, "LeNet5.predict"), axis=1)

    def _logits(self, images, batch_size, func):
        return predict_logits(self, self.prepare(images), batch_size, func)


def from_config(config):
    """Rebuild a model from :meth:`LeNet5.config` (weights are loaded separately)."""
    config = dict(config)
    kind = config.pop("class", None)
    if kind != "LeNet5":
        raise ValueError(f"unknown model class {kind!r}; expected 'LeNet5'")
    return LeNet5(activation=config["activation"], pool=config["pool"],
                  dtype=np.dtype(config.get("dtype", "float32")))
