"""What a conv layer saves: parameters, multiply-adds and weight memory of a conv layer
against the dense layer mapping the same input volume to the same output volume (the
lecture's case for convolutions: parameter sharing and sparse connections). The formulas
themselves live in :mod:`fastconv.sizing`.
"""
from dataclasses import dataclass

import numpy as np

from ._checks import as_int_tuple
from .sizing import conv_params, dense_params, output_length

__all__ = ["LayerCost", "ConvDenseComparison", "compare_conv_dense"]


@dataclass(frozen=True)
class LayerCost:
    """The cost of one layer.

    Attributes
    ----------
    name : str
        "conv" or "dense".
    weights, biases : int
        Learnable parameters, split.
    mult_adds : int
        Multiply-adds of one forward pass for one input.
    itemsize : int
        Bytes per parameter (4 for float32).
    """
    name: str
    weights: int
    biases: int
    mult_adds: int
    itemsize: int

    @property
    def parameters(self):
        return self.weights + self.biases

    @property
    def weight_bytes(self):
        """Memory of all parameters (weights and biases)."""
        return self.parameters * self.itemsize


@dataclass(frozen=True)
class ConvDenseComparison:
    """A conv layer and the dense layer with the same input and output volumes.

    Shapes are (height, width, channels), as the lecture writes volumes (32x32x3).
    ``str()`` gives a small table.
    """
    input_shape: tuple
    output_shape: tuple
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dtype: str
    conv: LayerCost
    dense: LayerCost

    @property
    def parameter_ratio(self):
        """How many times more parameters the dense layer has."""
        return self.dense.parameters / self.conv.parameters

    @property
    def mult_add_ratio(self):
        """How many times more multiply-adds the dense layer does."""
        return self.dense.mult_adds / self.conv.mult_adds

    def rows(self):
        """(layer, parameters, weights, biases, multiply-adds, weight bytes) per layer."""
        return [(c.name, c.parameters, c.weights, c.biases, c.mult_adds, c.weight_bytes)
                for c in (self.conv, self.dense)]

    def __str__(self):
        (r, s), k = self.kernel_size, self.output_shape[2]
        title = (f"{_volume(self.input_shape)} -> {_volume(self.output_shape)}: {k} filters "
                 f"{r}x{s}, stride {_pair(self.stride)}, padding {_pair(self.padding)}; "
                 f"{self.dtype} weights")
        table = [("layer", "parameters", "multiply-adds", "weight memory")]
        for c in (self.conv, self.dense):
            table.append((c.name, f"{c.parameters:,} = {c.weights:,} + {c.biases:,}",
                          f"{c.mult_adds:,}", _bytes(c.weight_bytes)))
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = [title] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                           for row in table]
        lines.append(f"the dense layer has {self.parameter_ratio:,.0f}x the parameters and "
                     f"does {self.mult_add_ratio:,.0f}x the multiply-adds")
        return "\n".join(lines)


def _volume(shape):
    return "x".join(str(n) for n in shape)


def _pair(p):
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024


def _ints(value, name, length, minimum):
    """An int (repeated) or a sequence of `length` ints, each >= minimum."""
    return as_int_tuple(value, name, length, "compare_conv_dense", minimum)


def compare_conv_dense(input_shape, out_channels, kernel_size, stride=1, padding=0, *,
                       dtype="float32"):
    """Costs of a conv layer and of the dense layer that maps the same input volume to the
    same output volume.

    Parameters
    ----------
    input_shape : (int, int, int)
        (height, width, channels) of the input volume, as the lecture writes it.
    out_channels : int
        Number of filters (the output depth).
    kernel_size : int or (int, int)
        Filter size f (or (height, width)); each filter spans all input channels.
    stride, padding : int or (int, int)
        Per axis; zero padding on each side.
    dtype : numpy dtype
        Type of the stored weights (for the memory column).

    Returns
    -------
    ConvDenseComparison
        ``.conv`` and ``.dense`` (:class:`LayerCost`), ``.output_shape``; print it for a
        table.

    Examples
    --------
    >>> c = compare_conv_dense((32, 32, 3), 6, 5)
    >>> c.output_shape, c.conv.parameters, c.dense.weights, c.dense.biases
    ((28, 28, 6), 456, 14450688, 4704)
    """
    func = "compare_conv_dense"
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"{func}: input_shape must be (height, width, channels), "
                        f"got {input_shape!r}")
    H, W, C = _ints(input_shape, "input_shape", 3, 1)
    (K,) = _ints(out_channels, "out_channels", 1, 1)
    R, S = _ints(kernel_size, "kernel_size", 2, 1)
    stride = _ints(stride, "stride", 2, 1)
    padding = _ints(padding, "padding", 2, 0)
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        raise TypeError(f"{func}: dtype must be a numpy dtype, got {dtype!r}") from None
    P = output_length(H, R, stride[0], padding[0])
    Q = output_length(W, S, stride[1], padding[1])
    if P < 1 or Q < 1:
        raise ValueError(f"{func}: a {R}x{S} kernel does not fit a {H}x{W} input with "
                         f"padding {padding}; got output size {P}x{Q}")
    n_in, n_out = H * W * C, P * Q * K
    conv_weights = conv_params((R, S), C, K, bias=False)
    conv = LayerCost("conv", conv_weights, conv_params((R, S), C, K) - conv_weights,
                     n_out * R * S * C, itemsize)
    dense_weights = dense_params(n_in, n_out, bias=False)
    dense = LayerCost("dense", dense_weights, dense_params(n_in, n_out) - dense_weights,
                      n_in * n_out, itemsize)
    return ConvDenseComparison((H, W, C), (P, Q, K), (R, S), stride, padding,
                               np.dtype(dtype).name, conv, dense)
