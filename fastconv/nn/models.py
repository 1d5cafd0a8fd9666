"""Models built from :mod:`fastconv.nn.layers`: LeNet-5, ResNet and MobileNetV2."""
import math

import numpy as np

from .layers import (AvgPool2D, BatchNorm2D, Conv2D, Flatten, GlobalAvgPool2D, Linear,
                     MaxPool2D, ReLU, Residual, Sequential, Tanh, ZeroPadShortcut, as_rng)
from .inference import predict_logits
from .._checks import as_array, as_count, as_real_number, result_dtype
from ..data.preprocessing import image_statistics, is_prepared, standardize

__all__ = ["LeNet5", "ResNet", "MobileNetV2", "from_config"]

# MNIST's pixel statistics after scaling to [0, 1] and padding to 32x32; fit() replaces
# them by those of the training images it is given.
MNIST_MEAN, MNIST_STD = 0.1000, 0.2752


class ImageClassifier(Sequential):
    """A Sequential network from images (N, C, H, W) to class scores (N, classes), with
    batched inference in eval mode and the input preprocessing it was trained with.

    *Prepared* images are the network's input: float arrays of ``(N,) + input_shape``.
    *Raw* images are integer pixels 0..255, (N, H, W) or (N, C, H, W) up to the input
    size: :meth:`prepare` scales them to [0, 1], pads them to the input size and
    standardises each channel with the ``input_mean`` and ``input_std`` buffers, which
    :meth:`fit_preprocessing` (called by ``fit`` on raw training images) sets. A model
    given weights from elsewhere keeps mean 0 and std 1 until told otherwise.
    """

    #: the shape of one input image (channels, height, width)
    input_shape = None
    #: buffers describing the input, not the network: PyTorch's state dicts lack them
    PREPROCESSING = ("input_mean", "input_std")

    def _init_preprocessing(self):
        channels = self.input_shape[0]
        self._buffers["input_mean"] = np.zeros(channels)
        self._buffers["input_std"] = np.ones(channels)

    def summary(self, file=None):
        """Print a table of layers, output shapes and parameter counts (like Keras)."""
        super().summary((1,) + tuple(self.input_shape), file=file)

    def is_prepared(self, images):
        """True for float arrays of shape (N,) + input_shape: the network's own input."""
        images = np.asarray(images)
        return (images.dtype.kind == "f" and images.ndim == 4
                and images.shape[1:] == tuple(self.input_shape))

    def _scaled_and_padded(self, images, func):
        """Raw integer images -> (N, C, H, W) float32 in [0, 1], centred in the input."""
        if images.dtype.kind not in "iu":
            raise TypeError(f"{func}: expected prepared float images of shape "
                            f"(N,) + {tuple(self.input_shape)} or raw integer pixels "
                            f"0..255, got {images.dtype} images of shape {images.shape}")
        x = images[:, None] if images.ndim == 3 else images
        channels, size = self.input_shape[0], self.input_shape[1:]
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2] > size[0] \
                or x.shape[3] > size[1]:
            raise ValueError(f"{func}: expected raw images (N, {channels}, H, W) (or "
                             f"(N, H, W) for one channel) of at most {size[0]}x{size[1]} "
                             f"pixels, got shape {images.shape}")
        top, left = (size[0] - x.shape[2]) // 2, (size[1] - x.shape[3]) // 2
        out = np.zeros((len(x), channels) + tuple(size), dtype=np.float32)
        out[:, :, top:top + x.shape[2], left:left + x.shape[3]] = x / np.float32(255)
        return out

    def fit_preprocessing(self, images, batch=10_000):
        """Set each channel's mean and standard deviation from raw training images (their
        scaled, padded pixels, summed in float64); prepared images leave them alone."""
        images = as_array(images, "images", f"{type(self).__name__}.fit_preprocessing")
        if self.is_prepared(images):
            return
        total = total_sq = 0.0
        for start in range(0, len(images), batch):
            x = self._scaled_and_padded(images[start:start + batch],
                                        f"{type(self).__name__}.fit_preprocessing")
            total = total + x.sum(axis=(0, 2, 3), dtype=np.float64)
            total_sq = total_sq + np.square(x, dtype=np.float64).sum(axis=(0, 2, 3))
        count = len(images) * math.prod(self.input_shape[1:])
        if count == 0:
            raise ValueError(f"{type(self).__name__}.fit_preprocessing: no images")
        mean = total / count
        self._buffers["input_mean"][...] = mean
        self._buffers["input_std"][...] = np.maximum(np.sqrt(np.maximum(
            total_sq / count - mean * mean, 0.0)), 1e-6)

    def prepare(self, images):
        """The network input for `images`: prepared images pass through (in the model's
        dtype); raw ones get the stored preprocessing (see the class docstring)."""
        func = f"{type(self).__name__}.prepare"
        images = as_array(images, "images", func)
        result_dtype(func, images=images)                 # real values only
        if self.is_prepared(images):
            return np.asarray(images, dtype=self.dtype)
        x = self._scaled_and_padded(images, func)       # a new array: standardised in place
        x -= self._buffers["input_mean"].astype(np.float32)[:, None, None]
        x /= self._buffers["input_std"].astype(np.float32)[:, None, None]
        return x.astype(self.dtype, copy=False)

    def logits(self, images, batch_size=500):
        """Class scores (N, classes) for raw or prepared images, in eval mode, in batches."""
        return self._logits(images, batch_size, f"{type(self).__name__}.logits")

    def predict(self, images, batch_size=500):
        """Predicted labels (N,) int64 for raw or prepared images."""
        return np.argmax(self._logits(images, batch_size, f"{type(self).__name__}.predict"),
                         axis=1)

    def _logits(self, images, batch_size, func):
        return predict_logits(self, as_array(images, "images", func), batch_size, func,
                              prepare=self.prepare)

    # -- PyTorch interop --------------------------------------------------------------------
    def torch_name(self, name):
        """The name PyTorch's usual definition of this network gives parameter or buffer
        `name`: the same, except that PyTorch's blocks hold their layers directly where a
        :class:`Residual` holds them under ``body``."""
        return name.replace(".body.", ".")

    def _network_arrays(self):
        """{name: array} of the parameters and buffers PyTorch's definition also has."""
        arrays = {**self.params(), **self.buffers()}
        return {k: v for k, v in arrays.items() if k not in self.PREPROCESSING}

    def torch_state_dict(self):
        """The parameters and buffers as NumPy arrays under PyTorch's names (copies); the
        input preprocessing, which PyTorch keeps outside the model, is left out."""
        return {self.torch_name(k): np.array(v, copy=True)
                for k, v in self._network_arrays().items()}

    def load_torch_state_dict(self, state_dict):
        """Load a PyTorch state dict of the same network: names to CPU tensors or arrays.

        A leading ``module.`` (DataParallel checkpoints) is dropped and values are
        converted to the model's dtype. Missing, unexpected and mis-shaped entries are
        refused together, in one ValueError that lists them all; nothing is loaded then.
        """
        func = f"{type(self).__name__}.load_torch_state_dict"
        if not hasattr(state_dict, "items"):
            raise TypeError(f"{func}: state_dict must be a mapping of names to tensors or "
                            f"arrays, got {type(state_dict).__name__}")
        given = {}
        for key, value in state_dict.items():
            key = key[len("module."):] if key.startswith("module.") else key
            if hasattr(value, "detach"):                     # a torch.Tensor
                value = value.detach().cpu().numpy()
            given[key] = np.asarray(value)
        own = {self.torch_name(k): v for k, v in self._network_arrays().items()}
        problems = [f"missing {k} {v.shape}" for k, v in own.items() if k not in given]
        problems += [f"unexpected {k}" for k in given if k not in own]
        problems += [f"{k}: shape {given[k].shape}, expected {v.shape}"
                     for k, v in own.items() if k in given and given[k].shape != v.shape]
        if problems:
            raise ValueError(f"{func}: the state dict does not fit {self.name}: "
                             + "; ".join(problems))
        for key, target in own.items():
            np.copyto(target, given[key].astype(target.dtype, copy=False))
        return self


