"""2-D pooling: max, average, adaptive and global average pooling, and their gradients.

Names, argument order and semantics follow ``torch.nn.functional``: a window of
``kernel_size`` slides with ``stride`` (by default the window size) over each channel of each
image on its own, and output sizes come from :func:`fastconv.conv_output_size`, the same
formula as convolutions. Pooling has no learnable parameters, so each backward
function returns only the gradient with respect to its input.
"""
from typing import NamedTuple

import numpy as np

from . import _ext
from ._checks import (MAX_HYPERPARAMETER, as_array, as_bool, as_int_tuple, as_integer,
                      as_kernel_input, check_out, out_arrays, result_dtype)
from .sizing import output_length

__all__ = [
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
]


class PoolGeometry(NamedTuple):
    """Everything the C problem struct holds, derived once from the arguments.

    A NamedTuple rather than a frozen dataclass: it is built on every call, and pooling
    calls are small enough (LeNet-5's) for microseconds of Python to show."""
    N: int
    C: int
    H: int
    W: int
    kernel: tuple        # (R, S)
    stride: tuple        # (h, w)
    padding: tuple       # (h, w), the same on both sides
    dilation: tuple      # (h, w)
    P: int
    Q: int
    count_include_pad: bool = True
    divisor_override: object = None   # None or a nonzero int
    adaptive: bool = False            # windows from the output size, not kernel/stride

    @property
    def input_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def output_shape(self):
        return (self.N, self.C, self.P, self.Q)


def _divisor(value, func):
    """None, or divisor_override as a nonzero int within the C struct's int64 (the same
    bound as every other integer hyper-parameter)."""
    if value is None:
        return None
    divisor = as_integer(value)
    if divisor is None:
        raise TypeError(f"{func}: divisor_override must be None or an int, got "
                        f"{type(value).__name__} {value!r}")
    if divisor == 0:
        raise ValueError(f"{func}: divisor_override must be nonzero, got 0")
    if abs(divisor) > MAX_HYPERPARAMETER:
        raise ValueError(f"{func}: divisor_override must be within +-{MAX_HYPERPARAMETER}, "
                         f"got {divisor}")
    return divisor