class LeNet5(ImageClassifier):
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


class ResNet(ImageClassifier):
    """ResNet for 32x32 images (He et al. 2016, section 4.2: the CIFAR-10 networks).

    ::

        32x32xC -> conv 3x3, 16 -> BN -> ReLU
                -> n blocks of 16 filters (32x32), n of 32 (16x16), n of 64 (8x8)
                -> global average pooling -> FC num_classes        depth = 6n + 2

    Each block is conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN, plus the shortcut, then ReLU;
    the first block of the second and third stages halves the size with stride 2. There
    the shortcut is ``shortcut="A"``: the input subsampled by 2 with zero channels added
    (no parameters; ResNet-20 has 269,722), or ``"B"``: a 1x1 convolution with stride 2
    and BN. Convolutions have no bias (the BN after each shifts); weights are He-initialised.

    Parameters
    ----------
    depth : int
        6n + 2 for n blocks per stage: 20, 32, 44, 56, 110, ...
    num_classes, in_channels : int
    shortcut : {"A", "B"}
    seed : int, numpy.random.Generator or None
    dtype : float32 or float64

    Layer names follow the usual PyTorch definition (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ..., ``linear``), with each block's main branch under ``body``.
    """

    def __init__(self, depth=20, num_classes=10, in_channels=3, shortcut="A", seed=None,
                 dtype=np.float32):
        depth = as_count(depth, "depth", "ResNet", minimum=8)
        if (depth - 2) % 6:
            raise ValueError(f"ResNet: depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got "
                             f"{depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"ResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        self.depth, self.shortcut_kind = depth, shortcut
        self.num_classes = as_count(num_classes, "num_classes", "ResNet")
        self.input_shape = (as_count(in_channels, "in_channels", "ResNet"), 32, 32)
        rng = as_rng(seed)
        layers = [Conv2D(in_channels, 16, 3, padding=1, bias=False, seed=rng, dtype=dtype,
                         name="conv1"),
                  BatchNorm2D(16, dtype=dtype, name="bn1"), ReLU(name="relu")]
        planes_in = 16
        for stage, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = []
            for i in range((depth - 2) // 6):
                blocks.append(self._block(planes_in, planes, stride if i == 0 else 1, rng,
                                          dtype, str(i)))
                planes_in = planes
            layers.append(Sequential(*blocks, name=f"layer{stage}"))
        layers += [GlobalAvgPool2D(name="pool"),
                   Linear(64, num_classes, init="he", seed=rng, dtype=dtype, name="linear")]
        super().__init__(*layers, name=f"ResNet{depth}")
        self._init_preprocessing()

    def _block(self, planes_in, planes, stride, rng, dtype, name):
        body = Sequential(
            Conv2D(planes_in, planes, 3, stride, 1, bias=False, seed=rng, dtype=dtype,
                   name="conv1"),
            BatchNorm2D(planes, dtype=dtype, name="bn1"), ReLU(name="relu"),
            Conv2D(planes, planes, 3, 1, 1, bias=False, seed=rng, dtype=dtype, name="conv2"),
            BatchNorm2D(planes, dtype=dtype, name="bn2"))
        shortcut = None
        if stride != 1 or planes_in != planes:
            if self.shortcut_kind == "A":
                shortcut = ZeroPadShortcut(planes_in, planes, stride)
            else:
                shortcut = Sequential(
                    Conv2D(planes_in, planes, 1, stride, bias=False, seed=rng, dtype=dtype,
                           name="0"),
                    BatchNorm2D(planes, dtype=dtype, name="1"))
        return Residual(body, shortcut, activation="relu", name=name)

    def config(self):
        """What :func:`from_config` needs to rebuild this architecture."""
        return {"class": "ResNet", "depth": self.depth, "num_classes": self.num_classes,
                "in_channels": self.input_shape[0], "shortcut": self.shortcut_kind,
                "dtype": str(self.dtype)}


class MobileNetV2(ImageClassifier):
    """MobileNetV2 for 32x32 images (Sandler et al. 2018, with CIFAR's stride-1 start).

    ::

        32x32xC -> conv 3x3, 32 -> BN -> ReLU
                -> inverted-residual blocks (t, c, n, s) = (1, 16, 1, 1), (6, 24, 2, 1),
                   (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)
                -> conv 1x1, 1280 -> BN -> ReLU -> global average pooling -> FC num_classes

    Each block expands its input t times with a 1x1 convolution (+ BN + ReLU), filters
    each channel alone with a 3x3 depthwise convolution of stride s on its first repeat
    (+ BN + ReLU) and projects to c channels with a 1x1 convolution (+ BN, no ReLU: the
    linear bottleneck). Blocks of stride 1 add a shortcut: the identity, or a 1x1
    convolution + BN where the channels change. Convolutions have no bias. With width 1.0
    and 10 classes there are 2,296,922 parameters; ``width`` scales every channel count
    (to a multiple of 8) but the last 1280.

    Parameters
    ----------
    num_classes : int
    width : float > 0
    in_channels : int
    seed : int, numpy.random.Generator or None
    dtype : float32 or float64

    Layer names follow the usual PyTorch definition (``conv1``, ``bn1``,
    ``layers.{i}.conv1`` ... ``bn3``, ``layers.{i}.shortcut.0/1``, ``conv2``, ``bn2``,
    ``linear``), with a residual block's layers under ``body``.
    """

    BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes=10, width=1.0, in_channels=3, seed=None, dtype=np.float32):
        self.num_classes = as_count(num_classes, "num_classes", "MobileNetV2")
        self.width = as_real_number(width, "width", "MobileNetV2", low=0, low_open=True)
        self.input_shape = (as_count(in_channels, "in_channels", "MobileNetV2"), 32, 32)
        rng = as_rng(seed)

        def conv(cin, cout, k, stride=1, groups=1, name=None):
            return Conv2D(cin, cout, k, stride, k // 2, groups=groups, bias=False, seed=rng,
                          dtype=dtype, name=name)

        def bn(channels, name):
            return BatchNorm2D(channels, dtype=dtype, name=name)

        first = self._channels(32)
        layers = [conv(in_channels, first, 3, name="conv1"), bn(first, "bn1"), ReLU(name="relu")]
        blocks, cin = [], first
        for expansion, c, repeats, stride in self.BLOCKS:
            cout = self._channels(c)
            for i in range(repeats):
                s, planes = (stride if i == 0 else 1), expansion * cin
                body = Sequential(conv(cin, planes, 1, name="conv1"), bn(planes, "bn1"),
                                  ReLU(name="relu1"),
                                  conv(planes, planes, 3, s, groups=planes, name="conv2"),
                                  bn(planes, "bn2"), ReLU(name="relu2"),
                                  conv(planes, cout, 1, name="conv3"), bn(cout, "bn3"),
                                  name=str(len(blocks)))
                if s == 1:
                    shortcut = None if cin == cout else Sequential(
                        conv(cin, cout, 1, name="0"), bn(cout, "1"))
                    body.name = None
                    body = Residual(body, shortcut, name=str(len(blocks)))
                blocks.append(body)
                cin = cout
        layers += [Sequential(*blocks, name="layers"), conv(cin, 1280, 1, name="conv2"),
                   bn(1280, "bn2"), ReLU(name="relu2"), GlobalAvgPool2D(name="pool"),
                   Linear(1280, num_classes, init="he", seed=rng, dtype=dtype, name="linear")]
        super().__init__(*layers, name="MobileNetV2")
        self._init_preprocessing()

    def _channels(self, c):
        """c scaled by the width, to the nearest multiple of 8 and never 10% below it."""
        scaled = max(8, int(c * self.width + 4) // 8 * 8)
        return scaled + 8 if scaled < 0.9 * c * self.width else scaled

    def config(self):
        """What :func:`from_config` needs to rebuild this architecture."""
        return {"class": "MobileNetV2", "num_classes": self.num_classes, "width": self.width,
                "in_channels": self.input_shape[0], "dtype": str(self.dtype)}


def from_config(config):
    """Rebuild a model from its ``config()`` (weights are loaded separately)."""
    config = dict(config)
    kind = config.pop("class", None)
    dtype = np.dtype(config.pop("dtype", "float32"))
    if kind == "LeNet5":
        return LeNet5(activation=config["activation"], pool=config["pool"], dtype=dtype)
    if kind == "ResNet":
        return ResNet(**config, dtype=dtype)
    if kind == "MobileNetV2":
        return MobileNetV2(**config, dtype=dtype)
    raise ValueError(f"unknown model class {kind!r}; expected 'LeNet5', 'ResNet' or "
                     f"'MobileNetV2'")