def pool_geometry(func, x_shape, kernel_size, stride=None, padding=0, dilation=1,
                  ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Check a pooling call's hyper-parameters against x's shape; return its PoolGeometry."""
    N, C, H, W = x_shape
    if H < 1 or W < 1:
        raise ValueError(f"{func}: expected x with non-empty height and width, got shape "
                         f"{tuple(x_shape)}")
    kernel = as_int_tuple(kernel_size, "kernel_size", 2, func, 1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel   # PyTorch: stride defaults to the window size
    else:
        stride = as_int_tuple(stride, "stride", 2, func, 1)
    padding = as_int_tuple(padding, "padding", 2, func, 0)
    dilation = as_int_tuple(dilation, "dilation", 2, func, 1)
    ceil_mode = as_bool(ceil_mode, "ceil_mode", func)
    count_include_pad = as_bool(count_include_pad, "count_include_pad", func)
    divisor_override = _divisor(divisor_override, func)
    half = (kernel[0] // 2, kernel[1] // 2)
    if padding[0] > half[0] or padding[1] > half[1]:
        raise ValueError(f"{func}: padding must be at most half the kernel size, got "
                         f"padding={padding} for kernel_size={kernel} (at most {half})")
    P = output_length(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    Q = output_length(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if P < 1 or Q < 1:
        raise ValueError(
            f"{func}: the window ({kernel[0]}x{kernel[1]}, dilation {dilation}) is larger than "
            f"the padded input ({H + 2 * padding[0]}x{W + 2 * padding[1]} from input {H}x{W} "
            f"and padding {padding}); expected a window that fits")
    return PoolGeometry(N, C, H, W, kernel, stride, padding, dilation, P, Q,
                        count_include_pad, divisor_override)


def adaptive_geometry(func, x_shape, output_size):
    """The PoolGeometry of adaptive average pooling to output_size (None keeps an axis)."""
    N, C, H, W = x_shape
    if H < 1 or W < 1:
        raise ValueError(f"{func}: expected x with non-empty height and width, got shape "
                         f"{tuple(x_shape)}")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{func}: output_size must be an int or a tuple of 2 ints (or "
                             f"None), got {output_size!r}")
        sizes = [H if output_size[0] is None else output_size[0],
                 W if output_size[1] is None else output_size[1]]
    else:
        sizes = output_size
    P, Q = as_int_tuple(sizes, "output_size", 2, func, 1)
    if H % P == 0 and W % Q == 0:
        # Equal windows tiling the input: plain average pooling, with its fast kernels.
        kernel = (H // P, W // Q)
        return PoolGeometry(N, C, H, W, kernel, kernel, (0, 0), (1, 1), P, Q)
    return PoolGeometry(N, C, H, W, (1, 1), (1, 1), (0, 0), (1, 1), P, Q, adaptive=True)


def _input(x, func, name="x"):
    return as_array(x, name, func, ndim=4)


def _backward_inputs(func, grad_out, x, geometry, *args):
    """(grad_out, x, dtype, geom) of a backward function: both arrays checked, the geometry
    from ``geometry(func, x.shape, *args)``, and grad_out of the shape the forward function
    (func without "_backward") gives for x."""
    grad_out = as_array(grad_out, "grad_out", func, ndim=4)
    x = _input(x, func)
    dtype = result_dtype(func, grad_out=grad_out, x=x)
    geom = geometry(func, x.shape, *args)
    if grad_out.shape != geom.output_shape:
        raise ValueError(f"{func}: expected grad_out of shape {geom.output_shape} (the output "
                         f"of {func.removesuffix('_backward')} for x of shape "
                         f"{geom.input_shape}), got shape {grad_out.shape}")
    return grad_out, x, dtype, geom


def _average(source, geom, dtype, result=None, backward=False):
    """Run the average-pooling kernel, forward (x -> y) or backward (grad_out -> grad_x),
    into result, or into a new array when it is None; returns result."""
    if result is None:
        result = np.empty(geom.input_shape if backward else geom.output_shape, dtype=dtype)
    if result.size > 0:
        kernel = _ext.avg_pool_backward if backward else _ext.avg_pool_forward
        kernel(result, as_kernel_input(source, dtype), geom)
    return result


def pool_planned(kind, x, geom):
    """Max ("max") or average ("avg") pooling of a C-contiguous, aligned float32 or float64
    array for a geometry already checked, with no empty axis: what a pooling layer runs in
    eval mode once it has checked an input shape."""
    if kind == "avg":
        return _average(x, geom, x.dtype)
    y = np.empty(geom.output_shape, dtype=x.dtype)
    _ext.max_pool_forward(y, None, None, x, geom)
    return y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, return_argmax=False, out=None):
    """2-D max pooling: the largest value of each window, channel by channel.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Batch of N images with C channels; any strides.
    kernel_size : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Step between windows; default: the window size (non-overlapping windows).
    padding : int or (int, int)
        Implicit -inf padding on both sides of each axis, at most half the window.
    dilation : int or (int, int)
        Spacing between the window's taps.
    ceil_mode : bool
        Round the output size up instead of down; a last window that would start in the
        right/bottom padding is dropped (PyTorch's rule).
    return_indices : bool
        Also return where each maximum was found, as PyTorch does.
    return_argmax : bool
        Also return the compact form of the same: each maximum's tap ``r * S + s`` inside its
        R x S window, as uint8 (8 times smaller than indices; windows of at most 256 taps).
        :func:`max_pool2d_backward` takes it as ``argmax`` and then need not read x at all:
        the fastest way to train.
    out : ndarray or tuple of ndarrays, optional
        Where to write the results, as NumPy's ``out=``: y, or a tuple with one entry
        (an array or None) per result, in the order they are returned. Each must have its
        result's shape and dtype, be C-contiguous, writeable and overlap neither x nor
        the other results (ValueError/TypeError otherwise).

    Returns
    -------
    y : ndarray, shape (N, C, P, Q)
        P and Q from :func:`fastconv.conv_output_size`. float32 input gives float32;
        float64, integer or bool input gives float64.
    indices : ndarray of int64, shape (N, C, P, Q)
        Only with ``return_indices``: the flat position ``h * W + w`` of each maximum in its
        (unpadded) input plane, as PyTorch returns them. A NaN in a window is its maximum
        (the last NaN, as in PyTorch); on ties the first maximum in row-major window order
        is reported; a window of -inf reports its first pixel.
    argmax : ndarray of uint8, shape (N, C, P, Q)
        Only with ``return_argmax`` (after indices when both are asked for).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]])
    >>> y, indices = fastconv.max_pool2d(x[None, None], 2, return_indices=True)
    >>> y[0, 0]
    array([[9., 2.],
           [6., 3.]])
    >>> indices[0, 0]
    array([[ 5,  2],
           [13, 11]])
    """
    func = "max_pool2d"
    x = _input(x, func)
    return_indices = as_bool(return_indices, "return_indices", func)
    return_argmax = as_bool(return_argmax, "return_argmax", func)
    dtype = result_dtype(func, x=x)
    geom = pool_geometry(func, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    taps = geom.kernel[0] * geom.kernel[1]
    if return_argmax and taps > 256:
        raise ValueError(f"{func}: return_argmax needs a window of at most 256 taps (uint8), "
                         f"got kernel_size={geom.kernel} ({taps} taps); use return_indices")
    wanted = [("out[0] (y)", dtype)] + [("out[1] (indices)", np.int64)] * return_indices
    wanted += [(f"out[{len(wanted)}] (argmax)", np.uint8)] * return_argmax
    given = out_arrays(out, len(wanted), func)
    if len(wanted) == 1:
        wanted = [("out", dtype)]
    results, inputs = [], [("x", x)]
    for (name, kind), array in zip(wanted, given):
        array = check_out(array, name, geom.output_shape, kind, func, inputs)
        if array is None:
            array = np.empty(geom.output_shape, dtype=kind)
        results.append(array)
        inputs.append((name, array))
    y = results[0]
    indices = results[1] if return_indices else None
    argmax = results[-1] if return_argmax else None
    if y.size > 0:
        _ext.max_pool_forward(y, argmax, indices, as_kernel_input(x, dtype), geom)
    outputs = (y,) + ((indices,) if return_indices else ()) + ((argmax,) if return_argmax else ())
    return outputs if len(outputs) > 1 else y


def _position_array(value, name, kinds, what, geom, func):
    """indices or argmax for max_pool2d_backward: an integer array of grad_out's shape."""
    value = as_array(value, name, func, ndim=4)
    if value.dtype.kind not in kinds:
        raise TypeError(f"{func}: {name} must be {what}, got dtype {value.dtype}")
    if value.shape != geom.output_shape:
        raise ValueError(f"{func}: expected {name} of shape {geom.output_shape} (the shape of "
                         f"grad_out), got shape {value.shape}")
    return value


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None, *, argmax=None, out=None):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Each window's gradient goes, whole, to the element that was its maximum; where windows
    overlap, the contributions add up.

    Parameters
    ----------
    grad_out : array_like, shape (N, C, P, Q)
        Gradient of the loss with respect to max_pool2d's output.
    x, kernel_size, stride, padding, dilation, ceil_mode
        As given to :func:`max_pool2d`.
    indices : array_like of ints, shape (N, C, P, Q), optional
        The indices max_pool2d returned (or PyTorch's): the gradient goes where they point.
        Entries outside the input plane, which only a window lying wholly in the padding can
        produce, carry no gradient.
    argmax : array_like of uint8, shape (N, C, P, Q), optional
        The compact argmax max_pool2d returned with ``return_argmax``; x is then only used
        for its shape and dtype. Taps outside the input or the window carry no gradient.
    out : ndarray, optional
        Where to write the result, as NumPy's ``out=``: the result's shape and dtype,
        C-contiguous, writeable, not overlapping the inputs (ValueError/TypeError
        otherwise); it is returned.

    Without indices or argmax each window's maximum is found again in x.

    Returns
    -------
    grad_x : ndarray, shape (N, C, H, W)
        In the dtype max_pool2d computes in.
    """
    func = "max_pool2d_backward"
    grad_out, x, dtype, geom = _backward_inputs(func, grad_out, x, pool_geometry, kernel_size,
                                                stride, padding, dilation, ceil_mode)
    if indices is not None and argmax is not None:
        raise ValueError(f"{func}: give indices or argmax, not both")
    if indices is not None:
        indices = _position_array(indices, "indices", "iu", "an integer array (as max_pool2d "
                                  "returns with return_indices=True)", geom, func)
        indices = as_kernel_input(indices, np.int64)
    if argmax is not None:
        argmax = _position_array(argmax, "argmax", "u", "a uint8 array (as max_pool2d returns "
                                 "with return_argmax=True)", geom, func)
        if argmax.dtype != np.uint8:
            raise TypeError(f"{func}: argmax must be a uint8 array (as max_pool2d returns with "
                            f"return_argmax=True), got dtype {argmax.dtype}")
        argmax = as_kernel_input(argmax, np.uint8)
    grad_x = _grad_x_out(out, geom, dtype, func, grad_out, x, indices, argmax)
    if grad_x.size == 0:
        return grad_x
    dy = as_kernel_input(grad_out, dtype)
    x_used = as_kernel_input(x, dtype) if indices is None and argmax is None else None
    _ext.max_pool_backward(grad_x, dy, x_used, argmax, indices, geom)
    return grad_x


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """2-D average pooling: the mean of each window, channel by channel.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Batch of N images with C channels; any strides.
    kernel_size, stride, padding, ceil_mode
        As for :func:`max_pool2d` (the padding is zeros here).
    count_include_pad : bool
        Divide by the whole window, padding included (but not the part of a ceil_mode
        window that overhangs the padding), instead of by the input pixels it covers.
    divisor_override : int, optional
        Divide every window's sum by this (nonzero) number instead.
    out : ndarray, optional
        Where to write the result, as NumPy's ``out=``: the result's shape and dtype,
        C-contiguous, writeable, not overlapping the inputs (ValueError/TypeError
        otherwise); it is returned.

    Returns
    -------
    ndarray, shape (N, C, P, Q)
        P and Q from :func:`fastconv.conv_output_size`; float32 stays float32, other
        inputs give float64.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]])
    >>> fastconv.avg_pool2d(x[None, None], 2)[0, 0]
    array([[3.75, 1.25],
           [3.75, 2.  ]])
    """
    func = "avg_pool2d"
    x = _input(x, func)
    dtype = result_dtype(func, x=x)
    geom = pool_geometry(func, x.shape, kernel_size, stride, padding, 1, ceil_mode,
                         count_include_pad, divisor_override)
    y = check_out(*out_arrays(out, 1, func), "out", geom.output_shape, dtype, func, (("x", x),))
    return _average(x, geom, dtype, y)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, out=None):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Each window's gradient, divided by the window's divisor, is added to every input pixel
    of the window.

    Parameters
    ----------
    grad_out : array_like, shape (N, C, P, Q)
        Gradient of the loss with respect to avg_pool2d's output.
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As given to :func:`avg_pool2d` (x gives the input's shape and dtype).
    out : ndarray, optional
        Where to write grad_x, as for :func:`avg_pool2d`.

    Returns
    -------
    grad_x : ndarray, shape (N, C, H, W)
    """
    func = "avg_pool2d_backward"
    grad_out, x, dtype, geom = _backward_inputs(func, grad_out, x, pool_geometry, kernel_size,
                                                stride, padding, 1, ceil_mode,
                                                count_include_pad, divisor_override)
    return _average(grad_out, geom, dtype, _grad_x_out(out, geom, dtype, func, grad_out, x),
                    backward=True)


def _grad_x_out(out, geom, dtype, func, grad_out, x, indices=None, argmax=None):
    """A pooling backward's grad_x: the checked `out`, or a new array."""
    inputs = (("grad_out", grad_out), ("x", x), ("indices", indices), ("argmax", argmax))
    grad_x = check_out(*out_arrays(out, 1, func), "out", geom.input_shape, dtype, func, inputs)
    return np.empty(geom.input_shape, dtype=dtype) if grad_x is None else grad_x


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a chosen output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output row i averages input rows ``floor(i * H / P)`` to ``ceil((i + 1) * H / P) - 1``
    (columns alike), so windows may differ in size by one and overlap.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    output_size : int or (int or None, int or None)
        (P, Q); None keeps that axis's input size.

    Returns
    -------
    ndarray, shape (N, C, P, Q)
    """
    func = "adaptive_avg_pool2d"
    x = _input(x, func)
    dtype = result_dtype(func, x=x)
    return _average(x, adaptive_geometry(func, x.shape, output_size), dtype)


def adaptive_avg_pool2d_backward(grad_out, x, output_size):
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_out : array_like, shape (N, C, P, Q)
    x, output_size
        As given to :func:`adaptive_avg_pool2d`.

    Returns
    -------
    grad_x : ndarray, shape (N, C, H, W)
    """
    grad_out, x, dtype, geom = _backward_inputs("adaptive_avg_pool2d_backward", grad_out, x,
                                                adaptive_geometry, output_size)
    return _average(grad_out, geom, dtype, backward=True)


def global_avg_pool2d(x):
    """The mean of each channel of each image: ``adaptive_avg_pool2d(x, 1)``.

    Returns
    -------
    ndarray, shape (N, C, 1, 1)
        Flatten it with ``.reshape(N, C)`` to feed a dense layer.
    """
    func = "global_avg_pool2d"
    x = _input(x, func)
    dtype = result_dtype(func, x=x)
    return _average(x, adaptive_geometry(func, x.shape, 1), dtype)


def global_avg_pool2d_backward(grad_out, x):
    """Gradient of :func:`global_avg_pool2d`: grad_out / (H * W) spread over each plane.

    Parameters
    ----------
    grad_out : array_like, shape (N, C, 1, 1)
    x : array_like, shape (N, C, H, W)

    Returns
    -------
    grad_x : ndarray, shape (N, C, H, W)
    """
    grad_out, x, dtype, geom = _backward_inputs("global_avg_pool2d_backward", grad_out, x,
                                                adaptive_geometry, 1)
    return _average(grad_out, geom, dtype, backward=True)
